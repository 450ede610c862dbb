/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "helpers.h"

/*
 * A loop another event loop drives (rsc_loop_fd(3)) and a loop on the
 * application's own ring (rsc_loop_new_from_ring(3)), as a hostile tester
 * reads their pages: the descriptor must poll readable whenever work is due,
 * with poll(2) and with an edge-triggered epoll(7), and go quiet when nothing
 * is; the application's ring loses none of its completions and sees none of
 * ringscope's after the loop is closed, whatever its setup, a full SQ or an
 * overflowing CQ.
 */

static bool fd_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* A host that sleeps in poll(2): runs @l each time its fd wakes it, until
 * *@flag leaves @unset or @ms pass; 1 if it did, 0 if the host slept through. */
static int host_until(struct rsc_loop *l, const int *flag, int unset, int ms)
{
	long end = t_now_ms() + ms;
	int fd = rsc_loop_fd(l);

	while (*flag == unset) {
		long left = end - t_now_ms();

		if (left <= 0 || !fd_readable(fd, (int)left))
			return 0;
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	return 1;
}

/* The host's way out: run while the fd says so, until nothing is alive. */
static void host_drain(struct rsc_loop *l)
{
	long end = t_now_ms() + 5000;

	while (rsc_loop_alive(l) > 0 && t_now_ms() < end)
		if (fd_readable(rsc_loop_fd(l), 500))
			ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_msg(rsc_loop_alive(l) == 0, "the loop is alive but its fd stays quiet");
	while (fd_readable(rsc_loop_fd(l), 0))
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
}

/* Run while the fd says so, until it stays quiet for 50 ms. */
static void host_settle(struct rsc_loop *l)
{
	int turns = 0;

	while (fd_readable(rsc_loop_fd(l), 50)) {
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		ck_assert_int_lt(++turns, 1000);
	}
}

static void note_scope_closed(struct rsc_scope *s, int status, const struct rsc_error *err,
			      void *data)
{
	(void)s;
	(void)err;
	*(int *)data = status == 0 ? 1 : status;
}

/* ---- the descriptor when work waits for a later turn ---------------------- */

/*
 * An SQ filled with 8 receives on an idle socket that the host prepared and
 * a submit that is interrupted: the unwind's cancel of another receive finds
 * no SQE, and is kept for the loop's next turn (rsc_loop_run(3)). That turn
 * must come: the fd must be readable, or the host sleeps and the release
 * waits for ever for a receive that never ends.
 */
START_TEST(cancel_kept_for_the_next_turn_wakes_the_host)
{
	struct rsc_loop *l;
	struct rsc_scope *o, *g;
	struct rsc_entry *e, *idle;
	int peer, idle_peer, r = 1, closed = 0, i, before = t_fd_count();
	char b[4], ib[8][4];
	int ir[8];

	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE), 0);
	if (rsc_fault_set(l, "") == -EOPNOTSUPP) {
		printf("SKIP cancel_kept_for_the_next_turn_wakes_the_host: no fault injection in this build\n");
		ck_assert_int_eq(rsc_loop_close(l), 0);
		return;
	}
	ck_assert_int_eq(rsc_scope_open(l, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "g", &g), 0);
	e = t_adopted_pair(o, &peer);
	idle = t_adopted_pair(g, &idle_peer);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, t_store_res, &r), 0);
	host_settle(l);
	/* Eight receives that will not end fill the SQ, not yet submitted. */
	for (i = 0; i < 8; i++) {
		ir[i] = 1;
		ck_assert_int_eq(rsc_recv(idle, ib[i], sizeof(ib[i]), 0, t_store_res, &ir[i]), 0);
	}
	ck_assert_int_eq(rsc_scope_close(o, note_scope_closed, &closed), 0);
	ck_assert_int_eq(rsc_fault_set(l, "submit:1:EINTR"), 0);
	ck_assert_msg(host_until(l, &closed, 0, 3000),
		      "the host slept through a cancel kept for the next turn (receive: %d)", r);
	ck_assert_int_eq(r, -ECANCELED);
	ck_assert_int_eq(closed, 1);
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(ir[i], 1);
	ck_assert_int_eq(rsc_scope_close(g, NULL, NULL), 0);
	host_drain(l);
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(ir[i], -ECANCELED);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	close(peer);
	close(idle_peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * The same SQ, and a scope with a long deadline closed: the deadline's
 * kernel timer is removed on the unwind's turn, or, with no SQE, on the
 * next. If that turn never comes the timer keeps the loop alive for its
 * whole 10 s, and a host waiting for rsc_loop_alive(3) to say 0 waits.
 * (A guard: the retry runs in the same turn, before its submit.)
 */
START_TEST(deadline_removal_kept_for_the_next_turn_wakes_the_host)
{
	struct rsc_loop *l;
	struct rsc_scope *d, *g;
	struct rsc_entry *idle;
	long long cqes;
	int idle_peer, closed = 0, i, before = t_fd_count();
	char ib[8][4];
	int ir[8];

	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE), 0);
	if (rsc_fault_set(l, "") == -EOPNOTSUPP) {
		printf("SKIP deadline_removal_kept_for_the_next_turn_wakes_the_host: no fault injection in this build\n");
		ck_assert_int_eq(rsc_loop_close(l), 0);
		return;
	}
	ck_assert_int_eq(rsc_scope_open(l, NULL, "g", &g), 0);
	idle = t_adopted_pair(g, &idle_peer);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "d", &d), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(d, 10000, 0), 0);
	host_settle(l);
	ck_assert_int_eq(rsc_loop_alive(l), 1); /* the deadline's timer */
	for (i = 0; i < 8; i++) {
		ir[i] = 1;
		ck_assert_int_eq(rsc_recv(idle, ib[i], sizeof(ib[i]), 0, t_store_res, &ir[i]), 0);
	}
	cqes = rsc_loop_counter(l, RSC_CTR_CQES);
	ck_assert_int_eq(rsc_scope_close(d, note_scope_closed, &closed), 0);
	ck_assert_int_eq(rsc_fault_set(l, "submit:1:EINTR"), 0);
	ck_assert(host_until(l, &closed, 0, 3000));
	ck_assert_int_eq(rsc_loop_counter(l, RSC_CTR_FAULTS_INJECTED), 1);
	/* Only the idle receives are left: the timer's removal is due now,
	 * and its two completions (the removal, the timer's -ECANCELED) follow. */
	host_settle(l);
	ck_assert_msg(rsc_loop_counter(l, RSC_CTR_CQES) >= cqes + 2,
		      "the host slept while the deadline's timer waited to be removed");
	ck_assert_int_eq(rsc_scope_close(g, NULL, NULL), 0);
	host_drain(l);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	close(idle_peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ---- an edge-triggered epoll host ------------------------------------------ */

struct et_host {
	struct rsc_loop *l;
	int ep, wakes;
};

static void et_host_new(struct et_host *h, struct rsc_loop *l)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };

	h->l = l;
	h->wakes = 0;
	h->ep = epoll_create1(EPOLL_CLOEXEC);
	ck_assert_int_ge(h->ep, 0);
	ck_assert_int_eq(epoll_ctl(h->ep, EPOLL_CTL_ADD, rsc_loop_fd(l), &ev), 0);
}

