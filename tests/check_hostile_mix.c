/* SPDX-License-Identifier: MIT */
/*
 * Hostile probes where two features meet: deadlines (rsc_scope_set_deadline(3))
 * with moves of scopes and entries, with graceful closes, set from inside
 * hooks, on-close callbacks and posts; rsc_defer(3) exits that close, fail or
 * open other scopes during an unwind; the application's own link chains and
 * IOSQE_IO_DRAIN on a shared ring (rsc_loop_new_from_ring(3)) while scopes
 * open, fail and time out; rsc_loop_shutdown(3) over all of it. Each test
 * observes a side effect (the error a callback saw, the order callbacks ran
 * in, what a peer reads, /proc/self/fd) and every wait is bounded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "helpers.h"

/* ------------------------------------------------------------- helpers */

/* Run t_loop until *@flag is at least @want; fail, not hang, when the guard fires. */
static void run_until(struct t_guard *g, const int *flag, int want)
{
	while (*flag < want) {
		ck_assert_msg(!g->fired, "guard fired: still waiting (%d of %d)", *flag, want);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	}
}

struct closed {
	int calls, status, order;
	long at;
	char op[32];
};

static int close_seq; /* the order close callbacks ran in, across a test */

static void note_closed(struct rsc_scope *s, int status, const struct rsc_error *err,
			void *data)
{
	struct closed *c = data;

	(void)s;
	c->calls++;
	c->status = status;
	c->order = ++close_seq;
	c->at = t_now_ms();
	snprintf(c->op, sizeof(c->op), "%s", err && rsc_error_op(err) ? rsc_error_op(err) : "");
}

struct io_seen {
	int calls, res, bytes, last;
	long at;
};

/* Every call: a multishot receive calls it per receive, then once with res <= 0. */
static void note_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct io_seen *w = data;

	(void)e;
	w->calls++;
	w->res = res;
	w->at = t_now_ms();
	if (res > 0 && buf)
		w->bytes += res;
	else
		w->last++;
}

/* An entry callback (a release, a hand-over, an install): how often, and its result. */
struct sent_seen {
	int calls, res;
};

static void note_sent(struct rsc_entry *e, int res, void *data)
{
	struct sent_seen *s = data;

	(void)e;
	s->calls++;
	s->res = res;
}

static bool multishot_supported(void)
{
	return t_has_recv_multishot();
}

/* What the peer reads once the entry's socket is gone: 0, end of stream. */
static void assert_peer_sees_eof(int peer)
{
	char c;

	ck_assert_int_eq(read(peer, &c, 1), 0);
}

/* --------------------------------------------- moves under deadlines */

/* rsc_scope_set_deadline(3): a child's deadline never outlives its parent's.
 * After rsc_scope_move(3) the new parent is its parent: the earlier deadline
 * above cuts the moved scope's receive and closes it, with -ETIMEDOUT. */
START_TEST(moved_under_an_earlier_deadline_parent_is_cut_by_it)
{
	struct rsc_scope *p, *x;
	struct closed cp = { 0 }, cx = { 0 };
	struct io_seen rx = { 0 };
	struct rsc_entry *e;
	struct t_guard g;
	char buf[16];
	long t0;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "x", &x), 0);
	e = t_adopted_pair(x, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, note_io, &rx), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(x, 10000, 0), 0);
	ck_assert_int_eq(rsc_scope_on_close(x, note_closed, &cx), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, note_closed, &cp), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 40, 0), 0);
	ck_assert_int_eq(rsc_scope_move(x, p), 0);
	t0 = t_now_ms();
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cp.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_lt(t_now_ms() - t0, 2500); /* not x's own 10 s */
	ck_assert_int_eq(rx.calls, 1);
	ck_assert_int_eq(rx.res, -ECANCELED);
	ck_assert_int_eq(cx.calls, 1);
	ck_assert_int_eq(cx.status, -ETIMEDOUT); /* p's, carried down */
	ck_assert_int_eq(cp.status, -ETIMEDOUT);
	ck_assert_str_eq(cp.op, "deadline");
	ck_assert_int_lt(cx.order, cp.order); /* the child first */
	assert_peer_sees_eof(peer);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_state(x), -ESTALE);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 1);
	close(peer);
}
END_TEST

/* Moved out from under a parent whose deadline then passes: the parent's
 * deadline no longer applies, the moved scope's receive stays armed and
 * still gets its data. */
START_TEST(moved_out_from_under_a_deadline_parent_outlives_it)
{
	struct rsc_scope *p, *x;
	struct closed cp = { 0 }, cx = { 0 };
	struct io_seen rx = { 0 };
	struct rsc_entry *e;
	struct t_guard g;
	char buf[16];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "x", &x), 0);
	e = t_adopted_pair(x, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, note_io, &rx), 0);
	ck_assert_int_eq(rsc_scope_on_close(x, note_closed, &cx), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, note_closed, &cp), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 30, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0); /* its timer armed */
	ck_assert_int_eq(rsc_scope_move(x, NULL), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cp.calls, 1);
	ck_assert_int_eq(cp.status, -ETIMEDOUT);
	ck_assert_int_eq(cx.calls, 0);
	ck_assert_int_eq(rx.calls, 0);
	ck_assert_int_eq(rsc_scope_state(x), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	ck_assert_int_eq(write(peer, "hi", 2), 2);
	run_until(&g, &rx.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(rx.res, 2);
	ck_assert_int_eq(rsc_scope_state(x), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(x, NULL), 0);
	ck_assert_int_eq(cx.calls, 1);
	ck_assert_int_eq(cx.status, 0);
	assert_peer_sees_eof(peer);
	close(peer);
}
END_TEST

/* Moved under a parent with a later deadline: its own earlier one still
 * passes first, and it unwinds alone; the parent stays open. */
START_TEST(moved_under_a_later_parent_keeps_its_own_earlier_deadline)
{
	struct rsc_scope *p, *x;
	struct closed cp = { 0 }, cx = { 0 };
	struct t_guard g;
	long t0;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "x", &x), 0);
	t_open_files(x, 0, 1);
	ck_assert_int_eq(rsc_scope_on_close(x, note_closed, &cx), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, note_closed, &cp), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 10000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(x, 30, RSC_DEADLINE_MOVE_ON), 0);
	ck_assert_int_eq(rsc_scope_move(x, p), 0);
	t0 = t_now_ms();
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cx.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_ge(t_now_ms() - t0, 25);
	ck_assert_int_eq(cx.status, 0); /* move-on: no error */
	ck_assert_int_eq(cp.calls, 0);
	ck_assert_int_eq(rsc_scope_state(p), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_state(x), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), 0);
	ck_assert_int_eq(cp.status, 0);
	ck_assert_int_eq(rsc_scope_state(x), -ESTALE);
	t0 = t_now_ms();
	t_run(); /* p's 10 s deadline left the timer with p: nothing keeps the loop */
	ck_assert_int_lt(t_now_ms() - t0, 2000);
}
END_TEST

static void note_entered(struct rsc_entry *e, int res, void *data)
{
	struct sent_seen *s = data;

	(void)e;
	s->calls++;
	s->res = res;
}

/* A scope with a connect waiting for backlog room (an acquire in flight)
 * moved under a parent whose deadline then passes: the acquire goes with the
 * scope (rsc_scope_move(3)), so that deadline cancels it; its socket is
 * closed once, and the connect entry itself could not be moved (-EBUSY). */
START_TEST(scope_moved_with_an_acquire_in_flight_under_a_deadline)
{
	struct rsc_scope *p, *x;
	struct rsc_entry *conn;
	struct closed cp = { 0 };
	struct sent_seen entered = { 0 };
	struct sockaddr_un sun;
	struct t_guard g;
	int fill[64], nfill, lfd, before;

	lfd = t_full_unix_listener(&sun, fill, &nfill);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "x", &x), 0);
	before = t_fd_count();
	ck_assert_int_eq(rsc_connect(x, (struct sockaddr *)&sun, sizeof(sun), 0, 0, &conn), 0);
	ck_assert_int_eq(rsc_entry_on_enter(conn, note_entered, &entered), 0);
	t_guard_start(&g, t_loop, 3000);
	while (t_fd_count() == before) {
		ck_assert(!g.fired);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	}
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_state(conn), RSC_ENTERING);
	ck_assert_int_eq(rsc_entry_move(conn, p), -EBUSY);
	ck_assert_int_eq(rsc_scope_on_close(p, note_closed, &cp), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 30, 0), 0);
	ck_assert_int_eq(rsc_scope_move(x, p), 0);
	run_until(&g, &cp.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(cp.status, -ETIMEDOUT);
	ck_assert_int_eq(entered.calls, 1);
	ck_assert_int_eq(entered.res, -ECANCELED);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	t_run();
	ck_assert_int_eq(t_fd_count(), before);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* rsc_entry_move(3): tracked I/O stays bound to the entry. A multishot
 * receive moved out of a scope whose deadline then passes is not cut; the
 * new scope's deadline cuts it, with one last call, and closes it once. */
START_TEST(moved_multishot_follows_its_entry_to_the_new_scopes_deadline)
{
	struct rsc_scope *a, *b;
	struct closed ca = { 0 }, cb = { 0 };
	struct io_seen rx = { 0 };
	struct rsc_entry *e;
	struct t_guard g;
	int peer;

	if (!multishot_supported()) {
		fprintf(stderr, "SKIP moved_multishot_follows_its_entry_to_the_new_scopes_deadline: kernel lacks IORING_RECV_MULTISHOT\n");
		return;
	}
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	e = t_adopted_pair(a, &peer);
	ck_assert_int_eq(rsc_recv_multishot(e, 0, note_io, &rx), 0);
	ck_assert_int_eq(rsc_scope_on_close(a, note_closed, &ca), 0);
	ck_assert_int_eq(rsc_scope_on_close(b, note_closed, &cb), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(a, 20, 0), 0);
	ck_assert_int_eq(rsc_entry_move(e, b), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &ca.calls, 1);
	ck_assert_int_eq(ca.status, -ETIMEDOUT);
	ck_assert_int_eq(rx.calls, 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_entry_io_count(e), 1);
	ck_assert_int_eq(write(peer, "abc", 3), 3);
	run_until(&g, &rx.bytes, 3);
	ck_assert_int_eq(rx.last, 0);
	ck_assert_int_eq(rsc_scope_set_deadline(b, 20, 0), 0);
	run_until(&g, &cb.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(rx.last, 1);
	ck_assert_int_eq(rx.res, -ECANCELED);
	ck_assert_int_eq(cb.status, -ETIMEDOUT);
	assert_peer_sees_eof(peer);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_entry_state(e), -ESTALE);
	close(peer);
}
END_TEST

/* The loop's receive buffers are busy while a multishot receive is armed
 * (-EBUSY) and free again once a deadline has cut it: the count of armed
 * receives follows the cut, also one moved between scopes. */
START_TEST(recv_buffers_free_again_after_a_deadline_cut_the_multishots)
{
	struct rsc_scope *a, *b;
	struct closed ca = { 0 };
	struct io_seen r1 = { 0 }, r2 = { 0 };
	struct rsc_entry *e1, *e2;
	struct t_guard g;
	int p1, p2;

	if (!multishot_supported()) {
		fprintf(stderr, "SKIP recv_buffers_free_again_after_a_deadline_cut_the_multishots: kernel lacks IORING_RECV_MULTISHOT\n");
		return;
	}
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	e1 = t_adopted_pair(a, &p1);
	e2 = t_adopted_pair(b, &p2);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 8, 512), 0);
	ck_assert_int_eq(rsc_recv_multishot(e1, 0, note_io, &r1), 0);
	ck_assert_int_eq(rsc_recv_multishot(e2, 0, note_io, &r2), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 16, 512), -EBUSY);
	ck_assert_int_eq(rsc_entry_move(e2, a), 0);
	ck_assert_int_eq(rsc_scope_on_close(a, note_closed, &ca), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(a, 10, 0), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &ca.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(r1.last + r2.last, 2);
	ck_assert_int_eq(r1.res, -ECANCELED);
	ck_assert_int_eq(r2.res, -ECANCELED);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 16, 512), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 0, 0), 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	assert_peer_sees_eof(p1);
	assert_peer_sees_eof(p2);
	close(p1);
	close(p2);
}
END_TEST

