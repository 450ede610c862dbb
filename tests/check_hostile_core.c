/* SPDX-License-Identifier: MIT */
/*
 * Hostile acceptance probes of the core: custom managers (both halves, the
 * pending error, suppression, the error chain, retried exits, LIFO and
 * ordered releases), nested scopes, early release, the blocking helpers,
 * shutdown with work in flight, the audit, error text, bad handles, direct
 * descriptors and a flood of opens on a small ring; each checked against
 * DESIGN.md sections 2, 3 and 7 and the man pages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

#define RSC__TEST_OP_PIPE 62 /* IORING_OP_PIPE, Linux 6.16 */

static struct rsc_loop *loop_dummy;

/* ------------------------------------------------------ a recording manager */

/* What each hook of one instance does, and what it saw. */
enum rm_enter { RM_ENTER_NOP = 0, RM_ENTER_OPEN, RM_ENTER_READ, RM_ENTER_FAIL };
enum rm_exit {
	RM_EXIT_CLOSE = 0, /* close the acquired fd, or a NOP */
	RM_EXIT_BADF,	   /* close(-1): the CQE raises -EBADF */
	RM_EXIT_RETURN,	   /* return @ret without an SQE */
	RM_EXIT_SUPPRESS,  /* close (or NOP), and suppress */
	RM_EXIT_SUPPRESS_BADF, /* close(-1) and suppress: the raise wins */
};

struct rm {
	const char *name;
	enum rm_enter enter;
	enum rm_exit exit;
	const char *path;  /* RM_ENTER_OPEN */
	int rfd;	   /* RM_ENTER_READ: read one byte of it */
	char buf[4];
	int ret;	   /* RM_EXIT_RETURN; RM_ENTER_FAIL's errno */
	int again;	   /* exits that return -EAGAIN first */
	int enter_calls, exit_calls;
	int pending;	   /* -errno pending at the last exit, 0 if none */
	char pending_op[32];
	int above_exited;  /* entries pushed after it that were EXITED at its exit */
	struct rsc_entry *self;
};

/* The exit order of every rm, by name. */
static char rm_order[1024];
static struct rm *rm_all[64];
static int rm_n;

static int rm_enter_fn(struct rsc_entry *e, void *arg)
{
	struct rm *m = arg;
	struct io_uring_sqe *sqe;
	int ret;

	m->enter_calls++;
	switch (m->enter) {
	case RM_ENTER_FAIL:
		return m->ret;
	case RM_ENTER_OPEN:
	case RM_ENTER_READ:
		ret = rsc_entry_get_sqes(e, 1, &sqe);
		if (ret < 0)
			return ret;
		if (m->enter == RM_ENTER_OPEN)
			io_uring_prep_openat(sqe, AT_FDCWD, m->path, O_RDONLY | O_CLOEXEC, 0);
		else
			io_uring_prep_read(sqe, m->rfd, m->buf, 1, 0);
		return 0;
	default:
		return 0;
	}
}

static int rm_exit_fn(struct rsc_entry *e, const struct rsc_error *pending,
		      void *arg)
{
	struct rm *m = arg;
	struct io_uring_sqe *sqe;
	int ret, i, me = -1;

	m->exit_calls++;
	if (m->again > 0) {
		m->again--;
		return -EAGAIN;
	}
	m->pending = pending ? rsc_error_errno(pending) : 0;
	snprintf(m->pending_op, sizeof(m->pending_op), "%s",
		 pending ? rsc_error_op(pending) : "");
	snprintf(rm_order + strlen(rm_order), sizeof(rm_order) - strlen(rm_order),
		 "%s%s", rm_order[0] ? "," : "", m->name);
	for (i = 0; i < rm_n; i++)
		if (rm_all[i] == m)
			me = i;
	m->above_exited = 0;
	for (i = me + 1; me >= 0 && i < rm_n; i++)
		if (rm_all[i]->self && rsc_entry_state(rm_all[i]->self) == RSC_EXITED)
			m->above_exited++;
	switch (m->exit) {
	case RM_EXIT_RETURN:
		return m->ret;
	case RM_EXIT_BADF:
	case RM_EXIT_SUPPRESS_BADF:
		ret = rsc_entry_get_sqes(e, 1, &sqe);
		if (ret < 0)
			return ret;
		io_uring_prep_close(sqe, -1);
		return m->exit == RM_EXIT_SUPPRESS_BADF ? RSC_EXIT_SUPPRESS : 0;
	default:
		ret = rsc_entry_get_sqes(e, 1, &sqe);
		if (ret < 0)
			return ret;
		if (m->enter == RM_ENTER_OPEN)
			io_uring_prep_close(sqe, rsc_entry_fd(e));
		else
			io_uring_prep_nop(sqe);
		return m->exit == RM_EXIT_SUPPRESS ? RSC_EXIT_SUPPRESS : 0;
	}
}

static const struct rsc_manager rm_ordered = {
	sizeof(struct rsc_manager), 0, "rm", rm_enter_fn, rm_exit_fn
};
static const struct rsc_manager rm_unordered = {
	sizeof(struct rsc_manager), RSC_MANAGER_UNORDERED, "rmu", rm_enter_fn, rm_exit_fn
};

static void rm_reset(void)
{
	rm_order[0] = '\0';
	rm_n = 0;
}

static struct rsc_entry *rm_push(struct rsc_scope *s, struct rm *m,
				 const struct rsc_manager *mgr)
{
	int ret = rsc_push(s, mgr, m, &m->self);

	ck_assert_msg(ret == 0, "rsc_push %s: %s", m->name, rsc_last_error());
	ck_assert_int_lt(rm_n, 64);
	rm_all[rm_n++] = m;
	return m->self;
}

static struct rsc_scope *open_scope(struct rsc_scope *parent, const char *name)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, parent, name, &s), 0);
	return s;
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* ------------------------------------------------------------ both halves */

static int never_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	++*(int *)arg;
	return 0;
}

START_TEST(push_checks_the_whole_manager_before_any_enter)
{
	struct rsc_manager bad = { sizeof(struct rsc_manager), 0, "bad", never_enter, NULL };
	struct rsc_scope *s = open_scope(NULL, "halves");
	struct rsc_entry *e;
	int calls = 0;

	e = (struct rsc_entry *)&calls;
	ck_assert_int_eq(rsc_push(s, &bad, &calls, &e), -EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "exit"));
	bad.exit = (rsc_exit_fn)(void (*)(void))never_enter; /* any non-NULL */
	bad.size = 0;
	ck_assert_int_eq(rsc_push(s, &bad, &calls, &e), -EINVAL);
	bad.size = 4;
	ck_assert_int_eq(rsc_push(s, &bad, &calls, &e), -EINVAL);
	bad.size = sizeof(struct rsc_manager);
	bad.flags = 1U << 7;
	ck_assert_int_eq(rsc_push(s, &bad, &calls, &e), -EINVAL);
	bad.flags = 0;
	bad.name = "";
	ck_assert_int_eq(rsc_push(s, &bad, &calls, &e), -EINVAL);
	bad.name = "bad";
	bad.enter = NULL;
	ck_assert_int_eq(rsc_push(s, &bad, &calls, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "enter"));
	ck_assert_int_eq(calls, 0);
	ck_assert_int_eq(rsc_push(s, NULL, &calls, &e), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(calls, 0);
}
END_TEST

