/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringscope.h"
#include "model.h"

/*
 * rsc_loop_post(3) from the program: functions that open a scope and acquire
 * in it (and leave it open, or close it), release an entry early, or post
 * again, queued during the program or just before its loop is closed. Some
 * loops wake by their eventfd, as on a kernel without IORING_OP_MSG_RING: a
 * "msg_ring" rule in RINGSCOPE_FAULT while the loop is made (rsc_fault_set(3)),
 * and, as on the kernels that lack it, without multishot polls (the eventfd
 * is polled one shot at a time) or cancels by descriptor (op by op).
 *
 * The model: a post never runs inside rsc_loop_post; each runs once, in the
 * order posted, before the loop is freed (only a post made while the loop
 * is being freed may be refused, with ESHUTDOWN, and then never runs);
 * inside it the blocking calls fail with EDEADLK; what it opens and acquires is modelled like the rest of the
 * program. rsc_loop_close returns EBUSY exactly when a post it ran left a
 * scope behind, frees nothing then, and succeeds once that scope is closed.
 */

#define MAX_POSTS     64
#define MAX_END_POSTS 2

enum post_kind { PK_NOTHING, PK_OPEN, PK_OPEN_UNDER, PK_OPEN_CLOSE, PK_RELEASE, PK_POST,
		 PK__COUNT };

struct post {
	struct prog *p;
	enum post_kind kind;
	uint8_t arg[4]; /* the bytes its function decodes, read when posted */
	int seq;	/* the order it was queued in */
	int ran;
};

static struct post posts[MAX_POSTS];
static int n_posts, n_ran;
static uint8_t end_posts[MAX_END_POSTS][5]; /* kind and bytes, queued at the end */
static int n_end_posts;

void post_begin(void)
{
	n_posts = n_ran = n_end_posts = 0;
}

static void post_queue(struct prog *p, enum post_kind kind, const uint8_t arg[4]);

/* Inside a post, as in any callback of the loop, nothing may block or run it. */
static void post_reentry(struct prog *p, struct rsc_loop *loop)
{
	int ret[3], i;

	ret[0] = rsc_loop_run(loop, RSC_RUN_NOWAIT);
	ret[1] = rsc_loop_close(loop);
	ret[2] = rsc_loop_shutdown(loop, NULL);
	for (i = 0; i < 3; i++)
		if (ret[i] != -EDEADLK)
			violation(p, "call %d from a posted function returned %s, expected EDEADLK", i,
				  rsc_err_name(ret[i]));
}

static void posted(struct rsc_loop *loop, void *arg)
{
	struct post *po = arg;
	struct prog *p = po->p;
	struct rd r = { po->arg, sizeof(po->arg), 0 };
	int s, i;

	say(p, "    post %d runs: kind %d\n", po->seq, (int)po->kind);
	if (loop != p->loop)
		violation(p, "post %d ran on another loop", po->seq);
	if (po->ran++)
		violation(p, "post %d ran twice", po->seq);
	if (po->seq != n_ran)
		violation(p, "post %d ran after %d others: not in the order posted", po->seq, n_ran);
	n_ran++;
	post_reentry(p, loop);
	switch (po->kind) {
	case PK_OPEN:
	case PK_OPEN_UNDER:
	case PK_OPEN_CLOSE:
		s = po->kind == PK_OPEN_UNDER ? pick_scope(p, &r) : -1;
		/* A scope a blocking close waits for may be freed already. */
		if (s >= 0 && p->sc[s].n_closed)
			break;
		s = op_open_scope(p, s);
		if (s < 0)
			break;
		if (rd_u8(&r) & 1 && p->n_direct)
			ho_direct(p, s, &r);
		else
			op_file(p, s, &r);
		if (po->kind == PK_OPEN_CLOSE)
			op_close(p, s);
		break;
	case PK_RELEASE:
		i = pick_entry(p, &r);
		if (i >= 0 && !p->sc[p->en[i].scope].n_closed)
			op_release(p, i, &r);
		break;
	case PK_POST: { /* from the loop's thread, inside a post: it runs on a later turn */
		const uint8_t next[4] = { po->arg[1], po->arg[2], po->arg[3], po->arg[0] };

		post_queue(p, (enum post_kind)(po->arg[0] % PK_POST), next);
		break;
	}
	default:
		break;
	}
	fork_from_callback(p, 3000 + (unsigned)po->seq);
}

