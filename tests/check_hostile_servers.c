/* SPDX-License-Identifier: MIT */
/*
 * Hostile acceptance probes of the server-side API: deadlines, graceful
 * closes, accept, listen and connect, multishot receives, posts, a loop
 * another loop drives or that shares the application's ring, on_close and
 * release_wait. Each probe checks a promise of the man page against a side
 * effect (/proc/self/fd, the order of callbacks, the errno a callback saw),
 * including the awkward cases: callbacks that call back into the library,
 * handles kept after their scope was freed, races with a close.
 *
 * Probes that could hang if the library broke its promise wait under a
 * guard: a timer of a scope of its own that wakes the loop, so the test
 * fails instead of blocking (CK_FORK=no has no Check timeout).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* ------------------------------------------------------------- the guard */

/* Run t_loop until *@flag reaches @want; fail (not hang) when the guard fires. */
static void run_until(struct t_guard *g, const int *flag, int want, const char *what)
{
	while (*flag < want && !g->fired)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_msg(*flag >= want, "%s: still waiting when the guard fired", what);
}

/* ------------------------------------------------------------ recorders */

struct closed {
	int calls, status, order, has_err;
	unsigned drained, cut; /* rsc_scope_close_stats() */
	char op[32];
};

static int close_seq;

static void note_closed(struct rsc_scope *s, int status, const struct rsc_error *err,
			void *data)
{
	struct closed *c = data;

	c->calls++;
	c->status = status;
	c->order = ++close_seq;
	c->has_err = err != NULL;
	snprintf(c->op, sizeof(c->op), "%s", err ? rsc_error_op(err) : "");
	ck_assert_int_eq(rsc_scope_close_stats(s, &c->drained, &c->cut, NULL), 0);
}

struct io_seen {
	int calls, last, order;
	char buf[8]; /* an idle_recv()'s */
};

static void note_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct io_seen *x = data;

	(void)e;
	(void)buf;
	x->calls++;
	x->last = res;
	x->order = ++close_seq;
}

/* A connected pair whose end in @s has a receive waiting (into @r->buf). */
static struct rsc_entry *idle_recv(struct rsc_scope *s, int *peer, struct io_seen *r)
{
	struct rsc_entry *e = t_adopted_pair(s, peer);

	ck_assert_int_eq(rsc_recv(e, r->buf, sizeof(r->buf), 0, note_io, r), 0);
	return e;
}

/* ------------------------------------------- an application's reap loop */

typedef void (*app_cqe_fn)(const struct io_uring_cqe *cqe, void *data);

/* One turn of an application's reap loop: wait for a completion, hand each
 * one to the loop, the application's own to @mine (none expected if NULL),
 * then let the loop run what is due and submit. */
static void app_turn(struct io_uring *ring, struct rsc_loop *l, app_cqe_fn mine, void *data)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int ret;

	ck_assert_int_ge(io_uring_submit_and_wait(ring, 1), 0);
	io_uring_for_each_cqe(ring, head, cqe) {
		ret = rsc_loop_dispatch(l, cqe);
		ck_assert_int_ge(ret, 0);
		if (ret == 0) {
			ck_assert_msg(mine, "a completion of the application's: %llu",
				      (unsigned long long)cqe->user_data);
			mine(cqe, data);
		}
		n++;
	}
	io_uring_cq_advance(ring, n);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
}

/* Every scope closed: reap until nothing of the loop's is left, and free it. */
static void app_drain_and_close(struct io_uring *ring, struct rsc_loop *l)
{
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	while (rsc_loop_alive(l) > 0)
		app_turn(ring, l, NULL, NULL);
	ck_assert_int_eq(rsc_loop_close(l), 0);
}

/* ------------------------------------------------------------ deadlines */

struct dl_cb {
	struct closed c;
	struct rsc_scope *self, *later, *cleared;
	int r_later, r_cleared, r_self;
};

static void on_close_moves_other_deadlines(struct rsc_scope *s, int status,
					   const struct rsc_error *err, void *data)
{
	struct dl_cb *d = data;

	note_closed(s, status, err, &d->c);
	d->r_later = rsc_scope_set_deadline(d->later, 60000, 0);
	d->r_cleared = rsc_scope_set_deadline(d->cleared, 0, 0);
	d->r_self = rsc_scope_set_deadline(d->self, 10, 0);
}

/* A callback run by one expiry re-arms and clears deadlines that fall due
 * in the same expiry: they obey the callback, not the timer that woke it. */
START_TEST(expiry_callback_rearms_and_clears_deadlines_due_with_it)
{
	struct rsc_scope *a, *b, *c;
	struct dl_cb d = { 0 };
	struct t_guard g;
	long long before = rsc_loop_counter(t_loop, RSC_CTR_DEADLINES);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "c", &c), 0);
	d.self = a;
	d.later = b;
	d.cleared = c;
	ck_assert_int_eq(rsc_scope_on_close(a, on_close_moves_other_deadlines, &d), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(a, 20, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(b, 20, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(c, 20, RSC_DEADLINE_MOVE_ON), 0);
	t_guard_start(&g, t_loop, 300);
	run_until(&g, &g.fired, 1, "the guard");
	ck_assert_int_eq(d.c.calls, 1);
	ck_assert_int_eq(d.c.status, -ETIMEDOUT);
	ck_assert_int_eq(d.r_later, 0);
	ck_assert_int_eq(d.r_cleared, 0);
	ck_assert_int_eq(d.r_self, -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_state(b), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_state(c), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), before + 1);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_scope_set_deadline(b, 0, 0), 0);
	t_run(); /* returns: no deadline left keeps the loop alive */
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(c, NULL), 0);
}
END_TEST

/* A release whose exit takes 150 ms: a poll on a timerfd. */
static int slow_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)pending;
	if (ret < 0)
		return ret;
	io_uring_prep_poll_add(sqe, *(int *)arg, POLLIN);
	return 0;
}

/* The deadline passes while rsc_entry_release_wait() waits: the helper
 * still returns the release's own result, the unwind waits for that early
 * release, and the release is not in the scope's chain. */
START_TEST(deadline_passing_during_release_wait)
{
	struct itimerspec its = { .it_value = { 0, 150 * 1000000L } };
	struct rsc_scope *s;
	struct rsc_entry *d, *other;
	struct rsc_error *err = (struct rsc_error *)1, *chain = NULL;
	struct closed st = { 0 };
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC), efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_ge(tfd, 0);
	close_seq = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &other), 0);
	ck_assert_int_eq(rsc_defer(s, slow_exit, &tfd, &d), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, note_closed, &st), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_set_deadline(s, 20, 0), 0);
	ck_assert_int_eq(timerfd_settime(tfd, 0, &its, NULL), 0);
	ck_assert_int_eq(rsc_entry_release_wait(d, &err), 0);
	ck_assert_ptr_null(err);
	/* The deadline passed meanwhile; the unwind waited for this release. */
	while (st.calls == 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(st.status, -ETIMEDOUT);
	ck_assert(!fd_open(efd));
	ck_assert_int_eq(rsc_entry_fd(d), -EBADF); /* still valid, holds nothing */
	ck_assert_int_eq(rsc_entry_release_wait(d, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(s, &chain), -ETIMEDOUT);
	ck_assert_int_eq(rsc_error_depth(chain), 1);
	ck_assert_str_eq(rsc_error_op(chain), "deadline");
	rsc_error_free(chain);
	ck_assert_int_eq(rsc_entry_fd(d), -ESTALE);
	close(tfd);
}
END_TEST

/* A listener whose queue is full drops SYNs: a connect to it waits. */
static struct rsc_scope *blackhole(struct sockaddr_in *bound, int fill[4])
{
	struct rsc_scope *srv;
	int i;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "blackhole", &srv), 0);
	(void)t_listen_on_loopback(srv, 0, bound);
	for (i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fill[i], 0);
		(void)connect(fill[i], (struct sockaddr *)bound, sizeof(*bound));
	}
	usleep(50000);
	return srv;
}

static void blackhole_close(struct rsc_scope *srv, int fill[4])
{
	int i;

	for (i = 0; i < 4; i++)
		close(fill[i]);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}

/* The deadline passes while a connect is in flight: the connect is
 * cancelled (no error of its own in the chain), its socket closed. */
START_TEST(deadline_cancels_a_connect_in_flight_and_closes_its_socket)
{
	struct rsc_scope *srv, *s;
	struct rsc_entry *c;
	struct rsc_error *err = NULL;
	struct sockaddr_in bound;
	struct closed st = { 0 };
	struct t_guard g;
	int fill[4], before;

	srv = blackhole(&bound, fill);
	before = t_fd_count();
	t_guard_start(&g, t_loop, 3000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, note_closed, &st), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&bound, sizeof(bound), 0, 0, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 50, 0), 0);
	run_until(&g, &st.calls, 1, "the deadline");
	ck_assert_int_eq(st.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_entry_state(c), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_fd(c), -ECANCELED);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ETIMEDOUT);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	ck_assert_str_eq(rsc_error_op(err), "deadline");
	ck_assert_str_eq(rsc_error_scope(err), "s");
	rsc_error_free(err);
	t_guard_stop(&g);
	t_run();
	ck_assert_int_eq(t_fd_count(), before);
	blackhole_close(srv, fill);
}
END_TEST


