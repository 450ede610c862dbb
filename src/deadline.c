/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

/*
 * Scope deadlines (Trio's cancel scopes). They live in user space, in one
 * binary min-heap per loop, with one kernel timeout (IORING_TIMEOUT_ABS on
 * CLOCK_MONOTONIC) armed for the earliest, as libuv and nginx keep timers.
 * Each heap slot holds its key, the time to look at the scope, beside the
 * scope, so sifting reads one array and no scope. Moving a deadline later,
 * which servers do on every request, only stores the new time in the
 * scope: the key stays, and when it comes due the scope is put back at its
 * true deadline (a lazy re-arm: no sift, no syscall, no SQE). The kernel
 * timer may thus fire early; it is re-armed for the new earliest from its
 * own completion. Only a deadline earlier than the armed one costs an SQE
 * (IORING_OP_TIMEOUT_REMOVE with IORING_TIMEOUT_UPDATE, Linux 5.11).
 */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: no syscall */
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void set_ts(struct __kernel_timespec *ts, uint64_t ns)
{
	ts->tv_sec = (long long)(ns / 1000000000ULL);
	ts->tv_nsec = (long long)(ns % 1000000000ULL);
}

static void heap_swap(struct rsc_loop *loop, unsigned a, unsigned b)
{
	struct rsc__dl_slot t = loop->dl_heap[a];

	loop->dl_heap[a] = loop->dl_heap[b];
	loop->dl_heap[b] = t;
	loop->dl_heap[a].s->dl_index = a;
	loop->dl_heap[b].s->dl_index = b;
}

static void sift_up(struct rsc_loop *loop, unsigned i)
{
	while (i > 0) {
		unsigned p = (i - 1) / 2;

		if (loop->dl_heap[p].key <= loop->dl_heap[i].key)
			break;
		heap_swap(loop, i, p);
		i = p;
	}
}

static void sift_down(struct rsc_loop *loop, unsigned i)
{
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;

		if (l < loop->dl_n && loop->dl_heap[l].key < loop->dl_heap[m].key)
			m = l;
		if (r < loop->dl_n && loop->dl_heap[r].key < loop->dl_heap[m].key)
			m = r;
		if (m == i)
			return;
		heap_swap(loop, i, m);
		i = m;
	}
}

static void heap_remove(struct rsc_loop *loop, struct rsc__scope *s)
{
	unsigned i = s->dl_index;

	s->dl_index = RSC__NO_DEADLINE;
	if (i != --loop->dl_n) {
		loop->dl_heap[i] = loop->dl_heap[loop->dl_n];
		loop->dl_heap[i].s->dl_index = i;
		sift_up(loop, i);
		sift_down(loop, loop->dl_heap[i].s->dl_index);
	}
}

static void timer_done(struct rsc_loop *loop, struct rsc_op *op, int res,
		       unsigned cqe_flags);

/*
 * One kernel timer for the earliest deadline; re-armed only when earlier.
 * -EBUSY when no SQE could be had: the caller decides (set refuses the
 * deadline; an expiry retries on the next turn).
 */
static int arm(struct rsc_loop *loop)
{
	struct io_uring_sqe *sqe;
	struct rsc_op *op;
	uint64_t first;
	int ret;

	loop->dl_rearm = false;
	if (!loop->dl_n)
		return 0;
	first = loop->dl_heap[0].key;
	if (loop->dl_timer && loop->dl_armed_ns <= first)
		return 0; /* it fires early, and is re-armed then */
	if (loop->dl_timer) {
		ret = rsc__op_with_sqe_why(loop, &sqe, &op);
		if (ret < 0) {
			loop->dl_rearm = true; /* it fires at the old time, later than due */
			return ret;
		}
		set_ts(&loop->dl_update_ts, first);
		io_uring_prep_timeout_update(sqe, &loop->dl_update_ts,
					     rsc__op_user_data(loop->dl_timer), IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, rsc__op_user_data(op));
		op->complete = timer_done;
		op->opcode = IORING_OP_TIMEOUT_REMOVE;
		loop->dl_armed_ns = first;
		return 0;
	}
	ret = rsc__op_with_sqe_why(loop, &sqe, &op);
	if (ret < 0) {
		loop->dl_rearm = true;
		return ret;
	}
	set_ts(&op->ts, first);
	io_uring_prep_timeout(sqe, &op->ts, 0, IORING_TIMEOUT_ABS);
	io_uring_sqe_set_data64(sqe, rsc__op_user_data(op));
	op->complete = timer_done;
	op->opcode = IORING_OP_TIMEOUT;
	loop->dl_timer = op;
	loop->dl_armed_ns = first;
	return 0;
}

