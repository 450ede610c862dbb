/* SPDX-License-Identifier: MIT */
/*
 * Hostile acceptance probes: the awkward cases of the newest APIs, each
 * checked against what DESIGN.md and the man pages promise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tmgr.h"

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* ---------------------------------------------------------------- adopt */

START_TEST(adopt_detach_readopt_keeps_the_descriptor_usable)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *e2;
	int p[2], fd, before;
	char c = 0;

	ck_assert_int_eq(pipe2(p, 0), 0);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	ck_assert(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
	/* Twice, or through another scope: two owners would close it twice. */
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e2), -EEXIST);
	ck_assert_ptr_null(e2);
	fd = rsc_entry_detach(e);
	ck_assert_int_eq(fd, p[0]);
	ck_assert_int_eq(rsc_entry_detach(e), -ESTALE);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_entry_set_data(e, &c), -ESTALE);
	ck_assert_ptr_null(rsc_entry_data(e));
	/* Still open and usable after a turn of the loop and a close. */
	t_run();
	ck_assert(fd_open(fd));
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(read(fd, &c, 1), 1);
	ck_assert_int_eq(c, 'x');
	/* Adopted again, by the same scope: the ledger forgot the old owner. */
	ck_assert_int_eq(rsc_adopt(s, fd, RSC_NO_CLOEXEC, &e2), 0);
	ck_assert_int_eq(rsc_entry_fd(e2), fd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(!fd_open(fd));
	ck_assert_int_eq(t_fd_count(), before - 1);
	close(p[1]);
}
END_TEST

START_TEST(adopt_refuses_bad_arguments_and_leaves_the_fd_alone)
{
	struct rsc_scope *s;
	struct rsc_entry *e = (struct rsc_entry *)1;
	int efd = eventfd(0, 0);

	ck_assert_int_ge(efd, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(NULL, efd, 0, &e), -EINVAL);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_adopt((struct rsc_scope *)0x12345, efd, 0, &e), -EINVAL);
	ck_assert_int_eq(rsc_adopt(s, efd, 0x80000000u, &e), -EINVAL);
	ck_assert_int_eq(rsc_adopt(s, -1, 0, &e), -EBADF);
	ck_assert_int_eq(rsc_adopt(s, 1000000, 0, &e), -EBADF);
	ck_assert_int_eq(rsc_adopt(s, 2000000000, 0, &e), -EBADF);
	/* Left as it was: not made close-on-exec by a failed call. */
	ck_assert_int_eq(fcntl(efd, F_GETFD) & FD_CLOEXEC, 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0x80000000u, NULL), -EINVAL);
	ck_assert_int_eq(fcntl(efd, F_GETFD) & FD_CLOEXEC, 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &e), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EIO);
	ck_assert(fd_open(efd));
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &e), -ESTALE);
	ck_assert(fd_open(efd));
	close(efd);
}
END_TEST

/* The owner's release has started but its close waits for its I/O: still owned. */
static void io_ignore(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)res;
	(void)buf;
	(*(int *)data)++;
}

START_TEST(adopt_is_refused_until_the_owners_close_is_submitted)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *e2;
	int p[2], calls = 0;
	static char buf[8];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_read(e, buf, sizeof(buf), -1, io_ignore, &calls), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	/* Its release is waiting for the read's cancel: the entry still owns it. */
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e2), -EEXIST);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(calls, 1);
	ck_assert(!fd_open(p[0]));
	close(p[1]);
}
END_TEST

START_TEST(adopt_shutdown_on_release_of_a_non_socket_still_closes)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	int efd;

	if (!t_kernel_has(IORING_OP_SHUTDOWN))
		return; /* before the eventfd: nothing of the test's is left open */
	efd = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, efd, RSC_SHUTDOWN_ON_RELEASE, &e), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), -ENOTSOCK);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "shutdown");
	rsc_error_free(err);
	ck_assert(!fd_open(efd));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(adopt_shutdown_on_release_sends_eof_despite_a_dup)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int sv[2], dupfd;
	char c;

	if (!t_kernel_has(IORING_OP_SHUTDOWN))
		return;
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	dupfd = dup(sv[0]);
	ck_assert_int_ge(dupfd, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], RSC_SHUTDOWN_ON_RELEASE, &e), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(!fd_open(sv[0]));
	ck_assert(fd_open(dupfd));
	ck_assert_int_eq(recv(sv[1], &c, 1, MSG_DONTWAIT), 0); /* EOF */
	close(dupfd);
	close(sv[1]);
}
END_TEST

/* --------------------------------------------------------------- detach */

static int defer_nop(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	(void)e;
	(void)p;
	if (arg)
		(*(int *)arg)++;
	return 0;
}

START_TEST(detach_refuses_what_it_cannot_hand_back)
{
	struct rsc_scope *s, *c;
	struct rsc_entry *d, *f, *t;
	int runs = 0;

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "c", &c), 0);
	ck_assert_int_eq(rsc_defer(s, defer_nop, &runs, &d), 0);
	ck_assert_int_eq(rsc_entry_detach(d), -EBADF);
	ck_assert_int_eq(rsc_timer(s, 100000, io_ignore, &runs, &t), 0);
	/* Both apply while it runs (it holds no descriptor, and is busy). */
	ck_assert(rsc_entry_detach(t) == -EBADF || rsc_entry_detach(t) == -EBUSY);
	ck_assert_int_eq(rsc_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &f), 0);
	ck_assert_int_eq(rsc_entry_detach(f), -EBUSY); /* its enter is in flight */
	ck_assert_int_eq(rsc_entry_detach(NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_detach((struct rsc_entry *)0x7fff12345678ULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_detach((struct rsc_entry *)s), -EINVAL);
	ck_assert_int_ge(rsc_entry_wait(f), 0);
	/* The parent's close requested: the unwind owns the child's entries. */
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_detach(f), -EALREADY);
	ck_assert_int_eq(rsc_entry_move(f, c), -EALREADY);
	ck_assert_int_eq(rsc_entry_release(f, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_entry_release_wait(f, NULL), -EALREADY);
	t_run();
	ck_assert_int_eq(runs, 2); /* the defer, and the timer's -ECANCELED */
	ck_assert_int_eq(rsc_entry_detach(f), -ESTALE);
}
END_TEST

START_TEST(detached_descriptor_is_no_leak_finding)
{
	struct rsc_scope *s;
	struct rsc_entry *f;
	int fd;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &f), 0);
	fd = rsc_entry_wait(f);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_entry_detach(f), fd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(fd_open(fd));
	/* The caller owns it by an explicit call: no owner lapsed, nothing leaked. */
	ck_assert_msg(rsc_audit_count(t_loop) == 0, "%d finding(s): %s",
		      rsc_audit_count(t_loop),
		      rsc_audit_count(t_loop) > 0 ?
		      rsc_finding_expected(rsc_audit_finding(t_loop, 0)) : "");
	close(fd);
}
END_TEST

