/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

/*
 * Multishot receive (rsc_recv_multishot): one tracked op, many receives into
 * the runtime's buffers. The peer of each socket is a plain descriptor of the
 * test's; the other end is owned by an entry.
 */

#define STREAM_MAX 65536

struct stream {
	char data[STREAM_MAX]; /* every byte received, in callback order */
	unsigned len;
	int calls, last_res, ended; /* ended: how many calls had res <= 0 */
	bool buf_null_at_end;
	int released_before_end; /* RSC_EV_RELEASED events when the last call came */
	struct rsc_entry *entry;
};

static void on_bytes(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct stream *st = data;

	ck_assert_ptr_eq(e, st->entry);
	ck_assert_msg(!st->ended, "a call after the last one (res %d)", res);
	st->calls++;
	st->last_res = res;
	if (res <= 0) {
		st->ended++;
		st->buf_null_at_end = buf == NULL;
		st->released_before_end = t_count_events(RSC_EV_RELEASED);
		return;
	}
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_le(st->len + (unsigned)res, STREAM_MAX);
	memcpy(st->data + st->len, buf, (size_t)res);
	/* The buffer is ours only now: scribbling on it must not show up later. */
	memset(buf, '#', (size_t)res);
	st->len += (unsigned)res;
}

static void run_until(struct stream *st, unsigned len)
{
	while (st->len < len && !st->ended)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
}

static void send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		ck_assert_int_gt(n, 0);
		p += n;
		len -= (size_t)n;
	}
}

/* Bytes 0..len-1 of a pattern that shows any reordering. */
static void pattern(char *p, unsigned len)
{
	unsigned i;

	for (i = 0; i < len; i++)
		p[i] = (char)('a' + (i * 7 + i / 26) % 26);
}

START_TEST(multishot_receives_in_order_with_one_sqe)
{
	static char sent[3 * 4096 + 100];
	struct stream *st = calloc(1, sizeof(*st));
	struct rsc_scope *s;
	long long sqes;
	unsigned off = 0;
	int peer, before = t_fd_count(), i;

	ck_assert_ptr_nonnull(st);
	pattern(sent, sizeof(sent));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "ms", &s), 0);
	st->entry = t_adopted_pair(s, &peer);
	t_run(); /* the adopt's announcement */
	t_settle_posts(t_loop); /* no eventfd poll of the loop's own in the count */
	sqes = rsc_loop_counter(t_loop, RSC_CTR_SQES);
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 0, on_bytes, st), 0);
	ck_assert_int_eq(st->calls, 0); /* from the loop, never inside the call */
	/* Small writes, each received on its own... */
	for (i = 0; i < 5; i++) {
		send_all(peer, sent + off, 10 + (unsigned)i);
		off += 10 + (unsigned)i;
		run_until(st, off);
		ck_assert_int_eq(rsc_entry_io_count(st->entry), 1);
	}
	/* ...and more than a buffer holds, split over several. */
	send_all(peer, sent + off, sizeof(sent) - off);
	run_until(st, sizeof(sent));
	ck_assert_uint_eq(st->len, sizeof(sent));
	ck_assert(!memcmp(st->data, sent, sizeof(sent)));
	ck_assert_int_ge(st->calls, 5 + 4); /* 4096-byte buffers by default */
	/* One SQE for all of it. */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_SQES) - sqes, 1);
	ck_assert_int_eq(st->ended, 0);
	/* The peer leaves: the last call, with 0 and no buffer. */
	close(peer);
	run_until(st, STREAM_MAX);
	ck_assert_int_eq(st->ended, 1);
	ck_assert_int_eq(st->last_res, 0);
	ck_assert(st->buf_null_at_end);
	ck_assert_int_eq(rsc_entry_io_count(st->entry), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
	free(st);
}
END_TEST

