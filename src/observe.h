/* SPDX-License-Identifier: MIT */
#ifndef RSC_OBSERVE_H
#define RSC_OBSERVE_H

/*
 * Observers: the core calls one of these at each lifecycle point, and it
 * fans out to the USDT probe (always: a NOP until a tracer attaches), the
 * JSON trace and the latency histograms (only when loop->obs_flags says so:
 * one predictable branch when both are off). Included by internal.h.
 */
#include "probes.h"

#define RSC__OBS_TRACE	 (1U << 0) /* a trace file is open (trace_json.c) */
#define RSC__OBS_LATENCY (1U << 1) /* latency histograms (metrics.c) */

/* rsc__entry.obs_state */
#define RSC__OBS_BEGUN	 (1U << 0) /* its slice began in the trace */
#define RSC__OBS_OPEN	 (1U << 1) /* counted in the trace's open entries */
#define RSC__OBS_BEFORE	 (1U << 2) /* its acquire began before this trace: no slice in it */

enum rsc__obs_ev {
	RSC__OBS_ACQUIRE = 0,
	RSC__OBS_ENTERED,
	RSC__OBS_ENTER_FAILED,
	RSC__OBS_RELEASE_STARTED,
	RSC__OBS_RELEASED,
	RSC__OBS_ENTRY_FREED,
};

/* observe.c: the slow paths, behind loop->obs_flags. */
void rsc__obs_entry(struct rsc_loop *loop, struct rsc__entry *e,
		    enum rsc__obs_ev ev);
void rsc__obs_scope(struct rsc_loop *loop, struct rsc__scope *s, bool open);
void rsc__obs_moved(struct rsc_loop *loop, struct rsc__scope *s, struct rsc__entry *e);
void rsc__obs_finding(struct rsc_loop *loop, const struct rsc_finding *f);
void rsc__obs_submitted(struct rsc_loop *loop, int sqes);
int rsc__obs_loop_new(struct rsc_loop *loop);
void rsc__obs_loop_free(struct rsc_loop *loop);
uint64_t rsc__obs_now(void);

#define RSC__OBS_ON(loop) __builtin_expect((loop)->obs_flags != 0, 0)

/* An acquire's SQEs are prepared (they go out with the next submit). */
RSC__INLINE void rsc__obs_acquire(struct rsc_loop *loop, struct rsc__entry *e)
{
	RSC__PROBE5(acquire_start, loop->obs_id, e->h, e->mgr->name, e->detail,
		    e->scope->h);
	if (RSC__OBS_ON(loop))
		rsc__obs_entry(loop, e, RSC__OBS_ACQUIRE);
}

RSC__INLINE void rsc__obs_entered(struct rsc_loop *loop, struct rsc__entry *e)
{
	RSC__PROBE4(acquire_done, loop->obs_id, e->h, e->value, e->mgr->name);
	if (RSC__OBS_ON(loop))
		rsc__obs_entry(loop, e, RSC__OBS_ENTERED);
}

RSC__INLINE void rsc__obs_enter_failed(struct rsc_loop *loop, struct rsc__entry *e)
{
	RSC__PROBE4(acquire_done, loop->obs_id, e->h, e->value, e->mgr->name);
	if (RSC__OBS_ON(loop))
		rsc__obs_entry(loop, e, RSC__OBS_ENTER_FAILED);
}

/* An acquire's own CQE settled it: entered, or failed. */
RSC__INLINE void rsc__obs_enter_done(struct rsc_loop *loop, struct rsc__entry *e)
{
	if (e->value >= 0)
		rsc__obs_entered(loop, e);
	else
		rsc__obs_enter_failed(loop, e);
}

RSC__INLINE void rsc__obs_release_started(struct rsc_loop *loop,
					    struct rsc__entry *e)
{
	RSC__PROBE4(release_start, loop->obs_id, e->h, e->value, e->mgr->name);
	if (RSC__OBS_ON(loop))
		rsc__obs_entry(loop, e, RSC__OBS_RELEASE_STARTED);
}

