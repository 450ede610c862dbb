/* SPDX-License-Identifier: MIT */
/*
 * ringscope-bench: ns per acquire+release pair (openat then close of an
 * existing, cached file) for libc, hand-written liburing and ringscope,
 * measured side by side in interleaved rounds; see bench/README.md.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>
#include <ringscope.h>

#ifndef RSC_BENCH_LIBURING
#define RSC_BENCH_LIBURING "unknown"
#endif

#define N_FILES	       256U /* files in the temp directory; also the largest batch */
#define RING_ENTRIES   512U /* both rings: a batch of 256 fits with room to spare */
#define REAP_BATCH     64U
#define DEFAULT_ROUNDS 21U
#define QUICK_ROUNDS   5U
#define MAX_ROUNDS     1001U
#define TARGET_MS      25.0 /* per variant per round: above the 20 ms floor */
#define QUICK_MS       5.0
#define WARMUP_MS      40.0 /* per variant, before calibration */

/* Floors the harness reports on (it exits 0 either way). */
#define FLOOR_VS_LIBURING 1.15
#define FLOOR_VS_SYNC	  1.10
#define FLOOR_AUDIT	  1.20
#define FLOOR_TRACE	  1.10 /* issue: tracing on costs at most 10% at N = 64 */

/*
 * Allocation counter. The bench binary interposes malloc and friends (the
 * executable comes first in symbol lookup, so libringscope's calls land
 * here too) and forwards to glibc's own entry points. Single-threaded:
 * a plain counter is enough.
 */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

static unsigned long n_allocs;

#define BENCH_EXPORT __attribute__((visibility("default")))

BENCH_EXPORT void *malloc(size_t size);
BENCH_EXPORT void *calloc(size_t n, size_t size);
BENCH_EXPORT void *realloc(void *p, size_t size);
BENCH_EXPORT void free(void *p);
BENCH_EXPORT int posix_memalign(void **pp, size_t align, size_t size);
BENCH_EXPORT void *aligned_alloc(size_t align, size_t size);

void *malloc(size_t size)
{
	n_allocs++;
	return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
	n_allocs++;
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
	n_allocs++;
	return __libc_realloc(p, size);
}

void free(void *p)
{
	__libc_free(p);
}

/* liburing allocates its probe with these; count them so none can hide. */
int posix_memalign(void **pp, size_t align, size_t size)
{
	void *p;

	n_allocs++;
	p = __libc_memalign(align, size);
	if (!p)
		return ENOMEM;
	*pp = p;
	return 0;
}

void *aligned_alloc(size_t align, size_t size)
{
	n_allocs++;
	return __libc_memalign(align, size);
}

enum impl { IMPL_SYNC = 0, IMPL_URING, IMPL_RSC };

static const char *const impl_names[] = { "sync", "liburing", "ringscope" };
static const char *const audit_names[] = { "off", "released", "full" };
/* The observability rows at N = OBS_N, each with its own "off". */
enum { OBS_NONE = 0, OBS_OFF, OBS_TRACE, OBS_LATENCY, OBS__COUNT };
static const char *const obs_names[] = { "", "trace-off", "trace-on", "metrics-on" };
#define OBS_N 64U

struct variant {
	enum impl impl;
	unsigned n;	   /* files per batch */
	int audit;	   /* ringscope only; -1 for the size rows */
	int obs;	   /* OBS_*: tracing/metrics rows; OBS_NONE elsewhere */
	unsigned reps;	   /* batches per sample */
	double *samples;   /* ns per pair, one per measured round */
	unsigned n_samples;
	double median, p25, p75, min;
	unsigned long allocs;	   /* malloc & co. during the measured samples */
	unsigned long long pairs; /* pairs in the measured samples */
};

struct bench {
	char dir[PATH_MAX - 16];
	char names[N_FILES][8];
	int dirfd;
	unsigned next; /* rotates the files a batch starts at */
	int fds[N_FILES];

	struct io_uring ring;
	unsigned ring_setup_flags;
	bool ring_registered; /* io_uring_register_ring_fd(), as ringscope's loop */
	struct rsc_loop *loop;

	struct variant *v;
	unsigned n_v;

	/* options */
	unsigned rounds;
	double target_ms;
	bool quick, json, pin;
	int cpu;
	const char *only; /* comma-separated variant names, for profiling */

	char trace_path[PATH_MAX]; /* the trace-on rows write here, in dir */
	/* RSC_CTR_POOL_ALLOCS around the measured rounds */
	long long pool_before, pool_after;
};

static struct bench *cleanup_bench;

