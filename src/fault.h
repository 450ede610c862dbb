/* SPDX-License-Identifier: MIT */
#ifndef RSC_FAULT_H
#define RSC_FAULT_H

#include <stdlib.h>
#include <string.h>

/* Where a fault can be injected (see rsc_fault_set(3)). */
enum rsc__fault_kind {
	RSC__F_OPENAT = 0,
	RSC__F_SOCKET,
	RSC__F_ACCEPT,
	RSC__F_CONNECT,
	RSC__F_CLOSE,
	RSC__F_FSYNC,
	RSC__F_CANCEL,
	RSC__F_SQ_FULL,
	RSC__F_SUBMIT,
	RSC__F_WAIT,
	RSC__F_CQ_OVERFLOW,
	RSC__F_MSG_RING, /* a look-up of IORING_OP_MSG_RING: as if the kernel lacked it */
	RSC__F_ALLOC,	 /* a heap allocation of the library's: as if malloc() returned NULL */
	RSC__F__COUNT
};

#define RSC__FAULT_RULES 16
/* The same range on every ABI: N is an int-sized count, as the man page says. */
#define RSC__FAULT_NTH_MAX 2147483647UL

struct rsc_fault_rule {
	enum rsc__fault_kind kind;
	unsigned long nth; /* fail the nth occurrence, counted from 1 */
	int err;	   /* -errno */
};

struct rsc_fault_state {
	struct rsc_fault_rule rules[RSC__FAULT_RULES];
	unsigned n_rules;
	unsigned long seen[RSC__F__COUNT];
};

struct rsc_loop;

#ifdef RSC_FAULT_INJECTION
/* -errno to inject at this occurrence of @kind, or 0. */
int rsc__fault(struct rsc_loop *loop, enum rsc__fault_kind kind);
int rsc__fault_state_hit(struct rsc_fault_state *f, enum rsc__fault_kind kind);
/* The heap, as the library uses it: NULL also when an alloc rule hits. */
void *rsc__malloc(struct rsc_loop *loop, size_t size);
void *rsc__calloc(struct rsc_loop *loop, size_t n, size_t size);
void *rsc__realloc(struct rsc_loop *loop, void *p, size_t size);
char *rsc__strdup(struct rsc_loop *loop, const char *s);
/* The allocation of a loop itself, counted by the rules it will hold. */
#define rsc__fault_state_alloc(f) (rsc__fault_state_hit((f), RSC__F_ALLOC) != 0)
#else
/* Release builds: no fault injection, and no cost at the call sites. */
static inline int rsc__fault(struct rsc_loop *loop, enum rsc__fault_kind kind)
{
	(void)loop;
	(void)kind;
	return 0;
}
#define rsc__malloc(loop, size) ((void)(loop), malloc(size))
#define rsc__calloc(loop, n, size) ((void)(loop), calloc((n), (size)))
#define rsc__realloc(loop, p, size) ((void)(loop), realloc((p), (size)))
#define rsc__strdup(loop, s) ((void)(loop), strdup(s))
#define rsc__fault_state_alloc(f) ((void)(f), 0)
#endif

int rsc__fault_from_env(struct rsc_fault_state *f);
int rsc__fault_kind_of_opcode(unsigned opcode);

#endif
