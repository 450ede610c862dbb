/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/*
 * Hostile tests of tracked I/O, written from rsc_read(3) (rsc_write, rsc_recv,
 * rsc_send, rsc_timeout, rsc_timer, rsc_entry_io_count) and
 * rsc_recv_multishot(3): I/O started from callbacks and hooks, callbacks that
 * release, move or close what their op runs on, hundreds of ops cancelled by
 * one release, timers re-armed and released in flight, a multishot receive
 * whose ring runs dry, whose peer leaves, whose entry goes mid-stream.
 * DESIGN 2.8: the release waits for the last CQE before its close. The other
 * end of each descriptor is the test's, so the close is seen from outside.
 */

#define MANY 300

struct op_seen {
	int calls;
	int res;
	void *buf;
	void *want_buf;
	int released_before; /* RSC_EV_RELEASED events when the call came */
	bool fd_open;	     /* the entry's descriptor was still open then */
};

struct many {
	struct op_seen op[MANY];
	char bufs[MANY][8];
	int fd; /* the entry's descriptor, checked open in each callback */
	struct rsc_entry *e;
	int release_calls, release_res, calls_at_release;
	int total;
};

static void on_op(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct op_seen *o = data;

	(void)e;
	o->calls++;
	o->res = res;
	o->buf = buf;
	o->released_before = t_count_events(RSC_EV_RELEASED);
}

static void on_many(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct many *m = rsc_entry_data(e);
	struct op_seen *o = data;

	on_op(e, res, buf, data);
	o->fd_open = fcntl(m->fd, F_GETFD) >= 0;
	m->total++;
}

static void on_released(struct rsc_entry *e, int res, void *data)
{
	struct many *m = data;

	(void)e;
	m->release_calls++;
	m->release_res = res;
	m->calls_at_release = m->total;
}

/* The write end of a pipe whose read end is gone reports POLLERR. */
static bool reader_gone(int wfd)
{
	struct pollfd p = { .fd = wfd, .events = POLLOUT };

	ck_assert_int_eq(poll(&p, 1, 0), 1);
	return p.revents & POLLERR;
}

static void check_all_cancelled(struct many *m, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		ck_assert_msg(m->op[i].calls == 1, "op %d: %d calls", i, m->op[i].calls);
		ck_assert_msg(m->op[i].res == -ECANCELED || m->op[i].res == -EINTR,
			      "op %d: %d", i, m->op[i].res);
		ck_assert_ptr_eq(m->op[i].buf, m->op[i].want_buf);
		ck_assert_msg(m->op[i].fd_open, "op %d: its callback came after the close", i);
		ck_assert_int_eq(m->op[i].released_before, 0);
	}
}

/* DESIGN 2.8 with hundreds of ops (more than the ring has SQEs): each callback
 * once, -ECANCELED, its own buffer back, and the close only after the last. */
START_TEST(hundreds_of_reads_cancelled_by_one_release_before_its_close)
{
	struct many *m = calloc(1, sizeof(*m));
	struct rsc_scope *s;
	int p[2], i;

	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "many", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &m->e), 0);
	m->fd = p[0];
	ck_assert_int_eq(rsc_entry_set_data(m->e, m), 0);
	for (i = 0; i < MANY; i++) {
		m->op[i].want_buf = m->bufs[i];
		ck_assert_int_eq(rsc_read(m->e, m->bufs[i], sizeof(m->bufs[i]), -1, on_many,
					  &m->op[i]), 0);
	}
	ck_assert_int_eq(rsc_entry_io_count(m->e), MANY);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(m->total, 0);
	ck_assert_int_eq(rsc_entry_release(m->e, on_released, m), 0);
	ck_assert_int_eq(rsc_read(m->e, m->bufs[0], 1, -1, on_many, &m->op[0]), -EBADF);
	ck_assert_int_eq(m->total, 0); /* from the loop, never inside the call */
	t_run();
	check_all_cancelled(m, MANY);
	ck_assert_int_eq(m->release_calls, 1);
	ck_assert_int_eq(m->release_res, 0);
	ck_assert_int_eq(m->calls_at_release, MANY);
	ck_assert(reader_gone(p[1]));
	ck_assert_int_eq(rsc_entry_io_count(m->e), 0); /* valid until its scope goes */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_entry_io_count(m->e), -ESTALE);
	close(p[1]);
	free(m);
}
END_TEST

/* The same by the unwind, with writes blocked on a full pipe mixed with
 * timeouts (which the one cancel by descriptor does not reach). */
