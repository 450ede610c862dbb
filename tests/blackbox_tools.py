#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Black-box acceptance of ringscope-audit(1), ringscope-demo(1) and the
metrics of ringscope-httpd --metrics, written from the pages alone: every
program run as a user types it, every output read by a real parser.

Run by make check from the top build directory (RINGSCOPE_DEMO,
RINGSCOPE_HTTPD and srcdir come from the test environment)."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

BUILD = os.getcwd()
SRC = os.environ.get("srcdir", ".")
AUDIT = os.path.join(BUILD, "tools/audit/ringscope-audit")
DEMO = os.environ.get("RINGSCOPE_DEMO", os.path.join(BUILD, "tools/ringscope-demo"))
HTTPD = os.environ.get("RINGSCOPE_HTTPD", os.path.join(BUILD, "tools/httpd/ringscope-httpd"))
os.environ.setdefault("RINGSCOPE_PRELOAD",
                      os.path.join(BUILD, "tools/audit/.libs/libringscope-preload.so"))
for v in ("RINGSCOPE_AUDIT", "RINGSCOPE_FAULT", "RINGSCOPE_TRACE"):
    os.environ.pop(v, None)

TMP = tempfile.mkdtemp(prefix="bbtools.")
# A file name that would drive a terminal: ESC, a newline, BEL, DEL, a C1 CSI
# (U+009B) and a byte that is not UTF-8.
WEIRD = os.path.join(os.fsencode(TMP), b"a\x1b[31mred\nnl\x07\x7f\xc2\x9bx\xff")
with open(WEIRD, "wb") as f:
    f.write(b"x")
fails = []
skips = []


def check(cond, what):
    if not cond:
        fails.append(what)
        print("FAIL", what)
    return cond


def run(args, env=None, timeout=60, **kw):
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, env=e,
                          timeout=timeout, **kw)


def no_terminal_bytes(data, what):
    """No C0 control but newline and tab, no DEL, no C1 control (as UTF-8)."""
    bad = re.search(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]", data)
    return check(bad is None, "%s: a raw control byte %r" % (what, bad and bad.group(0)))


def one_line_error(r, needle, what):
    err = r.stderr.decode("utf-8", "replace")
    check(r.returncode == 2, "%s: exit %d, not 2" % (what, r.returncode))
    check(err.count("\n") == 1, "%s: not one line: %r" % (what, err))
    check(needle in err, "%s: %r not named in %r" % (what, needle, err))
    check(r.stdout == b"", "%s: wrote to stdout" % what)


# ---- ringscope-audit: help, version, usage errors --------------------------

def audit_help_version():
    for a in (["--help"], ["-h"], ["help"]):
        r = run([AUDIT] + a)
        check(r.returncode == 0 and b"usage:" in r.stdout and r.stderr == b"",
              "audit %s: exit 0, usage on stdout" % a)
    r = run([AUDIT, "--version"])
    check(r.returncode == 0 and re.match(rb"ringscope-audit \d+\.\d+", r.stdout)
          and r.stdout.count(b"\n") == 1 and r.stderr == b"",
          "audit --version: one line 'ringscope-audit VERSION', exit 0 (%d %r %r)"
          % (r.returncode, r.stdout, r.stderr))


BAD_OPTIONS = [
    (["run", "--bogus", "--", "true"], "--bogus"),
    (["run", "--output", "--", "true"], "--output"),
    (["run", "--output=", "--", "true"], "--output"),
    (["run", "--ignore", "--", "true"], "--ignore"),
    (["run", "--trace-children=maybe", "--", "true"], "--trace-children"),
    (["run", "--follow-forks=yes", "--", "true"], "--follow-forks"),
    (["run", "--json=1", "--", "true"], "--json"),
    (["run", "--error-exitcode=256", "--", "true"], "'256'"),
    (["run", "--error-exitcode=-1", "--", "true"], "--error-exitcode"),
    (["run", "--error-exitcode= 5", "--", "true"], "--error-exitcode"),
    (["run", "--error-exitcode=+5", "--", "true"], "--error-exitcode"),
    (["run", "--error-exitcode=5x", "--", "true"], "--error-exitcode"),
    (["run", "--error-exitcode", "0x10", "--", "true"], "--error-exitcode"),
    (["run", "--ignore-fd=abc", "--", "true"], "--ignore-fd"),
    (["run", "--ignore-fd", " 7", "--", "true"], "--ignore-fd"),
    (["run", "--ignore-fd=2147483648", "--", "true"], "--ignore-fd"),
    (["run", "--dump-above=0", "--", "true"], "--dump-above"),
    (["run", "--dump-on=SIGKILL", "--", "true"], "--dump-on"),
    (["run", "--dump-on=SIGSTOP", "--", "true"], "--dump-on"),
    (["run", "--dump-on=SEGV", "--", "true"], "--dump-on"),
    (["run", "--dump-on=", "--", "true"], "--dump-on"),
    (["run", "--unwind=lbr", "--", "true"], "--unwind"),
    (["run", "--gen-suppressions=maybe", "--", "true"], "--gen-suppressions"),
    (["run", "--foreign-close=kill", "--", "true"], "--foreign-close"),
    (["run", "--suppressions", "/nonexistent/s.supp", "--", "true"], "s.supp"),
    (["run", "--"], "command"),
    (["snapshot", "abc"], "abc"),
    (["snapshot", " 1"], "1"),
    (["snapshot", "+1"], "+1"),
    (["snapshot", "1", "2"], "PID"),
    (["snapshot", "--json=yes"], "--json"),
    (["diff", "a.json"], "diff"),
    (["watch", "--interval=0", "1"], "--interval"),
    (["watch", "--interval", "nan", "1"], "--interval"),
    (["watch", "--for=-1", "1"], "--for"),
    (["watch", "--for"], "--for"),
    (["dump", "--timeout=0", "1"], "--timeout"),
    (["dump", "--timeout=3601", "1"], "--timeout"),
    (["dump"], "dump"),
    (["bogus"], "bogus"),
    ([], "command"),
]


def audit_bad_options():
    for args, needle in BAD_OPTIONS:
        one_line_error(run([AUDIT] + args), needle, "audit %s" % args)
    # A bad option's bytes are shown escaped, never raw.
    r = run([AUDIT, "run", b"--\x1b[2J", "--", "true"])
    check(r.returncode == 2, "audit run with an escape in an option: exit 2")
    no_terminal_bytes(r.stderr, "audit run with an escape in an option")


# ---- ringscope-audit run ----------------------------------------------------

LEAK7 = ["sh", "-c", 'exec 7<"$1"; exit 3', "sh"]


