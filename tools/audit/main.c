/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

static void usage(FILE *out)
{
	fputs("usage: " PROG " snapshot [--json] [PID]\n"
	      "       " PROG " diff [--json] A.json B.json\n"
	      "       " PROG " run [--follow-forks] [--ignore PATTERN] [--ignore-fd N]\n"
	      "                     [--error-exitcode N] [--no-backtrace] [--json]\n"
	      "                     [--output FILE] -- CMD [ARGS...]\n"
	      "       " PROG " watch [--interval S] [--for S] [--plot FILE.svg] [--json] PID\n"
	      "See ringscope-audit(1).\n",
	      out);
}

static void verrmsg(const char *fmt, va_list ap)
{
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verrmsg(fmt, ap);
	va_end(ap);
}

void die_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verrmsg(fmt, ap);
	va_end(ap);
	usage(stderr);
	exit(2);
}

int parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v <= 0 || v > 0x3fffffff)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die_usage("a command is needed");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "snapshot"))
		return cmd_snapshot(argc - 1, argv + 1);
	if (!strcmp(argv[1], "diff"))
		return cmd_diff(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "watch"))
		return cmd_watch(argc - 1, argv + 1);
	die_usage("unknown command '%s'", argv[1]);
}
