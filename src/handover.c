/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

/*
 * Hand-over of a direct slot to another loop (an acceptor loop giving
 * connections to worker loops, one loop per thread): IORING_OP_MSG_RING with
 * IORING_MSG_SEND_FD (Linux 6.0, io_uring/msg_ring.c io_msg_send_fd). The
 * kernel installs the sender's file in a slot of the receiver's table
 * (IORING_FILE_INDEX_ALLOC) and posts a CQE to the receiver whose user_data is
 * the one the sender chose, with the slot as its result; for a receiver set
 * up with DEFER_TASKRUN that happens in the receiver's task, and the sender's
 * own CQE (0, or why the install failed) comes after. The sender's slot is
 * not touched: a close_direct linked behind the MSG_RING releases it once
 * the hand-over succeeded, and is cancelled by the link if it failed, so the
 * sender keeps what it could not give.
 *
 * The receiver is an inbox: an entry whose address (its ring's fd and a
 * token) the sender uses. A received slot is owned from its CQE on by a new
 * entry in a child scope of the inbox's scope, as an accepted connection is.
 * The user_data of a message has 0 in its low half, which no op of ours has
 * (idx + 1 there), so the loop's dispatch tells the two apart.
 */

#define KEEPALIVE_MS (3600U * 1000U)

struct rsc__inbox {
	struct rsc__list node; /* in the loop's inboxes (rsc__direct_inboxes) */
	uint32_t token;
	struct rsc__entry *e;
	rsc_accept_cb cb;
	void *data;
	bool open; /* messages are delivered (cleared by the inbox's release) */
	bool closing; /* it stops receiving: no sender may use its address (live_closing) */
};

static uint32_t next_token(void)
{
	static uint32_t seq;
	uint32_t t;

	/* Unique in the process, and never 0: a message's token is never an op's. */
	/* 30 bits: the receiver's user_data is RSC__UD_TAG | flags | token << 32
	 * (loop.c, internal.h); all ones with the flag is rsc_loop_post's wake-up. */
	do {
		t = (__atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED) * 2654435761U) & RSC__TOKEN_MASK;
	} while (!t || t == RSC__TOKEN_MASK);
	return t;
}

/*
 * The inboxes alive in the process, by token and ring descriptor. An address
 * names a ring by its number, which a loop made after the inbox's loop closed
 * may have again: a sender checks the address here first, so that a hand-over
 * to a gone inbox fails with -ESTALE instead of reaching whatever ring holds
 * that number now. Few entries (an inbox per loop), hence a locked array.
 * The lock covers the parcels too (below): a parcel goes in only while its
 * inbox is live, and goes with it.
 */
struct live_inbox {
	uint32_t token;
	int ring_fd;
	bool closing; /* its release, or an unwind that owns it, has begun */
	unsigned fork_gen; /* its loop's: a child of fork(2) has no inbox of its parent's */
};

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct live_inbox *live;
static unsigned n_live, cap_live;

/* fork.c: held across a fork(2), so that the child's copy is whole and free. */
pthread_mutex_t *const rsc__handover_fork_lock = &live_lock;

static void parcels_drop_locked(uint32_t token);
static void spare_parcels_free_locked(void);

static int live_add(struct rsc_loop *loop, uint32_t token, int ring_fd)
{
	int ret = 0;

	pthread_mutex_lock(&live_lock);
	if (n_live == cap_live) {
		unsigned cap = cap_live ? cap_live * 2 : 16;
		struct live_inbox *l = rsc__realloc(loop, live, cap * sizeof(*l));

		if (l) {
			live = l;
			cap_live = cap;
		} else {
			ret = -ENOMEM;
		}
	}
	if (ret == 0)
		live[n_live++] = (struct live_inbox){ token, ring_fd, false, loop->fork_gen };
	pthread_mutex_unlock(&live_lock);
	return ret;
}

