/* SPDX-License-Identifier: MIT */
/*
 * bench/pairs written with liburing alone, for the counts of `make
 * bench-cache`: N rounds of K openat()s (one submit, reaped), then their
 * closes, newest first (one submit, reaped), set up as ringscope's loop is.
 *   pairs-liburing DIR N      (DIR holds files f0 .. f63)
 * PAIRS_PER_SCOPE=K as for bench/pairs (1..64, default 64).
 */
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char paths[64][4096];

/* Reap @n CQEs; on opens, keep each descriptor at its user_data. */
static int reap(struct io_uring *ring, unsigned n, int *fds)
{
	struct io_uring_cqe *cqe;

	while (n--) {
		int ret = io_uring_wait_cqe(ring, &cqe);

		if (ret < 0 || cqe->res < 0)
			return -1;
		if (fds)
			fds[cqe->user_data] = cqe->res;
		io_uring_cqe_seen(ring, cqe);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct io_uring_params p;
	struct io_uring ring;
	int fds[64], round, i, n;
	int per = getenv("PAIRS_PER_SCOPE") ? atoi(getenv("PAIRS_PER_SCOPE")) : 64;

	if (argc != 3 || (n = atoi(argv[2])) <= 0 || per < 1 || per > 64) {
		fprintf(stderr, "usage: [PAIRS_PER_SCOPE=1..64] pairs-liburing DIR ROUNDS\n");
		return 2;
	}
	for (i = 0; i < 64; i++)
		snprintf(paths[i], sizeof(paths[i]), "%s/f%d", argv[1], i);
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
	p.cq_entries = 2048;
	if (io_uring_queue_init_params(512, &ring, &p) < 0)
		return 1;
	io_uring_register_ring_fd(&ring);
	for (round = 0; round < n; round++) {
		for (i = 0; i < per; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			io_uring_prep_openat(sqe, AT_FDCWD, paths[i], O_RDONLY | O_CLOEXEC, 0);
			io_uring_sqe_set_data64(sqe, (unsigned)i);
		}
		if (io_uring_submit(&ring) != per || reap(&ring, per, fds) < 0)
			return 1;
		for (i = per; i-- > 0;)
			io_uring_prep_close(io_uring_get_sqe(&ring), fds[i]);
		if (io_uring_submit(&ring) != per || reap(&ring, per, NULL) < 0)
			return 1;
	}
	io_uring_queue_exit(&ring);
	return 0;
}
