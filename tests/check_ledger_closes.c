/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

/*
 * The ownership ledger keeps a number until its close has run (rsc_adopt(3)),
 * never until it was merely submitted: a close behind an fsync or a shutdown
 * used to be hard-linked behind it and ran in io-wq after its enter had
 * returned, while the ledger had let the number go (a second adopt made two
 * owners, and the second close hit a stranger's file).
 */

static ino_t ino_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* @fd still names the open file whose inode is @ino (a file no one else opens). */
static bool still_names(int fd, ino_t ino)
{
	return fcntl(fd, F_GETFD) >= 0 && ino_of(fd) == ino;
}

/*
 * Released with @flags (fsync or shutdown first): while its number still
 * names its file, the ledger names the owner and a second adopt is refused;
 * once closed, the number is free at once for whoever the kernel gives it to.
 */
static void release_keeps_its_number_until_closed(int fd, unsigned flags)
{
	struct rsc_scope *first, *second;
	struct rsc_entry *e, *again;
	ino_t ino = ino_of(fd);
	int turns = 0, ret, fresh;
	char who[256];

	ck_assert_uint_ne(ino, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "first", &first), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "second", &second), 0);
	ck_assert_int_eq(rsc_adopt(first, fd, flags, &e), 0);
	ck_assert_int_eq(rsc_entry_release(e, NULL, NULL), 0);
	while (rsc_entry_state(e) == RSC_EXITING && turns++ < 100000) {
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		if (!still_names(fd, ino))
			break;
		ret = rsc_audit_describe_fd(fd, who, sizeof(who));
		ck_assert_msg(ret >= 0 && strstr(who, "'first'"),
			      "fd %d still open to its file while its release runs, but the ledger says %s",
			      fd, ret < 0 ? rsc_err_name(ret) : who);
		ck_assert_int_eq(rsc_adopt(second, fd, 0, &again), -EEXIST);
	}
	/* Closed: the next descriptor the kernel makes is nobody's, even if the
	 * release's report has not come yet. */
	ck_assert(!still_names(fd, ino));
	fresh = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fresh, 0);
	ret = rsc_adopt(second, fresh, 0, &again);
	ck_assert_msg(ret == 0, "a new descriptor (%d) after the close of %d: %s", fresh, fd,
		      rsc_err_name(ret));
	ck_assert_int_eq(rsc_scope_close_wait(first, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(second, NULL), 0);
	ck_assert_int_eq(fcntl(fresh, F_GETFD), -1); /* released by its owner, once */
}

START_TEST(fsync_release_keeps_its_number_until_its_close_has_run)
{
	static char buf[1 << 16];
	int fd = open(t_path("dirty"), O_RDWR | O_CREAT | O_CLOEXEC, 0600), i;

	ck_assert_int_ge(fd, 0);
	memset(buf, 'x', sizeof(buf));
	for (i = 0; i < 64; i++) /* 4 MiB not yet on disk: an fsync with work to do */
		ck_assert_int_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	release_keeps_its_number_until_closed(fd, RSC_FSYNC_ON_RELEASE);
}
END_TEST

START_TEST(shutdown_release_keeps_its_number_until_its_close_has_run)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	release_keeps_its_number_until_closed(sv[0], RSC_SHUTDOWN_ON_RELEASE);
	close(sv[1]);
}
END_TEST

/* The fsync's error is the release's, and the close after it still runs. */
START_TEST(fsync_error_is_the_release_error_and_the_close_still_runs)
{
	struct rsc_scope *s;
	struct rsc_error *err = NULL;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	/* /dev/null has no fsync: -EINVAL from it; the close still runs. */
	ck_assert_int_eq(rsc_adopt(s, fd, RSC_FSYNC_ON_RELEASE, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EINVAL);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "fsync");
	rsc_error_free(err);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
}
END_TEST

static void read_done(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	*(int *)data = res;
}

/*
 * An op keeps no mark of a close it was before: one reused for a read,
 * completing in the enter that submits another entry's close, is no close
 * of its entry's number (the ledger would let a live number go).
 */
