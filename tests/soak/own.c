/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <liburing.h>

#include "ringscope.h"
#include "model.h"

/*
 * Ownership and the calls of servers in the program (DESIGN.md section 7):
 * entries and scopes moved (rsc_entry_move(3), rsc_scope_move(3)), scopes
 * failed with an error of the program's (rsc_scope_fail(3)), release-only
 * entries (rsc_defer(3)), on-close callbacks (rsc_scope_on_close(3)),
 * deadlines short and long, nested, re-armed and cleared
 * (rsc_scope_set_deadline(3)), graceful closes with small graces
 * (rsc_scope_close_graceful(3)) and timer entries (rsc_timer(3)).
 *
 * The model: a moved entry is the newest of its new scope (its seq), a moved
 * scope has its new parent (depth, flow of errors, closing ancestors); each
 * call's result is the one its page gives for the model's state. A failed
 * scope's chain carries the program's error (errno, op, no entry) unless an
 * exit suppressed it. A defer's fn runs once, in its LIFO turn, and sees the
 * scope's own error exactly when no exit above it suppressed; early, nothing.
 * An on-close callback runs once, the last one set, with what SCOPE_CLOSED
 * said, before the close callback. A deadline never passes early, ends with
 * its scope's unwind, and a scope that unwound with nothing else to start it
 * had one due. A timer calls back once, before its release.
 */

#define MAX_OC	   128
#define LONG_MS	   60000 /* never passes within a program */
#define FAIL_OPS   3

/* Errnos nothing else in a program raises. */
static const int fail_errs[] = { -ENOTCONN, -ECONNABORTED, -EOVERFLOW };
static const char *const fail_ops[FAIL_OPS] = { "parse", "body", NULL };

enum dmode { DM_PASS, DM_SUPPRESS, DM_FAIL, DM_NOP, DM__COUNT };

struct oentry {
	enum dmode mode;  /* K_DEFER: what its fn does */
	int n_calls;	  /* K_DEFER: fn; K_TIMER: cb */
	int res;	  /* K_TIMER: the cb's result */
	bool suppressed;  /* K_DEFER: suppressed in its unwind turn */
	bool long_ms;	  /* K_TIMER: only its release ends it */
	long long fire_lo; /* K_TIMER: it cannot fire before */
};

struct oscope {
	int fail_err;	    /* perr index of its own fail error, or -1 */
	int dl_err;	    /* perr index of its deadline's ETIMEDOUT, or -1 */
	bool dl_armed, dl_move_on, dl_long;
	long long dl_lo, dl_hi; /* bounds of when it passes (ns) */
	int oc_gen;	    /* the on-close callback in force, 0: none */
	int moved_key;	    /* its place among its siblings once moved, 0: by its index */
};

struct ocb {
	struct prog *p;
	int s, gen, n_calls;
	bool close_it; /* closes its scope, as the man page's example does */
};

static int defer_fn(struct rsc_entry *h, const struct rsc_error *pending, void *arg);
static void timer_cb(struct rsc_entry *h, int res, void *buf, void *data);

static struct oentry oen[MAX_ENTRIES];
static struct oscope osc[MAX_SCOPES];
static struct ocb ocbs[MAX_OC];
static int n_ocb;
static struct prog *g_p;	   /* the program (own_op sets it: callbacks come after) */
static struct prog_stats *g_st;
static int move_seq;	    /* scope moves so far: a moved scope is the newest child */
static long long dl_passed; /* RSC_CTR_DEADLINES, last read while the loop was there */

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* the clock deadlines are on */
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* An injected ring fault may have left the SQ full: no SQE for a timer. */
static bool faults_fired(const struct prog *p)
{
	return rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) > 0;
}

/* 1 to @max ms, mostly 1: a blocking run waits for them (a program takes
 * about a millisecond), and the other kinds must keep their pace. */
static unsigned short_ms(unsigned x, unsigned max)
{
	return x % 4 ? 1 : 1 + x / 4 % max;
}

void own_begin(void)
{
	int i;

	memset(oen, 0, sizeof(oen));
	memset(osc, 0, sizeof(osc));
	for (i = 0; i < MAX_SCOPES; i++)
		osc[i].fail_err = osc[i].dl_err = -1;
	n_ocb = 0;
	move_seq = 0;
	dl_passed = 0;
}

/* ---- the model's answers -------------------------------------------------- */

/* A release is refused: an unwind owns the entry, but not during a grace
 * (rsc_scope_close_graceful(3): the work let finish may end its entries). */
/* Above a grace, only an unwind that cancels owns the subtree: a close
 * there waits for the grace (rsc_scope_close_graceful(3)). A scope that
 * unwinds with no close asked on it or above it was failed or timed out,
 * or, in rsc_loop_shutdown, closed by it (which waits for the grace too):
 * the model cannot tell which then. */
static enum own_verdict cancels_from_above(const struct prog *p, int s)
{
	int a;

	if (p->sc[s].fail_req)
		return OWN_YES;
	if (rsc_scope_state(p->sc[s].h) == RSC_SCOPE_OPEN)
		return OWN_NO;
	for (a = s; a >= 0; a = p->sc[a].parent)
		if (p->sc[a].close_req)
			return OWN_NO;
	return p->shutting_down ? OWN_EITHER : OWN_YES;
}

enum own_verdict own_owns_release(const struct prog *p, int s)
{
	bool below_grace = false;
	enum own_verdict v;

