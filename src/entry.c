/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static bool entry_is_live(const struct rsc_entry *e)
{
	return e->state >= RSC_ENTERING && e->state <= RSC_FAILED;
}

static void enter_done(struct rsc_entry *e);
static void exit_done(struct rsc_entry *e);

static void entry_op_complete(struct rsc_loop *loop, struct rsc_op *op,
			      int res, unsigned cqe_flags)
{
	struct rsc_entry *e = op->entry;

	(void)loop;
	(void)cqe_flags;
	res = rsc__real_errno(res, e->flags & RSC__E_CANCEL_SENT);
	if (e->phase == RSC__PHASE_ENTER) {
		/* Ownership comes only from the acquire's own CQE. */
		if (op->primary) {
			e->value = res;
			e->enter_op = NULL;
		} else if (op->opcode == IORING_OP_LINK_TIMEOUT && res == -ETIME) {
			e->flags |= RSC__E_TIMED_OUT; /* the primary's -ECANCELED is a timeout */
		}
		if (res < 0 && res != -ECANCELED && !e->enter_err &&
		    (e->flags & RSC__E_ALL_OR_NONE)) {
			e->enter_err = res; /* e.g. LISTEN failing after BIND succeeded */
			e->enter_err_opcode = op->opcode;
		}
	} else {
		if (op->closes_value)
			e->close_res = res; /* the kernel's word for the audit */
		if (res < 0 && e->exit_res == 0) {
			e->exit_res = res;
			e->exit_opcode = op->opcode;
		}
	}
	assert(e->phase_ops > 0);
	if (--e->phase_ops)
		return;
	if (e->phase == RSC__PHASE_ENTER)
		enter_done(e);
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
static int reserve_sqes(struct rsc_entry *e, unsigned n,
			struct io_uring_sqe **sqes)
{
	struct rsc_loop *loop = e->scope->loop;
	struct rsc_op *ops[RSC_ENTRY_SQES_MAX];
	unsigned i;
	int ret;

	/*
	 * SQEs first: the flush that makes room may wait for completions, and
	 * must not count ops that have no SQE yet as being in the kernel.
	 */
	ret = rsc__get_sqes(loop, n, sqes);
	if (ret < 0)
		return ret;
	for (i = 0; i < n; i++) {
		ops[i] = rsc__op_get(loop);
		if (!ops[i]) {
			while (i-- > 0)
				rsc__op_put(loop, ops[i]);
			rsc__nop_sqes(sqes, n);
			return -ENOMEM;
		}
	}
	for (i = 0; i < n; i++) {
		ops[i]->entry = e;
		ops[i]->complete = entry_op_complete;
		ops[i]->primary = e->phase == RSC__PHASE_ENTER && !e->enter_op;
		if (ops[i]->primary)
			e->enter_op = ops[i];
		loop->hook_sqes[loop->n_hook_sqes] = sqes[i];
		loop->hook_ops[loop->n_hook_sqes] = ops[i];
		loop->n_hook_sqes++;
	}
	e->phase_ops += n;
	return 0;
}

int rsc_entry_get_sqes(struct rsc_entry *e, unsigned n,
		       struct io_uring_sqe **sqes)
{
	RSC__CHECK_ARG(e && sqes, "rsc_entry_get_sqes: entry or sqes is NULL");
	RSC__CHECK_ARG(n >= 1 && n <= RSC_ENTRY_SQES_MAX,
		       "rsc_entry_get_sqes: n must be 1..%d, not %u",
		       RSC_ENTRY_SQES_MAX, n);
	if (!entry_is_live(e) || e->scope->loop->hook_entry != e) {
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

/* After a hook: name each SQE's op and route its CQE back to us. */
static void stamp_phase_sqes(struct rsc_entry *e)
{
	struct rsc_loop *loop = e->scope->loop;
	unsigned i;

	for (i = 0; i < loop->n_hook_sqes; i++) {
		struct io_uring_sqe *sqe = loop->hook_sqes[i];
		struct rsc_op *op = loop->hook_ops[i];

		op->opcode = sqe->opcode;
		op->closes_value = sqe->opcode == IORING_OP_CLOSE &&
				   e->phase == RSC__PHASE_EXIT && sqe->fd == e->value &&
				   !(sqe->flags & IOSQE_FIXED_FILE);
		rsc__inject_fault(loop, sqe, op);
		if (op->primary)
			e->enter_opcode = op->opcode;
		io_uring_sqe_set_data64(sqe, rsc__op_user_data(op));
	}
	loop->n_hook_sqes = 0;
}

/* A hook that prepared nothing still completes from the loop. */
static int ensure_phase_sqe(struct rsc_entry *e)
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

/* Allocate and name an entry; it is linked by link_entry(). */
static struct rsc_entry *new_entry(struct rsc_scope *s, const struct rsc_manager *mgr,
				   void *arg, unsigned eflags, const char *detail,
				   const void *site)
{
	struct rsc_loop *loop = s->loop;
	size_t len = detail ? strlen(detail) : 0;
	struct rsc_entry *e = rsc__entry_get(loop);

	if (!e)
		return NULL;
	if (len >= sizeof(e->detail_inline)) {
		e->detail = malloc(len + 1);
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
	e->flags = eflags;
	e->state = RSC_ENTERING;
	e->value = -EAGAIN;
	e->close_res = 1;
	return e;
}

/* Newest at the tail: the unwind walks back from there. */
static void append_entry(struct rsc_scope *s, struct rsc_entry *e)
{
	e->prev = s->entries_tail;
	if (s->entries_tail)
		s->entries_tail->next = e;
	else
		s->entries_head = e;
	s->entries_tail = e;
}

static void link_entry(struct rsc_scope *s, struct rsc_entry *e)
{
	append_entry(s, e);
	s->n_entering++;
	s->loop->n_entering++;
}

/* Not submitted yet (one reservation, no submit since): make them NOPs. */
static void discard_hook_sqes(struct rsc_loop *loop)
{
	unsigned i;

	for (i = 0; i < loop->n_hook_sqes; i++) {
		io_uring_prep_nop(loop->hook_sqes[i]);
		loop->hook_ops[i]->entry = NULL;
		loop->hook_ops[i]->complete = discard_complete;
		io_uring_sqe_set_data64(loop->hook_sqes[i],
					rsc__op_user_data(loop->hook_ops[i]));
	}
	loop->n_hook_sqes = 0;
}

/* Run the manager's enter: 0 with its SQEs stamped, or its -errno. */
static int run_enter(struct rsc_entry *e)
{
	struct rsc_loop *loop = e->scope->loop;
	int ret;

	e->phase = RSC__PHASE_ENTER;
	loop->hook_entry = e;
	ret = e->mgr->enter(e, e->arg);
	loop->hook_entry = NULL;
	if (e->flags & RSC__E_BUILTIN)
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

int rsc__push(struct rsc_scope *s, const struct rsc_manager *mgr, void *arg,
	      unsigned eflags, const char *detail, const void *site,
	      struct rsc_entry **entryp)
{
	struct rsc_entry *e = new_entry(s, mgr, arg, eflags, detail, site);
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

int rsc__push_after(struct rsc_entry *dep, const struct rsc_manager *mgr,
		    void *owned_arg, unsigned eflags, const char *detail,
		    const void *site, struct rsc_entry **entryp)
{
	struct rsc_entry *e = new_entry(dep->scope, mgr, owned_arg, eflags, detail, site);

	if (!e) {
		free(owned_arg);
		return -ENOMEM;
	}
	/* Its enter needs dep's descriptor: it runs when dep has entered. */
	e->owned_arg = owned_arg;
	e->dep = dep;
	e->flags |= RSC__E_DEFERRED;
	dep->flags |= RSC__E_HAS_DEPS; /* only such entries look for dependents */
	e->phase = RSC__PHASE_ENTER;
	link_entry(dep->scope, e);
	if (entryp)
		*entryp = e;
	return 0;
}

/*
 * Own a descriptor that arrived by other means (an accept's CQE): the entry
 * is entered at once, as if its enter had just completed with @fd.
 */
struct rsc_entry *rsc__adopt(struct rsc_scope *s, const struct rsc_manager *mgr,
			     int fd, const char *detail)
{
	struct rsc_loop *loop = s->loop;
	struct rsc_entry *e = new_entry(s, mgr, NULL, RSC__E_FD, detail, NULL);

	if (!e)
		return NULL;
	e->state = RSC_ENTERED;
	e->value = fd;
	append_entry(s, e);
	loop->counters[RSC_CTR_ACQUIRED]++;
	if (loop->audit_level == RSC_AUDIT_FULL)
		rsc__audit_record(loop, e);
	rsc__trace(loop, RSC_EV_ENTERED, s, e, fd);
	return e;
}

/* A hook that found its result itself (a syscall): report it from the loop. */
int rsc__entry_complete_with(struct rsc_entry *e, int res, const char *op)
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

/* Checks shared by every push: a live, open scope on a loop not in a hook. */
int rsc__scope_check_push(struct rsc_scope *s, const char *fn)
{
	RSC__CHECK_ARG(s, "%s: scope is NULL", fn);
	RSC__CHECK_ARG(s->state >= RSC_SCOPE_OPEN && s->state <= RSC_SCOPE_UNWOUND,
		       "%s: not a live scope (closed already?)", fn);
	if (s->loop->hook_entry) {
		/* Its SQEs would interleave with the running hook's reservation. */
		rsc__set_last_error("%s: not from inside a manager's enter or exit", fn);
		return -EBUSY;
	}
	if (s->state != RSC_SCOPE_OPEN || s->closer != RSC__CLOSER_NONE) {
		rsc__set_last_error("%s: scope '%s' is unwinding; nothing more can be pushed",
				    fn, s->name);
		return -ESHUTDOWN;
	}
	return 0;
}

int rsc_push(struct rsc_scope *s, const struct rsc_manager *mgr, void *arg,
	     struct rsc_entry **entryp)
{
	int ret;

	if (entryp)
		*entryp = NULL;
	RSC__CHECK_ARG(mgr, "rsc_push: manager is NULL");
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
	ret = rsc__scope_check_push(s, "rsc_push");
	if (ret < 0)
		return ret;
	return rsc__push(s, mgr, arg, RSC__E_ORDERED, NULL,
			 __builtin_return_address(0), entryp);
}

void rsc__entry_cancel(struct rsc_entry *e)
{
	if (e->state != RSC_ENTERING || (e->flags & RSC__E_CANCEL_SENT) ||
	    !e->enter_op)
		return;
	/* A cancel's CQE proves nothing; we wait for the acquire's own CQE. */
	if (rsc__submit_cancel(e->scope->loop, e->enter_op))
		e->flags |= RSC__E_CANCEL_SENT;
}

static void chain_error(struct rsc_scope *s, int err, unsigned opcode,
			const struct rsc_entry *e)
{
	struct rsc_error *next = rsc__error_new(err, rsc__opcode_name(opcode),
						e->mgr->name, e->detail,
						s->name, s->pending);

	if (next) {
		rsc__error_unref(s->pending);
		s->pending = next;
	}
}

static void resolve_dependents(struct rsc_entry *dep);

static void enter_done(struct rsc_entry *e)
{
	struct rsc_scope *s = e->scope;
	struct rsc_loop *loop = s->loop;
	bool early = e->flags & RSC__E_RELEASE_REQ;

	if (e->value == -ECANCELED && (e->flags & RSC__E_TIMED_OUT))
		e->value = -ETIMEDOUT;
	if (e->enter_err && (e->value >= 0 || e->value == -ECANCELED)) {
		e->value = e->enter_err;
		e->enter_opcode = e->enter_err_opcode;
	}
	if (e->value >= 0 && (e->flags & RSC__E_VALUE_OF_DEP))
		e->value = e->dep->value; /* e.g. a connect: the connected socket */
	e->phase = RSC__PHASE_NONE;
	assert(s->n_entering > 0 && loop->n_entering > 0);
	s->n_entering--;
	loop->n_entering--;
	if (e->value >= 0) {
		e->state = RSC_ENTERED;
		loop->counters[RSC_CTR_ACQUIRED]++;
		if (e->flags & RSC__E_CANCEL_SENT)
			loop->counters[RSC_CTR_LATE_ACQUIRES]++; /* won the race */
		if (loop->audit_level == RSC_AUDIT_FULL)
			rsc__audit_record(loop, e);
	} else {
		e->state = RSC_FAILED;
		loop->counters[RSC_CTR_ENTER_FAILED]++;
	}
	/* Traced before the unwind it may start, so the trace reads in order. */
	rsc__trace(loop, e->value >= 0 ? RSC_EV_ENTERED : RSC_EV_ENTER_FAILED, s,
		   e, e->value);
	if (e->value < 0) {
		if (early) {
			/* Released while entering and nothing was acquired: done. */
			s->n_early--;
		} else if (s->state == RSC_SCOPE_OPEN) {
			/* A failed enter unwinds what was entered before it. */
			struct rsc_error *err = rsc__error_new(
				e->value, e->fail_op ? e->fail_op : rsc__opcode_name(e->enter_opcode),
				e->mgr->name, e->detail, s->name, NULL);

			e->flags |= RSC__E_REPORTED_ERR;
			rsc__scope_begin_unwind(s, err);
		} else if (e->value != -ECANCELED || !(e->flags & RSC__E_CANCEL_SENT)) {
			/* Failed on its own while the scope was unwinding: keep it. */
			chain_error(s, e->value, e->enter_opcode, e);
			e->flags |= RSC__E_REPORTED_ERR;
		}
	}
	if (e->enter_cb)
		e->enter_cb(e, e->value, e->enter_data);
	if (early) {
		if (e->state == RSC_ENTERED)
			rsc__entry_start_exit(e);
		else if (e->release_cb)
			e->release_cb(e, e->value, e->release_data);
	}
	if (e->flags & RSC__E_HAS_DEPS)
		resolve_dependents(e);
	if (s->state == RSC_SCOPE_UNWINDING)
		rsc__scope_step(s);
	if (loop->n_entering == 0 && loop->audit_pending)
		rsc__audit_flush(loop); /* the last acquire in flight has settled */
}

/* Settle a deferred enter right now, as if its CQE said @res. */
static void fail_deferred(struct rsc_entry *d, int res, bool cancelled)
{
	d->value = res;
	if (cancelled)
		d->flags |= RSC__E_CANCEL_SENT; /* not an error of its own */
	if (!d->fail_op)
		d->fail_op = "enter";
	d->phase_ops = 0;
	enter_done(d);
}

/*
 * @dep settled: start the enters that were waiting for its descriptor, or
 * cancel them if it failed or their scope is closing.
 */
static void resolve_dependents(struct rsc_entry *dep)
{
	struct rsc_entry *d;
	int ret;

	for (d = dep->next; d; d = d->next) {
		if (!(d->flags & RSC__E_DEFERRED) || d->dep != dep)
			continue;
		d->flags &= ~RSC__E_DEFERRED;
		if (dep->state != RSC_ENTERED || (d->flags & RSC__E_RELEASE_REQ) ||
		    d->scope->state != RSC_SCOPE_OPEN || d->scope->closer != RSC__CLOSER_NONE) {
			fail_deferred(d, -ECANCELED, true);
			continue;
		}
		ret = run_enter(d);
		if (ret < 0)
			fail_deferred(d, ret, false);
	}
}

static void exit_done(struct rsc_entry *e)
{
	struct rsc_scope *s = e->scope;
	struct rsc_loop *loop = s->loop;

	e->phase = RSC__PHASE_NONE;
	e->state = RSC_EXITED;
	loop->counters[RSC_CTR_RELEASED]++;
	if (!(e->flags & RSC__E_RELEASE_REQ)) {
		e->flags |= RSC__E_DONE;
		rsc__scope_report(s);
		return;
	}
	assert(s->n_early > 0);
	s->n_early--;
	rsc__trace(loop, RSC_EV_RELEASED, s, e, e->exit_res);
	rsc__audit_check_released(loop, e);
	if (e->release_cb)
		e->release_cb(e, e->exit_res, e->release_data);
	else if (e->exit_res < 0)
		/* No callback to hear it: the scope's result carries it instead. */
		chain_error(s, e->exit_res, e->exit_opcode, e);
	if (s->state == RSC_SCOPE_UNWINDING)
		rsc__scope_step(s);
}

/* A release that could not get an SQE now is queued, never dropped. */
static void queue_retry(struct rsc_entry *e)
{
	struct rsc_loop *loop = e->scope->loop;

	e->next_retry = loop->retry_head;
	loop->retry_head = e;
}

static void settle_exit_failure(struct rsc_entry *e)
{
	/* The ring kept refusing SQEs: report it rather than wait forever. */
	if (e->exit_res == 0) {
		e->exit_res = -EBUSY;
		e->exit_opcode = RSC__OPCODE_HOOK;
	}
	e->scope->loop->n_hook_sqes = 0;
	e->phase_ops = 0;
	exit_done(e);
}

unsigned rsc__retry_exits(struct rsc_loop *loop)
{
	struct rsc_entry *e, *list = loop->retry_head;
	unsigned n = 0;

	loop->retry_head = NULL;
	while ((e = list)) {
		list = e->next_retry;
		n++;
		if (++e->exit_retries > RSC__EXIT_RETRIES) {
			e->state = RSC_EXITING;
			e->phase = RSC__PHASE_EXIT;
			settle_exit_failure(e);
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

void rsc__entry_start_exit(struct rsc_entry *e)
{
	struct rsc_scope *s = e->scope;
	struct rsc_loop *loop = s->loop;
	const struct rsc_error *pending;
	int ret;

	assert(e->state == RSC_ENTERED ||
	       (e->state == RSC_EXITING &&
		(e->flags & (RSC__E_RETRY_HOOK | RSC__E_DRAINING))));
	if (e->n_io) {
		/* No I/O outlives its resource: cancel it, release after its last CQE. */
		e->state = RSC_EXITING;
		if (!(e->flags & RSC__E_DRAINING)) {
			e->flags |= RSC__E_DRAINING;
			rsc__io_cancel_all(e);
		}
		return;
	}
	e->flags &= ~(RSC__E_RETRY_HOOK | RSC__E_DRAINING);
	/* An early release runs outside any unwind: nothing is pending for it. */
	pending = (e->flags & RSC__E_RELEASE_REQ) ? NULL : s->pending;
	e->state = RSC_EXITING;
	e->phase = RSC__PHASE_EXIT;
	e->exit_res = 0;
	e->close_res = 1;
	loop->hook_entry = e;
	ret = e->mgr->exit(e, pending, e->arg);
	loop->hook_entry = NULL;
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

void rsc__entry_free(struct rsc_loop *loop, struct rsc_entry *e)
{
	assert(e->phase_ops == 0);
	rsc__entry_put(loop, e);
}

int rsc_entry_on_enter(struct rsc_entry *e, rsc_entry_cb cb, void *data)
{
	RSC__CHECK_ARG(e && entry_is_live(e), "rsc_entry_on_enter: not a live entry");
	if (e->state != RSC_ENTERING) {
		rsc__set_last_error("rsc_entry_on_enter: the enter has completed already");
		return -EALREADY;
	}
	e->enter_cb = cb;
	e->enter_data = cb ? data : NULL;
	return 0;
}

int rsc_entry_release(struct rsc_entry *e, rsc_entry_cb cb, void *data)
{
	RSC__CHECK_ARG(e && entry_is_live(e), "rsc_entry_release: not a live entry");
	/* Never touch the number again: it may belong to someone else by now. */
	if ((e->flags & RSC__E_RELEASE_REQ) || e->state == RSC_EXITING ||
	    e->state == RSC_EXITED) {
		rsc__set_last_error("rsc_entry_release: entry '%s' is released already",
				    e->mgr->name);
		return -EALREADY;
	}
	if (e->state == RSC_FAILED) {
		rsc__set_last_error("rsc_entry_release: entry '%s' failed to enter: it holds nothing",
				    e->mgr->name);
		return -EALREADY;
	}
	if (e->scope->loop->hook_entry) {
		rsc__set_last_error("rsc_entry_release: not from inside a manager's enter or exit");
		return -EBUSY;
	}
	e->flags |= RSC__E_RELEASE_REQ;
	e->release_cb = cb;
	e->release_data = cb ? data : NULL;
	e->scope->n_early++;
	if (e->state == RSC_ENTERING)
		rsc__entry_cancel(e); /* released when (if) the acquire wins */
	else
		rsc__entry_start_exit(e);
	return 0;
}

int rsc_entry_fd(const struct rsc_entry *e)
{
	if (!e || !entry_is_live(e))
		return -EINVAL;
	switch (e->state) {
	case RSC_ENTERING:
		return -EAGAIN;
	case RSC_ENTERED:
	case RSC_EXITING:
	case RSC_FAILED:
		return e->value;
	default:
		return -EBADF;
	}
}

int rsc_entry_state(const struct rsc_entry *e)
{
	if (!e || !entry_is_live(e))
		return -EINVAL;
	return e->state;
}

const char *rsc_entry_name(const struct rsc_entry *e)
{
	return e && entry_is_live(e) ? e->mgr->name : "";
}

const char *rsc_entry_detail(const struct rsc_entry *e)
{
	return e && entry_is_live(e) ? e->detail : "";
}

struct rsc_scope *rsc_entry_scope(const struct rsc_entry *e)
{
	return e && entry_is_live(e) ? e->scope : NULL;
}

void *rsc_entry_arg(const struct rsc_entry *e)
{
	return e && entry_is_live(e) ? e->arg : NULL;
}
