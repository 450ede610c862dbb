/* SPDX-License-Identifier: MIT */
/* The per-descriptor records, their locks, the stack walk, and the preload's own descriptors. */
#include <execinfo.h>
#include <link.h>
#include <sched.h>
#include <sys/resource.h>
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

struct rec tab[MAX_FDS];
/* Spin locks, one cache line each: held for a few stores, and no futex in a hot path. */
static struct {
	char held;
	char pad[63];
} locks[N_LOCKS];
struct bad_close bad[MAX_BAD];
int n_bad, bad_dropped;
pthread_mutex_t bad_lock = PTHREAD_MUTEX_INITIALIZER;

volatile int mode;
bool want_bt = true, follow, unwind_fp = true;

/* The library's ownership ledger, if the program uses ringscope (never linked). */
describe_fn *describe;
int foreign_mode = FOREIGN_WARN;

/* Live dumps: on a signal, on EMFILE/ENFILE, above a count (0: never). */
int dump_sig;
long dump_above;
long live_fds;		/* descriptors seen created and not closed, plus inherited */
int dump_armed = 1;	/* atomic: re-armed when the count falls back */
int dump_busy;		/* atomic: one dump at a time */
long long last_emfile_ns = -1;
char report_dir[PATH_MAX];

/*
 * Descriptors the preload keeps for itself, parked at high numbers: the
 * report directory, resolved once at start-up (a relative TMPDIR and a
 * program that calls chdir cannot lose it), and spares closed just before a
 * report is written, so that a program that leaked up to EMFILE still gets
 * its report (the report needs /proc/self/fd and the report file).
 */
struct own_fd dir_own = { .fd = -1 };
struct own_fd spare[N_SPARE] = { [0 ... N_SPARE - 1] = { .fd = -1 } };
int reported; /* atomic: the exit report is written once */
__thread int guard __attribute__((tls_model("initial-exec")));

static bool own_ok(const struct own_fd *o)
{
	struct stat st;

	return o->fd >= 0 && fstat(o->fd, &st) == 0 && st.st_dev == o->dev && st.st_ino == o->ino;
}

bool is_own(int fd)
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
void own_lost(unsigned first, unsigned last)
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
	if (lim > 3) {
		/* Under a small limit, above stdio at least. */
		hi = (int)syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, lim > 16 ? lim - 8 : 3);
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

/*
 * The program lowered RLIMIT_NOFILE: ours parked above the new soft limit
 * would free, at the report, numbers it may no longer have (the report then
 * had no room, bug 98). Parked again under it, while the program has not
 * used the numbers there yet (it lowers its limit first, then leaks).
 */
void own_fit_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return;
	if (own_ok(&dir_own) && (rlim_t)dir_own.fd >= rl.rlim_cur)
		own_park(&dir_own, dir_own.fd);
	for (int i = 0; i < N_SPARE; i++)
		if (own_ok(&spare[i]) && (rlim_t)spare[i].fd >= rl.rlim_cur)
			own_park(&spare[i], spare[i].fd);
}

void spares_release(void)
{
	for (int i = 0; i < N_SPARE; i++) {
		if (own_ok(&spare[i]))
			syscall(SYS_close, spare[i].fd);
		spare[i].fd = -1;
	}
}

void spares_take(void)
{
	for (int i = 0; i < N_SPARE; i++)
		if (!own_ok(&spare[i]))
			own_park(&spare[i], (int)syscall(SYS_openat, AT_FDCWD, "/dev/null",
							O_RDONLY | O_CLOEXEC));
}

/* The report directory, reopened by its (absolute) path if the program closed ours. */
int report_dirfd(void)
{
	if (!own_ok(&dir_own))
		own_park(&dir_own, (int)syscall(SYS_openat, AT_FDCWD, report_dir,
						O_PATH | O_DIRECTORY | O_CLOEXEC));
	return dir_own.fd;
}

void lock_fd(int fd)
{
	char *l = &locks[(unsigned)fd % N_LOCKS].held;

	for (int spins = 0; __atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE); spins++)
		if (spins > 100)
			sched_yield(); /* the holder was preempted */
}

void unlock_fd(int fd)
{
	__atomic_store_n(&locks[(unsigned)fd % N_LOCKS].held, 0, __ATOMIC_RELEASE);
}

void get_id(int fd, bool *have, dev_t *dev, ino_t *ino)
{
	struct stat st;

	*have = fstat(fd, &st) == 0;
	*dev = *have ? st.st_dev : 0;
	*ino = *have ? st.st_ino : 0;
}


/*
 * Stack walking. By frame pointers (the default): one load per frame, a
 * tenth of glibc's backtrace(), which unwinds through the DWARF tables and
 * cost 1 us per open+close pair here; a program built without frame
 * pointers gets shorter stacks (--unwind=dwarf restores backtrace()). Each
 * frame is checked to lie within this thread's stack, read once per thread.
 */
static __thread uintptr_t stack_lo __attribute__((tls_model("initial-exec")));
static __thread uintptr_t stack_hi __attribute__((tls_model("initial-exec")));

void stack_bounds(void)
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

/* The preload's own code, found at start-up: frames there are not the program's. */
static uintptr_t self_lo, self_hi;

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t here = (uintptr_t)arg;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && here >= lo &&
		    here < lo + ph->p_memsz) {
			self_lo = lo;
			self_hi = lo + ph->p_memsz;
			return 1;
		}
	}
	return 0;
}

void self_range(void)
{
	dl_iterate_phdr(find_self, (void *)(uintptr_t)&self_range);
}

static int raw_trace(void **bt, int max)
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
		return n;
	}
#endif
	return backtrace(bt, max);
}

/*
 * The program's stack at this moment, innermost first, without the
 * preload's own frames (however the compiler inlined them).
 */
NOINLINE int stack_trace(void **bt, int max)
{
	void *all[BT_DEPTH + 8];
	int n = raw_trace(all, BT_DEPTH + 8), k = 0;

	while (k < n && (self_hi ? (uintptr_t)all[k] >= self_lo && (uintptr_t)all[k] < self_hi :
				   k < 3))
		k++;
	n -= k;
	if (n > max)
		n = max;
	if (n > 0)
		memcpy(bt, all + k, (size_t)n * sizeof(void *));
	return n > 0 ? n : 0;
}

/* Record a descriptor the program created; @ra is the hook's return address. */
NOINLINE void created(int fd, const char *how, void *ra)
{
	struct rec *r;
	void *bt[BT_DEPTH];
	int n = 0;
	int saved = errno;
	bool was_open;

	if (fd < 0 || fd >= MAX_FDS || !tracking())
		return;
	guard++;
	if (want_bt)
		n = stack_trace(bt, BT_DEPTH);
	r = &tab[fd];
	lock_fd(fd);
	was_open = r->state == R_OPEN;
	__atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
	r->state = R_OPEN;
	r->how = how;
	r->close_ra = NULL;
	if (n > 0) {
		memcpy(r->bt, bt, (size_t)n * sizeof(void *));
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

NOINLINE void bad_close(int fd, bool have_snap, const struct rec *snap)
{
	struct bad_close *b;
	void *bt[BT_DEPTH];
	int n;

	guard++;
	n = stack_trace(bt, BT_DEPTH);
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
			memcpy(b->bt, bt, (size_t)n * sizeof(void *));
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
void closing(int fd, int ret, int err, unsigned seq, const struct rec *snap,
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

unsigned snap_rec(int fd, struct rec *snap)
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
