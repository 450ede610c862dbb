/* SPDX-License-Identifier: MIT */
#ifndef RINGSCOPE_AUDIT_TOOL_H
#define RINGSCOPE_AUDIT_TOOL_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "fdkind.h"

/* One open descriptor of a process, as /proc/PID/fd and fdinfo show it. */
struct fd_entry {
	int fd;
	const char *kind; /* static string from fdkind_of() */
	char *target;	  /* the /proc/PID/fd link */
	unsigned long long flags; /* fdinfo "flags:" (octal there) */
	bool have_flags;
	long long pos;	  /* fdinfo "pos:", -1 if unknown */
	unsigned long long dev, ino; /* stat() of /proc/PID/fd/N, 0 if unknown */
	int user_files;	  /* io_uring: "UserFiles:" count, -1 if none */
	int n_direct;	  /* io_uring: registered slots in use */
	struct direct_slot {
		int slot;
		char *target;
	} *direct;
};

struct snapshot {
	pid_t pid;
	double time; /* CLOCK_REALTIME seconds */
	int n, cap;
	struct fd_entry *fds;
};

/* snapshot.c */
/*
 * 0 or -errno (-ECHILD: the process has exited but is not reaped yet); on
 * error, prints nothing (the caller names the pid).
 */
int snapshot_take(pid_t pid, bool detail, struct snapshot *s);
void snapshot_free(struct snapshot *s);
void snapshot_print_table(const struct snapshot *s, FILE *out);
void snapshot_print_json(const struct snapshot *s, FILE *out);
/* Prints "ringscope-audit: ..." for a failed snapshot_take() of @pid. */
void snapshot_perror(pid_t pid, int err);
int snapshot_from_json(const char *path, struct snapshot *s);
int cmd_snapshot(int argc, char **argv);

/* diff.c */
int cmd_diff(int argc, char **argv);

/* run.c */
int cmd_run(int argc, char **argv);

/* finding.c: a finding @f of the (symbolized) report @doc, as text or JSON */
struct jv;
void finding_print(FILE *out, const struct jv *doc, const struct jv *f);
void finding_json(FILE *out, const struct jv *doc, const struct jv *f, const char *suppression);

/* watch.c, svg.c */
int cmd_watch(int argc, char **argv);
/*
 * The timeline as a hand-written SVG into @f, which it closes: one line per
 * kind (counts[i * stride + k] for sample i), the total in bold; growing[k]
 * (and growing[stride] for the total) mark what grew steadily. Returns 0
 * or -errno.
 */
int svg_write(FILE *f, pid_t pid, int n, const double *t, int n_kinds,
	      const char *const *kinds, const int *counts, const int *total,
	      const char *title, const bool *growing, int stride);

/* dump.c */
/* A live dump (dump.*.json, symbolized): descriptors grouped by creation site, most first. */
void dump_print(FILE *out, const struct jv *doc);
int cmd_dump(int argc, char **argv);

/* util (main.c): every bad option is one line on stderr and exit status 2 */
struct option;
void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* After getopt_long returned '?' or ':' (optstring starting with ':'). */
void die_getopt(const char *cmd, int c, char **argv, const struct option *longs)
	__attribute__((noreturn));
int parse_number_opt(const char *cmd, const char *opt, const char *v, long lo, long hi);
void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int parse_pid(const char *s, pid_t *pid);
/* Seconds as decimal digits with an optional fraction ("2", "0.5"), above 0 and up to @hi: 0, or -1. */
int parse_seconds(const char *s, double hi, double *v);
/*
 * @s with control characters, invalid UTF-8 and backslashes escaped (\x1b,
 * \\), for human-readable output; one of 8 rotating static buffers.
 */
const char *vis(const char *s);
/* Length of the valid UTF-8 sequence at @p that encodes no C1 control, or 0. */
size_t vis_utf8_len(const unsigned char *p);
const char *vis_bad_option(char *const *argv, int optind_now, int optopt_now, bool *with_value);

#define PROG "ringscope-audit"

#endif
