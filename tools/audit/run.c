/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ringscope.h>

#include "audit.h"
#include "json.h"

#ifndef RSC_PRELOAD_PATH
#define RSC_PRELOAD_PATH "/usr/local/lib/ringscope/libringscope-preload.so"
#endif

#define MAX_RULES 64

struct run_opts {
	bool follow, json, backtrace;
	int error_exitcode; /* -1: the command's own status */
	const char *output;
	const char *ignore[MAX_RULES];
	int n_ignore;
	int ignore_fd[MAX_RULES];
	int n_ignore_fd;
};

struct report {
	char *name;
	struct jv *doc;
};

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
	int fd = (int)json_num(f, "fd", -1);
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

static void print_bt(FILE *out, const char *title, const struct jv *bt)
{
	if (!bt || bt->t != J_ARR)
		return;
	if (bt->n == 0) {
		fprintf(out, "    %s: (no backtrace)\n", title);
		return;
	}
	fprintf(out, "    %s:\n", title);
	for (int i = 0; i < bt->n; i++)
		if (bt->items[i].t == J_STR)
			fprintf(out, "      #%d %s\n", i, vis(bt->items[i].str));
}

static void print_finding(FILE *out, const struct jv *doc, const struct jv *f)
{
	const char *kind = json_str(f, "kind", "?");
	int fd = (int)json_num(f, "fd", -1);
	const char *target = vis(json_str(f, "target", "?"));
	const char *fdkind = vis(json_str(f, "fdkind", "?"));
	const char *how = json_str(f, "created_by", NULL);
	const char *note = json_str(f, "note", NULL);
	const char *prog = vis(json_str(doc, "exe", json_str(doc, "argv0", "?")));
	int pid = (int)json_num(doc, "pid", 0);

	if (!strcmp(kind, "leaked")) {
		fprintf(out, "leaked: fd %d -> %s (%s), open at exit of pid %d (%s)\n", fd, target,
			fdkind, pid, prog);
		fprintf(out, "    created by %s()\n", vis(how ? how : "?"));
		print_bt(out, "created at", json_get(f, "backtrace"));
	} else if (!strcmp(kind, "leaked-unseen")) {
		fprintf(out, "leaked: fd %d -> %s (%s), open at exit of pid %d (%s)\n", fd, target,
			fdkind, pid, prog);
		fprintf(out, "    never seen created: %s\n", vis(note ? note : "?"));
		if (json_str(f, "ringscope", NULL))
			fprintf(out, "    held by %s\n", vis(json_str(f, "ringscope", "")));
	} else if (!strcmp(kind, "direct-registered")) {
		const struct jv *slots = json_get(f, "slots");

		fprintf(out, "direct descriptors: ring fd %d still has %d registered file%s at exit of pid %d (%s)\n",
			fd, (int)json_num(f, "count", 0), json_num(f, "count", 0) == 1 ? "" : "s",
			pid, prog);
		for (int i = 0; slots && slots->t == J_ARR && i < slots->n; i++)
			fprintf(out, "    slot %d -> %s\n", (int)json_num(&slots->items[i], "slot", -1),
				vis(json_str(&slots->items[i], "target", "?")));
	} else if (!strcmp(kind, "double-close")) {
		fprintf(out, "double close: close(%d) failed with EBADF in pid %d (%s)\n", fd, pid,
			prog);
		print_bt(out, "closed again at", json_get(f, "backtrace"));
		if (json_str(f, "closed_before_at", NULL))
			fprintf(out, "    closed before at %s\n", vis(json_str(f, "closed_before_at", "")));
		if (note)
			fprintf(out, "    %s\n", vis(note));
		if (how)
			fprintf(out, "    created by %s()\n", vis(how));
		print_bt(out, "created at", json_get(f, "creation_backtrace"));
	} else if (!strcmp(kind, "close-unopened")) {
		fprintf(out, "bad close: close(%d) failed with EBADF, a descriptor that was never open, in pid %d (%s)\n",
			fd, pid, prog);
		if (note)
			fprintf(out, "    %s\n", vis(note));
		print_bt(out, "at", json_get(f, "backtrace"));
	} else if (!strcmp(kind, "exec-leak")) {
		fprintf(out, "exec leak (CWE-403): fd %d -> %s (%s) has no CLOEXEC and crossed exec from pid %d (%s) into %s\n",
			fd, target, fdkind, pid, prog, vis(json_str(f, "into", "?")));
		if (how) {
			fprintf(out, "    created by %s()\n", vis(how));
			print_bt(out, "created at", json_get(f, "backtrace"));
		} else {
			fprintf(out, "    never seen created (io_uring or a raw syscall)\n");
		}
	} else {
		fprintf(out, "%s: fd %d in pid %d\n", vis(kind), fd, pid);
	}
}

