/* SPDX-License-Identifier: MIT */
/*
 * The LD_PRELOAD half of 'ringscope-audit run'. It interposes the libc
 * functions that create and close descriptors, keeps one record per
 * descriptor number (how it was made, the creation backtrace as raw return
 * addresses, st_dev/st_ino), and when the program ends (exit, return from
 * main, _exit, a fatal signal it can catch) or execs, it writes a JSON
 * report into $RINGSCOPE_AUDIT_DIR for the tool to merge.
 *
 * The table is a hint, never the truth: io_uring (IORING_OP_OPENAT,
 * IORING_OP_CLOSE, ...) and raw syscalls create and close descriptors behind
 * libc's back, so the verdict at exit comes from /proc/self/fd, checked
 * against the recorded identity.
 *
 * It runs inside arbitrary programs: no libringscope, no stdio, allocation
 * only while reporting, and every hook passes straight through while the
 * preload itself is working (the per-thread guard).
 */
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../fdkind.h"

#define EXPORT __attribute__((visibility("default")))
#define NOINLINE __attribute__((noinline))

#define MAX_FDS	 65536 /* numbers above this are judged from /proc alone */
#define BT_DEPTH 12
#define MAX_BAD	 256   /* EBADF closes kept for the report */
#define N_LOCKS	 64

enum rec_state { R_NONE = 0, R_OPEN, R_CLOSED };

struct rec {
	unsigned seq;	    /* bumped by every creation of this number */
	unsigned char state;
	unsigned char bt_n;
	bool have_id;
	bool inherited;	    /* open when this image started (identity in idev/iino) */
	bool forkbase;	    /* open when this forked child started */
	const char *how;    /* "open", "socket", ... */
	void *close_ra;	    /* where the program closed it last */
	dev_t dev, idev;
	ino_t ino, iino;
	void *bt[BT_DEPTH];
};

struct bad_close {
	int fd;
	bool seen_before; /* the program had this number open or closed before */
	bool closed_by_us;
	struct rec was;
	unsigned char bt_n;
	void *bt[BT_DEPTH];
};

enum mode {
	M_OFF = 0,	/* not audited (or before the constructor) */
	M_EXEC_ONLY,	/* a forked child not followed: only the exec check */
	M_ON,
};

static struct rec tab[MAX_FDS];
/* Spin locks, one cache line each: held for a few stores, and no futex in a hot path. */
static struct {
	char held;
	char pad[63];
} locks[N_LOCKS];
static struct bad_close bad[MAX_BAD];
static int n_bad, bad_dropped;
static pthread_mutex_t bad_lock = PTHREAD_MUTEX_INITIALIZER;

static volatile int mode;
static bool want_bt = true, follow, unwind_fp = true;

/* The library's ownership ledger, if the program uses ringscope (never linked). */
typedef int describe_fn(int fd, char *buf, size_t len);
static describe_fn *describe;
enum { FOREIGN_OFF, FOREIGN_WARN, FOREIGN_ABORT };
static int foreign_mode = FOREIGN_WARN;

/* Live dumps: on a signal, on EMFILE/ENFILE, above a count (0: never). */
static int dump_sig;
static long dump_above;
static long live_fds;		/* descriptors seen created and not closed, plus inherited */
static int dump_armed = 1;	/* atomic: re-armed when the count falls back */
static int dump_busy;		/* atomic: one dump at a time */
static long long last_emfile_ns = -1;
static char report_dir[PATH_MAX];

/*
 * Descriptors the preload keeps for itself, parked at high numbers: the
 * report directory, resolved once at start-up (a relative TMPDIR and a
 * program that calls chdir cannot lose it), and spares closed just before a
 * report is written, so that a program that leaked up to EMFILE still gets
 * its report (the report needs /proc/self/fd and the report file).
 */
#define N_SPARE 2
struct own_fd {
	int fd;
	dev_t dev;
	ino_t ino;
};
static struct own_fd dir_own = { .fd = -1 };
static struct own_fd spare[N_SPARE] = { [0 ... N_SPARE - 1] = { .fd = -1 } };
static int reported; /* atomic: the exit report is written once */
static __thread int guard __attribute__((tls_model("initial-exec")));

