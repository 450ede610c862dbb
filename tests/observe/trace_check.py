# SPDX-License-Identifier: MIT
"""The Chrome trace JSON, read by python3's json parser: every b has its e
with the same id, timestamps never go back on a track, each scope slice
encloses its children's, a failed acquire and a suppressed error are in the
args, releases are LIFO, and a program killed mid-run leaves a complete file
up to its last flush. Exit 77 (SKIP) without io_uring."""
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

PROG = os.environ.get("OBSERVE_PROG", "tests/observe/observe_prog")
DEMO = os.environ.get("RINGSCOPE_DEMO", "tools/ringscope-demo")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
    return cond


def run(argv, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode == 77:
        print(r.stdout.strip() or "SKIP: no io_uring")
        sys.exit(77)
    return r


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)["traceEvents"]


def slices(events, complete=True, label=""):
    """(cat, id) -> {b, e, args...}; checks pairing and per-track order."""
    last_ts = {}
    open_, done = {}, {}
    for ev in events:
        ph = ev["ph"]
        if ph == "M":
            continue
        track = (ev["pid"], ev["tid"])
        check(ev["ts"] >= last_ts.get(track, 0), f"{label}: ts goes back on track {track}: {ev}")
        last_ts[track] = ev["ts"]
        if ph in "bne":
            key = (ev["cat"], ev["id"])
            if ph == "b":
                check(key not in open_ and key not in done, f"{label}: {key} begins twice")
                open_[key] = {"b": ev["ts"], "name": ev["name"], "bargs": ev.get("args", {})}
            elif ph == "n":
                # Perfetto keys async tracks by name and id: an instant named
                # otherwise than its slice would get a track of its own.
                if check(key in open_, f"{label}: instant {ev['name']} outside its slice {key}"):
                    check(ev["name"] == open_[key]["name"], f"{label}: instant named apart from its slice: {ev}")
                    open_[key].setdefault("events", []).append(ev.get("args", {}).get("event"))
            else:
                if check(key in open_, f"{label}: e without b: {ev}"):
                    s = open_.pop(key)
                    check(s["name"] == ev["name"], f"{label}: b/e names differ for {key}")
                    s["e"] = ev["ts"]
                    s["eargs"] = ev.get("args", {})
                    done[key] = s
    if complete:
        check(not open_, f"{label}: slices never ended: {list(open_)[:5]}")
    return done, open_


def enclosure(done, label):
    scopes = {k[1]: s for k, s in done.items() if k[0] == "scope"}
    n = 0
    for (cat, _), s in done.items():
        parent = s["bargs"].get("parent_id" if cat == "scope" else "scope_id")
        if parent in scopes:
            p = scopes[parent]
            n += 1
            check(p["b"] <= s["b"] and s["e"] <= p["e"],
                  f"{label}: {cat} {s['name']} [{s['b']}, {s['e']}] is not inside "
                  f"scope {p['name']} [{p['b']}, {p['e']}]")
    check(n > 0, f"{label}: no nested slice to check")


def releases_of(done, scope_name):
    """Names of the entries of a scope released in its unwind, in release order."""
    scope_ids = {k[1] for k, s in done.items() if k[0] == "scope" and s["name"] == scope_name}
    rel = [s for (cat, _), s in done.items() if cat == "entry" and s["bargs"].get("scope_id") in scope_ids
           and "result" in s["eargs"] and "end" not in s["eargs"] and not s["eargs"].get("early")]
    return [s["bargs"].get("detail", "") for s in sorted(rel, key=lambda s: s["e"])]


