/* SPDX-License-Identifier: MIT */
/*
 * Hostile probes, second pass, of deadlines (rsc_scope_set_deadline(3)),
 * graceful closes and their stats (rsc_scope_close_graceful(3)),
 * RSC_SHUTDOWN_ON_RELEASE and rsc_loop_post(3) at the end of a loop. Each
 * one checks a promise of the pages against a side effect: the time a
 * callback ran, the error an exit saw, the counts the stats report,
 * /proc/self/fd, what a peer reads. Every wait is bounded by a guard timer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------- the guard */

/* Run t_loop until *@flag is at least @want; fail, not hang, when the guard fires. */
static void run_until(struct t_guard *g, const int *flag, int want)
{
	while (*flag < want) {
		ck_assert_msg(!g->fired, "guard fired: still waiting (%d of %d)", *flag, want);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	}
}

/* ------------------------------------------------------- close callbacks */

struct closed {
	int calls, status;
	long at;
	char op[32];
	char entry[32];
	unsigned drained, cancelled, failed;
	int stats_ret;
};

static void note_closed(struct rsc_scope *s, int status, const struct rsc_error *err,
			void *data)
{
	struct closed *c = data;

	c->calls++;
	c->status = status;
	c->at = t_now_ms();
	snprintf(c->op, sizeof(c->op), "%s", err && rsc_error_op(err) ? rsc_error_op(err) : "");
	snprintf(c->entry, sizeof(c->entry), "%s",
		 err && rsc_error_entry(err) ? rsc_error_entry(err) : "");
	c->stats_ret = rsc_scope_close_stats(s, &c->drained, &c->cancelled, &c->failed);
}

struct io_seen {
	int calls, res;
	long at;
};

static void note_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct io_seen *w = data;

	(void)e;
	(void)buf;
	w->calls++;
	w->res = res;
	w->at = t_now_ms();
}

/* ------------------------------------------------------------ deadlines */

/* A deadline that passed on the clock before the loop noticed, then moved
 * later or cleared, never fires: it is checked against the clock when the
 * timer fires, and the move came first. */
START_TEST(deadline_moved_or_cleared_after_its_time_but_before_the_loop_saw_it)
{
	struct rsc_scope *later, *cleared;
	struct closed c1 = { 0 }, c2 = { 0 };
	struct t_guard g;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "later", &later), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cleared", &cleared), 0);
	ck_assert_int_eq(rsc_scope_on_close(later, note_closed, &c1), 0);
	ck_assert_int_eq(rsc_scope_on_close(cleared, note_closed, &c2), 0);
	/* 40 ms, not less: a run stalled that long on a loaded machine would
	 * reap the timer itself, and the deadlines pass before they are moved. */
	ck_assert_int_eq(rsc_scope_set_deadline(later, 40, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(cleared, 40, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0); /* the timer is armed */
	sleep_ms(100);						     /* both are past due now */
	ck_assert_int_eq(rsc_scope_set_deadline(later, 10000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(cleared, 0, 0), 0);
	t_guard_start(&g, t_loop, 150);
	run_until(&g, &g.fired, 1);
	ck_assert_int_eq(c1.calls + c2.calls, 0);
	ck_assert_int_eq(rsc_scope_state(later), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_state(cleared), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 0);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_scope_close_wait(later, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(cleared, NULL), 0);
	ck_assert_int_eq(c1.calls + c2.calls, 2);
	ck_assert_int_eq(c1.status, 0);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0); /* no timer left behind */
}
END_TEST

/* The largest ms is accepted and keeps the loop alive; clearing it lets
 * RSC_RUN_DEFAULT return at once. Unknown flags are refused even with 0. */
START_TEST(huge_deadline_is_kept_and_cleared_and_bad_flags_change_nothing)
{
	struct rsc_scope *s;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 30, 0), 0);
	/* Refused: the 30 ms deadline stays as it was. */
	ck_assert_int_eq(rsc_scope_set_deadline(s, 0, 0x2), -EINVAL);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 100000, ~0U), -EINVAL);
	t0 = t_now_ms();
	t_run();
	ck_assert_int_ge(t_now_ms() - t0, 25);
	ck_assert_int_lt(t_now_ms() - t0, 3000);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s2", &s), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, ~0U, RSC_DEADLINE_MOVE_ON), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 1);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 0, 0), 0);
	t0 = t_now_ms();
	t_run();
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* Three levels: the middle one's deadline is the earliest, and it alone
 * (with the grandchild) unwinds; the top stays open, then its own later
 * deadline takes what is left. */
START_TEST(nested_deadlines_the_earliest_wins_at_any_depth)
{
	struct rsc_scope *top, *mid, *leaf, *side;
	struct closed ct = { 0 }, cm = { 0 }, cl = { 0 };
	struct io_seen io = { 0 };
	struct rsc_entry *e;
	struct t_guard g;
	int peer;
	char buf[4];
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "top", &top), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, top, "mid", &mid), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, mid, "leaf", &leaf), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, top, "side", &side), 0);
	e = t_adopted_pair(leaf, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, note_io, &io), 0);
	ck_assert_int_eq(rsc_scope_on_close(top, note_closed, &ct), 0);
	ck_assert_int_eq(rsc_scope_on_close(mid, note_closed, &cm), 0);
	ck_assert_int_eq(rsc_scope_on_close(leaf, note_closed, &cl), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_set_deadline(top, 400, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(leaf, 5000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(mid, 40, 0), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cm.calls, 1);
	ck_assert_int_ge(cm.at - t0, 39);
	ck_assert_int_lt(cm.at - t0, 390);
	ck_assert_int_eq(cm.status, -ETIMEDOUT);
	ck_assert_str_eq(cm.op, "deadline");
	ck_assert_str_eq(cm.entry, ""); /* no entry named */
	ck_assert_int_eq(io.res, -ECANCELED);
	ck_assert_int_eq(ct.calls, 0);
	ck_assert_int_eq(rsc_scope_state(top), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_state(side), RSC_SCOPE_OPEN);
	/* The leaf was closed in mid's unwind and its own deadline ended with it. */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 1);
	run_until(&g, &ct.calls, 1);
	ck_assert_int_ge(ct.at - t0, 399);
	ck_assert_int_eq(ct.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 2);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_scope_close_wait(top, NULL), -ETIMEDOUT);
	close(peer);
}
END_TEST

/* A child whose deadline was set later than its parent's goes with the
 * parent's, never at its own time, and sees the parent's -ETIMEDOUT. */
static int exit_errno_seen[4], exit_calls;
static char exit_op_seen[4][32];

static int noting_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)arg;
	if (exit_calls < 4) {
		exit_errno_seen[exit_calls] = pending ? rsc_error_errno(pending) : 0;
		snprintf(exit_op_seen[exit_calls], sizeof(exit_op_seen[0]), "%s",
			 pending ? rsc_error_op(pending) : "");
	}
	exit_calls++;
	return 0;
}

static int suppressing_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)noting_exit(e, pending, arg);
	return RSC_EXIT_SUPPRESS;
}

START_TEST(exits_see_the_deadline_and_a_suppression_ends_it)
{
	struct rsc_scope *s, *child;
	struct closed c = { 0 };
	struct t_guard g;

	exit_calls = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_defer(s, noting_exit, NULL, NULL), 0);	  /* oldest: after the suppression */
	ck_assert_int_eq(rsc_defer(s, suppressing_exit, NULL, NULL), 0); /* sees it, suppresses */
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "child", &child), 0);
	ck_assert_int_eq(rsc_defer(child, noting_exit, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(child, 10000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 20, 0), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, note_closed, &c), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(exit_calls, 3);
	ck_assert_int_eq(exit_errno_seen[0], -ETIMEDOUT); /* the child's exit, first */
	ck_assert_str_eq(exit_op_seen[0], "deadline");
	ck_assert_int_eq(exit_errno_seen[1], -ETIMEDOUT);
	ck_assert_int_eq(exit_errno_seen[2], 0); /* suppressed above it */
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 1);

	/* MOVE_ON: no exit sees an error, and a failing release still counts. */
	exit_calls = 0;
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "m", &s), 0);
	ck_assert_int_eq(rsc_defer(s, noting_exit, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 10, RSC_DEADLINE_MOVE_ON), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, note_closed, &c), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(exit_calls, 1);
	ck_assert_int_eq(exit_errno_seen[0], 0);
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 2);
}
END_TEST

/* Re-armed from inside an I/O callback (the page's own example): a request
 * that arrives before the deadline moves it later, and the scope lives on. */
struct rearm {
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[4];
	int got, ret;
};

static void rearm_on_data(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct rearm *r = data;

	(void)buf;
	if (res <= 0)
		return;
	r->got++;
	r->ret = rsc_scope_set_deadline(r->s, 400, 0);
	if (r->ret == 0)
		r->ret = rsc_recv(e, r->buf, sizeof(r->buf), 0, rearm_on_data, r);
}