START_TEST(writes_and_timeouts_on_one_entry_cancelled_by_its_unwind)
{
	struct many *m = calloc(1, sizeof(*m));
	static char big[65536];
	struct op_seen bigw = { 0 };
	struct rsc_scope *s;
	int i, p[2];

	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "mixed", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[1], 0, &m->e), 0);
	m->fd = p[1];
	ck_assert_int_eq(rsc_entry_set_data(m->e, m), 0);
	/* Fill the pipe, then writes that wait for room. */
	ck_assert_int_eq(rsc_write(m->e, big, sizeof(big), -1, on_op, &bigw), 0);
	t_run();
	ck_assert_int_eq(bigw.res, (int)sizeof(big));
	for (i = 0; i < MANY; i++) {
		m->op[i].want_buf = i % 3 ? m->bufs[i] : NULL;
		if (i % 3)
			ck_assert_int_eq(rsc_write(m->e, m->bufs[i], sizeof(m->bufs[i]), -1,
						   on_many, &m->op[i]), 0);
		else
			ck_assert_int_eq(rsc_timeout(m->e, 60000, on_many, &m->op[i]), 0);
	}
	ck_assert_int_eq(rsc_entry_io_count(m->e), MANY);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(m->total, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	check_all_cancelled(m, MANY);
	/* The write end is gone: the read end sees the 64 KiB, then EOF. */
	ck_assert_int_eq(read(p[0], big, sizeof(big)), (int)sizeof(big));
	ck_assert_int_eq(read(p[0], big, sizeof(big)), 0);
	close(p[0]);
	free(m);
}
END_TEST

/* A read that starts the next read from its own callback, until its release. */
struct chain {
	struct rsc_entry *e;
	char buf[4];
	int calls, cancelled, reread_refused, data_bytes, release_in;
};

static void on_chain(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct chain *c = data;
	int ret;

	c->calls++;
	ret = rsc_read(e, buf, sizeof(c->buf), -1, on_chain, c);
	if (res > 0) {
		c->data_bytes += res;
		ck_assert_int_eq(ret, 0);
		if (c->release_in && !--c->release_in)
			ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
		return;
	}
	c->cancelled += res == -ECANCELED;
	c->reread_refused += ret == -EBADF;
}

START_TEST(read_restarted_from_its_callback_ends_once_with_its_release)
{
	struct chain c = { 0 };
	struct rsc_scope *s;
	int p[2], i;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "chain", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &c.e), 0);
	ck_assert_int_eq(rsc_read(c.e, c.buf, sizeof(c.buf), -1, on_chain, &c), 0);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(write(p[1], "abcd", 4), 4);
		while (c.data_bytes < 4 * (i + 1))
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_int_eq(rsc_entry_io_count(c.e), 1);
	}
	/* The sixth read's callback releases the entry; the seventh read it
	 * started was bound before the release, and is cancelled by it. */
	c.release_in = 1;
	ck_assert_int_eq(write(p[1], "abcd", 4), 4);
	t_run();
	ck_assert_int_eq(c.data_bytes, 24);
	ck_assert_int_eq(c.cancelled, 1);
	ck_assert_int_eq(c.reread_refused, 1);
	ck_assert_int_eq(c.calls, 7);
	ck_assert(reader_gone(p[1]));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(p[1]);
}
END_TEST

/* A callback that detaches (refused: the others are in flight), releases,
 * releases again, and starts I/O on its own entry, with 100 reads beside it. */
enum self_action { SELF_RELEASE, SELF_CLOSE_SCOPE, SELF_MOVE };

struct self {
	struct many m;
	enum self_action act;
	struct rsc_scope *s, *to;
	int first, detach_ret, release_ret, again_ret, read_ret, move_ret, close_ret;
};

static void on_self(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct self *x = rsc_entry_data(e);
	struct op_seen *o = data;

	on_many(e, res, buf, data);
	if (res <= 0 || x->first >= 0)
		return;
	x->first = (int)(o - x->m.op);
	x->detach_ret = rsc_entry_detach(e);
	switch (x->act) {
	case SELF_RELEASE:
		x->release_ret = rsc_entry_release(e, on_released, &x->m);
		x->again_ret = rsc_entry_release(e, NULL, NULL);
		break;
	case SELF_CLOSE_SCOPE:
		x->close_ret = rsc_scope_close(x->s, NULL, NULL);
		break;
	case SELF_MOVE:
		x->move_ret = rsc_entry_move(e, x->to);
		x->close_ret = rsc_scope_close(x->s, NULL, NULL);
		break;
	}
	x->read_ret = rsc_read(e, x->m.bufs[0], 1, -1, on_self, &x->m.op[0]);
}

static struct self *self_setup(enum self_action act, int p[2])
{
	struct self *x = calloc(1, sizeof(*x));
	int i;

