/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* The trace, the metrics and the probes' labels; the deep checks of the
 * trace and the exposition are done by real parsers in tests/observe/. */

static int count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (; (hay = strstr(hay, needle)); hay += strlen(needle))
		n++;
	return n;
}

START_TEST(trace_file_is_a_complete_document_after_each_flush)
{
	char file[512];
	char *text;

	snprintf(file, sizeof(file), "%s", t_path("trace.json")); /* t_path's buffers rotate */
	t_make_files(4);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	text = t_slurp(file, NULL);
	t_assert_trace_complete(text); /* from the start: header and track names */
	ck_assert_int_eq(count_of(text, "\"ph\":\"b\""), 0);
	free(text);
	t_scope_of_files(4, "first");
	ck_assert_int_eq(rsc_loop_trace_flush(t_loop), 0);
	text = t_slurp(file, NULL);
	t_assert_trace_complete(text);
	/* One scope and four entries began and ended. */
	ck_assert_int_eq(count_of(text, "\"ph\":\"b\""), 5);
	ck_assert_int_eq(count_of(text, "\"ph\":\"e\""), 5);
	free(text);
	t_scope_of_files(2, "second");
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(file, NULL);
	t_assert_trace_complete(text);
	ck_assert_int_eq(count_of(text, "\"ph\":\"b\""), 8);
	ck_assert_int_eq(count_of(text, "\"name\":\"second\""), 2);
	free(text);
	/* Starting over on the same file while it is open: a new document. */
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	t_scope_of_files(4, "third");
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(file, NULL);
	t_assert_trace_complete(text);
	ck_assert_int_eq(count_of(text, "\"ph\":\"b\""), 0);
	free(text);
}
END_TEST

START_TEST(stopping_a_trace_ends_the_slices_it_began)
{
	char file[512];
	struct rsc_scope *s;
	char *text;

	snprintf(file, sizeof(file), "%s", t_path("trace.json"));
	t_make_files(3);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "held", &s), 0);
	t_open_files(s, 0, 3);
	t_run();
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(file, NULL);
	ck_assert_int_eq(count_of(text, "\"ph\":\"b\""), 4);
	ck_assert_int_eq(count_of(text, "\"ph\":\"e\""), 4);
	ck_assert_int_eq(count_of(text, "trace stopped"), 4);
	free(text);
	/* A new trace does not end, in its file, what began in the old one. */
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(file, NULL);
	t_assert_trace_complete(text);
	ck_assert_int_eq(count_of(text, "\"ph\":\"e\""), 0);
	free(text);
}
END_TEST

START_TEST(trace_arguments_are_checked)
{
	ck_assert_int_eq(rsc_loop_trace_file(NULL, "x"), -EINVAL);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, ""), -EINVAL);
	ck_assert_int_eq(rsc_loop_trace_flush(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("no/such/dir")), -ENOENT);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "no/such/dir"));
	/* No trace: stopping and flushing are no-ops. */
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	ck_assert_int_eq(rsc_loop_trace_flush(t_loop), 0);
}
END_TEST

START_TEST(trace_env_gives_each_live_loop_its_own_file)
{
	struct rsc_loop *a, *b;
	char name[64];
	char *text;

	ck_assert_int_eq(setenv("RINGSCOPE_TRACE", t_path("env.json"), 1), 0);
	ck_assert_int_eq(rsc_loop_new(&a, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_new(&b, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_close(b), 0);
	ck_assert_int_eq(rsc_loop_close(a), 0);
	text = t_slurp(t_path("env.json"), NULL);
	t_assert_trace_complete(text);
	snprintf(name, sizeof(name), "ringscope loop %d", rsc_loop_id(t_loop) + 1);
	ck_assert_ptr_nonnull(strstr(text, name));
	free(text);
	snprintf(name, sizeof(name), "env.json.%d", rsc_loop_id(t_loop) + 2);
	text = t_slurp(t_path(name), NULL);
	t_assert_trace_complete(text);
	free(text);
	/* %l names the file by loop id. */
	ck_assert_int_eq(setenv("RINGSCOPE_TRACE", t_path("loop-%l.json"), 1), 0);
	ck_assert_int_eq(rsc_loop_new(&a, 8, 0), 0);
	snprintf(name, sizeof(name), "loop-%d.json", rsc_loop_id(a));
	ck_assert_int_eq(rsc_loop_close(a), 0);
	free(t_slurp(t_path(name), NULL));
	/* A file that cannot be written fails the loop: it must not mean "off". */
	ck_assert_int_eq(setenv("RINGSCOPE_TRACE", t_path("no/such/dir"), 1), 0);
	ck_assert_int_eq(rsc_loop_new(&a, 8, 0), -ENOENT);
	ck_assert_ptr_null(a);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "RINGSCOPE_TRACE"));
	unsetenv("RINGSCOPE_TRACE");
}
END_TEST