static void post_queue(struct prog *p, enum post_kind kind, const uint8_t arg[4])
{
	struct post *po;
	int ret;

	if (n_posts == MAX_POSTS)
		return;
	po = &posts[n_posts];
	*po = (struct post){ p, kind, { 0 }, n_posts, 0 };
	memcpy(po->arg, arg, sizeof(po->arg));
	ret = rsc_loop_post(p->loop, posted, po);
	say(p, "  op %d: post %d (kind %d) -> %d\n", p->op_index, po->seq, (int)kind, ret);
	if (p->shared && p->eventfd_wake) {
		/* No MSG_RING to wake it, and no eventfd poll left on the application's ring. */
		if (ret != -EOPNOTSUPP)
			violation(p, "rsc_loop_post to a shared loop without MSG_RING: %s, expected EOPNOTSUPP",
				  rsc_err_name(ret));
		return;
	}
	if (ret == -ESHUTDOWN && p->draining)
		return; /* the loop is being freed: refused, and it never runs */
	if (ret != 0) {
		violation(p, "rsc_loop_post: %s (%s)", rsc_err_name(ret), rsc_last_error());
		return;
	}
	if (po->ran)
		violation(p, "post %d ran inside rsc_loop_post", po->seq);
	n_posts++;
}

void post_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st)
{
	uint8_t arg[5];
	int i;

	for (i = 0; i < 5; i++)
		arg[i] = (uint8_t)rd_u8(r);
	if (sub == 4) {
		/* Queued when every scope is closed, just before the loop goes. */
		if (n_end_posts < MAX_END_POSTS)
			memcpy(end_posts[n_end_posts++], arg, sizeof(arg));
		return;
	}
	post_queue(p, (enum post_kind)(arg[0] % PK__COUNT), arg + 1);
	st->posts++;
}

/* RINGSCOPE_FAULT as on a kernel without MSG_RING, for the next rsc_loop_new; *saved restores it. */
static int eventfd_env_push(char **saved)
{
	const char *env = getenv("RINGSCOPE_FAULT");

	*saved = env ? strdup(env) : NULL;
	return setenv("RINGSCOPE_FAULT",
		      "msg_ring:1:EOPNOTSUPP,missing:poll_multishot,missing:cancel_fd", 1) < 0 ?
		       -errno : 0;
}

/* The same with the rules of the program's loop (missing.c): *saved restores it. */
static int env_push(const char *spec, char **saved)
{
	const char *env = getenv("RINGSCOPE_FAULT");

	*saved = env ? strdup(env) : NULL;
	return setenv("RINGSCOPE_FAULT", spec, 1) < 0 ? -errno : 0;
}

static void eventfd_env_pop(char *saved)
{
	if (saved)
		setenv("RINGSCOPE_FAULT", saved, 1);
	else
		unsetenv("RINGSCOPE_FAULT");
	free(saved);
}

/* glibc's setenv(3) keeps every value it ever set (a tree, never freed):
 * set and restore once before the heap is counted, so no program adds to it. */
void post_env_settle(void)
{
	char *saved;
	int ret = eventfd_env_push(&saved);

	if (ret == 0)
		eventfd_env_pop(saved);
	else
		free(saved);
}

/* Make the program's loop; an eventfd_wake one as on a kernel without MSG_RING. */
int post_loop_new(struct prog *p, unsigned entries, unsigned flags)
{
	const char *spec = miss_env(p, p->eventfd_wake);
	char *saved = NULL;
	int ret;

	if (spec && (ret = env_push(spec, &saved)) < 0) {
		free(saved);
		return ret;
	}
	if (p->shared)
		ret = sh_loop_new(p, 0, entries, !(flags & RSC_LOOP_NO_DEFER_TASKRUN), &p->loop);
	else
		ret = rsc_loop_new(&p->loop, entries, flags);
	if (spec)
		eventfd_env_pop(saved);
	if (ret < 0)
		return ret;
	miss_check_loop(p);
	if (p->eventfd_wake && !p->shared && !(rsc_loop_features(p->loop) & RSC_FEAT_POST_EVENTFD))
		violation(p, "a loop made under msg_ring:1:EOPNOTSUPP does not wake by eventfd");
	/* The rule that chose the eventfd fired in rsc_loop_new: no window's. */
	p->fault_mark = rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED);
	return 0;
}

/* The program's end: queue the posts kept for it (the fault rules are off by now). */
void post_before_end(struct prog *p)
{
	int i;

	for (i = 0; i < n_end_posts; i++) {
		/* What runs while the loop closes: nothing, a scope left open, or one closed. */
		static const enum post_kind at_end[] = { PK_NOTHING, PK_OPEN, PK_OPEN_CLOSE, PK_POST };

		post_queue(p, at_end[end_posts[i][0] % 4], end_posts[i] + 1);
	}
}

bool post_at_end(void)
{
	return n_end_posts > 0;
}

/* The loop is gone: every post ran once. */
void post_end(struct prog *p, struct prog_stats *st)
{
	int i;

	for (i = 0; i < n_posts; i++)
		if (posts[i].ran != 1)
			violation(p, "post %d (kind %d) ran %d times by the loop's end", i,
				  (int)posts[i].kind, posts[i].ran);
	st->posts_run += (unsigned)n_ran;
	st->posts_at_end += (unsigned)n_end_posts;
	st->eventfd_programs += p->eventfd_wake;
}
