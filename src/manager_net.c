/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/un.h>

#include "internal.h"

/*
 * Compound acquires (DESIGN.md semantic 2): a socket entry, then an entry
 * that builds on its descriptor, so a failed or timed-out connect, or a
 * failed bind, still closes the socket through the unwind. Once the second
 * entry has entered it takes the socket over (entry.c take_over_dep): the
 * entry the caller holds stands for the connection, and its release is the
 * socket's close.
 */
struct net_args {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int backlog;
	struct __kernel_timespec deadline; /* read by the kernel at submit */
	bool has_deadline;
	bool reuseport;
	bool nodelay;
	bool defer_accept;
};
_Static_assert(sizeof(struct net_args) <= RSC__ROOM_SIZE, "struct net_args outgrew an entry's room (rsc__room_get)");

static int connect_enter(struct rsc_entry *h, void *arg)
{
	struct rsc__entry *e = arg; /* RSC__CFG_OWN_HOOKS */
	struct net_args *a = e->arg;
	struct io_uring_sqe *sqe[2];
	int ret;

	(void)h;
	ret = rsc__hook_sqes(e, a->has_deadline ? 2 : 1, sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_connect(sqe[0], e->dep->value, (struct sockaddr *)&a->addr,
			      a->addrlen);
	if (a->has_deadline) {
		/* Linked, in the same submit: the deadline covers this connect only. */
		sqe[0]->flags |= IOSQE_IO_LINK;
		io_uring_prep_link_timeout(sqe[1], &a->deadline, 0);
	}
	return 0;
}

/*
 * Configuration, not acquisition: the socket itself came through the ring.
 * SO_REUSEADDR is a syscall (liburing 2.3 has no setsockopt op); bind and
 * listen are IORING_OP_BIND linked to IORING_OP_LISTEN where the kernel has
 * them (Linux 6.11), else syscalls too.
 */
static int listen_enter(struct rsc_entry *h, void *arg)
{
	struct rsc__entry *e = arg; /* RSC__CFG_OWN_HOOKS */
	struct net_args *a = e->arg;
	struct rsc_loop *loop;
	struct io_uring_sqe *sqe[2];
	int fd, one = 1, ret;

	(void)h;
	loop = e->scope->loop;
	fd = e->dep->value;

	if (a->addr.ss_family != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return rsc__entry_complete_with(e, -errno, "setsockopt");
	/* One listener per loop on one port: the kernel spreads connections. */
	if (a->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		return rsc__entry_complete_with(e, -errno, "setsockopt");
	/* Set before listen: every connection it accepts inherits it. */
	if (a->nodelay && a->addr.ss_family != AF_UNIX &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return rsc__entry_complete_with(e, -errno, "setsockopt");
	/* A connection wakes nobody until its request is there: no receive
	 * armed on an empty socket. One second, as nginx's "deferred": a client
	 * that sends nothing is accepted after the SYN-ACK's first retransmit. */
	if (a->defer_accept && a->addr.ss_family != AF_UNIX &&
	    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof(one)) < 0)
		return rsc__entry_complete_with(e, -errno, "setsockopt");
	if (rsc__opcode_supported(loop, RSC__OP_BIND) && loop->probe &&
	    rsc__opcode_supported(loop, RSC__OP_LISTEN) &&
	    loop->probe->last_op >= RSC__OP_LISTEN) {
		ret = rsc__hook_sqes(e, 2, sqe);
		if (ret < 0)
			return ret;
		/* By hand, as the kernel reads them (io_uring/net.c io_bind_prep). */
		sqe[0]->opcode = RSC__OP_BIND;
		sqe[0]->fd = fd;
		sqe[0]->addr = (unsigned long)&a->addr;
		sqe[0]->addr2 = a->addrlen;
		sqe[0]->flags = IOSQE_IO_LINK;
		sqe[1]->opcode = RSC__OP_LISTEN;
		sqe[1]->fd = fd;
		sqe[1]->len = (unsigned)a->backlog;
		e->config |= RSC__CFG_ALL_OR_NONE;
		return 0;
	}
	if (bind(fd, (struct sockaddr *)&a->addr, a->addrlen) < 0)
		return rsc__entry_complete_with(e, -errno, "bind");
	if (listen(fd, a->backlog) < 0)
		return rsc__entry_complete_with(e, -errno, "listen");
	return rsc__entry_complete_with(e, 0, NULL);
}

/* Entered, they own the socket: their release is its close. */
static const struct rsc_manager connect_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "connect",
	.enter = connect_enter,
	.exit = rsc__fd_exit,
};

static const struct rsc_manager listen_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "listen",
	.enter = listen_enter,
	.exit = rsc__fd_exit,
};

/*
 * Per family, as the kernel reads it (net/ipv4/af_inet.c, net/ipv6/af_inet6.c,
 * net/unix/af_unix.c unix_validate_addr): never a byte beyond @addrlen.
 */
int rsc__check_addr(const struct sockaddr *addr, socklen_t addrlen,
		    bool connecting, const char *fn)
{
	const size_t unix_min = offsetof(struct sockaddr_un, sun_path);

	RSC__CHECK_ARG(addr, "%s: addr is NULL", fn);
	RSC__CHECK_ARG(addrlen >= sizeof(sa_family_t),
		       "%s: addrlen %u is too short to hold an address family", fn,
		       (unsigned)addrlen);
	switch (addr->sa_family) {
	case AF_INET:
		RSC__CHECK_ARG(addrlen >= sizeof(struct sockaddr_in) &&
				       addrlen <= sizeof(struct sockaddr_storage),
			       "%s: addrlen %u for AF_INET (%zu to %zu)", fn,
			       (unsigned)addrlen, sizeof(struct sockaddr_in),
			       sizeof(struct sockaddr_storage));
		return 0;
	case AF_INET6:
		RSC__CHECK_ARG(addrlen >= sizeof(struct sockaddr_in6) &&
				       addrlen <= sizeof(struct sockaddr_storage),
			       "%s: addrlen %u for AF_INET6 (%zu to %zu)", fn,
			       (unsigned)addrlen, sizeof(struct sockaddr_in6),
			       sizeof(struct sockaddr_storage));
		return 0;
	case AF_UNIX:
		RSC__CHECK_ARG(addrlen <= sizeof(struct sockaddr_un),
			       "%s: addrlen %u for AF_UNIX (%zu to %zu)", fn,
			       (unsigned)addrlen, unix_min, sizeof(struct sockaddr_un));
		/* Only the family: bind autobinds an abstract name; connect has no peer. */
		RSC__CHECK_ARG(!connecting || addrlen > unix_min,
			       "%s: an AF_UNIX address of addrlen %u is unnamed: nothing to connect to",
			       fn, (unsigned)addrlen);
		return 0;
	default:
		rsc__set_last_error("%s: address family %d (AF_INET, AF_INET6 or AF_UNIX)",
				    fn, addr->sa_family);
		return -EINVAL;
	}
}

/* @n bytes of @s after the @used of @buf (@len bytes), if all of them fit; NUL-terminated. */
static bool put_bytes(char *buf, size_t len, size_t *used, const char *s, size_t n)
{
	if (*used + n >= len)
		return false;
	memcpy(buf + *used, s, n);
	*used += n;
	buf[*used] = '\0';
	return true;
}

/* @s, cut to fit (as snprintf would). */
static void put_cut(char *buf, size_t len, size_t *used, const char *s)
{
	size_t n = strlen(s);

	if (*used + 1 >= len)
		return;
	if (*used + n >= len)
		n = len - 1 - *used;
	put_bytes(buf, len, used, s, n);
}

/*
 * An address's bytes as they are, as a file's path is kept: every output
 * escapes them once (rsc_error_format(3)). A NUL, which a C string cannot
 * hold (an abstract name's), is shown as '@', as ss(8) does; cut to fit. No
 * snprintf: a connect to a Unix socket names it per connection.
 */
static void put_raw_bytes(char *buf, size_t len, const unsigned char *p, size_t n)
{
	size_t used = 0, i;

	buf[0] = '\0';
	for (i = 0; i < n && used + 1 < len; i++)
		put_bytes(buf, len, &used, p[i] ? (const char *)p + i : "@", 1);
}

/* "@host:@port" or "[@host]:@port", cut to fit. */
static void put_host_port(char *buf, size_t len, const char *host, unsigned port, bool brackets)
{
	char digits[32];
	size_t used = 0;

	buf[0] = '\0';
	rsc__detail_num(digits, "", port, "");
	put_cut(buf, len, &used, brackets ? "[" : "");
	put_cut(buf, len, &used, host);
	put_cut(buf, len, &used, brackets ? "]:" : ":");
	put_cut(buf, len, &used, digits);
}

/*
 * "127.0.0.1:80", "[::1]:80", the socket path, "@name" for an abstract
 * name or "(unnamed)", for errors, the audit and a connection's detail (one
 * per connect: no snprintf); reads @addrlen bytes at most.
 */
void rsc__describe_addr(const struct sockaddr *addr, socklen_t addrlen,
			char *buf, size_t len)
{
	char host[64] = "?";

	if (addr->sa_family == AF_UNIX) {
		const unsigned char *path =
			(const unsigned char *)((const struct sockaddr_un *)addr)->sun_path;
		size_t n = addrlen - offsetof(struct sockaddr_un, sun_path);

		if (n == 0) {
			size_t used = 0;

			buf[0] = '\0';
			put_cut(buf, len, &used, "(unnamed)");
		} else if (path[0] == '\0') {
			/* Abstract (unix(7)): every byte up to addrlen is the name, NULs too. */
			buf[0] = '@';
			put_raw_bytes(buf + 1, len - 1, path + 1, n - 1);
		} else {
			/* A path need not be NUL-terminated within addrlen (unix(7)). */
			const unsigned char *nul = memchr(path, '\0', n);

			put_raw_bytes(buf, len, path, nul ? (size_t)(nul - path) : n);
		}
	} else if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)addr;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		put_host_port(buf, len, host, ntohs(in->sin_port), false);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)addr;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		put_host_port(buf, len, host, ntohs(in6->sin6_port), true);
	}
}

