/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* Loopback and Unix sockets in the fixture's directory only. */

START_TEST(connect_reaches_a_listener_and_both_release)
{
	struct rsc_scope *srv, *cli;
	struct rsc_entry *l, *c;
	struct sockaddr_in bound;
	char got[128];
	int before = t_fd_count(), fd, peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	l = t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_connect(cli, (struct sockaddr *)&bound, sizeof(bound), 0, 0, &c), 0);
	fd = rsc_entry_wait(c);
	ck_assert_msg(fd >= 0, "connect: %s", rsc_strerror(fd));
	ck_assert_str_eq(rsc_entry_name(c), "connect");
	/* The peer really is there: accept it with libc and close it. */
	peer = accept4(rsc_entry_fd(l), NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(peer, 0);
	close(peer);
	/* One descriptor each: the connect entry took its socket over. */
	ck_assert_int_eq(t_fd_count(), before + 2);
	ck_assert_int_eq(rsc_scope_close_wait(cli, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	/* The connection's entry is released once, and that closes the socket. */
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "cli", got, sizeof(got)), 1);
	ck_assert_msg(!strncmp(got, "127.0.0.1:", 10), "release: %s", got);
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
	(void)t_listen_on_loopback(srv, 1, &bound);
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
	(void)t_listen_on_loopback(srv, 0, &bound);
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
	(void)t_listen_on_loopback(a, 4, &bound);
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
	/* Listening first: bind and listen may go through the ring. */
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 1000, 0, &c), 0);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	ck_assert_int_eq(t_fd_count(), before + 2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
	unlink(t_path("sock"));
}
END_TEST

START_TEST(net_arguments_are_checked)
{
	struct sockaddr_in a = t_loopback(1);
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

/* @len bytes of @a in a heap block of exactly that size, so ASan sees any read past it. */
static struct sockaddr *exact_copy(const void *a, size_t len)
{
	struct sockaddr *p = malloc(len);

	ck_assert_ptr_nonnull(p);
	memcpy(p, a, len);
	return p;
}

START_TEST(connect_refuses_short_inet_address)
{
	struct sockaddr_in a = t_loopback(1);
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(1),
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	static const socklen_t short4[] = { 2, 3, 8, sizeof(struct sockaddr_in) - 1 };
	static const socklen_t short6[] = { 3, sizeof(struct sockaddr_in), 24,
					    sizeof(struct sockaddr_in6) - 1 };
	struct rsc_scope *s;
	struct sockaddr *p;
	unsigned i;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "short", &s), 0);
	for (i = 0; i < sizeof(short4) / sizeof(short4[0]); i++) {
		p = exact_copy(&a, short4[i]);
		ck_assert_int_eq(rsc_connect(s, p, short4[i], 0, 0, NULL), -EINVAL);
		ck_assert_ptr_nonnull(strstr(rsc_last_error(), "AF_INET"));
		ck_assert_int_eq(rsc_listen(s, p, short4[i], 4, 0, NULL), -EINVAL);
		free(p);
	}
	for (i = 0; i < sizeof(short6) / sizeof(short6[0]); i++) {
		p = exact_copy(&a6, short6[i]);
		ck_assert_int_eq(rsc_connect(s, p, short6[i], 0, 0, NULL), -EINVAL);
		ck_assert_ptr_nonnull(strstr(rsc_last_error(), "AF_INET6"));
		ck_assert_int_eq(rsc_listen(s, p, short6[i], 4, 0, NULL), -EINVAL);
		free(p);
	}
	/* One byte of family only, and more than any address holds. */
	p = exact_copy(&a, 1);
	ck_assert_int_eq(rsc_connect(s, p, 1, 0, 0, NULL), -EINVAL);
	free(p);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&a, sizeof(struct sockaddr_storage) + 1, 0, 0, NULL), -EINVAL);
	t_run();
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_SQES), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(unix_path_without_nul_is_read_within_addrlen)
{
	struct sockaddr_un sun;
	struct rsc_scope *s;
	struct rsc_entry *l, *c;
	struct sockaddr *p;
	socklen_t len;
	int before = t_fd_count();

	/* Bytes after the path that are not part of it: no NUL within addrlen. */
	memset(&sun, 'X', sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, t_path("s"), strlen(t_path("s")));
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(t_path("s")));
	p = exact_copy(&sun, len);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "nonul", &s), 0);
	ck_assert_int_eq(rsc_listen(s, p, len, 4, 0, &l), 0);
	ck_assert_str_eq(rsc_entry_detail(l), t_path("s"));
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_connect(s, p, len, 1000, 0, &c), 0);
	ck_assert_str_eq(rsc_entry_detail(c), t_path("s"));
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	free(p);
	/* The longest path, sun_path full and unterminated. */
	memset(sun.sun_path, 'y', sizeof(sun.sun_path));
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 0, 0, &c), 0);
	ck_assert_int_eq(strlen(rsc_entry_detail(c)), sizeof(sun.sun_path));
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun) + 1, 0, 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_wait(c), -ENOENT); /* no such path */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ENOENT);
	ck_assert_int_eq(t_fd_count(), before);
	unlink(t_path("s"));
}
END_TEST

