/* SPDX-License-Identifier: MIT */
/*
 * ringscope-bench-direct: direct descriptors (slots of the loop's registered
 * file table) against normal ones, side by side in one run, for
 *   open+close   N=64 rsc_open in a scope, then its close (the pair);
 *   read         64-byte rsc_read of a held file, 64 in flight (per read);
 *   send         64-byte rsc_send on a held loopback TCP connection, 64 in
 *                flight, the peer drained outside the timing (per send);
 *   connect      connect + 64-byte send + release on loopback, 32 at once
 *                (normal: rsc_connect, socket then connect after its CQE,
 *                then rsc_send; direct: one linked chain, socket into a slot
 *                + connect + send, rsc_chain_send), the listener's side
 *                drained outside the timing (per connection);
 * each single-threaded and with 2 threads, each thread with its own loop, in
 * one process (where the process descriptor table's lock is shared).
 * Interleaved rounds, medians, ratio direct/normal. See bench/README.md.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ringscope.h"

#define BATCH 64
#define CONN_BATCH 32

enum bcase { C_OPEN, C_READ, C_SEND, C_CONNECT, C__N };
static const char *const case_names[C__N] = { "open+close", "read 64B", "send 64B",
					      "connect+send+close" };

static char dir[256];
static int rounds = 9;
static double sample_ms = 20;

static void die(const char *what, int err)
{
	fprintf(stderr, "ringscope-bench-direct: %s: %s (%s)\n", what, rsc_strerror(err),
		rsc_last_error());
	exit(1);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

struct worker {
	enum bcase c;
	bool direct;
	int id;
	struct rsc_loop *loop;
	struct rsc_scope *hold; /* the held file / connection's scope */
	struct rsc_entry *held;
	int peer;		/* C_SEND: the accepted side, drained */
	int listener;		/* C_SEND, C_CONNECT: a libc listener */
	struct sockaddr_in addr;
	long iters;		/* batches per sample */
	double busy_ns;		/* time spent outside the timed part */
	long ops;
	pthread_t th;
};

static void run(struct rsc_loop *loop)
{
	int ret = rsc_loop_run(loop, RSC_RUN_DEFAULT);

	if (ret < 0)
		die("rsc_loop_run", ret);
}

static void io_done(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	if (res < 0)
		die("tracked I/O", res);
	(*(int *)data)--;
}

static void batch_open(struct worker *w)
{
	struct rsc_scope *s;
	char name[300];
	int i, ret;

	if ((ret = rsc_scope_open(w->loop, NULL, "b", &s)) < 0)
		die("rsc_scope_open", ret);
	for (i = 0; i < BATCH; i++) {
		snprintf(name, sizeof(name), "%s/f%d", dir, (w->id * BATCH + i) % 256);
		ret = rsc_open(s, AT_FDCWD, name, O_RDONLY, 0, w->direct ? RSC_DIRECT : 0, NULL);
		if (ret < 0)
			die("rsc_open", ret);
	}
	run(w->loop);
	if ((ret = rsc_scope_close(s, NULL, NULL)) < 0)
		die("rsc_scope_close", ret);
	run(w->loop);
	w->ops += BATCH;
}

static char bufs[2][BATCH][64];

static void batch_io(struct worker *w)
{
	int i, ret, left = BATCH;
	char drain[BATCH * 64];

	for (i = 0; i < BATCH; i++) {
		if (w->c == C_READ)
			ret = rsc_read(w->held, bufs[w->id][i], 64, 0, io_done, &left);
		else
			ret = rsc_send(w->held, bufs[w->id][i], 64, 0, io_done, &left);
		if (ret < 0)
			die("rsc_read/rsc_send", ret);
	}
	while (left)
		if ((ret = rsc_loop_run(w->loop, RSC_RUN_ONCE)) < 0)
			die("rsc_loop_run", ret);
	w->ops += BATCH;
	if (w->c == C_SEND) {
		double t0 = now_ns();
		size_t got = 0;

		while (got < sizeof(drain)) {
			ssize_t n = recv(w->peer, drain, sizeof(drain) - got, 0);

			if (n <= 0)
				die("recv", n < 0 ? -errno : -EPIPE);
			got += (size_t)n;
		}
		w->busy_ns += now_ns() - t0;
	}
}

