/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ringscope.h"
#include "program.h"

/*
 * The soak: random scope programs (tests/soak/program.c) for a bounded time,
 * each checked by the oracle, and the heap checked after each: the number of
 * live allocations must come back to where it was before the program.
 *
 *   ringscope-soak [-t SECONDS] [-s SEED] [-k KINDS] [-p INDEX] [-o FILE] [-r FILE]
 *   SOAK_SECONDS (default 60) and SOAK_SEED (default: time) do the same;
 *   -k io,handover,post,own,shared,accept,chain,audit,conn,hooks,alloc,missing,drop,fork (or PROG_KINDS) keeps those kinds
 *   of op beside the first 20: the bytes of the others become accepts when
 *   "accept" is one of them, and do nothing otherwise.
 *   -p INDEX runs program INDEX of SEED alone (PROG_VERBOSE=1 to see it);
 *   -o FILE writes that program's bytes (a fuzzer input); -r FILE runs one.
 *   PROG_VERBOSE_FROM=INDEX prints every op and event from program INDEX on,
 *   for a failure that shows only after the programs before it (a token, a
 *   descriptor number, a loop's ring left as they were).
 */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_COUNT_ALLOCS 0 /* ASan (LeakSanitizer checks at exit) or TSan owns malloc */
#else
#define SOAK_COUNT_ALLOCS 1
#endif

#if SOAK_COUNT_ALLOCS
/*
 * Live allocations, by interposing malloc and friends (as bench/bench.c
 * does: the executable comes first in symbol lookup, so libringscope's and
 * liburing's calls land here too). Single-threaded.
 */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
extern void __libc_free(void *p);

static long long live_blocks;

#define SOAK_EXPORT __attribute__((visibility("default")))
SOAK_EXPORT void *malloc(size_t size);
SOAK_EXPORT void *calloc(size_t n, size_t size);
SOAK_EXPORT void *realloc(void *p, size_t size);
SOAK_EXPORT void free(void *p);
SOAK_EXPORT int posix_memalign(void **pp, size_t align, size_t size);
SOAK_EXPORT void *aligned_alloc(size_t align, size_t size);
SOAK_EXPORT void *memalign(size_t align, size_t size);

void *malloc(size_t size)
{
	void *p = __libc_malloc(size);

	live_blocks += p != NULL;
	return p;
}

void *calloc(size_t n, size_t size)
{
	void *p = __libc_calloc(n, size);

	live_blocks += p != NULL;
	return p;
}

void *realloc(void *old, size_t size)
{
	void *p;

	if (!old)
		return malloc(size);
	if (!size) {
		free(old);
		return NULL;
	}
	p = __libc_realloc(old, size);
	return p; /* one block before, one after (or the old one on failure) */
}

void free(void *p)
{
	live_blocks -= p != NULL;
	__libc_free(p);
}

int posix_memalign(void **pp, size_t align, size_t size)
{
	void *p = __libc_memalign(align, size);

	if (!p)
		return ENOMEM;
	live_blocks++;
	*pp = p;
	return 0;
}

void *aligned_alloc(size_t align, size_t size)
{
	void *p = __libc_memalign(align, size);

	live_blocks += p != NULL;
	return p;
}

void *memalign(size_t align, size_t size)
{
	return aligned_alloc(align, size);
}
#endif

/* splitmix64: a program is a pure function of (seed, index). */
static uint64_t mix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#define PROG_MAX 1024
#define PROG_TIMEOUT 30 /* seconds: one program takes milliseconds */

static size_t make_program(uint64_t seed, uint64_t index, uint8_t *buf)
{
	uint64_t x = seed ^ (index * 0xd1342543de82ef95ULL);
	size_t len, i;

	len = 16 + mix(&x) % (PROG_MAX - 16);
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)mix(&x);
	return len;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_file(const char *path, const uint8_t *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(buf, 1, len, f) != len) {
		if (f)
			fclose(f);
		return -1;
	}
	return fclose(f);
}

/*
 * A program that hangs or crashes is a failure too: say which one (the
 * message is made before the program runs; a handler may only write).
 */
static char hang_msg[256], crash_msg[256];
static size_t hang_len, crash_len;

