/* SPDX-License-Identifier: MIT */
/*
 * A hostile libuv host (rsc_loop_fd(3)): libuv's thread pool posts to the
 * ringscope loop from its own threads (rsc_loop_post), each post opens a
 * scope whose on-enter callback starts a libuv timer, and that timer's
 * callback closes the scope from inside libuv. Each of the 20 jobs must
 * go round once, every descriptor go, and libuv end by itself once
 * ringscope has nothing alive; a guard timer fails a host that slept.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include <ringscope.h>

#define JOBS 20

struct job {
	uv_work_t work;
	uv_timer_t timer;
	struct rsc_scope *scope;
	int posted, entered, closed;
};

static struct rsc_loop *rl;
static uv_loop_t *uv;
static uv_poll_t rpoll;
static uv_check_t check;
static uv_timer_t guard;
static struct job jobs[JOBS];
static int closed_total;
static bool stopping;

/* Descriptors whose /proc/self/fd target contains @needle. */
static int fds_to(const char *needle)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char p[300], t[256];
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		ssize_t len;

		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
		len = readlink(p, t, sizeof(t) - 1);
		t[len > 0 ? len : 0] = '\0';
		n += strstr(t, needle) != NULL;
	}
	closedir(d);
	return n - (strstr("/proc/self/fd", needle) != NULL);
}

static void fail(const char *what, int err)
{
	fprintf(stderr, "uv_hostile_host: %s: %s (%s)\n", what, rsc_strerror(err), rsc_last_error());
	exit(1);
}

static void on_rsc_readable(uv_poll_t *p, int status, int events)
{
	int ret;

	(void)p;
	(void)events;
	if (status < 0)
		fail("uv_poll", -EIO);
	if ((ret = rsc_loop_run(rl, RSC_RUN_NOWAIT)) < 0)
		fail("rsc_loop_run", ret);
}

static void on_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	struct job *j = data;

	(void)s;
	(void)err;
	if (status != 0)
		fail("scope closed", status);
	j->closed++;
	uv_close((uv_handle_t *)&j->timer, NULL); /* libuv from a ringscope callback */
	if (++closed_total == JOBS)
		stopping = true;
}

/* libuv's timer closes ringscope's scope: the close starts on the loop's next turn. */
static void on_timer(uv_timer_t *t)
{
	struct job *j = t->data;
	int ret = rsc_scope_close(j->scope, on_closed, j);

	if (ret < 0)
		fail("rsc_scope_close", ret);
}

static void on_entered(struct rsc_entry *e, int res, void *data)
{
	struct job *j = data;

	(void)e;
	if (res < 0)
		fail("open", res);
	j->entered++;
	uv_timer_init(uv, &j->timer);
	j->timer.data = j;
	uv_timer_start(&j->timer, on_timer, 5, 0);
}

/* On ringscope's (and libuv's) thread: the post of a pool thread runs. */
static void on_post(struct rsc_loop *loop, void *arg)
{
	struct job *j = arg;
	struct rsc_entry *e;
	int ret;

	j->posted++;
	if ((ret = rsc_scope_open(loop, NULL, "job", &j->scope)) < 0 ||
	    (ret = rsc_open(j->scope, AT_FDCWD, "/proc/self/status", O_RDONLY, 0, 0, &e)) < 0 ||
	    (ret = rsc_entry_on_enter(e, on_entered, j)) < 0)
		fail("a post's scope", ret);
}

/* On a thread of libuv's pool: rsc_loop_post is the one call allowed there. */
static void work(uv_work_t *w)
{
	int ret = rsc_loop_post(rl, on_post, w->data);

	if (ret < 0)
		fail("rsc_loop_post", ret);
}

static void after_work(uv_work_t *w, int status)
{
	(void)w;
	if (status < 0)
		fail("uv_queue_work", -EIO);
}

static void on_check(uv_check_t *c)
{
	if (stopping && rsc_loop_alive(rl) == 0) {
		uv_poll_stop(&rpoll);
		uv_close((uv_handle_t *)&rpoll, NULL);
		uv_close((uv_handle_t *)c, NULL);
		uv_close((uv_handle_t *)&guard, NULL);
	}
}

static void on_guard(uv_timer_t *t)
{
	(void)t;
	fprintf(stderr, "uv_hostile_host: stuck after 10 s: %d of %d scopes closed\n", closed_total, JOBS);
	exit(1);
}

int main(void)
{
	int rings, efd, ret, i;

	uv = uv_default_loop();
	uv_timer_init(uv, &guard);
	uv_timer_start(&guard, on_guard, 10000, 0);
	rings = fds_to("io_uring");
	if ((ret = rsc_loop_new(&rl, 16, RSC_LOOP_POLLABLE)) < 0) {
		printf("SKIP uv_hostile_host: %s\n", rsc_last_error());
		return 77;
	}
	efd = rsc_loop_fd(rl);
	uv_poll_init(uv, &rpoll, efd);
	uv_poll_start(&rpoll, UV_READABLE, on_rsc_readable);
	uv_check_init(uv, &check);
	uv_check_start(&check, on_check);
	for (i = 0; i < JOBS; i++) {
		jobs[i].work.data = &jobs[i];
		uv_queue_work(uv, &jobs[i].work, work, after_work);
	}
	uv_run(uv, UV_RUN_DEFAULT);
	for (i = 0; i < JOBS; i++)
		if (jobs[i].posted != 1 || jobs[i].entered != 1 || jobs[i].closed != 1) {
			fprintf(stderr, "uv_hostile_host: job %d: posted %d, entered %d, closed %d\n", i,
				jobs[i].posted, jobs[i].entered, jobs[i].closed);
			return 1;
		}
	if ((ret = rsc_loop_close(rl)) < 0)
		fail("rsc_loop_close", ret);
	/* Every descriptor of ringscope's went: its rings, its fd, the files. */
	if (fds_to("io_uring") != rings || fds_to("/status") != 0 || fcntl(efd, F_GETFD) != -1) {
		fprintf(stderr, "uv_hostile_host: %d rings (%d before), %d files, fd %d left\n",
			fds_to("io_uring"), rings, fds_to("/status"), efd);
		return 1;
	}
	if (uv_loop_close(uv) < 0)
		return 1;
	printf("uv_hostile_host: %d jobs posted from libuv's pool, opened, closed from libuv timers\n", JOBS);
	return 0;
}
