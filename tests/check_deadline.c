/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

static long long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int heard_status, heard;

static void on_closed(struct rsc_scope *s, int status, const struct rsc_error *err,
		      void *data)
{
	(void)s;
	(void)err;
	(void)data;
	heard++;
	heard_status = status;
}

START_TEST(deadline_cancels_io_and_unwinds_with_etimedout)
{
	struct rsc_scope *s;
	struct rsc_entry *r;
	struct rsc_error *err = NULL;
	char buf[8];
	int sv[2], res = 1, before = t_fd_count();
	long long t0;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "conn", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &r), 0);
	ck_assert_int_eq(rsc_recv(r, buf, sizeof(buf), 0, t_store_res, &res), 0);
	heard = 0;
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, NULL), 0);
	t0 = ms_now();
	ck_assert_int_eq(rsc_scope_set_deadline(s, 40, 0), 0);
	while (!heard)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(ms_now() - t0, 39);
	ck_assert_int_eq(heard_status, -ETIMEDOUT);
	ck_assert_int_eq(res, -ECANCELED); /* the recv was cancelled, its buffer handed back */
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ETIMEDOUT);
	ck_assert_str_eq(rsc_error_op(err), "deadline");
	rsc_error_free(err);
	close(sv[1]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(deadline_closes_an_acquire_that_completes_late)
{
	struct rsc_scope *s;
	struct rsc_entry *e;

	/* A FIFO with no writer: the open blocks in the kernel until cancelled. */
	ck_assert_int_eq(mkfifo(t_path("fifo"), 0600), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("fifo"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 20, 0), 0);
	heard = 0;
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, NULL), 0);
	while (!heard)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(heard_status, -ETIMEDOUT);
	/* Cancelled (FAILED), or it won the race and was released at once (EXITED). */
	ck_assert(rsc_entry_state(e) == RSC_FAILED || rsc_entry_state(e) == RSC_EXITED);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
	ck_assert(!t_fd_open_to("fifo"));
}
END_TEST

START_TEST(rearming_later_costs_no_sqe_and_never_fires)
{
	enum { DEADLINE_MS = 500, RUN_MS = 800 };
	struct rsc_scope *s, *w;
	struct rsc_entry *t;
	long long sqes, t0 = ms_now(), armed, longest_gap = 0;
	int i, fired = 0;

	t_settle_posts(t_loop); /* no eventfd poll of the loop's own in the count */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "wake", &w), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, DEADLINE_MS, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	sqes = rsc_loop_counter(t_loop, RSC_CTR_SQES);
	for (i = 0; i < 1000; i++)
		ck_assert_int_eq(rsc_scope_set_deadline(s, DEADLINE_MS, 0), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_SQES), sqes);
	/* Re-armed every 10 ms past the first kernel timer (lazy re-insert):
	 * it never fires, unless this machine stalled the test for a whole
	 * deadline between two re-arms (then the firing was due). */
	armed = ms_now();
	while (ms_now() - t0 < RUN_MS) {
		ck_assert_int_eq(rsc_timer(w, 10, t_store_res, &fired, &t), 0);
		while (rsc_entry_state(t) != RSC_EXITED && fired != -ETIME)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		fired = 0;
		ck_assert_int_eq(rsc_entry_release_wait(t, NULL), 0);
		if (ms_now() - armed > longest_gap)
			longest_gap = ms_now() - armed;
		if (rsc_loop_counter(t_loop, RSC_CTR_DEADLINES)) {
			ck_assert_msg(longest_gap >= DEADLINE_MS,
				      "a deadline re-armed every %lld ms at most fired", longest_gap);
			printf("INFO rearming_later_costs_no_sqe_and_never_fires: stalled %lld ms "
			       "between two re-arms: the deadline was due\n", longest_gap);
			(void)rsc_scope_close_wait(w, NULL);
			return;
		}
		ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
		ck_assert_int_eq(rsc_scope_set_deadline(s, DEADLINE_MS, 0), 0);
		armed = ms_now();
	}
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 0);
	/* Cleared: nothing keeps the loop alive. */
	ck_assert_int_eq(rsc_scope_set_deadline(s, 0, 0), 0);
	ck_assert_int_eq(rsc_scope_close_wait(w, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(a_deadline_moved_earlier_fires_then_not_at_the_old_time)
{
	struct rsc_scope *s, *t;
	long long t0 = ms_now();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "t", &t), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 10000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(t, 20000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 30, 0), 0); /* earlier: the kernel timer moves */
	heard = 0;
	ck_assert_int_eq(rsc_scope_on_close(s, on_closed, NULL), 0);
	while (!heard)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(ms_now() - t0, 29);
	ck_assert_int_lt(ms_now() - t0, 5000);
	ck_assert_int_eq(heard_status, -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_state(t), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(t, NULL), 0);
}
END_TEST

START_TEST(move_on_deadline_unwinds_without_an_error)
{
	struct rsc_scope *s;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	t_open_files(s, 0, 1);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 5, RSC_DEADLINE_MOVE_ON), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 5, 0x10), -EINVAL);
	t_run();
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert(!t_fd_open_to(t_dir));
	ck_assert_int_eq(rsc_scope_set_deadline(s, 5, 0), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 5, 0), -ESTALE);
	ck_assert_int_eq(rsc_scope_set_deadline(NULL, 5, 0), -EINVAL);
}
END_TEST

