/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

/*
 * rsc_loop_post(): the one call that is safe from any thread. Posts queue
 * under the loop's mutex; the first post of a batch wakes the loop, by one
 * of two means chosen when the loop is made (rsc__post_init):
 *
 * - IORING_OP_MSG_RING (Linux 5.18) aimed at the loop's ring, carrying
 *   RSC__UD_POST: a completion the loop sees as "run your posts", which
 *   wakes it from a wait (also with DEFER_TASKRUN: the kernel queues it as
 *   the target's task work). The MSG_RING goes out on a small "waker" ring
 *   of the loop's, made at its first post and used under the post mutex,
 *   since a posting thread need not have a ring of its own; it goes with
 *   the loop. The loop keeps nothing in flight for it.
 *
 * - Without MSG_RING: an eventfd the poster writes, and a poll on it that
 *   the loop keeps armed with the same RSC__UD_POST (multishot where the
 *   kernel has IORING_POLL_ADD_MULTI, Linux 5.13; else one shot, armed
 *   again after each completion). Only the loop's thread submits to its
 *   ring (SINGLE_ISSUER), so the poll is prepared there: when the loop is
 *   made, from the dispatch of its completion, and before a wait if neither
 *   found an SQE. The poll is no op: it keeps nothing alive, is in no
 *   count of ops in flight, and goes with the ring when the loop is freed.
 *   A shared ring has no such poll: the application would be left with a
 *   poll of ours it cannot reap once the loop is freed, so posts to it are
 *   refused on such a kernel.
 */

struct rsc__post {
	struct rsc__post *next;
	void (*fn)(struct rsc_loop *, void *);
	void *arg;
};

int rsc__post_init(struct rsc_loop *loop)
{
	int ret = pthread_mutex_init(&loop->post_lock, NULL);

	if (ret)
		return -ret;
	loop->post_lock_ok = true;
	/* No probe (kernel < 5.6) means no MSG_RING either (5.18). Asked first,
	 * so a "msg_ring" fault rule counts this look-up on every kernel. */
	if (rsc__opcode_supported(loop, IORING_OP_MSG_RING) && loop->probe) {
		loop->post_wake = RSC__WAKE_MSG_RING;
		return 0;
	}
	if (loop->shared) {
		loop->post_wake = RSC__WAKE_NONE;
		return 0;
	}
	loop->post_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->post_efd < 0) {
		ret = -errno;
		rsc__set_last_error("cannot create the eventfd that wakes the loop for rsc_loop_post: %s",
				    rsc_strerror(ret));
		return ret;
	}
	rsc__ledger_set(loop->post_efd, RSC__LEDGER_RUNTIME);
	loop->post_wake = RSC__WAKE_EVENTFD;
	loop->post_multishot = true;
	loop->features |= RSC_FEAT_POST_EVENTFD;
	return 0;
}

void rsc__post_arm(struct rsc_loop *loop)
{
	struct io_uring_sqe *sqe;

	if (loop->post_efd < 0 || loop->post_armed || rsc__loop_forked(loop))
		return; /* forked: the SQ is the parent's */
	/* Not rsc__get_sqes(): no flush, no kick. Every caller's SQ is submitted
	 * next (a new loop, a dispatch, a turn of rsc_loop_run). */
	sqe = io_uring_get_sqe(loop->ring);
	if (!sqe)
		return; /* the SQ is full: rsc_loop_run tries again before it waits */
	memset(sqe, 0, sizeof(*sqe)); /* liburing 2.3 hands SQEs out dirty */
	if (loop->post_multishot) {
		io_uring_prep_poll_multishot(sqe, loop->post_efd, POLLIN);
		/* Injected: a flag the kernel does not know, answered -EINVAL as a
		 * kernel before 5.13 answers IORING_POLL_ADD_MULTI. */
		if (rsc__fault_missing(&loop->faults, RSC__MISSING_POLL_MULTISHOT))
			sqe->len |= 1U << 31;
	} else {
		io_uring_prep_poll_add(sqe, loop->post_efd, POLLIN);
	}
	io_uring_sqe_set_data64(sqe, RSC__UD_POST);
	loop->post_armed = true;
}

