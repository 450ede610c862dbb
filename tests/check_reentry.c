/* SPDX-License-Identifier: MIT */
/*
 * Callbacks that call back into the library: every kind of user code the
 * runtime calls (on-enter, I/O, accept, release, close, on-close, trace,
 * post, timer) acting on its own entry or scope and on others, checked
 * against what the man pages promise: the documented errno, one callback,
 * nothing leaked, no descriptor closed twice, and no use of freed memory
 * (the ASan build poisons pooled objects).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "helpers.h"

/* What one callback did and saw. */
struct reent {
	struct rsc_scope *self, *other;
	struct rsc_entry *entry, *other_entry;
	int calls;
	int res;
	int r[8];
	int fd;
	struct sockaddr_in *addr;
};

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static struct rsc_scope *open_scope(struct rsc_scope *parent, const char *name)
{
	struct rsc_scope *s;

	ck_assert_int_eq(rsc_scope_open(t_loop, parent, name, &s), 0);
	return s;
}

/* ------------------------------------------------- detaching from inside */

static void on_enter_detaches(struct rsc_entry *e, int res, void *data)
{
	struct reent *x = data;

	x->calls++;
	x->res = res;
	x->fd = rsc_entry_detach(e);
	x->r[0] = rsc_entry_state(e);
	/* Its memory goes to the next entry: a socket that a connect builds on. */
	x->r[1] = rsc_connect(x->self, (struct sockaddr *)x->addr, sizeof(*x->addr), 0, 0,
			      &x->other_entry);
}

START_TEST(on_enter_callback_detaches_its_own_entry)
{
	struct rsc_scope *srv = open_scope(NULL, "srv"), *s = open_scope(NULL, "s");
	struct rsc_entry *e;
	struct sockaddr_in bound;
	struct reent x = { .fd = -1, .self = s, .addr = &bound };

	t_listen_on_loopback(srv, 4, &bound);
	t_make_files(1);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, on_enter_detaches, &x), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_ge(x.res, 0);
	ck_assert_int_eq(x.fd, x.res);
	ck_assert_int_eq(x.r[0], -ESTALE);
	/* The connect pushed from the callback is untouched by the entry that went. */
	ck_assert_int_eq(x.r[1], 0);
	ck_assert_int_eq(rsc_entry_state(x.other_entry), RSC_ENTERED);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
	/* The caller's now: the scope's close left it alone. */
	ck_assert(fd_open(x.fd));
	ck_assert_int_eq(close(x.fd), 0);
}
END_TEST

static void io_cb_detaches(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct reent *x = data;

	(void)buf;
	x->calls++;
	x->res = res;
	x->fd = rsc_entry_detach(e);
	x->r[0] = rsc_entry_state(e);
}

START_TEST(io_callback_detaches_its_own_entry)
{
	struct rsc_scope *s = open_scope(NULL, "s");
	struct rsc_entry *e;
	struct reent x = { .fd = -1 };
	char buf[8];
	int peer;

	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(write(peer, "x", 1), 1);
	ck_assert_int_eq(rsc_recv(e, buf, sizeof(buf), 0, io_cb_detaches, &x), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.res, 1);
	ck_assert_int_ge(x.fd, 0);
	ck_assert_int_eq(x.r[0], -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(fd_open(x.fd));
	close(x.fd);
	close(peer);
}
END_TEST

static void accept_cb_detaches_listener(struct rsc_entry *l, int res, struct rsc_scope *cs,
					struct rsc_entry *conn, void *data)
{
	struct reent *x = data;

	(void)cs;
	(void)conn;
	x->r[x->calls++ & 7] = res;
	if (res < 0 && x->fd < 0)
		x->fd = rsc_entry_detach(l);
}

/* The accept's error callback comes after it stopped being tracked: the listener may go. */
static void accept_error_detaches(unsigned flags)
{
	struct rsc_scope *s = open_scope(NULL, "server");
	struct rsc_entry *l;
	struct reent x = { .fd = -1 };
	struct sockaddr_in bound;

	l = t_listen_on_loopback(s, 4, &bound);
	ck_assert_int_ge(rsc_entry_wait(l), 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "accept:1:EMFILE"), 0);
	ck_assert_int_eq(rsc_accept(l, flags, accept_cb_detaches_listener, &x), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], -EMFILE);
	ck_assert_int_ge(x.fd, 0);
	ck_assert_int_eq(rsc_entry_state(l), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(fd_open(x.fd));
	close(x.fd);
}

START_TEST(accept_error_callback_detaches_its_listener)
{
	accept_error_detaches(0);
}
END_TEST

START_TEST(multishot_accept_shortage_callback_detaches_its_listener)
{
	accept_error_detaches(RSC_ACCEPT_MULTISHOT);
}
END_TEST

static void recv_cb_detaches_at_the_end(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct reent *x = data;

	x->calls++;
	if (buf)
		return;
	x->res = res;
	x->fd = rsc_entry_detach(e);
}

