/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

/*
 * Hostile tests of the direct table, pipes, install, inboxes and hand-over,
 * written from their pages (rsc_loop_set_direct(3), rsc_entry_install(3),
 * rsc_pipe(3), rsc_inbox(3), rsc_audit_slots(3)) and DESIGN 7: every
 * resource has exactly one owner at every moment. Each test checks the
 * process table, rsc_loop_direct_used on every loop and the kernel's view.
 */

static int used(struct rsc_loop *loop)
{
	return rsc_loop_direct_used(loop);
}

static void note(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

static void note_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	*(int *)data = res;
}

static void run_until(int *v, int unset)
{
	while (*v == unset)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
}

/* A FIFO opened read-write into a slot: a read on it waits until written. */
static struct rsc_entry *direct_fifo(struct rsc_scope *s, const char *name)
{
	struct rsc_entry *e;

	(void)unlink(t_path(name));
	ck_assert_int_eq(mkfifo(t_path(name), 0600), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(name), O_RDWR, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	return e;
}

/* A loop of its own with an inbox in scope "in" that counts arrivals. */
struct peer {
	struct rsc_loop *loop;
	struct rsc_scope *scope;
	struct rsc_entry *inbox;
	unsigned long long addr;
	int arrived;
	struct rsc_entry *last; /* the last arrival's entry */
	struct rsc_scope *last_scope;
	/* Handed on from the arrival callback, when set. */
	unsigned long long forward;
	int forwarded;
};

static void on_arrival(struct rsc_entry *inbox, int slot, struct rsc_scope *cs,
		       struct rsc_entry *e, void *data)
{
	struct peer *p = data;

	(void)inbox;
	(void)slot;
	p->arrived++;
	p->last = e;
	p->last_scope = cs;
	if (p->forward)
		p->forwarded = rsc_entry_hand_over(e, p->forward, NULL, NULL);
}

static void peer_new(struct peer *p, unsigned slots)
{
	memset(p, 0, sizeof(*p));
	ck_assert_int_eq(rsc_loop_new(&p->loop, 16, 0), 0);
	ck_assert_int_eq(rsc_loop_set_direct(p->loop, slots, 2), 0);
	ck_assert_int_eq(rsc_scope_open(p->loop, NULL, "in", &p->scope), 0);
	ck_assert_int_eq(rsc_inbox(p->scope, on_arrival, p, &p->inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(p->inbox, &p->addr), 0);
}

static void peer_turns(struct peer *p)
{
	int i;

	for (i = 0; i < 4; i++)
		ck_assert_int_ge(rsc_loop_run(p->loop, RSC_RUN_NOWAIT), 0);
}

static void peer_close(struct peer *p)
{
	ck_assert_int_eq(rsc_scope_close_wait(p->scope, NULL), 0);
	ck_assert_int_eq(used(p->loop), 0);
	ck_assert_int_eq(t_audit_slots(p->loop), 0);
	ck_assert_int_eq(rsc_audit_count(p->loop), 0);
	ck_assert_int_eq(rsc_loop_close(p->loop), 0);
}

/* ------------------------------------------------------------------ */
/* Probes. */

/*
 * rsc_inbox(3): an inbox holds no descriptor (its value is 0, as a defer's).
 * Tracked I/O on it once acted on descriptor 0, which is nobody's here: a
 * read of stdin, an accept on it.
 */
START_TEST(inbox_is_no_descriptor_for_io)
{
	struct rsc_scope *s;
	struct rsc_entry *in;
	char buf[8];
	int n = 0, r = 1000;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_inbox(s, t_count_arrival, &n, &in), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_state(in), RSC_ENTERED);
	ck_assert_int_eq(rsc_read(in, buf, sizeof(buf), -1, note_io, &r), -EBADF);
	ck_assert_int_eq(rsc_write(in, "x", 1, -1, note_io, &r), -EBADF);
	ck_assert_int_eq(rsc_recv(in, buf, sizeof(buf), 0, note_io, &r), -EBADF);
	ck_assert_int_eq(rsc_send(in, "x", 1, 0, note_io, &r), -EBADF);
	ck_assert_int_eq(rsc_accept(in, 0, t_count_arrival, &n), -EBADF);
	ck_assert_int_eq(rsc_entry_install(in, 0, NULL, NULL), -EBADF);
	ck_assert_int_eq(rsc_entry_hand_over(in, 0, NULL, NULL), -EBADF);
	/* Its own keep-alive is its only I/O. */
	ck_assert_int_eq(rsc_entry_io_count(in), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(r, 1000);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(used(t_loop), 0);
}
END_TEST

static void write_fifo(const char *name, const char *text)
{
	int fd = open(t_path(name), O_WRONLY | O_CLOEXEC | O_NONBLOCK);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

/*
 * rsc_entry_hand_over(3) with a read of the entry in flight: the file would
 * belong to the receiver while the sender's read still took its bytes (two
 * owners using one file). Refused with -EBUSY, as rsc_entry_detach(3) is,
 * and nothing is sent; once the read has ended, the hand-over goes.
 */
START_TEST(hand_over_with_tracked_io_in_flight_is_busy)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct peer p;
	char buf[8] = "";
	int r = 1000, res = 1000, slot;

	t_direct_table(16, 4);
	peer_new(&p, 16);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = direct_fifo(s, "fifo");
	slot = rsc_entry_slot(e);
	ck_assert_int_eq(rsc_read(e, buf, sizeof(buf), -1, note_io, &r), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, p.addr, note, &res), -EBUSY);
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	peer_turns(&p);
	ck_assert_int_eq(p.arrived, 0);
	ck_assert_int_eq(used(p.loop), 0);
	write_fifo("fifo", "xy");
	run_until(&r, 1000);
	ck_assert_int_eq(r, 2);
	ck_assert_int_eq(rsc_entry_hand_over(e, p.addr, note, &res), 0);
	run_until(&res, 1000);
	ck_assert_int_ge(res, 0);
	peer_turns(&p);
	ck_assert_int_eq(p.arrived, 1);
	ck_assert_int_eq(rsc_entry_slot(p.last), res);
	ck_assert_int_eq(used(p.loop), 1);
	ck_assert_int_eq(used(t_loop), 0);
	ck_assert_int_eq(rsc_entry_slot(e), -EXDEV);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	peer_close(&p);
}
END_TEST

Suite *make_hostile_direct2_suite(void)
{
	Suite *s = suite_create("hostile_direct2");
	TCase *tc = tcase_create("hostile_direct2");
	struct rsc_loop *probe;

	t_add_fixture(tc);
	suite_add_tcase(s, tc);
	if (rsc_loop_new(&probe, 8, RSC_LOOP_DIRECT) < 0) {
		printf("SKIP hostile_direct2 suite: kernel lacks a sparse direct table with allocation ranges (Linux 6.0): %s\n",
		       rsc_last_error());
		return s;
	}
	if (rsc_loop_close(probe) < 0)
		printf("probe loop did not close: %s\n", rsc_last_error());
	tcase_add_test(tc, inbox_is_no_descriptor_for_io);
	if (t_kernel_has(IORING_OP_MSG_RING))
		tcase_add_test(tc, hand_over_with_tracked_io_in_flight_is_busy);
	else
		printf("SKIP hand_over_with_tracked_io_in_flight_is_busy: kernel lacks IORING_OP_MSG_RING (IORING_MSG_SEND_FD, Linux 6.0)\n");
	return s;
}
