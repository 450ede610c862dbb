/* SPDX-License-Identifier: MIT */
/*
 * A fixed amount of work for instruction counting (callgrind): N rounds of
 * one scope of 64 rsc_open()s, entered, then unwound. Wall-clock ratios live
 * in bench.c; this one is immune to a busy machine.
 *   pairs DIR N      (DIR holds files f0 .. f63)
 * With PAIRS_DIRECT=1 in the environment, into direct slots (RSC_DIRECT);
 * with PAIRS_PER_SCOPE=K, scopes of K (1..64) instead of 64.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringscope.h"

int main(int argc, char **argv)
{
	struct rsc_loop *loop;
	struct rsc_scope *s;
	static char paths[64][4096];
	int round, i, n;
	unsigned flags = getenv("PAIRS_DIRECT") ? RSC_DIRECT : 0;
	int per_scope = getenv("PAIRS_PER_SCOPE") ? atoi(getenv("PAIRS_PER_SCOPE")) : 64;

	if (argc != 3 || (n = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: pairs DIR ROUNDS\n");
		return 2;
	}
	if (per_scope < 1 || per_scope > 64) {
		fprintf(stderr, "pairs: PAIRS_PER_SCOPE must be 1..64\n");
		return 2;
	}
	for (i = 0; i < 64; i++) /* outside the counted loop */
		snprintf(paths[i], sizeof(paths[i]), "%s/f%d", argv[1], i);
	if (rsc_loop_new(&loop, 512, flags ? RSC_LOOP_DIRECT : 0) < 0)
		return 1;
	for (round = 0; round < n; round++) {
		if (rsc_scope_open(loop, NULL, "pairs", &s) < 0)
			return 1;
		for (i = 0; i < per_scope; i++) {
			if (rsc_open(s, AT_FDCWD, paths[i], O_RDONLY, 0, flags, NULL) < 0)
				return 1;
		}
		/* As bench.c's rsc_batch() does it. */
		if (rsc_loop_run(loop, RSC_RUN_DEFAULT) != 0 || rsc_scope_close(s, NULL, NULL) < 0 ||
		    rsc_loop_run(loop, RSC_RUN_DEFAULT) != 0)
			return 1;
	}
	return rsc_loop_close(loop) < 0;
}
