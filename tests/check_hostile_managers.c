/* SPDX-License-Identifier: MIT */
/*
 * Custom managers as a hostile tester writes them from rsc_push(3),
 * rsc_entry_get_sqes(3), rsc_defer(3), rsc_entry_on_enter(3),
 * rsc_entry_release(3), rsc_scope_fail(3), the error pages and DESIGN 2:
 * hooks with several SQEs (linked, unlinked, slow ones beside fast ones),
 * hooks that misbehave within what the pages allow, and the unwind they
 * drive: which error wins, in which order the chain reports it, and that
 * an acquire in flight is cancelled whole.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* ------------------------------------------------ a scriptable manager */

struct hm;
typedef int (*hm_enter_fn)(struct hm *m, struct rsc_entry *e);
typedef int (*hm_exit_fn)(struct hm *m, struct rsc_entry *e);

/* One instance: what its hooks do, and what they saw. */
struct hm {
	const char *name;
	hm_enter_fn enter;
	hm_exit_fn exit;
	const char *path;
	int pfd[2];		     /* a pipe some hooks read from */
	char buf[8];
	struct __kernel_timespec ts; /* for timeouts (read at submit) */
	int ret;		     /* what a hook returns */
	int enter_calls, exit_calls;
	int pending;		     /* -errno pending at the exit, 0 if none */
	char pending_entry[32];
	struct rsc_entry *self;
};

static char hm_order[512]; /* exit order, by name */

static int hm_enter(struct rsc_entry *e, void *arg)
{
	struct hm *m = arg;

	m->enter_calls++;
	return m->enter ? m->enter(m, e) : 0;
}

static int hm_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct hm *m = arg;

	m->exit_calls++;
	m->pending = pending ? rsc_error_errno(pending) : 0;
	snprintf(m->pending_entry, sizeof(m->pending_entry), "%s",
		 pending ? rsc_error_entry(pending) : "");
	snprintf(hm_order + strlen(hm_order), sizeof(hm_order) - strlen(hm_order),
		 "%s%s", hm_order[0] ? "," : "", m->name);
	return m->exit ? m->exit(m, e) : 0;
}

static const struct rsc_manager hm_ordered = {
	sizeof(struct rsc_manager), 0, "hm", hm_enter, hm_exit
};
static const struct rsc_manager hm_unordered = {
	sizeof(struct rsc_manager), RSC_MANAGER_UNORDERED, "hmu", hm_enter, hm_exit
};

static struct rsc_scope *open_scope(const char *name)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, name, &s), 0);
	return s;
}

static void hm_push(struct rsc_scope *s, struct hm *m, const struct rsc_manager *mgr)
{
	int ret = rsc_push(s, mgr, m, &m->self);

	ck_assert_msg(ret == 0, "rsc_push %s: %d %s", m->name, ret, rsc_last_error());
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Closes a scope and keeps what its callback was told. */
struct closed {
	int calls, status;
	struct rsc_error *err;
};

static void on_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct closed *c = data;

	(void)s;
	c->calls++;
	c->status = status;
	c->err = NULL;
	if (err)
		ck_assert_int_eq(rsc_error_dup(err, &c->err), 0);
}

static void close_and_run(struct rsc_scope *s, struct closed *c)
{
	memset(c, 0, sizeof(*c));
	ck_assert_int_eq(rsc_scope_close(s, on_closed, c), 0);
	t_run();
	ck_assert_int_eq(c->calls, 1);
}

/* The chain as "errno-name:op:entry" links, newest first. */
static const char *chain_text(const struct rsc_error *err)
{
	static char out[512];

	out[0] = '\0';
	for (; err; err = rsc_error_cause(err))
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s:%s:%s",
			 out[0] ? " <- " : "", rsc_err_name(rsc_error_errno(err)),
			 rsc_error_op(err), rsc_error_entry(err));
	return out;
}

/* ------------------------------------------------------------ hooks */

static int enter_nop_then_long_timeout(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe[2];
	int ret = rsc_entry_get_sqes(e, 2, sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_nop(sqe[0]);
	m->ts.tv_sec = 10;
	io_uring_prep_timeout(sqe[1], &m->ts, 0, 0);
	return 0;
}

static int enter_read_then_long_timeout(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe[2];
	int ret = rsc_entry_get_sqes(e, 2, sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_read(sqe[0], m->pfd[0], m->buf, 1, 0);
	m->ts.tv_sec = 10;
	io_uring_prep_timeout(sqe[1], &m->ts, 0, 0);
	return 0;
}

static int exit_nop(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)m;
	if (ret < 0)
		return ret;
	io_uring_prep_nop(sqe);
	return 0;
}

/* ------------------------------------------- an acquire is cancelled whole */

/*
 * rsc_push(3): the enter completes when the CQEs of all its SQEs have
 * arrived; rsc_scope_close(3): acquires still in flight are cancelled.
 * The first SQE done, a slow second one is the acquire still in flight:
 * the close must cancel it, not wait out its 10 s.
 */
START_TEST(close_cancels_every_sqe_of_an_enter_in_flight)
{
	struct hm m = { .name = "slow", .enter = enter_nop_then_long_timeout, .exit = exit_nop };
	struct rsc_scope *s = open_scope("whole");
	struct closed c;
	double t0;
	int i;

	hm_push(s, &m, &hm_ordered);
	for (i = 0; i < 3; i++) /* the NOP's CQE is reaped, the timeout's is not */
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_state(m.self), RSC_ENTERING);
	t0 = now_s();
	close_and_run(s, &c);
	ck_assert_msg(now_s() - t0 < 2.0, "the close waited %.1f s for the enter's second SQE",
		      now_s() - t0);
	/* The acquire itself (the first SQE) had succeeded: it is released once. */
	ck_assert_int_eq(m.exit_calls, 1);
	ck_assert_int_eq(c.status, 0);
	rsc_error_free(c.err);
}
END_TEST

