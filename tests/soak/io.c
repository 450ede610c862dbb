/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringscope.h"
#include "model.h"

/*
 * Tracked I/O (rsc_read(3)) in the program: both ends of a socket pair
 * adopted (into one scope or two), with receives, sends and timeouts in
 * flight on them while the rest of the program releases, detaches, closes
 * and injects faults. The program's own descriptors would be audit findings
 * of the scopes open when they were made: the runtime owns both ends.
 *
 * The model: a call that fails never calls back; an op started calls back
 * exactly once, with its own buffer, before its entry's release is traced
 * (DESIGN 2.8: a release cancels its I/O and waits for it), and with a
 * result its kind can have; an entry with I/O in flight refuses a detach
 * with EBUSY; when the program ends every op has called back. An op ends
 * -ECANCELED only if something asked for it: a release, a close or a
 * shutdown on its way, or an rsc_entry_cancel_io(3) of its entry made after
 * the op started (one made before it spares it: bug 79).
 */

#define MAX_IO	   256
#define IO_BUF	   8
#define MAX_PAIRS  16

enum io_kind { IO_RECV, IO_SEND, IO_TIMEOUT, IO_MULTISHOT, IO__COUNT };

struct pio {
	struct prog *p;
	int entry;
	enum io_kind kind;
	unsigned len;
	int n_cb, res;	/* its last call (a multishot receive's may follow calls with bytes) */
	int n_bytes_cb;	/* a multishot receive's calls with bytes */
	bool long_wait; /* a timeout only a release ends */
	bool detach;	/* its callback detaches the entry if it was the entry's last op */
	unsigned cancels_at_start; /* its entry's cancel_io calls before it started */
	char buf[IO_BUF];
};

static struct pio ios[MAX_IO];
static int n_io;
static int partner[MAX_ENTRIES]; /* the entry holding the other end, or -1 */
static int sibling[MAX_ENTRIES]; /* KIND_DUP: the entry holding a dup of the same end, or -1 */
static unsigned cancels[MAX_ENTRIES]; /* rsc_entry_cancel_io calls on each entry */
static int n_pairs;

void io_begin(void)
{
	int i;

	n_io = n_pairs = 0;
	for (i = 0; i < MAX_ENTRIES; i++) {
		partner[i] = sibling[i] = -1;
		cancels[i] = 0;
	}
}

/* Ops of entry @i that have not made their last call. */
static int in_flight(int i)
{
	int k, n = 0;

	for (k = 0; k < n_io; k++)
		n += ios[k].entry == i && ios[k].n_cb == 0;
	return n;
}

/* Entry @i holds an end of a pair: I/O may start on it. */
bool io_has_pair(int i)
{
	return partner[i] >= 0;
}

bool io_busy(const struct prog *p, int i)
{
	(void)p;
	return in_flight(i) > 0;
}

/* A receive of @kind in flight on entry @i. */
static bool receiving(int i, enum io_kind kind)
{
	int k;

	for (k = 0; k < n_io; k++)
		if (ios[k].entry == i && ios[k].n_cb == 0 && ios[k].kind == kind)
			return true;
	return false;
}

/* A multishot receive beside any other receive is refused (EBUSY); two plain ones are not. */
static bool receive_refused(int i, enum io_kind kind)
{
	if (kind == IO_MULTISHOT)
		return receiving(i, IO_MULTISHOT) || receiving(i, IO_RECV);
	return kind == IO_RECV && receiving(i, IO_MULTISHOT);
}

static bool result_ok(const struct pio *io, int res)
{
	if (res == -ECANCELED || res == -EINTR)
		return io->kind != IO_TIMEOUT || res == -ECANCELED;
	switch (io->kind) {
	case IO_RECV: /* 0, or ECONNRESET with bytes it never read: the other end was closed */
		return (res >= 0 && (unsigned)res <= io->len) || res == -ECONNRESET;
	case IO_SEND:
		return res == (int)io->len || res == -EPIPE || res == -ECONNRESET;
	case IO_MULTISHOT: /* the last call: the end of the stream, a failure, or no SQE to re-arm */
		return res == 0 || res == -ECONNRESET || res == -EBUSY;
	default:
		return res == -ETIME;
	}
}

