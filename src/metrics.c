/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/*
 * Prometheus text exposition format (version 0.0.4): one family at a time,
 * each with # HELP and # TYPE, one series per loop labelled loop="ID". The
 * gauges are counted when asked (a walk of the scope tree), so they cost
 * nothing between scrapes; only the latency histograms need timestamps, and
 * they are taken only once rsc_loop_set_metrics() asks for them.
 */

/* Upper bounds in ns: 1 us to 10 s, 1-2.5-5 per decade. */
static const uint64_t bounds_ns[] = {
	1000ULL,      2500ULL,	    5000ULL,	  10000ULL,	 25000ULL,
	50000ULL,     100000ULL,    250000ULL,	  500000ULL,	 1000000ULL,
	2500000ULL,   5000000ULL,   10000000ULL,  25000000ULL,	 50000000ULL,
	100000000ULL, 250000000ULL, 500000000ULL, 1000000000ULL, 2500000000ULL,
	5000000000ULL, 10000000000ULL,
};
#define N_BOUNDS (sizeof(bounds_ns) / sizeof(bounds_ns[0]))

struct rsc__hist {
	uint64_t buckets[N_BOUNDS + 1]; /* not cumulative; the last is +Inf */
	uint64_t sum_ns, count;
};

struct rsc__latency {
	struct rsc__hist acquire, release;
};

void rsc__metrics_record(struct rsc_loop *loop, bool acquire, uint64_t ns)
{
	struct rsc__hist *h = acquire ? &loop->lat->acquire : &loop->lat->release;
	unsigned i = 0;

	while (i < N_BOUNDS && ns > bounds_ns[i])
		i++;
	h->buckets[i]++;
	h->sum_ns += ns;
	h->count++;
}

void rsc__metrics_free(struct rsc_loop *loop)
{
	free(loop->lat);
	loop->lat = NULL;
	loop->obs_flags &= ~RSC__OBS_LATENCY;
}

int rsc_loop_set_metrics(struct rsc_loop *loop, unsigned flags)
{
	RSC__CHECK_ARG(loop, "rsc_loop_set_metrics: loop is NULL");
	RSC__SAME_PROCESS(loop, "rsc_loop_set_metrics");
	RSC__CHECK_ARG(!(flags & ~RSC_METRICS_LATENCY),
		       "rsc_loop_set_metrics: unknown flags 0x%x", flags);
	if (!(flags & RSC_METRICS_LATENCY)) {
		loop->obs_flags &= ~RSC__OBS_LATENCY; /* the histograms keep their counts */
		return 0;
	}
	if (!loop->lat && !(loop->lat = rsc__calloc(loop, 1, sizeof(*loop->lat))))
		return -ENOMEM;
	loop->obs_flags |= RSC__OBS_LATENCY;
	return 0;
}

static const char *counter_help(enum rsc_counter c)
{
	switch (c) {
	case RSC_CTR_ENTER_CALLS: return "io_uring_enter() calls made by the loop.";
	case RSC_CTR_SQES: return "SQEs submitted.";
	case RSC_CTR_CQES: return "CQEs reaped.";
	case RSC_CTR_ACQUIRED: return "Entries that were acquired (reached ENTERED).";
	case RSC_CTR_RELEASED: return "Entries that were released (reached EXITED).";
	case RSC_CTR_ENTER_FAILED: return "Acquires that failed (entries that reached FAILED).";
	case RSC_CTR_LATE_ACQUIRES: return "Acquires that won the race against their cancel (then released).";
	case RSC_CTR_POOL_ALLOCS: return "Allocations made by the loop's object pools.";
	case RSC_CTR_BUSY_RETRIES: return "Submits retried after -EBUSY or -EAGAIN.";
	case RSC_CTR_SQ_FULL: return "Times the submission queue was full and flushed early.";
	case RSC_CTR_FAULTS_INJECTED: return "Faults injected by rsc_fault_set() rules.";
	case RSC_CTR_DEADLINES: return "Scopes whose deadline passed.";
	case RSC_CTR_CANCEL_FD: return "Releases that cancelled their I/O with one SQE.";
	case RSC_CTR_RECV_REARMS: return "Multishot receives armed again after the kernel ended them (-ENOBUFS).";
	case RSC_CTR_NOMEM_DROPS: return "Descriptors acquired, then closed by the runtime for want of memory to own them.";
	case RSC_CTR_AUDIT_LOST: return "Audit findings and leak verdicts lost for want of memory.";
	case RSC_CTR_ERRORS_LOST: return "Errors left out of an error chain for want of memory.";
	default: return "";
	}
}

struct gauges {
	unsigned scopes, entries;
};

/* Scopes below the root not yet closed (open, unwinding, or unwound after a
 * failure and waiting for rsc_scope_close) and entries holding a resource.
 * A scope unwound by its close, or by its parent's, has closed: it stays in
 * the tree only until the close callback above it returns. */
static struct gauges count_open(const struct rsc_loop *loop)
{
	struct gauges g = { 0, 0 };
	const struct rsc__scope *s;
	const struct rsc__entry *e;

