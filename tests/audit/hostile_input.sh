#!/bin/sh
# SPDX-License-Identifier: MIT
# snapshot, diff, watch and run facing hostile input: what is not JSON,
# values out of range, unbounded input, a zombie process, and file names
# holding terminal escape sequences.
. "$(dirname "$0")/lib.sh"

ESC=$(printf '\033')
echo '{"pid":1,"time":0,"fds":[{"fd":3,"kind":"file","target":"/x"}]}' > "$TMP/ok.json"

# diff_bad NAME TEXT MESSAGE: diff refuses TEXT with exit 2 and a one-line MESSAGE.
diff_bad() {
	printf '%s\n' "$2" > "$TMP/$1.json"
	"$AUDIT" diff "$TMP/$1.json" "$TMP/ok.json" > "$TMP/$1.out" 2> "$TMP/$1.err"
	rc=$?
	[ $rc = 2 ] || fail "diff of $1: exit status $rc, wanted 2"
	grep -q "$3" "$TMP/$1.err" || fail "diff of $1: message was: $(cat "$TMP/$1.err")"
	[ "$(wc -l < "$TMP/$1.err")" = 1 ] || fail "diff of $1: not a one-line error"
}
diff_bad nan '{"pid":1,"fds":[{"fd":-nan}]}' "malformed JSON: line 1, column 23: bad number"
diff_bad inf '{"pid":1,"fds":[{"fd":-inf}]}' "malformed JSON: line 1, column 23: bad number"
diff_bad hex '{"pid":1,"fds":[{"fd":0x10}]}' "malformed JSON: line 1, column 23: bad number"
diff_bad lead0 '{"pid":1,"fds":[{"fd":010}]}' "malformed JSON: line 1, column 23: bad number"
diff_bad huge '{"pid":1,"fds":[{"fd":1e999}]}' "malformed JSON: line 1, column 23: number out of range"
diff_bad big '{"pid":1,"fds":[{"fd":3000000000}]}' '"fd" must be an integer from 0 to 2147483647'
diff_bad neg '{"pid":1,"fds":[{"fd":-1}]}' '"fd" must be an integer from 0 to 2147483647'
diff_bad frac '{"pid":1,"fds":[{"fd":3.5}]}' '"fd" must be an integer from 0 to 2147483647'
diff_bad pid '{"pid":1e300,"fds":[]}' '"pid" must be an integer'
diff_bad ino '{"pid":1,"fds":[{"fd":3,"ino":-5}]}' '"ino" must be an integer from 0 to 18446744073709551615'
diff_bad flags '{"pid":1,"fds":[{"fd":3,"flags":"9z"}]}' '"flags" must be octal digits'

diff_bad twice '{"pid":1,"fds":[{"fd":3,"target":"/x"},{"fd":3,"target":"/x"}]}' 'descriptor 3 appears twice in "fds"'
diff_bad esc "$(printf '{"pid":1,"fds":[\033[2J]}')" "column 17: unexpected character '.x1b'"
grep -q "$(printf '\033')" "$TMP/esc.err" && fail "diff printed a raw ESC from the file"
diff_bad escq "$(printf '{"pid":1,"fds":[{"fd":3,"target":"\\\033"}]}')" "bad escape"
grep -q "$(printf '\033')" "$TMP/escq.err" && fail "diff printed a raw ESC from a bad escape"
"$AUDIT" diff "$TMP" "$TMP/ok.json" 2> "$TMP/dir.err"
[ $? = 2 ] || fail "diff of a directory: wanted exit status 2"
grep -q "cannot read $TMP: Is a directory" "$TMP/dir.err" || fail "diff of a directory said: $(cat "$TMP/dir.err")"

# 64-bit identities, exactly: inode numbers past 2^53 and 2^63 (overlayfs,
# NFS) are read as digits, not through a double.
id_pair() {
	echo '{"pid":1,"time":0,"fds":[{"fd":3,"kind":"file","target":"/x","pos":'"$3"',"dev":1,"ino":'"$1"'}]}' > "$TMP/ia.json"
	echo '{"pid":1,"time":0,"fds":[{"fd":3,"kind":"file","target":"/x","pos":0,"dev":1,"ino":'"$2"'}]}' > "$TMP/ib.json"
	"$AUDIT" diff "$TMP/ia.json" "$TMP/ib.json" > "$TMP/id.out" 2>&1
}
id_pair 18446744073709551615 18446744073709551614 0
[ $? = 1 ] || fail "ino 2^64-1 against 2^64-2: $(cat "$TMP/id.out")"
grep -q "ino 18446744073709551615, now 18446744073709551614" "$TMP/id.out" || fail "ino 2^64-1: $(cat "$TMP/id.out")"
id_pair 9007199254740993 9007199254740992 0
[ $? = 1 ] || fail "ino 2^53+1 against 2^53 (one double): $(cat "$TMP/id.out")"
id_pair 9223372036854775808 9223372036854775808 9223372036854775807
[ $? = 0 ] || fail "ino 2^63, pos 2^63-1: $(cat "$TMP/id.out")"
id_pair 18446744073709551616 1 0
[ $? = 2 ] || fail "ino 2^64 accepted: $(cat "$TMP/id.out")"