START_TEST(abstract_unix_name_is_kept_as_its_bytes_in_details)
{
	static const char name[] = "\0rsc-\x01\n\\\xff\0-abstract";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct rsc_scope *s;
	struct rsc_entry *l, *c;
	struct sockaddr *p;
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof(name) - 1);
	char want[64];
	int before = t_fd_count();

	/* Its bytes as they are (a NUL shown as '@'): each output escapes them once. */
	snprintf(want, sizeof(want), "@rsc-\x01\n\\\xff@-abstract.%d", (int)getpid());
	memcpy(sun.sun_path, name, sizeof(name) - 1);
	/* A name of this process only: the pid, after the fixed bytes. */
	len += (socklen_t)sprintf(sun.sun_path + sizeof(name) - 1, ".%d", (int)getpid());
	p = exact_copy(&sun, len);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "abstract", &s), 0);
	ck_assert_int_eq(rsc_listen(s, p, len, 4, 0, &l), 0);
	ck_assert_str_eq(rsc_entry_detail(l), want);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_connect(s, p, len, 1000, 0, &c), 0);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	ck_assert_str_eq(rsc_entry_detail(c), want);
	free(p);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* A socket's path in an error reads as a file's would: its control bytes escaped once. */
START_TEST(unix_path_in_an_error_is_escaped_once_like_a_files)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static const char path[] = "/nonexistent/a\x1b[31m\nb\\c";
	struct rsc_error *chain = NULL;
	struct rsc_scope *s;
	struct rsc_entry *c;
	char text[512];
	int before = t_fd_count();

	memcpy(sun.sun_path, path, sizeof(path));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "u", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 1000, 0, &c), 0);
	ck_assert_int_eq(rsc_entry_wait(c), -ENOENT);
	ck_assert_int_eq(rsc_scope_close_wait(s, &chain), -ENOENT);
	ck_assert_str_eq(rsc_error_detail(chain), path);
	ck_assert_int_gt(rsc_error_format(chain, text, sizeof(text)), 0);
	ck_assert_msg(strstr(text, "connect /nonexistent/a\\x1b[31m\\x0ab\\\\c: "), "%s", text);
	rsc_error_free(chain);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(unnamed_unix_address_autobinds_and_cannot_be_connected)
{
	struct sockaddr_un got;
	struct rsc_scope *s;
	struct rsc_entry *l, *c;
	struct sockaddr *p;
	socklen_t len = sizeof(got);
	sa_family_t fam = AF_UNIX;
	int fd, before = t_fd_count();

	p = exact_copy(&fam, sizeof(fam));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "unnamed", &s), 0);
	ck_assert_int_eq(rsc_connect(s, p, sizeof(fam), 0, 0, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "unnamed"));
	/* Listening on it binds a kernel-chosen abstract name (unix(7) autobind). */
	ck_assert_int_eq(rsc_listen(s, p, sizeof(fam), 4, 0, &l), 0);
	ck_assert_str_eq(rsc_entry_detail(l), "(unnamed)");
	fd = rsc_entry_wait(l);
	ck_assert_msg(fd >= 0, "listen: %s", rsc_strerror(fd));
	free(p);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&got, &len), 0);
	ck_assert_int_gt(len, offsetof(struct sockaddr_un, sun_path) + 1);
	ck_assert_int_eq(got.sun_path[0], '\0');
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&got, len, 1000, 0, &c), 0);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	ck_assert_int_eq(rsc_entry_detail(c)[0], '@');
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