static void live_remove(uint32_t token)
{
	unsigned i;

	pthread_mutex_lock(&live_lock);
	for (i = 0; i < n_live; i++) {
		if (live[i].token == token) {
			live[i] = live[--n_live];
			break;
		}
	}
	/* Whatever still waits for this inbox is nobody's now (its arrival, if
	 * ever dispatched, is closed as an orphan and finds no parcel). */
	parcels_drop_locked(token);
	if (n_live == 0) {
		/* Nothing left behind for a leak checker at exit. */
		spare_parcels_free_locked();
		free(live);
		live = NULL;
		cap_live = 0;
	}
	pthread_mutex_unlock(&live_lock);
}

/* The inbox a MSG_RING's user_data names (its high half, RSC__MSG_SHUTDOWN aside). */
static uint32_t message_token(uint64_t user_data)
{
	return (uint32_t)(user_data >> 32) & RSC__TOKEN_MASK;
}

/* The live inbox with @token at ring @ring_fd (-1: at any ring), or NULL; under live_lock. */
static struct live_inbox *live_find_locked(uint32_t token, int ring_fd)
{
	unsigned i;

	for (i = 0; i < n_live; i++)
		if (live[i].token == token && (ring_fd < 0 || live[i].ring_fd == ring_fd))
			return &live[i];
	return NULL;
}

static bool live_at_locked(uint32_t token, int ring_fd)
{
	return live_find_locked(token, ring_fd) != NULL;
}

/* An inbox at that address still receives: live, and not closing. */
static bool receives_at(uint32_t token, int ring_fd)
{
	struct live_inbox *l;
	bool found;

	pthread_mutex_lock(&live_lock);
	l = live_find_locked(token, ring_fd);
	found = l && !l->closing && l->fork_gen == rsc__fork_generation();
	pthread_mutex_unlock(&live_lock);
	return found;
}

static void live_closing(uint32_t token)
{
	struct live_inbox *l;

	pthread_mutex_lock(&live_lock);
	l = live_find_locked(token, -1);
	if (l)
		l->closing = true;
	pthread_mutex_unlock(&live_lock);
}

bool rsc__inbox_elsewhere(uint64_t user_data, int ring_fd)
{
	uint32_t token = message_token(user_data);
	bool elsewhere;

	pthread_mutex_lock(&live_lock);
	elsewhere = live_at_locked(token, -1) && !live_at_locked(token, ring_fd);
	pthread_mutex_unlock(&live_lock);
	return elsewhere;
}

/*
 * Parcels: the peer's address of a connection handed over (rsc_entry_peername
 * on a slot has no getpeername(2)). The message carries only 64 bits of
 * user_data, so the address waits here, process-wide, under a number the
 * message carries; the receiver takes it with the slot, the sender takes it
 * back if the hand-over failed (no message then), and a receiver that closes
 * the slot (its inbox gone) drops it. Its inbox's end drops it too: a
 * receiver on the application's ring may never be given the arrival
 * (rsc_loop_new_from_ring(3): the application reaps), and a parcel is found
 * only by its number, so a late arrival or a failed send finds none instead
 * of freed memory. Few at a time: a list, under live_lock.
 */
struct parcel {
	struct rsc__peer peer; /* copied into a room of the receiver's loop */
	struct parcel *next;
	uint32_t token, seq;
};

static struct parcel *parcels;

/* Parcels given back, for the next hand-overs: a few, process-wide (a
 * sender's allocation ends on the receiver's thread), under live_lock. */
#define SPARE_PARCELS_MAX 64
static struct parcel *spare_parcels;
static unsigned n_spare_parcels;

static void parcel_recycle_locked(struct parcel *p)
{
	if (n_spare_parcels >= SPARE_PARCELS_MAX) {
		free(p);
		return;
	}
	p->next = spare_parcels;
	spare_parcels = p;
	n_spare_parcels++;
}

static void parcel_recycle(struct parcel *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&live_lock);
	parcel_recycle_locked(p);
	pthread_mutex_unlock(&live_lock);
}

/* A spare parcel, or a new one: no malloc per hand-over in steady state. */
static struct parcel *parcel_new(struct rsc_loop *loop)
{
	struct parcel *p;

	pthread_mutex_lock(&live_lock);
	p = spare_parcels;
	if (p) {
		spare_parcels = p->next;
		n_spare_parcels--;
	}
	pthread_mutex_unlock(&live_lock);
	return p ? p : rsc__malloc(loop, sizeof(*p));
}

