/* SPDX-License-Identifier: MIT */
/*
 * Holds descriptors from two creation sites, then waits, so that it can be
 * dumped while it runs: "hold PATH N GATE". Opens PATH N times in
 * open_many() and twice in open_pair(), prints "ready PID", then waits
 * until the file GATE exists, prints "after", and exits 0 (leaking all).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int open_many(const char *path, int n);
int open_pair(const char *path);

int open_many(const char *path, int n)
{
	for (int i = 0; i < n; i++)
		if (open(path, O_RDONLY | O_CLOEXEC) < 0)
			return -1;
	return 0;
}

int open_pair(const char *path)
{
	return open(path, O_RDONLY | O_CLOEXEC) < 0 || open(path, O_RDONLY | O_CLOEXEC) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct timespec nap = { 0, 20 * 1000 * 1000 };

	if (argc < 4 || open_many(argv[1], atoi(argv[2])) < 0 || open_pair(argv[1]) < 0)
		return 2;
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	for (int i = 0; i < 3000 && access(argv[3], F_OK) < 0; i++)
		nanosleep(&nap, NULL);
	printf("after\n");
	return 0;
}
