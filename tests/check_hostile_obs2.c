/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* Errors, error chains, findings, counters, metrics and the trace as a
 * hostile tester reads their pages: names holding any byte but NUL, small
 * buffers, a trace callback that calls back in, chains outliving their loop. */

/* The Debian python3 that has python3-prometheus-client; json is everywhere. */
#define PY "/usr/bin/python3"

static bool have_python(const char *module)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), PY " -c 'import %s' > /dev/null 2>&1", module);
	return access(PY, X_OK) == 0 && system(cmd) == 0;
}

/*
 * A trace at @path read by python3's strict json (UTF-8 decoded strictly):
 * every entry "e" has its "b" before it, in this file. 1 valid, 0 not.
 */
static int trace_parses(const char *path)
{
	static const char script[] =
		"import json,sys\n"
		"d=json.loads(open(sys.argv[1],'rb').read().decode('utf-8'))\n"
		"seen=set()\n"
		"for e in d['traceEvents']:\n"
		"  k=(e.get('cat'),e.get('id'))\n"
		"  if e['ph']=='b': seen.add(k)\n"
		"  if e['ph']=='e' and k not in seen: sys.exit('e without b: %r'%(e,))\n";
	char *cmd;
	int ret;

	ck_assert_int_gt(asprintf(&cmd, PY " -c \"$S\" '%s'", path), 0);
	setenv("S", script, 1);
	ret = system(cmd);
	unsetenv("S");
	free(cmd);
	return ret == 0;
}

/* No byte of @text (length @len) is a control (C0 but \n, DEL, C1 as UTF-8). */
static void assert_no_raw_controls(const char *text, size_t len, const char *what)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i;

	for (i = 0; i < len; i++) {
		ck_assert_msg((p[i] >= 0x20 && p[i] != 0x7f) || p[i] == '\n',
			      "%s: raw byte 0x%02x at %zu", what, p[i], i);
		ck_assert_msg(!(p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] < 0xa0),
			      "%s: raw C1 control c2 %02x at %zu", what, p[i + 1], i);
	}
}

/*
 * File and scope names holding DEL and C1 controls (U+0085 NEL, U+009B CSI):
 * the trace page promises "control characters escaped", and a DEL or a CSI
 * reaching a terminal that shows the file (cat, less -r, jq) drives it as an
 * ESC would. They must come out as \u007f, \u0085, \u009b, and the file
 * stays valid JSON. The audit's finding target and the error's text too.
 */
START_TEST(trace_escapes_del_and_c1_controls)
{
	static const char odd[] = "d\x7f" "el\xc2\x85" "n\xc2\x9b" "31m";
	char trace[PATH_MAX], file[PATH_MAX], missing[PATH_MAX], *text;
	struct rsc_scope *s;
	struct rsc_error *err = NULL;
	size_t len;
	int fd, leak;

	snprintf(trace, sizeof(trace), "%s", t_path("t.json"));
	snprintf(file, sizeof(file), "%s", t_path(odd));
	snprintf(missing, sizeof(missing), "%s/missing%s", t_dir, odd);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, trace), 0);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, odd, &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, file, O_RDONLY, 0, 0, NULL), 0);
	t_run();
	leak = open(file, O_RDONLY | O_CLOEXEC); /* found leaked, its target the odd path */
	ck_assert_int_ge(leak, 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, missing, O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	ck_assert_str_eq(rsc_finding_target(rsc_audit_finding(t_loop, 0)), file);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	close(leak);
	rsc_error_free(err);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
	text = t_slurp(trace, &len);
	assert_no_raw_controls(text, len, "trace");
	ck_assert_ptr_nonnull(strstr(text, "d\\u007fel\\u0085n\\u009b31m"));
	t_assert_trace_complete(text);
	free(text);
	if (have_python("json"))
		ck_assert_msg(trace_parses(trace), "python3's json refused the trace");
}
END_TEST

/* The process's own name goes into the trace's header: escaped the same way. */
START_TEST(trace_escapes_a_process_name_with_controls)
{
	extern char *program_invocation_short_name;
	char *saved = program_invocation_short_name, name[] = "pr\x1b\x7f" "og\xc2\x9b";
	char *text;
	size_t len;

	program_invocation_short_name = name;
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("p.json")), 0);
	program_invocation_short_name = saved;
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(t_path("p.json"), &len);
	assert_no_raw_controls(text, len, "trace header");
	ck_assert_ptr_nonnull(strstr(text, "pr\\u001b\\u007fog\\u009b"));
	free(text);
}
END_TEST

/* What the trace callback of trace_callback_switches_the_trace did, and saw. */
struct switcher {
	struct rsc_loop *loop;
	char second[PATH_MAX];
	int entered, released, closed;
	int switch_ret, flush_ret, stop_ret, close_ret, shutdown_ret, metrics_ret, unset_ret;
};

static void switch_trace(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *scope,
			 const struct rsc_entry *entry, int res, void *data)
{
	struct switcher *w = data;
	FILE *null;

	(void)scope;
	(void)entry;
	(void)res;
	if (ev == RSC_EV_ENTERED && ++w->entered == 2)
		w->switch_ret = rsc_loop_trace_file(loop, w->second); /* mid-batch */
	if (ev == RSC_EV_RELEASED && ++w->released == 1) {
		w->flush_ret = rsc_loop_trace_flush(loop);
		null = fopen("/dev/null", "we");
		w->metrics_ret = null ? rsc_loop_metrics(loop, null) : -ENOMEM;
		if (null)
			fclose(null);
	}
	if (ev == RSC_EV_SCOPE_CLOSED) {
		w->closed++;
		w->close_ret = rsc_loop_close(loop);
		w->shutdown_ret = rsc_loop_shutdown(loop, NULL);
		w->stop_ret = rsc_loop_trace_file(loop, NULL);
		w->unset_ret = rsc_loop_set_trace(loop, NULL, NULL); /* no more calls */
	}
}

/*
 * The trace callback switches the JSON trace to a new file mid-batch,
 * flushes it, writes the metrics, stops it and removes itself. The pages
 * forbid none of it; the loop must go on, both files stay complete
 * documents in which no slice ends that did not begin there, and the
 * counters keep their account.
 */
START_TEST(trace_callback_switches_the_trace)
{
	struct switcher w = { .loop = t_loop };
	long long acq = rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED);
	long long rel = rsc_loop_counter(t_loop, RSC_CTR_RELEASED);
	struct rsc_scope *s;
	char *text;

	snprintf(w.second, sizeof(w.second), "%s", t_path("second.json"));
	t_make_files(4);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("first.json")), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, switch_trace, &w), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "switched", &s), 0);
	t_open_files(s, 0, 4);
	t_run();
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(w.entered, 4);
	ck_assert_int_eq(w.released, 4);
	ck_assert_int_eq(w.closed, 1);
	ck_assert_int_eq(w.switch_ret, 0);
	ck_assert_int_eq(w.flush_ret, 0);
	ck_assert_int_eq(w.metrics_ret, 0);
	ck_assert_int_eq(w.close_ret, -EDEADLK);
	ck_assert_int_eq(w.shutdown_ret, -EDEADLK);
	ck_assert_int_eq(w.stop_ret, 0);
	ck_assert_int_eq(w.unset_ret, 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED) - acq, 4);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED) - rel, 4);
	ck_assert_int_eq(rsc_loop_trace_flush(t_loop), 0); /* no trace: nothing to do */
	text = t_slurp(t_path("first.json"), NULL);
	t_assert_trace_complete(text);
	ck_assert_ptr_nonnull(strstr(text, "\"end\":\"trace stopped\""));
	free(text);
	text = t_slurp(w.second, NULL);
	t_assert_trace_complete(text);
	/* Every slice began in the first trace: none here (rsc_loop_trace_file(3)),
	 * not one made up as "entered at once"; the four still count as open. */
	ck_assert_ptr_null(strstr(text, "entered at once"));
	ck_assert_ptr_null(strstr(text, "\"event\":\"release started\""));
	ck_assert_ptr_nonnull(strstr(text, "\"open entries\":4"));
	free(text);
	if (have_python("json")) {
		ck_assert_msg(trace_parses(t_path("first.json")), "first trace");
		ck_assert_msg(trace_parses(w.second), "second trace");
	}
}
END_TEST

