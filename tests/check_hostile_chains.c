/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"

/*
 * Hostile tests of linked acquire chains (rsc_chain_new(3)), the direct
 * table's count and audit (rsc_loop_set_direct(3), rsc_audit_slots(3)), the
 * ownership ledger (rsc_audit_describe_fd(3)) and the address getters
 * (rsc_entry_sockname(3)), written from the man pages and DESIGN.md.
 */

static int used(void)
{
	return rsc_loop_direct_used(t_loop);
}

/* The scope's error chain as "errno/op,errno/op" (newest first). */
static void chain_text(const struct rsc_error *err, char *out, size_t len)
{
	size_t at = 0;

	out[0] = '\0';
	for (; err && at < len; err = rsc_error_cause(err))
		at += (size_t)snprintf(out + at, len - at, "%s%s/%s", at ? "," : "",
				       rsc_err_name(rsc_error_errno(err)), rsc_error_op(err));
}

/* Close @s and wait; its error chain as text in @out; returns the status. */
static int close_and_read(struct rsc_scope *s, char *out, size_t len)
{
	struct rsc_error *err = NULL;
	int ret = rsc_scope_close_wait(s, &err);

	chain_text(err, out, len);
	rsc_error_free(err);
	return ret;
}

/* ---------------------------------------------------------------- chains */

static void note_rel(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

/* Put @fd (or -1: empty it) into slot @slot of the table of the ring @ring_fd, behind the runtime's back. */
static void slot_behind_the_back(int ring_fd, unsigned slot, int fd)
{
	struct io_uring_files_update up = { .offset = slot, .fds = (uint64_t)(uintptr_t)&fd };

	ck_assert_int_eq(syscall(__NR_io_uring_register, ring_fd, IORING_REGISTER_FILES_UPDATE, &up, 1), 1);
}

/* The io_uring descriptors of the process, as a bitmap over the first 1024 numbers. */
static void ring_fds(unsigned char map[1024])
{
	char path[64], target[64];
	ssize_t n;

	memset(map, 0, 1024);
	for (int fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			map[fd] = strstr(target, "io_uring") != NULL;
		}
	}
}

/* A new loop with a direct table, and its ring's descriptor (the one io_uring descriptor it added). */
static struct rsc_loop *loop_and_ring_fd(int *ring_fd)
{
	unsigned char before[1024], after[1024];
	struct rsc_loop *loop;

	ring_fds(before);
	ck_assert_int_eq(rsc_loop_new(&loop, 64, 0), 0);
	ring_fds(after);
	*ring_fd = -1;
	for (int fd = 0; fd < 1024; fd++)
		if (after[fd] && !before[fd]) {
			ck_assert_int_eq(*ring_fd, -1);
			*ring_fd = fd;
		}
	ck_assert_int_ge(*ring_fd, 0);
	ck_assert_int_eq(rsc_loop_set_direct(loop, 16, 4), 0);
	return loop;
}

/*
 * rsc_audit_slots(3) against a table changed behind the runtime's back
 * (io_uring_register(2) on the loop's ring descriptor): a slot the
 * kernel holds and the runtime does not, and the reverse, each found; a
 * lasting one counted each time but recorded once, recorded again after
 * rsc_audit_clear(3); the release that finds its slot emptied fails with
 * -EBADF and is an RSC_FINDING_NOT_RELEASED of that slot.
 */
START_TEST(slots_changed_behind_the_runtime_are_found)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct rsc_entry *step;
	const struct rsc_finding *f;
	int x, y, pfd[2], rel = 1000, ring;

	t_make_files(1);
	loop = loop_and_ring_fd(&ring);
	ck_assert_int_eq(rsc_loop_set_audit(loop, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &step), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	x = rsc_entry_wait(step);
	ck_assert_msg(x >= 12, "%d: %s", x, rsc_last_error());
	y = x == 15 ? 14 : 15;
	ck_assert_int_eq(t_audit_slots(loop), 0);
	/* The kernel holds a pipe in y; the runtime thinks y free. */
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	slot_behind_the_back(ring, (unsigned)y, pfd[0]);
	ck_assert_int_eq(t_audit_slots(loop), 1);
	ck_assert_int_eq(rsc_audit_count(loop), 1);
	f = rsc_audit_finding(loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_SLOT_MISMATCH);
	ck_assert_int_eq(rsc_finding_fd(f), y);
	ck_assert_msg(strstr(rsc_finding_target(f), "pipe"), "%s", rsc_finding_target(f));
	ck_assert_int_eq(t_audit_slots(loop), 1);
	ck_assert_int_eq(rsc_audit_count(loop), 1);
	ck_assert_int_eq(rsc_audit_clear(loop), 0);
	ck_assert_int_eq(rsc_audit_count(loop), 0);
	ck_assert_int_eq(t_audit_slots(loop), 1);
	ck_assert_int_eq(rsc_audit_count(loop), 1);
	slot_behind_the_back(ring, (unsigned)y, -1);
	ck_assert_int_eq(t_audit_slots(loop), 0);
	ck_assert_int_eq(rsc_audit_clear(loop), 0);
	/* The reverse: the runtime's x, emptied in the kernel. */
	slot_behind_the_back(ring, (unsigned)x, -1);
	ck_assert_int_eq(t_audit_slots(loop), 1);
	f = rsc_audit_finding(loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_SLOT_MISMATCH);
	ck_assert_int_eq(rsc_finding_fd(f), x);
	ck_assert_int_eq(rsc_entry_release(step, note_rel, &rel), 0);
	while (rel == 1000)
		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rel, -EBADF);
	ck_assert_int_eq(rsc_audit_count(loop), 2);
	f = rsc_audit_finding(loop, 1);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_NOT_RELEASED);
	ck_assert_int_eq(rsc_finding_fd(f), x);
	{
		/* Printed as the slot it is, not as a descriptor (rsc_audit_print(3)). */
		char *text = NULL, want[64];
		size_t len = 0;
		FILE *out = open_memstream(&text, &len);

		ck_assert_ptr_nonnull(out);
		ck_assert_int_eq(rsc_audit_print(loop, out), 2);
		fclose(out);
		snprintf(want, sizeof(want), "ringscope audit: not released slot %d -> ", x);
		ck_assert_msg(strstr(text, want), "%s", text);
		free(text);
	}
	ck_assert_int_eq(rsc_loop_direct_used(loop), 0);
	ck_assert_int_eq(t_audit_slots(loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST



/*
 * rsc_chain_new(3): "If step k fails, the kernel completes the steps after
 * it with -ECANCELED ... the scope's error chain holds step k's error
 * alone." A path the kernel refuses while it reads the SQE (an empty one:
 * getname(2) fails at prep) cancels the steps *before* it too, whose
 * -ECANCELED then arrives first: still no error of theirs, no slot kept.
 */
START_TEST(step_refused_at_submit_is_the_only_error)
{
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct rsc_entry *a = NULL, *b = NULL, *d = NULL;
	char chain[256];
	int before = t_fd_count();

	t_direct_table(16, 4);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &a), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, "", O_RDONLY, 0, &b), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f1"), O_RDONLY, 0, &d), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_eq(used(), 3); /* reserved: held from the submit on (rsc_loop_set_direct(3)) */
	t_run();
	ck_assert_int_lt(rsc_entry_slot(a), 0);
	ck_assert_int_eq(rsc_entry_slot(b), -ENOENT);
	ck_assert_int_eq(rsc_entry_slot(d), -ECANCELED);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(close_and_read(s, chain, sizeof(chain)), -ENOENT);
	ck_assert_str_eq(chain, "ENOENT/openat");
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 0);
	ck_assert_int_eq(t_fd_count(), before);
	/* Every slot of the chain range is free again: a chain of all of them goes out. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "t", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, i == 3 ? &d : NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_ge(rsc_entry_wait(d), 12);
	ck_assert_int_eq(used(), 4);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/*
 * A ring of 1 entry has a completion queue of 2: a chain of eight steps
 * whose middle fails completes eight CQEs at once, past the CQ's end (the
 * kernel keeps them on its overflow list). Every step must still settle:
 * slots back, the one error, the steps before it released LIFO.
 */