/* A child that flushes, adds events, and dies by SIGKILL. */
START_TEST(killed_program_leaves_a_complete_trace_up_to_its_last_flush)
{
	char file[512];
	struct rsc_loop *loop;
	struct rsc_scope *s;
	char *text;
	pid_t pid;
	int st, i;

	snprintf(file, sizeof(file), "%s", t_path("killed.json"));
	t_make_files(8);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (rsc_loop_new(&loop, 64, 0) < 0 || rsc_loop_trace_file(loop, file) < 0)
			_exit(1);
		/* Enough to fill the buffer several times over. */
		for (i = 0; i < 300; i++) {
			if (rsc_scope_open(loop, NULL, "round", &s) < 0)
				_exit(1);
			t_open_files(s, 0, 8);
			if (rsc_loop_run(loop, RSC_RUN_DEFAULT) < 0 ||
			    rsc_scope_close_wait(s, NULL) < 0)
				_exit(1);
		}
		if (rsc_loop_trace_flush(loop) < 0 ||
		    rsc_scope_open(loop, NULL, "unflushed", &s) < 0)
			_exit(1);
		raise(SIGKILL);
		_exit(1);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	text = t_slurp(file, NULL);
	t_assert_trace_complete(text);
	ck_assert_int_eq(count_of(text, "\"name\":\"round\""), 600);
	ck_assert_int_eq(count_of(text, "unflushed"), 0);
	free(text);
}
END_TEST

/* The value of the series @name{loop="@id"} in @text, or -1. */
static long long series(const char *text, const char *name, int id)
{
	char key[160];
	const char *p;

	snprintf(key, sizeof(key), "\n%s{loop=\"%d\"} ", name, id);
	p = strstr(text, key);
	return p ? atoll(p + strlen(key)) : -1;
}

static char *metrics_text(struct rsc_loop *const *loops, unsigned n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(rsc_metrics_write(loops, n, out), 0);
	fclose(out);
	return buf;
}

START_TEST(metrics_counters_match_rsc_loop_counter)
{
	char name[96], *text;
	int c;

	t_make_files(4);
	t_scope_of_files(4, "counted");
	text = metrics_text(&t_loop, 1);
	for (c = 0; c < RSC_CTR_COUNT; c++) {
		snprintf(name, sizeof(name), "ringscope_%s_total", rsc_counter_name(c));
		ck_assert_int_eq(count_of(text, "# HELP ") > 0, 1);
		ck_assert_msg(strstr(text, name), "no %s", name);
		ck_assert_int_eq(series(text, name, rsc_loop_id(t_loop)),
				 rsc_loop_counter(t_loop, c));
	}
	ck_assert_int_eq(series(text, "ringscope_acquired_total", rsc_loop_id(t_loop)), 4);
	free(text);
}
END_TEST

START_TEST(metrics_gauges_count_what_is_open)
{
	struct rsc_scope *a, *b;
	int id = rsc_loop_id(t_loop);
	char *text;

	t_make_files(3);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, a, "b", &b), 0);
	t_open_files(b, 0, 3);
	text = metrics_text(&t_loop, 1);
	ck_assert_int_eq(series(text, "ringscope_open_scopes", id), 2);
	ck_assert_int_eq(series(text, "ringscope_open_entries", id), 0);
	ck_assert_int_eq(series(text, "ringscope_acquires_in_flight", id), 3);
	ck_assert_int_eq(series(text, "ringscope_ops_in_flight", id), 3);
	free(text);
	t_run();
	text = metrics_text(&t_loop, 1);
	ck_assert_int_eq(series(text, "ringscope_open_entries", id), 3);
	ck_assert_int_eq(series(text, "ringscope_acquires_in_flight", id), 0);
	ck_assert_int_eq(series(text, "ringscope_ops_in_flight", id), 0);
	free(text);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	text = metrics_text(&t_loop, 1);
	ck_assert_int_eq(series(text, "ringscope_open_scopes", id), 0);
	ck_assert_int_eq(series(text, "ringscope_open_entries", id), 0);
	free(text);
}
END_TEST

