/* SPDX-License-Identifier: MIT */
/*
 * The audit API read as a hostile tester reads ringscope_audit(7) and the
 * rsc_audit_* / rsc_finding_* pages: levels switched mid-run, ownership
 * moved under a full audit, numbers closed and reused inside a scope,
 * verdicts pending while the findings are cleared, two loops auditing at
 * once, direct slots a custom manager leaks, and the cost at 10,000
 * descriptors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

/* ------------------------------------------------ a forgetful manager */

/* A custom manager: enter opens @path (or, with @slot >= 0, into that direct
 * slot behind the runtime's back); exit closes its value unless @forget. */
struct fm {
	const char *path;
	int slot;
	bool forget;
	int exits;
};

static int fm_enter(struct rsc_entry *e, void *arg)
{
	struct fm *m = arg;
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	if (m->slot >= 0)
		io_uring_prep_openat_direct(sqe, AT_FDCWD, m->path, O_RDONLY, 0, (unsigned)m->slot);
	else
		io_uring_prep_openat(sqe, AT_FDCWD, m->path, O_RDONLY | O_CLOEXEC, 0);
	return 0;
}

static int fm_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct fm *m = arg;
	struct io_uring_sqe *sqe;
	int ret;

	(void)pending;
	m->exits++;
	if (m->forget)
		return 0; /* the bug under test: nothing released */
	ret = rsc_entry_get_sqes(e, 1, &sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_close(sqe, rsc_entry_fd(e));
	return 0;
}

static const struct rsc_manager fm_manager = {
	sizeof(struct rsc_manager), 0, "forgetful", fm_enter, fm_exit
};

static struct rsc_entry *fm_push(struct rsc_scope *s, struct fm *m)
{
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_push(s, &fm_manager, m, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	return e;
}

static int count_kind(struct rsc_loop *loop, int kind)
{
	int i, n = 0;

	for (i = 0; i < rsc_audit_count(loop); i++)
		n += rsc_finding_kind(rsc_audit_finding(loop, (unsigned)i)) == kind;
	return n;
}

/* The first finding of @kind about @fd, or NULL. */
static const struct rsc_finding *finding_of(struct rsc_loop *loop, int kind, int fd)
{
	int i;

	for (i = 0; i < rsc_audit_count(loop); i++) {
		const struct rsc_finding *f = rsc_audit_finding(loop, (unsigned)i);

		if (rsc_finding_kind(f) == kind && rsc_finding_fd(f) == fd)
			return f;
	}
	return NULL;
}

/* ------------------------------------------------------- arguments */

/*
 * rsc_loop_set_audit(3): -EINVAL for a level that is none of the three, and
 * the level stays; rsc_audit_finding(3): NULL out of range, whatever i;
 * the getters' NULL answers; print of nothing writes nothing.
 */
START_TEST(bad_levels_indices_and_nulls_change_nothing)
{
	char buf[64] = "untouched";
	FILE *mem;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, (enum rsc_audit_level)3), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, (enum rsc_audit_level)-1), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, (enum rsc_audit_level)INT_MIN), -EINVAL);
	ck_assert_int_eq(rsc_loop_audit_level(t_loop), RSC_AUDIT_RELEASED);
	ck_assert_int_eq(rsc_loop_set_audit(NULL, RSC_AUDIT_FULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_audit_level(NULL), -EINVAL);
	ck_assert_int_eq(rsc_audit_count(NULL), -EINVAL);
	ck_assert_int_eq(rsc_audit_clear(NULL), -EINVAL);
	ck_assert_int_eq(rsc_audit_print(NULL, stderr), -EINVAL);
	ck_assert_int_eq(rsc_audit_print(t_loop, NULL), -EINVAL);
	ck_assert_ptr_null(rsc_audit_finding(NULL, 0));
	ck_assert_ptr_null(rsc_audit_finding(t_loop, 0));
	ck_assert_ptr_null(rsc_audit_finding(t_loop, UINT_MAX));
	ck_assert_int_eq(rsc_finding_kind(NULL), -EINVAL);
	ck_assert_int_eq(rsc_finding_fd(NULL), -EINVAL);
	ck_assert_str_eq(rsc_finding_target(NULL), "");
	ck_assert_str_eq(rsc_finding_scope(NULL), "");
	ck_assert_str_eq(rsc_finding_expected(NULL), "");
	ck_assert_int_eq(rsc_audit_slots(NULL), -EINVAL);
	ck_assert_int_eq(rsc_audit_slots(t_loop), -ENXIO); /* no direct table */
	mem = fmemopen(buf, sizeof(buf), "w");
	ck_assert_ptr_nonnull(mem);
	ck_assert_int_eq(rsc_audit_print(t_loop, mem), 0);
	ck_assert_int_eq(ftell(mem), 0);
	fclose(mem);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

/*
 * RINGSCOPE_AUDIT: off, released, full, or 0, 1, 2; empty is off; anything
 * else (another case, a space, a number out of range) fails rsc_loop_new
 * with -EINVAL and a message naming the value, and makes no loop.
 */
START_TEST(environment_levels_are_exact)
{
	static const struct { const char *v; int level; } cases[] = {
		{ "", RSC_AUDIT_OFF },	     { "0", RSC_AUDIT_OFF },   { "off", RSC_AUDIT_OFF },
		{ "1", RSC_AUDIT_RELEASED }, { "released", RSC_AUDIT_RELEASED },
		{ "2", RSC_AUDIT_FULL },     { "full", RSC_AUDIT_FULL }, { "FULL", -EINVAL },
		{ " full", -EINVAL },	     { "full ", -EINVAL },     { "3", -EINVAL },
		{ "-1", -EINVAL },	     { "02", -EINVAL },
	};
	struct rsc_loop *l;
	unsigned i;
	int base = t_fd_count();

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret;

		ck_assert_int_eq(setenv("RINGSCOPE_AUDIT", cases[i].v, 1), 0);
		l = NULL;
		ret = rsc_loop_new(&l, 8, 0);
		if (cases[i].level < 0) {
			ck_assert_msg(ret == -EINVAL, "RINGSCOPE_AUDIT='%s': %d", cases[i].v, ret);
			ck_assert_ptr_nonnull(strstr(rsc_last_error(), "RINGSCOPE_AUDIT="));
			ck_assert_int_eq(t_fd_count(), base);
			continue;
		}
		ck_assert_msg(ret == 0, "RINGSCOPE_AUDIT='%s': %d", cases[i].v, ret);
		ck_assert_int_eq(rsc_loop_audit_level(l), cases[i].level);
		ck_assert_int_eq(rsc_loop_close(l), 0);
	}
	ck_assert_int_eq(unsetenv("RINGSCOPE_AUDIT"), 0);
}
END_TEST

