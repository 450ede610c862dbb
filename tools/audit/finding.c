/* SPDX-License-Identifier: MIT */
/* How a finding of 'run' reads: one paragraph per finding, or one JSON object. */
#include <string.h>

#include "audit.h"
#include "json.h"

static void print_bt(FILE *out, const char *title, const struct jv *bt)
{
	if (!bt || bt->t != J_ARR)
		return;
	if (bt->n == 0) {
		fprintf(out, "    %s: (no backtrace)\n", title);
		return;
	}
	fprintf(out, "    %s:\n", title);
	for (int i = 0; i < bt->n; i++)
		if (bt->items[i].t == J_STR)
			fprintf(out, "      #%d %s\n", i, vis(bt->items[i].str));
}

void finding_print(FILE *out, const struct jv *doc, const struct jv *f)
{
	const char *kind = json_str(f, "kind", "?");
	int fd = json_int(f, "fd", -1);
	const char *target = vis(json_str(f, "target", "?"));
	const char *fdkind = vis(json_str(f, "fdkind", "?"));
	const char *how = json_str(f, "created_by", NULL);
	const char *note = json_str(f, "note", NULL);
	const char *prog = vis(json_str(doc, "exe", json_str(doc, "argv0", "?")));
	int pid = json_int(doc, "pid", 0);

	if (!strcmp(kind, "leaked")) {
		fprintf(out, "leaked: fd %d -> %s (%s), open at exit of pid %d (%s)\n", fd, target,
			fdkind, pid, prog);
		fprintf(out, "    created by %s()\n", vis(how ? how : "?"));
		print_bt(out, "created at", json_get(f, "backtrace"));
	} else if (!strcmp(kind, "leaked-unseen")) {
		fprintf(out, "leaked: fd %d -> %s (%s), open at exit of pid %d (%s)\n", fd, target,
			fdkind, pid, prog);
		fprintf(out, "    never seen created: %s\n", vis(note ? note : "?"));
		if (json_str(f, "ringscope", NULL))
			fprintf(out, "    held by %s\n", vis(json_str(f, "ringscope", "")));
	} else if (!strcmp(kind, "direct-registered")) {
		const struct jv *slots = json_get(f, "slots");

		fprintf(out, "direct descriptors: ring fd %d still has %d registered file%s at exit of pid %d (%s)\n",
			fd, json_int(f, "count", 0), json_num(f, "count", 0) == 1 ? "" : "s",
			pid, prog);
		for (int i = 0; slots && slots->t == J_ARR && i < slots->n; i++)
			fprintf(out, "    slot %d -> %s\n", json_int(&slots->items[i], "slot", -1),
				vis(json_str(&slots->items[i], "target", "?")));
	} else if (!strcmp(kind, "double-close")) {
		fprintf(out, "double close: close(%d) failed with EBADF in pid %d (%s)\n", fd, pid,
			prog);
		print_bt(out, "closed again at", json_get(f, "backtrace"));
		if (json_str(f, "closed_before_at", NULL))
			fprintf(out, "    closed before at %s\n", vis(json_str(f, "closed_before_at", "")));
		if (note)
			fprintf(out, "    %s\n", vis(note));
		if (how)
			fprintf(out, "    created by %s()\n", vis(how));
		print_bt(out, "created at", json_get(f, "creation_backtrace"));
	} else if (!strcmp(kind, "close-unopened") && fd < 0 && json_get(f, "dropped")) {
		/* The preload's marker for what it could not keep: no close(-1) was made. */
		fprintf(out, "bad closes: %d more closes failed with EBADF in pid %d (%s), not listed\n",
			json_int(f, "dropped", 0), pid, prog);
		if (note)
			fprintf(out, "    %s\n", vis(note));
	} else if (!strcmp(kind, "close-unopened")) {
		fprintf(out, "bad close: close(%d) failed with EBADF, a descriptor that was never open, in pid %d (%s)\n",
			fd, pid, prog);
		if (note)
			fprintf(out, "    %s\n", vis(note));
		print_bt(out, "at", json_get(f, "backtrace"));
	} else if (!strcmp(kind, "exec-leak")) {
		fprintf(out, "exec leak (CWE-403): fd %d -> %s (%s) has no CLOEXEC and crossed exec from pid %d (%s) into %s\n",
			fd, target, fdkind, pid, prog, vis(json_str(f, "into", "?")));
		if (how) {
			fprintf(out, "    created by %s()\n", vis(how));
			print_bt(out, "created at", json_get(f, "backtrace"));
		} else {
			fprintf(out, "    never seen created (io_uring or a raw syscall)\n");
		}
	} else if (!strcmp(kind, "foreign-close")) {
		fprintf(out, "foreign close: %s(%d) in pid %d (%s) closes a descriptor that ringscope owns\n",
			vis(json_str(f, "call", "close")), fd, pid, prog);
		fprintf(out, "    fd %d -> %s (%s)\n", fd, target, fdkind);
		fprintf(out, "    owner: %s\n", vis(json_str(f, "owner", "?")));
		print_bt(out, "closed at", json_get(f, "backtrace"));
		fprintf(out, "    %s\n", !strcmp(json_str(f, "action", ""), "abort") ?
					      "stopped before the close (--foreign-close=abort)" :
					      "the close went ahead (--foreign-close=warn)");
	} else {
		fprintf(out, "%s: fd %d in pid %d\n", vis(kind), fd, pid);
	}
}

void finding_json(FILE *out, const struct jv *doc, const struct jv *f, const char *suppression)
{
	fprintf(out, "{\"pid\":%d,\"exe\":", json_int(doc, "pid", 0));
	json_string(out, json_str(doc, "exe", json_str(doc, "argv0", "?")));
	fputs(",\"event\":", out);
	json_string(out, json_str(doc, "event", "?"));
	for (int i = 0; i < f->n; i++) {
		fputc(',', out);
		json_string(out, f->keys[i]);
		fputc(':', out);
		json_write(out, &f->items[i]);
	}
	if (suppression) {
		fputs(",\"suppression\":", out);
		json_string(out, suppression);
	}
	fputc('}', out);
}

