#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Draw a ringscope trace (Chrome trace-event JSON, rsc_loop_trace_file(3))
as an SVG timeline: one band per scope, nested under its parent, each entry
a line from the submit of its acquire to the completion of its release;
failed acquires in red, the unwind's releases as dots.

    tools/trace2svg.py TRACE.json OUT.svg [--title TEXT]

Only the Python standard library; it reads the file with the json module."""
import argparse
import html
import json
import sys

SCOPE_COLORS = ["#4c72b0", "#55a868", "#8172b2", "#c44e52", "#ccb974", "#64b5cd"]
ENTRY_COLOR = "#6b8fbf"
FAIL_COLOR = "#d62728"
RELEASE_COLOR = "#222222"


def load(path):
    with open(path, encoding="utf-8") as f:
        events = json.load(f)["traceEvents"]
    scopes, entries = {}, {}
    for ev in events:
        ph = ev.get("ph")
        if ph not in ("b", "e", "n"):
            continue
        table = scopes if ev.get("cat") == "scope" else entries
        rec = table.setdefault(ev["id"], {"id": ev["id"], "instants": []})
        if ph == "b":
            rec.update(name=ev["name"], b=ev["ts"], bargs=ev.get("args", {}))
        elif ph == "e":
            rec.update(e=ev["ts"], eargs=ev.get("args", {}))
        else:
            rec["instants"].append((ev["name"], ev["ts"]))
    scopes = {k: v for k, v in scopes.items() if "b" in v}
    entries = {k: v for k, v in entries.items() if "b" in v}
    return scopes, entries


def render(scopes, entries, title):
    end_all = max([s.get("e", s["b"]) for s in scopes.values()] +
                  [e.get("e", e["b"]) for e in entries.values()])
    t0 = min([s["b"] for s in scopes.values()] + [e["b"] for e in entries.values()])
    span = max(end_all - t0, 1e-3)
    children = {}
    for s in scopes.values():
        children.setdefault(s["bargs"].get("parent_id"), []).append(s)
    by_scope = {}
    for e in entries.values():
        by_scope.setdefault(e["bargs"].get("scope_id"), []).append(e)
    roots = [s for s in scopes.values() if s["bargs"].get("parent_id") not in scopes]

    left, width, top = 190, 900, 70
    x = lambda ts: left + (ts - t0) / span * width
    rows = []  # (scope, depth) in pre-order

    def walk(s, depth):
        rows.append((s, depth))
        for c in sorted(children.get(s["id"], []), key=lambda c: c["b"]):
            walk(c, depth + 1)

    for r in sorted(roots, key=lambda s: s["b"]):
        walk(r, 0)
    out, y = [], top
    for s, depth in rows:
        mine = sorted(by_scope.get(s["id"], []), key=lambda e: e["b"])
        band = 22 + max(len(mine), 1) * 1.6 + 10
        color = SCOPE_COLORS[depth % len(SCOPE_COLORS)]
        xb, xe = x(s["b"]), x(s.get("e", end_all))
        status = s.get("eargs", {}).get("errno")
        label = f'{"  " * depth}{s["name"]}'
        note = f'{len(mine)} entr{"y" if len(mine) == 1 else "ies"}' + (f", status {status}" if status else "")
        out.append(f'<rect x="{xb:.1f}" y="{y:.1f}" width="{max(xe - xb, 1):.1f}" height="{band - 4:.1f}" '
                   f'fill="{color}" fill-opacity="0.10" stroke="{color}" stroke-width="1.2" rx="3"/>')
        out.append(f'<rect x="{xb:.1f}" y="{y:.1f}" width="{max(xe - xb, 1):.1f}" height="14" fill="{color}" rx="3"/>')
        out.append(f'<text x="{xb + 4:.1f}" y="{y + 11:.1f}" class="bar">scope {html.escape(s["name"])}</text>')
        out.append(f'<text x="{8 + depth * 12}" y="{y + 11:.1f}" class="lbl">{html.escape(label.strip())}</text>')
        out.append(f'<text x="{8 + depth * 12}" y="{y + 24:.1f}" class="sub">{html.escape(note)}</text>')
        ey = y + 20
        for i, e in enumerate(mine):
            ly = ey + i * 1.6
            failed = e.get("eargs", {}).get("end") == "failed"
            xe_ = x(e.get("e", end_all))
            out.append(f'<line x1="{x(e["b"]):.1f}" y1="{ly:.1f}" x2="{xe_:.1f}" y2="{ly:.1f}" '
                       f'stroke="{FAIL_COLOR if failed else ENTRY_COLOR}" stroke-width="{2.4 if failed else 1.0}"/>')
            if failed:
                err = e["eargs"].get("errno", "")
                detail = e["bargs"].get("detail", "").rsplit("/", 1)[-1]
                out.append(f'<circle cx="{xe_:.1f}" cy="{ly:.1f}" r="4" fill="{FAIL_COLOR}"/>')
                out.append(f'<text x="{xe_ + 7:.1f}" y="{ly + 4:.1f}" class="fail">failed acquire: '
                           f'{html.escape(detail)} {html.escape(err)}</text>')
            elif "e" in e:
                out.append(f'<circle cx="{xe_:.1f}" cy="{ly:.1f}" r="1.3" fill="{RELEASE_COLOR}"/>')
        y += band + 6
    height = y + 50
    ticks = []
    for k in range(6):
        ts = t0 + span * k / 5
        ticks.append(f'<line x1="{x(ts):.1f}" y1="{top - 8}" x2="{x(ts):.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{x(ts):.1f}" y="{top - 12}" class="tick">{(ts - t0) / 1000:.2f} ms</text>')
    legend_y = y + 22
    legend = (f'<line x1="{left}" y1="{legend_y}" x2="{left + 30}" y2="{legend_y}" stroke="{ENTRY_COLOR}" stroke-width="2"/>'
              f'<text x="{left + 36}" y="{legend_y + 4}" class="sub">entry: submit of its acquire to completion of its release</text>'
              f'<circle cx="{left + 390}" cy="{legend_y}" r="2" fill="{RELEASE_COLOR}"/>'
              f'<text x="{left + 398}" y="{legend_y + 4}" class="sub">release completed (newest first: LIFO)</text>'
              f'<circle cx="{left + 660}" cy="{legend_y}" r="4" fill="{FAIL_COLOR}"/>'
              f'<text x="{left + 668}" y="{legend_y + 4}" class="sub">failed acquire</text>')
    style = ('<style>text{font-family:DejaVu Sans,Helvetica,Arial,sans-serif}'
             '.ttl{font-size:15px;font-weight:bold}.lbl{font-size:12px;font-weight:bold}'
             '.sub{font-size:10px;fill:#444}.bar{font-size:10px;fill:#fff}.tick{font-size:10px;fill:#666;text-anchor:middle}'
             '.fail{font-size:11px;fill:#d62728;font-weight:bold}.grid{stroke:#ddd;stroke-width:1}</style>')
    total = left + width + 190
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{height:.0f}" '
            f'viewBox="0 0 {total} {height:.0f}">{style}'
            f'<rect width="100%" height="100%" fill="#fff"/>'
            f'<text x="8" y="22" class="ttl">{html.escape(title)}</text>'
            + "".join(ticks) + "".join(out) + legend + "</svg>\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace")
    p.add_argument("svg")
    p.add_argument("--title", default="ringscope trace")
    a = p.parse_args()
    scopes, entries = load(a.trace)
    if not scopes and not entries:
        sys.exit(f"trace2svg: no slices in {a.trace}")
    with open(a.svg, "w", encoding="utf-8") as f:
        f.write(render(scopes, entries, a.title))


if __name__ == "__main__":
    main()