START_TEST(multishot_receive_final_callback_detaches_its_entry)
{
	struct rsc_scope *s = open_scope(NULL, "s");
	struct rsc_entry *e;
	struct reent x = { .fd = -1 };
	int peer;

	e = t_adopted_pair(s, &peer);
	ck_assert_int_eq(rsc_recv_multishot(e, 0, recv_cb_detaches_at_the_end, &x), 0);
	ck_assert_int_eq(write(peer, "ab", 2), 2);
	ck_assert_int_eq(close(peer), 0); /* end of stream: the last callback */
	t_run();
	ck_assert_int_ge(x.calls, 2);
	ck_assert_int_eq(x.res, 0);
	ck_assert_int_ge(x.fd, 0);
	ck_assert_int_eq(rsc_entry_state(e), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(fd_open(x.fd));
	close(x.fd);
}
END_TEST

static void install_cb_detaches(struct rsc_entry *e, int res, void *data)
{
	struct reent *x = data;

	x->calls++;
	x->res = res;
	x->fd = rsc_entry_detach(e);
}

START_TEST(install_callback_detaches_its_entry)
{
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct reent x = { .fd = -1 };

	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	t_make_files(1);
	s = open_scope(NULL, "s");
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_install(e, 0, install_cb_detaches, &x), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_ge(x.res, 0);
	ck_assert_int_eq(x.fd, x.res);
	ck_assert_int_eq(rsc_entry_state(e), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert(t_fd_open_to("/f0"));
	close(x.fd);
}
END_TEST

/* -------------------------------------------------- acting on others from inside */

static void close_cb_counts(struct rsc_scope *s, int status, const struct rsc_error *err,
			    void *data)
{
	struct reent *x = data;

	(void)err;
	x->calls++;
	x->res = status;
	x->r[1] = rsc_scope_close(s, NULL, NULL);
	x->r[2] = rsc_scope_open(t_loop, s, "late", &x->other);
}

static void on_close_closes_failed_scope(struct rsc_scope *s, int status,
					 const struct rsc_error *err, void *data)
{
	struct reent *x = data;

	(void)err;
	x->r[0] = status;
	x->r[3] = rsc_scope_close(s, close_cb_counts, x);
	x->r[4] = rsc_scope_state(s);
}

START_TEST(on_close_of_a_failed_scope_closes_it_once)
{
	struct rsc_scope *s = open_scope(NULL, "s");
	struct reent x = { 0 };
	int efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_adopt(s, efd, 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_on_close(s, on_close_closes_failed_scope, &x), 0);
	ck_assert_int_eq(rsc_scope_fail(s, -EPROTO, "body"), 0);
	t_run();
	ck_assert_int_eq(x.r[0], -EPROTO);
	ck_assert_int_eq(x.r[3], 0);
	ck_assert_int_eq(x.r[4], RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.res, -EPROTO);
	ck_assert_int_eq(x.r[1], -EALREADY);
	ck_assert_int_eq(x.r[2], -ESHUTDOWN);
	ck_assert_ptr_null(x.other);
	ck_assert_int_eq(rsc_scope_state(s), -ESTALE);
	ck_assert(!fd_open(efd));
}
END_TEST

static void release_cb_goes_on(struct rsc_entry *e, int res, void *data)
{
	struct reent *x = data;

	(void)e;
	x->r[x->calls++] = res;
	if (x->calls > 1)
		return;
	x->r[4] = rsc_entry_release(x->other_entry, release_cb_goes_on, x);
	x->r[5] = rsc_scope_close(x->self, NULL, NULL);
	x->r[6] = rsc_entry_release(x->entry, NULL, NULL);
}

START_TEST(release_callback_releases_a_sibling_and_closes_its_scope)
{
	struct rsc_scope *s = open_scope(NULL, "s");
	struct rsc_entry *a, *b, *c;
	struct reent x = { .self = s };
	int fa = eventfd(0, EFD_CLOEXEC), fb = eventfd(0, EFD_CLOEXEC),
	    fc = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_adopt(s, fa, 0, &a), 0);
	ck_assert_int_eq(rsc_adopt(s, fb, 0, &b), 0);
	ck_assert_int_eq(rsc_adopt(s, fc, 0, &c), 0);
	x.entry = a;
	x.other_entry = b;
	ck_assert_int_eq(rsc_entry_release(a, release_cb_goes_on, &x), 0);
	t_run();
	ck_assert_int_eq(x.calls, 2);
	ck_assert_int_eq(x.r[0], 0);
	ck_assert_int_eq(x.r[1], 0);
	ck_assert_int_eq(x.r[4], 0);
	ck_assert_int_eq(x.r[5], 0);
	ck_assert_int_eq(x.r[6], -EALREADY);
	ck_assert_int_eq(rsc_scope_state(s), -ESTALE);
	ck_assert(!fd_open(fa) && !fd_open(fb) && !fd_open(fc));
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED), 3);
	ck_assert_int_eq(t_count_events(RSC_EV_RELEASED), 3);
}
END_TEST

static void timer_cb_releases_itself(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct reent *x = data;

	(void)buf;
	x->calls++;
	x->res = res;
	x->r[0] = rsc_entry_detach(e);
	x->r[1] = rsc_entry_release(e, NULL, NULL);
	x->r[2] = rsc_timeout(e, 1, timer_cb_releases_itself, x);
	x->r[3] = rsc_entry_release(e, NULL, NULL);
}

START_TEST(timer_callback_releases_its_own_timer)
{
	struct rsc_scope *s = open_scope(NULL, "s");
	struct rsc_entry *t;
	struct reent x = { 0 };

	ck_assert_int_eq(rsc_timer(s, 1, timer_cb_releases_itself, &x, &t), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.res, -ETIME);
	ck_assert_int_eq(x.r[0], -EBADF); /* a timer holds no descriptor */
	ck_assert_int_eq(x.r[1], 0);
	ck_assert_int_eq(x.r[2], -EBADF);
	ck_assert_int_eq(x.r[3], -EALREADY);
	ck_assert_int_eq(rsc_entry_state(t), RSC_EXITED);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

static void accept_cb_moves_conn(struct rsc_entry *l, int res, struct rsc_scope *cs,
				 struct rsc_entry *conn, void *data)
{
	struct reent *x = data;

	(void)l;
	x->r[x->calls++ & 7] = res;
	if (res < 0)
		return;
	x->fd = res;
	x->r[4] = rsc_scope_move(cs, x->other);
	x->r[5] = rsc_scope_close(x->self, NULL, NULL);
	x->entry = conn;
}

START_TEST(accept_callback_moves_its_connection_out_and_closes_the_server)
{
	struct rsc_scope *srv = open_scope(NULL, "srv"), *keep = open_scope(NULL, "keep");
	struct rsc_entry *l;
	struct sockaddr_in bound;
	struct reent x = { .self = srv, .other = keep, .fd = -1 };
	int peer;

	l = t_listen_on_loopback(srv, 4, &bound);
	ck_assert_int_eq(rsc_accept(l, 0, accept_cb_moves_conn, &x), 0);
	peer = t_connect(&bound);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_ge(x.r[0], 0);
	ck_assert_int_eq(x.r[4], 0);
	ck_assert_int_eq(x.r[5], 0);
	ck_assert_int_eq(rsc_scope_state(srv), -ESTALE);
	/* The connection went with the scope it was moved to, not with the server. */
	ck_assert_int_eq(rsc_entry_state(x.entry), RSC_ENTERED);
	ck_assert(fd_open(x.fd));
	ck_assert_int_eq(rsc_scope_close_wait(keep, NULL), 0);
	ck_assert(!fd_open(x.fd));
	close(peer);
}
END_TEST

/* An arrival: stop the inbox, and hand the connection's scope back at once. */
static void arrival_stops_the_inbox(struct rsc_entry *inbox, int slot, struct rsc_scope *cs,
				    struct rsc_entry *e, void *data)
{
	struct reent *x = data;

	x->calls++;
	x->res = slot;
	x->r[0] = rsc_entry_release(inbox, NULL, NULL);
	x->r[1] = rsc_entry_detach(e); /* a slot: no descriptor to give */
	x->r[2] = rsc_scope_close(cs, NULL, NULL);
	x->r[3] = rsc_entry_release(inbox, NULL, NULL);
}

static void hand_over_cb(struct rsc_entry *e, int res, void *data)
{
	struct reent *x = data;

	x->r[4] = res;
	x->r[5] = rsc_entry_detach(e); /* it holds nothing any more */
	x->r[6] = rsc_entry_release(e, NULL, NULL);
}

START_TEST(arrival_callback_stops_its_inbox_and_closes_the_arrival)
{
	struct rsc_loop *rl;
	struct rsc_scope *rs, *s;
	struct rsc_entry *inbox, *e;
	unsigned long long addr;
	struct reent x = { 0 };
	int i;

	ck_assert_int_eq(rsc_loop_new(&rl, 16, RSC_LOOP_DIRECT), 0);
	ck_assert_int_eq(rsc_scope_open(rl, NULL, "receiver", &rs), 0);
	ck_assert_int_eq(rsc_inbox(rs, arrival_stops_the_inbox, &x, &inbox), 0);
	ck_assert_int_eq(rsc_inbox_address(inbox, &addr), 0);
	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	t_make_files(1);
	s = open_scope(NULL, "sender");
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, RSC_DIRECT, &e), 0);
	ck_assert_int_ge(rsc_entry_wait(e), 0);
	ck_assert_int_eq(rsc_entry_hand_over(e, addr, hand_over_cb, &x), 0);
	for (i = 0; i < 8; i++) {
		ck_assert_int_ge(rsc_loop_run(rl, RSC_RUN_NOWAIT), 0);
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_NOWAIT), 0);
	}
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_ge(x.res, 0);
	ck_assert_int_eq(x.r[0], 0);
	ck_assert_int_eq(x.r[1], -EBADF);
	ck_assert_int_eq(x.r[2], 0);
	ck_assert_int_eq(x.r[3], -EALREADY);
	ck_assert_int_ge(x.r[4], 0);
	ck_assert_int_eq(x.r[5], -EBADF);
	ck_assert_int_eq(x.r[6], 0);
	/* Stopped: nothing keeps the receiver alive, and nothing was left in its table. */
	ck_assert_int_eq(rsc_loop_run(rl, RSC_RUN_DEFAULT), 0);
	ck_assert_int_eq(rsc_loop_direct_used(rl), 0);
	ck_assert_int_eq(rsc_scope_close_wait(rs, NULL), 0);
	ck_assert_int_eq(rsc_loop_close(rl), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert(!t_fd_open_to("/f0"));
}
END_TEST