/* ----------------------------------------------------------------- move */

START_TEST(scope_move_refuses_cycles_closing_targets_and_other_loops)
{
	struct rsc_loop *other;
	struct rsc_scope *a, *b, *bb, *o, *z;

	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, a, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, b, "bb", &bb), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "z", &z), 0);
	ck_assert_int_eq(rsc_scope_move(a, a), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(a, bb), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(NULL, a), -EINVAL);
	ck_assert_int_eq(rsc_scope_move((struct rsc_scope *)0x42, a), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(a, (struct rsc_scope *)0x42), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(b, o), -EXDEV);
	ck_assert_int_eq(rsc_scope_move(o, b), -EXDEV);
	ck_assert_int_eq(rsc_scope_move(b, b), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(b, a), 0); /* its own parent: fine */
	ck_assert_int_eq(rsc_scope_move(bb, NULL), 0);
	ck_assert_int_eq(rsc_scope_move(bb, b), 0);
	ck_assert_int_eq(rsc_scope_fail(z, -EIO, "body"), 0);
	ck_assert_int_eq(rsc_scope_move(b, z), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(z, a), -EALREADY);
	ck_assert_int_eq(rsc_scope_close(a, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_move(bb, NULL), -EALREADY);
	t_run();
	ck_assert_int_eq(rsc_scope_move(bb, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_move(z, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(z, NULL), -EIO);
	ck_assert_int_eq(rsc_loop_shutdown(other, NULL), 0);
}
END_TEST

START_TEST(entry_move_refuses_closing_targets_and_other_loops)
{
	struct rsc_loop *other;
	struct rsc_scope *a, *b, *o;
	struct rsc_entry *e;
	int efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_adopt(a, efd, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_move(e, o), -EXDEV);
	ck_assert_int_eq(rsc_entry_move(e, NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_move(NULL, b), -EINVAL);
	ck_assert_int_eq(rsc_entry_move(e, (struct rsc_scope *)e), -EINVAL);
	ck_assert_int_eq(rsc_entry_move(e, a), 0);
	ck_assert_int_eq(rsc_scope_close(b, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_move(e, b), -EINVAL);
	t_run();
	ck_assert_int_eq(rsc_entry_move(e, b), -ESTALE);
	ck_assert_ptr_eq(rsc_entry_scope(e), a);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert(!fd_open(efd));
	ck_assert_int_eq(rsc_loop_shutdown(other, NULL), 0);
}
END_TEST

/* ---------------------------------------------------- callbacks re-enter */

struct reent {
	struct rsc_scope *self, *other;
	struct rsc_entry *entry;
	int calls, r[8];
};

static void on_close_closes_self(struct rsc_scope *s, int status,
				 const struct rsc_error *err, void *data)
{
	struct reent *x = data;

	(void)err;
	x->calls++;
	x->r[0] = status;
	x->r[1] = rsc_scope_close(s, NULL, NULL);
	x->r[2] = rsc_scope_close(s, NULL, NULL);
	x->r[3] = rsc_scope_close_wait(x->other, NULL);
	x->r[4] = rsc_scope_move(s, NULL);
	x->r[5] = rsc_scope_on_close(s, NULL, NULL);
	x->r[6] = rsc_scope_set_deadline(s, 10, 0);
	x->r[7] = rsc_scope_fail(s, -EIO, NULL);
}

START_TEST(on_close_callback_closes_its_own_scope)
{
	struct rsc_scope *s, *o;
	struct reent x = { 0 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "o", &o), 0);
	x.self = s;
	x.other = o;
	ck_assert_int_eq(rsc_scope_on_close(s, on_close_closes_self, &x), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 1, 0), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], -ETIMEDOUT);
	ck_assert_int_eq(x.r[1], 0);
	ck_assert_int_eq(x.r[2], -EALREADY);
	ck_assert_int_eq(x.r[3], -EDEADLK);
	ck_assert_int_eq(x.r[4], -EALREADY);
	ck_assert_int_eq(x.r[5], -EALREADY);
	ck_assert_int_eq(x.r[6], -ESHUTDOWN);
	ck_assert_int_eq(x.r[7], -EALREADY);
	ck_assert_int_eq(rsc_scope_state(s), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(o), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
}
END_TEST

static void close_cb_closes_other(struct rsc_scope *s, int status,
				  const struct rsc_error *err, void *data)
{
	struct reent *x = data;

	(void)s;
	(void)status;
	(void)err;
	x->calls++;
	x->r[0] = rsc_scope_close(x->other, NULL, NULL);
	x->r[1] = rsc_entry_release(x->entry, NULL, NULL);
	x->r[2] = rsc_scope_fail(x->other, -EIO, NULL);
}

START_TEST(close_callback_closes_the_parent_and_releases_its_entries)
{
	struct rsc_scope *p, *c;
	struct rsc_entry *e;
	struct reent x = { 0 };
	int efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_adopt(p, efd, 0, &e), 0);
	x.other = p;
	x.entry = e;
	ck_assert_int_eq(rsc_scope_close(c, close_cb_closes_other, &x), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], 0);
	ck_assert_int_eq(x.r[1], -EALREADY);
	ck_assert_int_eq(x.r[2], -EALREADY);
	ck_assert_int_eq(rsc_scope_state(p), -ESTALE);
	ck_assert(!fd_open(efd));
}
END_TEST

/* A child unwinding because of its parent: its on_close runs inside the parent's unwind. */
static void child_on_close_acts_on_parent(struct rsc_scope *s, int status,
					  const struct rsc_error *err, void *data)
{
	struct reent *x = data;

	(void)s;
	(void)err;
	x->calls++;
	x->r[0] = status;
	x->r[1] = rsc_scope_close(x->other, NULL, NULL);
	x->r[2] = rsc_scope_move(x->self, NULL);
	x->r[3] = rsc_entry_move(x->entry, x->self);
	x->r[4] = rsc_entry_detach(x->entry);
	x->r[5] = rsc_entry_release(x->entry, NULL, NULL);
}

