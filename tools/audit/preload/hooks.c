/* SPDX-License-Identifier: MIT */
/* The interposed libc functions: each calls the real one, then tells table.c. */
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

#define RA __builtin_return_address(0)

static mode_t mode_arg(int flags, va_list ap)
{
	if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
		return (mode_t)va_arg(ap, int);
	return 0;
}

#define OPEN_HOOK(name, how)                                                   \
	EXPORT int name(const char *path, int flags, ...)                      \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, flags);                                           \
		mode_t m = mode_arg(flags, ap);                                \
		va_end(ap);                                                    \
		int fd = REAL(name)(path, flags, m);                           \
		if (fd >= 0)                                                   \
			created(fd, how, RA);                                                   \
			else                                                   \
				failed(how);                                  \
		return fd;                                                     \
	}
OPEN_HOOK(open, "open")
OPEN_HOOK(open64, "open")

#define OPENAT_HOOK(name, how)                                                 \
	EXPORT int name(int dirfd, const char *path, int flags, ...)           \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, flags);                                           \
		mode_t m = mode_arg(flags, ap);                                \
		va_end(ap);                                                    \
		int fd = REAL(name)(dirfd, path, flags, m);                    \
		if (fd >= 0)                                                   \
			created(fd, how, RA);                                                   \
			else                                                   \
				failed(how);                                  \
		return fd;                                                     \
	}
OPENAT_HOOK(openat, "openat")
OPENAT_HOOK(openat64, "openat")

/* The _FORTIFY_SOURCE entry points (glibc's bits/fcntl2.h). */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
#define FORT_HOOK(name, how)                                                   \
	EXPORT int name(const char *path, int flags)                           \
	{                                                                      \
		int fd = REAL(name)(path, flags);                              \
		if (fd >= 0)                                                   \
			created(fd, how, RA);                                                   \
			else                                                   \
				failed(how);                                  \
		return fd;                                                     \
	}
FORT_HOOK(__open_2, "open")
FORT_HOOK(__open64_2, "open")
#define FORTAT_HOOK(name, how)                                                 \
	EXPORT int name(int dirfd, const char *path, int flags)                \
	{                                                                      \
		int fd = REAL(name)(dirfd, path, flags);                       \
		if (fd >= 0)                                                   \
			created(fd, how, RA);                                                   \
			else                                                   \
				failed(how);                                  \
		return fd;                                                     \
	}
FORTAT_HOOK(__openat_2, "openat")
FORTAT_HOOK(__openat64_2, "openat")

#define CREAT_HOOK(name)                                                       \
	EXPORT int name(const char *path, mode_t m)                            \
	{                                                                      \
		int fd = REAL(name)(path, m);                                  \
		if (fd >= 0)                                                   \
			created(fd, "creat", RA);                                                   \
			else                                                   \
				failed("creat");                              \
		return fd;                                                     \
	}
CREAT_HOOK(creat)
CREAT_HOOK(creat64)

#define FOPEN_HOOK(name)                                                       \
	EXPORT FILE *name(const char *path, const char *m)                     \
	{                                                                      \
		FILE *f = REAL(name)(path, m);                                 \
		if (f)                                                         \
			created(fileno(f), "fopen", RA);                       \
		else                                                           \
			failed("fopen");                                       \
		return f;                                                      \
	}
FOPEN_HOOK(fopen)
FOPEN_HOOK(fopen64)

EXPORT int fclose(FILE *f)
{
	struct rec snap;
	int fd = f ? fileno(f) : -1;
	unsigned seq = 0;
	int ret, err;

	if (!tracking() || fd < 0)
		return REAL(fclose)(f);
	foreign_check(fd, "fclose");
	seq = snap_rec(fd, &snap);
	ret = REAL(fclose)(f);
	err = errno;
	/* An EBADF from fclose is the stream's business, not a close finding. */
	if (ret == 0)
		closing(fd, 0, 0, seq, &snap, RA);
	errno = err;
	return ret;
}

/* A descriptor limit set for this process (@set: a new one given), @ret the call's:
 * the preload's own descriptors move under it if it was lowered (table.c). */
static int limit_set(int ret, int res, pid_t pid, bool set)
{
	if (ret == 0 && set && res == RLIMIT_NOFILE && (pid == 0 || pid == getpid()) && tracking())
		own_fit_limit();
	return ret;
}