START_TEST(deadline_rearmed_from_an_io_callback_moves_it_later)
{
	struct rearm r = { 0 };
	struct closed c = { 0 };
	struct t_guard g;
	int peer, i;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "conn", &r.s), 0);
	r.e = t_adopted_pair(r.s, &peer);
	ck_assert_int_eq(rsc_recv(r.e, r.buf, sizeof(r.buf), 0, rearm_on_data, &r), 0);
	ck_assert_int_eq(rsc_scope_on_close(r.s, note_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(r.s, 400, 0), 0);
	t_guard_start(&g, t_loop, 5000);
	t0 = t_now_ms();
	/* Five requests 100 ms apart: 500 ms in all, past the first 400. */
	for (i = 0; i < 5; i++) {
		long until = t_now_ms() + 100;

		while (t_now_ms() < until)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		ck_assert_int_eq(write(peer, "x", 1), 1);
		run_until(&g, &r.got, i + 1);
		ck_assert_int_eq(r.ret, 0);
		ck_assert_int_eq(c.calls, 0);
	}
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_ge(c.at - t0, 500 + 395);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(r.s, NULL), -ETIMEDOUT);
	close(peer);
}
END_TEST

/* From a custom exit of a closing sibling, from an on-close callback, and
 * from the trace callback, a deadline may be set on an open scope; on the
 * scope that is unwinding it is -ESHUTDOWN. */
struct hook_rearm {
	struct rsc_scope *target, *self;
	int ret_other, ret_self;
	int trace_ret;
	bool in_trace;
};

static struct hook_rearm hr;

static int rearm_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	hr.ret_other = rsc_scope_set_deadline(hr.target, 30, 0);
	hr.ret_self = rsc_scope_set_deadline(hr.self, 30, 0);
	return 0;
}

static void rearm_in_trace(struct recorder *r, const struct event *e)
{
	(void)r;
	if (e->ev == RSC_EV_SCOPE_CLOSED && !strcmp(e->scope, "self") && !hr.in_trace) {
		hr.in_trace = true;
		hr.trace_ret = rsc_scope_set_deadline(hr.target, 200, RSC_DEADLINE_MOVE_ON);
	}
}

START_TEST(deadline_set_from_an_exit_and_the_trace_callback)
{
	struct closed c = { 0 };
	struct t_guard g;
	long t0;

	memset(&hr, 0, sizeof(hr));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "target", &hr.target), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "self", &hr.self), 0);
	ck_assert_int_eq(rsc_defer(hr.self, rearm_exit, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_on_close(hr.target, note_closed, &c), 0);
	t_rec->after = rearm_in_trace;
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close(hr.self, NULL, NULL), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	t_rec->after = NULL;
	ck_assert_int_eq(hr.ret_other, 0);
	ck_assert_int_eq(hr.ret_self, -ESHUTDOWN);
	/* The trace callback moved the exit's 30 ms later, to 200 ms and MOVE_ON
	 * (the page lists no -EDEADLK for it). */
	ck_assert_int_eq(hr.trace_ret, 0);
	ck_assert_int_ge(c.at - t0, 195);
	ck_assert_int_lt(c.at - t0, 2000);
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(rsc_scope_close_wait(hr.target, NULL), c.status);
}
END_TEST

/* A deadline on a scope being moved: into a parent with an earlier
 * deadline it goes with the parent; out of a parent whose deadline then
 * passes it stays open. */
START_TEST(moved_scope_follows_its_new_parents_deadline_not_the_old)
{
	struct rsc_scope *early, *late, *a, *b;
	struct closed ca = { 0 }, cb = { 0 }, ce = { 0 };
	struct io_seen ia = { 0 }, ib = { 0 };
	struct rsc_entry *ea, *eb;
	struct t_guard g;
	int pa, pb;
	char b1[4], b2[4];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "early", &early), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "late", &late), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, late, "a", &a), 0);	  /* moves into early */
	ck_assert_int_eq(rsc_scope_open(t_loop, early, "b", &b), 0);	  /* moves out of early */
	ea = t_adopted_pair(a, &pa);
	eb = t_adopted_pair(b, &pb);
	ck_assert_int_eq(rsc_recv(ea, b1, sizeof(b1), 0, note_io, &ia), 0);
	ck_assert_int_eq(rsc_recv(eb, b2, sizeof(b2), 0, note_io, &ib), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(a, 10000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(early, 40, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(late, 10000, 0), 0);
	ck_assert_int_eq(rsc_scope_on_close(a, note_closed, &ca), 0);
	ck_assert_int_eq(rsc_scope_on_close(b, note_closed, &cb), 0);
	ck_assert_int_eq(rsc_scope_on_close(early, note_closed, &ce), 0);
	ck_assert_int_eq(rsc_scope_move(a, early), 0);
	ck_assert_int_eq(rsc_scope_move(b, NULL), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &ce.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(ca.calls, 1);
	ck_assert_int_eq(ia.res, -ECANCELED);
	ck_assert_int_eq(ce.status, -ETIMEDOUT);
	ck_assert_int_eq(cb.calls, 0);
	ck_assert_int_eq(ib.calls, 0); /* b's receive was not cut */
	ck_assert_int_eq(rsc_scope_state(b), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_state(late), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(early, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_set_deadline(a, 10, 0), -ESTALE);
	ck_assert_int_eq(write(pb, "y", 1), 1);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &ib.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(ib.res, 1);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(late, NULL), 0);
	close(pa);
	close(pb);
}
END_TEST

/* A parent's deadline while a closed child's custom exit still holds its
 * release: what is in flight in the parent is cancelled at once, but the
 * parent's unwind waits for that release, which saw no error. */
struct slow_exit {
	struct __kernel_timespec ts;
	int saw, calls;
	long done_at;
};

static struct slow_exit slow;

static int slow_enter(struct rsc_entry *e, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)arg;
	if (ret < 0)
		return ret;
	io_uring_prep_nop(sqe);
	return 0;
}

static int slow_exit_fn(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)arg;
	slow.calls++;
	slow.saw = pending ? rsc_error_errno(pending) : 0;
	if (ret < 0)
		return ret;
	slow.ts.tv_sec = 0;
	slow.ts.tv_nsec = 300 * 1000000L;
	/* A release that takes 300 ms: a timeout, whose -ETIME is no error here. */
	io_uring_prep_timeout(sqe, &slow.ts, 0, 0);
	return 0;
}

static const struct rsc_manager slow_mgr = {
	.size = sizeof(struct rsc_manager),
	.name = "slow",
	.enter = slow_enter,
	.exit = slow_exit_fn,
};

START_TEST(parent_deadline_while_a_childs_custom_exit_holds_its_release)
{
	struct rsc_scope *p, *child;
	struct rsc_entry *e, *pe;
	struct closed cp = { 0 }, cc = { 0 };
	struct io_seen io = { 0 };
	struct t_guard g;
	int peer;
	char buf[4];
	long t0;

	memset(&slow, 0, sizeof(slow));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	pe = t_adopted_pair(p, &peer);
	ck_assert_int_eq(rsc_recv(pe, buf, sizeof(buf), 0, note_io, &io), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "child", &child), 0);
	ck_assert_int_eq(rsc_push(child, &slow_mgr, NULL, &e), 0);
	ck_assert_int_eq(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, note_closed, &cp), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close(child, note_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 30, 0), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &io.calls, 1);
	/* Cancelled at the deadline, not after the child's slow release. */
	ck_assert_int_eq(io.res, -ECANCELED);
	ck_assert_int_lt(io.at - t0, 280);
	run_until(&g, &cp.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(slow.calls, 1);
	ck_assert_int_eq(slow.saw, 0); /* its close came before the deadline */
	ck_assert_int_eq(cc.calls, 1);
	ck_assert_int_ge(cp.at - t0, 295);
	ck_assert_int_ge(cp.at, cc.at);
	ck_assert_int_eq(cp.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	close(peer);
}
END_TEST

/* A deadline moved earlier from a hook that holds reserved SQEs, with the SQ
 * full: if the call fails (-EBUSY), "the scope's deadline is left as it
 * was": the scope still times out at its old time, it is not forgotten. */
struct busy_rearm {
	struct rsc_scope *victim;
	int ret, calls;
};

static struct busy_rearm br;

static int rearm_with_sq_full(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct io_uring_sqe *sqe;

	(void)pending;
	(void)arg;
	br.calls++;
	ck_assert_int_eq(rsc_entry_get_sqes(e, 1, &sqe), 0);
	io_uring_prep_nop(sqe);
	/* The next SQE asked for finds the SQ full; inside a hook it cannot flush. */
	ck_assert_int_eq(rsc_fault_set(t_loop, "sq_full:1:EBUSY"), 0);
	br.ret = rsc_scope_set_deadline(br.victim, 100, 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, ""), 0);
	return 0;
}

START_TEST(deadline_refused_for_want_of_an_sqe_is_left_as_it_was)
{
	struct rsc_scope *a;
	struct closed ca = { 0 }, cv = { 0 };
	struct t_guard g;
	long t0;

	memset(&br, 0, sizeof(br));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "victim", &br.victim), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_defer(a, rearm_with_sq_full, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_on_close(a, note_closed, &ca), 0);
	ck_assert_int_eq(rsc_scope_on_close(br.victim, note_closed, &cv), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_set_deadline(br.victim, 400, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(a, 20, 0), 0);
	t_guard_start(&g, t_loop, 1500);
	run_until(&g, &ca.calls, 1);
	ck_assert_int_eq(br.calls, 1);
	ck_assert_msg(br.ret == 0 || br.ret == -EBUSY, "set_deadline in the hook: %d", br.ret);
	run_until(&g, &cv.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(cv.status, -ETIMEDOUT);
	if (br.ret == 0) {
		ck_assert_int_ge(cv.at - t0, 99);
		ck_assert_int_lt(cv.at - t0, 395);
	} else {
		ck_assert_int_ge(cv.at - t0, 399); /* the old deadline, kept */
	}
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(br.victim, NULL), -ETIMEDOUT);
}
END_TEST

