/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define REAP_BATCH 64U
/* Bound on -EBUSY/-EAGAIN retries of one submit before giving up. */
#define SUBMIT_RETRIES 1000

static const char *setup_error_reason(int err)
{
	switch (-err) {
	case ENOSYS:
		return "the kernel has no io_uring (CONFIG_IO_URING off, or the syscall is filtered by seccomp)";
	case EPERM:
		return "io_uring is disabled (sysctl kernel.io_uring_disabled, or a seccomp/LSM policy)";
	case ENOMEM:
		return "the kernel could not allocate the ring (RLIMIT_MEMLOCK, or memory)";
	case EMFILE:
	case ENFILE:
		return "no descriptor left for the ring fd";
	default:
		return "io_uring_setup failed";
	}
}

#define RSC__MAX_CQ_ENTRIES 65536U

/* A "missing:" fault rule names a setup flag of @setup: as a kernel without it. */
static bool setup_masked(const struct rsc_loop *loop, unsigned setup)
{
	static const struct {
		unsigned flag;
		enum rsc__missing_feature what;
	} masks[] = {
		{ IORING_SETUP_SINGLE_ISSUER, RSC__MISSING_SINGLE_ISSUER },
		{ IORING_SETUP_DEFER_TASKRUN, RSC__MISSING_DEFER_TASKRUN },
		{ IORING_SETUP_COOP_TASKRUN, RSC__MISSING_COOP_TASKRUN },
		{ IORING_SETUP_SUBMIT_ALL, RSC__MISSING_SUBMIT_ALL },
	};
	unsigned i;

	for (i = 0; i < sizeof(masks) / sizeof(masks[0]); i++)
		if ((setup & masks[i].flag) && rsc__fault_missing(&loop->faults, masks[i].what))
			return true;
	return false;
}

/* Newest setup first; the kernel says -EINVAL to flags it does not know. */
static int ring_setup(struct rsc_loop *loop, unsigned entries, unsigned flags)
{
	static const struct {
		unsigned setup;
		unsigned feats;
	} tries[] = {
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
			  IORING_SETUP_SUBMIT_ALL,
		  RSC_FEAT_SINGLE_ISSUER | RSC_FEAT_DEFER_TASKRUN },
		{ IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		  RSC_FEAT_COOP_TASKRUN },
		{ IORING_SETUP_SUBMIT_ALL, 0 },
		{ 0, 0 },
	};
	struct io_uring_params p;
	unsigned i;
	int ret = -EINVAL;

	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		/* A pollable loop needs completions posted while its thread sleeps in
		 * the host loop's poll: DEFER_TASKRUN holds them until the ring is
		 * entered (io_uring_setup(2)), so it is not tried then. */
		if ((flags & (RSC_LOOP_NO_DEFER_TASKRUN | RSC_LOOP_POLLABLE)) &&
		    (tries[i].setup & IORING_SETUP_DEFER_TASKRUN))
			continue;
		if (setup_masked(loop, tries[i].setup))
			continue;
		memset(&p, 0, sizeof(p));
		/* A deep CQ keeps a burst of inline completions out of overflow. */
		p.flags = tries[i].setup | IORING_SETUP_CQSIZE;
		/* At most the kernel's IORING_MAX_CQ_ENTRIES (65536, io_uring/io_uring.c). */
		p.cq_entries = entries * 4 < RSC__MAX_CQ_ENTRIES ? entries * 4 : RSC__MAX_CQ_ENTRIES;
		ret = io_uring_queue_init_params(entries, &loop->own_ring, &p);
		if (ret == 0) {
			loop->features = tries[i].feats;
			loop->ring = &loop->own_ring;
			loop->issuer = rsc__thread_serial(); /* the ring's submitter_task */
			/* Only its creator enters a single-issuer ring: registered with
			 * that thread, io_uring_enter(2) skips the descriptor lookup
			 * (Linux 5.18). A thread has 16 such slots; without one, the
			 * loop enters the ring by its descriptor, as before. */
			if ((loop->features & RSC_FEAT_SINGLE_ISSUER) &&
			    !rsc__fault_missing(&loop->faults, RSC__MISSING_REGISTER_RING) &&
			    io_uring_register_ring_fd(loop->ring) > 0)
				loop->features |= RSC_FEAT_REGISTERED_RING;
			return 0;
		}
		if (ret != -EINVAL)
			break;
	}
	rsc__set_last_error("cannot create an io_uring of %u entries: %s (%s)",
			    entries, setup_error_reason(ret), rsc_strerror(ret));
	return ret;
}

/* The probe's answer as bits. No probe (kernel < 5.6) means we cannot
 * tell: every opcode is tried, and its CQE says. */
static void note_opcodes(struct rsc_loop *loop)
{
	unsigned op;

	for (op = 0; op < 256; op++)
		if (!loop->probe || io_uring_opcode_supported(loop->probe, (int)op))
			loop->opcodes_ok[op / 64] |= 1ULL << (op % 64);
}

/* The ring is set up (ours or the application's): the rest of a loop. */
static int loop_finish(struct rsc_loop *loop, unsigned flags)
{
	int ret = 0;

	/* Opcodes are probed once; a missing one is named when first needed. */
	if (!rsc__fault_missing(&loop->faults, RSC__MISSING_PROBE))
		loop->probe = io_uring_get_probe_ring(loop->ring);
	note_opcodes(loop);
	if (loop->audit_level != RSC_AUDIT_OFF) {
		int dir = rsc__audit_open_proc_dir(loop); /* as rsc_loop_set_audit: not on without it */

		if (dir < 0) {
			rsc__set_last_error("RINGSCOPE_AUDIT: cannot open /proc/self/fd: %s",
					    rsc_strerror(dir));
			ret = dir;
		}
	}
	loop->root = rsc__scope_new_root(loop);
	/* RSC_LOOP_DIRECT: the direct table, registered sparse now (direct.c). */
	if (loop->root && ret >= 0 && (flags & RSC_LOOP_DIRECT))
		ret = rsc__direct_setup(loop, RSC_DIRECT_SLOTS_DEFAULT,
					RSC_DIRECT_CHAIN_SLOTS_DEFAULT);
	if (loop->root && ret >= 0)
		ret = rsc__post_init(loop);
	if (loop->root && ret >= 0 && (flags & RSC_LOOP_POLLABLE))
		ret = rsc__pollable_init(loop);
	if (loop->root && ret >= 0) {
		rsc__post_arm(loop);
		/* A host loop sleeps in its poll before it ever runs us: the
		 * posts' eventfd poll must be in the kernel by then. */
		if (loop->pollable && io_uring_sq_ready(loop->ring)) {
			ret = io_uring_submit(loop->ring);
			loop->counters[RSC_CTR_ENTER_CALLS]++;
			if (ret >= 0)
				loop->counters[RSC_CTR_SQES] += ret;
			else
				rsc__set_last_error("cannot submit the eventfd poll that wakes the loop for rsc_loop_post: %s",
						    rsc_strerror(ret));
			ret = ret < 0 ? ret : 0;
		}
	}
	if (loop->root && ret == 0)
		ret = rsc__obs_loop_new(loop); /* RINGSCOPE_TRACE; cleans up after itself */
	if (!loop->root || ret < 0) {
		if (loop->root)
			rsc__scope_free_tree(loop->root);
		if (loop->proc_fd_dir >= 0) {
			rsc__ledger_forget(loop->proc_fd_dir, RSC__LEDGER_RUNTIME);
			close(loop->proc_fd_dir);
		}
		io_uring_free_probe(loop->probe);
		rsc__pollable_free(loop);
		rsc__direct_free(loop);
		if (!loop->shared)
			io_uring_queue_exit(loop->ring);
		rsc__post_free(loop);
		rsc__pools_free(loop);
		rsc__handles_release(loop); /* the root scope's handle chunk */
		return ret < 0 ? ret : -ENOMEM;
	}
	rsc__audit_register(loop);
	/* Never adopted, the application's shared one included while we are on it:
	 * IORING_OP_CLOSE refuses a ring, so its release could never close it. */
	rsc__ledger_set(loop->ring->ring_fd, RSC__LEDGER_RUNTIME);
	return 0;
}

