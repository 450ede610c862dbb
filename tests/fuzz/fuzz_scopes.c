/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ringscope.h"
#include "program.h"

/*
 * libFuzzer harness: the bytes are a scope program, decoded and checked by
 * the same interpreter and oracle as the soak (tests/soak/program.c). Any
 * oracle violation aborts, so libFuzzer keeps the input as a crash; ASan,
 * UBSan and LeakSanitizer watch the library underneath. 'make fuzz'.
 */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct prog_env env;
static struct prog_stats stats;

static void cleanup(void)
{
	prog_env_fini(&env);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int ret;

	(void)argc;
	(void)argv;
	ret = prog_env_init(&env);
	if (ret < 0) {
		fprintf(stderr, "fuzz_scopes: setup failed (%d): %s\n", ret, rsc_last_error());
		exit(1);
	}
	if (!env.have_faults) {
		fprintf(stderr, "fuzz_scopes: built without RSC_FAULT_INJECTION\n");
		exit(1);
	}
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[1024];

	if (prog_run(&env, data, size, &stats, why, sizeof(why)) < 0) {
		fprintf(stderr, "fuzz_scopes: VIOLATION: %s\n"
			"fuzz_scopes: replay with PROG_VERBOSE=1 ./fuzz_scopes <input>\n", why);
		abort();
	}
	return 0;
}