/* Many deadlines moved earlier, later, cleared and set again, in a random
 * order (fixed seed): none passes before its last time, none cleared
 * passes at all, each passes once, and the counter agrees. */
#define N_HEAP 48

struct heap_probe {
	struct closed c;
	long due; /* 0: cleared */
};

START_TEST(many_deadlines_rearmed_at_random_never_pass_early_or_twice)
{
	static struct heap_probe hp[N_HEAP];
	struct rsc_scope *sc[N_HEAP];
	struct t_guard g;
	unsigned seed = 12345;
	int i, round, due = 0, fired = 0;

	memset(hp, 0, sizeof(hp));
	for (i = 0; i < N_HEAP; i++) {
		char name[16];

		snprintf(name, sizeof(name), "h%d", i);
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, name, &sc[i]), 0);
		ck_assert_int_eq(rsc_scope_on_close(sc[i], note_closed, &hp[i].c), 0);
	}
	for (round = 0; round < 6; round++) {
		for (i = 0; i < N_HEAP; i++) {
			unsigned r = rand_r(&seed);
			unsigned ms = 20 + r % 280;

			if (hp[i].c.calls)
				continue;
			if (r % 7 == 0) {
				ck_assert_int_eq(rsc_scope_set_deadline(sc[i], 0, 0), 0);
				hp[i].due = 0;
			} else {
				/* The clock first: the library reads its own inside the call,
				 * later, so its deadline is at least this one (a stall between
				 * the two made the test see an early pass that was not). */
				long before = t_now_ms();

				ck_assert_int_eq(rsc_scope_set_deadline(sc[i], ms, (r >> 8) & 1), 0);
				hp[i].due = before + ms;
			}
		}
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		for (i = 0; i < N_HEAP; i++)
			ck_assert_msg(!hp[i].c.calls || hp[i].c.at >= hp[i].due - 1,
				      "h%d passed %ld ms early", i, hp[i].due - hp[i].c.at);
	}
	for (i = 0; i < N_HEAP; i++)
		due += hp[i].due != 0 && !hp[i].c.calls;
	t_guard_start(&g, t_loop, 600);
	run_until(&g, &g.fired, 1);
	t_guard_stop(&g);
	for (i = 0; i < N_HEAP; i++) {
		if (hp[i].due && !hp[i].c.calls)
			ck_abort_msg("h%d never passed", i);
		ck_assert_int_le(hp[i].c.calls, 1);
		if (hp[i].c.calls) {
			ck_assert_msg(hp[i].c.at >= hp[i].due - 1, "h%d passed early", i);
			fired++;
		}
		if (!hp[i].due) {
			ck_assert_int_eq(hp[i].c.calls, 0);
			ck_assert_int_eq(rsc_scope_state(sc[i]), RSC_SCOPE_OPEN);
		}
	}
	ck_assert_int_gt(due, 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), fired);
	for (i = 0; i < N_HEAP; i++)
		ck_assert_int_eq(rsc_scope_close(sc[i], NULL, NULL), hp[i].c.calls ? 0 : 0);
	t_run();
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
}
END_TEST

/* A deadline over a listener whose accept is in flight while clients keep
 * connecting: the accept is cancelled, every connection that arrives late
 * is closed, and /proc/self/fd is back where it was. */
struct acc_count {
	int conns, finals, after_close;
	bool closed;
};

static void count_accepts(struct rsc_entry *l, int res, struct rsc_scope *cs,
			  struct rsc_entry *conn, void *data)
{
	struct acc_count *a = data;

	(void)l;
	(void)conn;
	if (res >= 0) {
		a->conns++;
		a->after_close += a->closed;
		(void)rsc_scope_close(cs, NULL, NULL);
	} else {
		a->finals++;
	}
}

struct clients {
	struct sockaddr_in to;
	volatile int stop;
	int made;
	pthread_t th;
};

static void *connect_loop(void *arg)
{
	struct clients *c = arg;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE) && c->made < 400) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			break;
		if (connect(fd, (struct sockaddr *)&c->to, sizeof(c->to)) == 0)
			__atomic_add_fetch(&c->made, 1, __ATOMIC_RELEASE);
		close(fd);
		sleep_ms(1);
	}
	return NULL;
}

START_TEST(deadline_over_a_busy_listener_closes_every_late_connection)
{
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct acc_count a = { 0 };
	struct closed c = { 0 };
	struct clients cl = { 0 };
	struct t_guard g;
	int before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 64, &cl.to);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, count_accepts, &a), 0);
	ck_assert_int_eq(rsc_scope_on_close(srv, note_closed, &c), 0);
	ck_assert_int_eq(pthread_create(&cl.th, NULL, connect_loop, &cl), 0);
	/* A client in the backlog before the deadline starts: the first turn
	 * accepts it even where threads crawl (valgrind runs one at a time). */
	for (int i = 0; i < 5000 && !__atomic_load_n(&cl.made, __ATOMIC_ACQUIRE); i++) {
		sched_yield();
		sleep_ms(1);
	}
	ck_assert_int_eq(rsc_scope_set_deadline(srv, 80, 0), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &c.calls, 1);
	a.closed = true;
	/* Clients go on connecting to a listener that is gone or going. */
	sleep_ms(20);
	__atomic_store_n(&cl.stop, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(pthread_join(cl.th, NULL), 0);
	t_guard_stop(&g);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(a.finals, 1);
	ck_assert_int_eq(a.after_close, 0);
	ck_assert_int_gt(a.conns, 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), -ETIMEDOUT);
	t_run();
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* Every timer that was pushed ends with exactly one call of its callback,
 * however it ends: its scope closed, its own release, a failure, or a
 * deadline, in the same turn as the push or once it runs. */
struct tcount {
	int calls, res;
};

static void count_timer(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct tcount *t = data;

	(void)e;
	(void)buf;
	t->calls++;
	t->res = res;
}

START_TEST(every_timer_ends_with_exactly_one_callback)
{
	struct rsc_scope *s[6];
	struct rsc_entry *te[6];
	struct tcount tc[6] = { 0 }, fire = { 0 };
	struct closed dl = { 0 };
	struct t_guard g;
	int i;

	for (i = 0; i < 6; i++) {
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "t", &s[i]), 0);
		ck_assert_int_eq(rsc_timer(s[i], 60000, count_timer, &tc[i], &te[i]), 0);
	}
	ck_assert_int_eq(rsc_scope_close(s[0], NULL, NULL), 0);     /* before it entered */
	ck_assert_int_eq(rsc_entry_release(te[1], NULL, NULL), 0); /* likewise */
	ck_assert_int_eq(rsc_scope_fail(s[2], -EIO, NULL), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s[3], 30, 0), 0);
	ck_assert_int_eq(rsc_timer(s[5], 1, count_timer, &fire, NULL), 0);
	ck_assert_int_eq(rsc_scope_on_close(s[3], note_closed, &dl), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &dl.calls, 1);
	run_until(&g, &fire.calls, 1);
	/* Running now: released and closed once it has entered. */
	ck_assert_int_eq(rsc_entry_release(te[4], NULL, NULL), 0);
	run_until(&g, &tc[4].calls, 1);
	ck_assert_int_eq(rsc_scope_close(s[5], NULL, NULL), 0);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_scope_close_wait(s[2], NULL), -EIO);
	ck_assert_int_eq(rsc_scope_close_wait(s[3], NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(s[1], NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s[4], NULL), 0);
	t_run();
	for (i = 0; i < 5; i++) {
		ck_assert_msg(tc[i].calls == 1, "timer %d: %d calls", i, tc[i].calls);
		ck_assert_msg(tc[i].res == -ECANCELED, "timer %d: %d", i, tc[i].res);
	}
	ck_assert_int_eq(tc[5].calls, 1);
	ck_assert_int_eq(fire.calls, 1);
	ck_assert_int_eq(fire.res, -ETIME);
}
END_TEST

/* rsc_loop_post is safe "at any time": from an enter hook, an exit hook and
 * the trace callback too. Each fn runs once, later, never inside the call. */
static int hook_posts;

static void hook_post_fn(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	hook_posts++;
}

static int posting_enter(struct rsc_entry *e, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)arg;
	if (ret < 0)
		return ret;
	io_uring_prep_nop(sqe);
	ck_assert_int_eq(rsc_loop_post(t_loop, hook_post_fn, NULL), 0);
	ck_assert_int_eq(hook_posts, 0);
	return 0;
}

static int posting_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	ck_assert_int_eq(rsc_loop_post(t_loop, hook_post_fn, NULL), 0);
	return 0;
}

static void post_in_trace(struct recorder *r, const struct event *e)
{
	(void)r;
	if (e->ev == RSC_EV_SCOPE_CLOSED && !strcmp(e->scope, "hooks"))
		ck_assert_int_eq(rsc_loop_post(t_loop, hook_post_fn, NULL), 0);
}