EXPORT int setrlimit(__rlimit_resource_t res, const struct rlimit *rl)
{
	return limit_set(REAL(setrlimit)(res, rl), res, 0, true);
}

EXPORT int setrlimit64(__rlimit_resource_t res, const struct rlimit64 *rl)
{
	return limit_set(REAL(setrlimit64)(res, rl), res, 0, true);
}

EXPORT int prlimit(pid_t pid, __rlimit_resource_t res, const struct rlimit *rl, struct rlimit *old)
{
	return limit_set(REAL(prlimit)(pid, res, rl, old), res, pid, rl != NULL);
}

EXPORT int prlimit64(pid_t pid, __rlimit_resource_t res, const struct rlimit64 *rl,
		     struct rlimit64 *old)
{
	return limit_set(REAL(prlimit64)(pid, res, rl, old), res, pid, rl != NULL);
}

EXPORT int socket(int domain, int type, int proto)
{
	int fd = REAL(socket)(domain, type, proto);
	if (fd >= 0)
		created(fd, "socket", RA);
	else
		failed("socket");
	return fd;
}

EXPORT int socketpair(int domain, int type, int proto, int sv[2])
{
	int ret = REAL(socketpair)(domain, type, proto, sv);
	if (ret == 0) {
		created(sv[0], "socketpair", RA);
		created(sv[1], "socketpair", RA);
	} else {
		failed("socketpair");
	}
	return ret;
}

EXPORT int accept(int s, struct sockaddr *addr, socklen_t *len)
{
	int fd = REAL(accept)(s, addr, len);
	if (fd >= 0)
		created(fd, "accept", RA);
	else
		failed("accept");
	return fd;
}

EXPORT int accept4(int s, struct sockaddr *addr, socklen_t *len, int flags)
{
	int fd = REAL(accept4)(s, addr, len, flags);
	if (fd >= 0)
		created(fd, "accept4", RA);
	else
		failed("accept4");
	return fd;
}

EXPORT int pipe(int p[2])
{
	int ret = REAL(pipe)(p);
	if (ret == 0) {
		created(p[0], "pipe", RA);
		created(p[1], "pipe", RA);
	} else {
		failed("pipe");
	}
	return ret;
}

EXPORT int pipe2(int p[2], int flags)
{
	int ret = REAL(pipe2)(p, flags);
	if (ret == 0) {
		created(p[0], "pipe2", RA);
		created(p[1], "pipe2", RA);
	} else {
		failed("pipe2");
	}
	return ret;
}

EXPORT int dup(int old)
{
	int fd = REAL(dup)(old);
	if (fd >= 0)
		created(fd, "dup", RA);
	else
		failed("dup");
	return fd;
}

EXPORT int dup2(int old, int nfd)
{
	int fd;

	if (tracking() && is_own(nfd)) {
		errno = EBADF; /* the preload's own: not the program's to replace */
		return -1;
	}
	if (old != nfd)
		foreign_check(nfd, "dup2");
	fd = REAL(dup2)(old, nfd);
	if (fd >= 0 && old != nfd)
		created(fd, "dup2", RA);
	return fd;
}

EXPORT int dup3(int old, int nfd, int flags)
{
	int fd;

	if (tracking() && is_own(nfd)) {
		errno = EBADF;
		return -1;
	}
	if (old != nfd)
		foreign_check(nfd, "dup3");
	fd = REAL(dup3)(old, nfd, flags);
	if (fd >= 0)
		created(fd, "dup3", RA);
	else
		failed("dup3");
	return fd;
}

int fcntl64(int fd, int cmd, ...);
#define FCNTL_HOOK(name)                                                       \
	EXPORT int name(int fd, int cmd, ...)                                  \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, cmd);                                             \
		unsigned long arg = va_arg(ap, unsigned long);                 \
		va_end(ap);                                                    \
		int ret = REAL(name)(fd, cmd, arg);                            \
		if (ret >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))    \
			created(ret, "fcntl(F_DUPFD)", RA);                    \
		return ret;                                                    \
	}
FCNTL_HOOK(fcntl)
FCNTL_HOOK(fcntl64)

