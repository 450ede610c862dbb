/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ringscope.h>

#include "http.h"
/* vis(): a name or value from the command line shown as ringscope-audit shows names. */
const char *vis(const char *s);
const char *vis_bad_option(char *const *argv, int optind_now, int optopt_now, bool *with_value);

/*
 * One loop per thread (--threads), each with its own SO_REUSEPORT listener
 * on the same port, and one tree of scopes per loop:
 *
 *   scope "httpd"          closed gracefully on SIGINT/SIGTERM/SIGHUP
 *     scope "idle"         closed at once on SIGINT/SIGTERM/SIGHUP
 *       entry "listen"     the listener (a multishot accept in flight)
 *       scope "conn" ...   connections waiting for a request: new ones arrive
 *                          here, and come back after each answer
 *     scope "conn" ...     connections with part of a request received, or
 *                          a response in flight
 *
 * A connection's scope holds entry "conn" (its descriptor or direct slot,
 * with its receive or send in flight) and its idle deadline
 * (rsc_scope_set_deadline), set at
 * accept and re-armed only when a request has been answered: bytes alone
 * never extend it (nginx's client_header_timeout), so a client that trickles
 * a request is cut when the deadline passes. The scope tree is the
 * connection list: "idle" is what SIGTERM can close without cutting a
 * request. The main thread's loop also has scope "signals": the read end of
 * the signal pipe, with a read in flight; it fans a signal out to every
 * loop with rsc_loop_post(). No code here closes a descriptor that the
 * runtime owns, nor keeps its own timers.
 */

struct worker;

struct conn {
	struct worker *w;
	struct rsc_scope *scope;
	struct rsc_entry *e;
	unsigned len;	   /* bytes in buf */
	bool closing;	   /* its scope's close has been requested */
	bool idle;	   /* its scope is in "idle" */
	bool close_after;  /* close once the response is sent */
	bool answered;	   /* a response has been sent in full: a keep-alive client */
	bool multishot;	   /* its rsc_recv_multishot() is in flight */
	bool sending;	   /* a response is in flight */
	bool eof;	   /* the peer has shut its side: answer what came, then close */
	char *spill;	   /* received beyond buf (multishot), ours; spill_len bytes */
	unsigned spill_len;
	const char *out;   /* the response being sent, and how far */
	unsigned out_len, out_off;
	char *metrics_out; /* GET /metrics: the response, ours until it is sent */
	char buf[HTTP_HEADER_MAX];
};

/* What one loop counts; the summary adds them up. */
struct stats {
	unsigned long long accepted, closed, refused, idle_closed, cut, served,
		by_status[HTTP__COUNT];
	long long ctr[RSC_CTR_COUNT];
	int findings;
};

/* One thread, one loop. Everything here is its thread's alone, but for start_err. */
struct worker {
	struct server *srv;
	unsigned id;
	pthread_t thread;
	struct rsc_loop *loop;
	struct rsc_scope *httpd, *idle;
	struct rsc_entry *listener;
	int start_err; /* set under srv->lock before srv->ready counts it */
	bool stopping, closed;
	bool count_posted; /* count_peak() is due on this loop */
	bool direct;	   /* connections accepted into the loop's direct table */
	int direct_err;	   /* why not, when --no-direct did not say so: 0 or -errno */
	bool multishot;	   /* keep-alive connections receive with rsc_recv_multishot() */
	int multishot_err; /* why not, when --no-multishot did not say so: 0 or -errno */
	int slots_peak, slots_exit; /* direct slots in use: most seen, and at the loop's close */
	int status;    /* of "httpd" */
	struct stats st;
};

struct server {
	/* Options: read-only once the threads start. */
	unsigned idle_ms, grace_ms, max_conns, nthreads;
	const char *unix_path;
	struct stat unix_st; /* the path's node once bound: only that one is removed */
	bool unix_known;
	bool metrics, no_direct, no_multishot, no_defer_accept;
	enum rsc_audit_level level;
	struct sockaddr_storage ss; /* the first listener's address, port included */
	socklen_t sslen;
	struct worker *workers; /* [0] is the main thread's */
	/* The main thread's alone. */
	struct rsc_scope *signals;
	struct rsc_entry *sigpipe;
	int sig_rfd;
	unsigned char sigbuf[16];
	unsigned signals_seen, done;
	/* Shared: under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned ready;	 /* workers that have started (or failed to) */
	bool finish;	 /* no post will be aimed at a worker's loop any more */
	int fds_start, fds_peak, fds_peak_err; /* the error of a count that failed, or 0 */
	/* Shared: atomics. */
	unsigned conn_fds, peak_conn_fds;
};

static int sig_wfd = -1; /* the signal handler's end of the pipe */

static void conn_serve(struct conn *c);

static void warn(const char *what, int err)
{
	const char *detail = rsc_last_error();

	/* The runtime's detail, when it left one: an accept's CQE has none. */
	if (detail && *detail)
		fprintf(stderr, "ringscope-httpd: %s: %s (%s)\n", what, rsc_strerror(err), detail);
	else
		fprintf(stderr, "ringscope-httpd: %s: %s\n", what, rsc_strerror(err));
}

/*
 * /proc/self/fd, opened once at start and kept (counted like any descriptor):
 * at the peak, the table may be full to RLIMIT_NOFILE, with no descriptor left
 * to open it then. Read under srv->lock: loops count from their own threads.
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

/* On the loop's thread, a turn after a new peak: count what is really open, from /proc/self/fd. */
static void count_peak(struct rsc_loop *loop, void *arg)
{
	struct worker *w = arg;
	struct server *srv = w->srv;
	int fds;

	(void)loop;
	w->count_posted = false;
	pthread_mutex_lock(&srv->lock);
	fds = count_open_fds();
	if (fds < 0)
		srv->fds_peak_err = fds;
	else if (fds > srv->fds_peak)
		srv->fds_peak = fds;
	pthread_mutex_unlock(&srv->lock);
}