START_TEST(release_cancels_it_and_the_last_call_comes_first)
{
	struct stream *st = calloc(1, sizeof(*st));
	struct rsc_scope *s;
	int peer, before = t_fd_count();

	ck_assert_ptr_nonnull(st);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "ms", &s), 0);
	st->entry = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 0, on_bytes, st), 0);
	send_all(peer, "hello", 5);
	run_until(st, 5);
	ck_assert_int_eq(rsc_entry_release(st->entry, NULL, NULL), 0);
	/* Released: nothing new may start on it, and that is what a receive hears
	 * first, before that a multishot one is still in flight (-EBUSY). */
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 0, on_bytes, st), -EBADF);
	ck_assert_int_eq(rsc_recv(st->entry, st->data, 1, 0, on_bytes, st), -EBADF);
	t_run();
	/* Cancelled, told once, before the descriptor was released. */
	ck_assert_int_eq(st->ended, 1);
	ck_assert_int_eq(st->last_res, -ECANCELED);
	ck_assert(st->buf_null_at_end);
	ck_assert_int_eq(st->released_before_end, 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
	ck_assert_int_eq(rsc_entry_state(st->entry), RSC_EXITED);
	ck_assert_int_eq(st->len, 5);
	ck_assert(!memcmp(st->data, "hello", 5));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
	ck_assert_int_eq(t_fd_count(), before);
	free(st);
}
END_TEST

START_TEST(scope_unwind_cancels_it_before_the_close)
{
	struct stream *st = calloc(1, sizeof(*st));
	struct rsc_scope *s;
	int peer, before = t_fd_count();

	ck_assert_ptr_nonnull(st);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "ms", &s), 0);
	st->entry = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 0, on_bytes, st), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(st->ended, 1);
	ck_assert_int_eq(st->last_res, -ECANCELED);
	ck_assert_int_eq(st->released_before_end, 0);
	close(peer);
	ck_assert_int_eq(t_fd_count(), before);
	free(st);
}
END_TEST

/* Two buffers of 16 bytes: the ring runs dry at once, and the runtime re-arms. */
START_TEST(ring_running_dry_is_rearmed_inside)
{
	static char sent[1000];
	struct stream *st = calloc(1, sizeof(*st));
	struct rsc_scope *s;
	long long rearms = rsc_loop_counter(t_loop, RSC_CTR_RECV_REARMS);
	int peer;

	ck_assert_ptr_nonnull(st);
	pattern(sent, sizeof(sent));
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 2, 16), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "ms", &s), 0);
	st->entry = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 0, on_bytes, st), 0);
	send_all(peer, sent, sizeof(sent));
	run_until(st, sizeof(sent));
	ck_assert_uint_eq(st->len, sizeof(sent));
	ck_assert(!memcmp(st->data, sent, sizeof(sent)));
	ck_assert_int_ge(st->calls, (int)(sizeof(sent) / 16));
	ck_assert_int_eq(st->ended, 0); /* no -ENOBUFS for the caller */
	ck_assert_int_gt(rsc_loop_counter(t_loop, RSC_CTR_RECV_REARMS), rearms);
	ck_assert_int_eq(rsc_entry_io_count(st->entry), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(st->last_res, -ECANCELED);
	close(peer);
	free(st);
}
END_TEST

struct accepted {
	struct rsc_entry *conn;
	int res;
};

static void on_conn(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *conn,
		    void *data)
{
	struct accepted *a = data;

	(void)l;
	(void)cs;
	if (res >= 0)
		a->conn = conn;
	a->res = res;
}

/* A direct connection's receives name its slot (IOSQE_FIXED_FILE), as rsc_recv's do. */
START_TEST(multishot_on_a_direct_connection)
{
	static char sent[5000];
	struct stream *st = calloc(1, sizeof(*st));
	struct accepted acc = { 0 };
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct rsc_scope *s;
	struct rsc_entry *l;
	int cl, ret;

	ck_assert_ptr_nonnull(st);
	ret = rsc_loop_set_direct(t_loop, 16, 0);
	ck_assert_msg(ret == 0, "rsc_loop_set_direct: %s", rsc_last_error());
	pattern(sent, sizeof(sent));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &s), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&a, sizeof(a), 4, 0, &l), 0);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(getsockname(rsc_entry_fd(l), (struct sockaddr *)&a, &alen), 0);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT, on_conn, &acc), 0);
	cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(cl, (struct sockaddr *)&a, sizeof(a)), 0);
	while (!acc.conn)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	st->entry = acc.conn;
	ck_assert_int_ge(rsc_entry_slot(st->entry), 0);
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 0, on_bytes, st), 0);
	send_all(cl, sent, sizeof(sent));
	run_until(st, sizeof(sent));
	ck_assert_uint_eq(st->len, sizeof(sent));
	ck_assert(!memcmp(st->data, sent, sizeof(sent)));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(st->ended, 1);
	ck_assert_int_eq(st->last_res, -ECANCELED);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	close(cl);
	free(st);
}
END_TEST

