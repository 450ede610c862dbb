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

/* Every injected failure ends with the documented error and nothing leaked. */

static void set_faults(const char *spec)
{
	int ret = rsc_fault_set(t_loop, spec);

	ck_assert_msg(ret == 0, "rsc_fault_set(%s): %s", spec, rsc_last_error());
}

/* Open 5 files in one scope; returns the scope's status after closing it. */
static int five_files(struct rsc_error **errp)
{
	struct rsc_scope *s;

	t_make_files(5);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "five", &s), 0);
	t_open_files(s, 0, 5);
	t_run();
	return rsc_scope_close_wait(s, errp);
}

static const int acquire_errnos[] = { EMFILE, ENFILE, ENOMEM, EACCES };

START_TEST(injected_openat_failure_unwinds_cleanly)
{
	int err = acquire_errnos[_i];
	struct rsc_error *chain = NULL;
	char spec[64];
	int before = t_fd_count();

	snprintf(spec, sizeof(spec), "openat:3:%s", rsc_err_name(-err));
	set_faults(spec);
	ck_assert_int_eq(five_files(&chain), -err);
	ck_assert_str_eq(rsc_error_op(chain), "openat");
	ck_assert_ptr_nonnull(strstr(rsc_error_detail(chain), "f2"));
	rsc_error_free(chain);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 1);
	/* The other four were acquired and released: exactly once each. */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED), 4);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED), 4);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(injected_socket_failure_unwinds_cleanly)
{
	int err = acquire_errnos[_i];
	struct rsc_error *chain = NULL;
	struct rsc_scope *s;
	char spec[64];
	int before = t_fd_count(), i;

	snprintf(spec, sizeof(spec), "socket:2:%s", rsc_err_name(-err));
	set_faults(spec);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "socks", &s), 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(rsc_socket(s, AF_UNIX, SOCK_STREAM, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, &chain), -err);
	ck_assert_str_eq(rsc_error_op(chain), "socket");
	rsc_error_free(chain);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED), 3);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(injected_close_eio_is_reported_and_still_closes)
{
	struct rsc_error *chain = NULL;
	int before = t_fd_count();

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	before = t_fd_count(); /* the audit's /proc handle is open now */
	set_faults("close:2:EIO");
	ck_assert_int_eq(five_files(&chain), -EIO);
	/* LIFO: the second close is f3's. */
	ck_assert_str_eq(rsc_error_op(chain), "close");
	ck_assert_ptr_nonnull(strstr(rsc_error_detail(chain), "f3"));
	ck_assert_int_eq(rsc_error_depth(chain), 1);
	rsc_error_free(chain);
	/* close(2) releases the number even when it reports EIO. */
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

START_TEST(injected_fsync_eio_keeps_the_close)
{
	struct rsc_error *chain = NULL;
	struct rsc_scope *s;
	int before = t_fd_count();

	t_make_files(2);
	set_faults("fsync:1:EIO");
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sync", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_WRONLY, 0, RSC_FSYNC_ON_RELEASE, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f1"), O_WRONLY, 0, RSC_FSYNC_ON_RELEASE, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, &chain), -EIO);
	ck_assert_str_eq(rsc_error_op(chain), "fsync");
	ck_assert_ptr_nonnull(strstr(rsc_error_detail(chain), "f1"));
	rsc_error_free(chain);
	/* Hard-linked: the failed fsync did not cancel its close. */
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(ring_faults_lose_nothing)
{
	static const char *const specs[] = {
		"submit:1:EBUSY,submit:3:EAGAIN", "submit:2:EINTR", "wait:1:EINTR,wait:2:EINTR",
		"sq_full:1:EBUSY,sq_full:4:EBUSY", "cq_overflow:1:EBUSY,cq_overflow:2:EBUSY",
	};
	const char *spec = specs[_i];
	int before = t_fd_count();

	set_faults(spec);
	ck_assert_int_eq(five_files(NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED), 5);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED), 5);
	if (!strncmp(spec, "wait", 4))
		t_scope_that_waits(50); /* the five may never have needed a wait */
	ck_assert_int_ge(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 1);
	if (!strncmp(spec, "submit:1", 8))
		ck_assert_int_ge(rsc_loop_counter(t_loop, RSC_CTR_BUSY_RETRIES), 2);
	if (!strncmp(spec, "sq_full", 7))
		ck_assert_int_ge(rsc_loop_counter(t_loop, RSC_CTR_SQ_FULL), 2);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(lost_cancel_still_releases_the_late_acquire)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int before = t_fd_count();

	t_make_files(1);
	set_faults("cancel:1:EALREADY");
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "late", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	/* Closed before the acquire was even submitted; its cancel is lost. */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_LATE_ACQUIRES), 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED), 1);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(lost_cancel_by_descriptor_still_ends_the_io)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *guard;
	char b1[4], b2[4];
	int peer, guard_peer, r1 = 1, r2 = 1, g = 1, before = t_fd_count();

	if (!t_kernel_has(IORING_OP_SOCKET))
		return; /* op by op there: no cancel by descriptor to lose */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = t_adopted_pair(s, &peer);
	guard = t_adopted_pair(s, &guard_peer);
	ck_assert_int_eq(rsc_recv(e, b1, sizeof(b1), 0, t_store_res, &r1), 0);
	ck_assert_int_eq(rsc_recv(e, b2, sizeof(b2), 0, t_store_res, &r2), 0);
	ck_assert_int_eq(rsc_timeout(guard, 5000, t_store_res, &g), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	/* The one SQE that cancels both receives finds neither, as if they had ended. */
	set_faults("cancel:1:EALREADY");
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	while ((r1 == 1 || r2 == 1) && g == 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(r1, -ECANCELED);
	ck_assert_int_eq(r2, -ECANCELED);
	ck_assert_int_eq(g, 1); /* not the guard's 5 s: the release did not wait for it */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(g, -ECANCELED);
	close(peer);
	close(guard_peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * A cancel the kernel keeps missing (-ENOENT: the target bounces between
 * poll and task work, where no cancel looks) is sent again for as long as
 * its target is in flight, not eight times: a receive on a quiet socket, or
 * an AF_UNIX connect to a full backlog blocked in io-wq, never ends by
 * itself, and a release (or a deadline) waiting for it would wait for ever.
 * Twelve misses here, then the real cancel.
 */
static void count_release(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)res;
	++*(int *)data;
}

START_TEST(cancel_that_keeps_missing_is_sent_until_its_target_ends)
{
	char spec[16 * 18] = "";
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct t_guard guard;
	char buf[4];
	int peer, r = 1, released = 0, i, before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, t_store_res, &r), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	for (i = 1; i <= 12; i++)
		snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "%scancel:%d:ENOENT",
			 i > 1 ? "," : "", i);
	set_faults(spec);
	ck_assert_int_eq(rsc_entry_release(e, count_release, &released), 0);
	t_guard_start(&guard, t_loop, 5000);
	while (!released && !guard.fired)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_msg(released, "the release still waits for its receive after 5 s (%lld cancels missed)",
		      rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED));
	t_guard_stop(&guard);
	ck_assert_int_eq(r, -ECANCELED);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 12);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(error_raised_while_a_child_unwinds_is_kept)
{
	struct rsc_error *chain = NULL;
	struct rsc_scope *p, *c;

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "parent", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "child", &c), 0);
	t_open_files(c, 0, 1);
	t_run();
	/* This acquire fails while the parent waits for its child to unwind. */
	set_faults("openat:1:EMFILE");
	t_open_files(p, 1, 1);
	ck_assert_int_eq(rsc_scope_close_wait(p, &chain), -EMFILE);
	ck_assert_str_eq(rsc_error_op(chain), "openat");
	rsc_error_free(chain);
}
END_TEST

