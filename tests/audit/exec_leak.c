/* SPDX-License-Identifier: MIT */
/*
 * Opens a file without O_CLOEXEC, then execs PROG (which inherits it):
 * "exec_leak PATH PROG", prints "fd N".
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int open_secret(const char *path);

int open_secret(const char *path)
{
	return open(path, O_RDONLY); /* no O_CLOEXEC: CWE-403 */
}

int main(int argc, char **argv)
{
	int fd;

	if (argc < 3)
		return 2;
	fd = open_secret(argv[1]);
	if (fd < 0)
		return 1;
	printf("fd %d\n", fd);
	fflush(stdout);
	execl(argv[2], argv[2], (char *)NULL);
	perror("execl");
	return 1;
}
