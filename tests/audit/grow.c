/* SPDX-License-Identifier: MIT */
/*
 * Opens one more descriptor every INTERVAL_MS, N times, then sleeps until
 * killed: "grow PATH N INTERVAL_MS". Prints "ready" once started.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec ts;
	int n, ms;

	if (argc < 4)
		return 2;
	n = atoi(argv[2]);
	ms = atoi(argv[3]);
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		if (open(argv[1], O_RDONLY | O_CLOEXEC) < 0)
			return 1;
		nanosleep(&ts, NULL);
	}
	for (;;)
		pause();
}
