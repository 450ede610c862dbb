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

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static bool fd_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* A host that sleeps in poll(2): runs @l each time its fd wakes it, until
 * *@flag leaves @unset or @ms pass; 1 if it did, 0 if the host slept through. */
static int host_until(struct rsc_loop *l, const int *flag, int unset, int ms)
{
	long end = now_ms() + ms;
	int fd = rsc_loop_fd(l);

	while (*flag == unset) {
		long left = end - now_ms();

		if (left <= 0 || !fd_readable(fd, (int)left))
			return 0;
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	return 1;
}

/* The host's way out: run while the fd says so, until nothing is alive. */
static void host_drain(struct rsc_loop *l)
{
	long end = now_ms() + 5000;

	while (rsc_loop_alive(l) > 0 && now_ms() < end)
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
	long end = now_ms() + ms;
	struct epoll_event ev;

	while (*flag == unset) {
		long left = end - now_ms();
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
	end = now_ms() + 300;
	while (now_ms() < end)
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
	long end = now_ms() + 3000;

	(void)e;
	(void)res;
	n->outer_cb++;
	while (n->inner_cb == 0 && now_ms() < end)
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
	suite_add_tcase(s, tc);
	return s;
}
