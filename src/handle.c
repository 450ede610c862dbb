/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

#include "internal.h"

/*
 * Handles (man 7 ringscope, HANDLES). A scope or entry handle is not a
 * pointer: it is (generation << 32 | kind | slot + 1), decoded through one
 * process-wide table of slots. Freeing the object empties its slot and
 * bumps the slot's generation, so every older handle of that slot is
 * refused with -ESTALE, whatever object the pools put in that memory next,
 * on any loop. A slot whose generation would wrap is retired, never
 * reused: a handle can never name a second object. Loops take slots a
 * chunk at a time (one mutex per RSC__SLOTS_PER_CHUNK objects) and give the
 * chunks back when freed.
 */

#define MAX_CHUNKS (RSC__H_SLOT_MASK / RSC__SLOTS_PER_CHUNK + 1)

struct rsc__slot *rsc__slot_chunks[MAX_CHUNKS]; /* published with release */
static uint32_t free_chunks[MAX_CHUNKS];
static unsigned n_chunks, n_free_chunks;
static pthread_mutex_t chunk_lock = PTHREAD_MUTEX_INITIALIZER;

/* fork.c: held across a fork(2), so that the child's copy is whole and free. */
pthread_mutex_t *const rsc__handles_fork_lock = &chunk_lock;

/*
 * The generation a new slot starts at, drawn once per instance of the
 * library: a handle kept across dlclose(3) and dlopen(3) (the table is given
 * back with the library, unload.c) is not one the new table hands out again,
 * bar a 1 in 2^31 draw. Under chunk_lock.
 */
static uint32_t first_generation(void)
{
	static uint32_t base;
	uint32_t r;

	if (!base) {
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			r = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec * 2654435761U ^ (uint32_t)getpid();
		}
		base = (r & 0x7fffffffU) | 1; /* half the range left before a slot retires */
	}
	return base;
}

/* A chunk for @loop: one given back by a freed loop, or a new one. */
static int take_chunk(struct rsc_loop *loop)
{
	struct rsc__slot *c;
	uint32_t *owned, ci, i;

	owned = rsc__realloc(loop, loop->handle_chunks, (loop->n_handle_chunks + 1) * sizeof(*owned));
	if (!owned)
		return -ENOMEM;
	loop->handle_chunks = owned;
	loop->counters[RSC_CTR_POOL_ALLOCS]++;
	pthread_mutex_lock(&chunk_lock);
	if (n_free_chunks) {
		ci = free_chunks[--n_free_chunks];
	} else if (n_chunks < MAX_CHUNKS) {
		c = rsc__calloc(loop, RSC__SLOTS_PER_CHUNK, sizeof(*c));
		if (!c) {
			pthread_mutex_unlock(&chunk_lock);
			return -ENOMEM;
		}
		for (i = 0; i < RSC__SLOTS_PER_CHUNK; i++)
			c[i].gen = first_generation();
		ci = n_chunks++;
		__atomic_store_n(&rsc__slot_chunks[ci], c, __ATOMIC_RELEASE);
	} else {
		pthread_mutex_unlock(&chunk_lock);
		return -ENOMEM;
	}
	pthread_mutex_unlock(&chunk_lock);
	owned[loop->n_handle_chunks++] = ci;
	c = rsc__slot_chunks[ci];
	/* Lowest index first out: the free list is LIFO. */
	for (i = RSC__SLOTS_PER_CHUNK; i-- > 0;) {
		if (c[i].gen == RSC__RETIRED_GEN)
			continue;
		__atomic_store_n(&c[i].next_free, loop->handle_free, __ATOMIC_RELAXED);
		loop->handle_free = ci * RSC__SLOTS_PER_CHUNK + i + 1;
	}
	return 0;
}

/* rsc__handle_new()'s way for an object with no slot yet (internal.h). */
uint64_t rsc__handle_new_slot(struct rsc_loop *loop, void *obj, enum rsc__kind kind,
			      uint32_t *slot)
{
	while (!loop->handle_free)
		if (take_chunk(loop) < 0)
			return 0;
	*slot = loop->handle_free;
	loop->handle_free = rsc__slot_at(*slot - 1)->next_free;
	return rsc__handle_publish(obj, kind, *slot - 1);
}

