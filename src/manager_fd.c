/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <sys/socket.h>

#include "internal.h"

/*
 * The release shared by every built-in that owns a descriptor:
 * IORING_OP_CLOSE, after IORING_OP_SHUTDOWN and IORING_OP_FSYNC when asked.
 * Those two run in io-wq, so a close linked behind them would run there
 * too, after the enter that submitted it returned, and the ledger could not
 * tell when the number left us (rsc_adopt(3)). So the close is prepared when
 * they have completed, whatever their result (entry.c's close_next), and
 * runs inside an enter like any plain close. Shutdown, then fsync: hard-linked
 * to each other, so a failed shutdown does not cancel the fsync.
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
	n = rsc__fd_exit_before_close(e);
	ret = rsc__hook_sqes(e, n ? n : 1, sqe);
	if (ret < 0)
		return ret;
	if (n == 0) {
		io_uring_prep_close(sqe[0], fd);
		return 0;
	}
	if (e->config & RSC__CFG_SHUTDOWN) {
		/* A FIN for the peer even if another descriptor keeps the socket. */
		io_uring_prep_shutdown(sqe[i], fd, SHUT_RDWR);
		sqe[i++]->flags |= IOSQE_IO_HARDLINK;
	}
	if (e->config & RSC__CFG_FSYNC)
		io_uring_prep_fsync(sqe[i++], fd, 0);
	e->flags |= RSC__E_CLOSE_NEXT;
	return 0;
}
