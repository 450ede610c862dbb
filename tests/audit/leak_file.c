/* SPDX-License-Identifier: MIT */
/*
 * Leaks one descriptor made by open(): "leak_file PATH [abort|fork]".
 * Prints "fd N" for the test to compare. With "abort" it dies by SIGABRT
 * after the leak; with "fork" the leak happens in a child that exits; with
 * "chdir" it moves to / first (PATH must then be absolute); with "closeall"
 * it first closes every descriptor above 2 with close_range, as daemons do,
 * then opens files up to near its limit and checks that each closes cleanly.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int open_config(const char *path);

int open_config(const char *path)
{
	return open(path, O_RDONLY | O_CLOEXEC);
}

int main(int argc, char **argv)
{
	int fd;

	if (argc < 2)
		return 2;
	if (argc > 2 && strcmp(argv[2], "fork") == 0) {
		pid_t pid = fork();
		int st;

		if (pid == 0) {
			fd = open_config(argv[1]);
			printf("fd %d\n", fd);
			fflush(stdout);
			exit(fd < 0);
		}
		waitpid(pid, &st, 0);
		return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	}
	if (argc > 2 && strcmp(argv[2], "chdir") == 0 && chdir("/") < 0)
		return 1;
	if (argc > 2 && strcmp(argv[2], "closeall") == 0) {
		if (close_range(3, ~0U, 0) < 0)
			return 5;
		int held[4096], n = 0;
		struct rlimit rl;

		/* Near the limit (without reaching it), so the numbers the preload held come back. */
		if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur > 4096)
			return 7;
		while (n < 4096 && (held[n] = open(argv[1], O_RDONLY | O_CLOEXEC)) >= 0)
			if (held[n++] >= (int)rl.rlim_cur - 4)
				break;
		while (n > 0)
			if (close(held[--n]) < 0)
				return 6; /* each number is the program's own to close */
	}
	fd = open_config(argv[1]);
	if (fd < 0)
		return 1;
	printf("fd %d\n", fd);
	fflush(stdout);
	if (argc > 2 && strcmp(argv[2], "abort") == 0)
		abort();
	return 0;
}
