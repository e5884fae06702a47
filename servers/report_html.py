"""`spyglass report --html`: one self-contained page. Inline CSS and SVG drawn here; no fetches.

Charts: calls over time by outcome class (stacked bars), why agents could not act (bars by
class), top tools (success vs not), denial rules and budgets, upstream rate-limit headroom
(lines, share of the vendor's limit used). Every drawn mark has class ``mark``; a few lines of
inline script record what the browser actually laid out in ``body[data-drawn]`` (tests read it).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from guards.report import CLASS_LABELS, CLASSES

COLORS = {
    "ok": "#2f9e44",
    "missing_access": "#e8590c",
    "human_gate": "#7048e8",
    "missing_context": "#f59f00",
    "upstream_failure": "#e03131",
    "invalid_call": "#1c7ed6",
    "internal_error": "#495057",
}
LINE_COLORS = ["#1c7ed6", "#e8590c", "#2f9e44", "#7048e8", "#c2255c", "#0c8599", "#5c940d", "#862e9c"]
LABELS = {"ok": "success", **CLASS_LABELS}

CSS = """
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#212529;
background:#f8f9fa}main{max-width:1120px;margin:0 auto;padding:24px}h1{font-size:22px;margin:0 0 4px}
h2{font-size:16px;margin:28px 0 8px}.sub{color:#495057}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card span{color:#495057;font-size:12px}
.panel{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:12px 14px;margin-bottom:12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e9ecef;vertical-align:top}
th{color:#495057;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.legend{display:flex;gap:14px;flex-wrap:wrap;font-size:12px;margin:4px 0}.sw{display:inline-block;width:10px;
height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}svg text{font:11px system-ui,sans-serif;
fill:#495057}.empty{color:#868e96;font-style:italic}
"""

SCRIPT = """
window.addEventListener('load', function () {
  var out = {};
  document.querySelectorAll('svg.chart').forEach(function (svg) {
    var n = 0, area = 0;
    svg.querySelectorAll('.mark').forEach(function (m) {
      var b = m.getBBox();
      if (b.width > 0 || b.height > 0) { n++; area += Math.max(b.width, 1) * Math.max(b.height, 1); }
    });
    out[svg.id] = {marks: n, area: Math.round(area)};
  });
  document.body.setAttribute('data-drawn', JSON.stringify(out));
});
"""


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _short_time(iso: str) -> str:
    return iso.replace("T", " ").removesuffix("Z")[5:]


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1
    mag = 10 ** (len(str(int(v))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * mag:
            return m * mag
    return 10 * mag


def timeline_svg(starts: list[str], series: dict[str, list[int]], width: int = 1080, height: int = 240) -> str:
    left, right, top, bottom = 48, 10, 10, 30
    pw, ph = width - left - right, height - top - bottom
    n = len(starts)
    totals = [sum(series[s][i] for s in series) for i in range(n)] if n else []
    peak = _nice_max(max(totals, default=0))
    parts = [f'<svg class="chart" id="chart-timeline" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="calls over time by outcome">']
    for frac in (0, 0.5, 1):
        y = top + ph - frac * ph
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e9ecef"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(round(peak * frac))}</text>')
    if not any(totals):
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no calls in this window</text>')
    bw = pw / max(n, 1)
    for i in range(n):
        y = top + ph
        for name in ("ok", *CLASSES):
            v = series.get(name, [0] * n)[i]
            if not v:
                continue
            h = v / peak * ph
            y -= h
            parts.append(f'<rect class="mark" x="{left + i * bw + bw * 0.08:.2f}" y="{y:.2f}" '
                         f'width="{max(bw * 0.84, 0.8):.2f}" height="{h:.2f}" fill="{COLORS[name]}">'
                         f'<title>{_e(starts[i])} {_e(LABELS[name])}: {v}</title></rect>')
    for i in sorted({0, n // 2, n - 1} if n else set()):
        x = left + i * bw + bw / 2
        anchor = "start" if i == 0 else "end" if i == n - 1 and n > 1 else "middle"
        parts.append(f'<text x="{x:.1f}" y="{height - 10}" text-anchor="{anchor}">{_e(_short_time(starts[i]))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bars_svg(chart_id: str, rows: list[tuple[str, list[tuple[str, int]]]], width: int = 520,
             label_w: int = 190) -> str:
    """Horizontal bars; each row is (label, [(color, value), ...]) stacked left to right."""
    row_h = 24
    height = max(row_h * len(rows) + 8, 40)
    peak = max((sum(v for _, v in segs) for _, segs in rows), default=0) or 1
    pw = width - label_w - 60
    parts = [f'<svg class="chart" id="{_e(chart_id)}" viewBox="0 0 {width} {height}" width="100%" role="img">']
    if not rows:
        parts.append(f'<text x="{width / 2}" y="24" text-anchor="middle">nothing to show</text>')
    for i, (label, segs) in enumerate(rows):
        y = 4 + i * row_h
        short = label if len(label) <= 30 else label[:29] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end"><title>{_e(label)}</title>'
                     f"{_e(short)}</text>")
        x = float(label_w)
        for color, v in segs:
            if v <= 0:
                continue
            w = v / peak * pw
            parts.append(f'<rect class="mark" x="{x:.2f}" y="{y + 3}" width="{max(w, 1):.2f}" height="{row_h - 8}" '
                         f'fill="{color}" rx="2"><title>{_e(label)}: {v}</title></rect>')
            x += w
        parts.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{sum(v for _, v in segs)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def headroom_svg(starts: list[str], headroom: list[dict[str, Any]], width: int = 1080, height: int = 220) -> str:
    left, right, top, bottom = 48, 10, 10, 30
    pw, ph = width - left - right, height - top - bottom
    index = {s: i for i, s in enumerate(starts)}
    n = max(len(starts), 1)
    parts = [f'<svg class="chart" id="chart-headroom" viewBox="0 0 {width} {height}" width="100%" role="img" '
             'aria-label="share of the upstream rate limit used">']
    for pct in (0, 50, 80, 100):
        y = top + ph - pct / 100 * ph
        dash = ' stroke-dasharray="4 3" stroke="#fa5252"' if pct == 80 else ' stroke="#e9ecef"'
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"{dash}/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{pct}%</text>')
    for k, h in enumerate(headroom):
        color = LINE_COLORS[k % len(LINE_COLORS)]
        pts = []
        for start, used in h["series"]:
            i = index.get(start)
            if i is None:
                continue
            pts.append((left + (i + 0.5) * pw / n, top + ph - used / 100 * ph))
        if len(pts) == 1:
            x, y = pts[0]
            parts.append(f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>')
        elif pts:
            poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            parts.append(f'<polyline class="mark" points="{poly}" fill="none" stroke="{color}" stroke-width="2">'
                         f"<title>{_e(h['upstream'])}</title></polyline>")
    if not headroom:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">'
                     "no rate-limit headers captured in this window</text>")
    if starts:
        parts.append(f'<text x="{left}" y="{height - 10}">{_e(_short_time(starts[0]))}</text>')
        parts.append(f'<text x="{width - right}" y="{height - 10}" text-anchor="end">'
                     f"{_e(_short_time(starts[-1]))}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _legend(names: list[str], colors: dict[str, str] | None = None) -> str:
    colors = colors or COLORS
    items = "".join(f'<span><i class="sw" style="background:{colors[n]}"></i>{_e(LABELS.get(n, n))}</span>'
                    for n in names)
    return f'<div class="legend">{items}</div>'


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    if not rows:
        return '<p class="empty">nothing in this window</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{_e(c)}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_html(data: dict[str, Any], causes_per_class: int = 4) -> str:
    w, t, src, tl = data["window"], data["totals"], data["source"], data["timeline"]
    calls = t["calls"] or 1
    cards = [
        ("calls", f"{t['calls']:,}"),
        ("success rate", _pct(t["success_rate"])),
        ("latency p50 / p95", f"{t['p50_ms']:.0f} / {t['p95_ms']:.0f} ms"),
        ("tokens delivered", f"{t['tokens_delivered']:,}"),
        ("runs", f"{data['runs']['total']:,}"),
    ]
    card_html = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards)

    idle_rows = [(f"{c['label']} ({c['calls'] / calls:.0%})", [(COLORS[c["class"]], c["calls"])])
                 for c in data["classes"]]
    tool_rows = [(r["tool"], [(COLORS["ok"], r["ok"]), ("#adb5bd", r["calls"] - r["ok"])])
                 for r in data["top_tools"]]
    rule_rows = [(r["rule_id"], [(COLORS["human_gate"], r["calls"])]) for r in data["denial_rules"]]

    cause_rows = [[c["label"], cause["calls"], f"{cause['tool']}: {cause['cause']}", cause["next_step"]]
                  for c in data["classes"] for cause in c["causes"][:causes_per_class]]
    group_rows = [[*g["key"].values(), g["calls"], _pct(g["success_rate"]), f"{g['p50_ms']:.0f}",
                   f"{g['p95_ms']:.0f}", g["tokens_delivered"],
                   ", ".join(f"{LABELS[k]} {v}" for k, v in sorted(g["non_success"].items(), key=lambda kv: -kv[1]))]
                  for g in data["groups"][:50]]
    ngk = len(data["group_by"])
    run_rows = [[r["run_id"], r["principal"], r["client"], r["start"], f"{r['active_s']:.0f}s", r["calls"],
                 r["errors"], f"{r['blocked_s']:.0f}s"] for r in data["runs"]["shown"]]
    head_rows = [[h["upstream"], h["limit"], h["min_remaining"] if h["min_remaining"] is not None else "-",
                  f"{h['max_used_pct']}%", f"{h['last_used_pct']}%"] for h in data["headroom"]]
    line_legend = {h["upstream"]: LINE_COLORS[i % len(LINE_COLORS)] for i, h in enumerate(data["headroom"])}
    notices = "".join(f"<li>{_e(n['ts'])} {_e(n['tool'])}: {_e(n['message'])}</li>" for n in data["notices"])
    rolled = f" + {src['rolled_up_calls']:,} rolled-up calls" if src["rolled_up_calls"] else ""

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Spyglass utilization {_e(w['from'])} to {_e(w['to'])}</title><style>{CSS}</style></head>
<body><main>
<h1>Spyglass utilization</h1>
<div class="sub">{_e(w['from'])} → {_e(w['to'])} · {src['events']:,} events{_e(rolled)} ·
{_e(src.get('location', ''))}</div>
<div class="cards">{card_html}</div>

<h2>Calls over time by outcome ({_e(tl['bucket'])}s)</h2>
<div class="panel">{_legend([n for n in ("ok", *CLASSES) if n in tl['series']])}
{timeline_svg(tl['starts'], tl['series'])}</div>

<div class="grid">
<div><h2>Why agents could not act</h2><div class="panel">{bars_svg("chart-idle", idle_rows)}</div></div>
<div><h2>Top tools (success vs not)</h2><div class="panel">{bars_svg("chart-tools", tool_rows)}</div></div>
</div>

<div class="grid">
<div><h2>Denial rules and budgets</h2><div class="panel">{bars_svg("chart-rules", rule_rows)}</div></div>
<div><h2>Rate-limit headroom</h2><div class="panel">{_table(["upstream", "limit", "min left", "peak used",
                                                               "last used"], head_rows, {1, 2, 3, 4})}</div></div>
</div>

<h2>Upstream rate-limit used over time (share of the vendor's limit; dashed: 80%)</h2>
<div class="panel">{_legend(list(line_legend), line_legend)}{headroom_svg(tl['starts'], data['headroom'])}</div>

<h2>Top causes and what to do</h2>
<div class="panel">{_table(["class", "calls", "cause", "next step"], cause_rows, {1})}</div>

<h2>By {_e(", ".join(data['group_by']))}</h2>
<div class="panel">{_table([*data['group_by'], "calls", "success", "p50 ms", "p95 ms", "tokens", "held back by"],
                           group_rows, {ngk, ngk + 1, ngk + 2, ngk + 3, ngk + 4})}</div>

<h2>Runs ({data['runs']['total']:,}; busiest shown)</h2>
<div class="panel">{_table(["run", "principal", "client", "start", "active", "calls", "errors", "blocked"],
                           run_rows, {4, 5, 6, 7})}</div>
{f'<h2>Notices</h2><div class="panel"><ul>{notices}</ul></div>' if notices else ''}
<script type="application/json" id="report-data">{_json_for_script(data)}</script>
<script>{SCRIPT}</script>
</main></body></html>
"""


def _json_for_script(data: dict[str, Any]) -> str:
    """The report's JSON, safe inside a script element."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")
