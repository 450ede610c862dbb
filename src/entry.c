/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static void enter_done(struct rsc__entry *e);
static void exit_done(struct rsc__entry *e);
static void close_next(struct rsc__entry *e);
static void queue_retry(struct rsc__entry *e);
static void exit_done_cold(struct rsc__entry *e);

/*
 * The one way an entry changes state (STYLE: states are data, every
 * transition asserted): ENTERING -> ENTERED -> EXITING -> EXITED, or
 * ENTERING -> FAILED. Adopted and deferred entries start at ENTERED.
 */
static void set_state(struct rsc__entry *e, int to)
{
	assert((e->state == RSC_ENTERING && (to == RSC_ENTERED || to == RSC_FAILED)) ||
	       (e->state == RSC_ENTERED && to == RSC_EXITING) ||
	       (e->state == RSC_EXITING && to == RSC_EXITED));
	e->state = to;
}

/*
 * Every failed SQE of a release is an error of its own (DESIGN 2.5), kept by
 * its place in the reservation: unlinked SQEs complete in any order, and they
 * are reported in SQE order (rsc_entry_get_sqes(3)). The release's result is
 * the hook's own -errno (set before any CQE), else the first in SQE order.
 */
static RSC__COLD __attribute__((noinline)) void
note_exit_failure(struct rsc__entry *e, const struct rsc_op *op, int res)
{
	e->exit_failed |= (uint8_t)(1U << op->sqe_idx);
	e->exit_sqe_res[op->sqe_idx] = res;
	e->exit_sqe_opcode[op->sqe_idx] = op->opcode;
	if (e->exit_res == 0 ||
	    (e->exit_opcode != RSC__OPCODE_HOOK && op->sqe_idx < e->exit_sqe_idx)) {
		e->exit_res = res;
		e->exit_opcode = op->opcode;
		e->exit_sqe_idx = op->sqe_idx;
	}
}

unsigned rsc__entry_exit_errors(const struct rsc__entry *e, int res[], const char *op[])
{
	unsigned i, n = 0;

	if (e->exit_res < 0 && e->exit_opcode == RSC__OPCODE_HOOK) {
		res[n] = e->exit_res; /* the hook's own: it came before any CQE */
		op[n++] = rsc__opcode_name(RSC__OPCODE_HOOK);
	}
	for (i = 0; i < RSC_ENTRY_SQES_MAX; i++)
		if (e->exit_failed & (1U << i)) {
			res[n] = e->exit_sqe_res[i];
			op[n++] = rsc__opcode_name(e->exit_sqe_opcode[i]);
		}
	return n;
}

/* The number of @e's that @closes names: its value, or a pipe's write end. */
RSC__INLINE int closed_number(const struct rsc__entry *e, uint8_t closes)
{
	return closes == RSC__CLOSES_VALUE2 ? e->value2 : e->value;
}

/* The number of @e's that @closes names is no longer @e's, if it still was. */
RSC__INLINE void let_go_of(struct rsc__entry *e, uint8_t closes)
{
	unsigned flag = rsc__ledger_flag_of(closes);

	if (__builtin_expect(e->flags & flag, 0)) {
		rsc__ledger_forget(closed_number(e, closes), e->h);
		e->flags &= ~flag;
	}
}

static void entry_op_complete(struct rsc_loop *loop, struct rsc_op *op, int res,
			      unsigned cqe_flags);

/* The CQEs after a first one flagged IORING_CQE_F_MORE: the op completes at
 * the last of them, with the first one's result (entry_op_complete). */
static RSC__COLD void entry_op_last_cqe(struct rsc_loop *loop, struct rsc_op *op, int res,
					unsigned cqe_flags)
{
	(void)res;
	if (cqe_flags & IORING_CQE_F_MORE)
		return;
	op->complete = entry_op_complete;
	entry_op_complete(loop, op, op->more_res, cqe_flags);
}

RSC__HOT static void entry_op_complete(struct rsc_loop *loop, struct rsc_op *op,
			      int res, unsigned cqe_flags)
{
	struct rsc__entry *e = op->entry;

	(void)loop;
	/* One SQE, one completion (rsc_push(3)): a request that posts more (a
	 * zero-copy send, then its notification once the buffer is let go of)
	 * completes at its last CQE, with its first CQE's result. */
	if (__builtin_expect(cqe_flags & IORING_CQE_F_MORE, 0)) {
		op->more_res = res;
		op->complete = entry_op_last_cqe;
		return;
	}
	res = rsc__real_errno(res, e->flags & RSC__E_CANCEL_SENT);
	if (op->enter_listed) {
		rsc__list_remove(&op->io_node);
		op->enter_listed = false;
	}
	if (e->phase == RSC__PHASE_ENTER) {
		/* Ownership comes only from the acquire's own CQE. */
		if (op->primary) {
			/* An io-wq worker blocked in the acquire (an AF_UNIX connect
			 * waiting for backlog room) is ended by our cancel with a
			 * signal: -EINTR is the cancel's doing, not an error. */
			e->value = res == -EINTR && (e->flags & RSC__E_CANCEL_SENT) ? -ECANCELED : res;
			e->enter_op = NULL;
		} else if (op->opcode == IORING_OP_LINK_TIMEOUT &&
			   (res == -ETIME || res == -EALREADY || res == -ENOENT)) {
			/* It fired: -ETIME, it cancelled the primary (now -ECANCELED);
			 * -EALREADY, the primary blocks in an io-wq worker, which it
			 * interrupted (-EINTR); -ENOENT, it found the primary nowhere
			 * (in a DEFER_TASKRUN ring's task work) and left it be, so a
			 * cancel of ours goes after it (sent again until it finds it).
			 * Any way, the primary's end is a timeout. */
			e->flags |= RSC__E_TIMED_OUT;
			if (res == -ENOENT)
				rsc__entry_cancel(e);
		}
		if (res < 0 && res != -ECANCELED && !e->enter_err &&
		    (e->config & RSC__CFG_ALL_OR_NONE)) {
			e->enter_err = res; /* e.g. LISTEN failing after BIND succeeded */
			e->enter_err_opcode = op->opcode;
		}
	} else {
		/* The kernel's word for the audit and the slot table: the close's own CQE. */
		if (op->closes != RSC__CLOSES_NONE) {
			if (op->closes == RSC__CLOSES_VALUE)
				e->close_res = res;
			else
				e->close_res2 = res;
			/* A close that ran after its enter returned (ledger.c's closes_ran),
			 * or one no enter of ours submitted: its number is let go of now.
			 * -ECANCELED: it never ran, and the number is still open (it leaves
			 * with the entry). */
			if (__builtin_expect(op->unsub, 0))
				rsc__ledger_close_done(loop, op, res);
			else if (res != -ECANCELED)
				let_go_of(e, op->closes);
		}
		/* A socket that was never connected has nothing to shut down. */
		if (res < 0 && !(op->opcode == IORING_OP_SHUTDOWN && res == -ENOTCONN))
			note_exit_failure(e, op, res);
	}
	assert(e->phase_ops > 0);
	if (--e->phase_ops)
		return;
	if (e->phase == RSC__PHASE_ENTER)
		enter_done(e);
	else if (__builtin_expect(e->flags & RSC__E_CLOSE_NEXT, 0))
		close_next(e);
	else
		exit_done(e);
}

static void discard_complete(struct rsc_loop *loop, struct rsc_op *op, int res,
			     unsigned cqe_flags)
{
	(void)loop;
	(void)op;
	(void)res;
	(void)cqe_flags;
}

/* Reserve @n SQEs for @e's current phase, each routed to its own op. */
static int reserve_sqes(struct rsc__entry *e, unsigned n,
			struct io_uring_sqe **sqes)
{
	struct rsc_loop *loop = e->scope->loop;
	struct rsc_op *enter_op = e->enter_op;
	unsigned i, k = loop->n_hook_sqes;
	int ret;

	/*
	 * SQEs first: the flush that makes room may wait for completions, and
	 * must not count ops that have no SQE yet as being in the kernel.
	 */
	ret = rsc__get_sqes(loop, n, sqes);
	if (ret < 0)
		return ret;
	for (i = 0; i < n; i++) {
		struct rsc_op *op = rsc__op_get(loop);

		if (__builtin_expect(!op, 0)) {
			while (i-- > 0)
				rsc__op_put(loop, loop->hook_ops[k + i]);
			e->enter_op = enter_op;
			rsc__nop_sqes(loop, sqes, n);
			return -ENOMEM;
		}
		op->entry = e;
		op->complete = entry_op_complete;
		op->sqe_idx = (uint8_t)i;
		op->primary = e->phase == RSC__PHASE_ENTER && !e->enter_op;
		if (op->primary)
			e->enter_op = op;
		loop->hook_sqes[k + i] = sqes[i];
		loop->hook_ops[k + i] = op;
	}
	/* Counted only now: a failure above leaves the hook's reservation empty. */
	loop->n_hook_sqes = k + n;
	e->phase_ops += n;
	return 0;
}

