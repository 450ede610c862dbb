/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tmgr.h"

static struct rsc_scope *open_scope(struct rsc_scope *parent, const char *name)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, parent, name, &s), 0);
	return s;
}

static void push_file(struct rsc_scope *s, const char *name)
{
	int ret = rsc_open(s, AT_FDCWD, t_path(name), O_RDONLY, 0, 0, NULL);

	ck_assert_msg(ret == 0, "rsc_open %s: %s", name, rsc_last_error());
}

static int close_scope(struct rsc_scope *s, struct rsc_error **errp)
{
	return rsc_scope_close_wait(s, errp);
}

START_TEST(manager_without_exit_is_refused)
{
	struct tmgr m = { 0 };
	struct rsc_scope *s = open_scope(NULL, "halves");
	struct rsc_entry *e = (struct rsc_entry *)&m; /* must be reset to NULL */
	long long sqes = rsc_loop_counter(t_loop, RSC_CTR_SQES);

	ck_assert_int_eq(rsc_push(s, &tmgr_no_exit, &m, &e), -EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "no exit"));
	ck_assert_int_eq(rsc_push(s, &tmgr_no_enter, &m, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "no enter"));
	ck_assert_int_eq(rsc_push(s, &tmgr_no_name, &m, NULL), -EINVAL);
	/* Refused before anything was acquired or submitted. */
	ck_assert_int_eq(m.enter_calls, 0);
	t_run();
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_SQES), sqes);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(close_scope(s, NULL), 0);
	ck_assert_int_eq(m.exit_calls, 0);
}
END_TEST

START_TEST(unwind_releases_newest_first)
{
	struct rsc_scope *s;
	char got[512];
	int before;

	t_make_files(16);
	before = t_fd_count();
	s = open_scope(NULL, "lifo");
	t_open_files(s, 0, 16);
	t_run();
	ck_assert_int_eq(t_fd_count(), before + 16);
	ck_assert(t_fd_open_to(t_dir));
	ck_assert_int_eq(close_scope(s, NULL), 0);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "lifo", got, sizeof(got)), 16);
	ck_assert_str_eq(got, "f15,f14,f13,f12,f11,f10,f9,f8,f7,f6,f5,f4,f3,f2,f1,f0");
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

START_TEST(children_unwind_before_parent_entries)
{
	struct rsc_scope *p, *a, *b;
	char got[256];

	t_make_files(6);
	p = open_scope(NULL, "parent");
	push_file(p, "f0");
	a = open_scope(p, "a");
	push_file(a, "f1");
	push_file(a, "f2");
	push_file(p, "f3");
	b = open_scope(p, "b");
	push_file(b, "f4");
	push_file(b, "f5");
	t_run();
	ck_assert_int_eq(close_scope(p, NULL), 0);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, NULL, got, sizeof(got)), 6);
	/* Newest child first, then older child, then the parent's own entries. */
	ck_assert_str_eq(got, "f5,f4,f2,f1,f3,f0");
	ck_assert_int_eq(t_events(RSC_EV_SCOPE_CLOSED, NULL, got, sizeof(got)), 3);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

START_TEST(failed_enter_unwinds_what_came_before)
{
	struct tmgr before = { .enter = TM_ENTER_OPEN };
	struct tmgr failing = { .enter = TM_ENTER_OPEN };
	const struct rsc_error *pending;
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	char got[256];

	t_make_files(3);
	before.path = t_path("f0");
	failing.path = t_path("missing");
	s = open_scope(NULL, "fails");
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &before, NULL), 0);
	push_file(s, "f1");
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &failing, NULL), 0);
	t_run();
	/* The scope unwound by itself; it waits for its close to report. */
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	pending = rsc_scope_error(s);
	ck_assert_ptr_nonnull(pending);
	ck_assert_int_eq(rsc_error_errno(pending), -ENOENT);
	ck_assert(!t_fd_open_to(t_dir));
	ck_assert_int_eq(before.exit_calls, 1);
	ck_assert_int_eq(before.pending_seen, -ENOENT);
	ck_assert_int_eq(failing.exit_calls, 0); /* it acquired nothing */
	ck_assert_int_eq(t_events(RSC_EV_ENTER_FAILED, NULL, got, sizeof(got)), 1);
	ck_assert_int_eq(close_scope(s, &err), -ENOENT);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "openat");
	ck_assert_str_eq(rsc_error_entry(err), "tmgr");
	ck_assert_str_eq(rsc_error_scope(err), "fails");
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, NULL, got, sizeof(got)), 2);
	ck_assert_str_eq(got, "f1,tmgr");
}
END_TEST

