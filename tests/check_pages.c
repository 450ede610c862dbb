/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "tmgr.h"

/*
 * The man pages' promises, page by page, as an acceptance test written from
 * the pages would check them: each test names its page and the sentences it
 * checks, by what the caller can observe (errnos, descriptors, order, stats).
 */

/* Helpers shared by the pages below. */
static int pipe_pair(int p[2])
{
	return pipe2(p, O_CLOEXEC);
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static int defer_nothing(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return 0;
}

static void note_status(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	int *st = data;

	(void)s;
	st[0]++;
	st[1] = status;
	st[2] = err ? rsc_error_errno(err) : 0;
}

/* ---- rsc_scope_close_graceful(3), rsc_scope_close_stats(3) --------------- */

/* A timer in a scope of its own, so that a wait for a hang ends (bounded tests). */
struct guard {
	struct rsc_scope *s;
	int fired;
};

static void guard_fired(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	if (res == -ETIME)
		((struct guard *)data)->fired = 1;
}

static void guard_start(struct guard *g, unsigned ms)
{
	g->fired = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "guard", &g->s), 0);
	ck_assert_int_eq(rsc_timer(g->s, ms, guard_fired, g, NULL), 0);
}

static void guard_stop(struct guard *g)
{
	ck_assert_int_eq(rsc_scope_close(g->s, NULL, NULL), 0);
	ck_assert_msg(!g->fired, "the guard fired: the loop hung");
}

/* What one scope's close callback saw. */
struct gstats {
	int calls, status, ret;
	unsigned drained, cancelled, failed;
};

static void on_gclose(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct gstats *g = data;

	(void)err;
	g->calls++;
	g->status = status;
	g->ret = rsc_scope_close_stats(s, &g->drained, &g->cancelled, &g->failed);
}

static void on_recv_note(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	*(int *)data = res;
}

/* A parent and a child with one connection waiting in a recv. */
static struct rsc_entry *parent_and_busy_child(struct rsc_scope **p, struct rsc_scope **c,
					       int *peer, char *buf, int *res)
{
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, *p, "c", c), 0);
	e = t_adopted_pair(*c, peer);
	ck_assert_int_eq(rsc_recv(e, buf, 8, 0, on_recv_note, res), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	return e;
}

/* rsc_scope_close_stats(3): *drained counts "entries of the subtree" let finish,
 * also those of a child in a grace of its own begun first. */
START_TEST(close_stats_drained_counts_a_child_graceful_first)
{
	struct gstats gp = { 0 }, gc = { 0 };
	struct rsc_scope *p, *c;
	int peer, res = 1;
	char buf[8];

	parent_and_busy_child(&p, &c, &peer, buf, &res);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, on_gclose, &gc), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_gclose, &gp), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1); /* both wait for the recv */
	ck_assert_int_eq(write(peer, "x", 1), 1);
	t_run();
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(gc.calls, 1);
	ck_assert_int_eq(gp.calls, 1);
	ck_assert_uint_eq(gc.drained, 1);
	ck_assert_uint_eq(gp.drained, 1);
	ck_assert_uint_eq(gc.cancelled + gp.cancelled, 0);
	close(peer);
}
END_TEST

/* rsc_scope_close_stats(3): the same when the child's own grace begins inside the parent's. */
START_TEST(close_stats_drained_counts_a_child_graceful_inside)
{
	struct gstats gp = { 0 }, gc = { 0 };
	struct rsc_scope *p, *c;
	int peer, res = 1;
	char buf[8];

	parent_and_busy_child(&p, &c, &peer, buf, &res);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_gclose, &gp), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, on_gclose, &gc), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(write(peer, "x", 1), 1);
	t_run();
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(gc.calls + gp.calls, 2);
	ck_assert_uint_eq(gc.drained, 1);
	ck_assert_uint_eq(gp.drained, 1);
	ck_assert_uint_eq(gc.cancelled + gp.cancelled, 0);
	close(peer);
}
END_TEST

/* rsc_scope_close_stats(3): *exits_failed counts "entries of the subtree whose
 * release has completed with an error": a child's too, though the child is gone. */
START_TEST(close_stats_exits_failed_counts_a_childs_release)
{
	struct gstats gp = { 0 };
	struct rsc_scope *p, *c;
	struct rsc_entry *e;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	e = t_adopted_pair(c, &peer);
	(void)e;
	ck_assert_int_eq(rsc_fault_set(t_loop, "close:1:EIO"), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_gclose, &gp), 0);
	t_run();
	ck_assert_int_eq(gp.calls, 1);
	ck_assert_int_eq(gp.status, -EIO);
	ck_assert_uint_eq(gp.failed, 1);
	close(peer);
}
END_TEST

/* rsc_scope_close_graceful(3): an entry "released early" ends the I/O that
 * held the grace; the page's *drained counts it, *cancelled does not. */
START_TEST(close_stats_counts_an_early_release_as_drained)
{
	struct gstats gp = { 0 };
	struct rsc_scope *p, *c;
	struct rsc_entry *e;
	int peer, res = 1;
	char buf[8];

	e = parent_and_busy_child(&p, &c, &peer, buf, &res);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_gclose, &gp), 0);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(res, -ECANCELED);
	ck_assert_int_eq(gp.calls, 1);
	ck_assert_uint_eq(gp.drained, 1);
	ck_assert_uint_eq(gp.cancelled, 0);
	close(peer);
}
END_TEST

/* rsc_scope_close_stats(3): an entry whose I/O ended because "the close of a
 * scope below" released it during the grace counts as drained. */
START_TEST(close_stats_counts_a_child_closed_in_the_grace_as_drained)
{
	struct gstats gp = { 0 };
	struct rsc_scope *p, *c;
	int peer, res = 1;
	char buf[8];

	parent_and_busy_child(&p, &c, &peer, buf, &res);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_gclose, &gp), 0);
	ck_assert_int_eq(rsc_scope_close(c, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(res, -ECANCELED);
	ck_assert_int_eq(gp.calls, 1);
	ck_assert_uint_eq(gp.drained, 1);
	ck_assert_uint_eq(gp.cancelled, 0);
	close(peer);
}
END_TEST

static void accept_keep(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *e,
			void *data)
{
	struct rsc_entry **conn = data;

	(void)l;
	(void)cs;
	if (res >= 0)
		*conn = e;
}

/* rsc_scope_close_stats(3): *drained counts "those that were let finish": a
 * listener whose accept the graceful close itself cancelled ("It stops
 * acquiring at once") was not let finish, and is not counted. */
START_TEST(close_stats_does_not_count_the_cancelled_accept)
{
	struct sockaddr_in a;
	struct gstats g = { 0 };
	struct rsc_entry *l, *conn = NULL;
	struct rsc_scope *srv;
	int client, res = 1, turns = 0;
	char buf[8];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 4, &a);
	ck_assert_int_eq(rsc_accept(l, 0, accept_keep, &conn), 0);
	client = t_connect(&a);
	while (!conn && turns++ < 100)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_ptr_nonnull(conn);
	ck_assert_int_eq(rsc_accept(l, 0, accept_keep, &conn), 0);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, on_recv_note, &res), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 0, on_gclose, &g), 0);
	ck_assert_int_eq(write(client, "x", 1), 1);
	t_run();
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_uint_eq(g.drained, 1); /* the connection, not the listener */
	ck_assert_uint_eq(g.cancelled, 0);
	close(client);
}
END_TEST

/* rsc_scope_close_graceful(3): when grace_ms passes, "the unwind starts
 * anyway; each release then cancels its entry's remaining I/O": the I/O of a
 * child in an unbounded grace of its own too, which *cancelled counts. */
START_TEST(parent_grace_bound_cuts_a_childs_unbounded_grace)
{
	struct gstats gp = { 0 }, gc = { 0 };
	struct rsc_scope *p, *c;
	struct guard g;
	int peer, res = 1;
	char buf[8];

	parent_and_busy_child(&p, &c, &peer, buf, &res);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, on_gclose, &gc), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 20, on_gclose, &gp), 0);
	guard_start(&g, 2000);
	while (gp.calls == 0 && !g.fired)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	guard_stop(&g);
	ck_assert_int_eq(gp.calls, 1);
	ck_assert_int_eq(res, -ECANCELED);
	ck_assert_int_eq(gc.calls, 1);
	ck_assert_uint_eq(gp.cancelled, 1);
	ck_assert_uint_eq(gp.drained, 0);
	close(peer);
}
END_TEST

/* rsc_scope_close_graceful(3): "An ancestor's close (rsc_scope_close(3),
 * rsc_loop_shutdown(3)) is no cancellation: it waits for the grace to end." */
START_TEST(ancestor_close_waits_for_a_childs_grace)
{
	struct gstats gc = { 0 };
	struct rsc_scope *p, *c;
	int peer, res = 1, pst[3] = { 0 }, i;
	char buf[8];

	parent_and_busy_child(&p, &c, &peer, buf, &res);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, on_gclose, &gc), 0);
	ck_assert_int_eq(rsc_scope_close(p, note_status, pst), 0);
	for (i = 0; i < 5; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(res, 1); /* still let finish */
	ck_assert_int_eq(pst[0], 0);
	ck_assert_int_eq(write(peer, "x", 1), 1);
	t_run();
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(gc.calls, 1);
	ck_assert_uint_eq(gc.drained, 1);
	ck_assert_int_eq(pst[0], 1);
	ck_assert_int_eq(pst[1], 0);
	close(peer);
}
END_TEST

/* rsc_loop_shutdown(3): "a graceful close ... already requested is waited
 * for, grace included": a bounded one ends by its bound, its callback runs. */
START_TEST(shutdown_waits_for_a_bounded_grace)
{
	struct gstats g = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_loop *l;
	int sv[2], res = 1;
	char buf[8];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_loop_new(&l, 16, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &e), 0);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_recv_note, &res), 0);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 20, on_gclose, &g), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(res, -ECANCELED);
	ck_assert_uint_eq(g.cancelled, 1);
	close(sv[1]);
}
END_TEST

/* rsc_scope_close_graceful(3): "Nothing more can be pushed into scope or a
 * scope below it" (-ESHUTDOWN); the entries of the subtree "cannot be detached
 * or moved (-EALREADY)" but "may still be released early"; "While the grace
 * lasts the loop is alive". */
START_TEST(grace_refuses_pushes_and_moves_below)
{
	struct gstats gp = { 0 };
	struct rsc_scope *p, *c, *x, *o;
	struct rsc_entry *e, *y;
	int peer, res = 1, fds[2];
	char buf[8];

	ck_assert_int_eq(pipe_pair(fds), 0);
	e = parent_and_busy_child(&p, &c, &peer, buf, &res);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_gclose, &gp), 0);
	ck_assert_int_eq(rsc_adopt(c, fds[0], 0, &y), -ESHUTDOWN);
	ck_assert_int_eq(rsc_defer(c, defer_nothing, NULL, NULL), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_open(t_loop, c, "x", &x), -ESHUTDOWN);
	ck_assert_int_eq(rsc_entry_move(e, o), -EALREADY);
	ck_assert_int_eq(rsc_entry_detach(e), -EALREADY);
	ck_assert_int_eq(rsc_scope_move(c, o), -EALREADY);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 1);
	ck_assert_int_eq(gp.calls, 0);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(gp.calls, 1);
	ck_assert_int_eq(res, -ECANCELED);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	close(fds[0]);
	close(fds[1]);
	close(peer);
}
END_TEST

/* rsc_scope_close_graceful(3): a scope "whose rsc_scope_fail(3) is pending ...
 * is simply closed ... and grace_ms is ignored"; *drained and *cancelled "are
 * 0 for a scope closed any other way". */
START_TEST(graceful_close_after_a_failure_is_a_plain_close)
{
	struct gstats g = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	int peer, res = 1;
	char buf[8];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_recv_note, &res), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, on_gclose, &g), 0);
	t_run(); /* an unbounded grace would never end: the recv is idle */
	ck_assert_int_eq(g.calls, 1);
	ck_assert_int_eq(g.status, -EIO);
	ck_assert_int_eq(res, -ECANCELED);
	ck_assert_uint_eq(g.drained + g.cancelled, 0);
	close(peer);
}
END_TEST

/* ---- rsc_adopt(3) --------------------------------------------------------- */

/* rsc_adopt(3): "On failure nothing changes hands: the caller still owns fd,
 * and nothing is closed", and *entryp is set to NULL. */
START_TEST(adopt_failure_leaves_fd_with_the_caller)
{
	struct rsc_entry *e = (struct rsc_entry *)&e;
	struct rsc_scope *s, *c;
	int p[2];

	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 1U << 9, &e), -EINVAL);
	ck_assert_ptr_null(e);
	e = (struct rsc_entry *)&e;
	ck_assert_int_eq(rsc_adopt(NULL, p[0], 0, &e), -EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_adopt(s, -1, 0, &e), -EBADF);
	ck_assert_int_eq(rsc_adopt(s, 1000000, 0, &e), -EBADF);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	/* The close (or an ancestor's) was requested: -ESHUTDOWN. */
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), -ESHUTDOWN);
	ck_assert_int_eq(rsc_adopt(c, p[0], 0, &e), -ESHUTDOWN);
	ck_assert_ptr_null(e);
	t_run();
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), -ESTALE);
	ck_assert(fd_is_open(p[0]));
	close(p[0]);
	close(p[1]);
}
END_TEST

/* rsc_adopt(3): "A descriptor already owned by a live entry, of this loop or
 * any other loop of the process, is refused with -EEXIST". */
START_TEST(adopt_refuses_an_owned_descriptor_in_any_loop)
{
	struct rsc_loop *other;
	struct rsc_scope *s, *o;
	struct rsc_entry *e, *e2;
	int p[2];

	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e2), -EEXIST);
	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_adopt(o, p[0], 0, &e2), -EEXIST);
	/* Detached, it has no owner: another loop may adopt it. */
	ck_assert_int_eq(rsc_entry_detach(e), p[0]);
	ck_assert_int_eq(rsc_adopt(o, p[0], 0, &e2), 0);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(other), 0);
	ck_assert(!fd_is_open(p[0]));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(p[1]);
}
END_TEST

/* rsc_adopt(3): "made close-on-exec unless flags has RSC_NO_CLOEXEC, in which
 * case its flag is left as it is"; the entry is RSC_ENTERED with its fd at once. */
START_TEST(adopt_sets_cloexec_unless_asked_not_to)
{
	struct rsc_scope *s;
	struct rsc_entry *a, *b;
	int p[2];

	ck_assert_int_eq(pipe2(p, 0), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &a), 0);
	ck_assert_int_eq(rsc_entry_state(a), RSC_ENTERED);
	ck_assert_int_eq(rsc_entry_fd(a), p[0]);
	ck_assert_int_eq(fcntl(p[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(rsc_adopt(s, p[1], RSC_NO_CLOEXEC, &b), 0);
	ck_assert_int_eq(fcntl(p[1], F_GETFD) & FD_CLOEXEC, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(!fd_is_open(p[0]) && !fd_is_open(p[1]));
}
END_TEST

static void note_entered(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res + 1000;
}

/* rsc_adopt(3): the enter callback "come[s] from the loop, on its next turn,
 * never from inside this call". */
START_TEST(adopt_enter_callback_comes_from_the_loop)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int p[2], seen = 0;

	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, note_entered, &seen), 0);
	ck_assert_int_eq(seen, 0);
	ck_assert_int_eq(t_count_events(RSC_EV_ENTERED), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(seen, 1000 + p[0]);
	ck_assert_int_eq(t_count_events(RSC_EV_ENTERED), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(p[1]);
}
END_TEST

/* rsc_adopt(3): with RSC_SHUTDOWN_ON_RELEASE, "-ENOTSOCK for a descriptor that
 * is not a socket, is the release's error, with the operation "shutdown"";
 * "The close runs even if the shutdown fails". A never-connected socket's
 * -ENOTCONN is no error. */
START_TEST(adopt_shutdown_on_release_errors)
{
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int p[2], sk;

	ck_assert_int_eq(pipe_pair(p), 0);
	sk = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(sk, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sk, RSC_SHUTDOWN_ON_RELEASE, &e), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert(!fd_is_open(sk));
	ck_assert_int_eq(rsc_adopt(s, p[0], RSC_SHUTDOWN_ON_RELEASE, &e), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), -ENOTSOCK);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "shutdown");
	rsc_error_free(err);
	ck_assert(!fd_is_open(p[0]));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(p[1]);
}
END_TEST