/* ------------------------------------------ reuse inside a scope */

/*
 * A number that was open when the scope opened, closed by the program
 * inside it, is given by the kernel to a custom manager's open whose exit
 * forgets to close it: that descriptor appeared inside the scope and is
 * still open (DESIGN.md 3): a leak, whatever number it took.
 */
START_TEST(leak_on_a_number_the_program_closed_inside_the_scope_is_found)
{
	struct fm m = { .slot = -1, .forget = true };
	const struct rsc_finding *f;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int mine, fd, i;

	t_make_files(1);
	m.path = t_path("f0");
	mine = open("/dev/null", O_RDONLY | O_CLOEXEC); /* the lowest free number */
	ck_assert_int_ge(mine, 0);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "reused", &s), 0);
	ck_assert_int_eq(close(mine), 0);
	e = fm_push(s, &m);
	fd = rsc_entry_fd(e);
	ck_assert_int_eq(fd, mine); /* the kernel gave the lowest free number again */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(m.exits, 1);
	f = finding_of(t_loop, RSC_FINDING_LEAKED, fd);
	ck_assert_msg(f != NULL, "the forgotten descriptor %d was not reported (%d findings)",
		      fd, rsc_audit_count(t_loop));
	ck_assert_str_eq(rsc_finding_target(f), t_path("f0"));
	ck_assert_str_eq(rsc_finding_scope(f), "reused");
	/* Also a trace event whose result is the descriptor. */
	ck_assert_int_eq(t_count_events(RSC_EV_AUDIT_FINDING), 1);
	for (i = 0; i < t_rec->n; i++)
		if (t_rec->ev[i].ev == RSC_EV_AUDIT_FINDING)
			ck_assert_int_eq(t_rec->ev[i].res, fd);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/*
 * Detached to the caller (no leak), closed by the caller, and the number
 * then taken by a forgotten custom open in the same scope: the second
 * descriptor is a leak.
 */
