/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h" /* vis_utf8_len */
#include "json.h"

struct parser {
	const char *s, *p;
	char *err;
	size_t errlen;
	int depth;
};

static int fail(struct parser *ps, const char *fmt, ...)
{
	int line = 1, col = 1;
	va_list ap;
	size_t n;

	for (const char *q = ps->s; q < ps->p; q++) {
		if (*q == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	n = (size_t)snprintf(ps->err, ps->errlen, "line %d, column %d: ", line, col);
	if (n < ps->errlen) {
		va_start(ap, fmt);
		vsnprintf(ps->err + n, ps->errlen - n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* @c for a message: itself if printable ASCII, else \xNN (the input is not to reach a terminal raw). */
static const char *show(char c, char buf[8])
{
	unsigned char u = (unsigned char)c;

	if (u >= 0x20 && u < 0x7f && u != '\\')
		snprintf(buf, 8, "%c", c);
	else
		snprintf(buf, 8, "\\x%02x", u);
	return buf;
}

static void skip_ws(struct parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
		ps->p++;
}

static void put_utf8(char **o, unsigned cp)
{
	char *q = *o;

	if (cp < 0x80) {
		*q++ = (char)cp;
	} else if (cp < 0x800) {
		*q++ = (char)(0xc0 | (cp >> 6));
		*q++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*q++ = (char)(0xe0 | (cp >> 12));
		*q++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*q++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*q++ = (char)(0xf0 | (cp >> 18));
		*q++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*q++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*q++ = (char)(0x80 | (cp & 0x3f));
	}
	*o = q;
}

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

static int parse_string(struct parser *ps, char **out)
{
	const char *q = ++ps->p; /* after the quote */
	size_t cap = 0;
	char *buf, *o;

	/* Every escape shrinks or keeps the length, so the raw length is enough. */
	while (*q && *q != '"') {
		if (*q == '\\' && q[1])
			q++;
		q++;
	}
	if (!*q)
		return fail(ps, "unterminated string");
	cap = (size_t)(q - ps->p) + 1;
	buf = o = malloc(cap);
	if (!buf)
		return fail(ps, "out of memory");
	while (*ps->p != '"') {
		unsigned char c = (unsigned char)*ps->p;

		if (c < 0x20) {
			free(buf);
			return fail(ps, "control character in string");
		}
		if (c != '\\') {
			*o++ = (char)c;
			ps->p++;
			continue;
		}
		ps->p++;
		switch (*ps->p) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			unsigned cp, lo;

			if (hex4(ps->p + 1, &cp) < 0) {
				free(buf);
				return fail(ps, "bad \\u escape");
			}
			ps->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && ps->p[1] == '\\' &&
			    ps->p[2] == 'u' && hex4(ps->p + 3, &lo) == 0 &&
			    lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				ps->p += 6;
			}
			/* 6 escape bytes give at most 4 output bytes. */
			if (cp >= 0xdc80 && cp <= 0xdcff)
				*o++ = (char)(cp & 0xff); /* a byte that was not UTF-8 (json_string) */
			else
				put_utf8(&o, cp);
			break;
		}
		default: {
			char b[8];

			free(buf);
			return fail(ps, "bad escape '\\%s'", show(*ps->p ? *ps->p : '?', b));
		}
		}
		ps->p++;
	}
	ps->p++;
	*o = '\0';
	*out = buf;
	return 0;
}

static int parse_value(struct parser *ps, struct jv *v);

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * RFC 8259's grammar, checked before strtod sees it: strtod alone takes
 * "-nan", "-inf", "0x10" and leading zeros, none of which is JSON.
 */
static int parse_number(struct parser *ps, struct jv *v)
{
	const char *q = ps->p, *start = ps->p;
	char *end;

	if (*q == '-')
		q++;
	if (*q == '0')
		q++;
	else if (digit(*q))
		while (digit(*q))
			q++;
	else
		return fail(ps, "bad number: a digit must follow '-'");
	if (*q == '.') {
		q++;
		if (!digit(*q))
			return fail(ps, "bad number: a digit must follow '.'");
		while (digit(*q))
			q++;
	}
	if (*q == 'e' || *q == 'E') {
		q++;
		if (*q == '+' || *q == '-')
			q++;
		if (!digit(*q))
			return fail(ps, "bad number: a digit must follow the exponent");
		while (digit(*q))
			q++;
	}
	if (digit(*q) || *q == 'x' || *q == 'X' || (*q >= 'a' && *q <= 'z') ||
	    (*q >= 'A' && *q <= 'Z') || *q == '.')
		return fail(ps, "bad number (JSON numbers are decimal, without leading zeros)");
	errno = 0;
	v->t = J_NUM;
	v->num = strtod(start, &end);
	if (end != q)
		return fail(ps, "bad number");
	if (errno == ERANGE && (v->num > 1 || v->num < -1))
		return fail(ps, "number out of range");
	/* A double holds 53 bits: an inode number above 2^53 needs its digits. */
	if (digit(*start) && strspn(start, "0123456789") == (size_t)(q - start)) {
		errno = 0;
		v->u64 = strtoull(start, &end, 10);
		v->is_u64 = errno == 0 && end == q;
	}
	ps->p = q;
	return 0;
}

static int grow(struct jv *v, int *cap, bool keys)
{
	if (v->n < *cap)
		return 0;
	int ncap = *cap ? *cap * 2 : 8;
	struct jv *it = realloc(v->items, (size_t)ncap * sizeof(*it));
	if (!it)
		return -1;
	v->items = it;
	if (keys) {
		char **k = realloc(v->keys, (size_t)ncap * sizeof(*k));
		if (!k)
			return -1;
		v->keys = k;
	}
	*cap = ncap;
	return 0;
}

static int parse_container(struct parser *ps, struct jv *v, bool obj)
{
	char close = obj ? '}' : ']';
	int cap = 0;

	if (++ps->depth > 200)
		return fail(ps, "nested too deeply");
	v->t = obj ? J_OBJ : J_ARR;
	ps->p++;
	skip_ws(ps);
	if (*ps->p == close) {
		ps->p++;
		ps->depth--;
		return 0;
	}
	for (;;) {
		char *key = NULL;

		skip_ws(ps);
		if (obj) {
			if (*ps->p != '"')
				return fail(ps, "expected a string key");
			if (parse_string(ps, &key) < 0)
				return -1;
			skip_ws(ps);
			if (*ps->p != ':') {
				free(key);
				return fail(ps, "expected ':' after key");
			}
			ps->p++;
		}
		if (grow(v, &cap, obj) < 0) {
			free(key);
			return fail(ps, "out of memory");
		}
		memset(&v->items[v->n], 0, sizeof(v->items[0]));
		if (obj)
			v->keys[v->n] = key;
		v->n++;
		if (parse_value(ps, &v->items[v->n - 1]) < 0)
			return -1;
		skip_ws(ps);
		if (*ps->p == ',') {
			ps->p++;
			continue;
		}
		if (*ps->p == close) {
			ps->p++;
			ps->depth--;
			return 0;
		}
		return fail(ps, "expected ',' or '%c'", close);
	}
}

static int parse_value(struct parser *ps, struct jv *v)
{
	skip_ws(ps);
	switch (*ps->p) {
	case '{':
		return parse_container(ps, v, true);
	case '[':
		return parse_container(ps, v, false);
	case '"':
		v->t = J_STR;
		return parse_string(ps, &v->str);
	case 't':
		if (strncmp(ps->p, "true", 4))
			break;
		v->t = J_BOOL;
		v->b = true;
		ps->p += 4;
		return 0;
	case 'f':
		if (strncmp(ps->p, "false", 5))
			break;
		v->t = J_BOOL;
		ps->p += 5;
		return 0;
	case 'n':
		if (strncmp(ps->p, "null", 4))
			break;
		v->t = J_NULL;
		ps->p += 4;
		return 0;
	case '\0':
		return fail(ps, "unexpected end of input");
	default:
		if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			return parse_number(ps, v);
	}
	char b[8];

	return fail(ps, "unexpected character '%s'", show(*ps->p, b));
}

int json_parse(const char *text, struct jv **out, char *err, size_t errlen)
{
	struct parser ps = { .s = text, .p = text, .err = err, .errlen = errlen };
	struct jv *v = calloc(1, sizeof(*v));

	*out = NULL;
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (parse_value(&ps, v) < 0) {
		json_free(v);
		return -1;
	}
	skip_ws(&ps);
	if (*ps.p) {
		json_free(v);
		return fail(&ps, "trailing characters after the value");
	}
	*out = v;
	return 0;
}

int json_parse_file(const char *path, size_t max, struct jv **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, r;
	int ret = 0;

	*out = NULL;
	if (!f)
		return -errno;
	do {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
		}
		errno = 0;
		r = fread(buf + len, 1, cap - len - 1, f);
		/* Stop at once on what cannot be JSON text: /dev/zero is read no further. */
		if (r && memchr(buf + len, '\0', r)) {
			snprintf(err, errlen, "NUL byte in input");
			ret = -EINVAL;
			break;
		}
		len += r;
		if (len > max) {
			snprintf(err, errlen, "larger than %zu MiB", max >> 20);
			ret = -EFBIG;
			break;
		}
		if (r == 0 && ferror(f))
			ret = errno ? -errno : -EIO; /* a directory opens, then EISDIR */
	} while (r > 0);
	fclose(f);
	if (ret == 0) {
		buf[len] = '\0';
		if (json_parse(buf, out, err, errlen) < 0)
			ret = -EINVAL;
	}
	free(buf);
	return ret;
}

static void jv_clear(struct jv *v)
{
	for (int i = 0; i < v->n; i++) {
		jv_clear(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
}

void json_free(struct jv *v)
{
	if (!v)
		return;
	jv_clear(v);
	free(v);
}

const struct jv *json_get(const struct jv *obj, const char *key)
{
	if (!obj || obj->t != J_OBJ)
		return NULL;
	for (int i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return &obj->items[i];
	return NULL;
}

const char *json_str(const struct jv *obj, const char *key, const char *dflt)
{
	const struct jv *v = json_get(obj, key);
	return v && v->t == J_STR ? v->str : dflt;
}

double json_num(const struct jv *obj, const char *key, double dflt)
{
	const struct jv *v = json_get(obj, key);
	return v && v->t == J_NUM ? v->num : dflt;
}

int json_int(const struct jv *obj, const char *key, int dflt)
{
	double v = json_num(obj, key, dflt);

	return v >= -2147483648.0 && v <= 2147483647.0 && v == (double)(int)v ? (int)v : dflt;
}

bool json_bool(const struct jv *obj, const char *key, bool dflt)
{
	const struct jv *v = json_get(obj, key);
	return v && v->t == J_BOOL ? v->b : dflt;
}

/*
 * File names are bytes, JSON is UTF-8: a byte that is not part of a valid
 * UTF-8 sequence is written as the lone surrogate \udc80-\udcff (Python's
 * "surrogateescape"), which the parser above reads back as that byte; a C1
 * control (valid UTF-8) as its \u0080-\u009f, as any other control.
 */
void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p >= 0x80) {
			size_t n = vis_utf8_len(p);

			if (n) {
				fwrite(p, 1, n, out);
				p += n - 1;
			} else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
				/* A C1 control, valid UTF-8: escaped as the character it is. */
				fprintf(out, "\\u%04x", p[1]);
				p++;
			} else {
				fprintf(out, "\\udc%02x", *p);
			}
			continue;
		}
		switch (*p) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\t': fputs("\\t", out); break;
		case '\r': fputs("\\r", out); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\u%04x", *p);
			else
				fputc(*p, out);
		}
	}
	fputc('"', out);
}

