#!/bin/sh
# The shared library exports exactly the functions of the public header, all
# under a version node, and nothing else (src/ringscope.map).
set -eu
srcdir=${srcdir:-.}
lib=tests/../src/.libs/libringscope.so
[ -f "$lib" ] || { echo "SKIP abi_check: no shared library built"; exit 77; }
header=$(sed -e 's/typedef[^;]*;//' "$srcdir/include/ringscope.h" |
	grep -o 'rsc_[a-z_]*[[:space:]]*(' | tr -d ' (' | grep -v -e '_cb$' -e '_fn$' | sort -u)
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" { print $3 }' | sed 's/@.*//' | sort -u)
unversioned=$(nm -D --defined-only "$lib" | awk '$2 == "T" && $3 !~ /@@RINGSCOPE_/ { print $3 }')
status=0
if [ "$header" != "$exported" ]; then
	echo "FAIL: exports differ from include/ringscope.h:"
	printf '%s\n' "$header" > abi.header.tmp
	printf '%s\n' "$exported" > abi.exported.tmp
	diff abi.header.tmp abi.exported.tmp || true
	rm -f abi.header.tmp abi.exported.tmp
	status=1
fi
if [ -n "$unversioned" ]; then
	echo "FAIL: exported without a version node: $unversioned"
	status=1
fi
[ $status -eq 0 ] && echo "abi_check: $(printf '%s\n' "$exported" | wc -l) exports match the header, all versioned"
exit $status
