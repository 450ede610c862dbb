/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

/*
 * Hostile tests of the direct table, linked acquire chains and pipes,
 * written from the man pages: each one once broke the library.
 */

static int used(void)
{
	return rsc_loop_direct_used(t_loop);
}

/* t_dir/<n components of 200 'd's>/f: a path far longer than a line of 512. */
static void make_deep_file(char *path, size_t len, int n)
{
	char comp[201];
	int i, fd;

	memset(comp, 'd', 200);
	comp[200] = '\0';
	snprintf(path, len, "%s", t_dir);
	for (i = 0; i < n; i++) {
		size_t at = strlen(path);

		snprintf(path + at, len - at, "/%s", comp);
		ck_assert_int_eq(mkdir(path, 0700), 0);
	}
	strncat(path, "/f", len - strlen(path) - 1);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

/*
 * The kernel prints each slot's path on one line of the ring's fdinfo; a
 * path longer than the audit's line buffer must neither hide the slots
 * after it nor make up slots from its own text.
 */
START_TEST(audit_slots_reads_long_paths_whole)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	char deep[2048];
	int i;

	t_direct_table(16, 4);
	make_deep_file(deep, sizeof(deep), 6);
	t_make_files(3);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, deep, O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(i == 0 ? "f0" : i == 1 ? "f1" : "f2"),
					  O_RDONLY, 0, RSC_DIRECT, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
	}
	ck_assert_int_eq(used(), 4);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
}
END_TEST

struct accepted {
	int n, ended;
};

static void on_conn(struct rsc_entry *l, int res, struct rsc_scope *cs,
		    struct rsc_entry *conn, void *data)
{
	struct accepted *a = data;

	(void)l;
	(void)cs;
	(void)conn;
	if (res >= 0)
		a->n++;
	else
		a->ended = res;
}

/*
 * An armed direct accept is an acquire into the table: the table cannot be
 * unregistered or replaced under it (rsc_loop_set_direct(3): -EBUSY while
 * slots are being acquired), and the connection still lands in a slot.
 */
START_TEST(table_is_busy_while_a_direct_accept_is_armed)
{
	struct accepted acc = { 0 };
	struct rsc_scope *srv;
	struct rsc_entry *l;
	struct sockaddr_in bound;
	int cl;

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT | RSC_DIRECT, on_conn, &acc), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), -EBUSY);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 32, 8), -EBUSY);
	ck_assert_int_eq(used(), 0);
	cl = t_connect(&bound);
	while (acc.n < 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(acc.ended, -ECANCELED);
	ck_assert_int_eq(used(), 0);
	/* Once the accept has ended, the table is free to change. */
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
	ck_assert_int_eq(used(), -ENXIO);
	close(cl);
}
END_TEST

static void note(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

static void note_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	*(int *)data = res;
}

static struct rsc_entry *direct_file(struct rsc_scope *s, const char *name)
{
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(name), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	return e;
}

/* rsc_entry_install(3): a release waits for the install it races, and then closes whichever it owns. */
START_TEST(install_then_release_at_once_leaves_nothing)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int before = t_fd_count(), fd = 1000, rel = 1000;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = direct_file(s, "f0");
	ck_assert_int_eq(rsc_entry_install(e, 0, note, &fd), 0);
	ck_assert_int_eq(rsc_entry_release(e, note, &rel), 0);
	t_run();
	/* The release waited for the install: it closed the descriptor, not the slot. */
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rel, 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

/*
 * A pipe entry holds both ends: rsc_read(3) reads its read end, and
 * rsc_write(3) writes its write end (it wrote the read end: -EBADF). Moved to
 * another scope it keeps both; closing that scope with a write blocked on
 * the full pipe cancels it, then closes both ends.
 */
