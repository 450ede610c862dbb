/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "internal.h"

/* @e has tracked I/O in flight from now on (+1), or none any more (-1). */
static void io_entry_idle(struct rsc__entry *e, int delta)
{
	struct rsc_loop *loop = e->scope->loop;

	loop->n_io_entries += (unsigned)delta;
	if (e->config & RSC__CFG_ADOPTED)
		loop->n_adopted_io += (unsigned)delta;
	if (delta > 0)
		rsc__list_push_back(&loop->io_entries, &e->io_entry_node);
	else
		rsc__list_remove(&e->io_entry_node);
}

/* The op's final CQE came: the entry stops tracking it. */
void rsc__io_unlink(struct rsc_op *op)
{
	struct rsc__entry *e = op->entry;

	rsc__list_remove(&op->io_node);
	assert(e->n_io > 0);
	if (--e->n_io == 0)
		io_entry_idle(e, -1);
	if (!rsc__list_empty(&e->scope->loop->graceful_list))
		rsc__graceful_op_done(e, op->grace_seq);
}

static void io_complete(struct rsc_loop *loop, struct rsc_op *op, int res,
			unsigned cqe_flags)
{
	struct rsc__entry *e = op->entry;
	uint64_t h = e->h;

	(void)cqe_flags;
	rsc__io_unlink(op);
	/* The final CQE: the buffer goes back to the caller with the result. */
	if (rsc__cb_enter(loop))
		op->io_cb(rsc__eh(e), rsc__real_errno(res, e->flags & RSC__E_IO_CANCELLED),
			  op->io_buf, op->io_data);
	rsc__cb_leave(loop);
	rsc__io_settled(h);
}

/* After an op's final CQE: a release waiting for the last one goes on now.
 * Its callback may have detached the entry (its I/O was over): then nothing waits. */
void rsc__io_settled(uint64_t h)
{
	struct rsc__entry *e = rsc__entry_live(h);

	if (e && e->n_io == 0 && (e->flags & RSC__E_DRAINING))
		rsc__entry_start_exit(e);
}

/* Checks every tracked op shares: a live, entered entry of an open scope. */
int rsc__io_check(struct rsc_entry *h, struct rsc__entry **ep, const char *fn)
{
	struct rsc__entry *e;

	RSC__ENTRY(e, h, fn);
	*ep = e;
	if (rsc__check_not_in_hook(e->scope->loop, fn) < 0)
		return -EDEADLK;
	if (e->state != RSC_ENTERED || (e->flags & RSC__E_RELEASE_REQ) || e->value < 0) {
		rsc__set_last_error("%s: entry '%s' is not entered, or is being released",
				    fn, e->mgr->name);
		return -EBADF;
	}
	/* A connect's socket (its handle only the trace shows): the connect
	 * takes it over and frees its entry, which must then track nothing. */
	if (e->flags & (RSC__E_HAS_DEPS | RSC__E_BUILT_ON)) {
		rsc__set_last_error("%s: entry '%s' has an enter that builds on it in flight",
				    fn, e->mgr->name);
		return -EBUSY;
	}
	/* A scope in its grace lets I/O start: a reply to a request received. */
	if (e->scope->state != RSC_SCOPE_OPEN ||
	    (e->scope->closer != RSC__CLOSER_NONE && !e->scope->grace)) {
		rsc__set_last_error("%s: scope '%s' is closing", fn, e->scope->name);
		return -ESHUTDOWN;
	}
	return 0;
}

/* rsc__io_check, for tracked I/O (rsc_read(3) and its kin): an op on a
 * descriptor needs an entry that holds one (not a defer's or a timer's 0),
 * and none starts in a scope whose unwind is owed already by an ancestor's
 * close or failure, save during a grace (it lets the work under way go on). */