static int nop_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0; /* no SQE: entered from the loop */
}

static int eio_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	return -EIO; /* one more link on the chain */
}

/* A name with every kind of byte the text must show escaped: ESC, DEL, a C1
 * CSI, a lone 0xff, a backslash, a quote, printf's specifiers, and é. */
#define ODD "m\x1b[2J\x7f\xc2\x9b\xff\\\"%s%n\xc3\xa9"

static const struct rsc_manager odd_mgr = {
	.size = sizeof(struct rsc_manager), .name = ODD, .enter = nop_enter, .exit = eio_exit,
};

/* The boundaries of the pieces of escaped text @t: a character, or an escape
 * (\\ or \xNN). A cut must fall on one of them. */
static bool on_boundary(const char *t, size_t at)
{
	size_t i = 0;

	while (i < at)
		i += t[i] == '\\' ? (t[i + 1] == 'x' ? 4 : 2) :
		     (unsigned char)t[i] >= 0xc0 ? 2 : 1; /* only é is multi-byte here */
	return i == at;
}

/* The chain of a custom exit's EIO over a failed open of an odd path, in a
 * scope with an odd name: the test owns it. */
static struct rsc_error *odd_chain(void)
{
	struct rsc_scope *s;
	struct rsc_error *err = NULL;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s" ODD, &s), 0);
	ck_assert_int_eq(rsc_push(s, &odd_mgr, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("miss" ODD "\n"), O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	ck_assert_int_eq(rsc_error_depth(err), 2);
	ck_assert_str_eq(rsc_error_entry(err), ODD); /* the getters: the bytes */
	ck_assert_str_eq(rsc_error_scope(err), "s" ODD);
	return err;
}

/*
 * rsc_error_format "works like snprintf(3)" at every length, with escapes
 * in the text: the same result (the whole length), at most len bytes
 * written, NUL-terminated, a prefix of the whole text that never ends
 * inside an escape or a character, and nothing after it is cut shorter
 * than it must be.
 */
START_TEST(error_format_is_snprintf_at_every_length)
{
	struct rsc_error *err = odd_chain();
	char *full, *buf;
	int need, len, got, k, best;

	need = rsc_error_format(err, NULL, 0);
	ck_assert_int_gt(need, 100);
	full = malloc((size_t)need + 1);
	buf = malloc((size_t)need + 8);
	ck_assert_ptr_nonnull(full);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(rsc_error_format(err, full, (size_t)need + 1), need);
	ck_assert_int_eq(strlen(full), need);
	assert_no_raw_controls(full, (size_t)need, "rsc_error_format");
	ck_assert_ptr_nonnull(strstr(full, "m\\x1b[2J\\x7f\\xc2\\x9b\\xff\\\\\"%s%n\xc3\xa9"));
	ck_assert_ptr_nonnull(strstr(full, "miss"));
	ck_assert_ptr_nonnull(strstr(full, "\\x0a: No such file"));
	ck_assert_ptr_null(strchr(full, '\n'));
	ck_assert_ptr_nonnull(strstr(full, "; caused by openat "));
	for (len = 0; len <= need + 2; len++) {
		memset(buf, 'Z', (size_t)need + 8);
		got = rsc_error_format(err, buf, (size_t)len);
		ck_assert_int_eq(got, need);
		for (k = len; k < need + 8; k++)
			ck_assert_msg(buf[k] == 'Z', "len %d: byte %d written", len, k);
		if (len == 0)
			continue;
		k = (int)strlen(buf);
		ck_assert_int_lt(k, len);
		ck_assert_msg(!memcmp(buf, full, (size_t)k), "len %d: not a prefix", len);
		ck_assert_msg(on_boundary(full, (size_t)k), "len %d: cut inside a piece at %d", len, k);
		for (best = len - 1 < need ? len - 1 : need; !on_boundary(full, (size_t)best); best--)
			;
		ck_assert_msg(k == best, "len %d: cut at %d, could hold %d: [%.12s]", len, k, best, full + k - 4);
	}
	ck_assert_int_eq(rsc_error_format(err, NULL, 1), -EINVAL);
	ck_assert_int_eq(rsc_error_format(err, buf, 0), need);
	free(full);
	free(buf);
	rsc_error_free(err);
}
END_TEST

/* rsc_error_print shows the same escapes, one line per error; a FILE that
 * cannot be written is -EIO. */
START_TEST(error_print_escapes_and_reports_a_failing_stream)
{
	struct rsc_error *err = odd_chain();
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len), *ro;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_error_print(err, f), 0);
	fclose(f);
	assert_no_raw_controls(text, len, "rsc_error_print");
	ck_assert_ptr_nonnull(strstr(text, "error: exit: Input/output error (EIO) [entry 'm\\x1b[2J\\x7f\\xc2\\x9b\\xff\\\\\"%s%n\xc3\xa9' in scope 's"));
	ck_assert_ptr_nonnull(strstr(text, "\n  caused by: openat "));
	ck_assert_int_eq(strchr(strchr(text, '\n') + 1, '\n') - text + 1, (long)len); /* two lines */
	free(text);
	ro = fopen("/dev/null", "re");
	ck_assert_ptr_nonnull(ro);
	ck_assert_int_eq(rsc_error_print(err, ro), -EIO);
	fclose(ro);
	rsc_error_free(err);
}
END_TEST

/*
 * rsc_last_error is at most 255 bytes and escaped: a path whose escapes run
 * past the end is cut before an escape, never inside one; printf's
 * specifiers in a path are text; a path longer than PATH_MAX is cut too.
 */
START_TEST(last_error_cut_keeps_escapes_whole)
{
	char path[6000];
	const char *le;
	size_t n, pad;

	for (pad = 200; pad < 260; pad++) {
		memset(path, 0, sizeof(path));
		memcpy(path, "/nonexistent/", 13);
		memset(path + 13, 'a', pad);
		memcpy(path + 13 + pad, "\x1b\x1b\xc3\xa9\x1b%s%n%x\\", sizeof("\x1b\x1b\xc3\xa9\x1b%s%n%x\\"));
		ck_assert_int_eq(rsc_loop_trace_file(t_loop, path), -ENOENT);
		le = rsc_last_error();
		n = strlen(le);
		ck_assert_uint_le(n, 255);
		assert_no_raw_controls(le, n, "rsc_last_error");
		ck_assert_msg(on_boundary(le, n), "pad %zu: cut inside an escape: ...%s", pad, le + n - 8);
		ck_assert_ptr_nonnull(strstr(le, "rsc_loop_trace_file: cannot write /nonexistent/aaa"));
	}
	memcpy(path, "/nonexistent/", 13);
	memset(path + 13, 'a', 40);
	memcpy(path + 53, "%s%n%x\\", 8);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, path), -ENOENT);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "aaa%s%n%x\\\\: No such file or directory"));
	memset(path, '\x01', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, path), -ENAMETOOLONG);
	le = rsc_last_error();
	n = strlen(le);
	ck_assert_uint_le(n, 255);
	assert_no_raw_controls(le, n, "rsc_last_error");
	ck_assert_msg(on_boundary(le, n), "cut inside an escape: ...%s", le + n - 8);
}
END_TEST

