/* SPDX-License-Identifier: MIT */
/*
 * A file tool written from the man pages only. It writes a directory of
 * files through the ring (rsc_open, rsc_write), fsync+closes some early
 * (RSC_FSYNC_ON_RELEASE, rsc_entry_release_wait), then scans the directory
 * back (rsc_open relative to a dirfd, rsc_read), adopts descriptors that
 * pipe2, eventfd and socketpair made (rsc_adopt), detaches two and closes
 * them itself, and fails the body half-way (rsc_scope_fail) with a read
 * still in flight. The error chain it prints, what the exits saw, their
 * order and the descriptor count are all checked.
 */
#include "prog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define FILES 6
#define FSIZE 1500

static char content[FILES][FSIZE];
static char readback[FILES][FSIZE];
static int writes_done, reads_done, pipe_read_res = 1;
static int exit_order[4], exits;
static int exit_saw_errno[4];
static char exit_saw_op[4][32];

static void fill(int i)
{
	int j;

	for (j = 0; j < FSIZE; j++)
		content[i][j] = (char)('A' + (i * 7 + j) % 26);
}

static void on_written(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	(void)data;
	PROG_CHECK(res == FSIZE, "write of %d bytes", res);
	writes_done++;
}

static void on_read(struct rsc_entry *e, int res, void *buf, void *data)
{
	int i = (int)(long)data;

	(void)e;
	PROG_CHECK(res == FSIZE, "read of file %d: %d", i, res);
	PROG_CHECK(memcmp(buf, content[i], FSIZE) == 0, "file %d read back wrong", i);
	reads_done++;
}

static void on_pipe_read(struct rsc_entry *e, int res, void *buf, void *data)
{
	(void)e;
	(void)buf;
	(void)data;
	pipe_read_res = res;
}

/* An exit of the body's own: it records what the unwind told it. */
static int note_exit(struct rsc_entry *e, const struct rsc_error *pending, void *arg)
{
	int who = (int)(long)arg;

	(void)e;
	exit_order[exits] = who;
	exit_saw_errno[exits] = pending ? rsc_error_errno(pending) : 0;
	snprintf(exit_saw_op[exits], sizeof(exit_saw_op[0]), "%s",
		 pending ? rsc_error_op(pending) : "");
	exits++;
	return 0;
}

static void write_phase(struct rsc_loop *loop, int dirfd)
{
	struct rsc_scope *w;
	struct rsc_entry *f[FILES];
	struct rsc_error *err = NULL;
	char name[32];
	int i, r;

	PROG_CHECK(rsc_scope_open(loop, NULL, "write", &w) == 0, "scope write");
	for (i = 0; i < FILES; i++) {
		fill(i);
		snprintf(name, sizeof(name), "file-%d.dat", i);
		r = rsc_open(w, dirfd, name, O_CREAT | O_WRONLY | O_TRUNC, 0644,
			     i % 2 ? 0 : RSC_FSYNC_ON_RELEASE, &f[i]);
		PROG_CHECK(r == 0, "rsc_open(%s) = %d", name, r);
	}
	for (i = 0; i < FILES; i++) {
		r = rsc_entry_wait(f[i]);
		PROG_CHECK(r >= 0, "rsc_entry_wait = %d", r);
		r = rsc_write(f[i], content[i], FSIZE, 0, on_written, NULL);
		PROG_CHECK(r == 0, "rsc_write = %d", r);
	}
	while (writes_done < FILES)
		PROG_CHECK(rsc_loop_run(loop, RSC_RUN_ONCE) >= 0, "run");
	/* fsync+close two files early; the rest go with the scope. */
	for (i = 0; i < 4; i += 2) {
		r = rsc_entry_release_wait(f[i], &err);
		PROG_CHECK(r == 0 && !err, "rsc_entry_release_wait = %d", r);
		PROG_CHECK(rsc_entry_release(f[i], NULL, NULL) == -EALREADY,
			   "a second release of a released entry");
	}
	r = rsc_scope_close_wait(w, &err);
	PROG_CHECK(r == 0 && !err, "close of the write scope = %d", r);
}

