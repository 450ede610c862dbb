/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"

/*
 * Hand-overs of direct slots between two loops run by one thread, as the
 * soak runs them (tests/soak/handover.c): when the slot leaves the sender,
 * where it arrives, and that it arrives once. The fixture's loop sends; each
 * test makes the receiving loop with an inbox and closes it.
 */

struct receiver {
	struct rsc_loop *loop;
	struct rsc_scope *scope;
	struct rsc_entry *inbox;
	unsigned long long addr;
	int arrived;
};

static void receiver_new(struct receiver *r)
{
	r->arrived = 0;
	ck_assert_int_eq(rsc_loop_new(&r->loop, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(r->loop, NULL, "receiver", &r->scope), 0);
	ck_assert_int_eq(rsc_inbox(r->scope, t_count_arrival, &r->arrived, &r->inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(r->inbox, &r->addr), 0);
}

/* Turns of the receiver only: what the kernel delivered reaches its inbox. */
static void receiver_run(struct receiver *r)
{
	int i;

	for (i = 0; i < 4; i++)
		ck_assert_int_ge(rsc_loop_run(r->loop, RSC_RUN_NOWAIT), 0);
}

/* Closed with nothing left in its table, as the kernel sees it too. */
static void receiver_close(struct receiver *r)
{
	ck_assert_int_eq(rsc_scope_close_wait(r->scope, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(r->loop), 0);
	ck_assert_int_eq(t_audit_slots(r->loop), 0);
	ck_assert_int_eq(rsc_loop_close(r->loop), 0);
}

/* A receiver, and a direct entry of the fixture's loop, entered, in a new scope. */
static struct rsc_entry *pair_new(struct receiver *r, struct rsc_scope **s)
{
	struct rsc_entry *e;

	receiver_new(r);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", s), 0);
	ck_assert_int_eq(rsc_open(*s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	return e;
}

/* The end of every test: the sender's scope, then the receiver, leave no slot. */
static void close_both(struct rsc_scope *s, struct receiver *r)
{
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	receiver_close(r);
}

struct sent {
	int n, res, slot; /* callbacks, their result, the sender's slot then */
};

static void on_sent(struct rsc_entry *e, int res, void *data)
{
	struct sent *s = data;

	s->n++;
	s->res = res;
	s->slot = rsc_entry_slot(e);
}

static void run_until_sent(struct sent *s)
{
	while (!s->n)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
}

/* On one thread, nothing the program does after the call can misdirect it. */
START_TEST(hand_over_has_reached_the_inbox_when_the_call_returns)
{
	struct receiver r;
	struct sent sent = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e = pair_new(&r, &s);

	ck_assert_int_eq(rsc_entry_hand_over(e, r.addr, on_sent, &sent), 0);
	receiver_run(&r); /* and not the sender */
	ck_assert_int_eq(r.arrived, 1);
	run_until_sent(&sent);
	ck_assert_int_ge(sent.res, 0);
	ck_assert_int_eq(sent.slot, -EXDEV);
	ck_assert_int_eq(rsc_loop_direct_used(r.loop), 1);
	/* The sender's entry holds nothing now, and names nothing (rsc_entry_peername(3)). */
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);

		ck_assert_int_eq(rsc_entry_peername(e, (struct sockaddr *)&ss, &len), -EXDEV);
		ck_assert_int_eq(rsc_entry_sockname(e, (struct sockaddr *)&ss, &len), -EXDEV);
	}
	close_both(s, &r);
}
END_TEST

/*
 * The receiver closes right after the call, and a new loop (whose ring likely
 * has the old one's descriptor number) opens an inbox: the slot went to the
 * closed receiver, never to the new loop, whichever the sender says.
 */
START_TEST(hand_over_never_reaches_a_loop_made_after_its_receiver_closed)
{
	struct receiver r, later;
	struct sent sent = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e = pair_new(&r, &s);

	ck_assert_int_eq(rsc_entry_hand_over(e, r.addr, on_sent, &sent), 0);
	receiver_close(&r); /* its unwind closes what arrived */
	ck_assert_int_eq(r.arrived, 0);
	receiver_new(&later);
	run_until_sent(&sent);
	receiver_run(&later);
	ck_assert_int_eq(later.arrived, 0);
	/* Not even closed there as a stray: it never reached that ring. */
	ck_assert_int_eq(rsc_loop_counter(later.loop, RSC_CTR_LATE_ACQUIRES), 0);
	ck_assert_int_eq(rsc_loop_direct_used(later.loop), 0);
	ck_assert_int_ge(sent.res, 0); /* delivered, to the receiver it named */
	close_both(s, &later);
}
END_TEST

/* rsc_inbox(3): "Releasing the inbox stops it; a slot that arrives after that ... is closed". */
/*
 * rsc_entry_hand_over(3): an inbox whose release was asked, or whose scope
 * is closing, receives nothing more (an arrival would be closed): its
 * address is refused with -ESTALE from then on, and the slot stays the
 * sender's, not "sent" to be closed by the receiver. @how: 0 the inbox's
 * release, 1 its scope's close, 2 its scope's graceful close, 3 its scope's failure.
 */
static void hand_over_to_an_inbox_going(int how)
{
	struct receiver r;
	struct sent sent = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e = pair_new(&r, &s);
	struct rsc_scope *is = rsc_entry_scope(r.inbox);
	int slot = rsc_entry_slot(e);

	receiver_run(&r);
	if (how == 0)
		ck_assert_int_eq(rsc_entry_release(r.inbox, NULL, NULL), 0);
	else if (how == 1)
		ck_assert_int_eq(rsc_scope_close(is, NULL, NULL), 0);
	else if (how == 2)
		ck_assert_int_eq(rsc_scope_close_graceful(is, 1000, NULL, NULL), 0);
	else
		ck_assert_int_eq(rsc_scope_fail(is, -EIO, "test"), 0);
	/* Not done yet (its keep-alive is cancelled first): going all the same. */
	ck_assert_int_eq(rsc_entry_hand_over(e, r.addr, on_sent, &sent), -ESTALE);
	ck_assert_ptr_nonnull(strstr(rsc_last_error(), "being released"));
	receiver_run(&r);
	ck_assert_int_eq(r.arrived, 0);
	ck_assert_int_eq(sent.n, 0);
	ck_assert_int_eq(rsc_loop_direct_used(r.loop), 0);
	ck_assert_int_eq(rsc_loop_counter(r.loop, RSC_CTR_LATE_ACQUIRES), 0);
	/* Nothing sent: the slot is still the sender's. */
	ck_assert_int_eq(rsc_entry_slot(e), slot);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	/* The receiver's scope is closing already: its loop's shutdown ends it, and frees the loop. */
	ck_assert_int_ge(rsc_loop_shutdown(r.loop, NULL), -EIO);
}

START_TEST(slot_handed_to_a_released_inbox_is_refused_and_kept)
{
	hand_over_to_an_inbox_going(0);
}
END_TEST

START_TEST(slot_handed_to_an_inbox_whose_scope_closes_is_refused_and_kept)
{
	hand_over_to_an_inbox_going(1);
	hand_over_to_an_inbox_going(2);
	hand_over_to_an_inbox_going(3);
}
END_TEST

/* Until the first one's close_direct, the slot still holds the file. */
START_TEST(second_hand_over_of_a_slot_in_flight_is_refused)
{
	struct receiver r;
	struct sent sent[2] = { { 0 }, { 0 } };
	struct rsc_scope *s;
	struct rsc_entry *e = pair_new(&r, &s);

	ck_assert_int_eq(rsc_entry_hand_over(e, r.addr, on_sent, &sent[0]), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, r.addr, on_sent, &sent[1]), -EBUSY);
	run_until_sent(&sent[0]);
	receiver_run(&r);
	ck_assert_int_ge(sent[0].res, 0);
	ck_assert_int_eq(sent[1].n, 0);
	ck_assert_int_eq(r.arrived, 1);
	ck_assert_int_eq(rsc_loop_direct_used(r.loop), 1);
	close_both(s, &r);
}
END_TEST

/*
 * A busy submit sets completions aside; a reap that followed took newer ones
 * from the ring first: the close behind a hand-over reported the hand-over
 * (as not yet done) before the hand-over's own completion said it was.
 */
START_TEST(completions_set_aside_by_a_busy_submit_are_dispatched_first)
{
	struct receiver r;
	struct sent sent = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e = pair_new(&r, &s);

	ck_assert_int_eq(rsc_entry_hand_over(e, r.addr, on_sent, &sent), 0);
	/* The sender's completions wait in its task work (DEFER_TASKRUN): the
	 * next submit is refused, and the wait behind it sets the first aside. */
	ck_assert_int_eq(rsc_fault_set(t_loop, "submit:1:EBUSY"), 0);
	run_until_sent(&sent);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 1);
	ck_assert_int_ge(sent.res, 0);
	ck_assert_int_eq(sent.slot, -EXDEV);
	receiver_run(&r);
	ck_assert_int_eq(r.arrived, 1);
	close_both(s, &r);
}
END_TEST

/*
 * The hand-over left after its inbox went (here a submit interrupted inside
 * the call leaves it to the sender's next turn; on two threads, the race of
 * rsc_inbox(3) BUGS): the receiver, with nothing alive, still reads its CQ and
 * closes the slot instead of leaving it in its table, owned by nobody.
 */
START_TEST(slot_arriving_after_the_inbox_went_is_closed_by_an_idle_loop)
{
	struct receiver r;
	struct sent sent = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e = pair_new(&r, &s);

	ck_assert_int_eq(rsc_fault_set(t_loop, "submit:1:EINTR"), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, r.addr, on_sent, &sent), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), 1);
	ck_assert_int_eq(rsc_entry_release(r.inbox, NULL, NULL), 0);
	receiver_run(&r); /* its release is done: the receiver has nothing alive */
	ck_assert_int_eq(rsc_loop_alive(r.loop), 0);
	run_until_sent(&sent);
	ck_assert_int_ge(sent.res, 0);
	receiver_run(&r);
	ck_assert_int_eq(r.arrived, 0);
	/* The kernel's table holds nothing either: it was closed. */
	ck_assert_int_eq(t_audit_slots(r.loop), 0);
	close_both(s, &r);
}
END_TEST

