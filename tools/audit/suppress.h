/* SPDX-License-Identifier: MIT */
#ifndef RINGSCOPE_AUDIT_SUPPRESS_H
#define RINGSCOPE_AUDIT_SUPPRESS_H

#include <stdbool.h>
#include <stdio.h>

struct jv;

/*
 * Suppressions, in valgrind's block form (see ringscope-audit(1)):
 *   {
 *      a-name
 *      ringscope-audit:KIND-GLOB
 *      target:GLOB            (optional)
 *      fun:GLOB | obj:GLOB | ...   (zero or more, from the innermost frame)
 *   }
 */
struct supp {
	char *name, *kind, *target;
	char **frames; /* "fun:GLOB", "obj:GLOB" or "..." */
	int n_frames;
	int used;
};

struct supp_set {
	struct supp *s;
	int n;
};

/* Adds the suppressions of @path; 0, or -1 with "FILE:LINE: what" in @err. */
int supp_load(struct supp_set *set, const char *path, char *err, size_t errlen);
void supp_free(struct supp_set *set);
/* The first suppression that matches finding @f, or NULL. */
struct supp *supp_match(const struct supp_set *set, const struct jv *f);
/* A suppression that matches exactly @f, as text (malloc'd), for --gen-suppressions. */
char *supp_generate(const struct jv *f);

#endif
