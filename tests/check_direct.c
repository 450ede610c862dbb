/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/*
 * Direct descriptors (the loop's registered file table) and linked acquire
 * chains. A slot never appears in /proc/self/fd: every test checks both the
 * process table (unchanged) and the loop's own (rsc_loop_direct_used).
 */

static int used(void)
{
	return rsc_loop_direct_used(t_loop);
}

/*
 * liburing 2.3's io_uring_prep_openat_direct(..., IORING_FILE_INDEX_ALLOC)
 * wraps the index to 0 and opens a normal descriptor: the runtime sets
 * file_index itself, and this proves the result is a slot.
 */
START_TEST(direct_open_fills_a_slot_not_a_descriptor)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[8] = "";
	int before, slot, fd, res = 1;

	t_direct_table(16, 4);
	fd = open(t_path("f0"), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_eq(write(fd, "abc", 3), 3);
	close(fd);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "direct", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	slot = rsc_entry_wait(e);
	ck_assert_msg(slot >= 0, "direct open: %s", rsc_strerror(slot));
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(rsc_entry_fd(e), -EBADFD);
	ck_assert_int_lt(slot, 12); /* the kernel's range, below the chain range */
	/* A slot, not a descriptor: /proc/self/fd did not change. */
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert(!t_fd_open_to("/f0"));
	ck_assert_int_eq(used(), 1);
	/* Tracked I/O on a slot: IOSQE_FIXED_FILE, the same call. */
	ck_assert_int_eq(rsc_read(e, buf, sizeof(buf), 0, t_store_res, &res), 0);
	ck_assert_int_eq(t_io_wait(&res), 3);
	ck_assert_str_eq(buf, "abc");
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(direct_slots_are_free_after_a_clean_unwind)
{
	struct rsc_scope *s;
	struct rsc_entry *sock;
	char got[256];
	int before = t_fd_count();

	t_direct_table(16, 4);
	t_make_files(3);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f1"), O_RDONLY, 0, RSC_DIRECT, NULL), 0);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, RSC_DIRECT, &sock), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f2"), O_RDONLY, 0, RSC_DIRECT, NULL), 0);
	ck_assert_int_ge(rsc_entry_wait(sock), 0);
	t_run();
	ck_assert_int_eq(used(), 4);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "s", got, sizeof(got)), 4);
	ck_assert_str_eq(got, "f2,AF_INET/SOCK_STREAM,f1,f0");
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

START_TEST(direct_fsync_on_release_goes_before_close_direct)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int res = 1;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("out"), O_WRONLY | O_CREAT, 0600,
				  RSC_DIRECT | RSC_FSYNC_ON_RELEASE, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_write(e, "data", 4, 0, t_store_res, &res), 0);
	ck_assert_int_eq(t_io_wait(&res), 4);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
}
END_TEST

START_TEST(direct_slots_are_free_after_a_failed_acquire)
{
	struct rsc_scope *s;
	struct rsc_error *err = NULL;
	char got[256];

	t_direct_table(16, 4);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f1"), O_RDONLY, 0, RSC_DIRECT, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("missing"), O_RDONLY, 0, RSC_DIRECT, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "s", got, sizeof(got)), 2);
	ck_assert_str_eq(got, "f1,f0");
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

START_TEST(direct_acquire_cancelled_by_close_frees_its_slot)
{
	struct rsc_scope *s;
	const char *fifo = t_path("fifo");
	int i;

	t_direct_table(16, 4);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	/* No writer: the open blocks in io-wq until the close cancels it. */
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, fifo, O_RDONLY, 0, RSC_DIRECT, NULL), 0);
	for (i = 0; i < 5; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	(void)rsc_scope_close_wait(s, NULL);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

static void count_ev(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
		     const struct rsc_entry *e, int res, void *data)
{
	int *n = data;

	(void)loop;
	(void)s;
	(void)e;
	(void)res;
	if (ev == RSC_EV_ENTERED)
		n[0]++;
	else if (ev == RSC_EV_RELEASED)
		n[1]++;
}

START_TEST(shutdown_releases_every_direct_slot)
{
	struct rsc_loop *loop;
	struct rsc_scope *a, *b;
	struct rsc_entry *e;
	int n[2] = { 0, 0 }, before = t_fd_count();

	t_make_files(3);
	ck_assert_int_eq(rsc_loop_new(&loop, 32, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_loop_direct_used(loop), 0);
	ck_assert_int_eq(rsc_loop_set_trace(loop, count_ev, n), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(loop, a, "b", &b), 0);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, NULL), 0);
	ck_assert_int_eq(rsc_open(b, AT_FDCWD, t_path("f1"), O_RDONLY, 0, RSC_DIRECT, NULL), 0);
	ck_assert_int_eq(rsc_open(b, AT_FDCWD, t_path("f2"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_loop_run(loop, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_loop_direct_used(loop), 3);
	ck_assert_int_eq(rsc_loop_shutdown(loop, NULL), 0);
	ck_assert_int_eq(n[0], 3);
	ck_assert_int_eq(n[1], 3);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(chain_middle_step_failure_unwinds_exactly_the_successful_steps)
{
	struct rsc_entry *a, *b, *c, *d;
	struct rsc_error *err = NULL;
	struct rsc_chain *ch;
	struct rsc_scope *s;
	char got[256];
	int before = t_fd_count();

	t_direct_table(16, 8);
	t_make_files(3);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &a), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f1"), O_RDONLY, 0, &b), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("missing"), O_RDONLY, 0, &c), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f2"), O_RDONLY, 0, &d), 0);
	ck_assert_ptr_null(a); /* set by the submit */
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	ck_assert_ptr_nonnull(d);
	/* One chain: the steps after the failing one never ran. */
	t_run();
	ck_assert_int_eq(rsc_entry_state(c), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_slot(c), -ENOENT);
	ck_assert_int_eq(rsc_entry_state(d), RSC_FAILED);
	ck_assert_int_eq(rsc_entry_slot(d), -ECANCELED);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	/* Only the real failure: the cancelled step is no error of its own. */
	ck_assert_int_eq(rsc_error_depth(err), 1);
	ck_assert_str_eq(rsc_error_op(err), "openat");
	rsc_error_free(err);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "s", got, sizeof(got)), 2);
	ck_assert_str_eq(got, "f1,f0");
	ck_assert_int_eq(t_count_events(RSC_EV_ENTER_FAILED), 2);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

/*
 * A step released early whose acquire fails raises nothing: the steps the
 * link cancelled after it are no error of their own either, and the scope
 * stays open with what entered before it (rsc_chain_new(3)). The release's
 * cancel may find the step (-ECANCELED, a CQE the chain sets aside until the
 * last one is in, which then came first) or not (-ENOENT): each round on a
 * fresh ring, where the cancel finds it more often.
 */