/* A chain's first send is reported before its connect settles: act on both. */
static void first_send_acts(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct reent *x = data;

	(void)buf;
	x->calls++;
	x->res = res;
	x->r[0] = rsc_entry_state(e);
	x->r[1] = rsc_entry_detach(e);
	x->r[2] = rsc_entry_release(e, NULL, NULL);
	x->r[3] = rsc_scope_close(x->self, NULL, NULL);
}

START_TEST(chain_send_callback_releases_its_connect_and_closes_the_scope)
{
	struct rsc_scope *srv = open_scope(NULL, "srv"), *cli = open_scope(NULL, "cli");
	struct rsc_entry *c;
	struct sockaddr_in bound;
	struct rsc_chain *ch;
	static char msg[] = "hello";
	struct reent x = { .self = cli };

	ck_assert_int_eq(rsc_loop_set_direct(t_loop, 16, 4), 0);
	t_listen_on_loopback(srv, 8, &bound);
	ck_assert_int_eq(rsc_chain_new(cli, &ch), 0);
	ck_assert_int_eq(rsc_chain_socket(ch, AF_INET, SOCK_STREAM, 0, NULL), 0);
	ck_assert_int_eq(rsc_chain_connect(ch, (struct sockaddr *)&bound, sizeof(bound), 1000, &c), 0);
	ck_assert_int_eq(rsc_chain_send(ch, msg, 5, first_send_acts, &x), 0);
	ck_assert_int_eq(rsc_chain_submit(ch), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.res, 5);
	ck_assert_int_eq(x.r[0], RSC_ENTERING);
	ck_assert_int_eq(x.r[1], -EBUSY);
	ck_assert_int_eq(x.r[2], 0);
	ck_assert_int_eq(x.r[3], 0);
	ck_assert_int_eq(rsc_scope_state(cli), -ESTALE);
	ck_assert_int_eq(rsc_loop_direct_used(t_loop), 0);
	ck_assert_int_eq(rsc_scope_close_wait(srv, NULL), 0);
}
END_TEST

/* Events the trace saw while the test was inside a call of its own. */
static int inside_call, traced_inside;

static void note_inside(struct recorder *r, const struct event *e)
{
	(void)r;
	(void)e;
	traced_inside += inside_call;
}

static void on_enter_counts(struct rsc_entry *e, int res, void *data)
{
	(void)e;
	(void)res;
	++*(int *)data;
}

/* The events of entry @name, in order, as "E" (entered) and "R" (released). */
static void events_of(const char *name, char *out, size_t len)
{
	int i;

	out[0] = '\0';
	for (i = 0; i < t_rec->n; i++)
		if (!strcmp(t_rec->ev[i].entry, name) &&
		    (t_rec->ev[i].ev == RSC_EV_ENTERED || t_rec->ev[i].ev == RSC_EV_RELEASED))
			snprintf(out + strlen(out), len - strlen(out), "%s",
				 t_rec->ev[i].ev == RSC_EV_ENTERED ? "E" : "R");
}

/*
 * rsc_entry_release(3): an adopted entry released before the loop turned is
 * traced entered from inside the call, while its number is still open, and
 * released from the loop; its on-enter callback never runs.
 */
