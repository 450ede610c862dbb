/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"

/*
 * Hostile acceptance tests of the newest promises, written from their pages
 * only: rsc_entry_cancel_io(3), rsc_shutdown(3), rsc_scope_fail(3) during a
 * graceful close's grace, RSC_CTR_ERRORS_LOST (rsc_loop_counter(3)), every
 * failed SQE of one release in the chain in SQE order (DESIGN 2.5,
 * rsc_entry_release_wait(3)) and missing:NAME rules (rsc_fault_set(3)).
 * What the peer sees, /proc/self/fd and the errno each callback got are the
 * evidence.
 */

struct io_seen {
	int calls;
	int res;
	int first_res;
	bool buf_null;
	int after_last; /* calls after one with res <= 0 (a multishot's last) */
};

static void note_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct io_seen *s = data;

	(void)e;
	if (s->calls && s->res <= 0)
		s->after_last++;
	if (!s->calls)
		s->first_res = res;
	s->calls++;
	s->res = res;
	s->buf_null = buf == NULL;
}

/* Runs @loop until *@flag reaches @want (bounded: 300 turns of the loop). */
static void run_loop_until(struct rsc_loop *loop, const int *flag, int want)
{
	int i;

	for (i = 0; i < 300 && *flag < want; i++)
		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(*flag, want);
}

static void run_until(struct io_seen *seen, int calls)
{
	run_loop_until(t_loop, &seen->calls, calls);
	ck_assert_int_eq(seen->calls, calls);
}

/* A few turns that wait for nothing. */
static void spin(int turns)
{
	while (turns-- > 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
}

/* The peer's next read: 0 for EOF, -EAGAIN for nothing yet, else bytes. */
static int peer_read(int peer)
{
	char c[64];
	ssize_t n = recv(peer, c, sizeof(c), MSG_DONTWAIT);

	return n < 0 ? -errno : (int)n;
}

static bool skip_multishot(const char *test)
{
	if (t_has_recv_multishot())
		return false;
	printf("SKIP %s: kernel lacks IORING_RECV_MULTISHOT (Linux 6.0)\n", test);
	return true;
}

static bool skip_no_faults(const char *test)
{
	if (t_has_fault_injection())
		return false;
	printf("SKIP %s: built without fault injection\n", test);
	return true;
}

/* ---- rsc_entry_cancel_io(3) ---- */

/* ERRORS: NULL and non-entry handles, a freed entry whose memory was reused. */
START_TEST(cancel_io_stale_after_its_scope_is_freed_and_reused)
{
	struct rsc_scope *s, *s2;
	struct rsc_entry *old, *fresh[8];
	struct io_seen seen = { 0 };
	char buf[8];
	int peer, peers[8], i;

	ck_assert_int_eq(rsc_entry_cancel_io(NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "old", &s), 0);
	old = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
	/* Its memory goes to new entries, each with a receive in flight. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "new", &s2), 0);
	for (i = 0; i < 8; i++) {
		fresh[i] = t_adopted_pair(s2, &peers[i]);
		ck_assert_int_eq(rsc_recv(fresh[i], buf, sizeof(buf), 0, note_io, &seen), 0);
	}
	spin(2);
	ck_assert_int_eq(rsc_entry_cancel_io(old), -ESTALE);
	spin(3);
	ck_assert_int_eq(seen.calls, 0); /* no one else's receive was touched */
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(rsc_entry_io_count(fresh[i]), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s2, NULL), 0);
	ck_assert_int_eq(seen.calls, 8);
	for (i = 0; i < 8; i++)
		close(peers[i]);
}
END_TEST

static struct rsc_entry *g_target;
static int g_hook_ret = 1, g_trace_ret = 1;

static int cancel_in_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	g_hook_ret = rsc_entry_cancel_io(g_target);
	return 0;
}

static int plain_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	(void)e;
	(void)p;
	(void)arg;
	return 0;
}

static void cancel_in_trace(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
			    const struct rsc_entry *e, int res, void *data)
{
	(void)loop;
	(void)s;
	(void)e;
	(void)res;
	(void)data;
	if (ev == RSC_EV_ENTERED && g_trace_ret == 1)
		g_trace_ret = rsc_entry_cancel_io(g_target);
}

/* -EDEADLK from an enter hook and the trace callback, and nothing cancelled. */
START_TEST(cancel_io_from_an_enter_hook_or_the_trace_is_edeadlk_and_cancels_nothing)
{
	static const struct rsc_manager mgr = { sizeof(mgr), 0, "hooked", cancel_in_enter,
						plain_exit };
	struct rsc_scope *s;
	struct rsc_entry *conn, *h, *f;
	struct io_seen seen = { 0 };
	char buf[8];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "hooks", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &seen), 0);
	spin(2);
	g_target = conn;
	g_hook_ret = 1;
	ck_assert_int_eq(rsc_push(s, &mgr, NULL, &h), 0);
	ck_assert_int_eq(g_hook_ret, -EDEADLK);
	g_trace_ret = 1;
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, cancel_in_trace, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &f), 0);
	ck_assert_int_ge(rsc_entry_wait(f), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0);
	ck_assert_int_eq(g_trace_ret, -EDEADLK);
	spin(3);
	ck_assert_int_eq(seen.calls, 0);
	ck_assert_int_eq(rsc_entry_io_count(conn), 1);
	ck_assert_int_eq(write(peer, "hi", 2), 2); /* the receive is still armed */
	run_until(&seen, 1);
	ck_assert_int_eq(seen.res, 2);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

static void store_release(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res == 0 ? 1 : res;
}

/* cancel_io, then a release: the receive ends once, before the close; the
 * peer sees EOF only after; the descriptor is gone. */
START_TEST(cancel_io_then_release_ends_each_op_once_then_closes)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen a = { 0 }, b = { 0 };
	char b1[8];
	int peer, before = t_fd_count(), released = 0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cr", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(conn, b1, sizeof(b1), 0, note_io, &a), 0);
	ck_assert_int_eq(rsc_timeout(conn, 60000, note_io, &b), 0);
	spin(2);
	ck_assert_int_eq(rsc_entry_cancel_io(conn), 2);
	ck_assert_int_eq(rsc_entry_release(conn, store_release, &released), 0);
	ck_assert_int_eq(rsc_entry_cancel_io(conn), 2); /* still counted, no callback yet */
	ck_assert_int_eq(a.calls + b.calls, 0);
	for (int i = 0; i < 300 && (a.calls < 1 || b.calls < 1 || !released); i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(a.res, -ECANCELED);
	ck_assert_int_eq(b.res, -ECANCELED);
	ck_assert_int_eq(peer_read(peer), 0);
	ck_assert_int_eq(t_fd_count(), before + 1); /* only the peer */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(a.calls + b.calls, 2);
	close(peer);
}
END_TEST

struct self_cancel {
	struct io_seen seen[3];
	struct rsc_entry *e;
	int ret_in_cb;
	int count_in_cb;
};

static void cancel_others_from_cb(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct self_cancel *sc = rsc_entry_data(e);

	note_io(e, res, buf, data);
	if (data == &sc->seen[0]) {
		sc->ret_in_cb = rsc_entry_cancel_io(e);
		sc->count_in_cb = rsc_entry_io_count(e);
	}
}

/* From the callback of one of its ops: the op itself is over (not counted),
 * the others end with -ECANCELED, and the entry is idle after them. */
START_TEST(cancel_io_from_an_ops_own_callback_cancels_the_others)
{
	static struct self_cancel sc;
	struct rsc_scope *s;
	char b0[4], b2[4];
	int peer, fd;

	memset(&sc, 0, sizeof(sc));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "self", &s), 0);
	sc.e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_entry_set_data(sc.e, &sc), 0);
	ck_assert_int_eq(rsc_timeout(sc.e, 1, cancel_others_from_cb, &sc.seen[0]), 0);
	ck_assert_int_eq(rsc_timeout(sc.e, 60000, cancel_others_from_cb, &sc.seen[1]), 0);
	ck_assert_int_eq(rsc_recv(sc.e, b0, sizeof(b0), 0, cancel_others_from_cb, &sc.seen[2]), 0);
	(void)b2;
	run_until(&sc.seen[0], 1);
	ck_assert_int_eq(sc.seen[0].res, -ETIME);
	ck_assert_int_eq(sc.ret_in_cb, 2);
	ck_assert_int_eq(sc.count_in_cb, 2);
	run_until(&sc.seen[1], 1);
	run_until(&sc.seen[2], 1);
	ck_assert_int_eq(sc.seen[1].res, -ECANCELED);
	ck_assert_int_eq(sc.seen[2].res, -ECANCELED);
	ck_assert_int_eq(rsc_entry_io_count(sc.e), 0);
	ck_assert_int_eq(rsc_entry_state(sc.e), RSC_ENTERED);
	fd = rsc_entry_detach(sc.e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(peer_read(peer), -EAGAIN); /* no close happened */
	close(fd);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(sc.seen[0].calls + sc.seen[1].calls + sc.seen[2].calls, 3);
}
END_TEST

/*
 * The multishot receive's cancel goes out in the same submit as the receive,
 * whose ring of receive buffers the peer's bytes fill at once: the kernel
 * ends it (-ENOBUFS) before the cancel looks. The page: a multishot receive
 * is not armed again; the entry is idle once its last call has run.
 */
START_TEST(multishot_cancelled_as_its_buffers_run_dry_is_not_armed_again)
{
	static char junk[4096];
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen m = { 0 };
	struct t_guard g;
	long long rearms;
	int peer, fd;

	if (skip_multishot("multishot_cancelled_as_its_buffers_run_dry_is_not_armed_again"))
		return;
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 2, 16), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dry", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(write(peer, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	rearms = rsc_loop_counter(t_loop, RSC_CTR_RECV_REARMS);
	ck_assert_int_eq(rsc_recv_multishot(conn, 0, note_io, &m), 0);
	ck_assert_int_eq(rsc_entry_cancel_io(conn), 1);
	t_guard_start(&g, t_loop, 2000); /* a receive armed again would wait for ever */
	for (int i = 0; i < 300 && rsc_entry_io_count(conn) > 0 && !g.fired; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_entry_io_count(conn), 0);
	ck_assert_int_le(m.res, 0); /* its last call came */
	ck_assert_int_ne(m.res, -ENOBUFS); /* a shortage would promise a re-arm */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RECV_REARMS), rearms);
	spin(3);
	ck_assert_int_eq(m.after_last, 0);
	fd = rsc_entry_detach(conn); /* idle: it may go */
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

static void cancel_from_receive(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct io_seen *m = data;

	note_io(e, res, buf, data);
	if (m->calls == 1)
		m->first_res = rsc_entry_cancel_io(e);
}

/* Stopping a multishot receive from inside one of its own receives, bytes
 * still coming: it ends once, is not armed again, nothing is closed. */
