/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringscope.h"
#include "model.h"

/*
 * Accepts in the program (rsc_accept(3)): TCP listeners on 127.0.0.1, port
 * 0 (rsc_listen(3)), single-shot and multishot accepts on them, with
 * RSC_SHUTDOWN_ON_RELEASE and, once the loop has a direct table, RSC_DIRECT;
 * clients that the program connects itself; and, in the same turn, what
 * races an accept: its scope closed, failed, moved, closed gracefully (with
 * a bound, or none), given a deadline that passes, its listener released or
 * detached, "accept" fault rules. The accept callbacks themselves close or
 * release the connection, detach it, or close, fail, release or detach the
 * listener's side.
 *
 * The clients' descriptors are the program's, yet a full audit of the
 * program's loop would report them as descriptors that appeared in its
 * scopes: each is adopted into a loop of the clients' own (the ownership
 * ledger names its owner), and detached again to be closed.
 *
 * The model, from rsc_accept(3): a refused call never calls back, with the
 * errno the page gives for what the model knows; a started accept ends with
 * exactly one last call: every call of a single-shot one, and for a
 * multishot one the first call with an error that is no shortage (a
 * shortage is followed by more), or the shortage whose callback detached
 * the listener. Nothing after the last call, nor after the listener's
 * release (DESIGN 2.8), nor once the listener's scope has closed. A
 * connection comes with its own scope "conn", a new child of the listener's
 * scope, and an entry "conn" that owns the descriptor (or the slot), entered
 * before the callback and modelled from then on like every entry (released
 * exactly once, LIFO, by its scope's unwind or early); never into a scope
 * that is closing (the runtime closes those). A connection's peer is one of
 * the program's clients, each accepted at most once. Once the program's
 * loop and the peer are gone, every client sees the end of its connection
 * (EOF, reset, refused) within a second: none is left connected to a
 * descriptor that outlived its scope. The descriptor count and the direct
 * table come back to their start (program.c, handover.c).
 */

#define MAX_LIS	     6
#define MAX_ACC	     64
#define MAX_CLI	     ACC_CONNS /* each is accepted at most once: room for its connection */
#define BACKLOG	     64	       /* beyond the clients: no SYN is dropped, no connect waits */
#define END_WAIT_MS  1000
#define MAIN_SLOTS   256

struct lis {
	int entry;     /* its "listen" entry */
	unsigned port; /* 0 until it has entered */
};

/* What an accept's callback does with a call. */
enum act { A_NONE, A_CLOSE_CONN, A_RELEASE_CONN, A_DETACH_CONN, A_CLOSE_SCOPE,
	   A_RELEASE_LIS, A_DETACH_LIS, A_FAIL_SCOPE };

struct acc {
	struct prog *p;
	int entry;	  /* the entry it was started on */
	unsigned flags;
	enum act act;
	bool probe;	  /* started on an entry that is no listener */
	bool in_cb;	  /* its callback is running */
	bool still_armed; /* its last shortage was a connection dropped for memory, the kernel's op live */
	int n_calls, n_conns, n_short, n_last, last_res;
};

struct cli {
	int fd;		  /* -1 once closed */
	struct rsc_entry *h; /* its entry in the clients' loop */
	unsigned port;	  /* its own port: the peer address of its connection */
	unsigned to;	  /* the listener's port */
	int conn;	  /* the entry of the connection that accepted it, or -1 */
	int connect_err;
};

static struct lis liss[MAX_LIS];
static struct acc accs[MAX_ACC];
static struct cli clis[MAX_CLI];
static int n_lis, n_acc, n_cli;
static int pending = -1; /* a connection's scope traced, its callback not yet run */
static long long heard_injected;
static struct rsc_loop *cl_loop; /* the clients' descriptors' owner */
static struct rsc_scope *cl_scope;
static struct prog_stats *g_st;

void acc_begin(void)
{
	n_lis = n_acc = n_cli = 0;
	pending = -1;
	heard_injected = 0;
	cl_loop = NULL;
	cl_scope = NULL;
}

static bool shortage(int res)
{
	return res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM;
}

/* The errnos of the "accept" rules (ENOMEM left out: the runtime reports it too). */
static const char *const acc_errnos[] = { "EMFILE", "ENFILE", "ENOBUFS", "EPERM", "ECONNABORTED" };

static bool injectable(int res)
{
	return res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -EPERM;
}

static bool in_subtree(const struct prog *p, int root, int x)
{
	for (; x >= 0; x = p->sc[x].parent)
		if (x == root)
			return true;
	return false;
}

static int lis_of(int entry)
{
	int l;

	for (l = 0; l < n_lis; l++)
		if (liss[l].entry == entry)
			return l;
	return -1;
}