/*
 * One more connection open in the process; false if over --max-conns. A new
 * peak is counted once per loop turn, not once per connection: 10,000
 * connections arriving together would read a 10,000-entry directory 10,000
 * times.
 */
static bool count_conn(struct worker *w)
{
	struct server *srv = w->srv;
	unsigned n = __atomic_add_fetch(&srv->conn_fds, 1, __ATOMIC_RELAXED);
	unsigned peak = __atomic_load_n(&srv->peak_conn_fds, __ATOMIC_RELAXED);

	while (n > peak) {
		if (!__atomic_compare_exchange_n(&srv->peak_conn_fds, &peak, n, false,
						 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			continue;
		if (!w->count_posted && rsc_loop_post(w->loop, count_peak, w) == 0)
			w->count_posted = true;
		break;
	}
	return n <= srv->max_conns;
}

static void uncount_conn(struct server *srv)
{
	__atomic_sub_fetch(&srv->conn_fds, 1, __ATOMIC_RELAXED);
}

/*
 * A connection's scope has unwound, whoever started it: this program, its
 * idle deadline, or a parent's unwind. Its I/O has completed and handed its
 * buffer back, so it is freed here.
 */
static void on_conn_unwound(struct rsc_scope *scope, int status,
			    const struct rsc_error *err, void *data)
{
	struct conn *c = data;
	struct worker *w = c->w;

	if (status == -ETIMEDOUT && err && !strcmp(rsc_error_op(err), "deadline"))
		w->st.idle_closed++; /* its deadline passed (it cancelled the recv: c->closing) */
	else if (status < 0 && err)
		rsc_error_print(err, stderr);
	/* Unwound by its deadline or a failure: it waits for a close (-EALREADY: a
	 * parent's unwind has it). Asked already: asking again costs an error's text. */
	if (!c->closing)
		(void)rsc_scope_close(scope, NULL, NULL);
	free(c->metrics_out);
	free(c->spill);
	free(c);
	w->st.closed++;
	uncount_conn(w->srv);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	/* -EALREADY: a parent is unwinding and takes it along. */
	(void)rsc_scope_close(c->scope, NULL, NULL);
}

/* The connection's idle deadline (re)set; false, and it is closed, if that failed.
 * -ESHUTDOWN says the server's unwind has started: it closes @c, and no warning is owed. */
static bool idle_deadline(struct conn *c)
{
	struct worker *w = c->w;
	int ret;

	if (!w->srv->idle_ms || (ret = rsc_scope_set_deadline(c->scope, w->srv->idle_ms, 0)) >= 0)
		return true;
	if (ret != -ESHUTDOWN)
		warn("rsc_scope_set_deadline", ret);
	conn_close(c);
	return false;
}

/* Between "idle" and "httpd": fails only once shutting down, when it is closed anyway. */
static bool conn_move(struct conn *c, bool idle)
{
	struct worker *w = c->w;
	int ret;

	if (c->idle == idle)
		return true;
	if ((ret = rsc_scope_move(c->scope, idle ? w->idle : w->httpd)) < 0) {
		/* -EALREADY: its deadline or a shutdown has started its unwind this turn. */
		if (ret != -EALREADY)
			warn("rsc_scope_move", ret);
		return false;
	}
	c->idle = idle;
	return true;
}

static void on_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct conn *c = data;
	struct worker *w = c->w;

	(void)buf;
	if (res <= 0 || c->closing) {
		c->sending = false;
		conn_close(c);
		return;
	}
	c->out_off += (unsigned)res;
	if (c->out_off < c->out_len) { /* a short send: the rest */
		if (rsc_send(e, c->out + c->out_off, c->out_len - c->out_off, 0, on_sent, c) < 0)
			conn_close(c);
		return;
	}
	c->sending = false;
	c->answered = true;
	if (c->close_after || w->stopping) {
		conn_close(c);
		return;
	}
	/* Answered: the only event that moves the idle deadline. */
	if (!idle_deadline(c))
		return;
	/* Nothing pipelined: waiting for a request, which SIGTERM may close at once. */
	if (c->len == 0 && !conn_move(c, true)) {
		conn_close(c);
		return;
	}
	conn_serve(c); /* a pipelined request may be waiting in buf */
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
	/* Part of a request is in: from now on SIGTERM lets it finish. */
	if (!conn_move(c, false)) {
		conn_close(c);
		return;
	}
	c->len += (unsigned)res;
	conn_serve(c);
}

/* At most this much received beyond buf (pipelined requests), or the client is cut. */
#define SPILL_MAX (64 * 1024)

/* @len bytes received: into buf, and what does not fit after what spilled already. */
static bool conn_take(struct conn *c, const char *p, unsigned len)
{
	unsigned n = 0;
	char *spill;

	if (!c->spill_len) {
		n = sizeof(c->buf) - c->len < len ? (unsigned)sizeof(c->buf) - c->len : len;
		memcpy(c->buf + c->len, p, n);
		c->len += n;
	}
	if (n == len)
		return true;
	if (c->spill_len + (len - n) > SPILL_MAX)
		return false;
	spill = realloc(c->spill, c->spill_len + (len - n));
	if (!spill)
		return false;
	memcpy(spill + c->spill_len, p + n, len - n);
	c->spill = spill;
	c->spill_len += len - n;
	return true;
}

/* A request left buf: what spilled moves up behind what is still there. */
static void conn_unspill(struct conn *c)
{
	unsigned n = sizeof(c->buf) - c->len < c->spill_len ? (unsigned)sizeof(c->buf) - c->len :
							       c->spill_len;

	memcpy(c->buf + c->len, c->spill, n);
	c->len += n;
	c->spill_len -= n;
	memmove(c->spill, c->spill + n, c->spill_len);
}

/*
 * A keep-alive connection's receives (rsc_recv_multishot): bytes come as the
 * client sends them, into the runtime's buffer, which is copied; a request
 * is served once whole and no response is in flight (on_sent serves what
 * came meanwhile). The last call (res <= 0: the peer left, an error, or its
 * release) ends it.
 */
static void on_recv_multishot(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct conn *c = data;

	(void)e;
	if (res == 0 && !c->closing) {
		/*
		 * The peer has shut its side (shutdown(SHUT_WR), or a close): the
		 * requests it sent before are answered all the same, as with
		 * rsc_recv, which is posted only once they have been. Then it closes.
		 */
		c->multishot = false;
		c->eof = true;
		if (!c->sending)
			conn_serve(c);
		return;
	}
	if (res <= 0) {
		c->multishot = false;
		conn_close(c);
		return;
	}
	if (c->closing)
		return;
	if (!conn_take(c, buf, (unsigned)res)) {
		conn_close(c); /* pipelining faster than it is answered */
		return;
	}
	if (c->sending)
		return;
	/* Part of a request is in: from now on SIGTERM lets it finish. */
	if (!conn_move(c, false)) {
		conn_close(c);
		return;
	}
	conn_serve(c);
}

/* Wait for (more of) a request: one multishot receive per keep-alive connection, else a recv. */
static int conn_receive(struct conn *c)
{
	struct worker *w = c->w;
	int ret;

	if (c->multishot)
		return 0; /* in flight: its next bytes come to on_recv_multishot */
	if (c->eof)
		return -ECONNRESET; /* nothing more will come: close */
	/* Not for the first request: a client that sends one and closes costs no cancel. */
	if (w->multishot && c->answered) {
		ret = rsc_recv_multishot(c->e, 0, on_recv_multishot, c);
		if (ret == 0) {
			c->multishot = true;
			return 0;
		}
		if (ret != -EOPNOTSUPP)
			return ret;
		w->multishot = false; /* the kernel lacks it: rsc_recv from now on */
		w->multishot_err = ret;
	}
	return rsc_recv(c->e, c->buf + c->len, sizeof(c->buf) - c->len, 0, on_recv, c);
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
	n = rsc_loop_metrics(c->w->loop, f);
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
	struct worker *w = c->w;
	struct http_request req;

	if (!http_parse(c->buf, c->len, &req)) {
		if (conn_receive(c) < 0)
			conn_close(c);
		return;
	}
	w->st.served++;
	c->close_after = req.close || w->stopping;
	free(c->metrics_out);
	c->metrics_out = NULL;
	if (w->srv->metrics && req.status == HTTP_404 && !strncmp(c->buf, "GET /metrics ", 13) &&
	    (c->metrics_out = metrics_response(c, &c->out_len)))
		req.status = HTTP_200;
	w->st.by_status[req.status]++;
	c->len -= (unsigned)req.len;
	memmove(c->buf, c->buf + req.len, c->len);
	if (c->spill_len)
		conn_unspill(c);
	if (c->metrics_out)
		c->out = c->metrics_out;
	else
		c->out = http_response(req.status, c->close_after, req.head, &c->out_len);
	c->out_off = 0;
	if (rsc_send(c->e, c->out, c->out_len, 0, on_sent, c) < 0) {
		conn_close(c);
		return;
	}
	c->sending = true;
}

static void on_refused_unwound(struct rsc_scope *scope, int status,
			       const struct rsc_error *err, void *data)
{
	struct worker *w = data;

	(void)scope;
	(void)status;
	(void)err;
	w->st.closed++;
	uncount_conn(w->srv);
}

static void on_accept(struct rsc_entry *l, int fd, struct rsc_scope *cs,
		      struct rsc_entry *ce, void *data)
{
	struct worker *w = data;
	struct conn *c = NULL;
	int ret;

	(void)l;
	if (fd < 0) {
		/* -ECANCELED is the end; a shortage (EMFILE...) is re-armed by the runtime. */
		if (fd != -ECANCELED)
			warn("accept", fd);
		return;
	}
	w->st.accepted++;
	if (w->direct && (ret = rsc_loop_direct_used(w->loop)) > w->slots_peak)
		w->slots_peak = ret;
	if (count_conn(w) && !w->stopping)
		c = malloc(sizeof(*c));
	if (!c) {
		/* Over --max-conns, or stopping: accepted, then closed at once. */
		if (!w->stopping)
			w->st.refused++;
		(void)rsc_scope_on_close(cs, on_refused_unwound, w);
		(void)rsc_scope_close(cs, NULL, NULL);
		return;
	}
	memset(c, 0, offsetof(struct conn, buf)); /* not the 8 KiB buffer: 4% of a short connection */
	c->w = w;
	c->scope = cs;
	c->e = ce;
	c->idle = true; /* it arrived in "idle", the listener's scope */
	if ((ret = rsc_scope_on_close(cs, on_conn_unwound, c)) < 0) {
		/* Cannot happen to a scope just accepted; if it did, c would leak. */
		warn("rsc_scope_on_close", ret);
		free(c);
		(void)rsc_scope_on_close(cs, on_refused_unwound, w);
		(void)rsc_scope_close(cs, NULL, NULL);
		return;
	}
	if (!idle_deadline(c))
		return;
	conn_serve(c);
}

static void post_done(struct rsc_loop *loop, void *arg);

/*
 * The Unix socket's path, removed only while it still names the node this
 * server bound: one that was removed and made again (another server started
 * on it since) is not this server's to remove.
 */
static void unlink_own_path(struct server *srv)
{
	struct stat st;

	if (!srv->unix_path || !srv->unix_known)
		return;
	if (lstat(srv->unix_path, &st) == 0 && st.st_dev == srv->unix_st.st_dev &&
	    st.st_ino == srv->unix_st.st_ino)
		unlink(srv->unix_path);
	srv->unix_known = false; /* once */
}

/* "idle" has closed: the listener with it, so new clients are refused. */
static void on_idle_closed(struct rsc_scope *scope, int status, const struct rsc_error *err,
			   void *data)
{
	struct worker *w = data;

	(void)scope;
	if (status < 0 && err)
		rsc_error_print(err, stderr);
	unlink_own_path(w->srv);
}

/* "httpd" has unwound: the grace ended or nothing was left in flight. */
static void on_httpd_closed(struct rsc_scope *scope, int status, const struct rsc_error *err,
			    void *data)
{
	struct worker *w = data;
	unsigned cancelled = 0;
	int ret;

	w->status = status;
	if (err)
		rsc_error_print(err, stderr);
	/* Connections whose I/O was still in flight when the grace ended. */
	(void)rsc_scope_close_stats(scope, NULL, &cancelled, NULL);
	if (cancelled)
		fprintf(stderr, "ringscope-httpd: loop %u: grace period over: closed %u connections\n",
			w->id, cancelled);
	w->st.cut += cancelled;
	w->closed = true;
	if (w->id == 0)
		post_done(w->loop, w);
	else if ((ret = rsc_loop_post(w->srv->workers[0].loop, post_done, w)) < 0)
		warn("rsc_loop_post", ret); /* cannot happen once warmed up; the main loop would wait */
}

/* From a signal: stop accepting, close the idle, let requests finish. */
static void begin_shutdown(struct rsc_loop *loop, void *arg)
{
	struct worker *w = arg;
	int ret;

	(void)loop;
	if (w->stopping || w->closed)
		return;
	w->stopping = true;
	/* Accepts cancelled now; what is in flight may finish for --grace. */
	if ((ret = rsc_scope_close_graceful(w->httpd, w->srv->grace_ms, on_httpd_closed, w)) < 0) {
		warn("rsc_scope_close_graceful", ret);
		/* Not gracefully, then: the main thread waits for every loop's "httpd". */
		if ((ret = rsc_scope_close(w->httpd, on_httpd_closed, w)) < 0)
			warn("rsc_scope_close", ret);
		return;
	}
	/* The listener (its socket closes: clients are refused) and the connections between requests. */
	if ((ret = rsc_scope_close(w->idle, on_idle_closed, w)) < 0)
		warn("closing the idle connections", ret);
}

/*
 * A second signal: close now. The grace holds "httpd" open; a deadline of 1 ms
 * ends it. The connections it cuts are counted once, by on_httpd_closed, from
 * rsc_scope_close_stats: a deadline that ends the grace reports them there.
 */
static void close_now(struct rsc_loop *loop, void *arg)
{
	struct worker *w = arg;
	int ret;

	(void)loop;
	if (w->closed)
		return;
	if ((ret = rsc_scope_set_deadline(w->httpd, 1, RSC_DEADLINE_MOVE_ON)) < 0)
		warn("closing now", ret);
}

static void post_noop(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
}

/* Run @fn for every loop that is serving, on its own thread. */
static void fan_out(struct server *srv, void (*fn)(struct rsc_loop *, void *))
{
	unsigned i;
	int ret;

	for (i = 0; i < srv->nthreads; i++) {
		struct worker *w = &srv->workers[i];

		if (!w->loop || w->start_err)
			continue;
		if (i == 0)
			fn(w->loop, w); /* this thread's own */
		else if ((ret = rsc_loop_post(w->loop, fn, w)) < 0)
			warn("rsc_loop_post", ret);
	}
}

/* On the main thread: a loop's "httpd" has closed. After the last, stop reading signals. */
static void post_done(struct rsc_loop *loop, void *arg)
{
	struct worker *w = arg;
	struct server *srv = w->srv;

	(void)loop;
	if (++srv->done < srv->nthreads)
		return;
	/* From here on nothing is posted to the workers' loops: they may free them. */
	pthread_mutex_lock(&srv->lock);
	srv->finish = true;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	(void)rsc_scope_close(srv->signals, NULL, NULL);
}

static void on_signal(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct server *srv = data;
	int i;

	(void)buf;
	if (res <= 0)
		return; /* -ECANCELED: "signals" is closing */
	/*
	 * A read that completed as post_done() closed "signals": every loop is
	 * done, and the workers may be freeing theirs, so nothing is posted.
	 */
	if (srv->done >= srv->nthreads)
		return;
	/* A byte per signal: two that came before this read are still two. */
	for (i = 0; i < res; i++) {
		fprintf(stderr, "ringscope-httpd: %s: %s\n", strsignal(srv->sigbuf[i]),
			srv->signals_seen ? "closing now" : "shutting down");
		fan_out(srv, srv->signals_seen++ ? close_now : begin_shutdown);
	}
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
		"           [--threads N] [--audit off|released|full] [--max-conns N]\n"
		"           [--idle-timeout MS] [--grace MS] [--metrics] [--no-direct]\n"
		"           [--no-multishot] [--no-defer-accept]\n"
		"A small HTTP/1.1 server on ringscope: GET / answers 200 with a fixed body.\n"
		"  --addr ADDR        IPv4 or IPv6 address to listen on (127.0.0.1)\n"
		"  --port PORT        TCP port, 0 for one the kernel picks (8080)\n"
		"  --unix PATH        listen on a Unix stream socket instead (one thread)\n"
		"  --threads N        loops, one per thread, each with its own listener\n"
		"                     (SO_REUSEPORT) on the port (the CPUs it may run on)\n"
		"  --audit LEVEL      ringscope's audit level (released)\n"
		"  --max-conns N      connections beyond N are closed at once (1024)\n"
		"  --idle-timeout MS  close a connection that has not completed a request\n"
		"                     that long after accept or its last response, 0: never (30000)\n"
		"  --grace MS         on SIGINT/SIGTERM/SIGHUP, let requests finish this long\n"
		"                     (5000)\n"
		"  --metrics          GET /metrics answers the loop's metrics (Prometheus text)\n"
		"  --no-direct        connections as process descriptors, not direct slots\n"
		"  --no-multishot     a recv per request, not one multishot receive per\n"
		"                     keep-alive connection\n"
		"  --no-defer-accept  accept a connection before its request has arrived\n"
		"Prints 'listening on ADDR:PORT', and a lifecycle summary at exit.\n");
}
/* A usage error (the page): one line naming the option, then the usage; exit 2. */
static __attribute__((noreturn, format(printf, 1, 2))) void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("ringscope-httpd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	exit(2);
}