START_TEST(multishot_cancelled_from_its_own_receive_ends_once)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen m = { 0 };
	int peer, fd, ret;

	if (skip_multishot("multishot_cancelled_from_its_own_receive_ends_once"))
		return;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "own", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot(conn, 0, cancel_from_receive, &m), 0);
	ck_assert_int_eq(write(peer, "abc", 3), 3);
	run_until(&m, 1);
	ck_assert_int_eq(m.res, 3);
	ck_assert_int_eq(m.first_res, 1); /* still in flight while its receive runs */
	ck_assert_int_eq(write(peer, "def", 3), 3); /* may race the cancel */
	for (int i = 0; i < 300 && rsc_entry_io_count(conn) > 0; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_le(m.res, 0);
	ck_assert(m.res == -ECANCELED);
	spin(3);
	ck_assert_int_eq(m.after_last, 0);
	ck_assert_int_eq(peer_read(peer), -EAGAIN); /* no FIN: the entry stays */
	fd = rsc_entry_detach(conn);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ret = peer_read(peer); /* "def" unread: a reset, or the end */
	ck_assert(ret == 0 || ret == -ECONNRESET);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

struct acc_seen {
	int calls, conns, last, cancel_ret;
	bool cancel_on_first;
	struct rsc_entry *l;
};

static void note_accept(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *c,
			void *data)
{
	struct acc_seen *a = data;

	(void)c;
	a->calls++;
	a->last = res;
	if (res >= 0) {
		a->conns++;
		ck_assert_int_eq(rsc_scope_close(cs, NULL, NULL), 0);
	}
	if (a->cancel_on_first && a->calls == 1)
		a->cancel_ret = rsc_entry_cancel_io(l);
}

/* A client already waits when the accept and its cancel go out together:
 * the connection is delivered (its own result) or the accept is cancelled,
 * never both lost; the listener keeps its descriptor. */
START_TEST(cancel_io_on_an_accept_while_a_client_waits)
{
	struct rsc_scope *s;
	struct rsc_entry *l;
	struct sockaddr_in at;
	struct acc_seen a = { 0 };
	int cfd, fds;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 8, &at);
	cfd = t_connect(&at);
	fds = t_fd_count();
	ck_assert_int_eq(rsc_accept(l, 0, note_accept, &a), 0);
	ck_assert_int_eq(rsc_entry_cancel_io(l), 1);
	run_loop_until(t_loop, &a.calls, 1);
	spin(3);
	ck_assert_int_eq(a.calls, 1);
	ck_assert(a.last >= 0 || a.last == -ECANCELED);
	ck_assert_int_eq(rsc_entry_io_count(l), 0);
	ck_assert_int_eq(rsc_entry_state(l), RSC_ENTERED);
	for (int i = 0; i < 20 && t_fd_count() > fds; i++)
		spin(1);
	ck_assert_int_eq(t_fd_count(), fds); /* a delivered one was closed by its scope */
	if (a.last >= 0)
		ck_assert_int_eq(peer_read(cfd), 0);
	close(cfd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* A multishot accept stopped from the callback of its first connection:
 * the next client is not accepted by it. */
START_TEST(multishot_accept_cancelled_from_its_callback_accepts_no_more)
{
	struct rsc_scope *s;
	struct rsc_entry *l;
	struct sockaddr_in at;
	struct acc_seen a = { .cancel_on_first = true };
	int c1, c2;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 8, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, note_accept, &a), 0);
	spin(2);
	c1 = t_connect(&at);
	run_loop_until(t_loop, &a.calls, 2);
	ck_assert_int_eq(a.conns, 1);
	ck_assert_int_eq(a.cancel_ret, 1);
	ck_assert_int_eq(a.last, -ECANCELED);
	c2 = t_connect(&at); /* completes in the backlog: nobody accepts it */
	spin(5);
	ck_assert_int_eq(a.calls, 2);
	ck_assert_int_eq(rsc_entry_io_count(l), 0);
	ck_assert_int_eq(peer_read(c2), -EAGAIN);
	close(c1);
	close(c2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

static int shortage_cancel_ret = 99;

static void cancel_on_shortage(struct rsc_entry *l, int res, struct rsc_scope *cs,
			       struct rsc_entry *c, void *data)
{
	struct acc_seen *a = data;

	(void)c;
	(void)cs;
	a->calls++;
	a->last = res;
	if (res == -EMFILE)
		shortage_cancel_ret = rsc_entry_cancel_io(l);
}

/*
 * A multishot accept told of a shortage (-EMFILE), to be re-armed after a
 * pause: the server stops accepting from that callback. rsc_entry_cancel_io()
 * says how many ops its call ends; after it, the accept must not come back.
 */
START_TEST(multishot_accept_stopped_from_its_shortage_callback_stays_stopped)
{
	struct rsc_scope *s;
	struct rsc_entry *l;
	struct sockaddr_in at;
	struct acc_seen a = { 0 };
	int c1, i;

	if (skip_no_faults("multishot_accept_stopped_from_its_shortage_callback_stays_stopped"))
		return;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 8, &at);
	ck_assert_int_eq(rsc_fault_set(t_loop, "accept:1:EMFILE"), 0);
	shortage_cancel_ret = 99;
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, cancel_on_shortage, &a), 0);
	run_loop_until(t_loop, &a.calls, 1);
	ck_assert_int_ne(shortage_cancel_ret, 99); /* the -EMFILE call came, and cancelled */
	c1 = t_connect(&at);
	for (i = 0; i < 30; i++) { /* past the backoff of a re-arm */
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		usleep(5000);
	}
	/* Nothing was in flight in that call (0), and the accept ends with its
	 * last call, -ECANCELED, as rsc_accept(3) promises after a shortage and
	 * as after a graceful close from that callback: nothing accepts any more. */
	ck_assert_int_eq(shortage_cancel_ret, 0);
	ck_assert_int_eq(rsc_entry_io_count(l), 0);
	ck_assert_int_eq(a.calls, 2);
	ck_assert_int_eq(a.last, -ECANCELED);
	ck_assert_int_eq(peer_read(c1), -EAGAIN);
	close(c1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* A timer entry's timer and a defer: what the page lists is cancelled and
 * the entry stays; a defer has nothing in flight. */
START_TEST(cancel_io_on_a_timer_entry_and_a_defer)
{
	struct rsc_scope *s;
	struct rsc_entry *t, *d;
	struct io_seen tm = { 0 };
	int ret;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "timers", &s), 0);
	ck_assert_int_eq(rsc_timer(s, 60000, note_io, &tm, &t), 0);
	ck_assert_int_eq(rsc_defer(s, plain_exit, NULL, &d), 0);
	ck_assert_int_ge(rsc_entry_wait(t), 0);
	spin(2);
	ck_assert_int_eq(rsc_entry_cancel_io(d), 0);
	ret = rsc_entry_cancel_io(t);
	ck_assert_int_ge(ret, 0);
	ck_assert_int_eq(ret, rsc_entry_io_count(t));
	if (ret == 1) {
		run_until(&tm, 1);
		ck_assert_int_eq(tm.res, -ECANCELED);
	}
	ck_assert_int_eq(rsc_entry_state(t), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_le(tm.calls, 1);
}
END_TEST

/* After a deadline has cancelled an entry's I/O, cancel_io sends no second
 * cancel and still reports what is in flight. */
START_TEST(cancel_io_after_a_deadline_cut_the_io)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen seen = { 0 };
	char buf[8];
	int peer, st = 1;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dl", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &seen), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 1, 0), 0);
	run_until(&seen, 1);
	ck_assert_int_eq(seen.res, -ECANCELED);
	ck_assert_int_eq(rsc_entry_cancel_io(conn) >= 0 || rsc_entry_cancel_io(conn) == -ESTALE, 1);
	st = rsc_scope_close_wait(s, NULL);
	ck_assert_int_eq(st, -ETIMEDOUT);
	ck_assert_int_eq(seen.calls, 1);
	ck_assert_int_eq(peer_read(peer), 0);
	close(peer);
}
END_TEST



/* The peer's last bytes and its EOF arrive with the receive and its cancel
 * in one submit: the multishot ends by itself (0, its own result), once;
 * the miss of the cancel changes nothing. */
START_TEST(cancel_io_racing_a_multishots_own_end)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen m = { 0 };
	struct t_guard g;
	long long rearms = rsc_loop_counter(t_loop, RSC_CTR_RECV_REARMS);
	int peer;

	if (skip_multishot("cancel_io_racing_a_multishots_own_end"))
		return;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "end", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(write(peer, "last", 4), 4);
	ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
	ck_assert_int_eq(rsc_recv_multishot(conn, 0, note_io, &m), 0);
	ck_assert_int_eq(rsc_entry_cancel_io(conn), 1);
	t_guard_start(&g, t_loop, 2000);
	for (int i = 0; i < 300 && rsc_entry_io_count(conn) > 0 && !g.fired; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	t_guard_stop(&g);
	ck_assert_int_eq(rsc_entry_io_count(conn), 0);
	ck_assert(m.res == 0 || m.res == -ECANCELED);
	ck_assert(m.first_res == 4 || m.first_res == -ECANCELED);
	spin(5); /* the cancel's miss, sent again after a pause, finds nothing */
	ck_assert_int_eq(m.after_last, 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RECV_REARMS), rearms);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* A timer that has fired in the kernel, not yet reaped, when cancel_io is
 * called: its callback runs once with its own result. */
START_TEST(cancel_io_after_the_timer_fired_gets_its_own_result)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen t = { 0 };
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "late", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_timeout(conn, 1, note_io, &t), 0);
	spin(1); /* submitted */
	usleep(20000);
	ck_assert_int_eq(t.calls, 0);
	ck_assert_int_eq(rsc_entry_cancel_io(conn), 1);
	run_until(&t, 1);
	ck_assert_int_eq(t.res, -ETIME);
	spin(5);
	ck_assert_int_eq(t.calls, 1);
	ck_assert_int_eq(rsc_entry_io_count(conn), 0);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* A multishot accept waiting out a shortage (its backoff timer in flight)
 * is ended by cancel_io: counted, one last -ECANCELED, and no accept later. */