START_TEST(busy_flush_of_a_full_queue_does_not_hang)
{
	struct rsc_loop *small;
	struct rsc_scope *s;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_new(&small, 8, 0), 0);
	ck_assert_int_eq(rsc_fault_set(small, "sq_full:1:EBUSY,submit:1:EAGAIN"), 0);
	ck_assert_int_eq(rsc_scope_open(small, NULL, "busy", &s), 0);
	/* Nothing is in the kernel yet: the flush must not wait for a CQE. */
	t_open_files(s, 0, 1);
	ck_assert_int_eq(rsc_loop_run(small, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_loop_counter(small, RSC_CTR_ACQUIRED), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(small), 0);
}
END_TEST

START_TEST(busy_submit_beside_an_idle_receive_does_not_hang)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	char b[4];
	int peer, r = 1, before = t_fd_count();

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "idle", &s), 0);
	e = t_adopted_pair(s, &peer);
	/* In the kernel, and it never ends by itself: no byte ever comes. */
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, t_store_res, &r), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	/* The kernel refuses the next submit: room must come from a retry, not that receive. */
	set_faults("submit:1:EBUSY");
	alarm(20); /* a hang fails the test */
	t_open_files(s, 0, 1);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_ge(rsc_loop_counter(t_loop, RSC_CTR_BUSY_RETRIES), 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED), 2);
	ck_assert_int_eq(r, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	alarm(0);
	ck_assert_int_eq(r, -ECANCELED);
	close(peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(cancel_with_no_room_is_sent_on_the_next_turn)
{
	struct rsc_loop *small;
	struct rsc_scope *o, *s, *g;
	struct rsc_entry *e, *guard;
	int peer, guard_peer, r = 1, timer = 1, i, before = t_fd_count();
	char b[4];

	t_make_files(8);
	ck_assert_int_eq(rsc_loop_new(&small, 8, 0), 0);
	t_settle_posts(small); /* the SQ holds no eventfd poll of the loop's own */
	ck_assert_int_eq(rsc_scope_open(small, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_scope_open(small, NULL, "guard", &g), 0);
	e = t_adopted_pair(o, &peer);
	guard = t_adopted_pair(g, &guard_peer);
	ck_assert_int_eq(rsc_recv(e, b, sizeof(b), 0, t_store_res, &r), 0);
	ck_assert_int_eq(rsc_timeout(guard, 5000, t_store_res, &timer), 0);
	ck_assert_int_ge(rsc_loop_run(small, RSC_RUN_NOWAIT), 0);
	/* The SQ full for real, and its flush interrupted: the receive's cancel finds no SQE. */
	ck_assert_int_eq(rsc_scope_open(small, NULL, "s", &s), 0);
	for (i = 0; i < 8; i++)
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(i ? "f1" : "f0"), O_RDONLY, 0, 0, NULL), 0);
	ck_assert_int_eq(rsc_fault_set(small, "submit:1:EINTR"), 0);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(small, RSC_CTR_FAULTS_INJECTED), 1);
	/* Kept, not dropped: the loop's next turn sends it. */
	while (r == 1 && timer == 1)
		ck_assert_int_ge(rsc_loop_run(small, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(r, -ECANCELED);
	ck_assert_int_eq(timer, 1); /* not the guard's 5 s */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(g, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(small), 0);
	close(peer);
	close(guard_peer);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(fault_spec_is_checked)
{
	struct rsc_loop *l;

	ck_assert_int_eq(rsc_fault_set(NULL, "openat:1:EIO"), -EINVAL);
	ck_assert_int_eq(rsc_fault_set(t_loop, "bogus:1:EIO"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "bogus:1:EIO"));
	ck_assert_int_eq(rsc_fault_set(t_loop, "openat:0:EIO"), -EINVAL);
	ck_assert_int_eq(rsc_fault_set(t_loop, "openat:1:ENOTANERRNO"), -EINVAL);
	ck_assert_int_eq(rsc_fault_set(t_loop, "openat:1"), -EINVAL);
	ck_assert_int_eq(rsc_fault_set(t_loop, "submit:1:EIO"), -EINVAL);
	ck_assert_int_eq(rsc_fault_set(t_loop, "wait:1:EBUSY"), -EINVAL);
	ck_assert_int_eq(rsc_fault_set(t_loop, "openat:1:EIO,close:x:EIO"), -EINVAL);
	ck_assert_int_eq(rsc_fault_set(t_loop, ""), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	ck_assert_int_eq(setenv("RINGSCOPE_FAULT", "openat:1:EACCES", 1), 0);
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(setenv("RINGSCOPE_FAULT", "openat:1", 1), 0);
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), -EINVAL);
	ck_assert_int_eq(unsetenv("RINGSCOPE_FAULT"), 0);
}
END_TEST

START_TEST(fault_rule_count_must_be_a_positive_number)
{
	static const char *const bad[] = {
		"openat:-1:EIO",  "openat:1x:EIO",	 "openat: 1:EIO",
		"openat:+1:EIO",  "openat::EIO",	 "openat:0x10:EIO",
		"openat:2147483648:EIO", "openat:18446744073709551616:EIO",
		"close:1:EIO,openat:-5:EMFILE",
	};
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(rsc_fault_set(t_loop, bad[i]) == -EINVAL, "accepted %s", bad[i]);
		ck_assert_ptr_nonnull(strstr(rsc_last_error(), "bad rule"));
	}
	ck_assert_int_eq(rsc_fault_set(t_loop, "openat:2147483647:EIO"), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "openat:007:EIO"), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, ""), 0);
}
END_TEST

