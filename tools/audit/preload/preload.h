/* SPDX-License-Identifier: MIT */
/*
 * The LD_PRELOAD half of 'ringscope-audit run'. It interposes the libc
 * functions that create and close descriptors, keeps one record per
 * descriptor number (how it was made, the creation backtrace as raw return
 * addresses, st_dev/st_ino), and when the program ends (exit, return from
 * main, _exit, a fatal signal it can catch) or execs, it writes a JSON
 * report into $RINGSCOPE_AUDIT_DIR for the tool to symbolize and merge; while
 * the program runs, it reports foreign closes and writes dumps.
 *
 * The table is a hint, never the truth: io_uring (IORING_OP_OPENAT,
 * IORING_OP_CLOSE, ...) and raw syscalls create and close descriptors behind
 * libc's back, so the verdict at exit comes from /proc/self/fd, checked
 * against the recorded identity.
 *
 * It runs inside arbitrary programs: no libringscope, no stdio, allocation
 * only while reporting, and every hook passes straight through while the
 * preload itself is working (the per-thread guard).
 *
 * Files: table.c (records, locks, stack walk, the preload's own
 * descriptors), report.c (JSON reports at exit and exec), live.c (dumps and
 * foreign closes while the program runs), init.c (start-up, fork), hooks.c
 * (the interposed functions).
 */
#ifndef RINGSCOPE_AUDIT_PRELOAD_H
#define RINGSCOPE_AUDIT_PRELOAD_H

#include <dlfcn.h>
#include <signal.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EXPORT __attribute__((visibility("default")))
#define NOINLINE __attribute__((noinline))

#define MAX_FDS	 65536 /* numbers above this are judged from /proc alone */
#define BT_DEPTH 12
#define MAX_BAD	 256   /* EBADF closes kept for the report */
#define N_LOCKS	 64
#define N_SPARE	 2

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

/* A descriptor the preload keeps for itself, and what it was when parked. */
struct own_fd {
	int fd;
	dev_t dev;
	ino_t ino;
};

typedef int describe_fn(int fd, char *buf, size_t len);
enum { FOREIGN_OFF, FOREIGN_WARN, FOREIGN_ABORT };

/* A report being written: buffered, flushed with write(2). */
struct wbuf {
	int fd;
	size_t n;
	char buf[8192];
};

/* State (table.c). Hidden: the library is built with -fvisibility=hidden. */
extern struct rec tab[MAX_FDS];
extern struct bad_close bad[MAX_BAD];
extern int n_bad, bad_dropped;
extern pthread_mutex_t bad_lock;
extern volatile int mode;
extern bool want_bt, follow, unwind_fp;
extern describe_fn *describe;	/* the library's ownership ledger, or NULL */
extern int foreign_mode;
extern int dump_sig;
extern long dump_above, live_fds;
extern int dump_armed, dump_busy;
extern long long last_emfile_ns;
extern char report_dir[PATH_MAX];
extern struct own_fd dir_own, spare[N_SPARE];
extern int reported;
extern __thread int guard __attribute__((tls_model("initial-exec")));

/* table.c: the records, the locks, the stack walk, the preload's own descriptors */
bool is_own(int fd);
void own_lost(unsigned first, unsigned last);
void spares_release(void);
void own_fit_limit(void);
void spares_take(void);
int report_dirfd(void);
void lock_fd(int fd);
void unlock_fd(int fd);
void get_id(int fd, bool *have, dev_t *dev, ino_t *ino);
void stack_bounds(void);
/* Where the preload's code lies (for stack_trace); from the constructor. */
void self_range(void);
int stack_trace(void **bt, int max);
void created(int fd, const char *how, void *ra);
void bad_close(int fd, bool have_snap, const struct rec *snap);
void closing(int fd, int ret, int err, unsigned seq, const struct rec *snap,
		    void *ra);
unsigned snap_rec(int fd, struct rec *snap);

/* report.c: JSON reports at exit and exec */
void w_flush(struct wbuf *w);
void w_putc(struct wbuf *w, char c);
void w_str(struct wbuf *w, const char *s);
void w_jstr(struct wbuf *w, const char *s);
void w_long(struct wbuf *w, long long v);
void w_key(struct wbuf *w, const char *key);
void w_frame(struct wbuf *w, void *addr);
void w_bt(struct wbuf *w, const char *key, void *const *bt, int n);
ssize_t read_link_fd(int fd, char *buf, size_t len);
ssize_t read_file(const char *path, char *buf, size_t len);
int list_fds(int *out, int max, int skip_fd);
int open_report(struct wbuf *w, char *path, size_t len, const char *prefix);
void w_header(struct wbuf *w, const char *event, int sig);
void w_finding_start(struct wbuf *w, bool *first, const char *kind, int fd);
void w_target(struct wbuf *w, int fd, const char *target);
void w_created(struct wbuf *w, const struct rec *r, const char *key);
bool same_id(const struct rec *r, dev_t dev, ino_t ino, bool have);
bool pre_existing(int fd, bool have, dev_t dev, ino_t ino, bool with_fork);
void w_ringscope_label(struct wbuf *w, int fd);
void report_exit(void);
void on_fatal(int sig);
/*
 * The fatal signals whose default on_fatal() stands in for (bit per signal):
 * a program that sets SIG_DFL on one keeps the report (init.c, hooks.c).
 */
extern unsigned long long fatal_stand_in;
#define FATAL_SIGNALS                                                                  \
	(1ULL << SIGSEGV | 1ULL << SIGBUS | 1ULL << SIGFPE | 1ULL << SIGILL | 1ULL << SIGABRT | \
	 1ULL << SIGTERM | 1ULL << SIGINT | 1ULL << SIGHUP | 1ULL << SIGQUIT | 1ULL << SIGPIPE)
int stand_in_start(int sig);
static inline bool is_fatal_signal(int sig)
{
	return sig > 0 && sig < 64 && (FATAL_SIGNALS >> sig & 1);
}
static inline bool stands_in(int sig)
{
	return sig > 0 && sig < 64 && (__atomic_load_n(&fatal_stand_in, __ATOMIC_RELAXED) >> sig & 1);
}
static inline void stand_in_end(int sig)
{
	__atomic_fetch_and(&fatal_stand_in, ~(1ULL << sig), __ATOMIC_RELAXED);
}
void check_exec(const char *prog, char *path, size_t len);
void exec_failed(const char *path);

/* live.c: dumps and foreign closes while the program runs */
void write_dump(const char *why);
void on_dump_signal(int sig);
void failed(const char *how);
void foreign_slow(int fd, const char *call);

#define REAL(name)                                                             \
	({                                                                     \
		static __typeof__(name) *real_##name;                          \
		if (!real_##name)                                              \
			real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name); \
		real_##name;                                                   \
	})

/* Outside the preload's own work and once the constructor has run. */
static inline bool tracking(void)
{
	return mode != M_OFF && !guard;
}

/* Inlined into each closing hook: a program without ringscope pays a load and a branch. */
static inline __attribute__((always_inline)) void foreign_check(int fd, const char *call)
{
	if (describe && foreign_mode != FOREIGN_OFF && fd >= 0 && tracking())
		foreign_slow(fd, call);
}

#endif