/* Turn the loop until @e's acquire settles: it must fail with @want, within the guard. */
static void settles_failed(struct t_guard *g, struct rsc_entry *e, int want, int round)
{
	int ret;

	while (rsc_entry_state(e) == RSC_ENTERING && !g->fired)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_msg(rsc_entry_state(e) == RSC_FAILED,
		      "round %d: the connect is still in flight after the guard's 3 s", round);
	ret = rsc_entry_fd(e);
	ck_assert_msg(ret == want, "round %d: the connect failed with %s, not %s", round,
		      rsc_err_name(ret), rsc_err_name(want));
}


/* A connect that only a cancel ends (DESIGN 2.6: acquires in flight are
 * cancelled): the deadline cancels it, and the connect the cancel
 * interrupted is no error of its own. */
START_TEST(deadline_cancels_a_unix_connect_waiting_for_room)
{
	struct sockaddr_un sun;
	struct rsc_scope *s;
	struct rsc_error *err = NULL;
	struct closed st = { 0 };
	struct t_guard g;
	int lfd, fill[64], nfill, before;

	lfd = t_full_unix_listener(&sun, fill, &nfill);
	before = t_fd_count();
	t_guard_start(&g, t_loop, 3000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, note_closed, &st), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 0, 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 50, 0), 0);
	run_until(&g, &st.calls, 1, "the deadline of a scope whose connect waits");
	ck_assert_int_eq(st.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ETIMEDOUT);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	ck_assert_str_eq(rsc_error_op(err), "deadline");
	rsc_error_free(err);
	ck_assert_int_eq(t_fd_count(), before);
	t_guard_stop(&g);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* The same connect released as soon as it was submitted: the cancel may
 * reach the kernel before the connect is anywhere a cancel looks (on a
 * DEFER_TASKRUN ring, in the task work that moves it to an io-wq worker);
 * it must be cancelled all the same, not left waiting for room. */
START_TEST(release_cancels_a_unix_connect_just_submitted)
{
	struct sockaddr_un sun;
	struct rsc_scope *t;
	struct rsc_entry *c;
	struct t_guard g;
	int lfd, fill[64], nfill, before, round;

	lfd = t_full_unix_listener(&sun, fill, &nfill);
	before = t_fd_count();
	for (round = 0; round < 3; round++) {
		t_guard_start(&g, t_loop, 3000);
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "t", &t), 0);
		ck_assert_int_eq(rsc_connect(t, (struct sockaddr *)&sun, sizeof(sun), 0, 0, &c), 0);
		while (t_fd_count() == before)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1); /* the connect goes out */
		ck_assert_int_eq(rsc_entry_release(c, NULL, NULL), 0);
		settles_failed(&g, c, -ECANCELED, round);
		t_guard_stop(&g);
		ck_assert_int_eq(rsc_scope_close_wait(t, NULL), 0);
		ck_assert_int_eq(t_fd_count(), before);
	}
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* rsc_connect(3): "when [timeout_ms] fires, the connect fails with
 * -ETIMEDOUT", also for a connect blocked in an io-wq worker, whichever way
 * the kernel's linked timeout finds it. */
START_TEST(connect_timeout_ends_a_unix_connect_waiting_for_room)
{
	struct sockaddr_un sun;
	struct rsc_scope *s;
	struct rsc_entry *c;
	struct t_guard g;
	int lfd, fill[64], nfill, before, round;

	lfd = t_full_unix_listener(&sun, fill, &nfill);
	before = t_fd_count();
	for (round = 0; round < 20; round++) {
		t_guard_start(&g, t_loop, 3000);
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
		ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 1 + round % 4, 0, &c), 0);
		settles_failed(&g, c, -ETIMEDOUT, round);
		t_guard_stop(&g);
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
		ck_assert_int_eq(t_fd_count(), before);
	}
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* Deadlines on a loop sharing the application's ring: the timer's CQE is
 * dispatched by the application, which learns of the deadline from on_close. */
START_TEST(deadline_on_a_shared_ring)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct closed st = { 0 };
	int before = t_fd_count();
	long t0 = t_now_ms();

	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, note_closed, &st), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 20, 0), 0);
	ck_assert_int_eq(rsc_loop_alive(l), 1);
	ck_assert_int_eq(rsc_loop_close(l), -EBUSY);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	while (st.calls == 0 && t_now_ms() - t0 < 5000)
		app_turn(&ring, l, NULL, NULL);
	ck_assert_int_eq(st.calls, 1);
	ck_assert_int_eq(st.status, -ETIMEDOUT);
	ck_assert_str_eq(st.op, "deadline");
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	app_drain_and_close(&ring, l);
	/* The ring is still the application's, and works. */
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 7);
	ck_assert_int_eq(io_uring_submit_and_wait(&ring, 1), 1);
	ck_assert_int_eq(io_uring_peek_cqe(&ring, &cqe), 0);
	ck_assert_int_eq(cqe->user_data, 7);
	io_uring_cqe_seen(&ring, cqe);
	io_uring_queue_exit(&ring);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ------------------------------------------------------ graceful closes */

/* The parent's deadline cancels everything in flight below it: a child's
 * graceful close with no bound does not hold it off. */
START_TEST(ancestor_deadline_cuts_a_childs_unbounded_grace)
{
	struct rsc_scope *p, *c;
	struct closed pc = { 0 }, cc = { 0 };
	struct io_seen r = { 0 };
	struct t_guard g;
	int peer;

	t_guard_start(&g, t_loop, 3000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	(void)idle_recv(c, &peer, &r);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, note_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, note_closed, &pc), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 30, 0), 0);
	run_until(&g, &pc.calls, 1, "the parent's deadline");
	ck_assert_int_eq(r.last, -ECANCELED);
	ck_assert_int_eq(cc.calls, 1);
	ck_assert_int_eq(cc.cut, 1);
	ck_assert_int_eq(cc.drained, 0);
	ck_assert_int_eq(pc.status, -ETIMEDOUT);
	ck_assert_str_eq(pc.op, "deadline");
	/* The child was cut, not drained, and its callbacks came in order. */
	ck_assert_int_lt(r.order, cc.order);
	ck_assert_int_lt(cc.order, pc.order);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	t_guard_stop(&g);
	close(peer);
}
END_TEST

/* The same for an ancestor's rsc_scope_fail: a failure cancels, it does not wait. */
START_TEST(ancestor_failure_cuts_a_grandchilds_grace)
{
	struct rsc_scope *p, *m, *c, *c2;
	struct closed cc = { 0 }, cc2 = { 0 };
	struct io_seen r = { 0 }, r2 = { 0 };
	struct t_guard g;
	int peer, peer2;

	t_guard_start(&g, t_loop, 3000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "m", &m), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, m, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, m, "c2", &c2), 0);
	(void)idle_recv(c, &peer, &r);
	(void)idle_recv(c2, &peer2, &r2);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, note_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_fail(p, -EPROTO, "body"), 0);
	/* Asked after the failure: there is nothing to let finish. */
	ck_assert_int_eq(rsc_scope_close_graceful(c2, 0, note_closed, &cc2), 0);
	run_until(&g, &cc.calls, 1, "the grandchild's close");
	run_until(&g, &cc2.calls, 1, "the second grandchild's close");
	ck_assert_int_eq(r.last, -ECANCELED);
	ck_assert_int_eq(r2.last, -ECANCELED);
	ck_assert_int_eq(cc.cut, 1);
	ck_assert_int_eq(cc2.cut, 0); /* no grace given: a plain close */
	ck_assert_int_eq(rsc_scope_close_stats(c, NULL, NULL, NULL), -ESTALE); /* freed after its callback */
	ck_assert_int_eq(rsc_scope_state(p), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -EPROTO);
	t_guard_stop(&g);
	close(peer);
	close(peer2);
}
END_TEST

/* rsc_recv_multishot(3): "A graceful close waits for it as for any tracked
 * I/O: release the entry, or close its scope, once no more input is wanted."
 * So both must work during the grace. */