/* --------------------------------------------------- the pending error */

START_TEST(error_chain_keeps_every_error_newest_first)
{
	struct rm a = { .name = "a" }, b = { .name = "b", .exit = RM_EXIT_BADF },
		  c = { .name = "c", .exit = RM_EXIT_RETURN, .ret = -EIO },
		  d = { .name = "d" };
	struct rsc_scope *s = open_scope(NULL, "chain");
	const struct rsc_error *x;
	struct rsc_error *err = NULL;
	int status;

	rm_reset();
	rm_push(s, &a, &rm_ordered);
	rm_push(s, &b, &rm_ordered);
	rm_push(s, &c, &rm_ordered);
	rm_push(s, &d, &rm_unordered);
	t_run();
	ck_assert_int_eq(rsc_scope_fail(s, -ECONNRESET, "body"), 0);
	status = rsc_scope_close_wait(s, &err);
	ck_assert_str_eq(rm_order, "d,c,b,a");
	/* Each exit saw the error raised just above it. */
	ck_assert_int_eq(d.pending, -ECONNRESET);
	ck_assert_str_eq(d.pending_op, "body");
	ck_assert_int_eq(c.pending, -ECONNRESET);
	ck_assert_int_eq(b.pending, -EIO);
	ck_assert_str_eq(b.pending_op, "exit");
	ck_assert_int_eq(a.pending, -EBADF);
	ck_assert_str_eq(a.pending_op, "close");
	/* The result: the newest, then what it replaced, down to the body's. */
	ck_assert_int_eq(status, -EBADF);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_depth(err), 3);
	x = err;
	ck_assert_int_eq(rsc_error_errno(x), -EBADF);
	ck_assert_str_eq(rsc_error_op(x), "close");
	ck_assert_str_eq(rsc_error_entry(x), "rm");
	ck_assert_str_eq(rsc_error_scope(x), "chain");
	x = rsc_error_cause(x);
	ck_assert_int_eq(rsc_error_errno(x), -EIO);
	ck_assert_str_eq(rsc_error_op(x), "exit");
	x = rsc_error_cause(x);
	ck_assert_int_eq(rsc_error_errno(x), -ECONNRESET);
	ck_assert_str_eq(rsc_error_op(x), "body");
	ck_assert_ptr_null(rsc_error_cause(x));
	rsc_error_free(err);
	ck_assert_int_eq(a.exit_calls + b.exit_calls + c.exit_calls + d.exit_calls, 4);
}
END_TEST

START_TEST(suppression_clears_the_error_for_those_below_but_a_raise_wins)
{
	struct rm a = { .name = "a" }, b = { .name = "b", .exit = RM_EXIT_SUPPRESS },
		  c = { .name = "c" };
	struct rm p = { .name = "p" }, q = { .name = "q", .exit = RM_EXIT_SUPPRESS_BADF };
	struct rsc_scope *s = open_scope(NULL, "sup"), *t;
	struct rsc_error *err = (struct rsc_error *)1;

	rm_reset();
	rm_push(s, &a, &rm_ordered);
	rm_push(s, &b, &rm_ordered);
	rm_push(s, &c, &rm_unordered);
	t_run();
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(c.pending, -EPIPE);
	ck_assert_int_eq(b.pending, -EPIPE);
	ck_assert_int_eq(a.pending, 0);

	/* Suppressing while raising: the raise is the error, caused by the pending one. */
	t = open_scope(NULL, "raise");
	rm_push(t, &p, &rm_ordered);
	rm_push(t, &q, &rm_ordered);
	t_run();
	ck_assert_int_eq(rsc_scope_fail(t, -EPIPE, "body"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(t, &err), -EBADF);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_depth(err), 2);
	ck_assert_int_eq(rsc_error_errno(rsc_error_cause(err)), -EPIPE);
	ck_assert_int_eq(p.pending, -EBADF);
	rsc_error_free(err);
}
END_TEST

START_TEST(failed_custom_enter_is_never_exited_and_those_before_see_it)
{
	struct rm a = { .name = "a" }, b = { .name = "b", .enter = RM_ENTER_OPEN },
		  c = { .name = "c", .enter = RM_ENTER_OPEN }, d = { .name = "d" };
	struct rsc_scope *s = open_scope(NULL, "fail");
	struct rsc_error *err = NULL;
	int before, state = -1;

	t_make_files(1);
	before = t_fd_count();
	b.path = t_path("f0");
	c.path = t_path("missing");
	rm_reset();
	rm_push(s, &a, &rm_ordered);
	rm_push(s, &b, &rm_unordered);
	rm_push(s, &c, &rm_ordered);
	/* Pushed in the same turn: entering when c's failure arrives. */
	rm_push(s, &d, &rm_ordered);
	t_run();
	ck_assert_int_eq(rsc_entry_state(c.self), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_fd(c.self), -ENOENT);
	ck_assert_int_eq(c.exit_calls, 0);
	state = rsc_scope_state(s);
	ck_assert_int_eq(state, RSC_SCOPE_UNWOUND);
	/* d entered (its NOP acquire raced nothing), so it is released too. */
	ck_assert_str_eq(rm_order, "d,b,a");
	ck_assert_int_eq(b.pending, -ENOENT);
	ck_assert_str_eq(b.pending_op, "openat");
	ck_assert_int_eq(a.pending, -ENOENT);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	ck_assert_str_eq(rsc_error_entry(err), "rm");
	ck_assert_ptr_nonnull(strstr(rsc_error_detail(err), "") );
	rsc_error_free(err);
	ck_assert_int_eq(c.exit_calls, 0);
	ck_assert_int_eq(a.exit_calls + b.exit_calls + d.exit_calls, 3);
}
END_TEST

/* ----------------------------------------------------- LIFO and ordering */

START_TEST(ordered_exit_starts_after_every_release_above_it)
{
	struct rm m[8];
	struct rsc_scope *s = open_scope(NULL, "order");
	char name[8][4], got[256];
	int i;

	rm_reset();
	memset(m, 0, sizeof(m));
	for (i = 0; i < 8; i++) {
		snprintf(name[i], sizeof(name[i]), "m%d", i);
		m[i].name = name[i];
		m[i].enter = RM_ENTER_OPEN;
		m[i].path = "/dev/null";
		/* Ordered ones at 2 and 5, the rest unordered plain closes. */
		rm_push(s, &m[i], (i == 2 || i == 5) ? &rm_ordered : &rm_unordered);
	}
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_str_eq(rm_order, "m7,m6,m5,m4,m3,m2,m1,m0");
	/* An ordered exit starts once everything above it has completed. */
	ck_assert_int_eq(m[5].above_exited, 2);
	ck_assert_int_eq(m[2].above_exited, 5);
	/* Release callbacks report LIFO whatever order the CQEs came in. */
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "order", got, sizeof(got)), 8);
	ck_assert_str_eq(got, "rmu,rmu,rm,rmu,rmu,rm,rmu,rmu");
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(m[i].exit_calls, 1);
}
END_TEST

/* ----------------------------------------------------------- retried exits */

