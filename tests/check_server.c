/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- rsc_loop_post ----------------------------------------------------- */

#define POSTERS 4
#define POSTS 500

struct post_state {
	struct rsc_loop *loop;
	pthread_t self;
	int id;
	int last[POSTERS]; /* the last sequence number seen from each poster */
	int ran, out_of_order, off_thread;
};

struct post_msg {
	struct post_state *st;
	int from, seq;
};

static struct post_msg msgs[POSTERS][POSTS];

static void posted(struct rsc_loop *loop, void *arg)
{
	struct post_msg *m = arg;
	struct post_state *st = m->st;

	(void)loop;
	if (!pthread_equal(pthread_self(), st->self))
		st->off_thread++;
	if (m->seq != st->last[m->from] + 1)
		st->out_of_order++;
	st->last[m->from] = m->seq;
	st->ran++;
}

struct poster {
	struct post_state *st;
	int from, failed;
	int pause_every; /* posts between two short sleeps (the loop waits then), or 0 */
};

static void *poster_main(void *arg)
{
	struct poster *p = arg;
	struct timespec pause = { 0, 300 * 1000L };
	int i;

	for (i = 0; i < POSTS; i++) {
		msgs[p->from][i] = (struct post_msg){ p->st, p->from, i };
		if (rsc_loop_post(p->st->loop, posted, &msgs[p->from][i]) < 0)
			p->failed++;
		if (p->pause_every && i % p->pause_every == 0)
			nanosleep(&pause, NULL);
	}
	return NULL;
}

START_TEST(posts_from_four_threads_run_on_the_loop_in_order)
{
	struct post_state st = { 0 };
	struct poster p[POSTERS];
	pthread_t t[POSTERS];
	long long t0;
	int i;

	st.loop = t_loop;
	st.self = pthread_self();
	for (i = 0; i < POSTERS; i++)
		st.last[i] = -1;
	for (i = 0; i < POSTERS; i++) {
		p[i] = (struct poster){ &st, i, 0, 0 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, poster_main, &p[i]), 0);
	}
	/* The loop blocks in its wait: only the posts' wake-ups end it. */
	t0 = ms_now();
	while (st.ran < POSTERS * POSTS && ms_now() - t0 < 10000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	for (i = 0; i < POSTERS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(p[i].failed, 0);
	}
	t_run();
	ck_assert_int_eq(st.ran, POSTERS * POSTS);
	ck_assert_int_eq(st.out_of_order, 0);
	ck_assert_int_eq(st.off_thread, 0);
	ck_assert_int_eq(rsc_loop_post(NULL, posted, NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_post(t_loop, NULL, NULL), -EINVAL);
}
END_TEST

static void count_post(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	(*(int *)arg)++;
}

START_TEST(a_post_never_run_is_run_when_the_loop_closes)
{
	struct rsc_loop *l;
	int n = 0;

	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_post(l, count_post, &n), 0);
	ck_assert_int_eq(rsc_loop_alive(l), 1);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(n, 1);
}
END_TEST

/* ---- rsc_loop_post by eventfd (a kernel without IORING_OP_MSG_RING) ------- */

/* A loop made as on a kernel before 5.18: a "msg_ring" fault rule at its birth. */
static struct rsc_loop *eventfd_loop(unsigned flags)
{
	struct rsc_loop *l;
	int ret;

	ck_assert_int_eq(setenv("RINGSCOPE_FAULT", "msg_ring:1:EOPNOTSUPP", 1), 0);
	ret = rsc_loop_new(&l, 16, flags);
	ck_assert_int_eq(unsetenv("RINGSCOPE_FAULT"), 0);
	ck_assert_msg(ret == 0, "rsc_loop_new: %s", rsc_last_error());
	ck_assert(rsc_loop_features(l) & RSC_FEAT_POST_EVENTFD);
	return l;
}

/* The eventfds open now, up to @max of them: their numbers in @fds. */
static int eventfds(int *fds, int max)
{
	char path[64], target[128];
	int fd, n = 0;
	ssize_t len;

	for (fd = 0; fd < 1024 && n < max; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = '\0';
		if (strstr(target, "eventfd"))
			fds[n++] = fd;
	}
	return n;
}

static void never_fires(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	(void)data;
	ck_assert_int_eq(res, -ECANCELED);
}