START_TEST(sync_enter_failure_pushes_nothing)
{
	struct tmgr m = { .enter = TM_ENTER_SYNC_FAIL, .sync_errno = EACCES };
	struct rsc_scope *s = open_scope(NULL, "sync");
	struct rsc_entry *e = NULL;

	t_make_files(1);
	push_file(s, "f0");
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &m, &e), -EACCES);
	ck_assert_ptr_null(e);
	t_run();
	/* Returned to the caller, not pending: the scope stays usable. */
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(close_scope(s, NULL), 0);
	ck_assert_int_eq(m.exit_calls, 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
}
END_TEST

START_TEST(failed_enter_under_emfile_releases_the_rest)
{
	struct rlimit old, low;
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	int before;

	t_make_files(8);
	before = t_fd_count();
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	/* Room for the count, the /proc scan, and three more. */
	low = old;
	low.rlim_cur = (rlim_t)before + 4;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	s = open_scope(NULL, "emfile");
	t_open_files(s, 0, 8);
	t_run();
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_int_ge(rsc_loop_counter(t_loop, RSC_CTR_ENTER_FAILED), 1);
	ck_assert_int_ge(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED), 1);
	ck_assert_int_eq(close_scope(s, &err), -EMFILE);
	ck_assert_str_eq(rsc_error_op(err), "openat");
	rsc_error_free(err);
	/* Every entry that got a descriptor gave it back, and no more. */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED),
			 rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED));
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(exhausted_descriptors_fail_cleanly_then_recover)
{
	struct rlimit old, low;
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	int fillers[64], n = 0, before, i;

	t_make_files(4);
	before = t_fd_count();
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)before + 16;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	/* Use every descriptor left: the table is at its limit. */
	while (n < 64 && (fillers[n] = dup(0)) >= 0)
		n++;
	ck_assert_int_lt(n, 64);
	ck_assert_int_eq(errno, EMFILE);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "full", &s), 0);
	t_open_files(s, 0, 4);
	t_run();
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ENTER_FAILED), 4);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EMFILE);
	ck_assert_int_eq(rsc_error_depth(err), 4); /* every EMFILE is in the chain */
	rsc_error_free(err);
	/* Descriptors free up: the same acquires now succeed. */
	while (n > 0)
		close(fillers[--n]);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "again", &s), 0);
	t_open_files(s, 0, 4);
	t_run();
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED), 4);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	for (i = 0; i < 4; i++)
		ck_assert(!t_fd_open_to(t_path("f0")));
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(exit_sees_pending_error_and_may_suppress)
{
	struct tmgr below = { .enter = TM_ENTER_NOP };
	struct tmgr suppressor = { .enter = TM_ENTER_NOP, .exit = TM_EXIT_SUPPRESS };
	struct tmgr failing = { .enter = TM_ENTER_OPEN };
	struct rsc_error *err = (struct rsc_error *)&below;
	struct rsc_scope *s = open_scope(NULL, "suppress");

	failing.path = t_path("missing");
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &below, NULL), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &suppressor, NULL), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &failing, NULL), 0);
	t_run();
	ck_assert_int_eq(close_scope(s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(suppressor.pending_seen, -ENOENT);
	/* Suppressed: the entries below see a clean unwind, as in Python. */
	ck_assert_int_eq(below.exit_calls, 1);
	ck_assert_int_eq(below.pending_seen, 0);
}
END_TEST

START_TEST(unsuppressed_error_reaches_every_exit)
{
	struct tmgr a = { .enter = TM_ENTER_NOP }, b = { .enter = TM_ENTER_NOP };
	struct tmgr failing = { .enter = TM_ENTER_OPEN };
	struct rsc_scope *s = open_scope(NULL, "through");

	failing.path = t_path("missing");
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &a, NULL), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &b, NULL), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &failing, NULL), 0);
	t_run();
	ck_assert_int_eq(close_scope(s, NULL), -ENOENT);
	ck_assert_int_eq(a.pending_seen, -ENOENT);
	ck_assert_int_eq(b.pending_seen, -ENOENT);
}
END_TEST

