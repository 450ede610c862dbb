/* SPDX-License-Identifier: MIT */
/*
 * A cancelling unwind (a deadline, rsc_scope_fail, a failed acquire) reaches
 * the whole subtree at once (DESIGN 2.6 and 5, Trio: "cancellation is
 * delivered to all of it"; rsc_scope_set_deadline(3): "everything still in
 * flight in the scope and its children ... is cancelled"), while the exits
 * still go in strict LIFO order (DESIGN 2.3-2.5).
 *
 * The shape of most tests: a scope p with an older child c1, whose connect
 * waits in a full AF_UNIX backlog (or whose receive waits on an idle
 * socket), and a newer child c2 whose custom exit holds its release until a
 * byte arrives on a pipe. Something cancels p. c2 goes first and holds; c1's
 * connect (or receive) must end at once, not when c2's release lets c1's
 * turn come. The byte is written when c1's connect or receive ends, or by a
 * guard timer after 1.5 s, so that a broken build fails rather than hangs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* ----------------------------------------------------------------- the log */

static char log_buf[1024];

static void log_add(const char *fmt, const char *a, const char *b)
{
	size_t n = strlen(log_buf);

	snprintf(log_buf + n, sizeof(log_buf) - n, "%s", n ? "," : "");
	n = strlen(log_buf);
	snprintf(log_buf + n, sizeof(log_buf) - n, fmt, a, b);
}

/* Where @what first shows in the log, or a large number when it does not. */
static size_t at(const char *what)
{
	const char *p = strstr(log_buf, what);

	return p ? (size_t)(p - log_buf) : (size_t)-1;
}

#define ASSERT_BEFORE(a, b)                                                            \
	ck_assert_msg(at(a) < at(b), "'%s' must come before '%s' in: %s", a, b, log_buf)

/* Releases and failed acquires, as the trace reports them, in order. */
static void trace_after(struct recorder *r, const struct event *e)
{
	char what[96];

	(void)r;
	if (e->ev == RSC_EV_RELEASED) {
		snprintf(what, sizeof(what), "%s/%s", e->scope, e->entry);
		log_add("rel:%s%s", what, "");
	} else if (e->ev == RSC_EV_ENTER_FAILED) {
		snprintf(what, sizeof(what), "%s/%s", e->scope, e->entry);
		log_add("fail:%s:%s", what, rsc_err_name(e->res));
	}
}

/* ---------------------------------------------------------- a held release */

/* Enters at once; its exit reads one byte of a pipe, so its release (and
 * with it the unwind of everything older) waits until the test writes it. */
struct hold {
	int rfd, wfd;
	bool written;
	char buf[1];
	int exit_calls;
	int pending;
};

static int hold_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
}

static int hold_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct hold *h = arg;
	struct io_uring_sqe *sqe;
	int ret;

	h->exit_calls++;
	h->pending = pending ? rsc_error_errno(pending) : 0;
	log_add("hold-exit:%s%s", pending ? rsc_err_name(h->pending) : "none", "");
	ret = rsc_entry_get_sqes(e, 1, &sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_read(sqe, h->rfd, h->buf, 1, 0);
	return 0;
}

static const struct rsc_manager hold_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "hold",
	.enter = hold_enter,
	.exit = hold_exit,
};

static struct hold the_hold;

static void hold_let_go(void)
{
	if (!the_hold.written) {
		the_hold.written = true;
		ck_assert_int_eq(write(the_hold.wfd, "x", 1), 1);
	}
}

/* The guard: lets the hold go after 1.5 s whatever happened. */
static void guard_fired(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	(void)data;
	if (res == -ETIME) {
		log_add("guard%s%s", "", "");
		hold_let_go();
	}
}

/* ------------------------------------------------------ the other entries */

static int defer_pending;

static int defer_fn(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)arg;
	defer_pending = pending ? rsc_error_errno(pending) : 0;
	log_add("defer:%s%s", pending ? rsc_err_name(defer_pending) : "none", "");
	return 0;
}

