/* SPDX-License-Identifier: MIT */
/*
 * Leaks descriptors until open() fails with EMFILE: "emfile_leak PATH [LIMIT]",
 * with LIMIT, after lowering its own RLIMIT_NOFILE (soft and hard) to it.
 * Prints "leaked N" (how many it holds at exit) for the test to compare.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

int hoard(const char *path);

int hoard(const char *path)
{
	int n = 0;

	while (open(path, O_RDONLY | O_CLOEXEC) >= 0)
		n++;
	return errno == EMFILE ? n : -1;
}

int main(int argc, char **argv)
{
	int n;

	if (argc < 2)
		return 2;
	if (argc > 2) {
		struct rlimit rl;

		rl.rlim_cur = rl.rlim_max = strtoul(argv[2], NULL, 10);
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			return 3;
	}
	n = hoard(argv[1]);
	printf("leaked %d\n", n);
	return n < 0;
}