START_TEST(child_on_close_during_parent_unwind_cannot_steal)
{
	struct rsc_scope *p, *c;
	struct rsc_entry *e;
	struct reent x = { 0 };
	int efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_adopt(p, efd, 0, &e), 0);
	x.self = c;
	x.other = p;
	x.entry = e;
	ck_assert_int_eq(rsc_scope_on_close(c, child_on_close_acts_on_parent, &x), 0);
	ck_assert_int_eq(rsc_scope_fail(p, -EPROTO, "body"), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], -EPROTO);
	ck_assert_int_eq(x.r[1], 0); /* p waits for its close: this is it */
	ck_assert_int_eq(x.r[2], -EALREADY);
	ck_assert_int_eq(x.r[3], -EALREADY); /* both apply: the entry is the unwind's */
	ck_assert_int_eq(x.r[4], -EALREADY);
	ck_assert_int_eq(x.r[5], -EALREADY);
	ck_assert_int_eq(rsc_scope_state(p), -ESTALE);
	ck_assert(!fd_open(efd));
}
END_TEST

/* A defer fn re-entering the library while released early (inside rsc_entry_release). */
static int defer_reenters(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct reent *x = arg;
	struct rsc_entry *tmp;
	int efd;

	(void)p;
	x->calls++;
	x->r[0] = rsc_defer(x->self, defer_nop, NULL, &tmp);
	efd = eventfd(0, EFD_CLOEXEC);
	x->r[1] = rsc_adopt(x->self, efd, 0, &tmp);
	if (x->r[1] < 0)
		close(efd);
	x->r[2] = rsc_entry_move(x->entry, x->other);
	x->r[3] = rsc_entry_detach(x->entry);
	x->r[4] = rsc_scope_move(x->other, x->self);
	x->r[5] = rsc_entry_release_wait(x->entry, NULL);
	x->r[6] = rsc_loop_run(rsc_entry_scope(e) ? t_loop : NULL, RSC_RUN_NOWAIT);
	x->r[7] = rsc_scope_close_wait(x->other, NULL);
	return 0;
}

START_TEST(defer_fn_cannot_push_move_detach_or_block)
{
	struct rsc_scope *s, *o;
	struct rsc_entry *d, *a;
	struct reent x = { 0 };
	int efd = eventfd(0, EFD_CLOEXEC), i;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &a), 0);
	x.self = s;
	x.other = o;
	x.entry = a;
	ck_assert_int_eq(rsc_defer(s, defer_reenters, &x, &d), 0);
	ck_assert_int_eq(rsc_entry_release(d, NULL, NULL), 0);
	ck_assert_int_eq(x.calls, 1);
	for (i = 0; i < 8; i++)
		ck_assert_msg(x.r[i] == -EDEADLK, "call %d: %s", i, rsc_err_name(x.r[i]));
	ck_assert_int_eq(rsc_entry_state(a), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	ck_assert_int_eq(x.calls, 1);
	ck_assert(!fd_open(efd));
}
END_TEST

/* rsc_entry_release_wait from a completion callback: -EDEADLK, nothing released. */
static void enter_cb_release_waits(struct rsc_entry *e, int res, void *data)
{
	struct reent *x = data;

	(void)res;
	x->calls++;
	x->r[0] = rsc_entry_release_wait(e, NULL);
	x->r[1] = rsc_entry_state(e);
	x->r[2] = rsc_entry_wait(e);
	x->r[3] = rsc_loop_close(t_loop);
}

START_TEST(release_wait_from_a_callback_releases_nothing)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct reent x = { 0 };
	int efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, enter_cb_release_waits, &x), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], -EDEADLK);
	ck_assert_int_eq(x.r[1], RSC_ENTERED);
	ck_assert_int_eq(x.r[2], -EDEADLK);
	ck_assert_int_eq(x.r[3], -EDEADLK);
	ck_assert(fd_open(efd));
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), -EALREADY);
	ck_assert(!fd_open(efd));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* ------------------------------------------------------------ scope_fail */

START_TEST(scope_fail_checks_its_arguments)
{
	struct rsc_scope *s;
	struct rsc_error *err = NULL;
	char op[200];

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_fail(s, 0, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_fail(s, EIO, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_fail(NULL, -EIO, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	memset(op, 'o', sizeof(op) - 1);
	op[sizeof(op) - 1] = 0;
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, op), 0);
	memset(op, 'x', sizeof(op) - 1); /* copied */
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EPROTO);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	ck_assert(rsc_error_op(err)[0] == 'o');
	ck_assert_str_eq(rsc_error_entry(err), "");
	ck_assert_str_eq(rsc_error_scope(err), "s");
	rsc_error_free(err);
}
END_TEST

START_TEST(scope_fail_after_close_requested_is_already)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), -EALREADY);
	t_run();
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), -ESTALE);
}
END_TEST

/* ----------------------------------------------------------------- data */

static void on_close_reads_data(struct rsc_scope *s, int status,
				const struct rsc_error *err, void *data)
{
	(void)status;
	(void)err;
	*(void **)data = rsc_scope_data(s);
}

START_TEST(data_survives_moves_and_is_there_in_on_close)
{
	struct rsc_scope *a, *b;
	struct rsc_entry *e;
	void *seen = NULL;
	int x, efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_ptr_null(rsc_scope_data(a));
	ck_assert_int_eq(rsc_scope_set_data(a, &x), 0);
	ck_assert_int_eq(rsc_scope_set_data(NULL, &x), -EINVAL);
	ck_assert_ptr_null(rsc_scope_data(NULL));
	ck_assert_int_eq(rsc_entry_set_data(NULL, &x), -EINVAL);
	ck_assert_ptr_null(rsc_entry_data(NULL));
	ck_assert_int_eq(rsc_adopt(b, efd, 0, &e), 0);
	ck_assert_ptr_null(rsc_entry_data(e));
	ck_assert_int_eq(rsc_entry_set_data(e, &seen), 0);
	ck_assert_int_eq(rsc_scope_move(a, b), 0);
	ck_assert_int_eq(rsc_entry_move(e, a), 0);
	ck_assert_ptr_eq(rsc_scope_data(a), &x);
	ck_assert_ptr_eq(rsc_entry_data(e), &seen);
	ck_assert_int_eq(rsc_scope_on_close(a, on_close_reads_data, &seen), 0);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert_ptr_eq(seen, &x);
	ck_assert_ptr_null(rsc_scope_data(a));
	ck_assert_int_eq(rsc_scope_set_data(a, &x), -ESTALE);
	ck_assert_int_eq(rsc_entry_set_data(e, &x), -ESTALE);
}
END_TEST

/* ------------------------------------------------------------- counters */