/* A trace file on a device that is always full: the first write (the
 * header) fails, so the call does, and the loop goes on as before. Under
 * RINGSCOPE_TRACE, rsc_loop_new fails with that error. */
START_TEST(trace_on_a_full_device_fails_and_the_loop_goes_on)
{
	struct rsc_loop *l = NULL;
	struct rsc_scope *s;
	int fds;

	if (access("/dev/full", W_OK) != 0) {
		printf("SKIP trace_on_a_full_device_fails_and_the_loop_goes_on: no /dev/full\n");
		return;
	}
	fds = t_fd_count();
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, "/dev/full"), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "/dev/full"));
	ck_assert_int_eq(t_fd_count(), fds);
	ck_assert_int_eq(rsc_loop_trace_flush(t_loop), 0); /* no trace */
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "after", &s), 0);
	t_open_files(s, 0, 2);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 2);
	setenv("RINGSCOPE_TRACE", "/dev/full", 1);
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), -ENOSPC);
	unsetenv("RINGSCOPE_TRACE");
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "RINGSCOPE_TRACE"));
	ck_assert_int_eq(t_fd_count(), fds);
	/* The name stays free for the next loop's trace. */
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
}
END_TEST

static void keep_chain(struct rsc_scope *scope, int status, const struct rsc_error *err, void *data)
{
	(void)scope;
	(void)status;
	ck_assert_int_eq(rsc_error_dup(err, data), 0);
}

struct far_side {
	struct rsc_error *err;
	int depth, errno_, len, printed;
	char text[4096];
};

/* Another thread reads, formats, prints, duplicates and frees a chain whose
 * loop is gone. */
static void *use_far_away(void *arg)
{
	struct far_side *f = arg;
	struct rsc_error *again = NULL;
	FILE *null = fopen("/dev/null", "we");

	f->depth = rsc_error_depth(f->err);
	f->errno_ = rsc_error_errno(rsc_error_cause(f->err));
	f->len = rsc_error_format(f->err, f->text, sizeof(f->text));
	f->printed = null ? rsc_error_print(f->err, null) : -ENOMEM;
	if (null)
		fclose(null);
	if (rsc_error_dup(f->err, &again) == 0)
		rsc_error_free(again);
	rsc_error_free(f->err);
	return NULL;
}

/*
 * rsc_error_dup(3): "a chain the caller owns may be handed to another
 * thread, duplicated and freed there, ... after that loop is freed". The
 * chain is kept from a close callback (lent, then duplicated), the loop
 * closed and freed, and another thread uses the chain.
 */
START_TEST(owned_chain_outlives_its_loop_on_another_thread)
{
	struct far_side f = { 0 };
	struct rsc_loop *l;
	struct rsc_scope *s;
	pthread_t t;

	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "gone" ODD, &s), 0);
	ck_assert_int_eq(rsc_push(s, &odd_mgr, NULL, NULL), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -ENOTRECOVERABLE, "body" ODD), 0);
	ck_assert_int_eq(rsc_scope_close(s, keep_chain, &f.err), 0);
	ck_assert_int_eq(rsc_loop_run(l, RSC_RUN_DEFAULT), 0);
	ck_assert_ptr_nonnull(f.err);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, use_far_away, &f), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(f.depth, 2);
	ck_assert_int_eq(f.errno_, -ENOTRECOVERABLE);
	ck_assert_int_eq(f.len, (int)strlen(f.text));
	ck_assert_int_eq(f.printed, 0);
	assert_no_raw_controls(f.text, strlen(f.text), "far side");
	ck_assert_ptr_nonnull(strstr(f.text, "; caused by body" "m\\x1b[2J"));
	ck_assert_ptr_nonnull(strstr(f.text, "in scope 'gonem\\x1b[2J"));
}
END_TEST

#define N_LOOPS 48

/* Counters of @loop now, to take differences. */
static void snap(struct rsc_loop *loop, long long out[RSC_CTR_COUNT])
{
	for (int c = 0; c < RSC_CTR_COUNT; c++)
		out[c] = rsc_loop_counter(loop, (enum rsc_counter)c);
}

/*
 * The exposition of @n loops at @path read by the Prometheus client's
 * parser: each family once, one sample per loop per series, and for each
 * loop and counter the value given in @want ("LOOP NAME VALUE" lines).
 */
static int exposition_parses(const char *path, unsigned n, const char *want)
{
	static const char script[] =
		"import sys,collections\n"
		"from prometheus_client.parser import text_string_to_metric_families as p\n"
		"t=open(sys.argv[1],encoding='utf-8').read()\n"
		"n=int(sys.argv[2]); seen=collections.Counter(); names=set(); v={}\n"
		"for f in p(t):\n"
		"  assert f.name not in names, f.name\n"
		"  names.add(f.name)\n"
		"  for s in f.samples:\n"
		"    k=(s.name,tuple(sorted(s.labels.items())))\n"
		"    seen[k]+=1; v[(s.labels.get('loop'),s.name)]=s.value\n"
		"assert all(c==1 for c in seen.values()), [k for k,c in seen.items() if c>1][:3]\n"
		"assert len({l for l,_ in v})==n, len({l for l,_ in v})\n"
		"for line in open(sys.argv[3]):\n"
		"  l,name,val=line.split()\n"
		"  got=v.get((l,'ringscope_'+name+'_total'))\n"
		"  assert got==float(val), (l,name,got,val)\n";
	char *cmd, wpath[PATH_MAX + 8];
	FILE *w;
	int ret;

	snprintf(wpath, sizeof(wpath), "%s.want", path);
	w = fopen(wpath, "we");
	ck_assert_ptr_nonnull(w);
	fputs(want, w);
	fclose(w);
	ck_assert_int_gt(asprintf(&cmd, PY " -c \"$S\" '%s' %u '%s'", path, n, wpath), 0);
	setenv("S", script, 1);
	ret = system(cmd);
	unsetenv("S");
	free(cmd);
	return ret == 0;
}

/*
 * A scripted workload, then each counter differs from its value before by
 * exactly what was done: two files acquired one at a time, a third open
 * failed (an injected EACCES where faults are built in, a missing file
 * elsewhere), the two released by that unwind; a connect cancelled by its
 * scope's close (its socket acquired and released); a custom entry whose
 * exit fails, released early; an adopted pipe end. rsc_metrics_write of
 * the loop among 47 others says the same, read by the Prometheus parser.
 */
