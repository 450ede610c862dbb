/* SPDX-License-Identifier: MIT */
/*
 * A multi-loop worker pool written from the man pages only: four threads,
 * each with a loop of its own. The acceptor loop listens on two ports. A
 * connection of the first is accepted into a direct slot and handed to a
 * worker's inbox (rsc_entry_hand_over); one of the second is detached
 * (rsc_entry_detach) and posted to a worker (rsc_loop_post), which adopts
 * it (rsc_adopt), as rsc_loop_post(3)'s example does; after its first echo,
 * such a connection, idle with its next receive waiting, migrates to the
 * next worker (rsc_entry_cancel_io, detach, post, adopt). Workers echo, and
 * post each finished connection back to the acceptor, which stops everyone
 * by posts once all clients are served. Every byte is counted, and
 * /proc/self/fd must end as it began. Built for the TSan run too.
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

#define WORKERS 3
#define CLIENTS 12
#define MSGS 20

struct worker {
	int id;
	pthread_t thread;
	struct rsc_loop *loop;
	struct rsc_scope *top;
	struct rsc_entry *inbox;
	unsigned long long inbox_addr;
	int served; /* the worker's thread only */
};

struct echo {
	struct worker *w;
	struct rsc_scope *scope;
	struct rsc_entry *e;
	char buf[1024];
	int len;
	bool migrate; /* to the next worker, once idle */
	bool migrated;
};

struct handoff {
	struct worker *w;
	int fd;
	bool migrate;
};

static struct worker workers[WORKERS];
static struct rsc_loop *acceptor;
static struct rsc_scope *server;
static pthread_barrier_t ready;
static int ports[2];
static atomic_int clients_done, echoes_done, migrations;
static atomic_ullong bytes_echoed;
static int done_posts, handed, adopted_posts, next_worker, hand_over_failures; /* acceptor's */
static bool has_handover = true;

/* ---- workers ---- */

static void echo_recv(struct echo *c);
static void adopt_it(struct rsc_loop *loop, void *arg);

static void note_done(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	(void)arg;
	done_posts++;
}

static void on_echo_gone(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct echo *c = data;

	(void)s;
	if (err)
		rsc_error_print(err, stderr);
	PROG_CHECK(status == 0, "worker %d: a connection ended with %d", c->w->id, status);
	if (c->migrated) { /* it lives on in another worker */
		free(c);
		return;
	}
	c->w->served++;
	atomic_fetch_add(&echoes_done, 1);
	/* Tell the acceptor, on its own thread. */
	PROG_CHECK(rsc_loop_post(acceptor, note_done, NULL) == 0, "post done");
	free(c);
}

static void on_echo_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct echo *c = data;

	(void)e;
	(void)buf;
	if (res != c->len) {
		(void)rsc_scope_close(c->scope, NULL, NULL);
		return;
	}
	atomic_fetch_add(&bytes_echoed, (unsigned long long)res);
	echo_recv(c);
	/* Idle now, its next receive waiting: take it back to move it. */
	if (c->migrate)
		PROG_CHECK(rsc_entry_cancel_io(c->e) == 1, "rsc_entry_cancel_io");
}

/* The receive has ended: the connection goes to the next worker, by post. */
static void migrate(struct echo *c)
{
	struct handoff *h = malloc(sizeof(*h));
	int fd = rsc_entry_detach(c->e);

	PROG_CHECK(h && fd >= 0, "rsc_entry_detach after cancel = %d", fd);
	c->migrated = true;
	PROG_CHECK(rsc_scope_close(c->scope, NULL, NULL) == 0, "close migrated scope");
	h->w = &workers[(c->w->id + 1) % WORKERS];
	h->fd = fd;
	h->migrate = false;
	PROG_CHECK(rsc_loop_post(h->w->loop, adopt_it, h) == 0, "post migration");
	atomic_fetch_add(&migrations, 1);
}

static void on_echo_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct echo *c = data;

	(void)buf;
	if (res == -ECANCELED && c->migrate) {
		migrate(c);
		return;
	}
	if (res <= 0) {
		(void)rsc_scope_close(c->scope, NULL, NULL);
		return;
	}
	c->len = res;
	if (rsc_send(e, c->buf, (unsigned)res, 0, on_echo_sent, c) < 0)
		(void)rsc_scope_close(c->scope, NULL, NULL);
}

static void echo_recv(struct echo *c)
{
	if (rsc_recv(c->e, c->buf, sizeof(c->buf), 0, on_echo_recv, c) < 0)
		(void)rsc_scope_close(c->scope, NULL, NULL);
}

static struct echo *start_echo(struct worker *w, struct rsc_scope *s, struct rsc_entry *e)
{
	struct echo *c = calloc(1, sizeof(*c));

