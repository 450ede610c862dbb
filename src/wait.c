/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>

#include "internal.h"

/*
 * Blocking helpers: a thin layer that turns the loop until one thing is
 * done. They add no second code path (DESIGN.md semantic 10).
 */

struct close_wait {
	bool done;
	int status;
	struct rsc_error *err;
};

static void close_wait_cb(struct rsc_scope *scope, int status,
			  const struct rsc_error *err, void *data)
{
	struct close_wait *w = data;

	(void)scope;
	w->done = true;
	w->status = status;
	if (err && rsc_error_dup(err, &w->err) < 0)
		w->err = NULL;
}

/*
 * Close @s and turn the loop until its callback ran: returns 0 with the
 * scope's status and chain, or the ring's -errno (the close then stays
 * requested, without our callback, which must not outlive this frame).
 */
int rsc__scope_close_and_wait(struct rsc_scope *s, int *status,
			      struct rsc_error **errp)
{
	struct close_wait w = { false, 0, NULL };
	struct rsc_loop *loop = s->loop;
	int ret;

	*errp = NULL;
	ret = rsc_scope_close(s, close_wait_cb, &w);
	if (ret < 0)
		return ret;
	while (!w.done) {
		ret = rsc_loop_run(loop, RSC_RUN_ONCE);
		if (ret < 0) {
			s->close_cb = NULL;
			s->close_data = NULL;
			return ret;
		}
	}
	*status = w.status;
	*errp = w.err;
	return 0;
}

int rsc_scope_close_wait(struct rsc_scope *s, struct rsc_error **errp)
{
	struct rsc_error *err;
	int status = 0, ret;

	if (errp)
		*errp = NULL;
	RSC__CHECK_ARG(s && s->state >= RSC_SCOPE_OPEN && s->state <= RSC_SCOPE_UNWOUND,
		       "rsc_scope_close_wait: not a live scope");
	if (s->loop->running) {
		/* Our callback would outlive this stack frame. */
		rsc__set_last_error("rsc_scope_close_wait: cannot block inside a loop callback");
		return -EDEADLK;
	}
	ret = rsc__scope_close_and_wait(s, &status, &err);
	if (ret < 0)
		return ret;
	if (errp)
		*errp = err;
	else
		rsc__error_unref(err);
	return status;
}

int rsc_entry_wait(struct rsc_entry *e)
{
	const struct rsc_scope *s;
	struct rsc_loop *loop;
	int ret;

	RSC__CHECK_ARG(e && e->state >= RSC_ENTERING && e->state <= RSC_FAILED,
		       "rsc_entry_wait: not a live entry");
	loop = e->scope->loop;
	if (loop->running) {
		rsc__set_last_error("rsc_entry_wait: cannot block inside a loop callback");
		return -EDEADLK;
	}
	for (s = e->scope; s; s = s->parent) {
		if (s->closer == RSC__CLOSER_USER) {
			/* That close may free the entry during the turn we would run. */
			rsc__set_last_error("rsc_entry_wait: scope '%s' above the entry is being closed",
					    s->name);
			return -ESHUTDOWN;
		}
	}
	while (e->state == RSC_ENTERING) {
		ret = rsc_loop_run(loop, RSC_RUN_ONCE);
		if (ret < 0)
			return ret;
	}
	return rsc_entry_fd(e);
}
