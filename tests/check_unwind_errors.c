/* SPDX-License-Identifier: MIT */
/*
 * Errors in an unwind, read as a hostile tester reads DESIGN.md 2.4 ("the
 * pending error"), 2.5 ("nothing hides an error"), 7 ("the body can fail
 * too") and the pages of the error chain: rsc_push(3)'s exit, rsc_defer(3),
 * rsc_entry_get_sqes(3), rsc_scope_fail(3), rsc_scope_close(3),
 * rsc_scope_on_close(3), rsc_error_cause(3), rsc_error_format(3),
 * rsc_strerror(3). Every test compares a whole chain, newest first, as
 * "op:ENAME" links, so an error lost, doubled or out of order shows.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

/* ------------------------------------------------------------ helpers */

/* The chain as "op:ENAME,op:ENAME,...", newest first ("" for none). */
static const char *chain_text(const struct rsc_error *err)
{
	static char buf[4][1024];
	static int k;
	char *out = buf[k = (k + 1) % 4];
	size_t n = 0;

	out[0] = '\0';
	for (; err && n < sizeof(buf[0]) - 64; err = rsc_error_cause(err))
		n += (size_t)snprintf(out + n, sizeof(buf[0]) - n, "%s%s:%s", n ? "," : "",
				      rsc_error_op(err), rsc_err_name(rsc_error_errno(err)));
	return out;
}

/* The entries the chain names, newest first, as "entry@scope,...". */
static const char *chain_names(const struct rsc_error *err)
{
	static char buf[1024];
	size_t n = 0;

	buf[0] = '\0';
	for (; err && n < sizeof(buf) - 64; err = rsc_error_cause(err))
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s@%s", n ? "," : "",
				      rsc_error_entry(err), rsc_error_scope(err));
	return buf;
}

/* Close @s, run until it is freed, and return its status; *@text gets the chain. */
static int close_and_read(struct rsc_scope *s, char *text, size_t len)
{
	struct rsc_error *err = NULL;
	int status = rsc_scope_close_wait(s, &err);

	snprintf(text, len, "%s", chain_text(err));
	if (status < 0)
		ck_assert_ptr_nonnull(err);
	else
		ck_assert_ptr_null(err);
	if (err)
		ck_assert_int_eq(status, rsc_error_errno(err));
	rsc_error_free(err);
	return status;
}

/* What one kind of exit SQE does, and the error it must raise. */
enum sqe_kind {
	K_OK = 0,   /* a NOP: 0 */
	K_BADF,	    /* read(-1): -EBADF, "read" */
	K_ENOENT,   /* openat of a missing path: -ENOENT, "openat" */
	K_ETIME,    /* a 1 ms timeout: -ETIME, "timeout" */
	K_SLOW,	    /* a 40 ms timeout: -ETIME, after the others' CQEs */
	K_LINKED,   /* read(-1) soft-linked to the next SQE, which it cancels */
};

/* A custom manager whose release is up to 8 SQEs of the kinds above. */
struct multi {
	unsigned n;
	enum sqe_kind k[RSC_ENTRY_SQES_MAX];
	int ret;	/* what exit returns after preparing them */
	int calls;
	char seen[1024]; /* the pending chain exit saw */
	struct __kernel_timespec fast, slow;
	char buf[4];
};

static int multi_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0; /* a NOP the runtime adds: entered with 0 */
}

static void prep_kind(struct multi *m, struct io_uring_sqe *sqe, enum sqe_kind k)
{
	switch (k) {
	case K_OK:
		io_uring_prep_nop(sqe);
		break;
	case K_BADF:
	case K_LINKED:
		io_uring_prep_read(sqe, -1, m->buf, 1, 0);
		if (k == K_LINKED)
			sqe->flags |= IOSQE_IO_LINK;
		break;
	case K_ENOENT:
		io_uring_prep_openat(sqe, AT_FDCWD, "/nonexistent-ringscope/x", O_RDONLY | O_CLOEXEC, 0);
		break;
	case K_ETIME:
		io_uring_prep_timeout(sqe, &m->fast, 0, 0);
		break;
	case K_SLOW:
		io_uring_prep_timeout(sqe, &m->slow, 0, 0);
		break;
	}
}

static int multi_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct multi *m = arg;
	struct io_uring_sqe *sqe[RSC_ENTRY_SQES_MAX];
	unsigned i;
	int ret;

	m->calls++;
	snprintf(m->seen, sizeof(m->seen), "%s", chain_text(pending));
	if (!m->n)
		return m->ret;
	ret = rsc_entry_get_sqes(e, m->n, sqe);
	if (ret < 0)
		return ret;
	for (i = 0; i < m->n; i++)
		prep_kind(m, sqe[i], m->k[i]);
	return m->ret;
}

static const struct rsc_manager multi_mgr = {
	sizeof(struct rsc_manager), 0, "multi", multi_enter, multi_exit
};
static const struct rsc_manager multi_unordered = {
	sizeof(struct rsc_manager), RSC_MANAGER_UNORDERED, "multi_u", multi_enter, multi_exit
};

static void multi_init(struct multi *m, unsigned n, const enum sqe_kind *k)
{
	memset(m, 0, sizeof(*m));
	m->n = n;
	if (n)
		memcpy(m->k, k, n * sizeof(*k));
	m->fast.tv_nsec = 1000000;
	m->slow.tv_nsec = 40000000;
}

static struct rsc_entry *push_multi(struct rsc_scope *s, const struct rsc_manager *mgr, struct multi *m)
{
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_push(s, mgr, m, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	return e;
}

/* A release-only entry: logs its turn, records what it saw, returns ret. */
struct probe {
	const char *name;
	int ret;
	int calls;
	char seen[1024];
	const struct rsc_error *seen_ptr;
	const struct rsc_error *scope_error; /* rsc_scope_error() during the call */
	struct rsc_scope *scope;
};

static char order[256];

static int probe_fn(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct probe *p = arg;
	size_t n = strlen(order);

	(void)e;
	p->calls++;
	p->seen_ptr = pending;
	snprintf(p->seen, sizeof(p->seen), "%s", chain_text(pending));
	if (p->scope)
		p->scope_error = rsc_scope_error(p->scope);
	snprintf(order + n, sizeof(order) - n, "%s%s", n ? "," : "", p->name);
	return p->ret;
}

static void defer_probe(struct rsc_scope *s, struct probe *p, const char *name, int ret)
{
	memset(p, 0, sizeof(*p));
	p->name = name;
	p->ret = ret;
	ck_assert_int_eq(rsc_defer(s, probe_fn, p, NULL), 0);
}

static struct rsc_scope *open_scope(struct rsc_scope *parent, const char *name)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, parent, name, &s), 0);
	return s;
}

/* ------------------------------------ 2.5: every failed SQE of a release */

/*
 * rsc_push(3): "a negative result of any exit SQE ... raises a new error
 * whose cause is the pending one"; DESIGN 2.5: nothing is swallowed. Three
 * failed SQEs of one release are three errors, in SQE order, each the cause
 * of the next, as three exits would give.
 */
START_TEST(three_failed_sqes_of_one_release_each_reach_the_chain)
{
	static const enum sqe_kind k[] = { K_BADF, K_ENOENT, K_ETIME };
	struct rsc_scope *s = open_scope(NULL, "three");
	struct rsc_error *err = NULL;
	struct multi m;

	multi_init(&m, 3, k);
	push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ETIME);
	ck_assert_str_eq(chain_text(err), "timeout:ETIME,openat:ENOENT,read:EBADF");
	ck_assert_str_eq(chain_names(err), "multi@three,multi@three,multi@three");
	ck_assert_int_eq(rsc_error_depth(err), 3);
	ck_assert_str_eq(rsc_error_detail(err), "");
	rsc_error_free(err);
	ck_assert_int_eq(m.calls, 1);
}
END_TEST

/* Completions come in any order; the chain keeps the order of the SQEs. */
START_TEST(failed_sqes_are_reported_in_sqe_order_not_completion_order)
{
	static const enum sqe_kind k[] = { K_SLOW, K_OK, K_BADF };
	struct rsc_scope *s = open_scope(NULL, "order");
	char text[1024];
	struct multi m;

	multi_init(&m, 3, k);
	push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -EBADF);
	ck_assert_str_eq(text, "read:EBADF,timeout:ETIME");
}
END_TEST

/* On a body failure: the SQE errors stack on it, and the exit below sees all. */
START_TEST(failed_sqes_stack_on_the_body_failure_for_the_exits_below)
{
	static const enum sqe_kind k[] = { K_BADF, K_OK, K_ENOENT };
	struct rsc_scope *s = open_scope(NULL, "body");
	struct probe below;
	char text[1024];
	struct multi m;

	defer_probe(s, &below, "below", 0);
	multi_init(&m, 3, k);
	push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "parse"), 0);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -ENOENT);
	ck_assert_str_eq(m.seen, "parse:EPIPE");
	ck_assert_str_eq(below.seen, "openat:ENOENT,read:EBADF,parse:EPIPE");
	ck_assert_str_eq(text, "openat:ENOENT,read:EBADF,parse:EPIPE");
}
END_TEST

/* An exit that returns -errno after preparing SQEs that fail: its own error
 * first (it came first), then each SQE's; none hides another. */
