/* SPDX-License-Identifier: MIT */
/*
 * Programs whose trace, metrics and probes the observability scripts check
 * (the scripts beside it): built on the public API only.
 *   observe_prog trace FILE       nested scopes, a failed acquire, a suppressed error
 *   observe_prog kill FILE        flushes, then SIGKILLs itself with events unflushed
 *   observe_prog metrics FILE     two loops' metrics to FILE, their counters to stdout
 *   observe_prog probe N          N open+close pairs (for a tracer attached to it)
 * Exits 77 when io_uring is not usable here.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringscope.h>

static char dir[64];

static long long ok(long long ret, const char *what)
{
	if (ret >= 0)
		return ret;
	fprintf(stderr, "observe_prog: %s: %s (%s)\n", what, rsc_strerror((int)ret),
		rsc_last_error());
	exit(1);
}

static const char *path(const char *name)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static void cleanup(void)
{
	char cmd[96];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "observe_prog: could not remove %s\n", dir);
}

static void make_dir(void)
{
	int i, fd;

	snprintf(dir, sizeof(dir), "%s", "/tmp/observe_prog.XXXXXX");
	if (!mkdtemp(dir))
		exit(1);
	atexit(cleanup);
	for (i = 0; i < 8; i++) {
		char name[8];

		snprintf(name, sizeof(name), "f%d", i);
		fd = open(path(name), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			exit(1);
		close(fd);
	}
}

static struct rsc_loop *new_loop(void)
{
	struct rsc_loop *loop;
	int ret = rsc_loop_new(&loop, 64, 0);

	if (ret < 0) {
		printf("SKIP observe_prog: no io_uring: %s\n", rsc_last_error());
		exit(77);
	}
	return loop;
}

static void open_file(struct rsc_scope *s, const char *name, struct rsc_entry **e)
{
	ok(rsc_open(s, AT_FDCWD, path(name), O_RDONLY, 0, 0, e), "rsc_open");
}

static int suppress(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)arg;
	return pending ? RSC_EXIT_SUPPRESS : 0;
}

/* app { f0, child { f1 f2 missing f3 }, quiet { defer(suppress), missing }, f4 released early } */
static int trace(const char *file)
{
	struct rsc_loop *loop = new_loop();
	struct rsc_scope *app, *child, *quiet;
	struct rsc_entry *e;
	int status;

	ok(rsc_loop_trace_file(loop, file), "rsc_loop_trace_file");
	ok(rsc_scope_open(loop, NULL, "app", &app), "rsc_scope_open app");
	open_file(app, "f0", NULL);
	ok(rsc_scope_open(loop, app, "child", &child), "rsc_scope_open child");
	open_file(child, "f1", NULL);
	open_file(child, "f2", NULL);
	open_file(child, "missing", NULL);
	open_file(child, "f3", NULL);
	ok(rsc_scope_open(loop, app, "quiet", &quiet), "rsc_scope_open quiet");
	ok(rsc_defer(quiet, suppress, NULL, NULL), "rsc_defer");
	open_file(quiet, "also-missing", NULL);
	open_file(app, "f4", &e);
	ok(rsc_entry_wait(e), "rsc_entry_wait");
	ok(rsc_entry_release_wait(e, NULL), "rsc_entry_release_wait");
	ok(rsc_loop_run(loop, RSC_RUN_DEFAULT), "rsc_loop_run");
	status = rsc_scope_close_wait(app, NULL);
	if (status != -ENOENT) {
		fprintf(stderr, "observe_prog: app closed with %d, not -ENOENT\n", status);
		return 1;
	}
	ok(rsc_loop_close(loop), "rsc_loop_close");
	return 0;
}

