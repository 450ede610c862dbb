/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <liburing.h>

#include "ringscope.h"
#include "model.h"

/*
 * Loops on an application's own ring (rsc_loop_new_from_ring(3)): the
 * program's loop, and the hand-over peer, can each live on a ring of the
 * soak's, which keeps ops of its own in flight on it (reads of a pipe it
 * writes later, NOPs, timeouts), with user_data of its own, some shaped like
 * ringscope's without the tag. The application reaps the ring itself, in
 * batches or one CQE at a time, hands every CQE to rsc_loop_dispatch(3) and
 * turns the loop with RSC_RUN_NOWAIT; the modes that wait, and the blocking
 * helpers, must fail with EOPNOTSUPP.
 *
 * The model: every application CQE comes back to the application exactly once
 * with the result its op must have; every tagged CQE is ringscope's (1), every
 * other one the application's (0); a CQE dispatched again, or made up, is
 * refused with EINVAL and changes nothing. After rsc_loop_close nothing of
 * ringscope's arrives on the ring any more, and its table holds no file.
 */

#define TAG	     (1ULL << 63)
#define UD_POST	     0xffffffff00000000ULL /* rsc_loop_post's wake (src/internal.h) */
#define MAX_APP_OPS  48
#define READ_MAX     32
/* A turn that waits, short: what keeps a loop alive may need only a turn, no CQE. */
#define WAIT_MS	     1
#define MAX_PASSES   10000 /* 10 s of waits: beyond any timer of a program */
#define HOST_SLEEP_MS 2000   /* a host's sleep in poll(2): beyond any timer of a program */
#define HOST_QUIET_SLEEPS 5  /* 10 s of them, as MAX_PASSES */
#define AFTER_CLOSE  2	/* passes over the ring once the loop is gone, then until the application's are in */

/* AK_LINKED: an op of one of the application's own link chains; AK_DRAIN: a
 * NOP with IOSQE_IO_DRAIN, sent only while nothing of ringscope's is in
 * flight (one of its idle ops before a drain would hold it for ever, as
 * rsc_loop_new_from_ring(3) says), so that ringscope's next SQEs wait
 * behind it until the application's own ops before it are in. */
enum app_kind { AK_READ, AK_NOP, AK_TIMEOUT, AK_LINKED, AK_DRAIN };

struct app_op {
	enum app_kind kind;
	uint64_t ud;
	int expect; /* INT32_MIN: a read nothing was written for yet */
	int n_cqe;
	int before; /* AK_DRAIN: the application's ops submitted before it */
	struct __kernel_timespec ts;
	char buf[READ_MAX];
};

/* One application ring, and the loop on it (NULL once closed). */
struct app {
	bool used;
	struct rsc_loop *loop;
	struct io_uring ring;
	int pipe[2];
	int reading; /* the read in flight until its CQE, or -1: one at a time keeps results exact */
	struct app_op ops[MAX_APP_OPS];
	int n_ops, n_done;
	uint64_t rng;
	unsigned long long rsc_cqes, app_cqes, refused, n_chains, n_drains, n_open_links;
	/* Drains only with SOAK_APP_DRAINS=1, by an application that starts no
	 * timeout: on Linux 6.18 the SQEs deferred behind a drain that has
	 * completed can stay deferred until some other CQE is posted (the
	 * ring's drain rework, io_queue_deferred), which stalls ringscope's
	 * releases with them (tests/README.md, "Soak"). */
	bool drains;
	/* sh_drop_arrivals: hand-overs' arrivals reaped and dropped, not dispatched. */
	bool drop_arrivals;
	unsigned long long dropped;
};

static struct app apps[2]; /* the program's loop, and its peer */

