/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ringscope.h>

#include "audit.h"
#include "json.h"

static int cmp_fd(const void *a, const void *b)
{
	const struct fd_entry *x = a, *y = b;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

static void add_slot(void *arg, int slot, const char *path, int len)
{
	struct fd_entry *e = arg;
	struct direct_slot *d = realloc(e->direct, (size_t)(e->n_direct + 1) * sizeof(*d));

	if (!d)
		return;
	e->direct = d;
	d[e->n_direct].slot = slot;
	d[e->n_direct].target = strndup(path, (size_t)len);
	if (d[e->n_direct].target)
		e->n_direct++;
}

/*
 * Reads fdinfo/N relative to @info_dir, whole: a ring's lists every
 * registered file (1,000 long names pass 64 KiB). A descriptor closed
 * meanwhile leaves it empty.
 */
static void read_fdinfo(int info_dir, struct fd_entry *e)
{
	char name[16], *buf;
	struct fdinfo_basic fi;
	size_t n = 0, cap = 65536;
	ssize_t r;
	int fd;

	snprintf(name, sizeof(name), "%d", e->fd);
	fd = openat(info_dir, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	buf = malloc(cap);
	while (buf) {
		if (n == cap - 1) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				break; /* what was read so far */
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (!buf)
		return;
	buf[n] = '\0';
	fdinfo_parse(buf, &fi, add_slot, e);
	free(buf);
	e->flags = fi.flags;
	e->have_flags = fi.have_flags;
	e->pos = fi.pos;
	e->user_files = fi.user_files;
	if (!e->ino)
		e->ino = fi.ino;
}

/*
 * A zombie keeps its /proc entry but has no descriptor table left: its
 * empty fd/ directory would read as "0 open descriptors". State from
 * /proc/PID/stat, after the last ')' (the command name may hold one).
 */
static bool has_exited(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X' || p[2] == 'x');
}

int snapshot_take(pid_t pid, bool detail, struct snapshot *s)
{
	char path[64], link[PATH_MAX + 1];
	struct timespec ts;
	struct dirent *de;
	int dfd, info_dir = -1, ret = 0;
	DIR *d;

	memset(s, 0, sizeof(*s));
	s->pid = pid;
	clock_gettime(CLOCK_REALTIME, &ts);
	s->time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	dfd = dirfd(d);
	if (detail) {
		snprintf(path, sizeof(path), "/proc/%d/fdinfo", (int)pid);
		info_dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	for (;;) {
		struct fd_entry *e;
		struct stat st;
		ssize_t n;
		char *end;
		long fd;

		/* errno is readdir's verdict only if nothing in the last turn set it. */
		errno = 0;
		if (!(de = readdir(d))) {
			ret = -errno;
			break;
		}
		fd = strtol(de->d_name, &end, 10);
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end)
			continue;
		/* Our own handle on /proc/self/fd is not the process's. */
		if (pid == getpid() && (fd == dfd || fd == info_dir))
			continue;
		n = readlinkat(dfd, de->d_name, link, sizeof(link) - 1);
		if (n < 0 && errno == ENAMETOOLONG) /* a path longer than PATH_MAX */
			n = (ssize_t)strlen(strcpy(link, FD_TARGET_TOO_LONG));
		if (n < 0) {
			if (errno == ENOENT)
				continue; /* closed meanwhile */
			ret = -errno;
			break;
		}
		link[n] = '\0';
		if (s->n == s->cap) {
			int cap = s->cap ? s->cap * 2 : 32;
			struct fd_entry *nf = realloc(s->fds, (size_t)cap * sizeof(*nf));
			if (!nf) {
				ret = -ENOMEM;
				break;
			}
			s->fds = nf;
			s->cap = cap;
		}
		e = &s->fds[s->n];
		memset(e, 0, sizeof(*e));
		e->fd = (int)fd;
		e->pos = -1;
		e->user_files = -1;
		e->target = strdup(link);
		if (!e->target) {
			ret = -ENOMEM;
			break;
		}
		s->n++;
		if (!detail) {
			e->kind = fdkind_of(link, 0);
			continue;
		}
		if (fstatat(dfd, de->d_name, &st, 0) == 0) {
			e->dev = st.st_dev;
			e->ino = st.st_ino;
			e->kind = fdkind_of(link, st.st_mode);
		} else {
			e->kind = fdkind_of(link, 0);
		}
		if (info_dir >= 0)
			read_fdinfo(info_dir, e);
	}
	if (info_dir >= 0)
		close(info_dir);
	closedir(d);
	/* Checked after the listing: a process that exited meanwhile is not "0 descriptors". */
	if (!ret && has_exited(pid))
		ret = -ECHILD;
	if (ret < 0) {
		snapshot_free(s);
		return ret;
	}
	if (s->n > 0)
		qsort(s->fds, (size_t)s->n, sizeof(*s->fds), cmp_fd);
	return 0;
}

void snapshot_free(struct snapshot *s)
{
	for (int i = 0; i < s->n; i++) {
		for (int j = 0; j < s->fds[i].n_direct; j++)
			free(s->fds[i].direct[j].target);
		free(s->fds[i].direct);
		free(s->fds[i].target);
	}
	free(s->fds);
	memset(s, 0, sizeof(*s));
}

void snapshot_perror(pid_t pid, int err)
{
	if (err == -ENOENT || err == -ESRCH)
		errmsg("no such process: %d", (int)pid);
	else if (err == -ECHILD)
		errmsg("process %d has exited (a zombie its parent has not reaped): it holds no descriptors",
		       (int)pid);
	else if (err == -EACCES || err == -EPERM)
		errmsg("cannot read /proc/%d/fd: %s; reading another user's "
		       "descriptors and fdinfo needs ptrace permission "
		       "(the same user and a ptrace_scope that allows it, or CAP_SYS_PTRACE)",
		       (int)pid, rsc_strerror(err));
	else
		errmsg("cannot read the descriptors of process %d: %s", (int)pid,
		       rsc_strerror(err));
}

static const char *acc_mode(unsigned long long flags)
{
	switch (flags & O_ACCMODE) {
	case O_RDONLY: return "r";
	case O_WRONLY: return "w";
	default: return "rw";
	}
}

void snapshot_print_table(const struct snapshot *s, FILE *out)
{
	int nocloexec = 0;

	fprintf(out, "process %d: %d open descriptor%s\n", (int)s->pid, s->n,
		s->n == 1 ? "" : "s");
	fprintf(out, "%5s  %-10s %-9s %-10s %12s  %s\n", "FD", "KIND", "CLOEXEC",
		"FLAGS", "POS", "TARGET");
	for (int i = 0; i < s->n; i++) {
		const struct fd_entry *e = &s->fds[i];
		char flags[32] = "?", pos[24] = "-";
		const char *ce = "?";

		if (e->have_flags) {
			snprintf(flags, sizeof(flags), "%s 0%llo", acc_mode(e->flags), e->flags);
			ce = (e->flags & O_CLOEXEC) ? "yes" : "NO";
			if (!(e->flags & O_CLOEXEC))
				nocloexec++;
		}
		if (e->pos >= 0)
			snprintf(pos, sizeof(pos), "%lld", e->pos);
		fprintf(out, "%5d  %-10s %-9s %-10s %12s  %s\n", e->fd, e->kind, ce,
			flags, pos, vis(e->target));
		if (e->user_files >= 0) {
			fprintf(out, "%5s  %d direct descriptor%s registered (UserFiles: %d)\n",
				"", e->n_direct, e->n_direct == 1 ? "" : "s", e->user_files);
			for (int j = 0; j < e->n_direct; j++)
				fprintf(out, "%5s    slot %d: %s\n", "", e->direct[j].slot,
					vis(e->direct[j].target));
		}
	}
	if (nocloexec)
		fprintf(out, "%d descriptor%s without CLOEXEC: %s inherited by any program this process executes\n",
			nocloexec, nocloexec == 1 ? "" : "s", nocloexec == 1 ? "it is" : "they are");
}

void snapshot_print_json(const struct snapshot *s, FILE *out)
{
	fprintf(out, "{\"pid\":%d,\"time\":%.6f,\"count\":%d,\"fds\":[", (int)s->pid,
		s->time, s->n);
	for (int i = 0; i < s->n; i++) {
		const struct fd_entry *e = &s->fds[i];

		fprintf(out, "%s\n {\"fd\":%d,\"kind\":", i ? "," : "", e->fd);
		json_string(out, e->kind);
		fputs(",\"target\":", out);
		json_string(out, e->target);
		if (e->have_flags)
			fprintf(out, ",\"flags\":\"0%llo\",\"cloexec\":%s", e->flags,
				(e->flags & O_CLOEXEC) ? "true" : "false");
		fprintf(out, ",\"pos\":%lld,\"dev\":%llu,\"ino\":%llu", e->pos, e->dev, e->ino);
		if (e->user_files >= 0) {
			fprintf(out, ",\"user_files\":%d,\"direct\":[", e->user_files);
			for (int j = 0; j < e->n_direct; j++) {
				fprintf(out, "%s{\"slot\":%d,\"target\":", j ? "," : "",
					e->direct[j].slot);
				json_string(out, e->direct[j].target);
				fputc('}', out);
			}
			fputc(']', out);
		}
		fputc('}', out);
	}
	fputs("\n]}\n", out);
}

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

/* Kind strings are static: map a parsed one back to fdkind_of()'s. */
static const char *intern_kind(const char *k)
{
	static const char *const kinds[] = {
		"file", "dir", "socket", "pipe", "eventfd", "io_uring", "timerfd",
		"signalfd", "epoll", "inotify", "fanotify", "pidfd", "userfaultfd",
		"anon_inode", "memfd", "device", "other",
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (k && strcmp(k, kinds[i]) == 0)
			return kinds[i];
	return "other";
}

/* An integral JSON number within [lo, hi], or absent (@dflt). */
static int get_int(const struct jv *o, const char *key, double lo, double hi, double dflt,
		   double *out)
{
	const struct jv *v = json_get(o, key);

	*out = dflt;
	if (!v)
		return 0;
	if (v->t != J_NUM || !(v->num >= lo && v->num <= hi) || v->num != floor(v->num))
		return -1;
	*out = v->num;
	return 0;
}

/*
 * The same for a 64-bit field (dev, ino, pos), exactly: digits alone are read
 * as digits (an overlayfs or NFS inode number passes 2^53, and 2^63), any
 * other integral number within range through its double.
 */
static int get_u64(const struct jv *o, const char *key, unsigned long long hi,
		   unsigned long long *out)
{
	const struct jv *v = json_get(o, key);

	if (!v)
		return 0;
	if (v->t == J_NUM && v->is_u64) {
		if (v->u64 > hi)
			return -1;
		*out = v->u64;
		return 0;
	}
	if (v->t != J_NUM || !(v->num >= 0 && v->num < 18446744073709551616.0) ||
	    v->num != floor(v->num) || (unsigned long long)v->num > hi)
		return -1;
	*out = (unsigned long long)v->num;
	return 0;
}

static int bad_field(const char *path, int i, const char *key, const char *range)
{
	errmsg("%s: malformed snapshot: entry %d of \"fds\": \"%s\" must be an integer %s",
	       vis(path), i, key, range);
	return -EINVAL;
}

/* One entry of "fds"; returns 0 or -EINVAL after saying what is wrong. */
static int entry_from_json(const char *path, int i, const struct jv *o, struct fd_entry *e)
{
	const struct jv *pv;
	const char *fl;
	unsigned long long pos = 0, dev = 0, ino = 0;
	double fd;
	char *end;

	if (o->t != J_OBJ || !json_get(o, "fd"))
		return bad_field(path, i, "fd", "from 0 to 2147483647 (it is missing)");
	if (get_int(o, "fd", 0, 2147483647.0, -1, &fd) < 0)
		return bad_field(path, i, "fd", "from 0 to 2147483647");
	pv = json_get(o, "pos");
	if (pv && !(pv->t == J_NUM && pv->num == -1) && get_u64(o, "pos", INT64_MAX, &pos) < 0)
		return bad_field(path, i, "pos", "from -1 to 9223372036854775807");
	if (get_u64(o, "dev", UINT64_MAX, &dev) < 0)
		return bad_field(path, i, "dev", "from 0 to 18446744073709551615");
	if (get_u64(o, "ino", UINT64_MAX, &ino) < 0)
		return bad_field(path, i, "ino", "from 0 to 18446744073709551615");
	e->fd = (int)fd;
	e->pos = !pv || pv->num == -1 ? -1 : (long long)pos;
	e->dev = dev;
	e->ino = ino;
	e->kind = intern_kind(json_str(o, "kind", NULL));
	e->user_files = -1;
	if ((fl = json_str(o, "flags", NULL))) {
		errno = 0;
		e->flags = strtoull(fl, &end, 8);
		if (errno || end == fl || *end || fl[0] == '-') {
			errmsg("%s: malformed snapshot: entry %d of \"fds\": \"flags\" must be octal digits",
			       vis(path), i);
			return -EINVAL;
		}
		e->have_flags = true;
	}
	return 0;
}

int snapshot_from_json(const char *path, struct snapshot *s)
{
	char err[256];
	struct jv *root;
	const struct jv *fds;
	double pid, t;
	int ret = json_parse_file(path, JSON_MAX_SNAPSHOT, &root, err, sizeof(err));

	memset(s, 0, sizeof(*s));
	if (ret == -EINVAL || ret == -EFBIG) {
		errmsg("%s: %s: %s", vis(path), ret == -EFBIG ? "too large for a snapshot" : "malformed JSON",
		       err);
		return ret;
	}
	if (ret < 0) {
		errmsg("cannot read %s: %s", vis(path), rsc_strerror(ret));
		return ret;
	}
	fds = json_get(root, "fds");
	if (!fds || fds->t != J_ARR) {
		errmsg("%s: not a snapshot: no \"fds\" array (make one with '" PROG " snapshot --json PID')",
		       vis(path));
		json_free(root);
		return -EINVAL;
	}
	if (get_int(root, "pid", 0, 4194304, 0, &pid) < 0 ||
	    !(json_num(root, "time", 0) >= 0 && json_num(root, "time", 0) < 1e12)) {
		errmsg("%s: malformed snapshot: \"pid\" must be an integer from 0 to 4194304 and \"time\" a number of seconds",
		       vis(path));
		json_free(root);
		return -EINVAL;
	}
	t = json_num(root, "time", 0);
	s->pid = (pid_t)pid;
	s->time = t;
	s->fds = calloc((size_t)fds->n + 1, sizeof(*s->fds));
	if (!s->fds) {
		json_free(root);
		return -ENOMEM;
	}
	s->cap = fds->n;
	for (int i = 0; i < fds->n; i++) {
		struct fd_entry *e = &s->fds[s->n];

		if (entry_from_json(path, i, &fds->items[i], e) < 0) {
			json_free(root);
			snapshot_free(s);
			return -EINVAL;
		}
		e->target = dup_or_empty(json_str(&fds->items[i], "target", ""));
		if (!e->target) {
			json_free(root);
			snapshot_free(s);
			return -ENOMEM;
		}
		s->n++;
	}
	json_free(root);
	if (s->n > 0)
		qsort(s->fds, (size_t)s->n, sizeof(*s->fds), cmp_fd);
	/* One entry per number: diff merges two sorted lists and would misread a second one. */
	for (int i = 1; i < s->n; i++) {
		if (s->fds[i].fd == s->fds[i - 1].fd) {
			errmsg("%s: malformed snapshot: descriptor %d appears twice in \"fds\"", vis(path),
			       s->fds[i].fd);
			snapshot_free(s);
			return -EINVAL;
		}
	}
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	bool json = false;
	pid_t pid = getppid(); /* the shell or script that ran us */
	struct snapshot s;
	bool have_pid = false;
	int ret;

	static const struct option longs[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else if (c == 'h')
			return puts("usage: " PROG " snapshot [--json] [PID]") == EOF;
		else
			die_getopt("snapshot", c, argv, longs);
	}
	for (int i = optind; i < argc; i++) {
		if (have_pid)
			die_usage("snapshot: one PID at most");
		else if (parse_pid(argv[i], &pid) < 0)
			die_usage("snapshot: '%s' is not a process id", vis(argv[i]));
		else
			have_pid = true;
	}
	ret = snapshot_take(pid, true, &s);
	if (ret < 0) {
		snapshot_perror(pid, ret);
		return 1;
	}
	if (json)
		snapshot_print_json(&s, stdout);
	else
		snapshot_print_table(&s, stdout);
	snapshot_free(&s);
	return fflush(stdout) == 0 ? 0 : 1;
}