static unsigned sock_port(int fd, bool peer)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	if ((peer ? getpeername(fd, (struct sockaddr *)&a, &len) :
		    getsockname(fd, (struct sockaddr *)&a, &len)) < 0 ||
	    a.sin_family != AF_INET)
		return 0;
	return ntohs(a.sin_port);
}

/* ---- the model's hooks -------------------------------------------------------- */

/* Accepts on entry @i that have not made their last call (the one whose
 * callback runs now has stopped counting: it may detach the listener). */
bool acc_busy(const struct prog *p, int i)
{
	int k;

	(void)p;
	for (k = 0; k < n_acc; k++)
		if (accs[k].entry == i && !accs[k].n_last && !accs[k].in_cb)
			return true;
	return false;
}

/* Accepts on entry @i that have not made their last call: what
 * rsc_entry_cancel_io(3) counts beside the entry's I/O. */
int acc_in_flight(int i)
{
	int k, n = 0;

	for (k = 0; k < n_acc; k++)
		n += accs[k].entry == i && !accs[k].n_last;
	return n;
}

/* A direct accept armed (or backing off): a slot it took may not be
 * dispatched yet, which rsc_audit_slots(3) would see as the kernel's alone. */
bool acc_direct_armed(void)
{
	int k;

	for (k = 0; k < n_acc; k++)
		if ((accs[k].flags & RSC_DIRECT) && !accs[k].n_last)
			return true;
	return false;
}

/* An accept in flight: a blocking run could wait for a client that never comes. */
bool acc_before_wait(const struct prog *p)
{
	int k;

	(void)p;
	for (k = 0; k < n_acc; k++)
		if (!accs[k].n_last)
			return true;
	return false;
}

/* A listener entered: its port is known from now on. */
void acc_entered(struct prog *p, int i)
{
	int l = lis_of(i);

	if (l >= 0)
		liss[l].port = sock_port(rsc_entry_fd(p->en[i].h), false);
}

/* A release traced: every accept on the entry has made its last call (DESIGN 2.8). */
void acc_released(struct prog *p, int i)
{
	int k;

	for (k = 0; k < n_acc; k++)
		if (accs[k].entry == i && !accs[k].n_last)
			violation(p, "entry %d of '%s' released with accept %d still in flight (%d calls)",
				  p->en[i].seq, p->sc[p->en[i].scope].name, k, accs[k].n_calls);
}

/*
 * ENTERED for an entry the model has never seen: a connection, traced from
 * inside the loop before its accept's callback. Its scope and entry join the
 * model now; the callback, which comes next, names the listener and so its
 * parent. Returns the entry's index, or -1 if it is no connection.
 */
int acc_bind(struct prog *p, const struct rsc_scope *sh, const struct rsc_entry *eh)
{
	struct pscope *s;
	struct pentry *e;
	int k;

	if (!eh || !sh || strcmp(rsc_entry_name(eh), "conn") || strcmp(rsc_scope_name(sh), "conn"))
		return -1;
	for (k = 0; k < p->n_sc; k++)
		if (p->sc[k].valid && p->sc[k].h == sh)
			return -1; /* a scope we know: not a new connection */
	if (pending >= 0)
		violation(p, "connection '%s' traced while the one before waits for its callback",
			  rsc_entry_detail(eh));
	if (p->n_sc == MAX_SCOPES || p->n_en == MAX_ENTRIES) {
		violation(p, "no room in the model for a connection (%d scopes, %d entries)",
			  p->n_sc, p->n_en);
		return -1;
	}
	s = &p->sc[p->n_sc];
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "conn");
	s->h = (struct rsc_scope *)sh;
	s->parent = -1; /* the callback's listener says */
	s->depth = 1;
	s->valid = true;
	s->last_unwind = INT_MAX;
	s->n_pushed = 1;
	e = &p->en[p->n_en];
	memset(e, 0, sizeof(*e));
	e->h = (struct rsc_entry *)eh;
	e->scope = p->n_sc;
	e->name = "conn";
	/* "slot N" for a direct one, "fd N" for a descriptor (accept.c). */
	e->kind = !strncmp(rsc_entry_detail(eh), "slot", 4) ? K_DIRECT : K_SOCKET;
	e->fd_kind = e->kind != K_DIRECT;
	pending = p->n_sc++;
	return p->n_en++;
}

/* ---- the clients ------------------------------------------------------------- */

static bool clients_ready(struct prog *p)
{
	int ret;

	if (cl_loop)
		return true;
	ret = rsc_loop_new(&cl_loop, 8, 0);
	if (ret < 0) {
		violation(p, "rsc_loop_new for the clients: %s", rsc_err_name(ret));
		cl_loop = NULL;
		return false;
	}
	ret = rsc_scope_open(cl_loop, NULL, "clients", &cl_scope);
	if (ret < 0)
		violation(p, "rsc_scope_open for the clients: %s", rsc_err_name(ret));
	return ret == 0;
}