int rsc__io_check_tracked(struct rsc_entry *h, struct rsc__entry **ep, bool uses_fd,
			  const char *fn)
{
	int ret = rsc__io_check(h, ep, fn);
	struct rsc__entry *e = *ep;

	if (ret < 0)
		return ret;
	if (uses_fd && (e->config & RSC__CFG_NO_FD)) {
		rsc__set_last_error("%s: entry '%s' holds no descriptor", fn, e->mgr->name);
		return -EBADF;
	}
	/* The cached walk first: the exact one only when some scope above is closing. */
	if (rsc__scope_unwind_owns(e->scope) && rsc__scope_unwind_owns_past_grace(e->scope)) {
		rsc__set_last_error("%s: a scope above '%s' is closing", fn, e->scope->name);
		return -ESHUTDOWN;
	}
	return 0;
}

/* A new op tracked by @e, with its SQE (to fill in), or NULL (-errno in *sqep). */
int rsc__io_op(struct rsc__entry *e, struct io_uring_sqe **sqep, struct rsc_op **opp)
{
	struct rsc_loop *loop = e->scope->loop;
	struct rsc_op *op;
	int ret = rsc__get_sqes(loop, 1, sqep); /* -EBUSY: the SQ is full and cannot be flushed */

	if (ret < 0)
		return ret;
	op = rsc__op_get(loop);
	if (!op) {
		rsc__nop_sqes(loop, sqep, 1);
		rsc__set_last_error("no memory for another op of the loop");
		return -ENOMEM;
	}
	rsc__io_track(e, op, *sqep, false);
	*opp = op;
	return 0;
}

/* @op, routed by @sqe, joins @e's tracked ops: a release waits for it.
 * @slot_move: half of an install or hand-over, which rsc_entry_cancel_io()
 * leaves alone. */
void rsc__io_track(struct rsc__entry *e, struct rsc_op *op, struct io_uring_sqe *sqe,
		   bool slot_move)
{
	io_uring_sqe_set_data64(sqe, rsc__op_user_data(op));
	op->entry = e;
	op->io_seq = e->scope->loop->io_seq++;
	op->io_stopped = false;
	op->slot_move = slot_move;
	rsc__list_push_front(&e->io_ops, &op->io_node);
	if (e->n_io++ == 0)
		io_entry_idle(e, 1);
}

static int io_start(struct rsc_entry *h, unsigned opcode, void *buf,
		    unsigned len, long long off, int flags, rsc_io_cb cb,
		    void *data, const char *fn)
{
	struct io_uring_sqe *sqe;
	struct rsc__entry *e;
	struct rsc_op *op;
	int ret = rsc__io_check_tracked(h, &e, true, fn);

	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(cb, "%s: cb is NULL (it hands the buffer back)", fn);
	/* A shutdown's @len is its @how: it has no buffer. */
	RSC__CHECK_ARG(buf || !len || opcode == IORING_OP_SHUTDOWN, "%s: buf is NULL", fn);
	if (opcode == IORING_OP_SHUTDOWN && rsc__need_opcode(e->scope->loop, opcode, fn) < 0)
		return -EOPNOTSUPP;
	/* Beside a multishot receive, which of the two gets which bytes is chance. */
	if (opcode == IORING_OP_RECV && !rsc__list_empty(&e->io_ops) &&
	    rsc__recv_multishot_active(e)) {
		rsc__set_last_error("%s: entry '%s' has a multishot receive (rsc_recv_multishot)",
				    fn, e->mgr->name);
		return -EBUSY;
	}
	ret = rsc__io_op(e, &sqe, &op);
	if (ret < 0)
		return ret;
	/* A pipe (rsc_pipe) holds both ends: a write goes to its write end. */
	io_uring_prep_rw((int)opcode, sqe,
			 opcode == IORING_OP_WRITE && e->has_value2 ? e->value2 : e->value,
			 buf, len, (__u64)off);
	sqe->msg_flags = (__u32)flags;
	/* A direct entry's value is a slot of the loop's table (direct.c). */
	if (e->fd_kind == RSC__FD_DIRECT)
		sqe->flags |= IOSQE_FIXED_FILE;
	op->opcode = (uint8_t)opcode;
	op->complete = io_complete;
	op->io_cb = cb;
	op->io_buf = buf;
	op->io_data = data;
	return 0;
}

int rsc_read(struct rsc_entry *e, void *buf, unsigned len, long long off,
	     rsc_io_cb cb, void *data)
{
	RSC__CHECK_ARG(off >= -1, "rsc_read: offset %lld", off);
	return io_start(e, IORING_OP_READ, buf, len, off, 0, cb, data, "rsc_read");
}