START_TEST(counter_names_are_total_and_distinct)
{
	int i, j;

	ck_assert_ptr_null(rsc_counter_name(RSC_CTR_COUNT));
	ck_assert_ptr_null(rsc_counter_name((enum rsc_counter)-1));
	ck_assert_ptr_null(rsc_counter_name((enum rsc_counter)1000000));
	for (i = 0; i < RSC_CTR_COUNT; i++) {
		ck_assert_ptr_nonnull(rsc_counter_name(i));
		ck_assert(rsc_counter_name(i)[0]);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(rsc_counter_name(i), rsc_counter_name(j));
	}
	ck_assert_str_eq(rsc_counter_name(RSC_CTR_SQES), "sqes");
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_COUNT), -EINVAL);
	ck_assert_int_eq(rsc_loop_counter(t_loop, (enum rsc_counter)-1), -EINVAL);
	ck_assert_int_eq(rsc_loop_counter(NULL, RSC_CTR_SQES), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------- loop fd */

START_TEST(loop_fd_is_the_runtimes_own)
{
	struct rsc_loop *pl;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int fd;

	ck_assert_int_eq(rsc_loop_fd(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_fd(t_loop), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_new(&pl, 8, RSC_LOOP_POLLABLE), 0);
	fd = rsc_loop_fd(pl);
	ck_assert_int_ge(fd, 0);
	ck_assert(rsc_loop_features(pl) & RSC_FEAT_POLLABLE);
	ck_assert(!(rsc_loop_features(pl) & RSC_FEAT_DEFER_TASKRUN));
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	/* Adopting the runtime's own descriptor would close it under the loop. */
	ck_assert_int_eq(rsc_adopt(s, fd, 0, &e), -EEXIST);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(fd_open(fd));
	ck_assert_int_eq(rsc_loop_close(pl), 0);
	ck_assert(!fd_open(fd) || true);
}
END_TEST

/* --------------------------------------------------------------- accept */

struct acc {
	int calls, last, fds;
	struct rsc_scope *close_in_cb;
};

static void on_acc(struct rsc_entry *l, int res, struct rsc_scope *cs,
		   struct rsc_entry *ce, void *data)
{
	struct acc *a = data;

	(void)l;
	(void)ce;
	a->calls++;
	a->last = res;
	if (res >= 0) {
		a->fds++;
		ck_assert_ptr_nonnull(cs);
	} else {
		ck_assert_ptr_null(cs);
	}
	if (a->close_in_cb) {
		ck_assert_int_eq(rsc_scope_close(a->close_in_cb, NULL, NULL), 0);
		a->close_in_cb = NULL;
	}
}

/* mode 0: close before the accept is submitted; 1: after; 2: after the
 * kernel completed it, before the loop saw it. */
static void accept_close_race(int mode)
{
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in b;
	struct acc a = { 0 };
	int c, before = t_fd_count();

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 16, &b);
	ck_assert_int_eq(rsc_accept(l, 0, on_acc, &a), 0);
	if (mode >= 1)
		ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	c = t_connect(&b);
	if (mode >= 2)
		usleep(20000);
	ck_assert_int_eq(rsc_scope_close(srv, NULL, NULL), 0);
	t_run();
	ck_assert_msg(a.calls == 1, "mode %d: %d callbacks", mode, a.calls);
	ck_assert_msg(a.last == -ECANCELED || a.last >= 0, "mode %d: %s", mode,
		      rsc_err_name(a.last));
	close(c);
	ck_assert_int_eq(t_fd_count(), before);
}

START_TEST(single_shot_accept_racing_its_scopes_close_calls_back_once)
{
	int mode;

	if (!t_kernel_has(IORING_OP_SOCKET))
		return;
	for (mode = 0; mode < 3; mode++)
		accept_close_race(mode);
}
END_TEST

START_TEST(accept_callback_closing_the_listeners_scope)
{
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in b;
	struct acc a = { 0 }, m = { 0 };
	int c1, c2, before = t_fd_count();

	if (!t_kernel_has(IORING_OP_SOCKET))
		return;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 16, &b);
	a.close_in_cb = srv;
	ck_assert_int_eq(rsc_accept(l, 0, on_acc, &a), 0);
	if (t_kernel_has(IORING_OP_SOCKET))
		ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, on_acc, &m), 0);
	c1 = t_connect(&b);
	c2 = t_connect(&b);
	t_run();
	ck_assert_int_eq(a.calls, 1);
	/* The multishot one ends with exactly one last -ECANCELED. */
	ck_assert_int_eq(m.last, -ECANCELED);
	ck_assert_int_eq(a.fds + m.fds + 1, m.calls + a.calls);
	ck_assert_int_eq(rsc_accept(l, 0, on_acc, &a), -ESTALE);
	close(c1);
	close(c2);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

START_TEST(connect_entry_release_detach_and_move_act_on_the_socket)
{
	struct rsc_scope *s, *keep;
	struct rsc_entry *c, *c2;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int lfd, fd, fd2, sfd, before;
	char ch;

	if (!t_kernel_has(IORING_OP_SOCKET))
		return;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "keep", &keep), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&a, sizeof(a), 1000, 0, &c), 0);
	ck_assert_int_eq(rsc_entry_detach(c), -EBUSY);
	ck_assert_int_eq(rsc_entry_move(c, keep), -EBUSY);
	fd = rsc_entry_wait(c);
	ck_assert_int_ge(fd, 0);
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(sfd, 0);
	ck_assert_int_eq(t_fd_count(), before + 2);
	ck_assert_int_eq(rsc_entry_release_wait(c, NULL), 0);
	ck_assert(!fd_open(fd) || fd == sfd);
	ck_assert_int_eq(recv(sfd, &ch, 1, 0), 0);
	close(sfd);
	ck_assert_int_eq(t_fd_count(), before);

	/* Detached: the socket is the caller's, still connected. */
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&a, sizeof(a), 1000, 0, &c2), 0);
	fd2 = rsc_entry_wait(c2);
	ck_assert_int_ge(fd2, 0);
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_eq(rsc_entry_move(c2, keep), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(fd_open(fd2));
	ck_assert_int_eq(rsc_entry_detach(c2), fd2);
	ck_assert_int_eq(rsc_scope_close_wait(keep, NULL), 0);
	ck_assert(fd_open(fd2));
	ck_assert_int_eq(send(fd2, "y", 1, MSG_NOSIGNAL), 1);
	ck_assert_int_eq(recv(sfd, &ch, 1, 0), 1);
	close(fd2);
	close(sfd);
	close(lfd);
}
END_TEST

/* ------------------------------------------------------------- deadlines */

static void note_close(struct rsc_scope *s, int status, const struct rsc_error *err,
		       void *data)
{
	int *st = data;

	(void)s;
	st[0]++;
	st[1] = status;
	st[2] = err ? strcmp(rsc_error_op(err), "deadline") == 0 : -1;
}

