/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
	suite_add_tcase(s, tc);
	return s;
}
