/* SPDX-License-Identifier: MIT */
/*
 * A TCP proxy written from the man pages only: a listener accepts clients
 * (rsc_accept, multishot); for each, a per-connection setup scope connects
 * to the backend (rsc_connect), and the backend's entry then moves into the
 * connection's long-lived scope (rsc_entry_move). Bytes are relayed both
 * ways with tracked I/O, under a deadline re-armed on every message; an idle
 * client is cut off by it. A side's end of stream is passed on as a
 * half-close (rsc_shutdown), and the other way keeps relaying: a client that
 * shuts down its sending side still gets its whole reply. Another thread stops the server with
 * rsc_loop_post + rsc_scope_close_graceful. Clients and the backend are
 * threads; every byte is counted and /proc/self/fd must end as it began.
 */
#include "prog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define CLIENTS 4
#define MSGS 40
#define IDLE_MS 300
#define PEERS (CLIENTS + 2) /* the clients, the idle one, the half-closing one */
#define HALF_LEN 5000
#define BUF 2048

struct conn;

struct dir {
	struct conn *c;
	struct rsc_entry *from, *to;
	char buf[BUF];
	unsigned len, off;
	unsigned long long bytes;
	bool eof;
};

struct conn {
	struct rsc_scope *scope, *setup;
	struct rsc_entry *client, *backend;
	struct dir up, down;
	int refs;
	bool closing, timed_out;
};

static struct rsc_loop *loop;
static struct rsc_scope *srv;
static struct sockaddr_in backend_addr;
static int backend_lfd, proxy_port;
static bool stopped;
static int accepted, accept_last = 1, timeouts, conns_freed;
static unsigned long long relayed_up, relayed_down;
static atomic_ullong backend_bytes, client_bytes;
static pthread_t echo_threads[PEERS];

static void conn_unref(struct conn *c)
{
	if (--c->refs == 0) {
		relayed_up += c->up.bytes;
		relayed_down += c->down.bytes;
		conns_freed++;
		free(c);
	}
}

/* One place closes a connection: EOF, an error, or its deadline. */
static void conn_close(struct conn *c)
{
	int r;

	if (c->closing)
		return;
	c->closing = true;
	r = rsc_scope_close(c->scope, NULL, NULL);
	PROG_CHECK(r == 0 || r == -EALREADY, "rsc_scope_close(conn) = %d", r);
}

static void relay_recv(struct dir *d);

/* The end of one way has been passed on: the connection ends with both. */
static void on_shut(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct dir *d = data;

	(void)e;
	(void)buf;
	if ((res < 0 && res != -ENOTCONN) || (d->c->up.eof && d->c->down.eof))
		conn_close(d->c);
}

static void on_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct dir *d = data;
	int r;

	(void)buf;
	if (res <= 0) {
		conn_close(d->c);
		return;
	}
	d->off += (unsigned)res;
	d->bytes += (unsigned)res;
	if (d->off < d->len) { /* a short send: the rest, from where it stopped */
		r = rsc_send(e, d->buf + d->off, d->len - d->off, 0, on_sent, d);
		if (r < 0)
			conn_close(d->c);
		return;
	}
	relay_recv(d);
}

static void on_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct dir *d = data;
	int r;

	(void)e;
	(void)buf;
	if (res == 0) { /* this way is done; the other goes on */
		d->eof = true;
		if (rsc_shutdown(d->to, SHUT_WR, on_shut, d) < 0)
			conn_close(d->c);
		return;
	}
	if (res < 0) { /* cancelled by the deadline or the unwind, or an error */
		conn_close(d->c);
		return;
	}
	/* A message: the connection is alive, its deadline starts over. */
	if (rsc_scope_set_deadline(d->c->scope, IDLE_MS, 0) < 0) {
		conn_close(d->c); /* it is unwinding already: its deadline passed */
		return;
	}
	d->len = (unsigned)res;
	d->off = 0;
	r = rsc_send(d->to, d->buf, d->len, 0, on_sent, d);
	if (r < 0)
		conn_close(d->c);
}

static void relay_recv(struct dir *d)
{
	if (rsc_recv(d->from, d->buf, BUF, 0, on_recv, d) < 0)
		conn_close(d->c);
}

static void on_setup_closed(struct rsc_scope *s, int status, const struct rsc_error *err,
			    void *data)
{
	(void)s;
	(void)err;
	PROG_CHECK(status == 0, "setup scope closed with %d", status);
	conn_unref(data);
}

/* The connection's scope is gone however it went: its state goes with it. */
static void on_conn_unwound(struct rsc_scope *s, int status, const struct rsc_error *err,
			    void *data)
{
	struct conn *c = data;

	(void)s;
	if (status == -ETIMEDOUT) {
		PROG_CHECK(err && strcmp(rsc_error_op(err), "deadline") == 0, "deadline error op '%s'",
			   err ? rsc_error_op(err) : "(none)");
		c->timed_out = true;
		timeouts++;
	} else {
		PROG_CHECK(status == 0, "connection scope ended with %d", status);
	}
	/* After a deadline the scope waits for its close. */
	if (rsc_scope_state(c->scope) == RSC_SCOPE_UNWOUND)
		conn_close(c);
	conn_unref(c);
}

