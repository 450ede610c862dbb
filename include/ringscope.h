/* SPDX-License-Identifier: MIT */
#ifndef RINGSCOPE_H
#define RINGSCOPE_H

#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Only custom managers fill SQEs: they include <liburing.h> themselves. */
struct io_uring_sqe;

#ifdef __cplusplus
extern "C" {
#endif

/* __extension__: long long is C99, and -std=gnu89 -Wpedantic users must not hear of it. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define RSC_EXTERN __extension__ __attribute__((visibility("default")))
#define RSC_MUST_CHECK __attribute__((warn_unused_result))
#else
#define RSC_EXTERN
#define RSC_MUST_CHECK
#endif

#define RINGSCOPE_VERSION_MAJOR 0
#define RINGSCOPE_VERSION_MINOR 1

/* Longest scope name, including the terminating NUL. */
#define RSC_NAME_MAX 64

/*
 * Handles. A loop is a pointer, freed by rsc_loop_close()/rsc_loop_shutdown().
 * Scope and entry handles are opaque values, not pointers: each names one
 * object for its whole life, and once that object is freed every call with
 * the handle returns -ESTALE (man 7 ringscope, HANDLES), even after the
 * runtime has reused its memory. Ownership of a descriptor moves only by
 * the calls that say so: rsc_adopt, rsc_entry_detach, rsc_entry_move,
 * rsc_scope_move.
 */
struct rsc_loop;
struct rsc_scope;
struct rsc_entry;
struct rsc_error;
struct rsc_finding;

/*
 * Loop. One io_uring and the completion dispatch around it; one loop per
 * thread. Every acquire and release is an SQE prepared on the loop's ring;
 * SQEs prepared between two turns go out in one submit. Nothing completes
 * inside the call that started it: callbacks only run from rsc_loop_run().
 */

/* rsc_loop_new() flags. */
#define RSC_LOOP_NO_DEFER_TASKRUN (1U << 0) /* don't try SINGLE_ISSUER|DEFER_TASKRUN */
#define RSC_LOOP_POLLABLE	  (1U << 1) /* driven by a host loop: rsc_loop_fd() */
#define RSC_LOOP_DIRECT		  (1U << 2) /* register a direct table (see Direct descriptors) */

/* rsc_loop_features() bits: which ring setup the kernel accepted. */
#define RSC_FEAT_SINGLE_ISSUER (1U << 0)
#define RSC_FEAT_DEFER_TASKRUN (1U << 1)
#define RSC_FEAT_COOP_TASKRUN  (1U << 2)
#define RSC_FEAT_POLLABLE      (1U << 3) /* rsc_loop_fd() works (no DEFER_TASKRUN) */
#define RSC_FEAT_SHARED_RING   (1U << 4) /* the application's ring: rsc_loop_dispatch() */
#define RSC_FEAT_POST_EVENTFD  (1U << 5) /* rsc_loop_post() wakes it by an eventfd (no MSG_RING) */
#define RSC_FEAT_REGISTERED_RING (1U << 6) /* the ring's descriptor is registered with the loop's thread */

enum rsc_run_mode {
	RSC_RUN_DEFAULT = 0, /* until nothing is alive */
	RSC_RUN_ONCE,	     /* wait for and dispatch at least one completion */
	RSC_RUN_NOWAIT	     /* dispatch what is ready, never wait */
};

enum rsc_audit_level {
	RSC_AUDIT_OFF = 0,
	RSC_AUDIT_RELEASED, /* each release's close: verified by its own CQE */
	RSC_AUDIT_FULL	    /* also: identity guard, /proc/self/fd diff per scope */
};

/* Counters a program can export; see rsc_loop_counter(). */
enum rsc_counter {
	RSC_CTR_ENTER_CALLS = 0, /* io_uring_enter() calls made by the loop */
	RSC_CTR_SQES,		 /* SQEs submitted */
	RSC_CTR_CQES,		 /* CQEs reaped */
	RSC_CTR_ACQUIRED,	 /* entries that reached ENTERED */
	RSC_CTR_RELEASED,	 /* entries that reached EXITED */
	RSC_CTR_ENTER_FAILED,	 /* entries that reached FAILED */
	RSC_CTR_LATE_ACQUIRES,	 /* acquires that won the race against a cancel */
	RSC_CTR_POOL_ALLOCS,	 /* allocations made by the loop's object pools */
	RSC_CTR_BUSY_RETRIES,	 /* submits retried after -EBUSY/-EAGAIN */
	RSC_CTR_SQ_FULL,	 /* times the SQ was full and flushed early */
	RSC_CTR_FAULTS_INJECTED, /* faults injected by rsc_fault_set() rules */
	RSC_CTR_DEADLINES,	 /* scopes whose deadline passed */
	RSC_CTR_CANCEL_FD,	 /* entries whose I/O one SQE cancelled (release, deadline) */
	RSC_CTR_RECV_REARMS,	 /* multishot receives re-armed after the kernel ended them */
	RSC_CTR_NOMEM_DROPS,	 /* descriptors acquired, then closed: no memory to own them */
	RSC_CTR_AUDIT_LOST,	 /* audit findings and leak verdicts lost: no memory */
	RSC_CTR_ERRORS_LOST,	 /* errors an error chain could not take: no memory */
	RSC_CTR_COUNT		 /* the number of counters (not a counter) */
};
#ifndef __cplusplus
/* Its earlier name; C++ reserves names with "__", so it is defined for C only. */
#define RSC_CTR__COUNT RSC_CTR_COUNT
#endif

/*
 * Lifecycle events, delivered to the trace callback in the order the
 * runtime settles them (LIFO within an unwind).
 */
enum rsc_event {
	RSC_EV_ENTERED = 0,   /* acquire completed: res is the descriptor */
	RSC_EV_ENTER_FAILED,  /* acquire failed: res is -errno, nothing acquired */
	RSC_EV_RELEASED,      /* release completed: res is 0 or the exit's -errno */
	RSC_EV_SCOPE_CLOSED,  /* scope fully unwound: res is its status */
	RSC_EV_AUDIT_FINDING /* the audit recorded a finding: res is the fd */
};

typedef void (*rsc_trace_cb)(struct rsc_loop *loop, enum rsc_event ev,
			     const struct rsc_scope *scope,
			     const struct rsc_entry *entry, int res, void *data);

/*
 * Create a loop with a ring of @entries SQEs (0 picks 256; fewer than
 * RSC_ENTRY_SQES_MAX are rounded up to it; at most 32768).
 * Tries IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN, then COOP_TASKRUN, then
 * plain; rsc_loop_features() says which was used. RSC_LOOP_DIRECT also
 * registers a direct table of RSC_DIRECT_SLOTS_DEFAULT slots (its errors:
 * those of rsc_loop_set_direct()). The audit level starts at
 * the value of RINGSCOPE_AUDIT (off|released|full), or off.
 * Returns 0 or -errno (*@loopp is then NULL): -EINVAL (bad flags, entries,
 * or RINGSCOPE_AUDIT / RINGSCOPE_FAULT value), -EOPNOTSUPP (RINGSCOPE_FAULT
 * set in a build without fault injection), -ENOMEM, or io_uring_setup's error, with
 * rsc_last_error() saying why io_uring was unavailable.
 * A loop does not cross fork(2): in the child, calls on it, its scopes and
 * entries fail with -ECHILD, and rsc_loop_close() frees the child's copy
 * (ringscope(7), FORK).
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_loop_new(struct rsc_loop **loopp,
					   unsigned entries, unsigned flags);

/*
 * A loop that another event loop drives. rsc_loop_fd() (loops made with
 * RSC_LOOP_POLLABLE) is a descriptor that polls readable whenever the loop
 * has completions or work due; the host then calls
 * rsc_loop_run(RSC_RUN_NOWAIT). DEFER_TASKRUN would hold completions until
 * the ring is entered and never wake a host asleep in its own poll, so a
 * pollable loop is set up without it (rsc_loop_features() says
 * RSC_FEAT_POLLABLE). Errors: -EINVAL, -EOPNOTSUPP (not pollable).
 */
RSC_EXTERN int rsc_loop_fd(const struct rsc_loop *loop);

/*
 * A loop on the application's own liburing ring: scopes without a second
 * ring. ringscope's user_data always has bit 63 set, which pointers never
 * have in user space; the application's must not. The application submits,
 * waits and reaps as before, and hands each CQE to rsc_loop_dispatch(),
 * which returns 1 if it was ringscope's (then dispatched, with the
 * callbacks it makes due) and 0 if it is the application's (untouched).
 * rsc_loop_run() takes only RSC_RUN_NOWAIT on such a loop (submit and run
 * what is due), so the blocking helpers return -EOPNOTSUPP; closing a scope
 * and reaping until rsc_loop_alive() is 0 ends its work. The ring outlives
 * the loop: rsc_loop_close() leaves it open. Errors: -EINVAL, -ENOMEM,
 * -EDEADLK (dispatch from inside a callback).
 */
struct io_uring;
struct io_uring_cqe;
RSC_EXTERN RSC_MUST_CHECK int rsc_loop_new_from_ring(struct rsc_loop **loopp,
						     struct io_uring *ring,
						     unsigned flags);
RSC_EXTERN int rsc_loop_dispatch(struct rsc_loop *loop,
				 const struct io_uring_cqe *cqe);

/* Which RSC_FEAT_* the ring was set up with, or -EINVAL. */
RSC_EXTERN int rsc_loop_features(const struct rsc_loop *loop);

/*
 * Submit what is prepared and dispatch completions. Returns 1 if something
 * is still alive (ops in flight, scopes unwinding, callbacks due), 0 if not,
 * -EDEADLK if called from inside any of the loop's callbacks or manager
 * hooks (wherever it runs: from the loop, or inside rsc_push() or
 * rsc_entry_release()), or -errno if the ring failed.
 */
RSC_EXTERN int rsc_loop_run(struct rsc_loop *loop, enum rsc_run_mode mode);

/* 1 if rsc_loop_run() has work left, 0 if not, -EINVAL. */
RSC_EXTERN int rsc_loop_alive(const struct rsc_loop *loop);

/*
 * Free a loop that has no open scope and no callback due. Ops the runtime
 * still has in flight on its own (a cancel whose target completed first)
 * are drained first. Returns -EBUSY (and frees nothing) otherwise, or
 * -EDEADLK from inside a callback or hook.
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_loop_close(struct rsc_loop *loop);

/*
 * Close every open scope newest first (cancelling acquires in flight),
 * run until every release has completed, drain the CQ, then free the loop.
 * Returns the combined status (0 or the -errno of the newest error left);
 * if @errp is not NULL it receives the error chain (free it with
 * rsc_error_free()), or NULL. -EDEADLK from inside a callback or hook; if
 * the ring fails, its -errno is returned and the loop is not freed.
 */
RSC_EXTERN int rsc_loop_shutdown(struct rsc_loop *loop,
				 struct rsc_error **errp);

/* Set the audit level (overrides RINGSCOPE_AUDIT). Returns 0 or -EINVAL. */
RSC_EXTERN int rsc_loop_set_audit(struct rsc_loop *loop,
				  enum rsc_audit_level level);
/* The current audit level, or -EINVAL. */
RSC_EXTERN int rsc_loop_audit_level(const struct rsc_loop *loop);

/*
 * The one call that is safe from any thread: run @fn(@loop, @arg) on the
 * loop's thread, from the loop, on one of its next turns (posts run in the
 * order they were made). A loop blocked in rsc_loop_run() wakes for it:
 * an IORING_OP_MSG_RING (Linux 5.18) from a small waker ring of the
 * loop's, made at its first post; on older kernels a write to an eventfd
 * the loop polls (RSC_FEAT_POST_EVENTFD). Posts still queued run in
 * rsc_loop_close()/rsc_loop_shutdown() (on a shared ring, the application
 * runs the loop until rsc_loop_alive() is 0 first). Stop posting threads
 * before closing the loop: a post racing the free is the caller's error.
 * If this call fails, @fn never runs. Errors: -EINVAL, -ENOMEM,
 * -ESHUTDOWN (the loop is being freed), -EOPNOTSUPP (a shared ring on a
 * kernel without IORING_OP_MSG_RING), or the wake-up's own error.
 */
RSC_EXTERN int rsc_loop_post(struct rsc_loop *loop,
			     void (*fn)(struct rsc_loop *loop, void *arg),
			     void *arg);

/*
 * Install (or with NULL, remove) the lifecycle trace callback. It observes:
 * from inside it, pushing, I/O, release, detach and move return -EDEADLK, as
 * from a manager hook; closing or failing a scope (a request) is allowed.
 */
RSC_EXTERN int rsc_loop_set_trace(struct rsc_loop *loop, rsc_trace_cb cb,
				  void *data);

/* Value of one counter (>= 0), or -EINVAL. */
RSC_EXTERN long long rsc_loop_counter(const struct rsc_loop *loop,
				      enum rsc_counter which);
/* The counter's name, e.g. "sqes" for RSC_CTR_SQES; NULL if out of range. */
RSC_EXTERN const char *rsc_counter_name(enum rsc_counter which);

/*
 * Scopes. A scope is a chain of entries plus child scopes that unwinds
 * LIFO. A failed acquire starts the unwind of its scope at once, with its
 * error pending; rsc_scope_close() starts it otherwise. Every scope, child
 * scope and entry below a scope stays valid until that scope's close
 * callback has returned; then all of them are freed.
 */

enum rsc_scope_state {
	RSC_SCOPE_OPEN = 0,
	RSC_SCOPE_UNWINDING,
	RSC_SCOPE_UNWOUND /* unwound after a failure, waiting for its close */
};

/*
 * Called from the loop when a closed scope has unwound. @status is 0 or the
 * -errno of the pending error; @err is the error chain (NULL when clean or
 * suppressed), valid during the call (rsc_error_dup() to keep it).
 */
typedef void (*rsc_scope_close_cb)(struct rsc_scope *scope, int status,
				   const struct rsc_error *err, void *data);

/*
 * Open a scope named @name (at most RSC_NAME_MAX - 1 bytes, copied) under
 * @parent, or at the top of the loop when @parent is NULL.
 * Errors: -EINVAL, -ESTALE (@parent freed), -EXDEV (@parent on another
 * loop), -ENAMETOOLONG, -ESHUTDOWN (parent unwinding), -ENOMEM.
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_scope_open(struct rsc_loop *loop,
					     struct rsc_scope *parent,
					     const char *name,
					     struct rsc_scope **scopep);

/*
 * Request the unwind of @scope; it starts on the loop's next turn (no hook
 * or callback runs inside this call): cancel acquires in flight, close child
 * scopes newest first, then release entries newest first. @cb (may be NULL)
 * runs from the loop when everything has been released; after it returns
 * the scope is freed. If this call fails, @cb is never called.
 * Errors: -EINVAL, -ESTALE, -EALREADY (close already requested).
 */
RSC_EXTERN int rsc_scope_close(struct rsc_scope *scope, rsc_scope_close_cb cb,
			       void *data);

/*
 * Blocking helper: close @scope and run the loop until it has unwound.
 * Returns the status; *@errp (if not NULL) gets the chain or NULL.
 * Errors: -EINVAL, -ESTALE, -EALREADY, -EDEADLK (inside a callback or hook).
 */
RSC_EXTERN int rsc_scope_close_wait(struct rsc_scope *scope,
				    struct rsc_error **errp);

/*
 * Close @scope gracefully: stop acquiring at once (accepts in flight in the
 * subtree are cancelled, connections that still arrive are closed by the
 * runtime, rsc_accept() is refused, and nothing more can be pushed into
 * @scope or below it), let the tracked I/O in flight in the subtree finish
 * (new I/O may still start there: a reply to a request already received;
 * entries may still be released early), and unwind as soon as none is in
 * flight, or when @grace_ms (0: no bound) ends, cancelling what remains. A
 * deadline or failure of @scope or of a scope above it ends the grace at
 * once; an ancestor's close waits for it. @cb runs
 * as rsc_scope_close()'s does; during it, rsc_scope_close_stats() reports
 * the grace's outcome. A scope already unwinding is simply closed. If this
 * call fails, @cb is never called. Errors: as rsc_scope_close().
 */
RSC_EXTERN int rsc_scope_close_graceful(struct rsc_scope *scope,
					unsigned grace_ms,
					rsc_scope_close_cb cb, void *data);

/*
 * For a scope closing (in its close callback, say): entries of its subtree
 * that had tracked I/O in flight when its graceful close began and saw all
 * of it finish during the grace (@drained, even if they started more, a
 * reply say), entries still with I/O in flight when the grace ended
 * (@cancelled, by the unwind), and releases in the subtree that failed
 * (@exits_failed). Any pointer may be NULL. Errors: -EINVAL, -ESTALE.
 */
RSC_EXTERN int rsc_scope_close_stats(const struct rsc_scope *scope,
				     unsigned *drained, unsigned *cancelled,
				     unsigned *exits_failed);

/*
 * The body failed (AsyncExitStack's body raising): start the unwind of
 * @scope with @err (a -errno) pending, named by @op (copied; NULL: "fail")
 * and the scope. It starts on the loop's next turn; every exit sees the
 * error and may suppress it. The scope then waits for rsc_scope_close()
 * (or its parent) like a scope whose acquire failed.
 * Errors: -EINVAL (@err not negative), -ESTALE, -EALREADY (unwinding or
 * closing already; a graceful close in its grace is failed, ending it),
 * -ENOMEM (no memory for the error: nothing changes, the scope stays open;
 * a failure is never started without its error).
 */
RSC_EXTERN int rsc_scope_fail(struct rsc_scope *scope, int err, const char *op);

/*
 * Move @scope, with all it holds, to be the newest child of @new_parent
 * (NULL: the top of the loop). Nobody stops owning anything meanwhile.
 * Errors: -EINVAL (into itself or its own subtree, or into a scope that is
 * unwinding or closing), -ESTALE, -EXDEV (another loop), -EALREADY (@scope
 * is unwinding, closing, or inside a scope that is), -EDEADLK (inside a
 * manager hook).
 */
RSC_EXTERN int rsc_scope_move(struct rsc_scope *scope,
			      struct rsc_scope *new_parent);

/*
 * Call @cb from the loop once @scope has unwound, whoever closed it: the
 * caller, its parent, a failed acquire or rsc_scope_fail(), or the loop's
 * shutdown (a scope that unwinds after a failure calls it then, before it
 * is closed). @cb gets the status and the chain as rsc_scope_close()'s
 * callback does; the scope is still valid during the call. NULL removes it.
 * Errors: -EINVAL, -ESTALE, -EALREADY (it has unwound already).
 */
RSC_EXTERN int rsc_scope_on_close(struct rsc_scope *scope,
				  rsc_scope_close_cb cb, void *data);

/*
 * Deadlines (Trio's cancel scopes, fail_after / move_on_after). In @ms
 * milliseconds, everything still in flight in @scope and its children is
 * cancelled and the scope unwinds with -ETIMEDOUT pending (op "deadline"),
 * or with no error under RSC_DEADLINE_MOVE_ON; like a failed scope it then
 * waits for rsc_scope_close() (rsc_scope_on_close() hears it). Setting it
 * again re-arms it (no syscall, no SQE when it moves later); 0 clears it. A
 * child's deadline never outlives its parent's: the parent's unwind takes
 * the child along. Errors: -EINVAL, -ESTALE, -ESHUTDOWN (unwinding), -ENOMEM,
 * -EBUSY (no SQE for the kernel timer: the SQ could not be flushed; the
 * deadline is not set).
 */
#define RSC_DEADLINE_MOVE_ON (1U << 0)

RSC_EXTERN int rsc_scope_set_deadline(struct rsc_scope *scope, unsigned ms,
				      unsigned flags);

/* The caller's pointer on a scope (libuv's handle->data). -EINVAL, -ESTALE. */
RSC_EXTERN int rsc_scope_set_data(struct rsc_scope *scope, void *data);
/* The pointer set by rsc_scope_set_data(), or NULL (also for a bad handle). */
RSC_EXTERN void *rsc_scope_data(const struct rsc_scope *scope);

RSC_EXTERN const char *rsc_scope_name(const struct rsc_scope *scope);
/* enum rsc_scope_state, or -EINVAL. */
RSC_EXTERN int rsc_scope_state(const struct rsc_scope *scope);
/* The error unwinding the scope now (NULL if none); valid until the loop runs again. */
RSC_EXTERN const struct rsc_error *rsc_scope_error(const struct rsc_scope *scope);

/*
 * Managers. A manager is a vtable: @enter acquires by preparing SQEs with
 * rsc_entry_get_sqes(), @exit releases the same way. The first SQE's CQE
 * completes the enter: res >= 0 is the acquired value (usually a
 * descriptor), res < 0 means nothing was acquired and @exit is not called.
 * @exit gets the error pending in the unwind (NULL if none) and returns
 * RSC_EXIT_SUPPRESS to suppress it, 0 to let it through, or -errno if it
 * could not start; each negative CQE of an exit SQE raises a new error, in
 * SQE order, whose cause is the error pending before it. A hook that
 * prepares no SQE still completes from the loop. Custom exits are ordered: each starts only after every
 * release above it has completed, unless the manager says
 * RSC_MANAGER_UNORDERED (its release depends on no release above it, so it
 * may go out in the same batch). The manager struct and @arg must outlive
 * the entry. @enter runs inside rsc_push(); @exit runs from the loop, or
 * inside rsc_entry_release(); neither may block or run the loop (such calls
 * return -EDEADLK). An @exit that gets -EAGAIN, -EBUSY or -ENOMEM
 * from rsc_entry_get_sqes() and returns it is called again on a later turn:
 * a release is never dropped. (Any of the three returned with nothing
 * prepared reads so: not raised, the exit called again.) One CQE per SQE: no multishot requests and no
 * IOSQE_CQE_SKIP_SUCCESS in a hook.
 */
#define RSC_EXIT_SUPPRESS 1
#define RSC_ENTRY_SQES_MAX 8

typedef int (*rsc_enter_fn)(struct rsc_entry *entry, void *arg);
typedef int (*rsc_exit_fn)(struct rsc_entry *entry,
			   const struct rsc_error *pending, void *arg);

/* rsc_manager.flags */
#define RSC_MANAGER_UNORDERED (1U << 0) /* release depends on none above it */

/*
 * Set @size to sizeof(struct rsc_manager): fields added later go after
 * @exit, and the library reads only what the caller's size covers.
 */
struct rsc_manager {
	unsigned size;
	unsigned flags;
	const char *name;
	rsc_enter_fn enter;
	rsc_exit_fn exit;
};

/*
 * Push a manager onto @scope and call its @enter. A manager lacking a name,
 * enter or exit is refused with -EINVAL (rsc_last_error() names the missing
 * half) and nothing is acquired. If @enter returns -errno, the entry is not
 * pushed and that error is returned. @size must be sizeof(struct
 * rsc_manager) of this or an earlier version, @flags only RSC_MANAGER_*.
 * Errors: -EINVAL, -ESTALE, -ESHUTDOWN (scope closing), -ENOMEM, -EBUSY
 * (the SQ was full and could not be flushed), -EDEADLK (inside a manager
 * hook), @enter's own.
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_push(struct rsc_scope *scope,
				       const struct rsc_manager *mgr, void *arg,
				       struct rsc_entry **entryp);

/*
 * A release-only entry (AsyncExitStack.push_async_callback): entered at
 * once, and @fn runs in its LIFO turn exactly as a manager's exit does,
 * with the pending error; it may suppress it (RSC_EXIT_SUPPRESS), return
 * -errno, or prepare SQEs with rsc_entry_get_sqes(). Its name is "defer".
 * Errors: as rsc_push().
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_defer(struct rsc_scope *scope, rsc_exit_fn fn,
					void *arg, struct rsc_entry **entryp);

/*
 * For a manager's enter or exit only: reserve @n (1..RSC_ENTRY_SQES_MAX)
 * consecutive SQEs routed to @entry; they go out in one submit, so they may
 * be linked. Do not change their user_data.
 * Errors: -EINVAL (also @n larger than the ring), -ESTALE, -EPERM (not
 * inside enter/exit), -EBUSY (called twice in one hook, or the SQ could not
 * be flushed), -ENOMEM.
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_entry_get_sqes(struct rsc_entry *entry,
						 unsigned n,
						 struct io_uring_sqe **sqes);

/*
 * Built-in managers. Descriptors are close-on-exec unless RSC_NO_CLOEXEC.
 * The release is IORING_OP_CLOSE; with RSC_FSYNC_ON_RELEASE an
 * IORING_OP_FSYNC first, the close once it has completed (whatever its
 * result), and its failure is the entry's exit error. Paths are copied. Errors: -EINVAL, -ENAMETOOLONG (rsc_open),
 * -EBADF (rsc_open: negative dirfd other than AT_FDCWD with a relative
 * path), -ESHUTDOWN, -ENOMEM, -EBUSY, -EOPNOTSUPP (kernel lacks the opcode).
 */
#define RSC_NO_CLOEXEC	     (1U << 0)
#define RSC_FSYNC_ON_RELEASE (1U << 1)
/*
 * Sockets (rsc_socket, rsc_connect, rsc_listen, rsc_adopt, and rsc_accept
 * for its connections): an IORING_OP_SHUTDOWN (SHUT_RDWR) before the close
 * (the close once it has completed), so the peer sees a FIN even while another descriptor of the
 * socket exists (a close alone does not send one then). -ENOTCONN from it
 * is not an error.
 */
#define RSC_SHUTDOWN_ON_RELEASE (1U << 2)
/* rsc_listen: SO_REUSEPORT, so one listener per loop can share a port. */
#define RSC_REUSEPORT (1U << 3)
/* rsc_listen: TCP_NODELAY on the listener, which its connections inherit
 * (no Nagle delay on a small response); no effect on AF_UNIX. */
#define RSC_NODELAY (1U << 4)
/* rsc_listen: TCP_DEFER_ACCEPT, so a connection is accepted once its first
 * bytes have arrived (or after about a second without any), and its first
 * receive completes at once; no effect on AF_UNIX. */
#define RSC_DEFER_ACCEPT (1U << 6)

RSC_EXTERN RSC_MUST_CHECK int rsc_open(struct rsc_scope *scope, int dirfd,
				       const char *path, int oflags,
				       mode_t mode, unsigned flags,
				       struct rsc_entry **entryp);
RSC_EXTERN RSC_MUST_CHECK int rsc_socket(struct rsc_scope *scope, int domain,
					 int type, int protocol,
					 unsigned flags,
					 struct rsc_entry **entryp);

/*
 * Connections. Each is a compound acquire of two entries: a socket
 * (IORING_OP_SOCKET, released by its close), then an entry that builds on
 * it and starts once the socket has entered. rsc_connect's second entry is
 * an IORING_OP_CONNECT, with @timeout_ms (0: none) as an IORING_OP_LINK_TIMEOUT
 * linked to it in the same submit (a timeout fails it with -ETIMEDOUT).
 * rsc_listen's sets SO_REUSEADDR (not for AF_UNIX), binds and listens: that
 * is configuration, done with the syscalls. Either way a failure unwinds the
 * scope and so closes the socket. *@entryp is the second entry, and it
 * stands for the connection: once it has entered it owns the socket (the
 * socket entry hands it over and leaves the scope), rsc_entry_fd() gives
 * it, tracked I/O may use it, and releasing, detaching or moving it does
 * the same to the socket.
 * AF_INET, AF_INET6 (SOCK_STREAM) and AF_UNIX stream sockets. Errors: as
 * rsc_socket(), and -EINVAL for a bad address or backlog.
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_connect(struct rsc_scope *scope,
					  const struct sockaddr *addr,
					  socklen_t addrlen, unsigned timeout_ms,
					  unsigned flags,
					  struct rsc_entry **entryp);
RSC_EXTERN RSC_MUST_CHECK int rsc_listen(struct rsc_scope *scope,
					 const struct sockaddr *addr,
					 socklen_t addrlen, int backlog,
					 unsigned flags,
					 struct rsc_entry **entryp);
/*
 * The local and the peer address of an entered socket entry (a listener's
 * bound port, an accepted connection's client), as getsockname(2) and
 * getpeername(2) give them: *@addrlen is the room in @addr on entry and the
 * address's length on return. Errors: -EINVAL, -ESTALE, -EAGAIN (still
 * entering), -EBADF (released), the acquire's errno (failed), -EBADFD (a
 * direct slot), -ENOTSOCK (no descriptor: a defer, timer or inbox entry),
 * and those of getsockname(2) and getpeername(2) (-ENOTSOCK, -ENOTCONN).
 */
RSC_EXTERN int rsc_entry_sockname(const struct rsc_entry *entry, struct sockaddr *addr,
				  socklen_t *addrlen);
RSC_EXTERN int rsc_entry_peername(const struct rsc_entry *entry, struct sockaddr *addr,
				  socklen_t *addrlen);

/*
 * Accepting. rsc_accept() starts an IORING_OP_ACCEPT on an entered
 * listening entry (rsc_listen), tracked like its I/O: the listener's
 * release cancels it and waits for its last CQE. Each connection arrives in
 * a new child scope "conn" of the listener's scope, holding one entry
 * "conn" that owns the descriptor (close-on-exec; released by its close):
 * @cb gets (listener, fd, scope, entry). The scope is the caller's to close;
 * otherwise it closes with its parent, newest connection first. A
 * connection that arrives once that scope is closing is closed by the
 * runtime, and a single-shot accept then ends with one callback of
 * -ECANCELED: a started single-shot accept always ends with exactly one
 * callback. With RSC_ACCEPT_MULTISHOT it keeps accepting; if the kernel ends
 * it on a shortage (EMFILE, ENFILE, ENOBUFS, ENOMEM) @cb hears the error
 * (scope and entry NULL) and it is re-armed after a backoff that doubles
 * from 10 ms to 1 s. It ends for good with a last @cb of -ECANCELED
 * (released), or another -errno. If the call fails, @cb is never called.
 * Errors: -EINVAL, -ESTALE, -ENXIO (RSC_DIRECT without a direct table),
 * -EBADF (not entered, or being released),
 * -ESHUTDOWN, -EBUSY, -EDEADLK (inside a manager hook), -ENOMEM,
 * -EOPNOTSUPP.
 */
/* A bit of its own among the acquire flags: RSC_NO_CLOEXEC is refused here, never taken for it. */
#define RSC_ACCEPT_MULTISHOT (1U << 7)

typedef void (*rsc_accept_cb)(struct rsc_entry *listener, int res,
			      struct rsc_scope *conn_scope,
			      struct rsc_entry *conn, void *data);

RSC_EXTERN RSC_MUST_CHECK int rsc_accept(struct rsc_entry *listener,
					 unsigned flags, rsc_accept_cb cb,
					 void *data);

/*
 * Entries. An entry is one pushed manager: ENTERING -> ENTERED -> EXITING
 * -> EXITED, or ENTERING -> FAILED.
 */
enum rsc_entry_state {
	RSC_ENTERING = 0,
	RSC_ENTERED,
	RSC_EXITING,
	RSC_EXITED,
	RSC_FAILED
};

/* res: the acquired value or -errno (enter); 0 or -errno (release). */
typedef void (*rsc_entry_cb)(struct rsc_entry *entry, int res, void *data);

/*
 * Call @cb from the loop when the enter completes (for rsc_adopt() and
 * rsc_defer() entries: on the loop's next turn). -EINVAL, -ESTALE,
 * -EALREADY (the enter has completed and its callback ran).
 */
RSC_EXTERN int rsc_entry_on_enter(struct rsc_entry *entry, rsc_entry_cb cb,
				  void *data);

/*
 * Release @entry now and take it off its scope's unwind. An entry still
 * entering is cancelled and released if its acquire wins. @cb (may be
 * NULL) runs from the loop with the release's result.
 * Errors: -EINVAL, -ESTALE, -EALREADY (released before, its acquire
 * failed, or its scope's unwind has started and owns it: it is released in
 * its LIFO turn; the grace of a graceful close does not count), -EBUSY (an
 * acquire that builds on it is in flight: a connect's socket entry), -EDEADLK
 * (inside a manager hook or the trace callback).
 */
RSC_EXTERN int rsc_entry_release(struct rsc_entry *entry, rsc_entry_cb cb,
				 void *data);

/*
 * Blocking helper: release @entry as rsc_entry_release() does and run the
 * loop until the release has completed. Returns its result (0 or -errno);
 * *@errp (if not NULL) gets its errors as a chain (one per failed SQE), or
 * NULL. Errors:
 * as rsc_entry_release(), and -EDEADLK inside a callback or hook.
 */
RSC_EXTERN int rsc_entry_release_wait(struct rsc_entry *entry,
				      struct rsc_error **errp);

/*
 * Blocking helper: run the loop until @entry is entered or failed; returns
 * rsc_entry_fd(). Errors: -EINVAL, -ESTALE, -EDEADLK (inside a callback or
 * hook), -ESHUTDOWN (a scope above it is being closed).
 */
RSC_EXTERN int rsc_entry_wait(struct rsc_entry *entry);

/*
 * Take ownership of @fd, a descriptor that is already open (pipe2,
 * socketpair, eventfd, another library): a new entry "adopt" of @scope,
 * entered at once (an on-enter callback still runs from the loop, never
 * inside this call) and released like any other, by IORING_OP_CLOSE
 * (RSC_FSYNC_ON_RELEASE: fsync first). It is made close-on-exec unless
 * RSC_NO_CLOEXEC. Errors: -EINVAL, -ESTALE, -EBADF (@fd is not open),
 * -EEXIST (a live entry of some loop in this process owns @fd, until its
 * release's close has been submitted), -ESHUTDOWN, -EDEADLK (inside a
 * manager hook),
 * -ENOMEM. On failure the caller still owns @fd.
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_adopt(struct rsc_scope *scope, int fd,
					unsigned flags,
					struct rsc_entry **entryp);

/*
 * The reverse of rsc_adopt() (unique_fd::release()): @entry leaves its
 * scope without a release and is freed; its descriptor is returned and is
 * the caller's from now on. Errors: -EINVAL, -ESTALE, -EBUSY (tracked I/O
 * in flight on it, or its enter is), -EALREADY (released, failed, or owned
 * by its scope's unwind), -EDEADLK (inside a manager hook), -EBADF (the
 * entry's value is not a descriptor: a custom or rsc_defer() entry, a
 * pipe, or a direct slot, which rsc_entry_install() turns into one).
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_entry_detach(struct rsc_entry *entry);

/*
 * Move @entry to @to, where it becomes the newest entry: it is released in
 * @to's unwind from then on. Nobody stops owning it meanwhile. Tracked I/O
 * stays in flight. Errors: -EINVAL (@to unwinding or closing), -ESTALE,
 * -EXDEV (another loop), -EBUSY (its enter, or one that builds on it, is
 * in flight), -EALREADY (released, failed, or owned by its scope's
 * unwind), -EDEADLK (inside a manager hook).
 */
RSC_EXTERN int rsc_entry_move(struct rsc_entry *entry, struct rsc_scope *to);

/* The caller's pointer on an entry. -EINVAL, -ESTALE. */
RSC_EXTERN int rsc_entry_set_data(struct rsc_entry *entry, void *data);
/* The pointer set by rsc_entry_set_data(), or NULL (also for a bad handle). */
RSC_EXTERN void *rsc_entry_data(const struct rsc_entry *entry);

/*
 * The acquired value: the descriptor while ENTERED or EXITING, -EAGAIN while
 * ENTERING, the enter's -errno when FAILED, -EBADF once released; -EINVAL
 * or -ESTALE for a bad handle.
 */
RSC_EXTERN int rsc_entry_fd(const struct rsc_entry *entry);
/* enum rsc_entry_state, or -EINVAL, -ESTALE. */
RSC_EXTERN int rsc_entry_state(const struct rsc_entry *entry);
RSC_EXTERN const char *rsc_entry_name(const struct rsc_entry *entry);
/* What the entry acquires, e.g. the path of rsc_open() ("" if none). */
RSC_EXTERN const char *rsc_entry_detail(const struct rsc_entry *entry);
RSC_EXTERN struct rsc_scope *rsc_entry_scope(const struct rsc_entry *entry);
RSC_EXTERN void *rsc_entry_arg(const struct rsc_entry *entry);

/*
 * Tracked I/O. Each op is bound to an entered entry: the entry knows its
 * ops in flight, and its release (early or by an unwind) first cancels them
 * and waits for their final CQEs, then releases: no I/O outlives its
 * resource. @buf belongs to the runtime from the call until @cb runs (from
 * the loop, with the op's result: bytes, or -errno, -ECANCELED if its
 * release cancelled it). @off -1 means the file position. If the call
 * fails, @cb is never called. Errors: -EINVAL, -ESTALE, -EBADF (the entry
 * is not entered, or is being released), -ESHUTDOWN (its scope is
 * closing), -EDEADLK (inside a manager hook), -EBUSY (the SQ could not be
 * flushed), -ENOMEM.
 */
typedef void (*rsc_io_cb)(struct rsc_entry *entry, int res, void *buf,
			  void *data);

RSC_EXTERN RSC_MUST_CHECK int rsc_read(struct rsc_entry *entry, void *buf,
				       unsigned len, long long off,
				       rsc_io_cb cb, void *data);
RSC_EXTERN RSC_MUST_CHECK int rsc_write(struct rsc_entry *entry,
					const void *buf, unsigned len,
					long long off, rsc_io_cb cb, void *data);
RSC_EXTERN RSC_MUST_CHECK int rsc_recv(struct rsc_entry *entry, void *buf,
				       unsigned len, int flags, rsc_io_cb cb,
				       void *data);
RSC_EXTERN RSC_MUST_CHECK int rsc_send(struct rsc_entry *entry,
				       const void *buf, unsigned len,
				       int flags, rsc_io_cb cb, void *data);
/*
 * Timers as resources. rsc_timeout() is a tracked IORING_OP_TIMEOUT bound
 * to @entry: @cb gets -ETIME when it fires, or -ECANCELED when the entry's
 * release removed it first (buf is NULL). rsc_timer() pushes an entry that
 * is only that: a timer whose release removes it (name "timer"). Errors:
 * as rsc_read(); rsc_timer as rsc_push().
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_timeout(struct rsc_entry *entry,
					  unsigned ms, rsc_io_cb cb,
					  void *data);
RSC_EXTERN RSC_MUST_CHECK int rsc_timer(struct rsc_scope *scope, unsigned ms,
					rsc_io_cb cb, void *data,
					struct rsc_entry **entryp);

/*
 * Multishot receive (IORING_RECV_MULTISHOT, Linux 6.0): one tracked op that
 * keeps receiving on @entry's socket, each time into a buffer the runtime
 * provides from the loop's ring of receive buffers (set up at the first call,
 * or by rsc_loop_set_recv_buffers()): one SQE for many receives, and no poll
 * armed and disarmed per receive. @cb runs from the loop for each receive with
 * res > 0 bytes at buf, which stays the runtime's: valid during the call only,
 * back in the ring when @cb returns (copy what you keep). The last call has
 * res <= 0 and buf NULL: 0 (end of stream), -ECANCELED (the entry's release
 * cancelled it, and waited for this), or another -errno; receives already
 * made may still arrive after a release was asked for, before it. When the
 * kernel ends it while the entry stays (the ring ran out of buffers:
 * -ENOBUFS), the runtime arms it again (RSC_CTR_RECV_REARMS), with no call;
 * if it cannot, the last call says why (-EBUSY). A graceful close waits for it
 * as for any tracked I/O. One per entry, and no rsc_recv() beside it (-EBUSY
 * from either): the bytes would lose their order. @flags must be 0. If the
 * call fails, @cb is never called. Errors: as rsc_recv(), -EBUSY,
 * -EOPNOTSUPP (a kernel before 6.0: rsc_recv() is the fallback), and those
 * of rsc_loop_set_recv_buffers() when it sets the ring up.
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_recv_multishot(struct rsc_entry *entry,
						 unsigned flags, rsc_io_cb cb,
						 void *data);

/*
 * The loop's receive buffers for rsc_recv_multishot(): @count (a power of
 * two, at most 32768) buffers of @size (at most 1 MiB) bytes, registered with
 * the ring now as a provided-buffer ring (io_uring_register_buf_ring(3), Linux
 * 5.19) in a buffer group of the runtime's choosing; 0 @count frees them. A
 * buffer is in the kernel's hands except during the callback it is handed to.
 * Without this call, the first rsc_recv_multishot() sets up
 * RSC_RECV_BUFFERS_DEFAULT of RSC_RECV_BUFFER_SIZE_DEFAULT bytes. Errors:
 * -EINVAL, -EBUSY (a multishot receive is in flight), -EDEADLK (inside a
 * callback or hook), -ENOMEM, -EOPNOTSUPP (no provided-buffer rings), or the
 * registration's -errno.
 */
#define RSC_RECV_BUFFERS_DEFAULT     256U
#define RSC_RECV_BUFFER_SIZE_DEFAULT 4096U

RSC_EXTERN int rsc_loop_set_recv_buffers(struct rsc_loop *loop, unsigned count,
					 unsigned size);

/*
 * Half-close the socket @entry holds (IORING_OP_SHUTDOWN, Linux 5.11), as
 * shutdown(2) with @how (SHUT_RD, SHUT_WR, SHUT_RDWR), tracked like I/O:
 * the peer sees a FIN while the entry keeps its descriptor (or slot) and
 * may go on receiving. @cb gets 0 or -errno (buf NULL). Errors as
 * rsc_send(), and -EINVAL (@how), -EOPNOTSUPP (the kernel lacks the op).
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_shutdown(struct rsc_entry *entry, int how,
					   rsc_io_cb cb, void *data);

/* Tracked ops in flight on @entry (>= 0), or -EINVAL, -ESTALE. */
RSC_EXTERN int rsc_entry_io_count(const struct rsc_entry *entry);

/*
 * Cancel every tracked op in flight on @entry (rsc_read() ... rsc_timeout(),
 * rsc_recv_multishot(), rsc_accept()) and keep the entry: each op's callback
 * then runs once more with -ECANCELED (or its result, if it completed
 * first), from the loop; an install or hand-over in flight (an ownership
 * move) is neither cancelled nor counted. Returns how many were in flight (>= 0); then
 * rsc_entry_detach() or rsc_entry_hand_over() may follow once
 * rsc_entry_io_count() is 0. Errors: -EINVAL, -ESTALE, -EDEADLK (in a hook).
 */
RSC_EXTERN int rsc_entry_cancel_io(struct rsc_entry *entry);

/*
 * Direct descriptors and linked chains. A loop's direct table is io_uring's
 * registered file table, registered sparse (RSC_LOOP_DIRECT at
 * rsc_loop_new(), or rsc_loop_set_direct()) and split in two: the kernel
 * allocates slots from the first part (IORING_FILE_INDEX_ALLOC: rsc_open,
 * rsc_socket, rsc_accept, rsc_pipe with RSC_DIRECT), the runtime hands out
 * the last @chain_slots for linked chains, whose later steps name a slot
 * before it is filled. A slot is no process descriptor: it never appears in
 * /proc/self/fd, is never inherited (so no O_CLOEXEC/SOCK_CLOEXEC with one:
 * -EINVAL) and is not in the ownership ledger; the loop's table records who
 * owns each. A direct entry is owned, released (by close_direct), moved and
 * audited like any other; tracked I/O on it sets IOSQE_FIXED_FILE itself.
 * rsc_entry_fd() on an entered direct entry returns -EBADFD; rsc_entry_slot()
 * gives the slot (and rsc_entry_wait() returns it). A full table fails the
 * acquire with -ENFILE (the kernel's errno) and a message naming its size.
 */
#define RSC_DIRECT (1U << 5) /* rsc_open/socket/connect/accept/pipe: into a slot */
#define RSC_DIRECT_SLOTS_DEFAULT       1024U
#define RSC_DIRECT_CHAIN_SLOTS_DEFAULT 256U
#define RSC_DIRECT_SLOTS_MAX	       (1U << 20)

/*
 * (Re)register @loop's direct table with @slots slots, the last
 * @chain_slots of them for chains; 0 slots unregisters it. Only while no
 * slot is in use. Errors: -EINVAL, -EBUSY (slots in use, or an inbox open
 * on the loop: senders install into the table), -EDEADLK (inside
 * a callback or hook), -EMFILE (more than RLIMIT_NOFILE), io_uring_register's
 * errno (-EINVAL: the kernel lacks sparse tables, 5.19, or allocation
 * ranges, 6.0), -ENOMEM.
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_loop_set_direct(struct rsc_loop *loop,
						  unsigned slots,
						  unsigned chain_slots);
/* Slots in use in @loop's table (>= 0), -ENXIO (no table), -EINVAL. */
RSC_EXTERN int rsc_loop_direct_used(const struct rsc_loop *loop);

/*
 * The slot of a direct entry while ENTERED or EXITING, -EAGAIN while
 * ENTERING, the enter's -errno when FAILED, -EBADF once released, -EBADFD
 * for an entry holding a process descriptor; -EINVAL, -ESTALE.
 */
RSC_EXTERN int rsc_entry_slot(const struct rsc_entry *entry);

/*
 * Turn a direct entry into one holding a process descriptor
 * (IORING_OP_FIXED_FD_INSTALL, Linux 6.8, close-on-exec unless
 * RSC_NO_CLOEXEC), linked to the close_direct of its slot. Tracked like I/O:
 * a release waits for it. The entry owns the slot until the install's CQE
 * and the descriptor from then on; @cb (may be NULL) runs from the loop once
 * the slot is free, with the descriptor or the install's -errno (the entry
 * then keeps its slot). If the call fails, @cb is never called. Errors: as
 * rsc_read(), -EBADF (not a direct entry, or a pipe), -EOPNOTSUPP.
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_entry_install(struct rsc_entry *entry,
						unsigned flags,
						rsc_entry_cb cb, void *data);

/*
 * A pipe through the ring (IORING_OP_PIPE, Linux 6.16): one entry "pipe"
 * holding both ends, descriptors (close-on-exec unless RSC_NO_CLOEXEC) or,
 * with RSC_DIRECT, two slots; its release closes the write end, then the
 * read end. There is no pipe2(2) fallback: an older kernel gets -EOPNOTSUPP
 * naming the opcode. rsc_entry_fd()/rsc_entry_slot() give the read end;
 * rsc_pipe_ends() both ([0] read, [1] write). A pipe entry cannot be
 * detached. Errors: as rsc_open(), -ENXIO (RSC_DIRECT without a table),
 * -ENFILE (table full); rsc_pipe_ends: -EINVAL (not a pipe), and as
 * rsc_entry_slot().
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_pipe(struct rsc_scope *scope, unsigned flags,
				       struct rsc_entry **entryp);
RSC_EXTERN int rsc_pipe_ends(const struct rsc_entry *entry, int ends[2]);

/*
 * A linked acquire chain, built step by step and sent by rsc_chain_submit()
 * as one IOSQE_IO_LINK chain in one submit: each open or socket step fills a
 * slot the runtime chose from the chain range; a connect step connects the
 * socket of the step just before it (with @timeout_ms, 0: none, as a linked
 * deadline) and, once entered, takes its slot over as rsc_connect()'s entry
 * does (so that socket step's *@entryp is left NULL). Each step is an
 * entry of the scope, in step order; *@entryp (may be NULL) is set by a
 * successful rsc_chain_submit(). If step k fails, the
 * kernel completes the steps after it with -ECANCELED (no error of theirs),
 * and the unwind k's failure starts releases exactly the steps before it,
 * newest first. rsc_chain_send() links a first send (MSG_NOSIGNAL) behind
 * the connect step just added, on its slot: @buf is the runtime's until
 * @cb runs from the loop with the send's result, -ECANCELED if a step before
 * it failed, before that connect's enter settles; if the chain is never
 * submitted, @cb is never called. At most RSC_ENTRY_SQES_MAX SQEs (a
 * deadline and a send take one each).
 * rsc_chain_submit() consumes the chain, whether it succeeds or not;
 * rsc_chain_free() drops one never submitted. A chain is a handle: once
 * submitted or freed (or its loop closed) every call with it is -ESTALE, and
 * rsc_chain_free() of it does nothing. Errors: -EINVAL, -E2BIG (too
 * many steps), -ENAMETOOLONG, -ENOMEM; rsc_chain_submit: those of
 * rsc_push(), -ENXIO (no direct table), -ENFILE (no free chain slot),
 * -EOPNOTSUPP.
 */
struct rsc_chain;

RSC_EXTERN RSC_MUST_CHECK int rsc_chain_new(struct rsc_scope *scope,
					    struct rsc_chain **chainp);
RSC_EXTERN RSC_MUST_CHECK int rsc_chain_open(struct rsc_chain *chain, int dirfd,
					     const char *path, int oflags,
					     mode_t mode,
					     struct rsc_entry **entryp);
RSC_EXTERN RSC_MUST_CHECK int rsc_chain_socket(struct rsc_chain *chain,
					       int domain, int type,
					       int protocol,
					       struct rsc_entry **entryp);
RSC_EXTERN RSC_MUST_CHECK int rsc_chain_connect(struct rsc_chain *chain,
						const struct sockaddr *addr,
						socklen_t addrlen,
						unsigned timeout_ms,
						struct rsc_entry **entryp);
RSC_EXTERN RSC_MUST_CHECK int rsc_chain_send(struct rsc_chain *chain,
					     const void *buf, unsigned len,
					     rsc_io_cb cb, void *data);
RSC_EXTERN RSC_MUST_CHECK int rsc_chain_submit(struct rsc_chain *chain);
RSC_EXTERN void rsc_chain_free(struct rsc_chain *chain);

/*
 * Hand-over between loops (an acceptor loop giving connections to worker
 * loops, one loop per thread). rsc_inbox() pushes an entry "inbox" on a loop
 * with a direct table: while it lives, the loop stays alive (rsc_loop_run
 * waits) and receives slots handed to it; each arrives in a new child scope
 * "handed" of @scope, held by an entry "conn" that owns it from the
 * arrival's completion on, and @cb gets (inbox, slot, scope, entry). Its
 * release stops it; a slot arriving after that is closed by the runtime.
 * rsc_inbox_address() gives a value naming the inbox (its ring and a token),
 * to be passed to the sending thread. rsc_entry_hand_over() gives a direct
 * entry's slot to that inbox (IORING_OP_MSG_RING, IORING_MSG_SEND_FD, Linux
 * 6.0) linked to the close_direct of its own slot: @cb (may be NULL) runs
 * from the sender's loop once that is done, with the slot the receiver's
 * table gave it (>= 0; the receiver's, not to be used here), or the -errno of a
 * hand-over that failed (the receiver's table full...), and then the entry
 * still holds its slot. After a hand-over the entry holds nothing
 * (rsc_entry_slot() is -EXDEV) and its release completes at once.
 * Errors: as rsc_read(), -ENXIO (no direct table), -EBADF (not a direct
 * entry, or a pipe), -EBUSY (a hand-over or install of it, or tracked I/O
 * on it, is in flight), -EOPNOTSUPP, -ESTALE (@inbox_addr names no live
 * inbox: nothing is sent); rsc_inbox_address: -EINVAL (not an inbox). The
 * inbox holds no descriptor: tracked I/O on it is -EBADF.
 */
RSC_EXTERN RSC_MUST_CHECK int rsc_inbox(struct rsc_scope *scope,
					rsc_accept_cb cb, void *data,
					struct rsc_entry **entryp);
RSC_EXTERN int rsc_inbox_address(const struct rsc_entry *inbox,
				 unsigned long long *addrp);
RSC_EXTERN RSC_MUST_CHECK int rsc_entry_hand_over(struct rsc_entry *entry,
						  unsigned long long inbox_addr,
						  rsc_entry_cb cb, void *data);

/*
 * Cross-check @loop's direct table against the kernel's own view (the
 * UserFiles: list of /proc/self/fdinfo/<ring fd>): each slot on which they
 * disagree is recorded as an RSC_FINDING_SLOT_MISMATCH. Returns the number
 * of mismatches (>= 0), -EAGAIN (the kernel left the list out: the ring was
 * busy; try again), -ENXIO (no table), -EINVAL, or -errno reading /proc.
 */
RSC_EXTERN int rsc_audit_slots(struct rsc_loop *loop);

/*
 * Errors. Every function returns 0 (or a count or descriptor) on success
 * and -errno on failure; errno is never set for the caller. An unwind's
 * errors form an immutable chain: each error keeps the one it replaced as
 * its cause.
 */
RSC_EXTERN const char *rsc_strerror(int err);
/* "ENOENT" for -ENOENT; "E?" for unknown values. */
RSC_EXTERN const char *rsc_err_name(int err);
/* A sentence about this thread's last failed call, or "". */
RSC_EXTERN const char *rsc_last_error(void);

RSC_EXTERN int rsc_error_errno(const struct rsc_error *err); /* -errno */
/* The operation that failed: "openat", "socket", "close", "fsync", ... */
RSC_EXTERN const char *rsc_error_op(const struct rsc_error *err);
RSC_EXTERN const char *rsc_error_entry(const struct rsc_error *err);
RSC_EXTERN const char *rsc_error_detail(const struct rsc_error *err);
RSC_EXTERN const char *rsc_error_scope(const struct rsc_error *err);
RSC_EXTERN const struct rsc_error *rsc_error_cause(const struct rsc_error *err);
/* Chain length (>= 1), or -EINVAL. */
RSC_EXTERN int rsc_error_depth(const struct rsc_error *err);
/* The whole chain as text, snprintf() style: returns the length needed. */
RSC_EXTERN int rsc_error_format(const struct rsc_error *err, char *buf,
				size_t len);
RSC_EXTERN int rsc_error_print(const struct rsc_error *err, FILE *out);
/* Keep a chain beyond a callback; free it with rsc_error_free(). */
RSC_EXTERN RSC_MUST_CHECK int rsc_error_dup(const struct rsc_error *err,
					    struct rsc_error **dupp);
RSC_EXTERN void rsc_error_free(struct rsc_error *err);

/*
 * Audit. Findings are recorded on the loop as data and can be printed.
 * RELEASED checks every release that closes the entry's own descriptor
 * through the ring by that close's CQE: 0 proves the number left the fd
 * table (a number open again afterwards is someone else's: no false alarm
 * on reuse, no syscall); a failure means it had been closed behind the
 * runtime's back. FULL also records st_dev/st_ino at acquire and checks them
 * before each built-in close, so a number closed behind the runtime's back
 * and reused is never closed by it; and diffs /proc/self/fd around every
 * scope, reporting descriptors that appeared inside it and are still open
 * once no acquire is in flight.
 */
enum rsc_finding_kind {
	RSC_FINDING_NOT_RELEASED = 0, /* its release could not close it: closed elsewhere */
	RSC_FINDING_LEAKED,	      /* appeared inside a scope, open after it */
	RSC_FINDING_SLOT_LEAKED,      /* a direct slot still in use after its scope released it */
	RSC_FINDING_SLOT_MISMATCH    /* the runtime's table and the kernel's disagree on a slot */
};

/* Number of findings recorded (>= 0), or -EINVAL. */
RSC_EXTERN int rsc_audit_count(const struct rsc_loop *loop);
/* Finding @i (0-based), NULL if out of range; valid until rsc_audit_clear()
 * or the loop is freed. */
RSC_EXTERN const struct rsc_finding *rsc_audit_finding(const struct rsc_loop *loop,
						       unsigned i);
RSC_EXTERN int rsc_audit_clear(struct rsc_loop *loop);
/* One line per finding; returns the number printed or -errno. */
RSC_EXTERN int rsc_audit_print(const struct rsc_loop *loop, FILE *out);
/* Open descriptors of this process, from /proc/self/fd (>= 0), or -errno. */
RSC_EXTERN int rsc_audit_fd_count(void);

/*
 * For tools, not a stable promise (version node RINGSCOPE_TOOLS_0.1).
 * If an entry of any loop in this process owns @fd (the ownership ledger),
 * write "ringscope entry 'file' (/path) in scope 'name', acquired at
 * main+0x2a (/bin/prog)" into @buf (snprintf style) and return the length
 * needed; -ENOENT if none does. For auditors running inside the process
 * (ringscope-audit finds it with dlsym). The ownership test is lock-free and
 * may be called at any moment from any thread (inside a close() wrapper);
 * the description is taken under a lock and is best effort while the
 * owner's loop runs on another thread. -EINVAL.
 */
RSC_EXTERN int rsc_audit_describe_fd(int fd, char *buf, size_t len);

RSC_EXTERN int rsc_finding_kind(const struct rsc_finding *f);
/* The descriptor, or for RSC_FINDING_SLOT_* (and a direct entry's
 * RSC_FINDING_NOT_RELEASED) the slot. */
RSC_EXTERN int rsc_finding_fd(const struct rsc_finding *f);
/* The /proc/self/fd target: "/tmp/x", "socket:[1234]", ... */
RSC_EXTERN const char *rsc_finding_target(const struct rsc_finding *f);
RSC_EXTERN const char *rsc_finding_scope(const struct rsc_finding *f);
/* What the audit expected instead, as a sentence. */
RSC_EXTERN const char *rsc_finding_expected(const struct rsc_finding *f);

/*
 * Observability. A loop can write its lifecycle as Chrome trace-event JSON
 * (open it in Perfetto or chrome://tracing): each entry an async slice from
 * the submit of its acquire to the completion of its release, with instants
 * for entered, release started and failed; each scope a slice from open to
 * close; a counter per submit. Events are buffered and written when the
 * buffer fills, on rsc_loop_trace_flush() and when the trace or the loop is
 * closed; each write leaves a complete JSON document. RINGSCOPE_TRACE=FILE
 * starts one at rsc_loop_new(). Metrics are written in Prometheus' text
 * format, one series per loop labelled loop="ID". USDT probes (provider
 * "ringscope") fire when the library was built with <sys/sdt.h>; man 7
 * ringscope lists them. With no trace and no latency metrics, all of this
 * costs one branch per event.
 */

/* rsc_loop_set_metrics() flags. */
#define RSC_METRICS_LATENCY (1U << 0) /* acquire and release latency histograms */

/*
 * Write the lifecycle of @loop to @path (created or truncated; "%p" and "%l"
 * are not expanded here) from now on, replacing any trace it was writing;
 * NULL closes the trace. Slices still open when a trace closes end there.
 * Returns 0, or -EINVAL, the open's -errno, or (NULL @path) the -errno of
 * a failed write.
 */
RSC_EXTERN int rsc_loop_trace_file(struct rsc_loop *loop, const char *path);
/* Write the buffered events now. 0, -EINVAL, or the write's -errno. */
RSC_EXTERN int rsc_loop_trace_flush(struct rsc_loop *loop);
/* Collect what @flags asks for (RSC_METRICS_*; 0 stops). -EINVAL, -ENOMEM. */
RSC_EXTERN int rsc_loop_set_metrics(struct rsc_loop *loop, unsigned flags);
/*
 * Write the metrics of @loop (rsc_metrics_write: of @n loops, each family
 * once) to @out in the Prometheus text exposition format. The loops are read
 * without a lock: call it on the thread that runs them. 0, -EINVAL, -ENOMEM,
 * -EIO (@out failed).
 */
RSC_EXTERN int rsc_loop_metrics(struct rsc_loop *loop, FILE *out);
RSC_EXTERN int rsc_metrics_write(struct rsc_loop *const *loops, unsigned n,
				 FILE *out);
/* The loop's number (>= 1, in creation order in this process): the metrics'
 * loop label, the trace's track, the probes' first argument. Or -EINVAL. */
RSC_EXTERN int rsc_loop_id(const struct rsc_loop *loop);

/*
 * Fault injection, for tests and not a stable promise (version node
 * RINGSCOPE_TOOLS_0.1): deterministic, compiled in with configure
 * --enable-fault-injection (elsewhere rsc_fault_set returns -EOPNOTSUPP and
 * costs nothing). @spec lists KIND:N:ERRNO rules, comma-separated: fail the
 * Nth occurrence (from 1, counted from this call) of KIND with ERRNO, e.g.
 * "openat:3:EMFILE,close:1:EIO". Acquire kinds (openat, socket, accept,
 * connect) replace the SQE by a NOP: nothing is acquired. Release kinds
 * (close, fsync) run the op and replace its result. cancel: the cancel is
 * not sent (as if it returned -EALREADY). Ring kinds: sq_full (flush as if
 * the SQ were full), submit (io_uring_enter fails with ERRNO: EBUSY, EAGAIN
 * or EINTR), wait (the wait is interrupted), cq_overflow (completions take
 * the overflow path); ring kinds take the errno the ring would return
 * (submit: EBUSY/EAGAIN/EINTR, wait: EINTR; sq_full and cq_overflow: any,
 * e.g. EBUSY). NULL or "" clears. RINGSCOPE_FAULT sets the same at
 * rsc_loop_new(). Errors: -EINVAL (bad rule), -EOPNOTSUPP.
 */
RSC_EXTERN int rsc_fault_set(struct rsc_loop *loop, const char *spec);

#ifdef __cplusplus
}
#endif

#endif /* RINGSCOPE_H */
