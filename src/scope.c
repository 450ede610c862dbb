/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "internal.h"

struct rsc__scope *rsc__scope_new_root(struct rsc_loop *loop)
{
	struct rsc__scope *s = rsc__scope_get(loop);

	if (!s)
		return NULL;
	strcpy(s->name, "(loop)");
	s->state = RSC_SCOPE_OPEN;
	return s;
}

static bool scope_closing(const struct rsc__scope *s)
{
	return s->state != RSC_SCOPE_OPEN || s->closer != RSC__CLOSER_NONE ||
	       s->fail_queued;
}

/* Its graceful close waits for the work in flight: its unwind has not started. */
static bool in_its_grace(const struct rsc__scope *s)
{
	return s->grace && s->state == RSC_SCOPE_OPEN && !s->fail_queued;
}

/* A scope's closing state, or its place in the tree, changed: forget what unwind_owns remembered. */
RSC__HOT static void closing_changed(struct rsc__scope *s)
{
	s->loop->closing_epoch++;
	if (__builtin_expect(s->loop->n_inboxes != 0, 0))
		rsc__inboxes_closing(s->loop); /* one that stops receiving is no address any more */
}

RSC__HOT bool rsc__scope_unwind_owns_walk(const struct rsc__scope *s)
{
	uint64_t epoch = s->loop->closing_epoch;
	const struct rsc__scope *p;
	bool owns = false;

	for (p = s; p; p = p->parent) {
		if (p->owns_epoch == epoch) {
			owns = p->owns_cached;
			break;
		}
		if (scope_closing(p)) {
			owns = true;
			break;
		}
	}
	/* Remembered until a closing state changes: a push into a scope 100,000
	 * deep looks at its parent's answer, not at 100,000 ancestors. */
	((struct rsc__scope *)s)->owns_epoch = epoch;
	((struct rsc__scope *)s)->owns_cached = owns;
	return owns;
}

bool rsc__scope_unwind_owns_past_grace(const struct rsc__scope *s)
{
	bool below_grace = false;

	for (; s; s = s->parent) {
		if (in_its_grace(s)) {
			below_grace = true;
			continue;
		}
		if (!scope_closing(s))
			continue;
		/* A close above a grace waits for it (rsc_scope_close_graceful(3)):
		 * until the grace ends, its subtree is the work let finish. A
		 * failure or a deadline above cancels: that unwind owns it now. */
		if (below_grace && !s->fail_queued &&
		    !(s->state != RSC_SCOPE_OPEN && s->cancelling))
			continue;
		return true;
	}
	return false;
}

/* An ancestor's unwind has started and will reach @s in its turn. A grace
 * in between holds that unwind back (a close waits for it), and the scopes
 * below it stay open meanwhile (rsc_scope_close_graceful(3)). */
static bool unwind_above_reaches(const struct rsc__scope *s)
{
	for (s = s->parent; s; s = s->parent) {
		if (s->grace && s->state == RSC_SCOPE_OPEN)
			return false;
		if (s->state != RSC_SCOPE_OPEN)
			return true;
	}
	return false;
}

/* A failure requested above @s, its unwind not started yet: that unwind will
 * reach @s in its turn, with its error (not past a grace, as above). */
static bool failure_above(const struct rsc__scope *s)
{
	for (s = s->parent; s; s = s->parent) {
		if (s->fail_queued)
			return true;
		if (s->grace && s->state == RSC_SCOPE_OPEN)
			return false;
	}
	return false;
}

/* ... and has not reached it yet: @s must not start beside the newer children.
 * (A graceful close asked before already runs beside them: its grace's end,
 * or a failure, starts its unwind at once, as rsc_scope_close_graceful(3) says;
 * so does a failure below a grace: waiting for its turn, its I/O would hold
 * the grace that holds that turn back.) */
static bool waits_for_its_turn(const struct rsc__scope *s)
{
	return !s->g_seq && unwind_above_reaches(s) && s->parent->child_cursor != &s->child_node;
}

