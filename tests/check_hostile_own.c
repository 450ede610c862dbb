/* SPDX-License-Identifier: MIT */
/*
 * Hostile probes of the ownership calls, written from DESIGN.md section 7 and
 * the pages of rsc_adopt, rsc_entry_detach, rsc_entry_move, rsc_scope_move,
 * rsc_scope_on_close and rsc_loop_shutdown: a descriptor has exactly one
 * owner at every moment, and a number is never closed twice (a file opened
 * on the reused number must survive).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* A file opened on the lowest free number: it must survive what follows. */
static int open_sentinel(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	return fd;
}

static bool same_file(int fd, const struct stat *st)
{
	struct stat now;

	return fstat(fd, &now) == 0 && now.st_dev == st->st_dev && now.st_ino == st->st_ino;
}

/* ------------------------------------------------------------------ adopt */

/*
 * rsc_adopt(3): a descriptor "stays owned until its owner's release has
 * submitted its close". rsc_entry_release() from the caller only prepares
 * the close; the loop submits it on its next turn. Adopted again meanwhile,
 * the number would have two owners: the first close ends the file, the
 * kernel gives the number to a new one, and the second owner closes that.
 */
START_TEST(adopt_after_a_release_not_yet_submitted_is_eexist)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *e2 = NULL;
	struct stat st;
	int p[2], sentinel, ret;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	ret = rsc_adopt(s, p[0], 0, &e2);
	ck_assert_int_eq(ret, -EEXIST);
	ck_assert_ptr_null(e2);
	t_run();
	ck_assert(!fd_open(p[0]));
	/* The number is someone else's now: nothing of ours touches it. */
	sentinel = open_sentinel();
	ck_assert_int_eq(sentinel, p[0]);
	ck_assert_int_eq(fstat(sentinel, &st), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(same_file(sentinel, &st));
	close(sentinel);
	close(p[1]);
}
END_TEST

/* The same, from another loop of the process: the ledger is process-wide. */
START_TEST(adopt_on_another_loop_after_a_release_not_yet_submitted_is_eexist)
{
	struct rsc_loop *l2;
	struct rsc_scope *s, *s2;
	struct rsc_entry *e, *e2 = NULL;
	int p[2], ret;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_loop_new(&l2, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(l2, NULL, "s2", &s2), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	t_run();
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	ret = rsc_adopt(s2, p[0], 0, &e2);
	ck_assert_int_eq(ret, -EEXIST);
	t_run();
	ck_assert(!fd_open(p[0]));
	ck_assert_int_eq(rsc_scope_close_wait(s2, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(l2), 0);
	close(p[1]);
}
END_TEST

/* Two threads, two loops, one descriptor, at once: exactly one owner. */
struct racer {
	pthread_barrier_t *bar;
	int fd;
	int ret;
	int closed; /* the owner's release result */
};

static void *adopt_racer(void *arg)
{
	struct racer *r = arg;
	struct rsc_loop *l;
	struct rsc_scope *s;
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "race", &s), 0);
	pthread_barrier_wait(r->bar);
	r->ret = rsc_adopt(s, r->fd, 0, &e);
	/* Both have answered before the owner lets go. */
	pthread_barrier_wait(r->bar);
	r->closed = rsc_scope_close_wait(s, NULL);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	return NULL;
}

START_TEST(adopt_of_one_descriptor_on_two_threads_has_one_winner)
{
	pthread_barrier_t bar;
	int round;

	ck_assert_int_eq(pthread_barrier_init(&bar, NULL, 2), 0);
	for (round = 0; round < 50; round++) {
		struct racer a = { .bar = &bar }, b = { .bar = &bar };
		pthread_t ta, tb;
		int p[2];

		ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
		a.fd = b.fd = p[0];
		ck_assert_int_eq(pthread_create(&ta, NULL, adopt_racer, &a), 0);
		ck_assert_int_eq(pthread_create(&tb, NULL, adopt_racer, &b), 0);
		ck_assert_int_eq(pthread_join(ta, NULL), 0);
		ck_assert_int_eq(pthread_join(tb, NULL), 0);
		ck_assert_msg((a.ret == 0 && b.ret == -EEXIST) || (a.ret == -EEXIST && b.ret == 0),
			      "round %d: %d and %d", round, a.ret, b.ret);
		ck_assert_int_eq(a.closed, 0);
		ck_assert_int_eq(b.closed, 0);
		ck_assert(!fd_open(p[0]));
		close(p[1]);
	}
	pthread_barrier_destroy(&bar);
}
END_TEST

