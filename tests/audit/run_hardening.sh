#!/bin/sh
# SPDX-License-Identifier: MIT
# 'ringscope-audit run' where programs push it: a leak up to EMFILE, open
# and close inside a signal handler, a thousand execs in one process, and a
# relative TMPDIR with a program that calls chdir.
. "$(dirname "$0")/lib.sh"

[ -f "$RINGSCOPE_PRELOAD" ] || skip "no preload library at $RINGSCOPE_PRELOAD (shared libraries disabled?)"
echo data > "$TMP/f"

# Every descriptor leaked up to EMFILE is reported: the report's own
# descriptors were reserved at start-up.
(ulimit -n 64 && "$AUDIT" run --json --output "$TMP/emfile.json" --error-exitcode 99 \
	-- "$P/emfile_leak" "$TMP/f" > "$TMP/emfile.out")
rc=$?
n=$(sed -n 's/^leaked //p' "$TMP/emfile.out")
[ "${n:-0}" -gt 40 ] || fail "emfile_leak leaked only '$n' before EMFILE"
[ $rc = 99 ] || fail "leak up to EMFILE: exit status $rc, wanted 99"
expect "$TMP/emfile.json" --count "$n" --processes 1 --has "kind=leaked target=$TMP/f bt=hoard"

# The same when the program lowers its own limit (soft and hard) after start-up:
# the preload's descriptors move under it (bug 98: they stayed above, and the
# room they left at the report was numbers the program could no longer have).
"$AUDIT" run --json --output "$TMP/emfile2.json" --error-exitcode 99 \
	-- "$P/emfile_leak" "$TMP/f" 64 > "$TMP/emfile2.out"
rc=$?
n=$(sed -n 's/^leaked //p' "$TMP/emfile2.out")
[ "${n:-0}" -gt 40 ] || fail "emfile_leak under its own limit leaked only '$n' before EMFILE"
[ $rc = 99 ] || fail "leak up to a limit the program set: exit status $rc, wanted 99"
expect "$TMP/emfile2.json" --count "$n" --processes 1 --has "kind=leaked target=$TMP/f bt=hoard"

# A signal handler that opens and closes runs as it does alone (no deadlock).
timeout 30 "$AUDIT" run --json --output "$TMP/sig.json" -- "$P/sig_openclose" "$TMP/f" 100000 \
	> "$TMP/sig.out"
rc=$?
[ $rc = 0 ] || fail "open/close in a signal handler: exit status $rc (124: it hung)"
grep -q "^pairs 100000, handler ran [1-9][0-9]* times" "$TMP/sig.out" ||
	fail "the handler did not run: $(cat "$TMP/sig.out")"
[ $rc = 124 ] || expect "$TMP/sig.json" --count 0 --status 0

# 1,100 execs in one process: no empty reports, and the leak of the last
# image is not lost.
"$AUDIT" run --json --output "$TMP/chain.json" -- "$P/exec_chain" 1100 "$TMP/f" > "$TMP/chain.out"
fd=$(sed -n 's/^fd //p' "$TMP/chain.out")
expect "$TMP/chain.json" --count 1 --processes 1 --has "kind=leaked fd=$fd target=$TMP/f bt=open_last"

# A relative TMPDIR and a program that calls chdir.
mkdir "$TMP/rel"
(cd "$TMP" && TMPDIR=rel "$AUDIT" run --json --output "$TMP/rel.json" \
	-- "$P/leak_file" "$TMP/f" chdir > "$TMP/rel.out")
fd=$(sed -n 's/^fd //p' "$TMP/rel.out")
expect "$TMP/rel.json" --count 1 --processes 1 --has "kind=leaked fd=$fd target=$TMP/f bt=open_config"
[ -z "$(ls "$TMP/rel")" ] || fail "the report directory was left in the relative TMPDIR"

# A program that closes every descriptor above 2 with close_range, the
# preload's own included: the numbers it then gets are its own to close,
# and its leak is still reported.
(ulimit -n 64 && "$AUDIT" run --json --output "$TMP/closeall.json" \
	-- "$P/leak_file" "$TMP/f" closeall > "$TMP/closeall.out")
fd=$(sed -n 's/^fd //p' "$TMP/closeall.out")
expect "$TMP/closeall.json" --count 1 --status 0 --processes 1 \
	--has "kind=leaked fd=$fd target=$TMP/f bt=open_config"
finish