/* A multishot receive's call with bytes: in the buffer ring's memory, never the last. */
static void io_bytes(struct pio *io, int res, void *buf)
{
	struct prog *p = io->p;
	const struct pentry *e = &p->en[io->entry];

	io->n_bytes_cb++;
	if (io->n_cb)
		violation(p, "io %d of entry %d: bytes after its last call", (int)(io - ios), e->seq);
	if (!buf || buf == io->buf)
		violation(p, "io %d: bytes without a buffer of the loop's ring", (int)(io - ios));
	if (e->n_released)
		violation(p, "io %d of entry %d: bytes after the entry's release", (int)(io - ios),
			  e->seq);
	(void)res;
}

static bool io_live(const struct prog *p, int i);

/* Something asked @io to end early: a cancel_io of its entry made after it
 * started, or the library says its entry or a scope above it is going. */
static bool cancel_asked(const struct pio *io)
{
	const struct prog *p = io->p;
	const struct pentry *e = &p->en[io->entry];

	return cancels[io->entry] != io->cancels_at_start || !io_live(p, io->entry) ||
	       p->shutting_down || p->draining || rsc_entry_state(e->h) != RSC_ENTERED ||
	       self_or_ancestor_not_open(p, e->scope);
}

static void io_done(struct rsc_entry *h, int res, void *buf, void *data)
{
	struct pio *io = data;
	struct prog *p = io->p;
	const struct pentry *e = &p->en[io->entry];

	audit_probe(p, "an I/O callback");
	if (io->kind == IO_MULTISHOT && res > 0) {
		io_bytes(io, res, buf);
		return;
	}
	say(p, "    io %d (kind %d) of entry %d -> %d\n", (int)(io - ios), (int)io->kind,
	    e->seq, res);
	if (io->n_cb++)
		violation(p, "io %d of entry %d called back twice", (int)(io - ios), e->seq);
	io->res = res;
	if (h != e->h)
		violation(p, "io %d called back with another entry's handle", (int)(io - ios));
	if (buf != (io->kind == IO_TIMEOUT || io->kind == IO_MULTISHOT ? NULL : (void *)io->buf))
		violation(p, "io %d called back with another buffer", (int)(io - ios));
	if (e->n_released)
		violation(p, "io %d of entry %d called back after the entry's release: I/O outlived its resource",
			  (int)(io - ios), e->seq);
	if (!result_ok(io, res))
		violation(p, "io %d (kind %d) of entry %d: result %d", (int)(io - ios),
			  (int)io->kind, e->seq, res);
	else if (res == -ECANCELED && !cancel_asked(io))
		violation(p, "io %d (kind %d) of entry %d cancelled, with no cancel_io after its start and nothing closing",
			  (int)(io - ios), (int)io->kind, e->seq);
	/* A callback calling back: the entry's last op over, it takes the descriptor. */
	if (io->detach && !in_flight(io->entry) && !e->detached)
		op_detach(p, io->entry);
	fork_from_callback(p, (unsigned)(io - ios));
}

/* A release traced: nothing of the entry may still be in flight. */
void io_released(struct prog *p, int i)
{
	int n = in_flight(i);

	if (n)
		violation(p, "entry %d released with %d ops of its I/O still in flight",
			  p->en[i].seq, n);
}

static int io_start(struct prog *p, int i, enum io_kind kind, unsigned b,
		    struct prog_stats *st);

/* One end of the pair, adopted into @s: its entry's index, or -1. */
static int adopt_end(struct prog *p, int s, int fd, struct prog_stats *st)
{
	struct pentry *e = push_begin(p, s, K_SOCKET);
	int ret, i = p->n_en;

	if (!e) {
		close(fd);
		return -1;
	}
	ret = adopt_fd(p, e, s, fd, "rsc_adopt (for I/O)");
	if (ret < 0)
		return -1;
	st->io_entries++;
	return i;
}

/* A socket pair for I/O, its ends in scope @s and in @s2 (maybe the same). With
 * KIND_DUP, a third entry in @s2 holds a dup(2) of the first end: the same open
 * file as that entry's, which the kernel's cancel by descriptor matches (bug 101).
 * Its receives take the first end's bytes; its sends go to the second end. */