int rsc__hook_sqes(struct rsc__entry *e, unsigned n, struct io_uring_sqe **sqes)
{
	assert(e->scope->loop->hook_entry == e && n <= RSC_ENTRY_SQES_MAX);
	if (e->scope->loop->n_hook_sqes)
		return -EBUSY; /* one reservation per hook: a chain never straddles a submit */
	return reserve_sqes(e, n, sqes);
}

int rsc_entry_get_sqes(struct rsc_entry *h, unsigned n,
		       struct io_uring_sqe **sqes)
{
	struct rsc__entry *e;

	RSC__ENTRY(e, h, "rsc_entry_get_sqes");
	RSC__CHECK_ARG(sqes, "rsc_entry_get_sqes: sqes is NULL");
	RSC__CHECK_ARG(n >= 1 && n <= RSC_ENTRY_SQES_MAX,
		       "rsc_entry_get_sqes: n must be 1..%d, not %u",
		       RSC_ENTRY_SQES_MAX, n);
	if (e->scope->loop->hook_entry != e) {
		rsc__set_last_error("rsc_entry_get_sqes: only a manager's enter or exit may prepare SQEs");
		return -EPERM;
	}
	if (e->scope->loop->n_hook_sqes) {
		/* Two reservations could straddle a submit and split a chain. */
		rsc__set_last_error("rsc_entry_get_sqes: call it once per enter/exit, for all the SQEs at once");
		return -EBUSY;
	}
	return reserve_sqes(e, n, sqes);
}

/*
 * Fault injection (a no-op in release builds): an acquire becomes a NOP that
 * reports the error, so nothing is acquired; a release still runs and only
 * its result is replaced, as when close(2) reports EIO after closing.
 */
void rsc__inject_fault(struct rsc_loop *loop, struct io_uring_sqe *sqe,
		       struct rsc_op *op)
{
#ifdef RSC_FAULT_INJECTION
	int kind = rsc__fault_kind_of_opcode(sqe->opcode);
	uint8_t links;

	if (kind < 0 || !(op->fault_res = rsc__fault(loop, (enum rsc__fault_kind)kind)))
		return;
	if (kind == RSC__F_CLOSE || kind == RSC__F_FSYNC)
		return;
	links = sqe->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK);
	io_uring_prep_nop(sqe);
	sqe->flags |= links;
#else
	/* Release builds: nothing to look up per SQE. */
	(void)loop;
	(void)sqe;
	(void)op;
#endif
}

/* Which of @e's own an IORING_OP_CLOSE names: a slot by its file_index, a descriptor by its fd. */
static uint8_t closes_which(const struct rsc__entry *e, const struct io_uring_sqe *sqe)
{
	bool direct = sqe->file_index != 0;
	int target = direct ? (int)sqe->file_index - 1 : sqe->fd;

	if (direct != (e->fd_kind == RSC__FD_DIRECT) || (!direct && (sqe->flags & IOSQE_FIXED_FILE)))
		return RSC__CLOSES_NONE;
	if (target == e->value)
		return RSC__CLOSES_VALUE;
	return e->has_value2 && target == e->value2 ? RSC__CLOSES_VALUE2 : RSC__CLOSES_NONE;
}

/* Linux 6.7, newer than liburing 2.3's header. */
#define RSC__OP_READ_MULTISHOT 49U
/* IORING_TIMEOUT_MULTISHOT (Linux 6.4): newer than liburing 2.3's header. */
#define RSC__TIMEOUT_MULTISHOT (1U << 6)

/*
 * An op completes with its one CQE (rsc_push(3)): a custom hook's request
 * that would post none on success, or many, is made to post exactly one,
 * instead of leaving its entry waiting for ever.
 */
static void one_cqe_per_sqe(struct io_uring_sqe *sqe)
{
	sqe->flags &= (uint8_t)~IOSQE_CQE_SKIP_SUCCESS;
	switch (sqe->opcode) {
	case IORING_OP_POLL_ADD:
		sqe->len &= ~IORING_POLL_ADD_MULTI;
		break;
	case IORING_OP_ACCEPT:
		sqe->ioprio &= (uint16_t)~IORING_ACCEPT_MULTISHOT;
		break;
	case IORING_OP_RECV:
	case IORING_OP_RECVMSG:
		sqe->ioprio &= (uint16_t)~IORING_RECV_MULTISHOT;
		break;
	case RSC__OP_READ_MULTISHOT:
		sqe->opcode = IORING_OP_READ; /* with its buffer select: one read */
		break;
	case IORING_OP_TIMEOUT:
		sqe->timeout_flags &= ~RSC__TIMEOUT_MULTISHOT; /* fires once */
		break;
	}
}

/*
 * A close of a number of @e's (@op->closes) is prepared: the number may leave
 * the table before its CQE is reaped, once the close has run, never before it
 * is submitted (ledger.c). Listed, it is marked closing while the enter that
 * submits it runs; without memory to list it, it leaves at its CQE all the same.
 */
RSC__INLINE void leave_ledger_at_submit(struct rsc_loop *loop, struct rsc__entry *e,
				       struct rsc_op *op)
{
	unsigned flag = rsc__ledger_flag_of(op->closes);

	/* Listed, the list lets go of it (ledger.c); else the entry, at the close's CQE. */
	if ((e->flags & flag) && rsc__ledger_list_close(loop, op, closed_number(e, op->closes), e->h))
		e->flags &= ~flag;
}

/* A pipe's write end leaves the ledger with its entry, if its close has not let it go. */
void rsc__entry_close2_ran(struct rsc__entry *e)
{
	let_go_of(e, RSC__CLOSES_VALUE2);
}

/* After a hook: name each SQE's op and route its CQE back to us. */
static void stamp_phase_sqes(struct rsc__entry *e)
{
	struct rsc_loop *loop = e->scope->loop;
	unsigned i;

	/* The hook forked and this is the child, come back late: its SQEs are in
	 * the SQ both processes map, stamped and submitted by the parent, and
	 * their slots may hold the parent's next SQEs by now (bug 74). */
	if (__builtin_expect(rsc__loop_forked(loop), 0)) {
		loop->n_hook_sqes = 0;
		return;
	}
	/* A hook's chain ends with its own SQEs: a link flag on the last one
	 * would tie it to whatever the submit carries next (another scope's
	 * acquire, the next close of an unwind batch), cancelled if it fails. */
	if (loop->n_hook_sqes)
		loop->hook_sqes[loop->n_hook_sqes - 1]->flags &=
			(uint8_t)~(IOSQE_IO_LINK | IOSQE_IO_HARDLINK);
	for (i = 0; i < loop->n_hook_sqes; i++) {
		struct io_uring_sqe *sqe = loop->hook_sqes[i];
		struct rsc_op *op = loop->hook_ops[i];

		if (!(e->config & RSC__CFG_OWN_HOOKS)) { /* the built-ins prepare one-CQE SQEs */
			one_cqe_per_sqe(sqe);
			/* A custom acquire into a slot: its CQE's number is none (the audit's). */
			if (op->primary)
				e->custom_slot_sqe = sqe->file_index != 0;
		}
		op->opcode = sqe->opcode;
		op->closes = sqe->opcode == IORING_OP_CLOSE && e->phase == RSC__PHASE_EXIT ?
				     closes_which(e, sqe) : RSC__CLOSES_NONE;
		if (op->closes != RSC__CLOSES_NONE)
			leave_ledger_at_submit(loop, e, op);
		rsc__inject_fault(loop, sqe, op);
		if (op->primary)
			e->enter_opcode = op->opcode;
		if (e->phase == RSC__PHASE_ENTER && loop->n_hook_sqes > 1) {
			/* The acquire is all of them: a cancel must reach each one
			 * (one SQE alone is enter_op, as rsc__entry_cancel knows). */
			rsc__list_push_back(&e->enter_ops, &op->io_node);
			op->enter_listed = true;
		}
		io_uring_sqe_set_data64(sqe, rsc__op_user_data(op));
	}
	loop->n_hook_sqes = 0;
}

