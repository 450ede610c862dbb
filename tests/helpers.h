/* SPDX-License-Identifier: MIT */
#ifndef RSC_TEST_HELPERS_H
#define RSC_TEST_HELPERS_H

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <liburing.h>

#include "ringscope.h"

#define MAX_EVENTS 4096

/* One lifecycle event as the trace callback saw it. */
struct event {
	enum rsc_event ev;
	int res;
	char scope[RSC_NAME_MAX];
	char entry[32];
	char detail[128];
};

struct recorder {
	struct event ev[MAX_EVENTS];
	int n;
	/* Optional hook run after recording (reuse tests open files in it). */
	void (*after)(struct recorder *r, const struct event *e);
	void *user;
};

/* Checked fixture state shared by every test. */
extern struct rsc_loop *t_loop;
extern struct recorder *t_rec;
extern char t_dir[];

void t_setup(void);
void t_teardown(void);
void t_add_fixture(TCase *tc);

/* A file of the fixture's temp directory: t_dir/name. */
const char *t_path(const char *name);
void t_make_files(int n);
/* rsc_open() t_dir/f<first> .. f<first+n-1>, read-only, into @s. */
void t_open_files(struct rsc_scope *s, int first, int n);

/* Run the loop until nothing is alive. */
void t_run(void);
/* Descriptors open now; true if any /proc/self/fd target contains @needle. */
int t_fd_count(void);
/* An AF_UNIX listener at t_path("full") whose backlog is full (fill[] holds
 * the connected fillers): a connect to it waits in the kernel. */
struct sockaddr_un;
int t_full_unix_listener(struct sockaddr_un *sun, int fill[64], int *nfill);
void t_full_unix_listener_close(int lfd, int fill[64], int nfill);
bool t_fd_open_to(const char *needle);
/* Events of @kind in order, as "detail" strings joined by ','. */
int t_events(enum rsc_event kind, const char *scope, char *out, size_t len);
int t_count_events(enum rsc_event kind);

/*
 * The kernel as the loops of this run take it: its opcode probe, less what
 * RINGSCOPE_FAULT's missing: rules take away (rsc_fault_set(3)), so that a
 * whole run under a mask leaves out what the mask makes missing, named.
 */
bool t_kernel_has(unsigned opcode);
/* RINGSCOPE_FAULT holds the rule missing:@name. */
bool t_env_missing(const char *name);
/* What rsc_recv_multishot(3), rsc_accept(3)'s RSC_ACCEPT_MULTISHOT,
 * rsc_entry_hand_over(3), a release's one cancel by descriptor
 * (RSC_CTR_CANCEL_FD) and rsc_loop_post(3)'s MSG_RING wake need. */
bool t_has_recv_multishot(void);
bool t_has_accept_multishot(void);
bool t_has_hand_over(void);
bool t_has_cancel_fd(void);
bool t_has_post_msg_ring(void);
/* Register @test in @tc if @have, or say SKIP naming @what: left out, never a pass. */
#define t_add_test_if(tc, test, have, what)                                         \
	do {                                                                        \
		if (have)                                                           \
			tcase_add_test(tc, test);                                   \
		else                                                                \
			printf("SKIP %s: the loops of this run lack %s\n", #test, what); \
	} while (0)
/* t_add_test_if() for a test whose sockets come from IORING_OP_SOCKET (rsc_socket, rsc_listen, rsc_connect, chains). */
#define t_add_socket_test(tc, test) \
	t_add_test_if(tc, test, t_kernel_has(IORING_OP_SOCKET), "IORING_OP_SOCKET (Linux 5.19)")
/* A loop for suite-build-time probes (freed at exit). */
struct rsc_loop *t_probe_loop(void);
/* 127.0.0.1:@port, and a listener entry there on a kernel-chosen port (its address in @bound). */
struct sockaddr_in t_loopback(unsigned short port);
struct rsc_entry *t_listen_on_loopback(struct rsc_scope *s, int backlog, struct sockaddr_in *bound);
/* A blocking, close-on-exec TCP client connected to @to (the test's to close). */
int t_connect(const struct sockaddr_in *to);
/* A connected AF_UNIX pair: *@peer is the test's, the other end an entry adopted into @s. */
struct rsc_entry *t_adopted_pair(struct rsc_scope *s, int *peer);
/* An I/O callback (rsc_read(3)) that stores its result in the int @data points to. */
void t_store_res(struct rsc_entry *e, int res, void *buf, void *data);
/* Turns of the test loop until the op whose t_store_res writes *@res (1 until then) has called back: its result. */
int t_io_wait(int *res);
/*
 * Run under valgrind (its preload is there). valgrind 3.19 does not apply
 * RLIMIT_NOFILE to io_uring's descriptors, and runs one thread at a time,
 * keeping one that waits in io_uring_enter(2) as the one running.
 */
bool t_under_valgrind(void);
/* No descriptor left: RLIMIT_NOFILE lowered to a little above the highest
 * number in use, and every free number below it filled (asserted: the last
 * open failed with EMFILE). t_descriptors_back() undoes both. */
struct t_no_fds {
	struct rlimit old;
	int fds[4096];
	int n;
};
void t_use_up_descriptors(struct t_no_fds *u);
void t_descriptors_back(struct t_no_fds *u);
/* Callbacks that do nothing, for calls that need one. */
int t_nop_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg);
void t_nop_io(struct rsc_entry *e, int res, void *buf, void *data);
void t_nop_accept(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *c, void *data);
/* CLOCK_MONOTONIC in milliseconds. */
long t_now_ms(void);
/* A timer in a scope of its own on @loop: after @ms, fired is set, so that a
 * wait for what may never come ends (any result but -ECANCELED: its scope
 * was closed by t_guard_stop). */
