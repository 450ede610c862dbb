#!/bin/sh
# SPDX-License-Identifier: MIT
# ringscope-audit against a hostile program: a leak of every kind (io_uring
# ring, eventfd, pipe, sockets, memfd, files) under names holding newlines,
# escape sequences, DEL and invalid UTF-8; death by a signal; thousands of
# descriptors; generated suppressions fed back; malformed and pathological
# suppression files; bad paths in options.
. "$(dirname "$0")/lib.sh"

[ -f "$RINGSCOPE_PRELOAD" ] || skip "no preload library at $RINGSCOPE_PRELOAD (shared libraries disabled?)"
H="$P/hostile_kinds"
ESC=$(printf '\033')
DEL=$(printf '\177')
FF=$(printf '\377')
PY=$(command -v python3)

# no_raw FILE WHAT: no ESC, DEL or invalid UTF-8 byte, and no line forged by a newline.
no_raw() {
	if grep -q "$ESC" "$1" || grep -q "$DEL" "$1" || grep -q "$FF" "$1"; then
		fail "$2 printed raw control or invalid UTF-8 bytes:"
		od -c "$1" | head -40
	fi
	grep -q '^fake:' "$1" && fail "$2: a newline in a file name forged a line"
}

mkdir "$TMP/d"
"$AUDIT" run -- "$H" all "$TMP/d" 2> "$TMP/all.txt"
rc=$?
[ $rc = 0 ] || fail "run all: exit status $rc, wanted 0"
no_raw "$TMP/all.txt" "run (text)"
grep -qF 'nl\x0afake: leaked fd 99\x1b[2J\x7f\xff\xfe' "$TMP/all.txt" ||
	fail "run did not escape the file name: $(cat "$TMP/all.txt")"

rm -rf "$TMP/d" && mkdir "$TMP/d"
"$AUDIT" run --json --output "$TMP/all.json" -- "$H" all "$TMP/d"
expect "$TMP/all.json" --count 10 --status 0 --has "fdkind=pipe" --has "fdkind=socket" \
	--has "fdkind=eventfd" --has "fdkind=memfd" --has "fdkind=io_uring created_by=io_uring_setup" \
	--has "fdkind=file bt=leak_all"
if [ -n "$PY" ]; then
	# Strict JSON (UTF-8), and the exact bytes of the name back.
	"$PY" - "$TMP/all.json" "$TMP/d" <<'PYEOF' || fail "run --json is not valid JSON, or lost the name"
import json, sys
with open(sys.argv[1], "rb") as f:
    d = json.loads(f.read().decode("utf-8"))
want = sys.argv[2].encode() + b"/nl\nfake: leaked fd 99\x1b[2J\x7f\xff\xfe"
got = [x["target"].encode("utf-8", "surrogateescape") for x in d["findings"]]
if want not in got:
    print("targets:", got)
    sys.exit(1)
PYEOF
	"$H" many 0 &
	"$AUDIT" snapshot --json $$ > "$TMP/snap.json" || fail "snapshot --json failed"
	"$PY" -c 'import json,sys; json.loads(open(sys.argv[1],"rb").read().decode("utf-8"))' \
		"$TMP/snap.json" || fail "snapshot --json is not valid JSON"
fi

# Killed by a signal it can catch: still reported, status 128 + 11.
rm -rf "$TMP/d" && mkdir "$TMP/d"
"$AUDIT" run --json --output "$TMP/segv.json" -- "$H" segv "$TMP/d"
rc=$?
[ $rc = 139 ] || fail "run of a program killed by SIGSEGV: exit status $rc, wanted 139"
expect "$TMP/segv.json" --count 10 --has "fdkind=io_uring"

# Thousands of descriptors.
"$AUDIT" run --json --output "$TMP/many.json" -- "$H" many 3000
rc=$?
[ $rc = 0 ] || fail "run many: exit status $rc (98: an open failed: RLIMIT_NOFILE?)"
expect "$TMP/many.json" --count 3000 --has "fd=3002 target=/dev/null"

# Generated suppressions carry no raw bytes, and silence exactly what they were made for
# (the pipe and socket inodes differ from run to run).
rm -rf "$TMP/d" && mkdir "$TMP/d"
"$AUDIT" run -q --gen-suppressions=all -- "$H" all "$TMP/d" 2> "$TMP/gen.txt"
no_raw "$TMP/gen.txt" "--gen-suppressions"
awk '/^\{$/{f=1} f{print} /^\}$/{f=0}' "$TMP/gen.txt" > "$TMP/gen.supp"
rm -rf "$TMP/d" && mkdir "$TMP/d"
"$AUDIT" run --json --suppressions "$TMP/gen.supp" --output "$TMP/gen.json" -- "$H" all "$TMP/d"
expect "$TMP/gen.json" --count 5 --has "fdkind=pipe" --has "fdkind=socket"
grep -q '"suppressed":5' "$TMP/gen.json" || fail "generated suppressions: $(cat "$TMP/gen.json")"

