/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "internal.h"

/*
 * Linked acquire chains: dependent acquires as one IOSQE_IO_LINK chain in one
 * submit. The runtime picks each acquiring step's slot from its own range of
 * the direct table (direct.c) before anything is submitted, so a later step
 * names the descriptor before it exists (socket into slot 900, then connect
 * on fixed file 900). Every SQE of the chain is reserved at once
 * (rsc__get_sqes), before any is filled: a chain never crosses a submit.
 *
 * Each step is an entry of the scope, in step order, so the unwind releases
 * newest first. When step k fails, the kernel completes the steps after it
 * with -ECANCELED (io_uring_enter(2), IOSQE_IO_LINK): those acquired nothing
 * and are no error of their own; steps before k entered and are released by
 * the unwind that k's failure starts, exactly those, LIFO.
 */

enum step_kind { STEP_OPEN, STEP_SOCKET, STEP_CONNECT };

struct chain_step {
	enum step_kind kind;
	int dirfd, oflags;
	mode_t mode;
	int domain, type, protocol;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned timeout_ms;
	char *detail;
	unsigned dep; /* STEP_CONNECT: index of the socket step */
	unsigned config; /* STEP_SOCKET: RSC__CFG_SHUTDOWN (rsc_connect's flag) */
	/* STEP_CONNECT: a first send linked behind it (rsc_chain_send) */
	const void *send_buf;
	unsigned send_len;
	rsc_io_cb send_cb;
	void *send_data;
	struct rsc_entry **entryp;
};

/*
 * The caller's struct rsc_chain * is a handle (handle.c), not this object's
 * address: a chain used again after its submit or free is -ESTALE, never a
 * double free. Its handle comes first, as every handle's object.
 */
struct rsc__chain {
	uint64_t h;
	uint32_t slot;
	struct rsc_loop *loop;
	struct rsc__list node; /* loop->chains */
	struct rsc_scope *scope;
	struct chain_step steps[RSC_ENTRY_SQES_MAX];
	unsigned n, n_sqes;
	const void *site;
};

/* What each step's entry keeps until it is freed (its owned_arg). */
struct step_arg {
	int slot; /* runtime-range slot it fills, or -1 */
	struct rsc__peer peer; /* a connect step's target: its entry's peer (rsc_entry_peername) */
	struct __kernel_timespec ts;
};
_Static_assert(sizeof(struct step_arg) <= RSC__ROOM_SIZE, "struct step_arg outgrew an entry's room (rsc__room_get)");

/* One chain in flight, shared by its ops (op->io_data); freed with its last CQE. */
struct chain_run {
	unsigned n_ops, done;
	bool broken; /* a step failed on its own */
	bool step_failed[RSC_ENTRY_SQES_MAX];
	struct rsc_op held[RSC_ENTRY_SQES_MAX]; /* -ECANCELED set aside */
	int held_res[RSC_ENTRY_SQES_MAX];
	unsigned n_held;
	/* A connect step's first send (rsc_chain_send), by step */
	rsc_io_cb send_cb[RSC_ENTRY_SQES_MAX];
	void *send_buf[RSC_ENTRY_SQES_MAX], *send_data[RSC_ENTRY_SQES_MAX];
};

/* The chain @h names: -EINVAL (NULL, not a chain handle), -ESTALE (gone) or -ECHILD (fork). */
static int chain_from(struct rsc_chain *h, struct rsc__chain **cp, const char *fn)
{
	*cp = rsc__handle_lookup((uint64_t)(uintptr_t)h, RSC__K_CHAIN);
	return *cp ? rsc__check_process((*cp)->loop, fn) :
		     rsc__handle_error((uint64_t)(uintptr_t)h, RSC__K_CHAIN, fn);
}

#define RSC__CHAIN(var, h, fn)                                \
	do {                                                  \
		int ret_ = chain_from((h), &(var), (fn));     \
		if (ret_ < 0)                                 \
			return ret_;                          \
	} while (0)