static struct rsc_loop *loop_alloc(int *retp)
{
	struct rsc_fault_state faults;
	struct rsc_loop *loop;
	int audit;

	/* A mistyped RINGSCOPE_AUDIT must not silently mean "off". */
	audit = rsc__audit_level_from_env();
	if (audit < 0) {
		*retp = audit;
		return NULL;
	}
	*retp = rsc__fault_from_env(&faults);
	if (*retp < 0)
		return NULL;
	loop = rsc__fault_state_alloc(&faults) ? NULL : calloc(1, sizeof(*loop));
	if (!loop) {
		*retp = -ENOMEM;
		return NULL;
	}
	loop->faults = faults;
	rsc__fork_watch(loop);
	rsc__list_init(&loop->announce_queue);
	rsc__list_init(&loop->ready_queue);
	rsc__list_init(&loop->graceful_list);
	rsc__list_init(&loop->io_entries);
	rsc__list_init(&loop->step_queue);
	rsc__list_init(&loop->retry_list);
	rsc__list_init(&loop->chains);
	rsc__list_init(&loop->audit_pending);
	loop->proc_fd_dir = -1;
	loop->closing_epoch = 1; /* a scope's owns_epoch starts at 0: nothing remembered */
	loop->poll_efd = -1;
	loop->post_efd = -1;
	loop->audit_level = audit;
	return loop;
}

int rsc_loop_new_from_ring(struct rsc_loop **loopp, struct io_uring *ring, unsigned flags)
{
	struct rsc_loop *loop;
	int ret;

	RSC__CHECK_ARG(loopp, "rsc_loop_new_from_ring: loopp is NULL");
	*loopp = NULL;
	RSC__CHECK_ARG(ring && ring->ring_fd >= 0, "rsc_loop_new_from_ring: ring is NULL");
	RSC__CHECK_ARG(!flags, "rsc_loop_new_from_ring: unknown flags 0x%x", flags);
	RSC__CHECK_ARG(ring->sq.ring_entries >= RSC_ENTRY_SQES_MAX,
		       "rsc_loop_new_from_ring: a ring of %u SQEs is less than %d",
		       ring->sq.ring_entries, RSC_ENTRY_SQES_MAX);
	ret = rsc__shared_ring_claim(ring);
	if (ret < 0)
		return ret;
	loop = loop_alloc(&ret);
	if (!loop) {
		rsc__shared_ring_release(ring);
		return ret;
	}
	loop->ring = ring;
	loop->shared = true;
	/* The application's choice, flag by flag: SINGLE_ISSUER also comes
	 * without DEFER_TASKRUN (which the kernel refuses without it). */
	if (ring->flags & IORING_SETUP_SINGLE_ISSUER)
		loop->features |= RSC_FEAT_SINGLE_ISSUER;
	if (ring->flags & IORING_SETUP_DEFER_TASKRUN)
		loop->features |= RSC_FEAT_DEFER_TASKRUN;
	if (ring->flags & IORING_SETUP_COOP_TASKRUN)
		loop->features |= RSC_FEAT_COOP_TASKRUN;
	loop->features |= RSC_FEAT_SHARED_RING;
	ret = loop_finish(loop, 0);
	if (ret < 0) {
		rsc__shared_ring_release(ring);
		free(loop);
		return ret;
	}
	*loopp = loop;
	return 0;
}

int rsc_loop_new(struct rsc_loop **loopp, unsigned entries, unsigned flags)
{
	struct rsc_loop *loop;
	int ret;

	RSC__CHECK_ARG(loopp, "rsc_loop_new: loopp is NULL");
	*loopp = NULL;
	RSC__CHECK_ARG(!(flags & ~(RSC_LOOP_NO_DEFER_TASKRUN | RSC_LOOP_POLLABLE | RSC_LOOP_DIRECT)),
		       "rsc_loop_new: unknown flags 0x%x", flags);
	RSC__CHECK_ARG(entries <= RSC__MAX_ENTRIES,
		       "rsc_loop_new: %u entries is more than %u", entries,
		       RSC__MAX_ENTRIES);
	*loopp = NULL;
	if (entries == 0)
		entries = RSC__DEFAULT_ENTRIES;
	/* Room for the longest SQE chain a hook may reserve (fsync+close...). */
	if (entries < RSC_ENTRY_SQES_MAX)
		entries = RSC_ENTRY_SQES_MAX;
	loop = loop_alloc(&ret);
	if (!loop)
		return ret;
	ret = ring_setup(loop, entries, flags);
	if (ret == 0)
		ret = loop_finish(loop, flags);
	if (ret < 0) {
		free(loop);
		return ret;
	}
	*loopp = loop;
	return 0;
}

int rsc_loop_features(const struct rsc_loop *loop)
{
	RSC__CHECK_ARG(loop, "rsc_loop_features: loop is NULL");
	return (int)loop->features;
}

int rsc__need_shutdown(struct rsc_loop *loop, unsigned flags)
{
	return (flags & RSC_SHUTDOWN_ON_RELEASE) ?
		       rsc__need_opcode(loop, IORING_OP_SHUTDOWN, "RSC_SHUTDOWN_ON_RELEASE") : 0;
}

/* Out of line: its buffer would cost every acquire a stack-protector check. */
int rsc__opcode_missing(unsigned opcode, const char *why)
{
	const char *lower = rsc__opcode_name(opcode);
	char name[32];
	size_t i;

	/* Named as the kernel's header spells it: IORING_OP_SOCKET, not _socket. */
	for (i = 0; lower[i] && i < sizeof(name) - 1; i++)
		name[i] = (char)toupper((unsigned char)lower[i]);
	name[i] = '\0';
	rsc__set_last_error("the kernel lacks IORING_OP_%s (opcode %u), needed for %s",
			    name, opcode, why);
	return -EOPNOTSUPP;
}

void rsc__trace_call(struct rsc_loop *loop, enum rsc_event ev,
		     const struct rsc__scope *s, const struct rsc__entry *e, int res)
{
	bool was = loop->tracing; /* an audit finding it asks for traces again */

	loop->tracing = true;
	if (rsc__cb_enter(loop))
		loop->trace_cb(loop, ev, rsc__sh(s), rsc__eh(e), res, loop->trace_data);
	loop->tracing = was;
	rsc__cb_leave(loop);
}

/* A CQE taken off the ring that completes an op, not yet dispatched. */
static bool ends_an_op(uint64_t user_data, unsigned flags)
{
	return rsc__ud_names_op(user_data) && !(flags & IORING_CQE_F_MORE);
}

