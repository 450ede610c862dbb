# SPDX-License-Identifier: MIT
"""ringscope-demo(1) from its page: exit statuses (0, 1, 2), the JSON members
it lists, and a $TMPDIR holding ESC, a newline, a C1 control and invalid
UTF-8: escaped in the text report, exact (\\udcXX for a stray byte) and
strict UTF-8 in the JSON. Exit 77 (SKIP) where the demo cannot make a loop."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

DEMO = os.environ.get("RINGSCOPE_DEMO", "tools/ringscope-demo")
MEMBERS = ("tmpdir ipv6 fd_before fd_during broken_unwound_by_itself status error_chain scopes "
           "scope_close_order lifo_ok audit_level audit_findings counters fd_after loop_close ok")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
    return cond


def run(args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([DEMO] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                          timeout=60)


def no_raw(text, what):
    raw = [b for b in text if (b < 0x20 and b not in (9, 10)) or b == 0x7f]
    try:
        text.decode("utf-8")
        c1 = any(0x80 <= ord(ch) <= 0x9f for ch in text.decode("utf-8"))
    except UnicodeDecodeError:
        c1 = True
    check(not raw and not c1, "%s: raw control or invalid UTF-8: %r" % (what, text[:300]))


def main():
    r = run(["--json"])
    if r.returncode == 1 and b"cannot create a ringscope loop" in r.stderr:
        print("SKIP demo_hostile: %s" % r.stderr.decode(errors="replace").strip())
        return 77
    check(r.returncode == 0, "--json: exit %d %r" % (r.returncode, r.stderr))
    d = json.loads(r.stdout.decode("utf-8"))
    check(all(m in d for m in MEMBERS.split()), "members: %s" % sorted(d))
    check(d["ok"] is True and d["status"] == -2 and d["lifo_ok"] is True, "facts: %r" % d)
    # Usage errors: exit 2, one line naming the option, escaped, then the usage.
    for args in ([b"--bogus\x1b[2J"], [b"stray\x1b\n"], [b"--trace"], [b"--trace", b""],
                 [b"--json=1"], [b"-\x07"]):
        r = run(args)
        check(r.returncode == 2, "%r: exit %d" % (args, r.returncode))
        check(r.stderr.startswith(b"ringscope-demo: ") and b"usage:" in r.stderr,
              "%r: %r" % (args, r.stderr))
        no_raw(r.stderr, repr(args))
    # An unknown letter inside a cluster is named itself, not the element
    # before it or the program (bug 113).
    for args, name in (([b"-xh"], b"'-x'"), ([b"--json", b"-xy"], b"'-x'"), ([b"-\x1bh"], b"'-\\x1b'")):
        r = run(args)
        check(r.returncode == 2 and r.stderr.startswith(b"ringscope-demo: unknown option " + name),
              "%r: exit %d %r" % (args, r.returncode, r.stderr))
    r = run(["--help"])
    check(r.returncode == 0 and r.stdout.startswith(b"usage:"), "--help: %d" % r.returncode)
    # A second error in the chain is no pass (bug 112): the close of demo must
    # have returned the missing path, and nothing else.
    r = run(["--json"], {"RINGSCOPE_FAULT": "openat:204:EIO"})
    if r.returncode == 1 and b"fault injection" in r.stderr:
        print("SKIP: demo with an injected EIO: built without fault injection")
    else:
        check(r.returncode == 1, "an injected EIO beside the ENOENT: exit %d %r" % (r.returncode, r.stderr))
        d = json.loads(r.stdout.decode("utf-8"))
        # Which open fails first decides the chain (EIO alone, or ENOENT caused by EIO).
        check(d["ok"] is False and any(e["name"] == "EIO" for e in d["error_chain"]),
              "an injected EIO: %r" % d)
    # Interrupted, it leaves no temporary directory (bug 114).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with tempfile.TemporaryDirectory() as tmp:
            p = subprocess.Popen([DEMO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=dict(os.environ, TMPDIR=tmp))
            deadline = time.monotonic() + 10
            while not os.listdir(tmp) and time.monotonic() < deadline:
                time.sleep(0.001)
            p.send_signal(sig)
            code = p.wait(timeout=60)
            check(code == -sig or code == 0, "%s: exit %r" % (sig.name, code))
            check(os.listdir(tmp) == [], "%s left %r" % (sig.name, os.listdir(tmp)))
    # It could not run: a trace file that cannot be written, a bad RINGSCOPE_AUDIT.
    r = run([b"--trace", b"/nonexistent/\x1b[2J.json"])
    check(r.returncode == 1, "--trace to a missing directory: exit %d" % r.returncode)
    no_raw(r.stderr, "--trace to a missing directory")
    r = run(["--json"], {"RINGSCOPE_AUDIT": "bogus"})
    check(r.returncode == 1, "RINGSCOPE_AUDIT=bogus: exit %d" % r.returncode)
    # A report that cannot be written: exit 1 and said, in text and in JSON.
    for args in ([], ["--json"]):
        with open("/dev/full", "w") as full:
            r = subprocess.run([DEMO] + args, stdout=full, stderr=subprocess.PIPE, timeout=60)
        check(r.returncode == 1 and b"No space left" in r.stderr,
              "%r > /dev/full: exit %d %r" % (args, r.returncode, r.stderr))
    # A reader that goes away before the report: exit 1 and said (no death by
    # SIGPIPE), and the temporary directory is removed all the same.
    for args in ([], ["--json"]):
        with tempfile.TemporaryDirectory() as tmp:
            rd, wr = os.pipe()
            os.close(rd)
            e = dict(os.environ, TMPDIR=tmp)
            r = subprocess.run([DEMO] + args, stdout=wr, stderr=subprocess.PIPE, env=e, timeout=60)
            os.close(wr)
            check(r.returncode == 1 and b"Broken pipe" in r.stderr,
                  "%r to a pipe with no reader: exit %d %r" % (args, r.returncode, r.stderr))
            check(os.listdir(tmp) == [], "%r to a pipe with no reader left %r" % (args, os.listdir(tmp)))
    # A hostile $TMPDIR.
    with tempfile.TemporaryDirectory() as tmp:
        odd = os.path.join(tmp.encode(), b"ev\x1b[31m\nil\xff\xc2\x9bx\xe2\x82\xac")
        os.mkdir(odd)
        env = {"TMPDIR": odd}
        r = run([], env)
        check(r.returncode == 0, "text, odd TMPDIR: exit %d %r" % (r.returncode, r.stderr))
        no_raw(r.stdout + r.stderr, "text report, odd TMPDIR")
        check(r.stdout.startswith(b"ringscope demo: 200 files in ") and
              b"\\x1b[31m\\x0ail\\xff\\xc2\\x9bx\xe2\x82\xac/ringscope-demo." in r.stdout,
              "text report: %r" % r.stdout[:200])
        r = run(["--json"], env)
        check(r.returncode == 0, "--json, odd TMPDIR: exit %d" % r.returncode)
        try:
            d = json.loads(r.stdout.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            check(False, "--json, odd TMPDIR: not strict UTF-8 JSON: %s" % e)
        else:
            got = d["tmpdir"].encode("utf-8", "surrogateescape")
            check(got.startswith(odd + b"/ringscope-demo."), "tmpdir: %r" % got)
            detail = d["error_chain"][0]["detail"].encode("utf-8", "surrogateescape")
            check(detail.startswith(odd + b"/") and detail.endswith(b"/does-not-exist"),
                  "detail: %r" % detail)
        check(os.listdir(odd) == [], "the temporary directory was left: %r" % os.listdir(odd))
    print("%d failures" % len(failures))
    return 1 if failures else 0


sys.exit(main())