	ck_assert_ptr_nonnull(x);
	x->act = act;
	x->first = -1;
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "self", &x->s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "to", &x->to), 0);
	ck_assert_int_eq(rsc_adopt(x->s, p[0], 0, &x->m.e), 0);
	x->m.fd = p[0];
	ck_assert_int_eq(rsc_entry_set_data(x->m.e, x), 0);
	for (i = 0; i < 100; i++) {
		x->m.op[i].want_buf = x->m.bufs[i];
		ck_assert_int_eq(rsc_read(x->m.e, x->m.bufs[i], 1, -1, on_self, &x->m.op[i]), 0);
	}
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(write(p[1], "z", 1), 1);
	while (x->first < 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	return x;
}

static void check_others_cancelled(struct self *x, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (i == x->first)
			continue;
		ck_assert_msg(x->m.op[i].calls == 1, "op %d: %d calls", i, x->m.op[i].calls);
		ck_assert_msg(x->m.op[i].res == -ECANCELED, "op %d: %d", i, x->m.op[i].res);
		ck_assert_ptr_eq(x->m.op[i].buf, x->m.op[i].want_buf);
		ck_assert(x->m.op[i].fd_open);
	}
}

START_TEST(callback_releases_its_own_entry_with_others_in_flight)
{
	int p[2];
	struct self *x = self_setup(SELF_RELEASE, p);

	ck_assert_int_eq(x->detach_ret, -EBUSY);
	ck_assert_int_eq(x->release_ret, 0);
	ck_assert_int_eq(x->again_ret, -EALREADY);
	ck_assert_int_eq(x->read_ret, -EBADF);
	t_run();
	check_others_cancelled(x, 100);
	ck_assert_int_eq(x->m.release_calls, 1);
	ck_assert_int_eq(x->m.calls_at_release, 100);
	ck_assert(reader_gone(p[1]));
	ck_assert_int_eq(rsc_scope_close_wait(x->s, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(x->to, NULL), 0);
	close(p[1]);
	free(x);
}
END_TEST

START_TEST(callback_closes_its_scope_with_others_in_flight)
{
	int p[2];
	struct self *x = self_setup(SELF_CLOSE_SCOPE, p);

	ck_assert_int_eq(x->close_ret, 0);
	ck_assert_int_eq(x->read_ret, -ESHUTDOWN);
	t_run();
	check_others_cancelled(x, 100);
	ck_assert(reader_gone(p[1]));
	ck_assert_int_eq(rsc_scope_close_wait(x->to, NULL), 0);
	close(p[1]);
	free(x);
}
END_TEST

/* rsc_entry_move(3): "Tracked I/O stays in flight": the old scope's close
 * leaves the reads, which now end with the new scope's unwind. */
START_TEST(callback_moves_its_own_entry_and_closes_the_old_scope)
{
	int p[2], i, done = 0;
	struct self *x = self_setup(SELF_MOVE, p);

	ck_assert_int_eq(x->move_ret, 0);
	ck_assert_int_eq(x->close_ret, 0);
	ck_assert_int_eq(x->read_ret, 0);
	while (t_count_events(RSC_EV_SCOPE_CLOSED) < 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_entry_io_count(x->m.e), 100);
	ck_assert(!reader_gone(p[1]));
	ck_assert_int_eq(write(p[1], "abc", 3), 3);
	while (x->m.total < 4)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	for (i = 0; i < 100; i++)
		done += x->m.op[i].calls;
	ck_assert_int_eq(done, 4);
	ck_assert_int_eq(rsc_scope_close_wait(x->to, NULL), 0);
	ck_assert_int_eq(x->m.total, 101);
	ck_assert(reader_gone(p[1]));
	close(p[1]);
	free(x);
}
END_TEST

/* ---- hooks and callbacks that start I/O ----------------------------------------- */

/* seen[0]: calls, seen[1]: the last result, seen[2]: buf was NULL. */
static void note_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	int *seen = data;

	(void)e;
	seen[0]++;
	seen[1] = res;
	seen[2] = buf == NULL;
}

struct hook_probe {
	struct rsc_entry *other; /* an entered entry of another scope */
	struct rsc_scope *other_scope;
	char buf[4];
	int seen[3];
	int read, write, recv, send, timeout, timer, multishot, count, ran;
};

static void probe_all(struct hook_probe *h)
{
	h->ran++;
	h->read = rsc_read(h->other, h->buf, 1, -1, note_io, h->seen);
	h->write = rsc_write(h->other, "x", 1, -1, note_io, h->seen);
	h->recv = rsc_recv(h->other, h->buf, 1, 0, note_io, h->seen);
	h->send = rsc_send(h->other, "x", 1, 0, note_io, h->seen);
	h->timeout = rsc_timeout(h->other, 1, note_io, h->seen);
	h->timer = rsc_timer(h->other_scope, 1, note_io, h->seen, NULL);
	h->multishot = rsc_recv_multishot(h->other, 0, note_io, h->seen);
	h->count = rsc_entry_io_count(h->other);
}

