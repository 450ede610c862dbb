/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <ringscope.h>

#include "http.h"

/*
 * One loop, one thread, one tree of scopes:
 *
 *   scope "httpd"
 *     entry "adopt"      the read end of the signal pipe (a read always in flight)
 *     entry "listen"     the listener (a multishot accept in flight)
 *     entry "timer"      the grace deadline, once shutting down
 *     scope "conn" ...   one per connection: entry "conn" owns its descriptor,
 *                        with its recv or send and its idle timeout in flight
 *
 * Closing a connection's scope cancels its I/O, waits for it, then closes the
 * descriptor; closing "httpd" does that for everything left. No code here
 * closes a descriptor that the runtime owns.
 */

struct conn {
	struct server *srv;
	struct conn *prev, *next;
	struct rsc_scope *scope;
	struct rsc_entry *e;
	long long last_ms; /* last activity, for the idle timeout */
	unsigned len;	   /* bytes in buf */
	bool closing, close_after, sending;
	const char *out; /* the response being sent, and how far */
	unsigned out_len, out_off;
	char *metrics_out; /* GET /metrics: the response, ours until it is sent */
	char buf[HTTP_HEADER_MAX];
};

struct server {
	struct rsc_loop *loop;
	struct rsc_scope *root;
	struct rsc_entry *listener, *sigpipe;
	struct conn *conns; /* open, newest first */
	int listen_fd, sig_rfd;
	unsigned idle_ms, grace_ms, max_conns;
	const char *unix_path;
	bool stopping, accepting, root_closing, metrics;
	int root_status;
	unsigned char sigbuf[16];
	/* For the summary. */
	unsigned long long accepted, closed, refused, idle_closed, cut, served,
		by_status[HTTP__COUNT];
	unsigned conn_fds, peak_conn_fds;
	int fds_start, fds_peak, fds_peak_err; /* the error of a count that failed, or 0 */
};

static int sig_wfd = -1; /* the signal handler's end of the pipe */

static void conn_serve(struct conn *c);
static void close_root(struct server *srv);

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void warn(const char *what, int err)
{
	fprintf(stderr, "ringscope-httpd: %s: %s (%s)\n", what, rsc_strerror(err),
		rsc_last_error());
}

/* Its close callback frees it: by then its I/O has completed and handed its buffer back. */
static void on_conn_closed(struct rsc_scope *scope, int status,
			   const struct rsc_error *err, void *data)
{
	struct conn *c = data;
	struct server *srv = c->srv;

	(void)scope;
	if (status < 0 && err)
		rsc_error_print(err, stderr);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->metrics_out);
	free(c);
	srv->closed++;
	srv->conn_fds--;
	if (srv->stopping && !srv->accepting && srv->conn_fds == 0)
		close_root(srv);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	/* -EALREADY: "httpd" is unwinding and takes it along; counted at the end. */
	(void)rsc_scope_close(c->scope, on_conn_closed, c);
}

static void on_idle(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct conn *c = data;
	long long idle = now_ms() - c->last_ms;

	(void)buf;
	if (res != -ETIME || c->closing)
		return; /* -ECANCELED: the connection's release removed it */
	if (idle >= c->srv->idle_ms) {
		c->srv->idle_closed++;
		conn_close(c);
	} else if ((res = rsc_timeout(e, (unsigned)(c->srv->idle_ms - idle), on_idle, c)) < 0) {
		warn("rsc_timeout", res);
		conn_close(c);
	}
}

static void on_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct conn *c = data;

	(void)buf;
	c->sending = false;
	if (res <= 0 || c->closing) {
		conn_close(c);
		return;
	}
	c->last_ms = now_ms();
	c->out_off += (unsigned)res;
	if (c->out_off < c->out_len) { /* a short send: the rest */
		if (rsc_send(e, c->out + c->out_off, c->out_len - c->out_off, 0, on_sent, c) < 0)
			conn_close(c);
		else
			c->sending = true;
	} else if (c->close_after) {
		conn_close(c);
	} else {
		conn_serve(c); /* a pipelined request may be waiting in buf */
	}
}

static void on_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct conn *c = data;

	(void)e;
	(void)buf;
	if (res <= 0 || c->closing) { /* the peer left, an error, or cancelled */
		conn_close(c);
		return;
	}
	c->last_ms = now_ms();
	c->len += (unsigned)res;
	conn_serve(c);
}

