/* SPDX-License-Identifier: MIT */
/*
 * open(2) and close(2) are async-signal-safe: "sig_openclose PATH [N]" runs
 * N open/close pairs (default 100000) while a 50 us interval timer's handler
 * opens and closes PATH too. Prints "pairs N, handler ran M times".
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>

static const char *path;
static volatile sig_atomic_t handled;

static void on_alarm(int sig)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	(void)sig;
	if (fd >= 0)
		close(fd);
	handled++;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	struct itimerval it = { { 0, 50 }, { 0, 50 } };
	long n = argc > 2 ? atol(argv[2]) : 100000;

	if (argc < 2)
		return 2;
	path = argv[1];
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0 || setitimer(ITIMER_REAL, &it, NULL) < 0)
		return 3;
	for (long i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || close(fd) < 0) {
			perror(path);
			return 1;
		}
	}
	it.it_value.tv_usec = it.it_interval.tv_usec = 0;
	setitimer(ITIMER_REAL, &it, NULL);
	printf("pairs %ld, handler ran %d times\n", n, (int)handled);
	return 0;
}
