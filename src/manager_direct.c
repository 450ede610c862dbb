/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

/*
 * Direct managers: open, socket and accept into a slot of the loop's table
 * (direct.c) instead of the process descriptor table, pipes through the ring,
 * and the install that turns a slot into a descriptor. Released by
 * close_direct. Edges, each from the kernel's io_uring/ sources:
 * - liburing 2.3's io_uring_prep_openat_direct()/socket_direct() store
 *   file_index + 1, so IORING_FILE_INDEX_ALLOC (~0U) wraps to 0 and silently
 *   opens a normal descriptor: sqe->file_index is set here by hand, to
 *   IORING_FILE_INDEX_ALLOC (the kernel picks; the CQE is the slot) or to
 *   slot + 1 (that slot; the CQE is 0).
 * - O_CLOEXEC / SOCK_CLOEXEC with a slot is -EINVAL (openclose.c
 *   io_openat_prep, net.c io_socket_prep): a slot is never inherited anyway.
 * - close_direct names its slot by file_index: never IOSQE_FIXED_FILE on the
 *   close itself (openclose.c io_close_prep refuses it).
 */

/* The CQE of a kernel-allocated acquire is the slot: the table records it. */
static void slot_entered(struct rsc_entry *h, int res, void *data)
{
	struct rsc__entry *e = data; /* the runtime's own hook: no handle to decode */

	(void)h;
	rsc__direct_pending(e->scope->loop, -1);
	if (res >= 0)
		rsc__direct_own(e->scope->loop, res, e);
}

/* The release of every direct entry (chain steps too): close_direct, fsync first if asked. */
int rsc__direct_exit(struct rsc_entry *h, const struct rsc_error *pending, void *arg)
{
	struct io_uring_sqe *sqe[3];
	struct rsc__entry *e;
	unsigned n, i = 0;
	int ret;

	(void)pending;
	(void)arg;
	RSC__ENTRY(e, h, "close_direct");
	if (e->fd_kind == RSC__FD_PROCESS) /* installed: a descriptor now */
		return rsc__fd_exit(h, pending, e); /* it takes the entry itself */
	if (e->has_value2 && (e->value < 0) != (e->value2 < 0)) {
		/* One end's slot was lost (direct.c's slot_lost): close the other. */
		ret = rsc_entry_get_sqes(h, 1, sqe);
		if (ret < 0)
			return ret;
		io_uring_prep_close_direct(sqe[0], (unsigned)(e->value < 0 ? e->value2 : e->value));
		return 0;
	}
	/* Its slot lost: nothing to close, and the release says what a close
	 * would have found (-EBADF, as for a descriptor closed behind its back). */
	if (e->value < 0 && (e->flags & RSC__E_SLOT_LOST))
		return -EBADF;
	if (e->value < 0)
		return 0; /* handed over to another loop (handover.c): nothing to close */
	if (e->has_value2) {
		ret = rsc_entry_get_sqes(h, 2, sqe);
		if (ret < 0)
			return ret;
		/* The write end first: a reader sees EOF, never a half-closed pair. */
		io_uring_prep_close_direct(sqe[0], (unsigned)e->value2);
		io_uring_prep_close_direct(sqe[1], (unsigned)e->value);
		return 0;
	}
	/* The chain rsc__fd_exit builds, on the slot: hard links, so a failed
	 * shutdown or fsync does not cancel the close_direct. */
	n = 1 + !!(e->config & RSC__CFG_FSYNC) + !!(e->config & RSC__CFG_SHUTDOWN);
	ret = rsc_entry_get_sqes(h, n, sqe);
	if (ret < 0)
		return ret;
	if (e->config & RSC__CFG_SHUTDOWN) {
		/* RSC_SHUTDOWN_ON_RELEASE: a FIN for the peer, as for a descriptor. */
		io_uring_prep_shutdown(sqe[i], e->value, SHUT_RDWR);
		sqe[i++]->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
	}
	if (e->config & RSC__CFG_FSYNC) {
		io_uring_prep_fsync(sqe[i], e->value, 0);
		sqe[i++]->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
	}
	io_uring_prep_close_direct(sqe[i], (unsigned)e->value);
	return 0;
}

