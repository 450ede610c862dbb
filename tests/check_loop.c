/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

START_TEST(loop_reports_its_ring_setup)
{
	struct rsc_loop *l;
	int f = rsc_loop_features(t_loop);

	ck_assert_int_ge(f, 0);
	/* DEFER_TASKRUN never comes without SINGLE_ISSUER (io_uring_setup(2)). */
	if (f & RSC_FEAT_DEFER_TASKRUN)
		ck_assert(f & RSC_FEAT_SINGLE_ISSUER);
	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_NO_DEFER_TASKRUN), 0);
	ck_assert_int_eq(rsc_loop_features(l) & RSC_FEAT_DEFER_TASKRUN, 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

/* One open and close through @l: the ring works, whether registered or not. */
static void open_and_close_through(struct rsc_loop *l)
{
	struct rsc_scope *s;
	int before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(l, NULL, "reg", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(t_fd_count(), before + 1);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(t_fd_count(), before);
}

/*
 * A single-issuer ring is registered with its thread (Linux 5.18); a thread
 * has 16 such slots. Closing a loop gives its slot back, and loops beyond
 * the 16 run by their descriptor, the same.
 */
START_TEST(ring_registration_is_given_back_and_optional)
{
	struct rsc_loop *l[20];
	int i, registered = 0, base = rsc_loop_features(t_loop);

	if (!(base & RSC_FEAT_SINGLE_ISSUER) || !(base & RSC_FEAT_REGISTERED_RING)) {
		printf("SKIP ring_registration_is_given_back_and_optional: kernel cannot register a ring descriptor (Linux 5.18)\n");
		return;
	}
	for (i = 0; i < 40; i++) {
		ck_assert_int_eq(rsc_loop_new(&l[0], 8, 0), 0);
		ck_assert_msg(rsc_loop_features(l[0]) & RSC_FEAT_REGISTERED_RING,
			      "loop %d in a row has no slot: a closed loop kept its own", i);
		ck_assert_int_eq(rsc_loop_close(l[0]), 0);
	}
	for (i = 0; i < 20; i++) {
		ck_assert_int_eq(rsc_loop_new(&l[i], 8, 0), 0);
		registered += !!(rsc_loop_features(l[i]) & RSC_FEAT_REGISTERED_RING);
	}
	ck_assert_int_gt(registered, 0);
	ck_assert_int_lt(registered, 20); /* t_loop holds one of the 16 */
	for (i = 0; i < 20; i++)
		open_and_close_through(l[i]);
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(rsc_loop_close(l[i]), 0);
	/* A loop that other threads may enter is not tied to this one. */
	ck_assert_int_eq(rsc_loop_new(&l[0], 8, RSC_LOOP_NO_DEFER_TASKRUN), 0);
	ck_assert_int_eq(rsc_loop_features(l[0]) & RSC_FEAT_REGISTERED_RING, 0);
	open_and_close_through(l[0]);
	ck_assert_int_eq(rsc_loop_close(l[0]), 0);
}
END_TEST

START_TEST(largest_documented_rings_can_be_created)
{
	static const unsigned sizes[] = { 16384, 16385, 20000, 32768 };
	struct rsc_loop *l;
	unsigned i;
	int ret;

	/* The CQ is asked for at 4x; past 16384 that is beyond the kernel's 65536. */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		ret = rsc_loop_new(&l, sizes[i], 0);
		ck_assert_msg(ret == 0, "%u entries: %s", sizes[i], rsc_last_error());
		ck_assert_int_eq(rsc_loop_close(l), 0);
	}
	ck_assert_int_eq(rsc_loop_new(&l, 32769, 0), -EINVAL);
}
END_TEST

START_TEST(empty_loop_is_not_alive)
{
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
}
END_TEST

static void run_inside(struct rsc_entry *e, int res, void *data)
{
	struct rsc_loop *l = data;

	(void)e;
	(void)res;
	/* Re-entering the loop from its own callback is refused, not nested:
	 * one errno for it across the API. */
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_NOWAIT), -EDEADLK);
	ck_assert_int_eq(rsc_loop_close(l), -EDEADLK);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), -EDEADLK);
	ck_assert_int_eq(rsc_entry_wait(e), -EDEADLK);
	ck_assert_int_eq(rsc_scope_close_wait(rsc_entry_scope(e), NULL), -EDEADLK);
}

START_TEST(loop_is_not_reentrant)
{
	struct rsc_scope *s;
	struct rsc_entry *e;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cb", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, run_inside, t_loop), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_on_enter(e, run_inside, t_loop), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(loop_with_open_scope_refuses_to_close)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "open", &s), 0);
	ck_assert_int_eq(rsc_loop_close(t_loop), -EBUSY);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_loop_shutdown"));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(counters_track_the_lifecycle)
{
	struct rsc_scope *s;

	t_make_files(5);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "count", &s), 0);
	t_open_files(s, 0, 5);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("none"), O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ENOENT);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED), 5);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ENTER_FAILED), 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED), 5);
	/* On a kernel without MSG_RING, the posts' eventfd poll is one SQE more (no post, no CQE). */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_SQES) -
				 !!(rsc_loop_features(t_loop) & RSC_FEAT_POST_EVENTFD),
			 rsc_loop_counter(t_loop, RSC_CTR_CQES));
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_COUNT), -EINVAL);
}
END_TEST

START_TEST(steady_state_makes_no_pool_allocations)
{
	struct rsc_scope *s;
	long long allocs = 0;
	int round;

	t_make_files(32);
	for (round = 0; round < 5; round++) {
		if (round == 1)
			allocs = rsc_loop_counter(t_loop, RSC_CTR_POOL_ALLOCS);
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "steady", &s), 0);
		t_open_files(s, 0, 32);
		t_run();
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	}
	/* After the first round, pools serve every acquire and release. */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_POOL_ALLOCS), allocs);
}
END_TEST

Suite *make_loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("loop");

	t_add_fixture(tc);
	tcase_add_test(tc, loop_reports_its_ring_setup);
	tcase_add_test(tc, ring_registration_is_given_back_and_optional);
	tcase_add_test(tc, largest_documented_rings_can_be_created);
	tcase_add_test(tc, empty_loop_is_not_alive);
	tcase_add_test(tc, loop_is_not_reentrant);
	tcase_add_test(tc, loop_with_open_scope_refuses_to_close);
	tcase_add_test(tc, counters_track_the_lifecycle);
	tcase_add_test(tc, steady_state_makes_no_pool_allocations);
	suite_add_tcase(s, tc);
	return s;
}
