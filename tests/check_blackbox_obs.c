/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

/*
 * Black-box acceptance of the observability calls, written from their pages
 * alone (rsc_loop_trace_file(3), rsc_loop_metrics(3), rsc_loop_counter(3),
 * rsc_fault_set(3), rsc_error_format(3), rsc_last_error(3),
 * rsc_audit_finding(3), rsc_audit_describe_fd(3), rsc_audit_fd_count(3),
 * ringscope_audit(7)): every promise checked the way a demanding user
 * would, favouring odd arguments, calls from callbacks and states.
 */

/* rsc_loop_metrics(@loop) as a malloc'd, NUL-terminated text. */
static char *metrics_text(struct rsc_loop *loop)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_loop_metrics(loop, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

/* The value of the series @series (name and labels, as written) in @text, or -1. */
static double series_value(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (!strncmp(p, series, n) && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	}
	return -1;
}

static int count_lines_starting(const char *text, const char *start)
{
	int n = 0;
	size_t len = strlen(start);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		n += !strncmp(p, start, len);
	return n;
}

static struct rsc_entry *open_entered(struct rsc_scope *s, const char *path, int oflags)
{
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_open(s, AT_FDCWD, path, oflags, 0644, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	return e;
}

/* ---- counters ------------------------------------------------------------ */

START_TEST(counter_bad_arguments_and_names)
{
	char seen[RSC_CTR_COUNT][64];

	ck_assert_int_eq(rsc_loop_counter(NULL, RSC_CTR_SQES), -EINVAL);
	ck_assert_int_eq(rsc_loop_counter(t_loop, (enum rsc_counter)-1), -EINVAL);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_COUNT), -EINVAL);
	ck_assert_int_eq(rsc_loop_counter(t_loop, (enum rsc_counter)INT_MAX), -EINVAL);
	ck_assert_ptr_null(rsc_counter_name((enum rsc_counter)-1));
	ck_assert_ptr_null(rsc_counter_name(RSC_CTR_COUNT));
	ck_assert_str_eq(rsc_counter_name(RSC_CTR_SQES), "sqes");
	for (int i = 0; i < RSC_CTR_COUNT; i++) {
		const char *name = rsc_counter_name(i);

		ck_assert_ptr_nonnull(name);
		ck_assert_msg(name[0] && strspn(name, "abcdefghijklmnopqrstuvwxyz_") == strlen(name),
			      "counter %d's name '%s' is not lower case", i, name);
		for (int j = 0; j < i; j++)
			ck_assert_msg(strcmp(seen[j], name), "two counters named %s", name);
		snprintf(seen[i], sizeof(seen[i]), "%s", name);
	}
}
END_TEST

START_TEST(counters_of_a_new_loop_are_zero_but_pool_allocs)
{
	struct rsc_loop *loop;

	ck_assert_int_eq(rsc_loop_new(&loop, 8, 0), 0);
	for (int i = 0; i < RSC_CTR_COUNT; i++) {
		long long v = rsc_loop_counter(loop, i);

		if (i == RSC_CTR_POOL_ALLOCS)
			ck_assert_int_gt(v, 0);
		else
			ck_assert_msg(v == 0, "a new loop's %s is %lld", rsc_counter_name(i), v);
	}
	ck_assert_int_eq(rsc_loop_close(loop), 0);
}
END_TEST

/* ---- metrics --------------------------------------------------------------- */

START_TEST(metrics_bad_arguments)
{
	struct rsc_loop *loops[2] = { t_loop, t_loop };
	struct rsc_loop *none[1] = { NULL };

	ck_assert_int_eq(rsc_loop_metrics(NULL, stdout), -EINVAL);
	ck_assert_int_eq(rsc_loop_metrics(t_loop, NULL), -EINVAL);
	ck_assert_int_eq(rsc_metrics_write(NULL, 1, stdout), -EINVAL);
	ck_assert_int_eq(rsc_metrics_write(loops, 0, stdout), -EINVAL);
	ck_assert_int_eq(rsc_metrics_write(loops, 2, stdout), -EINVAL); /* listed twice */
	ck_assert_int_eq(rsc_metrics_write(none, 1, stdout), -EINVAL);
	ck_assert_int_eq(rsc_metrics_write(loops, 1, NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_metrics(NULL, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, 1U << 1), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, ~0U), -EINVAL);
}
END_TEST

START_TEST(metrics_counters_match_rsc_loop_counter)
{
	struct rsc_scope *s;
	char *text, series[160];
	int id = rsc_loop_id(t_loop);

	t_make_files(4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "m", &s), 0);
	t_open_files(s, 0, 4);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	text = metrics_text(t_loop);
	for (int i = 0; i < RSC_CTR_COUNT; i++) {
		char family[96];

		snprintf(family, sizeof(family), "ringscope_%s_total", rsc_counter_name(i));
		snprintf(series, sizeof(series), "%s{loop=\"%d\"}", family, id);
		ck_assert_msg(series_value(text, series) == (double)rsc_loop_counter(t_loop, i),
			      "%s is %g, rsc_loop_counter says %lld", series,
			      series_value(text, series), rsc_loop_counter(t_loop, i));
		snprintf(series, sizeof(series), "# TYPE %s counter", family);
		ck_assert_int_eq(count_lines_starting(text, series), 1);
		snprintf(series, sizeof(series), "# HELP %s ", family);
		ck_assert_int_eq(count_lines_starting(text, series), 1);
	}
	ck_assert_msg(!strstr(text, "latency"), "latency families without RSC_METRICS_LATENCY");
	free(text);
}
END_TEST