START_TEST(deadline_arguments_and_states)
{
	struct rsc_scope *s, *u;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(NULL, 10, 0), -EINVAL);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 10, 0x10), -EINVAL);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 0, 0), 0); /* nothing to clear */
	ck_assert_int_eq(rsc_scope_set_deadline(s, 100000, 0), 0);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 1);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 0, 0), 0);
	t_run(); /* returns: the cleared deadline keeps nothing alive */
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	/* Close requested, not started: setting it is still allowed. */
	ck_assert_int_eq(rsc_scope_set_deadline(s, 100000, 0), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_set_deadline(s, 10, 0), -ESTALE);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "u", &u), 0);
	ck_assert_int_eq(rsc_scope_fail(u, -EIO, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_state(u), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_set_deadline(u, 10, 0), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_close_wait(u, NULL), -EIO);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
}
END_TEST

START_TEST(parent_deadline_takes_the_child_and_ends_its_deadline)
{
	struct rsc_scope *p, *c;
	int pst[3] = { 0 }, cst[3] = { 0 };
	long long before = rsc_loop_counter(t_loop, RSC_CTR_DEADLINES);

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_on_close(p, note_close, pst), 0);
	ck_assert_int_eq(rsc_scope_on_close(c, note_close, cst), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(c, 60000, RSC_DEADLINE_MOVE_ON), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 20, 0), 0);
	/* Runs until the parent's deadline, not the child's 60 s. */
	t_run();
	ck_assert_int_eq(pst[0], 1);
	ck_assert_int_eq(pst[1], -ETIMEDOUT);
	ck_assert_int_eq(pst[2], 1);
	ck_assert_int_eq(cst[0], 1);
	ck_assert_int_eq(cst[1], -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), before + 1);
	ck_assert_int_eq(rsc_scope_state(p), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
}
END_TEST

START_TEST(child_deadline_unwinds_alone_and_rearm_moves_it)
{
	struct rsc_scope *p, *c;
	int cst[3] = { 0 };
	struct timespec t0, t1;
	long ms;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &p), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, p, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_on_close(c, note_close, cst), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(p, 60000, 0), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(rsc_scope_set_deadline(c, 10, RSC_DEADLINE_MOVE_ON), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(c, 120, RSC_DEADLINE_MOVE_ON), 0);
	while (cst[0] == 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_msg(ms >= 120, "the re-armed deadline passed after %ld ms", ms);
	ck_assert_int_eq(cst[1], 0); /* move on: no error */
	ck_assert_int_eq(cst[2], -1);
	ck_assert_int_eq(rsc_scope_state(p), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_state(c), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_close_wait(p, NULL), 0);
	ck_assert_int_eq(rsc_loop_alive(t_loop), 0);
}
END_TEST

/* An AF_UNIX connect to a full backlog blocks in the kernel until room is
 * made: an acquire the deadline finds in flight. */
static void *make_room_later(void *arg)
{
	int lfd = *(int *)arg, c;

	usleep(150000);
	c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	usleep(100000);
	if (c >= 0)
		close(c);
	return NULL;
}

START_TEST(deadline_with_an_acquire_in_flight_closes_the_late_descriptor)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct rsc_scope *s;
	struct rsc_entry *e;
	pthread_t th;
	int before, ret, st[3] = { 0 }, lfd, fill[64], nfill = 0, i;

	if (!t_kernel_has(IORING_OP_SOCKET))
		return;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", t_path("sock"));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 0), 0);
	for (i = 0; i < 64; i++) {
		fill[nfill] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (connect(fill[nfill], (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			close(fill[nfill]);
			break;
		}
		nfill++;
	}
	ck_assert_int_lt(nfill, 64);
	before = t_fd_count();
	ret = rsc_fault_set(t_loop, "cancel:1:EALREADY");
	if (ret == -EOPNOTSUPP) {
		printf("SKIP deadline_with_an_acquire_in_flight_closes_the_late_descriptor: this build has no fault injection\n");
		goto out;
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 0, 0, &e), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(s, 20, 0), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, note_close, st), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, make_room_later, &lfd), 0);
	/* Not closed by us: a close would end the deadline before it passed. */
	while (st[0] == 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(st[1], -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
	pthread_join(th, NULL);
	ck_assert_msg(rsc_loop_counter(t_loop, RSC_CTR_LATE_ACQUIRES) == 1,
		      "late %lld faults %lld acquired %lld failed %lld",
		      rsc_loop_counter(t_loop, RSC_CTR_LATE_ACQUIRES),
		      rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED),
		      rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED),
		      rsc_loop_counter(t_loop, RSC_CTR_ENTER_FAILED));
	ck_assert_int_eq(t_fd_count(), before);
out:
	for (i = 0; i < nfill; i++)
		close(fill[i]);
	close(lfd);
	unlink(t_path("sock"));
}
END_TEST

/* --------------------------------------------------------------- graceful */

START_TEST(graceful_close_states_and_stats)
{
	struct rsc_scope *s, *u, *c;
	struct rsc_entry *a, *b;
	unsigned dr = 9, ca = 9, ef = 9;
	int sv[2], sv2[2], calls = 0, st[3] = { 0 };
	static char buf[16], buf2[16];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), 0);
	ck_assert_int_eq(rsc_scope_close_stats(NULL, &dr, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_graceful(NULL, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_close_stats(s, &dr, &ca, &ef), 0);
	ck_assert(dr == 0 && ca == 0 && ef == 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "c", &c), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &a), 0);
	ck_assert_int_eq(rsc_adopt(c, sv2[0], 0, &b), 0);
	ck_assert_int_eq(rsc_recv(a, buf, sizeof(buf), 0, io_ignore, &calls), 0);
	ck_assert_int_eq(rsc_recv(b, buf2, sizeof(buf2), 0, io_ignore, &calls), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 50, note_close, st), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 50, note_close, st), -EALREADY);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), -EALREADY);
	/* The graceful scope's own entries may still start I/O (a reply). */
	ck_assert_int_eq(rsc_send(a, "r", 1, MSG_NOSIGNAL, io_ignore, &calls), 0);
	ck_assert_int_eq(rsc_defer(s, defer_nop, NULL, NULL), -ESHUTDOWN);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "x", &u), -ESHUTDOWN);
	/* b's recv finishes during the grace; a's is cut off. */
	ck_assert_int_eq(write(sv2[1], "hi", 2), 2);
	t_run();
	ck_assert_int_eq(calls, 3);
	ck_assert_int_eq(st[0], 1);
	ck_assert_int_eq(st[1], 0);
	close(sv[1]);
	close(sv2[1]);

	/* Stats from inside the close callback. */
	(void)dr;
}
END_TEST

struct gstats {
	unsigned dr, ca, ef;
	int ret;
};

static void stats_in_cb(struct rsc_scope *s, int status, const struct rsc_error *err,
			void *data)
{
	struct gstats *g = data;

	(void)status;
	(void)err;
	g->ret = rsc_scope_close_stats(s, &g->dr, &g->ca, &g->ef);
}

