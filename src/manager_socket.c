/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

struct socket_args {
	int domain;
	int type;
	int protocol;
};

static void socket_prep(struct io_uring_sqe *sqe, const struct rsc__entry *e, const void *args)
{
	const struct socket_args *a = args;

	(void)e;
	io_uring_prep_socket(sqe, a->domain, a->type, a->protocol, 0);
}

static const struct rsc_manager socket_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "socket",
	.enter = rsc__enter_never, /* rsc__push_one prepares its SQE: no hook runs */
	.exit = rsc__fd_exit,
};

static const char *domain_name(int domain)
{
	switch (domain) {
	case AF_UNIX:
		return "AF_UNIX";
	case AF_INET:
		return "AF_INET";
	case AF_INET6:
		return "AF_INET6";
	case AF_NETLINK:
		return "AF_NETLINK";
	case AF_PACKET:
		return "AF_PACKET";
	default:
		return "AF_?";
	}
}

static const char *type_name(int type)
{
	switch (type & 0xf) {
	case SOCK_STREAM:
		return "SOCK_STREAM";
	case SOCK_DGRAM:
		return "SOCK_DGRAM";
	case SOCK_SEQPACKET:
		return "SOCK_SEQPACKET";
	case SOCK_RAW:
		return "SOCK_RAW";
	default:
		return "SOCK_?";
	}
}

void rsc__socket_detail(char detail[40], int domain, int type)
{
	/* Not snprintf: a server's every outgoing connection makes one. */
	strcpy(detail, domain_name(domain));
	strcat(detail, "/");
	strcat(detail, type_name(type));
}

int rsc_socket(struct rsc_scope *h, int domain, int type, int protocol,
	       unsigned flags, struct rsc_entry **entryp)
{
	struct rsc__scope *s;
	struct rsc__entry *e;
	int ret;

	if (entryp)
		*entryp = NULL;
	ret = rsc__scope_check_push(h, &s, "rsc_socket");
	if (ret < 0)
		return ret;
	/* The caller's address: where a leaked descriptor was acquired. */
	ret = rsc__socket_push(s, domain, type, protocol, flags,
			       __builtin_return_address(0), &e);
	if (ret == 0 && entryp)
		*entryp = rsc__eh(e);
	return ret;
}

/* @s was checked by the caller (rsc__scope_check_push). */
int rsc__socket_push(struct rsc__scope *s, int domain, int type, int protocol,
		     unsigned flags, const void *site, struct rsc__entry **entryp)
{
	struct socket_args a;
	char detail[40];
	int ret;

	*entryp = NULL;
	RSC__CHECK_ARG(!(flags & ~(RSC_NO_CLOEXEC | RSC_SHUTDOWN_ON_RELEASE | RSC_DIRECT)),
		       "rsc_socket: unknown flags 0x%x (RSC_FSYNC_ON_RELEASE is for files)",
		       flags);
	RSC__CHECK_ARG(domain >= 0 && domain < AF_MAX, "rsc_socket: invalid domain %d", domain);
	RSC__CHECK_ARG(!(type & ~(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC)) && (type & 0xf),
		       "rsc_socket: invalid type 0x%x", (unsigned)type);
	RSC__CHECK_ARG(protocol >= 0, "rsc_socket: invalid protocol %d", protocol);
	RSC__CHECK_ARG(!((flags & RSC_NO_CLOEXEC) && (type & SOCK_CLOEXEC)),
		       "rsc_socket: RSC_NO_CLOEXEC contradicts SOCK_CLOEXEC");
	ret = rsc__need_opcode(s->loop, IORING_OP_SOCKET, "rsc_socket (Linux 5.19+)");
	if (ret < 0)
		return ret;
	if (flags & RSC_DIRECT) /* into a slot (manager_direct.c) */
		return rsc__direct_socket(s, domain, type, protocol, flags, site, entryp);
	a.domain = domain;
	a.type = type | ((flags & RSC_NO_CLOEXEC) ? 0 : SOCK_CLOEXEC);
	a.protocol = protocol;
	rsc__socket_detail(detail, domain, type);
	ret = rsc__need_shutdown(s->loop, flags);
	if (ret < 0)
		return ret;
	return rsc__push_one(s, &socket_manager, socket_prep, &a, IORING_OP_SOCKET,
			     RSC__CFG_FD | RSC__CFG_BUILTIN | RSC__CFG_OWN_HOOKS |
			     ((flags & RSC_SHUTDOWN_ON_RELEASE) ? RSC__CFG_SHUTDOWN : 0), detail,
			     strlen(detail), site, entryp);
}
