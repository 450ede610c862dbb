/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "json.h"
#include "suppress.h"

static int perr(char *err, size_t len, const char *path, int line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, len, "%s:%d: ", path, line);

	if (n >= 0 && (size_t)n < len) {
		va_start(ap, fmt);
		vsnprintf(err + n, len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static void supp_clear(struct supp *s)
{
	free(s->name);
	free(s->kind);
	free(s->target);
	for (int i = 0; i < s->n_frames; i++)
		free(s->frames[i]);
	free(s->frames);
	memset(s, 0, sizeof(*s));
}

void supp_free(struct supp_set *set)
{
	for (int i = 0; i < set->n; i++)
		supp_clear(&set->s[i]);
	free(set->s);
	set->s = NULL;
	set->n = 0;
}

int supp_load(struct supp_set *set, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char buf[8192];
	struct supp cur = { 0 };
	int line = 0, state = 0, start = 0; /* 0 outside, 1 name, 2 kind, 3 body */

	if (!f)
		return perr(err, errlen, path, 0, "cannot read: %s", strerror(errno));
	while (fgets(buf, sizeof(buf), f)) {
		char *l;
		size_t len = strlen(buf);

		line++;
		if (len == sizeof(buf) - 1 && buf[len - 1] != '\n') {
			supp_clear(&cur);
			fclose(f);
			return perr(err, errlen, path, line, "line longer than %zu bytes",
				    sizeof(buf) - 2);
		}
		l = trim(buf);
		if (*l == '\0' || *l == '#')
			continue;
		if (state == 0) {
			if (strcmp(l, "{") != 0) {
				fclose(f);
				return perr(err, errlen, path, line, "expected '{' to open a suppression");
			}
			state = 1;
			start = line;
			continue;
		}
		if (strcmp(l, "}") == 0) {
			struct supp *ns;

			if (state < 3) {
				supp_clear(&cur);
				fclose(f);
				return perr(err, errlen, path, line,
					    "a suppression needs a name and a 'ringscope-audit:KIND' line");
			}
			ns = realloc(set->s, (size_t)(set->n + 1) * sizeof(*ns));
			if (!ns) {
				supp_clear(&cur);
				fclose(f);
				return perr(err, errlen, path, line, "out of memory");
			}
			set->s = ns;
			set->s[set->n++] = cur;
			memset(&cur, 0, sizeof(cur));
			state = 0;
			continue;
		}
		if (state == 1) {
			cur.name = strdup(l);
			state = 2;
		} else if (state == 2) {
			if (strncmp(l, "ringscope-audit:", 16) != 0 || !l[16]) {
				supp_clear(&cur);
				fclose(f);
				return perr(err, errlen, path, line,
					    "expected 'ringscope-audit:KIND' after the name");
			}
			cur.kind = strdup(l + 16);
			state = 3;
		} else if (strncmp(l, "target:", 7) == 0 && !cur.target && !cur.n_frames) {
			cur.target = strdup(l + 7);
		} else if (strncmp(l, "fun:", 4) == 0 || strncmp(l, "obj:", 4) == 0 ||
			   strcmp(l, "...") == 0) {
			char **nf = realloc(cur.frames, (size_t)(cur.n_frames + 1) * sizeof(*nf));

			if (!nf || !(nf[cur.n_frames] = strdup(l))) {
				free(nf ? nf : cur.frames);
				cur.frames = NULL;
				supp_clear(&cur);
				fclose(f);
				return perr(err, errlen, path, line, "out of memory");
			}
			cur.frames = nf;
			cur.n_frames++;
		} else {
			supp_clear(&cur);
			fclose(f);
			return perr(err, errlen, path, line,
				    "expected 'target:GLOB', 'fun:GLOB', 'obj:GLOB', '...' or '}'");
		}
	}
	/* fgets() also stops on a read error (a directory opens, then EISDIR): not an end. */
	if (ferror(f)) {
		int e = errno;

		supp_clear(&cur);
		fclose(f);
		return perr(err, errlen, path, line, "cannot read: %s", strerror(e));
	}
	fclose(f);
	if (state != 0) {
		supp_clear(&cur);
		return perr(err, errlen, path, start, "suppression not closed by '}'");
	}
	return 0;
}

/* "func (file.c:12)" and "sym+0x1d (/lib/x.so)" name func/sym; "/lib/x.so+0x10" only a module. */
static void frame_parts(const char *frame, char *fun, char *obj, size_t len)
{
	const char *plus = strstr(frame, "+0x"), *paren = strstr(frame, " (");
	size_t n;

	fun[0] = obj[0] = '\0';
	if (frame[0] == '/' && plus && !paren) {
		n = (size_t)(plus - frame);
		snprintf(obj, len, "%.*s", (int)n, frame);
		return;
	}
	if (strncmp(frame, "0x", 2) == 0)
		return;
	n = strcspn(frame, "+ (");
	snprintf(fun, len, "%.*s", (int)n, frame);
	if (plus && paren && plus < paren) {
		const char *close = strrchr(frame, ')');

		if (close && close > paren + 2)
			snprintf(obj, len, "%.*s", (int)(close - paren - 2), paren + 2);
	}
}

static bool frame_matches(const char *pat, const char *frame)
{
	char fun[1024], obj[4096];

	frame_parts(frame, fun, obj, sizeof(fun) < sizeof(obj) ? sizeof(fun) : sizeof(obj));
	if (strncmp(pat, "fun:", 4) == 0)
		return fun[0] && fnmatch(pat + 4, fun, 0) == 0;
	return obj[0] && fnmatch(pat + 4, obj, 0) == 0;
}

/*
 * Frame patterns match from the innermost frame; "..." matches any number of
 * frames. Dynamic programming over (pattern, frame) suffixes: a file of many
 * "..." lines costs np * nf steps, not an exponential backtrack.
 */
static bool frames_match(char *const *p, int np, const struct jv *fr, int nf)
{
	bool *row, *next, r;

	if (np == 0)
		return true;
	row = calloc((size_t)(nf + 1) * 2, sizeof(*row));
	if (!row)
		return false;
	next = row + nf + 1;
	/* next[j]: patterns i+1.. match frames j.. (trailing frames are not looked at). */
	for (int j = 0; j <= nf; j++)
		next[j] = true;
	for (int i = np - 1; i >= 0; i--) {
		if (strcmp(p[i], "...") == 0) {
			row[nf] = next[nf];
			for (int j = nf - 1; j >= 0; j--)
				row[j] = next[j] || row[j + 1];
		} else {
			row[nf] = false;
			for (int j = 0; j < nf; j++)
				row[j] = fr[j].t == J_STR && next[j + 1] &&
					 frame_matches(p[i], fr[j].str);
		}
		bool *t = row;
		row = next;
		next = t;
	}
	r = next[0];
	free(row < next ? row : next);
	return r;
}

struct supp *supp_match(const struct supp_set *set, const struct jv *f)
{
	const char *kind = json_str(f, "kind", "");
	const char *target = json_str(f, "target", "");
	const struct jv *bt = json_get(f, "backtrace");
	static const struct jv none = { .t = J_ARR };

	if (!bt || bt->t != J_ARR)
		bt = &none;
	for (int i = 0; i < set->n; i++) {
		struct supp *s = &set->s[i];

		if (fnmatch(s->kind, kind, 0) != 0)
			continue;
		if (s->target && fnmatch(s->target, target, 0) != 0)
			continue;
		if (!frames_match(s->frames, s->n_frames, bt->items, bt->n))
			continue;
		s->used++;
		return s;
	}
	return NULL;
}

/* Appends @s to the buffer, with glob characters escaped and controls made '?'. */
static void put_glob(char **b, size_t *n, size_t *cap, const char *s)
{
	for (; *s; s++) {
		if (*n + 3 >= *cap) {
			char *nb = realloc(*b, *cap * 2);
			if (!nb)
				return;
			*b = nb;
			*cap *= 2;
		}
		unsigned char c = (unsigned char)*s;
		size_t u = c >= 0x80 ? vis_utf8_len((const unsigned char *)s) : 0;

		if (u > 1 && *n + u + 2 < *cap) {
			/* A whole valid UTF-8 character, copied as it is. */
			memcpy(*b + *n, s, u);
			*n += u;
			s += u - 1;
			continue;
		}
		/* Trailing blanks are trimmed when the file is read: a class keeps them. */
		if (c == ' ' && s[strspn(s, " ")] == '\0') {
			memcpy(*b + *n, "[ ]", 3);
			*n += 3;
			continue;
		}
		if (c == '*' || c == '?' || c == '[' || c == '\\')
			(*b)[(*n)++] = '\\';
		/* Controls and invalid UTF-8 never reach the terminal: '?' matches the byte. */
		(*b)[(*n)++] = c < 0x20 || c >= 0x7f ? '?' : *s;
	}
	(*b)[*n] = '\0';
}

char *supp_generate(const struct jv *f)
{
	size_t cap = 256, n = 0;
	char *b = malloc(cap);
	const struct jv *bt = json_get(f, "backtrace");
	const char *target = json_str(f, "target", NULL);
	bool dots = false;

	if (!b)
		return NULL;
	b[0] = '\0';
#define ADD(s) put_glob(&b, &n, &cap, s)
#define RAW(s)                                                                 \
	do {                                                                   \
		const char *r_ = (s);                                          \
		while (*r_ && b) {                                             \
			if (n + 2 >= cap) {                                    \
				char *nb = realloc(b, cap *= 2);               \
				if (!nb) {                                     \
					free(b);                               \
					return NULL;                           \
				}                                              \
				b = nb;                                        \
			}                                                      \
			b[n++] = *r_++;                                        \
			b[n] = '\0';                                           \
		}                                                              \
	} while (0)
	RAW("{\n   <insert_a_suppression_name_here>\n   ringscope-audit:");
	ADD(json_str(f, "kind", "?"));
	RAW("\n");
	if (target) {
		RAW("   target:");
		ADD(target);
		RAW("\n");
	}
	for (int i = 0; bt && bt->t == J_ARR && i < bt->n; i++) {
		char fun[1024], obj[1024];

		if (bt->items[i].t != J_STR)
			continue;
		frame_parts(bt->items[i].str, fun, obj, sizeof(fun));
		if (fun[0]) {
			RAW("   fun:");
			ADD(fun);
			RAW("\n");
			dots = false;
		} else if (obj[0]) {
			RAW("   obj:");
			ADD(obj);
			RAW("\n");
			dots = false;
		} else if (!dots) {
			RAW("   ...\n");
			dots = true;
		}
	}
	RAW("}\n");
#undef ADD
#undef RAW
	return b;
}
