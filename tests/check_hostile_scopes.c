/* SPDX-License-Identifier: MIT */
/*
 * Hostile probes of scopes and their unwind, written from DESIGN.md sections
 * 2, 3 and 7 and the scope pages: a child closed, failed or failing an
 * acquire while its parent's unwind is busy with a newer child, odd errnos
 * for rsc_scope_fail, closes from the middle of a deep tree, deadlines that
 * pass during an ancestor's unwind, and on-close callbacks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* ----------------------------------------------------- a recording manager */

enum hm_enter { HM_ENTER_NOP = 0, HM_ENTER_FAIL_LATER };
enum hm_exit { HM_EXIT_NOP = 0, HM_EXIT_HOLD, HM_EXIT_BADF };

/* One entry's manager instance: what its hooks do, and what they saw. */
struct hm {
	const char *name;
	enum hm_enter enter;
	enum hm_exit exit;
	int hold_fd;	  /* HM_EXIT_HOLD: its release reads a byte of this pipe */
	char buf[1];
	struct __kernel_timespec ts; /* HM_ENTER_FAIL_LATER: fails -ETIME after it */
	int exit_calls;
	int pending;	  /* -errno at the head of the pending error, 0 if none */
	int pending_depth;
	bool saw[8];	  /* errnos in the pending chain: see hm_saw() */
	struct rsc_entry *self;
};

static char order[512];

static int hm_enter_fn(struct rsc_entry *e, void *arg)
{
	struct hm *m = arg;
	struct io_uring_sqe *sqe;
	int ret;

	if (m->enter == HM_ENTER_NOP)
		return 0;
	ret = rsc_entry_get_sqes(e, 1, &sqe);
	if (ret < 0)
		return ret;
	m->ts.tv_sec = 0;
	m->ts.tv_nsec = 20 * 1000000LL;
	io_uring_prep_timeout(sqe, &m->ts, 0, 0); /* its CQE: -ETIME */
	return 0;
}

static const int hm_errnos[] = { EPROTO, EIO, ETIME, ETIMEDOUT, ECANCELED, EBADF, 0 };

static int hm_exit_fn(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct hm *m = arg;
	const struct rsc_error *x;
	struct io_uring_sqe *sqe;
	int ret, i;

	m->exit_calls++;
	m->pending = pending ? rsc_error_errno(pending) : 0;
	m->pending_depth = pending ? rsc_error_depth(pending) : 0;
	for (x = pending; x; x = rsc_error_cause(x))
		for (i = 0; hm_errnos[i]; i++)
			if (rsc_error_errno(x) == -hm_errnos[i])
				m->saw[i] = true;
	snprintf(order + strlen(order), sizeof(order) - strlen(order), "%s%s",
		 order[0] ? "," : "", m->name);
	if (m->exit == HM_EXIT_NOP)
		return 0;
	ret = rsc_entry_get_sqes(e, 1, &sqe);
	if (ret < 0)
		return ret;
	if (m->exit == HM_EXIT_HOLD)
		io_uring_prep_read(sqe, m->hold_fd, m->buf, 1, 0);
	else
		io_uring_prep_close(sqe, -1);
	return 0;
}

/* Whether the pending chain an exit saw held -@err. */
static bool hm_saw(const struct hm *m, int err)
{
	int i;

	for (i = 0; hm_errnos[i]; i++)
		if (hm_errnos[i] == err)
			return m->saw[i];
	return false;
}

static const struct rsc_manager hm_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "hm",
	.enter = hm_enter_fn,
	.exit = hm_exit_fn,
};

static void hm_push(struct rsc_scope *s, struct hm *m, const char *name)
{
	int ret;

	m->name = name;
	ret = rsc_push(s, &hm_manager, m, &m->self);
	ck_assert_msg(ret == 0, "rsc_push %s: %s", name, rsc_last_error());
}

static struct rsc_scope *open_scope(struct rsc_scope *parent, const char *name)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, parent, name, &s), 0);
	return s;
}

/* A pipe whose read end holds a release until the test writes a byte. */
struct hold {
	int fd[2];
};

