/* SPDX-License-Identifier: MIT */
/*
 * One loop per thread, several threads at once: built with
 * -fsanitize=thread by 'make check-tsan'. Each thread opens and releases
 * scopes of files; the run fails on any data race, leak or wrong count.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <liburing.h>

#include "ringscope.h"

#define THREADS 4
#define ROUNDS 200
#define FILES 16

static const char *dir;

static void *worker(void *arg)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	char path[512];
	long id = (long)arg;
	int round, i;

	if (rsc_loop_new(&loop, 64, 0) < 0)
		return (void *)"rsc_loop_new";
	for (round = 0; round < ROUNDS; round++) {
		if (rsc_scope_open(loop, NULL, "t", &s) < 0)
			return (void *)"rsc_scope_open";
		for (i = 0; i < FILES; i++) {
			snprintf(path, sizeof(path), "%s/f%ld-%d", dir, id, i);
			if (rsc_open(s, AT_FDCWD, path, O_RDWR | O_CREAT, 0600, 0, NULL) < 0)
				return (void *)"rsc_open";
		}
		if (rsc_loop_run(loop, RSC_RUN_DEFAULT) < 0 ||
		    rsc_scope_close_wait(s, NULL) != 0)
			return (void *)"unwind";
	}
	if (rsc_loop_counter(loop, RSC_CTR_RELEASED) != ROUNDS * FILES)
		return (void *)"released count";
	if (rsc_loop_close(loop) < 0)
		return (void *)"rsc_loop_close";
	return NULL;
}

/* rsc_loop_post from several threads into one loop, run by the main thread. */
#define POSTS 1000

static struct rsc_loop *target;
static int posted_ran; /* only the loop's thread touches it */

static void on_post(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	posted_ran++;
}

static void *poster(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < POSTS; i++)
		if (rsc_loop_post(target, on_post, NULL) < 0)
			return (void *)"rsc_loop_post";
	return NULL;
}

static void on_timer(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)res;
	(void)buf;
	(void)data;
}

/*
 * @eventfd: the loop is made as on a kernel without IORING_OP_MSG_RING (a
 * fault rule), so the posters write its eventfd instead. A long timer keeps
 * the loop waiting in the kernel between the wake-ups.
 */
static int posts_from_threads(int eventfd)
{
	pthread_t t[THREADS];
	struct rsc_scope *s;
	long i;
	int failed = 0, ret;

	if (eventfd && setenv("RINGSCOPE_FAULT", "msg_ring:1:EOPNOTSUPP", 1) < 0)
		return 1;
	ret = rsc_loop_new(&target, 16, 0);
	unsetenv("RINGSCOPE_FAULT");
	if (eventfd && ret == -EOPNOTSUPP) {
		printf("SKIP tsan_threads: eventfd posts: this build has no fault injection\n");
		return 0;
	}
	if (ret < 0 || (eventfd && !(rsc_loop_features(target) & RSC_FEAT_POST_EVENTFD)))
		return 1;
	if (rsc_scope_open(target, NULL, "wait", &s) < 0 ||
	    rsc_timer(s, 60000, on_timer, NULL, NULL) < 0)
		return 1;
	posted_ran = 0;
	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, poster, NULL);
	while (posted_ran < THREADS * POSTS)
		if (rsc_loop_run(target, RSC_RUN_ONCE) < 0)
			return 1;
	for (i = 0; i < THREADS; i++) {
		void *err;

		pthread_join(t[i], &err);
		failed |= err != NULL;
	}
	failed |= rsc_scope_close_wait(s, NULL) != 0;
	failed |= posted_ran != THREADS * POSTS;
	failed |= rsc_loop_close(target) < 0;
	printf("tsan_threads: %d threads x %d posts into one loop (%s): %s\n", THREADS, POSTS,
	       eventfd ? "eventfd" : "MSG_RING", failed ? "FAILED" : "ok");
	return failed;
}

/* The application's reap: every CQE dispatched; how many were ringscope's, or -1. */
static int app_reap(struct io_uring *ring, struct rsc_loop *loop)
{
	struct __kernel_timespec ts = { 0, 1000000 };
	struct io_uring_cqe *cqe;
	int n = 0;

	(void)io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
	while (io_uring_peek_cqe(ring, &cqe) == 0 && cqe) {
		int ret = loop ? rsc_loop_dispatch(loop, cqe) : (cqe->user_data >> 63 ? 1 : 0);

		io_uring_cqe_seen(ring, cqe);
		if (ret != 1)
			return -1; /* nothing but ringscope's is on this ring */
		n++;
	}
	if (loop && rsc_loop_run(loop, RSC_RUN_NOWAIT) < 0)
		return -1;
	return n;
}