START_TEST(counters_and_metrics_match_a_scripted_workload)
{
	long long before[RSC_CTR_COUNT], after[RSC_CTR_COUNT];
	struct rsc_loop *loops[N_LOOPS];
	struct rsc_scope *s, *t;
	struct rsc_entry *custom, *conn;
	struct sockaddr_un sun;
	int fill[64], nfill, lfd, p[2], faults, i;
	char want[512], path[PATH_MAX];
	FILE *out;

	t_make_files(3);
	snap(t_loop, before);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "f\n\x1b" ODD, &s), 0);
	t_open_files(s, 0, 1);
	t_run();
	t_open_files(s, 1, 1);
	t_run();
	faults = rsc_fault_set(t_loop, "openat:1:EACCES") == 0;
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, faults ? t_path("f2") : t_path("nope"), O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), faults ? -EACCES : -ENOENT);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), faults ? 0 : -EOPNOTSUPP);

	lfd = t_full_unix_listener(&sun, fill, &nfill);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "c", &t), 0);
	ck_assert_int_eq(rsc_connect(t, (struct sockaddr *)&sun, sizeof(sun), 0, 0, &conn), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_state(conn), RSC_ENTERING); /* waits in the backlog */
	ck_assert_int_eq(rsc_push(t, &odd_mgr, NULL, &custom), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_entry_state(custom), RSC_ENTERED);
	ck_assert_int_eq(rsc_entry_release(custom, NULL, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_adopt(t, p[0], 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(t, NULL), -EIO); /* the early release's */
	close(p[1]);
	t_full_unix_listener_close(lfd, fill, nfill);
	snap(t_loop, after);

	ck_assert_int_eq(after[RSC_CTR_ACQUIRED] - before[RSC_CTR_ACQUIRED], 2 + 1 + 1 + 1);
	ck_assert_int_eq(after[RSC_CTR_RELEASED] - before[RSC_CTR_RELEASED], 5);
	ck_assert_int_eq(after[RSC_CTR_ENTER_FAILED] - before[RSC_CTR_ENTER_FAILED], 2);
	ck_assert_int_eq(after[RSC_CTR_LATE_ACQUIRES] - before[RSC_CTR_LATE_ACQUIRES], 0);
	ck_assert_int_eq(after[RSC_CTR_FAULTS_INJECTED] - before[RSC_CTR_FAULTS_INJECTED], faults);
	ck_assert_int_eq(after[RSC_CTR_DEADLINES] - before[RSC_CTR_DEADLINES], 0);
	ck_assert_int_ge(after[RSC_CTR_SQES] - before[RSC_CTR_SQES], 3 + 2 + 5);
	ck_assert_int_ge(after[RSC_CTR_CQES] - before[RSC_CTR_CQES], 3 + 2 + 4);
	for (i = 0; i < RSC_CTR_COUNT; i++)
		ck_assert_int_ge(after[i], before[i]); /* only grow */
	/* The trace callback's account agrees. */
	ck_assert_int_eq(t_count_events(RSC_EV_ENTERED), 5);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 5);
	ck_assert_int_eq(t_count_events(RSC_EV_ENTER_FAILED), 2);
	if (faults) {
		/* The ring's own faults: each rule drawn once, each counted once. */
		snap(t_loop, before);
		ck_assert_int_eq(rsc_fault_set(t_loop, "sq_full:1:EBUSY,submit:1:EAGAIN,wait:1:EINTR"), 0);
		t_scope_of_files(1, "ring faults");
		t_scope_that_waits(100);
		ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
		snap(t_loop, after);
		ck_assert_int_eq(after[RSC_CTR_FAULTS_INJECTED] - before[RSC_CTR_FAULTS_INJECTED], 3);
		ck_assert_int_eq(after[RSC_CTR_SQ_FULL] - before[RSC_CTR_SQ_FULL], 1);
		ck_assert_int_eq(after[RSC_CTR_BUSY_RETRIES] - before[RSC_CTR_BUSY_RETRIES], 1);
		ck_assert_int_eq(after[RSC_CTR_ACQUIRED] - before[RSC_CTR_ACQUIRED], 2);
		ck_assert_int_eq(after[RSC_CTR_RELEASED] - before[RSC_CTR_RELEASED], 2);
		ck_assert_int_eq(after[RSC_CTR_ENTER_FAILED] - before[RSC_CTR_ENTER_FAILED], 0);
	}

	loops[0] = t_loop;
	for (i = 1; i < N_LOOPS; i++)
		ck_assert_int_eq(rsc_loop_new(&loops[i], 8, 0), 0);
	ck_assert_int_eq(rsc_loop_set_metrics(loops[N_LOOPS / 2], RSC_METRICS_LATENCY), 0);
	snprintf(path, sizeof(path), "%s", t_path("metrics.txt"));
	out = fopen(path, "we");
	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(rsc_metrics_write(loops, N_LOOPS, out), 0);
	fclose(out);
	snprintf(want, sizeof(want),
		 "%d acquired %lld\n%d released %lld\n%d enter_failed %lld\n%d faults_injected %lld\n"
		 "%d acquired 0\n%d sqes 0\n",
		 rsc_loop_id(t_loop), after[RSC_CTR_ACQUIRED], rsc_loop_id(t_loop),
		 after[RSC_CTR_RELEASED], rsc_loop_id(t_loop), after[RSC_CTR_ENTER_FAILED],
		 rsc_loop_id(t_loop), after[RSC_CTR_FAULTS_INJECTED], rsc_loop_id(loops[N_LOOPS - 1]),
		 rsc_loop_id(loops[N_LOOPS - 1]));
	for (i = 1; i < N_LOOPS; i++)
		ck_assert_int_eq(rsc_loop_close(loops[i]), 0);
	if (!have_python("prometheus_client")) {
		printf("SKIP counters_and_metrics_match_a_scripted_workload (the parse): no python3-prometheus-client\n");
		return;
	}
	ck_assert_msg(exposition_parses(path, N_LOOPS, want), "the Prometheus parser refused the metrics");
}
END_TEST

static const struct rsc_manager eio_mgr = {
	.size = sizeof(struct rsc_manager), .name = "link", .enter = nop_enter, .exit = eio_exit,
};

static double seconds_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * A traced unwind of 20,000 exits that each fail: each release's event
 * carries the chain it replaces, capped at 6144 bytes ("the first errors of
 * a long chain"), so each event costs what it writes. Formatting the whole
 * chain for each event made the unwind quadratic: 27 s here instead of 0.5.
 */
START_TEST(traced_unwind_of_a_long_chain_stays_linear)
{
	int n = t_under_valgrind() ? 2000 : 20000, i;
	long long rel = rsc_loop_counter(t_loop, RSC_CTR_RELEASED);
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	struct timespec t0;
	double took;

	ck_assert_int_eq(rsc_loop_trace_file(t_loop, "/dev/null"), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0); /* the recorder holds 4096 */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "deep", &s), 0);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(rsc_push(s, &eio_mgr, NULL, NULL), 0);
	t_run();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	took = seconds_since(&t0);
	ck_assert_int_eq(rsc_error_depth(err), n);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED) - rel, n);
	rsc_error_free(err);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	if (!t_under_valgrind())
		ck_assert_msg(took < 8.0, "the traced unwind of %d links took %.1f s", n, took);
}
END_TEST

struct other_thread {
	char text[256];
	int ret;
};

static void *fail_elsewhere(void *arg)
{
	struct other_thread *o = arg;

	o->ret = rsc_loop_trace_file(NULL, "x");
	snprintf(o->text, sizeof(o->text), "%s", rsc_last_error());
	return NULL;
}

/* "The text is kept per thread": another thread's failure leaves this
 * thread's sentence as it was, and has its own. */