static uint64_t next(struct app *a)
{
	uint64_t z = (a->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static struct app *app_of(const struct rsc_loop *loop)
{
	int i;

	for (i = 0; i < 2; i++)
		if (loop && apps[i].used && apps[i].loop == loop)
			return &apps[i];
	return NULL;
}

bool sh_is_shared(const struct rsc_loop *loop)
{
	return app_of(loop) != NULL;
}

/* Some ring of the program's is the application's (its loop's, or its peer's). */
bool sh_any_app(void)
{
	return apps[0].used || apps[1].used;
}

/* user_data of the application's: pointers, small numbers, and ringscope's shapes untagged. */
static uint64_t app_ud(struct app *a, int i)
{
	uint64_t r = next(a), ud;
	int j;

	switch (r % 6) {
	case 0:
		ud = (uint64_t)(uintptr_t)&a->ops[i];
		break;
	case 1: /* an op's gen << 32 | idx + 1 */
		ud = ((r >> 8) & 0x7fffffff00000000ULL) | (uint64_t)(i + 1);
		break;
	case 2: /* a hand-over's token << 32 */
		ud = (r >> 1) & 0x7fffffff00000000ULL;
		break;
	case 3:
		ud = UD_POST & ~TAG;
		break;
	case 4:
		ud = (uint64_t)i; /* 0 too */
		break;
	default:
		ud = ~TAG;
		break;
	}
	for (j = 0; j < a->n_ops; j++)
		if (a->ops[j].n_cqe == 0 && a->ops[j].ud == ud)
			return (uint64_t)(uintptr_t)&a->ops[i]; /* in flight: keep them apart */
	return ud;
}

static struct io_uring_sqe *app_sqe(struct app *a)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&a->ring);

	if (!sqe && io_uring_submit(&a->ring) >= 0)
		sqe = io_uring_get_sqe(&a->ring);
	return sqe;
}

static void app_start(struct prog *p, struct app *a, enum app_kind kind)
{
	struct io_uring_sqe *sqe;
	struct app_op *op;

	if (a->n_ops == MAX_APP_OPS || (kind == AK_READ && a->reading >= 0))
		return;
	if (kind == AK_TIMEOUT && a->drains)
		kind = AK_NOP;
	sqe = app_sqe(a);
	if (!sqe)
		return;
	op = &a->ops[a->n_ops];
	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->ud = app_ud(a, a->n_ops);
	switch (kind) {
	case AK_READ:
		io_uring_prep_read(sqe, a->pipe[0], op->buf, sizeof(op->buf), 0);
		op->expect = INT32_MIN;
		a->reading = a->n_ops;
		break;
	case AK_NOP:
		io_uring_prep_nop(sqe);
		break;
	default:
		op->ts.tv_nsec = (long long)(1 + next(a) % 1000) * 1000; /* up to 1 ms */
		io_uring_prep_timeout(sqe, &op->ts, 0, 0);
		op->expect = -ETIME;
		break;
	}
	io_uring_sqe_set_data64(sqe, op->ud);
	say(p, "    app %d: op %d kind %d user_data 0x%llx\n", (int)(a - apps), a->n_ops,
	    (int)kind, (unsigned long long)op->ud);
	a->n_ops++;
}

static void probe_made_up(struct prog *p, struct app *a);

/* One op of a chain or a drain, in an SQE taken already; its index. */
static int app_record(struct prog *p, struct app *a, struct io_uring_sqe *sqe,
		      enum app_kind kind, int expect)
{
	struct app_op *op = &a->ops[a->n_ops];

	memset(op, 0, sizeof(*op));
	op->kind = kind;
	op->expect = expect;
	op->ud = app_ud(a, a->n_ops);
	io_uring_sqe_set_data64(sqe, op->ud);
	say(p, "    app %d: op %d kind %d flags 0x%x expects %d, user_data 0x%llx\n",
	    (int)(a - apps), a->n_ops, (int)kind, sqe->flags, expect,
	    (unsigned long long)op->ud);
	return a->n_ops++;
}

/* The head of a chain: a NOP (0), a read of no descriptor (-EBADF) or a
 * timeout that fires (-ETIME, a failure for a link too). */