START_TEST(exit_return_and_its_failed_sqes_all_reach_the_chain)
{
	static const enum sqe_kind k[] = { K_BADF, K_ENOENT };
	struct rsc_scope *s = open_scope(NULL, "both");
	char text[1024];
	struct multi m;

	multi_init(&m, 2, k);
	m.ret = -EIO;
	push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -ENOENT);
	ck_assert_str_eq(text, "openat:ENOENT,read:EBADF,exit:EIO");
}
END_TEST

/*
 * rsc_push(3): a failed SQE "wins over a suppression" and its cause is the
 * pending one (Python: an __aexit__ that raises never returns True; the
 * exception it was handed becomes the context). Every failed SQE does.
 */
START_TEST(suppressing_exit_whose_sqes_fail_raises_each_over_the_pending)
{
	static const enum sqe_kind k[] = { K_BADF, K_ENOENT };
	struct rsc_scope *s = open_scope(NULL, "sup");
	struct probe below;
	char text[1024];
	struct multi m;

	defer_probe(s, &below, "below", 0);
	multi_init(&m, 2, k);
	m.ret = RSC_EXIT_SUPPRESS;
	push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, NULL), 0);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -ENOENT);
	ck_assert_str_eq(below.seen, "openat:ENOENT,read:EBADF,fail:EPIPE");
	ck_assert_str_eq(text, "openat:ENOENT,read:EBADF,fail:EPIPE");
}
END_TEST

/* A soft link cut by a failure: the cut SQE's -ECANCELED is its own error
 * (the work it stood for was not done), after the failure that cut it. */
START_TEST(sqe_cancelled_by_a_failed_link_is_reported_too)
{
	static const enum sqe_kind k[] = { K_LINKED, K_OK };
	struct rsc_scope *s = open_scope(NULL, "link");
	char text[1024];
	struct multi m;

	multi_init(&m, 2, k);
	push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -ECANCELED);
	ck_assert_str_eq(text, "nop:ECANCELED,read:EBADF");
}
END_TEST

/* Unordered releases in one batch: LIFO between entries, SQE order within. */
START_TEST(unordered_batch_keeps_lifo_between_entries_and_sqe_order_within)
{
	static const enum sqe_kind ka[] = { K_BADF, K_ENOENT };
	static const enum sqe_kind kb[] = { K_SLOW, K_BADF };
	struct rsc_scope *s = open_scope(NULL, "batch");
	struct multi a, b;
	char text[1024];

	t_make_files(1);
	multi_init(&a, 2, ka);
	multi_init(&b, 2, kb);
	push_multi(s, &multi_unordered, &a);
	t_open_files(s, 0, 1);
	push_multi(s, &multi_unordered, &b);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -ENOENT);
	ck_assert_str_eq(text, "openat:ENOENT,read:EBADF,read:EBADF,timeout:ETIME");
}
END_TEST

/*
 * rsc_push(3): "Only an error raised by the result of an unordered exit's SQE
 * is not seen by the exits that started in the same step; the scope's result
 * carries it all the same." An unordered exit below that suppresses
 * suppresses what it saw, never an error it could not see.
 */
START_TEST(unordered_suppression_keeps_an_error_it_never_saw)
{
	static const enum sqe_kind slow[] = { K_SLOW };
	struct rsc_scope *s = open_scope(NULL, "unseen");
	struct multi sup, late;
	char text[1024];

	multi_init(&sup, 0, NULL);
	sup.ret = RSC_EXIT_SUPPRESS;
	multi_init(&late, 1, slow);
	push_multi(s, &multi_unordered, &sup);
	push_multi(s, &multi_unordered, &late);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -ETIME);
	ck_assert_str_eq(sup.seen, "");
	ck_assert_str_eq(text, "timeout:ETIME");
}
END_TEST

/* ... and on a body failure: what it saw (the body's error) is suppressed,
 * the error it never saw stays, without that cause. */
START_TEST(unordered_suppression_drops_only_what_it_saw)
{
	static const enum sqe_kind slow[] = { K_SLOW };
	struct rsc_scope *s = open_scope(NULL, "unseen");
	struct multi sup, late;
	struct probe below;
	char text[1024];

	defer_probe(s, &below, "below", 0);
	multi_init(&sup, 0, NULL);
	sup.ret = RSC_EXIT_SUPPRESS;
	multi_init(&late, 1, slow);
	push_multi(s, &multi_unordered, &sup);
	push_multi(s, &multi_unordered, &late);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -ETIME);
	ck_assert_str_eq(late.seen, "body:EPIPE");
	ck_assert_str_eq(sup.seen, "body:EPIPE");
	ck_assert_str_eq(below.seen, "timeout:ETIME");
	ck_assert_str_eq(text, "timeout:ETIME");
}
END_TEST

/* rsc_entry_release_wait(3): the chain it returns holds every failure of the
 * release; the result is the first; the scope's chain stays clean. */
START_TEST(release_wait_chain_holds_every_failed_sqe)
{
	static const enum sqe_kind k[] = { K_BADF, K_ENOENT, K_OK };
	struct rsc_scope *s = open_scope(NULL, "early");
	struct rsc_error *err = NULL;
	struct rsc_entry *e;
	char text[1024];
	struct multi m;

	multi_init(&m, 3, k);
	e = push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), -EBADF);
	ck_assert_str_eq(chain_text(err), "openat:ENOENT,read:EBADF");
	ck_assert_str_eq(chain_names(err), "multi@early,multi@early");
	rsc_error_free(err);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), 0);
}
END_TEST

/* rsc_entry_release(3) without a callback: the failures join the scope's chain, all of them. */
START_TEST(early_release_without_callback_puts_every_failure_in_the_chain)
{
	static const enum sqe_kind k[] = { K_BADF, K_ENOENT };
	struct rsc_scope *s = open_scope(NULL, "nocb");
	struct rsc_entry *e;
	char text[1024];
	struct multi m;

	multi_init(&m, 2, k);
	e = push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_state(e), RSC_EXITED);
	ck_assert_str_eq(chain_text(rsc_scope_error(s)), "openat:ENOENT,read:EBADF");
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -ENOENT);
	ck_assert_str_eq(text, "openat:ENOENT,read:EBADF");
}
END_TEST

static void store_res(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

/* With a callback, it hears the release's result (the first failure) and the scope nothing. */
START_TEST(early_release_callback_hears_the_first_failure)
{
	static const enum sqe_kind k[] = { K_SLOW, K_BADF };
	struct rsc_scope *s = open_scope(NULL, "cb");
	struct rsc_entry *e;
	int res = 1;
	char text[1024];
	struct multi m;

	multi_init(&m, 2, k);
	e = push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(rsc_entry_release(e, store_res, &res), 0);
	t_run();
	ck_assert_int_eq(res, -ETIME);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), 0);
}
END_TEST

/* The built-in release with RSC_FSYNC_ON_RELEASE is two SQEs: a failed fsync
 * and a failed close are both reported, fsync first (it came first). */
START_TEST(fsync_and_close_both_failing_are_both_reported)
{
	struct rsc_scope *s = open_scope(NULL, "sync");
	struct rsc_entry *e;
	char text[1024];

	t_make_files(1);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_WRONLY, 0, RSC_FSYNC_ON_RELEASE, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "fsync:1:EIO,close:1:ENOSPC"), 0);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -ENOSPC);
	ck_assert_str_eq(text, "close:ENOSPC,fsync:EIO");
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
}
END_TEST

/* ------------------------------------------------ 2.4: suppression */

/* A defer suppressing the body's failure: the scope is clean, the exits below see nothing. */
START_TEST(defer_suppressing_the_body_failure_leaves_a_clean_result)
{
	struct rsc_scope *s = open_scope(NULL, "quiet");
	struct probe a, b, c;
	char text[1024];

	defer_probe(s, &a, "a", 0);
	defer_probe(s, &b, "b", RSC_EXIT_SUPPRESS);
	defer_probe(s, &c, "c", 0);
	order[0] = '\0';
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "parse"), 0);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), 0);
	ck_assert_str_eq(order, "c,b,a");
	ck_assert_str_eq(c.seen, "parse:EPROTO");
	ck_assert_str_eq(b.seen, "parse:EPROTO");
	ck_assert_str_eq(a.seen, "");
	ck_assert_ptr_null(a.seen_ptr);
	ck_assert_str_eq(text, "");
}
END_TEST

/* A suppression, then a raise, then a suppression of that raise, then a raise
 * again: each raise starts from what is pending at its turn. */
START_TEST(suppress_raise_suppress_raise_alternates_as_python_does)
{
	struct rsc_scope *s = open_scope(NULL, "alt");
	struct probe p[5];
	char text[1024];

	defer_probe(s, &p[0], "p0", -ENOSPC);
	defer_probe(s, &p[1], "p1", RSC_EXIT_SUPPRESS);
	defer_probe(s, &p[2], "p2", -EIO);
	defer_probe(s, &p[3], "p3", RSC_EXIT_SUPPRESS);
	defer_probe(s, &p[4], "p4", -EPERM);
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "body"), 0);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -ENOSPC);
	ck_assert_str_eq(p[4].seen, "body:EPROTO");
	ck_assert_str_eq(p[3].seen, "exit:EPERM,body:EPROTO");
	ck_assert_str_eq(p[2].seen, "");
	ck_assert_str_eq(p[1].seen, "exit:EIO");
	ck_assert_str_eq(p[0].seen, "");
	ck_assert_str_eq(text, "exit:ENOSPC");
}
END_TEST

