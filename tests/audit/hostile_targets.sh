#!/bin/sh
# SPDX-License-Identifier: MIT
# Targets the kernel makes hard to read: a path longer than PATH_MAX (its
# /proc/PID/fd link cannot be read: the descriptor is still listed and
# reported), direct descriptors whose names hold a space, tab, backslash,
# newline or ESC (fdinfo prints them octal-escaped: decoded back to the exact
# name), and a ring with 1,000 registered files of long names (its fdinfo
# passes 64 KiB: every slot listed, none cut).
. "$(dirname "$0")/lib.sh"

PY=$(command -v python3)

# in_deep CMD...: runs CMD (a subshell) in a directory whose path is longer
# than PATH_MAX, holding a file f; reached one component at a time (-P: a
# logical path that long is refused).
c=$(printf '%0250d' 0)
in_deep() (
	cd "$TMP" || exit 99
	for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18; do
		mkdir -p "d$i$c" && cd -P "d$i$c" || exit 99
	done
	echo data > f
	"$@"
)

# snapshot: the descriptor on the long path is listed, not the whole snapshot lost.
in_deep sh -c 'exec 7<f; echo $$ > "$1"; exec sleep 30' holder "$TMP/holder.pid" &
job=$!
wait_for "$TMP/holder.pid" '[0-9]' || fail "the holder did not start"
holder=$(cat "$TMP/holder.pid")
"$AUDIT" snapshot "$holder" > "$TMP/long.txt" 2> "$TMP/long.err"
rc=$?
[ $rc = 0 ] || fail "snapshot of a process with a path longer than PATH_MAX: exit status $rc: $(cat "$TMP/long.err")"
grep -Eq '^ +7  file .*\(path longer than PATH_MAX\)$' "$TMP/long.txt" ||
	{ fail "snapshot does not list fd 7 on the long path"; cat "$TMP/long.txt"; }
"$AUDIT" snapshot --json "$holder" > "$TMP/long.json" || fail "snapshot --json: exit status $?"
grep -q '"fd":7,"kind":"file","target":"(path longer than PATH_MAX)"' "$TMP/long.json" ||
	{ fail "snapshot --json does not list fd 7"; cat "$TMP/long.json"; }
timeout 10 "$AUDIT" watch --interval 0.1 --for 0.3 "$holder" > "$TMP/longw.txt" 2>&1
rc=$?
[ $rc = 0 ] || fail "watch of a process with a path longer than PATH_MAX: exit status $rc: $(cat "$TMP/longw.txt")"
kill "$holder"
wait "$job" 2> /dev/null

if [ -f "$RINGSCOPE_PRELOAD" ]; then
	# run: a leak and an exec leak on the long path are reported, not dropped.
	in_deep "$AUDIT" run --json --output "$TMP/longrun.json" -- sh -c 'exec 7<f; exit 0'
	expect "$TMP/longrun.json" --count 1 --has "kind=leaked fd=7 fdkind=file"
	grep -qF '"fd":7,"target":"(path longer than PATH_MAX)","fdkind":"file"' "$TMP/longrun.json" ||
		fail "run: the leak on the long path has not its target"
	in_deep "$AUDIT" run --json --output "$TMP/longexec.json" -- sh -c 'exec 7<f; exec true'
	expect "$TMP/longexec.json" --count 1 --has "kind=exec-leak fd=7 fdkind=file"
	grep -qF '"fd":7,"target":"(path longer than PATH_MAX)","fdkind":"file"' "$TMP/longexec.json" ||
		fail "run: the exec leak on the long path has not its target"
fi