/* A hook that prepared nothing still completes from the loop. */
static int ensure_phase_sqe(struct rsc__entry *e)
{
	struct io_uring_sqe *sqe;
	int ret;

	if (e->scope->loop->n_hook_sqes)
		return 0;
	ret = reserve_sqes(e, 1, &sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_nop(sqe);
	return 0;
}

/* Allocate and name an entry (@len is strlen(@detail)); it is linked by link_entry(). */
RSC__HOT RSC__INLINE struct rsc__entry *
new_entry_named(struct rsc__scope *s, const struct rsc_manager *mgr, void *arg, unsigned config,
		const char *detail, size_t len, const void *site)
{
	struct rsc_loop *loop = s->loop;
	struct rsc__entry *e = rsc__entry_get(loop);

	if (!e)
		return NULL;
	if (len >= sizeof(e->detail_inline)) {
		e->detail = rsc__malloc(loop, len + 1);
		if (!e->detail) {
			e->detail = e->detail_inline;
			rsc__entry_put(loop, e);
			return NULL;
		}
	}
	memcpy(e->detail, detail ? detail : "", len + 1);
	e->scope = s;
	e->site = site;
	e->mgr = mgr;
	e->arg = arg;
	e->config = config;
	e->state = RSC_ENTERING;
	e->value = -EAGAIN;
	e->close_res = 1;
	e->close_res2 = 1;
	return e;
}

static struct rsc__entry *new_entry(struct rsc__scope *s, const struct rsc_manager *mgr,
				    void *arg, unsigned config, const char *detail,
				    const void *site)
{
	return new_entry_named(s, mgr, arg, config, detail, detail ? strlen(detail) : 0, site);
}

/* Newest at the tail: the unwind walks back from there. */
RSC__INLINE void append_entry(struct rsc__scope *s, struct rsc__entry *e)
{
	/* Atomic: rsc_audit_describe_fd reads it from any thread. */
	__atomic_store_n(&e->scope, s, __ATOMIC_RELEASE);
	rsc__list_push_back(&s->entries, &e->scope_node);
}

static void unlink_entry(struct rsc__entry *e)
{
	rsc__list_remove(&e->scope_node);
}

RSC__INLINE void link_entry(struct rsc__scope *s, struct rsc__entry *e)
{
	append_entry(s, e);
	s->n_entering++;
	s->loop->n_entering++;
	rsc__obs_acquire(s->loop, e);
}

/* Not submitted yet (one reservation, no submit since): make them NOPs. */
static void discard_hook_sqes(struct rsc_loop *loop)
{
	unsigned i;

	if (rsc__loop_forked(loop)) {
		loop->n_hook_sqes = 0; /* a hook forked: the SQ is the parent's, as in stamp_phase_sqes */
		return;
	}
	for (i = 0; i < loop->n_hook_sqes; i++) {
		io_uring_prep_nop(loop->hook_sqes[i]);
		loop->hook_ops[i]->entry = NULL;
		loop->hook_ops[i]->complete = discard_complete;
		io_uring_sqe_set_data64(loop->hook_sqes[i],
					rsc__op_user_data(loop->hook_ops[i]));
	}
	loop->n_hook_sqes = 0;
}

/* A manager hook runs: it may prepare SQEs for @e, and nothing may block. */
static int call_hook(struct rsc__entry *e, bool enter)
{
	struct rsc_loop *loop = e->scope->loop;
	const struct rsc_error *pending;
	int ret;

	/* Built-ins take the entry itself: no handle to decode on the hot path. */
	void *arg = (e->config & RSC__CFG_OWN_HOOKS) ? (void *)e : e->arg;

	loop->hook_entry = e;
	if (!rsc__cb_enter(loop)) {
		ret = -ECHILD; /* a callback forked, and this is the child (FORK) */
	} else if (enter) {
		ret = e->mgr->enter(rsc__eh(e), arg);
	} else {
		/* An early release runs outside any unwind: nothing is pending for it. */
		pending = (e->flags & RSC__E_RELEASE_REQ) ? NULL : e->scope->pending;
		ret = e->mgr->exit(rsc__eh(e), pending, arg);
	}
	rsc__cb_leave(loop);
	loop->hook_entry = NULL;
	return ret;
}

/* Run the manager's enter: 0 with its SQEs stamped, or its -errno. */
static int run_enter(struct rsc__entry *e)
{
	struct rsc_loop *loop = e->scope->loop;
	int ret;

	e->phase = RSC__PHASE_ENTER;
	ret = call_hook(e, true);
	if (e->config & RSC__CFG_BUILTIN)
		e->arg = NULL; /* it pointed at the caller's stack */
	if (ret >= 0)
		ret = ensure_phase_sqe(e);
	if (ret < 0) {
		discard_hook_sqes(loop);
		return ret;
	}
	stamp_phase_sqes(e);
	return 0;
}

int rsc__push(struct rsc__scope *s, const struct rsc_manager *mgr, void *arg,
	      unsigned config, const char *detail, const void *site,
	      struct rsc__entry **entryp)
{
	struct rsc__entry *e = new_entry(s, mgr, arg, config, detail, site);
	int ret;

	if (!e)
		return -ENOMEM;
	ret = run_enter(e);
	if (ret < 0) {
		rsc__entry_put(s->loop, e);
		return ret;
	}
	link_entry(s, e);
	if (entryp)
		*entryp = e;
	return 0;
}

/*
 * The built-ins' one-SQE acquire (rsc_open, rsc_socket) and plain close: what
 * call_hook, reserve_sqes and stamp_phase_sqes do for any hook, done for one
 * SQE whose opcode is known and with no user code in between (the hot path of
 * every pair). 0 with the SQE taken and its op routed (its user_data set), or
 * rsc__op_with_sqe_why's -EBUSY or -ENOMEM with neither.
 */
RSC__HOT RSC__INLINE int one_sqe(struct rsc__entry *e, struct io_uring_sqe **sqep, struct rsc_op **opp)
{
	int ret = rsc__op_with_sqe_inline(e->scope->loop, sqep, opp);

	if (ret < 0)
		return ret;
	(*opp)->entry = e;
	(*opp)->complete = entry_op_complete;
	(*opp)->sqe_idx = 0;
	e->phase_ops = 1;
	return 0;
}

RSC__HOT int rsc__push_one(struct rsc__scope *s, const struct rsc_manager *mgr, rsc__prep_fn prep,
		  const void *args, uint8_t opcode, unsigned config, const char *detail,
		  size_t detail_len, const void *site, struct rsc__entry **entryp)
{
	struct rsc_loop *loop = s->loop;
	struct rsc__entry *e = new_entry_named(s, mgr, NULL, config, detail, detail_len, site);
	struct io_uring_sqe *sqe;
	struct rsc_op *op;
	int ret;

	if (!e)
		return -ENOMEM;
	e->phase = RSC__PHASE_ENTER;
	ret = one_sqe(e, &sqe, &op);
	if (ret < 0) {
		rsc__entry_put(loop, e);
		return ret;
	}
	prep(sqe, e, args);
	assert(sqe->opcode == opcode);
	op->primary = true;
	op->opcode = opcode;
	op->closes = RSC__CLOSES_NONE;
	e->enter_op = op;
	e->enter_opcode = opcode;
	rsc__inject_fault(loop, sqe, op);
	link_entry(s, e);
	if (entryp)
		*entryp = e;
	return 0;
}

/* rsc__fd_exit's plain case, a lone IORING_OP_CLOSE of a process descriptor. */
RSC__HOT static bool closes_plainly(const struct rsc__entry *e)
{
	return e->mgr->exit == rsc__fd_exit && e->fd_kind == RSC__FD_PROCESS &&
	       !(e->config & (RSC__CFG_FSYNC | RSC__CFG_SHUTDOWN)) &&
	       /* its identity to check first: the hook's way */
	       !rsc__audit_checks_identity(e->scope->loop, e);
}

/* @sqe, routed to @op, closes @e's own number: the ledger and fault injection hear of it. */
RSC__INLINE void prep_close_of_value(struct rsc_loop *loop, struct rsc__entry *e,
				     struct io_uring_sqe *sqe, struct rsc_op *op)
{
	io_uring_prep_close(sqe, e->value);
	op->opcode = IORING_OP_CLOSE;
	op->closes = RSC__CLOSES_VALUE;
	leave_ledger_at_submit(loop, e, op);
	rsc__inject_fault(loop, sqe, op);
}

/*
 * rsc__fd_exit's shutdown and fsync have completed (manager_fd.c): now the
 * close, in the same release, its errors after theirs in SQE order. No SQE
 * or no op to be had: on a later turn (rsc__retry_exits).
 */
static RSC__COLD __attribute__((noinline)) void close_next(struct rsc__entry *e)
{
	struct io_uring_sqe *sqe;
	struct rsc_op *op;

	e->flags &= ~(RSC__E_CLOSE_NEXT | RSC__E_RETRY_CLOSE);
	/* Closed behind our back meanwhile (the audit's): the number is someone else's. */
	if (!rsc__audit_still_ours(e->scope->loop, e)) {
		if (e->exit_res == 0) {
			e->exit_res = -EBADF;
			e->exit_opcode = RSC__OPCODE_HOOK;
		}
		exit_done_cold(e);
		return;
	}
	/* The out-of-line one: a third caller of the inline one would out-line it on the hot paths. */
	if (rsc__op_with_sqe_why(e->scope->loop, &sqe, &op) < 0) {
		e->flags |= RSC__E_CLOSE_NEXT | RSC__E_RETRY_CLOSE;
		queue_retry(e);
		return;
	}
	op->entry = e;
	op->complete = entry_op_complete;
	op->sqe_idx = (uint8_t)rsc__fd_exit_before_close(e);
	e->phase_ops = 1;
	prep_close_of_value(e->scope->loop, e, sqe, op);
}

RSC__HOT static int close_plainly(struct rsc__entry *e)
{
	struct rsc_loop *loop = e->scope->loop;
	struct io_uring_sqe *sqe;
	struct rsc_op *op;
	int ret = one_sqe(e, &sqe, &op);

	if (ret < 0)
		return ret;
	op->primary = false;
	prep_close_of_value(loop, e, sqe, op);
	return 0;
}

/*
 * An entry made before what it builds on is pushed (rsc__push_after): a
 * compound push that finds no memory fails whole, before anything is
 * acquired or traced. Unlinked: rsc__entry_put() if it is not used.
 */
struct rsc__entry *rsc__entry_make(struct rsc__scope *s, const struct rsc_manager *mgr,
				   unsigned config, const char *detail, const void *site)
{
	return new_entry(s, mgr, NULL, config, detail, site);
}

void rsc__push_after(struct rsc__entry *dep, struct rsc__entry *e, uint8_t opcode,
		     void *owned_arg)
{
	/* Its enter needs dep's descriptor: it runs when dep has entered. */
	e->arg = owned_arg;
	e->owned_arg = owned_arg;
	e->enter_opcode = opcode; /* its run_enter stamps the real one */
	e->dep = dep;
	e->flags |= RSC__E_DEFERRED;
	dep->flags |= RSC__E_HAS_DEPS; /* only such entries look for dependents */
	e->phase = RSC__PHASE_ENTER;
	link_entry(dep->scope, e);
}

/* An entry that owns a descriptor from now on: in the ledger, and audited. */
RSC__INLINE void own_value(struct rsc_loop *loop, struct rsc__entry *e)
{
	if (!(e->config & RSC__CFG_FD) || e->value < 0)
		return;
	rsc__ledger_set(e->value, e->h);
	e->flags |= RSC__E_LEDGER;
	if (loop->audit_level == RSC_AUDIT_FULL)
		rsc__audit_record(loop, e);
}

/*
 * Entered without an acquire of its own (accept, adopt, defer). Inside the
 * loop (accept) it is traced at once; inside a caller's call (adopt, defer)
 * it is announced from the loop's next turn, trace and on-enter both.
 */
static void announce(struct rsc__entry *e);

static void enter_at_once(struct rsc__entry *e, int value, bool in_loop)
{
	struct rsc__scope *s = e->scope;

	set_state(e, RSC_ENTERED);
	e->value = value;
	append_entry(s, e);
	s->loop->counters[RSC_CTR_ACQUIRED]++;
	own_value(s->loop, e);
	if (in_loop) {
		rsc__trace(s->loop, RSC_EV_ENTERED, s, e, value);
		rsc__obs_entered(s->loop, e);
	} else {
		announce(e);
	}
}

static struct rsc__entry *new_entered(struct rsc__scope *s, const struct rsc_manager *mgr,
				      void *arg, unsigned config, int value,
				      const char *detail, const void *site, bool in_loop)
{
	struct rsc__entry *e = new_entry(s, mgr, arg, config, detail, site);

	if (e)
		enter_at_once(e, value, in_loop);
	return e;
}

/* An accept's CQE gave us @fd: the entry is entered at once. */
struct rsc__entry *rsc__adopt(struct rsc__scope *s, const struct rsc_manager *mgr,
			      int fd, const char *detail)
{
	return new_entered(s, mgr, NULL, RSC__CFG_FD | RSC__CFG_OWN_HOOKS, fd, detail, NULL,
			   true);
}

/* Its trace and on-enter callback are due from the loop, never inside the call. */
static void announce(struct rsc__entry *e)
{
	struct rsc_loop *loop = e->scope->loop;

	e->flags |= RSC__E_ANNOUNCE;
	if (loop->pollable)
		rsc__kick(loop);
	rsc__list_push_back(&loop->announce_queue, &e->announce_node);
}

static void unannounce(struct rsc_loop *loop, struct rsc__entry *e, bool traced)
{
	rsc__list_remove(&e->announce_node); /* RSC__E_ANNOUNCE: it is queued */
	e->flags &= ~RSC__E_ANNOUNCE;
	/* Released before the loop turned: the trace still reads entered, then released. */
	if (traced) {
		rsc__trace(loop, RSC_EV_ENTERED, e->scope, e, e->value);
		rsc__obs_entered(loop, e);
	}
}

unsigned rsc__announce_run(struct rsc_loop *loop)
{
	unsigned n = 0;
	struct rsc__list *next;

	while ((next = rsc__list_pop_front(&loop->announce_queue))) {
		struct rsc__entry *e = RSC__LIST_ITEM(next, struct rsc__entry, announce_node);

		e->flags &= ~RSC__E_ANNOUNCE;
		n++;
		rsc__trace(loop, RSC_EV_ENTERED, e->scope, e, e->value);
		rsc__obs_entered(loop, e);
		if (e->enter_cb) {
			if (rsc__cb_enter(loop))
				e->enter_cb(rsc__eh(e), e->value, e->enter_data);
			rsc__cb_leave(loop);
		}
	}
	return n;
}

/* A hook that found its result itself (a syscall): report it from the loop. */
int rsc__entry_complete_with(struct rsc__entry *e, int res, const char *op)
{
	struct io_uring_sqe *sqe;
	int ret = reserve_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_nop(sqe);
	e->scope->loop->hook_ops[e->scope->loop->n_hook_sqes - 1]->fault_res = res;
	if (res < 0)
		e->fail_op = op;
	return 0;
}

int rsc__check_can_block(struct rsc_loop *loop, const char *fn)
{
	int ret = rsc__check_not_in_callback(loop, fn);

	if (ret == 0)
		ret = rsc__check_issuer(loop, fn); /* before anything is closed or released */
	if (ret == 0 && loop->shared) {
		/* Waiting would reap the application's ring. */
		rsc__set_last_error("%s: a loop on the application's ring cannot wait; the application reaps",
				    fn);
		return -EOPNOTSUPP;
	}
	return ret;
}

int rsc__in_hook_error(const char *fn)
{
	rsc__set_last_error("%s: not from inside a manager's enter or exit, or the trace callback",
			    fn);
	return -EDEADLK;
}

int rsc__in_callback_error(const char *fn)
{
	rsc__set_last_error("%s: cannot block or run the loop from inside one of its callbacks or manager hooks",
			    fn);
	return -EDEADLK;
}

int rsc__issuer_error(const char *fn)
{
	rsc__set_last_error("%s: the loop's ring is single-issuer (RSC_FEAT_SINGLE_ISSUER): only the thread that created the loop may run it (RSC_LOOP_NO_DEFER_TASKRUN makes a loop any thread may run, one at a time)",
			    fn);
	return -EEXIST;
}

/* rsc__scope_check_push's refusal (internal.h): the root, or a scope an unwind owns. */
int rsc__scope_push_refused(const struct rsc__scope *s, const char *fn)
{
	rsc__set_last_error("%s: scope '%s' %s; nothing more can be pushed", fn, s->name,
			    s->state != RSC_SCOPE_OPEN || s->closer != RSC__CLOSER_NONE ||
			    s->fail_queued || s == s->loop->root ?
			    "is unwinding or closing" : "is in a scope that is closing");
	return -ESHUTDOWN;
}

static int check_manager(const struct rsc_manager *mgr)
{
	RSC__CHECK_ARG(mgr, "rsc_push: manager is NULL");
	RSC__CHECK_ARG(mgr->size == sizeof(struct rsc_manager),
		       "rsc_push: manager size %u: set .size = sizeof(struct rsc_manager) (%zu)",
		       mgr->size, sizeof(struct rsc_manager));
	RSC__CHECK_ARG(!(mgr->flags & ~RSC_MANAGER_UNORDERED),
		       "rsc_push: unknown manager flags 0x%x", mgr->flags);
	/* Both halves are required, and checked before anything is acquired. */
	if (!mgr->enter || !mgr->exit) {
		rsc__set_last_error("rsc_push: manager '%s' has no %s: a manager needs both enter and exit",
				    mgr->name ? mgr->name : "(unnamed)",
				    !mgr->enter && !mgr->exit ? "enter and no exit" :
				    !mgr->enter		      ? "enter" : "exit");
		return -EINVAL;
	}
	RSC__CHECK_ARG(mgr->name && mgr->name[0],
		       "rsc_push: a manager needs a name (it labels errors)");
	return 0;
}

int rsc_push(struct rsc_scope *h, const struct rsc_manager *mgr, void *arg,
	     struct rsc_entry **entryp)
{
	struct rsc__scope *s;
	struct rsc__entry *e;
	int ret;

	if (entryp)
		*entryp = NULL;
	ret = check_manager(mgr);
	if (ret < 0)
		return ret;
	ret = rsc__scope_check_push(h, &s, "rsc_push");
	if (ret < 0)
		return ret;
	ret = rsc__push(s, mgr, arg,
			(mgr->flags & RSC_MANAGER_UNORDERED) ? 0 : RSC__CFG_ORDERED, NULL,
			__builtin_return_address(0), &e);
	if (ret == 0 && entryp)
		*entryp = rsc__eh(e);
	return ret;
}

/*
 * The enter of entries that are entered at once and never pushed through
 * it (accepted connections, adopt, defer, chain steps): a manager must have
 * both halves, and this one is never called.
 */
int rsc__enter_never(struct rsc_entry *h, void *arg)
{
	(void)h;
	(void)arg;
	return -EINVAL;
}

/* rsc_defer(): the caller's exit, reached through the entry it runs for. */
struct defer_fn {
	rsc_exit_fn fn;
};
_Static_assert(sizeof(struct defer_fn) <= RSC__ROOM_SIZE, "struct defer_fn outgrew an entry's room (rsc__room_get)");

static int defer_exit(struct rsc_entry *h, const struct rsc_error *pending, void *arg)
{
	struct rsc__entry *e;

	if (rsc__entry_from(h, &e, "defer") < 0)
		return -ESTALE;
	return ((struct defer_fn *)e->owned_arg)->fn(h, pending, arg);
}

static const struct rsc_manager defer_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "defer",
	.enter = rsc__enter_never,
	.exit = defer_exit,
};

