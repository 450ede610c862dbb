/* SPDX-License-Identifier: MIT */
#ifndef RSC_SOAK_MODEL_H
#define RSC_SOAK_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringscope.h"
#include "program.h"

/*
 * The interpreter's model of one program (program.c), shared with the files
 * that add kinds of operation to it: hand-overs between loops (handover.c)
 * and posts (post.c). Not part of program.h: only the interpreter uses it.
 */

/* The program's own scopes and entries; room beyond them for the
 * connections its accepts deliver (accept.c: at most ACC_CONNS). */
#define PROG_SCOPES  48
#define PROG_ENTRIES 320
#define ACC_CONNS    16
#define MAX_SCOPES  (PROG_SCOPES + ACC_CONNS)
#define MAX_ENTRIES (PROG_ENTRIES + ACC_CONNS)
#define MAX_OPS	    300
#define MAX_ERRS    1024
#define N_FILES	    8
#define N_MISSING   4
#define CHAIN_MAX   1024

/* The hook's own failure: an errno nothing else in a program produces. */
#define HOOK_ERRNO EPROTO

enum ekind { K_FILE, K_SOCKET, K_CUSTOM, K_NET, K_DIRECT, K_DEFER, K_TIMER, K_PIPE };
enum tenter { TE_NOP, TE_OPEN, TE_FAIL };
enum texit { TX_CLOSE, TX_BADF, TX_SUPPRESS, TX_FAIL, TX_NONE, TX_TWO_ERRORS };
/*
 * What a custom hook does beyond its variant (kind "hooks", op_custom): an
 * enter with a second, slow SQE (a 10 s timeout, unlinked) that only a
 * cancel ends; a link flag left on the last SQE of both hooks (after a
 * close(-1) that fails); IOSQE_CQE_SKIP_SUCCESS on the last SQE of both.
 */
/* TW_DL_ENTER, TW_DL_EXIT: the enter (or exit) hook sets a deadline of 1-4 ms
 * on its own scope (rsc_scope_set_deadline(3) from inside a hook). */
enum twist { TW_NONE, TW_SLOW, TW_LINK, TW_SKIP, TW_DL_ENTER, TW_DL_EXIT };

/* Custom managers, after tests/tmgr.c: each variant is its own named manager. */
struct variant {
	struct rsc_manager mgr;
	enum tenter enter;
	enum texit exit;
};

struct pscope {
	struct rsc_scope *h;
	int parent; /* index, or -1 for a top-level scope */
	int depth;
	char name[16];
	bool valid;	    /* the handle may be used (not freed) */
	bool close_req;	    /* a close of ours was accepted */
	bool fail_req;	    /* rsc_scope_fail of ours was accepted (own.c) */
	bool graceful;	    /* its close is graceful: early releases allowed in the grace */
	bool suppressed;    /* an unwind exit here suppressed (res >= 0) */
	int n_closed;	    /* RSC_EV_SCOPE_CLOSED events */
	int closed_res;
	int last_unwind;    /* push order of the last unwind release, INT_MAX */
	int n_pushed;
	int n_cb;	    /* close callbacks */
	bool closed_in_shutdown;
	int late_entry;	    /* entry still entering at SCOPE_CLOSED, or -1 */
	struct rsc_error *final; /* its chain at RSC_EV_SCOPE_CLOSED (a copy) */
	char chain[CHAIN_MAX]; /* the same, formatted */
};