START_TEST(exit_error_keeps_cause)
{
	struct tmgr below = { .enter = TM_ENTER_NOP };
	struct tmgr badf = { .enter = TM_ENTER_NOP, .exit = TM_EXIT_BADF };
	struct tmgr syncfail = { .enter = TM_ENTER_NOP, .exit = TM_EXIT_SYNC_FAIL };
	struct tmgr failing = { .enter = TM_ENTER_OPEN };
	const struct rsc_error *c;
	struct rsc_error *err = NULL;
	struct rsc_scope *s = open_scope(NULL, "chain");
	char text[1024];

	failing.path = t_path("missing");
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &below, NULL), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &badf, NULL), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &syncfail, NULL), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &failing, NULL), 0);
	t_run();
	ck_assert_int_eq(close_scope(s, &err), -EBADF);
	/* Newest error first, each keeping the one it replaced. */
	ck_assert_int_eq(rsc_error_depth(err), 3);
	ck_assert_str_eq(rsc_error_op(err), "close");
	c = rsc_error_cause(err);
	ck_assert_int_eq(rsc_error_errno(c), -EIO);
	ck_assert_str_eq(rsc_error_op(c), "exit");
	c = rsc_error_cause(c);
	ck_assert_int_eq(rsc_error_errno(c), -ENOENT);
	ck_assert_ptr_null(rsc_error_cause(c));
	/* Each exit saw the error pending when it ran. */
	ck_assert_int_eq(syncfail.pending_seen, -ENOENT);
	ck_assert_int_eq(badf.pending_seen, -EIO);
	ck_assert_int_eq(below.pending_seen, -EBADF);
	ck_assert_int_gt(rsc_error_format(err, text, sizeof(text)), 0);
	ck_assert_ptr_nonnull(strstr(text, "EBADF"));
	ck_assert_ptr_nonnull(strstr(text, "EIO"));
	ck_assert_ptr_nonnull(strstr(text, "ENOENT"));
	rsc_error_free(err);
}
END_TEST

START_TEST(failing_exit_on_clean_close_is_the_result)
{
	struct tmgr badf = { .enter = TM_ENTER_NOP, .exit = TM_EXIT_BADF };
	struct rsc_error *err = NULL;
	struct rsc_scope *s = open_scope(NULL, "clean");

	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &badf, NULL), 0);
	t_run();
	ck_assert_int_eq(close_scope(s, &err), -EBADF);
	ck_assert_int_eq(badf.pending_seen, 0);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
}
END_TEST

START_TEST(ordered_release_waits_for_releases_above)
{
	struct tmgr custom = { .enter = TM_ENTER_NOP };
	struct rsc_scope *s = open_scope(NULL, "ordered");
	char got[128];

	t_make_files(5);
	push_file(s, "f0");
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &custom, NULL), 0);
	push_file(s, "f1");
	push_file(s, "f2");
	push_file(s, "f3");
	t_run();
	ck_assert_int_eq(close_scope(s, NULL), 0);
	/* The custom exit started only after all three closes above completed. */
	ck_assert_int_eq(custom.releases_before_exit, 3);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, NULL, got, sizeof(got)), 5);
	ck_assert_str_eq(got, "f3,f2,f1,tmgr,f0");
}
END_TEST

START_TEST(fsync_release_is_ordered_and_closes)
{
	struct tmgr custom = { .enter = TM_ENTER_NOP };
	struct rsc_scope *s = open_scope(NULL, "fsync");
	struct rsc_entry *e;
	char got[128];

	t_make_files(3);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &custom, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_WRONLY, 0,
				  RSC_FSYNC_ON_RELEASE, &e), 0);
	push_file(s, "f1");
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	t_run();
	ck_assert_int_eq(close_scope(s, NULL), 0);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, NULL, got, sizeof(got)), 3);
	ck_assert_str_eq(got, "f1,f0,tmgr");
	ck_assert_int_eq(custom.releases_before_exit, 2);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

