/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ringscope.h"
#include "model.h"

/*
 * Linked acquire chains on live scopes (rsc_chain_new(3)): opens of files
 * (some missing), sockets, and socket-connect pairs (to a port of the
 * soak's that does not listen, refused, or to a listener of its own), some with a deadline and a first send
 * (rsc_chain_send) and some to a full backlog, so that their deadline
 * passes, up to the SQE limit and past it (-E2BIG); calls with bad
 * arguments; chains freed unsubmitted; and in the same turn as a submit,
 * what ends its scope or a step (a close, a failure, a 1 ms deadline, a
 * graceful close, the parent's close, a move, an early release). Each step
 * is an entry of the scope (program.c models it like every entry: entered
 * or failed once, released once, LIFO, the failure's error in the scope's
 * chain); a paired socket has no handle and is bound at its first event,
 * and its connect takes it over, as for rsc_connect(3).
 *
 * The model, from the page: rsc_chain_submit() refuses what rsc_push(3)
 * refuses, -ENXIO without a table, -ENFILE exactly when the chain range
 * (the table's last 8 slots) lacks a slot for each open and socket step,
 * else the chain goes out whole (or, -EBUSY under ring faults, not at all).
 * An acquiring step enters with its slot in that range, a connect with its
 * socket's; once a step fails, every step after it fails with -ECANCELED;
 * a file that is missing fails -ENOENT, a connect refused -ECONNREFUSED
 * (-ETIMEDOUT with a deadline), nothing else fails but by a cancel. A first
 * send calls back exactly once if submitted (never if freed), with its own
 * buffer, before its connect's enter settles: all its bytes once connected,
 * -ECANCELED otherwise.
 */

#define MAX_CHAINS    32
#define CH_STEPS      RSC_ENTRY_SQES_MAX
#define CH_SLOTS      8	  /* the table's chain range (handover.c, ho_table) */
#define CH_FIRST_SLOT 248 /* 256 slots, the last CH_SLOTS of them */
#define SEND_LEN      5

enum step { S_OPEN, S_MISSING, S_SOCKET, S_CONNECT };

struct chain;

struct cstep {
	enum step kind;
	bool refused;	     /* S_CONNECT: to a port bound, not listening */
	bool blackhole;	     /* S_CONNECT: to a full backlog, with a deadline */
	unsigned timeout_ms; /* S_CONNECT: its deadline, 0 none */
	int slot;	     /* the slot it entered with, -1 */
	/* S_CONNECT: a first send behind it, and what its callback heard */
	bool send;
	char buf[SEND_LEN];
	int n_send_cb, send_res;
	struct chain *c;
};

struct chain {
	struct prog *p;
	int scope, first; /* its steps are entries first .. first + n - 1 */
	int n, n_sqes, n_sends;
	struct cstep st[CH_STEPS];
	bool submitted;
};

static struct chain chains[MAX_CHAINS];
static int n_chains;
static short ch_of[MAX_ENTRIES]; /* 1 + the chain of each entry, 0 none */
static unsigned char step_of[MAX_ENTRIES];
static int lfd = -1;	/* the soak's listener, for connects that succeed */
static unsigned lport;
/* A port bound and not listening: refused, and nobody else's (another
 * program on this machine may listen on port 1). */
static int rfd = -1;
static unsigned rport;
/* A listener whose backlog is full, for connects that wait until their deadline. */
static int bfd = -1, bfill[2] = { -1, -1 };
static unsigned bport;
static struct prog_stats *g_st;

static void blackhole_close(void)
{
	int k;

	for (k = 0; k < 2; k++) {
		if (bfill[k] >= 0)
			close(bfill[k]);
		bfill[k] = -1;
	}
	if (bfd >= 0)
		close(bfd);
	bfd = -1;
	bport = 0;
}