static void hold_init(struct hold *h, struct hm *m)
{
	ck_assert_int_eq(pipe2(h->fd, O_CLOEXEC), 0);
	m->exit = HM_EXIT_HOLD;
	m->hold_fd = h->fd[0];
}

static void hold_let_go(struct hold *h)
{
	ck_assert_int_eq(write(h->fd[1], "x", 1), 1);
}

static void hold_free(struct hold *h)
{
	close(h->fd[0]);
	close(h->fd[1]);
}

/* Under @p: an older child "c1" (entry x1) and a newer one "c2" whose entry
 * x2 holds its exit until hold_let_go(); both entered. */
static void older_and_held_newer(struct rsc_scope *p, struct rsc_scope **c1, struct hm *x1,
				 struct rsc_scope **c2, struct hm *x2, struct hold *h)
{
	*c1 = open_scope(p, "c1");
	hm_push(*c1, x1, "x1");
	*c2 = open_scope(p, "c2");
	hold_init(h, x2);
	hm_push(*c2, x2, "x2");
	t_run();
}

/* Turn the loop until the exit of @m has been called (it is then in flight). */
static void run_until_exit_called(struct hm *m)
{
	int turns = 0;

	while (m->exit_calls == 0) {
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_int_lt(++turns, 1000);
	}
}

/* A few more turns with nothing due but what is held: what would run, runs. */
static void run_idle_turns(void)
{
	int i;

	for (i = 0; i < 5; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
}

struct closed {
	int calls;
	int status;
};

static void on_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct closed *c = data;

	(void)s;
	(void)err;
	c->calls++;
	c->status = status;
}

/* ------------------------------------- children while the parent unwinds */

/*
 * DESIGN 7: an unwind owns what it has not yet released. An older child the
 * parent's unwind has not reached yet is the unwind's: closing it is
 * refused (the parent closes it, in its LIFO turn, with the parent's
 * pending error), rather than unwinding it at once, beside the newer child
 * whose release is still in flight, with no error seen and its result kept
 * from the parent.
 */
