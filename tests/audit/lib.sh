# SPDX-License-Identifier: MIT
# Sourced by the tests/audit/*.sh scripts; make check runs them from the
# top build directory.
top_builddir=$(pwd)
AUDIT="$top_builddir/tools/audit/ringscope-audit"
P="$top_builddir/tests/audit"
: "${RINGSCOPE_PRELOAD:=$top_builddir/tools/audit/.libs/libringscope-preload.so}"
export RINGSCOPE_PRELOAD
TMP=$(mktemp -d "${TMPDIR:-/tmp}/audit-test.XXXXXX") || exit 99
trap 'rm -rf "$TMP"' EXIT
name=$(basename "$0" .sh)
fails=0

fail() {
	echo "FAIL $name: $*"
	fails=$((fails + 1))
}

skip() {
	echo "SKIP $name: $*"
	exit 77
}

# expect REPORT ARGS...: assert on a --json report, show it when it fails.
expect() {
	rep=$1
	shift
	if ! "$P/expect" "$rep" "$@"; then
		fail "assertion on $rep failed; the report:"
		cat "$rep"
	fi
}

# wait_for FILE TEXT: up to 20 s for a line in a file a child writes.
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 200 ] && return 1
		sleep 0.1
	done
	return 0
}

finish() {
	[ "$fails" -eq 0 ] || exit 1
	echo "PASS $name"
	exit 0
}