/* A backlog of 0 holds one connection: two fill it, and a SYN more is dropped. */
static void blackhole(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int k;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (bfd < 0 || bind(bfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(bfd, 0) < 0 ||
	    getsockname(bfd, (struct sockaddr *)&a, &len) < 0)
		goto fail;
	for (k = 0; k < 2; k++) {
		bfill[k] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (bfill[k] < 0)
			goto fail;
		(void)connect(bfill[k], (struct sockaddr *)&a, sizeof(a));
	}
	usleep(50000); /* the handshakes done: the queue is full */
	bport = ntohs(a.sin_port);
	return;
fail:
	blackhole_close();
}

/* Once per process, so that the fd count of every program includes it;
 * only with the chain kind, so that without it descriptor numbers (and
 * so tokens and replays) are what they were. */
void ch_env_init(const struct prog_env *env)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	if (!(env->kinds & KIND_CHAIN))
		return;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd >= 0 && (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4096) < 0 ||
			 getsockname(lfd, (struct sockaddr *)&a, &len) < 0)) {
		close(lfd);
		lfd = -1;
	}
	lport = ntohs(a.sin_port);
	len = sizeof(a);
	a.sin_port = 0;
	rfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (rfd >= 0 && (bind(rfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
			 getsockname(rfd, (struct sockaddr *)&a, &len) < 0)) {
		close(rfd);
		rfd = -1;
	}
	rport = rfd >= 0 ? ntohs(a.sin_port) : 0;
	blackhole();
}

void ch_env_fini(void)
{
	if (lfd >= 0)
		close(lfd);
	if (rfd >= 0)
		close(rfd);
	lfd = rfd = -1;
	rport = 0;
	blackhole_close();
}

int ch_listen_fd(void)
{
	return lfd;
}

void ch_begin(void)
{
	n_chains = 0;
	memset(ch_of, 0, sizeof(ch_of));
}

/* ---- the model's answers ------------------------------------------------------ */

/* Chain-range slots held now: @lo surely, @hi maybe (a hand-over's slot
 * may be gone before its callback, or after it). */
static void slots_held(const struct prog *p, int *lo, int *hi)
{
	int i;

	*lo = *hi = 0;
	for (i = 0; i < p->n_en; i++) {
		const struct pentry *e = &p->en[i];

		if (!ch_of[i] || e->n_released)
			continue;
		if (chains[ch_of[i] - 1].st[step_of[i]].kind == S_CONNECT ?
			    !e->n_entered : e->n_failed || e->taken_over)
			continue; /* a connect holds its socket's slot once entered */
		(*hi)++;
		*lo += !e->handed && !e->n_handing;
	}
}

static int steps_needing_slots(const struct chain *c)
{
	int k, n = 0;

	for (k = 0; k < c->n; k++)
		n += c->st[k].kind != S_CONNECT;
	return n;
}

static int sqes_of(enum step kind, unsigned timeout_ms)
{
	return kind == S_CONNECT ? 1 + !!timeout_ms : 1;
}

/* ---- the first send --------------------------------------------------------- */

static void send_cb(struct rsc_entry *h, int res, void *buf, void *data)
{
	struct cstep *st = data;
	struct chain *c = st->c;
	struct prog *p = c->p;
	const struct pentry *conn = &p->en[c->first + (st - c->st)];
	int k = (int)(c - chains);

	say(p, "    chain %d: first send of step %d -> %d\n", k, (int)(st - c->st), res);
	audit_probe(p, "a chain's send callback");
	if (st->n_send_cb++)
		violation(p, "chain %d: its send called back twice", k);
	st->send_res = res;
	if (buf != st->buf)
		violation(p, "chain %d: its send called back with another buffer", k);
	if (h != conn->h)
		violation(p, "chain %d: its send called back with another entry's handle", k);
	if (conn->n_entered + conn->n_failed)
		violation(p, "chain %d: its send called back after its connect settled", k);
	if (res != SEND_LEN && res != -ECANCELED)
		violation(p, "chain %d: its send of %d bytes called back with %s", k, SEND_LEN,
			  rsc_err_name(res));
}

/* ---- the trace --------------------------------------------------------------- */

/*
 * The hidden sockets of a chain are bound to steps by the order of their
 * first events (program.c, bind_hidden), and that need not be step order
 * (a split or reordered completion). A connect enters with the slot of the
 * socket step it was chained to: if another hidden socket of this chain,
 * entered and not taken over, holds that slot, the two were bound crossed.
 * Both have only entered (no handle of ours, so no early release), so
 * swapping what their first events bound puts each on its own step.
 */
