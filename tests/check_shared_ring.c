/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

#include "helpers.h"

/* Bytes of heap in use: a leak of one hand-over's address shows as its size. */
#if defined(__SANITIZE_ADDRESS__)
#define HEAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_ASAN 1
#endif
#endif
#ifdef HEAP_ASAN
/* sanitizer/allocator_interface.h's, which GCC does not install. */
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t heap_in_use(void)
{
	return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static size_t heap_in_use(void)
{
	return mallinfo2().uordblks; /* glibc's; 0 under valgrind, which owns malloc */
}
#endif

/*
 * Loops on the application's own ring (rsc_loop_new_from_ring(3)), as the
 * soak's shared-ring programs run them (tests/soak/shared.c): what
 * rsc_loop_dispatch(3) must refuse, and what may reach the application's ring
 * once the loop is closed. Each test makes its ring and closes it.
 */

#define UD_POST 0xffffffff00000000ULL /* rsc_loop_post's wake (src/internal.h) */

struct app {
	struct io_uring ring;
	struct rsc_loop *loop;
	struct io_uring_cqe last; /* the last CQE of ringscope's dispatched */
	int tagged;		  /* CQEs of ringscope's dispatched */
};

static void app_new(struct app *a)
{
	memset(a, 0, sizeof(*a));
	ck_assert_int_eq(io_uring_queue_init(16, &a->ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&a->loop, &a->ring, 0), 0);
}

/* One reap of whatever is there, each CQE dispatched; ringscope's are kept. */
static void app_reap(struct app *a)
{
	struct io_uring_cqe *cqe;

	ck_assert_int_ge(io_uring_submit_and_get_events(&a->ring), 0);
	while (io_uring_peek_cqe(&a->ring, &cqe) == 0 && cqe) {
		ck_assert_int_eq(rsc_loop_dispatch(a->loop, cqe), 1);
		a->last = *cqe;
		a->tagged++;
		io_uring_cqe_seen(&a->ring, cqe);
	}
	ck_assert_int_ge(rsc_loop_run(a->loop, RSC_RUN_NOWAIT), 0);
}

static void app_drain_and_close(struct app *a)
{
	int turns;

	for (turns = 0; rsc_loop_alive(a->loop) > 0 && turns < 1000; turns++) {
		ck_assert_int_ge(io_uring_submit_and_wait(&a->ring, 1), 0);
		app_reap(a);
	}
	ck_assert_int_eq(rsc_loop_alive(a->loop), 0);
	ck_assert_int_eq(rsc_loop_close(a->loop), 0);
	io_uring_queue_exit(&a->ring);
}

static void count_post(struct rsc_loop *loop, void *arg)
{
	(void)loop;
	(*(int *)arg)++;
}

/* A wake-up given twice, or one no post sent, is not the loop's to count down:
 * refused, the loop stays idle and closes. */
START_TEST(wake_dispatched_twice_or_made_up_is_refused)
{
	struct io_uring_cqe made_up = { .user_data = UD_POST };
	struct app a;
	int ran = 0;

	app_new(&a);
	ck_assert_int_eq(rsc_loop_dispatch(a.loop, &made_up), -EINVAL);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "rsc_loop_dispatch"));
	ck_assert_int_eq(rsc_loop_alive(a.loop), 0);
	ck_assert_int_eq(rsc_loop_post(a.loop, count_post, &ran), 0);
	while (rsc_loop_alive(a.loop) > 0) {
		ck_assert_int_ge(io_uring_submit_and_wait(&a.ring, 1), 0);
		app_reap(&a);
	}
	ck_assert_int_eq(ran, 1);
	ck_assert_uint_eq(a.last.user_data, UD_POST);
	ck_assert_int_eq(rsc_loop_dispatch(a.loop, &a.last), -EINVAL);
	ck_assert_int_eq(ran, 1);
	ck_assert_int_eq(rsc_loop_alive(a.loop), 0);
	app_drain_and_close(&a);
}
END_TEST

/* A receiver on the application's ring with an inbox, and a direct entry of
 * the fixture's loop handed to it: the arrival's CQE is kept. */
struct shared_receiver {
	struct app a;
	struct rsc_scope *scope, *sender;
	struct rsc_entry *inbox, *sent;
	unsigned long long addr;
	int arrived;
};