START_TEST(chain_steps_cancelled_behind_an_early_released_step_raise_nothing)
{
	struct rsc_entry *a, *b, *c;
	struct rsc_error *err = NULL;
	struct rsc_chain *ch;
	struct rsc_scope *s;
	struct rsc_loop *l;
	int round;

	t_make_files(2);
	for (round = 0; round < 24; round++) {
		ck_assert_int_eq(rsc_loop_new(&l, 16, 0), 0);
		ck_assert_int_eq(rsc_loop_set_direct(l, 16, 4), 0);
		ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
		ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
		ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &a), 0);
		ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("missing"), O_RDONLY, 0, &b), 0);
		ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f1"), O_RDONLY, 0, &c), 0);
		ck_assert_int_eq(rsc_chain_submit(ch), 0);
		ck_assert_int_eq(rsc_entry_release(b, NULL, NULL), 0);
		ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
		ck_assert_int_eq(rsc_entry_state(a), RSC_ENTERED);
		ck_assert_int_eq(rsc_entry_state(c), RSC_FAILED);
		ck_assert_int_eq(rsc_entry_slot(c), -ECANCELED);
		ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
		ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
		ck_assert_ptr_null(err);
		ck_assert_int_eq(rsc_loop_direct_used(l), 0);
		ck_assert_int_eq(rsc_loop_close(l), 0);
	}
}
END_TEST

START_TEST(chain_slots_are_the_runtimes_and_all_are_released)
{
	struct rsc_entry *a, *b;
	struct rsc_chain *ch;
	struct rsc_scope *s;
	char got[256];

	t_direct_table(16, 4);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &a), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f1"), O_RDONLY, 0, &b), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	ck_assert_int_ge(rsc_entry_wait(b), 12); /* the chain range: [12, 16) */
	ck_assert_int_ge(rsc_entry_wait(a), 12);
	ck_assert_int_ne(rsc_entry_slot(a), rsc_entry_slot(b));
	ck_assert_int_eq(used(), 2);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "s", got, sizeof(got)), 2);
	ck_assert_str_eq(got, "f1,f0");
	ck_assert_int_eq(used(), 0);
}
END_TEST

/* The trace's ENTERED carries the acquired value (rsc_loop_set_trace(3)): a
 * chain step's slot, not the 0 of the kernel's CQE for a slot it was told. */
START_TEST(chain_step_is_traced_entered_with_its_slot)
{
	struct rsc_entry *a, *b;
	struct rsc_chain *ch;
	struct rsc_scope *s;
	int i, n = 0;

	t_direct_table(16, 4);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &a), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f1"), O_RDONLY, 0, &b), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	ck_assert_int_ge(rsc_entry_wait(b), 12);
	for (i = 0; i < t_rec->n; i++) {
		const struct event *e = &t_rec->ev[i];

		if (e->ev != RSC_EV_ENTERED || strcmp(e->scope, "s"))
			continue;
		ck_assert_int_eq(e->res, n ? rsc_entry_slot(b) : rsc_entry_slot(a));
		n++;
	}
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/*
 * A slot's close can complete before the releases above it are reported
 * (LIFO): here the entry above drains a receive first. In between the entry
 * is EXITED, its slot empty in the kernel and not yet freed in the table,
 * and an audit then must not call that a mismatch.
 */
START_TEST(audit_between_a_slot_close_and_its_report_finds_nothing)
{
	struct rsc_entry *a, *b;
	struct rsc_scope *s;
	char buf[8], got[64];
	int peer, res = 1, i;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &a), 0);
	ck_assert_int_ge(rsc_entry_wait(a), 0);
	b = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv(b, buf, sizeof(buf), 0, t_store_res, &res), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	for (i = 0; i < 100 && rsc_entry_state(a) != RSC_EXITED; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_entry_state(a), RSC_EXITED);
	/* Not reported yet: the receive's entry above it comes first. */
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "s", got, sizeof(got)), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	t_run();
	ck_assert_int_eq(res, -ECANCELED);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "s", got, sizeof(got)), 2);
	ck_assert_int_eq(used(), 0);
	close(peer);
}
END_TEST

START_TEST(direct_connect_sends_on_its_slot_and_releases_it)
{
	struct rsc_scope *srv, *cli;
	struct rsc_entry *l, *c;
	struct sockaddr_in bound;
	char got[128], buf[8] = "";
	int before, slot, peer, res = 1;
	long long sqes, calls;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	l = t_listen_on_loopback(srv, 8, &bound);
	before = t_fd_count();
	calls = rsc_loop_counter(t_loop, RSC_CTR_ENTER_CALLS);
	sqes = rsc_loop_counter(t_loop, RSC_CTR_SQES);
	ck_assert_int_eq(rsc_connect(cli, (struct sockaddr *)&bound, sizeof(bound), 1000,
				     RSC_DIRECT, &c), 0);
	/* Socket, connect and its deadline: three SQEs, one io_uring_enter. */
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ENTER_CALLS), calls + 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_SQES), sqes + 3);
	slot = rsc_entry_wait(c);
	ck_assert_msg(slot >= 0, "direct connect: %s", rsc_strerror(slot));
	ck_assert_str_eq(rsc_entry_name(c), "connect");
	ck_assert_int_eq(rsc_entry_slot(c), slot);
	ck_assert_int_ge(slot, 12); /* a slot the runtime chose: the chain range */
	ck_assert_int_eq(rsc_entry_detach(c), -EBADF); /* a slot is no descriptor */
	/* The socket's entry handed its slot over: one slot, no descriptor. */
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(t_fd_count(), before);
	peer = accept4(rsc_entry_fd(l), NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(peer, 0);
	ck_assert_int_eq(rsc_send(c, "hi!", 3, 0, t_store_res, &res), 0);
	ck_assert_int_eq(t_io_wait(&res), 3);
	ck_assert_int_eq(recv(peer, buf, sizeof(buf), 0), 3);
	ck_assert_str_eq(buf, "hi!");
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(cli, NULL), 0);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "cli", got, sizeof(got)), 1);
	ck_assert_msg(!strncmp(got, "127.0.0.1:", 10), "release: %s", got);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

static void first_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	int *got = data;

	/* Before the connect's own enter has settled. */
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERING);
	ck_assert_str_eq(buf, "hello");
	*got = res;
}