	PROG_CHECK(c, "calloc");
	c->w = w;
	c->scope = s;
	c->e = e;
	PROG_CHECK(rsc_scope_on_close(s, on_echo_gone, c) == 0, "on_close");
	echo_recv(c);
	return c;
}

/* A slot handed over by the acceptor arrives in a child scope of ours. */
static void on_handed(struct rsc_entry *inbox, int res, struct rsc_scope *s, struct rsc_entry *e,
		      void *data)
{
	(void)inbox;
	PROG_CHECK(res >= 0 && s && e, "inbox: %d", res);
	PROG_CHECK(rsc_entry_slot(e) >= 0, "a handed entry holds a slot");
	start_echo(data, s, e);
}

/* A plain descriptor posted by the acceptor: ours once adopted. */
static void adopt_it(struct rsc_loop *loop, void *arg)
{
	struct handoff *h = arg;
	struct rsc_scope *s;
	struct rsc_entry *e;

	PROG_CHECK(rsc_scope_open(loop, h->w->top, "adopted", &s) == 0, "scope adopted");
	if (rsc_adopt(s, h->fd, RSC_SHUTDOWN_ON_RELEASE, &e) < 0) {
		PROG_CHECK(0, "rsc_adopt of a posted descriptor");
	}
	start_echo(h->w, s, e)->migrate = h->migrate;
	free(h);
}

static void worker_stop(struct rsc_loop *loop, void *arg)
{
	struct worker *w = arg;

	(void)loop;
	PROG_CHECK(rsc_scope_close(w->top, NULL, NULL) == 0, "close worker %d", w->id);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int r;

	r = rsc_loop_new(&w->loop, 128, RSC_LOOP_DIRECT);
	PROG_CHECK(r == 0, "worker rsc_loop_new = %d", r);
	PROG_CHECK(rsc_scope_open(w->loop, NULL, "worker", &w->top) == 0, "scope worker");
	r = rsc_inbox(w->top, on_handed, w, &w->inbox);
	if (r == -EOPNOTSUPP)
		has_handover = false;
	else
		PROG_CHECK(r == 0 && rsc_inbox_address(w->inbox, &w->inbox_addr) == 0, "rsc_inbox %d", r);
	pthread_barrier_wait(&ready);
	/* The scope (its inbox) keeps the loop alive until worker_stop. */
	while ((r = prog_run_once(w->loop)) > 0)
		;
	PROG_CHECK(r == 0, "worker rsc_loop_run = %d", r);
	PROG_CHECK(rsc_loop_close(w->loop) == 0, "worker rsc_loop_close");
	return NULL;
}

/* ---- acceptor ---- */

static void on_handed_over(struct rsc_entry *e, int res, void *data)
{
	struct rsc_scope *s = data;
	int r;

	if (res < 0)
		hand_over_failures++;
	else
		PROG_CHECK(rsc_entry_slot(e) == -EXDEV, "a handed-over entry still holds its slot");
	/* -EALREADY: the server is closing, and its unwind closes this one. */
	r = rsc_scope_close(s, NULL, NULL);
	PROG_CHECK(r == 0 || r == -EALREADY, "close handed conn scope = %d", r);
}

static void on_direct_conn(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *e,
			   void *data)
{
	struct worker *w;
	int r;

	(void)l;
	(void)data;
	if (res < 0)
		return;
	w = &workers[next_worker++ % WORKERS];
	r = rsc_entry_hand_over(e, w->inbox_addr, on_handed_over, cs);
	PROG_CHECK(r == 0, "rsc_entry_hand_over = %d", r);
	handed++;
}

static void on_plain_conn(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *e,
			  void *data)
{
	struct handoff *h;
	int fd;

	(void)l;
	(void)data;
	if (res < 0)
		return;
	/* Ours to give away: the entry lets go, the empty scope goes. */
	fd = rsc_entry_detach(e);
	PROG_CHECK(fd >= 0, "rsc_entry_detach = %d", fd);
	PROG_CHECK(rsc_scope_close(cs, NULL, NULL) == 0, "close plain conn scope");
	h = malloc(sizeof(*h));
	PROG_CHECK(h, "malloc");
	h->w = &workers[next_worker++ % WORKERS];
	h->fd = fd;
	h->migrate = true;
	if (rsc_loop_post(h->w->loop, adopt_it, h) < 0) {
		close(fd);
		free(h);
		PROG_CHECK(0, "rsc_loop_post");
	}
	adopted_posts++;
}

static void listen_on(int which, unsigned accept_flags, rsc_accept_cb cb)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct rsc_entry *l;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	PROG_CHECK(rsc_listen(server, (struct sockaddr *)&a, sizeof(a), 64, 0, &l) == 0, "listen");
	PROG_CHECK(rsc_entry_wait(l) >= 0, "listener");
	PROG_CHECK(rsc_entry_sockname(l, (struct sockaddr *)&a, &alen) == 0, "sockname");
	ports[which] = ntohs(a.sin_port);
	PROG_CHECK(rsc_accept(l, RSC_ACCEPT_MULTISHOT | accept_flags, cb, NULL) == 0, "accept");
}

