"""`spyglass report`: utilization from the audit log — terminal tables, --json, --html FILE."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from servers.cli_audit import CliError, add_audit_arg, open_store, parse_when, run

SPARK = "▁▂▃▄▅▆▇█"


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="utilization: how often agents could act, and what held them back")
    add_audit_arg(p)
    p.add_argument("--since", default="7d", help="window start: 24h, 7d, an ISO time (default 7d)")
    p.add_argument("--until", help="window end (default now)")
    p.add_argument("--all", action="store_true", help="the whole log, rollups included (ignores --since)")
    p.add_argument("--by", default="tool",
                   help="group by principal, client, toolset, tool or run; comma-separated for several")
    p.add_argument("--top", type=int, default=10, help="rows per section (default 10)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML page with charts")
    p.set_defaults(func=report)


def report(args: argparse.Namespace) -> int:
    return run(_report, args)


def compute(args: argparse.Namespace) -> dict[str, Any]:
    from guards.audit_store import parse_ts, report_from_store

    now = datetime.now(UTC)
    store = open_store(args)
    try:
        until = parse_when(args.until, now, "--until") or now
        if args.all:
            first, last = store.time_range()
            since = parse_ts(first) if first else until - timedelta(days=1)
            if last:
                until = max(until, parse_ts(last) + timedelta(milliseconds=1))
        else:
            since = parse_when(args.since, now, "--since") or until - timedelta(days=7)
        if since >= until:
            raise CliError(f"the window is empty: --since {args.since} is not before --until")
        by = [b.strip() for b in args.by.split(",") if b.strip()]
        try:
            data = report_from_store(store, since, until, by, max(1, args.top))
        except ValueError as e:
            raise CliError(str(e)) from None
        data["source"]["location"] = store.location
        return data
    finally:
        store.close()


def _report(args: argparse.Namespace) -> int:
    data = compute(args)
    if args.html:
        from servers.report_html import render_html

        Path(args.html).write_text(render_html(data), encoding="utf-8")
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        print(json.dumps(data, indent=2))
    elif not args.html:
        render_terminal(data)
    return 0


def spark(values: list[int]) -> str:
    top = max(values, default=0)
    if not top:
        return " " * len(values)
    return "".join(" " if v == 0 else SPARK[min(len(SPARK) - 1, (v * len(SPARK) - 1) // top)] for v in values)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ms(x: float) -> str:
    return f"{x / 1000:.1f}s" if x >= 10000 else f"{x:.0f}ms"


def _row(table: Any, *cells: Any) -> None:
    """Cells are audit data (tool names, messages, rule ids): never Rich markup."""
    from rich.markup import escape

    table.add_row(*(escape(str(c)) for c in cells))


def render_terminal(data: dict[str, Any], console: Any = None, causes_per_class: int = 3) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from guards.report import CLASS_LABELS

    con = console or Console(width=None if sys.stdout.isatty() else 140)
    w, t, src = data["window"], data["totals"], data["source"]
    rolled = f" + {src['rolled_up_calls']} rolled-up calls" if src["rolled_up_calls"] else ""
    con.print(f"[bold]Spyglass utilization[/] {w['from']} → {w['to']}  ({src['events']} events{rolled}, "
              f"{src.get('location', '')})")
    if not t["calls"]:
        con.print("no tool calls in this window (try --since 30d or --all)")
        return
    con.print(f"calls {t['calls']}  ·  success {_pct(t['success_rate'])}  ·  p50 {_ms(t['p50_ms'])}  ·  "
              f"p95 {_ms(t['p95_ms'])}  ·  tokens delivered {t['tokens_delivered']:,}")

    tl = data["timeline"]
    if tl["starts"]:
        con.print(f"\n[bold]timeline[/] ({tl['bucket']}s, {tl['starts'][0]} → {tl['starts'][-1]})")
        for name, values in tl["series"].items():
            con.print(f"  {CLASS_LABELS.get(name, name):<17} {spark(values)}  {sum(values)}")

    g = Table(title=f"by {', '.join(data['group_by'])}", box=box.SIMPLE_HEAD, title_justify="left")
    for key in data["group_by"]:
        g.add_column(key)
    for col in ("calls", "success", "p50", "p95", "tokens"):
        g.add_column(col, justify="right")
    g.add_column("held back by")
    shown = data["groups"][:20]
    for row in shown:
        held = ", ".join(f"{CLASS_LABELS[c]} {n}" for c, n in
                         sorted(row["non_success"].items(), key=lambda kv: -kv[1])[:2])
        _row(g, *row["key"].values(), str(row["calls"]), _pct(row["success_rate"]), _ms(row["p50_ms"]),
                  _ms(row["p95_ms"]), f"{row['tokens_delivered']:,}", held)
    con.print(g)
    if len(data["groups"]) > len(shown):
        con.print(f"  … {len(data['groups']) - len(shown)} more (see --json)")

    if data["classes"]:
        c = Table(title="why agents could not act — top causes and what to do", box=box.SIMPLE_HEAD,
                  title_justify="left", show_lines=False)
        c.add_column("class", no_wrap=True)
        c.add_column("calls", justify="right")
        c.add_column("cause", max_width=34)
        c.add_column("next step", overflow="fold", ratio=1)
        for cls in data["classes"]:
            share = cls["calls"] / t["calls"]
            for i, cause in enumerate(cls["causes"][:causes_per_class]):
                label = f"{cls['label']} ({_pct(share)})" if i == 0 else ""
                _row(c, label, str(cause["calls"]), cause["cause"], cause["next_step"])
            hidden = len(cls["causes"]) - causes_per_class
            if hidden > 0:
                _row(c, "", "", f"… {hidden} more", "")
        con.print(c)

    if data["denial_rules"]:
        d = Table(title="denial rules and budgets", box=box.SIMPLE_HEAD, title_justify="left")
        d.add_column("rule")
        d.add_column("calls", justify="right")
        d.add_column("tools")
        for r in data["denial_rules"]:
            _row(d, r["rule_id"], str(r["calls"]), ", ".join(f"{k} {v}" for k, v in r["tools"].items()))
        con.print(d)

    if data["headroom"]:
        h = Table(title="upstream rate-limit headroom (share of the vendor's limit used)", box=box.SIMPLE_HEAD,
                  title_justify="left")
        for col in ("upstream", "limit", "min remaining", "peak used", "last used", "trend"):
            h.add_column(col, justify="left" if col in ("upstream", "trend") else "right")
        for r in data["headroom"]:
            trend = spark([int(v) for _, v in r["series"]][-40:])
            _row(h, r["upstream"], str(r["limit"]), str(r["min_remaining"]), f"{r['max_used_pct']}%",
                      f"{r['last_used_pct']}%", trend)
        con.print(h)

    runs = data["runs"]
    if runs["shown"]:
        r = Table(title=f"runs ({runs['total']} in the window; busiest shown)", box=box.SIMPLE_HEAD,
                  title_justify="left")
        for col in ("run", "principal", "client", "start", "active", "calls", "errors", "blocked"):
            r.add_column(col, justify="right" if col in ("active", "calls", "errors", "blocked") else "left")
        for run_ in runs["shown"]:
            _row(r, run_["run_id"], run_["principal"], run_["client"], run_["start"],
                      f"{run_['active_s']:.0f}s", str(run_["calls"]), str(run_["errors"]), f"{run_['blocked_s']:.0f}s")
        con.print(r)

    for n in data["notices"]:
        con.print(f"[yellow]notice[/] {n['ts']} {n['tool']}: {n['message']}")