int rsc_chain_new(struct rsc_scope *scope, struct rsc_chain **chainp)
{
	struct rsc__scope *s;
	struct rsc__chain *c;

	RSC__CHECK_ARG(chainp, "rsc_chain_new: chainp is NULL");
	*chainp = NULL;
	/* A handle never lies: a freed scope is -ESTALE here, not at the submit. */
	RSC__SCOPE(s, scope, "rsc_chain_new");
	c = rsc__calloc(s->loop, 1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->h = rsc__handle_new(s->loop, c, RSC__K_CHAIN, &c->slot);
	if (!c->h) {
		free(c);
		return -ENOMEM;
	}
	c->loop = s->loop;
	rsc__list_push_back(&s->loop->chains, &c->node);
	c->scope = scope;
	c->site = __builtin_return_address(0);
	*chainp = (struct rsc_chain *)(uintptr_t)c->h;
	return 0;
}

static void chain_destroy(struct rsc__chain *c)
{
	unsigned i;

	for (i = 0; i < c->n; i++)
		free(c->steps[i].detail);
	rsc__list_remove(&c->node);
	rsc__handle_free(c->loop, c->h, &c->slot);
	free(c);
}

void rsc_chain_free(struct rsc_chain *h)
{
	struct rsc__chain *c;

	/* NULL, submitted or freed before: nothing of the caller's is left to drop. */
	if (chain_from(h, &c, "rsc_chain_free") == 0)
		chain_destroy(c);
}

void rsc__chains_free(struct rsc_loop *loop)
{
	struct rsc__list *n;

	while ((n = rsc__list_first(&loop->chains)))
		chain_destroy(RSC__LIST_ITEM(n, struct rsc__chain, node));
}

static int add_step(struct rsc__chain *c, unsigned sqes, const char *detail,
		    struct rsc_entry **entryp, struct chain_step **stepp, const char *fn)
{
	struct chain_step *st;

	if (c->n_sqes + sqes > RSC_ENTRY_SQES_MAX) {
		rsc__set_last_error("%s: a chain holds at most %d SQEs", fn, RSC_ENTRY_SQES_MAX);
		return -E2BIG;
	}
	st = &c->steps[c->n];
	memset(st, 0, sizeof(*st));
	st->detail = rsc__strdup(c->loop, detail);
	if (!st->detail)
		return -ENOMEM;
	st->entryp = entryp;
	if (entryp)
		*entryp = NULL;
	c->n++;
	c->n_sqes += sqes;
	*stepp = st;
	return 0;
}

int rsc_chain_open(struct rsc_chain *h, int dirfd, const char *path, int oflags,
		   mode_t mode, struct rsc_entry **entryp)
{
	struct rsc__chain *c;
	struct chain_step *st;
	int ret;

	if (entryp)
		*entryp = NULL; /* also on a failure: as every call with one */
	RSC__CHAIN(c, h, "rsc_chain_open");
	RSC__CHECK_ARG(path, "rsc_chain_open: path is NULL");
	if (strnlen(path, PATH_MAX) >= PATH_MAX) {
		rsc__set_last_error("rsc_chain_open: path is %d bytes or longer", PATH_MAX);
		return -ENAMETOOLONG;
	}
	RSC__CHECK_ARG(!(oflags & O_CLOEXEC),
		       "rsc_chain_open: O_CLOEXEC with a slot (the kernel refuses it)");
	RSC__CHECK_ARG((oflags & O_ACCMODE) != O_ACCMODE, "rsc_chain_open: invalid open flags 0%o",
		       (unsigned)oflags);
	RSC__CHECK_ARG(!(mode & ~07777U), "rsc_chain_open: invalid mode 0%o", (unsigned)mode);
	ret = add_step(c, 1, path, entryp, &st, "rsc_chain_open");
	if (ret < 0)
		return ret;
	st->kind = STEP_OPEN;
	st->dirfd = dirfd;
	st->oflags = oflags;
	st->mode = mode;
	return 0;
}

int rsc_chain_socket(struct rsc_chain *h, int domain, int type, int protocol,
		     struct rsc_entry **entryp)
{
	struct rsc__chain *c;
	struct chain_step *st;
	int ret;

	if (entryp)
		*entryp = NULL; /* also on a failure: as every call with one */
	RSC__CHAIN(c, h, "rsc_chain_socket");
	RSC__CHECK_ARG(domain >= 0 && domain < AF_MAX, "rsc_chain_socket: invalid domain %d", domain);
	RSC__CHECK_ARG(!(type & ~(0xf | SOCK_NONBLOCK)) && (type & 0xf),
		       "rsc_chain_socket: invalid type 0x%x (no SOCK_CLOEXEC with a slot)",
		       (unsigned)type);
	RSC__CHECK_ARG(protocol >= 0, "rsc_chain_socket: invalid protocol %d", protocol);
	ret = add_step(c, 1, domain == AF_INET ? "AF_INET/socket" :
			     domain == AF_INET6 ? "AF_INET6/socket" :
			     domain == AF_UNIX ? "AF_UNIX/socket" : "socket",
		       entryp, &st, "rsc_chain_socket");
	if (ret < 0)
		return ret;
	st->kind = STEP_SOCKET;
	st->domain = domain;
	st->type = type;
	st->protocol = protocol;
	return 0;
}

int rsc_chain_connect(struct rsc_chain *h, const struct sockaddr *addr,
		      socklen_t addrlen, unsigned timeout_ms, struct rsc_entry **entryp)
{
	struct rsc__chain *c;
	struct chain_step *st;
	char detail[4 * sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	unsigned dep;
	int ret;

	if (entryp)
		*entryp = NULL; /* also on a failure: as every call with one */
	RSC__CHAIN(c, h, "rsc_chain_connect");
	/* The address rules of rsc_connect: a family it knows, a length that fits it. */
	ret = rsc__check_addr(addr, addrlen, true, "rsc_chain_connect");
	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(c->n && c->steps[c->n - 1].kind == STEP_SOCKET,
		       "rsc_chain_connect: the step before a connect must be rsc_chain_socket");
	dep = c->n - 1;
	/* Its entry stands for the connection, as rsc_connect's: named by its address. */
	rsc__describe_addr(addr, addrlen, detail, sizeof(detail));
	ret = add_step(c, timeout_ms ? 2 : 1, detail, entryp, &st, "rsc_chain_connect");
	if (ret < 0)
		return ret;
	st->kind = STEP_CONNECT;
	/* The socket step is taken over (and freed) when the connect enters: its
	 * handle is never handed out, so nobody can release it under the connect. */
	c->steps[dep].entryp = NULL;
	memcpy(&st->addr, addr, addrlen);
	st->addrlen = addrlen;
	st->timeout_ms = timeout_ms;
	st->dep = dep;
	return 0;
}

int rsc_chain_send(struct rsc_chain *h, const void *buf, unsigned len, rsc_io_cb cb,
		   void *data)
{
	struct rsc__chain *c;
	struct chain_step *st;

	RSC__CHAIN(c, h, "rsc_chain_send");
	RSC__CHECK_ARG(cb, "rsc_chain_send: cb is NULL (it hands the buffer back)");
	RSC__CHECK_ARG(buf || !len, "rsc_chain_send: buf is NULL");
	RSC__CHECK_ARG(c->n && c->steps[c->n - 1].kind == STEP_CONNECT &&
			       !c->steps[c->n - 1].send_cb,
		       "rsc_chain_send: a send follows a connect step, once");
	if (c->n_sqes + 1 > RSC_ENTRY_SQES_MAX) {
		rsc__set_last_error("rsc_chain_send: a chain holds at most %d SQEs",
				    RSC_ENTRY_SQES_MAX);
		return -E2BIG;
	}
	st = &c->steps[c->n - 1];
	st->send_buf = buf;
	st->send_len = len;
	st->send_cb = cb;
	st->send_data = data;
	c->n_sqes++;
	return 0;
}

static const struct rsc_manager step_managers[] = {
	[STEP_OPEN] = { sizeof(struct rsc_manager), 0, "file", rsc__enter_never, rsc__direct_exit },
	[STEP_SOCKET] = { sizeof(struct rsc_manager), 0, "socket", rsc__enter_never, rsc__direct_exit },
	[STEP_CONNECT] = { sizeof(struct rsc_manager), 0, "connect", rsc__enter_never, rsc__direct_exit },
};

/* An acquiring step's CQE is 0 for a chosen slot: the entry names the slot. */
static void step_entered(struct rsc_entry *h, int res, void *data)
{
	struct step_arg *a = data;
	struct rsc__entry *e;

	if (rsc__entry_from(h, &e, "chain") < 0)
		return;
	if (res < 0) {
		rsc__direct_unreserve(e->scope->loop, a->slot); /* nothing went in */
		return;
	}
	e->value = a->slot;
	rsc__direct_own(e->scope->loop, a->slot, e);
}

static bool earlier_failed(const struct chain_run *run, unsigned step)
{
	unsigned i;

	for (i = 0; i < step; i++)
		if (run->step_failed[i])
			return true;
	return false;
}

static void deliver(struct rsc_loop *loop, struct chain_run *run,
		    struct rsc_op *op, int res)
{
	unsigned step = op->accept_flags;

	/* Cancelled by the link because a step before it failed: not its own error. */
	if (res == -ECANCELED && (run->broken || earlier_failed(run, step)))
		op->entry->flags |= RSC__E_CANCEL_SENT;
	if (op->opcode == IORING_OP_SEND && run->send_cb[step]) {
		/* A first send: its buffer goes back with its result (-ECANCELED if
		 * a step before it failed), before its connect's enter settles. */
		if (rsc__cb_enter(loop))
			run->send_cb[step](rsc__eh(op->entry), rsc__real_errno(res, false),
					   run->send_buf[step], run->send_data[step]);
		rsc__cb_leave(loop);
	}
	/* The kernel answers 0 for a file put in the slot the SQE named; the
	 * acquired value, which ENTERED reports, is that slot (step_entered). */
	if (op->primary && res == 0 && op->opcode != IORING_OP_CONNECT)
		res = ((struct step_arg *)op->entry->owned_arg)->slot;
	rsc__entry_op_complete(loop, op, res, 0);
}

static void chain_op_complete(struct rsc_loop *loop, struct rsc_op *op, int res,
			      unsigned cqe_flags)
{
	struct chain_run *run = op->io_data;
	unsigned i;

	(void)cqe_flags;
	run->done++;
	/* As it arrives: a later step's CQE may be dispatched before this one,
	 * set aside below, and must know it failed. */
	if (op->primary && res < 0)
		run->step_failed[op->accept_flags] = true;
	/*
	 * A step cancelled by the link usually completes after the step that
	 * failed, but a failure found at submit (prep) cancels the head first:
	 * set it aside until the failure, or the chain's last CQE, is in.
	 */
	if (res == -ECANCELED && !run->broken && run->done < run->n_ops) {
		run->held[run->n_held] = *op;
		run->held_res[run->n_held++] = res;
		if (op->primary)
			op->entry->enter_op = NULL; /* done in the kernel: never cancel it */
		return;
	}
	if (res < 0 && res != -ECANCELED && op->opcode != IORING_OP_LINK_TIMEOUT)
		run->broken = true;
	deliver(loop, run, op, res);
	if (run->broken || run->done == run->n_ops) {
		for (i = 0; i < run->n_held; i++)
			deliver(loop, run, &run->held[i], run->held_res[i]);
		run->n_held = 0;
	}
	if (run->done == run->n_ops)
		free(run);
}

static void fill_step(struct rsc__chain *c, unsigned i, struct rsc__entry **es,
		      struct io_uring_sqe **sqe, unsigned nsqe)
{
	struct chain_step *st = &c->steps[i];
	struct rsc__entry *e = es[i];
	struct step_arg *a = e->owned_arg;

	switch (st->kind) {
	case STEP_OPEN:
		/* The path lives in the entry's detail: copied by the kernel at submit. */
		io_uring_prep_openat(sqe[0], st->dirfd, e->detail, st->oflags, st->mode);
		sqe[0]->file_index = (unsigned)a->slot + 1; /* by hand: liburing 2.3 */
		break;
	case STEP_SOCKET:
		io_uring_prep_socket(sqe[0], st->domain, st->type, st->protocol, 0);
		sqe[0]->file_index = (unsigned)a->slot + 1;
		break;
	case STEP_CONNECT: {
		struct step_arg *sa = es[st->dep]->owned_arg;

		unsigned k = 1;

		io_uring_prep_connect(sqe[0], sa->slot, (struct sockaddr *)&a->peer.addr, a->peer.len);
		/* The socket's slot, filled by the step before: resolved at issue. */
		sqe[0]->flags |= IOSQE_FIXED_FILE;
		if (st->timeout_ms) {
			sqe[0]->flags |= IOSQE_IO_LINK;
			io_uring_prep_link_timeout(sqe[k++], &a->ts, 0);
		}
		if (st->send_cb) {
			/* The chain goes on behind the deadline: send once connected. */
			sqe[k - 1]->flags |= IOSQE_IO_LINK;
			io_uring_prep_send(sqe[k], sa->slot, st->send_buf, st->send_len,
					   MSG_NOSIGNAL);
			sqe[k]->flags |= IOSQE_FIXED_FILE;
		}
		(void)nsqe;
		break;
	}
	}
}

/* The length getpeername(2) would give for a connect's target: the
 * family's own (an addrlen may be larger), a path's up to its NUL; an
 * abstract name is as long as it was given. */
static socklen_t peer_len(const struct sockaddr_storage *a, socklen_t len)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)a;
	const size_t base = offsetof(struct sockaddr_un, sun_path);

	switch (a->ss_family) {
	case AF_INET:
		return sizeof(struct sockaddr_in);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	case AF_UNIX:
		if (len > base && un->sun_path[0])
			return (socklen_t)(base + strnlen(un->sun_path, len - base) + 1);
		return len;
	default:
		return len;
	}
}