START_TEST(fail_cancels_every_sqe_of_an_enter_in_flight)
{
	struct hm m = { .name = "slow", .enter = enter_read_then_long_timeout, .exit = exit_nop };
	struct rsc_scope *s = open_scope("whole");
	struct closed c;
	double t0;

	ck_assert_int_eq(pipe2(m.pfd, O_CLOEXEC), 0);
	hm_push(s, &m, &hm_ordered);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	t0 = now_s();
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "body"), 0);
	close_and_run(s, &c);
	ck_assert_msg(now_s() - t0 < 2.0, "the unwind waited %.1f s for the enter's second SQE",
		      now_s() - t0);
	/* The read was cancelled: nothing acquired, the exit never runs. */
	ck_assert_int_eq(m.exit_calls, 0);
	ck_assert_int_eq(rsc_entry_state(m.self), -ESTALE);
	ck_assert_int_eq(c.status, -EPROTO);
	ck_assert_str_eq(chain_text(c.err), "EPROTO:body:");
	rsc_error_free(c.err);
	close(m.pfd[0]);
	close(m.pfd[1]);
}
END_TEST


/* ------------------------------------------------- several SQEs per hook */

static int enter_open_link_badclose_link_nop(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe[3];
	int ret = rsc_entry_get_sqes(e, 3, sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_openat(sqe[0], AT_FDCWD, m->path, O_RDONLY | O_CLOEXEC, 0);
	sqe[0]->flags |= IOSQE_IO_LINK;
	io_uring_prep_close(sqe[1], -1); /* fails: -EBADF */
	sqe[1]->flags |= IOSQE_IO_LINK;
	io_uring_prep_nop(sqe[2]);	 /* cut by the failed link: -ECANCELED */
	return 0;
}

static int exit_close_value(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)m;
	if (ret < 0)
		return ret;
	io_uring_prep_close(sqe, rsc_entry_fd(e));
	return 0;
}

/*
 * rsc_push(3): "the first SQE's result decides": a linked chain whose
 * middle fails still acquired what its first SQE opened, and the exit
 * releases it; a chain whose first fails acquired nothing, its exit never
 * runs, and the scope's error names the first SQE's operation.
 */
START_TEST(linked_enter_is_decided_by_its_first_sqe)
{
	struct hm ok = { .name = "ok", .enter = enter_open_link_badclose_link_nop,
			 .exit = exit_close_value };
	struct hm bad = { .name = "bad", .enter = enter_open_link_badclose_link_nop,
			  .exit = exit_close_value };
	struct rsc_scope *s = open_scope("links");
	struct closed c;
	int fds;

	t_make_files(1);
	ok.path = t_path("f0");
	bad.path = t_path("missing");
	hm_push(s, &ok, &hm_ordered);
	ck_assert_int_ge(rsc_entry_wait(ok.self), 0);
	ck_assert_int_eq(rsc_entry_state(ok.self), RSC_ENTERED);
	ck_assert(t_fd_open_to("/f0"));
	fds = t_fd_count();
	hm_push(s, &bad, &hm_ordered);
	ck_assert_int_eq(rsc_entry_wait(bad.self), -ENOENT); /* its failure unwinds s */
	close_and_run(s, &c);
	ck_assert_int_eq(t_fd_count(), fds - 1);
	ck_assert(!t_fd_open_to("/f0"));
	ck_assert_int_eq(bad.exit_calls, 0);
	ck_assert_int_eq(ok.exit_calls, 1);
	ck_assert_msg(ok.pending == -ENOENT, "pending %d status %d chain %s", ok.pending, c.status, chain_text(c.err));
	ck_assert_int_eq(c.status, -ENOENT);
	ck_assert_str_eq(chain_text(c.err), "ENOENT:openat:hm");
	rsc_error_free(c.err);
}
END_TEST

static int exit_slow_etime_then_fast_ebadf(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe[2];
	int ret = rsc_entry_get_sqes(e, 2, sqe);

	if (ret < 0)
		return ret;
	m->ts.tv_nsec = 50 * 1000 * 1000;
	io_uring_prep_timeout(sqe[0], &m->ts, 0, 0); /* -ETIME, 50 ms later */
	io_uring_prep_close(sqe[1], -1);	     /* -EBADF at once */
	return 0;
}

/* rsc_entry_get_sqes(3): each failed SQE raises an error "in the order the
 * SQEs were reserved (not the order their completions arrive in)", so the
 * last one heads the chain. */
START_TEST(exit_errors_come_in_sqe_order_not_in_cqe_order)
{
	struct hm m = { .name = "two", .exit = exit_slow_etime_then_fast_ebadf };
	struct rsc_scope *s = open_scope("order");
	struct closed c;

	hm_push(s, &m, &hm_ordered);
	close_and_run(s, &c);
	ck_assert_int_eq(c.status, -EBADF);
	ck_assert_str_eq(chain_text(c.err), "EBADF:close:hm <- ETIME:timeout:hm");
	rsc_error_free(c.err);
}
END_TEST

static int exit_slow_etime(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	m->ts.tv_nsec = 50 * 1000 * 1000;
	io_uring_prep_timeout(sqe, &m->ts, 0, 0);
	return 0;
}