START_TEST(release_of_an_adopted_entry_before_the_loop_turns_traces_it_entered_first)
{
	struct rsc_scope *s = open_scope(NULL, "s");
	struct rsc_entry *a;
	char order[16];
	int efd = eventfd(0, EFD_CLOEXEC), entered = 0;

	ck_assert_int_eq(rsc_adopt(s, efd, 0, &a), 0);
	ck_assert_int_eq(rsc_entry_on_enter(a, on_enter_counts, &entered), 0);
	traced_inside = 0;
	t_rec->after = note_inside;
	inside_call = 1;
	ck_assert_int_eq(rsc_entry_release(a, NULL, NULL), 0);
	inside_call = 0;
	events_of("adopt", order, sizeof(order));
	ck_assert_str_eq(order, "E");
	ck_assert_int_eq(traced_inside, 1);
	t_run();
	t_rec->after = NULL;
	ck_assert(!fd_open(efd));
	events_of("adopt", order, sizeof(order));
	ck_assert_str_eq(order, "ER");
	ck_assert_int_eq(entered, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
}
END_TEST

/* ------------------------------------------- blocking from every callback */

/* Which callbacks ran, and which blocking call did not say EDEADLK in one. */
struct blockers {
	struct rsc_entry *entry; /* one to wait on */
	struct rsc_scope *scope; /* one to close-wait */
	unsigned ran, wrong;
	char what[256];
};

static void try_blocking(struct blockers *b, unsigned kind, const char *name)
{
	int ret[8], i;

	ret[0] = rsc_loop_run(t_loop, RSC_RUN_NOWAIT);
	ret[1] = rsc_loop_close(t_loop);
	ret[2] = rsc_loop_shutdown(t_loop, NULL);
	ret[3] = rsc_scope_close_wait(b->scope, NULL);
	ret[4] = rsc_entry_wait(b->entry);
	ret[5] = rsc_entry_release_wait(b->entry, NULL);
	ret[6] = rsc_loop_set_direct(t_loop, 8, 0);
	ret[7] = rsc_loop_set_recv_buffers(t_loop, 8, 64);
	b->ran |= kind;
	for (i = 0; i < 8; i++)
		if (ret[i] != -EDEADLK) {
			b->wrong |= kind;
			snprintf(b->what + strlen(b->what), sizeof(b->what) - strlen(b->what),
				 "%s:%d=%s ", name, i, rsc_err_name(ret[i]));
		}
}

enum { B_ENTER = 1, B_MULTI_END = 2, B_TIMER = 4, B_RELEASE = 8, B_POST = 16, B_ON_CLOSE = 32,
       B_CLOSE = 64, B_ACCEPT = 128, B_MULTI = 256, B_GRACE = 512, B_TRACE = 1024 };

static void blk_enter(struct rsc_entry *e, int res, void *d)
{
	(void)e, (void)res;
	try_blocking(d, B_ENTER, "on-enter");
}

static void blk_io(struct rsc_entry *e, int res, void *buf, void *d)
{
	(void)e, (void)res, (void)buf;
	try_blocking(d, buf ? B_MULTI : B_MULTI_END, buf ? "multishot" : "multishot end");
}

static void blk_timer(struct rsc_entry *e, int res, void *buf, void *d)
{
	(void)e, (void)res, (void)buf;
	try_blocking(d, B_TIMER, "timer");
}

static void blk_release(struct rsc_entry *e, int res, void *d)
{
	(void)e, (void)res;
	try_blocking(d, B_RELEASE, "release");
}

static void blk_post(struct rsc_loop *loop, void *d)
{
	(void)loop;
	try_blocking(d, B_POST, "post");
}

static void blk_on_close(struct rsc_scope *s, int st, const struct rsc_error *err, void *d)
{
	(void)s, (void)st, (void)err;
	try_blocking(d, B_ON_CLOSE, "on-close");
}

static void blk_close(struct rsc_scope *s, int st, const struct rsc_error *err, void *d)
{
	(void)s, (void)st, (void)err;
	try_blocking(d, B_CLOSE, "close");
}

static void blk_grace(struct rsc_scope *s, int st, const struct rsc_error *err, void *d)
{
	(void)s, (void)st, (void)err;
	try_blocking(d, B_GRACE, "graceful close");
}

static void blk_accept(struct rsc_entry *l, int res, struct rsc_scope *cs,
		       struct rsc_entry *conn, void *d)
{
	(void)l, (void)res, (void)cs, (void)conn;
	try_blocking(d, B_ACCEPT, "accept");
}

static void blk_trace(struct rsc_loop *loop, enum rsc_event ev, const struct rsc_scope *s,
		      const struct rsc_entry *e, int res, void *d)
{
	(void)loop, (void)ev, (void)s, (void)e, (void)res;
	try_blocking(d, B_TRACE, "trace");
}

START_TEST(every_kind_of_callback_refuses_to_block)
{
	struct rsc_scope *s = open_scope(NULL, "s"), *g = open_scope(NULL, "g"),
			 *k = open_scope(NULL, "k");
	struct rsc_entry *a, *p, *t, *l;
	struct sockaddr_in bound;
	struct blockers b = { .scope = k };
	int fa = eventfd(0, EFD_CLOEXEC), peer, cli;
	/* A multishot receive's callbacks, where the loops have one (helpers.h). */
	unsigned multi = t_has_recv_multishot() ? B_MULTI : 0, multi_end = multi ? B_MULTI_END : 0;

	ck_assert_int_eq(rsc_adopt(k, fa, 0, &b.entry), 0);
	ck_assert_int_eq(rsc_adopt(s, eventfd(0, EFD_CLOEXEC), 0, &a), 0);
	/* Released before the loop turns: its on-enter never runs (B_ENTER stays clear). */
	ck_assert_int_eq(rsc_entry_on_enter(a, blk_enter, &b), 0);
	ck_assert_int_eq(rsc_entry_release(a, blk_release, &b), 0);
	p = t_adopted_pair(s, &peer);
	if (multi) {
		ck_assert_int_eq(rsc_recv_multishot(p, 0, blk_io, &b), 0);
		ck_assert_int_eq(write(peer, "x", 1), 1);
	}
	ck_assert_int_eq(rsc_timer(s, 1, blk_timer, &b, &t), 0);
	ck_assert_int_eq(rsc_loop_post(t_loop, blk_post, &b), 0);
	l = t_listen_on_loopback(g, 4, &bound);
	ck_assert_int_eq(rsc_accept(l, 0, blk_accept, &b), 0);
	cli = t_connect(&bound);
	ck_assert_int_eq(rsc_scope_on_close(s, blk_on_close, &b), 0);
	while ((b.ran & (multi | B_TIMER | B_POST | B_ACCEPT | B_RELEASE)) !=
	       (multi | B_TIMER | B_POST | B_ACCEPT | B_RELEASE))
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(close(peer), 0); /* the multishot's last call: end of stream */
	ck_assert_int_eq(rsc_scope_close(s, blk_close, &b), 0);
	ck_assert_int_eq(rsc_scope_close_graceful(g, 0, blk_grace, &b), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, blk_trace, &b), 0);
	t_run();
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, NULL, NULL), 0);
	ck_assert_int_eq(b.ran, (multi_end | multi | B_TIMER | B_RELEASE | B_POST | B_ON_CLOSE |
				 B_CLOSE | B_ACCEPT | B_GRACE | B_TRACE));
	ck_assert_msg(b.wrong == 0, "not EDEADLK: %s", b.what);
	ck_assert_int_eq(rsc_scope_close_wait(k, NULL), 0);
	ck_assert(!fd_open(fa));
	close(cli);
}
END_TEST

/* ------------------------------------------- blocking helpers outliving their object */

static void on_enter_only_detaches(struct rsc_entry *e, int res, void *data)
{
	struct reent *x = data;

	(void)res;
	x->calls++;
	x->fd = rsc_entry_detach(e);
}

