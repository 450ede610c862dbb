#!/bin/sh
# Attach bpftrace to one probe of a running program and count its events.
# Skipped, with the reason, where bpftrace, root or BPF is missing.
set -eu
prog=${OBSERVE_PROG:-tests/observe/observe_prog}
skip() { echo "SKIP bpftrace_check: $*"; exit 77; }
grep -q '^#define RSC_USDT 1' config.h || skip "built without <sys/sdt.h>"
command -v bpftrace >/dev/null || skip "bpftrace is not installed (apt-get install bpftrace)"
[ "$(id -u)" -eq 0 ] || skip "needs root (CAP_BPF and CAP_PERFMON) to attach"
timeout 30 bpftrace -e 'BEGIN { exit(); }' >/dev/null 2>&1 ||
	skip "bpftrace cannot load a BPF program here (seccomp, lockdown or a container)"
n=40
out=$(timeout 60 bpftrace -e "usdt:$prog:ringscope:acquire_start { @starts = count(); }
	usdt:$prog:ringscope:acquire_done /arg2 >= 0/ { @dones = count(); }" \
	-c "$prog probe $n" 2>&1) || { echo "FAIL: bpftrace: $out"; exit 1; }
# Detach warnings (no tracefs mounted) are noise: the counts decide.
starts=$(printf '%s\n' "$out" | awk '/^@starts:/ { print $2 }')
dones=$(printf '%s\n' "$out" | awk '/^@dones:/ { print $2 }')
if [ "${starts:-0}" -ne $n ] || [ "${dones:-0}" -ne $n ]; then
	echo "FAIL: expected $n acquire_start and $n successful acquire_done, got '${starts:-}' and '${dones:-}'"
	printf '%s\n' "$out"
	exit 1
fi
echo "bpftrace_check: $n acquire_start, $n acquire_done events counted"
