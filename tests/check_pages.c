/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

/*
 * The man pages' promises, page by page: each test names its page and the
 * sentence it checks. What other suites already check is not repeated.
 */

/* ---- rsc_scope_close_graceful(3), rsc_scope_close_stats(3) --------------- */

/* What one scope's close callback saw. */
struct gstats {
	int calls, status, ret;
	unsigned drained, cancelled, failed;
};

static void on_gclose(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct gstats *g = data;

	(void)err;
	g->calls++;
	g->status = status;
	g->ret = rsc_scope_close_stats(s, &g->drained, &g->cancelled, &g->failed);
}

static void on_recv_note(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	*(int *)data = res;
}

/* A parent and a child with one connection waiting in a recv. */
static struct rsc_entry *parent_and_busy_child(struct rsc_scope **p, struct rsc_scope **c,
					       int *peer, char *buf, int *res)
{
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, *p, "c", c), 0);
	e = t_adopted_pair(*c, peer);
	ck_assert_int_eq(rsc_recv(e, buf, 8, 0, on_recv_note, res), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	return e;
}

/* rsc_scope_close_stats(3): *drained counts "entries of the subtree" let finish,
 * also those of a child in a grace of its own begun first. */
START_TEST(close_stats_drained_counts_a_child_graceful_first)
{
	struct gstats gp = { 0 }, gc = { 0 };
	struct rsc_scope *p, *c;
	int peer, res = 1;
	char buf[8];

	parent_and_busy_child(&p, &c, &peer, buf, &res);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, on_gclose, &gc), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_gclose, &gp), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1); /* both wait for the recv */
	ck_assert_int_eq(write(peer, "x", 1), 1);
	t_run();
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(gc.calls, 1);
	ck_assert_int_eq(gp.calls, 1);
	ck_assert_uint_eq(gc.drained, 1);
	ck_assert_uint_eq(gp.drained, 1);
	ck_assert_uint_eq(gc.cancelled + gp.cancelled, 0);
	close(peer);
}
END_TEST

/* rsc_scope_close_stats(3): the same when the child's own grace begins inside the parent's. */
START_TEST(close_stats_drained_counts_a_child_graceful_inside)
{
	struct gstats gp = { 0 }, gc = { 0 };
	struct rsc_scope *p, *c;
	int peer, res = 1;
	char buf[8];

	parent_and_busy_child(&p, &c, &peer, buf, &res);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_gclose, &gp), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(c, 0, on_gclose, &gc), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(write(peer, "x", 1), 1);
	t_run();
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(gc.calls + gp.calls, 2);
	ck_assert_uint_eq(gc.drained, 1);
	ck_assert_uint_eq(gp.drained, 1);
	ck_assert_uint_eq(gc.cancelled + gp.cancelled, 0);
	close(peer);
}
END_TEST

/* rsc_scope_close_stats(3): *exits_failed counts "entries of the subtree whose
 * release has completed with an error": a child's too, though the child is gone. */
START_TEST(close_stats_exits_failed_counts_a_childs_release)
{
	struct gstats gp = { 0 };
	struct rsc_scope *p, *c;
	struct rsc_entry *e;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	e = t_adopted_pair(c, &peer);
	(void)e;
	ck_assert_int_eq(rsc_fault_set(t_loop, "close:1:EIO"), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_gclose, &gp), 0);
	t_run();
	ck_assert_int_eq(gp.calls, 1);
	ck_assert_int_eq(gp.status, -EIO);
	ck_assert_uint_eq(gp.failed, 1);
	close(peer);
}
END_TEST

/* rsc_scope_close_graceful(3): an entry "released early" ends the I/O that
 * held the grace; the page's *drained counts it, *cancelled does not. */
START_TEST(close_stats_counts_an_early_release_as_drained)
{
	struct gstats gp = { 0 };
	struct rsc_scope *p, *c;
	struct rsc_entry *e;
	int peer, res = 1;
	char buf[8];

	e = parent_and_busy_child(&p, &c, &peer, buf, &res);
	ck_assert_int_eq(rsc_scope_close_graceful(p, 0, on_gclose, &gp), 0);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(res, -ECANCELED);
	ck_assert_int_eq(gp.calls, 1);
	ck_assert_uint_eq(gp.drained, 1);
	ck_assert_uint_eq(gp.cancelled, 0);
	close(peer);
}
END_TEST

Suite *make_pages_suite(void)
{
	Suite *s = suite_create("pages");
	TCase *tc = tcase_create("graceful");

	t_add_fixture(tc);
	tcase_add_test(tc, close_stats_drained_counts_a_child_graceful_first);
	tcase_add_test(tc, close_stats_drained_counts_a_child_graceful_inside);
	tcase_add_test(tc, close_stats_exits_failed_counts_a_childs_release);
	tcase_add_test(tc, close_stats_counts_an_early_release_as_drained);
	suite_add_tcase(s, tc);
	return s;
}