struct t_guard {
	struct rsc_scope *s;
	int fired;
};
void t_guard_start(struct t_guard *g, struct rsc_loop *loop, unsigned ms);
void t_guard_stop(struct t_guard *g);
/*
 * @loop wakes for posts by its eventfd (RSC_FEAT_POST_EVENTFD) and polls it
 * one shot: the kernel refused IORING_POLL_ADD_MULTI (before Linux 5.13;
 * missing:poll_multishot), a completion the loop arms again on its next turn.
 */
bool t_posts_poll_one_shot(struct rsc_loop *loop);
/* Turns of @loop until its posts' eventfd poll is in the kernel for good, so
 * that a count of SQEs starts after it; nothing on a loop that wakes by MSG_RING. */
void t_settle_posts(struct rsc_loop *loop);
/* rsc_fault_set works: the library has fault injection compiled in. */
bool t_has_fault_injection(void);
/*
 * A full disk, made by RLIMIT_FSIZE: writes past @bytes are cut short, then
 * fail with EFBIG (SIGXFSZ ignored). Check's own messages go to a file too,
 * so no assertion may run until t_disk_free_again().
 */
struct rlimit t_disk_full_at(off_t bytes);
void t_disk_free_again(struct rlimit old);

/* Opcodes newer than liburing 2.3's header, for t_kernel_has(). */
#define OP_FIXED_FD_INSTALL 54U /* Linux 6.8 */
#define OP_PIPE 62U		/* Linux 6.16 */

/* A whole file, NUL-terminated, malloc'd (asserted); its length in *@lenp if not NULL. */
char *t_slurp(const char *path, size_t *lenp);

/* A scope of @n files on the test loop, entered, then closed (asserted). */
void t_scope_of_files(int n, const char *name);
/* A scope with file f0 whose loop is sure to wait (a @ms timeout on the entered file): a wait:N fault rule is drawn however fast the opens completed. */
void t_scope_that_waits(unsigned ms);
/* A complete trace document: the header, then events, nothing after the closing "]}" but its newline. */
void t_assert_trace_complete(const char *text);

/* The test loop's direct table: @slots in all, @chain_slots of them for chains (asserted). */
void t_direct_table(unsigned slots, unsigned chain_slots);
/* rsc_audit_slots(@loop), asked again while the kernel is busy (-EAGAIN); never an error. */
int t_audit_slots(struct rsc_loop *loop);
/* An inbox callback (rsc_inbox) that counts arrivals in the int at @data. */
void t_count_arrival(struct rsc_entry *inbox, int slot, struct rsc_scope *cs,
		     struct rsc_entry *e, void *data);

Suite *make_loop_suite(void);
Suite *make_scope_suite(void);
Suite *make_errors_suite(void);
Suite *make_managers_suite(void);
Suite *make_cancel_suite(void);
Suite *make_audit_suite(void);
Suite *make_args_suite(void);
Suite *make_faults_suite(void);
Suite *make_io_suite(void);
Suite *make_net_suite(void);
Suite *make_ownership_suite(void);
Suite *make_ledger_closes_suite(void);
Suite *make_deadline_suite(void);
Suite *make_server_suite(void);
Suite *make_observe_suite(void);
Suite *make_direct_suite(void);
Suite *make_hostile_suite(void);
Suite *make_hostile_core_suite(void);
Suite *make_hostile_tools_suite(void);
Suite *make_handover_suite(void);
Suite *make_shared_ring_suite(void);
Suite *make_hostile_servers_suite(void);
Suite *make_hostile_direct_suite(void);
Suite *make_multishot_suite(void);
Suite *make_reentry_suite(void);
Suite *make_pages_suite(void);
Suite *make_hostile_obs_suite(void);
Suite *make_acceptance_suite(void);
Suite *make_hostile_loop_suite(void);
Suite *make_pages_entries_suite(void);
Suite *make_hostile_scopes_suite(void);
Suite *make_cancel_subtree_suite(void);
Suite *make_hostile_direct2_suite(void);
Suite *make_hostile_own_suite(void);
Suite *make_hostile_io_suite(void);
Suite *make_hostile_servers2_suite(void);
Suite *make_hostile_obs2_suite(void);
Suite *make_hostile_managers_suite(void);
Suite *make_hostile_host_suite(void);
Suite *make_hostile_chains_suite(void);
Suite *make_hostile_threads_suite(void);
Suite *make_hostile_design_suite(void);
Suite *make_alloc_faults_suite(void);
Suite *make_hostile_mix_suite(void);
Suite *make_hostile_audit_suite(void);
Suite *make_hostile_mix2_suite(void);
Suite *make_hostile_programs_suite(void);
Suite *make_unwind_errors_suite(void);
Suite *make_hostile_fallbacks_suite(void);
Suite *make_hostile_loose_suite(void);
Suite *make_hostile_newapi_suite(void);
Suite *make_hunt_suite(void);
Suite *make_fork_suite(void);
Suite *make_hot_paths_suite(void);
Suite *make_blackbox_own_suite(void);
Suite *make_blackbox_obs_suite(void);
Suite *make_blackbox_srv_suite(void);

#endif
