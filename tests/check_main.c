/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

#include "helpers.h"

int main(void)
{
	struct rsc_loop *loop;
	SRunner *sr;
	int failed, ret;

	/* No io_uring at all: nothing here can run, and that is not a pass. */
	ret = rsc_loop_new(&loop, 8, 0);
	if (ret < 0) {
		printf("SKIP all tests: %s\n", rsc_last_error());
		return 77;
	}
	if (rsc_loop_close(loop) < 0)
		return 99; /* a hard error, as automake reads it */

	sr = srunner_create(make_loop_suite());
	srunner_add_suite(sr, make_scope_suite());
	srunner_add_suite(sr, make_errors_suite());
	srunner_add_suite(sr, make_managers_suite());
	srunner_add_suite(sr, make_cancel_suite());
	srunner_add_suite(sr, make_audit_suite());
	srunner_add_suite(sr, make_args_suite());
	srunner_add_suite(sr, make_faults_suite());
	srunner_add_suite(sr, make_io_suite());
	srunner_add_suite(sr, make_net_suite());
	srunner_add_suite(sr, make_ownership_suite());
	srunner_add_suite(sr, make_ledger_closes_suite());
	srunner_add_suite(sr, make_deadline_suite());
	srunner_add_suite(sr, make_server_suite());
	srunner_add_suite(sr, make_observe_suite());
	srunner_add_suite(sr, make_direct_suite());
	srunner_add_suite(sr, make_hostile_suite());
	srunner_add_suite(sr, make_hostile_core_suite());
	srunner_add_suite(sr, make_hostile_tools_suite());
	srunner_add_suite(sr, make_hostile_servers_suite());
	srunner_add_suite(sr, make_hostile_direct_suite());
	srunner_add_suite(sr, make_multishot_suite());
	srunner_add_suite(sr, make_handover_suite());
	srunner_add_suite(sr, make_shared_ring_suite());
	srunner_add_suite(sr, make_reentry_suite());
	srunner_add_suite(sr, make_pages_suite());
	srunner_add_suite(sr, make_hostile_obs_suite());
	srunner_add_suite(sr, make_acceptance_suite());
	srunner_add_suite(sr, make_hostile_loop_suite());
	srunner_add_suite(sr, make_pages_entries_suite());
	srunner_add_suite(sr, make_hostile_scopes_suite());
	srunner_add_suite(sr, make_cancel_subtree_suite());
	srunner_add_suite(sr, make_hostile_direct2_suite());
	srunner_add_suite(sr, make_hostile_own_suite());
	srunner_add_suite(sr, make_hostile_io_suite());
	srunner_add_suite(sr, make_hostile_servers2_suite());
	srunner_add_suite(sr, make_hostile_obs2_suite());
	srunner_add_suite(sr, make_hostile_managers_suite());
	srunner_add_suite(sr, make_hostile_host_suite());
	srunner_add_suite(sr, make_hostile_chains_suite());
	srunner_add_suite(sr, make_hostile_threads_suite());
	srunner_add_suite(sr, make_hostile_design_suite());
	srunner_add_suite(sr, make_alloc_faults_suite());
	srunner_add_suite(sr, make_hostile_mix_suite());
	srunner_add_suite(sr, make_hostile_audit_suite());
	srunner_add_suite(sr, make_hostile_mix2_suite());
	srunner_add_suite(sr, make_hostile_programs_suite());
	srunner_add_suite(sr, make_unwind_errors_suite());
	srunner_add_suite(sr, make_hostile_fallbacks_suite());
	srunner_add_suite(sr, make_hostile_loose_suite());
	srunner_add_suite(sr, make_hostile_newapi_suite());
	srunner_add_suite(sr, make_hunt_suite());
	srunner_add_suite(sr, make_fork_suite());
	srunner_add_suite(sr, make_blackbox_own_suite());
	srunner_add_suite(sr, make_blackbox_obs_suite());
	srunner_add_suite(sr, make_blackbox_srv_suite());
	srunner_add_suite(sr, make_hot_paths_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
