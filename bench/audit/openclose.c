/* SPDX-License-Identifier: MIT */
/* N open/close pairs of one cached file: "openclose PATH [N]" (default 200000). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int open_one(const char *path);

int open_one(const char *path)
{
	return open(path, O_RDONLY | O_CLOEXEC);
}

int main(int argc, char **argv)
{
	long n = argc > 2 ? atol(argv[2]) : 200000;

	if (argc < 2)
		return 2;
	for (long i = 0; i < n; i++) {
		int fd = open_one(argv[1]);

		if (fd < 0 || close(fd) < 0) {
			perror(argv[1]);
			return 1;
		}
	}
	return 0;
}