struct pentry {
	struct rsc_entry *h;
	int scope;
	int seq; /* push order within its scope */
	enum ekind kind;
	const struct variant *v;
	const char *name; /* its manager's name: entry names in chains */
	char path[300];
	bool fd_kind;	    /* its value is a real descriptor */
	bool multi_release; /* its release is two SQEs of fault kinds */
	bool fsync_fails;   /* its release's fsync fails (-EINVAL) before its close */
	bool early, early_cb;
	bool ordered;	    /* its release waits for every release above it (unwind.c) */
	bool unordered;	    /* K_CUSTOM: pushed with RSC_MANAGER_UNORDERED */
	bool detached;	    /* rsc_entry_detach gave its fd back: no release */
	bool adopted;	    /* entered inside rsc_adopt, traced from the loop */
	bool moved;	    /* rsc_entry_move took it to another scope */
	/* The socket entry under rsc_connect/rsc_listen: no handle is returned
	 * for it, so it is bound to its handle at its first event. */
	bool hidden;
	bool maybe_absent; /* the pair's push failed: it may never have existed */
	/* Its connect/listen entry entered: that entry may own the socket from
	 * now on (and close it), so this one need not be released on its own. */
	bool taken_over;
	int n_early_cb, early_cb_res;
	int n_entered, n_failed, n_released;
	int enter_res, release_res;
	/* K_DIRECT (handover.c): a slot of the loop's direct table. */
	int n_handing;	    /* hand-overs called whose callback has not run */
	bool handed;	    /* a hand-over succeeded: it holds nothing now */
	bool chain;	    /* a step of a linked chain (chain.c): its value is a slot */
	enum twist twist;   /* K_CUSTOM: what its hooks do beyond the variant */
	bool witness;	    /* an open pushed just after a TW_LINK enter, in a scope of its own */
	double slow_t0;	    /* TW_SLOW: when its enter hook prepared the timeout */
	unsigned dl_ms;	    /* TW_DL_*: the deadline its hook sets, and whether move-on */
	bool dl_move_on;
	/* ledger.c: a duplicate of its descriptor + 1 (0: none), and its number;
	 * released since the last check. */
	int lw_dup, lw_fd;
	bool lw_released;
};

/* An error some event raised: what a chain may (or must) carry. */
struct perr {
	int err;
	int scope, entry;
	bool must; /* the scope must carry it (unless something suppressed) */
	bool while_unwinding; /* raised in a scope already unwinding */
	bool may_be_lost;     /* ... and a child's result replaced it (known bug) */
	const char *op;	      /* a scope's own error (own.c): this op, no entry */
};

/* FC_MSG: a "msg_ring" rule set for one hand-over (handover.c), not by op_fault. */
/* FC_ACC: "accept" rules (accept.c): they fail accepts, not entries. */
/* FC_ALLOC: "alloc" rules (the kind alloc): a call may say -ENOMEM, nothing done. */
enum fclass { FC_NONE, FC_ACQ, FC_REL, FC_RING, FC_MSG, FC_ACC, FC_ALLOC, FC__COUNT };