START_TEST(metrics_gauges_follow_scopes_and_entries)
{
	struct rsc_scope *a, *b;
	char *text, series[96];
	int id = rsc_loop_id(t_loop);

	t_make_files(3);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "a", &a), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, a, "b", &b), 0);
	t_open_files(b, 0, 3);
	t_run();
	text = metrics_text(t_loop);
	snprintf(series, sizeof(series), "ringscope_open_scopes{loop=\"%d\"}", id);
	ck_assert_msg(series_value(text, series) == 2, "%s: %g", series, series_value(text, series));
	snprintf(series, sizeof(series), "ringscope_open_entries{loop=\"%d\"}", id);
	ck_assert_msg(series_value(text, series) == 3, "%s: %g", series, series_value(text, series));
	snprintf(series, sizeof(series), "ringscope_acquires_in_flight{loop=\"%d\"}", id);
	ck_assert(series_value(text, series) == 0);
	free(text);
	ck_assert_int_eq(rsc_scope_close_wait(a, NULL), 0);
	text = metrics_text(t_loop);
	snprintf(series, sizeof(series), "ringscope_open_scopes{loop=\"%d\"}", id);
	ck_assert(series_value(text, series) == 0);
	snprintf(series, sizeof(series), "ringscope_open_entries{loop=\"%d\"}", id);
	ck_assert(series_value(text, series) == 0);
	snprintf(series, sizeof(series), "ringscope_ops_in_flight{loop=\"%d\"}", id);
	ck_assert(series_value(text, series) == 0);
	free(text);
}
END_TEST

/* Histograms: counts per acquire and release, cumulative buckets, +Inf ==
 * count, kept after collection stops; decimal points in any locale. */
START_TEST(metrics_histograms_count_and_keep_their_counts)
{
	struct rsc_scope *s;
	char *text, series[160];
	int id = rsc_loop_id(t_loop);
	const char *hist[] = { "ringscope_acquire_latency_seconds",
			       "ringscope_release_latency_seconds" };

	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, RSC_METRICS_LATENCY), 0);
	t_make_files(5);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "h", &s), 0);
	t_open_files(s, 0, 5);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, 0), 0);
	/* A locale whose decimal point is a comma, where one is installed. */
	if (!setlocale(LC_NUMERIC, "de_DE.UTF-8"))
		setlocale(LC_NUMERIC, "fr_FR.UTF-8");
	text = metrics_text(t_loop);
	setlocale(LC_NUMERIC, "C");
	for (int h = 0; h < 2; h++) {
		double prev = 0, inf;

		snprintf(series, sizeof(series), "# TYPE %s histogram", hist[h]);
		ck_assert_int_eq(count_lines_starting(text, series), 1);
		snprintf(series, sizeof(series), "%s_count{loop=\"%d\"}", hist[h], id);
		ck_assert_msg(series_value(text, series) == 5, "%s: %g", series,
			      series_value(text, series));
		snprintf(series, sizeof(series), "%s_bucket{loop=\"%d\",le=\"+Inf\"}", hist[h], id);
		inf = series_value(text, series);
		ck_assert_msg(inf == 5, "%s: %g", series, inf);
		snprintf(series, sizeof(series), "%s_bucket{loop=\"%d\",le=\"", hist[h], id);
		for (const char *p = strstr(text, series); p; p = strstr(p + 1, series)) {
			const char *le = p + strlen(series);
			double v = strtod(strchr(le, ' ') + 1, NULL);

			ck_assert_msg(!memchr(le, ',', (size_t)(strchr(le, '"') - le)),
				      "a bucket bound with a comma: %.40s", le);
			ck_assert_msg(v >= prev, "buckets of %s not cumulative", hist[h]);
			prev = v;
		}
		snprintf(series, sizeof(series), "%s_sum{loop=\"%d\"}", hist[h], id);
		ck_assert(series_value(text, series) > 0);
	}
	ck_assert_msg(!strstr(text, "le=\"0,"), "a comma in a bound");
	free(text);
}
END_TEST

/* Acquire latency counts successful completions only: a refused open is no sample. */
START_TEST(metrics_acquire_latency_leaves_out_failed_acquires)
{
	struct rsc_scope *bad, *good;
	char *text, series[128];

	if (rsc_fault_set(t_loop, "openat:1:EMFILE") == -EOPNOTSUPP)
		return;
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, RSC_METRICS_LATENCY), 0);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "bad", &bad), 0);
	t_open_files(bad, 0, 1);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(bad, NULL), -EMFILE);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "good", &good), 0);
	t_open_files(good, 1, 1);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(good, NULL), 0);
	text = metrics_text(t_loop);
	snprintf(series, sizeof(series), "ringscope_acquire_latency_seconds_count{loop=\"%d\"}",
		 rsc_loop_id(t_loop));
	ck_assert_msg(series_value(text, series) == 1, "%s %g", series, series_value(text, series));
	free(text);
}
END_TEST

/* Two loops: each family once (a second HELP/TYPE is refused by Prometheus),
 * one series per loop told apart by its label. */
