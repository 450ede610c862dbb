/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
/* Fortified stdio makes snprintf an inline of this file: the definitions
 * below must be the program's, seen by libringscope. */
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

/*
 * A server's every connection takes the same few paths: accept, receive,
 * send, close, and a client's connect. None of them may format text: an
 * accept that named its entry "fd 7" with snprintf, and ringscope-httpd
 * asking twice to close a scope (whose -EALREADY formats its message), cost
 * more user time per churned connection than the rest of the accept
 * (bench/README.md, "Server: ringscope-httpd"). A profile found them; this
 * suite keeps them found. The test program interposes snprintf and vsnprintf
 * (every libringscope message and detail goes through them) and counts the
 * calls whose return address is in libringscope's own code.
 */

static int (*real_vsnprintf)(char *, size_t, const char *, va_list);
static void *lib_base; /* libringscope's load address while counting, else NULL */
static long lib_formats;

static void note_caller(const void *ret)
{
	Dl_info info;

	if (__atomic_load_n(&lib_base, __ATOMIC_RELAXED) && dladdr(ret, &info) &&
	    info.dli_fbase == lib_base)
		__atomic_add_fetch(&lib_formats, 1, __ATOMIC_RELAXED);
}

static int call_real(char *s, size_t n, const char *fmt, va_list ap)
{
	if (!real_vsnprintf)
		real_vsnprintf = (int (*)(char *, size_t, const char *, va_list))dlsym(RTLD_NEXT, "vsnprintf");
	return real_vsnprintf(s, n, fmt, ap);
}

__attribute__((visibility("default"))) int vsnprintf(char *s, size_t n, const char *fmt, va_list ap)
{
	note_caller(__builtin_return_address(0));
	return call_real(s, n, fmt, ap);
}

__attribute__((visibility("default"))) int snprintf(char *s, size_t n, const char *fmt, ...)
{
	va_list ap;
	int ret;

	note_caller(__builtin_return_address(0));
	va_start(ap, fmt);
	ret = call_real(s, n, fmt, ap);
	va_end(ap);
	return ret;
}

/* libringscope's load address, or NULL (a SKIP) if it is linked into this program. */
static void *library_base(void)
{
	Dl_info lib, self;

	if (!dladdr((void *)rsc_loop_new, &lib) || !dladdr((void *)library_base, &self) ||
	    lib.dli_fbase == self.dli_fbase)
		return NULL;
	return lib.dli_fbase;
}

/* Counting starts: what libringscope formats from now on is counted. */
static bool count_from_now(const char *test)
{
	void *base = library_base();

	if (!base) {
		printf("SKIP %s: libringscope is linked statically, so its calls cannot be told apart\n", test);
		return false;
	}
	/* The interposition must be live: one call of the library's own counts. */
	__atomic_store_n(&lib_formats, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&lib_base, base, __ATOMIC_RELAXED);
	ck_assert_int_eq(rsc_loop_run(NULL, RSC_RUN_NOWAIT), -EINVAL); /* formats its message */
	ck_assert_msg(__atomic_load_n(&lib_formats, __ATOMIC_RELAXED) >= 1,
		      "snprintf/vsnprintf of libringscope are not seen: the interposition is not live");
	__atomic_store_n(&lib_formats, 0, __ATOMIC_RELAXED);
	return true;
}

static long stop_counting(void)
{
	__atomic_store_n(&lib_base, NULL, __ATOMIC_RELAXED);
	return __atomic_load_n(&lib_formats, __ATOMIC_RELAXED);
}

/* ---- a server: accept, receive, answer, close ------------------------------ */

struct server {
	int accepted, closed, errors;
	char buf[16];
};

static void conn_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct server *srv = data;

	(void)s;
	(void)err;
	if (status < 0)
		srv->errors++;
	srv->closed++;
}

static void on_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct server *srv = rsc_entry_data(e);

	(void)buf;
	if (res != 2)
		srv->errors++;
	ck_assert_int_eq(rsc_scope_close(data, conn_closed, srv), 0);
}

static void on_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct server *srv = rsc_entry_data(e);

	(void)buf;
	if (res <= 0) {
		srv->errors++;
		ck_assert_int_eq(rsc_scope_close(data, conn_closed, srv), 0);
		return;
	}
	ck_assert_int_eq(rsc_send(e, "ok", 2, 0, on_sent, data), 0);
}

static void on_accept(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *conn,
		      void *data)
{
	struct server *srv = data;

	(void)l;
	if (res < 0) {
		if (res != -ECANCELED)
			srv->errors++;
		return;
	}
	srv->accepted++;
	ck_assert_int_eq(rsc_entry_set_data(conn, srv), 0);
	ck_assert_int_eq(rsc_recv(conn, srv->buf, sizeof(srv->buf), 0, on_recv, cs), 0);
}

