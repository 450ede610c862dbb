/* SPDX-License-Identifier: MIT */
/*
 * The host of tests/consumer/plugin.c: it does not link ringscope; two
 * plugins that do are loaded, each runs a loop (both alive at once, each
 * called from inside the other's callbacks), and both are unloaded, round
 * after round. Nothing may crash at dlclose or at a
 * thread's exit afterwards, no descriptor and no heap may stay behind, and
 * libringscope itself must leave the process with its last user.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 20
/* Heap the second half of the rounds may keep: none is ringscope's (a round
 * leaked 64 KiB); glibc's own (thread stacks, TLS) has settled by then. */
#define HEAP_SLACK (8 * 1024)
#define POLLABLE (1U << 1) /* RSC_LOOP_POLLABLE: the host has no header of ringscope's */
#define DIRECT	 (1U << 2) /* RSC_LOOP_DIRECT */

struct plugin {
	void *h;
	int (*start)(unsigned flags, const char *trace);
	int (*stop)(void);
	const char *(*fail)(void);
	int (*cycle)(void);
	int (*nested)(int (*other)(void));
	void *(*scope)(void);
	int (*scope_state)(void *h);
};

static void die(const char *what, const char *why)
{
	fprintf(stderr, "plugin_host: %s: %s\n", what, why ? why : "");
	exit(1);
}

static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		die("opendir /proc/self/fd", NULL);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Is a libringscope mapped in this process? */
static int ringscope_mapped(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	int found = 0;

	if (!f)
		die("fopen /proc/self/maps", NULL);
	while (fgets(line, sizeof(line), f))
		found |= strstr(line, "libringscope") != NULL;
	fclose(f);
	return found;
}

/* Heap in use, as glibc counts it (0 under a sanitizer's allocator). */
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static void load(struct plugin *p, const char *dir, const char *name, int mode)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	p->h = dlopen(path, mode);
	if (!p->h)
		die("dlopen", dlerror());
	*(void **)&p->start = dlsym(p->h, "plugin_start");
	*(void **)&p->stop = dlsym(p->h, "plugin_stop");
	*(void **)&p->fail = dlsym(p->h, "plugin_fail");
	*(void **)&p->cycle = dlsym(p->h, "plugin_cycle");
	*(void **)&p->nested = dlsym(p->h, "plugin_nested");
	*(void **)&p->scope = dlsym(p->h, "plugin_scope");
	*(void **)&p->scope_state = dlsym(p->h, "plugin_scope_state");
	if (!p->start || !p->stop || !p->fail || !p->cycle || !p->nested || !p->scope ||
	    !p->scope_state)
		die("dlsym", name);
}

/* The version nodes a program can ask for by name (rsc_audit_describe_fd(3):
 * "look it up with dlsym(3) or dlvsym(3)"), on the copy the plugins loaded. */
static void versions(void)
{
	void *rs = dlopen("libringscope.so.0", RTLD_NOW | RTLD_NOLOAD);

	if (!rs)
		die("dlopen libringscope.so.0 (RTLD_NOLOAD)", dlerror());
	if (!dlvsym(rs, "rsc_loop_new", "RINGSCOPE_0.1") ||
	    !dlvsym(rs, "rsc_counter_name", "RINGSCOPE_0.1") ||
	    !dlvsym(rs, "rsc_audit_describe_fd", "RINGSCOPE_TOOLS_0.1") ||
	    !dlvsym(rs, "rsc_fault_set", "RINGSCOPE_TOOLS_0.1"))
		die("dlvsym", "a function is missing from its version node");
	if (dlvsym(rs, "rsc_fault_set", "RINGSCOPE_0.1") ||
	    dlvsym(rs, "rsc_audit_describe_fd", "RINGSCOPE_0.1"))
		die("dlvsym", "a tools function is in the stable node");
	dlclose(rs);
}

/* A thread that failed a call (its last error is set), then outlives the library. */
static pthread_barrier_t failed, unloaded;