struct accepted {
	int n, errors, last_err, finals;
	int fds[64];
	struct rsc_scope *scopes[64];
};

static void on_accept(struct rsc_entry *l, int res, struct rsc_scope *cs,
		      struct rsc_entry *conn, void *data)
{
	struct accepted *a = data;

	(void)l;
	if (res >= 0) {
		ck_assert_ptr_nonnull(cs);
		ck_assert_int_eq(rsc_entry_fd(conn), res);
		ck_assert_str_eq(rsc_scope_name(cs), "conn");
		ck_assert_int_lt(a->n, 64);
		a->fds[a->n] = res;
		a->scopes[a->n++] = cs;
	} else if (res == -ECANCELED) {
		a->finals++;
	} else {
		a->errors++;
		a->last_err = res;
	}
}

static void run_until(int *counter, int want)
{
	int turns = 0;

	while (*counter < want && turns++ < 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(*counter, want);
}

START_TEST(multishot_accept_gives_each_connection_its_scope)
{
	struct accepted a = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	char got[256], want[256] = "";
	int before = t_fd_count(), clients[3], i;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 16, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, on_accept, &a), 0);
	for (i = 0; i < 3; i++)
		clients[i] = t_connect(&bound);
	run_until(&a.n, 3);
	ck_assert_int_eq(rsc_entry_io_count(l), 1); /* still armed */
	ck_assert_int_eq(t_fd_count(), before + 1 + 3 + 3);
	/* Closing the server closes connections newest first, then stops accepting. */
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(a.finals, 1);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "conn", got, sizeof(got)), 3);
	for (i = 2; i >= 0; i--)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%sfd %d",
			 i == 2 ? "" : ",", a.fds[i]);
	ck_assert_str_eq(got, want);
	for (i = 0; i < 3; i++)
		close(clients[i]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(single_shot_accepts_one)
{
	struct accepted a = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	int c1, c2;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "once", &srv), 0);
	l = t_listen_on_loopback(srv, 16, &bound);
	ck_assert_int_eq(rsc_accept(l, 0, on_accept, &a), 0);
	c1 = t_connect(&bound);
	c2 = t_connect(&bound);
	run_until(&a.n, 1);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(a.n, 1);
	ck_assert_int_eq(rsc_entry_io_count(l), 0);
	/* The caller closes a connection's scope when it is done with it. */
	ck_assert_int_eq(rsc_scope_close_wait(a.scopes[0], NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	close(c1);
	close(c2);
}
END_TEST

START_TEST(single_shot_accept_ends_with_one_callback_when_its_scope_closes)
{
	struct accepted a = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	int before = t_fd_count(), c;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "once", &srv), 0);
	l = t_listen_on_loopback(srv, 16, &bound);
	/* A client is waiting when the accept starts and the scope closes. */
	c = t_connect(&bound);
	ck_assert_int_eq(rsc_accept(l, 0, on_accept, &a), 0);
	ck_assert_int_eq(rsc_scope_close(srv, NULL, NULL), 0);
	t_run();
	/* Either the connection was delivered, or the end was: never neither. */
	ck_assert_int_eq(a.n + a.finals + a.errors, 1);
	close(c);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

struct detach_in_cb {
	struct rsc_entry *l;
	int n, res, detached, conn_fd;
	struct rsc_scope *cs;
};

/* The connection, a single-shot accept's last call: it takes the listener back. */
static void detach_listener(struct rsc_entry *l, int res, struct rsc_scope *cs,
			    struct rsc_entry *conn, void *data)
{
	struct detach_in_cb *d = data;

	(void)conn;
	ck_assert_ptr_eq(l, d->l);
	d->n++;
	d->res = res;
	d->cs = cs;
	d->detached = rsc_entry_detach(l);
}