static void hand_one_over(struct shared_receiver *r)
{
	memset(r, 0, sizeof(*r));
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	app_new(&r->a);
	ck_assert_int_eq(rsc_loop_set_direct(r->a.loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(r->a.loop, NULL, "receiver", &r->scope), 0);
	ck_assert_int_eq(rsc_inbox(r->scope, t_count_arrival, &r->arrived, &r->inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(r->inbox, &r->addr), 0);
	app_reap(&r->a); /* the inbox enters */
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &r->sender), 0);
	ck_assert_int_eq(rsc_open(r->sender, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT,
				  &r->sent), 0);
	ck_assert_int_ge(rsc_entry_wait(r->sent), 0);
	ck_assert_int_eq(rsc_entry_hand_over(r->sent, r->addr, NULL, NULL), 0);
	while (!r->arrived)
		app_reap(&r->a);
	ck_assert_int_eq(r->arrived, 1);
	ck_assert_uint_eq((uint32_t)r->a.last.user_data, 0); /* a message, not an op */
}

static void on_closed(struct rsc_scope *s, int status, const struct rsc_error *err, void *data)
{
	(void)s;
	(void)err;
	*(int *)data = status;
}

/* Both scopes close clean: the arrival's owner still had its file to close. */
static void receiver_end(struct shared_receiver *r)
{
	int status = 1;

	ck_assert_int_eq(rsc_scope_close_wait(r->sender, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(r->scope, on_closed, &status), 0);
	ck_assert_int_ge(rsc_loop_run(r->a.loop, RSC_RUN_NOWAIT), 0);
	while (rsc_loop_alive(r->a.loop) > 0) {
		ck_assert_int_ge(io_uring_submit_and_wait(&r->a.ring, 1), 0);
		app_reap(&r->a);
	}
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(rsc_loop_direct_used(r->a.loop), 0);
	ck_assert_int_eq(t_audit_slots(r->a.loop), 0);
	app_drain_and_close(&r->a);
}

/* The arrival's CQE given again: its slot has an owner already, and a second
 * one (or a close of it as an orphan) would take it from under that owner. */
START_TEST(arrival_dispatched_twice_is_refused)
{
	struct shared_receiver r;
	struct io_uring_cqe again;

	hand_one_over(&r);
	again = r.a.last;
	ck_assert_int_eq(rsc_loop_dispatch(r.a.loop, &again), -EINVAL);
	ck_assert_int_eq(r.arrived, 1);
	ck_assert_int_eq(rsc_loop_direct_used(r.a.loop), 1);
	ck_assert_int_eq(t_audit_slots(r.a.loop), 0);
	receiver_end(&r);
}
END_TEST

/* A made-up arrival naming a slot an entry holds, or none at all: refused, and
 * the holder's release still finds its file. */
START_TEST(made_up_arrival_is_refused)
{
	struct shared_receiver r;
	struct io_uring_cqe fake;
	int slot;

	hand_one_over(&r);
	slot = r.a.last.res;
	fake = (struct io_uring_cqe){ .user_data = (1ULL << 63) | 0x1234ULL << 32, .res = slot };
	ck_assert_int_eq(rsc_loop_dispatch(r.a.loop, &fake), -EINVAL);
	fake.res = -1;
	ck_assert_int_eq(rsc_loop_dispatch(r.a.loop, &fake), -EINVAL);
	fake.res = 1 << 20;
	ck_assert_int_eq(rsc_loop_dispatch(r.a.loop, &fake), -EINVAL);
	ck_assert_int_eq(rsc_loop_alive(r.a.loop), 1); /* the inbox's keep-alive only */
	ck_assert_int_eq(r.arrived, 1);
	receiver_end(&r);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 1); /* the sender's entry */
}
END_TEST

/* CQEs of ringscope's still on the application's ring, reaped and not dispatched. */
static int tagged_left(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	int n = 0;

	io_uring_submit_and_get_events(ring);
	while (io_uring_peek_cqe(ring, &cqe) == 0 && cqe) {
		n += (cqe->user_data >> 63) != 0;
		io_uring_cqe_seen(ring, cqe);
	}
	return n;
}

/*
 * Bug 70: an application with two rings, each with a loop and a direct
 * table, gives a hand-over's arrival to the wrong loop. That loop has the
 * slot free too, but the inbox is the other loop's: refused, nothing taken
 * (no parcel, no slot closed as an orphan in its own table), and the right
 * loop still receives it. Without the fix the wrong loop returned 1.
 */