int rsc_defer(struct rsc_scope *h, rsc_exit_fn fn, void *arg,
	      struct rsc_entry **entryp)
{
	struct rsc__scope *s;
	struct rsc__entry *e;
	struct defer_fn *d;
	int ret;

	if (entryp)
		*entryp = NULL;
	RSC__CHECK_ARG(fn, "rsc_defer: fn is NULL");
	ret = rsc__scope_check_push(h, &s, "rsc_defer");
	if (ret < 0)
		return ret;
	d = rsc__room_get(s->loop, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->fn = fn;
	e = new_entered(s, &defer_manager, arg, RSC__CFG_ORDERED | RSC__CFG_NO_FD, 0, NULL,
			__builtin_return_address(0), false);
	if (!e) {
		rsc__room_put(s->loop, d);
		return -ENOMEM;
	}
	rsc__entry_keep_room(e, d);
	if (entryp)
		*entryp = rsc__eh(e);
	return 0;
}

/* The release of an adopted descriptor: as for any built-in, a ring close. */
static const struct rsc_manager adopt_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "adopt",
	.enter = rsc__enter_never,
	.exit = rsc__fd_exit,
};

/*
 * The kernel's IORING_OP_CLOSE refuses an io_uring instance (-EBADF): its
 * release could never close it. Rings are anonymous inodes (no file type in
 * st_mode); only those cost a readlink of their /proc/self/fd name.
 */
