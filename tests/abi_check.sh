#!/bin/sh
# The shared library exports exactly the functions of the public header, all
# under a version node, and nothing else (src/ringscope.map); each has a page,
# and the tools node's are marked as no stable promise on it and in the header.
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
# Nothing but functions: data would freeze a layout into every user's binary.
data=$(nm -D --defined-only "$lib" | awk '$2 != "T" && $2 != "A" { print $3 }')
if [ -n "$data" ]; then
	echo "FAIL: exported objects that are not functions: $data"
	status=1
fi
# A name in the version script that the library lacks is silently ignored by ld.
mapped=$(sed -n 's/^[[:space:]]*\(rsc_[a-z_]*\);.*/\1/p' "$srcdir/src/ringscope.map" | sort -u)
if [ "$mapped" != "$exported" ]; then
	echo "FAIL: src/ringscope.map and the exports differ:"
	printf '%s\n' "$mapped" > abi.map.tmp
	printf '%s\n' "$exported" > abi.exported.tmp
	diff abi.map.tmp abi.exported.tmp || true
	rm -f abi.map.tmp abi.exported.tmp
	status=1
fi
# Every export has its page; the tools node's (issue: test-only functions) say
# on the page and in the header that they are no stable promise, and no
# function of the stable node says so.
for f in $exported; do
	page=$srcdir/man/$f.3
	[ -f "$page" ] || { echo "FAIL: $f has no page man/$f.3"; status=1; continue; }
	target=$(sed -n '1s|^\.so man3/||p' "$page")
	[ -n "$target" ] && page=$srcdir/man/$target
	node=$(nm -D --defined-only "$lib" | awk -v f="$f" '$3 ~ "^" f "@@" { sub(/.*@@/, "", $3); print $3 }')
	if [ "$node" = RINGSCOPE_TOOLS_0.1 ]; then
		grep -q 'not part of the stable ABI' "$page" && grep -q 'RINGSCOPE_TOOLS_0\.1' "$page" ||
			{ echo "FAIL: $f (RINGSCOPE_TOOLS_0.1): its page does not say it is no stable promise"; status=1; }
		awk -v f="$f" '/^\/\*/ { c = "" } { c = c $0 } $0 ~ "^RSC_EXTERN.*[ *]" f "\\(" { print c; exit }' "$srcdir/include/ringscope.h" |
			grep -q 'RINGSCOPE_TOOLS_0\.1' ||
			{ echo "FAIL: $f (RINGSCOPE_TOOLS_0.1): the header's comment does not say so"; status=1; }
	elif grep -q 'not part of the stable ABI' "$page"; then
		echo "FAIL: $f is in the stable node $node, but its page says it is not"
		status=1
	fi
done
[ $status -eq 0 ] && echo "abi_check: $(printf '%s\n' "$exported" | wc -l) exports match the header and the map, all versioned and paged"
exit $status