/* One run per edge, as an edge-triggered host does: 1 if *@flag left @unset. */
static int et_until(struct et_host *h, const int *flag, int unset, int ms)
{
	long end = t_now_ms() + ms;
	struct epoll_event ev;

	while (*flag == unset) {
		long left = end - t_now_ms();
		int n;

		if (left <= 0)
			return 0;
		n = epoll_wait(h->ep, &ev, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue; /* task work of the ring, as after a signal (rsc_loop_close(3)) */
		ck_assert_int_ge(n, 0);
		if (n == 0)
			return 0;
		h->wakes++;
		ck_assert_int_ge(rsc_loop_run(h->l, RSC_RUN_NOWAIT), 0);
	}
	return 1;
}

static void count_post(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	__atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

static void *post_later(void *arg)
{
	struct rsc_loop **lp = arg;
	static int ran;

	usleep(30000);
	ck_assert_int_eq(rsc_loop_post(*lp, count_post, &ran), 0);
	return &ran;
}

static void note_enter(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res >= 0 ? 1 : res;
}

/*
 * Every kind of work the page lists wakes an edge-triggered epoll host that
 * runs the loop once per edge: an open's completion, a timer, a post from
 * another thread while the host sleeps, a deadline, a requested close and
 * its on-close callback. At the end nothing is alive and no edge is left.
 */
START_TEST(edge_triggered_epoll_host_wakes_for_every_kind_of_work)
{
	struct rsc_loop *l;
	struct et_host h;
	struct rsc_scope *s, *d;
	struct rsc_entry *f, *t;
	struct epoll_event ev;
	pthread_t th;
	int *ran, opened = 0, fired = 1, dclosed = 0, sclosed = 0, before = t_fd_count();

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_new(&l, 16, RSC_LOOP_POLLABLE), 0);
	et_host_new(&h, l);
	if (t_posts_poll_one_shot(l)) {
		/* Its refused multishot poll is a completion; the re-arm, SQEs to submit. */
		ck_assert_int_eq(epoll_wait(h.ep, &ev, 1, 0), 1);
		ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(epoll_wait(h.ep, &ev, 1, 0), 0); /* nothing due yet */
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &f), 0);
	ck_assert_int_eq(rsc_entry_on_enter(f, note_enter, &opened), 0);
	ck_assert_msg(et_until(&h, &opened, 0, 3000), "no edge for an open");
	ck_assert_int_eq(opened, 1);
	ck_assert_int_eq(rsc_timer(s, 20, t_store_res, &fired, &t), 0);
	ck_assert_msg(et_until(&h, &fired, 1, 3000), "no edge for a timer");
	ck_assert_int_eq(fired, -ETIME);
	ck_assert_int_eq(pthread_create(&th, NULL, post_later, &l), 0);
	ck_assert_int_eq(pthread_join(th, (void **)&ran), 0);
	ck_assert_msg(et_until(&h, ran, 0, 3000), "no edge for a post");
	ck_assert_int_eq(rsc_scope_open(l, s, "d", &d), 0);
	ck_assert_int_eq(rsc_scope_on_close(d, note_scope_closed, &dclosed), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(d, 20, 0), 0);
	ck_assert_msg(et_until(&h, &dclosed, 0, 3000), "no edge for a deadline");
	ck_assert_int_eq(dclosed, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close(d, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(s, note_scope_closed, &sclosed), 0);
	ck_assert_msg(et_until(&h, &sclosed, 0, 3000), "no edge for a close");
	ck_assert_int_eq(sclosed, 1);
	while (rsc_loop_alive(l) > 0 && epoll_wait(h.ep, &ev, 1, 2000) == 1)
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	/* Quiet now: at most one stale edge, then none. */
	if (epoll_wait(h.ep, &ev, 1, 50) == 1)
		ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(epoll_wait(h.ep, &ev, 1, 50), 0);
	ck_assert_msg(h.wakes < 40, "%d wakes for six steps", h.wakes);
	close(h.ep);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ---- quiet when nothing is due ------------------------------------------ */

/*
 * An open scope holding files, an idle receive and a 10 s timer has nothing
 * due: after one run the fd is not readable, and a level-triggered host
 * wakes at most once in 300 ms (it would spin if the fd stayed readable).
 */
START_TEST(idle_loop_fd_goes_quiet)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e, *t;
	int peer, r = -1000, fired = 1, wakes = 0, i;
	char b[4];
	long end;

	t_make_files(4);
	ck_assert_int_eq(rsc_loop_new(&l, 16, RSC_LOOP_POLLABLE), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(i ? "f1" : "f0"), O_RDONLY, 0, 0, NULL), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_timer(s, 10000, t_store_res, &fired, &t), 0);
	host_settle(l);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, t_store_res, &r), 0);
	ck_assert(fd_readable(rsc_loop_fd(l), 0)); /* an SQE prepared: the host must run us */
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 1);
	if (fd_readable(rsc_loop_fd(l), 20))
		ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 1);
	end = t_now_ms() + 300;
	while (t_now_ms() < end)
		if (fd_readable(rsc_loop_fd(l), 50)) {
			wakes++;
			ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 1);
		}
	ck_assert_msg(wakes <= 1, "an idle loop woke its host %d times in 300 ms", wakes);
	ck_assert_int_eq(r, -1000);
	ck_assert_int_eq(fired, 1);
	ck_assert_int_eq(write(peer, "x", 1), 1);
	ck_assert(host_until(l, &r, -1000, 3000));
	ck_assert_int_eq(r, 1);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	host_drain(l);
	ck_assert_int_eq(fired, -ECANCELED);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	close(peer);
}
END_TEST

/* ---- nested host loops ---------------------------------------------------- */

struct nest {
	struct rsc_loop *outer, *inner;
	int inner_run, outer_from_inner, inner_from_inner, close_outer, dispatch_outer;
	int inner_cb, outer_cb;
};