static void client_close(struct prog *p, struct cli *c, unsigned how);

/* A client of listener @l: a nonblocking connect to its port. */
static void client_new(struct prog *p, int l)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	const struct pentry *e = &p->en[liss[l].entry];
	struct cli *c = &clis[n_cli];
	int fd, ret;

	/* Only to a listening socket: a port of one that has gone may be bound
	 * again by another process by now (a soak beside this one). */
	if (n_cli == MAX_CLI || !liss[l].port || !p->sc[e->scope].valid || e->detached ||
	    e->early || rsc_entry_state(e->h) != RSC_ENTERED || !clients_ready(p))
		return;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	ret = rsc_adopt(cl_scope, fd, 0, &c->h);
	if (ret < 0) {
		if (ret != -EEXIST || !lw_number_still_held(p, fd))
			violation(p, "rsc_adopt of a client into the clients' loop: %s", rsc_err_name(ret));
		close(fd);
		return;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)liss[l].port);
	c->fd = fd;
	c->to = liss[l].port;
	c->conn = -1;
	c->connect_err = connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ? errno : 0;
	c->port = sock_port(fd, false);
	if (c->port == c->to) {
		/* The kernel picked the listener's port for the client: TCP
		 * connected it to itself (simultaneous open). Never while the
		 * port listens, but said rather than left to hang. */
		violation(p, "client %d got its listener's port %u as its own", n_cli, c->to);
		c->fd = fd;
		client_close(p, c, 0);
		return;
	}
	say(p, "  op %d: client %d (port %u) connects to listener entry %d (port %u): %s\n",
	    p->op_index, n_cli, c->port, p->en[liss[l].entry].seq, liss[l].port,
	    c->connect_err ? strerror(c->connect_err) : "connected");
	n_cli++;
	g_st->clients++;
}