struct prog {
	const struct prog_env *env;
	struct rsc_loop *loop;
	struct pscope sc[MAX_SCOPES];
	struct pentry en[MAX_ENTRIES];
	struct perr errs[MAX_ERRS];
	int n_sc, n_en, n_errs;
	bool shutting_down;
	bool draining; /* in rsc_loop_close or rsc_loop_shutdown: a post may be refused */
	int root_closed, root_res;
	/* fault windows: rules of one class at a time */
	enum fclass cur_class;
	bool ring_rules; /* ring rules in force: FC_RING's, or beside accept rules (accept.c) */
	long long fault_mark;
	long long fired[FC__COUNT];
	int n_findings;
	bool addresses;	  /* header bit 6: op 5 also makes connect/listen addresses */
	bool pipes;	  /* KIND_PIPE: op 5 also makes rsc_pipe entries */
	bool io_dups;	  /* KIND_DUP: I/O pairs get a third entry, a dup of the first end (io.c) */
	bool multi_cqe;	  /* KIND_HOOKS: a TW_SLOW enter's second SQE is a multishot timeout of 1 ms */
	bool bad_rules;	  /* header bit 7: op_fault also sets malformed rules */
	struct rsc_error *root_final; /* rsc_loop_shutdown's chain */
	int root_status;
	bool strict; /* default; PROG_STRICT=0 tolerates the bugs fixed since */
	bool reenter;	 /* hooks and the trace try to block or run the loop */
	unsigned reentry_probes;	unsigned late_traces, lost_errors;
	struct pentry *releasing; /* inside rsc_entry_release of this entry */
	bool nowait_run;	  /* in op_run's rsc_loop_run(NOWAIT): it waits for nothing */
	bool failed;
	char *why;
	size_t whylen;
	int op_index;
	bool eventfd_wake; /* made as on a kernel without MSG_RING (post.c) */
	int miss;	   /* the mask of missing features it runs under (missing.c), or -1 */
	/* fork.c: a callback forked; the child returned into the loop, where nothing may run. */
	bool fork_child;       /* this is that child */
	unsigned child_events; /* trace events the child saw: none allowed */
	int child_close_res;   /* rsc_loop_close inside the callback that forked: -EDEADLK */
	int fork_pid;	       /* the parent: the child to hear from, or 0 */
	bool msg_armed;	   /* a msg_ring rule waits for a hand-over's look-up */
	int n_direct;	   /* direct acquires: the loop has a direct table */
	bool table;	   /* the loop has a direct table (ho_table), maybe no slot yet */
	int peer_gen;	   /* peer loops made (handover.c) */
	bool shared;	   /* the loop is on an application's ring (shared.c) */
	bool pollable;	   /* RSC_LOOP_POLLABLE, driven as a host loop drives it (shared.c) */
	unsigned long long host_wakes; /* turns run because its fd polled readable */
	bool audit_full;   /* the program's loop audits at RSC_AUDIT_FULL */
	unsigned lw_late_refusals; /* ledger.c: adopts refused while an fsync'd close was unreaped */
	/* Leaks planted on a detached number (op_detach): each must be reported. */
	int planted[8];
	int planted_seen[8];
	int n_planted;
	int planted_uncleared; /* their findings since audit_probe last cleared them */
	bool audit_cb;	   /* callbacks and hooks call the audit (audit.c) */
	uint64_t sh_seed;  /* what the application does: a hash of the program */
	bool odd_names;	   /* its scopes' names carry control bytes (text.c) */
	unsigned long long alloc_refusals; /* ENOMEMs taken for refusals (violation()) */
};

/* The bytes of a program, read one at a time (0 past the end). */
struct rd {
	const uint8_t *d;
	size_t n, i;
};

unsigned rd_u8(struct rd *r);

/* program.c: what the other files build on. */
void violation(struct prog *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Alloc faults fired in this program so far: error chains may have lost links. */
bool alloc_fired(const struct prog *p);
/* Its release is several SQEs that may each fail: one error per failed SQE (rsc_entry_get_sqes(3)). */
bool release_may_fail_twice(const struct pentry *e);
void say(const struct prog *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int pick_scope(const struct prog *p, struct rd *r);
/* text.c: no raw control character in what the runtime writes. */
void text_check(struct prog *p, const char *what, const char *s, size_t len, bool newlines);
void text_check_str(struct prog *p, const char *what, const char *s);
void text_scope_name(const struct prog *p, int n, char *name, size_t size);
void text_begin(struct prog *p, struct prog_stats *st);
void text_end(struct prog *p, struct prog_stats *st);
int pick_entry(const struct prog *p, struct rd *r);
int op_open_scope(struct prog *p, int parent);
struct pentry *push_begin(struct prog *p, int s, enum ekind kind);
void push_end(struct prog *p, struct pentry *e, int ret, int expect_err, const char *what);
int adopt_fd(struct prog *p, struct pentry *e, int s, int fd, const char *what);
void op_file(struct prog *p, int s, struct rd *r);
void op_release(struct prog *p, int i, struct rd *r);
/* Detach entry @i, checked against the model; true if it was detached. */
bool op_detach(struct prog *p, int i);
void op_close(struct prog *p, int s);
void op_run(struct prog *p, unsigned b, struct prog_stats *st);
bool unwind_owns(const struct prog *p, int s);
bool self_or_ancestor_close_req(const struct prog *p, int s);
bool self_or_ancestor_not_open(const struct prog *p, int s);
bool ancestor_closing(const struct prog *p, int s);
bool link_is(const struct prog *p, const struct perr *x, const struct rsc_error *c);
void add_err(struct prog *p, int err, int scope, int entry, bool must, bool unwinding);
void *close_data(struct prog *p, int s);
void scope_close_cb(struct rsc_scope *h, int status, const struct rsc_error *err, void *data);
void fault_window(struct prog *p);

/* handover.c: direct acquires, a peer loop with an inbox, hand-overs to it. */
void ho_begin(void);
void ho_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st);
void ho_direct(struct prog *p, int s, struct rd *r);
void ho_released(struct prog *p, int i);
void ho_end_main(struct prog *p);
void ho_end(struct prog *p, struct prog_stats *st);

/* post.c: rsc_loop_post from the program, and at the loop's end. */
void post_begin(void);
void post_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st);
int post_loop_new(struct prog *p, unsigned ring, unsigned flags);
void post_env_settle(void);
void post_before_end(struct prog *p);
bool post_at_end(void);
void post_end(struct prog *p, struct prog_stats *st);