START_TEST(chain_socket_connect_and_first_send_go_in_one_submit)
{
	struct rsc_scope *srv, *cli;
	struct rsc_entry *l, *c, *sock = (void *)1;
	struct sockaddr_in bound;
	struct rsc_chain *ch;
	static char msg[] = "hello";
	char buf[8] = "";
	long long calls, sqes;
	int peer, sent = 1;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	l = t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_chain_new(cli, &ch), 0);
	ck_assert_int_eq(rsc_chain_socket(ch, AF_INET, SOCK_STREAM, 0, &sock), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&bound, sizeof(bound), 1000, &c), 0);
	ck_assert_ptr_null(sock); /* taken over by the connect: never handed out */
	ck_assert_int_eq(rsc_chain_send(ch, msg, 5, first_sent, &sent), 0);
	calls = rsc_loop_counter(t_loop, RSC_CTR_ENTER_CALLS);
	sqes = rsc_loop_counter(t_loop, RSC_CTR_SQES);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	/* socket, connect, its deadline, the send: one io_uring_enter. */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ENTER_CALLS), calls + 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_SQES), sqes + 4);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	ck_assert_int_eq(sent, 5);
	peer = accept4(rsc_entry_fd(l), NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(peer, 0);
	ck_assert_int_eq(recv(peer, buf, sizeof(buf), 0), 5);
	ck_assert_str_eq(buf, "hello");
	close(peer);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(rsc_scope_close_wait(cli, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

START_TEST(refused_chain_cancels_its_first_send)
{
	struct sockaddr_in a = t_loopback(0);
	struct rsc_error *err = NULL;
	struct rsc_scope *cli;
	struct rsc_chain *ch;
	socklen_t len = sizeof(a);
	static char msg[] = "hello";
	char got[128];
	int fd, sent = 1;

	t_direct_table(16, 4);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	ck_assert_int_eq(rsc_chain_new(cli, &ch), 0);
	ck_assert_int_eq(rsc_chain_socket(ch, AF_INET, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&a, sizeof(a), 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_send(ch, msg, 5, first_sent, &sent), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	t_run();
	ck_assert_int_eq(sent, -ECANCELED);
	ck_assert_int_eq(rsc_scope_close_wait(cli, &err), -ECONNREFUSED);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "cli", got, sizeof(got)), 1);
	ck_assert_str_eq(got, "AF_INET/socket");
	ck_assert_int_eq(used(), 0);
	close(fd);
}
END_TEST

START_TEST(refused_direct_connect_releases_its_slot)
{
	struct sockaddr_in a = t_loopback(0);
	struct rsc_error *err = NULL;
	struct rsc_scope *cli;
	socklen_t len = sizeof(a);
	char got[128];
	int fd;

	t_direct_table(16, 4);
	/* A port nobody listens on: bound, never listening. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	ck_assert_int_eq(rsc_connect(cli, (struct sockaddr *)&a, sizeof(a), 0, RSC_DIRECT, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(cli, &err), -ECONNREFUSED);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
	/* The socket step succeeded, so it alone is released. */
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "cli", got, sizeof(got)), 1);
	ck_assert_str_eq(got, "AF_INET/socket");
	ck_assert_int_eq(used(), 0);
	close(fd);
}
END_TEST

/*
 * rsc_entry_peername(3) of a direct connection gives what getpeername(2)
 * gives a plain one: the family's own length, whatever addrlen the connect
 * was given (any length that holds the family's address is accepted).
 */
START_TEST(direct_connect_peername_has_the_familys_length)
{
	struct sockaddr_storage big = { 0 }, got;
	struct sockaddr_in bound;
	struct rsc_scope *srv, *cli;
	struct rsc_entry *c;
	socklen_t len = sizeof(got);

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	(void)t_listen_on_loopback(srv, 8, &bound);
	memcpy(&big, &bound, sizeof(bound));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	ck_assert_int_eq(rsc_connect(cli, (struct sockaddr *)&big, sizeof(big), 0, RSC_DIRECT, &c), 0);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	ck_assert_int_eq(rsc_entry_peername(c, (struct sockaddr *)&got, &len), 0);
	ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
	ck_assert_int_eq(memcmp(&got, &bound, sizeof(bound)), 0);
	ck_assert_int_eq(rsc_scope_close_wait(cli, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

START_TEST(direct_connect_deadline_times_out_and_releases_its_slot)
{
	struct rsc_scope *srv, *cli;
	struct rsc_error *err = NULL;
	struct sockaddr_in bound;
	int fill[4], i;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "blackhole", &srv), 0);
	(void)t_listen_on_loopback(srv, 0, &bound);
	for (i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fill[i], 0);
		(void)connect(fill[i], (struct sockaddr *)&bound, sizeof(bound));
	}
	usleep(50000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	ck_assert_int_eq(rsc_connect(cli, (struct sockaddr *)&bound, sizeof(bound), 200,
				     RSC_DIRECT, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(cli, &err), -ETIMEDOUT);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	rsc_error_free(err);
	ck_assert_int_eq(used(), 0);
	for (i = 0; i < 4; i++)
		close(fill[i]);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

/*
 * A connect step whose deadline passes ends -ECANCELED and its linked
 * timeout -ETIME; the step behind it ends -ECANCELED too, by the link. Its
 * CQE may be the chain's last, dispatched while the connect's is set aside:
 * it is still no error of its own, and the chain holds the timeout alone.
 */
START_TEST(step_behind_a_timed_out_connect_is_no_error_of_its_own)
{
	struct rsc_scope *srv, *cli;
	struct rsc_entry *conn, *after;
	struct rsc_error *err = NULL;
	struct sockaddr_in bound;
	struct rsc_chain *ch;
	int fill[4], i;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "blackhole", &srv), 0);
	(void)t_listen_on_loopback(srv, 0, &bound);
	for (i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fill[i], 0);
		(void)connect(fill[i], (struct sockaddr *)&bound, sizeof(bound));
	}
	usleep(50000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	ck_assert_int_eq(rsc_chain_new(cli, &ch), 0);
	ck_assert_int_eq(rsc_chain_socket(ch, AF_INET, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&bound, sizeof(bound), 50, &conn), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &after), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_slot(after), -ECANCELED);
	ck_assert_int_eq(rsc_scope_close_wait(cli, &err), -ETIMEDOUT);
	ck_assert_str_eq(rsc_error_op(err), "connect");
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
	ck_assert_int_eq(used(), 0);
	for (i = 0; i < 4; i++)
		close(fill[i]);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

START_TEST(closing_a_scope_mid_chain_releases_the_steps_that_entered)
{
	struct rsc_scope *srv, *cli;
	struct rsc_error *err = NULL;
	struct sockaddr_in bound;
	char got[128];
	int fill[4], i, ret;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "blackhole", &srv), 0);
	(void)t_listen_on_loopback(srv, 0, &bound);
	for (i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(fill[i], 0);
		(void)connect(fill[i], (struct sockaddr *)&bound, sizeof(bound));
	}
	usleep(50000);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &cli), 0);
	/* No deadline: the connect hangs until the close cancels it. */
	ck_assert_int_eq(rsc_connect(cli, (struct sockaddr *)&bound, sizeof(bound), 0,
				     RSC_DIRECT, NULL), 0);
	for (i = 0; i < 10; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(used(), 1); /* the socket step entered */
	ret = rsc_scope_close_wait(cli, &err);
	ck_assert_msg(ret == 0, "close: %s", rsc_strerror(ret));
	ck_assert_ptr_null(err);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "cli", got, sizeof(got)), 1);
	ck_assert_str_eq(got, "AF_INET/socket");
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	for (i = 0; i < 4; i++)
		close(fill[i]);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

struct accepted {
	int n, slots[8], ended;
	struct rsc_entry *last;
};

static void on_conn(struct rsc_entry *l, int res, struct rsc_scope *cs,
		    struct rsc_entry *conn, void *data)
{
	struct accepted *a = data;

