/* SPDX-License-Identifier: MIT */
/* The JSON reports: at exit (leaks, bad closes), at a fatal signal, before an exec. */
#include <time.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"
#include "../fdkind.h"

void w_flush(struct wbuf *w)
{
	size_t off = 0;

	while (off < w->n) {
		ssize_t r = write(w->fd, w->buf + off, w->n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	w->n = 0;
}

void w_putc(struct wbuf *w, char c)
{
	if (w->n == sizeof(w->buf))
		w_flush(w);
	w->buf[w->n++] = c;
}

void w_str(struct wbuf *w, const char *s)
{
	while (*s)
		w_putc(w, *s++);
}

void w_jstr(struct wbuf *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	w_putc(w, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			w_putc(w, '\\');
			w_putc(w, (char)*p);
		} else if (*p < 0x20) {
			w_str(w, "\\u00");
			w_putc(w, hex[*p >> 4]);
			w_putc(w, hex[*p & 15]);
		} else {
			w_putc(w, (char)*p);
		}
	}
	w_putc(w, '"');
}

void w_long(struct wbuf *w, long long v)
{
	char tmp[24];
	int i = 0;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	if (v < 0)
		w_putc(w, '-');
	do {
		tmp[i++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (i)
		w_putc(w, tmp[--i]);
}

void w_key(struct wbuf *w, const char *key)
{
	w_putc(w, ',');
	w_jstr(w, key);
	w_putc(w, ':');
}

/*
 * A frame is written as its raw address ("0x55d0c0de1234"): the tool
 * symbolizes it afterwards against the "maps" of the report, outside the
 * program, and only for what it reports. Nothing here takes the loader's lock.
 */
void w_frame(struct wbuf *w, void *addr)
{
	static const char hex[] = "0123456789abcdef";
	char text[2 + 2 * sizeof(uintptr_t) + 1], *p = text + sizeof(text) - 1;
	uintptr_t a = (uintptr_t)addr;

	*p = '\0';
	do {
		*--p = hex[a & 15];
		a >>= 4;
	} while (a);
	*--p = 'x';
	*--p = '0';
	w_jstr(w, p);
}


/* The file-backed lines of /proc/self/maps: what the tool needs to symbolize. */
static void w_maps(struct wbuf *w)
{
	static char maps[1 << 20];
	ssize_t n = read_file("/proc/self/maps", maps, sizeof(maps));
	char *line = maps, *end;

	w_key(w, "maps");
	w_putc(w, '"');
	while (n > 0 && line < maps + n) {
		end = strchr(line, '\n');
		if (!end)
			break;
		*end = '\0';
		if (strstr(line, " /")) {
			/* A control byte in a module's path (an ESC) is kept: the path must open. */
			for (char *c = line; *c; c++) {
				if ((unsigned char)*c < 0x20) {
					static const char hex[] = "0123456789abcdef";

					w_str(w, "\\u00");
					w_putc(w, hex[(unsigned char)*c >> 4]);
					w_putc(w, hex[*c & 15]);
					continue;
				}
				if (*c == '"' || *c == '\\')
					w_putc(w, '\\');
				w_putc(w, *c);
			}
			w_str(w, "\\n");
		}
		line = end + 1;
	}
	w_putc(w, '"');
}

void w_bt(struct wbuf *w, const char *key, void *const *bt, int n)
{
	w_key(w, key);
	w_putc(w, '[');
	for (int i = 0; i < n; i++) {
		if (i)
			w_putc(w, ',');
		w_frame(w, bt[i]);
	}
	w_putc(w, ']');
}

ssize_t read_link_fd(int fd, char *buf, size_t len)
{
	char path[40];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, len - 1);
	/* Open, but its path is too long for the kernel to name: still reported. */
	if (n < 0 && errno == ENAMETOOLONG && len > sizeof(FD_TARGET_TOO_LONG))
		n = (ssize_t)strlen(strcpy(buf, FD_TARGET_TOO_LONG));
	buf[n < 0 ? 0 : n] = '\0';
	return n;
}

ssize_t read_file(const char *path, char *buf, size_t len)
{
	ssize_t n = 0, r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf[0] = '\0';
	if (fd < 0)
		return -1;
	while (n < (ssize_t)len - 1 && (r = read(fd, buf + n, len - 1 - (size_t)n)) > 0)
		n += r;
	close(fd);
	buf[n] = '\0';
	return n;
}

/* Every open descriptor number, from /proc/self/fd, except @skip_fd. */
int list_fds(int *out, int max, int skip_fd)
{
	char buf[4096];
	int n = 0;
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0)
		return -1;
	for (;;) {
		long nread = syscall(SYS_getdents64, dfd, buf, sizeof(buf));

		if (nread <= 0)
			break;
		for (long off = 0; off < nread;) {
			/* struct linux_dirent64: ino, off, reclen, type, name */
			unsigned short reclen;
			const char *name = buf + off + 19;

			memcpy(&reclen, buf + off + 16, sizeof(reclen));
			off += reclen;
			if (name[0] < '0' || name[0] > '9')
				continue;
			int fd = atoi(name);
			if (fd != dfd && fd != skip_fd && !is_own(fd) && n < max)
				out[n++] = fd;
		}
	}
	close(dfd);
	return n;
}

/*
 * report.<monotonic ns>.<pid>.<serial>.json: names sort in time order, never
 * repeat across the images one process execs (the clock does not restart),
 * and O_EXCL settles the rest.
 */
int open_report(struct wbuf *w, char *path, size_t len, const char *prefix)
{
	static int serial;
	struct timespec ts;
	int dfd = report_dirfd();

	w->n = 0;
	w->fd = -1;
	path[0] = '\0';
	if (dfd < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	for (int i = 0; i < 1 << 16; i++) {
		snprintf(path, len, "%s.%020llu.%010d.%d.json", prefix,
			 (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec,
			 (int)getpid(), __atomic_fetch_add(&serial, 1, __ATOMIC_RELAXED));
		w->fd = openat(dfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (w->fd >= 0 || errno != EEXIST)
			break;
	}
	if (w->fd < 0)
		path[0] = '\0';
	return w->fd;
}

void w_header(struct wbuf *w, const char *event, int sig)
{
	char exe[PATH_MAX];

	read_file("/proc/self/cmdline", exe, sizeof(exe)); /* argv[0] up to the NUL */
	w_str(w, "{\"pid\":");
	w_long(w, getpid());
	w_key(w, "ppid");
	w_long(w, getppid());
	w_key(w, "argv0");
	w_jstr(w, exe);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		w_key(w, "exe");
		w_jstr(w, exe);
	}
	w_key(w, "event");
	w_jstr(w, event);
	if (sig) {
		w_key(w, "signal");
		w_long(w, sig);
	}
	w_key(w, "backtraces");
	w_str(w, want_bt ? "true" : "false");
	w_maps(w);
	w_key(w, "findings");
	w_putc(w, '[');
}

void w_finding_start(struct wbuf *w, bool *first, const char *kind, int fd)
{
	if (!*first)
		w_putc(w, ',');
	*first = false;
	w_str(w, "\n{\"kind\":");
	w_jstr(w, kind);
	w_key(w, "fd");
	w_long(w, fd);
}

void w_target(struct wbuf *w, int fd, const char *target)
{
	struct stat st;
	mode_t what = fstat(fd, &st) == 0 ? st.st_mode : 0;

	w_key(w, "target");
	w_jstr(w, target);
	w_key(w, "fdkind");
	w_jstr(w, fdkind_of(target, what));
}

void w_created(struct wbuf *w, const struct rec *r, const char *key)
{
	w_key(w, "created_by");
	w_jstr(w, r->how ? r->how : "?");
	w_bt(w, key, r->bt, r->bt_n);
}

static void w_bad_closes(struct wbuf *w, bool *first)
{
	pthread_mutex_lock(&bad_lock);
	for (int i = 0; i < n_bad; i++) {
		const struct bad_close *b = &bad[i];

		w_finding_start(w, first, b->seen_before ? "double-close" : "close-unopened", b->fd);
		w_bt(w, "backtrace", b->bt, b->bt_n);
		if (b->seen_before) {
			w_created(w, &b->was, "creation_backtrace");
			if (b->closed_by_us && b->was.close_ra) {
				w_key(w, "closed_before_at");
				w_frame(w, b->was.close_ra);
			} else if (!b->closed_by_us) {
				w_key(w, "note");
				w_jstr(w, "closed before outside libc (IORING_OP_CLOSE or a raw close)");
			}
		}
		w_putc(w, '}');
	}
	if (bad_dropped) {
		w_finding_start(w, first, "close-unopened", -1);
		w_key(w, "note");
		w_jstr(w, "more EBADF closes than the preload keeps; the rest are not listed");
		w_key(w, "dropped");
		w_long(w, bad_dropped);
		w_putc(w, '}');
	}
	pthread_mutex_unlock(&bad_lock);
}

struct slot_list {
	struct wbuf *w;
	int n;
};

static void w_slot(void *arg, int slot, const char *path, int len)
{
	struct slot_list *sl = arg;
	char p[PATH_MAX];

	if (len >= (int)sizeof(p))
		len = (int)sizeof(p) - 1;
	memcpy(p, path, (size_t)len);
	p[len] = '\0';
	if (sl->n++ && sl->w)
		w_putc(sl->w, ',');
	if (!sl->w)
		return;
	w_str(sl->w, "{\"slot\":");
	w_long(sl->w, slot);
	w_key(sl->w, "target");
	w_jstr(sl->w, p);
	w_putc(sl->w, '}');
}

/*
 * The whole of a /proc file however long it is (a ring's fdinfo has a line
 * per registered file: 1,000 long names pass 64 KiB), NUL-terminated, in
 * memory from mmap (no malloc: this may run in a signal handler); the caller
 * unmaps *@cap bytes. NULL if it cannot be read.
 */
static char *read_file_all(const char *path, size_t *cap)
{
	size_t n = 0;
	ssize_t r;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*cap = 65536;
	if (fd < 0)
		return NULL;
	buf = mmap(NULL, *cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	while (buf != MAP_FAILED) {
		if (n == *cap - 1) {
			char *nb = mremap(buf, *cap, *cap * 2, MREMAP_MAYMOVE);

			if (nb == MAP_FAILED)
				break; /* what was read so far */
			buf = nb;
			*cap *= 2;
		}
		r = read(fd, buf + n, *cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (buf == MAP_FAILED)
		return NULL;
	buf[n] = '\0';
	return buf;
}

/* A ring left open: list the direct descriptors still registered in it. */
static void w_direct(struct wbuf *w, bool *first, int fd, const char *target)
{
	char path[48], *info;
	struct fdinfo_basic fi;
	struct slot_list count = { 0 }, sl = { .w = w };
	size_t cap;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (!(info = read_file_all(path, &cap)))
		return;
	fdinfo_parse(info, &fi, w_slot, &count); /* count only: w is NULL */
	if (count.n == 0) {
		munmap(info, cap);
		return;
	}
	w_finding_start(w, first, "direct-registered", fd);
	w_key(w, "target");
	w_jstr(w, target);
	w_key(w, "user_files");
	w_long(w, fi.user_files);
	w_key(w, "count");
	w_long(w, count.n);
	w_key(w, "slots");
	w_putc(w, '[');
	fdinfo_parse(info, &fi, w_slot, &sl);
	w_str(w, "]}");
	munmap(info, cap);
}

bool same_id(const struct rec *r, dev_t dev, ino_t ino, bool have)
{
	return !r->have_id || (have && r->dev == dev && r->ino == ino);
}

/* Was @fd open, as this very object, when this image (or this forked child) started? */
bool pre_existing(int fd, bool have, dev_t dev, ino_t ino, bool with_fork)
{
	const struct rec *r;

	if (fd >= MAX_FDS)
		return false;
	r = &tab[fd];
	return (r->inherited || (with_fork && r->forkbase)) && have && r->idev == dev &&
	       r->iino == ino;
}

/*
 * A program that uses ringscope can say which scope and acquire site hold a
 * descriptor we never saw created; looked up at run time, never linked.
 */
void w_ringscope_label(struct wbuf *w, int fd)
{
	char label[512];

	if (!describe)
		describe = (describe_fn *)dlsym(RTLD_DEFAULT, "rsc_audit_describe_fd");
	if (describe && describe(fd, label, sizeof(label)) > 0) {
		w_key(w, "ringscope");
		w_jstr(w, label);
	}
}

static void w_leaks(struct wbuf *w, bool *first, int skip_fd)
{
	static int fds[MAX_FDS];
	char target[PATH_MAX];
	int n = list_fds(fds, MAX_FDS, skip_fd);

	for (int i = 0; i < n; i++) {
		int fd = fds[i];
		bool have;
		dev_t dev;
		ino_t ino;
		const struct rec *r = fd < MAX_FDS ? &tab[fd] : NULL;

		get_id(fd, &have, &dev, &ino);
		if (pre_existing(fd, have, dev, ino, true))
			continue;
		if (read_link_fd(fd, target, sizeof(target)) < 0)
			continue; /* closed meanwhile by another thread */
		if (r && r->state == R_OPEN && same_id(r, dev, ino, have)) {
			w_finding_start(w, first, "leaked", fd);
			w_target(w, fd, target);
			w_created(w, r, "backtrace");
		} else {
			w_finding_start(w, first, "leaked-unseen", fd);
			w_target(w, fd, target);
			w_key(w, "note");
			if (!r)
				w_jstr(w, "number 65536 or above: the preload records creation "
					  "sites only below it, so how it was made is unknown");
			else if (strcmp(target, "anon_inode:[io_uring]") == 0)
				w_jstr(w, "an io_uring instance made by a raw io_uring_setup "
					  "syscall (liburing makes it so)");
			else
				w_jstr(w, "not created through libc: by io_uring "
					  "(IORING_OP_OPENAT, IORING_OP_SOCKET, IORING_OP_ACCEPT, ...) "
					  "or a raw syscall");
			w_ringscope_label(w, fd);
		}
		w_putc(w, '}');
		if (strcmp(target, "anon_inode:[io_uring]") == 0)
			w_direct(w, first, fd, target);
	}
}

static void write_report(const char *event, int sig)
{
	char path[PATH_MAX + 64];
	struct wbuf *w;
	bool first = true;
	static struct wbuf wb;

	guard++;
	w = &wb;
	/* The program may have used every descriptor: the spares make room. */
	spares_release();
	/* Written under a dot name, then renamed: the tool reads only whole reports. */
	if (open_report(w, path, sizeof(path), ".report") >= 0) {
		w_header(w, event, sig);
		w_leaks(w, &first, w->fd);
		w_bad_closes(w, &first);
		w_str(w, "\n]}\n");
		w_flush(w);
		syscall(SYS_close, w->fd);
		renameat(report_dirfd(), path, report_dirfd(), path + 1);
	}
	guard--;
}

void report_exit(void)
{
	if (mode != M_ON || __atomic_exchange_n(&reported, 1, __ATOMIC_SEQ_CST))
		return;
	write_report("exit", 0);
}

void on_fatal(int sig)
{
	/* Best effort: snprintf and the table walk are not strictly async-signal-safe. */
	if (mode == M_ON && !__atomic_exchange_n(&reported, 1, __ATOMIC_SEQ_CST))
		write_report("signal", sig);
	stand_in_end(sig);
	guard++; /* the signal() hook would stand in again */
	signal(sig, SIG_DFL);
	guard--;
	raise(sig);
}

/* Created by this image (not inherited), without FD_CLOEXEC, not 0-2: crosses an exec. */
static bool crosses_exec(int fd)
{
	bool have;
	dev_t dev;
	ino_t ino;
	int fl;

	/* 0-2 are meant to cross: a redirection (dup2 onto 1) is no leak. */
	if (fd <= 2)
		return false;
	fl = fcntl(fd, F_GETFD);
	if (fl < 0 || (fl & FD_CLOEXEC))
		return false;
	get_id(fd, &have, &dev, &ino);
	return !pre_existing(fd, have, dev, ino, false);
}

/*
 * Before an exec: every descriptor without FD_CLOEXEC that this program
 * created (not inherited when it started) crosses into @prog. Writes a
 * report only if there is something to say (an exec loop must not fill the
 * directory); @path gets its name, to unlink if the exec fails, or "".
 */
void check_exec(const char *prog, char *path, size_t len)
{
	static int fds[MAX_FDS];
	char target[PATH_MAX];
	struct wbuf *w;
	static struct wbuf wb;
	bool first = true;
	int n, n_cross = 0;

	path[0] = '\0';
	if (mode == M_OFF || guard)
		return;
	guard++;
	w = &wb;
	spares_release();
	n = list_fds(fds, MAX_FDS, -1);
	for (int i = 0; i < n; i++)
		if (crosses_exec(fds[i]))
			fds[n_cross++] = fds[i];
	if ((n_cross == 0 && (mode != M_ON || __atomic_load_n(&n_bad, __ATOMIC_RELAXED) == 0)) ||
	    open_report(w, path, len, ".report") < 0) {
		spares_take();
		guard--;
		return;
	}
	w_header(w, "exec", 0);
	for (int i = 0; i < n_cross; i++) {
		int fd = fds[i];
		bool have;
		dev_t dev;
		ino_t ino;

		if (fd == w->fd || read_link_fd(fd, target, sizeof(target)) < 0)
			continue;
		get_id(fd, &have, &dev, &ino);
		w_finding_start(w, &first, "exec-leak", fd);
		w_target(w, fd, target);
		w_key(w, "into");
		w_jstr(w, prog ? prog : "?");
		if (fd < MAX_FDS && tab[fd].state == R_OPEN && same_id(&tab[fd], dev, ino, have))
			w_created(w, &tab[fd], "backtrace");
		w_putc(w, '}');
	}
	/* This image ends here: its EBADF closes go with this report. */
	if (mode == M_ON)
		w_bad_closes(w, &first);
	w_str(w, "\n]}\n");
	w_flush(w);
	syscall(SYS_close, w->fd);
	if (renameat(report_dirfd(), path, report_dirfd(), path + 1) == 0)
		memmove(path, path + 1, strlen(path));
	spares_take();
	guard--;
}

void exec_failed(const char *path)
{
	int saved = errno;

	if (path[0]) {
		guard++;
		unlinkat(report_dirfd(), path, 0);
		guard--;
	}
	errno = saved;
}