/* A scope whose 60 s timer keeps the loop waiting in the kernel (not under valgrind). */
static struct rsc_scope *long_wait(struct rsc_loop *l)
{
	struct rsc_scope *s;

	if (t_under_valgrind())
		return NULL;

	ck_assert_int_eq(rsc_scope_open(l, NULL, "wait", &s), 0);
	ck_assert_int_eq(rsc_timer(s, 60000, never_fires, NULL, NULL), 0);
	return s;
}

START_TEST(eventfd_posts_from_four_threads_run_once_each_in_order)
{
	struct post_state st = { 0 };
	struct poster p[POSTERS];
	pthread_t t[POSTERS];
	struct rsc_scope *s;
	long long t0;
	int before = t_fd_count(), i;

	st.loop = eventfd_loop(0);
	st.self = pthread_self();
	for (i = 0; i < POSTERS; i++)
		st.last[i] = -1;
	s = long_wait(st.loop);
	for (i = 0; i < POSTERS; i++) {
		p[i] = (struct poster){ &st, i, 0, 10 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, poster_main, &p[i]), 0);
	}
	/* The timer keeps the loop in its wait: only the eventfd's poll wakes it
	 * (without one, under valgrind, the loop only turns until all ran). */
	t0 = ms_now();
	while (st.ran < POSTERS * POSTS && ms_now() - t0 < 10000)
		ck_assert_int_ge(rsc_loop_run(st.loop, RSC_RUN_ONCE), s ? 1 : 0);
	for (i = 0; i < POSTERS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(p[i].failed, 0);
	}
	ck_assert_int_eq(st.ran, POSTERS * POSTS);
	ck_assert_int_eq(st.out_of_order, 0);
	ck_assert_int_eq(st.off_thread, 0);
	if (s) {
		/* Woken for them more than once: the poll stayed armed across wake-ups. */
		ck_assert_int_gt(rsc_loop_counter(st.loop, RSC_CTR_CQES), 2);
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	}
	ck_assert_int_eq(rsc_loop_run(st.loop, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(st.ran, POSTERS * POSTS); /* each once */
	ck_assert_int_eq(rsc_loop_close(st.loop), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

struct late_post {
	struct rsc_loop *loop;
	int ran, ret;
};

static void late_posted(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	((struct late_post *)arg)->ran++;
}

static void *post_later(void *arg)
{
	struct late_post *lp = arg;
	struct timespec ts = { 0, 100 * 1000000L };

	nanosleep(&ts, NULL);
	lp->ret = rsc_loop_post(lp->loop, late_posted, lp);
	return NULL;
}

START_TEST(eventfd_post_wakes_a_loop_waiting_in_run_once)
{
	struct late_post lp = { 0 };
	struct rsc_scope *s;
	pthread_t t;
	long long t0;
	int i;

	lp.loop = eventfd_loop(0);
	s = long_wait(lp.loop);
	/* Twice: the second wake-up comes through the poll the first left armed. */
	for (i = 1; i <= 2; i++) {
		ck_assert_int_eq(pthread_create(&t, NULL, post_later, &lp), 0);
		t0 = ms_now();
		while (lp.ran < i && ms_now() - t0 < 5000)
			ck_assert_int_eq(rsc_loop_run(lp.loop, RSC_RUN_ONCE), 1);
		pthread_join(t, NULL);
		ck_assert_int_eq(lp.ret, 0);
		ck_assert_int_eq(lp.ran, i);
		ck_assert_int_lt(ms_now() - t0, 5000);
	}
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_alive(lp.loop), 0);
	ck_assert_int_eq(rsc_loop_close(lp.loop), 0);
}
END_TEST

START_TEST(eventfd_loop_with_nothing_else_returns_from_run_default)
{
	struct rsc_loop *l = eventfd_loop(0);
	struct late_post lp = { l, 0, 0 };
	pthread_t t;

	/* The armed poll is no work: the loop is not alive for it. */
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, post_later, &lp), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(lp.ret, 0);
	ck_assert_int_eq(rsc_loop_alive(l), 1);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(lp.ran, 1);
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(lp.ran, 1);
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

START_TEST(closing_an_eventfd_loop_leaves_proc_fd_as_it_was)
{
	int before = t_fd_count(), efd_before[16], efd_after[16], n_before, n_after, efd = -1;
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int n = 0, i, j, sv[2];

	n_before = eventfds(efd_before, 16);
	/* Made while a fully audited scope is open: its eventfd is no leak. */
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "audited", &s), 0);
	before = t_fd_count();
	l = eventfd_loop(0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	/* Its ring and its eventfd, close-on-exec, and the runtime's own. */
	ck_assert_int_eq(t_fd_count(), before + 2);
	n_after = eventfds(efd_after, 16);
	ck_assert_int_eq(n_after, n_before + 1);
	for (i = 0; i < n_after && efd < 0; i++) {
		for (j = 0; j < n_before && efd_before[j] != efd_after[i]; j++)
			;
		if (j == n_before)
			efd = efd_after[i];
	}
	ck_assert_int_ge(efd, 0);
	ck_assert_int_eq(fcntl(efd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "thief", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &e), -EEXIST);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_post(l, count_post, &n), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(n, 1);
	/* A post never run, and its poll armed, when the loop closes. */
	ck_assert_int_eq(rsc_loop_post(l, count_post, &n), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(eventfds(efd_after, 16), n_before);
	/* Its number left the ledger: a descriptor that gets it can be adopted. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(dup3(sv[0], efd, O_CLOEXEC), efd);
	close(sv[0]);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "heir", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &e), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(sv[1]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(eventfd_post_wakes_a_host_polling_a_pollable_loop)
{
	struct rsc_loop *l = eventfd_loop(RSC_LOOP_POLLABLE);
	struct late_post lp = { l, 0, 0 };
	struct pollfd pfd;
	pthread_t t;
	int i, turns = 0;

	pfd.fd = rsc_loop_fd(l);
	pfd.events = POLLIN;
	ck_assert_int_ge(pfd.fd, 0);
	for (i = 1; i <= 2; i++) {
		/* Let the host settle with nothing to do (the poll is submitted). */
		while (poll(&pfd, 1, 20) == 1 && turns++ < 100)
			ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		ck_assert_int_eq(pthread_create(&t, NULL, post_later, &lp), 0);
		while (lp.ran < i && turns++ < 100) {
			ck_assert_int_eq(poll(&pfd, 1, 5000), 1); /* it must wake */
			ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		}
		pthread_join(t, NULL);
		ck_assert_int_eq(lp.ret, 0);
		ck_assert_int_eq(lp.ran, i);
	}
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

START_TEST(post_to_a_shared_ring_without_msg_ring_is_refused)
{
	int before = t_fd_count(), n = 0, ret;
	struct io_uring ring;
	struct rsc_loop *l;

	ck_assert_int_eq(io_uring_queue_init(64, &ring, 0), 0);
	ck_assert_int_eq(setenv("RINGSCOPE_FAULT", "msg_ring:1:EOPNOTSUPP", 1), 0);
	ret = rsc_loop_new_from_ring(&l, &ring, 0);
	ck_assert_int_eq(unsetenv("RINGSCOPE_FAULT"), 0);
	ck_assert_int_eq(ret, 0);
	ck_assert(!(rsc_loop_features(l) & RSC_FEAT_POST_EVENTFD));
	ck_assert_int_eq(t_fd_count(), before + 1); /* the application's ring only */
	ck_assert_int_eq(rsc_loop_post(l, count_post, &n), -EOPNOTSUPP);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "IORING_OP_MSG_RING"));
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(n, 0);
	io_uring_queue_exit(&ring);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(msg_ring_fault_rule_takes_only_eopnotsupp)
{
	ck_assert_int_eq(rsc_fault_set(t_loop, "msg_ring:1:EIO"), -EINVAL);
	ck_assert_int_eq(rsc_fault_set(t_loop, "msg_ring:1:EOPNOTSUPP"), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, ""), 0);
	/* Without the rule, a loop on this kernel wakes by MSG_RING if it can. */
	if (t_has_post_msg_ring())
		ck_assert(!(rsc_loop_features(t_loop) & RSC_FEAT_POST_EVENTFD));
}
END_TEST

