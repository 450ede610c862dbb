/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "tmgr.h"

/* Hostile use of the trace, the metrics and the in-library audit, as the man
 * pages promise them to someone who never read the code. */

/* The trace file at @path is a complete document (t_assert_trace_complete). */
static void assert_complete(const char *path)
{
	char *text = t_slurp(path, NULL);

	t_assert_trace_complete(text);
	free(text);
}

static off_t size_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

/* The events of 8 files (~600 bytes each) stay in the buffer until the close,
 * whose one write the full disk cuts: its error is the close's answer. */
START_TEST(trace_write_failing_at_its_close_is_returned)
{
	char file[512];
	struct rlimit old;
	off_t empty;
	int ret;

	snprintf(file, sizeof(file), "%s", t_path("full.json"));
	t_make_files(8);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	empty = size_of(file);
	t_scope_of_files(8, "cut");
	old = t_disk_full_at(empty + 512);
	ret = rsc_loop_trace_file(t_loop, NULL);
	t_disk_free_again(old);
	ck_assert_int_eq(ret, -EFBIG);
	/* The document of the last good write: the header alone. */
	assert_complete(file);
	ck_assert_int_eq(size_of(file), empty);
}
END_TEST

/* A trace still open when its loop is freed: the failing last write has
 * nobody to return to, so it is said on stderr rather than lost. */
START_TEST(trace_write_failing_at_loop_free_is_said)
{
	char file[512], said[512] = "";
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rlimit old;
	int i, err_fd, saved;

	snprintf(file, sizeof(file), "%s", t_path("freed.json"));
	t_make_files(8);
	ck_assert_int_eq(rsc_loop_new(&loop, 64, 0), 0);
	ck_assert_int_eq(rsc_loop_trace_file(loop, file), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "cut", &s), 0);
	for (i = 0; i < 8; i++) {
		snprintf(said, sizeof(said), "f%d", i);
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(said), O_RDONLY, 0, 0, &e), 0);
	}
	ck_assert_int_eq(rsc_loop_run(loop, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	err_fd = open(t_path("stderr"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(err_fd, 0);
	fflush(stderr);
	saved = dup(2);
	ck_assert_int_eq(dup2(err_fd, 2), 2);
	old = t_disk_full_at(size_of(file) + 512);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
	t_disk_free_again(old);
	ck_assert_int_eq(dup2(saved, 2), 2);
	close(saved);
	memset(said, 0, sizeof(said));
	ck_assert_int_gt(pread(err_fd, said, sizeof(said) - 1, 0), 0);
	close(err_fd);
	ck_assert_ptr_nonnull(strstr(said, "the trace's last write failed"));
	ck_assert_ptr_nonnull(strstr(said, "EFBIG"));
	assert_complete(file);
}
END_TEST

/* A flush cut short leaves the previous document, not half an event; the
 * error stays, the loop goes on, and a new trace starts clean. */
START_TEST(trace_cut_short_by_a_full_disk_stays_a_document)
{
	char file[512], again[512];
	struct rlimit old;
	off_t good;
	int ret[2];

	snprintf(file, sizeof(file), "%s", t_path("full.json"));
	snprintf(again, sizeof(again), "%s", t_path("again.json"));
	t_make_files(8);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	t_scope_of_files(2, "fits");
	ck_assert_int_eq(rsc_loop_trace_flush(t_loop), 0);
	good = size_of(file);
	t_scope_of_files(8, "cut");
	old = t_disk_full_at(good + 512);
	ret[0] = rsc_loop_trace_flush(t_loop);
	ret[1] = rsc_loop_trace_flush(t_loop);
	t_disk_free_again(old);
	ck_assert_int_eq(ret[0], -EFBIG);
	ck_assert_int_eq(ret[1], -EFBIG);
	t_scope_of_files(8, "untraced");
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), -EFBIG);
	assert_complete(file);
	ck_assert_int_eq(size_of(file), good);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, again), 0);
	t_scope_of_files(2, "on again");
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	assert_complete(again);
}
END_TEST

/* Two samples of one series make Prometheus drop the whole scrape: a loop
 * listed twice is refused before anything is written. */
START_TEST(metrics_of_a_loop_listed_twice_are_refused)
{
	struct rsc_loop *other, *loops[3];
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	ck_assert_int_eq(rsc_loop_new(&other, 0, 0), 0);
	loops[0] = t_loop;
	loops[1] = other;
	loops[2] = t_loop;
	f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_metrics_write(loops, 3, f), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "loops[2] is loops[0]"));
	fflush(f);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(rsc_metrics_write(loops, 2, f), 0);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(text, "ringscope_sqes_total{loop="));
	free(text);
	ck_assert_int_eq(rsc_loop_close(other), 0);
}
END_TEST