START_TEST(chain_overflowing_a_small_cq_settles_every_step)
{
	struct rsc_loop *small;
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct rsc_entry *last = NULL;
	char chain[256];
	int i, before = t_fd_count();

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_new(&small, 1, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(small, NULL, "s", &s), 0);
	/* A clean chain of the longest length: eight slots at once. */
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	for (i = 0; i < RSC_ENTRY_SQES_MAX; i++)
		ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0,
						i == RSC_ENTRY_SQES_MAX - 1 ? &last : NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_ge(rsc_entry_wait(last), 0);
	ck_assert_int_eq(rsc_loop_direct_used(small), RSC_ENTRY_SQES_MAX);
	ck_assert_int_eq(t_audit_slots(small), 0);
	/* Then one whose sixth step fails: five entered, two cancelled. */
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	for (i = 0; i < RSC_ENTRY_SQES_MAX; i++)
		ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path(i == 5 ? "missing" : "f0"),
						O_RDONLY, 0, i == RSC_ENTRY_SQES_MAX - 1 ? &last : NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_eq(rsc_entry_wait(last), -ECANCELED);
	ck_assert_int_eq(close_and_read(s, chain, sizeof(chain)), -ENOENT);
	ck_assert_str_eq(chain, "ENOENT/openat");
	ck_assert_int_eq(rsc_loop_direct_used(small), 0);
	ck_assert_int_eq(t_audit_slots(small), 0);
	ck_assert_int_eq(rsc_loop_close(small), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

struct sent {
	int calls, res;
	int state_of_conn; /* the connect entry's state when the send's cb ran */
	struct rsc_entry *conn;
};

static void on_sent(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct sent *st = data;

	(void)e;
	(void)buf;
	st->calls++;
	st->res = res;
	st->state_of_conn = st->conn ? rsc_entry_state(st->conn) : -1;
}

/*
 * rsc_chain_new(3) and the deadline of rsc_scope_set_deadline(3): a chain
 * whose connect waits on a listener with a full backlog is cut mid-chain,
 * by a scope deadline (_i == 0), a close (1), a failure of the body (2),
 * the connect's own deadline (3), or a close in the very turn of the submit
 * (4). The socket step, if it entered, is released; the first send's
 * callback runs once with -ECANCELED (and never after the connect settled);
 * every slot comes back, no audit sees a false slot meanwhile, and the error
 * chain holds the cause of the cut alone.
 */
START_TEST(chain_cut_mid_connect_releases_the_socket_and_cancels_the_send)
{
	struct sockaddr_un sun;
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct sent st = { 0 };
	int fill[64], nfill, lfd, ret, before = t_fd_count();
	char chain[256];
	static const char *want[] = { "ETIMEDOUT/deadline", "", "EIO/body", "ETIMEDOUT/connect", "" };
	static const int status[] = { -ETIMEDOUT, 0, -EIO, -ETIMEDOUT, 0 };

	t_direct_table(16, 4);
	lfd = t_full_unix_listener(&sun, fill, &nfill);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_UNIX, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&sun, sizeof(sun), _i == 3 ? 40 : 0,
					   &st.conn), 0);
	ck_assert_int_eq(rsc_chain_send(c, "hello", 5, on_sent, &st), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	if (_i != 4) {
		/* The socket step enters; the connect waits in the kernel. */
		for (int i = 0; i < 20 && used() < 1; i++)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		ck_assert_int_eq(used(), 1);
		ck_assert_int_eq(rsc_entry_state(st.conn), RSC_ENTERING);
		ck_assert_int_eq(t_audit_slots(t_loop), 0);
		ck_assert_int_eq(st.calls, 0);
	}
	if (_i == 0) {
		ck_assert_int_eq(rsc_scope_set_deadline(s, 30, 0), 0);
		while (st.calls == 0)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	} else if (_i == 2) {
		ck_assert_int_eq(rsc_scope_fail(s, -EIO, "body"), 0);
	} else if (_i == 3) {
		while (rsc_entry_state(st.conn) == RSC_ENTERING)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_int_eq(rsc_entry_state(st.conn), RSC_FAILED);
		ck_assert_int_eq(rsc_entry_wait(st.conn), -ETIMEDOUT);
	}
	ret = close_and_read(s, chain, sizeof(chain));
	ck_assert_str_eq(chain, want[_i]);
	ck_assert_int_eq(ret, status[_i]);
	ck_assert_int_eq(st.calls, 1);
	ck_assert_int_eq(st.res, -ECANCELED);
	ck_assert_int_ne(st.state_of_conn, RSC_ENTERED);
	ck_assert_int_le(t_count_events(RSC_EV_RELEASED), 1); /* the socket step, if it entered */
	if (_i != 4)
		ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	t_full_unix_listener_close(lfd, fill, nfill);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

static void close_status(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)err;
	*(int *)data = status;
}

/*
 * DESIGN.md 2.6 with a chain: the close's cancel of the connect comes too
 * late (an injected EALREADY: the connect runs on), and the connect then
 * completes after its scope began closing. The runtime releases the
 * connection it produced (no slot escapes the closed scope), the first
 * send's callback runs once, and the scope's close completes.
 */
START_TEST(connect_step_that_wins_the_race_against_close_is_released)
{
	struct sockaddr_un sun;
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct sent st = { 0 };
	int fill[64], nfill, lfd, peer, closed = 1000, before = t_fd_count();

	t_direct_table(16, 4);
	lfd = t_full_unix_listener(&sun, fill, &nfill);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_UNIX, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&sun, sizeof(sun), 0, &st.conn), 0);
	ck_assert_int_eq(rsc_chain_send(c, "hello", 5, on_sent, &st), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	for (int i = 0; i < 20 && used() < 1; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(used(), 1);
	if (rsc_fault_set(t_loop, "cancel:1:EALREADY") == -ENOSYS)
		return; /* a release build: no injection (the suite skips it there) */
	ck_assert_int_eq(rsc_scope_close(s, close_status, &closed), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(closed, 1000); /* the connect still runs */
	ck_assert_int_eq(st.calls, 0);
	/* Room in the backlog: the connect completes, the send goes out. */
	peer = accept(lfd, NULL, NULL);
	ck_assert_int_ge(peer, 0);
	close(peer);
	while (closed == 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(st.calls, 1);
	ck_assert(st.res == 5 || st.res == -ECANCELED);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	t_full_unix_listener_close(lfd, fill, nfill);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

struct in_send {
	int action, calls, res, ret, rel;
	struct rsc_scope *s;
	struct rsc_entry *conn;
};

/* The first send's callback acts on its still-entering connection. */
static void act_in_send(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct in_send *st = data;

	(void)buf;
	st->calls++;
	st->res = res;
	ck_assert_ptr_eq(e, st->conn);
	if (st->action == 0)
		st->ret = rsc_scope_close(st->s, NULL, NULL);
	else if (st->action == 1)
		st->ret = rsc_entry_release(e, note_rel, &st->rel);
	else
		st->ret = rsc_entry_move(e, st->s);
}

/*
 * rsc_chain_send(3): cb runs "before that connect's enter settles". What
 * it does then to the connection is what the pages say for an entering
 * entry: a close of its scope (_i == 0) or its release (1) releases the
 * connection that completes anyway, exactly once (the peer gets "hello",
 * then its end); a move is -EBUSY (2), and the connection stays usable.
 */
START_TEST(first_send_callback_acts_on_its_entering_connection)
{
	struct rsc_scope *s, *srv;
	struct rsc_chain *c;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	struct in_send st = { .action = _i, .ret = 1000, .rel = 1000 };
	char buf[16] = "";
	struct pollfd p;
	int peer, before = t_fd_count();

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "cli", &s), 0);
	st.s = s;
	l = t_listen_on_loopback(srv, 4, &bound);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_INET, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&bound, sizeof(bound), 2000, &st.conn), 0);
	ck_assert_int_eq(rsc_chain_send(c, "hello", 5, act_in_send, &st), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	while (st.calls == 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(st.res, 5);
	ck_assert_int_eq(st.ret, _i == 2 ? -EBUSY : 0);
	peer = accept4(rsc_entry_fd(l), NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(peer, 0);
	if (_i == 2) {
		ck_assert_int_ge(rsc_entry_wait(st.conn), 12);
		ck_assert_int_eq(used(), 1);
		ck_assert_int_eq(rsc_entry_release_wait(st.conn, NULL), 0);
	} else {
		while (used() != 0 || (_i == 1 && st.rel == 1000))
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	}
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(recv(peer, buf, sizeof(buf), 0), 5);
	ck_assert_str_eq(buf, "hello");
	p = (struct pollfd){ .fd = peer, .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	ck_assert_int_eq(recv(peer, buf, sizeof(buf), MSG_DONTWAIT), 0);
	close(peer);
	if (_i == 1)
		ck_assert_int_eq(st.rel, 0);
	if (_i != 0)
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	else
		t_run();
	ck_assert_int_eq(st.calls, 1);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * rsc_chain_send(3): cb gets "the send's result (bytes ...)": a first send
 * far larger than the socket buffers goes out short, and cb's count is
 * exactly what the peer receives before the connection's end.
 */
START_TEST(short_first_send_reports_what_the_peer_gets)
{
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct sent st = { 0 };
	struct sockaddr_in bound;
	socklen_t blen = sizeof(bound);
	size_t big = 64u << 20;
	char *buf = malloc(big);
	int lfd, peer, closed = 1000, before = t_fd_count();
	struct pollfd p;
	ssize_t n = -1;
	size_t got = 0;

	ck_assert_ptr_nonnull(buf);
	memset(buf, 'x', big);
	t_direct_table(16, 4);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bound = t_loopback(0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&bound, sizeof(bound)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&bound, &blen), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_INET, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&bound, sizeof(bound), 0, &st.conn), 0);
	ck_assert_int_eq(rsc_chain_send(c, buf, (unsigned)big, on_sent, &st), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0); /* submitted */
	p = (struct pollfd){ .fd = lfd, .events = POLLIN };
	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC); /* the connect completed */
	ck_assert_int_ge(peer, 0);
	while (st.calls == 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_gt(st.res, 0);
	ck_assert_int_le((size_t)st.res, big);
	ck_assert_int_ge(rsc_entry_wait(st.conn), 12);
	ck_assert_int_eq(rsc_scope_close(s, close_status, &closed), 0);
	while (closed == 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(closed, 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	/* The peer gets exactly the count, then the connection's end. */
	p = (struct pollfd){ .fd = peer, .events = POLLIN };
	while (poll(&p, 1, 5000) == 1 && (n = recv(peer, buf, big, MSG_DONTWAIT)) > 0)
		got += (size_t)n;
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(got, (size_t)st.res);
	close(peer);
	close(lfd);
	free(buf);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * rsc_chain_new(3): the first step fails (a protocol the kernel refuses
 * for the socket): the connect and its first send are cancelled by the
 * link and are no error of their own; the connect's entry answers with
 * -ECANCELED (rsc_entry_sockname(3): "the acquire's negative errno").
 */
START_TEST(failed_socket_step_cancels_connect_and_send)
{
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct sent st = { 0 };
	struct sockaddr_in to = t_loopback(9), got;
	socklen_t len = sizeof(got);
	char chain[256];

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_INET, SOCK_STREAM, IPPROTO_UDP, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&to, sizeof(to), 500, &st.conn), 0);
	ck_assert_int_eq(rsc_chain_send(c, "hello", 5, on_sent, &st), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_eq(rsc_entry_wait(st.conn), -ECANCELED);
	ck_assert_int_eq(rsc_entry_sockname(st.conn, (struct sockaddr *)&got, &len), -ECANCELED);
	ck_assert_int_eq(rsc_entry_slot(st.conn), -ECANCELED);
	t_run();
	ck_assert_int_eq(st.calls, 1);
	ck_assert_int_eq(st.res, -ECANCELED);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(close_and_read(s, chain, sizeof(chain)), -EPROTONOSUPPORT);
	ck_assert_str_eq(chain, "EPROTONOSUPPORT/socket");
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 0);
}
END_TEST

/*
 * rsc_loop_shutdown(3) with a chain in flight (its connect waiting on a
 * full backlog) and one never submitted: rsc_loop_close(3) is -EBUSY
 * first; the shutdown cancels the connect, hands the first send's buffer
 * back once, releases the socket step and frees the unsubmitted chain.
 */
START_TEST(shutdown_with_a_chain_in_flight_and_one_never_sent)
{
	struct sockaddr_un sun;
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_chain *c, *idle;
	struct sent st = { 0 };
	int fill[64], nfill, lfd, before;

	t_make_files(1);
	lfd = t_full_unix_listener(&sun, fill, &nfill);
	before = t_fd_count();
	ck_assert_int_eq(rsc_loop_new(&loop, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &idle), 0);
	ck_assert_int_eq(rsc_chain_open(idle, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_UNIX, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&sun, sizeof(sun), 0, &st.conn), 0);
	ck_assert_int_eq(rsc_chain_send(c, "hello", 5, on_sent, &st), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	for (int i = 0; i < 20 && rsc_loop_direct_used(loop) < 1; i++)
		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_direct_used(loop), 1);
	ck_assert_int_eq(rsc_loop_close(loop), -EBUSY);
	ck_assert_int_eq(rsc_loop_shutdown(loop, NULL), 0);
	ck_assert_int_eq(st.calls, 1);
	ck_assert_int_eq(st.res, -ECANCELED);
	ck_assert_int_eq(rsc_chain_submit(idle), -ESTALE);
	ck_assert_int_eq(t_fd_count(), before);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* rsc_chain_new(3): "paths and addresses are copied": the caller's buffers may change before the submit. */
START_TEST(chain_copies_paths_and_addresses_at_once)
{
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct rsc_entry *f = NULL, *conn = NULL, *l;
	struct sockaddr_in bound, addr;
	char path[512];

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	l = t_listen_on_loopback(s, 4, &bound);
	(void)l;
	snprintf(path, sizeof(path), "%s", t_path("f0"));
	addr = bound;
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, path, O_RDONLY, 0, &f), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_INET, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&addr, sizeof(addr), 2000, &conn), 0);
	snprintf(path, sizeof(path), "%s", t_path("missing"));
	addr = t_loopback(9); /* discard: refused */
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	memset(path, 0, sizeof(path));
	memset(&addr, 0, sizeof(addr));
	ck_assert_int_ge(rsc_entry_wait(conn), 0);
	ck_assert_int_ge(rsc_entry_slot(f), 12);
	ck_assert_msg(strstr(rsc_entry_detail(f), "/f0"), "%s", rsc_entry_detail(f));
	/* rsc_entry_detail(3): the connection's entry names its address, as rsc_connect(3)'s does. */
	snprintf(path, sizeof(path), "127.0.0.1:%u", (unsigned)ntohs(bound.sin_port));
	ck_assert_str_eq(rsc_entry_detail(conn), path);
	ck_assert_str_eq(rsc_entry_name(conn), "connect");
	ck_assert_int_eq(used(), 2);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/*
 * rsc_loop_set_direct(3) and rsc_chain_new(3): a chain that takes the last
 * free slot of the chain range goes out; one more is -ENFILE naming the
 * table's size, reserves nothing and leaves the others be; a slot given
 * back serves the next chain.
 */
START_TEST(chain_range_filled_exactly_then_one_more)
{
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct rsc_entry *e[5] = { 0 }, *x = NULL;
	int i;

	t_direct_table(16, 5);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &e[0]), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	for (i = 1; i < 5; i++)
		ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &e[i]), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_ge(rsc_entry_wait(e[4]), 0);
	ck_assert_int_eq(used(), 5);
	for (i = 0; i < 5; i++) {
		ck_assert_int_ge(rsc_entry_slot(e[i]), 11);
		ck_assert_int_le(rsc_entry_slot(e[i]), 15);
		for (int j = 0; j < i; j++)
			ck_assert_int_ne(rsc_entry_slot(e[i]), rsc_entry_slot(e[j]));
	}
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &x), 0);
	ck_assert_int_eq(rsc_chain_submit(c), -ENFILE);
	ck_assert_msg(strstr(rsc_last_error(), "16"), "%s", rsc_last_error());
	ck_assert_ptr_null(x);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL), -ESTALE);
	ck_assert_int_eq(used(), 5);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	/* The kernel's range is untouched by the chain range being full. */
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &x), 0);
	ck_assert_int_ge(rsc_entry_wait(x), 0);
	ck_assert_int_lt(rsc_entry_slot(x), 11);
	ck_assert_int_eq(used(), 6);
	i = rsc_entry_slot(e[2]);
	ck_assert_int_eq(rsc_entry_release_wait(e[2], NULL), 0);
	ck_assert_int_eq(used(), 5);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &x), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_eq(rsc_entry_wait(x), i);
	ck_assert_int_eq(used(), 6);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/* rsc_chain_new(3), -ESTALE: "scope has been freed: checked here, and again by rsc_chain_submit()". */
