/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tmgr.h"

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

START_TEST(stale_entry_handle_never_acts_on_the_reused_object)
{
	struct rsc_scope *a, *b;
	struct rsc_entry *old, *fresh;
	int fd;

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "A", &a), 0);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &old), 0);
	ck_assert_int_ge(rsc_entry_wait(old), 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	/* B reuses A's memory from the pools. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "B", &b), 0);
	ck_assert_int_eq(rsc_open(b, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, &fresh), 0);
	fd = rsc_entry_wait(fresh);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_entry_release(old, NULL, NULL), -ESTALE);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "stale"));
	ck_assert_int_eq(rsc_entry_detach(old), -ESTALE);
	ck_assert_int_eq(rsc_entry_fd(old), -ESTALE);
	ck_assert_int_eq(rsc_entry_state(old), -ESTALE);
	ck_assert_int_eq(rsc_entry_move(old, b), -ESTALE);
	ck_assert_int_eq(rsc_entry_on_enter(old, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_entry_io_count(old), -ESTALE);
	ck_assert_str_eq(rsc_entry_name(old), "");
	ck_assert_ptr_null(rsc_entry_scope(old));
	ck_assert_int_eq(rsc_scope_close(a, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(a), -ESTALE);
	ck_assert_int_eq(rsc_scope_fail(a, -EIO, NULL), -ESTALE);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, NULL), -ESTALE);
	t_run();
	/* B's file was never touched through A's handles. */
	ck_assert(fd_is_open(fd));
	ck_assert_int_eq(rsc_entry_fd(fresh), fd);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert(!t_fd_open_to(t_dir));
}
END_TEST

START_TEST(stale_handle_is_refused_after_reuse_on_another_loop)
{
	struct rsc_loop *other;
	struct rsc_scope *a, *b;
	struct rsc_entry *old, *fresh;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "A", &a), 0);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &old), 0);
	ck_assert_int_eq(rsc_loop_shutdown(other, NULL), 0);
	/* A new loop may get the same memory and the same handle slots. */
	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "B", &b), 0);
	ck_assert_int_eq(rsc_open(b, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &fresh), 0);
	ck_assert_int_eq(rsc_entry_release(old, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_close(a, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_entry_wait(fresh), rsc_entry_fd(fresh));
	ck_assert_int_eq(rsc_entry_state(fresh), RSC_ENTERED);
	ck_assert_int_eq(rsc_loop_shutdown(other, NULL), 0);
}
END_TEST

START_TEST(handles_of_the_wrong_kind_and_garbage_are_refused)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int x;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_scope_state((struct rsc_scope *)e), -EINVAL);
	ck_assert_int_eq(rsc_entry_state((struct rsc_entry *)s), -EINVAL);
	/* A real pointer is not a handle. */
	ck_assert_int_eq(rsc_entry_state((struct rsc_entry *)&x), -EINVAL);
	ck_assert_int_eq(rsc_entry_state(NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

static int on_enter_calls, on_enter_res;

static void count_enter(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)data;
	on_enter_calls++;
	on_enter_res = res;
}

START_TEST(adopted_descriptors_are_released_by_the_ring)
{
	struct rsc_scope *s;
	struct rsc_entry *r, *w;
	int before = t_fd_count(), p[2];

	ck_assert_int_eq(pipe2(p, 0), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "pipe", &s), 0);
	on_enter_calls = 0;
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &r), 0);
	ck_assert_int_eq(rsc_adopt(s, p[1], 0, &w), 0);
	/* Entered at once, but its on-enter callback comes from the loop. */
	ck_assert_int_eq(rsc_entry_state(r), RSC_ENTERED);
	ck_assert_int_eq(rsc_entry_fd(r), p[0]);
	ck_assert_int_eq(rsc_entry_on_enter(r, count_enter, NULL), 0);
	ck_assert_int_eq(on_enter_calls, 0);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(on_enter_calls, 1);
	ck_assert_int_eq(on_enter_res, p[0]);
	ck_assert_int_eq(rsc_entry_on_enter(r, count_enter, NULL), -EALREADY);
	/* Close-on-exec by default, as any acquire. */
	ck_assert(fcntl(p[0], F_GETFD) & FD_CLOEXEC);
	ck_assert_str_eq(rsc_entry_name(r), "adopt");
	ck_assert_int_eq(t_fd_count(), before + 2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert(!fd_is_open(p[0]) && !fd_is_open(p[1]));
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 2);
}
END_TEST