START_TEST(close_of_a_child_the_parents_unwind_has_not_reached_is_already)
{
	struct rsc_scope *p = open_scope(NULL, "p"), *c1, *c2;
	struct hm p0 = { 0 }, x1 = { 0 }, x2 = { 0 };
	struct closed cl = { 0 }, pc = { 0 };
	struct hold h;
	int before = t_fd_count();

	hm_push(p, &p0, "p0");
	older_and_held_newer(p, &c1, &x1, &c2, &x2, &h);
	ck_assert_int_eq(rsc_scope_fail(p, -EPROTO, "body"), 0);
	ck_assert_int_eq(rsc_scope_close(p, on_closed, &pc), 0);
	run_until_exit_called(&x2);
	ck_assert_int_eq(rsc_scope_close(c1, on_closed, &cl), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(c1, NULL), -EALREADY);
	run_idle_turns();
	ck_assert_int_eq(x1.exit_calls, 0); /* c2 is still being released */
	hold_let_go(&h);
	t_run();
	ck_assert_str_eq(order, "x2,x1,p0");
	ck_assert_int_eq(x1.pending, -EPROTO);
	ck_assert_int_eq(cl.calls, 0);
	ck_assert_int_eq(pc.calls, 1);
	ck_assert_int_eq(pc.status, -EPROTO);
	hold_free(&h);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* The same under a plain close: a graceful close of the older child is refused too. */
START_TEST(graceful_close_of_a_child_inside_its_parents_unwind_is_already)
{
	struct rsc_scope *p = open_scope(NULL, "p"), *c1, *c2;
	struct hm x1 = { 0 }, x2 = { 0 };
	struct closed cl = { 0 }, pc = { 0 };
	struct hold h;

	older_and_held_newer(p, &c1, &x1, &c2, &x2, &h);
	ck_assert_int_eq(rsc_scope_close(p, on_closed, &pc), 0);
	run_until_exit_called(&x2);
	ck_assert_int_eq(rsc_scope_close_graceful(c1, 1000, on_closed, &cl), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_graceful(c1, 0, on_closed, &cl), -EALREADY);
	run_idle_turns();
	ck_assert_int_eq(x1.exit_calls, 0);
	hold_let_go(&h);
	t_run();
	ck_assert_str_eq(order, "x2,x1");
	ck_assert_int_eq(cl.calls, 0);
	ck_assert_int_eq(pc.calls, 1);
	ck_assert_int_eq(pc.status, 0);
	hold_free(&h);
}
END_TEST

/*
 * A child closed just after its parent (both asked before the loop turns) is
 * allowed, its result its own; but it is still closed in its LIFO turn,
 * after the newer child the parent's unwind starts with.
 */
START_TEST(child_closed_after_its_parents_close_request_goes_in_its_turn)
{
	struct rsc_scope *p = open_scope(NULL, "p"), *c1, *c2;
	struct hm x1 = { 0 }, x2 = { 0 };
	struct closed cl = { 0 }, pc = { 0 };
	struct hold h;

	older_and_held_newer(p, &c1, &x1, &c2, &x2, &h);
	ck_assert_int_eq(rsc_scope_close(p, on_closed, &pc), 0);
	ck_assert_int_eq(rsc_scope_close(c1, on_closed, &cl), 0);
	run_until_exit_called(&x2);
	run_idle_turns();
	ck_assert_int_eq(x1.exit_calls, 0);
	ck_assert_int_eq(cl.calls, 0);
	hold_let_go(&h);
	t_run();
	ck_assert_str_eq(order, "x2,x1");
	ck_assert_int_eq(cl.calls, 1);
	ck_assert_int_eq(pc.calls, 1);
	hold_free(&h);
}
END_TEST

/*
 * A child failed while its parent's unwind is busy with a newer child: the
 * failure is allowed (rsc_scope_fail(3)), but its unwind waits for its turn
 * (DESIGN 2.3: children newest first, each completely before the next), and
 * both errors are in the chain its exits see and in the parent's result.
 */
START_TEST(child_failed_inside_its_parents_unwind_waits_its_turn)
{
	struct rsc_scope *p = open_scope(NULL, "p"), *c1, *c2;
	struct hm p0 = { 0 }, x1 = { 0 }, x2 = { 0 };
	struct rsc_error *err = NULL;
	struct hold h;

	hm_push(p, &p0, "p0");
	older_and_held_newer(p, &c1, &x1, &c2, &x2, &h);
	ck_assert_int_eq(rsc_scope_fail(p, -EPROTO, "body"), 0);
	run_until_exit_called(&x2);
	ck_assert_int_eq(rsc_scope_fail(c1, -EIO, "late"), 0);
	run_idle_turns();
	ck_assert_int_eq(x1.exit_calls, 0);
	hold_let_go(&h);
	ck_assert_int_lt(rsc_scope_close_wait(p, &err), 0);
	ck_assert_str_eq(order, "x2,x1,p0");
	ck_assert(hm_saw(&x1, EIO) && hm_saw(&x1, EPROTO));
	ck_assert(hm_saw(&p0, EIO) && hm_saw(&p0, EPROTO));
	ck_assert_int_eq(rsc_error_depth(err), 2);
	rsc_error_free(err);
	hold_free(&h);
}
END_TEST

/*
 * An acquire of an older child that fails while the parent's unwind is busy
 * with a newer child: that child's entries still go in their LIFO turn,
 * after the newer child's, and see the acquire's error. The parent is closed,
 * not failed: an unwind that cancels (a failure, a deadline) would cancel the
 * acquire at once, before it could fail (check_cancel_subtree.c).
 */
struct closed_with {
	int calls, status;
	struct rsc_error *err;
};

static void keep_result(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct closed_with *c = data;

	(void)s;
	c->calls++;
	c->status = status;
	if (err)
		ck_assert_int_eq(rsc_error_dup(err, &c->err), 0);
}

START_TEST(child_acquire_failing_inside_its_parents_unwind_waits_its_turn)
{
	struct rsc_scope *p = open_scope(NULL, "p"), *c1, *c2;
	struct hm p0 = { 0 }, x1 = { 0 }, t1 = { 0 }, x2 = { 0 };
	struct closed_with pc = { 0 };
	struct hold h;
	int turns = 0;

	hm_push(p, &p0, "p0");
	older_and_held_newer(p, &c1, &x1, &c2, &x2, &h);
	t1.enter = HM_ENTER_FAIL_LATER;
	hm_push(c1, &t1, "t1");
	ck_assert_int_eq(rsc_scope_close(p, keep_result, &pc), 0);
	run_until_exit_called(&x2);
	while (rsc_entry_state(t1.self) == RSC_ENTERING) {
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_int_lt(++turns, 1000);
	}
	ck_assert_int_eq(rsc_entry_state(t1.self), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_fd(t1.self), -ETIME); /* its own failure, not a cancel */
	run_idle_turns();
	ck_assert_int_eq(x1.exit_calls, 0);
	hold_let_go(&h);
	t_run();
	ck_assert_int_eq(pc.calls, 1);
	ck_assert_int_eq(pc.status, -ETIME);
	ck_assert_int_eq(t1.exit_calls, 0);
	ck_assert_str_eq(order, "x2,x1,p0");
	ck_assert_int_eq(x2.pending, 0); /* a close: nothing pending before the acquire failed */
	ck_assert(hm_saw(&x1, ETIME));
	ck_assert(hm_saw(&p0, ETIME));
	rsc_error_free(pc.err);
	hold_free(&h);
}
END_TEST


/* ------------------------------------------------- rsc_scope_fail's errnos */

/* rsc_scope_fail(3): -EINVAL for an err that is not negative, the scope left as it was. */
START_TEST(scope_fail_refuses_zero_and_positive_and_keeps_odd_negatives)
{
	static const int odd[] = { -ECANCELED, INT_MIN, -100000, -4095 };
	struct rsc_scope *s = open_scope(NULL, "s");
	struct rsc_error *err = NULL;
	struct hm m = { 0 };
	char text[256];
	unsigned i;

	ck_assert_int_eq(rsc_scope_fail(s, 0, "zero"), -EINVAL);
	ck_assert_int_eq(rsc_scope_fail(s, 1, "one"), -EINVAL);
	ck_assert_int_eq(rsc_scope_fail(s, EPROTO, "positive"), -EINVAL);
	ck_assert_int_eq(rsc_scope_fail(s, INT_MAX, "huge"), -EINVAL);
	/* Left as it was: open, pushes work, and a clean close has no error. */
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	hm_push(s, &m, "m");
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(m.exit_calls, 1);
	ck_assert_int_eq(m.pending, 0);
	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		struct hm x = { 0 };

		s = open_scope(NULL, "odd");
		hm_push(s, &x, "x");
		ck_assert_int_eq(rsc_scope_fail(s, odd[i], NULL), 0);
		ck_assert_int_eq(rsc_scope_fail(s, odd[i], NULL), -EALREADY);
		ck_assert_int_eq(rsc_scope_close_wait(s, &err), odd[i]);
		ck_assert_int_eq(x.pending, odd[i]);
		ck_assert_int_eq(x.pending_depth, 1);
		ck_assert_int_eq(rsc_error_errno(err), odd[i]);
		ck_assert_str_eq(rsc_error_op(err), "fail");
		ck_assert_str_eq(rsc_error_scope(err), "odd");
		ck_assert_str_eq(rsc_error_entry(err), "");
		ck_assert_int_gt(rsc_error_format(err, text, sizeof(text)), 0);
		ck_assert_ptr_nonnull(rsc_strerror(odd[i]));
		rsc_error_free(err);
		err = NULL;
	}
}
END_TEST