START_TEST(entry_wait_for_an_entry_its_on_enter_detaches)
{
	struct rsc_scope *s = open_scope(NULL, "s");
	struct rsc_entry *e;
	struct reent x = { .fd = -1 };

	t_make_files(1);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	ck_assert_int_eq(rsc_entry_on_enter(e, on_enter_only_detaches, &x), 0);
	/* Gone while it waited: the handle says so. */
	ck_assert_int_eq(rsc_entry_wait(e), -ESTALE);
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_ge(x.fd, 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(fd_open(x.fd));
	close(x.fd);
}
END_TEST

/* An acquire that stays in flight until it is cancelled: a read of an empty pipe. */
static int read_enter(struct rsc_entry *e, void *arg)
{
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);
	static char byte;

	if (ret < 0)
		return ret;
	io_uring_prep_read(sqe, *(int *)arg, &byte, 1, 0);
	return 0;
}

static int nop_exit(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	(void)e;
	(void)p;
	(void)arg;
	return 0;
}

static const struct rsc_manager reader = {
	sizeof(struct rsc_manager), 0, "reader", read_enter, nop_exit
};

static void timer_closes_scope(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct reent *x = data;

	(void)e;
	(void)res;
	(void)buf;
	x->calls++;
	x->r[0] = rsc_scope_close(x->self, NULL, NULL);
}

START_TEST(entry_wait_while_a_callback_closes_its_scope)
{
	struct rsc_scope *s = open_scope(NULL, "s"), *o = open_scope(NULL, "o");
	struct rsc_entry *e;
	struct reent x = { .self = s };

	int pfd[2];

	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	ck_assert_int_eq(rsc_push(s, &reader, &pfd[0], &e), 0);
	ck_assert_int_eq(rsc_timer(o, 5, timer_closes_scope, &x, NULL), 0);
	/* The close cancels the acquire, and frees the scope and the entry in one turn. */
	ck_assert_int_eq(rsc_entry_wait(e), -ESTALE);
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], 0);
	ck_assert_int_eq(rsc_scope_state(s), -ESTALE);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

static void timer_result(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct reent *x = data;

	(void)e;
	(void)buf;
	x->r[x->calls++ & 7] = res;
}

/* rsc_timer(3): its callback hears -ECANCELED when the entry goes before it fires. */
START_TEST(timer_whose_scope_closes_before_it_starts_is_cancelled)
{
	struct rsc_scope *s = open_scope(NULL, "s"), *o = open_scope(NULL, "o");
	struct reent x = { 0 }, y = { 0 };
	struct rsc_entry *t;

	ck_assert_int_eq(rsc_timer(s, 60000, timer_result, &x, NULL), 0);
	ck_assert_int_eq(rsc_scope_close(s, NULL, NULL), 0);
	ck_assert_int_eq(rsc_timer(o, 60000, timer_result, &y, &t), 0);
	ck_assert_int_eq(rsc_entry_release(t, NULL, NULL), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], -ECANCELED);
	ck_assert_int_eq(y.calls, 1);
	ck_assert_int_eq(y.r[0], -ECANCELED);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
}
END_TEST

static void close_cb_status(struct rsc_scope *s, int status, const struct rsc_error *err,
			    void *data)
{
	struct reent *x = data;

	(void)s;
	(void)err;
	x->r[6]++;
	x->r[7] = status;
}

/* Each connection: the server drains gracefully, from inside the accept's callback. */
static void accept_cb_drains_server(struct rsc_entry *l, int res, struct rsc_scope *cs,
				    struct rsc_entry *conn, void *data)
{
	struct reent *x = data;

	(void)l;
	(void)conn;
	x->calls++;
	if (res < 0) {
		x->r[0]++;
		x->r[1] = res;
		return;
	}
	x->fd = res;
	x->r[2] = rsc_scope_close_graceful(x->self, 0, close_cb_status, x);
	x->r[3] = rsc_scope_state(cs);
}

START_TEST(multishot_accept_callback_drains_its_server)
{
	struct rsc_scope *srv = open_scope(NULL, "srv");
	struct rsc_entry *l;
	struct sockaddr_in bound;
	struct reent x = { .self = srv, .fd = -1 };
	int peer;

	l = t_listen_on_loopback(srv, 4, &bound);
	ck_assert_int_eq(rsc_accept(l, RSC_ACCEPT_MULTISHOT, accept_cb_drains_server, &x), 0);
	peer = t_connect(&bound);
	t_run();
	ck_assert_int_eq(x.r[2], 0);
	ck_assert_int_eq(x.r[3], RSC_SCOPE_OPEN);
	/* The accept ends with one last call; the connection went with the server. */
	ck_assert_int_eq(x.r[0], 1);
	ck_assert_int_eq(x.r[1], -ECANCELED);
	ck_assert_int_eq(x.calls, 2);
	ck_assert_int_eq(x.r[6], 1);
	ck_assert_int_eq(x.r[7], 0);
	ck_assert_int_eq(rsc_scope_state(srv), -ESTALE);
	close(peer);
	ck_assert(!t_fd_open_to("socket:["));
}
END_TEST

static void recv_cb_fails_scope(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct reent *x = data;

	(void)buf;
	x->r[x->calls++ & 3] = res;
	if (res > 0)
		x->r[4] = rsc_scope_fail(rsc_entry_scope(e), -EPROTO, "parse");
}

static int defer_sees(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct reent *x = arg;

	(void)e;
	x->r[5] = p ? rsc_error_errno(p) : 0;
	return 0;
}

START_TEST(io_callback_fails_its_scope_and_its_siblings_io_is_cancelled)
{
	struct rsc_scope *s = open_scope(NULL, "s");
	struct rsc_entry *a, *b;
	struct reent x = { 0 };
	char ba[4], bb[4];
	int pa, pb;

	ck_assert_int_eq(rsc_defer(s, defer_sees, &x, NULL), 0);
	a = t_adopted_pair(s, &pa);
	b = t_adopted_pair(s, &pb);
	ck_assert_int_eq(rsc_recv(b, bb, sizeof(bb), 0, recv_cb_fails_scope, &x), 0);
	ck_assert_int_eq(rsc_recv(a, ba, sizeof(ba), 0, recv_cb_fails_scope, &x), 0);
	ck_assert_int_eq(write(pa, "x", 1), 1);
	ck_assert_int_eq(rsc_scope_on_close(s, close_cb_status, &x), 0);
	t_run();
	ck_assert_int_eq(x.calls, 2);
	ck_assert_int_eq(x.r[0], 1);
	ck_assert_int_eq(x.r[1], -ECANCELED);
	ck_assert_int_eq(x.r[4], 0);
	ck_assert_int_eq(x.r[5], -EPROTO); /* the exits below saw the body's error */
	ck_assert_int_eq(x.r[6], 1);
	ck_assert_int_eq(x.r[7], -EPROTO);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EPROTO);
	close(pa);
	close(pb);
}
END_TEST