#define SIMPLE_HOOK(name, how, proto, args)                                    \
	EXPORT int name proto                                                  \
	{                                                                      \
		int fd = REAL(name) args;                                      \
		if (fd >= 0)                                                   \
			created(fd, how, RA);                                                   \
			else                                                   \
				failed(how);                                  \
		return fd;                                                     \
	}
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
SIMPLE_HOOK(eventfd, "eventfd", (unsigned int v, int flags), (v, flags))
SIMPLE_HOOK(timerfd_create, "timerfd_create", (int clk, int flags), (clk, flags))
SIMPLE_HOOK(epoll_create, "epoll_create", (int size), (size))
SIMPLE_HOOK(epoll_create1, "epoll_create1", (int flags), (flags))
SIMPLE_HOOK(memfd_create, "memfd_create", (const char *name, unsigned int flags), (name, flags))
SIMPLE_HOOK(inotify_init, "inotify_init", (void), ())
SIMPLE_HOOK(inotify_init1, "inotify_init1", (int flags), (flags))

EXPORT int signalfd(int fd, const sigset_t *mask, int flags)
{
	int ret = REAL(signalfd)(fd, mask, flags);
	if (ret >= 0 && fd == -1)
		created(ret, "signalfd", RA);
	return ret;
}

/* io_uring_setup has no libc wrapper; programs that use syscall() are seen here. */
EXPORT long syscall(long nr, ...)
{
	va_list ap;
	long a[6];
	long ret;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	ret = REAL(syscall)(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (ret >= 0 && tracking()) {
		switch (nr) {
		case SYS_io_uring_setup:
			created((int)ret, "io_uring_setup", RA);
			break;
		case SYS_memfd_create:
			created((int)ret, "memfd_create", RA);
			break;
		default:
			break;
		}
	}
	return ret;
}

EXPORT int close(int fd)
{
	struct rec snap;
	unsigned seq;
	int ret, err;

	if (!tracking())
		return REAL(close)(fd);
	if (is_own(fd)) {
		errno = EBADF; /* the preload's own: as if it were not open */
		return -1;
	}
	foreign_check(fd, "close");
	/*
	 * The record's generation, read without the lock: a close that fails
	 * changed nothing, so the record is copied (under the lock) only then,
	 * one lock round trip fewer per close.
	 */
	seq = fd >= 0 && fd < MAX_FDS ? __atomic_load_n(&tab[fd].seq, __ATOMIC_ACQUIRE) : 0;
	ret = REAL(close)(fd);
	err = errno;
	if (ret < 0 && err == EBADF && snap_rec(fd, &snap) != seq)
		snap.state = R_NONE; /* re-created meanwhile by another thread: unknown */
	closing(fd, ret, ret < 0 ? err : 0, seq, &snap, RA);
	errno = err;
	return ret;
}

int close_range(unsigned int first, unsigned int last, int flags);
EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	int ret;

	/* CLOSE_RANGE_CLOEXEC (Linux 5.11) only marks them: no close. */
	if (describe && foreign_mode != FOREIGN_OFF && tracking() && !(flags & 4)) {
		static int fds[MAX_FDS];
		int n;

		guard++;
		n = list_fds(fds, MAX_FDS, -1);
		guard--;
		for (int i = 0; i < n; i++)
			if ((unsigned)fds[i] >= first && (unsigned)fds[i] <= last)
				foreign_check(fds[i], "close_range");
	}
	/* The /proc check at exit sees what it closed. */
	ret = REAL(close_range)(first, last, flags);
	if (ret == 0 && !(flags & 4))
		own_lost(first, last);
	return ret;
}

/* ---- exec and exit ---- */

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	char rep[PATH_MAX + 64];
	int ret;

	check_exec(path, rep, sizeof(rep));
	ret = REAL(execve)(path, argv, envp);
	exec_failed(rep);
	return ret;
}

EXPORT int execv(const char *path, char *const argv[])
{
	char rep[PATH_MAX + 64];
	int ret;

	check_exec(path, rep, sizeof(rep));
	ret = REAL(execv)(path, argv);
	exec_failed(rep);
	return ret;
}