static unsigned number(const char *s, const char *opt)
{
	char *end;
	unsigned long v;

	/* Digits only: strtoul would also take " 5", "+5", and "-1" as ULONG_MAX. */
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *s < '0' || *s > '9' || *end || v > UINT_MAX) {
		usage_error("%s: not a number: %s", opt, vis(s));
	}
	return (unsigned)v;
}

/* --addr, --port and --unix into @ss; exits 2 on a value that is not valid, whichever is used. */
static socklen_t parse_addr(const char *addr, unsigned port, const char *path,
			    struct sockaddr_storage *ss)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	socklen_t len;

	memset(ss, 0, sizeof(*ss));
	if (port > 65535) {
		usage_error("--port: %u is out of range", port);
	}
	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((unsigned short)port);
		len = sizeof(*in);
	} else if (inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((unsigned short)port);
		len = sizeof(*in6);
	} else {
		usage_error("--addr: not an IPv4 or IPv6 address: %s", vis(addr));
	}
	if (!path)
		return len;
	if (!*path) {
		usage_error("--unix: empty path");
	}
	if (strlen(path) >= sizeof(un->sun_path)) {
		usage_error("--unix: path too long");
	}
	memset(ss, 0, sizeof(*ss));
	un->sun_family = AF_UNIX;
	strcpy(un->sun_path, path);
	return sizeof(*un);
}