/* The scope after @s in @root's subtree (pre-order), below @s only if @down. */
static struct rsc__scope *walk_next(const struct rsc__scope *root,
				    const struct rsc__scope *s, bool down)
{
	const struct rsc__list *n = down ? rsc__list_first(&s->children) : NULL;

	for (; !n && s != root; s = s->parent)
		n = rsc__list_next(&s->parent->children, &s->child_node);
	return n ? RSC__LIST_ITEM(n, struct rsc__scope, child_node) : NULL;
}

struct rsc__scope *rsc__scope_next(const struct rsc__scope *root,
				   const struct rsc__scope *s)
{
	return walk_next(root, s, true);
}

/* Newest at the tail: the unwind walks back from there. */
static void link_child(struct rsc__scope *parent, struct rsc__scope *s)
{
	s->parent = parent;
	rsc__list_push_back(&parent->children, &s->child_node);
}

static void unlink_child(struct rsc__scope *s)
{
	struct rsc__scope *p = s->parent;

	if (!p)
		return;
	if (p->child_cursor == &s->child_node)
		p->child_cursor = s->child_node.prev;
	rsc__list_remove(&s->child_node);
}

RSC__HOT int rsc_scope_open(struct rsc_loop *loop, struct rsc_scope *parent_h,
		   const char *name, struct rsc_scope **scopep)
{
	struct rsc__scope *s, *parent = NULL;
	size_t len;

	/* First: on any failure *scopep is NULL (rsc_scope_open(3)). */
	if (scopep)
		*scopep = NULL;
	RSC__CHECK_ARG(loop, "rsc_scope_open: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_scope_open");
	RSC__CHECK_ARG(scopep, "rsc_scope_open: scopep is NULL");
	name = name ? name : "";
	len = strnlen(name, RSC_NAME_MAX);
	if (len >= RSC_NAME_MAX) {
		rsc__set_last_error("rsc_scope_open: a scope name is at most %d bytes",
				    RSC_NAME_MAX - 1);
		return -ENAMETOOLONG;
	}
	if (parent_h) {
		RSC__SCOPE(parent, parent_h, "rsc_scope_open (parent)");
		if (parent->loop != loop) {
			rsc__set_last_error("rsc_scope_open: parent belongs to another loop");
			return -EXDEV;
		}
	} else {
		parent = loop->root;
	}
	/* As pushes: nothing new below a scope an unwind already owns. */
	if (!parent || rsc__scope_unwind_owns(parent)) {
		rsc__set_last_error("rsc_scope_open: the parent scope is %s",
				    !parent ? "gone (loop shut down)" :
				    scope_closing(parent) ? "closing" : "below a scope that is closing");
		return -ESHUTDOWN;
	}
	s = rsc__scope_get(loop);
	if (!s)
		return -ENOMEM;
	memcpy(s->name, name, len + 1);
	s->state = RSC_SCOPE_OPEN;
	link_child(parent, s);
	rsc__obs_scope_opened(loop, s);
	if (loop->audit_level == RSC_AUDIT_FULL)
		rsc__audit_scope_open(loop, s);
	*scopep = rsc__sh(s);
	return 0;
}

void rsc__scope_raise(struct rsc__scope *s, int err, const char *op,
		      const struct rsc__entry *e)
{
	/* The error it replaces stays reachable as its cause. */
	struct rsc_error *next = rsc__error_new(s->loop, err, op, e ? e->mgr->name : "",
						e ? e->detail : "", s->name,
						s->pending);

	if (next) {
		rsc__error_unref(s->pending);
		s->pending = next;
	} else if (!s->pending) {
		/* No memory: the chain cannot grow, but an error it has (the first)
		 * stays, and a first one is never lost (its errno, without names). */
		s->pending = rsc__error_fallback(err);
	} else {
		s->loop->counters[RSC_CTR_ERRORS_LOST]++; /* never silently */
	}
}