START_TEST(release_during_a_grace_ends_a_multishot_receive)
{
	struct rsc_scope *srv, *conn;
	struct rsc_entry *a, *b;
	struct closed gc = { 0 };
	struct io_seen ra = { 0 }, rb = { 0 };
	struct rsc_error *err = (struct rsc_error *)1;
	struct t_guard g;
	int pa, pb;
	long t0;

	t_guard_start(&g, t_loop, 4000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, srv, "conn", &conn), 0);
	a = t_adopted_pair(srv, &pa);
	b = t_adopted_pair(conn, &pb);
	ck_assert_int_eq(rsc_recv_multishot(a, 0, note_io, &ra), 0);
	ck_assert_int_eq(rsc_recv_multishot(b, 0, note_io, &rb), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 3000, note_closed, &gc), 0);
	/* An entry of the graceful scope, and one of its child. */
	ck_assert_msg(rsc_entry_release(a, NULL, NULL) == 0, "release during the grace: %s",
		      rsc_last_error());
	ck_assert_int_eq(rsc_entry_release(a, NULL, NULL), -EALREADY);
	ck_assert_msg(rsc_entry_release_wait(b, &err) == 0, "release_wait during the grace: %s",
		      rsc_last_error());
	ck_assert_ptr_null(err);
	ck_assert_int_eq(rb.last, -ECANCELED);
	run_until(&g, &gc.calls, 1, "the graceful close");
	ck_assert_int_eq(ra.last, -ECANCELED);
	ck_assert_msg(t_now_ms() - t0 < 2500, "the grace ran out instead of ending with the releases");
	ck_assert_int_eq(gc.status, 0);
	ck_assert_int_eq(gc.cut, 0); /* ended by the releases, not by the bound */
	t_guard_stop(&g);
	close(pa);
	close(pb);
}
END_TEST

/* A host polling a pollable loop sleeps while a grace waits on idle I/O:
 * nothing is due until a completion arrives. */
START_TEST(pollable_host_sleeps_through_an_idle_grace)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct closed gc = { 0 };
	struct io_seen r = { 0 };
	struct pollfd pfd = { .events = POLLIN };
	int peer, wakeups = 0;
	long t0;

	ck_assert_int_eq(rsc_loop_new(&l, 16, RSC_LOOP_POLLABLE), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	(void)idle_recv(s, &peer, &r);
	pfd.fd = rsc_loop_fd(l);
	while (poll(&pfd, 1, 0) == 1)
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 300, note_closed, &gc), 0);
	t0 = t_now_ms();
	while (gc.calls == 0 && t_now_ms() - t0 < 5000) {
		if (poll(&pfd, 1, 1000) == 1) {
			wakeups++;
			ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		}
	}
	ck_assert_int_eq(gc.calls, 1);
	ck_assert_int_eq(r.last, -ECANCELED);
	ck_assert_msg(wakeups < 30, "the host woke %d times during a grace of 300 ms with nothing to do",
		      wakeups);
	while (rsc_loop_alive(l) > 0 && poll(&pfd, 1, 2000) == 1)
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	close(peer);
}
END_TEST

/* Children already closing when their parent's graceful close begins: one
 * closed by its owner, one in a grace of its own, one unwound after a
 * failure and waiting for its close. Each is heard of once, in order, and
 * the parent's grace ends when the last of them has finished its I/O. */