START_TEST(arrival_for_another_rings_inbox_is_refused)
{
	struct shared_receiver r;
	struct io_uring_cqe *cqe;
	struct app other;
	int turns = 0, refused = 0;

	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	app_new(&r.a);
	ck_assert_int_eq(rsc_loop_set_direct(r.a.loop, 16, 4), 0);
	app_new(&other);
	ck_assert_int_eq(rsc_loop_set_direct(other.loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(r.a.loop, NULL, "receiver", &r.scope), 0);
	ck_assert_int_eq(rsc_inbox(r.scope, t_count_arrival, &r.arrived, &r.inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(r.inbox, &r.addr), 0);
	app_reap(&r.a); /* the inbox enters */
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &r.sender), 0);
	ck_assert_int_eq(rsc_open(r.sender, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &r.sent), 0);
	ck_assert_int_ge(rsc_entry_wait(r.sent), 0);
	ck_assert_int_eq(rsc_entry_hand_over(r.sent, r.addr, NULL, NULL), 0);
	while (!r.arrived && turns++ < 100) {
		ck_assert_int_ge(io_uring_submit_and_wait(&r.a.ring, 1), 0);
		while (io_uring_peek_cqe(&r.a.ring, &cqe) == 0 && cqe) {
			if ((uint32_t)cqe->user_data == 0 && (cqe->user_data >> 63)) { /* the arrival */
				ck_assert_int_eq(rsc_loop_dispatch(other.loop, cqe), -EINVAL);
				ck_assert_msg(strstr(rsc_last_error(), "another ring"), "%s", rsc_last_error());
				ck_assert_int_eq(rsc_loop_direct_used(other.loop), 0);
				ck_assert_int_eq(r.arrived, 0);
				refused++;
			}
			ck_assert_int_eq(rsc_loop_dispatch(r.a.loop, cqe), 1);
			io_uring_cqe_seen(&r.a.ring, cqe);
		}
		ck_assert_int_ge(rsc_loop_run(r.a.loop, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(refused, 1);
	ck_assert_int_eq(r.arrived, 1);
	ck_assert_int_eq(rsc_loop_direct_used(r.a.loop), 1);
	ck_assert_int_eq(t_audit_slots(r.a.loop), 0);
	ck_assert_int_eq(t_audit_slots(other.loop), 0);
	ck_assert_int_eq(tagged_left(&other.ring), 0); /* no orphan's close went out */
	receiver_end(&r);
	app_drain_and_close(&other);
}
END_TEST


/* A slot handed over before the inbox's scope closed, but sent only after
 * (its submit interrupted inside the call; on two threads, the race of
 * rsc_inbox(3) BUGS), arrives behind the completions that end the inbox. An
 * application that reaps one CQE at a time and stops once the loop says it
 * is idle (rsc_loop_new_from_ring(3)) must not be told so while that arrival
 * is still on its ring. */
START_TEST(arrival_behind_the_inbox_end_keeps_the_loop_alive)
{
	struct shared_receiver r;
	struct io_uring_cqe *cqe;
	struct rsc_entry *second;
	int turns = 0;

	hand_one_over(&r);
	ck_assert_int_eq(rsc_open(r.sender, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT,
				  &second), 0);
	ck_assert_int_ge(rsc_entry_wait(second), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "submit:1:EINTR"), 0);
	ck_assert_int_eq(rsc_entry_hand_over(second, r.addr, NULL, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 1);
	ck_assert_int_eq(rsc_scope_close(r.scope, NULL, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(r.a.loop, RSC_RUN_NOWAIT), 0); /* the keep-alive's cancel goes out */
	ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);   /* then the hand-over */
	while (rsc_loop_alive(r.a.loop) > 0 && turns++ < 100) {
		ck_assert_int_eq(io_uring_wait_cqe(&r.a.ring, &cqe), 0);
		ck_assert_int_eq(rsc_loop_dispatch(r.a.loop, cqe), 1);
		io_uring_cqe_seen(&r.a.ring, cqe);
		ck_assert_int_ge(rsc_loop_run(r.a.loop, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(rsc_loop_close(r.a.loop), 0);
	ck_assert_int_eq(tagged_left(&r.a.ring), 0);
	io_uring_queue_exit(&r.a.ring);
	ck_assert_int_eq(r.arrived, 1);
	ck_assert_int_eq(rsc_scope_close_wait(r.sender, NULL), 0);
}
END_TEST

static void count_io(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)res;
	(void)buf;
	(*(int *)data)++;
}

/*
 * rsc_loop_close(3) on the application's ring fails with -EBUSY while
 * anything of ringscope's is in flight there. A call that found no memory
 * for its op had taken its SQE already, and left a NOP of ringscope's on
 * the ring that nothing counted: the loop closed, and the application then
 * reaped a CQE tagged as ringscope's, for a loop that was gone.
 */
START_TEST(nop_left_by_a_call_without_memory_keeps_the_loop_alive)
{
	struct app a;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int sv[2], calls = 0, ret;
	char buf[4];

	app_new(&a);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &e), 0);
	app_reap(&a);
	ck_assert_int_eq(rsc_fault_set(a.loop, "alloc:1:ENOMEM"), 0);
	ret = rsc_recv(e, buf, sizeof(buf), 0, count_io, &calls);
	ck_assert_int_eq(rsc_fault_set(a.loop, NULL), 0);
	ck_assert_int_eq(ret, -ENOMEM);
	ck_assert_uint_eq(io_uring_sq_ready(&a.ring), 1); /* the NOP in its SQE's place */
	ck_assert_int_gt(rsc_loop_alive(a.loop), 0);
	ck_assert_int_eq(rsc_entry_detach(e), sv[0]);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(rsc_loop_close(a.loop), -EBUSY); /* the NOP's CQE is still to come */
	app_drain_and_close(&a);
	ck_assert_int_eq(calls, 0);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* Bug 100: a CQE tagged as ringscope's NOP is one only while such a NOP is in flight:
 * made up, or given a second time, it is refused, and the loop cannot close early. */
START_TEST(nop_cqe_made_up_or_given_twice_is_refused)
{
	struct io_uring_cqe made_up = { .user_data = 1ULL << 63 }, *cqe;
	struct app a;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int sv[2], calls = 0;
	long long cqes;
	char buf[4];

	app_new(&a);
	cqes = rsc_loop_counter(a.loop, RSC_CTR_CQES);
	ck_assert_int_eq(rsc_loop_dispatch(a.loop, &made_up), -EINVAL);
	ck_assert_int_eq(rsc_loop_counter(a.loop, RSC_CTR_CQES), cqes);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "s", &s), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(rsc_adopt(s, sv[0], 0, &e), 0);
	app_reap(&a);
	ck_assert_int_eq(rsc_fault_set(a.loop, "alloc:1:ENOMEM"), 0);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, count_io, &calls), -ENOMEM);
	ck_assert_int_eq(rsc_fault_set(a.loop, NULL), 0);
	ck_assert_int_eq(io_uring_submit_and_wait(&a.ring, 1), 1); /* the NOP left in its SQE's place */
	ck_assert_int_eq(io_uring_peek_cqe(&a.ring, &cqe), 0);
	ck_assert_uint_eq(cqe->user_data, 1ULL << 63);
	ck_assert_int_eq(rsc_loop_dispatch(a.loop, cqe), 1);
	ck_assert_int_eq(rsc_loop_dispatch(a.loop, cqe), -EINVAL); /* given twice */
	io_uring_cqe_seen(&a.ring, cqe);
	ck_assert_int_eq(rsc_entry_detach(e), sv[0]);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	app_drain_and_close(&a);
	ck_assert_int_eq(calls, 0);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* The direct table a loop registered on the application's ring goes with the
 * loop: the ring is the application's again, and a later loop can have one. */
START_TEST(closed_loop_leaves_no_table_on_the_ring)
{
	struct app a;

	app_new(&a);
	ck_assert_int_eq(rsc_loop_set_direct(a.loop, 16, 4), 0);
	ck_assert_int_eq(rsc_loop_close(a.loop), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&a.loop, &a.ring, 0), 0);
	ck_assert_int_eq(rsc_loop_set_direct(a.loop, 16, 4), 0);
	ck_assert_int_eq(rsc_loop_close(a.loop), 0);
	ck_assert_int_eq(io_uring_register_files_sparse(&a.ring, 4), 0);
	io_uring_queue_exit(&a.ring);
}
END_TEST

/* An application whose own I/O keeps flowing: one CQE of its own always waits. */
static void app_nop(struct app *a)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);

	ck_assert_ptr_nonnull(sqe);
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 7);
	ck_assert_int_ge(io_uring_submit(&a->ring), 1);
}