START_TEST(cancel_io_during_an_accepts_backoff)
{
	struct rsc_scope *s;
	struct rsc_entry *l;
	struct sockaddr_in at;
	struct acc_seen a = { 0 };
	int c1, i;

	if (skip_no_faults("cancel_io_during_an_accepts_backoff"))
		return;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 8, &at);
	ck_assert_int_eq(rsc_fault_set(t_loop, "accept:1:EMFILE"), 0);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, note_accept, &a), 0);
	run_loop_until(t_loop, &a.calls, 1);
	ck_assert_int_eq(a.last, -EMFILE);
	ck_assert_int_eq(rsc_entry_io_count(l), 1); /* its backoff */
	ck_assert_int_eq(rsc_entry_cancel_io(l), 1);
	run_loop_until(t_loop, &a.calls, 2);
	ck_assert_int_eq(a.last, -ECANCELED);
	c1 = t_connect(&at);
	for (i = 0; i < 20; i++) {
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		usleep(5000);
	}
	ck_assert_int_eq(a.calls, 2);
	ck_assert_int_eq(rsc_entry_io_count(l), 0);
	ck_assert_int_eq(peer_read(c1), -EAGAIN);
	close(c1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/*
 * Top down (rsc_scope_fail(3) NOTES): the parent fails, its unwind starts
 * and closes a newer child whose release takes 20 ms (an exit's timeout,
 * -ETIME); meanwhile the older child, waiting for its turn, fails, and its
 * unwind copies the parent's pending chain under its own error. A fail
 * refused for memory is asked again (nothing was raised).
 */
static int fail_again_if_refused(struct rsc_scope *s, int err, const char *op)
{
	int ret = rsc_scope_fail(s, err, op);

	if (ret == -ENOMEM) {
		ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
		ret = rsc_scope_fail(s, err, op);
	}
	return ret;
}

static int slow_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
}

static int slow_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	static struct __kernel_timespec ts = { 0, 20000000 };
	struct io_uring_sqe *sq;
	int ret = rsc_entry_get_sqes(e, 1, &sq);

	(void)p;
	(void)arg;
	if (ret < 0)
		return ret;
	io_uring_prep_timeout(sq, &ts, 0, 0);
	return 0;
}

static const struct rsc_manager slow_mgr = { sizeof(slow_mgr), 0, "slow", slow_enter, slow_exit };

static int nested_failure(const char *rule, struct rsc_error **errp)
{
	struct rsc_scope *p, *c, *slow;
	struct rsc_entry *d1, *d2, *e;
	int ret;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "parent", &p), 0);
	ck_assert_int_eq(rsc_defer(p, plain_exit, NULL, &d1), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "child", &c), 0);
	ck_assert_int_eq(rsc_defer(c, plain_exit, NULL, &d2), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "slow", &slow), 0);
	ck_assert_int_eq(rsc_push(slow, &slow_mgr, NULL, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, rule), 0);
	ck_assert_int_eq(fail_again_if_refused(p, -EPROTO, "outer"), 0);
	spin(1); /* the parent's unwind has started; the slow child holds it */
	ck_assert_int_eq(rsc_scope_state(c), RSC_SCOPE_OPEN);
	ck_assert_int_eq(fail_again_if_refused(c, -EIO, "inner"), 0);
	ret = rsc_scope_close_wait(p, errp);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	return ret;
}

START_TEST(nested_failures_without_memory_count_every_error_lost)
{
	long long total_lost = 0;
	struct rsc_error *err = NULL;
	char rule[32];
	int full, n;

	if (skip_no_faults("nested_failures_without_memory_count_every_error_lost"))
		return;
	ck_assert_int_lt(nested_failure("", &err), 0);
	full = rsc_error_depth(err);
	ck_assert_int_ge(full, 3); /* the slow release's, the parent's copied, the child's */
	ck_assert_str_eq(rsc_error_op(err), "timeout");
	rsc_error_free(err);
	for (n = 1; n <= 16; n++) {
		long long lost0 = rsc_loop_counter(t_loop, RSC_CTR_ERRORS_LOST), lost;
		int ret, depth;

		err = NULL;
		snprintf(rule, sizeof(rule), "alloc:%d:ENOMEM", n);
		ret = nested_failure(rule, &err);
		lost = rsc_loop_counter(t_loop, RSC_CTR_ERRORS_LOST) - lost0;
		total_lost += lost;
		depth = err ? rsc_error_depth(err) : 0;
		ck_assert_msg(ret < 0, "n=%d: the scope reported %d", n, ret);
		if (err)
			ck_assert_int_eq(rsc_error_errno(err), ret);
		ck_assert_msg(depth + lost == full, "n=%d: depth %d, lost %lld, full %d", n, depth,
			      lost, full);
		rsc_error_free(err);
	}
	ck_assert_int_gt(total_lost, 0); /* the sweep did reach a lost node */
}
END_TEST

/* ---- cancel_io on an entry whose slot is moving ---- */

struct moved {
	int n, res;
};

static void note_moved(struct rsc_entry *e, int res, void *data)
{
	struct moved *m = data;

	(void)e;
	m->n++;
	m->res = res;
}

/* A direct entry of the test loop, entered, in scope @s. */
static struct rsc_entry *direct_file(struct rsc_scope *s)
{
	struct rsc_entry *e;

	t_make_files(1);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	return e;
}

/*
 * A hand-over in flight is no I/O of the page's list but a move of
 * ownership, which a cancel could only half undo (the file in the receiver's
 * ring and the sender's slot kept: two owners). cancel_io returns how many
 * ops it ends, each with a callback of its own: the hand-over is not one of
 * them, and it completes as if no cancel had been asked for.
 */
START_TEST(cancel_io_during_a_hand_over_leaves_the_move_alone)
{
	struct rsc_loop *rl;
	struct rsc_scope *s, *rs;
	struct rsc_entry *e, *inbox;
	unsigned long long addr;
	struct moved m = { 0 };
	int arrived = 0, ret;

	if (!t_has_hand_over()) {
		printf("SKIP cancel_io_during_a_hand_over_leaves_the_move_alone: no IORING_MSG_SEND_FD (Linux 6.0)\n");
		return;
	}
	ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "receiver", &rs), 0);
	ck_assert_int_eq(rsc_inbox(rs, t_count_arrival, &arrived, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &s), 0);
	e = direct_file(s);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, note_moved, &m), 0);
	ret = rsc_entry_cancel_io(e);
	ck_assert_int_eq(ret, 0);
	run_loop_until(t_loop, &m.n, 1);
	spin(3);
	ck_assert_int_eq(m.n, 1);
	ck_assert_int_ge(m.res, 0);
	ck_assert_int_eq(rsc_entry_slot(e), -EXDEV);
	ck_assert_int_eq(rsc_entry_io_count(e), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(arrived, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0); /* the sender's slot was closed */
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(rs, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(rl), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
}
END_TEST

/* The same for an install (rsc_entry_install(3)) whose SQEs are not even
 * submitted yet when cancel_io is called. */
START_TEST(cancel_io_during_an_install_leaves_the_move_alone)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct moved m = { 0 };
	int before = t_fd_count();

	if (!t_kernel_has(OP_FIXED_FD_INSTALL)) {
		printf("SKIP cancel_io_during_an_install_leaves_the_move_alone: no IORING_OP_FIXED_FD_INSTALL (Linux 6.8)\n");
		return;
	}
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "inst", &s), 0);
	e = direct_file(s);
	ck_assert_int_eq(rsc_entry_install(e, 0, note_moved, &m), 0);
	ck_assert_int_eq(rsc_entry_cancel_io(e), 0);
	run_loop_until(t_loop, &m.n, 1);
	spin(3);
	ck_assert_int_eq(m.n, 1);
	ck_assert_int_ge(m.res, 0);
	ck_assert_int_eq(rsc_entry_fd(e), m.res);
	ck_assert_int_eq(fcntl(m.res, F_GETFD), FD_CLOEXEC);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_entry_io_count(e), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST


/* An inbox holds no I/O of the caller's (rsc_inbox(3): tracked I/O on it is
 * refused): cancel_io has nothing to end there, and the inbox goes on
 * keeping its loop alive and receiving. */
START_TEST(cancel_io_on_an_inbox_leaves_it_receiving)
{
	struct rsc_loop *rl;
	struct rsc_scope *s, *rs;
	struct rsc_entry *e, *inbox;
	unsigned long long addr;
	struct moved m = { 0 };
	int arrived = 0;

	if (!t_has_hand_over()) {
		printf("SKIP cancel_io_on_an_inbox_leaves_it_receiving: no IORING_MSG_SEND_FD (Linux 6.0)\n");
		return;
	}
	ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "receiver", &rs), 0);
	ck_assert_int_eq(rsc_inbox(rs, t_count_arrival, &arrived, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_cancel_io(inbox), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
	ck_assert_int_gt(rsc_loop_alive(rl), 0);
	ck_assert_int_eq(rsc_entry_state(inbox), RSC_ENTERED);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &s), 0);
	e = direct_file(s);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, note_moved, &m), 0);
	run_loop_until(t_loop, &m.n, 1);
	ck_assert_int_ge(m.res, 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(arrived, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(rs, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(rl), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
}
END_TEST

/* A pipe's read and write ends both busy: every op ends once, the entry and
 * both its descriptors stay. */
START_TEST(cancel_io_on_a_pipe_with_a_read_and_a_write)
{
	static char big[1 << 20];
	struct rsc_scope *s;
	struct rsc_entry *p;
	struct io_seen rd = { 0 }, wr = { 0 };
	char buf[8];
	int ends[2], n;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "pipe", &s), 0);
	ck_assert_int_eq(rsc_pipe(s, 0, &p), 0);
	ck_assert_int_ge(rsc_entry_wait(p), 0);
	ck_assert_int_eq(rsc_pipe_ends(p, ends), 0);
	ck_assert_int_eq(rsc_read(p, buf, sizeof(buf), -1, note_io, &rd), 0);
	spin(2);
	ck_assert_int_eq(rd.calls, 0);
	ck_assert_int_eq(rsc_write(p, big, sizeof(big), -1, note_io, &wr), 0);
	n = rsc_entry_cancel_io(p);
	ck_assert_int_eq(n, 2);
	run_until(&rd, 1);
	run_until(&wr, 1);
	spin(3);
	ck_assert_int_eq(rd.calls + wr.calls, 2);
	ck_assert(rd.res == -ECANCELED || rd.res > 0);
	ck_assert(wr.res == -ECANCELED || wr.res > 0);
	ck_assert_int_eq(rsc_entry_io_count(p), 0);
	ck_assert_int_ge(fcntl(ends[0], F_GETFD), 0);
	ck_assert_int_ge(fcntl(ends[1], F_GETFD), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rd.calls + wr.calls, 2);
}
END_TEST


static void keep_conn_cb(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *c,
			 void *data)
{
	(void)l;
	(void)cs;
	if (res >= 0)
		*(struct rsc_entry **)data = c;
}

struct migrate {
	unsigned long long to;
	struct moved m;
	int rc_calls, rc_res, hand_ret;
};

static void hand_over_when_idle(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct migrate *mg = data;

	(void)buf;
	mg->rc_calls++;
	mg->rc_res = res;
	if (res == -ECANCELED) /* its last op has ended: the slot can go */
		mg->hand_ret = rsc_entry_hand_over(e, mg->to, note_moved, &mg->m);
}

/* The page's EXAMPLE: an idle keep-alive connection on a direct slot, its
 * next request awaited, handed to another loop from the cancelled receive's
 * callback; the client's next bytes reach the new owner. */