/* No byte of @text may drive a terminal: no C0 or C1 control, no byte that is
 * not part of valid UTF-8 (a lone 0x9b is CSI to an 8-bit terminal). */
static void assert_terminal_safe(const char *text, const char *what)
{
	const unsigned char *p = (const unsigned char *)text;

	for (; *p; p++) {
		ck_assert_msg((*p >= 0x20 && *p != 0x7f) || *p == '\n', "%s: raw byte 0x%02x", what, *p);
		if (*p == 0xc3 && p[1] == 0xa9) /* é, as a name may hold it */
			p++;
		else
			ck_assert_msg(*p < 0x80, "%s: raw byte 0x%02x in: %s", what, *p, text);
	}
}

/* A path and a scope name holding a C1 CSI (U+009B, c2 9b), a lone 0x9b and
 * 0xff: the error's text and the audit's lines show them as \xNN, and keep
 * valid UTF-8 (é) as it is; the getters return the bytes. */
START_TEST(printed_errors_and_findings_escape_c1_controls_and_bad_utf8)
{
	static const char name[] = "s\xc2\x9b" "31m\x9b\xff\xc3\xa9";
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	char line[512], *text = NULL;
	size_t len = 0;
	FILE *f;
	int p[2];

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, name, &s), 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(name), O_RDONLY, 0, 0, &e), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(rsc_error_detail(err), name));
	ck_assert_int_gt(rsc_error_format(err, line, sizeof(line)), 0);
	assert_terminal_safe(line, "rsc_error_format");
	ck_assert_ptr_nonnull(strstr(line, "s\\xc2\\x9b31m\\x9b\\xff\xc3\xa9"));
	f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_error_print(err, f), 0);
	ck_assert_int_eq(rsc_audit_print(t_loop, f), 2); /* both ends of the pipe, leaked */
	fclose(f);
	assert_terminal_safe(text, "rsc_error_print and rsc_audit_print");
	ck_assert_int_eq(strstr(strstr(text, "\\xc2\\x9b") + 1, "in scope 's\\xc2\\x9b31m\\x9b\\xff\xc3\xa9'") != NULL, 1);
	ck_assert_str_eq(rsc_finding_scope(rsc_audit_finding(t_loop, 0)), name);
	free(text);
	rsc_error_free(err);
	close(p[0]);
	close(p[1]);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* A name holding the text "\x1b" and one holding the byte ESC must not print alike. */
START_TEST(printed_backslashes_are_doubled)
{
	static const char literal[] = "lit\\x1b", raw[] = "raw\x1b";
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	char line[512], cut[512], *text = NULL;
	size_t len = 0, at;
	FILE *f;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, literal, &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(raw), O_RDONLY, 0, 0, &e), 0);
	t_run(); /* failed, not cancelled by the close */
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	ck_assert_int_gt(rsc_error_format(err, line, sizeof(line)), 0);
	ck_assert_ptr_nonnull(strstr(line, "raw\\x1b"));
	ck_assert_ptr_nonnull(strstr(line, "in scope 'lit\\\\x1b'"));
	/* Cut inside an escape: the escape is left out whole. */
	at = (size_t)(strstr(line, "raw\\x1b") - line) + 3;
	ck_assert_uint_lt(at + 3, sizeof(cut));
	ck_assert_int_eq(rsc_error_format(err, cut, at + 3), (int)strlen(line));
	ck_assert_uint_eq(strlen(cut), at);
	ck_assert_int_eq(strncmp(line, cut, at), 0);
	f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_error_print(err, f), 0);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(text, "in scope 'lit\\\\x1b'"));
	ck_assert_ptr_nonnull(strstr(text, "raw\\x1b"));
	free(text);
	rsc_error_free(err);
}
END_TEST

/* A FIFO nobody reads: open(2) without O_NONBLOCK waits for a reader forever
 * (fifo(7)), in rsc_loop_trace_file() and in rsc_loop_new() under
 * RINGSCOPE_TRACE; both must fail at once instead. */
START_TEST(trace_to_a_fifo_nobody_reads_fails_at_once)
{
	char fifo[512];
	struct rsc_loop *loop = NULL;

	snprintf(fifo, sizeof(fifo), "%s", t_path("fifo"));
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, fifo), -ENXIO);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), fifo));
	ck_assert_int_eq(rsc_loop_trace_flush(t_loop), 0); /* no trace */
	ck_assert_int_eq(setenv("RINGSCOPE_TRACE", fifo, 1), 0);
	ck_assert_int_eq(rsc_loop_new(&loop, 0, 0), -ENXIO);
	unsetenv("RINGSCOPE_TRACE");
	ck_assert_ptr_null(loop);
	t_scope_of_files(0, "untraced");
}
END_TEST

