# SPDX-License-Identifier: MIT
"""The metrics, read by the Prometheus client library's own text parser
(Debian: python3-prometheus-client): every family has HELP and TYPE, each
loop is its own series, the counters match rsc_loop_counter, the histograms
are consistent. Exit 77 (SKIP) without the parser or io_uring."""
import json
import os
import re
import subprocess
import sys
import tempfile

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # Debian's package is for Debian's python3: another one first on PATH
    # (pyenv, a venv) does not see it, so the check runs under Debian's.
    system = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.access(system, os.X_OK):
        os.execv(system, [system] + sys.argv)
    print("SKIP metrics_check: python3-prometheus-client is not installed for %s" % sys.executable)
    sys.exit(77)

PROG = os.environ.get("OBSERVE_PROG", "tests/observe/observe_prog")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
    return cond


with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "metrics.txt")
    r = subprocess.run([PROG, "metrics", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode == 77:
        print(r.stdout.strip())
        sys.exit(77)
    if r.returncode != 0:
        print("observe_prog metrics failed:", r.returncode, r.stderr)
        sys.exit(1)
    counters = json.loads(r.stdout)
    text = open(path, encoding="utf-8").read()

families = {f.name: f for f in text_string_to_metric_families(text)}
helps = dict(re.findall(r"^# HELP (\S+) (.+)$", text, re.M))
types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
check(len(families) >= 11 + 5 + 2, f"only {len(families)} families")
for name, f in families.items():
    # The parser names a counter family without its _total suffix.
    declared = name + "_total" if f.type == "counter" else name
    check(helps.get(declared), f"{declared}: no # HELP")
    check(types.get(declared) == f.type, f"{declared}: # TYPE {types.get(declared)} != {f.type}")
    check(f.documentation, f"{declared}: empty HELP")

samples = {(s.name, s.labels.get("loop"), s.labels.get("le")): s.value
           for f in families.values() for s in f.samples}
loops = sorted(counters)
check(len(loops) == 2 and loops[0] != loops[1], f"loops {loops}")
for loop in loops:
    for cname, value in counters[loop].items():
        got = samples.get((f"ringscope_{cname}_total", loop, None))
        check(got == value, f"loop {loop}: ringscope_{cname}_total = {got}, rsc_loop_counter = {value}")
    for h in ("acquire", "release"):
        base = f"ringscope_{h}_latency_seconds"
        buckets = sorted((float(le), v) for (n, l, le), v in samples.items()
                         if n == base + "_bucket" and l == loop)
        values = [v for _, v in buckets]
        check(values == sorted(values), f"loop {loop}: {base} buckets are not cumulative")
        check(buckets and buckets[-1][0] == float("inf")
              and buckets[-1][1] == samples.get((base + "_count", loop, None)),
              f"loop {loop}: {base}: +Inf bucket != _count")

first, second = loops
# observe_prog: loop 1 opened 5 files; loop 2 opened 3, failed 1, holds 1.
check(samples.get(("ringscope_acquire_latency_seconds_count", first, None)) == 5, "loop 1: 5 acquires timed")
check(samples.get(("ringscope_acquire_latency_seconds_count", second, None)) == 4, "loop 2: 4 acquires timed")
check(samples.get(("ringscope_release_latency_seconds_count", second, None)) == 3, "loop 2: 3 releases timed")
check(samples.get(("ringscope_open_entries", second, None)) == 1, "loop 2: 1 open entry")
check(samples.get(("ringscope_open_scopes", second, None)) == 1, "loop 2: 1 open scope")
check(samples.get(("ringscope_open_entries", first, None)) == 0, "loop 1: no open entry")
check(samples.get(("ringscope_enter_failed_total", second, None)) == 1, "loop 2: 1 failed acquire")


def scrape_httpd():
    """ringscope-httpd --metrics: GET /metrics from a running server parses too."""
    import http.client
    import signal
    httpd = os.environ.get("RINGSCOPE_HTTPD", "tools/httpd/ringscope-httpd")
    if not os.path.exists(httpd):
        print("note: no ringscope-httpd here; its /metrics is not checked")
        return
    p = subprocess.Popen([httpd, "--metrics", "--port", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not check(line.startswith("listening on 127.0.0.1:"), f"httpd: {line!r} {p.poll()}"):
            return
        port = int(line.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for path in ("/", "/metrics"):
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read().decode()
        check(resp.status == 200 and resp.getheader("Content-Type", "").startswith("text/plain"),
              f"httpd /metrics: {resp.status} {resp.getheader('Content-Type')}")
        fams = {f.name: f for f in text_string_to_metric_families(body)}
        got = {s.name: s.value for f in fams.values() for s in f.samples}
        check(got.get("ringscope_acquired_total", 0) >= 2, f"httpd: acquired {got.get('ringscope_acquired_total')}")
        check(got.get("ringscope_open_entries", 0) >= 2, "httpd: the listener and this connection are open entries")
        check("ringscope_acquire_latency_seconds" in fams, "httpd --metrics: no latency histogram")
        conn.close()
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    check(p.returncode == 0, f"httpd exit status {p.returncode}: {p.stderr.read()[-300:]}")


scrape_httpd()
print("metrics_check: %d families, %s" % (len(families), "FAILED" if failures else "ok"))
sys.exit(1 if failures else 0)