static void scan_phase(struct rsc_loop *loop, const char *dir, int dirfd)
{
	struct rsc_scope *scan;
	struct rsc_entry *e, *pr, *pw, *ev, *s0, *s1;
	struct rsc_error *err = NULL;
	struct dirent *de;
	char line[1024], *text = NULL;
	size_t textlen = 0;
	int p[2], sv[2], efd, n = 0, r, fd;
	FILE *mem;
	DIR *d;

	PROG_CHECK(rsc_scope_open(loop, NULL, "scan", &scan) == 0, "scope scan");
	PROG_CHECK(rsc_defer(scan, note_exit, (void *)1L, NULL) == 0, "defer 1");
	d = opendir(dir);
	PROG_CHECK(d, "opendir");
	while ((de = readdir(d))) {
		int i;

		if (sscanf(de->d_name, "file-%d.dat", &i) != 1)
			continue;
		r = rsc_open(scan, dirfd, de->d_name, O_RDONLY, 0, 0, &e);
		PROG_CHECK(r == 0, "rsc_open(%s) = %d", de->d_name, r);
		PROG_CHECK(rsc_entry_wait(e) >= 0, "open %s", de->d_name);
		r = rsc_read(e, readback[i], FSIZE, 0, on_read, (void *)(long)i);
		PROG_CHECK(r == 0, "rsc_read = %d", r);
		n++;
	}
	closedir(d);
	PROG_CHECK(n == FILES, "%d files found", n);
	while (reads_done < FILES)
		PROG_CHECK(rsc_loop_run(loop, RSC_RUN_ONCE) >= 0, "run");

	/* Descriptors made by other code become the scope's. */
	PROG_CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe2");
	efd = eventfd(0, EFD_CLOEXEC);
	PROG_CHECK(efd >= 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "fds");
	PROG_CHECK(rsc_adopt(scan, p[0], 0, &pr) == 0, "adopt pipe read end");
	PROG_CHECK(rsc_adopt(scan, p[1], 0, &pw) == 0, "adopt pipe write end");
	PROG_CHECK(rsc_adopt(scan, efd, 0, &ev) == 0, "adopt eventfd");
	PROG_CHECK(rsc_adopt(scan, sv[0], RSC_SHUTDOWN_ON_RELEASE, &s0) == 0, "adopt socket 0");
	PROG_CHECK(rsc_adopt(scan, sv[1], 0, &s1) == 0, "adopt socket 1");
	PROG_CHECK(rsc_adopt(scan, p[0], 0, &e) == -EEXIST, "a second owner for the pipe");
	PROG_CHECK(rsc_defer(scan, note_exit, (void *)2L, NULL) == 0, "defer 2");

	/* Two go back to the program, which closes them itself. */
	fd = rsc_entry_detach(ev);
	PROG_CHECK(fd == efd, "rsc_entry_detach(eventfd) = %d", fd);
	PROG_CHECK(close(fd) == 0, "close of the detached eventfd");
	fd = rsc_entry_detach(s1);
	PROG_CHECK(fd == sv[1], "rsc_entry_detach(socket) = %d", fd);
	PROG_CHECK(close(fd) == 0, "close of the detached socket");
	PROG_CHECK(rsc_entry_fd(ev) == -ESTALE, "a detached entry's handle is stale");

	/* Half-way: a read is waiting on the empty pipe when the body fails. */
	r = rsc_read(pr, line, sizeof(line), -1, on_pipe_read, NULL);
	PROG_CHECK(r == 0, "rsc_read(pipe) = %d", r);
	PROG_CHECK(rsc_loop_run(loop, RSC_RUN_NOWAIT) >= 0, "run");
	PROG_CHECK(rsc_scope_fail(scan, -EPROTO, "parse") == 0, "rsc_scope_fail");
	PROG_CHECK(rsc_adopt(scan, 0, 0, &e) == -ESHUTDOWN, "adopt into a failed scope");
	r = rsc_scope_close_wait(scan, &err);
	PROG_CHECK(r == -EPROTO && err, "close of the failed scope = %d", r);
	PROG_CHECK(pipe_read_res == -ECANCELED || pipe_read_res == -EINTR,
		   "the read in flight ended with %d", pipe_read_res);

	/* The chain: one error, the body's, named as the page says. */
	PROG_CHECK(rsc_error_depth(err) == 1, "chain depth %d", rsc_error_depth(err));
	PROG_CHECK(strcmp(rsc_error_op(err), "parse") == 0 && strcmp(rsc_error_scope(err), "scan") == 0,
		   "op '%s' scope '%s'", rsc_error_op(err), rsc_error_scope(err));
	mem = open_memstream(&text, &textlen);
	PROG_CHECK(mem && rsc_error_print(err, mem) == 0, "rsc_error_print");
	fclose(mem);
	fprintf(stderr, "filetool: the failed scan says:\n%s", text);
	PROG_CHECK(strncmp(text, "error: parse: ", 14) == 0 && strstr(text, "(EPROTO)") &&
			   strstr(text, "in scope 'scan'"),
		   "printed chain '%s'", text);
	free(text);
	r = rsc_error_format(err, line, sizeof(line));
	PROG_CHECK(r > 0 && (size_t)r == strlen(line) && strstr(line, "parse"), "format '%s'", line);
	rsc_error_free(err);

	/* Both exits ran, newest first, and saw the body's error. */
	PROG_CHECK(exits == 2 && exit_order[0] == 2 && exit_order[1] == 1, "exits %d: %d %d", exits,
		   exit_order[0], exit_order[1]);
	for (r = 0; r < 2; r++)
		PROG_CHECK(exit_saw_errno[r] == -EPROTO && strcmp(exit_saw_op[r], "parse") == 0,
			   "exit %d saw %d '%s'", r, exit_saw_errno[r], exit_saw_op[r]);
	/* The adopted ones are closed: the numbers are free again. */
	PROG_CHECK(fcntl(p[0], F_GETFD) < 0 && fcntl(p[1], F_GETFD) < 0 && fcntl(sv[0], F_GETFD) < 0,
		   "an adopted descriptor outlived its scope");
}

