/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringscope.h>

/* vis(), vis_utf8_len() (tools/audit/vis.c): names shown as ringscope-audit shows them. */
const char *vis(const char *s);
const char *vis_bad_option(char *const *argv, int optind_now, int optopt_now, bool *with_value);
size_t vis_utf8_len(const unsigned char *p);

#define N_FILES	    200
#define FSYNC_EVERY 50 /* every 50th file is fsynced before its close */
#define N_SOCKETS   64
#define N_BROKEN    6 /* good opens around the missing path in "broken" */
#define MISSING	    "does-not-exist"
#define MAX_EVENTS  (2 * (1 + N_FILES + N_SOCKETS + N_BROKEN + 1) + 64)

/* In the order they are opened: LIFO closes them in reverse. */
enum { SC_DEMO, SC_FILES, SC_SOCKETS, SC_BROKEN, SC_COUNT };

struct event {
	enum rsc_event ev;
	int scope_idx, entry_idx; /* -1 when not one of ours */
	int res;
	char scope[RSC_NAME_MAX];
	char entry[16];
	char detail[128];
};

struct dscope {
	const char *name;
	struct rsc_scope *s;
	struct rsc_entry *entries[N_FILES]; /* in acquisition (push) order */
	unsigned n, entered, failed, release_errors, n_order;
	const struct event *order[N_FILES]; /* its RELEASED events, as settled */
};

struct demo {
	bool json, ipv6, lifo_ok;
	const char *trace_path; /* --trace: the lifecycle as Chrome trace JSON */
	char dir[PATH_MAX - 32];
	struct rsc_loop *loop;
	struct dscope sc[SC_COUNT];
	struct event ev[MAX_EVENTS];
	unsigned n_ev, dropped, n_settled; /* events before the root's close */
	int close_order[SC_COUNT], n_closed;
	int fd_before, fd_during, fd_after;
	int broken_state, status;
	struct rsc_error *err;
};

static const char *tmp_to_remove; /* for atexit: the demo's own setup */

/* Every ringscope call is checked: a failure says what and why, then exits. */
static long long check(long long ret, const char *what)
{
	if (ret >= 0)
		return ret;
	fprintf(stderr, "ringscope-demo: %s: %s (%s)\n", what, rsc_strerror((int)ret),
		rsc_last_error());
	exit(1);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: ringscope-demo [--json] [--trace FILE] [--help] [--version]\n"
		     "Opens %d files and %d sockets in nested ringscope scopes, fails one\n"
		     "open on purpose (a missing path) and shows the LIFO unwind.\n"
		     "  --json        print the facts as one JSON object\n"
		     "  --trace FILE  write the lifecycle as Chrome trace-event JSON (Perfetto)\n"
		     "RINGSCOPE_AUDIT=off|released|full overrides the audit level (full).\n",
		N_FILES, N_SOCKETS);
}

/* Async-signal-safe, as a signal's handler runs it too: no stdio, no malloc. */
static void remove_tmpdir(void)
{
	char path[PATH_MAX], digits[12];
	size_t n = tmp_to_remove ? strlen(tmp_to_remove) : 0, k;
	unsigned i, v;

	if (!n || n + 16 > sizeof(path))
		return;
	memcpy(path, tmp_to_remove, n);
	path[n++] = '/';
	path[n++] = 'f';
	for (i = 0; i < N_FILES; i++) {
		/* "f%u" by hand: snprintf is no async-signal-safe function */
		for (k = 0, v = i; k == 0 || v; v /= 10)
			digits[k++] = (char)('0' + v % 10);
		for (v = 0; v < k; v++)
			path[n + v] = digits[k - 1 - v];
		path[n + k] = '\0';
		unlink(path);
	}
	rmdir(tmp_to_remove);
}

