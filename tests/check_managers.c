/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tmgr.h"

/* Runs the CLOEXEC child and returns what it printed (its open fds). */
static void exec_child_listing(char *out, size_t len)
{
	const char *child = getenv("CLOEXEC_CHILD");
	int pipefd[2], status;
	size_t used = 0;
	ssize_t n;
	pid_t pid;

	ck_assert_msg(child != NULL, "CLOEXEC_CHILD is not set (run through make check)");
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		execl(child, child, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], out + used, len - 1 - used)) > 0)
		used += (size_t)n;
	out[used] = '\0';
	close(pipefd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child %s failed: status %d", child, status);
}

START_TEST(descriptors_are_cloexec_unless_asked)
{
	struct rsc_scope *s;
	struct rsc_entry *def, *keep, *sock = NULL;
	char listing[8192], needle[64];
	bool sockets = t_kernel_has(IORING_OP_SOCKET);

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "exec", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &def), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f1"), O_RDONLY, 0,
				  RSC_NO_CLOEXEC, &keep), 0);
	if (sockets)
		ck_assert_int_eq(rsc_socket(s, AF_UNIX, SOCK_STREAM, 0, 0, &sock), 0);
	t_run();
	ck_assert_int_eq(fcntl(rsc_entry_fd(def), F_GETFD), FD_CLOEXEC);
	ck_assert_int_eq(fcntl(rsc_entry_fd(keep), F_GETFD), 0);
	exec_child_listing(listing, sizeof(listing));
	/* The child sees only what was asked to cross exec. */
	ck_assert_ptr_null(strstr(listing, t_path("f0")));
	snprintf(needle, sizeof(needle), "%d %s", rsc_entry_fd(keep), t_path("f1"));
	ck_assert_msg(strstr(listing, needle), "child saw:\n%s", listing);
	if (sock) {
		ck_assert_int_eq(fcntl(rsc_entry_fd(sock), F_GETFD), FD_CLOEXEC);
		snprintf(needle, sizeof(needle), "%d socket:", rsc_entry_fd(sock));
		ck_assert_ptr_null(strstr(listing, needle));
	}
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(exec_child_sees_none_of_the_runtimes_descriptors)
{
	struct rsc_scope *s;
	char listing[8192], *line;
	int lines = 0;

	t_make_files(8);
	/* Everything the runtime holds: ring, /proc handle, files, sockets. */
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "forked", &s), 0);
	t_open_files(s, 0, 8);
	if (t_kernel_has(IORING_OP_SOCKET))
		ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, 0, NULL), 0);
	t_run();
	exec_child_listing(listing, sizeof(listing));
	/* The test framework may pass its own files on; the runtime passes nothing. */
	for (line = strtok(listing, "\n"); line; line = strtok(NULL, "\n")) {
		ck_assert_msg(!strstr(line, t_dir) && !strstr(line, "socket:") &&
				      !strstr(line, "io_uring") && !strstr(line, "/fd"),
			      "exec'd child inherited a runtime descriptor: %s", line);
		lines++;
	}
	ck_assert_int_ge(lines, 2); /* at least the pipe it writes to, and stderr */
	/* The parent's scopes keep working after the fork. */
	t_open_files(s, 0, 2);
	t_run();
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED),
			 t_kernel_has(IORING_OP_SOCKET) ? 11 : 10);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

START_TEST(socket_entry_is_closed_on_unwind)
{
	struct rsc_scope *s;
	struct rsc_entry *e[3];
	char link[64], target[128];
	int before = t_fd_count(), i;
	ssize_t n;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sockets", &s), 0);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, 0, &e[0]), 0);
	ck_assert_int_eq(rsc_socket(s, AF_INET6, SOCK_DGRAM, 0, 0, &e[1]), 0);
	ck_assert_int_eq(rsc_socket(s, AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, 0, &e[2]), 0);
	t_run();
	for (i = 0; i < 3; i++) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", rsc_entry_fd(e[i]));
		n = readlink(link, target, sizeof(target) - 1);
		ck_assert_int_gt(n, 0);
		target[n] = '\0';
		ck_assert_msg(!strncmp(target, "socket:[", 8), "fd target %s", target);
	}
	ck_assert_str_eq(rsc_entry_detail(e[1]), "AF_INET6/SOCK_DGRAM");
	ck_assert_int_eq(t_fd_count(), before + 3);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert(!t_fd_open_to("socket:["));
}
END_TEST

START_TEST(hooks_without_sqes_complete_from_the_loop)
{
	struct tmgr m = { .enter = TM_ENTER_NOP, .exit = TM_EXIT_NONE };
	struct rsc_scope *s;
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "nosqe", &s), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &m, &e), 0);
	ck_assert_int_eq(m.enter_calls, 1);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERING);
	ck_assert_int_eq(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_ptr_eq(rsc_entry_arg(e), &m);
	ck_assert_str_eq(rsc_entry_name(e), "tmgr");
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(m.exit_calls, 1);
}
END_TEST