int main(void)
{
	char dir[] = "/tmp/rsc-filetool-XXXXXX", path[64];
	struct rsc_loop *loop;
	int fds0, dirfd, i, fd;
	char buf[FSIZE];

	prog_bound(20);
	fds0 = prog_count_fds();
	PROG_CHECK(mkdtemp(dir), "mkdtemp");
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	PROG_CHECK(dirfd >= 0, "open dir");
	PROG_CHECK(rsc_loop_new(&loop, 64, 0) == 0, "rsc_loop_new");

	write_phase(loop, dirfd);
	for (i = 0; i < FILES; i++) { /* checked behind the library's back */
		snprintf(path, sizeof(path), "%s/file-%d.dat", dir, i);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		PROG_CHECK(fd >= 0 && read(fd, buf, FSIZE) == FSIZE && !memcmp(buf, content[i], FSIZE),
			   "file %d on disk", i);
		close(fd);
	}
	scan_phase(loop, dir, dirfd);

	PROG_CHECK(rsc_loop_alive(loop) == 0, "the loop still has work");
	PROG_CHECK(rsc_loop_close(loop) == 0, "rsc_loop_close");
	for (i = 0; i < FILES; i++) {
		snprintf(path, sizeof(path), "file-%d.dat", i);
		unlinkat(dirfd, path, 0);
	}
	close(dirfd);
	rmdir(dir);
	if (prog_count_fds() != fds0) {
		prog_list_fds();
		PROG_CHECK(0, "descriptors: %d at the start, %d at the end", fds0, prog_count_fds());
	}
	printf("filetool: %d files written and read back, the failed scan unwound cleanly\n", FILES);
	return 0;
}
