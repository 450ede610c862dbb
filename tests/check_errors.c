/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
	suite_add_tcase(s, tc);
	return s;
}
