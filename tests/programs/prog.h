/* SPDX-License-Identifier: MIT */
/* What the real-program tests share: descriptor counts and a loud death. */
#ifndef RSC_PROG_H
#define RSC_PROG_H
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ringscope.h>

/* Open descriptors of the process, not counting the one reading them. */
static inline int prog_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

static inline void prog_list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char p[300], t[256];
	ssize_t n;

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
		n = readlink(p, t, sizeof(t) - 1);
		t[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "  fd %s -> %s\n", e->d_name, t);
	}
	if (d)
		closedir(d);
}

/* A broken promise ends the program: the line, the call, what the library said. */
#define PROG_CHECK(cond, ...)                                                             \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "%s:%d: failed: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                     \
			fprintf(stderr, " (last error: %s)\n", rsc_last_error());         \
			exit(1);                                                          \
		}                                                                         \
	} while (0)

/* Every program is bounded in time: a hang is a failure, not a stuck CI. */
static inline void prog_bound(unsigned seconds)
{
	alarm(seconds);
}

/* valgrind's own preload: it is running this program. */
static inline bool prog_under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p && strstr(p, "vgpreload");
}

/*
 * One turn that may wait. valgrind (3.19) holds its lock across
 * io_uring_enter(2), so a loop asleep there starves the thread it waits
 * for: under valgrind, poll the loop instead of sleeping in the ring.
 */
static inline int prog_run_once(struct rsc_loop *loop)
{
	struct timespec ms = { 0, 1000000 };
	int r;

	if (!prog_under_valgrind())
		return rsc_loop_run(loop, RSC_RUN_ONCE);
	r = rsc_loop_run(loop, RSC_RUN_NOWAIT);
	nanosleep(&ms, NULL);
	return r;
}

#endif
