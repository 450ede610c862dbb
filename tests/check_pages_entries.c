/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tmgr.h"

/*
 * The entry, chain, socket and error pages read by a hostile tester: each
 * test names its page and the sentence it holds the library to, and watches
 * what the caller can see (errnos, /proc/self/fd, the order of callbacks).
 */

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* ---- rsc_entry_detach(3) + rsc_entry_move(3), full audit ----------------- */

/*
 * rsc_entry_detach(3): "a detached descriptor is never reported as leaked".
 * Opened in scope 'a', moved to 'b', detached there: 'a' must not call the
 * caller's descriptor its leak either.
 */
START_TEST(detached_after_a_move_is_no_leak_of_its_first_scope)
{
	struct rsc_scope *a, *b, *side;
	struct rsc_entry *e;
	int fd;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	/* A sibling open all along sees the number appear too. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "side", &side), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_move(e, b), 0);
	fd = rsc_entry_detach(e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(side, NULL), 0);
	ck_assert_msg(fd_is_open(fd), "the caller's descriptor was closed");
	ck_assert_msg(rsc_audit_count(t_loop) == 0, "%d finding(s), the first on scope '%s'",
		      rsc_audit_count(t_loop),
		      rsc_audit_count(t_loop) ? rsc_finding_scope(rsc_audit_finding(t_loop, 0)) : "");
	close(fd);
}
END_TEST

Suite *make_pages_entries_suite(void)
{
	Suite *s = suite_create("pages_entries");
	TCase *tc = tcase_create("entries");

	t_add_fixture(tc);
	tcase_add_test(tc, detached_after_a_move_is_no_leak_of_its_first_scope);
	suite_add_tcase(s, tc);
	return s;
}
