/* SPDX-License-Identifier: MIT */
/*
 * Raw return addresses from the preload turned into "func (file.c:LINE)",
 * outside the audited program and only for what is reported. With elfutils'
 * libdw: it reads DWARF (inlined frames included) and the ELF symbol tables,
 * and is maintained with the toolchain. Without it: "module+0xoff".
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_LIBDW
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#endif

#include "json.h"
#include "symbolize.h"

struct symbolizer {
	char *maps;
#ifdef HAVE_LIBDW
	Dwfl *dwfl;
	bool tried; /* Dwfl is made at the first frame: a clean report costs nothing */
#endif
};

const char *sym_backend(void)
{
#ifdef HAVE_LIBDW
	return "libdw";
#else
	return "none";
#endif
}

/*
 * A module path as /proc/PID/maps writes it into the file's name: the kernel
 * writes a newline in a path as \012 (and nothing else escaped), so a
 * program under such a directory was neither opened for its symbols nor
 * named as the report names its exe. The text \012 in a real name is
 * ambiguous: kept when only that path exists.
 */
static void maps_path(const char *raw, size_t n, char *out, size_t len)
{
	char kept[4096];
	size_t i, o = 0;

	for (i = 0; i < n && o + 1 < len; i++) {
		if (raw[i] == '\\' && n - i >= 4 && !strncmp(raw + i, "\\012", 4)) {
			out[o++] = '\n';
			i += 3;
		} else {
			out[o++] = raw[i];
		}
	}
	out[o] = '\0';
	if (o == n || access(out, F_OK) == 0)
		return;
	if ((size_t)snprintf(kept, sizeof(kept), "%.*s", (int)n, raw) < sizeof(kept) &&
	    access(kept, F_OK) == 0)
		snprintf(out, len, "%s", kept);
}

/* The maps line holding @a: its module path and @a's offset in the file. */
static bool maps_lookup(const char *maps, uint64_t a, char *mod, size_t len, uint64_t *off)
{
	for (const char *l = maps; l && *l;) {
		unsigned long long lo, hi, foff;
		int pos = 0;
		const char *nl = strchr(l, '\n'), *path;

		if (sscanf(l, "%llx-%llx %*s %llx %*s %*s %n", &lo, &hi, &foff, &pos) == 3 && pos &&
		    a >= lo && a < hi) {
			path = l + pos;
			maps_path(path, nl ? (size_t)(nl - path) : strlen(path), mod, len);
			*off = a - lo + foff;
			return true;
		}
		l = nl ? nl + 1 : NULL;
	}
	return false;
}

struct symbolizer *sym_open(const char *maps)
{
	struct symbolizer *sy = calloc(1, sizeof(*sy));

	if (!sy)
		return NULL;
	sy->maps = strdup(maps ? maps : "");
	if (!sy->maps) {
		free(sy);
		return NULL;
	}
	return sy;
}

#ifdef HAVE_LIBDW
/* libdw's own, given the module's path as the file system spells it (maps_path). */
static int find_elf(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
		    char **file_name, Elf **elfp)
{
	char path[4096];

	if (modname && modname[0] == '/' && strstr(modname, "\\012")) {
		maps_path(modname, strlen(modname), path, sizeof(path));
		modname = path;
	}
	return dwfl_linux_proc_find_elf(mod, userdata, modname, base, file_name, elfp);
}

static Dwfl *sym_dwfl(struct symbolizer *sy)
{
	static char *debuginfo_path;
	static const Dwfl_Callbacks cb = {
		.find_elf = find_elf,
		.find_debuginfo = dwfl_standard_find_debuginfo,
		.debuginfo_path = &debuginfo_path,
	};
	FILE *f;

	if (sy->tried)
		return sy->dwfl;
	sy->tried = true;
	f = fmemopen(sy->maps, strlen(sy->maps), "r");
	sy->dwfl = f ? dwfl_begin(&cb) : NULL;
	if (sy->dwfl) {
		dwfl_report_begin(sy->dwfl);
		if (dwfl_linux_proc_maps_report(sy->dwfl, f) < 0 ||
		    dwfl_report_end(sy->dwfl, NULL, NULL) != 0) {
			dwfl_end(sy->dwfl);
			sy->dwfl = NULL;
		}
	}
	if (f)
		fclose(f);
	return sy->dwfl;
}
#endif