	(void)l;
	(void)cs;
	if (res >= 0) {
		ck_assert_int_eq(rsc_entry_slot(conn), res);
		ck_assert_int_eq(rsc_entry_fd(conn), -EBADFD);
		a->slots[a->n++] = res;
		a->last = conn;
	} else {
		a->ended = res;
	}
}

START_TEST(single_shot_direct_accept_gives_one_slot)
{
	struct accepted acc = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	int cl;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT, on_conn, &acc), 0);
	cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(cl, (struct sockaddr *)&bound, sizeof(bound)), 0);
	while (acc.n < 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(rsc_entry_io_count(l), 0); /* single-shot: done */
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(used(), 0);
	close(cl);
}
END_TEST

START_TEST(direct_accept_gives_each_connection_a_slot)
{
	struct accepted acc = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	int before, cl[3], i;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT | RSC_DIRECT, on_conn, &acc), 0);
	before = t_fd_count();
	for (i = 0; i < 3; i++) {
		cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_eq(connect(cl[i], (struct sockaddr *)&bound, sizeof(bound)), 0);
	}
	while (acc.n < 3)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	/* Three connections, three slots, and only the clients' descriptors. */
	ck_assert_int_eq(used(), 3);
	ck_assert_int_eq(t_fd_count(), before + 3);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(acc.ended, -ECANCELED);
	ck_assert_int_eq(used(), 0);
	for (i = 0; i < 3; i++)
		close(cl[i]);
}
END_TEST

static void release_done(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

static void recv_done(struct rsc_entry *e, int res, void *buf, void *data)
{
	int *ends = data; /* [0]: how many came, then their results */

	(void)e;
	(void)buf;
	ends[1 + ends[0]++] = res;
}

/*
 * Two receives in flight on a direct connection: its release cancels both
 * with one IORING_ASYNC_CANCEL_FD|ALL naming the slot (FD_FIXED), not the
 * process descriptor of the same number, and completes.
 */
START_TEST(release_cancels_every_op_of_a_slot_by_the_slot)
{
	struct accepted acc = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l, *conn;
	struct sockaddr_in bound;
	long long by_fd = rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD);
	char b1[8], b2[8];
	int ends[3] = { 0, 1, 1 }, cl, released = 1;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT, on_conn, &acc), 0);
	cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(cl, (struct sockaddr *)&bound, sizeof(bound)), 0);
	while (acc.n < 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	conn = acc.last;
	ck_assert_int_eq(rsc_recv(conn, b1, sizeof(b1), 0, recv_done, ends), 0);
	ck_assert_int_eq(rsc_recv(conn, b2, sizeof(b2), 0, recv_done, ends), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_io_count(conn), 2);
	ck_assert_int_eq(rsc_entry_release(conn, release_done, &released), 0);
	while (released == 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(released, 0);
	ck_assert_int_eq(ends[0], 2);
	ck_assert_int_eq(ends[1], -ECANCELED);
	ck_assert_int_eq(ends[2], -ECANCELED);
	/* Op by op without IORING_ASYNC_CANCEL_FD (rsc_fault_set(3), cancel_fd). */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD) - by_fd, t_has_cancel_fd() ? 1 : 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	close(cl);
}
END_TEST

/* A slot filled behind the runtime's back: a manager of the caller's own. */
static int foreign_enter(struct rsc_entry *e, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_openat(sqe, AT_FDCWD, arg, O_RDONLY, 0);
	sqe->file_index = 5 + 1; /* slot 5, the runtime not told */
	return 0;
}

static int foreign_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)p;
	(void)arg;
	if (ret < 0)
		return ret;
	io_uring_prep_close_direct(sqe, 5);
	return 0;
}

static const struct rsc_manager foreign = {
	.size = sizeof(struct rsc_manager),
	.name = "foreign",
	.enter = foreign_enter,
	.exit = foreign_exit,
};

START_TEST(fdinfo_cross_check_agrees_with_the_runtime_table)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	char path[512];
	const struct rsc_finding *f;

	t_direct_table(16, 4);
	t_make_files(2);
	snprintf(path, sizeof(path), "%s", t_path("f1"));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_push(s, &foreign, path, &e), 0);
	ck_assert_int_eq(rsc_entry_wait(e), 0);
	/* The kernel holds f1 in slot 5; the runtime's table does not. */
	ck_assert_int_eq(t_audit_slots(t_loop), 1);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_SLOT_MISMATCH);
	ck_assert_int_eq(rsc_finding_fd(f), 5);
	ck_assert_msg(strstr(rsc_finding_target(f), "/f1"), "target %s", rsc_finding_target(f));
	/* Audited again while it lasts: counted, not recorded twice (an audit run
	 * periodically must not grow the list). */
	ck_assert_int_eq(t_audit_slots(t_loop), 1);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

START_TEST(slot_whose_close_fails_is_reported_with_its_scope)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	const struct rsc_finding *f;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "leaky", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	/* The kernel's word is that the close failed: the slot is not free. */
	ck_assert_int_eq(rsc_fault_set(t_loop, "close:1:EINVAL"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EINVAL);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_SLOT_LEAKED);
	ck_assert_str_eq(rsc_finding_scope(f), "leaky");
	ck_assert_msg(strstr(rsc_finding_target(f), "file") && strstr(rsc_finding_target(f), "/f0"),
		      "target %s", rsc_finding_target(f));
	/* The injected result lied: the kernel's table says the slot is empty. */
	ck_assert_int_eq(t_audit_slots(t_loop), 1);
	ck_assert_int_eq(rsc_finding_kind(rsc_audit_finding(t_loop, 1)), RSC_FINDING_SLOT_MISMATCH);
}
END_TEST

/*
 * The slot's own close_direct decides whether the slot is free, not the
 * release's error: fsync(2) of /dev/null fails (-EINVAL) and the hard-linked
 * close_direct behind it still empties the slot.
 */
START_TEST(failed_fsync_before_a_slot_close_frees_the_slot)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "synced", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0,
				  RSC_DIRECT | RSC_FSYNC_ON_RELEASE, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EINVAL);
	ck_assert_str_eq(rsc_error_op(err), "fsync");
	rsc_error_free(err);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