static int app_head(struct prog *p, struct app *a, struct io_uring_sqe *sqe, unsigned how,
		    unsigned char link)
{
	struct app_op *op = &a->ops[a->n_ops];
	int expect = 0;

	switch (how % (a->drains ? 2 : 3)) {
	case 0:
		io_uring_prep_nop(sqe);
		break;
	case 1:
		io_uring_prep_read(sqe, -1, op->buf, sizeof(op->buf), 0);
		expect = -EBADF;
		break;
	default:
		io_uring_prep_timeout(sqe, &op->ts, 0, 0);
		expect = -ETIME;
		break;
	}
	sqe->flags |= link;
	app_record(p, a, sqe, AK_LINKED, expect);
	op->ts.tv_nsec = 1000; /* read at submit; app_record cleared the op */
	return expect;
}

/* What a NOP after the head gets: cancelled with a failed head unless hard-linked. */
static int follower_expect(int head, unsigned char link)
{
	return head < 0 && link == IOSQE_IO_LINK ? -ECANCELED : 0;
}

/* A whole chain of the application's, two or three SQEs, prepared at once. */
static void app_chain(struct prog *p, struct app *a)
{
	uint64_t r = next(a);
	unsigned n = 2 + (unsigned)(r % 2), i;
	unsigned char link = (r >> 4) % 2 ? IOSQE_IO_HARDLINK : IOSQE_IO_LINK;
	struct io_uring_sqe *sqe;
	int head;

	if (a->n_ops + (int)n > MAX_APP_OPS)
		return;
	if (io_uring_sq_space_left(&a->ring) < n && io_uring_submit(&a->ring) < 0)
		return;
	if (io_uring_sq_space_left(&a->ring) < n)
		return; /* never split: a submit in the middle would end it */
	head = app_head(p, a, io_uring_get_sqe(&a->ring), (unsigned)(r >> 8), link);
	for (i = 1; i < n; i++) {
		sqe = io_uring_get_sqe(&a->ring);
		io_uring_prep_nop(sqe);
		if (i + 1 < n)
			sqe->flags |= link;
		app_record(p, a, sqe, AK_LINKED, follower_expect(head, link));
	}
	a->n_chains++;
}

/* A drain, only while nothing of ringscope's is in flight on the ring. */
static void app_drain(struct prog *p, struct app *a)
{
	struct io_uring_sqe *sqe;
	int d;

	if (!a->drains || !a->loop || rsc_loop_alive(a->loop) != 0 || a->n_ops == MAX_APP_OPS)
		return;
	sqe = app_sqe(a);
	if (!sqe)
		return;
	io_uring_prep_nop(sqe);
	sqe->flags |= IOSQE_IO_DRAIN;
	d = app_record(p, a, sqe, AK_DRAIN, 0);
	a->ops[d].before = d;
	a->n_drains++;
}

/*
 * A link left open across a turn of the loop, which has nothing in flight
 * (so no callback can need an SQE): the turn must neither submit the ring
 * (the head would go alone) nor put an SQE of its own after the head (it
 * would join the chain). The head fails, so the NOP that completes the chain
 * must come back -ECANCELED: a split chain would give 0.
 */
static void app_open_link(struct prog *p, struct app *a)
{
	struct io_uring_sqe *head;
	unsigned ready;
	int h;

	if (!a->loop || rsc_loop_alive(a->loop) != 0 || a->n_ops + 2 > MAX_APP_OPS ||
	    (next(a) % 4) || (io_uring_sq_space_left(&a->ring) < 2 && io_uring_submit(&a->ring) < 0) ||
	    io_uring_sq_space_left(&a->ring) < 2)
		return;
	head = io_uring_get_sqe(&a->ring);
	io_uring_prep_read(head, -1, a->ops[a->n_ops].buf, READ_MAX, 0);
	head->flags |= IOSQE_IO_LINK;
	h = app_record(p, a, head, AK_LINKED, -EBADF);
	ready = io_uring_sq_ready(&a->ring);
	(void)rsc_loop_run(a->loop, RSC_RUN_NOWAIT);
	probe_made_up(p, a);
	if (io_uring_sq_ready(&a->ring) != ready)
		violation(p, "app %d: a turn of the loop with the application's link open changed its SQ (%u SQEs ready, %u before)",
			  (int)(a - apps), io_uring_sq_ready(&a->ring), ready);
	head = io_uring_get_sqe(&a->ring);
	if (!head) {
		violation(p, "app %d: no SQE to complete its chain", (int)(a - apps));
		return;
	}
	io_uring_prep_nop(head);
	app_record(p, a, head, AK_LINKED, -ECANCELED);
	(void)h;
	a->n_open_links++;
}