static void check_all_edeadlk(const struct hook_probe *h)
{
	ck_assert_int_ge(h->ran, 1);
	ck_assert_int_eq(h->read, -EDEADLK);
	ck_assert_int_eq(h->write, -EDEADLK);
	ck_assert_int_eq(h->recv, -EDEADLK);
	ck_assert_int_eq(h->send, -EDEADLK);
	ck_assert_int_eq(h->timeout, -EDEADLK);
	ck_assert_int_eq(h->timer, -EDEADLK);
	ck_assert_int_eq(h->multishot, -EDEADLK);
	ck_assert_int_eq(h->count, 0);
	ck_assert_int_eq(h->seen[0], 0);
}

static int probe_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	probe_all(arg);
	return 0;
}

static int probe_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	(void)e;
	(void)p;
	probe_all(arg);
	return 0;
}

static const struct rsc_manager probe_mgr = {
	.size = sizeof(struct rsc_manager),
	.name = "probe",
	.enter = probe_enter,
	.exit = probe_exit,
};

/* rsc_read(3): "From inside a manager's enter or exit hook these calls, and
 * rsc_timer(), return -EDEADLK", whether the exit runs from an early release
 * (its scope open) or from its scope's unwind (the scope closing). */
START_TEST(io_from_enter_and_exit_hooks_is_edeadlk)
{
	struct hook_probe h = { 0 };
	struct rsc_scope *s, *o;
	struct rsc_entry *e;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "other", &o), 0);
	h.other_scope = o;
	h.other = t_adopted_pair(o, &peer);
	ck_assert_int_ge(rsc_entry_wait(h.other), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "hooks", &s), 0);
	ck_assert_int_eq(rsc_push(s, &probe_mgr, &h, &e), 0);
	check_all_edeadlk(&h);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	memset(&h.read, 0, sizeof(int) * 9);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	check_all_edeadlk(&h);
	ck_assert_int_eq(rsc_push(s, &probe_mgr, &h, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	memset(&h.read, 0, sizeof(int) * 9);
	/* Its own scope unwinding: -EDEADLK still, not -ESHUTDOWN. */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	check_all_edeadlk(&h);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	close(peer);
}
END_TEST

/* The trace callback is a hook too (rsc_read(3) ERRORS -EDEADLK). */
static void probe_from_trace(struct recorder *r, const struct event *ev)
{
	if (!strcmp(ev->scope, "traced"))
		probe_all(r->user);
}

START_TEST(io_from_the_trace_callback_is_edeadlk)
{
	struct hook_probe h = { 0 };
	struct rsc_scope *s, *o;
	struct rsc_entry *e;
	int peer, peer2;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "other", &o), 0);
	h.other_scope = o;
	h.other = t_adopted_pair(o, &peer);
	ck_assert_int_ge(rsc_entry_wait(h.other), 0);
	t_rec->user = &h;
	t_rec->after = probe_from_trace;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "traced", &s), 0);
	e = t_adopted_pair(s, &peer2);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	t_rec->after = NULL;
	check_all_edeadlk(&h);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	close(peer);
	close(peer2);
}
END_TEST

/* An on-close callback may start I/O on an entry of another scope (its own
 * are gone: -ESTALE), and the op completes like any other. */
struct on_close_io {
	struct rsc_entry *mine, *other;
	char buf[4];
	int seen[3];
	int mine_ret, other_ret, timer_ret;
	struct rsc_scope *other_scope;
};

static void on_close_starts_io(struct rsc_scope *scope, int status, const struct rsc_error *err,
			       void *data)
{
	struct on_close_io *c = data;

	(void)scope;
	(void)status;
	(void)err;
	c->mine_ret = rsc_read(c->mine, c->buf, 1, -1, note_io, c->seen);
	c->other_ret = rsc_recv(c->other, c->buf, 1, 0, note_io, c->seen);
	c->timer_ret = rsc_timer(c->other_scope, 1, note_io, c->seen, NULL);
}

START_TEST(io_from_an_on_close_callback)
{
	struct on_close_io c = { 0 };
	struct rsc_scope *s, *o;
	int peer, peer2;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "other", &o), 0);
	c.other_scope = o;
	c.other = t_adopted_pair(o, &peer);
	ck_assert_int_ge(rsc_entry_wait(c.other), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "closing", &s), 0);
	c.mine = t_adopted_pair(s, &peer2);
	ck_assert_int_ge(rsc_entry_wait(c.mine), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_close_starts_io, &c), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(c.mine_ret, -EBADF); /* released; valid until the scope is freed */
	ck_assert_int_eq(c.other_ret, 0);
	ck_assert_int_eq(c.timer_ret, 0);
	ck_assert_int_eq(send(peer, "q", 1, 0), 1);
	while (c.seen[0] < 2)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	close(peer);
	close(peer2);
}
END_TEST

