/* SPDX-License-Identifier: MIT */
/*
 * ringscope-enter-split: where a pair's time goes, inside io_uring_enter(2)
 * or outside it, for hand-written liburing and for ringscope, at N = 1, 64
 * and 256 (bench/README.md, "Inside and outside the kernel").
 *
 * The binary interposes liburing's submit calls: libringscope.so reaches
 * them through its PLT, so the executable's definitions come first, and
 * each times the real one (dlsym RTLD_NEXT) with the time-stamp counter.
 * The library is not changed or rebuilt for it. A control row runs the
 * liburing batch with K calls to distinct small functions between the
 * enters: user code that does no kernel work, to see what it does to the
 * kernel's share.
 */
#define _GNU_SOURCE
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <ringscope.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static inline uint64_t ticks(void)
{
	return __rdtsc();
}
#define TICK_UNIT "TSC cycles"
#else
static inline uint64_t ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
#define TICK_UNIT "ns"
#endif

#define N_FILES 256 /* the largest batch: the floors are at N = 64 and 256 */
#define ROUNDS_DEFAULT 100000U
#define REPEATS 5

static uint64_t in_enter;

typedef int (*submit_wait_fn)(struct io_uring *, unsigned);
typedef int (*submit_events_fn)(struct io_uring *);

#define EXPORT __attribute__((visibility("default")))
EXPORT int io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr);
EXPORT int io_uring_submit_and_get_events(struct io_uring *ring);

int io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
	static submit_wait_fn real;
	uint64_t t;
	int ret;

	if (!real)
		real = (submit_wait_fn)dlsym(RTLD_NEXT, "io_uring_submit_and_wait");
	t = ticks();
	ret = real(ring, wait_nr);
	in_enter += ticks() - t;
	return ret;
}

int io_uring_submit_and_get_events(struct io_uring *ring)
{
	static submit_events_fn real;
	uint64_t t;
	int ret;

	if (!real)
		real = (submit_events_fn)dlsym(RTLD_NEXT, "io_uring_submit_and_get_events");
	t = ticks();
	ret = real(ring);
	in_enter += ticks() - t;
	return ret;
}

/* The control's user code: distinct functions, so each call is a new branch target. */
#define SPIN_FN(k) \
	static __attribute__((noinline)) unsigned spin##k(unsigned x) { return x * (2 * k + 3) + k; }
#define SPIN_10(d) SPIN_FN(d##0) SPIN_FN(d##1) SPIN_FN(d##2) SPIN_FN(d##3) SPIN_FN(d##4) \
	SPIN_FN(d##5) SPIN_FN(d##6) SPIN_FN(d##7) SPIN_FN(d##8) SPIN_FN(d##9)
SPIN_10(1) SPIN_10(2) SPIN_10(3) SPIN_10(4) SPIN_10(5)
SPIN_10(6) SPIN_10(7) SPIN_10(8) SPIN_10(9) SPIN_10(10)
#define CALL_10(d) x = spin##d##0(x); x = spin##d##1(x); x = spin##d##2(x); x = spin##d##3(x); \
	x = spin##d##4(x); x = spin##d##5(x); x = spin##d##6(x); x = spin##d##7(x); \
	x = spin##d##8(x); x = spin##d##9(x);

static volatile unsigned sink;

/* 100 calls to 100 different functions, or none. */
static void user_code(unsigned calls)
{
	unsigned x = calls;

	if (!calls)
		return;
	CALL_10(1) CALL_10(2) CALL_10(3) CALL_10(4) CALL_10(5)
	CALL_10(6) CALL_10(7) CALL_10(8) CALL_10(9) CALL_10(10)
	sink = x;
}

struct ctx {
	char paths[N_FILES][64];
	int dirfd;
	struct io_uring ring;
	struct rsc_loop *loop;
	int fds[N_FILES];
};

static void die(const char *what, int err)
{
	fprintf(stderr, "ringscope-enter-split: %s: %s\n", what, rsc_strerror(err));
	exit(1);
}

/* Submit what is prepared, run the control's user code, and reap @n CQEs. */
static void submit_and_reap(struct ctx *c, unsigned n, unsigned calls, bool opening)
{
	struct io_uring_cqe *cqe;
	unsigned i;

	if (io_uring_submit_and_wait(&c->ring, n) < 0)
		die("submit", -EIO);
	user_code(calls);
	for (i = 0; i < n; i++) {
		if (io_uring_peek_cqe(&c->ring, &cqe) < 0 || cqe->res < 0)
			die(opening ? "openat" : "close", cqe ? cqe->res : -EIO);
		if (opening)
			c->fds[cqe->user_data] = cqe->res;
		io_uring_cqe_seen(&c->ring, cqe);
	}
}

static void uring_batch(struct ctx *c, unsigned n, unsigned calls)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);

		io_uring_prep_openat(sqe, c->dirfd, c->paths[i], O_RDONLY | O_CLOEXEC, 0);
		io_uring_sqe_set_data64(sqe, i);
	}
	submit_and_reap(c, n, calls, true);
	for (i = n; i-- > 0;) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);

		io_uring_prep_close(sqe, c->fds[i]);
		io_uring_sqe_set_data64(sqe, i);
	}
	submit_and_reap(c, n, calls, false);
}