START_TEST(chain_of_a_freed_scope_is_stale_at_submit)
{
	struct rsc_scope *s;
	struct rsc_chain *c, *gone;
	struct rsc_entry *a = (void *)1;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &a), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	/* The scope is gone; a new one may take its memory. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "t", &s), 0);
	ck_assert_int_eq(rsc_chain_submit(c), -ESTALE);
	ck_assert_ptr_null(a);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_chain_submit(c), -ESTALE); /* consumed */
	gone = c;
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_chain_new(s, &gone), -ESTALE);
	ck_assert_ptr_null(gone);
	ck_assert_int_eq(rsc_chain_socket(c, AF_INET, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(c), -ESTALE);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_count_events(RSC_EV_ENTERED), 0);
}
END_TEST

struct in_hook {
	struct rsc_chain *c;
	struct rsc_entry *step;
	int ret, again;
};

static int submit_in_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct in_hook *h = arg;

	(void)e;
	(void)pending;
	h->ret = rsc_chain_submit(h->c);
	h->again = rsc_chain_submit(h->c);
	return 0;
}

/* rsc_chain_submit(3), -EDEADLK "as for rsc_push(3)": from a manager's exit hook, refused, consumed, nothing reserved. */
START_TEST(chain_submitted_from_a_hook_is_edeadlk_and_consumed)
{
	struct rsc_scope *s, *t;
	struct rsc_entry *d;
	struct in_hook h = { 0 };

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "t", &t), 0);
	ck_assert_int_eq(rsc_chain_new(t, &h.c), 0);
	ck_assert_int_eq(rsc_chain_open(h.c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &h.step), 0);
	ck_assert_int_eq(rsc_defer(s, submit_in_exit, &h, &d), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(h.ret, -EDEADLK);
	ck_assert_int_eq(h.again, -ESTALE);
	ck_assert_ptr_null(h.step);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_scope_close_wait(t, NULL), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

/*
 * rsc_entry_slot(3): "The slot while the entry is RSC_ENTERED or
 * RSC_EXITING"; a connect step that took the socket's slot over names that
 * slot, and the socket step's entryp stays NULL (rsc_chain_new(3)).
 */
START_TEST(slot_of_a_chain_step_while_it_is_released)
{
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct rsc_entry *conn = NULL, *sock = (void *)1, *l;
	struct sockaddr_in bound;
	int slot;
	char chain[128];

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	l = t_listen_on_loopback(s, 4, &bound);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_INET, SOCK_STREAM, 0, &sock), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&bound, sizeof(bound), 1000, &conn), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_ptr_null(sock);
	slot = rsc_entry_wait(conn);
	ck_assert_int_ge(slot, 12);
	ck_assert_int_eq(rsc_entry_slot(conn), slot);
	ck_assert_int_eq(rsc_entry_fd(conn), -EBADFD);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(rsc_entry_release(conn, NULL, NULL), 0);
	if (rsc_entry_state(conn) == RSC_EXITING)
		ck_assert_int_eq(rsc_entry_slot(conn), slot);
	t_run();
	(void)l;
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(close_and_read(s, chain, sizeof(chain)), 0);
	ck_assert_str_eq(chain, "");
}
END_TEST

