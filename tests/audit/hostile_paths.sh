#!/bin/sh
# SPDX-License-Identifier: MIT
# Programs whose own path is hostile: a directory with a newline in its name
# (/proc/PID/maps writes it as \012: the frames were neither symbolized nor
# named as the exe is), and an exe named with ESC, a newline and invalid
# UTF-8, escaped in every line and matched by its generated suppression.
. "$(dirname "$0")/lib.sh"

[ -f "$RINGSCOPE_PRELOAD" ] || skip "no preload library at $RINGSCOPE_PRELOAD (shared libraries disabled?)"
ESC=$(printf '\033')
FF=$(printf '\377')
NLDIR="$TMP/d
ir"
mkdir "$NLDIR" && cp "$P/leak_file" "$NLDIR/lf" || skip "cannot copy leak_file"

# The same program under a plain path and under the newline: the same frames.
"$AUDIT" run -- "$NLDIR/lf" /etc/hostname > /dev/null 2> "$TMP/nl.txt"
grep -q 'open_config (leak_file.c:' "$TMP/nl.txt" ||
	fail "a program under a directory with a newline was not symbolized: $(cat "$TMP/nl.txt")"
grep -qF '\\012' "$TMP/nl.txt" && fail "maps' \\012 shown as text: $(cat "$TMP/nl.txt")"
grep -qF "(${TMP}/d\\x0air/lf)" "$TMP/nl.txt" || fail "exe not named escaped: $(cat "$TMP/nl.txt")"

# An exe (a copy of sh, no symbols) with ESC, a newline and 0xff in its name.
EVIL="$TMP/sh${ESC}[31mil
x$FF"
cp "$(command -v sh)" "$EVIL" || skip "cannot copy sh"
"$AUDIT" run -- "$EVIL" -c 'exec 7</etc/hostname; exit 0' 2> "$TMP/evil.txt"
if grep -q "$ESC" "$TMP/evil.txt" || grep -q "$FF" "$TMP/evil.txt"; then
	fail "raw bytes of the exe's name in the report:"
	od -c "$TMP/evil.txt" | head -20
fi
[ "$(grep -c '^leaked: fd 7 ' "$TMP/evil.txt")" = 1 ] || fail "no leak of fd 7: $(cat "$TMP/evil.txt")"
grep -q '^ir\|^x' "$TMP/evil.txt" && fail "a newline in the exe's name split a line"
grep -qF "sh\\x1b[31mil\\x0ax\\xff+0x" "$TMP/evil.txt" ||
	fail "the frame's module not named as the exe is: $(cat "$TMP/evil.txt")"

# Its generated suppression has no raw byte and silences exactly that leak.
"$AUDIT" run -q --gen-suppressions=yes -- "$EVIL" -c 'exec 7</etc/hostname; exit 0' 2>&1 |
	sed -n '/^{/,/^}/p' > "$TMP/evil.supp"
grep -q "$ESC" "$TMP/evil.supp" && fail "raw ESC in the generated suppression"
"$AUDIT" run --error-exitcode 9 --suppressions "$TMP/evil.supp" -- \
	"$EVIL" -c 'exec 7</etc/hostname; exit 0' 2> "$TMP/sup.txt"
rc=$?
[ $rc = 0 ] || fail "the generated suppression did not match (exit $rc): $(cat "$TMP/sup.txt" "$TMP/evil.supp")"
finish