START_TEST(pushes_between_turns_share_one_submit)
{
	struct rsc_scope *s = open_scope(NULL, "batch");
	long long calls;

	t_make_files(48);
	calls = rsc_loop_counter(t_loop, RSC_CTR_ENTER_CALLS);
	t_open_files(s, 0, 48);
	/* Nothing is submitted while pushing: SQEs wait for the loop's turn. */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ENTER_CALLS), calls);
	t_run();
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED), 48);
	ck_assert_int_le(rsc_loop_counter(t_loop, RSC_CTR_ENTER_CALLS) - calls, 3);
	calls = rsc_loop_counter(t_loop, RSC_CTR_ENTER_CALLS);
	ck_assert_int_eq(close_scope(s, NULL), 0);
	/* The 48 closes of one unwind went out together, not one by one. */
	ck_assert_int_le(rsc_loop_counter(t_loop, RSC_CTR_ENTER_CALLS) - calls, 3);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED), 48);
}
END_TEST

static void count_release(struct rsc_entry *e, int res, void *data)
{
	int *n = data;

	(void)e;
	ck_assert_int_eq(res, 0);
	(*n)++;
}

START_TEST(early_release_is_exactly_once)
{
	struct rsc_scope *s = open_scope(NULL, "early");
	struct rsc_entry *e;
	int fd, reused, released = 0;
	char got[64];

	t_make_files(2);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	push_file(s, "f1");
	fd = rsc_entry_wait(e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_entry_release(e, count_release, &released), 0);
	ck_assert_int_eq(released, 0); /* the callback comes from the loop */
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), -EALREADY);
	t_run();
	ck_assert_int_eq(released, 1);
	ck_assert_int_eq(rsc_entry_state(e), RSC_EXITED);
	ck_assert_int_eq(rsc_entry_fd(e), -EBADF);
	/* The number now belongs to someone else: the runtime must not touch it. */
	reused = open(t_path("f1"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(reused, fd);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), -EALREADY);
	ck_assert_int_eq(close_scope(s, NULL), 0);
	ck_assert_int_eq(fcntl(reused, F_GETFD), FD_CLOEXEC);
	close(reused);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, NULL, got, sizeof(got)), 2);
	ck_assert_str_eq(got, "f0,f1");
}
END_TEST

static void mark_called(struct rsc_scope *s, int status,
			const struct rsc_error *err, void *data)
{
	(void)s;
	ck_assert_int_eq(status, 0);
	ck_assert_ptr_null(err);
	(*(int *)data)++;
}

START_TEST(close_callback_comes_from_the_loop)
{
	struct rsc_scope *s = open_scope(NULL, "empty");
	int called = 0;

	ck_assert_int_eq(rsc_scope_close(s, mark_called, &called), 0);
	ck_assert_int_eq(called, 0);
	ck_assert_int_eq(rsc_scope_close(s, mark_called, &called), -EALREADY);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 1);
	t_run();
	ck_assert_int_eq(called, 1);
}
END_TEST

START_TEST(unwinding_scope_refuses_pushes)
{
	struct rsc_scope *s = open_scope(NULL, "busy"), *c;
	struct tmgr m = { 0 };

	t_make_files(1);
	push_file(s, "f0");
	t_run();
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, NULL), -ESHUTDOWN);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &m, NULL), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "late", &c), -ESHUTDOWN);
	ck_assert_int_eq(m.enter_calls, 0);
	t_run();
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

/* Nothing new below a scope whose unwind is coming: not a push, not a scope, at any depth. */
START_TEST(scope_below_a_closing_ancestor_refuses_new_scopes)
{
	struct rsc_scope *top = open_scope(NULL, "top"), *mid = open_scope(top, "mid"), *c;

	ck_assert_int_eq(rsc_scope_close(top, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, mid, "late", &c), -ESHUTDOWN);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "below a scope that is closing"));
	t_run();
	ck_assert_int_eq(rsc_scope_state(mid), -ESTALE);
}
END_TEST

