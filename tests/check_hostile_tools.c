/* SPDX-License-Identifier: MIT */
/*
 * Hostile acceptance probes of the observability (trace file, trace
 * callback, metrics) and of direct descriptors (slot reuse, hand-over to a
 * loop that has gone), each checked against what the man pages promise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* Names that a strict JSON/UTF-8 reader chokes on unless they are escaped. */
static const char *const hostile_names[] = {
	"q\"b\\s",	     /* quote, backslash */
	"ctl\x01\x1f\x7f\n", /* controls, DEL, newline */
	"sur\xed\xa0\x80",   /* a UTF-8-encoded surrogate (U+D800) */
	"over\xe0\x80\x80",  /* an overlong NUL */
	"big\xf4\x90\x80\x80", /* above U+10FFFF */
	"trunc\xc3",	     /* a truncated sequence */
	"c1\xc2\x9b",	     /* U+009B, valid UTF-8 */
	"ok\xc3\xa9",	     /* valid UTF-8 */
};
#define N_HOSTILE (sizeof(hostile_names) / sizeof(hostile_names[0]))

/* Offset of the first byte that breaks strict UTF-8 (RFC 3629), or -1. */
static long bad_utf8_at(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned cp;
		size_t n;

		if (s[i] < 0x80) {
			i++;
			continue;
		}
		n = s[i] >= 0xc2 && s[i] < 0xe0 ? 2 : s[i] >= 0xe0 && s[i] < 0xf0 ? 3 :
		    s[i] >= 0xf0 && s[i] < 0xf5 ? 4 : 0;
		if (!n || i + n > len)
			return (long)i;
		cp = s[i] & (0x7f >> n);
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return (long)i;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
		    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
			return (long)i;
		i += n;
	}
	return -1;
}

/* No raw control byte inside a JSON string (the only place one could be). */
static long raw_control_at(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x20 && s[i] != '\n' && s[i] != '\t' && s[i] != '\r')
			return (long)i;
	return -1;
}

/* python3's json, when there is one: 1 valid, 0 not, -1 no python3. */
static int python_json_ok(const char *path)
{
	char cmd[1024];
	int st;

	if (system("command -v python3 > /dev/null 2>&1") != 0)
		return -1;
	snprintf(cmd, sizeof(cmd),
		 "python3 -c 'import json,sys; json.loads(open(sys.argv[1],\"rb\").read().decode(\"utf-8\"))' '%s'",
		 path);
	st = system(cmd);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void check_json_file(const char *path)
{
	size_t len;
	char *buf = t_slurp(path, &len);
	long at = bad_utf8_at((const unsigned char *)buf, len);

	ck_assert_msg(at < 0, "%s: invalid UTF-8 at byte %ld: ...%.40s", path, at,
		      buf + (at > 20 ? at - 20 : 0));
	at = raw_control_at((const unsigned char *)buf, len);
	ck_assert_msg(at < 0, "%s: raw control byte at %ld", path, at);
	ck_assert_msg((len > 2 && strcmp(buf + len - 2, "]}") == 0) ||
			      (len > 3 && strcmp(buf + len - 3, "]}\n") == 0),
		      "%s does not end the document", path);
	free(buf);
	ck_assert_int_ne(python_json_ok(path), 0);
}

/* ----------------------------------------------------------- trace file */

START_TEST(trace_is_strict_utf8_json_whatever_the_names)
{
	char file[512], path[512];
	struct rsc_scope *s, *c;
	unsigned i;

	snprintf(file, sizeof(file), "%s", t_path("trace.json"));
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	for (i = 0; i < N_HOSTILE; i++) {
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, hostile_names[i], &s), 0);
		ck_assert_int_eq(rsc_scope_open(t_loop, s, hostile_names[(i + 1) % N_HOSTILE], &c), 0);
		/* A path that does not exist fails: its name goes into the failed event too. */
		snprintf(path, sizeof(path), "%s/none/%s", t_dir, hostile_names[i]);
		ck_assert_int_eq(rsc_open(c, AT_FDCWD, path, O_RDONLY, 0, 0, NULL), 0);
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL), 0);
		t_run();
		rsc_scope_close_wait(s, NULL);
	}
	ck_assert_int_eq(rsc_loop_trace_flush(t_loop), 0);
	check_json_file(file);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	check_json_file(file);
}
END_TEST