/* During a grace the unwind owns the entries: no detach or move (-EALREADY),
 * but the scope's deadline set before still cuts the grace, and a release
 * early is allowed and counts as drained. */
START_TEST(grace_refuses_detach_and_move_and_a_deadline_cuts_it)
{
	struct rsc_scope *s, *other;
	struct closed c = { 0 };
	struct io_seen r1 = { 0 }, r2 = { 0 };
	struct rsc_entry *e1, *e2;
	struct t_guard g;
	unsigned drained = 99, cancelled = 99;
	char b1[8], b2[8];
	int p1, p2;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "other", &other), 0);
	e1 = t_adopted_pair(s, &p1);
	e2 = t_adopted_pair(s, &p2);
	ck_assert_int_eq(rsc_recv(e1, b1, sizeof(b1), 0, note_io, &r1), 0);
	ck_assert_int_eq(rsc_recv(e2, b2, sizeof(b2), 0, note_io, &r2), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 60, 0), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 10000, note_closed, &c), 0);
	ck_assert_int_eq(rsc_entry_move(e1, other), -EALREADY);
	ck_assert_int_eq(rsc_entry_detach(e1), -EALREADY);
	ck_assert_int_eq(rsc_scope_move(s, other), -EALREADY);
	ck_assert_int_eq(rsc_entry_move(e1, s), -EALREADY);
	ck_assert_int_eq(rsc_entry_release(e1, NULL, NULL), 0); /* allowed in the grace */
	t0 = t_now_ms();
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_lt(t_now_ms() - t0, 2500); /* the deadline, not the 10 s grace */
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_str_eq(c.op, "deadline");
	ck_assert_int_eq(r1.res, -ECANCELED);
	ck_assert_int_eq(r2.res, -ECANCELED);
	ck_assert_int_eq(r1.calls + r2.calls, 2);
	(void)drained;
	(void)cancelled;
	assert_peer_sees_eof(p1);
	assert_peer_sees_eof(p2);
	ck_assert_int_eq(rsc_scope_close_wait(other, NULL), 0);
	close(p1);
	close(p2);
}
END_TEST

/* rsc_scope_close_graceful(3): an ancestor's close is no cancellation, it
 * waits for the grace; and a deadline of the scope that passes during its
 * grace starts the unwind at once, with -ETIMEDOUT. The parent's close must
 * not drop the child's deadline: with an unbounded grace and an idle
 * receive, nothing else would ever end it. */
START_TEST(parents_close_keeps_the_deadline_of_a_child_in_its_grace)
{
	struct rsc_scope *p, *c, *d;
	struct closed cc = { 0 }, cd = { 0 }, cp = { 0 };
	struct io_seen rx = { 0 }, ry = { 0 };
	struct rsc_entry *e, *f;
	struct t_guard g;
	char buf[8], buf2[8];
	int peer, peer2;
	long t0;

	close_seq = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, c, "d", &d), 0);
	e = t_adopted_pair(c, &peer);
	f = t_adopted_pair(d, &peer2);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, note_io, &rx), 0);
	ck_assert_int_eq(rsc_recv(f, buf2, sizeof(buf2), 0, note_io, &ry), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(c, 80, 0), 0);
	/* d, below the grace, has an earlier deadline of its own: it unwinds alone. */
	ck_assert_int_eq(rsc_scope_set_deadline(d, 30, 0), 0);
	ck_assert_int_eq(rsc_scope_on_close(d, note_closed, &cd), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, note_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_close(p, note_closed, &cp), 0);
	t0 = t_now_ms();
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cp.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_ge(t_now_ms() - t0, 70);
	ck_assert_int_eq(cd.status, -ETIMEDOUT);
	ck_assert_int_eq(ry.res, -ECANCELED);
	ck_assert_int_eq(cc.status, -ETIMEDOUT);
	ck_assert_str_eq(cc.op, "deadline");
	ck_assert_int_eq(rx.res, -ECANCELED);
	ck_assert_int_eq(rx.calls + ry.calls, 2);
	ck_assert_int_lt(cd.order, cc.order);
	ck_assert_int_lt(cc.order, cp.order);
	ck_assert_int_eq(cp.status, 0); /* a close callback of c's own took its result */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 2);
	assert_peer_sees_eof(peer);
	assert_peer_sees_eof(peer2);
	close(peer);
	close(peer2);
}
END_TEST

struct slow_exit {
	int exit_calls;
	struct __kernel_timespec ts;
};

static int nop_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
}

/* A release that takes 150 ms: a timeout, whose -ETIME is the release's result. */
static int slow_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct slow_exit *x = arg;
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)pending;
	if (ret < 0)
		return ret;
	x->exit_calls++;
	x->ts.tv_sec = 0;
	x->ts.tv_nsec = 150000000;
	io_uring_prep_timeout(sqe, &x->ts, 0, 0);
	return 0;
}

static const struct rsc_manager slow_manager = { sizeof(struct rsc_manager), 0, "slowexit",
						 nop_enter, slow_exit };

/* The grace ends (its bound) while an early release's exit SQE is still in
 * flight: the unwind cuts the idle receive that held the grace, waits for
 * the early release, and the close callback comes once, after it; the
 * release's error goes to its callback, not to the scope's status. */
START_TEST(grace_bound_ends_while_an_early_exit_is_in_flight)
{
	struct rsc_scope *s;
	struct slow_exit x = { 0 };
	struct closed c = { 0 };
	struct sent_seen rel = { 0 };
	struct io_seen rx = { 0 };
	struct rsc_entry *slow, *sock;
	struct t_guard g;
	char buf[8];
	int peer;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_push(s, &slow_manager, &x, &slow), 0);
	sock = t_adopted_pair(s, &peer);
	ck_assert_int_ge(rsc_entry_wait(slow), 0);
	ck_assert_int_eq(rsc_recv(sock, buf, sizeof(buf), 0, note_io, &rx), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 30, note_closed, &c), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_entry_release(slow, note_sent, &rel), 0);
	ck_assert_int_eq(x.exit_calls, 1);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_ge(t_now_ms() - t0, 140); /* after the slow release */
	ck_assert_int_eq(rel.calls, 1);
	ck_assert_int_eq(rel.res, -ETIME); /* heard by its callback: not the scope's */
	ck_assert_int_eq(x.exit_calls, 1);
	ck_assert_int_eq(rx.calls, 1);
	ck_assert_int_eq(rx.res, -ECANCELED);
	ck_assert_int_eq(c.status, 0);
	assert_peer_sees_eof(peer);
	close(peer);
}
END_TEST

/* A scope below a grace stays open while it lasts, even when a close above
 * has started (the close waits for the grace): its failure then starts its
 * unwind at once, as it would with nothing closing above, and cancels its
 * idle receive. Held back "for its turn" instead, its receive would hold an
 * unbounded grace, which waits for that turn, for ever. */
START_TEST(failure_below_a_grace_under_a_closing_parent_unwinds_at_once)
{
	struct rsc_scope *p, *c, *d;
	struct closed cc = { 0 }, cd = { 0 }, cp = { 0 };
	struct io_seen rx = { 0 };
	struct rsc_entry *e;
	struct t_guard g;
	char buf[8];
	int peer;

	close_seq = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, c, "d", &d), 0);
	e = t_adopted_pair(d, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, note_io, &rx), 0);
	ck_assert_int_eq(rsc_scope_on_close(d, note_closed, &cd), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, note_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_close(p, note_closed, &cp), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0); /* p's unwind waits for c */
	ck_assert_int_eq(rsc_scope_state(p), RSC_SCOPE_UNWINDING);
	ck_assert_int_eq(rsc_scope_fail(d, -EPROTO, "body"), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cp.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(rx.calls, 1);
	ck_assert_int_eq(rx.res, -ECANCELED);
	ck_assert_int_eq(cd.status, -EPROTO);
	ck_assert_int_eq(cc.status, -EPROTO); /* d's result reached c's unwind */
	ck_assert_int_lt(cd.order, cc.order);
	ck_assert_int_lt(cc.order, cp.order);
	assert_peer_sees_eof(peer);
	close(peer);
}
END_TEST

/* rsc_scope_close_graceful(3): during the grace new I/O may start in the
 * subtree (the reply to a request) and its entries may be released early
 * (how the work let finish ends a connection that would hold the grace).
 * A close above waits for the grace, so both hold while it does too:
 * refused there, the unbounded grace would never end. */
