/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define BACKOFF_FIRST_MS 10U
#define BACKOFF_MAX_MS 1000U

static const struct rsc_manager conn_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "conn",
	.enter = rsc__enter_never,
	.exit = rsc__fd_exit,
};

static void orphan_closed(struct rsc_loop *loop, struct rsc_op *op, int res,
			  unsigned cqe_flags)
{
	assert(loop->n_orphans > 0);
	loop->n_orphans--;
	(void)op;
	(void)res;
	(void)cqe_flags;
}

/* No scope may own it any more: release it through the ring all the same. */
void rsc__close_orphan(struct rsc_loop *loop, int fd, bool direct)
{
	struct io_uring_sqe *sqe;
	struct rsc_op *op;

	if (direct) {
		rsc__direct_close_orphan(loop, fd); /* a slot: close_direct */
		return;
	}
	op = rsc__op_with_sqe(loop, &sqe);

	if (op) {
		io_uring_prep_close(sqe, fd);
		op->complete = orphan_closed;
		op->opcode = IORING_OP_CLOSE;
		loop->n_orphans++; /* the full audit's verdicts wait for it */
		return;
	}
	close(fd); /* the ring is unusable: never leak the descriptor */
}

static void call_accept_cb(struct rsc_op *op, int res, struct rsc__scope *cs,
			   struct rsc__entry *conn)
{
	struct rsc__entry *l = op->entry;
	struct rsc_loop *loop = l->scope->loop;

	if (rsc__cb_enter(loop))
		op->accept_cb(rsc__eh(l), res, rsc__sh(cs), rsc__eh(conn), op->io_data);
	rsc__cb_leave(loop);
}

/* A connection arrived: a child scope of the listener's owns it. Else it is
 * closed by the runtime, and the caller hears why: -ECANCELED (its scope is
 * closing) or -ENOMEM (no memory to own it: RSC_CTR_NOMEM_DROPS counts it). */
static int deliver(struct rsc_op *op, int fd)
{
	struct rsc__entry *l = op->entry;
	struct rsc__scope *parent = l->scope, *cs;
	struct rsc_loop *loop = parent->loop;
	bool direct = op->accept_flags & RSC_DIRECT;
	struct rsc_scope *csh;
	struct rsc__entry *conn;
	char detail[32];

	if (rsc__scope_unwind_owns(parent)) {
		loop->counters[RSC_CTR_LATE_ACQUIRES]++;
		rsc__close_orphan(loop, fd, direct);
		return -ECANCELED;
	}
	/* Its owner goes in the ledger, or it is not kept (ledger.c). */
	if ((!direct && rsc__ledger_reserve(loop, fd) < 0) ||
	    rsc_scope_open(loop, rsc__sh(parent), "conn", &csh) < 0)
		goto no_memory;
	(void)rsc__scope_from(csh, &cs, "accept");
	if (direct) {
		/* A slot of the loop's table (manager_direct.c), not a descriptor. */
		rsc__detail_num(detail, "slot ", (unsigned)fd, "");
		conn = rsc__adopt_slot(cs, fd, detail);
		if (conn && op->peer) {
			/* The address the kernel wrote: the only one a slot has.
			 * Its room goes back to the pool with the entry. */
			rsc__entry_keep_room(conn, op->peer);
			conn->peer = op->peer;
			op->peer = NULL;
		}
	} else {
		rsc__detail_num(detail, "fd ", (unsigned)fd, "");
		conn = rsc__adopt(cs, &conn_manager, fd, detail);
	}
	if (conn && (op->accept_flags & RSC_SHUTDOWN_ON_RELEASE))
		conn->config |= RSC__CFG_SHUTDOWN;
	if (!conn) {
		(void)rsc_scope_close(csh, NULL, NULL);
		goto no_memory;
	}
	call_accept_cb(op, fd, cs, conn);
	return 0;
no_memory:
	loop->counters[RSC_CTR_NOMEM_DROPS]++;
	rsc__close_orphan(loop, fd, direct);
	return -ENOMEM;
}

/* The accept ends rather than goes on: its listener is going, or its scope
 * (or one above) is closing, gracefully too, and so acquires nothing more. */
static bool stopping(const struct rsc__entry *l)
{
	return l->state != RSC_ENTERED || (l->flags & (RSC__E_DRAINING | RSC__E_RELEASE_REQ)) ||
	       rsc__scope_unwind_owns(l->scope);
}

static bool shortage(int res)
{
	return res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM;
}

static int arm(struct rsc__entry *l, rsc_accept_cb cb, void *data,
	       unsigned flags, unsigned backoff_ms);

/* An accept's last call: its errno is never a shortage's, which promises a
 * re-arm (rsc_accept(3)); one that could not re-arm (-ENOMEM) says -EBUSY. */
static void call_last(struct rsc_op *op, int err)
{
	call_accept_cb(op, shortage(err) ? -EBUSY : err, NULL, NULL);
}