/* --metrics: the loop's metrics (rsc_loop_metrics) as a response, or NULL. */
static char *metrics_response(struct conn *c, unsigned *len)
{
	char *body = NULL, *resp = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&body, &blen);
	int n;

	if (!f)
		return NULL;
	n = rsc_loop_metrics(c->srv->loop, f);
	fclose(f);
	if (n == 0)
		n = asprintf(&resp, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
			     "Content-Length: %zu\r\n%s\r\n%s", blen,
			     c->close_after ? "Connection: close\r\n" : "", body);
	free(body);
	if (n < 0)
		return NULL;
	*len = (unsigned)n;
	return resp;
}

/* Answer the request at the head of buf, or wait for more of it. */
static void conn_serve(struct conn *c)
{
	struct server *srv = c->srv;
	struct http_request req;
	int ret;

	if (!http_parse(c->buf, c->len, &req)) {
		if (srv->stopping && c->len == 0) {
			conn_close(c); /* between requests: nothing in flight to finish */
			return;
		}
		ret = rsc_recv(c->e, c->buf + c->len, sizeof(c->buf) - c->len, 0, on_recv, c);
		if (ret < 0)
			conn_close(c);
		return;
	}
	srv->served++;
	c->close_after = req.close || srv->stopping;
	free(c->metrics_out);
	c->metrics_out = NULL;
	if (srv->metrics && req.status == HTTP_404 && !strncmp(c->buf, "GET /metrics ", 13) &&
	    (c->metrics_out = metrics_response(c, &c->out_len)))
		req.status = HTTP_200;
	srv->by_status[req.status]++;
	c->len -= (unsigned)req.len;
	memmove(c->buf, c->buf + req.len, c->len);
	if (c->metrics_out)
		c->out = c->metrics_out;
	else
		c->out = http_response(req.status, c->close_after, &c->out_len);
	c->out_off = 0;
	if (rsc_send(c->e, c->out, c->out_len, 0, on_sent, c) < 0)
		conn_close(c);
	else
		c->sending = true;
}

/*
 * /proc/self/fd, opened once at start and kept (counted like any descriptor):
 * at the peak, the table may be full to RLIMIT_NOFILE, with no descriptor left
 * to open it then.
 */
static DIR *fd_dir;

static int count_open_fds(void)
{
	struct dirent *d;
	int n = 0;

	if (!fd_dir)
		return -ENOENT;
	rewinddir(fd_dir); /* procfs lists the table afresh */
	errno = 0;
	while ((d = readdir(fd_dir)))
		n += d->d_name[0] != '.';
	return errno ? -errno : n;
}

static void count_fds(struct server *srv)
{
	int n;

	if (++srv->conn_fds <= srv->peak_conn_fds)
		return;
	/* A new peak: count what is really open, from /proc/self/fd. */
	srv->peak_conn_fds = srv->conn_fds;
	n = count_open_fds();
	if (n < 0)
		srv->fds_peak_err = n;
	else if (n > srv->fds_peak)
		srv->fds_peak = n;
}

static void on_refused_closed(struct rsc_scope *scope, int status,
			      const struct rsc_error *err, void *data)
{
	struct server *srv = data;

	(void)scope;
	(void)status;
	(void)err;
	srv->closed++;
	srv->conn_fds--;
	if (srv->stopping && !srv->accepting && srv->conn_fds == 0)
		close_root(srv);
}

static void on_accept(struct rsc_entry *l, int fd, struct rsc_scope *cs,
		      struct rsc_entry *ce, void *data)
{
	struct server *srv = data;
	struct conn *c;
	int ret;

	(void)l;
	if (fd < 0) {
		/* -ECANCELED is the end; a shortage (EMFILE...) is re-armed by the runtime. */
		if (fd != -ECANCELED)
			warn("accept", fd);
		return;
	}
	srv->accepted++;
	count_fds(srv);
	c = NULL;
	if (!srv->stopping && srv->conn_fds <= srv->max_conns)
		c = malloc(sizeof(*c));
	if (!c) {
		/* Over --max-conns, or stopping: accept, then close at once. */
		if (!srv->stopping)
			srv->refused++;
		(void)rsc_scope_close(cs, on_refused_closed, srv);
		return;
	}
	memset(c, 0, offsetof(struct conn, buf)); /* not the 8 KiB buffer: 4% of a short connection */
	c->srv = srv;
	c->scope = cs;
	c->e = ce;
	c->last_ms = now_ms();
	c->next = srv->conns;
	if (c->next)
		c->next->prev = c;
	srv->conns = c;
	if (srv->idle_ms && (ret = rsc_timeout(ce, srv->idle_ms, on_idle, c)) < 0)
		warn("rsc_timeout", ret);
	conn_serve(c);
}