/*
 * ringscope_audit(7), full level: a number closed behind the runtime's back
 * and reused is never closed by it; the release reports it. Meanwhile the
 * ledger still names the entry as its owner, so the new file cannot be
 * adopted (rsc_adopt(3): -EEXIST while a live entry owns the number).
 */
START_TEST(adopted_then_closed_behind_its_back_and_reused_is_spared_at_full)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *e2 = NULL;
	struct stat st;
	int p[2], sentinel, ret;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	t_run();
	close(p[0]);
	sentinel = open_sentinel();
	ck_assert_int_eq(sentinel, p[0]);
	ck_assert_int_eq(fstat(sentinel, &st), 0);
	ck_assert_int_eq(rsc_adopt(s, sentinel, 0, &e2), -EEXIST);
	ret = rsc_entry_release_wait(e, NULL);
	ck_assert_int_ne(ret, 0); /* it could not release what it owned */
	ck_assert(same_file(sentinel, &st));
	ck_assert_int_ge(rsc_audit_count(t_loop), 1);
	ck_assert_int_eq(rsc_finding_kind(rsc_audit_finding(t_loop, 0)), RSC_FINDING_NOT_RELEASED);
	ck_assert_int_eq(rsc_finding_fd(rsc_audit_finding(t_loop, 0)), sentinel);
	/* Now nobody owns the number: it can be adopted, and is closed once. */
	ck_assert_int_eq(rsc_adopt(s, sentinel, 0, &e2), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(!fd_open(sentinel));
	rsc_audit_clear(t_loop);
	close(p[1]);
}
END_TEST

/* Every descriptor the runtime opens for itself is refused, whatever it is. */
static int list_fds(int *out, int max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0, self = dirfd(d);

	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd == self)
			continue;
		if (n < max)
			out[n++] = fd;
	}
	closedir(d);
	return n;
}

static bool in_list(const int *l, int n, int fd)
{
	for (int i = 0; i < n; i++)
		if (l[i] == fd)
			return true;
	return false;
}

static void nop_post(struct rsc_loop *l, void *data)
{
	(void)l;
	(*(int *)data)++;
}

/* rsc_adopt(3) -EOPNOTSUPP: a ring of the application's own, which the
 * kernel's IORING_OP_CLOSE refuses; adopted, its release failed and the
 * descriptor outlived its scope. An eventfd (an anonymous inode too) is
 * still adopted and closed. */
START_TEST(adopt_of_an_io_uring_instance_is_refused)
{
	struct io_uring ring;
	struct rsc_scope *s;
	struct rsc_entry *e = NULL;
	int before, efd;

	ck_assert_int_eq(io_uring_queue_init(4, &ring, 0), 0);
	before = t_fd_count();
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "own", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, ring.ring_fd, 0, &e), -EOPNOTSUPP);
	ck_assert_ptr_null(e);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "io_uring instance"));
	efd = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(efd, 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &e), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(fcntl(efd, F_GETFD), -1); /* the eventfd was released */
	ck_assert_int_ge(fcntl(ring.ring_fd, F_GETFD), 0); /* the ring is still the caller's */
	ck_assert_int_eq(t_fd_count(), before);
	io_uring_queue_exit(&ring);
}
END_TEST