# Unbounded input: /dev/zero, and 80 MiB of blanks, refused at once.
timeout 10 "$AUDIT" diff /dev/zero "$TMP/ok.json" 2> "$TMP/zero.err"
rc=$?
[ $rc = 2 ] || fail "diff /dev/zero: exit status $rc, wanted 2 (124: it did not stop)"
grep -q "/dev/zero: malformed JSON: NUL byte in input" "$TMP/zero.err" ||
	fail "diff /dev/zero: message was: $(cat "$TMP/zero.err")"
yes ' ' 2> /dev/null | head -c 83886080 > "$TMP/blank.json"
timeout 20 "$AUDIT" diff "$TMP/blank.json" "$TMP/ok.json" 2> "$TMP/blank.err"
rc=$?
rm -f "$TMP/blank.json"
[ $rc = 2 ] || fail "diff of 80 MiB of blanks: exit status $rc, wanted 2"
grep -q "blank.json: too large for a snapshot: larger than 64 MiB" "$TMP/blank.err" ||
	fail "diff of 80 MiB: message was: $(cat "$TMP/blank.err")"

# A zombie: its parent (sleep) never reaps it.
sh -c 'sleep 0.2 & echo $! > "$1"; exec sleep 30' zombie "$TMP/zpid" &
parent=$!
wait_for "$TMP/zpid" '[0-9]' || fail "no zombie pid"
z=$(cat "$TMP/zpid")
i=0
while ! grep -q '^State:.*Z' "/proc/$z/status" 2> /dev/null; do
	i=$((i + 1))
	[ $i -gt 100 ] && break
	sleep 0.1
done
if grep -q '^State:.*Z' "/proc/$z/status" 2> /dev/null; then
	"$AUDIT" snapshot "$z" > "$TMP/z.out" 2> "$TMP/z.err"
	rc=$?
	[ $rc = 1 ] || fail "snapshot of a zombie: exit status $rc, wanted 1"
	grep -q "process $z has exited" "$TMP/z.err" || fail "snapshot of a zombie said: $(cat "$TMP/z.out" "$TMP/z.err")"
	timeout 10 "$AUDIT" watch --interval 0.1 --for 1 "$z" > "$TMP/zw.out" 2> "$TMP/zw.err"
	rc=$?
	[ $rc = 2 ] || fail "watch of a zombie: exit status $rc, wanted 2"
	grep -q "process $z has exited" "$TMP/zw.err" || fail "watch of a zombie said: $(cat "$TMP/zw.out" "$TMP/zw.err")"
else
	fail "the zombie did not appear"
fi
kill "$parent" 2> /dev/null
wait "$parent" 2> /dev/null

# A file name that holds an escape sequence: escaped in human output, exact in JSON.
evil="$TMP/x${ESC}[2J${ESC}]0;owned$(printf '\007')"
echo data > "$evil"
sh -c 'exec 7<"$1"; echo ready; exec sleep 30' evil "$evil" > "$TMP/evil.out" &
holder=$!
wait_for "$TMP/evil.out" ready || fail "the holder did not start"
"$AUDIT" snapshot "$holder" > "$TMP/evil.txt"
"$AUDIT" snapshot --json "$holder" > "$TMP/evil.json"
kill "$holder"
wait "$holder" 2> /dev/null
grep -q "$ESC" "$TMP/evil.txt" && fail "snapshot printed a raw ESC"
grep -qF 'x\x1b[2J\x1b]0;owned\x07' "$TMP/evil.txt" || { fail "snapshot did not escape the name"; cat -v "$TMP/evil.txt"; }
grep -qF 'x\u001b[2J\u001b]0;owned\u0007' "$TMP/evil.json" || fail "snapshot --json lost the exact name"
"$AUDIT" diff "$TMP/ok.json" "$TMP/evil.json" > "$TMP/evildiff.txt"
grep -q "$ESC" "$TMP/evildiff.txt" && fail "diff printed a raw ESC"
grep -qF 'x\x1b[2J' "$TMP/evildiff.txt" || fail "diff did not show the escaped name"
if [ -f "$RINGSCOPE_PRELOAD" ]; then
	"$AUDIT" run -- "$P/leak_file" "$evil" > /dev/null 2> "$TMP/evilrun.txt"
	grep -q "$ESC" "$TMP/evilrun.txt" && fail "run printed a raw ESC"
	grep -qF 'x\x1b[2J' "$TMP/evilrun.txt" || { fail "run did not show the escaped name"; cat -v "$TMP/evilrun.txt"; }
fi
finish
