/* SPDX-License-Identifier: MIT */
/*
 * A leak made inside an inlined function: "leak_inline PATH". The report
 * must show the inlined frame (open_inline) above the function it was
 * inlined into (main), each with its own line.
 */
#include <fcntl.h>
#include <stdio.h>

static inline __attribute__((always_inline)) int open_inline(const char *path)
{
	return open(path, O_RDONLY | O_CLOEXEC);
}

int main(int argc, char **argv)
{
	int fd;

	if (argc < 2)
		return 2;
	fd = open_inline(argv[1]);
	printf("fd %d\n", fd);
	return fd < 0;
}