START_TEST(latency_histograms_count_each_acquire_and_release)
{
	int id = rsc_loop_id(t_loop);
	char *text;

	t_make_files(6);
	text = metrics_text(&t_loop, 1);
	/* Not asked for: no histogram family at all. */
	ck_assert_ptr_null(strstr(text, "latency"));
	free(text);
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, RSC_METRICS_LATENCY), 0);
	t_scope_of_files(6, "timed");
	text = metrics_text(&t_loop, 1);
	ck_assert_ptr_nonnull(strstr(text, "# TYPE ringscope_acquire_latency_seconds histogram"));
	ck_assert_int_eq(series(text, "ringscope_acquire_latency_seconds_count", id), 6);
	ck_assert_int_eq(series(text, "ringscope_release_latency_seconds_count", id), 6);
	free(text);
	/* Stopped: the counts stay, and grow no more. */
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, 0), 0);
	t_scope_of_files(2, "untimed");
	text = metrics_text(&t_loop, 1);
	ck_assert_int_eq(series(text, "ringscope_acquire_latency_seconds_count", id), 6);
	free(text);
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, 2), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_metrics(NULL, 0), -EINVAL);
}
END_TEST

START_TEST(metrics_tell_loops_apart_by_a_label)
{
	struct rsc_loop *loops[2] = { t_loop, NULL };
	char *text;

	ck_assert_int_eq(rsc_loop_new(&loops[1], 8, 0), 0);
	ck_assert_int_gt(rsc_loop_id(loops[1]), rsc_loop_id(t_loop));
	t_make_files(2);
	t_scope_of_files(2, "first loop only");
	text = metrics_text(loops, 2);
	/* Each family once, a series per loop. */
	ck_assert_int_eq(count_of(text, "# HELP ringscope_acquired_total "), 1);
	ck_assert_int_eq(count_of(text, "# TYPE ringscope_acquired_total counter"), 1);
	ck_assert_int_eq(series(text, "ringscope_acquired_total", rsc_loop_id(t_loop)), 2);
	ck_assert_int_eq(series(text, "ringscope_acquired_total", rsc_loop_id(loops[1])), 0);
	free(text);
	ck_assert_int_eq(rsc_loop_close(loops[1]), 0);
	ck_assert_int_eq(rsc_metrics_write(NULL, 1, stdout), -EINVAL);
	ck_assert_int_eq(rsc_metrics_write(loops, 0, stdout), -EINVAL);
	ck_assert_int_eq(rsc_loop_metrics(NULL, stdout), -EINVAL);
	ck_assert_int_eq(rsc_loop_metrics(t_loop, NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_id(NULL), -EINVAL);
}
END_TEST

struct pipe_seen {
	int res, fd;
};

static void pipe_entered_seen(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
			      const struct rsc_entry *e, int res, void *data)
{
	struct pipe_seen *seen = data;

	(void)loop;
	(void)s;
	if (ev == RSC_EV_ENTERED && e && strcmp(rsc_entry_name(e), "pipe") == 0) {
		seen->res = res;
		seen->fd = rsc_entry_fd((struct rsc_entry *)e);
	}
}

/* RSC_EV_ENTERED: "res is the descriptor"; a pipe's is its read end
 * (rsc_pipe(3)), never the CQE's 0, in the trace and in rsc_entry_fd. */
START_TEST(pipe_entered_event_carries_its_read_end)
{
	struct pipe_seen seen = { -1, -1 };
	struct rsc_scope *s;
	struct rsc_entry *e;
	int ends[2];

	ck_assert_int_eq(rsc_loop_set_trace(t_loop, pipe_entered_seen, &seen), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_pipe(s, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_pipe_ends(e, ends), 0);
	ck_assert_int_eq(seen.res, ends[0]);
	ck_assert_int_eq(seen.fd, ends[0]);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0);
}
END_TEST

/* The largest "open entries" a trace's counters said. */
static int max_open_entries(const char *text)
{
	const char *p = text;
	int max = -1, n;

	while ((p = strstr(p, "\"open entries\":"))) {
		p += strlen("\"open entries\":");
		n = atoi(p);
		if (n > max)
			max = n;
	}
	return max;
}

/*
 * rsc_loop_trace_file(3): "a new trace does not carry slices begun in an
 * earlier one", and its counters say the loop's open entries: an acquire
 * prepared under the old trace enters under the new one without a slice
 * (not one "entered at once"), and the entries open before count.
 */
START_TEST(switched_trace_carries_no_slice_begun_before_it)
{
	char old_file[PATH_MAX], new_file[PATH_MAX], *text;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int i;

	t_make_files(4);
	snprintf(old_file, sizeof(old_file), "%s", t_path("old.json"));
	snprintf(new_file, sizeof(new_file), "%s", t_path("new.json"));
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, old_file), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path(i == 0 ? "f0" : i == 1 ? "f1" : "f2"),
					  O_RDONLY, 0, 0, &e), 0);
		ck_assert_int_ge(rsc_entry_wait(e), 0);
	}
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f3"), O_RDONLY, 0, 0, &e), 0); /* begun here */
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, new_file), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(new_file, NULL);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(!strstr(text, "entered at once"), "a slice begun in the old trace: %s", text);
	ck_assert_msg(max_open_entries(text) == 4, "open entries: %d, the loop had 4\n%s",
		      max_open_entries(text), text);
	free(text);
}
END_TEST