static void pipe_io_through_the_entry(unsigned flags)
{
	struct rsc_scope *s1, *s2;
	struct rsc_entry *e;
	static char chunk[4096];
	char buf[8] = "";
	int before = t_fd_count(), r = 1000, w = 1000, n;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s1", &s1), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s2", &s2), 0);
	ck_assert_int_eq(rsc_pipe(s1, flags, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_move(e, s2), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s1, NULL), 0);
	ck_assert_int_eq(rsc_write(e, "ab", 2, -1, note_io, &w), 0);
	while (w == 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(w, 2);
	ck_assert_int_eq(rsc_read(e, buf, sizeof(buf), -1, note_io, &r), 0);
	while (r == 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(r, 2);
	ck_assert_str_eq(buf, "ab");
	/* Fill the pipe until a write has to wait for room. */
	for (n = 0; n < 1024; n++) {
		w = 1000;
		ck_assert_int_eq(rsc_write(e, chunk, sizeof(chunk), -1, note_io, &w), 0);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		if (w == 1000)
			break;
		ck_assert_int_eq(w, (int)sizeof(chunk));
	}
	ck_assert_int_eq(w, 1000);
	ck_assert_int_eq(rsc_entry_io_count(e), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s2, NULL), 0);
	ck_assert_int_eq(w, -ECANCELED);
	ck_assert_int_eq(t_fd_count(), before);
	if (flags & RSC_DIRECT) {
		ck_assert_int_eq(used(), 0);
		ck_assert_int_eq(t_audit_slots(t_loop), 0);
	}
}

START_TEST(pipe_entry_writes_its_write_end)
{
	if (_i)
		t_direct_table(16, 4);
	pipe_io_through_the_entry(_i ? RSC_DIRECT : 0);
}
END_TEST

/* rsc_pipe(3): the states of rsc_pipe_ends and rsc_entry_slot; a second release is -EALREADY; the table cannot change under a slot. */
START_TEST(pipe_released_twice_and_its_states)
{
	struct rsc_scope *s;
	struct rsc_entry *e, *f;
	int ends[2], r = 1000, r2 = 1000;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_pipe(s, RSC_DIRECT, &e), 0);
	ck_assert_int_eq(rsc_pipe_ends(e, ends), -EAGAIN);
	ck_assert_int_eq(rsc_entry_slot(e), -EAGAIN);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	f = direct_file(s, "f0");
	ck_assert_int_eq(rsc_pipe_ends(f, ends), -EINVAL);
	ck_assert_int_eq(rsc_pipe_ends(NULL, ends), -EINVAL);
	ck_assert_int_eq(rsc_pipe_ends(e, NULL), -EINVAL);
	ck_assert_int_eq(used(), 3);
	ck_assert_int_eq(rsc_entry_release(e, note, &r), 0);
	ck_assert_int_eq(rsc_entry_release(e, note, &r2), -EALREADY);
	t_run();
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(r2, 1000);
	ck_assert_int_eq(rsc_pipe_ends(e, ends), -EBADF);
	ck_assert_int_eq(rsc_entry_slot(e), -EBADF);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), -EBUSY);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), -EBUSY);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/* rsc_chain_new(3): a chain short of slots goes out not at all, and gives back what it reserved. */
START_TEST(chain_short_of_slots_reserves_none)
{
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct rsc_entry *a = NULL, *b = NULL;
	int i;

	t_direct_table(8, 2);
	t_make_files(3);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, i ? NULL : &a), 0);
	ck_assert_int_eq(rsc_chain_submit(c), -ENFILE);
	ck_assert_ptr_null(a);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &a), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f1"), O_RDONLY, 0, &b), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_ge(rsc_entry_wait(b), 0);
	ck_assert_int_eq(used(), 2);
	ck_assert_int_ge(rsc_entry_slot(a), 6);
	ck_assert_int_ge(rsc_entry_slot(b), 6);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 4, 1), 0);
}
END_TEST

/* rsc_chain_new(3): after step k fails, each step's entry says what it is. */
START_TEST(chain_step_states_after_a_middle_failure)
{
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct rsc_entry *a = NULL, *b = NULL, *d = NULL;
	int before = t_fd_count();

	t_direct_table(8, 4);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &a), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("missing"), O_RDONLY, 0, &b), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f1"), O_RDONLY, 0, &d), 0);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	ck_assert_int_eq(rsc_entry_slot(a), -EAGAIN);
	t_run();
	/* Released by the unwind, failed on its own, cancelled by the link. */
	ck_assert_int_eq(rsc_entry_slot(a), -EBADF);
	ck_assert_int_eq(rsc_entry_slot(b), -ENOENT);
	ck_assert_int_eq(rsc_entry_slot(d), -ECANCELED);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ENOENT);
	ck_assert_int_eq(t_fd_count(), before);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 4, 1), 0);
}
END_TEST