/* A single-shot direct accept's address room, unless a connection took it. */
static void drop_peer(struct rsc_loop *loop, struct rsc_op *op)
{
	rsc__room_put(loop, op->peer);
	op->peer = NULL;
}

/* Its last CQE: the listener stops tracking it (the op is freed after). */
static void unlink_accept(struct rsc_loop *loop, struct rsc_op *op)
{
	rsc__io_unlink(op);
	if (op->accept_flags & RSC_DIRECT)
		rsc__direct_armed(loop, -1);
}

static void backoff_done(struct rsc_loop *loop, struct rsc_op *op, int res,
			 unsigned cqe_flags)
{
	struct rsc__entry *l = op->entry;
	uint64_t lh = l->h;

	(void)cqe_flags;
	unlink_accept(loop, op);
	if (res == -ETIME && !stopping(l) && !op->io_stopped) {
		int ret = arm(l, op->accept_cb, op->io_data, op->accept_flags, op->backoff_ms);

		if (ret < 0)
			call_last(op, ret);
	} else
		call_accept_cb(op, -ECANCELED, NULL, NULL);
	rsc__io_settled(lh);
}

/* After a shortage: wait (doubling), then accept again, tracked meanwhile. */
static void rearm_later(struct rsc_op *done)
{
	struct rsc__entry *l = done->entry;
	unsigned ms = done->backoff_ms ? done->backoff_ms * 2 : BACKOFF_FIRST_MS;
	struct io_uring_sqe *sqe;
	struct rsc_op *op;
	int ret;

	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	if (stopping(l) || done->io_stopped) {
		/* Its callback, just told of the shortage, may have closed the scope
		 * or stopped the accept (rsc_entry_cancel_io). */
		call_accept_cb(done, -ECANCELED, NULL, NULL);
		return;
	}
	ret = rsc__io_op(l, &sqe, &op);
	if (ret < 0) {
		call_last(done, ret); /* no SQE (-EBUSY) or op for the timer: the end */
		return;
	}
	rsc__prep_timeout_ms(op, sqe, ms, backoff_done);
	if (done->accept_flags & RSC_DIRECT) /* it will acquire into the table again */
		rsc__direct_armed(l->scope->loop, 1);
	op->accept_cb = done->accept_cb;
	op->io_data = done->io_data;
	op->accept_flags = done->accept_flags;
	op->backoff_ms = ms;
}

static void accept_done(struct rsc_loop *loop, struct rsc_op *op, int res,
			unsigned cqe_flags)
{
	struct rsc__entry *l = op->entry;
	uint64_t lh = l->h;
	bool last = !(cqe_flags & IORING_CQE_F_MORE);
	bool stop = stopping(l) || op->io_stopped;
	unsigned stops;
	int ret;

	if (res >= 0 && !(op->accept_flags & RSC_ACCEPT_MULTISHOT)) {
		/* A single-shot accept's connection is its last call: the listener
		 * stops tracking it first, so that the callback may detach the
		 * listener, as after any final call (rsc_entry_detach(3)). */
		unlink_accept(loop, op);
		ret = deliver(op, res); /* closed by the runtime: the end, all the same */
		drop_peer(loop, op);
		if (ret < 0)
			call_accept_cb(op, ret, NULL, NULL);
		rsc__io_settled(lh);
		return;
	}
	if (res >= 0) {
		ret = deliver(op, res);
		/* Its callback may have stopped it (a release of the listener, a
		 * close, rsc_entry_cancel_io): a last CQE then ends it, not a re-arm. */
		stop = stop || stopping(l) || op->io_stopped;
		if (ret == -ENOMEM && !stop && !last) {
			/* A shortage the caller hears; the multishot goes on. */
			call_accept_cb(op, -ENOMEM, NULL, NULL);
			return;
		}
		/* Closed by the runtime, or the end of a stopping multishot: a
		 * started accept always ends with a callback of its own; one
		 * closed for memory is a shortage (re-armed after a while). */
		if (last && (ret < 0 || stop))
			res = ret == -ENOMEM && !stop ? -ENOMEM : -ECANCELED;
	}
	if (!last)
		return;
	unlink_accept(loop, op);
	drop_peer(loop, op);
	res = rsc__real_errno(res, false);
	if (res == -ECANCELED || (res < 0 && stop)) {
		call_accept_cb(op, -ECANCELED, NULL, NULL);
	} else if (res < 0) {
		stops = l->io_stops;
		call_accept_cb(op, res, NULL, NULL);
		/* Unless the callback detached the listener: that error ended it.
		 * One that stopped it (rsc_entry_cancel_io, with nothing in flight
		 * then) hears its last call, -ECANCELED, as after a graceful close. */
		if (shortage(res) && (op->accept_flags & RSC_ACCEPT_MULTISHOT) &&
		    rsc__entry_live(lh)) {
			op->io_stopped = l->io_stops != stops;
			rearm_later(op);
		}
	} else if ((op->accept_flags & RSC_ACCEPT_MULTISHOT) && !stop && !op->io_stopped) {
		/* The kernel ended the multishot without an error: keep going, unless
		 * the connection's callback (deliver, above) has stopped it since. */
		ret = arm(l, op->accept_cb, op->io_data, op->accept_flags, 0);
		if (ret < 0)
			call_last(op, ret);
	}
	rsc__io_settled(lh);
}

