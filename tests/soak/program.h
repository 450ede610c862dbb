/* SPDX-License-Identifier: MIT */
#ifndef RSC_SOAK_PROGRAM_H
#define RSC_SOAK_PROGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Scope programs: a byte string decoded into operations on one loop (open
 * scopes, acquire files, sockets and custom entries, release early, close,
 * run the loop, inject faults, post functions to it, hand slots over to a
 * second loop), run to the end, then checked by an oracle built from the
 * lifecycle trace. Shared by the soak (tests/soak/soak.c,
 * bytes from a seeded PRNG) and the fuzzer (tests/fuzz/fuzz_scopes.c).
 */

struct prog_env {
	char dir[256];	  /* temp dir with the files the programs open */
	bool have_socket; /* kernel has IORING_OP_SOCKET */
	bool have_pipe;	  /* kernel has IORING_OP_PIPE (Linux 6.16) */
	bool have_faults; /* rsc_fault_set() works (--enable-fault-injection) */
	bool verbose;	  /* PROG_VERBOSE=1: print every op and event to stderr */
	bool strict;	  /* PROG_STRICT=1: known library bugs fail too, and
			   * the fault rules that trigger them are generated */
	bool unix_backlog_full; /* PROG_UNIX_BACKLOG_FULL=1: AF_UNIX listeners keep
				 * the small backlog, so connects block (known hang) */
	unsigned kinds;	  /* PROG_KINDS: the kinds of op in use (KIND_* bits), all by default */
};

/* Kinds of operation beyond the first 20 (PROG_KINDS=io,own,... selects them). */
enum { KIND_IO = 1, KIND_HANDOVER = 2, KIND_POST = 4, KIND_OWN = 8, KIND_SHARED = 16, KIND_ACCEPT = 32,
       KIND_CHAIN = 64, KIND_AUDIT = 128, KIND_CONN = 256, KIND_HOOKS = 512, KIND_ALLOC = 1024,
       KIND_MISSING = 2048,
       /* Hand-overs that carry a peer's address, to peers whose application drops
        * every arrival it reaps (tests/soak/handover.c): no op bytes of its own. */
       KIND_DROP = 4096,
       /* A forked child's copy of the loop (tests/soak/fork.c): no op bytes either. */
       KIND_FORK = 8192,
       /* rsc_pipe entries in place of some sockets, in one program in two (chosen
        * from its hash, so that programs decode as before): no op bytes either. */
       KIND_PIPE = 16384,
       /* With io: in one program in two (its hash), a pair's first end is adopted
        * twice, the second time as a dup(2): one entry's cancel must spare the other's
        * I/O on the same open file (bug 101). No op bytes either. */
       KIND_DUP = 32768, KIND_ALL = 65535 };

struct prog_stats {
	unsigned long long programs, ops, scopes, acquires, releases,
		enter_failures, early_releases, late_acquires, refused_pushes,
		fault_rules, faults_injected, leaks, audit_findings,
		known_trace_order, known_lost_errors, stale_probes, reentry_probes,
		adopted, detached, planted_leaks, pipes, io_dups, addr_pushes, addr_refused, bad_rule_sets,
		peers, handovers, handovers_done, handovers_failed, handovers_refused,
		handovers_stale, handovers_unsupported, arrivals, arrivals_dropped,
		handovers_addressed, posts, posts_run,
		posts_at_end, close_busy, eventfd_programs,
		io_entries, io_started, io_refused, io_cancelled,
		shared_programs, shared_loops, app_cqes, shared_rsc_cqes, dispatch_refused,
		entry_moves, entry_moves_refused, scope_moves, scope_moves_refused,
		fails, defers, defer_runs, defer_suppressed, on_close_calls,
		deadlines_set, deadlines_passed, graceful, timers, timers_fired,
		unordered, custom_io, pending_checked,
		listeners, accepts, accepts_multishot, accepts_direct, accepts_refused,
		conns, conns_orphaned, clients, clients_accepted, clients_reset, acc_faults,
		conn_checks, chains, chain_steps, chains_refused, chains_broken, chain_sends,
		chain_sends_done, chain_bad_args, chain_uncrossed, audit_probes, audit_slot_calls,
		host_programs, host_wakes, text_programs, text_traces, text_trace_bytes,
		hk_slow, hk_slow_settled, hk_link, hk_witnesses, hk_skip, hk_deadlines, hk_multi,
		app_chains, app_drains, app_open_links, alloc_rules, alloc_faults, alloc_refusals,
		missing_programs, missing_refusals, fork_probes, fork_callbacks,
		closes_behind_checked, adopts_refused_late;
	int max_depth;
};

/* Make the temp dir and its files, probe the kernel. 0 or -errno. */
int prog_env_init(struct prog_env *env);
void prog_env_fini(struct prog_env *env);

/*
 * Decode @data into a program, run it on a fresh loop, close everything, and
 * check the oracle. Returns 0, or -1 with the first violation in @why (the
 * loop is still shut down, as far as it can be).
 */
int prog_run(const struct prog_env *env, const uint8_t *data, size_t len,
	     struct prog_stats *st, char *why, size_t whylen);

/* The figures: programs, acquires, releases, faults, leaks, depth... */
void prog_print_stats(const struct prog_stats *st, double seconds, FILE *out);

#endif