/* Interrupted (^C, a kill), the demo leaves no directory behind either. */
static void on_fatal_signal(int sig)
{
	remove_tmpdir();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void make_tmpdir(struct demo *d)
{
	const char *base = getenv("TMPDIR");
	char path[PATH_MAX];
	int i, fd;

	snprintf(d->dir, sizeof(d->dir), "%s/ringscope-demo.XXXXXX",
		 base && base[0] ? base : "/tmp");
	/* Named before it exists, so that a signal at any moment from here on
	 * removes whatever there is (before mkdtemp: nothing by that name). */
	tmp_to_remove = d->dir;
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);
	signal(SIGHUP, on_fatal_signal);
	if (!mkdtemp(d->dir)) {
		perror("ringscope-demo: mkdtemp");
		exit(1);
	}
	atexit(remove_tmpdir); /* also on a failure's exit(1) */
	for (i = 0; i < N_FILES; i++) {
		snprintf(path, sizeof(path), "%s/f%d", d->dir, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || dprintf(fd, "file %d\n", i) < 0 || close(fd) < 0) {
			perror(path);
			exit(1);
		}
	}
}

/* Some containers have no IPv6: the demo is about lifecycles, not families. */
static bool have_ipv6(void)
{
	int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	return fd >= 0 && close(fd) == 0;
}

/* Which of our scopes and entries an event is about (-1: not ours). */
static void locate(const struct demo *d, const struct rsc_scope *s,
		   const struct rsc_entry *e, struct event *t)
{
	unsigned i;
	int k;

	t->scope_idx = t->entry_idx = -1;
	for (k = 0; s && k < SC_COUNT && t->scope_idx < 0; k++)
		if (d->sc[k].s == s)
			t->scope_idx = k;
	for (i = 0; e && t->scope_idx >= 0 && i < d->sc[t->scope_idx].n; i++)
		if (d->sc[t->scope_idx].entries[i] == e)
			t->entry_idx = (int)i;
}

/* Runs inside the loop: copy what we need, the entry dies with its scope. */
static void on_trace(struct rsc_loop *loop, enum rsc_event ev,
		     const struct rsc_scope *scope, const struct rsc_entry *entry,
		     int res, void *data)
{
	struct demo *d = data;
	struct event *t;

	(void)loop;
	if (d->n_ev == MAX_EVENTS) {
		d->dropped++;
		return;
	}
	t = &d->ev[d->n_ev++];
	t->ev = ev;
	t->res = res;
	locate(d, scope, entry, t);
	snprintf(t->scope, sizeof(t->scope), "%s", rsc_scope_name(scope));
	snprintf(t->entry, sizeof(t->entry), "%s", rsc_entry_name(entry));
	snprintf(t->detail, sizeof(t->detail), "%s", rsc_entry_detail(entry));
}

static void new_loop(struct demo *d)
{
	int ret = rsc_loop_new(&d->loop, 0, 0);

	if (ret < 0) {
		fprintf(stderr, "ringscope-demo: cannot create a ringscope loop: %s\n  %s\n%s",
			rsc_strerror(ret), rsc_last_error(),
			ret == -EINVAL || ret == -EOPNOTSUPP ? "" :
			"  the demo needs io_uring, which is not usable here\n");
		exit(1);
	}
	/* An explicit RINGSCOPE_AUDIT is the user's choice: keep it. */
	if (!getenv("RINGSCOPE_AUDIT"))
		check(rsc_loop_set_audit(d->loop, RSC_AUDIT_FULL), "rsc_loop_set_audit");
	check(rsc_loop_set_trace(d->loop, on_trace, d), "rsc_loop_set_trace");
	/* Opened before any scope, so the full audit does not count it as a leak. */
	if (d->trace_path)
		check(rsc_loop_trace_file(d->loop, d->trace_path), "rsc_loop_trace_file");
}

static struct dscope *open_scope(struct demo *d, int idx, const char *name)
{
	struct dscope *s = &d->sc[idx];

	s->name = name;
	check(rsc_scope_open(d->loop, idx == SC_DEMO ? NULL : d->sc[SC_DEMO].s,
			     name, &s->s), "rsc_scope_open");
	return s;
}

/* Only prepares an SQE: nothing is open until the loop turns. */
static void open_file(struct demo *d, struct dscope *s, const char *name,
		      int oflags, unsigned flags)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s%s%s", d->dir, name[0] ? "/" : "", name);
	check(rsc_open(s->s, AT_FDCWD, path, oflags, 0, flags, &s->entries[s->n++]),
	      "rsc_open");
}

