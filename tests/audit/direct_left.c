/* SPDX-License-Identifier: MIT */
/*
 * Leaves a ring open with a file still registered in its direct descriptor
 * table (the descriptor itself is closed): "direct_left PATH", prints
 * "ring N". Exits 77 if the kernel has no io_uring.
 */
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct io_uring ring; /* left open on purpose */

int register_config(const char *path);

int register_config(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return -1;
	ret = io_uring_register_files(&ring, &fd, 1);
	close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	int ret;

	if (argc < 2)
		return 2;
	ret = io_uring_queue_init(8, &ring, 0);
	if (ret < 0) {
		printf("SKIP direct_left: kernel lacks io_uring (%s)\n", strerror(-ret));
		return 77;
	}
	if (register_config(argv[1]) < 0)
		return 1;
	printf("ring %d\n", ring.ring_fd);
	return 0;
}
