/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <sys/socket.h>

#include "internal.h"

/*
 * The release shared by every built-in that owns a descriptor:
 * IORING_OP_CLOSE, with IORING_OP_FSYNC hard-linked in front when asked.
 * HARDLINK, not LINK: a failed fsync must not cancel the close after it
 * (io_uring_enter(2), IOSQE_IO_HARDLINK).
 */
int rsc__fd_exit(struct rsc_entry *h, const struct rsc_error *pending,
		 void *arg)
{
	struct io_uring_sqe *sqe[3];
	struct rsc__entry *e = arg; /* RSC__CFG_OWN_HOOKS */
	int fd = e->value, ret;
	unsigned n, i = 0;

	(void)h;
	(void)pending;
	/* Never close a number that stopped being ours: it is someone else's now. */
	if (!rsc__audit_still_ours(e->scope->loop, e))
		return -EBADF;
	n = 1 + !!(e->config & RSC__CFG_FSYNC) + !!(e->config & RSC__CFG_SHUTDOWN);
	ret = rsc__hook_sqes(e, n, sqe);
	if (ret < 0)
		return ret;
	if (e->config & RSC__CFG_SHUTDOWN) {
		/* A FIN for the peer even if another descriptor keeps the socket. */
		io_uring_prep_shutdown(sqe[i], fd, SHUT_RDWR);
		sqe[i++]->flags |= IOSQE_IO_HARDLINK;
	}
	if (e->config & RSC__CFG_FSYNC) {
		io_uring_prep_fsync(sqe[i], fd, 0);
		sqe[i++]->flags |= IOSQE_IO_HARDLINK;
	}
	io_uring_prep_close(sqe[i], fd);
	return 0;
}
