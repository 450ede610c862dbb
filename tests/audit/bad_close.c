/* SPDX-License-Identifier: MIT */
/* Closes a number that was never open: "bad_close", prints "fd N". */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int close_bogus(int fd);

int close_bogus(int fd)
{
	return close(fd);
}

int main(void)
{
	int fd = 900;

	while (fcntl(fd, F_GETFD) != -1) /* a number nothing left open */
		fd++;

	printf("fd %d\n", fd);
	fflush(stdout);
	return close_bogus(fd) == -1 ? 0 : 1;
}