START_TEST(leak_on_the_number_of_a_detached_and_closed_descriptor_is_found)
{
	struct fm m = { .slot = -1, .forget = true };
	struct rsc_scope *s;
	struct rsc_entry *e;
	int fd, again;

	t_make_files(2);
	m.path = t_path("f1");
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "detached", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	fd = rsc_entry_detach(e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(close(fd), 0);
	again = rsc_entry_fd(fm_push(s, &m));
	ck_assert_int_eq(again, fd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_msg(finding_of(t_loop, RSC_FINDING_LEAKED, again) != NULL,
		      "the forgotten descriptor %d was not reported", again);
	ck_assert_int_eq(close(again), 0);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/*
 * The program's own descriptors, opened and closed inside the scope (also
 * one it had before, closed and opened again), are no leak; its entries'
 * early releases and the reuse of their numbers by the program's own
 * short-lived opens neither.
 */
START_TEST(programs_own_open_and_close_inside_a_scope_is_silent)
{
	struct rsc_scope *s;
	struct rsc_entry *e[8];
	int i, tmp;

	t_make_files(8);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "own", &s), 0);
	for (i = 0; i < 8; i++) {
		char name[8];

		snprintf(name, sizeof(name), "f%d", i);
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(name), O_RDONLY, 0, 0, &e[i]), 0);
	}
	t_run();
	for (i = 0; i < 8; i += 2) {
		ck_assert_int_eq(rsc_entry_release_wait(e[i], NULL), 0);
		tmp = open("/dev/null", O_RDONLY | O_CLOEXEC); /* takes a released number */
		ck_assert_int_ge(tmp, 0);
		ck_assert_int_eq(close(tmp), 0);
	}
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

/* ------------------------------------------------ pending verdicts */

/* A custom acquire that stays in flight, holding no number: a poll of the
 * pipe end at @arg, settled when the test writes to it. */
static int poll_enter(struct rsc_entry *e, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_poll_add(sqe, *(int *)arg, POLLIN);
	return 0;
}

static int poll_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return 0; /* nothing to release */
}

static const struct rsc_manager poll_manager = {
	sizeof(struct rsc_manager), 0, "poller", poll_enter, poll_exit
};

/*
 * A verdict waits while an acquire is in flight on the loop.
 * rsc_audit_clear(3) meanwhile forgets only what was recorded: the pending
 * verdict still comes, once, when the acquire settles; a descriptor the
 * program closed before that is no finding, nor one it opened after the
 * scope had unwound, even on the closed one's number.
 */
START_TEST(clear_while_a_verdict_is_pending_loses_nothing)
{
	struct rsc_scope *s, *w;
	struct rsc_entry *poller;
	const struct rsc_finding *f;
	int pp[2], leaked, gone, later;

	t_make_files(3);
	ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "waiter", &w), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "leaky", &s), 0);
	ck_assert_int_eq(rsc_push(w, &poll_manager, &pp[0], &poller), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	leaked = open(t_path("f0"), O_RDONLY | O_CLOEXEC);
	gone = open(t_path("f1"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(leaked, 0);
	ck_assert_int_gt(gone, leaked);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_entry_state(poller), RSC_ENTERING);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0); /* pending: the poll */
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
	ck_assert_int_eq(close(gone), 0);
	later = open(t_path("f2"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(later, gone); /* the number that was new in 'leaky' */
	ck_assert_int_eq(write(pp[1], "x", 1), 1);
	ck_assert_int_ge(rsc_entry_wait(poller), 0);
	while (rsc_audit_count(t_loop) == 0 && rsc_loop_run(t_loop, RSC_RUN_NOWAIT) > 0)
		;
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_fd(f), leaked);
	ck_assert_str_eq(rsc_finding_scope(f), "leaky");
	ck_assert_int_eq(close(later), 0);
	ck_assert_int_eq(close(leaked), 0);
	ck_assert_int_eq(rsc_scope_close_wait(w, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	ck_assert_int_eq(close(pp[0]), 0);
	ck_assert_int_eq(close(pp[1]), 0);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* Clears the findings and switches the audit off at each finding event. */
static void clear_at_finding(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
			     const struct rsc_entry *e, int res, void *data)
{
	int *seen = data;

	(void)s;
	(void)e;
	(void)res;
	if (ev != RSC_EV_AUDIT_FINDING)
		return;
	(*seen)++;
	ck_assert_int_eq(rsc_audit_count(loop), 1); /* the one just recorded */
	ck_assert_int_eq(rsc_audit_clear(loop), 0);
	ck_assert_int_eq(rsc_loop_set_audit(loop, RSC_AUDIT_OFF), 0);
}

/*
 * Two scopes' verdicts wait, then settle in one batch with two leaks each;
 * the finding event clears the findings and switches the audit off each
 * time: every verdict of the batch is still made (the snapshots were
 * taken), each finding is announced once, and nothing is left recorded.
 */
START_TEST(clear_and_switch_off_from_the_finding_event_mid_batch)
{
	struct rsc_scope *w, *a, *b;
	struct rsc_entry *poller;
	int pp[2], raw[2], seen = 0;

	ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "waiter", &w), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_push(w, &poll_manager, &pp[0], &poller), 0);
	raw[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	raw[1] = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(raw[1], 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, clear_at_finding, &seen), 0);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert_int_eq(seen, 0);
	ck_assert_int_eq(write(pp[1], "x", 1), 1);
	ck_assert_int_ge(rsc_entry_wait(poller), 0);
	while (seen < 4 && rsc_loop_run(t_loop, RSC_RUN_NOWAIT) > 0)
		;
	ck_assert_int_eq(seen, 4);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_loop_audit_level(t_loop), RSC_AUDIT_OFF);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(w, NULL), 0);
	close(raw[0]);
	close(raw[1]);
	close(pp[0]);
	close(pp[1]);
}
END_TEST

