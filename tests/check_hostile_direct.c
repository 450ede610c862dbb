/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

/*
 * Hostile tests of the direct table, linked acquire chains and pipes,
 * written from the man pages: each one once broke the library.
 */

static void direct_table(unsigned slots, unsigned chain_slots)
{
	int ret = rsc_loop_set_direct(t_loop, slots, chain_slots);

	ck_assert_msg(ret == 0, "rsc_loop_set_direct: %s: %s", rsc_strerror(ret),
		      rsc_last_error());
}

static int used(void)
{
	return rsc_loop_direct_used(t_loop);
}

/* t_dir/<n components of 200 'd's>/f: a path far longer than a line of 512. */
static void make_deep_file(char *path, size_t len, int n)
{
	char comp[201];
	int i, fd;

	memset(comp, 'd', 200);
	comp[200] = '\0';
	snprintf(path, len, "%s", t_dir);
	for (i = 0; i < n; i++) {
		size_t at = strlen(path);

		snprintf(path + at, len - at, "/%s", comp);
		ck_assert_int_eq(mkdir(path, 0700), 0);
	}
	strncat(path, "/f", len - strlen(path) - 1);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

/*
 * The kernel prints each slot's path on one line of the ring's fdinfo; a
 * path longer than the audit's line buffer must neither hide the slots
 * after it nor make up slots from its own text.
 */
START_TEST(audit_slots_reads_long_paths_whole)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	char deep[2048];
	int i;

	direct_table(16, 4);
	make_deep_file(deep, sizeof(deep), 6);
	t_make_files(3);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, deep, O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(i == 0 ? "f0" : i == 1 ? "f1" : "f2"),
					  O_RDONLY, 0, RSC_DIRECT, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
	}
	ck_assert_int_eq(used(), 4);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

struct accepted {
	int n, ended;
};

static void on_conn(struct rsc_entry *l, int res, struct rsc_scope *cs,
		    struct rsc_entry *conn, void *data)
{
	struct accepted *a = data;

	(void)l;
	(void)cs;
	(void)conn;
	if (res >= 0)
		a->n++;
	else
		a->ended = res;
}

/*
 * An armed direct accept is an acquire into the table: the table cannot be
 * unregistered or replaced under it (rsc_loop_set_direct(3): -EBUSY while
 * slots are being acquired), and the connection still lands in a slot.
 */
START_TEST(table_is_busy_while_a_direct_accept_is_armed)
{
	struct accepted acc = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	int cl;

	direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT | RSC_DIRECT, on_conn, &acc), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), -EBUSY);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 32, 8), -EBUSY);
	ck_assert_int_eq(used(), 0);
	cl = t_connect(&bound);
	while (acc.n < 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(acc.ended, -ECANCELED);
	ck_assert_int_eq(used(), 0);
	/* Once the accept has ended, the table is free to change. */
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
	ck_assert_int_eq(used(), -ENXIO);
	close(cl);
}
END_TEST

Suite *make_hostile_direct_suite(void)
{
	Suite *s = suite_create("hostile_direct");
	TCase *tc = tcase_create("hostile_direct");
	struct rsc_loop *probe;

	t_add_fixture(tc);
	suite_add_tcase(s, tc);
	if (rsc_loop_new(&probe, 8, RSC_LOOP_DIRECT) < 0) {
		printf("SKIP hostile_direct suite: kernel lacks a sparse direct table with allocation ranges (Linux 6.0): %s\n",
		       rsc_last_error());
		return s;
	}
	if (rsc_loop_close(probe) < 0)
		printf("probe loop did not close: %s\n", rsc_last_error());
	tcase_add_test(tc, audit_slots_reads_long_paths_whole);
	if (t_kernel_has(IORING_OP_ACCEPT))
		tcase_add_test(tc, table_is_busy_while_a_direct_accept_is_armed);
	else
		printf("SKIP table_is_busy_while_a_direct_accept_is_armed: kernel lacks IORING_OP_ACCEPT\n");
	return s;
}