/*
 * rsc_scope_set_deadline(3): "A deadline ends when the scope starts
 * unwinding for any reason: ... its parent's unwind". A child's deadline
 * that comes due while the parent's unwind, busy with a newer child, has
 * not reached it yet: no -ETIMEDOUT, no count, the parent's error only.
 */
START_TEST(child_deadline_inside_its_parents_unwind_does_not_pass)
{
	struct rsc_scope *p = open_scope(NULL, "p"), *c1, *c2;
	struct hm x1 = { 0 }, x2 = { 0 };
	struct rsc_error *err = NULL;
	struct timespec ts = { 0, 60 * 1000000L };
	struct hold h;

	older_and_held_newer(p, &c1, &x1, &c2, &x2, &h);
	ck_assert_int_eq(rsc_scope_set_deadline(c1, 20, 0), 0);
	ck_assert_int_eq(rsc_scope_fail(p, -EPROTO, "body"), 0);
	run_until_exit_called(&x2);
	nanosleep(&ts, NULL);
	run_idle_turns();
	ck_assert_int_eq(x1.exit_calls, 0);
	hold_let_go(&h);
	ck_assert_int_eq(rsc_scope_close_wait(p, &err), -EPROTO);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	ck_assert_int_eq(x1.pending, -EPROTO);
	ck_assert(!hm_saw(&x1, ETIMEDOUT));
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 0);
	rsc_error_free(err);
	hold_free(&h);
}
END_TEST