static void print_bound(struct rsc_entry *listener, const char *path)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";

	if (path) {
		printf("listening on unix:%s\n", vis(path)); /* a newline or ESC in a path is escaped */
	} else if (rsc_entry_sockname(listener, (struct sockaddr *)&ss, &len) == 0 &&
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


/* Set up @w's loop on the calling thread and start accepting; 0 or -errno (nothing left open). */
/*
 * Connections into the loop's direct table (io_uring's registered files):
 * its I/O then names a slot (no descriptor lookup, no file reference taken
 * per op), and accept and close touch no descriptor table shared between
 * threads. A slot per connection this loop may hold, and some for those
 * accepted over --max-conns until their close; the kernel caps a table at
 * RLIMIT_NOFILE. False, with the reason in w->direct_err, where the kernel
 * cannot (before Linux 6.0): the loop then accepts process descriptors.
 */
static bool direct_table(struct worker *w)
{
	struct rlimit rl;
	unsigned long long slots = (unsigned long long)w->srv->max_conns + 64;
	int ret;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    slots > rl.rlim_cur)
		slots = rl.rlim_cur;
	if (slots > RSC_DIRECT_SLOTS_MAX)
		slots = RSC_DIRECT_SLOTS_MAX;
	ret = rsc_loop_set_direct(w->loop, (unsigned)slots, 0);
	w->direct_err = ret;
	return ret == 0;
}