/* Copy every CQE out of the ring so a retried submit has room. */
unsigned rsc__stash_cqes(struct rsc_loop *loop)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	if (rsc__loop_forked(loop))
		return 0; /* a callback forked: the CQ is the parent's (bug 72) */
	while (io_uring_peek_cqe(loop->ring, &cqe) == 0 && cqe) {
		if (loop->stash_len == loop->stash_cap) {
			unsigned cap = loop->stash_cap ? loop->stash_cap * 2 : 64;
			struct rsc_cqe_copy *s;

			s = rsc__realloc(loop, loop->stash, cap * sizeof(*s));
			if (!s)
				break; /* leave the rest in the ring: nothing is lost */
			loop->stash = s;
			loop->stash_cap = cap;
			loop->counters[RSC_CTR_POOL_ALLOCS]++;
		}
		loop->stash[loop->stash_len].user_data = cqe->user_data;
		loop->stash[loop->stash_len].res = cqe->res;
		loop->stash[loop->stash_len].flags = cqe->flags;
		loop->stash_len++;
		loop->undispatched += ends_an_op(cqe->user_data, cqe->flags);
		io_uring_cqe_seen(loop->ring, cqe);
		n++;
	}
	return n;
}

/*
 * Ops the kernel still has: in flight, minus those still waiting in the SQ,
 * minus those whose final CQE is already set aside in the stash. Waiting for
 * a completion when this is 0 would wait forever.
 */
static unsigned submitted_in_flight(const struct rsc_loop *loop)
{
	unsigned done = io_uring_sq_ready(loop->ring) + loop->undispatched;

	return loop->ops_inflight > done ? loop->ops_inflight - done : 0;
}


/*
 * The application's last SQE prepared and not yet submitted links to the
 * next one (IOSQE_IO_LINK, IOSQE_IO_HARDLINK): ours would join its chain,
 * run only if its op succeeds, and a close cancelled with it would leave its
 * descriptor open. Our chains are reserved whole, so an open link is never
 * ours.
 */
static bool app_chain_open(const struct io_uring *ring)
{
	const struct io_uring_sq *sq = &ring->sq;
	unsigned shift = (ring->flags & IORING_SETUP_SQE128) ? 1 : 0;

	if (sq->sqe_tail == sq->sqe_head)
		return false;
	return sq->sqes[((sq->sqe_tail - 1) & sq->ring_mask) << shift].flags &
	       (IOSQE_IO_LINK | IOSQE_IO_HARDLINK);
}

/*
 * Submit what is prepared, optionally waiting for one completion. -EBUSY
 * and -EAGAIN (CQ backlog, or kernel memory) mean: make room by reaping,
 * then submit again; a release is never dropped.
 */
RSC__HOT static int ring_submit_once(struct rsc_loop *loop, unsigned wait_nr)
{
	int tries, ret;

	if (rsc__loop_forked(loop))
		return rsc__forked_error(loop, "io_uring_enter"); /* the parent's SQEs */

	if (loop->shared) {
		/* Never reap the application's ring: submit, and that is all; and
		 * never in the middle of its chain, which a submit would end. */
		if (app_chain_open(loop->ring))
			return 0;
		ret = io_uring_submit(loop->ring);
		loop->counters[RSC_CTR_ENTER_CALLS]++;
		if (ret >= 0)
			loop->counters[RSC_CTR_SQES] += ret;
		return ret;
	}

	/* A push's flush or a hand-over from another thread comes here too;
	 * inside rsc_loop_run, its own check at the start has answered. */
	if (!loop->running && (ret = rsc__check_issuer(loop, "io_uring_enter")) < 0)
		return ret;
	for (tries = 0; tries < SUBMIT_RETRIES; tries++) {
		if (wait_nr && rsc__fault(loop, RSC__F_WAIT))
			return 0; /* an interrupted wait: the caller's loop comes back */
		ret = rsc__fault(loop, RSC__F_SUBMIT);
		if (ret == -EINTR)
			return 0;
		if (ret == -EBUSY || ret == -EAGAIN)
			goto busy;
		loop->counters[RSC_CTR_ENTER_CALLS]++;
		rsc__ledger_closing(loop, true);
		if (wait_nr)
			ret = io_uring_submit_and_wait(loop->ring, wait_nr);
		else if (loop->features & RSC_FEAT_DEFER_TASKRUN)
			/* Deferred task work only runs when we ask for events. */
			ret = io_uring_submit_and_get_events(loop->ring);
		else
			ret = io_uring_submit(loop->ring);
		if (ret >= 0) {
			loop->counters[RSC_CTR_SQES] += ret;
			rsc__obs_submit(loop, ret);
			rsc__ledger_submitted(loop, false);
			return ret;
		}
		rsc__ledger_closing(loop, false); /* nothing was submitted */
		if (ret == -EINTR)
			return 0; /* a signal: the caller's loop comes back */
		if (ret != -EBUSY && ret != -EAGAIN)
			return ret;
busy:
		loop->counters[RSC_CTR_BUSY_RETRIES]++;
		if (rsc__stash_cqes(loop) == 0 && submitted_in_flight(loop) > 0) {
			struct __kernel_timespec ms = { .tv_sec = 0, .tv_nsec = 1000000 };
			struct io_uring_cqe *cqe;

			/* Nothing to reap yet: wait for one completion, then retry. A
			 * moment at most: what is in flight may never end by itself (an
			 * idle connection's receive), and the retry may succeed anyway. */
			loop->counters[RSC_CTR_ENTER_CALLS]++;
			ret = io_uring_wait_cqe_timeout(loop->ring, &cqe, &ms);
			if (ret < 0 && ret != -EINTR && ret != -EAGAIN &&
			    ret != -EBUSY && ret != -ETIME)
				return ret;
			rsc__stash_cqes(loop);
		}
		/* Completions set aside are what a waiting caller waits for. */
		if (loop->stash_len)
			wait_nr = 0;
	}
	rsc__set_last_error("io_uring_enter kept returning %s after %d retries",
			    rsc_err_name(ret), SUBMIT_RETRIES);
	return ret;
}

/*
 * What ring_submit_once() does, again while it makes progress and SQEs are
 * left: without IORING_SETUP_SUBMIT_ALL (before Linux 5.18) the kernel stops
 * after the first SQE it refuses, and waits for nothing then; a turn submits
 * every SQE prepared (rsc_loop_run(3)). The application's ring is its own.
 */
RSC__HOT static int ring_submit(struct rsc_loop *loop, unsigned wait_nr)
{
	int ret, total = 0;

	while ((ret = ring_submit_once(loop, wait_nr)) > 0 && !loop->shared &&
	       io_uring_sq_ready(loop->ring) > 0)
		total += ret;
	if (ret < 0)
		return total ? total : ret; /* the next submit meets it again */
	return total + ret;
}

int rsc__submit_now(struct rsc_loop *loop)
{
	return ring_submit(loop, 0);
}

