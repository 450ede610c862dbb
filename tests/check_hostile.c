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
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
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
	int efd = eventfd(0, EFD_CLOEXEC);

	if (!t_kernel_has(IORING_OP_SHUTDOWN))
		return;
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

	ck_assert_ptr_null(rsc_counter_name(RSC_CTR__COUNT));
	ck_assert_ptr_null(rsc_counter_name((enum rsc_counter)-1));
	ck_assert_ptr_null(rsc_counter_name((enum rsc_counter)1000000));
	for (i = 0; i < RSC_CTR__COUNT; i++) {
		ck_assert_ptr_nonnull(rsc_counter_name(i));
		ck_assert(rsc_counter_name(i)[0]);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(rsc_counter_name(i), rsc_counter_name(j));
	}
	ck_assert_str_eq(rsc_counter_name(RSC_CTR_SQES), "sqes");
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR__COUNT), -EINVAL);
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
	suite_add_tcase(s, tc);
	return s;
}
