/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <liburing.h>

#include "ringscope.h"
#include "model.h"

/*
 * The interpreter keeps a model of every scope and entry it made, fed by
 * the lifecycle trace, and checks each event against DESIGN.md section 2 as
 * it arrives; what can only be judged at the end (exactly-once, descriptors,
 * injected faults) is checked after the loop is gone.
 */


static const char *const ev_names[] = { "ENTERED", "ENTER_FAILED", "RELEASED",
					"SCOPE_CLOSED", "AUDIT_FINDING" };

/* Alloc faults fired in this program so far (the kind alloc). */
bool alloc_fired(const struct prog *p)
{
	return p->fired[FC_ALLOC] ||
	       (p->cur_class == FC_ALLOC &&
		rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) != p->fault_mark);
}

/*
 * With alloc rules that fired (the kind alloc), a call that said -ENOMEM
 * where the model expected it to work refused for want of memory: nothing
 * was done, as rsc_fault_set(3) promises, and the model never counted it.
 * What the end checks (leaks, releases exactly once) stays strict.
 */
static bool alloc_refusal(struct prog *p, const char *msg)
{
	if (p->cur_class != FC_ALLOC || !strstr(msg, "ENOMEM") ||
	    rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) == p->fault_mark)
		return false;
	p->alloc_refusals++;
	say(p, "  op %d: taken for a want of memory: %s\n", p->op_index, msg);
	return true;
}

void violation(struct prog *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->failed || p->fork_child)
		return; /* the first one is the one to look at; a forked child's calls fail by design */
	if (alloc_refusal(p, msg))
		return;
	if (p->env->verbose)
		fprintf(stderr, "  VIOLATION: %s\n", msg);
	p->failed = true;
	n = snprintf(p->why, p->whylen, "op %d: ", p->op_index);
	if (n >= 0 && (size_t)n < p->whylen)
		snprintf(p->why + n, p->whylen - (size_t)n, "%s", msg);
}