static void inner_entered(struct rsc_entry *e, int res, void *data)
{
	struct nest *n = data;
	struct io_uring_cqe cqe = { .user_data = (1ULL << 63) | 5, .res = 0 };

	(void)e;
	(void)res;
	n->inner_cb++;
	n->outer_from_inner = rsc_loop_run(n->outer, RSC_RUN_NOWAIT);
	n->inner_from_inner = rsc_loop_run(n->inner, RSC_RUN_NOWAIT);
	n->close_outer = rsc_loop_close(n->outer);
	n->dispatch_outer = rsc_loop_dispatch(n->outer, &cqe);
}

/* A callback of the outer loop is a host turn that runs another loop. */
static void outer_entered(struct rsc_entry *e, int res, void *data)
{
	struct nest *n = data;
	long end = t_now_ms() + 3000;

	(void)e;
	(void)res;
	n->outer_cb++;
	while (n->inner_cb == 0 && t_now_ms() < end)
		if (fd_readable(rsc_loop_fd(n->inner), 100))
			n->inner_run = rsc_loop_run(n->inner, RSC_RUN_NOWAIT);
}

/*
 * Host loops nest: from a callback of loop A the host runs loop B (another
 * loop: allowed, rsc_loop_run(3) refuses only its own loop), and from B's
 * callback, running, closing or dispatching to A or B is -EDEADLK.
 */