/*
 * Reserve every slot, entry, SQE and op first; only then fill and link, so
 * a chain either goes out whole or not at all.
 */
int rsc_chain_submit(struct rsc_chain *h)
{
	struct rsc__chain *c;
	struct io_uring_sqe *sqes[RSC_ENTRY_SQES_MAX];
	struct rsc__entry *es[RSC_ENTRY_SQES_MAX] = { 0 };
	struct rsc_op *ops[RSC_ENTRY_SQES_MAX] = { 0 };
	struct chain_run *run = NULL;
	struct rsc_loop *loop;
	struct rsc__scope *s;
	unsigned i, k, q;
	int ret;

	RSC__CHAIN(c, h, "rsc_chain_submit");
	ret = rsc__scope_check_push(c->scope, &s, "rsc_chain_submit");
	if (ret < 0)
		goto out;
	loop = s->loop;
	if (!c->n) {
		rsc__set_last_error("rsc_chain_submit: the chain has no step");
		ret = -EINVAL;
		goto out;
	}
	ret = rsc__direct_need(loop, "rsc_chain_submit");
	for (i = 0; ret == 0 && i < c->n; i++) {
		if (c->steps[i].kind == STEP_OPEN)
			ret = rsc__need_opcode(loop, IORING_OP_OPENAT, "rsc_chain_open");
		else if (c->steps[i].kind == STEP_SOCKET)
			ret = rsc__need_opcode(loop, IORING_OP_SOCKET, "rsc_chain_socket (Linux 5.19+)");
		else if (!(ret = rsc__need_opcode(loop, IORING_OP_CONNECT, "rsc_chain_connect")) &&
			 c->steps[i].timeout_ms)
			ret = rsc__need_opcode(loop, IORING_OP_LINK_TIMEOUT, "a connect deadline");
	}
	if (ret < 0)
		goto out;
	run = rsc__calloc(loop, 1, sizeof(*run));
	if (!run) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < c->n; i++) {
		struct chain_step *st = &c->steps[i];
		struct step_arg *a = rsc__room_get(loop, sizeof(*a));

		if (!a) {
			ret = -ENOMEM;
			goto undo;
		}
		a->slot = -1;
		if (st->kind != STEP_CONNECT) {
			ret = rsc__direct_reserve(loop, "rsc_chain_submit");
			if (ret < 0) {
				rsc__room_put(loop, a);
				goto undo;
			}
			a->slot = ret;
		} else {
			memcpy(&a->peer.addr, &st->addr, st->addrlen);
			a->peer.len = peer_len(&st->addr, st->addrlen);
			a->ts.tv_sec = st->timeout_ms / 1000;
			a->ts.tv_nsec = (long long)(st->timeout_ms % 1000) * 1000000;
		}
		es[i] = rsc__entry_new_entering(s, &step_managers[st->kind], a, RSC__CFG_ROOM,
						st->detail, c->site);
		if (!es[i]) {
			if (a->slot >= 0)
				rsc__direct_unreserve(loop, a->slot);
			rsc__room_put(loop, a);
			ret = -ENOMEM;
			goto undo;
		}
	}
	ret = rsc__get_sqes(loop, c->n_sqes, sqes);
	if (ret < 0) {
		ret = -EBUSY;
		goto undo;
	}
	for (q = 0; q < c->n_sqes; q++) {
		ops[q] = rsc__op_get(loop);
		if (!ops[q]) {
			while (q-- > 0)
				rsc__op_put(loop, ops[q]);
			rsc__nop_sqes(loop, sqes, c->n_sqes);
			ret = -ENOMEM;
			goto undo;
		}
	}
	/* Nothing can fail from here on. */
	run->n_ops = c->n_sqes;
	for (i = 0, q = 0; i < c->n; i++) {
		struct chain_step *st = &c->steps[i];
		struct rsc__entry *e = es[i];
		unsigned nsqe = 1 + (st->kind == STEP_CONNECT && st->timeout_ms) +
				(st->kind == STEP_CONNECT && st->send_cb);

		fill_step(c, i, es, &sqes[q], nsqe);
		for (k = 0; k < nsqe; k++, q++) {
			struct rsc_op *op = ops[q];

			op->entry = e;
			op->complete = chain_op_complete;
			op->primary = k == 0;
			op->io_data = run;
			op->accept_flags = i; /* its step */
			op->opcode = sqes[q]->opcode;
			if (op->opcode == IORING_OP_SEND) {
				run->send_cb[i] = st->send_cb;
				run->send_buf[i] = (void *)st->send_buf;
				run->send_data[i] = st->send_data;
			}
			io_uring_sqe_set_data64(sqes[q], rsc__op_user_data(op));
			e->phase_ops++;
		}
		/* Every step but the last links to the next: one chain, one submit. */
		if (i + 1 < c->n)
			sqes[q - 1]->flags |= IOSQE_IO_LINK;
		e->config |= st->config;
		e->enter_op = ops[q - nsqe];
		e->enter_opcode = ops[q - nsqe]->opcode;
		if (st->kind == STEP_CONNECT) {
			e->peer = &((struct step_arg *)e->owned_arg)->peer; /* a slot has no getpeername(2) */
			/* Entered, it takes the socket's slot over (entry.c take_over_dep). */
			e->dep = es[st->dep];
			e->dep->flags |= RSC__E_BUILT_ON; /* until this step settles */
			e->config |= RSC__CFG_TAKES_DEP;
		} else {
			e->fd_kind = RSC__FD_DIRECT;
			e->entered_hook = step_entered;
			e->entered_hook_data = e->owned_arg;
		}
		rsc__entry_link_entering(e);
		if (st->entryp)
			*st->entryp = rsc__eh(e);
	}
	chain_destroy(c);
	return 0;
