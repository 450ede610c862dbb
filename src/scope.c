/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "internal.h"

/* Scopes in the pool's free list carry state -1 (see pool.c). */
static bool scope_is_live(const struct rsc_scope *s)
{
	return s->state >= RSC_SCOPE_OPEN && s->state <= RSC_SCOPE_UNWOUND;
}

struct rsc_scope *rsc__scope_new_root(struct rsc_loop *loop)
{
	struct rsc_scope *s = rsc__scope_get(loop);

	if (!s)
		return NULL;
	strcpy(s->name, "(loop)");
	s->state = RSC_SCOPE_OPEN;
	return s;
}

int rsc_scope_open(struct rsc_loop *loop, struct rsc_scope *parent,
		   const char *name, struct rsc_scope **scopep)
{
	struct rsc_scope *s;
	size_t len;

	RSC__CHECK_ARG(loop, "rsc_scope_open: loop is NULL");
	RSC__CHECK_ARG(scopep, "rsc_scope_open: scopep is NULL");
	*scopep = NULL;
	name = name ? name : "";
	len = strnlen(name, RSC_NAME_MAX);
	if (len >= RSC_NAME_MAX) {
		rsc__set_last_error("rsc_scope_open: a scope name is at most %d bytes",
				    RSC_NAME_MAX - 1);
		return -ENAMETOOLONG;
	}
	if (parent) {
		RSC__CHECK_ARG(scope_is_live(parent),
			       "rsc_scope_open: parent is not a live scope");
		RSC__CHECK_ARG(parent->loop == loop,
			       "rsc_scope_open: parent belongs to another loop");
	} else {
		parent = loop->root;
	}
	if (!parent || parent->state != RSC_SCOPE_OPEN ||
	    parent->closer != RSC__CLOSER_NONE) {
		rsc__set_last_error("rsc_scope_open: the parent scope is %s",
				    parent ? "closing" : "gone (loop shut down)");
		return -ESHUTDOWN;
	}
	s = rsc__scope_get(loop);
	if (!s)
		return -ENOMEM;
	memcpy(s->name, name, len + 1);
	s->state = RSC_SCOPE_OPEN;
	s->parent = parent;
	s->prev = parent->children_tail;
	if (parent->children_tail)
		parent->children_tail->next = s;
	else
		parent->children_head = s;
	parent->children_tail = s;
	if (loop->audit_level == RSC_AUDIT_FULL)
		rsc__audit_scope_open(loop, s);
	*scopep = s;
	return 0;
}

void rsc__scope_begin_unwind(struct rsc_scope *s, struct rsc_error *pending)
{
	struct rsc_entry *e;

	assert(s->state == RSC_SCOPE_OPEN);
	s->state = RSC_SCOPE_UNWINDING;
	if (s->pending && pending) {
		/* An early release failed before: keep it as the cause. */
		struct rsc_error *both = rsc__error_append(pending, s->pending);

		rsc__error_unref(pending);
		rsc__error_unref(s->pending);
		s->pending = both;
	} else if (pending) {
		s->pending = pending; /* takes the caller's reference */
	}
	s->step = RSC__U_CHILDREN;
	s->child_cursor = s->children_tail;
	/* Trio-style: everything started inside is told to stop at once. */
	for (e = s->entries_tail; e; e = e->prev)
		if (e->state == RSC_ENTERING)
			rsc__entry_cancel(e);
	rsc__scope_step(s);
}

/* The parent takes a child's final error as its own pending error. */
static void take_child_result(struct rsc_scope *s, struct rsc_scope *c)
{
	struct rsc_error *next;

	c->consumed = true;
	if (c->from_parent) {
		/* The child started from our pending error and carried it on; what
		 * was raised on us meanwhile stays, on top of its result. */
		next = rsc__error_splice(s->pending, c->started_from, c->pending);
	} else {
		/* It failed on its own first: keep both, ours as the cause. */
		next = rsc__error_append(c->pending, s->pending);
	}
	rsc__error_unref(s->pending);
	s->pending = next;
}