/* Rotation: rename the file away, reopen the same path; both are whole documents. */
START_TEST(trace_rotation_by_rename_and_reopen)
{
	char file[512], old[512];
	struct rsc_scope *s;
	struct stat st;

	snprintf(file, sizeof(file), "%s", t_path("t.json"));
	snprintf(old, sizeof(old), "%s", t_path("t.json.1"));
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "before", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_loop_trace_flush(t_loop), 0);
	ck_assert_int_eq(rename(file, old), 0);
	/* The scope is still open across the rotation. */
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	check_json_file(old);
	check_json_file(file);
	ck_assert_int_eq(stat(file, &st), 0);
	ck_assert_int_gt(st.st_size, 2);
	/* A trace to a directory that is not there fails with open's errno, naming it. */
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("no/such/dir/t.json")), -ENOENT);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "no/such/dir"));
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, ""), -EINVAL);
	ck_assert_int_eq(rsc_loop_trace_file(NULL, file), -EINVAL);
}
END_TEST

/* ------------------------------------------------------- trace callback */

struct reentry {
	char file2[512];
	int events, run, close_wait, metrics, flush, switched, removed;
	struct rsc_scope *scope;
};

static void reentrant_cb(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *scope,
			 const struct rsc_entry *entry, int res, void *data)
{
	struct reentry *r = data;
	char *body = NULL;
	size_t len = 0;
	FILE *f;

	(void)ev;
	(void)scope;
	(void)entry;
	(void)res;
	r->events++;
	r->run = rsc_loop_run(loop, RSC_RUN_NOWAIT);
	r->close_wait = rsc_scope_close_wait(r->scope, NULL);
	f = open_memstream(&body, &len);
	if (f) {
		r->metrics = rsc_loop_metrics(loop, f);
		fclose(f);
		free(body);
	}
	r->flush = rsc_loop_trace_flush(loop);
	/* Switch the trace file from inside an event, then remove this callback. */
	if (r->events == 2)
		r->switched = rsc_loop_trace_file(loop, r->file2);
	if (r->events == 3)
		r->removed = rsc_loop_set_trace(loop, NULL, NULL);
}

START_TEST(trace_callback_calling_back_into_the_library)
{
	struct reentry r;
	char file1[512];
	struct rsc_scope *s;
	int i;

	memset(&r, 0, sizeof(r));
	snprintf(file1, sizeof(file1), "%s", t_path("a.json"));
	snprintf(r.file2, sizeof(r.file2), "%s", t_path("b.json"));
	r.switched = r.removed = 1;
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, file1), 0);
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, RSC_METRICS_LATENCY), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "outer", &s), 0);
	r.scope = s;
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, reentrant_cb, &r), 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL), 0);
	t_run();
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(r.events, 3); /* removed from inside its third call */
	ck_assert_int_eq(r.run, -EDEADLK);
	ck_assert_int_eq(r.close_wait, -EDEADLK);
	ck_assert_int_eq(r.metrics, 0); /* "from a callback is fine" */
	ck_assert_int_eq(r.flush, 0);
	ck_assert_int_eq(r.switched, 0);
	ck_assert_int_eq(r.removed, 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	check_json_file(file1);
	check_json_file(r.file2);
	/* The fixture's recorder is gone: put it back for the teardown's checks. */
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, 0), 0);
}
END_TEST

/* --------------------------------------------------------------- metrics */

static char *metrics_text(void)
{
	char *body = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&body, &len);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(rsc_loop_metrics(t_loop, f), 0);
	fclose(f);
	return body;
}

static double sample(const char *text, const char *series)
{
	const char *p = text;
	size_t n = strlen(series);

	while ((p = strstr(p, series))) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	ck_abort_msg("no series %s in:\n%s", series, text);
	return 0;
}

