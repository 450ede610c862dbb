#!/bin/sh
# SPDX-License-Identifier: MIT
# A path's kind is what the file is, not where its name points: a named FIFO
# is a pipe, a shm_open(3) file in /dev/shm a file, a directory a dir.
. "$(dirname "$0")/lib.sh"

mkfifo "$TMP/fifo" || skip "no mkfifo"
SHM=""
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	SHM="/dev/shm/rsc-kinds.$$"
	: > "$SHM"
fi
(
	exec 7<> "$TMP/fifo"
	exec 9< "$TMP"
	[ -n "$SHM" ] && exec 8< "$SHM"
	"$AUDIT" snapshot --json # of this subshell, its parent: not the last command, so not exec'd
	echo "rc=$?" > "$TMP/rc"
) > "$TMP/snap.json"
rc=$(sed 's/rc=//' "$TMP/rc")
[ -n "$SHM" ] && rm -f "$SHM"
[ $rc = 0 ] || fail "snapshot: exit status $rc"
grep -q '"fd":7,"kind":"pipe"' "$TMP/snap.json" || fail "a named FIFO: $(cat "$TMP/snap.json")"
grep -q '"fd":9,"kind":"dir"' "$TMP/snap.json" || fail "a directory: $(cat "$TMP/snap.json")"
if [ -n "$SHM" ]; then
	grep -q '"fd":8,"kind":"file"' "$TMP/snap.json" || fail "a file in /dev/shm: $(cat "$TMP/snap.json")"
fi

# The same in run's report (the preload's fdkind): a FIFO the program leaked.
if [ -f "$RINGSCOPE_PRELOAD" ]; then
	"$AUDIT" run --json --output "$TMP/run.json" -- sh -c "exec 5<> '$TMP/fifo'; exit 0"
	grep -q '"fd":5,"target":"[^"]*fifo","fdkind":"pipe"' "$TMP/run.json" ||
		fail "run: a leaked FIFO: $(cat "$TMP/run.json")"
fi
finish
