#!/bin/sh
# The pages as promises (tests/README.md, "Consumers"): each renders without
# a groff warning; each SEE ALSO of ours names a page that is installed; each
# NAME and alias (a symlink) is a page; and each SYNOPSIS is the header's: its
# prototypes and typedefs compiled against <ringscope.h> (as C, and as C++,
# where extern "C" tells every mismatch), its macros redefined identically,
# its enums and structs the header's text, and between them the pages
# declare every public function and nothing else. Their EXAMPLE programs
# build, and print what the page says they print.
set -eu
srcdir=$(cd "${srcdir:-.}" && pwd)
top_builddir=$(pwd)
man=$srcdir/man
header=$srcdir/include/ringscope.h
CC=${CC:-cc}
CXX=${CXX:-g++}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rsc-man.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Staged by section; an alias is a symlink to its page (install-man-aliases
# installs it as a ".so" stub), which man(1) renders from any directory.
mkdir -p "$tmp/man1" "$tmp/man3" "$tmp/man7"
for f in "$man"/*.[137]; do cp -P "$f" "$tmp/man${f##*.}/"; done
installed=$(cat "$srcdir/Makefile.am" "$srcdir"/*/Makefile.inc "$srcdir"/*/*/Makefile.inc |
	grep -o 'man/[A-Za-z0-9_.-]*\.[137]' | sed 's|^man/||')

for f in "$man"/*.[137]; do
	page=${f##*/}
	echo "$installed" | grep -qx "$page" || fail "$page is not installed (man_MANS)"
done

# Rendering: man(1) where it is installed, else groff's own pipeline.
cd "$tmp"
# On a UTF-8 terminal and on an ASCII one (a C locale: man(1) picks -Tascii),
# where a glyph with no ASCII form is a warning.
for f in man*/*; do
	for dev in utf8 ascii; do
		if command -v man >/dev/null; then
			err=$(MANWIDTH=80 man --warnings -E UTF-8 -l -T$dev "$f" 2>&1 >/dev/null) || true
		elif command -v groff >/dev/null; then
			err=$(soelim -r "$f" 2>&1 | preconv 2>&1 | tbl 2>&1 | groff -man -ww -z -T$dev 2>&1) || true
		else
			echo "SKIP man_check (rendering): neither man nor groff"
			break 2
		fi
		[ -z "$err" ] || fail "$f (-T$dev): $err"
	done
done

# Aliases and names: an alias is a symlink to a page of its section (a ".so"
# in the tree would resolve only from the manual's root); every name a page's
# NAME line gives is a page.
for f in man*/*; do
	[ -n "$(sed -n '1s/^\.so //p' "$f")" ] &&
		fail "$f: a .so alias (make it a symlink: man -l resolves .so from the current directory)"
	page=${f##*/}
	names=$(awk '/^\.SH /{s = ($2 == "NAME")} s && !/^\.SH/' "$f" | tr '\n' ' ' | sed -e 's/ \\-.*//' -e 's/\\-/-/g' | tr ',' ' ')
	# Its NAME line lists it, the alias's (whatis(1) reads it there).
	echo " $names " | grep -q " ${page%.*} " || fail "$f: NAME does not list ${page%.*}"
	if [ -h "$f" ]; then
		[ -f "$f" ] && [ "$(readlink "$f")" = "$(basename "$(readlink "$f")")" ] ||
			fail "$f: an alias to $(readlink "$f"), which is no page of its section"
		continue
	fi
	th=$(sed -n 's/^\.TH \([^ ]*\) \([0-9]\).*/\1.\2/p' "$f" | sed 's/\\-/-/g')
	[ "$th" = "$page" ] || fail "$f: .TH says $th"
	for n in $names; do
		ls man*/"$n".[137] >/dev/null 2>&1 || fail "$f: NAME lists $n, which has no page"
	done
done

# SEE ALSO: each of our pages named there exists.
for f in man*/*; do
	awk '/^\.SH /{s = ($0 ~ /SEE ALSO/)} s && !/^\.SH/' "$f" |
		sed -n 's/^\.BR *\([A-Za-z0-9_.-]*\) *(\([0-9]\)).*/\1 \2/p' |
		while read -r n sec; do
			case "$n" in rsc_* | ringscope*) ;; *) continue ;; esac
			[ -f "man$sec/$n.$sec" ] || echo "FAIL: $f: SEE ALSO $n($sec): no such page"
		done
done >"$tmp/seealso"
[ -s "$tmp/seealso" ] && { cat "$tmp/seealso"; fails=$((fails + 1)); }