/* ---- arguments at their edges --------------------------------------------------- */

START_TEST(zero_lengths_huge_lengths_and_offsets)
{
	struct op_seen r0 = { 0 }, w0 = { 0 }, s0 = { 0 }, v0 = { 0 }, big = { 0 }, far = { 0 };
	struct op_seen tail = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *f, *sock;
	char buf[16] = "";
	int peer, fd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "edges", &s), 0);
	fd = open(t_path("six"), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "abcdef", 6), 6);
	ck_assert_int_eq(rsc_adopt(s, fd, 0, &f), 0);
	sock = t_adopted_pair(s, &peer);
	/* len 0 with a NULL buffer: allowed ("buf is NULL with a non-zero len"). */
	ck_assert_int_eq(rsc_read(f, NULL, 0, 0, on_op, &r0), 0);
	ck_assert_int_eq(rsc_write(f, NULL, 0, -1, on_op, &w0), 0);
	ck_assert_int_eq(rsc_send(sock, NULL, 0, 0, on_op, &s0), 0);
	ck_assert_int_eq(rsc_recv(sock, NULL, 1, 0, on_op, &v0), -EINVAL);
	ck_assert_int_eq(rsc_read(f, buf, UINT_MAX, 0, on_op, &big), 0);
	ck_assert_int_eq(rsc_read(f, buf, 1, LLONG_MAX, on_op, &far), 0);
	ck_assert_int_eq(rsc_read(f, buf + 8, 8, LLONG_MAX - 8, on_op, &tail), 0);
	ck_assert_int_eq(rsc_read(f, buf, 1, LLONG_MIN, on_op, &tail), -EINVAL);
	ck_assert_int_eq(rsc_write(f, buf, 1, -2, on_op, &tail), -EINVAL);
	ck_assert_int_eq(rsc_recv(sock, buf, 1, INT_MIN, on_op, &tail), -EINVAL);
	ck_assert_int_eq(rsc_entry_io_count(f), 5);
	t_run();
	ck_assert_int_eq(r0.calls, 1);
	ck_assert_int_eq(r0.res, 0);
	ck_assert_ptr_null(r0.buf);
	ck_assert_int_eq(w0.calls, 1);
	ck_assert_int_eq(w0.res, 0);
	ck_assert_int_eq(s0.calls, 1);
	ck_assert_int_eq(s0.res, 0);
	ck_assert_int_eq(v0.calls, 0);
	ck_assert_int_eq(big.calls, 1);
	/* The kernel's answer, passed through once: the bytes, or -EFAULT where
	 * the range it checks runs into unmapped memory. */
	ck_assert(big.res == 6 || big.res == -EFAULT);
	ck_assert_ptr_eq(big.buf, buf);
	ck_assert_int_eq(far.calls, 1);
	ck_assert_int_le(far.res, 0); /* past the end, or the kernel's -EINVAL */
	ck_assert_int_eq(tail.calls, 1);
	ck_assert_int_le(tail.res, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

/* -EBADF for an entry still entering whose release was asked, -ESTALE for a
 * detached one; a moved one keeps working. */
START_TEST(io_on_released_detached_and_moved_entries)
{
	struct op_seen r = { 0 };
	struct rsc_scope *s, *t;
	struct rsc_entry *e, *d, *m;
	char buf[4];
	int peer, peer2, fd;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "t", &t), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	ck_assert_int_eq(rsc_read(e, buf, 1, 0, on_op, &r), -EBADF);
	ck_assert_int_eq(rsc_timeout(e, 1, on_op, &r), -EBADF);
	d = t_adopted_pair(s, &peer);
	ck_assert_int_ge(rsc_entry_wait(d), 0);
	fd = rsc_entry_detach(d);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_send(d, "x", 1, 0, on_op, &r), -ESTALE);
	ck_assert_int_eq(rsc_timeout(d, 1, on_op, &r), -ESTALE);
	ck_assert_int_eq(rsc_recv_multishot(d, 0, on_op, &r), -ESTALE);
	ck_assert_int_eq(rsc_entry_io_count(d), -ESTALE);
	close(fd);
	m = t_adopted_pair(s, &peer2);
	ck_assert_int_ge(rsc_entry_wait(m), 0);
	ck_assert_int_eq(rsc_entry_move(m, t), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_send(m, "x", 1, 0, on_op, &r), 0);
	t_run();
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.res, 1);
	ck_assert_int_eq(rsc_scope_close_wait(t, NULL), 0);
	close(peer);
	close(peer2);
}
END_TEST

