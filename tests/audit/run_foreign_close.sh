#!/bin/sh
# SPDX-License-Identifier: MIT
# A close (or dup2) of a descriptor that a live ringscope entry owns is
# reported as it happens, naming the closer's function and line and the
# owner's entry and scope; --foreign-close=abort stops the program before
# the close happens.
. "$(dirname "$0")/lib.sh"

[ -f "$RINGSCOPE_PRELOAD" ] || skip "no preload library at $RINGSCOPE_PRELOAD (shared libraries disabled?)"
S=$(cd "$(dirname "$0")" && pwd)
echo data > "$TMP/f"
line_of() { grep -n "$2" "$S/$1" | head -1 | cut -d: -f1; }

"$AUDIT" run --json --output "$TMP/fc.json" -- "$P/foreign_close" "$TMP/f" close > "$TMP/fc.out"
rc=$?
if [ $rc = 2 ] || [ $rc = 3 ]; then
	skip "the program could not open a ring (io_uring unavailable here?): status $rc"
fi
if grep -q "^SKIP" "$TMP/fc.out"; then
	skip "$(sed -n 's/^SKIP: //p' "$TMP/fc.out")"
fi
fd=$(sed -n 's/^fd //p' "$TMP/fc.out")
expect "$TMP/fc.json" --has "kind=foreign-close fd=$fd call=close action=warn target=$TMP/f bt=close_behind owner=entry owner='copy'"
grep -q "^closed 0" "$TMP/fc.out" || fail "warn: the close did not go ahead: $(cat "$TMP/fc.out")"

# Text: the closer's function and line, the owner's entry and scope.
"$AUDIT" run -- "$P/foreign_close" "$TMP/f" close > /dev/null 2> "$TMP/fc.txt"
if "$AUDIT" --help | grep -q "symbolized with: libdw"; then
	l=$(line_of foreign_close.c 'return close(fd);')
	grep -qF "#0 close_behind (foreign_close.c:$l)" "$TMP/fc.txt" ||
		{ fail "no '#0 close_behind (foreign_close.c:$l)'"; cat "$TMP/fc.txt"; }
fi
grep -q "^foreign close: close($fd) in pid [0-9]* .* closes a descriptor that ringscope owns" "$TMP/fc.txt" ||
	{ fail "no foreign close line"; cat "$TMP/fc.txt"; }
grep -qF "entry 'file' ($TMP/f) in scope 'copy'" "$TMP/fc.txt" ||
	{ fail "the owner is not named"; cat "$TMP/fc.txt"; }

# dup2 over an owned descriptor.
"$AUDIT" run --json --output "$TMP/dup.json" -- "$P/foreign_close" "$TMP/f" dup2 > "$TMP/dup.out"
fd=$(sed -n 's/^fd //p' "$TMP/dup.out")
expect "$TMP/dup.json" --has "kind=foreign-close fd=$fd call=dup2 bt=clobber owner='copy'"

# abort: stopped before the close, so the descriptor is still open (and
# still the entry's) in the report the abort writes.
"$AUDIT" run --json --foreign-close=abort --output "$TMP/abort.json" \
	-- "$P/foreign_close" "$TMP/f" close > "$TMP/abort.out"
fd=$(sed -n 's/^fd //p' "$TMP/abort.out")
grep -q "^closed" "$TMP/abort.out" && fail "abort: the program went on after the close"
expect "$TMP/abort.json" --status 134 \
	--has "kind=foreign-close fd=$fd call=close action=abort bt=close_behind" \
	--has "kind=leaked-unseen fd=$fd target=$TMP/f event=signal ringscope='copy'"

# off: no report.
"$AUDIT" run --json --foreign-close off --output "$TMP/off.json" -- "$P/foreign_close" "$TMP/f" close > /dev/null
grep -q '"kind":"foreign-close"' "$TMP/off.json" && fail "--foreign-close off still reported"
finish
