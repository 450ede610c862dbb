/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"

/*
 * Handles (man 7 ringscope, HANDLES). A scope or entry handle is not a
 * pointer: it is (generation << 32 | slot + 1), decoded through one
 * process-wide table of slots. Freeing the object bumps its slot's
 * generation, so every older handle of that slot is refused with -ESTALE,
 * whatever object the pools put in that memory next, on any loop. A slot
 * whose generation would wrap is retired, never reused: a handle can never
 * name a second object. Loops take slots a chunk at a time (one mutex per
 * RSC__SLOTS_PER_CHUNK objects) and give the chunks back when freed.
 */

#define MAX_CHUNKS 65536U /* 64M slots */
#define RETIRED_GEN UINT32_MAX

struct rsc__slot {
	uint32_t gen;	    /* atomic: read by decoders, written by the owner */
	uint8_t kind;	    /* atomic, as gen */
	uint32_t next_free; /* slot index + 1 in the loop's free list, or 0 */
	void *obj;	    /* atomic, as gen */
};

static struct rsc__slot *chunks[MAX_CHUNKS]; /* published with release */
static uint32_t free_chunks[MAX_CHUNKS];
static unsigned n_chunks, n_free_chunks;
static pthread_mutex_t chunk_lock = PTHREAD_MUTEX_INITIALIZER;

static struct rsc__slot *slot_at(uint32_t idx)
{
	struct rsc__slot *c;

	if (idx / RSC__SLOTS_PER_CHUNK >= MAX_CHUNKS)
		return NULL;
	c = __atomic_load_n(&chunks[idx / RSC__SLOTS_PER_CHUNK], __ATOMIC_ACQUIRE);
	return c ? &c[idx % RSC__SLOTS_PER_CHUNK] : NULL;
}

/* A chunk for @loop: one given back by a freed loop, or a new one. */
static int take_chunk(struct rsc_loop *loop)
{
	struct rsc__slot *c;
	uint32_t *owned, ci, i;

	owned = realloc(loop->handle_chunks, (loop->n_handle_chunks + 1) * sizeof(*owned));
	if (!owned)
		return -ENOMEM;
	loop->handle_chunks = owned;
	loop->counters[RSC_CTR_POOL_ALLOCS]++;
	pthread_mutex_lock(&chunk_lock);
	if (n_free_chunks) {
		ci = free_chunks[--n_free_chunks];
	} else if (n_chunks < MAX_CHUNKS) {
		c = calloc(RSC__SLOTS_PER_CHUNK, sizeof(*c));
		if (!c) {
			pthread_mutex_unlock(&chunk_lock);
			return -ENOMEM;
		}
		for (i = 0; i < RSC__SLOTS_PER_CHUNK; i++)
			c[i].gen = 1;
		ci = n_chunks++;
		__atomic_store_n(&chunks[ci], c, __ATOMIC_RELEASE);
	} else {
		pthread_mutex_unlock(&chunk_lock);
		return -ENOMEM;
	}
	pthread_mutex_unlock(&chunk_lock);
	owned[loop->n_handle_chunks++] = ci;
	c = chunks[ci];
	/* Lowest index first out: the free list is LIFO. */
	for (i = RSC__SLOTS_PER_CHUNK; i-- > 0;) {
		if (__atomic_load_n(&c[i].gen, __ATOMIC_RELAXED) == RETIRED_GEN)
			continue;
		c[i].next_free = loop->handle_free;
		loop->handle_free = ci * RSC__SLOTS_PER_CHUNK + i + 1;
	}
	return 0;
}

uint64_t rsc__handle_new(struct rsc_loop *loop, void *obj, enum rsc__kind kind)
{
	struct rsc__slot *sl;
	uint32_t idx;

	while (!loop->handle_free)
		if (take_chunk(loop) < 0)
			return 0;
	idx = loop->handle_free - 1;
	sl = slot_at(idx);
	loop->handle_free = sl->next_free;
	sl->next_free = 0;
	__atomic_store_n(&sl->kind, (uint8_t)kind, __ATOMIC_RELAXED);
	__atomic_store_n(&sl->obj, obj, __ATOMIC_RELAXED);
	return ((uint64_t)__atomic_load_n(&sl->gen, __ATOMIC_RELAXED) << 32) | (idx + 1);
}

void rsc__handle_drop(struct rsc_loop *loop, uint64_t h)
{
	uint32_t idx = (uint32_t)h - 1;
	struct rsc__slot *sl = slot_at(idx);
	uint32_t gen;

	assert(sl && __atomic_load_n(&sl->gen, __ATOMIC_RELAXED) == (uint32_t)(h >> 32));
	gen = (uint32_t)(h >> 32) + 1;
	__atomic_store_n(&sl->obj, NULL, __ATOMIC_RELAXED);
	/* Every handle made from this slot so far is stale from now on. */
	__atomic_store_n(&sl->gen, gen, __ATOMIC_RELEASE);
	if (gen == RETIRED_GEN)
		return; /* never handed out again: no generation is reused */
	sl->next_free = loop->handle_free;
	loop->handle_free = idx + 1;
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

int rsc__handle_obj(uint64_t h, enum rsc__kind kind, void **objp)
{
	struct rsc__slot *sl;
	void *obj;

	*objp = NULL;
	if ((uint32_t)h == 0)
		return -EINVAL;
	sl = slot_at((uint32_t)h - 1);
	if (!sl)
		return -EINVAL; /* never a handle at all */
	if (__atomic_load_n(&sl->gen, __ATOMIC_ACQUIRE) != (uint32_t)(h >> 32))
		return -ESTALE;
	obj = __atomic_load_n(&sl->obj, __ATOMIC_RELAXED);
	if (!obj)
		return -ESTALE;
	if (__atomic_load_n(&sl->kind, __ATOMIC_RELAXED) != kind)
		return -EINVAL; /* an entry passed as a scope, or the reverse */
	*objp = obj;
	return 0;
}

static const char *const kind_words[] = { "", "scope", "entry" };

int rsc__scope_from(const struct rsc_scope *h, struct rsc__scope **sp,
		    const char *fn)
{
	int ret = rsc__handle_obj((uint64_t)(uintptr_t)h, RSC__K_SCOPE, (void **)sp);

	if (ret == -ESTALE)
		rsc__set_last_error("%s: stale %s handle: that scope was closed and freed",
				    fn, kind_words[RSC__K_SCOPE]);
	else if (ret < 0)
		rsc__set_last_error("%s: %s is not a scope handle", fn, h ? "argument" : "NULL");
	return ret;
}

int rsc__entry_from(const struct rsc_entry *h, struct rsc__entry **ep,
		    const char *fn)
{
	int ret = rsc__handle_obj((uint64_t)(uintptr_t)h, RSC__K_ENTRY, (void **)ep);

	if (ret == -ESTALE)
		rsc__set_last_error("%s: stale %s handle: that entry was freed with its scope, or detached",
				    fn, kind_words[RSC__K_ENTRY]);
	else if (ret < 0)
		rsc__set_last_error("%s: %s is not an entry handle", fn, h ? "argument" : "NULL");
	return ret;
}