static void push_files(struct demo *d)
{
	struct dscope *s = open_scope(d, SC_FILES, "files");
	char name[16];
	int i;

	for (i = 0; i < N_FILES; i++) {
		bool sync = i % FSYNC_EVERY == FSYNC_EVERY - 1;

		snprintf(name, sizeof(name), "f%d", i);
		open_file(d, s, name, sync ? O_RDWR : O_RDONLY,
			  sync ? RSC_FSYNC_ON_RELEASE : 0);
	}
}

static void push_sockets(struct demo *d)
{
	static const int kinds[6][2] = {
		{ AF_INET, SOCK_STREAM },  { AF_INET6, SOCK_DGRAM }, { AF_UNIX, SOCK_STREAM },
		{ AF_INET, SOCK_DGRAM },   { AF_INET6, SOCK_STREAM }, { AF_UNIX, SOCK_DGRAM },
	};
	struct dscope *s = open_scope(d, SC_SOCKETS, "sockets");
	int i, domain;

	for (i = 0; i < N_SOCKETS; i++) {
		domain = kinds[i % 6][0] == AF_INET6 && !d->ipv6 ? AF_INET : kinds[i % 6][0];
		check(rsc_socket(s->s, domain, kinds[i % 6][1], 0, 0, &s->entries[s->n++]),
		      "rsc_socket");
	}
}

/* Good opens, the missing path, more good opens: all go out in one submit. */
static void push_broken(struct demo *d)
{
	struct dscope *s = open_scope(d, SC_BROKEN, "broken");
	char name[16];
	int i;

	for (i = 0; i < N_BROKEN; i++) {
		if (i == N_BROKEN / 2)
			open_file(d, s, MISSING, O_RDONLY, 0);
		snprintf(name, sizeof(name), "f%d", i);
		open_file(d, s, name, O_RDONLY, 0);
	}
}

static void run_demo(struct demo *d)
{
	/* The parent's own entry: released only after every child scope. */
	open_file(d, open_scope(d, SC_DEMO, "demo"), "", O_RDONLY | O_DIRECTORY, 0);
	push_files(d);
	push_sockets(d);
	push_broken(d);
	check(rsc_loop_run(d->loop, RSC_RUN_DEFAULT), "rsc_loop_run");
	d->n_settled = d->n_ev;
	d->fd_during = (int)check(rsc_audit_fd_count(), "rsc_audit_fd_count");
	d->broken_state = (int)check(rsc_scope_state(d->sc[SC_BROKEN].s), "rsc_scope_state");
	d->status = rsc_scope_close_wait(d->sc[SC_DEMO].s, &d->err);
	/* A status with no chain is the call itself failing, not an unwind. */
	if (!d->err)
		check(d->status, "rsc_scope_close_wait");
}

/*
 * While the root closes, scope k may release or close only when it is the
 * newest scope still open: children and newer siblings go first.
 */
static bool newest_open(const struct demo *d, int k)
{
	int i, newer = 0;

	for (i = 0; i < d->n_closed; i++) {
		if (d->close_order[i] == k)
			return false;
		newer += d->close_order[i] > k;
	}
	return newer == SC_COUNT - 1 - k;
}

static void tally(struct demo *d, const struct event *t, bool closing)
{
	struct dscope *s = t->scope_idx >= 0 ? &d->sc[t->scope_idx] : NULL;

	/* Only the root's close orders scopes: a failed one unwinds on its own. */
	if (closing && (t->ev == RSC_EV_SCOPE_CLOSED || t->ev == RSC_EV_RELEASED))
		d->lifo_ok = d->lifo_ok && s && newest_open(d, t->scope_idx);
	if (t->ev == RSC_EV_SCOPE_CLOSED && d->n_closed < SC_COUNT)
		d->close_order[d->n_closed++] = t->scope_idx;
	if (!s || t->entry_idx < 0)
		return;
	s->entered += t->ev == RSC_EV_ENTERED;
	s->failed += t->ev == RSC_EV_ENTER_FAILED;
	if (t->ev != RSC_EV_RELEASED)
		return;
	d->lifo_ok = d->lifo_ok && s->n_order < s->n;
	/* Within a scope: strictly newest first. */
	if (s->n_order && s->order[s->n_order - 1]->entry_idx <= t->entry_idx)
		d->lifo_ok = false;
	if (s->n_order < s->n)
		s->order[s->n_order++] = t;
	s->release_errors += t->res < 0;
}