/* LC_NUMERIC with a decimal comma: the exposition format has none. */
START_TEST(metrics_do_not_follow_the_programs_locale)
{
	char cmd[1024], loc[512], *text, *p;
	struct rsc_scope *s;
	locale_t de, prev;
	int i;

	snprintf(loc, sizeof(loc), "%s/loc", t_dir);
	snprintf(cmd, sizeof(cmd),
		 "command -v localedef > /dev/null && localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' > /dev/null 2>&1",
		 loc);
	if (mkdir(loc, 0700) < 0 || system(cmd) != 0) {
		printf("SKIP metrics_do_not_follow_the_programs_locale: cannot build a de_DE locale (localedef, i18n sources)\n");
		return;
	}
	setenv("LOCPATH", loc, 1);
	de = newlocale(LC_NUMERIC_MASK, "de_DE.UTF-8", (locale_t)0);
	unsetenv("LOCPATH");
	if (de == (locale_t)0) {
		printf("SKIP metrics_do_not_follow_the_programs_locale: newlocale(de_DE.UTF-8) failed\n");
		return;
	}
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, RSC_METRICS_LATENCY), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	prev = uselocale(de);
	text = metrics_text();
	uselocale(prev);
	freelocale(de);
	for (p = text; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
		const char *c = p;
		int nl = (int)strcspn(p, "\n");

		if (*p == '#')
			continue;
		/* No comma but the one before le=: le="0,001" or a sum 0,000012 is not the format. */
		while ((c = memchr(c, ',', (size_t)(p + nl - c))))
			ck_assert_msg(strncmp(++c, "le=", 3) == 0, "a decimal comma in: %.*s", nl, p);
	}
	snprintf(cmd, sizeof(cmd), "ringscope_acquire_latency_seconds_count{loop=\"%d\"}",
		 rsc_loop_id(t_loop));
	ck_assert_double_eq(sample(text, cmd), 3);
	free(text);
}
END_TEST

START_TEST(metrics_counters_never_go_back)
{
	static const char *const series[] = {
		"ringscope_sqes_total", "ringscope_cqes_total", "ringscope_acquired_total",
		"ringscope_released_total", "ringscope_enter_failed_total",
	};
	double last[5] = { 0 };
	char name[128];
	struct rsc_scope *s;
	int round, k;

	for (round = 0; round < 6; round++) {
		char *text;

		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
		ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL), 0);
		if (round % 2)
			ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("missing"), O_RDONLY, 0, 0, NULL), 0);
		rsc_scope_close_wait(s, NULL);
		/* Turning latency on and off changes no counter. */
		ck_assert_int_eq(rsc_loop_set_metrics(t_loop, round % 2 ? 0 : RSC_METRICS_LATENCY), 0);
		text = metrics_text();
		for (k = 0; k < 5; k++) {
			double v;

			snprintf(name, sizeof(name), "%s{loop=\"%d\"}", series[k], rsc_loop_id(t_loop));
			v = sample(text, name);
			ck_assert_msg(v >= last[k], "%s went from %g to %g", series[k], last[k], v);
			last[k] = v;
		}
		free(text);
	}
	ck_assert_double_eq(last[2], 6);
	ck_assert_double_eq(last[4], 3);
	/* Bad arguments. */
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, 1U << 7), -EINVAL);
	ck_assert_int_eq(rsc_loop_metrics(t_loop, NULL), -EINVAL);
	ck_assert_int_eq(rsc_metrics_write(NULL, 1, stdout), -EINVAL);
	ck_assert_int_eq(rsc_metrics_write(&t_loop, 0, stdout), -EINVAL);
}
END_TEST

/* ---------------------------------------------------- direct descriptors */