void say(const struct prog *p, const char *fmt, ...)
{
	va_list ap;

	if (!p->env->verbose)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/*
 * An op byte below ACC_OPS is one of the 20 first kinds (b % 20, evenly:
 * 11 bytes each); ACC_OPS to EXT_OPS, listeners, accepts and their clients
 * (accept.c); from EXT_OPS on, tracked I/O (io.c), hand-overs
 * (handover.c), posts (post.c), then moves, failures, deadlines and the
 * rest of own.c. Without the accept kind (PROG_KINDS), the four bytes of
 * ACC_OPS decode as the first kinds again, as they did before it; so do
 * the two of CHAIN_OPS (chain.c) without the chain kind, CONN_OP (deadlines,
 * failures and defers on a connection's scope, accept.c) without the conn
 * kind, and AUDIT_OP (audit.c) without the audit kind: the last bytes of
 * ops 16-19.
 */
#define CHAIN_OPS 216
#define CONN_OP	 218
#define AUDIT_OP 219
#define ACC_OPS	 220
#define EXT_OPS	 224
#define IO_OPS	 8
#define POST_OPS 10
#define OWN_AT	 24 /* own.c's 8 kinds come after the posts' 6 */

/* ---- custom managers ---------------------------------------------------- */

static struct prog *g_prog; /* the program running now (the soak is single-threaded) */
static struct prog_stats *g_st; /* its figures, for hooks and callbacks */

/* A pipe entered as @res: both its ends open and close-on-exec, the read end its value. */
static void pipe_entered(struct prog *p, int i, int res)
{
	struct pentry *e = &p->en[i];
	int ends[2], ret = rsc_pipe_ends(e->h, ends), fl;

	if (ret < 0) {
		violation(p, "rsc_pipe_ends of entered pipe %d: %s", e->seq, rsc_err_name(ret));
		return;
	}
	fl = fcntl(ends[1], F_GETFD);
	say(p, "    pipe %d of '%s': ends %d and %d\n", e->seq, p->sc[e->scope].name, ends[0], ends[1]);
	if (ends[0] != res || ends[1] == res || fl < 0 || !(fl & FD_CLOEXEC))
		violation(p, "pipe %d entered as %d with ends %d and %d (write end flags %d)", e->seq,
			  res, ends[0], ends[1], fl);
}

/*
 * Hooks and callbacks that call back into the library: every blocking call
 * and every turn of the loop must be refused with -EDEADLK, wherever the
 * hook runs (inside rsc_push, rsc_entry_release, or the loop).
 */
static void probe_reentry(struct rsc_entry *e, const char *where)
{
	struct prog *p = g_prog;
	/* Tagged, as a CQE of ringscope's the application reaped meanwhile. */
	const struct io_uring_cqe cqe = { .user_data = (1ULL << 63) | 1 };
	/* And the application's own: refused too, whoever's CQE it is. */
	const struct io_uring_cqe app_cqe = { .user_data = 1 };
	int ret[8], i;

	if (!p || !p->reenter)
		return;
	ret[0] = rsc_loop_run(p->loop, RSC_RUN_NOWAIT);
	ret[1] = rsc_loop_shutdown(p->loop, NULL);
	ret[2] = e ? rsc_entry_wait(e) : -EDEADLK;
	ret[3] = e ? rsc_scope_close_wait(rsc_entry_scope(e), NULL) : -EDEADLK;
	ret[4] = p->shared ? rsc_loop_dispatch(p->loop, &cqe) : -EDEADLK;
	/* A hook, or the trace, in the middle of the runtime's step: it changes nothing. */
	ret[5] = e ? rsc_entry_detach(e) : -EDEADLK;
	ret[6] = e ? rsc_entry_release(e, NULL, NULL) : -EDEADLK;
	ret[7] = rsc_loop_dispatch(p->loop, &app_cqe);
	p->reentry_probes++;
	for (i = 0; i < 8; i++)
		if (ret[i] != -EDEADLK)
			violation(p, "call %d from %s returned %s, expected EDEADLK", i, where,
				  rsc_err_name(ret[i]));
}

/* TW_SLOW: the second SQE of an enter, which only a cancel ends in time. */
#define SLOW_S 10
static struct __kernel_timespec slow_ts = { .tv_sec = SLOW_S };
/* p->multi_cqe's: a multishot timeout, which the runtime makes fire once. */
static struct __kernel_timespec multi_ts = { .tv_nsec = 1000000 };

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * An enter of a twisted entry (kind "hooks"): its variant's SQE (a NOP for
 * TE_NOP, made explicit) and then, unlinked, a 10 s timeout (TW_SLOW: the
 * entry enters once both are in, so a close, failure or release must cancel
 * both); a close(-1) whose IOSQE_IO_LINK is left on (TW_LINK: it fails, and
 * the flag must not reach the next SQE of the submit, another scope's open);
 * or IOSQE_CQE_SKIP_SUCCESS on its one SQE (TW_SKIP: it must still complete
 * with one CQE).
 */
static int tv_enter_twisted(struct rsc_entry *e, struct pentry *pe)
{
	struct io_uring_sqe *sqe[2];
	unsigned n = pe->twist == TW_SKIP ? 1 : 2;
	int ret = rsc_entry_get_sqes(e, n, sqe);

	if (ret < 0)
		return ret;
	if (pe->v->enter == TE_OPEN)
		io_uring_prep_openat(sqe[0], AT_FDCWD, pe->path, O_RDONLY | O_CLOEXEC, 0);
	else
		io_uring_prep_nop(sqe[0]);
	switch (pe->twist) {
	case TW_SLOW:
		if (g_prog && g_prog->multi_cqe) {
			/* A request that would post a CQE every millisecond for ever
			 * (bug 105): made single-shot, it ends the enter by itself. */
			io_uring_prep_timeout(sqe[1], &multi_ts, 0, 1U << 6 /* IORING_TIMEOUT_MULTISHOT */);
			pe->slow_t0 = 0;
			g_st->hk_multi++;
			break;
		}
		io_uring_prep_timeout(sqe[1], &slow_ts, 0, 0);
		pe->slow_t0 = now_s();
		break;
	case TW_LINK:
		io_uring_prep_close(sqe[1], -1);
		sqe[1]->flags |= IOSQE_IO_LINK;
		break;
	case TW_SKIP:
	default:
		sqe[0]->flags |= IOSQE_CQE_SKIP_SUCCESS;
		break;
	}
	return 0;
}

/* TW_DL_*: a deadline on the hook's own scope, modelled as any (own.c). */
static void hook_deadline(struct pentry *pe)
{
	struct prog *p = g_prog;

	if (!p || p->failed || !p->sc[pe->scope].valid)
		return;
	own_set_deadline_in_hook(p, pe->scope, pe->dl_ms, pe->dl_move_on, g_st);
	g_st->hk_deadlines++;
}

static int tv_enter(struct rsc_entry *e, void *arg)
{
	struct pentry *pe = arg;
	struct io_uring_sqe *sqe;
	int ret;

	probe_reentry(e, "an enter hook");
	if (pe->twist != TW_NONE && pe->twist < TW_DL_ENTER && pe->v->enter != TE_FAIL)
		return tv_enter_twisted(e, pe);
	switch (pe->v->enter) {
	case TE_FAIL:
		return -HOOK_ERRNO;
	case TE_OPEN:
		ret = rsc_entry_get_sqes(e, 1, &sqe);
		if (ret < 0)
			return ret;
		io_uring_prep_openat(sqe, AT_FDCWD, pe->path, O_RDONLY | O_CLOEXEC, 0);
		/* After the reservation: the timer's SQE goes behind the hook's. */
		if (pe->twist == TW_DL_ENTER)
			hook_deadline(pe);
		return 0;
	case TE_NOP:
	default:
		if (pe->twist == TW_DL_ENTER)
			hook_deadline(pe); /* before the runtime's NOP */
		return 0; /* no SQE: the runtime completes it with a NOP */
	}
}

/* A directory to read from: the read fails (-EISDIR) in io-wq, so its CQE
 * comes after a close(-1)'s (-EBADF) made inline (prog_env_init). */
static int dir_fd = -1;
static char scratch[64]; /* never written: a directory gives no bytes */

static int tv_exit_do(struct rsc_entry *e, struct pentry *pe);

/* The last SQE tv_exit_do prepared, or NULL. */
static struct io_uring_sqe *exit_last;

static int exit_sqes(struct rsc_entry *e, unsigned n, struct io_uring_sqe **sqe)
{
	int ret = rsc_entry_get_sqes(e, n, sqe);

	exit_last = ret < 0 ? NULL : sqe[n - 1];
	return ret;
}

/*
 * The exit's last SQE, as its hook leaves it (kind "hooks"): TW_LINK, an
 * IOSQE_IO_LINK on it (after close(-1) in TX_BADF and TX_TWO_ERRORS: the
 * next close of an unordered batch must not be cancelled, or its descriptor
 * outlives its scope); TW_SKIP, IOSQE_CQE_SKIP_SUCCESS (the release must
 * still complete). The hook's SQEs are the last the SQ holds.
 */
static void tv_exit_twist(struct rsc_entry *e, struct pentry *pe)
{
	struct io_uring_sqe *sqe = exit_last;

	(void)e;
	if (!sqe)
		return;
	sqe->flags |= pe->twist == TW_LINK ? IOSQE_IO_LINK : IOSQE_CQE_SKIP_SUCCESS;
}

/* The pending error it sees and what it returns go to the model (unwind.c). */
static int tv_exit(struct rsc_entry *e, const struct rsc_error *pending,
		   void *arg)
{
	struct pentry *pe = arg;
	int ret;

	probe_reentry(e, "an exit hook");
	if (g_prog)
		audit_probe(g_prog, "an exit hook");
	if (g_prog && pe->h == e)
		uw_exit_called(g_prog, (int)(pe - g_prog->en), pending, g_st);
	exit_last = NULL;
	ret = tv_exit_do(e, pe);
	if (ret >= 0 && (pe->twist == TW_LINK || pe->twist == TW_SKIP))
		tv_exit_twist(e, pe);
	/* Its scope unwinding: -ESHUTDOWN; released early, its scope open: set. */
	if (pe->twist == TW_DL_EXIT && g_prog && pe->h == e)
		hook_deadline(pe);
	if (g_prog && pe->h == e)
		uw_exit_returned(g_prog, (int)(pe - g_prog->en), ret);
	if (g_prog && pe->h == e && ret >= 0) {
		/* A fork after its SQEs are prepared; the child comes back late, when
		 * the parent has filled the SQ's slots again (bug 74). */
		fork_from_callback(g_prog, 4000 + (unsigned)(pe - g_prog->en));
		if (g_prog->fork_child)
			usleep(20 * 1000);
	}
	return ret;
}

static int tv_exit_do(struct rsc_entry *e, struct pentry *pe)
{
	struct io_uring_sqe *sqe[2];
	bool owns_fd = pe->v->enter == TE_OPEN;
	int fd = rsc_entry_fd(e), ret;

	exit_last = NULL;

	switch (pe->v->exit) {
	case TX_FAIL:
		return -HOOK_ERRNO; /* only for entries that own nothing */
	case TX_NONE:
		return 0;
	case TX_TWO_ERRORS:
		/* Two failures, the first SQE's arriving last: the release's error is
		 * the first SQE's, whatever the completion order (rsc_entry_get_sqes). */
		ret = exit_sqes(e, 2, sqe);
		if (ret < 0)
			return ret;
		io_uring_prep_read(sqe[0], dir_fd, scratch, sizeof(scratch), 0);
		io_uring_prep_close(sqe[1], -1);
		return 0;
	case TX_BADF:
		if (owns_fd) {
			/* Close what it owns, then fail: HARDLINK keeps both. */
			ret = exit_sqes(e, 2, sqe);
			if (ret < 0)
				return ret;
			io_uring_prep_close(sqe[0], fd);
			sqe[0]->flags |= IOSQE_IO_HARDLINK;
			io_uring_prep_close(sqe[1], -1);
			return 0;
		}
		ret = exit_sqes(e, 1, sqe);
		if (ret < 0)
			return ret;
		io_uring_prep_close(sqe[0], -1);
		return 0;
	case TX_CLOSE:
	case TX_SUPPRESS:
	default:
		ret = exit_sqes(e, 1, sqe);
		if (ret < 0)
			return ret;
		if (owns_fd)
			io_uring_prep_close(sqe[0], fd);
		else
			io_uring_prep_nop(sqe[0]);
		return pe->v->exit == TX_SUPPRESS ? RSC_EXIT_SUPPRESS : 0;
	}
}

static const struct variant variants[] = {
	{ { sizeof(struct rsc_manager), 0, "nop_close", tv_enter, tv_exit }, TE_NOP, TX_CLOSE },
	{ { sizeof(struct rsc_manager), 0, "nop_badf", tv_enter, tv_exit }, TE_NOP, TX_BADF },
	{ { sizeof(struct rsc_manager), 0, "nop_suppress", tv_enter, tv_exit }, TE_NOP, TX_SUPPRESS },
	{ { sizeof(struct rsc_manager), 0, "nop_hookfail", tv_enter, tv_exit }, TE_NOP, TX_FAIL },
	{ { sizeof(struct rsc_manager), 0, "nop_none", tv_enter, tv_exit }, TE_NOP, TX_NONE },
	{ { sizeof(struct rsc_manager), 0, "open_close", tv_enter, tv_exit }, TE_OPEN, TX_CLOSE },
	{ { sizeof(struct rsc_manager), 0, "open_badf", tv_enter, tv_exit }, TE_OPEN, TX_BADF },
	{ { sizeof(struct rsc_manager), 0, "open_suppress", tv_enter, tv_exit }, TE_OPEN, TX_SUPPRESS },
	{ { sizeof(struct rsc_manager), 0, "enter_fails", tv_enter, tv_exit }, TE_FAIL, TX_CLOSE },
	{ { sizeof(struct rsc_manager), 0, "nop_two_errors", tv_enter, tv_exit }, TE_NOP, TX_TWO_ERRORS },
};
#define N_VARIANTS (int)(sizeof(variants) / sizeof(variants[0]))

/* The same, each exit in the unwind's unlinked batch (rsc_push(3)). */
#define UNORD RSC_MANAGER_UNORDERED
static const struct variant unordered_variants[N_VARIANTS] = {
	{ { sizeof(struct rsc_manager), UNORD, "u_nop_close", tv_enter, tv_exit }, TE_NOP, TX_CLOSE },
	{ { sizeof(struct rsc_manager), UNORD, "u_nop_badf", tv_enter, tv_exit }, TE_NOP, TX_BADF },
	{ { sizeof(struct rsc_manager), UNORD, "u_nop_suppress", tv_enter, tv_exit }, TE_NOP, TX_SUPPRESS },
	{ { sizeof(struct rsc_manager), UNORD, "u_nop_hookfail", tv_enter, tv_exit }, TE_NOP, TX_FAIL },
	{ { sizeof(struct rsc_manager), UNORD, "u_nop_none", tv_enter, tv_exit }, TE_NOP, TX_NONE },
	{ { sizeof(struct rsc_manager), UNORD, "u_open_close", tv_enter, tv_exit }, TE_OPEN, TX_CLOSE },
	{ { sizeof(struct rsc_manager), UNORD, "u_open_badf", tv_enter, tv_exit }, TE_OPEN, TX_BADF },
	{ { sizeof(struct rsc_manager), UNORD, "u_open_suppress", tv_enter, tv_exit }, TE_OPEN, TX_SUPPRESS },
	{ { sizeof(struct rsc_manager), UNORD, "u_enter_fails", tv_enter, tv_exit }, TE_FAIL, TX_CLOSE },
	{ { sizeof(struct rsc_manager), UNORD, "u_nop_two_errors", tv_enter, tv_exit }, TE_NOP, TX_TWO_ERRORS },
};

static const struct rsc_manager half_manager = { sizeof(struct rsc_manager), 0, "half", tv_enter, NULL };

/* ---- model helpers ------------------------------------------------------ */

static int scope_of(const struct prog *p, const struct rsc_scope *h)
{
	int i;

	for (i = 0; i < p->n_sc; i++)
		if (p->sc[i].valid && p->sc[i].h == h)
			return i;
	return -1;
}

static int entry_of(const struct prog *p, const struct rsc_entry *h)
{
	int i;

	for (i = 0; i < p->n_en; i++)
		if (p->en[i].h == h && p->sc[p->en[i].scope].valid)
			return i;
	return -1;
}

/*
 * An event for an entry we hold no handle for: the socket entry of a
 * connect/listen pair, pushed by the library and never returned. At most one
 * waits for its handle per scope (op_address), so the first unknown "socket"
 * of that scope is it.
 */
static int bind_hidden(struct prog *p, const struct rsc_scope *sh,
		       const struct rsc_entry *eh)
{
	int s, i;

	if (!eh || (s = scope_of(p, sh)) < 0 || strcmp(rsc_entry_name(eh), "socket"))
		return -1;
	for (i = 0; i < p->n_en; i++)
		if (p->en[i].scope == s && p->en[i].hidden && !p->en[i].h) {
			p->en[i].h = (struct rsc_entry *)eh;
			return i;
		}
	return -1;
}

static bool waits_for_handle(const struct prog *p, int s)
{
	int i;

	for (i = 0; i < p->n_en; i++)
		if (p->en[i].scope == s && p->en[i].hidden && !p->en[i].h)
			return true;
	return false;
}

/* @x is @s or below it, reached only through scopes that pass their result up. */
static bool in_flow(const struct prog *p, int s, int x)
{
	while (x != s) {
		if (x < 0 || p->sc[x].close_req)
			return false; /* a scope we closed keeps its result to itself */
		x = p->sc[x].parent;
	}
	return true;
}

/* The shutdown's root takes the results of top-level scopes we did not close. */
static bool flows_to_root(const struct prog *p, int x)
{
	while (p->sc[x].parent >= 0 && !p->sc[x].close_req)
		x = p->sc[x].parent;
	return p->sc[x].parent < 0 && !p->sc[x].close_req;
}

static bool in_tree(const struct prog *p, int s, int x)
{
	for (; x >= 0; x = p->sc[x].parent)
		if (x == s)
			return true;
	return false;
}

/* A scope above @s is closing or failing: its unwind may have claimed @s. */
bool ancestor_closing(const struct prog *p, int s)
{
	int a;

	for (a = p->sc[s].parent; a >= 0; a = p->sc[a].parent)
		if (p->sc[a].close_req || p->sc[a].fail_req ||
		    rsc_scope_state(p->sc[a].h) != RSC_SCOPE_OPEN)
			return true;
	return false;
}

/* A push into @s is refused: it, a scope above it, or the loop's root (a
 * shutdown) is closing, as rsc_push(3) says. */
static bool push_refused(const struct prog *p, int s)
{
	return p->sc[s].close_req || p->sc[s].fail_req ||
	       rsc_scope_state(p->sc[s].h) != RSC_SCOPE_OPEN || ancestor_closing(p, s) ||
	       p->shutting_down;
}

bool self_or_ancestor_close_req(const struct prog *p, int s)
{
	for (; s >= 0; s = p->sc[s].parent)
		if (p->sc[s].close_req)
			return true;
	return false;
}

/* @s or a scope above it is unwinding or unwound, as the library says (a freed one counts). */
bool self_or_ancestor_not_open(const struct prog *p, int s)
{
	for (; s >= 0; s = p->sc[s].parent)
		if (!p->sc[s].valid || rsc_scope_state(p->sc[s].h) != RSC_SCOPE_OPEN)
			return true;
	return false;
}

static void invalidate_tree(struct prog *p, int s)
{
	int i;

	for (i = 0; i < p->n_sc; i++)
		if (in_tree(p, s, i))
			p->sc[i].valid = false;
}

bool release_may_fail_twice(const struct pentry *e)
{
	return e->multi_release || e->fsync_fails ||
	       (e->kind == K_CUSTOM && e->v->exit == TX_TWO_ERRORS);
}

/*
 * A failed release of several SQEs raises one error per failed SQE, in SQE
 * order, the first (the RELEASED res) deepest (rsc_entry_get_sqes(3)). The
 * later SQEs of ours fail with an injected EIO or a close(-1)'s EBADF: they
 * may stand in the chain too. TX_TWO_ERRORS's close(-1) always fails: its
 * error must head the scope's chain now, on top of the read's EISDIR.
 */
static void later_sqe_errors(struct prog *p, const struct pentry *e, int i,
			     const struct rsc_scope *sh, int res, bool unwinding)
{
	const struct rsc_error *head = rsc_scope_error(sh);
	static const int later[] = { -EIO, -EBADF };
	unsigned k;

	for (k = 0; k < sizeof(later) / sizeof(later[0]); k++)
		if (later[k] != res)
			add_err(p, later[k], e->scope, i, false, unwinding);
	if (e->kind != K_CUSTOM || e->v->exit != TX_TWO_ERRORS || alloc_fired(p))
		return;
	if (!head || (rsc_error_errno(head) != -EBADF && rsc_error_errno(head) != -EIO) ||
	    strcmp(rsc_error_entry(head), e->name) || !rsc_error_cause(head) ||
	    rsc_error_errno(rsc_error_cause(head)) != -EISDIR ||
	    strcmp(rsc_error_entry(rsc_error_cause(head)), e->name))
		violation(p, "entry %d of '%s': its two failed SQEs are not both in the chain, the close's on top (head %s)",
			  e->seq, p->sc[e->scope].name,
			  head ? rsc_err_name(rsc_error_errno(head)) : "(none)");
}

void add_err(struct prog *p, int err, int scope, int entry, bool must,
	     bool unwinding)
{
	if (p->n_errs == MAX_ERRS) {
		violation(p, "more than %d errors in one program", MAX_ERRS);
		return;
	}
	p->errs[p->n_errs++] = (struct perr){ err, scope, entry, must, unwinding, false, NULL };
}

/* Link @c is error @x: an entry's by its name, a scope's own (own.c) by its op. */
bool link_is(const struct prog *p, const struct perr *x, const struct rsc_error *c)
{
	/* Raised when the chain could not grow: its errno alone, names lost. */
	if (x->err == rsc_error_errno(c) && alloc_fired(p) && !*rsc_error_op(c) &&
	    !*rsc_error_entry(c) && !*rsc_error_scope(c))
		return true;
	if (x->err != rsc_error_errno(c) || strcmp(p->sc[x->scope].name, rsc_error_scope(c)))
		return false;
	if (x->op)
		return !strcmp(x->op, rsc_error_op(c)) && !*rsc_error_entry(c);
	return !strcmp(p->en[x->entry].name, rsc_error_entry(c));
}

/* Every link of a chain names an error that some event raised. */
static void check_chain_links(struct prog *p, const struct rsc_error *chain,
			      const char *where)
{
	const struct rsc_error *c;
	int i;

	for (c = chain; c; c = rsc_error_cause(c)) {
		bool found = false;

		for (i = 0; i < p->n_errs && !found; i++)
			found = link_is(p, &p->errs[i], c);
		if (!found)
			violation(p, "%s: chain link %s (op %s, entry '%s', scope '%s') matches no event",
				  where, rsc_err_name(rsc_error_errno(c)), rsc_error_op(c),
				  rsc_error_entry(c), rsc_error_scope(c));
	}
}

static bool chain_has(const struct prog *p, const struct rsc_error *chain,
		      const struct perr *x)
{
	const struct rsc_error *c;

	for (c = chain; c; c = rsc_error_cause(c))
		if (link_is(p, x, c))
			return true;
	return false;
}

/*
 * The scope's result: errors raised in its flow (itself, and children whose
 * result comes up to it) must all be in the chain unless an exit in that
 * flow suppressed; with no error anywhere it could have come from, 0.
 */
static void check_result(struct prog *p, const char *what, int s_is_root,
			 int s, int status, const struct rsc_error *chain)
{
	bool suppressed = false, any_source = false, any_must = false;
	int i, x;

	if (status != (chain ? rsc_error_errno(chain) : 0))
		violation(p, "%s: status %s but chain head %s", what,
			  rsc_err_name(status),
			  chain ? rsc_err_name(rsc_error_errno(chain)) : "(none)");
	check_chain_links(p, chain, what);
	for (x = 0; x < p->n_sc; x++)
		if (p->sc[x].suppressed &&
		    (s_is_root ? flows_to_root(p, x) : in_flow(p, s, x)))
			suppressed = true;
	for (i = 0; i < p->n_errs; i++) {
		const struct perr *e = &p->errs[i];
		bool flows;

		flows = s_is_root ? flows_to_root(p, e->scope) : in_flow(p, s, e->scope);
		/* Where an error could have come from: a superset is safe here. */
		if (s_is_root || p->sc[s].closed_in_shutdown)
			any_source = true;
		else {
			int top = s;

			while (p->sc[top].parent >= 0)
				top = p->sc[top].parent;
			if (in_tree(p, top, e->scope))
				any_source = true;
		}
		if (!flows || !e->must)
			continue;
		if (!suppressed && !chain_has(p, chain, e)) {
			if (e->may_be_lost && !p->strict) {
				p->lost_errors++;
				continue;
			}
			/* A chain that could not grow keeps its first errors, not all. */
			if (alloc_fired(p)) {
				p->alloc_refusals++;
				continue;
			}
			violation(p, "%s: %s raised by entry '%s' in scope '%s' is not in its chain (status %s)",
				  what, rsc_err_name(e->err), e->op ? e->op : p->en[e->entry].name,
				  p->sc[e->scope].name, rsc_err_name(status));
		}
		any_must = true;
	}
	if (any_must && !suppressed && status >= 0)
		violation(p, "%s: an error was raised and nothing suppressed it, but the status is 0", what);
	if (!any_source && status != 0)
		violation(p, "%s: status %s, but no error was raised anywhere it could come from",
			  what, rsc_err_name(status));
}

/* ---- the trace: checked as it arrives ----------------------------------- */

static void on_scope_closed(struct prog *p, const struct rsc_scope *h, int res)
{
	const struct rsc_error *chain = rsc_scope_error(h);
	int s = scope_of(p, h), i;

	if (s < 0) {
		if (!strcmp(rsc_scope_name(h), "(loop)")) {
			p->root_closed++;
			p->root_res = res;
			if (!p->shutting_down)
				violation(p, "the loop's root scope closed outside rsc_loop_shutdown");
			return;
		}
		/* A connection the runtime closed when its entry found no memory. */
		if (alloc_fired(p) && !strcmp(rsc_scope_name(h), "conn"))
			return;
		violation(p, "SCOPE_CLOSED for an unknown scope '%s'", rsc_scope_name(h));
		return;
	}
	if (p->sc[s].n_closed++) {
		violation(p, "scope '%s' closed twice", p->sc[s].name);
		return;
	}
	p->sc[s].closed_res = res;
	p->sc[s].closed_in_shutdown = p->shutting_down;
	p->sc[s].chain[0] = '\0';
	if (chain) {
		rsc_error_format(chain, p->sc[s].chain, sizeof(p->sc[s].chain));
		text_check_str(p, "a chain SCOPE_CLOSED carries", p->sc[s].chain);
		if (rsc_error_dup(chain, &p->sc[s].final) < 0)
			violation(p, "rsc_error_dup failed");
	}
	if (res != (chain ? rsc_error_errno(chain) : 0))
		violation(p, "scope '%s' closed with %s, its chain starts with %s", p->sc[s].name,
			  rsc_err_name(res), chain ? rsc_err_name(rsc_error_errno(chain)) : "nothing");
	for (i = 0; i < p->n_sc; i++)
		if (p->sc[i].parent == s && !p->sc[i].n_closed)
			violation(p, "scope '%s' closed before its child '%s'",
				  p->sc[s].name, p->sc[i].name);
	/* A child passing its result up replaces what its parent raised while
	 * it unwound (known bug: take_child_result, from_parent). */
	if (p->sc[s].parent >= 0 && !p->sc[s].close_req)
		for (i = 0; i < p->n_errs; i++)
			if (p->errs[i].scope == p->sc[s].parent && p->errs[i].while_unwinding)
				p->errs[i].may_be_lost = true;
	p->sc[s].late_entry = -1;
	for (i = 0; i < p->n_en; i++) {
		const struct pentry *e = &p->en[i];

		if (e->scope != s || e->detached || (e->maybe_absent && !e->h))
			continue;
		if (e->n_entered + e->n_failed == 0) {
			/* Known: the failed acquire that started the unwind is
			 * traced after the SCOPE_CLOSED it caused. At most one. */
			if (p->sc[s].late_entry >= 0 || p->strict)
				violation(p, "scope '%s' closed with entry %d still entering",
					  p->sc[s].name, e->seq);
			p->sc[s].late_entry = i;
		} else if (e->n_released != e->n_entered && !e->taken_over) {
			violation(p, "scope '%s' closed with entry %d ('%s') acquired and not released",
				  p->sc[s].name, e->seq, e->name);
		}
	}
	own_scope_closed(p, s, chain);
}

static bool witness_cancel_ok(const struct prog *p, int i);
static bool planted_finding(struct prog *p, int fd);

static void trace(struct rsc_loop *loop, enum rsc_event ev,
		  const struct rsc_scope *sh, const struct rsc_entry *eh,
		  int res, void *data)
{
	struct prog *p = data;
	struct pentry *e;
	struct pscope *s;
	bool unwinding;
	int i;

	(void)loop;
	if (p->fork_child) {
		p->child_events++; /* none may come: the loop runs nothing in a forked child */
		return;
	}
	probe_reentry((struct rsc_entry *)eh, "the trace callback");
	if (p->env->verbose) {
		i = eh ? entry_of(p, eh) : -1;
		fprintf(stderr, "    ev %s scope '%s' entry %d %s res %d (%s)\n",
			ev_names[ev], sh ? rsc_scope_name(sh) : "", i >= 0 ? p->en[i].seq : -1,
			eh ? rsc_entry_name(eh) : "-", res, res < 0 ? rsc_err_name(res) : "");
	}
	if (ev == RSC_EV_SCOPE_CLOSED) {
		on_scope_closed(p, sh, res);
		audit_probe(p, "the trace callback");
		return;
	}
	if (ev == RSC_EV_AUDIT_FINDING) {
		const struct rsc_finding *f = rsc_audit_finding(p->loop, (unsigned)rsc_audit_count(p->loop) - 1);

		if (planted_finding(p, res))
			return;
		p->n_findings++;
		violation(p, "audit finding on fd %d: %s: %s", res, f ? rsc_finding_target(f) : "?",
			  f ? rsc_finding_expected(f) : "?");
		return;
	}
	i = entry_of(p, eh);
	if (i < 0)
		i = bind_hidden(p, sh, eh);
	if (i < 0 && ev == RSC_EV_ENTERED)
		i = acc_bind(p, sh, eh); /* an accepted connection, before its callback */
	if (i < 0) {
		violation(p, "%s for an unknown entry", ev_names[ev]);
		return;
	}
	e = &p->en[i];
	s = &p->sc[e->scope];
	if (s->n_closed) {
		if (ev == RSC_EV_ENTER_FAILED && s->late_entry == i && !p->strict) {
			p->late_traces++;
			s->late_entry = -1;
		} else {
			violation(p, "%s for entry %d of scope '%s' after the scope closed",
				  ev_names[ev], e->seq, s->name);
		}
	}
	unwinding = s->n_closed || rsc_scope_state(sh) != RSC_SCOPE_OPEN;
	switch (ev) {
	case RSC_EV_ENTERED:
	case RSC_EV_ENTER_FAILED:
		if (e->n_entered + e->n_failed)
			violation(p, "entry %d of '%s' entered twice", e->seq, s->name);
		e->enter_res = res;
		if (e->twist == TW_SLOW && e->slow_t0 > 0) {
			/* Before the cancel reached every SQE, this waited the 10 s out. */
			double dt = now_s() - e->slow_t0;

			g_st->hk_slow_settled++;
			if (dt >= SLOW_S - 1)
				violation(p, "entry %d of '%s' (%s) settled %.1f s after its enter: its slow "
					  "second SQE ran out, nothing cancelled it", e->seq, s->name,
					  e->name, dt);
		}
		if (e->witness && res == -ECANCELED && !witness_cancel_ok(p, i))
			violation(p, "the witness open %d of '%s' was cancelled: nothing of its own scope "
				  "asked for it (a link flag left on the hook before it?)", e->seq, s->name);
		if (ev == RSC_EV_ENTER_FAILED) {
			e->n_failed++;
			if (res >= 0)
				violation(p, "ENTER_FAILED with res %d", res);
			/* A cancelled or early-released acquire raises nothing. */
			add_err(p, res, e->scope, i, res != -ECANCELED && !e->early, unwinding);
			uw_enter_failed(p, i, res);
			if (e->chain)
				ch_failed(p, i, res);
			break;
		}
		e->n_entered++;
		if (e->kind == K_NET && i > 0 && p->en[i - 1].hidden)
			p->en[i - 1].taken_over = true; /* its socket, pushed just before it */
		if (e->kind == K_NET)
			acc_entered(p, i);
		if (e->chain)
			ch_entered(p, i, res);
		if (res < 0) {
			violation(p, "ENTERED with res %d", res);
			break;
		}
		if (e->fd_kind) {
			int fl = fcntl(res, F_GETFD);

			if (fl < 0)
				violation(p, "entry %d of '%s' entered with fd %d, which is not open",
					  e->seq, s->name, res);
			else if (!(fl & FD_CLOEXEC))
				violation(p, "fd %d of entry %d ('%s') is not close-on-exec",
					  res, e->seq, e->name);
			else
				lw_entered(p, i, res);
		}
		if (e->kind == K_PIPE)
			pipe_entered(p, i, res);
		break;
	case RSC_EV_RELEASED:
		if (e->n_entered != 1)
			violation(p, "entry %d of '%s' released without being acquired",
				  e->seq, s->name);
		if (e->n_released++)
			violation(p, "entry %d of '%s' released twice", e->seq, s->name);
		e->release_res = res;
		if (res < 0)
			add_err(p, res, e->scope, i, !(e->early && e->early_cb), unwinding);
		if (res < 0 && !(e->early && e->early_cb) && release_may_fail_twice(e))
			later_sqe_errors(p, e, i, sh, res, unwinding);
		uw_released(p, i, res);
		if (e->kind == K_DIRECT)
			ho_released(p, i);
		io_released(p, i);
		own_released(p, i);
		e->lw_released = true; /* ledger.c: its number is no one's once closed */
		acc_released(p, i);
		if (e->early)
			break;
		/* LIFO: newest first, and only after every child scope closed. */
		if (e->seq >= s->last_unwind)
			violation(p, "scope '%s' released entry %d after entry %d: not LIFO",
				  s->name, e->seq, s->last_unwind);
		s->last_unwind = e->seq;
		for (i = 0; i < p->n_sc; i++)
			if (p->sc[i].parent == e->scope && !p->sc[i].n_closed)
				violation(p, "scope '%s' released entry %d before its child '%s' closed",
					  s->name, e->seq, p->sc[i].name);
		if (e->kind == K_CUSTOM && e->v->exit == TX_SUPPRESS && res >= 0)
			s->suppressed = true;
		if (e->fsync_fails && res >= 0 && !e->handed)
			violation(p, "entry %d of '%s' released cleanly: its fsync of /dev/null cannot succeed",
				  e->seq, s->name);
		if (e->kind == K_CUSTOM && e->v->exit == TX_TWO_ERRORS && res != -EISDIR)
			violation(p, "entry %d of '%s' released with %s, not its first SQE's EISDIR",
				  e->seq, s->name, rsc_err_name(res));
		break;
	default:
		break;
	}
}

/* ---- callbacks of the API ------------------------------------------------ */

struct close_ctx {
	struct prog *p;
	int s;
};

static struct close_ctx close_ctx[MAX_SCOPES];

/* The close callback's data for scope @s: own.c's graceful closes use it too. */
void *close_data(struct prog *p, int s)
{
	close_ctx[s] = (struct close_ctx){ p, s };
	return &close_ctx[s];
}

void scope_close_cb(struct rsc_scope *h, int status, const struct rsc_error *err,
		     void *data)
{
	struct close_ctx *c = data;
	struct prog *p = c->p;
	struct pscope *s = &p->sc[c->s];
	char buf[CHAIN_MAX];

	say(p, "    close callback '%s' status %s\n", s->name, rsc_err_name(status));
	audit_probe(p, "a close callback");
	if (s->h != h || !s->valid)
		violation(p, "close callback for the wrong or a dead scope '%s'", s->name);
	if (s->n_cb++)
		violation(p, "close callback for '%s' called twice", s->name);
	if (!s->n_closed)
		violation(p, "close callback for '%s' before it unwound", s->name);
	if (status != s->closed_res)
		violation(p, "close callback for '%s': status %s, SCOPE_CLOSED said %s",
			  s->name, rsc_err_name(status), rsc_err_name(s->closed_res));
	buf[0] = '\0';
	if (err)
		rsc_error_format(err, buf, sizeof(buf));
	text_check_str(p, "a close callback's chain", buf);
	if (strcmp(buf, s->chain))
		violation(p, "close callback for '%s': chain '%s', SCOPE_CLOSED had '%s'",
			  s->name, buf, s->chain);
	invalidate_tree(p, c->s); /* freed when we return */
	fork_from_callback(p, 1000 + (unsigned)c->s);
}

static void release_cb(struct rsc_entry *h, int res, void *data)
{
	struct pentry *e = data;

	(void)h;
	e->n_early_cb++;
	e->early_cb_res = res;
	if (g_prog) {
		audit_probe(g_prog, "a release callback");
		fork_from_callback(g_prog, 2000 + (unsigned)e->seq);
	}
}

/* ---- decoding ------------------------------------------------------------ */


unsigned rd_u8(struct rd *r)
{
	return r->i < r->n ? r->d[r->i++] : 0;
}

int pick_scope(const struct prog *p, struct rd *r)
{
	int live[MAX_SCOPES], n = 0, i;

	for (i = 0; i < p->n_sc; i++)
		if (p->sc[i].valid)
			live[n++] = i;
	return n ? live[rd_u8(r) % (unsigned)n] : -1;
}

int pick_entry(const struct prog *p, struct rd *r)
{
	static int live[MAX_ENTRIES];
	int n = 0, i;

	for (i = 0; i < p->n_en; i++)
		if (p->sc[p->en[i].scope].valid && !p->en[i].detached && !p->en[i].hidden)
			live[n++] = i;
	return n ? live[rd_u8(r) % (unsigned)n] : -1;
}

/* ---- operations ---------------------------------------------------------- */

int op_open_scope(struct prog *p, int parent)
{
	struct pscope *s;
	bool refuse = false;
	int ret;

	if (p->n_sc >= PROG_SCOPES)
		return -1;
	/* Refused below any scope whose unwind is coming, as pushes are. */
	refuse = parent >= 0 ? unwind_owns(p, parent) : p->shutting_down;
	s = &p->sc[p->n_sc];
	memset(s, 0, sizeof(*s));
	text_scope_name(p, p->n_sc, s->name, sizeof(s->name));
	s->parent = parent;
	s->depth = parent >= 0 ? p->sc[parent].depth + 1 : 1;
	s->last_unwind = INT_MAX;
	ret = rsc_scope_open(p->loop, parent >= 0 ? p->sc[parent].h : NULL, s->name, &s->h);
	say(p, "  op %d: scope_open %s under %s -> %d\n", p->op_index, s->name,
	    parent >= 0 ? p->sc[parent].name : "(top)", ret);
	if (ret == -ESHUTDOWN && refuse)
		return -1;
	if (ret < 0 || refuse) {
		violation(p, "rsc_scope_open under '%s': %s, expected %s",
			  parent >= 0 ? p->sc[parent].name : "(top)", rsc_err_name(ret),
			  refuse ? "ESHUTDOWN" : "success");
		return -1;
	}
	s->valid = true;
	return p->n_sc++;
}

/* Common tail of every push: refused when the scope, or one above it, is closing. */
struct pentry *push_begin(struct prog *p, int s, enum ekind kind)
{
	struct pentry *e;

	if (p->n_en >= PROG_ENTRIES)
		return NULL;
	e = &p->en[p->n_en];
	memset(e, 0, sizeof(*e));
	e->scope = s;
	e->kind = kind;
	e->seq = p->sc[s].n_pushed;
	return e;
}

void push_end(struct prog *p, struct pentry *e, int ret, int expect_err, const char *what)
{
	int s = e->scope;
	bool refuse = push_refused(p, s);

	say(p, "  op %d: %s in %s -> %d\n", p->op_index, what, p->sc[s].name, ret);
	if (ret == 0 && !refuse && !expect_err) {
		p->sc[s].n_pushed++;
		p->n_en++;
		return;
	}
	if (ret == -ESHUTDOWN && refuse)
		return;
	if (ret < 0 && ret == -expect_err && !refuse)
		return;
	if (ret == -EBUSY && !refuse) {
		/* The SQ was full and could not be flushed (an injected EINTR). */
		if (rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) > 0)
			return;
	}
	violation(p, "%s in '%s': %s, expected %s", what, p->sc[s].name,
		  rsc_err_name(ret),
		  refuse ? "ESHUTDOWN" : expect_err ? rsc_err_name(-expect_err) : "success");
}