/* The application writes what its read in flight is to get. */
static void app_write(struct prog *p, struct app *a)
{
	char bytes[READ_MAX];
	int n;

	if (a->reading < 0 || a->ops[a->reading].expect != INT32_MIN)
		return; /* no read, or its bytes are written already */
	n = 1 + (int)(next(a) % READ_MAX);
	memset(bytes, 'a' + n % 26, (size_t)n);
	if (write(a->pipe[1], bytes, (size_t)n) != n) {
		violation(p, "app: write to its pipe failed");
		return;
	}
	a->ops[a->reading].expect = n;
	say(p, "    app %d: wrote %d bytes for op %d\n", (int)(a - apps), n, a->reading);
}

/* A drain completes only once every op submitted before it has. */
static void check_drain(struct prog *p, struct app *a, int d)
{
	int i;

	for (i = 0; i < a->ops[d].before; i++)
		if (a->ops[i].n_cqe != 1)
			violation(p, "app: drain %d completed before op %d (kind %d) submitted ahead of it",
				  d, i, (int)a->ops[i].kind);
}

static void app_cqe(struct prog *p, struct app *a, const struct io_uring_cqe *cqe)
{
	int i;

	for (i = 0; i < a->n_ops; i++) {
		struct app_op *op = &a->ops[i];

		if (op->n_cqe || op->ud != cqe->user_data)
			continue;
		op->n_cqe++;
		a->n_done++;
		if (op->kind >= AK_LINKED || op->kind == AK_READ)
			say(p, "    app %d: op %d (kind %d) completed: %d\n", (int)(a - apps), i,
			    (int)op->kind, cqe->res);
		a->app_cqes++;
		/* Over only now: a read started while this one's bytes wait in the
		 * pipe (its SQE not yet submitted) would take them too. */
		if (i == a->reading)
			a->reading = -1;
		if (op->kind == AK_DRAIN)
			check_drain(p, a, i);
		if (op->expect == INT32_MIN)
			violation(p, "app: read %d completed with %d before anything was written",
				  i, cqe->res);
		else if (cqe->res != op->expect)
			violation(p, "app: op %d (kind %d, user_data 0x%llx) completed with %d, expected %d",
				  i, (int)op->kind, (unsigned long long)op->ud, cqe->res, op->expect);
		if (op->kind == AK_READ && cqe->res > 0 && op->buf[0] != 'a' + cqe->res % 26)
			violation(p, "app: read %d got bytes it was not written", i);
		return;
	}
	violation(p, "app: a CQE (user_data 0x%llx, res %d) of no application op in flight: given twice, or made up",
		  (unsigned long long)cqe->user_data, cqe->res);
}

/* Given again at once: the op is retired, so it names nothing in flight. */
static void probe_again(struct prog *p, struct app *a, const struct io_uring_cqe *cqe)
{
	int ret;

	if ((cqe->flags & IORING_CQE_F_MORE) || cqe->user_data == UD_POST ||
	    cqe->user_data == TAG || next(a) % 4)
		return;
	ret = rsc_loop_dispatch(a->loop, cqe);
	say(p, "    app %d: 0x%llx (res %d) dispatched again -> %d\n", (int)(a - apps),
	    (unsigned long long)cqe->user_data, cqe->res, ret);
	if (ret != -EINVAL)
		violation(p, "rsc_loop_dispatch of a CQE dispatched already (user_data 0x%llx, res %d): %s, expected EINVAL",
			  (unsigned long long)cqe->user_data, cqe->res, rsc_err_name(ret));
	a->refused++;
}