struct open_args {
	int dirfd;
	int oflags;
	mode_t mode;
};

static int open_enter(struct rsc_entry *h, void *arg)
{
	const struct open_args *a = arg;
	struct io_uring_sqe *sqe;
	struct rsc__entry *e;
	int ret;

	RSC__ENTRY(e, h, "openat");
	ret = rsc_entry_get_sqes(h, 1, &sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_openat(sqe, a->dirfd, e->detail, a->oflags, a->mode);
	sqe->file_index = IORING_FILE_INDEX_ALLOC; /* not liburing 2.3's prep: see above */
	return 0;
}

static const struct rsc_manager file_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "file",
	.enter = open_enter,
	.exit = rsc__direct_exit,
};

/* After a push: the entry names a slot, recorded when its CQE comes. */
static void mark_direct(struct rsc__entry *e)
{
	e->fd_kind = RSC__FD_DIRECT;
	e->entered_hook = slot_entered;
	e->entered_hook_data = e;
	rsc__direct_pending(e->scope->loop, 1);
}

int rsc__direct_open(struct rsc__scope *s, int dirfd, const char *path, int oflags,
		     mode_t mode, unsigned flags, const void *site,
		     struct rsc__entry **entryp)
{
	unsigned config = RSC__CFG_BUILTIN;
	struct open_args a;
	int ret;

	*entryp = NULL;
	RSC__CHECK_ARG(!(oflags & O_CLOEXEC),
		       "rsc_open: O_CLOEXEC with RSC_DIRECT (a slot is never inherited; the kernel refuses it)");
	ret = rsc__direct_need(s->loop, "rsc_open");
	if (ret < 0)
		return ret;
	ret = rsc__direct_check_room(s->loop, 1, "rsc_open");
	if (ret < 0)
		return ret;
	if (flags & RSC_FSYNC_ON_RELEASE)
		config |= RSC__CFG_FSYNC | RSC__CFG_ORDERED;
	a.dirfd = dirfd;
	a.oflags = oflags;
	a.mode = mode;
	ret = rsc__push(s, &file_manager, &a, config, path, site, entryp);
	if (ret == 0)
		mark_direct(*entryp);
	return ret;
}

struct socket_args {
	int domain, type, protocol;
};

static int socket_enter(struct rsc_entry *h, void *arg)
{
	const struct socket_args *a = arg;
	struct io_uring_sqe *sqe;
	int ret;

	ret = rsc_entry_get_sqes(h, 1, &sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_socket(sqe, a->domain, a->type, a->protocol, 0);
	sqe->file_index = IORING_FILE_INDEX_ALLOC; /* Linux 5.19, net.c io_socket */
	return 0;
}

static const struct rsc_manager socket_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "socket",
	.enter = socket_enter,
	.exit = rsc__direct_exit,
};

int rsc__direct_socket(struct rsc__scope *s, int domain, int type, int protocol,
		       unsigned flags, const void *site, struct rsc__entry **entryp)
{
	struct socket_args a = { domain, type, protocol };
	unsigned config = RSC__CFG_BUILTIN;
	char detail[40];
	int ret;

	*entryp = NULL;
	RSC__CHECK_ARG(!(type & SOCK_CLOEXEC),
		       "rsc_socket: SOCK_CLOEXEC with RSC_DIRECT (the kernel refuses it for a slot)");
	ret = rsc__direct_need(s->loop, "rsc_socket");
	if (ret < 0)
		return ret;
	ret = rsc__direct_check_room(s->loop, 1, "rsc_socket");
	if (ret < 0)
		return ret;
	ret = rsc__need_shutdown(s->loop, flags);
	if (ret < 0)
		return ret;
	if (flags & RSC_SHUTDOWN_ON_RELEASE)
		config |= RSC__CFG_SHUTDOWN;
	rsc__socket_detail(detail, domain, type);
	ret = rsc__push(s, &socket_manager, &a, config, detail, site, entryp);
	if (ret == 0)
		mark_direct(*entryp);
	return ret;
}

static const struct rsc_manager conn_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "conn",
	.enter = rsc__enter_never,
	.exit = rsc__direct_exit,
};