/* The listener's accept has ended: nothing more comes in. */
static void on_listener_released(struct rsc_entry *e, int res, void *data)
{
	struct server *srv = data;

	(void)e;
	(void)res;
	srv->accepting = false;
	/* Its release closed the listening socket: new clients are refused. */
	if (srv->root_closing)
		return;
	if (srv->unix_path)
		unlink(srv->unix_path);
	if (srv->conn_fds == 0)
		close_root(srv);
}

static void on_grace_over(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct server *srv = data;
	struct conn *c;

	(void)e;
	(void)buf;
	if (res != -ETIME)
		return;
	for (c = srv->conns; c; c = c->next)
		srv->cut++;
	if (srv->cut)
		fprintf(stderr, "ringscope-httpd: grace period over: closing %llu connections\n",
			srv->cut);
	close_root(srv);
}

static void begin_shutdown(struct server *srv)
{
	struct conn *c, *next;
	int ret;

	srv->stopping = true;
	if ((ret = rsc_entry_release(srv->listener, on_listener_released, srv)) < 0)
		warn("releasing the listener", ret);
	/* Idle ones close now; one mid-request gets its response, then closes. */
	for (c = srv->conns; c; c = next) {
		next = c->next;
		if (c->len == 0 && !c->sending)
			conn_close(c);
	}
	if ((ret = rsc_timer(srv->root, srv->grace_ms, on_grace_over, srv, NULL)) < 0) {
		warn("rsc_timer", ret);
		close_root(srv);
	}
}

static void on_root_closed(struct rsc_scope *scope, int status,
			   const struct rsc_error *err, void *data)
{
	struct server *srv = data;

	(void)scope;
	srv->root_status = status;
	if (err)
		rsc_error_print(err, stderr);
}

/* Last: the connections left (their own callbacks count them), then the rest. */
static void close_root(struct server *srv)
{
	struct conn *c, *next;

	if (srv->root_closing)
		return;
	srv->root_closing = true;
	for (c = srv->conns; c; c = next) {
		next = c->next;
		conn_close(c);
	}
	(void)rsc_scope_close(srv->root, on_root_closed, srv);
}

static void on_signal(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct server *srv = data;

	(void)buf;
	if (res <= 0 || srv->root_closing)
		return; /* -ECANCELED: "httpd" is closing */
	fprintf(stderr, "ringscope-httpd: %s: %s\n", strsignal(srv->sigbuf[res - 1]),
		srv->stopping ? "closing now" : "shutting down");
	if (srv->stopping) {
		close_root(srv);
		return;
	}
	begin_shutdown(srv);
	if ((res = rsc_read(e, srv->sigbuf, sizeof(srv->sigbuf), -1, on_signal, srv)) < 0)
		warn("rsc_read", res);
}

static void on_signal_raised(int signo)
{
	unsigned char b = (unsigned char)signo;
	int saved = errno;

	(void)!write(sig_wfd, &b, 1);
	errno = saved;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ringscope-httpd [--addr ADDR] [--port PORT] [--unix PATH]\n"
		"           [--audit off|released|full] [--max-conns N]\n"
		"           [--idle-timeout MS] [--grace MS] [--metrics]\n"
		"A small HTTP/1.1 server on ringscope: GET / answers 200 with a fixed body.\n"
		"  --addr ADDR        IPv4 or IPv6 address to listen on (127.0.0.1)\n"
		"  --port PORT        TCP port, 0 for one the kernel picks (8080)\n"
		"  --unix PATH        listen on a Unix stream socket instead\n"
		"  --audit LEVEL      ringscope's audit level (released)\n"
		"  --max-conns N      connections beyond N are closed at once (1024)\n"
		"  --idle-timeout MS  close a connection idle that long, 0: never (30000)\n"
		"  --grace MS         on SIGINT/SIGTERM, let requests finish this long (5000)\n"
		"  --metrics          GET /metrics answers ringscope's metrics (Prometheus text)\n"
		"Prints 'listening on ADDR:PORT', and a lifecycle summary at exit.\n");
}

