#!/bin/sh
# Every input of tests/fuzz/regressions/ replayed through the soak's
# interpreter and oracle (ringscope-soak -r), with the kinds it was found
# with (tests/fuzz/regressions.list): a bug the fuzzer or the soak found
# once stays found, in 'make check' and not only in 'make fuzz'.
set -u
srcdir=${srcdir:-.}
soak=./tests/soak/ringscope-soak
list="$srcdir/tests/fuzz/regressions.list"
fail=0
n=0
while read -r kinds name; do
	case "$kinds" in '' | '#'*) continue ;; esac
	n=$((n + 1))
	out=$(PROG_KINDS="$kinds" timeout 120 "$soak" -r "$srcdir/tests/fuzz/regressions/$name" 2>&1)
	rc=$?
	if echo "$out" | grep -q '^SKIP'; then
		echo "$out" | grep '^SKIP'
		exit 77
	fi
	if [ $rc -ne 0 ]; then
		echo "FAIL $name (kinds $kinds, exit $rc):"
		echo "$out" | tail -5
		fail=1
	else
		echo "ok $name"
	fi
done <"$list"
[ $n -gt 0 ] || { echo "no regression inputs read from $list"; exit 1; }
exit $fail
