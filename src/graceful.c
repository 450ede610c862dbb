/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>

#include "internal.h"

/*
 * Graceful close: stop acquiring now (accepts in flight are cancelled;
 * connections that still arrive are closed by the runtime), let the tracked
 * I/O in flight in the subtree finish, then unwind. The grace period
 * bounds the wait: when it ends, what is still in flight is cancelled by
 * the unwind's releases. The loop checks the subtree once per turn while a
 * grace runs (a walk only while one does), and an internal timeout ends it.
 */

/* @e has I/O in flight that a grace lets finish: not an accept it cut
 * (stop_accepting), whose listener counts as neither drained nor cancelled. */
static bool busy(const struct rsc__entry *e)
{
	const struct rsc_op *op;

	if (!e->n_io)
		return false;
	RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
		if (op->grace_seq != UINT64_MAX)
			return true;
	return false;
}

/* Entries of the subtree with I/O in flight. */
static unsigned subtree_busy(struct rsc__scope *root)
{
	struct rsc__scope *s;
	struct rsc__entry *e;
	unsigned n = 0;

	for (s = root; s; s = rsc__scope_next(root, s))
		RSC__LIST_FOR_EACH(e, &s->entries, scope_node)
			n += busy(e);
	return n;
}

/* @e still has an op in flight that began before the grace stamped @g_seq. */
static bool busy_since(const struct rsc__entry *e, uint64_t g_seq)
{
	const struct rsc_op *op;

	RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
		if (op->grace_seq < g_seq)
			return true;
	return false;
}

/* Every grace above @e counts it, a child's own grace and its parent's
 * alike: each waited on the ops older than its start. */
void rsc__graceful_op_done(struct rsc__entry *e, uint64_t seq)
{
	struct rsc__scope *s;

	for (s = e->scope; s; s = s->parent)
		if (s->grace && seq < s->g_seq && !busy_since(e, s->g_seq))
			s->g_drained++;
}

/* Off the loop's graceful list (on it while its grace lasts), its timer stopped. */
static void leave_grace(struct rsc__scope *s, bool timed_out)
{
	rsc__list_remove(&s->graceful_node);
	s->grace = false;
	if (s->grace_timer) {
		if (!timed_out)
			rsc__submit_cancel(s->loop, s->grace_timer);
		s->grace_timer = NULL;
	}
}

void rsc__graceful_leave(struct rsc__scope *s)
{
	leave_grace(s, false);
}

/* The grace is over, one way or the other: the unwind starts on this turn. */
static void end_grace(struct rsc__scope *s, bool timed_out)
{
	struct rsc_loop *loop = s->loop;
	unsigned busy = 0;

	leave_grace(s, timed_out);
	/* What is still in flight now is cut, by this unwind or one a failure or
	 * a deadline started already (its releases are draining it now). */
	busy = subtree_busy(s);
	s->g_cancelled = busy;
	/* The bound covers the subtree: a grace below, even an unbounded one,
	 * ends with it rather than hold this unwind past its bound. */
	if (timed_out)
		rsc__graceful_cut_below(s);
	if (s->state == RSC_SCOPE_OPEN)
		rsc__ready_push(loop, s);
}

/* @s starts its unwind while in its grace (its rsc_scope_fail(3) ended it):
 * the grace ends now, before the unwind's cancels complete, so that what they
 * cut counts as cancelled, not drained (rsc_scope_close_stats). */
void rsc__graceful_end_grace_at_unwind(struct rsc__scope *s)
{
	leave_grace(s, false);
	s->g_cancelled = subtree_busy(s);
}

static void grace_timer_done(struct rsc_loop *loop, struct rsc_op *op, int res,
			     unsigned cqe_flags)
{
	struct rsc__scope *s;

	(void)cqe_flags;
	if (res == -ECANCELED)
		return;
	s = rsc__handle_lookup((uint64_t)(uintptr_t)op->io_data, RSC__K_SCOPE);
	if (s && s->grace && s->grace_timer == op) {
		s->grace_timer = NULL;
		end_grace(s, true);
	}
	(void)loop;
}

static bool in_subtree(const struct rsc__scope *root, const struct rsc__scope *s)
{
	for (; s; s = s->parent)
		if (s == root)
			return true;
	return false;
}

/* A cancelling unwind reaches every scope below it: none waits out a grace.
 * (The root's own grace ends on the next poll: it is unwinding now.) */
