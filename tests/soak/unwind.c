/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ringscope.h"
#include "model.h"

/*
 * The unwind as the exits see it (DESIGN 2.3-2.5, rsc_push(3), rsc_defer(3)):
 * every custom exit and defer records when it started, what it returned and
 * the pending error it was given, and every release when it completed (its
 * RELEASED). The model:
 *
 * - Exits start newest first: when an exit starts, every custom exit and
 *   defer above it in its scope has started.
 * - An ordered exit (a custom one without RSC_MANAGER_UNORDERED, a defer)
 *   starts only after every release above it has completed, early releases
 *   of its scope still in flight included; and an ordered release (those,
 *   and fsync-then-close) completes before any exit below it starts.
 * - An unordered exit that suppressed or returned a negative errno
 *   completes before the exits below it start; one whose hook waits for its
 *   I/O to drain has not started, so nothing below may start either.
 * - The pending error: from one exit of a scope's unwind to the next, it is
 *   what the first one saw, changed by each release of the scope that
 *   completed in between, in the order they completed, as rsc_push(3) says:
 *   a release that failed raises its errno (op "exit" for a hook's return)
 *   on top, the pending one as its cause, unless an early release's callback
 *   hears it; a suppression that raised nothing clears what its exit was
 *   handed (what was raised above it since stays). A release that has not
 *   completed changed nothing yet: that is the one thing an unordered
 *   exit's SQE result may leave unseen by the exits started in its step.
 *   The first exit of an unwind sees only errors some event raised.
 */

#define PM_MAX 32

struct plink {
	int err;
	char op[16]; /* "" when the model does not know it (an SQE's opcode) */
	char entry[32];
	char scope[16];
};

struct uscope {
	bool valid;    /* an exit of its unwind has run: the model follows from it */
	bool overflow; /* the chain is longer than the model keeps */
	int n;
	struct plink pm[PM_MAX]; /* head first */
};

struct uentry {
	bool started;	/* its exit hook ran in its unwind turn */
	int hook_ret;	/* what the hook last returned */
	int n_hooks;
	int seen_n;	/* links of the pending error it was handed (-1: unknown) */
};

static struct uscope usc[MAX_SCOPES];
static struct uentry uen[MAX_ENTRIES];

void uw_begin(void)
{
	memset(usc, 0, sizeof(usc));
	memset(uen, 0, sizeof(uen));
}