/* ---- timers --------------------------------------------------------------------- */

struct rearm {
	int fired, cancelled, calls, left, rearm_ret;
	bool release_in_cb;
};

static void on_rearm(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct rearm *r = data;

	(void)buf;
	r->calls++;
	if (res == -ECANCELED) {
		r->cancelled++;
		return;
	}
	ck_assert_int_eq(res, -ETIME);
	r->fired++;
	if (r->left) {
		r->left--;
		r->rearm_ret = rsc_timeout(e, 1, on_rearm, r);
		return;
	}
	r->rearm_ret = rsc_timeout(e, 60000, on_rearm, r);
	if (r->release_in_cb)
		ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
}

/* rsc_timer(3): re-armed from its callback with rsc_timeout; released
 * mid-flight from outside, or from its own callback after a re-arm. */
START_TEST(timer_rearmed_from_its_callback_then_released)
{
	struct rearm a = { .left = 4 }, b = { .left = 2, .release_in_cb = true };
	struct rsc_scope *s;
	struct rsc_entry *ta, *tb;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "timers", &s), 0);
	ck_assert_int_eq(rsc_timer(s, 1, on_rearm, &a, &ta), 0);
	ck_assert_int_eq(rsc_timer(s, 1, on_rearm, &b, &tb), 0);
	while (a.fired < 5 || b.cancelled < 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_entry_io_count(ta), 1);
	ck_assert_int_eq(rsc_entry_release(ta, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_io_count(ta), 1);
	t_run();
	ck_assert_int_eq(a.rearm_ret, 0);
	ck_assert_int_eq(a.fired, 5);
	ck_assert_int_eq(a.cancelled, 1);
	ck_assert_int_eq(a.calls, 6);
	ck_assert_int_eq(b.fired, 3);
	ck_assert_int_eq(b.cancelled, 1);
	ck_assert_int_eq(b.calls, 4);
	ck_assert_int_eq(rsc_entry_io_count(ta), 0);
	ck_assert_int_eq(rsc_entry_io_count(tb), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_entry_io_count(ta), -ESTALE);
}
END_TEST

/* rsc_timer(3): a timer that "enters after its scope's close ... was asked
 * for" never starts: cb once with -ECANCELED. A graceful close is a close
 * asked for; were the timer started in its grace, it would hold the grace
 * (rsc_scope_close_graceful(3): "a rsc_timer that has not fired") for all its
 * milliseconds, here without a bound. */
START_TEST(timer_entering_after_a_graceful_close_never_starts)
{
	int seen[3] = { 0 }, rel[3] = { 0 }, failed[3] = { 0 };
	struct rsc_scope *s, *r, *f;
	struct rsc_entry *t;
	long long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "grace", &s), 0);
	ck_assert_int_eq(rsc_timer(s, 3000, note_io, seen, &t), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, NULL, NULL), 0);
	/* Its own release asked before it entered; its scope failed before. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "rel", &r), 0);
	ck_assert_int_eq(rsc_timer(r, 3000, note_io, rel, &t), 0);
	ck_assert_int_eq(rsc_entry_release(t, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "fail", &f), 0);
	ck_assert_int_eq(rsc_timer(f, 3000, note_io, failed, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(f, -EIO, "body"), 0);
	t0 = t_now_ms();
	t_run();
	ck_assert_int_lt(t_now_ms() - t0, 1000);
	ck_assert_int_eq(seen[0], 1);
	ck_assert_int_eq(seen[1], -ECANCELED);
	ck_assert_int_eq(seen[2], 1);
	ck_assert_int_eq(rel[0], 1);
	ck_assert_int_eq(rel[1], -ECANCELED);
	ck_assert_int_eq(failed[0], 1);
	ck_assert_int_eq(failed[1], -ECANCELED);
	ck_assert_int_eq(rsc_scope_close_wait(r, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(f, NULL), -EIO);
}
END_TEST

/*
 * The same while something else holds the grace: a timer that entered after
 * the graceful close was asked never starts (rsc_timer(3)), though the grace
 * lets the work already under way, here an older timer, go on; the scope
 * closes when that one fires, not when the new one would have.
 */
START_TEST(timer_entering_in_a_grace_held_by_another_never_starts)
{
	int old[3] = { 0 }, late[3] = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *t;
	long long t0;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "grace", &s), 0);
	ck_assert_int_eq(rsc_timer(s, 150, note_io, old, &t), 0);
	ck_assert_int_eq(rsc_entry_wait(t), 0); /* entered: its timeout is under way */
	ck_assert_int_eq(rsc_entry_io_count(t), 1);
	ck_assert_int_eq(rsc_timer(s, 3000, note_io, late, NULL), 0);
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, NULL, NULL), 0);
	t_run();
	ck_assert_int_lt(t_now_ms() - t0, 1500);
	ck_assert_int_eq(late[0], 1);
	ck_assert_int_eq(late[1], -ECANCELED);
	ck_assert_int_eq(old[0], 1);
	ck_assert_int_eq(old[1], -ETIME);
}
END_TEST