	for (; s >= 0; s = p->sc[s].parent) {
		if (own_in_grace(p, s)) {
			below_grace = true;
			continue;
		}
		if (below_grace) {
			v = cancels_from_above(p, s);
			if (v != OWN_NO)
				return v;
			continue;
		}
		if (p->sc[s].close_req || p->sc[s].fail_req ||
		    rsc_scope_state(p->sc[s].h) != RSC_SCOPE_OPEN)
			return OWN_YES;
	}
	/* A grace ends when its I/O has drained or its bound passed, and its
	 * unwind starts on the next turn: in between the scope still reads
	 * RSC_SCOPE_OPEN, but the close stands again and owns the entries. */
	if (below_grace)
		return OWN_EITHER;
	/* rsc_loop_shutdown closes the top level, and waits for a grace too. */
	return p->shutting_down ? OWN_YES : OWN_NO;
}

/* @s is in the grace of its graceful close: I/O may start, its entries
 * may be released early, but not moved, detached or handed over. */
bool own_in_grace(const struct prog *p, int s)
{
	return p->sc[s].graceful && !p->sc[s].fail_req &&
	       rsc_scope_state(p->sc[s].h) == RSC_SCOPE_OPEN;
}

/* A timer's timeout is tracked I/O until it calls back. */
bool own_busy(const struct prog *p, int i)
{
	return p->en[i].kind == K_TIMER && p->en[i].n_entered && !oen[i].n_calls;
}

/* Something only a release or a clear ends: a blocking run would wait for it. */
bool own_before_wait(const struct prog *p)
{
	int i;

	for (i = 0; i < p->n_en; i++)
		if (p->en[i].kind == K_TIMER && oen[i].long_ms && !oen[i].n_calls)
			return true;
	for (i = 0; i < p->n_sc; i++)
		if (p->sc[i].valid && osc[i].dl_armed && osc[i].dl_long && !unwind_owns(p, i))
			return true;
	return false;
}

static void fix_depths(struct prog *p)
{
	int i, x, d;

	for (i = 0; i < p->n_sc; i++) {
		for (d = 0, x = i; x >= 0; x = p->sc[x].parent)
			d++;
		p->sc[i].depth = d;
	}
}

/* ---- moves ------------------------------------------------------------------ */

/* Mostly a scope no unwind owns (a move may succeed), else any live one. */
static int pick_open_scope(const struct prog *p, struct rd *r)
{
	int cand[MAX_SCOPES], n = 0, i;
	unsigned b = rd_u8(r);

	for (i = 0; i < p->n_sc; i++)
		if (p->sc[i].valid && (!(b & 3) || !unwind_owns(p, i)))
			cand[n++] = i;
	return n ? cand[(b >> 2) % (unsigned)n] : -1;
}

/* Mostly an entered entry of such a scope, else any live one. */
static int pick_movable(const struct prog *p, struct rd *r)
{
	static int cand[MAX_ENTRIES];
	unsigned b = rd_u8(r);
	int n = 0, i;

	for (i = 0; i < p->n_en; i++) {
		const struct pentry *e = &p->en[i];

		if (!p->sc[e->scope].valid || e->detached || e->hidden)
			continue;
		if ((b & 3) && (e->early || !e->n_entered || e->n_released || unwind_owns(p, e->scope)))
			continue;
		cand[n++] = i;
	}
	return n ? cand[(b >> 2) % (unsigned)n] : -1;
}

static void op_entry_move(struct prog *p, struct rd *r, struct prog_stats *st)
{
	int i = pick_movable(p, r), to = pick_open_scope(p, r), state, ret, want;
	struct pentry *e;

	if (i < 0 || to < 0)
		return;
	e = &p->en[i];
	state = rsc_entry_state(e->h);
	if (e->early || state == RSC_FAILED || state == RSC_EXITING || state == RSC_EXITED ||
	    unwind_owns(p, e->scope))
		want = -EALREADY;
	else if (unwind_owns(p, to))
		want = -EINVAL;
	else if (state == RSC_ENTERING || (e->kind == K_SOCKET && e->hidden && !e->taken_over))
		want = -EBUSY;
	else
		want = 0;
	ret = rsc_entry_move(e->h, p->sc[to].h);
	say(p, "  op %d: entry_move %d of %s (state %d) to %s -> %d\n", p->op_index, e->seq,
	    p->sc[e->scope].name, state, p->sc[to].name, ret);
	if (ret != want) {
		violation(p, "rsc_entry_move of entry %d of '%s' (state %d) to '%s': %s, expected %s",
			  e->seq, p->sc[e->scope].name, state, p->sc[to].name, rsc_err_name(ret),
			  rsc_err_name(want));
		return;
	}
	if (ret < 0) {
		st->entry_moves_refused++;
		return;
	}
	/* The newest of its new scope: released first there. */
	e->scope = to;
	e->moved = true;
	e->seq = p->sc[to].n_pushed++;
	st->entry_moves++;
}

static bool in_subtree(const struct prog *p, int root, int x)
{
	for (; x >= 0; x = p->sc[x].parent)
		if (x == root)
			return true;
	return false;
}

static void op_scope_move(struct prog *p, struct rd *r, struct prog_stats *st)
{
	int s = pick_open_scope(p, r), np = rd_u8(r) & 3 ? pick_open_scope(p, r) : -1;

	if (s >= 0)
		own_move_scope(p, s, np, st);
}