/* c1's connect or receive ended: the hold may go now. */
static void connect_ended(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)data;
	log_add("connect-cb:%s%s", rsc_err_name(res), "");
	hold_let_go();
}

static int recv_res = 1;

static void recv_ended(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	(void)data;
	recv_res = res;
	log_add("recv:%s%s", rsc_err_name(res), "");
	hold_let_go();
}

/* ---------------------------------------------------------------- the tree */

enum what_in_c1 { C1_CONNECT, C1_RECV, G1_CONNECT };

struct tree {
	struct rsc_scope *p, *c1, *g1, *c2, *guard;
	struct rsc_entry *conn;
	struct sockaddr_un sun;
	int lfd, fill[64], nfill;
	int peer; /* C1_RECV: the test's end of the pair */
	int closed, status;
};

static void on_p_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct tree *t = data;

	(void)s;
	(void)err;
	t->closed++;
	t->status = status;
}

static struct rsc_scope *open_scope(struct rsc_scope *parent, const char *name)
{
	struct rsc_scope *s;
	int ret = rsc_scope_open(t_loop, parent, name, &s);

	ck_assert_msg(ret == 0, "rsc_scope_open %s: %s", name, rsc_last_error());
	return s;
}

/*
 * p { c1 { defer, connect | recv } or c1 { defer, g1 { connect } }, c2 { hold } },
 * every acquire of c1 in flight when this returns.
 */