static int push_pair(struct rsc__scope *s, const struct sockaddr *addr,
		     socklen_t addrlen, unsigned flags, struct net_args *a,
		     const struct rsc_manager *second, const void *site,
		     struct rsc_entry **entryp)
{
	struct rsc__entry *sock = NULL, *e;
	char detail[4 * sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	int ret;

	memcpy(&a->addr, addr, addrlen);
	a->addrlen = addrlen;
	rsc__describe_addr(addr, addrlen, detail, sizeof(detail));
	/* Both entries first: without memory for the second, no socket is made. */
	e = rsc__entry_make(s, second, RSC__CFG_TAKES_DEP | RSC__CFG_OWN_HOOKS, detail, site);
	if (!e) {
		rsc__room_put(s->loop, a);
		return -ENOMEM;
	}
	ret = rsc__socket_push(s, addr->sa_family, SOCK_STREAM, 0, flags, site, &sock);
	if (ret < 0) {
		rsc__entry_put(s->loop, e);
		rsc__room_put(s->loop, a);
		return ret;
	}
	e->config |= RSC__CFG_ROOM; /* a goes back to the pool with it */
	rsc__push_after(sock, e, second == &connect_manager ? IORING_OP_CONNECT : RSC__OP_LISTEN, a);
	if (entryp)
		*entryp = rsc__eh(e);
	return 0;
}

int rsc_connect(struct rsc_scope *h, const struct sockaddr *addr,
		socklen_t addrlen, unsigned timeout_ms, unsigned flags,
		struct rsc_entry **entryp)
{
	struct rsc__scope *s;
	struct net_args *a;
	int ret;

