/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

/*
 * A loop that another event loop drives (libuv, GLib, asyncio).
 *
 * Pollable (RSC_LOOP_POLLABLE): an eventfd registered with the ring
 * (io_uring_register_eventfd(3)) turns readable whenever a completion is
 * posted, and the runtime writes it too when work becomes due outside
 * rsc_loop_run() (a prepared SQE, a close requested, an adopted entry to
 * announce). The host polls rsc_loop_fd() and calls
 * rsc_loop_run(RSC_RUN_NOWAIT) when it is readable. Such a ring is set up
 * without DEFER_TASKRUN, which would hold completions (and the eventfd)
 * until this thread enters the ring, and so never wake a host asleep in
 * its own poll.
 *
 * Shared (rsc_loop_new_from_ring): the application's own ring. ringscope's
 * user_data always has bit 63 set (pointers never do, in user space), so
 * rsc_loop_dispatch() can tell its completions from the application's, and
 * never consumes one that is not its own: the application reaps.
 */

/*
 * The rings that carry a loop (by their kernel descriptor): two loops on one
 * ring could not tell whose a wake-up is, so a second is refused. Loops are
 * made and freed on any thread: under a lock.
 */
#define MAX_SHARED_RINGS 64

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static int shared_fds[MAX_SHARED_RINGS];
static unsigned n_shared;

/* fork.c: held across a fork(2), so that the child's copy is whole and free. */
pthread_mutex_t *const rsc__host_fork_lock = &shared_lock;

/* What a loop on the application's @ring needs of it; 0, or -errno said. */
int rsc__shared_ring_claim(struct io_uring *ring)
{
	unsigned i;
	int ret = 0;

	/* IOPOLL runs only polled reads and writes of O_DIRECT files: no open, no close. */
	if (ring->flags & (IORING_SETUP_IOPOLL | IORING_SETUP_SQPOLL)) {
		rsc__set_last_error("rsc_loop_new_from_ring: a ring set up with %s is not supported",
				    ring->flags & IORING_SETUP_IOPOLL ? "IORING_SETUP_IOPOLL" :
									"IORING_SETUP_SQPOLL");
		return -EOPNOTSUPP;
	}
	pthread_mutex_lock(&shared_lock);
	for (i = 0; i < n_shared && shared_fds[i] != ring->ring_fd; i++)
		;
	if (i < n_shared) {
		rsc__set_last_error("rsc_loop_new_from_ring: the ring carries a loop already");
		ret = -EBUSY;
	} else if (n_shared == MAX_SHARED_RINGS) {
		rsc__set_last_error("rsc_loop_new_from_ring: %d rings carry a loop already",
				    MAX_SHARED_RINGS);
		ret = -ENOMEM;
	} else {
		shared_fds[n_shared++] = ring->ring_fd;
	}
	pthread_mutex_unlock(&shared_lock);
	return ret;
}

/* The loop on @ring is gone: another may be made on it. */
void rsc__shared_ring_release(const struct io_uring *ring)
{
	unsigned i;

	pthread_mutex_lock(&shared_lock);
	for (i = 0; i < n_shared; i++)
		if (shared_fds[i] == ring->ring_fd) {
			shared_fds[i] = shared_fds[--n_shared];
			break;
		}
	pthread_mutex_unlock(&shared_lock);
}

int rsc__pollable_init(struct rsc_loop *loop)
{
	int ret;

	loop->poll_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->poll_efd < 0) {
		ret = -errno;
		rsc__set_last_error("RSC_LOOP_POLLABLE: cannot create the eventfd a host loop polls: %s",
				    rsc_strerror(ret));
		return ret;
	}
	ret = io_uring_register_eventfd(loop->ring, loop->poll_efd);
	if (ret < 0) {
		rsc__set_last_error("RSC_LOOP_POLLABLE: io_uring_register_eventfd: %s",
				    rsc_strerror(ret));
		close(loop->poll_efd);
		loop->poll_efd = -1;
		return ret;
	}
	loop->pollable = true;
	loop->features |= RSC_FEAT_POLLABLE;
	rsc__ledger_set(loop->poll_efd, RSC__LEDGER_RUNTIME);
	return 0;
}

void rsc__pollable_free(struct rsc_loop *loop)
{
	if (loop->poll_efd < 0)
		return;
	if (!loop->shared && !loop->in_child) /* a child's would be the parent's */
		(void)io_uring_unregister_eventfd(loop->ring);
	rsc__ledger_forget(loop->poll_efd, RSC__LEDGER_RUNTIME);
	close(loop->poll_efd);
	loop->poll_efd = -1;
	loop->pollable = false;
}