/* What reaches one scope of a subtree being cut to @level. */
static void cut_one(struct rsc__scope *s, enum rsc__cut level)
{
	struct rsc__entry *e;
	struct rsc_op *op;

	s->cut = (uint8_t)level;
	/* Its deadline ended with the unwind above: the timer need not fire for it. */
	rsc__deadline_forget(s);
	if (level < RSC__CUT_ACQUIRES)
		return;
	RSC__LIST_FOR_EACH_REVERSE(e, &s->entries, scope_node) {
		if (e->state == RSC_ENTERING) {
			/* Deferred ones (a connect waiting for its socket) are
			 * cancelled when what they wait for settles (entry.c). */
			rsc__entry_cancel(e);
			continue;
		}
		if (!e->n_io || (e->flags & (RSC__E_DRAINING | RSC__E_IO_CUT)))
			continue; /* nothing, or a release is cancelling it already */
		if (level >= RSC__CUT_IO) {
			/* Its release waits for these CQEs, and sends no cancel of its own. */
			e->flags |= RSC__E_IO_CUT;
			rsc__io_cancel_all(e);
			continue;
		}
		/* An accept acquires connections: it stops now, as for a graceful
		 * close (its late connections are closed by the runtime, accept.c). */
		RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
			if (rsc__op_is_accept(op) && op->grace_seq != UINT64_MAX) {
				rsc__submit_cancel(s->loop, op);
				op->grace_seq = UINT64_MAX; /* cut, not let finish */
			}
	}
}

/*
 * A cancelling unwind starts at @root, or its failure is known: everything
 * in flight in the subtree is told to stop at once (Trio: cancellation is
 * delivered to all of it), not when the LIFO unwind reaches each scope, which
 * a newer sibling's slow release may hold back for long. Only the exits wait
 * for their turn. A scope already cut this far is skipped with everything
 * below it: nothing new starts there once an unwind owns it (pushes, opens,
 * moves and tracked I/O are refused), so a deep tree whose every scope
 * starts its unwind in turn is walked once per level, not once per ancestor.
 */
void rsc__scope_cut(struct rsc__scope *root, enum rsc__cut level)
{
	struct rsc__scope *s = root;

	while (s) {
		bool down = s->cut < level;

		/* A close waits for a grace below (rsc_scope_close_graceful(3)):
		 * the deadlines there stay, as the one that may end that grace;
		 * its own unwind ends them when it starts. */
		if (down && level == RSC__CUT_DEADLINES && s != root && s->grace &&
		    s->state == RSC_SCOPE_OPEN)
			down = false;
		if (down)
			cut_one(s, level);
		s = walk_next(root, s, down);
	}
}

RSC__HOT void rsc__scope_begin_unwind(struct rsc__scope *s, struct rsc_error *pending)
{
	struct rsc__entry *e;

	assert(s->state == RSC_SCOPE_OPEN);
	rsc__graceful_end_at_unwind(s);
	/* Anything but a close (a failure, a deadline, a failed acquire) cancels:
	 * a graceful close below is cut, not waited for (Trio: cancellation
	 * reaches all of it). A close waits for the graces, as a shutdown does. */
	if (s->fail_queued || s->closer == RSC__CLOSER_NONE)
		s->cancelling = true;
	s->state = RSC_SCOPE_UNWINDING;
	s->fail_queued = false;
	closing_changed(s);
	if (s->pending && pending) {
		/* Raised on it before (an early release, rsc_scope_fail): kept as the cause. */
		struct rsc_error *both = rsc__error_append(s->loop, pending, s->pending);

		rsc__error_unref(pending);
		rsc__error_unref(s->pending);
		s->pending = both;
	} else if (pending) {
		s->pending = pending; /* takes the caller's reference */
	}
	s->step = RSC__U_CHILDREN;
	s->child_cursor = s->children.prev;
	if (s->cancelling && !rsc__list_empty(&s->loop->graceful_list))
		rsc__graceful_cut_below(s);
	/* A deadline ends when its scope starts unwinding, whatever started it:
	 * out of the heap now, not when the unwind completes. */
	rsc__deadline_forget(s);
	/* Its own acquires are cancelled by any unwind (a cancel that found no
	 * memory is sent again here); a close reaches those below in their turn.
	 * n_entering counts them: with none, no walk over the scope's entries. */
	if (s->n_entering)
		RSC__LIST_FOR_EACH_REVERSE(e, &s->entries, scope_node)
			if (e->state == RSC_ENTERING)
				rsc__entry_cancel(e);
	if (s->cancelling)
		rsc__scope_cut(s, RSC__CUT_ACQUIRES);
	else if (s->loop->dl_n)
		rsc__scope_cut(s, RSC__CUT_DEADLINES); /* the deadlines below end too */
	rsc__scope_step(s);
}