/* ---- graceful close ------------------------------------------------------ */

struct gconn {
	char buf[16];
	int res;
};

static void on_echo_recv(struct rsc_entry *e, int res, void *buf, void *data);

static void on_echo_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct gconn *c = data;

	(void)buf;
	if (res > 0)
		ck_assert_int_eq(rsc_recv(e, c->buf, sizeof(c->buf), 0, on_echo_recv, c), 0);
}

static void on_echo_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct gconn *c = data;

	(void)buf;
	c->res = res;
	/* The reply to a request received during the grace may still start. */
	if (res > 0)
		ck_assert_int_eq(rsc_send(e, c->buf, (unsigned)res, 0, on_echo_sent, c), 0);
}

static int g_calls, g_status;
static unsigned g_drained, g_cancelled, g_failed;

static void on_graceful(struct rsc_scope *s, int status, const struct rsc_error *err,
			void *data)
{
	(void)err;
	(void)data;
	g_calls++;
	g_status = status;
	ck_assert_int_eq(rsc_scope_close_stats(s, &g_drained, &g_cancelled, &g_failed), 0);
}

START_TEST(graceful_close_lets_io_finish_then_cuts_the_rest)
{
	struct rsc_scope *srv, *busy, *idle;
	struct rsc_entry *b, *i;
	struct gconn cb = { .res = 1 }, ci = { .res = 1 };
	int sb[2], si[2], before = t_fd_count();
	long long t0;
	char got[16];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sb), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, si), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, srv, "busy", &busy), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, srv, "idle", &idle), 0);
	ck_assert_int_eq(rsc_adopt(busy, sb[0], 0, &b), 0);
	ck_assert_int_eq(rsc_adopt(idle, si[0], 0, &i), 0);
	ck_assert_int_eq(rsc_recv(b, cb.buf, sizeof(cb.buf), 0, on_echo_recv, &cb), 0);
	ck_assert_int_eq(rsc_recv(i, ci.buf, sizeof(ci.buf), 0, on_echo_recv, &ci), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	g_calls = 0;
	t0 = ms_now();
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 200, on_graceful, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 200, on_graceful, NULL), -EALREADY);
	/* Nothing more is acquired in it. */
	ck_assert_int_eq(rsc_scope_open(t_loop, srv, "late", &busy), -ESHUTDOWN);
	/* A request arrives during the grace: it is received and answered. */
	ck_assert_int_eq(write(sb[1], "ping", 4), 4);
	while (!g_calls)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(ms_now() - t0, 190); /* the idle recv held it to the end */
	ck_assert_int_lt(ms_now() - t0, 2000);
	ck_assert_int_eq(read(sb[1], got, sizeof(got)), 4);
	ck_assert_int_eq(memcmp(got, "ping", 4), 0);
	ck_assert_int_eq(g_status, 0);
	ck_assert_int_eq(ci.res, -ECANCELED);
	ck_assert_uint_eq(g_cancelled, 2); /* both recvs (the echo's next one too) */
	ck_assert_uint_eq(g_drained, 1);   /* the busy one's recv finished in the grace */
	ck_assert_uint_eq(g_failed, 0);
	close(sb[1]);
	close(si[1]);
	t_run();
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(graceful_close_of_an_idle_scope_unwinds_at_once)
{
	struct rsc_scope *s;
	long long t0 = ms_now();

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	t_open_files(s, 0, 2);
	t_run();
	g_calls = 0;
	ck_assert_int_eq(rsc_scope_close_graceful(s, 5000, on_graceful, NULL), 0);
	ck_assert_int_eq(g_calls, 0); /* never inside the call */
	t_run();
	ck_assert_int_eq(g_calls, 1);
	ck_assert_int_lt(ms_now() - t0, 1000);
	ck_assert_uint_eq(g_drained, 0);
	ck_assert_uint_eq(g_cancelled, 0);
	ck_assert(!t_fd_open_to(t_dir));
	ck_assert_int_eq(rsc_scope_close_graceful(NULL, 1, NULL, NULL), -EINVAL);
}
END_TEST