/* rsc_scope_error(3) during an exit is the chain the exit was handed. */
START_TEST(scope_error_during_an_exit_is_the_pending_chain)
{
	struct rsc_scope *s = open_scope(NULL, "se");
	struct probe a, b;
	char text[1024];

	defer_probe(s, &a, "a", 0);
	a.scope = s;
	defer_probe(s, &b, "b", -EIO);
	b.scope = s;
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
	ck_assert_ptr_nonnull(rsc_scope_error(s)); /* recorded at once */
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -EIO);
	ck_assert_ptr_eq(b.scope_error, b.seen_ptr);
	ck_assert_ptr_eq(a.scope_error, a.seen_ptr);
	ck_assert_str_eq(a.seen, "exit:EIO,body:EPIPE");
}
END_TEST

/* ----------------------------------------- errors crossing scopes */

/* A child raising inside its parent's failed unwind: the child's error on top
 * of the parent's body error, then the parent's own exits' errors on top. */
START_TEST(child_raising_inside_a_failed_parent_keeps_the_order)
{
	struct rsc_scope *p = open_scope(NULL, "parent");
	struct rsc_scope *c;
	struct probe pa, ca, cb;
	char text[1024];

	defer_probe(p, &pa, "pa", -ENOSPC);
	c = open_scope(p, "child");
	defer_probe(c, &ca, "ca", 0);
	defer_probe(c, &cb, "cb", -EIO);
	order[0] = '\0';
	ck_assert_int_eq(rsc_scope_fail(p, -EPIPE, "body"), 0);
	ck_assert_int_eq(close_and_read(p, text, sizeof(text)), -ENOSPC);
	ck_assert_str_eq(order, "cb,ca,pa");
	ck_assert_str_eq(cb.seen, "body:EPIPE");
	ck_assert_str_eq(ca.seen, "exit:EIO,body:EPIPE");
	ck_assert_str_eq(pa.seen, "exit:EIO,body:EPIPE");
	ck_assert_str_eq(text, "exit:ENOSPC,exit:EIO,body:EPIPE");
}
END_TEST

/* rsc_error_cause(3): a child that failed on its own, closed by a parent with
 * its own error: the child's chain first, the parent's after it. */
START_TEST(child_failed_on_its_own_comes_before_the_parent_error)
{
	struct rsc_scope *p = open_scope(NULL, "parent");
	struct rsc_scope *c = open_scope(p, "child");
	struct probe ca, pa;
	char text[1024];

	defer_probe(p, &pa, "pa", 0);
	defer_probe(c, &ca, "ca", -EIO);
	ck_assert_int_eq(rsc_scope_fail(c, -ENOENT, "lookup"), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_state(c), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_fail(p, -EPIPE, "body"), 0);
	ck_assert_int_eq(close_and_read(p, text, sizeof(text)), -EIO);
	ck_assert_str_eq(ca.seen, "lookup:ENOENT");
	ck_assert_str_eq(pa.seen, "exit:EIO,lookup:ENOENT,body:EPIPE");
	ck_assert_str_eq(text, "exit:EIO,lookup:ENOENT,body:EPIPE");
}
END_TEST

/* Keeps the pending chain an exit is handed, and raises. */
static int dup_pending_and_raise(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	ck_assert_int_eq(rsc_error_dup(pending, (struct rsc_error **)arg), 0);
	return -EIO;
}

/* A chain an exit kept (the tail of the child's final chain) stays as it was
 * when the child's result is joined to its parent's error below it. */
START_TEST(chain_kept_by_an_exit_is_immutable_when_the_parent_joins_it)
{
	struct rsc_scope *p = open_scope(NULL, "parent");
	struct rsc_scope *c = open_scope(p, "child");
	struct rsc_error *kept = NULL;
	char text[1024];

	ck_assert_int_eq(rsc_defer(c, dup_pending_and_raise, &kept, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(c, -ENOENT, "lookup"), 0);
	t_run();
	ck_assert_str_eq(chain_text(kept), "lookup:ENOENT");
	ck_assert_int_eq(rsc_scope_fail(p, -EPIPE, "body"), 0);
	ck_assert_int_eq(close_and_read(p, text, sizeof(text)), -EIO);
	ck_assert_str_eq(text, "exit:EIO,lookup:ENOENT,body:EPIPE");
	ck_assert_str_eq(chain_text(kept), "lookup:ENOENT");
	ck_assert_ptr_null(rsc_error_cause(kept));
	rsc_error_free(kept);
}
END_TEST

/* A child's exit suppressing the parent's pending error: as an inner
 * context manager that swallows, the outer sees nothing. */
START_TEST(child_exit_suppressing_the_parent_error_clears_it_for_the_parent)
{
	struct rsc_scope *p = open_scope(NULL, "parent");
	struct rsc_scope *c = open_scope(p, "child");
	struct probe ca, pa;
	char text[1024];

	defer_probe(p, &pa, "pa", 0);
	defer_probe(c, &ca, "ca", RSC_EXIT_SUPPRESS);
	ck_assert_int_eq(rsc_scope_fail(p, -EPIPE, "body"), 0);
	ck_assert_int_eq(close_and_read(p, text, sizeof(text)), 0);
	ck_assert_str_eq(ca.seen, "body:EPIPE");
	ck_assert_str_eq(pa.seen, "");
}
END_TEST

/* An exit of a child closed by its parent touches its own (parent-closed)
 * handle: the documented errnos, and its error still reaches the parent. */
struct self_touch {
	struct rsc_scope *self;
	int close_res, fail_res, on_close_res, state;
};

static int touch_self(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct self_touch *t = arg;

	(void)e;
	(void)pending;
	t->close_res = rsc_scope_close(t->self, NULL, NULL);
	t->fail_res = rsc_scope_fail(t->self, -EIO, "again");
	t->on_close_res = rsc_scope_on_close(t->self, NULL, NULL);
	t->state = rsc_scope_state(t->self);
	return -EBADMSG;
}

START_TEST(exit_of_a_parent_closed_child_touching_its_scope)
{
	struct rsc_scope *p = open_scope(NULL, "parent");
	struct self_touch t = { 0 };
	char text[1024];

	t.self = open_scope(p, "child");
	ck_assert_int_eq(rsc_defer(t.self, touch_self, &t, NULL), 0);
	ck_assert_int_eq(close_and_read(p, text, sizeof(text)), -EBADMSG);
	ck_assert_int_eq(t.close_res, -EALREADY);
	ck_assert_int_eq(t.fail_res, -EALREADY);
	ck_assert_int_eq(t.on_close_res, 0);
	ck_assert_int_eq(t.state, RSC_SCOPE_UNWINDING);
	ck_assert_str_eq(text, "exit:EBADMSG");
	/* Freed with its parent: every call with the handle says so. */
	ck_assert_int_eq(rsc_scope_state(t.self), -ESTALE);
	ck_assert_int_eq(rsc_scope_fail(t.self, -EIO, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_on_close(t.self, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_close(t.self, NULL, NULL), -ESTALE);
	ck_assert_ptr_null(rsc_scope_error(t.self));
}
END_TEST

/* An exit failing an older sibling its parent's unwind has not reached: the
 * sibling unwinds in its turn, that unwind's error on top of its own
 * (rsc_scope_fail(3)), and the parent's result carries both. */
struct fail_other {
	struct rsc_scope *other;
	int res;
};

static int fail_the_other(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct fail_other *f = arg;

	(void)e;
	(void)pending;
	f->res = rsc_scope_fail(f->other, -ENOENT, "late");
	return 0;
}

START_TEST(exit_failing_an_older_sibling_mid_unwind)
{
	struct rsc_scope *p = open_scope(NULL, "parent");
	struct rsc_scope *a = open_scope(p, "a");
	struct rsc_scope *b = open_scope(p, "b");
	struct fail_other f = { a, 1 };
	struct probe aa, pa;
	char text[1024];

	defer_probe(p, &pa, "pa", 0);
	defer_probe(a, &aa, "aa", 0);
	ck_assert_int_eq(rsc_defer(b, fail_the_other, &f, NULL), 0);
	order[0] = '\0';
	ck_assert_int_eq(rsc_scope_fail(p, -EPIPE, "body"), 0);
	ck_assert_int_eq(close_and_read(p, text, sizeof(text)), -EPIPE);
	ck_assert_int_eq(f.res, 0);
	ck_assert_str_eq(order, "aa,pa");
	ck_assert_str_eq(aa.seen, "body:EPIPE,late:ENOENT");
	ck_assert_str_eq(pa.seen, "body:EPIPE,late:ENOENT");
	ck_assert_str_eq(text, "body:EPIPE,late:ENOENT");
}
END_TEST

/* ------------------------------------------------- rsc_scope_fail(3) */

START_TEST(scope_fail_refuses_bad_arguments_and_changes_nothing)
{
	struct rsc_scope *s = open_scope(NULL, "args");
	struct probe p = { .name = "p" };
	struct rsc_entry *e;
	char text[1024];

	ck_assert_int_eq(rsc_scope_fail(NULL, -EIO, "x"), -EINVAL);
	ck_assert_int_eq(rsc_scope_fail(s, 0, "x"), -EINVAL);
	ck_assert_int_eq(rsc_scope_fail(s, EIO, "x"), -EINVAL);
	ck_assert_int_eq(rsc_scope_fail(s, INT_MAX, "x"), -EINVAL);
	ck_assert_int_eq(rsc_defer(s, probe_fn, &p, &e), 0);
	/* An entry handle is no scope. */
	ck_assert_int_eq(rsc_scope_fail((struct rsc_scope *)e, -EIO, "x"), -EINVAL);
	ck_assert_ptr_null(rsc_scope_error(s));
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	order[0] = '\0';
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), 0);
	ck_assert_str_eq(order, "p");
}
END_TEST

START_TEST(scope_fail_twice_or_after_close_is_ealready_and_keeps_the_first)
{
	struct rsc_scope *s = open_scope(NULL, "twice");
	struct rsc_scope *t = open_scope(NULL, "closing");
	struct probe a;
	char text[1024];

	defer_probe(s, &a, "a", 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "first"), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "second"), -EALREADY);
	ck_assert_str_eq(chain_text(rsc_scope_error(s)), "first:EPIPE");
	t_run();
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "late"), -EALREADY);
	ck_assert_str_eq(a.seen, "first:EPIPE");
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -EPIPE);
	ck_assert_str_eq(text, "first:EPIPE");
	ck_assert_int_eq(rsc_scope_close(t, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(t, -EIO, "late"), -EALREADY);
	t_run();
	ck_assert_int_eq(rsc_scope_fail(t, -EIO, "stale"), -ESTALE);
}
END_TEST

