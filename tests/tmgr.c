/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>

#include "tmgr.h"

static int tm_enter(struct rsc_entry *e, void *arg)
{
	struct tmgr *m = arg;
	struct io_uring_sqe *sqe;
	int ret;

	m->enter_calls++;
	switch (m->enter) {
	case TM_ENTER_SYNC_FAIL:
		return -m->sync_errno;
	case TM_ENTER_OPEN:
		ret = rsc_entry_get_sqes(e, 1, &sqe);
		if (ret < 0)
			return ret;
		io_uring_prep_openat(sqe, AT_FDCWD, m->path, O_RDONLY | O_CLOEXEC, 0);
		return 0;
	case TM_ENTER_NOP:
	default:
		return 0; /* no SQE: the runtime completes it from the loop */
	}
}

static int tm_exit(struct rsc_entry *e, const struct rsc_error *pending,
		   void *arg)
{
	struct tmgr *m = arg;
	struct io_uring_sqe *sqe;
	int ret, fd = rsc_entry_fd(e);

	m->exit_calls++;
	m->pending_seen = pending ? rsc_error_errno(pending) : 0;
	m->releases_before_exit = t_count_events(RSC_EV_RELEASED);
	switch (m->exit) {
	case TM_EXIT_SYNC_FAIL:
		return -EIO;
	case TM_EXIT_NONE:
		return 0;
	case TM_EXIT_BADF:
		fd = -1;
		/* fall through */
	case TM_EXIT_CLOSE:
	case TM_EXIT_SUPPRESS:
	default:
		ret = rsc_entry_get_sqes(e, 1, &sqe);
		if (ret < 0)
			return ret;
		if (m->enter == TM_ENTER_OPEN || m->exit == TM_EXIT_BADF)
			io_uring_prep_close(sqe, fd);
		else
			io_uring_prep_nop(sqe);
		return m->exit == TM_EXIT_SUPPRESS ? RSC_EXIT_SUPPRESS : 0;
	}
}

const struct rsc_manager tmgr_manager = { sizeof(struct rsc_manager), 0, "tmgr", tm_enter, tm_exit };
const struct rsc_manager tmgr_no_exit = { sizeof(struct rsc_manager), 0, "half", tm_enter, NULL };
const struct rsc_manager tmgr_no_enter = { sizeof(struct rsc_manager), 0, "half", NULL, tm_exit };
const struct rsc_manager tmgr_no_name = { sizeof(struct rsc_manager), 0, NULL, tm_enter, tm_exit };