static bool is_io_uring_instance(int fd)
{
	static const char ring[] = "anon_inode:[io_uring]";
	char path[32], name[sizeof(ring) + 1];
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) < 0 || (st.st_mode & S_IFMT) != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, name, sizeof(name));
	return n == (ssize_t)sizeof(ring) - 1 && !memcmp(name, ring, sizeof(ring) - 1);
}

int rsc_adopt(struct rsc_scope *h, int fd, unsigned flags, struct rsc_entry **entryp)
{
	struct rsc__scope *s;
	struct rsc__entry *e;
	unsigned config = RSC__CFG_FD | RSC__CFG_OWN_HOOKS;
	char detail[32];
	uint64_t owner;
	int fdflags, ret;

	if (entryp)
		*entryp = NULL;
	ret = rsc__scope_check_push(h, &s, "rsc_adopt");
	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(!(flags & ~(RSC_NO_CLOEXEC | RSC_FSYNC_ON_RELEASE |
				   RSC_SHUTDOWN_ON_RELEASE)),
		       "rsc_adopt: unknown flags 0x%x", flags);
	if (fd < 0 || (fdflags = fcntl(fd, F_GETFD)) < 0) {
		rsc__set_last_error("rsc_adopt: %d is not an open descriptor", fd);
		return -EBADF;
	}
	/* A loop's ring is the runtime's own: -EEXIST below, from the ledger. A
	 * number whose close is in flight on another thread may be a ring by now. */
	owner = rsc__ledger_owner(fd);
	if ((!owner || (owner & RSC__LEDGER_CLOSING)) && is_io_uring_instance(fd)) {
		rsc__set_last_error("rsc_adopt: descriptor %d is an io_uring instance, which IORING_OP_CLOSE refuses to close: it stays the caller's",
				    fd);
		return -EOPNOTSUPP;
	}
	if (flags & RSC_FSYNC_ON_RELEASE) {
		ret = rsc__need_opcode(s->loop, IORING_OP_FSYNC, "RSC_FSYNC_ON_RELEASE");
		if (ret < 0)
			return ret;
		config |= RSC__CFG_FSYNC | RSC__CFG_ORDERED;
	}
	ret = rsc__need_shutdown(s->loop, flags);
	if (ret < 0)
		return ret;
	if (flags & RSC_SHUTDOWN_ON_RELEASE)
		config |= RSC__CFG_SHUTDOWN;
	rsc__detail_num(detail, "fd ", (unsigned)fd, "");
	e = new_entry(s, &adopt_manager, NULL, config, detail, __builtin_return_address(0));
	if (!e)
		return -ENOMEM;
	/* Two owners is the double-close bug: the ledger says who owns it. */
	ret = rsc__ledger_claim(s->loop, fd, e->h);
	if (ret < 0) {
		rsc__entry_put(s->loop, e);
		rsc__set_last_error(ret == -EEXIST ?
				    "rsc_adopt: descriptor %d is owned by a live entry, or is the runtime's own" :
				    "rsc_adopt: no memory for the ownership ledger (descriptor %d)", fd);
		return ret;
	}
	if (!(flags & RSC_NO_CLOEXEC) && !(fdflags & FD_CLOEXEC))
		(void)fcntl(fd, F_SETFD, fdflags | FD_CLOEXEC);
	e->config |= RSC__CFG_ADOPTED;
	enter_at_once(e, fd, false);
	if (entryp)
		*entryp = rsc__eh(e);
	return 0;
}

void rsc__entry_cancel(struct rsc__entry *e)
{
	struct rsc_loop *loop = e->scope->loop;
	struct rsc_op *op;
	bool sent = false;

	if (e->state != RSC_ENTERING || (e->flags & RSC__E_CANCEL_SENT))
		return;
	if (rsc__list_empty(&e->enter_ops)) {
		/* One SQE, a chain step, or a builtin that routes its own ops: its acquire. */
		if (e->enter_op && rsc__submit_cancel(loop, e->enter_op))
			e->flags |= RSC__E_CANCEL_SENT;
		return;
	}
	/*
	 * The enter completes when every one of its SQEs has: the first may be
	 * done while a later one (a timeout, a read) still runs, and the
	 * acquire is in flight until it ends. Newest first, so that a link's
	 * head is not cancelled before what waits behind it is looked for; a
	 * linked timeout goes with its head. A cancel's CQE proves nothing; we
	 * wait for each op's own CQE.
	 */
	RSC__LIST_FOR_EACH_REVERSE(op, &e->enter_ops, io_node)
		if (op->opcode != IORING_OP_LINK_TIMEOUT && rsc__submit_cancel(loop, op))
			sent = true;
	if (sent)
		e->flags |= RSC__E_CANCEL_SENT;
}

static void resolve_dependents(struct rsc__entry *dep);

/*
 * A compound acquire's second entry entered: it takes over the socket, and
 * the socket entry leaves the scope, so the entry the caller holds stands
 * for the whole connection.
 */
static void take_over_dep(struct rsc__entry *e)
{
	struct rsc__entry *dep = e->dep;
	struct rsc_loop *loop = e->scope->loop;

	if (dep->fd_kind == RSC__FD_DIRECT) {
		/* A slot: the loop's table names its new owner; no ledger. */
		e->value = dep->value;
		e->fd_kind = RSC__FD_DIRECT;
		e->config |= dep->config & RSC__CFG_SHUTDOWN;
		e->dep = NULL;
		rsc__direct_move(loop, dep, e);
		unlink_entry(dep);
		rsc__entry_free(loop, dep);
		return;
	}
	e->value = dep->value;
	/* It holds the socket now: released as the socket would have been. */
	e->config |= RSC__CFG_FD | (dep->config & RSC__CFG_SHUTDOWN);
	e->flags |= dep->flags & RSC__E_IDENTITY;
	e->dev = dep->dev;
	e->ino = dep->ino;
	e->dep = NULL;
	if (dep->flags & RSC__E_LEDGER)
		rsc__ledger_set(e->value, e->h);
	e->flags |= RSC__E_LEDGER;
	dep->flags &= ~RSC__E_LEDGER;
	unlink_entry(dep);
	rsc__entry_free(loop, dep);
}

/*
 * An acquire's descriptor whose owner cannot be recorded (no ledger page)
 * is not kept: an owner the ledger does not know could be adopted a second
 * time (two owners, the double close). It fails -ENOMEM, closed by the runtime.
 */