void rsc__graceful_cut_below(struct rsc__scope *root)
{
	struct rsc__scope *s;

	RSC__LIST_FOR_EACH_SAFE(s, &root->loop->graceful_list, graceful_node) {
		if (s != root && in_subtree(root, s))
			end_grace(s, false);
	}
}

bool rsc__scope_cancelled(const struct rsc__scope *s)
{
	for (; s; s = s->parent)
		if (s->fail_queued || (s->state != RSC_SCOPE_OPEN && s->cancelling))
			return true;
	return false;
}

/* A grace would end on the next poll: its I/O finished, or an unwind began.
 * (One still waiting ends by a completion, which wakes a host by itself.) */
bool rsc__graceful_due(const struct rsc_loop *loop)
{
	struct rsc__scope *s;

	RSC__LIST_FOR_EACH(s, &loop->graceful_list, graceful_node)
		if (s->state != RSC_SCOPE_OPEN || !subtree_busy(s))
			return true;
	return false;
}

unsigned rsc__graceful_poll(struct rsc_loop *loop)
{
	struct rsc__scope *s;
	unsigned n = 0;

	RSC__LIST_FOR_EACH_SAFE(s, &loop->graceful_list, graceful_node) {
		if (s->state != RSC_SCOPE_OPEN || !subtree_busy(s)) {
			end_grace(s, false);
			n++;
		}
	}
	return n;
}

/* Stop acquiring: every accept in the subtree is cancelled, a multishot one
 * waiting out a shortage too (its backoff timer), its late connections
 * closed by the runtime (accept.c). */
static void stop_accepting(struct rsc__scope *root)
{
	struct rsc__scope *s;
	struct rsc__entry *e;
	struct rsc_op *op;

	for (s = root; s; s = rsc__scope_next(root, s))
		RSC__LIST_FOR_EACH(e, &s->entries, scope_node)
			RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
				if (rsc__op_is_accept(op)) {
					rsc__submit_cancel(root->loop, op);
					/* Cut here, not let finish: no grace counts it drained. */
					op->grace_seq = UINT64_MAX;
				}
}

int rsc_scope_close_graceful(struct rsc_scope *h, unsigned grace_ms,
			     rsc_scope_close_cb cb, void *data)
{
	struct rsc__scope *s;
	struct rsc_loop *loop;
	struct io_uring_sqe *sqe;
	struct rsc_op *op;
	int ret;

	RSC__SCOPE(s, h, "rsc_scope_close_graceful");
	if (s->state != RSC_SCOPE_OPEN || rsc__scope_cancelled(s))
		return rsc_scope_close(h, cb, data); /* unwinding, or cancelled from above: nothing to let finish */
	ret = rsc__scope_check_close(s, "rsc_scope_close_graceful");
	if (ret < 0)
		return ret;
	loop = s->loop;
	op = NULL;
	if (grace_ms) {
		/* The bound first: a grace with no timer could last forever. */
		ret = rsc__op_with_sqe_why(loop, &sqe, &op);
		if (ret < 0) {
			rsc__set_last_error(ret == -ENOMEM ? "rsc_scope_close_graceful: no memory for the grace timer's op" :
					    "rsc_scope_close_graceful: no SQE for the grace timer (the SQ could not be flushed)");
			return ret;
		}
		rsc__prep_timeout_ms(op, sqe, grace_ms, grace_timer_done);
		op->io_data = (void *)(uintptr_t)s->h;
	}
	ret = rsc_scope_close(h, cb, data);
	assert(ret == 0);
	/* rsc_scope_close queued the unwind: hold it for the grace instead. */
	s->g_seq = ++loop->grace_seq; /* the ops in flight now are older */
	s->g_drained = s->g_cancelled = 0;
	s->grace_timer = op;
	stop_accepting(s);
	s->grace = true;
	rsc__list_push_front(&loop->graceful_list, &s->graceful_node);
	return ret;
}

int rsc_scope_close_stats(const struct rsc_scope *h, unsigned *drained,
			  unsigned *cancelled, unsigned *exits_failed)
{
	struct rsc__scope *root, *s;
	struct rsc__entry *e;
	unsigned failed = 0;

	RSC__SCOPE(root, h, "rsc_scope_close_stats");
	for (s = root; s; s = rsc__scope_next(root, s))
		RSC__LIST_FOR_EACH(e, &s->entries, scope_node)
			failed += e->state == RSC_EXITED && e->exit_res < 0;
	if (drained)
		*drained = root->g_drained;
	if (cancelled)
		*cancelled = root->g_cancelled;
	if (exits_failed)
		*exits_failed = failed;
	return 0;
}