START_TEST(cancel_io_then_hand_over_from_the_callback_as_the_example)
{
	struct rsc_loop *rl;
	struct rsc_scope *s, *rs;
	struct rsc_entry *l, *conn = NULL, *inbox;
	struct sockaddr_in at;
	struct migrate mg = { 0 };
	char buf[16];
	int arrived = 0, cfd;

	if (!t_has_hand_over()) {
		printf("SKIP cancel_io_then_hand_over_from_the_callback_as_the_example: no IORING_MSG_SEND_FD (Linux 6.0)\n");
		return;
	}
	ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "worker", &rs), 0);
	ck_assert_int_eq(rsc_inbox(rs, t_count_arrival, &arrived, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &mg.to), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT, keep_conn_cb, &conn), 0);
	cfd = t_connect(&at);
	for (int i = 0; i < 300 && !conn; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_ptr_nonnull(conn);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, hand_over_when_idle, &mg), 0);
	spin(2);
	ck_assert_int_eq(rsc_entry_cancel_io(conn), 1);
	run_loop_until(t_loop, &mg.m.n, 1);
	ck_assert_int_eq(mg.rc_calls, 1);
	ck_assert_int_eq(mg.hand_ret, 0);
	ck_assert_int_ge(mg.m.res, 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(arrived, 1);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0); /* the acceptor's slot is closed */
	ck_assert_int_eq(rsc_loop_direct_used(rl), 1);	  /* the worker holds it */
	ck_assert_int_eq(peer_read(cfd), -EAGAIN);	  /* never closed on the way */
	close(cfd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(rs, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(rl), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
}
END_TEST

/* ---- rsc_shutdown(3) ---- */

/* A deadline fires while a half-closed entry goes on receiving: the receive
 * ends -ECANCELED, the unwind closes the socket, the peer sees EOF then. */
START_TEST(shutdown_then_a_deadline_fires)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen sh = { 0 }, rc = { 0 }, late = { 0 };
	char buf[8];
	int peer, ret, before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dl", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 30, 0), 0);
	ck_assert_int_eq(rsc_shutdown(conn, SHUT_WR, note_io, &sh), 0);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &rc), 0);
	run_until(&sh, 1);
	ck_assert_int_eq(sh.res, 0);
	ck_assert(sh.buf_null);
	ck_assert_int_eq(peer_read(peer), 0); /* the FIN */
	run_until(&rc, 1);
	ck_assert_int_eq(rc.res, -ECANCELED);
	/* Its scope is unwinding (-ESHUTDOWN), or the entry is being released (-EBADF). */
	ret = rsc_shutdown(conn, SHUT_RD, note_io, &late);
	ck_assert(ret == -ESHUTDOWN || ret == -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
	ck_assert_int_eq(late.calls, 0);
	ck_assert_int_eq(t_fd_count(), before + 1);
	ck_assert_int_eq(send(peer, "x", 1, MSG_NOSIGNAL), -1); /* the entry's end is closed */
	close(peer);
}
END_TEST

/* shutdown, detach, the caller's own close: the FIN came first, the entry
 * no longer owns the descriptor, the caller's close is the only one. */
START_TEST(shutdown_then_detach_then_the_callers_close)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen sh = { 0 };
	int peer, fd, before = t_fd_count();
	char got[8];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sd", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_shutdown(conn, SHUT_WR, note_io, &sh), 0);
	ck_assert_int_eq(rsc_entry_detach(conn), -EBUSY); /* tracked like I/O */
	run_until(&sh, 1);
	ck_assert_int_eq(sh.res, 0);
	fd = rsc_entry_detach(conn);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(peer_read(peer), 0);
	ck_assert_int_eq(write(peer, "back", 4), 4); /* the other way still flows */
	ck_assert_int_eq(read(fd, got, sizeof(got)), 4);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD), FD_CLOEXEC); /* still the caller's */
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(t_fd_count(), before + 1);
	close(peer);
}
END_TEST

/* On a pipe (no socket) the callback hears -ENOTSOCK; on a timer or a
 * defer (no descriptor) the call fails -EBADF and cb is never called. */
START_TEST(shutdown_on_a_pipe_a_timer_and_a_defer)
{
	struct rsc_scope *s;
	struct rsc_entry *p, *t, *d;
	struct io_seen sp = { 0 }, none = { 0 }, tm = { 0 };
	int ends[2];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "kinds", &s), 0);
	ck_assert_int_eq(rsc_pipe(s, 0, &p), 0);
	ck_assert_int_ge(rsc_entry_wait(p), 0);
	ck_assert_int_eq(rsc_pipe_ends(p, ends), 0);
	ck_assert_int_eq(rsc_shutdown(p, SHUT_WR, note_io, &sp), 0);
	run_until(&sp, 1);
	ck_assert_int_eq(sp.res, -ENOTSOCK);
	ck_assert_int_eq(fcntl(ends[1], F_GETFD), FD_CLOEXEC);
	ck_assert_int_eq(rsc_timer(s, 60000, note_io, &tm, &t), 0);
	ck_assert_int_ge(rsc_entry_wait(t), 0);
	ck_assert_int_eq(rsc_defer(s, plain_exit, NULL, &d), 0);
	ck_assert_int_eq(rsc_shutdown(t, SHUT_WR, note_io, &none), -EBADF);
	ck_assert_int_eq(rsc_shutdown(d, SHUT_WR, note_io, &none), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(none.calls, 0);
	ck_assert_int_eq(sp.calls, 1);
}
END_TEST

/* A listener: the call is accepted and its callback runs once; the listener
 * still holds its descriptor until its scope's unwind. */
START_TEST(shutdown_on_a_listener_runs_its_callback_once)
{
	struct rsc_scope *s;
	struct rsc_entry *l;
	struct sockaddr_in at;
	struct io_seen sh = { 0 };
	int fd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "lis", &s), 0);
	l = t_listen_on_loopback(s, 4, &at);
	fd = rsc_entry_fd(l);
	ck_assert_int_eq(rsc_shutdown(l, SHUT_WR, note_io, &sh), 0);
	run_until(&sh, 1);
	ck_assert(sh.res == 0 || sh.res == -ENOTCONN);
	ck_assert_int_ge(fcntl(fd, F_GETFD), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(sh.calls, 1);
}
END_TEST

/* missing:shutdown: the call fails -EOPNOTSUPP naming the opcode, and cb
 * is never called; the rule replaced, it works again. */
START_TEST(shutdown_without_the_opcode_is_eopnotsupp)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen sh = { 0 };
	int peer, ret;

	if (skip_no_faults("shutdown_without_the_opcode_is_eopnotsupp"))
		return;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "old", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_fault_set(t_loop, "missing:shutdown"), 0);
	ret = rsc_shutdown(conn, SHUT_WR, note_io, &sh);
	ck_assert_int_eq(ret, -EOPNOTSUPP);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "IORING_OP_SHUTDOWN"));
	ck_assert_int_eq(rsc_entry_io_count(conn), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 0);
	spin(2);
	ck_assert_int_eq(peer_read(peer), -EAGAIN); /* no FIN */
	ck_assert_int_eq(rsc_fault_set(t_loop, ""), 0);
	ck_assert_int_eq(rsc_shutdown(conn, SHUT_WR, note_io, &sh), 0);
	run_until(&sh, 1);
	ck_assert_int_eq(sh.res, 0);
	ck_assert_int_eq(peer_read(peer), 0);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* Cancelled by cancel_io before it runs, or done: its callback once. A
 * graceful close waits for a shutdown in flight like any I/O. */
START_TEST(shutdown_in_a_grace_is_tracked_and_cancel_io_counts_it)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen sh = { 0 };
	int peer, st = 1;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "g", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_shutdown(conn, SHUT_WR, note_io, &sh), 0);
	ck_assert_int_eq(rsc_entry_cancel_io(conn), 1);
	ck_assert_int_eq(sh.calls, 0);
	run_until(&sh, 1);
	ck_assert(sh.res == 0 || sh.res == -ECANCELED);
	ck_assert_int_eq(rsc_entry_io_count(conn), 0);
	ck_assert_int_eq(rsc_shutdown(conn, SHUT_RDWR, note_io, &sh), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 10000, NULL, NULL), 0);
	ck_assert_int_eq(sh.calls, 1);
	for (int i = 0; i < 300 && rsc_loop_alive(t_loop) > 0; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(sh.calls, 2);
	ck_assert_int_eq(sh.res, 0);
	ck_assert_int_eq(peer_read(peer), 0);
	(void)st;
	close(peer);
}
END_TEST


/* A socket that is not connected: the callback hears -ENOTCONN, once. */
START_TEST(shutdown_of_an_unconnected_socket_is_enotconn)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct io_seen sh = { 0 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "unconn", &s), 0);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_shutdown(e, SHUT_WR, note_io, &sh), 0);
	run_until(&sh, 1);
	ck_assert_int_eq(sh.res, -ENOTCONN);
	ck_assert(sh.buf_null);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(sh.calls, 1);
}
END_TEST

/* ---- rsc_scope_fail(3) in a grace ---- */

struct close_seen {
	int calls, status, depth;
	unsigned drained, cancelled;
	char op[32];
	long at_ms;
};

static void note_close(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct close_seen *c = data;

	c->calls++;
	c->status = status;
	c->depth = err ? rsc_error_depth(err) : 0;
	snprintf(c->op, sizeof(c->op), "%s", err ? rsc_error_op(err) : "");
	c->at_ms = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_stats(s, &c->drained, &c->cancelled, NULL), 0);
}

static int seen_pending_errno;

static int note_pending(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	(void)e;
	(void)arg;
	seen_pending_errno = p ? rsc_error_errno(p) : 0;
	return 0;
}

/* The failure ends the grace at once: the receive is cancelled, exits see
 * the error, the graceful close's callback gets it, the peer sees EOF. */
START_TEST(scope_fail_ends_a_grace_and_its_callback_gets_the_error)
{
	struct rsc_scope *s;
	struct rsc_entry *conn, *d;
	struct io_seen rc = { 0 };
	struct close_seen cs = { 0 };
	char buf[8];
	int peer;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "req", &s), 0);
	ck_assert_int_eq(rsc_defer(s, note_pending, NULL, &d), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &rc), 0);
	spin(2);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(s, 20000, note_close, &cs), 0);
	spin(2);
	ck_assert_int_eq(cs.calls, 0);
	seen_pending_errno = 0;
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "parse"), 0);
	ck_assert_int_eq(rc.calls, 0); /* nothing inside the call */
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "again"), -EALREADY);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), -EALREADY);
	/* The grace's allowances end with it: the unwind owns the entries. */
	ck_assert_int_eq(rsc_entry_release(conn, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_entry_detach(conn), -EALREADY);
	ck_assert_int_eq(rsc_send(conn, "x", 1, 0, note_io, &rc), -ESHUTDOWN);
	ck_assert_int_eq(rsc_defer(s, plain_exit, NULL, &d), -ESHUTDOWN);
	{
		struct rsc_scope *child;

		ck_assert_int_eq(rsc_scope_open(t_loop, s, "late", &child), -ESHUTDOWN);
	}
	run_loop_until(t_loop, &cs.calls, 1);
	ck_assert_int_lt(t_now_ms() - t0, 5000);
	ck_assert_int_eq(cs.status, -EPROTO);
	ck_assert_str_eq(cs.op, "parse");
	ck_assert_uint_eq(cs.drained, 0);
	ck_assert_uint_eq(cs.cancelled, 1); /* its receive, by the unwind */
	ck_assert_int_eq(rc.calls, 1);
	ck_assert_int_eq(rc.res, -ECANCELED);
	ck_assert_int_eq(seen_pending_errno, -EPROTO);
	ck_assert_int_eq(peer_read(peer), 0);
	close(peer);
}
END_TEST