/* One client's request and its answer, the server's side run on t_loop. */
static void one_connection(struct server *srv, const struct sockaddr_in *bound)
{
	int fd = t_connect(bound), turns = 0, closed = srv->closed;
	char got[4];

	ck_assert_int_eq(write(fd, "hi", 2), 2);
	while (srv->closed == closed && turns++ < 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(srv->closed, closed + 1);
	ck_assert_int_eq(read(fd, got, sizeof(got)), 2);
	ck_assert_int_eq(memcmp(got, "ok", 2), 0);
	close(fd);
}

static void serve_without_formatting(unsigned accept_flags, const char *test)
{
	struct server srv = { 0 };
	struct sockaddr_in bound;
	struct rsc_scope *s;
	struct rsc_entry *l;
	int before = t_fd_count(), i;
	long formats;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 16, &bound);
	ck_assert_int_eq(rsc_accept(l, accept_flags, on_accept, &srv), 0);
	for (i = 0; i < 4; i++) /* the pools grow and the paths warm up first */
		one_connection(&srv, &bound);
	if (!count_from_now(test)) {
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
		return;
	}
	for (i = 0; i < 32; i++)
		one_connection(&srv, &bound);
	formats = stop_counting();
	ck_assert_msg(formats == 0, "libringscope formatted text %ld times over 32 connections", formats);
	ck_assert_int_eq(srv.accepted, 36);
	ck_assert_int_eq(srv.errors, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}

START_TEST(served_connections_format_no_text)
{
	serve_without_formatting(RSC_ACCEPT_MULTISHOT, "served_connections_format_no_text");
}
END_TEST

START_TEST(served_connections_in_slots_format_no_text)
{
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 64, 0), 0);
	serve_without_formatting(RSC_ACCEPT_MULTISHOT | RSC_DIRECT,
				 "served_connections_in_slots_format_no_text");
}
END_TEST

START_TEST(single_shot_accepts_format_no_text)
{
	struct server srv = { 0 };
	struct sockaddr_in bound;
	struct rsc_scope *s;
	struct rsc_entry *l;
	int i, before = t_fd_count();
	long formats = 0;
	bool counting = false;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	l = t_listen_on_loopback(s, 16, &bound);
	for (i = 0; i < 36; i++) {
		if (i == 4 && !(counting = count_from_now("single_shot_accepts_format_no_text")))
			break;
		ck_assert_int_eq(rsc_accept(l, 0, on_accept, &srv), 0);
		one_connection(&srv, &bound);
	}
	if (counting)
		formats = stop_counting();
	ck_assert_msg(formats == 0, "libringscope formatted text %ld times over 32 connections", formats);
	ck_assert_int_eq(srv.errors, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ---- a keep-alive connection: what a server does per request --------------- */

/*
 * ringscope-httpd's request path: the connection's scope moves from "idle"
 * to "busy" when a request arrives, the answer is sent, and the scope moves
 * back with its idle deadline re-armed. Single-shot or multishot receives.
 */
struct keepalive {
	struct rsc_scope *idle, *busy, *conn;
	int requests, answered, errors;
	bool multishot;
	char buf[16];
};

static void ka_request(struct rsc_entry *e, int res, void *buf, void *data);

static void ka_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct keepalive *k = data;

	(void)buf;
	if (res != 2 || rsc_scope_move(k->conn, k->idle) < 0 ||
	    rsc_scope_set_deadline(k->conn, 30000, 0) < 0)
		k->errors++;
	k->answered++;
	if (!k->multishot && rsc_recv(e, k->buf, sizeof(k->buf), 0, ka_request, k) < 0)
		k->errors++;
}

static void ka_request(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct keepalive *k = data;

	(void)buf;
	if (res <= 0)
		return; /* the end: the scope's close cancelled it */
	k->requests++;
	if (rsc_scope_move(k->conn, k->busy) < 0 || rsc_send(e, "ok", 2, 0, ka_sent, k) < 0)
		k->errors++;
}

static void keep_alive_without_formatting(bool multishot, const char *test)
{
	struct keepalive k = { .multishot = multishot };
	struct rsc_scope *top;
	struct rsc_entry *e;
	int peer, i, turns, before = t_fd_count();
	long formats = 0;
	bool counting = false;
	char got[2];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "top", &top), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, top, "idle", &k.idle), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, top, "busy", &k.busy), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, k.idle, "conn", &k.conn), 0);
	e = t_adopted_pair(k.conn, &peer);
	ck_assert_int_eq(rsc_scope_set_deadline(k.conn, 30000, 0), 0);
	if (multishot)
		ck_assert_int_eq(rsc_recv_multishot(e, 0, ka_request, &k), 0);
	else
		ck_assert_int_eq(rsc_recv(e, k.buf, sizeof(k.buf), 0, ka_request, &k), 0);
	for (i = 0; i < 36; i++) {
		if (i == 4 && !(counting = count_from_now(test)))
			break;
		ck_assert_int_eq(write(peer, "hi", 2), 2);
		for (turns = 0; k.answered == i && turns < 1000; turns++)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_int_eq(k.answered, i + 1);
		ck_assert_int_eq(read(peer, got, sizeof(got)), 2);
	}
	if (counting)
		formats = stop_counting();
	ck_assert_msg(formats == 0, "libringscope formatted text %ld times over 32 requests", formats);
	ck_assert_int_eq(k.errors, 0);
	ck_assert_int_eq(k.requests, k.answered);
	ck_assert_int_eq(rsc_scope_close_wait(top, NULL), 0);
	close(peer);
	ck_assert_int_eq(t_fd_count(), before);
}

