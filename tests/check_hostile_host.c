/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include "helpers.h"

/*
 * A loop another event loop drives (rsc_loop_fd(3)) and a loop on the
 * application's own ring (rsc_loop_new_from_ring(3)), as a hostile tester
 * reads their pages: the descriptor must poll readable whenever work is due,
 * with poll(2) and with an edge-triggered epoll(7), and go quiet when nothing
 * is; the application's ring loses none of its completions and sees none of
 * ringscope's after the loop is closed, whatever its setup, a full SQ or an
 * overflowing CQ.
 */

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static bool fd_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

/* A host that sleeps in poll(2): runs @l each time its fd wakes it, until
 * *@flag leaves @unset or @ms pass; 1 if it did, 0 if the host slept through. */
static int host_until(struct rsc_loop *l, const int *flag, int unset, int ms)
{
	long end = now_ms() + ms;
	int fd = rsc_loop_fd(l);

	while (*flag == unset) {
		long left = end - now_ms();

		if (left <= 0 || !fd_readable(fd, (int)left))
			return 0;
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	return 1;
}

/* The host's way out: run while the fd says so, until nothing is alive. */
static void host_drain(struct rsc_loop *l)
{
	long end = now_ms() + 5000;

	while (rsc_loop_alive(l) > 0 && now_ms() < end)
		if (fd_readable(rsc_loop_fd(l), 500))
			ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	ck_assert_msg(rsc_loop_alive(l) == 0, "the loop is alive but its fd stays quiet");
	while (fd_readable(rsc_loop_fd(l), 0))
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
}

/* Run while the fd says so, until it stays quiet for 50 ms. */
static void host_settle(struct rsc_loop *l)
{
	int turns = 0;

	while (fd_readable(rsc_loop_fd(l), 50)) {
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		ck_assert_int_lt(++turns, 1000);
	}
}

static void note_scope_closed(struct rsc_scope *s, int status, const struct rsc_error *err,
			      void *data)
{
	(void)s;
	(void)err;
	*(int *)data = status == 0 ? 1 : status;
}

/* ---- the descriptor when work waits for a later turn ---------------------- */

/*
 * An SQ filled with 8 receives on an idle socket that the host prepared and
 * a submit that is interrupted: the unwind's cancel of another receive finds
 * no SQE, and is kept for the loop's next turn (rsc_loop_run(3)). That turn
 * must come: the fd must be readable, or the host sleeps and the release
 * waits for ever for a receive that never ends.
 */
START_TEST(cancel_kept_for_the_next_turn_wakes_the_host)
{
	struct rsc_loop *l;
	struct rsc_scope *o, *g;
	struct rsc_entry *e, *idle;
	int peer, idle_peer, r = 1, closed = 0, i, before = t_fd_count();
	char b[4], ib[8][4];
	int ir[8];

	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE), 0);
	if (rsc_fault_set(l, "") == -EOPNOTSUPP) {
		printf("SKIP cancel_kept_for_the_next_turn_wakes_the_host: no fault injection in this build\n");
		ck_assert_int_eq(rsc_loop_close(l), 0);
		return;
	}
	ck_assert_int_eq(rsc_scope_open(l, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "g", &g), 0);
	e = t_adopted_pair(o, &peer);
	idle = t_adopted_pair(g, &idle_peer);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, t_store_res, &r), 0);
	host_settle(l);
	/* Eight receives that will not end fill the SQ, not yet submitted. */
	for (i = 0; i < 8; i++) {
		ir[i] = 1;
		ck_assert_int_eq(rsc_recv(idle, ib[i], sizeof(ib[i]), 0, t_store_res, &ir[i]), 0);
	}
	ck_assert_int_eq(rsc_scope_close(o, note_scope_closed, &closed), 0);
	ck_assert_int_eq(rsc_fault_set(l, "submit:1:EINTR"), 0);
	ck_assert_msg(host_until(l, &closed, 0, 3000),
		      "the host slept through a cancel kept for the next turn (receive: %d)", r);
	ck_assert_int_eq(r, -ECANCELED);
	ck_assert_int_eq(closed, 1);
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(ir[i], 1);
	ck_assert_int_eq(rsc_scope_close(g, NULL, NULL), 0);
	host_drain(l);
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(ir[i], -ECANCELED);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	close(peer);
	close(idle_peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * The same SQ, and a scope with a long deadline closed: the deadline's
 * kernel timer is removed on the unwind's turn, or, with no SQE, on the
 * next. If that turn never comes the timer keeps the loop alive for its
 * whole 10 s, and a host waiting for rsc_loop_alive(3) to say 0 waits.
 * (A guard: the retry runs in the same turn, before its submit.)
 */
START_TEST(deadline_removal_kept_for_the_next_turn_wakes_the_host)
{
	struct rsc_loop *l;
	struct rsc_scope *d, *g;
	struct rsc_entry *idle;
	long long cqes;
	int idle_peer, closed = 0, i, before = t_fd_count();
	char ib[8][4];
	int ir[8];

	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE), 0);
	if (rsc_fault_set(l, "") == -EOPNOTSUPP) {
		printf("SKIP deadline_removal_kept_for_the_next_turn_wakes_the_host: no fault injection in this build\n");
		ck_assert_int_eq(rsc_loop_close(l), 0);
		return;
	}
	ck_assert_int_eq(rsc_scope_open(l, NULL, "g", &g), 0);
	idle = t_adopted_pair(g, &idle_peer);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "d", &d), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(d, 10000, 0), 0);
	host_settle(l);
	ck_assert_int_eq(rsc_loop_alive(l), 1); /* the deadline's timer */
	for (i = 0; i < 8; i++) {
		ir[i] = 1;
		ck_assert_int_eq(rsc_recv(idle, ib[i], sizeof(ib[i]), 0, t_store_res, &ir[i]), 0);
	}
	cqes = rsc_loop_counter(l, RSC_CTR_CQES);
	ck_assert_int_eq(rsc_scope_close(d, note_scope_closed, &closed), 0);
	ck_assert_int_eq(rsc_fault_set(l, "submit:1:EINTR"), 0);
	ck_assert(host_until(l, &closed, 0, 3000));
	ck_assert_int_eq(rsc_loop_counter(l, RSC_CTR_FAULTS_INJECTED), 1);
	/* Only the idle receives are left: the timer's removal is due now,
	 * and its two completions (the removal, the timer's -ECANCELED) follow. */
	host_settle(l);
	ck_assert_msg(rsc_loop_counter(l, RSC_CTR_CQES) >= cqes + 2,
		      "the host slept while the deadline's timer waited to be removed");
	ck_assert_int_eq(rsc_scope_close(g, NULL, NULL), 0);
	host_drain(l);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	close(idle_peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

Suite *make_hostile_host_suite(void)
{
	Suite *s = suite_create("hostile_host");
	TCase *tc = tcase_create("hostile_host");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, cancel_kept_for_the_next_turn_wakes_the_host);
	tcase_add_test(tc, deadline_removal_kept_for_the_next_turn_wakes_the_host);
	suite_add_tcase(s, tc);
	return s;
}