/* Any negative int is taken: INT_MIN and numbers beyond MAX_ERRNO come out
 * as they went in, and read as unknown. */
START_TEST(scope_fail_with_huge_errnos_round_trips)
{
	static const int errs[] = { INT_MIN, -4096, -100000, -1 };
	char buf[512];
	unsigned i;

	for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		struct rsc_scope *s = open_scope(NULL, "huge");
		struct rsc_error *err = NULL;
		struct probe a;

		defer_probe(s, &a, "a", 0);
		ck_assert_int_eq(rsc_scope_fail(s, errs[i], "odd"), 0);
		ck_assert_int_eq(rsc_scope_close_wait(s, &err), errs[i]);
		ck_assert_ptr_nonnull(err);
		ck_assert_int_eq(rsc_error_errno(err), errs[i]);
		ck_assert_str_eq(a.seen, errs[i] == -1 ? "odd:EPERM" : "odd:E?");
		ck_assert_int_gt(rsc_error_format(err, buf, sizeof(buf)), 0);
		if (errs[i] != -1) {
			ck_assert_str_eq(rsc_err_name(errs[i]), "E?");
			ck_assert_ptr_nonnull(strstr(buf, "Unknown error"));
		}
		rsc_error_free(err);
	}
}
END_TEST

/* op: NULL is "fail"; copied (the caller's buffer may change at once); any
 * length; control bytes kept by the getter, escaped in the text. */
START_TEST(scope_fail_op_is_copied_whole_and_printed_escaped)
{
	static const char nasty[] = "a\nb\x1b[31m\\x1b\x7f\xc2\x9b";
	struct rsc_scope *s = open_scope(NULL, "ops\n");
	struct rsc_scope *n = open_scope(NULL, "null");
	struct rsc_error *err = NULL;
	char op[64], text[1024], *big, *buf;
	size_t big_len = 100000;
	int len;

	snprintf(op, sizeof(op), "%s", nasty);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, op), 0);
	memset(op, 'Z', sizeof(op) - 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	ck_assert_str_eq(rsc_error_op(err), nasty);
	ck_assert_str_eq(rsc_error_scope(err), "ops\n");
	ck_assert_str_eq(rsc_error_entry(err), "");
	len = rsc_error_format(err, text, sizeof(text));
	ck_assert_int_lt(len, (int)sizeof(text));
	ck_assert_str_eq(text, "a\\x0ab\\x1b[31m\\\\x1b\\x7f\\xc2\\x9b: Input/output error (EIO) [entry '' in scope 'ops\\x0a']");
	rsc_error_free(err);

	ck_assert_int_eq(rsc_scope_fail(n, -EIO, NULL), 0);
	ck_assert_int_eq(close_and_read(n, text, sizeof(text)), -EIO);
	ck_assert_str_eq(text, "fail:EIO");

	big = malloc(big_len + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, 'o', big_len);
	big[big_len] = '\0';
	s = open_scope(NULL, "big");
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, big), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	ck_assert_uint_eq(strlen(rsc_error_op(err)), big_len);
	len = rsc_error_format(err, NULL, 0);
	ck_assert_int_gt(len, (int)big_len);
	buf = malloc((size_t)len + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(rsc_error_format(err, buf, (size_t)len + 1), len);
	ck_assert_uint_eq(strlen(buf), (size_t)len);
	ck_assert_int_eq(strncmp(buf, big, big_len), 0);
	free(buf);
	free(big);
	rsc_error_free(err);
}
END_TEST

/* --------------------------------------------------- the error objects */