static int bad_enter(struct rsc_entry *e, void *arg)
{
	struct io_uring_sqe *sqes[2];

	(void)arg;
	ck_assert_int_eq(rsc_entry_get_sqes(e, 0, sqes), -EINVAL);
	ck_assert_int_eq(rsc_entry_get_sqes(e, RSC_ENTRY_SQES_MAX + 1, sqes), -EINVAL);
	ck_assert_int_eq(rsc_entry_get_sqes(e, 1, sqes), 0);
	io_uring_prep_nop(sqes[0]);
	/* A second reservation could split a chain across a submit. */
	ck_assert_int_eq(rsc_entry_get_sqes(e, 1, sqes), -EBUSY);
	return 0;
}

static int plain_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	(void)e;
	(void)p;
	(void)arg;
	return 0;
}

START_TEST(get_sqes_only_inside_hooks)
{
	static const struct rsc_manager m = { sizeof(struct rsc_manager), 0, "strict", bad_enter, plain_exit };
	struct io_uring_sqe *sqe;
	struct rsc_scope *s;
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "hooks", &s), 0);
	ck_assert_int_eq(rsc_push(s, &m, NULL, &e), 0);
	ck_assert_int_eq(rsc_entry_get_sqes(e, 1, &sqe), -EPERM);
	ck_assert_int_eq(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(full_submission_queue_flushes_and_keeps_going)
{
	struct rsc_loop *small;
	struct rsc_scope *s;
	struct rsc_error *err = NULL;
	int before;

	t_make_files(100);
	ck_assert_int_eq(rsc_loop_new(&small, 8, 0), 0);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(small, NULL, "flood", &s), 0);
	t_open_files(s, 0, 100);
	ck_assert_int_ge(rsc_loop_counter(small, RSC_CTR_SQ_FULL), 10);
	ck_assert_int_eq(rsc_loop_run(small, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_loop_counter(small, RSC_CTR_ACQUIRED), 100);
	ck_assert_int_eq(t_fd_count(), before + 100);
	/* 100 closes through an 8-slot SQ: none may be dropped. */
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_int_eq(rsc_loop_counter(small, RSC_CTR_RELEASED), 100);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_loop_close(small), 0);
}
END_TEST

static int busy_exit_calls;

#define BUSY_EXIT_FAILURES 50

/* An exit that finds no SQE many times, then succeeds: it must be retried. */
static int busy_twice_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct io_uring_sqe *sqe;

	(void)p;
	(void)arg;
	if (++busy_exit_calls <= BUSY_EXIT_FAILURES)
		return -EAGAIN;
	if (rsc_entry_get_sqes(e, 1, &sqe) < 0)
		return -EBUSY;
	io_uring_prep_nop(sqe);
	return 0;
}

static int nop_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
}

START_TEST(exit_without_sqe_is_retried_exactly_once_released)
{
	static const struct rsc_manager m = { sizeof(struct rsc_manager), 0, "busy", nop_enter, busy_twice_exit };
	struct rsc_scope *s;
	struct rsc_entry *e;

	busy_exit_calls = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "retry", &s), 0);
	ck_assert_int_eq(rsc_push(s, &m, NULL, &e), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	/* One turn retries at most a few times: far fewer than it fails. */
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_ge(busy_exit_calls, 1);
	ck_assert_int_lt(busy_exit_calls, BUSY_EXIT_FAILURES);
	/* Queued for a retry, it is being released: no second release. */
	ck_assert_int_eq(rsc_entry_state(e), RSC_EXITING);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), -EALREADY);
	t_run();
	ck_assert_int_eq(busy_exit_calls, BUSY_EXIT_FAILURES + 1);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
}
END_TEST

START_TEST(tiny_ring_still_fits_fsync_then_close)
{
	struct rsc_loop *tiny;
	struct rsc_scope *s;
	int before;

	t_make_files(3);
	/* Asked for one SQE; an fsync+close chain needs two in one submit. */
	ck_assert_int_eq(rsc_loop_new(&tiny, 1, 0), 0);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(tiny, NULL, "tiny", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_WRONLY, 0, RSC_FSYNC_ON_RELEASE, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f1"), O_WRONLY, 0, RSC_FSYNC_ON_RELEASE, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f2"), O_RDONLY, 0, 0, NULL), 0);
	ck_assert_int_eq(rsc_loop_run(tiny, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(t_fd_count(), before + 3);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(tiny, RSC_CTR_RELEASED), 3);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_loop_close(tiny), 0);
}
END_TEST

Suite *make_managers_suite(void)
{
	Suite *s = suite_create("managers");
	TCase *tc = tcase_create("builtin-and-custom");

	t_add_fixture(tc);
	tcase_add_test(tc, descriptors_are_cloexec_unless_asked);
	tcase_add_test(tc, exec_child_sees_none_of_the_runtimes_descriptors);
	if (t_kernel_has(IORING_OP_SOCKET))
		tcase_add_test(tc, socket_entry_is_closed_on_unwind);
	else
		printf("SKIP socket_entry_is_closed_on_unwind: kernel lacks IORING_OP_SOCKET\n");
	tcase_add_test(tc, hooks_without_sqes_complete_from_the_loop);
	tcase_add_test(tc, get_sqes_only_inside_hooks);
	tcase_add_test(tc, full_submission_queue_flushes_and_keeps_going);
	tcase_add_test(tc, tiny_ring_still_fits_fsync_then_close);
	tcase_add_test(tc, exit_without_sqe_is_retried_exactly_once_released);
	suite_add_tcase(s, tc);
	return s;
}
