/* SPDX-License-Identifier: MIT */
#ifndef RSC_INTERNAL_H
#define RSC_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <liburing.h>

#include "ringscope.h"
#include "fault.h"
#include "list.h"

/* Error paths are cold: GCC moves the code that leads to them out of the hot path. */
#define RSC__COLD __attribute__((cold))
/* The acquire and release path of every pair: kept together in .text.hot, so it spans fewer pages and lines between two io_uring_enter calls. */
#define RSC__HOT __attribute__((hot))
/* A small step of the pair path: always inline, whatever GCC's size estimate
 * says (a call there costs more than the step; bench/README.md, sixteenth pass). */
#define RSC__INLINE static inline __attribute__((always_inline))

#define RSC__DEFAULT_ENTRIES 256U
#define RSC__MAX_ENTRIES 32768U
#define RSC__OPS_PER_CHUNK 256U
#define RSC__DETAIL_INLINE 96U
#define RSC__SLOTS_PER_CHUNK 1024U
/* A cache line, and @n bytes rounded up to whole lines (pooled objects' strides). */
#define RSC__LINE 64U
#define RSC__LINES(n) (((n) + RSC__LINE - 1) / RSC__LINE * RSC__LINE)
/* The ledger covers descriptor numbers below this (the kernel's nr_open default). */
#define RSC__LEDGER_MAX_FD (1U << 20)
#define RSC__LEDGER_PAGE 4096U
#define RSC__NO_DEADLINE UINT32_MAX

/* Opcode slot meaning "the manager's hook itself failed". */
#define RSC__OPCODE_HOOK 255U

/*
 * Every user_data of ours has bit 63 set: an application sharing the ring
 * (rsc_loop_new_from_ring) keeps its own, which are pointers or small
 * numbers, and rsc_loop_dispatch() tells them apart. Op index 0 is never
 * an op: NONE is dropped, POST is rsc_loop_post()'s wake-up (the MSG_RING's
 * completion, or the eventfd poll's).
 */
#define RSC__UD_TAG (1ULL << 63)
#define RSC__UD_NONE RSC__UD_TAG
#define RSC__UD_POST 0xffffffff00000000ULL
#define RSC__OP_GEN_MASK 0x7fffffffU
/* A hand-over's user_data (handover.c): TAG | flags and an inbox's token in
 * the high half, 0 in the low half. The token has 30 bits; bit 62 carries
 * the sender's RSC_SHUTDOWN_ON_RELEASE to the receiving entry. */
#define RSC__TOKEN_MASK 0x3fffffffU
#define RSC__MSG_SHUTDOWN (1ULL << 62)
/* Or a low half with bit 31 set (no op index gets that high): the hand-over
 * carries a parcel, the peer's address, whose number is the other 31 bits. */
#define RSC__MSG_PARCEL 0x80000000U

struct rsc_op;
struct rsc__direct;
struct rsc__bufring;
typedef void (*rsc__op_fn)(struct rsc_loop *loop, struct rsc_op *op, int res,
			   unsigned cqe_flags);

/*
 * One SQE in flight. user_data is (gen << 32 | idx + 1), so a cancel aimed
 * at an op that already completed can never hit the op that reused it.
 */
/* An address as accept(2) writes it: the room, then the length. */
struct rsc__peer {
	socklen_t len;
	struct sockaddr_storage addr;
};

/*
 * Room for what an entry keeps until it is freed (its owned_arg): a call's
 * arguments (a connect's address, a timer's callback, a pipe's ends, a
 * chain step's slot), or the address a single-shot direct accept is given.
 * From its loop's pool (pool.c), so that acquiring allocates nothing in
 * steady state: the entry gives it back when it is freed (RSC__CFG_ROOM).
 */
#define RSC__ROOM_SIZE 160
_Static_assert(sizeof(struct rsc__peer) <= RSC__ROOM_SIZE, "an accept's address outgrew its room");
struct rsc__room {
	union {
		max_align_t align;
		unsigned char bytes[RSC__ROOM_SIZE];
	} u; /* first: the entry's owned_arg (and peer) point here */
	struct rsc__room *next_free;
};

struct rsc_op {
	/* What every op's get, submit, CQE and put touch: the first cache line. */
	uint32_t idx;
	/* A listed close of its entry's number: its place + 1 in loop->ledger_unsub
	 * (ledger.c), 0 otherwise; back to 0 once let go of, so never stale. */
	uint32_t unsub;
	rsc__op_fn complete;
	struct rsc__entry *entry;
	struct rsc_op *next_free;
	uint8_t opcode;	 /* for naming the operation in errors */
	bool primary;	 /* first SQE of an enter: its CQE decides the enter */
	uint8_t closes;	   /* RSC__CLOSES_*: an IORING_OP_CLOSE of one of the entry's own */
	uint8_t sqe_idx;   /* its place among the SQEs its hook reserved */
	bool enter_listed; /* on its entry's enter_ops (io_node) until its CQE */
	bool cancel_owed; /* a cancel of it found no memory, even for the backlog (loop.c) */
	bool io_stopped;  /* rsc_entry_cancel_io() ended it: a multishot is not armed again */
	bool slot_move;   /* half of an install or hand-over: an ownership move, not the caller's I/O */
	int fault_res;	   /* injected result replacing the CQE's, or 0 */
	uint64_t grace_seq; /* loop->grace_seq when it began: graceful.c orders it with a grace's start */
	/* Its user_data: the tag, this use's generation (moved on at each put, so
	 * a late CQE or cancel of an earlier use names no op) and idx + 1. */
	uint64_t ud;
	/* Tracked I/O (io.c): the caller's buffer is ours until the final CQE. */
	rsc_io_cb io_cb;
	void *io_buf, *io_data;
	struct rsc__list io_node; /* in its entry's io_ops while in flight */
	/* Accept (accept.c) */
	rsc_accept_cb accept_cb;
	unsigned accept_flags, backoff_ms;
	struct rsc__peer *peer; /* a single-shot direct accept's address, or NULL */
	struct __kernel_timespec ts; /* a backoff timer's, read at submit */
	/* A cancel (loop.c): its target's user_data, and how often it was sent. */
	uint64_t cancel_ud;
	unsigned cancel_tries;
	/* Tracked I/O: when it started (loop->io_seq); a cancel by descriptor: the
	 * first number it does not cover (io.c's short fallback spares later ops). */
	uint32_t io_seq;
	/* A cancel by descriptor: whose ops (an entry handle), and how many it should find. */
	uint64_t cancel_entry;
	unsigned cancel_expect;
	/* An entry's op whose request posts more than one CQE (a zero-copy send's
	 * notification): the first CQE's result, kept until the last (entry.c). */
	int more_res;
};

/*
 * An op's place in its chunk: whole cache lines, in line-aligned chunks
 * (pool.c), so the first line of every op is one line, not two.
 */
union rsc__op_place {
	struct rsc_op op;
	unsigned char lines[RSC__LINES(sizeof(struct rsc_op))];
};
_Static_assert(offsetof(struct rsc_op, ud) + sizeof(uint64_t) <= RSC__LINE,
	       "what every op's get, submit, CQE and put touch outgrew its first line");

/* Which of its entry's own an op closes (struct rsc_op.closes). */
enum { RSC__CLOSES_NONE = 0, RSC__CLOSES_VALUE, RSC__CLOSES_VALUE2 };

/* What an entry's value names (struct rsc__entry.fd_kind). */
enum rsc__fd_kind { RSC__FD_PROCESS = 0, RSC__FD_DIRECT };

enum rsc__phase { RSC__PHASE_NONE = 0, RSC__PHASE_ENTER, RSC__PHASE_EXIT };

/*
 * Entry configuration (struct rsc__entry.config): what the entry is, fixed
 * before its first SQE goes out (by its maker, or by its own enter hook),
 * changed later only where ownership moves to it (take_over_dep(), a slot
 * installed as a descriptor).
 */
#define RSC__CFG_FD	     (1U << 0) /* value is a descriptor the audit may check */
#define RSC__CFG_ORDERED     (1U << 1) /* release waits for every release above it */
#define RSC__CFG_FSYNC	     (1U << 2) /* release = fsync, then close (manager_fd.c) */
#define RSC__CFG_SHUTDOWN    (1U << 3) /* release = shutdown, then close */
#define RSC__CFG_BUILTIN     (1U << 4) /* arg was for the enter only */
#define RSC__CFG_OWN_HOOKS   (1U << 5) /* a built-in: its hooks get the entry as arg */
#define RSC__CFG_ALL_OR_NONE (1U << 6) /* its enter fails if any of its SQEs fails */
#define RSC__CFG_TAKES_DEP   (1U << 7) /* on success it takes over dep's descriptor */
#define RSC__CFG_NO_FD	     (1U << 8) /* its value is no descriptor (defer, timer): no I/O on it */
#define RSC__CFG_ROOM        (1U << 9) /* owned_arg is a pooled room (rsc__room_get): back to the pool with it */
#define RSC__CFG_PIPE        (1U << 10) /* rsc_pipe: its CQE is 0, its ends are in its args (manager_direct.c) */
#define RSC__CFG_ADOPTED     (1U << 11) /* rsc_adopt: its descriptor may be a dup of another entry's (io.c) */

/* Entry lifecycle flags (struct rsc__entry.flags): set and cleared as it runs. */
#define RSC__E_RELEASE_REQ  (1U << 2) /* released early: off the unwind */
#define RSC__E_IN_BATCH	    (1U << 3) /* part of the unwind batch in flight */
#define RSC__E_DONE	    (1U << 4) /* exit completed, not yet reported */
#define RSC__E_CANCEL_SENT  (1U << 5)
#define RSC__E_SUPPRESS	    (1U << 6) /* exit asked to suppress the pending error */
#define RSC__E_IDENTITY	    (1U << 7) /* dev/ino recorded (FULL audit) */
#define RSC__E_REPORTED_ERR (1U << 8) /* its enter error is already pending */
#define RSC__E_RETRY_NOP    (1U << 11) /* exit hook ran; only its NOP is missing */
#define RSC__E_RETRY_HOOK   (1U << 12) /* exit hook could not get SQEs: call again */
#define RSC__E_DRAINING	    (1U << 13) /* release waits for its I/O to complete */
#define RSC__E_DEFERRED	    (1U << 14) /* enter waits for entry 'dep' to enter */
#define RSC__E_TIMED_OUT    (1U << 16) /* its enter's linked timeout fired */
#define RSC__E_HAS_DEPS	    (1U << 17) /* some deferred entry waits for this one */
#define RSC__E_LEDGER	    (1U << 19) /* its value is in the ownership ledger */
#define RSC__E_LEDGER2	    (1U << 18) /* ... and so is its value2 (a pipe's write end) */
#define RSC__E_ANNOUNCE	    (1U << 20) /* entered by adopt/defer: on-enter still due */
#define RSC__E_BUILT_ON	    (1U << 25) /* an enter in flight builds on its value (a connect on its socket) */
#define RSC__E_IO_CUT	    (1U << 26) /* its I/O was cancelled by a deadline above it (scope.c) */
#define RSC__E_CLOSE_NEXT   (1U << 27) /* its release's close follows its shutdown/fsync (manager_fd.c) */
#define RSC__E_RETRY_CLOSE  (1U << 28) /* ... and could not get its SQE: prepared on a later turn */
#define RSC__E_SLOT_LOST    (1U << 29) /* a slot of its was emptied behind its back and given out again (direct.c) */