START_TEST(adopt_refuses_a_closed_or_owned_descriptor)
{
	struct rsc_loop *other;
	struct rsc_scope *s, *o;
	struct rsc_entry *e, *f;
	int efd = eventfd(0, EFD_CLOEXEC), fd;

	t_make_files(1);
	ck_assert_int_ge(efd, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "own", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, -1, 0, &e), -EBADF);
	ck_assert_int_eq(rsc_adopt(s, 100000, 0, &e), -EBADF);
	ck_assert_int_eq(rsc_adopt(s, efd, 0x80, &e), -EINVAL);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &e), 0);
	/* Two owners is the double-close bug: refused, also from another loop. */
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &f), -EEXIST);
	ck_assert_ptr_null(f);
	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "other", &o), 0);
	ck_assert_int_eq(rsc_adopt(o, efd, 0, &f), -EEXIST);
	/* A descriptor the ring opened is owned too. */
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &f), 0);
	fd = rsc_entry_wait(f);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_adopt(o, fd, 0, NULL), -EEXIST);
	/* The runtime's own descriptors are not for adopting: a release would close a ring. */
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	for (fd = 0; fd < 64; fd++) {
		char target[64] = "";
		char link[32];
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n > 0 && strstr(target, "io_uring"))
			ck_assert_int_eq(rsc_adopt(s, fd, 0, NULL), -EEXIST);
	}
	ck_assert_int_eq(rsc_loop_shutdown(other, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(!fd_is_open(efd));
}
END_TEST

START_TEST(detach_hands_the_descriptor_back_and_never_closes_it)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int fd, again;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "d", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_detach(e), -EBUSY); /* still entering */
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	fd = rsc_entry_detach(e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_entry_fd(e), -ESTALE); /* the entry is gone */
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	/* Its scope closed without touching it: it is the caller's. */
	ck_assert(fd_is_open(fd));
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 0);
	/* Detached, it can be adopted again: the ledger let it go. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "again", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, fd, 0, &e), 0);
	again = rsc_entry_detach(e);
	ck_assert_int_eq(again, fd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(close(fd), 0);
}
END_TEST

START_TEST(detach_refuses_while_io_is_in_flight)
{
	struct rsc_scope *s;
	struct rsc_entry *r, *d;
	char buf[8];
	int p[2], res = -1000;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "io", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &r), 0);
	ck_assert_int_eq(rsc_read(r, buf, sizeof(buf), -1, t_store_res, &res), 0);
	ck_assert_int_eq(rsc_entry_detach(r), -EBUSY);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "tracked I/O"));
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	while (res == -1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(res, 1); /* one byte read */
	ck_assert_int_eq(rsc_entry_detach(r), p[0]);
	/* A deferred entry holds no descriptor. */
	ck_assert_int_eq(rsc_defer(s, NULL, NULL, &d), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(moved_entry_is_released_by_its_new_scope)
{
	struct rsc_scope *setup, *owner;
	struct rsc_entry *a, *b;
	char got[256];

	t_make_files(3);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "owner", &owner), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "setup", &setup), 0);
	t_open_files(owner, 0, 1);
	ck_assert_int_eq(rsc_open(setup, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, &a), 0);
	ck_assert_int_eq(rsc_open(setup, AT_FDCWD, t_path("f2"), O_RDONLY, 0, 0, &b), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_move(a, owner), 0);
	ck_assert_int_eq(rsc_entry_move(b, owner), 0);
	ck_assert(rsc_entry_scope(a) == owner);
	ck_assert_int_eq(rsc_scope_close_wait(setup, NULL), 0);
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "setup", got, sizeof(got)), 0);
	ck_assert_int_ge(rsc_entry_fd(a), 0);
	ck_assert_int_eq(rsc_scope_close_wait(owner, NULL), 0);
	/* Newest first: the moved ones became the newest entries of owner. */
	ck_assert_int_eq(t_events(RSC_EV_RELEASED, "owner", got, sizeof(got)), 3);
	ck_assert_msg(strstr(got, "f2") < strstr(got, "f1") && strstr(got, "f1") < strstr(got, "f0"),
		      "order: %s", got);
}
END_TEST