START_TEST(grace_under_a_closing_parent_still_takes_replies_and_early_releases)
{
	struct rsc_scope *p, *c;
	struct closed cc = { 0 }, cp = { 0 };
	struct io_seen rx = { 0 }, tx = { 0 };
	struct rsc_entry *idle, *busy;
	struct t_guard g;
	char buf[8], got[8];
	int p1, p2;

	close_seq = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	idle = t_adopted_pair(c, &p1);
	busy = t_adopted_pair(c, &p2);
	ck_assert_int_eq(rsc_recv(idle, buf, sizeof(buf), 0, note_io, &rx), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, note_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_close(p, note_closed, &cp), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_state(p), RSC_SCOPE_UNWINDING);
	ck_assert_int_eq(rsc_send(busy, "reply", 5, 0, note_io, &tx), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &tx.calls, 1);
	ck_assert_int_eq(tx.res, 5);
	ck_assert_int_eq(read(p2, got, sizeof(got)), 5);
	ck_assert_int_eq(cc.calls, 0); /* the idle receive holds the grace */
	ck_assert_int_eq(rsc_entry_release(idle, NULL, NULL), 0);
	run_until(&g, &cp.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(rx.res, -ECANCELED);
	ck_assert_int_eq(cc.status, 0);
	ck_assert_int_eq(cp.status, 0);
	ck_assert_int_lt(cc.order, cp.order);
	assert_peer_sees_eof(p1);
	assert_peer_sees_eof(p2);
	close(p1);
	close(p2);
}
END_TEST

/* The work let finish closes a connection's scope once its reply is out:
 * below a grace that a close above waits for, that close is taken too (as
 * with nothing closing above), and ends the receive that held the grace. */
START_TEST(scope_below_a_grace_under_a_closing_parent_can_still_be_closed)
{
	int graceful;

	for (graceful = 0; graceful < 2; graceful++) {
		struct rsc_scope *p, *c, *d;
		struct closed cc = { 0 }, cd = { 0 }, cp = { 0 };
		struct io_seen rx = { 0 };
		struct rsc_entry *e;
		struct t_guard g;
		char buf[8];
		int peer;

		close_seq = 0;
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
		ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
		ck_assert_int_eq(rsc_scope_open(t_loop, c, "conn", &d), 0);
		e = t_adopted_pair(d, &peer);
		ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, note_io, &rx), 0);
		ck_assert_int_eq(rsc_scope_close_graceful(c, 0, note_closed, &cc), 0);
		ck_assert_int_eq(rsc_scope_close(p, note_closed, &cp), 0);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		ck_assert_int_eq(rsc_scope_state(p), RSC_SCOPE_UNWINDING);
		if (graceful)
			ck_assert_int_eq(rsc_scope_close_graceful(d, 10, note_closed, &cd), 0);
		else
			ck_assert_int_eq(rsc_scope_close(d, note_closed, &cd), 0);
		t_guard_start(&g, t_loop, 3000);
		run_until(&g, &cp.calls, 1);
		t_guard_stop(&g);
		ck_assert_int_eq(rx.calls, 1);
		ck_assert_int_eq(rx.res, -ECANCELED);
		ck_assert_int_eq(cd.calls, 1);
		ck_assert_int_eq(cd.status, 0);
		ck_assert_int_eq(cc.status, 0);
		ck_assert_int_eq(cp.status, 0);
		ck_assert_int_lt(cd.order, cc.order);
		ck_assert_int_lt(cc.order, cp.order);
		assert_peer_sees_eof(peer);
		close(peer);
	}
}
END_TEST

struct idle_conn {
	struct rsc_scope *s;
	struct io_seen rx;
	char buf[8];
	int peer, close_ret, calls, status;
};

/* rsc_scope_set_deadline(3)'s example: close a timed-out connection from its
 * on-close callback. */
static void close_timed_out(struct rsc_scope *s, int status, const struct rsc_error *err,
			    void *data)
{
	struct idle_conn *c = data;

	(void)err;
	c->calls++;
	c->status = status;
	c->close_ret = rsc_scope_close(s, NULL, NULL);
}

/* A server in its grace, waited for by its parent's close; its idle
 * connections time out one by one and are closed by their on-close
 * callbacks, as the deadline page's example does; then the grace, the
 * server and the parent end, each once. */
START_TEST(idle_connections_time_out_in_a_grace_their_parent_waits_for)
{
	struct rsc_scope *p, *srv;
	struct idle_conn conns[3];
	struct closed cs = { 0 }, cp = { 0 };
	struct rsc_entry *e;
	struct t_guard g;
	int i, claimed = 0;

	memset(conns, 0, sizeof(conns));
	close_seq = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "srv", &srv), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(rsc_scope_open(t_loop, srv, "conn", &conns[i].s), 0);
		e = t_adopted_pair(conns[i].s, &conns[i].peer);
		ck_assert_int_eq(rsc_recv(e, conns[i].buf, sizeof(conns[i].buf), 0, note_io,
					  &conns[i].rx), 0);
		ck_assert_int_eq(rsc_scope_on_close(conns[i].s, close_timed_out, &conns[i]), 0);
		ck_assert_int_eq(rsc_scope_set_deadline(conns[i].s, 20 + 20 * (unsigned)i, 0), 0);
	}
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 0, note_closed, &cs), 0);
	ck_assert_int_eq(rsc_scope_close(p, note_closed, &cp), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cp.calls, 1);
	t_guard_stop(&g);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(conns[i].calls, 1);
		ck_assert_int_eq(conns[i].status, -ETIMEDOUT);
		/* The last cancelled receive ends the grace: the server's unwind
		 * may claim a connection before it has unwound (then -EALREADY).
		 * That is the third one, or, on a machine that stalled past
		 * their deadlines, any whose deadline passed in the same turn. */
		ck_assert_msg(conns[i].close_ret == 0 || conns[i].close_ret == -EALREADY,
			      "conn %d: close %d (%s)", i, conns[i].close_ret, rsc_last_error());
		claimed += conns[i].close_ret == -EALREADY;
		ck_assert_int_eq(conns[i].rx.res, -ECANCELED);
		assert_peer_sees_eof(conns[i].peer);
		close(conns[i].peer);
	}
	/* Each connection's close took its result, but a claimed one's. */
	ck_assert_int_eq(cs.status, claimed ? -ETIMEDOUT : 0);
	ck_assert_int_eq(cp.status, 0);
	ck_assert_int_lt(cs.order, cp.order);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 3);
}
END_TEST

/* ------------------------------------------------ deadlines from hooks */

struct hook_dl {
	struct rsc_scope *scope;
	unsigned ms;
	int set_ret;	    /* what rsc_scope_set_deadline returned in the enter */
	int exit_set_ret;   /* ... and in the exit */
	int exit_calls, exit_pending;
	bool long_acquire; /* the enter's acquire only ends when cancelled */
	struct __kernel_timespec ts;
};

static int dl_enter(struct rsc_entry *e, void *arg)
{
	struct hook_dl *h = arg;
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	if (h->long_acquire) {
		h->ts.tv_sec = 30;
		h->ts.tv_nsec = 0;
		io_uring_prep_timeout(sqe, &h->ts, 0, 0);
	} else {
		io_uring_prep_nop(sqe);
	}
	/* After its reservation: the timer's SQE goes after the hook's. */
	h->set_ret = rsc_scope_set_deadline(h->scope, h->ms, 0);
	return 0;
}

static int dl_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct hook_dl *h = arg;

	(void)e;
	h->exit_calls++;
	h->exit_pending = pending ? rsc_error_errno(pending) : 0;
	h->exit_set_ret = rsc_scope_set_deadline(h->scope, 5, 0);
	return 0;
}

static const struct rsc_manager dl_manager = { sizeof(struct rsc_manager), 0, "dlhook",
					       dl_enter, dl_exit };

/* A deadline set from inside an enter hook, beside the hook's own SQE: it
 * passes, the exit sees -ETIMEDOUT once, and a deadline set from inside the
 * unwind's exit is refused with -ESHUTDOWN. */
START_TEST(deadline_set_in_an_enter_hook_passes_and_the_exit_sees_it_once)
{
	struct hook_dl h = { 0 };
	struct closed c = { 0 };
	struct rsc_entry *e;
	struct t_guard g;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "hooked", &h.scope), 0);
	ck_assert_int_eq(rsc_scope_on_close(h.scope, note_closed, &c), 0);
	h.ms = 30;
	ck_assert_int_eq(rsc_push(h.scope, &dl_manager, &h, &e), 0);
	ck_assert_int_eq(h.set_ret, 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(h.exit_calls, 1);
	ck_assert_int_eq(h.exit_pending, -ETIMEDOUT);
	ck_assert_int_eq(h.exit_set_ret, -ESHUTDOWN);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(h.scope, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 1);
}
END_TEST

/* A deadline set from inside the enter hook of an acquire that would take
 * 30 s: the deadline cancels that acquire (DESIGN 2.6), which acquired
 * nothing, so its exit never runs (DESIGN 2.2). */
START_TEST(deadline_set_in_an_enter_hook_cancels_that_hooks_acquire)
{
	struct hook_dl h = { 0 };
	struct closed c = { 0 };
	struct rsc_entry *e;
	struct t_guard g;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "hooked", &h.scope), 0);
	ck_assert_int_eq(rsc_scope_on_close(h.scope, note_closed, &c), 0);
	h.ms = 30;
	h.long_acquire = true;
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_push(h.scope, &dl_manager, &h, &e), 0);
	ck_assert_int_eq(h.set_ret, 0);
	t_guard_start(&g, t_loop, 5000);
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_lt(t_now_ms() - t0, 4000);
	ck_assert_int_eq(h.exit_calls, 0);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(h.scope, NULL), -ETIMEDOUT);
}
END_TEST

/* An early release runs the exit inside rsc_entry_release(3), while the
 * scope is open: a deadline set there is taken, passes, and the unwind it
 * starts never calls that exit again. */
START_TEST(deadline_set_in_an_early_release_exit_passes_without_a_second_exit)
{
	struct hook_dl h = { 0 };
	struct closed c = { 0 };
	struct rsc_entry *e, *f;
	struct t_guard g;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "hooked", &h.scope), 0);
	ck_assert_int_eq(rsc_scope_on_close(h.scope, note_closed, &c), 0);
	ck_assert_int_eq(rsc_open(h.scope, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &f), 0);
	h.ms = 0; /* the enter sets none (0 clears) */
	ck_assert_int_eq(rsc_push(h.scope, &dl_manager, &h, &e), 0);
	ck_assert_int_eq(h.set_ret, 0);
	t_guard_start(&g, t_loop, 3000);
	while (rsc_entry_state(e) != RSC_ENTERED) {
		ck_assert(!g.fired);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	}
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	ck_assert_int_eq(h.exit_calls, 1);
	ck_assert_int_eq(h.exit_set_ret, 0); /* the scope is open: 5 ms */
	run_until(&g, &c.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(h.exit_calls, 1);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(h.scope, NULL), -ETIMEDOUT);
	ck_assert(!t_fd_open_to(t_path("f0")));
}
END_TEST