/* Scope @s under @np (-1: to the top), the answer worked out first. */
void own_move_scope(struct prog *p, int s, int np, struct prog_stats *st)
{
	int ret, want;

	g_p = p;
	g_st = st;

	if (unwind_owns(p, s))
		want = -EALREADY;
	else if (np >= 0 && (in_subtree(p, s, np) || unwind_owns(p, np)))
		want = -EINVAL;
	else
		want = 0;
	ret = rsc_scope_move(p->sc[s].h, np >= 0 ? p->sc[np].h : NULL);
	say(p, "  op %d: scope_move %s under %s -> %d\n", p->op_index, p->sc[s].name,
	    np >= 0 ? p->sc[np].name : "(top)", ret);
	if (ret != want) {
		violation(p, "rsc_scope_move('%s', '%s'): %s, expected %s", p->sc[s].name,
			  np >= 0 ? p->sc[np].name : "(top)", rsc_err_name(ret), rsc_err_name(want));
		return;
	}
	if (ret < 0) {
		st->scope_moves_refused++;
		return;
	}
	p->sc[s].parent = np;
	/* After every scope open now, before any opened later. */
	osc[s].moved_key = (p->n_sc - 1) * 1000 + ++move_seq;
	fix_depths(p);
	st->scope_moves++;
}

/* ---- the body fails ------------------------------------------------------- */

static void op_fail(struct prog *p, struct rd *r, struct prog_stats *st)
{
	int s = pick_scope(p, r);
	unsigned b = rd_u8(r);

	if (s >= 0)
		own_fail_scope(p, s, b, st);
}

/* rsc_scope_fail of @s with the errno and op @b picks. */
void own_fail_scope(struct prog *p, int s, unsigned b, struct prog_stats *st)
{
	int err = fail_errs[b % 3], ret;
	const char *op = fail_ops[(b >> 2) % FAIL_OPS];
	bool again, maybe, grace;

	g_p = p;
	g_st = st;

	/* In its grace, a failure ends the grace and unwinds with its error
	 * (rsc_scope_close_graceful(3)); a grace just ended may refuse it. */
	grace = own_in_grace(p, s);
	again = (p->sc[s].close_req && !grace) || p->sc[s].fail_req ||
		rsc_scope_state(p->sc[s].h) != RSC_SCOPE_OPEN;
	/* A parent's unwind may have claimed it already, as for a close. */
	maybe = !again && (unwind_owns(p, s) || grace);
	ret = rsc_scope_fail(p->sc[s].h, err, op);
	say(p, "  op %d: scope_fail %s %s '%s' -> %d\n", p->op_index, p->sc[s].name,
	    rsc_err_name(err), op ? op : "(null)", ret);
	if (again ? ret != -EALREADY : (ret != 0 && !(maybe && ret == -EALREADY))) {
		violation(p, "rsc_scope_fail('%s'): %s", p->sc[s].name, rsc_err_name(ret));
		return;
	}
	if (ret < 0)
		return;
	p->sc[s].fail_req = true;
	add_err(p, err, s, -1, true, false);
	p->errs[p->n_errs - 1].op = op ? op : "fail";
	osc[s].fail_err = p->n_errs - 1;
	st->fails++;
}

/* ---- defers -------------------------------------------------------------- */

/*
 * A link that is error @x may be another's: a chain names scopes by name
 * only, and the connections' scopes are all "conn" (accept.c). Only an
 * error of another scope of that name with the same errno and op could
 * pass for it; the model knows every such error, so the checks stay on for
 * every connection's scope but the rare one that has such a twin.
 */
static bool link_twin(const struct prog *p, int x)
{
	const struct perr *a = &p->errs[x];
	int k;

	for (k = 0; k < p->n_errs; k++) {
		const struct perr *b = &p->errs[k];

		if (k != x && b->scope != a->scope && b->err == a->err && b->op && a->op &&
		    !strcmp(b->op, a->op) && !strcmp(p->sc[b->scope].name, p->sc[a->scope].name))
			return true;
	}
	return false;
}

/* The checks of a scope's own error ran on a connection's scope. */
static void count_conn_check(const struct prog *p, int s)
{
	if (!strcmp(p->sc[s].name, "conn"))
		g_st->conn_checks++;
}

static bool chain_holds(const struct prog *p, const struct rsc_error *c, int x)
{
	for (; c; c = rsc_error_cause(c))
		if (link_is(p, &p->errs[x], c))
			return true;
	return false;
}

/* @x is below @s, its result coming up to @s (no close of ours on the way). */
static bool in_flow_of(const struct prog *p, int s, int x)
{
	for (; x != s; x = p->sc[x].parent)
		if (x < 0 || p->sc[x].close_req)
			return false;
	return true;
}

/* Exits above entry @i in its scope that ran in the unwind and suppressed:
 * 1 cleanly, 2 with a release that failed too, or in a child (either may
 * clear), 0 none. */
static int suppressed_above(const struct prog *p, int i)
{
	int k, found = 0;

	for (k = 0; k < p->n_en; k++) {
		const struct pentry *x = &p->en[k];
		bool supp;

		if (x->scope != p->en[i].scope || x->seq <= p->en[i].seq || x->early ||
		    !x->n_released)
			continue;
		supp = (x->kind == K_CUSTOM && x->v->exit == TX_SUPPRESS) ||
		       (x->kind == K_DEFER && oen[k].suppressed);
		if (supp && x->release_res >= 0)
			return 1;
		if (supp)
			found = 2;
	}
	/* A child's exit saw the error passed down to it, and may have suppressed it. */
	for (k = 0; k < p->n_sc; k++)
		if (k != p->en[i].scope && p->sc[k].suppressed && in_flow_of(p, p->en[i].scope, k))
			found = 2;
	return found;
}

/* An error some event raised in the tree of @s: a parent's unwind passes
 * its pending error down to the children it closes, a child's comes up. */
