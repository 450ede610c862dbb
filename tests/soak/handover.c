/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "ringscope.h"
#include "model.h"

/*
 * Hand-overs between loops (rsc_inbox(3)): direct acquires on the program's
 * loop, a second loop (the peer) with an inbox, and hand-overs of entries to
 * its address, to the address of a peer that has closed, or to a value that
 * was never an address. One thread runs both loops, as the soak is
 * single-threaded, so the man page's race with another thread never occurs.
 *
 * The model: a refused hand-over never calls back and leaves the slot where
 * it was; an accepted one calls back once, before its entry's release, and
 * then the sender holds nothing (success) or still holds its slot (failure).
 * A success made while the peer's inbox was open arrives there once the peer
 * runs (when the inbox stayed open until then); nothing arrives at an inbox
 * whose release or close was asked for. The peer's trace checks that each
 * arrival is entered and released once. At the end both loops' tables are
 * empty and the kernel agrees (rsc_audit_slots).
 */

#define MAIN_SLOTS  256 /* more than a program ever acquires: never a real ENFILE */
#define MAX_DIRECT  200
#define MAX_HANDS   128
#define MAX_ARRIVED 128
#define MAX_GENS    8

/* One slot that reached the peer's inbox. */
struct arrival {
	struct rsc_scope *scope; /* its "handed" scope */
	struct rsc_entry *conn;
	int n_cb, n_entered, n_released, n_closed;
	bool close_req;
};

/* One peer loop's life: its address stays stale once it has closed. */
struct gen {
	unsigned long long addr;
	int arrivals;
	bool drained; /* its inbox was run dry while still open, before it closed */
	bool dropping; /* its application drops the arrivals (sh_drop_arrivals): none comes */
};

struct hand {
	struct prog *p;
	int entry, gen; /* gen -1: an address of no live inbox */
	bool must;	/* called while the inbox was open, without ring faults */
	bool refused;	/* the call failed: it must never call back */
	int n_cb, res;
};

static struct peer {
	struct rsc_loop *loop; /* NULL: none now */
	struct rsc_scope *scope;
	struct rsc_entry *inbox;
	bool open;	   /* neither the inbox's release nor its scope's close asked */
	bool scope_closing;
	int n_scope_closed;
	int gen;
} peer;

static struct gen gens[MAX_GENS];
static struct hand hands[MAX_HANDS];
static struct arrival arrived[MAX_ARRIVED];
static int n_gens, n_hands, n_arrived;

void ho_begin(void)
{
	memset(&peer, 0, sizeof(peer));
	n_gens = n_hands = n_arrived = 0;
}

/* The kind drop: arrivals dropped by the application, hand-overs with an address. */
static bool drops(const struct prog *p)
{
	return p->env->kinds & KIND_DROP;
}

/* ---- the peer loop -------------------------------------------------------- */

static struct arrival *arrival_of(const struct rsc_entry *conn, const struct rsc_scope *s)
{
	int i;

	for (i = 0; i < n_arrived; i++)
		if (!arrived[i].n_closed &&
		    (conn ? arrived[i].conn == conn : arrived[i].scope == s))
			return &arrived[i];
	if (!conn || n_arrived == MAX_ARRIVED)
		return NULL;
	/* Its first event (the trace may come before the inbox's callback). */
	arrived[n_arrived] = (struct arrival){ .scope = (struct rsc_scope *)s,
					       .conn = (struct rsc_entry *)conn };
	return &arrived[n_arrived++];
}

static void on_arrival(struct rsc_entry *inbox, int slot, struct rsc_scope *cs,
		       struct rsc_entry *conn, void *data)
{
	struct prog *p = data;
	struct arrival *a = arrival_of(conn, cs);

	say(p, "    peer %d: arrival in slot %d\n", peer.gen, slot);
	if (inbox != peer.inbox)
		violation(p, "an arrival for inbox %p, the peer's is %p", (void *)inbox,
			  (void *)peer.inbox);
	if (!peer.open)
		violation(p, "slot %d arrived at an inbox whose release or close was asked for", slot);
	if (!a) {
		violation(p, "more than %d arrivals", MAX_ARRIVED);
		return;
	}
	a->scope = cs;
	if (a->n_cb++)
		violation(p, "the inbox called back twice for one arrival");
	if (rsc_entry_slot(conn) != slot)
		violation(p, "arrival: slot %d, its entry says %d", slot, rsc_entry_slot(conn));
	gens[peer.gen].arrivals++;
}