/* The parent takes a child's final error as its own pending error. */
static void take_child_result(struct rsc__scope *s, struct rsc__scope *c)
{
	struct rsc_error *next;

	c->consumed = true;
	if (c->from_parent) {
		/* The child started from our pending error and carried it on; what
		 * was raised on us meanwhile stays, on top of its result. */
		next = rsc__error_splice(s->loop, s->pending, c->started_from, c->pending);
		rsc__error_unref(c->pending);
	} else {
		/* It failed on its own first: keep both, ours as the cause. */
		next = rsc__error_append_owned(s->loop, c->pending, s->pending);
	}
	/* Its result is ours now: a consumed child holds no chain (a deep tree
	 * would otherwise keep one per level until it is freed). */
	c->pending = NULL;
	rsc__error_unref(c->started_from);
	c->started_from = NULL;
	rsc__error_unref(s->pending);
	s->pending = next;
}

RSC__HOT static void scope_unwound(struct rsc__scope *s)
{
	struct rsc_loop *loop = s->loop;
	rsc_scope_close_cb on_close = s->on_close_cb;

	s->state = RSC_SCOPE_UNWOUND;
	rsc__deadline_forget(s);
	if (s->fd_snapshot)
		rsc__audit_scope_closed(loop, s);
	rsc__trace(loop, RSC_EV_SCOPE_CLOSED, s, NULL,
		   s->pending ? rsc_error_errno(s->pending) : 0);
	rsc__obs_scope_closed(loop, s);
	if (on_close) {
		/* Whoever closed it hears about it, once. */
		s->on_close_cb = NULL;
		if (rsc__cb_enter(loop))
			on_close(rsc__sh(s), s->pending ? rsc_error_errno(s->pending) : 0,
				 s->pending, s->on_close_data);
		rsc__cb_leave(loop);
	}
	switch (s->closer) {
	case RSC__CLOSER_USER:
		/* The close callback always comes from the loop's ready queue. */
		rsc__ready_push(loop, s);
		break;
	case RSC__CLOSER_PARENT:
		take_child_result(s->parent, s);
		rsc__scope_step(s->parent);
		break;
	case RSC__CLOSER_NONE:
		break; /* unwound after a failure: waits for rsc_scope_close() */
	}
}

RSC__HOT static void step_children(struct rsc__scope *s, bool *wait)
{
	struct rsc__scope *c;

	while (s->child_cursor != &s->children) {
		c = RSC__LIST_ITEM(s->child_cursor, struct rsc__scope, child_node);
		if (c->consumed) {
			s->child_cursor = c->child_node.prev;
			continue;
		}
		if (c->closer == RSC__CLOSER_USER) {
			/* Asked before we began, it waited for its turn (rsc__scope_ready).
			 * A failure of ours flows through it as through the others: its
			 * exits see our pending error (DESIGN 7); a close of ours does not. */
			if (c->state == RSC_SCOPE_OPEN && !c->grace) {
				c->cancelling = c->cancelling || s->cancelling;
				rsc__scope_begin_unwind(c, s->cancelling ? rsc__error_ref(s->pending) : NULL);
			}
			*wait = true; /* detaches when its own close completes */
			return;
		}
		c->closer = RSC__CLOSER_PARENT;
		closing_changed(c);
		if (c->state == RSC_SCOPE_OPEN) {
			c->cancelling = s->cancelling;
			/* Like an exception: it flows through the inner scope first. */
			c->from_parent = true;
			c->started_from = rsc__error_ref(s->pending);
			rsc__scope_begin_unwind(c, rsc__error_ref(s->pending));
		} else if (c->state == RSC_SCOPE_UNWOUND) {
			take_child_result(s, c);
		}
		if (!c->consumed) {
			*wait = true;
			return;
		}
	}
}