static bool any_err_near(const struct prog *p, int s)
{
	int k, top = s;

	if (p->shutting_down)
		return p->n_errs > 0; /* the root's unwind passes its error down too */
	while (p->sc[top].parent >= 0)
		top = p->sc[top].parent;
	for (k = 0; k < p->n_errs; k++)
		if (in_subtree(p, top, p->errs[k].scope))
			return true;
	return false;
}

/* The unwind's turn of entry @i: everything above it is released, its scope's children closed. */
static void check_turn(struct prog *p, int i)
{
	const struct pentry *e = &p->en[i];
	int k;

	for (k = 0; k < p->n_en; k++) {
		const struct pentry *x = &p->en[k];

		if (x->scope == e->scope && x->seq > e->seq && x->n_entered && !x->early &&
		    !x->detached && !x->taken_over && !x->n_released)
			violation(p, "defer %d of '%s' ran before entry %d above it was released",
				  e->seq, p->sc[e->scope].name, x->seq);
	}
	for (k = 0; k < p->n_sc; k++)
		if (p->sc[k].parent == e->scope && !p->sc[k].n_closed)
			violation(p, "defer %d of '%s' ran before its scope's child '%s' closed",
				  e->seq, p->sc[e->scope].name, p->sc[k].name);
}

static void check_pending(struct prog *p, int i, const struct rsc_error *pending)
{
	const struct pentry *e = &p->en[i];
	const struct rsc_error *c;
	int s = e->scope, k, f = osc[s].fail_err, supp;
	bool known;

	for (c = pending; c; c = rsc_error_cause(c)) {
		for (known = false, k = 0; k < p->n_errs && !known; k++)
			known = link_is(p, &p->errs[k], c);
		if (!known)
			violation(p, "defer %d of '%s' sees %s (op %s, entry '%s', scope '%s'): no event raised it",
				  e->seq, p->sc[s].name, rsc_err_name(rsc_error_errno(c)),
				  rsc_error_op(c), rsc_error_entry(c), rsc_error_scope(c));
	}
	if (f >= 0) {
		supp = suppressed_above(p, i);
		if (!supp && !chain_holds(p, pending, f))
			violation(p, "defer %d of '%s' does not see its scope's failure %s '%s'",
				  e->seq, p->sc[s].name, rsc_err_name(p->errs[f].err), p->errs[f].op);
		if (supp == 1 && !link_twin(p, f))
			count_conn_check(p, s);
		if (supp == 1 && chain_holds(p, pending, f) && !link_twin(p, f))
			violation(p, "defer %d of '%s' sees its scope's failure after an exit suppressed it",
				  e->seq, p->sc[s].name);
	}
	if (pending && f < 0 && osc[s].dl_err < 0 && !any_err_near(p, s))
		violation(p, "defer %d of '%s' sees %s, but nothing raised an error there",
			  e->seq, p->sc[s].name, rsc_err_name(rsc_error_errno(pending)));
}

/* Inside a defer's fn, as in any exit: the calls that push, release or move are refused. */
static void probe_hook(struct prog *p, struct rsc_entry *h, int s)
{
	struct rsc_scope *sh = p->sc[s].h;
	int ret[5], i;

	ret[0] = rsc_entry_move(h, sh);
	ret[1] = rsc_scope_move(sh, sh);
	ret[2] = rsc_defer(sh, defer_fn, NULL, NULL);
	ret[3] = rsc_timer(sh, 1, timer_cb, NULL, NULL);
	ret[4] = rsc_entry_release(h, NULL, NULL);
	for (i = 0; i < 5; i++)
		if (ret[i] != -EDEADLK)
			violation(p, "call %d from a defer's fn returned %s, expected EDEADLK", i,
				  rsc_err_name(ret[i]));
}

static int defer_run(struct rsc_entry *h, const struct rsc_error *pending, void *arg);

/* The pending error it sees and what it returns go to the model (unwind.c). */
static int defer_fn(struct rsc_entry *h, const struct rsc_error *pending, void *arg)
{
	struct prog *p = g_p;
	int i = (int)((struct pentry *)arg - p->en), ret;

	if (h == p->en[i].h)
		uw_exit_called(p, i, pending, g_st);
	audit_probe(p, "a defer's fn");
	ret = defer_run(h, pending, arg);
	uw_exit_returned(p, i, ret);
	return ret;
}

static int defer_run(struct rsc_entry *h, const struct rsc_error *pending, void *arg)
{
	struct prog *p = g_p;
	struct pentry *e = arg;
	int i = (int)(e - p->en), st = rsc_scope_state(p->sc[e->scope].h), ret;
	struct io_uring_sqe *sqe;

	say(p, "    defer %d of %s runs (mode %d), pending %s\n", e->seq, p->sc[e->scope].name,
	    (int)oen[i].mode, pending ? rsc_err_name(rsc_error_errno(pending)) : "none");
	if (h != e->h)
		violation(p, "defer %d of '%s' called with another entry's handle", e->seq,
			  p->sc[e->scope].name);
	if (oen[i].n_calls++)
		violation(p, "defer %d of '%s' ran twice", e->seq, p->sc[e->scope].name);
	g_st->defer_runs++;
	probe_hook(p, h, e->scope);
	if (st == RSC_SCOPE_OPEN || e->early) {
		/* Early, inside rsc_entry_release (or in a grace), or called again on
		 * a later turn for want of an SQE, maybe once its scope unwinds for
		 * another reason: nothing is pending, and it is no unwind's turn. */
		if (pending)
			violation(p, "defer %d of '%s' released early sees %s", e->seq,
				  p->sc[e->scope].name, rsc_err_name(rsc_error_errno(pending)));
	} else {
		check_turn(p, i);
		check_pending(p, i, pending);
	}
	switch (oen[i].mode) {
	case DM_SUPPRESS:
		if (st != RSC_SCOPE_OPEN) {
			oen[i].suppressed = p->sc[e->scope].suppressed = true;
			g_st->defer_suppressed++;
		}
		return RSC_EXIT_SUPPRESS;
	case DM_FAIL:
		return -HOOK_ERRNO;
	case DM_NOP:
		ret = rsc_entry_get_sqes(h, 1, &sqe);
		if (ret == -EAGAIN || ret == -EBUSY || ret == -ENOMEM)
			oen[i].n_calls--; /* called again on a later turn, as an exit is */
		if (ret < 0)
			return ret;
		io_uring_prep_nop(sqe);
		return 0;
	default:
		return 0;
	}
}