static void set_buffers_inside(struct rsc_entry *e, int res, void *buf, void *data)
{
	int *ret = data;

	(void)e;
	(void)buf;
	if (res > 0)
		*ret = rsc_loop_set_recv_buffers(t_loop, 8, 64);
}

START_TEST(multishot_arguments_are_checked)
{
	struct stream *st = calloc(1, sizeof(*st));
	struct rsc_scope *s;
	char buf[8];
	int peer, inside = 1, ret;

	ck_assert_ptr_nonnull(st);
	/* The ring's geometry. */
	ck_assert_int_eq(rsc_loop_set_recv_buffers(NULL, 8, 64), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 3, 64), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 65536, 64), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 8, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 8, (1U << 20) + 1), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 8, 64), 0);
	/* The largest the page allows: 32 GiB of address space, memory only once the
	 * kernel fills a buffer (valgrind's address space may be smaller). */
	ret = rsc_loop_set_recv_buffers(t_loop, 32768, 1U << 20);
	ck_assert_msg(ret == 0 || (t_under_valgrind() && ret == -ENOMEM), "%s", rsc_err_name(ret));
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 0, 0), 0); /* freed */
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 0, 0), 0);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "args", &s), 0);
	st->entry = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot(NULL, 0, on_bytes, st), -EINVAL);
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 0, NULL, st), -EINVAL);
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 1, on_bytes, st), -EINVAL);
	/* A receive in flight already: one at a time, and never beside rsc_recv. */
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 0, on_bytes, st), 0);
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 0, on_bytes, st), -EBUSY);
	ck_assert_int_eq(rsc_recv(st->entry, buf, sizeof(buf), 0, on_bytes, st), -EBUSY);
	ck_assert_int_eq(rsc_entry_io_count(st->entry), 1);
	/* The buffers in use cannot change; nor from inside a callback. */
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 8, 64), -EBUSY);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(st->ended, 1);
	ck_assert_int_eq(st->calls, 1); /* only its end: the failed calls never call */
	close(peer);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "inside", &s), 0);
	st->entry = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 0, set_buffers_inside, &inside), 0);
	send_all(peer, "x", 1);
	while (inside == 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(inside, -EDEADLK);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
	/* A closing scope's entries take no new receive. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "closing", &s), 0);
	st->entry = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_recv_multishot(st->entry, 0, on_bytes, st), -ESHUTDOWN);
	t_run();
	close(peer);
	free(st);
}
END_TEST

Suite *make_multishot_suite(void)
{
	Suite *s = suite_create("multishot");
	TCase *tc = tcase_create("recv");

	t_add_fixture(tc);
	/* No probe sees IORING_RECV_MULTISHOT; IORING_OP_SEND_ZC came with it (6.0). */
	if (!t_has_recv_multishot()) {
		printf("SKIP multishot suite: kernel lacks IORING_RECV_MULTISHOT (Linux 6.0)\n");
		suite_add_tcase(s, tc);
		return s;
	}
	tcase_add_test(tc, multishot_receives_in_order_with_one_sqe);
	tcase_add_test(tc, release_cancels_it_and_the_last_call_comes_first);
	tcase_add_test(tc, scope_unwind_cancels_it_before_the_close);
	tcase_add_test(tc, ring_running_dry_is_rearmed_inside);
	tcase_add_test(tc, multishot_arguments_are_checked);
	if (t_kernel_has(IORING_OP_ACCEPT))
		t_add_socket_test(tc, multishot_on_a_direct_connection);
	else
		printf("SKIP multishot_on_a_direct_connection: kernel lacks IORING_OP_ACCEPT\n");
	suite_add_tcase(s, tc);
	return s;
}