/* Many events (buffer-full flushes), an explicit flush, then more, then death. */
static int kill_self(const char *file)
{
	struct rsc_loop *loop = new_loop();
	struct rsc_scope *s;
	int round, i;

	ok(rsc_loop_trace_file(loop, file), "rsc_loop_trace_file");
	for (round = 0; round < 200; round++) {
		ok(rsc_scope_open(loop, NULL, "round", &s), "rsc_scope_open");
		for (i = 0; i < 8; i++) {
			char name[8];

			snprintf(name, sizeof(name), "f%d", i);
			open_file(s, name, NULL);
		}
		ok(rsc_loop_run(loop, RSC_RUN_DEFAULT), "rsc_loop_run");
		ok(rsc_scope_close_wait(s, NULL), "rsc_scope_close_wait");
	}
	ok(rsc_loop_trace_flush(loop), "rsc_loop_trace_flush");
	ok(rsc_scope_open(loop, NULL, "unflushed", &s), "rsc_scope_open");
	open_file(s, "f0", NULL);
	ok(rsc_loop_run(loop, RSC_RUN_DEFAULT), "rsc_loop_run");
	fflush(stdout);
	cleanup(); /* atexit never runs after SIGKILL */
	raise(SIGKILL);
	return 1;
}

static void work(struct rsc_loop *loop, int pairs, bool fail)
{
	struct rsc_scope *s;
	int i;

	ok(rsc_scope_open(loop, NULL, "work", &s), "rsc_scope_open");
	for (i = 0; i < pairs; i++)
		open_file(s, "f1", NULL);
	if (fail)
		open_file(s, "missing", NULL);
	ok(rsc_loop_run(loop, RSC_RUN_DEFAULT), "rsc_loop_run");
	(void)rsc_scope_close_wait(s, NULL);
}

/* Two loops, different work; their metrics in one exposition. */
static int metrics(const char *file)
{
	struct rsc_loop *loops[2] = { new_loop(), new_loop() };
	struct rsc_scope *held;
	FILE *out;
	int i, c;

	ok(rsc_loop_set_metrics(loops[0], RSC_METRICS_LATENCY), "rsc_loop_set_metrics");
	ok(rsc_loop_set_metrics(loops[1], RSC_METRICS_LATENCY), "rsc_loop_set_metrics");
	work(loops[0], 5, false);
	work(loops[1], 3, true);
	/* Something open while the metrics are taken: the gauges see it. */
	ok(rsc_scope_open(loops[1], NULL, "held", &held), "rsc_scope_open");
	open_file(held, "f2", NULL);
	ok(rsc_loop_run(loops[1], RSC_RUN_DEFAULT), "rsc_loop_run");
	out = fopen(file, "w");
	if (!out)
		return 1;
	ok(rsc_metrics_write(loops, 2, out), "rsc_metrics_write");
	fclose(out);
	/* What rsc_loop_counter says, as JSON: {"1": {"sqes": 12, ...}, ...} */
	printf("{");
	for (i = 0; i < 2; i++) {
		printf("%s\"%d\": {", i ? ", " : "", rsc_loop_id(loops[i]));
		for (c = 0; c < RSC_CTR_COUNT; c++)
			printf("%s\"%s\": %lld", c ? ", " : "", rsc_counter_name(c),
			       rsc_loop_counter(loops[i], c));
		printf("}");
	}
	printf("}\n");
	ok(rsc_scope_close_wait(held, NULL), "rsc_scope_close_wait");
	ok(rsc_loop_close(loops[0]), "rsc_loop_close");
	ok(rsc_loop_close(loops[1]), "rsc_loop_close");
	return 0;
}

static int probe(int n)
{
	struct rsc_loop *loop = new_loop();
	int i;

	for (i = 0; i < n; i++)
		work(loop, 1, false);
	ok(rsc_loop_close(loop), "rsc_loop_close");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: observe_prog trace|kill|metrics FILE | probe N\n");
		return 2;
	}
	make_dir();
	if (!strcmp(argv[1], "trace"))
		return trace(argv[2]);
	if (!strcmp(argv[1], "kill"))
		return kill_self(argv[2]);
	if (!strcmp(argv[1], "metrics"))
		return metrics(argv[2]);
	if (!strcmp(argv[1], "probe"))
		return probe(atoi(argv[2]));
	return 2;
}