static void drain_listener(struct worker *w, int n)
{
	double t0 = now_ns();
	int i, fd;

	for (i = 0; i < n; i++) {
		fd = accept4(w->listener, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			die("accept4", -errno);
		close(fd);
	}
	w->busy_ns += now_ns() - t0;
}

static void batch_connect(struct worker *w)
{
	struct rsc_entry *c[CONN_BATCH];
	struct rsc_scope *s;
	int i, ret, left = CONN_BATCH;

	if ((ret = rsc_scope_open(w->loop, NULL, "b", &s)) < 0)
		die("rsc_scope_open", ret);
	for (i = 0; w->direct && i < CONN_BATCH; i++) {
		/* Direct: socket into a slot, connect, first send: one chain. */
		struct rsc_chain *ch;

		if ((ret = rsc_chain_new(s, &ch)) < 0 ||
		    (ret = rsc_chain_socket(ch, AF_INET, SOCK_STREAM, 0, NULL)) < 0 ||
		    (ret = rsc_chain_connect(ch, (struct sockaddr *)&w->addr, sizeof(w->addr),
					     0, &c[i])) < 0 ||
		    (ret = rsc_chain_send(ch, bufs[w->id][i], 64, io_done, &left)) < 0 ||
		    (ret = rsc_chain_submit(ch)) < 0)
			die("chain", ret);
	}
	for (i = 0; !w->direct && i < CONN_BATCH; i++) {
		/* Normal: socket, then the connect after its CQE, then the send. */
		ret = rsc_connect(s, (struct sockaddr *)&w->addr, sizeof(w->addr), 0, 0, &c[i]);
		if (ret < 0)
			die("rsc_connect", ret);
	}
	for (i = 0; i < CONN_BATCH; i++) {
		if ((ret = rsc_entry_wait(c[i])) < 0)
			die("connect", ret);
		if (!w->direct && (ret = rsc_send(c[i], bufs[w->id][i], 64, 0, io_done, &left)) < 0)
			die("rsc_send", ret);
	}
	while (left)
		if ((ret = rsc_loop_run(w->loop, RSC_RUN_ONCE)) < 0)
			die("rsc_loop_run", ret);
	if ((ret = rsc_scope_close(s, NULL, NULL)) < 0)
		die("rsc_scope_close", ret);
	run(w->loop);
	w->ops += CONN_BATCH;
	drain_listener(w, CONN_BATCH);
}

static void batch(struct worker *w)
{
	if (w->c == C_OPEN)
		batch_open(w);
	else if (w->c == C_CONNECT)
		batch_connect(w);
	else
		batch_io(w);
}

static int tcp_listener(struct sockaddr_in *bound)
{
	socklen_t len = sizeof(*bound);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	memset(bound, 0, sizeof(*bound));
	bound->sin_family = AF_INET;
	bound->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)bound, sizeof(*bound)) < 0 || listen(fd, 4096) < 0 ||
	    getsockname(fd, (struct sockaddr *)bound, &len) < 0)
		die("listener", -errno);
	return fd;
}