/* A long deadline of a child its parent closes keeps nothing alive afterwards. */
START_TEST(parent_close_ends_a_childs_long_deadline_at_once)
{
	struct rsc_scope *p = open_scope(NULL, "p"), *c = open_scope(p, "c");
	struct timespec a, b;

	ck_assert_int_eq(rsc_scope_set_deadline(c, 10000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 20000, RSC_DEADLINE_MOVE_ON), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), 0);
	t_run();
	clock_gettime(CLOCK_MONOTONIC, &b);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
	ck_assert_int_lt(b.tv_sec - a.tv_sec, 2);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 0);
}
END_TEST

/* ------------------------------------------------ closing from the middle */

struct oc {
	int calls;
	int status;
	char *log;
	const char *name;
};

static char oc_log[256];

static void oc_cb(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct oc *o = data;

	(void)s;
	(void)err;
	o->calls++;
	o->status = status;
	snprintf(oc_log + strlen(oc_log), sizeof(oc_log) - strlen(oc_log), "%s%s",
		 oc_log[0] ? "," : "", o->name);
}

/*
 * Six scopes nested, each with an entry: closing the third closes the three
 * below it (innermost first, each scope's on-close once, as it unwinds),
 * the two above stay open and usable, and their close later hears nothing
 * of the first close.
 */
