/* SPDX-License-Identifier: MIT */
/*
 * Leaves a ring open with files still registered in its direct descriptor
 * table (the descriptors themselves are closed): "direct_left PATH [N
 * [GATE]]" registers PATH in N slots (default 1), prints "ring FD", and with
 * GATE waits until that file exists before it exits. Exits 77 if the kernel
 * has no io_uring.
 */
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct io_uring ring; /* left open on purpose */

int register_config(const char *path, int n);

int register_config(const char *path, int n)
{
	int *fds = calloc((size_t)n, sizeof(*fds)), ret;

	if (!fds)
		return -1;
	for (int i = 0; i < n; i++)
		if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return -1;
	ret = io_uring_register_files(&ring, fds, (unsigned)n);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return ret;
}

int main(int argc, char **argv)
{
	int ret, n = argc > 2 ? atoi(argv[2]) : 1;

	if (argc < 2 || n < 1)
		return 2;
	ret = io_uring_queue_init(8, &ring, 0);
	if (ret < 0) {
		printf("SKIP direct_left: kernel lacks io_uring (%s)\n", strerror(-ret));
		return 77;
	}
	if (register_config(argv[1], n) < 0)
		return 1;
	printf("ring %d\n", ring.ring_fd);
	fflush(stdout);
	for (int i = 0; argc > 3 && access(argv[3], F_OK) != 0 && i < 600; i++)
		usleep(50 * 1000);
	return 0;
}