static const struct rsc_manager posting_mgr = {
	.size = sizeof(struct rsc_manager),
	.name = "posting",
	.enter = posting_enter,
	.exit = posting_exit,
};

START_TEST(posts_from_hooks_and_the_trace_callback_run_once_each)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int before_run;

	hook_posts = 0;
	t_rec->after = post_in_trace;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "hooks", &s), 0);
	ck_assert_int_eq(rsc_push(s, &posting_mgr, NULL, &e), 0);
	ck_assert_int_eq(rsc_entry_wait(e), 0);
	before_run = hook_posts;
	ck_assert_int_le(before_run, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	t_run();
	t_rec->after = NULL;
	ck_assert_int_eq(hook_posts, 3);
}
END_TEST

/* rsc_loop_shutdown closes the top scopes newest first; an older scope's
 * deadline that passes while a newer one's grace holds the shutdown has
 * ended with the shutdown's unwind: it is heard as a clean close. */
START_TEST(shutdown_ends_a_deadline_that_would_pass_during_a_newer_scopes_grace)
{
	struct rsc_loop *l;
	struct rsc_scope *older, *newer;
	struct rsc_entry *e;
	struct closed co = { 0 }, cn = { 0 };
	struct io_seen r = { 0 };
	struct rsc_error *err = NULL;
	char b[4];
	int sv[2], before = t_fd_count();
	long t0;

	ck_assert_int_eq(rsc_loop_new(&l, 16, 0), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "older", &older), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "newer", &newer), 0);
	ck_assert_int_eq(rsc_adopt(newer, sv[0], 0, &e), 0);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, note_io, &r), 0);
	ck_assert_int_eq(rsc_scope_on_close(older, note_closed, &co), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(older, 60, 0), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(newer, 250, note_closed, &cn), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_ge(t_now_ms() - t0, 245);
	ck_assert_int_eq(cn.calls, 1);
	ck_assert_int_eq(cn.cancelled, 1);
	ck_assert_int_eq(co.calls, 1);
	ck_assert_int_eq(co.status, 0);
	ck_assert_int_ge(co.at, cn.at); /* newest first */
	close(sv[1]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* -------------------------------------------------------- graceful close */

/* The stats, exactly: two entries that drain (one of them in a child), one
 * cut off at the end of the grace, one whose release fails, one idle. */
static int failing_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return -EIO;
}

START_TEST(graceful_stats_count_drained_cut_and_failed_exactly)
{
	struct rsc_scope *srv, *c1, *c2;
	struct rsc_entry *e1, *e2, *e3, *idle;
	struct io_seen r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
	struct closed c = { 0 };
	struct t_guard g;
	char b1[4], b2[4], b3[4];
	int p1, p2, p3, pi;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_defer(srv, failing_exit, NULL, NULL), 0);
	idle = t_adopted_pair(srv, &pi);
	e3 = t_adopted_pair(srv, &p3);
	ck_assert_int_eq(rsc_scope_open(t_loop, srv, "c1", &c1), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, srv, "c2", &c2), 0);
	e1 = t_adopted_pair(c1, &p1);
	e2 = t_adopted_pair(c2, &p2);
	ck_assert_int_eq(rsc_recv(e1, b1, sizeof(b1), 0, note_io, &r1), 0);
	ck_assert_int_eq(rsc_recv(e2, b2, sizeof(b2), 0, note_io, &r2), 0);
	ck_assert_int_eq(rsc_recv(e3, b3, sizeof(b3), 0, note_io, &r3), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 400, note_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 400, note_closed, &c), -EALREADY);
	ck_assert_int_eq(rsc_scope_close(srv, NULL, NULL), -EALREADY);
	t_guard_start(&g, t_loop, 3000);
	ck_assert_int_eq(write(p1, "a", 1), 1);
	run_until(&g, &r1.calls, 1);
	ck_assert_int_eq(write(p3, "c", 1), 1);
	run_until(&g, &r3.calls, 1);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(r1.res, 1);
	ck_assert_int_eq(r3.res, 1);
	ck_assert_int_eq(r2.res, -ECANCELED);
	ck_assert_int_ge(c.at - t0, 395);
	ck_assert_int_lt(c.at - t0, 400 + 400);
	ck_assert_int_eq(c.stats_ret, 0);
	ck_assert_int_eq(c.drained, 2);
	ck_assert_int_eq(c.cancelled, 1);
	ck_assert_int_eq(c.failed, 1);
	ck_assert_int_eq(c.status, -EIO);
	ck_assert_int_eq(rsc_scope_close_stats(srv, NULL, NULL, NULL), -ESTALE);
	(void)idle;
	close(p1);
	close(p2);
	close(p3);
	close(pi);
}
END_TEST

/*
 * rsc_scope_close_stats(3): an accept the graceful close cuts (it stops
 * acquiring) was not let finish, so its listener counts in neither *drained
 * nor *cancelled, also when a failure (@how 0) or a deadline that passed
 * (@how 1) ends the grace before that accept's cancel has completed (as it
 * does when the grace ends by its bound, @how 2). A receive in flight is
 * the one op cut.
 */
static void listener_cut_in_the_grace(int how)
{
	struct rsc_scope *srv;
	struct rsc_entry *l, *e;
	struct acc_count a = { 0 };
	struct io_seen r = { 0 };
	struct closed c = { 0 };
	struct sockaddr_in at;
	struct t_guard g;
	char b[4];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 8, &at);
	e = t_adopted_pair(srv, &peer);
	ck_assert_int_eq(rsc_accept(l, 0, count_accepts, &a), 0);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, note_io, &r), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	if (how == 1) {
		ck_assert_int_eq(rsc_scope_set_deadline(srv, 5, 0), 0);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		usleep(10000); /* due before the close is asked */
	}
	ck_assert_int_eq(rsc_scope_close_graceful(srv, how == 2 ? 30 : 0, note_closed, &c), 0);
	if (how == 0)
		ck_assert_int_eq(rsc_scope_fail(srv, -EIO, "body"), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(a.finals, 1);
	ck_assert_int_eq(r.res, -ECANCELED);
	ck_assert_int_eq(c.stats_ret, 0);
	ck_assert_msg(c.cancelled == 1, "how %d: %u cancelled (the listener counted)", how, c.cancelled);
	ck_assert_int_eq(c.drained, 0);
	close(peer);
}

START_TEST(listener_cut_by_a_grace_counts_in_neither_stat)
{
	listener_cut_in_the_grace(0);
	listener_cut_in_the_grace(1);
	listener_cut_in_the_grace(2);
}
END_TEST

/* X, @a's newest child, in a graceful close its running @ms timer holds (its
 * result in @xt): once @a closes, X holds @a's unwind for about @ms. */
static void hold_the_unwind_of(struct rsc_scope *a, unsigned ms, struct io_seen *xt)
{
	struct rsc_scope *x;
	struct rsc_entry *t;

	ck_assert_int_eq(rsc_scope_open(t_loop, a, "X", &x), 0);
	ck_assert_int_eq(rsc_timer(x, ms, note_io, xt, &t), 0);
	ck_assert_int_eq(rsc_entry_wait(t), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(x, 0, NULL, NULL), 0);
}

/*
 * rsc_scope_set_deadline(3): a failure above a scope in its grace ends the
 * grace and its deadline at once. Here the failure waits for its LIFO turn
 * (F fails after A's unwind began, behind the newer X's 300 ms grace): the
 * deadline of G, below F, was forgotten then, but G's grace went on until
 * F's turn. It ends at once now, its receive cut (counted cancelled).
 */
START_TEST(failure_waiting_for_its_turn_ends_a_grace_below_at_once)
{
	struct rsc_scope *a, *f, *g;
	struct rsc_entry *e;
	struct io_seen r = { 0 }, xt = { 0 };
	struct closed cg = { 0 }, ca = { 0 };
	struct t_guard guard;
	char b[4];
	int peer;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "A", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, a, "F", &f), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, f, "G", &g), 0);
	e = t_adopted_pair(g, &peer);
	hold_the_unwind_of(a, 300, &xt);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, note_io, &r), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_set_deadline(g, 100, 0), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(g, 0, note_closed, &cg), 0);
	ck_assert_int_eq(rsc_scope_close(a, note_closed, &ca), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_state(a), RSC_SCOPE_UNWINDING);
	ck_assert_int_eq(rsc_scope_fail(f, -EIO, "body"), 0);
	t_guard_start(&guard, t_loop, 3000);
	run_until(&guard, &cg.calls, 1);
	ck_assert_msg(t_now_ms() - t0 < 90, "G's grace went on for %ld ms", t_now_ms() - t0);
	ck_assert_int_eq(r.res, -ECANCELED);
	ck_assert_int_eq(cg.cancelled, 1);
	run_until(&guard, &ca.calls, 1);
	t_guard_stop(&guard);
	ck_assert_int_eq(ca.status, -EIO);
	ck_assert_int_eq(xt.res, -ETIME);
	close(peer);
}
END_TEST

/*
 * rsc_scope_set_deadline(3): under an unwind that has started above, a
 * deadline could never pass (that unwind ended the deadlines below): it is
 * refused with -ESHUTDOWN rather than accepted and forgotten, unless a
 * grace on the way keeps the deadlines there. Clearing one is always fine.
 */