static int exit_fast_ebadf(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)m;
	if (ret < 0)
		return ret;
	io_uring_prep_close(sqe, -1);
	return 0;
}

/*
 * rsc_push(3): an unordered exit's "result is still reported in LIFO
 * order"; DESIGN 2.3: "the scope's result report[s] the releases in that
 * order". The newer one's release fails last (50 ms), the older one's at
 * once: the chain still reads the older one's error first (raised last),
 * with the newer one's as its cause.
 */
START_TEST(unordered_exit_errors_chain_in_lifo_order_whatever_completes_first)
{
	struct hm older = { .name = "older", .exit = exit_fast_ebadf };
	struct hm newer = { .name = "newer", .exit = exit_slow_etime };
	struct rsc_scope *s = open_scope("lifo");
	struct closed c;

	hm_push(s, &older, &hm_unordered);
	hm_push(s, &newer, &hm_unordered);
	close_and_run(s, &c);
	ck_assert_str_eq(hm_order, "newer,older");
	/* Both started in the same step: neither saw the other's SQE error. */
	ck_assert_int_eq(older.pending, 0);
	ck_assert_str_eq(chain_text(c.err), "EBADF:close:hmu <- ETIME:timeout:hmu");
	ck_assert_int_eq(c.status, -EBADF);
	rsc_error_free(c.err);
}
END_TEST

/* ------------------------------------------------- hooks that misbehave */

static int enter_open_then_fail(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_openat(sqe, AT_FDCWD, m->path, O_RDONLY | O_CLOEXEC, 0);
	return m->ret;
}

/*
 * rsc_push(3): "If this call fails, nothing is pushed ... any SQE it
 * prepared is turned into a no-op"; a positive return is no error. The
 * openat never runs: no descriptor to the file appears, even after the
 * loop has submitted and reaped everything.
 */
START_TEST(enter_that_fails_after_preparing_opens_nothing)
{
	struct hm m = { .name = "liar", .enter = enter_open_then_fail, .ret = -ENOTTY };
	struct hm pos = { .name = "pos", .enter = enter_open_then_fail, .ret = 7,
			  .exit = exit_close_value };
	struct rsc_scope *s = open_scope("liar");
	struct rsc_entry *e = (struct rsc_entry *)&m;
	int fds = t_fd_count(), n = 0;

	t_make_files(1);
	m.path = t_path("f0");
	ck_assert_int_eq(rsc_push(s, &hm_ordered, &m, &e), -ENOTTY);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	while (rsc_loop_alive(t_loop) == 1 && n++ < 100)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert(!t_fd_open_to("/f0"));
	ck_assert_int_eq(t_fd_count(), fds);
	ck_assert_int_eq(m.enter_calls, 1);
	ck_assert_int_eq(t_count_events(RSC_EV_ENTERED) + t_count_events(RSC_EV_ENTER_FAILED), 0);
	/* A positive return is a success: the acquire goes out and is released. */
	pos.path = t_path("f0");
	hm_push(s, &pos, &hm_ordered);
	ck_assert_int_ge(rsc_entry_wait(pos.self), 0);
	ck_assert(t_fd_open_to("/f0"));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(pos.exit_calls, 1);
	ck_assert_int_eq(m.exit_calls, 0);
	ck_assert(!t_fd_open_to("/f0"));
}
END_TEST

static int enter_nop_own_user_data(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe[2];
	int ret = rsc_entry_get_sqes(e, 2, sqe);

	(void)m;
	if (ret < 0)
		return ret;
	io_uring_prep_nop(sqe[0]);
	io_uring_prep_nop(sqe[1]);
	/* Forbidden by the page, and overwritten by the runtime all the same. */
	io_uring_sqe_set_data64(sqe[0], 0xdeadbeefULL);
	io_uring_sqe_set_data64(sqe[1], 0);
	return 0;
}

static int exit_close_own_user_data(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)m;
	if (ret < 0)
		return ret;
	io_uring_prep_close(sqe, -1);
	io_uring_sqe_set_data64(sqe, ~0ULL);
	return 0;
}

/* rsc_entry_get_sqes(3): "The runtime sets each SQE's user_data when the
 * hook returns": whatever the hook wrote there, each CQE comes back to it. */
START_TEST(user_data_a_hook_writes_is_overwritten_and_routed)
{
	struct hm m = { .name = "ud", .enter = enter_nop_own_user_data,
			.exit = exit_close_own_user_data };
	struct rsc_scope *s = open_scope("ud");
	struct rsc_error *err = NULL;

	hm_push(s, &m, &hm_ordered);
	ck_assert_int_eq(rsc_entry_wait(m.self), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EBADF);
	ck_assert_str_eq(chain_text(err), "EBADF:close:hm");
	rsc_error_free(err);
	ck_assert_int_eq(m.exit_calls, 1);
}
END_TEST

static int exit_close_then_fail(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_close(sqe, rsc_entry_fd(e));
	return m->ret;
}

/*
 * rsc_push(3): a negative return raises an error (operation "exit"), and
 * only an exit that returns -EAGAIN/-EBUSY/-ENOMEM "without preparing
 * anything" is called again. An exit that prepared its close and then
 * says -EAGAIN is not called again, its close still goes (no descriptor
 * escapes), and the error is raised once; an exit returning 2 does not
 * suppress.
 */