/* The ledger flag of the number a close names (RSC__CLOSES_VALUE or _VALUE2). */
static inline unsigned rsc__ledger_flag_of(uint8_t closes)
{
	return closes == RSC__CLOSES_VALUE2 ? RSC__E_LEDGER2 : RSC__E_LEDGER;
}

/* Opcodes newer than liburing 2.3's header (Linux 6.11), prepared by hand. */
#define RSC__OP_BIND 56U
#define RSC__OP_LISTEN 57U
#define RSC__OP_FIXED_FD_INSTALL 54U /* Linux 6.8 */
#define RSC__OP_PIPE 62U	     /* Linux 6.16 */
#define RSC__FIXED_FD_NO_CLOEXEC (1U << 0)

/* Turns a release may wait for an SQE before it is settled as failed. */
#define RSC__EXIT_RETRIES 1000U

struct rsc__entry {
	/* Kept across reuse by the pool (never cleared or poisoned): */
	struct rsc__entry *next_free;
	uint32_t slot; /* its handle slot + 1 (0: none) */
	/* Lists: rsc__entry_get() sets the heads; links are read only while on their list. */
	struct rsc__list scope_node; /* in its scope's entries, after the older ones */
	struct rsc__list io_ops;     /* its tracked ops in flight (rsc_op.io_node), newest first */
	struct rsc__list enter_ops;  /* its enter hook's ops in flight (rsc_op.io_node) */
	/* From here to detail_inline, cleared by rsc__entry_get(): what every
	 * acquire and release reads first, the rest after (fewer cache lines). */
	uint64_t h; /* its handle (handle.c) */
	struct rsc__scope *scope;
	const struct rsc_manager *mgr;
	void *arg;
	int state;
	int value;    /* enter's CQE res: descriptor or -errno */
	unsigned config; /* RSC__CFG_* */
	unsigned flags;	 /* RSC__E_* */
	enum rsc__phase phase;
	unsigned phase_ops; /* ops of the current phase still in flight */
	struct rsc_op *enter_op;
	int exit_res; /* the release's result: the hook's -errno, else the first failed SQE's */
	uint8_t exit_opcode;
	uint8_t exit_sqe_idx; /* the SQE that raised exit_res: the first in SQE order wins */
	uint8_t exit_failed;  /* bit i: the exit's SQE i failed (exit_sqe_res[i]); 0 until its exit */
	uint8_t enter_opcode;
	int enter_err;	      /* RSC__CFG_ALL_OR_NONE: first failure among its SQEs */
	uint8_t enter_err_opcode;
	/* Descriptor kind (direct.c): a process descriptor (the ledger's) or a
	 * slot of the loop's direct table (the table's, never the ledger's). */
	uint8_t fd_kind;  /* enum rsc__fd_kind */
	bool has_value2;  /* value2 holds a second end (rsc_pipe's write end) */
	bool custom_slot_sqe; /* a custom hook's acquire SQE fills a slot (file_index) */
	int value2;
	int close_res;	/* CQE of the exit's IORING_OP_CLOSE of value; 1 if none */
	int close_res2; /* ... of value2 (has_value2); 1 if none */
	unsigned n_io;	  /* tracked I/O in flight on this entry (io.c) */
	unsigned io_stops; /* rsc_entry_cancel_io() calls: one in a shortage's callback stops the re-arm */
	rsc_entry_cb enter_cb, release_cb;
	rsc_entry_cb entered_hook; /* the runtime's own (rsc_timer), beside enter_cb */
	struct rsc__entry *dep; /* RSC__E_DEFERRED: the entry this one builds on */
	char *detail; /* points at detail_inline or a heap copy */
	const void *site; /* return address of the rsc_open/rsc_socket/rsc_push call */
	unsigned obs_state;		       /* RSC__OBS_BEGUN, RSC__OBS_OPEN */
	unsigned exit_retries;
	void *enter_data, *release_data;
	void *entered_hook_data;
	void *user_data; /* rsc_entry_set_data() */
	void *owned_arg;       /* freed with the entry: args a deferred enter needs */
	const char *fail_op;   /* names a failure a hook found itself ("bind") */
	uint64_t obs_t_acquire, obs_t_release; /* ns, only while observed (observe.h) */
	dev_t dev;
	ino_t ino;
	/* A direct slot's peer, which no getpeername(2) can reach: the address
	 * the kernel wrote at its accept, or a connect step's target. Points
	 * into owned_arg (freed with the entry); NULL if unknown. */
	const struct rsc__peer *peer;
	/* Everything from h to here is cleared by rsc__entry_get(); nothing below is. */
	char detail_inline[RSC__DETAIL_INLINE];
	/* Each failed SQE of the exit (bits of exit_failed): every one is an error of its own. */
	int exit_sqe_res[RSC_ENTRY_SQES_MAX];
	uint8_t exit_sqe_opcode[RSC_ENTRY_SQES_MAX];
	/* RSC__E_SUPPRESS in an unwind: the pending error its exit was handed (a reference). */
	struct rsc_error *suppressed;
	struct rsc__list announce_node; /* in loop->announce_queue */
	struct rsc__list retry_node;	/* exit waiting for an SQE (loop->retry_list) */
	struct rsc__list io_entry_node; /* in loop->io_entries while n_io > 0 (io.c) */
};

/* @e keeps @room (rsc__room_get) until it is freed, then gives it back to the pool. */
static inline void rsc__entry_keep_room(struct rsc__entry *e, void *room)
{
	e->owned_arg = room;
	e->config |= RSC__CFG_ROOM;
}

/* What rsc__entry_get() clears and the pool poisons: h up to detail_inline. */
#define RSC__ENTRY_RESET_AT offsetof(struct rsc__entry, h)
#define RSC__ENTRY_RESET_LEN \
	(offsetof(struct rsc__entry, detail_inline) - offsetof(struct rsc__entry, h))

enum rsc__closer { RSC__CLOSER_NONE = 0, RSC__CLOSER_USER, RSC__CLOSER_PARENT };

/*
 * How far an unwind above (or its own) has reached a scope and its whole
 * subtree at once (struct rsc__scope.cut, scope.c); each level includes
 * the ones before it. A close ends the deadlines below; a failure or a
 * failed acquire also cancels every acquire in flight below; a deadline
 * also cancels every tracked op (Trio: cancellation reaches all of it).
 */
enum rsc__cut {
	RSC__CUT_NONE = 0,
	RSC__CUT_DEADLINES,
	RSC__CUT_ACQUIRES,
	RSC__CUT_IO,
};

enum rsc__unwind_step {
	RSC__U_CHILDREN = 0,
	RSC__U_WAIT_ENTERING,
	RSC__U_EXITS,
	RSC__U_WAIT_EARLY,
	RSC__U_DONE,
};

struct rsc__scope {
	uint64_t h; /* its handle (handle.c): first, so a lookup can check it */
	struct rsc_loop *loop;
	struct rsc__scope *parent;
	int state;
	enum rsc__closer closer;
	bool consumed;	   /* a parent took its result */
	bool from_parent;  /* its unwind started from the parent's pending error */
	struct rsc_error *started_from; /* that error (a reference), if from_parent */
	bool in_step_queue; /* queued on loop->step_queue: stepped iteratively */
	bool fail_queued;   /* rsc_scope_fail(): its unwind starts next turn */
	bool owns_cached;   /* rsc__scope_unwind_owns()'s answer, valid at owns_epoch */
	uint64_t owns_epoch;
	enum rsc__unwind_step step;
	/* Positions in children and entries; the list's head when none is left. */
	struct rsc__list *child_cursor;
	struct rsc__list *cursor; /* next entry the unwind considers */
	struct rsc__list *report; /* next entry whose exit is reported */
	unsigned batch_outstanding;
	bool batch_held; /* the batch's last exit holds the exits below until the batch completes */
	unsigned n_entering;
	unsigned n_early;	  /* early releases in flight */
	struct rsc_error *pending;
	rsc_scope_close_cb close_cb;
	void *close_data;
	rsc_scope_close_cb on_close_cb; /* rsc_scope_on_close(): whoever closed it */
	void *on_close_data;
	void *user_data; /* rsc_scope_set_data() */
	uint64_t *fd_snapshot; /* FULL audit: bitmap of fds open at scope open */
	unsigned fd_snapshot_bits;
	uint64_t snap_seq; /* loop->audit_seq when it was taken */
	uint64_t dl_ns;	   /* deadline, CLOCK_MONOTONIC ns (deadline.c): its heap key may be earlier */
	unsigned dl_index; /* in loop->dl_heap, or RSC__NO_DEADLINE */
	unsigned dl_flags;
	/* Graceful close (graceful.c) */
	bool grace;
	/* Its unwind cancels (a deadline, a failure, a failed acquire, or an
	 * ancestor's such unwind): it cuts the graces below it (graceful.c). */
	bool cancelling;
	uint8_t cut; /* enum rsc__cut: reached so far, with everything below it */
	uint64_t g_seq; /* loop->grace_seq its grace began with: older ops were in flight then */
	unsigned g_drained, g_cancelled;
	struct rsc_op *grace_timer;
	bool in_ready;	   /* queued: to start its unwind, or to finish its close */
	struct rsc__scope *next_free;
	uint32_t slot; /* as rsc__entry's */
	char name[RSC_NAME_MAX];
	/* Lists: rsc__scope_get() sets the heads; links are read only while on their list. */
	struct rsc__list children;	/* rsc__scope.child_node, oldest first */
	struct rsc__list entries;	/* rsc__entry.scope_node, oldest first */
	struct rsc__list child_node;	/* in its parent's children, after the older ones */
	struct rsc__list graceful_node; /* in loop->graceful_list */
	struct rsc__list step_node;	/* in loop->step_queue */
	struct rsc__list ready_node;	/* in loop->ready_queue */
	uint64_t obs_t_open; /* ns when its trace slice began, 0 if none (observe.h) */
};

struct rsc_cqe_copy {
	uint64_t user_data;
	int32_t res;
	uint32_t flags;
};

struct rsc_finding {
	int kind;
	int fd;
	bool slot; /* fd is a slot of the direct table (every RSC_FINDING_SLOT_*, and a direct entry's) */
	char target[256];
	char scope[RSC_NAME_MAX];
	char expected[320];
};

