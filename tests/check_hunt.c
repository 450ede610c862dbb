/* SPDX-License-Identifier: MIT */
/*
 * Found by the long soak and fuzz hunts (tests/README.md, "Soak" and
 * "Fuzzing"): each test here failed before its fix.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

/* ---- completions set aside by a busy submit keep the kernel's order ---------- */

struct stream {
	struct rsc_loop *loop;
	struct rsc_scope *s;
	int peer;
	char got[16];
	int n, last, timer_ret, rule_ret, timer_res;
	bool stashed; /* the second and third bytes sent from the first call */
};

static void timer_ended(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e, (void)buf;
	*(int *)data = res;
}

static void send_byte(int fd, char c)
{
	ck_assert_int_eq(write(fd, &c, 1), 1);
}

/*
 * From the first receive, which came out of the set-aside completions: the
 * second byte (its CQE in the ring as the write returns: no DEFER_TASKRUN),
 * then an SQE taken with the queue "full" and the submit that flushes it
 * busy, which sets that CQE aside behind this one; then the third byte,
 * whose CQE stays in the ring, newer than the one set aside.
 */
static void on_bytes(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct stream *st = data;

	(void)e;
	if (res <= 0) {
		st->last = res;
		return;
	}
	if (st->n + res <= (int)sizeof(st->got))
		memcpy(st->got + st->n, buf, (size_t)res);
	st->n += res;
	if (st->stashed)
		return;
	st->stashed = true;
	send_byte(st->peer, '2');
	st->rule_ret = rsc_fault_set(st->loop, "sq_full:1:EBUSY,submit:1:EBUSY");
	st->timer_ret = rsc_timer(st->s, 60000, timer_ended, &st->timer_res, NULL);
	send_byte(st->peer, '3');
}

/*
 * rsc_recv_multishot(3): "cb runs ... for each receive, in the order of the
 * stream". The loop's reap dispatched the completions a busy submit had set
 * aside only as many as there were when it began: those set aside while it
 * ran waited behind newer ones still in the ring, so "123" was heard "132"
 * (found by the fuzzer as a chain whose third step entered before its first).
 */