/* The same with the scope's deadline passing during the grace: the grace
 * ends then, and what its unwind cancels counts as cancelled, not drained. */
START_TEST(deadline_in_a_grace_counts_the_io_it_cuts_as_cancelled)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen rc = { 0 };
	struct close_seen cs = { 0 };
	char buf[8];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "req", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &rc), 0);
	spin(2);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 20000, note_close, &cs), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 10, 0), 0);
	run_loop_until(t_loop, &cs.calls, 1);
	ck_assert_int_eq(cs.status, -ETIMEDOUT);
	ck_assert_int_eq(rc.res, -ECANCELED);
	ck_assert_uint_eq(cs.drained, 0);
	ck_assert_uint_eq(cs.cancelled, 1);
	ck_assert_int_eq(peer_read(peer), 0);
	close(peer);
}
END_TEST


/* Failed right after a graceful close with nothing in flight (its grace
 * would end on the next turn): the failure still wins; exits see it and the
 * close's callback gets it. Once unwound and freed, the handle is stale. */
START_TEST(scope_fail_before_an_idle_grace_ends)
{
	struct rsc_scope *s;
	struct rsc_entry *d;
	struct close_seen cs = { 0 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "idle", &s), 0);
	ck_assert_int_eq(rsc_defer(s, note_pending, NULL, &d), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, note_close, &cs), 0);
	seen_pending_errno = 0;
	ck_assert_int_eq(rsc_scope_fail(s, -ENOTRECOVERABLE, "late"), 0);
	run_loop_until(t_loop, &cs.calls, 1);
	ck_assert_int_eq(cs.status, -ENOTRECOVERABLE);
	ck_assert_str_eq(cs.op, "late");
	ck_assert_int_eq(seen_pending_errno, -ENOTRECOVERABLE);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "x"), -ESTALE);
}
END_TEST


/* In a grace, a failure refused for memory changes nothing: the grace goes
 * on, its I/O still holds it; failed again, the grace ends with that error. */
START_TEST(scope_fail_in_a_grace_without_memory_leaves_the_grace)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen rc = { 0 };
	struct close_seen cs = { 0 };
	char buf[8];
	int peer, ret;

	if (skip_no_faults("scope_fail_in_a_grace_without_memory_leaves_the_grace"))
		return;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "g", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &rc), 0);
	spin(2);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 20000, note_close, &cs), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "alloc:1:ENOMEM"), 0);
	ret = rsc_scope_fail(s, -EPROTO, "parse");
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	ck_assert_int_eq(ret, -ENOMEM);
	spin(3);
	ck_assert_int_eq(cs.calls + rc.calls, 0); /* still in its grace */
	ck_assert_int_eq(write(peer, "req", 3), 3);
	run_until(&rc, 1);
	ck_assert_int_eq(rc.res, 3); /* the work let finish did finish */
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &rc), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "parse"), 0);
	run_loop_until(t_loop, &cs.calls, 1);
	ck_assert_int_eq(cs.status, -EPROTO);
	ck_assert_int_eq(rc.calls, 2);
	ck_assert_int_eq(rc.res, -ECANCELED);
	close(peer);
}
END_TEST

static struct rsc_scope *fail_target;
static int fail_ret_in_cb = 1;

static void fail_from_io_cb(struct rsc_entry *e, int res, void *buf, void *data)
{
	note_io(e, res, buf, data);
	fail_ret_in_cb = rsc_scope_fail(fail_target, -ECONNRESET, "peer");
}

/* From an I/O callback during the grace (the request said "abort"): the
 * same, the other receive is cancelled at once. */
START_TEST(scope_fail_in_a_grace_from_an_io_callback)
{
	struct rsc_scope *s;
	struct rsc_entry *c1, *c2;
	struct io_seen r1 = { 0 }, r2 = { 0 };
	struct close_seen cs = { 0 };
	char b1[8], b2[8];
	int p1, p2;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	c1 = t_adopted_pair(s, &p1);
	c2 = t_adopted_pair(s, &p2);
	ck_assert_int_eq(rsc_recv(c1, b1, sizeof(b1), 0, fail_from_io_cb, &r1), 0);
	ck_assert_int_eq(rsc_recv(c2, b2, sizeof(b2), 0, note_io, &r2), 0);
	spin(2);
	fail_target = s;
	fail_ret_in_cb = 1;
	ck_assert_int_eq(rsc_scope_close_graceful(s, 20000, note_close, &cs), 0);
	ck_assert_int_eq(write(p1, "abort", 5), 5);
	run_loop_until(t_loop, &cs.calls, 1);
	ck_assert_int_eq(fail_ret_in_cb, 0);
	ck_assert_int_eq(r1.res, 5);
	ck_assert_int_eq(r2.calls, 1);
	ck_assert_int_eq(r2.res, -ECANCELED);
	ck_assert_int_eq(cs.status, -ECONNRESET);
	ck_assert_int_eq(peer_read(p1), 0);
	ck_assert_int_eq(peer_read(p2), 0);
	close(p1);
	close(p2);
}
END_TEST

/* A failure of the parent of a scope in its grace: the grace ends too. */
START_TEST(parent_failed_ends_a_childs_grace)
{
	struct rsc_scope *top, *child;
	struct rsc_entry *conn;
	struct io_seen rc = { 0 };
	struct close_seen cs = { 0 };
	char buf[8];
	int peer, st;
	long t0 = t_now_ms();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "top", &top), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, top, "child", &child), 0);
	conn = t_adopted_pair(child, &peer);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &rc), 0);
	spin(2);
	ck_assert_int_eq(rsc_scope_close_graceful(child, 20000, note_close, &cs), 0);
	spin(2);
	ck_assert_int_eq(rsc_scope_fail(top, -EPIPE, "upstream"), 0);
	run_loop_until(t_loop, &cs.calls, 1);
	ck_assert_int_lt(t_now_ms() - t0, 5000);
	ck_assert_int_eq(rc.res, -ECANCELED);
	ck_assert_int_eq(peer_read(peer), 0);
	st = rsc_scope_close_wait(top, NULL);
	ck_assert_int_eq(st, -EPIPE);
	close(peer);
}
END_TEST


/* Below a scope in its grace, under an ancestor whose close waits for that
 * grace: a failure of the scope below starts its unwind at once (its peer
 * sees EOF) while the grace goes on; the grace then ends by cancel_io. */
START_TEST(fail_below_a_grace_under_a_closing_ancestor_unwinds_at_once)
{
	struct rsc_scope *top, *g, *b;
	struct rsc_entry *ge, *be;
	struct io_seen gr = { 0 }, br = { 0 };
	struct close_seen tc = { 0 }, gc = { 0 };
	char b1[8], b2[8];
	int gp, bp, i;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "top", &top), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, top, "g", &g), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, g, "b", &b), 0);
	ge = t_adopted_pair(g, &gp);
	be = t_adopted_pair(b, &bp);
	ck_assert_int_eq(rsc_recv(ge, b1, sizeof(b1), 0, note_io, &gr), 0);
	ck_assert_int_eq(rsc_recv(be, b2, sizeof(b2), 0, note_io, &br), 0);
	spin(2);
	ck_assert_int_eq(rsc_scope_close_graceful(g, 0, note_close, &gc), 0);
	ck_assert_int_eq(rsc_scope_close(top, note_close, &tc), 0);
	spin(3);
	ck_assert_int_eq(gr.calls + br.calls, 0); /* the grace holds */
	ck_assert_int_eq(rsc_scope_fail(b, -EPROTO, "bad request"), 0);
	run_until(&br, 1);
	ck_assert_int_eq(br.res, -ECANCELED);
	for (i = 0; i < 50 && peer_read(bp) != 0; i++)
		spin(1);
	ck_assert_int_eq(peer_read(bp), 0); /* b unwound, inside the grace */
	ck_assert_int_eq(gr.calls, 0);
	ck_assert_int_eq(gc.calls + tc.calls, 0);
	ck_assert_int_eq(peer_read(gp), -EAGAIN);
	ck_assert_int_eq(rsc_entry_cancel_io(ge), 1);
	run_loop_until(t_loop, &tc.calls, 1);
	ck_assert_int_eq(gc.calls, 1);
	ck_assert_int_eq(gr.res, -ECANCELED);
	/* b's failure reaches g's unwind, and g's result its own callback, not top
	 * (rsc_scope_close(3): a child closed earlier reports to its callback). */
	ck_assert_int_eq(gc.status, -EPROTO);
	ck_assert_int_eq(tc.status, 0);
	ck_assert_int_eq(peer_read(gp), 0);
	close(gp);
	close(bp);
}
END_TEST

static struct rsc_scope *hook_fail_scope;
static int hook_fail_ret = 1;

static int fail_in_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	hook_fail_ret = rsc_scope_fail(hook_fail_scope, -ENOLINK, NULL);
	return 0;
}

static int exit_calls;
static int count_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	(void)e;
	(void)arg;
	exit_calls++;
	seen_pending_errno = p ? rsc_error_errno(p) : 0;
	return 0;
}

/* rsc_scope_fail from inside the enter hook of an entry being pushed into
 * that very scope: no -EDEADLK in its ERRORS, nothing runs inside it; the
 * entry, pushed, is released by the unwind exactly once; op NULL is "fail". */
START_TEST(scope_fail_from_the_enter_hook_of_an_entry_of_that_scope)
{
	static const struct rsc_manager mgr = { sizeof(mgr), 0, "failing", fail_in_enter,
						count_exit };
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	int ret;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "self", &s), 0);
	hook_fail_scope = s;
	hook_fail_ret = 1;
	exit_calls = 0;
	ret = rsc_push(s, &mgr, NULL, &e);
	ck_assert_int_eq(hook_fail_ret, 0);
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(exit_calls, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOLINK);
	ck_assert_int_eq(exit_calls, 1);
	ck_assert_int_eq(seen_pending_errno, -ENOLINK);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "fail");
	ck_assert_str_eq(rsc_error_scope(err), "self");
	ck_assert_str_eq(rsc_error_entry(err), "");
	rsc_error_free(err);
}
END_TEST

