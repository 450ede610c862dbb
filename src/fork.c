/* SPDX-License-Identifier: MIT */
/*
 * A loop does not cross fork(2) (ringscope(7), FORK): the child's copy of a
 * loop shares the parent's ring (its SQ and CQ are shared memory, its
 * registrations and its DEFER_TASKRUN work the parent's), so a child that
 * ran it would take the parent's completions. The child handler marks every
 * loop made before the fork: each call on one says -ECHILD, and
 * rsc_loop_close() frees the copy without touching the ring.
 */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "internal.h"

unsigned rsc__fork_gen;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;

/* Only the forking thread lives on in the child: the process-wide locks
 * another thread held at the fork would never be released. */
static void in_child(void)
{
	__atomic_add_fetch(&rsc__fork_gen, 1, __ATOMIC_RELAXED);
	rsc__handles_after_fork();
	rsc__audit_after_fork();
	rsc__handover_after_fork();
	rsc__host_after_fork();
}

static void watch(void)
{
	(void)pthread_atfork(NULL, NULL, in_child);
}

void rsc__fork_watch(struct rsc_loop *loop)
{
	pthread_once(&watch_once, watch);
	loop->fork_gen = __atomic_load_n(&rsc__fork_gen, __ATOMIC_RELAXED);
	loop->pid = getpid();
}

int rsc__forked_error(const struct rsc_loop *loop, const char *fn)
{
	rsc__set_last_error("%s: the loop was made by process %d, and this is a child of fork(2): its ring is the parent's "
			    "(make a new loop here; rsc_loop_close() frees this copy)",
			    fn, (int)loop->pid);
	return -ECHILD;
}