struct later_dl {
	struct rsc_scope *target;
	unsigned ms;
	int ret, own_ret, calls;
};

/* On-close of a child: a deadline for its parent, none for itself. */
static void dl_on_close(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct later_dl *l = data;

	(void)status;
	(void)err;
	l->calls++;
	l->ret = rsc_scope_set_deadline(l->target, l->ms, 0);
	l->own_ret = rsc_scope_set_deadline(s, l->ms, 0);
}

static void dl_post(struct rsc_loop *loop, void *arg)
{
	struct later_dl *l = arg;

	(void)loop;
	l->calls++;
	l->ret = rsc_scope_set_deadline(l->target, l->ms, RSC_DEADLINE_MOVE_ON);
}

/* Deadlines set from an on-close callback (the parent's: taken; the closing
 * scope's own: -ESHUTDOWN) and from an rsc_loop_post(3) function: each
 * passes once, with its own flags. */
START_TEST(deadlines_set_from_on_close_and_from_a_post_pass_once)
{
	struct rsc_scope *p, *c, *q;
	struct later_dl lc = { 0 }, lp = { 0 };
	struct closed cp = { 0 }, cq = { 0 };
	struct t_guard g;

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "q", &q), 0);
	t_open_files(p, 0, 1);
	t_open_files(q, 1, 1);
	lc.target = p;
	lc.ms = 20;
	lp.target = q;
	lp.ms = 20;
	ck_assert_int_eq(rsc_scope_on_close(c, dl_on_close, &lc), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, note_closed, &cp), 0);
	ck_assert_int_eq(rsc_scope_on_close(q, note_closed, &cq), 0);
	ck_assert_int_eq(rsc_loop_post(t_loop, dl_post, &lp), 0);
	ck_assert_int_eq(rsc_scope_close(c, NULL, NULL), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cp.calls, 1);
	run_until(&g, &cq.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(lc.calls, 1);
	ck_assert_int_eq(lc.ret, 0);
	ck_assert_int_eq(lc.own_ret, -ESHUTDOWN);
	ck_assert_int_eq(lp.calls, 1);
	ck_assert_int_eq(lp.ret, 0);
	ck_assert_int_eq(cp.status, -ETIMEDOUT);
	ck_assert_int_eq(cq.status, 0); /* move-on */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 2);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(q, NULL), 0);
	ck_assert(!t_fd_open_to(t_path("f0")));
	ck_assert(!t_fd_open_to(t_path("f1")));
}
END_TEST

struct batch_cb {
	struct rsc_scope *clear, *arm;
	int calls, clear_ret, arm_ret;
};

/* Runs inside the timer's batch: clears a deadline due in the same batch,
 * arms a new one elsewhere. */
static void batch_on_close(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct batch_cb *b = data;

	(void)s;
	(void)status;
	(void)err;
	b->calls++;
	b->clear_ret = rsc_scope_set_deadline(b->clear, 0, 0);
	b->arm_ret = rsc_scope_set_deadline(b->arm, 5, 0);
}

/* Two deadlines due in one batch of the timer; the first scope's on-close
 * callback (run inside that batch: the scope is empty) clears the second's
 * and arms a third: the cleared one never passes, the new one does. */
START_TEST(on_close_inside_a_deadline_batch_clears_and_arms_deadlines)
{
	struct rsc_scope *a, *b, *c;
	struct batch_cb cb = { 0 };
	struct closed cc = { 0 }, cbb = { 0 };
	struct timespec nap = { 0, 30000000 };
	struct t_guard g;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "c", &c), 0);
	cb.clear = b;
	cb.arm = c;
	ck_assert_int_eq(rsc_scope_on_close(a, batch_on_close, &cb), 0);
	ck_assert_int_eq(rsc_scope_on_close(b, note_closed, &cbb), 0);
	ck_assert_int_eq(rsc_scope_on_close(c, note_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(a, 10, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(b, 11, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	nanosleep(&nap, NULL); /* both due when the timer's CQE is reaped */
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cc.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(cb.calls, 1);
	ck_assert_int_eq(cb.clear_ret, 0);
	ck_assert_int_eq(cb.arm_ret, 0);
	ck_assert_int_eq(cc.status, -ETIMEDOUT);
	ck_assert_int_eq(cbb.calls, 0);
	ck_assert_int_eq(rsc_scope_state(b), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 2);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(c, NULL), -ETIMEDOUT);
}
END_TEST

/* ------------------------------------ rsc_defer exits reaching elsewhere */

struct reach {
	struct rsc_scope *fail_me, *close_me, *opened;
	struct closed *close_seen;
	int fail_ret, close_ret, open_ret, push_ret, dl_ret, calls;
	struct rsc_loop *loop;
	struct rsc_scope *under;
};

static int reaching_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct reach *r = arg;
	struct rsc_entry *x;

	(void)e;
	(void)pending;
	r->calls++;
	if (r->fail_me)
		r->fail_ret = rsc_scope_fail(r->fail_me, -EPIPE, "from-defer");
	if (r->close_me)
		r->close_ret = rsc_scope_close(r->close_me, note_closed, r->close_seen);
	if (r->loop) {
		r->open_ret = rsc_scope_open(r->loop, r->under, "late", &r->opened);
		if (r->open_ret == 0) {
			/* Hooks never nest: nothing may be pushed from here. */
			r->push_ret = rsc_defer(r->opened, reaching_exit, r, &x);
			r->dl_ret = rsc_scope_set_deadline(r->opened, 20, 0);
		}
	}
	return 0;
}

/* A defer exit of one scope fails a sibling (its receive is cancelled, its
 * exits see -EPIPE "from-defer") and closes its own parent: the child's close
 * callback comes first, the parent's after it, each once. */
START_TEST(defer_exit_fails_a_sibling_and_closes_its_own_parent)
{
	struct rsc_scope *p, *c, *sib;
	struct closed cc = { 0 }, cpar = { 0 }, csib = { 0 };
	struct io_seen rx = { 0 };
	struct reach r = { 0 };
	struct rsc_entry *e;
	struct t_guard g;
	char buf[8];
	int peer;

	close_seq = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sib", &sib), 0);
	e = t_adopted_pair(sib, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, note_io, &rx), 0);
	ck_assert_int_eq(rsc_scope_on_close(sib, note_closed, &csib), 0);
	r.fail_me = sib;
	r.close_me = p;
	r.close_seen = &cpar;
	ck_assert_int_eq(rsc_defer(c, reaching_exit, &r, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(c, note_closed, &cc), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cpar.calls, 1);
	run_until(&g, &csib.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.fail_ret, 0);
	ck_assert_int_eq(r.close_ret, 0);
	ck_assert_int_eq(cc.calls, 1);
	ck_assert_int_eq(cpar.calls, 1);
	ck_assert_int_lt(cc.order, cpar.order);
	ck_assert_int_eq(cc.status, 0);
	ck_assert_int_eq(cpar.status, 0);
	ck_assert_int_eq(rx.res, -ECANCELED);
	ck_assert_int_eq(csib.status, -EPIPE);
	ck_assert_str_eq(csib.op, "from-defer");
	assert_peer_sees_eof(peer);
	ck_assert_int_eq(rsc_scope_close_wait(sib, NULL), -EPIPE);
	close(peer);
}
END_TEST

/* A defer exit fails its own parent while the child unwinds: the parent's
 * unwind waits for the child, then reports the failure; nothing twice. */
START_TEST(defer_exit_fails_its_own_parent_during_the_childs_close)
{
	struct rsc_scope *p, *c;
	struct closed cc = { 0 }, cpar = { 0 };
	struct reach r = { 0 };
	struct t_guard g;

	t_make_files(2);
	close_seq = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	t_open_files(p, 0, 1);
	t_open_files(c, 1, 1);
	r.fail_me = p;
	ck_assert_int_eq(rsc_defer(c, reaching_exit, &r, NULL), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, note_closed, &cpar), 0);
	ck_assert_int_eq(rsc_scope_close(c, note_closed, &cc), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cpar.calls, 1);
	run_until(&g, &cc.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.fail_ret, 0);
	ck_assert_int_eq(cc.status, 0);
	ck_assert_int_eq(cpar.status, -EPIPE);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -EPIPE);
	ck_assert(!t_fd_open_to(t_path("f0")));
	ck_assert(!t_fd_open_to(t_path("f1")));
}
END_TEST

/* A defer exit opens a new top-level scope during an unwind: it is a normal
 * scope (a deadline may be set on it, nothing pushed from inside the hook),
 * and its deadline passes after the unwind that opened it. */
START_TEST(defer_exit_opens_a_scope_that_lives_on_after_the_unwind)
{
	struct rsc_scope *s;
	struct closed cs = { 0 }, cl = { 0 };
	struct reach r = { 0 };
	struct t_guard g;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	r.loop = t_loop;
	ck_assert_int_eq(rsc_defer(s, reaching_exit, &r, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(s, note_closed, &cs), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cs.calls, 1);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.open_ret, 0);
	ck_assert_int_eq(r.push_ret, -EDEADLK);
	ck_assert_int_eq(r.dl_ret, 0);
	ck_assert_int_eq(rsc_scope_on_close(r.opened, note_closed, &cl), 0);
	run_until(&g, &cl.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(cl.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(r.opened, NULL), -ETIMEDOUT);
	ck_assert_int_eq(r.calls, 1); /* the refused push left nothing to run */
}
END_TEST

/* ------------------------------------------- the application's ring */

/* An application that shares its ring with a loop and keeps its own CQEs. */
struct mapp {
	struct io_uring ring;
	struct rsc_loop *loop;
	int own;
	uint64_t own_ud[16];
	int own_res[16];
	long own_at[16];
};

static void mapp_new(struct mapp *a)
{
	memset(a, 0, sizeof(*a));
	ck_assert_int_eq(io_uring_queue_init(32, &a->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&a->loop, &a->ring, 0), 0);
}

/* One turn: submit (unless the application is in the middle of a chain),
 * wait up to @wait_ms for a CQE, dispatch them all, then the loop's turn. */
static void mapp_turn(struct mapp *a, bool submit, unsigned wait_ms)
{
	struct __kernel_timespec ts = { 0, (long long)wait_ms * 1000000LL };
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	if (submit)
		ck_assert_int_ge(io_uring_submit(&a->ring), 0);
	if (wait_ms)
		(void)io_uring_wait_cqe_timeout(&a->ring, &cqe, &ts); /* EXT_ARG: submits nothing */
	io_uring_for_each_cqe(&a->ring, head, cqe) {
		int ret = rsc_loop_dispatch(a->loop, cqe);

		ck_assert_int_ge(ret, 0);
		if (ret == 0) {
			ck_assert_int_lt(a->own, 16);
			a->own_ud[a->own] = cqe->user_data;
			a->own_res[a->own] = cqe->res;
			a->own_at[a->own++] = t_now_ms();
		}
		n++;
	}
	io_uring_cq_advance(&a->ring, n);
	ck_assert_int_ge(rsc_loop_run(a->loop, RSC_RUN_NOWAIT), 0);
}

static void mapp_end(struct mapp *a)
{
	int turns;

	for (turns = 0; rsc_loop_alive(a->loop) > 0 && turns < 300; turns++)
		mapp_turn(a, true, 10);
	ck_assert_int_eq(rsc_loop_alive(a->loop), 0);
	ck_assert_int_eq(rsc_loop_close(a->loop), 0);
	io_uring_queue_exit(&a->ring);
}

static void mapp_nop(struct mapp *a, uint64_t ud, unsigned char flags)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);

	ck_assert_ptr_nonnull(sqe);
	io_uring_prep_nop(sqe);
	sqe->flags |= flags;
	io_uring_sqe_set_data64(sqe, ud);
}

