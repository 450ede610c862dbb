/* SPDX-License-Identifier: MIT */
/* Start-up from the environment that run sets, and fork. */
#include <execinfo.h>
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

unsigned long long fatal_stand_in;

/* on_fatal as @sig's handler: it reports, then dies as the default would. */
int stand_in_start(int sig)
{
	struct sigaction sa = { .sa_handler = on_fatal, .sa_flags = SA_RESETHAND };
	int r;

	sigemptyset(&sa.sa_mask);
	guard++;
	r = sigaction(sig, &sa, NULL);
	guard--;
	if (r == 0)
		__atomic_fetch_or(&fatal_stand_in, 1ULL << sig, __ATOMIC_RELAXED);
	return r;
}

__attribute__((constructor)) static void preload_init(void)
{
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
	self_range();
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
	for (int sig = 1; sig < 64; sig++) {
		struct sigaction old;

		if (is_fatal_signal(sig) && sigaction(sig, NULL, &old) == 0 &&
		    old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO))
			stand_in_start(sig);
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
