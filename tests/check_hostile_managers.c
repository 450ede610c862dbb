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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
static const struct rsc_manager hm_unordered __attribute__((unused)) = {
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

/* ------------------------------------------------------------- the suite */

Suite *make_hostile_managers_suite(void)
{
	Suite *s = suite_create("hostile_managers");
	TCase *tc = tcase_create("core");

	t_add_fixture(tc);
	tcase_add_test(tc, close_cancels_every_sqe_of_an_enter_in_flight);
	tcase_add_test(tc, fail_cancels_every_sqe_of_an_enter_in_flight);
	suite_add_tcase(s, tc);
	return s;
}
