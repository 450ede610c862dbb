#!/bin/sh
# SPDX-License-Identifier: MIT
# A program that opens and closes every way (libc, io_uring OPENAT/CLOSE,
# raw syscalls, threads reusing numbers, fork, exec) must give no finding.
. "$(dirname "$0")/lib.sh"

[ -f "$RINGSCOPE_PRELOAD" ] || skip "no preload library at $RINGSCOPE_PRELOAD (shared libraries disabled?)"
TRUE=$(command -v true)
case $TRUE in /*) ;; *) TRUE=/bin/true ;; esac

"$AUDIT" run --json --output "$TMP/clean.json" --follow-forks --error-exitcode 3 \
	-- "$P/clean" "$TMP" "$TRUE" > "$TMP/clean.out"
rc=$?
[ $rc = 0 ] || fail "exit status $rc"
expect "$TMP/clean.json" --count 0 --status 0
grep -q "^uring yes" "$TMP/clean.out" ||
	echo "note $name: the io_uring part did not run (kernel lacks io_uring or IORING_OP_OPENAT)"

# The same without backtraces.
"$AUDIT" run --json --output "$TMP/clean2.json" --no-backtrace -- "$P/clean" "$TMP" "$TRUE" > /dev/null
expect "$TMP/clean2.json" --count 0 --status 0
finish