static void installed(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

START_TEST(installed_descriptor_is_cloexec_listed_and_its_slot_freed)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int before = t_fd_count(), fd = -1000, slot;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	slot = rsc_entry_wait(e);
	ck_assert_int_ge(slot, 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, installed, &fd), 0);
	while (fd == -1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_msg(fd >= 0, "install: %s", rsc_strerror(fd));
	/* One owner all along: the entry now holds a process descriptor. */
	ck_assert_int_eq(rsc_entry_fd(e), fd);
	ck_assert_int_eq(rsc_entry_slot(e), -EBADFD);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ck_assert_int_eq(t_fd_count(), before + 1);
	ck_assert(t_fd_open_to("/f0"));
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(install_without_cloexec_when_asked)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int fd = -1000;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_install(e, RSC_NO_CLOEXEC, installed, &fd), 0);
	while (fd == -1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert(!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/*
 * rsc_entry_install(3) with receives in flight on the slot, then a release:
 * the receives are the caller's I/O and are cancelled, op by op; the install
 * is a move of ownership and is not. A cancel by descriptor (one
 * IORING_ASYNC_CANCEL_FD|ALL on the slot, as without the install) would take
 * the install too wherever the kernel still held it. The install completes,
 * and the release closes the descriptor it made.
 */
START_TEST(release_cancels_the_receives_of_a_slot_but_not_its_install)
{
	struct accepted acc = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l, *conn;
	struct sockaddr_in bound;
	long long by_fd = rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD);
	char b1[8], b2[8];
	int ends[3] = { 0, 1, 1 }, cl, released = 1, fd = -1000, before = t_fd_count();

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_DIRECT, on_conn, &acc), 0);
	cl = t_connect(&bound);
	while (acc.n < 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	conn = acc.last;
	ck_assert_int_eq(rsc_recv(conn, b1, sizeof(b1), 0, recv_done, ends), 0);
	ck_assert_int_eq(rsc_recv(conn, b2, sizeof(b2), 0, recv_done, ends), 0);
	ck_assert_int_eq(rsc_entry_install(conn, 0, installed, &fd), 0);
	ck_assert_int_eq(rsc_entry_io_count(conn), 4);
	ck_assert_int_eq(rsc_entry_release(conn, release_done, &released), 0);
	while (released == 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(released, 0);
	ck_assert_msg(fd >= 0, "install: %s", rsc_strerror(fd));
	ck_assert_int_eq(ends[0], 2);
	ck_assert_int_eq(ends[1], -ECANCELED);
	ck_assert_int_eq(ends[2], -ECANCELED);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD), by_fd);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1); /* released: the installed descriptor */
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	close(cl);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* Bug 93: in the release callback of a file released just before the pipe, the pipe's
 * closes have run (one enter submitted all three): its write end's number is nobody's. */
struct write_end_reuse {
	struct rsc_scope *s;
	int write_end, adopted, calls;
};

static void adopt_the_write_ends_number(struct rsc_entry *h, int res, void *data)
{
	struct write_end_reuse *w = data;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC), dup;

	(void)h;
	(void)res;
	w->calls++;
	ck_assert_int_ge(fd, 0);
	/* The lowest free number from the write end's on: the write end's own, closed. */
	dup = fcntl(fd, F_DUPFD_CLOEXEC, w->write_end);
	close(fd);
	ck_assert_int_eq(dup, w->write_end);
	w->adopted = rsc_adopt(w->s, dup, 0, NULL);
	if (w->adopted < 0)
		close(dup);
}

START_TEST(pipe_write_end_is_let_go_once_its_close_ran)
{
	struct write_end_reuse w = { .adopted = 1 };
	struct rsc_entry *file, *pipe;
	int before = t_fd_count(), ends[2];

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &w.s), 0);
	ck_assert_int_eq(rsc_open(w.s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &file), 0);
	ck_assert_int_eq(rsc_pipe(w.s, 0, &pipe), 0);
	ck_assert_int_ge(rsc_entry_wait(pipe), 0);
	ck_assert_int_ge(rsc_entry_wait(file), 0);
	ck_assert_int_eq(rsc_pipe_ends(pipe, ends), 0);
	w.write_end = ends[1];
	ck_assert_int_eq(rsc_entry_release(file, adopt_the_write_ends_number, &w), 0);
	ck_assert_int_eq(rsc_entry_release(pipe, NULL, NULL), 0);
	while (rsc_entry_state(pipe) != RSC_EXITED)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(w.calls, 1);
	ck_assert_msg(w.adopted == 0, "adopting the write end's number, closed: %s", rsc_err_name(w.adopted));
	ck_assert_int_gt(rsc_audit_describe_fd(w.write_end, NULL, 0), 0); /* the adopted one's now */
	ck_assert_int_eq(rsc_scope_close_wait(w.s, NULL), 0);
	ck_assert_int_eq(rsc_audit_describe_fd(w.write_end, NULL, 0), -ENOENT);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(pipe_through_the_ring_is_one_entry_for_both_ends)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int before = t_fd_count(), ends[2];
	char buf[8] = "";

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_pipe(s, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_pipe_ends(e, ends), 0);
	ck_assert_int_eq(rsc_entry_fd(e), ends[0]);
	ck_assert_int_eq(t_fd_count(), before + 2);
	ck_assert(fcntl(ends[0], F_GETFD) & FD_CLOEXEC);
	ck_assert(fcntl(ends[1], F_GETFD) & FD_CLOEXEC);
	ck_assert_int_eq(write(ends[1], "ok", 2), 2);
	ck_assert_int_eq(read(ends[0], buf, sizeof(buf)), 2);
	ck_assert_str_eq(buf, "ok");
	/* Both ends are owned: the ledger names the pipe for each. */
	ck_assert_int_gt(rsc_audit_describe_fd(ends[0], NULL, 0), 0);
	ck_assert_int_gt(rsc_audit_describe_fd(ends[1], NULL, 0), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_audit_describe_fd(ends[0], NULL, 0), -ENOENT);
	ck_assert_int_eq(rsc_audit_describe_fd(ends[1], NULL, 0), -ENOENT);
}
END_TEST

/* Bug 97's check, in a child of its own (the limits it lowers cannot be raised back without CAP_SYS_RESOURCE): 0 or the step that failed. */
static int table_under_lowered_limits(void)
{
	struct rlimit rl = { .rlim_cur = 1000, .rlim_max = 1500 };
	struct rsc_loop *loop;

	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rsc_loop_new(&loop, 8, 0) != 0)
		return 10;
	if (rsc_loop_set_direct(loop, 1024, 256) != 0)
		return 1; /* under the hard limit: must fit */
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur != 1024)
		return 2; /* raised to the table, no further */
	if (rsc_loop_set_direct(loop, 0, 0) != 0)
		return 11;
	if (rsc_loop_set_direct(loop, 2048, 256) != -EMFILE)
		return 3; /* above it: refused */
	return rsc_loop_close(loop) == 0 ? 0 : 12;
}

/* Bug 97: a table under the hard RLIMIT_NOFILE but above the soft one is set up,
 * also when soft + slots is above the hard limit (liburing's own raise fails there). */
START_TEST(direct_table_fits_under_the_hard_descriptor_limit)
{
	struct rlimit saved;
	int status;
	pid_t pid;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
	if (saved.rlim_max < 1500 || t_under_valgrind()) {
		printf("SKIP direct_table_fits_under_the_hard_descriptor_limit: the hard limit is below 1500, or valgrind keeps RLIMIT_NOFILE to itself\n");
		return;
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(table_under_lowered_limits());
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "a table of 1024 under soft 1000, hard 1500: step %d failed", WEXITSTATUS(status));
}
END_TEST