/* An enter hook that closes, or fails, the scope it is pushing into. */
static int enter_closes_own_scope(struct rsc_entry *e, void *arg)
{
	struct reent *x = arg;
	struct io_uring_sqe *sqe;
	int ret;

	x->calls++;
	x->r[0] = x->res ? rsc_scope_fail(rsc_entry_scope(e), -EPROTO, NULL) :
			   rsc_scope_close(rsc_entry_scope(e), close_cb_status, x);
	ret = rsc_entry_get_sqes(e, 1, &sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_openat(sqe, AT_FDCWD, t_path("f0"), O_RDONLY | O_CLOEXEC, 0);
	return 0;
}

static int exit_closes(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct reent *x = arg;
	struct io_uring_sqe *sqe;
	int ret = rsc_entry_get_sqes(e, 1, &sqe);

	(void)p;
	if (ret < 0)
		return ret;
	x->r[1]++;
	io_uring_prep_close(sqe, rsc_entry_fd(e));
	return 0;
}

static const struct rsc_manager self_closer = {
	sizeof(struct rsc_manager), 0, "self-closer", enter_closes_own_scope, exit_closes
};

START_TEST(enter_hook_closing_its_own_scope_leaks_nothing)
{
	struct rsc_scope *s = open_scope(NULL, "s"), *f = open_scope(NULL, "f");
	struct reent x = { 0 }, y = { .res = 1 };
	struct rsc_entry *e;

	t_make_files(1);
	ck_assert_int_eq(rsc_push(s, &self_closer, &x, &e), 0);
	ck_assert_int_eq(rsc_push(f, &self_closer, &y, NULL), 0);
	t_run();
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], 0);
	ck_assert_int_eq(x.r[6], 1); /* closed once */
	ck_assert_int_eq(x.r[7], 0);
	ck_assert_int_le(x.r[1], 1); /* exited only if its open won the cancel */
	ck_assert_int_eq(y.r[0], 0);
	ck_assert_int_eq(rsc_scope_state(f), RSC_SCOPE_UNWOUND);
	ck_assert_int_eq(rsc_scope_close_wait(f, NULL), -EPROTO);
	ck_assert(!t_fd_open_to("/f0"));
}
END_TEST

/* Observability switched from inside callbacks, in the middle of a batch. */
static void io_cb_switches_trace(struct rsc_entry *e, int res, void *buf, void *data)
{
	struct reent *x = data;

	(void)e;
	(void)res;
	(void)buf;
	x->calls++;
	x->r[0] = rsc_loop_trace_file(t_loop, NULL);
	x->r[1] = rsc_loop_trace_file(t_loop, t_path("trace2.json"));
	x->r[2] = rsc_loop_set_metrics(t_loop, 0);
}

static int exit_switches_trace(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct reent *x = arg;

	(void)e;
	(void)p;
	x->r[3] = rsc_loop_trace_file(t_loop, NULL);
	x->r[4] = rsc_loop_set_metrics(t_loop, RSC_METRICS_LATENCY);
	x->r[5] = rsc_loop_trace_file(t_loop, t_path("trace3.json"));
	return 0;
}

START_TEST(observability_switched_from_callbacks_and_hooks)
{
	struct rsc_scope *s = open_scope(NULL, "s");
	struct rsc_entry *a, *b;
	struct reent x = { 0 };
	char buf[4];
	int pa, pb, i;

	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("trace1.json")), 0);
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, RSC_METRICS_LATENCY), 0);
	t_make_files(4);
	t_open_files(s, 0, 4);
	ck_assert_int_eq(rsc_defer(s, exit_switches_trace, &x, NULL), 0);
	t_open_files(s, 0, 4);
	a = t_adopted_pair(s, &pa);
	b = t_adopted_pair(s, &pb);
	ck_assert_int_eq(rsc_recv(a, buf, 1, 0, io_cb_switches_trace, &x), 0);
	ck_assert_int_eq(rsc_recv(b, buf + 1, 1, 0, io_cb_switches_trace, &x), 0);
	ck_assert_int_eq(write(pa, "x", 1), 1);
	ck_assert_int_eq(write(pb, "y", 1), 1);
	while (x.calls < 2)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(x.r[i], 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	for (i = 3; i < 6; i++)
		ck_assert_int_eq(x.r[i], 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
	ck_assert_int_eq(rsc_loop_set_metrics(t_loop, 0), 0);
	close(pa);
	close(pb);
}
END_TEST

/* A trace callback that logs each finding and clears it, as a monitor would. */
static void trace_clears_findings(struct rsc_loop *loop, enum rsc_event ev,
				  const struct rsc_scope *s, const struct rsc_entry *e,
				  int res, void *data)
{
	struct reent *x = data;
	const struct rsc_finding *f;

	(void)s;
	(void)e;
	if (ev != RSC_EV_AUDIT_FINDING)
		return;
	f = rsc_audit_finding(loop, (unsigned)rsc_audit_count(loop) - 1);
	x->calls++;
	x->r[0] = f ? rsc_finding_fd(f) : -1;
	x->r[1] = res;
	x->r[2] = rsc_audit_clear(loop);
}

START_TEST(trace_callback_clears_the_finding_it_reports)
{
	struct rsc_scope *s = open_scope(NULL, "s");
	struct rsc_entry *a;
	struct reent x = { 0 };
	int efd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_loop_set_audit(t_loop, RSC_AUDIT_RELEASED), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, t_path("trace.json")), 0);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, trace_clears_findings, &x), 0);
	ck_assert_int_eq(rsc_adopt(s, efd, 0, &a), 0);
	t_run();
	ck_assert_int_eq(close(efd), 0); /* behind the runtime's back */
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -EBADF);
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], efd);
	ck_assert_int_eq(x.r[1], efd);
	ck_assert_int_eq(x.r[2], 0);
	ck_assert_int_eq(rsc_audit_count(t_loop), 0);
	ck_assert_int_eq(rsc_loop_trace_file(t_loop, NULL), 0);
}
END_TEST

static void on_close_fails_sibling(struct rsc_scope *s, int status,
				   const struct rsc_error *err, void *data)
{
	struct reent *x = data;

	(void)s;
	(void)status;
	(void)err;
	x->r[0] = rsc_scope_fail(x->other, -EPROTO, "sibling");
}

static void on_close_status(struct rsc_scope *s, int status, const struct rsc_error *err,
			    void *data)
{
	struct reent *x = data;

	(void)s;
	(void)err;
	x->calls++;
	x->res = status;
}