START_TEST(graceful_close_of_a_scope_whose_children_are_already_closing)
{
	struct rsc_scope *s, *c1, *c2, *c3;
	struct closed sc = { 0 }, cc1 = { 0 }, cc2 = { 0 }, oc3 = { 0 };
	struct io_seen r1 = { 0 }, r2 = { 0 };
	struct t_guard g;
	int p1, p2, before = t_fd_count();

	close_seq = 0;
	t_guard_start(&g, t_loop, 3000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "c1", &c1), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "c2", &c2), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "c3", &c3), 0);
	(void)idle_recv(c1, &p1, &r1);
	(void)idle_recv(c2, &p2, &r2);
	ck_assert_int_eq(rsc_scope_on_close(c3, note_closed, &oc3), 0);
	ck_assert_int_eq(rsc_scope_fail(c3, -EIO, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_state(c3), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_close(c1, note_closed, &cc1), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(c2, 0, note_closed, &cc2), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 2000, note_closed, &sc), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(c1, 0, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_graceful(c2, 0, NULL, NULL), -EALREADY);
	run_until(&g, &cc1.calls, 1, "c1's close");
	ck_assert_int_eq(r1.last, -ECANCELED);
	ck_assert_int_eq(sc.calls, 0); /* c2's recv is still let finish */
	ck_assert_int_eq(write(p2, "hi", 2), 2);
	run_until(&g, &sc.calls, 1, "s's graceful close");
	ck_assert_int_eq(r2.last, 2);
	ck_assert_int_eq(cc2.calls, 1);
	ck_assert_int_eq(cc2.status, 0);
	ck_assert_int_eq(oc3.calls, 1);
	ck_assert_int_lt(oc3.order, cc1.order);
	ck_assert_int_lt(cc1.order, sc.order);
	ck_assert_int_lt(cc2.order, sc.order);
	/* c3 was waiting for its close: the parent's unwind took its result. */
	ck_assert_int_eq(sc.status, -EIO);
	ck_assert_int_eq(sc.cut, 0);
	t_guard_stop(&g);
	t_run();
	close(p1);
	close(p2);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* A graceful close refuses a handle of the wrong kind or a freed scope, and
 * says why; detach and move stay refused during the grace (only a release
 * ends work), and so does a release under a plain close. */
START_TEST(graceful_close_arguments_and_what_the_grace_still_refuses)
{
	struct rsc_scope *s, *o, *p;
	struct rsc_entry *e, *f;
	unsigned u;
	int efd = eventfd(0, EFD_CLOEXEC), ffd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &e), 0);
	ck_assert_int_eq(rsc_adopt(p, ffd, 0, &f), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_graceful((struct rsc_scope *)e, 0, NULL, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_scope_close_graceful"));
	ck_assert_int_eq(rsc_scope_close_stats((struct rsc_scope *)e, &u, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 5000, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_detach(e), -EALREADY);
	ck_assert_int_eq(rsc_entry_move(e, o), -EALREADY);
	ck_assert_int_eq(rsc_scope_move(s, o), -EALREADY);
	ck_assert_int_eq(rsc_scope_close(p, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_release(f, NULL, NULL), -EALREADY);
	t_run();
	ck_assert(!fd_open(efd));
	ck_assert(!fd_open(ffd));
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, NULL, NULL), -ESTALE);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_scope_close_graceful"));
	ck_assert_int_eq(rsc_scope_close_stats(s, &u, &u, &u), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
}
END_TEST

/* ---------------------------------------------------------------- accept */

/* The peer sees the end of the stream within 2 s, the loop turning meanwhile. */
static void peer_sees_eof(int c)
{
	struct pollfd p = { .fd = c, .events = POLLIN };
	long t0 = t_now_ms();
	char ch;

	while (poll(&p, 1, 5) == 0 && t_now_ms() - t0 < 2000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(poll(&p, 1, 0), 1);
	ck_assert_int_eq(recv(c, &ch, 1, 0), 0);
}

struct acc2 {
	struct rsc_entry *listener;
	struct rsc_scope *srv;
	int conns, finals, calls, last, fds[8], cloexec[8];
	struct rsc_scope *conn_scope;
	struct rsc_entry *conn;
	int r_release, r_again, r_graceful, stop_after;
	char scope_name[32], entry_name[32], detail[32];
	bool scope_is_child, release_listener, close_conn, rearm, graceful;
	struct closed gc;
};

static void on_acc2(struct rsc_entry *l, int res, struct rsc_scope *cs,
		    struct rsc_entry *ce, void *data)
{
	struct acc2 *a = data;

	ck_assert_ptr_eq(l, a->listener);
	a->calls++;
	a->last = res;
	if (res < 0) {
		ck_assert_ptr_null(cs);
		a->finals += res == -ECANCELED;
		return;
	}
	ck_assert_int_lt(a->conns, 8);
	a->fds[a->conns] = res;
	a->conn_scope = cs;
	a->conn = ce;
	a->cloexec[a->conns] = fcntl(res, F_GETFD) & FD_CLOEXEC;
	a->conns++;
	snprintf(a->scope_name, sizeof(a->scope_name), "%s", rsc_scope_name(cs));
	snprintf(a->entry_name, sizeof(a->entry_name), "%s", rsc_entry_name(ce));
	snprintf(a->detail, sizeof(a->detail), "%s", rsc_entry_detail(ce));
	ck_assert_int_eq(rsc_entry_fd(ce), res);
	ck_assert_ptr_eq(rsc_entry_scope(ce), cs);
	if (a->release_listener)
		a->r_release = rsc_entry_release(l, NULL, NULL);
	if (a->close_conn)
		ck_assert_int_eq(rsc_scope_close(cs, NULL, NULL), 0);
	if (a->rearm && a->conns < a->stop_after)
		ck_assert_int_eq(rsc_accept(l, 0, on_acc2, a), 0);
	if (a->graceful && a->conns == a->stop_after) {
		a->r_graceful = rsc_scope_close_graceful(a->srv, 1000, note_closed, &a->gc);
		a->r_again = rsc_accept(l, 0, on_acc2, a);
	}
}

/* Each connection: its own child scope "conn" with an entry "conn" owning
 * a close-on-exec descriptor; the callback may close that scope and accept
 * again; the server's graceful close from the callback ends the accept. */
START_TEST(accepted_connections_are_cloexec_and_owned_by_their_own_scope)
{
	struct rsc_scope *srv;
	struct sockaddr_in b;
	struct acc2 a = { 0 };
	struct t_guard g;
	char want[32];
	int c[3], i, before = t_fd_count();

	t_guard_start(&g, t_loop, 4000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	a.listener = t_listen_on_loopback(srv, 16, &b);
	a.srv = srv;
	/* Single-shot, closed and re-armed from the callback. */
	a.close_conn = a.rearm = true;
	a.stop_after = 3;
	ck_assert_int_eq(rsc_accept(a.listener, 0, on_acc2, &a), 0);
	for (i = 0; i < 3; i++) {
		c[i] = t_connect(&b);
		run_until(&g, &a.conns, i + 1, "a connection");
		ck_assert_int_eq(a.cloexec[i], FD_CLOEXEC);
		ck_assert_str_eq(a.scope_name, "conn");
		ck_assert_str_eq(a.entry_name, "conn");
		snprintf(want, sizeof(want), "fd %d", a.fds[i]);
		ck_assert_str_eq(a.detail, want);
		peer_sees_eof(c[i]);
		close(c[i]);
	}
	ck_assert_int_eq(a.finals, 0);
	/* Multishot, stopped by a graceful close from its own callback. */
	a.close_conn = a.rearm = false;
	a.graceful = true;
	a.stop_after = 5;
	ck_assert_int_eq(rsc_accept(a.listener, RSC_ACCEPT_MULTISHOT, on_acc2, &a), 0);
	c[0] = t_connect(&b);
	c[1] = t_connect(&b);
	run_until(&g, &a.gc.calls, 1, "the graceful close");
	ck_assert_int_eq(a.r_graceful, 0);
	ck_assert_int_eq(a.r_again, -ESHUTDOWN);
	ck_assert_int_eq(a.finals, 1);
	ck_assert_int_eq(a.last, -ECANCELED);
	ck_assert_int_eq(a.gc.status, 0);
	peer_sees_eof(c[0]);
	peer_sees_eof(c[1]);
	close(c[0]);
	close(c[1]);
	t_guard_stop(&g);
	t_run();
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* The multishot accept's callback releases the listener: exactly one last
 * -ECANCELED, the connection it delivered stays its scope's, and the
 * listener's port no longer accepts. */
START_TEST(accept_callback_releasing_the_listener)
{
	struct rsc_scope *srv;
	struct sockaddr_in b;
	struct acc2 a = { 0 };
	struct t_guard g;
	int c, c2, before = t_fd_count();

	t_guard_start(&g, t_loop, 3000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	a.listener = t_listen_on_loopback(srv, 16, &b);
	a.release_listener = true;
	ck_assert_int_eq(rsc_accept(a.listener, RSC_ACCEPT_MULTISHOT, on_acc2, &a), 0);
	c = t_connect(&b);
	run_until(&g, &a.finals, 1, "the accept's last call");
	ck_assert_int_eq(a.r_release, 0);
	ck_assert_int_eq(a.conns, 1);
	ck_assert_int_eq(a.last, -ECANCELED);
	ck_assert(fd_open(a.fds[0]));
	ck_assert_int_eq(rsc_accept(a.listener, 0, on_acc2, &a), -EBADF);
	while (rsc_entry_state(a.listener) != RSC_EXITED)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_entry_fd(a.listener), -EBADF);
	c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(c2, (struct sockaddr *)&b, sizeof(b)), -1);
	ck_assert_int_eq(errno, ECONNREFUSED);
	close(c2);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	peer_sees_eof(c);
	close(c);
	ck_assert_int_eq(a.calls, 2);
	/* The handles the callback was given outlive nothing. */
	ck_assert_int_eq(rsc_scope_close(a.conn_scope, NULL, NULL), -ESTALE);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_scope_close"));
	ck_assert_int_eq(rsc_entry_release(a.conn, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_recv_multishot(a.conn, 0, note_io, NULL), -ESTALE);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

static int accept_from_hook(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	(void)e;
	(void)p;
	*(int *)arg = rsc_accept(*(struct rsc_entry **)((int *)arg + 2), 0, on_acc2, NULL);
	return 0;
}

/* Bad arguments and states, each with its errno and a message. */
START_TEST(accept_arguments_and_states)
{
	struct rsc_scope *srv, *gone;
	struct rsc_entry *l, *pending, *ev, *d;
	struct sockaddr_in b, a0 = t_loopback(0);
	struct acc2 a = { 0 }, nb = { 0 };
	struct { int r; int pad; struct rsc_entry *l; } hook = { 1, 0, NULL };
	int efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 16, &b);
	a.listener = l;
	ck_assert_int_eq(rsc_accept(NULL, 0, on_acc2, &a), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_accept"));
	ck_assert_int_eq(rsc_accept(l, 0, NULL, &a), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "cb"));
	ck_assert_int_eq(rsc_accept(l, 0x4000, on_acc2, &a), -EINVAL);
	ck_assert_int_eq(rsc_accept((struct rsc_entry *)srv, 0, on_acc2, &a), -EINVAL);
	/* Not entered yet: a listen still in flight. */
	ck_assert_int_eq(rsc_listen(srv, (struct sockaddr *)&a0, sizeof(a0), 4, 0, &pending), 0);
	ck_assert_int_eq(rsc_accept(pending, 0, on_acc2, &a), -EBADF);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "not entered"));
	/* Not a socket: the kernel's error, once, with no scope. */
	ck_assert_int_eq(rsc_adopt(srv, efd, 0, &ev), 0);
	t_run();
	nb.listener = ev;
	ck_assert_int_eq(rsc_accept(ev, 0, on_acc2, &nb), 0);
	t_run();
	ck_assert_int_eq(nb.calls, 1);
	ck_assert_int_eq(nb.last, -ENOTSOCK);
	/* From a manager's exit hook. */
	hook.l = l;
	ck_assert_int_eq(rsc_defer(srv, accept_from_hook, &hook, &d), 0);
	ck_assert_int_eq(rsc_entry_release(d, NULL, NULL), 0);
	ck_assert_int_eq(hook.r, -EDEADLK);
	/* The scope closing, then freed. */
	ck_assert_int_eq(rsc_scope_open(t_loop, srv, "gone", &gone), 0);
	ck_assert_int_eq(rsc_scope_close(srv, NULL, NULL), 0);
	ck_assert_int_eq(rsc_accept(l, 0, on_acc2, &a), -ESHUTDOWN);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "closing"));
	ck_assert_int_eq(rsc_listen(gone, (struct sockaddr *)&a0, sizeof(a0), 4, 0, &pending), -ESHUTDOWN);
	t_run();
	ck_assert_int_eq(rsc_accept(l, 0, on_acc2, &a), -ESTALE);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_accept"));
	ck_assert_int_eq(a.calls, 0);
	ck_assert(!fd_open(efd));
}
END_TEST

struct acc {
	int calls, conns, errors, last, finals;
	int fds[16];
	struct rsc_scope *graceful;
	unsigned grace_ms;
	struct closed *gc;
};

static void on_acc(struct rsc_entry *l, int res, struct rsc_scope *cs,
		   struct rsc_entry *ce, void *data)
{
	struct acc *a = data;

	(void)l;
	a->calls++;
	a->last = res;
	if (res >= 0) {
		ck_assert_ptr_nonnull(cs);
		ck_assert_ptr_nonnull(ce);
		ck_assert_int_lt(a->conns, 16);
		a->fds[a->conns++] = res;
		return;
	}
	ck_assert_ptr_null(cs);
	ck_assert_ptr_null(ce);
	if (res == -ECANCELED)
		a->finals++;
	else
		a->errors++;
	/* Stop the server from the callback that heard of the shortage. */
	if (a->graceful && res != -ECANCELED) {
		ck_assert_int_eq(rsc_scope_close_graceful(a->graceful, a->grace_ms, note_closed, a->gc), 0);
		a->graceful = NULL;
	}
}

/* A multishot accept waiting out a shortage is an accept in flight: a
 * graceful close stops it (its last call is -ECANCELED) and does not wait
 * for it, whether the close comes from its callback or later. */
START_TEST(graceful_close_stops_an_accept_backing_off_a_shortage)
{
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in b;
	struct closed gc = { 0 };
	struct acc a = { 0 };
	struct t_guard g;
	int before = t_fd_count(), round;

	if (!t_has_fault_injection()) {
		printf("SKIP graceful_close_stops_an_accept_backing_off_a_shortage: this build has no fault injection\n");
		return;
	}
	for (round = 0; round < 2; round++) {
		memset(&a, 0, sizeof(a));
		memset(&gc, 0, sizeof(gc));
		t_guard_start(&g, t_loop, 3000);
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
		l = t_listen_on_loopback(srv, 16, &b);
		ck_assert_int_eq(rsc_fault_set(t_loop, "accept:1:ENFILE,accept:2:ENFILE,accept:3:ENFILE,accept:4:ENFILE"), 0);
		if (round == 0) {
			/* From inside the callback of the shortage. */
			a.graceful = srv;
			a.gc = &gc;
		}
		ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, on_acc, &a), 0);
		run_until(&g, &a.errors, 1, "the injected shortage");
		if (round == 1)
			ck_assert_int_eq(rsc_scope_close_graceful(srv, 0, note_closed, &gc), 0);
		run_until(&g, &gc.calls, 1, "the graceful close");
		ck_assert_msg(a.finals == 1, "round %d: %d last calls, %d calls", round, a.finals, a.calls);
		ck_assert_int_eq(a.last, -ECANCELED);
		ck_assert_int_eq(gc.status, 0);
		ck_assert_int_eq(rsc_fault_set(t_loop, ""), 0);
		t_guard_stop(&g);
		t_run();
		ck_assert_int_eq(t_fd_count(), before);
	}
}
END_TEST