static void copy_str(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

static void format_model(const struct uscope *u, char *buf, size_t n)
{
	size_t used = 0;
	int k;

	buf[0] = '\0';
	for (k = 0; k < u->n && used < n; k++)
		used += (size_t)snprintf(buf + used, n - used, "%s%s %s '%s' '%s'",
					 k ? " <- " : "", rsc_err_name(u->pm[k].err),
					 u->pm[k].op[0] ? u->pm[k].op : "?", u->pm[k].entry,
					 u->pm[k].scope);
	if (!u->n)
		snprintf(buf, n, "(none)");
}

static void format_chain(const struct rsc_error *c, char *buf, size_t n)
{
	size_t used = 0;

	buf[0] = '\0';
	if (!c)
		snprintf(buf, n, "(none)");
	for (; c && used < n; c = rsc_error_cause(c))
		used += (size_t)snprintf(buf + used, n - used, "%s%s %s '%s' '%s'",
					 used ? " <- " : "", rsc_err_name(rsc_error_errno(c)),
					 rsc_error_op(c), rsc_error_entry(c), rsc_error_scope(c));
}

static bool same_as_model(const struct uscope *u, const struct rsc_error *c)
{
	int k;

	for (k = 0; k < u->n; k++, c = rsc_error_cause(c)) {
		const struct plink *l = &u->pm[k];

		if (!c || rsc_error_errno(c) != l->err || strcmp(rsc_error_entry(c), l->entry) ||
		    strcmp(rsc_error_scope(c), l->scope) ||
		    (l->op[0] && strcmp(rsc_error_op(c), l->op)))
			return false;
	}
	return c == NULL;
}

static void model_from(struct uscope *u, const struct rsc_error *c)
{
	u->valid = true;
	u->overflow = false;
	for (u->n = 0; c; c = rsc_error_cause(c)) {
		struct plink *l;

		if (u->n == PM_MAX) {
			u->overflow = true;
			return;
		}
		l = &u->pm[u->n++];
		l->err = rsc_error_errno(c);
		copy_str(l->op, sizeof(l->op), rsc_error_op(c));
		copy_str(l->entry, sizeof(l->entry), rsc_error_entry(c));
		copy_str(l->scope, sizeof(l->scope), rsc_error_scope(c));
	}
}

/* An error raised on the scope: the new head, what was pending its cause. */
static void model_raise(struct uscope *u, int err, const char *op, const char *entry,
			const char *scope)
{
	if (u->n == PM_MAX) {
		u->overflow = true;
		return;
	}
	memmove(&u->pm[1], &u->pm[0], (size_t)u->n * sizeof(u->pm[0]));
	u->n++;
	u->pm[0].err = err;
	copy_str(u->pm[0].op, sizeof(u->pm[0].op), op);
	copy_str(u->pm[0].entry, sizeof(u->pm[0].entry), entry);
	copy_str(u->pm[0].scope, sizeof(u->pm[0].scope), scope);
}

/* Entry @i's exit is a custom hook or a defer's fn: the program sees it run. */
static bool observed(const struct pentry *x)
{
	return x->kind == K_CUSTOM || x->kind == K_DEFER;
}

static const char *why_wait(const struct pentry *e, const struct pentry *x, int k)
{
	if (e->ordered)
		return "it is ordered";
	if (x->ordered)
		return "that release is ordered";
	if (x->kind == K_CUSTOM && uen[k].hook_ret == RSC_EXIT_SUPPRESS)
		return "that exit suppressed";
	if (x->kind == K_CUSTOM && uen[k].hook_ret < 0)
		return "that exit returned an error";
	return NULL;
}

void uw_exit_called(struct prog *p, int i, const struct rsc_error *pending,
		    struct prog_stats *st)
{
	struct pentry *e = &p->en[i];
	struct uscope *u = &usc[e->scope];
	const struct rsc_error *c;
	const char *s = p->sc[e->scope].name;
	char got[CHAIN_MAX], want[CHAIN_MAX];
	int k;

	uen[i].n_hooks++;
	say(p, "    exit %d ('%s') of %s starts%s, pending %s\n", e->seq, e->name, s,
	    e->early || p->releasing == e ? " (early)" : "",
	    pending ? rsc_err_name(rsc_error_errno(pending)) : "none");
	if (e->early || p->releasing == e) {
		/* Inside rsc_entry_release, or its retry from the loop: nothing pending. */
		if (pending)
			violation(p, "exit %d ('%s') of '%s' released early sees %s", e->seq, e->name,
				  s, rsc_err_name(rsc_error_errno(pending)));
		return;
	}
	uen[i].started = true;
	for (k = 0; k < p->n_en; k++) {
		const struct pentry *x = &p->en[k];
		const char *why;

		if (k == i || x->scope != e->scope || x->seq <= e->seq || !x->n_entered ||
		    x->detached || x->taken_over || x->n_released)
			continue;
		if (x->early) {
			if (e->ordered)
				violation(p, "ordered exit %d ('%s') of '%s' started while the early release of entry %d ('%s') above it was in flight",
					  e->seq, e->name, s, x->seq, x->name);
			continue;
		}
		if (observed(x) && !uen[k].started)
			violation(p, "exit %d ('%s') of '%s' started before exit %d ('%s') above it: not LIFO",
				  e->seq, e->name, s, x->seq, x->name);
		else if ((why = why_wait(e, x, k)))
			violation(p, "exit %d ('%s') of '%s' started before the release of entry %d ('%s') above it completed (%s)",
				  e->seq, e->name, s, x->seq, x->name, why);
	}
	/* Every link names an error some event raised. */
	for (c = pending; c; c = rsc_error_cause(c)) {
		bool known = false;

		for (k = 0; k < p->n_errs && !known; k++)
			known = link_is(p, &p->errs[k], c);
		if (!known)
			violation(p, "exit %d ('%s') of '%s' sees %s (op %s, entry '%s', scope '%s'): no event raised it",
				  e->seq, e->name, s, rsc_err_name(rsc_error_errno(c)), rsc_error_op(c),
				  rsc_error_entry(c), rsc_error_scope(c));
	}
	/* A chain that could not grow (alloc faults) is not the model's. */
	if (u->valid && !u->overflow && !alloc_fired(p)) {
		st->pending_checked++;
		if (!same_as_model(u, pending)) {
			format_chain(pending, got, sizeof(got));
			format_model(u, want, sizeof(want));
			violation(p, "exit %d ('%s', %s) of '%s' sees pending [%s], the model [%s]",
				  e->seq, e->name, e->ordered ? "ordered" : "unordered", s, got, want);
		}
	}
	model_from(u, pending);
	uen[i].seen_n = u->overflow ? -1 : u->n;
}

void uw_exit_returned(struct prog *p, int i, int ret)
{
	(void)p;
	uen[i].hook_ret = ret;
}

/*
 * An early release completed: no ordered release below it in its scope may
 * have started yet, whether the program sees its hook run or not (an
 * fsync-then-close). Its scope was open when it was asked for, so such a
 * release started while it was in flight.
 */
static void early_done(struct prog *p, int i)
{
	const struct pentry *e = &p->en[i];
	int k, st;

	for (k = 0; k < p->n_en; k++) {
		const struct pentry *y = &p->en[k];

		if (y->scope != e->scope || y->seq >= e->seq || !y->ordered || y->early ||
		    !y->n_entered || y->detached || y->taken_over || y->handed || y->n_handing ||
		    !y->h)
			continue;
		st = rsc_entry_state(y->h);
		if (st == RSC_EXITING || st == RSC_EXITED)
			violation(p, "ordered release of entry %d ('%s') of '%s' started while the early release of entry %d ('%s') above it was in flight",
				  y->seq, y->name, p->sc[e->scope].name, e->seq, e->name);
	}
}

/* Entry @i's release completed (RELEASED @res): the pending error it leaves. */
void uw_released(struct prog *p, int i, int res)
{
	const struct pentry *e = &p->en[i];
	struct uscope *u = &usc[e->scope];

	if (e->early)
		early_done(p, i);
	if (!u->valid)
		return;
	if (res < 0 && !(e->early && e->early_cb)) {
		bool hook = observed(e) && uen[i].n_hooks && uen[i].hook_ret == res;

		model_raise(u, res, hook ? "exit" : "", e->name, p->sc[e->scope].name);
		/* Its later SQEs' errors, if any failed, go on top: learnt at the next exit. */
		if (release_may_fail_twice(e))
			u->valid = false;
	} else if (!e->early && observed(e) && uen[i].hook_ret == RSC_EXIT_SUPPRESS) {
		/* It suppressed what it was handed; what was raised above it since
		 * (an unordered release's SQE it could not see) stays (rsc_push(3)). */
		if (uen[i].seen_n < 0 || u->overflow)
			u->valid = false;
		else
			u->n = u->n > uen[i].seen_n ? u->n - uen[i].seen_n : 0;
		u->overflow = false;
	}
}

/* An acquire of entry @i failed (ENTER_FAILED @res) while its scope unwinds. */
void uw_enter_failed(struct prog *p, int i, int res)
{
	const struct pentry *e = &p->en[i];
	struct uscope *u = &usc[e->scope];

	if (u->valid && res != -ECANCELED && !e->early)
		model_raise(u, res, "", e->name, p->sc[e->scope].name);
}