START_TEST(exit_returning_eagain_or_ebusy_is_called_again_never_dropped)
{
	struct rm a = { .name = "a", .enter = RM_ENTER_OPEN, .path = "/dev/null", .again = 3 },
		  b = { .name = "b", .enter = RM_ENTER_OPEN, .path = "/dev/null",
			.exit = RM_EXIT_RETURN, .ret = -EBUSY };
	struct rsc_scope *s = open_scope(NULL, "again");
	int fd_a, before;

	rm_reset();
	before = t_fd_count();
	rm_push(s, &a, &rm_ordered);
	t_run();
	fd_a = rsc_entry_fd(a.self);
	ck_assert_int_ge(fd_a, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(a.exit_calls, 4);
	ck_assert_str_eq(rm_order, "a");
	ck_assert(!fd_open(fd_a) || t_fd_count() == before);
	ck_assert_int_eq(t_fd_count(), before);

	/* -EBUSY forever: after the bounded retries the release is settled as
	 * an error, never silently dropped. */
	{
		struct rsc_error *err = NULL;
		int fd;

		s = open_scope(NULL, "busy");
		rm_push(s, &b, &rm_ordered);
		t_run();
		fd = rsc_entry_fd(b.self);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EBUSY);
		ck_assert_ptr_nonnull(err);
		ck_assert_str_eq(rsc_error_op(err), "exit");
		ck_assert_int_gt(b.exit_calls, 1);
		rsc_error_free(err);
		close(fd); /* the exit never closed it: the caller's test does */
	}
}
END_TEST

/* ---------------------------------------------------------- nested scopes */

START_TEST(nested_children_unwind_newest_first_and_their_errors_reach_the_parent)
{
	struct rm p0 = { .name = "p0" }, p1 = { .name = "p1" },
		  a0 = { .name = "a0" }, b0 = { .name = "b0", .exit = RM_EXIT_BADF },
		  g0 = { .name = "g0" };
	struct rsc_scope *p = open_scope(NULL, "parent"), *a, *b, *g;
	struct rsc_error *err = NULL;

	rm_reset();
	rm_push(p, &p0, &rm_ordered);
	a = open_scope(p, "a");
	rm_push(a, &a0, &rm_ordered);
	rm_push(p, &p1, &rm_unordered);
	b = open_scope(p, "b");
	rm_push(b, &b0, &rm_ordered);
	g = open_scope(b, "g");
	rm_push(g, &g0, &rm_unordered);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(p, &err), -EBADF);
	ck_assert_str_eq(rm_order, "g0,b0,a0,p1,p0");
	/* b0's error is pending for everything unwound after it. */
	ck_assert_int_eq(g0.pending, 0);
	ck_assert_int_eq(a0.pending, -EBADF);
	ck_assert_int_eq(p1.pending, -EBADF);
	ck_assert_int_eq(p0.pending, -EBADF);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_scope(err), "b");
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
	/* Children were freed with the parent. */
	ck_assert_int_eq(rsc_scope_state(a), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(g), -ESTALE);
}
END_TEST

/* ---------------------------------------------------------- early release */

static void count_cb(struct rsc_entry *e, int res, void *data)
{
	int *r = data;

	(void)e;
	r[0]++;
	r[1] = res;
}

START_TEST(early_release_leaves_the_unwind_and_is_exactly_once)
{
	struct rm a = { .name = "a", .enter = RM_ENTER_OPEN, .path = "/dev/null" },
		  b = { .name = "b", .enter = RM_ENTER_OPEN, .path = "/dev/null" },
		  c = { .name = "c", .enter = RM_ENTER_OPEN, .path = "/dev/null" };
	struct rsc_scope *s = open_scope(NULL, "early");
	int res[2] = { 0, 1 }, fdb, dup_fd;

	rm_reset();
	rm_push(s, &a, &rm_ordered);
	rm_push(s, &b, &rm_ordered);
	rm_push(s, &c, &rm_ordered);
	t_run();
	fdb = rsc_entry_fd(b.self);
	ck_assert_int_ge(fdb, 0);
	ck_assert_int_eq(rsc_entry_release(b.self, count_cb, res), 0);
	/* Not released inside the call by the callback. */
	ck_assert_int_eq(res[0], 0);
	ck_assert_int_eq(rsc_entry_release(b.self, count_cb, res), -EALREADY);
	t_run();
	ck_assert_int_eq(res[0], 1);
	ck_assert_int_eq(res[1], 0);
	ck_assert_int_eq(b.exit_calls, 1);
	ck_assert_int_eq(rsc_entry_state(b.self), RSC_EXITED);
	ck_assert_int_eq(rsc_entry_fd(b.self), -EBADF);
	/* Its number is reused by someone else: a second release must not touch it. */
	dup_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(dup_fd, fdb);
	ck_assert_int_eq(rsc_entry_release(b.self, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_entry_release_wait(b.self, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_str_eq(rm_order, "b,c,a");
	ck_assert_int_eq(b.exit_calls, 1);
	ck_assert(fd_open(dup_fd));
	close(dup_fd);
	ck_assert_int_eq(rsc_entry_release(b.self, NULL, NULL), -ESTALE);
}
END_TEST

/* --------------------------------------------------- cancel-safe acquire */

START_TEST(custom_acquire_that_wins_its_cancel_is_exited_once)
{
	struct rm a = { .name = "a", .enter = RM_ENTER_READ },
		  b = { .name = "b", .enter = RM_ENTER_READ };
	struct rsc_scope *s;
	int p[2], q[2], done[2] = { 0, 0 };

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(q, O_CLOEXEC), 0);
	rm_reset();
	/* Cancelled for real: nothing acquired, its exit never runs. */
	a.rfd = p[0];
	s = open_scope(NULL, "cancelled");
	rm_push(s, &a, &rm_ordered);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_entry_state(a.self), RSC_ENTERING);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(a.exit_calls, 0);

	/* The cancel is lost: the read completes later with a value, and the
	 * runtime must release it with the manager's own exit, exactly once. */
	ck_assert_int_eq(rsc_fault_set(t_loop, "cancel:1:EALREADY"), 0);
	b.rfd = q[0];
	s = open_scope(NULL, "late");
	rm_push(s, &b, &rm_ordered);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWINDING);
	ck_assert_int_eq(write(q[1], "x", 1), 1);
	t_run();
	ck_assert_int_eq(b.exit_calls, 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_LATE_ACQUIRES), 1);
	(void)done;
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}
END_TEST

/* ------------------------------------------------------ blocking helpers */

static void close_wait_in_cb(struct rsc_entry *e, int res, void *data)
{
	int *r = data;

	(void)res;
	r[0] = rsc_entry_wait(e);
	r[1] = rsc_scope_close_wait(rsc_entry_scope(e), NULL);
	r[2] = rsc_loop_run(t_loop, RSC_RUN_NOWAIT);
}