START_TEST(nested_host_loops_run_another_loop_and_refuse_their_own)
{
	struct nest n = { 0 };
	struct rsc_scope *so, *si;
	struct rsc_entry *eo, *ei;

	t_make_files(2);
	ck_assert_int_eq(rsc_loop_new(&n.outer, 16, RSC_LOOP_POLLABLE), 0);
	ck_assert_int_eq(rsc_loop_new(&n.inner, 16, RSC_LOOP_POLLABLE), 0);
	ck_assert_int_eq(rsc_scope_open(n.outer, NULL, "o", &so), 0);
	ck_assert_int_eq(rsc_scope_open(n.inner, NULL, "i", &si), 0);
	ck_assert_int_eq(rsc_open(si, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, &ei), 0);
	ck_assert_int_eq(rsc_entry_on_enter(ei, inner_entered, &n), 0);
	ck_assert_int_eq(rsc_open(so, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &eo), 0);
	ck_assert_int_eq(rsc_entry_on_enter(eo, outer_entered, &n), 0);
	ck_assert(host_until(n.outer, &n.outer_cb, 0, 3000));
	ck_assert_int_eq(n.inner_cb, 1);
	ck_assert_int_ge(n.inner_run, 0);
	ck_assert_int_eq(n.outer_from_inner, -EDEADLK);
	ck_assert_int_eq(n.inner_from_inner, -EDEADLK);
	ck_assert_int_eq(n.close_outer, -EDEADLK);
	ck_assert_int_eq(n.dispatch_outer, -EINVAL); /* a loop of its own ring reaps it */
	ck_assert_int_eq(rsc_scope_close(so, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(si, NULL, NULL), 0);
	host_drain(n.outer);
	host_drain(n.inner);
	ck_assert_int_eq(rsc_loop_close(n.inner), 0);
	ck_assert_int_eq(rsc_loop_close(n.outer), 0);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

/* ---- the descriptor's life ---------------------------------------------- */

/*
 * rsc_loop_fd(3): the same descriptor each time, close-on-exec, readable
 * only when work is due, and closed by rsc_loop_close(3) (not before: a
 * refused close leaves it). Refused for NULL and for a loop of either other
 * kind.
 */
START_TEST(loop_fd_lives_and_dies_with_its_loop)
{
	struct rsc_loop *l, *plain, *shared;
	struct rsc_scope *s;
	struct io_uring ring;
	int fd, before = t_fd_count();

	ck_assert_int_eq(rsc_loop_fd(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_new(&plain, 8, RSC_LOOP_NO_DEFER_TASKRUN), 0);
	ck_assert_int_eq(rsc_loop_fd(plain), -EOPNOTSUPP);
	ck_assert_int_eq(io_uring_queue_init(8, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&shared, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_fd(shared), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE | RSC_LOOP_NO_DEFER_TASKRUN | RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_loop_features(l) & (RSC_FEAT_POLLABLE | RSC_FEAT_DEFER_TASKRUN),
			 RSC_FEAT_POLLABLE);
	fd = rsc_loop_fd(l);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_loop_fd(l), fd);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_loop_close(l), -EBUSY);
	ck_assert_int_ge(fcntl(fd, F_GETFD), 0); /* a refused close leaves it */
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert(fd_readable(fd, 0));
	host_drain(l);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
	/* rsc_loop_shutdown(3) closes it too, with what was still open. */
	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE), 0);
	fd = rsc_loop_fd(l);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "left open", &s), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), -ESTALE);
	/* Not both kinds: a loop on the application's ring takes no flags. */
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, RSC_LOOP_POLLABLE), -EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_int_eq(rsc_loop_run(shared, (enum rsc_run_mode)7), -EINVAL);
	ck_assert_int_eq(rsc_loop_close(shared), 0);
	io_uring_queue_exit(&ring);
	ck_assert_int_eq(rsc_loop_close(plain), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ---- a host on another thread ------------------------------------------- */

struct remote {
	struct rsc_loop *l;
	const char *path;
	int opened, closed, err;
};

/* The whole life of a scope, driven by a host thread that did not make the loop. */
static void *remote_host(void *arg)
{
	struct remote *r = arg;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int i;

	for (i = 0; i < 50 && !r->err; i++) {
		int opened = 0, closed = 0;

		if ((r->err = rsc_scope_open(r->l, NULL, "s", &s)) < 0 ||
		    (r->err = rsc_open(s, AT_FDCWD, r->path, O_RDONLY, 0, 0, &e)) < 0 ||
		    (r->err = rsc_entry_on_enter(e, note_enter, &opened)) < 0)
			break;
		if (!host_until(r->l, &opened, 0, 3000) || opened != 1) {
			r->err = -ETIMEDOUT;
			break;
		}
		r->opened++;
		if ((r->err = rsc_scope_close(s, note_scope_closed, &closed)) < 0)
			break;
		if (!host_until(r->l, &closed, 0, 3000) || closed != 1) {
			r->err = -ETIME;
			break;
		}
		r->closed++;
	}
	return NULL;
}

/*
 * A pollable ring is not single-issuer (no DEFER_TASKRUN), so the loop can
 * be handed to a host thread: made on this one, driven there through its fd
 * for 50 scopes, closed back here.
 */
START_TEST(pollable_loop_driven_from_a_host_thread)
{
	struct remote r = { 0 };
	pthread_t th;
	int before = t_fd_count();

	t_make_files(1);
	r.path = t_path("f0");
	ck_assert_int_eq(rsc_loop_new(&r.l, 16, RSC_LOOP_POLLABLE), 0);
	ck_assert(!(rsc_loop_features(r.l) & RSC_FEAT_SINGLE_ISSUER));
	ck_assert_int_eq(pthread_create(&th, NULL, remote_host, &r), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_msg(r.err == 0, "host thread: %s", rsc_strerror(r.err));
	ck_assert_int_eq(r.closed, 50);
	ck_assert_int_eq(rsc_loop_alive(r.l), 0);
	ck_assert_int_eq(rsc_loop_close(r.l), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ---- a post while the host is inside its run ------------------------------ */

struct midrun {
	struct rsc_loop *l;
	int posted, ran, started;
};

static void *post_during_run(void *arg)
{
	struct midrun *m = arg;

	while (!__atomic_load_n(&m->started, __ATOMIC_SEQ_CST))
		usleep(1000);
	m->posted = rsc_loop_post(m->l, count_post, &m->ran);
	return NULL;
}

/* A callback that keeps the host inside rsc_loop_run while the thread posts. */
static void slow_enter(struct rsc_entry *e, int res, void *data)
{
	struct midrun *m = data;

	(void)e;
	(void)res;
	__atomic_store_n(&m->started, 1, __ATOMIC_SEQ_CST);
	usleep(50000);
}

/*
 * A post made while the host is inside rsc_loop_run(RSC_RUN_NOWAIT) (a
 * callback is slow) is not run by that run's end, but the fd must say so:
 * the host sleeps in poll next, and must wake for it.
 */
START_TEST(post_made_during_a_nowait_run_wakes_the_host_after_it)
{
	struct midrun m = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	pthread_t th;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_new(&m.l, 16, RSC_LOOP_POLLABLE), 0);
	ck_assert_int_eq(rsc_scope_open(m.l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, slow_enter, &m), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, post_during_run, &m), 0);
	ck_assert(host_until(m.l, &m.started, 0, 3000));
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(m.posted, 0);
	ck_assert_msg(host_until(m.l, &m.ran, 0, 3000), "the host slept through a post made during its run");
	ck_assert_int_eq(m.ran, 1);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	host_drain(m.l);
	ck_assert_int_eq(rsc_loop_close(m.l), 0);
}
END_TEST

/*
 * A host that prepares 300 opens on a pollable loop of 8 SQEs (a CQ of 32)
 * before it runs the loop once: each full SQ is flushed, and the completions
 * overflow the CQ. The fd is readable; the host's runs get every open
 * entered, and once the scope has closed the fd goes quiet.
 */
START_TEST(burst_beyond_a_pollable_loops_cq_is_all_dispatched)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e[300];
	int i, closed = 0, turns, before = t_fd_count();

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE), 0);
	/* Posts wake it by its eventfd without MSG_RING or a probe (rsc_loop_features(3)). */
	ck_assert_int_eq(rsc_loop_features(l) & ~RSC_FEAT_COOP_TASKRUN,
			 RSC_FEAT_POLLABLE | (t_has_post_msg_ring() ? 0 : RSC_FEAT_POST_EVENTFD));
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	for (i = 0; i < 300; i++)
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e[i]), 0);
	ck_assert(fd_readable(rsc_loop_fd(l), 0));
	for (turns = 0; rsc_entry_state(e[299]) == RSC_ENTERING && turns < 1000; turns++) {
		ck_assert_msg(fd_readable(rsc_loop_fd(l), 2000), "opens in flight, the fd quiet");
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	for (i = 0; i < 300; i++)
		ck_assert_int_eq(rsc_entry_state(e[i]), RSC_ENTERED);
	ck_assert_int_eq(rsc_loop_counter(l, RSC_CTR_ACQUIRED), 300);
	ck_assert_int_eq(rsc_scope_close(s, note_scope_closed, &closed), 0);
	ck_assert(host_until(l, &closed, 0, 5000));
	ck_assert_int_eq(closed, 1);
	host_drain(l);
	ck_assert_int_eq(rsc_loop_counter(l, RSC_CTR_RELEASED), 300);
	ck_assert(!fd_readable(rsc_loop_fd(l), 20));
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

static int never_an_sqe(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(*(int *)arg)++;
	return -EAGAIN;
}

/*
 * An exit that never gets its SQE is called again on later turns, 1000 of
 * them, then settled with -EBUSY (rsc_push(3)). A host is woken for each of
 * those turns (the fd must say a turn is due), and for no more: once the
 * release is settled and the scope closed, the fd goes quiet.
 */
START_TEST(exit_that_never_gets_an_sqe_ends_the_hosts_turns)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	int calls = 0, closed = 0, wakes = 0;
	long end;

	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_defer(s, never_an_sqe, &calls, NULL), 0);
	host_settle(l);
	ck_assert_int_eq(rsc_scope_close(s, note_scope_closed, &closed), 0);
	end = t_now_ms() + 10000;
	while (!closed && t_now_ms() < end && fd_readable(rsc_loop_fd(l), 2000)) {
		wakes++;
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(closed, -EBUSY);
	ck_assert_int_ge(calls, 1000);
	ck_assert_int_le(calls, 1002);
	ck_assert_msg(wakes <= calls + 2, "%d wakes for %d calls", wakes, calls);
	host_drain(l);
	ck_assert(!fd_readable(rsc_loop_fd(l), 20));
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

/* ---- the application's ring ---------------------------------------------- */

/* The application's side of a shared ring: its own reads, and what it reaped. */
struct app {
	struct io_uring ring;
	struct rsc_loop *loop;
	int pipe[2];
	char rbuf[64];
	int reads_in_flight, bytes_read, app_cqes, ours, nops_back[64];
};

/* Ring setups an application may choose, with the features they must show. */
static const struct {
	unsigned setup, feats;
	const char *name;
} setups[] = {
	{ 0, 0, "plain" },
	{ IORING_SETUP_COOP_TASKRUN, RSC_FEAT_COOP_TASKRUN, "coop" },
	{ IORING_SETUP_SINGLE_ISSUER, RSC_FEAT_SINGLE_ISSUER, "single-issuer" },
	{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	  RSC_FEAT_SINGLE_ISSUER | RSC_FEAT_DEFER_TASKRUN, "defer-taskrun" },
	{ IORING_SETUP_SQE128, 0, "sqe128" },
	{ IORING_SETUP_CQE32 | IORING_SETUP_COOP_TASKRUN, RSC_FEAT_COOP_TASKRUN, "cqe32" },
};

#define NSETUPS ((int)(sizeof(setups) / sizeof(setups[0])))

/* 0, or the kernel's -EINVAL for a setup it lacks (a named SKIP). */
static int app_new(struct app *a, unsigned entries, unsigned cq, unsigned setup)
{
	struct io_uring_params p = { .flags = setup };
	int ret;

	memset(a, 0, sizeof(*a));
	a->pipe[0] = a->pipe[1] = -1;
	if (cq) {
		p.flags |= IORING_SETUP_CQSIZE;
		p.cq_entries = cq;
	}
	ret = io_uring_queue_init_params(entries, &a->ring, &p);
	if (ret == -EINVAL)
		return ret;
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&a->loop, &a->ring, 0), 0);
	return 0;
}

