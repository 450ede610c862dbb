/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "helpers.h"

START_TEST(full_audit_reports_fd_leaked_behind_the_runtime)
{
	const struct rsc_finding *f;
	struct rsc_scope *s;
	char printed[1024];
	FILE *mem;
	int leaked;

	t_make_files(2);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "leaky", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, NULL), 0);
	t_run();
	/* Opened behind the runtime's back, inside the scope, never closed. */
	leaked = open(t_path("f1"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(leaked, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_LEAKED);
	ck_assert_int_eq(rsc_finding_fd(f), leaked);
	ck_assert_str_eq(rsc_finding_target(f), t_path("f1"));
	ck_assert_str_eq(rsc_finding_scope(f), "leaky");
	ck_assert_ptr_nonnull(strstr(rsc_finding_expected(f), "not open when scope"));
	ck_assert_int_eq(t_count_events(RSC_EV_AUDIT_FINDING), 1);
	mem = fmemopen(printed, sizeof(printed), "w");
	ck_assert_int_eq(rsc_audit_print(t_loop, mem), 1);
	fclose(mem);
	ck_assert_ptr_nonnull(strstr(printed, t_path("f1")));
	ck_assert_ptr_nonnull(strstr(printed, "leaky"));
	close(leaked);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

START_TEST(finding_pointers_survive_later_findings)
{
	const struct rsc_finding *first = NULL;
	struct rsc_scope *s;
	int fds[10], i;

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	for (i = 0; i < 10; i++) {
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, i ? "later" : "first", &s), 0);
		fds[i] = open(t_path("f0"), O_RDONLY | O_CLOEXEC);
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
		if (i == 0)
			first = rsc_audit_finding(t_loop, 0);
	}
	/* Ten findings grew the table; the first pointer is still the first. */
	ck_assert_int_eq(rsc_audit_count(t_loop), 10);
	ck_assert_int_eq(rsc_finding_fd(first), fds[0]);
	ck_assert_str_eq(rsc_finding_scope(first), "first");
	for (i = 0; i < 10; i++)
		close(fds[i]);
}
END_TEST

START_TEST(full_audit_waits_for_acquires_in_flight)
{
	struct rsc_scope *a, *b;
	int i;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "b", &b), 0);
	/* 'a' fails inline and unwinds while b's sockets, already open in the
	 * process, still wait for their CQEs to be processed. */
	ck_assert_int_eq(rsc_socket(a, AF_INET, SOCK_STREAM, 99, 0, NULL), 0);
	for (i = 0; i < 32; i++)
		ck_assert_int_eq(rsc_socket(b, AF_INET, SOCK_DGRAM, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_state(a), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), -EPROTONOSUPPORT);
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