static void analyse(struct demo *d)
{
	unsigned i;
	int k;

	d->lifo_ok = d->dropped == 0;
	for (i = 0; i < d->n_ev; i++)
		tally(d, &d->ev[i], i >= d->n_settled);
	/* Every scope closed, and everything entered was released. */
	d->lifo_ok = d->lifo_ok && d->n_closed == SC_COUNT;
	for (k = 0; k < SC_COUNT; k++)
		d->lifo_ok = d->lifo_ok && d->sc[k].n_order == d->sc[k].entered;
}

static const char *label(const struct event *t, char *buf, size_t len)
{
	const char *slash = strrchr(t->detail, '/');

	/* A socket's detail ("AF_INET/SOCK_STREAM") names its kind, not it. */
	if (strcmp(t->entry, "socket"))
		return slash && slash[1] ? slash + 1 : t->detail;
	snprintf(buf, len, "s%d", t->entry_idx);
	return buf;
}

static void print_order(const struct dscope *s)
{
	char buf[16];
	unsigned i;

	printf("  %-8s entered %3u, failed %u, released %3u, newest first:", s->name,
	       s->entered, s->failed, s->n_order);
	for (i = 0; i < s->n_order; i++) {
		if (i == 4 && s->n_order > 7) {
			printf(" ...");
			i = s->n_order - 3; /* the first four and the last three */
		}
		printf(" %s", label(s->order[i], buf, sizeof(buf)));
	}
	printf("\n");
}

static long long counter(const struct demo *d, int i)
{
	return check(rsc_loop_counter(d->loop, (enum rsc_counter)i), "rsc_loop_counter");
}

static void human_report(const struct demo *d)
{
	int k;

	printf("ringscope demo: %d files in %s, %d sockets%s, one missing path\n",
	       N_FILES, vis(d->dir), /* $TMPDIR may hold a newline or ESC */ N_SOCKETS, d->ipv6 ? "" : " (no IPv6: AF_INET instead)");
	printf("descriptors open before: %d, after one rsc_loop_run: %d\n"
	       "scope 'broken' unwound by itself: %s\n\n", d->fd_before, d->fd_during,
	       d->broken_state == RSC_SCOPE_UNWOUND ? "yes (RSC_SCOPE_UNWOUND)" : "NO");
	printf("rsc_scope_close_wait(demo) = %d (%s); error chain:\n", d->status,
	       rsc_err_name(d->status));
	if (d->err)
		check(rsc_error_print(d->err, stdout), "rsc_error_print");
	printf("\nreleases as they completed:\n");
	for (k = SC_COUNT - 1; k >= 0; k--)
		print_order(&d->sc[k]);
	printf("scopes closed:");
	for (k = 0; k < d->n_closed; k++)
		printf(" %s", d->close_order[k] >= 0 ? d->sc[d->close_order[k]].name : "?");
	printf("\nLIFO: %s\n\naudit (level %lld): %lld finding(s)\n",
	       d->lifo_ok ? "ok" : "VIOLATED",
	       check(rsc_loop_audit_level(d->loop), "rsc_loop_audit_level"),
	       check(rsc_audit_count(d->loop), "rsc_audit_count"));
	check(rsc_audit_print(d->loop, stdout), "rsc_audit_print");
	printf("counters:");
	for (k = 0; k < RSC_CTR_COUNT; k++)
		printf("%s %s=%lld", k && k % 5 == 0 ? "\n         " : "", rsc_counter_name((enum rsc_counter)k),
		       counter(d, k));
	printf("\n");
}

/*
 * JSON by hand: quote, backslash and control characters are escaped, and a
 * byte that is not part of valid UTF-8 (a $TMPDIR is bytes, JSON is UTF-8)
 * is written as \udcXX, as ringscope-audit --json and Python's
 * "surrogateescape" write it.
 */