#define REAL(name)                                                             \
	({                                                                     \
		static __typeof__(name) *real_##name;                          \
		if (!real_##name)                                              \
			real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name); \
		real_##name;                                                   \
	})

static bool own_ok(const struct own_fd *o)
{
	struct stat st;

	return o->fd >= 0 && fstat(o->fd, &st) == 0 && st.st_dev == o->dev && st.st_ino == o->ino;
}

static bool is_own(int fd)
{
	if (fd < 0)
		return false;
	if (fd == dir_own.fd)
		return true;
	for (int i = 0; i < N_SPARE; i++)
		if (fd == spare[i].fd)
			return true;
	return false;
}

/* A close_range(2) took ours: forget the numbers, which the program may now reuse. */
static void own_lost(unsigned first, unsigned last)
{
	if (dir_own.fd >= 0 && (unsigned)dir_own.fd >= first && (unsigned)dir_own.fd <= last)
		dir_own.fd = -1;
	for (int i = 0; i < N_SPARE; i++)
		if (spare[i].fd >= 0 && (unsigned)spare[i].fd >= first && (unsigned)spare[i].fd <= last)
			spare[i].fd = -1;
}

/* Moves @fd high (out of the program's way) and records what it is. */
static void own_park(struct own_fd *o, int fd)
{
	struct rlimit rl;
	struct stat st;
	long lim = 1024;
	int hi;

	o->fd = -1;
	if (fd < 0)
		return;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		lim = (long)rl.rlim_cur;
	/* Not at the top of a 1M limit: the kernel would grow the table to reach it. */
	if (lim > 4096)
		lim = 4096;
	if (lim > 16) {
		hi = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, lim - 8);
		if (hi >= 0) {
			syscall(SYS_close, fd);
			fd = hi;
		}
	}
	if (fstat(fd, &st) < 0) {
		syscall(SYS_close, fd);
		return;
	}
	o->fd = fd;
	o->dev = st.st_dev;
	o->ino = st.st_ino;
}

static void spares_release(void)
{
	for (int i = 0; i < N_SPARE; i++) {
		if (own_ok(&spare[i]))
			syscall(SYS_close, spare[i].fd);
		spare[i].fd = -1;
	}
}

static void spares_take(void)
{
	for (int i = 0; i < N_SPARE; i++)
		if (!own_ok(&spare[i]))
			own_park(&spare[i], (int)syscall(SYS_openat, AT_FDCWD, "/dev/null",
							O_RDONLY | O_CLOEXEC));
}

/* The report directory, reopened by its (absolute) path if the program closed ours. */
static int report_dirfd(void)
{
	if (!own_ok(&dir_own))
		own_park(&dir_own, (int)syscall(SYS_openat, AT_FDCWD, report_dir,
						O_PATH | O_DIRECTORY | O_CLOEXEC));
	return dir_own.fd;
}

static bool tracking(void)
{
	return mode != M_OFF && !guard;
}

static void lock_fd(int fd)
{
	char *l = &locks[(unsigned)fd % N_LOCKS].held;

	for (int spins = 0; __atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE); spins++)
		if (spins > 100)
			sched_yield(); /* the holder was preempted */
}

static void unlock_fd(int fd)
{
	__atomic_store_n(&locks[(unsigned)fd % N_LOCKS].held, 0, __ATOMIC_RELEASE);
}

static void get_id(int fd, bool *have, dev_t *dev, ino_t *ino)
{
	struct stat st;

	*have = fstat(fd, &st) == 0;
	*dev = *have ? st.st_dev : 0;
	*ino = *have ? st.st_ino : 0;
}

static void write_dump(const char *why);

/*
 * Stack walking. By frame pointers (the default): one load per frame, a
 * tenth of glibc's backtrace(), which unwinds through the DWARF tables and
 * cost 1 us per open+close pair here; a program built without frame
 * pointers gets shorter stacks (--unwind=dwarf restores backtrace()). Each
 * frame is checked to lie within this thread's stack, read once per thread.
 */