void op_file(struct prog *p, int s, struct rd *r)
{
	struct pentry *e = push_begin(p, s, K_FILE);
	unsigned b = rd_u8(r);
	bool missing = (b & 7) == 7, fsync = (b & 8) != 0;
	unsigned k = (b >> 4) % (missing ? N_MISSING : N_FILES);
	int ret;

	if (!e)
		return;
	snprintf(e->path, sizeof(e->path), "%s/%c%u", p->env->dir, missing ? 'm' : 'f', k);
	e->fd_kind = true;
	e->name = "file";
	e->multi_release = fsync;
	e->ordered = fsync; /* fsync, then close: ordered (DESIGN 2.3) */
	ret = rsc_open(p->sc[s].h, AT_FDCWD, e->path, fsync ? O_WRONLY : O_RDONLY, 0,
		       fsync ? RSC_FSYNC_ON_RELEASE : 0, &e->h);
	push_end(p, e, ret, 0, fsync ? "rsc_open(fsync)" : "rsc_open");
}

static void op_socket_of_type(struct prog *p, int s, int type)
{
	struct pentry *e = push_begin(p, s, K_SOCKET);
	int ret;

	if (!e || !p->env->have_socket)
		return;
	e->fd_kind = true;
	e->name = "socket";
	ret = rsc_socket(p->sc[s].h, AF_UNIX, type, 0, 0, &e->h);
	push_end(p, e, ret, 0, "rsc_socket");
}

/* Both ends in one entry: open and close-on-exec once entered (checked then), closed by its release. */
static void op_pipe(struct prog *p, int s)
{
	struct pentry *e = push_begin(p, s, K_PIPE);
	int ret;

	if (!e)
		return;
	e->fd_kind = true; /* its value is the read end */
	e->multi_release = true; /* two closes: the write end, then the read end */
	e->name = "pipe";
	ret = rsc_pipe(p->sc[s].h, 0, &e->h);
	push_end(p, e, ret, 0, "rsc_pipe");
	if (ret == 0)
		g_st->pipes++;
}

static void op_socket(struct prog *p, int s, struct rd *r)
{
	unsigned b = rd_u8(r);

	if (p->pipes && (b & 2))
		op_pipe(p, s);
	else
		op_socket_of_type(p, s, b & 1 ? SOCK_DGRAM : SOCK_STREAM);
}

/* A tracked timeout on a custom entry once it entered: its exit waits for it to drain. */
static void timeout_on_enter(struct rsc_entry *h, int res, void *data)
{
	struct prog *p = g_prog;
	int i = (int)(intptr_t)data;

	if (res < 0 || !p || p->failed || p->en[i].h != h || p->en[i].detached)
		return;
	/*
	 * One only a release ends (io.c's long wait) when this turn of the loop
	 * cannot be waiting for it; else 2 ms, for a blocking run (or a blocking
	 * helper) that began before it must end.
	 */
	if (io_timeout_on(p, i, p->nowait_run ? 1 : 2, g_st) == 0)
		g_st->custom_io++;
}

/*
 * The byte picks the variant (b % 11) as it always did; the quotient picks
 * its exit's order (odd: RSC_MANAGER_UNORDERED) and, for one unordered entry
 * in two, a tracked timeout started once it entered, which an unwind that
 * starts meanwhile cancels and waits for.
 */
/*
 * The witness of a TW_LINK enter: an open of a file that exists, pushed
 * right after it (its SQE next in the SQ) into a new top-level scope, so
 * that nothing of the twisted entry's scope may cancel it.
 */
static void witness_open(struct prog *p, int w)
{
	struct pentry *e = push_begin(p, w, K_FILE);
	int ret;

	if (!e)
		return;
	snprintf(e->path, sizeof(e->path), "%s/f0", p->env->dir);
	e->fd_kind = true;
	e->name = "file";
	e->witness = true;
	ret = rsc_open(p->sc[w].h, AT_FDCWD, e->path, O_RDONLY, 0, 0, &e->h);
	push_end(p, e, ret, 0, "rsc_open (witness)");
	if (p->n_en && &p->en[p->n_en - 1] == e)
		g_st->hk_witnesses++;
}

/*
 * A witness's open cancelled: only its early release, a close, failure or
 * deadline of its scope or one above it, a failed acquire there (it cancels
 * the subtree's acquires), the loop's shutdown or a fault may do that; a
 * link flag left on a hook's last SQE may not.
 */