/* What rsc__get_sqes() does not do inline: kick a host, make room, refuse. */
int rsc__get_sqes_slow(struct rsc_loop *loop, unsigned n, struct io_uring_sqe **sqes,
		       bool injected_full)
{
	struct io_uring_sq *sq = &loop->ring->sq;
	if (n == 0 || n > sq->ring_entries)
		return -EINVAL;
	/* A child of fork(2): the SQ is the parent's memory, even for a free's cancel. */
	RSC__SAME_PROCESS(loop, "io_uring_get_sqe");
	/* Not flushed either: that would end the application's chain early. */
	if (loop->shared && app_chain_open(loop->ring)) {
		rsc__set_last_error("the application's last SQE, not yet submitted, links to the next: ringscope's SQEs wait until that chain is complete");
		return -EBUSY;
	}
	if (loop->pollable)
		rsc__kick(loop); /* prepared outside a run: the host must run us */
	/* Reserve all n before filling any, so a chain never crosses a submit.
	 * An injected sq_full is drawn once: inline, or here when the inline
	 * path did not get that far. */
	if (injected_full || io_uring_sq_space_left(loop->ring) < n ||
	    rsc__fault(loop, RSC__F_SQ_FULL)) {
		loop->counters[RSC_CTR_SQ_FULL]++;
		/* A hook's reserved SQEs are stamped only when it returns: a flush
		 * now (a deadline set from inside it) would send them unfinished. */
		/* ring_submit() goes on past an SQE the kernel refused (no SUBMIT_ALL). */
		if (loop->n_hook_sqes || ring_submit(loop, 0) < 0 ||
		    io_uring_sq_space_left(loop->ring) < n) {
			rsc__set_last_error("the submission queue is full and could not be flushed");
			return -EBUSY;
		}
	}
	rsc__take_sqes(sq, n, sqes, (loop->ring->flags & IORING_SETUP_SQE128) ? 1 : 0);
	return 0;
}

/* Taken SQEs that will carry nothing: NOPs no op waits for, counted until
 * their CQEs come (on the application's ring, rsc_loop_close must not free
 * the loop while one of ours is still to be reaped and dispatched). */
void rsc__nop_sqes(struct rsc_loop *loop, struct io_uring_sqe **sqes, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		io_uring_prep_nop(sqes[i]);
		io_uring_sqe_set_data64(sqes[i], RSC__UD_NONE);
	}
	loop->nops_inflight += n;
}

/* One SQE and the op it completes, SQE first (see reserve_sqes). */
int rsc__op_with_sqe_why(struct rsc_loop *loop, struct io_uring_sqe **sqep, struct rsc_op **opp)
{
	return rsc__op_with_sqe_inline(loop, sqep, opp);
}

struct rsc_op *rsc__op_with_sqe(struct rsc_loop *loop, struct io_uring_sqe **sqep)
{
	struct rsc_op *op;

	(void)rsc__op_with_sqe_why(loop, sqep, &op);
	return op;
}

/* Sent again while its target is in flight, 1 ms apart and doubling up to
 * this pause, then at this pause: a target the kernel keeps out of a cancel's
 * reach need not end by itself (an AF_UNIX connect to a full backlog bounces
 * between poll and task work, then blocks in io-wq for good), and a cancel
 * that stops trying leaves its scope unwinding for ever. */
#define RSC__CANCEL_PAUSE_MAX_MS 128U

static struct rsc_op *submit_cancel_ud(struct rsc_loop *loop, uint64_t target_ud,
				       unsigned tries);
static void backlog_cancel(struct rsc_loop *loop, uint64_t target_ud);

/* The pause before a cancel's try @tries + 1 (tries counts from 1). */
static unsigned cancel_pause_ms(unsigned tries)
{
	return tries > 8 ? RSC__CANCEL_PAUSE_MAX_MS : 1U << (tries - 1);
}

/* The pause is over: the target, if still in flight, is where a cancel sees it. */
static void cancel_retry_done(struct rsc_loop *loop, struct rsc_op *op, int res,
			      unsigned cqe_flags)
{
	(void)res;
	(void)cqe_flags;
	if (rsc__op_lookup(loop, op->cancel_ud))
		(void)submit_cancel_ud(loop, op->cancel_ud,
				       op->cancel_tries < 64 ? op->cancel_tries + 1 : op->cancel_tries);
}

static void cancel_done(struct rsc_loop *loop, struct rsc_op *op, int res,
			unsigned cqe_flags)
{
	struct io_uring_sqe *sqe;
	struct rsc_op *pause;

	(void)cqe_flags;
	if (op->cancel_entry) {
		rsc__io_cancel_fd_short(loop, op, res);
		return;
	}
	/*
	 * A cancel's result proves nothing: only the target's own CQE decides.
	 * But -ENOENT while the target is still in flight means the kernel held
	 * it where no cancel looks: on a DEFER_TASKRUN ring, an op whose poll
	 * fired waits in the ring's task work, and an AF_UNIX connect waiting for
	 * backlog room goes round poll and task work until the thread sleeps in
	 * the ring, then blocks in an io-wq worker; sent again at once, the
	 * cancel misses it again (the cancel's own CQE ends the wait first). So
	 * the loop waits a moment, in the kernel, and sends it again.
	 */
	if (res != -ENOENT || !rsc__op_lookup(loop, op->cancel_ud))
		return;
	pause = rsc__op_with_sqe(loop, &sqe);
	if (!pause) {
		backlog_cancel(loop, op->cancel_ud); /* sent again next turn, without the pause */
		return;
	}
	rsc__prep_timeout_ms(pause, sqe, cancel_pause_ms(op->cancel_tries), cancel_retry_done);
	pause->cancel_ud = op->cancel_ud;
	pause->cancel_tries = op->cancel_tries;
}

/*
 * An injected lost cancel: a no-op whose result is the rule's errno, as the
 * kernel answers a cancel that found nothing (-ENOENT: a target still in
 * flight is sent a cancel again) or one whose target already runs and will
 * complete by itself (-EALREADY: nothing more is sent).
 */
static void cancel_misses(struct rsc_op *op, struct io_uring_sqe *sqe, int err)
{
	io_uring_prep_nop(sqe);
	op->fault_res = err;
}

/*
 * A cancel that found no SQE (a full queue that may not be flushed inside a
 * hook, no memory for its op) is not dropped: its target could otherwise
 * stay in flight forever (an idle receive) and hold its release. The next
 * turn of the loop sends it.
 */
static void backlog_cancel(struct rsc_loop *loop, uint64_t target_ud)
{
	if (loop->n_cancel_backlog == loop->cancel_backlog_cap) {
		unsigned cap = loop->cancel_backlog_cap ? 2 * loop->cancel_backlog_cap : 16;
		uint64_t *b = rsc__realloc(loop, loop->cancel_backlog, cap * sizeof(*b));

		if (!b) {
			/* No memory even for this: the target itself remembers (no
			 * memory needed), and the next turn finds it by a walk. */
			struct rsc_op *t = rsc__op_lookup(loop, target_ud);

			if (t && !t->cancel_owed) {
				t->cancel_owed = true;
				loop->n_cancel_owed++;
			}
			return;
		}
		loop->cancel_backlog = b;
		loop->cancel_backlog_cap = cap;
	}
	loop->cancel_backlog[loop->n_cancel_backlog++] = target_ud;
}

/* Cancels that found no memory for the backlog either: a walk of the op table. */
static void cancel_owed_send(struct rsc_loop *loop)
{
	unsigned c, i, n = loop->n_cancel_owed;

	for (c = 0; n && c < loop->n_op_chunks; c++)
		for (i = 0; n && i < RSC__OPS_PER_CHUNK; i++) {
			struct rsc_op *op = &loop->op_chunks[c][i].op;

			if (!op->cancel_owed || !op->complete)
				continue;
			op->cancel_owed = false;
			loop->n_cancel_owed--;
			n--;
			(void)submit_cancel_ud(loop, rsc__op_user_data(op), 1);
		}
}

/* The cancels that waited for an SQE or memory, to targets still in flight. */
static void cancel_backlog_send(struct rsc_loop *loop)
{
	unsigned i, n = loop->n_cancel_backlog;

	loop->n_cancel_backlog = 0;
	for (i = 0; i < n; i++)
		if (rsc__op_lookup(loop, loop->cancel_backlog[i]))
			(void)submit_cancel_ud(loop, loop->cancel_backlog[i], 1);
	if (loop->n_cancel_owed)
		cancel_owed_send(loop);
}