struct seen_findings {
	int n, fd;
	char scope[RSC_NAME_MAX];
};

static void note_finding(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
			 const struct rsc_entry *e, int res, void *data)
{
	struct seen_findings *w = data;
	const struct rsc_finding *f;

	(void)s;
	(void)e;
	if (ev != RSC_EV_AUDIT_FINDING)
		return;
	w->n++;
	w->fd = res;
	f = rsc_audit_finding(loop, (unsigned)rsc_audit_count(loop) - 1);
	snprintf(w->scope, sizeof(w->scope), "%s", rsc_finding_scope(f));
}

/*
 * rsc_loop_shutdown(3): findings made during the shutdown are read only
 * from the trace callback, and they are made: a leaky scope closed by the
 * shutdown, whose verdict waits for a poll the shutdown cancels, still has
 * its verdict, announced before the loop is freed.
 */
START_TEST(findings_of_a_shutdown_reach_the_trace_callback)
{
	struct seen_findings w = { 0 };
	struct rsc_loop *l;
	struct rsc_scope *s, *waiter;
	int pp[2], raw;

	ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_loop_new(&l, 16, 0), 0);
	ck_assert_int_eq(rsc_loop_set_audit(l, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_loop_set_trace(l, note_finding, &w), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "waiter", &waiter), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "left-open", &s), 0);
	ck_assert_int_eq(rsc_push(waiter, &poll_manager, &pp[0], NULL), 0);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	raw = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(raw, 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_eq(w.n, 2); /* both scopes saw it appear */
	ck_assert_int_eq(w.fd, raw);
	ck_assert_str_eq(w.scope, "waiter"); /* newest first: 'left-open', then 'waiter' */
	ck_assert_int_eq(close(raw), 0);
	ck_assert_int_eq(close(pp[0]), 0);
	ck_assert_int_eq(close(pp[1]), 0);
}
END_TEST

/* ------------------------------------------------ levels mid-run */

struct switcher {
	struct rsc_loop *loop;
	enum rsc_event at;
	int level;
	int done;
};

static void switch_level(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
			 const struct rsc_entry *e, int res, void *data)
{
	struct switcher *w = data;

	(void)s;
	(void)e;
	(void)res;
	if (ev == w->at && !w->done++)
		ck_assert_int_eq(rsc_loop_set_audit(loop, w->level), 0);
}

/*
 * The level is sampled where each check begins (rsc_loop_set_audit(3)):
 * switched off from a callback in the middle of an unwind, the closes that
 * complete afterwards are not checked, while the scope opened under full
 * is still compared; switched on mid-unwind, a scope without a snapshot
 * gets no verdict, a close completing afterwards is checked.
 */
