/* SPDX-License-Identifier: MIT */
/*
 * Live dumps: what an audited process holds right now, grouped by creation
 * site with the most common first (as Android's fdtrack does), and
 * 'dump PID', which asks a process running under 'run' for one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ringscope.h>

#include "audit.h"
#include "json.h"
#include "symbolize.h"

struct site {
	char *key;
	const struct jv *example; /* a descriptor of this site */
	int count;
	int fds[8];
};

static int cmp_site(const void *a, const void *b)
{
	const struct site *x = a, *y = b;

	if (x->count != y->count)
		return y->count - x->count;
	return strcmp(x->key, y->key);
}

/* What makes two descriptors "the same site": creator and frames, or the owner. */
static char *site_key(const struct jv *e)
{
	const struct jv *bt = json_get(e, "backtrace");
	size_t len = 64;
	char *k;

	if (json_bool(e, "inherited", false))
		return strdup("\001inherited");
	if (!bt || bt->t != J_ARR) {
		const char *rs = json_str(e, "ringscope", NULL);
		char *o = malloc(strlen(rs ? rs : "") + 16);

		if (o)
			sprintf(o, "\002%s", rs ? rs : "");
		return o;
	}
	len += strlen(json_str(e, "created_by", ""));
	for (int i = 0; i < bt->n; i++)
		len += (bt->items[i].t == J_STR ? strlen(bt->items[i].str) : 0) + 1;
	k = malloc(len);
	if (!k)
		return NULL;
	strcpy(k, json_str(e, "created_by", ""));
	for (int i = 0; i < bt->n; i++) {
		strcat(k, "\n");
		if (bt->items[i].t == J_STR)
			strcat(k, bt->items[i].str);
	}
	return k;
}

static const char *reason_text(const char *r)
{
	if (!strcmp(r, "signal"))
		return "on its dump signal";
	if (!strcmp(r, "EMFILE"))
		return "an acquire failed with EMFILE (per-process descriptor limit)";
	if (!strcmp(r, "ENFILE"))
		return "an acquire failed with ENFILE (system-wide file limit)";
	if (!strcmp(r, "above"))
		return "the count crossed --dump-above";
	return r;
}

void dump_print(FILE *out, const struct jv *doc)
{
	const struct jv *fds = json_get(doc, "fds");
	struct site *sites = NULL;
	int n_sites = 0, n = fds && fds->t == J_ARR ? fds->n : 0;

	for (int i = 0; i < n; i++) {
		char *k = site_key(&fds->items[i]);
		int j;

		if (!k)
			continue;
		for (j = 0; j < n_sites && strcmp(sites[j].key, k); j++)
			;
		if (j == n_sites) {
			struct site *ns = realloc(sites, (size_t)(n_sites + 1) * sizeof(*ns));

			if (!ns) {
				free(k);
				continue;
			}
			sites = ns;
			memset(&sites[j], 0, sizeof(sites[j]));
			sites[j].key = k;
			sites[j].example = &fds->items[i];
			n_sites++;
		} else {
			free(k);
		}
		if (sites[j].count < 8)
			sites[j].fds[sites[j].count] = json_int(&fds->items[i], "fd", -1);
		sites[j].count++;
	}
	if (n_sites)
		qsort(sites, (size_t)n_sites, sizeof(*sites), cmp_site);
	fprintf(out, "==" PROG "== dump of pid %d (%s), %s: %d open descriptor%s, %d site%s\n",
		json_int(doc, "pid", 0), vis(json_str(doc, "exe", json_str(doc, "argv0", "?"))),
		vis(reason_text(json_str(doc, "reason", "?"))), n, n == 1 ? "" : "s", n_sites,
		n_sites == 1 ? "" : "s");
	for (int i = 0; i < n_sites; i++) {
		const struct site *s = &sites[i];
		const struct jv *e = s->example, *bt = json_get(e, "backtrace");

		if (s->key[0] == '\001')
			fprintf(out, "  %d inherited from the parent", s->count);
		else if (s->key[0] == '\002')
			fprintf(out, "  %d never seen created (io_uring or a raw syscall)%s%s", s->count,
				json_str(e, "ringscope", NULL) ? ", held by " : "",
				vis(json_str(e, "ringscope", "")));
		else
			fprintf(out, "  %d created by %s()", s->count, vis(json_str(e, "created_by", "?")));
		fprintf(out, ", e.g. %s (%s); fd%s", vis(json_str(e, "target", "?")),
			vis(json_str(e, "fdkind", "?")), s->count == 1 ? "" : "s");
		for (int j = 0; j < s->count && j < 8; j++)
			fprintf(out, "%s%d", j ? ", " : " ", s->fds[j]);
		fputs(s->count > 8 ? ", ...\n" : "\n", out);
		for (int j = 0; bt && bt->t == J_ARR && j < bt->n; j++)
			if (bt->items[j].t == J_STR)
				fprintf(out, "      #%d %s\n", j, vis(bt->items[j].str));
	}
	for (int i = 0; i < n_sites; i++)
		free(sites[i].key);
	free(sites);
	fflush(out);
}