/* A child's on-close, inside its parent's unwind, fails a sibling not reached yet. */
START_TEST(on_close_fails_a_sibling_the_parents_unwind_has_not_reached)
{
	struct rsc_scope *p = open_scope(NULL, "p"), *b = open_scope(p, "b"),
			 *a = open_scope(p, "a");
	struct reent x = { .other = b }, y = { 0 };
	struct rsc_error *err = NULL;
	int fb = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_eq(rsc_adopt(b, fb, 0, NULL), 0);
	ck_assert_int_eq(rsc_scope_on_close(a, on_close_fails_sibling, &x), 0);
	ck_assert_int_eq(rsc_scope_on_close(b, on_close_status, &y), 0);
	/* Its result reaches the parent, as any child's failure does. */
	ck_assert_int_eq(rsc_scope_close_wait(p, &err), -EPROTO);
	ck_assert_int_eq(x.r[0], 0);
	ck_assert_int_eq(y.calls, 1);
	ck_assert_int_eq(y.res, -EPROTO);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "sibling");
	rsc_error_free(err);
	ck_assert(!fd_open(fb));
}
END_TEST

/* ------------------------------------------- a hook whose SQEs are reserved */

/* A defer fn that prepares its NOP, then sets a deadline while the SQ must be flushed. */
static int defer_sets_deadline(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct reent *x = arg;
	struct io_uring_sqe *sqe;

	(void)p;
	x->calls++;
	x->r[0] = rsc_entry_get_sqes(e, 1, &sqe);
	if (x->r[0] < 0)
		return x->r[0];
	io_uring_prep_nop(sqe);
	ck_assert_int_eq(rsc_fault_set(t_loop, "sq_full:1:EBUSY"), 0);
	x->r[1] = rsc_scope_set_deadline(x->other, 60000, 0);
	ck_assert_int_eq(rsc_fault_set(t_loop, "sq_full:1:EBUSY"), 0);
	x->r[2] = rsc_scope_close_graceful(x->other, 60000, NULL, NULL);
	ck_assert_int_eq(rsc_fault_set(t_loop, NULL), 0);
	return 0;
}

START_TEST(hook_with_sqes_reserved_never_flushes_them_unfinished)
{
	struct rsc_scope *s = open_scope(NULL, "s"), *o = open_scope(NULL, "o");
	struct rsc_entry *d;
	struct reent x = { .other = o };

	ck_assert_int_eq(rsc_defer(s, defer_sets_deadline, &x, &d), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], 0);
	/* No room without sending the hook's SQE before it is complete: refused. */
	ck_assert_int_eq(x.r[1], -EBUSY);
	ck_assert_int_eq(x.r[2], -EBUSY);
	ck_assert_int_eq(rsc_scope_state(o), RSC_SCOPE_OPEN);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED), 1);
}
END_TEST

/* A defer fn (an exit hook) that fails and times its own scope and two others. */
static int defer_fails_and_times(struct rsc_entry *e, const struct rsc_error *p, void *arg)
{
	struct reent *x = arg;

	(void)p;
	x->calls++;
	x->r[0] = rsc_scope_fail(rsc_entry_scope(e), -EPIPE, "own");
	x->r[1] = rsc_scope_set_deadline(rsc_entry_scope(e), 1, 0);
	x->r[2] = rsc_scope_fail(x->other, -EPROTO, "from an exit");
	x->r[3] = rsc_scope_set_deadline(x->self, 1, 0);
	return 0;
}

/* rsc_scope_fail(3), rsc_scope_set_deadline(3) from inside an exit: the
 * unwinding scope refuses (EALREADY, ESHUTDOWN); other scopes take them. */
START_TEST(exit_hook_fails_and_times_other_scopes)
{
	struct rsc_scope *s = open_scope(NULL, "s"), *o = open_scope(NULL, "o"),
			 *d = open_scope(NULL, "d");
	struct reent x = { .other = o, .self = d };
	struct rsc_error *err = NULL;

	ck_assert_int_eq(rsc_defer(s, defer_fails_and_times, &x, NULL), 0);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert_int_eq(x.calls, 1);
	ck_assert_int_eq(x.r[0], -EALREADY);
	ck_assert_int_eq(x.r[1], -ESHUTDOWN);
	ck_assert_int_eq(x.r[2], 0);
	ck_assert_int_eq(x.r[3], 0);
	ck_assert_int_eq(rsc_scope_close_wait(o, &err), -EPROTO);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(rsc_error_op(err), "from an exit");
	rsc_error_free(err);
	err = NULL;
	/* The deadline passes without any close of ours: the scope unwinds by itself. */
	while (rsc_scope_state(d) == RSC_SCOPE_OPEN)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_DEADLINES), 1);
	ck_assert_int_eq(rsc_scope_close_wait(d, &err), -ETIMEDOUT);
	rsc_error_free(err);
}
END_TEST

/* ------------------------------------------------------ the trace callback */

struct trace_act {
	struct rsc_entry *target;
	struct rsc_scope *to;
	enum rsc_event on;
	int calls, r[8];
	char buf[4];
};

static void io_nop(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)res;
	(void)buf;
	(void)data;
}

static void trace_tries_everything(struct rsc_loop *loop, enum rsc_event ev,
				   const struct rsc_scope *s, const struct rsc_entry *e,
				   int res, void *data)
{
	struct trace_act *t = data;
	struct rsc_entry *tmp;

	(void)s;
	(void)res;
	if (ev != t->on || (t->target && e != t->target) || t->calls++)
		return;
	t->r[0] = rsc_entry_detach(t->target);
	t->r[1] = rsc_entry_move(t->target, t->to);
	t->r[2] = rsc_entry_release(t->target, NULL, NULL);
	t->r[3] = rsc_open(t->to, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &tmp);
	t->r[4] = rsc_read(t->target, t->buf, 1, 0, io_nop, NULL);
	t->r[5] = rsc_scope_move(t->to, NULL);
	t->r[6] = rsc_loop_run(loop, RSC_RUN_NOWAIT);
	/* A request is only queued: it stays allowed. */
	t->r[7] = rsc_scope_close(t->to, NULL, NULL);
}

START_TEST(trace_callback_cannot_change_the_entry_it_reports)
{
	struct rsc_scope *s = open_scope(NULL, "s"), *o = open_scope(NULL, "o");
	struct rsc_entry *e;
	struct trace_act t = { .on = RSC_EV_ENTERED, .to = o };
	int i;

	t_make_files(1);
	ck_assert_int_eq(rsc_open(s, AT_FDCWD, t_path("f0"), O_RDONLY, 0, 0, &e), 0);
	t.target = e;
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, trace_tries_everything, &t), 0);
	t_run();
	ck_assert_int_eq(t.calls, 1);
	for (i = 0; i < 7; i++)
		ck_assert_msg(t.r[i] == -EDEADLK, "call %d: %s", i, rsc_err_name(t.r[i]));
	ck_assert_int_eq(t.r[7], 0);
	ck_assert_int_eq(rsc_scope_state(o), -ESTALE);
	ck_assert_int_eq(rsc_entry_state(e), RSC_ENTERED);
	ck_assert_ptr_eq(rsc_entry_scope(e), s);
	ck_assert(t_fd_open_to("/f0"));
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), 0);
	ck_assert(!t_fd_open_to("/f0"));
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_ACQUIRED), 1);
	ck_assert_int_eq(rsc_loop_counter(t_loop, RSC_CTR_RELEASED), 1);
}
END_TEST