START_TEST(parent_deadline_takes_the_child_along_the_earliest_wins)
{
	struct rsc_scope *parent, *child;
	struct rsc_error *err = NULL;
	char got[128];

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "parent", &parent), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, parent, "child", &child), 0);
	t_open_files(parent, 0, 1);
	t_open_files(child, 1, 1);
	ck_assert_int_eq(rsc_scope_set_deadline(child, 10000, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(parent, 10, 0), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_state(parent), RSC_SCOPE_UNWOUND);
	/* Children first, then the parent's own entries. */
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, NULL, got, sizeof(got)), 2);
	ck_assert_msg(strstr(got, "f1") < strstr(got, "f0"), "order %s", got);
	ck_assert_int_eq(rsc_scope_close_wait(parent, &err), -ETIMEDOUT);
	rsc_error_free(err);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 1);
}
END_TEST

/* The parent's unwind waits for its newest child's release; an older child's
 * deadline that passes meanwhile has ended with the parent's, and never passes. */
START_TEST(parent_deadline_ends_every_child_deadline_at_once)
{
	struct rsc_scope *parent, *older, *newer;
	struct rsc_error *err = NULL;
	const struct rsc_error *c;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "parent", &parent), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, parent, "older", &older), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, parent, "newer", &newer), 0);
	t_open_files(newer, 0, 1);
	ck_assert_int_eq(rsc_scope_set_deadline(parent, 5, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(older, 6, 0), 0);
	usleep(20000); /* both due when the one timer fires */
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(parent, &err), -ETIMEDOUT);
	for (c = err; c; c = rsc_error_cause(c))
		ck_assert_msg(strcmp(rsc_error_scope(c), "older"),
			      "the older child's deadline passed after its parent's: %s %s",
			      rsc_error_op(c), rsc_error_scope(c));
	rsc_error_free(err);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 1);
}
END_TEST

/* A child's deadline moved later keeps its old key in the heap (moving later
 * costs nothing). When that key and the parent's earlier deadline come due in
 * one batch, the parent's passes first and ends the child's: the child once
 * passed first, with an ETIMEDOUT of its own, by its stale key's place. */
START_TEST(child_deadline_moved_later_never_passes_before_its_parent)
{
	struct rsc_scope *parent, *child;
	struct rsc_error *err = NULL;
	const struct rsc_error *c;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "parent", &parent), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, parent, "child", &child), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(child, 1, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(child, 30, 0), 0); /* later: lazy */
	ck_assert_int_eq(rsc_scope_set_deadline(parent, 20, 0), 0);
	usleep(50000); /* all due when the loop next looks */
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(parent, &err), -ETIMEDOUT);
	for (c = err; c; c = rsc_error_cause(c))
		ck_assert_msg(strcmp(rsc_error_scope(c), "child"),
			      "the child's deadline passed before its parent's earlier one: %s %s",
			      rsc_error_op(c), rsc_error_scope(c));
	ck_assert_str_eq(rsc_error_scope(err), "parent");
	rsc_error_free(err);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 1);
}
END_TEST

/* The last deadline cleared while no SQE can be had (the SQ full, its flush
 * interrupted): the kernel timer is removed on a later turn, not left to
 * keep the loop alive until its time. */
START_TEST(timer_of_a_cleared_deadline_is_removed_when_an_sqe_frees)
{
	struct rsc_loop *small = NULL;
	struct rsc_scope *s, *fill;
	long long t0;

	if (rsc_loop_new(&small, 8, 0) < 0 || rsc_fault_set(small, "") < 0) {
		printf("SKIP timer_of_a_cleared_deadline_is_removed_when_an_sqe_frees: no fault injection\n");
		if (small)
			ck_assert_int_eq(rsc_loop_close(small), 0);
		return;
	}
	t_make_files(8);
	t_settle_posts(small); /* the SQ holds no eventfd poll of the loop's own */
	ck_assert_int_eq(rsc_scope_open(small, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(small, NULL, "fill", &fill), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 3000, 0), 0);
	ck_assert_int_ge(rsc_loop_run(small, RSC_RUN_NOWAIT), 0); /* the timer is in the kernel */
	t_open_files(fill, 0, 8); /* the SQ is full */
	ck_assert_int_eq(rsc_fault_set(small, "submit:1:EINTR"), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 0, 0), 0);
	ck_assert_int_eq(rsc_loop_counter(small, RSC_CTR_FAULTS_INJECTED), 1);
	ck_assert_int_eq(rsc_scope_close_wait(fill, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	t0 = ms_now();
	ck_assert_int_eq(rsc_loop_run(small, RSC_RUN_DEFAULT), 0);
	ck_assert_int_lt(ms_now() - t0, 1000); /* 3 s is the timer's own time */
	ck_assert_int_eq(rsc_loop_counter(small, RSC_CTR_DEADLINES), 0);
	ck_assert_int_eq(rsc_loop_close(small), 0);
}
END_TEST

Suite *make_deadline_suite(void)
{
	Suite *s = suite_create("deadline");
	TCase *tc = tcase_create("deadlines");

	t_add_fixture(tc);
	tcase_add_test(tc, deadline_cancels_io_and_unwinds_with_etimedout);
	tcase_add_test(tc, deadline_closes_an_acquire_that_completes_late);
	tcase_add_test(tc, rearming_later_costs_no_sqe_and_never_fires);
	tcase_add_test(tc, move_on_deadline_unwinds_without_an_error);
	tcase_add_test(tc, a_deadline_moved_earlier_fires_then_not_at_the_old_time);
	tcase_add_test(tc, parent_deadline_takes_the_child_along_the_earliest_wins);
	tcase_add_test(tc, parent_deadline_ends_every_child_deadline_at_once);
	tcase_add_test(tc, child_deadline_moved_later_never_passes_before_its_parent);
	tcase_add_test(tc, timer_of_a_cleared_deadline_is_removed_when_an_sqe_frees);
	suite_add_tcase(s, tc);
	return s;
}
