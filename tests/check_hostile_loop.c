/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "helpers.h"

/* Hostile tests of the loop's own promises (rsc_loop_new(3), rsc_loop_run(3)...). */

/* ---- rsc_loop_run(3): -EEXIST from a thread other than a single-issuer loop's creator -- */

struct foreign {
	struct rsc_loop *l;
	struct rsc_scope *s;
	bool own_loop;		/* the thread makes a loop of its own first */
	int own_feats, nowait, dflt, close_wait, shutdown, own_close;
	char why[256];
};

static void *foreign_thread(void *arg)
{
	struct foreign *f = arg;
	struct rsc_loop *own = NULL;

	if (f->own_loop) {
		if (rsc_loop_new(&own, 8, 0) < 0)
			return NULL;
		f->own_feats = rsc_loop_features(own);
	}
	f->nowait = rsc_loop_run(f->l, RSC_RUN_NOWAIT);
	snprintf(f->why, sizeof(f->why), "%s", rsc_last_error());
	/* Only once refused: entered from here, the waits would wait on the
	 * wrong ring (this thread's own) for good. */
	if (f->nowait == -EEXIST) {
		f->dflt = rsc_loop_run(f->l, RSC_RUN_DEFAULT);
		f->close_wait = rsc_scope_close_wait(f->s, NULL);
		f->shutdown = rsc_loop_shutdown(f->l, NULL);
	}
	if (own)
		f->own_close = rsc_loop_close(own);
	return NULL;
}

static void run_from_another_thread(struct foreign *f)
{
	pthread_t t;

	ck_assert_int_eq(pthread_create(&t, NULL, foreign_thread, f), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
}

/*
 * rsc_loop_run(3): "-EEXIST when a loop set up with RSC_FEAT_SINGLE_ISSUER is
 * run from a thread other than the one that created it". The ring's
 * descriptor is registered with its creator (RSC_FEAT_REGISTERED_RING), and
 * the registered index means nothing in another thread: the run answered
 * -EINVAL there, and in a thread with a loop of its own it entered that
 * loop's ring instead (returned 1, or waited on it for good). Refused, nothing
 * is run, closed or freed: the creator then runs the loop as if nothing
 * happened.
 */
START_TEST(single_issuer_loop_run_from_another_thread_is_eexist)
{
	struct foreign bare = { 0 }, owner = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;

	if (!(rsc_loop_features(t_loop) & RSC_FEAT_SINGLE_ISSUER)) {
		printf("SKIP single_issuer_loop_run_from_another_thread_is_eexist: kernel lacks IORING_SETUP_SINGLE_ISSUER (Linux 6.0)\n");
		return;
	}
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);

	bare.l = owner.l = t_loop;
	bare.s = owner.s = s;
	run_from_another_thread(&bare);
	ck_assert_msg(bare.nowait == -EEXIST, "run from a thread with no ring: %d (%s), not -EEXIST",
		      bare.nowait, rsc_err_name(bare.nowait));
	ck_assert_ptr_nonnull(strstr(bare.why, "single-issuer"));
	ck_assert_int_eq(bare.dflt, -EEXIST);
	ck_assert_int_eq(bare.close_wait, -EEXIST);
	ck_assert_int_eq(bare.shutdown, -EEXIST);

	owner.own_loop = true;
	run_from_another_thread(&owner);
	ck_assert_int_ge(owner.own_feats, 0);
	ck_assert_msg(owner.nowait == -EEXIST,
		      "run from a thread with a loop of its own: %d (%s), not -EEXIST",
		      owner.nowait, rsc_err_name(owner.nowait));
	ck_assert_int_eq(owner.dflt, -EEXIST);
	ck_assert_int_eq(owner.close_wait, -EEXIST);
	ck_assert_int_eq(owner.shutdown, -EEXIST);
	ck_assert_int_eq(owner.own_close, 0);

	/* Nothing was run, closed or freed over there. */
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERING);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_DEFAULT), 0);
	ck_assert_int_ge(rsc_entry_fd(e), 0);
	ck_assert(t_fd_open_to(t_path("f0")));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(!t_fd_open_to(t_path("f0")));
}
END_TEST