/* A deadline passes while the application's chain is open (its last SQE
 * links to one it has not prepared yet): the cancel of the receive and the
 * close must neither join that chain nor submit it; a new deadline cannot be
 * armed then (-EBUSY, nothing set). Once the chain is complete, the cut and
 * the unwind go out, the chain's two NOPs both succeed, and the socket is
 * closed once. */
START_TEST(shared_ring_deadline_passes_while_the_applications_chain_is_open)
{
	struct rsc_scope *s, *q;
	struct closed c = { 0 }, cq = { 0 };
	struct io_seen rx = { 0 };
	struct rsc_entry *e;
	struct mapp a;
	char buf[8];
	int peer, turns, before = t_fd_count();

	mapp_new(&a);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "q", &q), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, note_io, &rx), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, note_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_on_close(q, note_closed, &cq), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 30, 0), 0);
	mapp_turn(&a, true, 0); /* the receive and the timer are in the kernel */
	mapp_nop(&a, 1, IOSQE_IO_LINK);
	for (turns = 0; !c.calls && rsc_loop_counter(a.loop, RSC_CTR_DEADLINES) == 0 && turns < 100;
	     turns++)
		mapp_turn(&a, false, 20);
	ck_assert_int_eq(rsc_loop_counter(a.loop, RSC_CTR_DEADLINES), 1);
	for (turns = 0; turns < 3; turns++)
		mapp_turn(&a, false, 5);
	/* Nothing of ringscope's after the open link, nothing submitted. */
	ck_assert_uint_eq(io_uring_sq_ready(&a.ring), 1);
	ck_assert_int_eq(rx.calls, 0);
	ck_assert_int_eq(c.calls, 0);
	ck_assert_int_eq(rsc_scope_set_deadline(q, 10, 0), -EBUSY);
	mapp_nop(&a, 2, 0); /* the chain is complete */
	for (turns = 0; (!c.calls || a.own < 2) && turns < 200; turns++)
		mapp_turn(&a, true, 10);
	ck_assert_int_eq(a.own, 2);
	ck_assert_uint_eq(a.own_ud[0], 1);
	ck_assert_int_eq(a.own_res[0], 0);
	ck_assert_uint_eq(a.own_ud[1], 2);
	ck_assert_int_eq(a.own_res[1], 0);
	ck_assert_int_eq(rx.calls, 1);
	ck_assert_int_eq(rx.res, -ECANCELED);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	assert_peer_sees_eof(peer);
	/* q's refused deadline was never set: q stays open past its 10 ms. */
	for (turns = 0; turns < 5; turns++)
		mapp_turn(&a, true, 10);
	ck_assert_int_eq(cq.calls, 0);
	ck_assert_int_eq(rsc_scope_state(q), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(q, NULL, NULL), 0);
	mapp_end(&a);
	close(peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* IOSQE_IO_DRAIN of the application's while scopes open, fail and time out:
 * the drain waits for ringscope's ops submitted before it (the deadline's
 * timer included) and holds those after it; every file is closed once, the
 * failure and the deadline each reach their scope, and the drain succeeds. */