START_TEST(keep_alive_requests_format_no_text)
{
	keep_alive_without_formatting(false, "keep_alive_requests_format_no_text");
}
END_TEST

START_TEST(keep_alive_multishot_requests_format_no_text)
{
	keep_alive_without_formatting(true, "keep_alive_multishot_requests_format_no_text");
}
END_TEST

/* ---- a client: connect, send, close ---------------------------------------- */

static void client_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	*(int *)data = res;
}

static void connect_without_formatting(unsigned flags, const char *test)
{
	struct sockaddr_in a = t_loopback(0);
	socklen_t len = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), i, before;
	long formats = 0;
	bool counting = false;

	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(lfd, 64), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	before = t_fd_count();
	for (i = 0; i < 36; i++) {
		struct rsc_scope *cs;
		struct rsc_entry *c;
		int sent = 1, peer, turns = 0;
		char got[2];

		if (i == 4 && !(counting = count_from_now(test)))
			break;
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "client", &cs), 0);
		ck_assert_int_eq(rsc_connect(cs, (struct sockaddr *)&a, sizeof(a), 0, flags, &c), 0);
		ck_assert_int_ge(rsc_entry_wait(c), 0);
		ck_assert_int_eq(rsc_send(c, "hi", 2, 0, client_sent, &sent), 0);
		while (sent == 1 && turns++ < 1000)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_int_eq(sent, 2);
		ck_assert_int_eq(rsc_scope_close_wait(cs, NULL), 0);
		peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		ck_assert_int_ge(peer, 0);
		ck_assert_int_eq(read(peer, got, sizeof(got)), 2);
		close(peer);
	}
	if (counting)
		formats = stop_counting();
	ck_assert_msg(formats == 0, "libringscope formatted text %ld times over 32 connects", formats);
	ck_assert_int_eq(t_fd_count(), before);
	close(lfd);
}

START_TEST(connects_format_no_text)
{
	connect_without_formatting(0, "connects_format_no_text");
}
END_TEST

START_TEST(connects_in_slots_format_no_text)
{
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 64, 16), 0); /* a connect into a slot is a chain */
	connect_without_formatting(RSC_DIRECT, "connects_in_slots_format_no_text");
}
END_TEST

Suite *make_hot_paths_suite(void)
{
	Suite *s = suite_create("hot_paths");
	TCase *tc = tcase_create("hot_paths");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	t_add_test_if(tc, served_connections_format_no_text, t_has_accept_multishot(),
		      "multishot accept (Linux 5.19)");
	t_add_test_if(tc, served_connections_in_slots_format_no_text,
		      t_has_accept_multishot() && t_kernel_has(IORING_OP_SOCKET),
		      "multishot accept into slots (Linux 5.19)");
	t_add_test_if(tc, single_shot_accepts_format_no_text, t_kernel_has(IORING_OP_SOCKET),
		      "IORING_OP_SOCKET (Linux 5.19)");
	t_add_test_if(tc, connects_format_no_text, t_kernel_has(IORING_OP_SOCKET),
		      "IORING_OP_SOCKET (Linux 5.19)");
	t_add_test_if(tc, connects_in_slots_format_no_text, t_kernel_has(IORING_OP_SOCKET),
		      "IORING_OP_SOCKET (Linux 5.19)");
	tcase_add_test(tc, keep_alive_requests_format_no_text);
	t_add_test_if(tc, keep_alive_multishot_requests_format_no_text, t_has_recv_multishot(),
		      "IORING_RECV_MULTISHOT (Linux 6.0)");
	suite_add_tcase(s, tc);
	return s;
}