static void setup(struct worker *w)
{
	char name[300];
	int ret;

	if ((ret = rsc_loop_new(&w->loop, 512, RSC_LOOP_DIRECT)) < 0)
		die("rsc_loop_new(RSC_LOOP_DIRECT)", ret);
	if (w->c == C_OPEN)
		return;
	if ((ret = rsc_scope_open(w->loop, NULL, "held", &w->hold)) < 0)
		die("rsc_scope_open", ret);
	if (w->c == C_READ) {
		snprintf(name, sizeof(name), "%s/data", dir);
		ret = rsc_open(w->hold, AT_FDCWD, name, O_RDONLY, 0, w->direct ? RSC_DIRECT : 0,
			       &w->held);
		if (ret < 0 || (ret = rsc_entry_wait(w->held)) < 0)
			die("open data", ret);
		return;
	}
	w->listener = tcp_listener(&w->addr);
	if (w->c == C_CONNECT)
		return;
	ret = rsc_connect(w->hold, (struct sockaddr *)&w->addr, sizeof(w->addr), 0,
			  w->direct ? RSC_DIRECT : 0, &w->held);
	if (ret < 0 || (ret = rsc_entry_wait(w->held)) < 0)
		die("connect", ret);
	w->peer = accept4(w->listener, NULL, NULL, SOCK_CLOEXEC);
	if (w->peer < 0)
		die("accept4", -errno);
}

static void teardown(struct worker *w)
{
	int ret = rsc_loop_shutdown(w->loop, NULL);

	if (ret < 0)
		die("rsc_loop_shutdown", ret);
	if (w->peer > 0)
		close(w->peer);
	if (w->listener > 0)
		close(w->listener);
}

/*
 * Every worker is a thread of its own that creates and uses its loop: a
 * SINGLE_ISSUER ring refuses submits from any other task (-EEXIST). The
 * main thread only hands out commands between two barriers, and times them.
 */
enum cmd { CMD_SETUP, CMD_RUN, CMD_TEARDOWN, CMD_QUIT };

static pthread_barrier_t bar_start, bar_end;
static enum cmd cur_cmd;
static int cur_variant;

static void *thread_main(void *arg)
{
	struct worker *w = arg;
	long i;

	for (;;) {
		pthread_barrier_wait(&bar_start);
		if (cur_cmd == CMD_QUIT)
			break;
		if (cur_cmd == CMD_SETUP)
			setup(w);
		else if (cur_cmd == CMD_TEARDOWN)
			teardown(w);
		else if ((int)w->direct == cur_variant)
			for (i = 0; i < w->iters; i++)
				batch(w);
		pthread_barrier_wait(&bar_end);
	}
	return NULL;
}

static void command(enum cmd c, int variant)
{
	cur_cmd = c;
	cur_variant = variant;
	pthread_barrier_wait(&bar_start);
	if (c != CMD_QUIT)
		pthread_barrier_wait(&bar_end);
}