static struct sockaddr_in bound_listener(struct rsc_scope *s, unsigned flags, struct rsc_entry **lp)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), 16, flags, lp), 0);
	ck_assert_int_ge(rsc_entry_wait(*lp), 0);
	ck_assert_int_eq(getsockname(rsc_entry_fd(*lp), (struct sockaddr *)&a, &len), 0);
	return a;
}

static int accepted_n, accept_end;

static void on_conn(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *e,
		    void *data)
{
	(void)l;
	(void)cs;
	(void)e;
	(void)data;
	if (res >= 0)
		accepted_n++;
	else if (res == -ECANCELED)
		accept_end++;
}

START_TEST(graceful_close_stops_accepting_at_once)
{
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in a;
	int c, before = t_fd_count();

	if (!t_kernel_has(IORING_OP_SOCKET)) {
		printf("SKIP graceful_close_stops_accepting_at_once: kernel lacks IORING_OP_SOCKET\n");
		return;
	}
	accepted_n = accept_end = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	a = bound_listener(srv, 0, &l);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, on_conn, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	g_calls = 0;
	ck_assert_int_eq(rsc_scope_close_graceful(srv, 5000, on_graceful, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	(void)connect(c, (struct sockaddr *)&a, sizeof(a)); /* refused, or closed by the runtime */
	t_run();
	ck_assert_int_eq(g_calls, 1);
	ck_assert_int_eq(accept_end, 1);
	ck_assert_int_eq(accepted_n, 0);
	close(c);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ---- shutdown on release, one cancel for all ----------------------------- */

START_TEST(shutdown_on_release_sends_a_fin_despite_a_dup)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int sv[2], dup_fd;
	char b;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	dup_fd = dup(sv[0]); /* another descriptor keeps the socket alive */
	ck_assert_int_ge(dup_fd, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], RSC_SHUTDOWN_ON_RELEASE, &e), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	/* The peer sees end-of-file although dup_fd is still open. */
	ck_assert_int_eq(read(sv[1], &b, 1), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(dup_fd);
	close(sv[1]);
}
END_TEST

START_TEST(a_listener_shut_down_on_release_is_no_error)
{
	struct rsc_scope *s;
	struct rsc_entry *l;

	if (!t_kernel_has(IORING_OP_SOCKET)) {
		printf("SKIP a_listener_shut_down_on_release_is_no_error: kernel lacks IORING_OP_SOCKET\n");
		return;
	}
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	(void)bound_listener(s, RSC_SHUTDOWN_ON_RELEASE, &l);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(a_release_cancels_all_its_io_with_one_sqe)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	char b1[4], b2[4];
	int sv[2], r1 = 1, r2 = 1, t = 1;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &e), 0);
	ck_assert_int_eq(rsc_recv(e, b1, sizeof(b1), 0, t_store_res, &r1), 0);
	ck_assert_int_eq(rsc_recv(e, b2, sizeof(b2), 0, t_store_res, &r2), 0);
	ck_assert_int_eq(rsc_timeout(e, 100000, t_store_res, &t), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	ck_assert_int_eq(r1, -ECANCELED);
	ck_assert_int_eq(r2, -ECANCELED);
	ck_assert_int_eq(t, -ECANCELED);
	/* Op by op without IORING_ASYNC_CANCEL_FD (rsc_fault_set(3), cancel_fd). */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD), t_has_cancel_fd() ? 1 : 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(sv[1]);
}
END_TEST