static bool witness_cancel_ok(const struct prog *p, int i)
{
	int s, j;

	if (p->en[i].early || p->shutting_down ||
	    rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) > 0)
		return true;
	for (s = p->en[i].scope; s >= 0; s = p->sc[s].parent) {
		if (p->sc[s].close_req || p->sc[s].fail_req || p->sc[s].n_closed || !p->sc[s].valid ||
		    rsc_scope_state(p->sc[s].h) != RSC_SCOPE_OPEN)
			return true;
		for (j = 0; j < p->n_en; j++)
			if (j != i && p->en[j].scope == s && p->en[j].n_failed)
				return true;
	}
	return false;
}

/* A TW_SLOW enter still in flight: only a cancel ends it in time, so no blocking wait. */
static bool slow_entering(const struct prog *p, int i)
{
	const struct pentry *e = &p->en[i];

	return e->twist == TW_SLOW && e->slow_t0 > 0 && !e->n_entered && !e->n_failed;
}

static bool hk_before_wait(const struct prog *p)
{
	int i;

	for (i = 0; i < p->n_en; i++)
		if (slow_entering(p, i))
			return true;
	return false;
}

/* Kind "hooks": the quotient's top picks a twist (model.h), or none. */
static const enum twist twists[6] = { TW_NONE, TW_SLOW, TW_LINK, TW_SKIP, TW_DL_ENTER, TW_DL_EXIT };

static void op_custom(struct prog *p, int s, struct rd *r)
{
	struct pentry *e = push_begin(p, s, K_CUSTOM);
	unsigned b = rd_u8(r), vi = b % (N_VARIANTS + 1), q = b / (N_VARIANTS + 1);
	int i = p->n_en, ret, w = -1;

	if (!e)
		return;
	if (vi == N_VARIANTS) {
		/* Both halves are required: refused before anything is acquired. */
		ret = rsc_push(p->sc[s].h, &half_manager, e, &e->h);
		say(p, "  op %d: push half manager in %s -> %d\n", p->op_index, p->sc[s].name, ret);
		if (ret != -EINVAL)
			violation(p, "rsc_push of a manager without exit: %s, expected EINVAL",
				  rsc_err_name(ret));
		return;
	}
	e->unordered = q & 1;
	e->ordered = !e->unordered;
	e->v = e->unordered ? &unordered_variants[vi] : &variants[vi];
	e->name = e->v->mgr.name;
	e->fd_kind = e->v->enter == TE_OPEN;
	e->multi_release = e->v->enter == TE_OPEN && e->v->exit == TX_BADF;
	snprintf(e->path, sizeof(e->path), "%s/%c%u", p->env->dir,
		 (b >> 4) == 15 ? 'm' : 'f', (b >> 4) % N_FILES % N_MISSING);
	if (p->env->kinds & KIND_HOOKS)
		e->twist = twists[(q >> 2) % 6];
	e->dl_ms = 1 + (b >> 4) % 4;
	e->dl_move_on = (b >> 6) & 1;
	if (e->twist == TW_LINK && !push_refused(p, s)) {
		w = op_open_scope(p, -1); /* before the push: no SQE of its own */
		e = &p->en[i];
	}
	ret = rsc_push(p->sc[s].h, &e->v->mgr, e, &e->h);
	push_end(p, e, ret, e->v->enter == TE_FAIL ? HOOK_ERRNO : 0, e->v->mgr.name);
	if (p->n_en > i) {
		g_st->hk_slow += e->twist == TW_SLOW;
		g_st->hk_link += e->twist == TW_LINK;
		g_st->hk_skip += e->twist == TW_SKIP;
		if (w >= 0)
			witness_open(p, w);
	}
	if (p->n_en > i && e->unordered) {
		g_st->unordered++;
		if (q & 2 && rsc_entry_state(e->h) == RSC_ENTERING &&
		    rsc_entry_on_enter(e->h, timeout_on_enter, (void *)(intptr_t)i) < 0)
			violation(p, "rsc_entry_on_enter of an entering custom entry failed");
	}
}

/* ---- addresses for rsc_connect and rsc_listen ------------------------------ */

#define ADDR_ROOM 160 /* past sockaddr_storage, for lengths that are too long */
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

/* The documented rule (man 3 rsc_connect), written out again on purpose. */
static bool addr_valid(int family, unsigned len, bool connecting)
{
	if (len < sizeof(sa_family_t))
		return false;
	switch (family) {
	case AF_INET:
		return len >= sizeof(struct sockaddr_in) && len <= sizeof(struct sockaddr_storage);
	case AF_INET6:
		return len >= sizeof(struct sockaddr_in6) && len <= sizeof(struct sockaddr_storage);
	case AF_UNIX:
		return len <= sizeof(struct sockaddr_un) &&
		       (!connecting || len > offsetof(struct sockaddr_un, sun_path));
	default:
		return false;
	}
}

/* A socket path of the program's directory; @full: 108 bytes, no NUL fits. */
static void unix_path(const struct prog_env *env, unsigned k, bool full,
		      char out[SUN_PATH_MAX + 1])
{
	int n = snprintf(out, SUN_PATH_MAX + 1, "%s/u%u", env->dir, k);

	if (full && n >= 0 && (size_t)n < SUN_PATH_MAX) {
		memset(out + n, 'z', SUN_PATH_MAX - (size_t)n);
		out[SUN_PATH_MAX] = '\0';
	}
}

/*
 * rsc_connect or rsc_listen on an address of any family and length: the
 * documented -EINVAL for a length the family does not allow (the address is
 * in a heap block of exactly that length, so ASan sees any read past it),
 * else a socket entry and a connect/listen entry, modelled like the rest.
 */
static void op_address(struct prog *p, int s, unsigned b, struct rd *r,
		       struct prog_stats *st)
{
	static const int odd_families[] = { AF_UNSPEC, AF_PACKET, AF_NETLINK, 255 };
	unsigned x = rd_u8(r), y = rd_u8(r), k = (b >> 2) & 3;
	unsigned timeout_ms = 2 + 4 * ((b >> 4) & 3), backlog = b >> 6;
	unsigned exact, min, max, len;
	bool listening = b & 2;
	unsigned char raw[ADDR_ROOM];
	struct sockaddr_in *in = (struct sockaddr_in *)raw;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)raw;
	struct sockaddr_un *un = (struct sockaddr_un *)raw;
	const size_t off = offsetof(struct sockaddr_un, sun_path);
	char path[SUN_PATH_MAX + 1], name[40];
	int family;

	if (!p->env->have_socket || p->n_en + 2 > PROG_ENTRIES)
		return;
	memset(raw, 0, sizeof(raw));
	min = off;
	max = sizeof(struct sockaddr_un);
	switch (x % 8) {
	case 0:
		in->sin_family = family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		in->sin_port = htons(listening ? 0 : 1); /* port 1: refused at once */
		exact = min = sizeof(*in);
		max = sizeof(struct sockaddr_storage);
		break;
	case 1:
		in6->sin6_family = family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		in6->sin6_port = htons(listening ? 0 : 1);
		exact = min = sizeof(*in6);
		max = sizeof(struct sockaddr_storage);
		break;
	case 2: /* a path, with or without its NUL within addrlen */
	case 6: /* 108 bytes: no room for a NUL at all */
		un->sun_family = family = AF_UNIX;
		unix_path(p->env, k, x % 8 == 6, path);
		memcpy(un->sun_path, path, strlen(path));
		exact = (unsigned)(off + strlen(path) + ((x >> 3) & 1 && x % 8 == 2));
		break;
	case 3: /* abstract: every byte up to addrlen is the name */
		un->sun_family = family = AF_UNIX;
		snprintf(name, sizeof(name), "rsc-soak\x01%d\n%u", (int)getpid(), k);
		memcpy(un->sun_path + 1, name, strlen(name));
		exact = (unsigned)(off + 1 + strlen(name));
		break;
	case 4: /* unnamed: only the family */
		un->sun_family = family = AF_UNIX;
		exact = (unsigned)off;
		break;
	case 5: /* a path whose directory does not exist */
		un->sun_family = family = AF_UNIX;
		if (snprintf(path, sizeof(path), "%s/nodir/u%u", p->env->dir, k) >= (int)sizeof(path))
			return; /* a TMPDIR too long for sun_path */
		memcpy(un->sun_path, path, strlen(path));
		exact = (unsigned)(off + strlen(path));
		break;
	default:
		family = odd_families[(x >> 3) % 4];
		memcpy(raw, &(sa_family_t){ (sa_family_t)family }, sizeof(sa_family_t));
		exact = min = max = sizeof(struct sockaddr_in);
		break;
	}
	switch (y % 4) {
	case 0:
		len = exact;
		break;
	case 1: /* longer, within what the family allows (zeros after it) */
		len = exact + (y >> 2) % (max - exact + 1);
		break;
	case 2: /* shorter than the family needs */
		len = min ? (y >> 2) % min : 0;
		break;
	default: /* longer than the family allows */
		len = max + 1 + (y >> 2) % 16;
		break;
	}
	/* A path's prefix would name a file outside the program's directory. */
	if (family == AF_UNIX && un->sun_path[0] && len > off && len < exact)
		len = (unsigned)(off - 1);
	net_pair(p, s, listening, raw, len, timeout_ms, (int)backlog, st);
}

/*
 * The pushes of op_address, for an address already made (the accept kind's
 * listeners too): the documented EINVAL for a length its family does not
 * allow, else a socket entry and a connect/listen entry, modelled like the
 * rest. Returns the index of the connect/listen entry, or -1.
 */
int net_pair(struct prog *p, int s, bool listening, const void *raw, unsigned len,
	     unsigned timeout_ms, int backlog, struct prog_stats *st)
{
	const size_t off = offsetof(struct sockaddr_un, sun_path);
	sa_family_t fam;
	struct pentry *sock, *e;
	struct sockaddr *a;
	bool refuse, valid, busy;
	const char *d;
	int family, ret;

	if (p->n_en + 2 > PROG_ENTRIES)
		return -1;
	memcpy(&fam, raw, sizeof(fam));
	family = fam;
	refuse = push_refused(p, s);
	valid = addr_valid(family, len, !listening);
	/* One pair's socket at a time waits for its handle in a scope: a turn of
	 * the loop usually brings its first event. */
	if (valid && !refuse && waits_for_handle(p, s)) {
		op_run(p, 0, NULL);
		if (!p->sc[s].valid || waits_for_handle(p, s))
			return -1;
		refuse = push_refused(p, s);
	}
	sock = &p->en[p->n_en];
	e = &p->en[p->n_en + 1];
	memset(sock, 0, 2 * sizeof(*sock));
	sock->scope = e->scope = s;
	sock->kind = K_SOCKET;
	sock->seq = p->sc[s].n_pushed;
	sock->name = "socket";
	sock->fd_kind = sock->hidden = true;
	e->kind = K_NET;
	e->seq = p->sc[s].n_pushed + 1;
	e->name = listening ? "listen" : "connect";
	e->fd_kind = true; /* its value is its socket's descriptor */
	a = malloc(len ? len : 1);
	if (!a)
		abort();
	memcpy(a, raw, len);
	/*
	 * A connect that finds an AF_UNIX backlog full blocks in an io-wq worker
	 * until its deadline or a cancel ends it (it once hung: tests/README.md).
	 * Unless asked for, AF_UNIX backlogs never fill.
	 */
	if (family == AF_UNIX && !p->env->unix_backlog_full)
		backlog = 4096;
	if (listening)
		ret = rsc_listen(p->sc[s].h, a, len, backlog, 0, &e->h);
	else
		ret = rsc_connect(p->sc[s].h, a, len, timeout_ms, 0, &e->h);
	free(a); /* the library copied it */
	st->addr_pushes++;
	say(p, "  op %d: %s family %d addrlen %u (%s) in %s -> %d\n", p->op_index,
	    e->name, family, len, valid ? "valid" : "invalid", p->sc[s].name, ret);
	busy = ret == -EBUSY && rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) > 0;
	if (refuse) {
		if (ret != -ESHUTDOWN)
			violation(p, "rsc_%s in closing '%s': %s, expected ESHUTDOWN", e->name,
				  p->sc[s].name, rsc_err_name(ret));
		return -1;
	}
	if (!valid) {
		if (ret != -EINVAL || e->h)
			violation(p, "rsc_%s, family %d, addrlen %u: %s, expected EINVAL", e->name,
				  family, len, rsc_err_name(ret));
		else if (!strstr(rsc_last_error(), listening ? "rsc_listen" : "rsc_connect"))
			violation(p, "rsc_%s: EINVAL without its message: '%s'", e->name,
				  rsc_last_error());
		st->addr_refused++;
		return -1;
	}
	if (busy) {
		/* The socket may have been pushed, and then released at once. */
		sock->maybe_absent = sock->early = true;
		p->sc[s].n_pushed++;
		p->n_en++;
		return -1;
	}
	if (ret != 0 || !e->h) {
		violation(p, "rsc_%s, family %d, addrlen %u: %s (%s), expected success", e->name,
			  family, len, rsc_err_name(ret), rsc_last_error());
		return -1;
	}
	p->sc[s].n_pushed += 2;
	p->n_en += 2;
	ret = p->n_en - 1;
	/* A Unix address's detail is its bytes as they are, as a path's (an abstract
	 * name's NULs shown as '@'): each output escapes it once (bug 94). */
	if (family == AF_UNIX && len > off) {
		const unsigned char *path = (const unsigned char *)raw + off;
		size_t n = len - off, k = 0, i;
		char want[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];

		if (path[0] == '\0') {
			want[k++] = '@';
			for (i = 1; i < n; i++)
				want[k++] = path[i] ? (char)path[i] : '@';
		} else {
			for (i = 0; i < n && path[i]; i++)
				want[k++] = (char)path[i];
		}
		want[k] = '\0';
		d = rsc_entry_detail(e->h);
		if (strcmp(d, want))
			violation(p, "rsc_%s: detail '%s', not the address's bytes '%s'", e->name, d, want);
	}
	if (family == AF_UNIX && len == off && strcmp(rsc_entry_detail(e->h), "(unnamed)"))
		violation(p, "rsc_listen, unnamed: detail '%s'", rsc_entry_detail(e->h));
	return ret;
}

/* Its scope, or one above it, unwinds or is closing: that unwind owns its entries. */
bool unwind_owns(const struct prog *p, int s)
{
	if (p->shutting_down)
		return true; /* a post run by rsc_loop_shutdown: the root unwinds */
	for (; s >= 0; s = p->sc[s].parent)
		if (p->sc[s].close_req || p->sc[s].fail_req ||
		    rsc_scope_state(p->sc[s].h) != RSC_SCOPE_OPEN)
			return true;
	return false;
}

void op_release(struct prog *p, int i, struct rd *r)
{
	struct pentry *e = &p->en[i];
	bool with_cb = rd_u8(r) & 1;
	int state = rsc_entry_state(e->h), ret;
	enum own_verdict owner = e->early || state == RSC_FAILED || state == RSC_EXITING ||
					 state == RSC_EXITED ? OWN_YES : own_owns_release(p, e->scope);

	p->releasing = e; /* its exit runs inside: an early one */
	ret = rsc_entry_release(e->h, with_cb ? release_cb : NULL, e);
	p->releasing = NULL;
	say(p, "  op %d: release entry %d of %s (%s, state %d) -> %d\n", p->op_index,
	    e->seq, p->sc[e->scope].name, with_cb ? "cb" : "no cb", state, ret);
	if (owner == OWN_YES || (owner == OWN_EITHER && ret == -EALREADY)) {
		if (ret != -EALREADY)
			violation(p, "rsc_entry_release of a released or failed entry: %s, expected EALREADY",
				  rsc_err_name(ret));
		return;
	}
	if (ret != 0) {
		violation(p, "rsc_entry_release of entry %d (state %d): %s", e->seq, state,
			  rsc_err_name(ret));
		return;
	}
	e->early = true;
	e->early_cb = with_cb;
}