/*
 * The same into a loop on the application's ring (rsc_loop_new_from_ring):
 * each wake is a CQE the application reaps and dispatches; once the posters
 * are joined and the loop is closed, none may be left on the ring.
 */
static int posts_into_shared_ring(unsigned setup)
{
	pthread_t t[THREADS];
	struct io_uring ring;
	int failed = 0, turns, after = 0;
	long i;

	if (io_uring_queue_init(16, &ring, setup) < 0 || rsc_loop_new_from_ring(&target, &ring, 0) < 0)
		return 1;
	posted_ran = 0;
	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, poster, NULL);
	while (posted_ran < THREADS * POSTS && !failed)
		failed |= app_reap(&ring, target) < 0;
	for (i = 0; i < THREADS; i++) {
		void *err;

		pthread_join(t[i], &err);
		failed |= err != NULL;
	}
	for (turns = 0; turns < 1000 && rsc_loop_alive(target) > 0 && !failed; turns++)
		failed |= app_reap(&ring, target) < 0;
	failed |= posted_ran != THREADS * POSTS;
	failed |= rsc_loop_close(target) < 0;
	for (turns = 0; turns < 3 && !failed; turns++)
		after += app_reap(&ring, NULL);
	failed |= after != 0;
	io_uring_queue_exit(&ring);
	printf("tsan_threads: %d threads x %d posts into a loop on the application's ring (%s): %s\n",
	       THREADS, POSTS, setup ? "DEFER_TASKRUN" : "no defer", failed ? "FAILED" : "ok");
	return failed;
}

/*
 * One owned error chain in the hands of several threads at once
 * (rsc_error_dup(3): reference counts are atomic): each duplicates, reads,
 * formats and frees it, after the loop that made it was freed; each thread's
 * rsc_last_error is its own.
 */
#define DUPS 2000

static struct rsc_error *shared_chain;

static int fail_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return -EIO;
}

static int nop_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
}

static const struct rsc_manager failing = {
	.size = sizeof(struct rsc_manager), .name = "failing", .enter = nop_enter, .exit = fail_exit,
};

static void *chain_user(void *arg)
{
	char text[512], mine[64];
	long id = (long)arg;
	int i;

	snprintf(mine, sizeof(mine), "/nonexistent/%ld", id);
	for (i = 0; i < DUPS; i++) {
		struct rsc_error *dup;

		if (rsc_error_dup(shared_chain, &dup) < 0)
			return (void *)"rsc_error_dup";
		if (rsc_error_depth(dup) != 2 || rsc_error_format(dup, text, sizeof(text)) <= 0)
			return (void *)"reading the chain";
		rsc_error_free(dup);
		if (rsc_loop_trace_file(NULL, mine) != -EINVAL ||
		    strcmp(rsc_last_error(), "rsc_loop_trace_file: loop is NULL") != 0)
			return (void *)"rsc_last_error";
	}
	return NULL;
}

static int chains_across_threads(void)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	pthread_t t[THREADS];
	int failed = 0;
	long i;

	if (rsc_loop_new(&loop, 8, 0) < 0 || rsc_scope_open(loop, NULL, "chain", &s) < 0 ||
	    rsc_push(s, &failing, NULL, NULL) < 0 || rsc_push(s, &failing, NULL, NULL) < 0 ||
	    rsc_loop_run(loop, RSC_RUN_DEFAULT) < 0 ||
	    rsc_scope_close_wait(s, &shared_chain) != -EIO || rsc_loop_close(loop) < 0)
		return 1;
	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, chain_user, (void *)i);
	for (i = 0; i < THREADS; i++) {
		void *err;

		pthread_join(t[i], &err);
		if (err) {
			fprintf(stderr, "chain thread %ld: %s failed\n", i, (const char *)err);
			failed = 1;
		}
	}
	rsc_error_free(shared_chain);
	printf("tsan_threads: %d threads x %d duplicates of one chain: %s\n", THREADS, DUPS,
	       failed ? "FAILED" : "ok");
	return failed;
}