static __thread uintptr_t stack_lo __attribute__((tls_model("initial-exec")));
static __thread uintptr_t stack_hi __attribute__((tls_model("initial-exec")));

static void stack_bounds(void)
{
	pthread_attr_t attr;
	void *addr;
	size_t size;

	stack_hi = 1; /* tried: never again, even if it fails */
	if (pthread_getattr_np(pthread_self(), &attr) != 0)
		return;
	if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
		stack_lo = (uintptr_t)addr;
		stack_hi = (uintptr_t)addr + size;
	}
	pthread_attr_destroy(&attr);
}

static NOINLINE int stack_trace(void **bt, int max)
{
#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(RSC_PRELOAD_NO_FP)
	if (unwind_fp) {
		/* [fp] holds the caller's fp, [fp + 8] the return address (both ABIs). */
		uintptr_t fp = (uintptr_t)__builtin_frame_address(0), lo = fp;
		int n = 0;

		if (!stack_hi)
			stack_bounds();
		while (n < max && fp >= lo && fp % sizeof(void *) == 0 && fp >= stack_lo &&
		       fp + 2 * sizeof(void *) <= stack_hi) {
			void *ra = ((void **)fp)[1];

			if (!ra)
				break;
			bt[n++] = ra;
			lo = fp + 2 * sizeof(void *);
			fp = ((uintptr_t *)fp)[0];
		}
		/* As backtrace(): bt[0] is the return address into our caller. */
		return n;
	}
#endif
	{
		/* backtrace()'s first frame is this function: leave it out, as the walk does. */
		void *all[BT_DEPTH + 3];
		int n = backtrace(all, max + 1 <= BT_DEPTH + 3 ? max + 1 : BT_DEPTH + 3) - 1;

		if (n <= 0)
			return 0;
		memcpy(bt, all + 1, (size_t)n * sizeof(void *));
		return n;
	}
}

/*
 * Record a descriptor the program created. Called directly from each hook,
 * so the backtrace's frames 0 and 1 are this function and the hook.
 */
static NOINLINE void created(int fd, const char *how, void *ra)
{
	struct rec *r;
	void *bt[BT_DEPTH + 2];
	int n = 0;
	int saved = errno;
	bool was_open;

	if (fd < 0 || fd >= MAX_FDS || !tracking())
		return;
	guard++;
	if (want_bt)
		n = stack_trace(bt, BT_DEPTH + 2) - 2;
	r = &tab[fd];
	lock_fd(fd);
	was_open = r->state == R_OPEN;
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
	r->state = R_OPEN;
	r->how = how;
	r->close_ra = NULL;
	if (n > 0) {
		memcpy(r->bt, bt + 2, (size_t)n * sizeof(void *));
		r->bt_n = (unsigned char)n;
	} else {
		r->bt[0] = ra;
		r->bt_n = 1;
	}
	/*
	 * The identity costs an fstat per creation (a syscall: a third of an
	 * open+close pair); --no-backtrace skips it too. Without it, a number
	 * closed behind libc's back and reused unseen is blamed on its creator.
	 */
	if (want_bt)
		get_id(fd, &r->have_id, &r->dev, &r->ino);
	else
		r->have_id = false;
	unlock_fd(fd);
	if (!was_open && dump_above &&
	    __atomic_add_fetch(&live_fds, 1, __ATOMIC_RELAXED) > dump_above &&
	    __atomic_exchange_n(&dump_armed, 0, __ATOMIC_RELAXED))
		write_dump("above");
	guard--;
	errno = saved;
}

static NOINLINE void bad_close(int fd, bool have_snap, const struct rec *snap)
{
	struct bad_close *b;
	void *bt[BT_DEPTH + 2];
	int n;

	guard++;
	n = stack_trace(bt, BT_DEPTH + 2) - 2;
	pthread_mutex_lock(&bad_lock);
	if (n_bad == MAX_BAD) {
		bad_dropped++;
	} else {
		b = &bad[n_bad++];
		memset(b, 0, sizeof(*b));
		b->fd = fd;
		if (have_snap && snap->state != R_NONE) {
			b->seen_before = true;
			b->closed_by_us = snap->state == R_CLOSED;
			b->was = *snap;
		}
		if (n > 0) {
			memcpy(b->bt, bt + 2, (size_t)n * sizeof(void *));
			b->bt_n = (unsigned char)n;
		}
	}
	pthread_mutex_unlock(&bad_lock);
	guard--;
}