/* An accept in flight: its op, or the timer of its backoff after a shortage. */
bool rsc__op_is_accept(const struct rsc_op *op)
{
	/* An inbox acquires slots as a listener acquires connections. */
	return op->complete == accept_done || op->complete == backoff_done ||
	       rsc__op_is_inbox_keepalive(op);
}

static int arm(struct rsc__entry *l, rsc_accept_cb cb, void *data,
	       unsigned flags, unsigned backoff_ms)
{
	struct rsc__peer *peer = NULL;
	struct io_uring_sqe *sqe;
	struct rsc_op *op;
	int ret;

	/* A slot has no getpeername(2): a single-shot accept keeps the address
	 * the kernel gives (a multishot's one buffer would be overwritten by
	 * the next connection before its CQE is read). */
	if ((flags & RSC_DIRECT) && !(flags & RSC_ACCEPT_MULTISHOT)) {
		/* From the loop's pool: no malloc per connection (pool.c). */
		peer = rsc__peer_get(l->scope->loop);
		if (!peer)
			return -ENOMEM;
	}
	ret = rsc__io_op(l, &sqe, &op);
	if (ret < 0) {
		rsc__room_put(l->scope->loop, peer);
		return ret;
	}
	op->peer = peer;
	if (flags & RSC_DIRECT) { /* into a slot (manager_direct.c) */
		rsc__direct_prep_accept(l, sqe, peer, flags & RSC_ACCEPT_MULTISHOT);
		/* The table may not change under it (rsc_loop_set_direct: -EBUSY). */
		rsc__direct_armed(l->scope->loop, 1);
	} else if (flags & RSC_ACCEPT_MULTISHOT)
		io_uring_prep_multishot_accept(sqe, l->value, NULL, NULL, SOCK_CLOEXEC);
	else
		io_uring_prep_accept(sqe, l->value, NULL, NULL, SOCK_CLOEXEC);
	if (l->fd_kind == RSC__FD_DIRECT) /* a direct listener is named by its slot */
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, rsc__op_user_data(op));
	op->opcode = IORING_OP_ACCEPT;
	rsc__inject_fault(l->scope->loop, sqe, op);
	op->complete = accept_done;
	op->accept_cb = cb;
	op->io_data = data;
	op->accept_flags = flags;
	op->backoff_ms = backoff_ms; /* kept while a shortage lasts */
	return 0;
}

/*
 * IORING_ACCEPT_MULTISHOT came in 5.19, with IORING_OP_SOCKET, which the
 * probe sees: an older kernel would fail the armed accept with -EINVAL.
 */
static bool multishot_supported(struct rsc_loop *loop)
{
	return rsc__opcode_supported(loop, IORING_OP_SOCKET) &&
	       !rsc__fault_missing(&loop->faults, RSC__MISSING_ACCEPT_MULTISHOT);
}

int rsc_accept(struct rsc_entry *h, unsigned flags, rsc_accept_cb cb, void *data)
{
	struct rsc__entry *l;
	/* A defer's or a timer's value is no descriptor: accept(2) on it would
	 * take descriptor 0's connections (rsc_read(3) refuses it likewise). */
	int ret = rsc__io_check_tracked(h, &l, true, "rsc_accept");

	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(cb, "rsc_accept: cb is NULL");
	RSC__CHECK_ARG(!(flags & ~(RSC_ACCEPT_MULTISHOT | RSC_SHUTDOWN_ON_RELEASE | RSC_DIRECT)),
		       "rsc_accept: unknown flags 0x%x", flags);
	if (rsc__scope_unwind_owns(l->scope)) {
		/* Stop acquiring: a scope closing (gracefully too) accepts no more. */
		rsc__set_last_error("rsc_accept: scope '%s' is closing", l->scope->name);
		return -ESHUTDOWN;
	}
	ret = rsc__need_opcode(l->scope->loop, IORING_OP_ACCEPT, "rsc_accept");
	if (ret < 0)
		return ret;
	ret = rsc__need_shutdown(l->scope->loop, flags);
	if (ret < 0)
		return ret;
	if ((flags & RSC_ACCEPT_MULTISHOT) && !multishot_supported(l->scope->loop)) {
		rsc__set_last_error("rsc_accept: the kernel lacks IORING_ACCEPT_MULTISHOT (Linux 5.19); accept without RSC_ACCEPT_MULTISHOT");
		return -EOPNOTSUPP;
	}
	if (flags & RSC_DIRECT) {
		ret = rsc__direct_need(l->scope->loop, "rsc_accept");
		if (ret < 0)
			return ret;
	}
	return arm(l, cb, data, flags, 0);
}