EXPORT int execvp(const char *file, char *const argv[])
{
	char rep[PATH_MAX + 64];
	int ret;

	check_exec(file, rep, sizeof(rep));
	ret = REAL(execvp)(file, argv);
	exec_failed(rep);
	return ret;
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	char rep[PATH_MAX + 64];
	int ret;

	check_exec(file, rep, sizeof(rep));
	ret = REAL(execvpe)(file, argv, envp);
	exec_failed(rep);
	return ret;
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	char rep[PATH_MAX + 64], prog[PATH_MAX];
	int ret;

	if (read_link_fd(fd, prog, sizeof(prog)) < 0)
		strcpy(prog, "?");
	check_exec(prog, rep, sizeof(rep));
	ret = REAL(fexecve)(fd, argv, envp);
	exec_failed(rep);
	return ret;
}

/* The execl family: gather the arguments, then go through the hooks above. */
#define MAX_ARGS 4096
static int collect(const char *arg0, va_list ap, char **argv, char *const **envp)
{
	int n = 0;

	argv[n++] = (char *)arg0;
	while (arg0 && n < MAX_ARGS) {
		argv[n] = va_arg(ap, char *);
		if (!argv[n++])
			break;
	}
	if (n == MAX_ARGS) {
		errno = E2BIG;
		return -1;
	}
	if (envp)
		*envp = va_arg(ap, char *const *);
	return 0;
}

EXPORT int execl(const char *path, const char *arg, ...)
{
	char *argv[MAX_ARGS];
	va_list ap;
	int r;

	va_start(ap, arg);
	r = collect(arg, ap, argv, NULL);
	va_end(ap);
	return r < 0 ? -1 : execv(path, argv);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	char *argv[MAX_ARGS];
	va_list ap;
	int r;

	va_start(ap, arg);
	r = collect(arg, ap, argv, NULL);
	va_end(ap);
	return r < 0 ? -1 : execvp(file, argv);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
	char *argv[MAX_ARGS];
	char *const *envp;
	va_list ap;
	int r;

	va_start(ap, arg);
	r = collect(arg, ap, argv, &envp);
	va_end(ap);
	return r < 0 ? -1 : execve(path, argv, envp);
}

EXPORT void _exit(int status)
{
	report_exit();
	REAL(_exit)(status);
	__builtin_unreachable();
}

EXPORT void _Exit(int status)
{
	report_exit();
	REAL(_Exit)(status);
	__builtin_unreachable();
}

/*
 * A fatal signal whose disposition is the default is the preload's
 * (init.c): on_fatal() writes the report, then dies as the default would.
 * So a program that sets SIG_DFL on one, at start-up as dash does with
 * SIGTERM or later as dash's SIGINT handler does before it raises the
 * signal again, keeps the report; one that installs a handler or SIG_IGN
 * takes the signal over; a query reads SIG_DFL where the preload stands in.
 */
/* SIG_DFL is a null handler, with SA_SIGINFO (a null sa_sigaction) or without. */
static bool asks_default(const struct sigaction *act)
{
	return act->sa_handler == SIG_DFL;
}

static void show_default(struct sigaction *old)
{
	memset(old, 0, sizeof(*old));
	old->sa_handler = SIG_DFL;
	sigemptyset(&old->sa_mask);
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	bool standing;
	int r;

	if (guard || mode == M_OFF || !is_fatal_signal(sig))
		return REAL(sigaction)(sig, act, old);
	standing = stands_in(sig);
	if (act && asks_default(act)) {
		r = REAL(sigaction)(sig, NULL, old);
		if (r == 0 && !standing)
			r = stand_in_start(sig);
	} else {
		r = REAL(sigaction)(sig, act, old);
		if (r == 0 && act)
			stand_in_end(sig);
	}
	if (r == 0 && old && standing)
		show_default(old);
	return r;
}

/* glibc's signal() calls its own sigaction, not the interposed one. */
EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction old;
	sighandler_t prev;
	bool standing;

	if (guard || mode == M_OFF || !is_fatal_signal(sig))
		return REAL(signal)(sig, handler);
	standing = stands_in(sig);
	if (handler == SIG_DFL) {
		if (standing)
			return SIG_DFL;
		if (REAL(sigaction)(sig, NULL, &old) < 0 || stand_in_start(sig) < 0)
			return SIG_ERR;
		return old.sa_handler;
	}
	prev = REAL(signal)(sig, handler);
	if (prev == SIG_ERR)
		return prev;
	stand_in_end(sig);
	return standing ? SIG_DFL : prev;
}