/* With the last inbox gone, nothing is left behind for a leak checker. */
static void spare_parcels_free_locked(void)
{
	while (spare_parcels) {
		struct parcel *p = spare_parcels;

		spare_parcels = p->next;
		free(p);
	}
	n_spare_parcels = 0;
}

/* @p waits for inbox @token, under a new number (> 0), or 0 if that inbox is
 * gone already: then nobody could take it, and it stays the caller's. */
static uint32_t parcel_put(struct parcel *p, uint32_t token)
{
	static uint32_t seq;

	p->token = token;
	do {
		p->seq = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED) & ~RSC__MSG_PARCEL;
	} while (!p->seq);
	pthread_mutex_lock(&live_lock);
	if (!live_at_locked(token, -1)) {
		pthread_mutex_unlock(&live_lock);
		return 0;
	}
	p->next = parcels;
	parcels = p;
	pthread_mutex_unlock(&live_lock);
	return p->seq;
}

static struct parcel *parcel_take(uint32_t token, uint32_t seq)
{
	struct parcel **pp, *p = NULL;

	pthread_mutex_lock(&live_lock);
	for (pp = &parcels; *pp; pp = &(*pp)->next) {
		if ((*pp)->token == token && (*pp)->seq == seq) {
			p = *pp;
			*pp = p->next;
			break;
		}
	}
	pthread_mutex_unlock(&live_lock);
	return p;
}

static void parcels_drop_locked(uint32_t token)
{
	struct parcel **pp = &parcels, *p;

	while ((p = *pp)) {
		if (p->token == token) {
			*pp = p->next;
			parcel_recycle_locked(p);
		} else {
			pp = &p->next;
		}
	}
}

static struct rsc__inbox *find_inbox(struct rsc_loop *loop, uint32_t token)
{
	struct rsc__list *list = rsc__direct_inboxes(loop);
	struct rsc__inbox *in;

	if (list)
		RSC__LIST_FOR_EACH(in, list, node)
			if (in->token == token)
				return in;
	return NULL;
}

static void unregister(struct rsc__inbox *in)
{
	rsc__list_remove(&in->node);
	if (in->open) {
		live_remove(in->token);
		in->e->scope->loop->n_inboxes--;
	}
	in->open = false;
}

/* Stopped receiving (an arrival now would be closed): from its release
 * request on, as a listener is (accept.c), or once an unwind owns it. */
static bool stops_receiving(const struct rsc__inbox *in)
{
	return !in->open || (in->e->flags & (RSC__E_DRAINING | RSC__E_RELEASE_REQ)) ||
	       rsc__scope_unwind_owns(in->e->scope);
}

/*
 * A closing state of @loop changed (scope.c), or an entry's release was
 * asked (entry.c): an inbox that stops receiving stops being an address a
 * sender may use, so that a hand-over to it fails with -ESTALE instead of
 * reporting success for a file the receiver then closes (rsc_inbox(3)).
 */
void rsc__inboxes_closing(struct rsc_loop *loop)
{
	struct rsc__list *list = rsc__direct_inboxes(loop);
	struct rsc__inbox *in;

	if (list)
		RSC__LIST_FOR_EACH(in, list, node)
			if (!in->closing && in->open && stops_receiving(in)) {
				in->closing = true;
				live_closing(in->token);
			}
}

/* An arrival with no memory to own it: closed, counted, and the inbox's
 * callback hears -ENOMEM (rsc_inbox(3)), never silence. */
static void no_memory(struct rsc_loop *loop, struct rsc__inbox *in, int slot)
{
	loop->counters[RSC_CTR_NOMEM_DROPS]++;
	rsc__direct_close_orphan(loop, slot);
	if (rsc__cb_enter(loop))
		in->cb(rsc__eh(in->e), -ENOMEM, NULL, NULL, in->data);
	rsc__cb_leave(loop);
}