START_TEST(graceful_stats_count_drained_and_cancelled)
{
	struct rsc_scope *s, *c;
	struct rsc_entry *a, *b;
	struct gstats g = { 9, 9, 9, 9 };
	int sv[2], sv2[2], calls = 0;
	static char buf[16], buf2[16];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "c", &c), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &a), 0);
	ck_assert_int_eq(rsc_adopt(c, sv2[0], 0, &b), 0);
	ck_assert_int_eq(rsc_recv(a, buf, sizeof(buf), 0, io_ignore, &calls), 0);
	ck_assert_int_eq(rsc_recv(b, buf2, sizeof(buf2), 0, io_ignore, &calls), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 50, stats_in_cb, &g), 0);
	ck_assert_int_eq(write(sv2[1], "hi", 2), 2);
	t_run();
	ck_assert_int_eq(g.ret, 0);
	ck_assert_int_eq(g.dr, 1);
	ck_assert_int_eq(g.ca, 1);
	ck_assert_int_eq(g.ef, 0);
	close(sv[1]);
	close(sv2[1]);
}
END_TEST

/* A recv whose callback starts another (a reply's worth of new I/O). */
static char reply_buf[16];

static void recv_again(struct rsc_entry *e, int res, void *buf, void *data)
{
	(*(int *)data)++;
	if (res > 0)
		ck_assert_int_eq(rsc_recv(e, reply_buf, sizeof(reply_buf), 0, recv_again, data), 0);
	(void)buf;
}

START_TEST(graceful_stats_when_drained_entries_start_more_or_a_deadline_cuts_in)
{
	struct rsc_scope *s, *d;
	struct rsc_entry *a, *b;
	struct gstats g = { 9, 9, 9, 9 }, h = { 9, 9, 9, 9 };
	int sv[2], sv2[2], calls = 0, calls2 = 0;
	static char buf[16];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), 0);
	/* Drained, then busy again with the next request's recv. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &a), 0);
	ck_assert_int_eq(rsc_recv(a, reply_buf, sizeof(reply_buf), 0, recv_again, &calls), 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 1);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 50, stats_in_cb, &g), 0);
	ck_assert_int_eq(write(sv[1], "hi", 2), 2);
	t_run();
	ck_assert_int_eq(calls, 2);
	ck_assert_int_eq(g.ret, 0);
	/* Header: drained "even if they started more"; cut off after that too. */
	ck_assert_int_eq(g.dr, 1);
	ck_assert_int_eq(g.ca, 1);

	/* A deadline starts the unwind before the grace ends. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "d", &d), 0);
	ck_assert_int_eq(rsc_adopt(d, sv2[0], 0, &b), 0);
	ck_assert_int_eq(rsc_recv(b, buf, sizeof(buf), 0, io_ignore, &calls2), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(d, 20, 0), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(d, 0, stats_in_cb, &h), 0);
	t_run();
	ck_assert_int_eq(calls2, 1);
	ck_assert_int_eq(h.ret, 0);
	ck_assert_int_eq(h.dr, 0);
	ck_assert_int_eq(h.ca, 1);
	close(sv[1]);
	close(sv2[1]);
}
END_TEST

START_TEST(graceful_close_of_a_failed_scope_is_a_plain_close)
{
	struct rsc_scope *s;
	int st[3] = { 0 };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(s, 0, note_close, st), 0);
	t_run();
	ck_assert_int_eq(st[0], 1);
	ck_assert_int_eq(st[1], -EPIPE);
}
END_TEST

/* --------------------------------------------------------- shared ring */

START_TEST(shared_ring_never_consumes_the_applications_cqes)
{
	struct io_uring ring;
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe, fake = { .user_data = 1ULL << 63 };
	unsigned head, n;
	int mine = 0, i, ret;

	t_make_files(1);
	ck_assert_int_eq(io_uring_queue_init(32, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 1), -EINVAL);
	ck_assert_ptr_null(l);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ck_assert(rsc_loop_features(l) & RSC_FEAT_SHARED_RING);
	ck_assert_int_eq(rsc_loop_fd(l), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_ONCE), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), -EOPNOTSUPP);
	ck_assert_int_eq(rsc_loop_dispatch(NULL, &fake), -EINVAL);
	ck_assert_int_eq(rsc_loop_dispatch(l, NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_dispatch(t_loop, &fake), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_wait(e), -EOPNOTSUPP);
	for (i = 0; i < 4; i++) {
		sqe = io_uring_get_sqe(&ring);
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, 1000 + i);
	}
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EOPNOTSUPP);
	ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	while (mine < 4 || rsc_loop_alive(l) > 0) {
		ck_assert_int_ge(io_uring_submit_and_wait(&ring, 1), 0);
		n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			ret = rsc_loop_dispatch(l, cqe);
			ck_assert_int_ge(ret, 0);
			if (ret == 0) {
				ck_assert_int_eq(cqe->user_data, 1000 + mine);
				mine++;
			}
			n++;
		}
		io_uring_cq_advance(&ring, n);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(mine, 4);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	io_uring_queue_exit(&ring);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

/* ------------------------------------------------------------------ post */

#define POSTERS 4
#define POSTS	200

struct postrec {
	int seen[POSTERS];
	int bad, total;
	struct rsc_loop *loop;
};

struct postarg {
	struct postrec *r;
	int thread, i;
};

static struct postarg post_args[POSTERS][POSTS];

static void posted(struct rsc_loop *loop, void *arg)
{
	struct postarg *p = arg;

	if (loop != p->r->loop || p->r->seen[p->thread] != p->i)
		p->r->bad++;
	p->r->seen[p->thread] = p->i + 1;
	p->r->total++;
	if (rsc_loop_run(loop, RSC_RUN_NOWAIT) != -EDEADLK)
		p->r->bad++;
}

static void *poster(void *arg)
{
	struct postarg *row = arg;
	int i;

	for (i = 0; i < POSTS; i++)
		if (rsc_loop_post(row[i].r->loop, posted, &row[i]) < 0)
			row[i].r->bad += 1000;
	return NULL;
}

