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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"

/* The test, or a printed SKIP naming what this kernel or build lacks. */
#define ADD_IF(tc, t, ok, lacks)                                 \
	do {                                                     \
		if (ok)                                          \
			tcase_add_test(tc, t);                   \
		else                                             \
			printf("SKIP %s: %s\n", #t, (lacks));   \
	} while (0)

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

/* ----------------------------------------------------- install and ledger */

static void store_res(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

#define HIGH_PAGE_FD 16384 /* a ledger page (4096 numbers) no other test reaches */

/* Descriptors on every number below @upto (the caller's to close): the next is @upto. */
static int *fill_numbers_below(int upto, int *n)
{
	int *fds = malloc(sizeof(*fds) * (size_t)upto), fd;

	ck_assert_ptr_nonnull(fds);
	*n = 0;
	while ((fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0)) >= 0 && fd < upto)
		fds[(*n)++] = fd;
	ck_assert_int_eq(fd, upto);
	close(fd);
	return fds;
}

/*
 * rsc_entry_install(3): "the descriptor from then on (it enters the
 * ownership ledger)", and DESIGN 7: adopting a descriptor another entry owns
 * is refused -EEXIST. The number is the kernel's choice, known only at the
 * install's CQE, when nothing can be refused any more: without memory then
 * (every allocation failing), the new descriptor must still be recorded. A
 * call that cannot make room is refused -ENOMEM, cb never called, the slot
 * still the entry's.
 */
START_TEST(install_without_memory_is_still_in_the_ledger)
{
	struct rsc_entry *e, *dup_owner = NULL;
	struct rsc_scope *s;
	struct rlimit lim;
	int before, res = 1000, *fillers, n_fill, i, ret;
	char spec[512] = "";

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &lim), 0);
	if (lim.rlim_cur < HIGH_PAGE_FD + 64) {
		lim.rlim_cur = lim.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &lim);
	}
	if (lim.rlim_cur < HIGH_PAGE_FD + 64) {
		printf("SKIP install_without_memory_is_still_in_the_ledger: RLIMIT_NOFILE below %d\n",
		       HIGH_PAGE_FD + 64);
		return;
	}
	before = t_fd_count();
	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	/* No memory at the call: refused, nothing started, the slot kept. */
	ck_assert_int_eq(rsc_fault_set(t_loop, "alloc:1:ENOMEM"), 0);
	ret = rsc_entry_install(e, 0, store_res, &res);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	if (ret == -ENOMEM) {
		t_run();
		ck_assert_int_eq(res, 1000);
		ck_assert_int_ge(rsc_entry_slot(e), 0);
	} else {
		ck_assert_int_eq(ret, 0); /* room made earlier (no allocation needed) */
		t_run();
		ck_assert_int_ge(res, 0);
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
		res = 1000;
	}
	/* The install lands on a number whose ledger page is not made yet, and
	 * every allocation fails from the call's return to its CQE. */
	fillers = fill_numbers_below(HIGH_PAGE_FD, &n_fill);
	ck_assert_int_eq(rsc_entry_install(e, 0, store_res, &res), 0);
	for (i = 1; i <= 16; i++)
		snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "%salloc:%d:ENOMEM",
			 i > 1 ? "," : "", i);
	ck_assert_int_eq(rsc_fault_set(t_loop, spec), 0);
	while (res == 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	for (i = 0; i < n_fill; i++)
		close(fillers[i]);
	free(fillers);
	ck_assert_int_eq(res, HIGH_PAGE_FD);
	ck_assert_int_eq(rsc_entry_fd(e), HIGH_PAGE_FD);
	/* The ledger knows its owner: a second owner is refused. */
	ck_assert_int_eq(rsc_adopt(s, res, 0, &dup_owner), -EEXIST);
	ck_assert_ptr_null(dup_owner);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(fcntl(HIGH_PAGE_FD, F_GETFD), -1);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* -------------------------------------------------------------- hand-over */

struct arrival {
	struct rsc_entry *e;
	struct rsc_scope *cs;
	int n;
};

static void keep_arrival(struct rsc_entry *inbox, int slot, struct rsc_scope *cs,
			 struct rsc_entry *e, void *data)
{
	struct arrival *a = data;

	(void)inbox;
	(void)slot;
	a->n++;
	a->e = e;
	a->cs = cs;
}

struct accepted {
	struct rsc_entry *e;
	int res, n;
};

static void keep_accepted(struct rsc_entry *l, int res, struct rsc_scope *cs,
			  struct rsc_entry *e, void *data)
{
	struct accepted *a = data;

	(void)l;
	(void)cs;
	a->n++;
	a->res = res;
	a->e = e;
}

/* The peer's end: 1 if it reads EOF within @ms, 0 if nothing came. */
static int peer_sees_eof(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, ms) != 1)
		return 0;
	return read(fd, &c, 1) == 0;
}

