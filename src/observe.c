/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Loops are numbered in creation order, process-wide: the metrics' label. */
static unsigned next_loop_id;
/* The loop writing to RINGSCOPE_TRACE's plain name; others add ".ID". */
static unsigned env_trace_owner;

uint64_t rsc__obs_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* "%p" is the pid, "%l" the loop id, "%%" a percent sign. */
static int expand_path(const struct rsc_loop *loop, const char *tmpl, char *out,
		       size_t len, bool *has_loop)
{
	size_t n = 0;
	int w;

	*has_loop = false;
	for (; *tmpl; tmpl++) {
		if (tmpl[0] == '%' && (tmpl[1] == 'p' || tmpl[1] == 'l')) {
			*has_loop |= tmpl[1] == 'l';
			w = snprintf(out + n, n < len ? len - n : 0, "%u",
				     tmpl[1] == 'p' ? (unsigned)getpid() : loop->obs_id);
			n += w > 0 ? (size_t)w : 0;
			tmpl++;
			continue;
		}
		if (tmpl[0] == '%' && tmpl[1] == '%')
			tmpl++;
		if (n + 1 < len)
			out[n] = *tmpl;
		n++;
	}
	if (n >= len)
		return -ENAMETOOLONG;
	out[n] = '\0';
	return 0;
}

static int trace_from_env(struct rsc_loop *loop)
{
	const char *tmpl = getenv("RINGSCOPE_TRACE");
	char path[4096];
	size_t n;
	bool has_loop;
	unsigned none = 0;
	int ret;

	if (!tmpl || !*tmpl)
		return 0;
	ret = expand_path(loop, tmpl, path, sizeof(path) - 16, &has_loop);
	if (ret < 0) {
		rsc__set_last_error("RINGSCOPE_TRACE: the file name is too long");
		return ret;
	}
	/* Two live loops must not write one file: the second gets ".ID". */
	if (!has_loop &&
	    !__atomic_compare_exchange_n(&env_trace_owner, &none, loop->obs_id, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		n = strlen(path);
		snprintf(path + n, sizeof(path) - n, ".%u", loop->obs_id);
	}
	ret = rsc__tj_open(loop, path);
	if (ret < 0) {
		unsigned me = loop->obs_id;

		__atomic_compare_exchange_n(&env_trace_owner, &me, 0, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
		rsc__set_last_error("RINGSCOPE_TRACE: cannot write %s: %s", path,
				    rsc_strerror(ret));
	}
	return ret;
}

int rsc__obs_loop_new(struct rsc_loop *loop)
{
	unsigned me = __atomic_add_fetch(&next_loop_id, 1, __ATOMIC_RELAXED);
	int ret;

	loop->obs_id = me;
	/* A RINGSCOPE_TRACE that cannot be written must not silently mean "off". */
	ret = trace_from_env(loop);
	/* No loop made: its number is the next one's (rsc_loop_id(3)), unless
	 * another thread's loop took a later one meanwhile. */
	if (ret < 0)
		__atomic_compare_exchange_n(&next_loop_id, &me, me - 1, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
	return ret;
}

void rsc__obs_loop_free(struct rsc_loop *loop)
{
	unsigned me = loop->obs_id;
	int lost, own;

	rsc__tj_close_at_free(loop, &lost, &own);
	/* Nobody is left to return them to: a trace cut short must not pass unseen
	 * (unless rsc_loop_trace_flush() returned it already). */
	if (lost < 0)
		fprintf(stderr, "ringscope: loop %u: an earlier trace's last write failed (%s), "
				"and no call returned it: that file stops at its last complete event\n",
			me, rsc_err_name(lost));
	if (own < 0)
		fprintf(stderr, "ringscope: loop %u: the trace's last write failed when the loop was freed (%s): "
				"the file stops at its last complete event\n",
			me, rsc_err_name(own));
	rsc__metrics_free(loop);
	loop->obs_flags = 0;
	__atomic_compare_exchange_n(&env_trace_owner, &me, 0, false,
				    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* The trace's clock while it runs (TSC-read, trace_json.c), else clock_gettime. */
static inline uint64_t obs_now(struct rsc_loop *loop)
{
	return (loop->obs_flags & RSC__OBS_TRACE) ? rsc__tj_now(loop->tj) : rsc__obs_now();
}

void rsc__obs_entry(struct rsc_loop *loop, struct rsc__entry *e,
		    enum rsc__obs_ev ev)
{
	uint64_t now;

	/*
	 * A completion (entered, failed, released) is stamped with the time its
	 * CQE was reaped: one clock reading for the batch (loop.c reap()), which
	 * leaves out the time spent dispatching the CQEs ahead of it. Not for
	 * what began during this dispatch (a release with no CQE of its own).
	 * Likewise the releases a scope's unwind starts together (scope.c).
	 */
	if (ev == RSC__OBS_RELEASE_STARTED && loop->obs_exit_ns &&
	    loop->obs_exit_ns >= e->obs_t_acquire)
		now = loop->obs_exit_ns;
	else if (loop->obs_reap_ns &&
	    (ev == RSC__OBS_RELEASED ? loop->obs_reap_ns >= e->obs_t_release
	     : (ev == RSC__OBS_ENTERED || ev == RSC__OBS_ENTER_FAILED) &&
		       loop->obs_reap_ns >= e->obs_t_acquire))
		now = loop->obs_reap_ns;
	else
		now = obs_now(loop);

	switch (ev) {
	case RSC__OBS_ACQUIRE:
		e->obs_t_acquire = now;
		break;
	case RSC__OBS_ENTERED:
		if ((loop->obs_flags & RSC__OBS_LATENCY) && e->obs_t_acquire)
			rsc__metrics_record(loop, true,
					    now > e->obs_t_acquire ? now - e->obs_t_acquire : 0);
		break;
	case RSC__OBS_RELEASE_STARTED:
		e->obs_t_release = now;
		break;
	case RSC__OBS_RELEASED:
		if ((loop->obs_flags & RSC__OBS_LATENCY) && e->obs_t_release)
			rsc__metrics_record(loop, false,
					    now > e->obs_t_release ? now - e->obs_t_release : 0);
		break;
	default:
		break;
	}
	if (loop->obs_flags & RSC__OBS_TRACE)
		rsc__tj_entry(loop, e, ev, now);
}

void rsc__obs_scope(struct rsc_loop *loop, struct rsc__scope *s, bool open)
{
	if (loop->obs_flags & RSC__OBS_TRACE)
		rsc__tj_scope(loop, s, open, rsc__tj_now(loop->tj));
}

void rsc__obs_moved(struct rsc_loop *loop, struct rsc__scope *s, struct rsc__entry *e)
{
	if (loop->obs_flags & RSC__OBS_TRACE)
		rsc__tj_moved(loop, s, e, rsc__tj_now(loop->tj));
}

void rsc__obs_finding(struct rsc_loop *loop, const struct rsc_finding *f)
{
	if (loop->obs_flags & RSC__OBS_TRACE)
		rsc__tj_finding(loop, f, rsc__tj_now(loop->tj));
}

void rsc__obs_submitted(struct rsc_loop *loop, int sqes)
{
	if (loop->obs_flags & RSC__OBS_TRACE)
		rsc__tj_submit(loop, sqes, rsc__tj_now(loop->tj));
}

int rsc_loop_id(const struct rsc_loop *loop)
{
	RSC__CHECK_ARG(loop, "rsc_loop_id: loop is NULL");
	return (int)loop->obs_id;
}