START_TEST(metrics_of_two_loops_name_each_family_once)
{
	struct rsc_loop *other, *loops[2];
	char *buf = NULL, series[96];
	size_t len = 0;
	FILE *f;

	ck_assert_int_eq(rsc_loop_new(&other, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_set_metrics(other, RSC_METRICS_LATENCY), 0);
	loops[0] = t_loop;
	loops[1] = other;
	f = open_memstream(&buf, &len);
	ck_assert_int_eq(rsc_metrics_write(loops, 2, f), 0);
	fclose(f);
	ck_assert_int_eq(count_lines_starting(buf, "# TYPE ringscope_sqes_total "), 1);
	ck_assert_int_eq(count_lines_starting(buf, "# HELP ringscope_open_scopes "), 1);
	ck_assert_int_eq(count_lines_starting(buf, "# TYPE ringscope_acquire_latency_seconds "), 1);
	for (int i = 0; i < 2; i++) {
		snprintf(series, sizeof(series), "ringscope_sqes_total{loop=\"%d\"}",
			 rsc_loop_id(loops[i]));
		ck_assert_msg(series_value(buf, series) >= 0, "no %s", series);
	}
	/* Only the loop that collected latency has histogram series. */
	snprintf(series, sizeof(series), "ringscope_acquire_latency_seconds_count{loop=\"%d\"}",
		 rsc_loop_id(t_loop));
	ck_assert(series_value(buf, series) < 0);
	free(buf);
	ck_assert_int_eq(rsc_loop_close(other), 0);
}
END_TEST

/* What the gauges say from inside the trace callback, at each event. */
struct gauge_probe {
	double scopes_at_closed, entries_at_entered, entries_at_released;
	int closed, entered, released;
};

static double gauge_now(struct rsc_loop *loop, const char *family)
{
	char series[96], *text = metrics_text(loop);
	double v;

	snprintf(series, sizeof(series), "%s{loop=\"%d\"}", family, rsc_loop_id(loop));
	v = series_value(text, series);
	free(text);
	return v;
}

static void read_gauges(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
			const struct rsc_entry *e, int res, void *data)
{
	struct gauge_probe *g = data;

	(void)s;
	(void)e;
	(void)res;
	if (ev == RSC_EV_SCOPE_CLOSED && !g->closed++)
		g->scopes_at_closed = gauge_now(loop, "ringscope_open_scopes");
	if (ev == RSC_EV_ENTERED && !g->entered++)
		g->entries_at_entered = gauge_now(loop, "ringscope_open_entries");
	if (ev == RSC_EV_RELEASED && !g->released++)
		g->entries_at_released = gauge_now(loop, "ringscope_open_entries");
}

/* "From a callback is fine": an entry counts once entered, not once released;
 * a scope leaves the count when its unwind ends, which SCOPE_CLOSED reports. */
START_TEST(metrics_from_the_trace_callback_agree_with_the_event)
{
	struct rsc_scope *s;
	struct gauge_probe g = { 0 };

	ck_assert_int_eq(rsc_loop_set_trace(t_loop, read_gauges, &g), 0);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "g", &s), 0);
	t_open_files(s, 0, 1);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(g.entered, 1);
	ck_assert_msg(g.entries_at_entered == 1, "open entries at ENTERED: %g", g.entries_at_entered);
	ck_assert_int_eq(g.released, 1);
	ck_assert_msg(g.entries_at_released == 0, "open entries at RELEASED: %g",
		      g.entries_at_released);
	ck_assert_int_eq(g.closed, 1);
	ck_assert_msg(g.scopes_at_closed == 0, "open scopes at SCOPE_CLOSED: %g", g.scopes_at_closed);
}
END_TEST

START_TEST(metrics_to_a_stream_that_cannot_write_is_eio_with_a_reason)
{
	FILE *ro = fopen("/dev/null", "r");

	ck_assert_ptr_nonnull(ro);
	ck_assert_int_eq(rsc_loop_metrics(t_loop, ro), -EIO);
	ck_assert_msg(strstr(rsc_last_error(), "cannot write"), "last error: %s", rsc_last_error());
	fclose(ro);
}
END_TEST

/* ---- fault rules ----------------------------------------------------------- */

/* The helpers' answer inside a test Check forked: the probe loop is the
 * parent's there (-ECHILD), yet a build with fault injection must say so, or
 * every test that asks in its body skips itself (197 did, forked). */
START_TEST(fault_injection_is_seen_from_inside_a_forked_test)
{
#ifdef RSC_FAULT_INJECTION
	ck_assert(t_has_fault_injection());
#else
	ck_assert(!t_has_fault_injection());
#endif
	ck_assert_int_eq(rsc_fault_set(t_loop, "") == 0, t_has_fault_injection());
}
END_TEST

START_TEST(fault_rules_malformed_are_refused_and_keep_the_old_rules)
{
	static const char *bad[] = {
		"openat:0:EMFILE", "openat:-1:EMFILE", "openat:+1:EMFILE", "openat: 1:EMFILE",
		"openat:1x:EMFILE", "openat:2147483648:EMFILE", "openat:99999999999999999999:EMFILE",
		"openat:1:EBOGUS", "openat:1", "openat", "bogus:1:EIO", "alloc:1:EIO",
		"msg_ring:1:EIO", "missing:bogus", "missing:", ":1:EIO", "openat::EMFILE",
		"openat:1:EMFILE,,close:1:EIO", "openat:1:emfile",
	};
	struct rsc_scope *s;
	struct rsc_entry *e;

	if (rsc_fault_set(t_loop, "") == -EOPNOTSUPP)
		return;
	ck_assert_int_eq(rsc_fault_set(NULL, ""), -EINVAL);
	ck_assert_int_eq(rsc_fault_set(t_loop, "openat:1:EACCES"), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(rsc_fault_set(t_loop, bad[i]) == -EINVAL, "'%s' was taken", bad[i]);
		ck_assert_msg(*rsc_last_error(), "no reason for '%s'", bad[i]);
	}
	/* The rule set before the failures still stands: the first open fails. */
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "f", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EACCES);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 1);
}
END_TEST

START_TEST(fault_rules_sixteen_at_most_and_the_largest_n)
{
	char spec[1024] = "";

	if (rsc_fault_set(t_loop, "") == -EOPNOTSUPP)
		return;
	for (int i = 0; i < 16; i++)
		snprintf(spec + strlen(spec), sizeof(spec) - strlen(spec), "%sclose:%d:EIO",
			 i ? "," : "", i + 1);
	ck_assert_int_eq(rsc_fault_set(t_loop, spec), 0);
	strcat(spec, ",close:17:EIO");
	ck_assert_int_eq(rsc_fault_set(t_loop, spec), -EINVAL);
	ck_assert_int_eq(rsc_fault_set(t_loop, "openat:2147483647:EMFILE"), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "openat:01:EMFILE"), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
}
END_TEST

/* close:1:EIO: the release fails with EIO, op close, and the number is gone anyway. */
START_TEST(fault_close_eio_reaches_the_chain_and_leaks_nothing)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	int fd, before = rsc_audit_fd_count();

	if (rsc_fault_set(t_loop, "close:1:EIO") == -EOPNOTSUPP)
		return;
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "c", &s), 0);
	e = open_entered(s, t_path("f0"), O_RDONLY);
	fd = rsc_entry_fd(e);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "close");
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(rsc_audit_fd_count(), before);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 1);
	rsc_error_free(err);
}
END_TEST