static void build(struct tree *t, enum what_in_c1 what)
{
	struct rsc_scope *where;
	struct rsc_entry *r;
	int pfd[2], sv[2], before;

	memset(t, 0, sizeof(*t));
	t->peer = -1;
	t->lfd = -1;
	log_buf[0] = '\0';
	defer_pending = 1;
	recv_res = 1;
	memset(&the_hold, 0, sizeof(the_hold));
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	the_hold.rfd = pfd[0];
	the_hold.wfd = pfd[1];
	t_rec->after = trace_after;

	t->guard = open_scope(NULL, "guard");
	ck_assert_int_eq(rsc_timer(t->guard, 1500, guard_fired, NULL, NULL), 0);
	t->p = open_scope(NULL, "p");
	ck_assert_int_eq(rsc_scope_on_close(t->p, on_p_closed, t), 0);
	t->c1 = open_scope(t->p, "c1");
	ck_assert_int_eq(rsc_defer(t->c1, defer_fn, NULL, NULL), 0);
	where = t->c1;
	if (what == G1_CONNECT)
		where = t->g1 = open_scope(t->c1, "g1");
	if (what == C1_RECV) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		t->peer = sv[1];
		ck_assert_int_eq(rsc_adopt(where, sv[0], 0, &r), 0);
		ck_assert_int_eq(rsc_recv(r, the_hold.buf, 1, 0, recv_ended, NULL), 0);
	} else {
		t->lfd = t_full_unix_listener(&t->sun, t->fill, &t->nfill);
		before = t_fd_count();
		ck_assert_int_eq(rsc_connect(where, (struct sockaddr *)&t->sun, sizeof(t->sun), 0, 0,
					     &t->conn),
				 0);
		ck_assert_int_eq(rsc_entry_on_enter(t->conn, connect_ended, NULL), 0);
		/* The socket first, then the connect goes out and waits for room. */
		while (t_fd_count() == before)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	}
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	if (t->conn)
		ck_assert_int_eq(rsc_entry_state(t->conn), RSC_ENTERING);
	t->c2 = open_scope(t->p, "c2");
	ck_assert_int_eq(rsc_push(t->c2, &hold_manager, &the_hold, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	log_buf[0] = '\0'; /* the enters are not what the tests look at */
}

static void run_until_p_unwound(struct tree *t)
{
	while (!t->closed)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
}

/* Closes p (its status @want, its chain in *@errp if not NULL) and the rest. */
static void finish(struct tree *t, int want, struct rsc_error **errp)
{
	ck_assert_int_eq(rsc_scope_close_wait(t->p, errp), want);
	ck_assert_int_eq(rsc_scope_close_wait(t->guard, NULL), 0);
	t_run();
	close(the_hold.rfd);
	close(the_hold.wfd);
	if (t->peer >= 0)
		close(t->peer);
	if (t->lfd >= 0)
		t_full_unix_listener_close(t->lfd, t->fill, t->nfill);
	ck_assert(!t_fd_open_to(t_path("full"))); /* the path, not any name with "full" in it (a build directory) */
}

/*
 * The order every cancelling unwind of the tree must show: c2's hold exits
 * first and holds; c1's connect is cancelled meanwhile; only when the hold
 * is released do c1's exits run, its socket then its defer, with @pending.
 */
static void assert_connect_cut_at_once(const char *conn_scope, const char *pending)
{
	char hold_exit[64], defer[64], conn_fail[64], sock_rel[64];

	snprintf(hold_exit, sizeof(hold_exit), "hold-exit:%s", pending);
	snprintf(defer, sizeof(defer), "defer:%s", pending);
	snprintf(conn_fail, sizeof(conn_fail), "fail:%s/connect:ECANCELED", conn_scope);
	snprintf(sock_rel, sizeof(sock_rel), "rel:%s/socket", conn_scope);
	ck_assert_msg(at("guard") == (size_t)-1,
		      "c1's connect was not cancelled while c2's release held: %s", log_buf);
	ASSERT_BEFORE(hold_exit, conn_fail);
	ASSERT_BEFORE(conn_fail, "rel:c2/hold");
	ASSERT_BEFORE("connect-cb:ECANCELED", "rel:c2/hold");
	/* The exits themselves: strict LIFO, each with the pending error. */
	ASSERT_BEFORE("rel:c2/hold", sock_rel);
	ASSERT_BEFORE(sock_rel, defer);
	ASSERT_BEFORE(defer, "rel:c1/defer");
	ck_assert_int_eq(the_hold.exit_calls, 1);
}

/* ------------------------------------------------------------------- tests */

START_TEST(deadline_cancels_an_older_childs_connect_at_once)
{
	struct tree t;
	struct rsc_error *err = NULL;

	build(&t, C1_CONNECT);
	ck_assert_int_eq(rsc_scope_set_deadline(t.p, 30, 0), 0);
	run_until_p_unwound(&t);
	assert_connect_cut_at_once("c1", "ETIMEDOUT");
	ck_assert_int_eq(t.status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 1);
	finish(&t, -ETIMEDOUT, &err);
	/* The deadline's error alone: the cancelled connect raised nothing. */
	ck_assert_int_eq(rsc_error_depth(err), 1);
	ck_assert_str_eq(rsc_error_op(err), "deadline");
	rsc_error_free(err);
}
END_TEST

START_TEST(deadline_cancels_a_grandchilds_connect_at_once)
{
	struct tree t;

	build(&t, G1_CONNECT);
	ck_assert_int_eq(rsc_scope_set_deadline(t.p, 30, 0), 0);
	run_until_p_unwound(&t);
	assert_connect_cut_at_once("g1", "ETIMEDOUT");
	ck_assert_int_eq(t.status, -ETIMEDOUT);
	finish(&t, -ETIMEDOUT, NULL);
}
END_TEST

START_TEST(failure_cancels_an_older_childs_connect_at_once)
{
	struct tree t;

	build(&t, C1_CONNECT);
	ck_assert_int_eq(rsc_scope_fail(t.p, -EPROTO, "body"), 0);
	run_until_p_unwound(&t);
	assert_connect_cut_at_once("c1", "EPROTO");
	ck_assert_int_eq(t.status, -EPROTO);
	finish(&t, -EPROTO, NULL);
}
END_TEST

START_TEST(failed_acquire_cancels_an_older_childs_connect_at_once)
{
	struct tree t;

	build(&t, C1_CONNECT);
	ck_assert_int_eq(rsc_open(t.p, AT_FDCWD, t_path("missing"), O_RDONLY, 0, 0, NULL), 0);
	run_until_p_unwound(&t);
	assert_connect_cut_at_once("c1", "ENOENT");
	ASSERT_BEFORE("fail:p/file:ENOENT", "hold-exit");
	ck_assert_int_eq(t.status, -ENOENT);
	finish(&t, -ENOENT, NULL);
}
END_TEST

/* A child failed while its parent's close waits for a newer child: its own
 * unwind goes in its turn, but its acquires are cancelled at once. */
START_TEST(child_failed_in_its_parents_close_cancels_its_connect_at_once)
{
	struct tree t;

	build(&t, C1_CONNECT);
	ck_assert_int_eq(rsc_scope_close(t.p, NULL, NULL), 0);
	while (!the_hold.exit_calls)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_scope_fail(t.c1, -EPROTO, "body"), 0);
	run_until_p_unwound(&t); /* p is freed after this turn: its handle is done with */
	/* The parent's close is no cancellation: c2's hold saw no error. */
	ck_assert_int_eq(the_hold.pending, 0);
	ck_assert_int_eq(t.status, -EPROTO);
	ck_assert_msg(at("guard") == (size_t)-1,
		      "c1's connect was not cancelled while c2's release held: %s", log_buf);
	ASSERT_BEFORE("fail:c1/connect:ECANCELED", "rel:c2/hold");
	ASSERT_BEFORE("rel:c2/hold", "rel:c1/socket");
	ASSERT_BEFORE("rel:c1/socket", "defer:EPROTO");
	t_run();
	close(the_hold.rfd);
	close(the_hold.wfd);
	t_full_unix_listener_close(t.lfd, t.fill, t.nfill);
	ck_assert_int_eq(rsc_scope_close_wait(t.guard, NULL), 0);
}
END_TEST

