// SPDX-License-Identifier: MIT
/*
 * Black-box acceptance of servers, direct descriptors and chains, written
 * from the pages alone (rsc_scope_set_deadline(3), rsc_scope_close_graceful(3),
 * rsc_loop_post(3), rsc_loop_fd(3), rsc_loop_new_from_ring(3), rsc_accept(3),
 * rsc_connect(3), rsc_entry_cancel_io(3), rsc_shutdown(3), rsc_entry_install(3),
 * rsc_inbox(3), rsc_chain_new(3)): each test checks one promise the way a
 * demanding user would, through side effects (descriptor counts, callback
 * counts and results, error chains, slots in use).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"

/* What a scope's close callback heard. */
struct close_rec {
	int calls;
	int status;
	char op[32];
	char entry[32];
	int depth;
};

static void on_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct close_rec *c = data;
	const char *en = err ? rsc_error_entry(err) : NULL;

	(void)s;
	c->calls++;
	c->status = status;
	c->depth = err ? rsc_error_depth(err) : 0;
	snprintf(c->op, sizeof(c->op), "%s", err ? rsc_error_op(err) : "");
	snprintf(c->entry, sizeof(c->entry), "%s", en ? en : "");
}

/* What a tracked op's callback heard. */
struct io_rec {
	int calls;
	int res;
};

static void on_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct io_rec *r = data;

	(void)e;
	(void)buf;
	r->calls++;
	r->res = res;
}

static void on_entry_done(struct rsc_entry *e, int res, void *data)
{
	on_io(e, res, NULL, data);
}

/* Run the test loop until *@flag reaches @want, for at most @ms. */
static void run_until(const int *flag, int want, unsigned ms)
{
	struct t_guard g;

	t_guard_start(&g, t_loop, ms);
	while (*flag < want && !g.fired)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	t_guard_stop(&g);
	ck_assert_msg(*flag >= want, "waited %u ms: %d of %d", ms, *flag, want);
}

/*
 * The same while another thread must make progress: never blocks in
 * io_uring_enter(2), which valgrind runs holding its one-thread lock (the
 * other thread would wait for the guard).
 */
static void run_until_threads(const int *flag, int want, unsigned ms)
{
	long t0 = t_now_ms();

	while (*flag < want && t_now_ms() - t0 < (long)ms) {
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		if (*flag < want)
			usleep(500);
	}
	ck_assert_msg(*flag >= want, "waited %u ms: %d of %d", ms, *flag, want);
}

/* Run the test loop for about @ms, whatever happens. */
static void run_for(unsigned ms)
{
	struct t_guard g;

	t_guard_start(&g, t_loop, ms);
	while (!g.fired)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	t_guard_stop(&g);
}

/* An accept callback that counts its calls (connections close with their parent). */
struct acc_rec {
	int calls;
	int conns;
	int res;
	int after_last;
	struct rsc_scope *last_scope;
	struct rsc_entry *last_conn;
};

static void count_accept(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *conn,
			 void *data)
{
	struct acc_rec *a = data;

	(void)l;
	if (a->res == -ECANCELED && a->calls)
		a->after_last++;
	a->calls++;
	a->res = res;
	if (res >= 0) {
		a->conns++;
		a->last_scope = cs;
		a->last_conn = conn;
	}
}

static bool peer_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* ---------------------------------------------------------------- deadlines */

START_TEST(deadline_cancels_recv_and_unwinds_with_etimedout)
{
	struct close_rec c = { 0 };
	struct io_rec r = { 0 };
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *e;
	long long d0 = rsc_loop_counter(t_loop, RSC_CTR_DEADLINES);
	char buf[16];
	long t0;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dl", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_set_deadline(s, 50, 0), 0);
	run_until(&c.calls, 1, 3000);
	/* Never early. */
	ck_assert_int_ge(t_now_ms() - t0, 50);
	ck_assert_int_eq(r.calls, 1);
	ck_assert(r.res == -ECANCELED || r.res == -EINTR);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_str_eq(c.op, "deadline");
	ck_assert_str_eq(c.entry, "");
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), d0 + 1);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 10, 0), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ETIMEDOUT);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "deadline");
	rsc_error_free(err);
	/* The peer sees the end: the entry's descriptor was closed. */
	ck_assert_int_eq(read(peer, buf, sizeof(buf)), 0);
	close(peer);
}
END_TEST

START_TEST(deadline_move_on_unwinds_clean_and_counts)
{
	struct close_rec c = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	long long d0 = rsc_loop_counter(t_loop, RSC_CTR_DEADLINES);
	char buf[16];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "mo", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 20, RSC_DEADLINE_MOVE_ON), 0);
	run_until(&c.calls, 1, 3000);
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(c.depth, 0);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), d0 + 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

START_TEST(deadline_rearmed_later_does_not_fire_at_the_first_time)
{
	struct close_rec c = { 0 };
	struct rsc_scope *s;
	long long sqes;
	int peer;

	/* A loop woken by an eventfd arms its poll on its first turns: not ours to count. */
	t_settle_posts(t_loop);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "re", &s), 0);
	(void)t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 30, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	sqes = rsc_loop_counter(t_loop, RSC_CTR_SQES);
	/* Later: only the heap moves, no SQE. */
	ck_assert_int_eq(rsc_scope_set_deadline(s, 5000, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_SQES), sqes);
	run_for(150);
	ck_assert_int_eq(c.calls, 0);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	/* Cleared: the loop's timer goes and nothing keeps it alive. */
	ck_assert_int_eq(rsc_scope_set_deadline(s, 0, RSC_DEADLINE_MOVE_ON), 0);
	t_run();
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
	ck_assert_int_eq(c.calls, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

START_TEST(deadline_rearmed_earlier_fires_at_the_new_time)
{
	struct close_rec c = { 0 };
	struct rsc_scope *s;
	long t0;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "early", &s), 0);
	(void)t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 60000, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_set_deadline(s, 40, 0), 0);
	run_until(&c.calls, 1, 3000);
	ck_assert_int_ge(t_now_ms() - t0, 40);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
	close(peer);
}
END_TEST

START_TEST(deadline_bad_flags_leave_the_old_deadline)
{
	struct close_rec c = { 0 };
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_set_deadline(NULL, 10, 0), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "bad", &s), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 30, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 0, 0x80), -EINVAL);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 100000, 0x2), -EINVAL);
	run_until(&c.calls, 1, 3000);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 10, 0), -ESTALE);
}
END_TEST

START_TEST(deadline_refused_while_closing_or_failed)
{
	struct rsc_scope *s, *f;

	struct close_rec c = { 0 };
	long t0;
	int ret;

	/* Close requested, unwind not started: the page lets a deadline be
	 * set (it ends when the unwind starts), and it changes nothing. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "closing", &s), 0);
	ck_assert_int_eq(rsc_scope_close(s, on_closed, &c), 0);
	ret = rsc_scope_set_deadline(s, 60000, 0);
	ck_assert(ret == 0 || ret == -ESHUTDOWN);
	t0 = t_now_ms();
	t_run();
	ck_assert_int_lt(t_now_ms() - t0, 2000);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "failed", &f), 0);
	ck_assert_int_eq(rsc_scope_fail(f, -EIO, "body"), 0);
	ret = rsc_scope_set_deadline(f, 10, 0);
	ck_assert(ret == 0 || ret == -ESHUTDOWN);
	t_run();
	ck_assert_int_eq(rsc_scope_set_deadline(f, 10, 0), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_close_wait(f, NULL), -EIO);
}
END_TEST

/* The parent's deadline takes the child along, however late the child's. */
START_TEST(deadline_parent_earlier_wins_over_child)
{
	struct close_rec pc = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *p, *ch;
	struct rsc_entry *e;
	char buf[8];
	long t0;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "parent", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "child", &ch), 0);
	e = t_adopted_pair(ch, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(ch, 60000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 40, 0), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, on_closed, &pc), 0);
	t0 = t_now_ms();
	run_until(&pc.calls, 1, 3000);
	ck_assert_int_lt(t_now_ms() - t0, 3000);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(pc.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	/* The child's own deadline ended with it: the loop runs dry at once. */
	t0 = t_now_ms();
	t_run();
	ck_assert_int_lt(t_now_ms() - t0, 2000);
	ck_assert_int_eq(rsc_scope_state(ch), -ESTALE);
	close(peer);
}
END_TEST

/* A child whose earlier deadline passes unwinds alone; the parent stays open. */
START_TEST(deadline_child_earlier_unwinds_alone)
{
	struct close_rec cc = { 0 }, pc = { 0 };
	struct rsc_scope *p, *ch;
	int peer1, peer2;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "parent", &p), 0);
	(void)t_adopted_pair(p, &peer1);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "child", &ch), 0);
	(void)t_adopted_pair(ch, &peer2);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 60000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(ch, 30, 0), 0);
	ck_assert_int_eq(rsc_scope_on_close(ch, on_closed, &cc), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, on_closed, &pc), 0);
	run_until(&cc.calls, 1, 3000);
	ck_assert_int_eq(cc.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_state(p), RSC_SCOPE_OPEN);
	ck_assert_int_eq(pc.calls, 0);
	/* The child's descriptor is closed, the parent's is not. */
	ck_assert(peer_readable(peer2, 1000));
	ck_assert(!peer_readable(peer1, 0));
	/* Closed while still waiting for its close: its error reaches the parent. */
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	ck_assert_int_eq(pc.calls, 1);
	close(peer1);
	close(peer2);
}
END_TEST

/* An acquire in flight when the deadline passes: cancelled, its socket closed. */
START_TEST(deadline_cancels_a_connect_in_flight_and_closes_its_socket)
{
	struct sockaddr_un sun;
	struct close_rec c = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *conn;
	int fill[64], nfill, lfd, before;

	lfd = t_full_unix_listener(&sun, fill, &nfill);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dial", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 0, 0, &conn), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 50, 0), 0);
	run_until(&c.calls, 1, 3000);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_ne(rsc_entry_state(conn), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
	ck_assert_int_eq(t_fd_count(), before);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* A deadline that passes during a graceful close ends the grace at once. */
START_TEST(deadline_ends_an_unbounded_grace)
{
	struct close_rec c = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[8];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 60, 0), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, on_closed, &c), 0);
	run_until(&c.calls, 1, 3000);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(r.calls, 1);
	ck_assert(r.res == -ECANCELED || r.res == -EINTR);
	close(peer);
}
END_TEST

/* ----------------------------------------------------------- graceful close */

struct stats_rec {
	struct close_rec c;
	int ret;
	unsigned drained, cancelled, failed;
};

static void on_closed_stats(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct stats_rec *st = data;

	on_closed(s, status, err, &st->c);
	st->ret = rsc_scope_close_stats(s, &st->drained, &st->cancelled, &st->failed);
}

struct replier {
	struct rsc_entry *e;
	char in[16];
	const char *out;
	int recv_res;
	int send_ret;
	struct io_rec sent;
};

static void reply_on_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct replier *rp = data;

	(void)buf;
	rp->recv_res = res;
	if (res > 0)
		rp->send_ret = rsc_send(e, rp->out, (unsigned)strlen(rp->out), 0, on_io, &rp->sent);
}

/*
 * Three connections mid-request: one whose request arrives during the grace
 * (and is answered then), one released early, one idle until the grace ends.
 */
START_TEST(graceful_stats_count_drained_and_cancelled_exactly)
{
	struct stats_rec st = { 0 };
	struct replier a = { .out = "reply" };
	struct io_rec rb = { 0 }, rc = { 0 }, relb = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *b, *cc;
	char bb[8], bc[8], got[16];
	int pa, pb, pc;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	a.e = t_adopted_pair(s, &pa);
	b = t_adopted_pair(s, &pb);
	cc = t_adopted_pair(s, &pc);
	ck_assert_int_eq(rsc_recv(a.e, a.in, sizeof(a.in), 0, reply_on_recv, &a), 0);
	ck_assert_int_eq(rsc_recv(b, bb, sizeof(bb), 0, on_io, &rb), 0);
	ck_assert_int_eq(rsc_recv(cc, bc, sizeof(bc), 0, on_io, &rc), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(s, 300, on_closed_stats, &st), 0);
	ck_assert_int_eq(st.c.calls, 0);
	/* During the grace: nothing new, but the work may go on. */
	ck_assert_int_eq(rsc_entry_detach(cc), -EALREADY);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 10, NULL, NULL), -EALREADY);
	ck_assert_int_eq(write(pa, "GET", 3), 3);
	ck_assert_int_eq(rsc_entry_release(b, on_entry_done, &relb), 0);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_ge(t_now_ms() - t0, 300);
	ck_assert_int_eq(a.recv_res, 3);
	ck_assert_int_eq(a.send_ret, 0);
	ck_assert_int_eq(a.sent.calls, 1);
	ck_assert_int_eq(a.sent.res, 5);
	ck_assert_int_eq(read(pa, got, sizeof(got)), 5);
	ck_assert_int_eq(relb.calls, 1);
	ck_assert_int_eq(relb.res, 0);
	ck_assert_int_eq(rc.calls, 1);
	ck_assert(rc.res == -ECANCELED || rc.res == -EINTR);
	ck_assert_int_eq(st.ret, 0);
	ck_assert_uint_eq(st.drained, 2);
	ck_assert_uint_eq(st.cancelled, 1);
	ck_assert_uint_eq(st.failed, 0);
	ck_assert_int_eq(st.c.status, 0);
	close(pa);
	close(pb);
	close(pc);
}
END_TEST

START_TEST(graceful_refuses_new_work_in_the_subtree)
{
	struct stats_rec st = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *s, *ch, *x;
	struct rsc_entry *e, *ne, *other;
	char buf[8];
	int peer, peer2;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "kid", &ch), 0);
	e = t_adopted_pair(ch, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "elsewhere", &x), 0);
	other = t_adopted_pair(x, &peer2);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 2000, on_closed_stats, &st), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "late", &x), -ESHUTDOWN);
	ck_assert_int_eq(rsc_open(ch, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &ne), -ESHUTDOWN);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &ne), -ESHUTDOWN);
	ck_assert_int_eq(rsc_entry_move(e, rsc_entry_scope(other)), -EALREADY);
	ck_assert_int_eq(rsc_entry_move(other, ch), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(ch, NULL), -EALREADY);
	/* New I/O on an entry of the subtree is allowed: a reply. */
	ck_assert_int_eq(rsc_send(e, "x", 1, 0, on_io, &r), 0);
	ck_assert_int_eq(write(peer, "q", 1), 1);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_eq(r.calls, 2);
	ck_assert_uint_eq(st.drained, 1);
	ck_assert_uint_eq(st.cancelled, 0);
	ck_assert_int_eq(rsc_scope_close_wait(rsc_entry_scope(other), NULL), 0);
	close(peer);
	close(peer2);
}
END_TEST

/* A single-shot accept in flight: cancelled, one callback, counted nowhere. */
START_TEST(graceful_cancels_accept_with_one_callback_and_no_count)
{
	struct stats_rec st = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rsc_entry *l;
	struct acc_rec acc = { 0 };
	int before = t_fd_count();
	int cli;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 16, &at);
	ck_assert_int_eq(rsc_accept(l, 0, count_accept, &acc), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 1000, on_closed_stats, &st), 0);
	ck_assert_int_eq(rsc_accept(l, 0, count_accept, &acc), -ESHUTDOWN);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_eq(acc.calls, 1);
	ck_assert_int_eq(acc.res, -ECANCELED);
	ck_assert_uint_eq(st.drained, 0);
	ck_assert_uint_eq(st.cancelled, 0);
	ck_assert_int_eq(st.c.status, 0);
	/* The listener is gone: a client is refused. */
	cli = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(cli, (struct sockaddr *)&at, sizeof(at)), -1);
	ck_assert_int_eq(errno, ECONNREFUSED);
	close(cli);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* Nothing in flight: unwinds on the next turn, never inside the call. */
START_TEST(graceful_without_io_closes_on_the_next_turn)
{
	struct stats_rec st = { 0 };
	struct rsc_scope *s;
	long t0;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "quiet", &s), 0);
	(void)t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 60000, on_closed_stats, &st), 0);
	ck_assert_int_eq(st.c.calls, 0);
	run_until(&st.c.calls, 1, 2000);
	ck_assert_uint_eq(st.drained + st.cancelled + st.failed, 0);
	/* The 60 s grace timer went with the close. */
	t0 = t_now_ms();
	t_run();
	ck_assert_int_lt(t_now_ms() - t0, 2000);
	ck_assert_int_eq(read(peer, &st, 1), 0);
	close(peer);
}
END_TEST

static int fail_eio(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return -EIO;
}

static int exit_ok(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return 0;
}

START_TEST(graceful_stats_count_failed_exits)
{
	struct stats_rec st = { 0 };
	struct rsc_scope *s, *ch;
	struct rsc_entry *d;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "kid", &ch), 0);
	ck_assert_int_eq(rsc_defer(ch, fail_eio, NULL, &d), 0);
	ck_assert_int_eq(rsc_defer(s, fail_eio, NULL, &d), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 500, on_closed_stats, &st), 0);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_eq(st.ret, 0);
	ck_assert_uint_eq(st.failed, 2);
	ck_assert_int_eq(st.c.status, -EIO);
}
END_TEST

START_TEST(close_stats_arguments_and_plain_close)
{
	struct stats_rec st = { .drained = 7, .cancelled = 7 };
	struct rsc_scope *s;
	struct io_rec r = { 0 };
	struct rsc_entry *e;
	char buf[4];
	int peer;

	ck_assert_int_eq(rsc_scope_close_stats(NULL, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "plain", &s), 0);
	ck_assert_int_eq(rsc_scope_close_stats(s, NULL, NULL, NULL), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_close(s, on_closed_stats, &st), 0);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_uint_eq(st.drained, 0);
	ck_assert_uint_eq(st.cancelled, 0);
	ck_assert_int_eq(rsc_scope_close_stats(s, NULL, NULL, NULL), -ESTALE);
	close(peer);
}
END_TEST

/* grace_ms bounds the wait: the idle receive is cut when it ends, not before. */
START_TEST(graceful_bound_cuts_idle_io_at_the_grace)
{
	struct stats_rec st = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[4];
	long t0, took;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(s, 120, on_closed_stats, &st), 0);
	run_until(&st.c.calls, 1, 3000);
	took = t_now_ms() - t0;
	ck_assert_int_ge(took, 120);
	ck_assert_int_eq(r.calls, 1);
	ck_assert(r.res == -ECANCELED || r.res == -EINTR);
	ck_assert_uint_eq(st.drained, 0);
	ck_assert_uint_eq(st.cancelled, 1);
	close(peer);
}
END_TEST

/* An ancestor's close waits for a grace below it; its failure ends it. */
START_TEST(graceful_child_survives_parent_close_but_not_parent_fail)
{
	struct stats_rec st = { 0 }, st2 = { 0 };
	struct close_rec pc = { 0 }, pc2 = { 0 };
	struct io_rec r = { 0 }, r2 = { 0 };
	struct rsc_scope *p, *ch, *p2, *ch2;
	struct rsc_entry *e, *e2;
	char buf[4], buf2[4];
	int peer, peer2;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &ch), 0);
	e = t_adopted_pair(ch, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(ch, 0, on_closed_stats, &st), 0);
	ck_assert_int_eq(rsc_scope_close(p, on_closed, &pc), 0);
	run_for(100);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_int_eq(pc.calls, 0);
	ck_assert_int_eq(write(peer, "ab", 2), 2);
	run_until(&pc.calls, 1, 3000);
	ck_assert_int_eq(r.res, 2);
	ck_assert_int_eq(st.c.calls, 1);
	ck_assert_uint_eq(st.drained, 1);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p2", &p2), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p2, "c2", &ch2), 0);
	e2 = t_adopted_pair(ch2, &peer2);
	ck_assert_int_eq(rsc_recv(e2, buf2, sizeof(buf2), 0, on_io, &r2), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(ch2, 0, on_closed_stats, &st2), 0);
	ck_assert_int_eq(rsc_scope_on_close(p2, on_closed, &pc2), 0);
	ck_assert_int_eq(rsc_scope_fail(p2, -EPIPE, "body"), 0);
	run_until(&pc2.calls, 1, 3000);
	ck_assert_int_eq(st2.c.calls, 1);
	ck_assert(r2.res == -ECANCELED || r2.res == -EINTR);
	ck_assert_uint_eq(st2.cancelled, 1);
	ck_assert_int_eq(rsc_scope_close_wait(p2, NULL), -EPIPE);
	close(peer);
	close(peer2);
}
END_TEST

START_TEST(graceful_of_a_failed_scope_is_a_plain_close)
{
	struct stats_rec st = { 0 };
	struct rsc_scope *s;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "f", &s), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, NULL), 0);
	t_run();
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(s, 60000, on_closed_stats, &st), 0);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_lt(t_now_ms() - t0, 2000);
	ck_assert_int_eq(st.c.status, -EPROTO);
	ck_assert_str_eq(st.c.op, "fail");
}
END_TEST

/* -------------------------------------------------------------------- posts */

#define POSTERS 4
#define POSTS_EACH 250

struct post_arg {
	int tid;
	int seq;
};

struct post_state {
	struct rsc_loop *loop;
	pthread_t loop_thread;
	struct post_arg args[POSTERS][POSTS_EACH];
	int last[POSTERS];
	int ran;
	int out_of_order;
	int off_thread;
	atomic_int post_errors;
};

static struct post_state *ps;