	if (entryp)
		*entryp = NULL;
	ret = rsc__scope_check_push(h, &s, "rsc_connect");
	if (ret < 0)
		return ret;
	ret = rsc__check_addr(addr, addrlen, true, "rsc_connect");
	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(!(flags & ~(RSC_NO_CLOEXEC | RSC_SHUTDOWN_ON_RELEASE | RSC_DIRECT)),
		       "rsc_connect: unknown flags 0x%x", flags);
	ret = rsc__need_opcode(s->loop, IORING_OP_CONNECT, "rsc_connect");
	if (ret < 0)
		return ret;
	if (timeout_ms) {
		ret = rsc__need_opcode(s->loop, IORING_OP_LINK_TIMEOUT, "a connect deadline");
		if (ret < 0)
			return ret;
	}
	if (flags & RSC_DIRECT) {
		/* Socket into a slot + connect (+ deadline): one chain, one submit (chain.c). */
		ret = rsc__need_shutdown(s->loop, flags);
		if (ret < 0)
			return ret;
		return rsc__direct_connect(s, addr, addrlen, timeout_ms, flags,
					   __builtin_return_address(0), entryp);
	}
	a = rsc__room_get(s->loop, sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (timeout_ms) {
		a->has_deadline = true;
		a->deadline.tv_sec = timeout_ms / 1000;
		a->deadline.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
	}
	return push_pair(s, addr, addrlen, flags, a, &connect_manager,
			 __builtin_return_address(0), entryp);
}

int rsc_listen(struct rsc_scope *h, const struct sockaddr *addr,
	       socklen_t addrlen, int backlog, unsigned flags,
	       struct rsc_entry **entryp)
{
	struct rsc__scope *s;
	struct net_args *a;
	int ret;

