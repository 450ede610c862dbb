/* SPDX-License-Identifier: MIT */
/*
 * Opens and closes descriptors every way the preload knows, and ways it
 * does not see (io_uring, raw syscalls), with threads reusing numbers, a
 * forked child and an exec: 'ringscope-audit run' must find nothing.
 * "clean DIR TRUE_PROG". Prints "uring yes|no".
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

static char path[4096];

#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x)) {                                                    \
			fprintf(stderr, "clean: %s failed at line %d: %s\n", #x, \
				__LINE__, strerror(errno));                    \
			exit(1);                                               \
		}                                                              \
	} while (0)

static void libc_ways(void)
{
	int fd, p[2], ls, cs, as;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	sigset_t mask;
	FILE *f;

	CHECK((fd = creat(path, 0600)) >= 0);
	CHECK(close(fd) == 0);
	CHECK((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0);
	CHECK(close(fd) == 0);
	CHECK((fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC)) >= 0);
	CHECK(close(fd) == 0);
	CHECK((f = fopen(path, "re")) != NULL);
	CHECK(fclose(f) == 0);
	CHECK(pipe(p) == 0);
	CHECK(close(p[0]) == 0 && close(p[1]) == 0);
	CHECK(pipe2(p, O_CLOEXEC) == 0);
	CHECK((fd = dup(p[0])) >= 0);
	CHECK(close(fd) == 0);
	CHECK((fd = fcntl(p[0], F_DUPFD_CLOEXEC, 100)) >= 100);
	CHECK(close(fd) == 0);
	CHECK(dup2(p[0], 200) == 200 && close(200) == 0);
	CHECK(dup3(p[0], 201, O_CLOEXEC) == 201 && close(201) == 0);
	CHECK(close(p[0]) == 0 && close(p[1]) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0);
	CHECK(close(p[0]) == 0 && close(p[1]) == 0);
	CHECK((fd = eventfd(0, EFD_CLOEXEC)) >= 0 && close(fd) == 0);
	CHECK((fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC)) >= 0 && close(fd) == 0);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	CHECK((fd = signalfd(-1, &mask, SFD_CLOEXEC)) >= 0 && close(fd) == 0);
	CHECK((fd = epoll_create1(EPOLL_CLOEXEC)) >= 0 && close(fd) == 0);
	CHECK((fd = memfd_create("clean", MFD_CLOEXEC)) >= 0 && close(fd) == 0);
	CHECK((fd = inotify_init1(IN_CLOEXEC)) >= 0 && close(fd) == 0);
	/* Raw syscalls: neither side is seen. */
	CHECK((fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC)) >= 0);
	CHECK(syscall(SYS_close, fd) == 0);
	/* Created through libc, closed behind its back. */
	CHECK((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0);
	CHECK(syscall(SYS_close, fd) == 0);

	CHECK((ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(ls, 4) == 0 &&
	    getsockname(ls, (struct sockaddr *)&sa, &len) == 0) {
		CHECK((cs = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
		CHECK(connect(cs, (struct sockaddr *)&sa, sizeof(sa)) == 0);
		CHECK((as = accept4(ls, NULL, NULL, SOCK_CLOEXEC)) >= 0);
		CHECK(close(as) == 0 && close(cs) == 0);
		CHECK((cs = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
		CHECK(connect(cs, (struct sockaddr *)&sa, sizeof(sa)) == 0);
		CHECK((as = accept(ls, NULL, NULL)) >= 0);
		CHECK(close(as) == 0 && close(cs) == 0);
	}
	CHECK(close(ls) == 0);
}

static int ring_op(struct io_uring *ring, int res_expected_ok)
{
	struct io_uring_cqe *cqe;
	int res;

	CHECK(io_uring_submit_and_wait(ring, 1) >= 1);
	CHECK(io_uring_wait_cqe(ring, &cqe) == 0);
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	if (res_expected_ok)
		CHECK(res >= 0);
	return res;
}

/* Returns false if the kernel's io_uring is unusable. */
static int uring_ways(void)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	int fd, fd2;

	if (io_uring_queue_init(8, &ring, 0) < 0)
		return 0;
	/* Open and close through the ring: libc sees neither. */
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_openat(sqe, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	fd = ring_op(&ring, 0);
	if (fd < 0) {
		io_uring_queue_exit(&ring);
		return 0;
	}
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_close(sqe, fd);
	ring_op(&ring, 1);
	/* Opened through libc, closed by IORING_OP_CLOSE: gone, not leaked. */
	CHECK((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0);
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_close(sqe, fd);
	ring_op(&ring, 1);
	/* The same number, reused by the ring, then closed with close(). */
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_openat(sqe, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	fd2 = ring_op(&ring, 1);
	CHECK(close(fd2) == 0);
	/* A direct descriptor, registered and unregistered. */
	CHECK((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0);
	CHECK(io_uring_register_files(&ring, &fd, 1) == 0);
	CHECK(close(fd) == 0);
	CHECK(io_uring_unregister_files(&ring) == 0);
	io_uring_queue_exit(&ring);
	return 1;
}

static void *churn(void *arg)
{
	(void)arg;
	for (int i = 0; i < 2000; i++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		CHECK(fd >= 0);
		CHECK(close(fd) == 0);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[4];
	pid_t pid;
	int st, uring;

	if (argc < 3)
		return 2;
	snprintf(path, sizeof(path), "%s/clean.dat", argv[1]);
	libc_ways();
	uring = uring_ways();
	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, churn, NULL) == 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	/* A child that exits at once, and one that execs with nothing to leak. */
	CHECK((pid = fork()) >= 0);
	if (pid == 0)
		_exit(0);
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK((pid = fork()) >= 0);
	if (pid == 0) {
		execl(argv[2], argv[2], (char *)NULL);
		_exit(127);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	printf("uring %s\n", uring ? "yes" : "no");
	return 0;
}