/* Per loop: 256 KiB; more receives than this between two turns of a loop are re-armed. */
#define RECV_BUFFERS 256
#define RECV_BUFFER_SIZE 1024

static int worker_start(struct worker *w)
{
	struct server *srv = w->srv;
	/*
	 * RSC_NODELAY: TCP_NODELAY, which its connections inherit. A response is
	 * one send, whole, so Nagle only ever held one back while the one before
	 * waited for its ACK. A close then lost it: closing with request bytes
	 * unread (a 431 before the rest of its headers was read, without a
	 * multishot receive) resets the connection, and the reset drops what is
	 * still queued to send.
	 */
	unsigned flags = (srv->nthreads > 1 ? RSC_REUSEPORT : 0) | RSC_NODELAY;
	struct rsc_error *err = NULL;
	int ret;

	/* RSC_DEFER_ACCEPT: a connection is accepted with its request already
	 * there, so its first receive completes at once instead of being armed
	 * on an empty socket and woken again (a fifth of a connection's CPU in
	 * the churn benchmark, bench/README.md). */
	if (!srv->no_defer_accept)
		flags |= RSC_DEFER_ACCEPT;
	if ((ret = rsc_loop_new(&w->loop, 4096, 0)) < 0) {
		warn("no io_uring", ret);
		w->loop = NULL;
		return ret;
	}
	/*
	 * A loop's first post makes the small ring that carries its wake-ups:
	 * made now, before any scope (the full audit would count it), a table
	 * full to RLIMIT_NOFILE cannot stop the shutdown's fan-out later.
	 */
	if ((ret = rsc_loop_post(w->loop, post_noop, NULL)) < 0) {
		warn("rsc_loop_post", ret);
		goto fail;
	}
	if ((ret = rsc_loop_set_audit(w->loop, srv->level)) < 0 ||
	    (srv->metrics && (ret = rsc_loop_set_metrics(w->loop, RSC_METRICS_LATENCY)) < 0) ||
	    (ret = rsc_scope_open(w->loop, NULL, "httpd", &w->httpd)) < 0 ||
	    (ret = rsc_scope_open(w->loop, w->httpd, "idle", &w->idle)) < 0) {
		warn("setup", ret);
		goto fail;
	}
	if ((ret = rsc_listen(w->idle, (const struct sockaddr *)&srv->ss, srv->sslen, 4096, flags,
			      &w->listener)) < 0 ||
	    /* A failure unwinds "idle": the socket is closed. */
	    (ret = rsc_entry_wait(w->listener)) < 0)
		goto fail;
	w->direct = !srv->no_direct && direct_table(w);
	/* Keep-alive connections' receives land in the loop's buffers, copied at once. */
	if (!srv->no_multishot) {
		w->multishot_err = rsc_loop_set_recv_buffers(w->loop, RECV_BUFFERS, RECV_BUFFER_SIZE);
		w->multishot = w->multishot_err == 0;
	}
	if ((ret = rsc_accept(w->listener, RSC_ACCEPT_MULTISHOT | (w->direct ? RSC_DIRECT : 0),
			      on_accept, w)) < 0)
		goto fail;
	return 0;
fail:
	/* Say what failed: the unwind's error chain, or the call's. */
	if (rsc_loop_shutdown(w->loop, &err) < 0 && err)
		rsc_error_print(err, stderr);
	else
		warn("start", ret);
	rsc_error_free(err);
	w->loop = NULL;
	return ret;
}

