/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "symbolize.h"

static void usage(FILE *out)
{
	fputs("usage: " PROG " snapshot [--json] [PID]\n"
	      "       " PROG " diff [--json] A.json B.json\n"
	      "       " PROG " run [-q] [--follow-forks] [--ignore=PATTERN] [--ignore-fd=N]\n"
	      "                     [--error-exitcode=N] [--no-backtrace] [--json] [--output=FILE]\n"
	      "                     [--suppressions=FILE] [--gen-suppressions=no|yes|all]\n"
	      "                     [--foreign-close=warn|abort|off] [--dump-on=SIGNAL|none]\n"
	      "                     [--dump-above=N] [--unwind=fp|dwarf] -- CMD [ARGS...]\n"
	      "       " PROG " watch [--interval=S] [--for=S] [--plot=FILE.svg] [--json] PID\n"
	      "       " PROG " dump [--json] [--timeout=S] PID\n"
	      "       " PROG " --help | --version\n"
	      "Options take their value as --opt=value or --opt value. See ringscope-audit(1).\n",
	      out);
	fprintf(out, "Backtraces are symbolized with: %s.\n", sym_backend());
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

/* One line, exit 2: the error and where to read more. */
void die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see '" PROG " --help')\n", stderr);
	exit(2);
}

void die_getopt(const char *cmd, int c, char **argv, const struct option *longs)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	const char *eq = strchr(arg, '=');
	bool with_value;
	const char *name = vis_bad_option(argv, optind, optopt, &with_value);

	if (c == ':') /* a short one's letter, escaped: it may be any byte */
		die_usage("%s: option '%s' needs a value", cmd,
			  arg[0] == '-' && arg[1] != '-' ? name : vis(arg));
	/* --flag=value on an option that takes none: getopt says '?' with optopt set. */
	if (arg[0] == '-' && arg[1] == '-' && eq) {
		for (const struct option *o = longs; o && o->name; o++)
			if (o->has_arg == no_argument && strlen(o->name) == (size_t)(eq - arg - 2) &&
			    strncmp(o->name, arg + 2, (size_t)(eq - arg - 2)) == 0)
				die_usage("%s: option '--%s' takes no value", cmd, o->name);
	}
	if (with_value)
		die_usage("%s: option '%s' takes no value", cmd, name);
	die_usage("%s: unknown option '%s'", cmd, name);
}

int parse_number_opt(const char *cmd, const char *opt, const char *v, long lo, long hi)
{
	char *end;
	long l;

	errno = 0;
	l = strtol(v, &end, 10);
	/* strtol would take " 5" and "+5": a number here is digits only. */
	if (!isdigit((unsigned char)v[0]) || errno || end == v || *end || l < lo || l > hi)
		die_usage("%s: %s wants a whole number from %ld to %ld, not '%s'", cmd, opt, lo, hi,
			  vis(v));
	return (int)l;
}

int parse_seconds(const char *s, double hi, double *v)
{
	size_t digits = strspn(s, "0123456789"), frac = 0;
	char *end;

	/* strtod would take " 1", "+1", "0x10" and "1e3": seconds here are digits only. */
	if (s[digits] == '.')
		frac = strspn(s + digits + 1, "0123456789");
	if (digits + frac == 0 || s[digits + (s[digits] == '.' ? 1 + frac : 0)] != '\0')
		return -1;
	errno = 0;
	*v = strtod(s, &end);
	return errno || *end || !(*v > 0) || *v > hi ? -1 : 0;
}

int parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!isdigit((unsigned char)s[0]) || errno || end == s || *end || v <= 0 || v > 0x3fffffff)
		return -1;
	*pid = (pid_t)v;
	return 0;
}

static int dispatch(int argc, char **argv)
{
	if (argc < 2)
		die_usage("a command is needed");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		puts(PROG " " PACKAGE_VERSION);
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
	if (!strcmp(argv[1], "dump"))
		return cmd_dump(argc - 1, argv + 1);
	die_usage("unknown command '%s'", vis(argv[1]));
}

int main(int argc, char **argv)
{
	int ret = dispatch(argc, argv);

	/* Output lost to a full disk must not exit as "nothing changed" (diff, watch: 0). */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		errmsg("cannot write standard output: %s", strerror(errno));
		return 2;
	}
	return ret;
}