static void die(const char *what, int err)
{
	fprintf(stderr, "ringscope-bench: %s: %s\n", what,
		err ? rsc_strerror(err) : "failed");
	if (err && rsc_last_error()[0])
		fprintf(stderr, "ringscope-bench: %s\n", rsc_last_error());
	exit(1);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static const char *file_at(struct bench *b, unsigned i)
{
	return b->names[(b->next + i) % N_FILES];
}

/* ---- the three implementations of one batch: open n, then close n ---- */

static void sync_batch(struct bench *b, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		b->fds[i] = openat(b->dirfd, file_at(b, i), O_RDONLY | O_CLOEXEC);
		if (b->fds[i] < 0)
			die("openat", -errno);
	}
	/* Newest first, as a scope unwinds. */
	for (i = n; i-- > 0;)
		if (close(b->fds[i]) < 0)
			die("close", -errno);
	b->next += n;
}

/* Reap exactly n CQEs; user_data is the slot, res goes to fds[] on opens. */
static void uring_reap(struct bench *b, unsigned n, bool opening)
{
	struct io_uring_cqe *cqes[REAP_BATCH];
	unsigned got = 0, i, k;

	while (got < n) {
		k = io_uring_peek_batch_cqe(&b->ring, cqes, REAP_BATCH);
		if (k == 0) {
			int ret = io_uring_wait_cqe(&b->ring, &cqes[0]);

			if (ret < 0)
				die("io_uring_wait_cqe", ret);
			continue;
		}
		for (i = 0; i < k; i++) {
			int res = cqes[i]->res;

			if (res < 0)
				die(opening ? "IORING_OP_OPENAT" : "IORING_OP_CLOSE", res);
			if (opening)
				b->fds[cqes[i]->user_data] = res;
		}
		io_uring_cq_advance(&b->ring, k);
		got += k;
	}
}

static void uring_batch(struct bench *b, unsigned n)
{
	struct io_uring_sqe *sqe;
	unsigned i;
	int ret;

	for (i = 0; i < n; i++) {
		sqe = io_uring_get_sqe(&b->ring);
		io_uring_prep_openat(sqe, b->dirfd, file_at(b, i),
				     O_RDONLY | O_CLOEXEC, 0);
		io_uring_sqe_set_data64(sqe, i);
	}
	ret = io_uring_submit_and_wait(&b->ring, n);
	if (ret < 0)
		die("io_uring_submit_and_wait (openat)", ret);
	uring_reap(b, n, true);
	/* One unlinked batch of closes, newest first. */
	for (i = n; i-- > 0;) {
		sqe = io_uring_get_sqe(&b->ring);
		io_uring_prep_close(sqe, b->fds[i]);
		io_uring_sqe_set_data64(sqe, i);
	}
	ret = io_uring_submit_and_wait(&b->ring, n);
	if (ret < 0)
		die("io_uring_submit_and_wait (close)", ret);
	uring_reap(b, n, false);
	b->next += n;
}

static void rsc_batch(struct bench *b, unsigned n)
{
	struct rsc_scope *s;
	unsigned i;
	int ret;

	ret = rsc_scope_open(b->loop, NULL, "bench", &s);
	if (ret < 0)
		die("rsc_scope_open", ret);
	for (i = 0; i < n; i++) {
		ret = rsc_open(s, b->dirfd, file_at(b, i), O_RDONLY, 0, 0, NULL);
		if (ret < 0)
			die("rsc_open", ret);
	}
	ret = rsc_loop_run(b->loop, RSC_RUN_DEFAULT); /* all entered */
	if (ret != 0)
		die("rsc_loop_run (enter)", ret < 0 ? ret : -EBUSY);
	ret = rsc_scope_close(s, NULL, NULL);
	if (ret < 0)
		die("rsc_scope_close", ret);
	ret = rsc_loop_run(b->loop, RSC_RUN_DEFAULT); /* all released */
	if (ret != 0)
		die("rsc_loop_run (release)", ret < 0 ? ret : -EBUSY);
	b->next += n;
}

/* ---- setup ---- */

static void remove_dir(void)
{
	struct bench *b = cleanup_bench;
	unsigned i;

	if (!b || b->dirfd < 0)
		return;
	for (i = 0; i < N_FILES; i++)
		unlinkat(b->dirfd, b->names[i], 0);
	unlinkat(b->dirfd, "trace.json", 0);
	close(b->dirfd);
	b->dirfd = -1;
	rmdir(b->dir);
}

static void make_files(struct bench *b)
{
	const char *tmp = getenv("TMPDIR");
	unsigned i;

	snprintf(b->dir, sizeof(b->dir), "%s/ringscope-bench-XXXXXX",
		 tmp && tmp[0] ? tmp : "/tmp");
	if (!mkdtemp(b->dir))
		die("mkdtemp", -errno);
	b->dirfd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->dirfd < 0)
		die("open temp directory", -errno);
	snprintf(b->trace_path, sizeof(b->trace_path), "%s/trace.json", b->dir);
	cleanup_bench = b;
	atexit(remove_dir);
	for (i = 0; i < N_FILES; i++) {
		int fd;

		snprintf(b->names[i], sizeof(b->names[i]), "f%03u", i);
		fd = openat(b->dirfd, b->names[i],
			    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, "x", 1) != 1)
			die("create test file", -errno);
		close(fd);
	}
}