START_TEST(shared_ring_drain_while_scopes_open_fail_and_time_out)
{
	struct rsc_scope *failing, *timed;
	struct closed cf = { 0 }, ct = { 0 };
	struct mapp a;
	int turns, i, before = t_fd_count();
	long t0;

	t_make_files(6);
	mapp_new(&a);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "failing", &failing), 0);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "timed", &timed), 0);
	ck_assert_int_eq(rsc_scope_on_close(failing, note_closed, &cf), 0);
	ck_assert_int_eq(rsc_scope_on_close(timed, note_closed, &ct), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(rsc_open(failing, AT_FDCWD, t_path(i == 0 ? "f0" : i == 1 ? "f1" : "f2"),
					  O_RDONLY, 0, 0, NULL), 0);
		ck_assert_int_eq(rsc_open(timed, AT_FDCWD, t_path(i == 0 ? "f3" : i == 1 ? "f4" : "f5"),
					  O_RDONLY, 0, 0, NULL), 0);
	}
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_set_deadline(timed, 40, 0), 0);
	/* The opens and the timer, then the drain, in one submit. */
	mapp_nop(&a, 9, IOSQE_IO_DRAIN);
	ck_assert_int_eq(rsc_scope_fail(failing, -EPIPE, "body"), 0);
	for (turns = 0; (!cf.calls || !ct.calls || a.own < 1) && turns < 300; turns++)
		mapp_turn(&a, true, 10);
	ck_assert_int_eq(a.own, 1);
	ck_assert_uint_eq(a.own_ud[0], 9);
	ck_assert_int_eq(a.own_res[0], 0);
	/* It waited for the deadline's timer, which went before it. */
	ck_assert_int_ge(a.own_at[0] - t0, 30);
	ck_assert_int_eq(cf.calls, 1);
	ck_assert_int_eq(cf.status, -EPIPE);
	ck_assert_int_eq(ct.calls, 1);
	ck_assert_int_eq(ct.status, -ETIMEDOUT);
	for (i = 0; i < 6; i++) {
		char name[8];

		snprintf(name, sizeof(name), "f%d", i);
		ck_assert(!t_fd_open_to(t_path(name)));
	}
	ck_assert_int_eq(rsc_scope_close(failing, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(timed, NULL, NULL), 0);
	mapp_end(&a);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ------------------------------------------ direct slots, hand-overs */

static void count_arrival(struct rsc_entry *inbox, int slot, struct rsc_scope *cs,
			  struct rsc_entry *e, void *data)
{
	(void)inbox;
	(void)slot;
	(void)cs;
	(void)e;
	(*(int *)data)++;
}

/* An inbox acquires (slots arrive), as an accept does: a graceful close with
 * no bound must not wait on it for ever; nor on a handed child that has no
 * I/O. Its slot goes back to the table. */
START_TEST(graceful_close_of_an_inbox_scope_ends_and_frees_the_handed_slot)
{
	struct rsc_loop *rl;
	struct rsc_scope *recv_scope, *snd;
	struct rsc_entry *inbox, *e;
	struct closed c = { 0 };
	unsigned long long addr;
	int arrived = 0, turns;

	if (!t_has_hand_over()) {
		fprintf(stderr, "SKIP graceful_close_of_an_inbox_scope_ends_and_frees_the_handed_slot: the loops of this run lack IORING_MSG_SEND_FD (Linux 6.0)\n");
		return;
	}
	t_make_files(1);
	ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "receiver", &recv_scope), 0);
	ck_assert_int_eq(rsc_inbox(recv_scope, count_arrival, &arrived, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &snd), 0);
	ck_assert_int_eq(rsc_open(snd, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, NULL, NULL), 0);
	for (turns = 0; !arrived && turns < 50; turns++)
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(arrived, 1);
	ck_assert_int_eq(rsc_loop_direct_used(rl), 1);
	ck_assert_int_eq(rsc_scope_close_graceful(recv_scope, 0, note_closed, &c), 0);
	for (turns = 0; !c.calls && turns < 200; turns++) {
		struct timespec ts = { 0, 5000000 };

		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
		nanosleep(&ts, NULL);
	}
	ck_assert_msg(c.calls == 1, "the grace never ended: the inbox holds it");
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(rsc_loop_direct_used(rl), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
	ck_assert_int_eq(rsc_scope_close_wait(snd, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
}
END_TEST

/* A connected socket in a direct slot with a multishot receive: no hand-over
 * (-EBUSY) or detach while it runs; moved to a scope whose deadline passes,
 * the receive ends once with -ECANCELED, the peer sees the end of stream and
 * the slot is free again. */
START_TEST(direct_socket_with_multishot_moved_under_a_deadline_frees_its_slot)
{
	struct rsc_scope *srv, *a, *b;
	struct sockaddr_in bound;
	struct rsc_entry *l, *e;
	struct closed cb = { 0 };
	struct io_seen rx = { 0 };
	struct t_guard g;
	int peer, ret;

	if (!multishot_supported()) {
		fprintf(stderr, "SKIP direct_socket_with_multishot_moved_under_a_deadline_frees_its_slot: kernel lacks IORING_RECV_MULTISHOT\n");
		return;
	}
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	l = t_listen_on_loopback(srv, 4, &bound);
	ck_assert_int_eq(rsc_connect(a, (struct sockaddr *)&bound, sizeof(bound), 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	peer = accept4(rsc_entry_fd(l), NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(peer, 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	ck_assert_int_eq(rsc_recv_multishot(e, 0, note_io, &rx), 0);
	if (t_has_hand_over())
		ck_assert_int_eq(rsc_entry_hand_over(e, 1, NULL, NULL), -EBUSY);
	ret = rsc_entry_detach(e);
	ck_assert_msg(ret == -EBADF || ret == -EBUSY, "detach of a busy slot: %d", ret);
	ck_assert_int_eq(rsc_entry_move(e, b), 0);
	ck_assert_int_eq(rsc_scope_on_close(b, note_closed, &cb), 0);
	ck_assert_int_eq(write(peer, "xy", 2), 2);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &rx.bytes, 2);
	ck_assert_int_eq(rsc_scope_set_deadline(b, 20, 0), 0);
	run_until(&g, &cb.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(rx.last, 1);
	ck_assert_int_eq(rx.res, -ECANCELED);
	ck_assert_int_eq(cb.status, -ETIMEDOUT);
	assert_peer_sees_eof(peer);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	close(peer);
}
END_TEST

/* A hand-over made while the sender's deadline is already due (on the clock,
 * not yet seen by the loop): the deadline's cut reaches the hand-over in
 * flight (DEFER_TASKRUN receiver: the sender's CQE comes after the receiver's
 * turn). Either way the slot has exactly one owner: arrived and gone from the
 * sender, or kept and closed by the sender's unwind; nothing is left in
 * either table once both are closed. */
START_TEST(hand_over_racing_the_senders_deadline_leaves_one_owner)
{
	struct rsc_loop *rl;
	struct rsc_scope *recv_scope, *snd;
	struct rsc_entry *inbox, *e;
	struct closed cs = { 0 };
	struct sent_seen sent = { 0 };
	unsigned long long addr;
	struct t_guard g;
	struct timespec nap = { 0, 10000000 };
	int arrived = 0, turns, ret;

	if (!t_has_hand_over()) {
		fprintf(stderr, "SKIP hand_over_racing_the_senders_deadline_leaves_one_owner: the loops of this run lack IORING_MSG_SEND_FD (Linux 6.0)\n");
		return;
	}
	t_make_files(1);
	ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "receiver", &recv_scope), 0);
	ck_assert_int_eq(rsc_inbox(recv_scope, count_arrival, &arrived, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &snd), 0);
	ck_assert_int_eq(rsc_scope_on_close(snd, note_closed, &cs), 0);
	ck_assert_int_eq(rsc_open(snd, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(snd, 1, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0); /* the timer is in */
	nanosleep(&nap, NULL);					     /* ... and due */
	ret = rsc_entry_hand_over(e, addr, note_sent, &sent);
	ck_assert_int_eq(ret, 0);
	t_guard_start(&g, t_loop, 3000);
	while (!cs.calls) {
		ck_assert(!g.fired);
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	}
	t_guard_stop(&g);
	for (turns = 0; turns < 10; turns++)
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(sent.calls, 1);
	ck_assert_int_eq(cs.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(snd, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	if (sent.res >= 0) {
		ck_assert_int_eq(arrived, 1);
		ck_assert_int_eq(rsc_loop_direct_used(rl), 1);
	} else {
		ck_assert_int_eq(arrived, 0);
		ck_assert_int_eq(rsc_loop_direct_used(rl), 0);
	}
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(recv_scope, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(rl), 0);
	ck_assert_int_eq(t_audit_slots(rl), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
}
END_TEST

/* An early release (or the scope's fail) asked right after a hand-over, while
 * it is still in flight (a DEFER_TASKRUN receiver installs in its own turn):
 * the release waits for it; the slot is the receiver's or closed by the
 * sender, never both, never neither, and the kernel's tables agree. */
START_TEST(release_or_fail_right_after_a_hand_over_leaves_one_owner)
{
	int round;

	if (!t_has_hand_over()) {
		fprintf(stderr, "SKIP release_or_fail_right_after_a_hand_over_leaves_one_owner: the loops of this run lack IORING_MSG_SEND_FD (Linux 6.0)\n");
		return;
	}
	t_make_files(1);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	for (round = 0; round < 4; round++) {
		struct rsc_loop *rl;
		struct rsc_scope *recv_scope, *snd;
		struct rsc_entry *inbox, *e;
		struct sent_seen sent = { 0 }, rel = { 0 };
		struct closed cs = { 0 };
		unsigned long long addr;
		struct t_guard g;
		int arrived = 0, turns;

		ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
		ck_assert_int_eq(rsc_scope_open(rl, NULL, "receiver", &recv_scope), 0);
		ck_assert_int_eq(rsc_inbox(recv_scope, count_arrival, &arrived, &inbox), 0);
		ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &snd), 0);
		ck_assert_int_eq(rsc_open(snd, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
		if (round & 1)
			ck_assert_int_eq(rsc_loop_run(rl, RSC_RUN_NOWAIT), 1); /* the inbox is in */
		ck_assert_int_eq(rsc_entry_hand_over(e, addr, note_sent, &sent), 0);
		if (round & 2)
			ck_assert_int_eq(rsc_scope_fail(snd, -EPIPE, "body"), 0);
		else
			ck_assert_int_eq(rsc_entry_release(e, note_sent, &rel), 0);
		ck_assert_int_eq(rsc_scope_close(snd, note_closed, &cs), 0);
		t_guard_start(&g, t_loop, 3000);
		while (!cs.calls) {
			ck_assert(!g.fired);
			ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		}
		t_guard_stop(&g);
		for (turns = 0; turns < 10; turns++)
			ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
		t_run();
		ck_assert_int_eq(sent.calls, 1);
		ck_assert_int_eq(rel.calls, round & 2 ? 0 : 1);
		ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
		ck_assert_int_eq(t_audit_slots(t_loop), 0);
		ck_assert_int_eq(arrived, sent.res >= 0 ? 1 : 0);
		ck_assert_int_eq(rsc_loop_direct_used(rl), arrived);
		ck_assert_int_eq(t_audit_slots(rl), 0);
		ck_assert_int_eq(rsc_scope_close_wait(recv_scope, NULL), 0);
		ck_assert_int_eq(rsc_loop_direct_used(rl), 0);
		ck_assert_int_eq(t_audit_slots(rl), 0);
		ck_assert_int_eq(rsc_loop_close(rl), 0);
	}
}
END_TEST

/* An install (a slot into a descriptor) made while its scope's deadline is
 * due: whichever wins, the entry owns the slot or the descriptor, its unwind
 * closes that one once, and nothing is left in the table or the process. */
START_TEST(install_racing_its_scopes_deadline_leaves_nothing_open)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct closed cs = { 0 };
	struct sent_seen got = { 0 };
	struct t_guard g;
	struct timespec nap = { 0, 10000000 };
	int round, before;

	if (!t_kernel_has(OP_FIXED_FD_INSTALL)) {
		fprintf(stderr, "SKIP install_racing_its_scopes_deadline_leaves_nothing_open: kernel lacks IORING_OP_FIXED_FD_INSTALL\n");
		return;
	}
	t_make_files(1);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	before = t_fd_count();
	for (round = 0; round < 4; round++) {
		memset(&cs, 0, sizeof(cs));
		memset(&got, 0, sizeof(got));
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "inst", &s), 0);
		ck_assert_int_eq(rsc_scope_on_close(s, note_closed, &cs), 0);
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
		ck_assert_int_eq(rsc_scope_set_deadline(s, 1, round & 1 ? RSC_DEADLINE_MOVE_ON : 0), 0);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		if (round & 2)
			nanosleep(&nap, NULL); /* due before the install goes out */
		ck_assert_int_eq(rsc_entry_install(e, 0, note_sent, &got), 0);
		t_guard_start(&g, t_loop, 3000);
		run_until(&g, &cs.calls, 1);
		t_guard_stop(&g);
		ck_assert_int_eq(got.calls, 1);
		ck_assert_int_eq(cs.status, round & 1 ? 0 : -ETIMEDOUT);
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), cs.status);
		t_run();
		ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
		ck_assert_int_eq(t_fd_count(), before);
		ck_assert(!t_fd_open_to(t_path("f0")));
	}
}
END_TEST

/* ------------------------- accepts under a deadline and a grace, racing */

struct dialer {
	struct sockaddr_in to;
	volatile int stop;
	int fds[256];
	int n;
};

/* Non-blocking connects, one every half millisecond, kept open (idle). */
static void *dial(void *arg)
{
	struct dialer *d = arg;
	struct timespec ts = { 0, 500000 };

	while (!d->stop && d->n < 256) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		if (fd < 0)
			break;
		(void)connect(fd, (struct sockaddr *)&d->to, sizeof(d->to));
		d->fds[d->n++] = fd;
		nanosleep(&ts, NULL);
	}
	return NULL;
}

struct acceptor {
	int accepted, last, last_res, recv_ok, conns_closed;
	struct io_seen rx[256];
	char buf[256][4];
	struct closed cc[256];
};

static void on_conn(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *e,
		    void *data)
{
	struct acceptor *a = data;

	(void)l;
	if (res < 0 || !cs) {
		a->last++;
		a->last_res = res;
		return;
	}
	if (a->accepted < 256) {
		int i = a->accepted;

		ck_assert_int_eq(rsc_scope_on_close(cs, note_closed, &a->cc[i]), 0);
		/* A graceful close lets started I/O go on; a new receive may start. */
		a->recv_ok += rsc_recv(e, a->buf[i], sizeof(a->buf[i]), 0, note_io, &a->rx[i]) == 0;
	}
	a->accepted++;
}

/* A server scope with a multishot accept, clients arriving all along: a
 * graceful close stops the accepts, a deadline then cuts the grace (the
 * connections are idle): one last accept callback, every connection handed
 * out closed once with its receive cancelled, nothing left open. */
START_TEST(accept_under_a_deadline_and_a_grace_while_clients_keep_coming)
{
	struct acceptor *acc = calloc(1, sizeof(*acc));
	struct dialer d = { 0 };
	struct rsc_scope *srv;
	struct closed cs = { 0 };
	struct rsc_entry *l;
	struct t_guard g;
	pthread_t th;
	int i, closed_conns = 0, before = t_fd_count();
	long t0;

	if (t_under_valgrind()) {
		fprintf(stderr, "SKIP accept_under_a_deadline_and_a_grace_while_clients_keep_coming: under valgrind, the loop's wait starves the dialing thread\n");
		free(acc);
		return;
	}

	ck_assert_ptr_nonnull(acc);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 64, &d.to);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, on_conn, acc), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, dial, &d), 0);
	t_guard_start(&g, t_loop, 5000);
	run_until(&g, &acc->accepted, 3);
	ck_assert_int_eq(rsc_scope_set_deadline(srv, 60, 0), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 5000, note_closed, &cs), 0);
	t0 = t_now_ms();
	run_until(&g, &cs.calls, 1);
	t_guard_stop(&g);
	d.stop = 1;
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_lt(t_now_ms() - t0, 3000); /* the deadline, not the 5 s grace */
	ck_assert_int_eq(cs.status, -ETIMEDOUT);
	ck_assert_int_eq(acc->last, 1);
	ck_assert_int_eq(acc->last_res, -ECANCELED);
	for (i = 0; i < acc->accepted && i < 256; i++) {
		ck_assert_int_eq(acc->cc[i].calls, 1);
		ck_assert_int_eq(acc->rx[i].calls, 1);
		ck_assert_int_eq(acc->rx[i].res, -ECANCELED);
		closed_conns++;
	}
	ck_assert_int_eq(acc->recv_ok, closed_conns);
	t_run();
	for (i = 0; i < d.n; i++)
		close(d.fds[i]);
	ck_assert_int_eq(t_fd_count(), before);
	free(acc);
}
END_TEST