/* ---- rsc_loop_new(3): RSC_LOOP_POLLABLE's errors name their step ------------------------ */

/*
 * rsc_loop_new(3): "With RSC_LOOP_POLLABLE, the errors of eventfd(2) and of
 * io_uring_register_eventfd(3) too; rsc_last_error(3) names the step that
 * failed." With one descriptor left, the ring takes it and the eventfd
 * fails: the call said nothing, and rsc_last_error() still told of an older
 * failure.
 */
START_TEST(pollable_loop_without_a_descriptor_for_its_eventfd_says_so)
{
	static const char *const env[] = { "RINGSCOPE_AUDIT", "RINGSCOPE_FAULT", "RINGSCOPE_TRACE" };
	char *saved[3];
	struct rlimit old, low;
	struct rsc_loop *l = (struct rsc_loop *)&l;
	int fillers[64], n = 0, before, ret;
	unsigned i;

	if (t_under_valgrind()) {
		printf("SKIP pollable_loop_without_a_descriptor_for_its_eventfd_says_so: under valgrind, RLIMIT_NOFILE is not enforced on io_uring\n");
		return;
	}
	/* Nothing but the ring and the eventfd may want a descriptor. */
	for (i = 0; i < 3; i++) {
		saved[i] = getenv(env[i]) ? strdup(getenv(env[i])) : NULL;
		ck_assert_int_eq(unsetenv(env[i]), 0);
	}
	before = t_fd_count();
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)before + 16;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 64 && (fillers[n] = dup(0)) >= 0)
		n++;
	ck_assert_int_lt(n, 64);
	ck_assert_int_gt(n, 0);
	close(fillers[--n]); /* one left: the ring's */
	(void)rsc_loop_run(NULL, RSC_RUN_DEFAULT); /* an older failure's sentence */
	ret = rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE);
	while (n > 0)
		close(fillers[--n]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	for (i = 0; i < 3; i++) {
		if (saved[i])
			ck_assert_int_eq(setenv(env[i], saved[i], 1), 0);
		free(saved[i]);
	}
	ck_assert_int_eq(ret, -EMFILE);
	ck_assert_ptr_null(l);
	ck_assert_msg(strstr(rsc_last_error(), "eventfd") != NULL,
		      "rsc_last_error() after a pollable loop's eventfd failed: \"%s\"",
		      rsc_last_error());
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ---- rsc_adopt(3), ringscope_audit(7): the trace file is the runtime's own descriptor --- */

/* The descriptor whose /proc/self/fd target is @path, or -1. */
static int fd_to(const char *path)
{
	char link[300], target[512];
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	int fd = -1;
	ssize_t n;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			if (!strcmp(target, path) && atoi(de->d_name) != dirfd(d))
				fd = atoi(de->d_name);
		}
	}
	closedir(d);
	return fd;
}

/*
 * rsc_adopt(3): -EEXIST for "one of the runtime's own descriptors" (DESIGN 7:
 * one owner at every moment). The trace file of rsc_loop_trace_file(3) was
 * adopted: the entry's release closed it under the trace, the number went to
 * the next file opened, and the trace's writes landed in that file. And under
 * the full audit a trace opened inside a scope was reported leaked when the
 * scope unwound, as if it were the program's.
 */
START_TEST(trace_file_is_the_runtimes_own_descriptor)
{
	struct rsc_scope *s;
	struct rsc_entry *e = NULL;
	int fd, i;

	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("trace.json")), 0);
	fd = fd_to(t_path("trace.json"));
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, fd, 0, &e), -EEXIST);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(fd_to(t_path("trace.json")), fd); /* still the trace's */

	/* Opened inside a scope under the full audit: no leak of the scope's. */
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &s), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("trace2.json")), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	t_run();
	for (i = 0; i < rsc_audit_count(t_loop); i++)
		ck_assert_msg(!strstr(rsc_finding_target(rsc_audit_finding(t_loop, i)), "trace2.json"),
			      "the loop's own trace file reported as leaked by scope 'a'");
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	ck_assert_int_lt(fd_to(t_path("trace2.json")), 0);
}
END_TEST