static void on_alarm(int sig)
{
	(void)sig;
	if (write(STDOUT_FILENO, hang_msg, hang_len) < 0)
		_exit(3);
	_exit(1);
}

static void on_crash(int sig)
{
	if (write(STDOUT_FILENO, crash_msg, crash_len) < 0)
		_exit(3);
	signal(sig, SIG_DFL);
	raise(sig);
}

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>

/* A sanitizer's report ends the process without a signal: name the program too. */
static void on_sanitizer_death(void)
{
	if (write(STDOUT_FILENO, crash_msg, crash_len) < 0)
		_exit(3);
}
#endif

static void arm_watchdog(uint64_t seed, uint64_t index)
{
	int n;

	n = snprintf(hang_msg, sizeof(hang_msg),
		     "soak: HANG: program %" PRIu64 " of seed 0x%016" PRIx64
		     " ran for %d s (replay: PROG_VERBOSE=1 ringscope-soak -s 0x%016" PRIx64
		     " -p %" PRIu64 ")\n", index, seed, PROG_TIMEOUT, seed, index);
	hang_len = n > 0 ? (size_t)n : 0;
	n = snprintf(crash_msg, sizeof(crash_msg),
		     "soak: CRASH in program %" PRIu64 " of seed 0x%016" PRIx64
		     " (replay: PROG_VERBOSE=1 ringscope-soak -s 0x%016" PRIx64
		     " -p %" PRIu64 ")\n", index, seed, seed, index);
	crash_len = n > 0 ? (size_t)n : 0;
	alarm(PROG_TIMEOUT);
}