def scenario(tmp):
    path = os.path.join(tmp, "scenario.json")
    r = run([PROG, "trace", path])
    check(r.returncode == 0, f"observe_prog trace: {r.returncode} {r.stderr}")
    events = load(path)
    done, _ = slices(events, label="scenario")
    enclosure(done, "scenario")
    failed = [s for s in done.values() if s["eargs"].get("end") == "failed"
              and s["eargs"].get("errno") == "ENOENT"]
    check(any("missing" in s["eargs"].get("error", "") and s["eargs"].get("op") == "openat"
              for s in failed), "scenario: no failed openat of 'missing' with ENOENT in the args")
    sup = [s for s in done.values() if "suppressed" in s["eargs"]]
    check(len(sup) == 1 and "also-missing" in sup[0]["eargs"]["suppressed"]
          and sup[0]["name"].startswith("defer"),
          f"scenario: the suppressed error is not in the defer's args: {sup}")
    early = [s for s in done.values() if s["eargs"].get("early")]
    check(len(early) == 1 and early[0]["bargs"]["detail"].endswith("/f4"), f"scenario: early release: {early}")
    child = [s for (c, _), s in done.items() if c == "scope" and s["name"] == "child"]
    check(child and child[0]["eargs"].get("errno") == "ENOENT"
          and "missing" in child[0]["eargs"].get("error", ""),
          f"scenario: scope child's end has no error chain: {child}")
    counters = [e for e in events if e["ph"] == "C"]
    check(counters and all("sqes per submit" in e["args"] and "open entries" in e["args"]
                           and "ops in flight" in e["args"] for e in counters),
          "scenario: no counter events with sqes per submit / open entries / ops in flight")
    check(sum(e["args"]["sqes per submit"] for e in counters) > 0, "scenario: no SQE counted")
    kinds = [s.get("events") for s in done.values() if s["name"] == "file"]
    check(["entered", "release started"] in kinds and ["failed"] in kinds,
          f"scenario: the instants entered, release started, failed are missing: {kinds[:6]}")
    # f0 acquired first in app, released last among app's unwind.
    check(releases_of(done, "child")[-1:] and releases_of(done, "child")[-1].endswith("/f1"),
          f"scenario: child's releases not LIFO: {releases_of(done, 'child')}")


def demo(tmp):
    path = os.path.join(tmp, "demo.json")
    r = run([DEMO, "--trace", path])
    check(r.returncode == 0, f"ringscope-demo --trace: {r.returncode} {r.stderr[-300:]}")
    done, _ = slices(load(path), label="demo")
    enclosure(done, "demo")
    names = releases_of(done, "files")
    want = [f"f{i}" for i in range(199, -1, -1)]
    check([n.rsplit("/", 1)[-1] for n in names] == want,
          f"demo: files released out of LIFO order: {names[:4]}...")
    # Children unwind before the parent's own entry.
    files = [s for (c, _), s in done.items() if c == "scope" and s["name"] == "files"][0]
    demo_id = [k[1] for k, s in done.items() if k[0] == "scope" and s["name"] == "demo"]
    own = [s for (c, _), s in done.items() if c == "entry" and s["bargs"].get("scope_id") in demo_id]
    check(own and own[0]["e"] >= files["e"], "demo: the parent's entry was released before a child closed")
    # Its counters are the library's, by the library's names: every one, none "(null)".
    text = r.stdout
    check("(null)" not in text, "demo: a counter without a name in its output")
    r = run([DEMO, "--json"])
    if check(r.returncode == 0, f"ringscope-demo --json: {r.returncode}"):
        counters = json.loads(r.stdout).get("counters", {})
        check(len(counters) >= 14 and all(k and k != "(null)" for k in counters),
              f"demo --json: counters unnamed or missing: {sorted(counters)}")
        check("recv_rearms" in counters and "cancel_fd" in counters,
              f"demo --json: the newest counters are missing: {sorted(counters)}")
    # The README's picture is drawn from this trace: it must render.
    svg = os.path.join(tmp, "demo.svg")
    tool = os.path.join(os.environ.get("srcdir", "."), "tools", "trace2svg.py")
    r = subprocess.run([sys.executable, tool, path, svg], stderr=subprocess.PIPE, text=True)
    if check(r.returncode == 0, f"trace2svg: {r.stderr}"):
        root = ET.parse(svg).getroot()
        texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
        check("failed acquire" in texts and "scope files" in texts, "trace2svg: no failed acquire or scope in the SVG")


def killed(tmp):
    path = os.path.join(tmp, "killed.json")
    r = run([PROG, "kill", path])
    check(r.returncode == -9, f"observe_prog kill: expected SIGKILL, got {r.returncode} {r.stderr}")
    try:
        events = load(path)
    except ValueError as e:
        check(False, f"killed: the file is not valid JSON: {e}")
        return
    done, open_ = slices(events, complete=False, label="killed")
    rounds = [s for (c, _), s in done.items() if c == "scope" and s["name"] == "round"]
    check(len(rounds) == 200, f"killed: {len(rounds)} complete 'round' scopes, not 200")
    check(not any(s["name"] == "unflushed" for s in open_.values()),
          "killed: events after the last flush are in the file")


with tempfile.TemporaryDirectory() as tmp:
    scenario(tmp)
    demo(tmp)
    killed(tmp)
print("trace_check: %s" % ("FAILED (%d)" % len(failures) if failures else "ok"))
sys.exit(1 if failures else 0)