undo:
	for (i = 0; i < c->n; i++) {
		struct step_arg *a;

		if (!es[i])
			continue;
		a = es[i]->owned_arg;
		if (a && a->slot >= 0)
			rsc__direct_unreserve(loop, a->slot);
		rsc__entry_put(loop, es[i]);
	}
	free(run);
out:
	chain_destroy(c);
	return ret;
}

/* rsc_connect(..., RSC_DIRECT): socket into a slot + connect, one submit. */
int rsc__direct_connect(struct rsc__scope *s, const struct sockaddr *addr,
			socklen_t addrlen, unsigned timeout_ms, unsigned flags,
			const void *site, struct rsc_entry **entryp)
{
	struct rsc_entry *conn = NULL;
	struct rsc_chain *h;
	struct rsc__chain *c;
	int ret;

	ret = rsc_chain_new(rsc__sh(s), &h);
	if (ret < 0)
		return ret;
	c = rsc__handle_lookup((uint64_t)(uintptr_t)h, RSC__K_CHAIN);
	c->site = site;
	ret = rsc_chain_socket(h, addr->sa_family, SOCK_STREAM, 0, NULL);
	if (ret == 0 && (flags & RSC_SHUTDOWN_ON_RELEASE)) /* taken over by the connect */
		c->steps[0].config = RSC__CFG_SHUTDOWN;
	if (ret == 0)
		ret = rsc_chain_connect(h, addr, addrlen, timeout_ms, &conn);
	if (ret < 0) {
		chain_destroy(c);
		return ret;
	}
	ret = rsc_chain_submit(h);
	if (ret == 0 && entryp)
		*entryp = conn;
	return ret;
}
