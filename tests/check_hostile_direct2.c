/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

static void note_scope(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)err;
	*(int *)data = status;
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


/*
 * rsc_pipe(3) with RSC_DIRECT, released or closed while acquiring: each
 * gives back its two slots and its count of acquires in flight, so the
 * table can be changed (rsc_loop_set_direct(3): -EBUSY only while in use)
 * and holds exactly as many pipes as it has pairs of kernel slots.
 */
START_TEST(direct_pipes_closed_in_flight_give_back_their_slots)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *f;
	int i, before = t_fd_count();

	t_direct_table(8, 2);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
		ck_assert_int_eq(rsc_pipe(s, RSC_DIRECT, &e), 0);
		ck_assert_int_eq(rsc_pipe(s, RSC_DIRECT, &f), 0);
		if (i == 0)
			ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
		else if (i == 1)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
		ck_assert_int_eq(used(t_loop), 0);
		ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), 0);
	}
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(rsc_pipe(s, RSC_DIRECT, &e), 0);
	ck_assert_int_eq(rsc_pipe(s, RSC_DIRECT, &f), -ENFILE);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "table of 8 slots"));
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(used(t_loop), 6);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* rsc_entry_install(3), then rsc_entry_move(3) before its cb, then the new scope closes at once: its release waits for the install and closes the descriptor. */
START_TEST(install_moved_and_closed_before_its_callback)
{
	struct rsc_scope *s, *s2;
	struct rsc_entry *e;
	int fd = 1000, before = t_fd_count();

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s2", &s2), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, note, &fd), 0);
	ck_assert_int_eq(rsc_entry_detach(e), -EBUSY);
	ck_assert_int_eq(rsc_entry_move(e, s2), 0);
	ck_assert_int_eq(rsc_scope_close(s2, NULL, NULL), 0);
	t_run();
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(used(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

static void install_again(struct rsc_entry *e, int res, void *data)
{
	int *out = data;

	out[0] = res;
	out[1] = rsc_entry_install(e, 0, NULL, NULL);
	out[2] = rsc_entry_slot(e);
	out[3] = rsc_entry_fd(e);
	out[4] = rsc_entry_hand_over(e, 0x100000001ULL, NULL, NULL);
}

/*
 * rsc_entry_install(3) with a read of the slot in flight: the entry keeps
 * its file (only its kind of number changes), so the read goes on and gets
 * the bytes; from its own callback a second install or a hand-over is
 * -EBADF (a descriptor now), and the entry's release closes that.
 */
START_TEST(install_with_a_read_in_flight_keeps_the_read)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[8] = "";
	int r = 1000, out[5] = { 1000 }, before = t_fd_count();

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = direct_fifo(s, "fifo");
	ck_assert_int_eq(rsc_read(e, buf, sizeof(buf), -1, note_io, &r), 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, install_again, out), 0);
	run_until(&out[0], 1000);
	ck_assert_int_ge(out[0], 0);
	ck_assert_int_eq(out[1], -EBADF);
	ck_assert_int_eq(out[2], -EBADFD);
	ck_assert_int_eq(out[3], out[0]);
	ck_assert_int_eq(out[4], -EBADF);
	ck_assert_int_eq(used(t_loop), 0);
	ck_assert_int_eq(r, 1000);
	write_fifo("fifo", "xy");
	run_until(&r, 1000);
	ck_assert_int_eq(r, 2);
	ck_assert_str_eq(buf, "xy");
	ck_assert_int_eq(t_fd_count(), before + 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

/*
 * rsc_entry_hand_over(3) to an inbox of its own loop: the kernel refuses a
 * MSG_RING to itself, cb hears it and the slot stays. An inbox moved to
 * another scope (rsc_entry_move(3)) keeps receiving after its first scope
 * closed.
 */
START_TEST(hand_over_to_its_own_loop_keeps_the_slot_and_a_moved_inbox_receives)
{
	struct rsc_scope *s, *s2;
	struct rsc_entry *e, *in1, *in2;
	unsigned long long a1, a2;
	struct peer p;
	int res = 1000, n1 = 0, n2 = 0, slot;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_inbox(s, t_count_arrival, &n1, &in1), 0);
	ck_assert_int_eq(rsc_inbox_address(in1, &a1), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	slot = rsc_entry_wait(e);
	ck_assert_int_ge(slot, 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, a1, note, &res), 0);
	run_until(&res, 1000);
	ck_assert_int_lt(res, 0);
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(n1, 0);
	ck_assert_int_eq(used(t_loop), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	peer_new(&p, 8);
	ck_assert_int_eq(rsc_scope_open(p.loop, NULL, "s2", &s2), 0);
	ck_assert_int_eq(rsc_inbox(s2, t_count_arrival, &n2, &in2), 0);
	ck_assert_int_eq(rsc_inbox_address(in2, &a2), 0);
	ck_assert_int_ge(rsc_loop_run(p.loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_move(in2, p.scope), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s2, NULL), 0);
	res = 1000;
	ck_assert_int_eq(rsc_entry_hand_over(e, a2, note, &res), 0);
	run_until(&res, 1000);
	ck_assert_int_ge(res, 0);
	peer_turns(&p);
	ck_assert_int_eq(n2, 1);
	ck_assert_int_eq(p.arrived, 0);
	ck_assert_int_eq(used(p.loop), 1);
	ck_assert_int_eq(used(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	peer_close(&p);
}
END_TEST

/*
 * A -> B -> C: B hands each arrival on from its inbox callback while A's
 * scope closes in the same turn as its hand-over. Each loop ends with no
 * slot, and the kernel agrees; C's entry owned the file last.
 */
START_TEST(hand_over_chain_of_three_loops)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct peer b, c;
	int res = 1000;

	t_direct_table(16, 4);
	t_make_files(1);
	peer_new(&b, 8);
	peer_new(&c, 8);
	b.forward = c.addr;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, b.addr, note, &res), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	peer_turns(&b);
	ck_assert_int_eq(b.arrived, 1);
	ck_assert_int_eq(b.forwarded, 0);
	peer_turns(&c);
	peer_turns(&b);
	t_run();
	ck_assert_int_ge(res, 0);
	ck_assert_int_eq(c.arrived, 1);
	ck_assert_int_eq(rsc_entry_slot(b.last), -EXDEV);
	ck_assert_int_ge(rsc_entry_slot(c.last), 0);
	ck_assert_int_eq(used(t_loop), 0);
	ck_assert_int_eq(used(b.loop), 0);
	ck_assert_int_eq(used(c.loop), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(b.loop), 0);
	ck_assert_int_eq(t_audit_slots(c.loop), 0);
	peer_close(&b);
	peer_close(&c);
}
END_TEST

/*
 * A direct table full in the middle of a batch of opens: the opens past
 * its kernel range fail at once with -ENFILE naming the size; the scope
 * stays open and the ones before enter; nothing is lost or released.
 */
START_TEST(full_table_in_a_batch_fails_only_the_excess)
{
	struct rsc_scope *s;
	struct rsc_entry *e[6];
	char name[8];
	int i;

	t_direct_table(6, 2);
	t_make_files(6);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	for (i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(name), O_RDONLY, 0, RSC_DIRECT, &e[i]),
				 i < 4 ? 0 : -ENFILE);
	}
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "table of 6 slots"));
	for (i = 0; i < 4; i++)
		ck_assert_int_ge(rsc_entry_wait(e[i]), 0);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(used(t_loop), 4);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e[1], NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f5"), O_RDONLY, 0, RSC_DIRECT, &e[5]), 0);
	ck_assert_int_ge(rsc_entry_wait(e[5]), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

/* rsc_loop_set_direct(3) at its edges: 0 with no table, twice, a chain range past the table, past the maximum and the hard limit (the loop keeps its table), and 0 to unregister. */
START_TEST(set_direct_edges_keep_the_table_consistent)
{
	struct rsc_scope *s;
	struct rsc_entry *e;

	ck_assert_int_eq(used(t_loop), -ENXIO);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
	ck_assert_int_eq(used(t_loop), -ENXIO);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 9), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 1), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, RSC_DIRECT_SLOTS_MAX + 1, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), 0);
	ck_assert_int_eq(used(t_loop), 0);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), -EBUSY);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), -EBUSY);
	ck_assert_int_eq(used(t_loop), 1);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	if (!t_under_valgrind()) {
		struct rlimit rl;

		ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
		if (rl.rlim_max < RSC_DIRECT_SLOTS_MAX) {
			ck_assert_int_eq(rsc_loop_set_direct(t_loop, RSC_DIRECT_SLOTS_MAX, 0), -EMFILE);
			ck_assert_int_eq(used(t_loop), 0); /* the old table, registered again */
			ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
			ck_assert_int_ge(rsc_entry_wait(e), 0);
			ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
		}
	}
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 4, 4), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), -ENFILE);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), -ENXIO);
	ck_assert_int_eq(used(t_loop), -ENXIO);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/*
 * A normal pipe under the full audit: both ends close-on-exec (or neither
 * with RSC_NO_CLOEXEC), both in the ownership ledger while held and out of
 * it once released; the write end of a pipe moved out of the scopes open
 * when it appeared is no false leak of theirs.
 */