def audit_run_statuses():
    r = run([AUDIT, "run", "--", "/nonexistent/prog"])
    check(r.returncode == 127, "run of a missing command: 127, not %d" % r.returncode)
    r = run([AUDIT, "run", "--", "/etc/passwd"])
    check(r.returncode == 126, "run of a file that cannot be executed: 126, not %d"
          % r.returncode)
    r = run([AUDIT, "run", "--"] + LEAK7 + ["/etc/passwd"])
    check(r.returncode == 3, "run: the command's own status 3, not %d" % r.returncode)
    check(b"leaked: fd 7 -> /etc/passwd" in r.stderr, "run: the leak of fd 7 in the text report")
    # Both spellings of every valued option.
    for form in (["--error-exitcode=9"], ["--error-exitcode", "9"]):
        r = run([AUDIT, "run"] + form + ["--"] + LEAK7 + ["/etc/passwd"])
        check(r.returncode == 9, "run %s with a finding: 9, not %d" % (form, r.returncode))
    for opt in ("--output", "--log-file"):
        for sep in ("=", " "):
            out = os.path.join(TMP, "rep%s.txt" % opt)
            form = [opt + "=" + out] if sep == "=" else [opt, out]
            r = run([AUDIT, "run"] + form + ["--"] + LEAK7 + ["/etc/passwd"])
            text = open(out, "rb").read() if os.path.exists(out) else b""
            check(r.returncode == 3 and b"leaked: fd 7" in text and b"leaked" not in r.stderr,
                  "run %s: the report in the file, not on stderr" % form)
            os.unlink(out) if os.path.exists(out) else None
    # -q: the findings only.
    r = run([AUDIT, "run", "-q", "--"] + LEAK7 + ["/etc/passwd"])
    check(b"==ringscope-audit==" not in r.stderr and b"leaked: fd 7" in r.stderr,
          "run -q: findings without header or summary")
    r = run([AUDIT, "run", "-q", "--", "true"])
    check(r.returncode == 0 and r.stderr == b"", "run -q of a clean command prints nothing")
    # Allow-lists.
    r = run([AUDIT, "run", "--json", "--ignore-fd=7", "--"] + LEAK7 + ["/etc/passwd"])
    check(json.loads(r.stderr)["count"] == 0, "run --ignore-fd=7 drops the leak of fd 7")
    r = run([AUDIT, "run", "--json", "--ignore", "*/pass*", "--"] + LEAK7 + ["/etc/passwd"])
    check(json.loads(r.stderr)["count"] == 0, "run --ignore '*/pass*' drops the leak")


def audit_follow_forks():
    """--follow-forks, and valgrind's --trace-children with valgrind's values."""
    child = ["sh", "-c", 'sh -c "exec 8</etc/hostname; exit 0"; exit 0']
    for form, follows in ((["--follow-forks"], True), (["--trace-children"], True),
                          (["--trace-children=yes"], True), (["--trace-children", "yes"], True),
                          (["--trace-children=no"], False), (["--trace-children", "no"], False),
                          ([], False)):
        r = run([AUDIT, "run", "--json"] + form + ["--"] + child, timeout=30)
        if not check(r.returncode == 0, "run %s: exit 0, not %d (%r)"
                     % (form, r.returncode, r.stderr[-200:])):
            continue
        rep = json.loads(r.stderr)
        got = any(f["kind"] == "leaked" and f["fd"] == 8 for f in rep["findings"])
        check(got == follows, "run %s: the forked child's leak %s" %
              (form, "reported" if follows else "not reported"))


def audit_report_dir_removed():
    """A command that cleans $TMPDIR takes run's report directory with it: the
    lost report is exit 127, said in one line, never a clean 0. The second
    command first runs a program that inherits fd 7, so text output has read
    its exec report while the command ran: that way out frees what it saw too
    (an ASan build exits 1 on a leak, not 127)."""
    td = os.path.join(TMP, "clean-me")
    os.mkdir(td)
    for cmd in ('exec 7</etc/passwd; rm -rf "$TMPDIR"/*; exit 0',
                'exec 7</etc/passwd; /bin/sleep 0.4; rm -rf "$TMPDIR"/*; exit 0'):
        for extra in ([], ["--json"], ["--error-exitcode=9"]):
            r = run([AUDIT, "run"] + extra + ["--", "sh", "-c", cmd], env={"TMPDIR": td})
            check(r.returncode == 127 and b"removed" in r.stderr,
                  "run %s of a command that removed the report directory: 127, not %d (%r)"
                  % (extra, r.returncode, r.stderr[-200:]))
    check(os.listdir(td) == [], "nothing left in TMPDIR: %s" % os.listdir(td))