/* The client gives up: its descriptor closed, or its side shut down, with or without a byte sent. */
static void client_close(struct prog *p, struct cli *c, unsigned how)
{
	int fd;

	if (c->fd < 0)
		return;
	if (how & 1)
		(void)!send(c->fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (how & 2) {
		shutdown(c->fd, SHUT_WR); /* it still waits for the server's end */
		return;
	}
	fd = rsc_entry_detach(c->h);
	if (fd != c->fd)
		violation(p, "rsc_entry_detach of client %d: %d, expected %d", (int)(c - clis), fd,
			  c->fd);
	close(c->fd);
	c->fd = -1;
}

/* ---- the accept callback ------------------------------------------------------- */

static void release_one(struct prog *p, int i, bool with_cb)
{
	uint8_t b = with_cb;
	struct rd r = { &b, 1, 0 };

	op_release(p, i, &r);
}

/* The connection's peer: a client of the program's, accepted once. Clients
 * of two listeners may share a port: the pair of ports tells them apart. */
static void match_client(struct prog *p, int i, int fd)
{
	unsigned port = sock_port(fd, true), to = sock_port(fd, false);
	int k;

	for (k = n_cli - 1; k >= 0; k--)
		if (clis[k].port == port && clis[k].to == to)
			break;
	if (k < 0) {
		violation(p, "a connection (fd %d) from port %u to %u, which no client of the program made",
			  fd, port, to);
		return;
	}
	if (clis[k].conn >= 0)
		violation(p, "client %d (port %u) accepted twice", k, port);
	clis[k].conn = i;
	g_st->clients_accepted++;
}

/* The connection's scope and entry, traced just before (acc_bind): under the listener's scope. */
static int conn_arrived(struct acc *a, int res, struct rsc_scope *cs, struct rsc_entry *conn)
{
	struct prog *p = a->p;
	int ls = p->en[a->entry].scope, c = pending, i;

	pending = -1;
	if (!cs || !conn || c < 0 || p->sc[c].h != cs) {
		violation(p, "accept %d: a connection (%d) whose scope and entry were not traced just before",
			  (int)(a - accs), res);
		return -1;
	}
	p->sc[c].parent = ls;
	p->sc[c].depth = p->sc[ls].depth + 1;
	for (i = p->n_en - 1; i >= 0 && p->en[i].scope != c; i--)
		;
	if (i < 0 || p->en[i].h != conn) {
		violation(p, "accept %d: the connection's entry is not the one traced", (int)(a - accs));
		return -1;
	}
	if (a->probe)
		violation(p, "accept %d on entry %d, no listener, delivered a connection",
			  (int)(a - accs), p->en[a->entry].seq);
	/* rsc_accept(3): once the listener's scope is closing, the runtime closes them. */
	if (unwind_owns(p, ls))
		violation(p, "accept %d delivered a connection into '%s', whose scope is closing",
			  (int)(a - accs), p->sc[ls].name);
	if (rsc_scope_state(cs) != RSC_SCOPE_OPEN)
		violation(p, "accept %d: the connection's scope is in state %d", (int)(a - accs),
			  rsc_scope_state(cs));
	if (p->en[i].kind == K_DIRECT) {
		if (!(a->flags & RSC_DIRECT) || rsc_entry_slot(conn) != res)
			violation(p, "accept %d: slot %d, its entry says %d (flags 0x%x)",
				  (int)(a - accs), res, rsc_entry_slot(conn), a->flags);
	} else if ((a->flags & RSC_DIRECT) || rsc_entry_fd(conn) != res) {
		violation(p, "accept %d: fd %d, its entry says %d (flags 0x%x)", (int)(a - accs),
			  res, rsc_entry_fd(conn), a->flags);
	} else {
		match_client(p, i, res);
	}
	a->n_conns++;
	g_st->conns++;
	return i;
}

/* What a callback does besides: acts on the connection, or on the listener's side. */
static void act(struct acc *a, int conn, bool last)
{
	struct prog *p = a->p;
	int l = a->entry, ls = p->en[l].scope;

	switch (a->act) {
	case A_CLOSE_CONN:
		if (conn >= 0)
			op_close(p, p->en[conn].scope);
		break;
	case A_RELEASE_CONN:
		if (conn >= 0)
			release_one(p, conn, a->n_conns & 1);
		break;
	case A_DETACH_CONN:
		if (conn >= 0 && op_detach(p, conn))
			g_st->detached++;
		break;
	case A_CLOSE_SCOPE:
		if (!p->sc[ls].close_req && !p->shutting_down)
			op_close(p, ls);
		break;
	case A_RELEASE_LIS:
		if (!p->en[l].early && !p->en[l].detached)
			release_one(p, l, false);
		break;
	case A_DETACH_LIS:
		/* From its last call, or a shortage's: it stopped counting (rsc_entry_detach(3)). */
		if ((last || (shortage(a->last_res) && !a->still_armed)) && !p->en[l].detached &&
		    op_detach(p, l)) {
			g_st->detached++;
			if (!last) {
				a->n_last++; /* a shortage's callback that detaches ends it */
				say(p, "    accept %d ends: its callback detached the listener\n",
				    (int)(a - accs));
			}
		}
		break;
	case A_FAIL_SCOPE:
		if (!p->sc[ls].fail_req && !p->sc[ls].close_req && !p->shutting_down)
			own_fail_scope(p, ls, (unsigned)a->n_calls, g_st);
		break;
	default:
		break;
	}
}

static void accept_cb(struct rsc_entry *lh, int res, struct rsc_scope *cs, struct rsc_entry *conn,
		      void *data)
{
	struct acc *a = data;
	struct prog *p = a->p;
	struct pentry *l = &p->en[a->entry];
	int ls = l->scope, k = (int)(a - accs), c = -1;
	bool multi = a->flags & RSC_ACCEPT_MULTISHOT, last;

	say(p, "    accept %d (flags 0x%x) on entry %d of %s -> %d%s\n", k, a->flags, l->seq,
	    p->sc[ls].name, res, cs ? " (a connection)" : "");
	a->n_calls++;
	audit_probe(p, "an accept callback");
	if (lh != l->h)
		violation(p, "accept %d called back with another listener's handle", k);
	if (a->n_last)
		violation(p, "accept %d called back (%s) after its last call (%s)", k,
			  rsc_err_name(res), rsc_err_name(a->last_res));
	if (l->n_released || l->detached)
		violation(p, "accept %d called back after its listener's %s", k,
			  l->detached ? "detach" : "release");
	if (p->sc[ls].n_closed || !p->sc[ls].valid)
		violation(p, "accept %d called back after its listener's scope '%s' closed", k,
			  p->sc[ls].name);
	if (res >= 0) {
		c = conn_arrived(a, res, cs, conn);
		last = !multi;
	} else {
		if (cs || conn)
			violation(p, "accept %d: an error (%s) with a scope or an entry", k,
				  rsc_err_name(res));
		last = !multi || !shortage(res);
		a->n_short += multi && shortage(res);
		/* A connection dropped for memory while the kernel's accept goes on
		 * (rsc_accept(3)): its op is in flight, the listener not detachable. */
		a->still_armed = multi && res == -ENOMEM && rsc_entry_io_count(lh) > 0;
		heard_injected += injectable(res);
		/* -ECANCELED, a kernel's errno (none from a listener on loopback
		 * but ECONNABORTED), an injected one, the probes' (a descriptor
		 * that does not listen), or no SQE or memory to re-arm. */
		if (!a->probe && res != -ECANCELED && res != -ECONNABORTED && !injectable(res) &&
		    res != -ENOMEM && res != -EBUSY)
			violation(p, "accept %d (flags 0x%x) on a listener: %s", k, a->flags,
				  rsc_err_name(res));
	}
	a->last_res = res;
	if (last)
		a->n_last++;
	a->in_cb = true;
	act(a, c, last);
	a->in_cb = false;
}

/* ---- operations ---------------------------------------------------------------- */

/* A listener of @s on 127.0.0.1, port 0: the socket and its "listen" entry (program.c). */
static int new_listener(struct prog *p, int s, struct prog_stats *st)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int i;

	if (n_lis == MAX_LIS || !p->env->have_socket)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	i = net_pair(p, s, true, &a, sizeof(a), 0, BACKLOG, st);
	if (i < 0)
		return -1;
	liss[n_lis].entry = i;
	liss[n_lis].port = 0;
	st->listeners++;
	return n_lis++;
}