/* ---- error text ------------------------------------------------------------ */

static struct rsc_error *failed_open_chain(const char *path)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;

	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s\\c", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, path, O_RDONLY, 0, 0, &e), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -ENOENT);
	ck_assert_ptr_nonnull(err);
	return err;
}

START_TEST(error_format_measures_cuts_and_escapes)
{
	char path[256], buf[512], small[8];
	struct rsc_error *err;
	int len;

	snprintf(path, sizeof(path), "%s/n\x1b[2J\n\xff\xc2\x9b\\x", t_dir);
	err = failed_open_chain(path);
	ck_assert_int_eq(rsc_error_format(NULL, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(rsc_error_format(err, NULL, 5), -EINVAL);
	len = rsc_error_format(err, NULL, 0);
	ck_assert_int_gt(len, 0);
	ck_assert_int_eq(rsc_error_format(err, buf, sizeof(buf)), len);
	ck_assert_int_eq((int)strlen(buf), len);
	ck_assert_msg(strstr(buf, "n\\x1b[2J\\x0a\\xff\\xc2\\x9b\\\\x"), "not escaped: %s", buf);
	ck_assert_msg(strstr(buf, "scope 's\\\\c'"), "scope name's backslash not doubled: %s", buf);
	ck_assert_msg(strstr(buf, "(ENOENT)"), "%s", buf);
	memset(small, 'Z', sizeof(small));
	ck_assert_int_eq(rsc_error_format(err, small, 1), len);
	ck_assert_int_eq(small[0], '\0');
	ck_assert_int_eq(small[1], 'Z');
	ck_assert_int_eq(rsc_error_format(err, small, sizeof(small)), len);
	ck_assert_int_eq((int)strlen(small), (int)sizeof(small) - 1);
	ck_assert_int_eq(strncmp(small, buf, sizeof(small) - 1), 0);
	ck_assert_int_eq(rsc_error_print(err, NULL), -EINVAL);
	ck_assert_int_eq(rsc_error_print(NULL, stderr), -EINVAL);
	{
		FILE *ro = fopen("/dev/null", "r");

		ck_assert_int_eq(rsc_error_print(err, ro), -EIO);
		ck_assert_msg(strstr(rsc_last_error(), "cannot write"), "%s", rsc_last_error());
		fclose(ro);
	}
	rsc_error_free(err);
}
END_TEST

/* Bytes of the shown text that one piece takes at @p: an escape, one UTF-8 character or one byte. */
static size_t shown_piece_len(const unsigned char *p)
{
	if (p[0] == '\\')
		return p[1] == 'x' ? 4 : 2;
	if (p[0] < 0x80)
		return 1;
	return p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
}

/*
 * Cut at every length, the text is the longest run of whole pieces that
 * fits: plain ASCII is copied in runs, so a run must be cut byte by byte and
 * a character or escape beside it never split.
 */
START_TEST(error_format_cut_at_every_length_keeps_whole_pieces)
{
	char path[256], full[512], cut[512];
	struct rsc_error *err;
	int len;

	snprintf(path, sizeof(path), "%s/ab\xc3\xa9" "cd\xe2\x82\xac\x01xy\\\\z\xf0\x9f\x98\x80.q", t_dir);
	err = failed_open_chain(path);
	len = rsc_error_format(err, full, sizeof(full));
	ck_assert_int_gt(len, 0);
	ck_assert_int_lt(len, (int)sizeof(full));
	ck_assert_msg(strstr(full, "ab\xc3\xa9" "cd\xe2\x82\xac\\x01xy\\\\\\\\z\xf0\x9f\x98\x80.q"), "%s", full);
	for (size_t size = 1; size <= (size_t)len + 1; size++) {
		size_t want = 0;

		while (want < (size_t)len && want + shown_piece_len((unsigned char *)full + want) <= size - 1)
			want += shown_piece_len((unsigned char *)full + want);
		memset(cut, 'Z', sizeof(cut));
		ck_assert_int_eq(rsc_error_format(err, cut, size), len);
		ck_assert_msg(strlen(cut) == want, "size %zu: %zu bytes, want %zu: %s", size, strlen(cut), want, cut);
		ck_assert_int_eq(memcmp(cut, full, want), 0);
		ck_assert_int_eq(cut[size], 'Z'); /* nothing past the buffer */
	}
	rsc_error_free(err);
}
END_TEST

START_TEST(strerror_and_names_take_any_int)
{
	ck_assert_str_eq(rsc_err_name(-ENOENT), "ENOENT");
	ck_assert_str_eq(rsc_err_name(ENOENT), "ENOENT");
	ck_assert_str_eq(rsc_err_name(0), "OK");
	ck_assert_str_eq(rsc_strerror(0), "Success");
	ck_assert_str_eq(rsc_err_name(INT_MIN), "E?");
	ck_assert_str_eq(rsc_strerror(INT_MIN), "Unknown error");
	ck_assert_str_eq(rsc_err_name(INT_MAX), "E?");
	ck_assert_str_eq(rsc_strerror(-ENOENT), "No such file or directory");
	ck_assert_str_eq(rsc_strerror(ENOENT), "No such file or directory");
	ck_assert_ptr_nonnull(rsc_last_error());
}
END_TEST

/* ---- audit findings ------------------------------------------------------- */

struct clearer {
	int seen, count_at_event, fd_at_event;
};

static void clear_on_finding(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
			     const struct rsc_entry *e, int res, void *data)
{
	struct clearer *c = data;
	const struct rsc_finding *f;

	(void)s;
	(void)e;
	if (ev != RSC_EV_AUDIT_FINDING)
		return;
	c->seen++;
	c->count_at_event = rsc_audit_count(loop);
	f = rsc_audit_finding(loop, (unsigned)rsc_audit_count(loop) - 1);
	c->fd_at_event = f ? rsc_finding_fd(f) : -1;
	ck_assert_int_eq(res, c->fd_at_event);
	ck_assert_int_eq(rsc_audit_clear(loop), 0);
}

/* A descriptor closed behind the runtime's back: a NOT_RELEASED finding, the
 * release fails -EBADF; the callback may read and clear the finding. */
START_TEST(finding_read_and_cleared_from_the_trace_callback)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct clearer c = { 0 };
	int fd;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, clear_on_finding, &c), 0);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "behind", &s), 0);
	e = open_entered(s, t_path("f0"), O_RDONLY);
	fd = rsc_entry_fd(e);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EBADF);
	ck_assert_int_eq(c.seen, 1);
	ck_assert_int_eq(c.count_at_event, 1);
	ck_assert_int_eq(c.fd_at_event, fd);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_ptr_null(rsc_audit_finding(t_loop, 0));
}
END_TEST