START_TEST(single_shot_connection_callback_may_detach_the_listener)
{
	struct detach_in_cb d = { 0 };
	struct rsc_scope *srv;
	struct sockaddr_in bound;
	int before = t_fd_count(), c, lfd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	d.l = t_listen_on_loopback(srv, 16, &bound);
	lfd = rsc_entry_fd(d.l);
	ck_assert_int_eq(rsc_accept(d.l, 0, detach_listener, &d), 0);
	c = t_connect(&bound);
	run_until(&d.n, 1);
	ck_assert_int_ge(d.res, 0);
	/* rsc_entry_detach(3): an op's final callback may detach the entry it
	 * reports. It was -EBUSY: the accept was still counted on the listener. */
	ck_assert_msg(d.detached == lfd, "detach from the callback: %s", rsc_strerror(d.detached));
	ck_assert_int_eq(rsc_entry_state(d.l), -ESTALE);
	t_run();
	ck_assert_int_eq(d.n, 1);
	/* The connection is still its scope's; the listener is ours. */
	ck_assert_int_eq(fcntl(lfd, F_GETFD) >= 0, 1);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(close(lfd), 0);
	ck_assert_int_eq(close(c), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

static int defer_nothing(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return 0;
}

static void timer_cb(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)res;
	(void)buf;
	(void)data;
}

/* rsc_accept(3): -EBADF for an entry that holds no descriptor. It was
 * accepted, and an accept(2) on descriptor 0 (the timer's and the defer's
 * value) went out: whatever listened there would have been taken over. */
START_TEST(accept_on_an_entry_without_a_descriptor_is_refused)
{
	struct accepted a = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *d, *t;
	int before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_defer(s, defer_nothing, NULL, &d), 0);
	ck_assert_int_eq(rsc_timer(s, 60000, timer_cb, NULL, &t), 0);
	ck_assert_int_ge(rsc_entry_wait(t), 0);
	ck_assert_int_eq(rsc_accept(d, 0, on_accept, &a), -EBADF);
	ck_assert_int_eq(rsc_accept(t, RSC_ACCEPT_MULTISHOT, on_accept, &a), -EBADF);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "no descriptor"));
	ck_assert_int_eq(rsc_entry_io_count(d), 0);
	ck_assert_int_eq(rsc_entry_io_count(t), 1); /* its own timeout only */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(a.n + a.finals + a.errors, 0); /* a refused call never calls back */
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* Four clients connecting and closing as fast as they can, in children. */
static pid_t churn_clients(const struct sockaddr_in *to, int procs, int each)
{
	pid_t pid = fork();
	int p, i;

	ck_assert_int_ge(pid, 0);
	if (pid)
		return pid;
	for (p = 1; p < procs; p++)
		if (fork() == 0)
			break;
	for (i = 0; i < each; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0 && connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0)
			break;
		if (fd >= 0)
			close(fd);
	}
	while (wait(NULL) > 0)
		;
	_exit(0);
}

static void close_each(struct rsc_entry *l, int res, struct rsc_scope *cs,
		       struct rsc_entry *conn, void *data)
{
	(void)l;
	(void)conn;
	if (res >= 0) {
		(*(int *)data)++;
		ck_assert_int_eq(rsc_scope_close(cs, NULL, NULL), 0);
	}
}

START_TEST(full_audit_has_no_false_leaks_while_accepting)
{
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	int n = 0, status, turns = 0;
	pid_t pid;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0); /* thousands of events */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 128, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, close_each, &n), 0);
	pid = churn_clients(&bound, 4, 200);
	/* NOWAIT: once the clients are gone no completion would wake a wait. */
	while (waitpid(pid, &status, WNOHANG) == 0 && turns++ < 2000000) {
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		usleep(50);
	}
	ck_assert_msg(n >= 100, "%d connections, %d turns", n, turns);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	/* Every connection was owned by its scope until that scope closed it. */
	if (rsc_audit_count(t_loop))
		rsc_audit_print(t_loop, stderr);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

struct stopper {
	int k, n, finals, last_res, release_res;
	bool cancel; /* rsc_entry_cancel_io instead of rsc_entry_release */
};

static void note_release(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	((struct stopper *)data)->release_res = res;
}

/* Connection k stops the accept from its own callback. */
static void stop_at_k(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *c,
		      void *data)
{
	struct stopper *st = data;

	(void)c;
	if (!cs) {
		st->finals++;
		st->last_res = res;
		return;
	}
	if (++st->n != st->k)
		return;
	if (st->cancel)
		ck_assert_int_eq(rsc_entry_cancel_io(l), 1);
	else
		ck_assert_int_eq(rsc_entry_release(l, note_release, st), 0);
}