static void count_post(struct rsc_loop *loop, void *arg)
{
	struct post_arg *a = arg;

	if (loop != ps->loop || !pthread_equal(pthread_self(), ps->loop_thread))
		ps->off_thread++;
	if (a->seq != ps->last[a->tid] + 1)
		ps->out_of_order++;
	ps->last[a->tid] = a->seq;
	ps->ran++;
}

static void *poster(void *arg)
{
	struct post_arg *row = arg;
	int i;

	for (i = 0; i < POSTS_EACH; i++)
		if (rsc_loop_post(ps->loop, count_post, &row[i]) != 0)
			atomic_fetch_add(&ps->post_errors, 1);
	return NULL;
}

START_TEST(posts_from_four_threads_run_once_each_in_order_on_the_loop)
{
	pthread_t th[POSTERS];
	int i, j;

	ps = calloc(1, sizeof(*ps));
	ck_assert_ptr_nonnull(ps);
	ps->loop = t_loop;
	ps->loop_thread = pthread_self();
	for (i = 0; i < POSTERS; i++) {
		ps->last[i] = -1;
		for (j = 0; j < POSTS_EACH; j++)
			ps->args[i][j] = (struct post_arg){ i, j };
	}
	for (i = 0; i < POSTERS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, poster, ps->args[i]), 0);
	run_until_threads(&ps->ran, POSTERS * POSTS_EACH, 20000);
	for (i = 0; i < POSTERS; i++)
		pthread_join(th[i], NULL);
	t_run();
	ck_assert_int_eq(atomic_load(&ps->post_errors), 0);
	ck_assert_int_eq(ps->ran, POSTERS * POSTS_EACH);
	ck_assert_int_eq(ps->out_of_order, 0);
	ck_assert_int_eq(ps->off_thread, 0);
	free(ps);
	ps = NULL;
}
END_TEST

struct self_post {
	int ran;
	int inner_ret;
	int inner_ran;
	int again;
};

static void inner_post(struct rsc_loop *loop, void *arg)
{
	struct self_post *sp = arg;

	(void)loop;
	sp->inner_ran++;
}

static void outer_post(struct rsc_loop *loop, void *arg)
{
	struct self_post *sp = arg;

	sp->ran++;
	if (sp->again)
		sp->inner_ret = rsc_loop_post(loop, inner_post, sp);
	/* The helpers that block refuse from a post. */
	ck_assert_int_eq(rsc_loop_run(loop, RSC_RUN_NOWAIT), -EDEADLK);
}

START_TEST(post_never_runs_inside_the_call_and_may_post_again)
{
	struct self_post sp = { .again = 1 };

	ck_assert_int_eq(rsc_loop_post(NULL, outer_post, &sp), -EINVAL);
	ck_assert_int_eq(rsc_loop_post(t_loop, NULL, &sp), -EINVAL);
	ck_assert_int_eq(rsc_loop_post(t_loop, outer_post, &sp), 0);
	ck_assert_int_eq(sp.ran, 0);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 1);
	run_until(&sp.inner_ran, 1, 3000);
	ck_assert_int_eq(sp.ran, 1);
	ck_assert_int_eq(sp.inner_ret, 0);
}
END_TEST

START_TEST(posts_queued_at_close_run_and_a_post_from_them_is_refused)
{
	struct self_post sp = { .again = 1 };
	struct rsc_loop *l;

	ck_assert_int_eq(rsc_loop_new(&l, 0, 0), 0);
	ck_assert_int_eq(rsc_loop_post(l, outer_post, &sp), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(sp.ran, 1);
	ck_assert_int_eq(sp.inner_ret, -ESHUTDOWN);
	ck_assert_int_eq(sp.inner_ran, 0);
}
END_TEST

struct late_poster {
	struct rsc_loop *loop;
	struct rsc_scope *srv;
	int ret;
	struct stats_rec st;
};

static void stop_server(struct rsc_loop *loop, void *arg)
{
	struct late_poster *lp = arg;

	(void)loop;
	lp->ret = rsc_scope_close_graceful(lp->srv, 1000, on_closed_stats, &lp->st);
}

static void *post_after_a_while(void *arg)
{
	struct late_poster *lp = arg;

	usleep(60 * 1000);
	if (rsc_loop_post(lp->loop, stop_server, lp) != 0)
		lp->ret = -1000;
	return NULL;
}

/* A loop asleep in rsc_loop_run() wakes for a post: the way to stop a server. */
START_TEST(post_wakes_a_sleeping_loop_to_stop_a_server)
{
	struct late_poster lp = { .loop = t_loop, .ret = 1 };
	struct sockaddr_in at;
	struct acc_rec acc = { 0 };
	struct rsc_entry *l;
	pthread_t th;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &lp.srv), 0);
	l = t_listen_on_loopback(lp.srv, 8, &at);
	ck_assert_int_eq(rsc_accept(l, 0, count_accept, &acc), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(pthread_create(&th, NULL, post_after_a_while, &lp), 0);
	/* Only the accept is in flight: the post alone can end this. */
	while (lp.st.c.calls == 0 && t_now_ms() - t0 < 5000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(lp.ret, 0);
	ck_assert_int_eq(lp.st.c.calls, 1);
	ck_assert_int_eq(acc.calls, 1);
	ck_assert_int_eq(acc.res, -ECANCELED);
}
END_TEST

/* ------------------------------------------------------ a pollable loop (fd) */

struct wake_arg {
	struct rsc_loop *loop;
	int ran;
};

static void note_post(struct rsc_loop *loop, void *arg)
{
	struct wake_arg *w = arg;

	(void)loop;
	w->ran++;
}

static void *post_later(void *arg)
{
	struct wake_arg *w = arg;

	usleep(50 * 1000);
	if (rsc_loop_post(w->loop, note_post, w) != 0)
		w->ran = -1000;
	return NULL;
}

static void drive_by_fd(struct rsc_loop *l, int fd, const int *flag, int want)
{
	int i;

	for (i = 0; i < 200 && *flag < want; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 50) < 0)
			ck_assert_int_eq(errno, EINTR);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_ge(*flag, want);
}

START_TEST(loop_fd_polls_readable_for_work_and_posts)
{
	struct wake_arg w = { 0 };
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int before = t_fd_count();
	int fd, entered = 0, feats;
	pthread_t th;

	ck_assert_int_eq(rsc_loop_fd(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_fd(t_loop), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_new(&l, 64, RSC_LOOP_POLLABLE), 0);
	w.loop = l;
	fd = rsc_loop_fd(l);
	ck_assert_int_ge(fd, 0);
	feats = rsc_loop_features(l);
	ck_assert(feats & RSC_FEAT_POLLABLE);
	ck_assert(!(feats & RSC_FEAT_DEFER_TASKRUN));
	ck_assert_int_eq(rsc_scope_open(l, NULL, "host", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), 0);
	/* SQEs prepared: the host must hear it. */
	ck_assert(peer_readable(fd, 0));
	for (int i = 0; i < 200 && !entered; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		(void)poll(&p, 1, 50);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		entered = rsc_entry_state(e) == RSC_ENTERED;
	}
	ck_assert(entered);
	/* Nothing left to do: the run cleared it. */
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert(!peer_readable(fd, 0));
	/* A post from another thread wakes a host asleep in poll(2). */
	ck_assert_int_eq(pthread_create(&th, NULL, post_later, &w), 0);
	ck_assert(peer_readable(fd, 3000));
	drive_by_fd(l, fd, &w.ran, 1);
	pthread_join(th, NULL);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert(peer_readable(fd, 0));
	while (rsc_loop_alive(l) > 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		(void)poll(&p, 1, 50);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* -------------------------------------------------------------- shared ring */

struct shared {
	struct io_uring ring;
	struct rsc_loop *loop;
	int app_cqes;
	int app_res;
	unsigned long long app_ud;
	struct io_uring_cqe saved;
	int saved_ok;
};

/* Reap what is there (waiting up to @ms for one), handing each CQE over. */
static void shared_reap(struct shared *sh, unsigned ms)
{
	struct __kernel_timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int ret;

	ret = io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1, &ts, NULL);
	ck_assert(ret >= 0 || ret == -ETIME || ret == -EINTR);
	io_uring_for_each_cqe(&sh->ring, head, cqe) {
		ret = rsc_loop_dispatch(sh->loop, cqe);
		ck_assert_int_ge(ret, 0);
		if (ret == 0) {
			sh->app_cqes++;
			sh->app_res = cqe->res;
			sh->app_ud = cqe->user_data;
		} else if (!sh->saved_ok) {
			sh->saved = *cqe;
			sh->saved_ok = 1;
		}
		n++;
	}
	io_uring_cq_advance(&sh->ring, n);
	ck_assert_int_ge(rsc_loop_run(sh->loop, RSC_RUN_NOWAIT), 0);
}

static void shared_post(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	(*(int *)arg)++;
}

START_TEST(shared_ring_never_takes_the_applications_completions)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	struct io_uring_sqe *sqe;
	struct io_uring_cqe fake = { 0 };
	struct rsc_loop *two;
	struct rsc_scope *s;
	struct rsc_entry *e;
	char appbuf[8];
	int p[2], i, posted = 0;
	int before = t_fd_count();

	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(io_uring_queue_init(64, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	ck_assert(rsc_loop_features(sh->loop) & RSC_FEAT_SHARED_RING);
	ck_assert_int_eq(rsc_loop_new_from_ring(&two, &sh->ring, 0), -EBUSY);
	ck_assert_ptr_null(two);
	ck_assert_int_eq(rsc_loop_fd(sh->loop), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_run(sh->loop, RSC_RUN_DEFAULT), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_run(sh->loop, RSC_RUN_ONCE), -EOPNOTSUPP);
	/* The application's own read, in flight the whole time. */
	sqe = io_uring_get_sqe(&sh->ring);
	io_uring_prep_read(sqe, p[0], appbuf, sizeof(appbuf), 0);
	io_uring_sqe_set_data(sqe, appbuf);
	ck_assert_int_eq(io_uring_submit(&sh->ring), 1);
	ck_assert_int_eq(rsc_scope_open(sh->loop, NULL, "guest", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_wait(e), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_run(sh->loop, RSC_RUN_NOWAIT), 1);
	for (i = 0; i < 100 && rsc_entry_state(e) != RSC_ENTERED; i++)
		shared_reap(sh, 100);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(sh->app_cqes, 0);
	ck_assert(sh->saved_ok);
	/* Dispatched once already: a second time is refused, nothing runs. */
	ck_assert_int_eq(rsc_loop_dispatch(sh->loop, &sh->saved), -EINVAL);
	fake.user_data = (1ULL << 63) | 0x12345ULL;
	ck_assert_int_eq(rsc_loop_dispatch(sh->loop, &fake), -EINVAL);
	fake.user_data = 42;
	ck_assert_int_eq(rsc_loop_dispatch(sh->loop, &fake), 0);
	ck_assert_int_eq(rsc_loop_dispatch(NULL, &fake), -EINVAL);
	ck_assert_int_eq(rsc_loop_dispatch(sh->loop, NULL), -EINVAL);
	if (t_has_post_msg_ring()) {
		ck_assert_int_eq(rsc_loop_post(sh->loop, shared_post, &posted), 0);
		for (i = 0; i < 100 && posted == 0; i++)
			shared_reap(sh, 100);
		ck_assert_int_eq(posted, 1);
	}
	/* The application's read completes and reaches the application. */
	ck_assert_int_eq(write(p[1], "app", 3), 3);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	for (i = 0; i < 100 && (sh->app_cqes == 0 || rsc_loop_alive(sh->loop) > 0); i++)
		shared_reap(sh, 100);
	ck_assert_int_eq(sh->app_cqes, 1);
	ck_assert_int_eq(sh->app_res, 3);
	ck_assert(sh->app_ud == (unsigned long long)(uintptr_t)appbuf);
	ck_assert_int_eq(rsc_loop_alive(sh->loop), 0);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	/* The ring is still the application's, and works. */
	sqe = io_uring_get_sqe(&sh->ring);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 7);
	{
		struct io_uring_cqe *cqe;

		ck_assert_int_eq(io_uring_submit_and_wait(&sh->ring, 1), 1);
		ck_assert_int_eq(io_uring_peek_cqe(&sh->ring, &cqe), 0);
		ck_assert(cqe->user_data == 7);
		io_uring_cqe_seen(&sh->ring, cqe);
	}
	io_uring_queue_exit(&sh->ring);
	close(p[0]);
	close(p[1]);
	free(sh);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ------------------------------------------------- listen, accept, connect */

static struct sockaddr_in closed_port(void)
{
	struct sockaddr_in a = t_loopback(0);
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return a;
}

START_TEST(connect_refused_fails_the_scope_and_closes_its_socket)
{
	struct sockaddr_in to = closed_port();
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *c;
	int before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dial", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&to, sizeof(to), 1000, 0, &c), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_state(c), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_fd(c), -ECONNREFUSED);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ECONNREFUSED);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
}
END_TEST

START_TEST(connect_and_listen_refuse_bad_arguments)
{
	struct sockaddr_in in = t_loopback(1);
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct sockaddr sa = { .sa_family = AF_APPLETALK };
	struct rsc_scope *s;
	struct rsc_entry *e = (struct rsc_entry *)1;
	int before = t_fd_count();

	ck_assert_int_eq(rsc_connect(NULL, (struct sockaddr *)&in, sizeof(in), 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "args", &s), 0);
	ck_assert_int_eq(rsc_connect(s, NULL, sizeof(in), 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&in, sizeof(in) - 1, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&in, 129, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&un, 2, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, &sa, sizeof(sa), 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&in, sizeof(in), 0, RSC_REUSEPORT, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&in, sizeof(in), 0, 1U << 30, &e), -EINVAL);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&in, sizeof(in), -1, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&in, sizeof(in), 4, RSC_DIRECT, &e), -EINVAL);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&un, sizeof(un) + 1, 4, 0, &e), -EINVAL);
	/* Nothing was pushed: the scope closes clean at once. */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&in, sizeof(in), 0, 0, &e), -ESTALE);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(accept_refuses_bad_arguments_and_states)
{
	struct acc_rec acc = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rsc_entry *l, *d;

	ck_assert_int_eq(rsc_accept(NULL, 0, count_accept, &acc), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	ck_assert_int_eq(rsc_accept(l, 0, NULL, &acc), -EINVAL);
	ck_assert_int_eq(rsc_accept(l, 1U << 20, count_accept, &acc), -EINVAL);
	/* An acquire flag rsc_accept does not take is refused, never read as another of its own. */
	ck_assert_int_ne(RSC_ACCEPT_MULTISHOT, RSC_NO_CLOEXEC);
	ck_assert_int_eq(rsc_accept(l, RSC_NO_CLOEXEC, count_accept, &acc), -EINVAL);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT, count_accept, &acc), -ENXIO);
	ck_assert_int_eq(rsc_defer(s, exit_ok, NULL, &d), 0);
	ck_assert_int_eq(rsc_accept(d, 0, count_accept, &acc), -EBADF);
	ck_assert_int_eq(rsc_entry_release(d, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_release_wait(l, NULL), 0);
	ck_assert_int_eq(rsc_accept(l, 0, count_accept, &acc), -EBADF);
	ck_assert_int_eq(acc.calls, 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_accept(l, 0, count_accept, &acc), -ESTALE);
}
END_TEST

START_TEST(accepted_connection_has_its_own_scope_and_cloexec_fd)
{
	struct acc_rec acc = { 0 };
	struct sockaddr_in at, mine, theirs;
	socklen_t len = sizeof(theirs), mlen = sizeof(mine);
	struct rsc_scope *s;
	struct rsc_entry *l;
	char buf[8];
	int cli, fd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	ck_assert_int_eq(rsc_accept(l, 0, count_accept, &acc), 0);
	cli = t_connect(&at);
	run_until(&acc.calls, 1, 3000);
	ck_assert_int_eq(acc.conns, 1);
	fd = rsc_entry_fd(acc.last_conn);
	ck_assert_int_eq(fd, acc.res);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ck_assert_str_eq(rsc_scope_name(acc.last_scope), "conn");
	ck_assert_str_eq(rsc_entry_name(acc.last_conn), "conn");
	ck_assert(rsc_entry_scope(acc.last_conn) == acc.last_scope);
	ck_assert_int_eq(rsc_entry_peername(acc.last_conn, (struct sockaddr *)&theirs, &len), 0);
	ck_assert_int_eq(getsockname(cli, (struct sockaddr *)&mine, &mlen), 0);
	ck_assert_int_eq(theirs.sin_port, mine.sin_port);
	/* Closed with its parent. */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(read(cli, buf, sizeof(buf)), 0);
	close(cli);
}
END_TEST

/* With RSC_SHUTDOWN_ON_RELEASE the peer sees the end while a dup is open. */
START_TEST(accept_shutdown_on_release_sends_fin_despite_a_dup)
{
	struct acc_rec acc = { 0 }, acc2 = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rsc_entry *l;
	char buf[8];
	int cli, cli2, dupfd, dup2fd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_SHUTDOWN_ON_RELEASE, count_accept, &acc), 0);
	cli = t_connect(&at);
	run_until(&acc.calls, 1, 3000);
	ck_assert_int_eq(acc.conns, 1);
	dupfd = fcntl(rsc_entry_fd(acc.last_conn), F_DUPFD_CLOEXEC, 0);
	ck_assert_int_ge(dupfd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(acc.last_scope, NULL), 0);
	ck_assert(peer_readable(cli, 2000));
	ck_assert_int_eq(read(cli, buf, sizeof(buf)), 0);
	/* Without the flag, the dup keeps the connection up. */
	ck_assert_int_eq(rsc_accept(l, 0, count_accept, &acc2), 0);
	cli2 = t_connect(&at);
	run_until(&acc2.calls, 1, 3000);
	dup2fd = fcntl(rsc_entry_fd(acc2.last_conn), F_DUPFD_CLOEXEC, 0);
	ck_assert_int_ge(dup2fd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(acc2.last_scope, NULL), 0);
	ck_assert(!peer_readable(cli2, 100));
	close(dupfd);
	close(dup2fd);
	close(cli);
	close(cli2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* A single-shot accept racing its scope's close ends with exactly one call. */
START_TEST(single_shot_accept_racing_close_calls_back_once)
{
	int round, before = t_fd_count();

	for (round = 0; round < 20; round++) {
		struct acc_rec acc = { 0 };
		struct close_rec c = { 0 };
		struct sockaddr_in at;
		struct rsc_scope *s;
		struct rsc_entry *l;
		int cli;

		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "race", &s), 0);
		l = t_listen_on_loopback(s, 4, &at);
		ck_assert_int_eq(rsc_accept(l, 0, count_accept, &acc), 0);
		if (round % 2)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		cli = t_connect(&at);
		ck_assert_int_eq(rsc_scope_close(s, on_closed, &c), 0);
		t_run();
		ck_assert_int_eq(c.calls, 1);
		ck_assert_int_eq(c.status, 0);
		ck_assert_int_eq(acc.calls, 1);
		ck_assert(acc.res >= 0 || acc.res == -ECANCELED);
		close(cli);
		ck_assert_int_eq(t_fd_count(), before);
	}
}
END_TEST

struct storm {
	struct sockaddr_in at;
	int fds[64];
	int n;
	atomic_int stop;
};

static void *connect_storm(void *arg)
{
	struct storm *st = arg;

	while (st->n < 64 && !atomic_load(&st->stop)) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			break;
		if (connect(fd, (struct sockaddr *)&st->at, sizeof(st->at)) != 0) {
			close(fd);
			break;
		}
		st->fds[st->n++] = fd;
		usleep(1000);
	}
	return NULL;
}

/* Multishot: closing while clients keep coming ends with one last -ECANCELED. */
START_TEST(multishot_accept_closed_mid_storm_ends_once_and_leaks_nothing)
{
	struct storm *st = calloc(1, sizeof(*st));
	struct acc_rec acc = { 0 };
	struct close_rec c = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *l;
	pthread_t th;
	int i, before = t_fd_count();

	ck_assert_ptr_nonnull(st);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 64, &st->at);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, count_accept, &acc), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, connect_storm, st), 0);
	run_until_threads(&acc.conns, 4, 10000);
	ck_assert_int_eq(rsc_scope_close(s, on_closed, &c), 0);
	run_until(&c.calls, 1, 5000);
	atomic_store(&st->stop, 1);
	pthread_join(th, NULL);
	t_run();
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(acc.res, -ECANCELED);
	ck_assert_int_eq(acc.after_last, 0);
	ck_assert_int_eq(acc.calls, acc.conns + 1);
	for (i = 0; i < st->n; i++)
		close(st->fds[i]);
	free(st);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* --------------------------------------------------- cancel_io and shutdown */

START_TEST(cancel_io_ends_every_op_and_keeps_the_entry)
{
	struct io_rec r1 = { 0 }, r2 = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[8];
	int peer, fd;

	ck_assert_int_eq(rsc_entry_cancel_io(NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "keep", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_entry_cancel_io(e), 0);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r1), 0);
	ck_assert_int_eq(rsc_timeout(e, 60000, on_io, &r2), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_detach(e), -EBUSY);
	ck_assert_int_eq(rsc_entry_cancel_io(e), 2);
	ck_assert_int_eq(r1.calls + r2.calls, 0);
	t_run();
	ck_assert_int_eq(r1.calls, 1);
	ck_assert(r1.res == -ECANCELED || r1.res == -EINTR);
	ck_assert_int_eq(r2.calls, 1);
	ck_assert_int_eq(r2.res, -ECANCELED);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(rsc_entry_io_count(e), 0);
	ck_assert(!peer_readable(peer, 0));
	/* Nothing lost the kernel had not delivered: the entry still reads. */
	ck_assert_int_eq(write(peer, "z", 1), 1);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r1), 0);
	t_run();
	ck_assert_int_eq(r1.res, 1);
	fd = rsc_entry_detach(e);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