START_TEST(failed_child_error_reaches_parent_result)
{
	struct rsc_scope *p = open_scope(NULL, "parent"), *c;
	struct tmgr watcher = { .enter = TM_ENTER_NOP };
	struct rsc_error *err = NULL;

	t_make_files(1);
	ck_assert_int_eq(rsc_push(p, &tmgr_manager, &watcher, NULL), 0);
	c = open_scope(p, "child");
	push_file(c, "f0");
	ck_assert_int_eq(rsc_open(c, AT_FDCWD, t_path("missing"), O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_state(c), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_state(p), RSC_SCOPE_OPEN);
	ck_assert(!t_fd_open_to(t_dir));
	ck_assert_int_eq(close_scope(p, &err), -ENOENT);
	ck_assert_str_eq(rsc_error_scope(err), "child");
	/* The parent's own exits saw the child's error pending. */
	ck_assert_int_eq(watcher.pending_seen, -ENOENT);
	rsc_error_free(err);
}
END_TEST

START_TEST(parent_error_flows_through_children_first)
{
	struct rsc_scope *p = open_scope(NULL, "parent"), *c;
	struct tmgr inner = { .enter = TM_ENTER_NOP };
	struct tmgr failing = { .enter = TM_ENTER_OPEN };

	failing.path = t_path("missing");
	c = open_scope(p, "child");
	ck_assert_int_eq(rsc_push(c, &tmgr_manager, &inner, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_push(p, &tmgr_manager, &failing, NULL), 0);
	t_run();
	/* Like an exception, the parent's failure unwinds the inner scope too. */
	ck_assert_int_eq(rsc_scope_state(c), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(inner.exit_calls, 1);
	ck_assert_int_eq(inner.pending_seen, -ENOENT);
	ck_assert_int_eq(rsc_scope_close(c, NULL, NULL), -EALREADY);
	ck_assert_int_eq(close_scope(p, NULL), -ENOENT);
}
END_TEST

START_TEST(failed_early_release_without_callback_is_kept)
{
	struct tmgr badf = { .enter = TM_ENTER_NOP, .exit = TM_EXIT_BADF };
	struct tmgr failing = { .enter = TM_ENTER_OPEN };
	struct rsc_scope *s = open_scope(NULL, "kept");
	struct rsc_error *err = NULL;
	struct rsc_entry *e;

	failing.path = t_path("missing");
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &badf, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	/* No callback to hear the -EBADF: the scope's result must carry it. */
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_error_errno(rsc_scope_error(s)), -EBADF);
	/* A later failure does not overwrite it: it becomes the cause. */
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &failing, NULL), 0);
	t_run();
	ck_assert_int_eq(close_scope(s, &err), -ENOENT);
	ck_assert_int_eq(rsc_error_depth(err), 2);
	ck_assert_int_eq(rsc_error_errno(rsc_error_cause(err)), -EBADF);
	rsc_error_free(err);
}
END_TEST

START_TEST(close_request_runs_nothing_inside_the_call)
{
	struct tmgr m = { .enter = TM_ENTER_NOP };
	struct rsc_scope *s = open_scope(NULL, "deferred"), *empty;
	int events;

	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &m, NULL), 0);
	empty = open_scope(NULL, "empty");
	t_run();
	events = t_rec->n;
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(empty, NULL, NULL), 0);
	/* No exit hook, no trace event from inside rsc_scope_close(). */
	ck_assert_int_eq(m.exit_calls, 0);
	ck_assert_int_eq(t_rec->n, events);
	t_run();
	ck_assert_int_eq(m.exit_calls, 1);
	ck_assert_int_eq(t_count_events(RSC_EV_SCOPE_CLOSED), 2);
}
END_TEST

