#!/bin/sh
# SPDX-License-Identifier: MIT
# watch flags a process whose descriptor count grows steadily (and draws
# it), and flags nothing on one whose count stays put.
. "$(dirname "$0")/lib.sh"

echo data > "$TMP/f"
# 60 opens, one every 100 ms: still growing long after the 2 s watch ends,
# even if the watch starts late on a loaded machine.
"$P/grow" "$TMP/f" 60 100 > "$TMP/grow.out" &
grower=$!
"$P/grow" "$TMP/f" 0 100 > "$TMP/steady.out" &
steady=$!
wait_for "$TMP/grow.out" ready || fail "grow did not start"
wait_for "$TMP/steady.out" ready || fail "steady grow did not start"

"$AUDIT" watch --interval 0.1 --for 2 --plot "$TMP/w.svg" "$grower" > "$TMP/w.txt"
rc=$?
[ $rc = 1 ] || fail "watch of a growing process: exit status $rc, wanted 1"
grep -q "^steady growth: file from [0-9]* to [0-9]* in" "$TMP/w.txt" ||
	{ fail "no growth flagged for files"; cat "$TMP/w.txt"; }
grep -q "<svg" "$TMP/w.svg" && grep -q "</svg>" "$TMP/w.svg" && grep -q "file ([0-9]*) growing" "$TMP/w.svg" ||
	fail "the SVG plot is missing or does not mark the growth"
"$AUDIT" watch --interval 0.1 --for 1.5 --json "$grower" > "$TMP/w.json"
grep -q '"growth":\[.*"kind":"file"' "$TMP/w.json" || { fail "no growth in --json"; cat "$TMP/w.json"; }

"$AUDIT" watch --interval 0.1 --for 0.6 "$steady" > "$TMP/s.txt"
rc=$?
[ $rc = 0 ] || fail "watch of a steady process: exit status $rc, wanted 0"
grep -q "^no steady growth" "$TMP/s.txt" || { fail "growth flagged on a steady process"; cat "$TMP/s.txt"; }

kill "$grower" "$steady"
wait 2> /dev/null
"$AUDIT" watch --for 1 "$grower" 2> "$TMP/gone.err"
[ $? = 2 ] || fail "watch of an exited process: wanted exit status 2"
grep -q "no such process" "$TMP/gone.err" || fail "message was: $(cat "$TMP/gone.err")"
finish
