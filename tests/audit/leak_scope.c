/* SPDX-License-Identifier: MIT */
/*
 * A ringscope program that exits with a scope still open: "leak_scope PATH".
 * Its descriptor was made by IORING_OP_OPENAT, which the preload never sees;
 * the report must name the scope and the acquire site the library recorded.
 * Prints "fd N" for the test to compare.
 */
#include <fcntl.h>
#include <stdio.h>

#include "ringscope.h"

int acquire_config(struct rsc_scope *s, const char *path, struct rsc_entry **e);

int acquire_config(struct rsc_scope *s, const char *path, struct rsc_entry **e)
{
	return rsc_open(s, AT_FDCWD, path, O_RDONLY, 0, 0, e);
}

int main(int argc, char **argv)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *e;
	int fd;

	if (argc < 2 || rsc_loop_new(&loop, 8, 0) < 0 ||
	    rsc_scope_open(loop, NULL, "config", &s) < 0 ||
	    acquire_config(s, argv[1], &e) < 0)
		return 2;
	fd = rsc_entry_wait(e);
	if (fd < 0)
		return 3;
	printf("fd %d\n", fd);
	return 0; /* the scope and the loop are never closed: both leak */
}
