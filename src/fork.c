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
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/*
 * The process's fork generation, read by every rsc__loop_forked(): a word in
 * a page that the kernel gives the child of any fork zeroed (MADV_WIPEONFORK,
 * Linux 4.14), so that a child made by _Fork() or a raw fork system call,
 * which run no pthread_atfork handler, is seen as one too. Where that page
 * cannot be had, a plain word that only the handler moves on.
 */
static unsigned plain_word = 1;
unsigned *rsc__fork_word = &plain_word;
static unsigned fork_count = 1; /* the last generation given: never 0, never wiped */
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
	__atomic_store_n(rsc__fork_word, __atomic_add_fetch(&fork_count, 1, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	locks(false);
}

static void watch(void)
{
	size_t size = (size_t)sysconf(_SC_PAGESIZE);
	void *page = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (page != MAP_FAILED && madvise(page, size, MADV_WIPEONFORK) == 0) {
		*(unsigned *)page = __atomic_load_n(&plain_word, __ATOMIC_RELAXED);
		__atomic_store_n(&rsc__fork_word, (unsigned *)page, __ATOMIC_RELEASE);
	} else if (page != MAP_FAILED) {
		(void)munmap(page, size);
	}
	(void)pthread_atfork(before, in_parent, in_child);
}

/* The generation now, made anew if the page was wiped by a fork that ran no
 * handler (this is such a child): loops made here must not pass as current in
 * a child of this process either. */
unsigned rsc__fork_generation(void)
{
	unsigned zero = 0, now = __atomic_load_n(rsc__fork_word, __ATOMIC_RELAXED);

	if (now)
		return now;
	now = __atomic_add_fetch(&fork_count, 1, __ATOMIC_RELAXED);
	if (!__atomic_compare_exchange_n(rsc__fork_word, &zero, now, false, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		now = zero; /* another thread made it first */
	return now;
}

/* Initial-exec: read with one %fs-relative load, not a __tls_get_addr call per check. */
_Thread_local uint64_t rsc__thread_serial_tls __attribute__((tls_model("initial-exec")));
static uint64_t last_thread_serial;

uint64_t rsc__thread_serial_new(void)
{
	return rsc__thread_serial_tls = __atomic_add_fetch(&last_thread_serial, 1, __ATOMIC_RELAXED);
}

void rsc__fork_watch(struct rsc_loop *loop)
{
	pthread_once(&watch_once, watch);
	loop->fork_gen = rsc__fork_generation();
	loop->pid = getpid();
}

int rsc__forked_error(const struct rsc_loop *loop, const char *fn)
{
	rsc__set_last_error("%s: the loop was made by process %d, and this is a child of fork(2): its ring is the parent's "
			    "(make a new loop here; rsc_loop_close() frees this copy)",
			    fn, (int)loop->pid);
	return -ECHILD;
}