START_TEST(adopt_refuses_every_descriptor_the_runtime_opened_for_itself)
{
	struct rsc_loop *l;
	struct rsc_scope *s, *s2;
	struct rsc_entry *e;
	int before[256], after[256], nb, na, i, refused = 0, posted = 0;
	char path[64];

	nb = list_fds(before, 256);
	ck_assert_int_eq(rsc_loop_new(&l, 8, RSC_LOOP_POLLABLE), 0);
	ck_assert_int_eq(rsc_loop_set_audit(l, RSC_AUDIT_FULL), 0);
	snprintf(path, sizeof(path), "%s/trace.json", t_dir);
	ck_assert_int_eq(rsc_loop_trace_file(l, path), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_loop_post(l, nop_post, &posted), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "other", &s2), 0);
	na = list_fds(after, 256);
	for (i = 0; i < na; i++) {
		if (in_list(before, nb, after[i]))
			continue;
		e = (struct rsc_entry *)&e;
		/* Not from this loop's scope, nor from another loop's. */
		ck_assert_int_eq(rsc_adopt(s, after[i], 0, &e), -EEXIST);
		ck_assert_ptr_null(e);
		ck_assert_int_eq(rsc_adopt(s2, after[i], RSC_NO_CLOEXEC, &e), -EEXIST);
		ck_assert(fd_open(after[i]));
		refused++;
	}
	ck_assert_int_ge(refused, 3); /* ring, pollable fd, trace file at least */
	ck_assert_int_eq(rsc_scope_close_wait(s2, NULL), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert_int_eq(posted, 1);
	na = list_fds(after, 256);
	ck_assert_int_eq(na, nb);
}
END_TEST

/* ---------------------------------------------------------------- detach */

/* rsc_entry_detach(3): -EDEADLK from a manager's exit hook, also for
 * another entry; that entry then goes in its own turn, closed once. */
struct detacher {
	struct rsc_entry *victim;
	int ret_detach, ret_move, ret_release;
	struct rsc_scope *to;
};

static int detach_other(struct rsc_entry *self, const struct rsc_error *pending, void *arg)
{
	struct detacher *d = arg;

	(void)self;
	(void)pending;
	d->ret_detach = rsc_entry_detach(d->victim);
	d->ret_move = rsc_entry_move(d->victim, d->to);
	d->ret_release = rsc_entry_release(d->victim, NULL, NULL);
	return 0;
}

