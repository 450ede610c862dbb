/* SPDX-License-Identifier: MIT */
/*
 * A library embedded in a libuv program, written from the man pages only.
 * libuv owns the thread: its timer, its TCP echo server and its TCP clients
 * run beside a ringscope loop it polls (uv_poll on rsc_loop_fd, then
 * rsc_loop_run with RSC_RUN_NOWAIT). Inside ringscope: a scope of files read
 * through the ring, a server whose connections echo upper-cased what libuv's
 * clients send, a client of libuv's server (rsc_connect from the same
 * thread: nothing may block), and a file opened by a function libuv's thread
 * pool posts (rsc_loop_post). It shuts down cleanly with nothing left open.
 */
#include "prog.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include <uv.h>

#define CLIENTS 5

struct echo_conn {
	struct rsc_scope *scope;
	struct rsc_entry *e;
	char buf[256];
	int len;
};

static uv_loop_t *uv;
static struct rsc_loop *rl;
static uv_poll_t rpoll;
static uv_timer_t ticker;
static uv_check_t checker;
static uv_tcp_t uv_srv;
static uv_work_t work;
static struct rsc_scope *files, *server, *outbound;
static struct rsc_entry *out_conn;
static int rsc_port, uv_port, ticks;
static int files_read, uv_replies_ok, rsc_served, uv_echoed, outbound_ok, posted_open;
static int closes_pending;
static bool stopping, rsc_done;
static char file_buf[4][128], out_buf[16];
static const char *const file_text[3] = { "alpha\n", "beta beta\n", "gamma gamma gamma\n" };

static void on_rsc_readable(uv_poll_t *p, int status, int events)
{
	int r;

	(void)p;
	(void)events;
	PROG_CHECK(status == 0, "uv_poll status %d", status);
	r = rsc_loop_run(rl, RSC_RUN_NOWAIT);
	PROG_CHECK(r >= 0, "rsc_loop_run = %d", r);
}

/* ---- ringscope side ---- */

static void on_file_read(struct rsc_entry *e, int res, void *buf, void *data)
{
	int i = (int)(long)data;

	(void)e;
	PROG_CHECK(res == (int)strlen(file_text[i % 3]) && !memcmp(buf, file_text[i % 3], (size_t)res),
		   "file %d read %d", i, res);
	files_read++;
}

static void on_file_open(struct rsc_entry *e, int res, void *data)
{
	int i = (int)(long)data;

	PROG_CHECK(res >= 0, "open file %d: %d", i, res);
	PROG_CHECK(rsc_read(e, file_buf[i], sizeof(file_buf[i]), 0, on_file_read, data) == 0,
		   "rsc_read");
}

static void echo_recv(struct echo_conn *c);

static void on_echo_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct echo_conn *c = data;

	(void)e;
	(void)buf;
	if (res != c->len) {
		(void)rsc_scope_close(c->scope, NULL, NULL);
		return;
	}
	echo_recv(c);
}

static void on_echo_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct echo_conn *c = data;
	int i;

	(void)buf;
	if (res <= 0) { /* the client is done (or the server is closing) */
		if (res == 0)
			rsc_served++;
		(void)rsc_scope_close(c->scope, NULL, NULL);
		return;
	}
	for (i = 0; i < res; i++)
		c->buf[i] = (char)toupper((unsigned char)c->buf[i]);
	c->len = res;
	if (rsc_send(e, c->buf, (unsigned)res, 0, on_echo_sent, c) < 0)
		(void)rsc_scope_close(c->scope, NULL, NULL);
}

static void echo_recv(struct echo_conn *c)
{
	if (rsc_recv(c->e, c->buf, sizeof(c->buf), 0, on_echo_recv, c) < 0)
		(void)rsc_scope_close(c->scope, NULL, NULL);
}

static void on_echo_gone(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)err;
	PROG_CHECK(status == 0, "a served connection ended with %d", status);
	free(data);
}

static void on_rsc_conn(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *e,
			void *data)
{
	struct echo_conn *c;

	(void)l;
	(void)data;
	if (res < 0)
		return;
	c = calloc(1, sizeof(*c));
	PROG_CHECK(c, "calloc");
	c->scope = cs;
	c->e = e;
	PROG_CHECK(rsc_scope_on_close(cs, on_echo_gone, c) == 0, "rsc_scope_on_close");
	echo_recv(c);
}

static void on_out_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)data;
	PROG_CHECK(res == 4 && !memcmp(buf, "ping", 4), "libuv's echo came back as %d", res);
	outbound_ok = 1;
	PROG_CHECK(rsc_scope_close(outbound, NULL, NULL) == 0, "close outbound");
}

static void on_out_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)buf;
	(void)data;
	PROG_CHECK(res == 4, "send to libuv: %d", res);
	PROG_CHECK(rsc_recv(e, out_buf, sizeof(out_buf), 0, on_out_recv, NULL) == 0, "rsc_recv");
}

static void on_out_connected(struct rsc_entry *e, int res, void *data)
{
	(void)data;
	PROG_CHECK(res >= 0, "rsc_connect to libuv's server: %d", res);
	PROG_CHECK(rsc_send(e, "ping", 4, 0, on_out_sent, NULL) == 0, "rsc_send");
}