/* Ringscope's CQEs dispatched, the application's left where they are. */
static void app_turn_leaving_its_own(struct app *a)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0, own = 0;

	app_nop(a);
	io_uring_for_each_cqe(&a->ring, head, cqe) {
		if (rsc_loop_dispatch(a->loop, cqe) == 0)
			own++;
		n++;
	}
	/* Its own last, unseen: it will handle them on its next turn. */
	ck_assert_uint_ge(own, 1);
	io_uring_cq_advance(&a->ring, n - 1);
	ck_assert_int_ge(rsc_loop_run(a->loop, RSC_RUN_NOWAIT), 0);
}

/* The full audit settles a scope once no CQE that may name a descriptor is
 * waiting: on the application's ring, its own CQEs name none of ours, and
 * must not hold the verdict back until the loop is gone. */
START_TEST(full_audit_verdict_ignores_the_applications_cqes)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct app a;
	int leaked, turns;

	t_make_files(2);
	app_new(&a);
	ck_assert_int_eq(rsc_loop_set_audit(a.loop, RSC_AUDIT_FULL), 0);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "leaky", &s), 0);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	for (turns = 0; rsc_entry_state(e) == RSC_ENTERING && turns < 100; turns++)
		app_turn_leaving_its_own(&a);
	leaked = open(t_path("f1"), O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(leaked, 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	for (turns = 0; rsc_loop_alive(a.loop) > 0 && turns < 100; turns++)
		app_turn_leaving_its_own(&a);
	ck_assert_int_eq(rsc_loop_alive(a.loop), 0);
	app_turn_leaving_its_own(&a);
	ck_assert_int_eq(rsc_audit_count(a.loop), 1);
	ck_assert_int_eq(rsc_finding_fd(rsc_audit_finding(a.loop, 0)), leaked);
	close(leaked);
	ck_assert_int_eq(rsc_loop_close(a.loop), 0);
	io_uring_queue_exit(&a.ring);
}
END_TEST

/* Two loops on two rings of the application's, each with an open in flight:
 * the first's CQE names an op by index and generation, which the second's
 * op in flight must not share, or it completes with the other's descriptor. */
START_TEST(another_loops_cqe_is_refused)
{
	struct rsc_scope *sa, *sb;
	struct rsc_entry *ea, *eb;
	struct io_uring_cqe *cqe;
	struct app a, b;

	t_make_files(2);
	app_new(&a);
	app_new(&b);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "a", &sa), 0);
	ck_assert_int_eq(rsc_scope_open(b.loop, NULL, "b", &sb), 0);
	ck_assert_int_eq(rsc_open(sa, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &ea), 0);
	ck_assert_int_eq(rsc_open(sb, AT_FDCWD, t_path("f1"), O_RDONLY, 0, 0, &eb), 0);
	ck_assert_int_eq(io_uring_submit_and_wait(&a.ring, 1), 1);
	ck_assert_int_eq(io_uring_peek_cqe(&a.ring, &cqe), 0);
	ck_assert_int_eq(rsc_loop_dispatch(b.loop, cqe), -EINVAL);
	ck_assert_int_eq(rsc_entry_state(eb), RSC_ENTERING);
	ck_assert_int_eq(rsc_loop_dispatch(a.loop, cqe), 1);
	io_uring_cqe_seen(&a.ring, cqe);
	ck_assert_int_eq(rsc_entry_state(ea), RSC_ENTERED);
	while (rsc_entry_state(eb) == RSC_ENTERING) {
		ck_assert_int_ge(io_uring_submit_and_wait(&b.ring, 1), 0);
		app_reap(&b);
	}
	ck_assert_int_ne(rsc_entry_fd(eb), rsc_entry_fd(ea));
	ck_assert_int_eq(rsc_scope_close(sa, NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(sb, NULL, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_ge(rsc_loop_run(b.loop, RSC_RUN_NOWAIT), 0);
	app_drain_and_close(&a);
	app_drain_and_close(&b);
}
END_TEST

/* A wake the kernel refused (a ring still disabled, IORING_SETUP_R_DISABLED:
 * the MSG_RING fails with EBADFD) never reaches the ring: the loop must not
 * wait for its CQE, once a turn has run the post. */
START_TEST(failed_wake_does_not_keep_the_loop_alive)
{
	struct io_uring ring;
	struct rsc_loop *l;
	int ran = 0, turns;

	ck_assert_int_eq(io_uring_queue_init(16, &ring, IORING_SETUP_R_DISABLED), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_post(l, count_post, &ran), 0);
	/* io_uring_enable_rings(3): not exported by liburing 2.3's library. */
	ck_assert_int_eq(syscall(__NR_io_uring_register, ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
				  NULL, 0), 0);
	for (turns = 0; turns < 10 && rsc_loop_alive(l) > 0; turns++) {
		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		usleep(1000);
	}
	ck_assert_int_eq(ran, 1);
	ck_assert_int_eq(rsc_loop_alive(l), 0);
	ck_assert_int_eq(rsc_loop_close(l), 0);
	ck_assert_int_eq(tagged_left(&ring), 0);
	io_uring_queue_exit(&ring);
}
END_TEST

/* An earlier deadline whose timer could not be moved for want of an SQE (the
 * application's SQ full, and no submit possible on a ring still disabled) is
 * moved on a later turn, on the application's ring as on the loop's own. */
START_TEST(deadline_timer_moved_on_a_later_turn)
{
	struct rsc_scope *late, *soon;
	struct io_uring ring;
	struct rsc_loop *l;
	int st_soon = 1, st_late = 1, turns;

	ck_assert_int_eq(io_uring_queue_init(16, &ring, IORING_SETUP_R_DISABLED), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&l, &ring, 0), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "late", &late), 0);
	ck_assert_int_eq(rsc_scope_open(l, NULL, "soon", &soon), 0);
	ck_assert_int_eq(rsc_scope_set_deadline(late, 20000, 0), 0);
	while (io_uring_get_sqe(&ring))
		; /* the application's, not submitted yet */
	ck_assert_int_eq(rsc_scope_set_deadline(soon, 20, 0), 0);
	ck_assert_int_eq(syscall(__NR_io_uring_register, ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
				  NULL, 0), 0);
	ck_assert_int_ge(io_uring_submit(&ring), 0);
	ck_assert_int_eq(rsc_scope_close(late, on_closed, &st_late), 0);
	for (turns = 0; turns < 100 && (st_soon == 1 || st_late == 1); turns++) {
		struct __kernel_timespec ts = { 0, 10 * 1000000 };
		struct io_uring_cqe *cqe;

		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		(void)io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
		while (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe) {
			ck_assert_int_ge(rsc_loop_dispatch(l, cqe), 0);
			io_uring_cqe_seen(&ring, cqe);
		}
		if (rsc_scope_state(soon) == RSC_SCOPE_UNWOUND && st_soon == 1)
			ck_assert_int_eq(rsc_scope_close(soon, on_closed, &st_soon), 0);
	}
	/* Within a second, not at the 20 s of the timer set first. */
	ck_assert_int_eq(st_soon, -ETIMEDOUT);
	ck_assert_int_eq(st_late, 0);
	for (turns = 0; turns < 100 && rsc_loop_alive(l) > 0; turns++) {
		struct io_uring_cqe *cqe;

		ck_assert_int_ge(rsc_loop_run(l, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(io_uring_submit_and_wait(&ring, 1), 0);
		while (io_uring_peek_cqe(&ring, &cqe) == 0 && cqe) {
			ck_assert_int_ge(rsc_loop_dispatch(l, cqe), 0);
			io_uring_cqe_seen(&ring, cqe);
		}
	}
	ck_assert_int_eq(rsc_loop_close(l), 0);
	io_uring_queue_exit(&ring);
}
END_TEST

/* rsc_loop_new_from_ring(3): one loop per ring, and no ring whose setup it cannot work with. */
START_TEST(a_ring_carries_one_loop_and_no_polled_ring_any)
{
	struct io_uring ring, polled;
	struct io_uring_params p = { .flags = IORING_SETUP_SQPOLL };
	struct rsc_loop *a, *b;

	ck_assert_int_eq(io_uring_queue_init(16, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&a, &ring, 0), 0);
	/* A second loop could not tell a wake-up of its own from the first's. */
	ck_assert_int_eq(rsc_loop_new_from_ring(&b, &ring, 0), -EBUSY);
	ck_assert_ptr_null(b);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "carries a loop"));
	ck_assert_int_eq(rsc_loop_close(a), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&b, &ring, 0), 0);
	ck_assert_int_eq(rsc_loop_close(b), 0);
	io_uring_queue_exit(&ring);
	/* IOPOLL: no open, socket or close could ever complete on it. */
	ck_assert_int_eq(io_uring_queue_init(16, &polled, IORING_SETUP_IOPOLL), 0);
	ck_assert_int_eq(rsc_loop_new_from_ring(&a, &polled, 0), -EOPNOTSUPP);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "IORING_SETUP_IOPOLL"));
	io_uring_queue_exit(&polled);
	/* SQPOLL: a submit only wakes the kernel's thread, so nothing is sent inside a call. */
	if (io_uring_queue_init_params(16, &polled, &p) == 0) {
		ck_assert_int_eq(rsc_loop_new_from_ring(&a, &polled, 0), -EOPNOTSUPP);
		ck_assert_ptr_nonnull(strstr(rsc_last_error(), "IORING_SETUP_SQPOLL"));
		io_uring_queue_exit(&polled);
	}
}
END_TEST

