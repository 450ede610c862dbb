/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "tmgr.h"

/*
 * The entry, chain, socket and error pages read by a hostile tester: each
 * test names its page and the sentence it holds the library to, and watches
 * what the caller can see (errnos, /proc/self/fd, the order of callbacks).
 */

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* ---- rsc_entry_detach(3) + rsc_entry_move(3), full audit ----------------- */

/*
 * rsc_entry_detach(3): "a detached descriptor is never reported as leaked".
 * Opened in scope 'a', moved to 'b', detached there: 'a' must not call the
 * caller's descriptor its leak either.
 */
START_TEST(detached_after_a_move_is_no_leak_of_its_first_scope)
{
	struct rsc_scope *a, *b, *side;
	struct rsc_entry *e;
	int fd;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	/* A sibling open all along sees the number appear too. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "side", &side), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_move(e, b), 0);
	fd = rsc_entry_detach(e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(side, NULL), 0);
	ck_assert_msg(fd_is_open(fd), "the caller's descriptor was closed");
	ck_assert_msg(rsc_audit_count(t_loop) == 0, "%d finding(s), the first on scope '%s'",
		      rsc_audit_count(t_loop),
		      rsc_audit_count(t_loop) ? rsc_finding_scope(rsc_audit_finding(t_loop, 0)) : "");
	close(fd);
}
END_TEST


/* ---- rsc_entry_release_wait(3) on a compound acquire ------------------------ */

/* A TCP port bound and never listening: a connect to it is refused. */
static struct sockaddr_in refused_port(int *fdp)
{
	struct sockaddr_in a = t_loopback(0);
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*fdp = fd;
	return a;
}

/*
 * rsc_entry_release_wait(3): *errp names "the acquire's opcode when the
 * acquire failed or was cancelled". A connect released before its socket
 * entered never sent its IORING_OP_CONNECT: it is cancelled, and the chain
 * of one says "connect" (it said "nop"). rsc_connect(3): the socket, still
 * the scope's, is closed by the unwind, and the cancel is no error of it.
 */
START_TEST(release_wait_of_a_connect_before_its_socket_names_connect)
{
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *c;
	char got[128];
	int before = t_fd_count(), port_fd;
	struct sockaddr_in a = refused_port(&port_fd);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&a, sizeof(a), 0, 0, &c), 0);
	ck_assert_int_eq(rsc_entry_release_wait(c, &err), -ECANCELED);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_errno(err), -ECANCELED);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	ck_assert_str_eq(rsc_error_entry(err), "connect");
	ck_assert_str_eq(rsc_error_scope(err), "s");
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
	ck_assert_int_eq(rsc_entry_state(c), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_fd(c), -ECANCELED);
	ck_assert_int_eq(rsc_entry_release(c, NULL, NULL), -EALREADY);
	err = NULL;
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "s", got, sizeof(got)), 1);
	ck_assert_str_eq(got, "AF_INET/SOCK_STREAM");
	close(port_fd);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ---- rsc_read(3) and its kin on the socket a connect builds on ------------ */

/* The trace callback is the one place the socket entry of a connect shows. */
static void keep_socket_entry(struct rsc_loop *loop, enum rsc_event ev,
			      const struct rsc_scope *s, const struct rsc_entry *e, int res,
			      void *data)
{
	(void)loop;
	(void)s;
	(void)res;
	if (ev == RSC_EV_ENTERED && !strcmp(rsc_entry_name(e), "socket"))
		*(struct rsc_entry **)data = (struct rsc_entry *)e;
}

static void count_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)res;
	(void)buf;
	(*(int *)data)++;
}

static void count_accept(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *c,
			 void *data)
{
	(void)l;
	(void)res;
	(void)cs;
	(void)c;
	(*(int *)data)++;
}

static void count_entry_cb(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)res;
	(*(int *)data)++;
}