START_TEST(direct_pipe_fills_two_slots_and_frees_both)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int before = t_fd_count(), ends[2];

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_pipe(s, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_pipe_ends(e, ends), 0);
	ck_assert_int_ne(ends[0], ends[1]);
	ck_assert_int_eq(used(), 2);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

START_TEST(full_direct_table_fails_with_enfile_naming_its_size)
{
	struct rsc_entry *e[3];
	struct rsc_chain *ch;
	struct rsc_scope *s;
	int i;

	t_direct_table(4, 1); /* 3 for the kernel, 1 for chains */
	t_make_files(4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e[i]), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f1"), O_RDONLY, 0, RSC_DIRECT, NULL), -ENFILE);
	ck_assert_msg(strstr(rsc_last_error(), "table of 4 slots"), "%s", rsc_last_error());
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f2"), O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f3"), O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), -ENFILE);
	ck_assert_msg(strstr(rsc_last_error(), "table of 4"), "%s", rsc_last_error());
	/* Nothing else broke: what was acquired is held, and released. */
	for (i = 0; i < 3; i++)
		ck_assert_int_ge(rsc_entry_wait(e[i]), 0);
	ck_assert_int_eq(used(), 3);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), -EBUSY);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), 0);
}
END_TEST

START_TEST(direct_arguments_are_checked)
{
	struct rsc_scope *s;
	struct rsc_chain *ch;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	/* No table yet. */
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), -ENXIO);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, NULL), -ENXIO);
	ck_assert_msg(strstr(rsc_last_error(), "RSC_LOOP_DIRECT"), "%s", rsc_last_error());
	t_direct_table(8, 2);
	/* A slot is never inherited: the kernel refuses CLOEXEC with one. */
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY | O_CLOEXEC, 0, RSC_DIRECT, NULL), -EINVAL);
	/* Without IORING_OP_SOCKET, rsc_socket(3) says so before it looks at the slot. */
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, RSC_DIRECT, NULL),
			 t_kernel_has(IORING_OP_SOCKET) ? -EINVAL : -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 4, 5), -EINVAL);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&ch, sizeof(struct sockaddr_in), 0, NULL),
			 -EINVAL); /* no socket step before it */
	ck_assert_int_eq(rsc_chain_submit(ch), -EINVAL); /* empty: consumed anyway */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/* The receiving side of a hand-over: a worker thread with a loop of its own. */
#define HANDOVERS 192
#define WAVE 32

struct receiver {
	pthread_t th;
	unsigned long long addr; /* published, atomically, once the inbox exists */
	int received, twice, used_after, mismatches, status;
	unsigned char live[RSC_DIRECT_SLOTS_DEFAULT];
	struct rsc_entry *inbox;
};

static struct receiver *the_receiver;

/* Settled with its close_direct's CQE: the slot is free from here on. */
static void handed_released(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	the_receiver->live[(intptr_t)data] = 0;
	if (res < 0)
		the_receiver->status = res;
}

static void on_handed(struct rsc_entry *inbox, int slot, struct rsc_scope *cs,
		      struct rsc_entry *e, void *data)
{
	struct receiver *r = data;

	if (slot < 0) {
		r->status = slot;
		return;
	}
	/* Owned from its arrival by the entry here, and by nobody else here. */
	if (rsc_entry_slot(e) != slot || r->live[slot])
		r->twice++;
	r->live[slot] = 1;
	(void)cs; /* closes with the worker's scope, empty by then */
	if (rsc_entry_release(e, handed_released, (void *)(intptr_t)slot) < 0)
		r->status = -EIO;
	if (++r->received == HANDOVERS && rsc_entry_release(inbox, NULL, NULL) < 0)
		r->status = -EIO;
}

static void *receiver_main(void *arg)
{
	struct receiver *r = arg;
	struct rsc_loop *loop;
	struct rsc_scope *s;
	unsigned long long addr;
	int ret, i;

	if (rsc_loop_new(&loop, 64, RSC_LOOP_DIRECT) < 0 ||
	    rsc_scope_open(loop, NULL, "worker", &s) < 0 ||
	    rsc_inbox(s, on_handed, r, &r->inbox) < 0 || rsc_inbox_address(r->inbox, &addr) < 0) {
		r->status = -EIO;
		__atomic_store_n(&r->addr, 1ULL, __ATOMIC_RELEASE);
		return NULL;
	}
	__atomic_store_n(&r->addr, addr, __ATOMIC_RELEASE);
	/* The inbox keeps the loop waiting until the last slot came in. */
	ret = rsc_loop_run(loop, RSC_RUN_DEFAULT);
	if (ret < 0)
		r->status = ret;
	r->used_after = rsc_loop_direct_used(loop);
	for (i = 0, ret = -EAGAIN; i < 100 && ret == -EAGAIN; i++)
		ret = rsc_audit_slots(loop);
	r->mismatches = ret;
	if (rsc_scope_close_wait(s, NULL) < 0 || rsc_loop_close(loop) < 0)
		r->status = -EIO;
	return NULL;
}

static void handed_over(struct rsc_entry *e, int res, void *data)
{
	int *n = data;

	(void)e;
	if (res >= 0) /* the slot it got in the receiver's table */
		n[0]++;
	else
		n[1] = res;
}

START_TEST(hand_over_under_load_loses_no_slot_and_owns_none_twice)
{
	struct receiver *r = calloc(1, sizeof(*r));
	struct rsc_entry *e[WAVE];
	struct timespec until;
	struct rsc_scope *s;
	int wave, i, n[2] = { 0, 0 }, before = t_fd_count();
	unsigned long long addr;

	ck_assert_ptr_nonnull(r);
	the_receiver = r;
	t_direct_table(64, 8);
	t_make_files(WAVE);
	ck_assert_int_eq(pthread_create(&r->th, NULL, receiver_main, r), 0);
	while (!(addr = __atomic_load_n(&r->addr, __ATOMIC_ACQUIRE)))
		sched_yield();
	ck_assert_int_eq(r->status, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	for (wave = 0; wave < HANDOVERS / WAVE; wave++) {
		for (i = 0; i < WAVE; i++) {
			char name[16];

			snprintf(name, sizeof(name), "f%d", i);
			ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(name), O_RDONLY, 0, RSC_DIRECT,
						  &e[i]), 0);
		}
		for (i = 0; i < WAVE; i++) {
			ck_assert_int_ge(rsc_entry_wait(e[i]), 0);
			ck_assert_int_eq(rsc_entry_hand_over(e[i], addr, handed_over, n), 0);
		}
		while (n[0] < (wave + 1) * WAVE && !n[1])
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_msg(!n[1], "hand-over: %s", rsc_strerror(n[1]));
		/* Given away: the sender's slots are free, its entries hold nothing. */
		ck_assert_int_eq(used(), 0);
		ck_assert_int_eq(rsc_entry_slot(e[0]), -EXDEV);
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	ck_assert_int_eq(pthread_timedjoin_np(r->th, NULL, &until), 0);
	ck_assert_int_eq(r->status, 0);
	ck_assert_int_eq(r->received, HANDOVERS);
	ck_assert_int_eq(r->twice, 0);
	ck_assert_int_eq(r->used_after, 0);
	ck_assert_int_eq(r->mismatches, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), before);
	free(r);
}
END_TEST

