/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

/*
 * A FIFO opened for reading blocks until a writer shows up. io_uring tries
 * openat inline with O_NONBLOCK (which would not block); O_CREAT forces it
 * to io-wq in blocking mode (io_openat_force_async, io_uring/openclose.c).
 */
#define BLOCKING_FIFO_FLAGS (O_RDONLY | O_CREAT)

static const char *make_fifo(void)
{
	const char *p = t_path("fifo");

	ck_assert_int_eq(mkfifo(p, 0600), 0);
	return p;
}

static void spin_nowait(int turns)
{
	while (turns-- > 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
}

START_TEST(acquire_in_flight_is_cancelled_on_close)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	int before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cancel", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, make_fifo(), BLOCKING_FIFO_FLAGS, 0600, 0, &e), 0);
	spin_nowait(3);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERING);
	/* Nobody will ever write: only the cancel can end this acquire. */
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_null(err); /* a cancelled acquire is not an error */
	ck_assert_int_eq(t_count_events(RSC_EV_ENTER_FAILED), 1);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(acquire_that_wins_the_cancel_race_is_released)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	const char *fifo = make_fifo();
	int before = t_fd_count(), writer, i, late_fd = -1;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "race", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, fifo, BLOCKING_FIFO_FLAGS, 0600, 0, &e), 0);
	spin_nowait(3);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERING);
	/* The scope gives up; its cancel is prepared but not yet submitted... */
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	/* ...and the acquire completes successfully before the cancel lands. */
	/* ENXIO until the io-wq worker is blocked in the FIFO's open: wait for it. */
	for (i = 0; i < 2000; i++) {
		writer = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (writer >= 0 || errno != ENXIO)
			break;
		usleep(1000);
	}
	ck_assert_msg(writer >= 0, "writer open: %s", strerror(errno));
	usleep(20000);
	t_run();
	close(writer);
	for (i = 0; i < t_rec->n; i++)
		if (t_rec->ev[i].ev == RSC_EV_ENTERED)
			late_fd = t_rec->ev[i].res;
	ck_assert_msg(late_fd >= 0, "the acquire lost the race: nothing late to release");
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_LATE_ACQUIRES), 1);
	/* Ownership came from its own CQE, so the runtime released it. */
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
	ck_assert(!t_fd_open_to("fifo"));
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(release_while_entering_cancels)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int res = 1;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "early-cancel", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, make_fifo(), BLOCKING_FIFO_FLAGS, 0600, 0, &e), 0);
	spin_nowait(2);
	ck_assert_int_eq(rsc_entry_release(e, (rsc_entry_cb)NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), -EALREADY);
	t_run();
	ck_assert_int_eq(rsc_entry_state(e), RSC_FAILED);
	res = rsc_entry_fd(e);
	ck_assert_msg(res == -ECANCELED || res == -EINTR, "res %d", res);
	/* Released early, so it is neither pending nor unwound again. */
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(!t_fd_open_to("fifo"));
}
END_TEST

START_TEST(shutdown_unwinds_every_scope_lifo)
{
	struct rsc_scope *a, *b, *c;
	struct rsc_error *err = NULL;
	struct rsc_entry *pending;
	int before = t_fd_count(), i, own;
	char got[256];

	t_make_files(4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, b, "c", &c), 0);
	for (i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "f%d", i);
		ck_assert_int_eq(rsc_open(i < 2 ? a : (i == 2 ? b : c), AT_FDCWD,
					  t_path(name), O_RDONLY, 0, 0, NULL), 0);
	}
	ck_assert_int_eq(rsc_open(c, AT_FDCWD, make_fifo(), BLOCKING_FIFO_FLAGS, 0600, 0, &pending), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_loop_close(t_loop), -EBUSY);
	/* Shutdown cancels the blocked acquire and releases everything. */
	own = 1 + !!(rsc_loop_features(t_loop) & RSC_FEAT_POST_EVENTFD); /* its ring (and eventfd) */
	ck_assert_int_eq(rsc_loop_shutdown(t_loop, &err), 0);
	t_loop = NULL;
	ck_assert_ptr_null(err);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, NULL, got, sizeof(got)), 4);
	ck_assert_str_eq(got, "f3,f2,f1,f0");
	ck_assert_int_eq(t_fd_count(), before - own); /* the ring is gone too */
	/* The fixture's teardown expects its own loop: give it a fresh one. */
	ck_assert_int_eq(rsc_loop_new(&t_loop, 8, 0), 0);
}
END_TEST

Suite *make_cancel_suite(void)
{
	Suite *s = suite_create("cancel");
	TCase *tc = tcase_create("races");

	t_add_fixture(tc);
	tcase_add_test(tc, acquire_in_flight_is_cancelled_on_close);
	tcase_add_test(tc, acquire_that_wins_the_cancel_race_is_released);
	tcase_add_test(tc, release_while_entering_cancels);
	tcase_add_test(tc, shutdown_unwinds_every_scope_lifo);
	suite_add_tcase(s, tc);
	return s;
}