# SYNOPSIS: the C each page shows, one file, #line naming the page.
synopsis() {
	awk '/^\.SH /{s = ($2 == "SYNOPSIS")} s && /^\.B/' "$1" | sed -e 's/^\.[A-Z]* //' -e 's/"//g'
}
# A block (enum or struct) as text: no comments, no blanks, no trailing comma.
norm() { sed -e 's|/\*.*\*/||g' | tr -d ' \t\n' | sed 's/,}/}/g'; }
: >"$tmp/decls.c"
: >"$tmp/incs"
for f in man3/*.3; do
	[ -h "$f" ] && continue
	synopsis "$f" >"$tmp/syn"
	grep '^#include' "$tmp/syn" >>"$tmp/incs" || true
	printf '#line 1 "%s"\n' "$f" >>"$tmp/decls.c"
	for block in $(sed -n 's/^\(enum\|struct\) \([a-z_]*\) {.*/\1:\2/p' "$tmp/syn"); do
		kind=${block%%:*}
		tag=${block#*:}
		want=$(sed -n "/^$kind $tag {/,/^};/p" "$header" | norm)
		got=$(sed -n "/^$kind $tag {/,/^};/p" "$tmp/syn" | norm)
		[ "$want" = "$got" ] || fail "$f: SYNOPSIS $kind $tag is not the header's: $got"
	done
	# Blocks were compared above; a #define without a value only names the macro.
	awk '/^(enum|struct) [a-z_]* \{/ {skip = 1} skip && /^\};/ {skip = 0; print ""; next}
	     skip {print ""; next}
	     /^#include/ {print ""; next}
	     /^#define [A-Z_0-9]*[ \t]*$/ {print "#ifndef " $2; print "#error the page names a macro the header lacks"; print "#endif"; next}
	     {print}' "$tmp/syn" >>"$tmp/decls.c"
done
sort -u "$tmp/incs" >"$tmp/c.c"
cat "$tmp/decls.c" >>"$tmp/c.c"
$CC -std=gnu11 -Wall -Wextra -Werror -I"$srcdir/include" -fsyntax-only "$tmp/c.c" 2>"$tmp/cc.log" ||
	{ cat "$tmp/cc.log"; fail "a SYNOPSIS disagrees with the header (C)"; }
if command -v "$CXX" >/dev/null; then
	{ sort -u "$tmp/incs"; echo 'extern "C" {'; grep -v '^#' "$tmp/decls.c"; echo '}'; } >"$tmp/cxx.cc"
	$CXX -std=gnu++11 -Wall -Wextra -Werror -I"$srcdir/include" -fsyntax-only "$tmp/cxx.cc" \
		2>"$tmp/cxx.log" || { cat "$tmp/cxx.log"; fail "a SYNOPSIS disagrees with the header (C++)"; }
fi

# The functions the pages declare are exactly the header's.
fns() { grep -v -e '^#' -e '^typedef' | tr '\n' ' ' | grep -o 'rsc_[a-z_]*[[:space:]]*(' | tr -d ' (' | sort -u; }
sed -e 's/typedef[^;]*;//' "$header" | grep -v '^#' | fns >"$tmp/header.fns"
grep -v '^#line' "$tmp/decls.c" | sed 's/typedef[^;]*;//g' | fns >"$tmp/pages.fns"
diff "$tmp/header.fns" "$tmp/pages.fns" >"$tmp/fns.diff" ||
	{ echo "functions: < header only, > pages only"; cat "$tmp/fns.diff"; fail "pages and header declare different functions"; }

# EXAMPLE programs (those with a main) build as a reader would build them,
# with the default dialect and warnings on; one whose page shows its output
# ("Output ...", then .EX) prints exactly that.
lib=$top_builddir/src/.libs
unroff() { sed -e 's/\\e/\\/g' -e 's/\\-/-/g' -e 's/\\(aq/'"'"'/g' -e 's/\\(dq/"/g'; }
for f in man*/*; do
	n=$(grep -c '^\.EX' "$f") || continue
	i=1
	while [ "$i" -le "$n" ]; do
		awk -v k="$i" '/^\.EX/ { n++; next } /^\.EE/ { if (n == k) exit } n == k' "$f" | unroff >"$tmp/ex.c"
		i=$((i + 1))
		grep -q 'int main' "$tmp/ex.c" || continue
		extra=""
		if grep -q '<uv\.h>' "$tmp/ex.c"; then
			echo '#include <uv.h>' | $CC -E - >/dev/null 2>&1 ||
				{ echo "SKIP man_check ($f example): no <uv.h>"; continue; }
			extra=-luv
		fi
		if ! $CC -Wall -Wextra -Werror ${RSC_LDFLAGS:-} -I"$srcdir/include" "$tmp/ex.c" -o "$tmp/ex" \
			-L"$lib" -lringscope $extra 2>"$tmp/cc.log"; then
			cat "$tmp/cc.log"
			fail "$f: its EXAMPLE program does not build"
			continue
		fi
		# The output shown after it, if any, with the defaults it names.
		awk -v k="$i" '/^\.EX/ { n++; if (n == k && out) p = 1; next }
			/^\.EE/ { if (p) exit } p; n == k - 1 && /^Output/ { out = 1 }' "$f" | unroff >"$tmp/want"
		[ -s "$tmp/want" ] || continue
		[ -r /etc/hostname ] || { echo "SKIP man_check ($f output): no /etc/hostname"; continue; }
		(cd "$tmp" && LD_LIBRARY_PATH=$lib ./ex >out.1 2>out.2) || true
		cat "$tmp/out.1" "$tmp/out.2" >"$tmp/got"
		cmp -s "$tmp/want" "$tmp/got" ||
			{ diff "$tmp/want" "$tmp/got" || true; fail "$f: its EXAMPLE prints other than the page shows"; }
	done
done

[ $fails -eq 0 ] || exit 1
echo "man_check: $(ls man*/* | wc -l) pages render cleanly, their references resolve, their synopses are the header's"