/*
 * Stale handles across threads (man 7 ringscope, HANDLES): a publisher
 * thread opens and closes scopes on its loop (pooled objects, so the same
 * memory comes back with a new handle), makes a new loop every few rounds
 * (slot chunks given back and taken again), and publishes each scope's
 * handle once it is freed; checkers pass it to calls on their own loops and
 * must get -ESTALE every time, never a crash or a race.
 */
#define STALE_ROUNDS 3000

static unsigned long long stale_h;
static int stale_done;

static void *stale_publisher(void *arg)
{
	struct rsc_loop *loop = NULL;
	struct rsc_scope *s, *child;
	int i;

	(void)arg;
	for (i = 0; i < STALE_ROUNDS; i++) {
		if (i % 500 == 0) {
			if (loop && rsc_loop_close(loop) < 0)
				return (void *)"rsc_loop_close";
			if (rsc_loop_new(&loop, 8, 0) < 0)
				return (void *)"rsc_loop_new";
		}
		if (rsc_scope_open(loop, NULL, "pub", &s) < 0 ||
		    rsc_scope_open(loop, s, "child", &child) < 0)
			return (void *)"rsc_scope_open";
		if (rsc_scope_close_wait(s, NULL) != 0)
			return (void *)"rsc_scope_close_wait";
		/* Freed: from now on every call with it is -ESTALE. */
		__atomic_store_n(&stale_h, (unsigned long long)(uintptr_t)(i & 1 ? s : child),
				 __ATOMIC_RELEASE);
	}
	__atomic_store_n(&stale_done, 1, __ATOMIC_RELEASE);
	return rsc_loop_close(loop) < 0 ? (void *)"rsc_loop_close" : NULL;
}

static void *stale_checker(void *arg)
{
	struct rsc_loop *loop;
	struct rsc_scope *s, *mine;
	int *checked = arg;

	if (rsc_loop_new(&loop, 8, 0) < 0)
		return (void *)"rsc_loop_new";
	if (rsc_scope_open(loop, NULL, "mine", &mine) < 0)
		return (void *)"rsc_scope_open";
	while (!__atomic_load_n(&stale_done, __ATOMIC_ACQUIRE)) {
		struct rsc_scope *h = (struct rsc_scope *)(uintptr_t)
			__atomic_load_n(&stale_h, __ATOMIC_ACQUIRE);

		if (!h)
			continue;
		if (rsc_scope_close(h, NULL, NULL) != -ESTALE ||
		    rsc_scope_open(loop, h, "under", &s) != -ESTALE)
			return (void *)"a stale handle was not -ESTALE";
		(*checked)++;
	}
	if (rsc_scope_close_wait(mine, NULL) != 0 || rsc_loop_close(loop) < 0)
		return (void *)"closing";
	return NULL;
}

static int join_all(pthread_t *t, int n, const char *what)
{
	int failed = 0, i;

	for (i = 0; i < n; i++) {
		void *err;

		pthread_join(t[i], &err);
		if (err) {
			fprintf(stderr, "%s thread %d: %s\n", what, i, (const char *)err);
			failed = 1;
		}
	}
	return failed;
}

static int stale_handles_across_threads(void)
{
	pthread_t t[3];
	int checked[2] = { 0, 0 }, failed;

	pthread_create(&t[0], NULL, stale_publisher, NULL);
	pthread_create(&t[1], NULL, stale_checker, &checked[0]);
	pthread_create(&t[2], NULL, stale_checker, &checked[1]);
	failed = join_all(t, 3, "stale");
	failed |= !checked[0] || !checked[1];
	printf("tsan_threads: stale handles of another thread's freed scopes (%d checks): %s\n",
	       checked[0] + checked[1], failed ? "FAILED" : "ok");
	return failed;
}

/*
 * rsc_adopt on several threads at once, each number closed by one loop and
 * given by the kernel to another thread's pipe2 at once; a describer asks
 * the ledger about every number meanwhile (rsc_audit_describe_fd(3): from
 * any thread, at any moment). A fresh number is nobody's: never -EEXIST.
 */
#define ADOPT_ROUNDS 1500

static int adopt_done;