int rsc_write(struct rsc_entry *e, const void *buf, unsigned len, long long off,
	      rsc_io_cb cb, void *data)
{
	RSC__CHECK_ARG(off >= -1, "rsc_write: offset %lld", off);
	/* The kernel only reads from it; the callback hands it back as given. */
	return io_start(e, IORING_OP_WRITE, (void *)buf, len, off, 0, cb, data,
			"rsc_write");
}

int rsc_recv(struct rsc_entry *h, void *buf, unsigned len, int flags,
	     rsc_io_cb cb, void *data)
{
	RSC__CHECK_ARG(flags >= 0, "rsc_recv: flags 0x%x", (unsigned)flags);
	return io_start(h, IORING_OP_RECV, buf, len, 0, flags, cb, data, "rsc_recv");
}

int rsc_send(struct rsc_entry *e, const void *buf, unsigned len, int flags,
	     rsc_io_cb cb, void *data)
{
	RSC__CHECK_ARG(flags >= 0, "rsc_send: flags 0x%x", (unsigned)flags);
	/* MSG_NOSIGNAL: a peer gone must be an -EPIPE, not a SIGPIPE. */
	return io_start(e, IORING_OP_SEND, (void *)buf, len, 0, flags | MSG_NOSIGNAL,
			cb, data, "rsc_send");
}

/* A half-close through the ring: a proxy passes the client's FIN on and
 * still relays the reply, on a descriptor or a direct slot. */
int rsc_shutdown(struct rsc_entry *h, int how, rsc_io_cb cb, void *data)
{
	RSC__CHECK_ARG(how == SHUT_RD || how == SHUT_WR || how == SHUT_RDWR,
		       "rsc_shutdown: how is %d, not SHUT_RD, SHUT_WR or SHUT_RDWR", how);
	return io_start(h, IORING_OP_SHUTDOWN, NULL, (unsigned)how, 0, 0, cb, data, "rsc_shutdown");
}

int rsc_entry_io_count(const struct rsc_entry *h)
{
	struct rsc__entry *e;

	RSC__ENTRY(e, h, "rsc_entry_io_count");
	return (int)e->n_io;
}

/*
 * The caller ends its own ops and keeps the entry: an idle connection's
 * receive, before it is detached or handed over, or a multishot receive no
 * longer wanted. Each op's callback hears -ECANCELED (or its result, if it
 * won the race), and a multishot is not armed again. Ops a release or a
 * deadline cancels already, or an earlier call did, are not sent a second
 * cancel. The halves of an install or hand-over are a move of ownership, no
 * I/O of the caller's: a cancel could only undo one of them (two owners), so
 * they are neither cancelled nor counted; nor is an inbox's keep-alive.
 */
/* Not the caller's I/O: half of a slot's move, or an inbox's keep-alive
 * (handover.c), whose end would leave its loop idle and deaf. */
static bool callers_io(const struct rsc_op *op)
{
	return !op->slot_move && !rsc__op_is_inbox_keepalive(op);
}

int rsc_entry_cancel_io(struct rsc_entry *h)
{
	struct rsc__entry *e;
	struct rsc_op *op;
	unsigned n = 0, fresh = 0;

	RSC__ENTRY(e, h, "rsc_entry_cancel_io");
	if (rsc__check_not_in_hook(e->scope->loop, "rsc_entry_cancel_io") < 0)
		return -EDEADLK;
	e->io_stops++;
	RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
		if (callers_io(op)) {
			n++;
			fresh += !op->io_stopped;
		}
	if (fresh && !(e->flags & RSC__E_IO_CANCELLED)) {
		if (n == e->n_io)
			rsc__io_cancel_all(e);
		else
			RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
				if (callers_io(op))
					(void)rsc__submit_cancel(e->scope->loop, op);
	}
	RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
		op->io_stopped = callers_io(op);
	return (int)n;
}

/* Ops keyed by the entry's descriptor (not timers): one cancel can take them all. */
static bool on_fd(const struct rsc_op *op)
{
	return op->opcode != IORING_OP_TIMEOUT;
}