/* DESIGN 7: once an unwind owns an entry, nobody moves it out, not to another loop either. */
START_TEST(hand_over_out_of_an_unwinding_ancestor_is_refused)
{
	struct receiver r;
	struct sent sent = { 0 };
	struct rsc_scope *s, *child;
	struct rsc_entry *e;
	int before;

	receiver_new(&r);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	t_make_files(1);
	ck_assert_int_eq(rsc_scope_open(t_loop, NULL, "sender", &s), 0);
	ck_assert_int_eq(rsc_scope_open(t_loop, s, "child", &child), 0);
	ck_assert_int_eq(rsc_open(child, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	before = t_count_events(RSC_EV_RELEASED);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, r.addr, on_sent, &sent), -EALREADY);
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_DEFAULT), 0);
	receiver_run(&r);
	ck_assert_int_eq(r.arrived, 0);
	ck_assert_int_eq(sent.n, 0);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), before + 1); /* in its LIFO turn */
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	receiver_close(&r);
}
END_TEST

/* Bug 96: its own scope's close or failure asked for, not started: one answer for both, as detach's. */
START_TEST(hand_over_out_of_a_closing_or_failing_scope_is_the_unwinds)
{
	struct receiver r;
	struct sent sent = { 0 };
	struct rsc_scope *s[2];
	struct rsc_entry *e[2];
	int i;

	receiver_new(&r);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	t_make_files(1);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(rsc_scope_open(t_loop, NULL, i ? "failing" : "closing", &s[i]), 0);
		ck_assert_int_eq(rsc_open(s[i], AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e[i]), 0);
		ck_assert_int_ge(rsc_entry_wait(e[i]), 0);
	}
	ck_assert_int_eq(rsc_scope_close(s[0], NULL, NULL), 0);
	ck_assert_int_eq(rsc_scope_fail(s[1], -EIO, "body"), 0);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(rsc_entry_hand_over(e[i], r.addr, on_sent, &sent), -EALREADY);
		ck_assert_int_eq(rsc_entry_detach(e[i]), -EALREADY);
	}
	ck_assert_int_eq(rsc_loop_run(t_loop, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s[1], NULL), -EIO); /* the failure's, taken */
	receiver_run(&r);
	ck_assert_int_eq(r.arrived, 0);
	ck_assert_int_eq(sent.n, 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	receiver_close(&r);
}
END_TEST