/* ---- rsc_loop_counter(3): what a new loop has counted already ------------------------- */

/* Counter @i of a loop just made, as rsc_loop_counter(3) says it is. */
static void assert_fresh_counters(struct rsc_loop *l, bool eventfd_poll_submitted, int faults)
{
	int i;

	for (i = 0; i < RSC_CTR_COUNT; i++) {
		long long want = 0, got = rsc_loop_counter(l, i);

		if (i == RSC_CTR_POOL_ALLOCS) {
			ck_assert_int_gt(got, 0);
			continue;
		}
		if (i == RSC_CTR_ENTER_CALLS || i == RSC_CTR_SQES)
			want = eventfd_poll_submitted;
		if (i == RSC_CTR_FAULTS_INJECTED)
			want = faults;
		ck_assert_msg(got == want, "a new loop's %s is %lld, not %lld", rsc_counter_name(i),
			      got, want);
	}
}

/*
 * rsc_loop_counter(3): only RSC_CTR_POOL_ALLOCS was said to be above 0 when
 * rsc_loop_new returns; a pollable loop on a kernel without MSG_RING submits
 * its posts' eventfd poll there (one enter, one SQE), and a msg_ring fault
 * rule is drawn there. The page now says so; every other counter is 0.
 */
START_TEST(new_loops_count_only_what_their_creation_did)
{
	static const unsigned flags[] = { 0, RSC_LOOP_POLLABLE, RSC_LOOP_DIRECT,
					  RSC_LOOP_NO_DEFER_TASKRUN | RSC_LOOP_POLLABLE };
	char *saved = getenv("RINGSCOPE_FAULT") ? strdup(getenv("RINGSCOPE_FAULT")) : NULL;
	struct rsc_loop *l;
	unsigned i;
	int ret;

	ck_assert_int_eq(unsetenv("RINGSCOPE_FAULT"), 0);
	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		ck_assert_int_eq(rsc_loop_new(&l, 8, flags[i]), 0);
		assert_fresh_counters(l, (rsc_loop_features(l) & RSC_FEAT_POST_EVENTFD) &&
						 (flags[i] & RSC_LOOP_POLLABLE), 0);
		ck_assert_int_eq(rsc_loop_close(l), 0);
	}
	/* As on a kernel before 5.18, where posts wake the loop by an eventfd. */
	ck_assert_int_eq(setenv("RINGSCOPE_FAULT", "msg_ring:1:EOPNOTSUPP", 1), 0);
	ret = rsc_loop_new(&l, 8, 0);
	if (ret == -EOPNOTSUPP) {
		printf("SKIP new_loops_count_only_what_their_creation_did: built without fault injection\n");
	} else {
		ck_assert_int_eq(ret, 0);
		ck_assert(rsc_loop_features(l) & RSC_FEAT_POST_EVENTFD);
		assert_fresh_counters(l, false, 1);
		ck_assert_int_eq(rsc_loop_close(l), 0);
		ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE), 0);
		assert_fresh_counters(l, true, 1);
		ck_assert_int_eq(rsc_loop_close(l), 0);
	}
	ck_assert_int_eq(unsetenv("RINGSCOPE_FAULT"), 0);
	if (saved)
		ck_assert_int_eq(setenv("RINGSCOPE_FAULT", saved, 1), 0);
	free(saved);
}
END_TEST

/* The thread that makes the loop, then exits; the one after it often gets its pthread_t. */
struct reuse {
	struct rsc_loop *l;
	pthread_t creator;
	bool same_id;
	int run, shutdown;
};

static void *make_and_exit(void *arg)
{
	struct reuse *r = arg;

	r->creator = pthread_self();
	if (rsc_loop_new(&r->l, 8, 0) < 0)
		r->l = NULL;
	return NULL;
}