START_TEST(blocking_helpers_return_results_and_refuse_reentry)
{
	struct rsc_scope *s = open_scope(NULL, "wait"), *c;
	struct rsc_entry *ok, *bad, *e;
	int r[3] = { 1, 1, 1 }, fd;

	t_make_files(1);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &ok), 0);
	ck_assert_int_eq(rsc_entry_fd(ok), -EAGAIN);
	fd = rsc_entry_wait(ok);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_entry_wait(ok), fd);
	ck_assert_int_eq(rsc_entry_on_enter(ok, NULL, NULL), -EALREADY);
	/* From inside a callback the helpers would run the loop: refused. */
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, close_wait_in_cb, r), 0);
	t_run();
	ck_assert_int_eq(r[0], -EDEADLK);
	ck_assert_int_eq(r[1], -EDEADLK);
	ck_assert_int_eq(r[2], -EDEADLK);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	/* A failing acquire: its errno, and the scope unwinds. */
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("nope"), O_RDONLY, 0, 0, &bad), 0);
	ck_assert_int_eq(rsc_entry_wait(bad), -ENOENT);
	ck_assert_int_ne(rsc_scope_state(s), RSC_SCOPE_OPEN);
	/* Released by that unwind once the loop has turned: -EBADF, not its old number. */
	t_run();
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_entry_wait(ok), -EBADF);
	ck_assert_int_eq(rsc_entry_fd(ok), -EBADF);
	/* A child whose parent is being closed: waiting could free it. */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ENOENT);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ESTALE);
	ck_assert_int_eq(rsc_entry_wait(ok), -ESTALE);
	s = open_scope(NULL, "p");
	c = open_scope(s, "c");
	ck_assert_int_eq(rsc_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_wait(e), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EALREADY);
	/* Once the parent's unwind has started, it owns the child's close. */
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_scope_close_wait(c, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close(c, NULL, NULL), -EALREADY);
	t_run();
	ck_assert_int_eq(rsc_scope_state(s), -ESTALE);
}
END_TEST

/* ------------------------------------------------ shutdown with work in flight */

START_TEST(loop_close_refuses_and_shutdown_releases_work_in_flight)
{
	struct rsc_loop *loop;
	struct rsc_scope *a, *b, *c;
	struct rsc_error *err = NULL;
	struct rm r = { .name = "r", .enter = RM_ENTER_READ },
		  x = { .name = "x", .enter = RM_ENTER_OPEN, .path = "/dev/null" };
	int p[2], before, ret;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	before = t_fd_count();
	ck_assert_int_eq(rsc_loop_new(&loop, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(loop, a, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "c", &c), 0);
	r.rfd = p[0];
	rm_reset();
	ck_assert_int_eq(rsc_push(b, &rm_ordered, &r, &r.self), 0);
	ck_assert_int_eq(rsc_push(c, &rm_ordered, &x, &x.self), 0);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL), 0);
	ck_assert_int_eq(rsc_loop_run(loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_loop_close(loop), -EBUSY);
	ck_assert_int_eq(rsc_scope_state(a), RSC_SCOPE_OPEN);
	ret = rsc_loop_shutdown(loop, &err);
	ck_assert_msg(ret == 0, "shutdown: %d %s", ret, rsc_last_error());
	ck_assert_ptr_null(err);
	/* The read was cancelled: nothing acquired, no exit; x was released. */
	ck_assert_int_eq(r.exit_calls, 0);
	ck_assert_int_eq(x.exit_calls, 1);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_scope_state(a), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(c), -ESTALE);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* ------------------------------------------------------------- the audit */

START_TEST(released_audit_checks_a_custom_exits_own_close)
{
	struct rm a = { .name = "a", .enter = RM_ENTER_OPEN, .path = "/dev/null" };
	struct rsc_scope *s = open_scope(NULL, "custom");
	const struct rsc_finding *f;
	int fd, other;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	rm_reset();
	rm_push(s, &a, &rm_ordered);
	t_run();
	fd = rsc_entry_fd(a.self);
	ck_assert_int_ge(fd, 0);
	close(fd); /* behind the runtime's back */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EBADF);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_NOT_RELEASED);
	ck_assert_int_eq(rsc_finding_fd(f), fd);
	ck_assert_str_eq(rsc_finding_scope(f), "custom");
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);

	/* Full: a built-in entry's number closed behind its back and reused by
	 * the caller is never closed by the release. */
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	s = open_scope(NULL, "reuse");
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &a.self), 0);
	fd = rsc_entry_wait(a.self);
	ck_assert_int_ge(fd, 0);
	close(fd);
	other = open(t_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_eq(other, fd);
	rsc_scope_close_wait(s, NULL);
	ck_assert(fd_open(other));
	ck_assert_int_ge(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_NOT_RELEASED);
	ck_assert_int_eq(rsc_finding_fd(f), fd);
	/* The reused number is the caller's, and the full audit's leak check
	 * must not blame the scope for it either? It appeared inside it. */
	close(other);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* ------------------------------------------------------------ error text */

static bool has_raw_control(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] < 0x20 && s[i] != '\n') || s[i] == 0x7f)
			return true;
	return false;
}

START_TEST(error_text_escapes_control_bytes_of_names)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	char path[256], buf[1024], *mem = NULL;
	size_t memlen = 0;
	FILE *f;
	int n, lines = 0;
	size_t i;

	snprintf(path, sizeof(path), "%s/no\nsuch\x1b[31mfile\r\x7f", t_dir);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "bad\x1b]0;title\aname", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, path, O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_wait(e), -ENOENT);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	ck_assert_ptr_nonnull(err);
	/* The accessor keeps the bytes: the caller's data. */
	ck_assert_str_eq(rsc_error_detail(err), path);
	f = open_memstream(&mem, &memlen);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_error_print(err, f), 0);
	fclose(f);
	ck_assert_msg(!has_raw_control(mem, memlen), "raw control byte in: %s", mem);
	for (i = 0; i < memlen; i++)
		lines += mem[i] == '\n';
	ck_assert_int_eq(lines, rsc_error_depth(err));
	ck_assert_ptr_nonnull(strstr(mem, "\\x1b"));
	free(mem);
	n = rsc_error_format(err, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_int_lt(n, (int)sizeof(buf));
	ck_assert_int_eq((int)strlen(buf), n);
	ck_assert_msg(!has_raw_control(buf, strlen(buf)) && !strchr(buf, '\n'),
		      "raw control byte in: %s", buf);
	ck_assert_int_eq(rsc_error_format(err, NULL, 0), n);
	rsc_error_free(err);
}
END_TEST

START_TEST(audit_print_escapes_control_bytes_of_targets)
{
	struct rsc_scope *s;
	char path[256], *mem = NULL;
	size_t memlen = 0;
	FILE *f;
	int fd;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	snprintf(path, sizeof(path), "%s/leak\n\x1b[2Jfile", t_dir);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "leaky\n", &s), 0);
	fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = open_memstream(&mem, &memlen);
	ck_assert_int_eq(rsc_audit_print(t_loop, f), 1);
	fclose(f);
	ck_assert_msg(!has_raw_control(mem, memlen) && strchr(mem, '\n') == mem + memlen - 1,
		      "raw control byte in: %s", mem);
	free(mem);
	close(fd);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