/* An op's CQE handed to the other loop on an application's ring: not its op. */
static void probe_other_loop(struct prog *p, struct app *a, const struct io_uring_cqe *cqe)
{
	struct app *o = &apps[a == &apps[0]];
	int ret;

	if (!o->used || !o->loop || (uint32_t)cqe->user_data == 0 ||
	    (cqe->flags & IORING_CQE_F_MORE) || next(a) % 4)
		return;
	ret = rsc_loop_dispatch(o->loop, cqe);
	say(p, "    app %d: 0x%llx (res %d) given to the other loop -> %d\n", (int)(a - apps),
	    (unsigned long long)cqe->user_data, cqe->res, ret);
	if (ret != -EINVAL)
		violation(p, "rsc_loop_dispatch of another loop's CQE (user_data 0x%llx, res %d): %s, expected EINVAL",
			  (unsigned long long)cqe->user_data, cqe->res, rsc_err_name(ret));
	a->refused++;
}

/* A hand-over's arrival: ringscope's, an inbox's token in the high half, and
 * in the low half 0 or a parcel's number (bit 31), which no op has (src/internal.h). */
static bool is_arrival(const struct io_uring_cqe *cqe)
{
	uint32_t low = (uint32_t)cqe->user_data;

	return (cqe->user_data & TAG) && cqe->user_data != UD_POST &&
	       ((cqe->user_data >> 32) & 0x3fffffffU) && (low == 0 || (low >> 31));
}

static void handle(struct prog *p, struct app *a, const struct io_uring_cqe *cqe)
{
	bool tagged = cqe->user_data & TAG;
	int ret;

	if (!a->loop) {
		if (tagged)
			violation(p, "app %d: a CQE of ringscope's (user_data 0x%llx, res %d) after rsc_loop_close",
				  (int)(a - apps), (unsigned long long)cqe->user_data, cqe->res);
		else
			app_cqe(p, a, cqe);
		return;
	}
	if (a->drop_arrivals && is_arrival(cqe)) {
		a->dropped++;
		return;
	}
	ret = rsc_loop_dispatch(a->loop, cqe);
	if (ret != (tagged ? 1 : 0)) {
		violation(p, "rsc_loop_dispatch(user_data 0x%llx, res %d): %s (%s)",
			  (unsigned long long)cqe->user_data, cqe->res, rsc_err_name(ret),
			  ret < 0 ? rsc_last_error() : "");
		return;
	}
	if (!tagged) {
		app_cqe(p, a, cqe);
		return;
	}
	a->rsc_cqes++;
	probe_again(p, a, cqe);
	probe_other_loop(p, a, cqe);
}

/*
 * Reap what the ring has: in one batch, one CQE at a time, or one at a time
 * until the loop says it is idle, leaving the rest for later (as an
 * application that ends its loop then would: what it leaves must be its own).
 * How many were ringscope's.
 */
static unsigned app_reap(struct prog *p, struct app *a)
{
	unsigned long long before = a->rsc_cqes;
	struct io_uring_cqe *cqe;
	unsigned head, n = 0, how = next(a) % 3;

	if (how == 0) {
		io_uring_for_each_cqe(&a->ring, head, cqe) {
			handle(p, a, cqe);
			n++;
		}
		io_uring_cq_advance(&a->ring, n);
	} else {
		while (io_uring_peek_cqe(&a->ring, &cqe) == 0 && cqe) {
			handle(p, a, cqe);
			io_uring_cqe_seen(&a->ring, cqe);
			if (how == 2 && a->loop && rsc_loop_run(a->loop, RSC_RUN_NOWAIT) == 0)
				break;
		}
	}
	return (unsigned)(a->rsc_cqes - before);
}

/* Submit, and wait up to @wait_ms for a completion; then reap. */
static unsigned app_pass(struct prog *p, struct app *a, int wait_ms)
{
	struct io_uring_cqe *cqe;
	int ret;

	if (wait_ms) {
		struct __kernel_timespec ts = { 0, wait_ms * 1000000LL };

		ret = io_uring_submit_and_wait_timeout(&a->ring, &cqe, 1, &ts, NULL);
	} else {
		ret = io_uring_submit_and_get_events(&a->ring);
	}
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		violation(p, "app: io_uring_submit: %s", rsc_err_name(ret));
	return app_reap(p, a);
}