/* The application's own read, its user_data a pointer (bit 63 clear). */
static void app_read(struct app *a)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);

	if (!sqe) {
		ck_assert_int_ge(io_uring_submit(&a->ring), 0);
		sqe = io_uring_get_sqe(&a->ring);
	}
	ck_assert_ptr_nonnull(sqe);
	io_uring_prep_read(sqe, a->pipe[0], a->rbuf, sizeof(a->rbuf), 0);
	io_uring_sqe_set_data(sqe, a);
	a->reads_in_flight++;
}

/* A CQE that rsc_loop_dispatch() left to the application. */
static void app_own_cqe(struct app *a, const struct io_uring_cqe *cqe)
{
	ck_assert(!(cqe->user_data & (1ULL << 63)));
	a->app_cqes++;
	if (cqe->user_data == (uintptr_t)a) {
		ck_assert_int_gt(cqe->res, 0);
		a->reads_in_flight--;
		a->bytes_read += cqe->res;
		app_read(a); /* keep one in flight */
	} else {
		ck_assert_uint_ge(cqe->user_data, 1);
		ck_assert_uint_le(cqe->user_data, 64);
		a->nops_back[cqe->user_data - 1]++;
	}
}

/* One turn of the page's reap loop: every CQE to dispatch, then a run. */
static void app_turn(struct app *a, bool wait)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int ret;

	if (wait) {
		struct __kernel_timespec ts = { .tv_sec = 2 };

		ret = io_uring_submit_and_wait_timeout(&a->ring, &cqe, 1, &ts, NULL);
		ck_assert_msg(ret >= 0 || ret == -ETIME, "submit_and_wait: %s", strerror(-ret));
	} else {
		ck_assert_int_ge(io_uring_submit_and_get_events(&a->ring), 0);
	}
	io_uring_for_each_cqe(&a->ring, head, cqe) {
		ret = rsc_loop_dispatch(a->loop, cqe);
		ck_assert_int_ge(ret, 0);
		if (ret == 1)
			a->ours++;
		else
			app_own_cqe(a, cqe);
		n++;
	}
	io_uring_cq_advance(&a->ring, n);
	ck_assert_int_ge(rsc_loop_run(a->loop, RSC_RUN_NOWAIT), 0);
}

/* Close the loop once nothing of it is left, then: nothing of ringscope's
 * reaches the ring afterwards (reaped for 50 ms), and the ring goes. */
static void app_end(struct app *a)
{
	struct __kernel_timespec ts = { .tv_nsec = 50000000 };
	struct io_uring_cqe *cqe;
	int turns;

	for (turns = 0; rsc_loop_alive(a->loop) > 0 && turns < 1000; turns++)
		app_turn(a, true);
	ck_assert_int_eq(rsc_loop_alive(a->loop), 0);
	ck_assert_int_eq(rsc_loop_close(a->loop), 0);
	while (io_uring_submit_and_wait_timeout(&a->ring, &cqe, 1, &ts, NULL) >= 0 && cqe) {
		ck_assert_msg(!(cqe->user_data & (1ULL << 63)),
			      "a CQE of ringscope's (0x%llx) after rsc_loop_close",
			      (unsigned long long)cqe->user_data);
		io_uring_cqe_seen(&a->ring, cqe);
		cqe = NULL;
	}
	io_uring_queue_exit(&a->ring);
	if (a->pipe[0] >= 0) {
		close(a->pipe[0]);
		close(a->pipe[1]);
	}
}

/*
 * rsc_loop_new_from_ring(3) on every setup an application may choose: the
 * features are its flags, one by one; the application keeps a read of its
 * own in flight while 100 scopes open three files and close, and gets each
 * of its CQEs once (every byte it wrote, read once), never one of
 * ringscope's; and after the close nothing of ringscope's comes back.
 */
START_TEST(application_reads_beside_scope_cycles_on_every_ring_setup)
{
	struct app a;
	int i, k, before = t_fd_count(), cycles = 100;

	if (app_new(&a, 16, 0, setups[_i].setup) < 0) {
		printf("SKIP application_reads_beside_scope_cycles_on_every_ring_setup (%s): the kernel refuses the setup\n",
		       setups[_i].name);
		return;
	}
	ck_assert_int_eq(rsc_loop_features(a.loop),
			 (int)(setups[_i].feats | RSC_FEAT_SHARED_RING));
	t_make_files(3);
	ck_assert_int_eq(pipe2(a.pipe, O_CLOEXEC), 0);
	app_read(&a);
	for (i = 0; i < cycles; i++) {
		struct rsc_scope *s;
		struct rsc_entry *e[3];
		int closed = 0, turns;

		ck_assert_int_eq(write(a.pipe[1], "x", 1), 1);
		ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
		for (k = 0; k < 3; k++)
			ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(k == 0 ? "f0" : k == 1 ? "f1" : "f2"),
						  O_RDONLY, 0, 0, &e[k]), 0);
		for (turns = 0; rsc_entry_state(e[2]) == RSC_ENTERING && turns < 100; turns++)
			app_turn(&a, true);
		ck_assert_int_eq(rsc_entry_state(e[0]), RSC_ENTERED);
		ck_assert_int_eq(rsc_scope_close(s, note_scope_closed, &closed), 0);
		ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
		for (turns = 0; !closed && turns < 100; turns++)
			app_turn(&a, true);
		ck_assert_int_eq(closed, 1);
	}
	for (k = 0; a.bytes_read < cycles && k < 100; k++)
		app_turn(&a, true);
	ck_assert_int_eq(a.bytes_read, cycles);
	ck_assert_int_eq(a.reads_in_flight, 1);
	ck_assert_int_eq(a.ours, rsc_loop_counter(a.loop, RSC_CTR_CQES));
	ck_assert_int_ge(a.ours, cycles * 6);
	ck_assert_int_eq(a.app_cqes, a.bytes_read); /* one byte a read, each CQE once */
	/* The read still in flight is the application's: it keeps nothing alive. */
	ck_assert_int_eq(rsc_loop_alive(a.loop), 0);
	app_end(&a);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * A completion queue of 16 on a ring of 8, and bursts from both sides with
 * nobody reaping: 40 NOPs of the application's, 24 opens of ringscope's
 * (which flushes the full SQ as it goes, sending the application's SQEs
 * too). The kernel keeps what overflows; when the application reaps, each
 * NOP comes back once and every open has entered; the scope closes clean.
 */