START_TEST(every_errno_has_text_and_a_name)
{
	int e;

	for (e = 1; e <= 133; e++) {
		if (e == 41 || e == 58) /* no such errno on Linux */
			continue;
		ck_assert_msg(strcmp(rsc_strerror(-e), "Unknown error") != 0, "%d", e);
		ck_assert_msg(strcmp(rsc_err_name(-e), "E?") != 0, "%d", e);
		ck_assert_str_eq(rsc_strerror(-e), rsc_strerror(e));
	}
	ck_assert_str_eq(rsc_err_name(-EBADFD), "EBADFD");
	ck_assert_str_eq(rsc_err_name(-ESTALE), "ESTALE");
	ck_assert_str_eq(rsc_strerror(-100000), "Unknown error");
	ck_assert_str_eq(rsc_err_name(-100000), "E?");
	ck_assert_str_eq(rsc_err_name(0), "OK");
	ck_assert_str_eq(rsc_strerror(0), "Success");
}
END_TEST

/* ------------------------------------------------------------ bad handles */

START_TEST(garbage_and_wrong_kind_handles_are_refused)
{
	struct rsc_scope *s = open_scope(NULL, "h"), *junk_s;
	struct rsc_entry *e, *junk_e, *out;
	long long junk[4] = { -1, 0x1234, 0, 42 };
	unsigned i;
	const unsigned long long vals[] = { 1, 2, 0xdeadbeefULL, ~0ULL, 0xffffffffULL,
					    0x100000000ULL, 0x7fffffffffffffffULL };

	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), 0);
	t_run();
	/* A scope handle where an entry is wanted, and the other way round. */
	ck_assert_int_eq(rsc_entry_release((struct rsc_entry *)s, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_fd((struct rsc_entry *)s), -EINVAL);
	ck_assert_int_eq(rsc_entry_detach((struct rsc_entry *)s), -EINVAL);
	ck_assert_int_eq(rsc_scope_close((struct rsc_scope *)e, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait((struct rsc_scope *)e, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, (struct rsc_scope *)e, "x", &junk_s), -EINVAL);
	ck_assert_int_eq(rsc_entry_move(e, (struct rsc_scope *)e), -EINVAL);
	ck_assert_int_eq(rsc_open((struct rsc_scope *)e, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &out), -EINVAL);
	/* Pointers to memory and random values. */
	for (i = 0; i < 2 + sizeof(vals) / sizeof(vals[0]); i++) {
		unsigned long long v = i == 0 ? (unsigned long long)(uintptr_t)junk :
				       i == 1 ? (unsigned long long)(uintptr_t)&i : vals[i - 2];
		int r;

		junk_s = (struct rsc_scope *)(uintptr_t)v;
		junk_e = (struct rsc_entry *)(uintptr_t)v;
		r = rsc_scope_close(junk_s, NULL, NULL);
		ck_assert_msg(r == -EINVAL || r == -ESTALE, "%llx: %d", v, r);
		r = rsc_scope_state(junk_s);
		ck_assert_msg(r == -EINVAL || r == -ESTALE, "%llx: %d", v, r);
		ck_assert_ptr_null(rsc_scope_data(junk_s));
		r = rsc_entry_release(junk_e, NULL, NULL);
		ck_assert_msg(r == -EINVAL || r == -ESTALE, "%llx: %d", v, r);
		r = rsc_entry_state(junk_e);
		ck_assert_msg(r == -EINVAL || r == -ESTALE, "%llx: %d", v, r);
		r = rsc_entry_slot(junk_e);
		ck_assert_msg(r == -EINVAL || r == -ESTALE, "%llx: %d", v, r);
		ck_assert_ptr_null(rsc_entry_data(junk_e));
		ck_assert_ptr_null(rsc_entry_scope(junk_e));
		ck_assert_ptr_nonnull(rsc_entry_name(junk_e));
		ck_assert_ptr_nonnull(rsc_entry_detail(junk_e));
		ck_assert_ptr_nonnull(rsc_scope_name(junk_s));
		ck_assert_ptr_null(rsc_scope_error(junk_s));
		r = rsc_open(junk_s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &out);
		ck_assert_msg(r == -EINVAL || r == -ESTALE, "%llx: %d", v, r);
		ck_assert_ptr_null(out);
		r = rsc_read(junk_e, junk, 8, 0, NULL, NULL);
		ck_assert_msg(r == -EINVAL || r == -ESTALE, "%llx: %d", v, r);
	}
	/* Huge sizes. */
	ck_assert_int_lt(rsc_loop_new(&loop_dummy, 1U << 30, 0), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* ---------------------------------------------------------- flags, CLOEXEC */

START_TEST(pipe_socket_open_are_cloexec_unless_asked)
{
	struct rsc_scope *s = open_scope(NULL, "cloexec");
	struct rsc_entry *o1, *o2, *k1, *k2, *p1 = NULL, *p2 = NULL;
	int ends[2];
	bool have_pipe = t_kernel_has(RSC__TEST_OP_PIPE);

	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &o1), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_NO_CLOEXEC, &o2), 0);
	ck_assert_int_eq(rsc_socket(s, AF_UNIX, SOCK_STREAM, 0, 0, &k1), 0);
	ck_assert_int_eq(rsc_socket(s, AF_UNIX, SOCK_DGRAM, 0, RSC_NO_CLOEXEC, &k2), 0);
	if (have_pipe) {
		ck_assert_int_eq(rsc_pipe(s, 0, &p1), 0);
		ck_assert_int_eq(rsc_pipe(s, RSC_NO_CLOEXEC, &p2), 0);
	}
	t_run();
	ck_assert(fcntl(rsc_entry_fd(o1), F_GETFD) & FD_CLOEXEC);
	ck_assert(!(fcntl(rsc_entry_fd(o2), F_GETFD) & FD_CLOEXEC));
	ck_assert(fcntl(rsc_entry_fd(k1), F_GETFD) & FD_CLOEXEC);
	ck_assert(!(fcntl(rsc_entry_fd(k2), F_GETFD) & FD_CLOEXEC));
	if (have_pipe) {
		ck_assert_int_eq(rsc_pipe_ends(p1, ends), 0);
		ck_assert(fcntl(ends[0], F_GETFD) & FD_CLOEXEC);
		ck_assert(fcntl(ends[1], F_GETFD) & FD_CLOEXEC);
		ck_assert_int_eq(rsc_pipe_ends(p2, ends), 0);
		ck_assert(!(fcntl(ends[0], F_GETFD) & FD_CLOEXEC));
		ck_assert(!(fcntl(ends[1], F_GETFD) & FD_CLOEXEC));
		ck_assert_int_eq(rsc_pipe_ends(o1, ends), -EINVAL);
		ck_assert_int_eq(rsc_entry_detach(p1), -EBADF);
	} else {
		printf("SKIP pipe part of pipe_socket_open_are_cloexec_unless_asked: kernel lacks IORING_OP_PIPE\n");
	}
	/* Unknown flag bits are argument errors. */
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 1U << 20, NULL), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_UNIX, SOCK_STREAM, 0, 1U << 20, NULL), -EINVAL);
	ck_assert_int_eq(rsc_pipe(s, 1U << 20, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* -------------------------------------------------------- direct descriptors */

START_TEST(direct_entries_have_slots_not_fds_and_a_full_table_is_enfile)
{
	struct rsc_scope *s = open_scope(NULL, "direct");
	struct rsc_entry *e[5], *plain;
	struct rsc_error *err = NULL;
	int i, before = t_fd_count();

	if (rsc_loop_set_direct(t_loop, 6, 2) < 0) {
		printf("SKIP direct_entries...: %s\n", rsc_last_error());
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
		return;
	}
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &plain), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC, 0, RSC_DIRECT, &e[0]), -EINVAL);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e[i]), 0);
	ck_assert_int_eq(rsc_entry_slot(e[0]), -EAGAIN);
	t_run();
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 4);
	ck_assert_int_eq(t_fd_count(), before + 1);
	for (i = 0; i < 4; i++) {
		ck_assert_int_ge(rsc_entry_slot(e[i]), 0);
		ck_assert_int_lt(rsc_entry_slot(e[i]), 4);
		ck_assert_int_eq(rsc_entry_fd(e[i]), -EBADFD);
		ck_assert_int_eq(rsc_entry_wait(e[i]), rsc_entry_slot(e[i]));
	}
	ck_assert_int_eq(rsc_entry_slot(plain), -EBADFD);
	/* The fifth: the table's allocation range is full. */
	i = rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e[4]);
	if (i == 0)
		ck_assert_int_eq(rsc_entry_wait(e[4]), -ENFILE);
	else
		ck_assert_int_eq(i, -ENFILE);
	ck_assert_int_eq(rsc_entry_release(e[1], NULL, NULL), i == 0 ? -EALREADY : 0);
	rsc_scope_close_wait(s, &err);
	rsc_error_free(err);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
}
END_TEST

