/* SPDX-License-Identifier: MIT */
/*
 * For tests/audit/hostile_tools.sh: leaks a descriptor of every kind, under
 * hostile names, then ends as told.
 *   hostile_kinds all DIR    pipe, socketpair, eventfd, memfd, io_uring,
 *                            files named with a newline, ESC, DEL and
 *                            invalid UTF-8, and one of 250 bytes; exit 0
 *   hostile_kinds segv DIR   the same, then SIGSEGV
 *   hostile_kinds many N     N descriptors of /dev/null; exit 0
 *   hostile_kinds deep N     one, opened N calls deep; exit 0
 */
#include <fcntl.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void leak_all(const char *dir)
{
	char path[4096];
	int p[2], sv[2], n;
	struct io_uring_params par;

	if (pipe(p) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		exit(99);
	if (eventfd(0, 0) < 0 || memfd_create("evil\n\x1b[31mred\\\"name", 0) < 0)
		exit(99);
	memset(&par, 0, sizeof(par));
	if (syscall(__NR_io_uring_setup, 4, &par) < 0)
		exit(99);
	snprintf(path, sizeof(path), "%s/nl\nfake: leaked fd 99\x1b[2J\x7f\xff\xfe", dir);
	if (open(path, O_CREAT | O_RDWR, 0600) < 0)
		exit(99);
	n = snprintf(path, sizeof(path), "%s/", dir);
	memset(path + n, 'L', 250);
	path[n + 250] = '\0';
	if (open(path, O_CREAT | O_RDWR, 0600) < 0 || socket(AF_INET, SOCK_DGRAM, 0) < 0)
		exit(99);
}

int deep_open(int n);
int deep_open(int n)
{
	if (n > 0)
		return deep_open(n - 1) + 0;
	return open("/dev/null", O_RDONLY);
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 99;
	if (strcmp(argv[1], "many") == 0) {
		for (int i = 0; i < atoi(argv[2]); i++)
			if (open("/dev/null", O_RDONLY) < 0)
				return 98;
		return 0;
	}
	if (strcmp(argv[1], "deep") == 0)
		return deep_open(atoi(argv[2])) < 0 ? 98 : 0;
	leak_all(argv[2]);
	if (strcmp(argv[1], "segv") == 0)
		raise(SIGSEGV);
	return 0;
}