START_TEST(overflowing_shared_cq_loses_nothing_for_either_side)
{
	struct app a;
	struct rsc_scope *s;
	struct rsc_entry *e[24];
	int i, k, turns, closed = 0, before = t_fd_count();
	bool overflowed = false;

	if (app_new(&a, 8, 16, setups[_i].setup) < 0) {
		printf("SKIP overflowing_shared_cq_loses_nothing_for_either_side (%s): the kernel refuses the setup\n",
		       setups[_i].name);
		return;
	}
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	for (i = 0, k = 0; i < 40 || k < 24;) {
		if (i < 40) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&a.ring);

			if (!sqe) {
				ck_assert_int_ge(io_uring_submit(&a.ring), 0);
				continue;
			}
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, (uint64_t)(i % 64) + 1);
			i++;
		}
		if (k < 24 && i % 2 == 0) {
			ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e[k]), 0);
			k++;
		}
	}
	ck_assert_int_ge(io_uring_submit(&a.ring), 0);
	overflowed = (IO_URING_READ_ONCE(*a.ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) ||
		     (a.ring.flags & IORING_SETUP_DEFER_TASKRUN);
	ck_assert_msg(overflowed, "64 completions fit a CQ of 16?");
	for (turns = 0; turns < 200; turns++) {
		bool all = true;

		for (k = 0; k < 24; k++)
			all = all && rsc_entry_state(e[k]) != RSC_ENTERING;
		if (all && a.app_cqes == 40)
			break;
		app_turn(&a, turns > 0);
	}
	ck_assert_int_eq(a.app_cqes, 40);
	for (i = 0; i < 40; i++)
		ck_assert_int_eq(a.nops_back[i], 1);
	for (k = 0; k < 24; k++)
		ck_assert_int_eq(rsc_entry_state(e[k]), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close(s, note_scope_closed, &closed), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	for (turns = 0; !closed && turns < 200; turns++)
		app_turn(&a, true);
	ck_assert_int_eq(closed, 1);
	app_end(&a);
	ck_assert_int_eq(a.app_cqes, 40);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

struct full_sq {
	struct app *a;
	struct rsc_scope *s;
	int opened_from_cb;
};

/* Inside rsc_loop_dispatch: the application's SQ is full again. */
static void open_with_sq_full(struct rsc_entry *e, int res, void *data)
{
	struct full_sq *f = data;
	struct io_uring_sqe *sqe;
	int i;

	(void)e;
	(void)res;
	for (i = 0; (sqe = io_uring_get_sqe(&f->a->ring)); i++) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, 33 + (uint64_t)i);
	}
	ck_assert_int_eq(i, 8);
	f->opened_from_cb = rsc_open(f->s, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0, 0, NULL);
}

/*
 * The application has filled the SQ with SQEs of its own and not submitted
 * them; ringscope needs one (a push from the program, then one from a
 * callback inside rsc_loop_dispatch): the SQ is flushed, the application's
 * SQEs going out with it, each answered once.
 */
START_TEST(sq_full_of_the_applications_sqes_is_flushed_for_ringscope)
{
	struct app a;
	struct full_sq f = { .a = &a };
	struct io_uring_sqe *sqe;
	struct rsc_entry *e;
	int i, turns, closed = 0, before = t_fd_count();

	if (app_new(&a, 8, 0, setups[_i].setup) < 0) {
		printf("SKIP sq_full_of_the_applications_sqes_is_flushed_for_ringscope (%s): the kernel refuses the setup\n",
		       setups[_i].name);
		return;
	}
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &f.s), 0);
	for (i = 0; (sqe = io_uring_get_sqe(&a.ring)); i++) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, 1 + (uint64_t)i);
	}
	ck_assert_int_eq(i, 8);
	ck_assert_int_eq(rsc_open(f.s, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, open_with_sq_full, &f), 0);
	for (turns = 0; (rsc_loop_alive(a.loop) > 0 || a.app_cqes < 16) && turns < 100; turns++)
		app_turn(&a, true);
	ck_assert_int_eq(f.opened_from_cb, 0);
	ck_assert_int_eq(a.app_cqes, 16);
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(a.nops_back[i], 1);
	for (i = 32; i < 40; i++)
		ck_assert_int_eq(a.nops_back[i], 1);
	ck_assert_int_eq(rsc_scope_close(f.s, note_scope_closed, &closed), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	for (turns = 0; !closed && turns < 100; turns++)
		app_turn(&a, true);
	ck_assert_int_eq(closed, 1);
	app_end(&a);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * What ringscope leaves in flight on the application's ring while it
 * unwinds: a deadline's kernel timer (removed when its scope closes early),
 * a receive cancelled by its release, a timer entry, an acquire cancelled in
 * flight. rsc_loop_close(3) is -EBUSY until the application has dispatched
 * all of it, and afterwards nothing of ringscope's reaches the ring.
 */
START_TEST(closed_loop_leaves_nothing_of_its_own_on_the_ring)
{
	struct app a;
	struct rsc_scope *s, *c;
	struct rsc_entry *e, *t;
	struct sockaddr_un sun;
	int fill[64], nfill, lfd, peer, r = 1, fired = 1, closed = 0, turns, before = t_fd_count();
	char b[4];

	if (app_new(&a, 16, 0, setups[_i].setup) < 0) {
		printf("SKIP closed_loop_leaves_nothing_of_its_own_on_the_ring (%s): the kernel refuses the setup\n",
		       setups[_i].name);
		return;
	}
	lfd = t_full_unix_listener(&sun, fill, &nfill);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 60000, 0), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_timer(s, 60000, t_store_res, &fired, &t), 0);
	ck_assert_int_eq(rsc_scope_open(a.loop, s, "c", &c), 0);
	ck_assert_int_eq(rsc_connect(c, (struct sockaddr *)&sun, sizeof(sun), 0, 0, NULL), 0);
	for (turns = 0; rsc_entry_state(e) != RSC_ENTERED && turns < 50; turns++)
		app_turn(&a, false);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, t_store_res, &r), 0);
	app_turn(&a, false);
	ck_assert_int_eq(rsc_loop_close(a.loop), -EBUSY);
	ck_assert_int_eq(rsc_scope_close(s, note_scope_closed, &closed), 0);
	ck_assert_int_eq(rsc_loop_close(a.loop), -EBUSY);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	for (turns = 0; !closed && turns < 200; turns++)
		app_turn(&a, true);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(r, -ECANCELED);
	ck_assert_int_eq(fired, -ECANCELED);
	app_end(&a);
	close(peer);
	t_full_unix_listener_close(lfd, fill, nfill);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * rsc_loop_dispatch(3) on tagged CQEs that name nothing of the loop's: an
 * index past every op, index 0 with a generation (another loop's message
 * with no direct table), every bit set, a post's wake-up no post sent, and
 * a real CQE with its generation changed. Each is -EINVAL, counts nothing,
 * and the loop goes on working.
 */