/* ------------------------------------------------------- many ops, small ring */

START_TEST(five_thousand_opens_on_a_small_ring_lose_nothing)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_error *err = NULL;
	int i, before, ret;
	const char *faults[] = { "", "cq_overflow:1:EBUSY,sq_full:3:EBUSY,submit:2:EBUSY" };
	unsigned k;

	for (k = 0; k < 2; k++) {
		ck_assert_int_eq(rsc_loop_new(&loop, 8, 0), 0);
		before = t_fd_count();
		ret = rsc_fault_set(loop, faults[k]);
		if (ret == -EOPNOTSUPP && k == 0)
			ret = 0; /* no rules asked for: nothing missing */
		if (ret == -EOPNOTSUPP) {
			printf("SKIP five_thousand_opens_on_a_small_ring_lose_nothing (under faults): "
			       "this build has no fault injection\n");
			ck_assert_int_eq(rsc_loop_close(loop), 0);
			break;
		}
		ck_assert_int_eq(ret, 0);
		ck_assert_int_eq(rsc_scope_open(loop, NULL, "flood", &s), 0);
		for (i = 0; i < 5000; i++) {
			ret = rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL);
			ck_assert_msg(ret == 0, "open %d: %s", i, rsc_last_error());
		}
		while ((ret = rsc_loop_run(loop, RSC_RUN_DEFAULT)) > 0)
			;
		ck_assert_int_eq(ret, 0);
		ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
		ck_assert_int_eq(rsc_loop_counter(loop, RSC_CTR_ACQUIRED), 5000);
		ck_assert_int_eq(t_fd_count(), before + 5000);
		ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
		ck_assert_ptr_null(err);
		ck_assert_int_eq(rsc_loop_counter(loop, RSC_CTR_RELEASED), 5000);
		ck_assert_int_eq(t_fd_count(), before);
		ck_assert_int_eq(rsc_loop_close(loop), 0);
	}
}
END_TEST

/* ------------------------------------------------- more exits and releases */

START_TEST(early_release_whose_exit_returns_eagain_is_retried)
{
	struct rm a = { .name = "a", .enter = RM_ENTER_OPEN, .path = "/dev/null", .again = 2 };
	struct rsc_scope *s = open_scope(NULL, "early-again");
	int res[2] = { 0, 1 }, fd;

	rm_reset();
	rm_push(s, &a, &rm_ordered);
	fd = rsc_entry_wait(a.self);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_entry_release(a.self, count_cb, res), 0);
	ck_assert_int_eq(a.exit_calls, 1); /* inside the call: -EAGAIN */
	ck_assert_int_eq(rsc_loop_alive(t_loop), 1);
	ck_assert_int_eq(rsc_entry_release(a.self, NULL, NULL), -EALREADY);
	t_run();
	ck_assert_int_eq(a.exit_calls, 3);
	ck_assert_int_eq(res[0], 1);
	ck_assert_int_eq(res[1], 0);
	ck_assert(!fd_open(fd));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(a.exit_calls, 3);
}
END_TEST

START_TEST(release_while_entering_releases_a_winning_acquire_once)
{
	struct rm a = { .name = "a", .enter = RM_ENTER_READ },
		  b = { .name = "b", .enter = RM_ENTER_READ };
	struct rsc_scope *s = open_scope(NULL, "entering");
	int p[2], ra[2] = { 0, 1 }, rb[2] = { 0, 1 };

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	a.rfd = b.rfd = p[0];
	rm_reset();
	rm_push(s, &a, &rm_ordered);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_entry_release(a.self, count_cb, ra), 0);
	ck_assert_int_eq(rsc_entry_release(a.self, count_cb, ra), -EALREADY);
	t_run();
	ck_assert_int_eq(ra[0], 1);
	ck_assert_int_eq(ra[1], -ECANCELED);
	ck_assert_int_eq(a.exit_calls, 0);
	ck_assert_int_eq(rsc_entry_fd(a.self), -ECANCELED);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);

	/* The cancel is lost and the read wins: released once, by its exit. */
	ck_assert_int_eq(rsc_fault_set(t_loop, "cancel:1:EALREADY"), 0);
	rm_push(s, &b, &rm_ordered);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_entry_release(b.self, count_cb, rb), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(write(p[1], "y", 1), 1);
	t_run();
	ck_assert_int_eq(b.exit_calls, 1);
	ck_assert_int_eq(rb[0], 1);
	ck_assert_int_eq(rb[1], 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(b.exit_calls, 1);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(release_wait_reports_a_failed_release_as_a_chain_of_one)
{
	struct rm a = { .name = "a", .exit = RM_EXIT_BADF }, b = { .name = "b" };
	struct rsc_scope *s = open_scope(NULL, "rw");
	struct rsc_error *err = NULL;

	rm_reset();
	rm_push(s, &b, &rm_ordered);
	rm_push(s, &a, &rm_ordered);
	t_run();
	ck_assert_int_eq(rsc_entry_release_wait(a.self, &err), -EBADF);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	ck_assert_str_eq(rsc_error_op(err), "close");
	ck_assert_str_eq(rsc_error_scope(err), "rw");
	rsc_error_free(err);
	/* Reported to the caller: not again in the scope's result. */
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(b.pending, 0);
}
END_TEST

/* An exit of several SQEs: the first negative result in SQE order is the error. */
static int dirfd_for_exit = -1;

static int multi_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct io_uring_sqe *sqe[3];
	static char buf[8];
	int ret = rsc_entry_get_sqes(e, 3, sqe);

	(void)pending;
	++*(int *)arg;
	if (ret < 0)
		return ret;
	io_uring_prep_nop(sqe[0]);
	io_uring_prep_read(sqe[1], dirfd_for_exit, buf, sizeof(buf), 0);
	io_uring_prep_close(sqe[2], -1);
	return 0;
}

static int nop_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
}