static void io_pair(struct prog *p, int s, int s2, struct prog_stats *st)
{
	int sv[2], a, b, c, dup_fd = -1;

	if (n_pairs == MAX_PAIRS || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	if (p->io_dups)
		dup_fd = fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
	a = adopt_end(p, s, sv[0], st);
	if (a < 0) {
		close(sv[1]);
		if (dup_fd >= 0)
			close(dup_fd);
		return;
	}
	b = adopt_end(p, s2, sv[1], st);
	if (b < 0) {
		partner[a] = a; /* a receive on it waits forever: only a release ends it */
		if (dup_fd >= 0)
			close(dup_fd);
		return;
	}
	partner[a] = b;
	partner[b] = a;
	n_pairs++;
	if (dup_fd >= 0 && (c = adopt_end(p, s2, dup_fd, st)) >= 0) {
		partner[c] = b;
		sibling[a] = c;
		sibling[c] = a;
		st->io_dups++;
		/* Two receives on the first end, which a release or cancel_io of it cancels
		 * with one SQE by descriptor, and one on the dup, which it must spare. */
		io_start(p, a, IO_RECV, IO_BUF - 1, st);
		io_start(p, a, IO_RECV, IO_BUF - 1, st);
		io_start(p, c, IO_RECV, IO_BUF - 1, st);
	}
}

/* Entry @i may start I/O, as far as the model knows. */
static bool io_live(const struct prog *p, int i)
{
	const struct pentry *e = &p->en[i];

	return p->sc[e->scope].valid && !e->early && !e->detached &&
	       !self_or_ancestor_close_req(p, e->scope);
}

/* An I/O entry of the program, picked by the next byte (mostly a live one), or -1. */
static int pick_io_entry(const struct prog *p, struct rd *r)
{
	int cand[MAX_ENTRIES], n = 0, i;
	unsigned b = rd_u8(r);
	bool live = b & 3;

	for (i = 0; i < p->n_en; i++)
		if (partner[i] >= 0 && (!live || io_live(p, i)))
			cand[n++] = i;
	return n ? cand[(b >> 2) % n] : -1;
}

/* What starting I/O on entry @i may return, from the model's view of it. */
static bool start_ok(const struct prog *p, int i, int ret, bool busy)
{
	const struct pentry *e = &p->en[i];
	int state = rsc_entry_state(e->h);
	int s = e->scope;
	bool closing = p->sc[s].close_req || unwind_owns(p, s);

	if (state == -ESTALE || !p->sc[s].valid)
		return ret == -ESTALE;
	if (state != RSC_ENTERED || e->early || e->detached)
		return ret == -EBADF;
	if (ret == -ESHUTDOWN)
		return closing || p->shutting_down;
	if (ret == -EBUSY)
		return busy || rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) > 0;
	return ret == 0 && (!p->sc[s].close_req || own_in_grace(p, s)) && !busy;
}

static int io_start(struct prog *p, int i, enum io_kind kind, unsigned b,
		    struct prog_stats *st)
{
	struct pio *io;
	bool busy = receive_refused(i, kind), unsupported;
	int ret;

	if (n_io == MAX_IO)
		return -ENOSPC;
	io = &ios[n_io];
	memset(io, 0, sizeof(*io));
	io->p = p;
	io->entry = i;
	io->kind = kind;
	io->len = 1 + b % IO_BUF;
	io->detach = b & 0x80;
	io->cancels_at_start = cancels[i];
	switch (kind) {
	case IO_RECV:
		ret = rsc_recv(p->en[i].h, io->buf, io->len, 0, io_done, io);
		break;
	case IO_SEND:
		memset(io->buf, 'x', sizeof(io->buf));
		ret = rsc_send(p->en[i].h, io->buf, io->len, 0, io_done, io);
		break;
	case IO_MULTISHOT: /* into the loop's buffer ring, set up by its first */
		ret = rsc_recv_multishot(p->en[i].h, 0, io_done, io);
		break;
	default: /* expired soon, or only ever cancelled */
		io->long_wait = b & 1;
		ret = rsc_timeout(p->en[i].h, io->long_wait ? 100000 : b % 8, io_done, io);
		break;
	}
	say(p, "  op %d: io %d (kind %d) on entry %d -> %d\n", p->op_index, n_io, (int)kind,
	    p->en[i].seq, ret);
	/* No IORING_RECV_MULTISHOT (missing.c): refused, by that or another reason. */
	unsupported = kind == IO_MULTISHOT && miss_refuses(p, M_NO_RECV_MS);
	if (unsupported && ret == 0)
		violation(p, "rsc_recv_multishot under %s accepted", miss_spec(p));
	st->missing_refusals += unsupported && ret == -EOPNOTSUPP;
	if (!(unsupported && ret == -EOPNOTSUPP) && !start_ok(p, i, ret, busy))
		violation(p, "starting io (kind %d) on entry %d of '%s' (state %d): %s",
			  (int)kind, p->en[i].seq, p->sc[p->en[i].scope].name,
			  rsc_entry_state(p->en[i].h), rsc_err_name(ret));
	if (ret == 0) {
		n_io++;
		st->io_started++;
	} else {
		st->io_refused++;
	}
	return ret;
}