START_TEST(moved_scope_is_popped_all_to_its_owner)
{
	struct rsc_loop *other;
	struct rsc_scope *server, *setup, *conn, *inner, *o;

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "server", &server), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "setup", &setup), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, setup, "conn", &conn), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, conn, "inner", &inner), 0);
	t_open_files(conn, 0, 1);
	t_open_files(inner, 1, 1);
	t_run();
	ck_assert_int_eq(rsc_scope_move(conn, inner), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(conn, conn), -EINVAL);
	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "o", &o), 0);
	ck_assert_int_eq(rsc_scope_move(conn, o), -EXDEV);
	ck_assert_int_eq(rsc_loop_shutdown(other, NULL), 0);
	ck_assert_int_eq(rsc_scope_move(conn, server), 0);
	ck_assert_int_eq(rsc_scope_close_wait(setup, NULL), 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 0);
	ck_assert(t_fd_open_to("f0") && t_fd_open_to("f1"));
	/* To the top of the loop, then closed there. */
	ck_assert_int_eq(rsc_scope_move(conn, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(server, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_move(conn, server), -EINVAL); /* closing */
	ck_assert_int_eq(rsc_scope_close_wait(conn, NULL), 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 2);
	t_run();
}
END_TEST

START_TEST(entry_moved_into_a_failing_scope_is_released_once_with_the_error)
{
	struct rsc_scope *from, *to;
	struct tmgr m = { .exit = TM_EXIT_CLOSE };
	struct rsc_entry *e;
	struct rsc_error *err = NULL;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "from", &from), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "to", &to), 0);
	ck_assert_int_eq(rsc_push(from, &tmgr_manager, &m, &e), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_move(e, to), 0);
	ck_assert_int_eq(rsc_scope_fail(to, -ECONNRESET, "handshake"), 0);
	/* The unwind owns it now: nobody else may release, detach or move it. */
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_entry_move(e, from), -EALREADY);
	ck_assert_int_eq(rsc_entry_detach(e), -EALREADY);
	ck_assert_int_eq(m.exit_calls, 0); /* nothing runs inside rsc_scope_fail */
	ck_assert_int_eq(rsc_scope_close_wait(to, &err), -ECONNRESET);
	ck_assert_int_eq(m.exit_calls, 1);
	ck_assert_int_eq(m.pending_seen, -ECONNRESET);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "handshake");
	ck_assert_str_eq(rsc_error_scope(err), "to");
	rsc_error_free(err);
	ck_assert_int_eq(rsc_scope_close_wait(from, NULL), 0);
	ck_assert_int_eq(m.exit_calls, 1);
}
END_TEST

START_TEST(unwind_owns_its_entries_and_keeps_their_suppression)
{
	struct rsc_scope *s;
	struct tmgr below = { .exit = TM_EXIT_CLOSE }, sup = { .exit = TM_EXIT_SUPPRESS };
	struct rsc_entry *a, *b;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &below, &a), 0);
	ck_assert_int_eq(rsc_push(s, &tmgr_manager, &sup, &b), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_fail(s, -EPIPE, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, NULL), -EALREADY);
	/* An early release cannot pull it out of the unwind's LIFO order. */
	ck_assert_int_eq(rsc_entry_release(b, NULL, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(sup.pending_seen, -EPIPE);
	ck_assert_int_eq(below.pending_seen, 0); /* suppressed above it */
}
END_TEST

static int order[8], n_order;

static int deferred(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	order[n_order++] = (int)(long)arg;
	if ((long)arg == 2) {
		ck_assert_ptr_nonnull(pending);
		ck_assert_int_eq(rsc_error_errno(pending), -ENOENT);
		return RSC_EXIT_SUPPRESS;
	}
	ck_assert_ptr_null(pending);
	return 0;
}

START_TEST(deferred_callbacks_run_lifo_and_may_suppress)
{
	struct rsc_scope *s;
	struct rsc_entry *d;

	n_order = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_defer(s, deferred, (void *)1L, &d), 0);
	ck_assert_int_eq(rsc_entry_state(d), RSC_ENTERED);
	ck_assert_str_eq(rsc_entry_name(d), "defer");
	ck_assert_ptr_eq(rsc_entry_arg(d), (void *)1L);
	ck_assert_int_eq(rsc_defer(s, deferred, (void *)2L, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("missing"), O_RDONLY, 0, 0, NULL), 0);
	t_run(); /* the failed open unwinds the scope: the deferred exits see it */
	ck_assert_int_eq(n_order, 2);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0); /* suppressed */
	ck_assert_int_eq(order[0], 2);
	ck_assert_int_eq(order[1], 1);
}
END_TEST