/* Bad arguments, a stale handle, and op copied. */
START_TEST(scope_fail_arguments_and_a_stale_scope)
{
	struct rsc_scope *s, *s2;
	struct rsc_error *err = NULL;
	char op[16] = "mutable";

	ck_assert_int_eq(rsc_scope_fail(NULL, -EIO, "x"), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "args", &s), 0);
	ck_assert_int_eq(rsc_scope_fail(s, 0, "x"), -EINVAL);
	ck_assert_int_eq(rsc_scope_fail(s, EIO, "x"), -EINVAL);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, op), 0);
	strcpy(op, "changed");
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	ck_assert_str_eq(rsc_error_op(err), "mutable");
	rsc_error_free(err);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "reuse", &s2), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "x"), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(s2), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(s2, NULL), 0);
}
END_TEST


/* ---- several failed SQEs of one release (DESIGN 2.5) ---- */

/* An exit of three SQEs: a read of descriptor -1 (-EBADF), a NOP (0) and a
 * timeout of 1 ms (-ETIME), unlinked. */
static int three_sqe_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct io_uring_sqe *sq[3];
	static struct __kernel_timespec ts = { 0, 1000000 };
	static char b[4];
	int ret = rsc_entry_get_sqes(e, 3, sq);

	(void)p;
	(void)arg;
	if (ret < 0)
		return ret;
	io_uring_prep_read(sq[0], -1, b, sizeof(b), 0);
	io_uring_prep_nop(sq[1]);
	io_uring_prep_timeout(sq[2], &ts, 0, 0);
	return 0;
}

static int nop_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
}

static const struct rsc_manager three_mgr = { sizeof(three_mgr), 0, "three", nop_enter,
					      three_sqe_exit };

static void check_three_chain(const struct rsc_error *err, int below)
{
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_depth(err), 2 + below);
	ck_assert_int_eq(rsc_error_errno(err), -ETIME); /* the last failed SQE at the head */
	ck_assert_str_eq(rsc_error_entry(err), "three");
	err = rsc_error_cause(err);
	ck_assert_int_eq(rsc_error_errno(err), -EBADF);
	ck_assert_str_eq(rsc_error_op(err), "read");
	ck_assert_str_eq(rsc_error_scope(err), "rel");
}

START_TEST(release_wait_chains_every_failed_sqe_in_sqe_order)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = (struct rsc_error *)1;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "rel", &s), 0);
	ck_assert_int_eq(rsc_push(s, &three_mgr, NULL, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	/* The result is the first failed SQE's (rsc_entry_release(3)); the
	 * chain has each, the last at its head. */
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), -EBADF);
	check_three_chain(err, 0);
	ck_assert_ptr_null(rsc_error_cause(rsc_error_cause(err)));
	rsc_error_free(err);
	/* Not in the scope's chain. */
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_null(err);
}
END_TEST

/* The same release in an unwind with a pending error: the SQEs' errors on
 * top, the body's failure last (its cause). */
START_TEST(unwind_chains_every_failed_sqe_above_the_pending_error)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	const struct rsc_error *c;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "rel", &s), 0);
	ck_assert_int_eq(rsc_push(s, &three_mgr, NULL, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "body"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ETIME);
	check_three_chain(err, 1);
	c = rsc_error_cause(rsc_error_cause(err));
	ck_assert_int_eq(rsc_error_errno(c), -EPROTO);
	ck_assert_str_eq(rsc_error_op(c), "body");
	ck_assert_ptr_null(rsc_error_cause(c));
	rsc_error_free(err);
}
END_TEST

/*
 * A sweep of the first twelve allocations, each failed in turn while @raise_chain
 * reports an error chain of @full nodes: never success, and the chain is
 * shorter by exactly what RSC_CTR_ERRORS_LOST counts; the sweep must reach
 * a lost node. @raise_chain returns the call's result; @body_first fails the scope
 * with the caller's error before the rule is set.
 */
typedef int (*chain_fn)(struct rsc_scope *s, struct rsc_entry *e, struct rsc_error **errp);

static void sweep_errors_lost(chain_fn raise_chain, bool body_first, int full)
{
	long long total_lost = 0;
	char rule[32];
	int n;

	for (n = 1; n <= 12; n++) {
		struct rsc_scope *s;
		struct rsc_entry *e;
		struct rsc_error *err = NULL;
		long long lost0 = rsc_loop_counter(t_loop, RSC_CTR_ERRORS_LOST), lost;
		int ret, depth;

		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "rel", &s), 0);
		ck_assert_int_eq(rsc_push(s, &three_mgr, NULL, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
		if (body_first)
			ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "body"), 0);
		snprintf(rule, sizeof(rule), "alloc:%d:ENOMEM", n);
		ck_assert_int_eq(rsc_fault_set(t_loop, rule), 0);
		ret = raise_chain(s, e, &err);
		ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
		lost = rsc_loop_counter(t_loop, RSC_CTR_ERRORS_LOST) - lost0;
		total_lost += lost;
		depth = err ? rsc_error_depth(err) : 0;
		ck_assert_msg(ret < 0, "n=%d: reported %d", n, ret);
		ck_assert_msg(depth + lost == full, "n=%d: depth %d, lost %lld", n, depth, lost);
		if (err && body_first) /* the scope's result is its chain's head */
			ck_assert_int_eq(rsc_error_errno(err), ret);
		else if (err && depth == full) /* the release's first failure in SQE order */
			ck_assert_int_eq(rsc_error_errno(err), -ETIME);
		rsc_error_free(err);
		if (!body_first)
			ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	}
	ck_assert_int_gt(total_lost, 0); /* the sweep did reach a lost node */
}

/* The release's own chain: -EBADF, then its two other failures. */
static int release_chain(struct rsc_scope *s, struct rsc_entry *e, struct rsc_error **errp)
{
	int ret = rsc_entry_release_wait(e, errp);

	(void)s;
	ck_assert_int_eq(ret, -EBADF);
	return ret;
}

/* The scope's: the body's error and the release's. */
static int unwind_chain(struct rsc_scope *s, struct rsc_entry *e, struct rsc_error **errp)
{
	(void)e;
	return rsc_scope_close_wait(s, errp);
}

/* Without memory for some nodes, the chain is shorter by exactly what
 * RSC_CTR_ERRORS_LOST counts, and never reports success. */
START_TEST(release_wait_without_memory_counts_every_error_lost)
{
	if (skip_no_faults("release_wait_without_memory_counts_every_error_lost"))
		return;
	sweep_errors_lost(release_chain, false, 2);
}
END_TEST

/* rsc_shutdown(SHUT_RDWR) with a receive waiting on the same socket: as
 * shutdown(2), the receive ends with 0 (end of stream) and the peer sees
 * EOF; the entry still owns its descriptor. */
START_TEST(shutdown_rdwr_ends_a_waiting_receive_with_eof)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen sh = { 0 }, rc = { 0 };
	char buf[8];
	int peer, fd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "rdwr", &s), 0);
	conn = t_adopted_pair(s, &peer);
	fd = rsc_entry_fd(conn);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &rc), 0);
	spin(2);
	ck_assert_int_eq(rsc_shutdown(conn, SHUT_RDWR, note_io, &sh), 0);
	ck_assert_int_eq(rsc_entry_io_count(conn), 2);
	run_until(&sh, 1);
	run_until(&rc, 1);
	ck_assert_int_eq(sh.res, 0);
	ck_assert_int_eq(rc.res, 0);
	ck_assert_int_eq(peer_read(peer), 0);
	ck_assert_int_ge(fcntl(fd, F_GETFD), 0);
	ck_assert_int_eq(rsc_entry_state(conn), RSC_ENTERED);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
}
END_TEST

static int shut_in_hook_ret = 1;
static struct rsc_entry *shut_target;

static int shutdown_in_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct io_seen *seen = arg;

	(void)e;
	(void)p;
	shut_in_hook_ret = rsc_shutdown(shut_target, SHUT_WR, note_io, seen);
	return 0;
}

/* The ERRORS of rsc_send(3), each reached: -EDEADLK in a hook, -ESHUTDOWN in
 * a closing scope, -EBADF once released, -ESTALE once freed; cb never runs. */
START_TEST(shutdown_errors_as_rsc_send)
{
	struct rsc_scope *s, *s2;
	struct rsc_entry *conn, *c2, *d;
	struct io_seen none = { 0 };
	int peer, p2;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "errs", &s), 0);
	conn = t_adopted_pair(s, &peer);
	shut_target = conn;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "other", &s2), 0);
	c2 = t_adopted_pair(s2, &p2);
	ck_assert_int_eq(rsc_defer(s2, shutdown_in_exit, &none, &d), 0);
	ck_assert_int_eq(rsc_entry_release_wait(d, NULL), 0);
	ck_assert_int_eq(shut_in_hook_ret, -EDEADLK);
	ck_assert_int_eq(rsc_entry_release(c2, NULL, NULL), 0);
	ck_assert_int_eq(rsc_shutdown(c2, SHUT_WR, note_io, &none), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(s2, NULL), 0);
	ck_assert_int_eq(rsc_shutdown(c2, SHUT_WR, note_io, &none), -ESTALE);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "x"), 0);
	ck_assert_int_eq(rsc_shutdown(conn, SHUT_WR, note_io, &none), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EIO);
	ck_assert_int_eq(none.calls, 0);
	ck_assert_int_eq(peer_read(peer), 0);
	ck_assert_int_eq(peer_read(p2), 0);
	close(peer);
	close(p2);
}
END_TEST

/* rsc_entry_release_wait(3): an fsync and a close that both fail, the
 * chain has both, in SQE order, the close at its head, each with the entry's
 * name, detail (the path) and scope; the result is the first's. */
START_TEST(release_wait_fsync_and_close_both_failing)
{
	struct rsc_scope *s;
	struct rsc_entry *f;
	struct rsc_error *err = NULL;
	const struct rsc_error *c;
	int before = t_fd_count();

	if (skip_no_faults("release_wait_fsync_and_close_both_failing"))
		return;
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sync", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_WRONLY, 0, RSC_FSYNC_ON_RELEASE, &f), 0);
	ck_assert_int_ge(rsc_entry_wait(f), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "fsync:1:EIO,close:1:ENOSPC"), 0);
	ck_assert_int_eq(rsc_entry_release_wait(f, &err), -EIO);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_depth(err), 2);
	ck_assert_int_eq(rsc_error_errno(err), -ENOSPC);
	ck_assert_str_eq(rsc_error_op(err), "close");
	c = rsc_error_cause(err);
	ck_assert_int_eq(rsc_error_errno(c), -EIO);
	ck_assert_str_eq(rsc_error_op(c), "fsync");
	ck_assert_str_eq(rsc_error_entry(c), rsc_error_entry(err));
	ck_assert_ptr_nonnull(strstr(rsc_error_detail(c), "f0"));
	ck_assert_str_eq(rsc_error_scope(c), "sync");
	rsc_error_free(err);
	ck_assert_int_eq(t_fd_count(), before); /* the close ran all the same */
	ck_assert_int_eq(rsc_entry_fd(f), -EBADF); /* valid until its scope is freed */
	ck_assert_int_eq(rsc_entry_release_wait(f, &err), -EALREADY);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0); /* not in the scope's chain */
	ck_assert_ptr_null(err);
}
END_TEST