START_TEST(environment_faults_apply_to_new_loops)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_error *chain = NULL;

	t_make_files(2);
	ck_assert_int_eq(setenv("RINGSCOPE_FAULT", "openat:2:EACCES", 1), 0);
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(unsetenv("RINGSCOPE_FAULT"), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "env", &s), 0);
	t_open_files(s, 0, 2);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &chain), -EACCES);
	rsc_error_free(chain);
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

/* A release whose cancel finds no SQE (the SQ full, its flush interrupted)
 * sends it on a later turn: it never waits for an op nobody cancelled. */
START_TEST(release_whose_cancel_finds_no_sqe_cancels_on_a_later_turn)
{
	struct rsc_loop *small;
	struct rsc_scope *s, *fill;
	struct rsc_entry *t;
	struct timespec t0, t1;
	int r = 1, i;

	t_make_files(8);
	ck_assert_int_eq(rsc_loop_new(&small, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(small, NULL, "timers", &s), 0);
	ck_assert_int_eq(rsc_scope_open(small, NULL, "fill", &fill), 0);
	ck_assert_int_eq(rsc_timer(s, 3000, t_store_res, &r, &t), 0);
	/* Entered, then its timeout submitted: in the kernel. */
	ck_assert_int_ge(rsc_loop_run(small, RSC_RUN_NOWAIT), 0);
	ck_assert_int_ge(rsc_loop_run(small, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_io_count(t), 1);
	t_open_files(fill, 0, 8); /* the SQ is full */
	ck_assert_int_eq(rsc_fault_set(small, "submit:1:EINTR"), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(rsc_entry_release(t, NULL, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(small, RSC_CTR_FAULTS_INJECTED), 1);
	for (i = 0; i < 5000 && r == 1; i++)
		ck_assert_int_ge(rsc_loop_run(small, RSC_RUN_ONCE), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* Cancelled, not waited out: 3 s is the timer's own time. */
	ck_assert_int_eq(r, -ECANCELED);
	ck_assert_int_lt((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 1000);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(fill, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(small), 0);
}
END_TEST

Suite *make_faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *tc;
	struct rsc_loop *probe;
	int n = sizeof(acquire_errnos) / sizeof(acquire_errnos[0]);
	bool have;

	if (rsc_loop_new(&probe, 8, 0) < 0)
		return s;
	have = rsc_fault_set(probe, "") == 0;
	(void)!rsc_loop_close(probe);
	if (!have) {
		printf("SKIP faults suite: this build has no fault injection (configure --enable-fault-injection)\n");
		return s;
	}
	/* Made only now: a TCase never added to the suite would leak. */
	tc = tcase_create("injected");
	t_add_fixture(tc);
	tcase_add_loop_test(tc, injected_openat_failure_unwinds_cleanly, 0, n);
	if (t_kernel_has(IORING_OP_SOCKET))
		tcase_add_loop_test(tc, injected_socket_failure_unwinds_cleanly, 0, n);
	else
		printf("SKIP injected_socket_failure_unwinds_cleanly: kernel lacks IORING_OP_SOCKET\n");
	tcase_add_test(tc, injected_close_eio_is_reported_and_still_closes);
	tcase_add_test(tc, injected_fsync_eio_keeps_the_close);
	tcase_add_loop_test(tc, ring_faults_lose_nothing, 0, 5);
	tcase_add_test(tc, lost_cancel_still_releases_the_late_acquire);
	tcase_add_test(tc, lost_cancel_by_descriptor_still_ends_the_io);
	tcase_add_test(tc, cancel_that_keeps_missing_is_sent_until_its_target_ends);
	tcase_add_test(tc, fault_spec_is_checked);
	tcase_add_test(tc, fault_rule_count_must_be_a_positive_number);
	tcase_add_test(tc, error_raised_while_a_child_unwinds_is_kept);
	tcase_add_test(tc, busy_flush_of_a_full_queue_does_not_hang);
	tcase_add_test(tc, busy_submit_beside_an_idle_receive_does_not_hang);
	tcase_add_test(tc, cancel_with_no_room_is_sent_on_the_next_turn);
	tcase_add_test(tc, release_whose_cancel_finds_no_sqe_cancels_on_a_later_turn);
	tcase_add_test(tc, environment_faults_apply_to_new_loops);
	suite_add_tcase(s, tc);
	return s;
}