/* rsc_chain_submit(3) consumes the chain when it refuses it (ASan sees a leak otherwise). */
START_TEST(chain_refusals_consume_the_chain)
{
	struct rsc_scope *s;
	struct rsc_chain *c;
	struct rsc_entry *a = (void *)1;
	int i, ret;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	/* no table */
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &a), 0);
	ck_assert_int_eq(rsc_chain_submit(c), -ENXIO);
	ck_assert_ptr_null(a);
	t_direct_table(64, 40);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	for (i = 0; (ret = rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL)) == 0; i++)
		;
	ck_assert_int_eq(ret, -E2BIG);
	ck_assert_int_eq(i, RSC_ENTRY_SQES_MAX);
	ck_assert_int_eq(rsc_chain_submit(c), 0);
	t_run();
	ck_assert_int_eq(used(), i);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_chain_new(s, &c), 0);
	ck_assert_int_eq(rsc_chain_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(c), -ESHUTDOWN);
	t_run();
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
}
END_TEST

static int cb_ret = 1000;
static void set_direct_in_cb(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)res;
	(void)data;
	cb_ret = rsc_loop_set_direct(t_loop, 0, 0);
}

/* rsc_loop_set_direct(3): -EDEADLK from a callback, and nothing changes. */
START_TEST(set_direct_in_a_callback_is_edeadlk)
{
	struct rsc_scope *s;
	struct rsc_entry *e;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = direct_file(s, "f0");
	ck_assert_int_eq(rsc_entry_release(e, set_direct_in_cb, NULL), 0);
	t_run();
	ck_assert_int_eq(cb_ret, -EDEADLK);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/*
 * rsc_loop_set_direct(3): a table that cannot be registered (-EMFILE, more
 * slots than RLIMIT_NOFILE) changes nothing: the loop keeps the table it had
 * (it had none left), and acquires into it go on.
 */
START_TEST(refused_new_table_keeps_the_old_one)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rlimit low;

	t_direct_table(16, 4);
	t_make_files(1);
	/* Both limits: liburing raises the soft one to the hard one and retries. */
	low.rlim_cur = low.rlim_max = 512;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	/* Never raised again: the test runs in a child of its own (CK_FORK). */
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 1024, 4), -EMFILE);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_lt(rsc_entry_slot(e), 12); /* the old table's kernel range */
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	/* Out of range: refused before anything is touched. */
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, RSC_DIRECT_SLOTS_MAX + 1, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 9), -EINVAL);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/*
 * rsc_entry_install(3): an install the kernel refuses (-EMFILE: no
 * descriptor under RLIMIT_NOFILE) leaves the slot with its entry: the link
 * cancels its close, and the entry stays usable and is released as a slot.
 */