/* Cancels left for a later turn: in the backlog, or marked on their targets. */
RSC__INLINE bool cancels_owed(const struct rsc_loop *loop)
{
	return loop->n_cancel_backlog || loop->n_cancel_owed;
}

static struct rsc_op *submit_cancel_ud(struct rsc_loop *loop, uint64_t target_ud,
				       unsigned tries)
{
	struct io_uring_sqe *sqe;
	struct rsc_op *op = rsc__op_with_sqe(loop, &sqe);
	int err;

	if (!op) {
		backlog_cancel(loop, target_ud);
		return NULL;
	}
	io_uring_prep_cancel64(sqe, target_ud, 0);
	op->cancel_ud = target_ud;
	op->cancel_tries = tries;
	op->cancel_entry = 0;
	/* Injected: the cancel misses its target, as if it came too late. */
	if ((err = rsc__fault(loop, RSC__F_CANCEL)))
		cancel_misses(op, sqe, err);
	op->complete = cancel_done;
	op->opcode = IORING_OP_ASYNC_CANCEL;
	io_uring_sqe_set_data64(sqe, rsc__op_user_data(op));
	return op;
}

struct rsc_op *rsc__submit_cancel(struct rsc_loop *loop, struct rsc_op *target)
{
	return submit_cancel_ud(loop, rsc__op_user_data(target), 1);
}

void rsc__prep_timeout_ms(struct rsc_op *op, struct io_uring_sqe *sqe, unsigned ms,
			  rsc__op_fn complete)
{
	/* The op carries its timespec: the kernel reads it at submit. */
	op->ts.tv_sec = ms / 1000;
	op->ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	io_uring_prep_timeout(sqe, &op->ts, 0, 0);
	io_uring_sqe_set_data64(sqe, rsc__op_user_data(op));
	op->opcode = IORING_OP_TIMEOUT;
	op->complete = complete;
}

struct rsc_op *rsc__submit_cancel_fd(struct rsc_loop *loop, int fd, bool fixed)
{
	struct io_uring_sqe *sqe;
	struct rsc_op *op = rsc__op_with_sqe(loop, &sqe);
	int err;

	if (!op)
		return NULL;
	/* A slot is no process descriptor: without FD_FIXED the kernel would look
	 * up the process's descriptor of that number (io_uring/cancel.c). */
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL |
					 (fixed ? IORING_ASYNC_CANCEL_FD_FIXED : 0));
	if ((err = rsc__fault(loop, RSC__F_CANCEL)))
		cancel_misses(op, sqe, err); /* injected: as if it came too late */
	op->complete = cancel_done;
	op->opcode = IORING_OP_ASYNC_CANCEL;
	/* No one target to send again to (a pooled op keeps its last one):
	 * the caller names the entry whose ops it should find. */
	op->cancel_ud = 0;
	op->cancel_tries = 0;
	op->cancel_entry = 0;
	op->cancel_expect = 0;
	io_uring_sqe_set_data64(sqe, rsc__op_user_data(op));
	loop->counters[RSC_CTR_CANCEL_FD]++;
	return op;
}

static void dispatch(struct rsc_loop *loop, uint64_t user_data, int res,
		     unsigned flags);

/* A CQE the application reaped from a shared ring (host.c). */
void rsc__dispatch_one(struct rsc_loop *loop, uint64_t user_data, int res, unsigned flags)
{
	loop->undispatched += ends_an_op(user_data, flags);
	dispatch(loop, user_data, res, flags);
}

/* Inline into reap(), the one that runs for every CQE; dispatch() elsewhere. */
RSC__HOT RSC__INLINE void dispatch_inline(struct rsc_loop *loop, uint64_t user_data, int res, unsigned flags)
{
	struct rsc_op *op;
	rsc__op_fn fn;

	loop->counters[RSC_CTR_CQES]++;
	if (user_data == RSC__UD_NONE) {
		loop->nops_inflight -= loop->nops_inflight > 0;
		return;
	}
	if (user_data == RSC__UD_POST) {
		rsc__post_woken(loop, res, flags); /* another thread posted and woke us */
		return;
	}
	if (rsc__ud_low_names_no_op(user_data)) {
		/* Not the wake-up (above): another loop's MSG_RING. */
		rsc__handover_message(loop, user_data, res);
		return;
	}
	op = rsc__op_lookup(loop, user_data);
	assert(op && "CQE for an op that is not in flight");
	if (!op) {
		loop->undispatched -= !(flags & IORING_CQE_F_MORE);
		return;
	}
	if (op->fault_res)
		res = op->fault_res; /* injected (fault.c): the op's result is replaced */
	fn = op->complete;
	fn(loop, op, res, flags);
	/* Retired only now: while its callback ran, the kernel no longer had it. */
	if (!(flags & IORING_CQE_F_MORE)) {
		rsc__op_put(loop, op);
		loop->undispatched--;
	}
}

static void dispatch(struct rsc_loop *loop, uint64_t user_data, int res, unsigned flags)
{
	dispatch_inline(loop, user_data, res, flags);
}

static unsigned dispatch_stash(struct rsc_loop *loop)
{
	unsigned i, n, total = 0;

	/* Until empty: what a busy submit inside a callback sets aside is newer
	 * than what was here, but older than anything still in the ring, which
	 * the caller reaps next (a multishot receive's bytes keep their order). */
	while ((n = loop->stash_len) > 0) {
		for (i = 0; i < n; i++) {
			/* A callback that forked returns into the child's copy: the
			 * rest is the parent's to run, as in reap(). */
			if (rsc__loop_forked(loop))
				return total + i;
			dispatch(loop, loop->stash[i].user_data, loop->stash[i].res,
				 loop->stash[i].flags);
		}
		memmove(loop->stash, loop->stash + n,
			(loop->stash_len - n) * sizeof(*loop->stash));
		loop->stash_len -= n;
		total += n;
	}
	return total;
}

/*
 * Copy up to REAP_BATCH CQEs out of the ring and advance past them: what
 * io_uring_peek_batch_cqe() and io_uring_cq_advance() do, without a call
 * into liburing on every turn. An empty ring whose kernel side holds an
 * overflow or task work still goes through liburing, which flushes it.
 * Each final CQE counts as undispatched from here: off the ring, no longer
 * the kernel's.
 */
RSC__HOT static unsigned take_cqes(struct rsc_loop *loop, struct rsc_cqe_copy *copy)
{
	struct io_uring *ring = loop->ring;
	unsigned shift = (ring->flags & IORING_SETUP_CQE32) ? 1 : 0;
	unsigned head = *ring->cq.khead, i, n;

	if (rsc__loop_forked(loop))
		return 0; /* a callback forked: the CQ is the parent's */

	n = io_uring_smp_load_acquire(ring->cq.ktail) - head;
	if (n == 0) {
		struct io_uring_cqe *cqes[REAP_BATCH];

		if (!(IO_URING_READ_ONCE(*ring->sq.kflags) &
		      (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)))
			return 0;
		n = io_uring_peek_batch_cqe(ring, cqes, REAP_BATCH);
		for (i = 0; i < n; i++) {
			copy[i].user_data = cqes[i]->user_data;
			copy[i].res = cqes[i]->res;
			copy[i].flags = cqes[i]->flags;
			loop->undispatched += ends_an_op(copy[i].user_data, copy[i].flags);
		}
	} else {
		if (n > REAP_BATCH)
			n = REAP_BATCH;
		for (i = 0; i < n; i++) {
			const struct io_uring_cqe *cqe =
				&ring->cq.cqes[((head + i) & ring->cq.ring_mask) << shift];

			copy[i].user_data = cqe->user_data;
			copy[i].res = cqe->res;
			copy[i].flags = cqe->flags;
			loop->undispatched += ends_an_op(copy[i].user_data, copy[i].flags);
		}
	}
	if (n)
		io_uring_cq_advance(ring, n);
	return n;
}