static void peer_trace(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *sh,
		       const struct rsc_entry *eh, int res, void *data)
{
	struct prog *p = data;
	struct arrival *a;

	if (ev == RSC_EV_AUDIT_FINDING) {
		int n = rsc_audit_count(loop);
		const struct rsc_finding *f = n > 0 ? rsc_audit_finding(loop, (unsigned)n - 1) : NULL;

		violation(p, "peer %d: audit finding %d on %d (%s): expected %s", peer.gen,
			  f ? rsc_finding_kind(f) : -1, res, f ? rsc_finding_target(f) : "?",
			  f ? rsc_finding_expected(f) : "?");
		return;
	}
	if (ev == RSC_EV_SCOPE_CLOSED && sh == peer.scope) {
		peer.n_scope_closed++;
		return;
	}
	if (eh == peer.inbox)
		return;
	a = ev == RSC_EV_SCOPE_CLOSED ? arrival_of(NULL, sh) : arrival_of(eh, sh);
	if (!a) {
		violation(p, "peer %d: event %d for an unknown %s", peer.gen, (int)ev,
			  eh ? "entry" : "scope");
		return;
	}
	switch (ev) {
	case RSC_EV_ENTERED:
		a->n_entered++;
		break;
	case RSC_EV_ENTER_FAILED:
		violation(p, "peer %d: an arrival failed to enter (%s)", peer.gen, rsc_err_name(res));
		break;
	case RSC_EV_RELEASED:
		a->n_released++;
		if (res < 0)
			violation(p, "peer %d: an arrival released with %s", peer.gen,
				  rsc_err_name(res));
		break;
	default:
		a->n_closed++;
		break;
	}
}

/* A turn or two of the peer: what the kernel delivered reaches the inbox. */
static void peer_drain(struct prog *p)
{
	int i, ret;

	for (i = 0; i < 2 && peer.loop; i++) {
		ret = sh_run(p, peer.loop, RSC_RUN_NOWAIT);
		if (ret < 0)
			violation(p, "rsc_loop_run of the peer: %s", rsc_err_name(ret));
	}
	if (peer.open && !gens[peer.gen].dropping)
		gens[peer.gen].drained = true;
}

/* The inbox stops taking slots: what was not drained may never arrive. */
static void peer_stop(struct prog *p, bool drain)
{
	if (drain)
		peer_drain(p);
	else if (peer.open)
		gens[peer.gen].drained = false;
	peer.open = false;
}

static bool peer_new(struct prog *p, unsigned cfg, struct prog_stats *st)
{
	static const unsigned kernel_slots[] = { 1, 2, 4, 32 }; /* small: it fills */
	unsigned flags = cfg & 1 ? RSC_LOOP_NO_DEFER_TASKRUN : 0;
	/* On an application's ring that drops every arrival it reaps, as one
	 * tearing its ring down may: the addresses they carry (a chain's connect
	 * has one) must go with the inbox, as the heap check sees; the files go
	 * with the ring's table. */
	bool dropping = drops(p) && (cfg & 16) && (p->env->kinds & KIND_SHARED) && !p->audit_full;
	int ret;

	if (n_gens == MAX_GENS)
		return false;
	memset(&peer, 0, sizeof(peer));
	peer.gen = n_gens;
	/* In a program on the application's ring, every other peer is on one too. */
	/* (Not at the full audit: the program's loop would report the ring the
	 * application opened meanwhile, as it does any descriptor that appeared.) */
	if (((p->shared && !(n_gens & 1)) || dropping) && !p->audit_full)
		ret = sh_loop_new(p, 1, 16, !flags, &peer.loop);
	else
		ret = rsc_loop_new(&peer.loop, 16, flags);
	if (ret < 0) {
		violation(p, "rsc_loop_new of a peer: %s", rsc_err_name(ret));
		peer.loop = NULL;
		return false;
	}
	if ((ret = rsc_loop_set_direct(peer.loop, kernel_slots[(cfg >> 1) & 3] + 1, 1)) < 0 ||
	    (ret = rsc_loop_set_trace(peer.loop, peer_trace, p)) < 0 ||
	    (ret = cfg & 8 ? rsc_loop_set_audit(peer.loop, RSC_AUDIT_RELEASED) : 0) < 0 ||
	    (ret = rsc_scope_open(peer.loop, NULL, "inbox", &peer.scope)) < 0 ||
	    (ret = rsc_inbox(peer.scope, on_arrival, p, &peer.inbox)) < 0 ||
	    (ret = rsc_inbox_address(peer.inbox, &gens[n_gens].addr)) < 0)
		violation(p, "setting up peer %d: %s (%s)", n_gens, rsc_err_name(ret),
			  rsc_last_error());
	say(p, "  op %d: peer %d: %s, %u slots, address 0x%llx%s\n", p->op_index, n_gens,
	    flags ? "no defer" : "defer", kernel_slots[(cfg >> 1) & 3], gens[n_gens].addr,
	    dropping ? ", arrivals dropped" : "");
	gens[n_gens].arrivals = 0;
	gens[n_gens].drained = false;
	gens[n_gens].dropping = dropping;
	if (dropping)
		sh_drop_arrivals(peer.loop);
	n_gens++;
	peer.open = true;
	st->peers++;
	return true;
}