START_TEST(exit_that_prepares_then_returns_an_error_still_releases_once)
{
	struct hm a = { .name = "again", .enter = enter_open_then_fail, .ret = -EAGAIN,
			.exit = exit_close_then_fail };
	struct hm two = { .name = "two", .enter = enter_open_then_fail, .ret = 0,
			  .exit = exit_close_then_fail };
	struct rsc_scope *s = open_scope("prep");
	struct closed c;
	int fds = t_fd_count();

	t_make_files(2);
	a.path = t_path("f0");
	two.path = t_path("f1");
	a.ret = 0;
	hm_push(s, &a, &hm_ordered);
	hm_push(s, &two, &hm_ordered);
	ck_assert_int_ge(rsc_entry_wait(two.self), 0);
	ck_assert_int_ge(rsc_entry_wait(a.self), 0);
	ck_assert_int_eq(t_fd_count(), fds + 2);
	a.ret = -EAGAIN;
	two.ret = 2;
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "body"), 0);
	close_and_run(s, &c);
	ck_assert_int_eq(t_fd_count(), fds);
	ck_assert_int_eq(a.exit_calls, 1);
	ck_assert_int_eq(two.exit_calls, 1);
	ck_assert_int_eq(a.pending, -EPROTO); /* 2 is no RSC_EXIT_SUPPRESS */
	ck_assert_str_eq(chain_text(c.err), "EAGAIN:exit:hm <- EPROTO:body:");
	rsc_error_free(c.err);
}
END_TEST


/* ------------------------------------------ linked timeouts and cancels */

static int enter_read_link_timeout(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe[2];
	int ret = rsc_entry_get_sqes(e, 2, sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_read(sqe[0], m->pfd[0], m->buf, 1, 0);
	sqe[0]->flags |= IOSQE_IO_LINK;
	io_uring_prep_link_timeout(sqe[1], &m->ts, 0);
	return 0;
}

static void store_res(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

/*
 * DESIGN 2.7 and rsc_scope_fail(3): acquires in flight (here reads, each
 * with a 10 s linked timeout) are cancelled at once; none was acquired, so
 * no exit runs, each enter callback hears -ECANCELED, and the unwind does
 * not wait for the timeouts. The entered ones below are released once each,
 * seeing the body's error.
 */
START_TEST(failure_cancels_enters_with_linked_timeouts_and_releases_once)
{
	struct hm r[3], below[2];
	struct rsc_scope *s = open_scope("lt");
	struct closed c;
	int res[3], i;
	double t0;

	memset(r, 0, sizeof(r));
	memset(below, 0, sizeof(below));
	for (i = 0; i < 2; i++) {
		below[i].name = i ? "b1" : "b0";
		below[i].exit = exit_nop;
		hm_push(s, &below[i], i ? &hm_unordered : &hm_ordered);
	}
	for (i = 0; i < 3; i++) {
		r[i].name = "r";
		r[i].enter = enter_read_link_timeout;
		r[i].exit = exit_nop;
		r[i].ts.tv_sec = 10;
		ck_assert_int_eq(pipe2(r[i].pfd, O_CLOEXEC), 0);
		hm_push(s, &r[i], &hm_ordered);
		res[i] = 1;
		ck_assert_int_eq(rsc_entry_on_enter(r[i].self, store_res, &res[i]), 0);
	}
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_state(r[0].self), RSC_ENTERING);
	t0 = now_s();
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
	close_and_run(s, &c);
	ck_assert_msg(now_s() - t0 < 2.0, "the unwind took %.1f s", now_s() - t0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(r[i].exit_calls, 0);
		ck_assert_int_eq(res[i], -ECANCELED);
		close(r[i].pfd[0]);
		close(r[i].pfd[1]);
	}
	ck_assert_str_eq(hm_order, "b1,b0");
	ck_assert_int_eq(below[0].exit_calls, 1);
	ck_assert_int_eq(below[1].exit_calls, 1);
	ck_assert_int_eq(below[0].pending, -EPIPE);
	ck_assert_int_eq(below[1].pending, -EPIPE);
	ck_assert_str_eq(chain_text(c.err), "EPIPE:body:");
	rsc_error_free(c.err);
}
END_TEST

/*
 * A linked timeout that fires ends the acquire: nothing acquired, the exit
 * never runs, the scope unwinds with -ETIMEDOUT (rsc_push(3),
 * rsc_entry_on_enter(3)) naming its first SQE's operation, and the entered
 * one below sees it.
 */
START_TEST(linked_timeout_that_fires_fails_the_enter)
{
	struct hm r = { .name = "r", .enter = enter_read_link_timeout, .exit = exit_nop };
	struct hm below = { .name = "below", .exit = exit_nop };
	struct rsc_scope *s = open_scope("lt");
	struct closed c;
	int res = 1;

	ck_assert_int_eq(pipe2(r.pfd, O_CLOEXEC), 0);
	r.ts.tv_nsec = 20 * 1000 * 1000;
	hm_push(s, &below, &hm_ordered);
	hm_push(s, &r, &hm_ordered);
	ck_assert_int_eq(rsc_entry_on_enter(r.self, store_res, &res), 0);
	ck_assert_int_lt(rsc_entry_wait(r.self), 0);
	close_and_run(s, &c);
	ck_assert_int_eq(r.exit_calls, 0);
	ck_assert_int_eq(res, -ETIMEDOUT); /* rsc_entry_on_enter(3) */
	ck_assert_int_eq(below.pending, res);
	ck_assert_int_eq(c.status, res);
	ck_assert_str_eq(rsc_error_op(c.err), "read");
	ck_assert_str_eq(rsc_error_entry(c.err), "hm");
	ck_assert_int_eq(rsc_error_depth(c.err), 1);
	rsc_error_free(c.err);
	close(r.pfd[0]);
	close(r.pfd[1]);
}
END_TEST

/* ------------------------------------------------------ operation names */

static int enter_unlinkat_missing(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_unlinkat(sqe, AT_FDCWD, m->path, 0);
	return 0;
}

static int exit_mkdirat_existing(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_mkdirat(sqe, AT_FDCWD, m->path, 0700);
	return 0;
}

/* rsc_error_op(3): "the name of another io_uring operation a manager used". */
START_TEST(errors_name_the_operation_a_custom_hook_used)
{
	struct hm a = { .name = "a", .enter = enter_unlinkat_missing, .exit = exit_nop };
	struct hm b = { .name = "b", .exit = exit_mkdirat_existing };
	struct rsc_scope *s = open_scope("ops");
	struct rsc_error *err = NULL;

	b.path = t_dir; /* exists: -EEXIST */
	a.path = t_path("missing");
	hm_push(s, &b, &hm_ordered);
	hm_push(s, &a, &hm_ordered);
	ck_assert_int_eq(rsc_entry_wait(a.self), -ENOENT);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EEXIST);
	ck_assert_str_eq(chain_text(err), "EEXIST:mkdirat:hm <- ENOENT:unlinkat:hm");
	rsc_error_free(err);
}
END_TEST