/* A listener whose entry may accept (mostly), else any: its index in liss, or -1. */
static int pick_listener(const struct prog *p, unsigned b)
{
	int cand[MAX_LIS], n = 0, l;

	for (l = 0; l < n_lis; l++) {
		const struct pentry *e = &p->en[liss[l].entry];

		if (!(b & 3) || (p->sc[e->scope].valid && !e->early && !e->detached &&
				 rsc_entry_state(e->h) == RSC_ENTERED && !unwind_owns(p, e->scope)))
			cand[n++] = l;
	}
	return n ? cand[(b >> 2) % (unsigned)n] : -1;
}

/* The listener's entry has not entered yet: a turn or two of the loop. */
static void let_enter(struct prog *p, int l, struct prog_stats *st)
{
	int k;

	for (k = 0; k < 3 && !liss[l].port && !p->failed; k++) {
		const struct pentry *e = &p->en[liss[l].entry];

		if (!p->sc[e->scope].valid || e->n_failed || e->detached)
			return;
		op_run(p, 0, st);
	}
}

/* What rsc_accept on entry @i must return, from the model (rsc_accept(3) ERRORS). */
static int accept_want(const struct prog *p, int i, unsigned flags)
{
	const struct pentry *e = &p->en[i];
	int state = rsc_entry_state(e->h), s = e->scope;

	if (!p->sc[s].valid || e->detached)
		return -ESTALE;
	if (state != RSC_ENTERED || e->early || e->handed) /* a slot handed over: value -1 */
		return -EBADF;
	if (unwind_owns(p, s))
		return -ESHUTDOWN;
	/* A defer's or a timer's value is no descriptor (rsc_read(3): EBADF). */
	if (e->kind == K_DEFER || e->kind == K_TIMER)
		return -EBADF;
	if ((flags & RSC_DIRECT) && !p->n_direct && !p->table)
		return -ENXIO;
	return 0;
}

/* Start an accept on entry @i; @b picks its flags and its callback's act. */
static int start_accept(struct prog *p, int i, unsigned b, bool probe, struct prog_stats *st)
{
	struct acc *a;
	unsigned flags = 0;
	int want, ret;

	if (n_acc == MAX_ACC)
		return -ENOSPC;
	if (b & 2)
		flags |= RSC_ACCEPT_MULTISHOT;
	if (b & 4)
		flags |= RSC_SHUTDOWN_ON_RELEASE;
	/* Into the direct table, when it has one (its close_direct may not meet a close rule). */
	if ((b & 0x18) == 0x18 && ((!p->n_direct && !p->table) || p->cur_class != FC_REL))
		flags |= RSC_DIRECT;
	a = &accs[n_acc];
	memset(a, 0, sizeof(*a));
	a->p = p;
	a->entry = i;
	a->flags = flags;
	a->probe = probe;
	a->act = (enum act)(b >> 5);
	want = accept_want(p, i, flags);
	ret = rsc_accept(p->en[i].h, flags, accept_cb, a);
	if ((flags & RSC_ACCEPT_MULTISHOT) && miss_refuses(p, M_NO_ACCEPT_MS)) {
		/* No IORING_ACCEPT_MULTISHOT (missing.c): refused, by that or another reason. */
		if (ret == 0 || (ret == -EOPNOTSUPP && want == 0))
			want = -EOPNOTSUPP;
		else if (ret == -EOPNOTSUPP)
			want = ret; /* the page ranks it against no other refusal */
		st->missing_refusals += ret == -EOPNOTSUPP;
	}
	say(p, "  op %d: accept %d (flags 0x%x, act %d) on entry %d of %s (state %d) -> %d\n",
	    p->op_index, n_acc, flags, (int)a->act, p->en[i].seq, p->sc[p->en[i].scope].name,
	    rsc_entry_state(p->en[i].h), ret);
	if (ret != want &&
	    !(ret == -EBUSY && !want && rsc_loop_counter(p->loop, RSC_CTR_FAULTS_INJECTED) > 0) &&
	    /* No descriptor, and a scope above closing: the page ranks neither first. */
	    !(ret == -EBADF && want == -ESHUTDOWN &&
	      (p->en[i].kind == K_DEFER || p->en[i].kind == K_TIMER))) {
		violation(p, "rsc_accept (flags 0x%x) on entry %d ('%s') of '%s' (state %d): %s, expected %s",
			  flags, p->en[i].seq, p->en[i].name, p->sc[p->en[i].scope].name,
			  rsc_entry_state(p->en[i].h), rsc_err_name(ret), rsc_err_name(want));
		return ret;
	}
	if (ret < 0) {
		st->accepts_refused++;
		return ret;
	}
	if (flags & RSC_DIRECT)
		p->n_direct++; /* close rules stay away from its slots */
	n_acc++;
	st->accepts++;
	st->accepts_multishot += !!(flags & RSC_ACCEPT_MULTISHOT);
	st->accepts_direct += !!(flags & RSC_DIRECT);
	return 0;
}