/* ---- an arrival never dispatched ---- */

struct accepted_conn {
	struct rsc_entry *e;
	struct rsc_scope *cs;
	int n;
};

static void keep_conn(struct rsc_entry *l, int res, struct rsc_scope *cs, struct rsc_entry *e,
		      void *data)
{
	struct accepted_conn *a = data;

	(void)l;
	ck_assert_int_ge(res, 0);
	a->n++;
	a->e = e;
	a->cs = cs;
}

static void store_sent(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res;
}

/* A hand-over's message: ours, and no op's (its low half is 0, or a parcel's number). */
static bool is_arrival(const struct io_uring_cqe *cqe)
{
	return (cqe->user_data >> 63) && ((uint32_t)cqe->user_data == 0 ||
					  ((uint32_t)cqe->user_data >> 31));
}

/* Every CQE of the ring dispatched but a hand-over's arrival, which is dropped. */
static int reap_dropping_arrivals(struct app *a)
{
	struct io_uring_cqe *cqe;
	int dropped = 0;

	ck_assert_int_ge(io_uring_submit_and_get_events(&a->ring), 0);
	while (io_uring_peek_cqe(&a->ring, &cqe) == 0 && cqe) {
		if (is_arrival(cqe))
			dropped++;
		else
			ck_assert_int_ge(rsc_loop_dispatch(a->loop, cqe), 0);
		io_uring_cqe_seen(&a->ring, cqe);
	}
	ck_assert_int_ge(rsc_loop_run(a->loop, RSC_RUN_NOWAIT), 0);
	return dropped;
}