/* ---------------------------------------------------------------- defer */

struct dstate {
	int calls, again;
	int pending;
	int ret;
	bool badf; /* prepare a close(-1) */
};

static int defer_fn(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct dstate *d = arg;
	struct io_uring_sqe *sqe;
	int ret;

	d->calls++;
	d->pending = pending ? rsc_error_errno(pending) : 0;
	if (d->again > 0) {
		d->again--;
		return -EAGAIN;
	}
	if (d->badf) {
		ret = rsc_entry_get_sqes(e, 1, &sqe);
		if (ret < 0)
			return ret;
		io_uring_prep_close(sqe, -1);
	}
	return d->ret;
}

/*
 * rsc_defer(3): fn may prepare SQEs, "a negative result raises an error in
 * the same way" (and wins over its own suppression: rsc_push(3)); an fn
 * that returns -EAGAIN without an SQE is called again. Chain: the newest
 * defer's raise, its cause the body's error; the one below, after a
 * suppression by the middle one... nothing is hidden: order newest first.
 */
START_TEST(defers_that_prepare_sqes_raise_suppress_and_retry)
{
	struct dstate bottom = { 0 }, mid = { .ret = RSC_EXIT_SUPPRESS, .again = 3 };
	struct dstate top = { .ret = RSC_EXIT_SUPPRESS, .badf = true };
	struct rsc_scope *s = open_scope("defers");
	struct closed c;

	ck_assert_int_eq(rsc_defer(s, defer_fn, &bottom, NULL), 0);
	ck_assert_int_eq(rsc_defer(s, defer_fn, &mid, NULL), 0);
	ck_assert_int_eq(rsc_defer(s, defer_fn, &top, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "body"), 0);
	close_and_run(s, &c);
	ck_assert_int_eq(top.calls, 1);
	ck_assert_int_eq(top.pending, -EPROTO);
	/* top's close(-1) raised over its own suppression: mid sees it. */
	ck_assert_int_eq(mid.calls, 4);
	ck_assert_int_eq(mid.pending, -EBADF);
	/* mid suppressed the whole pending chain: the bottom sees nothing. */
	ck_assert_int_eq(bottom.calls, 1);
	ck_assert_int_eq(bottom.pending, 0);
	ck_assert_int_eq(c.status, 0);
	ck_assert_ptr_null(c.err);
}
END_TEST


/* ------------------------------------------ an enter is all of its SQEs */