START_TEST(error_accessors_take_null)
{
	struct rsc_error *dup = (struct rsc_error *)&dup;
	char buf[8] = "xxxxxxx";

	ck_assert_int_eq(rsc_error_errno(NULL), -EINVAL);
	ck_assert_int_eq(rsc_error_depth(NULL), -EINVAL);
	ck_assert_str_eq(rsc_error_op(NULL), "");
	ck_assert_str_eq(rsc_error_entry(NULL), "");
	ck_assert_str_eq(rsc_error_detail(NULL), "");
	ck_assert_str_eq(rsc_error_scope(NULL), "");
	ck_assert_ptr_null(rsc_error_cause(NULL));
	ck_assert_int_eq(rsc_error_format(NULL, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(rsc_error_print(NULL, stdout), -EINVAL);
	ck_assert_int_eq(rsc_error_dup(NULL, &dup), -EINVAL);
	ck_assert_int_eq(rsc_error_dup((const struct rsc_error *)buf, NULL), -EINVAL);
	rsc_error_free(NULL);
	ck_assert_str_eq(rsc_strerror(INT_MIN), "Unknown error");
	ck_assert_str_eq(rsc_strerror(INT_MAX), "Unknown error");
	ck_assert_str_eq(rsc_strerror(0), "Success");
	ck_assert_str_eq(rsc_strerror(EIO), rsc_strerror(-EIO));
	ck_assert_str_eq(rsc_err_name(-ETIME), "ETIME");
	ck_assert_str_eq(rsc_err_name(0), "OK");
}
END_TEST

/* A chain from a closed scope (and a freed loop) stays whole until freed. */
struct keep {
	struct rsc_error *kept;
	const struct rsc_error *lent_close, *lent_on_close;
	int st_close, st_on_close;
	int calls_close, calls_on_close;
	char seq[32];
	int run_res, wait_res, close_self, fail_self, on_close_self, close_other, loop_close, shutdown;
	struct rsc_scope *other;
};

static void keep_on_close(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct keep *k = data;

	(void)s;
	k->calls_on_close++;
	k->st_on_close = status;
	k->lent_on_close = err;
	strcat(k->seq, "o");
}

static void keep_close(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct keep *k = data;
	struct rsc_error *e2 = NULL;

	k->calls_close++;
	k->st_close = status;
	k->lent_close = err;
	strcat(k->seq, "c");
	ck_assert_int_eq(rsc_error_dup(err, &k->kept), 0);
	/* Back into the library from the close callback. */
	k->run_res = rsc_loop_run(t_loop, RSC_RUN_NOWAIT);
	k->wait_res = k->other ? rsc_scope_close_wait(k->other, &e2) : 0;
	ck_assert_ptr_null(e2);
	k->close_self = rsc_scope_close(s, NULL, NULL);
	k->fail_self = rsc_scope_fail(s, -EIO, NULL);
	k->on_close_self = rsc_scope_on_close(s, NULL, NULL);
	k->close_other = k->other ? rsc_scope_close(k->other, NULL, NULL) : 0;
	k->loop_close = rsc_loop_close(t_loop);
	k->shutdown = rsc_loop_shutdown(t_loop, NULL);
}

static void keep_close_quiet(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct keep *k = data;

	(void)s;
	k->calls_close++;
	k->st_close = status;
	ck_assert_int_eq(rsc_error_dup(err, &k->kept), 0);
}

START_TEST(close_callbacks_share_one_chain_and_refuse_reentry)
{
	struct rsc_scope *s = open_scope(NULL, "cbs");
	struct keep k = { 0 };
	struct probe a;
	struct multi m;
	static const enum sqe_kind kk[] = { K_BADF, K_ENOENT };

	k.other = open_scope(NULL, "other");
	defer_probe(s, &a, "a", -EIO);
	multi_init(&m, 2, kk);
	push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(rsc_scope_on_close(s, keep_on_close, &k), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
	ck_assert_int_eq(rsc_scope_close(s, keep_close, &k), 0);
	t_run();
	ck_assert_str_eq(k.seq, "oc");
	ck_assert_int_eq(k.calls_on_close, 1);
	ck_assert_int_eq(k.calls_close, 1);
	ck_assert_ptr_eq(k.lent_close, k.lent_on_close);
	ck_assert_int_eq(k.st_close, k.st_on_close);
	ck_assert_int_eq(k.st_close, -EIO);
	ck_assert_int_eq(k.run_res, -EDEADLK);
	ck_assert_int_eq(k.wait_res, -EDEADLK);
	ck_assert_int_eq(k.close_self, -EALREADY);
	ck_assert_int_eq(k.fail_self, -EALREADY);
	ck_assert_int_eq(k.on_close_self, -EALREADY);
	ck_assert_int_eq(k.close_other, 0);
	ck_assert_int_eq(k.loop_close, -EDEADLK);
	ck_assert_int_eq(k.shutdown, -EDEADLK);
	ck_assert_int_eq(rsc_scope_state(k.other), -ESTALE); /* its close ran */
	ck_assert_str_eq(chain_text(k.kept), "exit:EIO,openat:ENOENT,read:EBADF,body:EPIPE");
	ck_assert_str_eq(chain_names(k.kept), "defer@cbs,multi@cbs,multi@cbs,@cbs");
	ck_assert_int_eq(rsc_error_depth(k.kept), 4);
	ck_assert_int_eq(rsc_loop_close(t_loop), 0);
	t_loop = NULL;
	/* The loop is gone; the chain the caller holds is whole. */
	ck_assert_str_eq(chain_text(k.kept), "exit:EIO,openat:ENOENT,read:EBADF,body:EPIPE");
	ck_assert_str_eq(rsc_error_scope(rsc_error_cause(k.kept)), "cbs");
	rsc_error_free(k.kept);
}
END_TEST

/* The on-close callback of a child its parent closes: the child's own result. */
START_TEST(on_close_of_a_parent_closed_child_gets_the_child_result)
{
	struct rsc_scope *p = open_scope(NULL, "parent");
	struct rsc_scope *c = open_scope(p, "child");
	struct keep k = { 0 };
	struct probe pa, ca;
	char text[1024];

	defer_probe(p, &pa, "pa", -ENOSPC);
	defer_probe(c, &ca, "ca", -EIO);
	ck_assert_int_eq(rsc_scope_on_close(c, keep_on_close, &k), 0);
	ck_assert_int_eq(rsc_scope_fail(p, -EPIPE, "body"), 0);
	ck_assert_int_eq(close_and_read(p, text, sizeof(text)), -ENOSPC);
	ck_assert_int_eq(k.calls_on_close, 1);
	ck_assert_int_eq(k.st_on_close, -EIO);
	ck_assert_str_eq(text, "exit:ENOSPC,exit:EIO,body:EPIPE");
}
END_TEST

/* rsc_error_print(3): -EIO, with the reason, on a stream that cannot take it. */
START_TEST(error_print_to_a_full_or_read_only_stream_is_eio)
{
	struct rsc_scope *s = open_scope(NULL, "print");
	struct rsc_error *err = NULL;
	FILE *full, *ro;

	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "body"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	full = fopen("/dev/full", "we");
	ck_assert_ptr_nonnull(full);
	ck_assert_int_eq(rsc_error_print(err, full), -EIO);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_error_print"));
	fclose(full);
	ro = fopen("/dev/null", "re");
	ck_assert_ptr_nonnull(ro);
	ck_assert_int_eq(rsc_error_print(err, ro), -EIO);
	fclose(ro);
	ck_assert_int_eq(rsc_error_print(err, NULL), -EINVAL);
	rsc_error_free(err);
}
END_TEST

static int fail_eio(struct rsc_entry *e, const struct rsc_error *pending, void *arg);

/* A chain of @n errors of scope @name, owned by the caller. */
static struct rsc_error *chain_of(const char *name, int n)
{
	struct rsc_scope *s = open_scope(NULL, name);
	struct rsc_error *err = NULL;
	int i;

	for (i = 0; i < n - 1; i++)
		ck_assert_int_eq(rsc_defer(s, fail_eio, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	ck_assert_int_eq(rsc_error_depth(err), n);
	return err;
}

struct printer {
	const struct rsc_error *chain;
	FILE *out;
	int rounds, failures;
};

/* Another thread's hold on the chain, and its prints (rsc_error_dup(3): a
 * chain the caller owns may be duplicated, freed and printed on any thread). */
static void *print_rounds(void *arg)
{
	struct printer *pr = arg;
	int i;

	for (i = 0; i < pr->rounds; i++) {
		struct rsc_error *mine = NULL;

		if (rsc_error_dup(pr->chain, &mine) < 0 || rsc_error_print(mine, pr->out) < 0)
			pr->failures++;
		rsc_error_free(mine);
	}
	return NULL;
}

/*
 * rsc_error_print(3): the stream's lock is held throughout, so two threads
 * printing long chains to one unbuffered stream never mix their lines: the
 * text is whole chains, one after the other.
 */
START_TEST(two_threads_printing_chains_never_mix_their_lines)
{
	enum { DEPTH = 200, ROUNDS = 20 };
	struct printer pa = { 0 }, pb = { 0 };
	struct rsc_error *a = chain_of("aaaa", DEPTH), *b = chain_of("bbbb", DEPTH);
	pthread_t ta, tb;
	char line[256], scope = 0;
	int lines = 0, in_chain = 0;
	FILE *f = tmpfile();

	ck_assert_ptr_nonnull(f);
	setvbuf(f, NULL, _IONBF, 0);
	pa = (struct printer){ a, f, ROUNDS, 0 };
	pb = (struct printer){ b, f, ROUNDS, 0 };
	ck_assert_int_eq(pthread_create(&ta, NULL, print_rounds, &pa), 0);
	ck_assert_int_eq(pthread_create(&tb, NULL, print_rounds, &pb), 0);
	ck_assert_int_eq(pthread_join(ta, NULL), 0);
	ck_assert_int_eq(pthread_join(tb, NULL), 0);
	ck_assert_int_eq(pa.failures + pb.failures, 0);
	rsc_error_free(a);
	rsc_error_free(b);
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		const char *sc = strstr(line, "in scope '");

		ck_assert_msg(sc && strlen(line) > 1 && line[strlen(line) - 1] == '\n', "line %d: %s", lines, line);
		if (!strncmp(line, "error: ", 7)) {
			ck_assert_msg(in_chain == 0, "line %d: a chain began inside another", lines);
			scope = sc[10];
		} else {
			ck_assert_msg(!strncmp(line, "  caused by: ", 13), "line %d: %s", lines, line);
			ck_assert_msg(sc[10] == scope, "line %d: scope %c inside a chain of %c", lines, sc[10], scope);
		}
		in_chain = (in_chain + 1) % DEPTH;
		lines++;
	}
	fclose(f);
	ck_assert_int_eq(lines, 2 * ROUNDS * DEPTH);
}
END_TEST

/* rsc_error_format(3) cut short: NUL-terminated, never half an escape, the whole length returned. */
START_TEST(error_format_cut_never_splits_an_escape)
{
	struct rsc_scope *s = open_scope(NULL, "cut");
	struct rsc_error *err = NULL;
	char whole[256], buf[256];
	int len;
	size_t cut;

	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "ab\x1b" "cd"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	len = rsc_error_format(err, whole, sizeof(whole));
	ck_assert_int_eq(len, (int)strlen(whole));
	for (cut = 1; cut <= (size_t)len + 1; cut++) {
		memset(buf, 'Q', sizeof(buf));
		ck_assert_int_eq(rsc_error_format(err, buf, cut), len);
		ck_assert_uint_lt(strlen(buf), cut);
		ck_assert_int_eq(strncmp(buf, whole, strlen(buf)), 0);
		/* "ab\x1bcd": the text holds "ab" or "ab\\x1b", nothing between. */
		if (cut <= 6)
			ck_assert_uint_le(strlen(buf), 2);
		ck_assert_int_eq(buf[cut], 'Q');
	}
	rsc_error_free(err);
}
END_TEST

/* 10,000 releases each failing (every tenth by two SQEs): nothing lost,
 * bounded time, and the text and print cover all of it. */
static int fail_eio(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return -EIO;
}

START_TEST(ten_thousand_failing_releases_keep_every_error)
{
	static const enum sqe_kind k[] = { K_BADF, K_ENOENT };
	int n = t_under_valgrind() ? 1000 : 10000, i, depth, lines = 0, c;
	struct rsc_scope *s = open_scope(NULL, "long");
	struct rsc_error *err = NULL, *e;
	struct multi *m = calloc((size_t)n / 10, sizeof(*m));
	long t0 = t_now_ms();
	FILE *f;

	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0); /* 30,000 events: past the recorder */
	for (i = 0; i < n; i++) {
		if (i % 10 == 0) {
			multi_init(&m[i / 10], 2, k);
			ck_assert_int_eq(rsc_push(s, &multi_mgr, &m[i / 10], NULL), 0);
		} else {
			ck_assert_int_eq(rsc_defer(s, fail_eio, NULL, NULL), 0);
		}
	}
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	depth = rsc_error_depth(err);
	ck_assert_int_eq(depth, n + n / 10 + 1);
	for (e = err; rsc_error_cause(e); e = (struct rsc_error *)rsc_error_cause(e))
		;
	ck_assert_str_eq(chain_text(e), "body:EPIPE");
	/* The oldest entry's two SQEs on top, then the defers above it, newest last. */
	ck_assert_int_eq(strncmp(chain_text(err), "openat:ENOENT,read:EBADF,exit:EIO,exit:EIO,", 43), 0);
	f = tmpfile();
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_error_print(err, f), 0);
	rewind(f);
	while ((c = fgetc(f)) != EOF)
		lines += c == '\n';
	fclose(f);
	ck_assert_int_eq(lines, depth);
	ck_assert_int_gt(rsc_error_format(err, NULL, 0), depth * 40);
	rsc_error_free(err);
	free(m);
	ck_assert_int_lt(t_now_ms() - t0, 15000);
}
END_TEST

/*
 * 10,000 nested scopes, each failing on its own, innermost first: each child
 * unwinds alone, and each parent puts the child's chain before its own error
 * (rsc_error_cause(3)). The chain is every error, innermost first, and the
 * unwind stays linear: a copy of the chain below at every level was
 * quadratic, 3.5 GB and tens of seconds at this depth.
 */
START_TEST(deep_tree_failing_inside_out_stays_linear)
{
	int n = t_under_valgrind() ? 1000 : 10000, i;
	struct rsc_scope **s = calloc((size_t)n, sizeof(*s));
	const struct rsc_error *x;
	struct rsc_error *err = NULL;
	long t0;
	char op[16];

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0);
	for (i = 0; i < n; i++)
		s[i] = open_scope(i ? s[i - 1] : NULL, "deep");
	t0 = t_now_ms();
	for (i = n - 1; i >= 0; i--) {
		snprintf(op, sizeof(op), "f%d", i);
		ck_assert_int_eq(rsc_scope_fail(s[i], -EIO, op), 0);
	}
	ck_assert_int_eq(rsc_scope_close_wait(s[0], &err), -EIO);
	ck_assert_int_eq(rsc_error_depth(err), n);
	for (x = err, i = n - 1; x; x = rsc_error_cause(x), i--) {
		snprintf(op, sizeof(op), "f%d", i);
		ck_assert_str_eq(rsc_error_op(x), op);
	}
	rsc_error_free(err);
	free(s);
	ck_assert_int_lt(t_now_ms() - t0, 10000);
}
END_TEST

/* ------------------------------------ cancellation and deadlines */

/* A deadline's unwind has -ETIMEDOUT ("deadline") pending; exits raise on it. */
START_TEST(deadline_pending_is_etimedout_and_raises_stack_on_it)
{
	struct rsc_scope *s = open_scope(NULL, "late");
	static const enum sqe_kind k[] = { K_BADF };
	struct probe a;
	struct multi m;
	char text[1024];
	struct keep kp = { 0 };

	defer_probe(s, &a, "a", 0);
	multi_init(&m, 1, k);
	push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(rsc_scope_on_close(s, keep_on_close, &kp), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 5, 0), 0);
	t_run();
	ck_assert_int_eq(kp.calls_on_close, 1);
	ck_assert_str_eq(m.seen, "deadline:ETIMEDOUT");
	ck_assert_str_eq(a.seen, "read:EBADF,deadline:ETIMEDOUT");
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -EBADF);
	ck_assert_str_eq(text, "read:EBADF,deadline:ETIMEDOUT");
}
END_TEST