static void *adopter(void *arg)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *e[2];
	int *eexist = arg, i, p[2], ret;

	if (rsc_loop_new(&loop, 16, 0) < 0 || rsc_scope_open(loop, NULL, "adopt", &s) < 0)
		return (void *)"setup";
	for (i = 0; i < ADOPT_ROUNDS; i++) {
		/* Not through TSan's pipe2: it never sees the ring close a number,
		 * and would take the kernel's reuse of it for a race. */
		if (syscall(SYS_pipe2, p, O_CLOEXEC) < 0)
			return (void *)"pipe2";
		ret = rsc_adopt(s, p[0], 0, &e[0]);
		if (ret == -EEXIST) {
			(*eexist)++;
			syscall(SYS_close, p[0]);
			syscall(SYS_close, p[1]);
			continue;
		}
		if (ret < 0)
			return (void *)"rsc_adopt";
		ret = rsc_adopt(s, p[1], 0, &e[1]);
		if (ret == -EEXIST) {
			(*eexist)++;
			syscall(SYS_close, p[1]);
		} else if (ret < 0) {
			return (void *)"rsc_adopt";
		} else if (rsc_entry_release_wait(e[1], NULL) != 0) {
			return (void *)"release";
		}
		if (rsc_entry_release_wait(e[0], NULL) != 0)
			return (void *)"release";
	}
	if (rsc_scope_close_wait(s, NULL) != 0 || rsc_loop_close(loop) < 0)
		return (void *)"closing";
	return NULL;
}

static void *describer(void *arg)
{
	char buf[512];
	int *owned = arg, fd;

	while (!__atomic_load_n(&adopt_done, __ATOMIC_ACQUIRE))
		for (fd = 3; fd < 64; fd++)
			if (rsc_audit_describe_fd(fd, buf, sizeof(buf)) > 0) {
				if (strncmp(buf, "ringscope entry 'adopt'", 23) != 0)
					return (void *)"a wrong owner";
				(*owned)++;
			}
	return NULL;
}

static int adopt_across_threads(void)
{
	pthread_t t[THREADS], d;
	int eexist[THREADS] = { 0 }, owned = 0, failed, n = 0;
	long i;

	adopt_done = 0;
	pthread_create(&d, NULL, describer, &owned);
	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, adopter, &eexist[i]);
	failed = join_all(t, THREADS, "adopt");
	__atomic_store_n(&adopt_done, 1, __ATOMIC_RELEASE);
	failed |= join_all(&d, 1, "describe");
	for (i = 0; i < THREADS; i++)
		n += eexist[i];
	failed |= n != 0;
	printf("tsan_threads: %d threads adopting reused numbers (%d wrongly -EEXIST), %d described: %s\n",
	       THREADS, n, owned, failed ? "FAILED" : "ok");
	return failed;
}

/*
 * Posts while the loop's thread tries to close it (rsc_loop_post(3)): a
 * close that fails with -EBUSY takes posts again; every post that returned
 * 0 runs exactly once, one refused with -ESHUTDOWN never.
 */
static int busy_ran;
static int busy_stop;

static void count_post(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	busy_ran++;
}

/* Each poster's bound: four unbounded producers outran the loop's one
 * consumer under TSan on a loaded machine, and the queue grew to 20 GB. */
#define BUSY_POSTS_MAX 20000

static void *busy_poster(void *arg)
{
	int *queued = arg;

	while (!__atomic_load_n(&busy_stop, __ATOMIC_ACQUIRE) && *queued < BUSY_POSTS_MAX) {
		int ret = rsc_loop_post(target, count_post, NULL);

		if (ret == 0)
			(*queued)++;
		else if (ret != -ESHUTDOWN)
			return (void *)"rsc_loop_post";
	}
	return NULL;
}