/* A direct accept's CQE gave us @slot (kernel-allocated): entered at once. */
struct rsc__entry *rsc__adopt_slot(struct rsc__scope *s, int slot, const char *detail)
{
	struct rsc__entry *e = rsc__entry_new_entered(s, &conn_manager, 0, slot,
						      RSC__FD_DIRECT, detail);

	if (e)
		rsc__direct_own(s->loop, slot, e);
	return e;
}

/*
 * accept(2) into a kernel-allocated slot (Linux 5.19; multishot direct only
 * with IORING_FILE_INDEX_ALLOC, net.c io_accept_prep). No SOCK_CLOEXEC with
 * a slot.
 */
void rsc__direct_prep_accept(struct rsc__entry *l, struct io_uring_sqe *sqe, struct rsc__peer *peer,
			     bool multishot)
{
	if (multishot)
		io_uring_prep_multishot_accept(sqe, l->value, NULL, NULL, 0);
	else if (peer) /* the kernel writes the peer's address here (net.c io_accept) */
		io_uring_prep_accept(sqe, l->value, (struct sockaddr *)&peer->addr, &peer->len, 0);
	else
		io_uring_prep_accept(sqe, l->value, NULL, NULL, 0);
	sqe->file_index = IORING_FILE_INDEX_ALLOC;
}

int rsc_entry_slot(const struct rsc_entry *h)
{
	struct rsc__entry *e;

	RSC__ENTRY(e, h, "rsc_entry_slot");
	if (__builtin_expect(e->flags & RSC__E_SLOT_LOST, 0) && e->value < 0) {
		rsc__set_last_error("rsc_entry_slot: entry '%s' lost its slot: it was emptied behind the runtime's back and given to another entry",
				    e->mgr->name);
		return -EBADF;
	}
	switch (e->state) {
	case RSC_ENTERING:
		return -EAGAIN;
	case RSC_ENTERED:
	case RSC_EXITING:
		if (e->fd_kind != RSC__FD_DIRECT) {
			rsc__set_last_error("rsc_entry_slot: entry '%s' holds a process descriptor (rsc_entry_fd)",
					    e->mgr->name);
			return -EBADFD;
		}
		return e->value;
	case RSC_FAILED:
		return e->value;
	default:
		return -EBADF;
	}
}

/*
 * Pipes through the ring: IORING_OP_PIPE (Linux 6.16, io_uring/openclose.c
 * io_pipe) writes both ends (descriptors, or with a file_index slots) into
 * an array read at issue, so the array lives with the entry. No pipe2(2)
 * fallback: a kernel without the opcode gets -EOPNOTSUPP naming it.
 */
struct pipe_args {
	int fds[2];
	unsigned pipe_flags;
	bool direct;
};
_Static_assert(sizeof(struct pipe_args) <= RSC__ROOM_SIZE, "struct pipe_args outgrew an entry's room (rsc__room_get)");

static int pipe_enter(struct rsc_entry *h, void *arg)
{
	struct pipe_args *a = arg;
	struct io_uring_sqe *sqe;
	int ret;

	ret = rsc_entry_get_sqes(h, 1, &sqe);
	if (ret < 0)
		return ret;
	/* By hand, as the kernel reads it (io_pipe_prep): liburing 2.3 has no prep. */
	sqe->opcode = RSC__OP_PIPE;
	sqe->addr = (unsigned long)a->fds;
	sqe->rw_flags = (int)a->pipe_flags; /* sqe->pipe_flags in newer headers */
	if (a->direct)
		sqe->file_index = IORING_FILE_INDEX_ALLOC;
	return 0;
}

/* A normal pipe's release: both closes, the write end first. */
static int pipe_exit(struct rsc_entry *h, const struct rsc_error *pending, void *arg)
{
	struct io_uring_sqe *sqe[2];
	struct rsc__entry *e;
	int ret;

	(void)pending;
	(void)arg;
	RSC__ENTRY(e, h, "close");
	if (e->fd_kind == RSC__FD_DIRECT)
		return rsc__direct_exit(h, pending, arg);
	ret = rsc_entry_get_sqes(h, 2, sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_close(sqe[0], e->value2);
	io_uring_prep_close(sqe[1], e->value);
	return 0;
}

static const struct rsc_manager pipe_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "pipe",
	.enter = pipe_enter,
	.exit = pipe_exit,
};