/* What the application does on its own between turns. */
static void app_act(struct prog *p, struct app *a)
{
	uint64_t r = next(a);

	if (r % 3 == 0)
		app_start(p, a, (enum app_kind)((r >> 8) % 3));
	if ((r >> 16) % 4 == 0)
		app_write(p, a);
	if ((r >> 24) % 8 == 0)
		app_chain(p, a);
	if ((r >> 32) % 16 == 0)
		app_drain(p, a);
}

/* A slot the program's loop holds for a live entry now, or -1. */
static int held_slot(const struct prog *p, uint64_t r)
{
	int i, k;

	for (k = 0; k < p->n_en; k++) {
		const struct pentry *e = &p->en[(k + (int)(r % 997)) % p->n_en];

		i = e->kind == K_DIRECT && e->h && p->sc[e->scope].valid && e->n_entered &&
			    !e->n_released && !e->detached && !e->handed && !e->n_handing ?
			    rsc_entry_slot(e->h) : -1;
		if (i >= 0)
			return i;
	}
	return -1;
}

/* Made up, tagged: names nothing of the loop's, and must change nothing. */
static void probe_made_up(struct prog *p, struct app *a)
{
	struct io_uring_cqe cqe = { 0 };
	uint64_t r = next(a);
	int ret, slot, alive = rsc_loop_alive(a->loop);

	if (r % 8)
		return;
	cqe.user_data = TAG | ((r >> 4) & 0x7fffffff00000000ULL) | (1 + ((r >> 3) & 0xfff));
	cqe.res = (int)(r >> 40) % 3 - 1;
	if ((r >> 20) % 4 == 0 && !alive)
		cqe.user_data = UD_POST; /* a wake no post sent */
	/* A NOP of ringscope's when none is in flight (bug 100: counted, it let the loop
	 * close with a real one unreaped). While one is, the two cannot be told apart. */
	if ((r >> 20) % 4 == 2 && !alive)
		cqe.user_data = TAG;
	/* A hand-over's arrival, in a slot an entry of the loop holds: no second owner. */
	if ((r >> 20) % 4 == 1 && a == &apps[0] && (slot = held_slot(p, r >> 24)) >= 0) {
		cqe.user_data = TAG | (((r >> 32) & 0x7ffffffe) + 1) << 32;
		cqe.res = slot;
	}
	ret = rsc_loop_dispatch(a->loop, &cqe);
	say(p, "    app %d: made-up CQE 0x%llx -> %d\n", (int)(a - apps),
	    (unsigned long long)cqe.user_data, ret);
	if (ret != -EINVAL)
		violation(p, "rsc_loop_dispatch of a made-up CQE (user_data 0x%llx): %s, expected EINVAL",
			  (unsigned long long)cqe.user_data, rsc_err_name(ret));
	if (!alive && rsc_loop_alive(a->loop) != 0)
		violation(p, "a made-up CQE (user_data 0x%llx) left an idle loop alive",
			  (unsigned long long)cqe.user_data);
	a->refused++;
}

/* What a turn that did anything moves. */
static long long turn_work(const struct rsc_loop *loop)
{
	return rsc_loop_counter(loop, RSC_CTR_SQES) + rsc_loop_counter(loop, RSC_CTR_CQES);
}

/*
 * A pollable loop run as a host loop runs it (rsc_loop_fd(3)): a turn of
 * RSC_RUN_NOWAIT, then, for the modes that wait, a sleep in poll(2) on its
 * descriptor before each further turn. A sleep that ends with the fd still
 * quiet must leave nothing due: a turn that then submits or dispatches
 * anything is work the host slept through (a cancel kept for the next
 * turn once was).
 */