/* RSC_DEADLINE_MOVE_ON: nothing pending, but what the releases raise is the
 * result; a parent's deadline reaches its child's exits as their pending. */
START_TEST(move_on_deadline_has_nothing_pending_but_keeps_raises)
{
	struct rsc_scope *p = open_scope(NULL, "parent");
	struct rsc_scope *c = open_scope(p, "child");
	struct rsc_scope *m = open_scope(NULL, "moveon");
	struct probe pa, ca, ma, mb;
	char text[1024];

	defer_probe(p, &pa, "pa", 0);
	defer_probe(c, &ca, "ca", -EIO);
	defer_probe(m, &ma, "ma", 0);
	defer_probe(m, &mb, "mb", -ENOSPC);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 5, 0), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(m, 5, RSC_DEADLINE_MOVE_ON), 0);
	t_run();
	ck_assert_str_eq(ca.seen, "deadline:ETIMEDOUT");
	ck_assert_str_eq(pa.seen, "exit:EIO,deadline:ETIMEDOUT");
	ck_assert_str_eq(mb.seen, "");
	ck_assert_str_eq(ma.seen, "exit:ENOSPC");
	ck_assert_int_eq(close_and_read(p, text, sizeof(text)), -EIO);
	ck_assert_str_eq(text, "exit:EIO,deadline:ETIMEDOUT");
	ck_assert_int_eq(close_and_read(m, text, sizeof(text)), -ENOSPC);
	ck_assert_str_eq(text, "exit:ENOSPC");
}
END_TEST

/* An acquire cancelled by the body's failure adds no -ECANCELED of its own:
 * the chain is the body's error and what the releases raised. */
struct pipe_read {
	int rfd;
	char buf[4];
	int exits;
};

static int pread_enter(struct rsc_entry *e, void *arg)
{
	struct pipe_read *r = arg;
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	if (ret < 0)
		return ret;
	io_uring_prep_read(sqe, r->rfd, r->buf, 1, 0);
	return 0;
}

static int pread_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	((struct pipe_read *)arg)->exits++;
	return 0;
}

static const struct rsc_manager pread_mgr = {
	sizeof(struct rsc_manager), 0, "pread", pread_enter, pread_exit
};

START_TEST(cancelled_acquire_adds_no_error_to_the_body_failure)
{
	struct rsc_scope *s = open_scope(NULL, "cancel");
	struct pipe_read r = { 0 };
	struct rsc_entry *e;
	struct probe a;
	char text[1024];
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	r.rfd = p[0];
	defer_probe(s, &a, "a", -EIO);
	ck_assert_int_eq(rsc_push(s, &pread_mgr, &r, &e), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0); /* the read is in the kernel */
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERING);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -EIO);
	ck_assert_int_eq(rsc_entry_state(e), -ESTALE);
	ck_assert_int_eq(r.exits, 0);
	ck_assert_str_eq(a.seen, "body:EPIPE");
	ck_assert_str_eq(text, "exit:EIO,body:EPIPE");
	close(p[0]);
	close(p[1]);
}
END_TEST

/* rsc_loop_shutdown(3): each scope's errors in the one chain it returns. */
START_TEST(shutdown_chain_carries_every_failed_release)
{
	static const enum sqe_kind k[] = { K_BADF, K_ENOENT };
	struct rsc_scope *a = open_scope(NULL, "a");
	struct rsc_scope *b = open_scope(NULL, "b");
	struct rsc_error *err = NULL;
	struct multi m;
	struct probe pa;

	defer_probe(a, &pa, "pa", -EIO);
	multi_init(&m, 2, k);
	push_multi(b, &multi_mgr, &m);
	ck_assert_int_eq(rsc_loop_shutdown(t_loop, &err), -EIO);
	t_loop = NULL;
	ck_assert_str_eq(chain_text(err), "exit:EIO,openat:ENOENT,read:EBADF");
	ck_assert_str_eq(chain_names(err), "defer@a,multi@b,multi@b");
	ck_assert_str_eq(m.seen, "");
	ck_assert_str_eq(pa.seen, "openat:ENOENT,read:EBADF");
	rsc_error_free(err);
}
END_TEST

/* --------------------------------------- what an exit returns, more */

/* rsc_push(3): only RSC_EXIT_SUPPRESS suppresses; any other positive value
 * counts as 0; any negative int is raised as it is ("exit"). */
START_TEST(exit_return_values_other_than_suppress)
{
	struct rsc_scope *s = open_scope(NULL, "rets");
	struct probe p[4];
	char text[1024];

	defer_probe(s, &p[0], "p0", INT_MIN);
	defer_probe(s, &p[1], "p1", INT_MAX);
	defer_probe(s, &p[2], "p2", 2);
	defer_probe(s, &p[3], "p3", RSC_EXIT_SUPPRESS + 1);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), INT_MIN);
	ck_assert_str_eq(p[1].seen, "body:EPIPE"); /* not suppressed by 3, 2 or INT_MAX */
	ck_assert_str_eq(p[0].seen, "body:EPIPE");
	ck_assert_str_eq(text, "exit:E?,body:EPIPE");
}
END_TEST

/* An early release still in flight when the body fails: the unwind waits
 * for it, and its error (no callback) joins the chain. */
START_TEST(early_release_in_flight_when_the_body_fails_joins_the_chain)
{
	static const enum sqe_kind slow[] = { K_SLOW };
	struct rsc_scope *s = open_scope(NULL, "inflight");
	struct rsc_entry *e;
	struct probe a;
	struct multi m;
	char text[1024];

	defer_probe(s, &a, "a", 0);
	multi_init(&m, 1, slow);
	e = push_multi(s, &multi_mgr, &m);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -ETIME);
	ck_assert_str_eq(m.seen, ""); /* released early: nothing pending for it */
	ck_assert_str_eq(text, "timeout:ETIME,body:EPIPE");
	ck_assert_int_eq(a.calls, 1);
}
END_TEST