# A name that ends in blanks (trimmed from a suppression line): the generated
# block still matches it.
echo data > "$TMP/trail  "
"$AUDIT" run -q --gen-suppressions=all -- "$P/leak_file" "$TMP/trail  " 2> "$TMP/trail.txt" > /dev/null
awk '/^\{$/{f=1} f{print} /^\}$/{f=0}' "$TMP/trail.txt" > "$TMP/trail.supp"
"$AUDIT" run --json --suppressions "$TMP/trail.supp" --output "$TMP/trail.json" -- "$P/leak_file" "$TMP/trail  " > /dev/null
grep -q '"count":0,"suppressed":1' "$TMP/trail.json" ||
	{ fail "a generated suppression does not match a name ending in blanks"; cat "$TMP/trail.supp"; }

# bad_supp NAME MESSAGE: run refuses $TMP/NAME.supp with exit 2, in one line.
bad_supp() {
	"$AUDIT" run --suppressions "$TMP/$1.supp" -- true > /dev/null 2> "$TMP/$1.err"
	rc=$?
	[ $rc = 2 ] || fail "suppressions $1: exit status $rc, wanted 2"
	[ "$(wc -l < "$TMP/$1.err")" = 1 ] || fail "suppressions $1: not one line: $(cat "$TMP/$1.err")"
	grep -qF -- "$2" "$TMP/$1.err" || fail "suppressions $1: message was: $(cat "$TMP/$1.err")"
}
printf 'junk\n' > "$TMP/junk.supp"
bad_supp junk "junk.supp:1: expected '{' to open a suppression"
printf '{\n n\n ringscope-audit:leaked\n fun:main\n' > "$TMP/open.supp"
bad_supp open "open.supp:1: suppression not closed by '}'"
printf '{\n n\n ringscope-audit:leaked\n fun:main\n target:/x\n}\n' > "$TMP/late.supp"
bad_supp late "late.supp:5: expected 'target:GLOB'"
printf '{\n n\n}\n' > "$TMP/short.supp"
bad_supp short "short.supp:3: a suppression needs a name"
{ printf '{\n n\n ringscope-audit:leaked\n fun:'; head -c 9000 /dev/zero | tr '\0' x; printf '\n}\n'; } > "$TMP/long.supp"
bad_supp long "long.supp:4: line longer than"
# Forty '...' lines against a 12-frame stack: linear, not a backtrack of C(52,12) paths.
{ printf '{\n dots\n ringscope-audit:leaked\n'; for i in 1 2 3 4 5 6 7 8 9 10; do
	printf ' ...\n ...\n ...\n ...\n'; done; printf ' fun:no_such_function\n}\n'; } > "$TMP/dots.supp"
"$AUDIT" run --json --suppressions "$TMP/dots.supp" --output "$TMP/dots.json" -- "$H" deep 30 &
apid=$!
( sleep 20; kill $apid 2> /dev/null ) &
wpid=$!
wait $apid
rc=$?
kill $wpid 2> /dev/null
[ $rc = 0 ] || fail "forty '...' lines: exit status $rc (143: still matching after 20 s)"
[ $rc = 0 ] && expect "$TMP/dots.json" --count 1
sed 's/fun:no_such_function/fun:deep_open/' "$TMP/dots.supp" > "$TMP/dots2.supp"
"$AUDIT" run --json --suppressions "$TMP/dots2.supp" --output "$TMP/dots2.json" -- "$H" deep 30
expect "$TMP/dots2.json" --count 0

# Paths in options are escaped in messages; documented exit statuses.
"$AUDIT" run --output "$TMP/no/$ESC[2J" -- true 2> "$TMP/out.err"
rc=$?
[ $rc = 127 ] || fail "run --output into a missing directory: exit status $rc, wanted 127"
no_raw "$TMP/out.err" "run --output error"
"$H" many 0 > /dev/null &
sleep 30 &
spid=$!
"$AUDIT" watch --for 1 --plot "$TMP/no/$ESC[2J.svg" $spid > /dev/null 2> "$TMP/plot.err"
rc=$?
kill $spid
[ $rc = 2 ] || fail "watch --plot into a missing directory: exit status $rc, wanted 2"
no_raw "$TMP/plot.err" "watch --plot error"
grep -qF 'no/\x1b[2J.svg' "$TMP/plot.err" || fail "watch --plot error: $(cat "$TMP/plot.err")"
"$AUDIT" dump --timeout=0 1 2> "$TMP/t0.err"
rc=$?
[ $rc = 2 ] || fail "dump --timeout=0: exit status $rc, wanted 2"
grep -qF "above 0" "$TMP/t0.err" || fail "dump --timeout=0 said: $(cat "$TMP/t0.err")"
chmod 644 "$TMP/junk.supp"
"$AUDIT" run -- "$TMP/junk.supp" 2> /dev/null
rc=$?
[ $rc = 126 ] || fail "run of a file that is not executable: exit status $rc, wanted 126"
"$AUDIT" run -- "$TMP/none" 2> /dev/null
rc=$?
[ $rc = 127 ] || fail "run of a missing program: exit status $rc, wanted 127"
finish
