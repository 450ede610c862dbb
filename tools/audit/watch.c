/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ringscope.h>

#include "audit.h"

#define MAX_KINDS 24

static const char *kinds[MAX_KINDS];
static int n_kinds;
static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static int kind_index(const char *k)
{
	for (int i = 0; i < n_kinds; i++)
		if (kinds[i] == k || strcmp(kinds[i], k) == 0)
			return i;
	if (n_kinds == MAX_KINDS)
		return MAX_KINDS - 1;
	kinds[n_kinds] = k;
	return n_kinds++;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Steady growth: the count ends higher than it started, by at least 3, and
 * it rose at least as often as it fell, never dropping by more than a tenth
 * of the steps. A sawtooth (open, close, open...) is not growth.
 */
static bool steady_growth(const int *c, int stride, int n)
{
	int ups = 0, downs = 0;

	if (n < 3 || c[(n - 1) * stride] - c[0] < 3)
		return false;
	for (int i = 1; i < n; i++) {
		if (c[i * stride] > c[(i - 1) * stride])
			ups++;
		else if (c[i * stride] < c[(i - 1) * stride])
			downs++;
	}
	return ups > downs && downs * 10 <= n - 1;
}

int cmd_watch(int argc, char **argv)
{
	double interval = 1, duration = 0, start;
	const char *plot = NULL;
	FILE *svg = NULL;
	bool json = false, have_pid = false, exited = false;
	pid_t pid = 0;
	int cap = 0, n = 0, ret = 0, n_growth = 0;
	double *t = NULL;
	int *counts = NULL, *total = NULL;
	bool growing[MAX_KINDS + 1] = { false };
	char path[64];

	static const struct option longs[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "for", required_argument, NULL, 'f' },
		{ "plot", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'p':
			plot = optarg;
			break;
		case 'i':
		case 'f':
			if (parse_seconds(optarg, 1e7, opt == 'f' ? &duration : &interval) < 0)
				die_usage("watch: --%s wants a positive number of seconds, not '%s'",
					  opt == 'f' ? "for" : "interval", vis(optarg));
			break;
		case 'h':
			return puts("usage: " PROG " watch [--interval=S] [--for=S] [--plot=FILE.svg] [--json] PID") == EOF;
		default:
			die_getopt("watch", opt, argv, longs);
		}
	}
	for (int i = optind; i < argc; i++) {
		if (have_pid || parse_pid(argv[i], &pid) < 0)
			die_usage("watch: '%s' is not a process id", vis(argv[i]));
		have_pid = true;
	}
	if (!have_pid)
		die_usage("watch: which PID?");
	if (plot && !*plot)
		die_usage("watch: option '--plot' needs a value");
	/* Opened now: a plot that cannot be written is said before the samples, not after. */
	if (plot && !(svg = fopen(plot, "we"))) {
		errmsg("cannot write %s: %s", vis(plot), rsc_strerror(-errno));
		return 2;
	}
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	start = now();
	for (;;) {
		struct snapshot s;
		struct stat st;
		double ts = now() - start;
		int r = snapshot_take(pid, false, &s);

		if (r < 0) {
			if (n > 0 && (r == -ENOENT || r == -ESRCH || r == -ECHILD)) {
				exited = true;
				break;
			}
			snapshot_perror(pid, r);
			ret = 2;
			goto out;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			t = realloc(t, (size_t)cap * sizeof(*t));
			total = realloc(total, (size_t)cap * sizeof(*total));
			counts = realloc(counts, (size_t)cap * MAX_KINDS * sizeof(*counts));
			if (!t || !total || !counts) {
				errmsg("out of memory");
				snapshot_free(&s);
				ret = 2;
				goto out;
			}
		}
		t[n] = ts;
		memset(&counts[n * MAX_KINDS], 0, MAX_KINDS * sizeof(*counts));
		for (int i = 0; i < s.n; i++)
			counts[n * MAX_KINDS + kind_index(s.fds[i].kind)]++;
		/* Since Linux 6.2 the size of /proc/PID/fd is the count: a cheap cross-check. */
		total[n] = stat(path, &st) == 0 && st.st_size > 0 ? (int)st.st_size : s.n;
		if (total[n] != s.n)
			total[n] = s.n; /* it changed between the two looks: keep the listing's */
		snapshot_free(&s);
		if (!json) {
			printf("%8.2fs  total %4d ", ts, total[n]);
			for (int k = 0; k < n_kinds; k++)
				if (counts[n * MAX_KINDS + k])
					printf(" %s %d", kinds[k], counts[n * MAX_KINDS + k]);
			putchar('\n');
			fflush(stdout);
		}
		n++;
		if (stop || (duration > 0 && now() - start + interval > duration + 1e-3))
			break;
		{
			struct timespec d = { (time_t)interval,
					      (long)((interval - floor(interval)) * 1e9) };
			while (nanosleep(&d, &d) < 0 && errno == EINTR && !stop)
				;
		}
		if (stop)
			break;
	}
	for (int k = 0; k < n_kinds; k++)
		if ((growing[k] = steady_growth(&counts[k], MAX_KINDS, n)))
			n_growth++;
	growing[MAX_KINDS] = steady_growth(total, 1, n);
	if (json) {
		printf("{\"pid\":%d,\"interval\":%g,\"exited\":%s,\"samples\":[", (int)pid, interval,
		       exited ? "true" : "false");
		for (int i = 0; i < n; i++) {
			printf("%s\n{\"t\":%.3f,\"total\":%d,\"counts\":{", i ? "," : "", t[i], total[i]);
			for (int k = 0, first = 1; k < n_kinds; k++) {
				if (!counts[i * MAX_KINDS + k])
					continue;
				printf("%s\"%s\":%d", first ? "" : ",", kinds[k], counts[i * MAX_KINDS + k]);
				first = 0;
			}
			printf("}}");
		}
		printf("\n],\"growth\":[");
	} else if (exited) {
		printf("process %d has exited\n", (int)pid);
	}
	for (int k = 0, first = 1; k <= n_kinds; k++) {
		int kk = k == n_kinds ? MAX_KINDS : k;
		const int *c = kk == MAX_KINDS ? total : &counts[k];
		int stride = kk == MAX_KINDS ? 1 : MAX_KINDS;
		const char *name = kk == MAX_KINDS ? "total" : kinds[k];
		double span = t[n - 1] - t[0];
		int from = c[0], to = c[(n - 1) * stride];

		if (!growing[kk])
			continue;
		if (json)
			printf("%s{\"kind\":\"%s\",\"from\":%d,\"to\":%d,\"seconds\":%.3f,\"per_second\":%.3f}",
			       first ? "" : ",", name, from, to, span, span > 0 ? (to - from) / span : 0);
		else
			printf("steady growth: %s from %d to %d in %.1f s (%+.2f/s)\n", name, from, to,
			       span, span > 0 ? (to - from) / span : 0);
		first = 0;
	}
	if (json)
		printf("]}\n");
	else if (!growing[MAX_KINDS] && !n_growth)
		printf("no steady growth over %d sample%s\n", n, n == 1 ? "" : "s");
	if (plot) {
		char title[96];
		int r;

		snprintf(title, sizeof(title), "open descriptors of process %d", (int)pid);
		r = svg_write(svg, pid, n, t, n_kinds, kinds, counts, total, title,
			      growing, MAX_KINDS);
		svg = NULL;
		if (r < 0) {
			errmsg("cannot write %s: %s", vis(plot), rsc_strerror(r));
			ret = 2;
			goto out;
		}
	}
	ret = (growing[MAX_KINDS] || n_growth) ? 1 : 0;
out:
	if (svg) {
		fclose(svg);
		unlink(plot); /* nothing to draw: no empty file left behind */
	}
	free(t);
	free(total);
	free(counts);
	return ret;
}