/* ------------------------------------------------------- listen, connect */

START_TEST(listen_and_connect_sockets_are_cloexec_unless_asked)
{
	struct rsc_scope *s;
	struct rsc_entry *l, *ln, *c, *cn;
	struct sockaddr_in a = t_loopback(0), b;
	socklen_t len = sizeof(b);
	int fd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), 8, 0, &l), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), 8, RSC_NO_CLOEXEC, &ln), 0);
	fd = rsc_entry_wait(l);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&b, &len), 0);
	fd = rsc_entry_wait(ln);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&b, sizeof(b), 1000, 0, &c), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&b, sizeof(b), 1000, RSC_NO_CLOEXEC, &cn), 0);
	fd = rsc_entry_wait(c);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	fd = rsc_entry_wait(cn);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* RSC_REUSEPORT: two listeners on one port; without it the second bind
 * fails as the scope's error (op "bind") and its socket is closed. */
START_TEST(reuseport_shares_a_port_and_without_it_bind_fails_cleanly)
{
	struct rsc_scope *s, *t;
	struct rsc_entry *l1, *l2, *l3;
	struct rsc_error *err = NULL;
	struct sockaddr_in a = t_loopback(0), b;
	socklen_t len = sizeof(b);
	int before = t_fd_count(), ret;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), 8, RSC_REUSEPORT, &l1), 0);
	ck_assert_int_eq(getsockname(rsc_entry_wait(l1), (struct sockaddr *)&b, &len), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&b, sizeof(b), 8, RSC_REUSEPORT, &l2), 0);
	ck_assert_int_ge(rsc_entry_wait(l2), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "t", &t), 0);
	ck_assert_int_eq(rsc_listen(t, (struct sockaddr *)&b, sizeof(b), 8, 0, &l3), 0);
	ck_assert_int_eq(rsc_entry_wait(l3), -EADDRINUSE);
	ret = rsc_scope_close_wait(t, &err);
	ck_assert_int_eq(ret, -EADDRINUSE);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "bind");
	rsc_error_free(err);
	ck_assert_int_eq(t_fd_count(), before + 2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

static int listen_from_hook(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct sockaddr_in a = t_loopback(0);
	struct rsc_entry *x;
	int *r = arg;

	(void)p;
	r[0] = rsc_listen(rsc_entry_scope(e), (struct sockaddr *)&a, sizeof(a), 1, 0, &x);
	r[1] = rsc_connect(rsc_entry_scope(e), (struct sockaddr *)&a, sizeof(a), 0, 0, &x);
	return 0;
}

START_TEST(listen_and_connect_refuse_closing_scopes_hooks_and_bad_flags)
{
	struct rsc_scope *p, *c;
	struct rsc_entry *e, *d;
	struct sockaddr_in a = t_loopback(1);
	int r[2] = { 1, 1 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_connect(c, (struct sockaddr *)&a, sizeof(a), 0, RSC_REUSEPORT, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_connect"));
	ck_assert_int_eq(rsc_listen(c, (struct sockaddr *)&a, sizeof(a), -1, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_listen(c, NULL, sizeof(a), 1, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_listen(c, (struct sockaddr *)&a, sizeof(a) - 1, 1, 0, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "16"));
	ck_assert_int_eq(rsc_listen((struct rsc_scope *)t_loop, (struct sockaddr *)&a, sizeof(a), 1, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_defer(c, listen_from_hook, r, &d), 0);
	ck_assert_int_eq(rsc_entry_release(d, NULL, NULL), 0);
	ck_assert_int_eq(r[0], -EDEADLK);
	ck_assert_int_eq(r[1], -EDEADLK);
	/* An ancestor's close requested: the child accepts no new acquire. */
	ck_assert_int_eq(rsc_scope_close(p, NULL, NULL), 0);
	ck_assert_int_eq(rsc_listen(c, (struct sockaddr *)&a, sizeof(a), 1, 0, &e), -ESHUTDOWN);
	ck_assert_int_eq(rsc_connect(c, (struct sockaddr *)&a, sizeof(a), 0, 0, &e), -ESHUTDOWN);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_connect"));
	t_run();
	ck_assert_int_eq(rsc_connect(c, (struct sockaddr *)&a, sizeof(a), 0, 0, &e), -ESTALE);
	ck_assert_int_eq(rsc_listen(p, (struct sockaddr *)&a, sizeof(a), 1, 0, &e), -ESTALE);
}
END_TEST

/* Releasing the connect entry while it connects cancels the connect; the
 * socket, still its scope's, is closed by the unwind (rsc_connect(3)). A
 * listener whose queue is full drops SYNs: the connect waits. */
START_TEST(releasing_a_connect_in_flight_cancels_it)
{
	struct rsc_scope *srv, *s;
	struct rsc_entry *c;
	struct rsc_error *err = NULL;
	struct sockaddr_in bound;
	int fill[4], before, ret;

	srv = blackhole(&bound, fill);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&bound, sizeof(bound), 0, 0, &c), 0);
	/* Until the socket has entered, nothing of the connect has started. */
	while (t_fd_count() == before)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_entry_state(c), RSC_ENTERING);
	ret = rsc_entry_release_wait(c, &err);
	ck_assert_int_eq(ret, -ECANCELED);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	rsc_error_free(err);
	ck_assert_int_eq(rsc_entry_release_wait(c, NULL), -EALREADY);
	ck_assert_int_eq(t_fd_count(), before + 1); /* the socket: the scope's still */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
	blackhole_close(srv, fill);
}
END_TEST

/* ------------------------------------------------------ multishot recv */

START_TEST(multishot_beside_a_plain_recv_is_busy)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct io_seen r = { 0 }, m = { 0 };
	static char buf[8];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, note_io, &r), 0);
	ck_assert_int_eq(rsc_recv_multishot(e, 0, note_io, &m), -EBUSY);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_recv_multishot"));
	ck_assert_int_eq(rsc_entry_io_count(e), 1);
	ck_assert_int_eq(write(peer, "abc", 3), 3);
	while (r.calls == 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(r.last, 3);
	ck_assert_int_eq(m.calls, 0); /* a refused call never calls back */
	/* Once the plain one has finished, the multishot one may start. */
	ck_assert_int_eq(rsc_recv_multishot(e, 0, note_io, &m), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(m.calls, 1);
	ck_assert_int_eq(m.last, -ECANCELED);
	close(peer);
}
END_TEST

struct ms {
	struct rsc_entry *e;
	int calls, finals, last, bytes, max_chunk;
	int r_again, r_plain, r_release, r_after_end, rearms;
	bool release_in_first, release_at_end;
	int released_before_end;
};

static void on_ms(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct ms *m = data;
	static char plain[8];

	ck_assert_ptr_eq(e, m->e);
	ck_assert_msg(!m->finals, "a call after the last one (res %d)", res);
	m->calls++;
	m->last = res;
	if (res <= 0) {
		ck_assert_ptr_null(buf);
		m->finals++;
		m->released_before_end = t_count_events(RSC_EV_RELEASED);
		if (m->rearms > 0) {
			m->rearms--;
			m->r_after_end = rsc_recv_multishot(e, 0, on_ms, m);
			if (m->r_after_end == 0)
				m->finals = 0; /* a new receive: its own last call will come */
		} else if (m->release_at_end) {
			m->r_release = rsc_entry_release(e, NULL, NULL);
		}
		return;
	}
	m->bytes += res;
	if (res > m->max_chunk)
		m->max_chunk = res;
	if (m->release_in_first && m->calls == 1) {
		m->r_again = rsc_recv_multishot(e, 0, on_ms, m);
		m->r_plain = rsc_recv(e, plain, sizeof(plain), 0, on_ms, m);
		m->r_release = rsc_entry_release(e, NULL, NULL);
	}
}

/* The data callback releases its own entry: the last call, -ECANCELED,
 * comes once and before the release completes; a receive cannot be started
 * again from either callback. */
START_TEST(multishot_callback_releases_its_own_entry)
{
	struct rsc_scope *s;
	struct ms m = { 0 };
	struct t_guard g;
	int peer, fd;

	t_guard_start(&g, t_loop, 3000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	m.e = t_adopted_pair(s, &peer);
	fd = rsc_entry_fd(m.e);
	m.release_in_first = true;
	m.rearms = 1;
	ck_assert_int_eq(rsc_recv_multishot(m.e, 0, on_ms, &m), 0);
	ck_assert_int_eq(write(peer, "hello", 5), 5);
	run_until(&g, &m.finals, 1, "the multishot's last call");
	ck_assert_int_eq(m.r_again, -EBUSY);
	ck_assert_int_eq(m.r_plain, -EBUSY);
	ck_assert_int_eq(m.r_release, 0);
	ck_assert_int_eq(m.last, -ECANCELED);
	ck_assert_int_eq(m.r_after_end, -EBADF);
	ck_assert_int_eq(m.released_before_end, 0);
	while (rsc_entry_state(m.e) != RSC_EXITED)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert(!fd_open(fd) || fd == peer);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(m.finals, 1);
	close(peer);
}
END_TEST

/* The loop's buffers set by rsc_loop_set_recv_buffers(): a receive is cut
 * to their size; after the peer's EOF (the last call, 0) the receive may be
 * started again from that last call; the buffers cannot change while one is
 * in flight, and can once none is. */
START_TEST(recv_buffers_bound_each_receive_and_can_be_replaced)
{
	struct rsc_scope *s;
	struct ms m = { 0 };
	struct t_guard g;
	char data[200];
	int peer;

	memset(data, 'x', sizeof(data));
	t_guard_start(&g, t_loop, 3000);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 8, 64), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	m.e = t_adopted_pair(s, &peer);
	m.rearms = 1; /* the first last call starts one more, which sees the EOF again */
	m.release_at_end = true;
	ck_assert_int_eq(rsc_recv_multishot(m.e, 0, on_ms, &m), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 16, 128), -EBUSY);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "in flight"));
	ck_assert_int_eq(write(peer, data, sizeof(data)), (ssize_t)sizeof(data));
	ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
	run_until(&g, &m.finals, 1, "the end of the stream");
	ck_assert_int_eq(m.bytes, (int)sizeof(data));
	ck_assert_int_le(m.max_chunk, 64);
	ck_assert_int_eq(m.last, 0);
	ck_assert_int_eq(m.r_after_end, 0);
	ck_assert_int_eq(m.r_release, 0); /* the second last call released it */
	while (rsc_entry_state(m.e) != RSC_EXITED)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 16, 128), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 0, 0), 0);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