/* Close the peer and judge it: every arrival entered and released once, no slot left. */
static void peer_close(struct prog *p, bool drain, struct prog_stats *st)
{
	unsigned long long dropped;
	int i, ret;

	if (!peer.loop)
		return;
	peer_stop(p, drain);
	if (!peer.scope_closing && sh_is_shared(peer.loop)) {
		/* The application reaps: no blocking close, a close and the turns below. */
		ret = rsc_scope_close(peer.scope, NULL, NULL);
		if (ret != 0)
			violation(p, "peer %d: rsc_scope_close of its inbox scope: %s", peer.gen,
				  rsc_err_name(ret));
	} else if (!peer.scope_closing) {
		ret = rsc_scope_close_wait(peer.scope, NULL);
		if (ret != 0)
			violation(p, "peer %d: its inbox scope closed with %s", peer.gen,
				  rsc_err_name(ret));
	}
	for (i = 0; i < 100 && (ret = sh_run(p, peer.loop, RSC_RUN_DEFAULT)) > 0; i++)
		; /* bounded: after a violation a loop on the application's ring may never idle */
	if (ret < 0)
		violation(p, "peer %d: rsc_loop_run: %s", peer.gen, rsc_err_name(ret));
	if (peer.n_scope_closed != 1)
		violation(p, "peer %d: its inbox scope closed %d times", peer.gen, peer.n_scope_closed);
	for (i = 0; i < n_arrived; i++) {
		const struct arrival *a = &arrived[i];

		if (a->n_cb != 1 || a->n_entered != 1 || a->n_released != 1 || a->n_closed != 1)
			violation(p, "peer %d: an arrival called back %d, entered %d, released %d, its scope closed %d times",
				  peer.gen, a->n_cb, a->n_entered, a->n_released, a->n_closed);
	}
	if ((ret = rsc_loop_direct_used(peer.loop)) != 0)
		violation(p, "peer %d: %d slots still in use when everything closed", peer.gen, ret);
	/* A dropped arrival's file is in the kernel's table, nobody's: the audit would say so. */
	dropped = sh_arrivals_dropped(peer.loop);
	st->arrivals_dropped += dropped;
	while (!dropped && (ret = rsc_audit_slots(peer.loop)) == -EAGAIN)
		;
	if (!dropped && ret != 0)
		violation(p, "peer %d: rsc_audit_slots: %d (the kernel's table disagrees)", peer.gen, ret);
	ret = sh_loop_close(p, peer.loop, st);
	if (ret != 0) {
		violation(p, "peer %d: rsc_loop_close: %s (%s)", peer.gen, rsc_err_name(ret),
			  rsc_last_error());
		(void)rsc_loop_shutdown(peer.loop, NULL);
	}
	say(p, "  peer %d closed: %d arrivals\n", peer.gen, gens[peer.gen].arrivals);
	peer.loop = NULL;
	n_arrived = 0;
}