START_TEST(cancel_io_on_a_multishot_listener_stops_accepting)
{
	struct acc_rec acc = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rsc_entry *l;
	int cli;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 8, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, count_accept, &acc), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_cancel_io(l), 1);
	t_run();
	ck_assert_int_eq(acc.calls, 1);
	ck_assert_int_eq(acc.res, -ECANCELED);
	cli = t_connect(&at);
	run_for(100);
	ck_assert_int_eq(acc.calls, 1);
	ck_assert_int_eq(rsc_entry_state(l), RSC_ENTERED);
	close(cli);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(shutdown_wr_sends_eof_and_the_entry_still_receives)
{
	struct io_rec r = { 0 }, rr = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[8];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "half", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_shutdown(e, 99, on_io, &r), -EINVAL);
	ck_assert_int_eq(rsc_shutdown(e, SHUT_WR, NULL, &r), -EINVAL);
	ck_assert_int_eq(rsc_shutdown(NULL, SHUT_WR, on_io, &r), -EINVAL);
	ck_assert_int_eq(rsc_shutdown(e, SHUT_WR, on_io, &r), 0);
	t_run();
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.res, 0);
	ck_assert_int_eq(read(peer, buf, sizeof(buf)), 0);
	ck_assert_int_eq(write(peer, "hi", 2), 2);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &rr), 0);
	t_run();
	ck_assert_int_eq(rr.res, 2);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

/* ------------------------------------------------------ direct descriptors */

START_TEST(direct_accept_is_a_slot_never_a_descriptor)
{
	struct acc_rec acc = { 0 };
	struct io_rec sent = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rsc_entry *l;
	char buf[8];
	int cli, fds;

	t_direct_table(64, 8);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT, count_accept, &acc), 0);
	cli = t_connect(&at);
	fds = t_fd_count();
	run_until(&acc.calls, 1, 3000);
	ck_assert_int_eq(acc.conns, 1);
	ck_assert_int_eq(t_fd_count(), fds);
	ck_assert_int_eq(rsc_entry_slot(acc.last_conn), acc.res);
	ck_assert_int_eq(rsc_entry_fd(acc.last_conn), -EBADFD);
	ck_assert_int_lt(acc.res, 64 - 8);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 2), -EBUSY);
	ck_assert_int_eq(rsc_send(acc.last_conn, "hi", 2, 0, on_io, &sent), 0);
	run_until(&sent.calls, 1, 3000);
	ck_assert_int_eq(sent.res, 2);
	ck_assert_int_eq(read(cli, buf, sizeof(buf)), 2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(read(cli, buf, sizeof(buf)), 0);
	close(cli);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

START_TEST(direct_connect_refused_frees_its_slot_with_one_error)
{
	struct sockaddr_in to = closed_port();
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *c;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dial", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&to, sizeof(to), 0, RSC_DIRECT, &c), -ENXIO);
	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&to, sizeof(to), 1000, RSC_DIRECT, &c), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_state(c), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_slot(c), -ECONNREFUSED);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ECONNREFUSED);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	rsc_error_free(err);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

START_TEST(chain_socket_connect_send_in_one_submit)
{
	struct io_rec sent = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *srv, *s;
	struct rsc_entry *l, *sock = (struct rsc_entry *)1, *conn = NULL;
	struct rsc_chain *ch;
	char buf[16];
	int fd;

	t_direct_table(32, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 4, &at);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "client", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_socket(ch, AF_INET, SOCK_STREAM, 0, &sock), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&at, sizeof(at), 2000, &conn), 0);
	ck_assert_int_eq(rsc_chain_send(ch, "hello", 5, on_io, &sent), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	ck_assert_ptr_null(sock);
	ck_assert_ptr_nonnull(conn);
	ck_assert_int_eq(rsc_chain_submit(ch), -ESTALE);
	ck_assert_int_eq(rsc_chain_socket(ch, AF_INET, SOCK_STREAM, 0, NULL), -ESTALE);
	rsc_chain_free(ch);
	ck_assert_int_ge(rsc_entry_wait(conn), 0);
	run_until(&sent.calls, 1, 3000);
	ck_assert_int_eq(sent.res, 5);
	ck_assert_int_eq(rsc_entry_slot(conn), rsc_entry_wait(conn));
	ck_assert_int_ge(rsc_entry_slot(conn), 32 - 4);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	fd = accept4(rsc_entry_fd(l), NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 5);
	ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 0);
	close(fd);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

/* Step 2 of 3 fails: step 1 alone is released, step 3 is no error. */
START_TEST(chain_middle_failure_releases_exactly_the_steps_before)
{
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *e1, *e2, *e3;
	struct rsc_chain *ch;

	t_make_files(2);
	t_direct_table(32, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "chain", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &e1), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("missing"), O_RDONLY, 0, &e2), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f1"), O_RDONLY, 0, &e3), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	t_run();
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
	ck_assert_int_eq(rsc_entry_state(e1), RSC_EXITED);
	ck_assert_int_eq(rsc_entry_state(e2), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_slot(e2), -ENOENT);
	ck_assert_int_eq(rsc_entry_state(e3), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_slot(e3), -ECANCELED);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	ck_assert_str_eq(rsc_error_op(err), "openat");
	rsc_error_free(err);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

START_TEST(chain_refuses_bad_steps)
{
	struct sockaddr_in at = t_loopback(1);
	struct rsc_scope *s;
	struct rsc_chain *ch;
	int i;

	ck_assert_int_eq(rsc_chain_new(NULL, &ch), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "bad", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), -EINVAL);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&at, sizeof(at), 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC, 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_chain_socket(ch, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_chain_send(ch, "x", 1, on_io, NULL), -EINVAL);
	for (i = 0; i < RSC_ENTRY_SQES_MAX; i++)
		ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, "/dev/null", O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, "/dev/null", O_RDONLY, 0, NULL), -E2BIG);
	/* No table: consumed all the same. */
	ck_assert_int_eq(rsc_chain_submit(ch), -ENXIO);
	ck_assert_int_eq(rsc_chain_submit(ch), -ESTALE);
	rsc_chain_free(ch);
	/* One chain slot, two opens. */
	t_direct_table(8, 1);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, "/dev/null", O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, "/dev/null", O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), -ENFILE);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "8"));
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	/* A chain never submitted is dropped with its loop or by free. */
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	rsc_chain_free(ch);
	rsc_chain_free(ch);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(direct_table_full_fails_the_acquire_with_enfile_only)
{
	struct rsc_scope *s[4];
	struct rsc_entry *e[4];
	int i, ret;

	/* Four slots, one for chains: three the kernel allocates from. */
	t_direct_table(4, 1);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "full", &s[i]), 0);
		ck_assert_int_eq(rsc_open(s[i], AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e[i]), 0);
		t_run();
		ck_assert_int_ge(rsc_entry_slot(e[i]), 0);
	}
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 3);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "full", &s[3]), 0);
	ret = rsc_open(s[3], AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e[3]);
	ck_assert_int_eq(ret, -ENFILE);
	ck_assert_msg(strstr(rsc_last_error(), "4") != NULL, "no table size in: %s", rsc_last_error());
	/* Nothing else broke: a plain open still works there, the others hold. */
	ck_assert_int_eq(rsc_open(s[3], AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e[3]), 0);
	ck_assert_int_ge(rsc_entry_wait(e[3]), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(rsc_entry_state(e[i]), RSC_ENTERED);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(rsc_scope_close_wait(s[i], NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
}
END_TEST

struct install_rec {
	int calls;
	int res;
};

static void on_installed(struct rsc_entry *e, int res, void *data)
{
	struct install_rec *r = data;

	(void)e;
	r->calls++;
	r->res = res;
}

START_TEST(install_gives_a_cloexec_descriptor_and_frees_the_slot)
{
	struct install_rec r = { 0 }, r2 = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e, *plain;
	int fd, fd2, slot, before = t_fd_count();

	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "inst", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &plain), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
	slot = rsc_entry_wait(e);
	ck_assert_int_ge(slot, 0);
	ck_assert_int_eq(rsc_entry_install(plain, 0, on_installed, &r), -EBADF);
	ck_assert_int_eq(rsc_entry_install(e, 0, on_installed, &r), 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, on_installed, &r2), -EBUSY);
	ck_assert_int_eq(r.calls, 0);
	t_run();
	ck_assert_int_eq(r.calls, 1);
	fd = r.res;
	ck_assert_int_ge(fd, 0);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ck_assert_int_eq(rsc_entry_fd(e), fd);
	ck_assert_int_eq(rsc_entry_slot(e), -EBADFD);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), before + 2);
	ck_assert_int_eq(rsc_entry_install(e, 0, on_installed, &r2), -EBADF);
	/* The ledger owns it now. */
	ck_assert_int_eq(rsc_adopt(s, fd, 0, &plain), -EEXIST);
	fd2 = rsc_entry_detach(e);
	ck_assert_int_eq(fd2, fd);
	close(fd2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(r2.calls, 0);
}
END_TEST

START_TEST(install_no_cloexec_and_release_closes_it)
{
	struct install_rec r = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	int before = t_fd_count();

	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "inst", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_install(e, RSC_NO_CLOEXEC, on_installed, &r), 0);
	/* Released with the install in flight: waits for it, then closes the fd. */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_ge(r.res, 0);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
}
END_TEST

struct arrival {
	int calls;
	int slot;
	char scope[RSC_NAME_MAX];
	char entry[32];
	struct rsc_scope *s;
};

static void on_arrival(struct rsc_entry *inbox, int slot, struct rsc_scope *cs, struct rsc_entry *e,
		       void *data)
{
	struct arrival *a = data;

	(void)inbox;
	a->calls++;
	a->slot = slot;
	a->s = cs;
	snprintf(a->scope, sizeof(a->scope), "%s", cs ? rsc_scope_name(cs) : "");
	snprintf(a->entry, sizeof(a->entry), "%s", e ? rsc_entry_name(e) : "");
}

START_TEST(hand_over_moves_the_slot_and_a_gone_inbox_is_stale)
{
	struct install_rec r = { 0 };
	struct arrival a = { 0 };
	struct rsc_loop *w;
	struct rsc_scope *ws, *s;
	struct rsc_entry *inbox, *e, *e2;
	unsigned long long addr;
	int i;

	ck_assert_int_eq(rsc_loop_new(&w, 64, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(w, NULL, "worker", &ws), 0);
	ck_assert_int_eq(rsc_inbox(ws, on_arrival, &a, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	ck_assert_int_eq(rsc_inbox_address(NULL, &addr), -EINVAL);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, on_installed, &r), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, on_installed, &r), -EBUSY);
	t_run();
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_ge(r.res, 0);
	ck_assert_int_eq(rsc_entry_slot(e), -EXDEV);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	for (i = 0; i < 100 && a.calls == 0; i++)
		ck_assert_int_ge(rsc_loop_run(w, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(a.slot, r.res);
	ck_assert_str_eq(a.scope, "handed");
	ck_assert_str_eq(a.entry, "conn");
	ck_assert_int_eq(rsc_loop_direct_used(w), 1);
	/* The inbox gone, its address names nothing: the slot stays here. */
	ck_assert_int_eq(rsc_entry_release(inbox, NULL, NULL), 0);
	for (i = 0; i < 3000 && rsc_entry_state(inbox) != RSC_EXITED; i++) {
		ck_assert_int_ge(rsc_loop_run(w, RSC_RUN_NOWAIT), 0);
		usleep(1000);
	}
	ck_assert_int_eq(rsc_entry_state(inbox), RSC_EXITED);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e2), 0);
	ck_assert_int_ge(rsc_entry_wait(e2), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e2, addr, on_installed, &r), -ESTALE);
	ck_assert_int_ge(rsc_entry_slot(e2), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_loop_shutdown(w, NULL), 0);
	ck_assert_int_eq(r.calls, 1);
}
END_TEST

/* ------------------------------------------------------ round two: edges */

#define HEAP_SCOPES 120

struct heap_case {
	struct rsc_scope *s;
	long due;	/* the final deadline, ms since t0 (0: cleared) */
	long fired_at;
	int calls;
	int status;
};

static long heap_t0;

static void heap_fired(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct heap_case *h = data;

	(void)err;
	h->calls++;
	h->status = status;
	h->fired_at = t_now_ms() - heap_t0;
	(void)rsc_scope_close(s, NULL, NULL);
}

/* Many deadlines moved later, earlier and cleared: each passes at its last time, never before. */
START_TEST(deadline_heap_keeps_every_last_setting)
{
	static struct heap_case h[HEAP_SCOPES];
	unsigned seed = 12345;
	int i, round, fired = 0, want = 0;

	memset(h, 0, sizeof(h));
	heap_t0 = t_now_ms();
	for (i = 0; i < HEAP_SCOPES; i++) {
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "h", &h[i].s), 0);
		ck_assert_int_eq(rsc_scope_on_close(h[i].s, heap_fired, &h[i]), 0);
	}
	for (round = 0; round < 6; round++) {
		for (i = 0; i < HEAP_SCOPES; i++) {
			unsigned ms;

			seed = seed * 1103515245u + 12345u;
			ms = 150 + (seed >> 16) % 500;
			if (round == 5 && i % 7 == 0)
				ms = 0;
			/* Read before the call: the deadline counts from inside it. */
			h[i].due = ms ? t_now_ms() - heap_t0 + ms : 0;
			ck_assert_int_eq(rsc_scope_set_deadline(h[i].s, ms, RSC_DEADLINE_MOVE_ON), 0);
		}
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	}
	for (i = 0; i < HEAP_SCOPES; i++)
		want += h[i].due != 0;
	{
		struct t_guard g;

		t_guard_start(&g, t_loop, 3000);
		while (!g.fired) {
			fired = 0;
			for (i = 0; i < HEAP_SCOPES; i++)
				fired += h[i].calls;
			if (fired == want)
				break;
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		}
		t_guard_stop(&g);
	}
	ck_assert_int_eq(fired, want);
	for (i = 0; i < HEAP_SCOPES; i++) {
		if (!h[i].due) {
			ck_assert_int_eq(h[i].calls, 0);
			ck_assert_int_eq(rsc_scope_close(h[i].s, NULL, NULL), 0);
			continue;
		}
		ck_assert_int_eq(h[i].calls, 1);
		ck_assert_int_eq(h[i].status, 0);
		ck_assert_msg(h[i].fired_at >= h[i].due, "scope %d passed at %ld, due %ld", i,
			      h[i].fired_at, h[i].due);
	}
	t_run();
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), want);
}
END_TEST

struct in_cb {
	struct rsc_scope *s;
	int io_calls;
	int io_res;
	int set_ret;
	int close_set_ret;
	struct close_rec c;
};

static void set_deadline_from_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct in_cb *x = data;

	(void)e;
	(void)buf;
	x->io_calls++;
	x->io_res = res;
	x->set_ret = rsc_scope_set_deadline(x->s, 5000, 0);
}

static void set_deadline_from_close(struct rsc_scope *s, int status, const struct rsc_error *err,
				    void *data)
{
	struct in_cb *x = data;

	on_closed(s, status, err, &x->c);
	x->close_set_ret = rsc_scope_set_deadline(s, 5000, 0);
}

/* From the callbacks of the deadline's own unwind, a new deadline is refused. */
START_TEST(deadline_cannot_be_set_from_its_own_unwind)
{
	struct in_cb x = { 0 };
	struct rsc_entry *e;
	char buf[4];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "own", &x.s), 0);
	e = t_adopted_pair(x.s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, set_deadline_from_io, &x), 0);
	ck_assert_int_eq(rsc_scope_on_close(x.s, set_deadline_from_close, &x), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(x.s, 30, 0), 0);
	run_until(&x.c.calls, 1, 3000);
	ck_assert_int_eq(x.io_calls, 1);
	ck_assert_int_eq(x.set_ret, -ESHUTDOWN);
	ck_assert_int_eq(x.close_set_ret, -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_close_wait(x.s, NULL), -ETIMEDOUT);
	close(peer);
}
END_TEST

/* A parent's deadline cuts a child in a grace of its own, however long. */
START_TEST(deadline_of_parent_cuts_a_child_grace)
{
	struct stats_rec st = { 0 };
	struct close_rec pc = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *p, *ch;
	struct rsc_entry *e;
	char buf[4];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &ch), 0);
	e = t_adopted_pair(ch, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(ch, 0, on_closed_stats, &st), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, on_closed, &pc), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 50, 0), 0);
	run_until(&pc.calls, 1, 3000);
	ck_assert_int_eq(st.c.calls, 1);
	ck_assert_uint_eq(st.cancelled, 1);
	ck_assert_uint_eq(st.drained, 0);
	ck_assert(r.res == -ECANCELED || r.res == -EINTR);
	ck_assert_int_eq(pc.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	close(peer);
}
END_TEST

/* A child's deadline during the parent's grace: its entry counts as drained. */
START_TEST(graceful_child_deadline_counts_as_drained)
{
	struct stats_rec st = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *p, *ch;
	struct rsc_entry *e;
	char buf[4];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &ch), 0);
	e = t_adopted_pair(ch, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(ch, 50, 0), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_closed_stats, &st), 0);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_uint_eq(st.drained, 1);
	ck_assert_uint_eq(st.cancelled, 0);
	ck_assert_int_eq(st.c.status, -ETIMEDOUT);
	close(peer);
}
END_TEST

/* Closing a child during the grace: its entry's I/O ended by a release: drained. */
START_TEST(graceful_child_closed_during_grace_counts_as_drained)
{
	struct stats_rec st = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *p, *ch;
	struct rsc_entry *e;
	char buf[4];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &ch), 0);
	e = t_adopted_pair(ch, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_closed_stats, &st), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close(ch, NULL, NULL), 0);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_uint_eq(st.drained, 1);
	ck_assert_uint_eq(st.cancelled, 0);
	ck_assert_int_eq(st.c.status, 0);
	close(peer);
}
END_TEST

struct rerecv {
	struct rsc_entry *e;
	char buf[8];
	int calls;
	int last;
	int ret;
};

static void recv_again(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct rerecv *x = data;

	(void)buf;
	x->calls++;
	x->last = res;
	if (res > 0)
		x->ret = rsc_recv(e, x->buf, sizeof(x->buf), 0, recv_again, x);
}

/* Drained, then more I/O still in flight when the grace ends: counted in both. */
START_TEST(graceful_entry_drained_then_busy_counts_in_both)
{
	struct stats_rec st = { 0 };
	struct rerecv x = { 0 };
	struct rsc_scope *s;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	x.e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(x.e, x.buf, sizeof(x.buf), 0, recv_again, &x), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 150, on_closed_stats, &st), 0);
	ck_assert_int_eq(write(peer, "a", 1), 1);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_eq(x.calls, 2);
	ck_assert_int_eq(x.ret, 0);
	ck_assert(x.last == -ECANCELED || x.last == -EINTR);
	ck_assert_uint_eq(st.drained, 1);
	ck_assert_uint_eq(st.cancelled, 1);
	close(peer);
}
END_TEST

/* A multishot receive holds the grace until it ends; its last call says why. */
START_TEST(graceful_waits_for_a_multishot_receive)
{
	struct stats_rec st = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	long t0;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot(e, 0, on_io, &r), 0);
	ck_assert_int_eq(write(peer, "abc", 3), 3);
	run_until(&r.calls, 1, 3000);
	ck_assert_int_eq(r.res, 3);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(s, 100, on_closed_stats, &st), 0);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_ge(t_now_ms() - t0, 100);
	ck_assert_int_eq(r.calls, 2);
	ck_assert_int_eq(r.res, -ECANCELED);
	ck_assert_uint_eq(st.cancelled, 1);
	close(peer);
}
END_TEST

/* Lower RLIMIT_NOFILE near the descriptors in use and fill every number left. */
static int fill_fd_table(struct rlimit *old, int holds[16])
{
	struct rlimit low;
	int n = 0, fd;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, old), 0);
	low = *old;
	low.rlim_cur = (rlim_t)t_fd_count() + 4;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	while ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
		ck_assert_int_lt(n, 16);
		holds[n++] = fd;
	}
	ck_assert_int_eq(errno, EMFILE);
	return n;
}

static void free_fd_table(const struct rlimit *old, int holds[16], int n)
{
	while (n > 0)
		close(holds[--n]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, old), 0);
}

struct shortage {
	struct rsc_scope *srv;
	int calls;
	int shortages;
	int conns;
	int last;
	int after_last;
	int close_ret;
	int graceful_on_shortage;
	struct stats_rec st;
};

static void shortage_accept(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *c,
			    void *data)
{
	struct shortage *x = data;

	(void)l;
	(void)c;
	if (x->last == -ECANCELED)
		x->after_last++;
	x->calls++;
	x->last = res;
	if (res >= 0) {
		x->conns++;
		(void)rsc_scope_close(cs, NULL, NULL);
	} else if (res == -EMFILE || res == -ENFILE) {
		x->shortages++;
		if (x->graceful_on_shortage && x->shortages == 1)
			x->close_ret = rsc_scope_close_graceful(x->srv, 1000, on_closed_stats, &x->st);
	}
}

/*
 * RLIMIT_NOFILE exhausted during an accept storm: the accept hears EMFILE,
 * backs off, and accepts again once descriptors are free.
 */