START_TEST(full_audit_is_silent_on_a_clean_scope)
{
	struct rsc_scope *outer, *inner;
	int i;

	t_make_files(10);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "outer", &outer), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "inner", &inner), 0);
	for (i = 0; i < 10; i++) {
		char name[8];

		snprintf(name, sizeof(name), "f%d", i);
		/* The outer scope's entries outlive the inner scope: not leaks. */
		ck_assert_int_eq(rsc_open(i % 2 ? inner : outer, AT_FDCWD,
					  t_path(name), O_RDONLY, 0, 0, NULL), 0);
	}
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(inner, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(outer, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

/* Opens another file: the released number is reused for something else. */
static void reuse_number(struct recorder *r, const struct event *e)
{
	if (e->ev == RSC_EV_RELEASED && !strcmp(e->entry, "file"))
		*(int *)r->user = open(t_path("other"), O_RDONLY | O_CLOEXEC);
}

START_TEST(released_audit_is_silent_when_number_is_reused)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int fd, other = -1;

	t_make_files(1);
	close(open(t_path("other"), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "reuse", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	fd = rsc_entry_wait(e);
	ck_assert_int_ge(fd, 0);
	/* The hook runs between the release's completion and the audit's check. */
	t_rec->after = reuse_number;
	t_rec->user = &other;
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	t_rec->after = NULL;
	/* The number was really reused: only the close's own result tells. */
	ck_assert_int_eq(other, fd);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	close(other);
}
END_TEST

/* Closes the entry's descriptor with libc: the app's double-close bug. */
static int acquire_then_close_behind(struct rsc_scope **sp, int level)
{
	struct rsc_entry *e;
	int fd;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, level), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "behind", sp), 0);
	ck_assert_int_eq(rsc_open(*sp, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	fd = rsc_entry_wait(e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(close(fd), 0);
	return fd;
}

START_TEST(released_audit_reports_close_behind_the_runtime)
{
	const struct rsc_finding *f;
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	int fd;

	t_make_files(1);
	fd = acquire_then_close_behind(&s, RSC_AUDIT_RELEASED);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EBADF);
	ck_assert_str_eq(rsc_error_op(err), "close");
	rsc_error_free(err);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_NOT_RELEASED);
	ck_assert_int_eq(rsc_finding_fd(f), fd);
	ck_assert_str_eq(rsc_finding_target(f), "(not open)");
	ck_assert_str_eq(rsc_finding_scope(f), "behind");
	ck_assert_ptr_nonnull(strstr(rsc_finding_expected(f), "behind the runtime's back"));
}
END_TEST

/* DESIGN 3: every close of an entry's own descriptor is checked by its CQE;
 * a pipe owns two, and either closed behind its back is a finding. */
static void pipe_end_closed_behind(int which)
{
	const struct rsc_finding *f;
	struct rsc_entry *e;
	struct rsc_scope *s;
	int ends[2];

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "pipe-behind", &s), 0);
	ck_assert_int_eq(rsc_pipe(s, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_pipe_ends(e, ends), 0);
	ck_assert_int_eq(close(ends[which]), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EBADF);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_NOT_RELEASED);
	ck_assert_int_eq(rsc_finding_fd(f), ends[which]);
	ck_assert_str_eq(rsc_finding_scope(f), "pipe-behind");
	ck_assert_ptr_nonnull(strstr(rsc_finding_expected(f), "behind the runtime's back"));
	/* The other end was closed by the release, once. */
	ck_assert_int_eq(fcntl(ends[!which], F_GETFD), -1);
}

START_TEST(released_audit_reports_pipe_write_end_closed_behind)
{
	pipe_end_closed_behind(1);
}
END_TEST

START_TEST(released_audit_reports_pipe_read_end_closed_behind)
{
	pipe_end_closed_behind(0);
}
END_TEST

/*
 * rsc_loop_set_audit(3): auditing is not switched on without the loop's
 * /proc/self/fd handle. Opened later, at a finding, it would take the lowest
 * free number, the one being reported (ringscope_audit(7)).
 */
START_TEST(set_audit_without_a_descriptor_left_fails_and_stays_off)
{
	static struct t_no_fds u;
	int before;

	if (t_under_valgrind()) {
		printf("SKIP set_audit_without_a_descriptor_left_fails_and_stays_off: valgrind keeps its own descriptor limit\n");
		return;
	}
	before = rsc_audit_fd_count();
	t_use_up_descriptors(&u);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), -EMFILE);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "/proc/self/fd"));
	ck_assert_int_eq(rsc_loop_audit_level(t_loop), RSC_AUDIT_OFF);
	t_descriptors_back(&u);
	ck_assert_int_eq(rsc_audit_fd_count(), before);
	/* With a descriptor free, it switches on, and holds its handle from then on. */
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(rsc_loop_audit_level(t_loop), RSC_AUDIT_RELEASED);
	ck_assert_int_eq(rsc_audit_fd_count(), before + 1);
}
END_TEST

struct accepted {
	struct rsc_scope *scope;
	struct rsc_entry *conn;
	int res;
};

static void keep_accepted(struct rsc_entry *listener, int res, struct rsc_scope *cs,
			  struct rsc_entry *conn, void *data)
{
	struct accepted *a = data;

	(void)listener;
	a->res = res;
	a->scope = cs;
	a->conn = conn;
}

/*
 * One number of an entry, entered in scope @s, closed behind the runtime's
 * back: its release raises -EBADF and the audit has exactly one finding,
 * on that number.
 */
static void assert_closed_behind_is_reported(const char *what, struct rsc_scope *s, int fd)
{
	const struct rsc_finding *f;
	int before = rsc_audit_count(t_loop);

	ck_assert_msg(fd >= 0, "%s: no descriptor (%d)", what, fd);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_msg(rsc_scope_close_wait(s, NULL) == -EBADF, "%s: the release did not see EBADF", what);
	ck_assert_msg(rsc_audit_count(t_loop) == before + 1, "%s: %d findings, not 1", what,
		      rsc_audit_count(t_loop) - before);
	f = rsc_audit_finding(t_loop, before);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_NOT_RELEASED);
	ck_assert_msg(rsc_finding_fd(f) == fd, "%s: the finding names %d, not %d", what,
		      rsc_finding_fd(f), fd);
}