/* A connection accepted into a slot of the fixture's loop (its peer's address
 * kept), handed to a receiver on the application's ring that never dispatches
 * the arrival, closes its inbox and loop, and tears its ring down. */
static void hand_over_never_dispatched(struct rsc_entry *listener, const struct sockaddr_in *at)
{
	struct accepted_conn acc = { 0 };
	struct rsc_scope *rs;
	struct rsc_entry *inbox;
	unsigned long long addr;
	struct app a;
	int arrived = 0, dropped = 0, client, sent = 1000, turns;

	app_new(&a);
	ck_assert_int_eq(rsc_loop_set_direct(a.loop, 16, 4), 0);
	ck_assert_int_eq(rsc_scope_open(a.loop, NULL, "receiver", &rs), 0);
	ck_assert_int_eq(rsc_inbox(rs, t_count_arrival, &arrived, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	app_reap(&a); /* the inbox enters */
	ck_assert_int_eq(rsc_accept(listener, RSC_DIRECT, keep_conn, &acc), 0);
	client = t_connect(at);
	while (!acc.n)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_entry_hand_over(acc.e, addr, store_sent, &sent), 0);
	while (sent == 1000)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_ge(sent, 0); /* delivered to the receiver's ring */
	dropped = reap_dropping_arrivals(&a);
	ck_assert_int_eq(dropped, 1);
	ck_assert_int_eq(rsc_scope_close(rs, NULL, NULL), 0);
	ck_assert_int_ge(rsc_loop_run(a.loop, RSC_RUN_NOWAIT), 0);
	for (turns = 0; rsc_loop_alive(a.loop) > 0 && turns < 1000; turns++) {
		ck_assert_int_ge(io_uring_submit_and_wait(&a.ring, 1), 0);
		reap_dropping_arrivals(&a);
	}
	ck_assert_int_eq(arrived, 0);
	ck_assert_int_eq(rsc_loop_close(a.loop), 0);
	io_uring_queue_exit(&a.ring); /* the kernel drops the slot with the ring */
	ck_assert_int_eq(rsc_scope_close_wait(acc.cs, NULL), 0); /* the sender's entry, given away */
	close(client);
}

/*
 * rsc_entry_hand_over(3): the peer's address waits for the receiver in memory
 * of the library's. A receiver on the application's ring that never
 * dispatches the arrival (rsc_loop_new_from_ring(3): the application reaps)
 * and goes away must not leave it behind: the address is freed with the
 * receiver's inbox, and the heap is back where it was, hand-over after
 * hand-over.
 */
START_TEST(address_of_an_arrival_never_dispatched_goes_with_its_receiver)
{
	struct sockaddr_in at;
	struct rsc_scope *s;
	struct rsc_entry *listener;
	size_t before = 0;
	int i, fds = t_fd_count();

	t_direct_table(16, 4);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "acceptor", &s), 0);
	listener = t_listen_on_loopback(s, 8, &at);
	/* The pools, and glibc's per-thread caches of freed blocks (counted as
	 * in use), warm up first: for 5 to 9 rounds, as the heap the test
	 * process forked from was left. */
	for (i = 0; i < 24; i++) {
		if (i == 16)
			before = heap_in_use();
		hand_over_never_dispatched(listener, &at);
	}
	/* One address left behind is 128 bytes and more, each round. */
	ck_assert_uint_lt(heap_in_use(), before + sizeof(struct sockaddr_storage));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(t_fd_count(), fds);
}
END_TEST

