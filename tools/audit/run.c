/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ringscope.h>

#include "audit.h"
#include "json.h"
#include "suppress.h"
#include "symbolize.h"

#ifndef RSC_PRELOAD_PATH
#define RSC_PRELOAD_PATH "/usr/local/lib/ringscope/libringscope-preload.so"
#endif

struct run_opts {
	bool follow, json, backtrace, quiet, gen_supp, unwind_dwarf;
	int error_exitcode; /* -1: the command's own status */
	const char *output;
	const char **ignore; /* --ignore and --ignore-fd: as many as given */
	int n_ignore;
	int *ignore_fd;
	int n_ignore_fd;
	struct supp_set supp;
	const char *foreign; /* warn, abort, off */
	int dump_sig;	     /* 0: none */
	long dump_above;     /* 0: never */
};

struct report {
	char *name;
	struct jv *doc;
};

/* Names of the live files (dumps, foreign closes) already printed while the command ran. */
struct seen {
	char **names;
	int n;
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_report(const void *a, const void *b)
{
	const struct report *x = a, *y = b;
	return strcmp(x->name, y->name);
}

/* The symbol of a frame "func+0x1d (/path)" is "func". */
static bool frame_matches(const char *pat, const char *frame)
{
	char sym[256];
	size_t n = strcspn(frame, "+ (");

	if (n >= sizeof(sym))
		n = sizeof(sym) - 1;
	memcpy(sym, frame, n);
	sym[n] = '\0';
	return fnmatch(pat, sym, 0) == 0;
}

static bool bt_matches(const char *pat, const struct jv *bt)
{
	if (!bt || bt->t != J_ARR)
		return false;
	for (int i = 0; i < bt->n; i++)
		if (bt->items[i].t == J_STR && frame_matches(pat, bt->items[i].str))
			return true;
	return false;
}

static bool ignored(const struct run_opts *o, const struct jv *f)
{
	int fd = json_int(f, "fd", -1);
	const char *target = json_str(f, "target", NULL);
	const char *into = json_str(f, "into", NULL);

	for (int i = 0; i < o->n_ignore_fd; i++)
		if (o->ignore_fd[i] == fd)
			return true;
	for (int i = 0; i < o->n_ignore; i++) {
		const char *p = o->ignore[i];

		if ((target && fnmatch(p, target, 0) == 0) || (into && fnmatch(p, into, 0) == 0) ||
		    bt_matches(p, json_get(f, "backtrace")) ||
		    bt_matches(p, json_get(f, "creation_backtrace")))
			return true;
	}
	return false;
}

/* Read every @prefix* file the preload wrote into @dir, symbolized; returns the count or -errno. */
static int load_reports(const char *dir, const char *prefix, struct report **out)
{
	struct report *r = NULL;
	struct dirent *de;
	int n = 0;
	size_t pl = strlen(prefix);
	DIR *d = opendir(dir);

	*out = NULL;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char path[PATH_MAX + 512], err[256];
		struct jv *doc;
		struct report *nr;

		if (strncmp(de->d_name, prefix, pl) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (json_parse_file(path, JSON_MAX_REPORT, &doc, err, sizeof(err)) < 0) {
			/* A process killed while writing leaves a truncated report. */
			errmsg("warning: unreadable report %s skipped", vis(de->d_name));
			continue;
		}
		nr = realloc(r, (size_t)(n + 1) * sizeof(*r));
		if (!nr || sym_report(doc) < 0) {
			json_free(doc);
			break;
		}
		r = nr;
		r[n].name = strdup(de->d_name);
		r[n].doc = doc;
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(r, (size_t)n, sizeof(*r), cmp_report);
	*out = r;
	return n;
}

static void free_reports(struct report *r, int n)
{
	for (int k = 0; k < n; k++) {
		json_free(r[k].doc);
		free(r[k].name);
	}
	free(r);
}

static bool seen_has(const struct seen *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return true;
	return false;
}

static void seen_add(struct seen *s, const char *name)
{
	char **nn = realloc(s->names, (size_t)(s->n + 1) * sizeof(*nn));

	if (!nn)
		return;
	s->names = nn;
	if ((s->names[s->n] = strdup(name)))
		s->n++;
}

/* Dropped by --ignore, --ignore-fd or a suppression. */
static bool dropped(struct run_opts *o, const struct jv *f)
{
	return ignored(o, f) || supp_match(&o->supp, f);
}

static void print_one(struct run_opts *o, FILE *out, const struct jv *doc, const struct jv *f)
{
	finding_print(out, doc, f);
	if (o->gen_supp) {
		char *g = supp_generate(f);

		if (g)
			fputs(g, out);
		free(g);
	}
}

/*
 * While the command runs: print each new dump, and each foreign close the
 * moment its report appears (text output only; --json gathers them at the
 * end). Each file is read once.
 */
static void poll_live(const char *dir, struct run_opts *o, FILE *out, struct seen *seen,
		      const char *cmd)
{
	struct dirent *de;
	char **names = NULL;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		char **nn;

		if ((strncmp(de->d_name, "dump.", 5) && strncmp(de->d_name, "report.", 7)) ||
		    seen_has(seen, de->d_name) || !(nn = realloc(names, (size_t)(n + 1) * sizeof(*nn))))
			continue;
		names = nn;
		if ((names[n] = strdup(de->d_name)))
			n++;
	}
	closedir(d);
	if (n > 1)
		qsort(names, (size_t)n, sizeof(*names), cmp_name);
	for (int k = 0; k < n; k++) {
		char path[PATH_MAX + 512], err[256];
		struct jv *doc;
		const struct jv *fs;

		snprintf(path, sizeof(path), "%s/%s", dir, names[k]);
		if (json_parse_file(path, JSON_MAX_REPORT, &doc, err, sizeof(err)) < 0)
			continue; /* read again next time, or at the end */
		seen_add(seen, names[k]);
		if (!strncmp(names[k], "dump.", 5)) {
			sym_report(doc);
			dump_print(out, doc);
		} else if (!strcmp(json_str(doc, "event", ""), "foreign-close")) {
			sym_report(doc);
			fs = json_get(doc, "findings");
			for (int j = 0; fs && fs->t == J_ARR && j < fs->n; j++) {
				if (dropped(o, &fs->items[j]))
					continue;
				fprintf(out, "==" PROG "== live finding in %s:\n", vis(cmd));
				print_one(o, out, doc, &fs->items[j]);
			}
			fflush(out);
		} else {
			/* An exit or exec report: handled once the command has ended. */
			seen->n--;
			free(seen->names[seen->n]);
		}
		json_free(doc);
	}
	for (int k = 0; k < n; k++)
		free(names[k]);
	free(names);
}

/* The command `run` waits for: a SIGTERM or SIGHUP sent to us goes to it. */
static volatile pid_t forward_to;

static void forward_signal(int sig)
{
	if (forward_to > 0)
		kill(forward_to, sig);
}

/* A service manager stopping us stops the command, and still gets the report
 * (no SA_RESTART: the wait below sees EINTR and goes round). */
static void forward_stop_signals(pid_t pid)
{
	struct sigaction sa;

	forward_to = pid;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static void remove_dir(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d) {
		while ((de = readdir(d))) {
			if (de->d_name[0] != '.')
				unlinkat(dirfd(d), de->d_name, 0);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* @dir is still the directory made for the reports (@made): a command that
 * removed it (a test suite that cleans $TMPDIR) took its reports with it. */
static bool dir_intact(const char *dir, const struct stat *made)
{
	struct stat now;

	return stat(dir, &now) == 0 && now.st_dev == made->st_dev && now.st_ino == made->st_ino;
}

/* $RINGSCOPE_PRELOAD, else the installed one, else the build tree's beside us. */
static const char *find_preload(void)
{
	static char here[PATH_MAX + 64];
	const char *p = getenv("RINGSCOPE_PRELOAD");
	ssize_t n;
	char *slash;

	if (p && *p)
		return p;
	if (access(RSC_PRELOAD_PATH, R_OK) == 0)
		return RSC_PRELOAD_PATH;
	/* libtool runs the real binary from .libs/; the module lives there too. */
	n = readlink("/proc/self/exe", here, PATH_MAX);
	if (n > 0) {
		here[n] = '\0';
		slash = strrchr(here, '/');
		if (slash) {
			strcpy(slash, "/libringscope-preload.so");
			if (access(here, R_OK) == 0)
				return here;
			strcpy(slash, "/.libs/libringscope-preload.so");
			if (access(here, R_OK) == 0)
				return here;
		}
	}
	return RSC_PRELOAD_PATH;
}

/* The terminal's stop keys, and SIGPIPE: ignored by run while the command
 * runs, given back to the command as run found them. */
struct run_keys {
	struct sigaction intr, quit, pipe;
};

static void child_exec(char **cmd, const char *preload, const char *dir,
		       const struct run_opts *o, const struct run_keys *keys, int errpipe)
{
	char root[16], sig[16], above[24], *ld;
	const char *old = getenv("LD_PRELOAD");
	int err;

	snprintf(root, sizeof(root), "%d", (int)getpid());
	if (old && *old) {
		ld = malloc(strlen(preload) + strlen(old) + 2);
		if (ld)
			sprintf(ld, "%s:%s", preload, old);
	} else {
		ld = strdup(preload);
	}
	snprintf(sig, sizeof(sig), "%d", o->dump_sig);
	snprintf(above, sizeof(above), "%ld", o->dump_above);
	if (!ld || setenv("LD_PRELOAD", ld, 1) || setenv("RINGSCOPE_AUDIT_DIR", dir, 1) ||
	    setenv("RINGSCOPE_AUDIT_ROOT", root, 1) ||
	    setenv("RINGSCOPE_AUDIT_BT", !o->backtrace ? "0" : o->unwind_dwarf ? "dwarf" : "1", 1) ||
	    setenv("RINGSCOPE_AUDIT_FOLLOW", o->follow ? "1" : "0", 1) ||
	    setenv("RINGSCOPE_AUDIT_FOREIGN", o->foreign, 1) ||
	    setenv("RINGSCOPE_AUDIT_DUMPSIG", sig, 1) ||
	    setenv("RINGSCOPE_AUDIT_DUMPABOVE", above, 1)) {
		err = ENOMEM;
	} else {
		/* As run found them: a command started in a shell's background keeps them ignored. */
		sigaction(SIGINT, &keys->intr, NULL);
		sigaction(SIGQUIT, &keys->quit, NULL);
		sigaction(SIGPIPE, &keys->pipe, NULL);
		execvp(cmd[0], cmd);
		err = errno;
	}
	if (write(errpipe, &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

/* "SIGUSR2", "USR2", "12", "SIGRTMIN+3", "RTMAX-1", or "none" (0); -1 if not a signal. */
static int parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = {
		{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 },
		{ "USR2", SIGUSR2 }, { "TERM", SIGTERM }, { "CONT", SIGCONT }, { "WINCH", SIGWINCH },
		{ "PROF", SIGPROF }, { "VTALRM", SIGVTALRM }, { "URG", SIGURG }, { "ALRM", SIGALRM },
	};
	char *end;
	long v;

	if (!strcmp(s, "none"))
		return 0;
	if (!strncmp(s, "SIG", 3))
		s += 3;
	if (!strncmp(s, "RTMIN", 5) || !strncmp(s, "RTMAX", 5)) {
		int base = s[4] == 'N' ? SIGRTMIN : SIGRTMAX;

		v = 0;
		if (s[5]) {
			v = strtol(s + 5, &end, 10);
			if (*end || (s[5] != '+' && s[5] != '-'))
				return -1;
		}
		v += base;
		return v >= SIGRTMIN && v <= SIGRTMAX ? (int)v : -1;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i].name))
			return names[i].sig;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v >= NSIG || v == SIGKILL || v == SIGSTOP)
		return -1;
	/*
	 * A fault: a handler that returns runs the faulting instruction again,
	 * so a crash would dump for ever instead of ending.
	 */
	if (v == SIGSEGV || v == SIGBUS || v == SIGFPE || v == SIGILL)
		return -1;
	return (int)v;
}

static void parse_run_opts(int argc, char **argv, struct run_opts *o)
{
	enum { O_FOLLOW = 256, O_TRACE_CHILDREN, O_IGNORE, O_IGNORE_FD, O_EXIT, O_NOBT, O_JSON, O_OUTPUT,
	       O_SUPP, O_GEN, O_FOREIGN, O_DUMP_ON, O_DUMP_ABOVE, O_UNWIND };
	static const struct option longs[] = {
		{ "follow-forks", no_argument, NULL, O_FOLLOW },
		/* valgrind's name, with valgrind's value: --trace-children=yes|no */
		{ "trace-children", optional_argument, NULL, O_TRACE_CHILDREN },
		{ "ignore", required_argument, NULL, O_IGNORE },
		{ "ignore-fd", required_argument, NULL, O_IGNORE_FD },
		{ "error-exitcode", required_argument, NULL, O_EXIT },
		{ "no-backtrace", no_argument, NULL, O_NOBT },
		{ "unwind", required_argument, NULL, O_UNWIND },
		{ "json", no_argument, NULL, O_JSON },
		{ "output", required_argument, NULL, O_OUTPUT },
		{ "log-file", required_argument, NULL, O_OUTPUT }, /* valgrind's name */
		{ "quiet", no_argument, NULL, 'q' },
		{ "suppressions", required_argument, NULL, O_SUPP },
		{ "gen-suppressions", required_argument, NULL, O_GEN },
		{ "foreign-close", required_argument, NULL, O_FOREIGN },
		{ "dump-on", required_argument, NULL, O_DUMP_ON },
		{ "dump-above", required_argument, NULL, O_DUMP_ABOVE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char err[512];
	int c, li = 0;

	opterr = 0;
	/* '+': the command's own options are not ours. */
	while ((c = getopt_long(argc, argv, "+:qh", longs, &li)) != -1) {
		/* "--output -- CMD": the separator is no value (--output=-- still is one). */
		if (optarg && optarg == argv[optind - 1] && !strcmp(optarg, "--"))
			die_usage("run: option '%s' needs a value", vis(argv[optind - 2]));
		switch (c) {
		case O_FOLLOW:
			o->follow = true;
			break;
		case O_TRACE_CHILDREN:
			/* "--opt value" as for every option: a yes or no that follows is its value. */
			if (!optarg && optind < argc &&
			    (!strcmp(argv[optind], "yes") || !strcmp(argv[optind], "no")))
				optarg = argv[optind++];
			if (optarg && strcmp(optarg, "yes") && strcmp(optarg, "no"))
				die_usage("run: --trace-children wants yes or no, not '%s'", vis(optarg));
			o->follow = !optarg || !strcmp(optarg, "yes");
			break;
		case O_IGNORE: {
			const char **ni = realloc(o->ignore, (size_t)(o->n_ignore + 1) * sizeof(*ni));

			if (!ni)
				die_usage("run: out of memory for --ignore");
			o->ignore = ni;
			o->ignore[o->n_ignore++] = optarg;
			break;
		}
		case O_IGNORE_FD: {
			int *ni = realloc(o->ignore_fd, (size_t)(o->n_ignore_fd + 1) * sizeof(*ni));

			if (!ni)
				die_usage("run: out of memory for --ignore-fd");
			o->ignore_fd = ni;
			o->ignore_fd[o->n_ignore_fd++] =
				parse_number_opt("run", "--ignore-fd", optarg, 0, INT_MAX);
			break;
		}
		case O_EXIT:
			o->error_exitcode = parse_number_opt("run", "--error-exitcode", optarg, 0, 255);
			break;
		case O_NOBT:
			o->backtrace = false;
			break;
		case O_UNWIND:
			if (strcmp(optarg, "fp") && strcmp(optarg, "dwarf"))
				die_usage("run: --unwind wants fp or dwarf, not '%s'", vis(optarg));
			o->unwind_dwarf = !strcmp(optarg, "dwarf");
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_OUTPUT:
			if (!*optarg)
				die_usage("run: option '--%s' needs a value", longs[li].name);
			o->output = optarg;
			break;
		case 'q':
			o->quiet = true;
			break;
		case O_SUPP:
			if (supp_load(&o->supp, optarg, err, sizeof(err)) < 0)
				die_usage("run: --suppressions: %s", vis(err));
			break;
		case O_GEN:
			if (!strcmp(optarg, "yes") || !strcmp(optarg, "all"))
				o->gen_supp = true;
			else if (!strcmp(optarg, "no"))
				o->gen_supp = false;
			else
				die_usage("run: --gen-suppressions wants no, yes or all, not '%s'", vis(optarg));
			break;
		case O_FOREIGN:
			if (strcmp(optarg, "warn") && strcmp(optarg, "abort") && strcmp(optarg, "off"))
				die_usage("run: --foreign-close wants warn, abort or off, not '%s'", vis(optarg));
			o->foreign = optarg;
			break;
		case O_DUMP_ON:
			o->dump_sig = parse_signal(optarg);
			if (o->dump_sig < 0)
				die_usage("run: --dump-on wants a signal (SIGUSR2, USR2, 12, SIGRTMIN+1; not KILL, STOP or a fault: SEGV, BUS, FPE, ILL) or none, not '%s'",
					  vis(optarg));
			break;
		case O_DUMP_ABOVE:
			o->dump_above = parse_number_opt("run", "--dump-above", optarg, 1, INT_MAX);
			break;
		case 'h':
			printf("usage: " PROG " run [options] -- CMD [ARGS...]; see " PROG "(1)\n");
			exit(0);
		default:
			die_getopt("run", c, argv, longs);
		}
	}
}

/*
 * What cmd_run holds besides its reports, given back on every way out; an
 * early one also closes --output and removes the report directory (@dir, if
 * made), so that no path out of `run` leaks what it parsed or saw.
 */
static void run_free(struct run_opts *o, struct seen *seen)
{
	for (int k = 0; k < seen->n; k++)
		free(seen->names[k]);
	free(seen->names); /* kept when its last name was taken back (poll_live) */
	supp_free(&o->supp);
	free(o->ignore);
	free(o->ignore_fd);
}

static int run_fail(struct run_opts *o, struct seen *seen, FILE *out, const char *dir, int ret)
{
	if (dir)
		remove_dir(dir);
	if (out != stderr)
		fclose(out);
	run_free(o, seen);
	return ret;
}

int cmd_run(int argc, char **argv)
{
	/* The default dump signal: a real-time one that programs seldom use; theirs wins. */
	struct run_opts o = { .backtrace = true, .error_exitcode = -1, .foreign = "warn",
			      .dump_sig = SIGRTMAX - 3 };
	char dir[PATH_MAX];
	struct stat made;
	const char *tmp = getenv("TMPDIR"), *preload;
	struct report *reps = NULL, *dumps = NULL;
	struct seen seen = { 0 };
	int i, p[2], err = 0, status, count = 0, n_supp = 0, n_reps, n_dumps, ret, pfd;
	FILE *out = stderr;
	sigset_t stops, old_mask;
	struct run_keys keys;
	pid_t pid;
	ssize_t r;

	parse_run_opts(argc, argv, &o);
	i = optind;
	if (i >= argc)
		die_usage("run: no command given (run [options] -- CMD ARGS...)");
	preload = find_preload();
	if (access(preload, R_OK) < 0) {
		errmsg("cannot use the preload library %s: %s (set RINGSCOPE_PRELOAD to its path)",
		       vis(preload), rsc_strerror(-errno));
		return run_fail(&o, &seen, out, NULL, 127);
	}
	if (o.output) {
		out = fopen(o.output, "we");
		if (!out) {
			errmsg("cannot write %s: %s", vis(o.output), rsc_strerror(-errno));
			return run_fail(&o, &seen, stderr, NULL, 127);
		}
	}
	snprintf(dir, sizeof(dir), "%s/ringscope-audit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		errmsg("cannot create a directory for the reports (%s): %s", vis(dir),
		       rsc_strerror(-errno));
		return run_fail(&o, &seen, out, NULL, 127);
	}
	/* The preload opens it once at start-up, but an exec'd image needs a path that survives chdir. */
	if (dir[0] != '/') {
		char *abs = realpath(dir, NULL);

		if (!abs || strlen(abs) >= sizeof(dir)) {
			errmsg("cannot resolve the report directory %s: %s", vis(dir),
			       rsc_strerror(abs ? -ENAMETOOLONG : -errno));
			free(abs);
			return run_fail(&o, &seen, out, dir, 127);
		}
		strcpy(dir, abs);
		free(abs);
	}
	if (stat(dir, &made) < 0) {
		errmsg("cannot read the report directory %s: %s", vis(dir), rsc_strerror(-errno));
		return run_fail(&o, &seen, out, dir, 127);
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		errmsg("pipe: %s", rsc_strerror(-errno));
		return run_fail(&o, &seen, out, dir, 127);
	}
	fflush(NULL);
	/* Held until the handler that forwards them is in place (no moment in
	 * which a SIGTERM kills us and leaves the command running). */
	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGHUP);
	sigprocmask(SIG_BLOCK, &stops, &old_mask);
	/* The terminal's ^C goes to the command; we wait for it and report. Ignored
	 * before the fork: a SIGINT the moment the command starts must not end us
	 * and leave it running (the child takes them back before its exec). */
	sigaction(SIGINT, &(struct sigaction){ .sa_handler = SIG_IGN }, &keys.intr);
	sigaction(SIGQUIT, &(struct sigaction){ .sa_handler = SIG_IGN }, &keys.quit);
	/* A report reader gone (run ... 2>&1 | head) is a report not written: 127,
	 * and the report directory removed, not a death by SIGPIPE that leaves it. */
	sigaction(SIGPIPE, &(struct sigaction){ .sa_handler = SIG_IGN }, &keys.pipe);
	pid = fork();
	if (pid < 0) {
		errmsg("fork: %s", rsc_strerror(-errno));
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
		return run_fail(&o, &seen, out, dir, 127);
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
		close(p[0]);
		if (out != stderr)
			fclose(out);
		child_exec(argv + i, preload, dir, &o, &keys, p[1]);
	}
	forward_stop_signals(pid);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	close(p[1]);
	do
		r = read(p[0], &err, sizeof(err));
	while (r < 0 && errno == EINTR);
	close(p[0]);
	/* A pidfd (Linux 5.3) wakes us the moment the command ends; else a 50 ms nap. */
	pfd = r == sizeof(err) || o.json ? -1 : (int)syscall(SYS_pidfd_open, pid, 0);
	for (;;) {
		pid_t w = waitpid(pid, &status, r == sizeof(err) || o.json ? 0 : WNOHANG);
		struct timespec nap = { 0, 50 * 1000 * 1000 };
		struct pollfd pf = { .fd = pfd, .events = POLLIN };

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			errmsg("waitpid: %s", rsc_strerror(-errno));
			return run_fail(&o, &seen, out, dir, 127);
		}
		if (w == 0) {
			poll_live(dir, &o, out, &seen, argv[i]);
			if (pfd < 0 || poll(&pf, 1, 100) < 0)
				nanosleep(&nap, NULL);
		}
	}
	if (pfd >= 0)
		close(pfd);
	if (r == sizeof(err)) {
		errmsg("cannot start %s: %s", vis(argv[i]), rsc_strerror(-err));
		return run_fail(&o, &seen, out, dir, err == ENOENT ? 127 : 126);
	}
	ret = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	if (!dir_intact(dir, &made)) {
		/* A lost report never passes for a clean run. */
		errmsg("the report directory %s was removed while the command ran: its reports are lost",
		       vis(dir));
		return run_fail(&o, &seen, out, dir, 127);
	}
	if (!o.json)
		poll_live(dir, &o, out, &seen, argv[i]); /* what came just before the end */

	n_reps = load_reports(dir, "report.", &reps);
	if (n_reps < 0)
		n_reps = 0;
	n_dumps = o.json ? load_reports(dir, "dump.", &dumps) : 0;
	if (n_dumps < 0)
		n_dumps = 0;
	if (o.json) {
		fputs("{\"command\":[", out);
		for (int k = i; k < argc; k++) {
			if (k > i)
				fputc(',', out);
			json_string(out, argv[k]);
		}
		fprintf(out, "],\"status\":%d,\"findings\":[", ret);
	}
	for (int k = 0; k < n_reps; k++) {
		const struct jv *fs = json_get(reps[k].doc, "findings");
		bool live = seen_has(&seen, reps[k].name);

		for (int j = 0; fs && fs->t == J_ARR && j < fs->n; j++) {
			if (dropped(&o, &fs->items[j])) {
				n_supp++;
				continue;
			}
			if (o.json) {
				char *g = o.gen_supp ? supp_generate(&fs->items[j]) : NULL;

				fputs(count ? ",\n" : "\n", out);
				finding_json(out, reps[k].doc, &fs->items[j], g);
				free(g);
			} else if (!live) {
				if (count == 0 && !o.quiet)
					fprintf(out, "==" PROG "== findings for %s:\n", vis(argv[i]));
				print_one(&o, out, reps[k].doc, &fs->items[j]);
			}
			count++;
		}
	}
	if (o.json) {
		fprintf(out, "\n],\"count\":%d,\"suppressed\":%d,\"processes\":%d,", count, n_supp,
			n_reps);
		/* Nothing audited is not "nothing found": said in JSON too. */
		if (n_reps == 0) {
			fputs("\"warning\":", out);
			json_string(out, "no report: the command did not load the preload library "
					 "(a static or setuid program?) or did not exit");
			fputc(',', out);
		}
		fputs("\"dumps\":[", out);
		for (int k = 0; k < n_dumps; k++) {
			fputs(k ? ",\n" : "\n", out);
			json_write_except(out, dumps[k].doc, "maps");
		}
		fputs("]}\n", out);
	} else if (!o.quiet) {
		fprintf(out, "==" PROG "== %d finding%s", count, count == 1 ? "" : "s");
		if (n_supp)
			fprintf(out, " (%d suppressed)", n_supp);
		fprintf(out, " (%d process report%s), command exited with %d\n", n_reps,
			n_reps == 1 ? "" : "s", ret);
	}
	if (n_reps == 0 && !o.json)
		fprintf(out, "==" PROG "== warning: no report: the command did not load %s "
			     "(a static or setuid program?) or did not exit\n", vis(preload));
	free_reports(reps, n_reps);
	free_reports(dumps, n_dumps);
	run_free(&o, &seen);
	remove_dir(dir);
	/* A report lost to a full disk or a dead stderr must not pass for a clean run. */
	if (out == stderr ? fflush(out) != 0 || ferror(out) : fclose(out) != 0) {
		if (out != stderr)
			errmsg("cannot write %s: %s", vis(o.output), rsc_strerror(-errno));
		return 127;
	}
	if (count > 0 && o.error_exitcode >= 0)
		return o.error_exitcode;
	return ret;
}