void rsc__handle_free(struct rsc_loop *loop, uint64_t h, uint32_t *slot)
{
	rsc__handle_drop(loop, h, slot);
	if (!*slot)
		return; /* retired */
	__atomic_store_n(&rsc__slot_at(*slot - 1)->next_free, loop->handle_free, __ATOMIC_RELAXED);
	loop->handle_free = *slot;
	*slot = 0;
}

/* The loop is gone: its slots (all free by now) serve other loops. */
void rsc__handles_release(struct rsc_loop *loop)
{
	unsigned i;

	pthread_mutex_lock(&chunk_lock);
	for (i = 0; i < loop->n_handle_chunks; i++)
		free_chunks[n_free_chunks++] = loop->handle_chunks[i];
	pthread_mutex_unlock(&chunk_lock);
	free(loop->handle_chunks);
	loop->handle_chunks = NULL;
	loop->n_handle_chunks = 0;
	loop->handle_free = 0;
}

/*
 * The library is being unloaded (the last dlclose, or the exit): with no
 * loop left, the chunks go back to the heap, else a plugin loaded and
 * unloaded again and again would leak them each time (they are reachable
 * only from this library's data). The table is left empty, as at load, so a
 * lookup finds no chunk. Returns false, freeing nothing, while a loop lives.
 */
bool rsc__handles_unload(void)
{
	struct rsc__slot *c;
	bool idle;
	unsigned i;

	/* Busy: a loop is being made or freed right now (an exit() from a signal
	 * handler, say); never wait for it at exit, keep the chunks. */
	if (pthread_mutex_trylock(&chunk_lock) != 0)
		return false;
	idle = n_free_chunks == n_chunks; /* every loop holds a chunk from its creation on */
	for (i = 0; idle && i < n_chunks; i++) {
		c = rsc__slot_chunks[i];
		__atomic_store_n(&rsc__slot_chunks[i], NULL, __ATOMIC_RELEASE);
		free(c);
	}
	if (idle)
		n_chunks = n_free_chunks = 0;
	pthread_mutex_unlock(&chunk_lock);
	return idle;
}

bool rsc__handle_still(uint64_t h)
{
	uint32_t idx = ((uint32_t)h & RSC__H_SLOT_MASK) - 1;

	return __atomic_load_n(&rsc__slot_at(idx)->gen, __ATOMIC_SEQ_CST) == (uint32_t)(h >> 32);
}

/* @h's slot holds a live object of @h's generation that is no object of
 * @h's kind: the kind bits of a handle of another kind were changed. */
static bool live_of_other_kind(uint64_t h, uint32_t idx)
{
	const struct rsc__slot *sl = rsc__slot_at(idx);

	return __atomic_load_n(&sl->obj, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&sl->gen, __ATOMIC_ACQUIRE) == (uint32_t)(h >> 32);
}

int rsc__handle_error(uint64_t h, enum rsc__kind kind, const char *fn)
{
	const char *what = kind == RSC__K_SCOPE ? "scope" : kind == RSC__K_ENTRY ? "entry" : "chain";
	uint32_t lo = (uint32_t)h, idx = (lo & RSC__H_SLOT_MASK) - 1;

	if (!h) {
		rsc__set_last_error("%s: the %s handle is NULL", fn, what);
		return -EINVAL;
	}
	if ((lo & ~RSC__H_SLOT_MASK) != kind || idx >= RSC__H_SLOT_MASK ||
	    !__atomic_load_n(&rsc__slot_chunks[idx / RSC__SLOTS_PER_CHUNK], __ATOMIC_ACQUIRE) ||
	    live_of_other_kind(h, idx)) {
		rsc__set_last_error("%s: not a%s %s handle", fn, kind == RSC__K_ENTRY ? "n" : "",
				    what);
		return -EINVAL;
	}
	rsc__set_last_error("%s: stale %s handle: that %s was freed%s", fn, what, what,
			    kind == RSC__K_ENTRY ? " with its scope, or detached" :
			    kind == RSC__K_SCOPE ? " when its close completed" :
			    " when it was submitted, freed, or its loop closed");
	return -ESTALE;
}