RSC__HOT static unsigned reap(struct rsc_loop *loop)
{
	struct rsc_cqe_copy copy[REAP_BATCH];
	unsigned i, n, total = 0;

	/* Set aside by a busy submit since the last reap: older than anything
	 * still in the ring, so first (the CQE of a link's head before its
	 * next's: a hand-over's MSG_RING before the close behind it). */
	if (loop->stash_len)
		total += dispatch_stash(loop);
	if (rsc__loop_forked(loop))
		return total; /* the child's copy: the CQ is the parent's */
	/* Injected: take the overflow path, as after -EBUSY. */
	if (rsc__fault(loop, RSC__F_CQ_OVERFLOW)) {
		rsc__stash_cqes(loop);
		return total + dispatch_stash(loop);
	}
	/* Copy and advance before dispatching: a callback may submit again. */
	while ((n = take_cqes(loop, copy)) > 0) {
		/* Traced: the batch's completions are stamped with one clock reading. */
		if (RSC__OBS_ON(loop) && (loop->obs_flags & RSC__OBS_TRACE))
			loop->obs_reap_ns = rsc__tj_now(loop->tj);
		/* A callback that forked returns into the child's copy: the rest of
		 * the batch is the parent's to run, not the child's too. */
		for (i = 0; i < n && !rsc__loop_forked(loop); i++)
			dispatch_inline(loop, copy[i].user_data, copy[i].res,
					copy[i].flags);
		loop->obs_reap_ns = 0;
		total += n;
		if (loop->stash_len)
			total += dispatch_stash(loop);
	}
	return total;
}

RSC__HOT static inline unsigned run_ready(struct rsc_loop *loop)
{
	unsigned n = !rsc__list_empty(&loop->announce_queue) ? rsc__announce_run(loop) : 0;
	struct rsc__list *next;

	/* A close callback that forked returns into the child's copy: the rest is the parent's. */
	while (!rsc__loop_forked(loop) && (next = rsc__list_pop_front(&loop->ready_queue))) {
		struct rsc__scope *s = RSC__LIST_ITEM(next, struct rsc__scope, ready_node);

		s->in_ready = false;
		rsc__scope_ready(s);
		n++;
	}
	return n;
}

RSC__INLINE bool loop_alive(const struct rsc_loop *loop)
{
	return loop->ops_inflight > 0 || loop->nops_inflight > 0 || !rsc__list_empty(&loop->ready_queue) ||
	       loop->stash_len || !rsc__list_empty(&loop->retry_list) ||
	       !rsc__list_empty(&loop->announce_queue) || !rsc__list_empty(&loop->graceful_list) ||
	       __atomic_load_n(&loop->post_head, __ATOMIC_ACQUIRE) ||
	       (loop->shared && __atomic_load_n(&loop->wakes_unreaped, __ATOMIC_ACQUIRE));
}

/* What a caller asking "alive?" must hear: also a deadline's timer that
 * found no SQE (deadline.c), owed to a later turn though nothing is in
 * flight, or a host loop stops with a deadline that never passes. */
static bool loop_owes_work(const struct rsc_loop *loop)
{
	return loop_alive(loop) || loop->dl_rearm;
}

/* Completions in our own CQ that nothing in flight accounts for (a shared
 * ring's are the application's to reap). */
RSC__INLINE bool has_cqes(const struct rsc_loop *loop)
{
	return !loop->shared && io_uring_cq_ready(loop->ring);
}

bool rsc__cq_holds_ours(struct rsc_loop *loop)
{
	struct io_uring_cqe *cqe;
	unsigned head;

	if (!loop->shared)
		return io_uring_cq_ready(loop->ring) > 0;
	/* The application's CQEs name nothing of ours: only tagged ones count. */
	io_uring_for_each_cqe(loop->ring, head, cqe)
		if (cqe->user_data & RSC__UD_TAG)
			return true;
	return false;
}

int rsc_loop_alive(const struct rsc_loop *loop)
{
	RSC__CHECK_ARG(loop, "rsc_loop_alive: loop is NULL");
	return loop_owes_work(loop);
}

/* What is due after completions were dispatched: callbacks, verdicts. */
unsigned rsc__run_due(struct rsc_loop *loop)
{
	unsigned done = run_ready(loop);

	if (!rsc__list_empty(&loop->graceful_list))
		done += rsc__graceful_poll(loop);
	done += run_ready(loop);
	done += !rsc__list_empty(&loop->retry_list) ? rsc__retry_exits(loop) : 0;
	if (!rsc__list_empty(&loop->audit_pending))
		rsc__audit_flush(loop); /* verdicts that waited for the CQ to empty */
	return done;
}

static void shared_wake_done(struct rsc_loop *loop, struct rsc_op *op, int res,
			     unsigned cqe_flags)
{
	(void)op;
	(void)res;
	(void)cqe_flags;
	loop->shared_wake = false;
}

/*
 * Work left to a later turn (an exit that found no SQE, a cancel or a
 * deadline's timer kept for the next turn) while the application waits for
 * a completion, maybe of nothing of ours: a NOP of ours brings it back to
 * rsc_loop_run, as a pollable loop's kick brings its host.
 */
static void shared_wake(struct rsc_loop *loop)
{
	struct io_uring_sqe *sqe;
	struct rsc_op *op;

	if (loop->shared_wake || (rsc__list_empty(&loop->retry_list) &&
				  !cancels_owed(loop) && !loop->dl_rearm))
		return;
	op = rsc__op_with_sqe(loop, &sqe);
	if (!op)
		return; /* the SQ is full or the application's chain open: its submit comes */
	io_uring_prep_nop(sqe);
	op->opcode = IORING_OP_NOP;
	op->complete = shared_wake_done;
	loop->shared_wake = true;
}

/* A shared ring: submit and run what is due; the application reaps. */
static int run_shared(struct rsc_loop *loop, enum rsc_run_mode mode)
{
	int ret;

	if (mode != RSC_RUN_NOWAIT) {
		rsc__set_last_error("rsc_loop_run: a loop on the application's ring only runs RSC_RUN_NOWAIT (the application waits and reaps)");
		return -EOPNOTSUPP;
	}
	loop->running = true;
	if (cancels_owed(loop))
		cancel_backlog_send(loop);
	rsc__post_forget_failed(loop);
	rsc__post_run(loop);
	rsc__run_due(loop);
	if (loop->dl_rearm)
		rsc__deadline_rearm(loop); /* a timer that found no SQE, as rsc_loop_run's turns do */
	shared_wake(loop);
	ret = ring_submit(loop, 0);
	loop->running = false;
	return ret < 0 ? ret : loop_owes_work(loop);
}