START_TEST(multishot_accept_recovers_from_emfile)
{
	struct shortage x = { 0 };
	struct sockaddr_in at;
	struct rsc_entry *l;
	struct rlimit old;
	int cli[6], i, n, holds[16];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &x.srv), 0);
	l = t_listen_on_loopback(x.srv, 16, &at);
	for (i = 0; i < 6; i++)
		cli[i] = t_connect(&at);
	n = fill_fd_table(&old, holds);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, shortage_accept, &x), 0);
	run_until(&x.shortages, 1, 3000);
	ck_assert_int_eq(x.conns, 0);
	free_fd_table(&old, holds, n);
	run_until(&x.conns, 6, 5000);
	ck_assert_int_ne(x.last, -ECANCELED);
	ck_assert_int_eq(rsc_scope_close_wait(x.srv, NULL), 0);
	ck_assert_int_eq(x.last, -ECANCELED);
	ck_assert_int_eq(x.after_last, 0);
	for (i = 0; i < 6; i++)
		close(cli[i]);
}
END_TEST

/* A graceful close from the callback that heard the shortage ends the accept. */
START_TEST(graceful_close_from_a_shortage_callback_ends_the_accept)
{
	struct shortage x = { .graceful_on_shortage = 1 };
	struct sockaddr_in at;
	struct rsc_entry *l;
	struct rlimit old;
	int cli, n, holds[16];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &x.srv), 0);
	l = t_listen_on_loopback(x.srv, 16, &at);
	cli = t_connect(&at);
	n = fill_fd_table(&old, holds);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, shortage_accept, &x), 0);
	run_until(&x.st.c.calls, 1, 3000);
	free_fd_table(&old, holds, n);
	ck_assert_int_eq(x.close_ret, 0);
	ck_assert_int_eq(x.shortages, 1);
	ck_assert_int_eq(x.last, -ECANCELED);
	ck_assert_int_eq(x.after_last, 0);
	ck_assert_int_eq(x.conns, 0);
	close(cli);
}
END_TEST

/* A shared ring with the application's chain half built: ringscope waits. */
START_TEST(shared_ring_leaves_an_open_application_chain_whole)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	struct io_uring_sqe *sqe;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int i;

	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(io_uring_queue_init(16, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(sh->loop, NULL, "guest", &s), 0);
	sqe = io_uring_get_sqe(&sh->ring);
	io_uring_prep_nop(sqe);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, 100);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), -EBUSY);
	ck_assert_int_ge(rsc_loop_run(sh->loop, RSC_RUN_NOWAIT), 0);
	/* Not submitted behind the application's back. */
	ck_assert_uint_eq(io_uring_sq_ready(&sh->ring), 1);
	sqe = io_uring_get_sqe(&sh->ring);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 101);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), 0);
	for (i = 0; i < 100 && (sh->app_cqes < 2 || rsc_entry_state(e) != RSC_ENTERED); i++)
		shared_reap(sh, 100);
	ck_assert_int_eq(sh->app_cqes, 2);
	ck_assert_int_eq(sh->app_res, 0);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	for (i = 0; i < 100 && rsc_loop_alive(sh->loop) > 0; i++)
		shared_reap(sh, 100);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	/* Another loop may take the ring now. */
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	io_uring_queue_exit(&sh->ring);
	free(sh);
}
END_TEST

START_TEST(shared_ring_refuses_bad_rings)
{
	struct io_uring ring;
	struct io_uring_params prm = { .flags = IORING_SETUP_SQPOLL };
	struct rsc_loop *l = (struct rsc_loop *)1;

	ck_assert_int_eq(rsc_loop_new_from_ring(&l, NULL, 0), -EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_int_eq(rsc_loop_new_from_ring(NULL, NULL, 0), -EINVAL);
	ck_assert_int_eq(io_uring_queue_init(4, &ring, 0), 0);
	l = (struct rsc_loop *)1;
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), -EINVAL);
	ck_assert_ptr_null(l);
	io_uring_queue_exit(&ring);
	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 1), -EINVAL);
	io_uring_queue_exit(&ring);
	if (io_uring_queue_init_params(16, &ring, &prm) == 0) {
		ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), -EOPNOTSUPP);
		io_uring_queue_exit(&ring);
	}
}
END_TEST

/* A post's wake-up is ringscope's: the loop cannot close until it is dispatched. */
START_TEST(shared_ring_close_waits_for_the_post_wakeup)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	int posted = 0, i;

	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(io_uring_queue_init(16, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_post(sh->loop, shared_post, &posted), 0);
	ck_assert_int_eq(rsc_loop_alive(sh->loop), 1);
	ck_assert_int_ge(rsc_loop_run(sh->loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(posted, 1);
	ck_assert_int_eq(rsc_loop_close(sh->loop), -EBUSY);
	for (i = 0; i < 100 && rsc_loop_alive(sh->loop) > 0; i++)
		shared_reap(sh, 100);
	ck_assert_int_eq(posted, 1);
	ck_assert_int_eq(sh->app_cqes, 0);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	io_uring_queue_exit(&sh->ring);
	free(sh);
}
END_TEST

/* Closing the scope while a direct chain waits on a full backlog: slots back. */
START_TEST(chain_cut_by_close_while_connecting_frees_every_slot)
{
	struct sockaddr_un sun;
	struct io_rec sent = { 0 };
	struct close_rec c = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct rsc_chain *ch;
	int fill[64], nfill, lfd, before;

	t_direct_table(16, 4);
	lfd = t_full_unix_listener(&sun, fill, &nfill);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dial", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_socket(ch, AF_UNIX, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&sun, sizeof(sun), 0, &conn), 0);
	ck_assert_int_eq(rsc_chain_send(ch, "x", 1, on_io, &sent), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	run_for(50);
	ck_assert_int_eq(rsc_entry_state(conn), RSC_ENTERING);
	ck_assert_int_eq(rsc_scope_close(s, on_closed, &c), 0);
	run_until(&c.calls, 1, 3000);
	ck_assert_int_eq(sent.calls, 1);
	ck_assert_int_lt(sent.res, 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), before);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

struct order_rec {
	char seq[8];
	int n;
};

static void order_send(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct order_rec *o = data;

	(void)e;
	(void)buf;
	(void)res;
	if (o->n < 7)
		o->seq[o->n++] = 's';
}

static void order_enter(struct rsc_entry *e, int res, void *data)
{
	struct order_rec *o = data;

	(void)e;
	(void)res;
	if (o->n < 7)
		o->seq[o->n++] = 'c';
}

/* A chain's connect times out: its send hears -ECANCELED before the connect settles. */
START_TEST(chain_connect_deadline_cancels_the_send_first)
{
	struct sockaddr_un sun;
	struct order_rec o = { { 0 }, 0 };
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct rsc_chain *ch;
	struct rsc_error *err = NULL;
	int fill[64], nfill, lfd;

	t_direct_table(16, 4);
	lfd = t_full_unix_listener(&sun, fill, &nfill);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dial", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_socket(ch, AF_UNIX, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&sun, sizeof(sun), 50, &conn), 0);
	ck_assert_int_eq(rsc_chain_send(ch, "x", 1, order_send, &o), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	ck_assert_int_eq(rsc_entry_on_enter(conn, order_enter, &o), 0);
	t_run();
	ck_assert_str_eq(o.seq, "sc");
	ck_assert_int_eq(rsc_entry_state(conn), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_slot(conn), -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ETIMEDOUT);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* The man page's own example: cancel a waiting receive, hand over from its last call. */
struct migrate {
	unsigned long long to;
	int handed;
	int hand_ret;
	struct install_rec moved;
};

static void migrate_on_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct migrate *m = data;

	(void)buf;
	if (res == -ECANCELED || res == -EINTR) {
		m->hand_ret = rsc_entry_hand_over(e, m->to, on_installed, &m->moved);
		m->handed = 1;
	}
}

/* Turn @l (not the test loop) until its table holds @want slots, for at most 3 s. */
static void run_other_until_slots(struct rsc_loop *l, int want)
{
	long t0 = t_now_ms();

	while (rsc_loop_direct_used(l) != want && t_now_ms() - t0 < 3000) {
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		usleep(1000);
	}
}

START_TEST(hand_over_after_cancel_io_from_the_last_callback)
{
	struct migrate m = { 0 };
	struct arrival a = { 0 };
	struct acc_rec acc = { 0 };
	struct sockaddr_in at;
	struct rsc_loop *w;
	struct rsc_scope *ws, *s;
	struct rsc_entry *inbox, *l;
	char buf[8], got[8];
	int cli, i;

	ck_assert_int_eq(rsc_loop_new(&w, 64, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(w, NULL, "worker", &ws), 0);
	ck_assert_int_eq(rsc_inbox(ws, on_arrival, &a, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &m.to), 0);
	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT | RSC_SHUTDOWN_ON_RELEASE, count_accept, &acc), 0);
	cli = t_connect(&at);
	run_until(&acc.calls, 1, 3000);
	ck_assert_int_eq(acc.conns, 1);
	ck_assert_int_eq(rsc_recv(acc.last_conn, buf, sizeof(buf), 0, migrate_on_recv, &m), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_hand_over(acc.last_conn, m.to, on_installed, &m.moved), -EBUSY);
	ck_assert_int_eq(rsc_entry_cancel_io(acc.last_conn), 1);
	run_until(&m.moved.calls, 1, 3000);
	ck_assert_int_eq(m.hand_ret, 0);
	ck_assert_int_ge(m.moved.res, 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	for (i = 0; i < 100 && a.calls == 0; i++)
		ck_assert_int_ge(rsc_loop_run(w, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(a.calls, 1);
	/* The connection works there, and its release there sends the FIN. */
	ck_assert_ptr_nonnull(a.s);
	ck_assert_int_eq(rsc_scope_close(a.s, NULL, NULL), 0);
	run_other_until_slots(w, 0);
	ck_assert_int_eq(rsc_loop_direct_used(w), 0);
	ck_assert(peer_readable(cli, 2000));
	ck_assert_int_eq(read(cli, got, sizeof(got)), 0);
	ck_assert_int_eq(rsc_loop_shutdown(w, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(cli);
}
END_TEST

/* A direct slot is no descriptor: detach refuses it, move carries it. */
START_TEST(direct_entry_detach_refused_move_carries_the_slot)
{
	struct rsc_scope *a, *b;
	struct rsc_entry *e;
	int slot;

	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
	slot = rsc_entry_wait(e);
	ck_assert_int_ge(slot, 0);
	ck_assert_int_eq(rsc_entry_detach(e), -EBADF);
	ck_assert_int_eq(rsc_entry_move(e, b), 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

/* Half-close a direct slot through the ring, the only way to. */
START_TEST(shutdown_half_closes_a_direct_slot)
{
	struct acc_rec acc = { 0 };
	struct io_rec r = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rsc_entry *l;
	char buf[4];
	int cli;

	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT, count_accept, &acc), 0);
	cli = t_connect(&at);
	run_until(&acc.calls, 1, 3000);
	ck_assert_int_eq(rsc_shutdown(acc.last_conn, SHUT_WR, on_io, &r), 0);
	run_until(&r.calls, 1, 3000);
	ck_assert_int_eq(r.res, 0);
	ck_assert_int_eq(read(cli, buf, sizeof(buf)), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(cli);
}
END_TEST

/* A deadline that passes while an install is in flight waits for the move. */
START_TEST(deadline_waits_for_an_install_in_flight)
{
	struct install_rec r = { 0 };
	struct close_rec c = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	int before = t_fd_count();

	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "inst", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 1, 0), 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, on_installed, &r), 0);
	run_until(&c.calls, 1, 3000);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_ge(r.res, 0);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ---------------------------------------------------- round three: hosts */

/* A host asleep in poll(2) wakes when a deadline passes. */
START_TEST(pollable_loop_wakes_its_host_for_a_deadline)
{
	struct close_rec c = { 0 };
	struct rsc_loop *l;
	struct rsc_scope *s;
	long t0;
	int fd;

	ck_assert_int_eq(rsc_loop_new(&l, 64, RSC_LOOP_POLLABLE), 0);
	fd = rsc_loop_fd(l);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "dl", &s), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 40, 0), 0);
	t0 = t_now_ms();
	while (c.calls == 0 && t_now_ms() - t0 < 3000) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		(void)poll(&p, 1, 1000);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_lt(t_now_ms() - t0, 2000);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	t0 = t_now_ms();
	while (rsc_loop_alive(l) > 0 && t_now_ms() - t0 < 3000) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		(void)poll(&p, 1, 100);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

struct shared_posts {
	struct rsc_loop *loop;
	atomic_int errors;
	int ran;
};

static void shared_count(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	((struct shared_posts *)arg)->ran++;
}

static void *shared_poster(void *arg)
{
	struct shared_posts *sp = arg;
	int i;

	for (i = 0; i < 100; i++)
		if (rsc_loop_post(sp->loop, shared_count, sp) != 0)
			atomic_fetch_add(&sp->errors, 1);
	return NULL;
}

/* Posts from 4 threads to a loop on the application's ring: each runs once. */
START_TEST(shared_ring_posts_from_threads_all_run)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	struct shared_posts sp = { 0 };
	pthread_t th[4];
	long t0;
	int i;

	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(io_uring_queue_init(16, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	sp.loop = sh->loop;
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, shared_poster, &sp), 0);
	t0 = t_now_ms();
	while (sp.ran < 400 && t_now_ms() - t0 < 5000)
		shared_reap(sh, 50);
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	while (rsc_loop_alive(sh->loop) > 0 && t_now_ms() - t0 < 5000)
		shared_reap(sh, 50);
	ck_assert_int_eq(atomic_load(&sp.errors), 0);
	ck_assert_int_eq(sp.ran, 400);
	ck_assert_int_eq(sh->app_cqes, 0);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	io_uring_queue_exit(&sh->ring);
	free(sh);
}
END_TEST

/* A small CQ that overflows: nothing of either side is lost. */
START_TEST(shared_ring_cq_overflow_loses_nothing)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	struct rsc_scope *s;
	struct rsc_entry *e[12];
	struct close_rec c = { 0 };
	int i, entered = 0;
	long t0;

	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(io_uring_queue_init(8, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(sh->loop, NULL, "many", &s), 0);
	/* 3 rounds of 8 application NOPs, submitted without reaping: the CQ (16) overflows. */
	for (int r = 0; r < 3; r++) {
		for (i = 0; i < 8; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);

			ck_assert_ptr_nonnull(sqe);
			io_uring_prep_nop(sqe);
			io_uring_sqe_set_data64(sqe, 1000 + r * 8 + i);
		}
		ck_assert_int_ge(io_uring_submit(&sh->ring), 0);
		for (i = r * 4; i < r * 4 + 4; i++)
			ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e[i]), 0);
		ck_assert_int_ge(rsc_loop_run(sh->loop, RSC_RUN_NOWAIT), 0);
	}
	t0 = t_now_ms();
	while ((sh->app_cqes < 24 || entered < 12) && t_now_ms() - t0 < 5000) {
		shared_reap(sh, 50);
		for (entered = 0, i = 0; i < 12; i++)
			entered += rsc_entry_state(e[i]) == RSC_ENTERED;
	}
	ck_assert_int_eq(sh->app_cqes, 24);
	ck_assert_int_eq(entered, 12);
	ck_assert_int_eq(rsc_scope_close(s, on_closed, &c), 0);
	while (rsc_loop_alive(sh->loop) > 0 && t_now_ms() - t0 < 5000)
		shared_reap(sh, 50);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	io_uring_queue_exit(&sh->ring);
	free(sh);
}
END_TEST

/* A deadline on a loop that shares the application's ring. */
START_TEST(shared_ring_deadline_passes_through_dispatch)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	struct close_rec c = { 0 };
	struct rsc_scope *s;
	long t0;

	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(io_uring_queue_init(16, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(sh->loop, NULL, "dl", &s), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 30, 0), 0);
	ck_assert_int_ge(rsc_loop_run(sh->loop, RSC_RUN_NOWAIT), 0);
	t0 = t_now_ms();
	while (c.calls == 0 && t_now_ms() - t0 < 3000)
		shared_reap(sh, 100);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_ge(t_now_ms() - t0, 25);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	while (rsc_loop_alive(sh->loop) > 0 && t_now_ms() - t0 < 5000)
		shared_reap(sh, 50);
	ck_assert_int_eq(sh->app_cqes, 0);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	io_uring_queue_exit(&sh->ring);
	free(sh);
}
END_TEST

/* A deadline set on a scope in its own grace ends the grace when it passes. */
START_TEST(deadline_set_during_the_grace_ends_it)
{
	struct stats_rec st = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[4];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, on_closed_stats, &st), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 40, RSC_DEADLINE_MOVE_ON), 0);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_eq(st.c.status, 0);
	ck_assert_uint_eq(st.cancelled, 1);
	ck_assert_uint_eq(st.drained, 0);
	ck_assert(r.res == -ECANCELED || r.res == -EINTR);
	close(peer);
}
END_TEST

/* A deadline on a server's scope: the multishot accept ends once, connections go. */
START_TEST(deadline_on_a_server_ends_accept_and_connections)
{
	struct acc_rec acc = { 0 };
	struct close_rec c = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rsc_entry *l;
	char buf[4];
	int cli1, cli2, before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 8, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, count_accept, &acc), 0);
	cli1 = t_connect(&at);
	cli2 = t_connect(&at);
	run_until(&acc.conns, 2, 3000);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 20, 0), 0);
	run_until(&c.calls, 1, 3000);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(acc.res, -ECANCELED);
	ck_assert_int_eq(acc.after_last, 0);
	ck_assert_int_eq(acc.calls, 3);
	ck_assert_int_eq(read(cli1, buf, sizeof(buf)), 0);
	ck_assert_int_eq(read(cli2, buf, sizeof(buf)), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
	close(cli1);
	close(cli2);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

struct idle_conn {
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[8];
	int got;
	long last_rearm;
	long fired_at;
	struct close_rec c;
};

static void idle_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct idle_conn *ic = data;

	(void)buf;
	if (res <= 0)
		return;
	ic->got += res;
	ic->last_rearm = t_now_ms(); /* before: the deadline counts from inside the call */
	ck_assert_int_eq(rsc_scope_set_deadline(ic->s, 150, 0), 0);
	ck_assert_int_eq(rsc_recv(e, ic->buf, sizeof(ic->buf), 0, idle_recv, ic), 0);
}

static void idle_gone(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct idle_conn *ic = data;

	on_closed(s, status, err, &ic->c);
	ic->fired_at = t_now_ms();
}

/* The page's example: a request moves the idle deadline later each time. */
START_TEST(deadline_rearmed_per_request_keeps_an_active_connection)
{
	struct idle_conn ic = { 0 };
	int peer, i;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "conn", &ic.s), 0);
	ic.e = t_adopted_pair(ic.s, &peer);
	ck_assert_int_eq(rsc_scope_on_close(ic.s, idle_gone, &ic), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(ic.s, 150, 0), 0);
	ck_assert_int_eq(rsc_recv(ic.e, ic.buf, sizeof(ic.buf), 0, idle_recv, &ic), 0);
	t0 = t_now_ms();
	for (i = 0; i < 6; i++) {
		ck_assert_int_eq(write(peer, "r", 1), 1);
		run_for(50);
		ck_assert_int_eq(ic.c.calls, 0);
	}
	ck_assert_int_ge(t_now_ms() - t0, 300);
	ck_assert_int_eq(ic.got, 6);
	run_until(&ic.c.calls, 1, 3000);
	ck_assert_int_ge(ic.fired_at - ic.last_rearm, 150);
	ck_assert_int_eq(ic.c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(ic.s, NULL), -ETIMEDOUT);
	close(peer);
}
END_TEST