/* Run until the socket of @c has entered and @c's connect is in flight on it. */
static struct rsc_entry *socket_under_connect(struct rsc_entry *c, struct rsc_entry **sockp)
{
	while (!*sockp)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_entry_state(c), RSC_ENTERING);
	ck_assert_int_eq(rsc_entry_state(*sockp), RSC_ENTERED);
	ck_assert_int_eq(rsc_entry_release(*sockp, NULL, NULL), -EBUSY);
	return *sockp;
}

/*
 * rsc_entry_release(3) refuses the socket entry of a connect in flight with
 * -EBUSY ("whose handle only the trace callback shows"); the connect then
 * takes the socket over and frees that entry. Tracked I/O bound to it was
 * accepted: a 60 s timeout started on it outlived its entry, the scope closed
 * without cancelling it (DESIGN 2.8), the loop stayed alive for it, and its
 * callback would name a freed entry. Every tracked op is -EBUSY there now,
 * and no callback ever comes.
 */
START_TEST(io_on_the_socket_a_connect_builds_on_is_busy)
{
	struct rsc_entry *sock = NULL, *c, *l;
	struct rsc_scope *srv, *s;
	struct sockaddr_in bound;
	char buf[8] = "x";
	int calls = 0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, keep_socket_entry, &sock), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&bound, sizeof(bound), 0, 0, &c), 0);
	socket_under_connect(c, &sock);
	ck_assert_int_eq(rsc_timeout(sock, 60000, count_io, &calls), -EBUSY);
	ck_assert_int_eq(rsc_recv(sock, buf, sizeof(buf), 0, count_io, &calls), -EBUSY);
	ck_assert_int_eq(rsc_send(sock, buf, 1, 0, count_io, &calls), -EBUSY);
	ck_assert_int_eq(rsc_read(sock, buf, sizeof(buf), -1, count_io, &calls), -EBUSY);
	ck_assert_int_eq(rsc_accept(sock, 0, count_accept, &calls), -EBUSY);
	ck_assert_int_eq(rsc_entry_io_count(sock), 0);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	/* Taken over: the socket entry is gone, the connection's entry holds it. */
	ck_assert_int_eq(rsc_entry_state(sock), -ESTALE);
	ck_assert_int_eq(rsc_entry_io_count(c), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_entry_release(l, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
	ck_assert_int_eq(calls, 0);
}
END_TEST


/*
 * The same for a chain's socket step (rsc_chain_connect(3), rsc_connect(3)
 * with RSC_DIRECT): installing or handing over its slot under the connect
 * would give the file a second owner, and the connect's entry, taking the
 * slot over, a slot it no longer holds. The connect waits for room in a full
 * AF_UNIX backlog meanwhile; one accept makes room.
 */
START_TEST(install_of_the_slot_a_chain_connect_builds_on_is_busy)
{
	struct rsc_entry *sock = NULL, *c;
	struct sockaddr_un sun;
	struct rsc_scope *s;
	int calls = 0, lfd, fill[64], nfill, a;

	t_direct_table(16, 4);
	lfd = t_full_unix_listener(&sun, fill, &nfill);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, keep_socket_entry, &sock), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 10000, RSC_DIRECT, &c),
			 0);
	socket_under_connect(c, &sock);
	ck_assert_int_eq(rsc_entry_install(sock, 0, count_entry_cb, &calls), -EBUSY);
	ck_assert_int_eq(rsc_entry_hand_over(sock, 1ULL << 32, count_entry_cb, &calls), -EBUSY);
	ck_assert_int_eq(rsc_timeout(sock, 60000, count_io, &calls), -EBUSY);
	a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(a, 0);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	ck_assert_int_eq(rsc_entry_state(sock), -ESTALE);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1); /* the connection's slot, once */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
	ck_assert_int_eq(calls, 0);
	close(a);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* ---- rsc_entry_move(3) of a listener with a multishot accept armed -------- */