/*
 * rsc_chain_new(3): a chain is bound to nothing of the table until its
 * submit: the table changed in between (rsc_loop_set_direct(3)) serves it
 * from its new chain range, and a table dropped makes the submit -ENXIO,
 * consuming the chain.
 */
START_TEST(chain_takes_the_table_of_its_submit)
{
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct rsc_entry *e = (void *)1;
	struct sockaddr_in to = t_loopback(9);
	struct sent never = { 0 };

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &e), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_INET, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&to, sizeof(to), 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_send(c, "x", 1, on_sent, &never), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
	ck_assert_int_eq(rsc_chain_submit(c), -ENXIO);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_chain_submit(c), -ESTALE);
	t_run();
	ck_assert_int_eq(never.calls, 0); /* never submitted: its send's cb never runs */
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &e), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 32, 8), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 24);
	ck_assert_int_le(rsc_entry_slot(e), 31);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), -EBUSY);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/*
 * DESIGN.md 2.3 with a chain of four steps (file, socket, connect, file):
 * the socket is taken over by the connection, so the unwind releases three
 * entries, newest first, each named by what it acquired.
 */
START_TEST(chain_of_four_steps_unwinds_newest_first)
{
	struct rsc_scope *s, *srv;
	struct rsc_chain *c;
	struct rsc_entry *last = NULL;
	struct sockaddr_in bound;
	char got[1024], want[1024];

	t_direct_table(16, 4);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	(void)t_listen_on_loopback(srv, 4, &bound);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_INET, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&bound, sizeof(bound), 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f1"), O_RDONLY, 0, &last), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_ge(rsc_entry_wait(last), 12);
	ck_assert_int_eq(used(), 3);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "s", got, sizeof(got)), 3);
	snprintf(want, sizeof(want), "f1,127.0.0.1:%u,f0", (unsigned)ntohs(bound.sin_port));
	ck_assert_str_eq(got, want);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