/* Posted by libuv's thread pool: runs on the loop's thread. */
static void open_posted(struct rsc_loop *loop, void *arg)
{
	struct rsc_entry *e;

	(void)loop;
	PROG_CHECK(rsc_open(files, AT_FDCWD, arg, O_RDONLY, 0, 0, &e) == 0, "posted rsc_open");
	PROG_CHECK(rsc_entry_on_enter(e, on_file_open, (void *)3L) == 0, "on_enter");
	posted_open = 1;
}

static void do_work(uv_work_t *w)
{
	PROG_CHECK(rsc_loop_post(rl, open_posted, w->data) == 0, "rsc_loop_post");
}

static void after_work(uv_work_t *w, int status)
{
	(void)w;
	PROG_CHECK(status == 0, "uv work %d", status);
}

/* ---- libuv side ---- */

struct uv_client {
	uv_tcp_t tcp;
	uv_connect_t req;
	uv_write_t wreq;
	char out[32], in[64];
	size_t inlen;
};

static void alloc_cb(uv_handle_t *h, size_t n, uv_buf_t *b)
{
	(void)h;
	b->base = malloc(n);
	b->len = n;
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct uv_client *c = (struct uv_client *)s;
	size_t want = strlen(c->out), i;

	if (n > 0) {
		memcpy(c->in + c->inlen, b->base, (size_t)n);
		c->inlen += (size_t)n;
	}
	free(b->base);
	if (n < 0 || c->inlen >= want) {
		for (i = 0; i < want && c->inlen == want; i++)
			if (c->in[i] != toupper((unsigned char)c->out[i]))
				break;
		uv_replies_ok += c->inlen == want && i == want;
		uv_close((uv_handle_t *)s, free_handle); /* ringscope's recv sees EOF */
	}
}

static void on_client_connected(uv_connect_t *req, int status)
{
	struct uv_client *c = req->data;
	uv_buf_t b = uv_buf_init(c->out, (unsigned)strlen(c->out));

	PROG_CHECK(status == 0, "libuv connect: %s", uv_strerror(status));
	uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, NULL);
	uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_client_read);
}

static void start_uv_client(int n)
{
	struct uv_client *c = calloc(1, sizeof(*c));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(rsc_port) };

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	PROG_CHECK(c, "calloc");
	snprintf(c->out, sizeof(c->out), "hello number %d", n);
	uv_tcp_init(uv, &c->tcp);
	c->req.data = c;
	PROG_CHECK(uv_tcp_connect(&c->req, &c->tcp, (struct sockaddr *)&a, on_client_connected) == 0,
		   "uv_tcp_connect");
}

static void on_uv_echo(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	if (n > 0) {
		uv_buf_t out = uv_buf_init(b->base, (unsigned)n);

		uv_try_write(s, &out, 1);
		uv_echoed++;
	}
	free(b->base);
	if (n < 0)
		uv_close((uv_handle_t *)s, free_handle);
}

static void on_uv_conn(uv_stream_t *srv, int status)
{
	uv_tcp_t *c = malloc(sizeof(*c));

	PROG_CHECK(status == 0 && c, "libuv accept");
	uv_tcp_init(uv, c);
	PROG_CHECK(uv_accept(srv, (uv_stream_t *)c) == 0, "uv_accept");
	uv_read_start((uv_stream_t *)c, alloc_cb, on_uv_echo);
}

static void on_rsc_scope_closed(struct rsc_scope *s, int status, const struct rsc_error *err,
				void *data)
{
	(void)s;
	(void)data;
	if (err)
		rsc_error_print(err, stderr);
	PROG_CHECK(status == 0, "a ringscope scope closed with %d", status);
	closes_pending--;
}

static void stop(void)
{
	stopping = true;
	uv_timer_stop(&ticker);
	closes_pending = 2;
	PROG_CHECK(rsc_scope_close(files, on_rsc_scope_closed, NULL) == 0, "close files");
	PROG_CHECK(rsc_scope_close_graceful(server, 500, on_rsc_scope_closed, NULL) == 0,
		   "close server");
	uv_close((uv_handle_t *)&uv_srv, NULL);
	uv_close((uv_handle_t *)&ticker, NULL);
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
	ticks++;
	if (ticks <= CLIENTS) {
		start_uv_client(ticks);
		return;
	}
	if (files_read == 4 && uv_replies_ok == CLIENTS && rsc_served == CLIENTS && outbound_ok &&
	    rsc_scope_state(outbound) < 0)
		stop();
	else
		PROG_CHECK(ticks < 800, "stuck: %d files, %d uv replies, %d served, outbound %d",
			   files_read, uv_replies_ok, rsc_served, outbound_ok);
}

/* ringscope is done: stop watching its descriptor, and libuv can end. */
static void on_check(uv_check_t *c)
{
	if (stopping && closes_pending == 0 && rsc_loop_alive(rl) == 0 && !rsc_done) {
		rsc_done = true;
		uv_poll_stop(&rpoll);
		uv_close((uv_handle_t *)&rpoll, NULL);
		uv_close((uv_handle_t *)c, NULL);
	}
}

