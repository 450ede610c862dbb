/* SPDX-License-Identifier: MIT */
/* Closes a descriptor twice: "double_close PATH", prints "fd N". */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int close_twice(int fd);

int close_twice(int fd)
{
	close(fd);
	return close(fd); /* EBADF */
}

int main(int argc, char **argv)
{
	int fd;

	if (argc < 2)
		return 2;
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	printf("fd %d\n", fd);
	fflush(stdout);
	return close_twice(fd) == -1 ? 0 : 1;
}