RSC__INLINE int reserve_owner(struct rsc_loop *loop, struct rsc__entry *e)
{
	if (!(e->config & RSC__CFG_FD))
		return rsc__pipe_reserve(loop, e); /* 0 unless a pipe: its ends are in its args */
	if (e->fd_kind == RSC__FD_DIRECT || rsc__ledger_reserve(loop, e->value) == 0)
		return 0;
	rsc__close_orphan(loop, e->value, false);
	return -ENOMEM;
}

RSC__INLINE void keep_or_close(struct rsc_loop *loop, struct rsc__entry *e)
{
	if (reserve_owner(loop, e) == 0)
		return;
	loop->counters[RSC_CTR_NOMEM_DROPS]++;
	e->value = -ENOMEM;
}

RSC__HOT static void enter_done(struct rsc__entry *e)
{
	struct rsc__scope *s = e->scope;
	struct rsc_loop *loop = s->loop;
	bool early = e->flags & RSC__E_RELEASE_REQ;
	uint64_t h = e->h;

	/* Settled: what it built on is its own entry's again (or taken over below). */
	if (e->dep)
		e->dep->flags &= ~RSC__E_BUILT_ON;
	/* Its linked timeout fired: the op ends -ECANCELED, or -EINTR when the
	 * kernel interrupted a worker blocked in it (an AF_UNIX connect waiting
	 * for backlog room): either way, it timed out. */
	if ((e->value == -ECANCELED || e->value == -EINTR) && (e->flags & RSC__E_TIMED_OUT))
		e->value = -ETIMEDOUT;
	if (e->enter_err && (e->value >= 0 || e->value == -ECANCELED)) {
		e->value = e->enter_err;
		e->enter_opcode = e->enter_err_opcode;
	}
	e->phase = RSC__PHASE_NONE;
	assert(s->n_entering > 0 && loop->n_entering > 0);
	s->n_entering--;
	loop->n_entering--;
	if (e->value >= 0 && !(e->config & RSC__CFG_TAKES_DEP))
		keep_or_close(loop, e);
	if (e->value >= 0) {
		if (__builtin_expect(e->config & RSC__CFG_PIPE, 0))
			rsc__pipe_settle(e); /* its value: the read end, not the CQE's 0 */
		if (e->config & RSC__CFG_TAKES_DEP)
			take_over_dep(e);
		else
			own_value(loop, e);
		/* The kernel made it now: new to every scope open, whatever its number. */
		if (loop->audit_level == RSC_AUDIT_FULL && e->fd_kind == RSC__FD_PROCESS &&
		    rsc__opcode_makes_fd(e->enter_opcode) && !e->custom_slot_sqe)
			rsc__audit_born(loop, e->value);
		set_state(e, RSC_ENTERED);
		loop->counters[RSC_CTR_ACQUIRED]++;
		if (e->flags & RSC__E_CANCEL_SENT)
			loop->counters[RSC_CTR_LATE_ACQUIRES]++; /* won the race */
	} else {
		set_state(e, RSC_FAILED);
		loop->counters[RSC_CTR_ENTER_FAILED]++;
	}
	/* Traced before the unwind it may start, so the trace reads in order. */
	rsc__trace(loop, e->value >= 0 ? RSC_EV_ENTERED : RSC_EV_ENTER_FAILED, s,
		   e, e->value);
	rsc__obs_enter_done(loop, e);
	/* Not our cancel's -ECANCELED, nor a link's behind a failed step (which
	 * may have been released early, leaving the scope open): the scope hears it. */
	if (e->value < 0 && !early &&
	    (e->value != -ECANCELED || !(e->flags & RSC__E_CANCEL_SENT))) {
		/* A failure of its own (not our cancel): the scope hears it. */
		rsc__scope_raise(s, e->value, rsc__entry_fail_op(e), e);
		e->flags |= RSC__E_REPORTED_ERR;
		/* A failed enter unwinds what was entered before it. */
		if (s->state == RSC_SCOPE_OPEN)
			rsc__scope_fail_acquire(s);
	} else if (e->value < 0 && early) {
		s->n_early--; /* released while entering and nothing was acquired: done */
	}
	if (e->entered_hook || e->enter_cb) {
		if (rsc__cb_enter(loop) && e->entered_hook)
			e->entered_hook(rsc__eh(e), e->value, e->entered_hook_data);
		/* The hook may have forked: the child runs no more of it. */
		if (!rsc__loop_forked(loop) && e->enter_cb)
			e->enter_cb(rsc__eh(e), e->value, e->enter_data);
		rsc__cb_leave(loop);
		/* The callback may have detached it: one with no early release and no dependents. */
		e = rsc__entry_live(h);
	}
	if (e && early) {
		if (e->state == RSC_ENTERED)
			rsc__entry_start_exit(e);
		else if (e->release_cb) {
			if (rsc__cb_enter(loop))
				e->release_cb(rsc__eh(e), e->value, e->release_data);
			rsc__cb_leave(loop);
		}
	}
	if (e && (e->flags & RSC__E_HAS_DEPS))
		resolve_dependents(e);
	if (s->state == RSC_SCOPE_UNWINDING)
		rsc__scope_step(s);
	if (loop->n_entering == 0 && !rsc__list_empty(&loop->audit_pending))
		rsc__audit_flush(loop); /* the last acquire in flight has settled */
}

const char *rsc__entry_fail_op(const struct rsc__entry *e)
{
	return e->fail_op ? e->fail_op : rsc__opcode_name(e->enter_opcode);
}

/* Settle a deferred enter right now, as if its CQE said @res. */
static void fail_deferred(struct rsc__entry *d, int res, bool cancelled)
{
	d->value = res;
	/* Cancelled, it is named by the op it never sent; its enter failing, by "enter". */
	if (cancelled)
		d->flags |= RSC__E_CANCEL_SENT; /* not an error of its own */
	else if (!d->fail_op)
		d->fail_op = "enter";
	d->phase_ops = 0;
	enter_done(d);
}

/*
 * @dep settled: start the enters that were waiting for its descriptor, or
 * cancel them if it failed or their scope is closing.
 */
static void resolve_dependents(struct rsc__entry *dep)
{
	struct rsc__list *head = &dep->scope->entries, *pos, *next;
	struct rsc__entry *d;
	int ret;

	dep->flags &= ~RSC__E_HAS_DEPS;
	for (pos = dep->scope_node.next; pos != head; pos = next) {
		next = pos->next; /* d may take dep over and free it */
		d = RSC__LIST_ITEM(pos, struct rsc__entry, scope_node);
		if (!(d->flags & RSC__E_DEFERRED) || d->dep != dep)
			continue;
		d->flags &= ~RSC__E_DEFERRED;
		/* A cancel that reached its scope (an unwind above that cancels)
		 * found nothing to cancel yet: it is cancelled now. */
		if (dep->state != RSC_ENTERED || (d->flags & RSC__E_RELEASE_REQ) ||
		    d->scope->state != RSC_SCOPE_OPEN || d->scope->closer != RSC__CLOSER_NONE ||
		    d->scope->cut >= RSC__CUT_ACQUIRES) {
			fail_deferred(d, -ECANCELED, true);
			continue;
		}
		ret = run_enter(d);
		if (ret < 0)
			fail_deferred(d, ret, false);
		else
			dep->flags |= RSC__E_BUILT_ON; /* until d settles: released or moved by nobody */
	}
}

/*
 * An exit suppresses the error it was handed (DESIGN 2.4), never one it could
 * not see: an unordered release above it in its batch may have raised since,
 * by its SQE's result (rsc_push(3)). That error stays, without the suppressed
 * one as its cause.
 */
static RSC__COLD __attribute__((noinline)) void
suppress_what_it_saw(struct rsc__scope *s, struct rsc__entry *e)
{
	struct rsc_error *kept = NULL;

	if (s->pending != e->suppressed)
		kept = rsc__error_splice(s->loop, s->pending, e->suppressed, NULL);
	rsc__error_unref(s->pending);
	rsc__error_unref(e->suppressed);
	e->suppressed = NULL;
	s->pending = kept;
}

/* Every failed SQE of the release raised as if each were an exit of its own,
 * oldest first; out of line: its frame would cost every release. */
static RSC__COLD __attribute__((noinline)) void
raise_exit_errors(struct rsc__scope *s, struct rsc__entry *e, bool early)
{
	int res[RSC_ENTRY_SQES_MAX + 1];
	const char *op[RSC_ENTRY_SQES_MAX + 1];
	unsigned i, n = rsc__entry_exit_errors(e, res, op);

	for (i = 0; i < n; i++)
		rsc__scope_raise(s, res[i], op[i], e);
	if (!early && (e->flags & RSC__E_SUPPRESS)) {
		rsc__error_unref(e->suppressed); /* a raise won over the suppression */
		e->suppressed = NULL;
	}
}