RSC__HOT int rsc_loop_run(struct rsc_loop *loop, enum rsc_run_mode mode)
{
	bool idle = false; /* left because nothing is alive: returns 0 */
	int ret = 0;

	RSC__CHECK_ARG(loop, "rsc_loop_run: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_run");
	RSC__CHECK_ARG(mode == RSC_RUN_DEFAULT || mode == RSC_RUN_ONCE ||
			       mode == RSC_RUN_NOWAIT,
		       "rsc_loop_run: unknown mode %d", (int)mode);
	ret = rsc__check_not_in_callback(loop, "rsc_loop_run");
	if (ret == 0)
		ret = rsc__check_issuer(loop, "rsc_loop_run"); /* before anything runs */
	if (ret < 0)
		return ret;
	if (loop->shared)
		return run_shared(loop, mode);
	if (loop->pollable)
		rsc__unkick(loop);
	loop->running = true;
	for (;;) {
		unsigned done;
		bool wait;

		if (rsc__loop_forked(loop)) { /* a callback forked, and came back in the child */
			ret = rsc__forked_error(loop, "rsc_loop_run");
			break;
		}
		if (cancels_owed(loop))
			cancel_backlog_send(loop);
		/* In this order: stashed completions, due callbacks, then retries. */
		done = __atomic_load_n(&loop->post_head, __ATOMIC_RELAXED) ? rsc__post_run(loop) : 0;
		done += loop->stash_len ? dispatch_stash(loop) : 0;
		if (!rsc__list_empty(&loop->graceful_list))
			done += rsc__graceful_poll(loop);
		done += run_ready(loop);
		done += !rsc__list_empty(&loop->retry_list) ? rsc__retry_exits(loop) : 0;
		if (loop->dl_rearm)
			rsc__deadline_rearm(loop);

		/* Posts' eventfd poll, if it found no SQE when it was due: before any wait. */
		if (loop->post_efd >= 0 && !loop->post_armed)
			rsc__post_arm(loop);
		if (!loop_alive(loop)) {
			/* What is in the CQ now is no op of ours but is read all the
			 * same: the posts' eventfd poll (a completion that ran no post
			 * still drains the eventfd, or ends the poll, armed again), or
			 * another loop's hand-over that came after our inbox went (a
			 * slot that must be closed, not left in the table). */
			if (has_cqes(loop) && reap(loop))
				continue;
			/* A host loop sleeps next, not us: what is prepared (the posts'
			 * eventfd poll, or NOPs) goes to the kernel first, or its kick
			 * would only bring the host back here. */
			if (loop->pollable && io_uring_sq_ready(loop->ring)) {
				ret = ring_submit(loop, 0);
				ret = ret < 0 ? ret : 0;
			}
			/* A timer still owed (no SQE again): not idle, but nothing to
			 * wait for either; the caller runs us again. */
			idle = !loop->dl_rearm;
			break;
		}
		/* A retry needs room that only a completion frees: wait for one. */
		wait = mode != RSC_RUN_NOWAIT && rsc__list_empty(&loop->ready_queue) &&
		       !loop->stash_len && rsc__list_empty(&loop->announce_queue) &&
		       (!rsc__list_empty(&loop->retry_list) ? submitted_in_flight(loop) > 0 :
							      done == 0);
		ret = ring_submit(loop, wait ? 1 : 0);
		if (ret < 0)
			break;
		ret = 0;
		done += reap(loop);
		if (rsc__loop_forked(loop))
			continue; /* a callback forked: the top refuses the child */
		done += run_ready(loop);
		if (!rsc__list_empty(&loop->audit_pending))
			rsc__audit_flush(loop); /* verdicts that waited for the CQ to empty */
		if (mode == RSC_RUN_NOWAIT || (mode == RSC_RUN_ONCE && done))
			break;
		/* Idle, and nothing that the top of the loop would still do: what
		 * another turn would find, without taking it. */
		if (!loop_alive(loop) && !loop->dl_rearm && loop->post_efd < 0 && !loop->pollable &&
		    !has_cqes(loop)) {
			idle = true;
			break;
		}
	}
	loop->running = false;
	RSC__SAME_PROCESS(loop, "rsc_loop_run");
	/* A callback of the last reap may have left work (an SQE, a close, a
	 * cancel or a deadline's timer that found no SQE and waits for the next
	 * turn, a post a post made, which sent no wake): a host loop polling us
	 * must hear of it, or it sleeps forever. */
	if (loop->pollable && (io_uring_sq_ready(loop->ring) || cancels_owed(loop) ||
			       loop->dl_rearm || rsc__posts_queued(loop) ||
			       !rsc__list_empty(&loop->ready_queue) ||
			       !rsc__list_empty(&loop->announce_queue) ||
			       !rsc__list_empty(&loop->retry_list) || loop->stash_len ||
			       (!rsc__list_empty(&loop->graceful_list) && rsc__graceful_due(loop))))
		rsc__kick(loop);
	return ret < 0 ? ret : idle ? 0 : loop_owes_work(loop);
}

int rsc_loop_set_audit(struct rsc_loop *loop, enum rsc_audit_level level)
{
	RSC__CHECK_ARG(loop, "rsc_loop_set_audit: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_set_audit");
	RSC__CHECK_ARG(level >= RSC_AUDIT_OFF && level <= RSC_AUDIT_FULL,
		       "rsc_loop_set_audit: unknown level %d", (int)level);
	/* Not on without its handle: opened later, at a finding, it would take
	 * the number being reported (ringscope_audit(7)). */
	if (level != RSC_AUDIT_OFF) {
		int ret = rsc__audit_open_proc_dir(loop);

		if (ret < 0) {
			rsc__set_last_error("rsc_loop_set_audit: cannot open /proc/self/fd: %s",
					    rsc_strerror(ret));
			return ret;
		}
	}
	loop->audit_level = level;
	return 0;
}

int rsc_loop_audit_level(const struct rsc_loop *loop)
{
	RSC__CHECK_ARG(loop, "rsc_loop_audit_level: loop is NULL");
	return loop->audit_level;
}

int rsc_loop_set_trace(struct rsc_loop *loop, rsc_trace_cb cb, void *data)
{
	RSC__CHECK_ARG(loop, "rsc_loop_set_trace: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_set_trace");
	loop->trace_cb = cb;
	loop->trace_data = cb ? data : NULL;
	return 0;
}

const char *rsc_counter_name(enum rsc_counter which)
{
	static const char *const names[RSC_CTR_COUNT] = {
		[RSC_CTR_ENTER_CALLS] = "enter_calls",
		[RSC_CTR_SQES] = "sqes",
		[RSC_CTR_CQES] = "cqes",
		[RSC_CTR_ACQUIRED] = "acquired",
		[RSC_CTR_RELEASED] = "released",
		[RSC_CTR_ENTER_FAILED] = "enter_failed",
		[RSC_CTR_LATE_ACQUIRES] = "late_acquires",
		[RSC_CTR_POOL_ALLOCS] = "pool_allocs",
		[RSC_CTR_BUSY_RETRIES] = "busy_retries",
		[RSC_CTR_SQ_FULL] = "sq_full",
		[RSC_CTR_FAULTS_INJECTED] = "faults_injected",
		[RSC_CTR_DEADLINES] = "deadlines",
		[RSC_CTR_CANCEL_FD] = "cancel_fd",
		[RSC_CTR_RECV_REARMS] = "recv_rearms",
		[RSC_CTR_NOMEM_DROPS] = "nomem_drops",
		[RSC_CTR_AUDIT_LOST] = "audit_lost",
		[RSC_CTR_ERRORS_LOST] = "errors_lost",
	};

	return (int)which >= 0 && which < RSC_CTR_COUNT ? names[which] : NULL;
}