START_TEST(last_error_is_kept_per_thread)
{
	struct other_thread o = { .ret = 1 };
	char mine[256];
	pthread_t t;

	ck_assert_int_eq(rsc_loop_trace_file(t_loop, "/nonexistent/mine"), -ENOENT);
	snprintf(mine, sizeof(mine), "%s", rsc_last_error());
	ck_assert_ptr_nonnull(strstr(mine, "/nonexistent/mine"));
	ck_assert_int_eq(pthread_create(&t, NULL, fail_elsewhere, &o), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(o.ret, -EINVAL);
	ck_assert_str_eq(o.text, "rsc_loop_trace_file: loop is NULL");
	ck_assert_str_eq(rsc_last_error(), mine);
}
END_TEST

/* What the trace callback of findings_outlive_more_findings saw. */
struct finding_watch {
	int events, cleared_at, print_ret, last_fd, count_seen;
};

static void watch_findings(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *scope,
			   const struct rsc_entry *entry, int res, void *data)
{
	struct finding_watch *w = data;
	const struct rsc_finding *f;
	FILE *null;

	(void)scope;
	(void)entry;
	if (ev != RSC_EV_AUDIT_FINDING)
		return;
	w->events++;
	w->count_seen = rsc_audit_count(loop);
	f = rsc_audit_finding(loop, (unsigned)w->count_seen - 1);
	w->last_fd = f && rsc_finding_fd(f) == res ? res : -1;
	null = fopen("/dev/null", "we");
	w->print_ret = null ? rsc_audit_print(loop, null) : -ENOMEM;
	if (null)
		fclose(null);
	if (w->events == w->cleared_at)
		ck_assert_int_eq(rsc_audit_clear(loop), 0); /* the page allows it */
}

/* Leak @n descriptors of @file inside a new scope of @loop; closing it
 * makes @n LEAKED findings. The descriptors are stored in @fds. */
static void leak_in_a_scope(const char *name, const char *file, int n, int *fds)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, name, &s), 0);
	for (int i = 0; i < n; i++) {
		fds[i] = open(file, O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(fds[i], 0);
	}
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}

/*
 * rsc_audit_finding(3): "each finding is its own allocation, so the pointer
 * stays valid while the loop runs and records more findings". A finding
 * kept across 40 more (the list grows several times) still reads the same;
 * the trace callback reads each new finding, prints them all, and clears
 * them at the 30th, as its page allows; the count starts again.
 */
START_TEST(findings_outlive_more_findings)
{
	struct finding_watch w = { .cleared_at = 30 };
	const struct rsc_finding *first;
	char file[PATH_MAX], *text = NULL;
	int fds[41], i;
	size_t len = 0;
	FILE *f;

	snprintf(file, sizeof(file), "%s", t_path("x\x1b" "leak\n"));
	fds[0] = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fds[0], 0);
	close(fds[0]);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, watch_findings, &w), 0);
	leak_in_a_scope("one\x7f", file, 1, fds);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	first = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(first), RSC_FINDING_LEAKED);
	leak_in_a_scope("many", file, 20, fds + 1);
	ck_assert_int_eq(rsc_audit_count(t_loop), 21);
	ck_assert_int_eq(rsc_finding_fd(first), fds[0]);
	ck_assert_str_eq(rsc_finding_scope(first), "one\x7f");
	ck_assert_str_eq(rsc_finding_target(first), file);
	f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_audit_print(t_loop, f), 21);
	fclose(f);
	assert_no_raw_controls(text, len, "rsc_audit_print");
	ck_assert_ptr_nonnull(strstr(text, "x\\x1bleak\\x0a in scope 'one\\x7f': expected "));
	free(text);
	leak_in_a_scope("more", file, 20, fds + 21);
	ck_assert_int_eq(w.events, 41);
	ck_assert_int_eq(w.print_ret, 11);
	ck_assert_int_eq(w.count_seen, 11);
	ck_assert_int_eq(w.last_fd, fds[40]);
	ck_assert_int_eq(rsc_audit_count(t_loop), 11);
	ck_assert_int_eq(rsc_finding_fd(rsc_audit_finding(t_loop, 10)), fds[40]);
	ck_assert_ptr_null(rsc_audit_finding(t_loop, 11));
	for (i = 0; i < 41; i++)
		close(fds[i]);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
}
END_TEST

/* The bytes of the JSON string value of the first "@key":"..." in @text. */
static size_t json_value_len(const char *text, const char *key)
{
	char pat[64];
	const char *p, *q;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(text, pat);
	ck_assert_msg(p != NULL, "no %s", key);
	p += strlen(pat);
	for (q = p; *q != '"'; q++)
		if (*q == '\\')
			q++;
	return (size_t)(q - p);
}

static const struct rsc_manager *long_named(char *name, size_t len)
{
	static struct rsc_manager m = { .size = sizeof(struct rsc_manager), .enter = nop_enter, .exit = eio_exit };

	for (size_t i = 0; i + 1 < len; i++)
		name[i] = "\x01\xc3\xa9\"\\\x7f"[i % 6];
	name[len - 1] = '\0';
	m.name = name;
	return &m;
}

/*
 * Names, paths and an op far longer than any cap, all escapes: the trace
 * cuts each at its cap (a name at 200 bytes of JSON, a path at 4096) on an
 * escape's boundary, and the file stays JSON; the error's text and
 * rsc_last_error stay one line.
 */
START_TEST(odd_and_huge_names_are_cut_whole_in_the_trace)
{
	char mname[1000], scope[RSC_NAME_MAX], *op, *path, *text, line[64];
	struct rsc_error *err = NULL;
	struct rsc_scope *s;
	size_t len;

	memset(scope, '\x1b', sizeof(scope) - 1);
	scope[sizeof(scope) - 1] = '\0';
	op = malloc(10000);
	path = malloc(8000);
	ck_assert_ptr_nonnull(op);
	ck_assert_ptr_nonnull(path);
	memset(op, '\x7f', 9999);
	op[9999] = '\0';
	memset(path, '\n', 7999);
	path[0] = '/';
	path[7999] = '\0';
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("huge.json")), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, scope, &s), 0);
	ck_assert_int_eq(rsc_push(s, long_named(mname, sizeof(mname)), NULL, NULL), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, path, O_RDONLY, 0, 0, NULL), -ENAMETOOLONG);
	ck_assert_uint_le(strlen(rsc_last_error()), 255);
	assert_no_raw_controls(rsc_last_error(), strlen(rsc_last_error()), "rsc_last_error");
	path[PATH_MAX - 1] = '\0'; /* the longest path it takes: the kernel refuses it */
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, path, O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, op), -EALREADY); /* it failed already */
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	ck_assert_int_eq(rsc_error_errno(rsc_error_cause(err)), -ENAMETOOLONG);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "op", &s), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, op), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EPROTO);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	ck_assert_str_eq(rsc_error_detail(rsc_error_cause(err)), path);
	ck_assert_int_eq(rsc_error_format(err, line, sizeof(line)), (int)rsc_error_format(err, NULL, 0));
	ck_assert_ptr_null(strchr(line, '\n'));
	text = t_slurp(t_path("huge.json"), &len);
	assert_no_raw_controls(text, len, "trace");
	ck_assert_uint_le(json_value_len(text, "detail"), 4096);
	ck_assert_uint_ge(json_value_len(text, "detail"), 4090);
	ck_assert_uint_le(json_value_len(strstr(text, "\"cat\":\"entry\""), "name"), 200);
	ck_assert_uint_le(json_value_len(strstr(text, "\"cat\":\"scope\""), "name"), 200);
	ck_assert_uint_le(json_value_len(text, "error"), 6144);
	t_assert_trace_complete(text);
	free(text);
	if (have_python("json"))
		ck_assert_msg(trace_parses(t_path("huge.json")), "python3's json refused the trace");
	rsc_error_free(err);
	free(op);
	free(path);
}
END_TEST

/* RINGSCOPE_TRACE: %p and %l are replaced, %% is one %, any other % is
 * itself (printf's specifiers are text). */