/* ---- a loop another loop drives ------------------------------------------ */

START_TEST(pollable_loop_wakes_a_host_poll_for_its_work)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct pollfd pfd;
	int turns = 0;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_fd(t_loop), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_new(&l, 16, RSC_LOOP_POLLABLE), 0);
	ck_assert(rsc_loop_features(l) & RSC_FEAT_POLLABLE);
	ck_assert(!(rsc_loop_features(l) & RSC_FEAT_DEFER_TASKRUN));
	pfd.fd = rsc_loop_fd(l);
	pfd.events = POLLIN;
	ck_assert_int_ge(pfd.fd, 0);
	if (t_posts_poll_one_shot(l)) {
		/* Its refused multishot poll is a completion; the re-arm, SQEs to submit. */
		ck_assert_int_eq(poll(&pfd, 1, 0), 1);
		ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(poll(&pfd, 1, 0), 0); /* nothing to do yet */
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	/* A host loop sleeps in its poll; the loop's fd wakes it for every step. */
	while (rsc_entry_state(e) == RSC_ENTERING && turns++ < 100) {
		ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	while (rsc_loop_alive(l) && turns++ < 200) {
		ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert(!t_fd_open_to(t_dir));
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

static int pollable_msgs;
static char pollable_buf[8];

/* Re-armed from its own callback, inside the host's NOWAIT run. */
static void on_pollable_recv(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)buf;
	(void)data;
	if (res <= 0)
		return;
	pollable_msgs++;
	ck_assert_int_eq(rsc_recv(e, pollable_buf, sizeof(pollable_buf), 0, on_pollable_recv, NULL), 0);
}

START_TEST(pollable_loop_wakes_the_host_for_io_started_in_a_callback)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct pollfd pfd;
	int sv[2], i, turns = 0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_loop_new(&l, 16, RSC_LOOP_POLLABLE), 0);
	pfd.fd = rsc_loop_fd(l);
	pfd.events = POLLIN;
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &e), 0);
	pollable_msgs = 0;
	ck_assert_int_eq(rsc_recv(e, pollable_buf, sizeof(pollable_buf), 0, on_pollable_recv, NULL), 0);
	for (i = 1; i <= 3; i++) {
		/* Let the host settle with nothing to do, then send the next one. */
		while (poll(&pfd, 1, 20) == 1)
			ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		ck_assert_int_eq(write(sv[1], "m", 1), 1);
		while (pollable_msgs < i && turns++ < 100) {
			ck_assert_int_eq(poll(&pfd, 1, 5000), 1); /* it must wake */
			ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		}
		ck_assert_int_eq(pollable_msgs, i);
	}
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	while (rsc_loop_alive(l) && turns++ < 200) {
		ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(rsc_loop_close(l), 0);
	close(sv[1]);
}
END_TEST