/*
 * rsc_accept(3): a multishot accept ends with one last call, -ECANCELED,
 * after a release or rsc_entry_cancel_io, whichever connection's callback
 * makes it. The kernel ends a multishot accept on a full CQ with a CQE that
 * carries a connection and no IORING_CQE_F_MORE; when that connection's
 * callback stopped the accept, the runtime armed it again (a release that
 * never completed) or went silent. Every k of a backlog of 40 on the
 * smallest ring takes that turn once.
 */
static void stopped_by_each_connection(bool cancel)
{
	struct rsc_loop *loop;
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	int clients[40], i, k, before = t_fd_count();

	for (k = 1; k <= 40; k++) {
		struct stopper st = { .k = k, .release_res = 1, .cancel = cancel };
		long until;

		ck_assert_int_eq(rsc_loop_new(&loop, 1, 0), 0); /* the smallest CQ */
		ck_assert_int_eq(rsc_scope_open(loop, NULL, "srv", &srv), 0);
		l = t_listen_on_loopback(srv, 128, &bound);
		for (i = 0; i < 40; i++)
			clients[i] = t_connect(&bound);
		ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, stop_at_k, &st), 0);
		until = t_now_ms() + 5000;
		while ((st.finals == 0 || (!cancel && st.release_res == 1)) && t_now_ms() < until)
			ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_NOWAIT), 0);
		ck_assert_msg(st.finals == 1, "k = %d: %d last calls", k, st.finals);
		ck_assert_int_eq(st.last_res, -ECANCELED);
		ck_assert_int_eq(rsc_entry_io_count(l), 0);
		if (!cancel)
			ck_assert_msg(st.release_res == 0, "k = %d: the listener's release did not complete", k);
		ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
		ck_assert_int_eq(st.finals, 1);
		ck_assert_int_eq(rsc_loop_close(loop), 0);
		for (i = 0; i < 40; i++)
			close(clients[i]);
	}
	ck_assert_int_eq(t_fd_count(), before);
}

START_TEST(multishot_accept_ended_by_a_full_cq_hears_a_release_from_its_callback)
{
	stopped_by_each_connection(false);
}
END_TEST

START_TEST(multishot_accept_ended_by_a_full_cq_hears_a_cancel_from_its_callback)
{
	stopped_by_each_connection(true);
}
END_TEST

START_TEST(closing_while_clients_connect_leaks_nothing)
{
	struct accepted a = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	int before = t_fd_count(), clients[40], i;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "storm", &srv), 0);
	l = t_listen_on_loopback(srv, 64, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, on_accept, &a), 0);
	for (i = 0; i < 20; i++)
		clients[i] = t_connect(&bound);
	ck_assert_int_eq(rsc_scope_close(srv, NULL, NULL), 0);
	/* More arrive while it closes: each is owned by a scope or closed. */
	for (; i < 40; i++)
		clients[i] = t_connect(&bound);
	t_run();
	ck_assert_int_eq(a.finals, 1);
	for (i = 0; i < 40; i++)
		close(clients[i]);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert(!t_fd_open_to("socket:["));
}
END_TEST

START_TEST(accept_recovers_when_descriptors_free_up)
{
	struct accepted a = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	struct rlimit old, low;
	int fillers[64], n = 0, c;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "emfile", &srv), 0);
	l = t_listen_on_loopback(srv, 16, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, on_accept, &a), 0);
	c = t_connect(&bound); /* its socket first, then the table fills up */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)t_fd_count() + 8;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 64 && (fillers[n] = dup(0)) >= 0)
		n++;
	run_until(&a.errors, 1);
	ck_assert_int_eq(a.last_err, -EMFILE);
	ck_assert_int_eq(a.n, 0);
	/* Descriptors free up: the backoff re-arms it and the client gets in. */
	while (n > 0)
		close(fillers[--n]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	run_until(&a.n, 1);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	close(c);
}
END_TEST