/*
 * What a release or a deadline cancels: not half of a slot's move (install,
 * hand-over). Ownership moves only by that explicit call and exactly once: a
 * cancel could stop the MSG_RING only where the kernel still held it (punted
 * to io-wq), and the slot would stay with the sender as chance decides. The
 * move completes by itself, promptly; the release waits for it as for any
 * tracked op, then finds the entry holding nothing (or its slot, if the move
 * failed on its own).
 */
static bool cancellable(const struct rsc_op *op)
{
	return !op->slot_move;
}

/* More entries with I/O than this: op by op, rather than a stat of each. */
#define SHARED_FILE_SCAN_MAX 64

/*
 * The kernel matches a cancel by descriptor by open file, not by number: it
 * would also end the ops of another entry holding a dup(2) of @e's
 * descriptor (bug 101), or the application's on its own ring. Only an
 * adopted descriptor can be such a dup, or the original of one: none may
 * share @e's file if @e is not adopted and no adopted entry has I/O in
 * flight, or if @e is adopted and no other entry has. Else the file's
 * identity tells (a pipe's two ends share one: op by op then too).
 */
static bool cancel_fd_is_ours(const struct rsc__entry *e)
{
	const struct rsc_loop *loop = e->scope->loop;
	bool adopted = e->config & RSC__CFG_ADOPTED;
	const struct rsc__entry *x;
	struct stat a, b;

	if (loop->shared)
		return false;
	if (adopted ? loop->n_io_entries == 1 : loop->n_adopted_io == 0)
		return true;
	if (e->fd_kind != RSC__FD_PROCESS || loop->n_io_entries > SHARED_FILE_SCAN_MAX ||
	    fstat(e->value, &a) < 0)
		return false;
	RSC__LIST_FOR_EACH(x, &loop->io_entries, io_entry_node) {
		if (x == e || (!adopted && !(x->config & RSC__CFG_ADOPTED)))
			continue;
		if (x->fd_kind != RSC__FD_PROCESS || fstat(x->value, &b) < 0 ||
		    (a.st_dev == b.st_dev && a.st_ino == b.st_ino))
			return false;
	}
	return true;
}

/*
 * A release with I/O in flight: one IORING_ASYNC_CANCEL_FD|ALL SQE for
 * every op on the descriptor where the kernel has it (Linux 5.19, as
 * IORING_OP_SOCKET, which the probe can see), timers by their exact
 * user_data; op by op on older kernels, and where another entry may hold
 * the same open file (cancel_fd_is_ours).
 */
void rsc__io_cancel_all(struct rsc__entry *e)
{
	struct rsc_loop *loop = e->scope->loop;
	struct rsc_op *op, *by_fd;
	unsigned n_fd = 0;
	bool moving = false;

	RSC__LIST_FOR_EACH(op, &e->io_ops, io_node) {
		n_fd += on_fd(op) && cancellable(op);
		moving |= !cancellable(op);
	}
	/* A pipe's ops are on two descriptors: one cancel by fd would miss some.
	 * An install names the slot too (IOSQE_FIXED_FILE): one would take it. */
	if (n_fd > 1 && !moving && e->value >= 0 && !e->has_value2 && cancel_fd_is_ours(e) &&
	    rsc__opcode_supported(loop, IORING_OP_SOCKET) &&
	    !rsc__fault_missing(&loop->faults, RSC__MISSING_CANCEL_FD) &&
	    (by_fd = rsc__submit_cancel_fd(loop, e->value, e->fd_kind == RSC__FD_DIRECT))) {
		by_fd->cancel_entry = e->h;
		by_fd->cancel_expect = n_fd;
		by_fd->io_seq = loop->io_seq; /* ops started from here on are not its to cancel */
		RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
			if (!on_fd(op))
				rsc__submit_cancel(loop, op);
		return;
	}
	RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
		if (cancellable(op))
			rsc__submit_cancel(loop, op);
}

/*
 * The one cancel found fewer ops than were in flight. Some may have ended
 * on their own; others the kernel held where no cancel looks (task work
 * after their poll fired) and may wait there again. Those still in flight
 * get a cancel each, which is sent again while it misses (loop.c): a
 * release never waits on an op nobody cancelled.
 */
