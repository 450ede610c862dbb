#!/bin/sh
# SPDX-License-Identifier: MIT
# Every option of every subcommand as --opt=value and as --opt value (with
# valgrind's names where they mean the same); every bad option a one-line
# error naming it, exit status 2; and suppressions: a file that silences
# exactly one of two findings, and --gen-suppressions that writes it.
. "$(dirname "$0")/lib.sh"

[ -f "$RINGSCOPE_PRELOAD" ] || skip "no preload library at $RINGSCOPE_PRELOAD (shared libraries disabled?)"
echo data > "$TMP/f"

# bad EXPECTED-MESSAGE ARGS...: exit status 2, one line, naming the option.
bad() {
	msg=$1
	shift
	"$AUDIT" "$@" > "$TMP/bad.out" 2> "$TMP/bad.err" < /dev/null
	rc=$?
	[ $rc = 2 ] || fail "'$*': exit status $rc, wanted 2"
	[ "$(wc -l < "$TMP/bad.err")" = 1 ] || fail "'$*': not a one-line error: $(cat "$TMP/bad.err")"
	grep -qF -- "$msg" "$TMP/bad.err" || fail "'$*': message was: $(cat "$TMP/bad.err")"
}
bad "run: unknown option '--bogus'" run --bogus -- true
bad "run: unknown option '-x'" run -x -- true
bad "run: option '--output' needs a value" run --output
bad "run: option '--json' takes no value" run --json=1 -- true
bad "run: --error-exitcode wants a whole number from 0 to 255, not '256'" run --error-exitcode=256 -- true
bad "run: --error-exitcode wants a whole number from 0 to 255, not 'abc'" run --error-exitcode abc -- true
bad "run: --ignore-fd wants a whole number from 0 to 2147483647, not '-1'" run --ignore-fd=-1 -- true
bad "run: --dump-above wants a whole number from 1 to 2147483647, not '0'" run --dump-above 0 -- true
bad "run: --dump-on wants a signal" run --dump-on=SIGNOPE -- true
# A fault as the dump signal: a crash would dump for ever (it once did).
for sig in 11 7 8 4; do bad "run: --dump-on wants a signal" run --dump-on=$sig -- true; done
bad "run: --foreign-close wants warn, abort or off, not 'maybe'" run --foreign-close maybe -- true
bad "run: --unwind wants fp or dwarf, not 'deep'" run --unwind=deep -- true
bad "run: --gen-suppressions wants no, yes or all, not 'some'" run --gen-suppressions=some -- true
bad "run: --suppressions: $TMP/none.supp:0: cannot read" run --suppressions "$TMP/none.supp" -- true
bad "run: no command given" run --json
bad "snapshot: unknown option '--bogus'" snapshot --bogus
bad "snapshot: option '--json' takes no value" snapshot --json=yes
bad "diff: unknown option '-z'" diff -z a b
# A letter inside a cluster is named itself, after a long option too (bug 113);
# a letter that is a control byte is escaped.
bad "diff: unknown option '-z'" diff -zh a b
bad "snapshot: unknown option '-q'" snapshot --json -qz
bad "diff: unknown option '-\\x1b'" diff -$(printf '\033') a b
bad "watch: option '--interval' needs a value" watch --interval
bad "watch: --interval wants a positive number of seconds, not '0'" watch --interval=0 1
bad "watch: --for wants a positive number of seconds, not 'x'" watch --for x 1
bad "dump: --timeout wants seconds above 0 and up to 3600, not '-1'" dump --timeout=-1 1
# Seconds are decimal digits (bug 99: strtod took a sign, a space, hex and an exponent).
for v in +1 " 1" 0x10 1e3 "1 " .; do
	bad "watch: --interval wants a positive number of seconds, not '$v'" watch --interval="$v" 1
	bad "dump: --timeout wants seconds above 0 and up to 3600, not '$v'" dump --timeout="$v" 1
