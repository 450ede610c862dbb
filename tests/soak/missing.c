/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringscope.h"
#include "model.h"

/*
 * The kind "missing" (rsc_fault_set(3), missing:NAME): one program in two
 * runs as on a kernel that lacks an opcode or a setup feature, so that the
 * fallbacks a 6.18 kernel never needs run under every other kind: releases
 * that cancel op by op (no CANCEL_FD_ALL), a ring without DEFER_TASKRUN or
 * SINGLE_ISSUER, an unregistered ring fd, listens by system calls, posts
 * that wake the loop by its eventfd (no MSG_RING). The mask is chosen from
 * the program's hash, not its bytes, so programs decode as before. It is
 * in RINGSCOPE_FAULT while the loop is made (setup features count only
 * then) and stays in front of every rule set later (prog_fault_set).
 *
 * The model: where the page gives the fallback no other answer, nothing
 * changes; where it does (a hand-over without MSG_RING or its SEND_FD, a
 * multishot receive or accept without the kernel's flag) the call must be
 * -EOPNOTSUPP, never accepted. At the loop's making, its features must say
 * what was taken away; at the end, a loop without CANCEL_FD counted none.
 */

struct mask {
	const char *spec;
	unsigned what;
};

static const struct mask masks[] = {
	{ "missing:cancel_fd", M_NO_CANCEL_FD },
	{ "missing:bind,missing:listen", 0 },
	{ "missing:recv_multishot", M_NO_RECV_MS },
	{ "missing:accept_multishot", M_NO_ACCEPT_MS },
	/* IORING_OP_SEND_ZC came with both flags (6.0): it stands for them. */
	{ "missing:send_zc", M_NO_HANDOVER | M_NO_RECV_MS },
	{ "missing:cancel_fd,missing:bind,missing:listen,missing:recv_multishot,"
	  "missing:accept_multishot,missing:msg_send_fd",
	  M_NO_CANCEL_FD | M_NO_RECV_MS | M_NO_ACCEPT_MS | M_NO_HANDOVER },
	/* From here on, only for a loop of its own ring. */
	{ "missing:single_issuer,missing:defer_taskrun", M_NO_DEFER },
	{ "missing:single_issuer,missing:defer_taskrun,missing:coop_taskrun,missing:submit_all",
	  M_NO_DEFER | M_NO_COOP },
	{ "missing:register_ring", M_NO_REG_RING },
	{ "missing:msg_ring,missing:poll_multishot", M_EVENTFD | M_NO_HANDOVER },
	/* As before Linux 5.6: no probe, so posts by the eventfd, no bind or
	 * listen, and no multishot poll (5.13): the eventfd is polled one shot. */
	{ "missing:probe,missing:poll_multishot", M_EVENTFD },
	{ "missing:msg_ring,missing:poll_multishot,missing:single_issuer,missing:defer_taskrun,"
	  "missing:coop_taskrun,missing:submit_all,missing:register_ring,missing:cancel_fd,"
	  "missing:bind,missing:listen,missing:recv_multishot,missing:accept_multishot",
	  M_EVENTFD | M_NO_HANDOVER | M_NO_DEFER | M_NO_COOP | M_NO_REG_RING | M_NO_CANCEL_FD |
		  M_NO_RECV_MS | M_NO_ACCEPT_MS },
};
#define N_MASKS	       ((unsigned)(sizeof(masks) / sizeof(masks[0])))
#define N_SHARED_MASKS 6 /* the first ones: no setup feature, no MSG_RING */

/* The rules the soak's eventfd_wake programs make their loop under (post.c). */
#define EVENTFD_RULES "msg_ring:1:EOPNOTSUPP,missing:poll_multishot,missing:cancel_fd"

static char env_spec[1024];

void miss_choose(struct prog *p, struct prog_stats *st)
{
	unsigned h = (unsigned)(p->sh_seed >> 40);

	p->miss = -1;
	if (!(p->env->kinds & KIND_MISSING) || !p->env->have_faults || h % 2)
		return;
	p->miss = (int)((h >> 1) % (p->shared ? N_SHARED_MASKS : N_MASKS));
	/* PROG_MISSING=K: mask K of the table instead, to narrow a failure down
	 * (where the program's loop can take it: the last ones need its own ring). */
	if (getenv("PROG_MISSING")) {
		unsigned k = (unsigned)(strtoul(getenv("PROG_MISSING"), NULL, 10) % N_MASKS);

		if (!p->shared || k < N_SHARED_MASKS)
			p->miss = (int)k;
	}
	st->missing_programs++;
	say(p, "program: as on a kernel without %s\n", masks[p->miss].spec);
}