/* A direct multishot accept whose table is full hears ENFILE, then goes on. */
START_TEST(direct_multishot_accept_backs_off_on_a_full_table)
{
	struct shortage x = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *hold;
	struct rsc_entry *l, *h[2];
	int cli[3], i;

	/* Four slots, two for chains: the kernel allocates from two. */
	t_direct_table(4, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "hold", &hold), 0);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(rsc_open(hold, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &h[i]), 0);
		ck_assert_int_ge(rsc_entry_wait(h[i]), 0);
	}
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &x.srv), 0);
	l = t_listen_on_loopback(x.srv, 8, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT | RSC_DIRECT, shortage_accept, &x), 0);
	cli[0] = t_connect(&at);
	run_until(&x.shortages, 1, 3000);
	ck_assert_int_eq(x.last, -ENFILE);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), -EBUSY);
	ck_assert_int_eq(rsc_scope_close_wait(hold, NULL), 0);
	cli[1] = t_connect(&at);
	cli[2] = t_connect(&at);
	run_until(&x.conns, 2, 5000);
	ck_assert_int_eq(rsc_scope_close_wait(x.srv, NULL), 0);
	ck_assert_int_eq(x.last, -ECANCELED);
	ck_assert_int_eq(x.after_last, 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	for (i = 0; i < 3; i++)
		close(cli[i]);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

/* A hand-over the receiver's full table refuses leaves the slot with the sender. */
START_TEST(hand_over_refused_by_a_full_receiver_keeps_the_slot)
{
	struct install_rec r = { 0 };
	struct arrival a = { 0 };
	struct rsc_loop *w;
	struct rsc_scope *ws, *s;
	struct rsc_entry *inbox, *e, *f;
	unsigned long long addr;
	int slot;

	ck_assert_int_eq(rsc_loop_new(&w, 64, 0), 0);
	ck_assert_int_eq(rsc_loop_set_direct(w, 2, 1), 0);
	ck_assert_int_eq(rsc_scope_open(w, NULL, "worker", &ws), 0);
	ck_assert_int_eq(rsc_open(ws, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &f), 0);
	ck_assert_int_ge(rsc_entry_wait(f), 0);
	ck_assert_int_eq(rsc_inbox(ws, on_arrival, &a, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
	slot = rsc_entry_wait(e);
	ck_assert_int_ge(slot, 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, on_installed, &r), 0);
	t_run();
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_lt(r.res, 0);
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	ck_assert_int_eq(rsc_loop_run(w, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(a.calls, 0);
	ck_assert_int_eq(rsc_loop_direct_used(w), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_loop_shutdown(w, NULL), 0);
}
END_TEST

/* A direct pipe: two slots, released together; no install, no hand-over, no detach. */
START_TEST(direct_pipe_holds_two_slots_and_refuses_moves)
{
	struct install_rec r = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *p;
	int ends[2];

	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "pipe", &s), 0);
	ck_assert_int_eq(rsc_pipe(s, RSC_DIRECT, &p), 0);
	ck_assert_int_ge(rsc_entry_wait(p), 0);
	ck_assert_int_eq(rsc_pipe_ends(p, ends), 0);
	ck_assert_int_ge(ends[0], 0);
	ck_assert_int_ge(ends[1], 0);
	ck_assert_int_ne(ends[0], ends[1]);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 2);
	ck_assert_int_eq(rsc_entry_install(p, 0, on_installed, &r), -EBADF);
	ck_assert_int_eq(rsc_entry_hand_over(p, 1, on_installed, &r), -EBADF);
	ck_assert_int_eq(rsc_entry_detach(p), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(r.calls, 0);
}
END_TEST

/* Two receives in flight on one socket: the release cancels both with one SQE. */
START_TEST(release_cancels_two_ops_with_one_cancel_fd)
{
	struct io_rec r1 = { 0 }, r2 = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	long long c0 = rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD);
	char b1[4], b2[4];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "two", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, b1, sizeof(b1), 0, on_io, &r1), 0);
	ck_assert_int_eq(rsc_recv(e, b2, sizeof(b2), 0, on_io, &r2), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_io_count(e), 2);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	ck_assert_int_eq(r1.calls, 1);
	ck_assert_int_eq(r2.calls, 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD), c0 + 1);
	ck_assert_int_eq(read(peer, b1, sizeof(b1)), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

/* ---------------------------------------------------- round four: servers */

/* An inbox holds no grace; a slot handed during its scope's grace is refused
 * (its address is no longer one: -ESTALE), and the sender keeps it. */
START_TEST(graceful_inbox_holds_no_grace_and_closes_late_arrivals)
{
	struct stats_rec st = { 0 };
	struct install_rec r = { 0 };
	struct arrival a = { 0 };
	struct io_rec rr = { 0 };
	struct rsc_loop *w;
	struct rsc_scope *ws, *s;
	struct rsc_entry *inbox, *e, *busy;
	unsigned long long addr;
	long long late0;
	char buf[4];
	int peer, i;

	ck_assert_int_eq(rsc_loop_new(&w, 64, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(w, NULL, "worker", &ws), 0);
	ck_assert_int_eq(rsc_inbox(ws, on_arrival, &a, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_entry_cancel_io(inbox), 0);
	busy = t_adopted_pair(ws, &peer);
	ck_assert_int_eq(rsc_recv(busy, buf, sizeof(buf), 0, on_io, &rr), 0);
	ck_assert_int_ge(rsc_loop_run(w, RSC_RUN_NOWAIT), 0);
	late0 = rsc_loop_counter(w, RSC_CTR_LATE_ACQUIRES);
	ck_assert_int_eq(rsc_scope_close_graceful(ws, 5000, on_closed_stats, &st), 0);
	ck_assert_int_ge(rsc_loop_run(w, RSC_RUN_NOWAIT), 0);
	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, on_installed, &r), -ESTALE);
	ck_assert_int_ge(rsc_entry_slot(e), 0); /* still the sender's */
	for (i = 0; i < 50; i++)
		ck_assert_int_ge(rsc_loop_run(w, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_int_eq(rsc_loop_counter(w, RSC_CTR_LATE_ACQUIRES), late0);
	ck_assert_int_eq(a.calls, 0);
	run_other_until_slots(w, 0);
	ck_assert_int_eq(rsc_loop_direct_used(w), 0);
	ck_assert_int_eq(st.c.calls, 0);
	/* The receive alone held the grace: its data ends it. */
	ck_assert_int_eq(write(peer, "x", 1), 1);
	for (i = 0; i < 3000 && st.c.calls == 0; i++) {
		ck_assert_int_ge(rsc_loop_run(w, RSC_RUN_NOWAIT), 0);
		usleep(1000);
	}
	ck_assert_int_eq(st.c.calls, 1);
	ck_assert_uint_eq(st.drained, 1);
	ck_assert_uint_eq(st.cancelled, 0);
	ck_assert_int_eq(rsc_loop_close(w), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

/* A graceful close while a multishot accept waits out a shortage: it ends at once. */
START_TEST(graceful_ends_an_accept_backing_off)
{
	struct shortage x = { 0 };
	struct sockaddr_in at;
	struct rsc_entry *l;
	struct rlimit old;
	int cli, n, holds[16];
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &x.srv), 0);
	l = t_listen_on_loopback(x.srv, 16, &at);
	cli = t_connect(&at);
	n = fill_fd_table(&old, holds);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, shortage_accept, &x), 0);
	run_until(&x.shortages, 1, 3000);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(x.srv, 5000, on_closed_stats, &x.st), 0);
	run_until(&x.st.c.calls, 1, 3000);
	free_fd_table(&old, holds, n);
	ck_assert_int_lt(t_now_ms() - t0, 900);
	ck_assert_int_eq(x.last, -ECANCELED);
	ck_assert_int_eq(x.after_last, 0);
	ck_assert_int_eq(x.conns, 0);
	close(cli);
}
END_TEST

/* The application's chain half built when a close is asked: the release waits, then goes. */
START_TEST(shared_ring_release_waits_for_the_applications_chain)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	struct close_rec c = { 0 };
	struct io_uring_sqe *sqe;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int i, before = t_fd_count();

	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(io_uring_queue_init(16, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(sh->loop, NULL, "guest", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), 0);
	for (i = 0; i < 100 && rsc_entry_state(e) != RSC_ENTERED; i++)
		shared_reap(sh, 100);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(t_fd_count(), before + 2);
	sqe = io_uring_get_sqe(&sh->ring);
	io_uring_prep_nop(sqe);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, 100);
	ck_assert_int_eq(rsc_scope_close(s, on_closed, &c), 0);
	ck_assert_int_ge(rsc_loop_run(sh->loop, RSC_RUN_NOWAIT), 0);
	ck_assert_uint_eq(io_uring_sq_ready(&sh->ring), 1);
	ck_assert_int_eq(c.calls, 0);
	sqe = io_uring_get_sqe(&sh->ring);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 101);
	for (i = 0; i < 100 && (c.calls == 0 || sh->app_cqes < 2 || rsc_loop_alive(sh->loop) > 0); i++)
		shared_reap(sh, 100);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(sh->app_cqes, 2);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	io_uring_queue_exit(&sh->ring);
	free(sh);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* An application ring set up SINGLE_ISSUER|DEFER_TASKRUN: reported and working. */
START_TEST(shared_ring_with_defer_taskrun_works)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	struct io_uring_params prm = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN };
	struct close_rec c = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	int i, f;

	ck_assert_ptr_nonnull(sh);
	if (io_uring_queue_init_params(16, &sh->ring, &prm) != 0) {
		free(sh);
		printf("SKIP shared_ring_with_defer_taskrun_works: the kernel refused DEFER_TASKRUN\n");
		return;
	}
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	f = rsc_loop_features(sh->loop);
	ck_assert(f & RSC_FEAT_SHARED_RING);
	ck_assert(f & RSC_FEAT_SINGLE_ISSUER);
	ck_assert(f & RSC_FEAT_DEFER_TASKRUN);
	ck_assert_int_eq(rsc_scope_open(sh->loop, NULL, "guest", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 30, RSC_DEADLINE_MOVE_ON), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_ge(rsc_loop_run(sh->loop, RSC_RUN_NOWAIT), 0);
	for (i = 0; i < 100 && c.calls == 0; i++)
		shared_reap(sh, 100);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	for (i = 0; i < 100 && rsc_loop_alive(sh->loop) > 0; i++)
		shared_reap(sh, 100);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	io_uring_queue_exit(&sh->ring);
	free(sh);
}
END_TEST

START_TEST(connect_deadline_to_a_full_backlog_times_out_and_closes)
{
	struct sockaddr_un sun;
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *c;
	int fill[64], nfill, lfd, before;
	long t0;

	lfd = t_full_unix_listener(&sun, fill, &nfill);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dial", &s), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 50, 0, &c), 0);
	t_run();
	ck_assert_int_lt(t_now_ms() - t0, 2000);
	ck_assert_int_eq(rsc_entry_fd(c), -ETIMEDOUT);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ETIMEDOUT);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	rsc_error_free(err);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

START_TEST(listen_on_a_taken_port_fails_with_bind_and_closes)
{
	struct sockaddr_in at;
	struct rsc_error *err = NULL;
	struct rsc_scope *s, *s2;
	struct rsc_entry *l2;
	int before;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "first", &s), 0);
	(void)t_listen_on_loopback(s, 4, &at);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "second", &s2), 0);
	ck_assert_int_eq(rsc_listen(s2, (struct sockaddr *)&at, sizeof(at), 4, 0, &l2), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_fd(l2), -EADDRINUSE);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_scope_close_wait(s2, &err), -EADDRINUSE);
	ck_assert_str_eq(rsc_error_op(err), "bind");
	ck_assert_ptr_nonnull(strstr(rsc_error_detail(err), "127.0.0.1:"));
	rsc_error_free(err);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(unix_listener_release_leaves_the_path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct acc_rec acc = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *l;
	int cli;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t_path("srv.sock"));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&sun, sizeof(sun), 4, 0, &l), 0);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_accept(l, 0, count_accept, &acc), 0);
	cli = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(cli, (struct sockaddr *)&sun, sizeof(sun)), 0);
	run_until(&acc.calls, 1, 3000);
	ck_assert_int_eq(acc.conns, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(access(sun.sun_path, F_OK), 0);
	close(cli);
}
END_TEST

START_TEST(ipv6_connect_and_accept_on_loopback)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t len = sizeof(a);
	struct acc_rec acc = { 0 };
	struct rsc_scope *s, *cs;
	struct rsc_entry *l, *c;
	int ret;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv6", &s), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), 4, 0, &l), 0);
	ret = rsc_entry_wait(l);
	if (ret == -EADDRNOTAVAIL || ret == -EAFNOSUPPORT) {
		printf("SKIP ipv6_connect_and_accept_on_loopback: no ::1 here\n");
		ck_assert_int_lt(rsc_scope_close_wait(s, NULL), 0);
		return;
	}
	ck_assert_int_ge(ret, 0);
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)&a, &len), 0);
	ck_assert_int_eq(rsc_accept(l, 0, count_accept, &acc), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli6", &cs), 0);
	ck_assert_int_eq(rsc_connect(cs, (struct sockaddr *)&a, sizeof(a), 1000, RSC_SHUTDOWN_ON_RELEASE, &c), 0);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	run_until(&acc.calls, 1, 3000);
	ck_assert_int_eq(acc.conns, 1);
	ck_assert_int_eq(rsc_scope_close_wait(cs, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* RSC_SHUTDOWN_ON_RELEASE on rsc_connect: the peer sees the FIN though a dup lives. */
START_TEST(connect_shutdown_on_release_follows_the_socket)
{
	struct sockaddr_in at;
	struct rsc_scope *srv, *cs;
	struct rsc_entry *l, *c;
	char buf[4];
	int fd, dupfd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 4, &at);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cs), 0);
	ck_assert_int_eq(rsc_connect(cs, (struct sockaddr *)&at, sizeof(at), 0, RSC_SHUTDOWN_ON_RELEASE, &c), 0);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	fd = accept4(rsc_entry_fd(l), NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	dupfd = fcntl(rsc_entry_fd(c), F_DUPFD_CLOEXEC, 0);
	ck_assert_int_ge(dupfd, 0);
	ck_assert_int_eq(rsc_entry_release_wait(c, NULL), 0);
	ck_assert(peer_readable(fd, 2000));
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 0);
	close(dupfd);
	close(fd);
	ck_assert_int_eq(rsc_scope_close_wait(cs, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

/* The fdinfo cross-check agrees while slots are held, not only when none is. */
START_TEST(audit_slots_agrees_while_slots_are_held)
{
	struct rsc_scope *s;
	struct rsc_entry *e[3], *p;
	int i;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "held", &s), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e[i]), 0);
		ck_assert_int_ge(rsc_entry_wait(e[i]), 0);
	}
	ck_assert_int_eq(rsc_audit_slots(NULL), -EINVAL);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e[1], NULL), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	if (t_kernel_has(OP_PIPE)) {
		ck_assert_int_eq(rsc_pipe(s, RSC_DIRECT, &p), 0);
		ck_assert_int_ge(rsc_entry_wait(p), 0);
		ck_assert_int_eq(t_audit_slots(t_loop), 0);
	}
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

/* ------------------------------------------------------ round five: order */

struct fifo {
	pthread_mutex_t mu;
	struct rsc_loop *loop;
	int next;	/* taken under mu, with the post */
	int ran;
	int last;
	int out_of_order;
	int seqs[4 * 200];
	atomic_int errors;
};

static struct fifo *ff;

static void fifo_run(struct rsc_loop *loop, void *arg)
{
	int seq = *(int *)arg;

	(void)loop;
	if (seq != ff->last + 1)
		ff->out_of_order++;
	ff->last = seq;
	ff->ran++;
}

static void *fifo_poster(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 200; i++) {
		pthread_mutex_lock(&ff->mu);
		ff->seqs[ff->next] = ff->next;
		if (rsc_loop_post(ff->loop, fifo_run, &ff->seqs[ff->next]) != 0)
			atomic_fetch_add(&ff->errors, 1);
		ff->next++;
		pthread_mutex_unlock(&ff->mu);
	}
	return NULL;
}

/* Posts of different threads run in the order they were queued. */
START_TEST(posts_of_all_threads_run_in_queue_order)
{
	pthread_t th[4];
	int i;

	ff = calloc(1, sizeof(*ff));
	ck_assert_ptr_nonnull(ff);
	pthread_mutex_init(&ff->mu, NULL);
	ff->loop = t_loop;
	ff->last = -1;
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, fifo_poster, NULL), 0);
	run_until_threads(&ff->ran, 800, 20000);
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	t_run();
	ck_assert_int_eq(atomic_load(&ff->errors), 0);
	ck_assert_int_eq(ff->ran, 800);
	ck_assert_int_eq(ff->out_of_order, 0);
	pthread_mutex_destroy(&ff->mu);
	free(ff);
	ff = NULL;
}
END_TEST

struct dispatch_in_post {
	int ret;
	int ran;
};

static void dispatch_from_post(struct rsc_loop *loop, void *arg)
{
	struct dispatch_in_post *d = arg;
	struct io_uring_cqe fake = { .user_data = 7 };

	d->ran++;
	d->ret = rsc_loop_dispatch(loop, &fake);
}

START_TEST(shared_ring_dispatch_from_a_callback_is_refused)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	struct dispatch_in_post d = { 1, 0 };
	struct rsc_scope *s;
	int i;

	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(io_uring_queue_init(16, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(sh->loop, NULL, "open", &s), 0);
	ck_assert_int_eq(rsc_loop_close(sh->loop), -EBUSY);
	ck_assert_int_eq(rsc_loop_post(sh->loop, dispatch_from_post, &d), 0);
	for (i = 0; i < 100 && (d.ran == 0 || rsc_loop_alive(sh->loop) > 0); i++)
		shared_reap(sh, 50);
	ck_assert_int_eq(d.ran, 1);
	ck_assert_int_eq(d.ret, -EDEADLK);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	for (i = 0; i < 100 && rsc_loop_alive(sh->loop) > 0; i++)
		shared_reap(sh, 50);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	io_uring_queue_exit(&sh->ring);
	free(sh);
}
END_TEST

/* The first step fails: every later step, the send included, hears -ECANCELED. */
START_TEST(chain_first_step_failure_cancels_all_after_it)
{
	struct sockaddr_in at = t_loopback(1);
	struct io_rec sent = { 0 };
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct rsc_chain *ch;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "chain", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	/* A protocol TCP does not have: the kernel refuses the socket. */
	ck_assert_int_eq(rsc_chain_socket(ch, AF_INET, SOCK_STREAM, IPPROTO_UDP, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&at, sizeof(at), 1000, &conn), 0);
	ck_assert_int_eq(rsc_chain_send(ch, "x", 1, on_io, &sent), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	t_run();
	ck_assert_int_eq(sent.calls, 1);
	ck_assert_int_eq(sent.res, -ECANCELED);
	ck_assert_int_eq(rsc_entry_state(conn), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_slot(conn), -ECANCELED);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_lt(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	ck_assert_str_eq(rsc_error_op(err), "socket");
	rsc_error_free(err);
}
END_TEST

/* A chain built on a scope that closes or fails before the submit. */
START_TEST(chain_submit_after_its_scope_went)
{
	struct rsc_scope *s, *f;
	struct rsc_chain *ch, *ch2;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "gone", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, "/dev/null", O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), -ESTALE);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, "/dev/null", O_RDONLY, 0, NULL), -ESTALE);
	rsc_chain_free(ch);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "failing", &f), 0);
	ck_assert_int_eq(rsc_chain_new(f, &ch2), 0);
	ck_assert_int_eq(rsc_chain_open(ch2, AT_FDCWD, "/dev/null", O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(f, -EIO, NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(ch2), -ESHUTDOWN);
	ck_assert_int_eq(rsc_chain_submit(ch2), -ESTALE);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(f, NULL), -EIO);
}
END_TEST

/* A loop closed with a chain never submitted frees it: the handle is stale. */
START_TEST(chain_left_unsubmitted_goes_with_its_loop)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_chain *ch;

	ck_assert_int_eq(rsc_loop_new(&l, 64, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "c", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, "/dev/null", O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), -ESTALE);
	rsc_chain_free(ch);
}
END_TEST

START_TEST(direct_table_changes_and_refusals)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rlimit rl;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	ck_assert_int_eq(rsc_loop_direct_used(t_loop), -ENXIO);
	ck_assert_int_eq(rsc_loop_set_direct(NULL, 8, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 9), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, RSC_DIRECT_SLOTS_MAX + 1, 0), -EINVAL);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	/* valgrind keeps RLIMIT_NOFILE to itself: the kernel's table is not bound by it there. */
	if (rl.rlim_max < RSC_DIRECT_SLOTS_MAX && !t_under_valgrind())
		ck_assert_int_eq(rsc_loop_set_direct(t_loop, (unsigned)rl.rlim_max + 1, 0), -EMFILE);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), -ENXIO);
	t_direct_table(8, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "t", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC, 0, RSC_DIRECT, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_sockname(e, (struct sockaddr *)&sa, &len), -EBADFD);
	ck_assert_int_eq(rsc_entry_peername(e, (struct sockaddr *)&sa, &len), -EBADFD);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), -EBUSY);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), -ENXIO);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), -ENXIO);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* An installed connection keeps RSC_SHUTDOWN_ON_RELEASE: the FIN goes out with a dup alive. */
START_TEST(install_keeps_shutdown_on_release)
{
	struct acc_rec acc = { 0 };
	struct install_rec r = { 0 };
	struct sockaddr_in at, peer;
	socklen_t plen = sizeof(peer);
	struct rsc_scope *s;
	struct rsc_entry *l;
	char buf[4];
	int cli, dupfd;

	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT | RSC_SHUTDOWN_ON_RELEASE, count_accept, &acc), 0);
	cli = t_connect(&at);
	run_until(&acc.calls, 1, 3000);
	ck_assert_int_eq(rsc_entry_peername(acc.last_conn, (struct sockaddr *)&peer, &plen), 0);
	ck_assert_int_eq(rsc_entry_install(acc.last_conn, 0, on_installed, &r), 0);
	ck_assert_int_eq(rsc_entry_cancel_io(acc.last_conn), 0);
	ck_assert_int_eq(rsc_entry_io_count(acc.last_conn), 2);
	run_until(&r.calls, 1, 3000);
	ck_assert_int_ge(r.res, 0);
	ck_assert_int_eq(rsc_entry_hand_over(acc.last_conn, 1, on_installed, &r), -EBADF);
	dupfd = fcntl(r.res, F_DUPFD_CLOEXEC, 0);
	ck_assert_int_ge(dupfd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(acc.last_scope, NULL), 0);
	ck_assert(peer_readable(cli, 2000));
	ck_assert_int_eq(read(cli, buf, sizeof(buf)), 0);
	close(dupfd);
	close(cli);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
}
END_TEST