void sym_close(struct symbolizer *sy)
{
	if (!sy)
		return;
#ifdef HAVE_LIBDW
	if (sy->dwfl)
		dwfl_end(sy->dwfl);
#endif
	free(sy->maps);
	free(sy);
}

static const char *base_name(const char *p)
{
	const char *s = p ? strrchr(p, '/') : NULL;
	return s ? s + 1 : p;
}

#ifdef HAVE_LIBDW
static const char *die_func_name(Dwarf_Die *die)
{
	Dwarf_Attribute attr;
	const char *name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));

	return name ? name : "??";
}

/* The DWARF view: one frame per inlined scope, then the real function. */
static int dwarf_frames(Dwfl_Module *m, Dwarf_Addr a,
			void (*emit)(void *arg, const char *frame), void *arg)
{
	Dwarf_Addr bias;
	Dwarf_Die *cu = dwfl_module_addrdie(m, a, &bias), *scopes = NULL;
	Dwfl_Line *ln = dwfl_module_getsrc(m, a);
	const char *file = NULL;
	int line = 0, n, count = 0;
	Dwarf_Files *files = NULL;
	size_t nfiles = 0;
	char buf[1024];

	if (!cu || !ln)
		return 0;
	file = dwfl_lineinfo(ln, NULL, &line, NULL, NULL, NULL);
	n = dwarf_getscopes(cu, a - bias, &scopes);
	if (n <= 0)
		return 0;
	/*
	 * Past an inlined instance, dwarf_getscopes() continues with the scopes
	 * of the inline's abstract definition; the caller is among the parents
	 * of the instance itself, which dwarf_getscopes_die() walks.
	 */
	{
		Dwarf_Die *chain = NULL;
		int m2 = dwarf_getscopes_die(&scopes[0], &chain);

		if (m2 > 0) {
			free(scopes);
			scopes = chain;
			n = m2;
		}
	}
	dwarf_getsrcfiles(cu, &files, &nfiles);
	for (int i = 0; i < n; i++) {
		int tag = dwarf_tag(&scopes[i]);
		Dwarf_Attribute attr;
		Dwarf_Word w;

		if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine)
			continue;
		snprintf(buf, sizeof(buf), "%s (%s:%d)", die_func_name(&scopes[i]),
			 file ? base_name(file) : "??", line);
		emit(arg, buf);
		count++;
		if (tag == DW_TAG_subprogram)
			break;
		/* The caller's position is the inlined call site. */
		file = NULL;
		line = 0;
		if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &attr), &w) == 0 && files)
			file = dwarf_filesrc(files, w, NULL, NULL);
		if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &attr), &w) == 0)
			line = (int)w;
	}
	free(scopes);
	return count;
}
#endif

int sym_frames(struct symbolizer *sy, uint64_t ra,
	       void (*emit)(void *arg, const char *frame), void *arg)
{
	char buf[4200], mod[4096];
	uint64_t off;
	/* A return address is past the call: the call is one byte earlier. */
	uint64_t a = ra ? ra - 1 : 0;

#ifdef HAVE_LIBDW
	Dwfl *dwfl = sy ? sym_dwfl(sy) : NULL;
	Dwfl_Module *m = dwfl ? dwfl_addrmodule(dwfl, a) : NULL;

	if (m) {
		GElf_Off soff = 0;
		GElf_Sym sym;
		const char *mainfile = NULL, *name;
		int n = dwarf_frames(m, a, emit, arg);

		if (n > 0)
			return n;
		dwfl_module_info(m, NULL, NULL, NULL, NULL, NULL, &mainfile, NULL);
		name = dwfl_module_addrinfo(m, a, &soff, &sym, NULL, NULL, NULL);
		if (name) {
			snprintf(buf, sizeof(buf), "%s+0x%" PRIx64 " (%s)", name, (uint64_t)soff + 1,
				 mainfile ? mainfile : dwfl_module_info(m, NULL, NULL, NULL, NULL, NULL,
									NULL, NULL));
			emit(arg, buf);
			return 1;
		}
	}
#endif
	if (sy && maps_lookup(sy->maps, a, mod, sizeof(mod), &off))
		snprintf(buf, sizeof(buf), "%s+0x%" PRIx64, mod, off + 1);
	else
		snprintf(buf, sizeof(buf), "0x%" PRIx64, ra);
	emit(arg, buf);
	return 1;
}

