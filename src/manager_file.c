/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>

#include "internal.h"

struct open_args {
	int dirfd;
	int oflags;
	mode_t mode;
};

#ifndef O_TMPFILE
#define O_TMPFILE 0
#endif

/* Every open(2) flag the kernel knows; anything else is a caller's mistake. */
#define KNOWN_OFLAGS                                                       \
	(O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND |    \
	 O_NONBLOCK | O_DSYNC | O_SYNC | O_DIRECT | O_LARGEFILE |          \
	 O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_PATH |       \
	 O_TMPFILE | FASYNC)

/* The path lives in the entry: valid until the kernel copies it at submit. */
RSC__HOT static void file_prep(struct io_uring_sqe *sqe, const struct rsc__entry *e, const void *args)
{
	const struct open_args *a = args;

	io_uring_prep_openat(sqe, a->dirfd, e->detail, a->oflags, a->mode);
}

static const struct rsc_manager file_manager = {
	.size = sizeof(struct rsc_manager),
	.name = "file",
	.enter = rsc__enter_never, /* rsc__push_one prepares its SQE: no hook runs */
	.exit = rsc__fd_exit,
};

RSC__HOT int rsc_open(struct rsc_scope *h, int dirfd, const char *path, int oflags,
	     mode_t mode, unsigned flags, struct rsc_entry **entryp)
{
	struct open_args a;
	unsigned config = RSC__CFG_FD | RSC__CFG_OWN_HOOKS;
	struct rsc__scope *s;
	struct rsc__entry *e;
	size_t path_len;
	int ret;

	if (entryp)
		*entryp = NULL;
	ret = rsc__scope_check_push(h, &s, "rsc_open");
	if (ret < 0)
		return ret;
	RSC__CHECK_ARG(path, "rsc_open: path is NULL");
	path_len = strnlen(path, PATH_MAX);
	if (path_len >= PATH_MAX) {
		rsc__set_last_error("rsc_open: path is %d bytes or longer", PATH_MAX);
		return -ENAMETOOLONG;
	}
	RSC__CHECK_ARG(!(flags & ~(RSC_NO_CLOEXEC | RSC_FSYNC_ON_RELEASE | RSC_DIRECT)),
		       "rsc_open: unknown flags 0x%x", flags);
	RSC__CHECK_ARG(!(oflags & ~KNOWN_OFLAGS) && (oflags & O_ACCMODE) != O_ACCMODE,
		       "rsc_open: invalid open flags 0%o", (unsigned)oflags);
	RSC__CHECK_ARG(!(mode & ~07777U), "rsc_open: invalid mode 0%o", (unsigned)mode);
	RSC__CHECK_ARG(!((flags & RSC_NO_CLOEXEC) && (oflags & O_CLOEXEC)),
		       "rsc_open: RSC_NO_CLOEXEC contradicts O_CLOEXEC");
	if (dirfd < 0 && dirfd != AT_FDCWD && path[0] != '/') {
		rsc__set_last_error("rsc_open: dirfd %d is not a descriptor or AT_FDCWD", dirfd);
		return -EBADF;
	}
	ret = rsc__need_opcode(s->loop, IORING_OP_OPENAT, "rsc_open");
	if (ret < 0)
		return ret;
	if (flags & RSC_FSYNC_ON_RELEASE) {
		ret = rsc__need_opcode(s->loop, IORING_OP_FSYNC, "RSC_FSYNC_ON_RELEASE");
		if (ret < 0)
			return ret;
		/* An fsync before a close is a release something may depend on. */
		config |= RSC__CFG_FSYNC | RSC__CFG_ORDERED;
	}
	if (flags & RSC_DIRECT) {
		/* Into a slot of the loop's table (manager_direct.c). */
		ret = rsc__direct_open(s, dirfd, path, oflags, mode, flags,
				       __builtin_return_address(0), &e);
		if (ret == 0 && entryp)
			*entryp = rsc__eh(e);
		return ret;
	}
	a.dirfd = dirfd;
	a.oflags = oflags | ((flags & RSC_NO_CLOEXEC) ? 0 : O_CLOEXEC);
	a.mode = mode;
	/* The caller's address: where a leaked descriptor was acquired. */
	ret = rsc__push_one(s, &file_manager, file_prep, &a, IORING_OP_OPENAT,
			    config | RSC__CFG_BUILTIN, path, path_len, __builtin_return_address(0), &e);
	if (ret == 0 && entryp)
		*entryp = rsc__eh(e);
	return ret;
}