unsigned miss_what(const struct prog *p)
{
	return p->miss >= 0 ? masks[p->miss].what : 0;
}

const char *miss_spec(const struct prog *p)
{
	return p->miss >= 0 ? masks[p->miss].spec : "";
}

/* RINGSCOPE_FAULT for a loop under mask @k (-1 none), after the eventfd rules if any. */
static const char *env_of(int k, bool eventfd_wake)
{
	if (!eventfd_wake && k < 0)
		return NULL;
	snprintf(env_spec, sizeof(env_spec), "%s%s%s", eventfd_wake ? EVENTFD_RULES : "",
		 eventfd_wake && k >= 0 ? "," : "", k >= 0 ? masks[k].spec : "");
	return env_spec;
}

const char *miss_env(const struct prog *p, bool eventfd_wake)
{
	return env_of(p->miss, eventfd_wake);
}

/* glibc's setenv(3) keeps every value it was given: each one once, before the heap is counted. */
void miss_env_settle(void)
{
	const char *env = getenv("RINGSCOPE_FAULT");
	char *saved = env ? strdup(env) : NULL;
	unsigned k;

	for (k = 0; k < N_MASKS; k++) {
		setenv("RINGSCOPE_FAULT", env_of((int)k, false), 1);
		setenv("RINGSCOPE_FAULT", env_of((int)k, true), 1);
	}
	if (saved)
		setenv("RINGSCOPE_FAULT", saved, 1);
	else
		unsetenv("RINGSCOPE_FAULT");
	free(saved);
}

/* rsc_fault_set with the program's mask kept in front of @spec. */
int prog_fault_set(struct prog *p, const char *spec)
{
	static char buf[2048];

	if (p->miss < 0)
		return rsc_fault_set(p->loop, spec);
	snprintf(buf, sizeof(buf), "%s%s%s", miss_spec(p), spec && *spec ? "," : "",
		 spec ? spec : "");
	return rsc_fault_set(p->loop, buf);
}

/* The loop was just made under the mask: its features say what is missing. */
void miss_check_loop(struct prog *p)
{
	unsigned what = miss_what(p), feat;

	if (!what || !p->loop || p->shared)
		return;
	feat = rsc_loop_features(p->loop);
	if ((what & M_NO_DEFER) && (feat & (RSC_FEAT_DEFER_TASKRUN | RSC_FEAT_SINGLE_ISSUER)))
		violation(p, "a loop made under %s has features 0x%x", miss_spec(p), feat);
	if ((what & M_NO_COOP) && (feat & RSC_FEAT_COOP_TASKRUN))
		violation(p, "a loop made under %s has COOP_TASKRUN (0x%x)", miss_spec(p), feat);
	if ((what & M_NO_REG_RING) && (feat & RSC_FEAT_REGISTERED_RING))
		violation(p, "a loop made under %s has a registered ring (0x%x)", miss_spec(p), feat);
	if ((what & M_EVENTFD) && !(feat & RSC_FEAT_POST_EVENTFD))
		violation(p, "a loop made under %s does not wake by its eventfd (0x%x)", miss_spec(p),
			  feat);
}

/* The loop's end: with no CANCEL_FD, releases cancelled op by op. */
void miss_check_end(struct prog *p)
{
	if ((miss_what(p) & M_NO_CANCEL_FD) && p->loop &&
	    rsc_loop_counter(p->loop, RSC_CTR_CANCEL_FD) != 0)
		violation(p, "under %s, %lld releases cancelled with IORING_ASYNC_CANCEL_FD",
			  miss_spec(p), rsc_loop_counter(p->loop, RSC_CTR_CANCEL_FD));
}

/* A call the mask takes away: -EOPNOTSUPP is its answer, success a violation. */
bool miss_refuses(const struct prog *p, unsigned what)
{
	return (miss_what(p) & what) != 0;
}
