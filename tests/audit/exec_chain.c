/* SPDX-License-Identifier: MIT */
/*
 * Execs itself N times in one process, then leaks one descriptor:
 * "exec_chain N PATH". Prints "fd N" from the last image.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int open_last(const char *path);

int open_last(const char *path)
{
	return open(path, O_RDONLY | O_CLOEXEC);
}

int main(int argc, char **argv)
{
	char next[24];
	long n;
	int fd;

	if (argc < 3)
		return 2;
	n = atol(argv[1]);
	if (n > 0) {
		snprintf(next, sizeof(next), "%ld", n - 1);
		execl("/proc/self/exe", argv[0], next, argv[2], (char *)NULL);
		perror("exec");
		return 1;
	}
	fd = open_last(argv[2]);
	printf("fd %d\n", fd);
	return fd < 0;
}