/* The setup ringscope uses (src/loop.c ring_setup), tried in the same order. */
static void uring_setup(struct bench *b)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
			IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_SUBMIT_ALL,
		0,
	};
	struct io_uring_params p;
	unsigned i;
	int ret = -EINVAL;

	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = RING_ENTRIES * 4;
		ret = io_uring_queue_init_params(RING_ENTRIES, &b->ring, &p);
		if (ret == 0) {
			b->ring_setup_flags = tries[i];
			/* As ringscope does (src/loop.c ring_setup): like for like. */
			if ((tries[i] & IORING_SETUP_SINGLE_ISSUER) &&
			    io_uring_register_ring_fd(&b->ring) > 0)
				b->ring_registered = true;
			return;
		}
		if (ret != -EINVAL)
			break;
	}
	die("io_uring_queue_init_params", ret);
}

static void pin_cpu(struct bench *b)
{
	cpu_set_t set;
	int c;

	if (!b->pin)
		return;
	if (b->cpu < 0) {
		/* Default: the highest CPU we may run on (away from CPU 0's chores). */
		if (sched_getaffinity(0, sizeof(set), &set) < 0)
			die("sched_getaffinity", -errno);
		for (c = CPU_SETSIZE - 1; c >= 0 && !CPU_ISSET(c, &set); c--)
			;
		b->cpu = c;
	}
	CPU_ZERO(&set);
	CPU_SET(b->cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity", -errno);
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* ---- measuring ---- */

/* Not inlined: profilers (callgrind --toggle-collect=run_batch) key on it. */
__attribute__((noinline)) static void run_batch(struct bench *b, const struct variant *v)
{
	switch (v->impl) {
	case IMPL_SYNC:
		sync_batch(b, v->n);
		break;
	case IMPL_URING:
		uring_batch(b, v->n);
		break;
	case IMPL_RSC:
		rsc_batch(b, v->n);
		break;
	}
}

/* Trace to a file in the bench directory, or collect latency, or neither. */
static void set_obs(struct bench *b, const struct variant *v)
{
	int ret;

	if (v->impl != IMPL_RSC)
		return;
	/* Outside the timed window: the previous trace's last flush and close. */
	ret = rsc_loop_trace_file(b->loop, v->obs == OBS_TRACE ? b->trace_path : NULL);
	if (ret < 0)
		die("rsc_loop_trace_file", ret);
	ret = rsc_loop_set_metrics(b->loop, v->obs == OBS_LATENCY ? RSC_METRICS_LATENCY : 0);
	if (ret < 0)
		die("rsc_loop_set_metrics", ret);
}

static void set_audit(struct bench *b, const struct variant *v)
{
	int ret;

	if (v->impl != IMPL_RSC)
		return;
	set_obs(b, v);
	ret = rsc_loop_set_audit(b->loop, v->audit < 0 ? RSC_AUDIT_OFF :
				 (enum rsc_audit_level)v->audit);
	if (ret < 0)
		die("rsc_loop_set_audit", ret);
}

/* One sample: v->reps batches back to back; returns ns per pair. */
static double sample(struct bench *b, struct variant *v, bool measured)
{
	long long acq0 = 0, rel0 = 0, fail0 = 0;
	unsigned long a0;
	unsigned r;
	double t0, t1;

	set_audit(b, v);
	if (v->impl == IMPL_RSC) {
		acq0 = rsc_loop_counter(b->loop, RSC_CTR_ACQUIRED);
		rel0 = rsc_loop_counter(b->loop, RSC_CTR_RELEASED);
		fail0 = rsc_loop_counter(b->loop, RSC_CTR_ENTER_FAILED);
	}
	a0 = n_allocs;
	t0 = now_ns();
	for (r = 0; r < v->reps; r++)
		run_batch(b, v);
	t1 = now_ns();
	if (measured) {
		v->allocs += n_allocs - a0;
		v->pairs += (unsigned long long)v->reps * v->n;
	}
	if (v->impl == IMPL_RSC) {
		long long want = (long long)v->reps * v->n;

		/* Make sure ringscope did all the work it was timed for. */
		if (rsc_loop_counter(b->loop, RSC_CTR_ACQUIRED) - acq0 != want ||
		    rsc_loop_counter(b->loop, RSC_CTR_RELEASED) - rel0 != want ||
		    rsc_loop_counter(b->loop, RSC_CTR_ENTER_FAILED) != fail0)
			die("ringscope counters disagree with the work done", -EPROTO);
		if (rsc_audit_count(b->loop) > 0) {
			rsc_audit_print(b->loop, stderr);
			die("the audit reported findings on a clean workload", -EPROTO);
		}
	}
	return (t1 - t0) / ((double)v->reps * v->n);
}

/* Warm up each variant, then size its samples to take about target_ms. */
static void calibrate(struct bench *b)
{
	unsigned i;

	for (i = 0; i < b->n_v; i++) {
		struct variant *v = &b->v[i];
		double t0 = now_ns(), per_batch;
		unsigned batches = 0;

		set_audit(b, v);
		do {
			run_batch(b, v);
			batches++;
		} while (now_ns() - t0 < WARMUP_MS * 1e6 * (b->quick ? 0.25 : 1.0));
		per_batch = (now_ns() - t0) / batches;
		v->reps = (unsigned)(b->target_ms * 1e6 / per_batch) + 1;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank quantile of a sorted array. */
static double quantile(const double *s, unsigned n, double q)
{
	unsigned k = (unsigned)(q * (n - 1) + 0.5);

	return s[k < n ? k : n - 1];
}

static void summarize(struct variant *v)
{
	double *s = malloc(v->n_samples * sizeof(*s));
	unsigned n = v->n_samples;

	if (!s)
		die("malloc", -ENOMEM);
	memcpy(s, v->samples, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	v->median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	v->p25 = quantile(s, n, 0.25);
	v->p75 = quantile(s, n, 0.75);
	v->min = s[0];
	free(s);
}

static void measure(struct bench *b)
{
	unsigned r, k;

	calibrate(b);
	/* One throwaway round with the final sample sizes. */
	for (k = 0; k < b->n_v; k++)
		(void)sample(b, &b->v[k], false);
	b->pool_before = rsc_loop_counter(b->loop, RSC_CTR_POOL_ALLOCS);
	for (r = 0; r < b->rounds; r++) {
		/* Rotate the start so no variant always runs first in a round. */
		for (k = 0; k < b->n_v; k++) {
			struct variant *v = &b->v[(r + k) % b->n_v];

			v->samples[v->n_samples++] = sample(b, v, true);
		}
		if (!b->json && isatty(STDERR_FILENO))
			fprintf(stderr, "\rround %u/%u", r + 1, b->rounds);
	}
	if (!b->json && isatty(STDERR_FILENO))
		fprintf(stderr, "\r              \r");
	b->pool_after = rsc_loop_counter(b->loop, RSC_CTR_POOL_ALLOCS);
	for (k = 0; k < b->n_v; k++)
		summarize(&b->v[k]);
}

/* ---- report ---- */

static const unsigned sizes[] = { 1, 8, 64, 256 };
#define N_SIZES (sizeof(sizes) / sizeof(sizes[0]))
#define AUDIT_N 64U

static struct variant *find(struct bench *b, enum impl impl, unsigned n,
			    int audit)
{
	unsigned i;

	for (i = 0; i < b->n_v; i++)
		if (b->v[i].impl == impl && b->v[i].n == n && b->v[i].audit == audit &&
		    b->v[i].obs == OBS_NONE)
			return &b->v[i];
	abort();
}

static struct variant *find_obs(struct bench *b, int obs)
{
	unsigned i;

	for (i = 0; i < b->n_v; i++)
		if (b->v[i].obs == obs)
			return &b->v[i];
	abort();
}

/* "sync-64", "liburing-8", "ringscope-256", "audit-released", ... */
static const char *variant_name(const struct variant *v, char *buf, size_t len)
{
	if (v->obs != OBS_NONE)
		snprintf(buf, len, "%s", obs_names[v->obs]);
	else if (v->impl == IMPL_RSC && v->audit >= 0)
		snprintf(buf, len, "audit-%s", audit_names[v->audit]);
	else
		snprintf(buf, len, "%s-%u", impl_names[v->impl], v->n);
	return buf;
}

static bool selected(const struct bench *b, const struct variant *v)
{
	char name[32];
	const char *p = b->only;
	size_t len;

	if (!p)
		return true;
	variant_name(v, name, sizeof(name));
	len = strlen(name);
	while ((p = strstr(p, name))) {
		if ((p == b->only || p[-1] == ',') && (p[len] == ',' || !p[len]))
			return true;
		p += len;
	}
	return false;
}

static void add_variants(struct bench *b)
{
	unsigned i, k = 0;
	int a;

	b->n_v = N_SIZES * 3 + 3 + OBS__COUNT - 1;
	b->v = calloc(b->n_v, sizeof(*b->v));
	if (!b->v)
		die("calloc", -ENOMEM);
	for (i = 0; i < N_SIZES; i++) {
		b->v[k++] = (struct variant){ .impl = IMPL_SYNC, .n = sizes[i], .audit = -1 };
		b->v[k++] = (struct variant){ .impl = IMPL_URING, .n = sizes[i], .audit = -1 };
		b->v[k++] = (struct variant){ .impl = IMPL_RSC, .n = sizes[i], .audit = -1 };
	}
	/* The audit rows carry their own "off" so its ratio compares like with like. */
	for (a = RSC_AUDIT_OFF; a <= RSC_AUDIT_FULL; a++)
		b->v[k++] = (struct variant){ .impl = IMPL_RSC, .n = AUDIT_N, .audit = a };
	for (a = OBS_OFF; a < OBS__COUNT; a++)
		b->v[k++] = (struct variant){ .impl = IMPL_RSC, .n = OBS_N, .audit = -1, .obs = a };
	if (b->only) {
		unsigned kept = 0;

		for (k = 0; k < b->n_v; k++)
			if (selected(b, &b->v[k]))
				b->v[kept++] = b->v[k];
		if (!kept) {
			fprintf(stderr, "ringscope-bench: --only %s matches no variant\n", b->only);
			exit(2);
		}
		b->n_v = kept;
	}
	for (k = 0; k < b->n_v; k++) {
		b->v[k].samples = calloc(b->rounds, sizeof(double));
		if (!b->v[k].samples)
			die("calloc", -ENOMEM);
	}
}

/*
 * Steady state = the ringscope rows with the audit off. FULL allocates its
 * /proc/self/fd bitmaps by design; it is reported, not held to 0.
 */
static void steady_allocs(struct bench *b, unsigned long *allocs,
			  unsigned long long *pairs)
{
	unsigned i;

	*allocs = 0;
	*pairs = 0;
	for (i = 0; i < b->n_v; i++) {
		if (b->v[i].impl != IMPL_RSC || b->v[i].audit > RSC_AUDIT_OFF)
			continue;
		*allocs += b->v[i].allocs;
		*pairs += b->v[i].pairs;
	}
}

static double per_pair(unsigned long allocs, unsigned long long pairs)
{
	return pairs ? (double)allocs / (double)pairs : 0.0;
}

/*
 * Median over rounds of a/b within each round: the two ran seconds apart,
 * so a slow spell of the machine cancels out. A cross-check of the ratio
 * of medians, which is what the floors use.
 */
static double paired_ratio(const struct variant *a, const struct variant *b)
{
	double r[MAX_ROUNDS];
	unsigned i, n = a->n_samples < b->n_samples ? a->n_samples : b->n_samples;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		r[i] = a->samples[i] / b->samples[i];
	qsort(r, n, sizeof(r[0]), cmp_double);
	return n % 2 ? r[n / 2] : (r[n / 2 - 1] + r[n / 2]) / 2;
}

struct floor {
	char what[96];
	double value, limit;
	bool pass;
};

static unsigned make_floors(struct bench *b, struct floor *f)
{
	static const unsigned at[] = { 64, 256 };
	struct variant *off = find(b, IMPL_RSC, AUDIT_N, RSC_AUDIT_OFF);
	struct variant *rel = find(b, IMPL_RSC, AUDIT_N, RSC_AUDIT_RELEASED);
	unsigned long allocs;
	unsigned long long pairs;
	unsigned i, n = 0;

	steady_allocs(b, &allocs, &pairs);
	for (i = 0; i < 2; i++) {
		struct variant *rs = find(b, IMPL_RSC, at[i], -1);
		struct variant *ur = find(b, IMPL_URING, at[i], -1);
		struct variant *sy = find(b, IMPL_SYNC, at[i], -1);

		snprintf(f[n].what, sizeof(f[n].what), "N=%u ringscope/liburing", at[i]);
		f[n].value = rs->median / ur->median;
		f[n].limit = FLOOR_VS_LIBURING;
		n++;
		snprintf(f[n].what, sizeof(f[n].what), "N=%u ringscope/sync", at[i]);
		f[n].value = rs->median / sy->median;
		f[n].limit = FLOOR_VS_SYNC;
		n++;
	}
	snprintf(f[n].what, sizeof(f[n].what), "N=%u audit released/off", AUDIT_N);
	f[n].value = rel->median / off->median;
	f[n].limit = FLOOR_AUDIT;
	n++;
	snprintf(f[n].what, sizeof(f[n].what), "N=%u trace on/off", OBS_N);
	f[n].value = find_obs(b, OBS_TRACE)->median / find_obs(b, OBS_OFF)->median;
	f[n].limit = FLOOR_TRACE;
	n++;
	snprintf(f[n].what, sizeof(f[n].what), "ringscope allocations per pair (steady state, audit off)");
	f[n].value = per_pair(allocs, pairs);
	f[n].limit = 0;
	n++;
	for (i = 0; i < n; i++)
		f[i].pass = f[i].value <= f[i].limit;
	return n;
}

static const char *features_str(int feats)
{
	if ((feats & RSC_FEAT_DEFER_TASKRUN) && (feats & RSC_FEAT_REGISTERED_RING))
		return "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL, ring fd registered";
	if (feats & RSC_FEAT_DEFER_TASKRUN)
		return "SINGLE_ISSUER|DEFER_TASKRUN|SUBMIT_ALL";
	if (feats & RSC_FEAT_COOP_TASKRUN)
		return "COOP_TASKRUN|SUBMIT_ALL";
	return "SUBMIT_ALL or none";
}

static void print_table(struct bench *b, const struct utsname *u)
{
	struct floor f[8];
	unsigned long allocs;
	unsigned long long pairs;
	unsigned i, nf;

	printf("ringscope-bench: ns per open+close pair, median of %u interleaved rounds"
	       " (~%.0f ms per variant per round)\n",
	       b->rounds, b->target_ms);
	printf("  kernel %s, %ld CPUs online, %s, liburing %s, ring %u SQEs / %u CQEs (%s)\n",
	       u->release, sysconf(_SC_NPROCESSORS_ONLN),
	       b->pin ? "pinned" : "not pinned", RSC_BENCH_LIBURING, RING_ENTRIES,
	       RING_ENTRIES * 4, features_str(rsc_loop_features(b->loop)));
	if (b->pin)
		printf("  CPU %d; files: %u in %s\n", b->cpu, N_FILES, b->dir);
	printf("\n%6s %10s %10s %10s %14s %10s\n", "N", "sync", "liburing",
	       "ringscope", "rsc/liburing", "rsc/sync");
	for (i = 0; i < N_SIZES; i++) {
		struct variant *sy = find(b, IMPL_SYNC, sizes[i], -1);
		struct variant *ur = find(b, IMPL_URING, sizes[i], -1);
		struct variant *rs = find(b, IMPL_RSC, sizes[i], -1);

		printf("%6u %10.0f %10.0f %10.0f %14.3f %10.3f\n", sizes[i],
		       sy->median, ur->median, rs->median, rs->median / ur->median,
		       rs->median / sy->median);
	}
	printf("\nspread (p25-p75 ns/pair) and paired ratios (median over rounds of the"
	       " ratio within a round):\n%6s %12s %12s %12s %14s %10s\n", "N", "sync",
	       "liburing", "ringscope", "rsc/liburing", "rsc/sync");
	for (i = 0; i < N_SIZES; i++) {
		struct variant *sy = find(b, IMPL_SYNC, sizes[i], -1);
		struct variant *ur = find(b, IMPL_URING, sizes[i], -1);
		struct variant *rs = find(b, IMPL_RSC, sizes[i], -1);

		printf("%6u %6.0f-%-5.0f %6.0f-%-5.0f %6.0f-%-5.0f %14.3f %10.3f\n", sizes[i],
		       sy->p25, sy->p75, ur->p25, ur->p75, rs->p25, rs->p75,
		       paired_ratio(rs, ur), paired_ratio(rs, sy));
	}
	printf("\naudit, ringscope N=%u:\n%10s %10s %12s %14s\n", AUDIT_N, "level",
	       "ns/pair", "p25-p75", "ratio to off");
	for (i = RSC_AUDIT_OFF; i <= RSC_AUDIT_FULL; i++) {
		struct variant *v = find(b, IMPL_RSC, AUDIT_N, (int)i);
		struct variant *off = find(b, IMPL_RSC, AUDIT_N, RSC_AUDIT_OFF);

		printf("%10s %10.0f %6.0f-%-5.0f %14.3f\n", audit_names[i], v->median,
		       v->p25, v->p75, v->median / off->median);
	}
	printf("\nobservability, ringscope N=%u:\n%12s %10s %12s %14s %10s\n", OBS_N, "row",
	       "ns/pair", "p25-p75", "ratio to off", "paired");
	for (i = OBS_OFF; i < OBS__COUNT; i++) {
		struct variant *v = find_obs(b, (int)i), *off = find_obs(b, OBS_OFF);

		printf("%12s %10.0f %6.0f-%-5.0f %14.3f %10.3f\n", obs_names[i], v->median,
		       v->p25, v->p75, v->median / off->median, paired_ratio(v, off));
	}
	steady_allocs(b, &allocs, &pairs);
	printf("\nallocations (malloc/calloc/realloc/memalign calls) during the measured samples:\n");
	printf("  ringscope, audit off (N=1,8,64,256 and the audit-off row): %lu over %llu pairs"
	       " = %.4f per pair\n", allocs, pairs, per_pair(allocs, pairs));
	for (i = RSC_AUDIT_RELEASED; i <= RSC_AUDIT_FULL; i++) {
		struct variant *v = find(b, IMPL_RSC, AUDIT_N, (int)i);

		printf("  ringscope, audit %s (N=%u): %lu over %llu pairs = %.4f per pair\n",
		       audit_names[i], AUDIT_N, v->allocs, v->pairs,
		       per_pair(v->allocs, v->pairs));
	}
	allocs = 0;
	pairs = 0;
	for (i = 0; i < b->n_v; i++) {
		if (b->v[i].impl != IMPL_RSC) {
			allocs += b->v[i].allocs;
			pairs += b->v[i].pairs;
		}
	}
	printf("  sync and liburing baselines: %lu over %llu pairs\n", allocs, pairs);
	printf("  RSC_CTR_POOL_ALLOCS: %lld before the measured rounds, %lld after\n\n",
	       b->pool_before, b->pool_after);
	nf = make_floors(b, f);
	for (i = 0; i < nf; i++) {
		if (f[i].limit == 0)
			printf("%s  %s: %.4f (want 0)\n", f[i].pass ? "PASS" : "FAIL",
			       f[i].what, f[i].value);
		else
			printf("%s  %s: %.3f (floor <= %.2f)\n",
			       f[i].pass ? "PASS" : "FAIL", f[i].what, f[i].value,
			       f[i].limit);
	}
}

static void print_json(struct bench *b, const struct utsname *u)
{
	struct floor f[8];
	unsigned long allocs;
	unsigned long long pairs;
	unsigned i, k, nf;

	printf("{\n  \"rounds\": %u,\n  \"target_ms\": %.1f,\n", b->rounds, b->target_ms);
	printf("  \"kernel\": \"%s\",\n  \"cpus_online\": %ld,\n  \"pinned_cpu\": %d,\n",
	       u->release, sysconf(_SC_NPROCESSORS_ONLN), b->pin ? b->cpu : -1);
	printf("  \"liburing\": \"%s\",\n  \"ring_entries\": %u,\n  \"features\": \"%s\",\n",
	       RSC_BENCH_LIBURING, RING_ENTRIES, features_str(rsc_loop_features(b->loop)));
	printf("  \"variants\": [\n");
	for (i = 0; i < b->n_v; i++) {
		struct variant *v = &b->v[i];

		printf("    {\"impl\": \"%s\", \"n\": %u, \"audit\": \"%s\", \"obs\": \"%s\", \"reps\": %u,"
		       " \"median_ns\": %.1f, \"p25_ns\": %.1f, \"p75_ns\": %.1f, \"min_ns\": %.1f,"
		       " \"allocs\": %lu, \"pairs\": %llu, \"samples_ns\": [",
		       impl_names[v->impl], v->n,
		       v->impl != IMPL_RSC ? "n/a" : audit_names[v->audit < 0 ? 0 : v->audit],
		       obs_names[v->obs], v->reps, v->median, v->p25, v->p75, v->min, v->allocs, v->pairs);
		for (k = 0; k < v->n_samples; k++)
			printf("%s%.1f", k ? ", " : "", v->samples[k]);
		printf("]}%s\n", i + 1 < b->n_v ? "," : "");
	}
	printf("  ],\n  \"ratios\": [\n");
	for (i = 0; i < N_SIZES; i++) {
		struct variant *sy = find(b, IMPL_SYNC, sizes[i], -1);
		struct variant *ur = find(b, IMPL_URING, sizes[i], -1);
		struct variant *rs = find(b, IMPL_RSC, sizes[i], -1);

		printf("    {\"n\": %u, \"ringscope_over_liburing\": %.4f,"
		       " \"ringscope_over_sync\": %.4f, \"paired_over_liburing\": %.4f,"
		       " \"paired_over_sync\": %.4f}%s\n",
		       sizes[i], rs->median / ur->median, rs->median / sy->median,
		       paired_ratio(rs, ur), paired_ratio(rs, sy),
		       i + 1 < N_SIZES ? "," : "");
	}
	printf("  ],\n  \"audit_over_off\": {");
	for (i = RSC_AUDIT_OFF; i <= RSC_AUDIT_FULL; i++)
		printf("%s\"%s\": %.4f", i ? ", " : "", audit_names[i],
		       find(b, IMPL_RSC, AUDIT_N, (int)i)->median /
			       find(b, IMPL_RSC, AUDIT_N, RSC_AUDIT_OFF)->median);
	printf("},\n  \"observability_over_off\": {");
	for (i = OBS_OFF; i < OBS__COUNT; i++)
		printf("%s\"%s\": %.4f", i > OBS_OFF ? ", " : "", obs_names[i],
		       find_obs(b, (int)i)->median / find_obs(b, OBS_OFF)->median);
	steady_allocs(b, &allocs, &pairs);
	printf("},\n  \"allocations\": {\"steady_calls\": %lu, \"steady_pairs\": %llu,"
	       " \"steady_per_pair\": %.6f, \"pool_allocs_before\": %lld,"
	       " \"pool_allocs_after\": %lld},\n",
	       allocs, pairs, per_pair(allocs, pairs), b->pool_before, b->pool_after);
	nf = make_floors(b, f);
	printf("  \"floors\": [\n");
	for (i = 0; i < nf; i++)
		printf("    {\"what\": \"%s\", \"value\": %.4f, \"limit\": %.2f,"
		       " \"pass\": %s}%s\n",
		       f[i].what, f[i].value, f[i].limit, f[i].pass ? "true" : "false",
		       i + 1 < nf ? "," : "");
	printf("  ]\n}\n");
}

/* --only: no side-by-side table, just what ran (for profilers). */
static void print_only(struct bench *b)
{
	char name[32];
	unsigned i;

	printf("%-16s %10s %14s %10s %12s\n", "variant", "ns/pair", "p25-p75", "allocs",
	       "pairs");
	for (i = 0; i < b->n_v; i++) {
		struct variant *v = &b->v[i];

		printf("%-16s %10.0f %7.0f-%-6.0f %10lu %12llu\n",
		       variant_name(v, name, sizeof(name)), v->median, v->p25, v->p75,
		       v->allocs, v->pairs);
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: ringscope-bench [--rounds N] [--quick] [--json] [--cpu N | --no-pin]\n"
		"  --rounds N   measured rounds (default %u; odd numbers give a true median)\n"
		"  --quick      %u rounds of ~%.0f ms per variant: a smoke run, not a result\n"
		"  --json       print the results as JSON instead of a table\n"
		"  --cpu N      pin to CPU N (default: the highest CPU allowed)\n"
		"  --no-pin     do not pin\n"
		"  --only LIST  run only these variants, e.g. ringscope-64,liburing-64\n"
		"               (sync-N, liburing-N, ringscope-N for N in 1,8,64,256;\n"
		"               audit-off, audit-released, audit-full): for profiling\n",
		DEFAULT_ROUNDS, QUICK_ROUNDS, QUICK_MS);
}

static void parse_args(struct bench *b, int argc, char **argv)
{
	bool rounds_set = false;
	int i;

	b->rounds = DEFAULT_ROUNDS;
	b->target_ms = TARGET_MS;
	b->pin = true;
	b->cpu = -1;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		char *end;

		if (!strcmp(a, "--quick")) {
			b->quick = true;
		} else if (!strcmp(a, "--json")) {
			b->json = true;
		} else if (!strcmp(a, "--no-pin")) {
			b->pin = false;
		} else if (!strcmp(a, "--only") && i + 1 < argc) {
			b->only = argv[++i];
		} else if ((!strcmp(a, "--rounds") || !strcmp(a, "--cpu")) && i + 1 < argc) {
			long val = strtol(argv[++i], &end, 10);

			if (*end || end == argv[i] || val < (a[2] == 'r' ? 1 : 0) ||
			    val > (a[2] == 'r' ? (long)MAX_ROUNDS : CPU_SETSIZE - 1)) {
				fprintf(stderr, "ringscope-bench: bad value for %s: %s\n", a, argv[i]);
				exit(2);
			}
			if (a[2] == 'r') {
				b->rounds = (unsigned)val;
				rounds_set = true;
			} else {
				b->cpu = (int)val;
			}
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		} else {
			usage(stderr);
			exit(2);
		}
	}
	if (b->quick) {
		b->target_ms = QUICK_MS;
		if (!rounds_set)
			b->rounds = QUICK_ROUNDS;
	}
}

int main(int argc, char **argv)
{
	static struct bench bench = { .dirfd = -1 };
	struct bench *b = &bench;
	struct utsname u;
	int ret;

	parse_args(b, argc, argv);
	if (uname(&u) < 0)
		die("uname", -errno);
	raise_nofile();
	pin_cpu(b);
	make_files(b);
	uring_setup(b);
	ret = rsc_loop_new(&b->loop, RING_ENTRIES, 0);
	if (ret < 0)
		die("rsc_loop_new", ret);
	if ((rsc_loop_features(b->loop) & RSC_FEAT_DEFER_TASKRUN) !=
		    ((b->ring_setup_flags & IORING_SETUP_DEFER_TASKRUN) ? RSC_FEAT_DEFER_TASKRUN : 0) ||
	    !(rsc_loop_features(b->loop) & RSC_FEAT_REGISTERED_RING) != !b->ring_registered)
		fprintf(stderr, "ringscope-bench: warning: the liburing baseline ring and "
				"ringscope's ring were set up differently\n");
	add_variants(b);
	measure(b);
	if (b->only)
		print_only(b);
	else if (b->json)
		print_json(b, &u);
	else
		print_table(b, &u);
	ret = rsc_loop_close(b->loop);
	if (ret < 0)
		die("rsc_loop_close", ret);
	io_uring_queue_exit(&b->ring);
	return 0; /* a benchmark: the floors are reported, not enforced */
}