static void uncross(struct prog *p, struct chain *c, int k, int res)
{
	struct pentry *own = &p->en[c->first + k - 1], *other;
	struct rsc_entry *h;
	int j, r;

	for (j = 0; j < c->n; j++) {
		other = &p->en[c->first + j];
		if (j == k - 1 || c->st[j].kind != S_SOCKET || !other->hidden ||
		    c->st[j].slot != res || other->taken_over || other->n_entered != 1 ||
		    other->n_released || own->n_entered != 1 || own->n_released)
			continue;
		say(p, "    chain %d: sockets of steps %d and %d were bound crossed\n",
		    (int)(c - chains), k - 1, j);
		h = own->h, own->h = other->h, other->h = h;
		r = own->enter_res, own->enter_res = other->enter_res, other->enter_res = r;
		c->st[j].slot = c->st[k - 1].slot;
		c->st[k - 1].slot = res;
		g_st->chain_uncrossed++;
		return;
	}
}

void ch_entered(struct prog *p, int i, int res)
{
	struct chain *c = &chains[ch_of[i] - 1];
	struct cstep *st = &c->st[step_of[i]];
	int k = (int)(c - chains);

	if (st->kind == S_CONNECT && res != c->st[step_of[i] - 1].slot)
		uncross(p, c, step_of[i], res);

	if (st->kind == S_MISSING)
		violation(p, "chain %d: step %d, the open of a missing file, entered", k, step_of[i]);
	if (st->kind == S_CONNECT && (st->refused || st->blackhole))
		violation(p, "chain %d: step %d, a connect to %s, entered", k, step_of[i],
			  st->refused ? "a port that does not listen" : "a full backlog");
	if (st->kind == S_CONNECT && res != c->st[step_of[i] - 1].slot)
		violation(p, "chain %d: its connect entered with %d, its socket had slot %d", k, res,
			  c->st[step_of[i] - 1].slot);
	else if (st->kind != S_CONNECT &&
		 (res < CH_FIRST_SLOT || res >= CH_FIRST_SLOT + CH_SLOTS))
		violation(p, "chain %d: step %d ('%s') entered with %d, not a slot of the chain range %d-%d",
			  k, step_of[i], p->en[i].name, res, CH_FIRST_SLOT,
			  CH_FIRST_SLOT + CH_SLOTS - 1);
	st->slot = res;
	if (st->send && st->n_send_cb != 1)
		violation(p, "chain %d: its connect entered, its send called back %d times", k,
			  st->n_send_cb);
}

void ch_failed(struct prog *p, int i, int res)
{
	struct chain *c = &chains[ch_of[i] - 1];
	const struct cstep *st = &c->st[step_of[i]];
	bool ok = res == -ECANCELED;

	if (st->kind == S_MISSING)
		ok |= res == -ENOENT;
	if (st->kind == S_CONNECT)
		ok |= (st->refused && res == -ECONNREFUSED) || (st->timeout_ms && res == -ETIMEDOUT);
	if (!ok)
		violation(p, "chain %d: step %d ('%s') failed with %s", (int)(c - chains), step_of[i],
			  p->en[i].name, rsc_err_name(res));
	if (st->send && st->n_send_cb != 1)
		violation(p, "chain %d: its connect failed, its send called back %d times",
			  (int)(c - chains), st->n_send_cb);
}

/* ---- building a chain ---------------------------------------------------------- */

/* A step refused for want of memory (alloc rules) added no SQEs. */
static void unless_refused(struct chain *c, int ret, bool fits, int n)
{
	if (ret == -ENOMEM && fits)
		c->n_sqes -= n;
}

static bool check_ret(struct prog *p, int ret, int want, const char *what)
{
	if (ret != want)
		violation(p, "%s: %s (%s), expected %s", what, rsc_err_name(ret), rsc_last_error(),
			  rsc_err_name(want));
	return ret == 0 && want == 0;
}