/* A new top-level scope named @name. */
static struct rsc_scope *scope_named(const char *name)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, name, &s), 0);
	return s;
}

/*
 * DESIGN 3, for every kind of entry whose release closes its own numbers
 * through the ring (and each of a pipe's two): a number closed behind the
 * runtime's back is reported, whichever way the release reaches its close
 * (plainly, or after an fsync or a shutdown).
 */
START_TEST(released_audit_reports_every_kind_closed_behind)
{
	struct sockaddr_in bound;
	struct accepted acc = { NULL, NULL, 1 };
	struct rsc_entry *e, *listener;
	struct rsc_scope *s, *ls;
	int fd, client, ends[2];

	t_make_files(1);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);

	s = scope_named("open");
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	assert_closed_behind_is_reported("rsc_open", s, rsc_entry_wait(e));
	s = scope_named("open-fsync");
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_FSYNC_ON_RELEASE, &e), 0);
	assert_closed_behind_is_reported("rsc_open, RSC_FSYNC_ON_RELEASE", s, rsc_entry_wait(e));
	s = scope_named("adopt");
	fd = open(t_path("f0"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(rsc_adopt(s, fd, 0, &e), 0);
	assert_closed_behind_is_reported("rsc_adopt", s, fd);
	if (t_kernel_has(IORING_OP_SOCKET)) {
		s = scope_named("socket");
		ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, 0, &e), 0);
		assert_closed_behind_is_reported("rsc_socket", s, rsc_entry_wait(e));
		s = scope_named("socket-shutdown");
		ck_assert_int_eq(rsc_socket(s, AF_INET, SOCK_STREAM, 0, RSC_SHUTDOWN_ON_RELEASE, &e), 0);
		assert_closed_behind_is_reported("rsc_socket, RSC_SHUTDOWN_ON_RELEASE", s,
						 rsc_entry_wait(e));
		ls = scope_named("listen");
		listener = t_listen_on_loopback(ls, 8, &bound);
		s = scope_named("connect");
		ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&bound, sizeof(bound), 0, 0, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
		assert_closed_behind_is_reported("rsc_connect", s, rsc_entry_fd(e));
		ck_assert_int_eq(rsc_accept(listener, 0, keep_accepted, &acc), 0);
		client = t_connect(&bound);
		while (acc.res == 1)
			ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
		ck_assert_int_ge(acc.res, 0);
		assert_closed_behind_is_reported("rsc_accept's connection", acc.scope,
						 rsc_entry_fd(acc.conn));
		close(client);
		assert_closed_behind_is_reported("rsc_listen", ls, rsc_entry_fd(listener));
	} else {
		printf("SKIP released_audit_reports_every_kind_closed_behind, sockets: kernel lacks IORING_OP_SOCKET\n");
	}
	if (t_kernel_has(OP_PIPE)) {
		s = scope_named("pipe-read");
		ck_assert_int_eq(rsc_pipe(s, 0, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
		ck_assert_int_eq(rsc_pipe_ends(e, ends), 0);
		assert_closed_behind_is_reported("rsc_pipe's read end", s, ends[0]);
		s = scope_named("pipe-write");
		ck_assert_int_eq(rsc_pipe(s, 0, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
		ck_assert_int_eq(rsc_pipe_ends(e, ends), 0);
		assert_closed_behind_is_reported("rsc_pipe's write end", s, ends[1]);
	} else {
		printf("SKIP released_audit_reports_every_kind_closed_behind, pipes: kernel lacks IORING_OP_PIPE (Linux 6.16)\n");
	}
}
END_TEST

START_TEST(full_audit_never_closes_a_reused_number)
{
	const struct rsc_finding *f;
	struct rsc_scope *s;
	int fd, other;

	t_make_files(1);
	close(open(t_path("other"), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	fd = acquire_then_close_behind(&s, RSC_AUDIT_FULL);
	other = open(t_path("other"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(other, fd); /* someone else owns the number now */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EBADF);
	/* The identity recorded at acquire differs: the runtime kept its hands off. */
	ck_assert_int_eq(fcntl(other, F_GETFD), FD_CLOEXEC);
	ck_assert_int_ge(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_NOT_RELEASED);
	ck_assert_str_eq(rsc_finding_target(f), t_path("other"));
	ck_assert_int_eq(close(other), 0);
}
END_TEST

int describe_holder(struct rsc_scope *s, struct rsc_entry **e);

/* Not static and not inlined: the acquire site must name this function. */
__attribute__((noinline, optimize("no-optimize-sibling-calls"), visibility("default"))) int describe_holder(struct rsc_scope *s, struct rsc_entry **e)
{
	return rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, e);
}

START_TEST(describe_fd_names_scope_entry_and_site)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	char text[512], small[8];
	int fd, n;

	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "holder", &s), 0);
	ck_assert_int_eq(describe_holder(s, &e), 0);
	fd = rsc_entry_wait(e);
	ck_assert_int_ge(fd, 0);
	n = rsc_audit_describe_fd(fd, text, sizeof(text));
	ck_assert_int_gt(n, 0);
	ck_assert_ptr_nonnull(strstr(text, "entry 'file'"));
	ck_assert_ptr_nonnull(strstr(text, t_path("f0")));
	ck_assert_ptr_nonnull(strstr(text, "scope 'holder'"));
	ck_assert_msg(strstr(text, "describe_holder+"), "site not named: %s", text);
	/* snprintf style: the length needed comes back even when cut short. */
	ck_assert_int_eq(rsc_audit_describe_fd(fd, small, sizeof(small)), n);
	ck_assert_int_eq(strlen(small), sizeof(small) - 1);
	ck_assert_int_eq(rsc_audit_describe_fd(0, text, sizeof(text)), -ENOENT);
	ck_assert_int_eq(rsc_audit_describe_fd(-1, text, sizeof(text)), -EINVAL);
	ck_assert_int_eq(rsc_audit_describe_fd(fd, NULL, 4), -EINVAL);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	/* Released: nobody holds it any more. */
	ck_assert_int_eq(rsc_audit_describe_fd(fd, text, sizeof(text)), -ENOENT);
}
END_TEST

START_TEST(audit_level_comes_from_environment)
{
	struct rsc_loop *l;

	ck_assert_int_eq(setenv("RINGSCOPE_AUDIT", "full", 1), 0);
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_audit_level(l), RSC_AUDIT_FULL);
	ck_assert_int_eq(rsc_loop_set_audit(l, RSC_AUDIT_OFF), 0);
	ck_assert_int_eq(rsc_loop_audit_level(l), RSC_AUDIT_OFF);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(setenv("RINGSCOPE_AUDIT", "released", 1), 0);
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_audit_level(l), RSC_AUDIT_RELEASED);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(setenv("RINGSCOPE_AUDIT", "everything", 1), 0);
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "RINGSCOPE_AUDIT=everything"));
	ck_assert_int_eq(unsetenv("RINGSCOPE_AUDIT"), 0);
}
END_TEST