/* A turn of the loop: a timer that could not be armed is tried again. */
void rsc__deadline_rearm(struct rsc_loop *loop)
{
	if (!loop->dl_n) {
		loop->dl_rearm = false;
		rsc__deadline_idle(loop); /* a removal that found no SQE */
		return;
	}
	(void)arm(loop);
}

/* An ancestor's unwind has started and owns @s, with no grace between
 * (rsc_scope_close_graceful(3): in one, or below one, a deadline applies). */
static bool owned_by_an_unwind_above(const struct rsc__scope *s)
{
	const struct rsc__scope *a;

	for (a = s; !a->grace && a->parent; a = a->parent)
		if (a->parent->state != RSC_SCOPE_OPEN)
			return true;
	return false;
}

/* The scope's time is up: its unwind starts now, everything in it cancelled. */
static void expire(struct rsc_loop *loop, struct rsc__scope *s)
{
	heap_remove(loop, s);
	if (s->state != RSC_SCOPE_OPEN)
		return;
	/* An ancestor's unwind has started: it owns this scope, whose deadline
	 * ended with it, though its cursor has not reached it yet (an older
	 * child of a parent whose own deadline passed in the same batch). */
	if (owned_by_an_unwind_above(s))
		return;
	loop->counters[RSC_CTR_DEADLINES]++;
	if (!(s->dl_flags & RSC_DEADLINE_MOVE_ON))
		rsc__scope_raise(s, -ETIMEDOUT, "deadline", NULL);
	s->cancelling = true; /* also when its close was requested (a grace) */
	/* Its tracked I/O too, and its children's (rsc_scope_set_deadline(3)). */
	rsc__scope_cut(s, RSC__CUT_IO);
	rsc__scope_begin_unwind(s, NULL);
}

static void timer_done(struct rsc_loop *loop, struct rsc_op *op, int res,
		       unsigned cqe_flags)
{
	uint64_t now;

	(void)cqe_flags;
	if (op != loop->dl_timer)
		return; /* an update's own CQE */
	if (res == -ECANCELED)
		return; /* removed: the heap emptied */
	loop->dl_timer = NULL;
	now = now_ns();
	while (loop->dl_n && loop->dl_heap[0].key <= now) {
		struct rsc__scope *s = loop->dl_heap[0].s;

		if (s->dl_ns == loop->dl_heap[0].key) {
			expire(loop, s);
		} else {
			/* Moved later meanwhile: back in at its true deadline, even
			 * one due already, so that the batch expires in true order
			 * and an ancestor's earlier deadline ends this one (a child
			 * moved later once passed first, with an ETIMEDOUT of its own). */
			loop->dl_heap[0].key = s->dl_ns;
			sift_down(loop, 0);
		}
	}
	(void)arm(loop); /* on -EBUSY, dl_rearm makes the next turn try again */
}