static int multishot_from_hook(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct ms *m = arg;

	(void)e;
	(void)p;
	m->r_again = rsc_recv_multishot(m->e, 0, on_ms, m);
	return 0;
}

START_TEST(multishot_refuses_stale_unentered_and_hook_calls)
{
	struct rsc_scope *s;
	struct rsc_entry *d, *f;
	struct ms m = { 0 };
	int peer, ret;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	m.e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot((struct rsc_entry *)s, 0, on_ms, &m), -EINVAL);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("nope"), O_RDONLY, 0, 0, &f), 0);
	ck_assert_int_eq(rsc_recv_multishot(f, 0, on_ms, &m), -EBADF); /* entering */
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_recv_multishot"));
	ck_assert_int_eq(rsc_defer(s, multishot_from_hook, &m, &d), 0);
	ck_assert_int_eq(rsc_entry_release(d, NULL, NULL), 0);
	ck_assert_int_eq(m.r_again, -EDEADLK);
	ret = rsc_scope_close_wait(s, NULL);
	ck_assert_msg(ret == 0 || ret == -ENOENT, "%s", rsc_err_name(ret)); /* failed, or cancelled */
	ck_assert_int_eq(rsc_recv_multishot(m.e, 0, on_ms, &m), -ESTALE);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_recv_multishot"));
	ck_assert_int_eq(m.calls, 0);
	close(peer);
}
END_TEST

/* io_uring_buf_ring for the application's own group, as liburing 2.3 lacks
 * io_uring_setup_buf_ring(). */
struct app_group {
	struct io_uring_buf_ring *br;
	size_t bytes;
	char mem[4][32];
};

static int app_group_register(struct io_uring *ring, struct app_group *a, unsigned short bgid)
{
	struct io_uring_buf_reg reg = { 0 };
	int i, ret;

	memset(a->mem, 0, sizeof(a->mem)); /* the kernel fills them: defined for valgrind */
	a->bytes = 4096;
	a->br = mmap(NULL, a->bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	ck_assert(a->br != MAP_FAILED);
	io_uring_buf_ring_init(a->br);
	reg.ring_addr = (unsigned long)a->br;
	reg.ring_entries = 4;
	reg.bgid = bgid;
	ret = io_uring_register_buf_ring(ring, &reg, 0);
	if (ret < 0) {
		munmap(a->br, a->bytes);
		return ret;
	}
	for (i = 0; i < 4; i++)
		io_uring_buf_ring_add(a->br, a->mem[i], sizeof(a->mem[i]), (unsigned short)i,
				      io_uring_buf_ring_mask(4), i);
	io_uring_buf_ring_advance(a->br, 4);
	return 0;
}

struct app_recv {
	int res, bid;
};

/* The application's own receive (user_data 42), from its own group. */
static void app_recv_done(const struct io_uring_cqe *cqe, void *data)
{
	struct app_recv *r = data;

	ck_assert_int_eq(cqe->user_data, 42);
	ck_assert(cqe->flags & IORING_CQE_F_BUFFER);
	r->res = cqe->res;
	r->bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
}

static void app_group_free(struct io_uring *ring, struct app_group *a, unsigned short bgid)
{
	ck_assert_int_eq(io_uring_unregister_buf_ring(ring, bgid), 0);
	munmap(a->br, a->bytes);
}

/* A loop on the application's ring takes the first buffer group free from
 * 0x5253, leaves the application's own group alone (its receive still
 * takes the application's buffer), and gives the group back when freed. */
START_TEST(recv_buffers_on_a_shared_ring_keep_the_applications_groups)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct app_group mine, again;
	struct app_recv got = { 0, -1 };
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct ms m = { 0 };
	int sv[2], peer, ret;
	long t0 = t_now_ms();

	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ret = app_group_register(&ring, &mine, 0x5253);
	if (ret == -EINVAL) {
		printf("SKIP recv_buffers_on_a_shared_ring_keep_the_applications_groups: no provided-buffer rings\n");
		io_uring_queue_exit(&ring);
		return;
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(l, 8, 64), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	m.e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	while (rsc_entry_state(m.e) != RSC_ENTERED)
		app_turn(&ring, l, NULL, NULL);
	ck_assert_int_eq(rsc_recv_multishot(m.e, 0, on_ms, &m), 0);
	/* The application's own receive, from its own group. */
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_recv(sqe, sv[0], NULL, 32, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = 0x5253;
	io_uring_sqe_set_data64(sqe, 42);
	ck_assert_int_eq(write(peer, "ringscope", 9), 9);
	ck_assert_int_eq(write(sv[1], "app", 3), 3);
	while ((m.bytes < 9 || got.res == 0) && t_now_ms() - t0 < 5000)
		app_turn(&ring, l, app_recv_done, &got);
	ck_assert_int_eq(m.bytes, 9);
	ck_assert_int_eq(got.res, 3);
	ck_assert(got.bid >= 0 && got.bid < 4);
	ck_assert_int_eq(memcmp(mine.mem[got.bid], "app", 3), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	app_drain_and_close(&ring, l);
	ck_assert_int_eq(m.last, -ECANCELED);
	/* The loop's group went with it: the application may take it now. */
	ck_assert_int_eq(app_group_register(&ring, &again, 0x5254), 0);
	app_group_free(&ring, &again, 0x5254);
	app_group_free(&ring, &mine, 0x5253);
	io_uring_queue_exit(&ring);
	close(sv[0]);
	close(sv[1]);
	close(peer);
}
END_TEST

/* -------------------------------------------------- the application's ring */

START_TEST(new_from_ring_checks_its_ring_and_reports_its_setup)
{
	struct io_uring small, ring, zero;
	struct io_uring_params p = { 0 };
	struct rsc_loop *l = (struct rsc_loop *)1;
	const char *old = getenv("RINGSCOPE_AUDIT");
	char *saved = old ? strdup(old) : NULL;
	int before = t_fd_count(), f;

	memset(&zero, 0, sizeof(zero));
	ck_assert_int_eq(rsc_loop_new_from_ring(NULL, &small, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, NULL, 0), -EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_loop_new_from_ring"));
	l = (struct rsc_loop *)1;
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &zero, 0), -EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_int_eq(io_uring_queue_init(4, &small, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &small, 0), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "8"));
	io_uring_queue_exit(&small);
	/* The setup the application chose, flag by flag. */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
	if (io_uring_queue_init_params(16, &ring, &p) == 0) {
		ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
		f = rsc_loop_features(l);
		ck_assert_msg(f & RSC_FEAT_SINGLE_ISSUER, "features 0x%x lack SINGLE_ISSUER", f);
		ck_assert(f & RSC_FEAT_COOP_TASKRUN);
		ck_assert(f & RSC_FEAT_SHARED_RING);
		ck_assert(!(f & (RSC_FEAT_DEFER_TASKRUN | RSC_FEAT_POLLABLE)));
		ck_assert_int_eq(rsc_loop_close(l), 0);
		io_uring_queue_exit(&ring);
	}
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
	if (io_uring_queue_init_params(16, &ring, &p) == 0) {
		ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
		f = rsc_loop_features(l);
		ck_assert(f & RSC_FEAT_SINGLE_ISSUER);
		ck_assert(f & RSC_FEAT_DEFER_TASKRUN);
		ck_assert(!(f & RSC_FEAT_COOP_TASKRUN));
		ck_assert_int_eq(rsc_loop_close(l), 0);
		io_uring_queue_exit(&ring);
	}
	/* A mistyped audit level is refused, not taken as "off". */
	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	setenv("RINGSCOPE_AUDIT", "loud", 1);
	l = (struct rsc_loop *)1;
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), -EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "RINGSCOPE_AUDIT"));
	setenv("RINGSCOPE_AUDIT", "full", 1);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_audit_level(l), RSC_AUDIT_FULL);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	if (saved)
		setenv("RINGSCOPE_AUDIT", saved, 1);
	else
		unsetenv("RINGSCOPE_AUDIT");
	free(saved);
	io_uring_queue_exit(&ring);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* A post that counts its runs. */