/* A refusal: -@err, and a sentence of its own in rsc_last_error() (a
 * sentence of another call is put there first, and must be gone). */
#define REFUSED(call, err)                                                          \
	do {                                                                        \
		(void)rsc_loop_direct_used(NULL);                                   \
		ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_loop_direct_used")); \
		ck_assert_int_eq((call), (err));                                    \
		ck_assert_msg(strlen(rsc_last_error()) > 10 &&                      \
				      !strstr(rsc_last_error(), "rsc_loop_direct_used"),  \
			      "no sentence of its own for %s: %s", #call, rsc_last_error()); \
	} while (0)

/*
 * rsc_chain_new(3), ERRORS: each step a function refuses leaves the chain
 * as it was (the style's "if a function that takes a callback fails, the
 * callback is never called"), with a sentence in rsc_last_error(3); the
 * chain then goes out with exactly the steps it accepted.
 */
START_TEST(refused_steps_leave_the_chain_as_it_was)
{
	struct rsc_scope *s, *srv;
	struct rsc_chain *c;
	struct rsc_entry *a = NULL, *sk = (void *)1, *conn = NULL;
	struct sockaddr_in bound, shortv;
	struct sockaddr_un unnamed = { .sun_family = AF_UNIX };
	struct sent st = { 0 }, never = { 0 };

	t_direct_table(16, 8);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	(void)t_listen_on_loopback(srv, 4, &bound);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	REFUSED(rsc_chain_new(NULL, &c), -EINVAL);
	ck_assert_ptr_null(c);
	REFUSED(rsc_chain_new(s, NULL), -EINVAL);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	REFUSED(rsc_chain_connect(c, (struct sockaddr *)&bound, sizeof(bound), 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &a), 0);
	REFUSED(rsc_chain_open(c, AT_FDCWD, NULL, O_RDONLY, 0, NULL), -EINVAL);
	REFUSED(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY | O_CLOEXEC, 0, NULL), -EINVAL);
	REFUSED(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_ACCMODE, 0, NULL), -EINVAL);
	REFUSED(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 010000, NULL), -EINVAL);
	REFUSED(rsc_chain_socket(c, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, NULL), -EINVAL);
	REFUSED(rsc_chain_socket(c, -1, SOCK_STREAM, 0, NULL), -EINVAL);
	REFUSED(rsc_chain_socket(c, AF_INET, SOCK_STREAM, -1, NULL), -EINVAL);
	REFUSED(rsc_chain_connect(c, (struct sockaddr *)&bound, sizeof(bound), 0, NULL), -EINVAL);
	REFUSED(rsc_chain_send(c, "x", 1, on_sent, &never), -EINVAL);
	ck_assert_int_eq(rsc_chain_socket(c, AF_INET, SOCK_STREAM, 0, &sk), 0);
	REFUSED(rsc_chain_connect(c, NULL, sizeof(bound), 0, NULL), -EINVAL);
	REFUSED(rsc_chain_connect(c, (struct sockaddr *)&unnamed, sizeof(sa_family_t), 0, NULL), -EINVAL);
	shortv = bound;
	REFUSED(rsc_chain_connect(c, (struct sockaddr *)&shortv, 4, 0, NULL), -EINVAL);
	ck_assert_ptr_eq(sk, NULL); /* set NULL by the step, and a refused connect takes nothing over */
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&bound, sizeof(bound), 2000, &st.conn), 0);
	REFUSED(rsc_chain_send(c, "hello", 5, NULL, NULL), -EINVAL);
	REFUSED(rsc_chain_send(c, NULL, 5, on_sent, &never), -EINVAL);
	ck_assert_int_eq(rsc_chain_send(c, "hello", 5, on_sent, &st), 0);
	REFUSED(rsc_chain_send(c, "again", 5, on_sent, &never), -EINVAL);
	/* 1 + 1 + 2 + 1 SQEs so far: three more fill it, the fourth is -E2BIG. */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL), 0);
	REFUSED(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL), -E2BIG);
	REFUSED(rsc_chain_socket(c, AF_INET, SOCK_STREAM, 0, NULL), -E2BIG);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	conn = st.conn;
	ck_assert_int_ge(rsc_entry_wait(conn), 8);
	t_run();
	ck_assert_int_eq(used(), 5);
	ck_assert_int_eq(st.calls, 1);
	ck_assert_int_eq(st.res, 5);
	ck_assert_int_eq(never.calls, 0);
	ck_assert_int_ge(rsc_entry_slot(a), 8);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