/* rsc_adopt(3): -EEXIST also when "fd is one of the runtime's own
 * descriptors": the descriptor of rsc_loop_fd(3), which closing would break. */
START_TEST(adopt_refuses_the_runtimes_own_descriptor)
{
	struct rsc_entry *e = (struct rsc_entry *)&e;
	struct rsc_scope *s;
	struct rsc_loop *l;

	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, rsc_loop_fd(l), 0, &e), -EEXIST);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

/* ---- rsc_entry_detach(3) ---------------------------------------------------- */

/* rsc_entry_detach(3): the descriptor is "the caller's: the runtime never
 * closes it"; "The entry is freed inside this call"; "No exit hook, no
 * release callback and no trace event runs for it". */
START_TEST(detach_hands_the_fd_back_with_no_release)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int p[2], fd;

	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	t_run();
	fd = rsc_entry_detach(e);
	ck_assert_int_eq(fd, p[0]);
	ck_assert_int_eq(rsc_entry_state(e), -ESTALE);
	ck_assert_int_eq(rsc_entry_detach(e), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 0);
	ck_assert(fd_is_open(fd));
	close(fd);
	close(p[1]);
}
END_TEST

/* rsc_entry_detach(3): ERRORS -EBADF (custom or deferred), -EBUSY (acquire or
 * I/O in flight), -EALREADY (released, acquire failed, unwind owns it), -EINVAL. */
START_TEST(detach_errors_by_state)
{
	struct rsc_scope *s, *c, *f;
	struct rsc_entry *d, *o, *bad, *r, *io, *m;
	int peer, p[2], res = 1;
	char buf[8];

	t_make_files(1);
	ck_assert_int_eq(rsc_entry_detach(NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_detach((struct rsc_entry *)&s), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_defer(s, defer_nothing, NULL, &d), 0);
	ck_assert_int_eq(rsc_entry_detach(d), -EBADF);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &o), 0);
	ck_assert_int_eq(rsc_entry_detach(o), -EBUSY); /* its acquire is in flight */
	/* A failed acquire fails its scope: in one of its own. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "f", &f), 0);
	ck_assert_int_eq(rsc_open(f, AT_FDCWD, t_path("none"), O_RDONLY, 0, 0, &bad), 0);
	io = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(io, buf, sizeof(buf), 0, on_recv_note, &res), 0);
	ck_assert_int_eq(rsc_entry_detach(io), -EBUSY);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_ge(rsc_entry_wait(o), 0);
	ck_assert_int_lt(rsc_entry_wait(bad), 0);
	ck_assert_int_eq(rsc_entry_detach(bad), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(f, NULL), -ENOENT);
	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &r), 0);
	ck_assert_int_eq(rsc_entry_release(r, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_detach(r), -EALREADY);
	/* The close of an ancestor was requested: its unwind owns the entry. */
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "c", &c), 0);
	ck_assert_int_eq(rsc_adopt(c, p[1], 0, &m), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_detach(m), -EALREADY);
	ck_assert_int_eq(rsc_entry_detach(o), -EALREADY);
	t_run();
	ck_assert_int_eq(res, -ECANCELED);
	close(peer);
}
END_TEST

/* rsc_entry_detach(3): "the second entry of rsc_connect(3) or rsc_listen(3),
 * which owns the socket once it has entered" can be detached: the socket is
 * the caller's, still listening after the scope has gone. */
START_TEST(detach_a_listener_keeps_its_socket)
{
	struct sockaddr_in a;
	struct rsc_scope *s;
	struct rsc_entry *l;
	int fd, client, conn;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	l = t_listen_on_loopback(s, 4, &a);
	fd = rsc_entry_detach(l);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	client = t_connect(&a);
	conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(conn, 0);
	close(conn);
	close(client);
	close(fd);
}
END_TEST

/* rsc_entry_detach(3): "or failure of the scope ... has been requested":
 * a pending rsc_scope_fail owns the entry too. */
START_TEST(detach_refused_after_scope_fail)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int p[2];

	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "x"), 0);
	ck_assert_int_eq(rsc_entry_detach(e), -EALREADY);
	ck_assert_int_eq(rsc_entry_move(e, s), -EALREADY);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EIO);
	ck_assert(!fd_is_open(p[0]));
	close(p[1]);
}
END_TEST

/* ---- rsc_entry_move(3) ------------------------------------------------------ */

/* rsc_entry_move(3): "Moving it to its own scope makes it that scope's newest
 * entry, so that it is released first"; into another scope it is released in
 * to's unwind, "in LIFO order there". */
START_TEST(entry_move_changes_the_release_order)
{
	struct rsc_scope *a, *b;
	struct rsc_entry *e0;
	char order[64];

	t_make_files(4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e0), 0);
	t_open_files(a, 1, 2);
	t_open_files(b, 3, 1);
	t_run();
	ck_assert_int_eq(rsc_entry_move(e0, a), 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	t_events(RSC_EV_RELEASED, "a", order, sizeof(order));
	ck_assert_str_eq(order, "f0,f2,f1");
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a2", &a), 0);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e0), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_move(e0, b), 0);
	ck_assert_ptr_eq(rsc_entry_scope(e0), b);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert(t_fd_open_to("f0"));
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	t_events(RSC_EV_RELEASED, "b", order, sizeof(order));
	ck_assert_str_eq(order, "f0,f3");
}
END_TEST

/* rsc_entry_move(3): ERRORS -EINVAL (to closing), -EXDEV, -ESTALE, -EBUSY, -EALREADY. */
START_TEST(entry_move_errors_by_state)
{
	struct rsc_loop *other;
	struct rsc_scope *a, *b, *c, *o;
	struct rsc_entry *e, *busy, *r;
	int p[2];

	t_make_files(1);
	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, b, "c", &c), 0);
	ck_assert_int_eq(rsc_adopt(a, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_entry_move(NULL, b), -EINVAL);
	ck_assert_int_eq(rsc_entry_move(e, NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_entry_move(e, o), -EXDEV);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(other), 0);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &busy), 0);
	ck_assert_int_eq(rsc_entry_move(busy, b), -EBUSY);
	ck_assert_int_eq(rsc_adopt(a, p[1], 0, &r), 0);
	ck_assert_int_eq(rsc_entry_release(r, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_move(r, b), -EALREADY);
	/* A scope below one whose close was requested cannot receive an entry. */
	ck_assert_int_eq(rsc_scope_close(b, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_move(e, c), -EINVAL);
	ck_assert_int_eq(rsc_entry_move(e, b), -EINVAL);
	t_run();
	ck_assert_int_eq(rsc_entry_move(e, b), -ESTALE);
	ck_assert_ptr_eq(rsc_entry_scope(e), a);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert(!fd_is_open(p[0]));
}
END_TEST

/* rsc_entry_move(3): "Tracked I/O in flight on the entry ... stays in flight
 * and stays bound to it": the old scope's close does not cancel it, the new
 * one's does; "its errors reach to's error chain". */
START_TEST(entry_move_takes_its_io_and_its_errors_along)
{
	struct rsc_error *err = NULL;
	struct rsc_scope *a, *b;
	struct rsc_entry *e;
	int peer, res = 1;
	char buf[8];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	e = t_adopted_pair(a, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_recv_note, &res), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_move(e, b), 0);
	ck_assert_int_eq(rsc_entry_io_count(e), 1);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(rsc_entry_io_count(e), 1);
	ck_assert_int_eq(rsc_fault_set(t_loop, "close:1:EIO"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(b, &err), -EIO);
	ck_assert_int_eq(res, -ECANCELED);
	ck_assert_str_eq(rsc_error_scope(err), "b");
	rsc_error_free(err);
	close(peer);
}
END_TEST

/* rsc_scope_move(3): "Its entries, child scopes, acquires and I/O in flight go
 * with it, untouched": the old parent's close cancels none of them. */
START_TEST(scope_move_takes_its_acquires_along)
{
	struct rsc_scope *p, *q, *s;
	struct rsc_entry *e;
	int fd;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "q", &q), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_scope_move(s, q), 0);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), 0);
	fd = rsc_entry_wait(e);
	ck_assert_int_ge(fd, 0);
	ck_assert(t_fd_open_to("f0"));
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(q, NULL), 0);
	ck_assert_int_eq(rsc_scope_state(s), -ESTALE);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

/* rsc_entry_detach(3): "Under the full audit level ... a detached descriptor
 * is never reported as leaked". */
START_TEST(detached_descriptor_is_no_leak_under_full_audit)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int fd, fds[2];

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(pipe_pair(fds), 0); /* opened inside the scope's life */
	ck_assert_int_eq(rsc_adopt(s, fds[0], 0, &e), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	fd = rsc_entry_detach(e);
	ck_assert_int_eq(fd, fds[0]);
	close(fds[1]);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	close(fd);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_OFF), 0);
}
END_TEST

static int defer_counts_releases(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	*(int *)arg = t_count_events(RSC_EV_RELEASED);
	return 0;
}

/* rsc_defer(3): "The release is ordered: it starts only after every release
 * above it in the unwind has completed". */
START_TEST(defer_waits_for_the_releases_above_it)
{
	struct rsc_scope *s;
	int seen = -1;

	t_make_files(3);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	t_open_files(s, 0, 1);
	ck_assert_int_eq(rsc_defer(s, defer_counts_releases, &seen, NULL), 0);
	t_open_files(s, 1, 2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(seen, 2); /* f2 and f1 released before it ran */
}
END_TEST

/* rsc_scope_move(3) and rsc_entry_move(3): a scope in the grace of a graceful
 * close, or below one, has had its close requested: it receives no scope
 * (-EINVAL) and no entry (-EINVAL). */
START_TEST(nothing_moves_into_a_grace)
{
	struct gstats g = { 0 };
	struct rsc_scope *p, *c, *x;
	struct rsc_entry *e, *a;
	int peer, res = 1, fds[2];
	char buf[8];

	ck_assert_int_eq(pipe_pair(fds), 0);
	e = parent_and_busy_child(&p, &c, &peer, buf, &res);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "x", &x), 0);
	ck_assert_int_eq(rsc_adopt(x, fds[0], 0, &a), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_gclose, &g), 0);
	ck_assert_int_eq(rsc_scope_move(x, p), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(x, c), -EINVAL);
	ck_assert_int_eq(rsc_entry_move(a, p), -EINVAL);
	ck_assert_int_eq(rsc_entry_move(a, c), -EINVAL);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(g.calls, 1);
	ck_assert_ptr_eq(rsc_entry_scope(a), x);
	ck_assert_int_eq(rsc_scope_close_wait(x, NULL), 0);
	close(fds[1]);
	close(peer);
}
END_TEST

static void detach_on_enter(struct rsc_entry *e, int res, void *data)
{
	(void)res;
	*(int *)data = rsc_entry_detach(e);
}

static void detach_on_enter_after_close(struct rsc_entry *e, int res, void *data)
{
	int *r = data;

	(void)res;
	r[1] = rsc_scope_close(rsc_entry_scope(e), NULL, NULL);
	r[0] = rsc_entry_detach(e); /* -EALREADY now: the close owns it */
}

/* rsc_entry_detach(3) from an enter callback (allowed there, ringscope(7)):
 * once that callback has closed the entry's scope, the unwind owns the entry
 * (-EALREADY) and releases it. */
START_TEST(detach_from_an_enter_callback)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int fds[2], r[2] = { -1, -1 };

	ck_assert_int_eq(pipe_pair(fds), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, fds[0], 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, detach_on_enter_after_close, r), 0);
	t_run();
	ck_assert_int_eq(r[1], 0);
	ck_assert_int_eq(r[0], -EALREADY);
	ck_assert(!fd_is_open(fds[0]));
	/* Without the close, the detach hands the descriptor back. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s2", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, fds[1], 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, detach_on_enter, r), 0);
	t_run();
	ck_assert_int_eq(r[0], fds[1]);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(fd_is_open(fds[1]));
	close(fds[1]);
}
END_TEST

/* ---- rsc_scope_move(3) ------------------------------------------------------ */

/* rsc_scope_move(3): "From then on it is closed by new_parent's unwind
 * (first, being the newest child)"; NULL makes it top-level, out of any unwind. */
START_TEST(scope_move_changes_who_closes_it)
{
	struct rsc_scope *p, *x, *y, *z;
	char order[64];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "x", &x), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "y", &y), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "z", &z), 0);
	ck_assert_int_eq(rsc_scope_move(x, p), 0); /* now the newest: closed first */
	ck_assert_int_eq(rsc_scope_move(z, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), 0);
	order[0] = '\0';
	for (int i = 0; i < t_rec->n; i++)
		if (t_rec->ev[i].ev == RSC_EV_SCOPE_CLOSED)
			strcat(order, t_rec->ev[i].scope);
	ck_assert_str_eq(order, "xyp");
	ck_assert_int_eq(rsc_scope_state(z), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(z, NULL), 0);
}
END_TEST

/* rsc_scope_move(3): ERRORS -EINVAL (self, below, closing new parent),
 * -EXDEV, -EALREADY (closing, failing, or an ancestor closing), -ESTALE. */
START_TEST(scope_move_errors_by_state)
{
	struct rsc_loop *other;
	struct rsc_scope *a, *b, *c, *d, *o;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, a, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, b, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "d", &d), 0);
	ck_assert_int_eq(rsc_scope_move(NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(a, (struct rsc_scope *)&a), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(a, a), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(a, c), -EINVAL);
	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_scope_move(b, o), -EXDEV);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(other), 0);
	ck_assert_int_eq(rsc_scope_fail(d, -EIO, NULL), 0);
	ck_assert_int_eq(rsc_scope_move(d, a), -EALREADY);
	ck_assert_int_eq(rsc_scope_move(b, d), -EINVAL); /* new parent failing */
	ck_assert_int_eq(rsc_scope_close(a, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_move(c, NULL), -EALREADY); /* an ancestor closing */
	ck_assert_int_eq(rsc_scope_move(a, NULL), -EALREADY);
	t_run();
	ck_assert_int_eq(rsc_scope_move(b, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(d, NULL), -EIO);
}
END_TEST

/* ---- rsc_defer(3) ------------------------------------------------------------ */

struct deferred {
	int calls, ret;
	bool had_pending;
	int pending_errno;
	int push_ret, release_ret, detach_ret, move_ret;
	struct rsc_scope *scope;
};

static int defer_note(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct deferred *d = arg;
	struct rsc_entry *x;

	d->calls++;
	d->had_pending = pending != NULL;
	d->pending_errno = pending ? rsc_error_errno(pending) : 0;
	/* "from inside it the calls that push, release, detach or move return -EDEADLK" */
	d->push_ret = rsc_defer(d->scope, defer_nothing, NULL, &x);
	d->release_ret = rsc_entry_release(e, NULL, NULL);
	d->detach_ret = rsc_entry_detach(e);
	d->move_ret = rsc_entry_move(e, d->scope);
	return d->ret;
}

/* rsc_defer(3): "If this call fails, the callback is never called: nothing is
 * pushed"; *entryp is NULL; ERRORS -EINVAL, -ESHUTDOWN, -ESTALE. */
START_TEST(defer_failure_pushes_nothing)
{
	struct deferred d = { 0 };
	struct rsc_entry *e = (struct rsc_entry *)&e;
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_defer(s, NULL, &d, &e), -EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_defer(NULL, defer_note, &d, &e), -EINVAL);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	e = (struct rsc_entry *)&e;
	ck_assert_int_eq(rsc_defer(s, defer_note, &d, &e), -ESHUTDOWN);
	ck_assert_ptr_null(e);
	t_run();
	ck_assert_int_eq(rsc_defer(s, defer_note, &d, &e), -ESTALE);
	ck_assert_int_eq(d.calls, 0);
}
END_TEST

/* rsc_defer(3): "RSC_ENTERED when the call returns, with the value 0"; fn runs
 * "once, in the entry's LIFO turn", with NULL pending on a clean close;
 * rsc_entry_arg returns arg; the blocked calls return -EDEADLK inside it. */