/*
 * A close the program made: a number another thread gets between the close
 * and our bookkeeping bumps seq, so the record is only cleared if it is still
 * the one that was closed.
 */
static void closing(int fd, int ret, int err, unsigned seq, const struct rec *snap,
		    void *ra)
{
	if (ret == 0) {
		if (fd >= 0 && fd < MAX_FDS) {
			/* A signal handler that opens or closes must not wait for this lock. */
			guard++;
			bool was_open = false;

			lock_fd(fd);
			if (tab[fd].seq == seq) {
				was_open = tab[fd].state == R_OPEN;
				tab[fd].state = R_CLOSED;
				tab[fd].close_ra = ra;
			}
			unlock_fd(fd);
			if (was_open && dump_above &&
			    __atomic_sub_fetch(&live_fds, 1, __ATOMIC_RELAXED) <= dump_above)
				__atomic_store_n(&dump_armed, 1, __ATOMIC_RELAXED);
			guard--;
		}
	} else if (err == EBADF) {
		bad_close(fd, fd >= 0 && fd < MAX_FDS, snap);
	}
}

static unsigned snap_rec(int fd, struct rec *snap)
{
	unsigned seq;

	if (fd < 0 || fd >= MAX_FDS)
		return 0;
	guard++;
	lock_fd(fd);
	*snap = tab[fd];
	seq = tab[fd].seq;
	unlock_fd(fd);
	guard--;
	return seq;
}

/* ---- the report ---- */

struct wbuf {
	int fd;
	size_t n;
	char buf[8192];
};

static void w_flush(struct wbuf *w)
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

static void w_putc(struct wbuf *w, char c)
{
	if (w->n == sizeof(w->buf))
		w_flush(w);
	w->buf[w->n++] = c;
}

static void w_str(struct wbuf *w, const char *s)
{
	while (*s)
		w_putc(w, *s++);
}

static void w_jstr(struct wbuf *w, const char *s)
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

static void w_long(struct wbuf *w, long long v)
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

static void w_key(struct wbuf *w, const char *key)
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
static void w_frame(struct wbuf *w, void *addr)
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

static ssize_t read_file(const char *path, char *buf, size_t len);

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
			for (char *c = line; *c; c++) {
				if (*c == '"' || *c == '\\')
					w_putc(w, '\\');
				if ((unsigned char)*c >= 0x20)
					w_putc(w, *c);
			}
			w_str(w, "\\n");
		}
		line = end + 1;
	}
	w_putc(w, '"');
}

static void w_bt(struct wbuf *w, const char *key, void *const *bt, int n)
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

static ssize_t read_link_fd(int fd, char *buf, size_t len)
{
	char path[40];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, buf, len - 1);
	buf[n < 0 ? 0 : n] = '\0';
	return n;
}

static ssize_t read_file(const char *path, char *buf, size_t len)
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
static int list_fds(int *out, int max, int skip_fd)
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
static int open_report(struct wbuf *w, char *path, size_t len, const char *prefix)
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

static void w_header(struct wbuf *w, const char *event, int sig)
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

static void w_finding_start(struct wbuf *w, bool *first, const char *kind, int fd)
{
	if (!*first)
		w_putc(w, ',');
	*first = false;
	w_str(w, "\n{\"kind\":");
	w_jstr(w, kind);
	w_key(w, "fd");
	w_long(w, fd);
}

static void w_target(struct wbuf *w, int fd, const char *target)
{
	struct stat st;
	bool dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);

	w_key(w, "target");
	w_jstr(w, target);
	w_key(w, "fdkind");
	w_jstr(w, fdkind_of(target, dir));
}

static void w_created(struct wbuf *w, const struct rec *r, const char *key)
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

