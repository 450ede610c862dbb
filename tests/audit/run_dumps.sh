#!/bin/sh
# SPDX-License-Identifier: MIT
# Live dumps of a running audited process, grouped by creation site with
# the most common first: on a signal (--dump-on), from outside ('dump PID'),
# on EMFILE, and above a count (--dump-above); the program keeps running.
. "$(dirname "$0")/lib.sh"

[ -f "$RINGSCOPE_PRELOAD" ] || skip "no preload library at $RINGSCOPE_PRELOAD (shared libraries disabled?)"
echo data > "$TMP/f"

# On SIGUSR2, while the program keeps running.
"$AUDIT" run --dump-on=SIGUSR2 --output "$TMP/d.txt" -- "$P/hold" "$TMP/f" 5 "$TMP/gate" > "$TMP/hold.out" &
runner=$!
wait_for "$TMP/hold.out" "^ready" || fail "hold did not start"
pid=$(sed -n 's/^ready //p' "$TMP/hold.out")
kill -USR2 "$pid"
wait_for "$TMP/d.txt" "dump of pid $pid" || fail "no dump after SIGUSR2"
wait_for "$TMP/d.txt" "#0 open_pair" || fail "the dump is incomplete"
grep -q "dump of pid $pid (.*hold), on its dump signal: [0-9]* open descriptors" "$TMP/d.txt" ||
	{ fail "wrong dump header"; cat "$TMP/d.txt"; }
many=$(grep -n "^  5 created by open(), e.g. $TMP/f (file); fds " "$TMP/d.txt" | cut -d: -f1)
pair=$(grep -n "^  2 created by open(), e.g. $TMP/f (file); fds " "$TMP/d.txt" | cut -d: -f1)
[ -n "$many" ] && [ -n "$pair" ] && [ "$many" -lt "$pair" ] ||
	{ fail "sites not grouped, most common first"; cat "$TMP/d.txt"; }
sed -n "$((many + 1))p" "$TMP/d.txt" | grep -q "#0 open_many" || fail "the 5-site is not open_many"
sed -n "$((pair + 1))p" "$TMP/d.txt" | grep -q "#0 open_pair" || fail "the 2-site is not open_pair"

# From outside.
"$AUDIT" dump "$pid" > "$TMP/outside.txt"
rc=$?
[ $rc = 0 ] || fail "dump PID: exit status $rc"
grep -q "^  5 created by open()" "$TMP/outside.txt" || { fail "dump PID printed no grouped dump"; cat "$TMP/outside.txt"; }
"$AUDIT" dump --json "$pid" > "$TMP/outside.json"
grep -q '"event":"dump".*"reason":"signal"' "$TMP/outside.json" || fail "dump --json: $(head -c 300 "$TMP/outside.json")"
grep -q '"maps"' "$TMP/outside.json" && fail "dump --json leaks the raw maps"

touch "$TMP/gate"
wait "$runner"
rc=$?
[ $rc = 0 ] || fail "run of hold: exit status $rc"
grep -q "^after" "$TMP/hold.out" || fail "the program did not keep running after the dumps"

# A process that is not audited.
sleep 30 &
plain=$!
"$AUDIT" dump "$plain" 2> "$TMP/plain.err"
rc=$?
kill "$plain"
[ $rc = 2 ] || fail "dump of an unaudited process: exit status $rc"
grep -q "process $plain is not running under 'ringscope-audit run'" "$TMP/plain.err" ||
	fail "dump of an unaudited process said: $(cat "$TMP/plain.err")"

# A process with run's environment but no dump handler (a child that run
# does not follow): refused, not killed by the signal's default action.
"$AUDIT" run --output "$TMP/nf.txt" -- sh -c 'sleep 30 & echo $! > "$1"; wait $!; echo "status $?" > "$2"' \
	sh "$TMP/nf.pid" "$TMP/nf.status" 2> /dev/null &
nf_runner=$!
wait_for "$TMP/nf.pid" '[0-9]' || fail "the unfollowed child did not start"
nf=$(cat "$TMP/nf.pid")
"$AUDIT" dump --timeout 2 "$nf" 2> "$TMP/nf.err"
rc=$?
[ $rc = 2 ] || fail "dump of an unfollowed child: exit status $rc, wanted 2"
grep -q "process $nf is not running under 'ringscope-audit run'.*does not catch the dump signal" "$TMP/nf.err" ||
	fail "dump of an unfollowed child said: $(cat "$TMP/nf.err")"
kill -0 "$nf" 2> /dev/null || fail "dump killed a process that does not catch its signal: $(cat "$TMP/nf.status")"
kill "$nf" 2> /dev/null
wait "$nf_runner"

# On EMFILE under a lowered RLIMIT_NOFILE: then the program goes on.
(ulimit -n 64 && "$AUDIT" run --output "$TMP/e.txt" -- "$P/emfile_leak" "$TMP/f" > "$TMP/e.out")
n=$(sed -n 's/^leaked //p' "$TMP/e.out")
[ -n "$n" ] || fail "emfile_leak did not go on after EMFILE"
grep -q "dump of pid [0-9]* (.*emfile_leak), an acquire failed with EMFILE" "$TMP/e.txt" ||
	{ fail "no EMFILE dump"; cat "$TMP/e.txt"; }
grep -q "^  $n created by open()" "$TMP/e.txt" || fail "the EMFILE dump does not group the $n leaks"
grep -q "#0 hoard" "$TMP/e.txt" || fail "the EMFILE dump does not name hoard()"

# Above a count: once, when it is crossed (30 opens on top of what make
# check passes down, fewer than 20).
touch "$TMP/gate2"
"$AUDIT" run --dump-above 20 --output "$TMP/a.txt" -- "$P/hold" "$TMP/f" 30 "$TMP/gate2" > /dev/null
[ "$(grep -c "the count crossed --dump-above" "$TMP/a.txt")" = 1 ] ||
	{ fail "--dump-above 20: not exactly one dump"; cat "$TMP/a.txt"; }
grep -q "the count crossed --dump-above: 21 open descriptors" "$TMP/a.txt" ||
	{ fail "--dump-above 20: dumped at the wrong count"; cat "$TMP/a.txt"; }
# SIGTERM (or SIGHUP) sent to `run` stops the command, not only `run`: it is
# forwarded, the report still comes, the status is the command's (143), and
# neither the command nor the report directory is left behind.
: > "$TMP/f"
mkdir "$TMP/rt"
TMPDIR="$TMP/rt" "$AUDIT" run --output "$TMP/t.txt" -- "$P/hold" "$TMP/f" 3 "$TMP/never" > "$TMP/t.out" &
runpid=$!
wait_for "$TMP/t.out" "^ready" || fail "hold did not start under run"
hpid=$(sed -n 's/^ready //p' "$TMP/t.out")
kill -TERM "$runpid"
wait "$runpid"
rc=$?
[ $rc = 143 ] || fail "run after SIGTERM: exit status $rc, not the command's 143"
grep -q "command exited with 143" "$TMP/t.txt" || { fail "run after SIGTERM: no report"; cat "$TMP/t.txt"; }
grep -q "leaked: fd .* -> $TMP/f" "$TMP/t.txt" || { fail "run after SIGTERM: the held descriptors not reported"; cat "$TMP/t.txt"; }
[ -n "$hpid" ] && kill -0 "$hpid" 2>/dev/null && { fail "the command outlived run's SIGTERM"; kill -9 "$hpid"; }
[ -z "$(ls -A "$TMP/rt")" ] || fail "run after SIGTERM left its report directory: $(ls -A "$TMP/rt")"
finish