static void op_defer(struct prog *p, int s, struct rd *r, struct prog_stats *st)
{
	struct pentry *e = push_begin(p, s, K_DEFER);
	int i = p->n_en, ret;

	if (!e)
		return;
	e->name = "defer";
	e->ordered = true;
	e->adopted = true; /* entered inside the call, traced from the loop */
	memset(&oen[i], 0, sizeof(oen[i]));
	oen[i].mode = (enum dmode)(rd_u8(r) % DM__COUNT);
	ret = rsc_defer(p->sc[s].h, defer_fn, e, &e->h);
	push_end(p, e, ret, 0, "rsc_defer");
	if (p->n_en > i)
		st->defers++;
}

/* A defer of @mode (enum dmode, modulo) in @s: accept.c's ops on connections. */
void own_defer(struct prog *p, int s, unsigned mode, struct prog_stats *st)
{
	uint8_t b = (uint8_t)mode;
	struct rd r = { &b, 1, 0 };

	g_p = p;
	g_st = st;
	op_defer(p, s, &r, st);
}

/* ---- on-close callbacks ----------------------------------------------------- */

static void on_close_cb(struct rsc_scope *h, int status, const struct rsc_error *err, void *data)
{
	struct ocb *o = data;
	struct prog *p = o->p;
	struct pscope *s = &p->sc[o->s];
	char buf[CHAIN_MAX];

	say(p, "    on-close '%s' (gen %d) status %s\n", s->name, o->gen, rsc_err_name(status));
	audit_probe(p, "an on-close callback");
	g_st->on_close_calls++;
	if (o->n_calls++)
		violation(p, "on-close callback of '%s' called twice", s->name);
	if (o->gen != osc[o->s].oc_gen)
		violation(p, "on-close callback of '%s' called after it was replaced", s->name);
	if (s->h != h || !s->valid)
		violation(p, "on-close callback for the wrong or a dead scope '%s'", s->name);
	if (s->n_closed != 1)
		violation(p, "on-close callback of '%s' before it unwound", s->name);
	if (s->n_cb)
		violation(p, "on-close callback of '%s' after its close callback", s->name);
	if (status != s->closed_res)
		violation(p, "on-close callback of '%s': status %s, SCOPE_CLOSED said %s", s->name,
			  rsc_err_name(status), rsc_err_name(s->closed_res));
	buf[0] = '\0';
	if (err)
		rsc_error_format(err, buf, sizeof(buf));
	if (strcmp(buf, s->chain))
		violation(p, "on-close callback of '%s': chain '%s', SCOPE_CLOSED had '%s'", s->name,
			  buf, s->chain);
	if (rsc_scope_state(h) != RSC_SCOPE_UNWOUND)
		violation(p, "on-close callback of '%s': the scope is in state %d", s->name,
			  rsc_scope_state(h));
	/* From the loop: it must not run the loop or block. */
	if (rsc_loop_run(p->loop, RSC_RUN_NOWAIT) != -EDEADLK ||
	    rsc_scope_close_wait(h, NULL) != -EDEADLK)
		violation(p, "on-close callback of '%s': a blocking call was not refused", s->name);
	if (o->close_it && !s->close_req && !p->shutting_down) /* the root claims it in a shutdown */
		op_close(p, o->s);
}

static void op_on_close(struct prog *p, struct rd *r)
{
	int s = pick_scope(p, r), ret, want;
	bool clear = (rd_u8(r) & 7) == 0;
	struct ocb *o;

	if (s < 0 || n_ocb == MAX_OC)
		return;
	want = p->sc[s].n_closed ? -EALREADY : 0;
	o = &ocbs[n_ocb];
	*o = (struct ocb){ p, s, n_ocb + 1, 0, rd_u8(r) & 1 };
	ret = rsc_scope_on_close(p->sc[s].h, clear ? NULL : on_close_cb, o);
	say(p, "  op %d: on_close %s%s -> %d\n", p->op_index, p->sc[s].name,
	    clear ? " (removed)" : "", ret);
	if (ret != want) {
		violation(p, "rsc_scope_on_close('%s'): %s, expected %s", p->sc[s].name,
			  rsc_err_name(ret), rsc_err_name(want));
		return;
	}
	if (ret == 0) {
		osc[s].oc_gen = clear ? 0 : o->gen;
		n_ocb += !clear;
	}
}

/* ---- deadlines ----------------------------------------------------------- */

static bool in_hook; /* set_deadline called from inside a manager's hook */