START_TEST(defer_runs_once_in_its_lifo_turn)
{
	struct deferred d = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	char order[64];

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	d.scope = s;
	t_open_files(s, 0, 1);
	ck_assert_int_eq(rsc_defer(s, defer_note, &d, &e), 0);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(rsc_entry_fd(e), 0);
	ck_assert_ptr_eq(rsc_entry_arg(e), &d);
	t_open_files(s, 1, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(d.calls, 1);
	ck_assert(!d.had_pending);
	t_events(RSC_EV_RELEASED, "s", order, sizeof(order));
	ck_assert_str_eq(order, "f1,defer,f0");
	ck_assert_int_eq(d.push_ret, -EDEADLK);
	ck_assert_int_eq(d.release_ret, -EDEADLK);
	ck_assert_int_eq(d.detach_ret, -EDEADLK);
	ck_assert_int_eq(d.move_ret, -EDEADLK);
}
END_TEST

/* rsc_defer(3): fn "receives the error pending in the unwind", may return
 * RSC_EXIT_SUPPRESS to suppress it, or -errno: "a new error (operation "exit")
 * whose cause is the pending one". */
START_TEST(defer_sees_suppresses_or_raises_the_pending_error)
{
	struct deferred sup = { .ret = RSC_EXIT_SUPPRESS }, raise = { .ret = -EPIPE };
	struct rsc_error *err = NULL;
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	sup.scope = raise.scope = s;
	ck_assert_int_eq(rsc_defer(s, defer_note, &sup, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "body"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(sup.pending_errno, -EIO);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s2", &s), 0);
	raise.scope = s;
	ck_assert_int_eq(rsc_defer(s, defer_note, &raise, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "body"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EPIPE);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "exit");
	ck_assert_ptr_nonnull(rsc_error_cause(err));
	ck_assert_int_eq(rsc_error_errno(rsc_error_cause(err)), -EIO);
	ck_assert_str_eq(rsc_error_op(rsc_error_cause(err)), "body");
	rsc_error_free(err);
}
END_TEST

/* rsc_defer(3): fn runs "inside rsc_entry_release(3) when the entry is released
 * early", with NULL pending, and never again at the unwind. */
START_TEST(defer_runs_inside_an_early_release)
{
	struct deferred d = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	d.scope = s;
	ck_assert_int_eq(rsc_defer(s, defer_note, &d, &e), 0);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	ck_assert_int_eq(d.calls, 1);
	ck_assert(!d.had_pending);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(d.calls, 1);
}
END_TEST

/* ---- rsc_scope_fail(3) ------------------------------------------------------- */

static void note_on_close(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	int *seen = data;

	(void)s;
	(void)err;
	seen[0]++;
	seen[1] = status;
	seen[2] = rsc_loop_run(t_loop, RSC_RUN_NOWAIT); /* "they return -EDEADLK there" */
	seen[3] = rsc_scope_state(s);
}

/* rsc_scope_fail(3): ERRORS -EINVAL (err not negative), -EALREADY; "Nothing is
 * released inside this call"; -ESHUTDOWN and -EALREADY from then on; op NULL
 * means "fail"; the error names the scope and no entry; UNWOUND, on_close first. */
START_TEST(scope_fail_promises)
{
	struct rsc_error *err = NULL;
	struct rsc_scope *s, *c;
	struct rsc_entry *e, *x;
	int seen[4] = { 0 }, p[2];

	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_scope_fail(s, 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_fail(s, EIO, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_fail(NULL, -EIO, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_on_close(s, note_on_close, seen), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, NULL), 0);
	ck_assert(fd_is_open(p[0]));
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), -EALREADY);
	ck_assert_int_eq(rsc_adopt(s, p[1], 0, &x), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "c", &c), -ESHUTDOWN);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), -EALREADY);
	t_run();
	ck_assert(!fd_is_open(p[0]));
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(seen[0], 1);
	ck_assert_int_eq(seen[1], -EPROTO);
	ck_assert_int_eq(seen[2], -EDEADLK);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_on_close(s, note_on_close, seen), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EPROTO);
	ck_assert_str_eq(rsc_error_op(err), "fail");
	ck_assert_str_eq(rsc_error_scope(err), "s");
	ck_assert(rsc_error_entry(err) == NULL || rsc_error_entry(err)[0] == '\0');
	rsc_error_free(err);
	ck_assert_int_eq(seen[0], 1);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), -ESTALE);
	close(p[1]);
}
END_TEST

/* rsc_scope_fail(3): "-EALREADY ... its close ... was requested already". */
START_TEST(scope_fail_after_close_is_already)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), -EALREADY);
	t_run();
}
END_TEST

/* ---- rsc_scope_on_close(3) --------------------------------------------------- */

static void note_order(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	char *log = data;

	(void)err;
	(void)status;
	strcat(log, rsc_scope_name(s));
}

static void note_close_cb(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	char *log = data;

	(void)err;
	(void)status;
	strcat(log, "!");
	strcat(log, rsc_scope_name(s));
}

/* rsc_scope_on_close(3): called "whatever started the unwind", an ancestor's
 * too; "It replaces any callback set before; NULL removes it"; "once, from the
 * loop"; the close callback "comes after it". */
START_TEST(on_close_runs_once_whoever_closes)
{
	struct rsc_scope *p, *a, *b;
	char log[64] = "", other[64] = "";

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_on_close(a, note_order, other), 0);
	ck_assert_int_eq(rsc_scope_on_close(a, note_order, log), 0); /* replaces */
	ck_assert_int_eq(rsc_scope_on_close(b, note_order, log), 0);
	ck_assert_int_eq(rsc_scope_on_close(b, NULL, NULL), 0); /* removes */
	ck_assert_int_eq(rsc_scope_on_close(p, note_order, log), 0);
	ck_assert_int_eq(rsc_scope_close(p, note_close_cb, log), 0);
	ck_assert_str_eq(log, "");
	t_run();
	ck_assert_str_eq(log, "ap!p");
	ck_assert_str_eq(other, "");
	ck_assert_int_eq(rsc_scope_on_close(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_on_close(p, NULL, NULL), -ESTALE);
}
END_TEST

/* ---- rsc_entry_release_wait(3) ----------------------------------------------- */

/* rsc_entry_release_wait(3): *errp is "an error chain of one: its errno, its
 * operation ("close" ...), the entry's name and detail, and its scope"; "A
 * failed release is reported here only"; rsc_entry_fd then returns -EBADF. */
START_TEST(release_wait_reports_a_failed_close_here_only)
{
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int p[2];

	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "close:1:EIO"), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), -EIO);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_errno(err), -EIO);
	ck_assert_str_eq(rsc_error_op(err), "close");
	ck_assert_str_eq(rsc_error_entry(err), "adopt");
	ck_assert_ptr_nonnull(strstr(rsc_error_detail(err), "fd"));
	ck_assert_str_eq(rsc_error_scope(err), "s");
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
	ck_assert_int_eq(rsc_entry_fd(e), -EBADF);
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), -EALREADY);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_null(err);
	close(p[1]);
}
END_TEST

static void release_wait_inside(struct rsc_entry *e, int res, void *data)
{
	int *ret = data;

	(void)res;
	*ret = rsc_entry_release_wait(e, NULL);
}

/* rsc_entry_release_wait(3): -EDEADLK inside a loop callback, "Nothing is
 * released"; -EALREADY once the close of an ancestor was requested. */
START_TEST(release_wait_refusals)
{
	struct rsc_error *err = (struct rsc_error *)&err;
	struct rsc_scope *p, *c;
	struct rsc_entry *e;
	int fds[2], ret = 1;

	ck_assert_int_eq(pipe_pair(fds), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_adopt(c, fds[0], 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, release_wait_inside, &ret), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(ret, -EDEADLK);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert(fd_is_open(fds[0]));
	ck_assert_int_eq(rsc_entry_release_wait(NULL, &err), -EINVAL);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(rsc_scope_close(p, NULL, NULL), 0);
	err = (struct rsc_error *)&err;
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), -EALREADY);
	ck_assert_ptr_null(err);
	t_run();
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), -ESTALE);
	close(fds[1]);
}
END_TEST

/* rsc_entry_release_wait(3): "An entry still entering has its acquire
 * cancelled; if the acquire wins the race anyway, what it produced is released
 * before the call returns." */
START_TEST(release_wait_of_an_entering_entry_leaves_nothing_open)
{
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int ret;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ret = rsc_entry_release_wait(e, &err);
	ck_assert_msg(ret == 0 || ret == -ECANCELED, "release_wait: %d", ret);
	/* *errp names "the acquire's opcode when the acquire failed or was cancelled" */
	if (ret == -ECANCELED) {
		ck_assert_ptr_nonnull(err);
		ck_assert_str_eq(rsc_error_op(err), "openat");
		ck_assert_int_eq(rsc_error_errno(err), -ECANCELED);
		rsc_error_free(err);
	} else {
		ck_assert_ptr_null(err);
	}
	ck_assert(!t_fd_open_to(t_dir));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* ---- rsc_inbox(3), rsc_entry_hand_over(3), rsc_entry_install(3) -------------- */

static void note_res(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

/* A direct entry of the fixture's loop, entered, in a new scope "s". */
static struct rsc_entry *direct_entry(struct rsc_scope **s)
{
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", s), 0);
	ck_assert_int_eq(rsc_open(*s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	return e;
}

/* rsc_inbox(3): -ENXIO "The loop has no direct table"; "While it lives the loop
 * stays alive"; rsc_inbox_address: -EINVAL "not an inbox". */
START_TEST(inbox_needs_a_table_and_keeps_the_loop_alive)
{
	struct rsc_entry *in = (struct rsc_entry *)&in, *e;
	unsigned long long addr = 7;
	struct rsc_scope *s;
	int n = 0, p[2];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_inbox(s, t_count_arrival, &n, &in), -ENXIO);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_inbox(s, t_count_arrival, &n, &in), 0);
	ck_assert_int_eq(rsc_inbox_address(in, &addr), 0);
	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_inbox_address(e, &addr), -EINVAL);
	ck_assert_int_eq(rsc_inbox_address(NULL, &addr), -EINVAL);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_gt(rsc_loop_alive(t_loop), 0);
	ck_assert_int_eq(rsc_entry_release_wait(in, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
	ck_assert_int_eq(n, 0);
	close(p[1]);
}
END_TEST

/* rsc_entry_hand_over(3): -ESTALE: "inbox_addr names no inbox alive ... or it
 * was never an address. Nothing is sent, the slot stays with entry, and cb is
 * never called"; -EBADF for an entry that "holds no slot". */
START_TEST(hand_over_to_no_inbox_sends_nothing)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *in, *a;
	unsigned long long addr;
	int res = 1, slot, n = 0, p[2];

	e = direct_entry(&s);
	slot = rsc_entry_slot(e);
	ck_assert_int_eq(rsc_entry_hand_over(e, 0, note_res, &res), -ESTALE);
	ck_assert_int_eq(rsc_entry_hand_over(e, 0x123456789ULL, note_res, &res), -ESTALE);
	ck_assert_int_eq(rsc_inbox(s, t_count_arrival, &n, &in), 0);
	ck_assert_int_eq(rsc_inbox_address(in, &addr), 0);
	ck_assert_int_eq(rsc_entry_release_wait(in, NULL), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, note_res, &res), -ESTALE);
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &a), 0);
	ck_assert_int_eq(rsc_entry_hand_over(a, addr, note_res, &res), -EBADF);
	t_run();
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	close(p[1]);
}
END_TEST

/* rsc_entry_install(3): -EBADF "holds a process descriptor already, or is a
 * pipe"; -EBUSY "An install ... of the entry is in flight"; the descriptor
 * "enters the ownership ledger". */
START_TEST(install_refusals_and_the_ledger)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *a, *x;
	int fd = -1000, res = 1, p[2];

	e = direct_entry(&s);
	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &a), 0);
	ck_assert_int_eq(rsc_entry_install(a, 0, note_res, &res), -EBADF);
	ck_assert_int_eq(rsc_entry_install(NULL, 0, note_res, &res), -EINVAL);
	ck_assert_int_eq(rsc_entry_install(e, 0, note_res, &fd), 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, note_res, &res), -EBUSY);
	if (t_has_hand_over()) /* rsc_entry_hand_over(3): "or an install" */
		ck_assert_int_eq(rsc_entry_hand_over(e, 0, note_res, &res), -EBUSY);
	while (fd == -1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, note_res, &res), -EBADF);
	ck_assert_int_eq(rsc_adopt(s, fd, 0, &x), -EEXIST);
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(!fd_is_open(fd));
	close(p[1]);
}
END_TEST

/* rsc_entry_install(3): -ESHUTDOWN "As for rsc_read(3)": the entry's scope, or
 * a scope above it, is closing; nothing is installed and cb never runs. */
START_TEST(install_below_a_closing_scope_is_refused)
{
	struct rsc_scope *p, *c;
	struct rsc_entry *e;
	int res = 1;

	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_scope_close(p, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, note_res, &res), -ESHUTDOWN);
	t_run();
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

/* rsc_entry_install(3) and rsc_entry_hand_over(3): -EBADF for a pipe, "(two slots)". */
START_TEST(install_and_hand_over_refuse_a_pipe)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int res = 1;

	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_pipe(s, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, note_res, &res), -EBADF);
	ck_assert_int_eq(rsc_entry_hand_over(e, 0, note_res, &res), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
}
END_TEST

/* ---- rsc_scope_open(3), rsc_scope_close(3), rsc_scope_close_wait(3) ---------- */

static int open_on_close_ret;

static void open_on_close(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct rsc_scope *x;

	(void)s;
	(void)status;
	(void)err;
	open_on_close_ret = rsc_scope_open(data, NULL, "late", &x);
}

/* rsc_scope_open(3): ERRORS -ENAMETOOLONG (64 bytes or longer), -ESHUTDOWN
 * (an ancestor closing or failing, or the loop shut down), -ESTALE; *scopep NULL. */
START_TEST(scope_open_refusals)
{
	struct rsc_scope *a, *b, *c, *x = (struct rsc_scope *)&x;
	char name[RSC_NAME_MAX + 1];
	struct rsc_loop *l;

	memset(name, 'n', RSC_NAME_MAX);
	name[RSC_NAME_MAX] = '\0';
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, name, &x), -ENAMETOOLONG);
	ck_assert_ptr_null(x);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, a, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, b, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_fail(a, -EIO, NULL), 0);
	x = (struct rsc_scope *)&x;
	ck_assert_int_eq(rsc_scope_open(t_loop, c, "x", &x), -ESHUTDOWN);
	ck_assert_ptr_null(x);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), -EIO);
	ck_assert_int_eq(rsc_scope_open(t_loop, b, "x", &x), -ESTALE);
	/* A top-level scope asked for while the loop is shut down. */
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "last", &a), 0);
	open_on_close_ret = 1;
	ck_assert_int_eq(rsc_scope_on_close(a, open_on_close, l), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_eq(open_on_close_ret, -ESHUTDOWN);
}
END_TEST

struct still_valid {
	struct rsc_scope *child;
	struct rsc_entry *entry;
	int child_state, entry_state;
};

static void look_at_child(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct still_valid *v = data;

	(void)s;
	(void)status;
	(void)err;
	v->child_state = rsc_scope_state(v->child);
	v->entry_state = rsc_entry_state(v->entry);
}

/* rsc_scope_open(3): a scope "closed by its parent's unwind" is freed "with the
 * scope whose close callback ends that unwind. Until then the scope, its child
 * scopes and its entries stay valid." */
START_TEST(child_stays_valid_until_the_parents_callback_returns)
{
	struct still_valid v = { 0 };
	struct rsc_scope *p;
	int fds[2];

	ck_assert_int_eq(pipe_pair(fds), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &v.child), 0);
	ck_assert_int_eq(rsc_adopt(v.child, fds[0], 0, &v.entry), 0);
	ck_assert_int_eq(rsc_scope_close(p, look_at_child, &v), 0);
	t_run();
	ck_assert_int_eq(v.child_state, RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(v.entry_state, RSC_EXITED);
	ck_assert_int_eq(rsc_scope_state(v.child), -ESTALE);
	ck_assert_int_eq(rsc_entry_state(v.entry), -ESTALE);
	close(fds[1]);
}
END_TEST