/*
 * The one place a release is settled, early or in its unwind's LIFO turn:
 * the ledger lets the number go, the error is raised on the scope (or told
 * to an early release's callback), the trace and the audit see it.
 */
RSC__HOT void rsc__entry_settle_release(struct rsc__entry *e)
{
	struct rsc__scope *s = e->scope;
	struct rsc_loop *loop = s->loop;
	bool early = e->flags & RSC__E_RELEASE_REQ;

	rsc__obs_released(loop, e); /* first: it names the error it may suppress */
	if (e->flags & RSC__E_LEDGER) {
		rsc__ledger_forget(e->value, e->h);
		e->flags &= ~RSC__E_LEDGER;
	}
	if (e->exit_res < 0 && !(early && e->release_cb)) {
		/* No callback to hear it: the scope's result carries it. */
		raise_exit_errors(s, e, early);
	} else if (!early && (e->flags & RSC__E_SUPPRESS)) {
		suppress_what_it_saw(s, e);
	}
	rsc__trace(loop, RSC_EV_RELEASED, s, e, e->exit_res);
	/* Only slots, a pipe's second end, or a close that found the number gone. */
	if (e->fd_kind == RSC__FD_DIRECT || e->has_value2 ||
	    (loop->audit_level != RSC_AUDIT_OFF && e->close_res == -EBADF))
		rsc__audit_check_released(loop, e);
	if (early && e->release_cb) {
		if (rsc__cb_enter(loop))
			e->release_cb(rsc__eh(e), e->exit_res, e->release_data);
		rsc__cb_leave(loop);
	}
}

RSC__HOT static void exit_done(struct rsc__entry *e)
{
	struct rsc__scope *s = e->scope;

	e->phase = RSC__PHASE_NONE;
	set_state(e, RSC_EXITED);
	s->loop->counters[RSC_CTR_RELEASED]++;
	if (!(e->flags & RSC__E_RELEASE_REQ)) {
		/* Part of an unwind batch: settled in LIFO order by the scope. */
		e->flags |= RSC__E_DONE;
		rsc__scope_report(s);
		return;
	}
	assert(s->n_early > 0);
	s->n_early--;
	rsc__entry_settle_release(e);
	if (s->state == RSC_SCOPE_UNWINDING)
		rsc__scope_step(s);
}

/* exit_done for the cold callers: one hot caller keeps it inlined there. */
static RSC__COLD __attribute__((noinline)) void exit_done_cold(struct rsc__entry *e)
{
	exit_done(e);
}

/* A release that could not get an SQE now is queued, never dropped. */
static void queue_retry(struct rsc__entry *e)
{
	rsc__list_push_front(&e->scope->loop->retry_list, &e->retry_node);
}

static void settle_exit_failure(struct rsc__entry *e)
{
	/* The ring kept refusing SQEs: report it rather than wait forever. */
	e->flags &= ~(RSC__E_CLOSE_NEXT | RSC__E_RETRY_CLOSE);
	if (e->exit_res == 0) {
		e->exit_res = -EBUSY;
		e->exit_opcode = RSC__OPCODE_HOOK;
	}
	e->scope->loop->n_hook_sqes = 0;
	e->phase_ops = 0;
	e->phase = RSC__PHASE_EXIT;
	exit_done(e);
}

unsigned rsc__retry_exits(struct rsc_loop *loop)
{
	struct rsc__list list, *next;
	unsigned n = 0;

	/* Those queued again meanwhile wait for the next turn. */
	rsc__list_move_all(&list, &loop->retry_list);
	while ((next = rsc__list_pop_front(&list))) {
		struct rsc__entry *e = RSC__LIST_ITEM(next, struct rsc__entry, retry_node);

		n++;
		if (++e->exit_retries > RSC__EXIT_RETRIES) {
			settle_exit_failure(e);
		} else if (e->flags & RSC__E_RETRY_CLOSE) {
			close_next(e);
		} else if (e->flags & RSC__E_RETRY_NOP) {
			if (ensure_phase_sqe(e) < 0) {
				queue_retry(e);
			} else {
				e->flags &= ~RSC__E_RETRY_NOP;
				stamp_phase_sqes(e);
			}
		} else {
			rsc__entry_start_exit(e);
		}
	}
	return n;
}

RSC__HOT void rsc__entry_start_exit(struct rsc__entry *e)
{
	struct rsc_loop *loop = e->scope->loop;
	int ret;

	assert(e->state == RSC_ENTERED ||
	       (e->state == RSC_EXITING &&
		(e->flags & (RSC__E_RETRY_HOOK | RSC__E_DRAINING))));
	/* Released before the loop turned: no on-enter, but entered is said first. */
	if (e->flags & RSC__E_ANNOUNCE)
		unannounce(loop, e, true);
	if (e->state == RSC_ENTERED) {
		set_state(e, RSC_EXITING);
		rsc__obs_release_started(loop, e);
	}
	if (e->n_io) {
		/* No I/O outlives its resource: cancel it, release after its last CQE. */
		if (!(e->flags & RSC__E_DRAINING)) {
			e->flags |= RSC__E_DRAINING;
			/* Cut by a deadline above, no op has started since (scope.c). */
			if (!(e->flags & RSC__E_IO_CUT))
				rsc__io_cancel_all(e);
		}
		return;
	}
	e->flags &= ~(RSC__E_RETRY_HOOK | RSC__E_DRAINING);
	e->phase = RSC__PHASE_EXIT;
	e->exit_res = 0; /* exit_failed is 0 already: cleared with the entry, set only by exit CQEs */
	e->close_res = 1;
	e->close_res2 = 1;
	if (closes_plainly(e)) {
		ret = close_plainly(e);
		if (ret == 0)
			return;
	} else {
		ret = call_hook(e, false);
	}
	if (!loop->n_hook_sqes && (ret == -EBUSY || ret == -ENOMEM || ret == -EAGAIN)) {
		/* No SQE to be had now: call the hook again on a later turn. The
		 * entry stays EXITING, so nothing else can release it meanwhile. */
		e->phase = RSC__PHASE_NONE;
		e->flags |= RSC__E_RETRY_HOOK;
		queue_retry(e);
		return;
	}
	if (ret == RSC_EXIT_SUPPRESS) {
		e->flags |= RSC__E_SUPPRESS;
		if (!(e->flags & RSC__E_RELEASE_REQ))
			e->suppressed = rsc__error_ref(e->scope->pending);
	} else if (ret < 0) {
		e->exit_res = ret;
		e->exit_opcode = RSC__OPCODE_HOOK;
	}
	if (ensure_phase_sqe(e) < 0) {
		e->flags |= RSC__E_RETRY_NOP;
		queue_retry(e);
		return;
	}
	stamp_phase_sqes(e);
}

RSC__HOT void rsc__entry_free(struct rsc_loop *loop, struct rsc__entry *e)
{
	assert(e->phase_ops == 0);
	rsc__obs_entry_freed(loop, e);
	if (e->flags & RSC__E_ANNOUNCE)
		unannounce(loop, e, false);
	let_go_of(e, RSC__CLOSES_VALUE);
	let_go_of(e, RSC__CLOSES_VALUE2);
	rsc__entry_put(loop, e);
}

int rsc_entry_on_enter(struct rsc_entry *h, rsc_entry_cb cb, void *data)
{
	struct rsc__entry *e;

	RSC__ENTRY(e, h, "rsc_entry_on_enter");
	if (e->state != RSC_ENTERING && !(e->flags & RSC__E_ANNOUNCE)) {
		rsc__set_last_error("rsc_entry_on_enter: the enter has completed already");
		return -EALREADY;
	}
	e->enter_cb = cb;
	e->enter_data = cb ? data : NULL;
	return 0;
}

/* Checks shared by release, detach and move: the caller may act on it. */
static int check_owned_by_caller(struct rsc__entry *e, bool release, const char *fn)
{
	if (rsc__check_not_in_hook(e->scope->loop, fn) < 0)
		return -EDEADLK;
	/* Never touch the number again: it may belong to someone else by now. */
	if ((e->flags & RSC__E_RELEASE_REQ) || e->state == RSC_EXITING ||
	    e->state == RSC_EXITED) {
		rsc__set_last_error("%s: entry '%s' is released already", fn, e->mgr->name);
		return -EALREADY;
	}
	if (e->state == RSC_FAILED) {
		rsc__set_last_error("%s: entry '%s' failed to enter: it holds nothing",
				    fn, e->mgr->name);
		return -EALREADY;
	}
	/* During a grace nothing has started unwinding: the work let finish may
	 * end its connection, so a release is the caller's still. */
	if (release ? rsc__scope_unwind_owns_past_grace(e->scope) :
		      rsc__scope_unwind_owns(e->scope)) {
		/* It goes in its LIFO turn, seeing the pending error like the rest. */
		rsc__set_last_error("%s: scope '%s' is unwinding or closing: its unwind owns entry '%s'",
				    fn, e->scope->name, e->mgr->name);
		return -EALREADY;
	}
	return 0;
}

