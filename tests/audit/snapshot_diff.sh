#!/bin/sh
# SPDX-License-Identifier: MIT
# snapshot and diff on a child whose descriptors change between two
# snapshots, stepped through a FIFO so nothing depends on timing; and the
# errors: a process that does not exist, malformed JSON.
. "$(dirname "$0")/lib.sh"

echo data > "$TMP/f"
echo other > "$TMP/g"
mkfifo "$TMP/in" || skip "cannot make a FIFO"
# fd 7: f, then g (changed identity); fd 9: closed; fd 8: appears.
sh -c 'exec 6<"$1" 7<"$2" 9<"$2"; echo ready; read x <&6
       exec 7<"$3" 9<&- 8<"$2"; echo step; read y <&6' \
	child "$TMP/in" "$TMP/f" "$TMP/g" > "$TMP/child.out" &
child=$!
exec 5> "$TMP/in"
wait_for "$TMP/child.out" ready || fail "the child did not start"

"$AUDIT" snapshot "$child" > "$TMP/a.txt" || fail "snapshot (table) failed"
"$AUDIT" snapshot --json "$child" > "$TMP/a.json" || fail "snapshot --json failed"
grep -Eq "^ +7  file +NO .* $TMP/f\$" "$TMP/a.txt" ||
	{ fail "fd 7 not in the table as a file without CLOEXEC"; cat "$TMP/a.txt"; }
grep -q '"fd":7,"kind":"file","target":"'"$TMP/f"'","flags":"[0-7]*","cloexec":false' "$TMP/a.json" ||
	{ fail "fd 7 not in the JSON snapshot"; cat "$TMP/a.json"; }
echo go >&5
wait_for "$TMP/child.out" step || fail "the child did not step"
"$AUDIT" snapshot --json "$child" > "$TMP/b.json" || fail "second snapshot failed"

"$AUDIT" diff "$TMP/a.json" "$TMP/b.json" > "$TMP/diff.txt"
rc=$?
[ $rc = 1 ] || fail "diff of different snapshots: exit status $rc, wanted 1"
grep -Eq "^\+ +8  file +$TMP/f\$" "$TMP/diff.txt" || fail "fd 8 did not appear"
grep -Eq "^- +9  file +$TMP/f\$" "$TMP/diff.txt" || fail "fd 9 did not disappear"
grep -Eq "^~ +7  file +$TMP/g\$" "$TMP/diff.txt" || fail "fd 7 did not change identity"
grep -q "^1 appeared, 1 disappeared, 1 changed identity\$" "$TMP/diff.txt" ||
	{ fail "wrong summary"; cat "$TMP/diff.txt"; }
"$AUDIT" diff --json "$TMP/a.json" "$TMP/b.json" > "$TMP/diff.json"
grep -q '"change":"appeared","fd":8,' "$TMP/diff.json" || fail "diff --json lacks fd 8"
"$AUDIT" diff "$TMP/a.json" "$TMP/a.json" > /dev/null || fail "diff of a snapshot with itself found changes"
echo done >&5
exec 5>&-
wait "$child"

# Errors.
"$AUDIT" snapshot "$child" 2> "$TMP/gone.err"
rc=$?
[ $rc = 1 ] || fail "snapshot of an exited process: exit status $rc"
grep -q "no such process: $child" "$TMP/gone.err" || fail "message was: $(cat "$TMP/gone.err")"
printf '{"pid": 1, "fds": [ {"fd": 3,}\n' > "$TMP/bad.json"
"$AUDIT" diff "$TMP/bad.json" "$TMP/a.json" 2> "$TMP/bad.err"
rc=$?
[ $rc = 2 ] || fail "diff of malformed JSON: exit status $rc"
grep -q "bad.json: malformed JSON: line 1, column" "$TMP/bad.err" || fail "message was: $(cat "$TMP/bad.err")"

# Reading another user's process needs ptrace permission: only as root.
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null; then
	sleep 30 &
	victim=$!
	setpriv --reuid=65534 --regid=65534 --clear-groups "$AUDIT" snapshot "$victim" 2> "$TMP/perm.err"
	kill "$victim"
	if grep -q "ringscope-audit:" "$TMP/perm.err"; then
		grep -q "needs ptrace permission" "$TMP/perm.err" ||
			fail "EACCES message was: $(cat "$TMP/perm.err")"
	else
		echo "note $name: the EACCES check did not run (the tool cannot run as nobody here)"
	fi
fi
finish