/* rsc_scope_close(3): "Nothing is released inside this call: no exit hook, no
 * callback and no trace event runs in it"; "rsc_scope_state(3) still reports
 * RSC_SCOPE_OPEN until the unwind has started"; -ESHUTDOWN from then on. */
START_TEST(scope_close_does_nothing_inside_the_call)
{
	struct tmgr m = { .enter = TM_ENTER_NOP, .exit = TM_EXIT_CLOSE };
	struct rsc_scope *s, *x;
	struct rsc_entry *e;
	int events, seen[4] = { 0 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &m, &e), 0);
	t_run();
	events = t_rec->n;
	ck_assert_int_eq(rsc_scope_on_close(s, note_on_close, seen), 0);
	ck_assert_int_eq(rsc_scope_close(s, note_on_close, seen), 0);
	ck_assert_int_eq(m.exit_calls, 0);
	ck_assert_int_eq(seen[0], 0);
	ck_assert_int_eq(t_rec->n, events);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &m, NULL), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "x", &x), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close((struct rsc_scope *)e, NULL, NULL), -EINVAL);
	t_run();
	ck_assert_int_eq(m.exit_calls, 1);
	ck_assert_int_eq(seen[0], 2); /* on_close, then the close callback */
	ck_assert_int_eq(rsc_entry_state(e), -ESTALE);
}
END_TEST

/* rsc_scope_close(3): "A child whose close was requested earlier is waited for;
 * its result goes to its own callback, not to this scope." */
START_TEST(scope_close_leaves_a_closing_childs_result_to_it)
{
	struct rsc_scope *p, *c, *g;
	int pst[3] = { 0 }, cst[3] = { 0 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, c, "g", &g), 0);
	ck_assert_int_eq(rsc_scope_fail(c, -EPROTO, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(c, note_status, cst), 0);
	ck_assert_int_eq(rsc_scope_close(p, note_status, pst), 0);
	t_run();
	ck_assert_int_eq(cst[0], 1);
	ck_assert_int_eq(cst[1], -EPROTO);
	ck_assert_int_eq(pst[0], 1);
	ck_assert_int_eq(pst[1], 0);
	ck_assert_int_eq(pst[2], 0);
	ck_assert_int_eq(rsc_scope_state(g), -ESTALE);
}
END_TEST

/* rsc_scope_close(3): -ESTALE "or the loop itself has been freed". */
START_TEST(scope_close_after_its_loop_is_freed_is_stale)
{
	struct rsc_scope *s;
	struct rsc_loop *l;

	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(s), -ESTALE);
}
END_TEST

static void close_wait_inside(struct rsc_entry *e, int res, void *data)
{
	int *ret = data;
	struct rsc_error *err = (struct rsc_error *)&err;

	(void)res;
	ret[0] = rsc_scope_close_wait(rsc_entry_scope(e), &err);
	ret[1] = err == NULL;
}

/* rsc_scope_close_wait(3): -EDEADLK from a callback, "Nothing is closed";
 * "*errp is set to NULL first"; -EALREADY when the close was requested. */
START_TEST(scope_close_wait_refusals)
{
	struct rsc_error *err = (struct rsc_error *)&err;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int p[2], ret[2] = { 0 };

	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, close_wait_inside, ret), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(ret[0], -EDEADLK);
	ck_assert_int_eq(ret[1], 1);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert(fd_is_open(p[0]));
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EALREADY);
	ck_assert_ptr_null(err);
	err = (struct rsc_error *)&err;
	ck_assert_int_eq(rsc_scope_close_wait(NULL, &err), -EINVAL);
	ck_assert_ptr_null(err);
	t_run();
	close(p[1]);
}
END_TEST

/* ---- rsc_entry_release(3), rsc_entry_on_enter(3) ----------------------------- */

static void note_release(struct rsc_entry *e, int res, void *data)
{
	int *r = data;

	(void)e;
	r[0]++;
	r[1] = res;
}

/* rsc_entry_release(3): "An entered entry's exit runs inside this call";
 * cb "runs only from rsc_loop_run(3)"; "a second call fails with -EALREADY";
 * rsc_entry_fd is the number while RSC_EXITING, -EBADF once released. */
START_TEST(entry_release_exit_inside_callback_from_the_loop)
{
	struct tmgr m = { .enter = TM_ENTER_NOP, .exit = TM_EXIT_CLOSE };
	struct rsc_scope *s;
	struct rsc_entry *e, *a;
	int r[2] = { 0 }, p[2];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &m, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_release(e, note_release, r), 0);
	ck_assert_int_eq(m.exit_calls, 1);
	ck_assert_int_eq(r[0], 0);
	t_run();
	ck_assert_int_eq(r[0], 1);
	ck_assert_int_eq(r[1], 0);
	ck_assert_int_eq(rsc_entry_release(e, note_release, r), -EALREADY);
	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &a), 0);
	ck_assert_int_eq(rsc_entry_release(a, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_state(a), RSC_EXITING);
	ck_assert_int_eq(rsc_entry_fd(a), p[0]); /* in flight: still its number */
	ck_assert_int_eq(rsc_entry_release(a, NULL, NULL), -EALREADY);
	t_run();
	ck_assert_int_eq(rsc_entry_state(a), RSC_EXITED);
	ck_assert_int_eq(rsc_entry_fd(a), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(m.exit_calls, 1);
	ck_assert_int_eq(r[0], 1);
	close(p[1]);
}
END_TEST

/* rsc_entry_release(3): "A failed release is reported to cb only; without a
 * callback, it joins the scope's error chain." */
START_TEST(entry_release_failure_goes_to_cb_or_to_the_scope)
{
	struct tmgr m1 = { .exit = TM_EXIT_BADF }, m2 = { .exit = TM_EXIT_BADF };
	struct rsc_scope *s;
	struct rsc_entry *a, *b;
	struct rsc_error *err = NULL;
	int r[2] = { 0 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &m1, &a), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &m2, &b), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_release(a, note_release, r), 0);
	t_run();
	ck_assert_int_eq(r[1], -EBADF);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_entry_release(b, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EBADF);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
}
END_TEST

/* rsc_entry_release(3): for an entry still entering, "res is the acquire's
 * negative errno (-ECANCELED); its enter callback, if any, runs first";
 * rsc_entry_on_enter(3): -ECANCELED "when ... the entry was released early". */
START_TEST(entry_release_while_entering_reports_the_acquire)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int r[2] = { 0 }, entered = 0;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, note_entered, &entered), 0);
	ck_assert_int_eq(rsc_entry_release(e, note_release, r), 0);
	t_run();
	ck_assert_int_eq(r[0], 1);
	if (r[1] == -ECANCELED)
		ck_assert_int_eq(entered, 1000 - ECANCELED);
	else /* the open won the race: it was released then */
		ck_assert_int_eq(r[1], 0);
	ck_assert(!t_fd_open_to(t_dir));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

static void enter_then_wait(struct rsc_entry *e, int res, void *data)
{
	int *r = data;

	r[0] = res;
	r[1] = rsc_entry_state(e);
	r[2] = rsc_entry_wait(e);
	r[3] = rsc_scope_state(rsc_entry_scope(e));
}

/* rsc_entry_on_enter(3): "the entry is already RSC_ENTERED or RSC_FAILED, and,
 * after a failure in an open scope, the scope's unwind has started"; the
 * blocking helpers "return -EDEADLK there"; -EALREADY once it has run. */
START_TEST(on_enter_sees_the_settled_state)
{
	struct rsc_scope *s, *f;
	struct rsc_entry *e, *bad;
	int r[4] = { 0 }, rb[4] = { 0 };

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "f", &f), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_open(f, AT_FDCWD, t_path("none"), O_RDONLY, 0, 0, &bad), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, enter_then_wait, rb), 0); /* replaced next */
	ck_assert_int_eq(rsc_entry_on_enter(e, enter_then_wait, r), 0);
	ck_assert_int_eq(rsc_entry_on_enter(bad, enter_then_wait, rb), 0);
	t_run();
	ck_assert_int_ge(r[0], 0);
	ck_assert_int_eq(r[1], RSC_ENTERED);
	ck_assert_int_eq(r[2], -EDEADLK);
	ck_assert_int_eq(rb[0], -ENOENT);
	ck_assert_int_eq(rb[1], RSC_FAILED);
	ck_assert_int_ne(rb[3], RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_entry_on_enter(e, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(f, NULL), -ENOENT);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* ---- rsc_scope_set_deadline(3) ------------------------------------------------ */

static void run_until_called(const int *calls)
{
	int turns = 0;

	/* Bounded: a deadline of a few ms passes within a few turns. */
	while (*calls == 0 && turns++ < 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_gt(*calls, 0);
}

/* rsc_scope_set_deadline(3): ERRORS -EINVAL (bad flags), -ESHUTDOWN
 * (unwinding or unwound), -ESTALE; "an ms of 0 clears it (then
 * RSC_DEADLINE_MOVE_ON is ignored)"; "When the last deadline of the loop ends, the timer is removed". */
START_TEST(deadline_refusals_and_clearing)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(NULL, 10, 0), -EINVAL);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 10, 1U << 5), -EINVAL);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 60000, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 1);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 0, 0xff), -EINVAL);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 1); /* left as it was */
	ck_assert_int_eq(rsc_scope_set_deadline(s, 0, RSC_DEADLINE_MOVE_ON), 0);
	t_run(); /* returns: the timer is gone */
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_set_deadline(s, 10, 0), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EIO);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 10, 0), -ESTALE);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 0);
}
END_TEST

/* rsc_scope_set_deadline(3): "A child whose earlier deadline passes unwinds
 * alone; the parent stays open, and the child's -ETIMEDOUT reaches the parent
 * only if the child is still waiting for its close when the parent unwinds";
 * its error "names the operation "deadline" and the scope, and no entry";
 * each passing deadline adds one to RSC_CTR_DEADLINES, "with or without
 * RSC_DEADLINE_MOVE_ON". */
START_TEST(deadline_of_a_child_unwinds_it_alone)
{
	struct rsc_error *err = NULL;
	struct rsc_scope *p, *c, *m;
	int cst[3] = { 0 }, mst[3] = { 0 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "m", &m), 0);
	ck_assert_int_eq(rsc_scope_on_close(c, note_status, cst), 0);
	ck_assert_int_eq(rsc_scope_on_close(m, note_status, mst), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(c, 5, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(m, 5, RSC_DEADLINE_MOVE_ON), 0);
	run_until_called(cst);
	run_until_called(mst);
	ck_assert_int_eq(cst[1], -ETIMEDOUT);
	ck_assert_int_eq(mst[1], 0);
	ck_assert_int_eq(rsc_scope_state(p), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_state(c), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 2);
	ck_assert_int_eq(rsc_scope_close_wait(p, &err), -ETIMEDOUT);
	ck_assert_str_eq(rsc_error_op(err), "deadline");
	ck_assert_str_eq(rsc_error_scope(err), "c");
	ck_assert(rsc_error_entry(err) == NULL || rsc_error_entry(err)[0] == '\0');
	rsc_error_free(err);
}
END_TEST

/* rsc_scope_set_deadline(3): "A deadline that passes while the scope's close is
 * requested but has not yet started, for instance during the grace of
 * rsc_scope_close_graceful(3), still starts the unwind, with -ETIMEDOUT". */
START_TEST(deadline_set_during_a_grace_ends_it)
{
	struct gstats g = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	int peer, res = 1;
	char buf[8];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, on_recv_note, &res), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, on_gclose, &g), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 5, 0), 0);
	run_until_called(&g.calls);
	ck_assert_int_eq(g.status, -ETIMEDOUT);
	ck_assert_int_eq(res, -ECANCELED);
	ck_assert_uint_eq(g.cancelled, 1);
	ck_assert_uint_eq(g.drained, 0);
	close(peer);
}
END_TEST

/* ---- rsc_loop_fd(3), rsc_loop_post(3), rsc_loop_features(3) ------------------- */

static bool readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

/* Runs a pollable loop until its descriptor is quiet (bounded). */
static void quiet(struct rsc_loop *l)
{
	int i;

	for (i = 0; i < 100 && readable(rsc_loop_fd(l)); i++)
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert(!readable(rsc_loop_fd(l)));
}

/* rsc_loop_fd(3): readable when "work became due outside rsc_loop_run(3)": "a
 * close was requested", "an adopted entry's enter callback is due"; "It is
 * level-triggered in effect: it stays readable until the loop runs." */
START_TEST(loop_fd_turns_readable_for_work_due_outside_the_loop)
{
	struct rsc_scope *s, *c;
	struct rsc_entry *e;
	struct rsc_loop *l;
	int p[2];

	ck_assert_int_eq(rsc_loop_new(&l, 16, RSC_LOOP_POLLABLE), 0);
	ck_assert(rsc_loop_features(l) & RSC_FEAT_POLLABLE);
	ck_assert(!(rsc_loop_features(l) & RSC_FEAT_DEFER_TASKRUN));
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "c", &c), 0);
	quiet(l);
	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	ck_assert(readable(rsc_loop_fd(l)));
	ck_assert(readable(rsc_loop_fd(l))); /* still: nothing ran */
	quiet(l);
	ck_assert_int_eq(rsc_scope_close(c, NULL, NULL), 0);
	ck_assert(readable(rsc_loop_fd(l)));
	quiet(l);
	ck_assert_int_eq(rsc_scope_state(c), -ESTALE);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	quiet(l);
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert(!fd_is_open(p[0]));
	close(p[1]);
}
END_TEST

struct posts {
	char order[16];
	int n, run_ret;
};

static void post_a(struct rsc_loop *l, void *arg)
{
	struct posts *p = arg;

	p->order[p->n++] = 'a';
	p->run_ret = rsc_loop_run(l, RSC_RUN_NOWAIT);
}

static void post_b(struct rsc_loop *l, void *arg)
{
	struct posts *p = arg;

	(void)l;
	p->order[p->n++] = 'b';
}

/* rsc_loop_post(3): "it never runs inside this call, even on the loop's
 * thread"; "Posts run in the order they were queued ... each once";
 * rsc_loop_run fails inside fn with -EDEADLK; "While a post is queued,
 * rsc_loop_alive(3) returns 1"; -EINVAL for a NULL fn. */
START_TEST(loop_post_runs_later_in_order_once)
{
	struct posts p = { .run_ret = 1 };

	ck_assert_int_eq(rsc_loop_post(t_loop, NULL, &p), -EINVAL);
	ck_assert_int_eq(rsc_loop_post(NULL, post_a, &p), -EINVAL);
	ck_assert_int_eq(rsc_loop_post(t_loop, post_a, &p), 0);
	ck_assert_int_eq(rsc_loop_post(t_loop, post_b, &p), 0);
	ck_assert_int_eq(rsc_loop_post(t_loop, post_b, &p), 0);
	ck_assert_int_eq(p.n, 0);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 1);
	t_run();
	ck_assert_str_eq(p.order, "abb");
	ck_assert_int_eq(p.run_ret, -EDEADLK);
	t_run();
	ck_assert_int_eq(p.n, 3);
}
END_TEST

/* rsc_loop_post(3): "Posts still queued when the loop is closed run in
 * rsc_loop_close(3) or rsc_loop_shutdown(3), before the loop is freed." */
START_TEST(loop_post_still_queued_runs_at_close)
{
	struct posts p = { 0 }, q = { 0 };
	struct rsc_loop *l;

	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_post(l, post_b, &p), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(p.n, 1);
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_post(l, post_b, &q), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_eq(q.n, 1);
}
END_TEST

/* rsc_loop_features(3): "The value never changes during the life of the
 * loop"; RSC_FEAT_DEFER_TASKRUN is "Always set together with
 * RSC_FEAT_SINGLE_ISSUER"; RSC_LOOP_NO_DEFER_TASKRUN gives none. */
START_TEST(loop_features_are_consistent)
{
	struct rsc_loop *l;
	int f = rsc_loop_features(t_loop);

	ck_assert_int_ge(f, 0);
	if (f & RSC_FEAT_DEFER_TASKRUN)
		ck_assert(f & RSC_FEAT_SINGLE_ISSUER);
	ck_assert(!(f & RSC_FEAT_SHARED_RING));
	ck_assert(!(f & RSC_FEAT_POLLABLE));
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_features(t_loop), f);
	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_NO_DEFER_TASKRUN), 0);
	ck_assert(!(rsc_loop_features(l) & RSC_FEAT_DEFER_TASKRUN));
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(rsc_loop_features(NULL), -EINVAL);
}
END_TEST

