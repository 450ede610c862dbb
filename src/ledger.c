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

/* Read inline by internal.h's fast paths; a page is made here only. */
uint64_t *rsc__ledger_pages[LEDGER_PAGES];
#define pages rsc__ledger_pages

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

uint64_t rsc__ledger_owner(int fd)
{
	uint64_t *c = cell(fd, false);

	return c ? __atomic_load_n(c, __ATOMIC_ACQUIRE) : 0;
}

/* The kernel just gave @fd to @h, on a page not made yet (internal.h's fast path). */
void rsc__ledger_set_slow(int fd, uint64_t h)
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
	if (__atomic_compare_exchange_n(c, &none, h, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return 0;
	return none == h ? 0 : -EEXIST;
}