/* A scope moved under a parent whose deadline passes goes with it; one moved out does not. */
START_TEST(deadline_follows_scope_moves)
{
	struct close_rec pc = { 0 };
	struct io_rec r_in = { 0 }, r_out = { 0 };
	struct rsc_scope *p, *home, *in, *out;
	struct rsc_entry *ei, *eo;
	char b1[4], b2[4];
	int peer_in, peer_out;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "home", &home), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, home, "in", &in), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "out", &out), 0);
	ei = t_adopted_pair(in, &peer_in);
	eo = t_adopted_pair(out, &peer_out);
	ck_assert_int_eq(rsc_recv(ei, b1, sizeof(b1), 0, on_io, &r_in), 0);
	ck_assert_int_eq(rsc_recv(eo, b2, sizeof(b2), 0, on_io, &r_out), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(in, 60000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 60, 0), 0);
	ck_assert_int_eq(rsc_scope_move(in, p), 0);
	ck_assert_int_eq(rsc_scope_move(out, home), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, on_closed, &pc), 0);
	run_until(&pc.calls, 1, 3000);
	ck_assert_int_eq(r_in.calls, 1);
	ck_assert_int_eq(r_out.calls, 0);
	ck_assert_int_eq(rsc_scope_state(out), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_wait(home, NULL), 0);
	t_run();
	ck_assert_int_lt(t_now_ms() - t0, 2000);
	ck_assert_int_eq(r_out.calls, 1);
	close(peer_in);
	close(peer_out);
}
END_TEST

/* Many deadlines each moved earlier in one turn: every move needs its SQE. */
START_TEST(deadline_moved_earlier_many_times_in_one_turn)
{
	struct rsc_scope *s[200];
	struct close_rec c[200];
	int i, ret, fired = 0;
	long t0;

	memset(c, 0, sizeof(c));
	for (i = 0; i < 200; i++) {
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "e", &s[i]), 0);
		ck_assert_int_eq(rsc_scope_on_close(s[i], on_closed, &c[i]), 0);
	}
	/* Each one earlier than all before it: 200 timer updates, 64 SQ entries. */
	for (i = 0; i < 200; i++) {
		ret = rsc_scope_set_deadline(s[i], 60000 - 250 * i, RSC_DEADLINE_MOVE_ON);
		ck_assert_msg(ret == 0, "set %d: %s", i, rsc_strerror(ret));
	}
	ck_assert_int_eq(rsc_scope_set_deadline(s[0], 30, RSC_DEADLINE_MOVE_ON), 0);
	t0 = t_now_ms();
	run_until(&c[0].calls, 1, 3000);
	ck_assert_int_lt(t_now_ms() - t0, 2000);
	for (i = 1; i < 200; i++)
		fired += c[i].calls;
	ck_assert_int_eq(fired, 0);
	for (i = 0; i < 200; i++)
		ck_assert_int_eq(rsc_scope_close(s[i], NULL, NULL), 0);
	t0 = t_now_ms();
	t_run();
	ck_assert_int_lt(t_now_ms() - t0, 2000);
}
END_TEST

/* ------------------------------------------------------ round six: the end */

struct opener {
	struct rsc_scope *s;
	int ran;
	int open_ret;
};

static void open_a_scope(struct rsc_loop *loop, void *arg)
{
	struct opener *o = arg;

	o->ran++;
	o->open_ret = rsc_scope_open(loop, NULL, "late", &o->s);
}

/* A post that opens a scope in rsc_loop_close: -EBUSY, and the loop takes posts again. */
START_TEST(loop_close_refused_by_a_post_takes_posts_again)
{
	struct opener o = { 0 };
	struct self_post sp = { 0 };
	struct rsc_loop *l;

	ck_assert_int_eq(rsc_loop_new(&l, 0, 0), 0);
	ck_assert_int_eq(rsc_loop_post(l, open_a_scope, &o), 0);
	ck_assert_int_eq(rsc_loop_close(l), -EBUSY);
	ck_assert_int_eq(o.ran, 1);
	ck_assert_int_eq(o.open_ret, 0);
	ck_assert_int_eq(rsc_loop_post(l, outer_post, &sp), 0);
	ck_assert_int_eq(rsc_scope_close_wait(o.s, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(sp.ran, 1);
}
END_TEST

/* rsc_loop_shutdown waits for a grace under way, then cuts what is left. */
START_TEST(loop_shutdown_waits_for_a_grace)
{
	struct stats_rec st = { 0 };
	struct io_rec r = { 0 };
	struct self_post sp = { .again = 1 };
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[4];
	int sv[2];
	long t0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_loop_new(&l, 0, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "srv", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &e), 0);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 150, on_closed_stats, &st), 0);
	ck_assert_int_eq(rsc_loop_post(l, outer_post, &sp), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_ge(t_now_ms() - t0, 150);
	ck_assert_int_eq(st.c.calls, 1);
	ck_assert_uint_eq(st.cancelled, 1);
	ck_assert(r.res == -ECANCELED || r.res == -EINTR);
	ck_assert_int_eq(sp.ran, 1);
	/* It ran during the grace, before the scopes had closed: its own post
	 * may be taken then, and then runs before the loop is freed. */
	ck_assert(sp.inner_ret == 0 || sp.inner_ret == -ESHUTDOWN);
	ck_assert_int_eq(sp.inner_ran, sp.inner_ret == 0);
	ck_assert_int_eq(read(sv[1], buf, sizeof(buf)), 0);
	close(sv[1]);
}
END_TEST

struct detacher {
	struct rsc_entry *l;
	int calls;
	int shortages;
	int io_in_cb;
	int detached;
	int cancel_ret;
	int mode; /* 0: detach, 1: cancel_io */
	int last;
};

static void detach_on_shortage(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *c,
			       void *data)
{
	struct detacher *d = data;

	(void)c;
	d->calls++;
	d->last = res;
	if (res >= 0) {
		(void)rsc_scope_close(cs, NULL, NULL);
		return;
	}
	if (res != -EMFILE && res != -ENFILE)
		return;
	d->shortages++;
	d->io_in_cb = rsc_entry_io_count(l);
	if (d->mode == 0 && d->shortages == 1)
		d->detached = rsc_entry_detach(l);
	else if (d->mode == 1 && d->shortages == 1)
		d->cancel_ret = rsc_entry_cancel_io(l);
}

static void shortage_case(int mode)
{
	struct detacher d = { .mode = mode };
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rlimit old;
	int cli, n, holds[16];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	d.l = t_listen_on_loopback(s, 16, &at);
	cli = t_connect(&at);
	n = fill_fd_table(&old, holds);
	ck_assert_int_eq(rsc_accept(d.l, RSC_ACCEPT_MULTISHOT, detach_on_shortage, &d), 0);
	run_until(&d.shortages, 1, 3000);
	free_fd_table(&old, holds, n);
	run_for(1300);
	if (mode == 0) {
		if (d.io_in_cb == 0) {
			/* Detached there: the accept ended with that call. */
			ck_assert_int_ge(d.detached, 0);
			ck_assert_int_eq(d.calls, 1);
			close(d.detached);
		} else {
			ck_assert_int_eq(d.detached, -EBUSY);
		}
	} else {
		ck_assert_int_eq(d.cancel_ret, 0);
		ck_assert_int_eq(d.calls, 2);
		ck_assert_int_eq(d.last, -ECANCELED);
	}
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(cli);
}

START_TEST(detach_from_a_shortage_callback_ends_the_accept)
{
	shortage_case(0);
}
END_TEST

START_TEST(cancel_io_from_a_shortage_callback_ends_the_accept)
{
	shortage_case(1);
}
END_TEST

/* A hand-over to an inbox of the sender's own loop: the kernel refuses, the slot stays. */
START_TEST(hand_over_to_an_inbox_of_the_same_loop_fails_and_keeps_the_slot)
{
	struct acc_rec acc = { 0 };
	struct install_rec r = { 0 };
	struct arrival a = { 0 };
	struct io_rec sent = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s, *ws;
	struct rsc_entry *l, *inbox;
	unsigned long long addr;
	char buf[4];
	int cli;

	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "worker", &ws), 0);
	ck_assert_int_eq(rsc_inbox(ws, on_arrival, &a, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT, count_accept, &acc), 0);
	cli = t_connect(&at);
	run_until(&acc.calls, 1, 3000);
	ck_assert_int_eq(rsc_entry_hand_over(acc.last_conn, addr, on_installed, &r), 0);
	run_until(&r.calls, 1, 3000);
	ck_assert_int_eq(r.res, -EINVAL);
	run_for(50);
	ck_assert_int_eq(a.calls, 0);
	ck_assert_int_eq(rsc_entry_slot(acc.last_conn), acc.res);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	/* Still the connection: it sends, and its release ends it. */
	ck_assert_int_eq(rsc_send(acc.last_conn, "ok", 2, 0, on_io, &sent), 0);
	run_until(&sent.calls, 1, 3000);
	ck_assert_int_eq(read(cli, buf, sizeof(buf)), 2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(read(cli, buf, sizeof(buf)), 0);
	ck_assert_int_eq(rsc_scope_close_wait(ws, NULL), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	close(cli);
}
END_TEST

/* A deadline ends a multishot receive for good: one last call, no re-arm. */
START_TEST(deadline_ends_a_multishot_receive)
{
	struct close_rec c = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "ms", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot(e, 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 40, 0), 0);
	run_until(&c.calls, 1, 3000);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.res, -ECANCELED);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
	close(peer);
}
END_TEST

struct stream {
	unsigned char got[256];
	int n;
	int calls;
	int last;
};

static void collect(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct stream *st = data;

	(void)e;
	st->calls++;
	st->last = res;
	if (res > 0 && st->n + res <= (int)sizeof(st->got)) {
		memcpy(st->got + st->n, buf, (size_t)res);
		st->n += res;
	}
}

/* Two tiny receive buffers, a burst of data: re-armed, nothing lost or reordered. */
START_TEST(multishot_receive_rearms_in_order_when_buffers_run_out)
{
	struct stream st = { { 0 }, 0, 0, 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	unsigned char out[192];
	int peer, i;
	long t0;

	for (i = 0; i < (int)sizeof(out); i++)
		out[i] = (unsigned char)i;
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 2, 16), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "ms", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot(e, 0, collect, &st), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	for (i = 0; i < 12; i++) {
		ck_assert_int_eq(write(peer, out + 16 * i, 16), 16);
		usleep(2000);
	}
	t0 = t_now_ms();
	while (st.n < (int)sizeof(out) && t_now_ms() - t0 < 3000) {
		struct t_guard g;

		t_guard_start(&g, t_loop, 50);
		while (!g.fired && st.n < (int)sizeof(out))
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		t_guard_stop(&g);
	}
	ck_assert_int_eq(st.n, (int)sizeof(out));
	ck_assert_int_eq(memcmp(st.got, out, sizeof(out)), 0);
	ck_assert_int_ge(st.last, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(st.last, -ECANCELED);
	close(peer);
}
END_TEST

/* ---------------------------------------------------- round seven: extremes */

/* The longest times the calls take must not wrap around into "now". */
START_TEST(longest_deadline_timer_and_grace_do_not_wrap)
{
	struct close_rec c = { 0 };
	struct stats_rec st = { 0 };
	struct io_rec tr = { 0 }, to = { 0 }, r = { 0 };
	struct rsc_scope *s, *g;
	struct rsc_entry *e, *ge;
	char buf[4];
	int peer, gpeer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "long", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, UINT_MAX, 0), 0);
	ck_assert_int_eq(rsc_timer(s, UINT_MAX, on_io, &tr, NULL), 0);
	ck_assert_int_eq(rsc_timeout(e, UINT_MAX, on_io, &to), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "grace", &g), 0);
	ge = t_adopted_pair(g, &gpeer);
	ck_assert_int_eq(rsc_recv(ge, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(g, UINT_MAX, on_closed_stats, &st), 0);
	run_for(150);
	ck_assert_int_eq(c.calls, 0);
	ck_assert_int_eq(tr.calls, 0);
	ck_assert_int_eq(to.calls, 0);
	ck_assert_int_eq(st.c.calls, 0);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_int_eq(write(gpeer, "x", 1), 1);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_uint_eq(st.drained, 1);
	ck_assert_uint_eq(st.cancelled, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(tr.res, -ECANCELED);
	ck_assert_int_eq(to.res, -ECANCELED);
	close(peer);
	close(gpeer);
}
END_TEST

START_TEST(longest_connect_timeouts_do_not_wrap)
{
	struct sockaddr_un sun;
	struct close_rec c = { 0 }, c2 = { 0 };
	struct rsc_scope *s, *s2;
	struct rsc_entry *conn, *conn2;
	struct rsc_chain *ch;
	int fill[64], nfill, lfd, before;

	t_direct_table(16, 4);
	lfd = t_full_unix_listener(&sun, fill, &nfill);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dial", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), UINT_MAX, 0, &conn), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "chain", &s2), 0);
	ck_assert_int_eq(rsc_chain_new(s2, &ch), 0);
	ck_assert_int_eq(rsc_chain_socket(ch, AF_UNIX, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&sun, sizeof(sun), UINT_MAX, &conn2), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	run_for(150);
	ck_assert_int_eq(rsc_entry_state(conn), RSC_ENTERING);
	ck_assert_int_eq(rsc_entry_state(conn2), RSC_ENTERING);
	ck_assert_int_eq(rsc_scope_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_close(s2, on_closed, &c2), 0);
	run_until(&c.calls, 1, 3000);
	run_until(&c2.calls, 1, 3000);
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(c2.status, 0);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* A graceful close does not wait for a connect in flight: it is no tracked I/O. */
START_TEST(graceful_does_not_wait_for_a_connect_in_flight)
{
	struct sockaddr_un sun;
	struct stats_rec st = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *conn;
	int fill[64], nfill, lfd, before;
	long t0;

	lfd = t_full_unix_listener(&sun, fill, &nfill);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dial", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 0, 0, &conn), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(s, 5000, on_closed_stats, &st), 0);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_lt(t_now_ms() - t0, 2000);
	ck_assert_int_ne(rsc_entry_state(conn), RSC_ENTERED);
	ck_assert_int_eq(t_fd_count(), before);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* The smallest ring an application may share, asked for far more than it holds. */
START_TEST(shared_ring_of_eight_takes_many_acquires_in_one_turn)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	struct rsc_scope *s;
	struct rsc_entry *e[40];
	struct close_rec c = { 0 };
	int i, ret, pushed = 0, entered;
	long t0;

	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(io_uring_queue_init(8, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(sh->loop, NULL, "many", &s), 0);
	for (i = 0; i < 40; i++) {
		ret = rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e[i]);
		ck_assert_msg(ret == 0, "open %d: %s", i, rsc_strerror(ret));
		pushed++;
	}
	t0 = t_now_ms();
	do {
		shared_reap(sh, 50);
		for (entered = 0, i = 0; i < pushed; i++)
			entered += rsc_entry_state(e[i]) == RSC_ENTERED;
	} while (entered < pushed && t_now_ms() - t0 < 5000);
	ck_assert_int_eq(entered, 40);
	ck_assert_int_eq(rsc_scope_close(s, on_closed, &c), 0);
	while (rsc_loop_alive(sh->loop) > 0 && t_now_ms() - t0 < 8000)
		shared_reap(sh, 50);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	io_uring_queue_exit(&sh->ring);
	free(sh);
}
END_TEST

/* ------------------------------------------------------- round eight: races */

/* Deadlines of 1 ms racing opens and accepts: every late descriptor or slot is closed. */
static void deadline_race_round(bool direct, int round)
{
	struct acc_rec acc = { 0 };
	struct close_rec c = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s, *srv;
	struct rsc_entry *e, *l;
	unsigned flags = direct ? RSC_DIRECT : 0;
	int i, cli;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 8, &at);
	ck_assert_int_eq(rsc_scope_open(t_loop, srv, "race", &s), 0);
	for (i = 0; i < 12; i++)
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, flags, &e), 0);
	ck_assert_int_eq(rsc_accept(l, flags, count_accept, &acc), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 1, round % 2 ? RSC_DEADLINE_MOVE_ON : 0), 0);
	/* Move the listener's accept under the racing scope's deadline too. */
	ck_assert_int_eq(rsc_entry_move(l, s), 0);
	cli = t_connect(&at);
	run_until(&c.calls, 1, 3000);
	ck_assert_int_eq(c.status, round % 2 ? 0 : -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), c.status);
	t_run();
	ck_assert_int_eq(acc.calls, 1);
	ck_assert(acc.res >= 0 || acc.res == -ECANCELED);
	close(cli);
}