/* ---- rsc_loop_new_from_ring(3), rsc_loop_dispatch(3) -------------------------- */

/* Submit the ring and hand every CQE to the loop until it has nothing alive. */
static void app_turns(struct io_uring *ring, struct rsc_loop *l)
{
	struct io_uring_cqe *cqe;
	int i;

	for (i = 0; i < 200 && rsc_loop_alive(l) > 0; i++) {
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(io_uring_submit(ring), 0);
		if (io_uring_wait_cqe(ring, &cqe) == 0) {
			ck_assert_int_ge(rsc_loop_dispatch(l, cqe), 0);
			io_uring_cqe_seen(ring, cqe);
		}
	}
	ck_assert_int_eq(rsc_loop_alive(l), 0);
}

/* rsc_loop_new_from_ring(3): a CQE "without it is the application's:
 * rsc_loop_dispatch() leaves it untouched and returns 0"; a tagged CQE that
 * "was dispatched already" is -EINVAL, "Nothing is dispatched"; the blocking
 * helpers "fail with -EOPNOTSUPP"; rsc_loop_close "fails with -EBUSY as long
 * as anything of ringscope's is in flight on the ring". */
START_TEST(shared_ring_dispatch_promises)
{
	struct io_uring_cqe *cqe, copy;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_loop *l;
	int before = t_fd_count();

	t_make_files(1);
	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ck_assert(rsc_loop_features(l) & RSC_FEAT_SHARED_RING);
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 42);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_wait(e), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_close(l), -EBUSY);
	ck_assert_int_eq(io_uring_submit_and_wait(&ring, 2), 2);
	for (int n = 0; n < 2; n++) {
		ck_assert_int_eq(io_uring_peek_cqe(&ring, &cqe), 0);
		copy = *cqe;
		if (cqe->user_data == 42) {
			ck_assert_int_eq(rsc_loop_dispatch(l, cqe), 0);
			ck_assert_int_eq(cqe->user_data, 42);
		} else {
			ck_assert_int_eq(rsc_loop_dispatch(l, cqe), 1);
			ck_assert_int_eq(rsc_loop_dispatch(l, &copy), -EINVAL);
		}
		io_uring_cqe_seen(&ring, cqe);
	}
	ck_assert_int_ge(rsc_entry_fd(e), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	app_turns(&ring, l);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	io_uring_queue_exit(&ring);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ---- rsc_read(3) and its kin, rsc_timeout(3), rsc_timer(3) ------------------------ */

static void io_note(struct rsc_entry *e, int res, void *buf, void *data)
{
	int *r = data;

	(void)e;
	r[0]++;
	r[1] = res;
	r[2] = buf == NULL;
}

/* rsc_read(3): ERRORS -EINVAL: "cb is NULL, buf is NULL with a non-zero len,
 * off is below -1, or flags is negative"; "If the call fails, the callback is
 * never called". */
START_TEST(io_argument_refusals)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int peer, r[3] = { 0 };
	char buf[4];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_read(e, NULL, 4, 0, io_note, r), -EINVAL);
	ck_assert_int_eq(rsc_write(e, buf, 4, -2, io_note, r), -EINVAL);
	ck_assert_int_eq(rsc_read(e, buf, 4, -1, NULL, r), -EINVAL);
	ck_assert_int_eq(rsc_recv(e, buf, 4, -1, io_note, r), -EINVAL);
	ck_assert_int_eq(rsc_send(e, buf, 4, -1, io_note, r), -EINVAL);
	ck_assert_int_eq(rsc_send(e, NULL, 4, 0, io_note, r), -EINVAL);
	ck_assert_int_eq(rsc_timer(s, 1, NULL, r, NULL), -EINVAL);
	ck_assert_int_eq(rsc_timer(NULL, 1, io_note, r, NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_io_count(e), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(r[0], 0);
	ck_assert_int_eq(rsc_entry_io_count(e), -ESTALE);
	ck_assert_int_eq(rsc_read(e, buf, 4, 0, io_note, r), -ESTALE);
	close(peer);
}
END_TEST

/* rsc_read(3): -EBADF "The entry is not entered (still entering, failed,
 * released), or its release has started"; -ESHUTDOWN "The entry's scope is
 * closing"; rsc_timer: -ESHUTDOWN when "an ancestor's [close] was requested". */
START_TEST(io_state_refusals)
{
	struct rsc_scope *s, *c, *f;
	struct rsc_entry *o, *bad, *a, *b;
	int peer, peer2, r[3] = { 0 };
	char buf[4];

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "f", &f), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &o), 0);
	ck_assert_int_eq(rsc_read(o, buf, 4, 0, io_note, r), -EBADF);
	ck_assert_int_eq(rsc_open(f, AT_FDCWD, t_path("none"), O_RDONLY, 0, 0, &bad), 0);
	ck_assert_int_lt(rsc_entry_wait(bad), 0);
	ck_assert_int_eq(rsc_read(bad, buf, 4, 0, io_note, r), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(f, NULL), -ENOENT);
	a = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_entry_release(a, NULL, NULL), 0);
	ck_assert_int_eq(rsc_send(a, "x", 1, 0, io_note, r), -EBADF);
	ck_assert_int_eq(rsc_timeout(a, 1, io_note, r), -EBADF);
	b = t_adopted_pair(c, &peer2);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_send(b, "x", 1, 0, io_note, r), -ESHUTDOWN);
	ck_assert_int_eq(rsc_timer(c, 1, io_note, r, NULL), -ESHUTDOWN);
	t_run();
	ck_assert_int_eq(r[0], 0);
	close(peer);
	close(peer2);
}
END_TEST

/* rsc_read(3): the calls work "on the descriptor that entry holds": an entry
 * that holds none (rsc_defer(3), rsc_timer(3)) is refused with -EBADF, not
 * read as descriptor 0; rsc_timeout() needs no descriptor and works there. */
START_TEST(io_on_an_entry_without_a_descriptor_is_refused)
{
	struct rsc_scope *s;
	struct rsc_entry *d, *t;
	int r[3] = { 0 }, tr[3] = { 0 }, to[3] = { 0 };
	char buf[4];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_defer(s, defer_nothing, NULL, &d), 0);
	ck_assert_int_eq(rsc_timer(s, 60000, io_note, tr, &t), 0);
	ck_assert_int_ge(rsc_entry_wait(t), 0);
	ck_assert_int_eq(rsc_read(d, buf, sizeof(buf), -1, io_note, r), -EBADF);
	ck_assert_int_eq(rsc_recv(d, buf, sizeof(buf), 0, io_note, r), -EBADF);
	ck_assert_int_eq(rsc_write(t, "x", 1, -1, io_note, r), -EBADF);
	ck_assert_int_eq(rsc_send(t, "x", 1, 0, io_note, r), -EBADF);
	ck_assert_int_eq(rsc_timeout(d, 60000, io_note, to), 0);
	ck_assert_int_eq(rsc_entry_io_count(d), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(r[0], 0);
	ck_assert_int_eq(to[0], 1);
	ck_assert_int_eq(to[1], -ECANCELED);
	ck_assert_int_eq(to[2], 1); /* buf is NULL */
	ck_assert_int_eq(tr[0], 1);
	ck_assert_int_eq(tr[1], -ECANCELED);
}
END_TEST

/* rsc_read(3): "rsc_send() adds MSG_NOSIGNAL, so that a peer gone is -EPIPE
 * rather than a signal"; off "-1 for the file position"; "The callback gets
 * buf back as it was passed". */
START_TEST(send_to_a_gone_peer_is_epipe_and_reads_follow_the_position)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *f;
	int peer, r[3] = { 0 }, fd;
	char buf[4] = "";

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = t_adopted_pair(s, &peer);
	close(peer);
	ck_assert_int_eq(rsc_send(e, "x", 1, 0, io_note, r), 0);
	t_run();
	ck_assert_int_eq(r[1], -EPIPE);
	fd = open(t_path("pos"), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "abcdef", 6), 6);
	ck_assert_int_eq(lseek(fd, 2, SEEK_SET), 2);
	ck_assert_int_eq(rsc_adopt(s, fd, 0, &f), 0);
	ck_assert_int_eq(rsc_read(f, buf, 2, -1, io_note, r), 0);
	t_run();
	ck_assert_int_eq(r[1], 2);
	ck_assert(memcmp(buf, "cd", 2) == 0);
	ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 4);
	ck_assert_int_eq(rsc_read(f, buf, 2, 0, io_note, r), 0);
	t_run();
	ck_assert(memcmp(buf, "ab", 2) == 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* rsc_timer(3): "If the entry never enters (its scope closed first) ... cb is
 * called once with the entry's negative errno (-ECANCELED)"; a timer fires
 * with -ETIME; replacing its on-enter callback "does not stop the timer". */
START_TEST(timer_ends_with_exactly_one_call)
{
	struct rsc_scope *s, *s2;
	struct rsc_entry *t;
	int never[3] = { 0 }, fired[3] = { 0 }, entered = 0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_timer(s, 1, io_note, never, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(never[0], 1);
	ck_assert_int_eq(never[1], -ECANCELED);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s2", &s2), 0);
	ck_assert_int_eq(rsc_timer(s2, 2, io_note, fired, &t), 0);
	ck_assert_int_eq(rsc_entry_on_enter(t, note_entered, &entered), 0);
	ck_assert_int_eq(rsc_entry_on_enter(t, NULL, NULL), 0);
	run_until_called(fired);
	ck_assert_int_eq(fired[1], -ETIME);
	ck_assert_int_eq(entered, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s2, NULL), 0);
	ck_assert_int_eq(fired[0], 1);
}
END_TEST

/* ---- rsc_open(3), rsc_socket(3), rsc_connect(3), rsc_accept(3) -------------------- */

/* rsc_open(3): each ERRORS entry for an argument; *entryp is NULL on failure. */
START_TEST(open_argument_refusals)
{
	struct rsc_entry *e = (struct rsc_entry *)&e;
	static char longpath[PATH_MAX + 1];
	struct rsc_scope *s;

	t_make_files(1);
	memset(longpath, 'a', PATH_MAX);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, NULL, O_RDONLY, 0, 0, &e), -EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_WRONLY | O_RDWR, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 010000, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY | O_CLOEXEC, 0, RSC_NO_CLOEXEC, &e),
			 -EINVAL);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_SHUTDOWN_ON_RELEASE, &e),
			 -EINVAL);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, longpath, O_RDONLY, 0, 0, &e), -ENAMETOOLONG);
	ck_assert_int_eq(rsc_open(s, -5, "f0", O_RDONLY, 0, 0, &e), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), -ESTALE);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

/* rsc_open(3): "An error of the open itself ... is not returned here: the
 * entry fails and its scope unwinds with that error pending, its operation
 * named "openat""; "O_CLOEXEC is added to oflags unless flags has RSC_NO_CLOEXEC". */
START_TEST(open_failure_unwinds_with_openat)
{
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *a, *b;

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &a), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f1"), O_RDONLY, 0, RSC_NO_CLOEXEC, &b), 0);
	ck_assert(fcntl(rsc_entry_wait(a), F_GETFD) & FD_CLOEXEC);
	ck_assert(!(fcntl(rsc_entry_wait(b), F_GETFD) & FD_CLOEXEC));
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("none"), O_RDONLY, 0, 0, &a), 0);
	ck_assert_int_eq(rsc_entry_wait(a), -ENOENT); /* not cancelled by the close below */
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	ck_assert_str_eq(rsc_error_op(err), "openat");
	ck_assert_str_eq(rsc_error_entry(err), "file");
	rsc_error_free(err);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

/* rsc_socket(3): each ERRORS -EINVAL entry; the detail names "the domain and
 * type, for example AF_INET/SOCK_STREAM"; SOCK_CLOEXEC is added. */
START_TEST(socket_argument_refusals_and_detail)
{
	struct rsc_entry *e = (struct rsc_entry *)&e;
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_socket(s, -1, SOCK_STREAM, 0, 0, &e), -EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_socket(s, AF_MAX, SOCK_STREAM, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, 0, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM | 0x100000, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, -1, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, RSC_FSYNC_ON_RELEASE, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, RSC_NO_CLOEXEC, &e),
			 -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0, 0, &e), 0);
	ck_assert_str_eq(rsc_entry_detail(e), "AF_INET/SOCK_STREAM");
	ck_assert(fcntl(rsc_entry_wait(e), F_GETFD) & FD_CLOEXEC);
	ck_assert(fcntl(rsc_entry_fd(e), F_GETFL) & O_NONBLOCK);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* rsc_connect(3): ERRORS -EINVAL for the lengths each family needs or allows,
 * an unnamed AF_UNIX address to rsc_connect, RSC_REUSEPORT outside
 * rsc_listen, a negative backlog, another family. */
START_TEST(connect_and_listen_argument_refusals)
{
	struct sockaddr_in in = t_loopback(9);
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct sockaddr_storage big = { .ss_family = AF_INET };
	struct sockaddr_nl { unsigned short f; char pad[14]; } nl = { .f = AF_NETLINK };
	struct rsc_entry *e;
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_connect(s, NULL, sizeof(in), 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&in, sizeof(in) - 1, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&in6, sizeof(in6) - 1, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&big, sizeof(big) + 1, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&un, sizeof(sa_family_t), 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&un, sizeof(un) + 1, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&nl, sizeof(nl), 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&in, sizeof(in), 0, RSC_REUSEPORT, &e), -EINVAL);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&in, sizeof(in), -1, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&in, sizeof(in), 1, RSC_FSYNC_ON_RELEASE, &e),
			 -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_count_events(RSC_EV_ENTERED), 0);
}
END_TEST

/* rsc_connect(3): "Failures of the connect ... arrive as the scope's pending
 * error, for example -ECONNREFUSED"; "The error's detail is the address". */
START_TEST(refused_connect_is_the_scopes_error_naming_the_address)
{
	struct rsc_error *err = NULL;
	struct sockaddr_in a;
	struct rsc_scope *s, *ls;
	struct rsc_entry *l, *e;
	char want[32];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "ls", &ls), 0);
	l = t_listen_on_loopback(ls, 1, &a);
	ck_assert_int_eq(rsc_scope_close_wait(ls, NULL), 0); /* the port is free again */
	(void)l;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&a, sizeof(a), 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_wait(e), -ECONNREFUSED);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ECONNREFUSED);
	snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(a.sin_port));
	ck_assert_str_eq(rsc_error_detail(err), want);
	rsc_error_free(err);
}
END_TEST

static void accept_note(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *e,
			void *data)
{
	int *r = data;

	(void)l;
	r[0]++;
	r[1] = res;
	r[2] = cs == NULL && e == NULL;
}

/* rsc_accept(3): ERRORS -EINVAL (cb NULL, bad flags), -EBADF (not entered),
 * -ESHUTDOWN ("or a scope above it, is closing"); a single-shot accept "always
 * ends with exactly one call of cb": -ECANCELED with NULL scope and entry. */
START_TEST(accept_refusals_and_its_one_call)
{
	struct sockaddr_in a = t_loopback(0);
	struct rsc_scope *p, *s;
	struct rsc_entry *l;
	int r[3] = { 0 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "s", &s), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), 4, 0, &l), 0);
	ck_assert_int_eq(rsc_accept(l, 0, accept_note, r), -EBADF); /* still entering */
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_accept(l, 0, NULL, r), -EINVAL);
	ck_assert_int_eq(rsc_accept(l, 1U << 9, accept_note, r), -EINVAL);
	ck_assert_int_eq(rsc_accept(l, 0, accept_note, r), 0);
	ck_assert_int_eq(rsc_entry_release_wait(l, NULL), 0);
	ck_assert_int_eq(r[0], 1);
	ck_assert_int_eq(r[1], -ECANCELED);
	ck_assert_int_eq(r[2], 1);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), 4, 0, &l), 0);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_scope_close(p, NULL, NULL), 0);
	ck_assert_int_eq(rsc_accept(l, 0, accept_note, r), -ESHUTDOWN);
	t_run();
	ck_assert_int_eq(r[0], 1);
}
END_TEST