static int rw_in_cb = 1;
static void release_wait_from_cb(struct rsc_entry *e, int res, void *buf, void *data)
{
	note_io(e, res, buf, data);
	rw_in_cb = rsc_entry_release_wait(e, NULL);
}

/* From a callback: -EDEADLK and nothing released. In a failed scope:
 * -EALREADY (the unwind owns it). */
START_TEST(release_wait_from_a_callback_and_in_a_failed_scope)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen t = { 0 };
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "rw", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_timeout(conn, 1, release_wait_from_cb, &t), 0);
	run_until(&t, 1);
	ck_assert_int_eq(rw_in_cb, -EDEADLK);
	ck_assert_int_eq(rsc_entry_state(conn), RSC_ENTERED);
	ck_assert_int_eq(peer_read(peer), -EAGAIN);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), 0);
	ck_assert_int_eq(rsc_entry_release_wait(conn, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EIO);
	ck_assert_int_eq(peer_read(peer), 0);
	close(peer);
}
END_TEST

/* The scope's chain without memory for some nodes: never success, and
 * shorter by exactly what RSC_CTR_ERRORS_LOST counts. */
START_TEST(unwind_without_memory_counts_every_error_lost)
{
	if (skip_no_faults("unwind_without_memory_counts_every_error_lost"))
		return;
	sweep_errors_lost(unwind_chain, true, 3);
}
END_TEST

/* missing:NAME of opcodes and features, each taking effect from the call. */
START_TEST(missing_opcodes_and_features_fail_or_fall_back)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *l, *a, *b;
	struct sockaddr_in at = t_loopback(0);
	struct acc_seen acc = { 0 };
	struct io_seen r1 = { 0 }, r2 = { 0 };
	char b1[4], b2[4];
	long long cfd;
	int peer;

	if (skip_no_faults("missing_opcodes_and_features_fail_or_fall_back"))
		return;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "old", &s), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "missing:socket"), 0);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, 0, &e), -EOPNOTSUPP);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "IORING_OP_SOCKET"));
	/* Without bind and listen, rsc_listen binds and listens by system calls. */
	ck_assert_int_eq(rsc_fault_set(t_loop, "missing:bind,missing:listen"), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&at, sizeof(at), 4, 0, &l), 0);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "missing:accept_multishot"), 0);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, note_accept, &acc), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_accept(l, 0, note_accept, &acc), 0);
	/* Without cancel_fd, a release of two ops cancels them one by one. */
	ck_assert_int_eq(rsc_fault_set(t_loop, "missing:cancel_fd"), 0);
	a = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(a, b1, sizeof(b1), 0, note_io, &r1), 0);
	ck_assert_int_eq(rsc_timeout(a, 60000, note_io, &r2), 0);
	ck_assert_int_eq(rsc_recv(a, b2, sizeof(b2), MSG_PEEK, note_io, &r2), 0);
	cfd = rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD);
	ck_assert_int_eq(rsc_entry_release_wait(a, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD), cfd);
	ck_assert_int_eq(r1.res, -ECANCELED);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, 0, &b), 0);
	ck_assert_int_ge(rsc_entry_wait(b), 0);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(acc.calls, 1);
	ck_assert_int_eq(acc.last, -ECANCELED);
}
END_TEST


/* rsc_entry_release_wait(3): during a grace the entry may still be
 * released; its receive ends -ECANCELED, the grace then ends drained. */
START_TEST(release_wait_during_a_grace_ends_it)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen rc = { 0 };
	struct close_seen cs = { 0 };
	struct rsc_error *err = (struct rsc_error *)1;
	char buf[8];
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "grace", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &rc), 0);
	spin(2);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 20000, note_close, &cs), 0);
	spin(2);
	ck_assert_int_eq(rsc_entry_release_wait(conn, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(rc.calls, 1);
	ck_assert_int_eq(rc.res, -ECANCELED);
	ck_assert_int_eq(peer_read(peer), 0);
	run_loop_until(t_loop, &cs.calls, 1);
	ck_assert_int_eq(cs.status, 0);
	close(peer);
}
END_TEST

/* An entry still entering (a connect to a full backlog): its acquire is
 * cancelled, the call returns the acquire's errno, nothing stays open. */
START_TEST(release_wait_of_an_entry_still_entering)
{
	struct sockaddr_un sun;
	struct rsc_scope *s;
	struct rsc_entry *c, *f;
	struct rsc_error *err = NULL;
	int fill[64], nfill, lfd, before, ret;

	lfd = t_full_unix_listener(&sun, fill, &nfill);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "entering", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 0, 0, &c), 0);
	spin(2);
	ck_assert_int_eq(rsc_entry_state(c), RSC_ENTERING);
	ret = rsc_entry_release_wait(c, &err);
	ck_assert_int_eq(ret, -ECANCELED);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_errno(err), -ECANCELED);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	rsc_error_free(err);
	/* The socket, still its scope's, goes with the scope (rsc_connect(3)). */
	ck_assert_int_eq(t_fd_count(), before + 1);
	/* An open that wins the race: released before the call returns. */
	t_make_files(1);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &f), 0);
	ret = rsc_entry_release_wait(f, NULL);
	ck_assert(ret == 0 || ret == -ECANCELED);
	ck_assert_int_eq(t_fd_count(), before + 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* A loop on the application's ring: -EOPNOTSUPP, *errp NULL, and nothing
 * released (the defer's exit not run, the entry still entered). */
START_TEST(release_wait_on_a_shared_ring_releases_nothing)
{
	struct io_uring ring;
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *d;
	struct rsc_error *err = (struct rsc_error *)1;

	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&loop, &ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "shared", &s), 0);
	exit_calls = 0;
	ck_assert_int_eq(rsc_defer(s, count_exit, NULL, &d), 0);
	ck_assert_int_eq(rsc_entry_release_wait(d, &err), -EOPNOTSUPP);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(exit_calls, 0);
	ck_assert_int_eq(rsc_entry_state(d), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	for (int i = 0; i < 100 && rsc_loop_alive(loop) > 0; i++) {
		struct io_uring_cqe *cqe;

		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_NOWAIT), 0);
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			(void)rsc_loop_dispatch(loop, cqe);
			io_uring_cqe_seen(&ring, cqe);
		}
	}
	ck_assert_int_eq(exit_calls, 1);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
	io_uring_queue_exit(&ring);
}
END_TEST

struct thread_call {
	struct rsc_entry *e;
	int ret;
	struct rsc_error *err;
};

static void *release_wait_elsewhere(void *arg)
{
	struct thread_call *t = arg;

	t->err = (struct rsc_error *)1;
	t->ret = rsc_entry_release_wait(t->e, &t->err);
	return NULL;
}

/* A SINGLE_ISSUER loop, called from another thread: -EEXIST, nothing
 * released, *errp NULL. */
START_TEST(release_wait_from_another_thread_of_a_single_issuer_loop)
{
	struct rsc_scope *s;
	struct thread_call t = { 0 };
	pthread_t th;
	int peer;

	if (!(rsc_loop_features(t_loop) & RSC_FEAT_SINGLE_ISSUER)) {
		printf("SKIP release_wait_from_another_thread_of_a_single_issuer_loop: loop without SINGLE_ISSUER\n");
		return;
	}
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "mine", &s), 0);
	t.e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(pthread_create(&th, NULL, release_wait_elsewhere, &t), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(t.ret, -EEXIST);
	ck_assert_ptr_null(t.err);
	ck_assert_int_eq(rsc_entry_state(t.e), RSC_ENTERED);
	spin(2);
	ck_assert_int_eq(peer_read(peer), -EAGAIN);
	ck_assert_int_eq(rsc_entry_release_wait(t.e, NULL), 0);
	ck_assert_int_eq(peer_read(peer), 0);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* The wait interrupted (a wait rule, as by a signal): either the loop
 * goes on by itself, or the call returns that errno and the release, still
 * in flight, completes when the loop runs again, once. */
START_TEST(release_wait_interrupted_completes_later_once)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen rc = { 0 };
	struct rsc_error *err = (struct rsc_error *)1;
	char buf[8];
	int peer, ret;

	if (skip_no_faults("release_wait_interrupted_completes_later_once"))
		return;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "eintr", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &rc), 0);
	spin(2);
	ck_assert_int_eq(rsc_fault_set(t_loop, "wait:1:EINTR"), 0);
	ret = rsc_entry_release_wait(conn, &err);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	if (ret < 0) {
		ck_assert_int_eq(ret, -EINTR);
		ck_assert_ptr_null(err);
		for (int i = 0; i < 100 && rsc_entry_state(conn) != RSC_EXITED; i++)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	} else {
		ck_assert_int_eq(ret, 0);
		ck_assert_ptr_null(err);
	}
	ck_assert_int_eq(rsc_entry_state(conn), RSC_EXITED);
	ck_assert_int_eq(rc.calls, 1);
	ck_assert_int_eq(rc.res, -ECANCELED);
	ck_assert_int_eq(peer_read(peer), 0);
	ck_assert_int_eq(rsc_entry_release_wait(conn, NULL), -EALREADY);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST


/* An exit that prepares a soft-linked chain of three (a failing read, then
 * two NOPs the failure cuts short) and returns -EPIPE as well: the return's
 * error first, then one per failed SQE in SQE order (the cut ones -ECANCELED,
 * counted too); the result is the exit's own errno (rsc_entry_get_sqes(3)). */
static int linked_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct io_uring_sqe *sq[3];
	static char b[4];
	int ret = rsc_entry_get_sqes(e, 3, sq);

	(void)p;
	(void)arg;
	if (ret < 0)
		return ret;
	io_uring_prep_read(sq[0], -1, b, sizeof(b), 0);
	sq[0]->flags |= IOSQE_IO_LINK;
	io_uring_prep_nop(sq[1]);
	sq[1]->flags |= IOSQE_IO_LINK;
	io_uring_prep_nop(sq[2]);
	return -EPIPE;
}

