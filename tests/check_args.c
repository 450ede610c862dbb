/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tmgr.h"

/* Every public function: bad input gets a clear -errno, never a crash. */

START_TEST(loop_functions_reject_bad_input)
{
	struct rsc_loop *l = (struct rsc_loop *)&l;

	ck_assert_int_eq(rsc_loop_new(NULL, 8, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0x80), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "unknown flags"));
	ck_assert_int_eq(rsc_loop_new(&l, 1U << 20, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_features(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_run(NULL, RSC_RUN_DEFAULT), -EINVAL);
	ck_assert_int_eq(rsc_loop_run(t_loop, (enum rsc_run_mode)-1), -EINVAL);
	ck_assert_int_eq(rsc_loop_alive(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_close(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_shutdown(NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_audit(NULL, RSC_AUDIT_OFF), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, (enum rsc_audit_level)7), -EINVAL);
	ck_assert_int_eq(rsc_loop_audit_level(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_trace(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_counter(NULL, RSC_CTR_SQES), -EINVAL);
	ck_assert_int_eq(rsc_loop_counter(t_loop, (enum rsc_counter)-1), -EINVAL);
}
END_TEST

START_TEST(scope_functions_reject_bad_input)
{
	struct rsc_loop *other;
	struct rsc_scope *s, *foreign, *c;
	char name[RSC_NAME_MAX];

	ck_assert_int_eq(rsc_scope_open(NULL, NULL, "x", &s), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "x", NULL), -EINVAL);
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, name, &s), 0); /* 63 bytes fit */
	ck_assert_str_eq(rsc_scope_name(s), name);
	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "foreign", &foreign), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, foreign, "mixed", &c), -EXDEV);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "another loop"));
	ck_assert_int_eq(rsc_scope_close_wait(foreign, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(other), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, NULL, &c), 0); /* unnamed is fine */
	ck_assert_str_eq(rsc_scope_name(c), "");
	ck_assert_int_eq(rsc_scope_close_wait(c, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_state(NULL), -EINVAL);
	ck_assert_str_eq(rsc_scope_name(NULL), "");
	ck_assert_ptr_null(rsc_scope_error(NULL));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(push_functions_reject_bad_input)
{
	static char longpath[PATH_MAX + 16];
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct io_uring_sqe *sqe;
	struct tmgr m = { 0 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "args", &s), 0);
	ck_assert_int_eq(rsc_push(NULL, &tmgr_manager, &m, &e), -EINVAL);
	ck_assert_int_eq(rsc_push(s, NULL, &m, &e), -EINVAL);
	ck_assert_int_eq(rsc_open(NULL, AT_FDCWD, "/", O_RDONLY, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, NULL, O_RDONLY, 0, 0, &e), -EINVAL);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, longpath, O_RDONLY, 0, 0, &e), -ENAMETOOLONG);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/", O_RDONLY, 0, 0x100, &e), -EINVAL);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/", O_ACCMODE, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/", 0x40000000, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/x", O_CREAT | O_WRONLY, 010000, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_open(s, -5, "rel", O_RDONLY, 0, 0, &e), -EBADF);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/", O_RDONLY | O_CLOEXEC, 0, RSC_NO_CLOEXEC, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(NULL, AF_INET, SOCK_STREAM, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, RSC_FSYNC_ON_RELEASE, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, -1, SOCK_STREAM, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, 0, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM | 0x1000, 0, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, -3, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, RSC_NO_CLOEXEC, &e), -EINVAL);
	ck_assert_int_eq(rsc_entry_get_sqes(NULL, 1, &sqe), -EINVAL);
	/* None of the refusals acquired or submitted anything. */
	t_run();
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_SQES), 0);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(entry_functions_reject_bad_input)
{
	ck_assert_int_eq(rsc_entry_on_enter(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_release(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_wait(NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_fd(NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_state(NULL), -EINVAL);
	ck_assert_str_eq(rsc_entry_name(NULL), "");
	ck_assert_str_eq(rsc_entry_detail(NULL), "");
	ck_assert_ptr_null(rsc_entry_scope(NULL));
	ck_assert_ptr_null(rsc_entry_arg(NULL));
}
END_TEST

START_TEST(audit_functions_reject_bad_input)
{
	ck_assert_int_eq(rsc_audit_count(NULL), -EINVAL);
	ck_assert_ptr_null(rsc_audit_finding(NULL, 0));
	ck_assert_ptr_null(rsc_audit_finding(t_loop, 0));
	ck_assert_int_eq(rsc_audit_clear(NULL), -EINVAL);
	ck_assert_int_eq(rsc_audit_print(NULL, stdout), -EINVAL);
	ck_assert_int_eq(rsc_audit_print(t_loop, NULL), -EINVAL);
	ck_assert_int_eq(rsc_finding_kind(NULL), -EINVAL);
	ck_assert_int_eq(rsc_finding_fd(NULL), -EINVAL);
	ck_assert_str_eq(rsc_finding_target(NULL), "");
	ck_assert_str_eq(rsc_finding_scope(NULL), "");
	ck_assert_str_eq(rsc_finding_expected(NULL), "");
}
END_TEST

START_TEST(use_after_close_is_an_error_not_a_crash)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int ret;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "gone", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	/* Freed: every call with the old handles says so. */
	ret = rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, NULL);
	ck_assert_int_eq(ret, -ESTALE);
	ret = rsc_scope_close(s, NULL, NULL);
	ck_assert_int_eq(ret, -ESTALE);
	ret = rsc_entry_release(e, NULL, NULL);
	ck_assert_int_eq(ret, -ESTALE);
	t_run();
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

/* A pointer no call may leave behind in an output. */
#define POISON ((void *)(uintptr_t)0xdeadbeef)

/*
 * The pages: on failure an output pointer is NULL, whatever argument was
 * bad (a caller that tests it, or frees it, must not find garbage). Each
 * call with an output, refused for a NULL handle (or flags, or the wrong
 * process's loop being beyond a test), with the output poisoned first.
 */
START_TEST(every_output_is_null_after_a_failed_call)
{
	struct rsc_loop *loop = POISON;
	struct rsc_scope *scope = POISON;
	struct rsc_entry *e = POISON;
	struct rsc_error *err = POISON;
	struct rsc_chain *chain = POISON;
	struct sockaddr_in sin = { .sin_family = AF_INET };

#define EXPECT_NULL(call, out)                                                   \
	do {                                                                     \
		(out) = POISON;                                                  \
		ck_assert_msg((call) < 0, "%s succeeded", #call);               \
		ck_assert_msg((out) == NULL, "%s left its output set", #call);  \
	} while (0)

	EXPECT_NULL(rsc_loop_new(&loop, 8, 1U << 30), loop);
	EXPECT_NULL(rsc_loop_new_from_ring(&loop, NULL, 0), loop);
	EXPECT_NULL(rsc_loop_shutdown(NULL, &err), err);
	EXPECT_NULL(rsc_scope_open(NULL, NULL, "x", &scope), scope);
	EXPECT_NULL(rsc_scope_close_wait(NULL, &err), err);
	EXPECT_NULL(rsc_entry_release_wait(NULL, &err), err);
	EXPECT_NULL(rsc_push(NULL, &tmgr_manager, NULL, &e), e);
	EXPECT_NULL(rsc_defer(NULL, t_nop_exit, NULL, &e), e);
	EXPECT_NULL(rsc_open(NULL, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), e);
	EXPECT_NULL(rsc_socket(NULL, AF_INET, SOCK_STREAM, 0, 0, &e), e);
	EXPECT_NULL(rsc_connect(NULL, (struct sockaddr *)&sin, sizeof(sin), 0, 0, &e), e);
	EXPECT_NULL(rsc_listen(NULL, (struct sockaddr *)&sin, sizeof(sin), 8, 0, &e), e);
	EXPECT_NULL(rsc_adopt(NULL, 0, 0, &e), e);
	EXPECT_NULL(rsc_timer(NULL, 1, t_nop_io, NULL, &e), e);
	EXPECT_NULL(rsc_pipe(NULL, 0, &e), e);
	EXPECT_NULL(rsc_inbox(NULL, t_nop_accept, NULL, &e), e);
	EXPECT_NULL(rsc_chain_new(NULL, &chain), chain);
	EXPECT_NULL(rsc_chain_open(NULL, AT_FDCWD, "/dev/null", O_RDONLY, 0, &e), e);
	EXPECT_NULL(rsc_chain_socket(NULL, AF_INET, SOCK_STREAM, 0, &e), e);
	EXPECT_NULL(rsc_chain_connect(NULL, (struct sockaddr *)&sin, sizeof(sin), 0, &e), e);
	EXPECT_NULL(rsc_error_dup(NULL, &err), err);
#undef EXPECT_NULL
}
END_TEST

Suite *make_args_suite(void)
{
	Suite *s = suite_create("args");
	TCase *tc = tcase_create("bad-input");

	t_add_fixture(tc);
	tcase_add_test(tc, loop_functions_reject_bad_input);
	tcase_add_test(tc, scope_functions_reject_bad_input);
	tcase_add_test(tc, push_functions_reject_bad_input);
	tcase_add_test(tc, entry_functions_reject_bad_input);
	tcase_add_test(tc, audit_functions_reject_bad_input);
	tcase_add_test(tc, use_after_close_is_an_error_not_a_crash);
	tcase_add_test(tc, every_output_is_null_after_a_failed_call);
	suite_add_tcase(s, tc);
	return s;
}