/* missing.c: the kind "missing", a program on a kernel that lacks something. */
enum {
	M_NO_CANCEL_FD = 1,
	M_NO_DEFER = 2,	    /* nor SINGLE_ISSUER */
	M_NO_COOP = 4,	    /* no setup feature at all */
	M_NO_REG_RING = 8,
	M_EVENTFD = 16,	    /* posts wake by the eventfd */
	M_NO_HANDOVER = 32, /* hand-overs are -EOPNOTSUPP */
	M_NO_RECV_MS = 64,  /* rsc_recv_multishot is -EOPNOTSUPP */
	M_NO_ACCEPT_MS = 128, /* rsc_accept(RSC_ACCEPT_MULTISHOT) is -EOPNOTSUPP */
};
void miss_choose(struct prog *p, struct prog_stats *st);
unsigned miss_what(const struct prog *p);
const char *miss_spec(const struct prog *p);
const char *miss_env(const struct prog *p, bool eventfd_wake);
void miss_env_settle(void);
int prog_fault_set(struct prog *p, const char *spec);
void miss_check_loop(struct prog *p);
void miss_check_end(struct prog *p);
bool miss_refuses(const struct prog *p, unsigned what);

/* io.c: tracked I/O on adopted sockets (receives, sends, timeouts). */
void io_begin(void);
void io_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st);
bool io_busy(const struct prog *p, int i);
void io_released(struct prog *p, int i);
bool io_before_wait(struct prog *p, struct prog_stats *st);
int io_timeout_on(struct prog *p, int i, unsigned b, struct prog_stats *st);
void io_end(struct prog *p, struct prog_stats *st);

/* shared.c: loops on an application's own ring (rsc_loop_new_from_ring). */
int sh_loop_new(struct prog *p, int app, unsigned entries, bool defer, struct rsc_loop **loopp);
bool sh_is_shared(const struct rsc_loop *loop);
bool sh_any_app(void);
int sh_run(struct prog *p, struct rsc_loop *loop, enum rsc_run_mode mode);
int sh_loop_close(struct prog *p, struct rsc_loop *loop, struct prog_stats *st);
void sh_drop_arrivals(struct rsc_loop *loop);
unsigned long long sh_arrivals_dropped(const struct rsc_loop *loop);
void sh_cleanup(void);