/* ---- multishot receives --------------------------------------------------------- */

struct ms {
	struct rsc_entry *e;
	unsigned len;
	int calls, ended, last_res;
	bool buf_null_at_end;
	int release_after; /* release the entry from the Nth data call */
	int after_release; /* data calls after the release was asked */
	bool released;
	int recv_ret, ms_ret, again_ret;
	int released_before_end;
	struct op_seen follow; /* an rsc_recv started from the last call */
	bool follow_from_end;
	char fbuf[8];
};

static void on_ms(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct ms *m = data;

	ck_assert_ptr_eq(e, m->e);
	ck_assert_msg(!m->ended, "a call after the last (%d)", res);
	m->calls++;
	m->last_res = res;
	if (res <= 0) {
		m->ended++;
		m->buf_null_at_end = !buf;
		m->released_before_end = t_count_events(RSC_EV_RELEASED);
		if (m->follow_from_end)
			m->again_ret = rsc_recv(e, m->fbuf, sizeof(m->fbuf), 0, on_op, &m->follow);
		return;
	}
	ck_assert_ptr_nonnull(buf);
	m->len += (unsigned)res;
	if (m->released)
		m->after_release++;
	m->recv_ret = rsc_recv(e, m->fbuf, 1, 0, on_op, &m->follow);
	m->ms_ret = rsc_recv_multishot(e, 0, on_ms, m);
	if (m->release_after && m->calls == m->release_after) {
		ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
		m->released = true;
	}
}

static void send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		ck_assert_int_gt(n, 0);
		p += (size_t)n;
		len -= (size_t)n;
	}
}

/* The peer shuts down: the last call is 0 with buf NULL, and the entry stays,
 * so a receive started from that last call is allowed (and sees the EOF). */
START_TEST(multishot_peer_close_ends_with_zero_and_the_entry_stays)
{
	struct ms m = { .follow_from_end = true };
	struct rsc_scope *s;
	int peer;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "ms", &s), 0);
	m.e = t_adopted_pair(s, &peer);
	ck_assert_int_ge(rsc_entry_wait(m.e), 0);
	ck_assert_int_eq(rsc_recv_multishot(m.e, 0, on_ms, &m), 0);
	send_all(peer, "hello", 5);
	ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
	while (!m.ended)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(m.len, 5);
	ck_assert_int_eq(m.last_res, 0);
	ck_assert(m.buf_null_at_end);
	ck_assert_int_eq(m.recv_ret, -EBUSY);
	ck_assert_int_eq(m.ms_ret, -EBUSY);
	ck_assert_int_eq(m.again_ret, 0);
	t_run();
	ck_assert_int_eq(m.follow.calls, 1);
	ck_assert_int_eq(m.follow.res, 0);
	ck_assert_int_eq(rsc_entry_io_count(m.e), 0);
	/* Nothing armed: the buffers may be replaced now. */
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 4, 64), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

/* The ring runs dry again and again (2 buffers of 16 bytes) while the data
 * callback releases the entry mid-stream: one last -ECANCELED, nothing after,
 * the close after it, and the buffers free to change afterwards. */
START_TEST(multishot_released_mid_stream_while_the_ring_runs_dry)
{
	static char sent[4096];
	struct ms m = { .release_after = 10 };
	struct rsc_scope *s;
	int peer;

	memset(sent, 'r', sizeof(sent));
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 2, 16), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "ms", &s), 0);
	m.e = t_adopted_pair(s, &peer);
	ck_assert_int_ge(rsc_entry_wait(m.e), 0);
	ck_assert_int_eq(rsc_recv_multishot(m.e, 0, on_ms, &m), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 4, 16), -EBUSY);
	send_all(peer, sent, sizeof(sent));
	t_run();
	ck_assert_int_eq(m.ended, 1);
	ck_assert_int_eq(m.last_res, -ECANCELED);
	ck_assert(m.buf_null_at_end);
	ck_assert_int_eq(m.released_before_end, 0);
	ck_assert_int_le(m.after_release, 2); /* at most what the kernel had made */
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 4, 16), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 4, 16), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(peer);
}
END_TEST

/* Two entries armed on one small ring; the buffers cannot change until both
 * have ended; a third receive arms after they did. */
