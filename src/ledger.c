/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "internal.h"

/*
 * The ownership ledger (DESIGN.md section 7): for each descriptor number,
 * the handle of the live entry that owns it, process-wide, across loops.
 * rsc_adopt() refuses a number someone owns (-EEXIST), and an auditor in
 * the process asks who owns a number at the moment it is closed. Lock-free:
 * pages of RSC__LEDGER_PAGE numbers are made on first use and never freed,
 * and each cell is one atomic word, so recording costs a store.
 */

#define LEDGER_PAGES (RSC__LEDGER_MAX_FD / RSC__LEDGER_PAGE)

static uint64_t *pages[LEDGER_PAGES];

static uint64_t *cell(int fd, bool make)
{
	uint64_t *p, *fresh = NULL;
	unsigned pi;

	if (fd < 0 || (unsigned)fd >= RSC__LEDGER_MAX_FD)
		return NULL;
	pi = (unsigned)fd / RSC__LEDGER_PAGE;
	p = __atomic_load_n(&pages[pi], __ATOMIC_ACQUIRE);
	if (!p && make) {
		fresh = calloc(RSC__LEDGER_PAGE, sizeof(*fresh));
		if (!fresh)
			return NULL;
		/* Two threads may race to make a page: one wins, one frees. */
		if (__atomic_compare_exchange_n(&pages[pi], &p, fresh, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			p = fresh;
		else
			free(fresh);
	}
	return p ? &p[(unsigned)fd % RSC__LEDGER_PAGE] : NULL;
}

/*
 * A cell whose close is in flight carries CLOSING: the kernel may have
 * freed the number already (its CQE not reaped yet), and whoever got it
 * next from open(2) may adopt it. Handles never use bit 31 (slot indices
 * stay below 2^26).
 */
#define CLOSING (1ULL << 31)

uint64_t rsc__ledger_owner(int fd)
{
	uint64_t *c = cell(fd, false), h;

	h = c ? __atomic_load_n(c, __ATOMIC_ACQUIRE) : 0;
	return h & CLOSING ? 0 : h;
}

void rsc__ledger_closing(int fd, uint64_t h)
{
	uint64_t *c = cell(fd, false);

	if (c)
		__atomic_compare_exchange_n(c, &h, h | CLOSING, false, __ATOMIC_ACQ_REL,
					    __ATOMIC_RELAXED);
}

/* The kernel just gave @fd to @h (an acquire's CQE): the kernel's word wins. */
void rsc__ledger_set(int fd, uint64_t h)
{
	uint64_t *c = cell(fd, true);

	if (c)
		__atomic_store_n(c, h, __ATOMIC_RELEASE);
}

/* @h owns @fd from now on, unless another entry does: -EEXIST then. */
int rsc__ledger_claim(int fd, uint64_t h)
{
	uint64_t *c = cell(fd, true), none = 0;

	if (!c)
		return (fd < 0 || (unsigned)fd >= RSC__LEDGER_MAX_FD) ? 0 : -ENOMEM;
	for (;;) {
		if (__atomic_compare_exchange_n(c, &none, h, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return 0;
		if (none == h)
			return 0;
		if (!(none & CLOSING))
			return -EEXIST;
		/* Its owner's close is in flight: the number is free to be had. */
	}
}

/* @h no longer owns @fd; a cell someone else claimed since stays theirs. */
void rsc__ledger_forget(int fd, uint64_t h)
{
	uint64_t *c = cell(fd, false), closing = h | CLOSING;

	if (c && !__atomic_compare_exchange_n(c, &h, 0, false, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED))
		__atomic_compare_exchange_n(c, &closing, 0, false, __ATOMIC_ACQ_REL,
					    __ATOMIC_RELAXED);
}
