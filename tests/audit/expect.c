/* SPDX-License-Identifier: MIT */
/*
 * Asserts on the --json report of 'ringscope-audit run':
 *   expect REPORT.json [--count N] [--status N] [--processes N] [--has 'key=value ...']...
 * A --has spec matches one finding whose every key agrees: kind, fd,
 * target, fdkind, into, event, call, action, created_by (exact), note,
 * ringscope and owner (substrings),
 * bt (a frame of "backtrace" names that function), cbt (the same for
 * "creation_backtrace"), slot (a "slots" entry "N:path").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static int frame_names(const struct jv *bt, const char *func)
{
	size_t n = strlen(func);

	if (!bt || bt->t != J_ARR)
		return 0;
	for (int i = 0; i < bt->n; i++)
		if (bt->items[i].t == J_STR && strncmp(bt->items[i].str, func, n) == 0 &&
		    (bt->items[i].str[n] == '+' || bt->items[i].str[n] == ' '))
			return 1;
	return 0;
}

static int has_slot(const struct jv *slots, const char *want)
{
	char buf[4200];

	if (!slots || slots->t != J_ARR)
		return 0;
	for (int i = 0; i < slots->n; i++) {
		snprintf(buf, sizeof(buf), "%d:%s", json_int(&slots->items[i], "slot", -1),
			 json_str(&slots->items[i], "target", ""));
		if (strcmp(buf, want) == 0)
			return 1;
	}
	return 0;
}

static int match_one(const struct jv *f, const char *key, const char *val)
{
	if (!strcmp(key, "fd") || !strcmp(key, "pid"))
		return json_num(f, key, -12345) == atof(val);
	if (!strcmp(key, "bt"))
		return frame_names(json_get(f, "backtrace"), val);
	if (!strcmp(key, "cbt"))
		return frame_names(json_get(f, "creation_backtrace"), val);
	if (!strcmp(key, "slot"))
		return has_slot(json_get(f, "slots"), val);
	if (!strcmp(key, "note") || !strcmp(key, "ringscope") || !strcmp(key, "owner"))
		return strstr(json_str(f, key, ""), val) != NULL;
	return strcmp(json_str(f, key, ""), val) == 0;
}

static int matches(const struct jv *f, const char *spec)
{
	char *s = strdup(spec), *save = NULL, *tok;
	int ok = 1;

	for (tok = strtok_r(s, " ", &save); tok && ok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq) {
			fprintf(stderr, "expect: bad spec token '%s'\n", tok);
			exit(2);
		}
		*eq = '\0';
		ok = match_one(f, tok, eq + 1);
	}
	free(s);
	return ok;
}

int main(int argc, char **argv)
{
	char err[256];
	struct jv *doc;
	const struct jv *fs;
	int fails = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: expect REPORT.json [--count N] [--status N] [--has SPEC]...\n");
		return 2;
	}
	if (json_parse_file(argv[1], JSON_MAX_REPORT, &doc, err, sizeof(err)) < 0) {
		fprintf(stderr, "expect: %s: cannot parse: %s\n", argv[1], err);
		return 1;
	}
	fs = json_get(doc, "findings");
	if (!fs || fs->t != J_ARR) {
		fprintf(stderr, "expect: %s: no findings array\n", argv[1]);
		return 1;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--count")) {
			if (fs->n != atoi(argv[i + 1])) {
				fprintf(stderr, "expect: %d findings, wanted %s\n", fs->n, argv[i + 1]);
				fails++;
			}
		} else if (!strcmp(argv[i], "--status")) {
			if (json_num(doc, "status", -1) != atof(argv[i + 1])) {
				fprintf(stderr, "expect: status %g, wanted %s\n",
					json_num(doc, "status", -1), argv[i + 1]);
				fails++;
			}
		} else if (!strcmp(argv[i], "--processes")) {
			if (json_num(doc, "processes", -1) != atof(argv[i + 1])) {
				fprintf(stderr, "expect: %g process reports, wanted %s\n",
					json_num(doc, "processes", -1), argv[i + 1]);
				fails++;
			}
		} else if (!strcmp(argv[i], "--has")) {
			int found = 0;

			for (int j = 0; j < fs->n && !found; j++)
				found = matches(&fs->items[j], argv[i + 1]);
			if (!found) {
				fprintf(stderr, "expect: no finding matches '%s'\n", argv[i + 1]);
				fails++;
			}
		} else {
			fprintf(stderr, "expect: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (fails)
		fprintf(stderr, "expect: %d assertion%s failed on %s\n", fails,
			fails == 1 ? "" : "s", argv[1]);
	json_free(doc);
	return fails ? 1 : 0;
}