static void install_done_store(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

/*
 * rsc_entry_hand_over(3) moves a connection to another loop; rsc_accept(3)'s
 * RSC_SHUTDOWN_ON_RELEASE promises a FIN "even while another descriptor of
 * the socket exists". The flag is the connection's, not the loop's: the
 * receiver's release must shut it down too. Observed with a descriptor the
 * program keeps (a dup of the receiver's installed descriptor, rsc_adopt(3)'s
 * own example): the client must read EOF while that dup is still open. The
 * client's address travels too (rsc_entry_peername(3), Direct slots).
 */
START_TEST(hand_over_keeps_shutdown_on_release)
{
	struct rsc_loop *rl;
	struct rsc_scope *s, *rs;
	struct rsc_entry *listener, *inbox;
	struct sockaddr_in at, peer, mine;
	socklen_t len;
	struct accepted acc = { 0 };
	struct arrival arr = { 0 };
	unsigned long long addr;
	int client, fd = 1000, kept, rel = 1000, before = t_fd_count(), i;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "worker", &rs), 0);
	ck_assert_int_eq(rsc_inbox(rs, keep_arrival, &arr, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	listener = t_listen_on_loopback(s, 8, &at);
	ck_assert_int_eq(rsc_accept(listener, RSC_DIRECT | RSC_SHUTDOWN_ON_RELEASE, keep_accepted, &acc), 0);
	client = t_connect(&at);
	len = sizeof(mine);
	ck_assert_int_eq(getsockname(client, (struct sockaddr *)&mine, &len), 0);
	while (!acc.n)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(acc.res, 0);
	ck_assert_int_eq(rsc_entry_hand_over(acc.e, addr, NULL, NULL), 0);
	for (i = 0; i < 100 && !arr.n; i++) {
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(arr.n, 1);
	/* The client's address travels with the file (rsc_entry_peername(3)). */
	len = sizeof(peer);
	memset(&peer, 0, sizeof(peer));
	ck_assert_int_eq(rsc_entry_peername(arr.e, (struct sockaddr *)&peer, &len), 0);
	ck_assert_int_eq(len, sizeof(mine));
	ck_assert_int_eq(peer.sin_port, mine.sin_port);
	ck_assert_int_eq(peer.sin_addr.s_addr, mine.sin_addr.s_addr);
	/* The worker gives it a descriptor, and the program keeps a dup of it. */
	ck_assert_int_eq(rsc_entry_install(arr.e, 0, install_done_store, &fd), 0);
	while (fd == 1000)
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(fd, 0);
	len = sizeof(peer);
	ck_assert_int_eq(rsc_entry_peername(arr.e, (struct sockaddr *)&peer, &len), 0);
	ck_assert_int_eq(peer.sin_family, AF_INET);
	kept = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	ck_assert_int_ge(kept, 0);
	ck_assert_int_eq(peer_sees_eof(client, 0), 0);
	ck_assert_int_eq(rsc_entry_release(arr.e, install_done_store, &rel), 0);
	while (rel == 1000)
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rel, 0);
	/* The FIN came from the shutdown: the dup still holds the socket. */
	ck_assert_int_eq(peer_sees_eof(client, 2000), 1);
	close(kept);
	close(client);
	ck_assert_int_eq(rsc_scope_close_wait(rs, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * A hand-over the kernel refuses (the receiver's table full) leaves the slot
 * with the sender (rsc_entry_hand_over(3)), and with it the peer's address;
 * the address that waited for the receiver is taken back (ASan: no leak).
 */
START_TEST(refused_hand_over_keeps_the_peer_with_the_sender)
{
	struct rsc_loop *rl;
	struct rsc_scope *s, *rs;
	struct rsc_entry *listener, *inbox, *filler;
	struct sockaddr_in at, peer, mine;
	struct accepted acc = { 0 };
	struct arrival arr = { 0 };
	unsigned long long addr;
	socklen_t len = sizeof(mine);
	int client, sent = 1000, before = t_fd_count();

	t_make_files(1);
	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_loop_new(&rl, 16, 0), 0);
	ck_assert_int_eq(rsc_loop_set_direct(rl, 1, 0), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "worker", &rs), 0);
	ck_assert_int_eq(rsc_open(rs, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &filler), 0);
	ck_assert_int_ge(rsc_entry_wait(filler), 0); /* the worker's one slot */
	ck_assert_int_eq(rsc_inbox(rs, keep_arrival, &arr, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	listener = t_listen_on_loopback(s, 8, &at);
	ck_assert_int_eq(rsc_accept(listener, RSC_DIRECT, keep_accepted, &acc), 0);
	client = t_connect(&at);
	ck_assert_int_eq(getsockname(client, (struct sockaddr *)&mine, &len), 0);
	while (!acc.n)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(acc.res, 0);
	ck_assert_int_eq(rsc_entry_hand_over(acc.e, addr, store_res, &sent), 0);
	while (sent == 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_lt(sent, 0);
	ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(arr.n, 0);
	ck_assert_int_ge(rsc_entry_slot(acc.e), 0);
	len = sizeof(peer);
	ck_assert_int_eq(rsc_entry_peername(acc.e, (struct sockaddr *)&peer, &len), 0);
	ck_assert_int_eq(peer.sin_port, mine.sin_port);
	close(client);
	ck_assert_int_eq(rsc_scope_close_wait(rs, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * rsc_entry_hand_over(3): the address waits for the receiver in memory of
 * its own; without it the call is refused -ENOMEM, nothing is sent, the
 * sender keeps its slot and its callback is never called. A multishot
 * direct accept's connection has no address (rsc_entry_peername(3)): it is
 * -EBADFD there, and its hand-over needs no memory for one.
 */
START_TEST(hand_over_without_memory_for_the_address_sends_nothing)
{
	struct rsc_loop *rl;
	struct rsc_scope *s, *rs;
	struct rsc_entry *listener, *inbox;
	struct sockaddr_in at, peer;
	struct accepted acc = { 0 };
	struct arrival arr = { 0 };
	unsigned long long addr;
	socklen_t len;
	int client, sent = 1000, i, ret, before = t_fd_count();

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "worker", &rs), 0);
	ck_assert_int_eq(rsc_inbox(rs, keep_arrival, &arr, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	listener = t_listen_on_loopback(s, 8, &at);
	ck_assert_int_eq(rsc_accept(listener, RSC_DIRECT, keep_accepted, &acc), 0);
	client = t_connect(&at);
	while (!acc.n)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(acc.res, 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "alloc:1:ENOMEM"), 0);
	ret = rsc_entry_hand_over(acc.e, addr, store_res, &sent);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	ck_assert_int_eq(ret, -ENOMEM);
	for (i = 0; i < 4; i++) {
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(sent, 1000);
	ck_assert_int_eq(arr.n, 0);
	ck_assert_int_ge(rsc_entry_slot(acc.e), 0);
	len = sizeof(peer);
	ck_assert_int_eq(rsc_entry_peername(acc.e, (struct sockaddr *)&peer, &len), 0);
	close(client);
	/* A multishot's connection: no address, and none travels. */
	memset(&acc, 0, sizeof(acc));
	ck_assert_int_eq(rsc_accept(listener, RSC_DIRECT | RSC_ACCEPT_MULTISHOT, keep_accepted, &acc), 0);
	client = t_connect(&at);
	while (!acc.n)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(acc.res, 0);
	len = sizeof(peer);
	ck_assert_int_eq(rsc_entry_peername(acc.e, (struct sockaddr *)&peer, &len), -EBADFD);
	ck_assert_int_eq(rsc_entry_hand_over(acc.e, addr, NULL, NULL), 0);
	for (i = 0; i < 100 && !arr.n; i++) {
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(arr.n, 1);
	len = sizeof(peer);
	ck_assert_int_eq(rsc_entry_peername(arr.e, (struct sockaddr *)&peer, &len), -EBADFD);
	close(client);
	ck_assert_int_eq(rsc_scope_close_wait(rs, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ------------------------------------------------------------ peername */

/*
 * rsc_entry_peername(3) on direct slots: no getpeername(2) reaches a slot,
 * so the address the kernel wrote at a single-shot accept, or a connect's
 * target (rsc_connect with RSC_DIRECT), is what the entry tells; sockname
 * stays -EBADFD there. The client's own local address is the truth.
 */
START_TEST(peername_of_direct_accept_and_connect)
{
	struct rsc_scope *s;
	struct rsc_entry *listener, *conn = NULL;
	struct sockaddr_in at, mine, got;
	struct accepted acc = { 0 };
	socklen_t len = sizeof(mine), glen;
	char tiny[2];
	int client, before = t_fd_count();

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	listener = t_listen_on_loopback(s, 8, &at);
	ck_assert_int_eq(rsc_accept(listener, RSC_DIRECT, keep_accepted, &acc), 0);
	client = t_connect(&at);
	ck_assert_int_eq(getsockname(client, (struct sockaddr *)&mine, &len), 0);
	while (!acc.n)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(acc.res, 0);
	ck_assert_int_eq(rsc_entry_fd(acc.e), -EBADFD);
	glen = sizeof(got);
	memset(&got, 0, sizeof(got));
	ck_assert_int_eq(rsc_entry_peername(acc.e, (struct sockaddr *)&got, &glen), 0);
	ck_assert_int_eq(glen, sizeof(got));
	ck_assert_int_eq(got.sin_family, AF_INET);
	ck_assert_int_eq(got.sin_port, mine.sin_port);
	ck_assert_int_eq(got.sin_addr.s_addr, mine.sin_addr.s_addr);
	/* Cut as getpeername(2) cuts: the full length is said. */
	glen = sizeof(tiny);
	ck_assert_int_eq(rsc_entry_peername(acc.e, (struct sockaddr *)tiny, &glen), 0);
	ck_assert_int_eq(glen, sizeof(got));
	glen = sizeof(got);
	ck_assert_int_eq(rsc_entry_sockname(acc.e, (struct sockaddr *)&got, &glen), -EBADFD);
	/* A direct connect's peer is its target. */
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&at, sizeof(at), 0, RSC_DIRECT, &conn), 0);
	ck_assert_int_ge(rsc_entry_wait(conn), 0); /* its slot */
	glen = sizeof(got);
	memset(&got, 0, sizeof(got));
	ck_assert_int_eq(rsc_entry_peername(conn, (struct sockaddr *)&got, &glen), 0);
	ck_assert_int_eq(glen, sizeof(at));
	ck_assert_int_eq(got.sin_port, at.sin_port);
	ck_assert_int_eq(got.sin_addr.s_addr, at.sin_addr.s_addr);
	ck_assert_int_eq(rsc_entry_release(conn, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_peername(conn, (struct sockaddr *)&got, &glen), -EBADF);
	close(client);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_entry_peername(acc.e, (struct sockaddr *)&got, &glen), -ESTALE);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ---------------------------------------------------- early release errors */

/* What the trace said the last failed acquire got (1 if none), forgotten then. */
static int enter_failed_res(const char *detail_part)
{
	int i, res = 1;

	for (i = 0; i < t_rec->n; i++)
		if (t_rec->ev[i].ev == RSC_EV_ENTER_FAILED && strstr(t_rec->ev[i].detail, detail_part)) {
			res = t_rec->ev[i].res;
			t_rec->ev[i].ev = RSC_EV_ENTERED; /* counted once */
		}
	return res;
}

/*
 * rsc_entry_release(3) of an entry still entering: the caller gave the
 * acquire up, so its failure fails nothing (the entry beside it stays
 * entered, the scope open). With a callback, the callback hears the
 * acquire's own errno; without one, it joins nothing (nobody asked to hear
 * of an acquire given up), and the trace still reports RSC_EV_ENTER_FAILED
 * with it, so it is never silent. An empty path fails the openat as the
 * kernel reads the SQE (getname(2)), ahead of the release's cancel.
 */
START_TEST(early_released_acquire_failure_is_heard)
{
	struct rsc_scope *s;
	struct rsc_entry *ok, *gone;
	struct rsc_error *err = NULL;
	int heard = 1000, got, status, before = t_fd_count();
	long long failed;

	t_make_files(1);
	/* With a callback: it hears it, the scope does not. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "with_cb", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &ok), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "", O_RDONLY, 0, 0, &gone), 0);
	ck_assert_int_eq(rsc_entry_release(gone, store_res, &heard), 0);
	t_run();
	got = enter_failed_res("");
	ck_assert_msg(got == -ENOENT || got == -ECANCELED, "acquire got %d", got);
	ck_assert_int_eq(heard, got);
	ck_assert_int_eq(rsc_entry_state(ok), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), 0);
	ck_assert_ptr_null(err);
	/* Without one: the trace and the counter have it, the scope nothing. */
	failed = rsc_loop_counter(t_loop, RSC_CTR_ENTER_FAILED);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "without_cb", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &ok), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "", O_RDONLY, 0, 0, &gone), 0);
	ck_assert_int_eq(rsc_entry_release(gone, NULL, NULL), 0);
	t_run();
	got = enter_failed_res("");
	ck_assert_int_eq(got, -ENOENT);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ENTER_FAILED), failed + 1);
	ck_assert_int_eq(rsc_entry_state(ok), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	status = rsc_scope_close_wait(s, &err);
	ck_assert_int_eq(status, 0);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* --------------------------------------------------- several SQEs failing */

static int released_event_res(void)
{
	int i, res = 1;

	for (i = 0; i < t_rec->n; i++)
		if (t_rec->ev[i].ev == RSC_EV_RELEASED && strstr(t_rec->ev[i].entry, "adopt"))
			res = t_rec->ev[i].res;
	return res;
}

/*
 * rsc_entry_release(3): when several SQEs of one release fail (the shutdown
 * of RSC_SHUTDOWN_ON_RELEASE on a pipe: -ENOTSOCK; its close: -EIO), the
 * callback hears one errno, the first failure in SQE order, and so do the
 * trace's RSC_EV_RELEASED and rsc_entry_release_wait's return; its chain has
 * each, the last at the head (as an unwind raises them), the callback's at
 * the root. Without a callback both join the scope's chain the same way.
 */
START_TEST(release_of_several_failing_sqes_reports_one_errno_everywhere)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	const struct rsc_error *root;
	int p[2], heard = 1000, ret, before = t_fd_count();

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	/* The callback. */
	ck_assert_int_eq(rsc_adopt(s, p[0], RSC_SHUTDOWN_ON_RELEASE, &e), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "close:1:EIO"), 0);
	ck_assert_int_eq(rsc_entry_release(e, store_res, &heard), 0);
	t_run();
	ck_assert_int_eq(heard, -ENOTSOCK);
	ck_assert_int_eq(released_event_res(), -ENOTSOCK);
	/* The blocking helper: the same errno, and the chain. */
	ck_assert_int_eq(rsc_adopt(s, p[1], RSC_SHUTDOWN_ON_RELEASE, &e), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "close:1:EIO"), 0);
	ret = rsc_entry_release_wait(e, &err);
	ck_assert_int_eq(ret, -ENOTSOCK);
	ck_assert_int_eq(released_event_res(), -ENOTSOCK);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_errno(err), -EIO);
	ck_assert_str_eq(rsc_error_op(err), "close");
	root = rsc_error_cause(err);
	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(rsc_error_errno(root), ret);
	ck_assert_str_eq(rsc_error_op(root), "shutdown");
	ck_assert_ptr_null(rsc_error_cause(root));
	rsc_error_free(err);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

Suite *make_hostile_loose_suite(void)
{
	Suite *s = suite_create("hostile_loose");
	TCase *tc = tcase_create("loose");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 60);
	bool faults = t_has_fault_injection();

	tcase_add_test(tc, alive_while_a_deadline_timer_is_owed);
	ADD_IF(tc, direct_used_counts_a_chain_slot_from_its_submit, t_kernel_has(IORING_OP_SOCKET),
	       "kernel lacks IORING_OP_SOCKET");
	ADD_IF(tc, install_without_memory_is_still_in_the_ledger,
	       faults && t_kernel_has(OP_FIXED_FD_INSTALL),
	       faults ? "kernel lacks IORING_OP_FIXED_FD_INSTALL" : "this build has no fault injection");
	ADD_IF(tc, hand_over_keeps_shutdown_on_release,
	       t_has_hand_over() && t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_SHUTDOWN) &&
		       t_kernel_has(OP_FIXED_FD_INSTALL),
	       "kernel lacks SOCKET (5.19), MSG_RING's SEND_FD (6.0), SHUTDOWN or FIXED_FD_INSTALL (6.8)");
	ADD_IF(tc, refused_hand_over_keeps_the_peer_with_the_sender,
	       t_has_hand_over() && t_kernel_has(IORING_OP_SOCKET),
	       "kernel lacks SOCKET (5.19) or MSG_RING's SEND_FD (6.0)");
	ADD_IF(tc, hand_over_without_memory_for_the_address_sends_nothing,
	       faults && t_has_hand_over() && t_kernel_has(IORING_OP_SOCKET),
	       faults ? "kernel lacks SOCKET (5.19) or MSG_RING's SEND_FD (6.0)" :
			"this build has no fault injection");
	ADD_IF(tc, peername_of_direct_accept_and_connect, t_kernel_has(IORING_OP_SOCKET),
	       "kernel lacks IORING_OP_SOCKET");
	tcase_add_test(tc, early_released_acquire_failure_is_heard);
	ADD_IF(tc, release_of_several_failing_sqes_reports_one_errno_everywhere,
	       faults && t_kernel_has(IORING_OP_SHUTDOWN),
	       faults ? "kernel lacks IORING_OP_SHUTDOWN" : "this build has no fault injection");
	suite_add_tcase(s, tc);
	return s;
}