static int host_run(struct prog *p, struct rsc_loop *loop, enum rsc_run_mode mode)
{
	struct pollfd pfd = { .fd = rsc_loop_fd(loop), .events = POLLIN };
	int ret = rsc_loop_run(loop, RSC_RUN_NOWAIT), quiet = 0;

	while (ret > 0 && mode != RSC_RUN_NOWAIT && !p->failed) {
		int n = poll(&pfd, 1, HOST_SLEEP_MS);

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 && poll(&pfd, 1, 0) == 0) {
			long long before = turn_work(loop);

			ret = rsc_loop_run(loop, RSC_RUN_NOWAIT);
			if (ret >= 0 && turn_work(loop) != before)
				violation(p, "the host slept %d ms on the loop's quiet fd, and a turn then had work to do",
					  HOST_SLEEP_MS);
			else if (ret > 0 && ++quiet == HOST_QUIET_SLEEPS)
				violation(p, "a pollable loop stayed alive through %d ms with its fd quiet",
					  HOST_SLEEP_MS * HOST_QUIET_SLEEPS);
			continue;
		}
		p->host_wakes++;
		ret = rsc_loop_run(loop, RSC_RUN_NOWAIT);
		if (mode == RSC_RUN_ONCE)
			break;
	}
	return ret;
}

/* rsc_loop_run for a loop of any kind: on an application's ring, the application
 * drives it, and a pollable one a host loop (host_run). */
int sh_run(struct prog *p, struct rsc_loop *loop, enum rsc_run_mode mode)
{
	struct app *a = app_of(loop);
	unsigned got = 0;
	int i, ret;

	if (!a)
		return p->pollable && loop == p->loop ? host_run(p, loop, mode) :
							 rsc_loop_run(loop, mode);
	if (mode != RSC_RUN_NOWAIT && (ret = rsc_loop_run(loop, mode)) != -EOPNOTSUPP)
		violation(p, "rsc_loop_run(%d) on the application's ring: %s, expected EOPNOTSUPP",
			  (int)mode, rsc_err_name(ret));
	for (i = 0; i < MAX_PASSES && !p->failed; i++) {
		app_open_link(p, a);
		ret = rsc_loop_run(loop, RSC_RUN_NOWAIT);
		if (ret < 0)
			return ret;
		app_act(p, a);
		got += app_pass(p, a, 0);
		probe_made_up(p, a);
		ret = rsc_loop_run(loop, RSC_RUN_NOWAIT);
		if (ret <= 0 || mode == RSC_RUN_NOWAIT || (mode == RSC_RUN_ONCE && got))
			return ret;
		got += app_pass(p, a, WAIT_MS);
	}
	if (p->failed)
		return rsc_loop_run(loop, RSC_RUN_NOWAIT); /* the first violation is the one to see */
	violation(p, "app %d: the loop stayed alive through %d passes", (int)(a - apps), i);
	return -ETIME;
}

/* The loop on an application's ring, or on its own (@app < 0). */
int sh_loop_new(struct prog *p, int app, unsigned entries, bool defer, struct rsc_loop **loopp)
{
	unsigned flags = defer ? IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN : 0;
	struct app *a = &apps[app];
	int ret, feat;

	memset(a, 0, sizeof(*a));
	a->reading = -1;
	a->pipe[0] = a->pipe[1] = -1;
	a->rng = p->sh_seed ^ ((uint64_t)app << 40) ^ (uint64_t)(p->op_index + 1);
	ret = io_uring_queue_init(entries, &a->ring, flags);
	if (ret < 0)
		return ret;
	if (pipe2(a->pipe, O_CLOEXEC) < 0) {
		ret = -errno;
		io_uring_queue_exit(&a->ring);
		return ret;
	}
	ret = rsc_loop_new_from_ring(loopp, &a->ring, 0);
	if (ret < 0) {
		close(a->pipe[0]);
		close(a->pipe[1]);
		io_uring_queue_exit(&a->ring);
		return ret;
	}
	a->used = true;
	a->loop = *loopp;
	feat = rsc_loop_features(a->loop);
	if (!(feat & RSC_FEAT_SHARED_RING) || !(feat & RSC_FEAT_DEFER_TASKRUN) != !defer ||
	    (feat & RSC_FEAT_POST_EVENTFD))
		violation(p, "a loop on the application's ring has features 0x%x", feat);
	a->drains = next(a) % 2 && getenv("SOAK_APP_DRAINS");
	/* Ops of the application's in flight from the start. */
	app_start(p, a, AK_READ);
	app_start(p, a, AK_NOP);
	app_start(p, a, AK_TIMEOUT);
	return 0;
}