/* One sample of variant @v: each of its @nthreads workers runs its batches. */
static double sample(struct worker *ws, int v, int nthreads)
{
	double t0, busy = 0, wall;
	long ops = 0;
	int i;

	for (i = 0; i < nthreads; i++) {
		ws[i].ops = 0;
		ws[i].busy_ns = 0;
	}
	t0 = now_ns();
	command(CMD_RUN, v);
	wall = now_ns() - t0;
	for (i = 0; i < nthreads; i++) {
		ops += ws[i].ops;
		busy += ws[i].busy_ns;
	}
	/* Draining the peer is not what is measured: its share comes off. */
	return (wall - busy / nthreads) * nthreads / (double)ops;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	static double res[C__N][3][2][64], ratio[C__N][3][64];
	int c, nt, i, v, r, fd, a;
	bool quick = false;
	char name[300];

	for (a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--quick"))
			quick = true;
		else if (!strcmp(argv[a], "--rounds") && a + 1 < argc)
			rounds = atoi(argv[++a]);
	}
	if (quick) {
		rounds = 3;
		sample_ms = 5;
	}
	if (rounds < 1 || rounds > 64)
		rounds = 9;
	snprintf(dir, sizeof(dir), "%s/ringscope-bench-direct-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		die("mkdtemp", -errno);
	for (i = 0; i < 256; i++) {
		snprintf(name, sizeof(name), "%s/f%d", dir, i);
		fd = open(name, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, "x", 1) != 1)
			die("create", -errno);
		close(fd);
	}
	snprintf(name, sizeof(name), "%s/data", dir);
	fd = open(name, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, bufs, 4096) != 4096)
		die("create data", -errno);
	close(fd);

	printf("ringscope-bench-direct: ns per op, median of %d interleaved rounds (~%.0f ms per variant per round)\n",
	       rounds, sample_ms);
	for (c = 0; c < C__N; c++) {
		for (nt = 1; nt <= 2; nt++) {
			struct worker ws[2][2]; /* [direct][thread] */

			memset(ws, 0, sizeof(ws));
			pthread_barrier_init(&bar_start, NULL, (unsigned)(2 * nt + 1));
			pthread_barrier_init(&bar_end, NULL, (unsigned)(2 * nt + 1));
			for (v = 0; v < 2; v++)
				for (i = 0; i < nt; i++) {
					ws[v][i].c = (enum bcase)c;
					ws[v][i].direct = v;
					ws[v][i].id = i;
					pthread_create(&ws[v][i].th, NULL, thread_main, &ws[v][i]);
				}
			command(CMD_SETUP, 0);
			/* Calibrate: batches per sample of about sample_ms. */
			for (v = 0; v < 2; v++) {
				double t;

				for (i = 0; i < nt; i++)
					ws[v][i].iters = 2;
				t = sample(ws[v], v, nt) * (c == C_CONNECT ? CONN_BATCH : BATCH);
				for (i = 0; i < nt; i++) {
					ws[v][i].iters = (long)(sample_ms * 1e6 / t);
					/* Bound the ports left in TIME_WAIT (per listener). */
					if (c == C_CONNECT && ws[v][i].iters > 16 / nt)
						ws[v][i].iters = 16 / nt;
					if (ws[v][i].iters < 1)
						ws[v][i].iters = 1;
				}
			}
			/* Both variants do the same work per sample: the larger count. */
			for (i = 0; i < nt; i++) {
				long it = ws[0][i].iters > ws[1][i].iters ? ws[0][i].iters : ws[1][i].iters;

				ws[0][i].iters = ws[1][i].iters = it;
			}
			for (r = 0; r < rounds; r++) {
				for (i = 0; i < 2; i++) {
					v = (r + i) % 2; /* the first variant alternates */
					res[c][nt][v][r] = sample(ws[v], v, nt);
				}
				ratio[c][nt][r] = res[c][nt][1][r] / res[c][nt][0][r];
			}
			command(CMD_TEARDOWN, 0);
			command(CMD_QUIT, 0);
			for (v = 0; v < 2; v++)
				for (i = 0; i < nt; i++)
					pthread_join(ws[v][i].th, NULL);
			pthread_barrier_destroy(&bar_start);
			pthread_barrier_destroy(&bar_end);
		}
	}
	printf("\n%-20s %8s %12s %12s %14s %14s\n", "case", "threads", "normal ns", "direct ns",
	       "direct/normal", "paired ratio");
	for (c = 0; c < C__N; c++)
		for (nt = 1; nt <= 2; nt++) {
			double n = median(res[c][nt][0], rounds), d = median(res[c][nt][1], rounds);

			printf("%-20s %8d %12.0f %12.0f %14.3f %14.3f\n", case_names[c], nt, n, d,
			       d / n, median(ratio[c][nt], rounds));
		}
	printf("\nfloor: direct never more than 5%% slower than normal (direct/normal <= 1.05)\n");
	for (c = 0; c < C__N; c++)
		for (nt = 1; nt <= 2; nt++) {
			double q = median(res[c][nt][1], rounds) / median(res[c][nt][0], rounds);

			printf("%s  %s, %d thread%s: %.3f\n", q <= 1.05 ? "PASS" : "FAIL",
			       case_names[c], nt, nt > 1 ? "s" : "", q);
		}
	for (i = 0; i < 256; i++) {
		snprintf(name, sizeof(name), "%s/f%d", dir, i);
		unlink(name);
	}
	snprintf(name, sizeof(name), "%s/data", dir);
	unlink(name);
	rmdir(dir);
	return 0;
}