/* Something the peer does by itself: run, close a slot's scope, stop its inbox. */
static void peer_op(struct prog *p, unsigned x, struct prog_stats *st)
{
	const char *what;
	int i, ret;

	if (!peer.loop && (x & 7) != 7)
		return;
	switch (x & 7) {
	case 3:
	case 4: /* the callee closes a slot it was given */
		for (i = 0; i < n_arrived; i++) {
			struct arrival *a = &arrived[(i + (int)(x >> 3)) % n_arrived];

			if (a->scope && !a->close_req && !a->n_closed && !peer.scope_closing) {
				ret = rsc_scope_close(a->scope, NULL, NULL);
				say(p, "  op %d: peer closes a handed scope -> %d\n", p->op_index, ret);
				if (ret != 0)
					violation(p, "rsc_scope_close of a handed scope: %s", rsc_err_name(ret));
				a->close_req = true;
				break;
			}
		}
		break;
	case 5: /* release the inbox: later hand-overs may go through, nothing arrives */
	case 6: /* close the inbox's scope: its arrivals close with it */
		if ((x & 7) == 5 ? !peer.open : peer.scope_closing)
			break;
		peer_stop(p, x & 8);
		if ((x & 7) == 5) {
			what = "rsc_entry_release of the peer's inbox";
			ret = rsc_entry_release(peer.inbox, NULL, NULL);
		} else {
			what = "rsc_scope_close of the peer's inbox scope";
			ret = rsc_scope_close(peer.scope, NULL, NULL);
			peer.scope_closing = true;
		}
		say(p, "  op %d: %s -> %d\n", p->op_index, what, ret);
		if (ret != 0)
			violation(p, "%s: %s", what, rsc_err_name(ret));
		break;
	case 7: /* a new peer: the old address names no inbox any more */
		if (n_gens == MAX_GENS)
			break;
		peer_close(p, x & 8, st);
		peer_new(p, x >> 4, st);
		break;
	default:
		peer_drain(p);
		break;
	}
}

/* ---- the sender ------------------------------------------------------------ */

bool ho_table(struct prog *p)
{
	int ret;

	if (p->n_direct || p->table)
		return true;
	/* Once, while no slot is in use (the only time it may be set); the
	 * last slots are the chains' range: 4, or 8 with the chain kind (chain.c). */
	ret = rsc_loop_set_direct(p->loop, MAIN_SLOTS, p->env->kinds & KIND_CHAIN ? 8 : 4);
	if (ret == -EDEADLK)
		return false; /* from a post: the next direct op outside one sets it */
	if (ret < 0)
		violation(p, "rsc_loop_set_direct: %s (%s)", rsc_err_name(ret), rsc_last_error());
	p->table = ret == 0;
	return ret == 0;
}

void ho_direct(struct prog *p, int s, struct rd *r)
{
	struct pentry *e;
	unsigned b = rd_u8(r);
	int ret;

	/* Close rules would hit its close_direct (see op_fault). */
	if (p->n_direct >= MAX_DIRECT || p->cur_class == FC_REL || !ho_table(p))
		return;
	e = push_begin(p, s, K_DIRECT);
	if (!e)
		return;
	p->n_direct++;
	e->name = "file";
	if (b % 16 == 15) {
		/* fsync(2) of /dev/null fails (-EINVAL) and the hard-linked
		 * close_direct behind it still empties the slot: the table must
		 * follow the close's own CQE, not the release's error. */
		snprintf(e->path, sizeof(e->path), "/dev/null");
		e->fsync_fails = true;
		e->ordered = true; /* fsync, then close_direct */
		ret = rsc_open(p->sc[s].h, AT_FDCWD, e->path, O_RDONLY, 0,
			       RSC_DIRECT | RSC_FSYNC_ON_RELEASE, &e->h);
		push_end(p, e, ret, 0, "rsc_open(direct, fsync)");
		return;
	}
	snprintf(e->path, sizeof(e->path), "%s/f%u", p->env->dir, b % N_FILES);
	ret = rsc_open(p->sc[s].h, AT_FDCWD, e->path, O_RDONLY, 0, RSC_DIRECT, &e->h);
	push_end(p, e, ret, 0, "rsc_open(direct)");
}

static void hand_done(struct rsc_entry *h, int res, void *data)
{
	struct hand *hd = data;
	struct prog *p = hd->p;
	struct pentry *e = &p->en[hd->entry];
	int slot = rsc_entry_slot(h);

	say(p, "    hand-over of entry %d of '%s' -> %d\n", e->seq, p->sc[e->scope].name, res);
	audit_probe(p, "a hand-over callback");
	if (hd->refused)
		violation(p, "a refused hand-over called back (%s)", rsc_err_name(res));
	if (hd->n_cb++) {
		violation(p, "a hand-over called back twice");
		return;
	}
	hd->res = res;
	e->n_handing--;
	if (res >= 0) {
		if (e->handed)
			violation(p, "entry %d of '%s' was handed over twice", e->seq,
				  p->sc[e->scope].name);
		e->handed = true;
		if (slot != -EXDEV)
			violation(p, "handed over, but its entry says slot %d, not EXDEV", slot);
	} else if (slot != e->enter_res && !e->handed) {
		violation(p, "a failed hand-over (%s) left slot %d, the entry had %d",
			  rsc_err_name(res), slot, e->enter_res);
	}
}