static int enter_open_then_timeout(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe[2];
	int ret = rsc_entry_get_sqes(e, 2, sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_openat(sqe[0], AT_FDCWD, m->path, O_RDONLY | O_CLOEXEC, 0);
	io_uring_prep_timeout(sqe[1], &m->ts, 0, 0);
	return 0;
}

/*
 * rsc_push(3): "The enter completes ... when the CQEs of all its SQEs have
 * arrived; the first SQE's result decides". The open is done at once, the
 * enter only 60 ms later, with the descriptor, and its callback runs once.
 */
START_TEST(enter_completes_with_its_last_cqe_and_the_first_ones_value)
{
	struct hm m = { .name = "two", .enter = enter_open_then_timeout,
			.exit = exit_close_value };
	struct rsc_scope *s = open_scope("all");
	int res = -1, fd;
	double t0;

	t_make_files(1);
	m.path = t_path("f0");
	m.ts.tv_nsec = 60 * 1000 * 1000;
	t0 = now_s();
	hm_push(s, &m, &hm_ordered);
	ck_assert_int_eq(rsc_entry_on_enter(m.self, store_res, &res), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert(t_fd_open_to("/f0")); /* open, but not yet the entry's */
	ck_assert_int_eq(rsc_entry_state(m.self), RSC_ENTERING);
	ck_assert_int_eq(res, -1);
	fd = rsc_entry_wait(m.self);
	ck_assert_msg(now_s() - t0 >= 0.05, "entered after %.3f s", now_s() - t0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(res, fd);
	ck_assert_int_eq(rsc_entry_fd(m.self), fd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(m.exit_calls, 1);
	ck_assert(!t_fd_open_to("/f0"));
}
END_TEST

/*
 * rsc_entry_release(3): "An entry still entering has its acquire
 * cancelled; if the acquire completes successfully anyway, what it
 * produced is released then." The open is done, a 10 s timeout of the same
 * enter is not: the release cancels it and closes the file at once.
 */
START_TEST(early_release_cancels_every_sqe_of_an_enter_in_flight)
{
	struct hm m = { .name = "two", .enter = enter_open_then_timeout,
			.exit = exit_close_value };
	struct rsc_scope *s = open_scope("early");
	int res = 1, n = 0;
	double t0;

	t_make_files(1);
	m.path = t_path("f0");
	m.ts.tv_sec = 10;
	hm_push(s, &m, &hm_ordered);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_entry_state(m.self), RSC_ENTERING);
	t0 = now_s();
	ck_assert_int_eq(rsc_entry_release(m.self, store_res, &res), 0);
	while (res == 1 && n++ < 50 && now_s() - t0 < 3)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_msg(now_s() - t0 < 2.0, "the release took %.1f s", now_s() - t0);
	ck_assert_int_eq(res, 0);
	ck_assert_int_eq(m.exit_calls, 1);
	ck_assert(!t_fd_open_to("/f0"));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(m.exit_calls, 1);
}
END_TEST

/* --------------------------------------------- a link left open at the end */

static int enter_open_dangling_link(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_openat(sqe, AT_FDCWD, m->path, O_RDONLY | O_CLOEXEC, 0);
	sqe->flags |= IOSQE_IO_LINK; /* links to nothing of its own */
	return 0;
}

static int exit_badf_dangling_link(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)m;
	if (ret < 0)
		return ret;
	io_uring_prep_close(sqe, -1);
	sqe->flags |= IOSQE_IO_LINK;
	return 0;
}

/*
 * rsc_entry_get_sqes(3): a hook's SQEs may be linked among themselves and
 * "a chain is never split"; a link flag on its last SQE must not reach
 * into the SQEs that go out after it in the same submit: another scope's
 * acquire, or another entry's close in the same unwind batch (its
 * descriptor would escape the closed scope, DESIGN 2.6).
 */
START_TEST(an_enters_last_link_flag_never_reaches_another_scopes_acquire)
{
	struct hm a = { .name = "a", .enter = enter_open_dangling_link, .exit = exit_nop };
	struct rsc_scope *sa = open_scope("a"), *sb = open_scope("b");
	struct rsc_entry *f;
	struct rsc_error *err = NULL;

	t_make_files(1);
	a.path = t_path("missing");
	hm_push(sa, &a, &hm_ordered);
	ck_assert_int_eq(rsc_open(sb, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &f), 0);
	ck_assert_int_ge(rsc_entry_wait(f), 0);
	ck_assert_int_eq(rsc_entry_wait(a.self), -ENOENT);
	ck_assert_int_eq(rsc_scope_close_wait(sa, &err), -ENOENT);
	rsc_error_free(err);
	ck_assert_int_eq(rsc_scope_close_wait(sb, NULL), 0);
	ck_assert(!t_fd_open_to("/f0"));
}
END_TEST

/* The exit side: u's close(-1) fails, then f0's close in the same batch. */
START_TEST(an_exits_last_link_flag_never_reaches_the_next_close_of_its_batch)
{
	struct hm u = { .name = "u", .exit = exit_badf_dangling_link };
	struct rsc_scope *s = open_scope("b");
	struct rsc_error *err = NULL;
	struct rsc_entry *f;
	int fds;

	t_make_files(1);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &f), 0);
	hm_push(s, &u, &hm_unordered);
	ck_assert_int_ge(rsc_entry_wait(f), 0);
	fds = t_fd_count();
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EBADF);
	ck_assert_str_eq(chain_text(err), "EBADF:close:hmu");
	rsc_error_free(err);
	ck_assert_int_eq(t_fd_count(), fds - 1);
	ck_assert(!t_fd_open_to("/f0"));
}
END_TEST

/* ------------------------------------------- a hook that fails its scope */

static int enter_fail_own_scope_then_open(struct hm *m, struct rsc_entry *e)
{
	m->ret = rsc_scope_fail(rsc_entry_scope(e), -EPROTO, "enter-body");
	return enter_open_then_fail(m, e); /* returns m->ret: 0 */
}

/*
 * rsc_scope_fail(3) is no nesting call: an enter hook may fail its own
 * scope. The push it runs in still succeeds; the open it prepared is
 * cancelled or, if it won, released once with the failure pending; the
 * entry below sees it; nothing leaks.
 */
START_TEST(enter_hook_failing_its_own_scope_leaks_nothing)
{
	struct hm below = { .name = "below", .exit = exit_nop };
	struct hm m = { .name = "m", .enter = enter_fail_own_scope_then_open,
			.exit = exit_close_value };
	struct rsc_scope *s = open_scope("self");
	struct hm late = { .name = "late" };
	struct closed c;
	int fds = t_fd_count();

	t_make_files(1);
	m.path = t_path("f0");
	hm_push(s, &below, &hm_ordered);
	hm_push(s, &m, &hm_ordered);
	ck_assert_int_eq(m.ret, 0);
	ck_assert_int_eq(rsc_push(s, &hm_ordered, &late, NULL), -ESHUTDOWN);
	close_and_run(s, &c);
	ck_assert_int_le(m.exit_calls, 1);
	if (m.exit_calls)
		ck_assert_int_eq(m.pending, -EPROTO);
	ck_assert_int_eq(below.exit_calls, 1);
	ck_assert_int_eq(below.pending, -EPROTO);
	ck_assert_int_eq(late.enter_calls, 0);
	ck_assert_str_eq(chain_text(c.err), "EPROTO:enter-body:");
	rsc_error_free(c.err);
	ck_assert_int_eq(t_fd_count(), fds);
}
END_TEST