struct rsc_audit_pending {
	struct rsc__list node; /* in loop->audit_pending */
	uint64_t *fd_snapshot;
	unsigned fd_snapshot_bits;
	uint64_t snap_seq;
	/* If its verdict had to wait: the descriptors that were new when it
	 * had unwound, by identity, for only they can be its leaks (has_cands
	 * false: settled at once, or no memory, and judged by number). */
	struct rsc_audit_cand { int fd; dev_t dev; ino_t ino; } *cands;
	unsigned n_cands;
	bool has_cands;
	char scope[RSC_NAME_MAX];
};

struct rsc_loop {
	struct io_uring *ring; /* own_ring, or the application's (rsc_loop_new_from_ring) */
	struct io_uring own_ring;
	bool shared;	 /* the application reaps: dispatch only through rsc_loop_dispatch */
	bool pollable;	 /* RSC_LOOP_POLLABLE: poll_efd tells a host loop there is work */
	bool kicked;	 /* poll_efd written since the last run */
	bool shared_wake; /* a NOP of ours in flight on the application's ring (run_shared) */
	int poll_efd;
	struct rsc__list live_node; /* process-wide list: audit.c */
	unsigned features;
	/* RSC_FEAT_SINGLE_ISSUER: the thread that made the ring, the only one the
	 * kernel lets enter it (and whose table holds its registered index). */
	uint64_t issuer; /* rsc__thread_serial() of the thread that made its ring */
	/* fork.c: the fork generation it was made in, and by which process. */
	unsigned fork_gen;
	pid_t pid;
	bool in_child; /* rsc_loop_close() in a child of fork(2): the ring is the parent's */
	int audit_level;
	bool running;
	struct io_uring_probe *probe;
	uint64_t opcodes_ok[4]; /* the probe's answer as bits (rsc__opcode_supported) */
	struct rsc__scope *root;
	uint64_t closing_epoch; /* bumped when a scope's closing state changes (scope.c) */

	/* op table: chunks of RSC__OPS_PER_CHUNK, indices stable for life */
	union rsc__op_place **op_chunks;
	unsigned n_op_chunks;
	/* Free lists are stacks, not rsc__lists: on every acquire and release,
	 * a list costs ~1% more instructions a pair (make bench-instr). */
	struct rsc_op *free_ops;
	/* The first generation of every op: the loop's own, so that another
	 * loop's CQE (same index, as many reuses) names no op of this one. */
	uint32_t op_gen_base;
	unsigned ops_inflight;
	unsigned undispatched; /* final CQEs copied off the ring, not yet dispatched */
	/* Closes prepared but not submitted yet: their numbers are still owned
	 * (rsc_adopt(3)), marked closing while an enter submits them, and leave
	 * the ledger once each has run (ledger.c). */
	struct rsc__ledger_pending { uint64_t *cell; uint64_t h; struct rsc_op *op; } *ledger_unsub;
	unsigned n_ledger_unsub, cap_ledger_unsub;
	unsigned n_ledger_running; /* listed closes not seen done yet (ledger.c's closes_ran) */
	unsigned n_inboxes; /* inboxes receiving (handover.c): closing states are told to them */
	/* Entries with tracked I/O in flight, and those of them adopted (one may hold a
	 * dup(2) of another entry's descriptor): when a cancel by descriptor is safe (io.c). */
	unsigned n_io_entries, n_adopted_io;
	unsigned nops_inflight; /* rsc__nop_sqes' NOPs whose CQEs have not come yet */
	uint32_t io_seq; /* tracked ops started so far, modulo 2^32 (io.c) */
	unsigned n_entries_made; /* the entry pool's size: the list above has room for each */
	/* Ledger pages made ahead, one per install in flight (ledger.c): the
	 * number an install gets is the kernel's choice, known only at its CQE,
	 * when nothing may fail any more. Linked through their first cell. */
	uint64_t *ledger_spares;
	unsigned n_ledger_spares, installs_inflight;

	/* Handle slots this loop holds (handle.c). */
	uint32_t handle_free; /* slot index + 1, or 0 */
	uint32_t *handle_chunks;
	unsigned n_handle_chunks;
	/* Hooks and callbacks running now, in or outside rsc_loop_run. */
	unsigned cb_depth;
	/* rsc_loop_post() (post.c): any thread queues; a MSG_RING, or an
	 * eventfd the loop polls, wakes the loop. */
	pthread_mutex_t post_lock;
	bool post_lock_ok, closing, waker_ok;
	bool posts_refused; /* rsc_loop_close/shutdown drain: a new post would keep them going */
	uint8_t post_wake; /* enum rsc__post_wake, chosen when the loop is made */
	/* Not an rsc__list: other threads push it, and the loop reads it lock-free. */
	struct rsc__post *post_head; /* newest first; atomic outside the lock */
	/* A shared ring: MSG_RING wakes sent whose CQE the application has not
	 * yet dispatched (atomic). The loop is alive, and not to be freed, until
	 * then: the CQE is ours, on a ring that outlives us. */
	unsigned wakes_unreaped;
	struct io_uring waker; /* posts' MSG_RING goes out here, under post_lock */
	int post_efd;	     /* RSC__WAKE_EVENTFD: written by posters, or -1 */
	bool post_armed;     /* its poll is prepared or in flight (loop's thread only) */
	bool post_multishot; /* armed with IORING_POLL_ADD_MULTI (Linux 5.13) */
	/* rsc__post_run is running posts on post_runner (atomic: posters read
	 * them): a post one of them makes sends no wake (rsc_loop_post). */
	bool in_post_run;
	pthread_t post_runner;
	/* Adopted/deferred entries whose on-enter callback is due. */
	struct rsc__list announce_queue; /* rsc__entry.announce_node, FIFO */

	struct rsc__entry *free_entries; /* stacks, as free_ops */
	struct rsc__scope *free_scopes;
	struct rsc__room *free_rooms; /* entries' owned_arg rooms (rsc__room_get) */
	struct rsc__list ready_queue;	  /* rsc__scope.ready_node, FIFO */
	struct rsc__list graceful_list; /* scopes in their grace period, newest first */
	struct rsc__list io_entries;	/* entries with tracked I/O in flight (io.c) */
	uint64_t grace_seq; /* graceful closes begun: ops are stamped with it (graceful.c) */
	/* Scope deadlines: a min-heap, one kernel timer for the earliest. */
	struct rsc__dl_slot {
		uint64_t key;	      /* when to look at s: at or before its deadline */
		struct rsc__scope *s;
	} *dl_heap;
	unsigned dl_n, dl_cap;
	struct rsc_op *dl_timer;
	uint64_t dl_armed_ns;
	bool dl_rearm; /* the kernel timer could not be armed: tried again each turn */
	struct __kernel_timespec dl_update_ts; /* read by the kernel at submit */
	/* Scopes whose unwind must take a step: a queue, so depth never recurses. */
	struct rsc__list step_queue; /* rsc__scope.step_node, FIFO */
	bool stepping;
	/* Releases that could not get an SQE yet: retried every turn. */
	struct rsc__list chains; /* rsc__chain.node: made, neither submitted nor freed */
	struct rsc__list retry_list; /* rsc__entry.retry_node, newest first */

	/* CQEs set aside while submit needed room (-EBUSY): dispatched next turn */
	struct rsc_cqe_copy *stash;
	unsigned stash_len, stash_cap;
	/* Cancels that found no SQE: their targets' user_data, sent on the next turn. */
	uint64_t *cancel_backlog;
	unsigned n_cancel_backlog, cancel_backlog_cap;
	unsigned n_cancel_owed; /* ops marked cancel_owed, still in flight */

	struct rsc_fault_state faults;
	rsc_trace_cb trace_cb;
	void *trace_data;
	long long counters[RSC_CTR_COUNT];

	/* The SQEs of the hook running now; hooks never nest (rsc__push refuses). */
	struct rsc__entry *hook_entry;
	bool tracing; /* the trace callback runs: it observes, as a hook it changes nothing */
	struct io_uring_sqe *hook_sqes[RSC_ENTRY_SQES_MAX];
	struct rsc_op *hook_ops[RSC_ENTRY_SQES_MAX];
	unsigned n_hook_sqes;

	int proc_fd_dir; /* O_DIRECTORY handle on /proc/self/fd, or -1 */
	unsigned n_entering; /* acquires in flight, loop-wide */
	unsigned n_orphans;  /* accepted descriptors nobody could own, their close in flight */
	/* FULL verdicts wait until no acquire is in flight: its fd may already
	 * be open before its CQE is processed (a false leak otherwise). */
	struct rsc__list audit_pending; /* rsc_audit_pending.node, oldest first */
	/* FULL audit: per descriptor number, the audit_seq at which the kernel
	 * made it for an entry of this loop (0: not since it was disowned). */
	uint64_t audit_seq;
	uint64_t *fd_born;
	unsigned n_fd_born;
	/* FULL audit: per descriptor number, the file rsc_entry_detach() gave the
	 * caller there (audit.c), spared by the verdicts while it is that file. */
	struct rsc__disowned *disowned;
	unsigned n_disowned;
	struct rsc_finding **findings; /* each its own allocation: pointers stay valid */
	unsigned n_findings, cap_findings;

	/* Observability (observe.h): the label, and what is switched on. */
	unsigned obs_id, obs_flags;
	uint64_t obs_reap_ns; /* the trace's clock when this batch of CQEs was reaped, or 0 */
	uint64_t obs_exit_ns; /* ... when this batch of releases started, or 0 */
	struct rsc__trace_json *tj;
	int trace_lost;	/* a closed trace's write error no call has returned yet */
	struct rsc__latency *lat;
	struct rsc__direct *direct; /* the registered file table (direct.c), or NULL */
	struct rsc__bufring *bufring; /* receive buffers (recv_multishot.c), or NULL */
};

/*
 * handle.c. A handle is gen << 32 | kind bit | slot + 1. The slot holds the
 * live object, and every object starts with its own handle, so a lookup
 * is one table load and one compare: the object must still say it is @h.
 */
enum rsc__kind {
	RSC__K_SCOPE = 1U << 29,
	RSC__K_ENTRY = 1U << 30,
	RSC__K_CHAIN = RSC__K_SCOPE | RSC__K_ENTRY, /* chain.c: never pooled */
};
#define RSC__H_SLOT_MASK ((1U << 26) - 1) /* 64M slots */

struct rsc__slot {
	void *obj;	    /* atomic: the live object, or NULL */
	uint32_t gen;	    /* atomic: the generation the next handle of this slot gets */
	union {
		/* An index stack, not an rsc__list: two links would double the slot. */
		uint32_t next_free; /* free: slot index + 1 in the loop's free list, or 0 */
		uint32_t kind;	    /* atomic; in use: its object's RSC__K_* */
	};
};

extern struct rsc__slot *rsc__slot_chunks[RSC__H_SLOT_MASK / RSC__SLOTS_PER_CHUNK + 1];

#define RSC__RETIRED_GEN UINT32_MAX /* a slot whose generation would wrap: never reused */

static inline struct rsc__slot *rsc__slot_at(uint32_t idx)
{
	return &rsc__slot_chunks[idx / RSC__SLOTS_PER_CHUNK][idx % RSC__SLOTS_PER_CHUNK];
}

