/* SPDX-License-Identifier: MIT */
#ifndef RSC_FAULT_H
#define RSC_FAULT_H

#include <stdbool.h>
#include <stdint.h>
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

/*
 * "missing:NAME" rules: what the loop takes the kernel to lack for its whole
 * life (an opcode, by the name rsc_err_name's table gives it, or one of these
 * features), so that a fallback the running kernel never needs can be run.
 */
enum rsc__missing_feature {
	RSC__MISSING_PROBE = 0,	      /* no opcode probe (Linux < 5.6) */
	RSC__MISSING_SINGLE_ISSUER,   /* IORING_SETUP_SINGLE_ISSUER (6.0) */
	RSC__MISSING_DEFER_TASKRUN,   /* IORING_SETUP_DEFER_TASKRUN (6.1) */
	RSC__MISSING_COOP_TASKRUN,    /* IORING_SETUP_COOP_TASKRUN (5.19) */
	RSC__MISSING_SUBMIT_ALL,      /* IORING_SETUP_SUBMIT_ALL (5.18) */
	RSC__MISSING_REGISTER_RING,   /* IORING_REGISTER_RING_FDS (5.18) */
	RSC__MISSING_CANCEL_FD,	      /* IORING_ASYNC_CANCEL_FD|ALL (5.19) */
	RSC__MISSING_RECV_MULTISHOT,  /* IORING_RECV_MULTISHOT (6.0) */
	RSC__MISSING_POLL_MULTISHOT,  /* IORING_POLL_ADD_MULTI (5.13) */
	RSC__MISSING_MSG_SEND_FD,     /* IORING_MSG_SEND_FD of MSG_RING (6.0) */
	RSC__MISSING_ACCEPT_MULTISHOT, /* IORING_ACCEPT_MULTISHOT (5.19) */
	RSC__MISSING__COUNT
};

struct rsc_fault_state {
	struct rsc_fault_rule rules[RSC__FAULT_RULES];
	unsigned n_rules;
	unsigned long seen[RSC__F__COUNT];
	uint64_t missing_ops;	   /* bit N: opcode N is missing */
	unsigned missing_features; /* bit N: enum rsc__missing_feature N */
};

struct rsc_loop;

#ifdef RSC_FAULT_INJECTION
/* -errno to inject at this occurrence of @kind, or 0. */
int rsc__fault(struct rsc_loop *loop, enum rsc__fault_kind kind);
int rsc__fault_state_hit(struct rsc_fault_state *f, enum rsc__fault_kind kind);
/* The heap, as the library uses it: NULL also when an alloc rule hits. */
void *rsc__malloc(struct rsc_loop *loop, size_t size);
void *rsc__calloc(struct rsc_loop *loop, size_t n, size_t size);
void *rsc__aligned_alloc(struct rsc_loop *loop, size_t align, size_t size);
void *rsc__realloc(struct rsc_loop *loop, void *p, size_t size);
char *rsc__strdup(struct rsc_loop *loop, const char *s);
/* The allocation of a loop itself, counted by the rules it will hold. */
#define rsc__fault_state_alloc(f) (rsc__fault_state_hit((f), RSC__F_ALLOC) != 0)
/* A "missing:" rule makes the loop take the kernel to lack this. */
static inline bool rsc__fault_missing_op(const struct rsc_fault_state *f, unsigned opcode)
{
	return opcode < 64 && (f->missing_ops >> opcode) & 1;
}
static inline bool rsc__fault_missing(const struct rsc_fault_state *f,
				      enum rsc__missing_feature what)
{
	return (f->missing_features >> what) & 1U;
}
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
#define rsc__aligned_alloc(loop, align, size) ((void)(loop), aligned_alloc((align), (size)))
#define rsc__realloc(loop, p, size) ((void)(loop), realloc((p), (size)))
#define rsc__strdup(loop, s) ((void)(loop), strdup(s))
#define rsc__fault_state_alloc(f) ((void)(f), 0)
#define rsc__fault_missing_op(f, opcode) ((void)(f), (void)(opcode), false)
#define rsc__fault_missing(f, what) ((void)(f), (void)(what), false)
#endif

int rsc__fault_from_env(struct rsc_fault_state *f);
int rsc__fault_kind_of_opcode(unsigned opcode);

#endif