long long rsc_loop_counter(const struct rsc_loop *loop, enum rsc_counter which)
{
	RSC__CHECK_ARG(loop, "rsc_loop_counter: loop is NULL");
	RSC__CHECK_ARG((int)which >= 0 && which < RSC_CTR_COUNT,
		       "rsc_loop_counter: counter %d is not one (0 to %d)", (int)which, RSC_CTR_COUNT - 1);
	return loop->counters[which];
}

static void loop_free(struct rsc_loop *loop)
{
	rsc__audit_unregister(loop);
	rsc__ledger_submitted(loop, true);
	/* Verdicts still pending read the live entries: while the tree is there. */
	rsc__audit_flush(loop);
	rsc__obs_loop_free(loop); /* flushes the trace; it walks the tree, so first */
	if (loop->root)
		rsc__scope_free_tree(loop->root);
	loop->root = NULL;
	rsc__audit_free(loop); /* what is still pending goes unjudged */
	rsc__post_free(loop); /* first: no poster may aim at the ring once it goes */
	/* The application's ring stays: our table must not (it would refuse the
	 * application's own, or a later loop's, with EBUSY). */
	if (loop->shared && loop->direct && !loop->in_child)
		(void)io_uring_unregister_files(loop->ring);
	rsc__direct_free(loop);
	rsc__recv_buffers_free(loop, !loop->in_child);
	io_uring_free_probe(loop->probe);
	rsc__pollable_free(loop);
	rsc__ledger_forget(loop->ring->ring_fd, RSC__LEDGER_RUNTIME);
	if (!loop->shared) {
		io_uring_queue_exit(loop->ring); /* the application's ring stays its own */
	} else {
		rsc__shared_ring_release(loop->ring);
	}
	rsc__chains_free(loop); /* their handles say -ESTALE from now on */
	rsc__pools_free(loop);
	rsc__ledger_spares_free(loop);
	rsc__handles_release(loop);
	rsc__deadline_free(loop);
	free(loop->stash);
	free(loop->cancel_backlog);
	free(loop);
}

/* rsc_loop_close's drain. The posts queued run, but one posted meanwhile is
 * refused (-ESHUTDOWN: the loop is being freed), or a post that posts again
 * would keep the loop alive forever; if the loop stays (-EBUSY), posts are
 * welcome again. */
static int close_drain(struct rsc_loop *loop)
{
	int ret = 0;

	rsc__post_refuse(loop, true);
	for (;;) {
		if ((loop->root && !rsc__list_empty(&loop->root->children)) ||
		    !rsc__list_empty(&loop->ready_queue) ||
		    !rsc__list_empty(&loop->retry_list) ||
		    !rsc__list_empty(&loop->announce_queue)) {
			rsc__set_last_error("rsc_loop_close: scopes still open or callbacks due; close them or call rsc_loop_shutdown");
			ret = -EBUSY;
			break;
		}
		if (!loop_alive(loop) && !has_cqes(loop))
			break;
		ret = rsc_loop_run(loop, RSC_RUN_DEFAULT);
		if (ret < 0)
			break;
	}
	if (ret < 0)
		rsc__post_refuse(loop, false);
	return ret < 0 ? ret : 0;
}

/* The child's copies of the descriptors @e holds, entered and not being
 * released: a release started before the fork may have closed the number in
 * the parent already, and the child's table may hold another file there. */
static void close_child_copies(struct rsc__entry *e)
{
	if (e->state == RSC_ENTERED && e->phase == RSC__PHASE_NONE &&
	    e->fd_kind == RSC__FD_PROCESS && (e->config & (RSC__CFG_FD | RSC__CFG_PIPE))) {
		if (e->value >= 0)
			close(e->value);
		if (e->has_value2 && e->value2 >= 0) {
			close(e->value2);
			/* The first end leaves the ledger with the entry; a pipe's second, here. */
			rsc__entry_close2_ran(e);
		}
	}
	e->phase_ops = 0; /* the parent's ops: none will complete here */
}

/* rsc_loop_close() in a child of fork(2): close the child's copies, free
 * the copy; no exit runs (it would prepare SQEs for the parent's ring). */
static void close_in_child(struct rsc_loop *loop)
{
	struct rsc__scope *s = loop->root;
	struct rsc__entry *e;

	while (s) {
		RSC__LIST_FOR_EACH(e, &s->entries, scope_node)
			close_child_copies(e);
		if (!rsc__list_empty(&s->children)) {
			s = RSC__LIST_ITEM(s->children.next, struct rsc__scope, child_node);
			continue;
		}
		while (s != loop->root && s->child_node.next == &s->parent->children)
			s = s->parent;
		s = s == loop->root ? NULL :
				      RSC__LIST_ITEM(s->child_node.next, struct rsc__scope, child_node);
	}
	loop->in_child = true;
	loop_free(loop);
}

int rsc_loop_close(struct rsc_loop *loop)
{
	int ret;

	RSC__CHECK_ARG(loop, "rsc_loop_close: loop is NULL");
	/* First, in a child too: a callback that forked must not free the loop
	 * the run it returns into still reads (the child closes it once out). */
	ret = rsc__check_not_in_callback(loop, "rsc_loop_close");
	if (ret < 0)
		return ret;
	if (rsc__loop_forked(loop)) {
		close_in_child(loop);
		return 0;
	}
	if (loop->shared) {
		/* Refused before the check: a post after it would find a loop
		 * that cannot wait for it (only the application reaps). */
		rsc__post_refuse(loop, true);
		if (loop_alive(loop)) {
			rsc__post_refuse(loop, false);
			rsc__set_last_error("rsc_loop_close: ops still in flight on the application's ring: reap and dispatch them first");
			return -EBUSY;
		}
	}
	/*
	 * No scope is left, so what is in flight is the runtime's own (a cancel
	 * whose target completed first, an orphan's close): drain it here. The
	 * posts still queued run too, and one may open a scope (rsc_loop_post:
	 * they may): checked again after each run, so that no scope, and no
	 * descriptor, is freed unreleased with the loop.
	 */
	ret = close_drain(loop);
	if (ret < 0)
		return ret;
	loop_free(loop);
	return 0;
}

int rsc_loop_shutdown(struct rsc_loop *loop, struct rsc_error **errp)
{
	struct rsc_error *err = NULL;
	int status = 0, ret;

	/* First: a caller tells the failures apart by *errp (rsc_loop_shutdown(3)). */
	if (errp)
		*errp = NULL;
	RSC__CHECK_ARG(loop, "rsc_loop_shutdown: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_shutdown");
	ret = rsc__check_can_block(loop, "rsc_loop_shutdown");
	if (ret < 0)
		return ret;
	if (!loop->root) {
		rsc__set_last_error("rsc_loop_shutdown: a shutdown already failed on this loop");
		return -EALREADY;
	}
	/* The root scope's children are the user's top scopes: LIFO, as any. */
	ret = rsc__scope_close_and_wait(loop->root, &status, &err);
	/* Drain: an unreaped CQE carrying a descriptor would be a leak. A post
	 * made now is refused, as in rsc_loop_close, or one that posts again
	 * would keep this going forever. */
	rsc__post_refuse(loop, true);
	while (ret >= 0 && (loop_alive(loop) || has_cqes(loop)))
		ret = rsc_loop_run(loop, RSC_RUN_DEFAULT);
	if (ret < 0) {
		rsc__post_refuse(loop, false);
		rsc__error_unref(err);
		return ret; /* the ring failed: the loop is left for inspection */
	}
	loop_free(loop);
	if (errp)
		*errp = err;
	else
		rsc__error_unref(err);
	return status;
}