Suite *make_audit_suite(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("findings");

	t_add_fixture(tc);
	tcase_add_test(tc, full_audit_reports_fd_leaked_behind_the_runtime);
	tcase_add_test(tc, full_audit_is_silent_on_a_clean_scope);
	tcase_add_test(tc, finding_pointers_survive_later_findings);
	if (t_kernel_has(IORING_OP_SOCKET))
		tcase_add_test(tc, full_audit_waits_for_acquires_in_flight);
	else
		printf("SKIP full_audit_waits_for_acquires_in_flight: kernel lacks IORING_OP_SOCKET\n");
	tcase_add_test(tc, released_audit_is_silent_when_number_is_reused);
	tcase_add_test(tc, released_audit_reports_close_behind_the_runtime);
	tcase_add_test(tc, full_audit_never_closes_a_reused_number);
	tcase_add_test(tc, set_audit_without_a_descriptor_left_fails_and_stays_off);
	tcase_add_test(tc, released_audit_reports_every_kind_closed_behind);
	t_add_test_if(tc, released_audit_reports_pipe_write_end_closed_behind, t_kernel_has(OP_PIPE),
		      "IORING_OP_PIPE (Linux 6.16)");
	t_add_test_if(tc, released_audit_reports_pipe_read_end_closed_behind, t_kernel_has(OP_PIPE),
		      "IORING_OP_PIPE (Linux 6.16)");
	tcase_add_test(tc, audit_level_comes_from_environment);
	tcase_add_test(tc, describe_fd_names_scope_entry_and_site);
	suite_add_tcase(s, tc);
	return s;
}