static void json_finding(FILE *out, const struct jv *doc, const struct jv *f)
{
	fprintf(out, "{\"pid\":%d,\"exe\":", (int)json_num(doc, "pid", 0));
	json_string(out, json_str(doc, "exe", json_str(doc, "argv0", "?")));
	fputs(",\"event\":", out);
	json_string(out, json_str(doc, "event", "?"));
	for (int i = 0; i < f->n; i++) {
		fputc(',', out);
		json_string(out, f->keys[i]);
		fputc(':', out);
		json_write(out, &f->items[i]);
	}
	fputc('}', out);
}

/* Read every report the preload wrote into @dir; returns the count or -errno. */
static int load_reports(const char *dir, struct report **out)
{
	struct report *r = NULL;
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	*out = NULL;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char path[PATH_MAX + 512], err[256];
		struct jv *doc;
		struct report *nr;

		if (strncmp(de->d_name, "report.", 7) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (json_parse_file(path, JSON_MAX_REPORT, &doc, err, sizeof(err)) < 0) {
			/* A process killed while writing leaves a truncated report. */
			errmsg("warning: unreadable report %s skipped", de->d_name);
			continue;
		}
		nr = realloc(r, (size_t)(n + 1) * sizeof(*r));
		if (!nr) {
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

static int parse_int(const char *s, int *v)
{
	char *end;
	long l;

	errno = 0;
	l = strtol(s, &end, 10);
	if (errno || end == s || *end || l < INT_MIN || l > INT_MAX)
		return -1;
	*v = (int)l;
	return 0;
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

static void child_exec(char **cmd, const char *preload, const char *dir,
		       const struct run_opts *o, int errpipe)
{
	char root[16], *ld;
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
	if (!ld || setenv("LD_PRELOAD", ld, 1) || setenv("RINGSCOPE_AUDIT_DIR", dir, 1) ||
	    setenv("RINGSCOPE_AUDIT_ROOT", root, 1) ||
	    setenv("RINGSCOPE_AUDIT_BT", o->backtrace ? "1" : "0", 1) ||
	    setenv("RINGSCOPE_AUDIT_FOLLOW", o->follow ? "1" : "0", 1)) {
		err = ENOMEM;
	} else {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		execvp(cmd[0], cmd);
		err = errno;
	}
	if (write(errpipe, &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = { .backtrace = true, .error_exitcode = -1 };
	char dir[PATH_MAX];
	const char *tmp = getenv("TMPDIR"), *preload;
	struct report *reps = NULL;
	int i, p[2], err = 0, status, count = 0, n_reps, ret;
	FILE *out = stderr;
	pid_t pid;
	ssize_t r;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--")) {
			i++;
			break;
		} else if (!strcmp(a, "--follow-forks")) {
			o.follow = true;
		} else if (!strcmp(a, "--json")) {
			o.json = true;
		} else if (!strcmp(a, "--no-backtrace")) {
			o.backtrace = false;
		} else if (!strcmp(a, "--ignore") || !strcmp(a, "--ignore-fd") ||
			   !strcmp(a, "--error-exitcode") || !strcmp(a, "--output")) {
			if (i + 1 >= argc)
				die_usage("run: %s needs a value", a);
			const char *v = argv[++i];
			int n;

			if (!strcmp(a, "--ignore")) {
				if (o.n_ignore == MAX_RULES)
					die_usage("run: at most %d --ignore", MAX_RULES);
				o.ignore[o.n_ignore++] = v;
			} else if (!strcmp(a, "--output")) {
				o.output = v;
			} else if (parse_int(v, &n) < 0 || n < 0 ||
				   (!strcmp(a, "--error-exitcode") && n > 255)) {
				die_usage("run: %s wants a number%s, not '%s'", a,
					  strcmp(a, "--ignore-fd") ? " from 0 to 255" : "", v);
			} else if (!strcmp(a, "--ignore-fd")) {
				if (o.n_ignore_fd == MAX_RULES)
					die_usage("run: at most %d --ignore-fd", MAX_RULES);
				o.ignore_fd[o.n_ignore_fd++] = n;
			} else {
				o.error_exitcode = n;
			}
		} else if (a[0] == '-') {
			die_usage("run: unknown option '%s'", a);
		} else {
			break;
		}
	}
	if (i >= argc)
		die_usage("run: no command given (run [options] -- CMD ARGS...)");
	preload = find_preload();
	if (access(preload, R_OK) < 0) {
		errmsg("cannot use the preload library %s: %s (set RINGSCOPE_PRELOAD to its path)",
		       preload, rsc_strerror(-errno));
		return 127;
	}
	if (o.output) {
		out = fopen(o.output, "we");
		if (!out) {
			errmsg("cannot write %s: %s", o.output, rsc_strerror(-errno));
			return 127;
		}
	}
	snprintf(dir, sizeof(dir), "%s/ringscope-audit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		errmsg("cannot create a directory for the reports (%s): %s", dir,
		       rsc_strerror(-errno));
		return 127;
	}
	/* The preload opens it once at start-up, but an exec'd image needs a path that survives chdir. */
	if (dir[0] != '/') {
		char *abs = realpath(dir, NULL);

		if (!abs || strlen(abs) >= sizeof(dir)) {
			errmsg("cannot resolve the report directory %s: %s", dir,
			       rsc_strerror(abs ? -ENAMETOOLONG : -errno));
			free(abs);
			remove_dir(dir);
			return 127;
		}
		strcpy(dir, abs);
		free(abs);
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		errmsg("pipe: %s", rsc_strerror(-errno));
		remove_dir(dir);
		return 127;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		errmsg("fork: %s", rsc_strerror(-errno));
		remove_dir(dir);
		return 127;
	}
	if (pid == 0) {
		close(p[0]);
		if (out != stderr)
			fclose(out);
		child_exec(argv + i, preload, dir, &o, p[1]);
	}
	/* The terminal's ^C goes to the command; we wait for it and report. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	close(p[1]);
	do
		r = read(p[0], &err, sizeof(err));
	while (r < 0 && errno == EINTR);
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			errmsg("waitpid: %s", rsc_strerror(-errno));
			remove_dir(dir);
			return 127;
		}
	}
	if (r == sizeof(err)) {
		errmsg("cannot start %s: %s", vis(argv[i]), rsc_strerror(-err));
		remove_dir(dir);
		return err == ENOENT ? 127 : 126;
	}
	ret = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

	n_reps = load_reports(dir, &reps);
	if (n_reps < 0)
		n_reps = 0;
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

		for (int j = 0; fs && fs->t == J_ARR && j < fs->n; j++) {
			if (ignored(&o, &fs->items[j]))
				continue;
			if (o.json) {
				fputs(count ? ",\n" : "\n", out);
				json_finding(out, reps[k].doc, &fs->items[j]);
			} else {
				if (count == 0)
					fprintf(out, "==" PROG "== findings for %s:\n", vis(argv[i]));
				print_finding(out, reps[k].doc, &fs->items[j]);
			}
			count++;
		}
	}
	if (o.json)
		fprintf(out, "\n],\"count\":%d,\"processes\":%d}\n", count, n_reps);
	else
		fprintf(out, "==" PROG "== %d finding%s (%d process report%s), command exited with %d\n",
			count, count == 1 ? "" : "s", n_reps, n_reps == 1 ? "" : "s", ret);
	if (n_reps == 0 && !o.json)
		fprintf(out, "==" PROG "== warning: no report: the command did not load %s "
			     "(a static or setuid program?) or did not exit\n", preload);
	for (int k = 0; k < n_reps; k++) {
		json_free(reps[k].doc);
		free(reps[k].name);
	}
	free(reps);
	remove_dir(dir);
	if (out != stderr && fclose(out) != 0)
		errmsg("cannot write %s", o.output);
	if (count > 0 && o.error_exitcode >= 0)
		return o.error_exitcode;
	return ret;
}