START_TEST(shared_ring_never_takes_the_applications_completions)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[8], marker;
	int p[2], mine = 0, ours = 0, app_res = 0, i;

	t_make_files(3);
	ck_assert_int_eq(io_uring_queue_init(64, &ring, 0), 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ck_assert(rsc_loop_features(l) & RSC_FEAT_SHARED_RING);
	/* The application's own read, in flight on the same ring. */
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read(sqe, p[0], buf, sizeof(buf), 0);
	io_uring_sqe_set_data(sqe, &marker);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	t_open_files(s, 0, 3);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_ONCE), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EOPNOTSUPP);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(write(p[1], "hi", 2), 2);
	for (i = 0; i < 1000 && (!mine || rsc_entry_state(e) == RSC_ENTERING); i++) {
		ck_assert_int_ge(io_uring_submit_and_wait(&ring, 1), 0);
		while (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe) {
			int r = rsc_loop_dispatch(l, cqe);

			ck_assert_int_ge(r, 0);
			if (r == 0) {
				ck_assert_ptr_eq(io_uring_cqe_get_data(cqe), &marker);
				mine++;
				app_res = cqe->res;
			} else {
				ours++;
			}
			io_uring_cqe_seen(&ring, cqe);
		}
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(mine, 1);
	ck_assert_int_eq(app_res, 2);
	ck_assert_int_ge(ours, 4);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	/* Closing: the application reaps until the loop has nothing in flight. */
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	for (i = 0; i < 1000 && rsc_loop_alive(l); i++) {
		ck_assert_int_ge(io_uring_submit_and_wait(&ring, 1), 0);
		while (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe) {
			ck_assert_int_eq(rsc_loop_dispatch(l, cqe), 1);
			io_uring_cqe_seen(&ring, cqe);
		}
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert(!t_fd_open_to(t_dir));
	ck_assert_int_eq(rsc_loop_close(l), 0);
	/* The ring is still the application's. */
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_nop(sqe);
	ck_assert_int_eq(io_uring_submit_and_wait(&ring, 1), 1);
	io_uring_queue_exit(&ring);
	close(p[0]);
	close(p[1]);
}
END_TEST

static void count_entered(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
			  const struct rsc_entry *e, int res, void *data)
{
	(void)loop;
	(void)s;
	(void)e;
	(void)res;
	*(int *)data += ev == RSC_EV_ENTERED;
}

/* A CQE dispatched twice, or made up with ringscope's tag, is refused: nothing runs twice. */
START_TEST(shared_ring_refuses_a_cqe_given_twice_or_made_up)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe, copy, fake = { 0 };
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int i, enters = 0, dispatched = 0;

	t_make_files(1);
	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_set_trace(l, count_entered, &enters), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	for (i = 0; i < 1000 && !dispatched; i++) {
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(io_uring_submit_and_wait(&ring, 1), 0);
		if (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe) {
			copy = *cqe;
			ck_assert_int_eq(rsc_loop_dispatch(l, cqe), 1);
			io_uring_cqe_seen(&ring, cqe);
			dispatched = 1;
		}
	}
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(enters, 1);
	ck_assert_int_eq(rsc_loop_dispatch(l, &copy), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "in flight"));
	fake.user_data = (1ULL << 63) | (7ULL << 32) | 12345;
	ck_assert_int_eq(rsc_loop_dispatch(l, &fake), -EINVAL);
	ck_assert_int_eq(enters, 1);
	/* The loop goes on as if neither had come. */
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	for (i = 0; i < 1000 && (rsc_loop_run(l, RSC_RUN_NOWAIT), rsc_loop_alive(l)); i++) {
		ck_assert_int_ge(io_uring_submit_and_wait(&ring, 1), 0);
		while (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe) {
			ck_assert_int_eq(rsc_loop_dispatch(l, cqe), 1);
			io_uring_cqe_seen(&ring, cqe);
		}
	}
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert(!t_fd_open_to(t_dir));
	ck_assert_int_eq(rsc_loop_close(l), 0);
	io_uring_queue_exit(&ring);
}
END_TEST