void op_close(struct prog *p, int s)
{
	bool again = p->sc[s].close_req;
	/* A parent's unwind may have claimed it already: -EALREADY then. */
	bool maybe = ancestor_closing(p, s);
	int ret;

	ret = rsc_scope_close(p->sc[s].h, scope_close_cb, close_data(p, s));
	say(p, "  op %d: scope_close %s -> %d\n", p->op_index, p->sc[s].name, ret);
	if (again ? ret != -EALREADY : (ret != 0 && !(maybe && ret == -EALREADY)))
		violation(p, "rsc_scope_close('%s'): %s", p->sc[s].name, rsc_err_name(ret));
	if (ret == 0)
		p->sc[s].close_req = true;
}

static void op_close_wait(struct prog *p, int s)
{
	struct rsc_error *err = NULL;
	char buf[CHAIN_MAX];
	int status;

	if (p->shared) {
		/* It would have to reap the application's ring: refused, nothing done. */
		status = rsc_scope_close_wait(p->sc[s].h, &err);
		say(p, "  op %d: close_wait %s on a shared ring -> %d\n", p->op_index,
		    p->sc[s].name, status);
		if (status != -EOPNOTSUPP || err)
			violation(p, "rsc_scope_close_wait on the application's ring: %s, expected EOPNOTSUPP",
				  rsc_err_name(status));
		rsc_error_free(err);
		if (!p->sc[s].close_req)
			op_close(p, s);
		return;
	}
	if (p->sc[s].close_req) {
		status = rsc_scope_close_wait(p->sc[s].h, &err);
		say(p, "  op %d: close_wait %s again -> %d\n", p->op_index, p->sc[s].name, status);
		if (status != -EALREADY || err)
			violation(p, "rsc_scope_close_wait of a closing scope: %s", rsc_err_name(status));
		rsc_error_free(err);
		return;
	}
	if (ancestor_closing(p, s)) {
		op_close(p, s); /* its answer is unambiguous */
		return;
	}
	p->sc[s].close_req = true;
	status = rsc_scope_close_wait(p->sc[s].h, &err);
	say(p, "  op %d: close_wait %s -> %d\n", p->op_index, p->sc[s].name, status);
	buf[0] = '\0';
	if (err)
		rsc_error_format(err, buf, sizeof(buf));
	if (p->sc[s].n_closed != 1)
		violation(p, "rsc_scope_close_wait('%s') returned before the scope unwound",
			  p->sc[s].name);
	else if (status != p->sc[s].closed_res || strcmp(buf, p->sc[s].chain))
		violation(p, "rsc_scope_close_wait('%s'): %s '%s', SCOPE_CLOSED said %s '%s'",
			  p->sc[s].name, rsc_err_name(status), buf,
			  rsc_err_name(p->sc[s].closed_res), p->sc[s].chain);
	rsc_error_free(err);
	invalidate_tree(p, s);
}

void op_run(struct prog *p, unsigned b, struct prog_stats *st)
{
	static const enum rsc_run_mode modes[] = { RSC_RUN_NOWAIT, RSC_RUN_ONCE,
						   RSC_RUN_DEFAULT };
	enum rsc_run_mode m = modes[b % 3];
	int ret;

	/* A blocking run must end: I/O that only a release would end keeps it NOWAIT. */
	if (m != RSC_RUN_NOWAIT && (io_before_wait(p, st) | own_before_wait(p) | acc_before_wait(p) |
				    hk_before_wait(p)))
		m = RSC_RUN_NOWAIT;
	p->nowait_run = m == RSC_RUN_NOWAIT;
	ret = sh_run(p, p->loop, m);
	p->nowait_run = false;

	say(p, "  op %d: run %s -> %d\n", p->op_index,
	    m == RSC_RUN_NOWAIT ? "NOWAIT" : m == RSC_RUN_ONCE ? "ONCE" : "DEFAULT", ret);
	if (ret < 0)
		violation(p, "rsc_loop_run: %s (%s)", rsc_err_name(ret), rsc_last_error());
	else if (m == RSC_RUN_DEFAULT && ret != 0)
		violation(p, "rsc_loop_run(DEFAULT) returned %d: still alive", ret);
}

static void op_entry_wait(struct prog *p, int i)
{
	struct pentry *e = &p->en[i];
	bool closing = self_or_ancestor_close_req(p, e->scope);
	int ret;

	if (slow_entering(p, i) && !closing && !p->shared)
		return; /* it would wait its 10 s timeout out */
	ret = rsc_entry_wait(e->h);

	say(p, "  op %d: entry_wait %d of %s -> %d\n", p->op_index, e->seq,
	    p->sc[e->scope].name, ret);
	if (p->shared) {
		if (ret != -EOPNOTSUPP)
			violation(p, "rsc_entry_wait on the application's ring: %s, expected EOPNOTSUPP",
				  rsc_err_name(ret));
		return;
	}
	if (closing) {
		if (ret != -ESHUTDOWN)
			violation(p, "rsc_entry_wait under a closing scope: %s, expected ESHUTDOWN",
				  rsc_err_name(ret));
		return;
	}
	if (rsc_entry_state(e->h) == RSC_ENTERING)
		violation(p, "rsc_entry_wait returned %d with the entry still entering", ret);
	else if (rsc_entry_state(e->h) == RSC_EXITING || rsc_entry_state(e->h) == RSC_EXITED) {
		if (ret != -EBADF) /* its release has started: the number is not the caller's */
			violation(p, "rsc_entry_wait on an entry whose release has started: %s, expected EBADF",
				  rsc_err_name(ret));
	} else if (ret != (e->kind == K_DIRECT || e->chain ? rsc_entry_slot(e->h) : rsc_entry_fd(e->h)))
		violation(p, "rsc_entry_wait returned %d, rsc_entry_%s says %d", ret,
			  e->kind == K_DIRECT || e->chain ? "slot" : "fd",
			  e->kind == K_DIRECT || e->chain ? rsc_entry_slot(e->h) : rsc_entry_fd(e->h));
}

/* ---- stale handles -------------------------------------------------------- */

/* Hooks and callbacks a stale call must never reach. */
static void stale_reached(const char *what)
{
	if (g_prog)
		violation(g_prog, "a call with a stale handle reached its %s", what);
}

static int stale_enter(struct rsc_entry *e, void *arg)
{
	(void)e;
	(void)arg;
	stale_reached("enter hook");
	return -HOOK_ERRNO;
}

static int stale_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	(void)e;
	(void)pending;
	(void)arg;
	stale_reached("exit hook");
	return 0;
}

static void stale_io_cb(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)res;
	(void)buf;
	(void)data;
	stale_reached("I/O callback");
}

static void stale_entry_cb(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)res;
	(void)data;
	stale_reached("entry callback");
}

static void stale_accept_cb(struct rsc_entry *l, int res, struct rsc_scope *cs,
			    struct rsc_entry *c, void *data)
{
	(void)l;
	(void)res;
	(void)cs;
	(void)c;
	(void)data;
	stale_reached("accept callback");
}

static const struct rsc_manager stale_manager = { sizeof(struct rsc_manager), 0, "stale",
						  stale_enter, stale_exit };

#define N_STALE_SCOPE 30
#define N_STALE_ENTRY 31

/*
 * Every public call of include/ringscope.h that takes a scope handle, with a
 * stale one (DESIGN 7): -ESTALE, or NULL and "" for the getters, and no
 * callback ever; @live and @live_e (may be NULL) are live objects the moves
 * name beside it.
 */
static int stale_scope_calls(struct prog *p, struct rsc_scope *st, struct rsc_scope *live,
			     struct rsc_entry *live_e, int want, int ret[N_STALE_SCOPE])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(1),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct rsc_scope *x = (struct rsc_scope *)&a;
	struct rsc_entry *e = (struct rsc_entry *)&a;
	struct rsc_chain *ch = (struct rsc_chain *)&a;
	unsigned u;
	int n = 0, efd = eventfd(0, EFD_CLOEXEC);

	ret[n++] = rsc_scope_open(p->loop, st, "x", &x);
	ret[n++] = x ? -EFAULT : want; /* *scopep left NULL */
	ret[n++] = rsc_scope_close(st, NULL, NULL);
	ret[n++] = rsc_scope_close_wait(st, NULL);
	ret[n++] = rsc_scope_close_graceful(st, 0, NULL, NULL);
	ret[n++] = rsc_scope_close_stats(st, &u, &u, &u);
	ret[n++] = rsc_scope_fail(st, -EIO, NULL);
	ret[n++] = rsc_scope_move(st, NULL);
	ret[n++] = live ? rsc_scope_move(live, st) : want;
	ret[n++] = live_e ? rsc_entry_move(live_e, st) : want;
	ret[n++] = rsc_scope_on_close(st, NULL, NULL);
	ret[n++] = rsc_scope_set_deadline(st, 10, 0);
	ret[n++] = rsc_scope_set_data(st, &u);
	ret[n++] = rsc_scope_data(st) || *rsc_scope_name(st) || rsc_scope_error(st) ? -EFAULT :
										       want;
	ret[n++] = rsc_scope_state(st);
	ret[n++] = rsc_push(st, &stale_manager, NULL, &e);
	ret[n++] = e ? -EFAULT : want; /* *entryp left NULL */
	ret[n++] = rsc_defer(st, stale_exit, NULL, NULL);
	ret[n++] = rsc_open(st, AT_FDCWD, "/dev/null", O_RDONLY, 0, 0, NULL);
	ret[n++] = rsc_socket(st, AF_UNIX, SOCK_STREAM, 0, 0, NULL);
	ret[n++] = rsc_connect(st, (struct sockaddr *)&a, sizeof(a), 0, 0, NULL);
	ret[n++] = rsc_listen(st, (struct sockaddr *)&a, sizeof(a), 1, 0, NULL);
	ret[n++] = efd >= 0 ? rsc_adopt(st, efd, 0, NULL) : want;
	ret[n++] = efd >= 0 && fcntl(efd, F_GETFD) != FD_CLOEXEC ? -EFAULT : want;
	ret[n++] = rsc_timer(st, 10, stale_io_cb, NULL, NULL);
	ret[n++] = rsc_pipe(st, 0, NULL);
	ret[n++] = rsc_chain_new(st, &ch);
	ret[n++] = ch ? -EFAULT : want; /* *chainp left NULL */
	ret[n++] = rsc_inbox(st, stale_accept_cb, NULL, NULL);
	ret[n++] = rsc_scope_close_wait(st, NULL);
	if (efd >= 0)
		close(efd);
	return n;
}

/* The same for an entry handle. */
static int stale_entry_calls(struct rsc_entry *st, struct rsc_scope *live, int want,
			     int ret[N_STALE_ENTRY])
{
	struct io_uring_sqe *sqe;
	unsigned long long addr = 0;
	char buf[8];
	int ends[2] = { -1, -1 }, n = 0;

	ret[n++] = rsc_entry_get_sqes(st, 1, &sqe);
	ret[n++] = rsc_accept(st, 0, stale_accept_cb, NULL);
	ret[n++] = rsc_entry_on_enter(st, stale_entry_cb, NULL);
	ret[n++] = rsc_entry_release(st, stale_entry_cb, NULL);
	ret[n++] = rsc_entry_release_wait(st, NULL);
	ret[n++] = rsc_entry_wait(st);
	ret[n++] = rsc_entry_detach(st);
	ret[n++] = live ? rsc_entry_move(st, live) : want;
	ret[n++] = rsc_entry_set_data(st, buf);
	ret[n++] = rsc_entry_data(st) || *rsc_entry_name(st) || *rsc_entry_detail(st) ||
			   rsc_entry_scope(st) || rsc_entry_arg(st) ? -EFAULT : want;
	ret[n++] = rsc_entry_fd(st);
	ret[n++] = rsc_entry_state(st);
	ret[n++] = rsc_read(st, buf, sizeof(buf), 0, stale_io_cb, NULL);
	ret[n++] = rsc_write(st, buf, sizeof(buf), 0, stale_io_cb, NULL);
	ret[n++] = rsc_recv(st, buf, sizeof(buf), 0, stale_io_cb, NULL);
	ret[n++] = rsc_send(st, buf, sizeof(buf), 0, stale_io_cb, NULL);
	ret[n++] = rsc_timeout(st, 10, stale_io_cb, NULL);
	ret[n++] = rsc_recv_multishot(st, 0, stale_io_cb, NULL);
	ret[n++] = rsc_entry_io_count(st);
	ret[n++] = rsc_entry_slot(st);
	ret[n++] = rsc_entry_install(st, 0, stale_entry_cb, NULL);
	ret[n++] = rsc_pipe_ends(st, ends);
	ret[n++] = ends[0] != -1 || ends[1] != -1 ? -EFAULT : want;
	ret[n++] = rsc_inbox_address(st, &addr);
	ret[n++] = addr ? -EFAULT : want;
	ret[n++] = rsc_entry_hand_over(st, 1, stale_entry_cb, NULL);
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		ret[n++] = rsc_entry_sockname(st, (struct sockaddr *)&ss, &len);
		ret[n++] = rsc_entry_peername(st, (struct sockaddr *)&ss, &len);
	}
	ret[n++] = rsc_entry_fd(st);
	ret[n++] = rsc_entry_state(st);
	ret[n++] = rsc_entry_detach(st);
	return n;
}

/* A live scope and entry for the moves beside a stale handle, or NULL. */
static struct rsc_scope *any_live_scope(const struct prog *p)
{
	int i;

	for (i = p->n_sc - 1; i >= 0; i--)
		if (p->sc[i].valid)
			return p->sc[i].h;
	return NULL;
}

/*
 * The kind bits of a handle (src/internal.h, RSC__K_SCOPE | RSC__K_ENTRY): a
 * live scope's handle with them swapped has an entry handle's shape and
 * names the scope's slot and generation, and the reverse. Every call refuses
 * it as a handle of another kind (-EINVAL, man 7 ringscope HANDLES), never
 * acting on the live object as the other kind (bug 56 of tests/README.md).
 */
#define HANDLE_KIND_BITS ((uintptr_t)0x60000000u)

static void op_swapped_kind(struct prog *p)
{
	int ret[N_STALE_SCOPE > N_STALE_ENTRY ? N_STALE_SCOPE : N_STALE_ENTRY], i, k;
	struct rsc_scope *live = any_live_scope(p);
	struct rsc_entry *live_e = NULL;

	for (i = p->n_en - 1; i >= 0 && !live_e; i--)
		if (p->sc[p->en[i].scope].valid && !p->en[i].detached && p->en[i].h && !p->en[i].hidden)
			live_e = p->en[i].h;
	if (live) {
		k = stale_entry_calls((struct rsc_entry *)((uintptr_t)live ^ HANDLE_KIND_BITS), NULL,
				      -EINVAL, ret);
		for (i = 0; i < k; i++)
			if (ret[i] != -EINVAL)
				violation(p, "a live scope's handle as an entry: call %d returned %s, expected EINVAL",
					  i, rsc_err_name(ret[i]));
	}
	if (live_e) {
		k = stale_scope_calls(p, (struct rsc_scope *)((uintptr_t)live_e ^ HANDLE_KIND_BITS),
				      live, NULL, -EINVAL, ret);
		for (i = 0; i < k; i++)
			if (ret[i] != -EINVAL)
				violation(p, "a live entry's handle as a scope: call %d returned %s, expected EINVAL",
					  i, rsc_err_name(ret[i]));
	}
}

/*
 * Handles of freed scopes and detached entries: every call that takes one is
 * refused, and nothing else moves (releases counted per entry, the
 * descriptor count, the moves' live objects would show it).
 */
