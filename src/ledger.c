/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <sched.h>
#include <stdlib.h>

#include "internal.h"

/*
 * The ownership ledger (DESIGN.md section 7): for each descriptor number,
 * the handle of the live entry that owns it, process-wide, across loops.
 * rsc_adopt() refuses a number someone owns (-EEXIST), and an auditor in
 * the process asks who owns a number at the moment it is closed. Lock-free:
 * pages of RSC__LEDGER_PAGE numbers are made on first use and freed only
 * when the library is unloaded with no loop left (unload.c),
 * and each cell is one atomic word, so recording costs a store.
 */

#define LEDGER_PAGES (RSC__LEDGER_MAX_FD / RSC__LEDGER_PAGE)

/* Read inline by internal.h's fast paths; a page is made here only. */
uint64_t *rsc__ledger_pages[LEDGER_PAGES];
#define pages rsc__ledger_pages

/* @loop: whose rules an allocation answers to (NULL: none). */
static uint64_t *cell(struct rsc_loop *loop, int fd, bool make)
{
	uint64_t *p, *fresh = NULL;
	unsigned pi;

	if (fd < 0 || (unsigned)fd >= RSC__LEDGER_MAX_FD)
		return NULL;
	pi = (unsigned)fd / RSC__LEDGER_PAGE;
	p = __atomic_load_n(&pages[pi], __ATOMIC_ACQUIRE);
	if (!p && make) {
		fresh = rsc__calloc(loop, RSC__LEDGER_PAGE, sizeof(*fresh));
		if (!fresh)
			return NULL;
		/* Two threads may race to make a page: one wins, one frees. */
		if (__atomic_compare_exchange_n(&pages[pi], &p, fresh, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			p = fresh;
		else
			free(fresh);
	}
	return p ? &p[(unsigned)fd % RSC__LEDGER_PAGE] : NULL;
}

uint64_t rsc__ledger_owner(int fd)
{
	uint64_t *c = cell(NULL, fd, false);

	return c ? __atomic_load_n(c, __ATOMIC_ACQUIRE) : 0;
}

/* The kernel just gave @fd to @h, on a page not made yet (internal.h's fast path). */
RSC__HOT void rsc__ledger_set_slow(int fd, uint64_t h)
{
	uint64_t *c = cell(NULL, fd, true);

	if (c)
		__atomic_store_n(c, h, __ATOMIC_RELEASE);
}

/*
 * @fd's cell made now (internal.h's rsc__ledger_reserve: its page is not
 * there yet), by @loop's allocation rules (alloc faults included):
 * an acquire calls it before it tells anyone of the descriptor, so that an
 * owner is never left out of the ledger (rsc_adopt's -EEXIST). -ENOMEM: no
 * page, and the caller must not keep the descriptor.
 */
int rsc__ledger_reserve_slow(struct rsc_loop *loop, int fd)
{
	return cell(loop, fd, true) ? 0 : -ENOMEM;
}

/* @h owns @fd from now on, unless another entry does: -EEXIST then. */
int rsc__ledger_claim(struct rsc_loop *loop, int fd, uint64_t h)
{
	uint64_t *c = cell(loop, fd, true), none = 0;

	if (!c)
		return (fd < 0 || (unsigned)fd >= RSC__LEDGER_MAX_FD) ? 0 : -ENOMEM;
	for (;;) {
		if (__atomic_compare_exchange_n(c, &none, h, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return 0;
		if (none == h)
			return 0;
		if (!(none & RSC__LEDGER_CLOSING))
			return -EEXIST;
		/* The owner's close is in io_uring_enter on its thread: the number
		 * the caller holds may be the kernel's reuse of it. A moment. */
		sched_yield();
		none = 0;
	}
}

/* Spare pages are linked through their first cell. */
static void spare_push(struct rsc_loop *loop, uint64_t *page)
{
	page[0] = (uint64_t)(uintptr_t)loop->ledger_spares;
	loop->ledger_spares = page;
	loop->n_ledger_spares++;
}

/*
 * An install (rsc_entry_install(3)) is about to start: a ledger page is put
 * aside for it by @loop's allocation rules, so that its descriptor, whatever
 * number the kernel gives it, enters the ledger at its CQE without needing
 * memory then (rsc_adopt's -EEXIST). -ENOMEM: the install is refused.
 */
int rsc__ledger_spare_take(struct rsc_loop *loop)
{
	uint64_t *page;

	if (loop->n_ledger_spares <= loop->installs_inflight) {
		page = rsc__calloc(loop, RSC__LEDGER_PAGE, sizeof(*page));
		if (!page)
			return -ENOMEM;
		spare_push(loop, page);
	}
	loop->installs_inflight++;
	return 0;
}

static uint64_t *spare_pop(struct rsc_loop *loop)
{
	uint64_t *page = loop->ledger_spares;

	if (page) {
		loop->ledger_spares = (uint64_t *)(uintptr_t)page[0];
		loop->n_ledger_spares--;
		page[0] = 0; /* a cell again */
	}
	return page;
}

/* One kept for the next install; the rest back to the heap. */
static void spares_trim(struct rsc_loop *loop)
{
	while (loop->n_ledger_spares > loop->installs_inflight + 1)
		free(spare_pop(loop));
}

/* An install's CQE gave @fd to @h: its page is made from a spare if missing. */
void rsc__ledger_spare_set(struct rsc_loop *loop, int fd, uint64_t h)
{
	unsigned pi = (unsigned)fd / RSC__LEDGER_PAGE;
	uint64_t *page, *none = NULL;

	assert(loop->installs_inflight > 0);
	loop->installs_inflight--;
	if (fd >= 0 && (unsigned)fd < RSC__LEDGER_MAX_FD &&
	    !__atomic_load_n(&pages[pi], __ATOMIC_ACQUIRE) && (page = spare_pop(loop))) {
		/* Another thread may make that page first: ours stays a spare. */
		if (!__atomic_compare_exchange_n(&pages[pi], &none, page, false,
						 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			spare_push(loop, page);
	}
	rsc__ledger_set(fd, h);
	spares_trim(loop);
}

/* An install that gave no descriptor: its spare is not needed. */
void rsc__ledger_spare_drop(struct rsc_loop *loop)
{
	assert(loop->installs_inflight > 0);
	loop->installs_inflight--;
	spares_trim(loop);
}

void rsc__ledger_spares_free(struct rsc_loop *loop)
{
	while (loop->ledger_spares)
		free(spare_pop(loop));
}

/* No loop is left and the library is being unloaded: no entry owns a number,
 * so the pages go back to the heap (rsc__handles_unload). */
void rsc__ledger_unload(void)
{
	unsigned pi;

	for (pi = 0; pi < LEDGER_PAGES; pi++)
		free(__atomic_exchange_n(&pages[pi], NULL, __ATOMIC_ACQ_REL));
}

/*
 * @h's close of @fd is prepared. The number is @h's until the close has run
 * (rsc_adopt(3)): let go of it earlier, and a release prepared by the
 * caller and submitted on the loop's next turn would leave a moment in
 * which the number is open and owned by nobody, so a second adopt would
 * make two owners, and the second close would hit the number reused. On
 * the application's ring (rsc_loop_new_from_ring) the application submits
 * when it likes: let go at once there.
 */
/*
 * Room in the list of closes not yet submitted for @n of them, made when the
 * entry pool grows (pool.c): an entry lists its close at most once, and is
 * alive until that close is submitted, so a release never needs memory to
 * let go of its number (the no-memory fallback below stays as a safety net).
 */
int rsc__ledger_room(struct rsc_loop *loop, unsigned n)
{
	struct rsc__ledger_pending *p;
	unsigned cap = loop->cap_ledger_unsub ? loop->cap_ledger_unsub : 16;

	if (n <= loop->cap_ledger_unsub)
		return 0;
	while (cap < n)
		cap *= 2;
	p = rsc__realloc(loop, loop->ledger_unsub, cap * sizeof(*p));
	if (!p)
		return -ENOMEM;
	loop->ledger_unsub = p;
	loop->cap_ledger_unsub = cap;
	return 0;
}

bool rsc__ledger_list_close_slow(struct rsc_loop *loop, struct rsc_op *op, uint64_t *cell, uint64_t h)
{
	/* On the application's ring the application submits when it likes, and
	 * hands us the CQE when it likes: let go at once there (rsc_adopt(3)). */
	if (loop->shared) {
		rsc__ledger_forget_cell(cell, h);
		return true;
	}
	if (loop->n_ledger_unsub == loop->cap_ledger_unsub)
		(void)rsc__ledger_room(loop, loop->n_ledger_unsub + 1);
	/* No memory: late rather than early. Forgotten now, a number still open
	 * could be adopted again (two owners, the double close); kept, it is
	 * forgotten at the close's CQE, and meanwhile an adopt of the number
	 * reused is refused at worst. */
	if (loop->n_ledger_unsub == loop->cap_ledger_unsub)
		return false;
	return rsc__ledger_list_append(loop, op, cell, h);
}

/*
 * Cell @c, while it names @h: marked closing, or no longer. Before the enter
 * that runs @h's close the number is open and @h's, so no other thread
 * writes the cell (a claim changes only a 0, and the kernel gives out only
 * free numbers): a store will do. Unmarking comes after an enter, when a
 * close taken for still running may have run all the same, and another
 * loop's acquire been handed the number and stored its own owner here
 * (rsc__ledger_set): only a compare-and-swap keeps from overwriting it.
 */
static inline void mark_cell(uint64_t *c, uint64_t h, bool closing)
{
	uint64_t v = __atomic_load_n(c, __ATOMIC_RELAXED);

	if ((v & ~RSC__LEDGER_CLOSING) != h)
		return;
	if (closing)
		__atomic_store_n(c, h | RSC__LEDGER_CLOSING, __ATOMIC_RELEASE);
	else
		__atomic_compare_exchange_n(c, &v, h, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* Listed close @op leaves the list: @ran, its number is let go of; else the
 * number stays its entry's, let go of at the close's CQE or with the entry. */
static inline __attribute__((always_inline)) void unlist(struct rsc_loop *loop, struct rsc_op *op,
							    bool ran)
{
	struct rsc__ledger_pending *p = &loop->ledger_unsub[op->unsub - 1];

	if (ran) {
		rsc__ledger_forget_cell(p->cell, p->h);
	} else {
		mark_cell(p->cell, p->h, false);
		op->entry->flags |= rsc__ledger_flag_of(op->closes);
	}
	op->unsub = 0;
	p->op = NULL;
	loop->n_ledger_running--;
}

/* Listed close @op has completed (its CQE, @res): its number is no longer its
 * entry's, unless -ECANCELED says it never ran (the number is still open). */
static inline __attribute__((always_inline)) void close_done(struct rsc_loop *loop,
								struct rsc_op *op, int res)
{
	unlist(loop, op, res != -ECANCELED);
}

void rsc__ledger_close_done(struct rsc_loop *loop, struct rsc_op *op, int res)
{
	close_done(loop, op, res);
}

/*
 * After an io_uring_enter: a listed close whose CQE is posted has run, and
 * its number may already be a new descriptor's: it leaves the ledger now,
 * before the CQE is reaped and before any callback runs. The kernel runs a
 * close inside the call and posts its CQE there, unless its file flushes on
 * close (FUSE, NFS, overlayfs: punted to io-wq); such a close has not run
 * yet, and its number stays owned until its CQE (entry.c).
 */
static void closes_ran(struct rsc_loop *loop)
{
	struct io_uring *ring = loop->ring;
	unsigned shift = (ring->flags & IORING_SETUP_CQE32) ? 1 : 0;
	unsigned head = *ring->cq.khead;
	unsigned tail = io_uring_smp_load_acquire(ring->cq.ktail);
	struct rsc__ledger_pending *next = loop->ledger_unsub; /* closes run inline post in list order */

	for (; head != tail && loop->n_ledger_running; head++) {
		const struct io_uring_cqe *cqe = &ring->cq.cqes[(head & ring->cq.ring_mask) << shift];
		struct rsc_op *op;

		if (next->op && next->op->ud == cqe->user_data) {
			op = next->op;
			next++;
		} else {
			op = rsc__op_lookup(loop, cqe->user_data); /* another op's, or out of order */
			if (!op || !op->unsub)
				continue;
		}
		close_done(loop, op, cqe->res);
	}
}

/*
 * After closes_ran: the kernel holds CQEs it could not post (a full CQ,
 * IORING_SQ_CQ_OVERFLOW), and a close among them has run all the same.
 * Taken into the stash (liburing flushes the overflow as it peeks), where
 * the reap finds them before anything newer, and looked at there: a number
 * whose close has run is nobody's before any callback runs, overflow or not.
 */
static RSC__COLD void closes_overflowed(struct rsc_loop *loop)
{
	unsigned i;

	rsc__stash_cqes(loop);
	for (i = 0; i < loop->stash_len && loop->n_ledger_running; i++) {
		struct rsc_op *op = rsc__op_lookup(loop, loop->stash[i].user_data);

		if (op && op->unsub)
			close_done(loop, op, loop->stash[i].res);
	}
}

/* The SQ was submitted (@all: or the loop is going). The closes that ran
 * let go of their numbers; any other is no longer marked closing, and its
 * entry lets go of its number at its CQE; while some of the SQ is left, the
 * list stays for the enter that takes it. */
RSC__HOT void rsc__ledger_submitted_slow(struct rsc_loop *loop, bool all)
{
	unsigned i;

	if (!all && !rsc__loop_forked(loop)) {
		closes_ran(loop);
		if (loop->n_ledger_running &&
		    (IO_URING_READ_ONCE(*loop->ring->sq.kflags) & IORING_SQ_CQ_OVERFLOW))
			closes_overflowed(loop);
	}
	if (!all && loop->n_ledger_running && io_uring_sq_ready(loop->ring)) {
		/* Some are still the SQ's (a partial submit): listed until an enter has taken them. */
		rsc__ledger_closing(loop, false);
		return;
	}
	/* What is left is still running (or, @all, the loop is going: let go). */
	for (i = 0; i < loop->n_ledger_unsub && loop->n_ledger_running; i++)
		if (loop->ledger_unsub[i].op)
			unlist(loop, loop->ledger_unsub[i].op, all);
	loop->n_ledger_unsub = 0;
	loop->n_ledger_running = 0;
	if (all) {
		free(loop->ledger_unsub);
		loop->ledger_unsub = NULL;
		loop->cap_ledger_unsub = 0;
	}
}

/*
 * The closes prepared go into io_uring_enter now (@closing), or came back
 * from it unsubmitted. Marked, because the kernel closes a number inside the
 * call, and another thread may open it and adopt it before the call returns
 * and the numbers leave the ledger: rsc__ledger_claim waits for the mark to
 * go instead of refusing a number nobody owns (-EEXIST).
 */
RSC__HOT void rsc__ledger_closing_slow(struct rsc_loop *loop, bool closing)
{
	unsigned i;

	for (i = 0; i < loop->n_ledger_unsub; i++)
		mark_cell(loop->ledger_unsub[i].cell, loop->ledger_unsub[i].h, closing);
}