/* "A write that fails when the loop is freed ... is said in one line on
 * standard error": not one that rsc_loop_trace_flush() returned already. */
START_TEST(trace_error_returned_by_flush_is_not_said_again_at_free)
{
	struct rlimit old, small = { 4000, 0 };
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *e;
	char err_file[PATH_MAX], *said;
	int i, saved, fd;

	snprintf(err_file, sizeof(err_file), "%s", t_path("stderr.txt"));
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	small.rlim_max = old.rlim_max;
	signal(SIGXFSZ, SIG_IGN);
	ck_assert_int_eq(rsc_loop_new(&loop, 16, 0), 0);
	ck_assert_int_eq(rsc_loop_trace_file(loop, t_path("small.json")), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "s", &s), 0);
	for (i = 0; i < 20; i++)
		if (rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e) == 0)
			ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	ck_assert_int_eq(rsc_loop_trace_flush(loop), -EFBIG);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	fflush(stderr);
	saved = dup(2);
	fd = open(err_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(fd, 0);
	dup2(fd, 2);
	close(fd);
	i = rsc_loop_close(loop);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	ck_assert_int_eq(i, 0);
	said = t_slurp(err_file, NULL);
	ck_assert_ptr_nonnull(said);
	ck_assert_msg(said[0] == '\0', "said again at free: %s", said);
	free(said);
}
END_TEST

Suite *make_observe_suite(void)
{
	Suite *s = suite_create("observe");
	TCase *tc = tcase_create("trace");

	t_add_fixture(tc);
	tcase_add_test(tc, trace_file_is_a_complete_document_after_each_flush);
	tcase_add_test(tc, stopping_a_trace_ends_the_slices_it_began);
	tcase_add_test(tc, trace_arguments_are_checked);
	tcase_add_test(tc, switched_trace_carries_no_slice_begun_before_it);
	tcase_add_test(tc, trace_error_returned_by_flush_is_not_said_again_at_free);
	t_add_test_if(tc, pipe_entered_event_carries_its_read_end, t_kernel_has(OP_PIPE),
		      "IORING_OP_PIPE (Linux 6.16)");
	tcase_add_test(tc, trace_env_gives_each_live_loop_its_own_file);
	tcase_add_test(tc, killed_program_leaves_a_complete_trace_up_to_its_last_flush);
	suite_add_tcase(s, tc);
	tc = tcase_create("metrics");
	t_add_fixture(tc);
	tcase_add_test(tc, metrics_counters_match_rsc_loop_counter);
	tcase_add_test(tc, metrics_gauges_count_what_is_open);
	tcase_add_test(tc, latency_histograms_count_each_acquire_and_release);
	tcase_add_test(tc, metrics_tell_loops_apart_by_a_label);
	suite_add_tcase(s, tc);
	return s;
}