static void op_stale(struct prog *p, struct rd *r)
{
	int dead[MAX_SCOPES + MAX_ENTRIES], n = 0, i, k, ret[N_STALE_SCOPE > N_STALE_ENTRY ? N_STALE_SCOPE : N_STALE_ENTRY];
	unsigned pick;

	op_swapped_kind(p);
	for (i = 0; i < p->n_sc; i++)
		if (!p->sc[i].valid)
			dead[n++] = i;
	for (i = 0; i < p->n_en; i++)
		/* A pair's hidden socket entry may never have been given a handle. */
		if ((!p->sc[p->en[i].scope].valid || p->en[i].detached) && p->en[i].h)
			dead[n++] = MAX_SCOPES + i;
	if (!n)
		return;
	pick = (unsigned)dead[rd_u8(r) % (unsigned)n];
	if (pick < MAX_SCOPES) {
		struct pscope *s = &p->sc[pick];
		/* A move of a live entry would be refused first while it enters. */
		struct rsc_entry *live_e = NULL;

		for (i = p->n_en - 1; i >= 0 && !live_e; i--)
			if (p->sc[p->en[i].scope].valid && !p->en[i].detached && p->en[i].h &&
			    !p->en[i].hidden && rsc_entry_state(p->en[i].h) == RSC_ENTERED &&
			    !p->en[i].early && !unwind_owns(p, p->en[i].scope))
				live_e = p->en[i].h;
		k = stale_scope_calls(p, s->h, any_live_scope(p), live_e, -ESTALE, ret);
		say(p, "  op %d: stale scope %s -> %d %d %d ...\n", p->op_index, s->name, ret[0],
		    ret[2], ret[3]);
		for (i = 0; i < k; i++)
			if (ret[i] != -ESTALE)
				violation(p, "stale scope '%s': call %d returned %s, expected ESTALE",
					  s->name, i, rsc_err_name(ret[i]));
	} else {
		struct pentry *e = &p->en[pick - MAX_SCOPES];

		k = stale_entry_calls(e->h, any_live_scope(p), -ESTALE, ret);
		say(p, "  op %d: stale entry %d -> %d %d %d ...\n", p->op_index, e->seq, ret[0],
		    ret[1], ret[2]);
		for (i = 0; i < k; i++)
			if (ret[i] != -ESTALE)
				violation(p, "stale entry %d ('%s'): call %d returned %s, expected ESTALE",
					  e->seq, e->name, i, rsc_err_name(ret[i]));
	}
}

/* A descriptor made elsewhere (an eventfd), owned by the scope from here. */
/* @fd adopted into @s as @e (from push_begin); closed again if refused. */
int adopt_fd(struct prog *p, struct pentry *e, int s, int fd, const char *what)
{
	int ret;

	e->fd_kind = true;
	e->adopted = true;
	e->name = "adopt";
	ret = rsc_adopt(p->sc[s].h, fd, 0, &e->h);
	if (ret < 0)
		close(fd); /* refused: still ours */
	push_end(p, e, ret, ret == -EEXIST && lw_number_still_held(p, fd) ? EEXIST : 0, what);
	return ret;
}

static bool op_adopt(struct prog *p, int s)
{
	struct pentry *e = push_begin(p, s, K_FILE);
	int fd, ret;

	if (!e)
		return false;
	fd = eventfd(0, 0);
	if (fd < 0)
		return false;
	ret = adopt_fd(p, e, s, fd, "rsc_adopt");
	return ret == 0;
}

/*
 * Under the full audit, leak on purpose on the number a detach just gave
 * back and the program closed: a plain open inside the program's open
 * scopes, kept to the end. The audit must report it (bug 57 of
 * tests/README.md: a detached number was spared for good, by number).
 */
static void plant_leak(struct prog *p, const struct pentry *e, int number)
{
	int ends[2];

	if (!p->audit_full || p->n_planted == (int)(sizeof(p->planted) / sizeof(p->planted[0])))
		return;
	/* Only a number the kernel made for an open in its own scope: that
	 * scope saw it appear. A snapshot records numbers, so an adopted or
	 * moved-in descriptor's number may have been open (as another file)
	 * when a scope opened, and none of them would call it new. */
	if (e->kind != K_FILE || e->adopted || e->moved)
		return;
	/* A pipe: a file of its own, never the detached one reopened (which no
	 * identity could tell from the descriptor the caller was given). */
	if (pipe2(ends, O_CLOEXEC) < 0)
		return;
	close(ends[1]);
	if (ends[0] != number) {
		close(ends[0]); /* a lower number was free: not the case being probed */
		return;
	}
	p->planted_seen[p->n_planted] = 0;
	p->planted[p->n_planted++] = ends[0];
}

/* A finding on a planted leak is the one wanted: counted, no violation. */
static bool planted_finding(struct prog *p, int fd)
{
	int k;

	for (k = 0; k < p->n_planted; k++)
		if (p->planted[k] == fd) {
			p->planted_seen[k]++;
			p->planted_uncleared++;
			return true;
		}
	return false;
}

/* The loop is gone: every planted leak was reported (unless an allocation
 * failed, which may drop a scope's verdict), then closed. */
static void planted_end(struct prog *p, struct prog_stats *st)
{
	int k;

	for (k = 0; k < p->n_planted; k++) {
		if (!p->planted_seen[k] && !p->fired[FC_ALLOC])
			violation(p, "leak planted on detached number %d was never reported",
				  p->planted[k]);
		close(p->planted[k]);
	}
	st->planted_leaks += (unsigned long long)p->n_planted;
	p->n_planted = 0;
}

/* Hand an entry's descriptor back: never released by the runtime after that. */
bool op_detach(struct prog *p, int i)
{
	struct pentry *e = &p->en[i];
	int st = rsc_entry_state(e->h), fd = rsc_entry_fd(e->h), ret, want;
	bool owned = e->early || st == RSC_FAILED || st == RSC_EXITING || st == RSC_EXITED ||
		     unwind_owns(p, e->scope);

	ret = rsc_entry_detach(e->h);
	say(p, "  op %d: detach entry %d of %s (state %d) -> %d\n", p->op_index, e->seq,
	    p->sc[e->scope].name, st, ret);
	if (owned)
		want = -EALREADY;
	else if (st == RSC_ENTERING || e->n_handing || io_busy(p, i) || own_busy(p, i) ||
		 acc_busy(p, i))
		want = -EBUSY; /* its acquire, a hand-over, or its I/O is in flight */
	else if (e->kind == K_CUSTOM || e->kind == K_DIRECT || e->kind == K_DEFER ||
		 e->kind == K_TIMER || e->kind == K_PIPE || e->chain)
		want = -EBADF; /* the manager's value, a slot, or two descriptors: no one descriptor */
	else
		want = fd;
	if (ret != want) {
		violation(p, "rsc_entry_detach of entry %d (state %d): %d, expected %d", e->seq,
			  st, ret, want);
		return false;
	}
	if (ret < 0)
		return false;
	if (fcntl(ret, F_GETFD) < 0)
		violation(p, "detached descriptor %d is not open", ret);
	e->detached = true;
	close(ret); /* ours now */
	plant_leak(p, e, ret);
	return true;
}

/* An early release from the entry's on-enter callback, with a release callback. */
static void release_on_enter(struct rsc_entry *h, int res, void *data)
{
	struct prog *p = g_prog;
	int i = (int)(intptr_t)data;
	uint8_t with_cb = 1;
	struct rd r = { &with_cb, 1, 0 };

	(void)res;
	if (p && !p->failed && p->en[i].h == h && !p->en[i].detached)
		op_release(p, i, &r);
}

/* The same from the entry's on-enter callback: the runtime must not touch it after. */
static void detach_on_enter(struct rsc_entry *h, int res, void *data)
{
	struct prog *p = g_prog;
	int i = (int)(intptr_t)data;

	(void)res;
	if (p && !p->failed && p->en[i].h == h && !p->en[i].detached)
		op_detach(p, i);
}

/* Close the window of the rules in force: what fired belongs to their class. */
void fault_window(struct prog *p)
{
	long long now = rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED);

	p->fired[p->cur_class] += now - p->fault_mark;
	p->fault_mark = now;
}

/* A malformed rule, alone or after a good one: -EINVAL, and the rules in force stay. */
static void op_bad_rule(struct prog *p, struct rd *r, struct prog_stats *st)
{
	static const char *const bad[] = {
		"openat:-1:EIO",	  "close:0:EIO",	"socket:1x:EMFILE",
		"openat:+1:EMFILE",	  "close: 1:EIO",	"openat:2147483648:EIO",
		"fsync:18446744073709551617:EIO", "openat::EIO", "openat:-0:EIO",
		"close:0x1:EIO",	  "submit:1:EIO",	"openat:1:ENOTANERRNO",
		"bogus:1:EIO",		  "openat:1",		"openat:1:EIO:",
		"close:99999999999999999999:EIO",
	};
	unsigned x = rd_u8(r);
	char spec[96];
	int ret;

	snprintf(spec, sizeof(spec), "%s%s", x & 0x80 ? "close:1:EIO," : "",
		 bad[x % (sizeof(bad) / sizeof(bad[0]))]);
	if (!p->env->have_faults)
		return;
	ret = prog_fault_set(p, spec);
	say(p, "  op %d: fault_set \"%s\" (malformed) -> %d\n", p->op_index, spec, ret);
	if (ret != -EINVAL)
		violation(p, "rsc_fault_set(\"%s\"): %s, expected EINVAL", spec, rsc_err_name(ret));
	else if (!strstr(rsc_last_error(), "bad rule"))
		violation(p, "rsc_fault_set(\"%s\"): message '%s'", spec, rsc_last_error());
	st->bad_rule_sets++;
}

/* The rules a missing: mask puts in front of every rule set (missing.c). */
static unsigned mask_rules(const struct prog *p)
{
	const char *m = miss_spec(p);
	unsigned n = *m ? 1 : 0;

	for (; *m; m++)
		n += *m == ',';
	return n;
}

static void op_fault(struct prog *p, struct rd *r, struct prog_stats *st)
{
	static const char *const acq_errnos[] = { "EMFILE", "ENFILE", "ENOMEM", "EACCES" };
	/*
	 * The last two are left out with PROG_STRICT=0: a busy submit once
	 * waited forever for a completion, with nothing in the kernel (a full
	 * SQ's flush), or only I/O that never ends by itself (io.c); fixed.
	 * A lost cancel reports ENOENT, as a real miss does: EALREADY would
	 * claim a target that never ends (an idle receive) will end.
	 */
	static const char *const ring_rules[] = {
		"sq_full:%u:EBUSY", "submit:%u:EINTR",	    "wait:%u:EINTR",
		"cq_overflow:%u:EBUSY", "cancel:%u:ENOENT",   "submit:%u:EBUSY",
		"submit:%u:EAGAIN",
	};
	unsigned n_ring = p->strict ? 7 : 5;
	unsigned b = rd_u8(r), n_rules = 1 + (b >> 2) % 3, i;
	enum fclass cls = (enum fclass)(b & 3);
	char spec[512];
	bool miss_run = false;
	size_t used = 0;
	int ret;

	if (p->bad_rules && cls == FC_NONE && (b & 4)) {
		op_bad_rule(p, r, st);
		return;
	}
	/* Without the kind, these bytes clear the rules, as they always did. */
	if (cls == FC_NONE && (b & 8) && (p->env->kinds & KIND_ALLOC))
		cls = FC_ALLOC;
	spec[0] = '\0';
	for (i = 0; cls != FC_NONE && i < n_rules; i++) {
		unsigned x = rd_u8(r), nth = 1 + (x >> 4) % 6;
		char rule[48];

		switch (cls) {
		case FC_ACQ:
			snprintf(rule, sizeof(rule), "%s:%u:%s",
				 (x & 4) && p->env->have_socket ? "socket" : "openat", nth,
				 acq_errnos[x & 3]);
			break;
		case FC_REL:
			/* Not a slot's close_direct: it cannot fail after closing, and an
			 * injected EIO leaves the runtime counting a free slot (handover.c). */
			snprintf(rule, sizeof(rule), "%s:%u:EIO",
				 x & 1 || p->n_direct ? "fsync" : "close", nth);
			break;
		case FC_ALLOC:
			/* Any of the first 64 allocations from here: a pool's growth, an
			 * error node, a backlog, a finding... */
			snprintf(rule, sizeof(rule), "alloc:%u:ENOMEM", 1 + x % 64);
			break;
		default:
			snprintf(rule, sizeof(rule), ring_rules[x % n_ring], nth);
			break;
		}
		used += (size_t)snprintf(spec + used, sizeof(spec) - used, "%s%s",
					 i ? "," : "", rule);
		/* A run of misses longer than any fixed number of tries: the runtime
		 * once gave up after eight, and a target that never ends by itself
		 * (an idle receive, a connect to a full backlog) held its scope for ever. */
		if (cls == FC_RING && x % n_ring == 4 && (x & 8) && !miss_run) {
			unsigned k, room = 16 - n_rules - mask_rules(p); /* rsc_fault_set takes 16 */

			miss_run = true; /* one run per spec */
			for (k = 1; k < 10 && k <= room; k++)
				used += (size_t)snprintf(spec + used, sizeof(spec) - used,
							 ",cancel:%u:ENOENT", nth + k);
			st->fault_rules += k - 1;
		}
	}
	if (!p->env->have_faults)
		return;
	fault_window(p);
	ret = prog_fault_set(p, spec);
	say(p, "  op %d: fault_set \"%s\" -> %d\n", p->op_index, spec, ret);
	if (ret != 0)
		violation(p, "rsc_fault_set(\"%s\"): %s (%s)", spec, rsc_err_name(ret),
			  rsc_last_error());
	p->cur_class = cls;
	p->ring_rules = cls == FC_RING;
	p->msg_armed = false;
	st->fault_rules += cls == FC_NONE ? 0 : n_rules;
	st->alloc_rules += cls == FC_ALLOC ? n_rules : 0;
}

/* Entries' states as the API reports them agree with what the trace said. */
static void check_states(struct prog *p)
{
	int i, st;

	for (i = 0; i < p->n_en; i++) {
		const struct pentry *e = &p->en[i];
		bool ok;

		if (!p->sc[e->scope].valid || !e->h)
			continue; /* a pair's socket not yet bound to its handle */
		if (e->taken_over && !e->n_released)
			continue; /* its handle may be gone with what it owned */
		st = rsc_entry_state(e->h);
		if (e->detached)
			ok = st == -ESTALE; /* freed by its detach */
		else if (e->n_failed)
			ok = st == RSC_FAILED;
		else if (!e->n_entered)
			ok = st == RSC_ENTERING || (e->adopted && st == RSC_ENTERED);
		else if (!e->n_released)
			/* EXITED before the trace: a batch is reported newest first. */
			ok = st == RSC_ENTERED || st == RSC_EXITING || st == RSC_EXITED;
		else
			ok = st == RSC_EXITED;
		if (!ok)
			violation(p, "entry %d of '%s' is in state %d, the trace says entered %d failed %d released %d",
				  e->seq, p->sc[e->scope].name, st, e->n_entered, e->n_failed,
				  e->n_released);
	}
	for (i = 0; i < p->n_sc; i++) {
		if (!p->sc[i].valid)
			continue;
		st = rsc_scope_state(p->sc[i].h);
		if ((st == RSC_SCOPE_UNWOUND) != (p->sc[i].n_closed == 1))
			violation(p, "scope '%s' is in state %d, with %d SCOPE_CLOSED events",
				  p->sc[i].name, st, p->sc[i].n_closed);
	}
}

/* ---- the end: close everything, then judge ------------------------------- */

static void end_by_shutdown(struct prog *p)
{
	struct rsc_error *err = NULL;
	int status, i;

	fault_window(p);
	/* Rules stop here, so the counter read above is the final one. */
	if (p->env->have_faults && prog_fault_set(p, "") < 0)
		violation(p, "rsc_fault_set(\"\") failed");
	p->cur_class = FC_NONE;
	p->ring_rules = false;
	p->msg_armed = false;
	p->shutting_down = true;
	post_before_end(p);
	miss_check_end(p);
	p->draining = true;
	status = rsc_loop_shutdown(p->loop, &err);
	p->draining = false;
	say(p, "  end: shutdown -> %d\n", status);
	p->loop = NULL;
	for (i = 0; i < p->n_sc; i++)
		p->sc[i].valid = false;
	if (p->root_closed != 1)
		violation(p, "rsc_loop_shutdown: the root scope closed %d times", p->root_closed);
	else if (p->root_res != status)
		violation(p, "rsc_loop_shutdown returned %s, its root scope closed with %s",
			  rsc_err_name(status), rsc_err_name(p->root_res));
	p->root_final = err;
	p->root_status = status;
}