START_TEST(level_switched_inside_an_unwind)
{
	struct switcher w = { .at = RSC_EV_RELEASED, .level = RSC_AUDIT_OFF };
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *a, *b;
	int fa, fb, raw;

	t_make_files(3);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, switch_level, &w), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "switched-off", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &a), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, &b), 0);
	fa = rsc_entry_wait(a);
	fb = rsc_entry_wait(b);
	ck_assert_int_ge(fa, 0);
	ck_assert_int_ge(fb, 0);
	raw = open(t_path("f2"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(raw, 0);
	/* The newer one is released first; then the level is off, and the older
	 * one's close fails with -EBADF (closed behind the back): not checked. */
	ck_assert_int_eq(close(fa), 0);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EBADF);
	rsc_error_free(err);
	ck_assert_int_eq(w.done, 2);
	ck_assert_int_eq(rsc_loop_audit_level(t_loop), RSC_AUDIT_OFF);
	ck_assert_int_eq(count_kind(t_loop, RSC_FINDING_NOT_RELEASED), 0);
	/* Opened under full: compared all the same. */
	ck_assert_int_eq(count_kind(t_loop, RSC_FINDING_LEAKED), 1);
	ck_assert_ptr_nonnull(finding_of(t_loop, RSC_FINDING_LEAKED, raw));
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
	ck_assert_int_eq(close(raw), 0);

	/* Off to released mid-unwind: the older close is checked. */
	w = (struct switcher){ .at = RSC_EV_RELEASED, .level = RSC_AUDIT_RELEASED };
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "switched-on", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &a), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, &b), 0);
	fa = rsc_entry_wait(a);
	ck_assert_int_ge(rsc_entry_wait(b), 0);
	raw = open(t_path("f2"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(close(fa), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EBADF);
	rsc_error_free(err);
	ck_assert_int_eq(count_kind(t_loop, RSC_FINDING_NOT_RELEASED), 1);
	ck_assert_ptr_nonnull(finding_of(t_loop, RSC_FINDING_NOT_RELEASED, fa));
	ck_assert_int_eq(count_kind(t_loop, RSC_FINDING_LEAKED), 0); /* no snapshot */
	ck_assert_int_eq(close(raw), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/*
 * The identity guard runs only if the descriptor's identity was recorded
 * under full at acquire AND the level is full at its release; a number
 * reused while the level was off in between is still guarded once full
 * again.
 */
START_TEST(identity_guard_follows_the_level_at_acquire_and_release)
{
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int fd, other;

	t_make_files(2);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "guard", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	fd = rsc_entry_wait(e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_OFF), 0);
	ck_assert_int_eq(close(fd), 0);
	other = open(t_path("f1"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(other, fd);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), -EBADF);
	/* Guarded: the other file is still open, and the finding names it. */
	ck_assert_int_eq(fcntl(other, F_GETFD), FD_CLOEXEC);
	ck_assert_ptr_nonnull(finding_of(t_loop, RSC_FINDING_NOT_RELEASED, fd));
	ck_assert_str_eq(rsc_finding_target(finding_of(t_loop, RSC_FINDING_NOT_RELEASED, fd)),
			 t_path("f1"));
	ck_assert_int_eq(close(other), 0);
	/* Closed behind the back and not reused: "(not open)", operation "exit". */
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	fd = rsc_entry_wait(e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), -EBADF);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "exit");
	rsc_error_free(err);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	ck_assert_str_eq(rsc_finding_target(rsc_audit_finding(t_loop, 0)), "(not open)");
	ck_assert_str_eq(rsc_finding_scope(rsc_audit_finding(t_loop, 0)), "guard");
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* ------------------------------------------------ ownership moves */

/*
 * Under full, every ownership move keeps exactly one owner in the audit's
 * eyes: adopted (caller -> entry) inside a scope and moved to an older one,
 * a whole scope moved under an older parent, a file moved out of a closing
 * child: no finding, and the descriptors are closed by their last owner.
 */
START_TEST(ownership_moves_under_full_audit_leave_no_finding)
{
	struct rsc_scope *keep, *child, *mover, *inner;
	struct rsc_entry *adopted, *file, *inner_file;
	int p[2], fd;

	t_make_files(2);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "keep", &keep), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, keep, "child", &child), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, child, "mover", &mover), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, mover, "inner", &inner), 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_adopt(child, p[0], 0, &adopted), 0);
	ck_assert_int_eq(rsc_adopt(child, p[1], 0, NULL), 0);
	ck_assert_int_eq(rsc_open(child, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &file), 0);
	ck_assert_int_eq(rsc_open(inner, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, &inner_file), 0);
	t_run();
	fd = rsc_entry_fd(file);
	ck_assert_int_eq(rsc_entry_move(adopted, keep), 0);
	ck_assert_int_eq(rsc_entry_move(file, keep), 0);
	ck_assert_int_eq(rsc_scope_move(mover, keep), 0);
	ck_assert_int_eq(rsc_scope_close_wait(child, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	/* p[1] went with child; the moved ones live on. */
	ck_assert_int_eq(fcntl(p[1], F_GETFD), -1);
	ck_assert_int_eq(fcntl(p[0], F_GETFD), FD_CLOEXEC);
	ck_assert_int_eq(fcntl(fd, F_GETFD), FD_CLOEXEC);
	ck_assert_int_ge(rsc_entry_fd(inner_file), 0);
	ck_assert_int_eq(rsc_scope_close_wait(keep, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(fcntl(p[0], F_GETFD), -1);
}
END_TEST

/*
 * rsc_entry_install(3): the descriptor made from a slot is the entry's
 * (no leak of its scope, named by rsc_audit_describe_fd), and under full
 * its identity is guarded like an open's.
 */
START_TEST(installed_descriptor_is_owned_and_guarded)
{
	struct rsc_scope *s, *c;
	struct rsc_entry *e;
	char text[512];
	int fd, other;

	t_direct_table(16, 0);
	t_make_files(2);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "holder", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "installer", &c), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, NULL, NULL), 0);
	while ((fd = rsc_entry_fd(e)) < 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_scope_close_wait(c, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_gt(rsc_audit_describe_fd(fd, text, sizeof(text)), 0);
	ck_assert_msg(strstr(text, "'holder'"), "%s", text);
	ck_assert_int_eq(close(fd), 0);
	other = open(t_path("f1"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(other, fd);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), -EBADF);
	ck_assert_int_eq(fcntl(other, F_GETFD), FD_CLOEXEC);
	ck_assert_ptr_nonnull(finding_of(t_loop, RSC_FINDING_NOT_RELEASED, fd));
	ck_assert_int_eq(close(other), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* ------------------------------------------------ two loops */

/*
 * Two loops of one thread, both under full, with scopes open at once: the
 * second loop (made while the first's scope is open: its ring, its /proc
 * handle) and its live entries are no leak of the first; each loop's
 * findings are its own.
 */
START_TEST(two_loops_never_blame_each_others_descriptors)
{
	struct rsc_loop *b;
	struct rsc_scope *sa, *sb, *hb;
	struct rsc_entry *eb;
	int raw;

	t_make_files(4);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &sa), 0);
	ck_assert_int_eq(rsc_loop_new(&b, 16, 0), 0);
	ck_assert_int_eq(rsc_loop_set_audit(b, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(b, NULL, "b-holder", &hb), 0);
	ck_assert_int_eq(rsc_scope_open(b, NULL, "b", &sb), 0);
	ck_assert_int_eq(rsc_open(hb, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &eb), 0);
	ck_assert_int_ge(rsc_entry_wait(eb), 0);
	t_open_files(sa, 1, 2);
	t_run();
	raw = open(t_path("f3"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(raw, 0);
	ck_assert_int_eq(rsc_scope_close_wait(sa, NULL), 0);
	/* Only the program's own descriptor is a's leak. */
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	ck_assert_ptr_nonnull(finding_of(t_loop, RSC_FINDING_LEAKED, raw));
	ck_assert_int_eq(rsc_audit_count(b), 0);
	ck_assert_int_eq(close(raw), 0);
	ck_assert_int_eq(rsc_scope_close_wait(sb, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(b), 0);
	ck_assert_int_eq(rsc_scope_close_wait(hb, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(b), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* ------------------------------------------------ hand-over */

static void on_handed(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

/*
 * rsc_entry_hand_over(3) between two loops of one thread, both under full:
 * the receiver, made while the sender's scope is open (its ring, its /proc
 * handle), is no leak of it; the slot leaves one table and enters the
 * other with no mismatch in either, at each step; no finding anywhere.
 */
START_TEST(hand_over_between_audited_loops_leaves_no_finding)
{
	struct rsc_loop *rl;
	struct rsc_scope *s, *rs;
	struct rsc_entry *e, *inbox;
	unsigned long long addr;
	int arrived = 0, res = 1, i;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &s), 0);
	ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_loop_set_audit(rl, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "receiver", &rs), 0);
	ck_assert_int_eq(rsc_inbox(rs, t_count_arrival, &arrived, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, on_handed, &res), 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(arrived, 1);
	while (res == 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(res, 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(rl), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_loop_direct_used(rl), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(rs, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(rl), 0);
	ck_assert_int_eq(t_audit_slots(rl), 0);
	ck_assert_int_eq(rsc_audit_count(rl), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

/* ------------------------------------------------ direct slots */

/*
 * A custom manager that fills a direct slot behind the runtime's back and
 * forgets it: rsc_audit_slots(3) finds the mismatch (recorded once however
 * often it is asked; again after a clear), and the /proc comparison never
 * sees a slot.
 */
START_TEST(slot_a_custom_manager_leaks_is_a_mismatch_once)
{
	struct fm m = { .slot = 5, .forget = true };
	const struct rsc_finding *f;
	struct rsc_scope *s;

	t_direct_table(16, 4);
	t_make_files(1);
	m.path = t_path("f0");
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "slotty", &s), 0);
	fm_push(s, &m);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0); /* no /proc descriptor */
	ck_assert_int_eq(t_audit_slots(t_loop), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 1);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_SLOT_MISMATCH);
	ck_assert_int_eq(rsc_finding_fd(f), 5);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 1);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	/* Unregistering the table is the only way to free a slot nobody owns. */
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* ------------------------------------------------ freed scopes */

/*
 * A finding outlives its scope: the scope's handle is stale, its memory
 * reused by another scope, and the finding still names the scope that
 * unwound, as the page says (a copy, not a handle).
 */
START_TEST(finding_names_its_scope_after_the_scope_is_freed)
{
	struct rsc_scope *s, *t;
	int raw;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "gone", &s), 0);
	raw = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_scope_state(s), -ESTALE);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "newcomer", &t), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	ck_assert_str_eq(rsc_finding_scope(rsc_audit_finding(t_loop, 0)), "gone");
	ck_assert_int_eq(close(raw), 0);
	ck_assert_int_eq(rsc_scope_close_wait(t, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* ------------------------------------------------ printing */

/* Scope names with a newline, ESC and DEL, and an expected sentence naming
 * such a path: one line per finding, no raw control byte. */
START_TEST(print_escapes_scope_names_and_expected_sentences)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	char path[512], *mem = NULL;
	size_t len = 0, i;
	FILE *out;
	int fd;

	snprintf(path, sizeof(path), "%s/a\nb\x1b[31m\x7f", t_dir);
	close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "x\ny\x1b]0;t\x07", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, path, O_RDONLY, 0, 0, &e), 0);
	fd = rsc_entry_wait(e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EBADF);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	ck_assert_ptr_nonnull(strchr(rsc_finding_scope(rsc_audit_finding(t_loop, 0)), '\n'));
	out = open_memstream(&mem, &len);
	ck_assert_int_eq(rsc_audit_print(t_loop, out), 1);
	fclose(out);
	for (i = 0; i + 1 < len; i++)
		ck_assert_msg((unsigned char)mem[i] >= 0x20 && mem[i] != 0x7f,
			      "raw byte 0x%02x at %zu: %s", (unsigned char)mem[i], i, mem);
	ck_assert_int_eq(mem[len - 1], '\n');
	ck_assert_ptr_nonnull(strstr(mem, "x\\x0ay\\x1b]0;t\\x07"));
	free(mem);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* ------------------------------------------------ the /proc handle */

/*
 * ringscope_audit(7), Setting the level: the /proc/self/fd handle is opened
 * by the first switch to a level above off (one descriptor, close-on-exec),
 * stays open at off and through further switches, and goes with the loop.
 */
START_TEST(proc_handle_is_opened_once_and_kept_until_the_loop_goes)
{
	struct rsc_loop *l;
	int base, with;

	base = t_fd_count();
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_audit_level(l), RSC_AUDIT_OFF);
	with = t_fd_count();
	/* The ring, and the eventfd posts wake it by without MSG_RING (rsc_loop_features(3)). */
	ck_assert_int_eq(with, base + 1 + !!(rsc_loop_features(l) & RSC_FEAT_POST_EVENTFD));
	ck_assert_int_eq(!!(rsc_loop_features(l) & RSC_FEAT_POST_EVENTFD), !t_has_post_msg_ring());
	ck_assert_int_eq(rsc_loop_set_audit(l, RSC_AUDIT_OFF), 0);
	ck_assert_int_eq(t_fd_count(), with);
	ck_assert_int_eq(rsc_loop_set_audit(l, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(t_fd_count(), with + 1);
	ck_assert_int_eq(rsc_loop_set_audit(l, RSC_AUDIT_OFF), 0);
	ck_assert_int_eq(rsc_loop_set_audit(l, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_loop_set_audit(l, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(t_fd_count(), with + 1);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(t_fd_count(), base);
}
END_TEST

/* ------------------------------------------------ another thread */

struct churn {
	int stop;
	long opens;
};

/* Takes every number the releases free, and gives it back at once. */
static void *churn_numbers(void *arg)
{
	struct churn *c = arg;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			__atomic_add_fetch(&c->opens, 1, __ATOMIC_RELEASE);
			close(fd);
		}
	}
	return NULL;
}

/*
 * Released level: a close's own CQE is the verdict, so a number another
 * thread takes between a release and its check is no false
 * RSC_FINDING_NOT_RELEASED, over 1,000 releases.
 */
START_TEST(numbers_reused_by_another_thread_are_no_finding)
{
	struct churn c = { 0 };
	struct rsc_scope *s;
	pthread_t th;
	int round;

	t_make_files(50);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, churn_numbers, &c), 0);
	while (__atomic_load_n(&c.opens, __ATOMIC_ACQUIRE) == 0) /* running */
		usleep(1000);
	for (round = 0; round < 20; round++) {
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "churned", &s), 0);
		t_open_files(s, 0, 50);
		t_run();
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	}
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

/* ------------------------------------------------ cost */

static int raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if (rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max < want)
		return -1;
	rl.rlim_cur = want;
	return setrlimit(RLIMIT_NOFILE, &rl);
}

/*
 * ringscope_audit(7): under full, a reading of /proc/self/fd per scope open
 * and per batch of verdicts, "each proportional to the number of open
 * descriptors". 10,000 descriptors held by live custom entries of a parent
 * appeared while its child was open: the child's verdict must cost about
 * what a scope cycle's two readings cost, not a walk of every entry per
 * descriptor (quadratic: 20 times a cycle here before it was mended).
 */
START_TEST(ten_thousand_descriptors_full_audit_stays_linear)
{
	enum { N = 10000 };
	struct fm *m;
	struct rsc_scope *p, *c;
	long t0, verdict_ms, cycle_ms;
	int i;

	if (raise_nofile(N + 512) < 0 || t_under_valgrind()) {
		printf("SKIP ten_thousand_descriptors_full_audit_stays_linear: RLIMIT_NOFILE below %d or valgrind\n",
		       N + 512);
		return;
	}
	m = calloc(N, sizeof(*m));
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0); /* 40,000 events */
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "parent", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "child", &c), 0);
	for (i = 0; i < N; i++) {
		struct rsc_entry *e;

		m[i].path = "/dev/null";
		m[i].slot = -1;
		ck_assert_int_eq(rsc_push(p, &fm_manager, &m[i], &e), 0);
	}
	t_run();
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_close_wait(c, NULL), 0);
	verdict_ms = t_now_ms() - t0;
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	t0 = t_now_ms();
	for (i = 0; i < 10; i++) {
		ck_assert_int_eq(rsc_scope_open(t_loop, p, "cycle", &c), 0);
		ck_assert_int_eq(rsc_scope_close_wait(c, NULL), 0);
	}
	cycle_ms = (t_now_ms() - t0) / 10;
	ck_assert_msg(cycle_ms < 500, "a scope cycle with %d descriptors took %ld ms", N, cycle_ms);
	ck_assert_msg(verdict_ms <= 5 * cycle_ms + 30,
		      "the child's verdict took %ld ms, a scope cycle %ld ms", verdict_ms, cycle_ms);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	free(m);
}
END_TEST