static int posts_while_closing(void)
{
	pthread_t t[THREADS];
	struct rsc_scope *s;
	int queued[THREADS] = { 0 }, failed = 0, total = 0, i, busy = 0;

	if (rsc_loop_new(&target, 16, 0) < 0 || rsc_scope_open(target, NULL, "keep", &s) < 0)
		return 1;
	busy_ran = 0;
	busy_stop = 0;
	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, busy_poster, &queued[i]);
	for (i = 0; i < 300; i++) {
		busy += rsc_loop_close(target) == -EBUSY; /* the scope keeps it */
		if (rsc_loop_run(target, RSC_RUN_NOWAIT) < 0)
			failed = 1;
	}
	__atomic_store_n(&busy_stop, 1, __ATOMIC_RELEASE);
	failed |= join_all(t, THREADS, "poster");
	failed |= rsc_scope_close_wait(s, NULL) != 0;
	failed |= rsc_loop_run(target, RSC_RUN_NOWAIT) < 0;
	for (i = 0; i < THREADS; i++)
		total += queued[i];
	failed |= busy != 300 || busy_ran != total;
	if (busy_ran != total)
		fprintf(stderr, "posts: %d queued, %d ran\n", total, busy_ran);
	failed |= rsc_loop_close(target) < 0;
	printf("tsan_threads: %d threads posting while the loop's close fails -EBUSY (%d posts): %s\n",
	       THREADS, total, failed ? "FAILED" : "ok");
	return failed;
}

/*
 * A ring of 4 loops on 4 threads posting to each other: a token goes round
 * LAPS times; each loop passes it on to the next from a post.
 */
#define LAPS 300

struct ring_node {
	struct rsc_loop *loop;
	struct ring_node *next;
	int seen;
	int stop;
};

static struct ring_node ring_nodes[THREADS];
static pthread_barrier_t ring_ready;

static void pass_token(struct rsc_loop *loop, void *arg)
{
	struct ring_node *n = arg;

	if (!n) { /* the end: each loop's own thread stops it */
		for (int i = 0; i < THREADS; i++)
			if (ring_nodes[i].loop == loop)
				__atomic_store_n(&ring_nodes[i].stop, 1, __ATOMIC_RELEASE);
		return;
	}
	n->seen++;
	if (n == &ring_nodes[0] && n->seen == LAPS) {
		for (int i = 0; i < THREADS; i++)
			(void)!rsc_loop_post(ring_nodes[i].loop, pass_token, NULL);
		return;
	}
	if (rsc_loop_post(n->next->loop, pass_token, n->next) < 0)
		abort();
}

static void *ring_member(void *arg)
{
	struct ring_node *n = arg;
	struct rsc_scope *s;
	void *ret = NULL;

	if (rsc_loop_new(&n->loop, 8, 0) < 0)
		abort();
	pthread_barrier_wait(&ring_ready);
	if (n == &ring_nodes[0] && rsc_loop_post(n->loop, pass_token, n) < 0)
		ret = (void *)"first post";
	/* A long timer keeps the loop waiting in the kernel between posts. */
	if (rsc_scope_open(n->loop, NULL, "ring", &s) < 0 ||
	    rsc_timer(s, 60000, on_timer, NULL, NULL) < 0)
		ret = (void *)"timer";
	while (!ret && !__atomic_load_n(&n->stop, __ATOMIC_ACQUIRE))
		if (rsc_loop_run(n->loop, RSC_RUN_ONCE) < 0)
			ret = (void *)"rsc_loop_run";
	pthread_barrier_wait(&ring_ready); /* nobody posts to a closed loop */
	if (rsc_scope_close_wait(s, NULL) != 0 || rsc_loop_close(n->loop) < 0)
		ret = (void *)"closing";
	return ret;
}

static int loops_posting_in_a_ring(void)
{
	pthread_t t[THREADS];
	int failed, i;

	pthread_barrier_init(&ring_ready, NULL, THREADS);
	for (i = 0; i < THREADS; i++)
		ring_nodes[i] = (struct ring_node){ .next = &ring_nodes[(i + 1) % THREADS] };
	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, ring_member, &ring_nodes[i]);
	failed = join_all(t, THREADS, "ring");
	/* The token starts and ends at loop 0: the others saw it a lap less. */
	for (i = 0; i < THREADS; i++)
		failed |= ring_nodes[i].seen != (i ? LAPS - 1 : LAPS);
	pthread_barrier_destroy(&ring_ready);
	printf("tsan_threads: a ring of %d loops passing a token %d laps: %s\n", THREADS, LAPS,
	       failed ? "FAILED" : "ok");
	return failed;
}

/*
 * rsc_audit_describe_fd(3) "may be called at any moment from any thread ...
 * even while the owner's loop runs on another thread": owners open files
 * with long paths (a detail on the heap) in scopes of changing names and
 * release them at once, while a describer names every number's owner.
 */
#define DESCRIBE_ROUNDS 400

static int describe_done;

