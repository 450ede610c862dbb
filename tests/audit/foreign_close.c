/* SPDX-License-Identifier: MIT */
/*
 * Closes, behind the runtime's back, a descriptor that a live ringscope
 * entry owns: "foreign_close PATH close|dup2". Prints "fd N" first, then
 * "closed" once the foreign close has returned; exits 77 with a SKIP line
 * if the library's ledger cannot name the owner (rsc_audit_describe_fd
 * returns -ENOENT for an entry it holds).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ringscope.h"

int close_behind(int fd);
int clobber(int fd);

int close_behind(int fd)
{
	return close(fd);
}

int clobber(int fd)
{
	return dup2(0, fd);
}

int main(int argc, char **argv)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	struct rsc_entry *e;
	struct rsc_error *err = NULL;
	char label[512];
	int fd, ret;

	if (argc < 3 || rsc_loop_new(&loop, 8, 0) < 0 ||
	    rsc_scope_open(loop, NULL, "copy", &s) < 0 ||
	    rsc_open(s, AT_FDCWD, argv[1], O_RDONLY, 0, 0, &e) < 0)
		return 2;
	fd = rsc_entry_wait(e);
	if (fd < 0)
		return 3;
	ret = rsc_audit_describe_fd(fd, label, sizeof(label));
	if (ret == -ENOENT) {
		printf("SKIP: rsc_audit_describe_fd(%d) = -ENOENT for a descriptor entry 'file' owns: "
		       "the library lacks the ownership ledger\n", fd);
		return 77;
	}
	printf("fd %d\n", fd);
	fflush(stdout);
	ret = strcmp(argv[2], "dup2") == 0 ? clobber(fd) : close_behind(fd);
	printf("closed %d\n", ret);
	fflush(stdout);
	/* The scope's own close then meets a number that is gone or reused. */
	ret = rsc_scope_close_wait(s, &err);
	rsc_error_free(err);
	return rsc_loop_close(loop) < 0 ? 4 : 0;
}