/* A step with an argument the page refuses: -EINVAL, and the chain as it was. */
static void bad_step(struct prog *p, struct rsc_chain *ch, struct chain *c, unsigned x)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(1) };
	struct rsc_entry *h = (struct rsc_entry *)&un;
	bool after_socket = c->n && c->st[c->n - 1].kind == S_SOCKET;
	struct cstep *last = c->n ? &c->st[c->n - 1] : NULL;
	bool after_connect = last && last->kind == S_CONNECT && !last->send;
	int ret;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	switch (x % 6) {
	case 0: /* a slot is never inherited: the kernel refuses O_CLOEXEC */
		ret = rsc_chain_open(ch, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC, 0, &h);
		break;
	case 1:
		ret = rsc_chain_socket(ch, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, NULL);
		break;
	case 2: /* the unnamed address: nothing to connect to */
		ret = after_socket ? rsc_chain_connect(ch, (struct sockaddr *)&un,
						       offsetof(struct sockaddr_un, sun_path), 0, &h) :
				     rsc_chain_connect(ch, (struct sockaddr *)&in, sizeof(in), 0, &h);
		break;
	case 3: /* a send follows a connect step, once, and hands its buffer back */
		ret = after_connect ? rsc_chain_send(ch, last->buf, SEND_LEN, NULL, last) :
				      rsc_chain_send(ch, "x", 1, send_cb, NULL);
		break;
	case 4:
		ret = rsc_chain_open(ch, AT_FDCWD, NULL, O_RDONLY, 0, NULL);
		break;
	default:
		ret = rsc_chain_open(ch, AT_FDCWD, "/dev/null", O_ACCMODE, 0, NULL);
		break;
	}
	say(p, "  op %d: chain %d: bad step %u -> %d\n", p->op_index, (int)(c - chains), x % 6, ret);
	if (ret != -EINVAL)
		violation(p, "chain %d: bad step %u: %s, expected EINVAL", (int)(c - chains), x % 6,
			  rsc_err_name(ret));
	else if ((x % 6 == 0 || x % 6 == 2) && h)
		/* Given (&h): a failed call's output is NULL, never a handle or left as it was. */
		violation(p, "chain %d: a refused step left its entryp set", (int)(c - chains));
	g_st->chain_bad_args++;
}

static bool add_sqes(struct chain *c, int n)
{
	if (c->n_sqes + n > RSC_ENTRY_SQES_MAX)
		return false;
	c->n_sqes += n;
	return true;
}

/* One unit of @x: an open, a socket, or a socket, its connect and maybe a send. */
static void add_unit(struct prog *p, struct rsc_chain *ch, struct chain *c, unsigned x)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct pentry *e = &p->en[c->first + c->n];
	static const unsigned timeouts[] = { 0, 2, 6, 14 };
	unsigned kind = x % 8, timeout = timeouts[(x >> 4) & 3];
	struct cstep *st;
	bool fits;
	int ret, want;

	if (c->n + 2 > CH_STEPS || c->first + c->n + 2 > PROG_ENTRIES)
		return;
	if (kind <= 2) {
		bool missing = kind == 2;

		snprintf(e->path, sizeof(e->path), "%s/%c%u", p->env->dir, missing ? 'm' : 'f',
			 (x >> 4) % (missing ? N_MISSING : N_FILES));
		fits = add_sqes(c, 1);
		ret = rsc_chain_open(ch, AT_FDCWD, e->path, O_RDONLY, 0, &e->h);
		unless_refused(c, ret, fits, 1);
		if (check_ret(p, ret, fits ? 0 : -E2BIG, "rsc_chain_open"))
			c->st[c->n++] = (struct cstep){ .kind = missing ? S_MISSING : S_OPEN, .slot = -1 };
		return;
	}
	if (!p->env->have_socket || !rport)
		return;
	fits = add_sqes(c, 1);
	ret = rsc_chain_socket(ch, kind == 3 && (x & 8) ? AF_UNIX : AF_INET,
			       kind == 3 && (x & 0x40) ? SOCK_DGRAM : SOCK_STREAM, 0, &e->h);
	unless_refused(c, ret, fits, 1);
	if (!check_ret(p, ret, fits ? 0 : -E2BIG, "rsc_chain_socket"))
		return;
	c->st[c->n++] = (struct cstep){ .kind = S_SOCKET, .slot = -1 };
	if (kind == 3)
		return;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)((x & 8) || lfd < 0 ? rport : lport));
	if (timeout && (x & 0x80) && bport)
		a.sin_port = htons((uint16_t)bport); /* it waits until its deadline */
	fits = add_sqes(c, sqes_of(S_CONNECT, timeout));
	e = &p->en[c->first + c->n];
	ret = rsc_chain_connect(ch, (struct sockaddr *)&a, sizeof(a), timeout, &e->h);
	unless_refused(c, ret, fits, sqes_of(S_CONNECT, timeout));
	if (!check_ret(p, ret, fits ? 0 : -E2BIG, "rsc_chain_connect"))
		return;
	/* Its socket's entryp is no longer set: the connect takes it over. */
	p->en[c->first + c->n - 1].hidden = true;
	c->st[c->n++] = (struct cstep){ .kind = S_CONNECT, .refused = ntohs(a.sin_port) == rport,
					 .blackhole = bport && ntohs(a.sin_port) == bport,
					 .timeout_ms = timeout, .slot = -1 };
	if (kind < 6)
		return;
	fits = add_sqes(c, 1);
	st = &c->st[c->n - 1];
	st->c = c;
	memcpy(st->buf, "chain", SEND_LEN);
	ret = rsc_chain_send(ch, st->buf, SEND_LEN, send_cb, st);
	unless_refused(c, ret, fits, 1);
	want = fits ? 0 : -E2BIG;
	if (check_ret(p, ret, want, "rsc_chain_send")) {
		st->send = true;
		c->n_sends++;
	}
}