START_TEST(deadline_under_an_unwind_above_is_refused_unless_a_grace_keeps_it)
{
	struct rsc_scope *a, *c, *g;
	struct rsc_entry *gt;
	struct io_seen xt = { 0 }, gts = { 0 };
	struct closed ca = { 0 }, cg = { 0 };
	struct t_guard guard;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "A", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, a, "C", &c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, a, "G", &g), 0);
	hold_the_unwind_of(a, 200, &xt);
	ck_assert_int_eq(rsc_timer(g, 2000, note_io, &gts, &gt), 0); /* holds G's grace */
	ck_assert_int_eq(rsc_entry_wait(gt), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(g, 0, note_closed, &cg), 0);
	ck_assert_int_eq(rsc_scope_close(a, note_closed, &ca), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_state(a), RSC_SCOPE_UNWINDING);
	ck_assert_int_eq(rsc_scope_state(c), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_set_deadline(c, 50, 0), -ESHUTDOWN);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "unwind above"));
	ck_assert_int_eq(rsc_scope_set_deadline(c, 0, 0), 0);
	/* In its grace, a deadline still applies, and ends the grace. */
	ck_assert_int_eq(rsc_scope_set_deadline(g, 50, 0), 0);
	t_guard_start(&guard, t_loop, 3000);
	run_until(&guard, &ca.calls, 1);
	t_guard_stop(&guard);
	ck_assert_int_eq(gts.res, -ECANCELED);
	ck_assert_int_eq(cg.status, -ETIMEDOUT); /* its own close's: the caller's */
	ck_assert_int_eq(ca.status, 0);
	ck_assert_int_eq(xt.res, -ETIME);
}
END_TEST

/* A grace with nothing in flight ends on the next turn, whatever its bound,
 * and a grace of 0 with I/O in flight waits for it (no bound). */
START_TEST(graceful_close_with_no_io_is_prompt_and_grace_zero_waits)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct closed c = { 0 };
	struct io_seen r = { 0 };
	struct t_guard g;
	char b[4];
	int peer;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "idle", &s), 0);
	(void)t_adopted_pair(s, &peer);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(s, 60000, note_closed, &c), 0);
	ck_assert_int_eq(c.calls, 0); /* nothing runs inside the call */
	t_run();
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_lt(c.at - t0, 1000);
	ck_assert_int_eq(c.drained + c.cancelled + c.failed, 0);
	close(peer);

	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "busy", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, note_io, &r), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, note_closed, &c), 0);
	t_guard_start(&g, t_loop, 250);
	run_until(&g, &g.fired, 1);
	ck_assert_int_eq(c.calls, 0); /* no bound: still waiting */
	t_guard_stop(&g);
	ck_assert_int_eq(write(peer, "z", 1), 1);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(r.res, 1);
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(c.drained, 1);
	ck_assert_int_eq(c.cancelled, 0);
	close(peer);
}
END_TEST

/* The scope's own deadline passing during its grace starts the unwind at
 * once with -ETIMEDOUT; the stats say what drained until then. */
START_TEST(own_deadline_during_the_grace_cuts_it_with_etimedout)
{
	struct rsc_scope *s;
	struct rsc_entry *e1, *e2;
	struct closed c = { 0 };
	struct io_seen r1 = { 0 }, r2 = { 0 };
	struct t_guard g;
	char b1[4], b2[4];
	int p1, p2;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e1 = t_adopted_pair(s, &p1);
	e2 = t_adopted_pair(s, &p2);
	ck_assert_int_eq(rsc_recv(e1, b1, sizeof(b1), 0, note_io, &r1), 0);
	ck_assert_int_eq(rsc_recv(e2, b2, sizeof(b2), 0, note_io, &r2), 0);
	ck_assert_int_eq(write(p1, "a", 1), 1);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(s, 10000, note_closed, &c), 0);
	/* Still settable during the grace: the close has not started. */
	ck_assert_int_eq(rsc_scope_set_deadline(s, 60, 0), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_ge(c.at - t0, 59);
	ck_assert_int_lt(c.at - t0, 2000);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_str_eq(c.op, "deadline");
	ck_assert_int_eq(r1.res, 1);
	ck_assert_int_eq(r2.res, -ECANCELED);
	ck_assert_int_eq(c.drained, 1);
	ck_assert_int_eq(c.cancelled, 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 1);
	close(p1);
	close(p2);
}
END_TEST

/* A child's own deadline during the parent's grace: the child unwinds
 * alone, its entry counts as drained for the parent (the grace did not cut
 * it), and the parent's grace then ends. */
START_TEST(childs_deadline_during_the_parents_grace_counts_as_drained)
{
	struct rsc_scope *p, *child;
	struct rsc_entry *e;
	struct closed cp = { 0 }, cc = { 0 };
	struct io_seen r = { 0 };
	struct t_guard g;
	char b[4];
	int peer;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "child", &child), 0);
	e = t_adopted_pair(child, &peer);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, note_io, &r), 0);
	ck_assert_int_eq(rsc_scope_on_close(child, note_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(child, 50, 0), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(p, 5000, note_closed, &cp), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cp.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(r.res, -ECANCELED);
	ck_assert_int_eq(cc.calls, 1);
	ck_assert_int_eq(cc.status, -ETIMEDOUT);
	ck_assert_int_ge(cp.at - t0, 49);
	ck_assert_int_lt(cp.at - t0, 2000);
	/* The child waited for its close when the parent unwound: its error. */
	ck_assert_int_eq(cp.status, -ETIMEDOUT);
	ck_assert_int_eq(cp.drained, 1);
	ck_assert_int_eq(cp.cancelled, 0);
	close(peer);
}
END_TEST

/* A graceful child whose parent is then closed (plainly): the parent waits
 * for the child's grace; closed with a deadline instead, it cuts it. */
START_TEST(parent_close_waits_for_a_childs_grace_its_deadline_cuts_it)
{
	struct rsc_scope *p, *child;
	struct rsc_entry *e;
	struct closed cp = { 0 }, cc = { 0 };
	struct io_seen r = { 0 };
	struct t_guard g;
	char b[4];
	int peer;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "child", &child), 0);
	e = t_adopted_pair(child, &peer);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, note_io, &r), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(child, 0, note_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_close(p, note_closed, &cp), 0);
	t_guard_start(&g, t_loop, 150);
	run_until(&g, &g.fired, 1);
	ck_assert_int_eq(cp.calls + cc.calls, 0);
	t_guard_stop(&g);
	ck_assert_int_eq(write(peer, "q", 1), 1);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cp.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(r.res, 1);
	ck_assert_int_eq(cc.calls, 1);
	ck_assert_int_le(cc.at, cp.at);
	ck_assert_int_eq(cc.drained, 1);
	ck_assert_int_eq(cp.status, 0);
	close(peer);

	/* Now a deadline of the parent: the child's unbounded grace ends. */
	memset(&cp, 0, sizeof(cp));
	memset(&cc, 0, sizeof(cc));
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "child", &child), 0);
	e = t_adopted_pair(child, &peer);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, note_io, &r), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(child, 0, note_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, note_closed, &cp), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_set_deadline(p, 40, 0), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cp.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(r.res, -ECANCELED);
	ck_assert_int_eq(cc.calls, 1);
	ck_assert_int_eq(cc.cancelled, 1);
	ck_assert_int_eq(cc.drained, 0);
	ck_assert_int_lt(cp.at - t0, 2000);
	ck_assert_int_eq(cp.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	close(peer);
}
END_TEST

/* The close callback of a graceful close calls back into the library:
 * opens a scope, posts, closes another scope; the blocking helpers are
 * -EDEADLK there. */
struct reenter {
	struct rsc_scope *other, *opened;
	int r_open, r_close, r_post, r_wait, r_stats, posted;
	unsigned drained;
};

static void reenter_posted(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	((struct reenter *)arg)->posted++;
}

static void reenter_closed(struct rsc_scope *s, int status, const struct rsc_error *err,
			   void *data)
{
	struct reenter *r = data;

	(void)status;
	(void)err;
	r->r_stats = rsc_scope_close_stats(s, &r->drained, NULL, NULL);
	r->r_open = rsc_scope_open(t_loop, NULL, "opened", &r->opened);
	r->r_close = rsc_scope_close(r->other, NULL, NULL);
	r->r_post = rsc_loop_post(t_loop, reenter_posted, r);
	r->r_wait = rsc_scope_close_wait(r->opened, NULL);
}

START_TEST(graceful_close_callback_calls_back_into_the_library)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct reenter r = { 0 };
	char b[4];
	int peer, res = 0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "other", &r.other), 0);
	t_make_files(1);
	t_open_files(r.other, 0, 1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, t_store_res, &res), 0);
	ck_assert_int_eq(write(peer, "1", 1), 1);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 1000, reenter_closed, &r), 0);
	t_run();
	ck_assert_int_eq(r.r_stats, 0);
	ck_assert_int_eq(r.drained, 1);
	ck_assert_int_eq(r.r_open, 0);
	ck_assert_int_eq(r.r_close, 0);
	ck_assert_int_eq(r.r_post, 0);
	ck_assert_int_eq(r.r_wait, -EDEADLK);
	ck_assert_int_eq(r.posted, 1);
	ck_assert_int_eq(rsc_scope_state(r.other), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(r.opened, NULL), 0);
	close(peer);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