done
bad "dump: unknown option '--now'" dump --now 1
bad "unknown command 'frobnicate'" frobnicate
# An empty value is a missing one.
bad "run: option '--output' needs a value" run --output= -- true
bad "run: option '--log-file' needs a value" run --log-file "" -- true
bad "watch: option '--plot' needs a value" watch --for 0.2 --plot= $$
# A plot that cannot be written is said at once, not after --for's 30 s.
timeout 10 "$AUDIT" watch --for 30 --plot "$TMP/no/such/dir.svg" $$ > /dev/null 2> "$TMP/plot.err"
rc=$?
[ $rc = 2 ] || fail "watch --plot into a missing directory: exit status $rc, wanted 2 at once (124: it sampled first)"
# Repeatable means as often as wanted: 100 of each, the last one matching.
many=""
for i in $(seq 100); do many="$many --ignore-fd=$((1000 + i)) --ignore=nomatch$i"; done
# shellcheck disable=SC2086
"$AUDIT" run --json --output "$TMP/many.json" $many --ignore-fd 3 --ignore-fd 4 --ignore-fd 5 \
	-- "$P/leak_file" "$TMP/f" > /dev/null
rc=$?
[ $rc = 0 ] || fail "100 --ignore and --ignore-fd: exit status $rc"
expect "$TMP/many.json" --count 0

# run, both syntaxes: the effect is the same.
for form in eq sp; do
	o() { if [ $form = eq ]; then echo "--$1=$2"; else echo "--$1 $2"; fi; }
	# shellcheck disable=SC2046
	"$AUDIT" run --json $(o output "$TMP/$form.json") $(o error-exitcode 42) $(o ignore-fd 999) \
		$(o ignore '*nothing*') $(o foreign-close warn) $(o dump-on SIGUSR1) $(o dump-above 1000) \
		$(o gen-suppressions no) $(o unwind dwarf) -- "$P/leak_file" "$TMP/f" > "$TMP/$form.out"
	rc=$?
	[ $rc = 42 ] || fail "$form: --error-exitcode 42 gave $rc"
	expect "$TMP/$form.json" --count 1 --has "kind=leaked bt=open_config"
	"$AUDIT" run -q $(o log-file "$TMP/$form.log") -- "$P/leak_file" "$TMP/f" > /dev/null
	grep -q "^leaked: fd" "$TMP/$form.log" || fail "$form: --log-file wrote no finding"
	grep -q "finding" "$TMP/$form.log" && fail "$form: -q still printed the summary"
	"$AUDIT" watch $(o interval 0.1) $(o for 0.3) $(o plot "$TMP/$form.svg") $$ > /dev/null ||
		[ $? = 1 ] || fail "$form: watch options refused"
	[ -s "$TMP/$form.svg" ] || fail "$form: watch --plot wrote nothing"
done
"$AUDIT" run --json --output "$TMP/nobt.json" --no-backtrace --follow-forks --trace-children \
	-- "$P/leak_file" "$TMP/f" > /dev/null
expect "$TMP/nobt.json" --count 1

# Suppressions: two leaks, one silenced by fun:, then by the generated block.
cat > "$TMP/one.supp" <<EOS
# the log file is kept open on purpose
{
   log-kept-open
   ringscope-audit:leaked
   target:$TMP/*
   fun:open_log
   ...
}
EOS
"$AUDIT" run --json --suppressions="$TMP/one.supp" --output "$TMP/s.json" -- "$P/leak_two" "$TMP/f" > "$TMP/s.out"
expect "$TMP/s.json" --count 1 --has "kind=leaked bt=open_config"
grep -q '"suppressed":1' "$TMP/s.json" || fail "the suppressed finding is not counted"
"$AUDIT" run --suppressions "$TMP/one.supp" -- "$P/leak_two" "$TMP/f" 2> "$TMP/s.txt" > /dev/null
grep -q "1 finding (1 suppressed)" "$TMP/s.txt" || fail "text summary: $(tail -1 "$TMP/s.txt")"
"$AUDIT" run --gen-suppressions=all -- "$P/leak_two" "$TMP/f" 2> "$TMP/gen.txt" > /dev/null
awk '/^\{/ { n++ } n == 2' "$TMP/gen.txt" | sed '/^}/q' > "$TMP/gen.supp"
grep -q "^   fun:open_log" "$TMP/gen.supp" || { fail "no generated suppression for open_log"; cat "$TMP/gen.txt"; }
"$AUDIT" run --json --suppressions "$TMP/gen.supp" --output "$TMP/g.json" -- "$P/leak_two" "$TMP/f" > /dev/null
expect "$TMP/g.json" --count 1 --has "kind=leaked bt=open_config"
printf '{\n   name\n   memcheck:Leak\n}\n' > "$TMP/bad.supp"
bad "run: --suppressions: $TMP/bad.supp:3: expected 'ringscope-audit:KIND' after the name" \
	run --suppressions "$TMP/bad.supp" -- true
finish