START_TEST(injected_connect_failure_closes_its_socket)
{
	struct rsc_scope *srv, *cli;
	struct rsc_error *err = NULL;
	struct sockaddr_in bound;
	int before;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	(void)t_listen_on_loopback(srv, 4, &bound);
	before = t_fd_count();
	ck_assert_int_eq(rsc_fault_set(t_loop, "connect:1:ECONNREFUSED"), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	ck_assert_int_eq(rsc_connect(cli, (struct sockaddr *)&bound, sizeof(bound), 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(cli, &err), -ECONNREFUSED);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	rsc_error_free(err);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

START_TEST(injected_accept_shortage_backs_off_and_recovers)
{
	struct accepted a = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	int c;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 16, &bound);
	ck_assert_int_eq(rsc_fault_set(t_loop, "accept:1:ENFILE"), 0);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, on_accept, &a), 0);
	c = t_connect(&bound);
	/* The first accept fails as injected; the backoff re-arms it. */
	run_until(&a.n, 1);
	ck_assert_int_eq(a.errors, 1);
	ck_assert_int_eq(a.last_err, -ENFILE);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 1);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	close(c);
}
END_TEST

struct rearm {
	struct rsc_loop *loop;
	struct rsc_scope *fill;
	int n, res[8];
};

/* The shortage's call leaves no SQE for the re-arm: the SQ of 8 filled by
 * 8 opens not yet submitted, and its flush interrupted (submit:EINTR). */
static void shortage_then_no_sqe(struct rsc_entry *l, int res, struct rsc_scope *cs,
				 struct rsc_entry *conn, void *data)
{
	struct rearm *r = data;

	(void)l;
	(void)cs;
	(void)conn;
	ck_assert_int_lt(r->n, 8);
	r->res[r->n++] = res;
	if (res == -EMFILE) {
		t_open_files(r->fill, 0, 8);
		ck_assert_int_eq(rsc_fault_set(r->loop, "submit:1:EINTR"), 0);
	}
}

/* rsc_accept(3): after a shortage a multishot accept is re-armed; when it
 * cannot be (no SQE), its last call must say so with an errno that is no
 * shortage. It said -ENOMEM, a shortage: the caller waited for calls that
 * never came, with nothing armed. */