START_TEST(posts_from_threads_run_once_each_in_order)
{
	struct postrec r = { .loop = t_loop };
	pthread_t th[POSTERS];
	int t, i, ret;

	ck_assert_int_eq(rsc_loop_post(NULL, posted, NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_post(t_loop, NULL, NULL), -EINVAL);
	for (t = 0; t < POSTERS; t++)
		for (i = 0; i < POSTS; i++)
			post_args[t][i] = (struct postarg){ &r, t, i };
	ret = rsc_loop_post(t_loop, posted, &post_args[0][0]);
	if (ret == -EOPNOTSUPP)
		return;
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(r.total, 0); /* never inside the call */
	ck_assert_int_eq(rsc_loop_alive(t_loop), 1);
	t_run();
	ck_assert_int_eq(r.total, 1);
	r.seen[0] = 0;
	r.total = 0;
	for (t = 0; t < POSTERS; t++)
		ck_assert_int_eq(pthread_create(&th[t], NULL, poster, post_args[t]), 0);
	while (r.total < POSTERS * POSTS)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	for (t = 0; t < POSTERS; t++)
		pthread_join(th[t], NULL);
	t_run();
	ck_assert_int_eq(r.bad, 0);
	ck_assert_int_eq(r.total, POSTERS * POSTS);
}
END_TEST

/* --------------------------------------------------- stale across loops */

START_TEST(stale_scope_of_a_freed_loop_is_refused_everywhere)
{
	struct rsc_loop *other;
	struct rsc_scope *a, *b, *x;
	struct rsc_entry *e, *d;
	unsigned u;
	int efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_defer(a, defer_nop, NULL, &d), 0);
	ck_assert_int_eq(rsc_loop_shutdown(other, NULL), 0);
	/* The next loop may reuse the freed memory and the handle slots. */
	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(a, 10, 0), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_graceful(a, 10, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_stats(a, &u, &u, &u), -ESTALE);
	ck_assert_int_eq(rsc_scope_on_close(a, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_set_data(a, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_move(a, b), -ESTALE);
	ck_assert_int_eq(rsc_scope_move(b, a), -ESTALE);
	ck_assert_int_eq(rsc_scope_open(other, a, "x", &x), -ESTALE);
	ck_assert_int_eq(rsc_defer(a, defer_nop, NULL, &e), -ESTALE);
	ck_assert_int_eq(rsc_adopt(a, efd, 0, &e), -ESTALE);
	ck_assert_int_eq(rsc_entry_move(d, b), -ESTALE);
	ck_assert_int_eq(rsc_entry_release_wait(d, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(b), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_loop_shutdown(other, NULL), 0);
	ck_assert(fd_open(efd));
	close(efd);
}
END_TEST

/* ----------------------------------------------------- posts and closing */

struct late_post {
	const char *path;
	int opened, ret;
	struct rsc_scope *s;
};

static void post_opens_a_scope(struct rsc_loop *loop, void *arg)
{
	struct late_post *lp = arg;
	struct rsc_entry *e;

	lp->ret = rsc_scope_open(loop, NULL, "late", &lp->s);
	if (lp->ret == 0)
		lp->opened = rsc_open(lp->s, AT_FDCWD, lp->path, O_RDONLY, 0, 0, &e) == 0;
}

START_TEST(a_post_run_by_loop_close_cannot_leave_a_scope_behind)
{
	struct rsc_loop *l;
	struct late_post lp = { 0 };
	int before, ret;

	t_make_files(1);
	lp.path = t_path("f0");
	before = t_fd_count();
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ret = rsc_loop_post(l, post_opens_a_scope, &lp);
	if (ret == -EOPNOTSUPP) {
		ck_assert_int_eq(rsc_loop_close(l), 0);
		return;
	}
	ck_assert_int_eq(ret, 0);
	/* The post runs in here and opens a scope: the loop is not free to go. */
	ret = rsc_loop_close(l);
	if (ret == 0) {
		/* Freed anyway: then nothing it opened may be left open. */
		ck_assert_msg(t_fd_count() == before,
			      "rsc_loop_close freed a loop whose post opened scope 'late' (%d): %d fd(s) left open",
			      lp.ret, t_fd_count() - before);
		return;
	}
	ck_assert_int_eq(ret, -EBUSY);
	ck_assert_int_eq(lp.ret, 0);
	ck_assert_int_eq(lp.opened, 1);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

static void post_after_shutdown(struct rsc_scope *s, int status, const struct rsc_error *err,
				void *data)
{
	(void)s;
	(void)status;
	(void)err;
	*(int *)data = rsc_scope_open(t_loop, NULL, "again", &s);
}

START_TEST(on_close_during_shutdown_cannot_open_new_scopes)
{
	struct rsc_loop *l = t_loop;
	struct rsc_scope *s;
	int ret = 1;

	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, post_after_shutdown, &ret), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	t_loop = NULL;
	ck_assert_int_eq(ret, -ESHUTDOWN);
}
END_TEST

/* ---------------------------------------------------- shared ring, deadlk */

struct disp {
	struct rsc_loop *l;
	int calls, r;
};

static void enter_cb_dispatches(struct rsc_entry *e, int res, void *data)
{
	struct disp *d = data;
	struct io_uring_cqe fake = { .user_data = 1ULL << 63 };

	(void)e;
	(void)res;
	d->calls++;
	d->r = rsc_loop_dispatch(d->l, &fake);
}

START_TEST(dispatch_from_a_callback_is_refused)
{
	struct io_uring ring;
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct io_uring_cqe *cqe;
	struct disp d = { 0 };
	unsigned head, n;
	int efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&d.l, &ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(d.l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, enter_cb_dispatches, &d), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), -EOPNOTSUPP);
	ck_assert_int_ge(rsc_loop_run(d.l, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(d.calls, 1);
	ck_assert_int_eq(d.r, -EDEADLK);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(d.l, RSC_RUN_NOWAIT), 0);
	while (rsc_loop_alive(d.l) > 0) {
		ck_assert_int_ge(io_uring_submit_and_wait(&ring, 1), 0);
		n = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			ck_assert_int_eq(rsc_loop_dispatch(d.l, cqe), 1);
			n++;
		}
		io_uring_cq_advance(&ring, n);
		ck_assert_int_ge(rsc_loop_run(d.l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(rsc_loop_close(d.l), 0);
	ck_assert(!fd_open(efd));
	io_uring_queue_exit(&ring);
}
END_TEST

/* ------------------------------------------------------------- pollable */

#include <poll.h>

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

START_TEST(pollable_fd_turns_readable_for_work_due)
{
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int fd, efd = eventfd(0, EFD_CLOEXEC), i;

	ck_assert_int_eq(rsc_loop_new(&l, 16, RSC_LOOP_POLLABLE), 0);
	fd = rsc_loop_fd(l);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &e), 0);
	ck_assert_msg(readable(fd), "an adopted entry's enter is due, the fd is not readable");
	for (i = 0; i < 10 && rsc_loop_run(l, RSC_RUN_NOWAIT) > 0; i++)
		;
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert(!readable(fd));
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_msg(readable(fd), "a close was requested, the fd is not readable");
	while (rsc_loop_alive(l) > 0) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		ck_assert_int_eq(poll(&p, 1, 2000), 1);
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
	}
	ck_assert(!fd_open(efd));
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

/* ------------------------------------------------- release of an acquire */

START_TEST(release_wait_of_an_acquire_that_fails_reports_the_acquire)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	int ret;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("nope"), O_RDONLY, 0, 0, &e), 0);
	ret = rsc_entry_release_wait(e, &err);
	ck_assert_msg(ret == -ENOENT || ret == -ECANCELED, "%s", rsc_err_name(ret));
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(rsc_error_errno(err), ret);
	ck_assert_str_eq(rsc_error_op(err), "openat");
	rsc_error_free(err);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), -EALREADY);
	/* Released early: its failure is not the scope's. */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* ------------------------------------------------- reuse and self-moves */

