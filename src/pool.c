/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * Under AddressSanitizer a pooled object is poisoned while the pool holds
 * it: a pool hides a use after free from ASan, which would see no free().
 * The pool's own links (next_free, slot) stay readable.
 */
#if defined(__SANITIZE_ADDRESS__)
#define RSC__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define RSC__ASAN 1
#endif
#endif
#ifdef RSC__ASAN
#include <sanitizer/asan_interface.h>
#define POOL_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POOL_POISON(p, n)   ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/*
 * Free lists keep acquire/release free of malloc in steady state; every
 * allocation they make is counted in RSC_CTR_POOL_ALLOCS.
 */

/* Spread over the 31 bits of a generation, and never 0 (rsc__op_put skips it). */
static uint32_t new_gen_base(void)
{
	static uint32_t seq;
	uint32_t g;

	do {
		g = (__atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED) * 2654435761U) & RSC__OP_GEN_MASK;
	} while (!g);
	return g;
}

int rsc__op_chunk_grow(struct rsc_loop *loop)
{
	union rsc__op_place **chunks, *chunk;
	unsigned i, base;

	/* 2^32 ops would wrap the index field of user_data. */
	if ((uint64_t)(loop->n_op_chunks + 1) * RSC__OPS_PER_CHUNK >= UINT32_MAX)
		return -ENOMEM;
	chunks = rsc__realloc(loop, loop->op_chunks,
			 (loop->n_op_chunks + 1) * sizeof(*chunks));
	if (!chunks)
		return -ENOMEM;
	loop->op_chunks = chunks;
	/* Line-aligned: each op's hot first line is one line (union rsc__op_place). */
	chunk = rsc__aligned_alloc(loop, RSC__LINE, RSC__OPS_PER_CHUNK * sizeof(*chunk));
	if (!chunk)
		return -ENOMEM;
	memset(chunk, 0, RSC__OPS_PER_CHUNK * sizeof(*chunk));
	loop->counters[RSC_CTR_POOL_ALLOCS] += 2;
	if (!loop->op_gen_base)
		loop->op_gen_base = new_gen_base();
	base = loop->n_op_chunks * RSC__OPS_PER_CHUNK;
	chunks[loop->n_op_chunks++] = chunk;
	for (i = RSC__OPS_PER_CHUNK; i-- > 0;) {
		struct rsc_op *op = &chunk[i].op;

		op->idx = base + i;
		op->ud = rsc__op_make_user_data(loop->op_gen_base, op->idx);
		op->next_free = loop->free_ops;
		loop->free_ops = op;
	}
	return 0;
}

/*
 * Zero a pooled object's header 64 bytes at a time: GCC makes each piece a
 * few vector stores, where one memset of the whole is a rep stos whose
 * start-up cost every get paid (bench/README.md, fifteenth pass).
 */
RSC__INLINE void clear_lines(void *p, size_t len)
{
	char *c = p;
	size_t i;

	for (i = 0; i + 64 <= len; i += 64)
		memset(c + i, 0, 64);
	memset(c + i, 0, len - i);
}

RSC__HOT struct rsc__entry *rsc__entry_get(struct rsc_loop *loop)
{
	struct rsc__entry *e = loop->free_entries;

	if (e) {
		loop->free_entries = e->next_free;
		/* The next get's header, while the kernel's work may have evicted it. */
		__builtin_prefetch(loop->free_entries, 1);
		POOL_UNPOISON((char *)e + RSC__ENTRY_RESET_AT, RSC__ENTRY_RESET_LEN);
	} else {
		/* Room first for its close in the ledger's list (ledger.c). */
		if (!loop->shared && rsc__ledger_room(loop, loop->n_entries_made + 1) < 0)
			return NULL;
		/* Line-aligned: what a pair touches spans the fewest lines. */
		e = rsc__aligned_alloc(loop, RSC__LINE, RSC__LINES(sizeof(*e)));
		if (!e)
			return NULL;
		e->slot = 0;
		loop->n_entries_made++;
		loop->counters[RSC_CTR_POOL_ALLOCS]++;
	}
	/* Only the header is reset: detail_inline is written before use. */
	clear_lines((char *)e + RSC__ENTRY_RESET_AT, RSC__ENTRY_RESET_LEN);
	e->detail = e->detail_inline;
	e->detail_inline[0] = '\0';
	rsc__list_init(&e->io_ops);
	rsc__list_init(&e->enter_ops);
	/* A new handle every time: the old ones of this memory stay stale. */
	e->h = rsc__handle_new(loop, e, RSC__K_ENTRY, &e->slot);
	if (!e->h) {
		e->next_free = loop->free_entries;
		loop->free_entries = e;
		return NULL;
	}
	return e;
}