/*
 * An unordered exit that has just started, but whose effect on the pending
 * error the exits below must see before they start (DESIGN 2.3-2.5): its hook
 * suppressed or raised, or a custom hook has not run yet because its entry's
 * I/O drains first or it found no SQE (it may still suppress, and exits go
 * newest first). An error that only its SQE's result raises is not known
 * yet: that is what RSC_MANAGER_UNORDERED trades away.
 */
static bool exit_changes_what_below_sees(const struct rsc__entry *e)
{
	if (e->flags & (RSC__E_DRAINING | RSC__E_RETRY_HOOK))
		return !(e->config & RSC__CFG_OWN_HOOKS);
	return (e->flags & RSC__E_SUPPRESS) ||
	       (e->exit_res < 0 && e->exit_opcode == RSC__OPCODE_HOOK);
}

RSC__HOT static void step_exits(struct rsc__scope *s, bool *wait)
{
	struct rsc__entry *e;

	/* Held whoever steps the scope before the batch completes: a failed
	 * acquire's completion steps it again right after starting its unwind. */
	if (s->batch_held && s->batch_outstanding) {
		*wait = true;
		return;
	}
	s->batch_held = false;
	while (s->cursor != &s->entries) {
		e = RSC__LIST_ITEM(s->cursor, struct rsc__entry, scope_node);
		if (e->state != RSC_ENTERED || (e->flags & RSC__E_RELEASE_REQ)) {
			s->cursor = e->scope_node.prev;
			continue;
		}
		/* An ordered release starts only after every release above it,
		 * early releases still in flight included. */
		if ((e->config & RSC__CFG_ORDERED) && (s->batch_outstanding || s->n_early)) {
			*wait = true;
			return;
		}
		e->flags |= RSC__E_IN_BATCH;
		s->batch_outstanding++;
		s->cursor = e->scope_node.prev;
		rsc__entry_start_exit(e);
		if ((e->config & RSC__CFG_ORDERED) || exit_changes_what_below_sees(e)) {
			s->batch_held = true;
			*wait = true;
			return;
		}
	}
	*wait = s->batch_outstanding > 0;
}

/* Traced: the releases started together share one clock reading. */
RSC__HOT static void step_exits_stamped(struct rsc__scope *s, bool *wait)
{
	struct rsc_loop *loop = s->loop;
	bool stamp = RSC__OBS_ON(loop) && (loop->obs_flags & RSC__OBS_TRACE) &&
		     !loop->obs_exit_ns;

	if (stamp)
		loop->obs_exit_ns = rsc__tj_now(loop->tj);
	step_exits(s, wait);
	if (stamp)
		loop->obs_exit_ns = 0;
}

RSC__HOT static void step_once(struct rsc__scope *s)
{
	bool wait = false;

	switch (s->step) {
	case RSC__U_CHILDREN:
		step_children(s, &wait);
		if (wait)
			return;
		s->step = RSC__U_WAIT_ENTERING;
		/* fall through */
	case RSC__U_WAIT_ENTERING:
		if (s->n_entering)
			return;
		s->step = RSC__U_EXITS;
		s->cursor = s->entries.prev;
		s->report = s->entries.prev;
		/* fall through */
	case RSC__U_EXITS:
		step_exits_stamped(s, &wait);
		if (wait)
			return;
		s->step = RSC__U_WAIT_EARLY;
		/* fall through */
	case RSC__U_WAIT_EARLY:
		if (s->n_early)
			return;
		s->step = RSC__U_DONE;
		scope_unwound(s);
		/* fall through */
	case RSC__U_DONE:
		return;
	}
}