static int too_many_sqes_enter(struct rsc_entry *e, void *arg)
{
	struct io_uring_sqe *sqe[RSC_ENTRY_SQES_MAX + 1];
	int *r = arg;

	r[0] = rsc_entry_get_sqes(e, RSC_ENTRY_SQES_MAX + 1, sqe);
	r[1] = rsc_entry_get_sqes(e, 0, sqe);
	r[2] = rsc_entry_get_sqes(e, RSC_ENTRY_SQES_MAX, sqe);
	if (r[2] == 0) {
		int i;

		for (i = 0; i < RSC_ENTRY_SQES_MAX; i++)
			io_uring_prep_nop(sqe[i]);
	}
	r[3] = rsc_entry_get_sqes(e, 1, sqe);
	return 0;
}

static int max_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct io_uring_sqe *sqe[RSC_ENTRY_SQES_MAX];
	int i, ret = rsc_entry_get_sqes(e, RSC_ENTRY_SQES_MAX, sqe);

	(void)pending;
	(void)arg;
	if (ret < 0)
		return ret;
	for (i = 0; i < RSC_ENTRY_SQES_MAX; i++) {
		io_uring_prep_nop(sqe[i]);
		if (i + 1 < RSC_ENTRY_SQES_MAX)
			sqe[i]->flags |= IOSQE_IO_HARDLINK;
	}
	return 0;
}

START_TEST(multi_sqe_hooks_on_a_tiny_ring)
{
	struct rsc_manager multi = { sizeof(struct rsc_manager), 0, "multi", nop_enter, multi_exit };
	struct rsc_manager big = { sizeof(struct rsc_manager), RSC_MANAGER_UNORDERED, "big",
				   too_many_sqes_enter, max_exit };
	struct rsc_loop *saved = t_loop, *small;
	struct rsc_scope *s;
	struct rsc_error *err = NULL;
	int calls = 0, r[64][4], i;

	dirfd_for_exit = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dirfd_for_exit, 0);
	s = open_scope(NULL, "multi");
	ck_assert_int_eq(rsc_push(s, &multi, &calls, NULL), 0);
	t_run();
	/* Both failed SQEs, in SQE order: the close's on top of the read's. */
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EBADF);
	ck_assert_str_eq(rsc_error_op(err), "close");
	ck_assert_int_eq(rsc_error_depth(err), 2);
	ck_assert_str_eq(rsc_error_op(rsc_error_cause(err)), "read");
	ck_assert_int_eq(rsc_error_errno(rsc_error_cause(err)), -EISDIR);
	ck_assert_int_eq(calls, 1);
	rsc_error_free(err);
	close(dirfd_for_exit);

	/* Hooks of RSC_ENTRY_SQES_MAX SQEs each, 64 of them, on the smallest ring. */
	ck_assert_int_eq(rsc_loop_new(&small, 1, 0), 0);
	t_loop = small;
	ck_assert_int_eq(rsc_scope_open(small, NULL, "big", &s), 0);
	for (i = 0; i < 64; i++) {
		int ret = rsc_push(s, &big, r[i], NULL);

		ck_assert_msg(ret == 0, "push %d: %d %s", i, ret, rsc_last_error());
		ck_assert_int_eq(r[i][0], -EINVAL);
		ck_assert_int_eq(r[i][1], -EINVAL);
		ck_assert_int_eq(r[i][2], 0);
		ck_assert_int_eq(r[i][3], -EBUSY);
	}
	while ((i = rsc_loop_run(small, RSC_RUN_DEFAULT)) > 0)
		;
	ck_assert_int_eq(i, 0);
	ck_assert_int_eq(rsc_loop_counter(small, RSC_CTR_ACQUIRED), 64);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(rsc_loop_counter(small, RSC_CTR_RELEASED), 64);
	t_loop = saved;
	ck_assert_int_eq(rsc_loop_close(small), 0);
}
END_TEST

/* ---------------------------------------------------- the audit and custom */

START_TEST(full_audit_names_what_a_custom_exit_forgot_to_close)
{
	struct rm a = { .name = "a", .enter = RM_ENTER_OPEN, .exit = RM_EXIT_RETURN, .ret = 0 },
		  b = { .name = "b", .enter = RM_ENTER_OPEN };
	struct rsc_scope *s;
	const struct rsc_finding *f;
	int fd;

	t_make_files(2);
	a.path = t_path("f0");
	b.path = t_path("f1");
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	s = open_scope(NULL, "forgetful");
	rm_reset();
	rm_push(s, &a, &rm_ordered);
	rm_push(s, &b, &rm_unordered);
	t_run();
	fd = rsc_entry_fd(a.self);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_LEAKED);
	ck_assert_int_eq(rsc_finding_fd(f), fd);
	ck_assert_str_eq(rsc_finding_target(f), t_path("f0"));
	ck_assert_str_eq(rsc_finding_scope(f), "forgetful");
	close(fd);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

/* ------------------------------------------------------------- shutdown */

START_TEST(shutdown_chains_errors_from_newer_scopes_to_older)
{
	struct rsc_loop *loop;
	struct rsc_scope *old, *mid, *young;
	struct rsc_error *err = NULL;
	struct rm o = { .name = "o" }, m = { .name = "m", .exit = RM_EXIT_RETURN, .ret = -EIO },
		  y = { .name = "y", .exit = RM_EXIT_BADF };
	int ret;

	ck_assert_int_eq(rsc_loop_new(&loop, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "old", &old), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "mid", &mid), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "young", &young), 0);
	rm_reset();
	ck_assert_int_eq(rsc_push(old, &rm_ordered, &o, &o.self), 0);
	ck_assert_int_eq(rsc_push(mid, &rm_ordered, &m, &m.self), 0);
	ck_assert_int_eq(rsc_push(young, &rm_ordered, &y, &y.self), 0);
	while (rsc_loop_run(loop, RSC_RUN_NOWAIT) > 0)
		;
	ret = rsc_loop_shutdown(loop, &err);
	ck_assert_str_eq(rm_order, "y,m,o");
	ck_assert_int_eq(m.pending, -EBADF);
	ck_assert_int_eq(o.pending, -EIO);
	ck_assert_int_eq(ret, -EIO);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_depth(err), 2);
	ck_assert_str_eq(rsc_error_scope(err), "mid");
	ck_assert_int_eq(rsc_error_errno(rsc_error_cause(err)), -EBADF);
	ck_assert_str_eq(rsc_error_scope(rsc_error_cause(err)), "young");
	rsc_error_free(err);
}
END_TEST

/* ---------------------------------------------------------- huge and long */