/* An accept on a listener: made first (and let enter) if there is none. */
static void op_accept(struct prog *p, struct rd *r, bool clients, struct prog_stats *st)
{
	unsigned b = rd_u8(r), f = rd_u8(r);
	int l = pick_listener(p, b), s, k;

	if (l < 0) {
		s = pick_scope(p, r);
		if (s < 0 || (l = new_listener(p, s, st)) < 0)
			return;
	}
	let_enter(p, l, st);
	/* A table for a direct accept, as handover.c makes it. */
	if ((f & 0x18) == 0x18 && !p->n_direct && (f & 1) && p->sc[p->en[liss[l].entry].scope].valid)
		ho_direct(p, p->en[liss[l].entry].scope, r);
	if (start_accept(p, liss[l].entry, f, false, st) == 0 && clients)
		for (k = 0; k <= (int)(b >> 6) % 3; k++)
			client_new(p, l);
}

/* An accept on an entry that is no listener: refused, or ended by the kernel's errno. */
static void op_probe(struct prog *p, struct rd *r, struct prog_stats *st)
{
	int i = pick_entry(p, r);
	const struct pentry *e;

	if (i < 0)
		return;
	e = &p->en[i];
	if (e->kind == K_CUSTOM || lis_of(i) >= 0 || e->n_handing)
		return; /* a custom value's meaning is its manager's; a slot may be leaving */
	if (e->kind == K_NET && !strcmp(e->name, "listen"))
		return; /* op_address's listener listens: a connect of the program may reach it */
	start_accept(p, i, rd_u8(r) & ~0x18U, true, st);
}

/* Nothing in @s's subtree holds a grace for ever: no I/O in flight, and no
 * entry that may start some (an I/O pair, a timer, a custom entry whose
 * hooks may). */
static bool grace_ends(const struct prog *p, int s)
{
	const struct pentry *e;
	int i;

	for (i = 0; i < p->n_en; i++) {
		e = &p->en[i];
		if (!in_subtree(p, s, e->scope) || !p->sc[e->scope].valid || e->detached)
			continue;
		if (io_has_pair(i) || e->kind == K_TIMER || e->kind == K_CUSTOM ||
		    (e->h && rsc_entry_io_count(e->h) > 0))
			return false;
	}
	return true;
}

/*
 * The awkward case: an accept armed and its clients connecting, and in the
 * same turn, before the loop has run, what ends the accept's scope or its
 * listener. Then a turn, so that what the kernel completed meets it.
 */
static void op_race(struct prog *p, struct rd *r, struct prog_stats *st)
{
	unsigned x = rd_u8(r), y = rd_u8(r);
	int l = pick_listener(p, x | 1), s, np, k;

	if (l < 0) {
		s = pick_scope(p, r);
		if (s < 0 || (l = new_listener(p, s, st)) < 0)
			return;
	}
	let_enter(p, l, st);
	if (start_accept(p, liss[l].entry, y, false, st) < 0)
		return;
	for (k = 0; k <= (int)(x >> 6) % 3; k++)
		client_new(p, l);
	if (x & 4)
		op_run(p, 0, st); /* the connections may be in the CQ, not yet dispatched */
	s = p->en[liss[l].entry].scope;
	if (!p->sc[s].valid)
		return;
	switch ((x >> 3) % 8) {
	case 0:
		op_close(p, s);
		break;
	case 1: /* unless a callback detached it meanwhile */
		if (!p->en[liss[l].entry].detached)
			release_one(p, liss[l].entry, x & 0x20);
		break;
	case 2:
		own_close_graceful(p, s, 1 + y % 8, st);
		break;
	case 3: /* no bound: the accept is cancelled at once, and nothing else holds it */
		own_close_graceful(p, s, grace_ends(p, s) ? 0 : 1, st);
		break;
	case 4: /* a deadline that passes at the next turn or so */
		own_set_deadline(p, s, 1, x & 0x20, st);
		break;
	case 5:
		own_fail_scope(p, s, y, st);
		break;
	case 6: /* moved: its connections come into the scope where it is now */
		np = pick_scope(p, r);
		own_move_scope(p, s, np == s ? -1 : np, st);
		break;
	default: /* the scope above closes */
		op_close(p, p->sc[s].parent >= 0 ? p->sc[s].parent : s);
		break;
	}
	op_run(p, y & 0x80 ? 1 : 0, st);
}

