// SPDX-License-Identifier: MIT
// A C++ program that links ringscope: the header's extern "C" and nothing C-only.
#include <cstdio>
#include <cstring>

#include <ringscope.h>

int main()
{
	rsc_loop *loop = 0;
	rsc_scope *scope = 0;

	if (rsc_loop_new(&loop, 0, 0) != 0 || rsc_scope_open(loop, 0, "c++", &scope) != 0)
		return 1;
	if (rsc_scope_close_wait(scope, 0) != 0 || rsc_loop_close(loop) != 0)
		return 1;
	if (std::strcmp(rsc_counter_name(RSC_CTR_SQES), "sqes") != 0)
		return 1;
	std::puts("consumer (C++): ok");
	return 0;
}