/* rsc_last_error() is a sentence to print, like rsc_error_format()'s: a path
 * or a variable's value in it shows its control bytes, C1 controls and bad
 * UTF-8 as \xNN, never raw. */
START_TEST(last_error_never_carries_raw_control_bytes)
{
	struct rsc_loop *loop = NULL;

	ck_assert_int_eq(rsc_loop_trace_file(t_loop, "/nonexistent-dir/\x1b[31mred\xc2\x9b\xff\n.json"), -ENOENT);
	assert_terminal_safe(rsc_last_error(), "rsc_last_error");
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "/nonexistent-dir/\\x1b[31mred\\xc2\\x9b\\xff\\x0a.json"));
	ck_assert_int_eq(setenv("RINGSCOPE_AUDIT", "full\x1b]0;owned\x07", 1), 0);
	ck_assert_int_eq(rsc_loop_new(&loop, 0, 0), -EINVAL);
	unsetenv("RINGSCOPE_AUDIT");
	assert_terminal_safe(rsc_last_error(), "rsc_last_error");
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "full\\x1b]0;owned\\x07"));
}
END_TEST

/* A FILE on a full disk takes fprintf's bytes into its buffer and fails
 * only when it writes them: the print calls must say -EIO, as
 * rsc_loop_metrics() does, not "printed". */
START_TEST(prints_to_a_full_disk_are_eio)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	FILE *full = fopen("/dev/full", "we");
	int fd;

	if (!full) {
		printf("SKIP prints_to_a_full_disk_are_eio: no /dev/full\n");
		return;
	}
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "leaky", &s), 0);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	ck_assert_int_eq(rsc_audit_print(t_loop, full), -EIO);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "failing", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("missing"), O_RDONLY, 0, 0, &e), 0);
	t_run(); /* the failure first: a close would cancel the open */
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	ck_assert_int_eq(rsc_error_print(err, full), -EIO);
	ck_assert_int_eq(rsc_loop_metrics(t_loop, full), -EIO);
	rsc_error_free(err);
	fclose(full);
	close(fd);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* Each entry's slice is named by its manager's name, as it is when the entry
 * is pushed: one struct rsc_manager (on the stack, say) or one name buffer
 * reused for other names must not lend the first name to the others. */
START_TEST(trace_names_entries_by_the_name_their_manager_has_now)
{
	static const char *const want[] = { "alpha", "beta", "gamma", "delta" };
	struct rsc_manager m = tmgr_manager;
	struct tmgr t = { .exit = TM_EXIT_CLOSE };
	char file[512], name[16], tag[64], *text;
	struct rsc_scope *s;
	unsigned i;

	snprintf(file, sizeof(file), "%s", t_path("names.json"));
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "%s", want[i]);
		m.name = i < 2 ? want[i] : name; /* a new string, then one buffer */
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
		ck_assert_int_eq(rsc_push(s, &m, &t, NULL), 0);
		t_run();
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	}
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(file, NULL);
	for (i = 0; i < 4; i++) {
		snprintf(tag, sizeof(tag), "\"cat\":\"entry\",\"name\":\"%s\"", want[i]);
		ck_assert_msg(strstr(text, tag), "no slice named %s in the trace", want[i]);
	}
	free(text);
}
END_TEST

/* The trace's audit instants say what the finding is, as rsc_audit_print()
 * does: a direct slot whose close failed (RSC_FINDING_SLOT_LEAKED) and one
 * the kernel's table and the runtime's disagree on (SLOT_MISMATCH) are not
 * "not released" descriptors. */