/* On the loop's thread, once nothing will be posted to it: count, audit, free. */
static void worker_finish(struct worker *w)
{
	int i, ret;

	if (!w->loop)
		return;
	(void)rsc_loop_run(w->loop, RSC_RUN_NOWAIT); /* a post that came after the loop ran dry */
	for (i = 0; i < RSC_CTR_COUNT; i++)
		w->st.ctr[i] = rsc_loop_counter(w->loop, i);
	w->st.findings = rsc_audit_count(w->loop);
	if (w->direct)
		w->slots_exit = rsc_loop_direct_used(w->loop);
	if (w->st.findings > 0)
		rsc_audit_print(w->loop, stderr);
	if ((ret = rsc_loop_close(w->loop)) < 0) {
		warn("rsc_loop_close", ret);
		if (w->status == 0)
			w->status = ret;
	}
	w->loop = NULL;
}

/* Run the loop until "httpd" has closed and nothing is left in flight. */
static void worker_run(struct worker *w)
{
	int ret;

	while ((ret = rsc_loop_run(w->loop, RSC_RUN_DEFAULT)) > 0)
		;
	if (ret < 0) {
		warn("rsc_loop_run", ret);
		w->status = ret;
		if (!w->closed && w->id != 0)
			(void)rsc_loop_post(w->srv->workers[0].loop, post_done, w);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct server *srv = w->srv;
	int ret = worker_start(w);

	pthread_mutex_lock(&srv->lock);
	w->start_err = ret;
	srv->ready++;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	if (ret < 0)
		return NULL;
	worker_run(w);
	/* The main thread may still post (a second signal) until every loop is done. */
	pthread_mutex_lock(&srv->lock);
	while (!srv->finish)
		pthread_cond_wait(&srv->cond, &srv->lock);
	pthread_mutex_unlock(&srv->lock);
	worker_finish(w);
	return NULL;
}

/* The main thread's part: the signal pipe's read end, owned by scope "signals". */
static int start_signals(struct server *srv)
{
	struct worker *w = &srv->workers[0];
	int ret;

	if ((ret = rsc_scope_open(w->loop, NULL, "signals", &srv->signals)) < 0)
		return ret;
	if ((ret = rsc_adopt(srv->signals, srv->sig_rfd, 0, &srv->sigpipe)) < 0)
		return ret;
	srv->sig_rfd = -1;
	return rsc_read(srv->sigpipe, srv->sigbuf, sizeof(srv->sigbuf), -1, on_signal, srv);
}

/* The port the first listener got, for the others to share. */
static void take_bound_address(struct server *srv)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (srv->unix_path)
		return;
	if (rsc_entry_sockname(srv->workers[0].listener, (struct sockaddr *)&ss, &len) == 0 &&
	    len <= sizeof(srv->ss)) {
		srv->ss = ss;
		srv->sslen = len;
	}
}

/* Where connections were held: the loops' direct tables, or process descriptors. */
static void summary_direct(struct server *srv)
{
	int peak = 0, at_exit = 0, err = 0;
	unsigned i, n = 0;

	for (i = 0; i < srv->nthreads; i++) {
		const struct worker *w = &srv->workers[i];

		if (w->direct) {
			n++;
			peak += w->slots_peak;
			at_exit += w->slots_exit;
		} else if (w->direct_err) {
			err = w->direct_err;
		}
	}
	if (n)
		printf("direct slots: %d at peak, %d at exit (%u of %u loops)\n", peak, at_exit, n,
		       srv->nthreads);
	else
		printf("direct slots: none (%s)\n",
		       srv->no_direct ? "--no-direct" : err ? rsc_strerror(err) : "not set up");
}