/* A failed pipe: the slots it had reserved are free again. */
static void pipe_entered(struct rsc_entry *h, int res, void *data)
{
	struct pipe_args *a = data;
	struct rsc__entry *e;

	if (res >= 0 || rsc__entry_from(h, &e, "pipe") < 0)
		return;
	if (a->direct)
		rsc__direct_pending(e->scope->loop, -2);
}

/*
 * The CQE is 0; the ends are in the array: the entry holds both from now on,
 * its value the read end before anyone hears it entered (the trace, rsc_entry_fd).
 */
void rsc__pipe_settle(struct rsc__entry *e)
{
	struct pipe_args *a = e->owned_arg;
	struct rsc_loop *loop = e->scope->loop;

	if (a->direct)
		rsc__direct_pending(loop, -2);
	e->value = a->fds[0];
	e->value2 = a->fds[1];
	e->has_value2 = true;
	if (a->direct) {
		rsc__direct_own(loop, a->fds[0], e);
		rsc__direct_own(loop, a->fds[1], e);
		return;
	}
	/* Process descriptors: both in the ledger (settled in rsc__direct_released). */
	rsc__ledger_set(a->fds[0], e->h);
	rsc__ledger_set(a->fds[1], e->h);
	e->flags |= RSC__E_LEDGER | RSC__E_LEDGER2;
}

/*
 * A process pipe's CQE: both ends go in the ledger, or neither is kept
 * (ledger.c). -ENOMEM: no page for one of them; both ends are closed by the
 * runtime and the pipe fails, as an open does.
 */
int rsc__pipe_reserve(struct rsc_loop *loop, struct rsc__entry *e)
{
	struct pipe_args *a = e->owned_arg;

	if (e->mgr != &pipe_manager || a->direct ||
	    (rsc__ledger_reserve(loop, a->fds[0]) == 0 && rsc__ledger_reserve(loop, a->fds[1]) == 0))
		return 0;
	rsc__close_orphan(loop, a->fds[1], false);
	rsc__close_orphan(loop, a->fds[0], false);
	return -ENOMEM;
}

