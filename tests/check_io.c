/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

struct io_seen {
	int calls;
	int res;
	void *buf;
	int events_before; /* trace events recorded when the callback ran */
};

static void on_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct io_seen *seen = data;

	(void)e;
	seen->calls++;
	seen->res = res;
	seen->buf = buf;
	seen->events_before = t_count_events(RSC_EV_RELEASED);
}

static struct rsc_entry *open_entry(struct rsc_scope *s, const char *path, int oflags)
{
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_open(s, AT_FDCWD, path, oflags, 0600, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	return e;
}

/* One byte to a pipe whose read end is closed, on @loop: the callback's result. */
static int write_to_a_widowed_pipe(struct rsc_loop *loop)
{
	struct io_seen w = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "pipe", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[1], 0, &e), 0);
	ck_assert_int_eq(rsc_write(e, "x", 1, -1, on_io, &w), 0);
	ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(w.calls, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	return w.res;
}

/* rsc_read(3) NOTES: rsc_write is write(2), SIGPIPE included; the library
 * leaves the disposition alone, and an ignored signal is -EPIPE. */
START_TEST(write_to_a_pipe_without_reader_raises_sigpipe_unless_ignored)
{
	void (*old)(int);
	int status, before = t_fd_count();
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rsc_loop *loop;

		signal(SIGPIPE, SIG_DFL);
		if (rsc_loop_new(&loop, 8, 0) < 0)
			_exit(3);
		write_to_a_widowed_pipe(loop);
		_exit(0); /* not reached: the signal ends the child */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE, "status 0x%x", status);
	old = signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(write_to_a_widowed_pipe(t_loop), -EPIPE);
	signal(SIGPIPE, old);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* VmData of this process, in bytes (RLIMIT_DATA counts the same). */
static unsigned long data_bytes(void)
{
	unsigned long kb = 0;
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmData: %lu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}

/* A child whose data cannot grow more than 4 MiB: reads on an empty pipe,
 * each one in flight, until one is refused. Exits 0 if that was -ENOMEM. */
static void child_reads_until_out_of_memory(void)
{
	static char buf[1];
	struct io_seen seen = { 0 };
	struct rlimit lim;
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int p[2], ret = 0, i;

	if (rsc_loop_new(&loop, 64, 0) < 0 || pipe2(p, O_CLOEXEC) < 0 ||
	    rsc_scope_open(loop, NULL, "reads", &s) < 0 || rsc_adopt(s, p[0], 0, &e) < 0 ||
	    rsc_loop_run(loop, RSC_RUN_NOWAIT) < 0)
		_exit(3);
	lim.rlim_cur = lim.rlim_max = data_bytes() + (4UL << 20);
	if (setrlimit(RLIMIT_DATA, &lim) < 0)
		_exit(4);
	for (i = 0; i < 1000000 && ret == 0; i++)
		ret = rsc_read(e, buf, 1, -1, on_io, &seen);
	_exit(ret == -ENOMEM ? 0 : ret == -EBUSY ? 5 : 6);
}

/* rsc_read(3) ERRORS: -ENOMEM when no op can be had (it said -EBUSY, the
 * full submission queue's errno, for both). */
START_TEST(read_without_memory_for_its_op_is_enomem)
{
	int status;
	pid_t pid;

	if (t_under_valgrind()) /* its allocator ignores RLIMIT_DATA */
		return;
#ifdef __SANITIZE_ADDRESS__
	/* ASan's allocator dies on an allocation that fails instead of returning NULL. */
	printf("SKIP read_without_memory_for_its_op_is_enomem: AddressSanitizer build\n");
	return;
#endif
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		child_reads_until_out_of_memory();
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x", status);
}
END_TEST

