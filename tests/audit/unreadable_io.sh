#!/bin/sh
# SPDX-License-Identifier: MIT
# ringscope-audit run facing input it cannot read and output it cannot
# write: a suppressions file that opens but fails to read (a directory,
# /proc/self/mem) is refused like a missing one; a report lost to a full
# disk (/dev/full) is exit status 127, not the command's 0; the output of
# the other subcommands lost so is exit status 2, not 0 (\"nothing changed\").
. "$(dirname "$0")/lib.sh"

# unreadable_supp FILE: run refuses FILE with exit 2, in one line naming it.
unreadable_supp() {
	"$AUDIT" run --suppressions "$1" -- true > /dev/null 2> "$TMP/supp.err"
	rc=$?
	[ $rc = 2 ] || fail "suppressions $1: exit status $rc, wanted 2"
	[ "$(wc -l < "$TMP/supp.err")" = 1 ] || fail "suppressions $1: not one line: $(cat "$TMP/supp.err")"
	grep -qF -- "$1:0: cannot read:" "$TMP/supp.err" || fail "suppressions $1: message was: $(cat "$TMP/supp.err")"
}
unreadable_supp "$TMP"
[ -r /proc/self/mem ] && unreadable_supp /proc/self/mem

if [ -c /dev/full ] && [ -w /dev/full ]; then
	for fmt in "" --json; do
		"$AUDIT" run $fmt --output /dev/full -- true 2> "$TMP/full.err"
		rc=$?
		[ $rc = 127 ] || fail "run $fmt --output /dev/full: exit status $rc, wanted 127"
		grep -qF "cannot write /dev/full: No space left on device" "$TMP/full.err" ||
			fail "run $fmt --output /dev/full: message was: $(cat "$TMP/full.err")"
		"$AUDIT" run $fmt -- true 2> /dev/full
		rc=$?
		[ $rc = 127 ] || fail "run $fmt with standard error full: exit status $rc, wanted 127"
	done
	echo '{"pid":1,"time":0,"fds":[]}' > "$TMP/a.json"
	for args in "diff $TMP/a.json $TMP/a.json" "diff --json $TMP/a.json $TMP/a.json" \
		"watch --interval 0.05 --for 0.2 $$" "snapshot --json $$" "snapshot $$" "--help"; do
		"$AUDIT" $args > /dev/full 2> "$TMP/out.err"
		rc=$?
		[ $rc = 2 ] || fail "$args > /dev/full: exit status $rc, wanted 2"
		grep -qF "cannot write standard output: No space left on device" "$TMP/out.err" ||
			fail "$args > /dev/full: message was: $(cat "$TMP/out.err")"
	done
fi
finish