/* A ring left open: list the direct descriptors still registered in it. */
static void w_direct(struct wbuf *w, bool *first, int fd, const char *target)
{
	char path[48];
	static char info[65536];
	struct fdinfo_basic fi;
	struct slot_list count = { 0 }, sl = { .w = w };

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (read_file(path, info, sizeof(info)) <= 0)
		return;
	fdinfo_parse(info, &fi, w_slot, &count); /* count only: w is NULL */
	if (count.n == 0)
		return;
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
}

static bool same_id(const struct rec *r, dev_t dev, ino_t ino, bool have)
{
	return !r->have_id || (have && r->dev == dev && r->ino == ino);
}

/* Was @fd open, as this very object, when this image (or this forked child) started? */
static bool pre_existing(int fd, bool have, dev_t dev, ino_t ino, bool with_fork)
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
static void w_ringscope_label(struct wbuf *w, int fd)
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
			if (strcmp(target, "anon_inode:[io_uring]") == 0)
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

static void report_exit(void)
{
	if (mode != M_ON || __atomic_exchange_n(&reported, 1, __ATOMIC_SEQ_CST))
		return;
	write_report("exit", 0);
}

static void on_fatal(int sig)
{
	/* Best effort: snprintf and the table walk are not strictly async-signal-safe. */
	if (mode == M_ON && !__atomic_exchange_n(&reported, 1, __ATOMIC_SEQ_CST))
		write_report("signal", sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- live dumps ---- */

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
static void write_dump(const char *why)
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

static void on_dump_signal(int sig)
{
	(void)sig;
	write_dump("signal");
}

/* An acquire failed for want of descriptors: dump, at most once a second. */
static void failed(const char *how)
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

static void foreign_slow(int fd, const char *call);

/* Inlined into each closing hook: a program without ringscope pays a load and a branch. */
static inline __attribute__((always_inline)) void foreign_check(int fd, const char *call)
{
	if (describe && foreign_mode != FOREIGN_OFF && fd >= 0 && tracking())
		foreign_slow(fd, call);
}

/*
 * @call (close, dup2, dup3, close_range, fclose) is about to close @fd: if a
 * live ringscope entry owns it, report at once, with the closer's backtrace
 * and the owner; under --foreign-close=abort, stop before the close happens.
 * The ledger answers from any thread at any moment; this runs before the
 * real call, so the owner is still the owner.
 */
static NOINLINE void foreign_slow(int fd, const char *call)
{
	static struct wbuf wb;
	char label[512], path[PATH_MAX + 64], target[PATH_MAX];
	void *bt[BT_DEPTH + 2];
	struct wbuf *w = &wb;
	bool first = true;
	int n, saved = errno;

	guard++;
	if (describe(fd, label, sizeof(label)) <= 0) {
		guard--;
		errno = saved;
		return;
	}
	n = stack_trace(bt, BT_DEPTH + 2) - 2;
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
		w_bt(w, "backtrace", bt + 2, n > 0 ? n : 0);
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
static void check_exec(const char *prog, char *path, size_t len)
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

static void exec_failed(const char *path)
{
	int saved = errno;

	if (path[0]) {
		guard++;
		unlinkat(report_dirfd(), path, 0);
		guard--;
	}
	errno = saved;
}

/* ---- setup ---- */

static void atfork_prepare(void)
{
	for (int i = 0; i < N_LOCKS; i++)
		lock_fd(i);
	pthread_mutex_lock(&bad_lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&bad_lock);
	for (int i = N_LOCKS - 1; i >= 0; i--)
		unlock_fd(i);
}

static void atfork_child(void)
{
	atfork_parent();
	if (mode == M_OFF)
		return;
	/* The parent reports its own EBADF closes and its own leaks. */
	n_bad = bad_dropped = 0;
	reported = 0;
	if (!follow) {
		mode = M_EXEC_ONLY;
		return;
	}
	guard++;
	for (int fd = 0; fd < MAX_FDS; fd++)
		tab[fd].forkbase = false;
	{
		static int fds[MAX_FDS];
		int n = list_fds(fds, MAX_FDS, -1);

		for (int i = 0; i < n; i++) {
			bool have;
			struct rec *r;

			if (fds[i] >= MAX_FDS)
				continue;
			r = &tab[fds[i]];
			if (r->inherited)
				continue; /* keeps its image-start identity */
			get_id(fds[i], &have, &r->idev, &r->iino);
			r->forkbase = have;
		}
	}
	guard--;
}

__attribute__((constructor)) static void preload_init(void)
{
	static const int fatal[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
				     SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE };
	static int fds[MAX_FDS];
	const char *dir = getenv("RINGSCOPE_AUDIT_DIR");
	const char *root = getenv("RINGSCOPE_AUDIT_ROOT");
	const char *bt = getenv("RINGSCOPE_AUDIT_BT");
	const char *fol = getenv("RINGSCOPE_AUDIT_FOLLOW");
	int n;

	if (!dir || !*dir || strlen(dir) >= sizeof(report_dir))
		return;
	follow = fol && strcmp(fol, "1") == 0;
	if (!follow && (!root || atoi(root) != getpid()))
		return; /* a child the user did not ask to follow */
	guard++;
	strcpy(report_dir, dir);
	want_bt = !(bt && strcmp(bt, "0") == 0);
	unwind_fp = !(bt && strcmp(bt, "dwarf") == 0);
	if (want_bt && unwind_fp)
		stack_bounds(); /* the main thread's reads /proc: not from inside a hook */
	n = list_fds(fds, MAX_FDS, -1);
	for (int i = 0; i < n; i++) {
		bool have;

		if (fds[i] >= MAX_FDS)
			continue;
		get_id(fds[i], &have, &tab[fds[i]].idev, &tab[fds[i]].iino);
		tab[fds[i]].inherited = have;
	}
	report_dirfd();
	spares_take();
	live_fds = n;
	if (getenv("RINGSCOPE_AUDIT_FOREIGN")) {
		const char *fm = getenv("RINGSCOPE_AUDIT_FOREIGN");

		foreign_mode = !strcmp(fm, "abort") ? FOREIGN_ABORT :
			       !strcmp(fm, "off")   ? FOREIGN_OFF :
						      FOREIGN_WARN;
	}
	if (getenv("RINGSCOPE_AUDIT_DUMPABOVE"))
		dump_above = atol(getenv("RINGSCOPE_AUDIT_DUMPABOVE"));
	if (getenv("RINGSCOPE_AUDIT_DUMPSIG"))
		dump_sig = atoi(getenv("RINGSCOPE_AUDIT_DUMPSIG"));
	/* Resolved now, from the constructor: the ledger is then called from hooks only. */
	describe = (describe_fn *)dlsym(RTLD_DEFAULT, "rsc_audit_describe_fd");
	if (dump_sig > 0 && dump_sig < NSIG) {
		struct sigaction old, sa = { .sa_handler = on_dump_signal, .sa_flags = SA_RESTART };

		sigemptyset(&sa.sa_mask);
		/* A program that handles this signal itself keeps it (and gets no dumps). */
		if (sigaction(dump_sig, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
		    !(old.sa_flags & SA_SIGINFO))
			sigaction(dump_sig, &sa, NULL);
	}
	if (want_bt) {
		/* The first backtrace() loads libgcc_s: do it now, not inside a hook. */
		void *tmp[2];
		backtrace(tmp, 2);
	}
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++) {
		struct sigaction old, sa = { .sa_handler = on_fatal, .sa_flags = SA_RESETHAND };

		if (sigaction(fatal[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
		    !(old.sa_flags & SA_SIGINFO))
			sigaction(fatal[i], &sa, NULL);
	}
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
	/*
	 * Handlers the program registers run before this one (atexit is LIFO),
	 * so descriptors its own cleanups close are closed by the time we look.
	 */
	atexit(report_exit);
	guard--;
	mode = M_ON;
}

/* Runs after the program's destructors when atexit did not (dlclose, odd exits). */
__attribute__((destructor)) static void preload_fini(void)
{
	report_exit();
}

/* ---- the hooks ---- */

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