/*
 * Steps go through one queue per loop, drained by the outermost caller: a
 * child that finishes pokes its parent by queueing it, so 100,000 nested
 * scopes unwind without 100,000 nested calls.
 */
RSC__HOT void rsc__scope_step(struct rsc__scope *s)
{
	struct rsc_loop *loop = s->loop;

	if (loop->stepping) {
		/* Inside a step: queue it, the outermost caller runs it next. */
		if (!s->in_step_queue) {
			s->in_step_queue = true;
			rsc__list_push_back(&loop->step_queue, &s->step_node);
		}
		return;
	}
	loop->stepping = true;
	for (;;) {
		struct rsc__list *next;

		if (s->state == RSC_SCOPE_UNWINDING)
			step_once(s);
		if (!(next = rsc__list_pop_front(&loop->step_queue)))
			break;
		s = RSC__LIST_ITEM(next, struct rsc__scope, step_node);
		s->in_step_queue = false;
	}
	loop->stepping = false;
}

/*
 * A batch's CQEs may arrive in any order; they are settled newest first, so
 * callbacks and the error chain see the releases in LIFO order.
 */
RSC__HOT void rsc__scope_report(struct rsc__scope *s)
{
	struct rsc__entry *e;

	while (s->report != &s->entries && s->report != s->cursor) {
		e = RSC__LIST_ITEM(s->report, struct rsc__entry, scope_node);
		if (e->flags & RSC__E_IN_BATCH) {
			if (!(e->flags & RSC__E_DONE))
				break;
			e->flags &= ~(RSC__E_IN_BATCH | RSC__E_DONE);
			assert(s->batch_outstanding > 0);
			s->batch_outstanding--;
			rsc__entry_settle_release(e);
		}
		s->report = e->scope_node.prev;
	}
	if (s->batch_outstanding == 0)
		rsc__scope_step(s);
}

RSC__HOT int rsc__scope_check_close(const struct rsc__scope *s, const char *fn)
{
	if (s->closer != RSC__CLOSER_NONE) {
		rsc__set_last_error("%s: scope '%s' is already being closed%s", fn, s->name,
				    s->closer == RSC__CLOSER_PARENT ? " by its parent" : "");
		return -EALREADY;
	}
	/* An ancestor's unwind owns the subtree once it has started: closed now,
	 * this would unwind without its pending error, its result kept from the
	 * ancestor (DESIGN 7). So does a child that failed on its own and is
	 * unwinding or unwound: its error is the ancestor's to take. Not below a
	 * grace it waits for: that subtree is still the work let finish, which
	 * may close a connection's scope. */
	if (unwind_above_reaches(s)) {
		rsc__set_last_error("%s: scope '%s' is below a scope whose unwind has started: that unwind closes it",
				    fn, s->name);
		return -EALREADY;
	}
	return 0;
}

RSC__HOT int rsc_scope_close(struct rsc_scope *h, rsc_scope_close_cb cb, void *data)
{
	struct rsc__scope *s;
	int ret;

	RSC__SCOPE(s, h, "rsc_scope_close");
	ret = rsc__scope_check_close(s, "rsc_scope_close");
	if (ret < 0)
		return ret;
	s->closer = RSC__CLOSER_USER;
	closing_changed(s);
	s->close_cb = cb;
	s->close_data = cb ? data : NULL;
	/*
	 * Only a request: the unwind starts on the loop's next turn, so no hook
	 * or trace callback runs inside this call. UNWINDING: scope_unwound()
	 * queues it when the unwind completes.
	 */
	if (s->state != RSC_SCOPE_UNWINDING)
		rsc__ready_push(s->loop, s);
	return 0;
}