def audit_run_stop_keys():
    """SIGINT and SIGQUIT to run alone are ignored (the page), also in the
    instant the command starts: a preloaded fork() raises the signal in run
    as the fork returns, every time. The command gets the dispositions run
    was given: a command in a shell's background keeps SIGINT ignored."""
    shim = os.environ.get("FORK_RAISE_SHIM")
    if not shim or not os.path.exists(shim):
        skips.append("audit_run_stop_keys: no FORK_RAISE_SHIM (run by make check)")
        return
    # An ASan run sees its runtime after the shim in the list; the shim has no sanitizer.
    asan = os.environ.get("ASAN_OPTIONS", "")
    env = {"LD_PRELOAD": shim, "RSC_TEST_FORK_RAISE_IN": "ringscope-audit",
           "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}
    cmd = [AUDIT, "run", "--json", "--", "sh", "-c", "exec 7</etc/passwd; exit 3"]
    # The shim reaches that instant: a SIGTERM raised there is passed on to the command.
    # (It can be passed on only once fork has returned the child's pid: a command that
    # ended by then ends with its own status, as the page says, so this one waits.)
    slow = [AUDIT, "run", "--json", "--", "sh", "-c", "exec 7</etc/passwd; sleep 10; exit 3"]
    r = run(slow, env=dict(env, RSC_TEST_FORK_RAISE=str(int(signal.SIGTERM))), timeout=30)
    check(r.returncode == 128 + signal.SIGTERM,
          "a SIGTERM to run as its fork returns is passed on: %d, %r" % (r.returncode, r.stderr[-300:]))
    for sig in (signal.SIGINT, signal.SIGQUIT):
        r = run(cmd, env=dict(env, RSC_TEST_FORK_RAISE=str(int(sig))), timeout=30)
        check(r.returncode == 3, "a %s to run as its fork returns is ignored: exit %d, not the "
              "command's 3 (%r)" % (sig.name, r.returncode, r.stderr[-300:]))
        try:
            rep = json.loads(r.stderr)
        except ValueError:
            check(False, "%s as run forks: its report is not JSON: %r" % (sig.name, r.stderr[-300:]))
            continue
        check(any(f["kind"] == "leaked" and f["fd"] == 7 for f in rep["findings"]),
              "%s as run forks: the command's leak of fd 7 is still reported" % sig.name)

    def ignored(preexec):
        r = subprocess.run([AUDIT, "run", "-q", "--", "sh", "-c", "grep ^SigIgn: /proc/self/status"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                           preexec_fn=preexec)
        m = re.search(rb"SigIgn:\s*([0-9a-f]+)", r.stdout)
        if not check(r.returncode == 0 and m, "run of grep SigIgn: %d %r %r"
                     % (r.returncode, r.stdout, r.stderr[-200:])):
            return set()
        mask = int(m.group(1), 16)
        return {s for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE) if mask >> (s - 1) & 1}

    def ignore_keys():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    got = ignored(None)
    check(got == set(), "the command has SIGINT, SIGQUIT and SIGPIPE at their defaults: %s ignored" % got)
    got = ignored(ignore_keys)
    check(got == {signal.SIGINT, signal.SIGQUIT, signal.SIGPIPE},
          "a command run with SIGINT, SIGQUIT and SIGPIPE ignored keeps them ignored: only %s" % got)
    # A report reader gone (run ... 2>&1 | head): the report is not written,
    # 127 as the page says, and the report directory is removed; no SIGPIPE death.
    td = os.path.join(TMP, "pipe-gone")
    os.mkdir(td)
    for extra in ([], ["--json"]):
        rd, wr = os.pipe()
        os.close(rd)
        r = subprocess.run([AUDIT, "run"] + extra + ["--", "sh", "-c", "exec 7</etc/passwd"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=wr,
                           env=dict(os.environ, TMPDIR=td), timeout=30)
        os.close(wr)
        check(r.returncode == 127, "run %s with its report to a pipe with no reader: %d, not 127"
              % (extra, r.returncode))
        check(os.listdir(td) == [], "run %s with no reader left %s" % (extra, os.listdir(td)))


def audit_run_fatal_signal():
    """A command killed by SIGTERM is reported (the page lists SIGTERM among
    the fatal signals): dash sets SIGTERM to SIG_DFL itself at start-up."""
    for sh in ("sh", "dash", "bash"):
        # dash catches SIGINT itself under -c, and sets SIG_DFL before it raises it again.
        for sig in ("TERM", "INT") if sh != "bash" else ("TERM",):
            if not shutil.which(sh):
                continue
            r = run([AUDIT, "run", "--json", "--", sh, "-c", 'exec 7<"$1"; kill -%s $$' % sig,
                     sh, "/etc/passwd"])
            check(r.returncode == 128 + getattr(signal, "SIG" + sig),
                  "run of %s killed by SIG%s: %d" % (sh, sig, r.returncode))
            try:
                rep = json.loads(r.stderr)
            except ValueError:
                check(False, "run --json of %s killed by SIG%s: not JSON: %r" % (sh, sig, r.stderr))
                continue
            check(rep["processes"] == 1 and
                  any(f["kind"] == "leaked" and f["fd"] == 7 for f in rep["findings"]),
                  "run of %s killed by SIG%s: its leak of fd 7 is reported (%s)" % (sh, sig, rep))
    # A program that took SIGINT over and gives it back to the default has the report again.
    r = run([AUDIT, "run", "--json", "--", sys.executable, "-c",
             "import os, signal; f = open('/etc/passwd'); "
             "signal.signal(signal.SIGINT, signal.SIG_DFL); os.kill(os.getpid(), signal.SIGINT)"])
    rep = json.loads(r.stderr)
    check(r.returncode == 128 + signal.SIGINT and
          any(f["kind"] == "leaked" and f["target"] == "/etc/passwd" for f in rep["findings"]),
          "python back to SIG_DFL for SIGINT, killed by it: its leak reported (%d, %s)"
          % (r.returncode, rep["findings"]))
    # Stopped as a service manager stops it: SIGINT to run alone is ignored,
    # SIGTERM is passed on; the shell's leak is reported, the report directory goes.
    td = os.path.join(TMP, "td")
    os.mkdir(td)
    # In a session of its own: if run dies, the shell left behind is killed
    # with its group, so a failure fails instead of waiting on its pipes.
    proc = subprocess.Popen([AUDIT, "run", "--json", "--", "sh", "-c",
                             'exec 7</etc/passwd; while :; do sleep 0.05; done'],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, TMPDIR=td),
                            start_new_session=True)
    check(child_with_fd(proc.pid, 7) is not None, "the shell under run opened fd 7")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    if not check(proc.poll() is None, "run ends on a SIGINT of its own (the page: ignored)"):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    check(proc.returncode == 128 + signal.SIGTERM, "run stopped by SIGTERM: %d" % proc.returncode)
    rep = json.loads(err)
    check(any(f["kind"] == "leaked" and f["fd"] == 7 for f in rep["findings"]),
          "run stopped by SIGTERM: the shell's leak of fd 7 is reported")
    check(os.listdir(td) == [], "run stopped by SIGTERM left %s in TMPDIR" % os.listdir(td))
    # A program that handles SIGTERM itself keeps it.
    r = run([AUDIT, "run", "--", "sh", "-c", 'trap "exit 5" TERM; kill -TERM $$'])
    check(r.returncode == 5, "a program's own SIGTERM trap still runs: %d" % r.returncode)
    # SIG_DFL given with SA_SIGINFO (a null sa_sigaction) is the default too.
    prog = ("import ctypes, os, signal\n"
            "class SA(ctypes.Structure):\n"
            "    _fields_ = [('handler', ctypes.c_void_p), ('mask', ctypes.c_ulong * 16),\n"
            "                ('flags', ctypes.c_int), ('restorer', ctypes.c_void_p)]\n"
            "signal.signal(signal.SIGTERM, lambda *a: None)\n"
            "sa = SA(); sa.flags = 4\n"
            "assert ctypes.CDLL(None).sigaction(15, ctypes.byref(sa), None) == 0\n"
            "f = open('/etc/passwd')\nos.kill(os.getpid(), signal.SIGTERM)\n")
    if os.uname().machine == "x86_64":  # the struct sigaction laid out above
        r = run([AUDIT, "run", "--json", "--", sys.executable, "-c", prog])
        rep = json.loads(r.stderr)
        check(r.returncode == 143 and any(f["target"] == "/etc/passwd" for f in rep["findings"]),
              "SIG_DFL with SA_SIGINFO, then SIGTERM: the leak reported (%d %s)"
              % (r.returncode, rep["findings"]))
    # A query of the disposition reads the default, as the program left it.
    r = run([AUDIT, "run", "-q", "--", sys.executable, "-c",
             "import signal; print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)"])
    check(r.stdout.strip() == b"True", "under run, SIGTERM reads as SIG_DFL: %r" % r.stdout)


def audit_run_hostile_names():
    r = run([AUDIT, "run", "--"] + LEAK7 + [WEIRD])
    no_terminal_bytes(r.stderr, "run text report of a hostile file name")
    check(b"\\x1b[31mred\\x0anl\\x07\\x7f\\xc2\\x9bx\\xff" in r.stderr,
          "run text report shows the name's bytes as \\xNN: %r" % r.stderr)
    r = run([AUDIT, "run", "--json", "--"] + LEAK7 + [WEIRD])
    no_terminal_bytes(r.stderr, "run --json report of a hostile file name")
    rep = json.loads(r.stderr.decode("utf-8"))
    leak = [f for f in rep["findings"] if f["fd"] == 7]
    check(leak and os.fsencode(leak[0]["target"]) == WEIRD,
          "run --json: the target reads back as the exact bytes (surrogateescape)")
    check(os.fsencode(rep["command"][-1]) == WEIRD, "run --json: the command's argument exact")
    # The name's C1 control (valid UTF-8) is that character, not two stray bytes.
    check(b"\\u009b" in r.stderr and b"\\udcc2" not in r.stderr,
          "run --json: a C1 control is written \\u009b: %r" % r.stderr[:400])


def audit_emfile_dump():
    """An open that fails with EMFILE dumps the descriptors by creation site,
    and the program keeps running (it closes them all and exits 0)."""
    prog = ("import os\nfs = []\ntry:\n    while True:\n"
            "        fs.append(os.open('/etc/passwd', os.O_RDONLY))\n"
            "except OSError as e:\n    print('emfile', e.errno, len(fs), flush=True)\n"
            "for f in fs:\n    os.close(f)\n")
    r = run([AUDIT, "run", "--json", "--", "sh", "-c", 'ulimit -n 32 && exec "$0" -c "$1"',
             sys.executable, prog])
    check(r.returncode == 0 and r.stdout.startswith(b"emfile 24 "),
          "a program that opens until EMFILE under run: %d %r" % (r.returncode, r.stdout))
    rep = json.loads(r.stderr)
    check(rep["count"] == 0, "closing all it opened, it leaks nothing: %s" % rep["findings"])
    dumps = rep.get("dumps", [])
    check(len(dumps) == 1, "one dump for one EMFILE, not %d" % len(dumps))
    if dumps:
        n = int(r.stdout.split()[2])
        text = json.dumps(dumps[0])
        check("EMFILE" in text and "/etc/passwd" in text,
              "the EMFILE dump says why and names the file: %.300s" % text)
        held = [d for d in dumps[0].get("fds", []) if d.get("target") == "/etc/passwd"]
        check(len(held) == n and all(d.get("created_by") == "open" for d in held),
              "the dump lists the %d descriptors open() made, not %d" % (n, len(held)))
        check(dumps[0].get("count") == len(dumps[0].get("fds", [])),
              "the dump's count is its list's length: %s" % dumps[0].get("count"))


def audit_many_bad_closes():
    """More EBADF closes than a report keeps: the text never claims a close(-1)."""
    prog = ("import os\nfor fd in range(3, 400):\n    try:\n        os.close(fd)\n"
            "    except OSError:\n        pass\n")
    r = run([AUDIT, "run", "--json", "--", sys.executable, "-c", prog])
    rep = json.loads(r.stderr)
    marks = [f for f in rep["findings"] if f["fd"] < 0]
    check(len(marks) == 1 and marks[0].get("dropped", 0) > 0 and
          len(rep["findings"]) - 1 + marks[0]["dropped"] >= 390,
          "--json: one marker with the count of EBADF closes not listed (%s)" % marks)
    r = run([AUDIT, "run", "--", sys.executable, "-c", prog])
    check(b"close(-1)" not in r.stderr, "the text report claims a close(-1) the program never made")
    check(re.search(rb"bad closes: \d+ more closes failed with EBADF", r.stderr) is not None,
          "the text report says how many EBADF closes it did not list")


def audit_suppressions():
    r = run([AUDIT, "run", "--gen-suppressions=all", "--"] + LEAK7 + ["/etc/passwd"])
    m = re.search(rb"\{\n.*?\n\}", r.stderr, re.S)
    if not check(m is not None, "--gen-suppressions=all prints a block: %r" % r.stderr):
        return
    supp = os.path.join(TMP, "gen.supp")
    with open(supp, "wb") as f:
        f.write(b"# generated\n\n" + m.group(0) + b"\n")
    for form in (["--suppressions=" + supp], ["--suppressions", supp]):
        r = run([AUDIT, "run", "--json", "--error-exitcode=9"] + form + ["--"] + LEAK7 +
                ["/etc/passwd"])
        rep = json.loads(r.stderr)
        check(r.returncode == 3 and rep["count"] == 0 and rep["suppressed"] == 1,
              "%s silences the finding it was made for (%d, %s)" % (form, r.returncode, rep))
    r = run([AUDIT, "run", "--json", "--gen-suppressions=yes", "--"] + LEAK7 + ["/etc/passwd"])
    rep = json.loads(r.stderr)
    check(all("suppression" in f for f in rep["findings"]),
          "--gen-suppressions with --json: a suppression member in each finding")
    bad = os.path.join(TMP, "bad.supp")
    with open(bad, "w") as f:
        f.write("{\n  a name\n  not-a-kind-line\n}\n")
    r = run([AUDIT, "run", "--suppressions", bad, "--", "true"])
    one_line_error(r, "bad.supp:3", "a malformed suppression file")


# A program that makes an io_uring ring by a raw syscall, registers the
# hostile file in its direct table, closes its own descriptor and leaves the
# ring open (425, 427: io_uring_setup, io_uring_register on every arch).
RING_PROG = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
params = (ctypes.c_char * 120)()
ring = libc.syscall(425, 4, params)
if ring < 0:
    print("SKIP io_uring_setup: errno %d" % ctypes.get_errno(), flush=True)
    sys.exit(0)
f = os.open(os.fsencode(sys.argv[1]), os.O_RDONLY)
fds = (ctypes.c_int * 2)(f, -1)
if libc.syscall(427, ring, 2, fds, 2) < 0:
    print("SKIP IORING_REGISTER_FILES: errno %d" % ctypes.get_errno(), flush=True)
    sys.exit(0)
os.close(f)
print("ring %d" % ring, flush=True)
time.sleep(float(sys.argv[2]))
"""


def audit_io_uring_ring():
    """What valgrind --track-fds cannot see: a ring made by a raw syscall and
    the file left registered in it, in run's report and in snapshot."""
    r = run([AUDIT, "run", "--json", "--", sys.executable, "-c", RING_PROG, WEIRD, "0"])
    if r.stdout.startswith(b"SKIP"):
        skips.append("io_uring ring: " + r.stdout.decode().strip())
        return
    ring = int(r.stdout.split()[1])
    rep = json.loads(r.stderr.decode("utf-8"))
    kinds = {f["kind"]: f for f in rep["findings"] if f["fd"] == ring}
    leak = kinds.get("leaked")
    check(leak is not None and leak["target"] == "anon_inode:[io_uring]" and
          leak["fdkind"] == "io_uring" and leak["created_by"] == "io_uring_setup",
          "run: the ring left open is leaked, created by io_uring_setup (%s)" % rep["findings"])
    direct = kinds.get("direct-registered")
    check(direct is not None and [s["slot"] for s in direct.get("slots", [])] == [0] and
          os.fsencode(direct["slots"][0]["target"]) == WEIRD,
          "run: slot 0 still registered, named exactly (%s)" % direct)
    r = run([AUDIT, "run", "--", sys.executable, "-c", RING_PROG, WEIRD, "0"])
    no_terminal_bytes(r.stderr, "run text report of a registered hostile name")
    check(b"slot 0 -> " in r.stderr, "run text report names slot 0")
    p = subprocess.Popen([sys.executable, "-c", RING_PROG, WEIRD, "20"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        ring = int(p.stdout.readline().split()[1])
        r = run([AUDIT, "snapshot", "--json", str(p.pid)])
        snap = json.loads(r.stdout.decode("utf-8"))
        fd = [d for d in snap["fds"] if d["fd"] == ring]
        check(fd and fd[0]["kind"] == "io_uring" and fd[0]["cloexec"] is True and
              [os.fsencode(d["target"]) for d in fd[0].get("direct", [])] == [WEIRD],
              "snapshot --json: the ring, close-on-exec, its one registered file exact (%s)" % fd)
        r = run([AUDIT, "snapshot", str(p.pid)])
        no_terminal_bytes(r.stdout, "snapshot table of a registered hostile name")
        check(b"1 direct descriptor registered" in r.stdout, "snapshot: the registered file counted")
    finally:
        p.kill()
        p.wait()


# ---- snapshot, diff, watch, dump --------------------------------------------

def wait_fd(pid, fd, timeout=10):
    """Until process @pid has descriptor @fd open (or @timeout s)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists("/proc/%d/fd/%d" % (pid, fd)):
            return True
        time.sleep(0.02)
    return False


def child_with_fd(pid, fd, timeout=10):
    """A child of @pid that has descriptor @fd open, once there is one (run
    may fork a short-lived helper before the command)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            kids = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
        except OSError:
            kids = []
        for kid in kids:
            if os.path.exists("/proc/%s/fd/%d" % (kid, fd)):
                return int(kid)
        time.sleep(0.02)
    return None


def holder(extra=""):
    """A shell holding fd 7 on the hostile name, sleeping."""
    p = subprocess.Popen(["sh", "-c", 'exec 7<"$1"; %s exec sleep 30' % extra, "sh", WEIRD],
                         stdin=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if os.readlink("/proc/%d/fd/7" % p.pid).encode("utf-8", "surrogateescape") == WEIRD \
               and os.readlink("/proc/%d/exe" % p.pid).endswith("sleep"):
                break
        except OSError:
            pass
        time.sleep(0.02)
    return p


def audit_snapshot_diff():
    r = run([AUDIT, "snapshot", "--json"])
    snap = json.loads(r.stdout)
    check(r.returncode == 0 and snap["pid"] == os.getpid() and snap["count"] == len(snap["fds"]),
          "snapshot without a PID lists its parent's descriptors (%d, %s)" % (r.returncode,
                                                                            snap["pid"]))
    p = holder()
    try:
        r = run([AUDIT, "snapshot", str(p.pid)])
        check(r.returncode == 0, "snapshot PID: exit 0")
        no_terminal_bytes(r.stdout, "snapshot table of a hostile name")
        r = run([AUDIT, "snapshot", "--json", str(p.pid)])
        a = os.path.join(TMP, "a.json")
        with open(a, "wb") as f:
            f.write(r.stdout)
        snap = json.loads(r.stdout.decode("utf-8"))
        fd7 = [d for d in snap["fds"] if d["fd"] == 7]
        check(fd7 and os.fsencode(fd7[0]["target"]) == WEIRD,
              "snapshot --json: fd 7's target is the exact name")
        check(fd7 and fd7[0]["kind"] == "file", "snapshot --json: fd 7 is a file")
        r = run([AUDIT, "diff", a, a])
        check(r.returncode == 0, "diff of a snapshot with itself: 0, not %d" % r.returncode)
        # B: fd 7 replaced by another file (same number, other identity), fd 8 new.
        q = subprocess.Popen(["sh", "-c", 'exec 7</etc/hostname 8</etc/passwd; exec sleep 30'],
                             stdin=subprocess.DEVNULL)
        wait_fd(q.pid, 8)
        r = run([AUDIT, "snapshot", "--json", str(q.pid)])
        q.kill()
        q.wait()
        b = os.path.join(TMP, "b.json")
        with open(b, "wb") as f:
            f.write(r.stdout)
        r = run([AUDIT, "diff", a, b])
        check(r.returncode == 1, "diff of two different snapshots: 1, not %d" % r.returncode)
        no_terminal_bytes(r.stdout, "diff text of a hostile name")
        r = run([AUDIT, "diff", "--json", a, b])
        d = json.loads(r.stdout)
        kinds = {(c["change"], c["fd"]) for c in d["changes"]}
        check(("appeared", 8) in kinds, "diff --json: fd 8 appeared (%s)" % kinds)
        check(any(c["fd"] == 7 and c["change"] not in ("appeared", "disappeared")
                  for c in d["changes"]), "diff --json: fd 7 changed identity (%s)" % kinds)
    finally:
        p.kill()
        p.wait()
    r = run([AUDIT, "snapshot", str(p.pid)])
    check(r.returncode == 1 and b"no such process" in r.stderr,
          "snapshot of a reaped PID: exit 1, 'no such process'")
    bad = os.path.join(TMP, "bad.json")
    for text in (b'{"pid":1,"fds":[{"fd":01}]}', b'{"pid":1,"fds":[', b"\x1b[2J",
                 b'{"pid":1,"fds":[{"fd":-1}]}', b'{"pid":1,"fds":[{"fd":1.5}]}'):
        with open(bad, "wb") as f:
            f.write(text)
        r = run([AUDIT, "diff", bad, bad])
        check(r.returncode == 2 and r.stderr.count(b"\n") == 1,
              "diff of malformed JSON %r: one line, exit 2 (%d %r)" % (text, r.returncode, r.stderr))
        no_terminal_bytes(r.stderr, "diff error about %r" % text)
    # Each field in the range the page gives, and the message gives it too.
    for snap, ok, needle in (('{"pid":4194304,"fds":[]}', True, ""),
                             ('{"pid":-1,"fds":[]}', False, '"pid"'),
                             ('{"pid":4194305,"fds":[]}', False, '"pid"'),
                             ('{"pid":1,"fds":[{"fd":2147483648}]}', False, "2147483647"),
                             ('{"pid":1,"fds":[{"fd":3,"pos":-1}]}', True, ""),
                             ('{"pid":1,"fds":[{"fd":3,"pos":-2}]}', False, "9223372036854775807"),
                             ('{"pid":1,"fds":[{"fd":3,"ino":18446744073709551615}]}', True, ""),
                             ('{"pid":1,"fds":[{"fd":3,"ino":18446744073709551616}]}', False,
                              "18446744073709551615"),
                             ('{"pid":1,"fds":[{"fd":3,"dev":18446744073709551616}]}', False,
                              "18446744073709551615")):
        with open(bad, "w") as f:
            f.write(snap)
        r = run([AUDIT, "diff", bad, bad])
        if ok:
            check(r.returncode == 0, "diff of %s: in range, 0, not %d (%r)" % (snap, r.returncode,
                                                                                r.stderr))
        else:
            check(r.returncode == 2 and needle.encode() in r.stderr,
                  "diff of %s: out of range, exit 2 naming %s (%d %r)" % (snap, needle,
                                                                           r.returncode, r.stderr))


KINDS_PROG = r"""
import ctypes, os, select, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fds, keep = {}, []
fds['memfd'] = os.memfd_create("m\x1b[2Jname")
fds['eventfd'] = os.eventfd(0)
fds['epoll'] = (keep.append(select.epoll()) or keep[-1].fileno())
fds['inotify'] = libc.inotify_init1(0)
fds['timerfd'] = libc.timerfd_create(1, 0)
fds['signalfd'] = libc.signalfd(-1, (ctypes.c_ulong * 16)(1 << 9), 0)
a, b = socket.socketpair(); keep += [a, b]; fds['socket'] = a.fileno()
r, w = os.pipe(); fds['pipe'] = r
fds['dir'] = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
os.mkfifo(sys.argv[1])
fds['fifo'] = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
fds['device'] = os.open("/dev/null", os.O_RDONLY)
try:
    fds['pidfd'] = os.pidfd_open(os.getpid())
except (AttributeError, OSError):
    pass
print(" ".join("%s=%d" % kv for kv in fds.items() if kv[1] >= 0), flush=True)
time.sleep(20)
"""


def audit_snapshot_kinds():
    """snapshot names each kind the page lists (a named FIFO is a pipe), and
    a memfd's name is escaped in the table, exact in --json."""
    p = subprocess.Popen([sys.executable, "-c", KINDS_PROG, os.path.join(TMP, "fifo")],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        want = dict(kv.split("=") for kv in p.stdout.readline().decode().split())
        snap = json.loads(run([AUDIT, "snapshot", "--json", str(p.pid)]).stdout)
        got = {str(d["fd"]): d for d in snap["fds"]}
        for kind, fd in want.items():
            check(fd in got and got[fd]["kind"] == ("pipe" if kind == "fifo" else kind),
                  "snapshot: fd %s is a %s, not %s" % (fd, kind, got.get(fd, {}).get("kind")))
        memfd = got.get(want["memfd"], {})
        check("m\x1b[2Jname" in memfd.get("target", ""), "snapshot --json: the memfd's name exact")
        table = run([AUDIT, "snapshot", str(p.pid)]).stdout
        no_terminal_bytes(table, "snapshot table of a memfd named with ESC")
        check(b"m\\x1b[2Jname" in table, "snapshot table: the memfd's name escaped")
    finally:
        p.kill()
        p.wait()


def audit_zombie():
    """A zombie holds no descriptors: snapshot 1, watch 2, dump 2, each saying so."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        deadline = time.time() + 10
        while time.time() < deadline and \
                open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.02)
        for args, status in ((["snapshot"], 1), (["snapshot", "--json"], 1),
                             (["watch", "--for=1"], 2), (["dump", "--timeout=1"], 2)):
            r = run([AUDIT] + args + [str(pid)])
            check(r.returncode == status and r.stderr.count(b"\n") == 1 and r.stdout == b"",
                  "%s of a zombie: exit %d, one line (%d %r)" % (args, status, r.returncode,
                                                                r.stderr))
        check(b"zombie" in run([AUDIT, "snapshot", str(pid)]).stderr,
              "snapshot of a zombie says it has exited")
    finally:
        os.waitpid(pid, 0)


def audit_watch_dump():
    p = holder()
    svg = os.path.join(TMP, "w.svg")
    try:
        r = run([AUDIT, "watch", "--interval=0.2", "--for", "1", "--plot=" + svg, str(p.pid)])
        check(r.returncode == 0, "watch of a steady process: 0, not %d" % r.returncode)
        try:
            root = ET.parse(svg).getroot()
            check(root.tag.endswith("svg"), "watch --plot writes an SVG document")
        except (ET.ParseError, OSError) as e:
            check(False, "watch --plot: not XML: %s" % e)
        r = run([AUDIT, "watch", "--json", "--interval", "0.2", "--for=0.6", str(p.pid)])
        check(r.returncode == 0, "watch --json: 0")
        json.loads(r.stdout)
    finally:
        p.kill()
        p.wait()
    r = run([AUDIT, "watch", "--for=1", str(p.pid)])
    check(r.returncode == 2, "watch of a reaped PID: 2, not %d" % r.returncode)
    # dump of a process running under run: its own dump, while it keeps running.
    pidfile = os.path.join(TMP, "pid")
    proc = subprocess.Popen([AUDIT, "run", "-q", "--", "sh", "-c",
                             'exec 7<"$1"; echo $$ > "$2"; while :; do sleep 0.05; done',
                             "sh", WEIRD, pidfile],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 10
        while not (os.path.exists(pidfile) and os.path.getsize(pidfile)) and \
                time.time() < deadline:
            time.sleep(0.02)
        pid = int(open(pidfile).read())
        r = run([AUDIT, "dump", "--timeout=5", str(pid)])
        check(r.returncode == 0, "dump of an audited process: 0, not %d (%r)"
              % (r.returncode, r.stderr))
        no_terminal_bytes(r.stdout, "dump text of a hostile name")
        r = run([AUDIT, "dump", "--json", "--timeout", "5", str(pid)])
        check(r.returncode == 0, "dump --json: 0")
        d = json.loads(r.stdout.decode("utf-8"))
        fd7 = [f for f in d.get("fds", []) if f.get("fd") == 7]
        check(fd7 and os.fsencode(fd7[0]["target"]) == WEIRD,
              "dump --json names the held file exactly: %s" % fd7)
        check(os.path.exists("/proc/%d" % pid), "the dumped process keeps running")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the shell too, or its pipes keep us waiting
            proc.communicate()
    r = run([AUDIT, "dump", str(os.getpid())])
    check(r.returncode == 2 and b"not running under" in r.stderr,
          "dump of a process not under run: 2")


# ---- ringscope-demo ----------------------------------------------------------

def demo_options():
    for a in (["--help"], ["-h"]):
        r = run([DEMO] + a)
        check(r.returncode == 0 and b"usage:" in r.stdout and r.stderr == b"",
              "demo %s: 0, usage on stdout" % a)
    r = run([DEMO, "--version"])
    check(r.returncode == 0 and re.match(rb"ringscope-demo \d+\.\d+", r.stdout) and
          r.stderr == b"", "demo --version: 0, its version (%d %r)" % (r.returncode, r.stdout))
    for args, needle in ((["--bogus"], "--bogus"), (["--trace"], "--trace"),
                         (["--trace="], "--trace"), (["--json=1"], "--json"),
                         (["extra"], "extra"), ([b"--\x1b[2J"], "unknown")):
        r = run([DEMO] + args)
        check(r.returncode == 2 and needle in r.stderr.decode("utf-8", "replace").split("\n")[0],
              "demo %s: 2, first line names it (%d %r)" % (args, r.returncode, r.stderr[:200]))
        no_terminal_bytes(r.stderr, "demo %s" % args)
    r = run([DEMO], env={"RINGSCOPE_AUDIT": "bogus"})
    check(r.returncode == 1, "demo with a bad RINGSCOPE_AUDIT: 1")
    # The members the page lists, and a finding's, under an injected EBADF close.
    r = run([DEMO, "--json"], env={"RINGSCOPE_FAULT": "close:1:EBADF"})
    if r.returncode == 1 and not r.stdout:
        skips.append("demo under close:1:EBADF: %s" % r.stderr.decode(errors="replace").strip())
        return
    d = json.loads(r.stdout)
    members = {"tmpdir", "ipv6", "fd_before", "fd_during", "broken_unwound_by_itself", "status",
               "error_chain", "scopes", "scope_close_order", "lifo_ok", "audit_level",
               "audit_findings", "counters", "fd_after", "loop_close", "ok"}
    check(set(d) == members, "demo --json members: %s" % sorted(set(d) ^ members))
    check(r.returncode == 1 and d["ok"] is False and d["status"] == -9,
          "demo under an injected EBADF close: exit 1, ok false, status -EBADF")
    f = d["audit_findings"][:1]
    check(f and set(f[0]) == {"kind", "fd", "target", "scope", "expected"} and
          f[0]["kind"] == "not_released", "demo --json audit finding: %s" % f)
    check(all(set(e) == {"errno", "name", "op", "entry", "detail", "scope"}
              for e in d["error_chain"]), "demo --json error_chain members")


def demo_trace_and_json():
    tmpdir = os.path.join(os.fsencode(TMP), b"T\x1b]0;x\x07\x9b\xff")
    os.mkdir(tmpdir)
    trace = os.path.join(TMP, "demo.json")
    r = run([DEMO, "--json", "--trace", trace], env={"TMPDIR": tmpdir})
    if r.returncode == 1 and b"cannot create" in r.stderr:
        skips.append("demo: " + r.stderr.decode(errors="replace").strip())
        return
    check(r.returncode == 0, "demo --json --trace under a hostile TMPDIR: 0, not %d (%r)"
          % (r.returncode, r.stderr[-300:]))
    no_terminal_bytes(r.stdout, "demo --json under a hostile TMPDIR")
    d = json.loads(r.stdout.decode("utf-8"))
    check(os.fsencode(d["tmpdir"]).startswith(tmpdir + b"/ringscope-demo."),
          "demo --json: tmpdir reads back as bytes")
    check(d["ok"] is True and d["status"] == -2 and d["lifo_ok"] is True,
          "demo --json: ok, status -ENOENT, LIFO")
    raw = open(trace, "rb").read()
    raw.decode("utf-8")  # strict: valid UTF-8 for strict parsers
    no_terminal_bytes(raw, "demo trace under a hostile TMPDIR")
    check_chrome_trace(json.loads(raw), "demo trace")
    r = run([DEMO], env={"TMPDIR": tmpdir})
    no_terminal_bytes(r.stdout, "demo text report under a hostile TMPDIR")


def check_chrome_trace(doc, what):
    ev = doc.get("traceEvents")
    if not check(isinstance(ev, list) and ev, "%s: a traceEvents list" % what):
        return
    last = {}
    open_ = {}
    slices = {}
    for i, e in enumerate(ev):
        for k in ("ph", "pid", "tid", "ts"):
            if k not in e and e.get("ph") != "M":
                check(False, "%s: event %d lacks %s: %s" % (what, i, k, e))
                return
        if e["ph"] == "M":
            continue
        track = (e["pid"], e["tid"])
        check(isinstance(e["ts"], (int, float)) and e["ts"] >= last.get(track, 0),
              "%s: ts goes back on track %s at event %d" % (what, track, i))
        last[track] = e["ts"]
        if e["ph"] in ("b", "e", "n"):
            key = (e.get("cat"), e["id"])
            if e["ph"] == "b":
                check(key not in open_, "%s: a second b for %s" % (what, key))
                open_[key] = e
            elif e["ph"] == "e":
                if check(key in open_, "%s: an e without its b: %s" % (what, key)):
                    slices[key] = (open_.pop(key), e)
            else:
                check(key in open_ and open_[key]["name"] == e["name"],
                      "%s: an instant outside its slice, or named otherwise: %s" % (what, e))
        elif e["ph"] == "C":
            check(e.get("name") == "loop %d" % e["tid"],
                  "%s: a counter not named after its loop: %s" % (what, e))
            check(all(isinstance(v, (int, float)) for v in e.get("args", {}).values()),
                  "%s: a counter with a non-number: %s" % (what, e))
    check(not open_, "%s: slices never ended: %s" % (what, list(open_)[:5]))
    # Each scope's slice lies inside its parent's; each entry's inside its scope's.
    scopes = {k[1]: v for k, v in slices.items() if k[0] == "scope"}
    for sid, (b, e) in scopes.items():
        parent = b.get("args", {}).get("parent_id")
        if parent in scopes:
            pb, pe = scopes[parent]
            check(pb["ts"] <= b["ts"] and e["ts"] <= pe["ts"],
                  "%s: scope %s outside its parent %s" % (what, sid, parent))
    for k, (b, e) in slices.items():
        if k[0] == "entry" and b.get("args", {}).get("scope_id") in scopes:
            sb, se = scopes[b["args"]["scope_id"]]
            check(sb["ts"] <= b["ts"] and e["ts"] <= se["ts"],
                  "%s: entry %s outside its scope" % (what, k))
    failed = [e for e in ev if e.get("ph") == "n" and e.get("args", {}).get("event") == "failed"]
    check(any(f["args"].get("errno") in ("ENOENT", 2) for f in failed),
          "%s: the failed openat is an instant 'failed' with errno ENOENT" % what)


# ---- ringscope-httpd --metrics, read by the Prometheus client's parser --------

def httpd_metrics():
    if not os.access(HTTPD, os.X_OK):
        skips.append("httpd metrics: no ringscope-httpd")
        return
    path = os.path.join(TMP, "h.sock")
    p = subprocess.Popen([HTTPD, "--unix", path, "--metrics"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline and p.poll() is None:
            time.sleep(0.02)
        if p.poll() is not None:
            skips.append("httpd metrics: the server did not start: %r" % p.stderr.read())
            return
        body = None
        for _ in range(2):  # the second answer counts the first request
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(path)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            s.close()
            head, _, body = data.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200"), "GET /metrics: 200 (%r)" % head[:80])
        check(b"text/plain; version=0.0.4" in head, "GET /metrics: the exposition's type")
        check_metrics_text(body.decode("utf-8"), "httpd /metrics")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def httpd_killed_leaves_a_valid_trace():
    """RINGSCOPE_TRACE (%p) on a server killed mid-run: the file is complete JSON."""
    if not os.access(HTTPD, os.X_OK):
        skips.append("killed trace: no ringscope-httpd")
        return
    path = os.path.join(TMP, "k.sock")
    p = subprocess.Popen([HTTPD, "--unix", path], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=dict(os.environ, RINGSCOPE_TRACE=os.path.join(TMP, "k-%p-%%.json")))
    try:
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline and p.poll() is None:
            time.sleep(0.02)
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            # The path exists from the bind, a moment before the listen: refused until then.
            while True:
                try:
                    s.connect(path)
                    break
                except ConnectionRefusedError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.01)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while s.recv(4096):
                pass
            s.close()
    finally:
        p.kill()
        p.wait()
    trace = os.path.join(TMP, "k-%d-%%.json" % p.pid)
    if check(os.path.exists(trace), "RINGSCOPE_TRACE with %%p and %%%%: no %s" % trace):
        doc = json.loads(open(trace, "rb").read().decode("utf-8"))
        check(isinstance(doc.get("traceEvents"), list),
              "the trace of a killed server is a complete document")


def check_metrics_text(text, what):
    helps = set(re.findall(r"^# HELP (\S+) ", text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    check(len(re.findall(r"^# TYPE ", text, re.M)) == len(types),
          "%s: a family typed twice" % what)
    check(helps == set(types), "%s: HELP and TYPE for the same families" % what)
    for name in ("ringscope_sqes_total", "ringscope_acquired_total",
                 "ringscope_errors_lost_total"):
        check(name in types and types[name] == "counter", "%s: counter %s" % (what, name))
    for name in ("ringscope_open_scopes", "ringscope_open_entries", "ringscope_ops_in_flight",
                 "ringscope_acquires_in_flight", "ringscope_audit_findings"):
        check(types.get(name) == "gauge", "%s: gauge %s" % (what, name))
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        skips.append("%s: python3-prometheus-client is not installed" % what)
        return
    fams = list(text_string_to_metric_families(text))
    check(fams, "%s: the Prometheus parser reads families" % what)
    for f in fams:
        for s in f.samples:
            check("loop" in s.labels, "%s: %s without its loop label" % (what, s.name))


# ---- USDT probes, as man 7 ringscope lists them -------------------------------------

PROBES = {"acquire_start": 5, "acquire_done": 4, "release_start": 4, "release_done": 4,
          "scope_open": 4, "scope_closed": 4, "audit_finding": 4, "submit": 3}


def usdt_notes():
    """readelf -n lists each probe of provider ringscope with the page's
    argument count, the loop's number (32 bits) first; entry and scope
    handles are 64-bit."""
    config = open(os.path.join(BUILD, "config.h")).read()
    if not re.search(r"#define RSC_USDT 1", config):
        skips.append("usdt: configure found no <sys/sdt.h> (systemtap-sdt-dev)")
        return
    if not shutil.which("readelf"):
        skips.append("usdt: no readelf")
        return
    lib = os.path.join(BUILD, "src/.libs/libringscope.so")
    notes = run(["readelf", "-n", lib]).stdout.decode()
    found = {}
    for m in re.finditer(r"Provider: (\S+)\s+Name: (\S+)\s+Location:[^\n]*\n\s+Arguments: ([^\n]*)",
                         notes):
        provider, name, args = m.group(1), m.group(2), m.group(3).split()
        check(provider == "ringscope", "usdt: a probe of provider %s" % provider)
        found.setdefault(name, []).append(args)
    check(set(found) == set(PROBES), "usdt: probes %s, the page lists %s"
          % (sorted(found), sorted(PROBES)))
    for name, sites in found.items():
        for args in sites:
            check(len(args) == PROBES.get(name), "usdt: %s has %d arguments, the page says %s"
                  % (name, len(args), PROBES.get(name)))
            check(args[0].startswith(("4@", "-4@")), "usdt: %s's first argument (the loop) is %s"
                  % (name, args[0]))
            if name in ("acquire_start", "acquire_done", "release_start", "release_done",
                        "scope_open", "scope_closed"):
                check(args[1].startswith("8@"), "usdt: %s's handle is %s, not 64-bit"
                      % (name, args[1]))


# ---- the pages ----------------------------------------------------------------

def glued_words(line):
    """The words an alternating-font request (.BR and its kin) runs together:
    troff joins its arguments without spaces."""
    m = re.match(r"\.(BR|RB|IR|RI|BI|IB)\s+(.*)", line)
    if not m:
        return []
    args = [a[1:-1] if a.startswith('"') else a for a in re.findall(r'"[^"]*"|\S+', m.group(2))]
    text = re.sub(r"\\f.|\\\(..|\\.", "", "".join(args))
    return re.findall(r"(?<![A-Za-z0-9_])[a-z]{25,}", text)


def pages_render_apart():
    """A sentence given to .BR as several words reads as one word
    (rsc_audit_describe_fd(3) did: 'recordingitcostsonepointerperentry')."""
    check(glued_words('.BR "an unknown site" ): recording it costs one pointer per entry'),
          "pages: the check sees a sentence given as words")
    mandir = os.path.join(SRC, "man")
    for name in sorted(os.listdir(mandir)):
        if not re.search(r"\.[137]$", name):
            continue
        with open(os.path.join(mandir, name), encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                glued = glued_words(line)
                check(not glued, "page %s:%d: words run together: %s" % (name, n, glued))


def main():
    if not os.access(AUDIT, os.X_OK):
        print("SKIP: no ringscope-audit in this build")
        return 77
    steps = [audit_help_version, audit_bad_options, audit_run_statuses,
             audit_follow_forks, audit_report_dir_removed, audit_run_fatal_signal, audit_run_stop_keys, audit_run_hostile_names, audit_emfile_dump, audit_many_bad_closes,
             audit_suppressions,
             audit_io_uring_ring, audit_snapshot_diff, audit_snapshot_kinds, audit_zombie, audit_watch_dump, demo_options, demo_trace_and_json,
             httpd_metrics, httpd_killed_leaves_a_valid_trace, usdt_notes, pages_render_apart]
    try:
        for step in steps:
            t = time.time()
            try:
                step()
            except Exception as e:  # a crash of one step is its failure, the others run
                check(False, "%s raised %r" % (step.__name__, e))
            print("%-26s %5.2f s" % (step.__name__, time.time() - t))
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    for s in skips:
        print("SKIP", s)
    print("%d failures" % len(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
