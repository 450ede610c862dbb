/* SPDX-License-Identifier: MIT */
#ifndef RINGSCOPE_AUDIT_SYMBOLIZE_H
#define RINGSCOPE_AUDIT_SYMBOLIZE_H

#include <stdint.h>

struct jv;
struct symbolizer;

/*
 * A symbolizer for the process whose file-backed /proc/PID/maps lines are
 * @maps (as the preload writes them). NULL on allocation failure only: a
 * module that cannot be read gives "module+0xoff" frames.
 */
struct symbolizer *sym_open(const char *maps);
void sym_close(struct symbolizer *sy);

/*
 * The frames of return address @ra, innermost first: one per inlined
 * function, then the function itself, each "func (file.c:LINE)" with debug
 * information, else "symbol+0xoff (module)", else "module+0xoff" or the
 * address. Calls @emit for each; returns how many.
 */
int sym_frames(struct symbolizer *sy, uint64_t ra,
	       void (*emit)(void *arg, const char *frame), void *arg);

/*
 * Rewrites, in place, every raw frame ("0x...") of the findings of a
 * preload report @doc (its "backtrace", "creation_backtrace",
 * "closer_backtrace", "sites" ... arrays, and "closed_before_at"), using the
 * report's own "maps". Returns 0 or -ENOMEM.
 */
int sym_report(struct jv *doc);

/* "libdw <version>" or "none": what the build symbolizes with. */
const char *sym_backend(void);

#endif