/* own.c: moves, failures, defers, on-close callbacks, deadlines, graceful closes, timers. */
void own_begin(void);
void own_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st);
/* fork.c */
bool fork_probe_due(const struct prog *p);
void fork_probe(struct prog *p, struct prog_stats *st);
void fork_from_callback(struct prog *p, unsigned salt);
void fork_settle(struct prog *p, struct prog_stats *st);
bool own_busy(const struct prog *p, int i);
bool own_before_wait(const struct prog *p);
/* Whether an unwind owns a scope's entries for rsc_entry_release: either,
 * where the library's moment is not one the model can see. */
enum own_verdict { OWN_NO, OWN_YES, OWN_EITHER };
enum own_verdict own_owns_release(const struct prog *p, int s);
bool own_in_grace(const struct prog *p, int s);
void own_released(struct prog *p, int i);
void own_scope_closed(struct prog *p, int s, const struct rsc_error *chain);
void own_end(struct prog *p, struct prog_stats *st);
/* ledger.c: a number stays owned until its close has run. */
void lw_entered(struct prog *p, int i, int fd);
void lw_check(struct prog *p, struct prog_stats *st);
bool lw_number_still_held(struct prog *p, int fd);
void lw_end(struct prog *p, struct prog_stats *st);
void own_set_deadline(struct prog *p, int s, unsigned ms, bool move_on, struct prog_stats *st);
/* The same from inside a hook, where -EBUSY is also the answer of an SQ full
 * of the hook's own reservation (rsc_scope_set_deadline(3)). */
void own_set_deadline_in_hook(struct prog *p, int s, unsigned ms, bool move_on,
			      struct prog_stats *st);
void own_fail_scope(struct prog *p, int s, unsigned b, struct prog_stats *st);
void own_close_graceful(struct prog *p, int s, unsigned grace_ms, struct prog_stats *st);
void own_move_scope(struct prog *p, int s, int np, struct prog_stats *st);
void own_defer(struct prog *p, int s, unsigned mode, struct prog_stats *st);

/* io.c */
bool io_has_pair(int i);

/* program.c: rsc_connect or rsc_listen of a valid or invalid address, modelled. */
int net_pair(struct prog *p, int s, bool listening, const void *raw, unsigned len,
	     unsigned timeout_ms, int backlog, struct prog_stats *st);

/* accept.c: a listener, single-shot and multishot accepts, the program's own clients. */
void acc_begin(void);
void acc_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st);
int acc_bind(struct prog *p, const struct rsc_scope *sh, const struct rsc_entry *eh);
bool acc_busy(const struct prog *p, int i);
int acc_in_flight(int i);
bool acc_before_wait(const struct prog *p);
void acc_entered(struct prog *p, int i);
void acc_released(struct prog *p, int i);
void acc_end(struct prog *p, struct prog_stats *st);

/* handover.c: the loop's direct table, made at the first direct op; false if it cannot be. */
bool ho_table(struct prog *p);

/* chain.c: linked acquire chains (rsc_chain_new(3)) on live scopes. */
void ch_env_init(const struct prog_env *env);
void ch_env_fini(void);
void ch_begin(void);
void ch_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st);
void ch_entered(struct prog *p, int i, int res);
void ch_failed(struct prog *p, int i, int res);
void ch_end(struct prog *p, struct prog_stats *st);
int ch_listen_fd(void);

/* audit.c: the audit calls from inside callbacks and hooks: a clean program has no finding. */
void audit_op(struct prog *p, struct prog_stats *st);
void audit_probe(struct prog *p, const char *where);

/* accept.c */
bool acc_direct_armed(void);
void acc_conn_op(struct prog *p, struct rd *r, struct prog_stats *st);

/* unwind.c: the order exits start and complete in, and the pending error each sees. */
void uw_begin(void);
void uw_exit_called(struct prog *p, int i, const struct rsc_error *pending, struct prog_stats *st);
void uw_exit_returned(struct prog *p, int i, int ret);
void uw_released(struct prog *p, int i, int res);
void uw_enter_failed(struct prog *p, int i, int res);

#endif