/* An on-close callback set from inside an exit of its own scope's unwind
 * still runs, with the final result; a close asked from it takes effect. */
struct reclose {
	struct rsc_scope *s;
	struct keep k;
	int close_res;
};

static int set_on_close_from_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	struct reclose *r = arg;

	(void)e;
	(void)pending;
	ck_assert_int_eq(rsc_scope_on_close(r->s, keep_on_close, &r->k), 0);
	return -EIO;
}

static void close_from_on_close(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct reclose *r = data;

	keep_on_close(s, status, err, &r->k);
	r->k.lent_close = err;
	r->close_res = rsc_scope_close(s, keep_close_quiet, &r->k);
}

START_TEST(on_close_set_from_an_exit_and_closing_from_on_close)
{
	struct reclose r = { 0 };
	struct rsc_error *kept;

	r.s = open_scope(NULL, "self");
	ck_assert_int_eq(rsc_defer(r.s, set_on_close_from_exit, &r, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(r.s, -EPIPE, "body"), 0);
	t_run();
	ck_assert_int_eq(r.k.calls_on_close, 1);
	ck_assert_int_eq(r.k.st_on_close, -EIO);
	ck_assert_int_eq(rsc_scope_state(r.s), RSC_SCOPE_UNWOUND);
	/* Unwound: too late for an on-close callback. */
	ck_assert_int_eq(rsc_scope_on_close(r.s, close_from_on_close, &r), -EALREADY);
	ck_assert_int_eq(rsc_scope_close(r.s, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_state(r.s), -ESTALE);
	ck_assert_ptr_null(rsc_scope_error(r.s));
	ck_assert_ptr_null(rsc_scope_error(NULL));

	/* A failed scope closing itself from its on-close callback: the close
	 * callback gets the same chain, after it. */
	memset(&r, 0, sizeof(r));
	r.s = open_scope(NULL, "self2");
	ck_assert_int_eq(rsc_defer(r.s, fail_eio, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_on_close(r.s, close_from_on_close, &r), 0);
	ck_assert_int_eq(rsc_scope_fail(r.s, -EPIPE, "body"), 0);
	t_run();
	ck_assert_int_eq(r.close_res, 0);
	ck_assert_int_eq(r.k.calls_on_close, 1);
	ck_assert_int_eq(r.k.calls_close, 1);
	ck_assert_int_eq(r.k.st_close, -EIO);
	kept = r.k.kept;
	ck_assert_str_eq(chain_text(kept), "exit:EIO,body:EPIPE");
	rsc_error_free(kept);
	ck_assert_int_eq(rsc_scope_state(r.s), -ESTALE);
}
END_TEST

/* rsc_error_print(3)'s lines, exactly, with controls in every field. */
static int ctl_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
}

static int ctl_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return -EIO;
}

static const struct rsc_manager ctl_mgr = {
	sizeof(struct rsc_manager), 0, "m\x1b]0;x\a", ctl_enter, ctl_exit
};

START_TEST(error_print_escapes_every_field_one_line_per_error)
{
	struct rsc_scope *s = open_scope(NULL, "sc\r\n");
	struct rsc_error *err = NULL;
	char *text;
	size_t len;
	FILE *f;

	ck_assert_int_eq(rsc_push(s, &ctl_mgr, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -ENOENT, "op\tx"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	f = tmpfile();
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_error_print(err, f), 0);
	len = (size_t)ftell(f);
	rewind(f);
	text = calloc(1, len + 1);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(fread(text, 1, len, f), len);
	fclose(f);
	ck_assert_str_eq(text,
			 "error: exit: Input/output error (EIO) [entry 'm\\x1b]0;x\\x07' in scope 'sc\\x0d\\x0a']\n"
			 "  caused by: op\\x09x: No such file or directory (ENOENT) [entry '' in scope 'sc\\x0d\\x0a']\n");
	free(text);
	/* len 0 with a buffer: measures, writes nothing. */
	{
		char buf[4] = "abc";

		ck_assert_int_gt(rsc_error_format(err, buf, 0), 100);
		ck_assert_str_eq(buf, "abc");
	}
	rsc_error_free(err);
}
END_TEST

/*
 * rsc_scope_close_graceful(3): during the grace, "a failure (rsc_scope_fail(3))
 * of the scope or of a scope below it starts that scope's unwind at once".
 */
START_TEST(scope_fail_during_a_grace_starts_the_unwind_with_its_error)
{
	struct rsc_scope *s = open_scope(NULL, "grace");
	struct rsc_entry *e;
	struct keep k = { 0 };
	struct probe a;
	char buf[4];
	int peer, res = 1;
	long t0;

	defer_probe(s, &a, "a", 0);
	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_read(e, buf, sizeof(buf), -1, t_store_res, &res), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 3000, keep_close_quiet, &k), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(k.calls_close, 0); /* the read holds the grace */
	t0 = t_now_ms();
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "body"), 0);
	t_run();
	ck_assert_int_lt(t_now_ms() - t0, 1500);
	ck_assert_int_eq(k.calls_close, 1);
	ck_assert_int_eq(k.st_close, -EPROTO);
	ck_assert_str_eq(a.seen, "body:EPROTO");
	ck_assert_str_eq(chain_text(k.kept), "body:EPROTO");
	ck_assert_int_eq(res, -ECANCELED);
	rsc_error_free(k.kept);
	close(peer);
}
END_TEST

/* ------------------------------------------------- without memory */

/* rsc_scope_fail(3): no memory for the error is -ENOMEM, and nothing changes. */
START_TEST(scope_fail_without_memory_is_enomem_and_changes_nothing)
{
	struct rsc_scope *s = open_scope(NULL, "nomem");
	struct probe a, b;
	char text[1024];

	defer_probe(s, &a, "a", 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "alloc:1:ENOMEM"), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), -ENOMEM);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_ptr_null(rsc_scope_error(s));
	t_run();
	ck_assert_int_eq(a.calls, 0); /* no unwind started */
	defer_probe(s, &b, "b", 0);   /* still open for pushes */
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
	ck_assert_int_eq(close_and_read(s, text, sizeof(text)), -EPIPE);
	ck_assert_str_eq(a.seen, "body:EPIPE");
}
END_TEST

/* Length of @err's chain, 0 for none. */
static long long depth_of(const struct rsc_error *err)
{
	return err ? rsc_error_depth(err) : 0;
}

/*
 * Each allocation of an unwind failing in turn: an error the chain cannot
 * take is never left out silently. What the chain holds plus what
 * RSC_CTR_ERRORS_LOST counts is every error raised (rsc_fault_set(3)).
 */
START_TEST(errors_left_out_without_memory_are_counted)
{
	int nth, lost_somewhere = 0;

	for (nth = 1; nth <= 8; nth++) {
		struct rsc_scope *s = open_scope(NULL, "oom");
		struct rsc_error *err = NULL;
		long long lost = rsc_loop_counter(t_loop, RSC_CTR_ERRORS_LOST);
		char rule[32];
		int i, st;

		for (i = 0; i < 4; i++)
			ck_assert_int_eq(rsc_defer(s, fail_eio, NULL, NULL), 0);
		ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, "body"), 0);
		snprintf(rule, sizeof(rule), "alloc:%d:ENOMEM", nth);
		ck_assert_int_eq(rsc_fault_set(t_loop, rule), 0);
		st = rsc_scope_close_wait(s, &err);
		ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
		ck_assert_int_ne(st, -ENOMEM);
		ck_assert_int_lt(st, 0); /* never success for a failure */
		lost = rsc_loop_counter(t_loop, RSC_CTR_ERRORS_LOST) - lost;
		ck_assert_msg(depth_of(err) + lost == 5, "allocation %d failing: chain %s (depth %lld), %lld lost",
			      nth, chain_text(err), depth_of(err), lost);
		lost_somewhere |= lost > 0;
		rsc_error_free(err);
	}
	ck_assert(lost_somewhere);
}
END_TEST

/* Keeps the chain an on-close callback is lent. */
static void dup_on_close(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)status;
	ck_assert_int_eq(rsc_error_dup(err, (struct rsc_error **)data), 0);
}

/*
 * The same where a child's result joins its parent's chain: a chain someone
 * holds (here a duplicate from the child's on-close callback) is copied, one
 * node per link, and stays as it was (chains are immutable).
 */
