"""`spyglass policy replay --audit DB --policy NEW.toml`: past calls re-decided under a new policy.

Registered by ``servers.cli_policy`` through :func:`add_replay`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from servers.cli_audit import CliError, add_audit_arg, open_store, parse_when, run


def add_replay(psub: Any) -> None:
    r = psub.add_parser("replay", help="re-decide past calls from the audit log under a new policy; "
                                       "list the calls whose decision would change")
    add_audit_arg(r)
    r.add_argument("--policy", required=True, help="the new policy file")
    r.add_argument("--old-policy", metavar="FILE|log",
                   help="what to compare with: the policy in force when the calls were made (default: the policy "
                        "`spyglass serve` loads, if a file is configured), or 'log' for the logged decisions")
    r.add_argument("--since", help="only calls since (e.g. 7d, 2026-11-20T00:00Z; default: the whole log)")
    r.add_argument("--until", help="only calls before")
    r.add_argument("--tool", help="only this tool ('*' globs allowed)")
    r.add_argument("--show", type=int, default=20, help="individual changed calls to list (default 20)")
    r.add_argument("--json", action="store_true")
    r.add_argument("--fail-on-change", action="store_true", help="exit 1 when any decision changes (for CI)")
    r.set_defaults(func=replay_cmd)


def replay_cmd(args: argparse.Namespace) -> int:
    return run(_replay, args)


def _replay(args: argparse.Namespace) -> int:
    from guards.audit_store import EventQuery, iso_ts
    from guards.policy import PolicyError, load_policy
    from guards.replay import replay

    try:
        policy = load_policy(args.policy)
        old, baseline = _baseline(args.old_policy)
    except PolicyError as e:
        raise CliError(str(e)) from None
    now = datetime.now(UTC)
    since = parse_when(args.since, now, "--since")
    until = parse_when(args.until, now, "--until")
    store = open_store(args)
    try:
        q = EventQuery(since=iso_ts(since) if since else None, until=iso_ts(until) if until else None, tool=args.tool)
        result = replay(store.iter_events(q), policy, old)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"baseline": baseline, **result.to_dict(show=args.show)}, indent=2))
    else:
        _print(result, args, baseline)
    return 1 if (args.fail_on_change and result.changes) else 0


def _baseline(option: str | None) -> tuple[Any, str]:
    """The old policy to compare with, and a phrase saying what it is."""
    import os

    from guards.policy import load_policy

    if option == "log":
        return None, "the decisions in the log"
    if option:
        return load_policy(option), option
    from servers.config import CONFIG_HOME

    configured = os.environ.get("SPYGLASS_POLICY") or (
        str(CONFIG_HOME / "policy.toml") if (CONFIG_HOME / "policy.toml").exists() else None)
    if configured:
        return load_policy(configured), f"{configured} (the configured policy)"
    return None, "the decisions in the log (no policy file configured; --old-policy FILE to compare two policies)"


def _print(result: Any, args: argparse.Namespace, baseline: str) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    con = Console(width=None if sys.stdout.isatty() else 140)
    skipped = sum(result.skipped.values())
    con.print(f"compared with: {baseline}")
    if result.logged_mismatch:
        con.print(f"[yellow]warning[/] {result.logged_mismatch} calls were allowed in the log but the old policy "
                  "denies them: it is probably not the policy that was in force")
    con.print(f"replayed {result.replayed} calls under {args.policy}: {len(result.changes)} would change, "
              f"{result.unchanged} unchanged ({result.rule_only} decided by another rule with the same effect)"
              + (f", {skipped} not replayable" if skipped else ""))
    for why, n in result.skipped.items():
        con.print(f"  not replayed: {n} — {why}")
    if not result.changes:
        return
    t = Table(title="changes by tool and rule", box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("calls", "tool", "change", "before", "after", "principals", "why now"):
        t.add_column(col, justify="right" if col == "calls" else "left", overflow="fold")
    for g in result.groups():
        approx = " (approximate: redacted args)" if g["approximate"] else ""
        t.add_row(str(g["calls"]), g["tool"], g["change"], g["before_rule"], g["after_rule"],
                  ", ".join(g["principals"]), g["reason"] + approx)
    con.print(t)
    if args.show:
        c = Table(title=f"changed calls (first {min(args.show, len(result.changes))})", box=box.SIMPLE_HEAD,
                  title_justify="left")
        for col in ("time", "event", "tool", "principal", "change"):
            c.add_column(col)
        for ch in result.changes[: args.show]:
            c.add_row(ch.ts, ch.event_id, ch.tool, ch.principal, ch.kind)
        con.print(c)
