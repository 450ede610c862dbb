/* SPDX-License-Identifier: MIT */
/* While the program runs: dumps (signal, EMFILE, a count) and foreign closes. */
#include <time.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * Every open descriptor with its creation site, into dump.*.json (written
 * under a dot name, then renamed, so the tool never reads half of one).
 * Called from hooks and from the dump signal's handler: no allocation, no
 * lock that the interrupted code may hold (table reads are racy, which a
 * snapshot may be), the spares for room.
 */
void write_dump(const char *why)
{
	static int fds[MAX_FDS];
	static struct wbuf wb;
	char path[PATH_MAX + 64], target[PATH_MAX];
	struct wbuf *w = &wb;
	bool first = true;
	int n, saved = errno;

	if (mode != M_ON || __atomic_exchange_n(&dump_busy, 1, __ATOMIC_ACQUIRE))
		return;
	guard++;
	spares_release();
	if (open_report(w, path, sizeof(path), ".dump") >= 0) {
		n = list_fds(fds, MAX_FDS, w->fd);
		w_header(w, "dump", 0);
		w_str(w, "]");
		w_key(w, "reason");
		w_jstr(w, why);
		w_key(w, "count");
		w_long(w, n);
		w_key(w, "fds");
		w_putc(w, '[');
		for (int i = 0; i < n; i++) {
			int fd = fds[i];
			bool have;
			dev_t dev;
			ino_t ino;
			const struct rec *r = fd < MAX_FDS ? &tab[fd] : NULL;

			if (read_link_fd(fd, target, sizeof(target)) < 0)
				continue;
			get_id(fd, &have, &dev, &ino);
			w_str(w, first ? "\n{\"fd\":" : ",\n{\"fd\":");
			first = false;
			w_long(w, fd);
			w_target(w, fd, target);
			if (pre_existing(fd, have, dev, ino, true)) {
				w_key(w, "inherited");
				w_str(w, "true");
			} else if (r && r->state == R_OPEN && same_id(r, dev, ino, have)) {
				w_created(w, r, "backtrace");
			} else {
				w_ringscope_label(w, fd);
			}
			w_putc(w, '}');
		}
		w_str(w, "\n]}\n");
		w_flush(w);
		syscall(SYS_close, w->fd);
		renameat(report_dirfd(), path, report_dirfd(), path + 1);
	}
	spares_take();
	guard--;
	__atomic_store_n(&dump_busy, 0, __ATOMIC_RELEASE);
	errno = saved;
}

void on_dump_signal(int sig)
{
	(void)sig;
	write_dump("signal");
}

/* An acquire failed for want of descriptors: dump, at most once a second. */
void failed(const char *how)
{
	int err = errno;
	long long now, last;

	(void)how;
	if ((err != EMFILE && err != ENFILE) || !tracking())
		return;
	now = now_ns();
	last = __atomic_load_n(&last_emfile_ns, __ATOMIC_RELAXED);
	if (last >= 0 && now - last < 1000000000LL)
		return;
	if (__atomic_compare_exchange_n(&last_emfile_ns, &last, now, false, __ATOMIC_RELAXED,
					__ATOMIC_RELAXED))
		write_dump(err == EMFILE ? "EMFILE" : "ENFILE");
	errno = err;
}

/* ---- foreign closes ---- */

/*
 * @call (close, dup2, dup3, close_range, fclose) is about to close @fd: if a
 * live ringscope entry owns it, report at once, with the closer's backtrace
 * and the owner; under --foreign-close=abort, stop before the close happens.
 * The ledger answers from any thread at any moment; this runs before the
 * real call, so the owner is still the owner.
 */
NOINLINE void foreign_slow(int fd, const char *call)
{
	static struct wbuf wb;
	char label[512], path[PATH_MAX + 64], target[PATH_MAX];
	void *bt[BT_DEPTH];
	struct wbuf *w = &wb;
	bool first = true;
	int n, saved = errno;

	guard++;
	if (describe(fd, label, sizeof(label)) <= 0) {
		guard--;
		errno = saved;
		return;
	}
	n = stack_trace(bt, BT_DEPTH);
	pthread_mutex_lock(&bad_lock); /* one report writer at a time for this buffer */
	spares_release();
	if (open_report(w, path, sizeof(path), ".report") >= 0) {
		w_header(w, "foreign-close", 0);
		w_finding_start(w, &first, "foreign-close", fd);
		if (read_link_fd(fd, target, sizeof(target)) >= 0)
			w_target(w, fd, target);
		w_key(w, "call");
		w_jstr(w, call);
		w_key(w, "owner");
		w_jstr(w, label);
		w_key(w, "action");
		w_jstr(w, foreign_mode == FOREIGN_ABORT ? "abort" : "warn");
		w_bt(w, "backtrace", bt, n);
		w_str(w, "}\n]}\n");
		w_flush(w);
		syscall(SYS_close, w->fd);
		renameat(report_dirfd(), path, report_dirfd(), path + 1);
	}
	spares_take();
	pthread_mutex_unlock(&bad_lock);
	guard--;
	if (foreign_mode == FOREIGN_ABORT)
		abort();
	errno = saved;
}