int rsc_scope_set_deadline(struct rsc_scope *h, unsigned ms, unsigned flags)
{
	struct rsc__scope *s;
	struct rsc_loop *loop;
	uint64_t when, old_key = 0, old_ns;
	unsigned old_flags;
	bool had;
	int ret;

	RSC__SCOPE(s, h, "rsc_scope_set_deadline");
	RSC__CHECK_ARG(!(flags & ~RSC_DEADLINE_MOVE_ON),
		       "rsc_scope_set_deadline: unknown flags 0x%x", flags);
	loop = s->loop;
	if (s->state != RSC_SCOPE_OPEN || s == loop->root) {
		rsc__set_last_error("rsc_scope_set_deadline: scope '%s' is unwinding", s->name);
		return -ESHUTDOWN;
	}
	if (ms == 0) {
		if (s->dl_index != RSC__NO_DEADLINE)
			heap_remove(loop, s);
		rsc__deadline_idle(loop);
		return 0;
	}
	/* An unwind above has started: its deadlines ended with it (expire()
	 * would ignore this one), unless a grace on the way keeps them. */
	if (owned_by_an_unwind_above(s)) {
		rsc__set_last_error("rsc_scope_set_deadline: an unwind above scope '%s' has started: its deadlines ended with it",
				    s->name);
		return -ESHUTDOWN;
	}
	when = now_ns() + (uint64_t)ms * 1000000ULL;
	/* Kept to put back: a refused call leaves the deadline as it was. */
	had = s->dl_index != RSC__NO_DEADLINE;
	if (had)
		old_key = loop->dl_heap[s->dl_index].key;
	old_ns = s->dl_ns;
	old_flags = s->dl_flags;
	s->dl_flags = flags;
	s->dl_ns = when;
	if (s->dl_index == RSC__NO_DEADLINE) {
		if (loop->dl_n == loop->dl_cap) {
			unsigned cap = loop->dl_cap ? loop->dl_cap * 2 : 64;
			struct rsc__dl_slot *v = rsc__realloc(loop, loop->dl_heap, cap * sizeof(*v));

			if (!v) {
				s->dl_ns = old_ns; /* refused: left as it was */
				s->dl_flags = old_flags;
				return -ENOMEM;
			}
			loop->dl_heap = v;
			loop->dl_cap = cap;
			loop->counters[RSC_CTR_POOL_ALLOCS]++;
		}
		s->dl_index = loop->dl_n;
		loop->dl_heap[loop->dl_n++] = (struct rsc__dl_slot){ when, s };
		sift_up(loop, s->dl_index);
	} else if (when < loop->dl_heap[s->dl_index].key) {
		loop->dl_heap[s->dl_index].key = when;
		sift_up(loop, s->dl_index);
	} else {
		return 0; /* later: its key comes due first and puts it back (lazy) */
	}
	ret = arm(loop);
	if (ret < 0 && !loop->dl_timer) {
		/* No timer at all would let it pass unnoticed: refuse it. One set
		 * before stays (its timer comes back on the next turn, dl_rearm),
		 * as when an expiry finds no SQE: this one is the hook's to retry. */
		s->dl_ns = old_ns;
		s->dl_flags = old_flags;
		if (had) {
			loop->dl_heap[s->dl_index].key = old_key;
			sift_down(loop, s->dl_index);
		} else {
			heap_remove(loop, s);
		}
		/* -ENOMEM when the op could not be made: the heap, not the SQ. */
		rsc__set_last_error(ret == -ENOMEM ? "rsc_scope_set_deadline: no memory for the kernel timer's op" :
				    "rsc_scope_set_deadline: no SQE for the kernel timer (the SQ could not be flushed)");
		return ret;
	}
	return 0;
}

/* A scope leaves the heap when it unwinds, however that started. */
void rsc__deadline_remove(struct rsc__scope *s)
{
	heap_remove(s->loop, s);
	rsc__deadline_idle(s->loop);
}

/* No deadline left: remove the kernel timer, so it keeps nothing alive. */
void rsc__deadline_idle(struct rsc_loop *loop)
{
	struct io_uring_sqe *sqe;
	struct rsc_op *op;

	if (loop->dl_n || !loop->dl_timer)
		return;
	op = rsc__op_with_sqe(loop, &sqe);
	if (!op) {
		/* Tried again next turn: left to fire, a long one would keep the
		 * loop alive (RSC_RUN_DEFAULT waiting) until its time. */
		loop->dl_rearm = true;
		return;
	}
	io_uring_prep_timeout_remove(sqe, rsc__op_user_data(loop->dl_timer), 0);
	io_uring_sqe_set_data64(sqe, rsc__op_user_data(op));
	op->complete = timer_done;
	op->opcode = IORING_OP_TIMEOUT_REMOVE;
	loop->dl_timer = NULL; /* its -ECANCELED CQE is ignored */
}

void rsc__deadline_free(struct rsc_loop *loop)
{
	free(loop->dl_heap);
	loop->dl_heap = NULL;
	loop->dl_n = loop->dl_cap = 0;
}
