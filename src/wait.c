/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>

#include "internal.h"

/*
 * Blocking helpers: a thin layer that turns the loop until one thing is
 * done. They add no second code path (DESIGN.md semantic 10). None of them
 * may run from inside a callback or hook (-EDEADLK): the turn they would
 * run could free what the caller is in the middle of.
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
int rsc__scope_close_and_wait(struct rsc__scope *s, int *status,
			      struct rsc_error **errp)
{
	struct close_wait w = { false, 0, NULL };
	struct rsc_loop *loop = s->loop;
	uint64_t h = s->h;
	int ret;

	*errp = NULL;
	ret = rsc_scope_close(rsc__sh(s), close_wait_cb, &w);
	if (ret < 0)
		return ret;
	while (!w.done) {
		ret = rsc_loop_run(loop, RSC_RUN_ONCE);
		if (ret < 0) {
			/* By handle: in a child that a callback forked (-ECHILD), the
			 * scope may be gone without our callback (ringscope(7), FORK). */
			if (rsc__handle_lookup(h, RSC__K_SCOPE) == s) {
				s->close_cb = NULL;
				s->close_data = NULL;
			}
			return ret;
		}
	}
	*status = w.status;
	*errp = w.err;
	return 0;
}

int rsc_scope_close_wait(struct rsc_scope *h, struct rsc_error **errp)
{
	struct rsc__scope *s;
	struct rsc_error *err;
	int status = 0, ret;

	if (errp)
		*errp = NULL;
	RSC__SCOPE(s, h, "rsc_scope_close_wait");
	ret = rsc__check_can_block(s->loop, "rsc_scope_close_wait");
	if (ret < 0)
		return ret;
	ret = rsc__scope_close_and_wait(s, &status, &err);
	if (ret < 0)
		return ret;
	if (errp)
		*errp = err;
	else
		rsc__error_unref(err);
	return status;
}

int rsc_entry_wait(struct rsc_entry *h)
{
	const struct rsc__scope *s;
	struct rsc__entry *e;
	struct rsc_loop *loop;
	int ret;

	RSC__ENTRY(e, h, "rsc_entry_wait");
	loop = e->scope->loop;
	ret = rsc__check_can_block(loop, "rsc_entry_wait");
	if (ret < 0)
		return ret;
	for (s = e->scope; s; s = s->parent) {
		if (s->closer != RSC__CLOSER_USER)
			continue;
		/* That close may free the entry during the turn we would run, and
		 * an entry entered already is released by it: not the caller's. */
		rsc__set_last_error("rsc_entry_wait: scope '%s' above the entry is being closed",
				    s->name);
		return -ESHUTDOWN;
	}
	/* By handle each turn: a callback may detach it, or close its scope,
	 * and a cancelled acquire frees both in the turn it settles. */
	while ((e = rsc__entry_live((uint64_t)(uintptr_t)h)) && e->state == RSC_ENTERING) {
		ret = rsc_loop_run(loop, RSC_RUN_ONCE);
		if (ret < 0)
			return ret;
	}
	if (!e)
		return rsc_entry_fd(h); /* -ESTALE: freed during the wait */
	/* Its release has started (early, or by an unwind): the number is no
	 * longer the caller's to use. */
	if (e->state == RSC_EXITING || e->state == RSC_EXITED) {
		rsc__set_last_error("rsc_entry_wait: entry '%s' has been released", e->mgr->name);
		return -EBADF;
	}
	ret = rsc__entry_fd_of(e); /* the descriptor, or a failed acquire's errno */
	return ret == -EBADFD ? rsc_entry_slot(h) : ret; /* a direct entry: its slot */
}

struct release_wait {
	bool done;
	int res;
	struct rsc_error *err;
};

/* Every failure of a release, oldest first, as a chain (DESIGN 2.5); NULL without memory. */
static struct rsc_error *release_chain(const struct rsc__entry *e, int res)
{
	int errs[RSC_ENTRY_SQES_MAX + 1];
	const char *ops[RSC_ENTRY_SQES_MAX + 1];
	struct rsc_error *chain = NULL, *next;
	unsigned i, n;

	if (e->state == RSC_FAILED) {
		errs[0] = res;
		ops[0] = rsc__entry_fail_op(e);
		n = 1;
	} else {
		n = rsc__entry_exit_errors(e, errs, ops);
	}
	for (i = 0; i < n; i++) {
		next = rsc__error_new(e->scope->loop, errs[i], ops[i], e->mgr->name, e->detail,
				      e->scope->name, chain);
		rsc__error_unref(chain);
		if (!next) {
			/* The caller keeps the result's errno alone: the rest is counted lost. */
			e->scope->loop->counters[RSC_CTR_ERRORS_LOST] += (long long)n - 1;
			return NULL;
		}
		chain = next;
	}
	return chain;
}

/* The entry may be freed in the same turn: its error is made here. */
static void release_wait_cb(struct rsc_entry *h, int res, void *data)
{
	struct release_wait *w = data;
	struct rsc__entry *e;

	w->done = true;
	w->res = res;
	if (res < 0 && rsc__entry_from(h, &e, "rsc_entry_release_wait") == 0) {
		w->err = release_chain(e, res);
		if (!w->err) /* no memory: the errno alone, never no chain for a failure */
			w->err = rsc__error_fallback(res);
	}
}

int rsc_entry_release_wait(struct rsc_entry *h, struct rsc_error **errp)
{
	struct release_wait w = { false, 0, NULL };
	struct rsc__entry *e;
	struct rsc_loop *loop;
	int ret;

	if (errp)
		*errp = NULL;
	RSC__ENTRY(e, h, "rsc_entry_release_wait");
	loop = e->scope->loop;
	ret = rsc__check_can_block(loop, "rsc_entry_release_wait");
	if (ret < 0)
		return ret;
	ret = rsc_entry_release(h, release_wait_cb, &w);
	if (ret < 0)
		return ret;
	/* The entry outlives its release: its scope waits for early releases. */
	while (!w.done) {
		ret = rsc_loop_run(loop, RSC_RUN_ONCE);
		if (ret < 0) {
			/* Our frame goes; the release does not. */
			if (rsc__entry_from(h, &e, "rsc_entry_release_wait") == 0 && !w.done) {
				e->release_cb = NULL;
				e->release_data = NULL;
			}
			return ret;
		}
	}
	if (errp)
		*errp = w.err;
	else
		rsc__error_unref(w.err);
	return w.res;
}