Suite *make_hostile_audit_suite(void)
{
	Suite *s = suite_create("hostile_audit");
	TCase *tc = tcase_create("audit");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, bad_levels_indices_and_nulls_change_nothing);
	tcase_add_test(tc, environment_levels_are_exact);
	tcase_add_test(tc, leak_on_a_number_the_program_closed_inside_the_scope_is_found);
	tcase_add_test(tc, leak_on_the_number_of_a_detached_and_closed_descriptor_is_found);
	tcase_add_test(tc, programs_own_open_and_close_inside_a_scope_is_silent);
	tcase_add_test(tc, clear_while_a_verdict_is_pending_loses_nothing);
	tcase_add_test(tc, clear_and_switch_off_from_the_finding_event_mid_batch);
	tcase_add_test(tc, findings_of_a_shutdown_reach_the_trace_callback);
	tcase_add_test(tc, level_switched_inside_an_unwind);
	tcase_add_test(tc, identity_guard_follows_the_level_at_acquire_and_release);
	tcase_add_test(tc, ownership_moves_under_full_audit_leave_no_finding);
	if (t_kernel_has(OP_FIXED_FD_INSTALL))
		tcase_add_test(tc, installed_descriptor_is_owned_and_guarded);
	else
		printf("SKIP installed_descriptor_is_owned_and_guarded: kernel lacks IORING_OP_FIXED_FD_INSTALL (Linux 6.8)\n");
	tcase_add_test(tc, two_loops_never_blame_each_others_descriptors);
	tcase_add_test(tc, slot_a_custom_manager_leaks_is_a_mismatch_once);
	if (t_has_hand_over())
		tcase_add_test(tc, hand_over_between_audited_loops_leaves_no_finding);
	else
		printf("SKIP hand_over_between_audited_loops_leaves_no_finding: the loops of this run lack IORING_MSG_SEND_FD (Linux 6.0)\n");
	tcase_add_test(tc, finding_names_its_scope_after_the_scope_is_freed);
	tcase_add_test(tc, print_escapes_scope_names_and_expected_sentences);
	tcase_add_test(tc, proc_handle_is_opened_once_and_kept_until_the_loop_goes);
	tcase_add_test(tc, numbers_reused_by_another_thread_are_no_finding);
	tcase_add_test(tc, ten_thousand_descriptors_full_audit_stays_linear);
	suite_add_tcase(s, tc);
	return s;
}