RSC__HOT void rsc__entry_put(struct rsc_loop *loop, struct rsc__entry *e)
{
	rsc__handle_drop(loop, e->h, &e->slot);
	rsc__audit_quiesce(); /* a describer may be reading its names */
	if (e->detail != e->detail_inline)
		free(e->detail);
	if (e->config & RSC__CFG_ROOM)
		rsc__room_put(loop, e->owned_arg);
	else if (e->owned_arg) /* most own none: no call into the allocator for them */
		free(e->owned_arg);
#ifdef RSC_DEBUG
	/* Poison so a use after the scope closed shows up at once. */
	memset((char *)e + RSC__ENTRY_RESET_AT, 0x6b, RSC__ENTRY_RESET_LEN);
#endif
	e->state = -1; /* dead: the API refuses it while the pool holds it */
	e->next_free = loop->free_entries;
	loop->free_entries = e;
	POOL_POISON((char *)e + RSC__ENTRY_RESET_AT, RSC__ENTRY_RESET_LEN);
}

RSC__HOT struct rsc__scope *rsc__scope_get(struct rsc_loop *loop)
{
	struct rsc__scope *s = loop->free_scopes;
	uint32_t slot = 0;

	if (s) {
		loop->free_scopes = s->next_free;
		slot = s->slot;
		POOL_UNPOISON(s, offsetof(struct rsc__scope, next_free));
	} else {
		s = rsc__malloc(loop, sizeof(*s));
		if (!s)
			return NULL;
		loop->counters[RSC_CTR_POOL_ALLOCS]++;
	}
	clear_lines(s, offsetof(struct rsc__scope, name)); /* the name is written by the opener */
	s->name[0] = '\0';
	s->slot = slot;
	s->loop = loop;
	s->dl_index = RSC__NO_DEADLINE;
	rsc__list_init(&s->children);
	rsc__list_init(&s->entries);
	s->h = rsc__handle_new(loop, s, RSC__K_SCOPE, &s->slot);
	if (!s->h) {
		s->next_free = loop->free_scopes;
		loop->free_scopes = s;
		return NULL;
	}
	return s;
}

RSC__HOT void rsc__scope_put(struct rsc_loop *loop, struct rsc__scope *s)
{
	rsc__handle_drop(loop, s->h, &s->slot);
	rsc__audit_quiesce(); /* a describer may be reading its name */
	if (s->fd_snapshot) /* a full audit's only */
		free(s->fd_snapshot);
#ifdef RSC_DEBUG
	{
		uint32_t slot = s->slot; /* the handle slot stays with the memory */

		memset(s, 0x6b, sizeof(*s));
		s->name[0] = '\0';
		s->slot = slot;
	}
#endif
	s->state = -1; /* dead: the API refuses it while the pool holds it */
	s->next_free = loop->free_scopes;
	loop->free_scopes = s;
	POOL_POISON(s, offsetof(struct rsc__scope, next_free));
}

/*
 * A room of RSC__ROOM_SIZE bytes for an entry's owned_arg, zeroed (as calloc
 * would: the callers rely on it, and valgrind cannot see the kernel's writes
 * into an accept's address room). @size is the caller's struct: checked
 * here so that no caller outgrows the room unnoticed.
 */
void *rsc__room_get(struct rsc_loop *loop, size_t size)
{
	struct rsc__room *r = loop->free_rooms;

	if (size > RSC__ROOM_SIZE) {
		rsc__set_last_error("internal: %zu bytes asked of a %d-byte room", size, RSC__ROOM_SIZE);
		return NULL;
	}
	if (r) {
		loop->free_rooms = r->next_free;
		POOL_UNPOISON(&r->u, sizeof(r->u));
		clear_lines(&r->u, sizeof(r->u));
	} else {
		r = rsc__calloc(loop, 1, sizeof(*r));
		if (!r)
			return NULL;
		loop->counters[RSC_CTR_POOL_ALLOCS]++;
	}
	return &r->u;
}

void rsc__room_put(struct rsc_loop *loop, void *room)
{
	struct rsc__room *r = room;

	if (!r)
		return;
	r->next_free = loop->free_rooms;
	loop->free_rooms = r;
	POOL_POISON(&r->u, sizeof(r->u));
}

/* A single-shot direct accept's address room (accept.c). */
struct rsc__peer *rsc__peer_get(struct rsc_loop *loop)
{
	struct rsc__peer *peer = rsc__room_get(loop, sizeof(*peer));

	if (peer)
		peer->len = sizeof(peer->addr); /* accept(2) reads the room's size */
	return peer;
}

void rsc__pools_free(struct rsc_loop *loop)
{
	unsigned i;

	while (loop->free_entries) {
		struct rsc__entry *e = loop->free_entries;

		loop->free_entries = e->next_free;
		free(e);
	}
	while (loop->free_rooms) {
		struct rsc__room *r = loop->free_rooms;

		loop->free_rooms = r->next_free;
		free(r);
	}
	while (loop->free_scopes) {
		struct rsc__scope *s = loop->free_scopes;

		loop->free_scopes = s->next_free;
		free(s);
	}
	for (i = 0; i < loop->n_op_chunks; i++)
		free(loop->op_chunks[i]);
	free(loop->op_chunks);
	loop->op_chunks = NULL;
	loop->n_op_chunks = 0;
}