START_TEST(trace_env_template_takes_percent_signs_literally)
{
	char tmpl[PATH_MAX], want[PATH_MAX + 64];
	struct rsc_loop *l;
	struct stat st;

	snprintf(tmpl, sizeof(tmpl), "%s/t%%s%%n%%%%l%%l%%", t_dir);
	setenv("RINGSCOPE_TRACE", tmpl, 1);
	ck_assert_int_eq(rsc_loop_new(&l, 8, 0), 0);
	unsetenv("RINGSCOPE_TRACE");
	snprintf(want, sizeof(want), "%s/t%%s%%n%%l%d%%", t_dir, rsc_loop_id(l));
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_msg(stat(want, &st) == 0, "no %s", want);
	ck_assert_int_gt(st.st_size, 0);
}
END_TEST

static off_t size_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

/*
 * rsc_loop_trace_file(3): "If a write fails (a full disk), the trace stops
 * ...; the next rsc_loop_trace_flush() or rsc_loop_trace_file() with NULL
 * returns the error". Switching to a new file closes the old trace first;
 * when that close's last write fails, the error was dropped: the switch
 * answered 0 (it did open the new file) and so did every flush after it.
 * Now the next flush returns it, once, and the new trace goes on.
 */
START_TEST(trace_error_at_a_switch_is_not_lost)
{
	char a[PATH_MAX], b[PATH_MAX], *text;
	struct rlimit old;
	int ret[4];

	snprintf(a, sizeof(a), "%s", t_path("a.json"));
	snprintf(b, sizeof(b), "%s", t_path("b.json"));
	t_make_files(8);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, a), 0);
	t_scope_of_files(8, "buffered");
	old = t_disk_full_at(size_of(a) + 512); /* b's header fits, a's events do not */
	ret[0] = rsc_loop_trace_file(t_loop, b);
	ret[1] = rsc_loop_trace_flush(t_loop);
	ret[2] = rsc_loop_trace_flush(t_loop);
	t_disk_free_again(old);
	ck_assert_int_eq(ret[0], 0);
	ck_assert_int_eq(ret[1], -EFBIG);
	ck_assert_int_eq(ret[2], 0); /* told once; the new trace is fine */
	t_scope_of_files(2, "in b");
	ret[3] = rsc_loop_trace_file(t_loop, NULL);
	ck_assert_int_eq(ret[3], 0);
	text = t_slurp(a, NULL);
	t_assert_trace_complete(text); /* the header: its last good write */
	free(text);
	text = t_slurp(b, NULL);
	t_assert_trace_complete(text);
	ck_assert_ptr_nonnull(strstr(text, "in b"));
	free(text);
}
END_TEST

/* The same error when the new file cannot be opened either: the switch
 * returns its own error, and the close with NULL the old trace's. */
START_TEST(trace_error_at_a_failed_switch_is_not_lost)
{
	char a[PATH_MAX];
	struct rlimit old;
	int ret[3];

	snprintf(a, sizeof(a), "%s", t_path("a.json"));
	t_make_files(8);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, a), 0);
	t_scope_of_files(8, "buffered");
	old = t_disk_full_at(size_of(a) + 512);
	ret[0] = rsc_loop_trace_file(t_loop, "/nonexistent/b.json");
	ret[1] = rsc_loop_trace_file(t_loop, NULL);
	ret[2] = rsc_loop_trace_file(t_loop, NULL);
	t_disk_free_again(old);
	ck_assert_int_eq(ret[0], -ENOENT);
	ck_assert_int_eq(ret[1], -EFBIG);
	ck_assert_int_eq(ret[2], 0);
}
END_TEST

/* Both traces fail: the old one at the switch, the new one after it. The
 * next flush returns the old trace's error first, then the new one's, and
 * once the new trace is closed nothing is left to say (bug 102: the new
 * error was returned first, and the old one only after the close). */
START_TEST(trace_error_at_a_switch_is_not_lost_when_the_new_trace_fails_too)
{
	char a[PATH_MAX], b[PATH_MAX];
	struct rlimit old;
	int ret[5];

	snprintf(a, sizeof(a), "%s", t_path("a.json"));
	snprintf(b, sizeof(b), "%s", t_path("b.json"));
	t_make_files(8);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, a), 0);
	t_scope_of_files(8, "buffered");
	old = t_disk_full_at(size_of(a) + 512); /* b's header fits, neither trace's events do */
	ret[0] = rsc_loop_trace_file(t_loop, b);
	t_scope_of_files(8, "in b");
	ret[1] = rsc_loop_trace_flush(t_loop); /* a's, lost at the switch */
	ret[2] = rsc_loop_trace_flush(t_loop); /* b's own */
	ret[3] = rsc_loop_trace_file(t_loop, NULL);
	ret[4] = rsc_loop_trace_flush(t_loop);
	t_disk_free_again(old);
	ck_assert_int_eq(ret[0], 0);
	ck_assert_int_eq(ret[1], -EFBIG);
	ck_assert_int_eq(ret[2], -EFBIG);
	ck_assert_int_eq(ret[3], -EFBIG); /* the close says its own trace's again */
	ck_assert_int_eq(ret[4], 0);	  /* and nothing is left over */
}
END_TEST

/* Occurrences of @needle in @text. */
static int occurrences(const char *text, const char *needle)
{
	int n = 0;

	for (; (text = strstr(text, needle)); text++)
		n++;
	return n;
}

/* Entries entered at once and released before the loop turned (adopt,
 * defer): their slice has entered, then release started, then its end, in
 * that order (bug 103: the release started instant was dropped, since the
 * slice began only with the entered instant that came after it). */
START_TEST(entry_released_before_the_loop_turned_has_its_release_started)
{
	char path[PATH_MAX], *text, *entered, *started;
	struct rsc_scope *s;
	struct rsc_entry *a, *d;
	int fds[2];

	snprintf(path, sizeof(path), "%s", t_path("t.json"));
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, path), 0);
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, fds[0], 0, &a), 0);
	ck_assert_int_eq(rsc_defer(s, t_nop_exit, NULL, &d), 0);
	ck_assert_int_eq(rsc_entry_release(a, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_release(d, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	close(fds[1]);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(path, NULL);
	t_assert_trace_complete(text);
	ck_assert_int_eq(occurrences(text, "\"event\":\"entered\""), 2);
	ck_assert_int_eq(occurrences(text, "\"event\":\"release started\",\"early\":true"), 2);
	entered = strstr(text, "\"event\":\"entered\"");
	started = strstr(text, "\"event\":\"release started\"");
	ck_assert_ptr_nonnull(entered);
	ck_assert_ptr_nonnull(started);
	ck_assert(entered < started);
	free(text);
	ck_assert_int_eq(trace_parses(path), 1);
}
END_TEST

/* A move is an instant on the moved slice naming its new scope (bug 104:
 * the slice went on under the scope it began in, which could end first). */
START_TEST(moves_are_instants_naming_the_new_scope)
{
	char path[PATH_MAX], want[128], *text;
	struct rsc_scope *a, *b, *c;
	struct rsc_entry *e;

	t_make_files(1);
	snprintf(path, sizeof(path), "%s", t_path("t.json"));
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, path), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "A", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "B", &b), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, a, "C", &c), 0);
	ck_assert_int_eq(rsc_open(a, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_move(e, b), 0);
	ck_assert_int_eq(rsc_scope_move(c, b), 0);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0); /* before the moved entry and scope end */
	ck_assert_int_eq(rsc_scope_close_wait(b, NULL), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(path, NULL);
	t_assert_trace_complete(text);
	snprintf(want, sizeof(want), "\"event\":\"moved\",\"scope_id\":\"0x%llx\"",
		 (unsigned long long)(uintptr_t)b);
	ck_assert_msg(strstr(text, want), "no %s in %s", want, text);
	snprintf(want, sizeof(want), "\"event\":\"moved\",\"parent_id\":\"0x%llx\",\"parent\":\"B\"",
		 (unsigned long long)(uintptr_t)b);
	ck_assert_msg(strstr(text, want), "no %s in %s", want, text);
	free(text);
	ck_assert_int_eq(trace_parses(path), 1);
}
END_TEST