START_TEST(trace_names_the_kind_of_a_slot_finding)
{
	char file[512], *text, *p;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int ret;

	if (rsc_loop_set_direct(t_loop, 16, 4) < 0) {
		printf("SKIP trace_names_the_kind_of_a_slot_finding: no direct table: %s\n", rsc_last_error());
		return;
	}
	ret = rsc_fault_set(t_loop, "close:1:EINVAL");
	if (ret == -EOPNOTSUPP) {
		printf("SKIP trace_names_the_kind_of_a_slot_finding: this build has no fault injection\n");
		return;
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	snprintf(file, sizeof(file), "%s", t_path("slots.json"));
	t_make_files(1);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "leaky", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "close:1:EINVAL"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EINVAL);
	ck_assert_int_eq(t_audit_slots(t_loop), 1); /* the injected close lied */
	ck_assert_int_eq(rsc_audit_count(t_loop), 2);
	ck_assert_int_eq(rsc_finding_kind(rsc_audit_finding(t_loop, 0)), RSC_FINDING_SLOT_LEAKED);
	ck_assert_int_eq(rsc_finding_kind(rsc_audit_finding(t_loop, 1)), RSC_FINDING_SLOT_MISMATCH);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(file, NULL);
	ck_assert_msg(!strstr(text, "\"kind\":\"not released\""), "a slot finding traced as 'not released'");
	p = strstr(text, "\"kind\":\"leaked slot\"");
	ck_assert_msg(p, "no 'leaked slot' instant in the trace");
	ck_assert_msg(strstr(p, "\"kind\":\"mismatched slot\""), "no 'mismatched slot' instant after it");
	free(text);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* The value of series @name{loop="ID"} of the test loop's metrics. */
static long long gauge_of(const char *name)
{
	char *text = NULL, series[128], *p;
	size_t len = 0;
	long long v;
	FILE *f = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_loop_metrics(t_loop, f), 0);
	fclose(f);
	snprintf(series, sizeof(series), "\n%s{loop=\"%d\"} ", name, rsc_loop_id(t_loop));
	p = strstr(text, series);
	ck_assert_msg(p, "no %s in:\n%s", series + 1, text);
	v = strtoll(p + strlen(series), NULL, 10);
	free(text);
	return v;
}

/* A scope an acquire failed in unwinds by itself, then waits for its close
 * (RSC_SCOPE_UNWOUND): until then it is still a scope nobody closed. */
START_TEST(metrics_count_a_failed_scope_until_it_is_closed)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "failing", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("missing"), O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_state(s), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(gauge_of("ringscope_open_scopes"), 1);
	ck_assert_int_eq(gauge_of("ringscope_open_entries"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ENOENT);
	ck_assert_int_eq(gauge_of("ringscope_open_scopes"), 0);
}
END_TEST

/* args.detail is "the path": a long one (a 240-byte file name, two of them
 * nested) is written whole, in the acquire's slice, in the failed acquire's
 * error and in the scope's error chain. */
START_TEST(trace_writes_a_long_path_whole)
{
	char name[241], dir[1024], ok[1536], missing[1536], file[512], *text, *want;
	struct rsc_scope *s;
	int fd;

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(dir, sizeof(dir), "%s/%s", t_dir, name);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(ok, sizeof(ok), "%s/%s", dir, name);
	snprintf(missing, sizeof(missing), "%s/missing-%s", dir, name);
	fd = open(ok, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	snprintf(file, sizeof(file), "%s", t_path("long.json"));
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "long", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, ok, O_RDONLY, 0, 0, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, missing, O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ENOENT);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(file, NULL);
	want = malloc(strlen(missing) + 64);
	ck_assert_ptr_nonnull(want);
	sprintf(want, "\"detail\":\"%s\"", ok);
	ck_assert_msg(strstr(text, want), "the path of an acquire is cut in its slice");
	sprintf(want, "\"detail\":\"%s\"", missing);
	ck_assert_msg(strstr(text, want), "the path of a failed acquire is cut in its slice");
	sprintf(want, "'%s': No such file or directory (ENOENT)", missing);
	ck_assert_msg(strstr(text, want), "the failed acquire's error is cut");
	sprintf(want, "openat %s: No such file or directory (ENOENT)", missing);
	ck_assert_msg(strstr(text, want), "the scope's error chain is cut");
	free(want);
	free(text);
	unlink(ok);
	rmdir(dir);
}
END_TEST

Suite *make_hostile_obs_suite(void)
{
	Suite *s = suite_create("hostile_obs");
	TCase *tc = tcase_create("hostile_obs");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, trace_write_failing_at_its_close_is_returned);
	tcase_add_test(tc, trace_cut_short_by_a_full_disk_stays_a_document);
	tcase_add_test(tc, trace_write_failing_at_loop_free_is_said);
	tcase_add_test(tc, metrics_of_a_loop_listed_twice_are_refused);
	tcase_add_test(tc, printed_errors_and_findings_escape_c1_controls_and_bad_utf8);
	tcase_add_test(tc, printed_backslashes_are_doubled);
	tcase_add_test(tc, trace_to_a_fifo_nobody_reads_fails_at_once);
	tcase_add_test(tc, last_error_never_carries_raw_control_bytes);
	tcase_add_test(tc, prints_to_a_full_disk_are_eio);
	tcase_add_test(tc, trace_names_entries_by_the_name_their_manager_has_now);
	tcase_add_test(tc, trace_names_the_kind_of_a_slot_finding);
	tcase_add_test(tc, metrics_count_a_failed_scope_until_it_is_closed);
	tcase_add_test(tc, trace_writes_a_long_path_whole);
	suite_add_tcase(s, tc);
	return s;
}
