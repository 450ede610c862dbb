/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "helpers.h"

/*
 * What the pages promise about threads, observed without ThreadSanitizer
 * (tests/tsan_threads.c runs the same under it): the process-wide ledger and
 * handle table used by loops on several threads at once.
 */

#define ADOPTERS 4
#define ADOPT_ROUNDS 2000

struct adopter {
	int eexist; /* adopts of a fresh number refused as someone else's */
	const char *failed;
};

/* pipe2, adopt both ends, release them: the kernel gives the numbers to the
 * next thread's pipe2 while this loop's close is still in io_uring_enter. */
static void *adopter(void *arg)
{
	struct adopter *a = arg;
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int i, j, p[2], ret;

	if (rsc_loop_new(&loop, 16, 0) < 0 || rsc_scope_open(loop, NULL, "adopt", &s) < 0) {
		a->failed = "setup";
		return NULL;
	}
	for (i = 0; i < ADOPT_ROUNDS && !a->failed; i++) {
		if (pipe2(p, O_CLOEXEC) < 0) {
			a->failed = "pipe2";
			break;
		}
		for (j = 0; j < 2; j++) {
			ret = rsc_adopt(s, p[j], 0, &e);
			if (ret == -EEXIST) {
				a->eexist++;
				close(p[j]);
			} else if (ret < 0 || rsc_entry_release_wait(e, NULL) != 0) {
				a->failed = "rsc_adopt or its release";
			}
		}
	}
	if (rsc_scope_close_wait(s, NULL) != 0 || rsc_loop_close(loop) < 0)
		a->failed = "closing";
	return NULL;
}

/* rsc_adopt(3): -EEXIST only while a live entry owns the number, until its
 * release's close has been submitted; a number the kernel just gave out again is nobody's. */
START_TEST(adopt_of_a_number_another_threads_loop_just_closed_is_not_eexist)
{
	pthread_t t[ADOPTERS];
	struct adopter a[ADOPTERS] = { 0 };
	int i, eexist = 0;

	for (i = 0; i < ADOPTERS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, adopter, &a[i]), 0);
	for (i = 0; i < ADOPTERS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_msg(!a[i].failed, "thread %d: %s", i, a[i].failed);
		eexist += a[i].eexist;
	}
	ck_assert_int_eq(eexist, 0);
}
END_TEST

struct freed_handles {
	struct rsc_scope *scope;
	struct rsc_entry *entry;
};

/* A scope with an adopted pipe end, opened and closed on a loop of another thread. */
static void *open_and_free(void *arg)
{
	struct freed_handles *h = arg;
	struct rsc_loop *loop;
	int p[2];

	if (rsc_loop_new(&loop, 8, 0) < 0 || rsc_scope_open(loop, NULL, "theirs", &h->scope) < 0 ||
	    pipe2(p, O_CLOEXEC) < 0)
		return (void *)"setup";
	close(p[1]);
	if (rsc_adopt(h->scope, p[0], 0, &h->entry) < 0 || rsc_scope_close_wait(h->scope, NULL) != 0)
		return (void *)"adopt and close";
	return rsc_loop_close(loop) < 0 ? (void *)"rsc_loop_close" : NULL;
}

/* man 7 ringscope, HANDLES: handles may be passed between threads; a freed
 * object's, from a loop that is gone too, is -ESTALE on this thread's loop. */
