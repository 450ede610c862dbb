/* SPDX-License-Identifier: MIT */
#ifndef RINGSCOPE_AUDIT_JSON_H
#define RINGSCOPE_AUDIT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

/* A parsed JSON value. Objects keep their keys in order. */
struct jv {
	enum jtype t;
	bool b;
	double num;
	/* A number written as digits alone (no sign, fraction or exponent) that fits: exact. */
	bool is_u64;
	unsigned long long u64;
	char *str;
	int n;		 /* items of an array or object */
	struct jv *items;
	char **keys;	 /* objects only */
};

/*
 * Parse @text (NUL-terminated) into *@out. Returns 0, or -1 with a message
 * "line L, column C: what" in @err.
 */
int json_parse(const char *text, struct jv **out, char *err, size_t errlen);
/*
 * Read and parse a whole file of at most @max bytes; -errno (err says
 * nothing), or -EINVAL (not JSON) or -EFBIG (too large), err saying why.
 */
int json_parse_file(const char *path, size_t max, struct jv **out, char *err, size_t errlen);
/* Input caps: a snapshot line is ~150 bytes (400k descriptors fit); reports carry backtraces. */
#define JSON_MAX_SNAPSHOT ((size_t)64 << 20)
#define JSON_MAX_REPORT	  ((size_t)1024 << 20)
void json_free(struct jv *v);
const struct jv *json_get(const struct jv *obj, const char *key);
/* Typed getters with a default when absent or of another type. */
const char *json_str(const struct jv *obj, const char *key, const char *dflt);
double json_num(const struct jv *obj, const char *key, double dflt);
/* An integral number within int's range, else @dflt (never a double-to-int overflow). */
int json_int(const struct jv *obj, const char *key, int dflt);
bool json_bool(const struct jv *obj, const char *key, bool dflt);

/* Write @s as a JSON string literal (quotes included). */
void json_string(FILE *out, const char *s);

/* Write @v back as compact JSON. */
void json_write(FILE *out, const struct jv *v);
/* The same for an object, leaving out member @skip. */
void json_write_except(FILE *out, const struct jv *obj, const char *skip);
#endif