START_TEST(deadline_racing_acquires_closes_every_late_one)
{
	int round, before = t_fd_count();

	for (round = 0; round < 16; round++) {
		deadline_race_round(false, round);
		ck_assert_int_eq(t_fd_count(), before);
	}
	t_direct_table(64, 4);
	for (round = 0; round < 16; round++) {
		deadline_race_round(true, round);
		ck_assert_int_eq(t_fd_count(), before);
		ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	}
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

/* A graceful close mid-storm of direct connections: every late slot is closed. */
START_TEST(graceful_mid_storm_of_direct_accepts_frees_every_slot)
{
	struct storm *st = calloc(1, sizeof(*st));
	struct acc_rec acc = { 0 };
	struct stats_rec ss = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *l;
	pthread_t th;
	int i, before = t_fd_count();

	ck_assert_ptr_nonnull(st);
	t_direct_table(256, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 64, &st->at);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT | RSC_DIRECT, count_accept, &acc), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, connect_storm, st), 0);
	run_until_threads(&acc.conns, 3, 10000);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 500, on_closed_stats, &ss), 0);
	run_until(&ss.c.calls, 1, 5000);
	atomic_store(&st->stop, 1);
	pthread_join(th, NULL);
	t_run();
	ck_assert_int_eq(acc.res, -ECANCELED);
	ck_assert_int_eq(acc.after_last, 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	for (i = 0; i < st->n; i++)
		close(st->fds[i]);
	free(st);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* Slots handed to an inbox whose scope a deadline unwinds: none leaks on either side. */
START_TEST(hand_overs_racing_a_receiver_deadline_leak_no_slot)
{
	struct arrival a = { 0 };
	struct close_rec wc = { 0 };
	struct rsc_loop *w;
	struct rsc_scope *ws, *s;
	struct rsc_entry *inbox;
	unsigned long long addr;
	struct install_rec r[8];
	int i, sent = 0, ok = 0, calls = 0;
	long t0;

	memset(r, 0, sizeof(r));
	ck_assert_int_eq(rsc_loop_new(&w, 64, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(w, NULL, "worker", &ws), 0);
	ck_assert_int_eq(rsc_inbox(ws, on_arrival, &a, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_scope_on_close(ws, on_closed, &wc), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(ws, 1, 0), 0);
	t_direct_table(32, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	for (i = 0; i < 8; i++) {
		struct rsc_entry *e;
		int ret;

		ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
		ret = rsc_entry_hand_over(e, addr, on_installed, &r[i]);
		ck_assert(ret == 0 || ret == -ESTALE);
		sent += ret == 0;
		if (i == 3) /* the receiver turns (and its deadline passes) midway */
			(void)rsc_loop_run(w, RSC_RUN_NOWAIT);
		usleep(500);
	}
	t_run();
	for (i = 0; i < 8; i++) {
		ok += r[i].calls == 1 && r[i].res >= 0;
		calls += r[i].calls;
	}
	/* Each hand-over sent ends with one callback; a refused one with none. */
	ck_assert_int_eq(calls, sent);
	t0 = t_now_ms();
	while ((wc.calls == 0 || rsc_loop_direct_used(w) != 0) && t_now_ms() - t0 < 3000) {
		ck_assert_int_ge(rsc_loop_run(w, RSC_RUN_NOWAIT), 0);
		usleep(1000);
	}
	ck_assert_int_eq(wc.calls, 1);
	ck_assert_int_le(a.calls, ok);
	/* Arrivals went with the unwound scope, late ones closed by the runtime. */
	ck_assert_int_eq(rsc_loop_direct_used(w), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close(ws, NULL, NULL), 0);
	ck_assert_int_eq(rsc_loop_shutdown(w, NULL), 0);
}
END_TEST

/* -------------------------------------------------- round nine: the heap */

struct timed {
	struct rsc_scope *s;
	struct close_rec c;
	long at;
};

static long timed_t0;

static void timed_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct timed *t = data;

	on_closed(s, status, err, &t->c);
	t->at = t_now_ms() - timed_t0;
}

static void timed_open(struct timed *t, const char *name, unsigned ms, unsigned flags)
{
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, name, &t->s), 0);
	ck_assert_int_eq(rsc_scope_on_close(t->s, timed_closed, t), 0);
	if (ms)
		ck_assert_int_eq(rsc_scope_set_deadline(t->s, ms, flags), 0);
}

/* The earliest deadline goes (closed, cleared, moved later): the next one still passes on time. */
START_TEST(deadline_next_in_line_passes_when_the_earliest_goes)
{
	struct timed a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 }, f = { 0 };

	timed_t0 = t_now_ms();
	timed_open(&a, "a", 30, 0);
	timed_open(&b, "b", 80, 0);
	timed_open(&c, "c", 30, 0);
	timed_open(&d, "d", 90, 0);
	timed_open(&e, "e", 30, 0);
	timed_open(&f, "f", 100, 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close(a.s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(c.s, 0, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(e.s, 600, 0), 0);
	run_until(&f.c.calls, 1, 3000);
	run_until(&b.c.calls, 1, 3000);
	run_until(&d.c.calls, 1, 3000);
	ck_assert_int_ge(b.at, 80);
	ck_assert_int_ge(d.at, 90);
	ck_assert_int_ge(f.at, 100);
	ck_assert_int_lt(f.at, 550);
	ck_assert_int_eq(e.c.calls, 0);
	ck_assert_int_eq(c.c.calls, 0);
	ck_assert_int_eq(a.c.status, 0);
	run_until(&e.c.calls, 1, 3000);
	ck_assert_int_ge(e.at, 600);
	ck_assert_int_eq(rsc_scope_close(b.s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(c.s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(d.s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(e.s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(f.s, NULL, NULL), 0);
	t_run();
}
END_TEST

/* A scope freed with its deadline (moved later first): a scope in its memory inherits nothing. */
START_TEST(deadline_of_a_freed_scope_never_reaches_its_successor)
{
	int round;

	for (round = 0; round < 3; round++) {
		struct timed a = { 0 }, b = { 0 }, c = { 0 };

		timed_t0 = t_now_ms();
		timed_open(&a, "a", 40, 0);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		if (round >= 1)
			ck_assert_int_eq(rsc_scope_set_deadline(a.s, 50, 0), 0); /* later: lazy */
		ck_assert_int_eq(rsc_scope_close_wait(a.s, NULL), 0);
		/* New scopes, likely in the freed one's place. */
		timed_open(&b, "b", 0, 0);
		timed_open(&c, "c", round == 2 ? 300 : 0, 0);
		run_for(200);
		ck_assert_int_eq(b.c.calls, 0);
		ck_assert_int_eq(c.c.calls, 0);
		ck_assert_int_eq(rsc_scope_state(b.s), RSC_SCOPE_OPEN);
		ck_assert_int_eq(rsc_scope_state(c.s), RSC_SCOPE_OPEN);
		ck_assert_int_eq(rsc_scope_close_wait(b.s, NULL), 0);
		ck_assert_int_eq(rsc_scope_close_wait(c.s, NULL), 0);
	}
}
END_TEST

/* Setting again replaces the flags too. */
START_TEST(deadline_reset_replaces_its_flags)
{
	struct timed a = { 0 }, b = { 0 };

	timed_t0 = t_now_ms();
	timed_open(&a, "a", 5000, RSC_DEADLINE_MOVE_ON);
	ck_assert_int_eq(rsc_scope_set_deadline(a.s, 30, 0), 0);
	timed_open(&b, "b", 30, 0);
	ck_assert_int_eq(rsc_scope_set_deadline(b.s, 40, RSC_DEADLINE_MOVE_ON), 0);
	run_until(&a.c.calls, 1, 3000);
	run_until(&b.c.calls, 1, 3000);
	ck_assert_int_eq(a.c.status, -ETIMEDOUT);
	ck_assert_int_eq(b.c.status, 0);
	ck_assert_int_eq(rsc_scope_close_wait(a.s, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(b.s, NULL), 0);
}
END_TEST

/* A child's deadline ends with its parent's close: the scopes after it are not hit. */
START_TEST(deadline_of_a_closed_subtree_fires_for_nobody)
{
	struct timed p = { 0 }, n1 = { 0 }, n2 = { 0 };
	struct rsc_scope *kid, *grandkid;
	int i;

	timed_t0 = t_now_ms();
	timed_open(&p, "p", 0, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p.s, "kid", &kid), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, kid, "grandkid", &grandkid), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(kid, 40, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(grandkid, 30, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close_wait(p.s, NULL), 0);
	for (i = 0; i < 2; i++) {
		timed_open(i ? &n2 : &n1, "n", 0, 0);
		ck_assert_int_eq(rsc_scope_open(t_loop, (i ? n2 : n1).s, "nk", &kid), 0);
	}
	run_for(150);
	ck_assert_int_eq(n1.c.calls + n2.c.calls, 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 0);
	ck_assert_int_eq(rsc_scope_close_wait(n1.s, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(n2.s, NULL), 0);
}
END_TEST

/* A loop with a deadline pending: close refuses, shutdown ends it at once. */
START_TEST(loop_shutdown_ends_a_pending_deadline_at_once)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	long t0;

	ck_assert_int_eq(rsc_loop_new(&l, 0, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "d", &s), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 60000, 0), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_loop_alive(l), 1);
	ck_assert_int_eq(rsc_loop_close(l), -EBUSY);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_lt(t_now_ms() - t0, 2000);
}
END_TEST

/* ------------------------------------------- round ten: graces and failures */

/* rsc_scope_fail in the grace: accepted, ends the grace, its error is the result. */
START_TEST(fail_during_the_grace_ends_it_with_its_error)
{
	struct stats_rec st = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[4];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, on_closed_stats, &st), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "again"), -EALREADY);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_eq(st.c.status, -EPIPE);
	ck_assert_str_eq(st.c.op, "body");
	ck_assert_uint_eq(st.cancelled, 1);
	ck_assert_uint_eq(st.drained, 0);
	ck_assert(r.res == -ECANCELED || r.res == -EINTR);
	close(peer);
}
END_TEST

/*
 * A parent's plain close waits for a child's grace; a grandchild's deadline
 * during it unwinds the grandchild alone, which lets the grace end: drained,
 * and the deadline's error reaches the child's own close callback.
 */
START_TEST(grandchild_deadline_during_a_grace_under_a_closing_parent)
{
	struct stats_rec st = { 0 };
	struct close_rec pc = { 0 };
	struct io_rec r = { 0 };
	struct rsc_scope *p, *c, *g;
	struct rsc_entry *e;
	char buf[4];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, c, "g", &g), 0);
	e = t_adopted_pair(g, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, on_closed_stats, &st), 0);
	ck_assert_int_eq(rsc_scope_close(p, on_closed, &pc), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	/* Deadlines below a grace stay in place, and may still be set there. */
	ck_assert_int_eq(rsc_scope_set_deadline(g, 40, 0), 0);
	run_until(&pc.calls, 1, 3000);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(st.c.calls, 1);
	ck_assert_uint_eq(st.drained, 1);
	ck_assert_uint_eq(st.cancelled, 0);
	ck_assert_int_eq(st.c.status, -ETIMEDOUT);
	/* The child's close was the caller's: its callback had the error, not the parent. */
	ck_assert_int_eq(pc.status, 0);
	close(peer);
}
END_TEST

/* A failure above a grace: the grace ends, its I/O is cancelled, each close hears its own error. */
START_TEST(fail_above_a_grace_ends_it_and_each_close_hears_its_error)
{
	struct stats_rec st = { 0 };
	struct io_rec r = { 0 };
	struct rsc_error *err = NULL;
	struct rsc_scope *p, *c;
	struct rsc_entry *e;
	char buf[4];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	e = t_adopted_pair(c, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &r), 0);
	ck_assert_int_eq(rsc_defer(c, fail_eio, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, on_closed_stats, &st), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_fail(p, -ENOLINK, "body"), 0);
	t_run();
	ck_assert_int_eq(st.c.calls, 1);
	ck_assert_uint_eq(st.cancelled, 1);
	ck_assert_uint_eq(st.failed, 1);
	/* The child's failed exit went to the child's own callback (its close was the caller's). */
	ck_assert_int_eq(st.c.status, -EIO);
	ck_assert_int_eq(rsc_scope_close_wait(p, &err), -ENOLINK);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "body");
	rsc_error_free(err);
	close(peer);
}
END_TEST

/* An adopted entry's enter callback due, or a close asked: the host hears of it; the fd goes with the loop. */
static void note_enter(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)res;
	(*(int *)data)++;
}

START_TEST(loop_fd_readable_for_an_adoption_and_closed_with_the_loop)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int fd, sv[2], entered = 0;
	long t0;

	ck_assert_int_eq(rsc_loop_new(&l, 64, RSC_LOOP_POLLABLE | RSC_LOOP_DIRECT), 0);
	fd = rsc_loop_fd(l);
	ck_assert_int_ge(fd, 0);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "host", &s), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert(!peer_readable(fd, 0));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, note_enter, &entered), 0);
	ck_assert(peer_readable(fd, 0));
	/* Level-triggered: still readable until the loop runs. */
	ck_assert(peer_readable(fd, 0));
	ck_assert_int_eq(entered, 0);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(entered, 1);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert(peer_readable(fd, 0));
	t0 = t_now_ms();
	while (rsc_loop_alive(l) > 0 && t_now_ms() - t0 < 3000) {
		(void)peer_readable(fd, 100);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
	ck_assert_int_eq(read(sv[1], &entered, 1), 0);
	close(sv[1]);
}
END_TEST

/* A timer holds the grace until it fires; a new timer entry is refused, a timeout on an entry is not. */
START_TEST(graceful_timers_hold_the_grace_and_new_ones_follow_the_rules)
{
	struct stats_rec st = { 0 };
	struct io_rec t1 = { 0 }, t2 = { 0 }, t3 = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	long t0;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_timer(s, 80, on_io, &t1, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, on_closed_stats, &st), 0);
	ck_assert_int_eq(rsc_timer(s, 10, on_io, &t2, NULL), -ESHUTDOWN);
	ck_assert_int_eq(rsc_timeout(e, 20, on_io, &t3), 0);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_ge(t_now_ms() - t0, 70);
	ck_assert_int_eq(t1.res, -ETIME);
	ck_assert_int_eq(t3.res, -ETIME);
	ck_assert_int_eq(t2.calls, 0);
	ck_assert_uint_eq(st.drained, 1);
	ck_assert_uint_eq(st.cancelled, 0);
	close(peer);
}
END_TEST

/* In the grace: a hand-over is a move (refused), an install is not. */
START_TEST(graceful_refuses_a_hand_over_but_lets_an_install_run)
{
	struct stats_rec st = { 0 };
	struct install_rec r = { 0 }, h = { 0 };
	struct arrival a = { 0 };
	struct rsc_loop *w;
	struct rsc_scope *ws, *s;
	struct rsc_entry *inbox, *e, *e2;
	unsigned long long addr;
	int before = t_fd_count();

	ck_assert_int_eq(rsc_loop_new(&w, 64, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(w, NULL, "worker", &ws), 0);
	ck_assert_int_eq(rsc_inbox(ws, on_arrival, &a, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e2), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_ge(rsc_entry_wait(e2), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 1000, on_closed_stats, &st), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, on_installed, &h), -EALREADY);
	ck_assert_int_eq(rsc_entry_install(e2, 0, on_installed, &r), 0);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_int_eq(h.calls, 0);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_ge(r.res, 0);
	/* Begun in the grace, not before it: no entry was let finish. */
	ck_assert_uint_eq(st.drained, 0);
	ck_assert_uint_eq(st.cancelled, 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_loop_shutdown(w, NULL), 0);
	ck_assert_int_eq(a.calls, 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* A post made by a post on a pollable loop: the host hears of it too. */
START_TEST(pollable_loop_wakes_its_host_for_a_post_from_a_post)
{
	struct self_post sp = { .again = 1 };
	struct rsc_loop *l;
	int fd, i;

	ck_assert_int_eq(rsc_loop_new(&l, 64, RSC_LOOP_POLLABLE), 0);
	fd = rsc_loop_fd(l);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_post(l, outer_post, &sp), 0);
	/* A host: it runs the loop only when the descriptor says so. */
	for (i = 0; i < 20 && sp.inner_ran == 0; i++) {
		if (!peer_readable(fd, 100))
			continue;
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(sp.ran, 1);
	ck_assert_int_eq(sp.inner_ret, 0);
	ck_assert_int_eq(sp.inner_ran, 1);
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

/* A release that failed early (before the grace, and in it) counts in exits_failed too. */
START_TEST(graceful_stats_count_early_releases_that_failed)
{
	struct stats_rec st = { 0 };
	struct io_rec r1 = { 0 }, r2 = { 0 }, rr = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *d1, *d2, *e;
	unsigned dr = 9, ca = 9, fa = 9;
	char buf[4];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	ck_assert_int_eq(rsc_defer(s, fail_eio, NULL, &d1), 0);
	ck_assert_int_eq(rsc_defer(s, fail_eio, NULL, &d2), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_io, &rr), 0);
	ck_assert_int_eq(rsc_entry_release(d1, on_entry_done, &r1), 0);
	run_until(&r1.calls, 1, 3000);
	ck_assert_int_eq(r1.res, -EIO);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 2000, on_closed_stats, &st), 0);
	/* Asked in the grace: a snapshot, no harm done. */
	ck_assert_int_eq(rsc_scope_close_stats(s, &dr, &ca, &fa), 0);
	ck_assert_uint_eq(fa, 1);
	ck_assert_int_eq(rsc_entry_release(d2, on_entry_done, &r2), 0);
	run_until(&r2.calls, 1, 3000);
	ck_assert_int_eq(r2.res, -EIO);
	ck_assert_int_eq(write(peer, "x", 1), 1);
	run_until(&st.c.calls, 1, 3000);
	ck_assert_uint_eq(st.failed, 2);
	ck_assert_uint_eq(st.drained, 1);
	/* Each failure went to its own callback: the scope's close is clean. */
	ck_assert_int_eq(st.c.status, 0);
	close(peer);
}
END_TEST

struct arrival_conn {
	struct arrival a;
	struct rsc_entry *conn;
};

static void on_arrival_conn(struct rsc_entry *inbox, int slot, struct rsc_scope *cs, struct rsc_entry *e,
			    void *data)
{
	struct arrival_conn *ac = data;

	on_arrival(inbox, slot, cs, e, &ac->a);
	ac->conn = e;
}

/* A hand-over into a loop on the application's ring: its arrival comes through dispatch. */
START_TEST(hand_over_into_a_shared_ring_loop_carries_address_and_shutdown)
{
	struct shared *sh = calloc(1, sizeof(*sh));
	struct arrival_conn ac = { 0 };
	struct acc_rec acc = { 0 };
	struct install_rec r = { 0 };
	struct sockaddr_in at, mine, theirs;
	socklen_t len = sizeof(theirs), mlen = sizeof(mine);
	struct rsc_scope *ws, *s;
	struct rsc_entry *inbox, *l;
	unsigned long long addr;
	char buf[4];
	int cli, i;

	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(io_uring_queue_init(16, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&sh->loop, &sh->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_set_direct(sh->loop, 16, 2), 0);
	ck_assert_int_eq(rsc_scope_open(sh->loop, NULL, "worker", &ws), 0);
	ck_assert_int_eq(rsc_inbox(ws, on_arrival_conn, &ac, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT | RSC_SHUTDOWN_ON_RELEASE, count_accept, &acc), 0);
	cli = t_connect(&at);
	run_until(&acc.calls, 1, 3000);
	ck_assert_int_eq(rsc_entry_hand_over(acc.last_conn, addr, on_installed, &r), 0);
	run_until(&r.calls, 1, 3000);
	ck_assert_int_ge(r.res, 0);
	for (i = 0; i < 100 && ac.a.calls == 0; i++)
		shared_reap(sh, 50);
	ck_assert_int_eq(ac.a.calls, 1);
	ck_assert_int_eq(sh->app_cqes, 0);
	ck_assert_int_eq(rsc_loop_direct_used(sh->loop), 1);
	ck_assert_int_eq(rsc_entry_slot(ac.conn), ac.a.slot);
	ck_assert_int_eq(rsc_entry_peername(ac.conn, (struct sockaddr *)&theirs, &len), 0);
	ck_assert_int_eq(getsockname(cli, (struct sockaddr *)&mine, &mlen), 0);
	ck_assert_int_eq(theirs.sin_port, mine.sin_port);
	/* Its release there still sends the FIN. */
	ck_assert_int_eq(rsc_scope_close(ac.a.s, NULL, NULL), 0);
	for (i = 0; i < 100 && rsc_loop_direct_used(sh->loop) > 0; i++)
		shared_reap(sh, 50);
	ck_assert_int_eq(rsc_loop_direct_used(sh->loop), 0);
	ck_assert(peer_readable(cli, 2000));
	ck_assert_int_eq(read(cli, buf, sizeof(buf)), 0);
	ck_assert_int_eq(rsc_scope_close(ws, NULL, NULL), 0);
	for (i = 0; i < 100 && rsc_loop_alive(sh->loop) > 0; i++)
		shared_reap(sh, 50);
	ck_assert_int_eq(rsc_loop_close(sh->loop), 0);
	io_uring_queue_exit(&sh->ring);
	free(sh);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(cli);
}
END_TEST

static int slow_pipe[2] = { -1, -1 };
static char slow_byte;

/* An ordered exit that takes as long as the pipe stays empty: a read of it. */
static int slow_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret;

	(void)pending;
	(void)arg;
	ret = rsc_entry_get_sqes(e, 1, &sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_read(sqe, slow_pipe[0], &slow_byte, 1, 0);
	return 0;
}

static void *fill_slow_pipe_later(void *arg)
{
	(void)arg;
	usleep(400 * 1000);
	if (write(slow_pipe[1], "x", 1) != 1)
		abort();
	return NULL;
}

struct stamped_io {
	struct io_rec r;
	long at;
};

static void stamp_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct stamped_io *x = data;

	on_io(e, res, buf, &x->r);
	x->at = t_now_ms();
}

/* A slow exit of a newer child holds back an older child's release, not its cancel. */
START_TEST(deadline_cancels_an_older_child_at_once_behind_a_slow_exit)
{
	struct stamped_io io = { { 0, 0 }, 0 };
	struct close_rec pc = { 0 };
	struct rsc_scope *p, *older, *newer;
	struct rsc_entry *e;
	char buf[4];
	long t0, closed_at;
	pthread_t th;
	int peer;

	ck_assert_int_eq(pipe2(slow_pipe, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "older", &older), 0);
	e = t_adopted_pair(older, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, stamp_io, &io), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "newer", &newer), 0);
	ck_assert_int_eq(rsc_defer(newer, slow_exit, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, on_closed, &pc), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(pthread_create(&th, NULL, fill_slow_pipe_later, NULL), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 30, 0), 0);
	run_until_threads(&pc.calls, 1, 5000);
	closed_at = t_now_ms();
	pthread_join(th, NULL);
	close(slow_pipe[0]);
	close(slow_pipe[1]);
	ck_assert_int_eq(io.r.calls, 1);
	ck_assert(io.r.res == -ECANCELED || io.r.res == -EINTR);
	ck_assert_int_ge(closed_at - t0, 400);
	ck_assert_msg(io.at - t0 < 300, "the older child's receive was cancelled %ld ms in", io.at - t0);
	ck_assert_int_eq(pc.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	close(peer);
}
END_TEST

