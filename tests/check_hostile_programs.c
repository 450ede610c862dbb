/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

/*
 * What writing real programs against the pages found (tests/programs/), each
 * in its smallest form: a connection with a receive waiting could not be
 * taken back (detach, hand-over) without closing it, since nothing but a
 * release cancelled tracked I/O (rsc_entry_cancel_io(3)); a proxy could not
 * pass a client's half-close on, least of all on a direct slot
 * (rsc_shutdown(3)); and rsc_scope_fail(3) said it never fails for memory,
 * while it does.
 */

struct io_seen {
	int calls;
	int res;
	bool buf_null;
};

static void note_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct io_seen *s = data;

	(void)e;
	s->calls++;
	s->res = res;
	s->buf_null = buf == NULL;
}

/* Runs the loop until @seen has heard @calls callbacks (bounded). */
static void run_until(struct io_seen *seen, int calls)
{
	int i;

	for (i = 0; i < 200 && seen->calls < calls; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(seen->calls, calls);
}

static unsigned g_drained, g_cancelled;

static void grace_done(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	int *st = data;

	(void)err;
	st[0]++;
	st[1] = status;
	ck_assert_int_eq(rsc_scope_close_stats(s, &g_drained, &g_cancelled, NULL), 0);
}

static void grace_stats(unsigned *drained, unsigned *cancelled)
{
	*drained = g_drained;
	*cancelled = g_cancelled;
}

/* A keep-alive connection waiting for its next request goes back to the
 * program (to give it to other code) without a byte lost or a close. */
START_TEST(idle_connection_with_a_receive_is_detached_after_cancel_io)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen seen = { 0 };
	char buf[16], got[8];
	int peer, fd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "keepalive", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &seen), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_detach(conn), -EBUSY);

	ck_assert_int_eq(rsc_entry_cancel_io(conn), 1);
	ck_assert_int_eq(seen.calls, 0); /* no callback inside the call */
	ck_assert_int_eq(rsc_entry_cancel_io(conn), 1); /* a second ask changes nothing */
	run_until(&seen, 1);
	ck_assert_int_eq(seen.res, -ECANCELED);
	ck_assert_int_eq(rsc_entry_io_count(conn), 0);
	ck_assert_int_eq(rsc_entry_state(conn), RSC_ENTERED);

	fd = rsc_entry_detach(conn);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(peer, "next", 4), 4);
	ck_assert_int_eq(read(fd, got, sizeof(got)), 4); /* the request is still there */
	ck_assert_int_eq(memcmp(got, "next", 4), 0);
	close(fd);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(seen.calls, 1);
}
END_TEST

/* A multishot receive no longer wanted ends, is not armed again, and the
 * connection stays: a plain receive then gets the next bytes. */
START_TEST(multishot_receive_cancelled_ends_and_the_connection_stays)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen multi = { 0 }, one = { 0 };
	char buf[16];
	int peer, ret;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "stream", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ret = rsc_recv_multishot(conn, 0, note_io, &multi);
	if (ret == -EOPNOTSUPP) {
		printf("SKIP multishot_receive_cancelled_ends_and_the_connection_stays: %s\n",
		       rsc_last_error());
		close(peer);
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
		return;
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(write(peer, "a", 1), 1);
	run_until(&multi, 1);
	ck_assert_int_eq(multi.res, 1);

	ck_assert_int_eq(rsc_entry_cancel_io(conn), 1);
	run_until(&multi, 2);
	ck_assert_int_eq(multi.res, -ECANCELED);
	ck_assert(multi.buf_null);
	ck_assert_int_eq(rsc_entry_io_count(conn), 0);

	ck_assert_int_eq(write(peer, "bc", 2), 2);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &one), 0);
	run_until(&one, 1);
	ck_assert_int_eq(one.res, 2);
	ck_assert_int_eq(multi.calls, 2); /* not armed again behind the caller's back */
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

struct accept_seen {
	int calls, conns, last;
};

static void note_accept(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *c,
			void *data)
{
	struct accept_seen *a = data;

	(void)l;
	(void)c;
	a->calls++;
	a->last = res;
	if (res >= 0) {
		a->conns++;
		ck_assert_int_eq(rsc_scope_close(cs, NULL, NULL), 0);
	}
}

/* A server that stops accepting for a while (load shedding) keeps its
 * listener, and accepts again later. */