/* rsc_loop_shutdown during a bounded grace waits for it, and no longer:
 * the whole shutdown ends within the grace and 100 ms (plus slack). */
START_TEST(loop_shutdown_during_a_grace_ends_with_the_grace)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct closed c = { 0 };
	struct io_seen r = { 0 };
	char b[4];
	int sv[2], before = t_fd_count();
	long t0;

	ck_assert_int_eq(rsc_loop_new(&l, 16, 0), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &e), 0);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, note_io, &r), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(s, 150, note_closed, &c), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(r.res, -ECANCELED);
	ck_assert_int_eq(c.cancelled, 1);
	ck_assert_int_ge(t_now_ms() - t0, 145);
	ck_assert_int_lt(t_now_ms() - t0, 150 + 100 + 200);
	close(sv[1]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* An entry that drained and then started more I/O still in flight at the
 * end counts in both; one released early during the grace counts as
 * drained; a child in a grace of its own counts here as well. */
struct reply {
	struct io_seen first, second;
	char buf[4], buf2[4];
};

static void reply_then_wait(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct reply *r = data;

	(void)buf;
	note_io(e, res, NULL, &r->first);
	if (res > 0) /* a new receive, as a reply would be, which never completes */
		ck_assert_int_eq(rsc_recv(e, r->buf2, sizeof(r->buf2), 0, note_io, &r->second), 0);
}

START_TEST(graceful_stats_count_an_entry_twice_and_early_releases_as_drained)
{
	struct rsc_scope *srv, *kid;
	struct rsc_entry *e1, *e2, *e3;
	struct reply r = { 0 };
	struct io_seen r2 = { 0 }, r3 = { 0 };
	struct closed c = { 0 }, ck = { 0 };
	struct t_guard g;
	char b2[4], b3[4];
	int p1, p2, p3;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, srv, "kid", &kid), 0);
	e1 = t_adopted_pair(srv, &p1);
	e2 = t_adopted_pair(srv, &p2);
	e3 = t_adopted_pair(kid, &p3);
	ck_assert_int_eq(rsc_recv(e1, r.buf, sizeof(r.buf), 0, reply_then_wait, &r), 0);
	ck_assert_int_eq(rsc_recv(e2, b2, sizeof(b2), 0, note_io, &r2), 0);
	ck_assert_int_eq(rsc_recv(e3, b3, sizeof(b3), 0, note_io, &r3), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(kid, 0, note_closed, &ck), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 500, note_closed, &c), 0);
	t_guard_start(&g, t_loop, 3000);
	ck_assert_int_eq(write(p1, "a", 1), 1);
	run_until(&g, &r.first.calls, 1);
	ck_assert_int_eq(rsc_entry_release(e2, NULL, NULL), 0); /* early, in the grace */
	run_until(&g, &r2.calls, 1);
	ck_assert_int_eq(write(p3, "k", 1), 1);
	run_until(&g, &ck.calls, 1);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(r.first.res, 1);
	ck_assert_int_eq(r.second.res, -ECANCELED);
	ck_assert_int_eq(r2.res, -ECANCELED);
	ck_assert_int_eq(r3.res, 1);
	ck_assert_int_eq(ck.drained, 1);
	ck_assert_int_eq(ck.cancelled, 0);
	/* e1 (drained, then cut), e2 (released early), e3 (in kid's own grace). */
	ck_assert_int_eq(c.drained, 3);
	ck_assert_int_eq(c.cancelled, 1);
	ck_assert_int_eq(c.failed, 0);
	ck_assert_int_eq(c.status, 0);
	close(p1);
	close(p2);
	close(p3);
}
END_TEST

/* A scope with nothing to let finish is simply closed, grace ignored: one
 * whose rsc_scope_fail() is pending, and one that a deadline unwound. */
START_TEST(graceful_close_of_a_failed_or_timed_out_scope_is_a_plain_close)
{
	struct rsc_scope *f, *t;
	struct rsc_entry *e;
	struct closed cf = { 0 }, ct = { 0 }, heard = { 0 };
	struct io_seen r = { 0 };
	struct t_guard g;
	char b[4];
	int peer;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "f", &f), 0);
	e = t_adopted_pair(f, &peer);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, note_io, &r), 0);
	ck_assert_int_eq(rsc_scope_fail(f, -EPIPE, "body"), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(f, 60000, note_closed, &cf), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(f, 60000, note_closed, &cf), -EALREADY);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cf.calls, 1);
	ck_assert_int_lt(cf.at - t0, 2000);
	ck_assert_int_eq(cf.status, -EPIPE);
	ck_assert_str_eq(cf.op, "body");
	ck_assert_int_eq(r.res, -ECANCELED);
	ck_assert_int_eq(cf.drained + cf.cancelled, 0);
	close(peer);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "t", &t), 0);
	ck_assert_int_eq(rsc_scope_on_close(t, note_closed, &heard), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(t, 10, 0), 0);
	run_until(&g, &heard.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_scope_close_graceful(t, 60000, note_closed, &ct), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(t, 10, 0), -ESHUTDOWN);
	t_run();
	ck_assert_int_eq(ct.calls, 1);
	ck_assert_int_eq(ct.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_stats(t, NULL, NULL, NULL), -ESTALE);
}
END_TEST

/* A multishot accept under a graceful close while clients keep connecting:
 * no connection is handed out once the close is asked for, the accept ends
 * with one -ECANCELED, and no descriptor is left behind. */
START_TEST(graceful_close_hands_out_no_connection_while_clients_keep_coming)
{
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct acc_count a = { 0 };
	struct closed c = { 0 };
	struct clients cl = { 0 };
	struct t_guard g;
	int before = t_fd_count();
	long until;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 64, &cl.to);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, count_accepts, &a), 0);
	ck_assert_int_eq(pthread_create(&cl.th, NULL, connect_loop, &cl), 0);
	t_guard_start(&g, t_loop, 3000);
	until = t_now_ms() + 50;
	while (t_now_ms() < until || a.conns == 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 1000, note_closed, &c), 0);
	a.closed = true;
	run_until(&g, &c.calls, 1);
	__atomic_store_n(&cl.stop, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(pthread_join(cl.th, NULL), 0);
	t_guard_stop(&g);
	ck_assert_int_eq(a.after_close, 0);
	ck_assert_int_eq(a.finals, 1);
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(c.drained + c.cancelled, 0); /* a listener counts in neither */
	t_run();
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* exits_failed counts the failed releases of the whole subtree: one in a
 * child scope closed by the unwind, and one released early during the
 * grace, beside one of the scope itself. */
START_TEST(graceful_stats_count_failed_releases_below_and_released_early)
{
	struct rsc_scope *srv, *kid;
	struct rsc_entry *early;
	struct closed c = { 0 };
	struct rsc_error *err = NULL;
	struct t_guard g;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_defer(srv, failing_exit, NULL, NULL), 0);
	ck_assert_int_eq(rsc_defer(srv, failing_exit, NULL, &early), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, srv, "kid", &kid), 0);
	ck_assert_int_eq(rsc_defer(kid, failing_exit, NULL, NULL), 0);
	ck_assert_int_eq(rsc_defer(kid, noting_exit, NULL, NULL), 0);
	exit_calls = 0;
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 1000, note_closed, &c), 0);
	ck_assert_int_eq(rsc_entry_release_wait(early, &err), -EIO);
	rsc_error_free(err);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(exit_calls, 1);
	ck_assert_int_eq(c.status, -EIO);
	ck_assert_int_eq(c.failed, 3);
}
END_TEST

/* From a hook that holds reserved SQEs, with the SQ full: a graceful close
 * with a bound is refused (-EBUSY) and closes nothing, its callback never
 * runs; a first deadline is refused too and keeps nothing alive. Both work
 * once the hook has returned. */
struct busy_calls {
	struct rsc_scope *target;
	int r_graceful, r_deadline;
	struct closed c;
};

static struct busy_calls bc;

static int busy_calls_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct io_uring_sqe *sqe;

	(void)pending;
	(void)arg;
	ck_assert_int_eq(rsc_entry_get_sqes(e, 1, &sqe), 0);
	io_uring_prep_nop(sqe);
	ck_assert_int_eq(rsc_fault_set(t_loop, "sq_full:1:EBUSY,sq_full:2:EBUSY"), 0);
	bc.r_graceful = rsc_scope_close_graceful(bc.target, 5000, note_closed, &bc.c);
	bc.r_deadline = rsc_scope_set_deadline(bc.target, 20, 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, ""), 0);
	return 0;
}