START_TEST(data_rides_on_handles)
{
	struct rsc_scope *s;
	struct rsc_entry *d;
	int x, y;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_ptr_null(rsc_scope_data(s));
	ck_assert_int_eq(rsc_scope_set_data(s, &x), 0);
	ck_assert_ptr_eq(rsc_scope_data(s), &x);
	ck_assert_int_eq(rsc_defer(s, deferred, (void *)1L, &d), 0);
	ck_assert_int_eq(rsc_entry_set_data(d, &y), 0);
	ck_assert_ptr_eq(rsc_entry_data(d), &y);
	ck_assert_int_eq(rsc_scope_set_data(NULL, &x), -EINVAL);
	ck_assert_int_eq(rsc_entry_set_data(NULL, &x), -EINVAL);
	n_order = 0;
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_ptr_null(rsc_scope_data(s));
	ck_assert_int_eq(rsc_scope_set_data(s, &x), -ESTALE);
	ck_assert_int_eq(rsc_entry_set_data(d, &x), -ESTALE);
}
END_TEST

static int closed_calls, closed_status;
static char closed_names[128];

static void on_closed(struct rsc_scope *s, int status, const struct rsc_error *err,
		      void *data)
{
	(void)err;
	(void)data;
	closed_calls++;
	closed_status = status;
	strcat(closed_names, rsc_scope_name(s));
	strcat(closed_names, ",");
}