/* ------------------------------------------------------------- the suite */

static void hm_setup(void)
{
	t_setup();
	hm_order[0] = '\0';
}

/* ------------------------------------------- one CQE per SQE, whatever the hook asked */

/* A NOP that would post nothing on success: its entry would enter never. */
static int enter_nop_skip_success(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)m;
	if (ret < 0)
		return ret;
	io_uring_prep_nop(sqe);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	return 0;
}

/* A multishot poll on the pipe's read end: many CQEs for one op. */
static int enter_multishot_poll(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_poll_multishot(sqe, m->pfd[0], POLLIN);
	return 0;
}

/* The close of the pipe's read end, posting nothing when it succeeds. */
static int exit_close_skip_success(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_close(sqe, m->pfd[0]);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	return 0;
}

/*
 * rsc_push(3): each SQE produces exactly one CQE; the runtime clears
 * IOSQE_CQE_SKIP_SUCCESS and makes a multishot request single-shot. A hook
 * that asked for either left its entry entering, or its release in flight,
 * for ever.
 */
START_TEST(hooks_asking_for_no_cqe_or_many_get_exactly_one)
{
	struct hm skip = { .name = "skip", .enter = enter_nop_skip_success,
			   .exit = exit_close_skip_success };
	struct hm multi = { .name = "multi", .enter = enter_multishot_poll, .exit = exit_nop };
	struct rsc_scope *s = open_scope("one-cqe");
	struct closed c;
	int before = t_fd_count(), i;

	ck_assert_int_eq(pipe2(skip.pfd, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(multi.pfd, O_CLOEXEC), 0);
	ck_assert_int_eq(write(multi.pfd[1], "ab", 2), 2); /* readable: the poll fires at once */
	hm_push(s, &skip, &hm_ordered);
	hm_push(s, &multi, &hm_ordered);
	for (i = 0; i < 100 && (rsc_entry_state(skip.self) == RSC_ENTERING ||
				rsc_entry_state(multi.self) == RSC_ENTERING); i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_entry_state(skip.self), RSC_ENTERED);
	ck_assert_int_eq(rsc_entry_state(multi.self), RSC_ENTERED);
	ck_assert_int_eq(rsc_entry_wait(multi.self), POLLIN);
	close_and_run(s, &c); /* returns: both releases completed */
	ck_assert_int_eq(c.status, 0);
	ck_assert_int_eq(skip.exit_calls, 1);
	ck_assert_int_eq(fcntl(skip.pfd[0], F_GETFD), -1); /* the skipped close did close it */
	close(skip.pfd[1]);
	close(multi.pfd[0]);
	close(multi.pfd[1]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* A UDP socket pair for the zero-copy sends: m->pfd[0] receives, m->pfd[1] sends. */
static void udp_pair(struct hm *m)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	m->pfd[0] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	m->pfd[1] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(m->pfd[0], 0);
	ck_assert_int_ge(m->pfd[1], 0);
	ck_assert_int_eq(bind(m->pfd[0], (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(m->pfd[0], (struct sockaddr *)&a, &len), 0);
	ck_assert_int_eq(connect(m->pfd[1], (struct sockaddr *)&a, sizeof(a)), 0);
}

/* IORING_OP_SEND_ZC: a result CQE, then a notification once the buffer is let go of. */
static int send_zero_copy(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_send_zc(sqe, m->pfd[1], "hello", 5, 0, 0);
	return 0;
}

/* A timeout that would fire every millisecond for ever (IORING_TIMEOUT_MULTISHOT). */
static int multishot_timeout(struct hm *m, struct rsc_entry *e)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	m->ts.tv_sec = 0;
	m->ts.tv_nsec = 1000000;
	io_uring_prep_timeout(sqe, &m->ts, 0, 1U << 6 /* IORING_TIMEOUT_MULTISHOT */);
	return 0;
}

/*
 * A hook's request that posts more than one CQE whatever the runtime does
 * (a zero-copy send and its notification) completes its entry once, at its
 * last CQE, with the first one's result; a multishot timeout fires once
 * (bug 105: the second CQE reached an entry whose phase was over, and the
 * library aborted on an assertion, or used a freed entry without one).
 */
START_TEST(hooks_whose_requests_post_more_than_one_cqe_complete_once)
{
	struct hm zc_enter = { .name = "zc_in", .enter = send_zero_copy };
	struct hm zc_exit = { .name = "zc_out", .exit = send_zero_copy };
	struct hm tm_enter = { .name = "tm_in", .enter = multishot_timeout };
	struct hm tm_exit = { .name = "tm_out", .exit = multishot_timeout };
	struct closed c;
	struct rsc_scope *s;
	char buf[16];
	int before = t_fd_count();

	udp_pair(&zc_enter);
	zc_exit.pfd[0] = zc_enter.pfd[0];
	zc_exit.pfd[1] = zc_enter.pfd[1];
	s = open_scope("multi");
	hm_push(s, &tm_exit, &hm_ordered);
	hm_push(s, &zc_enter, &hm_ordered);
	hm_push(s, &zc_exit, &hm_ordered);
	ck_assert_int_eq(rsc_entry_wait(zc_enter.self), 5); /* the send's result: its bytes */
	close_and_run(s, &c);
	/* The timeout ended once with -ETIME, raised by its exit alone. */
	ck_assert_msg(c.status == -ETIME, "status %d: %s", c.status, chain_text(c.err));
	ck_assert_int_eq(rsc_error_depth(c.err), 1);
	rsc_error_free(c.err);
	ck_assert_int_eq(zc_exit.exit_calls, 1);
	ck_assert_int_eq(tm_exit.exit_calls, 1);
	ck_assert_str_eq(hm_order, "zc_out,zc_in,tm_out");
	ck_assert_int_eq(recv(zc_enter.pfd[0], buf, sizeof(buf), MSG_DONTWAIT), 5);
	ck_assert_int_eq(recv(zc_enter.pfd[0], buf, sizeof(buf), MSG_DONTWAIT), 5);
	/* An enter that is a multishot timeout fails once, with -ETIME. */
	s = open_scope("timed");
	hm_push(s, &tm_enter, &hm_ordered);
	ck_assert_int_eq(rsc_entry_wait(tm_enter.self), -ETIME);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIME);
	ck_assert_int_eq(tm_enter.exit_calls, 0);
	/* The loop goes on: no CQE is left for anyone. */
	t_make_files(4);
	t_scope_of_files(4, "after");
	close(zc_enter.pfd[0]);
	close(zc_enter.pfd[1]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * A child whose close is asked after its parent's failure was requested, or
 * before that failure's unwind reached it, starts in its turn with the
 * failure's pending error: its exits see it, as every entry of the subtree
 * does (ringscope(7), semantic 7), and its callback hears it (bug 106: it
 * unwound clean, and its exits saw nothing).
 */
START_TEST(child_closed_below_a_requested_failure_sees_its_error)
{
	struct hm child = { .name = "child" }, parent = { .name = "parent" };
	struct rsc_scope *p, *c;
	struct closed cc = { 0 }, pc;

	p = open_scope("p");
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	hm_push(p, &parent, &hm_ordered);
	hm_push(c, &child, &hm_ordered);
	t_run();
	ck_assert_int_eq(rsc_scope_fail(p, -EPIPE, "body"), 0);
	ck_assert_int_eq(rsc_entry_release(child.self, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close(c, on_closed, &cc), 0);
	close_and_run(p, &pc);
	ck_assert_int_eq(cc.calls, 1);
	ck_assert_int_eq(child.pending, -EPIPE);
	ck_assert_int_eq(parent.pending, -EPIPE);
	ck_assert_str_eq(hm_order, "child,parent");
	ck_assert_int_eq(cc.status, -EPIPE);
	ck_assert_int_eq(pc.status, -EPIPE);
	rsc_error_free(cc.err);
	rsc_error_free(pc.err);
}
END_TEST

/* On-enter callback of the entry waited for: it releases it early. */
static void release_on_enter(struct rsc_entry *e, int res, void *data)
{
	(void)data;
	if (res >= 0)
		ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
}

/*
 * rsc_entry_wait(3): -EBADF once the entry's release has started, also when
 * it started during the wait and its close is still in flight (bug 107: the
 * number came back, about to be closed).
 */
START_TEST(entry_wait_is_ebadf_once_a_release_started_during_it)
{
	struct rsc_scope *s = open_scope("s");
	struct rsc_entry *e;
	int before = t_fd_count();

	t_make_files(1);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, release_on_enter, NULL), 0);
	ck_assert_int_eq(rsc_entry_wait(e), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

Suite *make_hostile_managers_suite(void)
{
	Suite *s = suite_create("hostile_managers");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, hm_setup, t_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, close_cancels_every_sqe_of_an_enter_in_flight);
	tcase_add_test(tc, fail_cancels_every_sqe_of_an_enter_in_flight);
	tcase_add_test(tc, linked_enter_is_decided_by_its_first_sqe);
	tcase_add_test(tc, exit_errors_come_in_sqe_order_not_in_cqe_order);
	tcase_add_test(tc, unordered_exit_errors_chain_in_lifo_order_whatever_completes_first);
	tcase_add_test(tc, enter_that_fails_after_preparing_opens_nothing);
	tcase_add_test(tc, user_data_a_hook_writes_is_overwritten_and_routed);
	tcase_add_test(tc, exit_that_prepares_then_returns_an_error_still_releases_once);
	tcase_add_test(tc, failure_cancels_enters_with_linked_timeouts_and_releases_once);
	tcase_add_test(tc, linked_timeout_that_fires_fails_the_enter);
	tcase_add_test(tc, errors_name_the_operation_a_custom_hook_used);
	tcase_add_test(tc, defers_that_prepare_sqes_raise_suppress_and_retry);
	tcase_add_test(tc, enter_completes_with_its_last_cqe_and_the_first_ones_value);
	tcase_add_test(tc, early_release_cancels_every_sqe_of_an_enter_in_flight);
	tcase_add_test(tc, an_enters_last_link_flag_never_reaches_another_scopes_acquire);
	tcase_add_test(tc, an_exits_last_link_flag_never_reaches_the_next_close_of_its_batch);
	tcase_add_test(tc, enter_hook_failing_its_own_scope_leaks_nothing);
	tcase_add_test(tc, hooks_asking_for_no_cqe_or_many_get_exactly_one);
	t_add_test_if(tc, hooks_whose_requests_post_more_than_one_cqe_complete_once,
		      t_kernel_has(IORING_OP_SEND_ZC), "IORING_OP_SEND_ZC (Linux 6.0)");
	tcase_add_test(tc, child_closed_below_a_requested_failure_sees_its_error);
	tcase_add_test(tc, entry_wait_is_ebadf_once_a_release_started_during_it);
	suite_add_tcase(s, tc);
	return s;
}