START_TEST(detach_of_another_entry_from_an_exit_hook_is_refused)
{
	struct rsc_scope *s, *to;
	struct rsc_entry *victim;
	struct detacher d = { 0 };
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "to", &to), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &victim), 0);
	d.victim = victim;
	d.to = to;
	ck_assert_int_eq(rsc_defer(s, detach_other, &d, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(d.ret_detach, -EDEADLK);
	ck_assert_int_eq(d.ret_move, -EDEADLK);
	ck_assert_int_eq(d.ret_release, -EDEADLK);
	ck_assert(!fd_open(p[0]));
	ck_assert_int_eq(rsc_scope_close_wait(to, NULL), 0);
	close(p[1]);
}
END_TEST

/* ------------------------------------------------------------------ moves */

/* rsc_entry_move(3) then the old scope fails in the same turn: the entry is
 * the new scope's; the failing unwind neither releases it nor sees it. */
START_TEST(entry_moved_then_old_scope_fails_belongs_to_the_new_scope)
{
	struct rsc_scope *a, *b;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	int p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_adopt(a, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_entry_move(e, b), 0);
	ck_assert_int_eq(rsc_scope_fail(a, -EPROTO, "body"), 0);
	/* Not a's: a's unwind does not own it. */
	ck_assert_int_eq(rsc_entry_move(e, b), 0);
	ck_assert_int_eq(rsc_entry_move(e, a), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(a, &err), -EPROTO);
	ck_assert_int_eq(rsc_error_depth(err), 1);
	rsc_error_free(err);
	ck_assert(fd_open(p[0]));
	ck_assert_ptr_eq(rsc_entry_scope(e), b);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert(!fd_open(p[0]));
	close(p[1]);
}
END_TEST

/* rsc_scope_move(3) to the top, then the old parent closes: the moved scope
 * and what it holds stay open, and no audit blames either scope. */
START_TEST(scope_moved_to_the_top_outlives_its_old_parent)
{
	struct rsc_scope *parent, *child;
	struct rsc_entry *e;
	int p[2], before;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	before = t_fd_count();
	/* Made before the scopes: the write end, the test's, is no leak of theirs. */
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "parent", &parent), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, parent, "child", &child), 0);
	ck_assert_int_eq(rsc_adopt(child, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_scope_move(child, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(parent, NULL), 0);
	ck_assert_int_eq(rsc_scope_state(parent), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(child), RSC_SCOPE_OPEN);
	ck_assert(fd_open(p[0]));
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	/* It is a top scope now: moving it back under a freed one is stale. */
	ck_assert_int_eq(rsc_scope_move(child, parent), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(child, NULL), 0);
	ck_assert(!fd_open(p[0]));
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	close(p[1]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* Moves into one's own subtree or scope, nested: refused, nothing moved. */
START_TEST(scope_move_into_a_grandchild_is_einval_and_moves_nothing)
{
	struct rsc_scope *a, *b, *c;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, a, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, b, "c", &c), 0);
	ck_assert_int_eq(rsc_scope_move(a, c), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(a, a), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(b, c), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(c, c), -EINVAL);
	/* Moved under an ancestor further up: allowed. */
	ck_assert_int_eq(rsc_scope_move(c, a), 0);
	ck_assert_int_eq(rsc_scope_move(b, c), 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	ck_assert_int_eq(rsc_scope_state(b), -ESTALE);
	ck_assert_int_eq(rsc_scope_state(c), -ESTALE);
}
END_TEST


/* A scope in its grace, or below one whose close was asked: nothing enters
 * (rsc_adopt(3): -ESHUTDOWN), and its entries and child are the unwind's
 * (-EALREADY); the caller keeps the refused descriptor. */
START_TEST(adopt_and_moves_around_a_grace_and_a_closing_ancestor)
{
	struct rsc_scope *g, *gc, *top, *other;
	struct rsc_entry *e, *e2 = (struct rsc_entry *)&e2;
	int p[2], q[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(q, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "g", &g), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, g, "gc", &gc), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "top", &top), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "other", &other), 0);
	ck_assert_int_eq(rsc_adopt(g, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(g, 50, NULL, NULL), 0);
	ck_assert_int_eq(rsc_adopt(g, q[0], 0, &e2), -ESHUTDOWN);
	ck_assert_ptr_null(e2);
	ck_assert_int_eq(rsc_adopt(gc, q[0], 0, &e2), -ESHUTDOWN);
	ck_assert_int_eq(rsc_entry_move(e, other), -EALREADY);
	ck_assert_int_eq(rsc_entry_detach(e), -EALREADY);
	ck_assert_int_eq(rsc_scope_move(gc, other), -EALREADY);
	ck_assert_int_eq(rsc_scope_move(other, gc), -EINVAL);
	ck_assert_int_eq(rsc_scope_move(other, g), -EINVAL);
	/* A close asked of an ancestor, not started yet. */
	ck_assert_int_eq(rsc_scope_open(t_loop, top, "tc", &gc), 0);
	ck_assert_int_eq(rsc_scope_close(top, NULL, NULL), 0);
	ck_assert_int_eq(rsc_adopt(gc, q[0], 0, &e2), -ESHUTDOWN);
	ck_assert_int_eq(rsc_adopt(top, q[0], 0, &e2), -ESHUTDOWN);
	ck_assert_int_eq(rsc_adopt(other, -2147483647 - 1, 0, &e2), -EBADF);
	t_run();
	ck_assert(!fd_open(p[0]));
	ck_assert(fd_open(q[0]));
	ck_assert_int_eq(rsc_adopt(other, q[0], 0, &e2), 0);
	ck_assert_int_eq(rsc_scope_close_wait(other, NULL), 0);
	ck_assert(!fd_open(q[0]));
	close(p[1]);
	close(q[1]);
}
END_TEST

/* ------------------------------------------------------------- on_close */

struct oc {
	int calls, status, again;
	struct rsc_scope *self;
};

static void oc_cb(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct oc *o = data;

	(void)err;
	o->calls++;
	o->status = status;
	/* From inside itself: the scope has unwound. */
	o->again = rsc_scope_on_close(s, oc_cb, data);
}

struct late_oc {
	struct rsc_scope *s;
	struct oc *oc;
	int ret;
};

static int register_late(struct rsc_entry *self, const struct rsc_error *pending, void *arg)
{
	struct late_oc *l = arg;

	(void)self;
	(void)pending;
	l->ret = rsc_scope_on_close(l->s, oc_cb, l->oc);
	return 0;
}

START_TEST(on_close_set_once_the_unwind_started_is_called_once)
{
	struct rsc_scope *s;
	struct oc o = { 0 };
	struct late_oc l = { .oc = &o };

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	l.s = s;
	ck_assert_int_eq(rsc_defer(s, register_late, &l, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "body"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EIO);
	ck_assert_int_eq(l.ret, 0);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.status, -EIO);
	ck_assert_int_eq(o.again, -EALREADY);
}
END_TEST