START_TEST(findings_bad_arguments_and_a_stream_that_cannot_write)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	const struct rsc_finding *f;
	FILE *ro;
	char *buf = NULL;
	size_t len = 0;
	FILE *mem;
	char name[] = "sc\x1b]0;x\x07";

	ck_assert_int_eq(rsc_audit_count(NULL), -EINVAL);
	ck_assert_ptr_null(rsc_audit_finding(NULL, 0));
	ck_assert_ptr_null(rsc_audit_finding(t_loop, 0));
	ck_assert_ptr_null(rsc_audit_finding(t_loop, UINT_MAX));
	ck_assert_int_eq(rsc_audit_clear(NULL), -EINVAL);
	ck_assert_int_eq(rsc_audit_print(NULL, stdout), -EINVAL);
	ck_assert_int_eq(rsc_audit_print(t_loop, NULL), -EINVAL);
	ck_assert_int_eq(rsc_audit_print(t_loop, stdout), 0);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, name, &s), 0);
	e = open_entered(s, t_path("f0"), O_RDONLY);
	ck_assert_int_eq(close(rsc_entry_fd(e)), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EBADF);
	ck_assert_int_eq(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_NOT_RELEASED);
	ck_assert_str_eq(rsc_finding_scope(f), name);
	ro = fopen("/dev/null", "r");
	ck_assert_int_eq(rsc_audit_print(t_loop, ro), -EIO);
	ck_assert_msg(strstr(rsc_last_error(), "cannot write"), "%s", rsc_last_error());
	fclose(ro);
	mem = open_memstream(&buf, &len);
	ck_assert_int_eq(rsc_audit_print(t_loop, mem), 1);
	fclose(mem);
	ck_assert_msg(strstr(buf, "ringscope audit: not released fd ") == buf, "%s", buf);
	ck_assert_msg(strstr(buf, "sc\\x1b]0;x\\x07"), "scope name not escaped: %s", buf);
	ck_assert_int_eq((int)(strchr(buf, '\n') - buf), (int)len - 1);
	free(buf);
}
END_TEST

START_TEST(audit_level_and_finding_getters_take_odd_arguments)
{
	struct rsc_loop *a, *b, *c;

	ck_assert_int_eq(rsc_loop_set_audit(NULL, RSC_AUDIT_OFF), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, (enum rsc_audit_level)3), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, (enum rsc_audit_level)-1), -EINVAL);
	ck_assert_int_eq(rsc_loop_audit_level(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_audit_level(t_loop), RSC_AUDIT_OFF);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_loop_audit_level(t_loop), RSC_AUDIT_FULL);
	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_OFF), 0);
	ck_assert_int_eq(rsc_finding_kind(NULL), -EINVAL);
	ck_assert_int_eq(rsc_finding_fd(NULL), -EINVAL);
	ck_assert_str_eq(rsc_finding_target(NULL), "");
	ck_assert_str_eq(rsc_finding_scope(NULL), "");
	ck_assert_str_eq(rsc_finding_expected(NULL), "");
	/* Loop numbers grow and are never reused. */
	ck_assert_int_eq(rsc_loop_id(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_new(&a, 8, 0), 0);
	ck_assert_int_eq(rsc_loop_new(&b, 8, 0), 0);
	ck_assert_int_gt(rsc_loop_id(b), rsc_loop_id(a));
	ck_assert_int_gt(rsc_loop_id(a), rsc_loop_id(t_loop));
	ck_assert_int_eq(rsc_loop_close(b), 0);
	ck_assert_int_eq(rsc_loop_new(&c, 8, 0), 0);
	ck_assert_int_gt(rsc_loop_id(c), rsc_loop_id(a) + 1);
	ck_assert_int_eq(rsc_loop_close(c), 0);
	ck_assert_int_eq(rsc_loop_close(a), 0);
}
END_TEST

/*
 * The full level's identity guard: a descriptor closed behind the runtime's
 * back and whose number went to another file is not closed by the runtime;
 * the finding names the file that holds the number now, the release fails
 * -EBADF with operation "exit", and the other file stays open.
 */
START_TEST(full_audit_never_closes_a_reused_number)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	const struct rsc_finding *f;
	int fd, other;

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "guarded", &s), 0);
	e = open_entered(s, t_path("f0"), O_RDONLY);
	fd = rsc_entry_fd(e);
	ck_assert_int_eq(close(fd), 0);
	other = open(t_path("f1"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_eq(other, fd);
	ck_assert_int_eq(rsc_entry_release_wait(e, &err), -EBADF);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "exit");
	rsc_error_free(err);
	ck_assert_int_ge(fcntl(other, F_GETFD), 0);
	ck_assert_int_ge(rsc_audit_count(t_loop), 1);
	f = rsc_audit_finding(t_loop, 0);
	ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_NOT_RELEASED);
	ck_assert_int_eq(rsc_finding_fd(f), fd);
	ck_assert_str_eq(rsc_finding_target(f), t_path("f1"));
	ck_assert_str_eq(rsc_finding_scope(f), "guarded");
	ck_assert_msg(strstr(rsc_finding_expected(f), t_path("f0")), "expected: %s",
		      rsc_finding_expected(f));
	close(other);
	/* rsc_entry_release_wait(3): its failure is the caller's, not the scope's. */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* A descriptor the program opens inside two nested full-audited scopes and
 * leaves open is reported by each, with its target and the scope's name. */