/* The kernel's table of the ring: files still in it ("UserFiles:" of its fdinfo). */
static int ring_files(struct app *a)
{
	char name[64], line[512];
	bool in = false;
	int n = 0;
	FILE *f;

	snprintf(name, sizeof(name), "/proc/self/fdinfo/%d", a->ring.ring_fd);
	f = fopen(name, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *q = line, *end;

		if (!strncmp(line, "UserFiles:", 10)) {
			in = true;
			continue;
		}
		while (in && (*q == ' ' || *q == '\t'))
			q++;
		if (in && (strtoul(q, &end, 10), end != q && *end == ':'))
			n++;
		else
			in = false;
	}
	fclose(f);
	return n;
}

/* The loop is freed: nothing of ringscope's may come any more; the application's all do. */
static void app_end(struct prog *p, struct app *a, struct prog_stats *st)
{
	int i, files;

	for (i = 0; i < AFTER_CLOSE; i++)
		app_pass(p, a, 0);
	for (i = 0; i < MAX_PASSES && a->n_done < a->n_ops && !p->failed; i++) {
		app_write(p, a);
		app_pass(p, a, WAIT_MS);
	}
	for (i = 0; i < a->n_ops; i++)
		if (a->ops[i].n_cqe != 1)
			violation(p, "app %d: op %d (kind %d, user_data 0x%llx) came back %d times",
				  (int)(a - apps), i, (int)a->ops[i].kind,
				  (unsigned long long)a->ops[i].ud, a->ops[i].n_cqe);
	files = ring_files(a);
	if (files != 0)
		violation(p, "app %d: %d files left in the ring's table after rsc_loop_close",
			  (int)(a - apps), files);
	st->app_cqes += a->app_cqes;
	st->shared_rsc_cqes += a->rsc_cqes;
	st->dispatch_refused += a->refused;
	st->app_chains += a->n_chains;
	st->app_drains += a->n_drains;
	st->app_open_links += a->n_open_links;
	st->shared_loops++;
	io_uring_queue_exit(&a->ring);
	close(a->pipe[0]);
	close(a->pipe[1]);
	a->used = false;
}

/*
 * From now on the application of @loop's ring drops the hand-overs' arrivals
 * it reaps instead of dispatching them, as one that tears its ring down may
 * (rsc_loop_new_from_ring(3): the application reaps): nobody owns those files
 * but the ring, which drops them with its table.
 */
void sh_drop_arrivals(struct rsc_loop *loop)
{
	struct app *a = app_of(loop);

	if (a)
		a->drop_arrivals = true;
}

unsigned long long sh_arrivals_dropped(const struct rsc_loop *loop)
{
	const struct app *a = app_of(loop);

	return a ? a->dropped : 0;
}

/* rsc_loop_close, and on an application's ring the application's end of it. */
int sh_loop_close(struct prog *p, struct rsc_loop *loop, struct prog_stats *st)
{
	struct app *a = app_of(loop);
	int ret = rsc_loop_close(loop);

	if (a && ret == 0) {
		a->loop = NULL;
		app_end(p, a, st);
	}
	return ret;
}

/* A program that failed may leave a ring behind: the next one starts clean. */
void sh_cleanup(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (!apps[i].used)
			continue;
		if (apps[i].loop && rsc_loop_close(apps[i].loop) < 0)
			continue; /* still in use: leaked, the program failed already */
		io_uring_queue_exit(&apps[i].ring);
		close(apps[i].pipe[0]);
		close(apps[i].pipe[1]);
		apps[i].used = false;
	}
}