Suite *make_server_suite(void)
{
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("servers");

	t_add_fixture(tc);
	tcase_add_test(tc, posts_from_four_threads_run_on_the_loop_in_order);
	tcase_add_test(tc, a_post_never_run_is_run_when_the_loop_closes);
	tcase_add_test(tc, graceful_close_lets_io_finish_then_cuts_the_rest);
	tcase_add_test(tc, graceful_close_of_an_idle_scope_unwinds_at_once);
	t_add_test_if(tc, graceful_close_stops_accepting_at_once, t_has_accept_multishot(),
		      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	t_add_test_if(tc, shutdown_on_release_sends_a_fin_despite_a_dup,
		      t_kernel_has(IORING_OP_SHUTDOWN), "IORING_OP_SHUTDOWN (Linux 5.11)");
	t_add_test_if(tc, a_listener_shut_down_on_release_is_no_error,
		      t_kernel_has(IORING_OP_SHUTDOWN), "IORING_OP_SHUTDOWN (Linux 5.11)");
	tcase_add_test(tc, a_release_cancels_all_its_io_with_one_sqe);
	tcase_add_test(tc, pollable_loop_wakes_a_host_poll_for_its_work);
	tcase_add_test(tc, pollable_loop_wakes_the_host_for_io_started_in_a_callback);
	tcase_add_test(tc, shared_ring_never_takes_the_applications_completions);
	tcase_add_test(tc, shared_ring_refuses_a_cqe_given_twice_or_made_up);
	suite_add_tcase(s, tc);
	/* The eventfd wake-up is reached on any kernel through a fault rule. */
	if (rsc_fault_set(t_probe_loop(), "") < 0) {
		printf("SKIP eventfd post tests: this build has no fault injection (configure --enable-fault-injection)\n");
		return s;
	}
	tc = tcase_create("posts by eventfd");
	t_add_fixture(tc);
	tcase_add_test(tc, eventfd_posts_from_four_threads_run_once_each_in_order);
	if (t_under_valgrind())
		printf("SKIP eventfd_post_wakes_a_loop_waiting_in_run_once: under valgrind, a thread waiting in io_uring_enter(2) keeps the posting thread from running\n");
	else
		tcase_add_test(tc, eventfd_post_wakes_a_loop_waiting_in_run_once);
	tcase_add_test(tc, eventfd_loop_with_nothing_else_returns_from_run_default);
	tcase_add_test(tc, closing_an_eventfd_loop_leaves_proc_fd_as_it_was);
	tcase_add_test(tc, eventfd_post_wakes_a_host_polling_a_pollable_loop);
	tcase_add_test(tc, post_to_a_shared_ring_without_msg_ring_is_refused);
	tcase_add_test(tc, msg_ring_fault_rule_takes_only_eopnotsupp);
	suite_add_tcase(s, tc);
	return s;
}