static void *failer(void *arg)
{
	const char *(*fail)(void) = (const char *(*)(void))arg;
	const char *text = fail();

	if (!text || !text[0])
		die("plugin_fail", "no thread-local last error");
	pthread_barrier_wait(&failed);
	pthread_barrier_wait(&unloaded);
	return NULL; /* its thread-locals are freed now, after their library */
}

/* The library's fork handler (ringscope(7), FORK) left with it: a fork now calls no unmapped code. */
static void fork_after_unload(void)
{
	int st;
	pid_t pid = fork();

	if (pid < 0)
		die("fork", strerror(errno));
	if (pid == 0)
		_exit(0);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("fork after dlclose", "the child did not exit cleanly");
}

int main(void)
{
	const char *dir = getenv("CONSUMER_PLUGINS");
	char trace[4096];
	struct plugin a, b;
	int before, round, ida, idb;
	void *kept = NULL;
	size_t heap_at_half = 0;
	pthread_t t;

	if (!dir)
		die("CONSUMER_PLUGINS", "not set (the directory of plugin_a.so)");
	snprintf(trace, sizeof(trace), "/tmp/rsc-plugin-trace.%d.json", (int)getpid());
	before = fd_count();
	for (round = 0; round < ROUNDS; round++) {
		/* Private, or in the global scope (ringscope's symbols then too). */
		load(&a, dir, "plugin_a.so", RTLD_NOW | (round % 4 < 2 ? RTLD_LOCAL : RTLD_GLOBAL));
		load(&b, dir, "plugin_b.so", RTLD_LAZY | RTLD_LOCAL);
		if ((ida = a.start(round % 2 ? POLLABLE : DIRECT, round % 3 ? NULL : trace)) < 0)
			die("plugin a: start", strerror(-ida));
		if ((idb = b.start(round % 2 ? DIRECT : POLLABLE, NULL)) < 0)
			die("plugin b: start", strerror(-idb));
		if (ida == idb)
			die("two loops", "the same rsc_loop_id");
		/* The last round's scope, kept across the unload (ringscope(7), Libraries
		 * and plugins): it names nothing in the library loaded again. */
		if (kept && (a.scope() == kept || a.scope_state(kept) >= 0))
			die("a handle kept across dlclose and dlopen", "names a scope of the new copy");
		kept = a.scope();
		if (round == 0)
			versions();
		/* Each library's synchronous call from inside the other's callback. */
		if ((ida = a.nested(b.cycle)) != 0 || (idb = b.nested(a.cycle)) != 0)
			die("one plugin's loop run inside the other's callback",
			    strerror(-(ida ? ida : idb)));
		pthread_barrier_init(&failed, NULL, 2);
		pthread_barrier_init(&unloaded, NULL, 2);
		if (pthread_create(&t, NULL, failer, (void *)a.fail) != 0)
			die("pthread_create", NULL);
		pthread_barrier_wait(&failed);
		if ((ida = a.stop()) != 0)
			die("plugin a: stop", strerror(-ida));
		if ((idb = b.stop()) != 0)
			die("plugin b: stop", strerror(-idb));
		if (dlclose(a.h) != 0 || dlclose(b.h) != 0)
			die("dlclose", dlerror());
		pthread_barrier_wait(&unloaded);
		pthread_join(t, NULL);
		pthread_barrier_destroy(&failed);
		pthread_barrier_destroy(&unloaded);
		if (ringscope_mapped())
			die("dlclose", "libringscope is still mapped after its last user left");
		fork_after_unload();
		if (fd_count() != before) {
			fprintf(stderr, "plugin_host: round %d: %d descriptors open, %d before\n", round,
				fd_count(), before);
			exit(1);
		}
		if (round == ROUNDS / 2 - 1)
			heap_at_half = heap_in_use();
	}
	if (heap_in_use() > heap_at_half + HEAP_SLACK) {
		fprintf(stderr, "plugin_host: %zu bytes of heap lost over %d loads and unloads\n",
			heap_in_use() - heap_at_half, ROUNDS / 2);
		exit(1);
	}
	unlink(trace);
	printf("plugin_host: %d rounds of two plugins, each with a loop: unloaded, no descriptor left\n",
	       ROUNDS);
	return 0;
}