START_TEST(full_audit_reports_a_leak_once_per_scope_that_saw_it)
{
	struct rsc_scope *outer, *inner;
	int leak, leaked_in[2] = { 0, 0 };

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_FULL), 0);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "outer", &outer), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, outer, "inner", &inner), 0);
	leak = open(t_path("f0"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(leak, 0);
	ck_assert_int_eq(rsc_scope_close_wait(outer, NULL), 0);
	for (int i = 0; i < rsc_audit_count(t_loop); i++) {
		const struct rsc_finding *f = rsc_audit_finding(t_loop, (unsigned)i);

		ck_assert_int_eq(rsc_finding_kind(f), RSC_FINDING_LEAKED);
		ck_assert_int_eq(rsc_finding_fd(f), leak);
		ck_assert_str_eq(rsc_finding_target(f), t_path("f0"));
		leaked_in[!strcmp(rsc_finding_scope(f), "outer")]++;
	}
	ck_assert_int_eq(leaked_in[0], 1);
	ck_assert_int_eq(leaked_in[1], 1);
	close(leak);
	ck_assert_int_eq(rsc_audit_clear(t_loop), 0);
}
END_TEST

/* ---- the ownership ledger ---------------------------------------------------- */

struct owner_probe {
	int entered, released;
	char at_enter[512];
	char at_release[512];
};

static void probe_owner(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
			const struct rsc_entry *e, int res, void *data)
{
	struct owner_probe *p = data;

	(void)loop;
	(void)s;
	(void)e;
	if (ev == RSC_EV_ENTERED)
		p->entered = rsc_audit_describe_fd(res, p->at_enter, sizeof(p->at_enter));
	if (ev == RSC_EV_RELEASED && e)
		p->released = rsc_audit_describe_fd(rsc_entry_fd(e), p->at_release,
						    sizeof(p->at_release));
}

START_TEST(describe_fd_names_the_owner_from_enter_to_release)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct owner_probe p = { 0 };
	char buf[512], tiny[10];
	int fd, pipefd[2], len;

	ck_assert_int_eq(rsc_audit_describe_fd(-1, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(rsc_audit_describe_fd(INT_MIN, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(rsc_audit_describe_fd(0, NULL, 4), -EINVAL);
	ck_assert_int_eq(rsc_audit_describe_fd(1 << 20, buf, sizeof(buf)), -ENOENT);
	ck_assert_int_eq(rsc_audit_describe_fd(INT_MAX, buf, sizeof(buf)), -ENOENT);
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_audit_describe_fd(pipefd[0], buf, sizeof(buf)), -ENOENT);
	close(pipefd[0]);
	close(pipefd[1]);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, probe_owner, &p), 0);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "owner", &s), 0);
	e = open_entered(s, t_path("f0"), O_RDONLY);
	fd = rsc_entry_fd(e);
	ck_assert_msg(p.entered > 0, "not owned when RSC_EV_ENTERED is heard: %d", p.entered);
	len = rsc_audit_describe_fd(fd, buf, sizeof(buf));
	ck_assert_int_gt(len, 0);
	ck_assert_int_eq(len, (int)strlen(buf));
	ck_assert_msg(strstr(buf, "ringscope entry 'file' (") == buf, "%s", buf);
	ck_assert_msg(strstr(buf, t_path("f0")) && strstr(buf, "in scope 'owner'"), "%s", buf);
	ck_assert_msg(strstr(buf, "acquired at "), "%s", buf);
	ck_assert_int_eq(rsc_audit_describe_fd(fd, NULL, 0), len);
	ck_assert_int_eq(rsc_audit_describe_fd(fd, tiny, sizeof(tiny)), len);
	ck_assert_int_eq((int)strlen(tiny), (int)sizeof(tiny) - 1);
	p.released = 1;
	ck_assert_int_eq(rsc_entry_release_wait(e, NULL), 0);
	/* Let go when the close was submitted: no owner when the release is heard. */
	ck_assert_msg(p.released < 0, "still owned when RSC_EV_RELEASED is heard: %d %s", p.released,
		      p.at_release);
	ck_assert_int_eq(rsc_audit_describe_fd(fd, buf, sizeof(buf)), -ENOENT);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* An adopted descriptor is owned from the adoption on, and a detached one no more. */
START_TEST(describe_fd_follows_adopt_and_detach)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	char buf[512];
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "adopter", &s), 0);
	ck_assert_int_eq(rsc_adopt(s, fd, 0, &e), 0);
	ck_assert_int_gt(rsc_audit_describe_fd(fd, buf, sizeof(buf)), 0);
	ck_assert_msg(strstr(buf, "in scope 'adopter'"), "%s", buf);
	ck_assert_int_eq(rsc_entry_detach(e), fd);
	ck_assert_int_eq(rsc_audit_describe_fd(fd, buf, sizeof(buf)), -ENOENT);
	close(fd);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* rsc_audit_fd_count() with no descriptor left: -EMFILE, then the count again. */
START_TEST(fd_count_at_the_descriptor_limit_is_emfile)
{
	static struct t_no_fds u;
	int before = rsc_audit_fd_count();

	ck_assert_int_gt(before, 0);
	t_use_up_descriptors(&u);
	ck_assert_int_eq(rsc_audit_fd_count(), -EMFILE);
	t_descriptors_back(&u);
	ck_assert_int_eq(rsc_audit_fd_count(), before);
}
END_TEST

/* ---- the environment rsc_loop_new() reads ------------------------------------------- */

/* rsc_loop_new() under @name=@value: its result, the variable unset again. */
static int new_loop_under(const char *name, const char *value, struct rsc_loop **loopp)
{
	int ret;

	*loopp = NULL;
	ck_assert_int_eq(setenv(name, value, 1), 0);
	ret = rsc_loop_new(loopp, 8, 0);
	unsetenv(name);
	return ret;
}

