/* SPDX-License-Identifier: MIT */
/*
 * Hostile probes of the loose ends: what a direct slot can still tell (its
 * peer's address), what a hand-over carries (RSC_SHUTDOWN_ON_RELEASE), what
 * rsc_loop_alive(3) and rsc_loop_direct_used(3) count, the ledger without
 * memory, and where an early release's errors go. Black-box: each test
 * observes a side effect (a peer's EOF, a count, the error a callback saw).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"

static bool __attribute__((unused)) skip_without_faults(const char *test)
{
	if (t_has_fault_injection())
		return false;
	printf("SKIP %s: built without fault injection\n", test);
	return true;
}

/* ------------------------------------------------------------ loop_alive */

/*
 * rsc_loop_alive(3): "work left" includes a deadline's kernel timer that an
 * expiry could not re-arm for want of an SQE (armed again on the next turn).
 * On a shared ring, the application's open link chain is such a moment: the
 * runtime must not end that chain, so the re-arm waits. A host that stops
 * on 0 would never see the next deadline pass.
 */
START_TEST(alive_while_a_deadline_timer_is_owed)
{
	struct rsc_scope *first, *second;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	struct rsc_loop *l;
	int turns;

	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "first", &first), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "second", &second), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(first, 5, RSC_DEADLINE_MOVE_ON), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(second, 100, RSC_DEADLINE_MOVE_ON), 0);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0); /* the timer goes out */
	ck_assert_int_eq(io_uring_wait_cqe(&ring, &cqe), 0);
	/* The application's chain is open while it dispatches the timer's CQE. */
	sqe = io_uring_get_sqe(&ring);
	ck_assert_ptr_nonnull(sqe);
	io_uring_prep_nop(sqe);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, 7);
	ck_assert_int_eq(rsc_loop_dispatch(l, cqe), 1);
	io_uring_cqe_seen(&ring, cqe);
	ck_assert_int_eq(rsc_scope_state(first), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_state(second), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_loop_alive(l), 1);
	/* The chain ends; the next turns arm the timer and "second" passes. */
	sqe = io_uring_get_sqe(&ring);
	ck_assert_ptr_nonnull(sqe);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 8);
	for (turns = 0; turns < 200 && rsc_scope_state(second) == RSC_SCOPE_OPEN; turns++) {
		struct __kernel_timespec ts = { 0, 10 * 1000000 };

		ck_assert_int_eq(rsc_loop_alive(l), 1);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		(void)io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
		while (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe) {
			if (cqe->user_data != 7 && cqe->user_data != 8)
				ck_assert_int_ge(rsc_loop_dispatch(l, cqe), 0);
			io_uring_cqe_seen(&ring, cqe);
		}
	}
	ck_assert_int_eq(rsc_scope_state(second), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_close(first, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(second, NULL, NULL), 0);
	for (turns = 0; turns < 100 && rsc_loop_alive(l) > 0; turns++) {
		struct __kernel_timespec ts = { 0, 10 * 1000000 };

		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		(void)io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
		while (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe) {
			if (cqe->user_data != 7 && cqe->user_data != 8)
				ck_assert_int_ge(rsc_loop_dispatch(l, cqe), 0);
			io_uring_cqe_seen(&ring, cqe);
		}
	}
	ck_assert_int_eq(rsc_loop_close(l), 0);
	io_uring_queue_exit(&ring);
}
END_TEST

/* ---------------------------------------------------------- direct_used */

/*
 * rsc_loop_set_direct(3): rsc_loop_direct_used() is how many slots the table
 * records in use, and "the table can be changed only while none of its slots
 * is in use". A chain's slot is the runtime's from rsc_chain_submit() on (the
 * kernel fills it mid-chain): counted at once, and the table cannot change.
 */
START_TEST(direct_used_counts_a_chain_slot_from_its_submit)
{
	struct sockaddr_un sun;
	struct rsc_entry *conn;
	struct rsc_scope *s;
	struct rsc_chain *c;
	int fill[64], nfill, lfd, before = t_fd_count();

	if (!t_kernel_has(IORING_OP_SOCKET)) {
		printf("SKIP direct_used_counts_a_chain_slot_from_its_submit: kernel lacks IORING_OP_SOCKET\n");
		return;
	}
	t_direct_table(16, 4);
	lfd = t_full_unix_listener(&sun, fill, &nfill);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_UNIX, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&sun, sizeof(sun), 0, &conn), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), -EBUSY);
	/* The socket step completes (its slot owned); the connect waits. */
	for (int i = 0; i < 20; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_state(conn), RSC_ENTERING);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0); /* a cancelled acquire is no error */
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	t_full_unix_listener_close(lfd, fill, nfill);
	ck_assert_int_eq(t_fd_count(), before);
	/* Nothing held: the table may change now. */
	t_direct_table(8, 2);
}
END_TEST

Suite *make_hostile_loose_suite(void)
{
	Suite *s = suite_create("hostile_loose");
	TCase *tc = tcase_create("loose");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, alive_while_a_deadline_timer_is_owed);
	tcase_add_test(tc, direct_used_counts_a_chain_slot_from_its_submit);
	suite_add_tcase(s, tc);
	return s;
}