START_TEST(tagged_cqes_that_name_nothing_are_refused)
{
	static const uint64_t made_up[] = {
		(1ULL << 63) | 0xffffffffULL, (1ULL << 63) | (5ULL << 32) | 0x7fffffffULL,
		(1ULL << 63) | (7ULL << 32), ~0ULL, 0xffffffff00000000ULL, (1ULL << 63) | 1,
	};
	struct io_uring_cqe cqe = { 0 }, real = { 0 };
	struct io_uring_cqe *c;
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct app a;
	unsigned i;
	long long cqes;
	int turns, closed = 0, ret;

	ck_assert_int_eq(app_new(&a, 16, 0, 0), 0);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0, 0, &e), 0);
	ck_assert_int_eq(io_uring_submit_and_wait(&a.ring, 1), 1);
	ck_assert_int_eq(io_uring_peek_cqe(&a.ring, &c), 0);
	real = *c;
	cqes = rsc_loop_counter(a.loop, RSC_CTR_CQES);
	for (i = 0; i < sizeof(made_up) / sizeof(made_up[0]); i++) {
		cqe.user_data = made_up[i];
		cqe.res = 3;
		ck_assert_msg(rsc_loop_dispatch(a.loop, &cqe) == -EINVAL, "0x%llx taken",
			      (unsigned long long)made_up[i]);
	}
	cqe = real;
	cqe.user_data ^= 1ULL << 40; /* another generation of the same op */
	ck_assert_int_eq(rsc_loop_dispatch(a.loop, &cqe), -EINVAL);
	ck_assert_int_eq(rsc_loop_counter(a.loop, RSC_CTR_CQES), cqes);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERING);
	ret = rsc_loop_dispatch(a.loop, c);
	ck_assert_int_eq(ret, 1);
	io_uring_cqe_seen(&a.ring, c);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(rsc_loop_dispatch(a.loop, &real), -EINVAL);
	ck_assert_int_eq(rsc_scope_close(s, note_scope_closed, &closed), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	for (turns = 0; !closed && turns < 100; turns++)
		app_turn(&a, true);
	ck_assert_int_eq(closed, 1);
	app_end(&a);
	/* Handles of the closed loop's scope and entry: stale, not freed memory. */
	ck_assert_int_eq(rsc_entry_state(e), -ESTALE);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), -ESTALE);
}
END_TEST

/*
 * The application has prepared an SQE linked to its next one (a read on a
 * bad descriptor, IOSQE_IO_LINK) and not yet the next. ringscope's SQEs must
 * not join that chain: a close that went after it was cancelled with the
 * read, and its descriptor escaped the closed scope (-ECANCELED). While the
 * chain is open a push is -EBUSY and the unwind's close waits; once the
 * application has completed its chain (a NOP, cancelled with the read as
 * it linked it) the close goes and the scope closes clean.
 */
START_TEST(applications_open_link_is_never_joined)
{
	struct app a;
	struct io_uring_sqe *sqe;
	struct rsc_scope *s, *o;
	struct rsc_entry *e;
	static char b[4];
	int turns, closed = 0, before = t_fd_count();

	if (app_new(&a, 16, 0, setups[_i].setup) < 0) {
		printf("SKIP applications_open_link_is_never_joined (%s): the kernel refuses the setup\n",
		       setups[_i].name);
		return;
	}
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0, 0, &e), 0);
	for (turns = 0; rsc_entry_state(e) == RSC_ENTERING && turns < 50; turns++)
		app_turn(&a, true);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	sqe = io_uring_get_sqe(&a.ring);
	io_uring_prep_read(sqe, 999, b, sizeof(b), 0);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, 1);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "other", &o), 0);
	ck_assert_int_eq(rsc_scope_close(s, note_scope_closed, &closed), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	ck_assert_uint_eq(io_uring_sq_ready(&a.ring), 1); /* the application's only */
	ck_assert_int_eq(rsc_open(o, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0, 0, NULL), -EBUSY);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "links"));
	ck_assert_int_eq(rsc_scope_close(o, NULL, NULL), 0);
	sqe = io_uring_get_sqe(&a.ring);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 2);
	for (turns = 0; (!closed || a.app_cqes < 2) && turns < 100; turns++)
		app_turn(&a, true);
	ck_assert_int_eq(a.app_cqes, 2);
	ck_assert_int_eq(a.nops_back[0], 1);
	ck_assert_int_eq(a.nops_back[1], 1);
	ck_assert_int_eq(closed, 1);
	app_end(&a);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* A release-only entry that cannot get its SQE for its first three turns. */
static int busy_three_times(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	int *calls = arg;

	(void)e;
	(void)pending;
	return ++*calls <= 3 ? -EAGAIN : 0;
}

/*
 * An exit that cannot get an SQE is called again on later turns
 * (rsc_push(3)). On the application's ring a turn is the application's
 * rsc_loop_run(3) after it reaped something, and the page's reap loop
 * waits for a completion first: with nothing of ringscope's in the kernel
 * it would wait for ever. The loop must bring the application back (a
 * completion of its own), so that each retry comes within one wait.
 */
