/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/*
 * rsc_loop_post(): the one call that is safe from any thread. Posts queue
 * under the loop's mutex; the first post of a batch wakes the loop with an
 * IORING_OP_MSG_RING (Linux 5.18) aimed at the loop's ring, carrying
 * RSC__UD_POST: a completion the loop sees as "run your posts", which
 * wakes it from a wait (also with DEFER_TASKRUN: the kernel queues it as
 * the target's task work). The MSG_RING goes out on a small "waker" ring of
 * the loop's, made at its first post and used under the post mutex, since a
 * posting thread need not have a ring of its own; it goes with the loop.
 * The loop keeps nothing in flight for it: no op, nothing alive.
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
	return 0;
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
	while ((p = rev)) {
		rev = p->next;
		rsc__cb_enter(loop);
		p->fn(loop, p->arg);
		rsc__cb_leave(loop);
		free(p);
		n++;
	}
	return n;
}

/* Wake @loop: one MSG_RING from its waker ring. Under the post mutex. */
static int wake(struct rsc_loop *loop)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int ret;

	if (!loop->waker_ok) {
		ret = rsc__need_opcode(loop, IORING_OP_MSG_RING, "rsc_loop_post");
		if (ret < 0)
			return ret;
		ret = io_uring_queue_init(4, &loop->waker, 0);
		if (ret < 0)
			return ret;
		loop->waker_ok = true;
		rsc__ledger_set(loop->waker.ring_fd, RSC__LEDGER_RUNTIME);
	}
	/* Completions of earlier wakes: only failures are posted (CQE_SKIP_SUCCESS). */
	while (io_uring_peek_cqe(&loop->waker, &cqe) == 0 && cqe)
		io_uring_cqe_seen(&loop->waker, cqe);
	sqe = io_uring_get_sqe(&loop->waker);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_msg_ring(sqe, loop->ring->ring_fd, 0, RSC__UD_POST, 0);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, 0);
	ret = io_uring_submit(&loop->waker);
	return ret < 0 ? ret : 0;
}

int rsc_loop_post(struct rsc_loop *loop, void (*fn)(struct rsc_loop *, void *), void *arg)
{
	struct rsc__post *p;
	bool first;
	int ret = 0;

	RSC__CHECK_ARG(loop && fn, "rsc_loop_post: loop or fn is NULL");
	p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	pthread_mutex_lock(&loop->post_lock);
	if (loop->closing) {
		pthread_mutex_unlock(&loop->post_lock);
		free(p);
		rsc__set_last_error("rsc_loop_post: the loop is being freed");
		return -ESHUTDOWN;
	}
	p->next = loop->post_head;
	first = !p->next;
	__atomic_store_n(&loop->post_head, p, __ATOMIC_RELEASE);
	/* Woken under the loop's lock, so the loop cannot be freed meanwhile. */
	if (first)
		ret = wake(loop);
	if (ret < 0) {
		/* Not queued after all: the caller hears it, and fn never runs. */
		__atomic_store_n(&loop->post_head, p->next, __ATOMIC_RELEASE);
		free(p);
		rsc__set_last_error("rsc_loop_post: cannot wake the loop: %s", rsc_strerror(ret));
	}
	pthread_mutex_unlock(&loop->post_lock);
	return ret;
}

/* The loop is being freed: refuse new posts, free the ones never run. */
void rsc__post_free(struct rsc_loop *loop)
{
	struct rsc__post *p;

	if (!loop->post_lock_ok)
		return;
	pthread_mutex_lock(&loop->post_lock);
	loop->closing = true;
	p = loop->post_head;
	loop->post_head = NULL;
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
}