/* Close every scope left, those that posts run meanwhile open included. */
static void close_all(struct prog *p)
{
	int i, ret, rounds;

	for (rounds = 0; rounds < 100; rounds++) {
		bool pending = false;

		for (i = p->n_sc - 1; i >= 0; i--)
			if (p->sc[i].valid && p->sc[i].parent < 0 && !p->sc[i].close_req)
				op_close_wait(p, i);
		/* Closes requested earlier finish from the loop. */
		for (i = 0; i < p->n_sc; i++)
			pending |= p->sc[i].valid;
		if (!pending)
			break;
		ret = sh_run(p, p->loop, RSC_RUN_DEFAULT);
		if (ret != 0) {
			violation(p, "rsc_loop_run at the end: %d", ret);
			break;
		}
	}
	for (i = 0; i < p->n_sc; i++)
		if (p->sc[i].valid)
			violation(p, "scope '%s' never finished closing", p->sc[i].name);
}

static bool any_scope_left(const struct prog *p)
{
	int i;

	for (i = 0; i < p->n_sc; i++)
		if (p->sc[i].valid)
			return true;
	return false;
}

/*
 * A loop on the application's ring runs nothing inside rsc_loop_close: with
 * posts queued it is busy, and frees nothing; the application turns it until
 * they ran (and what they opened closed).
 */
static void shared_end_posts(struct prog *p, struct prog_stats *st)
{
	int i, ret = rsc_loop_close(p->loop);

	say(p, "  end: rsc_loop_close with posts queued -> %d\n", ret);
	if (ret != -EBUSY) {
		violation(p, "rsc_loop_close of a shared loop with posts queued: %s, expected EBUSY",
			  rsc_err_name(ret));
		if (ret == 0)
			abort(); /* the model's loop is gone: nothing more can be judged */
		return;
	}
	st->close_busy++;
	for (i = 0; i < 100 && !p->failed && (rsc_loop_alive(p->loop) > 0 || any_scope_left(p)); i++) {
		if (sh_run(p, p->loop, RSC_RUN_DEFAULT) < 0)
			violation(p, "rsc_loop_run at the end: %s", rsc_last_error());
		close_all(p);
	}
}

static void end_by_close(struct prog *p, struct prog_stats *st)
{
	int i, ret;

	close_all(p);
	/* Posts still queued run now, under the rules of the last window. */
	for (i = 0; i < 100 && rsc_loop_alive(p->loop) > 0 && !p->failed; i++) {
		ret = sh_run(p, p->loop, RSC_RUN_DEFAULT);
		if (ret != 0)
			violation(p, "rsc_loop_run at the end: %d", ret);
		close_all(p);
	}
	fault_window(p);
	if (!p->failed) {
		long long acq = rsc_loop_counter(p->loop, RSC_CTR_ACQUIRED);
		long long rel = rsc_loop_counter(p->loop, RSC_CTR_RELEASED);
		long long n_acq = 0, n_rel = 0;

		for (i = 0; i < p->n_en; i++) {
			/* Adopted, then detached before the loop turned: owned, never traced. */
			n_acq += p->en[i].n_entered ? p->en[i].n_entered :
				 p->en[i].adopted && p->en[i].detached;
			n_rel += p->en[i].n_released;
		}
		if (acq != n_acq || rel != n_rel)
			violation(p, "counters say %lld acquired, %lld released; the trace %lld, %lld",
				  acq, rel, n_acq, n_rel);
	}
	ho_end_main(p);
	if (post_at_end() && p->env->have_faults) {
		/* What the posts run inside rsc_loop_close must not meet a rule. */
		if (prog_fault_set(p, "") < 0)
			violation(p, "rsc_fault_set(\"\") failed");
		p->cur_class = FC_NONE;
		p->ring_rules = false;
		p->msg_armed = false;
	}
	post_before_end(p);
	if (p->shared && post_at_end() && !p->eventfd_wake)
		shared_end_posts(p, st);
	miss_check_end(p);
	p->draining = true;
	ret = sh_loop_close(p, p->loop, st);
	p->draining = false;
	say(p, "  end: rsc_loop_close -> %d\n", ret);
	if (any_scope_left(p)) {
		/* A post run in there opened a scope: the loop must still be there. */
		if (ret != -EBUSY) {
			violation(p, "rsc_loop_close returned %s with a scope a post opened still open",
				  rsc_err_name(ret));
			if (ret == 0) {
				for (i = 0; i < p->n_sc; i++)
					p->sc[i].valid = false;
				p->loop = NULL;
				return;
			}
		}
		st->close_busy++;
		close_all(p);
		p->draining = true;
		ret = sh_loop_close(p, p->loop, st);
		p->draining = false;
		say(p, "  end: rsc_loop_close again -> %d\n", ret);
	}
	if (ret != 0) {
		violation(p, "rsc_loop_close at the end: %s (%s)", rsc_err_name(ret),
			  rsc_last_error());
		/* Leave nothing behind for the next program. */
		if (rsc_loop_shutdown(p->loop, NULL) < -1000)
			abort();
	}
	p->loop = NULL;
}

static bool injected_acq(int res)
{
	return res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -EACCES;
}

static void final_checks(struct prog *p, int fds_before, struct prog_stats *st)
{
	long long acq_events = 0, rel_events = 0, slack = 0;
	char what[64];
	int i, fds;

	/* Results, now that every event is in (see on_scope_closed). */
	for (i = 0; i < p->n_sc; i++) {
		if (p->sc[i].late_entry >= 0)
			violation(p, "scope '%s' closed with an entry that never finished entering",
				  p->sc[i].name);
		if (p->sc[i].n_closed != 1)
			continue;
		snprintf(what, sizeof(what), "scope '%s'", p->sc[i].name);
		check_result(p, what, 0, i, p->sc[i].closed_res, p->sc[i].final);
		rsc_error_free(p->sc[i].final);
		p->sc[i].final = NULL;
	}
	if (p->root_closed) {
		check_result(p, "rsc_loop_shutdown", 1, -1, p->root_status, p->root_final);
		rsc_error_free(p->root_final);
		p->root_final = NULL;
	}
	st->known_trace_order += p->late_traces;
	st->known_lost_errors += p->lost_errors;

	for (i = 0; i < p->n_sc; i++)
		if (p->sc[i].n_closed != 1)
			violation(p, "scope '%s': %d SCOPE_CLOSED events", p->sc[i].name,
				  p->sc[i].n_closed);
	for (i = 0; i < p->n_en; i++) {
		const struct pentry *e = &p->en[i];

		if (e->detached) {
			/* Detached before or after its announce: never released. */
			if (e->n_released || e->n_failed)
				violation(p, "detached entry %d of '%s': released %d, failed %d",
					  e->seq, p->sc[e->scope].name, e->n_released, e->n_failed);
			continue;
		}
		if (e->maybe_absent && !e->h)
			continue; /* its pair's push failed before the socket was made */
		if (e->n_entered + e->n_failed != 1)
			violation(p, "entry %d of '%s': entered %d, failed %d", e->seq,
				  p->sc[e->scope].name, e->n_entered, e->n_failed);
		if (e->n_released != e->n_entered && !e->taken_over) {
			violation(p, "entry %d of '%s' ('%s'): acquired %d, released %d",
				  e->seq, p->sc[e->scope].name,
				  e->name,
				  e->n_entered, e->n_released);
			st->leaks++;
		}
		if (e->early_cb && e->n_early_cb != 1)
			violation(p, "entry %d of '%s': release callback called %d times",
				  e->seq, p->sc[e->scope].name, e->n_early_cb);
		else if (e->early_cb &&
			 e->early_cb_res != (e->n_failed ? e->enter_res : e->release_res))
			violation(p, "entry %d of '%s': release callback saw %s, the trace %s",
				  e->seq, p->sc[e->scope].name, rsc_err_name(e->early_cb_res),
				  rsc_err_name(e->n_failed ? e->enter_res : e->release_res));
		if (e->n_failed && injected_acq(e->enter_res))
			acq_events++;
		if (e->n_released && e->release_res == -EIO) {
			rel_events++;
			slack += e->multi_release;
		}
		/* Its close's injected EIO never shows: the read before it fails first. */
		if (e->n_released && e->kind == K_CUSTOM && e->v->exit == TX_TWO_ERRORS)
			slack++;
		/* A TW_LINK enter's close(-1): its error (injected or not) is no acquire's. */
		if (e->kind == K_CUSTOM && e->twist == TW_LINK && e->v->enter != TE_FAIL)
			slack++;
		st->acquires += (unsigned)e->n_entered;
		st->releases += (unsigned)e->n_released;
		st->enter_failures += (unsigned)e->n_failed;
		st->early_releases += e->early;
	}
	/* Every fired rule shows: acquires exactly, releases but for a second
	 * fault on the same two-SQE release, or one behind an earlier SQE's error
	 * (the first error in SQE order is the exit's). */
	if (acq_events != p->fired[FC_ACQ])
		violation(p, "%lld acquire faults fired, %lld acquires failed with an injected errno",
			  p->fired[FC_ACQ], acq_events);
	if (rel_events > p->fired[FC_REL] || p->fired[FC_REL] > rel_events + slack)
		violation(p, "%lld release faults fired, %lld releases failed with EIO (%lld could hide one)",
			  p->fired[FC_REL], rel_events, slack);
	st->faults_injected += (unsigned long long)(p->fired[FC_ACQ] + p->fired[FC_REL] +
						    p->fired[FC_RING] + p->fired[FC_MSG] +
						    p->fired[FC_ACC] + p->fired[FC_ALLOC] +
						    p->fired[FC_NONE]);
	st->alloc_faults += (unsigned long long)p->fired[FC_ALLOC];
	st->alloc_refusals += p->alloc_refusals;
	if (p->fired[FC_NONE])
		violation(p, "%lld faults fired with no rule set", p->fired[FC_NONE]);
	fds = rsc_audit_fd_count();
	if (fds != fds_before) {
		violation(p, "%d descriptors open at the start, %d at the end", fds_before, fds);
		st->leaks += (unsigned)abs(fds - fds_before);
	}
	st->audit_findings += (unsigned)p->n_findings;
	st->leaks += (unsigned)p->n_findings;
}

/* The kind of op byte @b (EXT_OPS or more) is one PROG_KINDS keeps. */
static bool kind_in_use(const struct prog_env *env, unsigned b)
{
	unsigned sub = b - EXT_OPS, kind;

	if (sub >= OWN_AT)
		kind = KIND_OWN;
	else if (sub < IO_OPS)
		kind = KIND_IO;
	else
		kind = sub - IO_OPS < POST_OPS ? KIND_HANDOVER : KIND_POST;
	return env->kinds & kind;
}

int prog_run(const struct prog_env *env, const uint8_t *data, size_t len,
	     struct prog_stats *st, char *why, size_t whylen)
{
	static const unsigned ring_sizes[] = { 8, 16, 64, 256 };
	static struct prog prog; /* large: not on the stack */
	struct prog *p = &prog;
	struct rd r = { data, len, 0 };
	unsigned h, flags, audit;
	bool shutdown_end;
	int ret, fds_before, s, i;

	memset(p, 0, sizeof(*p));
	p->env = env;
	g_prog = p;
	g_st = st;
	p->strict = env->strict;
	p->why = why;
	p->whylen = whylen;
	why[0] = '\0';
	p->op_index = -1;
	h = rd_u8(&r);
	flags = h & 4 ? RSC_LOOP_NO_DEFER_TASKRUN : 0;
	shutdown_end = !(h & 32);
	p->addresses = h & 64;
	p->bad_rules = h & 128;
	audit = (h >> 3) & 3;
	if (audit == 3) {
		/* An extension byte: the audit level, and how posts wake the loop. */
		unsigned x = rd_u8(&r);

		audit = x & 3;
		p->eventfd_wake = (x & 4) && env->have_faults;
		p->shared = (x & 8) && (env->kinds & KIND_SHARED);
		/* Driven by a host loop through rsc_loop_fd(3) (sh_run). */
		p->pollable = (x & 16) && !p->shared;
	}
	if (p->pollable)
		flags |= RSC_LOOP_POLLABLE;
	for (i = 0; i < (int)len; i++) /* FNV-1a: what the application does, per program */
		p->sh_seed = (p->sh_seed ^ data[i]) * 0x100000001b3ULL;
	p->pipes = (env->kinds & KIND_PIPE) && env->have_pipe && ((p->sh_seed >> 23) & 1);
	p->io_dups = (env->kinds & KIND_DUP) && ((p->sh_seed >> 29) & 1);
	p->multi_cqe = (env->kinds & KIND_HOOKS) && ((p->sh_seed >> 31) & 1);
	miss_choose(p, st);
	ho_begin();
	post_begin();
	io_begin();
	own_begin();
	acc_begin();
	ch_begin();
	uw_begin();
	/* Socket files of the last program: each program starts from the same state. */
	for (i = 0; i < 8; i++) {
		char path[SUN_PATH_MAX + 1];

		unix_path(env, (unsigned)i / 2, i & 1, path);
		unlink(path);
	}
	fds_before = rsc_audit_fd_count();
	ret = post_loop_new(p, ring_sizes[h & 3], flags);
	if (ret < 0) {
		snprintf(why, whylen, "rsc_loop_new: %s (%s)", rsc_err_name(ret), rsc_last_error());
		return -1;
	}
	say(p, "program: ring %u%s%s%s, audit %u, end by %s%s%s%s\n", ring_sizes[h & 3],
	    flags & RSC_LOOP_NO_DEFER_TASKRUN ? " no-defer" : "",
	    p->pollable ? " pollable" : "", p->shared ? " (the application's)" : "", audit,
	    shutdown_end ? "shutdown" : "close",
	    p->addresses ? ", addresses" : "", p->bad_rules ? ", bad fault rules" : "",
	    p->eventfd_wake ? ", posts wake by eventfd" : "");
	if (audit) {
		enum rsc_audit_level lvl = audit == 1 ? RSC_AUDIT_RELEASED : RSC_AUDIT_FULL;

		p->audit_full = lvl == RSC_AUDIT_FULL;
		if (rsc_loop_set_audit(p->loop, lvl) < 0)
			violation(p, "rsc_loop_set_audit failed");
	}
	if (rsc_loop_set_trace(p->loop, trace, p) < 0)
		violation(p, "rsc_loop_set_trace failed");
	text_begin(p, st);
	st->programs++;