static void on_backend(struct rsc_entry *be, int res, void *data)
{
	struct conn *c = data;
	int r;

	if (res >= 0 && !c->closing) {
		/* The pair belongs together from now on, in the long-lived scope. */
		r = rsc_entry_move(be, c->scope);
		PROG_CHECK(r == 0, "rsc_entry_move(backend) = %d", r);
		c->backend = be;
		c->up = (struct dir){ .c = c, .from = c->client, .to = be };
		c->down = (struct dir){ .c = c, .from = be, .to = c->client };
		relay_recv(&c->up);
		relay_recv(&c->down);
	} else {
		conn_close(c);
	}
	r = rsc_scope_close(c->setup, on_setup_closed, c);
	PROG_CHECK(r == 0, "rsc_scope_close(setup) = %d", r);
}

static void on_accept(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *ce,
		      void *data)
{
	struct conn *c;
	int r;

	(void)l;
	(void)data;
	accept_last = res;
	if (res < 0)
		return;
	accepted++;
	c = calloc(1, sizeof(*c));
	PROG_CHECK(c, "calloc");
	c->scope = cs;
	c->client = ce;
	c->refs = 2;
	PROG_CHECK(rsc_scope_on_close(cs, on_conn_unwound, c) == 0, "rsc_scope_on_close");
	PROG_CHECK(rsc_scope_set_deadline(cs, IDLE_MS, 0) == 0, "rsc_scope_set_deadline");
	r = rsc_scope_open(loop, NULL, "setup", &c->setup);
	PROG_CHECK(r == 0, "rsc_scope_open(setup) = %d", r);
	r = rsc_connect(c->setup, (struct sockaddr *)&backend_addr, sizeof(backend_addr), 1000, 0,
			&c->backend);
	PROG_CHECK(r == 0, "rsc_connect = %d", r);
	PROG_CHECK(rsc_entry_on_enter(c->backend, on_backend, c) == 0, "rsc_entry_on_enter");
}

static void on_srv_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	unsigned drained, cancelled, failed;

	(void)data;
	PROG_CHECK(rsc_scope_close_stats(s, &drained, &cancelled, &failed) == 0, "stats");
	if (err)
		rsc_error_print(err, stderr);
	PROG_CHECK(status == 0 && failed == 0, "server closed with %d, %u bad closes", status,
		   failed);
	stopped = true;
}

/* Runs on the loop's thread, posted by the stopper thread. */
static void stop(struct rsc_loop *l, void *arg)
{
	(void)l;
	(void)arg;
	PROG_CHECK(rsc_scope_close_graceful(srv, 1000, on_srv_closed, NULL) == 0, "graceful");
}

static void *echo_main(void *arg)
{
	int fd = (int)(long)arg;
	char buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		atomic_fetch_add(&backend_bytes, (unsigned long long)n);
		PROG_CHECK(write(fd, buf, (size_t)n) == n, "backend write");
	}
	close(fd);
	return NULL;
}

/* The backend accepts one connection per client, the idle one included. */
static void *backend_main(void *arg)
{
	int i, fd;

	(void)arg;
	for (i = 0; i < PEERS; i++) {
		fd = accept4(backend_lfd, NULL, NULL, SOCK_CLOEXEC);
		PROG_CHECK(fd >= 0, "backend accept");
		PROG_CHECK(pthread_create(&echo_threads[i], NULL, echo_main, (void *)(long)fd) == 0,
			   "echo thread");
	}
	close(backend_lfd);
	return NULL;
}

static int dial(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	PROG_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "dial");
	return fd;
}

static void *client_main(void *arg)
{
	int id = (int)(long)arg, fd = dial(proxy_port), i;
	char out[3000], in[3000];

	for (i = 0; i < MSGS; i++) {
		size_t len = (size_t)(i * 37 + id * 11) % sizeof(out) + 1, got = 0;
		ssize_t n;

		memset(out, 'a' + (i + id) % 26, len);
		PROG_CHECK(write(fd, out, len) == (ssize_t)len, "client write");
		while (got < len) {
			n = read(fd, in + got, len - got);
			PROG_CHECK(n > 0, "client read %zd after %zu of %zu", n, got, len);
			got += (size_t)n;
		}
		PROG_CHECK(memcmp(in, out, len) == 0, "client %d: message %d came back wrong", id, i);
		atomic_fetch_add(&client_bytes, len);
	}
	close(fd);
	return NULL;
}