START_TEST(accept_paused_by_cancel_io_keeps_the_listener)
{
	struct rsc_scope *s;
	struct rsc_entry *l;
	struct sockaddr_in at;
	struct accept_seen a = { 0 };
	int i, fd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 8, &at);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, note_accept, &a), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_cancel_io(l), 1);
	for (i = 0; i < 200 && a.calls < 1; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(a.calls, 1);
	ck_assert_int_eq(a.last, -ECANCELED);
	ck_assert_int_eq(rsc_entry_io_count(l), 0);

	ck_assert_int_eq(rsc_accept(l, 0, note_accept, &a), 0);
	fd = t_connect(&at);
	for (i = 0; i < 200 && a.calls < 2; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(a.conns, 1);
	close(fd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

static struct rsc_entry *hook_target;
static int hook_ret;

static int cancel_in_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	hook_ret = rsc_entry_cancel_io(hook_target);
	return 0;
}

START_TEST(cancel_io_arguments_and_hooks)
{
	struct rsc_scope *s;
	struct rsc_entry *conn, *d;
	struct io_seen seen = { 0 };
	char buf[8];
	int peer;

	ck_assert_int_eq(rsc_entry_cancel_io(NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "args", &s), 0);
	ck_assert_int_eq(rsc_entry_cancel_io((struct rsc_entry *)s), -EINVAL);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_entry_cancel_io(conn), 0); /* nothing in flight */
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &seen), 0);
	hook_target = conn;
	hook_ret = 1;
	ck_assert_int_eq(rsc_defer(s, cancel_in_exit, NULL, &d), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(hook_ret, -EDEADLK);
	ck_assert_int_eq(seen.calls, 1);
	ck_assert_int_eq(seen.res, -ECANCELED); /* by the release, exactly once */
	ck_assert_int_eq(rsc_entry_cancel_io(conn), -ESTALE);
	close(peer);
}
END_TEST

/* rsc_scope_fail(3) and the header said an unwind starts even without
 * memory for the error; it is refused, and the scope stays open. */
START_TEST(scope_fail_without_memory_leaves_the_scope_open)
{
	struct rsc_scope *s;
	struct rsc_entry *d;
	int ret;

	if (!t_has_fault_injection()) {
		printf("SKIP scope_fail_without_memory_leaves_the_scope_open: no fault injection\n");
		return;
	}
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "body", &s), 0);
	hook_target = NULL;
	ck_assert_int_eq(rsc_fault_set(t_loop, "alloc:1:ENOMEM"), 0);
	ret = rsc_scope_fail(s, -EPROTO, "parse");
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	ck_assert_int_eq(ret, -ENOMEM);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_defer(s, cancel_in_exit, NULL, &d), 0); /* it still takes entries */
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN); /* nothing started */
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "parse"), 0); /* again, with memory */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EPROTO);
}
END_TEST

/* A proxy passes the client's FIN on and still relays the reply. */
START_TEST(half_close_sends_the_fin_and_the_entry_keeps_receiving)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen shut = { 0 }, got = { 0 };
	char buf[16], c;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "proxy", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_shutdown(conn, SHUT_WR, note_io, &shut), 0);
	ck_assert_int_eq(rsc_entry_io_count(conn), 1);
	run_until(&shut, 1);
	ck_assert_int_eq(shut.res, 0);
	ck_assert(shut.buf_null);
	ck_assert_int_eq(read(peer, &c, 1), 0); /* the peer saw the end of the stream */
	ck_assert_int_eq(write(peer, "reply", 5), 5);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &got), 0);
	run_until(&got, 1);
	ck_assert_int_eq(got.res, 5);
	ck_assert_int_eq(rsc_entry_state(conn), RSC_ENTERED);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(shutdown_arguments_and_a_file)
{
	struct rsc_scope *s;
	struct rsc_entry *conn, *f;
	struct io_seen seen = { 0 };
	int peer;

	ck_assert_int_eq(rsc_shutdown(NULL, SHUT_WR, note_io, &seen), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "args", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_shutdown(conn, 7, note_io, &seen), -EINVAL);
	ck_assert_int_eq(rsc_shutdown(conn, -1, note_io, &seen), -EINVAL);
	ck_assert_int_eq(rsc_shutdown(conn, SHUT_WR, NULL, &seen), -EINVAL);
	ck_assert_int_eq(rsc_shutdown((struct rsc_entry *)s, SHUT_WR, note_io, &seen), -EINVAL);
	ck_assert_int_eq(rsc_entry_io_count(conn), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &f), 0);
	ck_assert_int_ge(rsc_entry_wait(f), 0);
	ck_assert_int_eq(rsc_shutdown(f, SHUT_RDWR, note_io, &seen), 0);
	run_until(&seen, 1);
	ck_assert_int_eq(seen.res, -ENOTSOCK);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_shutdown(conn, SHUT_WR, note_io, &seen), -ESTALE);
	ck_assert_int_eq(seen.calls, 1);
}
END_TEST

static void keep_conn(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *c,
		      void *data)
{
	(void)l;
	(void)cs;
	if (res >= 0)
		*(struct rsc_entry **)data = c;
}