START_TEST(multishot_accept_that_cannot_be_rearmed_ends_with_ebusy)
{
	struct rearm r = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	int turns = 0;

	if (rsc_loop_new(&r.loop, 8, 0) < 0 || rsc_fault_set(r.loop, "") < 0) {
		printf("SKIP multishot_accept_that_cannot_be_rearmed_ends_with_ebusy: no fault injection\n");
		if (r.loop)
			ck_assert_int_eq(rsc_loop_close(r.loop), 0);
		return;
	}
	t_make_files(8);
	ck_assert_int_eq(rsc_scope_open(r.loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(r.loop, NULL, "fill", &r.fill), 0);
	l = t_listen_on_loopback(srv, 16, &bound);
	ck_assert_int_eq(rsc_fault_set(r.loop, "accept:1:EMFILE"), 0);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, shortage_then_no_sqe, &r), 0);
	while (r.n < 2 && turns++ < 100)
		ck_assert_int_ge(rsc_loop_run(r.loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(r.n, 2);
	ck_assert_int_eq(r.res[0], -EMFILE);
	ck_assert_int_eq(r.res[1], -EBUSY); /* the last call, and no shortage */
	ck_assert_int_eq(rsc_entry_io_count(l), 0);
	ck_assert_int_eq(rsc_loop_counter(r.loop, RSC_CTR_FAULTS_INJECTED), 2);
	ck_assert_int_eq(rsc_fault_set(r.loop, ""), 0);
	ck_assert_int_eq(rsc_scope_close_wait(r.fill, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(r.n, 2);
	ck_assert_int_eq(rsc_loop_close(r.loop), 0);
}
END_TEST

static void keep_conn(struct rsc_entry *l, int res, struct rsc_scope *cs,
		      struct rsc_entry *conn, void *data)
{
	struct rsc_entry **got = data;

	(void)l;
	(void)cs;
	if (res >= 0)
		*got = conn;
}

static int nodelay_of(struct rsc_entry *e)
{
	int on = -1;
	socklen_t len = sizeof(on);

	ck_assert_int_eq(getsockopt(rsc_entry_fd(e), IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
	return on;
}

/* rsc_listen(3) RSC_NODELAY: the connections it accepts inherit TCP_NODELAY;
 * rsc_entry_sockname/peername(3) name both ends without a syscall of the
 * caller's on the runtime's descriptor. */
START_TEST(nodelay_listener_passes_it_on_and_entries_name_both_ends)
{
	struct sockaddr_in a = t_loopback(0), bound, peer, mine;
	socklen_t len = sizeof(bound), plen = sizeof(peer), mlen = sizeof(mine);
	struct rsc_entry *l, *plain, *conn = NULL, *conn2 = NULL;
	struct rsc_scope *srv;
	int c, c2, before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_listen(srv, (struct sockaddr *)&a, sizeof(a), 8, RSC_NODELAY, &l), 0);
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)&bound, &len), -EAGAIN);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)&bound, &len), 0);
	ck_assert_int_eq(len, sizeof(bound));
	ck_assert_int_ne(ntohs(bound.sin_port), 0);
	ck_assert_int_eq(rsc_entry_peername(l, (struct sockaddr *)&peer, &plen), -ENOTCONN);
	ck_assert_int_eq(rsc_accept(l, 0, keep_conn, &conn), 0);
	c = t_connect(&bound);
	while (!conn)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(nodelay_of(conn), 1);
	plen = sizeof(peer);
	ck_assert_int_eq(rsc_entry_peername(conn, (struct sockaddr *)&peer, &plen), 0);
	ck_assert_int_eq(getsockname(c, (struct sockaddr *)&mine, &mlen), 0);
	ck_assert_int_eq(peer.sin_port, mine.sin_port); /* the client, seen from the server */
	/* Without the flag, Nagle stays on: the flag is what set it. */
	plain = t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_accept(plain, 0, keep_conn, &conn2), 0);
	c2 = t_connect(&bound);
	while (!conn2)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(nodelay_of(conn2), 0);
	/* Bad arguments, and entries with no socket to name. */
	ck_assert_int_eq(rsc_entry_sockname(conn, NULL, &len), -EINVAL);
	ck_assert_int_eq(rsc_entry_sockname(conn, (struct sockaddr *)&bound, NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_sockname(NULL, (struct sockaddr *)&bound, &len), -EINVAL);
	ck_assert_int_eq(rsc_entry_release_wait(conn2, NULL), 0);
	ck_assert_int_eq(rsc_entry_sockname(conn2, (struct sockaddr *)&bound, &len), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	t_run(); /* the connections' own scopes, closed by srv's */
	ck_assert_int_eq(rsc_entry_peername(conn, (struct sockaddr *)&peer, &plen), -ESTALE);
	close(c);
	close(c2);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* Turns the loop without blocking for @ms milliseconds, or until *@got. */
static void run_for_ms(struct rsc_entry **got, long ms)
{
	long end = t_now_ms() + ms;

	while (!*got && t_now_ms() < end) {
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		usleep(2000);
	}
}

/* rsc_connect(3) RSC_DEFER_ACCEPT: no accept until the client's first bytes
 * are there, which the connection then reads at once; a silent client is
 * still accepted, about a second later; other calls refuse the flag. */
START_TEST(defer_accept_listener_waits_for_the_first_bytes)
{
	struct sockaddr_in a = t_loopback(0), bound;
	socklen_t len = sizeof(bound), olen;
	struct rsc_entry *l, *conn = NULL, *quiet = NULL, *e;
	struct rsc_scope *srv;
	int c, c2, secs = 0, before = t_fd_count();
	char byte = 0;
	long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_socket(srv, AF_INET, SOCK_STREAM, 0, RSC_DEFER_ACCEPT, &e), -EINVAL);
	ck_assert_int_eq(rsc_connect(srv, (struct sockaddr *)&a, sizeof(a), 0, RSC_DEFER_ACCEPT, &e),
			 -EINVAL);
	ck_assert_int_eq(rsc_listen(srv, (struct sockaddr *)&a, sizeof(a), 8,
				    RSC_DEFER_ACCEPT | RSC_NODELAY, &l), 0);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	olen = sizeof(secs);
	ck_assert_int_eq(getsockopt(rsc_entry_fd(l), IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, &olen), 0);
	ck_assert_int_gt(secs, 0);
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)&bound, &len), 0);
	ck_assert_int_eq(rsc_accept(l, 0, keep_conn, &conn), 0);
	c = t_connect(&bound);
	run_for_ms(&conn, 300);
	ck_assert_ptr_null(conn); /* connected, but nothing sent yet */
	ck_assert_int_eq(write(c, "x", 1), 1);
	run_for_ms(&conn, 5000);
	ck_assert_ptr_nonnull(conn);
	/* The request came with the accept: no wait for it. */
	ck_assert_int_eq(recv(rsc_entry_fd(conn), &byte, 1, MSG_DONTWAIT), 1);
	ck_assert_int_eq(byte, 'x');
	/* A client that never speaks is accepted all the same, later. */
	ck_assert_int_eq(rsc_accept(l, 0, keep_conn, &quiet), 0);
	t0 = t_now_ms();
	c2 = t_connect(&bound);
	run_for_ms(&quiet, 10000);
	ck_assert_ptr_nonnull(quiet);
	ck_assert_int_ge(t_now_ms() - t0, 500);
	ck_assert_int_eq(recv(rsc_entry_fd(quiet), &byte, 1, MSG_DONTWAIT), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	t_run(); /* the connections' own scopes, closed by srv's */
	close(c);
	close(c2);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(sockname_of_a_file_or_unix_listener)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX }, got;
	socklen_t len = sizeof(got);
	struct rsc_entry *f, *u;
	struct rsc_scope *s;

	t_make_files(1);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t_path("sock"));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &f), 0);
	/* No Nagle and no deferred accept on AF_UNIX: the flags are accepted and do nothing. */
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&sun, sizeof(sun), 4,
				    RSC_NODELAY | RSC_DEFER_ACCEPT, &u), 0);
	ck_assert_int_ge(rsc_entry_wait(u), 0);
	ck_assert_int_ge(rsc_entry_wait(f), 0);
	ck_assert_int_eq(rsc_entry_sockname(f, (struct sockaddr *)&got, &len), -ENOTSOCK);
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_sockname(u, (struct sockaddr *)&got, &len), 0);
	ck_assert_str_eq(got.sun_path, t_path("sock"));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	unlink(t_path("sock"));
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
	tcase_add_test(tc, connect_refuses_short_inet_address);
	tcase_add_test(tc, unix_path_without_nul_is_read_within_addrlen);
	tcase_add_test(tc, abstract_unix_name_is_kept_as_its_bytes_in_details);
	t_add_socket_test(tc, unix_path_in_an_error_is_escaped_once_like_a_files);
	tcase_add_test(tc, unnamed_unix_address_autobinds_and_cannot_be_connected);
	t_add_test_if(tc, multishot_accept_gives_each_connection_its_scope,
		      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(tc, single_shot_accepts_one);
	t_add_test_if(tc, multishot_accept_ended_by_a_full_cq_hears_a_release_from_its_callback,
		      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	t_add_test_if(tc, multishot_accept_ended_by_a_full_cq_hears_a_cancel_from_its_callback,
		      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(tc, nodelay_listener_passes_it_on_and_entries_name_both_ends);
	tcase_add_test(tc, sockname_of_a_file_or_unix_listener);
	tcase_add_test(tc, defer_accept_listener_waits_for_the_first_bytes);
	tcase_add_test(tc, single_shot_accept_ends_with_one_callback_when_its_scope_closes);
	tcase_add_test(tc, single_shot_connection_callback_may_detach_the_listener);
	tcase_add_test(tc, accept_on_an_entry_without_a_descriptor_is_refused);
	t_add_test_if(tc, full_audit_has_no_false_leaks_while_accepting, t_has_accept_multishot(),
		      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	t_add_test_if(tc, closing_while_clients_connect_leaks_nothing, t_has_accept_multishot(),
		      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	if (rsc_fault_set(t_probe_loop(), "") == 0) {
		tcase_add_test(tc, injected_connect_failure_closes_its_socket);
		tcase_add_test(tc, injected_accept_shortage_backs_off_and_recovers);
		tcase_add_test(tc, multishot_accept_that_cannot_be_rearmed_ends_with_ebusy);
	} else {
		printf("SKIP injected_connect/accept tests: this build has no fault injection\n");
	}
	if (t_under_valgrind())
		printf("SKIP accept_recovers_when_descriptors_free_up: under valgrind, RLIMIT_NOFILE is not enforced on io_uring\n");
	else
		t_add_test_if(tc, accept_recovers_when_descriptors_free_up,
			      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	suite_add_tcase(s, tc);
	return s;
}