START_TEST(an_op_reused_for_io_is_no_close_of_its_entry)
{
	struct rsc_scope *s;
	struct rsc_entry *a, *b, *c;
	int p[2], got = 1, ret;
	char buf[8], who[256];

	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &a), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, &c), 0);
	ck_assert_int_ge(rsc_entry_wait(a), 0);
	ck_assert_int_ge(rsc_entry_wait(c), 0);
	ck_assert_int_eq(rsc_entry_release_wait(a, NULL), 0); /* its close op goes back to the pool */
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, &b), 0);
	t_run(); /* entered */
	ck_assert_int_eq(rsc_read(b, buf, sizeof(buf), -1, read_done, &got), 0);
	ck_assert_int_eq(rsc_entry_release(c, NULL, NULL), 0); /* a close in the same enter */
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	t_run();
	ck_assert_int_eq(got, 1);
	ret = rsc_audit_describe_fd(p[0], who, sizeof(who));
	ck_assert_msg(ret >= 0 && strstr(who, "adopt"), "the read end's owner: %s",
		      ret < 0 ? rsc_err_name(ret) : who);
	ck_assert_int_eq(rsc_adopt(s, p[0], 0, NULL), -EEXIST);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(p[1]);
}
END_TEST

#define OVERFLOW_N 40

struct overflow_probe {
	struct rsc_scope *into;
	int adopt_res, ends[2];
};

/* A receive's callback, run before the closes' overflowed CQEs: the numbers
 * those closes freed are the kernel's to give again, and adoptable. */
static void adopt_a_fresh_pair(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct overflow_probe *o = data;

	(void)e;
	(void)buf;
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, o->ends), 0);
	o->adopt_res = rsc_adopt(o->into, o->ends[0], 0, NULL);
	if (o->adopt_res == 0)
		o->ends[0] = -1;
}

static void note_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)status;
	(void)err;
	*(int *)data = 1;
}

/*
 * rsc_adopt(3): a number is owned until its owner's close has run, and no
 * longer. A scope of 40 sockets closes on a loop whose CQ holds 32: the
 * kernel runs every close inside the enter, but the CQEs that do not fit go
 * to its overflow list, which the ledger did not look at; their numbers
 * stayed owned through the callbacks of that turn, and a callback's
 * socketpair(2) got one of them, which rsc_adopt refused (-EEXIST).
 */
START_TEST(closes_whose_cqes_overflowed_let_their_numbers_go)
{
	struct overflow_probe o = { .adopt_res = 1, .ends = { -1, -1 } };
	struct rsc_scope *a, *b;
	struct rsc_entry *y;
	struct rsc_loop *loop;
	int sv[2], peers[OVERFLOW_N + 1], done = 0, i, before = t_fd_count();
	char buf[4];

	ck_assert_int_eq(rsc_loop_new(&loop, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "c", &o.into), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_adopt(b, sv[0], 0, &y), 0);
	peers[OVERFLOW_N] = sv[1];
	for (i = 0; i < OVERFLOW_N; i++) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		ck_assert_int_eq(rsc_adopt(a, sv[0], 0, NULL), 0);
		peers[i] = sv[1];
	}
	ck_assert_int_eq(rsc_recv(y, buf, 1, 0, adopt_a_fresh_pair, &o), 0);
	while (rsc_loop_run(loop, RSC_RUN_NOWAIT) > 0 && rsc_entry_io_count(y) == 0)
		;
	ck_assert_int_eq(write(peers[OVERFLOW_N], "x", 1), 1);
	usleep(10000);
	ck_assert_int_eq(rsc_scope_close(a, note_closed, &done), 0);
	while (!done)
		ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_ONCE), 0);
	ck_assert_msg(o.adopt_res == 0, "rsc_adopt of a number just made: %s", rsc_strerror(o.adopt_res));
	ck_assert_int_eq(rsc_scope_close(b, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(o.into, NULL, NULL), 0);
	while (rsc_loop_run(loop, RSC_RUN_NOWAIT) > 0)
		;
	ck_assert_int_eq(rsc_loop_close(loop), 0);
	for (i = 0; i <= OVERFLOW_N; i++)
		close(peers[i]);
	close(o.ends[1]);
	ck_assert_int_eq(t_fd_count(), before);
}
END_TEST

Suite *make_ledger_closes_suite(void)
{
	Suite *s = suite_create("ledger_closes");
	TCase *tc = tcase_create("closes");

	t_add_fixture(tc);
	tcase_add_test(tc, fsync_release_keeps_its_number_until_its_close_has_run);
	tcase_add_test(tc, shutdown_release_keeps_its_number_until_its_close_has_run);
	tcase_add_test(tc, fsync_error_is_the_release_error_and_the_close_still_runs);
	tcase_add_test(tc, an_op_reused_for_io_is_no_close_of_its_entry);
	tcase_add_test(tc, closes_whose_cqes_overflowed_let_their_numbers_go);
	suite_add_tcase(s, tc);
	return s;
}