START_TEST(environment_mistakes_fail_the_new_loop_and_leave_nothing)
{
	struct rsc_loop *loop;
	int before = rsc_audit_fd_count();

	ck_assert_int_eq(new_loop_under("RINGSCOPE_AUDIT", "fulll", &loop), -EINVAL);
	ck_assert_msg(strstr(rsc_last_error(), "RINGSCOPE_AUDIT"), "%s", rsc_last_error());
	ck_assert_ptr_null(loop);
	ck_assert_int_eq(new_loop_under("RINGSCOPE_TRACE", t_path("no/dir/%p.json"), &loop), -ENOENT);
	ck_assert_ptr_null(loop);
	if (t_has_fault_injection()) {
		ck_assert_int_eq(new_loop_under("RINGSCOPE_FAULT", "openat:1:EMFILE,", &loop), -EINVAL);
		ck_assert_int_eq(new_loop_under("RINGSCOPE_FAULT", "alloc:1:ENOMEM", &loop), -ENOMEM);
		ck_assert_ptr_null(loop);
	} else {
		ck_assert_int_eq(new_loop_under("RINGSCOPE_FAULT", "openat:1:EMFILE", &loop),
				 -EOPNOTSUPP);
	}
	ck_assert_int_eq(rsc_audit_fd_count(), before);
	/* Set but empty: off, and no rules. */
	ck_assert_int_eq(new_loop_under("RINGSCOPE_AUDIT", "", &loop), 0);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
	ck_assert_int_eq(new_loop_under("RINGSCOPE_FAULT", "", &loop), 0);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
}
END_TEST

/* RINGSCOPE_TRACE: %l names each loop's file; without it a second loop alive
 * at once writes FILE.N, never into the first loop's file. */
START_TEST(trace_environment_gives_each_live_loop_its_own_file)
{
	struct rsc_loop *a, *b;
	char path[PATH_MAX], *text;
	int ida, idb;

	ck_assert_int_eq(new_loop_under("RINGSCOPE_TRACE", t_path("per-%l.json"), &a), 0);
	ck_assert_int_eq(new_loop_under("RINGSCOPE_TRACE", t_path("per-%l.json"), &b), 0);
	ida = rsc_loop_id(a);
	idb = rsc_loop_id(b);
	ck_assert_int_ne(ida, idb);
	ck_assert_int_eq(rsc_loop_close(b), 0);
	ck_assert_int_eq(rsc_loop_close(a), 0);
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/per-%d.json", t_dir, i ? idb : ida);
		text = t_slurp(path, NULL);
		t_assert_trace_complete(text);
		free(text);
	}
	ck_assert_int_eq(new_loop_under("RINGSCOPE_TRACE", t_path("same.json"), &a), 0);
	ck_assert_int_eq(new_loop_under("RINGSCOPE_TRACE", t_path("same.json"), &b), 0);
	idb = rsc_loop_id(b);
	ck_assert_int_eq(rsc_loop_close(b), 0);
	ck_assert_int_eq(rsc_loop_close(a), 0);
	text = t_slurp(t_path("same.json"), NULL);
	t_assert_trace_complete(text);
	free(text);
	snprintf(path, sizeof(path), "%s/same.json.%d", t_dir, idb);
	text = t_slurp(path, NULL);
	t_assert_trace_complete(text);
	free(text);
}
END_TEST

/* ---- the trace file ------------------------------------------------------------ */

START_TEST(trace_file_bad_paths_say_which)
{
	char fifo[PATH_MAX];
	int rd;

	ck_assert_int_eq(rsc_loop_trace_file(NULL, t_path("t.json")), -EINVAL);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, ""), -EINVAL);
	ck_assert_int_eq(rsc_loop_trace_flush(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_trace(NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("no/such/dir.json")), -ENOENT);
	ck_assert_msg(strstr(rsc_last_error(), t_path("no/such/dir.json")), "%s", rsc_last_error());
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_dir), -EISDIR);
	snprintf(fifo, sizeof(fifo), "%s", t_path("fifo"));
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, fifo), -ENXIO);
	rd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(rd, 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, fifo), -ESPIPE);
	close(rd);
	/* None of these left a descriptor behind (the fixture counts at teardown). */
}
END_TEST

/* The trace's descriptor is close-on-exec; a closed trace is complete, its
 * open slices ended "trace stopped"; a second trace carries none of them. */
START_TEST(trace_closed_mid_scope_is_complete_and_the_next_starts_clean)
{
	struct rsc_scope *s;
	char link[PATH_MAX], target[PATH_MAX], *text;
	int traced = -1;

	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("one.json")), 0);
	for (int fd = 0; fd < 1024; fd++) {
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n > 0 && (target[n] = 0, !strcmp(target, t_path("one.json"))))
			traced = fd;
	}
	ck_assert_int_ge(traced, 0);
	ck_assert(fcntl(traced, F_GETFD) & FD_CLOEXEC);
	t_make_files(2);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "mid", &s), 0);
	t_open_files(s, 0, 2);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_NOWAIT) >= 0, 1);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("two.json")), 0);
	text = t_slurp(t_path("one.json"), NULL);
	t_assert_trace_complete(text);
	ck_assert_msg(strstr(text, "\"trace stopped\""), "open slices not ended: %s", text);
	free(text);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(t_path("two.json"), NULL);
	t_assert_trace_complete(text);
	ck_assert_msg(!strstr(text, "\"ph\":\"e\""), "an end of a slice begun in the first trace: %s",
		      text);
	free(text);
}
END_TEST

static int suppress_pending(struct rsc_entry *entry, const struct rsc_error *pending, void *arg)
{
	(void)entry;
	*(int *)arg = pending ? rsc_error_errno(pending) : 1;
	return RSC_EXIT_SUPPRESS;
}

/* issue #13: a failed acquire and a suppressed error are in the args. A
 * defer that suppresses the ENOENT of an open below it: the scope ends 0,
 * its e says so, the failed open's instant carries ENOENT, and the defer's
 * e names what it suppressed. */