int rsc_scope_fail(struct rsc_scope *h, int err, const char *op)
{
	struct rsc_error *next;
	struct rsc__scope *s;

	RSC__SCOPE(s, h, "rsc_scope_fail");
	RSC__CHECK_ARG(err < 0, "rsc_scope_fail: err must be a negative errno, not %d", err);
	/* In its grace nothing unwinds yet: a failure ends the grace and starts
	 * the unwind with its error (rsc_scope_close_graceful(3)). */
	if (scope_closing(s) && !in_its_grace(s)) {
		rsc__set_last_error("rsc_scope_fail: scope '%s' is unwinding or closing already",
				    s->name);
		return -EALREADY;
	}
	/* The caller hears when its error cannot be recorded: nothing changes then. */
	next = rsc__error_new(s->loop, err, op ? op : "fail", "", "", s->name, s->pending);
	if (!next) {
		rsc__set_last_error("rsc_scope_fail: no memory for the error of scope '%s'", s->name);
		return -ENOMEM;
	}
	rsc__error_unref(s->pending);
	s->pending = next;
	/* Like rsc_scope_close(): no exit runs inside this call. */
	s->fail_queued = true;
	closing_changed(s);
	rsc__ready_push(s->loop, s);
	return 0;
}

static bool in_subtree(const struct rsc__scope *root, const struct rsc__scope *s)
{
	for (; s; s = s->parent)
		if (s == root)
			return true;
	return false;
}

int rsc_scope_move(struct rsc_scope *h, struct rsc_scope *parent_h)
{
	struct rsc__scope *s, *to;

	RSC__SCOPE(s, h, "rsc_scope_move");
	if (parent_h) {
		RSC__SCOPE(to, parent_h, "rsc_scope_move (new_parent)");
	} else {
		to = s->loop->root;
	}
	RSC__CHECK_ARG(s != s->loop->root, "rsc_scope_move: not a user scope");
	if (to->loop != s->loop) {
		rsc__set_last_error("rsc_scope_move: the new parent belongs to another loop");
		return -EXDEV;
	}
	if (rsc__check_not_in_hook(s->loop, "rsc_scope_move") < 0)
		return -EDEADLK;
	if (rsc__scope_unwind_owns(s)) {
		rsc__set_last_error("rsc_scope_move: scope '%s' is unwinding or closing: its unwind owns it",
				    s->name);
		return -EALREADY;
	}
	RSC__CHECK_ARG(!in_subtree(s, to),
		       "rsc_scope_move: cannot move scope '%s' into itself or its own subtree",
		       s->name);
	RSC__CHECK_ARG(!rsc__scope_unwind_owns(to),
		       "rsc_scope_move: scope '%s' is unwinding or closing", to->name);
	unlink_child(s);
	link_child(to, s);
	closing_changed(s); /* its ancestors are others now */
	rsc__obs_ownership_moved(s->loop, s, NULL);
	return 0;
}

int rsc_scope_on_close(struct rsc_scope *h, rsc_scope_close_cb cb, void *data)
{
	struct rsc__scope *s;

	RSC__SCOPE(s, h, "rsc_scope_on_close");
	if (s->state == RSC_SCOPE_UNWOUND) {
		rsc__set_last_error("rsc_scope_on_close: scope '%s' has unwound already", s->name);
		return -EALREADY;
	}
	s->on_close_cb = cb;
	s->on_close_data = cb ? data : NULL;
	return 0;
}

int rsc_scope_set_data(struct rsc_scope *h, void *data)
{
	struct rsc__scope *s;

	RSC__SCOPE(s, h, "rsc_scope_set_data");
	s->user_data = data;
	return 0;
}

void *rsc_scope_data(const struct rsc_scope *h)
{
	struct rsc__scope *s;

	return rsc__scope_from(h, &s, "rsc_scope_data") < 0 ? NULL : s->user_data;
}

/* Post-order and iterative: a deep tree costs no stack. */
RSC__HOT void rsc__scope_free_tree(struct rsc__scope *root)
{
	struct rsc_loop *loop = root->loop;
	struct rsc__scope *s = root;

	for (;;) {
		struct rsc__scope *parent;
		struct rsc__entry *e;

		while (!rsc__list_empty(&s->children))
			s = RSC__LIST_ITEM(s->children.next, struct rsc__scope, child_node);
		parent = s->parent;
		if (s != root)
			rsc__list_remove(&s->child_node);
		/* They go with the scope: nobody walks its entries any more. */
		RSC__LIST_FOR_EACH_SAFE(e, &s->entries, scope_node)
			rsc__entry_free(loop, e);
		rsc__error_unref(s->pending);
		rsc__error_unref(s->started_from);
		rsc__graceful_forget(s);
		/* Queued still (a grace or a deadline that ended in the turn its
		 * tree unwound): the queue must not keep a freed scope. */
		if (s->in_ready) {
			rsc__list_remove(&s->ready_node);
			s->in_ready = false;
		}
		rsc__scope_put(loop, s);
		if (s == root)
			return;
		s = parent;
	}
}

