#!/bin/sh
# The installed copy as a consumer sees it (tests/README.md, "Consumers"):
# `make install DESTDIR`, then only pkg-config's flags. The header alone in
# every C dialect and as C++; a program built and run without liburing's
# headers in reach; the static library through `pkg-config --static`.
set -eu
srcdir=${srcdir:-.}
here=$srcdir/tests/consumer
top_builddir=$(pwd)
CC=${CC:-cc}
CXX=${CXX:-g++}
# A sanitized build's library wants its runtime in the program too (RSC_LDFLAGS).
SAN=${RSC_LDFLAGS:-}
command -v pkg-config >/dev/null || { echo "SKIP install_check: no pkg-config"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rsc-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
stage=$tmp/stage
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# A test run by make: the parent's jobserver is not ours.
(unset MAKEFLAGS MFLAGS MAKELEVEL; ${MAKE:-make} -s -C "$top_builddir" install DESTDIR="$stage") \
	>"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; echo "FAIL: make install"; exit 1; }
pc=$(find "$stage" -name ringscope.pc | head -n 1)
[ -n "$pc" ] || { echo "FAIL: no ringscope.pc installed"; exit 1; }
PKG_CONFIG_PATH=$(dirname "$pc")
PKG_CONFIG_SYSROOT_DIR=$stage
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
cflags=$(pkg-config --cflags ringscope)
libs=$(pkg-config --libs ringscope)
libdir=$(pkg-config --variable=libdir ringscope)
case "$libdir" in "$stage"/*) ;; *) libdir=$stage$libdir ;; esac # pkgconf adds the sysroot itself
# liburing only for a static link, at the version configure requires.
[ "$(pkg-config --print-requires-private ringscope)" = "liburing >= 2.3" ] ||
	fail "Requires.private is not liburing >= 2.3: $(pkg-config --print-requires-private ringscope)"
# The header needs nothing of liburing, so the shared library's users link it alone.
case " $libs " in *" -luring "*) fail "pkg-config --libs names liburing: $libs" ;; esac

# Headers named like liburing's that stop any build reaching for them.
hide=$tmp/hide
mkdir -p "$hide/liburing" "$hide/linux"
for h in liburing.h liburing/io_uring.h linux/io_uring.h; do
	echo "#error \"a consumer must not need <$h>\"" >"$hide/$h"
done

# The header on its own, first and alone in its translation unit.
printf '#include <ringscope.h>\nint main(void) { return 0; }\n' >"$tmp/alone.c"
for std in c89 gnu89 c99 gnu99 c11 gnu11 c17; do
	for extra in "" -D_FILE_OFFSET_BITS=64; do
		$CC -std=$std -Wall -Wextra -Wpedantic -Werror $extra -I"$hide" $cflags \
			-c "$tmp/alone.c" -o "$tmp/alone.o" 2>"$tmp/cc.log" ||
			{ cat "$tmp/cc.log"; fail "the header alone with -std=$std $extra"; }
	done
done

# A program: built with pkg-config's flags only, run against the staged library.
if $CC -std=c99 -Wall -Wextra -Wpedantic -Werror -I"$hide" $cflags "$here/consumer.c" \
	$SAN -o "$tmp/consumer" $libs -pthread 2>"$tmp/cc.log"; then
	readelf -d "$tmp/consumer" | grep -q 'NEEDED.*\[libringscope\.so\.0\]' ||
		fail "the program does not need libringscope.so.0 by its soname"
	# Bound to the stable node, so that a later release can keep serving it.
	unbound=$(nm -D --undefined-only "$tmp/consumer" | awk '$2 ~ /^rsc_/ && $2 !~ /@RINGSCOPE_0\.1$/ { print $2 }')
	[ -z "$unbound" ] || fail "the program binds to other than RINGSCOPE_0.1: $unbound"
	LD_LIBRARY_PATH=$libdir "$tmp/consumer" || fail "the program built from the installed copy"
else
	cat "$tmp/cc.log"
	fail "building a program with pkg-config --cflags --libs ringscope"
fi

# The static library, with what pkg-config --static adds (Requires.private).
if [ -f "$libdir/libringscope.a" ] && [ -z "$SAN" ]; then
	slibs=$(pkg-config --static --libs ringscope)
	if $CC -static -std=c99 -Wall -Wextra -Werror $cflags "$here/consumer.c" \
		-o "$tmp/consumer-static" $slibs -pthread 2>"$tmp/cc.log"; then
		"$tmp/consumer-static" || fail "the statically linked program"
	else
		cat "$tmp/cc.log"
		fail "linking statically with pkg-config --static --libs ringscope ($slibs)"
	fi
fi

# C++: extern "C", and nothing in the header that only C accepts.
if command -v "$CXX" >/dev/null; then
	for std in c++11 c++17; do
		$CXX -std=$std -Wall -Wextra -Wpedantic -Werror -I"$hide" $cflags -x c++ \
			-c "$tmp/alone.c" -o "$tmp/alone.o" 2>"$tmp/cc.log" ||
			{ cat "$tmp/cc.log"; fail "the header alone as C++ (-std=$std)"; }
	done
	if $CXX -std=c++11 -Wall -Wextra -Werror -I"$hide" $cflags "$here/consumer.cc" \
		$SAN -o "$tmp/consumer-cxx" $libs 2>"$tmp/cc.log"; then
		LD_LIBRARY_PATH=$libdir "$tmp/consumer-cxx" || fail "the C++ program"
	else
		cat "$tmp/cc.log"
		fail "building a C++ program against the installed header"
	fi
else
	echo "SKIP install_check (C++ part): no $CXX"
fi
# No name the header declares is reserved to the implementation in either
# language (C++ also reserves every name with "__"): clang says which.
if command -v clang++ >/dev/null; then
	clang -std=c11 -Wreserved-identifier -Wreserved-macro-identifier -Werror -I"$hide" $cflags \
		-fsyntax-only "$tmp/alone.c" 2>"$tmp/cc.log" ||
		{ cat "$tmp/cc.log"; fail "a reserved name in the header (C)"; }
	clang++ -std=c++17 -Wreserved-identifier -Wreserved-macro-identifier -Werror -I"$hide" $cflags \
		-x c++ -fsyntax-only "$tmp/alone.c" 2>"$tmp/cc.log" ||
		{ cat "$tmp/cc.log"; fail "a reserved name in the header (C++)"; }
else
	echo "SKIP install_check (reserved names): no clang++"
fi

# The installed pages: each alias a ".so" stub naming an installed page.
mandir=$(dirname "$(find "$stage" -name rsc_loop_new.3 | head -n 1)")/..
for f in "$mandir"/man*/*; do
	target=$(sed -n '1s/^\.so //p' "$f")
	[ -z "$target" ] || [ -f "$mandir/$target" ] || fail "installed ${f#"$mandir"/}: .so $target: no such page"
	[ -h "$f" ] && fail "installed ${f#"$mandir"/} is a symlink, not a .so stub"
done
# From a git tree (aliases are symlinks); `make dist`'s tar makes them copies.
if [ -n "$(find "$srcdir/man" -type l | head -n 1)" ]; then
	[ "$(grep -l '^\.so ' "$mandir"/man3/* | wc -l)" -gt 0 ] || fail "no alias page was installed as a .so stub"
fi

# What the pkg-config file says is what the header says.
want="$(sed -n 's/^#define RINGSCOPE_VERSION_MAJOR //p' "$srcdir/include/ringscope.h").$(sed -n 's/^#define RINGSCOPE_VERSION_MINOR //p' "$srcdir/include/ringscope.h")"
case "$(pkg-config --modversion ringscope)" in
"$want" | "$want".*) ;;
*) fail "pkg-config --modversion $(pkg-config --modversion ringscope) is not the header's $want" ;;
esac

[ $fails -eq 0 ] || exit 1
echo "install_check: the installed header, pkg-config file and libraries serve C89 to C17, C++ and a static link"