/* --------------------------------------------------------- loop shutdown */

/* rsc_loop_shutdown(3) releases every owner once; a detached descriptor is
 * the caller's and survives; a number reused meanwhile is untouched. */
START_TEST(shutdown_releases_owned_once_and_spares_the_callers)
{
	struct rsc_loop *l;
	struct rsc_scope *a, *b;
	struct rsc_entry *ea, *eb, *ed;
	struct stat st;
	int p[2], q[2], r[2], fd, sentinel, before = t_fd_count();

	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(q, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(r, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(l, a, "b", &b), 0);
	ck_assert_int_eq(rsc_adopt(a, p[0], 0, &ea), 0);
	ck_assert_int_eq(rsc_adopt(b, q[0], 0, &eb), 0);
	ck_assert_int_eq(rsc_adopt(b, r[0], 0, &ed), 0);
	ck_assert_int_eq(rsc_entry_move(ea, b), 0);
	ck_assert_int_eq(rsc_scope_move(b, NULL), 0);
	fd = rsc_entry_detach(ed);
	ck_assert_int_eq(fd, r[0]);
	/* A release prepared but not submitted when the shutdown starts. */
	ck_assert_int_eq(rsc_entry_release(eb, NULL, NULL), 0);
	ck_assert_int_eq(rsc_loop_shutdown(l, NULL), 0);
	ck_assert(!fd_open(p[0]));
	ck_assert(!fd_open(q[0]));
	ck_assert(fd_open(r[0]));
	sentinel = open_sentinel();
	ck_assert_int_eq(fstat(sentinel, &st), 0);
	close(p[1]);
	close(q[1]);
	close(r[0]);
	close(r[1]);
	ck_assert(same_file(sentinel, &st));
	close(sentinel);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/* ------------------------------------------------------------- data */

START_TEST(data_of_a_freed_handle_is_gone_and_not_settable)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int p[2], x;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &e), 0);
	ck_assert_int_eq(rsc_scope_set_data(s, &x), 0);
	ck_assert_int_eq(rsc_entry_set_data(e, &x), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_ptr_null(rsc_scope_data(s));
	ck_assert_ptr_null(rsc_entry_data(e));
	ck_assert_int_eq(rsc_scope_set_data(s, &x), -ESTALE);
	ck_assert_int_eq(rsc_entry_set_data(e, &x), -ESTALE);
	/* Reused memory: a new scope's pointer is NULL, not the old one. */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s2", &s), 0);
	ck_assert_ptr_null(rsc_scope_data(s));
	ck_assert_int_eq(rsc_adopt(s, p[1], 0, &e), 0);
	ck_assert_ptr_null(rsc_entry_data(e));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

Suite *make_hostile_own_suite(void)
{
	Suite *s = suite_create("hostile_own");
	TCase *tc = tcase_create("own");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, adopt_after_a_release_not_yet_submitted_is_eexist);
	tcase_add_test(tc, adopt_on_another_loop_after_a_release_not_yet_submitted_is_eexist);
	tcase_add_test(tc, adopt_of_one_descriptor_on_two_threads_has_one_winner);
	tcase_add_test(tc, adopted_then_closed_behind_its_back_and_reused_is_spared_at_full);
	tcase_add_test(tc, adopt_refuses_every_descriptor_the_runtime_opened_for_itself);
	tcase_add_test(tc, detach_of_another_entry_from_an_exit_hook_is_refused);
	tcase_add_test(tc, entry_moved_then_old_scope_fails_belongs_to_the_new_scope);
	tcase_add_test(tc, scope_moved_to_the_top_outlives_its_old_parent);
	tcase_add_test(tc, scope_move_into_a_grandchild_is_einval_and_moves_nothing);
	tcase_add_test(tc, adopt_and_moves_around_a_grace_and_a_closing_ancestor);
	tcase_add_test(tc, on_close_set_once_the_unwind_started_is_called_once);
	tcase_add_test(tc, shutdown_releases_owned_once_and_spares_the_callers);
	tcase_add_test(tc, data_of_a_freed_handle_is_gone_and_not_settable);
	tcase_add_test(tc, adopt_of_an_io_uring_instance_is_refused);
	suite_add_tcase(s, tc);
	return s;
}