START_TEST(pipe_ends_owned_once_under_the_full_audit)
{
	struct rsc_scope *s, *x, *y;
	struct rsc_entry *e, *a, *b;
	int ends[2], p[2];

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "x", &x), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "y", &y), 0);
	ck_assert_int_eq(rsc_pipe(y, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_pipe_ends(e, ends), 0);
	ck_assert_int_eq(fcntl(ends[0], F_GETFD), FD_CLOEXEC);
	ck_assert_int_eq(fcntl(ends[1], F_GETFD), FD_CLOEXEC);
	ck_assert_int_eq(rsc_adopt(s, ends[0], 0, &a), -EEXIST);
	ck_assert_int_eq(rsc_adopt(s, ends[1], 0, &a), -EEXIST);
	ck_assert_int_eq(rsc_entry_move(e, s), 0);
	ck_assert_int_eq(rsc_scope_close_wait(x, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(y, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	ck_assert_int_eq(fcntl(ends[0], F_GETFD), -1);
	ck_assert_int_eq(fcntl(ends[1], F_GETFD), -1);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &a), 0);
	ck_assert_int_eq(rsc_adopt(s, p[1], 0, &b), 0);
	ck_assert_int_eq(rsc_pipe(s, RSC_NO_CLOEXEC, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_pipe_ends(e, ends), 0);
	ck_assert_int_eq(fcntl(ends[0], F_GETFD), 0);
	ck_assert_int_eq(fcntl(ends[1], F_GETFD), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

/* A custom release that waits: a read of a FIFO until the test writes to it. */
static int slow_fifo = -1;
static char slow_byte;

static int slow_enter(struct rsc_entry *e, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret;

	(void)arg;
	ret = rsc_entry_get_sqes(e, 1, &sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_nop(sqe);
	return 0;
}

static int slow_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret;

	(void)pending;
	(void)arg;
	ret = rsc_entry_get_sqes(e, 1, &sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_read(sqe, slow_fifo, &slow_byte, 1, (__u64)-1);
	return 0;
}

static const struct rsc_manager slow_release = {
	.size = sizeof(struct rsc_manager),
	.name = "slow",
	.enter = slow_enter,
	.exit = slow_exit,
	.flags = RSC_MANAGER_UNORDERED,
};

/* The application's ring: each of ringscope's CQEs dispatched (asserted 1). */
static void app_reap(struct io_uring *ring, struct rsc_loop *loop)
{
	struct io_uring_cqe *cqe;
	int ret;

	ck_assert_int_ge(io_uring_submit_and_get_events(ring), 0);
	while (io_uring_peek_cqe(ring, &cqe) == 0 && cqe) {
		ret = rsc_loop_dispatch(loop, cqe);
		ck_assert_msg(ret == 1, "rsc_loop_dispatch of 0x%llx (res %d): %s: %s",
			      (unsigned long long)cqe->user_data, cqe->res, rsc_strerror(ret),
			      rsc_last_error());
		io_uring_cqe_seen(ring, cqe);
	}
	ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_NOWAIT), 0);
}

/*
 * rsc_loop_new_from_ring(3), rsc_inbox(3): a slot's close has completed
 * (its entry EXITED) but its release is reported only after the slow,
 * unordered release above it (DESIGN 2.3, LIFO). The kernel may give that
 * slot to a hand-over meanwhile: the arrival is genuine, and
 * rsc_loop_dispatch once refused it as "dispatched twice", so nobody owned
 * the file the kernel had installed.
 */
START_TEST(arrival_in_a_slot_closed_but_not_yet_reported_is_owned)
{
	struct io_uring ring;
	struct rsc_loop *loop;
	struct rsc_scope *in_s, *s, *snd;
	struct rsc_entry *in, *a, *b, *e;
	unsigned long long addr;
	int n = 0, res = 1000, slot, status = 1000, before = t_fd_count();

	t_direct_table(16, 4);
	t_make_files(2);
	(void)unlink(t_path("slow"));
	ck_assert_int_eq(mkfifo(t_path("slow"), 0600), 0);
	slow_fifo = open(t_path("slow"), O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(slow_fifo, 0);
	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&loop, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_set_direct(loop, 8, 2), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "in", &in_s), 0);
	ck_assert_int_eq(rsc_inbox(in_s, t_count_arrival, &n, &in), 0);
	ck_assert_int_eq(rsc_inbox_address(in, &addr), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &a), 0);
	ck_assert_int_eq(rsc_push(s, &slow_release, NULL, &b), 0);
	while (rsc_entry_state(a) == RSC_ENTERING || rsc_entry_state(b) == RSC_ENTERING)
		app_reap(&ring, loop);
	slot = rsc_entry_slot(a);
	ck_assert_int_ge(slot, 0);
	ck_assert_int_eq(rsc_scope_close(s, note_scope, &status), 0);
	while (rsc_entry_state(a) != RSC_EXITED)
		app_reap(&ring, loop);
	ck_assert_int_eq(status, 1000); /* the slow release holds the report */
	/* The kernel's lowest free slot is a's again: a hand-over lands there. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &snd), 0);
	ck_assert_int_eq(rsc_open(snd, AT_FDCWD, t_path("f1"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, note, &res), 0);
	run_until(&res, 1000);
	ck_assert_int_eq(res, slot);
	app_reap(&ring, loop);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(write(slow_fifo, "x", 1), 1);
	while (status == 1000)
		app_reap(&ring, loop);
	ck_assert_int_eq(status, 0);
	/* The arrival's entry owns the slot; a's report took nothing from it. */
	ck_assert_int_eq(used(loop), 1);
	ck_assert_int_eq(t_audit_slots(loop), 0);
	ck_assert_int_eq(rsc_scope_close(in_s, note_scope, &status), 0);
	app_reap(&ring, loop); /* the close is queued: the loop's turn starts it */
	while (rsc_loop_alive(loop) > 0) {
		ck_assert_int_ge(io_uring_submit_and_wait(&ring, 1), 0);
		app_reap(&ring, loop);
	}
	ck_assert_int_eq(used(loop), 0);
	ck_assert_int_eq(t_audit_slots(loop), 0);
	ck_assert_int_eq(rsc_audit_count(loop), 0);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
	io_uring_queue_exit(&ring);
	ck_assert_int_eq(rsc_scope_close_wait(snd, NULL), 0);
	ck_assert_int_eq(used(t_loop), 0);
	close(slow_fifo);
	ck_assert_int_eq(t_fd_count(), before);
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
	if (t_has_hand_over())
		tcase_add_test(tc, hand_over_with_tracked_io_in_flight_is_busy);
	else
		printf("SKIP hand_over_with_tracked_io_in_flight_is_busy: the loops of this run lack IORING_MSG_SEND_FD (Linux 6.0)\n");
	tcase_add_test(tc, full_table_in_a_batch_fails_only_the_excess);
	tcase_add_test(tc, set_direct_edges_keep_the_table_consistent);
	if (t_kernel_has(OP_FIXED_FD_INSTALL)) {
		tcase_add_test(tc, install_moved_and_closed_before_its_callback);
		tcase_add_test(tc, install_with_a_read_in_flight_keeps_the_read);
	} else {
		printf("SKIP install_moved_and_closed_before_its_callback, install_with_a_read_in_flight_keeps_the_read: kernel lacks IORING_OP_FIXED_FD_INSTALL (Linux 6.8)\n");
	}
	if (t_kernel_has(OP_PIPE)) {
		tcase_add_test(tc, direct_pipes_closed_in_flight_give_back_their_slots);
		tcase_add_test(tc, pipe_ends_owned_once_under_the_full_audit);
	} else {
		printf("SKIP direct_pipes_closed_in_flight_give_back_their_slots, pipe_ends_owned_once_under_the_full_audit: kernel lacks IORING_OP_PIPE (Linux 6.16)\n");
	}
	if (t_has_hand_over()) {
		tcase_add_test(tc, hand_over_to_its_own_loop_keeps_the_slot_and_a_moved_inbox_receives);
		tcase_add_test(tc, hand_over_chain_of_three_loops);
		tcase_add_test(tc, arrival_in_a_slot_closed_but_not_yet_reported_is_owned);
	} else {
		printf("SKIP hand_over_to_its_own_loop_keeps_the_slot_and_a_moved_inbox_receives, hand_over_chain_of_three_loops, arrival_in_a_slot_closed_but_not_yet_reported_is_owned: the loops of this run lack IORING_MSG_SEND_FD (Linux 6.0)\n");
	}
	return s;
}
