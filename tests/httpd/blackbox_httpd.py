#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ringscope-httpd(1) as its page promises it, checked from outside only.

Several loops (--threads): the summary adds every loop up (the per-loop
counts sum to the requests served, accepted equals closed), each loop's
metrics parse with prometheus_client and carry their own loop label; a
SIGTERM with clients mid-request and clients idle between requests closes the
idle ones at once, answers a request completed during the grace with
Connection: close, cuts the rest when the grace ends (and counts them), and
exits 0 within grace + a bound with the descriptors back; a slowloris client
is cut at the idle deadline on every loop. All on 127.0.0.1, bounded in time.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import time

HTTPD = os.environ.get("RINGSCOPE_HTTPD", "tools/httpd/ringscope-httpd")
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL: " + what)
    return cond


def start(*args):
    p = subprocess.Popen([HTTPD, "--port", "0", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r":(\d+)$", line.strip())
    if not m:
        p.kill()
        out, err = p.communicate()
        raise SystemExit("FAIL: no 'listening on' line: %r %r" % (line, err))
    return p, int(m.group(1))


def stop(p, sig=signal.SIGTERM, timeout=10):
    p.send_signal(sig)
    out, err = p.communicate(timeout=timeout)
    return out, err


def dial(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s):
    """One response: head and body by Content-Length; b"" at EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(4096)
        if not b:
            return buf
        buf += b
    head, rest = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        b = s.recv(4096)
        if not b:
            break
        rest += b
    return head + b"\r\n\r\n" + rest


def get(port, path="/"):
    s = dial(port)
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    r = read_response(s)
    s.close()
    return r


def summary_numbers(out):
    acc = re.search(r"accepted (\d+), closed (\d+)", out)
    served = re.search(r"requests: (\d+) served", out)
    loops = re.search(r"loops: (\d+) \(requests served by each: ([\d, ]+)\)", out)
    cut = re.search(r"cut at the deadline (\d+)", out)
    idle = re.search(r"idle timeouts (\d+)", out)
    desc = re.search(r"descriptors: (\d+) at start, .* (\d+) at exit", out)
    return acc, served, loops, cut, idle, desc


def test_threads_summary_and_metrics():
    sys.path.insert(0, "/usr/lib/python3/dist-packages")
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        text_string_to_metric_families = None
        print("SKIP metrics parse: python3-prometheus-client is not installed")
    p, port = start("--threads", "3", "--metrics")
    labels = set()
    for i in range(30):
        r = get(port)
        check(r.startswith(b"HTTP/1.1 200"), "GET / %d answered 200" % i)
    for i in range(9):
        r = get(port, "/metrics")
        if not check(r.startswith(b"HTTP/1.1 200"), "GET /metrics answered 200"):
            continue
        body = r.split(b"\r\n\r\n", 1)[1].decode()
        if text_string_to_metric_families:
            fams = list(text_string_to_metric_families(body))
            check(len(fams) > 0, "metrics have families")
            loops = {smp.labels.get("loop") for f in fams for smp in f.samples}
            check(len(loops) == 1 and None not in loops, "one loop label per answer: %s" % loops)
            labels |= loops
    out, err = stop(p)
    check(p.returncode == 0, "exit 0 after SIGTERM (got %s: %s)" % (p.returncode, err))
    acc, served, loops, cut, idle, desc = summary_numbers(out)
    if check(acc and served and loops, "summary lines: %r" % out):
        check(acc.group(1) == acc.group(2), "accepted == closed: %s" % acc.group(0))
        per = [int(x) for x in loops.group(2).split(",")]
        check(int(loops.group(1)) == 3 and len(per) == 3, "3 loops listed: %s" % loops.group(0))
        check(sum(per) == int(served.group(1)) == 39, "per-loop counts add up to 39: %s / %s"
              % (loops.group(0), served.group(0)))
    if desc:
        check(desc.group(1) == desc.group(2), "descriptors back: %s" % desc.group(0))
    if text_string_to_metric_families and labels:
        check(labels <= {"1", "2", "3"}, "loop labels are the loops' numbers: %s" % labels)


def test_sigterm_with_clients_mid_request_and_idle():
    grace = 400
    p, port = start("--threads", "2", "--grace", str(grace), "--no-defer-accept")
    # Idle between requests: one answered request each, then silence.
    idle = []
    for _ in range(6):
        s = dial(port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        check(read_response(s).startswith(b"HTTP/1.1 200"), "keep-alive answer")
        idle.append(s)
    # Mid-request: headers begun, never finished (cut at the grace), and
    # one finished during the grace (answered, with Connection: close).
    stuck = []
    for _ in range(8):
        s = dial(port)
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        stuck.append(s)
    late = dial(port)
    late.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
    time.sleep(0.3)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    # Idle connections are closed at once.
    for s in idle:
        s.settimeout(max(0.1, grace / 1000.0 - (time.monotonic() - t0) - 0.1))
        try:
            check(s.recv(100) == b"", "an idle keep-alive connection is closed at once")
        except socket.timeout:
            check(False, "an idle keep-alive connection is closed before the grace ends")
        except ConnectionResetError:
            pass
    late.sendall(b"\r\n")
    late.settimeout(3)
    r = read_response(late)
    check(r.startswith(b"HTTP/1.1 200"), "a request finished during the grace is answered: %r" % r[:60])
    check(re.search(rb"(?i)\r\nconnection:\s*close", r) is not None,
          "the answer during the grace says Connection: close")
    out, err = p.communicate(timeout=10)
    took = time.monotonic() - t0
    check(p.returncode == 0, "exit 0 (got %s: %s)" % (p.returncode, err))
    check(took < grace / 1000.0 + 1.5, "exit within the grace and a bound: %.3f s" % took)
    acc, served, loops, cut, idle_n, desc = summary_numbers(out)
    if check(cut is not None, "summary has 'cut at the deadline': %r" % out):
        check(int(cut.group(1)) == 8, "8 connections cut at the deadline: %s" % cut.group(0))
    if check(acc is not None, "summary has accepted/closed"):
        check(acc.group(1) == acc.group(2), "accepted == closed: %s" % acc.group(0))
    if desc:
        check(desc.group(1) == desc.group(2), "descriptors back: %s" % desc.group(0))
    for s in stuck:
        s.settimeout(2)
        try:
            check(s.recv(100) == b"", "a stuck client sees the end")
        except ConnectionResetError:
            pass
        except socket.timeout:
            check(False, "a stuck client was never closed")
        s.close()
    for s in idle + [late]:
        s.close()


def test_slowloris_on_every_loop():
    p, port = start("--threads", "2", "--idle-timeout", "500", "--no-defer-accept")
    clients = [dial(port) for _ in range(20)]
    t0 = time.monotonic()
    cut = 0
    alive = list(clients)
    while alive and time.monotonic() - t0 < 4:
        for s in list(alive):
            try:
                s.send(b"G")
            except OSError:
                alive.remove(s)
                cut += 1
                continue
            s.settimeout(0.01)
            try:
                if s.recv(100) == b"":
                    alive.remove(s)
                    cut += 1
            except socket.timeout:
                pass
            except OSError:
                alive.remove(s)
                cut += 1
        time.sleep(0.2)
    took = time.monotonic() - t0
    check(cut == 20, "all 20 trickling clients cut (%d)" % cut)
    check(took < 3, "cut at the idle deadline, not later: %.2f s" % took)
    out, err = stop(p)
    check(p.returncode == 0, "exit 0 (got %s: %s)" % (p.returncode, err))
    acc, served, loops, cutn, idle, desc = summary_numbers(out)
    if check(idle is not None, "summary has idle timeouts"):
        check(int(idle.group(1)) == 20, "20 idle timeouts: %s" % idle.group(0))
    for s in clients:
        s.close()


def test_option_forms():
    for bad in (["--threads", "0"], ["--threads", "1025"], ["--threads", "+2"], ["--grace", "-1"],
                ["--idle-timeout", "1e3"], ["--max-conns", ""], ["--metrics=yes"], ["extra"],
                ["--port", "65536"], ["--audit", "xx"], ["--addr", "999.1.1.1"], ["--unix", ""],
                ["--unix", "/tmp/x.sock", "--threads", "2"], ["--audit", "full", "--threads", "2"]):
        r = subprocess.run([HTTPD, "--port", "0", *bad], capture_output=True, text=True, timeout=10)
        check(r.returncode == 2, "%s is a usage error (exit %s)" % (" ".join(bad), r.returncode))
        # The page: "one line naming the option or operand ... followed by the usage".
        lines = r.stderr.splitlines()
        check(len(lines) > 1 and lines[0].startswith("ringscope-httpd: ") and
              lines[1].startswith("usage:"),
              "%s: the error, then the usage, on stderr: %r" % (" ".join(bad), r.stderr[:200]))
    p, port = start("--threads=2", "--grace=100", "--idle-timeout=0")
    check(get(port).startswith(b"HTTP/1.1 200"), "--opt=value forms start a server")
    out, err = stop(p)
    check(p.returncode == 0, "exit 0 (got %s)" % p.returncode)
    check("loops: 2" in out, "--threads=2 runs two loops: %r" % out)


def main():
    if not os.access(HTTPD, os.X_OK):
        print("SKIP blackbox_httpd: no ringscope-httpd at %s" % HTTPD)
        return 77
    for t in (test_threads_summary_and_metrics, test_sigterm_with_clients_mid_request_and_idle,
              test_slowloris_on_every_loop, test_option_forms):
        t0 = time.monotonic()
        n = len(FAILS)
        t()
        print("%s %s (%.2f s)" % ("ok" if len(FAILS) == n else "FAILED", t.__name__,
                                  time.monotonic() - t0))
    print("blackbox_httpd: %d failure(s)" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
