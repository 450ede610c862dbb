/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

/*
 * Hostile tests of the direct table, pipes, install, inboxes and hand-over,
 * written from their pages (rsc_loop_set_direct(3), rsc_entry_install(3),
 * rsc_pipe(3), rsc_inbox(3), rsc_audit_slots(3)) and DESIGN 7: every
 * resource has exactly one owner at every moment. Each test checks the
 * process table, rsc_loop_direct_used on every loop and the kernel's view.
 */

static int used(struct rsc_loop *loop)
{
	return rsc_loop_direct_used(loop);
}

static void note_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	*(int *)data = res;
}

/*
 * rsc_inbox(3): an inbox holds no descriptor (its value is 0, as a defer's).
 * Tracked I/O on it once acted on descriptor 0, which is nobody's here: a
 * read of stdin, an accept on it.
 */
START_TEST(inbox_is_no_descriptor_for_io)
{
	struct rsc_scope *s;
	struct rsc_entry *in;
	char buf[8];
	int n = 0, r = 1000;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_inbox(s, t_count_arrival, &n, &in), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_state(in), RSC_ENTERED);
	ck_assert_int_eq(rsc_read(in, buf, sizeof(buf), -1, note_io, &r), -EBADF);
	ck_assert_int_eq(rsc_write(in, "x", 1, -1, note_io, &r), -EBADF);
	ck_assert_int_eq(rsc_recv(in, buf, sizeof(buf), 0, note_io, &r), -EBADF);
	ck_assert_int_eq(rsc_send(in, "x", 1, 0, note_io, &r), -EBADF);
	ck_assert_int_eq(rsc_accept(in, 0, t_count_arrival, &n), -EBADF);
	ck_assert_int_eq(rsc_entry_install(in, 0, NULL, NULL), -EBADF);
	ck_assert_int_eq(rsc_entry_hand_over(in, 0, NULL, NULL), -EBADF);
	/* Its own keep-alive is its only I/O. */
	ck_assert_int_eq(rsc_entry_io_count(in), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(r, 1000);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(used(t_loop), 0);
}
END_TEST

Suite *make_hostile_direct2_suite(void)
{
	Suite *s = suite_create("hostile_direct2");
	TCase *tc = tcase_create("hostile_direct2");
	struct rsc_loop *probe;

	t_add_fixture(tc);
	suite_add_tcase(s, tc);
	if (rsc_loop_new(&probe, 8, RSC_LOOP_DIRECT) < 0) {
		printf("SKIP hostile_direct2 suite: kernel lacks a sparse direct table with allocation ranges (Linux 6.0): %s\n",
		       rsc_last_error());
		return s;
	}
	if (rsc_loop_close(probe) < 0)
		printf("probe loop did not close: %s\n", rsc_last_error());
	tcase_add_test(tc, inbox_is_no_descriptor_for_io);
	return s;
}