/* ------------------------------------------------------- address getters */

static void on_defer_noop(void) {}

static int exit_noop(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	on_defer_noop();
	return 0;
}

/*
 * rsc_entry_sockname(3): "-ENOTSOCK ... The entry's descriptor is not a
 * socket". An entry that holds no descriptor at all (rsc_defer(3): value 0,
 * rsc_timer(3)) must not be answered with the address of whatever socket
 * the process has at that number: here, descriptor 0 is one.
 */
START_TEST(entry_without_a_descriptor_names_no_socket)
{
	struct rsc_scope *s;
	struct rsc_entry *d, *t;
	struct sockaddr_storage got;
	socklen_t len;
	int sv[2], saved0, r = 1000;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	saved0 = fcntl(0, F_DUPFD_CLOEXEC, 3);
	ck_assert_int_ge(saved0, 0);
	ck_assert_int_eq(dup2(sv[0], 0), 0); /* descriptor 0 is a socket (inetd, systemd) */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_defer(s, exit_noop, NULL, &d), 0);
	ck_assert_int_eq(rsc_timer(s, 60000, t_store_res, &r, &t), 0);
	ck_assert_int_ge(rsc_entry_wait(t), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT) >= 0, 1);
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_sockname(d, (struct sockaddr *)&got, &len), -ENOTSOCK);
	ck_assert_msg(strstr(rsc_last_error(), "no descriptor"), "%s", rsc_last_error());
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_peername(d, (struct sockaddr *)&got, &len), -ENOTSOCK);
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_sockname(t, (struct sockaddr *)&got, &len), -ENOTSOCK);
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_peername(t, (struct sockaddr *)&got, &len), -ENOTSOCK);
	/* The socket at 0 is untouched and still answers for itself. */
	len = sizeof(got);
	ck_assert_int_eq(getsockname(0, (struct sockaddr *)&got, &len), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(dup2(saved0, 0), 0);
	close(saved0);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

struct exiting_peer {
	struct rsc_entry *other;
	int checked, name_ret, grabbed[2];
	sa_family_t family;
};

/*
 * A release callback: if the other entry's close has gone out but its
 * completion is not dispatched yet, take the lowest free numbers (its old
 * one among them) with sockets of another family, and ask for its name.
 */
static void ask_the_exiting_other(struct rsc_entry *e, int res, void *data)
{
	struct exiting_peer *x = data;
	struct sockaddr_storage got;
	socklen_t len = sizeof(got);

	(void)e;
	(void)res;
	if (x->checked || rsc_entry_state(x->other) != RSC_EXITING)
		return;
	x->checked = 1;
	x->grabbed[0] = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	x->grabbed[1] = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&got, 0, sizeof(got));
	x->name_ret = rsc_entry_sockname(x->other, (struct sockaddr *)&got, &len);
	x->family = got.ss_family;
}

/*
 * rsc_entry_sockname(3): "The entry stays the owner of its descriptor:
 * these calls only read it". Once its release's close has gone out, the
 * number may be someone else's (rsc_audit_describe_fd(3): the ledger lets
 * it go then): the entry must not answer with that one's name.
 */
START_TEST(exiting_entry_never_names_the_next_owner_of_its_number)
{
	struct rsc_scope *s;
	struct rsc_entry *a, *b;
	struct exiting_peer xa = { .grabbed = { -1, -1 } }, xb = { .grabbed = { -1, -1 } };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, 0, &a), 0);
	ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, 0, &b), 0);
	ck_assert_int_ge(rsc_entry_wait(b), 0);
	ck_assert_int_ge(rsc_entry_wait(a), 0);
	xa.other = b;
	xb.other = a;
	ck_assert_int_eq(rsc_entry_release(a, ask_the_exiting_other, &xa), 0);
	ck_assert_int_eq(rsc_entry_release(b, ask_the_exiting_other, &xb), 0);
	t_run();
	ck_assert_int_eq(xa.checked + xb.checked, 1); /* both closes went out in one submit */
	if (xa.checked) {
		ck_assert_int_eq(xa.name_ret, -EBADF);
	} else {
		ck_assert_int_eq(xb.name_ret, -EBADF);
	}
	for (int i = 0; i < 2; i++) {
		if (xa.grabbed[i] >= 0)
			close(xa.grabbed[i]);
		if (xb.grabbed[i] >= 0)
			close(xb.grabbed[i]);
	}
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

static struct sockaddr_un unix_addr(const char *name)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t_path(name));
	return sun;
}

/*
 * rsc_entry_sockname(3): "an address longer than the room is cut, as the
 * system calls do": *addrlen says the whole length, nothing is written
 * past the room; the entry keeps answering after a move, and a released
 * one is -EBADF.
 */
