/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <arpa/inet.h>
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
};

static int connect_enter(struct rsc_entry *h, void *arg)
{
	struct net_args *a = arg;
	struct io_uring_sqe *sqe[2];
	struct rsc__entry *e;
	int ret;

	RSC__ENTRY(e, h, "connect");
	ret = rsc_entry_get_sqes(h, a->has_deadline ? 2 : 1, sqe);
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
	struct net_args *a = arg;
	struct rsc_loop *loop;
	struct io_uring_sqe *sqe[2];
	struct rsc__entry *e;
	int fd, one = 1, ret;

	RSC__ENTRY(e, h, "listen");
	loop = e->scope->loop;
	fd = e->dep->value;

	if (a->addr.ss_family != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return rsc__entry_complete_with(e, -errno, "setsockopt");
	if (rsc__opcode_supported(loop, RSC__OP_BIND) && loop->probe &&
	    rsc__opcode_supported(loop, RSC__OP_LISTEN) &&
	    loop->probe->last_op >= RSC__OP_LISTEN) {
		ret = rsc_entry_get_sqes(h, 2, sqe);
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
		e->flags |= RSC__E_ALL_OR_NONE;
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

static int check_addr(const struct sockaddr *addr, socklen_t addrlen,
		      const char *fn)
{
	RSC__CHECK_ARG(addr, "%s: addr is NULL", fn);
	RSC__CHECK_ARG(addrlen >= sizeof(sa_family_t) &&
			       addrlen <= sizeof(struct sockaddr_storage),
		       "%s: addrlen %u", fn, (unsigned)addrlen);
	RSC__CHECK_ARG(addr->sa_family == AF_INET || addr->sa_family == AF_INET6 ||
			       addr->sa_family == AF_UNIX,
		       "%s: address family %d (AF_INET, AF_INET6 or AF_UNIX)", fn,
		       addr->sa_family);
	return 0;
}

/* "127.0.0.1:80", "[::1]:80" or the socket path, for errors and the audit. */
static void describe_addr(const struct sockaddr *addr, char *buf, size_t len)
{
	char host[64] = "?";

	if (addr->sa_family == AF_UNIX) {
		snprintf(buf, len, "%.*s", (int)sizeof(((struct sockaddr_un *)0)->sun_path),
			 ((const struct sockaddr_un *)addr)->sun_path);
	} else if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)addr;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const void *)addr;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	}
}

static int push_pair(struct rsc__scope *s, const struct sockaddr *addr,
		     socklen_t addrlen, unsigned flags, struct net_args *a,
		     const struct rsc_manager *second, const void *site,
		     struct rsc_entry **entryp)
{
	struct rsc__entry *sock = NULL, *e;
	char detail[160];
	int ret;

	memcpy(&a->addr, addr, addrlen);
	a->addrlen = addrlen;
	describe_addr(addr, detail, sizeof(detail));
	ret = rsc__socket_push(s, addr->sa_family, SOCK_STREAM, 0, flags, site, &sock);
	if (ret < 0) {
		free(a);
		return ret;
	}
	ret = rsc__push_after(sock, second, a, RSC__E_TAKES_DEP, detail, site, &e);
	if (ret < 0)
		(void)rsc__entry_release(sock, NULL, NULL); /* nothing half-made stays */
	else if (entryp)
		*entryp = rsc__eh(e);
	return ret;
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
	ret = check_addr(addr, addrlen, "rsc_connect");
	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(!(flags & ~(RSC_NO_CLOEXEC | RSC_DIRECT)), "rsc_connect: unknown flags 0x%x", flags);
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
		char detail[160];

		describe_addr(addr, detail, sizeof(detail));
		return rsc__direct_connect(s, addr, addrlen, timeout_ms, detail,
					   __builtin_return_address(0), entryp);
	}
	a = calloc(1, sizeof(*a));
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
	ret = check_addr(addr, addrlen, "rsc_listen");
	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(!(flags & ~RSC_NO_CLOEXEC), "rsc_listen: unknown flags 0x%x", flags);
	RSC__CHECK_ARG(backlog >= 0, "rsc_listen: backlog %d", backlog);
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->backlog = backlog;
	return push_pair(s, addr, addrlen, flags, a, &listen_manager,
			 __builtin_return_address(0), entryp);
}