/* On a direct slot no shutdown(2) can reach, the ring's can. */
START_TEST(half_close_of_a_direct_slot)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *l, *conn = NULL;
	struct sockaddr_in at;
	socklen_t alen = sizeof(at);
	struct io_seen shut = { 0 };
	char c;
	int fd, i;

	ck_assert_int_eq(rsc_loop_new(&loop, 32, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "srv", &s), 0);
	at = t_loopback(0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&at, sizeof(at), 4, 0, &l), 0);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)&at, &alen), 0);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT, keep_conn, &conn), 0);
	fd = t_connect(&at);
	for (i = 0; i < 200 && !conn; i++)
		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_ONCE), 0);
	ck_assert_ptr_nonnull(conn);
	ck_assert_int_ge(rsc_entry_slot(conn), 0);
	ck_assert_int_eq(rsc_shutdown(conn, SHUT_WR, note_io, &shut), 0);
	for (i = 0; i < 200 && !shut.calls; i++)
		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(shut.res, 0);
	ck_assert_int_eq(read(fd, &c, 1), 0);
	ck_assert_int_eq(rsc_loop_direct_used(loop), 1); /* still the entry's */
	close(fd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(loop), 0);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
}
END_TEST

/* A receive and a send both waiting (one cancel by descriptor where the
 * kernel has it): both end, the entry stays and sends again. */
START_TEST(receive_and_blocked_send_both_end_and_the_entry_sends_again)
{
	static char big[1 << 22], buf[16];
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct io_seen first = { 0 }, rcv = { 0 }, snd = { 0 }, again = { 0 };
	char sink[65536];
	int peer, i;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "both", &s), 0);
	conn = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_send(conn, big, sizeof(big), 0, note_io, &first), 0);
	run_until(&first, 1); /* fills the socket's buffer, short */
	ck_assert_int_gt(first.res, 0);
	ck_assert_int_lt(first.res, (int)sizeof(big));
	ck_assert_int_eq(rsc_send(conn, big, sizeof(big), 0, note_io, &snd), 0);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &rcv), 0);
	for (i = 0; i < 5; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(snd.calls + rcv.calls, 0);
	ck_assert_int_eq(rsc_entry_cancel_io(conn), 2);
	run_until(&rcv, 1);
	run_until(&snd, 1);
	ck_assert_int_eq(rcv.res, -ECANCELED);
	ck_assert_int_eq(snd.res, -ECANCELED);
	ck_assert_int_eq(rsc_entry_io_count(conn), 0);
	while (recv(peer, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	ck_assert_int_eq(rsc_send(conn, "x", 1, 0, note_io, &again), 0);
	run_until(&again, 1);
	ck_assert_int_eq(again.res, 1);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* In a graceful close, cancelling an idle receive ends the grace at once
 * (the entry counts as drained, as after an early release). */
START_TEST(cancel_io_in_a_grace_ends_it_without_the_bound)
{
	struct rsc_scope *srv, *c;
	struct rsc_entry *conn;
	struct io_seen rcv = { 0 };
	int st[2] = { 0, 0 }, peer, i;
	unsigned drained = 9, cancelled = 9;
	char buf[8];
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, srv, "conn", &c), 0);
	conn = t_adopted_pair(c, &peer);
	ck_assert_int_eq(rsc_recv(conn, buf, sizeof(buf), 0, note_io, &rcv), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 10000, grace_done, st), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(st[0], 0); /* the receive holds the grace */
	ck_assert_int_eq(rsc_entry_cancel_io(conn), 1);
	for (i = 0; i < 200 && !st[0]; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(st[0], 1);
	ck_assert_int_eq(st[1], 0);
	ck_assert_int_lt(t_now_ms() - t0, 5000);
	ck_assert_int_eq(rcv.res, -ECANCELED);
	grace_stats(&drained, &cancelled);
	ck_assert_uint_eq(drained, 1);
	ck_assert_uint_eq(cancelled, 0);
	close(peer);
}
END_TEST

Suite *make_hostile_programs_suite(void)
{
	Suite *s = suite_create("hostile_programs");
	TCase *tc = tcase_create("hostile_programs");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, idle_connection_with_a_receive_is_detached_after_cancel_io);
	tcase_add_test(tc, multishot_receive_cancelled_ends_and_the_connection_stays);
	t_add_test_if(tc, accept_paused_by_cancel_io_keeps_the_listener, t_has_accept_multishot(),
		      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(tc, cancel_io_arguments_and_hooks);
	tcase_add_test(tc, scope_fail_without_memory_leaves_the_scope_open);
	t_add_test_if(tc, half_close_sends_the_fin_and_the_entry_keeps_receiving,
		      t_kernel_has(IORING_OP_SHUTDOWN), "IORING_OP_SHUTDOWN (Linux 5.11)");
	t_add_test_if(tc, shutdown_arguments_and_a_file, t_kernel_has(IORING_OP_SHUTDOWN),
		      "IORING_OP_SHUTDOWN (Linux 5.11)");
	t_add_test_if(tc, half_close_of_a_direct_slot,
		      t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_SHUTDOWN),
		      "IORING_OP_SOCKET (Linux 5.19) or IORING_OP_SHUTDOWN (5.11)");
	tcase_add_test(tc, receive_and_blocked_send_both_end_and_the_entry_sends_again);
	tcase_add_test(tc, cancel_io_in_a_grace_ends_it_without_the_bound);
	suite_add_tcase(s, tc);
	return s;
}