int rsc_pipe(struct rsc_scope *h, unsigned flags, struct rsc_entry **entryp)
{
	struct rsc__scope *s;
	struct rsc__entry *e;
	struct pipe_args *a;
	int ret;

	if (entryp)
		*entryp = NULL;
	ret = rsc__scope_check_push(h, &s, "rsc_pipe");
	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(!(flags & ~(RSC_NO_CLOEXEC | RSC_DIRECT)),
		       "rsc_pipe: unknown flags 0x%x", flags);
	ret = rsc__need_opcode(s->loop, RSC__OP_PIPE, "rsc_pipe (Linux 6.16; no pipe2 fallback)");
	if (ret < 0)
		return ret;
	if (flags & RSC_DIRECT) {
		ret = rsc__direct_need(s->loop, "rsc_pipe");
		if (ret < 0)
			return ret;
		ret = rsc__direct_check_room(s->loop, 2, "rsc_pipe");
		if (ret < 0)
			return ret;
	}
	a = rsc__room_get(s->loop, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->direct = flags & RSC_DIRECT;
	a->pipe_flags = (a->direct || (flags & RSC_NO_CLOEXEC)) ? 0 : O_CLOEXEC;
	ret = rsc__push(s, &pipe_manager, a, RSC__CFG_PIPE, a->direct ? "direct" : "",
			__builtin_return_address(0), &e);
	if (ret < 0) {
		rsc__room_put(s->loop, a);
		return ret;
	}
	rsc__entry_keep_room(e, a);
	e->entered_hook = pipe_entered;
	e->entered_hook_data = a;
	if (a->direct) {
		e->fd_kind = RSC__FD_DIRECT;
		rsc__direct_pending(s->loop, 2);
	}
	if (entryp)
		*entryp = rsc__eh(e);
	return 0;
}

int rsc_pipe_ends(const struct rsc_entry *h, int ends[2])
{
	struct rsc__entry *e;

	RSC__ENTRY(e, h, "rsc_pipe_ends");
	RSC__CHECK_ARG(ends, "rsc_pipe_ends: ends is NULL");
	if (e->mgr != &pipe_manager) {
		rsc__set_last_error("rsc_pipe_ends: entry '%s' is not a pipe", e->mgr->name);
		return -EINVAL;
	}
	if (e->state != RSC_ENTERED && e->state != RSC_EXITING)
		return e->state == RSC_ENTERING ? -EAGAIN :
		       e->state == RSC_FAILED ? e->value : -EBADF;
	ends[0] = e->value;
	ends[1] = e->value2;
	return 0;
}

/*
 * Install: a slot becomes a process descriptor (IORING_OP_FIXED_FD_INSTALL,
 * Linux 6.8, io_uring/openclose.c io_install_fixed_fd: the one op that
 * requires IOSQE_FIXED_FILE, and O_CLOEXEC unless
 * IORING_FIXED_FD_NO_CLOEXEC), linked to the close_direct of the slot. Both
 * are tracked ops of the entry, so a release waits for them. The entry owns
 * the slot until the install's CQE, and the descriptor from that CQE on:
 * never nobody, never two entries. If the install fails, the link cancels the
 * close and the entry keeps its slot.
 */
/* An op on @e's I/O list, so that its release waits for it. */
static struct rsc_op *direct_track(struct rsc__entry *e, struct io_uring_sqe *sqe)
{
	struct rsc_op *op = rsc__op_get(e->scope->loop);

	if (op)
		rsc__io_track(e, op, sqe, true);
	return op;
}

static void install_done(struct rsc_loop *loop, struct rsc_op *op, int res,
			 unsigned cqe_flags)
{
	struct rsc__slot_move *r = op->io_data;
	struct rsc__entry *e = op->entry;

	(void)cqe_flags;
	rsc__io_unlink(op);
	r->res = rsc__real_errno(res, false); /* a move is never cancelled (io.c cancellable) */
	if (r->res >= 0) {
		/* The descriptor's owner from this CQE on; the slot's close follows. */
		e->fd_kind = RSC__FD_PROCESS;
		e->value = r->res;
		e->config |= RSC__CFG_FD;
		e->flags |= RSC__E_LEDGER;
		rsc__ledger_spare_set(loop, r->res, e->h); /* no memory needed now */
	} else {
		rsc__ledger_spare_drop(loop);
	}
	if (r->res >= 0) {
		if (loop->audit_level == RSC_AUDIT_FULL)
			rsc__audit_record(loop, e);
	}
	rsc__io_settled(e->h);
}

static void moved_closed(struct rsc_loop *loop, struct rsc_op *op, int res,
			 unsigned cqe_flags)
{
	struct rsc__slot_move *r = op->io_data;
	struct rsc__entry *e = op->entry;
	uint64_t h = e->h;

	(void)cqe_flags;
	rsc__io_unlink(op);
	if (r->res >= 0)
		rsc__direct_drop(loop, r->slot, res);
	if (r->cb) {
		if (rsc__cb_enter(loop))
			r->cb(rsc__eh(e), r->res, r->data);
		rsc__cb_leave(loop);
	}
	rsc__room_put(loop, r);
	rsc__io_settled(h);
}

/*
 * Install and hand-over: -EBADF unless @e holds exactly one slot, -EBUSY
 * while a move of it is in flight: until its close_direct, the slot still
 * holds the file, and a second move would give it to a second owner.
 */
bool rsc__slot_move_in_flight(const struct rsc__entry *e)
{
	const struct rsc_op *op;

	RSC__LIST_FOR_EACH(op, &e->io_ops, io_node)
		if (op->complete == moved_closed)
			return true;
	return false;
}

int rsc__slot_move_check(struct rsc__entry *e, const char *fn)
{
	if (e->fd_kind != RSC__FD_DIRECT || e->has_value2) {
		rsc__set_last_error("%s: entry '%s' %s", fn, e->mgr->name,
				    e->has_value2 ? "is a pipe (two slots)" : "holds no slot");
		return -EBADF;
	}
	if (rsc__slot_move_in_flight(e)) {
		rsc__set_last_error("%s: entry '%s' has a hand-over or install of its slot in flight",
				    fn, e->mgr->name);
		return -EBUSY;
	}
	return 0;
}

/*
 * Start moving @e's slot on: two SQEs reserved together (the linked pair
 * never crosses a submit), both tracked ops of @e. The second is the slot's
 * close_direct, prepared here; *@first is the moving op's, tracked as
 * @opcode completing through @done, for the caller to fill in by hand and
 * link (its user_data is set: no prep that clears it). 0, -ENOMEM or
 * -EBUSY, with nothing left behind.
 */
int rsc__slot_move_start(struct rsc__entry *e, uint8_t opcode, rsc__op_fn done,
			 rsc_entry_cb cb, void *data, struct io_uring_sqe **first,
			 struct rsc__slot_move **movep)
{
	struct rsc_loop *loop = e->scope->loop;
	struct io_uring_sqe *sqe[2];
	struct rsc__slot_move *r;
	struct rsc_op *op[2];

	r = rsc__room_get(loop, sizeof(*r)); /* pooled: no malloc per move */
	if (!r)
		return -ENOMEM;
	r->cb = cb;
	r->data = data;
	r->slot = e->value;
	if (rsc__get_sqes(loop, 2, sqe) < 0) {
		rsc__room_put(loop, r);
		return -EBUSY;
	}
	op[0] = direct_track(e, sqe[0]);
	op[1] = op[0] ? direct_track(e, sqe[1]) : NULL;
	if (!op[1]) {
		if (op[0]) {
			rsc__io_unlink(op[0]);
			rsc__op_put(loop, op[0]);
		}
		rsc__nop_sqes(loop, sqe, 2);
		rsc__room_put(loop, r);
		return -ENOMEM;
	}
	op[0]->opcode = opcode;
	op[0]->complete = done;
	op[0]->io_data = r;
	io_uring_prep_close_direct(sqe[1], (unsigned)e->value);
	io_uring_sqe_set_data64(sqe[1], rsc__op_user_data(op[1]));
	op[1]->opcode = IORING_OP_CLOSE;
	op[1]->complete = moved_closed;
	op[1]->io_data = r;
	*first = sqe[0];
	if (movep)
		*movep = r;
	return 0;
}

int rsc_entry_install(struct rsc_entry *h, unsigned flags, rsc_entry_cb cb, void *data)
{
	struct io_uring_sqe *sqe;
	struct rsc__entry *e;
	int ret = rsc__io_check_tracked(h, &e, true, "rsc_entry_install"); /* as rsc_read */

	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(!(flags & ~RSC_NO_CLOEXEC), "rsc_entry_install: unknown flags 0x%x", flags);
	ret = rsc__slot_move_check(e, "rsc_entry_install");
	if (ret < 0)
		return ret;
	ret = rsc__need_opcode(e->scope->loop, RSC__OP_FIXED_FD_INSTALL,
			       "rsc_entry_install (Linux 6.8)");
	if (ret < 0)
		return ret;
	/* Room in the ledger for whatever number the kernel gives (ledger.c). */
	ret = rsc__ledger_spare_take(e->scope->loop);
	if (ret < 0) {
		rsc__set_last_error("rsc_entry_install: no memory to record the descriptor in the ownership ledger");
		return ret;
	}
	ret = rsc__slot_move_start(e, RSC__OP_FIXED_FD_INSTALL, install_done, cb, data, &sqe, NULL);
	if (ret < 0) {
		rsc__ledger_spare_drop(e->scope->loop);
		return ret;
	}
	sqe->opcode = RSC__OP_FIXED_FD_INSTALL;
	sqe->fd = e->value;
	sqe->flags = IOSQE_FIXED_FILE | IOSQE_IO_LINK;
	sqe->rw_flags = (flags & RSC_NO_CLOEXEC) ? (int)RSC__FIXED_FD_NO_CLOEXEC : 0;
	return 0;
}