/* ---- rsc_push(3), rsc_entry_get_sqes(3) ------------------------------------------ */

struct hookprobe {
	struct rsc_scope *scope, *other;
	struct rsc_entry *victim;
	int enter_ret;
	int sqes_zero, sqes_big, sqes_null, sqes_twice, move, timer, listen, emove, run, release;
	int enter_calls, exit_calls;
};

static int probe_enter(struct rsc_entry *e, void *arg)
{
	struct hookprobe *h = arg;
	struct sockaddr_in a = t_loopback(0);
	struct io_uring_sqe *sqe[RSC_ENTRY_SQES_MAX + 1];
	struct rsc_entry *x;

	h->enter_calls++;
	if (h->enter_ret)
		return h->enter_ret;
	h->sqes_zero = rsc_entry_get_sqes(e, 0, sqe);
	h->sqes_big = rsc_entry_get_sqes(e, RSC_ENTRY_SQES_MAX + 1, sqe);
	h->sqes_null = rsc_entry_get_sqes(e, 1, NULL);
	h->move = rsc_scope_move(h->other, NULL);
	h->timer = rsc_timer(h->scope, 1, io_note, NULL, NULL);
	h->listen = rsc_listen(h->scope, (struct sockaddr *)&a, sizeof(a), 1, 0, &x);
	h->emove = rsc_entry_move(h->victim, h->other);
	h->release = rsc_entry_release(h->victim, NULL, NULL);
	h->run = rsc_loop_run(t_loop, RSC_RUN_NOWAIT);
	if (rsc_entry_get_sqes(e, 1, sqe) == 0) {
		io_uring_prep_nop(sqe[0]);
		h->sqes_twice = rsc_entry_get_sqes(e, 1, sqe);
	}
	return 0;
}

static int probe_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct hookprobe *h = arg;

	(void)e;
	(void)pending;
	h->exit_calls++;
	return -ENOLINK;
}

static const struct rsc_manager probe_mgr = { sizeof(struct rsc_manager), 0, "probe", probe_enter,
					      probe_exit };

/* rsc_push(3): -EINVAL for a bad manager, "checked before anything is
 * acquired"; "Any negative errno returned by enter is returned as is", and
 * then "exit is never called"; *entryp is NULL on failure. */
START_TEST(push_refusals_and_a_failing_enter)
{
	struct hookprobe h = { .enter_ret = -ENOTTY };
	struct rsc_manager bad = probe_mgr;
	struct rsc_entry *e = (struct rsc_entry *)&e;
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_push(s, NULL, &h, &e), -EINVAL);
	ck_assert_ptr_null(e);
	bad.size = 4;
	ck_assert_int_eq(rsc_push(s, &bad, &h, &e), -EINVAL);
	bad = probe_mgr;
	bad.flags = 1U << 7;
	ck_assert_int_eq(rsc_push(s, &bad, &h, &e), -EINVAL);
	bad = probe_mgr;
	bad.name = "";
	ck_assert_int_eq(rsc_push(s, &bad, &h, &e), -EINVAL);
	ck_assert_int_eq(h.enter_calls, 0);
	ck_assert_int_eq(rsc_push(s, &probe_mgr, &h, &e), -ENOTTY);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(h.enter_calls, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(h.exit_calls, 0);
}
END_TEST

/* rsc_push(3): "from inside an enter or exit hook, every call that pushes ...,
 * starts tracked I/O ..., or moves ownership ... is refused with -EDEADLK, and
 * so are rsc_loop_run(3)"; rsc_entry_get_sqes(3): -EINVAL (n 0, too many, sqes
 * NULL), -EBUSY "Called a second time in the same hook", -EPERM outside one;
 * an exit's negative return "raises a new error (its operation named ...
 * "exit" for the return)". */
START_TEST(hooks_refuse_what_would_nest)
{
	struct hookprobe h = { 0 };
	struct rsc_error *err = NULL;
	struct io_uring_sqe *sqe;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int p[2];

	ck_assert_int_eq(pipe_pair(p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "o", &h.other), 0);
	h.scope = s;
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &h.victim), 0);
	ck_assert_int_eq(rsc_push(s, &probe_mgr, &h, &e), 0);
	ck_assert_int_eq(h.sqes_zero, -EINVAL);
	ck_assert_int_eq(h.sqes_big, -EINVAL);
	ck_assert_int_eq(h.sqes_null, -EINVAL);
	ck_assert_int_eq(h.sqes_twice, -EBUSY);
	ck_assert_int_eq(h.move, -EDEADLK);
	ck_assert_int_eq(h.timer, -EDEADLK);
	ck_assert_int_eq(h.listen, -EDEADLK);
	ck_assert_int_eq(h.emove, -EDEADLK);
	ck_assert_int_eq(h.release, -EDEADLK);
	ck_assert_int_eq(h.run, -EDEADLK);
	ck_assert_int_eq(rsc_entry_get_sqes(e, 1, &sqe), -EPERM);
	ck_assert_int_eq(rsc_entry_wait(e), 0); /* the NOP's result */
	ck_assert_int_eq(rsc_scope_close_wait(h.other, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOLINK);
	ck_assert_str_eq(rsc_error_op(err), "exit");
	ck_assert_str_eq(rsc_error_entry(err), "probe");
	rsc_error_free(err);
	ck_assert_int_eq(h.exit_calls, 1);
	ck_assert(!fd_is_open(p[0]));
	close(p[1]);
}
END_TEST

/* ---- rsc_entry_wait(3) ------------------------------------------------------------- */

/* rsc_entry_wait(3): "If the acquire has completed already, it returns at
 * once"; -EBADF once released; -ESHUTDOWN "The close of the entry's scope, or
 * of any scope above it, was requested". */
START_TEST(entry_wait_states)
{
	struct rsc_scope *p, *c;
	struct rsc_entry *a, *o;
	int fds[2];

	t_make_files(1);
	ck_assert_int_eq(pipe_pair(fds), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_adopt(c, fds[0], 0, &a), 0);
	ck_assert_int_eq(rsc_entry_wait(a), fds[0]);
	ck_assert_int_eq(rsc_entry_release_wait(a, NULL), 0);
	ck_assert_int_eq(rsc_entry_wait(a), -EBADF);
	ck_assert_int_eq(rsc_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &o), 0);
	ck_assert_int_eq(rsc_scope_close(p, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_wait(o), -ESHUTDOWN);
	ck_assert_int_eq(rsc_entry_wait(NULL), -EINVAL);
	t_run();
	ck_assert_int_eq(rsc_entry_wait(o), -ESTALE);
	ck_assert(!t_fd_open_to(t_dir));
	close(fds[1]);
}
END_TEST

/* ---- rsc_loop_close(3), rsc_loop_shutdown(3) ----------------------------------------- */

static void post_open_scope(struct rsc_loop *l, void *arg)
{
	struct rsc_scope **s = arg;

	ck_assert_int_eq(rsc_scope_open(l, NULL, "posted", s), 0);
}

/* rsc_loop_close(3): -EBUSY while a scope exists, "unwound and waiting for its
 * close" too, and "Nothing is freed"; "A post that opens a scope there leaves
 * the loop busy: the call then returns -EBUSY ... (the post has run...)". */
START_TEST(loop_close_refuses_while_a_scope_is_left)
{
	struct rsc_scope *s = NULL;
	struct rsc_loop *l;

	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_loop_close(l), -EBUSY);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_loop_close(l), -EBUSY);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EIO);
	s = NULL;
	ck_assert_int_eq(rsc_loop_post(l, post_open_scope, &s), 0);
	ck_assert_int_eq(rsc_loop_close(l), -EBUSY);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	/* The loop stays: posts are welcome again. */
	s = NULL;
	ck_assert_int_eq(rsc_loop_post(l, post_open_scope, &s), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(rsc_loop_close(NULL), -EINVAL);
}
END_TEST

static void shutdown_inside(struct rsc_loop *l, void *arg)
{
	int *r = arg;

	r[0] = rsc_loop_shutdown(l, NULL);
	r[1] = rsc_loop_close(l);
}

/* rsc_loop_shutdown(3): "an error left by a newer scope is the pending error
 * for the older ones"; a scope already closed "keeps its own callback, which
 * runs during the shutdown and receives that scope's result"; -EDEADLK inside
 * a callback, "Nothing is closed and the loop is not freed". */
START_TEST(loop_shutdown_combines_and_keeps_callbacks)
{
	struct deferred older = { 0 };
	struct rsc_error *err = NULL;
	struct rsc_scope *a, *b, *c;
	int cst[3] = { 0 }, r[2] = { 1, 1 };
	struct rsc_loop *l;

	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_post(l, shutdown_inside, r), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(r[0], -EDEADLK);
	ck_assert_int_eq(r[1], -EDEADLK);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "a", &a), 0);
	older.scope = a;
	ck_assert_int_eq(rsc_defer(a, defer_note, &older, NULL), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_fail(b, -EPROTO, NULL), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_fail(c, -ENOLINK, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(c, note_status, cst), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, &err), -EPROTO);
	ck_assert_int_eq(older.pending_errno, -EPROTO);
	ck_assert_int_eq(cst[0], 1);
	ck_assert_int_eq(cst[1], -ENOLINK);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_errno(err), -EPROTO);
	rsc_error_free(err);
}
END_TEST

/* ---- rsc_scope_name(3), rsc_scope_set_data(3), rsc_entry_set_data(3) ---------------- */

struct seen_in_exit {
	struct rsc_scope *scope;
	int state, err;
	int calls;
};

static int exit_looks(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct seen_in_exit *x = arg;
	const struct rsc_error *err = rsc_scope_error(x->scope);

	(void)e;
	(void)pending;
	x->calls++;
	x->state = rsc_scope_state(x->scope);
	x->err = err ? rsc_error_errno(err) : 0;
	return 0;
}

/* rsc_scope_name(3): RSC_SCOPE_UNWINDING while its exits run, with
 * rsc_scope_error() "the chain its next exit receives"; RSC_SCOPE_UNWOUND
 * "after a failed acquire, it waits for rsc_scope_close(3)", its error "the
 * chain its close callback will receive"; "" and NULL for a stale handle. */
START_TEST(scope_state_and_error_through_an_unwind)
{
	struct seen_in_exit x = { 0 };
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	x.scope = s;
	ck_assert_ptr_null(rsc_scope_error(s));
	ck_assert_int_eq(rsc_defer(s, exit_looks, &x, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, NULL), 0);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.state, RSC_SCOPE_UNWINDING);
	ck_assert_int_eq(x.err, -EPIPE);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_ptr_nonnull(rsc_scope_error(s));
	ck_assert_int_eq(rsc_error_errno(rsc_scope_error(s)), -EPIPE);
	ck_assert_str_eq(rsc_scope_name(s), "s");
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EPIPE);
	ck_assert_str_eq(rsc_scope_name(s), "");
	ck_assert_ptr_null(rsc_scope_error(s));
	ck_assert_int_eq(rsc_scope_state(s), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(NULL), -EINVAL);
	ck_assert_str_eq(rsc_scope_name(NULL), "");
}
END_TEST

static void data_in_callbacks(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	int *n = data;

	(void)status;
	(void)err;
	if (rsc_scope_data(s) == data)
		(*n)++;
}

/* rsc_scope_set_data(3): "a new scope's pointer is NULL"; kept "during its
 * close callback and rsc_scope_on_close(3) callback"; "A scope moved with
 * rsc_scope_move(3) keeps it"; rsc_entry_set_data(3): likewise for an entry
 * moved with rsc_entry_move(3); -ESTALE and NULL once freed. */
START_TEST(data_pointers_survive_moves_and_last_callbacks)
{
	struct rsc_scope *p, *s;
	struct rsc_entry *e;
	int n = 0, fds[2];

	ck_assert_int_eq(pipe_pair(fds), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_ptr_null(rsc_scope_data(s));
	ck_assert_int_eq(rsc_scope_set_data(s, &n), 0);
	ck_assert_int_eq(rsc_adopt(s, fds[0], 0, &e), 0);
	ck_assert_ptr_null(rsc_entry_data(e));
	ck_assert_int_eq(rsc_entry_set_data(e, &fds), 0);
	ck_assert_int_eq(rsc_scope_move(s, p), 0);
	ck_assert_ptr_eq(rsc_scope_data(s), &n);
	ck_assert_int_eq(rsc_entry_move(e, p), 0);
	ck_assert_ptr_eq(rsc_entry_data(e), &fds);
	ck_assert_int_eq(rsc_scope_on_close(s, data_in_callbacks, &n), 0);
	ck_assert_int_eq(rsc_scope_close(s, data_in_callbacks, &n), 0);
	t_run();
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(rsc_scope_set_data(s, &n), -ESTALE);
	ck_assert_ptr_null(rsc_scope_data(s));
	ck_assert_int_eq(rsc_scope_set_data(NULL, &n), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), 0);
	ck_assert_int_eq(rsc_entry_set_data(e, &n), -ESTALE);
	ck_assert_ptr_null(rsc_entry_data(e));
	close(fds[1]);
}
END_TEST

/* ---- rsc_loop_run(3), rsc_loop_counter(3) -------------------------------------------- */

/* rsc_loop_counter(3): "Counters start at 0" (but pool_allocs); RSC_CTR_ACQUIRED, RELEASED,
 * ENTER_FAILED ("cancelled acquires included") count entries; every counter
 * has a name, RSC_CTR_COUNT none; -EINVAL out of range. rsc_loop_run(3):
 * -EINVAL for a bad mode; "returns 1 if the loop still has work, 0 if not". */
START_TEST(counters_count_entries_and_run_reports_work)
{
	struct rsc_scope *s, *f;
	struct rsc_entry *ok;
	struct rsc_loop *l;
	int i;

	t_make_files(2);
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	for (i = 0; i < RSC_CTR_COUNT; i++) {
		ck_assert_ptr_nonnull(rsc_counter_name(i));
		if (i != RSC_CTR_POOL_ALLOCS) /* the pools' first allocations, by rsc_loop_new */
			ck_assert_int_eq(rsc_loop_counter(l, i), 0);
	}
	ck_assert_ptr_null(rsc_counter_name(RSC_CTR_COUNT));
	ck_assert_int_eq(rsc_loop_counter(l, RSC_CTR_COUNT), -EINVAL);
	ck_assert_str_eq(rsc_counter_name(RSC_CTR_SQES), "sqes");
	ck_assert_int_eq(rsc_loop_run(l, (enum rsc_run_mode)7), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "f", &f), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &ok), 0);
	ck_assert_int_eq(rsc_open(f, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(f, NULL, NULL), 0); /* cancels its acquire, or releases it */
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT) >= 0, 1);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_loop_counter(l, RSC_CTR_ACQUIRED) + rsc_loop_counter(l, RSC_CTR_ENTER_FAILED), 2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(l, RSC_CTR_RELEASED), rsc_loop_counter(l, RSC_CTR_ACQUIRED));
	ck_assert_int_gt(rsc_loop_counter(l, RSC_CTR_SQES), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

/* ---- rsc_recv_multishot(3), rsc_loop_set_recv_buffers(3), rsc_pipe(3) -------------- */

struct stream {
	char got[64];
	int len, calls, last, last_buf_null;
};

static void stream_note(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct stream *st = data;

	(void)e;
	st->calls++;
	if (res > 0) {
		memcpy(st->got + st->len, buf, (size_t)res);
		st->len += res;
		return;
	}
	st->last = res;
	st->last_buf_null = buf == NULL;
}

/* rsc_recv_multishot(3): -EINVAL (cb NULL, flags not 0), -EBUSY for a second
 * receive "in either order"; "The last call has res <= 0 and buf NULL": 0 when
 * "the peer shut down its side", after the bytes "in the order of the stream". */
START_TEST(multishot_receive_promises)
{
	struct stream st = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *a, *b;
	int pa, pb, r[3] = { 0 };
	char buf[8];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	a = t_adopted_pair(s, &pa);
	b = t_adopted_pair(s, &pb);
	ck_assert_int_eq(rsc_recv_multishot(a, 0, NULL, &st), -EINVAL);
	ck_assert_int_eq(rsc_recv_multishot(a, 1, stream_note, &st), -EINVAL);
	ck_assert_int_eq(rsc_recv_multishot(a, 0, stream_note, &st), 0);
	ck_assert_int_eq(rsc_recv_multishot(a, 0, stream_note, &st), -EBUSY);
	ck_assert_int_eq(rsc_recv(a, buf, sizeof(buf), 0, io_note, r), -EBUSY);
	ck_assert_int_eq(rsc_recv(b, buf, sizeof(buf), 0, io_note, r), 0);
	ck_assert_int_eq(rsc_recv_multishot(b, 0, stream_note, &st), -EBUSY);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 16, 4096), -EBUSY);
	ck_assert_int_eq(write(pa, "one", 3), 3);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(write(pa, "two", 3), 3);
	ck_assert_int_eq(shutdown(pa, SHUT_WR), 0);
	ck_assert_int_eq(write(pb, "x", 1), 1);
	t_run();
	ck_assert_int_eq(st.len, 6);
	ck_assert(memcmp(st.got, "onetwo", 6) == 0);
	ck_assert_int_eq(st.last, 0);
	ck_assert_int_eq(st.last_buf_null, 1);
	ck_assert_int_eq(r[1], 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(pa);
	close(pb);
}
END_TEST