/* "accept" rules of their own window: they fail accepts, which no entry
 * counts (ring rules beside them, whose faults no event shows either). */
static void op_acc_fault(struct prog *p, struct rd *r, struct prog_stats *st)
{
	unsigned b = rd_u8(r), n = 1 + b % 2, i, x;
	char spec[160];
	size_t used = 0;
	int ret;

	if (!p->env->have_faults)
		return;
	spec[0] = '\0';
	for (i = 0; i < n; i++) {
		x = rd_u8(r);
		used += (size_t)snprintf(spec + used, sizeof(spec) - used, "%saccept:%u:%s",
					 i ? "," : "", 1 + (x >> 4) % 4,
					 acc_errnos[x % (sizeof(acc_errnos) / sizeof(acc_errnos[0]))]);
	}
	/* And, at times, no SQE for a re-arm after a shortage: the last call must say so. */
	if (b & 4)
		snprintf(spec + used, sizeof(spec) - used, ",submit:%u:EINTR,sq_full:%u:EBUSY",
			 1 + (b >> 3) % 4, 1 + (b >> 5) % 4);
	fault_window(p);
	ret = prog_fault_set(p, spec);
	say(p, "  op %d: fault_set \"%s\" -> %d\n", p->op_index, spec, ret);
	if (ret != 0)
		violation(p, "rsc_fault_set(\"%s\"): %s", spec, rsc_err_name(ret));
	p->cur_class = FC_ACC;
	p->ring_rules = b & 4;
	p->msg_armed = false;
	st->fault_rules += n;
}

/* A connection's end by the program: its scope closed, its entry released or detached. */
static void op_conn(struct prog *p, struct rd *r)
{
	unsigned b = rd_u8(r);
	int cand[MAX_CLI], n = 0, k, i;

	for (k = 0; k < n_cli; k++)
		if (clis[k].conn >= 0 && p->sc[p->en[clis[k].conn].scope].valid &&
		    !p->en[clis[k].conn].detached)
			cand[n++] = clis[k].conn;
	if (!n) {
		/* Or a client's: it closes, or shuts its side down. */
		for (k = 0; k < n_cli; k++)
			if (clis[k].fd >= 0)
				cand[n++] = k;
		if (n)
			client_close(p, &clis[cand[(b >> 2) % (unsigned)n]], b);
		return;
	}
	i = cand[(b >> 2) % (unsigned)n];
	switch (b % 4) {
	case 0:
		op_close(p, p->en[i].scope);
		break;
	case 1:
		release_one(p, i, b & 0x80);
		break;
	case 2:
		(void)op_detach(p, i);
		break;
	default:
		for (k = 0; k < n_cli; k++)
			if (clis[k].conn == i)
				client_close(p, &clis[k], b >> 4);
		break;
	}
}

/*
 * The conn kind: what own.c does to any scope, aimed at a connection's:
 * deadlines (own, move-on, or its listener's scope's first), failures, and
 * defers that then see the failure, or do not once a defer above them
 * suppressed it. Each connection's scope is "conn", and own.c's checks tell
 * them apart by their errors (own.c, link_twin). Without a connection, an
 * accept and its clients first.
 */