static unsigned number(const char *s, const char *opt)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v > UINT_MAX) {
		fprintf(stderr, "ringscope-httpd: %s: not a number: %s\n", opt, s);
		exit(2);
	}
	return (unsigned)v;
}

static socklen_t parse_addr(const char *addr, unsigned port, const char *path,
			    struct sockaddr_storage *ss)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_un *un = (struct sockaddr_un *)ss;

	memset(ss, 0, sizeof(*ss));
	if (path) {
		if (strlen(path) >= sizeof(un->sun_path)) {
			fprintf(stderr, "ringscope-httpd: --unix: path too long\n");
			exit(2);
		}
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, path);
		return sizeof(*un);
	}
	if (port > 65535) {
		fprintf(stderr, "ringscope-httpd: --port: %u is out of range\n", port);
		exit(2);
	}
	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((unsigned short)port);
		return sizeof(*in);
	}
	if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((unsigned short)port);
		return sizeof(*in6);
	}
	fprintf(stderr, "ringscope-httpd: --addr: not an IPv4 or IPv6 address: %s\n", addr);
	exit(2);
}

static void print_bound(int fd, const char *path)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";

	if (path) {
		printf("listening on unix:%s\n", path);
	} else if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
		   ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		printf("listening on [%s]:%u\n", host, ntohs(in6->sin6_port));
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		printf("listening on %s:%u\n", host, ntohs(in->sin_port));
	}
	fflush(stdout);
}

/* Acquire the scope's first entries and start accepting; 0 or -errno. */
static int start(struct server *srv, const struct sockaddr_storage *ss, socklen_t len)
{
	int ret;

	/* The signal pipe's read end, made by pipe2: the scope owns it from here. */
	if ((ret = rsc_adopt(srv->root, srv->sig_rfd, 0, &srv->sigpipe)) < 0)
		return ret;
	srv->sig_rfd = -1;
	if ((ret = rsc_listen(srv->root, (const struct sockaddr *)ss, len, 4096, 0,
			      &srv->listener)) < 0)
		return ret;
	/* A failure unwinds "httpd", the pipe's read end with it. */
	if ((ret = rsc_entry_wait(srv->listener)) < 0)
		return ret;
	srv->listen_fd = ret;
	if ((ret = rsc_read(srv->sigpipe, srv->sigbuf, sizeof(srv->sigbuf), -1, on_signal,
			    srv)) < 0 ||
	    (ret = rsc_accept(srv->listener, RSC_ACCEPT_MULTISHOT, on_accept, srv)) < 0)
		return ret;
	srv->accepting = true;
	return 0;
}

