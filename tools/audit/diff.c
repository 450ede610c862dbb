/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "json.h"

static void print_entry(FILE *out, char tag, const struct fd_entry *e)
{
	fprintf(out, "%c %5d  %-10s %s\n", tag, e->fd, e->kind, vis(e->target));
}

static void json_entry(FILE *out, const char *change, const struct fd_entry *e,
		       const struct fd_entry *was, bool *first)
{
	fprintf(out, "%s\n {\"change\":\"%s\",\"fd\":%d,\"kind\":", *first ? "" : ",",
		change, e->fd);
	json_string(out, e->kind);
	fputs(",\"target\":", out);
	json_string(out, e->target);
	fprintf(out, ",\"ino\":%llu", e->ino);
	if (was) {
		fputs(",\"was_kind\":", out);
		json_string(out, was->kind);
		fputs(",\"was_target\":", out);
		json_string(out, was->target);
		fprintf(out, ",\"was_ino\":%llu", was->ino);
	}
	fputc('}', out);
	*first = false;
}

/* Same number, other object: the identity (dev/ino) or, lacking it, the target differs. */
static bool changed(const struct fd_entry *a, const struct fd_entry *b)
{
	if (a->ino && b->ino)
		return a->ino != b->ino || (a->dev && b->dev && a->dev != b->dev);
	return strcmp(a->target, b->target) != 0;
}

int cmd_diff(int argc, char **argv)
{
	const char *pa = NULL, *pb = NULL;
	struct snapshot a, b;
	int n_app = 0, n_gone = 0, n_chg = 0;
	bool json = false, first = true;

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
			return puts("usage: " PROG " diff [--json] A.json B.json") == EOF;
		else
			die_getopt("diff", c, argv, longs);
	}
	for (int i = optind; i < argc; i++) {
		if (!pa)
			pa = argv[i];
		else if (!pb)
			pb = argv[i];
		else
			die_usage("diff: two snapshot files, A.json and B.json");
	}
	if (!pb)
		die_usage("diff: two snapshot files, A.json and B.json");
	if (snapshot_from_json(pa, &a) < 0)
		return 2;
	if (snapshot_from_json(pb, &b) < 0) {
		snapshot_free(&a);
		return 2;
	}
	if (json)
		fputs("{\"changes\":[", stdout);
	/* Both are sorted by number: merge. */
	for (int i = 0, j = 0; i < a.n || j < b.n;) {
		const struct fd_entry *x = i < a.n ? &a.fds[i] : NULL;
		const struct fd_entry *y = j < b.n ? &b.fds[j] : NULL;

		if (x && (!y || x->fd < y->fd)) {
			n_gone++;
			if (json)
				json_entry(stdout, "disappeared", x, NULL, &first);
			else
				print_entry(stdout, '-', x);
			i++;
		} else if (y && (!x || y->fd < x->fd)) {
			n_app++;
			if (json)
				json_entry(stdout, "appeared", y, NULL, &first);
			else
				print_entry(stdout, '+', y);
			j++;
		} else {
			if (changed(x, y)) {
				n_chg++;
				if (json) {
					json_entry(stdout, "changed", y, x, &first);
				} else {
					print_entry(stdout, '~', y);
					fprintf(stdout, "         was %s %s (ino %llu, now %llu)\n",
						x->kind, vis(x->target), x->ino, y->ino);
				}
			}
			i++;
			j++;
		}
	}
	if (json)
		printf("\n],\"appeared\":%d,\"disappeared\":%d,\"changed\":%d}\n", n_app,
		       n_gone, n_chg);
	else
		printf("%d appeared, %d disappeared, %d changed identity\n", n_app, n_gone,
		       n_chg);
	snapshot_free(&a);
	snapshot_free(&b);
	return (n_app || n_gone || n_chg) ? 1 : 0;
}
