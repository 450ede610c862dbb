#!/bin/sh
# SPDX-License-Identifier: MIT
# 'ringscope-audit run' on one small leaky program per finding kind: each
# must give exactly its finding (kind, descriptor, target, and a backtrace
# that names the function that created or closed it).
. "$(dirname "$0")/lib.sh"

[ -f "$RINGSCOPE_PRELOAD" ] || skip "no preload library at $RINGSCOPE_PRELOAD (shared libraries disabled?)"
echo data > "$TMP/f"
TRUE=$(command -v true)
case $TRUE in /*) ;; *) TRUE=/bin/true ;; esac

# run OUT_PREFIX AUDIT_OPTIONS... -- CMD...: report in $1.json, stdout in $1.out
run() {
	pre=$1
	shift
	"$AUDIT" run --json --output "$pre.json" "$@" > "$pre.out"
	echo $? > "$pre.rc"
}
fd_of() { sed -n 's/^fd //p' "$1.out"; }

# A leak through open(), reported with its creator.
run "$TMP/leak" -- "$P/leak_file" "$TMP/f"
fd=$(fd_of "$TMP/leak")
expect "$TMP/leak.json" --count 1 --status 0 \
	--has "kind=leaked fd=$fd target=$TMP/f fdkind=file created_by=open bt=open_config event=exit"

# A ringscope program's leak: made by IORING_OP_OPENAT, which the preload
# never sees; the library names the scope and the acquire site.
run "$TMP/scope" -- "$P/leak_scope" "$TMP/f"
sfd=$(fd_of "$TMP/scope")
expect "$TMP/scope.json" --count 2 \
	--has "kind=leaked-unseen fd=$sfd target=$TMP/f ringscope='config', ringscope=acquire_config" \
	--has "kind=leaked-unseen target=anon_inode:[io_uring]"

# Exit status and allow-lists.
run "$TMP/gate" --error-exitcode 42 -- "$P/leak_file" "$TMP/f"
[ "$(cat "$TMP/gate.rc")" = 42 ] || fail "--error-exitcode 42 gave $(cat "$TMP/gate.rc")"
run "$TMP/ign1" --error-exitcode 42 --ignore-fd "$fd" -- "$P/leak_file" "$TMP/f"
expect "$TMP/ign1.json" --count 0
[ "$(cat "$TMP/ign1.rc")" = 0 ] || fail "--ignore-fd: exit status $(cat "$TMP/ign1.rc")"
run "$TMP/ign2" --ignore "$TMP/*" -- "$P/leak_file" "$TMP/f"
expect "$TMP/ign2.json" --count 0
run "$TMP/ign3" --ignore 'open_conf*' -- "$P/leak_file" "$TMP/f"
expect "$TMP/ign3.json" --count 0

# A leak at a fatal signal: reported, and the command's status kept.
run "$TMP/abort" -- "$P/leak_file" "$TMP/f" abort
fd=$(fd_of "$TMP/abort")
expect "$TMP/abort.json" --count 1 --status 134 \
	--has "kind=leaked fd=$fd target=$TMP/f bt=open_config event=signal"

# A leak in a forked child: only with --follow-forks.
run "$TMP/nofollow" -- "$P/leak_file" "$TMP/f" fork
expect "$TMP/nofollow.json" --count 0
run "$TMP/follow" --follow-forks -- "$P/leak_file" "$TMP/f" fork
fd=$(fd_of "$TMP/follow")
expect "$TMP/follow.json" --count 1 --has "kind=leaked fd=$fd target=$TMP/f bt=open_config"

# Double close, and the close of a number that was never open.
run "$TMP/double" -- "$P/double_close" "$TMP/f"
fd=$(fd_of "$TMP/double")
expect "$TMP/double.json" --count 1 \
	--has "kind=double-close fd=$fd bt=close_twice created_by=open cbt=main"
run "$TMP/bad" -- "$P/bad_close"
fd=$(fd_of "$TMP/bad")
expect "$TMP/bad.json" --count 1 --has "kind=close-unopened fd=$fd bt=close_bogus"

# A descriptor without CLOEXEC that crosses an exec.
run "$TMP/exec" -- "$P/exec_leak" "$TMP/f" "$TRUE"
fd=$(fd_of "$TMP/exec")
expect "$TMP/exec.json" --count 1 \
	--has "kind=exec-leak fd=$fd target=$TMP/f into=$TRUE created_by=open bt=open_secret"

# io_uring: a descriptor IORING_OP_OPENAT made, and a ring left with a
# registered file.
run "$TMP/uring" -- "$P/leak_uring" "$TMP/f"
if [ "$(cat "$TMP/uring.rc")" = 77 ]; then
	sed -n 's/^SKIP/SKIP/p' "$TMP/uring.out"
else
	fd=$(fd_of "$TMP/uring")
	expect "$TMP/uring.json" --count 1 \
		--has "kind=leaked-unseen fd=$fd target=$TMP/f fdkind=file note=IORING_OP_OPENAT"
	run "$TMP/direct" -- "$P/direct_left" "$TMP/f"
	ring=$(sed -n 's/^ring //p' "$TMP/direct.out")
	expect "$TMP/direct.json" --count 2 \
		--has "kind=direct-registered fd=$ring slot=0:$TMP/f" \
		--has "kind=leaked-unseen fd=$ring fdkind=io_uring"
fi

# A command that cannot be started.
"$AUDIT" run -- "$TMP/no-such-program" 2> "$TMP/nostart.err"
rc=$?
[ $rc = 127 ] || fail "missing command: exit status $rc, wanted 127"
grep -q "cannot start .*no-such-program: No such file" "$TMP/nostart.err" ||
	fail "missing command: message was: $(cat "$TMP/nostart.err")"

finish
