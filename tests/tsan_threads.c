/* SPDX-License-Identifier: MIT */
/*
 * One loop per thread, several threads at once: built with
 * -fsanitize=thread by 'make check-tsan'. Each thread opens and releases
 * scopes of files; the run fails on any data race, leak or wrong count.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