/* rsc_scope_set_deadline(3): "everything still in flight in the scope and
 * its children (acquires and tracked I/O) is cancelled". */
START_TEST(deadline_cancels_an_older_childs_receive_at_once)
{
	struct tree t;

	build(&t, C1_RECV);
	ck_assert_int_eq(rsc_scope_set_deadline(t.p, 30, 0), 0);
	run_until_p_unwound(&t);
	ck_assert_msg(at("guard") == (size_t)-1,
		      "c1's receive was not cancelled while c2's release held: %s", log_buf);
	ck_assert_int_eq(recv_res, -ECANCELED);
	ASSERT_BEFORE("hold-exit:ETIMEDOUT", "recv:ECANCELED");
	ASSERT_BEFORE("recv:ECANCELED", "rel:c2/hold");
	ASSERT_BEFORE("rel:c2/hold", "rel:c1/adopt");
	ASSERT_BEFORE("rel:c1/adopt", "defer:ETIMEDOUT");
	ASSERT_BEFORE("defer:ETIMEDOUT", "rel:c1/defer");
	finish(&t, -ETIMEDOUT, NULL);
}
END_TEST

/* A failure cancels the acquires of the subtree, not its tracked I/O: the
 * receive ends in its entry's release, in c1's turn (rsc_scope_fail(3)). */
START_TEST(failure_leaves_an_older_childs_receive_to_its_release)
{
	struct tree t;

	build(&t, C1_RECV);
	ck_assert_int_eq(rsc_scope_fail(t.p, -EPROTO, "body"), 0);
	/* Let the hold go once the loop has had time to deliver any cancel. */
	while (!the_hold.exit_calls)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(recv_res, 1);
	hold_let_go();
	run_until_p_unwound(&t);
	ck_assert_int_eq(recv_res, -ECANCELED);
	ASSERT_BEFORE("rel:c2/hold", "recv:ECANCELED");
	ASSERT_BEFORE("recv:ECANCELED", "rel:c1/adopt");
	finish(&t, -EPROTO, NULL);
}
END_TEST

