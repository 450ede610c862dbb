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

# Nothing audited (the program drops LD_PRELOAD before it runs) is not a
# clean run: the warning is in the JSON too, not only in the text.
"$AUDIT" run --json --output "$TMP/none.json" -- env -u LD_PRELOAD "$TRUE"
expect "$TMP/none.json" --count 0 --processes 0
grep -q '"warning":"no report: ' "$TMP/none.json" || fail "run --json of an unaudited program: $(cat "$TMP/none.json")"
"$AUDIT" run -- env -u LD_PRELOAD "$TRUE" 2> "$TMP/none.txt"
grep -q "warning: no report" "$TMP/none.txt" || fail "run of an unaudited program: $(cat "$TMP/none.txt")"
finish
