/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ringscope.h"
#include "model.h"

/*
 * Text the runtime writes never carries a raw control character from a
 * name (the brief; rsc_error_format(3), rsc_loop_trace_file(3)). Half the
 * programs name their scopes with control bytes, DEL, a C1 control in
 * UTF-8, invalid UTF-8, quotes, backslashes and format specifiers; one in
 * eight also writes the JSON trace. Checked: every chain the close
 * callbacks and SCOPE_CLOSED format, rsc_last_error after every op, and the
 * trace file once its loop is closed (only its record separators may be
 * raw newlines).
 */

static const char *const odd_suffixes[] = {
	"\x1b[2J", "\n\r", "\t\x01", "\x7f", "\xc2\x9b" "1m", "\xff\xfe", "\"\\", "%s%n",
	"\xe2\x80\xae", "\x1b]0;x\x07",
};

static char trace_path[300];
static bool tracing;

/* The control byte at @s[i], or 0: C0, DEL, or a C1 control in UTF-8. */
static unsigned control_at(const unsigned char *s, size_t i, size_t len, bool newlines)
{
	if (s[i] == '\n' && newlines)
		return 0;
	if (s[i] < 0x20 || s[i] == 0x7f)
		return s[i];
	if (s[i] == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
		return s[i + 1];
	return 0;
}

void text_check(struct prog *p, const char *what, const char *s, size_t len, bool newlines)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned c = control_at((const unsigned char *)s, i, len, newlines);

		if (c) {
			violation(p, "%s carries the raw control 0x%02x at byte %zu", what, c, i);
			return;
		}
	}
}

void text_check_str(struct prog *p, const char *what, const char *s)
{
	text_check(p, what, s, strlen(s), false);
}

/* Its name for scope number @n: plain, or with an odd suffix (fits pscope.name). */
void text_scope_name(const struct prog *p, int n, char *name, size_t size)
{
	if (!p->odd_names)
		snprintf(name, size, "s%d", n);
	else
		snprintf(name, size, "s%d%s", n,
			 odd_suffixes[(unsigned)n % (sizeof(odd_suffixes) / sizeof(odd_suffixes[0]))]);
}

/* After the loop is made: decide the program's names, and its trace file. */
void text_begin(struct prog *p, struct prog_stats *st)
{
	p->odd_names = (p->sh_seed >> 17) & 1;
	tracing = ((p->sh_seed >> 19) & 7) == 0;
	st->text_programs += p->odd_names;
	if (!tracing)
		return;
	snprintf(trace_path, sizeof(trace_path), "%s/trace-%d.json", p->env->dir, (int)getpid());
	if (rsc_loop_trace_file(p->loop, trace_path) < 0) {
		violation(p, "rsc_loop_trace_file(%s): %s", trace_path, rsc_last_error());
		tracing = false;
	}
}

/* Once the loop is closed, its trace file is whole: read it and check it. */
void text_end(struct prog *p, struct prog_stats *st)
{
	FILE *f;
	char *buf;
	long len;

	if (!tracing)
		return;
	tracing = false;
	f = fopen(trace_path, "r");
	if (!f) {
		violation(p, "the trace file %s is missing", trace_path);
		return;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)len))) {
		if (fread(buf, 1, (size_t)len, f) == (size_t)len) {
			text_check(p, "the JSON trace", buf, (size_t)len, true);
			st->text_traces++;
			st->text_trace_bytes += (unsigned long long)len;
		}
		free(buf);
	}
	fclose(f);
	unlink(trace_path);
}
