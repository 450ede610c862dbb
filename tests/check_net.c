/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"

/* Loopback and Unix sockets in the fixture's directory only. */

static struct sockaddr_in loopback(unsigned short port)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* A listener entry on 127.0.0.1 with a kernel-chosen port. */
static struct rsc_entry *listen_on_loopback(struct rsc_scope *s, int backlog,
					    struct sockaddr_in *bound)
{
	struct sockaddr_in a = loopback(0);
	socklen_t len = sizeof(*bound);
	struct rsc_entry *l;
	int fd;

	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), backlog, 0, &l), 0);
	fd = rsc_entry_wait(l);
	ck_assert_msg(fd >= 0, "listen: %s", rsc_strerror(fd));
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)bound, &len), 0);
	return l;
}

START_TEST(connect_reaches_a_listener_and_both_release)
{
	struct rsc_scope *srv, *cli;
	struct rsc_entry *l, *c;
	struct sockaddr_in bound;
	char got[128];
	int before = t_fd_count(), fd, peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	l = listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_connect(cli, (struct sockaddr *)&bound, sizeof(bound), 0, 0, &c), 0);
	fd = rsc_entry_wait(c);
	ck_assert_msg(fd >= 0, "connect: %s", rsc_strerror(fd));
	ck_assert_str_eq(rsc_entry_name(c), "connect");
	/* The peer really is there: accept it with libc and close it. */
	peer = accept4(rsc_entry_fd(l), NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(peer, 0);
	close(peer);
	/* One descriptor each: the second entry shares its socket's. */
	ck_assert_int_eq(t_fd_count(), before + 2);
	ck_assert_int_eq(rsc_scope_close_wait(cli, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	/* LIFO per scope: the connection's entry, then its socket. */
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "cli", got, sizeof(got)), 2);
	ck_assert_msg(!strncmp(got, "127.0.0.1:", 10) && strstr(got, ",AF_INET/SOCK_STREAM"),
		      "release order: %s", got);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(refused_connect_closes_its_socket)
{
	struct rsc_scope *srv, *cli;
	struct rsc_error *err = NULL;
	struct sockaddr_in bound;
	char detail[64];
	int before = t_fd_count();

	/* A port that was just listening and is closed now. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "gone", &srv), 0);
	(void)listen_on_loopback(srv, 1, &bound);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	ck_assert_int_eq(rsc_connect(cli, (struct sockaddr *)&bound, sizeof(bound), 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_state(cli), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(t_fd_count(), before); /* the socket is closed already */
	ck_assert_int_eq(rsc_scope_close_wait(cli, &err), -ECONNREFUSED);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	snprintf(detail, sizeof(detail), "127.0.0.1:%u", ntohs(bound.sin_port));
	ck_assert_str_eq(rsc_error_detail(err), detail);
	rsc_error_free(err);
	ck_assert(!t_fd_open_to("socket:["));
}
END_TEST

START_TEST(connect_deadline_times_out_and_closes)
{
	struct rsc_scope *srv, *cli;
	struct rsc_error *err = NULL;
	struct sockaddr_in bound;
	int fill[4], i, before;

	/* A listener that never accepts, its queue full: SYNs are dropped. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "blackhole", &srv), 0);
	(void)listen_on_loopback(srv, 0, &bound);
	for (i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fill[i], 0);
		(void)connect(fill[i], (struct sockaddr *)&bound, sizeof(bound));
	}
	usleep(50000);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	ck_assert_int_eq(rsc_connect(cli, (struct sockaddr *)&bound, sizeof(bound), 200, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(cli, &err), -ETIMEDOUT);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	rsc_error_free(err);
	ck_assert_int_eq(t_fd_count(), before);
	for (i = 0; i < 4; i++)
		close(fill[i]);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

START_TEST(failed_bind_closes_its_socket)
{
	struct rsc_scope *a, *b;
	struct rsc_error *err = NULL;
	struct sockaddr_in bound;
	int before;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "first", &a), 0);
	(void)listen_on_loopback(a, 4, &bound);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "second", &b), 0);
	ck_assert_int_eq(rsc_listen(b, (struct sockaddr *)&bound, sizeof(bound), 4, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(b, &err), -EADDRINUSE);
	ck_assert_str_eq(rsc_error_op(err), "bind");
	ck_assert_str_eq(rsc_error_entry(err), "listen");
	rsc_error_free(err);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
}
END_TEST

START_TEST(unix_stream_listen_and_connect)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct rsc_scope *s;
	struct rsc_entry *l, *c;
	int before = t_fd_count();

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t_path("sock"));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "unix", &s), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&sun, sizeof(sun), 4, 0, &l), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 1000, 0, &c), 0);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	ck_assert_int_eq(t_fd_count(), before + 2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
	unlink(t_path("sock"));
}
END_TEST

START_TEST(net_arguments_are_checked)
{
	struct sockaddr_in a = loopback(1);
	struct sockaddr bad = { .sa_family = AF_PACKET };
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "args", &s), 0);
	ck_assert_int_eq(rsc_connect(NULL, (struct sockaddr *)&a, sizeof(a), 0, 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, NULL, sizeof(a), 0, 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&a, 1, 0, 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&a, 4096, 0, 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, &bad, sizeof(bad), 0, 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&a, sizeof(a), 0, 0x10, NULL), -EINVAL);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), -1, 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_listen(s, &bad, sizeof(bad), 4, 0, NULL), -EINVAL);
	t_run();
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_SQES), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

Suite *make_net_suite(void)
{
	Suite *s = suite_create("net");
	TCase *tc;

	if (!t_kernel_has(IORING_OP_SOCKET) || !t_kernel_has(IORING_OP_CONNECT)) {
		printf("SKIP net suite: kernel lacks IORING_OP_SOCKET or IORING_OP_CONNECT\n");
		return s;
	}
	tc = tcase_create("loopback");
	t_add_fixture(tc);
	tcase_add_test(tc, connect_reaches_a_listener_and_both_release);
	tcase_add_test(tc, refused_connect_closes_its_socket);
	tcase_add_test(tc, connect_deadline_times_out_and_closes);
	tcase_add_test(tc, failed_bind_closes_its_socket);
	tcase_add_test(tc, unix_stream_listen_and_connect);
	tcase_add_test(tc, net_arguments_are_checked);
	suite_add_tcase(s, tc);
	return s;
}