/* What rsc_chain_submit must return (@maybe: -ENFILE may also be right). */
static int submit_want(const struct prog *p, const struct chain *c, bool *maybe)
{
	int lo, hi, need = steps_needing_slots(c);

	*maybe = false;
	if (!p->sc[c->scope].valid)
		return -ESTALE;
	if (unwind_owns(p, c->scope))
		return -ESHUTDOWN;
	if (!c->n)
		return -EINVAL;
	if (rsc_loop_direct_used(p->loop) == -ENXIO)
		return -ENXIO;
	slots_held(p, &lo, &hi);
	if (lo + need > CH_SLOTS)
		return -ENFILE;
	*maybe = hi + need > CH_SLOTS;
	return 0;
}

/* The steps join the model as entries of the scope, in step order. */
static void submitted(struct prog *p, struct chain *c)
{
	int k, i;

	for (k = 0; k < c->n; k++) {
		struct pentry *e = &p->en[c->first + k];

		i = c->first + k;
		e->scope = c->scope;
		e->seq = p->sc[c->scope].n_pushed++;
		e->chain = true;
		e->kind = c->st[k].kind == S_CONNECT ? K_NET : K_DIRECT;
		e->name = c->st[k].kind == S_CONNECT ? "connect" :
			  c->st[k].kind == S_SOCKET ? "socket" : "file";
		ch_of[i] = (short)(c - chains + 1);
		step_of[i] = (unsigned char)k;
		if (e->hidden ? e->h != NULL : e->h == NULL)
			violation(p, "chain %d: step %d's entryp is %s", (int)(c - chains), k,
				  e->hidden ? "set, but its connect takes it over" : "not set");
	}
	p->n_en += c->n;
	p->n_direct++; /* close rules stay away from its slots (op_fault) */
	c->submitted = true;
	g_st->chains++;
	g_st->chain_steps += (unsigned)c->n;
	g_st->chain_sends += (unsigned)c->n_sends;
}

/* Consumed by its submit or free, a chain is a stale handle (rsc_chain_new(3)):
 * every call refuses it, and a second free drops nothing. */
static void probe_consumed(struct prog *p, struct rsc_chain *ch, struct chain *c)
{
	int a = rsc_chain_submit(ch), b = rsc_chain_open(ch, AT_FDCWD, "/", O_RDONLY, 0, NULL);

	rsc_chain_free(ch);
	if (a != -ESTALE || b != -ESTALE)
		violation(p, "chain %d used after its submit or free: submit %s, open %s, not ESTALE",
			  (int)(c - chains), rsc_err_name(a), rsc_err_name(b));
}