START_TEST(on_close_hears_every_way_a_scope_ends)
{
	struct rsc_scope *parent, *child, *failing, *top;

	closed_calls = 0;
	closed_names[0] = '\0';
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "parent", &parent), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, parent, "child", &child), 0);
	ck_assert_int_eq(rsc_scope_on_close(child, on_closed, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(parent, NULL), 0);
	ck_assert_int_eq(closed_calls, 1); /* closed by its parent */
	/* A failed acquire unwinds it: heard then, before anyone closes it. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "failing", &failing), 0);
	ck_assert_int_eq(rsc_scope_on_close(failing, on_closed, NULL), 0);
	ck_assert_int_eq(rsc_open(failing, AT_FDCWD, t_path("missing"), O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(closed_calls, 2);
	ck_assert_int_eq(closed_status, -ENOENT);
	ck_assert_int_eq(rsc_scope_on_close(failing, on_closed, NULL), -EALREADY);
	ck_assert_int_eq(rsc_scope_close_wait(failing, NULL), -ENOENT);
	ck_assert_int_eq(closed_calls, 2); /* once */
	/* The loop's shutdown closes what is left. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "top", &top), 0);
	ck_assert_int_eq(rsc_scope_on_close(top, on_closed, NULL), 0);
	ck_assert_int_eq(rsc_loop_shutdown(t_loop, NULL), 0);
	t_loop = NULL;
	ck_assert_int_eq(closed_calls, 3);
	ck_assert_str_eq(closed_names, "child,failing,top,");
}
END_TEST

START_TEST(release_wait_returns_the_release_result)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	int fd;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	fd = rsc_entry_wait(e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert(!t_fd_open_to(t_dir));
	ck_assert_int_eq(rsc_entry_state(e), RSC_EXITED);
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), -EALREADY);
	if (rsc_fault_set(t_loop, "close:1:EIO") == 0) {
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
		ck_assert_int_eq(rsc_entry_release_wait(e, &err), -EIO);
		ck_assert_ptr_nonnull(err);
		ck_assert_str_eq(rsc_error_op(err), "close");
		ck_assert_str_eq(rsc_error_scope(err), "s");
		rsc_error_free(err);
	}
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

START_TEST(releasing_a_listener_closes_its_socket)
{
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in a = { .sin_family = AF_INET };
	int before = t_fd_count(), fd;

	if (!t_kernel_has(IORING_OP_SOCKET)) {
		printf("SKIP releasing_a_listener_closes_its_socket: kernel lacks IORING_OP_SOCKET\n");
		return;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	ck_assert_int_eq(rsc_listen(srv, (struct sockaddr *)&a, sizeof(a), 8, 0, &l), 0);
	fd = rsc_entry_wait(l);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(t_fd_count(), before + 1);
	ck_assert_int_eq(rsc_entry_release_wait(l, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert(!fd_is_open(fd));
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
}
END_TEST

START_TEST(moved_listener_keeps_its_socket_when_its_old_scope_closes)
{
	struct rsc_scope *setup, *owner;
	struct rsc_entry *l;
	struct sockaddr_in a = { .sin_family = AF_INET };
	int before = t_fd_count(), fd;

	if (!t_kernel_has(IORING_OP_SOCKET)) {
		printf("SKIP moved_listener_keeps_its_socket_when_its_old_scope_closes: kernel lacks IORING_OP_SOCKET\n");
		return;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "owner", &owner), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "setup", &setup), 0);
	ck_assert_int_eq(rsc_listen(setup, (struct sockaddr *)&a, sizeof(a), 8, 0, &l), 0);
	fd = rsc_entry_wait(l);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_entry_move(l, owner), 0);
	ck_assert_int_eq(rsc_scope_close_wait(setup, NULL), 0);
	ck_assert(fd_is_open(fd));
	ck_assert_int_eq(rsc_entry_fd(l), fd);
	ck_assert_int_eq(t_fd_count(), before + 1);
	ck_assert_int_eq(rsc_scope_close_wait(owner, NULL), 0);
	ck_assert(!fd_is_open(fd));
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1);
}
END_TEST

static int timer_fired;

static void timer_cb(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	(void)data;
	if (res == -ETIME)
		timer_fired++;
}

START_TEST(timer_keeps_firing_with_a_users_on_enter)
{
	struct rsc_scope *s;
	struct rsc_entry *t;

	timer_fired = 0;
	on_enter_calls = 0;
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_timer(s, 1, timer_cb, NULL, &t), 0);
	ck_assert_int_eq(rsc_entry_on_enter(t, count_enter, NULL), 0);
	while (!timer_fired)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(on_enter_calls, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* Re-entry from hooks that run outside rsc_loop_run. */
static int reentry_res[4];

static int reentrant_enter(struct rsc_entry *e, void *arg)
{
	struct io_uring_sqe *sqe;

	(void)arg;
	reentry_res[0] = rsc_loop_shutdown(t_loop, NULL);
	reentry_res[1] = rsc_scope_close_wait(rsc_entry_scope(e), NULL);
	reentry_res[2] = rsc_entry_wait(e);
	reentry_res[3] = rsc_loop_run(t_loop, RSC_RUN_NOWAIT);
	if (rsc_entry_get_sqes(e, 1, &sqe) < 0)
		return -EIO;
	io_uring_prep_nop(sqe);
	return 0;
}

static int reentrant_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	(void)p;
	(void)arg;
	reentry_res[0] = rsc_scope_close_wait(rsc_entry_scope(e), NULL);
	reentry_res[1] = rsc_loop_shutdown(t_loop, NULL);
	reentry_res[2] = rsc_entry_release_wait(e, NULL);
	reentry_res[3] = rsc_push(rsc_entry_scope(e), &tmgr_manager, NULL, NULL);
	return 0;
}

static const struct rsc_manager reentrant = {
	.size = sizeof(struct rsc_manager),
	.name = "reentrant",
	.enter = reentrant_enter,
	.exit = reentrant_exit,
};

START_TEST(hooks_outside_the_loop_cannot_block_or_run_it)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int i;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_push(s, &reentrant, NULL, &e), 0);
	for (i = 0; i < 4; i++)
		ck_assert_msg(reentry_res[i] == -EDEADLK, "enter call %d: %d", i, reentry_res[i]);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	memset(reentry_res, 0, sizeof(reentry_res));
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0); /* the exit runs in here */
	for (i = 0; i < 4; i++)
		ck_assert_msg(reentry_res[i] == -EDEADLK, "exit call %d: %d", i, reentry_res[i]);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