void rsc__handover_message(struct rsc_loop *loop, uint64_t user_data, int res)
{
	uint32_t high = (uint32_t)(user_data >> 32), low = (uint32_t)user_data;
	uint32_t token = message_token(user_data);
	bool shutdown = high & (uint32_t)(RSC__MSG_SHUTDOWN >> 32);
	struct rsc__inbox *in = find_inbox(loop, token);
	struct rsc__scope *parent, *cs;
	struct parcel *parcel = NULL;
	struct rsc__entry *e;
	struct rsc_scope *csh;
	char detail[48];

	if (res < 0)
		return; /* the kernel posts no failure here; the sender hears it */
	if (low & RSC__MSG_PARCEL)
		parcel = parcel_take(token, low & ~RSC__MSG_PARCEL); /* ours now, whatever follows */
	/* Stopped from its release request on, as a listener is (accept.c): the
	 * exit that unregisters it waits for its keep-alive's cancel first. */
	if (!in || stops_receiving(in)) {
		/* Nobody here may own it any more: never leak it. */
		loop->counters[RSC_CTR_LATE_ACQUIRES]++;
		rsc__direct_close_orphan(loop, res);
		parcel_recycle(parcel);
		return;
	}
	if (rsc_scope_open(loop, rsc__sh(in->e->scope), "handed", &csh) < 0) {
		parcel_recycle(parcel);
		no_memory(loop, in, res);
		return;
	}
	parent = in->e->scope;
	(void)parent;
	(void)rsc__scope_from(csh, &cs, "hand-over");
	rsc__detail_num(detail, "slot ", (unsigned)res, " (handed over)");
	e = rsc__adopt_slot(cs, res, detail);
	if (!e) {
		parcel_recycle(parcel);
		(void)rsc_scope_close(csh, NULL, NULL);
		no_memory(loop, in, res);
		return;
	}
	if (parcel) {
		/* The address into a room of ours; the parcel goes back for the
		 * next hand-over. Without a room, the parcel itself stays. */
		struct rsc__peer *peer = rsc__room_get(loop, sizeof(*peer));

		if (peer) {
			*peer = parcel->peer;
			rsc__entry_keep_room(e, peer);
			parcel_recycle(parcel);
		} else {
			peer = &parcel->peer; /* first in the parcel: freed with the entry */
			e->owned_arg = peer;
		}
		e->peer = peer;
	}
	if (shutdown)
		e->config |= RSC__CFG_SHUTDOWN; /* the sender's RSC_SHUTDOWN_ON_RELEASE travels */
	if (rsc__cb_enter(loop))
		in->cb(rsc__eh(in->e), res, csh, rsc__eh(e), in->data);
	rsc__cb_leave(loop);
}

static int inbox_exit(struct rsc_entry *h, const struct rsc_error *pending, void *arg)
{
	struct rsc__entry *e;

	(void)pending;
	(void)arg;
	RSC__ENTRY(e, h, "inbox");
	/* Its keep-alive was drained first; a message arriving now is closed. */
	unregister(e->owned_arg);
	return 0;
}

static const struct rsc_manager inbox_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "inbox",
	.enter = rsc__enter_never, /* entered at once: it holds nothing but its registration */
	.exit = inbox_exit,
	.flags = RSC_MANAGER_UNORDERED,
};

/* An inbox holds no descriptor, so its one tracked op is the keep-alive. It
 * holds no grace either: a graceful close cancels it as it cancels an accept
 * (graceful.c), since slots arriving then are closed by the runtime anyway. */
bool rsc__op_is_inbox_keepalive(const struct rsc_op *op)
{
	return op->entry && op->entry->mgr == &inbox_manager;
}

/*
 * While the inbox lives the loop must wait in io_uring_enter, where a
 * DEFER_TASKRUN ring runs the sender's install: a long tracked timeout keeps
 * it alive, re-armed when it fires, removed by the inbox's release.
 */
static void keepalive(struct rsc_entry *h, int res, void *buf, void *data)
{
	struct rsc__inbox *in = data;

	(void)buf;
	if (res == -ETIME && in->open && rsc_timeout(h, KEEPALIVE_MS, keepalive, in) < 0)
		rsc__set_last_error("inbox: could not re-arm its keep-alive");
}


int rsc_inbox(struct rsc_scope *h, rsc_accept_cb cb, void *data,
	      struct rsc_entry **entryp)
{
	struct rsc__inbox *in;
	struct rsc__scope *s;
	struct rsc__entry *e;
	int ret;