/* The unwind of a scope above @s (or of the loop's root) may have started. */
static bool unwinding_above(const struct prog *p, int s)
{
	/* The loop's root under rsc_loop_shutdown, or a scope of the program. */
	return p->shutting_down || self_or_ancestor_not_open(p, p->sc[s].parent);
}

static void set_deadline(struct prog *p, int s, unsigned ms, unsigned flags,
			 struct prog_stats *st)
{
	long long before, after;
	int ret, want;

	want = rsc_scope_state(p->sc[s].h) != RSC_SCOPE_OPEN ? -ESHUTDOWN : 0;
	before = now_ns();
	ret = rsc_scope_set_deadline(p->sc[s].h, ms, flags);
	after = now_ns();
	say(p, "  op %d: deadline %s %u ms%s -> %d\n", p->op_index, p->sc[s].name, ms,
	    flags ? " move-on" : "", ret);
	/* Under an unwind that has started above, a deadline could never pass:
	 * refused, unless a grace on the way keeps the deadlines there (the
	 * library's view of the grace decides; the model's is coarser). */
	if (!want && ms && ret == -ESHUTDOWN && unwinding_above(p, s))
		return;
	if (ret == -EBUSY && !want && ms && (faults_fired(p) || in_hook))
		return; /* no SQE for the kernel timer: the deadline is as it was */
	if (ret != want) {
		violation(p, "rsc_scope_set_deadline('%s', %u): %s, expected %s", p->sc[s].name, ms,
			  rsc_err_name(ret), rsc_err_name(want));
		return;
	}
	if (ret < 0)
		return;
	if (!ms) {
		osc[s].dl_armed = false;
		return;
	}
	st->deadlines_set++;
	osc[s].dl_armed = true;
	osc[s].dl_move_on = flags;
	osc[s].dl_long = ms == LONG_MS;
	osc[s].dl_lo = before + (long long)ms * 1000000;
	osc[s].dl_hi = after + (long long)ms * 1000000;
	if (!flags && osc[s].dl_err < 0) {
		/* It may pass: its error may be in the chains from now on. */
		add_err(p, -ETIMEDOUT, s, -1, false, false);
		p->errs[p->n_errs - 1].op = "deadline";
		osc[s].dl_err = p->n_errs - 1;
	}
}

static void op_deadline(struct prog *p, struct rd *r, struct prog_stats *st)
{
	int s = pick_scope(p, r), c;
	unsigned b = rd_u8(r), flags = b & 1 ? RSC_DEADLINE_MOVE_ON : 0;

	if (s < 0)
		return;
	switch ((b >> 1) % 8) {
	case 0: /* cleared */
		set_deadline(p, s, 0, 0, st);
		break;
	case 1:
	case 2:
	case 3: /* long: only a clear or an unwind ends it */
		set_deadline(p, s, LONG_MS, flags, st);
		break;
	case 7: /* nested: the scope's first, then its children's a moment later */
		if (p->sc[s].parent >= 0)
			s = p->sc[s].parent; /* one that has a child */
		set_deadline(p, s, 1 + (b >> 4) % 2, flags, st);
		for (c = 0; c < p->n_sc; c++)
			if (p->sc[c].valid && p->sc[c].parent == s)
				set_deadline(p, c, 2 + (b >> 4) % 2, 0, st);
		break;
	default:
		set_deadline(p, s, short_ms(b >> 4, 20), flags, st);
		break;
	}
}

/* ---- graceful closes ---------------------------------------------------------- */

/* An unwind that cancels (a failure, a deadline, a failed acquire: not a
 * close) has started at @s or above, or a failure is pending: no grace. */
static bool cancelled(const struct prog *p, int s)
{
	long long now = now_ns();
	int k;

	for (; s >= 0; s = p->sc[s].parent) {
		if (p->sc[s].fail_req)
			return true;
		if (rsc_scope_state(p->sc[s].h) == RSC_SCOPE_OPEN)
			continue;
		if (!self_or_ancestor_close_req(p, s) || (osc[s].dl_armed && osc[s].dl_lo <= now))
			return true;
		for (k = 0; k < p->n_errs; k++)
			if (p->errs[k].scope == s && p->errs[k].must && !p->errs[k].op &&
			    p->en[p->errs[k].entry].n_failed)
				return true; /* a failed acquire may have come before the close */
	}
	return false;
}

static int scope_ids[MAX_SCOPES]; /* a graceful close's data: its scope's index */

/* Entries of @s's subtree whose release completed with an error. */
static bool in_flow_of(const struct prog *p, int s, int x);
static unsigned failed_releases(const struct prog *p, int s)
{
	unsigned n = 0;
	int i;

	for (i = 0; i < p->n_en; i++)
		/* A scope below closed by us left the subtree when it was freed. */
		n += in_flow_of(p, s, p->en[i].scope) && !p->en[i].detached &&
		     p->en[i].n_released && p->en[i].release_res < 0;
	return n;
}

/* rsc_scope_close_stats(3) from its close callback, the last moment it may be asked. */
static void graceful_cb(struct rsc_scope *h, int status, const struct rsc_error *err, void *data)
{
	struct prog *p = g_p;
	int s = *(int *)data, ret;
	unsigned drained, cancelled, failed;

	ret = rsc_scope_close_stats(h, &drained, &cancelled, &failed);
	say(p, "    graceful '%s': drained %u, cancelled %u, exits failed %u\n", p->sc[s].name,
	    drained, cancelled, failed);
	if (ret != 0)
		violation(p, "rsc_scope_close_stats('%s'): %s", p->sc[s].name, rsc_err_name(ret));
	else if (failed != failed_releases(p, s))
		violation(p, "rsc_scope_close_stats('%s'): %u exits failed, the trace says %u",
			  p->sc[s].name, failed, failed_releases(p, s));
	scope_close_cb(h, status, err, close_data(p, s));
}