static void jstr(const char *str, const char *after)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;

	putchar('"');
	while (*s) {
		if (*s == '"' || *s == '\\') {
			printf("\\%c", *s++);
		} else if (*s < 0x20 || *s == 0x7f) {
			printf("\\u%04x", *s++);
		} else if (*s < 0x80) {
			putchar(*s++);
		} else if ((n = vis_utf8_len(s))) {
			fwrite(s, 1, n, stdout);
			s += n;
		} else if (*s >= 0xc2 && *s <= 0xdf && (s[1] & 0xc0) == 0x80) {
			printf("\\u%04x", (s[0] & 0x1f) << 6 | (s[1] & 0x3f)); /* a C1 control */
			s += 2;
		} else {
			printf("\\udc%02x", *s++);
		}
	}
	printf("\"%s", after);
}

static void jkv(const char *key, const char *val, const char *after)
{
	printf("\"%s\": ", key);
	jstr(val, after);
}

static void json_scope(const struct dscope *s, bool last)
{
	unsigned i;

	printf("    {");
	jkv("name", s->name, ", ");
	printf("\"pushed\": %u, \"acquired\": %u, \"failed\": %u, \"released\": %u, "
	       "\"release_errors\": %u, \"release_order\": [",
	       s->n, s->entered, s->failed, s->n_order, s->release_errors);
	for (i = 0; i < s->n_order; i++)
		printf("%s%d", i ? ", " : "", s->order[i]->entry_idx);
	printf("]}%s\n", last ? "" : ",");
}

static void json_errors(const struct rsc_error *e)
{
	printf("  \"error_chain\": [");
	for (; e; e = rsc_error_cause(e)) {
		printf("\n    {\"errno\": %d, ", -rsc_error_errno(e));
		jkv("name", rsc_err_name(rsc_error_errno(e)), ", ");
		jkv("op", rsc_error_op(e), ", ");
		jkv("entry", rsc_error_entry(e), ", ");
		jkv("detail", rsc_error_detail(e), ", ");
		jkv("scope", rsc_error_scope(e), rsc_error_cause(e) ? "}," : "}\n  ");
	}
	printf("],\n");
}

static void json_findings(const struct demo *d)
{
	const struct rsc_finding *f;
	unsigned i;

	printf("  \"audit_level\": %lld,\n  \"audit_findings\": [",
	       check(rsc_loop_audit_level(d->loop), "rsc_loop_audit_level"));
	for (i = 0; (f = rsc_audit_finding(d->loop, i)); i++) {
		printf("%s\n    {\"kind\": \"%s\", \"fd\": %d, ", i ? "," : "",
		       rsc_finding_kind(f) == RSC_FINDING_LEAKED ? "leaked" : "not_released",
		       rsc_finding_fd(f));
		jkv("target", rsc_finding_target(f), ", ");
		jkv("scope", rsc_finding_scope(f), ", ");
		jkv("expected", rsc_finding_expected(f), "}");
	}
	printf("%s],\n", i ? "\n  " : "");
}

/* Everything but what is known only once the loop is gone (see finish). */
static void json_report(const struct demo *d)
{
	int k;

	printf("{\n  ");
	jkv("tmpdir", d->dir, ",\n");
	printf("  \"ipv6\": %s,\n  \"fd_before\": %d,\n  \"fd_during\": %d,\n"
	       "  \"broken_unwound_by_itself\": %s,\n  \"status\": %d,\n",
	       d->ipv6 ? "true" : "false", d->fd_before, d->fd_during,
	       d->broken_state == RSC_SCOPE_UNWOUND ? "true" : "false", d->status);
	json_errors(d->err);
	printf("  \"scopes\": [\n");
	for (k = SC_COUNT - 1; k >= 0; k--)
		json_scope(&d->sc[k], k == 0);
	printf("  ],\n  \"scope_close_order\": [");
	for (k = 0; k < d->n_closed; k++)
		jstr(d->close_order[k] >= 0 ? d->sc[d->close_order[k]].name : "?",
		     k + 1 < d->n_closed ? ", " : "");
	printf("],\n  \"lifo_ok\": %s,\n", d->lifo_ok ? "true" : "false");
	json_findings(d);
	printf("  \"counters\": {");
	for (k = 0; k < RSC_CTR_COUNT; k++)
		printf("%s\"%s\": %lld", k ? ", " : "", rsc_counter_name((enum rsc_counter)k), counter(d, k));
	printf("},\n");
}