static void finish_close(struct rsc__scope *s)
{
	struct rsc_loop *loop = s->loop;
	struct rsc__scope *parent = s->parent;
	int status = s->pending ? rsc_error_errno(s->pending) : 0;

	assert(s->closer == RSC__CLOSER_USER && s->state == RSC_SCOPE_UNWOUND);
	if (s->close_cb) {
		if (rsc__cb_enter(loop))
			s->close_cb(rsc__sh(s), status, s->pending, s->close_data);
		rsc__cb_leave(loop);
	}
	unlink_child(s);
	if (s == loop->root)
		loop->root = NULL;
	rsc__scope_free_tree(s);
	/* A parent unwinding may have been waiting for this child. */
	if (parent && parent->state == RSC_SCOPE_UNWINDING)
		rsc__scope_step(parent);
}

/* A failure of @s known before its unwind's turn: what is in flight below
 * is cancelled now, and a grace below ends now with the deadlines there
 * (rsc_scope_set_deadline(3): a failure above ends both at once), as when
 * the cancelling unwind starts. */
static void cut_for_failure(struct rsc__scope *s)
{
	if (!rsc__list_empty(&s->loop->graceful_list))
		rsc__graceful_cut_below(s);
	rsc__scope_cut(s, RSC__CUT_ACQUIRES);
}

void rsc__scope_fail_acquire(struct rsc__scope *s)
{
	if (waits_for_its_turn(s)) {
		/* That unwind starts ours in its turn, this error pending; what
		 * is in flight below is cancelled now. */
		if (!s->fail_queued) {
			s->fail_queued = true;
			closing_changed(s);
		}
		cut_for_failure(s);
		return;
	}
	s->cancelling = true;
	rsc__scope_begin_unwind(s, NULL);
}

/* From the loop's ready queue: start a requested unwind, or finish a close. */
RSC__HOT void rsc__scope_ready(struct rsc__scope *s)
{
	if (in_its_grace(s))
		return; /* graceful: its grace's end queues it again; a failure ends it now */
	/* Below an unwind that has not reached it (a failure, or a close asked
	 * just before that unwind began): it starts in its LIFO turn, not beside
	 * the newer children (DESIGN 2.3). */
	if (s->state == RSC_SCOPE_OPEN &&
	    (waits_for_its_turn(s) || (!s->g_seq && !s->fail_queued && failure_above(s)))) {
		/* A failure cancels at once all the same: only its exits wait. */
		if (s->fail_queued)
			cut_for_failure(s);
		return;
	}
	if (s->state == RSC_SCOPE_OPEN)
		rsc__scope_begin_unwind(s, NULL);
	else if (s->state == RSC_SCOPE_UNWOUND && s->closer == RSC__CLOSER_USER)
		finish_close(s);
	/* UNWINDING (a failure started it meanwhile): queued again when done. */
}

const char *rsc_scope_name(const struct rsc_scope *h)
{
	struct rsc__scope *s;

	return rsc__scope_from(h, &s, "rsc_scope_name") < 0 ? "" : s->name;
}

int rsc_scope_state(const struct rsc_scope *h)
{
	struct rsc__scope *s;

	RSC__SCOPE(s, h, "rsc_scope_state");
	return s->state;
}

const struct rsc_error *rsc_scope_error(const struct rsc_scope *h)
{
	struct rsc__scope *s;

	return rsc__scope_from(h, &s, "rsc_scope_error") < 0 ? NULL : s->pending;
}