static void op_graceful(struct prog *p, struct rd *r, struct prog_stats *st)
{
	int s = pick_scope(p, r);
	unsigned grace = short_ms(rd_u8(r), 16);

	if (s >= 0)
		own_close_graceful(p, s, grace, st);
}

/* A graceful close of @s; a @grace_ms of 0 sets no bound (the caller knows
 * nothing in the subtree would hold it for ever). */
void own_close_graceful(struct prog *p, int s, unsigned grace, struct prog_stats *st)
{
	int ret;
	bool again, maybe;

	g_p = p;
	g_st = st;

	again = p->sc[s].close_req;
	maybe = !again && ancestor_closing(p, s);
	scope_ids[s] = s;
	ret = rsc_scope_close_graceful(p->sc[s].h, grace, graceful_cb, &scope_ids[s]);
	say(p, "  op %d: close_graceful %s %u ms -> %d\n", p->op_index, p->sc[s].name, grace,
	    ret);
	if (ret == -EBUSY && !again && faults_fired(p))
		return; /* no SQE for the grace's timer: nothing happened */
	if (again ? ret != -EALREADY : (ret != 0 && !(maybe && ret == -EALREADY))) {
		violation(p, "rsc_scope_close_graceful('%s'): %s", p->sc[s].name, rsc_err_name(ret));
		return;
	}
	if (ret < 0)
		return;
	p->sc[s].close_req = true;
	p->sc[s].graceful = !cancelled(p, s);
	st->graceful++;
}

void own_set_deadline(struct prog *p, int s, unsigned ms, bool move_on, struct prog_stats *st)
{
	g_p = p;
	g_st = st;
	set_deadline(p, s, ms, move_on ? RSC_DEADLINE_MOVE_ON : 0, st);
}

void own_set_deadline_in_hook(struct prog *p, int s, unsigned ms, bool move_on,
			      struct prog_stats *st)
{
	g_p = p;
	g_st = st;
	in_hook = true;
	set_deadline(p, s, ms, move_on ? RSC_DEADLINE_MOVE_ON : 0, st);
	in_hook = false;
}

/* ---- timers ----------------------------------------------------------------- */

static void timer_cb(struct rsc_entry *h, int res, void *buf, void *data)
{
	struct prog *p = g_p;
	struct pentry *e = data;
	int i = (int)(e - p->en);

	say(p, "    timer %d of %s -> %d\n", e->seq, p->sc[e->scope].name, res);
	audit_probe(p, "a timer callback");
	if (oen[i].n_calls++)
		violation(p, "timer %d of '%s' called back twice", e->seq, p->sc[e->scope].name);
	oen[i].res = res;
	if (buf)
		violation(p, "timer %d of '%s' called back with a buffer", e->seq,
			  p->sc[e->scope].name);
	if (h && e->h && h != e->h)
		violation(p, "timer %d of '%s' called back with another entry's handle", e->seq,
			  p->sc[e->scope].name);
	if (e->n_released)
		violation(p, "timer %d of '%s' called back after its release", e->seq,
			  p->sc[e->scope].name);
	if (res == -ETIME) {
		g_st->timers_fired++;
		if (now_ns() < oen[i].fire_lo)
			violation(p, "timer %d of '%s' fired early", e->seq, p->sc[e->scope].name);
	} else if (res != -ECANCELED && res != -EBUSY) {
		violation(p, "timer %d of '%s' called back with %s", e->seq, p->sc[e->scope].name,
			  rsc_err_name(res));
	}
}

static void op_timer(struct prog *p, int s, struct rd *r, struct prog_stats *st)
{
	struct pentry *e = push_begin(p, s, K_TIMER);
	unsigned b = rd_u8(r), ms = b & 1 ? LONG_MS : short_ms(b >> 1, 20);
	int i = p->n_en, ret;

	if (!e)
		return;
	e->name = "timer";
	memset(&oen[i], 0, sizeof(oen[i]));
	oen[i].long_ms = ms == LONG_MS;
	oen[i].fire_lo = now_ns() + (long long)ms * 1000000;
	ret = rsc_timer(p->sc[s].h, ms, timer_cb, e, &e->h);
	say(p, "  op %d: (a timer of %u ms)\n", p->op_index, ms);
	push_end(p, e, ret, 0, "rsc_timer");
	if (p->n_en > i)
		st->timers++;
}

/* ---- the program's hooks --------------------------------------------------- */

void own_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st)
{
	int s;

	g_p = p;
	g_st = st;
	switch (sub) {
	case 0:
		op_entry_move(p, r, st);
		break;
	case 1:
		op_scope_move(p, r, st);
		break;
	case 2:
		op_fail(p, r, st);
		break;
	case 3:
		op_on_close(p, r);
		break;
	case 4:
		op_deadline(p, r, st);
		break;
	case 5:
		op_graceful(p, r, st);
		break;
	default: /* 6, 7: a defer or a timer */
		s = pick_scope(p, r);
		if (s < 0)
			break;
		if (sub == 6)
			op_defer(p, s, r, st);
		else
			op_timer(p, s, r, st);
		break;
	}
}