void rsc__io_cancel_fd_short(struct rsc_loop *loop, const struct rsc_op *cancel, int res)
{
	struct rsc__entry *e;
	struct rsc_op *op;

	if (res >= 0 && (unsigned)res >= cancel->cancel_expect)
		return;
	e = rsc__entry_live(cancel->cancel_entry);
	if (!e)
		return; /* every op ended, and the entry with them */
	RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
		if (on_fd(op) && cancellable(op) && (int32_t)(op->io_seq - cancel->io_seq) < 0)
			rsc__submit_cancel(loop, op); /* not one started after the cancel was sent */
}

int rsc_timeout(struct rsc_entry *h, unsigned ms, rsc_io_cb cb, void *data)
{
	struct io_uring_sqe *sqe;
	struct rsc__entry *e;
	struct rsc_op *op;
	int ret = rsc__io_check_tracked(h, &e, false, "rsc_timeout");

	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(cb, "rsc_timeout: cb is NULL");
	ret = rsc__io_op(e, &sqe, &op);
	if (ret < 0)
		return ret;
	rsc__prep_timeout_ms(op, sqe, ms, io_complete);
	op->io_cb = cb;
	op->io_buf = NULL;
	op->io_data = data;
	return 0;
}

struct timer_args {
	unsigned ms;
	rsc_io_cb cb;
	void *data;
};
_Static_assert(sizeof(struct timer_args) <= RSC__ROOM_SIZE, "struct timer_args outgrew an entry's room (rsc__room_get)");

/* Entered at once (a NOP): the timer starts when the entry has entered. */
static int timer_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
}

static int timer_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	(void)e;
	(void)p;
	(void)arg;
	return 0; /* its timeout was removed by the drain before this runs */
}

static const struct rsc_manager timer_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "timer",
	.enter = timer_enter,
	.exit = timer_exit,
};

/* The runtime's own hook: a user's rsc_entry_on_enter() is kept beside it. */
static void timer_entered(struct rsc_entry *h, int res, void *data)
{
	struct timer_args *t = data;
	struct rsc__entry *e;
	int ret;

	if (res < 0) {
		t->cb(h, res, NULL, t->data);
		return;
	}
	/* Entered after its scope's close (a graceful one too: its grace is for
	 * work under way) or its own release was asked for: it never starts. */
	if (rsc__entry_from(h, &e, "rsc_timer") == 0 &&
	    ((e->flags & RSC__E_RELEASE_REQ) || rsc__scope_unwind_owns(e->scope))) {
		t->cb(h, -ECANCELED, NULL, t->data);
		return;
	}
	ret = rsc_timeout(h, t->ms, t->cb, t->data);
	/* A scope closing (or a release) before the timer could start: cancelled.
	 * No memory for its op is said as such, not as a full SQ. */
	if (ret < 0)
		t->cb(h, ret == -ESHUTDOWN || ret == -EBADF ? -ECANCELED :
			 ret == -ENOMEM ? -ENOMEM : -EBUSY, NULL, t->data);
}

int rsc_timer(struct rsc_scope *h, unsigned ms, rsc_io_cb cb, void *data,
	      struct rsc_entry **entryp)
{
	struct timer_args *t;
	struct rsc__scope *s;
	struct rsc__entry *e;
	int ret;

	if (entryp)
		*entryp = NULL;
	ret = rsc__scope_check_push(h, &s, "rsc_timer");
	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(cb, "rsc_timer: cb is NULL");
	t = rsc__room_get(s->loop, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->ms = ms;
	t->cb = cb;
	t->data = data;
	ret = rsc__push(s, &timer_manager, NULL, RSC__CFG_NO_FD, NULL, __builtin_return_address(0), &e);
	if (ret < 0) {
		rsc__room_put(s->loop, t);
		return ret;
	}
	rsc__entry_keep_room(e, t);
	e->entered_hook = timer_entered;
	e->entered_hook_data = t;
	if (entryp)
		*entryp = rsc__eh(e);
	return 0;
}
