/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringscope.h"
#include "model.h"

/*
 * The audit's calls from where an application makes them: inside its
 * callbacks and hooks (rsc_audit_slots(3), rsc_audit_count(3),
 * rsc_audit_describe_fd(3), ...), in the middle of the runtime's step. Op
 * AUDIT_OP turns them on and off; while on, every callback and hook of the
 * program calls them. The model: a clean program has no finding, ever
 * (DESIGN 3), so the count is 0, there is no finding to read or print, and
 * rsc_audit_slots agrees with the kernel (0, or -EAGAIN when the kernel
 * could not take the ring's lock) unless a direct accept is armed, whose
 * slot may not be dispatched yet (rsc_audit_slots(3) says to call it when
 * none is); -ENXIO without a table. The ledger names the owner of a live
 * descriptor entry no unwind owns: its manager and its scope, where the
 * model says it is now (moves included).
 */

static struct prog_stats *g_st;
static bool in_probe; /* a finding's trace event would call back into us */
static unsigned rot;  /* which entry's descriptor to describe, turn by turn */

/* A descriptor entry the ledger must name, or -1. */
static int owned_fd_entry(const struct prog *p)
{
	int k, i;

	for (k = 0; k < p->n_en; k++) {
		const struct pentry *e;

		i = (int)((rot + (unsigned)k) % (unsigned)p->n_en);
		e = &p->en[i];
		if (!e->h || !p->sc[e->scope].valid || !e->fd_kind || e->chain ||
		    (e->kind != K_FILE && e->kind != K_SOCKET && e->kind != K_NET && e->kind != K_PIPE) ||
		    e->n_entered != 1 || e->n_released || e->early || e->detached || e->taken_over ||
		    rsc_entry_state(e->h) != RSC_ENTERED || unwind_owns(p, e->scope))
			continue;
		rot++;
		return i;
	}
	return -1;
}

static void describe(struct prog *p, const char *where)
{
	char buf[512], want[64];
	int i = owned_fd_entry(p), fd, ret;

	ret = rsc_audit_describe_fd(ch_listen_fd(), buf, sizeof(buf));
	if (ch_listen_fd() >= 0 && ret != -ENOENT)
		violation(p, "rsc_audit_describe_fd from %s of the soak's own listener: %s", where,
			  ret < 0 ? rsc_err_name(ret) : buf);
	if (i < 0)
		return;
	fd = rsc_entry_fd(p->en[i].h);
	ret = rsc_audit_describe_fd(fd, buf, sizeof(buf));
	snprintf(want, sizeof(want), "in scope '%s'", p->sc[p->en[i].scope].name);
	if (ret <= 0) {
		violation(p, "rsc_audit_describe_fd(%d) from %s, entry %d ('%s') of '%s': %s", fd, where,
			  p->en[i].seq, p->en[i].name, p->sc[p->en[i].scope].name, rsc_err_name(ret));
		return;
	}
	if (!strstr(buf, want) || !strstr(buf, rsc_entry_name(p->en[i].h)))
		violation(p, "rsc_audit_describe_fd(%d) from %s: '%s', but entry %d ('%s') of '%s' owns it",
			  fd, where, buf, p->en[i].seq, rsc_entry_name(p->en[i].h),
			  p->sc[p->en[i].scope].name);
	/* A pipe's write end is the same entry's (its value is the read end). */
	if (p->en[i].kind == K_PIPE) {
		int ends[2];

		ret = rsc_pipe_ends(p->en[i].h, ends);
		if (ret == 0)
			ret = rsc_audit_describe_fd(ends[1], buf, sizeof(buf));
		if (ret <= 0 || !strstr(buf, want) || !strstr(buf, rsc_entry_name(p->en[i].h)))
			violation(p, "the write end of pipe %d of '%s', described from %s: %s", p->en[i].seq,
				  p->sc[p->en[i].scope].name, where, ret <= 0 ? rsc_err_name(ret) : buf);
	}
}

static void slots(struct prog *p, const char *where)
{
	int used = rsc_loop_direct_used(p->loop), ret;

	if (used >= 0 && acc_direct_armed())
		return; /* its slot may be the kernel's alone until dispatched */
	ret = rsc_audit_slots(p->loop);
	g_st->audit_slot_calls++;
	if (ret != 0 && ret != -EAGAIN && p->env->verbose)
		for (int i = 0; i < p->n_en; i++)
			if (p->en[i].h && (p->en[i].kind == K_DIRECT || p->en[i].chain))
				say(p, "    slot entry %d seq %d of %s: state %d slot %d released %d early %d\n", i,
				    p->en[i].seq, p->sc[p->en[i].scope].name, rsc_entry_state(p->en[i].h),
				    rsc_entry_slot(p->en[i].h), p->en[i].n_released, p->en[i].early);
	if (used == -ENXIO ? ret != -ENXIO : ret != 0 && ret != -EAGAIN)
		violation(p, "rsc_audit_slots from %s: %s (%d slots in use), expected %s", where,
			  rsc_err_name(ret), used, used == -ENXIO ? "ENXIO" : "0");
}

void audit_probe(struct prog *p, const char *where)
{
	char *out = NULL;
	size_t out_len = 0;
	FILE *f;
	int n;

	if (!p || !p->audit_cb || !p->loop || p->failed || in_probe)
		return;
	in_probe = true;
	g_st->audit_probes++;
	/* The leaks planted on detached numbers (op_detach) are its only findings. */
	if ((n = rsc_audit_count(p->loop)) != p->planted_uncleared)
		violation(p, "rsc_audit_count from %s: %d findings in a clean program (%d planted)", where,
			  n, p->planted_uncleared);
	if (!p->planted_uncleared && rsc_audit_finding(p->loop, 0))
		violation(p, "rsc_audit_finding(0) from %s: a finding in a clean program", where);
	/* A stream of memory: no descriptor, and freed again (the soak counts both).
	 * One that grows: a fixed 4 KiB one filled up with the planted leaks' lines
	 * (escaped scope names and paths) and the print said -EIO, rightly. */
	f = open_memstream(&out, &out_len);
	if (f && (n = rsc_audit_print(p->loop, f)) != p->planted_uncleared)
		violation(p, "rsc_audit_print from %s: %d lines in a clean program (%d planted)", where, n,
			  p->planted_uncleared);
	if (f)
		fclose(f);
	free(out);
	if ((n = rsc_audit_clear(p->loop)) != 0)
		violation(p, "rsc_audit_clear from %s: %s", where, rsc_err_name(n));
	p->planted_uncleared = 0;
	if (rsc_audit_fd_count() <= 0)
		violation(p, "rsc_audit_fd_count from %s: %d", where, rsc_audit_fd_count());
	slots(p, where);
	describe(p, where);
	in_probe = false;
}

/* Op AUDIT_OP: the calls in callbacks on or off, and once now, outside any. */
void audit_op(struct prog *p, struct prog_stats *st)
{
	g_st = st;
	p->audit_cb = !p->audit_cb;
	say(p, "  op %d: audit from callbacks %s\n", p->op_index, p->audit_cb ? "on" : "off");
	audit_probe(p, "the program");
}
