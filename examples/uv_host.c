/* SPDX-License-Identifier: MIT */
/*
 * ringscope inside a libuv program: libuv owns the thread and its loop;
 * ringscope's loop is one descriptor libuv watches (uv_poll on rsc_loop_fd),
 * run with RSC_RUN_NOWAIT whenever it is readable. Beside it, libuv runs its
 * own timer and TCP echo server, while ringscope scopes open files and accept
 * connections. It ends by closing everything, and exits 0 only if every
 * descriptor it made is gone: run by `make check`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include <ringscope.h>

#define CLIENTS 5

static struct rsc_loop *rl;
static uv_poll_t rpoll;
static uv_timer_t ticker;
static uv_tcp_t echo_srv;
static struct rsc_scope *files, *server;
static int ticks, files_open, rsc_accepted, uv_echoed;
static int rsc_port, uv_port;
static bool stopping;

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

static void list_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char p[300], t[256];
	ssize_t n;

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
		n = readlink(p, t, sizeof(t) - 1);
		t[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "  fd %s -> %s\n", e->d_name, t);
	}
	if (d)
		closedir(d);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "uv_host: %s: %s (%s)\n", what, rsc_strerror(err), rsc_last_error());
	exit(1);
}

/* ringscope has work: run what is ready, never block libuv's thread. */
static void on_rsc_readable(uv_poll_t *p, int status, int events)
{
	(void)p;
	(void)events;
	if (status < 0 || rsc_loop_run(rl, RSC_RUN_NOWAIT) < 0)
		die("rsc_loop_run", -EIO);
}

static void on_file(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)data;
	if (res >= 0)
		files_open++;
}

static void on_conn(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *e,
		    void *data)
{
	(void)l;
	(void)e;
	(void)data;
	if (res < 0)
		return;
	rsc_accepted++;
	(void)rsc_scope_close(cs, NULL, NULL); /* served: closed through the ring */
}

/* A blocking client, run from a libuv timer: both servers answer it. */
static void connect_to(int port, bool echo)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("uv_host: connect");
		exit(1);
	}
	if (echo && write(fd, "ping", 4) != 4)
		exit(1);
	close(fd);
}

static void on_closed(uv_handle_t *h)
{
	free(h);
}

static void on_echo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	if (n > 0)
		uv_echoed++;
	free(buf->base);
	if (n < 0)
		uv_close((uv_handle_t *)s, on_closed);
}

static void alloc_buf(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
	(void)h;
	buf->base = malloc(n);
	buf->len = n;
}

static void on_uv_conn(uv_stream_t *srv, int status)
{
	uv_tcp_t *c = malloc(sizeof(*c));

	if (status < 0 || !c)
		exit(1);
	uv_tcp_init(srv->loop, c);
	if (uv_accept(srv, (uv_stream_t *)c) == 0)
		uv_read_start((uv_stream_t *)c, alloc_buf, on_echo_read);
	else
		uv_close((uv_handle_t *)c, on_closed);
}

static void on_rsc_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)data;
	if (status < 0 && err)
		rsc_error_print(err, stderr);
}

static void stop(void)
{
	stopping = true;
	uv_timer_stop(&ticker);
	(void)rsc_scope_close(files, on_rsc_closed, NULL);
	(void)rsc_scope_close(server, on_rsc_closed, NULL);
	uv_close((uv_handle_t *)&echo_srv, NULL);
	uv_close((uv_handle_t *)&ticker, NULL);
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
	ticks++;
	if (ticks <= CLIENTS) {
		connect_to(rsc_port, false);
		connect_to(uv_port, true);
		return;
	}
	if (files_open == 3 && rsc_accepted == CLIENTS && uv_echoed == CLIENTS)
		stop();
	else if (ticks > 500) {
		fprintf(stderr, "uv_host: stuck: %d files, %d rsc accepts, %d uv echoes\n",
			files_open, rsc_accepted, uv_echoed);
		exit(1);
	}
}

/* ringscope's work is done: stop watching its descriptor so libuv can end. */
static void on_check(uv_check_t *c)
{
	if (stopping && rsc_loop_alive(rl) == 0) {
		uv_poll_stop(&rpoll);
		uv_close((uv_handle_t *)&rpoll, NULL);
		uv_close((uv_handle_t *)c, NULL);
	}
}

int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	struct rsc_entry *l, *f;
	uv_loop_t *uv = uv_default_loop();
	uv_check_t check;
	char path[64];
	int before, ret, i;

	/* libuv first: a TCP echo server (its listen also reserves a spare
	 * descriptor for EMFILE), so what is counted next is libuv's own. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	uv_tcp_init(uv, &echo_srv);
	if (uv_tcp_bind(&echo_srv, (struct sockaddr *)&a, 0) < 0 ||
	    uv_listen((uv_stream_t *)&echo_srv, 16, on_uv_conn) < 0)
		return 1;
	uv_tcp_getsockname(&echo_srv, (struct sockaddr *)&a, (int *)&len);
	uv_port = ntohs(a.sin_port);
	a.sin_port = 0;
	before = count_fds() - 1; /* less the echo server's socket, closed by stop() */

	ret = rsc_loop_new(&rl, 64, RSC_LOOP_POLLABLE);
	if (ret < 0) {
		printf("SKIP uv_host: %s\n", rsc_last_error());
		return 77;
	}
	uv_poll_init(uv, &rpoll, rsc_loop_fd(rl));
	uv_poll_start(&rpoll, UV_READABLE, on_rsc_readable);
	uv_check_init(uv, &check);
	uv_check_start(&check, on_check);

	/* ringscope: three files and a listener, acquired on its ring. */
	if ((ret = rsc_scope_open(rl, NULL, "files", &files)) < 0)
		die("rsc_scope_open", ret);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "/proc/self/%s", i == 0 ? "status" : i == 1 ? "maps" : "stat");
		if ((ret = rsc_open(files, AT_FDCWD, path, O_RDONLY, 0, 0, &f)) < 0 ||
		    (ret = rsc_entry_on_enter(f, on_file, NULL)) < 0)
			die("rsc_open", ret);
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((ret = rsc_scope_open(rl, NULL, "server", &server)) < 0 ||
	    (ret = rsc_listen(server, (struct sockaddr *)&a, sizeof(a), 16, 0, &l)) < 0)
		die("rsc_listen", ret);
	/* Until the listener has entered, libuv turns and wakes us through the fd. */
	while (rsc_entry_state(l) == RSC_ENTERING)
		uv_run(uv, UV_RUN_ONCE);
	if ((ret = rsc_entry_fd(l)) < 0)
		die("listen", ret);
	getsockname(ret, (struct sockaddr *)&a, &len);
	rsc_port = ntohs(a.sin_port);
	if ((ret = rsc_accept(l, RSC_ACCEPT_MULTISHOT, on_conn, NULL)) < 0)
		die("rsc_accept", ret);

	uv_timer_init(uv, &ticker);
	uv_timer_start(&ticker, on_tick, 5, 5);

	uv_run(uv, UV_RUN_DEFAULT);
	if ((ret = rsc_loop_close(rl)) < 0)
		die("rsc_loop_close", ret);
	printf("uv_host: %d files, %d connections through ringscope, %d echoes through libuv, %d ticks\n",
	       files_open, rsc_accepted, uv_echoed, ticks);
	/* Every descriptor either loop made for this program is gone. */
	ret = count_fds();
	if (uv_loop_close(uv) < 0 || ret != before) {
		fprintf(stderr, "uv_host: %d descriptors at start, %d at the end:\n", before, ret);
		list_fds();
		return 1;
	}
	return 0;
}