START_TEST(refused_install_keeps_the_slot)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rlimit old, none;
	int before = t_fd_count(), res = 1000, slot, r = 1000;
	char buf[4];

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = direct_file(s, "f0");
	slot = rsc_entry_slot(e);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	none = old;
	none.rlim_cur = 0;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &none), 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, note, &res), 0);
	while (res == 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	ck_assert_int_eq(res, -EMFILE);
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(rsc_entry_fd(e), -EBADFD);
	ck_assert_int_eq(rsc_entry_io_count(e), 0);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_read(e, buf, sizeof(buf), 0, note_io, &r), 0);
	while (r == 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(r, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

static int audit_worst = -1000;
static void audit_in_cb(struct rsc_entry *e, int res, void *data)
{
	int n = rsc_audit_slots(t_loop);

	(void)e;
	(void)res;
	(void)data;
	if (n > audit_worst)
		audit_worst = n;
}

/*
 * rsc_audit_slots(3) from a release callback: the other releases of the
 * batch have emptied their slots in the kernel, their CQEs not yet
 * dispatched. They are leaving, not leaked: no mismatch.
 */
START_TEST(audit_from_a_release_callback_sees_no_false_slot)
{
	struct rsc_scope *s;
	struct rsc_entry *e[4];
	int i;

	t_direct_table(16, 4);
	t_make_files(4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	for (i = 0; i < 4; i++)
		e[i] = direct_file(s, i == 0 ? "f0" : i == 1 ? "f1" : i == 2 ? "f2" : "f3");
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(rsc_entry_release(e[i], audit_in_cb, NULL), 0);
	t_run();
	ck_assert_int_eq(audit_worst, 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/*
 * The same from the runtime's own close of a connection that came too late:
 * F3's enter callback asks for the server's close and releases F2 (its close
 * goes out first), then the batch's accept finds its scope closing and the
 * runtime closes the slot. F2's release callback audits after both closes
 * ran in the kernel and before the orphan's completion is dispatched.
 */
static struct rsc_scope *late_srv;
static struct rsc_entry *late_f2;
static void close_srv_and_release(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)data;
	ck_assert_int_ge(res, 0);
	ck_assert_int_eq(rsc_scope_close(late_srv, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_release(late_f2, audit_in_cb, NULL), 0);
}

START_TEST(audit_sees_no_false_slot_while_a_late_connection_is_closed)
{
	struct accepted acc = { 0 };
	struct rsc_scope *files;
	struct rsc_entry *l, *f3;
	struct sockaddr_in bound;
	int cl, i;

	t_direct_table(16, 4);
	t_make_files(3);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "files", &files), 0);
	late_f2 = direct_file(files, "f1");
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &late_srv), 0);
	l = t_listen_on_loopback(late_srv, 8, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT | RSC_DIRECT, on_conn, &acc), 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	audit_worst = -1000;
	cl = t_connect(&bound); /* its accept completes at the ring's next enter */
	ck_assert_int_eq(rsc_open(files, AT_FDCWD, t_path("f2"), O_RDONLY, 0, RSC_DIRECT, &f3), 0);
	ck_assert_int_eq(rsc_entry_on_enter(f3, close_srv_and_release, NULL), 0);
	t_run();
	ck_assert_int_eq(audit_worst, 0);
	ck_assert_int_eq(acc.n, 0);
	ck_assert_int_ge(rsc_loop_counter(t_loop, RSC_CTR_LATE_ACQUIRES), 1);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(files, NULL), 0);
	ck_assert_int_eq(used(), 0);
	close(cl);
}
END_TEST

/*
 * A direct accept that finds the kernel's range full hears -ENFILE and
 * waits (rsc_accept(3)); the table stays busy meanwhile. That connection is
 * gone (the kernel accepted it before it looked for a slot); the next one
 * is accepted once a slot is free, and every count is back to zero after.
 */
START_TEST(direct_accept_into_a_full_table_waits_for_a_slot)
{
	struct accepted acc = { 0 };
	struct rsc_scope *srv, *files;
	struct rsc_entry *l, *f[2];
	struct sockaddr_in bound;
	int cl, cl2, p_res = 1000;

	t_direct_table(4, 2);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "files", &files), 0);
	f[0] = direct_file(files, "f0");
	f[1] = direct_file(files, "f1");
	ck_assert_int_eq(used(), 2);
	if (t_kernel_has(OP_PIPE)) { /* full: a pipe is refused at once, nothing taken */
		ck_assert_int_eq(rsc_pipe(files, RSC_DIRECT, NULL), -ENFILE);
		ck_assert_int_eq(used(), 2);
	}
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "srv", &srv), 0);
	l = t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT | RSC_DIRECT, on_conn, &acc), 0);
	cl = t_connect(&bound);
	while (acc.ended == 0)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(acc.ended, -ENFILE);
	ck_assert_int_eq(acc.n, 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), -EBUSY); /* it will try again */
	ck_assert_int_eq(rsc_entry_release(f[0], note, &p_res), 0);
	while (p_res == 1000) /* a slot is free before the next client comes */
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(p_res, 0);
	cl2 = t_connect(&bound);
	while (acc.n < 1)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(used(), 2);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	ck_assert_int_eq(acc.ended, -ECANCELED);
	ck_assert_int_eq(rsc_scope_close_wait(files, NULL), 0);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
	close(cl);
	close(cl2);
}
END_TEST

struct in_cb {
	struct rsc_scope *s;
	struct rsc_entry *step;
	int ret;
};

static void chain_in_cb(struct rsc_entry *e, int res, void *data)
{
	struct in_cb *c = data;
	struct rsc_chain *ch;

	(void)e;
	(void)res;
	c->ret = rsc_chain_new(c->s, &ch);
	if (c->ret == 0)
		c->ret = rsc_chain_open(ch, AT_FDCWD, t_path("f1"), O_RDONLY, 0, &c->step);
	if (c->ret == 0)
		c->ret = rsc_chain_submit(ch);
}