/* --------------------------------------- more hooks calling back in */

struct self_closer {
	struct rsc_scope *scope;
	int how; /* 0: rsc_scope_fail, 1: rsc_scope_close, 2: graceful with a grace */
	int ret, exit_calls, exit_pending;
	struct __kernel_timespec ts;
};

/* Its enter reserves a slow acquire (a 30 s timeout), then ends its own scope. */
static int closing_enter(struct rsc_entry *e, void *arg)
{
	struct self_closer *c = arg;
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	c->ts.tv_sec = 30;
	io_uring_prep_timeout(sqe, &c->ts, 0, 0);
	if (c->how == 0)
		c->ret = rsc_scope_fail(c->scope, -EPROTO, "from-enter");
	else if (c->how == 1)
		c->ret = rsc_scope_close(c->scope, NULL, NULL);
	else
		c->ret = rsc_scope_close_graceful(c->scope, 5000, NULL, NULL);
	return 0;
}

static int closing_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct self_closer *c = arg;

	(void)e;
	c->exit_calls++;
	c->exit_pending = pending ? rsc_error_errno(pending) : 0;
	return 0;
}

static const struct rsc_manager closing_manager = { sizeof(struct rsc_manager), 0, "selfclose",
						    closing_enter, closing_exit };

/* An enter hook that fails, closes or gracefully closes its own scope while
 * its own acquire is in flight: the acquire is cancelled (DESIGN 2.6), so the
 * exit never runs, the scope ends promptly (a grace waits for no acquire),
 * and a failure's error is the scope's status. */
START_TEST(enter_hook_ending_its_own_scope_cancels_its_acquire)
{
	int how;

	for (how = 0; how < 3; how++) {
		struct self_closer c = { 0 };
		struct closed cs = { 0 };
		struct rsc_entry *e;
		struct t_guard g;
		long t0;

		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "selfish", &c.scope), 0);
		ck_assert_int_eq(rsc_scope_on_close(c.scope, note_closed, &cs), 0);
		c.how = how;
		t0 = t_now_ms();
		ck_assert_int_eq(rsc_push(c.scope, &closing_manager, &c, &e), 0);
		ck_assert_int_eq(c.ret, 0);
		t_guard_start(&g, t_loop, 3000);
		run_until(&g, &cs.calls, 1);
		t_guard_stop(&g);
		ck_assert_int_lt(t_now_ms() - t0, 2500);
		ck_assert_int_eq(c.exit_calls, 0);
		ck_assert_int_eq(cs.status, how == 0 ? -EPROTO : 0);
		if (how == 0)
			ck_assert_int_eq(rsc_scope_close_wait(c.scope, NULL), -EPROTO);
		t_run();
		ck_assert_int_eq(rsc_scope_state(c.scope), -ESTALE);
	}
}
END_TEST

/* An entry moved out of a scope before its graceful close no longer holds
 * that grace (no bound: it would wait for ever), and keeps its receive. */
START_TEST(entry_moved_out_before_a_grace_does_not_hold_it)
{
	struct rsc_scope *srv, *keep;
	struct closed cs = { 0 };
	struct io_seen rx = { 0 };
	struct rsc_entry *e;
	struct t_guard g;
	char buf[8];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "keep", &keep), 0);
	e = t_adopted_pair(srv, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, note_io, &rx), 0);
	ck_assert_int_eq(rsc_entry_move(e, keep), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 0, note_closed, &cs), 0);
	t_guard_start(&g, t_loop, 3000);
	run_until(&g, &cs.calls, 1);
	ck_assert_int_eq(cs.status, 0);
	ck_assert_int_eq(rx.calls, 0);
	ck_assert_int_eq(write(peer, "ok", 2), 2);
	run_until(&g, &rx.calls, 1);
	t_guard_stop(&g);
	ck_assert_int_eq(rx.res, 2);
	ck_assert_int_eq(rsc_scope_close_wait(keep, NULL), 0);
	assert_peer_sees_eof(peer);
	close(peer);
}
END_TEST

/* On the application's ring with its chain open, a graceful close that needs
 * a timer is refused with -EBUSY and closes nothing; one with no bound needs
 * no SQE and is taken. */
START_TEST(shared_ring_graceful_close_while_the_applications_chain_is_open)
{
	struct rsc_scope *s, *t;
	struct closed cs = { 0 }, ct = { 0 };
	struct mapp a;
	int turns, before = t_fd_count();

	t_make_files(2);
	mapp_new(&a);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "t", &t), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, NULL), 0);
	ck_assert_int_eq(rsc_open(t, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, NULL), 0);
	for (turns = 0; turns < 20 && rsc_loop_alive(a.loop) > 0; turns++)
		mapp_turn(&a, true, 10);
	mapp_nop(&a, 1, IOSQE_IO_LINK);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 50, note_closed, &cs), -EBUSY);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_graceful(t, 0, note_closed, &ct), 0);
	mapp_turn(&a, false, 0);
	ck_assert_uint_eq(io_uring_sq_ready(&a.ring), 1);
	mapp_nop(&a, 2, 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 50, note_closed, &cs), 0);
	for (turns = 0; (!cs.calls || !ct.calls || a.own < 2) && turns < 200; turns++)
		mapp_turn(&a, true, 10);
	ck_assert_int_eq(cs.calls, 1);
	ck_assert_int_eq(ct.calls, 1);
	ck_assert_int_eq(cs.status, 0);
	ck_assert_int_eq(ct.status, 0);
	ck_assert_int_eq(a.own_res[0], 0);
	ck_assert_int_eq(a.own_res[1], 0);
	ck_assert(!t_fd_open_to(t_path("f0")));
	ck_assert(!t_fd_open_to(t_path("f1")));
	mapp_end(&a);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

static void post_sets_deadline(struct rsc_loop *loop, void *arg)
{
	struct later_dl *l = arg;

	(void)loop;
	l->calls++;
	l->ret = rsc_scope_set_deadline(l->target, l->ms, 0);
}

/* A post to a loop on the application's ring sets a deadline: its wake-up is
 * the application's to dispatch, the deadline's timer goes out with its next
 * submit, and the scope times out with its receive cancelled. */
START_TEST(shared_ring_post_sets_a_deadline_that_passes)
{
	struct later_dl l = { 0 };
	struct closed cs = { 0 };
	struct io_seen rx = { 0 };
	struct rsc_entry *e;
	struct rsc_scope *s;
	struct mapp a;
	char buf[8];
	int peer, turns, before = t_fd_count();

	if (!t_has_post_msg_ring()) {
		fprintf(stderr, "SKIP shared_ring_post_sets_a_deadline_that_passes: the loops of this run post without MSG_RING (no probe, or Linux < 5.18)\n");
		return;
	}
	mapp_new(&a);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, note_closed, &cs), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, note_io, &rx), 0);
	l.target = s;
	l.ms = 20;
	ck_assert_int_eq(rsc_loop_post(a.loop, post_sets_deadline, &l), 0);
	ck_assert_int_eq(l.calls, 0);
	for (turns = 0; !cs.calls && turns < 300; turns++)
		mapp_turn(&a, true, 10);
	ck_assert_int_eq(l.calls, 1);
	ck_assert_int_eq(l.ret, 0);
	ck_assert_int_eq(cs.status, -ETIMEDOUT);
	ck_assert_int_eq(rx.res, -ECANCELED);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	mapp_end(&a);
	assert_peer_sees_eof(peer);
	close(peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* rsc_loop_shutdown(3) while clients keep connecting to a multishot accept
 * whose scope is in a long grace with a deadline: the shutdown waits for the
 * grace, the deadline ends it; one last accept callback, every connection
 * handed out closed once, nothing left open. */
START_TEST(shutdown_during_accepts_a_grace_and_a_deadline)
{
	struct acceptor *acc = calloc(1, sizeof(*acc));
	struct dialer d = { 0 };
	struct rsc_scope *srv;
	struct closed cs = { 0 };
	struct rsc_entry *l;
	struct rsc_loop *loop;
	struct sockaddr_in a = t_loopback(0);
	socklen_t len = sizeof(d.to);
	pthread_t th;
	int i, ret, before = t_fd_count();
	long t0;

	if (t_under_valgrind()) {
		fprintf(stderr, "SKIP shutdown_during_accepts_a_grace_and_a_deadline: under valgrind, the loop's wait starves the dialing thread\n");
		free(acc);
		return;
	}

	ck_assert_ptr_nonnull(acc);
	ck_assert_int_eq(rsc_loop_new(&loop, 64, 0), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_listen(srv, (struct sockaddr *)&a, sizeof(a), 64, 0, &l), 0);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)&d.to, &len), 0);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, on_conn, acc), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, dial, &d), 0);
	t0 = t_now_ms();
	while (acc->accepted < 3 && t_now_ms() - t0 < 3000)
		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(acc->accepted, 3);
	ck_assert_int_eq(rsc_scope_set_deadline(srv, 100, 0), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 10000, note_closed, &cs), 0);
	t0 = t_now_ms();
	ret = rsc_loop_shutdown(loop, NULL);
	d.stop = 1;
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_lt(t_now_ms() - t0, 5000); /* the deadline, not the grace */
	ck_assert_int_eq(ret, 0); /* the scope's own callback took its result */
	ck_assert_int_eq(cs.calls, 1);
	ck_assert_int_eq(cs.status, -ETIMEDOUT);
	ck_assert_int_eq(acc->last, 1);
	ck_assert_int_eq(acc->last_res, -ECANCELED);
	for (i = 0; i < acc->accepted && i < 256; i++) {
		ck_assert_int_eq(acc->cc[i].calls, 1);
		ck_assert_int_eq(acc->rx[i].calls, 1);
		ck_assert_int_eq(acc->rx[i].res, -ECANCELED);
	}
	for (i = 0; i < d.n; i++)
		close(d.fds[i]);
	ck_assert_int_eq(t_fd_count(), before);
	free(acc);
}
END_TEST

