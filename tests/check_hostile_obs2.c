/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
	ck_assert_ptr_nonnull(strstr(text, "\"event\":\"release started\""));
	free(text);
	if (have_python("json")) {
		ck_assert_msg(trace_parses(t_path("first.json")), "first trace");
		ck_assert_msg(trace_parses(w.second), "second trace");
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
	suite_add_tcase(s, tc);
	return s;
}
