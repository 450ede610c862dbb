#!/bin/sh
# SPDX-License-Identifier: MIT
# Reported frames read "function (file.c:LINE)", LINE being the line of the
# call, for programs built with -g; symbolized by the tool with libdw.
. "$(dirname "$0")/lib.sh"

[ -f "$RINGSCOPE_PRELOAD" ] || skip "no preload library at $RINGSCOPE_PRELOAD (shared libraries disabled?)"
"$AUDIT" --help | grep -q "symbolized with: libdw" ||
	skip "built without libdw (apt-get install libdw-dev): frames have no file and line"
S=$(cd "$(dirname "$0")" && pwd)
echo data > "$TMP/f"
line_of() { grep -n "$2" "$S/$1" | head -1 | cut -d: -f1; }

open_line=$(line_of leak_file.c 'return open(path')
main_line=$(grep -n 'fd = open_config(argv' "$S/leak_file.c" | tail -1 | cut -d: -f1)
"$AUDIT" run -- "$P/leak_file" "$TMP/f" > /dev/null 2> "$TMP/leak.txt"
grep -qF "#0 open_config (leak_file.c:$open_line)" "$TMP/leak.txt" ||
	{ fail "no '#0 open_config (leak_file.c:$open_line)'"; cat "$TMP/leak.txt"; }
grep -qF "#1 main (leak_file.c:" "$TMP/leak.txt" || fail "no '#1 main (leak_file.c:...)' frame"
grep -qE "#1 main \(leak_file.c:$main_line\)" "$TMP/leak.txt" ||
	fail "main's frame is not the line of its call to open_config ($main_line)"

# A program whose file name holds an ESC is symbolized all the same (the
# preload once dropped the byte from its maps, and the module did not open).
evil="$TMP/leak$(printf '\033')[2J"
cp "$P/leak_file" "$evil"
"$AUDIT" run --json --output "$TMP/evil.json" -- "$evil" "$TMP/f" > /dev/null
grep -qF "\"open_config (leak_file.c:$open_line)\"" "$TMP/evil.json" ||
	{ fail "a program named with an ESC is not symbolized"; cat "$TMP/evil.json"; }

# The same in JSON, and for the closer of a double close.
"$AUDIT" run --json --output "$TMP/leak.json" -- "$P/leak_file" "$TMP/f" > /dev/null
grep -qF "\"open_config (leak_file.c:$open_line)\"" "$TMP/leak.json" || fail "JSON frame not symbolized"
close_line=$(grep -n 'close(fd)' "$S/double_close.c" | tail -1 | cut -d: -f1)
"$AUDIT" run -- "$P/double_close" "$TMP/f" > /dev/null 2> "$TMP/dc.txt"
grep -qF "#0 close_twice (double_close.c:$close_line)" "$TMP/dc.txt" ||
	{ fail "double close: no '#0 close_twice (double_close.c:$close_line)'"; cat "$TMP/dc.txt"; }

# An inlined function: its own frame, then the function it was inlined into,
# at the line of the inlined call.
in_line=$(line_of leak_inline.c 'return open(path')
call_line=$(line_of leak_inline.c 'fd = open_inline(argv')
"$AUDIT" run -- "$P/leak_inline" "$TMP/f" > /dev/null 2> "$TMP/inline.txt"
grep -qF "#0 open_inline (leak_inline.c:$in_line)" "$TMP/inline.txt" &&
	grep -qF "#1 main (leak_inline.c:$call_line)" "$TMP/inline.txt" ||
	{ fail "no inlined frame open_inline:$in_line above main:$call_line"; cat "$TMP/inline.txt"; }

# Without debug information: symbol+offset (module).
${CC:-cc} -O0 -fno-inline -rdynamic -o "$TMP/nodebug" "$S/leak_file.c" 2> /dev/null ||
	skip "no C compiler to build a program without -g"
"$AUDIT" run -- "$TMP/nodebug" "$TMP/f" > /dev/null 2> "$TMP/nodebug.txt"
grep -qE "#0 open_config\+0x[0-9a-f]+ \($TMP/nodebug\)" "$TMP/nodebug.txt" ||
	{ fail "no 'open_config+0x.. ($TMP/nodebug)' fallback"; cat "$TMP/nodebug.txt"; }

# A program built without frame pointers: --unwind=dwarf still walks
# through it (glibc's backtrace(), by the DWARF unwind tables).
${CC:-cc} -O2 -fomit-frame-pointer -fno-inline -fno-optimize-sibling-calls -g -o "$TMP/nofp" "$S/leak_file.c" 2> /dev/null ||
	skip "no C compiler to build a program without frame pointers"
"$AUDIT" run --unwind=dwarf -- "$TMP/nofp" "$TMP/f" > /dev/null 2> "$TMP/nofp.txt"
grep -qF "#0 open_config (leak_file.c:$open_line)" "$TMP/nofp.txt" &&
	grep -qE "#1 main \(leak_file.c:[0-9]+\)" "$TMP/nofp.txt" ||
	{ fail "--unwind=dwarf: open_config and main not both named"; cat "$TMP/nofp.txt"; }
finish