START_TEST(failed_hand_over_leaves_the_slot_with_the_sender)
{
	struct rsc_loop *b;
	struct rsc_scope *s, *bs;
	struct rsc_entry *e, *inbox, *filler;
	unsigned long long addr;
	int n[2] = { 0, 0 }, slot, arrived = 0;
	char buf[4];
	int res = 1;

	t_direct_table(16, 4);
	t_make_files(2);
	/* A real inbox whose table has no free slot: the install in it fails,
	 * the sender's MSG_RING says so, and the link cancels the close. */
	ck_assert_int_eq(rsc_loop_new(&b, 16, 0), 0);
	ck_assert_int_eq(rsc_loop_set_direct(b, 2, 1), 0); /* one slot the kernel hands out */
	ck_assert_int_eq(rsc_scope_open(b, NULL, "full", &bs), 0);
	ck_assert_int_eq(rsc_open(bs, AT_FDCWD, t_path("f1"), O_RDONLY, 0, RSC_DIRECT, &filler), 0);
	ck_assert_int_ge(rsc_entry_wait(filler), 0);
	ck_assert_int_eq(rsc_inbox(bs, t_count_arrival, &arrived, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	slot = rsc_entry_wait(e);
	ck_assert_int_ge(slot, 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, handed_over, n), 0);
	/* One thread: the receiver's ring installs (DEFER_TASKRUN) when it is entered. */
	while (!n[0] && !n[1]) {
		ck_assert_int_ge(rsc_loop_run(b, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(n[1], -ENFILE);
	ck_assert_int_eq(n[0], 0);
	ck_assert_int_eq(arrived, 0);
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(rsc_read(e, buf, sizeof(buf), 0, t_store_res, &res), 0);
	ck_assert_int_eq(t_io_wait(&res), 0); /* the empty file, read through the kept slot */
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_scope_close_wait(bs, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(b), 0);
}
END_TEST

START_TEST(hand_over_to_a_non_inbox_address_is_refused)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int p[2], n[2] = { 0, 0 }, slot;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	slot = rsc_entry_wait(e);
	ck_assert_int_ge(slot, 0);
	/* A descriptor that is no inbox's ring, and a token no inbox has: nothing is sent. */
	ck_assert_int_eq(rsc_entry_hand_over(e, (unsigned long long)p[0] << 32 | 7, handed_over, n),
			 -ESTALE);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(n[0] + n[1], 0); /* its callback never runs */
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* A chain is a handle too (man 3 rsc_chain_new): used again after its submit
 * or free it is -ESTALE, never a double free, also once a new chain took its slot. */
START_TEST(chain_handle_is_stale_after_its_submit_or_free)
{
	struct rsc_chain *gone, *ch;
	struct rsc_entry *a;
	struct rsc_scope *s;
	char got[256];

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &gone), 0);
	ck_assert_int_eq(rsc_chain_open(gone, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL), 0);
	rsc_chain_free(gone);
	rsc_chain_free(gone); /* twice: nothing left to drop */
	ck_assert_int_eq(rsc_chain_open(gone, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL), -ESTALE);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "stale chain"));
	ck_assert_int_eq(rsc_chain_submit(gone), -ESTALE);
	/* Its slot serves the next chain: the old handle still names nothing. */
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_ptr_ne(ch, gone);
	ck_assert_int_eq(rsc_chain_socket(gone, AF_INET, SOCK_STREAM, 0, NULL), -ESTALE);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &a), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	/* Consumed by its submit: what went out is untouched by these. */
	rsc_chain_free(ch);
	ck_assert_int_eq(rsc_chain_submit(ch), -ESTALE);
	ck_assert_int_eq(rsc_chain_send(ch, "x", 1, first_sent, NULL), -ESTALE);
	ck_assert_int_ge(rsc_entry_wait(a), 12);
	ck_assert_int_eq(used(), 1);
	/* Not a chain at all. */
	ck_assert_int_eq(rsc_chain_submit((struct rsc_chain *)s), -EINVAL);
	ck_assert_int_eq(rsc_chain_submit(NULL), -EINVAL);
	rsc_chain_free((struct rsc_chain *)s);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "s", got, sizeof(got)), 1);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/* A chain never submitted goes with its loop (no leak under valgrind), and its
 * handle says so afterwards. */
START_TEST(chain_never_submitted_is_freed_with_its_loop)
{
	struct rsc_loop *loop;
	struct rsc_chain *ch;
	struct rsc_scope *s;
	int fds = t_fd_count();

	ck_assert_int_eq(rsc_loop_new(&loop, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, "/", O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), -ESTALE);
	rsc_chain_free(ch);
	ck_assert_int_eq(t_fd_count(), fds);
}
END_TEST

/* A custom entry whose enter empties slot @victim_slot behind the runtime's back. */
static int victim_slot;

static int empty_slot_enter(struct rsc_entry *e, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)arg;
	if (ret < 0)
		return ret;
	io_uring_prep_close_direct(sqe, (unsigned)victim_slot);
	return 0;
}


static const struct rsc_manager empty_slot_mgr = {
	.size = sizeof(struct rsc_manager),
	.name = "behind-the-back",
	.enter = empty_slot_enter,
	.exit = t_nop_exit,
};

/*
 * DESIGN 7 (one owner; a handle never acts on another object): a slot
 * emptied behind its entry's back and given by the kernel to another
 * acquire is the new entry's alone. The old entry's release closes nothing
 * (-EBADF, as for a descriptor closed behind its back), its I/O cannot reach
 * the new file, and the audit names the old entry.
 */