START_TEST(names_are_cut_like_getsockname_and_follow_the_entry)
{
	struct sockaddr_un sun = unix_addr("sock"), got;
	struct rsc_scope *s, *t;
	struct rsc_entry *l, *a;
	int peer, fd;
	socklen_t len, whole = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sun.sun_path) + 1);
	unsigned char raw[sizeof(got) + 8];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "t", &t), 0);
	ck_assert_int_eq(rsc_listen(s, (struct sockaddr *)&sun, sizeof(sun), 4, 0, &l), 0);
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)&got, &len), -EAGAIN);
	/* A bad argument is -EINVAL whatever the entry's state. */
	ck_assert_int_eq(rsc_entry_sockname(l, NULL, &len), -EINVAL);
	ck_assert_int_eq(rsc_entry_peername(l, (struct sockaddr *)&got, NULL), -EINVAL);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	/* Room for 5 bytes: the family and 3 bytes of the path, and not one more. */
	memset(raw, 0xa5, sizeof(raw));
	len = 5;
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)raw, &len), 0);
	ck_assert_int_eq(len, whole);
	ck_assert_int_eq(((struct sockaddr *)raw)->sa_family, AF_UNIX);
	ck_assert_int_eq(memcmp(raw + 2, sun.sun_path, 3), 0);
	for (size_t i = 5; i < sizeof(raw); i++)
		ck_assert_int_eq(raw[i], 0xa5);
	memset(raw, 0xa5, sizeof(raw));
	len = 0;
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)raw, &len), 0);
	ck_assert_int_eq(len, whole);
	ck_assert_int_eq(raw[0], 0xa5);
	/* Moved: same socket, same answer. */
	ck_assert_int_eq(rsc_entry_move(l, t), 0);
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)&got, &len), 0);
	ck_assert_str_eq(got.sun_path, sun.sun_path);
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_peername(l, (struct sockaddr *)&got, &len), -ENOTCONN);
	ck_assert_int_eq(rsc_entry_release_wait(l, NULL), 0);
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)&got, &len), -EBADF);
	ck_assert_int_eq(rsc_entry_sockname(l, (struct sockaddr *)&got, NULL), -EINVAL);
	/* Adopted, then detached: the caller's descriptor, no entry any more. */
	a = t_adopted_pair(t, &peer);
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_peername(a, (struct sockaddr *)&got, &len), 0);
	ck_assert_int_eq(len, sizeof(sa_family_t)); /* a socketpair's ends are unnamed */
	fd = rsc_entry_detach(a);
	ck_assert_int_ge(fd, 0);
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_sockname(a, (struct sockaddr *)&got, &len), -ESTALE);
	close(fd);
	close(peer);
	ck_assert_int_eq(rsc_scope_close_wait(t, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	unlink(sun.sun_path);
}
END_TEST

/*
 * rsc_entry_sockname(3): a direct connection (a chain's connect step) has
 * no local name (-EBADFD), even from a callback, but its peer is the address
 * it connected to (Direct slots); once installed (rsc_entry_install(3)) the
 * same entry names both ends through its descriptor.
 */
static void note_install(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

struct names {
	int sock, peer;
};

static void names_in_cb(struct rsc_entry *e, int res, void *data)
{
	struct names *n = data;
	struct sockaddr_storage got;
	socklen_t len = sizeof(got);

	(void)res;
	n->sock = rsc_entry_sockname(e, (struct sockaddr *)&got, &len);
	len = sizeof(got);
	n->peer = rsc_entry_peername(e, (struct sockaddr *)&got, &len);
}

START_TEST(direct_connection_names_only_once_installed)
{
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct rsc_entry *conn = NULL;
	struct sockaddr_in bound, got;
	struct names n = { 1000, 1000 };
	socklen_t len;
	int inst = 1000, lfd, peer;

	t_direct_table(16, 4);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bound = t_loopback(0);
	len = sizeof(bound);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&bound, sizeof(bound)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&bound, &len), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_socket(c, AF_INET, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(c, (struct sockaddr *)&bound, sizeof(bound), 0, &conn), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_eq(rsc_entry_on_enter(conn, names_in_cb, &n), 0);
	ck_assert_int_ge(rsc_entry_wait(conn), 0);
	for (int i = 0; i < 10 && n.sock == 1000; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(n.sock, -EBADFD);
	ck_assert_int_eq(n.peer, 0);
	len = sizeof(got);
	ck_assert_int_eq(rsc_entry_sockname(conn, (struct sockaddr *)&got, &len), -EBADFD);
	peer = accept(lfd, NULL, NULL);
	ck_assert_int_ge(peer, 0);
	if (t_kernel_has(OP_FIXED_FD_INSTALL)) {
		ck_assert_int_eq(rsc_entry_install(conn, 0, note_install, &inst), 0);
		while (inst == 1000)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_int_ge(inst, 0);
		len = sizeof(got);
		ck_assert_int_eq(rsc_entry_peername(conn, (struct sockaddr *)&got, &len), 0);
		ck_assert_int_eq(got.sin_port, bound.sin_port);
		ck_assert_int_eq(used(), 0);
	}
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	close(peer);
	close(lfd);
}
END_TEST

/* ------------------------------------------------------------- the ledger */

/*
 * rsc_audit_describe_fd(3): the ledger speaks of process descriptors. A
 * direct slot's number names nothing in /proc/self/fd, so a slot held by
 * an entry is no answer for the descriptor of that number; a moved entry
 * names its new scope, an entry of another loop is found, a detached one
 * is not.
 */
START_TEST(describe_fd_speaks_of_descriptors_and_their_owners)
{
	struct rsc_loop *other;
	struct rsc_scope *s, *t, *o;
	struct rsc_chain *c;
	struct rsc_entry *e, *step, *f;
	char text[512];
	int slot, plain, fd;

	t_direct_table(64, 4);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "moved-to", &t), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &step), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	slot = rsc_entry_wait(step);
	ck_assert_int_ge(slot, 60);
	/* The same number as a process descriptor nobody owns. */
	ck_assert_int_eq(fcntl(slot, F_GETFD), -1);
	plain = open(t_path("f1"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(plain, 0);
	if (plain != slot) {
		ck_assert_int_eq(dup2(plain, slot), slot);
		ck_assert_int_eq(fcntl(slot, F_SETFD, FD_CLOEXEC), 0);
		close(plain);
	}
	ck_assert_int_eq(rsc_audit_describe_fd(slot, text, sizeof(text)), -ENOENT);
	/* A process descriptor of an entry, moved. */
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	fd = rsc_entry_wait(e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_entry_move(e, t), 0);
	ck_assert_int_gt(rsc_audit_describe_fd(fd, text, sizeof(text)), 0);
	ck_assert_msg(strstr(text, "'moved-to'"), "%s", text);
	/* Another loop's entry. */
	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "other-loop", &o), 0);
	ck_assert_int_eq(rsc_open(o, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, &f), 0);
	ck_assert_int_ge(rsc_entry_wait(f), 0);
	ck_assert_int_gt(rsc_audit_describe_fd(rsc_entry_fd(f), text, sizeof(text)), 0);
	ck_assert_msg(strstr(text, "'other-loop'"), "%s", text);
	/* Detached: the caller's now. */
	fd = rsc_entry_detach(f);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_audit_describe_fd(fd, text, sizeof(text)), -ENOENT);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(other), 0);
	close(fd);
	ck_assert_int_eq(rsc_scope_close_wait(t, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_describe_fd(slot, text, sizeof(text)), -ENOENT);
	close(slot);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/*
 * rsc_audit_describe_fd(3): "The ledger covers descriptor numbers below
 * 1048576": the highest one RLIMIT_NOFILE allows (2^20 - 1 at most),
 * adopted, is named; after the release it is not.
 */
START_TEST(describe_fd_at_the_top_of_the_ledger)
{
	struct rlimit old, lim;
	struct rsc_scope *s;
	struct rsc_entry *e;
	char text[256];
	int fd, top;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	top = old.rlim_max > (rlim_t)1 << 20 ? (1 << 20) - 1 : (int)old.rlim_max - 1;
	lim = old;
	lim.rlim_cur = lim.rlim_max;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, top), top);
	ck_assert_int_eq(fcntl(top, F_SETFD, FD_CLOEXEC), 0);
	close(fd);
	ck_assert_int_eq(rsc_audit_describe_fd(top, text, sizeof(text)), -ENOENT);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "top", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, top, 0, &e), 0);
	ck_assert_int_gt(rsc_audit_describe_fd(top, text, sizeof(text)), 0);
	ck_assert_msg(strstr(text, "'top'"), "%s", text);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(fcntl(top, F_GETFD), -1); /* closed by its release */
	ck_assert_int_eq(rsc_audit_describe_fd(top, text, sizeof(text)), -ENOENT);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
}
END_TEST