/* --------------------------------------------- deadlines leave the timer */

static int w_fired;

static void w_cb(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	(void)data;
	if (res == -ETIME)
		w_fired = 1;
}

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/*
 * Between the unwind's start and a timer of 700 ms, the loop reaps the
 * timer's CQE and nothing else: a deadline that ended when the unwind began
 * (at 400 ms; rsc_scope_set_deadline(3): "a deadline ends when the scope
 * starts unwinding for any reason") keeps no kernel timer armed to fire.
 */
static void assert_no_wakeup_for_an_ended_deadline(struct rsc_scope *w, long long t0)
{
	long long cqes;
	int i;

	while (!the_hold.exit_calls)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_msg(ms_now() - t0 < 400, "the machine is too slow for this test");
	cqes = rsc_loop_counter(t_loop, RSC_CTR_CQES);
	while (!w_fired)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_CQES) - cqes, 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 0);
	hold_let_go();
	ck_assert_int_eq(rsc_scope_close_wait(w, NULL), 0);
}

START_TEST(a_closing_scope_takes_its_deadline_off_the_timer_at_once)
{
	struct rsc_scope *p, *w;
	int pfd[2];
	long long t0 = ms_now();

	memset(&the_hold, 0, sizeof(the_hold));
	w_fired = 0;
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	the_hold.rfd = pfd[0];
	the_hold.wfd = pfd[1];
	p = open_scope(NULL, "p");
	w = open_scope(NULL, "w");
	ck_assert_int_eq(rsc_timer(w, 700, w_cb, NULL, NULL), 0);
	ck_assert_int_eq(rsc_push(p, &hold_manager, &the_hold, NULL), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 400, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close(p, NULL, NULL), 0);
	assert_no_wakeup_for_an_ended_deadline(w, t0);
	t_run();
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

START_TEST(a_failing_scope_takes_its_childrens_deadlines_off_the_timer_at_once)
{
	struct rsc_scope *p, *c1, *c2, *w;
	int pfd[2];
	long long t0 = ms_now();

	memset(&the_hold, 0, sizeof(the_hold));
	w_fired = 0;
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	the_hold.rfd = pfd[0];
	the_hold.wfd = pfd[1];
	p = open_scope(NULL, "p");
	w = open_scope(NULL, "w");
	ck_assert_int_eq(rsc_timer(w, 700, w_cb, NULL, NULL), 0);
	c1 = open_scope(p, "c1");
	ck_assert_int_eq(rsc_scope_set_deadline(c1, 400, 0), 0);
	c2 = open_scope(p, "c2");
	ck_assert_int_eq(rsc_push(c2, &hold_manager, &the_hold, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_fail(p, -EPROTO, NULL), 0);
	assert_no_wakeup_for_an_ended_deadline(w, t0);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -EPROTO);
	t_run();
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

Suite *make_cancel_subtree_suite(void)
{
	Suite *s = suite_create("cancel_subtree");
	TCase *tc = tcase_create("subtree");

	t_add_fixture(tc);
	t_add_socket_test(tc, deadline_cancels_an_older_childs_connect_at_once);
	t_add_socket_test(tc, deadline_cancels_a_grandchilds_connect_at_once);
	t_add_socket_test(tc, failure_cancels_an_older_childs_connect_at_once);
	t_add_socket_test(tc, failed_acquire_cancels_an_older_childs_connect_at_once);
	t_add_socket_test(tc, child_failed_in_its_parents_close_cancels_its_connect_at_once);
	tcase_add_test(tc, deadline_cancels_an_older_childs_receive_at_once);
	tcase_add_test(tc, failure_leaves_an_older_childs_receive_to_its_release);
	tcase_add_test(tc, a_closing_scope_takes_its_deadline_off_the_timer_at_once);
	tcase_add_test(tc, a_failing_scope_takes_its_childrens_deadlines_off_the_timer_at_once);
	suite_add_tcase(s, tc);
	return s;
}