# Direct descriptors under hostile names, and a thousand of them.
ESC=$(printf '\033')
TAB=$(printf '\t')
evil="$TMP/a b\\c${TAB}d
e${ESC}[2J"
echo data > "$evil"
long="$TMP/$(printf '%0200d' 7)"
echo data > "$long"
"$P/direct_left" "$evil" 1 "$TMP/gate" > "$TMP/ring.out" &
dl=$!
wait_for "$TMP/ring.out" '^ring\|^SKIP' || fail "direct_left did not start"
if grep -q '^SKIP' "$TMP/ring.out"; then
	cat "$TMP/ring.out"
	wait $dl
	finish
fi
ring=$(sed -n 's/^ring //p' "$TMP/ring.out")
"$AUDIT" snapshot "$dl" > "$TMP/slot.txt"
"$AUDIT" snapshot --json "$dl" > "$TMP/slot.json"
touch "$TMP/gate"
wait $dl
grep -q "$ESC" "$TMP/slot.txt" && fail "snapshot printed a raw ESC"
grep -qF 'slot 0: '"$TMP"'/a b\\c\x09d\x0ae\x1b[2J' "$TMP/slot.txt" ||
	{ fail "snapshot: the slot's name is not the file's, escaped once"; cat "$TMP/slot.txt"; }
grep -qF '"direct":[{"slot":0,"target":"'"$TMP"'/a b\\c\td\ne\u001b[2J"}]' "$TMP/slot.json" ||
	{ fail "snapshot --json: the slot's name is not exact"; grep direct "$TMP/slot.json"; }

if [ -f "$RINGSCOPE_PRELOAD" ]; then
	"$AUDIT" run --json --output "$TMP/slot-run.json" -- "$P/direct_left" "$evil" > /dev/null
	grep -qF '"slots":[{"slot":0,"target":"'"$TMP"'/a b\\c\td\ne\u001b[2J"}]' "$TMP/slot-run.json" ||
		{ fail "run --json: the slot's name is not exact"; cat "$TMP/slot-run.json"; }
	"$AUDIT" run -- "$P/direct_left" "$evil" 2> "$TMP/slot-run.txt" > /dev/null
	grep -q "$ESC" "$TMP/slot-run.txt" && fail "run printed a raw ESC"
	grep -qF 'slot 0 -> '"$TMP"'/a b\\c\x09d\x0ae\x1b[2J' "$TMP/slot-run.txt" ||
		{ fail "run: the slot's name is not the file's, escaped once"; cat "$TMP/slot-run.txt"; }

	"$AUDIT" run --json --output "$TMP/many.json" -- "$P/direct_left" "$long" 1000 > /dev/null
	expect "$TMP/many.json" --has "kind=direct-registered slot=0:$long" \
		--has "kind=direct-registered slot=999:$long"
	grep -q '"user_files":1000,"count":1000,' "$TMP/many.json" ||
		fail "run: not every one of 1,000 slots listed: $(grep -o '"user_files":[0-9]*,"count":[0-9]*' "$TMP/many.json")"
	if [ -n "$PY" ]; then
		"$PY" - "$TMP/many.json" "$long" <<'PYEOF' || fail "run: a slot's name was cut"
import json, sys
d = json.load(open(sys.argv[1], "rb"))
f = [x for x in d["findings"] if x["kind"] == "direct-registered"][0]
bad = [s for s in f["slots"] if s["target"] != sys.argv[2]]
sys.exit(1 if bad or len(f["slots"]) != 1000 else 0)
PYEOF
	fi
fi
rm -f "$TMP/gate"
"$P/direct_left" "$long" 1000 "$TMP/gate" > "$TMP/ring2.out" &
dl=$!
wait_for "$TMP/ring2.out" '^ring' || fail "direct_left 1000 did not start"
"$AUDIT" snapshot "$dl" > "$TMP/many.txt"
touch "$TMP/gate"
wait $dl
grep -q "1000 direct descriptors registered (UserFiles: 1000)" "$TMP/many.txt" ||
	fail "snapshot: $(grep 'direct descriptor' "$TMP/many.txt")"
[ "$(grep -c "slot [0-9]*: $long\$" "$TMP/many.txt")" = 1000 ] ||
	fail "snapshot: not 1,000 whole slots: $(grep -c "slot [0-9]*: $long\$" "$TMP/many.txt")"
finish