static void entry_res(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

/* A released entry keeps its handle until its scope closes: it must never reach the slot's next owner. */
START_TEST(released_direct_entry_never_acts_on_its_reused_slot)
{
	struct rsc_entry *a, *b;
	struct rsc_scope *s;
	char buf[8] = { 0 }; /* valgrind cannot see the kernel's write into it */
	int slot, res = 1, fd;

	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 2, 1), 0); /* one kernel slot: reuse is certain */
	fd = open(t_path("data"), O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "new", 3), 3);
	close(fd);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &a), 0);
	slot = rsc_entry_wait(a);
	ck_assert_int_ge(slot, 0);
	ck_assert_int_eq(rsc_entry_release_wait(a, NULL), 0);
	ck_assert_int_eq(rsc_entry_slot(a), -EBADF);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("data"), O_RDONLY, 0, RSC_DIRECT, &b), 0);
	ck_assert_int_eq(rsc_entry_wait(b), slot);
	/* Every call through the old handle is refused; the new owner is untouched. */
	ck_assert_int_lt(rsc_read(a, buf, sizeof(buf), 0, t_store_res, &res), 0);
	ck_assert_int_lt(rsc_entry_install(a, 0, entry_res, &res), 0);
	ck_assert_int_lt(rsc_entry_hand_over(a, 1ULL << 32, entry_res, &res), 0);
	ck_assert_int_lt(rsc_entry_release(a, NULL, NULL), 0);
	ck_assert_int_eq(res, 1);
	ck_assert_int_eq(rsc_entry_slot(b), slot);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 1);
	ck_assert_int_eq(rsc_read(b, buf, sizeof(buf), 0, t_store_res, &res), 0);
	ck_assert_int_eq(t_io_wait(&res), 3);
	ck_assert_int_eq(memcmp(buf, "new", 3), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
}
END_TEST

/*
 * The target loop closed after giving out its inbox address; then another
 * loop is made (its ring likely on the same descriptor number) with an
 * inbox of its own. A hand-over to the old address must fail and leave the
 * slot with the sender, and must not arrive in the new loop's inbox.
 */
START_TEST(hand_over_to_a_loop_that_has_closed)
{
	struct rsc_loop *b, *c;
	struct rsc_scope *bs, *cs, *s;
	struct rsc_entry *inbox, *e;
	unsigned long long addr, addr_c;
	int arrived = 0, res = 1, slot, i;

	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	ck_assert_int_eq(rsc_loop_new(&b, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(b, NULL, "worker", &bs), 0);
	ck_assert_int_eq(rsc_inbox(bs, t_count_arrival, &arrived, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_scope_close_wait(bs, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(b), 0);
	ck_assert_int_eq(rsc_loop_new(&c, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(c, NULL, "other", &cs), 0);
	ck_assert_int_eq(rsc_inbox(cs, t_count_arrival, &arrived, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr_c), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, RSC_DIRECT, &e), 0);
	slot = rsc_entry_wait(e);
	ck_assert_int_ge(slot, 0);
	/* Refused at once: the address names no live inbox, whatever ring has its number. */
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, entry_res, &res), -ESTALE);
	for (i = 0; i < 10; i++) {
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(rsc_loop_run(c, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(arrived, 0);
	ck_assert_int_eq(res, 1); /* the callback of a refused call never runs */
	/* The new loop's own address still works. */
	ck_assert_int_eq(rsc_entry_hand_over(e, addr_c, entry_res, &res), 0);
	while (res == 1 || !arrived) {
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(rsc_loop_run(c, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_ge(res, 0);
	ck_assert_int_eq(arrived, 1);
	ck_assert_int_eq(rsc_loop_direct_used(c), 1);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(cs, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(c), 0);
	ck_assert_int_eq(rsc_loop_close(c), 0);
}
END_TEST

START_TEST(direct_table_arguments)
{
	struct rsc_scope *s;
	struct rsc_entry *e;

	ck_assert_int_eq(rsc_loop_set_direct(NULL, 8, 2), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, RSC_DIRECT_SLOTS_MAX + 1, 0), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 1), -EINVAL);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);	/* no table: nothing to drop */
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), -ENXIO);
	ck_assert_int_eq(rsc_loop_direct_used(NULL), -EINVAL);
	ck_assert_int_eq(rsc_entry_slot(NULL), -EINVAL);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "s", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_slot(e), -EBADFD);
	ck_assert_int_eq(rsc_entry_install(e, 0, NULL, NULL), -EBADF);
	/* Not a direct entry: -EBADF before the missing table's -ENXIO, and with a table too. */
	ck_assert_int_eq(rsc_entry_hand_over(e, 1ULL << 32 | 7, NULL, NULL), -EBADF);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 8, 2), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, 1ULL << 32 | 7, NULL, NULL), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 0, 0), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), -ENXIO);
}
END_TEST