/* rsc_chain_submit(3) from a release callback: the chain goes out and is released with its scope; a direct connect needs a table. */
START_TEST(chain_from_a_callback_and_slot_of_every_kind)
{
	struct in_cb c = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e, *t, *p = NULL, *conn = (void *)1;
	struct sockaddr_in to = t_loopback(9);
	int r = 1000;

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&to, sizeof(to), 0, RSC_DIRECT, &conn), -ENXIO);
	t_direct_table(16, 4);
	c.s = s;
	e = direct_file(s, "f0");
	ck_assert_int_eq(rsc_timer(s, 60000, note_io, &r, &t), 0);
	ck_assert_int_eq(rsc_entry_wait(t), 0);
	ck_assert_int_eq(rsc_entry_slot(t), -EBADFD);
	if (t_kernel_has(OP_PIPE)) {
		ck_assert_int_eq(rsc_pipe(s, 0, &p), 0);
		ck_assert_int_ge(rsc_entry_wait(p), 0);
		ck_assert_int_eq(rsc_entry_slot(p), -EBADFD);
	}
	ck_assert_int_eq(rsc_entry_slot(NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_slot((struct rsc_entry *)s), -EINVAL);
	ck_assert_int_eq(rsc_entry_release(e, chain_in_cb, &c), 0);
	while (!c.step || rsc_entry_state(c.step) == RSC_ENTERING)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(c.ret, 0);
	ck_assert_int_ge(rsc_entry_slot(c.step), 12);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(r, -ECANCELED);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(rsc_entry_slot(c.step), -ESTALE);
	ck_assert_int_eq(rsc_entry_slot(e), -ESTALE);
}
END_TEST

/* rsc_loop_set_direct(3): acquires in flight keep the table busy; closed before their completion, they give back every slot and count. */
START_TEST(acquires_closed_in_flight_leave_the_table_free)
{
	struct rsc_scope *s, *c;
	struct rsc_entry *e;
	struct rsc_chain *ch;

	t_direct_table(16, 4);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "c", &c), 0);
	ck_assert_int_eq(rsc_open(c, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	if (t_kernel_has(OP_PIPE))
		ck_assert_int_eq(rsc_pipe(c, RSC_DIRECT, NULL), 0);
	ck_assert_int_eq(rsc_chain_new(c, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f1"), O_RDONLY, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), -EBUSY);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), -EBUSY);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "body"), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
}
END_TEST

/* Handles of another loop: a slot is its loop's; nothing moves it to another loop but a hand-over. */
START_TEST(slots_stay_with_their_loop)
{
	struct rsc_loop *other;
	struct rsc_scope *s, *o;
	struct rsc_entry *e;
	struct rsc_chain *ch;
	int slot;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_loop_new(&other, 8, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_scope_open(other, NULL, "o", &o), 0);
	e = direct_file(s, "f0");
	slot = rsc_entry_slot(e);
	ck_assert_int_eq(rsc_entry_move(e, o), -EXDEV);
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(rsc_loop_direct_used(other), 0);
	ck_assert_int_eq(t_audit_slots(other), 0);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	/* A chain of the other loop's scope fills the other loop's table. */
	ck_assert_int_eq(rsc_chain_new(o, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &e), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_loop_direct_used(other), 1);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(t_audit_slots(other), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_loop_set_direct(other, 0, 0), -EBUSY);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(other), 0);
	ck_assert_int_eq(rsc_loop_close(other), 0);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

static void detach_on_install(struct rsc_entry *e, int res, void *data)
{
	int *fd = data;

	*fd = res >= 0 ? rsc_entry_detach(e) : res;
}

/* rsc_entry_detach(3) from the install's callback: the descriptor becomes the caller's, the slot is free. */
START_TEST(detach_from_the_install_callback)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int before = t_fd_count(), fd = -1000;

	t_direct_table(16, 4);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	e = direct_file(s, "f0");
	ck_assert_int_eq(rsc_entry_detach(e), -EBADF); /* a slot: install it first */
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(rsc_entry_install(e, 0, detach_on_install, &fd), 0);
	while (fd == -1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_entry_slot(e), -ESTALE);
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ck_assert_int_eq(t_fd_count(), before + 1);
	ck_assert_int_eq(close(fd), 0);
}
END_TEST

/* rsc_loop_set_direct(3) at its edges: a table all for chains, or with none for them; each acquire of the missing range is -ENFILE and takes nothing. */
START_TEST(table_with_one_range_only)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_chain *ch;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	t_direct_table(4, 4);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), -ENFILE);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &e), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	ck_assert_int_eq(used(), 0);
	t_direct_table(4, 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0, &e), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), -ENFILE);
	ck_assert_ptr_null(e);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(used(), 1);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(used(), 0);
}
END_TEST