static void scope_unwound(struct rsc_scope *s)
{
	struct rsc_loop *loop = s->loop;

	s->state = RSC_SCOPE_UNWOUND;
	if (s->fd_snapshot)
		rsc__audit_scope_closed(loop, s);
	rsc__trace(loop, RSC_EV_SCOPE_CLOSED, s, NULL,
		   s->pending ? rsc_error_errno(s->pending) : 0);
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

static void step_children(struct rsc_scope *s, bool *wait)
{
	struct rsc_scope *c;

	while ((c = s->child_cursor)) {
		if (c->consumed) {
			s->child_cursor = c->prev;
			continue;
		}
		if (c->closer == RSC__CLOSER_USER) {
			*wait = true; /* detaches when its own close completes */
			return;
		}
		c->closer = RSC__CLOSER_PARENT;
		if (c->state == RSC_SCOPE_OPEN) {
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

static void step_exits(struct rsc_scope *s, bool *wait)
{
	struct rsc_entry *e;

	while ((e = s->cursor)) {
		if (e->state != RSC_ENTERED || (e->flags & RSC__E_RELEASE_REQ)) {
			s->cursor = e->prev;
			continue;
		}
		/* An ordered release starts only after every release above it. */
		if ((e->flags & RSC__E_ORDERED) && s->batch_outstanding) {
			*wait = true;
			return;
		}
		e->flags |= RSC__E_IN_BATCH;
		s->batch_outstanding++;
		s->cursor = e->prev;
		rsc__entry_start_exit(e);
		if (e->flags & RSC__E_ORDERED) {
			*wait = true;
			return;
		}
	}
	*wait = s->batch_outstanding > 0;
}

static void step_once(struct rsc_scope *s)
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
		s->cursor = s->entries_tail;
		s->report = s->entries_tail;
		/* fall through */
	case RSC__U_EXITS:
		step_exits(s, &wait);
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

void rsc__scope_step(struct rsc_scope *s)
{
	/* A child that finishes inside our step pokes us again: rerun, don't nest. */
	if (s->in_step) {
		s->step_again = true;
		return;
	}
	s->in_step = true;
	do {
		s->step_again = false;
		if (s->state == RSC_SCOPE_UNWINDING)
			step_once(s);
	} while (s->step_again);
	s->in_step = false;
}

/* Settle one unwind release: trace it, audit it, and carry its error on. */
static void report_exit(struct rsc_scope *s, struct rsc_entry *e)
{
	struct rsc_loop *loop = s->loop;

	if (e->exit_res < 0) {
		/* The error it replaces stays reachable as its cause. */
		struct rsc_error *err = rsc__error_new(
			e->exit_res, rsc__opcode_name(e->exit_opcode),
			e->mgr->name, e->detail, s->name, s->pending);

		if (err) {
			rsc__error_unref(s->pending);
			s->pending = err;
		}
	} else if (e->flags & RSC__E_SUPPRESS) {
		rsc__error_unref(s->pending);
		s->pending = NULL;
	}
	rsc__trace(loop, RSC_EV_RELEASED, s, e, e->exit_res);
	rsc__audit_check_released(loop, e);
}

/*
 * A batch's CQEs may arrive in any order; they are settled newest first, so
 * callbacks and the error chain see the releases in LIFO order.
 */
void rsc__scope_report(struct rsc_scope *s)
{
	struct rsc_entry *e;

	while ((e = s->report) && e != s->cursor) {
		if (e->flags & RSC__E_IN_BATCH) {
			if (!(e->flags & RSC__E_DONE))
				break;
			e->flags &= ~(RSC__E_IN_BATCH | RSC__E_DONE);
			assert(s->batch_outstanding > 0);
			s->batch_outstanding--;
			report_exit(s, e);
		}
		s->report = e->prev;
	}
	if (s->batch_outstanding == 0)
		rsc__scope_step(s);
}

int rsc_scope_close(struct rsc_scope *s, rsc_scope_close_cb cb, void *data)
{
	RSC__CHECK_ARG(s, "rsc_scope_close: scope is NULL");
	RSC__CHECK_ARG(scope_is_live(s), "rsc_scope_close: not a live scope (closed already?)");
	if (s->closer != RSC__CLOSER_NONE) {
		rsc__set_last_error("rsc_scope_close: scope '%s' is already being closed%s",
				    s->name,
				    s->closer == RSC__CLOSER_PARENT ? " by its parent" : "");
		return -EALREADY;
	}
	s->closer = RSC__CLOSER_USER;
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

void rsc__scope_free_tree(struct rsc_scope *s)
{
	struct rsc_loop *loop = s->loop;

	while (s->children_head) {
		struct rsc_scope *c = s->children_head;

		s->children_head = c->next;
		rsc__scope_free_tree(c);
	}
	while (s->entries_head) {
		struct rsc_entry *e = s->entries_head;

		s->entries_head = e->next;
		rsc__entry_free(loop, e);
	}
	rsc__error_unref(s->pending);
	rsc__error_unref(s->started_from);
	rsc__scope_put(loop, s);
}

static void detach(struct rsc_scope *s)
{
	struct rsc_scope *p = s->parent;

	if (!p)
		return;
	if (p->child_cursor == s)
		p->child_cursor = s->prev;
	if (s->prev)
		s->prev->next = s->next;
	else
		p->children_head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		p->children_tail = s->prev;
}

static void finish_close(struct rsc_scope *s)
{
	struct rsc_loop *loop = s->loop;
	struct rsc_scope *parent = s->parent;
	int status = s->pending ? rsc_error_errno(s->pending) : 0;

	assert(s->closer == RSC__CLOSER_USER && s->state == RSC_SCOPE_UNWOUND);
	if (s->close_cb)
		s->close_cb(s, status, s->pending, s->close_data);
	detach(s);
	if (s == loop->root)
		loop->root = NULL;
	rsc__scope_free_tree(s);
	/* A parent unwinding may have been waiting for this child. */
	if (parent && parent->state == RSC_SCOPE_UNWINDING)
		rsc__scope_step(parent);
}

/* From the loop's ready queue: start a requested unwind, or finish a close. */
void rsc__scope_ready(struct rsc_scope *s)
{
	if (s->state == RSC_SCOPE_OPEN)
		rsc__scope_begin_unwind(s, NULL);
	else if (s->state == RSC_SCOPE_UNWOUND)
		finish_close(s);
	/* UNWINDING (a failure started it meanwhile): queued again when done. */
}

const char *rsc_scope_name(const struct rsc_scope *s)
{
	return s && scope_is_live(s) ? s->name : "";
}

int rsc_scope_state(const struct rsc_scope *s)
{
	if (!s || !scope_is_live(s))
		return -EINVAL;
	return s->state;
}

const struct rsc_error *rsc_scope_error(const struct rsc_scope *s)
{
	return s && scope_is_live(s) ? s->pending : NULL;
}