void acc_conn_op(struct prog *p, struct rd *r, struct prog_stats *st)
{
	unsigned b = rd_u8(r), mode = rd_u8(r);
	int cand[MAX_SCOPES], n = 0, s, k;

	g_st = st;
	if (!p->env->have_socket)
		return;
	for (k = 0; k < p->n_sc; k++)
		if (p->sc[k].valid && !strcmp(p->sc[k].name, "conn") && p->sc[k].parent >= 0)
			cand[n++] = k;
	if (!n) {
		op_accept(p, r, true, st);
		op_run(p, 0, st);
		return;
	}
	s = cand[(b >> 3) % (unsigned)n];
	say(p, "  op %d: on connection scope %d (%u)\n", p->op_index, s, b % 8);
	switch (b % 8) {
	case 0:
	case 1:
		own_set_deadline(p, s, 1 + (b >> 6), b & 1, st);
		break;
	case 2: /* its listener's scope's deadline first: the earlier one wins */
		own_set_deadline(p, p->sc[s].parent, 1, false, st);
		own_set_deadline(p, s, 2 + (b >> 6), false, st);
		break;
	case 3:
		own_fail_scope(p, s, mode, st);
		break;
	case 4: /* a defer that sees the failure */
		own_defer(p, s, mode, st);
		own_fail_scope(p, s, mode >> 2, st);
		break;
	case 5: /* ... or not: a defer above it suppresses it first */
		own_defer(p, s, mode, st);
		own_defer(p, s, 1, st); /* DM_SUPPRESS */
		own_fail_scope(p, s, mode >> 2, st);
		break;
	case 6: /* a defer, then a deadline that ends it */
		own_defer(p, s, mode, st);
		own_set_deadline(p, s, 1, false, st);
		break;
	default:
		own_close_graceful(p, s, 1 + (b >> 6), st);
		break;
	}
	if (mode & 0x80)
		op_run(p, mode >> 5, st);
}

void acc_op(struct prog *p, unsigned sub, struct rd *r, struct prog_stats *st)
{
	unsigned x;
	int s, l;

	g_st = st;
	if (!p->env->have_socket)
		return;
	switch (sub) {
	case 0: /* a listener, or an accept (and a client or three) */
		x = rd_u8(r);
		if (x & 1) {
			s = pick_scope(p, r);
			if (s >= 0)
				new_listener(p, s, st);
		} else {
			op_accept(p, r, x & 2, st);
		}
		break;
	case 1: /* clients of a listener, or a client that gives up */
		x = rd_u8(r);
		if (x % 4 == 3) {
			op_conn(p, r);
			break;
		}
		l = pick_listener(p, x);
		for (s = 0; l >= 0 && s <= (int)(x >> 2) % 3; s++)
			client_new(p, l);
		break;
	case 2:
		op_race(p, r, st);
		break;
	default:
		x = rd_u8(r);
		if (x % 4 == 0)
			op_acc_fault(p, r, st);
		else if (x % 4 == 1)
			op_probe(p, r, st);
		else
			op_conn(p, r);
		break;
	}
}

/* ---- the end ------------------------------------------------------------------- */

/* Every loop of the program is gone: each client sees the end of its connection. */
static void client_end(struct prog *p, struct cli *c, struct prog_stats *st)
{
	int k = (int)(c - clis);
	struct pollfd pfd = { c->fd, POLLIN, 0 };
	char byte;
	ssize_t n;

	if (c->fd < 0)
		return;
	if (poll(&pfd, 1, END_WAIT_MS) == 1) {
		n = recv(c->fd, &byte, 1, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == ECONNREFUSED ||
					 errno == ENOTCONN || errno == EPIPE))) {
			st->clients_reset += n < 0;
			/* Its end, but no callback had it: closed by the runtime (or a slot). */
			st->conns_orphaned += n == 0 && c->conn < 0;
		} else {
			violation(p, "client %d (port %u, to %u%s): %zd (%s) at the end, no end of its connection",
				  k, c->port, c->to, c->conn >= 0 ? ", accepted" : "", n,
				  n < 0 ? strerror(errno) : "a byte nobody sent");
		}
	} else {
		violation(p, "client %d (port %u, to port %u%s) still connected %d ms after every loop closed: a descriptor outlived its scope",
			  k, c->port, c->to, c->conn >= 0 ? ", accepted" : ", never accepted",
			  END_WAIT_MS);
	}
	client_close(p, c, 0);
}

void acc_end(struct prog *p, struct prog_stats *st)
{
	int k, ret;

	for (k = 0; k < n_acc; k++) {
		const struct acc *a = &accs[k];

		if (a->n_last != 1)
			violation(p, "accept %d (flags 0x%x) on entry %d: %d last calls by the end (%d calls, %d connections, %d shortages, the last %s)",
				  k, a->flags, p->en[a->entry].seq, a->n_last, a->n_calls, a->n_conns,
				  a->n_short, rsc_err_name(a->last_res));
	}
	if (heard_injected > p->fired[FC_ACC])
		violation(p, "%lld accept calls heard an injected errno, %lld accept rules fired",
			  heard_injected, p->fired[FC_ACC]);
	st->acc_faults += (unsigned long long)p->fired[FC_ACC];
	for (k = 0; k < n_cli; k++)
		client_end(p, &clis[k], st);
	if (cl_loop) {
		ret = rsc_loop_shutdown(cl_loop, NULL);
		if (ret != 0)
			violation(p, "rsc_loop_shutdown of the clients' loop: %s", rsc_err_name(ret));
		cl_loop = NULL;
	}
}