START_TEST(completions_set_aside_during_their_dispatch_keep_stream_order)
{
	struct stream st = { .last = 1 };
	struct rsc_entry *e;
	int turns;

	if (!t_has_fault_injection())
	{
		printf("SKIP %s: built without fault injection\n",
		       "completions_set_aside_during_their_dispatch_keep_stream_order");
		return;
	}
	ck_assert_int_eq(rsc_loop_new(&st.loop, 64, RSC_LOOP_NO_DEFER_TASKRUN), 0);
	ck_assert_int_eq(rsc_scope_open(st.loop, NULL, "stream", &st.s), 0);
	e = t_adopted_pair(st.s, &st.peer);
	ck_assert_int_eq(rsc_recv_multishot(e, 0, on_bytes, &st), 0);
	ck_assert_int_ge(rsc_loop_run(st.loop, RSC_RUN_NOWAIT), 0);
	send_byte(st.peer, '1');
	/* The turn's submit is busy: the first byte's CQE is set aside. */
	ck_assert_int_eq(rsc_fault_set(st.loop, "submit:1:EBUSY"), 0);
	for (turns = 0; st.n < 3 && turns < 200; turns++)
		ck_assert_int_ge(rsc_loop_run(st.loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(st.rule_ret, 0);
	ck_assert_int_eq(st.timer_ret, 0);
	ck_assert_int_eq(st.n, 3);
	ck_assert_msg(memcmp(st.got, "123", 3) == 0, "the stream \"123\" was received as \"%.3s\"",
		      st.got);
	ck_assert_int_ge(rsc_loop_counter(st.loop, RSC_CTR_BUSY_RETRIES), 2);
	ck_assert_int_eq(rsc_fault_set(st.loop, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(st.s, NULL), 0);
	ck_assert_int_le(st.last, 0); /* its last call came with the release */
	ck_assert_int_eq(st.timer_res, -ECANCELED);
	close(st.peer);
	ck_assert_int_eq(rsc_loop_close(st.loop), 0);
}
END_TEST

/* ---- a submit that a failed SQE stopped is made again ---------------------- */

/* A loop of 8 SQEs made under @spec (RINGSCOPE_FAULT restored after). */
static struct rsc_loop *loop_under(const char *spec, unsigned flags)
{
	const char *env = getenv("RINGSCOPE_FAULT");
	char *saved = env ? strdup(env) : NULL;
	struct rsc_loop *l;
	int ret;

	ck_assert_int_eq(setenv("RINGSCOPE_FAULT", spec, 1), 0);
	ret = rsc_loop_new(&l, 8, flags);
	ck_assert_msg(ret == 0, "rsc_loop_new under %s: %s", spec, rsc_last_error());
	if (saved)
		ck_assert_int_eq(setenv("RINGSCOPE_FAULT", saved, 1), 0);
	else
		ck_assert_int_eq(unsetenv("RINGSCOPE_FAULT"), 0);
	free(saved);
	return l;
}

/*
 * Without IORING_SETUP_SUBMIT_ALL (a kernel before 5.18) io_uring_enter(2)
 * stops at the first SQE it refuses and leaves the rest in the queue. The
 * posts' eventfd poll of a loop without MSG_RING or multishot polls (a
 * kernel before 5.13) is such an SQE, prepared when the loop is made. A
 * reservation that found the queue full flushed it once, got one slot back,
 * and refused a chain of three with -EBUSY, "the submission queue is full
 * and could not be flushed", though a second flush empties it (found by the
 * soak's kind "missing", seed 0x3001 program 15093 under ASan).
 */
START_TEST(reservation_flushes_again_after_a_submit_stopped_by_a_refused_sqe)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_chain *ch;
	char name[16];
	int i, ret, entered;

	if (!t_has_fault_injection()) {
		printf("SKIP %s: built without fault injection\n",
		       "reservation_flushes_again_after_a_submit_stopped_by_a_refused_sqe");
		return;
	}
	t_make_files(9);
	l = loop_under("missing:submit_all,missing:msg_ring,missing:poll_multishot", RSC_LOOP_DIRECT);
	ck_assert(rsc_loop_features(l) & RSC_FEAT_POST_EVENTFD);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "full", &s), 0);
	/* The poll and six opens: one SQE of eight left. */
	for (i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(name), O_RDONLY, 0, 0, NULL), 0);
	}
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	for (i = 6; i < 9; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path(name), O_RDONLY, 0, NULL), 0);
	}
	ret = rsc_chain_submit(ch);
	ck_assert_msg(ret == 0, "rsc_chain_submit: %s (%s)", rsc_strerror(ret), rsc_last_error());
	for (i = 0; i < 100 && (int)rsc_loop_counter(l, RSC_CTR_ACQUIRED) < 9; i++)
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_ONCE), 0);
	entered = (int)rsc_loop_counter(l, RSC_CTR_ACQUIRED);
	ck_assert_int_eq(entered, 9);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(l, RSC_CTR_RELEASED), 9);
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

/*
 * rsc_loop_run(3): a turn "submits every SQE prepared since the last turn".
 * Without SUBMIT_ALL the kernel took the refused eventfd poll and stopped;
 * a RSC_RUN_NOWAIT turn left the connect behind it in the queue, so it
 * never reached the listener until some later turn (hostile_chains'
 * short_first_send_reports_what_the_peer_gets under this mask, after the
 * fuzzer's kind "missing" found the reservation's case above).
 */
START_TEST(nowait_turn_submits_past_an_sqe_the_kernel_refused)
{
	struct sockaddr_in to = t_loopback(0);
	socklen_t len = sizeof(to);
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct pollfd pfd;
	int lfd, conn;

	if (!t_has_fault_injection()) {
		printf("SKIP %s: built without fault injection\n",
		       "nowait_turn_submits_past_an_sqe_the_kernel_refused");
		return;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&to, sizeof(to)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&to, &len), 0);
	l = loop_under("missing:submit_all,missing:msg_ring,missing:poll_multishot", RSC_LOOP_DIRECT);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "conn", &s), 0);
	/* Direct: socket and connect linked, one submit (rsc_chain_new(3)). */
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&to, sizeof(to), 0, RSC_DIRECT, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	pfd = (struct pollfd){ .fd = lfd, .events = POLLIN };
	ck_assert_msg(poll(&pfd, 1, 2000) == 1, "the connect was not submitted by the turn");
	conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(conn, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	close(conn);
	close(lfd);
}
END_TEST

Suite *make_hunt_suite(void)
{
	Suite *s = suite_create("hunt");
	TCase *tc = tcase_create("hunt");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	t_add_test_if(tc, completions_set_aside_during_their_dispatch_keep_stream_order,
		      t_has_recv_multishot(), "IORING_RECV_MULTISHOT (Linux 6.0)");
	tcase_add_test(tc, reservation_flushes_again_after_a_submit_stopped_by_a_refused_sqe);
	tcase_add_test(tc, nowait_turn_submits_past_an_sqe_the_kernel_refused);
	suite_add_tcase(s, tc);
	return s;
}