struct printer {
	const struct rsc_error *err;
	FILE *out;
};

static void *print_many(void *arg)
{
	struct printer *p = arg;
	int i;

	for (i = 0; i < 3000; i++)
		if (rsc_error_print(p->err, p->out) < 0)
			return p;
	return NULL;
}

/*
 * Two threads printing chains to one unbuffered stream (stderr, as
 * ringscope-httpd's loops do when they fail together): each line whole,
 * never another thread's text in the middle of it.
 */
START_TEST(error_print_from_threads_keeps_its_lines_whole)
{
	struct rsc_scope *s;
	struct rsc_error *err = NULL;
	struct printer p;
	pthread_t a, b;
	void *ra, *rb;
	char line[512], want[512];
	FILE *f = tmpfile();
	int n = 0;

	ck_assert_ptr_nonnull(f);
	setvbuf(f, NULL, _IONBF, 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "printed", &s), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "twice"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_lt(rsc_error_format(err, want + 7, sizeof(want) - 8), (int)sizeof(want) - 8);
	memcpy(want, "error: ", 7);
	strcat(want, "\n");
	p.err = err;
	p.out = f;
	ck_assert_int_eq(pthread_create(&a, NULL, print_many, &p), 0);
	ck_assert_int_eq(pthread_create(&b, NULL, print_many, &p), 0);
	pthread_join(a, &ra);
	pthread_join(b, &rb);
	ck_assert_ptr_null(ra);
	ck_assert_ptr_null(rb);
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		ck_assert_msg(!strcmp(line, want), "line %d: '%s', wanted '%s'", n, line, want);
		n++;
	}
	ck_assert_int_eq(n, 6000);
	fclose(f);
	rsc_error_free(err);
}
END_TEST

/*
 * A chain or the metrics written to a full disk: -EIO, and rsc_last_error()
 * says so, not the sentence an older failure left (ringscope-demo > /dev/full
 * printed "rsc_entry_detail: the entry handle is NULL").
 */
START_TEST(write_to_a_full_disk_says_why)
{
	struct rsc_scope *s;
	struct rsc_error *err = NULL;
	FILE *full = fopen("/dev/full", "w");

	if (!full)
		return; /* no /dev/full here */
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "full", &s), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EIO, "disk"), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, &err), -EIO);
	ck_assert_int_eq(rsc_entry_slot(NULL), -EINVAL); /* leaves an older sentence */
	ck_assert_int_eq(rsc_error_print(err, full), -EIO);
	ck_assert_msg(strstr(rsc_last_error(), "rsc_error_print: cannot write: No space left"),
		      "%s", rsc_last_error());
	clearerr(full);
	ck_assert_int_eq(rsc_entry_slot(NULL), -EINVAL);
	ck_assert_int_eq(rsc_loop_metrics(t_loop, full), -EIO);
	ck_assert_msg(strstr(rsc_last_error(), "rsc_metrics_write: cannot write: No space left"),
		      "%s", rsc_last_error());
	fclose(full);
	rsc_error_free(err);
}
END_TEST

Suite *make_hostile_tools_suite(void)
{
	Suite *s = suite_create("hostile_tools");
	TCase *tc = tcase_create("hostile_tools");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, trace_is_strict_utf8_json_whatever_the_names);
	tcase_add_test(tc, trace_rotation_by_rename_and_reopen);
	tcase_add_test(tc, trace_callback_calling_back_into_the_library);
	tcase_add_test(tc, metrics_do_not_follow_the_programs_locale);
	tcase_add_test(tc, metrics_counters_never_go_back);
	tcase_add_test(tc, released_direct_entry_never_acts_on_its_reused_slot);
	t_add_test_if(tc, hand_over_to_a_loop_that_has_closed, t_has_hand_over(),
		      "IORING_MSG_SEND_FD (Linux 6.0)");
	tcase_add_test(tc, direct_table_arguments);
	tcase_add_test(tc, error_print_from_threads_keeps_its_lines_whole);
	tcase_add_test(tc, write_to_a_full_disk_says_why);
	suite_add_tcase(s, tc);
	return s;
}