START_TEST(release_retried_on_later_turns_wakes_the_application)
{
	struct app a;
	struct rsc_scope *s;
	int calls = 0, closed = 0, turns;
	long t0;

	if (app_new(&a, 16, 0, setups[_i].setup) < 0) {
		printf("SKIP release_retried_on_later_turns_wakes_the_application (%s): the kernel refuses the setup\n",
		       setups[_i].name);
		return;
	}
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_defer(s, busy_three_times, &calls, NULL), 0);
	for (turns = 0; rsc_loop_alive(a.loop) > 0 && turns < 10; turns++)
		app_turn(&a, true);
	ck_assert_int_eq(rsc_scope_close(s, note_scope_closed, &closed), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	t0 = t_now_ms();
	/* The page's loop: wait for a completion, dispatch, run (2 s at most a wait). */
	for (turns = 0; rsc_loop_alive(a.loop) > 0 && turns < 20; turns++)
		app_turn(&a, true);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(calls, 4);
	ck_assert_msg(t_now_ms() - t0 < 1000, "the application waited %ld ms for three retries",
		      t_now_ms() - t0);
	app_end(&a);
}
END_TEST

/*
 * rsc_adopt(3): "a loop's ring" is one of the runtime's own descriptors,
 * refused with -EEXIST. The ring a loop shares is that loop's ring while
 * the loop lives: adopted, its release would be an IORING_OP_CLOSE, which
 * the kernel refuses for a ring (-EBADF), so the descriptor would escape
 * the closed scope (and a close of it would end the loop's ring). Refused
 * on any loop; once the loop is closed, the ring is the application's only.
 */
START_TEST(adopting_the_ring_a_loop_shares_is_eexist)
{
	struct rsc_scope *s, *o;
	struct rsc_entry *e = (struct rsc_entry *)&e;
	struct app a;
	int closed = 0, turns;

	ck_assert_int_eq(app_new(&a, 16, 0, 0), 0);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_adopt(s, a.ring.ring_fd, 0, &e), -EEXIST);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_adopt(o, a.ring.ring_fd, 0, NULL), -EEXIST);
	ck_assert_int_ge(fcntl(a.ring.ring_fd, F_GETFD), 0);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(s, note_scope_closed, &closed), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	for (turns = 0; !closed && turns < 100; turns++)
		app_turn(&a, true);
	ck_assert_int_eq(closed, 1);
	app_end(&a);
}
END_TEST

struct cross {
	struct app *a;
	struct io_uring_cqe held;
	int dispatched, run_inside, entered;
};

static void note_inner_enter(struct rsc_entry *e, int res, void *data)
{
	struct cross *x = data;

	(void)e;
	(void)res;
	x->entered++;
	x->run_inside = rsc_loop_run(x->a->loop, RSC_RUN_NOWAIT);
}

/* A callback of another loop hands the shared loop a CQE: allowed. */
static void dispatch_from_other(struct rsc_entry *e, int res, void *data)
{
	struct cross *x = data;

	(void)e;
	(void)res;
	x->dispatched = rsc_loop_dispatch(x->a->loop, &x->held);
}

/*
 * rsc_loop_dispatch(3) is refused only from the loop's own callbacks: from a
 * callback of another loop (the fixture's) it dispatches, and the shared
 * loop's callback it runs may not run its own loop (-EDEADLK).
 */
START_TEST(dispatch_from_another_loops_callback)
{
	struct cross x = { 0 };
	struct io_uring_cqe *c;
	struct rsc_scope *s, *o;
	struct rsc_entry *e, *oe;
	struct app a;
	int turns, closed = 0;

	x.a = &a;
	ck_assert_int_eq(app_new(&a, 16, 0, 0), 0);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, note_inner_enter, &x), 0);
	ck_assert_int_eq(io_uring_submit_and_wait(&a.ring, 1), 1);
	ck_assert_int_eq(io_uring_peek_cqe(&a.ring, &c), 0);
	x.held = *c;
	io_uring_cqe_seen(&a.ring, c);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_open(o, AT_FDCWD, "/", O_RDONLY | O_DIRECTORY, 0, 0, &oe), 0);
	ck_assert_int_eq(rsc_entry_on_enter(oe, dispatch_from_other, &x), 0);
	ck_assert_int_ge(rsc_entry_wait(oe), 0);
	ck_assert_int_eq(x.dispatched, 1);
	ck_assert_int_eq(x.entered, 1);
	ck_assert_int_eq(x.run_inside, -EDEADLK);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(s, note_scope_closed, &closed), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	for (turns = 0; !closed && turns < 100; turns++)
		app_turn(&a, true);
	ck_assert_int_eq(closed, 1);
	app_end(&a);
}
END_TEST

Suite *make_hostile_host_suite(void)
{
	Suite *s = suite_create("hostile_host");
	TCase *tc = tcase_create("hostile_host");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, cancel_kept_for_the_next_turn_wakes_the_host);
	tcase_add_test(tc, deadline_removal_kept_for_the_next_turn_wakes_the_host);
	tcase_add_test(tc, edge_triggered_epoll_host_wakes_for_every_kind_of_work);
	tcase_add_test(tc, idle_loop_fd_goes_quiet);
	tcase_add_test(tc, nested_host_loops_run_another_loop_and_refuse_their_own);
	tcase_add_test(tc, loop_fd_lives_and_dies_with_its_loop);
	tcase_add_test(tc, pollable_loop_driven_from_a_host_thread);
	tcase_add_test(tc, post_made_during_a_nowait_run_wakes_the_host_after_it);
	tcase_add_test(tc, burst_beyond_a_pollable_loops_cq_is_all_dispatched);
	tcase_add_test(tc, exit_that_never_gets_an_sqe_ends_the_hosts_turns);
	tcase_add_test(tc, tagged_cqes_that_name_nothing_are_refused);
	tcase_add_test(tc, dispatch_from_another_loops_callback);
	tcase_add_test(tc, adopting_the_ring_a_loop_shares_is_eexist);
	tcase_add_loop_test(tc, application_reads_beside_scope_cycles_on_every_ring_setup, 0, NSETUPS);
	tcase_add_loop_test(tc, overflowing_shared_cq_loses_nothing_for_either_side, 0, NSETUPS);
	tcase_add_loop_test(tc, sq_full_of_the_applications_sqes_is_flushed_for_ringscope, 0, NSETUPS);
	if (t_kernel_has(IORING_OP_SOCKET))
		tcase_add_loop_test(tc, closed_loop_leaves_nothing_of_its_own_on_the_ring, 0, NSETUPS);
	else
		printf("SKIP closed_loop_leaves_nothing_of_its_own_on_the_ring: the loops of this run lack IORING_OP_SOCKET (Linux 5.19)\n");
	tcase_add_loop_test(tc, applications_open_link_is_never_joined, 0, NSETUPS);
	tcase_add_loop_test(tc, release_retried_on_later_turns_wakes_the_application, 0, NSETUPS);
	suite_add_tcase(s, tc);
	return s;
}