START_TEST(release_wait_exit_return_then_linked_sqes_cut_short)
{
	static const struct rsc_manager mgr = { sizeof(mgr), 0, "linked", slow_enter, linked_exit };
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	const struct rsc_error *c;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "links", &s), 0);
	ck_assert_int_eq(rsc_push(s, &mgr, NULL, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), -EPIPE);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_depth(err), 4);
	ck_assert_int_eq(rsc_error_errno(err), -ECANCELED);
	ck_assert_str_eq(rsc_error_op(err), "nop");
	c = rsc_error_cause(err);
	ck_assert_int_eq(rsc_error_errno(c), -ECANCELED);
	c = rsc_error_cause(c);
	ck_assert_int_eq(rsc_error_errno(c), -EBADF);
	ck_assert_str_eq(rsc_error_op(c), "read");
	c = rsc_error_cause(c);
	ck_assert_int_eq(rsc_error_errno(c), -EPIPE);
	ck_assert_str_eq(rsc_error_op(c), "exit");
	ck_assert_str_eq(rsc_error_entry(c), "linked");
	ck_assert_ptr_null(rsc_error_cause(c));
	rsc_error_free(err);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* ---- counters and fault rules ---- */

START_TEST(every_counter_has_a_distinct_lower_case_name)
{
	int i, j;

	for (i = 0; i < RSC_CTR_COUNT; i++) {
		const char *n = rsc_counter_name((enum rsc_counter)i);

		ck_assert_ptr_nonnull(n);
		ck_assert_int_gt((int)strlen(n), 0);
		for (const char *c = n; *c; c++)
			ck_assert_msg(islower((unsigned char)*c) || *c == '_', "%s", n);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(n, rsc_counter_name((enum rsc_counter)j));
		ck_assert_int_ge(rsc_loop_counter(t_loop, (enum rsc_counter)i), 0);
	}
	ck_assert_str_eq(rsc_counter_name(RSC_CTR_ERRORS_LOST), "errors_lost");
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ERRORS_LOST), 0);
	ck_assert_ptr_null(rsc_counter_name(RSC_CTR_COUNT));
	ck_assert_ptr_null(rsc_counter_name((enum rsc_counter)-1));
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_COUNT), -EINVAL);
	ck_assert_int_eq(rsc_loop_counter(t_loop, (enum rsc_counter)-1), -EINVAL);
	ck_assert_int_eq(rsc_loop_counter(NULL, RSC_CTR_SQES), -EINVAL);
	/* rsc_error_cause(3) and its kin on NULL. */
	ck_assert_int_eq(rsc_error_errno(NULL), -EINVAL);
	ck_assert_int_eq(rsc_error_depth(NULL), -EINVAL);
	ck_assert_ptr_null(rsc_error_cause(NULL));
	ck_assert_str_eq(rsc_error_op(NULL), "");
	ck_assert_str_eq(rsc_error_entry(NULL), "");
	ck_assert_str_eq(rsc_error_detail(NULL), "");
	ck_assert_str_eq(rsc_error_scope(NULL), "");
}
END_TEST

static void keep_last(struct rsc_entry *e, int res, void *buf, void *data)
{
	note_io(e, res, buf, data);
}

START_TEST(missing_rules_are_parsed_strictly_and_replaced)
{
	static const char *const bad[] = {
		"missing:", "missing:bogus", "missing:shutdown:1", "missing:shutdown:1:EIO",
		"missing:SHUTDOWN", "missing: shutdown", "missing:recv_multishot,", "missing",
		"missing:64",
	};
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen m = { 0 };
	char seventeen[512] = "";
	size_t i;
	int peer;

	if (skip_no_faults("missing_rules_are_parsed_strictly_and_replaced"))
		return;
	ck_assert_int_eq(rsc_fault_set(t_loop, "missing:recv_multishot"), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(rsc_fault_set(t_loop, bad[i]) == -EINVAL, "%s accepted", bad[i]);
		ck_assert_ptr_nonnull(rsc_last_error());
	}
	for (i = 0; i < 17; i++)
		strcat(seventeen, i ? ",missing:read" : "missing:read");
	ck_assert_int_eq(rsc_fault_set(t_loop, seventeen), -EINVAL);
	/* Failures kept the rule in place. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "m", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot(conn, 0, keep_last, &m), -EOPNOTSUPP);
	ck_assert_int_eq(m.calls, 0);
	/* Sixteen, missing: rules and counted ones mixed, are fine. */
	ck_assert_int_eq(rsc_fault_set(t_loop, "missing:read,missing:recv_multishot,missing:send,"
				       "missing:close,missing:write,missing:timeout,missing:recv,"
				       "missing:shutdown,openat:9:EIO,close:9:EIO,fsync:9:EIO,"
				       "socket:9:EIO,accept:9:EIO,connect:9:EIO,cancel:9:ENOENT,"
				       "openat:10:EMFILE"), 0);
	/* Opcodes every probing kernel has change nothing. */
	ck_assert_int_eq(rsc_fault_set(t_loop, "missing:read,missing:close,missing:recv"), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 0);
	if (!skip_multishot("missing_rules_are_parsed_strictly_and_replaced")) {
		ck_assert_int_eq(rsc_recv_multishot(conn, 0, keep_last, &m), 0);
		ck_assert_int_eq(write(peer, "z", 1), 1);
		run_until(&m, 1);
		ck_assert_int_eq(m.res, 1);
	}
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

Suite *make_hostile_newapi_suite(void)
{
	Suite *s = suite_create("hostile_newapi");
	TCase *tc = tcase_create("hostile_newapi");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	tcase_add_test(tc, cancel_io_stale_after_its_scope_is_freed_and_reused);
	tcase_add_test(tc, cancel_io_from_an_enter_hook_or_the_trace_is_edeadlk_and_cancels_nothing);
	tcase_add_test(tc, cancel_io_then_release_ends_each_op_once_then_closes);
	tcase_add_test(tc, cancel_io_from_an_ops_own_callback_cancels_the_others);
	tcase_add_test(tc, multishot_cancelled_as_its_buffers_run_dry_is_not_armed_again);
	tcase_add_test(tc, multishot_cancelled_from_its_own_receive_ends_once);
	t_add_socket_test(tc, cancel_io_on_an_accept_while_a_client_waits);
	t_add_test_if(tc, multishot_accept_cancelled_from_its_callback_accepts_no_more,
		      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	t_add_socket_test(tc, multishot_accept_stopped_from_its_shortage_callback_stays_stopped);
	tcase_add_test(tc, cancel_io_on_a_timer_entry_and_a_defer);
	tcase_add_test(tc, cancel_io_after_a_deadline_cut_the_io);
	tcase_add_test(tc, cancel_io_during_a_hand_over_leaves_the_move_alone);
	tcase_add_test(tc, cancel_io_during_an_install_leaves_the_move_alone);
	t_add_test_if(tc, shutdown_then_a_deadline_fires, t_kernel_has(IORING_OP_SHUTDOWN),
		      "IORING_OP_SHUTDOWN (Linux 5.11)");
	t_add_test_if(tc, shutdown_then_detach_then_the_callers_close,
		      t_kernel_has(IORING_OP_SHUTDOWN), "IORING_OP_SHUTDOWN (Linux 5.11)");
	t_add_test_if(tc, shutdown_on_a_pipe_a_timer_and_a_defer,
		      t_kernel_has(OP_PIPE) && t_kernel_has(IORING_OP_SHUTDOWN),
		      "IORING_OP_PIPE (Linux 6.16) or IORING_OP_SHUTDOWN (5.11)");
	t_add_test_if(tc, shutdown_on_a_listener_runs_its_callback_once,
		      t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_SHUTDOWN),
		      "IORING_OP_SOCKET (Linux 5.19) or IORING_OP_SHUTDOWN (5.11)");
	tcase_add_test(tc, shutdown_without_the_opcode_is_eopnotsupp);
	t_add_test_if(tc, shutdown_in_a_grace_is_tracked_and_cancel_io_counts_it,
		      t_kernel_has(IORING_OP_SHUTDOWN), "IORING_OP_SHUTDOWN (Linux 5.11)");
	tcase_add_test(tc, scope_fail_ends_a_grace_and_its_callback_gets_the_error);
	tcase_add_test(tc, scope_fail_in_a_grace_from_an_io_callback);
	tcase_add_test(tc, parent_failed_ends_a_childs_grace);
	tcase_add_test(tc, release_wait_chains_every_failed_sqe_in_sqe_order);
	tcase_add_test(tc, unwind_chains_every_failed_sqe_above_the_pending_error);
	tcase_add_test(tc, release_wait_without_memory_counts_every_error_lost);
	tcase_add_test(tc, every_counter_has_a_distinct_lower_case_name);
	tcase_add_test(tc, missing_rules_are_parsed_strictly_and_replaced);
	tcase_add_test(tc, fail_below_a_grace_under_a_closing_ancestor_unwinds_at_once);
	tcase_add_test(tc, scope_fail_from_the_enter_hook_of_an_entry_of_that_scope);
	tcase_add_test(tc, scope_fail_arguments_and_a_stale_scope);
	t_add_test_if(tc, shutdown_rdwr_ends_a_waiting_receive_with_eof,
		      t_kernel_has(IORING_OP_SHUTDOWN), "IORING_OP_SHUTDOWN (Linux 5.11)");
	tcase_add_test(tc, shutdown_errors_as_rsc_send);
	tcase_add_test(tc, release_wait_fsync_and_close_both_failing);
	tcase_add_test(tc, release_wait_from_a_callback_and_in_a_failed_scope);
	tcase_add_test(tc, unwind_without_memory_counts_every_error_lost);
	tcase_add_test(tc, missing_opcodes_and_features_fail_or_fall_back);
	tcase_add_test(tc, cancel_io_racing_a_multishots_own_end);
	tcase_add_test(tc, cancel_io_after_the_timer_fired_gets_its_own_result);
	t_add_socket_test(tc, cancel_io_during_an_accepts_backoff);
	tcase_add_test(tc, nested_failures_without_memory_count_every_error_lost);
	tcase_add_test(tc, release_wait_during_a_grace_ends_it);
	t_add_socket_test(tc, release_wait_of_an_entry_still_entering);
	tcase_add_test(tc, release_wait_on_a_shared_ring_releases_nothing);
	tcase_add_test(tc, release_wait_from_another_thread_of_a_single_issuer_loop);
	tcase_add_test(tc, release_wait_interrupted_completes_later_once);
	tcase_add_test(tc, deadline_in_a_grace_counts_the_io_it_cuts_as_cancelled);
	tcase_add_test(tc, cancel_io_on_an_inbox_leaves_it_receiving);
	t_add_test_if(tc, cancel_io_on_a_pipe_with_a_read_and_a_write, t_kernel_has(OP_PIPE),
		      "IORING_OP_PIPE (Linux 6.16)");
	tcase_add_test(tc, release_wait_exit_return_then_linked_sqes_cut_short);
	tcase_add_test(tc, scope_fail_before_an_idle_grace_ends);
	t_add_test_if(tc, shutdown_of_an_unconnected_socket_is_enotconn,
		      t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_SHUTDOWN),
		      "IORING_OP_SOCKET (Linux 5.19) or IORING_OP_SHUTDOWN (5.11)");
	tcase_add_test(tc, scope_fail_in_a_grace_without_memory_leaves_the_grace);
	t_add_socket_test(tc, cancel_io_then_hand_over_from_the_callback_as_the_example);
	return s;
}