static void summary(struct server *srv, const long long *ctr, int fds_exit, int findings,
		    int level)
{
	static const char *const levels[] = { "off", "released", "full" };
	int i;

	printf("connections: accepted %llu, closed %llu, refused %llu (--max-conns), "
	       "idle timeouts %llu, cut at the deadline %llu\n",
	       srv->accepted, srv->closed, srv->refused, srv->idle_closed, srv->cut);
	printf("requests: %llu served (", srv->served);
	for (i = 0; i < HTTP__COUNT; i++)
		printf("%s%s: %llu", i ? ", " : "", http_status_code(i), srv->by_status[i]);
	if (srv->fds_peak_err)
		printf(")\ndescriptors: %d at start, at least %d at peak (could not count: %s), "
		       "%d at exit\n", srv->fds_start, srv->fds_peak,
		       rsc_strerror(srv->fds_peak_err), fds_exit);
	else
		printf(")\ndescriptors: %d at start, %d at peak, %d at exit\n", srv->fds_start,
		       srv->fds_peak, fds_exit);
	printf("ring: %lld io_uring_enter calls, %lld SQEs, %lld CQEs, %lld acquired, %lld released\n",
	       ctr[RSC_CTR_ENTER_CALLS], ctr[RSC_CTR_SQES], ctr[RSC_CTR_CQES],
	       ctr[RSC_CTR_ACQUIRED], ctr[RSC_CTR_RELEASED]);
	printf("audit (%s): %d findings\n", levels[level], findings);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "unix", required_argument, NULL, 'u' },
		{ "audit", required_argument, NULL, 'A' },
		{ "max-conns", required_argument, NULL, 'm' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "grace", required_argument, NULL, 'g' },
		{ "metrics", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct server srv = { .idle_ms = 30000, .grace_ms = 5000, .max_conns = 1024,
			      .listen_fd = -1 };
	enum rsc_audit_level level = RSC_AUDIT_RELEASED;
	const char *addr = "127.0.0.1";
	struct sigaction sa = { .sa_handler = on_signal_raised };
	struct sockaddr_storage ss;
	struct rsc_error *err = NULL;
	struct conn *c;
	long long ctr[RSC_CTR__COUNT];
	unsigned port = 8080;
	int opt, pipefd[2], ret, findings, fds_exit, i;
	socklen_t len;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': port = number(optarg, "--port"); break;
		case 'u': srv.unix_path = optarg; break;
		case 'm': srv.max_conns = number(optarg, "--max-conns"); break;
		case 'i': srv.idle_ms = number(optarg, "--idle-timeout"); break;
		case 'g': srv.grace_ms = number(optarg, "--grace"); break;
		case 'M': srv.metrics = true; break;
		case 'A':
			if (!strcmp(optarg, "off"))
				level = RSC_AUDIT_OFF;
			else if (!strcmp(optarg, "released"))
				level = RSC_AUDIT_RELEASED;
			else if (!strcmp(optarg, "full"))
				level = RSC_AUDIT_FULL;
			else {
				fprintf(stderr, "ringscope-httpd: --audit: off, released or full\n");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	len = parse_addr(addr, port, srv.unix_path, &ss);

	fd_dir = opendir("/proc/self/fd");
	srv.fds_start = srv.fds_peak = count_open_fds();
	if (srv.fds_start < 0)
		srv.fds_peak_err = srv.fds_start;
	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
		perror("ringscope-httpd: pipe2");
		return 1;
	}
	srv.sig_rfd = pipefd[0];
	sig_wfd = pipefd[1];
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((ret = rsc_loop_new(&srv.loop, 4096, 0)) < 0) {
		warn("no io_uring", ret);
		return 1;
	}
	if ((ret = rsc_loop_set_audit(srv.loop, level)) < 0 ||
	    (srv.metrics && (ret = rsc_loop_set_metrics(srv.loop, RSC_METRICS_LATENCY)) < 0) ||
	    (ret = rsc_scope_open(srv.loop, NULL, "httpd", &srv.root)) < 0) {
		warn("setup", ret);
		return 1;
	}
	if ((ret = start(&srv, &ss, len)) < 0) {
		/* The unwind has closed what was acquired; say what failed. */
		if (rsc_scope_close_wait(srv.root, &err) < 0 && err)
			rsc_error_print(err, stderr);
		else
			warn("start", ret);
		rsc_error_free(err);
		if (rsc_loop_close(srv.loop) < 0)
			warn("rsc_loop_close", -EBUSY);
		return 1;
	}
	print_bound(srv.listen_fd, srv.unix_path);

	while ((ret = rsc_loop_run(srv.loop, RSC_RUN_DEFAULT)) > 0)
		;
	if (ret < 0) {
		warn("rsc_loop_run", ret);
		return 1;
	}
	/* Connections "httpd" closed itself (the deadline came first): all released now. */
	while ((c = srv.conns)) {
		srv.conns = c->next;
		free(c);
		srv.closed++;
	}
	for (i = 0; i < RSC_CTR__COUNT; i++)
		ctr[i] = rsc_loop_counter(srv.loop, i);
	findings = rsc_audit_count(srv.loop);
	if (findings > 0)
		rsc_audit_print(srv.loop, stderr);
	if ((ret = rsc_loop_close(srv.loop)) < 0) {
		warn("rsc_loop_close", ret);
		return 1;
	}
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	close(sig_wfd);
	if (srv.unix_path)
		unlink(srv.unix_path);
	fds_exit = count_open_fds();
	summary(&srv, ctr, fds_exit, findings, level);
	if (fd_dir)
		closedir(fd_dir);
	return srv.root_status == 0 && findings == 0 && fds_exit == srv.fds_start &&
			       srv.accepted == srv.closed ? 0 : 1;
}