/* Why a hand-over must be refused (W_MUST), or may be (the rest), as a mask. */
enum { W_BADF = 1, W_SHUTDOWN = 2, W_STALE = 4, W_INVAL = 8, W_BUSY = 16,
       W_ANCESTOR = 32, /* an ancestor's unwind owns it: refused (DESIGN 7) */
       W_STOPPED = 64 /* the inbox stops: refused, or closed when it arrives */ };
#define W_MUST (W_BADF | W_SHUTDOWN | W_STALE | W_INVAL | W_BUSY | W_ANCESTOR)

static unsigned hand_refusals(const struct prog *p, const struct pentry *e, int target,
			      unsigned long long addr)
{
	int st = rsc_entry_state(e->h), s = e->scope;
	unsigned w = 0;

	/* A chain's connect holds its socket's slot once entered (chain.c). */
	if ((e->kind != K_DIRECT && !e->chain) || e->early || st != RSC_ENTERED || e->handed)
		w |= W_BADF; /* holds no slot, or not now */
	if (e->n_handing)
		w |= W_BUSY | W_BADF; /* one move at a time (EBADF once the first gave it) */
	if (rsc_entry_io_count(e->h) > 0)
		w |= W_BUSY; /* its I/O would go on on the receiver's file */
	if ((p->sc[s].close_req && !own_in_grace(p, s)) ||
	    rsc_scope_state(p->sc[s].h) != RSC_SCOPE_OPEN)
		w |= W_SHUTDOWN;
	/* Both may hold: a scope in its grace (open to I/O) under a closing parent. */
	if (unwind_owns(p, s))
		w |= W_ANCESTOR;
	if (!(uint32_t)addr)
		w |= W_INVAL;
	if (target < 0)
		w |= W_STALE;
	else if (!peer.open)
		w |= W_STOPPED;
	return w;
}

static bool refusal_ok(unsigned w, int ret)
{
	return (ret == -EBADF && (w & W_BADF)) ||
	       /* An unwind's to own: -EALREADY, whether a close or a failure asked for it (bug 96). */
	       (ret == -ESHUTDOWN && (w & W_SHUTDOWN) && !(w & W_ANCESTOR)) ||
	       (ret == -ESTALE && (w & (W_STALE | W_STOPPED))) || (ret == -EINVAL && (w & W_INVAL)) ||
	       (ret == -EBUSY && (w & W_BUSY)) || (ret == -EALREADY && (w & W_ANCESTOR));
}

static bool has_address(const struct pentry *e)
{
	struct sockaddr_storage a;
	socklen_t len = sizeof(a);

	return rsc_entry_peername(e->h, (struct sockaddr *)&a, &len) == 0;
}

/* An entry to hand over: mostly a direct one that holds its slot, else any. */
static int pick_sender(const struct prog *p, struct rd *r)
{
	int live[MAX_ENTRIES], n = 0, i;
	unsigned b = rd_u8(r);

	if (!(b & 3))
		return pick_entry(p, r);
	/* Now and then, and mostly for a peer that drops its arrivals, a
	 * connection whose peer's address travels with it. */
	for (i = 0; i < p->n_en && drops(p) &&
		    ((b & 3) == 2 || (peer.loop && gens[peer.gen].dropping)); i++) {
		const struct pentry *e = &p->en[i];

		if (e->chain && p->sc[e->scope].valid && e->n_entered && !e->early && !e->handed &&
		    !e->n_handing && !e->hidden && has_address(e))
			live[n++] = i;
	}
	for (i = 0; i < p->n_en && (b & 3) != 3 && !n; i++) {
		const struct pentry *e = &p->en[i];

		/* Not a chain's socket: its connect takes it over, handle and all. */
		if (e->kind == K_DIRECT && p->sc[e->scope].valid && e->n_entered && !e->early &&
		    !e->handed && !e->n_handing && !e->hidden)
			live[n++] = i;
	}
	for (i = 0; i < p->n_en && !n; i++)
		if (p->en[i].kind == K_DIRECT && p->sc[p->en[i].scope].valid && !p->en[i].detached &&
		    !p->en[i].hidden)
			live[n++] = i;
	return n ? live[(b >> 2) % (unsigned)n] : -1;
}

