/* SPDX-License-Identifier: MIT */
/*
 * The benchmark's baseline: what ringscope-httpd does, written by hand on
 * liburing. Same ring setup as ringscope's loop, same parser and responses
 * (tools/httpd/http.c), a multishot accept, one recv or send in flight per
 * connection, keep-alive, and the same idle timeout (an IORING_OP_TIMEOUT
 * per connection, checked against the last activity). Closing cancels the
 * connection's ops, closes through the ring, and frees the connection when
 * its last CQE is in. Not a server to deploy: SIGTERM simply ends it.
 * --threads N: N threads, each with its own ring and its own SO_REUSEPORT
 * listener on the port, as ringscope-httpd --threads does. --defer-accept:
 * TCP_DEFER_ACCEPT of one second, as ringscope-httpd's RSC_DEFER_ACCEPT.
 *
 *   uring_responder [--threads N] [--defer-accept] [PORT [ADDR]]
 *                                                  prints "listening on ADDR:PORT"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h" /* tools/httpd/: the same parser and responses */

#define IDLE_MS 30000

enum op { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_TIMEOUT, OP_IGNORE };

struct conn {
	int fd, refs; /* refs: SQEs whose CQE is still to come */
	bool closing, close_after, busy;
	long long last_ms;
	unsigned len, out_len, out_off;
	const char *out;
	struct __kernel_timespec ts;
	char buf[HTTP_HEADER_MAX];
};

/* Each thread's own: a ring and a listener. */
static __thread struct io_uring ring;
static __thread int listen_fd;
static struct sockaddr_in addr; /* the first listener's, port included */
static int nthreads = 1;
static bool defer_accept; /* --defer-accept */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A connection is 8-aligned: the op goes in the low bits of user_data. */
static struct io_uring_sqe *sqe_for(struct conn *c, enum op op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

	if (!sqe) {
		io_uring_submit(&ring);
		sqe = io_uring_get_sqe(&ring);
		if (!sqe) {
			fprintf(stderr, "uring_responder: no SQE\n");
			exit(1);
		}
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)c | op);
	if (c)
		c->refs++;
	return sqe;
}

static void arm_accept(void)
{
	io_uring_prep_multishot_accept(sqe_for(NULL, OP_ACCEPT), listen_fd, NULL, NULL,
				       SOCK_CLOEXEC);
}

static void arm_timeout(struct conn *c, long long ms)
{
	c->ts.tv_sec = ms / 1000;
	c->ts.tv_nsec = (ms % 1000) * 1000000;
	io_uring_prep_timeout(sqe_for(c, OP_TIMEOUT), &c->ts, 0, 0);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	/* Cancel first (in submission order, so before the close), then close. */
	if (c->busy)
		io_uring_prep_cancel_fd(sqe_for(c, OP_IGNORE), c->fd, 0);
	io_uring_prep_timeout_remove(sqe_for(c, OP_IGNORE), (uint64_t)(uintptr_t)c | OP_TIMEOUT,
				     0);
	io_uring_prep_close(sqe_for(c, OP_IGNORE), c->fd);
}

static void serve(struct conn *c)
{
	struct http_request req;

	if (!http_parse(c->buf, c->len, &req)) {
		io_uring_prep_recv(sqe_for(c, OP_RECV), c->fd, c->buf + c->len,
				   sizeof(c->buf) - c->len, 0);
		c->busy = true;
		return;
	}
	c->close_after = req.close;
	c->len -= (unsigned)req.len;
	memmove(c->buf, c->buf + req.len, c->len);
	c->out = http_response(req.status, req.close, req.head, &c->out_len);
	c->out_off = 0;
	io_uring_prep_send(sqe_for(c, OP_SEND), c->fd, c->out, c->out_len, MSG_NOSIGNAL);
	c->busy = true;
}