static void count_post(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	(*(int *)arg)++;
}

/* The post runs from rsc_loop_run() before its wake-up was reaped: the wake
 * is still ringscope's, on the application's ring, so the loop must not go
 * before it has been dispatched. */
START_TEST(shared_ring_post_run_early_still_holds_the_loop)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	struct rsc_loop *l;
	unsigned head;
	int ran = 0, ret, tagged = 0;

	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ret = rsc_loop_post(l, count_post, &ran);
	if (ret == -EOPNOTSUPP) {
		ck_assert_int_eq(rsc_loop_close(l), 0);
		io_uring_queue_exit(&ring);
		return;
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(ran, 1);
	ret = rsc_loop_close(l);
	if (ret == 0) {
		/* Freed: then nothing of ringscope's may reach the application. */
		usleep(10000);
		io_uring_for_each_cqe(&ring, head, cqe)
			tagged += (cqe->user_data >> 63) != 0;
		ck_assert_msg(tagged == 0, "rsc_loop_close freed the loop with %d of its CQEs left on the application's ring",
			      tagged);
		io_uring_queue_exit(&ring);
		return;
	}
	ck_assert_int_eq(ret, -EBUSY);
	ck_assert_int_eq(rsc_loop_alive(l), 1);
	app_drain_and_close(&ring, l);
	ck_assert_int_eq(ran, 1);
	io_uring_queue_exit(&ring);
}
END_TEST

/* A post to a loop on the application's ring arrives as one of ringscope's
 * completions; the loop cannot be closed until it has been dispatched. */
