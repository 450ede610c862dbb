/* SPDX-License-Identifier: MIT */
#ifndef RSC_TEST_TMGR_H
#define RSC_TEST_TMGR_H

#include "helpers.h"

/* A configurable custom manager that records what its hooks saw. */
enum tmgr_enter { TM_ENTER_NOP = 0, TM_ENTER_OPEN, TM_ENTER_SYNC_FAIL };
enum tmgr_exit {
	TM_EXIT_CLOSE = 0,   /* close the opened fd (or a NOP) */
	TM_EXIT_BADF,	     /* close(-1): the CQE fails with -EBADF */
	TM_EXIT_SYNC_FAIL,   /* the hook returns -EIO without an SQE */
	TM_EXIT_SUPPRESS,    /* close, and suppress the pending error */
	TM_EXIT_NONE,	     /* prepare nothing at all */
};

struct tmgr {
	enum tmgr_enter enter;
	enum tmgr_exit exit;
	const char *path;
	int sync_errno;
	int enter_calls, exit_calls;
	int pending_seen;	  /* -errno of the pending error at exit, 0 if none */
	int releases_before_exit; /* RELEASED events recorded when exit ran */
};

extern const struct rsc_manager tmgr_manager;
extern const struct rsc_manager tmgr_no_exit, tmgr_no_enter, tmgr_no_name;

#endif