START_TEST(write_then_read_back_through_the_entry)
{
	static const char text[] = "ringscope";
	struct io_seen w = { 0 }, r = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	char back[32] = { 0 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "rw", &s), 0);
	e = open_entry(s, t_path("data"), O_RDWR | O_CREAT);
	ck_assert_int_eq(rsc_write(e, text, sizeof(text), 0, on_io, &w), 0);
	ck_assert_int_eq(rsc_entry_io_count(e), 1);
	ck_assert_int_eq(w.calls, 0); /* from the loop, never inside the call */
	t_run();
	ck_assert_int_eq(w.res, (int)sizeof(text));
	ck_assert_ptr_eq(w.buf, text);
	ck_assert_int_eq(rsc_read(e, back, sizeof(back), 0, on_io, &r), 0);
	t_run();
	ck_assert_int_eq(r.res, (int)sizeof(text));
	ck_assert_str_eq(back, text);
	ck_assert_int_eq(rsc_entry_io_count(e), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* O_RDWR on a FIFO opens at once, and a read on it waits for a writer. */
static struct rsc_entry *blocked_read(struct rsc_scope *s, char *buf, unsigned len,
				      struct io_seen *seen)
{
	struct rsc_entry *e;

	ck_assert_int_eq(mkfifo(t_path("fifo"), 0600), 0);
	e = open_entry(s, t_path("fifo"), O_RDWR);
	ck_assert_int_eq(rsc_read(e, buf, len, -1, on_io, seen), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(seen->calls, 0);
	ck_assert_int_eq(rsc_entry_io_count(e), 1);
	return e;
}

START_TEST(unwind_cancels_io_before_the_close)
{
	struct io_seen seen = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[16];
	int before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "drain", &s), 0);
	e = blocked_read(s, buf, sizeof(buf), &seen);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	/* The read ended (cancelled) and handed its buffer back first... */
	ck_assert_int_eq(seen.calls, 1);
	ck_assert_msg(seen.res == -ECANCELED || seen.res == -EINTR, "res %d", seen.res);
	ck_assert_ptr_eq(seen.buf, buf);
	/* ...and only then was the descriptor released. */
	ck_assert_int_eq(seen.events_before, 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
	ck_assert_int_eq(t_fd_count(), before);
	(void)e;
}
END_TEST

START_TEST(early_release_drains_io_and_refuses_more)
{
	struct io_seen seen = { 0 }, late = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[16];
	int released = 0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "early", &s), 0);
	e = blocked_read(s, buf, sizeof(buf), &seen);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	(void)released;
	/* Being released: no new I/O may start on it. */
	ck_assert_int_eq(rsc_read(e, buf, sizeof(buf), -1, on_io, &late), -EBADF);
	t_run();
	ck_assert_int_eq(seen.calls, 1);
	ck_assert_int_eq(seen.events_before, 0);
	ck_assert_int_eq(rsc_entry_state(e), RSC_EXITED);
	ck_assert_int_eq(late.calls, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(!t_fd_open_to("fifo"));
}
END_TEST

START_TEST(io_arguments_are_checked)
{
	struct io_seen seen = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e, *failed;
	char buf[8];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "args", &s), 0);
	e = open_entry(s, t_path("x"), O_RDWR | O_CREAT);
	ck_assert_int_eq(rsc_read(NULL, buf, 8, 0, on_io, &seen), -EINVAL);
	ck_assert_int_eq(rsc_read(e, NULL, 8, 0, on_io, &seen), -EINVAL);
	ck_assert_int_eq(rsc_read(e, buf, 8, 0, NULL, &seen), -EINVAL);
	ck_assert_int_eq(rsc_read(e, buf, 8, -2, on_io, &seen), -EINVAL);
	ck_assert_int_eq(rsc_write(e, buf, 8, -7, on_io, &seen), -EINVAL);
	ck_assert_int_eq(rsc_recv(e, buf, 8, -1, on_io, &seen), -EINVAL);
	ck_assert_int_eq(rsc_send(e, NULL, 8, 0, on_io, &seen), -EINVAL);
	ck_assert_int_eq(rsc_entry_io_count(NULL), -EINVAL);
	/* A scope closing takes no new I/O, even on entries not yet released. */
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("missing/x"), O_RDONLY, 0, 0, &failed), 0);
	t_run();
	ck_assert_int_eq(rsc_read(failed, buf, 8, 0, on_io, &seen), -EBADF);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_write(e, buf, 8, 0, on_io, &seen), -EBADF);
	t_run();
	ck_assert_int_eq(seen.calls, 0);
}
END_TEST

START_TEST(shutdown_drains_io_in_flight)
{
	struct io_seen seen = { 0 };
	struct rsc_scope *s;
	char buf[16];
	int before = t_fd_count(), own;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "shutdown", &s), 0);
	(void)blocked_read(s, buf, sizeof(buf), &seen);
	own = 1 + !!(rsc_loop_features(t_loop) & RSC_FEAT_POST_EVENTFD); /* its ring (and eventfd) */
	ck_assert_int_eq(rsc_loop_shutdown(t_loop, NULL), 0);
	t_loop = NULL;
	ck_assert_int_eq(seen.calls, 1);
	ck_assert_int_eq(seen.events_before, 0);
	ck_assert_int_eq(t_fd_count(), before - own); /* and the ring */
	ck_assert_int_eq(rsc_loop_new(&t_loop, 8, 0), 0);
}
END_TEST

START_TEST(timer_fires_or_is_removed_by_its_release)
{
	struct io_seen fired = { 0 }, removed = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *t1, *t2;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "timers", &s), 0);
	ck_assert_int_eq(rsc_timer(s, 20, on_io, &fired, &t1), 0);
	ck_assert_int_eq(rsc_timer(s, 60000, on_io, &removed, &t2), 0);
	ck_assert_str_eq(rsc_entry_name(t1), "timer");
	while (fired.calls == 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(fired.res, -ETIME);
	ck_assert_int_eq(removed.calls, 0);
	ck_assert_int_eq(rsc_entry_io_count(t2), 1);
	/* A minute early: the release removes it, then the entry is released. */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(removed.calls, 1);
	ck_assert_int_eq(removed.res, -ECANCELED);
	ck_assert_int_eq(removed.events_before, 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 2);
}
END_TEST

