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

/* Only the forking thread lives on in the child: a process-wide lock that
 * another thread held at the fork would never be let go, and what it guards
 * could be half changed. So the forking thread holds them all across it (none
 * is taken while another is held: any order will do). */
static void locks(bool lock)
{
	pthread_mutex_t *const *const all[] = { &rsc__host_fork_lock, &rsc__audit_fork_lock,
						&rsc__handover_fork_lock, &rsc__handles_fork_lock };
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		(lock ? pthread_mutex_lock : pthread_mutex_unlock)(*all[i]);
}

static void before(void)
{
	locks(true);
}

static void in_parent(void)
{
	locks(false);
}

static void in_child(void)
{
	__atomic_add_fetch(&rsc__fork_gen, 1, __ATOMIC_RELAXED);
	locks(false);
}

static void watch(void)
{
	(void)pthread_atfork(before, in_parent, in_child);
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