START_TEST(closing_the_middle_of_a_deep_tree_leaves_the_top_open)
{
	static const char *names[6] = { "l0", "l1", "l2", "l3", "l4", "l5" };
	struct rsc_scope *l[6];
	struct hm m[6];
	struct oc oc[6];
	struct closed cl = { 0 };
	struct rsc_scope *late;
	struct hm extra = { 0 };
	int i, before = t_fd_count();

	memset(m, 0, sizeof(m));
	memset(oc, 0, sizeof(oc));
	oc_log[0] = '\0';
	for (i = 0; i < 6; i++) {
		l[i] = open_scope(i ? l[i - 1] : NULL, names[i]);
		hm_push(l[i], &m[i], names[i]);
		oc[i].name = names[i];
		ck_assert_int_eq(rsc_scope_on_close(l[i], oc_cb, &oc[i]), 0);
	}
	t_run();
	ck_assert_int_eq(rsc_scope_fail(l[4], -EIO, "deep"), 0);
	ck_assert_int_eq(rsc_scope_close(l[2], on_closed, &cl), 0);
	t_run();
	ck_assert_str_eq(order, "l5,l4,l3,l2");
	ck_assert_str_eq(oc_log, "l5,l4,l3,l2");
	ck_assert_int_eq(cl.calls, 1);
	ck_assert_int_eq(cl.status, -EIO);
	ck_assert_int_eq(m[3].pending, -EIO);
	ck_assert_int_eq(rsc_scope_state(l[2]), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(l[5]), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(l[1]), RSC_SCOPE_OPEN);
	/* The top is untouched: it takes new children and entries. */
	late = open_scope(l[1], "late");
	hm_push(late, &extra, "extra");
	t_run();
	order[0] = '\0';
	ck_assert_int_eq(rsc_scope_close_wait(l[0], NULL), 0);
	ck_assert_str_eq(order, "extra,l1,l0");
	ck_assert_int_eq(m[1].pending, 0);
	for (i = 0; i < 6; i++)
		ck_assert_int_eq(oc[i].calls, 1);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST


/* ------------------------------------------------------ during a shutdown */

struct sib {
	struct rsc_scope *other;
	int calls;
	int r[3];
};

/* The newest top scope's on-close, inside the shutdown, acts on an older one. */
static void on_close_acts_on_older(struct rsc_scope *s, int status, const struct rsc_error *err,
				   void *data)
{
	struct sib *x = data;

	(void)s;
	(void)status;
	(void)err;
	x->calls++;
	x->r[0] = rsc_scope_close(x->other, on_closed, NULL);
	x->r[1] = rsc_scope_fail(x->other, -EPROTO, "late");
	x->r[2] = rsc_scope_close_graceful(x->other, 100, on_closed, NULL);
}

/*
 * rsc_scope_close(3): -EALREADY when the close was requested by "the unwind
 * of an ancestor (including rsc_loop_shutdown(3))". A failure is still
 * allowed; it reaches the shutdown's result, and the older scope's exits
 * see it, in their turn, each on-close running once.
 */
START_TEST(shutdown_owns_the_older_scopes_a_callback_would_close)
{
	struct rsc_scope *a = open_scope(NULL, "a"), *b = open_scope(NULL, "b");
	struct hm xa = { 0 }, xb = { 0 };
	struct sib x = { .other = a };
	struct oc oa = { .name = "a" };
	struct rsc_error *err = NULL;

	oc_log[0] = '\0';
	hm_push(a, &xa, "xa");
	hm_push(b, &xb, "xb");
	ck_assert_int_eq(rsc_scope_on_close(a, oc_cb, &oa), 0);
	ck_assert_int_eq(rsc_scope_on_close(b, on_close_acts_on_older, &x), 0);
	t_run();
	ck_assert_int_eq(rsc_loop_shutdown(t_loop, &err), -EPROTO);
	t_loop = NULL;
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], -EALREADY);
	ck_assert_int_eq(x.r[1], 0);
	ck_assert_int_eq(x.r[2], -EALREADY);
	ck_assert_int_eq(oa.calls, 1);
	ck_assert_int_eq(oa.status, -EPROTO);
	ck_assert_str_eq(order, "xb,xa");
	ck_assert_int_eq(xa.pending, -EPROTO);
	ck_assert_int_eq(xb.pending, 0);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "late");
	ck_assert_str_eq(rsc_error_scope(err), "a");
	rsc_error_free(err);
}
END_TEST

/* ------------------------------------------------------------- the suite */

static void reset_order(void)
{
	order[0] = '\0';
}

Suite *make_hostile_scopes_suite(void)
{
	Suite *s = suite_create("hostile_scopes");
	TCase *tc = tcase_create("scopes");

	t_add_fixture(tc);
	tcase_add_checked_fixture(tc, reset_order, NULL);
	tcase_add_test(tc, close_of_a_child_the_parents_unwind_has_not_reached_is_already);
	tcase_add_test(tc, graceful_close_of_a_child_inside_its_parents_unwind_is_already);
	tcase_add_test(tc, child_closed_after_its_parents_close_request_goes_in_its_turn);
	tcase_add_test(tc, child_failed_inside_its_parents_unwind_waits_its_turn);
	tcase_add_test(tc, child_acquire_failing_inside_its_parents_unwind_waits_its_turn);
	tcase_add_test(tc, scope_fail_refuses_zero_and_positive_and_keeps_odd_negatives);
	tcase_add_test(tc, child_deadline_inside_its_parents_unwind_does_not_pass);
	tcase_add_test(tc, parent_close_ends_a_childs_long_deadline_at_once);
	tcase_add_test(tc, closing_the_middle_of_a_deep_tree_leaves_the_top_open);
	tcase_add_test(tc, shutdown_owns_the_older_scopes_a_callback_would_close);
	suite_add_tcase(s, tc);
	return s;
}