START_TEST(graceful_close_and_first_deadline_refused_in_a_full_hook_change_nothing)
{
	struct rsc_scope *h;
	struct t_guard g;

	memset(&bc, 0, sizeof(bc));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "target", &bc.target), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "hook", &h), 0);
	ck_assert_int_eq(rsc_defer(h, busy_calls_exit, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(h, NULL), 0);
	ck_assert_int_eq(bc.r_graceful, -EBUSY);
	ck_assert_int_eq(bc.r_deadline, -EBUSY);
	t_run(); /* returns: no timer of a refused deadline or grace keeps it alive */
	t_guard_start(&g, t_loop, 300);
	run_until(&g, &g.fired, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(bc.c.calls, 0);
	ck_assert_int_eq(rsc_scope_state(bc.target), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 0);
	/* Not closing: the close can still be asked for, once. */
	ck_assert_int_eq(rsc_scope_close_graceful(bc.target, 5000, note_closed, &bc.c), 0);
	t_run();
	ck_assert_int_eq(bc.c.calls, 1);
	ck_assert_int_eq(bc.c.status, 0);
}
END_TEST

/* An older child waits for its turn while its parent's unwind is held by a
 * newer child's slow release: a graceful close of it is -EALREADY (the
 * unwind above closes it), and a deadline set on it meanwhile never passes:
 * it ends with the parent's unwind, and nobody hears -ETIMEDOUT. */
START_TEST(a_child_waiting_for_its_turn_refuses_grace_and_its_deadline_never_passes)
{
	struct rsc_scope *p, *older, *newer;
	struct rsc_entry *e;
	struct closed cp = { 0 }, co = { 0 };
	struct t_guard g;
	int r;

	memset(&slow, 0, sizeof(slow));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "older", &older), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "newer", &newer), 0);
	ck_assert_int_eq(rsc_push(newer, &slow_mgr, NULL, &e), 0);
	ck_assert_int_eq(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_scope_on_close(older, note_closed, &co), 0);
	ck_assert_int_eq(rsc_scope_close(p, note_closed, &cp), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(slow.calls, 1); /* the newer child's release is under way */
	ck_assert_int_eq(rsc_scope_state(older), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_graceful(older, 1000, note_closed, &co), -EALREADY);
	ck_assert_int_eq(rsc_scope_close(older, NULL, NULL), -EALREADY);
	r = rsc_scope_set_deadline(older, 10, 0);
	ck_assert_msg(r == 0 || r == -ESHUTDOWN, "set_deadline: %d", r);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cp.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(co.calls, 1);
	/* The slow release's timeout ends in -ETIME, an exit error that is the
	 * pending error for the older child; no deadline joined it. */
	ck_assert_int_eq(co.status, -ETIME);
	ck_assert_str_ne(co.op, "deadline");
	ck_assert_int_eq(cp.status, -ETIME);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 0);
}
END_TEST

/* ------------------------------------------------ RSC_SHUTDOWN_ON_RELEASE */

/* On a descriptor that is no socket the shutdown fails (-ENOTSOCK, op
 * "shutdown"), the close still runs (hard link), and the release reports it. */
START_TEST(shutdown_on_release_of_a_pipe_fails_with_enotsock_and_still_closes)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	int p[2], before = t_fd_count();
	char b;

	if (!t_kernel_has(IORING_OP_SHUTDOWN)) {
		printf("SKIP shutdown_on_release_of_a_pipe: kernel lacks IORING_OP_SHUTDOWN\n");
		return;
	}
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[1], RSC_SHUTDOWN_ON_RELEASE, &e), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOTSOCK);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "shutdown");
	rsc_error_free(err);
	/* The write end was closed anyway: the reader sees end-of-file. */
	ck_assert_int_eq(read(p[0], &b, 1), 0);
	close(p[0]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* A deadline's unwind of an accepted connection shut down on release: the
 * peer sees the FIN even though the test keeps a dup of the socket. */
struct accepted {
	struct rsc_scope *cs;
	struct rsc_entry *conn;
	int calls, res;
};

static void on_accepted(struct rsc_entry *l, int res, struct rsc_scope *cs,
			struct rsc_entry *conn, void *data)
{
	struct accepted *a = data;

	(void)l;
	a->calls++;
	a->res = res;
	if (res >= 0) {
		a->cs = cs;
		a->conn = conn;
	}
}

START_TEST(deadline_unwind_shuts_down_an_accepted_socket_kept_by_a_dup)
{
	struct rsc_scope *srv;
	struct sockaddr_in to;
	struct accepted a = { 0 };
	struct closed c = { 0 };
	struct t_guard g;
	struct timeval tv = { 2, 0 };
	int client, dup_fd;
	char b;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	struct rsc_entry *l = t_listen_on_loopback(srv, 8, &to);

	ck_assert_int_eq(rsc_accept(l, RSC_SHUTDOWN_ON_RELEASE, on_accepted, &a), 0);
	client = t_connect(&to);
	ck_assert_int_eq(setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &a.calls, 1);
	ck_assert_int_ge(a.res, 0);
	dup_fd = fcntl(rsc_entry_fd(a.conn), F_DUPFD_CLOEXEC, 0);
	ck_assert_int_ge(dup_fd, 0);
	ck_assert_int_eq(rsc_scope_on_close(a.cs, note_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(a.cs, 20, 0), 0);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(read(client, &b, 1), 0); /* FIN, not the 2 s timeout */
	close(dup_fd);
	close(client);
	ck_assert_int_eq(rsc_scope_close_wait(a.cs, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

/* -ENOTCONN from the shutdown is no error (an unconnected datagram
 * socket); a detached entry takes no shutdown with it: the peer reads on. */
START_TEST(shutdown_on_release_of_an_unconnected_socket_and_of_a_detached_one)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int udp, sv[2], fd, before = t_fd_count();
	char b;

	if (!t_kernel_has(IORING_OP_SHUTDOWN)) {
		printf("SKIP shutdown_on_release_of_an_unconnected_socket: kernel lacks IORING_OP_SHUTDOWN\n");
		return;
	}
	udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(udp, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, udp, RSC_SHUTDOWN_ON_RELEASE, &e), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	ck_assert_int_eq(fcntl(udp, F_GETFD), -1);

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], RSC_SHUTDOWN_ON_RELEASE, &e), 0);
	fd = rsc_entry_detach(e);
	ck_assert_int_eq(fd, sv[0]);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	/* Still connected: what the test writes on its own descriptor arrives. */
	ck_assert_int_eq(write(fd, "m", 1), 1);
	ck_assert_int_eq(read(sv[1], &b, 1), 1);
	close(fd);
	close(sv[1]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* rsc_connect's flag follows the socket to the connect entry: moved to
 * another scope and released there, the peer sees the FIN despite a dup
 * the test keeps; a connect refused (never connected) is no shutdown error. */
START_TEST(connect_shutdown_follows_the_socket_and_a_refused_one_adds_no_error)
{
	struct rsc_scope *s, *other;
	struct rsc_entry *l, *c;
	struct sockaddr_in to, dead;
	struct accepted a = { 0 };
	struct rsc_error *err = NULL;
	struct t_guard g;
	struct timeval tv = { 2, 0 };
	int dup_fd, probe, before = t_fd_count();
	socklen_t len = sizeof(dead);
	char b;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "other", &other), 0);
	l = t_listen_on_loopback(s, 8, &to);
	ck_assert_int_eq(rsc_accept(l, 0, on_accepted, &a), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&to, sizeof(to), 2000,
				     RSC_SHUTDOWN_ON_RELEASE, &c), 0);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &a.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_ge(a.res, 0);
	ck_assert_int_eq(setsockopt(rsc_entry_fd(a.conn), SOL_SOCKET, SO_RCVTIMEO, &tv,
				    sizeof(tv)), 0);
	dup_fd = fcntl(rsc_entry_fd(c), F_DUPFD_CLOEXEC, 0);
	ck_assert_int_ge(dup_fd, 0);
	ck_assert_int_eq(rsc_entry_move(c, other), 0);
	ck_assert_int_eq(rsc_scope_close_wait(other, NULL), 0);
	/* The accepted side reads the end of the stream, not the 2 s timeout. */
	ck_assert_int_eq(read(rsc_entry_fd(a.conn), &b, 1), 0);
	close(dup_fd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);

	/* A port nobody listens on: the connect is refused, the socket was
	 * never connected, and the only error is the connect's. */
	probe = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	dead = t_loopback(0);
	ck_assert_int_eq(bind(probe, (struct sockaddr *)&dead, sizeof(dead)), 0);
	ck_assert_int_eq(getsockname(probe, (struct sockaddr *)&dead, &len), 0);
	close(probe);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "refused", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&dead, sizeof(dead), 2000,
				     RSC_SHUTDOWN_ON_RELEASE, &c), 0);
	ck_assert_int_eq(rsc_entry_wait(c), -ECONNREFUSED);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ECONNREFUSED);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* A scope a deadline unwound and nobody closed: rsc_loop_shutdown takes
 * its -ETIMEDOUT (op "deadline") as the pending error of the older scopes,
 * whose exits see it, and returns it. */
static int shut_saw;

static int note_shutdown_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)arg;
	shut_saw = pending ? rsc_error_errno(pending) : 0;
	return 0;
}

START_TEST(shutdown_carries_a_timed_out_scopes_error_to_older_scopes)
{
	struct rsc_loop *l;
	struct rsc_scope *older, *timed;
	struct rsc_error *err = NULL;
	struct closed c = { 0 };
	long t0 = t_now_ms();
	int before = t_fd_count();

	shut_saw = 1;
	ck_assert_int_eq(rsc_loop_new(&l, 16, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "older", &older), 0);
	ck_assert_int_eq(rsc_defer(older, note_shutdown_exit, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "timed", &timed), 0);
	ck_assert_int_eq(rsc_scope_on_close(timed, note_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(timed, 10, 0), 0);
	while (!c.calls && t_now_ms() - t0 < 3000)
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_shutdown(l, &err), -ETIMEDOUT);
	ck_assert_int_eq(shut_saw, -ETIMEDOUT);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "deadline");
	rsc_error_free(err);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ------------------------------------------------------- posts at the end */