struct accepts {
	int conns, last, calls_after_last;
	struct rsc_scope *conn_scope;
};

static void note_accept(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *c,
			void *data)
{
	struct accepts *a = data;

	(void)l;
	(void)c;
	if (a->last)
		a->calls_after_last++;
	if (res >= 0) {
		a->conns++;
		a->conn_scope = cs;
	} else {
		a->last = res;
	}
}

/*
 * rsc_entry_move(3): "Tracked I/O in flight on the entry stays in flight and
 * stays bound to it"; rsc_accept(3): each connection arrives in a child scope
 * of the listener's scope, which closes with it. Moved out of 'a' with its
 * multishot accept armed, the listener outlives a's close, still accepts, and
 * its connection belongs to 'b': b's close ends the accept with one last
 * -ECANCELED and closes the connection (the client reads EOF).
 */
START_TEST(listener_moved_with_its_accept_armed_accepts_for_its_new_scope)
{
	struct accepts acc = { 0, 0, 0, NULL };
	struct rsc_scope *a, *b;
	struct sockaddr_in bound;
	struct rsc_entry *l;
	char got[128], byte;
	int cfd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	l = t_listen_on_loopback(a, 8, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, note_accept, &acc), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_entry_move(l, b), 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "a", got, sizeof(got)), 0);
	ck_assert_int_eq(rsc_entry_state(l), RSC_ENTERED);
	ck_assert_int_eq(rsc_entry_io_count(l), 1);
	ck_assert_int_eq(acc.last, 0);
	cfd = t_connect(&bound);
	while (acc.conns == 0 && acc.last == 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(acc.conns, 1);
	ck_assert_int_eq(rsc_scope_state(acc.conn_scope), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	/* The connection went with b: its scope is freed, the client sees the end. */
	ck_assert_int_eq(rsc_scope_state(acc.conn_scope), -ESTALE);
	ck_assert_int_eq(acc.last, -ECANCELED);
	ck_assert_int_eq(acc.calls_after_last, 0);
	ck_assert_int_eq(read(cfd, &byte, 1), 0);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "b", got, sizeof(got)), 1);
	ck_assert_str_eq(got, "127.0.0.1:0"); /* the listener, released by b */
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "conn", got, sizeof(got)), 1);
	close(cfd);
}
END_TEST

Suite *make_pages_entries_suite(void)
{
	Suite *s = suite_create("pages_entries");
	TCase *tc = tcase_create("entries");

	t_add_fixture(tc);
	tcase_add_test(tc, detached_after_a_move_is_no_leak_of_its_first_scope);
	if (t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_CONNECT))
		tcase_add_test(tc, release_wait_of_a_connect_before_its_socket_names_connect);
	else
		printf("SKIP release_wait_of_a_connect_before_its_socket_names_connect: kernel lacks IORING_OP_SOCKET (Linux 5.19)\n");
	if (t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_CONNECT)) {
		tcase_add_test(tc, io_on_the_socket_a_connect_builds_on_is_busy);
		t_add_test_if(tc, listener_moved_with_its_accept_armed_accepts_for_its_new_scope,
			      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	} else {
		printf("SKIP io_on_the_socket_a_connect_builds_on_is_busy, listener_moved_with_its_accept_armed_accepts_for_its_new_scope: kernel lacks IORING_OP_SOCKET (Linux 5.19)\n");
	}
	/* A direct table with an allocation range: Linux 6.0, as IORING_OP_SEND_ZC. */
	if (t_kernel_has(IORING_OP_SEND_ZC) && t_kernel_has(IORING_OP_SOCKET))
		tcase_add_test(tc, install_of_the_slot_a_chain_connect_builds_on_is_busy);
	else
		printf("SKIP install_of_the_slot_a_chain_connect_builds_on_is_busy: kernel lacks direct allocation ranges (Linux 6.0)\n");
	suite_add_tcase(s, tc);
	return s;
}
