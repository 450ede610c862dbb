/* SPDX-License-Identifier: MIT */
/*
 * Fork probes (ringscope(7), FORK; bug 58): now and then a stale-handle
 * probe also forks. The child finds every call on the program's loop refused
 * with -ECHILD, frees its copy with rsc_loop_close(), and holds no more
 * descriptors after that than before; the parent's program goes on, and its
 * oracle finds every completion still the parent's. And now and then a
 * callback (I/O, a scope's close, an early release, a post, an exit hook)
 * forks, and both processes return into the loop: the child must see nothing
 * more run there (no trace event; rsc_loop_run says -ECHILD) and reach the
 * program's next op, where it leaves. No op bytes of its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model.h"

/* The child's checks: 0, or which failed. */
static int in_child(struct prog *p, struct rsc_scope *s, struct rsc_entry *e)
{
	struct rsc_scope *fresh;
	int before = rsc_audit_fd_count();
	bool held[PROG_ENTRIES] = { false };

	/* Asked before the close: rsc_entry_state answers in a child. */
	for (int i = 0; i < p->n_en; i++) {
		const struct pentry *x = &p->en[i];

		held[i] = x->h && x->kind == K_FILE && x->fd_kind && x->n_entered && !x->n_released &&
			  !x->detached && p->sc[x->scope].valid && x->lw_fd > 2 &&
			  rsc_entry_state(x->h) == RSC_ENTERED;
	}

	if (rsc_loop_run(p->loop, RSC_RUN_NOWAIT) != -ECHILD)
		return 2;
	if (rsc_scope_open(p->loop, NULL, "fork", &fresh) != -ECHILD)
		return 3;
	if (s && rsc_scope_close(s, NULL, NULL) != -ECHILD)
		return 4;
	if (e && rsc_entry_fd(e) != -ECHILD)
		return 5;
	if (e && rsc_entry_release(e, NULL, NULL) != -ECHILD)
		return 6;
	if (rsc_loop_close(p->loop) != 0)
		return 7;
	if (rsc_audit_fd_count() > before)
		return 8;
	/* Each entry that held a descriptor, entered and not releasing: its copy went. */
	for (int i = 0; i < p->n_en; i++)
		if (held[i] && fcntl(p->en[i].lw_fd, F_GETFD) >= 0)
			return 9;
	return 0;
}

/* One in 64 stale probes, by the op's place: deterministic for a replay. */
bool fork_probe_due(const struct prog *p)
{
	return (p->env->kinds & KIND_FORK) && ((unsigned)p->op_index * 2654435761u) >> 26 == 0;
}

void fork_probe(struct prog *p, struct prog_stats *st)
{
	struct rsc_scope *s = NULL;
	struct rsc_entry *e = NULL;
	int i, status;
	pid_t pid;

	/* Live ones, asked here: the model's may have been freed since (an early
	 * release settles and frees its entry), and a stale handle is -ESTALE. */
	for (i = p->n_sc - 1; i >= 0 && !s; i--)
		if (p->sc[i].valid && rsc_scope_state(p->sc[i].h) >= 0)
			s = p->sc[i].h;
	for (i = p->n_en - 1; i >= 0 && !e; i--)
		if (p->sc[p->en[i].scope].valid && !p->en[i].detached && p->en[i].h &&
		    rsc_entry_state(p->en[i].h) >= 0)
			e = p->en[i].h;
	fflush(NULL); /* the child's exit must not write the parent's buffers twice */
	pid = fork();
	if (pid < 0)
		return; /* no process to spare: nothing to check */
	if (pid == 0)
		_exit(in_child(p, s, e));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		violation(p, "fork probe: the child %s %d (2 run, 3 scope_open, 4 scope_close, 5 entry_fd, "
			     "6 entry_release: not -ECHILD; 7 rsc_loop_close failed; 8 descriptors left; "
			     "9 an entry's descriptor left open)",
			  WIFEXITED(status) ? "exited" : "was killed by signal",
			  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return;
	}
	st->fork_probes++;
}

/* One callback in 64 or in 8 (I/O, a scope's close, an early release, a
 * post, an exit hook), by its op's place and @salt: a fork from inside it (bug 72 forked in a batch
 * set aside by a busy submit, and its child read the parent's CQ). */
void fork_from_callback(struct prog *p, unsigned salt)
{
	pid_t pid;

	/* Not where the program's own code drives a ring (an application's,
	 * its loop's or its peer's, or a host loop): that code would go on
	 * in the child too, and reap the parent's CQ. */
	if (!(p->env->kinds & KIND_FORK) || p->shared || sh_any_app() || p->pollable ||
	    p->fork_child || p->fork_pid)
		return;
	/* One in 64; one in 8 under ring faults, whose paths (a busy submit's
	 * completions set aside, an overflow) the child must not take either. */
	if (((unsigned)(p->op_index * 31 + (int)salt) * 2654435761u) >> (p->ring_rules ? 29 : 26) != 0)
		return;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return;
	if (pid == 0) {
		p->fork_child = true;
		alarm(10); /* a child stuck in the loop is killed, and the parent says so */
		/* Inside the callback, in the child too: refused, nothing freed
		 * (the run this returns into still reads the loop). */
		p->child_close_res = rsc_loop_close(p->loop);
		return;
	}
	p->fork_pid = pid;
}

/* The child leaves here, at its program's next op; the parent hears how. */
void fork_settle(struct prog *p, struct prog_stats *st)
{
	int status;

	if (p->fork_child)
		_exit(p->child_events ? 3 : p->child_close_res != -EDEADLK ? 4 :
		      p->loop && rsc_loop_close(p->loop) != 0 ? 5 : 0); /* out of the loop: closed now */
	if (!p->fork_pid)
		return;
	if (waitpid(p->fork_pid, &status, 0) != p->fork_pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		violation(p, "fork in a callback: the child %s %d (3: the loop ran on in it; 4: "
			     "rsc_loop_close inside the callback was not -EDEADLK; 5: out of it, it failed)",
			  WIFEXITED(status) ? "exited" : "was killed by signal",
			  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	else
		st->fork_callbacks++;
	p->fork_pid = 0;
}