START_TEST(huge_and_long_arguments_are_refused)
{
	struct rsc_scope *s = open_scope(NULL, "big"), *c;
	struct rsc_entry *e = NULL;
	char name[RSC_NAME_MAX + 1], *path;
	char buf[16];
	int ret;

	memset(name, 'n', sizeof(name));
	name[RSC_NAME_MAX] = '\0';
	ck_assert_int_eq(rsc_scope_open(t_loop, s, name, &c), -ENAMETOOLONG);
	name[RSC_NAME_MAX - 1] = '\0';
	ck_assert_int_eq(rsc_scope_open(t_loop, s, name, &c), 0);
	ck_assert_str_eq(rsc_scope_name(c), name);
	path = malloc(1 << 20);
	ck_assert_ptr_nonnull(path);
	memset(path, 'p', (1 << 20) - 1);
	path[(1 << 20) - 1] = '\0';
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, path, O_RDONLY, 0, 0, &e), -ENAMETOOLONG);
	ck_assert_ptr_null(e);
	free(path);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, NULL, O_RDONLY, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ret = rsc_read(e, buf, 0xffffffffu, 0, NULL, NULL);
	ck_assert_msg(ret == -EINVAL, "read of 4 GiB into 16 bytes without a callback: %d", ret);
	ret = rsc_timer(s, 0xffffffffu, NULL, NULL, NULL);
	ck_assert_msg(ret == 0 || ret == -EINVAL, "timer: %d", ret);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, RSC_DIRECT_SLOTS_MAX + 1, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 9), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* ------------------------------------------------- full audit, nested scopes */

START_TEST(full_audit_reports_a_leak_per_scope_and_never_blames_live_owners)
{
	struct rsc_scope *p, *c, *sib;
	struct rsc_entry *owned;
	const struct rsc_finding *f;
	int fd, n;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	p = open_scope(NULL, "outer");
	c = open_scope(p, "inner");
	sib = open_scope(NULL, "sibling");
	/* Opened by a live entry of another scope during their lives: no leak. */
	ck_assert_int_eq(rsc_open(sib, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &owned), 0);
	ck_assert_int_ge(rsc_entry_wait(owned), 0);
	fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(c, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_LEAKED);
	ck_assert_int_eq(rsc_finding_fd(f), fd);
	ck_assert_str_eq(rsc_finding_target(f), "/dev/zero");
	ck_assert_str_eq(rsc_finding_scope(f), "inner");
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), 0);
	/* It appeared inside 'outer' too: one finding per scope that saw it
	 * appear (ringscope_audit(7)), innermost first. */
	n = rsc_audit_count(t_loop);
	ck_assert_int_eq(n, 2);
	f = rsc_audit_finding(t_loop, 1);
	ck_assert_int_eq(rsc_finding_fd(f), fd);
	ck_assert_str_eq(rsc_finding_scope(f), "outer");
	/* The sibling was open when it appeared too: the table is the process's. */
	ck_assert_int_eq(rsc_scope_close_wait(sib, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 3);
	f = rsc_audit_finding(t_loop, 2);
	ck_assert_int_eq(rsc_finding_fd(f), fd);
	ck_assert_str_eq(rsc_finding_scope(f), "sibling");
	close(fd);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

START_TEST(early_release_racing_the_scope_close_releases_once)
{
	struct rm m[6];
	struct rsc_scope *s = open_scope(NULL, "race");
	char name[6][4];
	int res[6][2], i, before = t_fd_count();

	memset(m, 0, sizeof(m));
	memset(res, 0, sizeof(res));
	rm_reset();
	for (i = 0; i < 6; i++) {
		snprintf(name[i], sizeof(name[i]), "r%d", i);
		m[i].name = name[i];
		m[i].enter = RM_ENTER_OPEN;
		m[i].path = "/dev/null";
		rm_push(s, &m[i], i % 2 ? &rm_ordered : &rm_unordered);
	}
	t_run();
	ck_assert_int_eq(t_fd_count(), before + 6);
	/* Two released early, then the close before the loop turns. */
	ck_assert_int_eq(rsc_entry_release(m[1].self, count_cb, res[1]), 0);
	ck_assert_int_eq(rsc_entry_release(m[4].self, count_cb, res[4]), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_release(m[2].self, count_cb, res[2]), -EALREADY);
	ck_assert_int_eq(rsc_entry_release(m[1].self, count_cb, res[1]), -EALREADY);
	t_run();
	for (i = 0; i < 6; i++)
		ck_assert_int_eq(m[i].exit_calls, 1);
	ck_assert_int_eq(res[1][0], 1);
	ck_assert_int_eq(res[4][0], 1);
	ck_assert_int_eq(res[2][0], 0);
	ck_assert_str_eq(rm_order, "r1,r4,r5,r3,r2,r0");
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* -------------------------------------------------------- the test suite */

Suite *make_hostile_core_suite(void)
{
	Suite *s = suite_create("hostile_core");
	TCase *tc = tcase_create("core");

	t_add_fixture(tc);
	tcase_add_test(tc, push_checks_the_whole_manager_before_any_enter);
	tcase_add_test(tc, error_chain_keeps_every_error_newest_first);
	tcase_add_test(tc, suppression_clears_the_error_for_those_below_but_a_raise_wins);
	tcase_add_test(tc, failed_custom_enter_is_never_exited_and_those_before_see_it);
	tcase_add_test(tc, ordered_exit_starts_after_every_release_above_it);
	tcase_add_test(tc, exit_returning_eagain_or_ebusy_is_called_again_never_dropped);
	tcase_add_test(tc, nested_children_unwind_newest_first_and_their_errors_reach_the_parent);
	tcase_add_test(tc, early_release_leaves_the_unwind_and_is_exactly_once);
	if (rsc_fault_set(t_probe_loop(), "") == 0)
		tcase_add_test(tc, custom_acquire_that_wins_its_cancel_is_exited_once);
	else
		printf("SKIP custom_acquire_that_wins_its_cancel_is_exited_once: this build has no fault injection\n");
	tcase_add_test(tc, blocking_helpers_return_results_and_refuse_reentry);
	tcase_add_test(tc, loop_close_refuses_and_shutdown_releases_work_in_flight);
	tcase_add_test(tc, released_audit_checks_a_custom_exits_own_close);
	tcase_add_test(tc, error_text_escapes_control_bytes_of_names);
	tcase_add_test(tc, audit_print_escapes_control_bytes_of_targets);
	tcase_add_test(tc, every_errno_has_text_and_a_name);
	tcase_add_test(tc, garbage_and_wrong_kind_handles_are_refused);
	t_add_socket_test(tc, pipe_socket_open_are_cloexec_unless_asked);
	tcase_add_test(tc, direct_entries_have_slots_not_fds_and_a_full_table_is_enfile);
	tcase_add_test(tc, five_thousand_opens_on_a_small_ring_lose_nothing);
	tcase_add_test(tc, early_release_whose_exit_returns_eagain_is_retried);
	if (rsc_fault_set(t_probe_loop(), "") == 0)
		tcase_add_test(tc, release_while_entering_releases_a_winning_acquire_once);
	else
		printf("SKIP release_while_entering_releases_a_winning_acquire_once: this build has no fault injection\n");
	tcase_add_test(tc, release_wait_reports_a_failed_release_as_a_chain_of_one);
	tcase_add_test(tc, multi_sqe_hooks_on_a_tiny_ring);
	tcase_add_test(tc, full_audit_names_what_a_custom_exit_forgot_to_close);
	tcase_add_test(tc, shutdown_chains_errors_from_newer_scopes_to_older);
	tcase_add_test(tc, huge_and_long_arguments_are_refused);
	tcase_add_test(tc, full_audit_reports_a_leak_per_scope_and_never_blames_live_owners);
	tcase_add_test(tc, early_release_racing_the_scope_close_releases_once);
	suite_add_tcase(s, tc);
	return s;
}