	for (p->op_index = 0; r.i < r.n && p->op_index < MAX_OPS && !p->failed; p->op_index++) {
		unsigned byte, op;

		fork_settle(p, st);
		byte = rd_u8(&r);

		/* The last op's sentence, whatever it named (text.c). */
		text_check_str(p, "rsc_last_error", rsc_last_error());

		st->ops++;
		if (byte >= EXT_OPS && !kind_in_use(env, byte)) {
			if (!(env->kinds & KIND_ACCEPT))
				continue; /* a kind left out: nothing */
			byte = ACC_OPS + byte % 4; /* the accept kind in its place */
		}
		op = byte % 20;
		if (byte >= CHAIN_OPS && byte < CONN_OP && (env->kinds & KIND_CHAIN)) {
			ch_op(p, byte - CHAIN_OPS, &r, st);
			op = 20;
		} else if (byte == CONN_OP && (env->kinds & KIND_CONN)) {
			acc_conn_op(p, &r, st);
			op = 20;
		} else if (byte == AUDIT_OP && (env->kinds & KIND_AUDIT)) {
			audit_op(p, st);
			op = 20;
		} else if (byte >= ACC_OPS && byte < EXT_OPS && (env->kinds & KIND_ACCEPT)) {
			acc_op(p, byte - ACC_OPS, &r, st);
			op = 20;
		} else if (byte >= EXT_OPS) {
			/* 32 more kinds: tracked I/O, hand-overs, posts, and own.c's. */
			unsigned sub = byte - EXT_OPS;

			if (sub >= OWN_AT)
				own_op(p, sub - OWN_AT, &r, st);
			else if (sub < IO_OPS)
				io_op(p, sub, &r, st);
			else if (sub - IO_OPS < POST_OPS)
				ho_op(p, sub - IO_OPS, &r, st);
			else
				post_op(p, sub - IO_OPS - POST_OPS, &r, st);
			op = 20;
		}
		switch (op) {
		case 0:
		case 1: /* open a scope: top level, or under a live one */
			s = rd_u8(&r) % 4 ? pick_scope(p, &r) : -1;
			if (op_open_scope(p, s) >= 0)
				st->scopes++;
			break;
		case 2:
		case 3:
		case 4:
		case 5:
		case 6:
		case 7:
		case 8:
			s = pick_scope(p, &r);
			if (s < 0) {
				if (op_open_scope(p, -1) >= 0)
					st->scopes++;
				break;
			}
			if (op <= 4) {
				op_file(p, s, &r);
			} else if (op == 5 && p->addresses) {
				unsigned b = rd_u8(&r);

				if (b & 1)
					op_address(p, s, b, &r, st);
				else if (p->pipes && (b & 4))
					op_pipe(p, s);
				else
					op_socket_of_type(p, s, b & 2 ? SOCK_DGRAM : SOCK_STREAM);
			} else if (op == 5) {
				op_socket(p, s, &r);
			}
			else
				op_custom(p, s, &r);
			break;
		case 9:
		case 10:
			i = pick_entry(p, &r);
			if (i >= 0 && rd_u8(&r) % 4 == 0 && rsc_entry_state(p->en[i].h) == RSC_ENTERING)
				(void)rsc_entry_on_enter(p->en[i].h, release_on_enter, (void *)(intptr_t)i);
			else if (i >= 0)
				op_release(p, i, &r);
			break;
		case 11:
			s = pick_scope(p, &r);
			if (s >= 0)
				op_close(p, s);
			break;
		case 12:
			s = pick_scope(p, &r);
			if (s >= 0)
				op_close_wait(p, s);
			break;
		case 13:
			op_run(p, rd_u8(&r), st);
			break;
		case 14:
			op_fault(p, &r, st);
			break;
		case 15:
			i = pick_entry(p, &r);
			if (i >= 0)
				op_entry_wait(p, i);
			break;
		case 16:
			op_stale(p, &r);
			st->stale_probes++;
			if (fork_probe_due(p))
				fork_probe(p, st);
			break;
		case 17:
			p->reenter = !p->reenter;
			break;
		case 18:
			s = pick_scope(p, &r);
			if (s >= 0 && op_adopt(p, s))
				st->adopted++;
			break;
		case 19:
			i = pick_entry(p, &r);
			if (i >= 0 && rd_u8(&r) % 2 && rsc_entry_state(p->en[i].h) == RSC_ENTERING)
				(void)rsc_entry_on_enter(p->en[i].h, detach_on_enter, (void *)(intptr_t)i);
			else if (i >= 0 && op_detach(p, i))
				st->detached++;
			break;
		}
		if (!p->failed) {
			check_states(p);
			lw_check(p, st);
		}
	}
	fork_settle(p, st);
	p->op_index = -1;
	for (i = 0; i < p->n_sc; i++)
		if (p->sc[i].depth > st->max_depth)
			st->max_depth = p->sc[i].depth;
	if (!p->failed) {
		long long late = rsc_loop_counter(p->loop, RSC_CTR_LATE_ACQUIRES);

		if (late > 0)
			st->late_acquires += (unsigned long long)late;
	}
	if (shutdown_end && p->shared) {
		/* It would have to reap the application's ring. */
		ret = rsc_loop_shutdown(p->loop, NULL);
		if (ret != -EOPNOTSUPP)
			violation(p, "rsc_loop_shutdown on the application's ring: %s, expected EOPNOTSUPP",
				  rsc_err_name(ret));
	}
	if (shutdown_end && !p->shared)
		end_by_shutdown(p);
	else
		end_by_close(p, st);
	fork_settle(p, st); /* a callback of the end may have forked too */
	ho_end(p, st);
	acc_end(p, st);
	post_end(p, st);
	io_end(p, st);
	own_end(p, st);
	ch_end(p, st);
	text_end(p, st); /* the loop is closed: its trace file is whole */
	planted_end(p, st);
	lw_end(p, st);
	final_checks(p, fds_before, st);
	st->reentry_probes += p->reentry_probes;
	st->shared_programs += p->shared;
	st->host_programs += p->pollable;
	st->host_wakes += p->host_wakes;
	sh_cleanup();
	g_prog = NULL;
	return p->failed ? -1 : 0;
}

/* ---- environment ---------------------------------------------------------- */

static const char *const kind_names[] = { "io", "handover", "post", "own", "shared", "accept",
					   "chain", "audit", "conn", "hooks", "alloc", "missing", "drop", "fork", "pipe", "dup" };

/* "io,own,accept": those kinds of op (the first 20 are always in); unset or
 * "all": every kind; 0 for a name that is none. */
static unsigned parse_kinds(const char *list)
{
	unsigned kinds = 0, k;
	size_t n;

	if (!list || !*list || !strcmp(list, "all"))
		return KIND_ALL;
	while (*list) {
		n = strcspn(list, ",");
		for (k = 0; k < sizeof(kind_names) / sizeof(kind_names[0]); k++)
			if (strlen(kind_names[k]) == n && !strncmp(kind_names[k], list, n))
				break;
		if (k == sizeof(kind_names) / sizeof(kind_names[0])) {
			fprintf(stderr, "PROG_KINDS: unknown kind '%.*s' (io, handover, post, own, shared, accept, chain, audit, conn, hooks, alloc, missing, drop, fork, pipe, dup)\n",
				(int)n, list);
			return 0;
		}
		kinds |= 1U << k;
		list += n + (list[n] == ',');
	}
	return kinds ? kinds : KIND_ALL;
}

int prog_env_init(struct prog_env *env)
{
	struct io_uring_probe *probe;
	struct rsc_loop *loop, *warm[4];
	char path[300];
	int i, fd;

	memset(env, 0, sizeof(*env));
	env->verbose = getenv("PROG_VERBOSE") && atoi(getenv("PROG_VERBOSE")) > 0;
	/* Strict by default now that the bugs it once tolerated are fixed. */
	env->strict = !(getenv("PROG_STRICT") && atoi(getenv("PROG_STRICT")) == 0);
	env->unix_backlog_full = getenv("PROG_UNIX_BACKLOG_FULL") &&
				 atoi(getenv("PROG_UNIX_BACKLOG_FULL")) > 0;
	env->kinds = parse_kinds(getenv("PROG_KINDS"));
	if (!env->kinds)
		return -EINVAL;
	snprintf(env->dir, sizeof(env->dir), "%s/rsc-soak-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(env->dir))
		return -errno;
	for (i = 0; i < N_FILES; i++) {
		snprintf(path, sizeof(path), "%s/f%d", env->dir, i);
		fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		close(fd);
	}
	if (dir_fd < 0)
		dir_fd = open(env->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return -errno;
	probe = io_uring_get_probe();
	env->have_socket = probe && io_uring_opcode_supported(probe, IORING_OP_SOCKET);
	env->have_pipe = probe && io_uring_opcode_supported(probe, 62); /* IORING_OP_PIPE: newer than liburing 2.3 */
	if (probe)
		io_uring_free_probe(probe);
	if (rsc_loop_new(&loop, 8, 0) < 0)
		return -ENOSYS;
	env->have_faults = rsc_fault_set(loop, "") == 0;
	if (rsc_loop_close(loop) < 0)
		return -EBUSY;
	/*
	 * The handle table's chunks are process-wide and kept for later loops,
	 * one at least for each loop alive: take now as many as a program can
	 * have loops at once (its own, a peer, its clients' in accept.c, and
	 * one to spare), or the first program to reach that many would seem
	 * to keep an allocation.
	 */
	for (i = 0; i < 4; i++)
		if (rsc_loop_new(&warm[i], 8, 0) < 0)
			return -ENOSYS;
	for (i = 0; i < 4; i++)
		if (rsc_loop_close(warm[i]) < 0)
			return -EBUSY;
	post_env_settle();
	miss_env_settle();
	ch_env_init(env);
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void prog_env_fini(struct prog_env *env)
{
	if (dir_fd >= 0)
		close(dir_fd);
	dir_fd = -1;
	ch_env_fini();
	if (env->dir[0])
		nftw(env->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	env->dir[0] = '\0';
}

void prog_print_stats(const struct prog_stats *st, double seconds, FILE *out)
{
	fprintf(out, "  programs run:     %llu (%.0f/s, %llu ops)\n", st->programs,
		seconds > 0 ? (double)st->programs / seconds : 0.0, st->ops);
	fprintf(out, "  scopes opened:    %llu (max depth %d)\n", st->scopes, st->max_depth);
	fprintf(out, "  acquires:         %llu\n", st->acquires);
	fprintf(out, "  releases:         %llu (%llu early)\n", st->releases, st->early_releases);
	fprintf(out, "  failed acquires:  %llu\n", st->enter_failures);
	fprintf(out, "  late acquires:    %llu (won the race against their cancel, released)\n",
		st->late_acquires);
	fprintf(out, "  fault rules set:  %llu\n", st->fault_rules);
	fprintf(out, "  faults injected:  %llu\n", st->faults_injected);
	fprintf(out, "  adopted:          %llu (%llu detached, %llu leaks planted on a detached number and reported)\n",
		st->adopted, st->detached, st->planted_leaks);
	fprintf(out, "  stale handles:    %llu probes, each refused with ESTALE (and a live one of the other kind with EINVAL)\n", st->stale_probes);
	fprintf(out, "  re-entry:         %llu hooks and callbacks that tried to block or run the loop\n",
		st->reentry_probes);
	fprintf(out, "  malformed rules:  %llu (refused with EINVAL, the rules in force kept)\n",
		st->bad_rule_sets);
	fprintf(out, "  alloc faults:     %llu rules, %llu allocations failed, %llu calls refused with ENOMEM\n",
		st->alloc_rules, st->alloc_faults, st->alloc_refusals);
	fprintf(out, "  missing:          %llu programs as on a kernel without a feature (missing:NAME), %llu calls refused with EOPNOTSUPP\n",
		st->missing_programs, st->missing_refusals);
	fprintf(out, "  fork probes:      %llu children refused on the loop's copy (ECHILD) and freed it; "
		     "%llu forked in a callback, nothing more run in them\n",
		st->fork_probes, st->fork_callbacks);
	fprintf(out, "  addresses:        %llu connect/listen pushes (%llu refused with EINVAL)\n",
		st->addr_pushes, st->addr_refused);
	fprintf(out, "  pipes:            %llu rsc_pipe entries pushed\n", st->pipes);
	fprintf(out, "  dups:             %llu I/O entries adopted as a dup of another entry's socket\n", st->io_dups);
	fprintf(out, "  direct slots:     %llu peer loops; %llu hand-overs accepted (%llu done, %llu failed, %llu with a peer's address), %llu arrived, %llu dropped by the application\n",
		st->peers, st->handovers, st->handovers_done, st->handovers_failed,
		st->handovers_addressed, st->arrivals, st->arrivals_dropped);
	fprintf(out, "  refused:          %llu hand-overs (%llu ESTALE: no live inbox; %llu EOPNOTSUPP: msg_ring fault)\n",
		st->handovers_refused, st->handovers_stale, st->handovers_unsupported);
	fprintf(out, "  tracked I/O:      %llu started on %llu adopted sockets (%llu cancelled by their release), %llu refused\n",
		st->io_started, st->io_entries, st->io_cancelled, st->io_refused);
	fprintf(out, "  posts:            %llu run (%llu queued for the end; %llu closes refused with EBUSY); %llu programs woken by eventfd\n",
		st->posts_run, st->posts_at_end, st->close_busy, st->eventfd_programs);
	fprintf(out, "  shared rings:     %llu programs, %llu loops on the application's ring; %llu application CQEs, %llu of ringscope's dispatched, %llu given again or made up (refused with EINVAL)\n",
		st->shared_programs, st->shared_loops, st->app_cqes, st->shared_rsc_cqes,
		st->dispatch_refused);
	fprintf(out, "  app chains:       %llu link chains of the application's, %llu links left open across a turn, %llu IOSQE_IO_DRAIN NOPs\n",
		st->app_chains, st->app_open_links, st->app_drains);
	fprintf(out, "  host loops:       %llu programs on a pollable loop, %llu runs when its fd polled readable\n",
		st->host_programs, st->host_wakes);
	fprintf(out, "  text:             %llu programs with control bytes in their names, %llu JSON traces (%llu bytes) checked for raw controls\n",
		st->text_programs, st->text_traces, st->text_trace_bytes);
	fprintf(out, "  twisted hooks:    %llu slow enters (%llu settled in time), %llu link flags left (%llu witness opens), %llu CQE_SKIP_SUCCESS, %llu multishot timeouts, %llu deadlines set from hooks\n",
		st->hk_slow, st->hk_slow_settled, st->hk_link, st->hk_witnesses, st->hk_skip,
		st->hk_multi, st->hk_deadlines);
	fprintf(out, "  moves:            %llu entries (%llu refused), %llu scopes (%llu refused)\n",
		st->entry_moves, st->entry_moves_refused, st->scope_moves, st->scope_moves_refused);
	fprintf(out, "  own unwinds:      %llu fails, %llu deadlines set (%llu passed), %llu graceful closes; %llu on-close callbacks\n",
		st->fails, st->deadlines_set, st->deadlines_passed, st->graceful, st->on_close_calls);
	fprintf(out, "  defers, timers:   %llu defers (%llu ran, %llu suppressed), %llu timers (%llu fired)\n",
		st->defers, st->defer_runs, st->defer_suppressed, st->timers, st->timers_fired);
	fprintf(out, "  accepts:          %llu listeners; %llu accepts started (%llu multishot, %llu direct), %llu refused; %llu connections delivered; %llu accept faults\n",
		st->listeners, st->accepts, st->accepts_multishot, st->accepts_direct,
		st->accepts_refused, st->conns, st->acc_faults);
	fprintf(out, "  clients:          %llu connected (%llu accepted and matched by port); at the end %llu reset or refused, %llu at EOF with no callback of theirs (closed by the runtime, or a slot)\n",
		st->clients, st->clients_accepted, st->clients_reset, st->conns_orphaned);
	fprintf(out, "  unordered exits:  %llu custom entries pushed unordered (%llu with a tracked timeout); %llu pending errors matched the model\n",
		st->unordered, st->custom_io, st->pending_checked);
	fprintf(out, "  connections:      %llu deadline and failure checks run on a connection's scope\n",
		st->conn_checks);
	fprintf(out, "  chains:           %llu submitted (%llu steps, %llu broken by a step's own error), %llu refused as the model said, %llu bad arguments refused; %llu first sends (%llu sent); %llu hidden sockets bound crossed, then swapped\n",
		st->chains, st->chain_steps, st->chains_broken, st->chains_refused,
		st->chain_bad_args, st->chain_sends, st->chain_sends_done, st->chain_uncrossed);
	fprintf(out, "  audit calls:      %llu from callbacks and hooks (%llu of rsc_audit_slots)\n",
		st->audit_probes, st->audit_slot_calls);
	fprintf(out, "  ledger:           %llu checks of a release's number while its close waited behind an fsync; "
		"%llu adopts of a number such a close gave back, refused until it was reaped\n",
		st->closes_behind_checked, st->adopts_refused_late);
	fprintf(out, "  audit findings:   %llu\n", st->audit_findings);
	fprintf(out, "  leaks found:      %llu\n", st->leaks);
	fprintf(out, "  known bugs seen:  %llu failed acquires traced after their scope's SCOPE_CLOSED, "
		"%llu errors dropped by a child's result (PROG_STRICT=1 fails on them)\n",
		st->known_trace_order, st->known_lost_errors);
}