/*
 * rsc_entry_hand_over(3): the two ops of a hand-over are a move of ownership,
 * tracked so that a release waits for them, never cancelled by it. A cancel
 * could stop the MSG_RING only where the kernel still holds it (punted to
 * io-wq), leaving the slot with the sender after all, as chance decides. Here
 * the hand-over is left in the queue (a submit interrupted inside the call),
 * and then the entry is released, or its scope closed, before the loop turns:
 * every cancel the loop sends is counted (each one a rule that turns it into
 * a no-op), and none goes out; the hand-over completes, then the release.
 */
static int n_calls;

struct seen {
	int n, res, at; /* calls, the last result, the order of the last call */
};

static void on_seen(struct rsc_entry *e, int res, void *data)
{
	struct seen *s = data;

	(void)e;
	s->n++;
	s->res = res;
	s->at = ++n_calls;
}

static void on_scope_seen(struct rsc_scope *sc, int status, const struct rsc_error *err, void *data)
{
	(void)err;
	on_seen(NULL, status, data);
	(void)sc;
}

START_TEST(release_waits_for_a_hand_over_in_flight_without_cancelling_it)
{
	struct receiver r;
	struct seen sent = { 0 }, released = { 0 };
	struct rsc_scope *s;
	struct rsc_entry *e = pair_new(&r, &s);
	long long faults = rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED);
	long long by_fd = rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD);

	n_calls = 0;
	ck_assert_int_eq(rsc_fault_set(t_loop, "submit:1:EINTR,cancel:1:EALREADY,cancel:2:EALREADY,"
					       "cancel:3:EALREADY"), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, r.addr, on_seen, &sent), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), faults + 1);
	ck_assert_int_eq(rsc_entry_io_count(e), 2); /* in flight, not yet submitted */
	if (_i == 0)
		ck_assert_int_eq(rsc_entry_release(e, on_seen, &released), 0);
	else
		ck_assert_int_eq(rsc_scope_close(s, on_scope_seen, &released), 0);
	while (!released.n)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	/* No cancel was sent: only the submit's rule fired. */
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_FAULTS_INJECTED), faults + 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_CANCEL_FD), by_fd);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	/* The hand-over went through, and was told before the release completed. */
	ck_assert_int_eq(sent.n, 1);
	ck_assert_int_ge(sent.res, 0);
	ck_assert_int_eq(released.res, 0);
	ck_assert_int_lt(sent.at, released.at);
	receiver_run(&r);
	ck_assert_int_eq(r.arrived, 1);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_loop_direct_used(r.loop), 1);
	if (_i == 0)
		ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	receiver_close(&r);
}
END_TEST