static void trace_reenters(struct rsc_loop *loop, enum rsc_event ev,
			   const struct rsc_scope *s, const struct rsc_entry *e,
			   int res, void *data)
{
	(void)ev;
	(void)s;
	(void)e;
	(void)res;
	ck_assert_int_eq(rsc_loop_run(loop, RSC_RUN_NOWAIT), -EDEADLK);
	ck_assert_int_eq(rsc_loop_shutdown(loop, NULL), -EDEADLK);
	(*(int *)data)++;
}

START_TEST(trace_callback_cannot_run_the_loop)
{
	struct rsc_scope *s;
	int calls = 0;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, trace_reenters, &calls), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	t_open_files(s, 0, 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_ge(calls, 3);
}
END_TEST

START_TEST(managers_state_their_size_and_flags)
{
	struct rsc_scope *s;
	struct rsc_manager m = tmgr_manager;
	struct tmgr a = { .exit = TM_EXIT_CLOSE }, b = { .exit = TM_EXIT_CLOSE };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	m.size = 0;
	ck_assert_int_eq(rsc_push(s, &m, &a, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "sizeof"));
	m.size = sizeof(m);
	m.flags = 0x100;
	ck_assert_int_eq(rsc_push(s, &m, &a, NULL), -EINVAL);
	/* Unordered custom releases go out in one batch: one submit. */
	m.flags = RSC_MANAGER_UNORDERED;
	ck_assert_int_eq(rsc_push(s, &m, &a, NULL), 0);
	ck_assert_int_eq(rsc_push(s, &m, &b, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	/* Both exits ran before either release completed: no round trip. */
	ck_assert_int_eq(a.exit_calls + b.exit_calls, 2);
	ck_assert_int_eq(b.releases_before_exit, 0);
	ck_assert_int_eq(a.releases_before_exit, 0);
}
END_TEST

START_TEST(counters_have_names)
{
	ck_assert_str_eq(rsc_counter_name(RSC_CTR_SQES), "sqes");
	ck_assert_str_eq(rsc_counter_name(RSC_CTR_FAULTS_INJECTED), "faults_injected");
	ck_assert_ptr_null(rsc_counter_name(RSC_CTR_COUNT));
	ck_assert_ptr_null(rsc_counter_name((enum rsc_counter)-1));
}
END_TEST

Suite *make_ownership_suite(void)
{
	Suite *s = suite_create("ownership");
	TCase *tc = tcase_create("handles");

	t_add_fixture(tc);
	tcase_add_test(tc, stale_entry_handle_never_acts_on_the_reused_object);
	tcase_add_test(tc, stale_handle_is_refused_after_reuse_on_another_loop);
	tcase_add_test(tc, handles_of_the_wrong_kind_and_garbage_are_refused);
	tcase_add_test(tc, adopted_descriptors_are_released_by_the_ring);
	tcase_add_test(tc, adopt_refuses_a_closed_or_owned_descriptor);
	tcase_add_test(tc, detach_hands_the_descriptor_back_and_never_closes_it);
	tcase_add_test(tc, detach_refuses_while_io_is_in_flight);
	tcase_add_test(tc, moved_entry_is_released_by_its_new_scope);
	tcase_add_test(tc, moved_scope_is_popped_all_to_its_owner);
	tcase_add_test(tc, entry_moved_into_a_failing_scope_is_released_once_with_the_error);
	tcase_add_test(tc, unwind_owns_its_entries_and_keeps_their_suppression);
	tcase_add_test(tc, deferred_callbacks_run_lifo_and_may_suppress);
	tcase_add_test(tc, data_rides_on_handles);
	tcase_add_test(tc, on_close_hears_every_way_a_scope_ends);
	tcase_add_test(tc, release_wait_returns_the_release_result);
	tcase_add_test(tc, releasing_a_listener_closes_its_socket);
	tcase_add_test(tc, moved_listener_keeps_its_socket_when_its_old_scope_closes);
	tcase_add_test(tc, timer_keeps_firing_with_a_users_on_enter);
	tcase_add_test(tc, hooks_outside_the_loop_cannot_block_or_run_it);
	tcase_add_test(tc, trace_callback_cannot_run_the_loop);
	tcase_add_test(tc, managers_state_their_size_and_flags);
	tcase_add_test(tc, counters_have_names);
	suite_add_tcase(s, tc);
	return s;
}