/* Slot @idx names @obj from now on: the handle of its current generation. */
static inline uint64_t rsc__handle_publish(void *obj, enum rsc__kind kind, uint32_t idx)
{
	struct rsc__slot *sl = rsc__slot_at(idx);

	/* The kind before the object: a lookup that sees the object sees it. */
	__atomic_store_n(&sl->kind, (uint32_t)kind, __ATOMIC_RELAXED);
	/* The object stores the handle first (its caller does), then it is published. */
	__atomic_store_n(&sl->obj, obj, __ATOMIC_RELEASE);
	return ((uint64_t)sl->gen << 32) | kind | (idx + 1);
}

/* A slot taken from the loop (handle.c): 0 without memory. */
uint64_t rsc__handle_new_slot(struct rsc_loop *loop, void *obj, enum rsc__kind kind,
			      uint32_t *slot);

/* A handle for @obj in slot *@slot (+1), taken from the loop if 0, or 0
 * without memory. Inline: every pooled get makes one (rsc__handle_drop
 * below; the slot stays with the object for its next life unless retired). */
static inline uint64_t rsc__handle_new(struct rsc_loop *loop, void *obj, enum rsc__kind kind,
				       uint32_t *slot)
{
	/* A pooled object keeps its slot: its generation moved on at the drop. */
	if (__builtin_expect(*slot != 0, 1))
		return rsc__handle_publish(obj, kind, *slot - 1);
	return rsc__handle_new_slot(loop, obj, kind, slot);
}
/* Dropped, and the slot back to the loop: for objects that are not pooled. */
void rsc__handle_free(struct rsc_loop *loop, uint64_t h, uint32_t *slot);
void rsc__handles_release(struct rsc_loop *loop);
bool rsc__handles_unload(void);
/* @h's object is still live, by a seq_cst load (rsc__audit_quiesce's pair). */
bool rsc__handle_still(uint64_t h);
/* The slow path of a failed lookup: -EINVAL or -ESTALE, and says why. */
int rsc__handle_error(uint64_t h, enum rsc__kind kind, const char *fn) RSC__COLD;

/* The live object @h names, or NULL (not a handle of @kind, or freed). */
static inline void *rsc__handle_lookup(uint64_t h, enum rsc__kind kind)
{
	uint32_t lo = (uint32_t)h, idx = (lo & RSC__H_SLOT_MASK) - 1;
	const struct rsc__slot *chunk;
	void *obj;

	/* Its kind bit, and no bit a handle never has. */
	if ((lo & ~RSC__H_SLOT_MASK) != kind || idx >= RSC__H_SLOT_MASK)
		return NULL;
	chunk = __atomic_load_n(&rsc__slot_chunks[idx / RSC__SLOTS_PER_CHUNK], __ATOMIC_ACQUIRE);
	if (!chunk)
		return NULL;
	chunk += idx % RSC__SLOTS_PER_CHUNK;
	/* The generation first: a stale handle is refused without reading the
	 * object, which another loop's thread may be reusing right now. */
	if (__atomic_load_n(&chunk->gen, __ATOMIC_ACQUIRE) != (uint32_t)(h >> 32))
		return NULL;
	obj = __atomic_load_n(&chunk->obj, __ATOMIC_ACQUIRE);
	/* Still that generation after the load: obj is the object it names, if
	 * the slot holds one of @kind (a value's kind bits are the caller's to
	 * forge; the object is never read as another kind to find out). */
	return obj && __atomic_load_n(&chunk->gen, __ATOMIC_ACQUIRE) == (uint32_t)(h >> 32) &&
	       __atomic_load_n(&chunk->kind, __ATOMIC_RELAXED) == (uint32_t)kind ? obj : NULL;
}

/* fork.c: a loop does not cross fork(2) (ringscope(7), FORK). */
extern unsigned *rsc__fork_word;
void rsc__fork_watch(struct rsc_loop *loop);
unsigned rsc__fork_generation(void);
__attribute__((cold)) int rsc__forked_error(const struct rsc_loop *loop, const char *fn);
/* Each process-wide lock: fork.c holds them all across a fork(2). */
extern pthread_mutex_t *const rsc__handles_fork_lock;
extern pthread_mutex_t *const rsc__audit_fork_lock;
extern pthread_mutex_t *const rsc__handover_fork_lock;
extern pthread_mutex_t *const rsc__host_fork_lock;

/* Made before a fork(2) of which this is the child: its ring is the parent's. */
static inline bool rsc__loop_forked(const struct rsc_loop *loop)
{
	return __builtin_expect(loop->fork_gen != __atomic_load_n(rsc__fork_word, __ATOMIC_RELAXED), 0);
}

/* Return -ECHILD from the calling function for a loop from before a fork. */
#define RSC__SAME_PROCESS(loop, fn)                              \
	do {                                                     \
		if (rsc__loop_forked(loop))                      \
			return rsc__forked_error((loop), (fn));  \
	} while (0)

/* 0, or -ECHILD naming @fn: the call would act on the parent's ring. */
static inline int rsc__check_process(const struct rsc_loop *loop, const char *fn)
{
	return rsc__loop_forked(loop) ? rsc__forked_error(loop, fn) : 0;
}

/* Decode a caller's handle: 0, -EINVAL (NULL, not a handle), -ESTALE (freed), -ECHILD (fork). */
static inline int rsc__scope_from(const struct rsc_scope *h, struct rsc__scope **sp,
				  const char *fn)
{
	*sp = (struct rsc__scope *)rsc__handle_lookup((uint64_t)(uintptr_t)h, RSC__K_SCOPE);
	return *sp ? rsc__check_process((*sp)->loop, fn) :
		     rsc__handle_error((uint64_t)(uintptr_t)h, RSC__K_SCOPE, fn);
}

static inline int rsc__entry_from(const struct rsc_entry *h, struct rsc__entry **ep,
				  const char *fn)
{
	*ep = (struct rsc__entry *)rsc__handle_lookup((uint64_t)(uintptr_t)h, RSC__K_ENTRY);
	return *ep ? rsc__check_process((*ep)->scope->loop, fn) :
		     rsc__handle_error((uint64_t)(uintptr_t)h, RSC__K_ENTRY, fn);
}

static inline struct rsc_entry *rsc__eh(const struct rsc__entry *e)
{
	return e ? (struct rsc_entry *)(uintptr_t)e->h : NULL;
}

static inline struct rsc_scope *rsc__sh(const struct rsc__scope *s)
{
	return s ? (struct rsc_scope *)(uintptr_t)s->h : NULL;
}

/* The entry @h names after a callback, or NULL: the callback may have detached (freed) it. */
static inline struct rsc__entry *rsc__entry_live(uint64_t h)
{
	return (struct rsc__entry *)rsc__handle_lookup(h, RSC__K_ENTRY);
}

/* Decode @h into @var or return the error from the calling function. */
#define RSC__ENTRY(var, h, fn)                                  \
	do {                                                    \
		int ret_ = rsc__entry_from((h), &(var), (fn));  \
		if (ret_ < 0)                                   \
			return ret_;                            \
	} while (0)
#define RSC__SCOPE(var, h, fn)                                  \
	do {                                                    \
		int ret_ = rsc__scope_from((h), &(var), (fn));  \
		if (ret_ < 0)                                   \
			return ret_;                            \
	} while (0)

/* A user's hook or callback runs: blocking calls inside it are refused.
 * False in a child of fork(2) that a callback made and that came back into
 * the loop: the parent runs the rest, the child runs none of it (FORK). */
static inline bool rsc__cb_enter(struct rsc_loop *loop)
{
	loop->cb_depth++;
	return !rsc__loop_forked(loop);
}

static inline void rsc__cb_leave(struct rsc_loop *loop)
{
	assert(loop->cb_depth > 0);
	loop->cb_depth--;
}

/*
 * A manager hook or the trace callback runs: pushing, I/O and moving ownership
 * are refused (-EDEADLK). Both run in the middle of the runtime's own step,
 * which must find the entry it is settling still there.
 */
static inline bool rsc__in_hook(const struct rsc_loop *loop)
{
	return loop->hook_entry || loop->tracing;
}

/* -EDEADLK (and says why) when @fn would push, start I/O or move ownership from inside one. */
int rsc__in_hook_error(const char *fn) RSC__COLD;
static inline int rsc__check_not_in_hook(const struct rsc_loop *loop, const char *fn)
{
	return __builtin_expect(rsc__in_hook(loop), 0) ? rsc__in_hook_error(fn) : 0;
}

/* -EDEADLK (and says why) when @fn would block or run the loop from inside it. */
int rsc__in_callback_error(const char *fn) RSC__COLD;
static inline int rsc__check_not_in_callback(const struct rsc_loop *loop, const char *fn)
{
	return !loop->running && !loop->cb_depth ? 0 : rsc__in_callback_error(fn);
}
/* The same, and -EOPNOTSUPP on a shared ring, which a blocking helper cannot wait on. */
int rsc__check_can_block(struct rsc_loop *loop, const char *fn);

/*
 * -EEXIST (and says why) when @fn would enter the loop's own single-issuer
 * ring from a thread other than its creator: the kernel's answer to such an
 * enter. Said here, because a registered ring index names a ring only in the
 * thread that registered it: entered from another thread it is refused as
 * -EINVAL, or names a ring of that thread's own.
 */
int rsc__issuer_error(const char *fn) RSC__COLD;

/* A number for the calling thread that no other thread of the process ever
 * gets (fork.c): a pthread_t is reused once its thread has exited, and a new
 * thread must not pass for the one that registered a ring. */
extern _Thread_local uint64_t rsc__thread_serial_tls __attribute__((tls_model("initial-exec")));
uint64_t rsc__thread_serial_new(void);
static inline uint64_t rsc__thread_serial(void)
{
	uint64_t id = rsc__thread_serial_tls;

	return __builtin_expect(id != 0, 1) ? id : rsc__thread_serial_new();
}

static inline int rsc__check_issuer(const struct rsc_loop *loop, const char *fn)
{
	return !(loop->features & RSC_FEAT_SINGLE_ISSUER) || loop->shared ||
			       __builtin_expect(loop->issuer == rsc__thread_serial(), 1) ?
		       0 :
		       rsc__issuer_error(fn);
}

/* ledger.c */
/* The runtime's own descriptors (rings, eventfds, /proc/self/fd): adopting one is refused. */
#define RSC__LEDGER_RUNTIME 1ULL
/* Or'ed to an owner while the io_uring_enter that carries its close runs: the
 * kernel may have closed the number and given it to another thread already. */
