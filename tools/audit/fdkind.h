/* SPDX-License-Identifier: MIT */
/*
 * Pure helpers shared by source between the tool and the preload library
 * (which must not link libringscope): no allocation, no I/O.
 */
#ifndef RINGSCOPE_AUDIT_FDKIND_H
#define RINGSCOPE_AUDIT_FDKIND_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * "file", "dir", "socket", "pipe", "eventfd", "io_uring", ... from a
 * /proc/PID/fd link and, for a path, the st_mode of what it opens (0 if
 * unknown: then a name under /dev/ is a device).
 */
const char *fdkind_of(const char *target, mode_t mode);

/*
 * The target of a descriptor whose path the kernel cannot name: readlink(2)
 * of /proc/PID/fd/N fails with ENAMETOOLONG when the path is longer than
 * PATH_MAX (a deep directory reached by relative names). Still a path:
 * fdkind_of() judges it by its st_mode.
 */
#define FD_TARGET_TOO_LONG "(path longer than PATH_MAX)"

struct fdinfo_basic {
	unsigned long long flags; /* "flags:" is octal */
	bool have_flags;
	long long pos;		  /* -1 if absent */
	unsigned long long ino;	  /* "ino:" (Linux 5.14+), 0 if absent */
	int user_files;		  /* io_uring "UserFiles:", -1 if absent */
};

/*
 * Parse the text of /proc/PID/fdinfo/N (NUL-terminated). For an io_uring
 * descriptor, @slot_cb is called for each registered file listed under
 * "UserFiles:" ("%5u: path"; kernels before 5.19 print "<none>" for an empty
 * slot and only the basename; contended rings list none at all).
 */
void fdinfo_parse(const char *text, struct fdinfo_basic *out,
		  void (*slot_cb)(void *arg, int slot, const char *path, int len),
		  void *arg);

#endif