int main(void)
{
	char dir[] = "/tmp/rsc-uvembed-XXXXXX", path[4][80];
	struct sockaddr_in a = { .sin_family = AF_INET };
	int alen = sizeof(a), before, r, i, fd;
	struct rsc_entry *l, *f;

	prog_bound(20);
	{ /* libuv's process-wide signal pipe stays for good: made before counting */
		uv_loop_t once;

		PROG_CHECK(uv_loop_init(&once) == 0 && uv_loop_close(&once) == 0, "uv_loop_init");
	}
	before = prog_count_fds(); /* a loop's own are gone after uv_loop_close */
	PROG_CHECK(mkdtemp(dir), "mkdtemp");
	for (i = 0; i < 4; i++) {
		snprintf(path[i], sizeof(path[i]), "%s/f%d", dir, i);
		fd = open(path[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		PROG_CHECK(fd >= 0, "create");
		PROG_CHECK(write(fd, file_text[i % 3], strlen(file_text[i % 3])) > 0, "write");
		close(fd);
	}
	uv = uv_default_loop();
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	uv_tcp_init(uv, &uv_srv);
	PROG_CHECK(uv_tcp_bind(&uv_srv, (struct sockaddr *)&a, 0) == 0 &&
			   uv_listen((uv_stream_t *)&uv_srv, 16, on_uv_conn) == 0,
		   "libuv server");
	uv_tcp_getsockname(&uv_srv, (struct sockaddr *)&a, &alen);
	uv_port = ntohs(a.sin_port);

	r = rsc_loop_new(&rl, 64, RSC_LOOP_POLLABLE);
	if (r < 0) {
		printf("SKIP uvembed: %s\n", rsc_last_error());
		return 77;
	}
	PROG_CHECK(rsc_loop_features(rl) & RSC_FEAT_POLLABLE, "not pollable");
	uv_poll_init(uv, &rpoll, rsc_loop_fd(rl));
	uv_poll_start(&rpoll, UV_READABLE, on_rsc_readable);
	uv_check_init(uv, &checker);
	uv_check_start(&checker, on_check);

	PROG_CHECK(rsc_scope_open(rl, NULL, "files", &files) == 0, "scope files");
	for (i = 0; i < 3; i++) {
		PROG_CHECK(rsc_open(files, AT_FDCWD, path[i], O_RDONLY, 0, 0, &f) == 0, "rsc_open");
		PROG_CHECK(rsc_entry_on_enter(f, on_file_open, (void *)(long)i) == 0, "on_enter");
	}
	PROG_CHECK(rsc_scope_open(rl, NULL, "server", &server) == 0, "scope server");
	a.sin_port = 0;
	PROG_CHECK(rsc_listen(server, (struct sockaddr *)&a, sizeof(a), 16, 0, &l) == 0, "listen");
	while (rsc_entry_state(l) == RSC_ENTERING) /* libuv turns; the fd wakes it */
		uv_run(uv, UV_RUN_ONCE);
	alen = sizeof(a);
	PROG_CHECK(rsc_entry_sockname(l, (struct sockaddr *)&a, (socklen_t *)&alen) == 0, "sockname");
	rsc_port = ntohs(a.sin_port);
	PROG_CHECK(rsc_accept(l, RSC_ACCEPT_MULTISHOT, on_rsc_conn, NULL) == 0, "rsc_accept");

	PROG_CHECK(rsc_scope_open(rl, NULL, "outbound", &outbound) == 0, "scope outbound");
	a.sin_port = htons(uv_port);
	PROG_CHECK(rsc_connect(outbound, (struct sockaddr *)&a, sizeof(a), 1000, 0, &out_conn) == 0,
		   "rsc_connect");
	PROG_CHECK(rsc_entry_on_enter(out_conn, on_out_connected, NULL) == 0, "on_enter");

	/* A file whose open libuv's thread pool hands to the loop. */
	work.data = path[3];
	PROG_CHECK(uv_queue_work(uv, &work, do_work, after_work) == 0, "uv_queue_work");
	/* The posted open lands in "files"; its read follows its enter. */
	uv_timer_init(uv, &ticker);
	uv_timer_start(&ticker, on_tick, 5, 5);

	uv_run(uv, UV_RUN_DEFAULT);
	PROG_CHECK(rsc_done, "libuv ended before ringscope was done");
	PROG_CHECK(rsc_loop_close(rl) == 0, "rsc_loop_close");
	PROG_CHECK(uv_loop_close(uv) == 0, "uv_loop_close");
	for (i = 0; i < 4; i++)
		unlink(path[i]);
	rmdir(dir);
	if (prog_count_fds() != before) {
		prog_list_fds();
		PROG_CHECK(0, "descriptors: %d at the start, %d at the end", before, prog_count_fds());
	}
	printf("uvembed: %d files, %d libuv clients served by ringscope, %d echoes by libuv\n",
	       files_read, rsc_served, uv_echoed);
	return 0;
}
