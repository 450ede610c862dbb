/* SPDX-License-Identifier: MIT */
/*
 * Leaks a descriptor that IORING_OP_OPENAT created (libc never sees it),
 * then tears the ring down cleanly: "leak_uring PATH", prints "fd N".
 * Exits 77 if the kernel has no io_uring.
 */
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>

int open_through_ring(struct io_uring *ring, const char *path);

int open_through_ring(struct io_uring *ring, const char *path)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	struct io_uring_cqe *cqe;
	int res;

	io_uring_prep_openat(sqe, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (io_uring_submit_and_wait(ring, 1) < 1 || io_uring_wait_cqe(ring, &cqe) < 0)
		return -1;
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

int main(int argc, char **argv)
{
	struct io_uring ring;
	int fd, ret;

	if (argc < 2)
		return 2;
	ret = io_uring_queue_init(8, &ring, 0);
	if (ret < 0) {
		printf("SKIP leak_uring: kernel lacks io_uring (%s)\n", strerror(-ret));
		return 77;
	}
	fd = open_through_ring(&ring, argv[1]);
	io_uring_queue_exit(&ring);
	if (fd < 0) {
		printf("SKIP leak_uring: kernel lacks IORING_OP_OPENAT (%s)\n", strerror(-fd));
		return 77;
	}
	printf("fd %d\n", fd);
	return 0;
}