	if (!loop->root)
		return g;
	for (s = loop->root; s; s = rsc__scope_next(loop->root, s)) {
		g.scopes += s != loop->root &&
			    !(s->state == RSC_SCOPE_UNWOUND && s->closer != RSC__CLOSER_NONE);
		RSC__LIST_FOR_EACH(e, &s->entries, scope_node)
			g.entries += e->state == RSC_ENTERED || e->state == RSC_EXITING;
	}
	return g;
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/*
 * Seconds from nanoseconds, "S.NNNNNNNNN", with integers: printf's %g and %f
 * follow LC_NUMERIC, and a program that set a locale with a decimal comma
 * would get "0,5", which no Prometheus parser reads.
 */
static const char *seconds(char *buf, size_t len, uint64_t ns)
{
	snprintf(buf, len, "%llu.%09llu", (unsigned long long)(ns / 1000000000u),
		 (unsigned long long)(ns % 1000000000u));
	return buf;
}

static void histogram(FILE *out, struct rsc_loop *const *loops, unsigned n,
		      bool acquire)
{
	const char *name = acquire ? "ringscope_acquire_latency_seconds" :
				     "ringscope_release_latency_seconds";
	unsigned i, b;
	bool any = false;

	for (i = 0; i < n; i++)
		any |= loops[i]->lat != NULL;
	if (!any)
		return; /* not collected: no family, rather than one that says "none" */
	family(out, name, "histogram",
	       acquire ? "Time from the submit of an acquire to its successful completion." :
			 "Time from the start of a release to its completion (settled in LIFO order).");
	for (i = 0; i < n; i++) {
		const struct rsc__hist *h;
		uint64_t cum = 0;
		char num[32];

		if (!loops[i]->lat)
			continue;
		h = acquire ? &loops[i]->lat->acquire : &loops[i]->lat->release;
		for (b = 0; b < N_BOUNDS; b++) {
			cum += h->buckets[b];
			fprintf(out, "%s_bucket{loop=\"%u\",le=\"%s\"} %llu\n", name,
				loops[i]->obs_id, seconds(num, sizeof(num), bounds_ns[b]),
				(unsigned long long)cum);
		}
		fprintf(out, "%s_bucket{loop=\"%u\",le=\"+Inf\"} %llu\n", name,
			loops[i]->obs_id, (unsigned long long)h->count);
		fprintf(out, "%s_sum{loop=\"%u\"} %s\n", name, loops[i]->obs_id,
			seconds(num, sizeof(num), h->sum_ns));
		fprintf(out, "%s_count{loop=\"%u\"} %llu\n", name, loops[i]->obs_id,
			(unsigned long long)h->count);
	}
}

int rsc_metrics_write(struct rsc_loop *const *loops, unsigned n, FILE *out)
{
	static const struct {
		const char *name, *help;
	} gauges[] = {
		{ "ringscope_open_scopes", "Scopes not yet closed: open, unwinding, or unwound after a failure and waiting for their close." },
		{ "ringscope_open_entries", "Entries holding a resource: acquired, not yet released." },
		{ "ringscope_acquires_in_flight", "Acquires submitted and not yet completed." },
		{ "ringscope_ops_in_flight", "Operations (SQEs) in flight, tracked I/O and cancels included." },
		{ "ringscope_audit_findings", "Audit findings recorded and not cleared." },
	};
	struct gauges *open;
	char name[96];
	unsigned i, c, k;

	RSC__CHECK_ARG(loops, "rsc_metrics_write: loops is NULL");
	RSC__CHECK_ARG(n > 0, "rsc_metrics_write: n is 0");
	RSC__CHECK_ARG(out, "rsc_metrics_write: out is NULL");
	for (i = 0; i < n; i++) {
		RSC__CHECK_ARG(loops[i], "rsc_metrics_write: loops[%u] is NULL", i);
		/* A loop twice is two samples of one series: Prometheus drops the scrape. */
		for (k = 0; k < i; k++)
			RSC__CHECK_ARG(loops[k] != loops[i], "rsc_metrics_write: loops[%u] is loops[%u]",
				       i, k);
	}
	open = rsc__calloc(loops[0], n, sizeof(*open));
	if (!open)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		open[i] = count_open(loops[i]);
	for (c = 0; c < RSC_CTR_COUNT; c++) {
		snprintf(name, sizeof(name), "ringscope_%s_total", rsc_counter_name(c));
		family(out, name, "counter", counter_help(c));
		for (i = 0; i < n; i++)
			fprintf(out, "%s{loop=\"%u\"} %lld\n", name, loops[i]->obs_id,
				loops[i]->counters[c]);
	}
	for (k = 0; k < sizeof(gauges) / sizeof(gauges[0]); k++) {
		family(out, gauges[k].name, "gauge", gauges[k].help);
		for (i = 0; i < n; i++) {
			const struct rsc_loop *l = loops[i];
			unsigned v = k == 0 ? open[i].scopes : k == 1 ? open[i].entries :
				     k == 2 ? l->n_entering : k == 3 ? l->ops_inflight :
					      l->n_findings;

			fprintf(out, "%s{loop=\"%u\"} %u\n", gauges[k].name, l->obs_id, v);
		}
	}
	free(open);
	histogram(out, loops, n, true);
	histogram(out, loops, n, false);
	return rsc__print_done(out, 0, "rsc_metrics_write");
}

int rsc_loop_metrics(struct rsc_loop *loop, FILE *out)
{
	RSC__CHECK_ARG(loop, "rsc_loop_metrics: loop is NULL");
	RSC__CHECK_ARG(out, "rsc_loop_metrics: out is NULL");
	return rsc_metrics_write(&loop, 1, out);
}