/* rsc_loop_set_recv_buffers(3): -EINVAL "count is not a power of two or is
 * above 32768, or size is 0 or above 1 MiB (with a non-zero count)"; "A count
 * of 0 frees them". */
START_TEST(recv_buffers_argument_refusals)
{
	ck_assert_int_eq(rsc_loop_set_recv_buffers(NULL, 16, 4096), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 12, 4096), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 65536, 4096), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 16, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 16, (1U << 20) + 1), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 0, 0), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 16, 1U << 20), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 0, 0), 0);
}
END_TEST

/* rsc_pipe(3): rsc_pipe_ends() "returns -EAGAIN while the pipe is being
 * acquired ... and -EBADF once released", -EINVAL "not a pipe entry"; the
 * release "closes the write end, then the read end"; "A pipe entry cannot be
 * detached". */
START_TEST(pipe_ends_through_the_lifecycle)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *a;
	int ends[2], fds[2];

	ck_assert_int_eq(pipe_pair(fds), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_pipe(s, 1U << 9, &e), -EINVAL);
	ck_assert_int_eq(rsc_pipe(s, 0, &e), 0);
	ck_assert_int_eq(rsc_pipe_ends(e, ends), -EAGAIN);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_pipe_ends(e, ends), 0);
	ck_assert_int_eq(ends[0], rsc_entry_fd(e));
	ck_assert(fcntl(ends[1], F_GETFD) & FD_CLOEXEC);
	ck_assert_int_eq(rsc_entry_detach(e), -EBADF);
	ck_assert_int_eq(rsc_adopt(s, fds[0], 0, &a), 0);
	ck_assert_int_eq(rsc_pipe_ends(a, ends), -EINVAL);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	ck_assert(!fd_is_open(ends[0]) && !fd_is_open(ends[1]));
	ck_assert_int_eq(rsc_pipe_ends(e, ends), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(fds[1]);
}
END_TEST

/* ---- rsc_error_errno(3), rsc_error_format(3), rsc_error_dup(3) ----------------------- */

static void dup_chain(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)status;
	ck_assert_int_eq(rsc_error_dup(err, data), 0);
}

/* rsc_error_errno(3): "When a child scope that failed on its own is closed by
 * a parent that has an error of its own, the child's chain comes first and the
 * parent's follows it"; rsc_error_dup(3): a chain held lives on "after that
 * loop is freed"; rsc_error_format(3): "; caused by ", each control byte "shown
 * as \xNN"; -EINVAL for a NULL dupp. */
START_TEST(error_chain_order_format_and_dup)
{
	struct rsc_error *err = NULL, *bad = NULL;
	struct rsc_scope *p, *c;
	struct rsc_loop *l;
	char name[32], text[512];

	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(l, p, "c", &c), 0);
	snprintf(name, sizeof(name), "%s/x\nline", t_dir);
	ck_assert_int_eq(rsc_open(c, AT_FDCWD, name, O_RDONLY, 0, 0, NULL), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_scope_state(c), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_fail(p, -EPROTO, "parse"), 0);
	ck_assert_int_eq(rsc_scope_close(p, dup_chain, &err), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_ptr_nonnull(err); /* held past the loop */
	ck_assert_int_eq(rsc_error_depth(err), 2);
	ck_assert_int_eq(rsc_error_errno(err), -ENOENT);
	ck_assert_str_eq(rsc_error_scope(err), "c");
	ck_assert_int_eq(rsc_error_errno(rsc_error_cause(err)), -EPROTO);
	ck_assert_str_eq(rsc_error_op(rsc_error_cause(err)), "parse");
	ck_assert_ptr_null(rsc_error_cause(rsc_error_cause(err)));
	ck_assert_int_gt(rsc_error_format(err, text, sizeof(text)), 0);
	ck_assert_ptr_nonnull(strstr(text, "x\\x0aline"));
	ck_assert_ptr_null(strchr(text, '\n'));
	ck_assert_ptr_nonnull(strstr(text, "; caused by parse"));
	ck_assert_ptr_nonnull(strstr(text, "(ENOENT) [entry 'file' in scope 'c']"));
	ck_assert_ptr_nonnull(strchr(rsc_error_detail(err), '\n')); /* the getters give the bytes */
	ck_assert_int_eq(rsc_error_dup(err, NULL), -EINVAL);
	ck_assert_int_eq(rsc_error_dup(NULL, &bad), -EINVAL);
	ck_assert_int_eq(rsc_error_format(err, NULL, 5), -EINVAL);
	ck_assert_int_eq(rsc_error_print(err, NULL), -EINVAL);
	rsc_error_free(err);
	rsc_error_free(NULL);
}
END_TEST

/* ---- rsc_chain_new(3) ------------------------------------------------------------------ */

/* rsc_chain_new(3): -E2BIG "more than RSC_ENTRY_SQES_MAX SQEs"; -EINVAL for a
 * send not behind a connect step; -ENXIO "The loop has no direct table", and
 * the submit "consumes the chain whether it succeeds or not"; "If the chain is
 * never submitted, cb is never called"; -ESHUTDOWN at the submit. */
START_TEST(chain_refusals)
{
	struct rsc_scope *s;
	struct rsc_chain *ch;
	int r[3] = { 0 }, i, ret = 0;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), -ENXIO);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 8), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	for (i = 0; i <= RSC_ENTRY_SQES_MAX && ret == 0; i++)
		ret = rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL);
	ck_assert_int_eq(ret, -E2BIG);
	ck_assert_int_eq(i, RSC_ENTRY_SQES_MAX + 1);
	ck_assert_int_eq(rsc_chain_send(ch, "x", 1, io_note, r), -EINVAL);
	rsc_chain_free(ch);
	rsc_chain_free(NULL);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_socket(ch, AF_INET, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&(struct sockaddr_in){ 0 },
					   sizeof(struct sockaddr_in), 0, NULL), -EINVAL); /* AF_UNSPEC */
	rsc_chain_free(ch);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), -ESHUTDOWN);
	t_run();
	ck_assert_int_eq(r[0], 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
}
END_TEST

/* ---- rsc_loop_new(3), rsc_loop_set_direct(3), rsc_entry_slot(3), rsc_loop_set_trace(3) */

struct wide { int got; };

static int wide_enter(struct rsc_entry *e, void *arg)
{
	struct io_uring_sqe *sqe[RSC_ENTRY_SQES_MAX];
	struct wide *w = arg;
	int i;

	w->got = rsc_entry_get_sqes(e, RSC_ENTRY_SQES_MAX, sqe);
	if (w->got < 0)
		return w->got;
	for (i = 0; i < RSC_ENTRY_SQES_MAX; i++)
		io_uring_prep_nop(sqe[i]);
	return 0;
}

static int wide_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return 0;
}

static const struct rsc_manager wide_mgr = { sizeof(struct rsc_manager), RSC_MANAGER_UNORDERED, "wide",
					     wide_enter, wide_exit };

/* rsc_loop_new(3): -EINVAL (unknown flag, more than 32768 entries, a bad
 * RINGSCOPE_AUDIT, quoted by rsc_last_error) with *loopp NULL; "fewer than
 * RSC_ENTRY_SQES_MAX (8) are rounded up to it so that any SQE chain a hook
 * reserves fits". */
START_TEST(loop_new_promises)
{
	struct rsc_loop *l = (struct rsc_loop *)&l;
	struct wide w = { 0 };
	struct rsc_scope *s;
	int ret;

	ck_assert_int_eq(rsc_loop_new(&l, 8, 1U << 15), -EINVAL);
	ck_assert_ptr_null(l);
	l = (struct rsc_loop *)&l;
	ck_assert_int_eq(rsc_loop_new(&l, 32769, 0), -EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_int_eq(setenv("RINGSCOPE_AUDIT", "loud", 1), 0);
	ret = rsc_loop_new(&l, 8, 0);
	ck_assert_int_eq(unsetenv("RINGSCOPE_AUDIT"), 0);
	ck_assert_int_eq(ret, -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "loud"));
	ck_assert_int_eq(setenv("RINGSCOPE_AUDIT", "2", 1), 0);
	ret = rsc_loop_new(&l, 1, 0);
	ck_assert_int_eq(unsetenv("RINGSCOPE_AUDIT"), 0);
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(rsc_loop_audit_level(l), RSC_AUDIT_FULL);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_push(s, &wide_mgr, &w, NULL), 0);
	ck_assert_int_eq(w.got, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

/* rsc_loop_set_direct(3): -EINVAL (chain_slots more than slots, slots above
 * RSC_DIRECT_SLOTS_MAX), -EBUSY while a slot is in use, 0 unregisters (then
 * -ENXIO); rsc_entry_slot(3): -EAGAIN while entering, the slot, -EBADF once
 * released, -EBADFD for a process descriptor; rsc_entry_fd -EBADFD on a slot. */
START_TEST(direct_table_and_slot_states)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *a;
	int slot, fds[2];

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 4, 5), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, RSC_DIRECT_SLOTS_MAX + 1, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(NULL, 4, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_eq(rsc_entry_slot(e), -EAGAIN);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 0), -EBUSY); /* being acquired */
	slot = rsc_entry_wait(e);
	ck_assert_int_ge(slot, 0);
	ck_assert_int_lt(slot, 12); /* from the range the kernel allocates */
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(rsc_entry_fd(e), -EBADFD);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 0), -EBUSY);
	ck_assert_int_eq(pipe_pair(fds), 0);
	ck_assert_int_eq(rsc_adopt(s, fds[0], 0, &a), 0);
	ck_assert_int_eq(rsc_entry_slot(a), -EBADFD);
	ck_assert_int_eq(rsc_entry_detach(e), -EBADF); /* rsc_entry_detach(3): a slot is no descriptor */
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	ck_assert_int_eq(rsc_entry_slot(e), -EBADF);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), -ENXIO);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(fds[1]);
}
END_TEST

struct tracelog {
	int scope_closed, closed_res, closed_entry_null, failed_res, run_ret;
};

static void trace_note(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
		       const struct rsc_entry *e, int res, void *data)
{
	struct tracelog *t = data;

	(void)s;
	if (ev == RSC_EV_SCOPE_CLOSED) {
		t->scope_closed++;
		t->closed_res = res;
		t->closed_entry_null = e == NULL;
	} else if (ev == RSC_EV_ENTER_FAILED) {
		t->failed_res = res;
	}
	t->run_ret = rsc_loop_run(loop, RSC_RUN_NOWAIT);
}

/* rsc_loop_set_trace(3): RSC_EV_SCOPE_CLOSED has "entry ... NULL and res is its
 * status"; RSC_EV_ENTER_FAILED "-ECANCELED for an acquire cancelled by its
 * scope's close"; never "from inside rsc_scope_close(3)"; rsc_loop_run
 * "return[s] -EDEADLK from inside it". */
START_TEST(trace_events_promises)
{
	struct tracelog t = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_set_trace(NULL, trace_note, &t), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, trace_note, &t), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(t.scope_closed, 0);
	t_run();
	ck_assert_int_eq(t.scope_closed, 1);
	ck_assert_int_eq(t.closed_res, -EIO);
	ck_assert_int_eq(t.closed_entry_null, 1);
	if (t.failed_res) /* the open may complete before its cancel lands */
		ck_assert_int_eq(t.failed_res, -ECANCELED);
	ck_assert_int_eq(t.run_ret, -EDEADLK);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

/* rsc_loop_id(3): "1 for the first loop the process created, 2 for the next,
 * and so on; numbers are not reused"; -EINVAL for NULL. */
START_TEST(loop_ids_grow_and_are_not_reused)
{
	struct rsc_loop *a, *b;
	int ia, ib;

	ck_assert_int_eq(rsc_loop_new(&a, 8, 0), 0);
	ia = rsc_loop_id(a);
	ck_assert_int_gt(ia, rsc_loop_id(t_loop));
	ck_assert_int_eq(rsc_loop_close(a), 0);
	ck_assert_int_eq(rsc_loop_new(&b, 8, 0), 0);
	ib = rsc_loop_id(b);
	ck_assert_int_eq(ib, ia + 1);
	ck_assert_int_eq(rsc_loop_close(b), 0);
	ck_assert_int_eq(rsc_loop_id(NULL), -EINVAL);
}
END_TEST

/* rsc_entry_fd(3): the names "adopt", "defer", "timer", "file"; an adopted
 * entry's detail is "fd N" (rsc_adopt(3)); rsc_entry_arg() is "NULL for
 * built-in entries"; rsc_entry_scope() "follows the entry when it is moved";
 * for a stale handle "the string getters return """. */
START_TEST(entry_getters_name_what_they_hold)
{
	struct rsc_scope *s, *o;
	struct rsc_entry *a, *d, *t, *f;
	char detail[32];
	int fds[2], r[3] = { 0 };

	t_make_files(1);
	ck_assert_int_eq(pipe_pair(fds), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_adopt(s, fds[0], 0, &a), 0);
	ck_assert_int_eq(rsc_defer(s, defer_nothing, &r, &d), 0);
	ck_assert_int_eq(rsc_timer(s, 60000, io_note, r, &t), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &f), 0);
	ck_assert_str_eq(rsc_entry_name(a), "adopt");
	ck_assert_str_eq(rsc_entry_name(d), "defer");
	ck_assert_str_eq(rsc_entry_name(t), "timer");
	ck_assert_str_eq(rsc_entry_name(f), "file");
	snprintf(detail, sizeof(detail), "fd %d", fds[0]);
	ck_assert_str_eq(rsc_entry_detail(a), detail);
	ck_assert_str_eq(rsc_entry_detail(f), t_path("f0"));
	ck_assert_ptr_null(rsc_entry_arg(a));
	ck_assert_ptr_null(rsc_entry_arg(f));
	ck_assert_ptr_eq(rsc_entry_arg(d), &r);
	ck_assert_ptr_eq(rsc_entry_scope(a), s);
	ck_assert_int_ge(rsc_entry_wait(f), 0);
	ck_assert_int_eq(rsc_entry_move(f, o), 0);
	ck_assert_ptr_eq(rsc_entry_scope(f), o);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_str_eq(rsc_entry_name(a), "");
	ck_assert_str_eq(rsc_entry_detail(a), "");
	ck_assert_ptr_null(rsc_entry_scope(a));
	ck_assert_int_eq(rsc_entry_fd(a), -ESTALE);
	ck_assert_int_eq(rsc_entry_fd((struct rsc_entry *)s), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	close(fds[1]);
}
END_TEST

/* rsc_loop_metrics(3): "ringscope_name_total for each counter of
 * rsc_loop_counter(3)", gauges counted when written (ringscope_open_scopes);
 * -EINVAL for n 0, a NULL out, unknown flags. */