/* ------------------------------------------- the socket a connect builds on */

/* The trace hands out every entry's handle, a connect's socket entry too. */
static void trace_keeps_socket(struct rsc_loop *loop, enum rsc_event ev,
			       const struct rsc_scope *s, const struct rsc_entry *e,
			       int res, void *data)
{
	(void)loop;
	(void)s;
	(void)res;
	if (ev == RSC_EV_ENTERED && !strcmp(rsc_entry_name(e), "socket"))
		*(struct rsc_entry **)data = (struct rsc_entry *)e;
}


/* rsc_entry_detach(3): an entry an acquire in flight builds on stays (-EBUSY). */
START_TEST(socket_a_connect_in_flight_builds_on_stays_its)
{
	struct rsc_scope *s = open_scope(NULL, "s"), *o = open_scope(NULL, "o");
	struct rsc_entry *sock = NULL, *c;
	struct sockaddr_un sun;
	int lfd, fill[64], nfill, ret[3];

	lfd = t_full_unix_listener(&sun, fill, &nfill);
	ck_assert_int_eq(rsc_loop_set_trace(t_loop, trace_keeps_socket, &sock), 0);
	ck_assert_int_eq(rsc_connect(s, (struct sockaddr *)&sun, sizeof(sun), 300, 0, &c), 0);
	while (!sock)
		ck_assert_int_ge(rsc_loop_run(t_loop, RSC_RUN_ONCE), 0);
	ck_assert_int_eq(rsc_entry_state(c), RSC_ENTERING);
	ret[0] = rsc_entry_detach(sock);
	ret[1] = rsc_entry_move(sock, o);
	ret[2] = rsc_entry_release(sock, NULL, NULL);
	/* Its close would pull the descriptor from under the connect: refused, all three. */
	ck_assert_int_eq(ret[0], -EBUSY);
	ck_assert_int_eq(ret[1], -EBUSY);
	ck_assert_int_eq(ret[2], -EBUSY);
	ck_assert_int_eq(rsc_entry_wait(c), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(s, NULL), -ETIMEDOUT);
	ck_assert_int_eq(rsc_scope_close_wait(o, NULL), 0);
	t_full_unix_listener_close(lfd, fill, nfill);
}
END_TEST

/* Sockets through the ring, multishot receives, MSG_RING, a direct table: Linux 6.0. */
static bool kernel_has_6_0(void)
{
	struct rsc_loop *probe;

	if (!t_kernel_has(IORING_OP_SEND_ZC) || rsc_loop_new(&probe, 8, RSC_LOOP_DIRECT) < 0)
		return false;
	return rsc_loop_close(probe) == 0;
}

Suite *make_reentry_suite(void)
{
	Suite *s = suite_create("reentry");
	TCase *tc = tcase_create("reentry");
	bool faults = rsc_fault_set(t_probe_loop(), "") == 0, modern = kernel_has_6_0();

	t_add_fixture(tc);
	tcase_add_test(tc, io_callback_detaches_its_own_entry);
	tcase_add_test(tc, on_close_of_a_failed_scope_closes_it_once);
	tcase_add_test(tc, release_callback_releases_a_sibling_and_closes_its_scope);
	tcase_add_test(tc, timer_callback_releases_its_own_timer);
	tcase_add_test(tc, release_of_an_adopted_entry_before_the_loop_turns_traces_it_entered_first);
	tcase_add_test(tc, entry_wait_for_an_entry_its_on_enter_detaches);
	tcase_add_test(tc, entry_wait_while_a_callback_closes_its_scope);
	tcase_add_test(tc, timer_whose_scope_closes_before_it_starts_is_cancelled);
	tcase_add_test(tc, io_callback_fails_its_scope_and_its_siblings_io_is_cancelled);
	tcase_add_test(tc, enter_hook_closing_its_own_scope_leaks_nothing);
	tcase_add_test(tc, observability_switched_from_callbacks_and_hooks);
	tcase_add_test(tc, trace_callback_clears_the_finding_it_reports);
	tcase_add_test(tc, on_close_fails_a_sibling_the_parents_unwind_has_not_reached);
	tcase_add_test(tc, trace_callback_cannot_change_the_entry_it_reports);
	if (modern) {
		t_add_socket_test(tc, on_enter_callback_detaches_its_own_entry);
		t_add_test_if(tc, multishot_receive_final_callback_detaches_its_entry,
			      t_has_recv_multishot(), "IORING_RECV_MULTISHOT (Linux 6.0)");
		t_add_socket_test(tc, accept_callback_moves_its_connection_out_and_closes_the_server);
		t_add_test_if(tc, arrival_callback_stops_its_inbox_and_closes_the_arrival,
			      t_has_hand_over(), "IORING_MSG_SEND_FD (Linux 6.0)");
		t_add_socket_test(tc, chain_send_callback_releases_its_connect_and_closes_the_scope);
		t_add_socket_test(tc, every_kind_of_callback_refuses_to_block);
		t_add_test_if(tc, multishot_accept_callback_drains_its_server,
			      t_has_accept_multishot(), "IORING_ACCEPT_MULTISHOT (Linux 5.19)");
		t_add_socket_test(tc, socket_a_connect_in_flight_builds_on_stays_its);
	} else {
		printf("SKIP 7 reentry tests with sockets, multishot receives, hand-overs and chains: kernel lacks Linux 6.0's io_uring\n");
	}
	if (modern && t_kernel_has(54 /* IORING_OP_FIXED_FD_INSTALL, Linux 6.8 */))
		tcase_add_test(tc, install_callback_detaches_its_entry);
	else
		printf("SKIP install_callback_detaches_its_entry: kernel lacks IORING_OP_FIXED_FD_INSTALL (Linux 6.8)\n");
	if (faults && modern) {
		t_add_socket_test(tc, accept_error_callback_detaches_its_listener);
		t_add_socket_test(tc, multishot_accept_shortage_callback_detaches_its_listener);
	} else {
		printf("SKIP accept_error_callback_detaches_its_listener, multishot_accept_shortage_callback_detaches_its_listener: no fault injection in this build, or kernel before 6.0\n");
	}
	if (faults)
		tcase_add_test(tc, hook_with_sqes_reserved_never_flushes_them_unfinished);
	else
		printf("SKIP hook_with_sqes_reserved_never_flushes_them_unfinished: this build has no fault injection\n");
	tcase_add_test(tc, exit_hook_fails_and_times_other_scopes);
	suite_add_tcase(s, tc);
	return s;
}