START_TEST(post_to_a_shared_ring_runs_from_dispatch)
{
	struct io_uring ring;
	struct rsc_loop *l;
	int ran = 0, ret, turns = 0;

	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ret = rsc_loop_post(l, count_post, &ran);
	if (ret == -EOPNOTSUPP) {
		printf("SKIP post_to_a_shared_ring_runs_from_dispatch: kernel lacks IORING_OP_MSG_RING\n");
		ck_assert_int_eq(rsc_loop_close(l), 0);
		io_uring_queue_exit(&ring);
		return;
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(ran, 0);
	ck_assert_int_eq(rsc_loop_alive(l), 1);
	ck_assert_int_eq(rsc_loop_close(l), -EBUSY);
	/* Dispatched, the wake runs the post (app_turn's own run finds none left). */
	while (ran == 0 && turns++ < 100)
		app_turn(&ring, l, NULL, NULL);
	ck_assert_int_eq(ran, 1);
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	io_uring_queue_exit(&ring);
}
END_TEST

/* ------------------------------------------------------------- pollable */

/* The host's poll wakes for a deadline's timer and for a post made on the
 * loop's own thread, and the loop's descriptor goes with the loop. */
START_TEST(pollable_fd_wakes_for_a_deadline_and_a_post)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct closed st = { 0 };
	struct pollfd pfd;
	int ran = 0, before = t_fd_count(), turns = 0;

	ck_assert_int_eq(rsc_loop_new(&l, 16, RSC_LOOP_POLLABLE), 0);
	pfd.fd = rsc_loop_fd(l);
	pfd.events = POLLIN;
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, note_closed, &st), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 30, 0), 0);
	while (st.calls == 0 && turns++ < 100) {
		ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(st.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	while (rsc_loop_alive(l) > 0 && turns++ < 200) {
		ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	while (poll(&pfd, 1, 0) == 1)
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_post(l, count_post, &ran), 0);
	ck_assert_int_eq(ran, 0);
	while (ran == 0 && turns++ < 300) {
		ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(ran, 1);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ------------------------------------------------------------------ post */

struct chain_post {
	int depth, ran, max_depth, r_post, r_shutdown, r_close, r_open;
	int order[8];
	struct rsc_loop *loop;
};

static void chained(struct rsc_loop *loop, void *arg)
{
	struct chain_post *c = arg;
	struct rsc_scope *s;

	ck_assert_ptr_eq(loop, c->loop);
	c->depth++;
	if (c->depth > c->max_depth)
		c->max_depth = c->depth;
	c->order[c->ran] = c->ran;
	c->ran++;
	if (c->ran < 5)
		c->r_post = rsc_loop_post(loop, chained, c); /* never run inside this call */
	c->r_shutdown = rsc_loop_shutdown(loop, NULL);
	c->r_close = rsc_loop_close(loop);
	c->r_open = rsc_scope_open(loop, NULL, "late", &s);
	if (c->r_open == 0)
		ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	c->depth--;
}

/* A post that posts again: the new one runs on a later turn, never inside
 * the call, and the loop stays alive while one is queued. Posts still
 * queued at rsc_loop_shutdown() run before the loop is freed, and can open
 * nothing there; once its drain has begun, a new post is refused
 * (-ESHUTDOWN), so that a chain of posts cannot hold the shutdown forever. */
START_TEST(post_chains_run_one_by_one_and_drain_at_shutdown)
{
	struct chain_post c = { .loop = t_loop };
	struct rsc_loop *l;
	int before;

	ck_assert_int_eq(rsc_loop_post(t_loop, chained, &c), 0);
	ck_assert_int_eq(c.ran, 0);
	t_run(); /* runs until no post is queued */
	ck_assert_int_eq(c.ran, 5);
	ck_assert_int_eq(c.max_depth, 1);
	ck_assert_int_eq(c.r_post, 0);
	ck_assert_int_eq(c.r_shutdown, -EDEADLK);
	ck_assert_int_eq(c.r_close, -EDEADLK);
	ck_assert_int_eq(c.r_open, 0);

	before = t_fd_count();
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	memset(&c, 0, sizeof(c));
	c.loop = l;
	ck_assert_int_eq(rsc_loop_post(l, chained, &c), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_ge(c.ran, 1);
	ck_assert_int_lt(c.ran, 5);
	ck_assert_int_eq(c.r_post, -ESHUTDOWN);
	ck_assert_int_eq(c.r_open, -ESHUTDOWN);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

struct stop_req {
	struct rsc_scope *srv;
	struct closed done;
	int ret;
};

static void stop_server(struct rsc_loop *loop, void *arg)
{
	struct stop_req *r = arg;

	(void)loop;
	r->ret = rsc_scope_close_graceful(r->srv, 1000, note_closed, &r->done);
}

/* rsc_loop_post(3)'s use: a request to stop, as a graceful close run on the
 * loop's thread; the reply still in flight finishes, then the scope closes. */
START_TEST(a_post_asks_for_a_graceful_close)
{
	struct stop_req r = { 0 };
	struct rsc_entry *e;
	struct io_seen w = { 0 };
	int peer;
	char buf[8];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &r.srv), 0);
	e = t_adopted_pair(r.srv, &peer);
	ck_assert_int_eq(rsc_send(e, "bye", 3, 0, note_io, &w), 0);
	ck_assert_int_eq(rsc_loop_post(t_loop, stop_server, &r), 0);
	t_run();
	ck_assert_int_eq(r.ret, 0);
	ck_assert_int_eq(r.done.calls, 1);
	ck_assert_int_eq(r.done.status, 0);
	ck_assert_int_eq(w.last, 3);
	ck_assert_int_eq(recv(peer, buf, sizeof(buf), 0), 3);
	ck_assert_int_eq(recv(peer, buf, sizeof(buf), 0), 0);
	close(peer);
}
END_TEST

/* --------------------------------------------------------------- on_close */

static void on_close_posts(struct rsc_scope *s, int status, const struct rsc_error *err,
			   void *data)
{
	struct closed *c = data;

	note_closed(s, status, err, c);
	ck_assert_int_eq(rsc_loop_post(t_loop, count_post, &c[1].calls), 0);
	ck_assert_int_eq(c[1].calls, 0);
	ck_assert_int_eq(rsc_scope_close(s, note_closed, &c[2]), 0);
}

/* Replaced, removed; heard before the close callback with the same status;
 * a child closed by its parent's unwind hears it first; the callback may
 * post and close its own scope. Bad handles are refused with a reason. */
START_TEST(on_close_is_replaced_removed_and_heard_before_the_close)
{
	struct rsc_scope *a, *b, *p, *c, *f;
	struct rsc_entry *e;
	struct closed first = { 0 }, second = { 0 }, removed = { 0 }, pc = { 0 }, cc = { 0 },
		      pclose = { 0 }, fc[3] = { { 0 } };
	int efd = eventfd(0, EFD_CLOEXEC);

	close_seq = 0;
	ck_assert_int_eq(rsc_scope_on_close(NULL, note_closed, &first), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_adopt(a, efd, 0, &e), 0);
	ck_assert_int_eq(rsc_scope_on_close((struct rsc_scope *)e, note_closed, &first), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_scope_on_close"));
	ck_assert_int_eq(rsc_scope_on_close(a, note_closed, &first), 0);
	ck_assert_int_eq(rsc_scope_on_close(a, note_closed, &second), 0);
	ck_assert_int_eq(rsc_scope_on_close(b, note_closed, &removed), 0);
	ck_assert_int_eq(rsc_scope_on_close(b, NULL, &removed), 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert(!fd_open(efd));
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert_int_eq(first.calls, 0);
	ck_assert_int_eq(second.calls, 1);
	ck_assert_int_eq(removed.calls, 0);
	ck_assert_int_eq(rsc_scope_on_close(a, note_closed, &first), -ESTALE);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_scope_on_close"));

	/* A child the parent's failure unwinds: child first, then the parent's
	 * on_close, then the parent's close callback. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, note_closed, &pc), 0);
	ck_assert_int_eq(rsc_scope_on_close(c, note_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_fail(p, -EPIPE, "write"), 0);
	t_run();
	ck_assert_int_eq(cc.calls, 1);
	ck_assert_int_eq(pc.calls, 1);
	ck_assert_int_eq(cc.status, -EPIPE);
	ck_assert_int_eq(pc.status, -EPIPE);
	ck_assert_str_eq(pc.op, "write");
	ck_assert_int_lt(cc.order, pc.order);
	ck_assert_int_eq(rsc_scope_on_close(p, note_closed, &pc), -EALREADY);
	ck_assert_int_eq(rsc_scope_close(p, note_closed, &pclose), 0);
	t_run();
	ck_assert_int_eq(pclose.calls, 1);
	ck_assert_int_eq(pclose.status, -EPIPE);
	ck_assert_int_lt(pc.order, pclose.order);
	ck_assert_int_eq(pc.calls, 1);

	/* The callback posts and closes its own timed-out scope. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "f", &f), 0);
	ck_assert_int_eq(rsc_scope_on_close(f, on_close_posts, fc), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(f, 5, RSC_DEADLINE_MOVE_ON), 0);
	t_run();
	ck_assert_int_eq(fc[0].calls, 1);
	ck_assert_int_eq(fc[0].status, 0);
	ck_assert_int_eq(fc[0].has_err, 0);
	ck_assert_int_eq(fc[1].calls, 1); /* the post ran, later */
	ck_assert_int_eq(fc[2].calls, 1);
	ck_assert_int_lt(fc[0].order, fc[2].order);
	ck_assert_int_eq(rsc_scope_state(f), -ESTALE);
}
END_TEST

/* ----------------------------------------------------------- release_wait */

/* Releasing a listener with a multishot accept: the accept's last call
 * comes before the helper returns, then the socket is closed. */
START_TEST(release_wait_of_a_listener_ends_its_accept_first)
{
	struct rsc_scope *srv;
	struct sockaddr_in b;
	struct acc2 a = { 0 };
	struct rsc_error *err = (struct rsc_error *)1;
	int c, before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	a.listener = t_listen_on_loopback(srv, 16, &b);
	ck_assert_int_eq(rsc_accept(a.listener, RSC_ACCEPT_MULTISHOT, on_acc2, &a), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_entry_io_count(a.listener), 1);
	ck_assert_int_eq(rsc_entry_release_wait(a.listener, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(a.finals, 1);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(rsc_entry_fd(a.listener), -EBADF);
	ck_assert_int_eq(rsc_entry_io_count(a.listener), 0);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(c, (struct sockaddr *)&b, sizeof(b)), -1);
	ck_assert_int_eq(errno, ECONNREFUSED);
	close(c);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

Suite *make_hostile_servers_suite(void)
{
	Suite *s = suite_create("hostile_servers");
	TCase *tc = tcase_create("servers");
	bool net = t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_CONNECT);
	/* No probe sees IORING_RECV_MULTISHOT; IORING_OP_SEND_ZC came with it (6.0). */
	bool multishot = t_has_recv_multishot();

	t_add_fixture(tc);
	tcase_add_test(tc, expiry_callback_rearms_and_clears_deadlines_due_with_it);
	tcase_add_test(tc, deadline_passing_during_release_wait);
	if (net) {
		tcase_add_test(tc, deadline_cancels_a_connect_in_flight_and_closes_its_socket);
		tcase_add_test(tc, deadline_cancels_a_unix_connect_waiting_for_room);
		tcase_add_test(tc, release_cancels_a_unix_connect_just_submitted);
		tcase_add_test(tc, connect_timeout_ends_a_unix_connect_waiting_for_room);
	}
	tcase_add_test(tc, deadline_on_a_shared_ring);
	tcase_add_test(tc, ancestor_deadline_cuts_a_childs_unbounded_grace);
	tcase_add_test(tc, ancestor_failure_cuts_a_grandchilds_grace);
	if (multishot)
		tcase_add_test(tc, release_during_a_grace_ends_a_multishot_receive);
	tcase_add_test(tc, pollable_host_sleeps_through_an_idle_grace);
	tcase_add_test(tc, graceful_close_of_a_scope_whose_children_are_already_closing);
	tcase_add_test(tc, graceful_close_arguments_and_what_the_grace_still_refuses);
	if (net) {
		t_add_test_if(tc, accepted_connections_are_cloexec_and_owned_by_their_own_scope,
			      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
		t_add_test_if(tc, accept_callback_releasing_the_listener, t_has_accept_multishot(),
			      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
		tcase_add_test(tc, accept_arguments_and_states);
		tcase_add_test(tc, graceful_close_stops_an_accept_backing_off_a_shortage);
		tcase_add_test(tc, listen_and_connect_sockets_are_cloexec_unless_asked);
		tcase_add_test(tc, reuseport_shares_a_port_and_without_it_bind_fails_cleanly);
		tcase_add_test(tc, listen_and_connect_refuse_closing_scopes_hooks_and_bad_flags);
		tcase_add_test(tc, releasing_a_connect_in_flight_cancels_it);
	} else {
		printf("SKIP deadline, accept, listen and connect probes of sockets: kernel lacks IORING_OP_SOCKET or IORING_OP_CONNECT\n");
	}
	if (multishot) {
		tcase_add_test(tc, multishot_beside_a_plain_recv_is_busy);
		tcase_add_test(tc, multishot_callback_releases_its_own_entry);
		tcase_add_test(tc, recv_buffers_bound_each_receive_and_can_be_replaced);
		tcase_add_test(tc, multishot_refuses_stale_unentered_and_hook_calls);
		tcase_add_test(tc, recv_buffers_on_a_shared_ring_keep_the_applications_groups);
	} else {
		printf("SKIP multishot probes: kernel lacks IORING_RECV_MULTISHOT (Linux 6.0)\n");
	}
	tcase_add_test(tc, new_from_ring_checks_its_ring_and_reports_its_setup);
	tcase_add_test(tc, shared_ring_post_run_early_still_holds_the_loop);
	tcase_add_test(tc, post_to_a_shared_ring_runs_from_dispatch);
	tcase_add_test(tc, pollable_fd_wakes_for_a_deadline_and_a_post);
	tcase_add_test(tc, post_chains_run_one_by_one_and_drain_at_shutdown);
	tcase_add_test(tc, a_post_asks_for_a_graceful_close);
	tcase_add_test(tc, on_close_is_replaced_removed_and_heard_before_the_close);
	if (net)
		t_add_test_if(tc, release_wait_of_a_listener_ends_its_accept_first,
			      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	suite_add_tcase(s, tc);
	return s;
}
