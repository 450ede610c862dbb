/* SPDX-License-Identifier: MIT */
/*
 * A program that uses ringscope as any other would: built from the installed
 * copy with pkg-config alone, and without liburing's headers in reach.
 */
#define _POSIX_C_SOURCE 200809L /* AT_FDCWD under -std=c99 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringscope.h>

static void check(int ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "consumer: %s (last error: %s)\n", what, rsc_last_error());
	exit(1);
}

/* One scope around one file, closed cleanly: the whole life cycle. */
static void scope_cycle(void)
{
	struct rsc_loop *loop;
	struct rsc_scope *scope;
	struct rsc_entry *entry;

	check(rsc_loop_new(&loop, 0, 0) == 0, "rsc_loop_new");
	check(rsc_scope_open(loop, NULL, "consumer", &scope) == 0, "rsc_scope_open");
	check(rsc_open(scope, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &entry) == 0, "rsc_open");
	check(rsc_entry_wait(entry) >= 0, "rsc_entry_wait");
	check(rsc_scope_close_wait(scope, NULL) == 0, "rsc_scope_close_wait");
	check(rsc_loop_close(loop) == 0, "rsc_loop_close");
}

/* Every int has a text and a name, never NULL or empty (rsc_strerror(3)). */
static void error_texts(void)
{
	static const int edges[] = { INT_MIN, INT_MIN + 1, -4096, 4096, INT_MAX };
	unsigned i;
	int e;

	for (e = -4200; e <= 4200; e++) {
		check(rsc_strerror(e) && rsc_strerror(e)[0], "rsc_strerror of a small value");
		check(rsc_err_name(e) && rsc_err_name(e)[0], "rsc_err_name of a small value");
	}
	for (i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
		check(strcmp(rsc_strerror(edges[i]), "Unknown error") == 0, "rsc_strerror of an edge");
		check(strcmp(rsc_err_name(edges[i]), "E?") == 0, "rsc_err_name of an edge");
	}
	check(strcmp(rsc_err_name(-ENOENT), "ENOENT") == 0, "rsc_err_name(-ENOENT)");
	check(strcmp(rsc_err_name(ENOENT), "ENOENT") == 0, "rsc_err_name(ENOENT)");
	check(strcmp(rsc_err_name(0), "OK") == 0, "rsc_err_name(0)");
	check(strcmp(rsc_strerror(0), "Success") == 0, "rsc_strerror(0)");
	for (i = 0; i < RSC_CTR_COUNT; i++)
		check(rsc_counter_name((enum rsc_counter)i) != NULL, "rsc_counter_name of a counter");
	check(rsc_counter_name(RSC_CTR_COUNT) == NULL, "rsc_counter_name(RSC_CTR_COUNT)");
	check(rsc_counter_name((enum rsc_counter)-1) == NULL, "rsc_counter_name(-1)");
	check(rsc_counter_name((enum rsc_counter)INT_MAX) == NULL, "rsc_counter_name(INT_MAX)");
}

/* Another thread starts with no text and its failures never reach ours. */
static void *other_thread(void *arg)
{
	struct rsc_scope *scope;

	(void)arg;
	if (rsc_last_error()[0])
		return "a new thread inherited a last error";
	if (rsc_scope_open(NULL, NULL, "x", &scope) != -EINVAL || !rsc_last_error()[0])
		return "a failure on the thread left no text";
	return NULL;
}

static void last_error_per_thread(void)
{
	struct rsc_scope *scope;
	char mine[256];
	pthread_t t;
	void *res;

	check(rsc_scope_open(NULL, NULL, "consumer", &scope) == -EINVAL, "rsc_scope_open(NULL)");
	check(rsc_last_error()[0] != '\0', "rsc_scope_open(NULL) left no text");
	snprintf(mine, sizeof(mine), "%s", rsc_last_error());
	check(pthread_create(&t, NULL, other_thread, NULL) == 0, "pthread_create");
	check(pthread_join(t, &res) == 0, "pthread_join");
	check(res == NULL, res ? (const char *)res : "");
	check(strcmp(mine, rsc_last_error()) == 0, "another thread's failure changed this thread's text");
}

int main(void)
{
	scope_cycle();
	error_texts();
	last_error_per_thread();
	puts("consumer: ok");
	return 0;
}