/* What metrics_from_every_callback's callbacks read. */
struct gauge_watch {
	int calls, failures, max_scopes, max_entries, last_scopes, last_entries;
	int scopes_at_close[8], n_close;
};

/* The gauge @name's value for the loop in the exposition @text, or -1. */
static int gauge(const char *text, const char *name)
{
	char pat[96];
	const char *p;

	snprintf(pat, sizeof(pat), "\n%s{loop=\"", name);
	p = strstr(text, pat);
	if (!p || !(p = strchr(p + 1, '}')))
		return -1;
	return atoi(p + 1);
}

static void read_gauges(struct rsc_loop *loop, struct gauge_watch *w)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f || rsc_loop_metrics(loop, f) != 0)
		w->failures++;
	if (f)
		fclose(f);
	w->calls++;
	w->last_scopes = gauge(text, "ringscope_open_scopes");
	w->last_entries = gauge(text, "ringscope_open_entries");
	if (w->last_scopes < 0 || w->last_entries < 0)
		w->failures++;
	if (w->last_scopes > w->max_scopes)
		w->max_scopes = w->last_scopes;
	if (w->last_entries > w->max_entries)
		w->max_entries = w->last_entries;
	free(text);
}

static void gauges_on_event(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *scope,
			    const struct rsc_entry *entry, int res, void *data)
{
	struct gauge_watch *w = data;

	(void)scope;
	(void)entry;
	(void)res;
	read_gauges(loop, w);
	if (ev == RSC_EV_SCOPE_CLOSED && w->n_close < 8)
		w->scopes_at_close[w->n_close++] = w->last_scopes;
}

static void gauges_on_close(struct rsc_scope *scope, int status, const struct rsc_error *err, void *data)
{
	(void)status;
	(void)err;
	(void)scope;
	read_gauges(t_loop, data);
}

/*
 * rsc_loop_metrics(3): "from a callback is fine"; the gauges walk the scope
 * tree. Read at every event of a tree's unwind (children, a grandchild, a
 * child that failed on its own) and from the close callbacks, while scopes
 * leave the tree: never a failure, never more than was open, and
 * ringscope_open_scopes ("scopes not yet closed") drops by one at each
 * SCOPE_CLOSED. It counted a scope closed by its parent's unwind until the
 * top scope was freed: 5 at each of the four events.
 */
START_TEST(metrics_from_every_callback_of_an_unwind)
{
	struct gauge_watch w = { 0 };
	struct rsc_scope *top, *a, *b, *grand, *failed;
	int i;

	t_make_files(8);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "top", &top), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, top, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, top, "b", &b), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, a, "grand", &grand), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, top, "failed", &failed), 0);
	t_open_files(top, 0, 2);
	t_open_files(a, 2, 2);
	t_open_files(b, 4, 2);
	t_open_files(grand, 6, 2);
	ck_assert_int_eq(rsc_open(failed, AT_FDCWD, t_path("nope"), O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, gauges_on_event, &w), 0);
	ck_assert_int_eq(rsc_scope_on_close(grand, gauges_on_close, &w), 0);
	ck_assert_int_eq(rsc_scope_on_close(a, gauges_on_close, &w), 0);
	ck_assert_int_eq(rsc_scope_close(top, gauges_on_close, &w), 0);
	t_run();
	ck_assert_int_eq(w.failures, 0);
	ck_assert_int_gt(w.calls, 8 + 4);
	ck_assert_int_le(w.max_scopes, 5);
	ck_assert_int_le(w.max_entries, 8);
	ck_assert_int_eq(w.n_close, 4); /* "failed" unwound on its own, before */
	/* b, then grand, a and top: each closed scope leaves the count (the
	 * failed one already when top's unwind reached it). */
	for (i = 0; i < w.n_close; i++)
		ck_assert_msg(w.scopes_at_close[i] == 3 - i, "close %d: %d open scopes", i,
			      w.scopes_at_close[i]);
	read_gauges(t_loop, &w);
	ck_assert_int_eq(w.last_scopes, 0);
	ck_assert_int_eq(w.last_entries, 0);
}
END_TEST

/*
 * The disk fills while the loop runs: the 1 MiB buffer's own flush fails in
 * the middle of an unwind, with no caller to tell. The trace stops, the
 * loop goes on and keeps its own account (every acquire and release counted
 * and reported to the trace callback), the file is the document of its last
 * good write, and the next flush returns the error.
 */
static void count_events(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *scope,
			 const struct rsc_entry *entry, int res, void *data)
{
	int *n = data; /* no ck_assert: Check's own messages cannot be written now */

	(void)loop;
	(void)scope;
	(void)entry;
	n[ev] += ev == RSC_EV_RELEASED ? res == 0 : 1;
}

START_TEST(trace_buffer_flush_failing_mid_run_keeps_the_account)
{
	int seen[RSC_EV_AUDIT_FINDING + 1] = { 0 };
	enum { N = 2500 };
	long long acq = rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED);
	long long rel = rsc_loop_counter(t_loop, RSC_CTR_RELEASED);
	char trace[PATH_MAX], *text;
	struct rsc_scope *s;
	struct rlimit old;
	int ret[N + 4] = { 0 }, i, bad = 0;
	off_t header;

	snprintf(trace, sizeof(trace), "%s", t_path("mid.json"));
	t_make_files(1);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, trace), 0);
	header = size_of(trace);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "many", &s), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, count_events, seen), 0);
	old = t_disk_full_at(header + 4096);
	for (i = 0; i < N; i++)
		ret[i] = rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, NULL);
	ret[N] = rsc_loop_run(t_loop, RSC_RUN_DEFAULT);
	ret[N + 1] = rsc_scope_close_wait(s, NULL);
	ret[N + 2] = rsc_loop_trace_flush(t_loop);
	ret[N + 3] = rsc_loop_trace_file(t_loop, NULL);
	t_disk_free_again(old);
	for (i = 0; i < N + 2; i++)
		bad += ret[i] != 0;
	ck_assert_int_eq(bad, 0);
	ck_assert_int_eq(ret[N + 2], -EFBIG);
	ck_assert_int_eq(ret[N + 3], -EFBIG);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED) - acq, N);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED) - rel, N);
	ck_assert_int_eq(seen[RSC_EV_ENTERED], N);
	ck_assert_int_eq(seen[RSC_EV_RELEASED], N);
	ck_assert_int_eq(seen[RSC_EV_SCOPE_CLOSED], 1);
	ck_assert_int_eq(seen[RSC_EV_ENTER_FAILED], 0);
	ck_assert_int_eq(size_of(trace), header);
	text = t_slurp(trace, NULL);
	t_assert_trace_complete(text);
	free(text);
}
END_TEST

/* A sentence no call of the test below writes, so that a stale one shows. */
static void stale_last_error(void)
{
	ck_assert_int_eq(rsc_loop_trace_file(NULL, "x"), -EINVAL);
	ck_assert_str_eq(rsc_last_error(), "rsc_loop_trace_file: loop is NULL");
}

