/* SPDX-License-Identifier: MIT */
/*
 * A library that uses ringscope inside (the plugin pattern): the host
 * dlopen()s it, runs a loop through it and dlclose()s it. Built twice
 * (PLUGIN_NAME "a" and "b") so that two libraries each own a loop.
 */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include <ringscope.h>

#define PLUGIN_API __attribute__((visibility("default")))

/* What the host finds with dlsym(). */
PLUGIN_API int plugin_start(unsigned flags, const char *trace);
PLUGIN_API int plugin_stop(void);
PLUGIN_API const char *plugin_fail(void);
PLUGIN_API int plugin_cycle(void);
PLUGIN_API int plugin_nested(int (*other)(void));
PLUGIN_API void *plugin_scope(void);
PLUGIN_API int plugin_scope_state(void *h);

static struct rsc_loop *loop;
static struct rsc_scope *scope;
static int posted;

static void on_post(struct rsc_loop *l, void *arg)
{
	(void)l;
	*(int *)arg = 1;
}

static void *post_from_thread(void *arg)
{
	(void)arg;
	return (void *)(long)rsc_loop_post(loop, on_post, &posted);
}

/* A loop with everything that holds a descriptor: a direct table, the full
 * audit (/proc/self/fd), a trace file, the waker of posts, files and a pipe. */
PLUGIN_API int plugin_start(unsigned flags, const char *trace)
{
	struct rsc_entry *file, *adopted;
	int pipefd[2], ret;
	pthread_t t;
	void *res;

	posted = 0;
	if ((ret = rsc_loop_new(&loop, 0, flags)) < 0)
		return ret;
	if ((ret = rsc_loop_set_audit(loop, RSC_AUDIT_FULL)) < 0 ||
	    (trace && (ret = rsc_loop_trace_file(loop, trace)) < 0) ||
	    (ret = rsc_scope_open(loop, NULL, "plugin " PLUGIN_NAME, &scope)) < 0 ||
	    (ret = rsc_open(scope, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &file)) < 0 ||
	    (ret = rsc_entry_wait(file)) < 0)
		return ret;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	close(pipefd[1]);
	if ((ret = rsc_adopt(scope, pipefd[0], 0, &adopted)) < 0) {
		close(pipefd[0]);
		return ret;
	}
	if (pthread_create(&t, NULL, post_from_thread, NULL) != 0 || pthread_join(t, &res) != 0)
		return -EAGAIN;
	if ((long)res < 0)
		return (int)(long)res;
	while (!posted)
		if ((ret = rsc_loop_run(loop, RSC_RUN_ONCE)) < 0)
			return ret;
	return rsc_loop_id(loop);
}

PLUGIN_API int plugin_stop(void)
{
	int ret = rsc_scope_close_wait(scope, NULL);

	if (ret == 0 && rsc_audit_count(loop) != 0)
		ret = -EUCLEAN; /* the audit saw a leak of its own */
	if (ret == 0)
		ret = rsc_loop_close(loop);
	loop = NULL;
	return ret;
}

/* The plugin's scope, as the host keeps it across an unload; and any handle's state, asked of this copy. */
PLUGIN_API void *plugin_scope(void)
{
	return scope;
}

PLUGIN_API int plugin_scope_state(void *h)
{
	return rsc_scope_state(h);
}

/* A library's synchronous call: a scope opened, filled and closed with the
 * blocking helpers on this plugin's loop. */
PLUGIN_API int plugin_cycle(void)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	int ret;

	if ((ret = rsc_scope_open(loop, NULL, "cycle", &s)) < 0)
		return ret;
	if ((ret = rsc_open(s, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, &e)) < 0 ||
	    (ret = rsc_entry_wait(e)) < 0) {
		(void)rsc_scope_close_wait(s, NULL);
		return ret;
	}
	return rsc_scope_close_wait(s, NULL);
}

static int nested_res = 1;

static void on_timer(struct rsc_entry *e, int res, void *buf, void *data)
{
	int (*other)(void);

	(void)e;
	(void)buf;
	*(void **)&other = data;
	nested_res = res == -ETIME ? other() : res;
}

/* Another library's synchronous call from inside this loop's callback: its
 * loop runs nested in ours, on the same thread. */
PLUGIN_API int plugin_nested(int (*other)(void))
{
	struct rsc_entry *t;
	int ret;

	nested_res = 1;
	if ((ret = rsc_timer(scope, 1, on_timer, *(void **)&other, &t)) < 0)
		return ret;
	while (nested_res == 1)
		if ((ret = rsc_loop_run(loop, RSC_RUN_ONCE)) < 0)
			return ret;
	return nested_res;
}

/* A failure on the calling thread: rsc_last_error's thread-local text. */
PLUGIN_API const char *plugin_fail(void)
{
	struct rsc_scope *s;

	return rsc_scope_open(NULL, NULL, "x", &s) == -EINVAL ? rsc_last_error() : NULL;
}