	if (entryp)
		*entryp = NULL;
	ret = rsc__scope_check_push(h, &s, "rsc_inbox");
	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(cb, "rsc_inbox: cb is NULL");
	ret = rsc__direct_need(s->loop, "rsc_inbox");
	if (ret < 0)
		return ret;
	in = rsc__calloc(s->loop, 1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->token = next_token();
	ret = live_add(s->loop, in->token, s->loop->ring->ring_fd);
	if (ret < 0) {
		free(in);
		return ret;
	}
	/* Entered at once, as rsc_defer's (rsc_entry_fd gives 0 now); its value is
	 * no descriptor: no tracked I/O (rsc_read, rsc_accept) on it. */
	e = rsc__entry_new_entered_by_call(s, &inbox_manager, RSC__CFG_NO_FD, "",
					   __builtin_return_address(0));
	if (!e) {
		live_remove(in->token);
		free(in);
		return -ENOMEM;
	}
	in->e = e;
	in->cb = cb;
	in->data = data;
	in->open = true;
	s->loop->n_inboxes++;
	e->owned_arg = in; /* freed with the entry */
	rsc__list_push_front(rsc__direct_inboxes(s->loop), &in->node);
	if (rsc_timeout(rsc__eh(e), KEEPALIVE_MS, keepalive, in) < 0)
		rsc__set_last_error("inbox: could not arm its keep-alive");
	if (entryp)
		*entryp = rsc__eh(e);
	return 0;
}

int rsc_inbox_address(const struct rsc_entry *h, unsigned long long *addrp)
{
	struct rsc__entry *e;

	RSC__ENTRY(e, h, "rsc_inbox_address");
	RSC__CHECK_ARG(addrp, "rsc_inbox_address: addrp is NULL");
	if (e->mgr != &inbox_manager) {
		rsc__set_last_error("rsc_inbox_address: entry '%s' is not an inbox", e->mgr->name);
		return -EINVAL;
	}
	*addrp = (unsigned long long)(unsigned)e->scope->loop->ring->ring_fd << 32 |
		 ((struct rsc__inbox *)e->owned_arg)->token;
	return 0;
}

static void sent(struct rsc_loop *loop, struct rsc_op *op, int res, unsigned cqe_flags)
{
	struct rsc__slot_move *r = op->io_data;
	struct rsc__entry *e = op->entry;

	(void)loop;
	(void)cqe_flags;
	rsc__io_unlink(op);
	r->res = rsc__real_errno(res, false); /* a move is never cancelled (io.c cancellable) */
	/* >= 0: the slot the receiver got (msg_ring.c returns the install's result). */
	if (r->res >= 0)
		e->value = -EXDEV; /* the receiver's entry owns the file from now on */
	else if (r->parcel)
		parcel_recycle(parcel_take(r->parcel_token, r->parcel_seq)); /* no message went: ours again */
	rsc__io_settled(e->h);
}

/*
 * MSG_RING came in 5.18, its IORING_MSG_SEND_FD in 6.0: a 5.18 or 5.19
 * kernel would take the call and fail the hand-over with -EINVAL. No probe
 * sees a MSG_RING command; IORING_OP_SEND_ZC came in the same release.
 */
static int need_send_fd(struct rsc_loop *loop)
{
	if (rsc__opcode_supported(loop, IORING_OP_SEND_ZC) &&
	    !rsc__fault_missing(&loop->faults, RSC__MISSING_MSG_SEND_FD))
		return 0;
	rsc__set_last_error("rsc_entry_hand_over: the kernel lacks IORING_MSG_SEND_FD of IORING_OP_MSG_RING (Linux 6.0)");
	return -EOPNOTSUPP;
}

int rsc_entry_hand_over(struct rsc_entry *h, unsigned long long inbox_addr,
			rsc_entry_cb cb, void *data)
{
	struct parcel *parcel = NULL;
	struct rsc__slot_move *r;
	struct io_uring_sqe *sqe;
	struct rsc__entry *e;
	uint32_t low = 0;
	int ret = rsc__io_check(h, &e, "rsc_entry_hand_over");

	if (ret < 0 && ret != -ESHUTDOWN)
		return ret;
	/* A move of ownership: like detach and move, not out of a running unwind (DESIGN 7),
	 * whether a close or a failure asked for it (not -ESHUTDOWN, as for I/O). */
	if (rsc__scope_unwind_owns(e->scope)) {
		rsc__set_last_error("rsc_entry_hand_over: a scope above '%s' is unwinding or closing: its unwind owns entry '%s'",
				    e->scope->name, e->mgr->name);
		return -EALREADY;
	}
	if (ret < 0)
		return ret;
	ret = rsc__slot_move_check(e, "rsc_entry_hand_over");
	if (ret < 0)
		return ret;
	/* The file leaves the entry: I/O of the entry still in flight on it would
	 * go on inside the receiver's ownership (a read taking its bytes). As for
	 * rsc_entry_detach(3): -EBUSY until it has ended. */
	if (e->n_io) {
		rsc__set_last_error("rsc_entry_hand_over: entry '%s' has tracked I/O in flight",
				    e->mgr->name);
		return -EBUSY;
	}
	ret = rsc__need_opcode(e->scope->loop, IORING_OP_MSG_RING, "rsc_entry_hand_over (Linux 6.0)");
	if (ret < 0)
		return ret;
	ret = need_send_fd(e->scope->loop);
	if (ret < 0)
		return ret;
	/* No live inbox has token 0 either: a value never an address is -ESTALE too. */
	if (!receives_at((uint32_t)inbox_addr, (int)(inbox_addr >> 32))) {
		rsc__set_last_error("rsc_entry_hand_over: no inbox at address 0x%llx any more "
				    "(its loop or its inbox was released, or is being released)", inbox_addr);
		return -ESTALE;
	}
	/* The peer's address travels beside the file (rsc_entry_peername(3)). */
	if (e->peer) {
		parcel = parcel_new(e->scope->loop);
		if (!parcel)
			return -ENOMEM;
		parcel->peer = *e->peer;
	}
	ret = rsc__slot_move_start(e, IORING_OP_MSG_RING, sent, cb, data, &sqe, &r);
	if (ret < 0) {
		parcel_recycle(parcel);
		return ret;
	}
	if (parcel) {
		r->parcel_token = (uint32_t)inbox_addr;
		r->parcel_seq = parcel_put(parcel, (uint32_t)inbox_addr);
		r->parcel = r->parcel_seq != 0;
		if (r->parcel)
			low = RSC__MSG_PARCEL | r->parcel_seq;
		else
			parcel_recycle(parcel); /* its inbox went since the check: the file goes alone, to be closed there */
	}
	/* By hand, as io_msg_ring_prep reads it (liburing 2.3 has no send-fd prep). */
	sqe->opcode = IORING_OP_MSG_RING;
	sqe->fd = (int)(inbox_addr >> 32);
	sqe->addr = IORING_MSG_SEND_FD;
	sqe->addr3 = (unsigned)e->value; /* our slot: not IOSQE_FIXED_FILE */
	sqe->file_index = IORING_FILE_INDEX_ALLOC; /* the receiver's kernel range */
	/* The receiver's user_data: the inbox's token, and the flag its entry
	 * keeps (a FIN on release even while another descriptor of the socket
	 * exists: rsc_entry_hand_over(3)). */
	sqe->off = RSC__UD_TAG | (inbox_addr & 0xffffffffULL) << 32 |
		   ((e->config & RSC__CFG_SHUTDOWN) ? RSC__MSG_SHUTDOWN : 0) | low;
	sqe->flags = IOSQE_IO_LINK;
	/*
	 * Sent now, while the address is known to be live: on this thread the
	 * kernel installs the file before the call returns (inline, or as task
	 * work run on the way out of io_uring_enter for a DEFER_TASKRUN
	 * receiver, msg_ring.c), so a receiver closed after it has it already,
	 * and a later ring on that descriptor number never gets it. A submit
	 * that fails leaves the pair to the loop's next turn.
	 */
	(void)rsc__submit_now(e->scope->loop);
	return 0;
}