static void submit(struct prog *p, struct rsc_chain *ch, struct chain *c)
{
	bool maybe;
	int want = submit_want(p, c, &maybe), ret;

	ret = rsc_chain_submit(ch);
	say(p, "  op %d: chain %d (%d steps, %d SQEs) in %s -> %d\n", p->op_index,
	    (int)(c - chains), c->n, c->n_sqes, p->sc[c->scope].name, ret);
	if (ret == 0 && (want == 0 || (want == -ENFILE && maybe))) {
		submitted(p, c);
		return;
	}
	if (ret == want || (ret == -ENFILE && maybe) ||
	    (ret == -EBUSY && !want && rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) > 0)) {
		if (ret == -ENFILE && !strstr(rsc_last_error(), "chain range"))
			violation(p, "rsc_chain_submit: ENFILE, but the message says '%s'",
				  rsc_last_error());
		g_st->chains_refused++;
		return;
	}
	violation(p, "rsc_chain_submit of chain %d (%d steps, %d needing slots) in '%s': %s (%s), expected %s",
		  (int)(c - chains), c->n, steps_needing_slots(c), p->sc[c->scope].name,
		  rsc_err_name(ret), rsc_last_error(), rsc_err_name(want));
}

/* A chain of up to 3 units in a scope: its rsc_chain, or NULL. */
static struct rsc_chain *build(struct prog *p, int s, struct rd *r, bool bad, struct chain **cp)
{
	struct rsc_chain *ch = NULL;
	struct chain *c;
	unsigned b = rd_u8(r), u;
	int ret;

	if (n_chains == MAX_CHAINS || p->n_en + CH_STEPS > PROG_ENTRIES)
		return NULL;
	c = &chains[n_chains];
	memset(c, 0, sizeof(*c));
	c->p = p;
	c->scope = s;
	c->first = p->n_en;
	memset(&p->en[p->n_en], 0, CH_STEPS * sizeof(p->en[0]));
	ret = rsc_chain_new(p->sc[s].h, &ch);
	if (!check_ret(p, ret, 0, "rsc_chain_new"))
		return NULL;
	n_chains++;
	for (u = 0; u <= b % 3; u++) {
		if (bad && (b >> 2) % 3 == u)
			bad_step(p, ch, c, rd_u8(r));
		add_unit(p, ch, c, rd_u8(r));
	}
	*cp = c;
	return ch;
}

/* ---- operations ----------------------------------------------------------------- */

/* In the turn of the submit: what ends the chain's scope, or one of its steps. */
static void race(struct prog *p, struct chain *c, unsigned y, struct rd *r)
{
	int s = c->scope, k, np;
	uint8_t with_cb = y >> 7;
	struct rd one = { &with_cb, 1, 0 };

	switch (y % 8) {
	case 0:
		op_close(p, s);
		break;
	case 1:
		own_fail_scope(p, s, y >> 3, g_st);
		break;
	case 2:
		own_set_deadline(p, s, 1, y & 8, g_st);
		break;
	case 3: /* the newest step the program holds a handle for, released entering */
		for (k = c->n - 1; k >= 0; k--)
			if (p->en[c->first + k].h && !p->en[c->first + k].hidden) {
				op_release(p, c->first + k, &one);
				break;
			}
		break;
	case 4:
		own_close_graceful(p, s, 1 + (y >> 3) % 8, g_st);
		break;
	case 5:
		op_close(p, p->sc[s].parent >= 0 ? p->sc[s].parent : s);
		break;
	case 6:
		np = pick_scope(p, r);
		own_move_scope(p, s, np == s ? -1 : np, g_st);
		break;
	default:
		break;
	}
}

/*
 * Op CHAIN_OPS + @sub: a chain in a live scope, submitted, and in a quarter
 * of them raced at once (race()); with @sub 1, also steps with bad
 * arguments, chains dropped unsubmitted, and submits into a scope just
 * closed. Mostly the loop has a direct table first; else -ENXIO is due.
 */