static void *describe_owner(void *arg)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *e;
	char path[512], name[32];
	long id = (long)arg;
	int i;

	if (rsc_loop_new(&loop, 16, 0) < 0)
		return (void *)"rsc_loop_new";
	snprintf(path, sizeof(path), "%s/%0200ld", dir, id);
	for (i = 0; i < DESCRIBE_ROUNDS; i++) {
		snprintf(name, sizeof(name), "owner-%ld-%d", id, i);
		if (rsc_scope_open(loop, NULL, name, &s) < 0 ||
		    rsc_open(s, AT_FDCWD, path, O_RDWR | O_CREAT, 0600, 0, &e) < 0 ||
		    rsc_entry_wait(e) < 0 || rsc_entry_release_wait(e, NULL) != 0 ||
		    rsc_scope_close_wait(s, NULL) != 0)
			return (void *)"open and release";
	}
	return rsc_loop_close(loop) < 0 ? (void *)"rsc_loop_close" : NULL;
}

static void *describe_all(void *arg)
{
	char buf[1024];
	int *named = arg, fd;

	while (!__atomic_load_n(&describe_done, __ATOMIC_ACQUIRE))
		for (fd = 3; fd < 64; fd++)
			if (rsc_audit_describe_fd(fd, buf, sizeof(buf)) > 0) {
				if (!strstr(buf, "ringscope entry 'file'"))
					return (void *)"a wrong owner";
				(*named)++;
			}
	return NULL;
}

static int describe_while_owners_run(void)
{
	pthread_t t[2], d[2];
	int named[2] = { 0, 0 }, failed;
	long i;

	describe_done = 0;
	for (i = 0; i < 2; i++)
		pthread_create(&d[i], NULL, describe_all, &named[i]);
	for (i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, describe_owner, (void *)i);
	failed = join_all(t, 2, "owner");
	__atomic_store_n(&describe_done, 1, __ATOMIC_RELEASE);
	failed |= join_all(d, 2, "describer");
	printf("tsan_threads: 2 describers naming the owners of 2 loops' files (%d named): %s\n",
	       named[0] + named[1], failed ? "FAILED" : "ok");
	return failed;
}

/*
 * Hand-overs between loops on different threads (rsc_inbox(3)): two sender
 * threads give direct slots of files to one receiver thread's inbox; each
 * arrives once, in a scope the receiver closes from its callback.
 */
#define HANDOVERS 150

static unsigned long long inbox_addr;
static pthread_barrier_t inbox_ready;

static void on_arrival(struct rsc_entry *inbox, int slot, struct rsc_scope *cs,
		       struct rsc_entry *e, void *data)
{
	(void)inbox;
	(void)e;
	if (slot >= 0 && rsc_scope_close(cs, NULL, NULL) == 0)
		(*(int *)data)++;
}

static void on_sent(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res >= 0 ? 1 : -1;
}

static void *sender(void *arg)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *e;
	char path[512];
	int i, sent;

	snprintf(path, sizeof(path), "%s/handed-%ld", dir, (long)arg);
	if (rsc_loop_new(&loop, 16, RSC_LOOP_DIRECT) < 0)
		return (void *)"rsc_loop_new";
	pthread_barrier_wait(&inbox_ready);
	for (i = 0; i < HANDOVERS; i++) {
		if (rsc_scope_open(loop, NULL, "send", &s) < 0 ||
		    rsc_open(s, AT_FDCWD, path, O_RDWR | O_CREAT, 0600, RSC_DIRECT, &e) < 0 ||
		    rsc_entry_wait(e) < 0)
			return (void *)"open";
		sent = 0;
		if (rsc_entry_hand_over(e, inbox_addr, on_sent, &sent) < 0)
			return (void *)"rsc_entry_hand_over";
		while (!sent)
			if (rsc_loop_run(loop, RSC_RUN_ONCE) < 0)
				return (void *)"rsc_loop_run";
		if (sent < 0 || rsc_scope_close_wait(s, NULL) != 0)
			return (void *)"hand-over or close";
	}
	return rsc_loop_close(loop) < 0 ? (void *)"rsc_loop_close" : NULL;
}