#define RSC__LEDGER_CLOSING (1ULL << 31)
uint64_t rsc__ledger_owner(int fd);
int rsc__ledger_claim(struct rsc_loop *loop, int fd, uint64_t h);
int rsc__ledger_reserve_slow(struct rsc_loop *loop, int fd);
void rsc__ledger_unload(void);
void rsc__ledger_set_slow(int fd, uint64_t h);
bool rsc__ledger_list_close_slow(struct rsc_loop *loop, struct rsc_op *op, uint64_t *cell, uint64_t h);
void rsc__ledger_close_done(struct rsc_loop *loop, struct rsc_op *op, int res);
int rsc__ledger_room(struct rsc_loop *loop, unsigned n);
int rsc__ledger_spare_take(struct rsc_loop *loop);
void rsc__ledger_spare_set(struct rsc_loop *loop, int fd, uint64_t h);
void rsc__ledger_spare_drop(struct rsc_loop *loop);
void rsc__ledger_spares_free(struct rsc_loop *loop);
void rsc__ledger_submitted_slow(struct rsc_loop *loop, bool all);
void rsc__ledger_closing_slow(struct rsc_loop *loop, bool closing);
extern uint64_t *rsc__ledger_pages[RSC__LEDGER_MAX_FD / RSC__LEDGER_PAGE];

/* The cell of @fd if its page exists (the hot path: one load), else NULL. */
static inline uint64_t *rsc__ledger_cell(int fd)
{
	uint64_t *p;

	if ((unsigned)fd >= RSC__LEDGER_MAX_FD)
		return NULL;
	p = __atomic_load_n(&rsc__ledger_pages[(unsigned)fd / RSC__LEDGER_PAGE], __ATOMIC_ACQUIRE);
	return p ? &p[(unsigned)fd % RSC__LEDGER_PAGE] : NULL;
}

/* @fd's cell exists before an acquire tells anyone of it (ledger.c); inline while its page does. */
static inline int rsc__ledger_reserve(struct rsc_loop *loop, int fd)
{
	if (__builtin_expect((unsigned)fd >= RSC__LEDGER_MAX_FD || rsc__ledger_cell(fd), 1))
		return 0; /* out of the ledger's range (or negative), or its page made */
	return rsc__ledger_reserve_slow(loop, fd);
}

/* The kernel just gave @fd to @h (an acquire's CQE): the kernel's word wins. */
static inline void rsc__ledger_set(int fd, uint64_t h)
{
	uint64_t *c = rsc__ledger_cell(fd);

	if (c)
		__atomic_store_n(c, h, __ATOMIC_RELEASE);
	else
		rsc__ledger_set_slow(fd, h);
}

/*
 * @h no longer owns the number of cell @c; a cell someone else took stays
 * theirs. A compare-and-swap: once @h's close has run, the kernel may give
 * the number to another loop's acquire, which stores its owner here at any
 * moment (rsc__ledger_set); a plain store of 0 after reading @h could erase
 * that owner, and a second adopt of its descriptor would then be accepted.
 */
static inline void rsc__ledger_forget_cell(uint64_t *c, uint64_t h)
{
	uint64_t v = __atomic_load_n(c, __ATOMIC_RELAXED);

	if ((v & ~RSC__LEDGER_CLOSING) == h)
		__atomic_compare_exchange_n(c, &v, 0, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* @h no longer owns @fd (its close is submitted). */
static inline void rsc__ledger_forget(int fd, uint64_t h)
{
	uint64_t *c = rsc__ledger_cell(fd);

	if (c)
		rsc__ledger_forget_cell(c, h);
}

/* Room checked: @op, the close of cell @c's number by @h, goes on the list. */
static inline bool rsc__ledger_list_append(struct rsc_loop *loop, struct rsc_op *op, uint64_t *c,
					   uint64_t h)
{
	struct rsc__ledger_pending *p = &loop->ledger_unsub[loop->n_ledger_unsub++];

	p->cell = c;
	p->h = h;
	p->op = op;
	op->unsub = loop->n_ledger_unsub;
	loop->n_ledger_running++;
	return true;
}

/* @op, @h's close of @fd, is prepared: listed, to be marked closing while
 * the enter that submits it runs, and let go of once it has run (ledger.c);
 * inline while the loop's list has room. False: not listed (no memory), the
 * number stays @h's until the close's CQE. */
static inline bool rsc__ledger_list_close(struct rsc_loop *loop, struct rsc_op *op, int fd, uint64_t h)
{
	/* Listed by its cell: the passes around the enter need no lookup (pages stay while a loop does). */
	uint64_t *c = rsc__ledger_cell(fd);

	if (!c)
		return true; /* not in the ledger: nothing to let go of */
	if (__builtin_expect(loop->n_ledger_unsub == loop->cap_ledger_unsub || loop->shared, 0))
		return rsc__ledger_list_close_slow(loop, op, c, h);
	return rsc__ledger_list_append(loop, op, c, h);
}

/* The closes prepared are about to enter the kernel (@closing), or did not. */
static inline void rsc__ledger_closing(struct rsc_loop *loop, bool closing)
{
	if (loop->n_ledger_unsub)
		rsc__ledger_closing_slow(loop, closing);
}

static inline void rsc__ledger_submitted(struct rsc_loop *loop, bool all)
{
	if (loop->n_ledger_unsub || all)
		rsc__ledger_submitted_slow(loop, all);
}

/* error.c */
void rsc__set_last_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2))) RSC__COLD;
struct rsc_error *rsc__error_new(struct rsc_loop *loop, int err, const char *op, const char *entry,
				 const char *detail, const char *scope,
				 struct rsc_error *cause);
struct rsc_error *rsc__error_ref(struct rsc_error *err);
void rsc__error_unref(struct rsc_error *err);
struct rsc_error *rsc__error_append(struct rsc_loop *loop, struct rsc_error *head,
				    struct rsc_error *tail);
struct rsc_error *rsc__error_splice(struct rsc_loop *loop, struct rsc_error *head,
				    const struct rsc_error *stop,
				    struct rsc_error *tail);
const char *rsc__opcode_name(unsigned opcode);
/* The opcode rsc__opcode_name() calls @name (@len bytes), or -1. */
int rsc__opcode_by_name(const char *name, size_t len);
/* A node with @err alone, made without the heap; NULL if @err is no errno. */
struct rsc_error *rsc__error_fallback(int err);
/*
 * Length of the valid UTF-8 sequence at @s, or 0 if it is not one: no
 * overlong form, no surrogate (U+D800-U+DFFF), nothing above U+10FFFF,
 * which strict decoders (Python's, Perfetto's) refuse.
 */