START_TEST(multishot_buffers_stay_until_every_receive_has_ended)
{
	static char sent[2048];
	struct ms a = { 0 }, b = { 0 };
	struct rsc_scope *s;
	int pa, pb;

	memset(sent, 'x', sizeof(sent));
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 2, 32), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 2, 32), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "ms", &s), 0);
	a.e = t_adopted_pair(s, &pa);
	b.e = t_adopted_pair(s, &pb);
	ck_assert_int_ge(rsc_entry_wait(b.e), 0);
	ck_assert_int_eq(rsc_recv_multishot(a.e, 0, on_ms, &a), 0);
	ck_assert_int_eq(rsc_recv_multishot(b.e, 0, on_ms, &b), 0);
	send_all(pa, sent, sizeof(sent));
	send_all(pb, sent, sizeof(sent));
	while (a.len < sizeof(sent) || b.len < sizeof(sent))
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 0, 0), -EBUSY);
	ck_assert_int_eq(shutdown(pa, SHUT_WR), 0);
	while (!a.ended)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(a.last_res, 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 0, 0), -EBUSY);
	ck_assert_int_eq(rsc_entry_release_wait(b.e, NULL), 0);
	ck_assert_int_eq(b.last_res, -ECANCELED);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 0, 0), 0);
	/* Freed: the next multishot sets the default ring up again. */
	a.ended = 0;
	ck_assert_int_eq(rsc_recv_multishot(a.e, 0, on_ms, &a), 0);
	while (!a.ended)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(a.last_res, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(pa);
	close(pb);
}
END_TEST

/* A multishot receive on a descriptor that is no socket: one last call with
 * the kernel's errno, buf NULL, and nothing left armed (the buffers may go). */
START_TEST(multishot_on_a_file_ends_once_with_the_kernels_errno)
{
	struct ms m = { 0 };
	struct rsc_scope *s;
	int fd;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "file", &s), 0);
	fd = open(t_path("nosock"), O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_adopt(s, fd, 0, &m.e), 0);
	ck_assert_int_ge(rsc_entry_wait(m.e), 0);
	ck_assert_int_eq(rsc_recv_multishot(m.e, 1, on_ms, &m), -EINVAL);
	ck_assert_int_eq(rsc_recv_multishot(m.e, 0, NULL, &m), -EINVAL);
	ck_assert_int_eq(rsc_recv_multishot(m.e, 0, on_ms, &m), 0);
	ck_assert_int_eq(rsc_recv_multishot(m.e, 0, on_ms, &m), -EBUSY);
	ck_assert_int_eq(m.calls, 0);
	t_run();
	ck_assert_int_eq(m.ended, 1);
	ck_assert_int_lt(m.last_res, 0);
	ck_assert(m.buf_null_at_end);
	ck_assert_int_eq(rsc_entry_io_count(m.e), 0);
	ck_assert_int_eq(rsc_loop_set_recv_buffers(t_loop, 0, 0), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

Suite *make_hostile_io_suite(void)
{
	Suite *s = suite_create("hostile_io");
	TCase *tc = tcase_create("hostile_io");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	tcase_add_test(tc, hundreds_of_reads_cancelled_by_one_release_before_its_close);
	tcase_add_test(tc, writes_and_timeouts_on_one_entry_cancelled_by_its_unwind);
	tcase_add_test(tc, read_restarted_from_its_callback_ends_once_with_its_release);
	tcase_add_test(tc, callback_releases_its_own_entry_with_others_in_flight);
	tcase_add_test(tc, callback_closes_its_scope_with_others_in_flight);
	tcase_add_test(tc, callback_moves_its_own_entry_and_closes_the_old_scope);
	tcase_add_test(tc, io_from_enter_and_exit_hooks_is_edeadlk);
	tcase_add_test(tc, io_from_the_trace_callback_is_edeadlk);
	tcase_add_test(tc, io_from_an_on_close_callback);
	tcase_add_test(tc, zero_lengths_huge_lengths_and_offsets);
	tcase_add_test(tc, io_on_released_detached_and_moved_entries);
	tcase_add_test(tc, timer_rearmed_from_its_callback_then_released);
	tcase_add_test(tc, timer_entering_after_a_graceful_close_never_starts);
	tcase_add_test(tc, timer_entering_in_a_grace_held_by_another_never_starts);
	if (t_has_recv_multishot()) {
		tcase_add_test(tc, multishot_peer_close_ends_with_zero_and_the_entry_stays);
		tcase_add_test(tc, multishot_released_mid_stream_while_the_ring_runs_dry);
		tcase_add_test(tc, multishot_buffers_stay_until_every_receive_has_ended);
		tcase_add_test(tc, multishot_on_a_file_ends_once_with_the_kernels_errno);
	} else {
		printf("SKIP multishot tests of hostile_io: kernel lacks IORING_RECV_MULTISHOT (Linux 6.0)\n");
	}
	return s;
}