void rsc__post_woken(struct rsc_loop *loop, int res, unsigned cqe_flags)
{
	uint64_t n;

	if (loop->shared) /* a MSG_RING wake, reaped by the application */
		__atomic_sub_fetch(&loop->wakes_unreaped, 1, __ATOMIC_RELEASE);
	if (loop->post_efd >= 0) {
		if (!(cqe_flags & IORING_CQE_F_MORE)) {
			/* Before Linux 5.13, IORING_POLL_ADD_MULTI is -EINVAL. Any other
			 * end (one shot, a full CQ, an error) is armed again as it was. */
			if (res == -EINVAL && loop->post_multishot)
				loop->post_multishot = false;
			loop->post_armed = false;
			rsc__post_arm(loop); /* now: a pollable loop's host must see it */
		}
		/* Drained before the posts are taken: a post made after this
		 * writes the eventfd again, and its wake-up is not lost. */
		(void)!read(loop->post_efd, &n, sizeof(n));
	}
	rsc__post_run(loop);
}

/* Run what was posted, oldest first, from the loop. */
unsigned rsc__post_run(struct rsc_loop *loop)
{
	struct rsc__post *list, *p, *rev = NULL;
	unsigned n = 0;

	if (!__atomic_load_n(&loop->post_head, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&loop->post_lock);
	list = loop->post_head;
	__atomic_store_n(&loop->post_head, NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&loop->post_lock);
	for (; list; list = p) {
		p = list->next;
		list->next = rev;
		rev = list;
	}
	__atomic_store_n(&loop->post_runner, pthread_self(), __ATOMIC_RELAXED);
	__atomic_store_n(&loop->in_post_run, true, __ATOMIC_RELAXED);
	while ((p = rev)) {
		rev = p->next;
		if (rsc__cb_enter(loop))
			p->fn(loop, p->arg);
		rsc__cb_leave(loop);
		free(p);
		n++;
	}
	__atomic_store_n(&loop->in_post_run, false, __ATOMIC_RELAXED);
	return n;
}

/*
 * A post made by a post, on the thread running them, of a loop on its own
 * ring: queued with no wake. The loop is running and runs it on its next
 * turn (rsc_loop_run looks before it waits or returns); a wake would be in
 * the CQ at once without DEFER_TASKRUN, and a post that posts again would
 * keep the reap that ran it reaping for ever, starving everything else.
 */
static bool posted_by_a_post(const struct rsc_loop *loop)
{
	return !loop->shared && __atomic_load_n(&loop->in_post_run, __ATOMIC_RELAXED) &&
	       pthread_equal(__atomic_load_n(&loop->post_runner, __ATOMIC_RELAXED),
			     pthread_self());
}

/* Completions of earlier wakes: only failures are posted (CQE_SKIP_SUCCESS),
 * and a failed wake never reaches the loop's ring. Under the post mutex. */
static void drain_failed_wakes(struct rsc_loop *loop)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&loop->waker, &cqe) == 0 && cqe) {
		if (loop->shared)
			__atomic_sub_fetch(&loop->wakes_unreaped, 1, __ATOMIC_RELEASE);
		io_uring_cqe_seen(&loop->waker, cqe);
	}
}

