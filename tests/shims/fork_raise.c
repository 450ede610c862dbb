/* SPDX-License-Identifier: MIT */
/* A preloaded fork() that raises a signal in the parent the moment fork
 * returns, in one program only: it puts a signal into the window right after
 * the fork deterministically, where a real one lands only by timing.
 * RSC_TEST_FORK_RAISE=<signal number>, RSC_TEST_FORK_RAISE_IN=<the end of the
 * program's name> (under libtool the build tree's binary is lt-NAME). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((visibility("default"))) pid_t fork(void)
{
	pid_t (*real_fork)(void) = (pid_t (*)(void))dlsym(RTLD_NEXT, "fork");
	const char *sig = getenv("RSC_TEST_FORK_RAISE");
	const char *in = getenv("RSC_TEST_FORK_RAISE_IN");
	size_t n = strlen(program_invocation_short_name), m;
	pid_t pid;

	if (!real_fork) {
		errno = ENOSYS;
		return -1;
	}
	pid = real_fork();
	/* Only in the named program: the libtool wrapper and the command it runs share the environment. */
	if (pid > 0 && sig && in && (m = strlen(in)) <= n &&
	    strcmp(program_invocation_short_name + n - m, in) == 0)
		raise(atoi(sig));
	return pid;
}
