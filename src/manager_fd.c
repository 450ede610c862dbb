/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>

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
	struct io_uring_sqe *sqe[2];
	struct rsc__entry *e = arg; /* RSC__E_OWN_HOOKS */
	int fd = e->value, ret;

	(void)h;
	(void)pending;
	/* Never close a number that stopped being ours: it is someone else's now. */
	if (!rsc__audit_still_ours(e->scope->loop, e))
		return -EBADF;
	if (e->flags & RSC__E_FSYNC) {
		ret = rsc__hook_sqes(e, 2, sqe);
		if (ret < 0)
			return ret;
		io_uring_prep_fsync(sqe[0], fd, 0);
		sqe[0]->flags |= IOSQE_IO_HARDLINK;
		io_uring_prep_close(sqe[1], fd);
		return 0;
	}
	ret = rsc__hook_sqes(e, 1, sqe);
	if (ret < 0)
		return ret;
	io_uring_prep_close(sqe[0], fd);
	return 0;
}
