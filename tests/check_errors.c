/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

START_TEST(strerror_names_negative_errnos)
{
	ck_assert_str_eq(rsc_strerror(-ENOENT), "No such file or directory");
	ck_assert_str_eq(rsc_strerror(ENOENT), "No such file or directory");
	ck_assert_str_eq(rsc_strerror(0), "Success");
	ck_assert_str_eq(rsc_strerror(-999999), "Unknown error");
	ck_assert_str_eq(rsc_err_name(-EMFILE), "EMFILE");
	ck_assert_str_eq(rsc_err_name(-ESHUTDOWN), "ESHUTDOWN");
	ck_assert_str_eq(rsc_err_name(-999999), "E?");
}
END_TEST

START_TEST(strerror_of_int_min_is_unknown)
{
	/* -INT_MIN does not exist: UBSan aborted here once. */
	ck_assert_str_eq(rsc_strerror(INT_MIN), "Unknown error");
	ck_assert_str_eq(rsc_err_name(INT_MIN), "E?");
	ck_assert_str_eq(rsc_strerror(INT_MAX), "Unknown error");
	ck_assert_str_eq(rsc_err_name(-INT_MAX), "E?");
}
END_TEST

START_TEST(last_error_describes_the_failed_call)
{
	struct rsc_scope *s;
	char longname[RSC_NAME_MAX + 8];

	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, longname, &s), -ENAMETOOLONG);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "at most"));
	ck_assert_int_eq(rsc_loop_run(t_loop, (enum rsc_run_mode)42), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "unknown mode 42"));
}
END_TEST

START_TEST(error_chain_outlives_callback_when_duplicated)
{
	struct rsc_scope *s;
	struct rsc_error *err = NULL, *copy = NULL;
	char small[16], full[512];
	int need;
	FILE *mem;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dup", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("nope"), O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	ck_assert_int_eq(rsc_error_dup(err, &copy), 0);
	rsc_error_free(err);
	/* The copy stands on its own after the original is freed. */
	ck_assert_int_eq(rsc_error_errno(copy), -ENOENT);
	ck_assert_str_eq(rsc_error_detail(copy), t_path("nope"));
	need = rsc_error_format(copy, small, sizeof(small));
	ck_assert_int_gt(need, (int)sizeof(small));
	ck_assert_int_eq(strlen(small), sizeof(small) - 1);
	ck_assert_int_eq(rsc_error_format(copy, full, sizeof(full)), need);
	ck_assert_ptr_nonnull(strstr(full, "openat"));
	ck_assert_ptr_nonnull(strstr(full, "ENOENT"));
	ck_assert_ptr_nonnull(strstr(full, "scope 'dup'"));
	mem = fmemopen(full, sizeof(full), "w");
	ck_assert_int_eq(rsc_error_print(copy, mem), 0);
	fclose(mem);
	ck_assert_ptr_nonnull(strstr(full, "error: openat"));
	rsc_error_free(copy);
	rsc_error_free(NULL); /* like free(3) */
}
END_TEST

START_TEST(error_getters_reject_null)
{
	char buf[8];
	struct rsc_error *e;

	ck_assert_int_eq(rsc_error_errno(NULL), -EINVAL);
	ck_assert_int_eq(rsc_error_depth(NULL), -EINVAL);
	ck_assert_str_eq(rsc_error_op(NULL), "");
	ck_assert_str_eq(rsc_error_entry(NULL), "");
	ck_assert_str_eq(rsc_error_detail(NULL), "");
	ck_assert_str_eq(rsc_error_scope(NULL), "");
	ck_assert_ptr_null(rsc_error_cause(NULL));
	ck_assert_int_eq(rsc_error_format(NULL, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(rsc_error_print(NULL, stdout), -EINVAL);
	ck_assert_int_eq(rsc_error_dup(NULL, &e), -EINVAL);
}
END_TEST

static int nop_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0; /* no SQE: entered from the loop */
}

static int eio_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return -EIO; /* one more link on the chain */
}

static const struct rsc_manager failing_exit = {
	.size = sizeof(struct rsc_manager), .name = "link", .enter = nop_enter, .exit = eio_exit,
};

struct chain_run {
	int links, status, depth, formatted, printed;
};

/* On a thread of small stack: recursion per link would overflow it at once. */
static void *build_long_chain(void *arg)
{
	struct chain_run *r = arg;
	struct rsc_scope *parent, *child;
	struct rsc_error *err = NULL;
	struct rsc_entry *early;
	struct rsc_loop *l;
	FILE *null;
	int i;

	ck_assert_int_eq(rsc_loop_new(&l, 256, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "parent", &parent), 0);
	ck_assert_int_eq(rsc_push(parent, &failing_exit, NULL, &early), 0);
	ck_assert_int_eq(rsc_scope_open(l, parent, "child", &child), 0);
	for (i = 0; i < r->links; i++)
		ck_assert_int_eq(rsc_push(child, &failing_exit, NULL, NULL), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	/* The child fails on its own: every exit adds a link above ENOENT. */
	ck_assert_int_eq(rsc_open(child, AT_FDCWD, "/nonexistent/a", O_RDONLY, 0, 0, NULL), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	/* The parent has an error of its own (a failed early release), so
	 * closing it copies the child's whole chain on top of that error. */
	ck_assert_int_eq(rsc_entry_release(early, NULL, NULL), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	r->status = rsc_scope_close_wait(parent, &err);
	r->depth = rsc_error_depth(err);
	r->formatted = rsc_error_format(err, NULL, 0);
	null = fopen("/dev/null", "we");
	ck_assert_ptr_nonnull(null);
	r->printed = rsc_error_print(err, null);
	fclose(null);
	rsc_error_free(err);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	return NULL;
}

START_TEST(long_error_chain_is_handled_without_recursion)
{
	struct chain_run r = { .links = 100000 };
	pthread_attr_t attr;
	pthread_t t;

	/* memcheck is ~50x slower: the shape matters here, not the size. */
	if (t_under_valgrind())
		r.links = 5000;
	ck_assert_int_eq(pthread_attr_init(&attr), 0);
	ck_assert_int_eq(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
	ck_assert_int_eq(pthread_create(&t, &attr, build_long_chain, &r), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	pthread_attr_destroy(&attr);
	/* Each exit's EIO, the child's ENOENT, then the parent's own EIO. */
	ck_assert_msg(r.status == -EIO, "status %d depth %d", r.status, r.depth);
	ck_assert_int_eq(r.depth, r.links + 2);
	ck_assert_int_gt(r.formatted, r.links * 40);
	ck_assert_int_eq(r.printed, 0);
}
END_TEST

Suite *make_errors_suite(void)
{
	Suite *s = suite_create("errors");
	TCase *tc = tcase_create("errors");

	t_add_fixture(tc);
	tcase_add_test(tc, strerror_names_negative_errnos);
	tcase_add_test(tc, strerror_of_int_min_is_unknown);
	tcase_add_test(tc, last_error_describes_the_failed_call);
	tcase_add_test(tc, error_chain_outlives_callback_when_duplicated);
	tcase_add_test(tc, error_getters_reject_null);
	tcase_add_test(tc, long_error_chain_is_handled_without_recursion);
	suite_add_tcase(s, tc);
	return s;
}