/* While rsc_loop_close drains, a post from another thread is refused with
 * -ESHUTDOWN (and never runs); the post that was queued runs exactly once. */
struct drain_probe {
	struct rsc_loop *loop;
	pthread_t th;
	int ran, late_ran, thread_ret, self_ret;
	volatile int go, done;
};

static void late_fn(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	((struct drain_probe *)arg)->late_ran++;
}

static void *poster(void *arg)
{
	struct drain_probe *d = arg;

	while (!__atomic_load_n(&d->go, __ATOMIC_ACQUIRE))
		sched_yield(); /* valgrind runs one thread at a time */
	d->thread_ret = rsc_loop_post(d->loop, late_fn, d);
	__atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void drain_fn(struct rsc_loop *loop, void *arg)
{
	struct drain_probe *d = arg;
	long until = t_now_ms() + 30000;

	d->ran++;
	d->self_ret = rsc_loop_post(loop, late_fn, d);
	__atomic_store_n(&d->go, 1, __ATOMIC_RELEASE);
	/* The loop cannot be freed while this runs: the thread's post is safe.
	 * Yielding, so that under valgrind (one thread at a time) the poster
	 * runs; the bound only keeps a broken run from hanging. */
	while (!__atomic_load_n(&d->done, __ATOMIC_ACQUIRE) && t_now_ms() < until)
		sched_yield();
}

START_TEST(posts_during_close_are_refused_from_any_thread_queued_ones_run_once)
{
	struct drain_probe d = { 0 };
	int before = t_fd_count();

	ck_assert_int_eq(rsc_loop_new(&d.loop, 8, 0), 0);
	ck_assert_int_eq(pthread_create(&d.th, NULL, poster, &d), 0);
	ck_assert_int_eq(rsc_loop_post(d.loop, drain_fn, &d), 0);
	ck_assert_int_eq(rsc_loop_close(d.loop), 0);
	ck_assert_int_eq(pthread_join(d.th, NULL), 0);
	ck_assert_int_eq(d.ran, 1);
	ck_assert_int_eq(d.done, 1);
	ck_assert_int_eq(d.self_ret, -ESHUTDOWN);
	ck_assert_int_eq(d.thread_ret, -ESHUTDOWN);
	ck_assert_int_eq(d.late_ran, 0);
	ck_assert_int_eq(t_fd_count(), before);

	/* The same during rsc_loop_shutdown's drain, with a scope to close first. */
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(rsc_loop_new(&d.loop, 8, 0), 0);
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(d.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(pthread_create(&d.th, NULL, poster, &d), 0);
	ck_assert_int_eq(rsc_loop_post(d.loop, drain_fn, &d), 0);
	ck_assert_int_eq(rsc_loop_shutdown(d.loop, NULL), 0);
	ck_assert_int_eq(pthread_join(d.th, NULL), 0);
	ck_assert_int_eq(d.ran, 1);
	/* Ran while the scopes closed (posts taken) or in the drain (refused):
	 * either way each post ran once or was refused, never lost. */
	ck_assert_int_eq(d.late_ran, (d.self_ret == 0) + (d.thread_ret == 0));
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* A post that opens a scope during rsc_loop_close: -EBUSY, the loop takes
 * posts again, and a later close frees it. The fns run once each. */
struct reopen {
	struct rsc_scope *s;
	int ran, r_open;
};

static void open_in_post(struct rsc_loop *loop, void *arg)
{
	struct reopen *r = arg;

	r->ran++;
	r->r_open = rsc_scope_open(loop, NULL, "late", &r->s);
}

static void count_post(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	(*(int *)arg)++;
}

START_TEST(post_opening_a_scope_during_close_gets_ebusy_then_posts_work_again)
{
	struct rsc_loop *l;
	struct reopen r = { 0 };
	int n = 0, before = t_fd_count();

	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_post(NULL, count_post, &n), -EINVAL);
	ck_assert_int_eq(rsc_loop_post(l, NULL, &n), -EINVAL);
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert_int_eq(rsc_loop_post(l, open_in_post, &r), 0);
	ck_assert_int_eq(rsc_loop_alive(l), 1); /* a post is queued */
	ck_assert_int_eq(r.ran, 0);
	ck_assert_int_eq(rsc_loop_close(l), -EBUSY);
	ck_assert_int_eq(r.ran, 1);
	ck_assert_int_eq(r.r_open, 0);
	ck_assert_int_eq(rsc_loop_post(l, count_post, &n), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(rsc_scope_close_wait(r.s, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(r.ran, 1);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

Suite *make_hostile_servers2_suite(void)
{
	Suite *s = suite_create("hostile_servers2");
	TCase *tc = tcase_create("servers2");
	bool net = t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_CONNECT) &&
		   t_kernel_has(IORING_OP_SHUTDOWN);
	bool fault = t_has_fault_injection();

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, deadline_moved_or_cleared_after_its_time_but_before_the_loop_saw_it);
	tcase_add_test(tc, huge_deadline_is_kept_and_cleared_and_bad_flags_change_nothing);
	tcase_add_test(tc, nested_deadlines_the_earliest_wins_at_any_depth);
	tcase_add_test(tc, exits_see_the_deadline_and_a_suppression_ends_it);
	tcase_add_test(tc, deadline_rearmed_from_an_io_callback_moves_it_later);
	tcase_add_test(tc, deadline_set_from_an_exit_and_the_trace_callback);
	tcase_add_test(tc, moved_scope_follows_its_new_parents_deadline_not_the_old);
	tcase_add_test(tc, parent_deadline_while_a_childs_custom_exit_holds_its_release);
	if (fault)
		tcase_add_test(tc, deadline_refused_for_want_of_an_sqe_is_left_as_it_was);
	else
		printf("SKIP deadline_refused_for_want_of_an_sqe_is_left_as_it_was: this build has no fault injection (configure --enable-fault-injection)\n");
	tcase_add_test(tc, many_deadlines_rearmed_at_random_never_pass_early_or_twice);
	tcase_add_test(tc, every_timer_ends_with_exactly_one_callback);
	tcase_add_test(tc, posts_from_hooks_and_the_trace_callback_run_once_each);
	tcase_add_test(tc, shutdown_ends_a_deadline_that_would_pass_during_a_newer_scopes_grace);
	if (net)
		t_add_test_if(tc, deadline_over_a_busy_listener_closes_every_late_connection,
			      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(tc, graceful_stats_count_drained_cut_and_failed_exactly);
	t_add_socket_test(tc, listener_cut_by_a_grace_counts_in_neither_stat);
	tcase_add_test(tc, failure_waiting_for_its_turn_ends_a_grace_below_at_once);
	tcase_add_test(tc, deadline_under_an_unwind_above_is_refused_unless_a_grace_keeps_it);
	tcase_add_test(tc, graceful_close_with_no_io_is_prompt_and_grace_zero_waits);
	tcase_add_test(tc, own_deadline_during_the_grace_cuts_it_with_etimedout);
	tcase_add_test(tc, childs_deadline_during_the_parents_grace_counts_as_drained);
	tcase_add_test(tc, parent_close_waits_for_a_childs_grace_its_deadline_cuts_it);
	tcase_add_test(tc, graceful_close_callback_calls_back_into_the_library);
	tcase_add_test(tc, loop_shutdown_during_a_grace_ends_with_the_grace);
	tcase_add_test(tc, graceful_stats_count_an_entry_twice_and_early_releases_as_drained);
	tcase_add_test(tc, graceful_close_of_a_failed_or_timed_out_scope_is_a_plain_close);
	tcase_add_test(tc, graceful_stats_count_failed_releases_below_and_released_early);
	if (fault)
		tcase_add_test(tc, graceful_close_and_first_deadline_refused_in_a_full_hook_change_nothing);
	else
		printf("SKIP graceful_close_and_first_deadline_refused_in_a_full_hook_change_nothing: this build has no fault injection (configure --enable-fault-injection)\n");
	tcase_add_test(tc, a_child_waiting_for_its_turn_refuses_grace_and_its_deadline_never_passes);
	if (net)
		t_add_test_if(tc, graceful_close_hands_out_no_connection_while_clients_keep_coming,
			      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(tc, shutdown_on_release_of_an_unconnected_socket_and_of_a_detached_one);
	if (net)
		tcase_add_test(tc, connect_shutdown_follows_the_socket_and_a_refused_one_adds_no_error);
	tcase_add_test(tc, shutdown_on_release_of_a_pipe_fails_with_enotsock_and_still_closes);
	if (net)
		tcase_add_test(tc, deadline_unwind_shuts_down_an_accepted_socket_kept_by_a_dup);
	else
		printf("SKIP deadline_unwind_shuts_down_an_accepted_socket_kept_by_a_dup: kernel lacks IORING_OP_SOCKET, CONNECT or SHUTDOWN\n");
	tcase_add_test(tc, shutdown_carries_a_timed_out_scopes_error_to_older_scopes);
	tcase_add_test(tc, posts_during_close_are_refused_from_any_thread_queued_ones_run_once);
	tcase_add_test(tc, post_opening_a_scope_during_close_gets_ebusy_then_posts_work_again);
	suite_add_tcase(s, tc);
	return s;
}