static void inbox_entered(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	*(int *)data = res + 1;
}

/* rsc_inbox(3): "It holds no descriptor ... rsc_entry_fd(3) returns 0, as
 * for rsc_defer(3)": entered from the call on; its on-enter from the loop. */
START_TEST(inbox_holds_no_descriptor_from_the_call_on)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *inbox;
	int entered = 0, arrived = 0;

	ck_assert_int_eq(rsc_loop_new(&loop, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(loop, NULL, "receiver", &s), 0);
	ck_assert_int_eq(rsc_inbox(s, t_count_arrival, &arrived, &inbox), 0);
	ck_assert_int_eq(rsc_entry_fd(inbox), 0);
	ck_assert_int_eq(rsc_entry_state(inbox), RSC_ENTERED);
	ck_assert_int_eq(rsc_entry_on_enter(inbox, inbox_entered, &entered), 0);
	ck_assert_int_eq(entered, 0); /* never inside the call */
	ck_assert_int_ge(rsc_loop_run(loop, RSC_RUN_NOWAIT), 0);
	ck_assert_int_eq(entered, 1); /* res 0 */
	ck_assert_int_eq(rsc_read(inbox, &arrived, 1, 0, NULL, NULL), -EBADF);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(arrived, 0);
	ck_assert_int_eq(rsc_loop_close(loop), 0);
}
END_TEST

Suite *make_handover_suite(void)
{
	Suite *s = suite_create("handover");
	TCase *tc = tcase_create("handover");

	t_add_fixture(tc);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, inbox_holds_no_descriptor_from_the_call_on);
	if (!t_has_hand_over()) {
		printf("SKIP handover suite: the loops of this run lack IORING_MSG_SEND_FD (Linux 6.0)\n");
	} else {
		tcase_add_test(tc, hand_over_has_reached_the_inbox_when_the_call_returns);
		tcase_add_test(tc, hand_over_never_reaches_a_loop_made_after_its_receiver_closed);
		tcase_add_test(tc, slot_handed_to_a_released_inbox_is_refused_and_kept);
		tcase_add_test(tc, slot_handed_to_an_inbox_whose_scope_closes_is_refused_and_kept);
		tcase_add_test(tc, second_hand_over_of_a_slot_in_flight_is_refused);
		tcase_add_test(tc, hand_over_out_of_an_unwinding_ancestor_is_refused);
		tcase_add_test(tc, hand_over_out_of_a_closing_or_failing_scope_is_the_unwinds);
		if (rsc_fault_set(t_probe_loop(), "") == 0) {
			tcase_add_test(tc, completions_set_aside_by_a_busy_submit_are_dispatched_first);
			tcase_add_test(tc, slot_arriving_after_the_inbox_went_is_closed_by_an_idle_loop);
			tcase_add_loop_test(tc, release_waits_for_a_hand_over_in_flight_without_cancelling_it,
					    0, 2);
		} else {
			printf("SKIP completions_set_aside_by_a_busy_submit_are_dispatched_first, slot_arriving_after_the_inbox_went_is_closed_by_an_idle_loop, release_waits_for_a_hand_over_in_flight_without_cancelling_it: this build has no fault injection\n");
		}
	}
	suite_add_tcase(s, tc);
	return s;
}
