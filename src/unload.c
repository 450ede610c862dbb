/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "internal.h"

/*
 * The process-wide tables (handle chunks, ledger pages) are reachable only
 * from this library's data: once dlclose() unmaps it they are lost. A
 * program that loads a plugin linking ringscope, closes its loops and
 * unloads it, round after round, must get that memory back. At exit this
 * runs too, and frees them only if no loop is left (tests/consumer/).
 */
static void __attribute__((destructor)) unload(void)
{
	if (rsc__handles_unload())
		rsc__ledger_unload();
}