/* A shared ring: a wake the kernel refused is not waited for (rsc_loop_alive). */
void rsc__post_forget_failed(struct rsc_loop *loop)
{
	if (!__atomic_load_n(&loop->wakes_unreaped, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&loop->post_lock);
	if (loop->waker_ok)
		drain_failed_wakes(loop);
	pthread_mutex_unlock(&loop->post_lock);
}

/* Wake @loop: one MSG_RING from its waker ring, or its eventfd. Under the post mutex. */
static int wake(struct rsc_loop *loop)
{
	struct io_uring_sqe *sqe;
	uint64_t one = 1;
	int ret;

	if (loop->post_wake == RSC__WAKE_EVENTFD) {
		if (write(loop->post_efd, &one, sizeof(one)) < 0) {
			ret = -errno;
			rsc__set_last_error("rsc_loop_post: cannot wake the loop: write to its eventfd: %s",
					    rsc_strerror(ret));
			return ret;
		}
		return 0;
	}
	if (loop->post_wake == RSC__WAKE_NONE) {
		rsc__set_last_error("rsc_loop_post: the kernel lacks IORING_OP_MSG_RING (Linux 5.18), which a loop on the application's ring needs to be woken");
		return -EOPNOTSUPP;
	}
	if (!loop->waker_ok) {
		ret = io_uring_queue_init(4, &loop->waker, 0);
		if (ret < 0)
			goto fail;
		loop->waker_ok = true;
		rsc__ledger_set(loop->waker.ring_fd, RSC__LEDGER_RUNTIME);
	}
	drain_failed_wakes(loop);
	sqe = io_uring_get_sqe(&loop->waker);
	if (!sqe) {
		ret = -EBUSY;
		goto fail;
	}
	io_uring_prep_msg_ring(sqe, loop->ring->ring_fd, 0, RSC__UD_POST, 0);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, 0);
	/* Counted before it can arrive: the application may dispatch it at once. */
	if (loop->shared)
		__atomic_add_fetch(&loop->wakes_unreaped, 1, __ATOMIC_RELEASE);
	ret = io_uring_submit(&loop->waker);
	if (ret >= 0)
		return 0;
	if (loop->shared)
		__atomic_sub_fetch(&loop->wakes_unreaped, 1, __ATOMIC_RELEASE);
fail:
	rsc__set_last_error("rsc_loop_post: cannot wake the loop: %s", rsc_strerror(ret));
	return ret;
}

int rsc_loop_post(struct rsc_loop *loop, void (*fn)(struct rsc_loop *, void *), void *arg)
{
	struct rsc__post *p;
	bool first;
	int ret = 0;

	RSC__CHECK_ARG(loop && fn, "rsc_loop_post: loop or fn is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_post");
	/* Any thread posts; the fault state (rsc_fault_set(3)) is the loop thread's alone. */
	p = rsc__malloc(loop->issuer == rsc__thread_serial() ? loop : NULL, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&loop->post_lock);
	if (loop->closing || loop->posts_refused) {
		pthread_mutex_unlock(&loop->post_lock);
		free(p);
		rsc__set_last_error("rsc_loop_post: the loop is being freed");
		return -ESHUTDOWN;
	}
	p->next = loop->post_head;
	first = !p->next;
	__atomic_store_n(&loop->post_head, p, __ATOMIC_RELEASE);
	/* Woken under the loop's lock, so the loop cannot be freed meanwhile. */
	if (first && !posted_by_a_post(loop))
		ret = wake(loop);
	if (ret < 0) {
		/* Not queued after all: the caller hears it, and fn never runs. */
		__atomic_store_n(&loop->post_head, p->next, __ATOMIC_RELEASE);
		free(p); /* wake() said why */
	}
	pthread_mutex_unlock(&loop->post_lock);
	return ret;
}

void rsc__post_refuse(struct rsc_loop *loop, bool refuse)
{
	if (!loop->post_lock_ok)
		return;
	pthread_mutex_lock(&loop->post_lock);
	loop->posts_refused = refuse;
	pthread_mutex_unlock(&loop->post_lock);
}

/* The loop is being freed: refuse new posts, free the ones never run. */
void rsc__post_free(struct rsc_loop *loop)
{
	struct rsc__post *p;

	if (!loop->post_lock_ok)
		return;
	/* A child of fork(2) is alone: a poster that held the lock is not. */
	if (!loop->in_child)
		pthread_mutex_lock(&loop->post_lock);
	loop->closing = true; /* no poster touches the eventfd or the waker any more */
	p = loop->post_head;
	loop->post_head = NULL;
	if (!loop->in_child)
		pthread_mutex_unlock(&loop->post_lock);
	while (p) {
		struct rsc__post *next = p->next;

		free(p);
		p = next;
	}
	pthread_mutex_destroy(&loop->post_lock);
	loop->post_lock_ok = false;
	if (loop->waker_ok) {
		rsc__ledger_forget(loop->waker.ring_fd, RSC__LEDGER_RUNTIME);
		io_uring_queue_exit(&loop->waker);
	}
	loop->waker_ok = false;
	/* Its poll, if armed, holds the file until the ring goes; the number is free now. */
	if (loop->post_efd >= 0) {
		rsc__ledger_forget(loop->post_efd, RSC__LEDGER_RUNTIME);
		close(loop->post_efd);
		loop->post_efd = -1;
	}
	loop->post_armed = false;
}