START_TEST(timeout_on_an_entry_goes_with_it)
{
	struct io_seen seen = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "idle", &s), 0);
	e = open_entry(s, t_path("x"), O_RDWR | O_CREAT);
	ck_assert_int_eq(rsc_timeout(e, 60000, on_io, &seen), 0);
	ck_assert_int_eq(rsc_timeout(NULL, 1, on_io, &seen), -EINVAL);
	ck_assert_int_eq(rsc_timeout(e, 1, NULL, &seen), -EINVAL);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(seen.res, -ECANCELED);
	ck_assert_int_eq(rsc_entry_state(e), RSC_EXITED);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/*
 * rsc_entry_cancel_io(3) cancels the ops in flight at the call, never one
 * started after it: when one of them ended on its own first (a send done at
 * submit), the one cancel by descriptor falls short, and the ops it then
 * cancels one by one are only those that were there at the call.
 */
START_TEST(cancel_io_spares_io_started_after_it)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int peer, r1 = 1, r2 = 1, r3 = 1, i;
	char b1[8] = "", b3[8] = ""; /* valgrind cannot see the kernel write them */

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "io", &s), 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(e, b1, sizeof(b1), 0, t_store_res, &r1), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0); /* the recv waits in the kernel */
	ck_assert_int_eq(rsc_send(e, "hi", 2, 0, t_store_res, &r2), 0); /* done at its submit */
	ck_assert_int_eq(rsc_entry_cancel_io(e), 2);
	ck_assert_int_eq(rsc_recv(e, b3, sizeof(b3), 0, t_store_res, &r3), 0);
	for (i = 0; i < 10; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(r1, -ECANCELED);
	ck_assert_int_eq(r3, 1); /* still waiting: not the cancel's */
	ck_assert_int_eq(rsc_entry_io_count(e), 1);
	ck_assert_int_eq(write(peer, "xyz", 3), 3);
	while (r3 == 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(r3, 3);
	ck_assert_int_eq(memcmp(b3, "xyz", 3), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

/*
 * Bug 101: an entry's release or cancel_io reaches its own ops only, not those
 * of another entry whose descriptor is a dup(2) of its own (the kernel's
 * IORING_ASYNC_CANCEL_FD matches by open file, not by number).
 */
START_TEST(cancelling_one_entry_spares_a_dup_of_its_file)
{
	struct rsc_scope *s;
	struct rsc_entry *a, *b;
	char ba[2][8] = { { 0 } }, bb[8] = { 0 }; /* valgrind cannot see the kernel's writes */
	int sv[2], ra[2] = { 1, 1 }, rb = 1, before = t_fd_count();

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "dups", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &a), 0);
	ck_assert_int_eq(rsc_adopt(s, fcntl(sv[0], F_DUPFD_CLOEXEC, 0), 0, &b), 0);
	ck_assert_int_eq(rsc_recv(a, ba[0], sizeof(ba[0]), 0, t_store_res, &ra[0]), 0);
	ck_assert_int_eq(rsc_recv(a, ba[1], sizeof(ba[1]), 0, t_store_res, &ra[1]), 0);
	ck_assert_int_eq(rsc_recv(b, bb, sizeof(bb), 0, t_store_res, &rb), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0); /* all three waiting */
	if (_i == 0)
		ck_assert_int_eq(rsc_entry_release(a, NULL, NULL), 0);
	else
		ck_assert_int_eq(rsc_entry_cancel_io(a), 2);
	ck_assert_int_eq(t_io_wait(&ra[0]), -ECANCELED);
	ck_assert_int_eq(t_io_wait(&ra[1]), -ECANCELED);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rb, 1); /* still waiting */
	ck_assert_int_eq(rsc_entry_io_count(b), 1);
	ck_assert_int_eq(write(sv[1], "data", 4), 4);
	ck_assert_int_eq(t_io_wait(&rb), 4);
	ck_assert_int_eq(memcmp(bb, "data", 4), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(sv[1]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

Suite *make_io_suite(void)
{
	Suite *s = suite_create("io");
	TCase *tc = tcase_create("tracked");

	t_add_fixture(tc);
	tcase_add_test(tc, write_then_read_back_through_the_entry);
	t_add_test_if(tc, cancel_io_spares_io_started_after_it, t_has_cancel_fd(),
		      "IORING_ASYNC_CANCEL_FD (Linux 5.19)");
	tcase_add_test(tc, unwind_cancels_io_before_the_close);
	tcase_add_test(tc, early_release_drains_io_and_refuses_more);
	tcase_add_test(tc, io_arguments_are_checked);
	tcase_add_test(tc, shutdown_drains_io_in_flight);
	tcase_add_test(tc, timer_fires_or_is_removed_by_its_release);
	tcase_add_test(tc, timeout_on_an_entry_goes_with_it);
	tcase_add_test(tc, write_to_a_pipe_without_reader_raises_sigpipe_unless_ignored);
	tcase_add_test(tc, read_without_memory_for_its_op_is_enomem);
	tcase_add_loop_test(tc, cancelling_one_entry_spares_a_dup_of_its_file, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}