static void op_hand_over(struct prog *p, struct rd *r, bool msg_fault, struct prog_stats *st)
{
	unsigned x, y;
	unsigned long long addr;
	bool addressed;
	long long faults;
	struct pentry *e;
	struct hand *hd;
	int i = pick_sender(p, r), s, target, ret;
	unsigned w;

	x = rd_u8(r);
	y = rd_u8(r);
	if (i < 0 && (s = pick_scope(p, r)) >= 0) {
		/* Nothing to hand over yet: acquire a slot, and let it enter. */
		ho_direct(p, s, r);
		op_run(p, 0, NULL);
		i = pick_sender(p, r);
	}
	if (i < 0 || n_hands == MAX_HANDS)
		return;
	e = &p->en[i];
	if (x % 8 < 5) {
		if (!peer.loop && !peer_new(p, y, st))
			return;
		target = peer.gen;
		addr = gens[target].addr;
	} else if (x % 8 == 5 && (n_gens > 1 || (n_gens == 1 && !peer.loop) ||
				  (peer.loop && n_gens < MAX_GENS))) {
		/* A peer that has closed: close this one first if none has. */
		if (n_gens == 1 && peer.loop) {
			peer_close(p, y & 1, st);
			peer_new(p, y >> 1, st);
		}
		target = -1;
		addr = gens[(x >> 3) % (unsigned)(n_gens - (peer.loop ? 1 : 0))].addr;
	} else {
		/* Never an address: a descriptor that is no inbox's ring, or token 0. */
		target = -1;
		addr = (unsigned long long)(y % 64) << 32 | (x % 8 == 7 ? 0 : 0x5a5a0000U | x);
		if (peer.loop && addr == gens[peer.gen].addr)
			return;
	}
	if (msg_fault && p->env->have_faults) {
		fault_window(p);
		if (prog_fault_set(p, "msg_ring:1:EOPNOTSUPP") < 0)
			violation(p, "rsc_fault_set(msg_ring): %s", rsc_last_error());
		p->cur_class = FC_MSG;
		p->ring_rules = false;
		p->msg_armed = true;
	}
	w = hand_refusals(p, e, target, addr);
	addressed = has_address(e); /* a chain's connect: its address travels with the file */
	hd = &hands[n_hands++];
	*hd = (struct hand){ p, i, target, false, false, 0, 0 };
	faults = rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED);
	ret = rsc_entry_hand_over(e->h, addr, hand_done, hd);
	faults = rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) - faults;
	say(p, "  op %d: hand over entry %d of %s (%s, state %d) to 0x%llx%s -> %d\n", p->op_index,
	    e->seq, p->sc[e->scope].name, e->kind == K_DIRECT ? "direct" : "not direct",
	    rsc_entry_state(e->h), addr, target < 0 ? " (no inbox)" : "", ret);
	if (miss_refuses(p, M_NO_HANDOVER)) {
		/* No MSG_RING, or no SEND_FD in it (missing.c): never accepted. */
		p->msg_armed = false;
		if (ret != -EOPNOTSUPP && (ret == 0 || !refusal_ok(w, ret)) &&
		    !(ret == -EBUSY && rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) > 0))
			violation(p, "hand-over under %s: %s (%s), expected EOPNOTSUPP", miss_spec(p),
				  rsc_err_name(ret), rsc_last_error());
		st->missing_refusals += ret == -EOPNOTSUPP;
	} else if (p->msg_armed && faults) {
		p->msg_armed = false;
		if (ret != -EOPNOTSUPP)
			violation(p, "a msg_ring fault fired, but the hand-over returned %s",
				  rsc_err_name(ret));
		st->handovers_unsupported++;
	} else if (ret == -EOPNOTSUPP) {
		violation(p, "hand-over: EOPNOTSUPP with no msg_ring fault fired (%s)", rsc_last_error());
	} else if (ret == 0 && (w & W_MUST)) {
		violation(p, "hand-over of entry %d of '%s' to 0x%llx accepted, expected a refusal (mask 0x%x)",
			  e->seq, p->sc[e->scope].name, addr, w);
	} else if (ret < 0 && !refusal_ok(w, ret) &&
		   !(ret == -EBUSY && rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) > 0)) {
		violation(p, "hand-over of entry %d of '%s': %s (%s), refusals allowed 0x%x",
			  e->seq, p->sc[e->scope].name, rsc_err_name(ret), rsc_last_error(), w);
	}
	if (ret < 0) {
		hd->refused = true;
		st->handovers_refused++;
		st->handovers_stale += ret == -ESTALE;
		if ((e->kind == K_DIRECT || e->chain) && e->n_entered && !e->handed && !e->early &&
		    !e->n_handing && rsc_entry_state(e->h) == RSC_ENTERED &&
		    rsc_entry_slot(e->h) != e->enter_res)
			violation(p, "a refused hand-over moved slot %d: the entry says %d",
				  e->enter_res, rsc_entry_slot(e->h));
		return;
	}
	/* Ring faults may keep the hand-over in the SQ past this call. */
	hd->must = target >= 0 && peer.open && !p->ring_rules;
	e->n_handing++;
	st->handovers++;
	st->handovers_addressed += addressed;
}