#define ASSERT_NAMED(call, want, needle)                                        \
	do {                                                                    \
		stale_last_error();                                             \
		ck_assert_int_eq((call), (want));                               \
		ck_assert_msg(strstr(rsc_last_error(), (needle)) != NULL,       \
			      "%s: rsc_last_error() is \"%s\"", #call, rsc_last_error()); \
	} while (0)

/*
 * rsc_strerror(3): rsc_last_error says "argument errors name the argument
 * and the rule". These calls answered -EINVAL and left the sentence of an
 * older failure in place, which then named the wrong call.
 */
START_TEST(last_error_names_each_bad_argument)
{
	struct rsc_error *err = odd_chain(), *dup;
	char buf[8];

	ASSERT_NAMED(rsc_error_format(NULL, buf, sizeof(buf)), -EINVAL, "rsc_error_format: err");
	ASSERT_NAMED(rsc_error_format(err, NULL, 5), -EINVAL, "rsc_error_format: buf");
	ASSERT_NAMED(rsc_error_print(NULL, stdout), -EINVAL, "rsc_error_print: err");
	ASSERT_NAMED(rsc_error_print(err, NULL), -EINVAL, "rsc_error_print: out");
	ASSERT_NAMED(rsc_error_dup(NULL, &dup), -EINVAL, "rsc_error_dup: err");
	ASSERT_NAMED(rsc_error_dup(err, NULL), -EINVAL, "rsc_error_dup: dupp");
	ASSERT_NAMED(rsc_error_errno(NULL), -EINVAL, "rsc_error_errno: err");
	ASSERT_NAMED(rsc_error_depth(NULL), -EINVAL, "rsc_error_depth: err");
	ASSERT_NAMED(rsc_audit_count(NULL), -EINVAL, "rsc_audit_count: loop");
	ASSERT_NAMED(rsc_finding_kind(NULL), -EINVAL, "rsc_finding_kind: f");
	ASSERT_NAMED(rsc_finding_fd(NULL), -EINVAL, "rsc_finding_fd: f");
	ASSERT_NAMED(rsc_loop_counter(NULL, RSC_CTR_SQES), -EINVAL, "rsc_loop_counter: loop");
	ASSERT_NAMED(rsc_loop_counter(t_loop, RSC_CTR_COUNT), -EINVAL, "rsc_loop_counter: counter");
	ASSERT_NAMED(rsc_loop_counter(t_loop, (enum rsc_counter)-1), -EINVAL, "counter -1");
	ASSERT_NAMED(rsc_loop_id(NULL), -EINVAL, "rsc_loop_id: loop");
	ASSERT_NAMED(rsc_loop_features(NULL), -EINVAL, "rsc_loop_features: loop");
	ASSERT_NAMED(rsc_loop_alive(NULL), -EINVAL, "rsc_loop_alive: loop");
	ASSERT_NAMED(rsc_loop_audit_level(NULL), -EINVAL, "rsc_loop_audit_level: loop");
	ASSERT_NAMED(rsc_loop_direct_used(NULL), -EINVAL, "rsc_loop_direct_used: loop");
	/* A success leaves the sentence alone. */
	stale_last_error();
	ck_assert_int_gt(rsc_error_format(err, buf, sizeof(buf)), 0);
	ck_assert_str_eq(rsc_last_error(), "rsc_loop_trace_file: loop is NULL");
	rsc_error_free(err);
}
END_TEST

/* The bytes the escaped text @t (of rsc_error_format) stands for. */
static size_t unescape(const char *t, char *out)
{
	size_t n = 0;
	unsigned v;

	while (*t) {
		if (t[0] == '\\' && t[1] == '\\') {
			out[n++] = '\\';
			t += 2;
		} else if (t[0] == '\\' && t[1] == 'x' && sscanf(t + 2, "%2x", &v) == 1) {
			out[n++] = (char)v;
			t += 4;
		} else {
			ck_assert_msg(*t != '\\', "a lone backslash in %s", t);
			out[n++] = *t++;
		}
	}
	out[n] = '\0';
	return n;
}

/*
 * For 1,500 random ops (any byte but NUL: controls, bad and good UTF-8,
 * backslashes, the text "\x41"), the chain's text has no raw control and
 * reads back as exactly the bytes it shows: the escaping is one-to-one, so
 * no two names print alike.
 */
START_TEST(error_text_reads_back_as_the_bytes_it_shows)
{
	static const char *const pieces[] = { "\\x41", "\\", "\xc3\xa9", "\xe2\x80\xae", "\xc2\x9b",
					      "\xf0\x9f\x92\xa9", "\xed\xa0\x80", "\xc0\xaf", "%n" };
	char op[256], want[512], text[2048], back[2048];
	unsigned seed = 12345;
	struct rsc_error *err;
	struct rsc_scope *s;
	int i, k, n;

	for (i = 0; i < 1500; i++) {
		for (n = 0, k = rand_r(&seed) % 24 + 1; k > 0 && n < 200; k--) {
			if (rand_r(&seed) % 3 == 0) {
				const char *p = pieces[rand_r(&seed) % 9];

				memcpy(op + n, p, strlen(p));
				n += (int)strlen(p);
			} else {
				op[n++] = (char)(rand_r(&seed) % 255 + 1);
			}
		}
		op[n] = '\0';
		err = NULL;
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "p", &s), 0);
		ck_assert_int_eq(rsc_scope_fail(s, -EIO, op), 0);
		ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
		ck_assert_str_eq(rsc_error_op(err), op);
		ck_assert_int_lt(rsc_error_format(err, text, sizeof(text)), (int)sizeof(text));
		assert_no_raw_controls(text, strlen(text), "rsc_error_format");
		unescape(text, back);
		snprintf(want, sizeof(want), "%s: Input/output error (EIO) [entry '' in scope 'p']", op);
		ck_assert_msg(!strcmp(back, want), "op %d does not read back", i);
		rsc_error_free(err);
	}
}
END_TEST

Suite *make_hostile_obs2_suite(void)
{
	Suite *s = suite_create("hostile_obs2");
	TCase *tc = tcase_create("hostile_obs2");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, trace_escapes_del_and_c1_controls);
	tcase_add_test(tc, trace_escapes_a_process_name_with_controls);
	tcase_add_test(tc, trace_callback_switches_the_trace);
	tcase_add_test(tc, error_format_is_snprintf_at_every_length);
	tcase_add_test(tc, error_print_escapes_and_reports_a_failing_stream);
	tcase_add_test(tc, last_error_cut_keeps_escapes_whole);
	tcase_add_test(tc, trace_on_a_full_device_fails_and_the_loop_goes_on);
	tcase_add_test(tc, owned_chain_outlives_its_loop_on_another_thread);
	tcase_add_test(tc, counters_and_metrics_match_a_scripted_workload);
	tcase_add_test(tc, traced_unwind_of_a_long_chain_stays_linear);
	tcase_add_test(tc, last_error_is_kept_per_thread);
	tcase_add_test(tc, findings_outlive_more_findings);
	tcase_add_test(tc, odd_and_huge_names_are_cut_whole_in_the_trace);
	tcase_add_test(tc, trace_env_template_takes_percent_signs_literally);
	tcase_add_test(tc, trace_error_at_a_switch_is_not_lost);
	tcase_add_test(tc, trace_error_at_a_failed_switch_is_not_lost);
	tcase_add_test(tc, trace_error_at_a_switch_is_not_lost_when_the_new_trace_fails_too);
	tcase_add_test(tc, entry_released_before_the_loop_turned_has_its_release_started);
	tcase_add_test(tc, moves_are_instants_naming_the_new_scope);
	tcase_add_test(tc, metrics_from_every_callback_of_an_unwind);
	tcase_add_test(tc, trace_buffer_flush_failing_mid_run_keeps_the_account);
	tcase_add_test(tc, last_error_names_each_bad_argument);
	tcase_add_test(tc, error_text_reads_back_as_the_bytes_it_shows);
	suite_add_tcase(s, tc);
	return s;
}