void ch_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st)
{
	struct rsc_chain *ch;
	struct chain *c;
	unsigned x = rd_u8(r), b = rd_u8(r);
	int cand[MAX_SCOPES], n = 0, s, i;

	g_st = st;
	/* Mostly a scope no unwind owns (the submit may succeed), else any live one. */
	for (i = 0; i < p->n_sc; i++)
		if (p->sc[i].valid && (!(b & 3) || !unwind_owns(p, i)))
			cand[n++] = i;
	s = n ? cand[(b >> 2) % (unsigned)n] : -1;
	if (s < 0 || p->cur_class == FC_REL)
		return; /* close rules would hit its close_direct (op_fault) */
	/* The table first, mostly (-ENXIO else), while no slot is in use. */
	if (x % 8 && !p->n_direct && !ho_table(p))
		return;
	/* A socket of a pair waits for its handle: one per scope at a time. */
	for (i = 0; i < p->n_en; i++)
		if (p->en[i].scope == s && p->en[i].hidden && !p->en[i].h) {
			op_run(p, 0, st);
			if (!p->sc[s].valid)
				return;
			break;
		}
	for (i = 0; i < p->n_en; i++)
		if (p->en[i].scope == s && p->en[i].hidden && !p->en[i].h)
			return;
	ch = build(p, s, r, sub == 1 && x & 0x08, &c);
	if (!ch)
		return;
	if (sub == 1 && x & 0x10) {
		/* Dropped unsubmitted: its send never calls back. */
		say(p, "  op %d: chain %d freed\n", p->op_index, (int)(c - chains));
		rsc_chain_free(ch);
		probe_consumed(p, ch, c);
		return;
	}
	if (sub == 1 && x & 0x20)
		op_close(p, s); /* then submitted: refused, the scope is closing */
	submit(p, ch, c);
	probe_consumed(p, ch, c); /* after submit's checks of rsc_last_error */
	if (c->submitted && (x & 0x30) == 0)
		race(p, c, rd_u8(r), r);
	if (!(x & 0x30) || x & 0x40)
		op_run(p, x >> 7, st);
}

/* ---- the end --------------------------------------------------------------------- */

/* Connections the chains made, never accepted: closed, so the backlog stays empty. */
static void drain(void)
{
	int fd;

	while (lfd >= 0 && (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		close(fd);
}

/* Cancelled by the link: no error of its own, so no link of a chain may name it. */
static void no_error(struct prog *p, int i)
{
	int k;

	for (k = 0; k < p->n_errs; k++)
		if (p->errs[k].entry == i && !p->errs[k].op && p->errs[k].err == -ECANCELED)
			p->errs[k].err = 0;
}

void ch_end(struct prog *p, struct prog_stats *st)
{
	int k, j;

	drain();
	for (k = 0; k < n_chains; k++) {
		const struct chain *c = &chains[k];
		const struct pentry *failed = NULL;

		for (j = 0; j < c->n; j++)
			if (c->st[j].send && c->st[j].n_send_cb != (int)c->submitted)
				violation(p, "chain %d (%s): the send of step %d called back %d times", k,
					  c->submitted ? "submitted" : "never submitted", j,
					  c->st[j].n_send_cb);
		if (!c->submitted)
			continue;
		for (j = 0; j < c->n; j++) {
			const struct pentry *e = &p->en[c->first + j];

			if (failed && (!e->n_failed || e->enter_res != -ECANCELED))
				violation(p, "chain %d: step %d (%s) after step %d failed (%s) ended %s", k,
					  j, e->name, (int)(failed - &p->en[c->first]),
					  rsc_err_name(failed->enter_res),
					  e->n_failed ? rsc_err_name(e->enter_res) : "entered");
			else if (failed)
				no_error(p, c->first + j);
			if (!failed && e->n_failed) {
				failed = e;
				st->chains_broken += e->enter_res != -ECANCELED;
			}
		}
		for (j = 0; j < c->n; j++) {
			const struct cstep *cs = &c->st[j];
			const struct pentry *conn = &p->en[c->first + j];

			if (!cs->send)
				continue;
			st->chain_sends_done += cs->send_res == SEND_LEN;
			if (cs->send_res == SEND_LEN && !conn->n_entered)
				violation(p, "chain %d: the send of step %d went out, but its connect failed",
					  k, j);
			if (conn->n_failed && cs->send_res != -ECANCELED)
				violation(p, "chain %d: the connect of step %d failed, its send said %s", k,
					  j, rsc_err_name(cs->send_res));
		}
	}
}