static void usage(void)
{
	fprintf(stderr, "usage: ringscope-soak [-t SECONDS] [-s SEED] [-k KINDS] [-p INDEX [-o FILE]] [-r FILE]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static uint8_t buf[PROG_MAX];
	struct prog_env env;
	struct prog_stats st;
	const char *replay = NULL, *out = NULL;
	double seconds = 60, t0, elapsed;
	uint64_t seed, index, only = UINT64_MAX, verbose_from = UINT64_MAX;
	long long base = 0;
	char why[1024];
	size_t len;
	int opt, ret, failed = 0;

	seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	if (getenv("SOAK_SECONDS") && getenv("SOAK_SECONDS")[0])
		seconds = atof(getenv("SOAK_SECONDS"));
	if (getenv("SOAK_SEED") && getenv("SOAK_SEED")[0])
		seed = strtoull(getenv("SOAK_SEED"), NULL, 0);
	if (getenv("PROG_VERBOSE_FROM") && getenv("PROG_VERBOSE_FROM")[0])
		verbose_from = strtoull(getenv("PROG_VERBOSE_FROM"), NULL, 0);
	while ((opt = getopt(argc, argv, "t:s:k:p:o:r:")) != -1) {
		switch (opt) {
		case 'k': /* read by prog_env_init, as the fuzzer reads it */
			setenv("PROG_KINDS", optarg, 1);
			break;
		case 't':
			seconds = atof(optarg);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'p':
			only = strtoull(optarg, NULL, 0);
			break;
		case 'o':
			out = optarg;
			break;
		case 'r':
			replay = optarg;
			break;
		default:
			usage();
		}
	}
	/* First, so that a failure can always be replayed. */
	printf("soak: seed 0x%016" PRIx64 " (replay: SOAK_SEED=0x%016" PRIx64 "), %.0f s%s%s\n",
	       seed, seed, seconds, getenv("PROG_KINDS") && *getenv("PROG_KINDS") ? ", kinds " : "",
	       getenv("PROG_KINDS") && *getenv("PROG_KINDS") ? getenv("PROG_KINDS") : "");
	fflush(stdout);
	ret = prog_env_init(&env);
	if (ret == -ENOSYS) {
		printf("SKIP soak: no io_uring: %s\n", rsc_last_error());
		return 77;
	}
	if (ret == -EINVAL)
		return 2; /* PROG_KINDS named no kind: said why */
	if (ret < 0) {
		fprintf(stderr, "soak: setup: %s\n", strerror(-ret));
		return 99;
	}
	if (!env.have_faults)
		printf("soak: note: this build has no fault injection (configure --enable-fault-injection): fault rules are skipped\n");
	if (!env.have_socket)
		printf("soak: note: kernel lacks IORING_OP_SOCKET: socket acquires are skipped\n");
	if (!SOAK_COUNT_ALLOCS)
		printf("soak: note: sanitizer build: heap checked by LeakSanitizer at exit, not per program\n");
	memset(&st, 0, sizeof(st));
	signal(SIGALRM, on_alarm);
	signal(SIGABRT, on_crash);
	signal(SIGSEGV, on_crash);
	signal(SIGBUS, on_crash);
#if defined(__SANITIZE_ADDRESS__)
	__sanitizer_set_death_callback(on_sanitizer_death);
#endif

	if (replay) {
		FILE *f = fopen(replay, "rb");

		if (!f) {
			perror(replay);
			return 2;
		}
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		arm_watchdog(seed, 0);
		snprintf(hang_msg, sizeof(hang_msg), "soak: HANG: %s ran for %d s\n", replay, PROG_TIMEOUT);
		hang_len = strlen(hang_msg);
		ret = prog_run(&env, buf, len, &st, why, sizeof(why));
		printf("soak: %s: %s%s\n", replay, ret ? "VIOLATION: " : "ok", ret ? why : "");
		prog_env_fini(&env);
		return ret ? 1 : 0;
	}
	if (only != UINT64_MAX) {
		len = make_program(seed, only, buf);
		if (out && write_file(out, buf, len) < 0)
			perror(out);
		arm_watchdog(seed, only);
		ret = prog_run(&env, buf, len, &st, why, sizeof(why));
		printf("soak: program %" PRIu64 ": %s%s\n", only, ret ? "VIOLATION: " : "ok",
		       ret ? why : "");
		prog_env_fini(&env);
		return ret ? 1 : 0;
	}

	t0 = now();
	for (index = 0; (elapsed = now() - t0) < seconds; index++) {
#if SOAK_COUNT_ALLOCS
		long long before = live_blocks;
#endif
		len = make_program(seed, index, buf);
		if (verbose_from != UINT64_MAX)
			env.verbose = index >= verbose_from;
		arm_watchdog(seed, index);
		ret = prog_run(&env, buf, len, &st, why, sizeof(why));
#if SOAK_COUNT_ALLOCS
		/* The first programs may settle one-time allocations (stdio...). */
		if (index == 8)
			base = live_blocks;
		if (!ret && index > 8 && live_blocks != before) {
			snprintf(why, sizeof(why),
				 "%lld live allocations before the program, %lld after it",
				 before, live_blocks);
			st.leaks += (unsigned long long)llabs(live_blocks - before);
			ret = -1;
		}
#endif
		if (ret) {
			char path[64];

			snprintf(path, sizeof(path), "soak-fail-%016" PRIx64 "-%" PRIu64 ".bin",
				 seed, index);
			write_file(path, buf, len);
			printf("soak: VIOLATION in program %" PRIu64 " of seed 0x%016" PRIx64 ": %s\n",
			       index, seed, why);
			printf("soak: replay: PROG_VERBOSE=1 ringscope-soak -s 0x%016" PRIx64 " -p %" PRIu64
			       " (its bytes: %s, a fuzzer input); if that passes, PROG_VERBOSE_FROM=%" PRIu64
			       " ringscope-soak -s 0x%016" PRIx64 "\n", seed, index, path, index, seed);
			failed = 1;
			break;
		}
	}
	alarm(0);
	elapsed = now() - t0;
	printf("soak: %s after %.1f s\n", failed ? "FAILED" : "passed", elapsed);
	prog_print_stats(&st, elapsed, stdout);
#if SOAK_COUNT_ALLOCS
	printf("  heap:             %lld live allocations after program 8, %lld at the end\n",
	       base, live_blocks);
	{
		struct mallinfo2 mi = mallinfo2();

		printf("  heap in use:      %zu bytes at the end (mallinfo2)\n", mi.uordblks + mi.hblkhd);
	}
#else
	(void)base;
#endif
	prog_env_fini(&env);
	return failed || st.leaks ? 1 : 0;
}