/* How keep-alive connections received: one multishot receive each, or a recv per request. */
static void summary_receives(struct server *srv, long long rearms)
{
	unsigned i, n = 0;
	int err = 0;

	for (i = 0; i < srv->nthreads; i++) {
		if (srv->workers[i].multishot)
			n++;
		else if (srv->workers[i].multishot_err)
			err = srv->workers[i].multishot_err;
	}
	if (n)
		printf("receives: multishot from a connection's second request (%u of %u loops), "
		       "%lld re-armed\n", n, srv->nthreads, rearms);
	else
		printf("receives: a recv per request (%s)\n",
		       srv->no_multishot ? "--no-multishot" : err ? rsc_strerror(err) : "not set up");
}

static void summary(struct server *srv, int fds_exit)
{
	static const char *const levels[] = { "off", "released", "full" };
	struct stats t = { 0 };
	unsigned i;
	int j;

	for (i = 0; i < srv->nthreads; i++) {
		const struct stats *s = &srv->workers[i].st;

		t.accepted += s->accepted;
		t.closed += s->closed;
		t.refused += s->refused;
		t.idle_closed += s->idle_closed;
		t.cut += s->cut;
		t.served += s->served;
		for (j = 0; j < HTTP__COUNT; j++)
			t.by_status[j] += s->by_status[j];
		for (j = 0; j < RSC_CTR_COUNT; j++)
			t.ctr[j] += s->ctr[j];
		t.findings += s->findings;
	}
	printf("connections: accepted %llu, closed %llu, refused %llu (--max-conns), "
	       "idle timeouts %llu, cut at the deadline %llu\n",
	       t.accepted, t.closed, t.refused, t.idle_closed, t.cut);
	printf("requests: %llu served (", t.served);
	for (j = 0; j < HTTP__COUNT; j++)
		printf("%s%s: %llu", j ? ", " : "", http_status_code(j), t.by_status[j]);
	printf(")\nloops: %u (requests served by each:", srv->nthreads);
	for (i = 0; i < srv->nthreads; i++)
		printf("%s %llu", i ? "," : "", srv->workers[i].st.served);
	if (srv->fds_peak_err)
		printf(")\ndescriptors: %d at start, at least %d at peak (could not count: %s), "
		       "%d at exit\n", srv->fds_start, srv->fds_peak,
		       rsc_strerror(srv->fds_peak_err), fds_exit);
	else
		printf(")\ndescriptors: %d at start, %d at peak, %d at exit\n", srv->fds_start,
		       srv->fds_peak, fds_exit);
	summary_direct(srv);
	summary_receives(srv, t.ctr[RSC_CTR_RECV_REARMS]);
	printf("ring: %lld io_uring_enter calls, %lld SQEs, %lld CQEs, %lld acquired, %lld released, "
	       "%lld deadlines passed, %lld releases cancelled their I/O with one SQE\n",
	       t.ctr[RSC_CTR_ENTER_CALLS], t.ctr[RSC_CTR_SQES], t.ctr[RSC_CTR_CQES],
	       t.ctr[RSC_CTR_ACQUIRED], t.ctr[RSC_CTR_RELEASED], t.ctr[RSC_CTR_DEADLINES],
	       t.ctr[RSC_CTR_CANCEL_FD]);
	printf("audit (%s): %d findings\n", levels[srv->level], t.findings);
}

/* How many CPUs this process may run on (as nproc counts them), at least 1. */
static unsigned cpus(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && (n = CPU_COUNT(&set)) > 0)
		return (unsigned)n;
	n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/*
 * Started with standard input, output or error closed (a careless daemonizer),
 * the server's first descriptors would take their numbers: the signal pipe's
 * write end as 2, so a warning on stderr read as signals and shut the server
 * down, or a connection's socket as 1 or 2, which messages would be written
 * to. /dev/null holds those numbers instead (as OpenSSH's sanitise_stdfd does).
 */