/* rsc_loop_new(3) keeps room for the longest chain: on the smallest ring one goes out whole, in one submit, and fills every slot it named. */
START_TEST(longest_chain_fits_the_smallest_ring)
{
	struct rsc_loop *small;
	struct rsc_scope *s;
	struct rsc_chain *ch;
	struct rsc_entry *last = NULL;
	int i;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_new(&small, 1, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(small, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_chain_new(s, &ch), 0);
	for (i = 0; i < RSC_ENTRY_SQES_MAX; i++)
		ck_assert_int_eq(rsc_chain_open(ch, AT_FDCWD, t_path("f0"), O_RDONLY, 0,
						i == RSC_ENTRY_SQES_MAX - 1 ? &last : NULL), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	ck_assert_int_ge(rsc_entry_wait(last), 0); /* linked: the last enters last */
	ck_assert_int_eq(rsc_loop_direct_used(small), RSC_ENTRY_SQES_MAX);
	ck_assert_int_eq(t_audit_slots(small), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(small), 0);
	ck_assert_int_eq(rsc_loop_set_direct(small, 0, 0), 0);
	ck_assert_int_eq(rsc_loop_close(small), 0);
}
END_TEST

/* rsc_loop_set_direct(3) on the application's ring that has a file table of its own: -EBUSY naming it, and the application's table left as it was. */
START_TEST(application_table_is_left_alone)
{
	struct io_uring ring;
	struct rsc_loop *loop;

	ck_assert_int_eq(io_uring_queue_init(64, &ring, 0), 0);
	ck_assert_int_eq(io_uring_register_files_sparse(&ring, 8), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&loop, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_set_direct(loop, 16, 4), -EBUSY);
	ck_assert_msg(strstr(rsc_last_error(), "application"), "%s", rsc_last_error());
	ck_assert_int_eq(rsc_loop_direct_used(loop), -ENXIO);
	ck_assert_int_eq(rsc_loop_set_direct(loop, 0, 0), 0); /* it has none to drop */
	ck_assert_int_eq(rsc_loop_close(loop), 0);
	ck_assert_int_eq(io_uring_unregister_files(&ring), 0); /* still there */
	io_uring_queue_exit(&ring);
}
END_TEST

/* The peer's end of @fd has seen the end of the connection (bounded wait). */
static bool peer_sees_eof(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	return poll(&p, 1, 5000) == 1 && recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

/*
 * RSC_SHUTDOWN_ON_RELEASE with RSC_DIRECT (rsc_connect(3), rsc_socket(3)):
 * the release shuts the connection down, so the peer sees its end even
 * while another descriptor of the socket lives (installed, then dup'ed by
 * other code). The flag was dropped for a slot: the peer waited forever.
 */
START_TEST(direct_connect_shuts_down_on_release)
{
	struct rsc_scope *s;
	struct rsc_entry *conn;
	struct sockaddr_in bound;
	int lfd, peer, fd = -1000, copy = -1, rel = 1000;
	socklen_t len = sizeof(bound);

	t_direct_table(16, 4);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bound = t_loopback(0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&bound, sizeof(bound)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&bound, &len), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&bound, sizeof(bound), 0,
				     RSC_DIRECT | RSC_SHUTDOWN_ON_RELEASE, &conn), 0);
	ck_assert_int_ge(rsc_entry_wait(conn), 0);
	peer = accept(lfd, NULL, NULL);
	ck_assert_int_ge(peer, 0);
	if (_i) { /* a descriptor of it, and a second one the entry does not own */
		ck_assert_int_eq(rsc_entry_install(conn, 0, note, &fd), 0);
		while (fd == -1000)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_int_ge(fd, 0);
		copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		ck_assert_int_ge(copy, 0);
	}
	ck_assert_int_eq(rsc_entry_release(conn, note, &rel), 0);
	while (rel == 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rel, 0);
	ck_assert(peer_sees_eof(peer));
	ck_assert_int_eq(used(), 0);
	ck_assert_int_eq(t_audit_slots(t_loop), 0);
	if (_i)
		close(copy);
	close(peer);
	close(lfd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

Suite *make_hostile_direct_suite(void)
{
	Suite *s = suite_create("hostile_direct");
	TCase *tc = tcase_create("hostile_direct");
	struct rsc_loop *probe;

	t_add_fixture(tc);
	suite_add_tcase(s, tc);
	if (rsc_loop_new(&probe, 8, RSC_LOOP_DIRECT) < 0) {
		printf("SKIP hostile_direct suite: kernel lacks a sparse direct table with allocation ranges (Linux 6.0): %s\n",
		       rsc_last_error());
		return s;
	}
	if (rsc_loop_close(probe) < 0)
		printf("probe loop did not close: %s\n", rsc_last_error());
	tcase_add_test(tc, audit_slots_reads_long_paths_whole);
	/* A lowered hard limit cannot be raised again: only in a child of its own. */
	if (!getenv("CK_FORK") || strcmp(getenv("CK_FORK"), "no"))
		tcase_add_test(tc, refused_new_table_keeps_the_old_one);
	else
		printf("SKIP refused_new_table_keeps_the_old_one: it lowers RLIMIT_NOFILE's hard limit for good, so it runs only forked\n");
	if (t_kernel_has(IORING_OP_ACCEPT)) {
		t_add_test_if(tc, table_is_busy_while_a_direct_accept_is_armed,
			      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
		t_add_test_if(tc, direct_accept_into_a_full_table_waits_for_a_slot,
			      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
	} else {
		printf("SKIP table_is_busy_while_a_direct_accept_is_armed, direct_accept_into_a_full_table_waits_for_a_slot: kernel lacks IORING_OP_ACCEPT\n");
	}
	if (t_kernel_has(OP_FIXED_FD_INSTALL)) {
		tcase_add_test(tc, install_then_release_at_once_leaves_nothing);
		if (t_under_valgrind())
			printf("SKIP refused_install_keeps_the_slot: under valgrind, RLIMIT_NOFILE is not enforced on io_uring\n");
		else
			tcase_add_test(tc, refused_install_keeps_the_slot);
		tcase_add_test(tc, detach_from_the_install_callback);
		if (t_kernel_has(IORING_OP_SHUTDOWN) && t_kernel_has(IORING_OP_SOCKET))
			tcase_add_loop_test(tc, direct_connect_shuts_down_on_release, 0, 2);
	} else {
		printf("SKIP install_then_release_at_once_leaves_nothing, refused_install_keeps_the_slot: kernel lacks IORING_OP_FIXED_FD_INSTALL (Linux 6.8)\n");
	}
	if (t_kernel_has(OP_PIPE)) {
		tcase_add_loop_test(tc, pipe_entry_writes_its_write_end, 0, 2);
		tcase_add_test(tc, pipe_released_twice_and_its_states);
	} else {
		printf("SKIP pipe_entry_writes_its_write_end, pipe_released_twice_and_its_states: kernel lacks IORING_OP_PIPE (Linux 6.16)\n");
	}
	tcase_add_test(tc, chain_short_of_slots_reserves_none);
	tcase_add_test(tc, chain_step_states_after_a_middle_failure);
	tcase_add_test(tc, chain_refusals_consume_the_chain);
	tcase_add_test(tc, set_direct_in_a_callback_is_edeadlk);
	tcase_add_test(tc, application_table_is_left_alone);
	tcase_add_test(tc, longest_chain_fits_the_smallest_ring);
	tcase_add_test(tc, table_with_one_range_only);
	tcase_add_test(tc, slots_stay_with_their_loop);
	tcase_add_test(tc, acquires_closed_in_flight_leave_the_table_free);
	tcase_add_test(tc, chain_from_a_callback_and_slot_of_every_kind);
	tcase_add_test(tc, audit_from_a_release_callback_sees_no_false_slot);
	/* The late connection: an accept whose completion waits for the next enter. */
	t_add_test_if(tc, audit_sees_no_false_slot_while_a_late_connection_is_closed,
		      t_has_accept_multishot() &&
			      (rsc_loop_features(t_probe_loop()) & RSC_FEAT_DEFER_TASKRUN),
		      "IORING_ACCEPT_MULTISHOT (Linux 5.19) or DEFER_TASKRUN (6.1)");
	return s;
}