/* RSC_SHUTDOWN_ON_RELEASE on an adopted socket, a bare socket and a listener. */
START_TEST(shutdown_on_release_for_adopted_bare_and_listening_sockets)
{
	struct rsc_error *err = NULL;
	struct sockaddr_in a = t_loopback(0);
	struct rsc_scope *s;
	struct rsc_entry *ad, *bare, *l;
	char buf[4];
	int sv[2], dupfd, before = t_fd_count();

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	dupfd = fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
	ck_assert_int_ge(dupfd, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "fin", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], RSC_SHUTDOWN_ON_RELEASE, &ad), 0);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, RSC_SHUTDOWN_ON_RELEASE, &bare), 0);
	ck_assert_int_ge(rsc_entry_wait(bare), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), 4, RSC_SHUTDOWN_ON_RELEASE, &l), 0);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_entry_release_wait(ad, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert(peer_readable(sv[1], 2000));
	ck_assert_int_eq(read(sv[1], buf, sizeof(buf)), 0);
	/* -ENOTCONN from the shutdown of a socket never connected is no error. */
	ck_assert_int_eq(rsc_entry_release_wait(bare, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_null(err);
	close(dupfd);
	close(sv[1]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * The accept completed in the kernel, its CQE not yet dispatched, when the
 * close is asked: the connection arrives once the scope is closing, so the
 * runtime closes it (RSC_CTR_LATE_ACQUIRES) and the single-shot accept ends
 * with -ECANCELED.
 */
static void accept_done_before_close(bool graceful)
{
	struct acc_rec acc = { 0 };
	struct stats_rec st = { 0 };
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rsc_entry *l;
	long long late0;
	char buf[4];
	int cli, before;

	/* DEFER_TASKRUN would leave the accept itself to the loop's next enter,
	 * where the cancel goes first: no connection taken, none to count. A ring
	 * without it completes the accept on the thread's next syscall return. */
	ck_assert_int_eq(rsc_loop_close(t_loop), 0);
	ck_assert_int_eq(rsc_loop_new(&t_loop, 64, RSC_LOOP_NO_DEFER_TASKRUN), 0);
	late0 = rsc_loop_counter(t_loop, RSC_CTR_LATE_ACQUIRES);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	ck_assert_int_eq(rsc_accept(l, 0, count_accept, &acc), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	cli = t_connect(&at);
	usleep(20 * 1000); /* the kernel's accept completes meanwhile */
	if (graceful)
		ck_assert_int_eq(rsc_scope_close_graceful(s, 1000, on_closed_stats, &st), 0);
	else
		ck_assert_int_eq(rsc_scope_close(s, on_closed_stats, &st), 0);
	run_until(&st.c.calls, 1, 3000);
	t_run();
	ck_assert_int_eq(acc.calls, 1);
	ck_assert_int_eq(acc.conns, 0);
	ck_assert_int_eq(acc.res, -ECANCELED);
	ck_assert_int_ge(rsc_loop_counter(t_loop, RSC_CTR_LATE_ACQUIRES), late0 + 1);
	ck_assert(peer_readable(cli, 2000));
	ck_assert_int_le(read(cli, buf, sizeof(buf)), 0);
	close(cli);
	ck_assert_int_eq(t_fd_count(), before + 0);
}

START_TEST(accept_completed_before_a_close_is_closed_by_the_runtime)
{
	accept_done_before_close(false);
}
END_TEST

START_TEST(accept_completed_before_a_graceful_close_is_closed_by_the_runtime)
{
	accept_done_before_close(true);
}
END_TEST

/* A slot that arrives once the inbox's release was asked: closed by the runtime, unheard. */
START_TEST(arrival_after_the_inbox_release_is_closed_unheard)
{
	struct install_rec r = { 0 };
	struct arrival a = { 0 };
	struct io_rec rel = { 0 };
	struct rsc_loop *w;
	struct rsc_scope *ws, *s;
	struct rsc_entry *inbox, *e;
	unsigned long long addr;
	long long late0;
	int i;

	ck_assert_int_eq(rsc_loop_new(&w, 64, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(w, NULL, "worker", &ws), 0);
	ck_assert_int_eq(rsc_inbox(ws, on_arrival, &a, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_ge(rsc_loop_run(w, RSC_RUN_NOWAIT), 0);
	late0 = rsc_loop_counter(w, RSC_CTR_LATE_ACQUIRES);
	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, on_installed, &r), 0);
	/* The receiver has not turned since: the arrival waits in its ring. */
	ck_assert_int_eq(rsc_entry_release(inbox, on_entry_done, &rel), 0);
	t_run();
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_ge(r.res, 0);
	for (i = 0; i < 3000 && (rel.calls == 0 || rsc_loop_direct_used(w) > 0 ||
				 rsc_loop_counter(w, RSC_CTR_LATE_ACQUIRES) == late0); i++) {
		ck_assert_int_ge(rsc_loop_run(w, RSC_RUN_NOWAIT), 0);
		usleep(1000);
	}
	ck_assert_int_eq(rel.calls, 1);
	ck_assert_int_eq(a.calls, 0);
	ck_assert_int_eq(rsc_loop_counter(w, RSC_CTR_LATE_ACQUIRES), late0 + 1);
	ck_assert_int_eq(rsc_loop_direct_used(w), 0);
	ck_assert_int_eq(rsc_loop_shutdown(w, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
}
END_TEST

/* A deadline that passes with a hand-over in flight: the move completes, then the unwind. */
START_TEST(deadline_waits_for_a_hand_over_in_flight)
{
	struct install_rec r = { 0 };
	struct arrival a = { 0 };
	struct close_rec c = { 0 };
	struct rsc_loop *w;
	struct rsc_scope *ws, *s;
	struct rsc_entry *inbox, *e;
	unsigned long long addr;
	int i;

	ck_assert_int_eq(rsc_loop_new(&w, 64, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(w, NULL, "worker", &ws), 0);
	ck_assert_int_eq(rsc_inbox(ws, on_arrival, &a, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	t_direct_table(16, 2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, &c), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 1, 0), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, on_installed, &r), 0);
	run_until(&c.calls, 1, 3000);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_ge(r.res, 0);
	ck_assert_int_eq(c.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	for (i = 0; i < 100 && a.calls == 0; i++)
		ck_assert_int_ge(rsc_loop_run(w, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(rsc_loop_direct_used(w), 1);
	ck_assert_int_eq(rsc_loop_shutdown(w, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
}
END_TEST

/* Two applications' rings, one loop each: a CQE handed to the wrong loop is refused, untouched. */
START_TEST(shared_ring_cqe_of_another_loop_is_refused)
{
	struct shared *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct io_uring_cqe *cqe, copy;
	struct rsc_scope *sa, *sb;
	struct rsc_entry *ea, *eb;
	int i, got = 0;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(io_uring_queue_init(16, &a->ring, 0), 0);
	ck_assert_int_eq(io_uring_queue_init(16, &b->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&a->loop, &a->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&b->loop, &b->ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(a->loop, NULL, "a", &sa), 0);
	ck_assert_int_eq(rsc_scope_open(b->loop, NULL, "b", &sb), 0);
	ck_assert_int_eq(rsc_open(sa, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &ea), 0);
	ck_assert_int_eq(rsc_open(sb, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &eb), 0);
	ck_assert_int_ge(rsc_loop_run(a->loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_ge(rsc_loop_run(b->loop, RSC_RUN_NOWAIT), 0);
	for (i = 0; i < 100 && !got; i++) {
		struct __kernel_timespec ts = { .tv_nsec = 50000000L };

		if (io_uring_wait_cqe_timeout(&a->ring, &cqe, &ts) == 0 && cqe) {
			copy = *cqe;
			io_uring_cqe_seen(&a->ring, cqe);
			got = 1;
		}
	}
	ck_assert(got);
	ck_assert(copy.user_data & (1ULL << 63));
	ck_assert_int_eq(rsc_loop_dispatch(b->loop, &copy), -EINVAL);
	ck_assert_int_eq(rsc_entry_state(ea), RSC_ENTERING);
	ck_assert_int_eq(rsc_loop_dispatch(a->loop, &copy), 1);
	ck_assert_int_eq(rsc_entry_state(ea), RSC_ENTERED);
	for (i = 0; i < 100 && rsc_entry_state(eb) != RSC_ENTERED; i++)
		shared_reap(b, 50);
	ck_assert_int_eq(rsc_entry_state(eb), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close(sa, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(sb, NULL, NULL), 0);
	for (i = 0; i < 100 && (rsc_loop_alive(a->loop) > 0 || rsc_loop_alive(b->loop) > 0); i++) {
		shared_reap(a, 20);
		shared_reap(b, 20);
	}
	ck_assert_int_eq(rsc_loop_close(a->loop), 0);
	ck_assert_int_eq(rsc_loop_close(b->loop), 0);
	io_uring_queue_exit(&a->ring);
	io_uring_queue_exit(&b->ring);
	free(a);
	free(b);
}
END_TEST

/* A test that exhausts RLIMIT_NOFILE: valgrind does not apply it to io_uring's descriptors. */
#define add_emfile_test(tc, test)                                                                   \
	do {                                                                                        \
		if (t_under_valgrind())                                                             \
			printf("SKIP %s: valgrind does not apply RLIMIT_NOFILE to io_uring\n", #test); \
		else                                                                                \
			t_add_test_if(tc, test, t_has_accept_multishot(),                           \
				      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");                      \
	} while (0)

Suite *make_blackbox_srv_suite(void)
{
	Suite *s = suite_create("blackbox_srv");
	TCase *dl = tcase_create("deadlines");
	TCase *gr = tcase_create("graceful");
	TCase *po = tcase_create("posts");
	TCase *em = tcase_create("embedding");
	TCase *net = tcase_create("net");
	TCase *di = tcase_create("direct");
	TCase *ed = tcase_create("edges");
	TCase *ho = tcase_create("hosts");
	TCase *sv = tcase_create("servers");
	TCase *od = tcase_create("order");
	TCase *en = tcase_create("ends");
	TCase *ex = tcase_create("extremes");
	TCase *ra = tcase_create("races");
	TCase *hp = tcase_create("heap");
	TCase *gf = tcase_create("mixed");
	bool fixed_install = t_kernel_has(OP_FIXED_FD_INSTALL);

	t_add_fixture(dl);
	tcase_add_test(dl, deadline_cancels_recv_and_unwinds_with_etimedout);
	tcase_add_test(dl, deadline_move_on_unwinds_clean_and_counts);
	tcase_add_test(dl, deadline_rearmed_later_does_not_fire_at_the_first_time);
	tcase_add_test(dl, deadline_rearmed_earlier_fires_at_the_new_time);
	tcase_add_test(dl, deadline_bad_flags_leave_the_old_deadline);
	tcase_add_test(dl, deadline_refused_while_closing_or_failed);
	tcase_add_test(dl, deadline_parent_earlier_wins_over_child);
	tcase_add_test(dl, deadline_child_earlier_unwinds_alone);
	t_add_socket_test(dl, deadline_cancels_a_connect_in_flight_and_closes_its_socket);
	tcase_add_test(dl, deadline_ends_an_unbounded_grace);
	suite_add_tcase(s, dl);

	t_add_fixture(gr);
	tcase_add_test(gr, graceful_stats_count_drained_and_cancelled_exactly);
	tcase_add_test(gr, graceful_refuses_new_work_in_the_subtree);
	t_add_socket_test(gr, graceful_cancels_accept_with_one_callback_and_no_count);
	tcase_add_test(gr, graceful_without_io_closes_on_the_next_turn);
	tcase_add_test(gr, graceful_stats_count_failed_exits);
	tcase_add_test(gr, close_stats_arguments_and_plain_close);
	tcase_add_test(gr, graceful_bound_cuts_idle_io_at_the_grace);
	tcase_add_test(gr, graceful_child_survives_parent_close_but_not_parent_fail);
	tcase_add_test(gr, graceful_of_a_failed_scope_is_a_plain_close);
	suite_add_tcase(s, gr);

	t_add_fixture(po);
	tcase_add_test(po, posts_from_four_threads_run_once_each_in_order_on_the_loop);
	tcase_add_test(po, post_never_runs_inside_the_call_and_may_post_again);
	tcase_add_test(po, posts_queued_at_close_run_and_a_post_from_them_is_refused);
	/* valgrind runs no other thread while this one waits in io_uring_enter(2). */
	if (t_under_valgrind())
		printf("SKIP post_wakes_a_sleeping_loop_to_stop_a_server: valgrind holds the poster while the loop sleeps\n");
	else
		t_add_socket_test(po, post_wakes_a_sleeping_loop_to_stop_a_server);
	suite_add_tcase(s, po);

	t_add_fixture(em);
	tcase_add_test(em, loop_fd_polls_readable_for_work_and_posts);
	tcase_add_test(em, shared_ring_never_takes_the_applications_completions);
	suite_add_tcase(s, em);

	t_add_fixture(net);
	t_add_socket_test(net, connect_refused_fails_the_scope_and_closes_its_socket);
	tcase_add_test(net, connect_and_listen_refuse_bad_arguments);
	t_add_socket_test(net, accept_refuses_bad_arguments_and_states);
	t_add_socket_test(net, accepted_connection_has_its_own_scope_and_cloexec_fd);
	t_add_socket_test(net, accept_shutdown_on_release_sends_fin_despite_a_dup);
	t_add_socket_test(net, single_shot_accept_racing_close_calls_back_once);
	t_add_test_if(net, multishot_accept_closed_mid_storm_ends_once_and_leaks_nothing,
		      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(net, cancel_io_ends_every_op_and_keeps_the_entry);
	t_add_test_if(net, cancel_io_on_a_multishot_listener_stops_accepting,
		      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	t_add_test_if(net, shutdown_wr_sends_eof_and_the_entry_still_receives,
		      t_kernel_has(IORING_OP_SHUTDOWN), "IORING_OP_SHUTDOWN (Linux 5.11)");
	suite_add_tcase(s, net);

	t_add_fixture(di);
	t_add_socket_test(di, direct_accept_is_a_slot_never_a_descriptor);
	t_add_socket_test(di, direct_connect_refused_frees_its_slot_with_one_error);
	t_add_socket_test(di, chain_socket_connect_send_in_one_submit);
	tcase_add_test(di, chain_middle_failure_releases_exactly_the_steps_before);
	tcase_add_test(di, chain_refuses_bad_steps);
	tcase_add_test(di, direct_table_full_fails_the_acquire_with_enfile_only);
	t_add_test_if(di, install_gives_a_cloexec_descriptor_and_frees_the_slot, fixed_install,
		      "IORING_OP_FIXED_FD_INSTALL (Linux 6.8)");
	t_add_test_if(di, install_no_cloexec_and_release_closes_it, fixed_install,
		      "IORING_OP_FIXED_FD_INSTALL (Linux 6.8)");
	t_add_test_if(di, hand_over_moves_the_slot_and_a_gone_inbox_is_stale, t_has_hand_over(),
		      "IORING_MSG_SEND_FD (Linux 6.0)");
	suite_add_tcase(s, di);

	t_add_fixture(ed);
	tcase_add_test(ed, deadline_heap_keeps_every_last_setting);
	tcase_add_test(ed, deadline_cannot_be_set_from_its_own_unwind);
	tcase_add_test(ed, deadline_of_parent_cuts_a_child_grace);
	tcase_add_test(ed, graceful_child_deadline_counts_as_drained);
	tcase_add_test(ed, graceful_child_closed_during_grace_counts_as_drained);
	tcase_add_test(ed, graceful_entry_drained_then_busy_counts_in_both);
	t_add_test_if(ed, graceful_waits_for_a_multishot_receive, t_has_recv_multishot(),
		      "IORING_RECV_MULTISHOT (Linux 6.0)");
	add_emfile_test(ed, multishot_accept_recovers_from_emfile);
	add_emfile_test(ed, graceful_close_from_a_shortage_callback_ends_the_accept);
	tcase_add_test(ed, shared_ring_leaves_an_open_application_chain_whole);
	tcase_add_test(ed, shared_ring_refuses_bad_rings);
	t_add_test_if(ed, shared_ring_close_waits_for_the_post_wakeup, t_has_post_msg_ring(),
		      "IORING_OP_MSG_RING (Linux 5.18)");
	t_add_socket_test(ed, chain_cut_by_close_while_connecting_frees_every_slot);
	t_add_socket_test(ed, chain_connect_deadline_cancels_the_send_first);
	t_add_test_if(ed, hand_over_after_cancel_io_from_the_last_callback,
		      t_has_hand_over() && t_kernel_has(IORING_OP_SOCKET), "IORING_MSG_SEND_FD (Linux 6.0)");
	tcase_add_test(ed, direct_entry_detach_refused_move_carries_the_slot);
	t_add_test_if(ed, shutdown_half_closes_a_direct_slot,
		      t_kernel_has(IORING_OP_SHUTDOWN) && t_kernel_has(IORING_OP_SOCKET),
		      "IORING_OP_SHUTDOWN (Linux 5.11)");
	t_add_test_if(ed, deadline_waits_for_an_install_in_flight, fixed_install,
		      "IORING_OP_FIXED_FD_INSTALL (Linux 6.8)");
	suite_add_tcase(s, ed);

	t_add_fixture(ho);
	tcase_add_test(ho, pollable_loop_wakes_its_host_for_a_deadline);
	t_add_test_if(ho, shared_ring_posts_from_threads_all_run, t_has_post_msg_ring(),
		      "IORING_OP_MSG_RING (Linux 5.18)");
	tcase_add_test(ho, shared_ring_cq_overflow_loses_nothing);
	tcase_add_test(ho, shared_ring_deadline_passes_through_dispatch);
	tcase_add_test(ho, deadline_set_during_the_grace_ends_it);
	t_add_test_if(ho, deadline_on_a_server_ends_accept_and_connections, t_has_accept_multishot(),
		      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(ho, deadline_rearmed_per_request_keeps_an_active_connection);
	t_add_test_if(ho, direct_multishot_accept_backs_off_on_a_full_table, t_has_accept_multishot(),
		      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	t_add_test_if(ho, hand_over_refused_by_a_full_receiver_keeps_the_slot, t_has_hand_over(),
		      "IORING_MSG_SEND_FD (Linux 6.0)");
	t_add_test_if(ho, direct_pipe_holds_two_slots_and_refuses_moves, t_kernel_has(OP_PIPE),
		      "IORING_OP_PIPE (Linux 6.16)");
	t_add_test_if(ho, release_cancels_two_ops_with_one_cancel_fd, t_has_cancel_fd(),
		      "IORING_ASYNC_CANCEL_FD (Linux 5.19)");
	suite_add_tcase(s, ho);

	t_add_fixture(sv);
	t_add_test_if(sv, graceful_inbox_holds_no_grace_and_closes_late_arrivals, t_has_hand_over(),
		      "IORING_MSG_SEND_FD (Linux 6.0)");
	add_emfile_test(sv, graceful_ends_an_accept_backing_off);
	tcase_add_test(sv, shared_ring_release_waits_for_the_applications_chain);
	tcase_add_test(sv, shared_ring_with_defer_taskrun_works);
	t_add_socket_test(sv, connect_deadline_to_a_full_backlog_times_out_and_closes);
	t_add_socket_test(sv, listen_on_a_taken_port_fails_with_bind_and_closes);
	t_add_socket_test(sv, unix_listener_release_leaves_the_path);
	t_add_socket_test(sv, ipv6_connect_and_accept_on_loopback);
	t_add_test_if(sv, connect_shutdown_on_release_follows_the_socket,
		      t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_SHUTDOWN),
		      "IORING_OP_SOCKET (Linux 5.19)");
	tcase_add_test(sv, audit_slots_agrees_while_slots_are_held);
	suite_add_tcase(s, sv);

	t_add_fixture(od);
	tcase_add_test(od, posts_of_all_threads_run_in_queue_order);
	t_add_test_if(od, shared_ring_dispatch_from_a_callback_is_refused, t_has_post_msg_ring(),
		      "IORING_OP_MSG_RING (Linux 5.18)");
	t_add_socket_test(od, chain_first_step_failure_cancels_all_after_it);
	tcase_add_test(od, chain_submit_after_its_scope_went);
	tcase_add_test(od, chain_left_unsubmitted_goes_with_its_loop);
	t_add_socket_test(od, direct_table_changes_and_refusals);
	t_add_test_if(od, install_keeps_shutdown_on_release, fixed_install && t_kernel_has(IORING_OP_SHUTDOWN),
		      "IORING_OP_FIXED_FD_INSTALL (Linux 6.8)");
	tcase_add_test(od, deadline_follows_scope_moves);
	tcase_add_test(od, deadline_moved_earlier_many_times_in_one_turn);
	suite_add_tcase(s, od);

	t_add_fixture(en);
	tcase_add_test(en, loop_close_refused_by_a_post_takes_posts_again);
	tcase_add_test(en, loop_shutdown_waits_for_a_grace);
	add_emfile_test(en, detach_from_a_shortage_callback_ends_the_accept);
	add_emfile_test(en, cancel_io_from_a_shortage_callback_ends_the_accept);
	t_add_test_if(en, hand_over_to_an_inbox_of_the_same_loop_fails_and_keeps_the_slot,
		      t_has_hand_over() && t_kernel_has(IORING_OP_SOCKET), "IORING_MSG_SEND_FD (Linux 6.0)");
	t_add_test_if(en, deadline_ends_a_multishot_receive, t_has_recv_multishot(),
		      "IORING_RECV_MULTISHOT (Linux 6.0)");
	t_add_test_if(en, multishot_receive_rearms_in_order_when_buffers_run_out, t_has_recv_multishot(),
		      "IORING_RECV_MULTISHOT (Linux 6.0)");
	suite_add_tcase(s, en);

	t_add_fixture(ex);
	tcase_add_test(ex, longest_deadline_timer_and_grace_do_not_wrap);
	t_add_socket_test(ex, longest_connect_timeouts_do_not_wrap);
	t_add_socket_test(ex, graceful_does_not_wait_for_a_connect_in_flight);
	tcase_add_test(ex, shared_ring_of_eight_takes_many_acquires_in_one_turn);
	suite_add_tcase(s, ex);

	t_add_fixture(ra);
	t_add_socket_test(ra, deadline_racing_acquires_closes_every_late_one);
	t_add_test_if(ra, graceful_mid_storm_of_direct_accepts_frees_every_slot, t_has_accept_multishot(),
		      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	t_add_test_if(ra, hand_overs_racing_a_receiver_deadline_leak_no_slot, t_has_hand_over(),
		      "IORING_MSG_SEND_FD (Linux 6.0)");
	suite_add_tcase(s, ra);

	t_add_fixture(hp);
	tcase_add_test(hp, deadline_next_in_line_passes_when_the_earliest_goes);
	tcase_add_test(hp, deadline_of_a_freed_scope_never_reaches_its_successor);
	tcase_add_test(hp, deadline_reset_replaces_its_flags);
	tcase_add_test(hp, deadline_of_a_closed_subtree_fires_for_nobody);
	tcase_add_test(hp, loop_shutdown_ends_a_pending_deadline_at_once);
	suite_add_tcase(s, hp);

	t_add_fixture(gf);
	tcase_add_test(gf, fail_during_the_grace_ends_it_with_its_error);
	tcase_add_test(gf, grandchild_deadline_during_a_grace_under_a_closing_parent);
	tcase_add_test(gf, fail_above_a_grace_ends_it_and_each_close_hears_its_error);
	tcase_add_test(gf, loop_fd_readable_for_an_adoption_and_closed_with_the_loop);
	tcase_add_test(gf, graceful_timers_hold_the_grace_and_new_ones_follow_the_rules);
	tcase_add_test(gf, pollable_loop_wakes_its_host_for_a_post_from_a_post);
	tcase_add_test(gf, graceful_stats_count_early_releases_that_failed);
	tcase_add_test(gf, deadline_cancels_an_older_child_at_once_behind_a_slow_exit);
	t_add_socket_test(gf, accept_completed_before_a_close_is_closed_by_the_runtime);
	t_add_socket_test(gf, accept_completed_before_a_graceful_close_is_closed_by_the_runtime);
	t_add_test_if(gf, arrival_after_the_inbox_release_is_closed_unheard, t_has_hand_over(),
		      "IORING_MSG_SEND_FD (Linux 6.0)");
	t_add_test_if(gf, deadline_waits_for_a_hand_over_in_flight, t_has_hand_over(),
		      "IORING_MSG_SEND_FD (Linux 6.0)");
	tcase_add_test(gf, shared_ring_cqe_of_another_loop_is_refused);
	t_add_test_if(gf, shutdown_on_release_for_adopted_bare_and_listening_sockets,
		      t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_SHUTDOWN),
		      "IORING_OP_SOCKET (Linux 5.19)");
	t_add_test_if(gf, hand_over_into_a_shared_ring_loop_carries_address_and_shutdown,
		      t_has_hand_over() && t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_SHUTDOWN),
		      "IORING_MSG_SEND_FD (Linux 6.0)");
	t_add_test_if(gf, graceful_refuses_a_hand_over_but_lets_an_install_run,
		      t_has_hand_over() && fixed_install, "IORING_MSG_SEND_FD (Linux 6.0), IORING_OP_FIXED_FD_INSTALL (6.8)");
	suite_add_tcase(s, gf);
	return s;
}