void json_write(FILE *out, const struct jv *v)
{
	switch (v->t) {
	case J_NULL:
		fputs("null", out);
		break;
	case J_BOOL:
		fputs(v->b ? "true" : "false", out);
		break;
	case J_NUM:
		if (v->is_u64)
			fprintf(out, "%llu", v->u64);
		else if (v->num > -9.2e18 && v->num < 9.2e18 && v->num == (double)(long long)v->num)
			fprintf(out, "%lld", (long long)v->num);
		else
			fprintf(out, "%.17g", v->num);
		break;
	case J_STR:
		json_string(out, v->str);
		break;
	case J_ARR:
	case J_OBJ:
		fputc(v->t == J_ARR ? '[' : '{', out);
		for (int i = 0; i < v->n; i++) {
			if (i)
				fputc(',', out);
			if (v->t == J_OBJ) {
				json_string(out, v->keys[i]);
				fputc(':', out);
			}
			json_write(out, &v->items[i]);
		}
		fputc(v->t == J_ARR ? ']' : '}', out);
		break;
	}
}

void json_write_except(FILE *out, const struct jv *obj, const char *skip)
{
	bool first = true;

	if (obj->t != J_OBJ) {
		json_write(out, obj);
		return;
	}
	fputc('{', out);
	for (int i = 0; i < obj->n; i++) {
		if (strcmp(obj->keys[i], skip) == 0)
			continue;
		if (!first)
			fputc(',', out);
		first = false;
		json_string(out, obj->keys[i]);
		fputc(':', out);
		json_write(out, &obj->items[i]);
	}
	fputc('}', out);
}