/* @key's value in /proc/PID/environ (the environment the process started with). */
static int env_of(pid_t pid, const char *key, char *val, size_t len)
{
	char path[64], *buf = NULL;
	size_t cap = 0, n = 0, kl = strlen(key);
	ssize_t r;
	int fd, ret = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do {
		if (n + 4096 > cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);
			if (!nb || cap > (16u << 20)) {
				free(nb ? nb : buf);
				close(fd);
				return -ENOMEM;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r > 0)
			n += (size_t)r;
	} while (r > 0);
	close(fd);
	if (r < 0) {
		free(buf);
		return -EACCES;
	}
	for (size_t i = 0; buf && i < n; i += strlen(buf + i) + 1) {
		buf[n] = '\0';
		if (strncmp(buf + i, key, kl) == 0 && buf[i + kl] == '=') {
			snprintf(val, len, "%s", buf + i + kl + 1);
			ret = 0;
			break;
		}
	}
	free(buf);
	return ret;
}

/*
 * Whether @pid has a handler for @sig (SigCgt in /proc/PID/status): 1, 0,
 * or -errno. A process with run's environment but no preload in it (a
 * child run does not follow, a static or setuid program) has none, and the
 * signal's default action would kill it.
 */
static int catches(pid_t pid, int sig)
{
	char path[64], buf[4096], *p;
	unsigned long long mask;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	p = strstr(buf, "\nSigCgt:");
	if (!p || sscanf(p + 8, "%llx", &mask) != 1)
		return -EIO;
	return sig >= 1 && sig <= 64 && (mask >> (sig - 1) & 1);
}

/* The newest dump.*.<pid>.*.json in @dir not older than @after (a name), or "". */
static void newest_dump(const char *dir, pid_t pid, char *name, size_t len)
{
	char tag[24];
	struct dirent *de;
	DIR *d = opendir(dir);

	name[0] = '\0';
	if (!d)
		return;
	snprintf(tag, sizeof(tag), ".%010d.", (int)pid);
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "dump.", 5) == 0 && strstr(de->d_name, tag) &&
		    strcmp(de->d_name, name) > 0 && strlen(de->d_name) < len)
			strcpy(name, de->d_name);
	closedir(d);
}

int cmd_dump(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char dir[PATH_MAX], sig[16], before[256], now[256], path[PATH_MAX + 300], err[256];
	double timeout = 5, waited = 0;
	bool json = false;
	pid_t pid = 0;
	struct jv *doc;
	int c, r, signo;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 't':
			if (parse_seconds(optarg, 3600, &timeout) < 0)
				die_usage("dump: --timeout wants seconds above 0 and up to 3600, not '%s'",
					  vis(optarg));
			break;
		case 'h':
			return puts("usage: " PROG " dump [--json] [--timeout=S] PID") == EOF;
		default:
			die_getopt("dump", c, argv, longs);
		}
	}
	if (optind != argc - 1 || parse_pid(argv[optind], &pid) < 0)
		die_usage("dump: one PID, of a process running under '" PROG " run'");
	r = env_of(pid, "RINGSCOPE_AUDIT_DIR", dir, sizeof(dir));
	if (r < 0 && kill(pid, 0) < 0 && errno == ESRCH) {
		errmsg("no such process: %d", (int)pid);
		return 2;
	}
	if (r < 0) {
		if (r == -ENOENT)
			errmsg("process %d is not running under '" PROG " run' (no RINGSCOPE_AUDIT_DIR in its environment)",
			       (int)pid);
		else
			errmsg("cannot read the environment of process %d: %s", (int)pid,
			       rsc_strerror(r));
		return 2;
	}
	if (env_of(pid, "RINGSCOPE_AUDIT_DUMPSIG", sig, sizeof(sig)) < 0 ||
	    (signo = atoi(sig)) <= 0) {
		errmsg("process %d was started with --dump-on=none: it takes no dump requests", (int)pid);
		return 2;
	}
	r = catches(pid, signo);
	if (r == 0) {
		errmsg("process %d is not running under '" PROG " run': it has run's environment but does "
		       "not catch the dump signal %d (a child that run does not follow, or a static or "
		       "setuid program); not signalled, since that would kill it",
		       (int)pid, signo);
		return 2;
	}
	newest_dump(dir, pid, before, sizeof(before));
	if (kill(pid, signo) < 0) {
		errmsg("cannot signal process %d: %s", (int)pid, rsc_strerror(-errno));
		return 2;
	}
	for (;;) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		newest_dump(dir, pid, now, sizeof(now));
		if (now[0] && strcmp(now, before) > 0)
			break;
		if (waited >= timeout) {
			errmsg("no dump from process %d within %g s (does it handle signal %d itself?)",
			       (int)pid, timeout, signo);
			return 1;
		}
		nanosleep(&ts, NULL);
		waited += 0.02;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, now);
	r = json_parse_file(path, JSON_MAX_REPORT, &doc, err, sizeof(err));
	if (r < 0) {
		errmsg("cannot read the dump %s: %s", vis(path), r == -EINVAL || r == -EFBIG ? err : rsc_strerror(r));
		return 2;
	}
	sym_report(doc);
	if (json) {
		json_write_except(stdout, doc, "maps");
		putchar('\n');
	} else {
		dump_print(stdout, doc);
	}
	json_free(doc);
	return fflush(stdout) == 0 ? 0 : 2;
}