struct frame_list {
	struct jv *items;
	int n, cap;
	bool oom;
};

static void add_frame(void *arg, const char *frame)
{
	struct frame_list *fl = arg;

	if (fl->oom)
		return;
	if (fl->n == fl->cap) {
		int cap = fl->cap ? fl->cap * 2 : 16;
		struct jv *it = realloc(fl->items, (size_t)cap * sizeof(*it));

		if (!it) {
			fl->oom = true;
			return;
		}
		fl->items = it;
		fl->cap = cap;
	}
	memset(&fl->items[fl->n], 0, sizeof(fl->items[0]));
	fl->items[fl->n].t = J_STR;
	fl->items[fl->n].str = strdup(frame);
	if (!fl->items[fl->n].str)
		fl->oom = true;
	else
		fl->n++;
}

static bool raw_frame(const struct jv *v, uint64_t *ra)
{
	char *end;

	if (v->t != J_STR || strncmp(v->str, "0x", 2) != 0)
		return false;
	errno = 0;
	*ra = strtoull(v->str, &end, 16);
	return !errno && end != v->str + 2 && !*end;
}

static int sym_array(struct symbolizer *sy, struct jv *arr)
{
	struct frame_list fl = { 0 };
	uint64_t ra;

	for (int i = 0; i < arr->n; i++) {
		if (raw_frame(&arr->items[i], &ra))
			sym_frames(sy, ra, add_frame, &fl);
		else if (arr->items[i].t == J_STR)
			add_frame(&fl, arr->items[i].str);
	}
	if (fl.oom) {
		for (int i = 0; i < fl.n; i++)
			free(fl.items[i].str);
		free(fl.items);
		return -ENOMEM;
	}
	for (int i = 0; i < arr->n; i++)
		free(arr->items[i].str);
	free(arr->items);
	arr->items = fl.items;
	arr->n = fl.n;
	return 0;
}

static int walk(struct symbolizer *sy, struct jv *v)
{
	int ret = 0;

	for (int i = 0; i < v->n && ret == 0; i++) {
		struct jv *c = &v->items[i];
		const char *key = v->t == J_OBJ ? v->keys[i] : "";
		size_t kl = strlen(key);
		uint64_t ra;

		if (c->t == J_ARR && kl >= 9 && strcmp(key + kl - 9, "backtrace") == 0) {
			ret = sym_array(sy, c);
		} else if (c->t == J_STR && kl >= 3 && strcmp(key + kl - 3, "_at") == 0 &&
			   raw_frame(c, &ra)) {
			struct frame_list fl = { 0 };

			sym_frames(sy, ra, add_frame, &fl);
			if (fl.n > 0) {
				free(c->str);
				c->str = fl.items[0].str; /* the innermost frame */
				for (int j = 1; j < fl.n; j++)
					free(fl.items[j].str);
			}
			free(fl.items);
		} else if (c->t == J_ARR || c->t == J_OBJ) {
			ret = walk(sy, c);
		}
	}
	return ret;
}

int sym_report(struct jv *doc)
{
	struct symbolizer *sy = sym_open(json_str(doc, "maps", ""));
	int ret;

	if (!sy)
		return -ENOMEM;
	ret = walk(sy, doc);
	sym_close(sy);
	return ret;
}
