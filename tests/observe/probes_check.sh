#!/bin/sh
# The USDT probes, as readelf -n lists them: provider ringscope, each probe
# with its number of arguments, in the library and in a program linked
# statically against it.
set -eu
prog=${OBSERVE_PROG:-tests/observe/observe_prog}
if ! grep -q '^#define RSC_USDT 1' config.h; then
	echo "SKIP probes_check: built without <sys/sdt.h> (apt-get install systemtap-sdt-dev, then configure)"
	exit 77
fi
command -v readelf >/dev/null || { echo "SKIP probes_check: no readelf (binutils)"; exit 77; }
expected="acquire_done 4
acquire_start 5
audit_finding 4
release_done 4
release_start 4
scope_closed 4
scope_open 4
submit 3"
status=0
for f in src/.libs/libringscope.so "$prog"; do
	[ -f "$f" ] || continue
	got=$(readelf -n "$f" | awk '/Provider:/ { p = $2 } /Name:/ { n = $2 }
		/Arguments:/ && p == "ringscope" { print n, NF - 1 }' | sort -u)
	if [ "$got" != "$expected" ]; then
		echo "FAIL: probes in $f:"
		printf '%s\n' "$got"
		status=1
	else
		echo "probes_check: $f: $(printf '%s\n' "$got" | tr '\n' ',' )"
	fi
done
exit $status