int rsc__entry_release(struct rsc__entry *e, rsc_entry_cb cb, void *data)
{
	e->flags |= RSC__E_RELEASE_REQ;
	if (__builtin_expect(e->scope->loop->n_inboxes != 0, 0))
		rsc__inboxes_closing(e->scope->loop); /* an inbox's release: no address any more */
	e->release_cb = cb;
	e->release_data = cb ? data : NULL;
	e->scope->n_early++;
	if (e->state == RSC_ENTERING)
		rsc__entry_cancel(e); /* released when (if) the acquire wins */
	else
		rsc__entry_start_exit(e);
	return 0;
}

int rsc_entry_release(struct rsc_entry *h, rsc_entry_cb cb, void *data)
{
	struct rsc__entry *e;
	int ret;

	RSC__ENTRY(e, h, "rsc_entry_release");
	ret = check_owned_by_caller(e, true, "rsc_entry_release");
	if (ret < 0)
		return ret;
	if (e->flags & RSC__E_BUILT_ON) {
		/* Its close would pull the descriptor from under that enter. */
		rsc__set_last_error("rsc_entry_release: entry '%s' has an enter that builds on it in flight",
				    e->mgr->name);
		return -EBUSY;
	}
	return rsc__entry_release(e, cb, data);
}

int rsc_entry_detach(struct rsc_entry *h)
{
	struct rsc__entry *e;
	struct rsc_loop *loop;
	int ret, fd;

	RSC__ENTRY(e, h, "rsc_entry_detach");
	ret = check_owned_by_caller(e, false, "rsc_entry_detach");
	if (ret < 0)
		return ret;
	if (e->state == RSC_ENTERING || e->n_io || (e->flags & (RSC__E_HAS_DEPS | RSC__E_BUILT_ON))) {
		rsc__set_last_error("rsc_entry_detach: entry '%s' has %s in flight",
				    e->mgr->name, e->state == RSC_ENTERING ? "its enter" :
				    e->n_io ? "tracked I/O" : "an enter that builds on it");
		return -EBUSY;
	}
	if (!(e->config & RSC__CFG_FD)) {
		rsc__set_last_error("rsc_entry_detach: entry '%s' holds no descriptor of the runtime's",
				    e->mgr->name);
		return -EBADF;
	}
	loop = e->scope->loop;
	fd = e->value;
	/* The caller owns it from here: off the scope, out of the ledger, and
	 * no leak of any scope of the loop (FULL audit). */
	rsc__audit_disown(loop, fd);
	unlink_entry(e);
	rsc__entry_free(loop, e);
	return fd;
}

int rsc_entry_move(struct rsc_entry *h, struct rsc_scope *to_h)
{
	struct rsc__entry *e;
	struct rsc__scope *to;
	int ret;

	RSC__ENTRY(e, h, "rsc_entry_move");
	RSC__SCOPE(to, to_h, "rsc_entry_move (to)");
	if (to->loop != e->scope->loop) {
		rsc__set_last_error("rsc_entry_move: scope '%s' belongs to another loop", to->name);
		return -EXDEV;
	}
	ret = check_owned_by_caller(e, false, "rsc_entry_move");
	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(!rsc__scope_unwind_owns(to) && to != to->loop->root,
		       "rsc_entry_move: scope '%s' is unwinding or closing", to->name);
	if (e->state == RSC_ENTERING || (e->flags & (RSC__E_HAS_DEPS | RSC__E_BUILT_ON))) {
		rsc__set_last_error("rsc_entry_move: entry '%s' has %s in flight", e->mgr->name,
				    e->state == RSC_ENTERING ? "its enter" :
				    "an enter that builds on it");
		return -EBUSY;
	}
	if (to == e->scope && to->entries.prev == &e->scope_node)
		return 0;
	unlink_entry(e);
	append_entry(to, e);
	rsc__obs_ownership_moved(to->loop, NULL, e);
	return 0;
}

int rsc_entry_set_data(struct rsc_entry *h, void *data)
{
	struct rsc__entry *e;

	RSC__ENTRY(e, h, "rsc_entry_set_data");
	e->user_data = data;
	return 0;
}

void *rsc_entry_data(const struct rsc_entry *h)
{
	struct rsc__entry *e;

	return rsc__entry_from(h, &e, "rsc_entry_data") < 0 ? NULL : e->user_data;
}

/* rsc_entry_fd's answer, saying nothing: for the library's own callers,
 * which handle a slot or an entering entry themselves (no text formatted). */
int rsc__entry_fd_of(const struct rsc__entry *e)
{
	switch (e->state) {
	case RSC_ENTERING:
		return -EAGAIN;
	case RSC_ENTERED:
	case RSC_EXITING:
		/* A slot of the loop's direct table is no descriptor: rsc_entry_slot(). */
		return e->fd_kind == RSC__FD_DIRECT ? -EBADFD : e->value;
	case RSC_FAILED:
		return e->value;
	default:
		return -EBADF;
	}
}

/* The same, and why there is none in rsc_last_error (a failed acquire's errno says it). */
int rsc__entry_fd_said(const struct rsc__entry *e)
{
	int ret = rsc__entry_fd_of(e);
	const char *why = e->state == RSC_ENTERING ? "is still entering" :
			  ret == -EBADFD	      ? "holds a direct slot (rsc_entry_slot)" :
			  ret < 0 && e->state != RSC_FAILED ? "has been released" : NULL;

	if (why)
		rsc__set_last_error("rsc_entry_fd: entry '%s' %s", e->mgr->name, why);
	return ret;
}

int rsc_entry_fd(const struct rsc_entry *h)
{
	struct rsc__entry *e;

	RSC__ENTRY(e, h, "rsc_entry_fd");
	return rsc__entry_fd_said(e);
}

int rsc_entry_state(const struct rsc_entry *h)
{
	struct rsc__entry *e;

	RSC__ENTRY(e, h, "rsc_entry_state");
	return e->state;
}

const char *rsc_entry_name(const struct rsc_entry *h)
{
	struct rsc__entry *e;

	return rsc__entry_from(h, &e, "rsc_entry_name") < 0 ? "" : e->mgr->name;
}

const char *rsc_entry_detail(const struct rsc_entry *h)
{
	struct rsc__entry *e;

	return rsc__entry_from(h, &e, "rsc_entry_detail") < 0 ? "" : e->detail;
}

struct rsc_scope *rsc_entry_scope(const struct rsc_entry *h)
{
	struct rsc__entry *e;

	return rsc__entry_from(h, &e, "rsc_entry_scope") < 0 ? NULL : rsc__sh(e->scope);
}

void *rsc_entry_arg(const struct rsc_entry *h)
{
	struct rsc__entry *e;

	return rsc__entry_from(h, &e, "rsc_entry_arg") < 0 ? NULL : e->arg;
}

/*
 * Entries the runtime makes itself (manager_direct.c, chain.c). An entered
 * one holds @value (a descriptor or, for RSC__FD_DIRECT, a slot the loop's
 * table records; never the ledger's). An entering one is made unlinked (so
 * that a chain can give up before any of its steps exists); its caller
 * reserves the SQEs, routes each to an op completed through
 * rsc__entry_op_complete(), counts them in phase_ops, then links it.
 */
struct rsc__entry *rsc__entry_new_entered(struct rsc__scope *s,
					  const struct rsc_manager *mgr,
					  unsigned config, int value, uint8_t fd_kind,
					  const char *detail)
{
	struct rsc__entry *e = new_entry(s, mgr, NULL, config, detail, NULL);

	if (e) {
		e->fd_kind = fd_kind;
		enter_at_once(e, value, true); /* made inside the loop: traced now */
	}
	return e;
}

/* The same for one a public call makes at once (rsc_inbox): announced from the loop, as rsc_defer's. */
struct rsc__entry *rsc__entry_new_entered_by_call(struct rsc__scope *s,
						  const struct rsc_manager *mgr, unsigned config,
						  const char *detail, const void *site)
{
	return new_entered(s, mgr, NULL, config, 0, detail, site, false);
}

struct rsc__entry *rsc__entry_new_entering(struct rsc__scope *s,
					   const struct rsc_manager *mgr,
					   void *owned_arg, unsigned config,
					   const char *detail, const void *site)
{
	struct rsc__entry *e = new_entry(s, mgr, owned_arg, config, detail, site);

	if (!e)
		return NULL;
	e->owned_arg = owned_arg;
	e->phase = RSC__PHASE_ENTER;
	return e;
}

/* Its SQEs are reserved and its ops routed: it is entering from now on. */
void rsc__entry_link_entering(struct rsc__entry *e)
{
	link_entry(e->scope, e);
}

void rsc__entry_op_complete(struct rsc_loop *loop, struct rsc_op *op, int res,
			    unsigned cqe_flags)
{
	entry_op_complete(loop, op, res, cqe_flags);
}