START_TEST(wait_reports_released_and_closing_entries)
{
	struct rsc_scope *p = open_scope(NULL, "outer"), *c;
	struct rsc_entry *e, *inner;

	t_make_files(2);
	ck_assert_int_eq(rsc_open(p, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	t_run();
	/* Released: the number is no longer ours to hand out. */
	ck_assert_int_eq(rsc_entry_wait(e), -EBADF);
	c = open_scope(p, "inner");
	ck_assert_int_eq(rsc_open(c, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, &inner), 0);
	ck_assert_int_eq(rsc_scope_close(p, NULL, NULL), 0);
	/* An enclosing close could free the entry during the wait. */
	ck_assert_int_eq(rsc_entry_wait(inner), -ESHUTDOWN);
	t_run();
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

START_TEST(failed_enter_is_traced_before_the_unwind_it_starts)
{
	struct rsc_scope *s = open_scope(NULL, "order");
	int i, failed = -1, closed = -1;

	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("missing"), O_RDONLY, 0, 0, NULL), 0);
	t_run();
	for (i = 0; i < t_rec->n; i++) {
		if (t_rec->ev[i].ev == RSC_EV_ENTER_FAILED)
			failed = i;
		if (t_rec->ev[i].ev == RSC_EV_SCOPE_CLOSED)
			closed = i;
	}
	ck_assert_int_ge(failed, 0);
	ck_assert_int_gt(closed, failed);
	ck_assert_int_eq(close_scope(s, NULL), -ENOENT);
}
END_TEST

struct deep_run {
	int depth, status, released, failed_at;
};

/* On a thread with a small stack: one recursion per level would overflow it. */
static void *unwind_deep_tree(void *arg)
{
	struct deep_run *r = arg;
	struct rsc_scope *top, *s, *child;
	struct rsc_loop *l;
	int i;

	r->failed_at = -1;
	if (rsc_loop_new(&l, 64, 0) < 0 || rsc_scope_open(l, NULL, "top", &top) < 0)
		return NULL;
	s = top;
	for (i = 0; i < r->depth; i++) {
		if (rsc_scope_open(l, s, "deep", &child) < 0) {
			r->failed_at = i;
			break;
		}
		s = child;
	}
	/* The innermost holds a deferred exit: it runs first, then all unwind. */
	if (rsc_defer(s, NULL, NULL, NULL) != -EINVAL)
		r->failed_at = -2;
	r->status = rsc_scope_close_wait(top, NULL);
	r->released = (int)rsc_loop_counter(l, RSC_CTR_RELEASED);
	if (rsc_loop_close(l) < 0)
		r->failed_at = -3;
	return NULL;
}

START_TEST(deeply_nested_scopes_unwind_without_recursion)
{
	struct deep_run r = { .depth = 100000 };
	pthread_attr_t attr;
	pthread_t t;

	/* memcheck is ~50x slower: the shape matters here, not the size. */
	if (t_under_valgrind())
		r.depth = 5000;
	ck_assert_int_eq(pthread_attr_init(&attr), 0);
	ck_assert_int_eq(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
	ck_assert_int_eq(pthread_create(&t, &attr, unwind_deep_tree, &r), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&attr);
	ck_assert_int_eq(r.failed_at, -1);
	ck_assert_int_eq(r.status, 0);
}
END_TEST

Suite *make_scope_suite(void)
{
	Suite *s = suite_create("scope");
	TCase *tc = tcase_create("semantics");

	t_add_fixture(tc);
	tcase_add_test(tc, manager_without_exit_is_refused);
	tcase_add_test(tc, unwind_releases_newest_first);
	tcase_add_test(tc, children_unwind_before_parent_entries);
	tcase_add_test(tc, failed_enter_unwinds_what_came_before);
	tcase_add_test(tc, sync_enter_failure_pushes_nothing);
	/* valgrind emulates RLIMIT_NOFILE in user space; io_uring sees the real one. */
	if (t_under_valgrind()) {
		printf("SKIP failed_enter_under_emfile_releases_the_rest: under valgrind, RLIMIT_NOFILE is not enforced on io_uring\n");
		printf("SKIP exhausted_descriptors_fail_cleanly_then_recover: under valgrind, RLIMIT_NOFILE is not enforced on io_uring\n");
	} else {
		tcase_add_test(tc, failed_enter_under_emfile_releases_the_rest);
		tcase_add_test(tc, exhausted_descriptors_fail_cleanly_then_recover);
	}
	tcase_add_test(tc, exit_sees_pending_error_and_may_suppress);
	tcase_add_test(tc, unsuppressed_error_reaches_every_exit);
	tcase_add_test(tc, exit_error_keeps_cause);
	tcase_add_test(tc, failing_exit_on_clean_close_is_the_result);
	tcase_add_test(tc, ordered_release_waits_for_releases_above);
	tcase_add_test(tc, fsync_release_is_ordered_and_closes);
	tcase_add_test(tc, pushes_between_turns_share_one_submit);
	tcase_add_test(tc, early_release_is_exactly_once);
	tcase_add_test(tc, close_callback_comes_from_the_loop);
	tcase_add_test(tc, unwinding_scope_refuses_pushes);
	tcase_add_test(tc, scope_below_a_closing_ancestor_refuses_new_scopes);
	tcase_add_test(tc, failed_child_error_reaches_parent_result);
	tcase_add_test(tc, parent_error_flows_through_children_first);
	tcase_add_test(tc, deeply_nested_scopes_unwind_without_recursion);
	tcase_add_test(tc, failed_early_release_without_callback_is_kept);
	tcase_add_test(tc, close_request_runs_nothing_inside_the_call);
	tcase_add_test(tc, wait_reports_released_and_closing_entries);
	tcase_add_test(tc, failed_enter_is_traced_before_the_unwind_it_starts);
	suite_add_tcase(s, tc);
	return s;
}