static void rsc_batch(struct ctx *c, unsigned n)
{
	struct rsc_scope *s;
	unsigned i;
	int ret;

	ret = rsc_scope_open(c->loop, NULL, "split", &s);
	for (i = 0; ret == 0 && i < n; i++)
		ret = rsc_open(s, c->dirfd, c->paths[i], O_RDONLY, 0, 0, NULL);
	if (ret == 0)
		ret = rsc_loop_run(c->loop, RSC_RUN_DEFAULT);
	if (ret == 0)
		ret = rsc_scope_close(s, NULL, NULL);
	if (ret == 0)
		ret = rsc_loop_run(c->loop, RSC_RUN_DEFAULT);
	if (ret != 0)
		die("ringscope batch", ret < 0 ? ret : -EBUSY);
}

/* One row: the median of REPEATS runs of @rounds batches, per pair. */
static void row(struct ctx *c, const char *name, unsigned n, int calls, unsigned rounds)
{
	double inside[REPEATS], outside[REPEATS], t;
	unsigned r, k, i, j;

	for (k = 0; k < REPEATS; k++) {
		uint64_t t0, total;

		in_enter = 0;
		t0 = ticks();
		for (r = 0; r < rounds; r++) {
			if (calls < 0)
				rsc_batch(c, n);
			else
				uring_batch(c, n, (unsigned)calls);
		}
		total = ticks() - t0;
		inside[k] = (double)in_enter / ((double)rounds * n);
		outside[k] = (double)(total - in_enter) / ((double)rounds * n);
	}
	/* Sorted for the median: five values. */
	for (i = 0; i < REPEATS; i++)
		for (j = i + 1; j < REPEATS; j++) {
			if (inside[j] < inside[i]) {
				t = inside[i], inside[i] = inside[j], inside[j] = t;
			}
			if (outside[j] < outside[i]) {
				t = outside[i], outside[i] = outside[j], outside[j] = t;
			}
		}
	printf("%-24s %4u %12.0f %12.0f %12.0f\n", name, n, inside[REPEATS / 2],
	       outside[REPEATS / 2], inside[REPEATS / 2] + outside[REPEATS / 2]);
}

int main(int argc, char **argv)
{
	static struct ctx c;
	char dir[] = "/tmp/ringscope-split-XXXXXX";
	unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : ROUNDS_DEFAULT, i;
	struct io_uring_params p;
	int ret;

	if (argc > 2 || rounds == 0) {
		fprintf(stderr, "usage: ringscope-enter-split [ROUNDS]\n");
		return 2;
	}
	if (!mkdtemp(dir) || (c.dirfd = open(dir, O_DIRECTORY | O_CLOEXEC)) < 0)
		die("temp directory", -errno);
	for (i = 0; i < N_FILES; i++) {
		int fd;

		snprintf(c.paths[i], sizeof(c.paths[i]), "f%u", i);
		fd = openat(c.dirfd, c.paths[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, "x", 1) != 1)
			die("temp file", -errno);
		close(fd);
	}
	/* As bench.c and src/loop.c set their rings up (first choice). */
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
	p.cq_entries = 2048;
	ret = io_uring_queue_init_params(512, &c.ring, &p);
	if (ret < 0)
		die("io_uring_queue_init_params", ret);
	/* As ringscope's loop, unless asked for the plain setup. */
	if (!getenv("SPLIT_NO_REGISTER") && io_uring_register_ring_fd(&c.ring) <= 0)
		fprintf(stderr, "ringscope-enter-split: the baseline ring is not registered\n");
	ret = rsc_loop_new(&c.loop, 512, 0);
	if (ret < 0)
		die("rsc_loop_new", ret);

	printf("per pair, %s (median of %d runs of %u batches)\n", TICK_UNIT, REPEATS, rounds);
	printf("%-24s %4s %12s %12s %12s\n", "variant", "N", "in enter", "outside", "total");
	for (i = 0; i < 2; i++) { /* twice: the first pass warms caches and the CPU clock */
		unsigned n = 1;

		if (i == 0) {
			row(&c, "warm-up", n, 0, rounds / 10 + 1);
			continue;
		}
		row(&c, "liburing", n, 0, rounds);
		row(&c, "ringscope", n, -1, rounds);
		row(&c, "liburing + 100 calls", n, 100, rounds);
		row(&c, "liburing", 64, 0, rounds / 64 + 1);
		row(&c, "ringscope", 64, -1, rounds / 64 + 1);
		row(&c, "liburing", 256, 0, rounds / 256 + 1);
		row(&c, "ringscope", 256, -1, rounds / 256 + 1);
	}

	ret = rsc_loop_close(c.loop);
	if (ret < 0)
		die("rsc_loop_close", ret);
	io_uring_queue_exit(&c.ring);
	for (i = 0; i < N_FILES; i++)
		unlinkat(c.dirfd, c.paths[i], 0);
	close(c.dirfd);
	rmdir(dir);
	return 0;
}