/* Sends its request, shuts down its sending side, and reads the whole reply. */
static void *half_main(void *arg)
{
	static char out[HALF_LEN], in[HALF_LEN + 1];
	int fd = dial(proxy_port);
	size_t got = 0;
	ssize_t n;

	(void)arg;
	memset(out, 'h', sizeof(out));
	PROG_CHECK(write(fd, out, sizeof(out)) == (ssize_t)sizeof(out), "half write");
	PROG_CHECK(shutdown(fd, SHUT_WR) == 0, "shutdown");
	while ((n = read(fd, in + got, sizeof(in) - got)) > 0)
		got += (size_t)n;
	PROG_CHECK(n == 0 && got == HALF_LEN && !memcmp(in, out, HALF_LEN),
		   "the half-closed client got %zu of %d bytes (%zd)", got, HALF_LEN, n);
	atomic_fetch_add(&client_bytes, got);
	close(fd);
	return NULL;
}

/* Says nothing: the proxy's deadline must hang up on it. */
static void *idle_main(void *arg)
{
	struct timespec t0, t1;
	int fd = dial(proxy_port);
	char c;
	long ms;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	PROG_CHECK(read(fd, &c, 1) == 0, "the idle client expected EOF");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	PROG_CHECK(ms >= IDLE_MS - 20, "the idle client was cut after %ld ms", ms);
	close(fd);
	return NULL;
}

static void *stopper_main(void *arg)
{
	pthread_t *clients = arg;
	int i;

	for (i = 0; i < PEERS; i++)
		pthread_join(clients[i], NULL);
	PROG_CHECK(rsc_loop_post(loop, stop, NULL) == 0, "rsc_loop_post");
	return NULL;
}

int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	pthread_t backend, stopper, clients[PEERS];
	struct rsc_entry *lst;
	int fds0, r, i;

	prog_bound(20);
	fds0 = prog_count_fds();
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	backend_lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	PROG_CHECK(backend_lfd >= 0 && bind(backend_lfd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
			   listen(backend_lfd, 16) == 0 &&
			   getsockname(backend_lfd, (struct sockaddr *)&backend_addr, &alen) == 0,
		   "backend listener");
	PROG_CHECK(pthread_create(&backend, NULL, backend_main, NULL) == 0, "backend thread");

	r = rsc_loop_new(&loop, 256, 0);
	PROG_CHECK(r == 0, "rsc_loop_new = %d", r);
	PROG_CHECK(rsc_scope_open(loop, NULL, "proxy", &srv) == 0, "rsc_scope_open");
	r = rsc_listen(srv, (struct sockaddr *)&a, sizeof(a), 64, 0, &lst);
	PROG_CHECK(r == 0, "rsc_listen = %d", r);
	r = rsc_entry_wait(lst);
	PROG_CHECK(r >= 0, "rsc_entry_wait(listener) = %d", r);
	alen = sizeof(a);
	PROG_CHECK(rsc_entry_sockname(lst, (struct sockaddr *)&a, &alen) == 0, "sockname");
	proxy_port = ntohs(a.sin_port);
	r = rsc_accept(lst, RSC_ACCEPT_MULTISHOT, on_accept, NULL);
	PROG_CHECK(r == 0, "rsc_accept = %d", r);

	for (i = 0; i < CLIENTS; i++)
		PROG_CHECK(pthread_create(&clients[i], NULL, client_main, (void *)(long)i) == 0, "c");
	PROG_CHECK(pthread_create(&clients[CLIENTS], NULL, idle_main, NULL) == 0, "idle");
	PROG_CHECK(pthread_create(&clients[CLIENTS + 1], NULL, half_main, NULL) == 0, "half");
	PROG_CHECK(pthread_create(&stopper, NULL, stopper_main, clients) == 0, "stopper");

	while (!stopped) {
		r = prog_run_once(loop);
		PROG_CHECK(r >= 0, "rsc_loop_run = %d", r);
	}
	/* Nothing may be left: a setup scope or a connection would keep the loop busy. */
	PROG_CHECK(rsc_loop_alive(loop) == 0, "the loop still has work after the server closed");
	PROG_CHECK(rsc_loop_close(loop) == 0, "rsc_loop_close");
	pthread_join(stopper, NULL);
	pthread_join(backend, NULL);
	for (i = 0; i < PEERS; i++)
		pthread_join(echo_threads[i], NULL);

	PROG_CHECK(accepted == PEERS, "accepted %d", accepted);
	PROG_CHECK(accept_last == -ECANCELED, "the accept ended with %d", accept_last);
	PROG_CHECK(timeouts == 1, "%d connections timed out, not 1", timeouts);
	PROG_CHECK(conns_freed == PEERS, "%d connections freed", conns_freed);
	PROG_CHECK(relayed_up == client_bytes && relayed_down == client_bytes &&
			   backend_bytes == client_bytes,
		   "bytes: clients %llu, up %llu, down %llu, backend %llu",
		   (unsigned long long)client_bytes, relayed_up, relayed_down,
		   (unsigned long long)backend_bytes);
	if (prog_count_fds() != fds0) {
		prog_list_fds();
		PROG_CHECK(0, "descriptors: %d at the start, %d at the end", fds0, prog_count_fds());
	}
	printf("proxy: %d connections, %llu bytes each way, 1 cut off by its deadline\n",
	       accepted, relayed_up);
	return 0;
}