/* Work became due outside a run: tell the host loop, once until it runs us. */
void rsc__kick(struct rsc_loop *loop)
{
	uint64_t one = 1;

	if (loop->kicked || loop->running || rsc__loop_forked(loop))
		return; /* (a child of fork(2): the eventfd is the parent's host's) */
	loop->kicked = true;
	(void)!write(loop->poll_efd, &one, sizeof(one));
}

/* A run begins: what the eventfd said is being handled now. */
void rsc__unkick(struct rsc_loop *loop)
{
	uint64_t n;

	loop->kicked = false;
	(void)!read(loop->poll_efd, &n, sizeof(n));
}

int rsc_loop_fd(const struct rsc_loop *loop)
{
	RSC__CHECK_ARG(loop, "rsc_loop_fd: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_fd");
	if (!loop->pollable) {
		rsc__set_last_error("rsc_loop_fd: create the loop with RSC_LOOP_POLLABLE");
		return -EOPNOTSUPP;
	}
	return loop->poll_efd;
}

int rsc_loop_dispatch(struct rsc_loop *loop, const struct io_uring_cqe *cqe)
{
	RSC__CHECK_ARG(loop && cqe, "rsc_loop_dispatch: loop or cqe is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_dispatch");
	if ((cqe->user_data & RSC__UD_TAG) && !loop->shared) {
		rsc__set_last_error("rsc_loop_dispatch: the loop reaps its own ring");
		return -EINVAL;
	}
	/* Refused from a callback whoever's CQE it is, as the page says: the
	 * caller's reap loop is re-entering the loop either way. */
	if (rsc__check_not_in_callback(loop, "rsc_loop_dispatch") < 0)
		return -EDEADLK;
	if (!(cqe->user_data & RSC__UD_TAG))
		return 0; /* the application's */
	/* Ours by its tag, but no op of this loop in flight: given twice, or made up. */
	if (rsc__ud_names_op(cqe->user_data) && !rsc__op_lookup(loop, cqe->user_data)) {
		rsc__set_last_error("rsc_loop_dispatch: the CQE (user_data 0x%llx) names no operation of this loop in flight: dispatched twice, or not this loop's",
				    (unsigned long long)cqe->user_data);
		return -EINVAL;
	}
	/* A NOP of ours (a call without memory left one) when none is in flight: made up,
	 * or given twice; counted, it would let the loop close with its real one unreaped. */
	if (cqe->user_data == RSC__UD_NONE && loop->nops_inflight == 0) {
		rsc__set_last_error("rsc_loop_dispatch: a NOP of ringscope's (user_data 0x%llx) when none is in flight: dispatched already, or not this loop's",
				    (unsigned long long)cqe->user_data);
		return -EINVAL;
	}
	/* A wake-up no post of ours sent (or given twice): counting it down would wrap. */
	if (cqe->user_data == RSC__UD_POST &&
	    !__atomic_load_n(&loop->wakes_unreaped, __ATOMIC_ACQUIRE)) {
		rsc__set_last_error("rsc_loop_dispatch: a wake-up (user_data 0x%llx) that no post of this loop sent, or dispatched already",
				    (unsigned long long)cqe->user_data);
		return -EINVAL;
	}
	if (rsc__ud_is_message(cqe->user_data)) {
		/* Another ring's arrival would take that inbox's slot and parcel for nothing. */
		if (rsc__inbox_elsewhere(cqe->user_data, loop->ring->ring_fd)) {
			rsc__set_last_error("rsc_loop_dispatch: a hand-over's arrival (user_data 0x%llx) for an inbox on another ring: not this loop's",
					    (unsigned long long)cqe->user_data);
			return -EINVAL;
		}
		/* A slot that arrives is one the kernel just picked, free in our table: one
		 * we hold already would get a second owner, or be closed as an orphan. */
		if (!rsc__direct_can_arrive(loop, cqe->res)) {
			rsc__set_last_error("rsc_loop_dispatch: a hand-over's arrival (user_data 0x%llx) in slot %d, which this loop cannot have been given now: dispatched twice, or not this loop's",
					    (unsigned long long)cqe->user_data, cqe->res);
			return -EINVAL;
		}
	}
	loop->running = true;
	rsc__dispatch_one(loop, cqe->user_data, cqe->res, cqe->flags);
	rsc__run_due(loop);
	loop->running = false;
	return 1;
}