static int order_log[8], order_n;

static int log_order(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	(void)e;
	(void)p;
	order_log[order_n++] = (int)(long)arg;
	return 0;
}

START_TEST(moving_an_entry_to_its_own_scope_makes_it_released_first)
{
	struct rsc_scope *s;
	struct rsc_entry *a, *b, *c;

	order_n = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_defer(s, log_order, (void *)1L, &a), 0);
	ck_assert_int_eq(rsc_defer(s, log_order, (void *)2L, &b), 0);
	ck_assert_int_eq(rsc_defer(s, log_order, (void *)3L, &c), 0);
	ck_assert_int_eq(rsc_entry_move(c, s), 0); /* newest already: no change */
	ck_assert_int_eq(rsc_entry_move(a, s), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(order_n, 3);
	ck_assert_int_eq(order_log[0], 1);
	ck_assert_int_eq(order_log[1], 3);
	ck_assert_int_eq(order_log[2], 2);
}
END_TEST

START_TEST(detached_entry_handle_stays_stale_when_its_memory_is_reused)
{
	struct rsc_scope *s;
	struct rsc_entry *old, *fresh;
	int p[2], i;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(rsc_adopt(s, p[0], 0, &old), 0);
		ck_assert_int_eq(rsc_entry_detach(old), p[0]);
		ck_assert_int_eq(rsc_adopt(s, p[0], 0, &fresh), 0);
		ck_assert_ptr_ne(old, fresh);
		ck_assert_int_eq(rsc_entry_detach(old), -ESTALE);
		ck_assert_int_eq(rsc_entry_release(old, NULL, NULL), -ESTALE);
		ck_assert_int_eq(rsc_entry_move(old, s), -ESTALE);
		ck_assert_int_eq(rsc_entry_fd(old), -ESTALE);
		ck_assert_int_eq(rsc_entry_fd(fresh), p[0]);
		ck_assert_int_eq(rsc_entry_detach(fresh), p[0]);
	}
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(fd_open(p[0]));
	close(p[0]);
	close(p[1]);
}
END_TEST

Suite *make_hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc = tcase_create("hostile");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, adopt_detach_readopt_keeps_the_descriptor_usable);
	tcase_add_test(tc, adopt_refuses_bad_arguments_and_leaves_the_fd_alone);
	tcase_add_test(tc, adopt_is_refused_until_the_owners_close_is_submitted);
	tcase_add_test(tc, adopt_shutdown_on_release_of_a_non_socket_still_closes);
	tcase_add_test(tc, adopt_shutdown_on_release_sends_eof_despite_a_dup);
	tcase_add_test(tc, detach_refuses_what_it_cannot_hand_back);
	tcase_add_test(tc, detached_descriptor_is_no_leak_finding);
	tcase_add_test(tc, scope_move_refuses_cycles_closing_targets_and_other_loops);
	tcase_add_test(tc, entry_move_refuses_closing_targets_and_other_loops);
	tcase_add_test(tc, on_close_callback_closes_its_own_scope);
	tcase_add_test(tc, close_callback_closes_the_parent_and_releases_its_entries);
	tcase_add_test(tc, child_on_close_during_parent_unwind_cannot_steal);
	tcase_add_test(tc, defer_fn_cannot_push_move_detach_or_block);
	tcase_add_test(tc, release_wait_from_a_callback_releases_nothing);
	tcase_add_test(tc, scope_fail_checks_its_arguments);
	tcase_add_test(tc, scope_fail_after_close_requested_is_already);
	tcase_add_test(tc, data_survives_moves_and_is_there_in_on_close);
	tcase_add_test(tc, counter_names_are_total_and_distinct);
	tcase_add_test(tc, loop_fd_is_the_runtimes_own);
	tcase_add_test(tc, single_shot_accept_racing_its_scopes_close_calls_back_once);
	t_add_test_if(tc, accept_callback_closing_the_listeners_scope, t_has_accept_multishot(),
		      "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	tcase_add_test(tc, connect_entry_release_detach_and_move_act_on_the_socket);
	tcase_add_test(tc, deadline_arguments_and_states);
	tcase_add_test(tc, parent_deadline_takes_the_child_and_ends_its_deadline);
	tcase_add_test(tc, child_deadline_unwinds_alone_and_rearm_moves_it);
	/* valgrind holds its lock across io_uring_enter: a thread the loop waits for never runs. */
	if (t_under_valgrind())
		printf("SKIP deadline_with_an_acquire_in_flight_closes_the_late_descriptor: under valgrind, the loop's wait starves the helper thread\n");
	else
		tcase_add_test(tc, deadline_with_an_acquire_in_flight_closes_the_late_descriptor);
	tcase_add_test(tc, graceful_close_states_and_stats);
	tcase_add_test(tc, graceful_stats_count_drained_and_cancelled);
	tcase_add_test(tc, graceful_close_of_a_failed_scope_is_a_plain_close);
	tcase_add_test(tc, graceful_stats_when_drained_entries_start_more_or_a_deadline_cuts_in);
	tcase_add_test(tc, shared_ring_never_consumes_the_applications_cqes);
	/* valgrind holds its lock across io_uring_enter: a thread the loop waits for never runs. */
	if (t_under_valgrind())
		printf("SKIP posts_from_threads_run_once_each_in_order: under valgrind, the loop's wait starves the helper thread\n");
	else
		tcase_add_test(tc, posts_from_threads_run_once_each_in_order);
	tcase_add_test(tc, stale_scope_of_a_freed_loop_is_refused_everywhere);
	tcase_add_test(tc, a_post_run_by_loop_close_cannot_leave_a_scope_behind);
	tcase_add_test(tc, on_close_during_shutdown_cannot_open_new_scopes);
	tcase_add_test(tc, dispatch_from_a_callback_is_refused);
	tcase_add_test(tc, pollable_fd_turns_readable_for_work_due);
	tcase_add_test(tc, release_wait_of_an_acquire_that_fails_reports_the_acquire);
	tcase_add_test(tc, moving_an_entry_to_its_own_scope_makes_it_released_first);
	tcase_add_test(tc, detached_entry_handle_stays_stale_when_its_memory_is_reused);
	suite_add_tcase(s, tc);
	return s;
}