START_TEST(slot_emptied_behind_the_back_and_reused_has_one_owner)
{
	struct rsc_scope *sa, *sb, *sc;
	struct rsc_entry *a, *b, *c;
	struct rsc_error *err = NULL;
	const struct rsc_finding *f;
	char buf[8] = "";
	int res = 1, fd;

	t_direct_table(16, 4);
	fd = open(t_path("mine"), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_eq(write(fd, "bbb", 3), 3);
	close(fd);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "A", &sa), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "B", &sb), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "C", &sc), 0);
	ck_assert_int_eq(rsc_open(sa, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &a), 0);
	victim_slot = rsc_entry_wait(a);
	ck_assert_int_ge(victim_slot, 0);
	ck_assert_int_eq(rsc_push(sc, &empty_slot_mgr, NULL, &c), 0);
	ck_assert_int_eq(rsc_entry_wait(c), 0);
	ck_assert_int_eq(rsc_open(sb, AT_FDCWD, t_path("mine"), O_RDONLY, 0, RSC_DIRECT, &b), 0);
	ck_assert_int_eq(rsc_entry_wait(b), victim_slot); /* the kernel's lowest free slot */
	/* The old entry no longer names the slot. */
	ck_assert_int_eq(rsc_entry_slot(a), -EBADF);
	ck_assert_int_eq(rsc_entry_slot(b), victim_slot);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_NOT_RELEASED);
	ck_assert_int_eq(rsc_finding_fd(f), victim_slot);
	ck_assert_str_eq(rsc_finding_scope(f), "A");
	ck_assert_ptr_nonnull(strstr(rsc_finding_expected(f), "behind the runtime's back"));
	/* Its I/O cannot read the new owner's file. */
	if (rsc_read(a, buf, sizeof(buf), 0, t_store_res, &res) == 0)
		t_io_wait(&res);
	else
		res = -EBADF;
	ck_assert_int_eq(res, -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(sa, &err), -EBADF);
	rsc_error_free(err);
	/* The new owner's file is still there, and its own release frees the slot. */
	res = 1;
	ck_assert_int_eq(rsc_read(b, buf, sizeof(buf), 0, t_store_res, &res), 0);
	ck_assert_int_eq(t_io_wait(&res), 3);
	ck_assert_int_eq(memcmp(buf, "bbb", 3), 0);
	ck_assert_int_eq(rsc_scope_close_wait(sb, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(sc, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

Suite *make_direct_suite(void)
{
	Suite *s = suite_create("direct");
	TCase *tc = tcase_create("direct");
	struct rsc_loop *probe;
	int ret;

	t_add_fixture(tc);
	ret = rsc_loop_new(&probe, 8, RSC_LOOP_DIRECT);
	if (ret < 0) {
		printf("SKIP direct suite: kernel lacks a sparse direct table with allocation ranges (Linux 6.0): %s\n",
		       rsc_last_error());
		suite_add_tcase(s, tc);
		return s;
	}
	if (rsc_loop_close(probe) < 0)
		printf("probe loop did not close: %s\n", rsc_last_error());
	tcase_add_test(tc, direct_arguments_are_checked);
	tcase_add_test(tc, direct_open_fills_a_slot_not_a_descriptor);
	tcase_add_test(tc, slot_emptied_behind_the_back_and_reused_has_one_owner);
	t_add_socket_test(tc, direct_connect_peername_has_the_familys_length);
	t_add_socket_test(tc, direct_slots_are_free_after_a_clean_unwind);
	tcase_add_test(tc, direct_slots_are_free_after_a_failed_acquire);
	tcase_add_test(tc, direct_fsync_on_release_goes_before_close_direct);
	tcase_add_test(tc, failed_fsync_before_a_slot_close_frees_the_slot);
	tcase_add_test(tc, direct_acquire_cancelled_by_close_frees_its_slot);
	tcase_add_test(tc, shutdown_releases_every_direct_slot);
	tcase_add_test(tc, chain_middle_step_failure_unwinds_exactly_the_successful_steps);
	tcase_add_test(tc, chain_slots_are_the_runtimes_and_all_are_released);
	tcase_add_test(tc, chain_handle_is_stale_after_its_submit_or_free);
	tcase_add_test(tc, chain_never_submitted_is_freed_with_its_loop);
	tcase_add_test(tc, chain_steps_cancelled_behind_an_early_released_step_raise_nothing);
	tcase_add_test(tc, chain_step_is_traced_entered_with_its_slot);
	tcase_add_test(tc, audit_between_a_slot_close_and_its_report_finds_nothing);
	tcase_add_test(tc, fdinfo_cross_check_agrees_with_the_runtime_table);
	tcase_add_test(tc, full_direct_table_fails_with_enfile_naming_its_size);
	if (t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_CONNECT)) {
		tcase_add_test(tc, direct_connect_sends_on_its_slot_and_releases_it);
		tcase_add_test(tc, refused_direct_connect_releases_its_slot);
		tcase_add_test(tc, chain_socket_connect_and_first_send_go_in_one_submit);
		tcase_add_test(tc, refused_chain_cancels_its_first_send);
		tcase_add_test(tc, direct_connect_deadline_times_out_and_releases_its_slot);
		tcase_add_test(tc, step_behind_a_timed_out_connect_is_no_error_of_its_own);
		tcase_add_test(tc, closing_a_scope_mid_chain_releases_the_steps_that_entered);
		t_add_test_if(tc, direct_accept_gives_each_connection_a_slot,
			      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
		tcase_add_test(tc, single_shot_direct_accept_gives_one_slot);
		tcase_add_test(tc, release_cancels_every_op_of_a_slot_by_the_slot);
	} else {
		printf("SKIP direct connect/accept tests: kernel lacks IORING_OP_SOCKET or IORING_OP_CONNECT\n");
	}
	if (t_kernel_has(OP_FIXED_FD_INSTALL)) {
		tcase_add_test(tc, installed_descriptor_is_cloexec_listed_and_its_slot_freed);
		tcase_add_test(tc, install_without_cloexec_when_asked);
		t_add_socket_test(tc, release_cancels_the_receives_of_a_slot_but_not_its_install);
	} else {
		printf("SKIP installed_descriptor_is_cloexec_listed_and_its_slot_freed, install_without_cloexec_when_asked, release_cancels_the_receives_of_a_slot_but_not_its_install: kernel lacks IORING_OP_FIXED_FD_INSTALL (Linux 6.8)\n");
	}
	tcase_add_test(tc, direct_table_fits_under_the_hard_descriptor_limit);
	if (t_kernel_has(OP_PIPE)) {
		tcase_add_test(tc, pipe_through_the_ring_is_one_entry_for_both_ends);
		tcase_add_test(tc, pipe_write_end_is_let_go_once_its_close_ran);
		tcase_add_test(tc, direct_pipe_fills_two_slots_and_frees_both);
	} else {
		printf("SKIP pipe_through_the_ring_is_one_entry_for_both_ends, pipe_write_end_is_let_go_once_its_close_ran, direct_pipe_fills_two_slots_and_frees_both: kernel lacks IORING_OP_PIPE (Linux 6.16)\n");
	}
	if (t_has_hand_over()) {
		if (t_under_valgrind())
			printf("SKIP hand_over_under_load_loses_no_slot_and_owns_none_twice: under valgrind, a thread waiting in io_uring_enter(2) holds valgrind's lock, so the other thread (which must send the MSG_RING) never runs\n");
		else
			tcase_add_test(tc, hand_over_under_load_loses_no_slot_and_owns_none_twice);
		tcase_add_test(tc, failed_hand_over_leaves_the_slot_with_the_sender);
		tcase_add_test(tc, hand_over_to_a_non_inbox_address_is_refused);
	} else {
		printf("SKIP hand_over_under_load_loses_no_slot_and_owns_none_twice, failed_hand_over_leaves_the_slot_with_the_sender: the loops of this run lack IORING_MSG_SEND_FD (Linux 6.0)\n");
	}
	if (rsc_fault_set(t_probe_loop(), "") == 0)
		tcase_add_test(tc, slot_whose_close_fails_is_reported_with_its_scope);
	else
		printf("SKIP slot_whose_close_fails_is_reported_with_its_scope: this build has no fault injection\n");
	suite_add_tcase(s, tc);
	return s;
}