	if (entryp)
		*entryp = NULL;
	ret = rsc__scope_check_push(h, &s, "rsc_listen");
	if (ret < 0)
		return ret;
	ret = rsc__check_addr(addr, addrlen, false, "rsc_listen");
	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(!(flags & ~(RSC_NO_CLOEXEC | RSC_SHUTDOWN_ON_RELEASE | RSC_REUSEPORT |
				   RSC_NODELAY | RSC_DEFER_ACCEPT)),
		       "rsc_listen: unknown flags 0x%x", flags);
	RSC__CHECK_ARG(backlog >= 0, "rsc_listen: backlog %d", backlog);
	a = rsc__room_get(s->loop, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->backlog = backlog;
	a->reuseport = flags & RSC_REUSEPORT;
	a->nodelay = flags & RSC_NODELAY;
	a->defer_accept = flags & RSC_DEFER_ACCEPT;
	/* The listener's own, not the socket's. */
	flags &= ~(RSC_REUSEPORT | RSC_NODELAY | RSC_DEFER_ACCEPT);
	return push_pair(s, addr, addrlen, flags, a, &listen_manager,
			 __builtin_return_address(0), entryp);
}

/* getsockname(2) or getpeername(2) on an entry's descriptor, in the states
 * in which rsc_entry_fd() gives it. */
static int entry_name(const struct rsc_entry *h, struct sockaddr *addr, socklen_t *addrlen,
		      bool peer, const char *fn)
{
	struct rsc__entry *e;
	int fd, ret;

	RSC__ENTRY(e, h, fn);
	/* The arguments first: a bad one is -EINVAL in every state of the entry. */
	RSC__CHECK_ARG(addr && addrlen, "%s: addr or addrlen is NULL", fn);
	fd = rsc__entry_fd_of(e);
	/* Its file handed over to another loop (-EXDEV), or its slot lost
	 * (-EBADF): it holds nothing, and names nothing, as rsc_entry_slot says. */
	if (fd == -EBADFD && e->fd_kind == RSC__FD_DIRECT && e->value < 0 && e->state == RSC_ENTERED)
		return rsc_entry_slot(h);
	if (fd == -EBADFD && peer && e->peer) {
		/* A slot: the address its accept or connect knew (e->peer). */
		memcpy(addr, &e->peer->addr, *addrlen < e->peer->len ? *addrlen : e->peer->len);
		*addrlen = e->peer->len;
		return 0;
	}
	if (fd == -EBADFD) {
		rsc__set_last_error("%s: entry '%s' holds a direct slot, which no system call can name%s",
				    fn, e->mgr->name, peer ? ", and no address was kept for it" : "");
		return fd;
	}
	if (fd < 0)
		return rsc__entry_fd_said(e); /* -EAGAIN, -EBADF, a failed acquire's */
	/* A defer, timer or inbox entry's value (0) is no descriptor: the number
	 * may be another's socket (stdin under inetd), whose name would be a lie. */
	if (e->config & RSC__CFG_NO_FD) {
		rsc__set_last_error("%s: entry '%s' holds no descriptor", fn, e->mgr->name);
		return -ENOTSOCK;
	}
	/* Exiting, its close gone out: the ledger let the number go, and the
	 * kernel may have given it to someone else already (ledger.c). */
	if ((e->config & RSC__CFG_FD) && (unsigned)fd < RSC__LEDGER_MAX_FD &&
	    rsc__ledger_owner(fd) != e->h) {
		rsc__set_last_error("%s: entry '%s' is being released: its descriptor %d is closed",
				    fn, e->mgr->name, fd);
		return -EBADF;
	}
	ret = peer ? getpeername(fd, addr, addrlen) : getsockname(fd, addr, addrlen);
	if (ret < 0) {
		ret = -errno;
		rsc__set_last_error("%s: %s on descriptor %d: %s", fn,
				    peer ? "getpeername" : "getsockname", fd, rsc_strerror(ret));
		return ret;
	}
	return 0;
}

int rsc_entry_sockname(const struct rsc_entry *h, struct sockaddr *addr, socklen_t *addrlen)
{
	return entry_name(h, addr, addrlen, false, "rsc_entry_sockname");
}

int rsc_entry_peername(const struct rsc_entry *h, struct sockaddr *addr, socklen_t *addrlen)
{
	return entry_name(h, addr, addrlen, true, "rsc_entry_peername");
}