void ho_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st)
{
	int s;

	switch (sub) {
	case 2:
		if (drops(p) && (p->env->kinds & KIND_CHAIN)) {
			/* A chain: its connects know their peer's address, which a
			 * hand-over of them carries (rsc_entry_hand_over(3)). */
			ch_op(p, 0, r, st);
			break;
		}
		/* fall through */
	case 0:
	case 1:
		s = pick_scope(p, r);
		if (s < 0)
			s = op_open_scope(p, -1);
		if (s >= 0)
			ho_direct(p, s, r);
		break;
	case 3:
	case 4:
	case 5:
	case 6:
		op_hand_over(p, r, false, st);
		break;
	case 7:
		op_hand_over(p, r, true, st);
		break;
	default:
		peer_op(p, rd_u8(r), st);
		break;
	}
}

/* Released: its hand-overs called back first (a release waits for them). */
void ho_released(struct prog *p, int i)
{
	const struct pentry *e = &p->en[i];

	if (e->n_handing)
		violation(p, "entry %d of '%s' released with %d hand-overs not called back",
			  e->seq, p->sc[e->scope].name, e->n_handing);
}

/* The program's loop, every scope closed: its table is empty, as the kernel's. */
void ho_end_main(struct prog *p)
{
	int ret;

	if (!p->n_direct)
		return;
	if ((ret = rsc_loop_direct_used(p->loop)) != 0)
		violation(p, "%d slots of the loop still in use when every scope closed", ret);
	/* Asked again while busy, or while an alloc rule (each fires once) takes its memory. */
	while ((ret = rsc_audit_slots(p->loop)) == -EAGAIN ||
	       (ret == -ENOMEM && p->cur_class == FC_ALLOC))
		;
	if (ret != 0)
		violation(p, "rsc_audit_slots: %d (the kernel's table disagrees)", ret);
}

/* The program's loop is gone: close the peer, then judge every hand-over. */
void ho_end(struct prog *p, struct prog_stats *st)
{
	int must[MAX_GENS] = { 0 }, done[MAX_GENS] = { 0 }, i;

	peer_close(p, true, st);
	for (i = 0; i < n_hands; i++) {
		const struct hand *hd = &hands[i];

		if (hd->refused)
			continue;
		if (hd->n_cb != 1) {
			violation(p, "an accepted hand-over called back %d times", hd->n_cb);
			continue;
		}
		if (hd->res < 0) {
			st->handovers_failed++;
			continue;
		}
		st->handovers_done++;
		if (hd->gen < 0)
			continue;
		done[hd->gen]++;
		must[hd->gen] += hd->must;
	}
	for (i = 0; i < n_gens; i++) {
		st->arrivals += (unsigned)gens[i].arrivals;
		if (gens[i].arrivals > done[i])
			violation(p, "peer %d: %d arrivals, but %d hand-overs to it succeeded", i,
				  gens[i].arrivals, done[i]);
		else if (gens[i].drained && gens[i].arrivals < must[i])
			violation(p, "peer %d: %d hand-overs made while its inbox was open succeeded, %d arrived",
				  i, must[i], gens[i].arrivals);
	}
}