START_TEST(trace_names_a_failed_acquire_and_the_error_an_exit_suppressed)
{
	struct rsc_scope *s;
	struct rsc_entry *d, *e;
	char *text, *line, *failed = NULL, *supp = NULL, *scope_end = NULL;
	int seen = 0;

	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("s.json")), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sup", &s), 0);
	ck_assert_int_eq(rsc_defer(s, suppress_pending, &seen, &d), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("missing"), O_RDONLY, 0, 0, &e), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(seen, -ENOENT);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	text = t_slurp(t_path("s.json"), NULL);
	for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (strstr(line, "\"event\":\"failed\""))
			failed = line;
		if (strstr(line, "\"ph\":\"e\"") && strstr(line, "\"name\":\"defer\""))
			supp = line;
		if (strstr(line, "\"ph\":\"e\"") && strstr(line, "\"cat\":\"scope\""))
			scope_end = line;
	}
	ck_assert_msg(failed && strstr(failed, "\"errno\":\"ENOENT\"") &&
			      strstr(failed, "\"op\":\"openat\""),
		      "the failed instant: %s", failed ? failed : "(none)");
	ck_assert_msg(supp && strstr(supp, "\"suppressed\":") && strstr(supp, "ENOENT"),
		      "the defer's end names what it suppressed: %s", supp ? supp : "(none)");
	ck_assert_msg(scope_end && strstr(scope_end, "\"status\":0"), "the scope's end: %s",
		      scope_end ? scope_end : "(none)");
	free(text);
}
END_TEST

/* After each flush the file's size is what was written (a complete
 * document); the blocks reserved ahead are given back when it is closed. */
START_TEST(trace_size_is_what_was_written_and_the_reserve_goes_back)
{
	struct stat st;
	size_t len;
	char *text;

	t_make_files(3);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("r.json")), 0);
	t_scope_of_files(3, "r");
	ck_assert_int_eq(rsc_loop_trace_flush(t_loop), 0);
	text = t_slurp(t_path("r.json"), &len);
	t_assert_trace_complete(text);
	free(text);
	ck_assert_int_eq(stat(t_path("r.json"), &st), 0);
	ck_assert_int_eq((long long)st.st_size, (long long)len);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	ck_assert_int_eq(stat(t_path("r.json"), &st), 0);
	ck_assert_msg((long long)st.st_blocks * 512 <= (long long)st.st_size + 65536,
		      "%lld bytes of blocks kept for %lld bytes of trace",
		      (long long)st.st_blocks * 512, (long long)st.st_size);
}
END_TEST

Suite *make_blackbox_obs_suite(void)
{
	Suite *s = suite_create("blackbox_obs");
	TCase *tc = tcase_create("blackbox_obs");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, counter_bad_arguments_and_names);
	tcase_add_test(tc, counters_of_a_new_loop_are_zero_but_pool_allocs);
	tcase_add_test(tc, metrics_bad_arguments);
	tcase_add_test(tc, metrics_counters_match_rsc_loop_counter);
	tcase_add_test(tc, metrics_gauges_follow_scopes_and_entries);
	tcase_add_test(tc, metrics_histograms_count_and_keep_their_counts);
	tcase_add_test(tc, metrics_of_two_loops_name_each_family_once);
	t_add_test_if(tc, metrics_acquire_latency_leaves_out_failed_acquires, t_has_fault_injection(),
		      "fault injection (--enable-fault-injection)");
	tcase_add_test(tc, metrics_from_the_trace_callback_agree_with_the_event);
	tcase_add_test(tc, metrics_to_a_stream_that_cannot_write_is_eio_with_a_reason);
	tcase_add_test(tc, fault_injection_is_seen_from_inside_a_forked_test);
	t_add_test_if(tc, fault_rules_malformed_are_refused_and_keep_the_old_rules,
		      t_has_fault_injection(), "fault injection (--enable-fault-injection)");
	t_add_test_if(tc, fault_rules_sixteen_at_most_and_the_largest_n, t_has_fault_injection(),
		      "fault injection (--enable-fault-injection)");
	t_add_test_if(tc, fault_close_eio_reaches_the_chain_and_leaks_nothing,
		      t_has_fault_injection(), "fault injection (--enable-fault-injection)");
	tcase_add_test(tc, error_format_measures_cuts_and_escapes);
	tcase_add_test(tc, error_format_cut_at_every_length_keeps_whole_pieces);
	tcase_add_test(tc, strerror_and_names_take_any_int);
	tcase_add_test(tc, finding_read_and_cleared_from_the_trace_callback);
	tcase_add_test(tc, findings_bad_arguments_and_a_stream_that_cannot_write);
	tcase_add_test(tc, audit_level_and_finding_getters_take_odd_arguments);
	tcase_add_test(tc, full_audit_never_closes_a_reused_number);
	tcase_add_test(tc, full_audit_reports_a_leak_once_per_scope_that_saw_it);
	tcase_add_test(tc, describe_fd_names_the_owner_from_enter_to_release);
	tcase_add_test(tc, describe_fd_follows_adopt_and_detach);
	t_add_test_if(tc, fd_count_at_the_descriptor_limit_is_emfile, !t_under_valgrind(),
		      "an RLIMIT_NOFILE that binds (valgrind keeps its own descriptors)");
	tcase_add_test(tc, environment_mistakes_fail_the_new_loop_and_leave_nothing);
	tcase_add_test(tc, trace_environment_gives_each_live_loop_its_own_file);
	tcase_add_test(tc, trace_file_bad_paths_say_which);
	tcase_add_test(tc, trace_closed_mid_scope_is_complete_and_the_next_starts_clean);
	tcase_add_test(tc, trace_size_is_what_was_written_and_the_reserve_goes_back);
	tcase_add_test(tc, trace_names_a_failed_acquire_and_the_error_an_exit_suppressed);
	suite_add_tcase(s, tc);
	return s;
}