START_TEST(handles_of_another_threads_freed_objects_are_estale_here)
{
	struct freed_handles h = { 0 };
	struct rsc_scope *s, *u;
	pthread_t t;
	void *err;

	ck_assert_int_eq(pthread_create(&t, NULL, open_and_free, &h), 0);
	pthread_join(t, &err);
	ck_assert_msg(!err, "%s", (const char *)err);
	/* The slots of that loop serve this one now: the generation still says no. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "mine", &s), 0);
	ck_assert_int_eq(rsc_scope_close(h.scope, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_open(t_loop, h.scope, "under", &u), -ESTALE);
	ck_assert_int_eq(rsc_entry_fd(h.entry), -ESTALE);
	ck_assert_int_eq(rsc_entry_release(h.entry, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_entry_move(h.entry, s), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

struct creator {
	struct rsc_loop *loop;
	pthread_barrier_t made, closed;
};

/* Makes a loop, then stays alive (its registration stays) until told. */
static void *create_and_wait(void *arg)
{
	struct creator *c = arg;

	if (rsc_loop_new(&c->loop, 8, 0) < 0)
		c->loop = NULL;
	pthread_barrier_wait(&c->made);
	pthread_barrier_wait(&c->closed);
	return NULL;
}

/*
 * rsc_loop_close(3): a single-issuer loop closed from another thread while
 * its creator still runs "is freed and its descriptor closed"; the thread
 * that closed it keeps its own loop, whose ring is registered in the same
 * slot of its own table (RSC_FEAT_REGISTERED_RING), working.
 */
START_TEST(single_issuer_loop_closed_from_another_thread_leaves_this_threads_loop_working)
{
	struct creator c = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	pthread_t t;

	if (!(rsc_loop_features(t_loop) & RSC_FEAT_REGISTERED_RING)) {
		printf("SKIP %s: no registered ring\n", __func__);
		return;
	}
	pthread_barrier_init(&c.made, NULL, 2);
	pthread_barrier_init(&c.closed, NULL, 2);
	ck_assert_int_eq(pthread_create(&t, NULL, create_and_wait, &c), 0);
	pthread_barrier_wait(&c.made);
	ck_assert_ptr_nonnull(c.loop);
	ck_assert(rsc_loop_features(c.loop) & RSC_FEAT_REGISTERED_RING);
	/* Not its creator: nothing runs, and nothing is touched. */
	ck_assert_int_eq(rsc_loop_run(c.loop, RSC_RUN_NOWAIT), -EEXIST);
	ck_assert_int_eq(rsc_loop_close(c.loop), 0);
	/* This thread's loop still enters its ring. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "after", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f"), O_RDWR | O_CREAT, 0600, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	pthread_barrier_wait(&c.closed);
	pthread_join(t, NULL);
	pthread_barrier_destroy(&c.made);
	pthread_barrier_destroy(&c.closed);
}
END_TEST

#define OPENERS 3

struct opener {
	int id;
	long rounds, ledger_misses, second_owners;
	const char *failed;
	char path[512]; /* t_path's buffers are not the threads' to share */
	char why[200];
};

/*
 * rsc_open, wait, release without waiting (its close goes out in one enter
 * with the next open), over and over: numbers pass from one thread's loop to
 * another's through the kernel all the time. After each open has entered,
 * the ledger must name its entry, and a second adopt of its number must be
 * refused; a cell erased by another loop's let-go made both fail.
 */
static void *opener(void *arg)
{
	struct opener *o = arg;
	struct rsc_loop *loop;
	struct rsc_scope *s, *s2;
	struct rsc_entry *e, *e2;
	char buf[256];
	long until = t_now_ms() + (t_under_valgrind() ? 500 : 2500);
	int fd, ret;

	if (rsc_loop_new(&loop, 64, 0) < 0 || rsc_scope_open(loop, NULL, "a", &s) < 0 ||
	    rsc_scope_open(loop, NULL, "b", &s2) < 0) {
		o->failed = "setup";
		return NULL;
	}
	while (!o->failed && t_now_ms() < until) {
		for (int k = 0; k < 200; k++, o->rounds++) {
			if (rsc_open(s, AT_FDCWD, o->path, O_RDONLY, 0, 0, &e) < 0 ||
			    (fd = rsc_entry_wait(e)) < 0) {
				o->failed = "rsc_open";
				break;
			}
			if (rsc_audit_describe_fd(fd, buf, sizeof(buf)) == -ENOENT) {
				o->ledger_misses++;
				ret = rsc_adopt(s2, fd, 0, &e2);
				if (ret == 0) {
					o->second_owners++;
					/* Let go of the second owner without a close of its own. */
					if (rsc_entry_detach(e2) != fd)
						o->failed = "detach of the second owner";
				}
			}
			if (rsc_entry_release(e, NULL, NULL) != 0)
				o->failed = "rsc_entry_release";
		}
	}
	if (o->failed)
		return NULL;
	if ((ret = rsc_scope_close_wait(s, NULL)) != 0 || (ret = rsc_scope_close_wait(s2, NULL)) != 0 ||
	    (ret = rsc_loop_close(loop)) < 0) {
		snprintf(o->why, sizeof(o->why), "closing: %s (%s)", rsc_err_name(ret), rsc_last_error());
		o->failed = o->why;
	}
	return NULL;
}

START_TEST(numbers_passing_between_threads_loops_keep_exactly_one_owner)
{
	struct opener o[OPENERS];
	pthread_t t[OPENERS];
	long rounds = 0;
	int i;

	t_make_files(1);
	for (i = 0; i < OPENERS; i++) {
		o[i] = (struct opener){ .id = i };
		snprintf(o[i].path, sizeof(o[i].path), "%s", t_path("f0"));
		ck_assert_int_eq(pthread_create(&t[i], NULL, opener, &o[i]), 0);
	}
	for (i = 0; i < OPENERS; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	for (i = 0; i < OPENERS; i++) {
		ck_assert_msg(!o[i].failed, "thread %d: %s", i, o[i].failed);
		ck_assert_msg(o[i].ledger_misses == 0 && o[i].second_owners == 0,
			      "thread %d: %ld live entries the ledger did not name, %ld second owners",
			      i, o[i].ledger_misses, o[i].second_owners);
		rounds += o[i].rounds;
	}
	printf("numbers_passing_between_threads_loops_keep_exactly_one_owner: %ld rounds\n", rounds);
}
END_TEST

Suite *make_hostile_threads_suite(void)
{
	Suite *s = suite_create("hostile_threads");
	TCase *tc = tcase_create("hostile_threads");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, adopt_of_a_number_another_threads_loop_just_closed_is_not_eexist);
	tcase_add_test(tc, handles_of_another_threads_freed_objects_are_estale_here);
	tcase_add_test(tc, single_issuer_loop_closed_from_another_thread_leaves_this_threads_loop_working);
	tcase_add_test(tc, numbers_passing_between_threads_loops_keep_exactly_one_owner);
	suite_add_tcase(s, tc);
	return s;
}