/* A timeout on entry @i, any entry (a custom one: its exit waits for it to drain). */
int io_timeout_on(struct prog *p, int i, unsigned b, struct prog_stats *st)
{
	return io_start(p, i, IO_TIMEOUT, b, st);
}

/* The other end of entry @i can send, or is going: a receive on @i ends by itself. */
static bool other_end_sends(struct prog *p, int i, struct prog_stats *st)
{
	int j = partner[i], ret;

	if (j == i)
		return false; /* no other end */
	ret = io_start(p, j, IO_SEND, IO_BUF - 1, st);
	if (ret == 0)
		return true;
	/* Refused because it is released, detached or unwinding: its close ends the
	 * receive, unless a dup of that end lives on in another entry, which must send. */
	if (ret == -EBADF || ret == -ESTALE || ret == -ESHUTDOWN) {
		if (sibling[j] < 0)
			return true;
		ret = io_start(p, sibling[j], IO_SEND, IO_BUF - 1, st);
		return ret == 0 || ret == -EBADF || ret == -ESTALE || ret == -ESHUTDOWN;
	}
	return false;
}

/*
 * Before a blocking run: the other end of each receive in flight sends as
 * much as a receive takes, so that it ends. True if something in flight
 * ends only by a release (a long timeout, a receive with no other end): the
 * run must not wait for it.
 */
bool io_before_wait(struct prog *p, struct prog_stats *st)
{
	bool stuck = false;
	int k, n = n_io;

	for (k = 0; k < n; k++) {
		if (ios[k].n_cb)
			continue;
		if (ios[k].kind == IO_TIMEOUT)
			stuck |= ios[k].long_wait;
		else if (ios[k].kind == IO_RECV)
			stuck |= !other_end_sends(p, ios[k].entry, st);
		else if (ios[k].kind == IO_MULTISHOT)
			stuck = true; /* armed until a release, or the other end's close */
	}
	return stuck;
}

/*
 * rsc_entry_cancel_io(3) on entry @i: it returns how many ops are in flight,
 * its accepts included (each then calls back once, its result one its kind may have, -ECANCELED
 * included, and a multishot receive is not armed again), or -ESTALE for a
 * handle freed (its scope) or given back (detached).
 */
static void io_cancel(struct prog *p, int i)
{
	const struct pentry *e = &p->en[i];
	bool gone = !p->sc[e->scope].valid || e->detached;
	int want = in_flight(i) + acc_in_flight(i), ret = rsc_entry_cancel_io(e->h);

	cancels[i]++;

	say(p, "  op %d: cancel_io on entry %d -> %d\n", p->op_index, e->seq, ret);
	if (gone ? ret != -ESTALE : ret != want)
		violation(p, "cancel_io on entry %d: %s, with %d ops in flight", e->seq,
			  rsc_err_name(ret), want);
}

void io_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st)
{
	static const enum io_kind kinds[] = { IO_RECV, IO_MULTISHOT, IO_SEND, IO_SEND, IO_TIMEOUT };
	int s, s2, i;

	if (sub < 2 || sub == 7) {
		s = pick_scope(p, r);
		if (s < 0)
			return;
		s2 = rd_u8(r) & 1 ? pick_scope(p, r) : s;
		io_pair(p, s, s2 < 0 ? s : s2, st);
		return;
	}
	i = pick_io_entry(p, r);
	if (i >= 0) {
		unsigned b = rd_u8(r);

		io_start(p, i, kinds[sub - 2], b, st);
		/* One receive in eight, then its entry's I/O taken back at once; half
		 * of those start a receive right after, which the cancel must spare. */
		if (kinds[sub - 2] != IO_SEND && (b & 0x70) == 0x70) {
			io_cancel(p, i);
			if (b & 0x08)
				io_start(p, i, IO_RECV, b, st);
		}
	}
}

/* Every op started has called back. */
void io_end(struct prog *p, struct prog_stats *st)
{
	int k;

	for (k = 0; k < n_io; k++) {
		if (ios[k].n_cb != 1)
			violation(p, "io %d (kind %d) of entry %d: %d callbacks by the end", k,
				  (int)ios[k].kind, p->en[ios[k].entry].seq, ios[k].n_cb);
		else if (ios[k].res == -ECANCELED || ios[k].res == -EINTR)
			st->io_cancelled++;
	}
}