START_TEST(child_result_left_out_without_memory_is_counted)
{
	int nth, lost_somewhere = 0;

	for (nth = 1; nth <= 8; nth++) {
		struct rsc_scope *p = open_scope(NULL, "parent");
		struct rsc_scope *c = open_scope(p, "child");
		struct rsc_error *err = NULL, *held = NULL;
		long long lost;
		char rule[32];
		int i, st;

		for (i = 0; i < 2; i++)
			ck_assert_int_eq(rsc_defer(c, fail_eio, NULL, NULL), 0);
		ck_assert_int_eq(rsc_scope_on_close(c, dup_on_close, &held), 0);
		ck_assert_int_eq(rsc_scope_fail(c, -ENOENT, "lookup"), 0);
		t_run(); /* the child has unwound on its own: 3 errors */
		ck_assert_str_eq(chain_text(held), "exit:EIO,exit:EIO,lookup:ENOENT");
		ck_assert_int_eq(rsc_scope_fail(p, -EPIPE, "body"), 0);
		lost = rsc_loop_counter(t_loop, RSC_CTR_ERRORS_LOST);
		snprintf(rule, sizeof(rule), "alloc:%d:ENOMEM", nth);
		ck_assert_int_eq(rsc_fault_set(t_loop, rule), 0);
		st = rsc_scope_close_wait(p, &err);
		ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
		ck_assert_int_lt(st, 0);
		lost = rsc_loop_counter(t_loop, RSC_CTR_ERRORS_LOST) - lost;
		ck_assert_msg(depth_of(err) + lost == 4, "allocation %d failing: chain %s, %lld lost",
			      nth, chain_text(err), lost);
		lost_somewhere |= lost > 0;
		ck_assert_str_eq(chain_text(held), "exit:EIO,exit:EIO,lookup:ENOENT");
		rsc_error_free(held);
		rsc_error_free(err);
	}
	ck_assert(lost_somewhere);
}
END_TEST

/* ---- a failure queued in a tree whose close frees it first -------------- */

struct tree_closed {
	int calls, status;
};

static void note_tree_closed(struct rsc_scope *s, int status, const struct rsc_error *err,
			     void *data)
{
	struct tree_closed *c = data;

	(void)s;
	(void)err;
	c->calls++;
	c->status = status;
}

/* s0 > s1 > s2: s0's close requested, s1's close with a callback, then s2
 * failed. s2's failure is queued for the loop's turn, but the unwind of
 * s0's tree reaches s2 and frees the tree in that same turn: the queue
 * kept the freed s2 (found by the soak under ASan, on the application's
 * ring; a use after free of a pooled scope). */
static void fail_queued_in_a_closing_tree(struct rsc_loop *loop, struct tree_closed *c1)
{
	struct rsc_scope *s0, *s1, *s2;

	ck_assert_int_eq(rsc_scope_open(loop, NULL, "s0", &s0), 0);
	ck_assert_int_eq(rsc_scope_open(loop, s0, "s1", &s1), 0);
	ck_assert_int_eq(rsc_scope_open(loop, s1, "s2", &s2), 0);
	ck_assert_int_eq(rsc_scope_close(s0, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(s1, note_tree_closed, c1), 0);
	ck_assert_int_eq(rsc_scope_fail(s2, -ENOTCONN, "parse"), 0);
}

START_TEST(failure_queued_in_a_tree_freed_in_the_same_turn_is_dropped_with_it)
{
	struct tree_closed c1 = { 0 };
	struct rsc_scope *after;
	int fd;

	fail_queued_in_a_closing_tree(t_loop, &c1);
	t_run();
	ck_assert_int_eq(c1.calls, 1);
	ck_assert_int_eq(c1.status, -ENOTCONN);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
	/* The pool gives the freed scopes out again: the queue must not name them. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "after", &after), 0);
	fd = rsc_open(after, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL);
	ck_assert_int_eq(fd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(after, NULL), 0);
}
END_TEST

START_TEST(failure_queued_in_a_tree_freed_on_the_applications_ring)
{
	struct tree_closed c1 = { 0 };
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	struct rsc_loop *loop;
	int turns;

	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&loop, &ring, 0), 0);
	fail_queued_in_a_closing_tree(loop, &c1);
	for (turns = 0; turns < 100 && (c1.calls == 0 || rsc_loop_alive(loop) > 0); turns++) {
		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(io_uring_submit_and_get_events(&ring), 0);
		while (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe) {
			ck_assert_int_eq(rsc_loop_dispatch(loop, cqe), 1);
			io_uring_cqe_seen(&ring, cqe);
		}
	}
	ck_assert_int_eq(c1.calls, 1);
	ck_assert_int_eq(c1.status, -ENOTCONN);
	ck_assert_int_eq(rsc_loop_alive(loop), 0);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
	io_uring_queue_exit(&ring);
}
END_TEST

Suite *make_unwind_errors_suite(void)
{
	Suite *s = suite_create("unwind_errors");
	TCase *tc = tcase_create("unwind_errors");

	t_add_fixture(tc);
	tcase_add_test(tc, three_failed_sqes_of_one_release_each_reach_the_chain);
	tcase_add_test(tc, failure_queued_in_a_tree_freed_in_the_same_turn_is_dropped_with_it);
	tcase_add_test(tc, failure_queued_in_a_tree_freed_on_the_applications_ring);
	tcase_add_test(tc, failed_sqes_are_reported_in_sqe_order_not_completion_order);
	tcase_add_test(tc, failed_sqes_stack_on_the_body_failure_for_the_exits_below);
	tcase_add_test(tc, exit_return_and_its_failed_sqes_all_reach_the_chain);
	tcase_add_test(tc, suppressing_exit_whose_sqes_fail_raises_each_over_the_pending);
	tcase_add_test(tc, sqe_cancelled_by_a_failed_link_is_reported_too);
	tcase_add_test(tc, unordered_batch_keeps_lifo_between_entries_and_sqe_order_within);
	tcase_add_test(tc, unordered_suppression_keeps_an_error_it_never_saw);
	tcase_add_test(tc, unordered_suppression_drops_only_what_it_saw);
	tcase_add_test(tc, release_wait_chain_holds_every_failed_sqe);
	tcase_add_test(tc, early_release_without_callback_puts_every_failure_in_the_chain);
	tcase_add_test(tc, early_release_callback_hears_the_first_failure);
	if (t_has_fault_injection())
		tcase_add_test(tc, fsync_and_close_both_failing_are_both_reported);
	else
		printf("SKIP fsync_and_close_both_failing_are_both_reported: this build has no fault injection (configure --enable-fault-injection)\n");
	tcase_add_test(tc, defer_suppressing_the_body_failure_leaves_a_clean_result);
	tcase_add_test(tc, suppress_raise_suppress_raise_alternates_as_python_does);
	tcase_add_test(tc, scope_error_during_an_exit_is_the_pending_chain);
	tcase_add_test(tc, child_raising_inside_a_failed_parent_keeps_the_order);
	tcase_add_test(tc, child_failed_on_its_own_comes_before_the_parent_error);
	tcase_add_test(tc, chain_kept_by_an_exit_is_immutable_when_the_parent_joins_it);
	tcase_add_test(tc, child_exit_suppressing_the_parent_error_clears_it_for_the_parent);
	tcase_add_test(tc, exit_of_a_parent_closed_child_touching_its_scope);
	tcase_add_test(tc, exit_failing_an_older_sibling_mid_unwind);
	tcase_add_test(tc, scope_fail_refuses_bad_arguments_and_changes_nothing);
	tcase_add_test(tc, scope_fail_twice_or_after_close_is_ealready_and_keeps_the_first);
	tcase_add_test(tc, scope_fail_with_huge_errnos_round_trips);
	tcase_add_test(tc, scope_fail_op_is_copied_whole_and_printed_escaped);
	tcase_add_test(tc, error_accessors_take_null);
	tcase_add_test(tc, close_callbacks_share_one_chain_and_refuse_reentry);
	tcase_add_test(tc, on_close_of_a_parent_closed_child_gets_the_child_result);
	tcase_add_test(tc, error_print_to_a_full_or_read_only_stream_is_eio);
	tcase_add_test(tc, error_format_cut_never_splits_an_escape);
	tcase_add_test(tc, two_threads_printing_chains_never_mix_their_lines);
	tcase_add_test(tc, ten_thousand_failing_releases_keep_every_error);
	tcase_add_test(tc, deep_tree_failing_inside_out_stays_linear);
	tcase_add_test(tc, deadline_pending_is_etimedout_and_raises_stack_on_it);
	tcase_add_test(tc, move_on_deadline_has_nothing_pending_but_keeps_raises);
	tcase_add_test(tc, cancelled_acquire_adds_no_error_to_the_body_failure);
	tcase_add_test(tc, shutdown_chain_carries_every_failed_release);
	tcase_add_test(tc, exit_return_values_other_than_suppress);
	tcase_add_test(tc, early_release_in_flight_when_the_body_fails_joins_the_chain);
	tcase_add_test(tc, on_close_set_from_an_exit_and_closing_from_on_close);
	tcase_add_test(tc, error_print_escapes_every_field_one_line_per_error);
	tcase_add_test(tc, scope_fail_during_a_grace_starts_the_unwind_with_its_error);
	if (t_has_fault_injection()) {
		tcase_add_test(tc, scope_fail_without_memory_is_enomem_and_changes_nothing);
		tcase_add_test(tc, errors_left_out_without_memory_are_counted);
		tcase_add_test(tc, child_result_left_out_without_memory_is_counted);
	} else {
		printf("SKIP scope_fail_without_memory_is_enomem_and_changes_nothing, errors_left_out_without_memory_are_counted, child_result_left_out_without_memory_is_counted: this build has no fault injection (configure --enable-fault-injection)\n");
	}
	suite_add_tcase(s, tc);
	return s;
}