struct pending_seen {
	int calls, head, cause;
	int order;
};

static int seq_exit; /* the order defer exits ran in */

static int record_pending(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct pending_seen *ps = arg;
	const struct rsc_error *c = pending ? rsc_error_cause(pending) : NULL;

	(void)e;
	ps->calls++;
	ps->order = ++seq_exit;
	ps->head = pending ? rsc_error_errno(pending) : 0;
	ps->cause = c ? rsc_error_errno(c) : 0;
	return 0;
}

static int failing_sibling_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct reach *r = arg;

	(void)e;
	(void)pending;
	r->calls++;
	seq_exit++;
	r->fail_ret = rsc_scope_fail(r->fail_me, -EPIPE, "from-defer");
	return 0;
}

static bool chain_has(const struct rsc_error *err, int errnum)
{
	for (; err; err = rsc_error_cause(err))
		if (rsc_error_errno(err) == errnum)
			return true;
	return false;
}

struct chain_seen {
	int calls, status;
	bool has_epipe, has_eio;
};

static void note_chain(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct chain_seen *c = data;

	(void)s;
	c->calls++;
	c->status = status;
	c->has_epipe = chain_has(err, -EPIPE);
	c->has_eio = chain_has(err, -EIO);
}

/* rsc_scope_fail(3) below a scope whose unwind has started: the failed scope
 * unwinds in its turn with that unwind's error on top of its own, and both
 * reach the parent's chain. Here a newer child's defer fails its older
 * sibling while their parent closes (cleanly, then failed with -EIO). */
START_TEST(defer_exit_fails_an_older_sibling_during_their_parents_unwind)
{
	int variant;

	for (variant = 0; variant < 2; variant++) {
		struct rsc_scope *p, *older, *newer;
		struct pending_seen in_older = { 0 };
		struct chain_seen cp = { 0 };
		struct reach r = { 0 };
		struct t_guard g;

		seq_exit = 0;
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
		ck_assert_int_eq(rsc_scope_open(t_loop, p, "older", &older), 0);
		ck_assert_int_eq(rsc_scope_open(t_loop, p, "newer", &newer), 0);
		ck_assert_int_eq(rsc_defer(older, record_pending, &in_older, NULL), 0);
		r.fail_me = older;
		ck_assert_int_eq(rsc_defer(newer, failing_sibling_exit, &r, NULL), 0);
		if (variant == 0)
			ck_assert_int_eq(rsc_scope_close(p, note_chain, &cp), 0);
		else
			ck_assert_int_eq(rsc_scope_fail(p, -EIO, "body"), 0);
		t_guard_start(&g, t_loop, 3000);
		if (variant == 0) {
			run_until(&g, &cp.calls, 1);
		} else {
			while (rsc_scope_state(p) != RSC_SCOPE_UNWOUND) {
				ck_assert(!g.fired);
				ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
			}
			ck_assert_int_eq(rsc_scope_close(p, note_chain, &cp), 0);
			run_until(&g, &cp.calls, 1);
		}
		t_guard_stop(&g);
		ck_assert_int_eq(r.calls, 1);
		ck_assert_int_eq(r.fail_ret, 0);
		ck_assert_int_eq(in_older.calls, 1);
		ck_assert_int_gt(in_older.order, 1); /* newest child first */
		if (variant == 0) {
			ck_assert_int_eq(in_older.head, -EPIPE);
			ck_assert_int_eq(cp.status, -EPIPE);
		} else {
			ck_assert_int_eq(in_older.head, -EIO); /* the unwind's, on top */
			ck_assert_int_eq(in_older.cause, -EPIPE);
			ck_assert(cp.has_eio);
		}
		ck_assert(cp.has_epipe);
	}
}
END_TEST

/* ----------------------------------------------------- rsc_loop_shutdown */

/* A shutdown over a scope in its grace with a deadline, a child with a
 * multishot-free receive moved in, and a defer exit that fails a sibling
 * and opens a scope: every release once, every descriptor closed, and the
 * scope a late exit opened closed too. */
START_TEST(shutdown_over_a_grace_a_deadline_a_move_and_a_reaching_defer)
{
	struct rsc_loop *l;
	struct rsc_scope *srv, *conn, *sib, *late_parent;
	struct rsc_entry *e1, *e2;
	struct closed csrv = { 0 }, csib = { 0 };
	struct io_seen r1 = { 0 }, r2 = { 0 };
	struct reach r = { 0 };
	struct rsc_error *err = NULL;
	char b1[8], b2[8];
	int sv1[2], sv2[2], fds;

	fds = t_fd_count();
	ck_assert_int_eq(rsc_loop_new(&l, 16, 0), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv1), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "late-parent", &late_parent), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "sib", &sib), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "conn", &conn), 0);
	ck_assert_int_eq(rsc_adopt(conn, sv1[0], 0, &e1), 0);
	ck_assert_int_eq(rsc_adopt(sib, sv2[0], 0, &e2), 0);
	ck_assert_int_eq(rsc_recv(e1, b1, sizeof(b1), 0, note_io, &r1), 0);
	ck_assert_int_eq(rsc_recv(e2, b2, sizeof(b2), 0, note_io, &r2), 0);
	ck_assert_int_eq(rsc_scope_move(conn, srv), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(srv, 40, 0), 0);
	r.fail_me = sib;
	r.loop = l;
	r.under = late_parent;
	ck_assert_int_eq(rsc_defer(srv, reaching_exit, &r, NULL), 0);
	ck_assert_int_eq(rsc_scope_on_close(sib, note_closed, &csib), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 10000, note_closed, &csrv), 0);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_lt(rsc_loop_shutdown(l, &err), 0);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(csrv.calls, 1);
	ck_assert_int_eq(csrv.status, -ETIMEDOUT);
	ck_assert_int_eq(r1.calls, 1);
	ck_assert_int_eq(r1.res, -ECANCELED);
	ck_assert_int_eq(r2.calls, 1);
	ck_assert_int_eq(r2.res, -ECANCELED);
	ck_assert_int_eq(csib.calls, 1);
	/* Below the shutdown's unwind, not reached yet: failed, or refused. */
	ck_assert(r.fail_ret == 0 || r.fail_ret == -EALREADY);
	if (r.fail_ret == 0)
		ck_assert_int_eq(csib.status, -EPIPE);
	ck_assert(r.open_ret == 0 || r.open_ret == -ESHUTDOWN || r.open_ret == -EALREADY);
	ck_assert_ptr_nonnull(err);
	rsc_error_free(err);
	assert_peer_sees_eof(sv1[1]);
	assert_peer_sees_eof(sv2[1]);
	close(sv1[1]);
	close(sv2[1]);
	ck_assert_int_eq(t_fd_count(), fds);
}
END_TEST

/* ------------------------------------------------------------ the suite */

Suite *make_hostile_mix_suite(void)
{
	Suite *s = suite_create("hostile_mix");
	TCase *tc = tcase_create("mix");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, moved_under_an_earlier_deadline_parent_is_cut_by_it);
	tcase_add_test(tc, moved_out_from_under_a_deadline_parent_outlives_it);
	tcase_add_test(tc, moved_under_a_later_parent_keeps_its_own_earlier_deadline);
	t_add_socket_test(tc, scope_moved_with_an_acquire_in_flight_under_a_deadline);
	tcase_add_test(tc, moved_multishot_follows_its_entry_to_the_new_scopes_deadline);
	tcase_add_test(tc, recv_buffers_free_again_after_a_deadline_cut_the_multishots);
	tcase_add_test(tc, grace_refuses_detach_and_move_and_a_deadline_cuts_it);
	tcase_add_test(tc, parents_close_keeps_the_deadline_of_a_child_in_its_grace);
	tcase_add_test(tc, failure_below_a_grace_under_a_closing_parent_unwinds_at_once);
	tcase_add_test(tc, grace_under_a_closing_parent_still_takes_replies_and_early_releases);
	tcase_add_test(tc, scope_below_a_grace_under_a_closing_parent_can_still_be_closed);
	tcase_add_test(tc, idle_connections_time_out_in_a_grace_their_parent_waits_for);
	tcase_add_test(tc, grace_bound_ends_while_an_early_exit_is_in_flight);
	tcase_add_test(tc, deadline_set_in_an_enter_hook_passes_and_the_exit_sees_it_once);
	tcase_add_test(tc, deadline_set_in_an_enter_hook_cancels_that_hooks_acquire);
	tcase_add_test(tc, deadline_set_in_an_early_release_exit_passes_without_a_second_exit);
	tcase_add_test(tc, deadlines_set_from_on_close_and_from_a_post_pass_once);
	tcase_add_test(tc, on_close_inside_a_deadline_batch_clears_and_arms_deadlines);
	tcase_add_test(tc, defer_exit_fails_a_sibling_and_closes_its_own_parent);
	tcase_add_test(tc, defer_exit_fails_its_own_parent_during_the_childs_close);
	tcase_add_test(tc, defer_exit_opens_a_scope_that_lives_on_after_the_unwind);
	tcase_add_test(tc, defer_exit_fails_an_older_sibling_during_their_parents_unwind);
	tcase_add_test(tc, shutdown_over_a_grace_a_deadline_a_move_and_a_reaching_defer);
	t_add_test_if(tc, shutdown_during_accepts_a_grace_and_a_deadline, t_has_accept_multishot(),
		      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(tc, shared_ring_deadline_passes_while_the_applications_chain_is_open);
	tcase_add_test(tc, shared_ring_drain_while_scopes_open_fail_and_time_out);
	tcase_add_test(tc, graceful_close_of_an_inbox_scope_ends_and_frees_the_handed_slot);
	t_add_socket_test(tc, direct_socket_with_multishot_moved_under_a_deadline_frees_its_slot);
	tcase_add_test(tc, hand_over_racing_the_senders_deadline_leaves_one_owner);
	tcase_add_test(tc, install_racing_its_scopes_deadline_leaves_nothing_open);
	tcase_add_test(tc, release_or_fail_right_after_a_hand_over_leaves_one_owner);
	t_add_test_if(tc, accept_under_a_deadline_and_a_grace_while_clients_keep_coming,
		      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(tc, enter_hook_ending_its_own_scope_cancels_its_acquire);
	tcase_add_test(tc, entry_moved_out_before_a_grace_does_not_hold_it);
	tcase_add_test(tc, shared_ring_graceful_close_while_the_applications_chain_is_open);
	tcase_add_test(tc, shared_ring_post_sets_a_deadline_that_passes);
	suite_add_tcase(s, tc);
	return s;
}