/* A release traced: a timer has called back by then, a defer has run. */
void own_released(struct prog *p, int i)
{
	const struct pentry *e = &p->en[i];

	if (e->kind == K_TIMER && !oen[i].n_calls)
		violation(p, "timer %d of '%s' released before it called back", e->seq,
			  p->sc[e->scope].name);
	if (e->kind == K_DEFER && oen[i].n_calls != 1)
		violation(p, "defer %d of '%s' released with its fn run %d times", e->seq,
			  p->sc[e->scope].name, oen[i].n_calls);
}

/* Something other than a deadline could have started the unwind of @s. */
static bool other_cause(const struct prog *p, int s)
{
	int a, k;

	if (p->shutting_down)
		return true;
	for (a = s; a >= 0; a = p->sc[a].parent) {
		if (p->sc[a].close_req || p->sc[a].fail_req)
			return true;
		for (k = 0; k < p->n_errs; k++)
			if (p->errs[k].scope == a && !p->errs[k].op)
				return true;
	}
	return false;
}

static int child_key(int s)
{
	return osc[s].moved_key ? osc[s].moved_key : s * 1000;
}

/* Closed by its parent's unwind, which closes its children newest first one
 * at a time: every newer sibling has closed by now. */
static void check_sibling_order(struct prog *p, int s, long long now)
{
	int par = p->sc[s].parent, k;

	if (par < 0 || p->sc[s].close_req || p->sc[s].fail_req ||
	    rsc_scope_state(p->sc[par].h) != RSC_SCOPE_UNWINDING ||
	    (osc[s].dl_armed && osc[s].dl_lo <= now))
		return;
	for (k = 0; k < p->n_errs; k++)
		if (p->errs[k].scope == s)
			return; /* a failed acquire may have unwound it on its own */
	for (k = 0; k < p->n_sc; k++)
		if (k != s && p->sc[k].parent == par && !p->sc[k].n_closed &&
		    child_key(k) > child_key(s))
			violation(p, "scope '%s' closed before its newer sibling '%s': not newest first",
				  p->sc[s].name, p->sc[k].name);
}

/* A graceful close was asked on @s or on a scope between it and @a. */
static bool grace_between(const struct prog *p, int s, int a)
{
	for (; s >= 0 && s != a; s = p->sc[s].parent)
		if (p->sc[s].graceful)
			return true;
	return false;
}

void own_scope_closed(struct prog *p, int s, const struct rsc_error *chain)
{
	long long now = now_ns();
	const struct rsc_error *c;
	bool due_own, due_above = false;
	int a;

	if (p->loop)
		dl_passed = rsc_loop_counter(p->loop, RSC_CTR_DEADLINES);
	check_sibling_order(p, s, now);

	for (a = p->sc[s].parent; a >= 0; a = p->sc[a].parent)
		due_above |= osc[a].dl_armed && osc[a].dl_lo <= now;
	due_own = osc[s].dl_armed && osc[s].dl_lo <= now;
	if (osc[s].dl_err >= 0 && !link_twin(p, osc[s].dl_err)) {
		count_conn_check(p, s);
		for (c = chain; c; c = rsc_error_cause(c)) {
			if (!link_is(p, &p->errs[osc[s].dl_err], c))
				continue;
			/* A node made without memory names no scope (alloc faults): any
			 * ETIMEDOUT matches it, an ancestor's too. Not this one's to judge. */
			if (!*rsc_error_scope(c))
				continue;
			if (!osc[s].dl_armed || osc[s].dl_move_on)
				violation(p, "scope '%s' carries its deadline's ETIMEDOUT, but its deadline was %s",
					  p->sc[s].name, osc[s].dl_armed ? "move-on" : "cleared");
			else if (now < osc[s].dl_lo)
				violation(p, "scope '%s' timed out %lld us before its deadline",
					  p->sc[s].name, (osc[s].dl_lo - now) / 1000);
			/* The earliest wins: an ancestor's earlier deadline ended this one.
			 * Unless a grace lies between them: a close of the ancestor may
			 * have ended its deadline first, and waited for the grace, where
			 * this one stayed (rsc_scope_set_deadline(3)). */
			for (a = p->sc[s].parent; a >= 0; a = p->sc[a].parent)
				if (osc[a].dl_armed && osc[a].dl_hi < osc[s].dl_lo &&
				    !grace_between(p, s, a))
					violation(p, "scope '%s' timed out after its ancestor '%s', whose deadline was earlier",
						  p->sc[s].name, p->sc[a].name);
			break;
		}
	}
	if (other_cause(p, s))
		return;
	if (!due_own && !due_above) {
		violation(p, "scope '%s' unwound with no close, failure or deadline due to start it",
			  p->sc[s].name);
		return;
	}
	/* Its own deadline alone could have started it: its error must show. */
	if (due_own && !due_above && !osc[s].dl_move_on)
		p->errs[osc[s].dl_err].must = true;
}

/* Every timer called back once; each on-close callback in force ran once. */
void own_end(struct prog *p, struct prog_stats *st)
{
	int i;

	for (i = 0; i < p->n_en; i++)
		if (p->en[i].kind == K_TIMER && oen[i].n_calls != 1 && !p->en[i].maybe_absent)
			violation(p, "timer %d of '%s': %d callbacks by the end", p->en[i].seq,
				  p->sc[p->en[i].scope].name, oen[i].n_calls);
	for (i = 0; i < p->n_sc; i++) {
		const struct ocb *o;

		if (!osc[i].oc_gen)
			continue;
		o = &ocbs[osc[i].oc_gen - 1];
		if (o->n_calls != 1)
			violation(p, "on-close callback of '%s': %d calls by the end", p->sc[i].name,
				  o->n_calls);
	}
	st->deadlines_passed += (unsigned long long)dl_passed;
}