static void complete(struct conn *c, enum op op, int res, unsigned flags)
{
	if (op == OP_ACCEPT) {
		if (res >= 0) {
			c = malloc(sizeof(*c));
			if (!c) {
				close(res);
			} else {
				memset(c, 0, offsetof(struct conn, buf));
				c->fd = res;
				c->last_ms = now_ms();
				arm_timeout(c, IDLE_MS);
				serve(c);
			}
		}
		if (!(flags & IORING_CQE_F_MORE))
			arm_accept(); /* the kernel ended the multishot: again */
		return;
	}
	c->refs--;
	if (op == OP_RECV || op == OP_SEND)
		c->busy = false;
	if (c->closing || op == OP_IGNORE) {
		/* nothing: the last CQE frees it below */
	} else if (op == OP_TIMEOUT) {
		long long idle = now_ms() - c->last_ms;

		if (res != -ETIME)
			;
		else if (idle >= IDLE_MS)
			conn_close(c);
		else
			arm_timeout(c, IDLE_MS - idle);
	} else if (res <= 0) {
		conn_close(c);
	} else if (op == OP_RECV) {
		c->last_ms = now_ms();
		c->len += (unsigned)res;
		serve(c);
	} else {
		c->last_ms = now_ms();
		c->out_off += (unsigned)res;
		if (c->out_off < c->out_len) {
			io_uring_prep_send(sqe_for(c, OP_SEND), c->fd, c->out + c->out_off,
					   c->out_len - c->out_off, MSG_NOSIGNAL);
			c->busy = true;
		} else if (c->close_after) {
			conn_close(c);
		} else {
			serve(c);
		}
	}
	if (c->refs == 0)
		free(c);
}

/* ringscope's loop setup (src/loop.c), so that both rings are alike. */
static void setup_ring(void)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	unsigned i;
	int ret = -EINVAL;

	for (i = 0; i < 3; i++) {
		struct io_uring_params p = {
			.flags = tries[i] | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
			.cq_entries = 4 * 4096,
		};

		ret = io_uring_queue_init_params(4096, &ring, &p);
		if (ret == 0) {
			/* As ringscope registers a single-issuer ring with its thread. */
			if (tries[i] & IORING_SETUP_SINGLE_ISSUER)
				io_uring_register_ring_fd(&ring);
			return;
		}
	}
	fprintf(stderr, "uring_responder: io_uring: %s\n", strerror(-ret));
	exit(1);
}

/* A listener on addr; the first one learns the port, if it was 0. */
static int open_listener(void)
{
	socklen_t len = sizeof(addr);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (nthreads > 1 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
	    (defer_accept && setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof(one))) ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(fd, 4096) ||
	    getsockname(fd, (struct sockaddr *)&addr, &len)) {
		perror("uring_responder: listen");
		exit(1);
	}
	return fd;
}

static void *serve_loop(void *arg)
{
	listen_fd = (int)(intptr_t)arg;
	setup_ring();
	arm_accept();
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		int ret = io_uring_submit_and_wait(&ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN) {
			fprintf(stderr, "uring_responder: io_uring_enter: %s\n", strerror(-ret));
			exit(1);
		}
		io_uring_for_each_cqe(&ring, head, cqe) {
			uint64_t ud = cqe->user_data;

			complete((struct conn *)(uintptr_t)(ud & ~(uint64_t)7), (enum op)(ud & 7),
				 cqe->res, cqe->flags);
			n++;
		}
		io_uring_cq_advance(&ring, n);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int i = 1, fd0, ret;
	pthread_t t;

	for (;;) {
		if (argc > i + 1 && !strcmp(argv[i], "--threads")) {
			nthreads = atoi(argv[i + 1]);
			i += 2;
		} else if (argc > i && !strcmp(argv[i], "--defer-accept")) {
			defer_accept = true;
			i++;
		} else {
			break;
		}
	}
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)(argc > i ? atoi(argv[i]) : 8080));
	if (nthreads < 1 ||
	    inet_pton(AF_INET, argc > i + 1 ? argv[i + 1] : "127.0.0.1", &addr.sin_addr) != 1) {
		fprintf(stderr, "usage: uring_responder [--threads N] [--defer-accept] [PORT [IPV4]]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* The first binds the port (maybe one the kernel picks); the others share it. */
	fd0 = open_listener();
	for (i = 1; i < nthreads; i++) {
		if ((ret = pthread_create(&t, NULL, serve_loop,
					  (void *)(intptr_t)open_listener())) != 0) {
			fprintf(stderr, "uring_responder: pthread_create: %s\n", strerror(ret));
			return 1;
		}
	}
	printf("listening on 127.0.0.1:%u\n", ntohs(addr.sin_port));
	fflush(stdout);
	serve_loop((void *)(intptr_t)fd0);
	return 0;
}