static void *run_as_the_next_thread(void *arg)
{
	struct reuse *r = arg;

	r->same_id = pthread_equal(pthread_self(), r->creator);
	r->run = rsc_loop_run(r->l, RSC_RUN_NOWAIT);
	r->shutdown = rsc_loop_shutdown(r->l, NULL);
	return NULL;
}

/*
 * A thread made after the creator of a single-issuer loop has exited is
 * another thread, even with the creator's pthread_t (glibc reuses it): -EEXIST
 * and nothing done (bug 110: the run went to io_uring_enter with the creator's
 * registered ring index, -EINVAL, and the shutdown began closing the loop).
 */
START_TEST(single_issuer_check_is_not_fooled_by_a_reused_pthread_t)
{
	struct reuse r = { 0 };
	pthread_t t;

	if (!(rsc_loop_features(t_loop) & RSC_FEAT_SINGLE_ISSUER)) {
		printf("SKIP single_issuer_check_is_not_fooled_by_a_reused_pthread_t: kernel lacks IORING_SETUP_SINGLE_ISSUER (Linux 6.0)\n");
		return;
	}
	ck_assert_int_eq(pthread_create(&t, NULL, make_and_exit, &r), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_ptr_nonnull(r.l);
	ck_assert_int_eq(pthread_create(&t, NULL, run_as_the_next_thread, &r), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_msg(r.run == -EEXIST, "run %d (thread id %s)", r.run, r.same_id ? "reused" : "new");
	ck_assert_int_eq(r.shutdown, -EEXIST);
	ck_assert_int_eq(rsc_loop_close(r.l), 0); /* nothing of it was started */
}
END_TEST

/*
 * rsc_loop_id(3): 1 for the first loop the process created, 2 for the next:
 * a rsc_loop_new that failed made no loop, and takes no number (bug 111: an
 * unwritable RINGSCOPE_TRACE used one up).
 */
START_TEST(failed_loop_takes_no_number)
{
	char *saved = getenv("RINGSCOPE_TRACE") ? strdup(getenv("RINGSCOPE_TRACE")) : NULL;
	struct rsc_loop *a, *b, *none = NULL;
	int id;

	ck_assert_int_eq(unsetenv("RINGSCOPE_TRACE"), 0);
	ck_assert_int_eq(rsc_loop_new(&a, 8, 0), 0);
	id = rsc_loop_id(a);
	ck_assert_int_eq(setenv("RINGSCOPE_TRACE", "/nonexistent/dir/t.json", 1), 0);
	ck_assert_int_eq(rsc_loop_new(&none, 8, 0), -ENOENT);
	ck_assert_ptr_null(none);
	ck_assert_int_eq(unsetenv("RINGSCOPE_TRACE"), 0);
	ck_assert_int_eq(rsc_loop_new(&b, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_id(b), id + 1);
	ck_assert_int_eq(rsc_loop_close(b), 0);
	ck_assert_int_eq(rsc_loop_close(a), 0);
	if (saved)
		ck_assert_int_eq(setenv("RINGSCOPE_TRACE", saved, 1), 0);
	free(saved);
}
END_TEST

Suite *make_hostile_loop_suite(void)
{
	Suite *s = suite_create("hostile_loop");
	TCase *tc = tcase_create("hostile_loop");

	t_add_fixture(tc);
	tcase_add_test(tc, single_issuer_loop_run_from_another_thread_is_eexist);
	tcase_add_test(tc, pollable_loop_without_a_descriptor_for_its_eventfd_says_so);
	tcase_add_test(tc, trace_file_is_the_runtimes_own_descriptor);
	tcase_add_test(tc, new_loops_count_only_what_their_creation_did);
	tcase_add_test(tc, single_issuer_check_is_not_fooled_by_a_reused_pthread_t);
	tcase_add_test(tc, failed_loop_takes_no_number);
	suite_add_tcase(s, tc);
	return s;
}