static int hand_overs_between_threads(void)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *inbox;
	pthread_t t[2];
	int arrived = 0, failed;
	long i;

	if (rsc_loop_new(&loop, 64, RSC_LOOP_DIRECT) < 0 ||
	    rsc_scope_open(loop, NULL, "receiver", &s) < 0 ||
	    rsc_inbox(s, on_arrival, &arrived, &inbox) < 0 ||
	    rsc_inbox_address(inbox, &inbox_addr) < 0)
		return 1;
	pthread_barrier_init(&inbox_ready, NULL, 3);
	for (i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, sender, (void *)i);
	pthread_barrier_wait(&inbox_ready);
	while (arrived < 2 * HANDOVERS)
		if (rsc_loop_run(loop, RSC_RUN_ONCE) < 0)
			break;
	failed = join_all(t, 2, "sender"); /* stopped before the inbox goes */
	failed |= arrived != 2 * HANDOVERS;
	failed |= rsc_scope_close_wait(s, NULL) != 0 || rsc_loop_direct_used(loop) != 0;
	failed |= rsc_loop_close(loop) < 0;
	pthread_barrier_destroy(&inbox_ready);
	printf("tsan_threads: 2 threads handing %d direct slots each to a third's inbox (%d arrived): %s\n",
	       HANDOVERS, arrived, failed ? "FAILED" : "ok");
	return failed;
}

/* fork(2) while other threads' loops run (ringscope(7), FORK): the child
 * makes a loop of its own, though a thread that is gone may have held a
 * process-wide lock (handles, ledger pages, the live-loop list) at the fork. */
#define FORKS 20

static int fork_while_threads_run(void)
{
	pthread_t t[THREADS];
	int failed = 0, k;
	long i;

	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)(100 + i));
	for (k = 0; k < FORKS; k++) {
		int status;
		pid_t pid = fork();

		if (pid < 0) {
			failed = 1;
			break;
		}
		if (pid == 0) {
			struct rsc_loop *loop;
			struct rsc_scope *s;
			char path[512];

			alarm(10); /* a lock left held would hang here */
			snprintf(path, sizeof(path), "%s/child-%d", dir, k);
			if (rsc_loop_new(&loop, 16, 0) < 0 || rsc_scope_open(loop, NULL, "child", &s) < 0 ||
			    rsc_open(s, AT_FDCWD, path, O_RDWR | O_CREAT, 0600, 0, NULL) < 0 ||
			    rsc_loop_run(loop, RSC_RUN_DEFAULT) < 0 || rsc_scope_close_wait(s, NULL) != 0 ||
			    rsc_loop_close(loop) < 0)
				syscall(SYS_exit_group, 2);
			/* Not _exit(): TSan would call the parent's threads, gone here, leaked. */
			syscall(SYS_exit_group, 0);
		}
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "fork %d: the child's loop failed (status 0x%x)\n", k, status);
			failed = 1;
		}
	}
	failed |= join_all(t, THREADS, "worker");
	printf("tsan_threads: %d forks while %d threads ran loops, a loop in each child: %s\n", FORKS,
	       THREADS, failed ? "FAILED" : "ok");
	return failed;
}

int main(void)
{
	char tmpl[] = "/tmp/rsc-tsan-XXXXXX";
	pthread_t t[THREADS];
	int before = rsc_audit_fd_count(), failed = 0;
	long i;

	dir = mkdtemp(tmpl);
	if (!dir)
		return 99;
	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	for (i = 0; i < THREADS; i++) {
		void *err;

		pthread_join(t[i], &err);
		if (err) {
			fprintf(stderr, "thread %ld: %s failed\n", i, (const char *)err);
			failed = 1;
		}
	}
	failed |= chains_across_threads();
	failed |= stale_handles_across_threads();
	failed |= adopt_across_threads();
	failed |= describe_while_owners_run();
	failed |= posts_while_closing();
	failed |= loops_posting_in_a_ring();
	failed |= hand_overs_between_threads();
	failed |= fork_while_threads_run();
	failed |= posts_from_threads(0);
	failed |= posts_from_threads(1);
	failed |= posts_into_shared_ring(0);
	failed |= posts_into_shared_ring(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	if (rsc_audit_fd_count() != before) {
		fprintf(stderr, "descriptors: %d before, %d after\n", before, rsc_audit_fd_count());
		failed = 1;
	}
	if (system("rm -rf /tmp/rsc-tsan-*") != 0)
		failed = 1;
	printf("tsan_threads: %d threads x %d scopes x %d files: %s\n", THREADS, ROUNDS,
	       FILES, failed ? "FAILED" : "ok");
	return failed;
}