/*
 * rsc_audit_describe_fd(3): the runtime's own descriptors (a loop's ring)
 * are no entry's: -ENOENT. The sentence is cut as snprintf(3) cuts it:
 * len 1 writes only the NUL, len 0 writes nothing; both return the length.
 */
START_TEST(describe_fd_of_the_runtimes_own_and_cut_sentences)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *e;
	char text[512], one[1] = { 'x' }, none[1] = { 'y' };
	int ring, fd, n;

	loop = loop_and_ring_fd(&ring);
	ck_assert_int_eq(rsc_audit_describe_fd(ring, text, sizeof(text)), -ENOENT);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), 0);
	fd = rsc_entry_wait(e);
	ck_assert_int_ge(fd, 0);
	n = rsc_audit_describe_fd(fd, text, sizeof(text));
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq((int)strlen(text), n);
	ck_assert_msg(strstr(text, "'file' (/dev/null) in scope 's'"), "%s", text);
	ck_assert_int_eq(rsc_audit_describe_fd(fd, one, 1), n);
	ck_assert_int_eq(one[0], '\0');
	ck_assert_int_eq(rsc_audit_describe_fd(fd, none, 0), n);
	ck_assert_int_eq(none[0], 'y');
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_describe_fd(fd, text, sizeof(text)), -ENOENT);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
	ck_assert_int_eq(rsc_audit_describe_fd(ring, text, sizeof(text)), -ENOENT);
}
END_TEST

/* rsc_audit_fd_count(3): the entries of /proc/self/fd, leaving out its own handle. */
START_TEST(fd_count_is_the_proc_listing)
{
	DIR *d;
	struct dirent *de;
	int n = 0, count, fds[3];

	count = rsc_audit_fd_count();
	d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	ck_assert_int_eq(count, n - 1);
	for (int i = 0; i < 3; i++)
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(rsc_audit_fd_count(), count + 3);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	ck_assert_int_eq(rsc_audit_fd_count(), count);
	ck_assert_int_eq(rsc_loop_direct_used(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), -ENXIO);
}
END_TEST

/* rsc_audit_fd_count(3): "-EMFILE when no descriptor is left", and the count again once one is. */
START_TEST(fd_count_without_a_descriptor_left_is_emfile)
{
	struct rlimit old, low;
	int n = rsc_audit_fd_count(), hog[64], k = 0;

	ck_assert_int_ge(n, 3);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 64;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (k < 64 && (hog[k] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		k++;
	ck_assert_int_lt(k, 64);
	ck_assert_int_eq(rsc_audit_fd_count(), -EMFILE);
	close(hog[--k]);
	ck_assert_int_eq(rsc_audit_fd_count(), n + k);
	while (k > 0)
		close(hog[--k]);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_int_eq(rsc_audit_fd_count(), n);
}
END_TEST

Suite *make_hostile_chains_suite(void)
{
	Suite *s = suite_create("hostile_chains");
	TCase *tc = tcase_create("hostile_chains");
	struct rsc_loop *probe;
	struct rlimit lim;

	t_add_fixture(tc);
	suite_add_tcase(s, tc);
	tcase_add_test(tc, entry_without_a_descriptor_names_no_socket);
	t_add_socket_test(tc, names_are_cut_like_getsockname_and_follow_the_entry);
	t_add_socket_test(tc, exiting_entry_never_names_the_next_owner_of_its_number);
	tcase_add_test(tc, fd_count_is_the_proc_listing);
	tcase_add_test(tc, fd_count_without_a_descriptor_left_is_emfile);
	if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_max > 4096 && lim.rlim_max != RLIM_INFINITY &&
	    !t_under_valgrind())
		tcase_add_test(tc, describe_fd_at_the_top_of_the_ledger);
	else
		printf("SKIP describe_fd_at_the_top_of_the_ledger: RLIMIT_NOFILE's hard limit is 4096 or less (or valgrind)\n");
	if (rsc_loop_new(&probe, 8, RSC_LOOP_DIRECT) < 0) {
		printf("SKIP hostile_chains chain tests: kernel lacks a sparse direct table with allocation ranges (Linux 6.0): %s\n",
		       rsc_last_error());
		return s;
	}
	if (rsc_loop_close(probe) < 0)
		printf("probe loop did not close: %s\n", rsc_last_error());
	tcase_add_test(tc, step_refused_at_submit_is_the_only_error);
	tcase_add_test(tc, chain_overflowing_a_small_cq_settles_every_step);
	tcase_add_test(tc, chain_range_filled_exactly_then_one_more);
	tcase_add_test(tc, chain_of_a_freed_scope_is_stale_at_submit);
	tcase_add_test(tc, chain_submitted_from_a_hook_is_edeadlk_and_consumed);
	tcase_add_test(tc, describe_fd_speaks_of_descriptors_and_their_owners);
	tcase_add_test(tc, slots_changed_behind_the_runtime_are_found);
	tcase_add_test(tc, describe_fd_of_the_runtimes_own_and_cut_sentences);
	tcase_add_test(tc, chain_takes_the_table_of_its_submit);
	if (t_kernel_has(IORING_OP_SOCKET) && t_kernel_has(IORING_OP_CONNECT)) {
		tcase_add_loop_test(tc, chain_cut_mid_connect_releases_the_socket_and_cancels_the_send, 0, 5);
		tcase_add_test(tc, chain_copies_paths_and_addresses_at_once);
		tcase_add_test(tc, shutdown_with_a_chain_in_flight_and_one_never_sent);
		tcase_add_test(tc, failed_socket_step_cancels_connect_and_send);
		tcase_add_test(tc, short_first_send_reports_what_the_peer_gets);
		tcase_add_test(tc, refused_steps_leave_the_chain_as_it_was);
		tcase_add_test(tc, chain_of_four_steps_unwinds_newest_first);
		tcase_add_loop_test(tc, first_send_callback_acts_on_its_entering_connection, 0, 3);
		if (rsc_fault_set(t_probe_loop(), NULL) == 0)
			tcase_add_test(tc, connect_step_that_wins_the_race_against_close_is_released);
		else
			printf("SKIP connect_step_that_wins_the_race_against_close_is_released: built without fault injection\n");
		tcase_add_test(tc, slot_of_a_chain_step_while_it_is_released);
		tcase_add_test(tc, direct_connection_names_only_once_installed);
	} else {
		printf("SKIP chain_cut_mid_connect_releases_the_socket_and_cancels_the_send, slot_of_a_chain_step_while_it_is_released, direct_connection_names_only_once_installed: kernel lacks IORING_OP_SOCKET (Linux 5.19)\n");
	}
	return s;
}