/* The one failure the demo plants, and nothing else: one error in the chain,
 * one failed acquire in all the scopes, no failed release. */
static bool only_the_enoent(const struct demo *d)
{
	unsigned k, failed = 0, release_errors = 0;

	for (k = 0; k < SC_COUNT; k++) {
		failed += d->sc[k].failed;
		release_errors += d->sc[k].release_errors;
	}
	return d->status == -ENOENT && d->err && rsc_error_depth(d->err) == 1 &&
	       d->sc[SC_BROKEN].failed == 1 && failed == 1 && release_errors == 0;
}

static int finish(struct demo *d)
{
	bool ok = check(rsc_audit_count(d->loop), "rsc_audit_count") == 0;
	int ret = (int)check(rsc_loop_close(d->loop), "rsc_loop_close");

	d->fd_after = (int)check(rsc_audit_fd_count(), "rsc_audit_fd_count");
	/* The demo's promise: only the ENOENT, all in order, nothing left open. */
	ok = ok && d->lifo_ok && d->fd_after == d->fd_before && only_the_enoent(d) &&
	     d->broken_state == RSC_SCOPE_UNWOUND;
	if (d->json)
		printf("  \"fd_after\": %d,\n  \"loop_close\": %d,\n  \"ok\": %s\n}\n",
		       d->fd_after, ret, ok ? "true" : "false");
	else
		printf("descriptors open after: %d (before: %d): %s\nrsc_loop_close: %d\n"
		       "demo: %s\n", d->fd_after, d->fd_before,
		       d->fd_after == d->fd_before ? "ok" : "MISMATCH", ret,
		       ok ? "ok" : "FAILED (expected: LIFO, only the ENOENT, no finding, no fd left)");
	rsc_error_free(d->err);
	/* A report lost (a full disk, stdout closed) never passes for a run that was fine. */
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "ringscope-demo: cannot write the report: %s\n",
			errno ? rsc_strerror(errno) : "the stream has an error");
		return 1;
	}
	return ok ? 0 : 1;
}

static void parse_args(struct demo *d, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "trace", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0; /* getopt's own messages would echo an unknown option's bytes raw */
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			d->json = true;
			break;
		case 't':
			if (!*optarg) {
				fprintf(stderr, "ringscope-demo: --trace: empty file name\n");
				usage(stderr);
				exit(2);
			}
			d->trace_path = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			puts("ringscope-demo " PACKAGE_VERSION);
			exit(0);
		case ':':
			fprintf(stderr, "ringscope-demo: option '%s' needs a value\n",
				vis(argv[optind - 1]));
			usage(stderr);
			exit(2);
		default: {
			bool with_value;
			const char *name = vis_bad_option(argv, optind, optopt, &with_value);

			fprintf(stderr, with_value ? "ringscope-demo: option '%s' takes no value\n" :
						     "ringscope-demo: unknown option '%s'\n", name);
			usage(stderr);
			exit(2);
		}
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ringscope-demo: unexpected argument '%s'\n", vis(argv[optind]));
		usage(stderr);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	static struct demo d; /* large (the trace buffer): not on the stack */

	parse_args(&d, argc, argv);
	/* A reader that goes away is a report not written (exit 1, said), not a
	 * death by SIGPIPE that leaves the temporary directory behind. */
	signal(SIGPIPE, SIG_IGN);
	make_tmpdir(&d);
	d.ipv6 = have_ipv6();
	d.fd_before = (int)check(rsc_audit_fd_count(), "rsc_audit_fd_count");
	new_loop(&d);
	run_demo(&d);
	analyse(&d);
	if (d.json)
		json_report(&d);
	else
		human_report(&d);
	return finish(&d);
}