static void hold_stdio(void)
{
	int fd;

	/* Not close-on-exec: a standard stream, as the one missing would have been. */
	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= STDERR_FILENO)
		;
	if (fd > STDERR_FILENO)
		close(fd); /* all three were open: this one is not needed */
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "unix", required_argument, NULL, 'u' },
		{ "threads", required_argument, NULL, 't' },
		{ "audit", required_argument, NULL, 'A' },
		{ "max-conns", required_argument, NULL, 'm' },
		{ "idle-timeout", required_argument, NULL, 'i' },
		{ "grace", required_argument, NULL, 'g' },
		{ "metrics", no_argument, NULL, 'M' },
		{ "no-direct", no_argument, NULL, 'D' },
		{ "no-multishot", no_argument, NULL, 'R' },
		{ "no-defer-accept", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct server srv = { .idle_ms = 30000, .grace_ms = 5000, .max_conns = 1024,
				     .level = RSC_AUDIT_RELEASED, .sig_rfd = -1,
				     .lock = PTHREAD_MUTEX_INITIALIZER,
				     .cond = PTHREAD_COND_INITIALIZER };
	const char *addr = "127.0.0.1";
	struct sigaction sa = { .sa_handler = on_signal_raised };
	sigset_t block, old;
	unsigned port = 8080, threads = 0, i, started = 1, failed = 0;
	unsigned long long accepted = 0, closed = 0;
	int opt, pipefd[2], ret, fds_exit, status = 0, findings = 0, slots_exit = 0;
	bool threads_set = false;

	/* getopt's own messages would echo an unknown option's bytes raw. */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': port = number(optarg, "--port"); break;
		case 'u': srv.unix_path = optarg; break;
		case 't':
			threads = number(optarg, "--threads");
			threads_set = true;
			break;
		case 'm': srv.max_conns = number(optarg, "--max-conns"); break;
		case 'i': srv.idle_ms = number(optarg, "--idle-timeout"); break;
		case 'g': srv.grace_ms = number(optarg, "--grace"); break;
		case 'M': srv.metrics = true; break;
		case 'D': srv.no_direct = true; break;
		case 'R': srv.no_multishot = true; break;
		case 'F': srv.no_defer_accept = true; break;
		case 'A':
			if (!strcmp(optarg, "off"))
				srv.level = RSC_AUDIT_OFF;
			else if (!strcmp(optarg, "released"))
				srv.level = RSC_AUDIT_RELEASED;
			else if (!strcmp(optarg, "full"))
				srv.level = RSC_AUDIT_FULL;
			else
				usage_error("--audit: off, released or full, not %s", vis(optarg));
			break;
		case 'h': usage(stdout); return 0;
		case ':':
			usage_error("option '%s' needs a value", vis(argv[optind - 1]));
		default: {
			bool with_value;
			const char *name = vis_bad_option(argv, optind, optopt, &with_value);

			if (with_value)
				usage_error("option '%s' takes no value", name);
			usage_error("unknown option '%s'", name);
		}
		}
	}
	if (optind < argc)
		usage_error("unexpected operand '%s'", vis(argv[optind]));
	if (threads_set && (threads == 0 || threads > 1024))
		usage_error("--threads: 1 to 1024");
	if (srv.unix_path && threads > 1) {
		/* SO_REUSEPORT has no meaning for a path: one listener, one loop. */
		usage_error("--unix serves from one thread: --threads must be 1");
	}
	if (srv.level == RSC_AUDIT_FULL && threads > 1) {
		/* Its /proc/self/fd diff would count the other threads' descriptors as leaks. */
		usage_error("--audit full runs one thread: --threads must be 1");
	}
	srv.nthreads = threads ? threads : srv.unix_path || srv.level == RSC_AUDIT_FULL ? 1 : cpus();
	srv.sslen = parse_addr(addr, port, srv.unix_path, &srv.ss);
	srv.workers = calloc(srv.nthreads, sizeof(*srv.workers));
	if (!srv.workers) {
		perror("ringscope-httpd");
		return 1;
	}
	for (i = 0; i < srv.nthreads; i++) {
		srv.workers[i].srv = &srv;
		srv.workers[i].id = i;
	}

	hold_stdio();
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
	/*
	 * A hang-up (its terminal or session gone) stops it the same way: left
	 * at its default, it killed the process with no summary, and a Unix
	 * socket's path stayed behind to fail the next start.
	 */
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The first listener binds the port (maybe one the kernel picks); the others share it. */
	if (worker_start(&srv.workers[0]) < 0)
		return 1;
	/* The node bind made: a stat that fails leaves the path in place at exit. */
	srv.unix_known = srv.unix_path && lstat(srv.unix_path, &srv.unix_st) == 0;
	if ((ret = start_signals(&srv)) < 0) {
		warn("the signal pipe", ret);
		(void)rsc_loop_shutdown(srv.workers[0].loop, NULL);
		return 1;
	}
	take_bound_address(&srv);
	/* Signals go to the main thread: the workers start with them blocked. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (; started < srv.nthreads; started++) {
		if ((ret = pthread_create(&srv.workers[started].thread, NULL, worker_main,
					  &srv.workers[started])) != 0) {
			warn("pthread_create", -ret);
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_lock(&srv.lock);
	while (srv.ready < started - 1)
		pthread_cond_wait(&srv.cond, &srv.lock);
	pthread_mutex_unlock(&srv.lock);
	for (i = 1; i < srv.nthreads; i++)
		if (i >= started || srv.workers[i].start_err)
			failed++;
	srv.done = failed;
	if (failed) {
		fan_out(&srv, begin_shutdown);
		status = 1;
	} else {
		print_bound(srv.workers[0].listener, srv.unix_path);
	}

	worker_run(&srv.workers[0]);
	for (i = 1; i < started; i++)
		pthread_join(srv.workers[i].thread, NULL);
	worker_finish(&srv.workers[0]);
	/*
	 * Shut down already: a late signal is one more "second signal", with
	 * nothing left to end. Ignored, not the default action, which killed
	 * the server before its summary and its exit status (7 runs in 100 of
	 * a client sending SIGTERM until the server was gone).
	 */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	close(sig_wfd);
	unlink_own_path(&srv);
	fds_exit = count_open_fds();
	summary(&srv, fds_exit);
	/* A summary lost (a full disk) never passes for a clean shutdown. */
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "ringscope-httpd: cannot write the summary: %s\n",
			errno ? rsc_strerror(errno) : "the stream has an error");
		status = 1;
	}
	if (fd_dir)
		closedir(fd_dir);
	for (i = 0; i < srv.nthreads; i++) {
		accepted += srv.workers[i].st.accepted;
		closed += srv.workers[i].st.closed;
		findings += srv.workers[i].st.findings;
		slots_exit += srv.workers[i].slots_exit;
		if (srv.workers[i].status)
			status = 1;
	}
	free(srv.workers);
	return status == 0 && findings == 0 && fds_exit == srv.fds_start && slots_exit == 0 &&
			       accepted == closed ? 0 : 1;
}