Suite *make_shared_ring_suite(void)
{
	Suite *s = suite_create("shared_ring");
	TCase *tc = tcase_create("shared_ring");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	if (!t_kernel_has(IORING_OP_MSG_RING)) {
		printf("SKIP shared_ring suite: kernel lacks IORING_OP_MSG_RING (Linux 5.18; IORING_MSG_SEND_FD 6.0)\n");
	} else {
		t_add_test_if(tc, wake_dispatched_twice_or_made_up_is_refused,
			      t_has_post_msg_ring(),
			      "a post's MSG_RING wake (a probe, and MSG_RING: Linux 5.18)");
		t_add_test_if(tc, arrival_dispatched_twice_is_refused, t_has_hand_over(),
			      "IORING_MSG_SEND_FD (Linux 6.0)");
		t_add_test_if(tc, made_up_arrival_is_refused, t_has_hand_over(),
			      "IORING_MSG_SEND_FD (Linux 6.0)");
		t_add_test_if(tc, arrival_for_another_rings_inbox_is_refused, t_has_hand_over(),
			      "IORING_MSG_SEND_FD (Linux 6.0)");
		t_add_test_if(tc, arrival_behind_the_inbox_end_keeps_the_loop_alive,
			      t_has_hand_over() && rsc_fault_set(t_probe_loop(), "") == 0,
			      "IORING_MSG_SEND_FD (Linux 6.0) and fault injection");
		tcase_add_test(tc, closed_loop_leaves_no_table_on_the_ring);
		t_add_test_if(tc, nop_left_by_a_call_without_memory_keeps_the_loop_alive,
			      rsc_fault_set(t_probe_loop(), "") == 0, "fault injection");
		t_add_test_if(tc, nop_cqe_made_up_or_given_twice_is_refused,
			      rsc_fault_set(t_probe_loop(), "") == 0, "fault injection");
		tcase_add_test(tc, full_audit_verdict_ignores_the_applications_cqes);
		tcase_add_test(tc, another_loops_cqe_is_refused);
		t_add_test_if(tc, failed_wake_does_not_keep_the_loop_alive, t_has_post_msg_ring(),
			      "a post's MSG_RING wake (a probe, and MSG_RING: Linux 5.18)");
		tcase_add_test(tc, deadline_timer_moved_on_a_later_turn);
		tcase_add_test(tc, a_ring_carries_one_loop_and_no_polled_ring_any);
		t_add_test_if(tc, address_of_an_arrival_never_dispatched_goes_with_its_receiver,
			      t_has_hand_over() && t_kernel_has(IORING_OP_SOCKET),
			      "IORING_MSG_SEND_FD (Linux 6.0) or IORING_OP_SOCKET (5.19)");
	}
	suite_add_tcase(s, tc);
	return s;
}