/* ---- clients ---- */

static void *client_main(void *arg)
{
	int id = (int)(long)arg, fd, i;
	struct sockaddr_in a = { .sin_family = AF_INET };
	char out[700], in[700];

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(ports[has_handover ? id % 2 : 1]);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	PROG_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "client connect");
	for (i = 0; i < MSGS; i++) {
		size_t len = (size_t)(i * 53 + id) % sizeof(out) + 1, got = 0;
		ssize_t n;

		memset(out, '0' + (i + id) % 10, len);
		PROG_CHECK(write(fd, out, len) == (ssize_t)len, "client write");
		while (got < len) {
			n = read(fd, in + got, len - got);
			PROG_CHECK(n > 0, "client read");
			got += (size_t)n;
		}
		PROG_CHECK(!memcmp(in, out, len), "client %d: echo %d wrong", id, i);
		/* Idle half-way, as a keep-alive client between requests: the
		 * worker's chance to migrate the connection before the next one. */
		if (i == MSGS / 2) {
			struct timespec idle = { 0, (prog_under_valgrind() ? 300 : 50) * 1000000L };

			nanosleep(&idle, NULL);
		}
	}
	close(fd);
	atomic_fetch_add(&clients_done, 1);
	return NULL;
}

int main(void)
{
	pthread_t clients[CLIENTS];
	struct rsc_error *err = NULL;
	int fds0, i, r, total = 0;

	prog_bound(30);
	fds0 = prog_count_fds();
	pthread_barrier_init(&ready, NULL, WORKERS + 1);
	for (i = 0; i < WORKERS; i++) {
		workers[i].id = i;
		PROG_CHECK(pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) == 0,
			   "worker thread");
	}
	pthread_barrier_wait(&ready);

	/* The acceptor is this thread's loop. */
	r = rsc_loop_new(&acceptor, 128, RSC_LOOP_DIRECT);
	PROG_CHECK(r == 0, "acceptor rsc_loop_new = %d", r);
	PROG_CHECK(rsc_scope_open(acceptor, NULL, "server", &server) == 0, "scope server");
	if (has_handover)
		listen_on(0, RSC_DIRECT, on_direct_conn);
	listen_on(1, 0, on_plain_conn);

	for (i = 0; i < CLIENTS; i++)
		PROG_CHECK(pthread_create(&clients[i], NULL, client_main, (void *)(long)i) == 0, "cl");
	while (done_posts < CLIENTS) {
		r = prog_run_once(acceptor);
		PROG_CHECK(r >= 0, "acceptor rsc_loop_run = %d", r);
	}
	for (i = 0; i < CLIENTS; i++)
		pthread_join(clients[i], NULL);
	/* Everyone served: the workers stop by posts, the acceptor by its close. */
	for (i = 0; i < WORKERS; i++)
		PROG_CHECK(rsc_loop_post(workers[i].loop, worker_stop, &workers[i]) == 0, "post stop");
	r = rsc_scope_close_wait(server, &err);
	if (err)
		rsc_error_print(err, stderr);
	PROG_CHECK(r == 0, "server close = %d", r);
	PROG_CHECK(rsc_loop_close(acceptor) == 0, "acceptor rsc_loop_close");
	for (i = 0; i < WORKERS; i++) {
		pthread_join(workers[i].thread, NULL);
		total += workers[i].served;
	}
	pthread_barrier_destroy(&ready);

	PROG_CHECK(clients_done == CLIENTS && total == CLIENTS && echoes_done == CLIENTS,
		   "clients %d, served %d", (int)clients_done, total);
	/* A client's next message may beat the cancel (the echo goes on, and the
	 * move is tried after the next one) until it hangs up: most move, not all. */
	PROG_CHECK((migrations > 0 || prog_under_valgrind()) && migrations <= adopted_posts,
		   "%d of %d posted connections migrated",
		   (int)migrations, adopted_posts);
	PROG_CHECK(handed + adopted_posts == CLIENTS && hand_over_failures == 0,
		   "handed %d, posted %d, failed %d", handed, adopted_posts, hand_over_failures);
	if (prog_count_fds() != fds0) {
		prog_list_fds();
		PROG_CHECK(0, "descriptors: %d at the start, %d at the end", fds0, prog_count_fds());
	}
	printf("pool: %d connections (%d handed over as slots, %d posted, %d migrated idle), %llu bytes echoed\n",
	       CLIENTS, handed, adopted_posts, (int)migrations, (unsigned long long)bytes_echoed);
	return 0;
}