/* Settled (early, or in its LIFO turn); before the scope hears its error. */
RSC__INLINE void rsc__obs_released(struct rsc_loop *loop, struct rsc__entry *e)
{
	RSC__PROBE4(release_done, loop->obs_id, e->h, e->exit_res, e->mgr->name);
	if (RSC__OBS_ON(loop))
		rsc__obs_entry(loop, e, RSC__OBS_RELEASED);
}

/* Freed without a release (detached, taken over, loop freed): ends its slice. */
RSC__INLINE void rsc__obs_entry_freed(struct rsc_loop *loop, struct rsc__entry *e)
{
	if (RSC__OBS_ON(loop) && e->obs_state)
		rsc__obs_entry(loop, e, RSC__OBS_ENTRY_FREED);
}

RSC__INLINE void rsc__obs_scope_opened(struct rsc_loop *loop, struct rsc__scope *s)
{
	RSC__PROBE4(scope_open, loop->obs_id, s->h, s->parent ? s->parent->h : 0,
		    s->name);
	if (RSC__OBS_ON(loop))
		rsc__obs_scope(loop, s, true);
}

RSC__INLINE void rsc__obs_scope_closed(struct rsc_loop *loop, struct rsc__scope *s)
{
	RSC__PROBE4(scope_closed, loop->obs_id, s->h,
		    s->pending ? rsc_error_errno(s->pending) : 0, s->name);
	if (RSC__OBS_ON(loop))
		rsc__obs_scope(loop, s, false);
}

/* Ownership moved: @e to another scope, or scope @s (@e NULL) to another parent. */
RSC__INLINE void rsc__obs_ownership_moved(struct rsc_loop *loop, struct rsc__scope *s,
					  struct rsc__entry *e)
{
	if (RSC__OBS_ON(loop))
		rsc__obs_moved(loop, s, e);
}

static inline void rsc__obs_audit_finding(struct rsc_loop *loop,
					  const struct rsc_finding *f)
{
	RSC__PROBE4(audit_finding, loop->obs_id, f->fd, f->kind, f->target);
	if (RSC__OBS_ON(loop))
		rsc__obs_finding(loop, f);
}

/* io_uring_enter took @sqes SQEs. */
RSC__INLINE void rsc__obs_submit(struct rsc_loop *loop, int sqes)
{
	RSC__PROBE3(submit, loop->obs_id, sqes, loop->ops_inflight);
	if (RSC__OBS_ON(loop) && sqes > 0)
		rsc__obs_submitted(loop, sqes);
}

/* trace_json.c */
struct rsc__trace_json;
int rsc__tj_open(struct rsc_loop *loop, const char *path);
int rsc__tj_close(struct rsc_loop *loop);
void rsc__tj_close_at_free(struct rsc_loop *loop, int *lost, int *own);
int rsc__tj_flush(struct rsc_loop *loop);
uint64_t rsc__tj_now(struct rsc__trace_json *tj);
void rsc__tj_entry(struct rsc_loop *loop, struct rsc__entry *e,
		   enum rsc__obs_ev ev, uint64_t now);
void rsc__tj_scope(struct rsc_loop *loop, struct rsc__scope *s, bool open,
		   uint64_t now);
void rsc__tj_moved(struct rsc_loop *loop, struct rsc__scope *s, struct rsc__entry *e,
		   uint64_t now);
void rsc__tj_finding(struct rsc_loop *loop, const struct rsc_finding *f,
		     uint64_t now);
void rsc__tj_submit(struct rsc_loop *loop, int sqes, uint64_t now);

/* metrics.c */
struct rsc__latency;
void rsc__metrics_record(struct rsc_loop *loop, bool acquire, uint64_t ns);
void rsc__metrics_free(struct rsc_loop *loop);

#endif /* RSC_OBSERVE_H */