START_TEST(metrics_name_every_counter)
{
	char *body = NULL, want[64], scopes[64];
	struct rsc_loop *loops[1] = { t_loop };
	struct rsc_scope *s;
	size_t len = 0;
	FILE *f;
	int i;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	f = open_memstream(&body, &len);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_loop_metrics(t_loop, f), 0);
	fclose(f);
	for (i = 0; i < RSC_CTR_COUNT; i++) {
		snprintf(want, sizeof(want), "\nringscope_%s_total{loop=", rsc_counter_name(i));
		ck_assert_msg(strstr(body, want), "no %s", want + 1);
	}
	snprintf(scopes, sizeof(scopes), "\nringscope_open_scopes{loop=\"%d\"} 1\n", rsc_loop_id(t_loop));
	ck_assert_msg(strstr(body, scopes), "%s", body);
	free(body);
	ck_assert_int_eq(rsc_metrics_write(loops, 0, stdout), -EINVAL);
	ck_assert_int_eq(rsc_loop_metrics(t_loop, NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, 1U << 9), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* rsc_audit_describe_fd(3): -ENOENT when "No live entry ... owns fd" (a
 * detached one, a number at or above 2^20 too), -EINVAL for a negative fd or
 * a NULL buf with a len; "The length of the whole sentence (which may exceed
 * len)". */
START_TEST(describe_fd_owner_or_enoent)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	char small[8], full[512];
	int fds[2], n;

	ck_assert_int_eq(pipe_pair(fds), 0);
	ck_assert_int_eq(rsc_audit_describe_fd(fds[0], full, sizeof(full)), -ENOENT);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "owner", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, fds[0], 0, &e), 0);
	n = rsc_audit_describe_fd(fds[0], small, sizeof(small));
	ck_assert_int_ge(n, (int)sizeof(small));
	ck_assert_int_eq(strlen(small), sizeof(small) - 1);
	ck_assert_int_eq(rsc_audit_describe_fd(fds[0], full, sizeof(full)), n);
	ck_assert_ptr_nonnull(strstr(full, "'adopt'"));
	ck_assert_ptr_nonnull(strstr(full, "'owner'"));
	ck_assert_int_eq(rsc_audit_describe_fd(fds[0], NULL, 0), n);
	ck_assert_int_eq(rsc_audit_describe_fd(fds[0], NULL, 4), -EINVAL);
	ck_assert_int_eq(rsc_audit_describe_fd(-1, full, sizeof(full)), -EINVAL);
	ck_assert_int_eq(rsc_audit_describe_fd(1 << 20, full, sizeof(full)), -ENOENT);
	ck_assert_int_eq(rsc_entry_detach(e), fds[0]);
	ck_assert_int_eq(rsc_audit_describe_fd(fds[0], full, sizeof(full)), -ENOENT);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

static void post_again(struct rsc_loop *l, void *arg)
{
	int *r = arg;

	r[0]++;
	r[1] = rsc_loop_post(l, post_again, arg);
}

/* rsc_loop_post(3): "Once the loop is being freed, a post fails with
 * -ESHUTDOWN" (a post made by a post that rsc_loop_close(3) runs), and "If the
 * call fails, fn is never called". */
START_TEST(loop_post_while_the_loop_is_freed_is_refused)
{
	struct rsc_loop *l;
	int r[2] = { 0, 1 };

	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_post(l, post_again, r), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(r[0], 1);
	ck_assert_int_eq(r[1], -ESHUTDOWN);
	r[0] = 0;
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_post(l, post_again, r), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_eq(r[1], -ESHUTDOWN);
	ck_assert_int_ge(r[0], 1);
}
END_TEST

struct slow_exit {
	char *log;
};

static int slow_exit_fn(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct io_uring_sqe *sqe;
	static struct __kernel_timespec ts = { .tv_nsec = 20 * 1000 * 1000 };
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)pending;
	(void)arg;
	if (ret < 0)
		return ret;
	io_uring_prep_timeout(sqe, &ts, 0, 0); /* a release that takes 20 ms */
	return 0;
}

static void log_release(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)res;
	strcat(data, "R");
}

static void log_close(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)status;
	(void)err;
	strcat(data, "C");
}

/* rsc_entry_release(3): "The scope's unwind, if any, waits for early releases
 * in flight before it finishes"; rsc_entry_on_enter(3): -EALREADY once "The
 * acquire has completed and its callback has run". */
START_TEST(unwind_waits_for_an_early_release_in_flight)
{
	char log[8] = "";
	struct rsc_scope *s;
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_defer(s, slow_exit_fn, NULL, &e), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_entry_release(e, log_release, log), 0);
	ck_assert_int_eq(rsc_scope_close(s, log_close, log), 0);
	t_run();
	ck_assert_str_eq(log, "RC");
}
END_TEST

/* rsc_accept(3): "a started accept always ends with exactly one call of cb
 * ... with -ECANCELED when ... the runtime had to close the connection because
 * its scope was closing"; "every descriptor the accept delivers is owned by a
 * scope or closed" (the fixture counts them). */
START_TEST(accept_racing_its_scopes_close_calls_back_once)
{
	struct sockaddr_in a;
	struct rsc_scope *srv;
	struct rsc_entry *l;
	int r[3] = { 0 }, client;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 4, &a);
	ck_assert_int_eq(rsc_accept(l, 0, accept_note, r), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	client = t_connect(&a); /* the kernel may complete the accept now */
	ck_assert_int_eq(rsc_scope_close(srv, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(r[0], 1);
	ck_assert_int_eq(r[1], -ECANCELED);
	ck_assert_int_eq(r[2], 1);
	close(client);
}
END_TEST

/* A test left out, with a SKIP line naming it and why, unless @ok. */
static void add_if(TCase *tc, const TTest *t, bool ok, const char *name, const char *why)
{
	if (ok)
		tcase_add_test(tc, t);
	else
		printf("SKIP %s: %s\n", name, why);
}

#define ADD_IF(tc, test, op, what) add_if(tc, test, t_kernel_has(op), #test, "kernel lacks " what)
/* What a missing: rule of RINGSCOPE_FAULT can take away too (helpers.h). */
#define ADD_IF_HAS(tc, test, have, what) add_if(tc, test, have, #test, "the loops of this run lack " what)
#define ADD_IF_FAULTS(tc, test)                                                               \
	add_if(tc, test, rsc_fault_set(t_probe_loop(), "") == 0, #test,                       \
	       "this build has no fault injection")

/* A test case of the suite, with the checked fixture. */
static TCase *checked_case(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);

	t_add_fixture(tc);
	suite_add_tcase(s, tc);
	return tc;
}

static void add_graceful_cases(Suite *s)
{
	TCase *tc = checked_case(s, "graceful");

	tcase_add_test(tc, close_stats_drained_counts_a_child_graceful_first);
	tcase_add_test(tc, close_stats_drained_counts_a_child_graceful_inside);
	tcase_add_test(tc, close_stats_counts_an_early_release_as_drained);
	tcase_add_test(tc, close_stats_counts_a_child_closed_in_the_grace_as_drained);
	t_add_socket_test(tc, close_stats_does_not_count_the_cancelled_accept);
	tcase_add_test(tc, parent_grace_bound_cuts_a_childs_unbounded_grace);
	tcase_add_test(tc, grace_refuses_pushes_and_moves_below);
	tcase_add_test(tc, ancestor_close_waits_for_a_childs_grace);
	tcase_add_test(tc, shutdown_waits_for_a_bounded_grace);
	tcase_add_test(tc, graceful_close_after_a_failure_is_a_plain_close);
	ADD_IF_FAULTS(tc, close_stats_exits_failed_counts_a_childs_release);
}

static void add_ownership_cases(Suite *s)
{
	TCase *tc = checked_case(s, "ownership");

	tcase_add_test(tc, adopt_failure_leaves_fd_with_the_caller);
	tcase_add_test(tc, adopt_refuses_an_owned_descriptor_in_any_loop);
	tcase_add_test(tc, adopt_sets_cloexec_unless_asked_not_to);
	tcase_add_test(tc, adopt_refuses_the_runtimes_own_descriptor);
	tcase_add_test(tc, adopt_enter_callback_comes_from_the_loop);
	ADD_IF(tc, adopt_shutdown_on_release_errors, IORING_OP_SHUTDOWN, "IORING_OP_SHUTDOWN (Linux 5.11)");
	tcase_add_test(tc, detach_hands_the_fd_back_with_no_release);
	tcase_add_test(tc, detach_errors_by_state);
	tcase_add_test(tc, detach_refused_after_scope_fail);
	tcase_add_test(tc, entry_move_changes_the_release_order);
	tcase_add_test(tc, entry_move_errors_by_state);
	ADD_IF_FAULTS(tc, entry_move_takes_its_io_and_its_errors_along);
	tcase_add_test(tc, scope_move_changes_who_closes_it);
	tcase_add_test(tc, scope_move_errors_by_state);
	tcase_add_test(tc, scope_move_takes_its_acquires_along);
	tcase_add_test(tc, detached_descriptor_is_no_leak_under_full_audit);
	tcase_add_test(tc, nothing_moves_into_a_grace);
	tcase_add_test(tc, detach_from_an_enter_callback);

	tc = checked_case(s, "release");
	tcase_add_test(tc, defer_failure_pushes_nothing);
	tcase_add_test(tc, defer_runs_once_in_its_lifo_turn);
	tcase_add_test(tc, defer_sees_suppresses_or_raises_the_pending_error);
	tcase_add_test(tc, defer_runs_inside_an_early_release);
	tcase_add_test(tc, defer_waits_for_the_releases_above_it);
	tcase_add_test(tc, scope_fail_promises);
	tcase_add_test(tc, scope_fail_after_close_is_already);
	tcase_add_test(tc, on_close_runs_once_whoever_closes);
	tcase_add_test(tc, release_wait_refusals);
	tcase_add_test(tc, release_wait_of_an_entering_entry_leaves_nothing_open);
	ADD_IF_FAULTS(tc, release_wait_reports_a_failed_close_here_only);
}

static void add_scope_and_loop_cases(Suite *s)
{
	TCase *tc = checked_case(s, "scope-entry");

	tcase_add_test(tc, scope_open_refusals);
	tcase_add_test(tc, child_stays_valid_until_the_parents_callback_returns);
	tcase_add_test(tc, scope_close_does_nothing_inside_the_call);
	tcase_add_test(tc, scope_close_leaves_a_closing_childs_result_to_it);
	tcase_add_test(tc, scope_close_after_its_loop_is_freed_is_stale);
	tcase_add_test(tc, scope_close_wait_refusals);
	tcase_add_test(tc, entry_release_exit_inside_callback_from_the_loop);
	tcase_add_test(tc, entry_release_failure_goes_to_cb_or_to_the_scope);
	tcase_add_test(tc, entry_release_while_entering_reports_the_acquire);
	tcase_add_test(tc, on_enter_sees_the_settled_state);

	tc = checked_case(s, "deadline");
	tcase_add_test(tc, deadline_refusals_and_clearing);
	tcase_add_test(tc, deadline_of_a_child_unwinds_it_alone);
	tcase_add_test(tc, deadline_set_during_a_grace_ends_it);

	tc = checked_case(s, "loop");
	tcase_add_test(tc, loop_fd_turns_readable_for_work_due_outside_the_loop);
	tcase_add_test(tc, loop_post_runs_later_in_order_once);
	tcase_add_test(tc, loop_post_still_queued_runs_at_close);
	tcase_add_test(tc, loop_post_while_the_loop_is_freed_is_refused);
	tcase_add_test(tc, unwind_waits_for_an_early_release_in_flight);
	tcase_add_test(tc, loop_features_are_consistent);
	tcase_add_test(tc, shared_ring_dispatch_promises);

	tc = checked_case(s, "push-loop");
	tcase_add_test(tc, push_refusals_and_a_failing_enter);
	tcase_add_test(tc, hooks_refuse_what_would_nest);
	tcase_add_test(tc, entry_wait_states);
	tcase_add_test(tc, loop_close_refuses_while_a_scope_is_left);
	tcase_add_test(tc, loop_shutdown_combines_and_keeps_callbacks);

	tc = checked_case(s, "getters");
	tcase_add_test(tc, scope_state_and_error_through_an_unwind);
	tcase_add_test(tc, data_pointers_survive_moves_and_last_callbacks);
	tcase_add_test(tc, counters_count_entries_and_run_reports_work);
	tcase_add_test(tc, error_chain_order_format_and_dup);
	tcase_add_test(tc, loop_new_promises);
	tcase_add_test(tc, trace_events_promises);
	tcase_add_test(tc, loop_ids_grow_and_are_not_reused);
	tcase_add_test(tc, entry_getters_name_what_they_hold);
	tcase_add_test(tc, metrics_name_every_counter);
	tcase_add_test(tc, describe_fd_owner_or_enoent);
}

static void add_io_and_net_cases(Suite *s)
{
	TCase *tc = checked_case(s, "io");
	bool sockets = t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_CONNECT);
	const char *no_sockets = "kernel lacks IORING_OP_SOCKET or IORING_OP_CONNECT (Linux 5.19)";

	tcase_add_test(tc, io_argument_refusals);
	tcase_add_test(tc, io_state_refusals);
	tcase_add_test(tc, io_on_an_entry_without_a_descriptor_is_refused);
	tcase_add_test(tc, timer_ends_with_exactly_one_call);
	tcase_add_test(tc, send_to_a_gone_peer_is_epipe_and_reads_follow_the_position);
	ADD_IF_HAS(tc, multishot_receive_promises, t_has_recv_multishot(), "IORING_RECV_MULTISHOT (Linux 6.0)");
	ADD_IF(tc, recv_buffers_argument_refusals, IORING_OP_SEND_ZC, "provided-buffer rings (Linux 5.19)");
	ADD_IF(tc, pipe_ends_through_the_lifecycle, OP_PIPE, "IORING_OP_PIPE (Linux 6.16)");

	tc = checked_case(s, "net");
	tcase_add_test(tc, open_argument_refusals);
	tcase_add_test(tc, open_failure_unwinds_with_openat);
	add_if(tc, socket_argument_refusals_and_detail, sockets, "socket_argument_refusals_and_detail", no_sockets);
	add_if(tc, connect_and_listen_argument_refusals, sockets, "connect_and_listen_argument_refusals",
	       no_sockets);
	add_if(tc, refused_connect_is_the_scopes_error_naming_the_address, sockets,
	       "refused_connect_is_the_scopes_error_naming_the_address", no_sockets);
	add_if(tc, accept_refusals_and_its_one_call, sockets, "accept_refusals_and_its_one_call", no_sockets);
	add_if(tc, accept_racing_its_scopes_close_calls_back_once, sockets,
	       "accept_racing_its_scopes_close_calls_back_once", no_sockets);
	add_if(tc, detach_a_listener_keeps_its_socket, sockets, "detach_a_listener_keeps_its_socket",
	       no_sockets);
}

/* The direct table needs Linux 6.0 (sparse, with allocation ranges): probed once. */
static bool direct_tables_work(void)
{
	struct rsc_loop *probe;

	if (rsc_loop_new(&probe, 8, RSC_LOOP_DIRECT) < 0)
		return false;
	if (rsc_loop_close(probe) < 0)
		printf("probe loop did not close: %s\n", rsc_last_error());
	return true;
}

static void add_direct_cases(Suite *s)
{
	TCase *tc = checked_case(s, "direct");

	if (!direct_tables_work()) {
		printf("SKIP pages/direct: kernel lacks a sparse direct table with allocation ranges (Linux 6.0)\n");
		return;
	}
	tcase_add_test(tc, inbox_needs_a_table_and_keeps_the_loop_alive);
	ADD_IF_HAS(tc, hand_over_to_no_inbox_sends_nothing, t_has_hand_over(), "IORING_MSG_SEND_FD (Linux 6.0)");
	ADD_IF(tc, install_refusals_and_the_ledger, OP_FIXED_FD_INSTALL, "IORING_OP_FIXED_FD_INSTALL (Linux 6.8)");
	ADD_IF(tc, install_below_a_closing_scope_is_refused, OP_FIXED_FD_INSTALL,
	       "IORING_OP_FIXED_FD_INSTALL (Linux 6.8)");
	ADD_IF(tc, install_and_hand_over_refuse_a_pipe, OP_PIPE, "IORING_OP_PIPE (Linux 6.16)");
	tcase_add_test(tc, chain_refusals);
	tcase_add_test(tc, direct_table_and_slot_states);
}

Suite *make_pages_suite(void)
{
	Suite *s = suite_create("pages");

	add_graceful_cases(s);
	add_ownership_cases(s);
	add_scope_and_loop_cases(s);
	add_io_and_net_cases(s);
	add_direct_cases(s);
	return s;
}