static inline size_t rsc__utf8_len(const unsigned char *s)
{
	size_t n, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	n = s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	if (s[0] >= 0xf5)
		n = 0;
	cp = s[0] & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* manager_socket.c: "AF_INET/SOCK_STREAM", an entry's detail. */
void rsc__socket_detail(char detail[40], int domain, int type);
/*
 * An entry's detail "@prefix@n@suffix" ("fd 7", "slot 3 (handed over)") in
 * @buf (32 bytes), cut to fit: made per connection, where snprintf's setup
 * cost more than the rest of the accept (bench/README.md).
 */
static inline void rsc__detail_num(char buf[32], const char *prefix, unsigned n, const char *suffix)
{
	char digits[10];
	size_t len = 0, d = 0;

	do
		digits[d++] = (char)('0' + n % 10);
	while ((n /= 10) && d < sizeof(digits));
	for (; *prefix && len < 31; prefix++)
		buf[len++] = *prefix;
	while (d && len < 31)
		buf[len++] = digits[--d];
	for (; *suffix && len < 31; suffix++)
		buf[len++] = *suffix;
	buf[len] = '\0';
}

/*
 * Text for a terminal or a log: control bytes (< 0x20, 0x7f), C1 controls
 * (U+0080-U+009F) and bytes not part of valid UTF-8 as \xNN.
 */
int rsc__fput_text(const char *s, FILE *out);
/*
 * The end of a print to @out that went as @ret (0 or -EIO so far): a buffered
 * FILE fails only when it writes, so a full disk shows in the flush. -EIO says
 * why in rsc_last_error, as @fn's, never an older sentence.
 */
int rsc__print_done(FILE *out, int ret, const char *fn);
/* rsc_error_format()'s text, cut to @len (> 0) bytes, the chain read no further. */
void rsc__error_format_head(const struct rsc_error *err, char *buf, size_t len);

/* pool.c */
int rsc__op_chunk_grow(struct rsc_loop *loop);
struct rsc__entry *rsc__entry_get(struct rsc_loop *loop);
void rsc__entry_put(struct rsc_loop *loop, struct rsc__entry *e);
struct rsc__scope *rsc__scope_get(struct rsc_loop *loop);
void rsc__scope_put(struct rsc_loop *loop, struct rsc__scope *s);
/* A zeroed room of the pool for @size bytes (<= RSC__ROOM_SIZE); NULL without memory. */
void *rsc__room_get(struct rsc_loop *loop, size_t size);
void rsc__room_put(struct rsc_loop *loop, void *room);
/* A room for an accept's address, its length set to the whole address; rsc__room_put() gives it back. */
struct rsc__peer *rsc__peer_get(struct rsc_loop *loop);
void rsc__pools_free(struct rsc_loop *loop);

static inline uint64_t rsc__op_make_user_data(uint32_t gen, uint32_t idx)
{
	return RSC__UD_TAG | ((uint64_t)gen << 32) | (uint64_t)(idx + 1);
}

static inline uint64_t rsc__op_user_data(const struct rsc_op *op)
{
	return op->ud;
}

/* The low half of a user_data of ours names no op (an op's has idx + 1
 * there): 0 (a post's wake-up, another loop's hand-over), or a hand-over's
 * parcel number with RSC__MSG_PARCEL (handover.c). */
static inline bool rsc__ud_low_names_no_op(uint64_t user_data)
{
	uint32_t low = (uint32_t)user_data;

	return low == 0 || (low & RSC__MSG_PARCEL);
}

/* A user_data of ours that names an op; RSC__UD_NONE is dropped. */
static inline bool rsc__ud_names_op(uint64_t user_data)
{
	return user_data != RSC__UD_NONE && !rsc__ud_low_names_no_op(user_data);
}

/* Another loop's MSG_RING carrying a slot (handover.c). */
static inline bool rsc__ud_is_message(uint64_t user_data)
{
	return (user_data & RSC__UD_TAG) && rsc__ud_low_names_no_op(user_data) &&
	       user_data != RSC__UD_NONE && user_data != RSC__UD_POST;
}

/* The op pool is on every acquire's and release's path: inline. */
static inline struct rsc_op *rsc__op_get(struct rsc_loop *loop)
{
	struct rsc_op *op;

	if (__builtin_expect(!loop->free_ops, 0) && rsc__op_chunk_grow(loop) < 0)
		return NULL;
	op = loop->free_ops;
	loop->free_ops = op->next_free;
	/* The next get's line, while the kernel's work may have evicted it. */
	__builtin_prefetch(loop->free_ops, 1);
	op->next_free = NULL;
	op->entry = NULL;
	op->primary = false;
	op->enter_listed = false;
	op->fault_res = 0;
	op->grace_seq = loop->grace_seq;
	loop->ops_inflight++;
	return op;
}

static inline void rsc__op_put(struct rsc_loop *loop, struct rsc_op *op)
{
	uint32_t gen;

	assert(loop->ops_inflight > 0);
	loop->ops_inflight--;
	if (__builtin_expect(op->cancel_owed, 0)) {
		op->cancel_owed = false; /* completed: nothing to cancel any more */
		loop->n_cancel_owed--;
	}
	gen = ((uint32_t)(op->ud >> 32) + 1) & RSC__OP_GEN_MASK; /* bit 63 of user_data is the tag */
	op->ud = rsc__op_make_user_data(gen ? gen : 1, op->idx);
	op->complete = NULL;
	op->entry = NULL;
	op->next_free = loop->free_ops;
	loop->free_ops = op;
}

/* The op a CQE's user_data names, or NULL if it is not one in flight. */
static inline struct rsc_op *rsc__op_lookup(struct rsc_loop *loop, uint64_t user_data)
{
	uint32_t idx = (uint32_t)user_data - 1; /* 0 wraps: above any op */
	struct rsc_op *op;

	if (!(user_data & RSC__UD_TAG) || idx >= loop->n_op_chunks * RSC__OPS_PER_CHUNK)
		return NULL;
	op = &loop->op_chunks[idx / RSC__OPS_PER_CHUNK][idx % RSC__OPS_PER_CHUNK].op;
	/* The whole user_data: the generation of this use, tag included. */
	return op->ud == user_data && op->complete ? op : NULL;
}

/* loop.c */
int rsc__get_sqes_slow(struct rsc_loop *loop, unsigned n, struct io_uring_sqe **sqes,
		       bool injected_full);

/* Room for @n is checked: take them as io_uring_get_sqe() would, at once
 * (@shift 1 for 128-byte SQEs). */
static inline void rsc__take_sqes(struct io_uring_sq *sq, unsigned n, struct io_uring_sqe **sqes,
				  unsigned shift)
{
	unsigned tail = sq->sqe_tail, i;

	for (i = 0; i < n; i++) {
		sqes[i] = &sq->sqes[((tail + i) & sq->ring_mask) << shift];
		/* liburing 2.3 hands SQEs out dirty; start every one from zero. */
		memset(sqes[i], 0, sizeof(*sqes[i]));
	}
	sq->sqe_tail = tail + n;
}

/*
 * Take @n consecutive SQEs, zeroed, or -errno. Inline for the common case
 * (room in the SQ, no host to kick, a ring of our own, 64-byte SQEs);
 * anything else, a flush that makes room included, is rsc__get_sqes_slow()
 * (loop.c).
 */
static inline int rsc__get_sqes(struct rsc_loop *loop, unsigned n, struct io_uring_sqe **sqes)
{
	if (__builtin_expect(n == 0 || (loop->pollable | loop->shared) ||
			     (loop->ring->flags & IORING_SETUP_SQE128) ||
			     io_uring_sq_space_left(loop->ring) < n || rsc__loop_forked(loop), 0))
		return rsc__get_sqes_slow(loop, n, sqes, false);
	if (rsc__fault(loop, RSC__F_SQ_FULL)) /* injected: as if full (fault.c) */
		return rsc__get_sqes_slow(loop, n, sqes, true);
	rsc__take_sqes(&loop->ring->sq, n, sqes, 0);
	return 0;
}
/* Submit what is prepared now, outside a turn of the loop (>= 0 or -errno). */
int rsc__submit_now(struct rsc_loop *loop);
void rsc__nop_sqes(struct rsc_loop *loop, struct io_uring_sqe **sqes, unsigned n);
struct rsc_op *rsc__op_with_sqe(struct rsc_loop *loop, struct io_uring_sqe **sqep);
/* The same, saying why there is none: -EBUSY (no SQE) or -ENOMEM (no op). */
int rsc__op_with_sqe_why(struct rsc_loop *loop, struct io_uring_sqe **sqep, struct rsc_op **opp);

/* rsc__op_with_sqe_why's body, inline for the pair path (entry.c's one_sqe):
 * one SQE and the op it completes, SQE first (see reserve_sqes), the SQE's
 * user_data naming the op. */
static inline int rsc__op_with_sqe_inline(struct rsc_loop *loop, struct io_uring_sqe **sqep,
					  struct rsc_op **opp)
{
	*opp = NULL;
	if (rsc__get_sqes(loop, 1, sqep) < 0)
		return -EBUSY;
	*opp = rsc__op_get(loop);
	if (__builtin_expect(!*opp, 0)) {
		rsc__nop_sqes(loop, sqep, 1);
		return -ENOMEM;
	}
	io_uring_sqe_set_data64(*sqep, rsc__op_user_data(*opp));
	return 0;
}
/* What the probe found, one bit per opcode (all when there is no probe: the
 * CQE says); inline, since every acquire asks (rsc__need_opcode). */
static inline bool rsc__opcode_supported(struct rsc_loop *loop, unsigned opcode)
{
	/* Injected (fault.c): as on a kernel before 5.18. */
	if (opcode == IORING_OP_MSG_RING && rsc__fault(loop, RSC__F_MSG_RING))
		return false;
	if (rsc__fault_missing_op(&loop->faults, opcode))
		return false;
	return opcode < 256 && ((loop->opcodes_ok[opcode / 64] >> (opcode % 64)) & 1);
}
/* -EOPNOTSUPP, naming @opcode and @why in rsc_last_error. */
__attribute__((cold)) int rsc__opcode_missing(unsigned opcode, const char *why);
static inline int rsc__need_opcode(struct rsc_loop *loop, unsigned opcode, const char *why)
{
	return rsc__opcode_supported(loop, opcode) ? 0 : rsc__opcode_missing(opcode, why);
}
/* RSC_SHUTDOWN_ON_RELEASE in @flags needs IORING_OP_SHUTDOWN (Linux 5.11): 0 without it. */
int rsc__need_shutdown(struct rsc_loop *loop, unsigned flags);
void rsc__trace_call(struct rsc_loop *loop, enum rsc_event ev,
		     const struct rsc__scope *s, const struct rsc__entry *e, int res);
/* An event to the trace callback, if there is one: no call on the hot path without. */
static inline void rsc__trace(struct rsc_loop *loop, enum rsc_event ev,
			      const struct rsc__scope *s, const struct rsc__entry *e, int res)
{
	if (__builtin_expect(loop->trace_cb != NULL, 0))
		rsc__trace_call(loop, ev, s, e, res);
}
struct rsc_op *rsc__submit_cancel(struct rsc_loop *loop, struct rsc_op *target);
/* @sqe becomes a relative IORING_OP_TIMEOUT of @ms routed to @op (its own timespec). */
void rsc__prep_timeout_ms(struct rsc_op *op, struct io_uring_sqe *sqe, unsigned ms,
			  rsc__op_fn complete);
/* One IORING_ASYNC_CANCEL_FD|ALL for every op on @fd (Linux 5.19), or on
 * slot @fd of the direct table with @fixed (IORING_ASYNC_CANCEL_FD_FIXED, 6.0). */
struct rsc_op *rsc__submit_cancel_fd(struct rsc_loop *loop, int fd, bool fixed);
/* A cancel by descriptor found fewer ops than it was sent for (io.c). */
void rsc__io_cancel_fd_short(struct rsc_loop *loop, const struct rsc_op *cancel, int res);
/* A loop on the application's ring (host.c): the ring's setup checked, one loop per ring. */
int rsc__shared_ring_claim(struct io_uring *ring);
void rsc__shared_ring_release(const struct io_uring *ring);

/* entry.c */
int rsc__push(struct rsc__scope *s, const struct rsc_manager *mgr, void *arg,
	      unsigned config, const char *detail, const void *site,
	      struct rsc__entry **entryp);
/* Prepares a built-in's one acquire SQE from its args (the entry's detail is its path). */
typedef void (*rsc__prep_fn)(struct io_uring_sqe *sqe, const struct rsc__entry *e, const void *args);
/* rsc__push for a built-in whose acquire is one SQE of @opcode: no hook runs.
 * @detail_len is strlen(@detail), which the caller has measured already. */
int rsc__push_one(struct rsc__scope *s, const struct rsc_manager *mgr, rsc__prep_fn prep,
		  const void *args, uint8_t opcode, unsigned config, const char *detail,
		  size_t detail_len, const void *site, struct rsc__entry **entryp);
/* An entry of @s made, not yet pushed, for rsc__push_after(); NULL: no memory. */
struct rsc__entry *rsc__entry_make(struct rsc__scope *s, const struct rsc_manager *mgr,
				   unsigned config, const char *detail, const void *site);
/* Push @e (rsc__entry_make) so that its enter runs when @dep has entered
 * (fails if it fails); @opcode is what that enter will submit, naming a
 * cancel before it starts. It cannot fail: the memory was found first. */
void rsc__push_after(struct rsc__entry *dep, struct rsc__entry *e, uint8_t opcode,
		     void *owned_arg);
/* The operation a failed acquire is named by: the hook's own word, or its opcode. */
const char *rsc__entry_fail_op(const struct rsc__entry *e);
/* manager_net.c: an address as the entries' detail gives it ("127.0.0.1:80", a path, "@name"). */
void rsc__describe_addr(const struct sockaddr *addr, socklen_t addrlen, char *buf, size_t len);
/* manager_net.c: an address rsc_connect (@connecting) or rsc_listen takes, or -EINVAL. */
int rsc__check_addr(const struct sockaddr *addr, socklen_t addrlen, bool connecting,
		    const char *fn);
int rsc__socket_push(struct rsc__scope *s, int domain, int type, int protocol,
		     unsigned flags, const void *site, struct rsc__entry **entryp);
/* rsc_entry_get_sqes() for built-in hooks, which hold the entry itself. */
int rsc__hook_sqes(struct rsc__entry *e, unsigned n, struct io_uring_sqe **sqes);
/* The enter hook of managers whose entries are entered at once: never called. */
int rsc__enter_never(struct rsc_entry *h, void *arg);
/* The SQEs rsc__fd_exit prepares before its close (shutdown, fsync): their place is the close's index. */
static inline unsigned rsc__fd_exit_before_close(const struct rsc__entry *e)
{
	return !!(e->config & RSC__CFG_FSYNC) + !!(e->config & RSC__CFG_SHUTDOWN);
}
/* For a hook: complete this phase from the loop with @res (a NOP). */
int rsc__entry_complete_with(struct rsc__entry *e, int res, const char *op);
void rsc__entry_start_exit(struct rsc__entry *e);
/* Release @e early (the caller checked it may): off its scope's unwind. */
int rsc__entry_release(struct rsc__entry *e, rsc_entry_cb cb, void *data);
void rsc__entry_settle_release(struct rsc__entry *e);
/* rsc__error_append() taking the caller's reference to @head (continued in place when nobody else holds it). */
struct rsc_error *rsc__error_append_owned(struct rsc_loop *loop, struct rsc_error *head,
					  struct rsc_error *tail);
/* The errors of @e's settled release, oldest first (at most RSC_ENTRY_SQES_MAX + 1); how many. */
unsigned rsc__entry_exit_errors(const struct rsc__entry *e, int res[], const char *op[]);
/* Due on-enter callbacks of adopted and deferred entries; returns how many. */
unsigned rsc__announce_run(struct rsc_loop *loop);
void rsc__entry_cancel(struct rsc__entry *e);
void rsc__entry_free(struct rsc_loop *loop, struct rsc__entry *e);
unsigned rsc__retry_exits(struct rsc_loop *loop);

void rsc__inject_fault(struct rsc_loop *loop, struct io_uring_sqe *sqe,
		       struct rsc_op *op);

/* io.c */
void rsc__io_cancel_all(struct rsc__entry *e);
int rsc__io_check(struct rsc_entry *h, struct rsc__entry **ep, const char *fn);
/* The same for tracked I/O: an entry with a descriptor if @uses_fd, no closing scope above. */
int rsc__io_check_tracked(struct rsc_entry *h, struct rsc__entry **ep, bool uses_fd,
			  const char *fn);
/* An SQE and an op bound to @e's tracked I/O: 0, -EBUSY (SQ full) or -ENOMEM. */
int rsc__io_op(struct rsc__entry *e, struct io_uring_sqe **sqep, struct rsc_op **opp);
/* @op, routed by @sqe, joins @e's tracked ops (@slot_move: an install's or hand-over's half). */
void rsc__io_track(struct rsc__entry *e, struct rsc_op *op, struct io_uring_sqe *sqe,
		   bool slot_move);
void rsc__io_unlink(struct rsc_op *op);
/* After an op's final callback, by handle: the callback may have detached the entry. */
void rsc__io_settled(uint64_t h);

/* recv_multishot.c */
bool rsc__recv_multishot_active(const struct rsc__entry *e);
/* Free the receive buffers; @ring_alive: unregister them from the ring first. */
void rsc__recv_buffers_free(struct rsc_loop *loop, bool ring_alive);

/* entry.c: a descriptor someone else acquired, owned from now on */
struct rsc__entry *rsc__adopt(struct rsc__scope *s, const struct rsc_manager *mgr,
			     int fd, const char *detail);

/* manager_fd.c: the release of every descriptor-owning built-in */
int rsc__fd_exit(struct rsc_entry *h, const struct rsc_error *pending,
		 void *arg);
/* scope.c */
void rsc__scope_begin_unwind(struct rsc__scope *s, struct rsc_error *pending);
void rsc__scope_cut(struct rsc__scope *root, enum rsc__cut level);
/* Raise an error on @s: it becomes the pending one, the old one its cause. */
void rsc__scope_raise(struct rsc__scope *s, int err, const char *op,
		      const struct rsc__entry *e);
/* rsc__scope_unwind_owns's walk up the tree, its answer cached in @s. */
bool rsc__scope_unwind_owns_walk(const struct rsc__scope *s);
/* True once an unwind owns @s: it or a scope above it unwinds or is closing.
 * Inline while no closing state changed since @s last asked (every push asks). */
RSC__INLINE bool rsc__scope_unwind_owns(const struct rsc__scope *s)
{
	if (__builtin_expect(s->owns_epoch == s->loop->closing_epoch, 1))
		return s->owns_cached;
	return rsc__scope_unwind_owns_walk(s);
}

/* entry.c: -ESHUTDOWN, saying why @s takes no push. */
int rsc__scope_push_refused(const struct rsc__scope *s, const char *fn) RSC__COLD;

/* Decode @h for a push: -EINVAL, -ESTALE, -EDEADLK (in a hook), -ESHUTDOWN.
 * Inline: every acquire asks first. */
RSC__INLINE int rsc__scope_check_push(struct rsc_scope *h, struct rsc__scope **sp, const char *fn)
{
	struct rsc__scope *s;

	RSC__SCOPE(s, h, fn);
	*sp = s;
	/* Its SQEs would interleave with the running hook's reservation. */
	if (rsc__check_not_in_hook(s->loop, fn) < 0)
		return -EDEADLK;
	/* An ancestor's close or failure requested counts too: its unwind will
	 * cancel what this would acquire (and a graceful one acquires nothing). */
	if (__builtin_expect(s == s->loop->root || rsc__scope_unwind_owns(s), 0))
		return rsc__scope_push_refused(s, fn);
	return 0;
}
/* The same, but a scope in the grace of a graceful close does not count. */
bool rsc__scope_unwind_owns_past_grace(const struct rsc__scope *s);
/* 0, or -EALREADY (and why) if @s may not be closed by its caller now. */
int rsc__scope_check_close(const struct rsc__scope *s, const char *fn);
/* An acquire of @s failed: its unwind starts, or waits for an ancestor's to reach it. */
void rsc__scope_fail_acquire(struct rsc__scope *s);
/* Pre-order walk of @root's subtree: the scope after @s, or NULL. */
struct rsc__scope *rsc__scope_next(const struct rsc__scope *root,
				   const struct rsc__scope *s);
void rsc__scope_step(struct rsc__scope *s);
void rsc__scope_report(struct rsc__scope *s);
void rsc__scope_ready(struct rsc__scope *s);
struct rsc__scope *rsc__scope_new_root(struct rsc_loop *loop);
void rsc__scope_free_tree(struct rsc__scope *s);

/* post.c */
struct rsc__post;
/* How rsc_loop_post() wakes the loop (struct rsc_loop.post_wake). */
enum rsc__post_wake {
	RSC__WAKE_MSG_RING = 0, /* IORING_OP_MSG_RING from the waker ring (Linux 5.18) */
	RSC__WAKE_EVENTFD,	/* post_efd, polled by the loop (RSC_FEAT_POST_EVENTFD) */
	RSC__WAKE_NONE,		/* a shared ring on a kernel without MSG_RING: refused */
};
int rsc__post_init(struct rsc_loop *loop);
/* RSC__WAKE_EVENTFD: prepare the eventfd's poll if it is not armed (the loop's thread). */
void rsc__post_arm(struct rsc_loop *loop);
/* A CQE tagged RSC__UD_POST: a wake-up, then the posts run. */
void rsc__post_woken(struct rsc_loop *loop, int res, unsigned cqe_flags);
unsigned rsc__post_run(struct rsc_loop *loop);
/* Posts queued, not yet run (one posted by a post sent no wake). */
static inline bool rsc__posts_queued(const struct rsc_loop *loop)
{
	return __atomic_load_n(&loop->post_head, __ATOMIC_RELAXED) != NULL;
}
void rsc__post_forget_failed(struct rsc_loop *loop);
void rsc__post_free(struct rsc_loop *loop);
/* While a close or shutdown drains the loop, new posts fail with -ESHUTDOWN. */
void rsc__post_refuse(struct rsc_loop *loop, bool refuse);

/* accept.c: an op of an accept in flight (the accept, or its backoff timer),
 * or an inbox's keep-alive: what a graceful close stops at once. */
bool rsc__op_is_accept(const struct rsc_op *op);
/* A descriptor (or @direct slot) nobody may own: closed through the ring. */
void rsc__close_orphan(struct rsc_loop *loop, int fd, bool direct);
/* handover.c: the keep-alive of an inbox (rsc_inbox), its only tracked op. */
bool rsc__op_is_inbox_keepalive(const struct rsc_op *op);
/* graceful.c: scopes whose grace has ended start their unwind; how many. */
unsigned rsc__graceful_poll(struct rsc_loop *loop);
/* True if a grace ends on the next poll (a host loop must run us for it). */
bool rsc__graceful_due(const struct rsc_loop *loop);
/* @root begins an unwind that cancels: the graces in its subtree end now. */
void rsc__graceful_cut_below(struct rsc__scope *root);
/* @s starts its unwind in its grace: the grace ends now, cut what is in flight. */
void rsc__graceful_end_grace_at_unwind(struct rsc__scope *s);
RSC__INLINE void rsc__graceful_end_at_unwind(struct rsc__scope *s)
{
	if (__builtin_expect(s->grace, 0)) /* inline: most scopes close without one */
		rsc__graceful_end_grace_at_unwind(s);
}
/* @s or an ancestor is unwinding by cancellation: no grace to give. */
bool rsc__scope_cancelled(const struct rsc__scope *s);
/* A tracked op of @e, stamped @seq, finished: each grace above it that waited on
 * it counts a drain when it was @e's last such op. */
void rsc__graceful_op_done(struct rsc__entry *e, uint64_t seq);
/* @s is freed: never left on the loop's graceful list, whatever ended its grace. */
void rsc__graceful_leave(struct rsc__scope *s);
RSC__INLINE void rsc__graceful_forget(struct rsc__scope *s)
{
	if (__builtin_expect(s->grace, 0))
		rsc__graceful_leave(s);
}

/* deadline.c */
void rsc__deadline_rearm(struct rsc_loop *loop);
/* @s leaves the deadline heap (unwinding, unwound or freed). */
void rsc__deadline_remove(struct rsc__scope *s);
RSC__INLINE void rsc__deadline_forget(struct rsc__scope *s)
{
	if (__builtin_expect(s->dl_index != RSC__NO_DEADLINE, 0)) /* inline: most have none */
		rsc__deadline_remove(s);
}
void rsc__deadline_idle(struct rsc_loop *loop);
void rsc__deadline_free(struct rsc_loop *loop);

/* host.c */
int rsc__pollable_init(struct rsc_loop *loop);
void rsc__pollable_free(struct rsc_loop *loop);
void rsc__kick(struct rsc_loop *loop);
void rsc__unkick(struct rsc_loop *loop);

/* @s is due on the loop's next turn (its ready queue, FIFO), once. */
RSC__INLINE void rsc__ready_push(struct rsc_loop *loop, struct rsc__scope *s)
{
	if (s->in_ready)
		return;
	if (loop->pollable)
		rsc__kick(loop); /* a host loop must run us for it */
	s->in_ready = true;
	rsc__list_push_back(&loop->ready_queue, &s->ready_node);
}
/* loop.c, for host.c: one CQE the application reaped, then what is due. */
void rsc__dispatch_one(struct rsc_loop *loop, uint64_t user_data, int res, unsigned flags);
unsigned rsc__run_due(struct rsc_loop *loop);
/* direct.c: the loop's registered file table */
int rsc__direct_setup(struct rsc_loop *loop, unsigned slots, unsigned chain_slots);
void rsc__direct_free(struct rsc_loop *loop);
/* -ENXIO (and why) if the loop has no table. */
int rsc__direct_need(struct rsc_loop *loop, const char *fn);
/* Room for @n more kernel-allocated slots, or -ENFILE naming the table size. */
int rsc__direct_check_room(struct rsc_loop *loop, unsigned n, const char *fn);
/* A slot of the runtime's range, held for an acquire (chains), or -ENFILE. */
int rsc__direct_reserve(struct rsc_loop *loop, const char *fn);
void rsc__direct_unreserve(struct rsc_loop *loop, int slot);
void rsc__direct_pending(struct rsc_loop *loop, int delta);
/* A pipe's CQE (manager_direct.c): 0, or -ENOMEM with both ends closed. */
int rsc__pipe_reserve(struct rsc_loop *loop, struct rsc__entry *e);
void rsc__pipe_settle(struct rsc__entry *e);
/* A direct accept armed (+1) or ended (-1), its backoff included (accept.c). */
void rsc__direct_armed(struct rsc_loop *loop, int delta);
/* The kernel put something in @slot for @e: the table says @e owns it. */
void rsc__direct_own(struct rsc_loop *loop, int slot, const struct rsc__entry *e);
/* Ownership of @e's slot(s) moves to @to (a compound acquire's take-over). */
void rsc__direct_move(struct rsc_loop *loop, const struct rsc__entry *e,
		      const struct rsc__entry *to);
/* @e's release settled: its slots are free again, or findings if not. */
void rsc__direct_released(struct rsc_loop *loop, struct rsc__entry *e);
/* A slot nobody can own any more (a connection after its scope closed). */
void rsc__direct_close_orphan(struct rsc_loop *loop, int slot);
/* loop.c: a CQE of ours waits in the CQ (on a shared ring, not the application's). */
bool rsc__cq_holds_ours(struct rsc_loop *loop);
/* Whether a hand-over may have put a file in @slot now: the kernel's range, free here. */
bool rsc__direct_can_arrive(const struct rsc_loop *loop, int slot);
/* handover.c: an arrival's inbox is alive on another ring: the CQE is not this loop's. */
bool rsc__inbox_elsewhere(uint64_t user_data, int ring_fd);
struct rsc__inbox;
struct rsc__list *rsc__direct_inboxes(struct rsc_loop *loop);
/* handover.c: a CQE another loop's IORING_OP_MSG_RING posted (user_data token << 32) */
void rsc__handover_message(struct rsc_loop *loop, uint64_t user_data, int res);
/* handover.c: a closing state changed, or a release was asked: inboxes that stop receiving leave the addresses */
void rsc__inboxes_closing(struct rsc_loop *loop);
/* loop.c: the CQ (and the kernel's overflow) copied into the stash; how many. */
unsigned rsc__stash_cqes(struct rsc_loop *loop);
/* manager_direct.c */
/*
 * A slot's file moving on (install, hand-over): the moving op's result in
 * @res, then the slot's close_direct, linked behind it, frees the slot and
 * tells @cb (rsc__slot_move_start()).
 */
struct rsc__slot_move {
	rsc_entry_cb cb;
	void *data;
	int slot;
	int res; /* the moving op's CQE */
	bool parcel; /* a hand-over that sent the peer's address (handover.c) */
	uint32_t parcel_token, parcel_seq;
};
_Static_assert(sizeof(struct rsc__slot_move) <= RSC__ROOM_SIZE, "a move's record outgrew its room");
int rsc__slot_move_check(struct rsc__entry *e, const char *fn);
/* An install or hand-over of @e's slot is in flight (its close_direct not yet settled). */
bool rsc__slot_move_in_flight(const struct rsc__entry *e);
int rsc__direct_exit(struct rsc_entry *h, const struct rsc_error *pending, void *arg);
int rsc__slot_move_start(struct rsc__entry *e, uint8_t opcode, rsc__op_fn done,
			 rsc_entry_cb cb, void *data, struct io_uring_sqe **first,
			 struct rsc__slot_move **movep);
struct rsc__entry *rsc__adopt_slot(struct rsc__scope *s, int slot, const char *detail);
int rsc__direct_open(struct rsc__scope *s, int dirfd, const char *path, int oflags,
		     mode_t mode, unsigned flags, const void *site,
		     struct rsc__entry **entryp);
int rsc__direct_socket(struct rsc__scope *s, int domain, int type, int protocol,
		       unsigned flags, const void *site, struct rsc__entry **entryp);
/* chain.c: a closing loop frees the chains never submitted (their handles go stale). */
void rsc__chains_free(struct rsc_loop *loop);
int rsc__direct_connect(struct rsc__scope *s, const struct sockaddr *addr,
			socklen_t addrlen, unsigned timeout_ms, unsigned flags,
			const void *site, struct rsc_entry **entryp);
void rsc__direct_prep_accept(struct rsc__entry *l, struct io_uring_sqe *sqe, struct rsc__peer *peer,
			     bool multishot);
/* entry.c, for entries the runtime makes itself (direct accepts, chains) */
struct rsc__entry *rsc__entry_new_entered(struct rsc__scope *s,
					  const struct rsc_manager *mgr,
					  unsigned config, int value, uint8_t fd_kind,
					  const char *detail);
void rsc__entry_close2_ran(struct rsc__entry *e);
struct rsc__entry *rsc__entry_new_entered_by_call(struct rsc__scope *s,
						  const struct rsc_manager *mgr, unsigned config,
						  const char *detail, const void *site);
struct rsc__entry *rsc__entry_new_entering(struct rsc__scope *s,
					   const struct rsc_manager *mgr,
					   void *owned_arg, unsigned config,
					   const char *detail, const void *site);
void rsc__entry_link_entering(struct rsc__entry *e);
int rsc__entry_fd_of(const struct rsc__entry *e);
int rsc__entry_fd_said(const struct rsc__entry *e);
void rsc__entry_op_complete(struct rsc_loop *loop, struct rsc_op *op, int res,
			    unsigned cqe_flags);
/* direct.c: a slot an installed descriptor left (its close_direct completed) */
void rsc__direct_drop(struct rsc_loop *loop, int slot, int res);

/* wait.c */
int rsc__scope_close_and_wait(struct rsc__scope *s, int *status,
			      struct rsc_error **errp);

/* audit.c */
int rsc__audit_level_from_env(void);
void rsc__audit_record(struct rsc_loop *loop, struct rsc__entry *e);
/* FULL, with @e's dev/ino recorded: its close checks the number first (rsc__audit_still_ours). */
static inline bool rsc__audit_checks_identity(const struct rsc_loop *loop, const struct rsc__entry *e)
{
	return loop->audit_level == RSC_AUDIT_FULL && (e->flags & RSC__E_IDENTITY);
}
bool rsc__audit_still_ours(struct rsc_loop *loop, struct rsc__entry *e);
void rsc__audit_check_released(struct rsc_loop *loop, struct rsc__entry *e);
/* A finding on @loop (a descriptor or a slot); @target NULL: read from /proc/self/fd. */
void rsc__audit_add_finding(struct rsc_loop *loop, int kind, int fd, const char *target,
			    const char *scope, const char *expected);
void rsc__audit_add_finding_at(struct rsc_loop *loop, int kind, int fd, bool slot,
			       const char *target, const char *scope, const char *expected);
void rsc__audit_scope_open(struct rsc_loop *loop, struct rsc__scope *s);
void rsc__audit_scope_closed(struct rsc_loop *loop, struct rsc__scope *s);
void rsc__audit_disown(struct rsc_loop *loop, int fd);
void rsc__audit_born(struct rsc_loop *loop, int fd);
/* An acquire's opcode that makes a descriptor: its CQE's number is new, even
 * one a custom manager's enter prepared (unless into a slot: custom_slot_sqe). */
static inline bool rsc__opcode_makes_fd(unsigned opcode)
{
	return opcode == IORING_OP_OPENAT || opcode == IORING_OP_OPENAT2 ||
	       opcode == IORING_OP_SOCKET || opcode == IORING_OP_ACCEPT;
}
void rsc__audit_flush(struct rsc_loop *loop);
int rsc__audit_open_proc_dir(struct rsc_loop *loop);
void rsc__audit_free(struct rsc_loop *loop);
void rsc__audit_register(struct rsc_loop *loop);
void rsc__audit_unregister(struct rsc_loop *loop);
/* rsc_audit_describe_fd calls in progress, on any thread. */
extern unsigned rsc__describers;
/* The describers' side of the fence is membarrier(2)'s (set once, before any loop). */
extern bool rsc__membarrier;

/* Every handle of @h's slot is stale from now on (handle.c's other half,
 * inline: every pooled put drops one). */
static inline void rsc__handle_drop(struct rsc_loop *loop, uint64_t h, uint32_t *slot)
{
	uint32_t idx = ((uint32_t)h & RSC__H_SLOT_MASK) - 1;
	struct rsc__slot *sl = rsc__slot_at(idx);
	uint32_t gen = sl->gen;

	(void)loop;
	assert(gen == (uint32_t)(h >> 32) && *slot == idx + 1);
	/* Atomic: another thread's lookup of a stale handle reads it. */
	__atomic_store_n(&sl->obj, NULL, __ATOMIC_RELEASE);
	/* Ordered before rsc__audit_quiesce's load: by the describer's
	 * membarrier where the kernel has it, else by a full fence. */
	if (rsc__membarrier) {
		__atomic_store_n(&sl->gen, ++gen, __ATOMIC_RELEASE);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	} else {
		__atomic_store_n(&sl->gen, ++gen, __ATOMIC_SEQ_CST);
	}
	if (gen == RSC__RETIRED_GEN)
		*slot = 0; /* never handed out again: no generation is reused */
}
void rsc__audit_wait_describers(void) RSC__COLD;

/*
 * An entry or scope whose handle was just dropped is about to be freed or
 * poisoned: a describer on another thread that found it live before the
 * drop may still be reading its names (under the audit lock), so wait for
 * it. Dekker: the drop's generation store, then this load; the describer's
 * count, then its load of the generation (rsc__handle_still): either it
 * sees the drop and reads nothing, or it is seen here. The store-load order
 * on this side is the describer's membarrier(2) (an asymmetric fence: the
 * rare side pays), or a seq_cst store where the kernel lacks it. A load of
 * a line nobody writes: no cost across cores.
 */
static inline void rsc__audit_quiesce(void)
{
	if (__builtin_expect(__atomic_load_n(&rsc__describers, __ATOMIC_SEQ_CST) != 0, 0))
		rsc__audit_wait_describers();
}

/*
 * An io-wq op interrupted by a cancel can complete with the kernel-internal
 * -ERESTARTSYS family (512..516: include/linux/errno.h), seen on a blocking
 * FIFO openat. Callers only ever see real errnos.
 */
/* A tracked op of @e has been cancelled: by its release, or a deadline above. */
#define RSC__E_IO_CANCELLED (RSC__E_DRAINING | RSC__E_IO_CUT)

static inline int rsc__real_errno(int res, bool cancelled)
{
	if (res > -512 || res < -516)
		return res;
	return cancelled ? -ECANCELED : -EINTR;
}

/* Argument checks that also say what was wrong. */
#define RSC__CHECK_ARG(cond, ...)                   \
	do {                                        \
		if (__builtin_expect(!(cond), 0)) { \
			rsc__set_last_error(__VA_ARGS__); \
			return -EINVAL;             \
		}                                   \
	} while (0)

#include "observe.h"

#endif /* RSC_INTERNAL_H */
