"""`spyglass audit tail|show|query|verify|rollup|stats`: the audit log from the command line.

Every command reads the log `spyglass serve` writes: ``--audit URL`` (a path, ``sqlite:///path``
or ``postgresql://...``), else ``$SPYGLASS_AUDIT_URL``, else ``audit.db`` in the state directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OUTCOME_MARK = {"ok": "✓", "denied": "⊘", "awaiting_approval": "⏸"}


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="read, query and verify the audit log")
    asub = p.add_subparsers(dest="audit_command", required=True)

    t = asub.add_parser("tail", help="the newest events; -f to follow")
    add_audit_arg(t)
    t.add_argument("-n", type=int, default=20, help="how many events (default 20)")
    t.add_argument("-f", "--follow", action="store_true", help="keep printing new events (Ctrl-C stops)")
    t.add_argument("--json", action="store_true", help="one JSON object per line")
    t.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    t.add_argument("--max-seconds", type=float, default=None, help=argparse.SUPPRESS)  # bounded follow (tests)
    t.set_defaults(func=tail)

    s = asub.add_parser("show", help="one event in full (an id or a unique prefix of at least 4 characters)")
    add_audit_arg(s)
    s.add_argument("id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=show)

    q = asub.add_parser("query", help="events matching filters, oldest first")
    add_audit_arg(q)
    q.add_argument("--tool", help="tool name, '*' globs allowed")
    q.add_argument("--outcome", help="ok, denied, error, upstream_error, rate_limited, missing_access, ...")
    q.add_argument("--principal")
    q.add_argument("--run", help="run (session) id")
    q.add_argument("--since", help="e.g. 2h, 7d, 2026-11-20T09:00Z (default: everything)")
    q.add_argument("--until", help="same forms as --since (default: now)")
    q.add_argument("--limit", type=int, default=100, help="at most this many (default 100; 0 = no limit)")
    q.add_argument("--newest-first", action="store_true")
    q.add_argument("--json", action="store_true", help="one JSON object per line")
    q.set_defaults(func=query)

    v = asub.add_parser("verify", help="check every stream's hash chain (detects changed or deleted events)")
    add_audit_arg(v)
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=verify)

    r = asub.add_parser("rollup", help="roll events older than N days into hourly aggregates, expire old ones")
    add_audit_arg(r)
    r.add_argument("--raw-days", help="keep raw events this many days (default $SPYGLASS_AUDIT_RAW_DAYS or 30; "
                                      "'forever' keeps them)")
    r.add_argument("--rollup-days", help="keep hourly aggregates this many days (default "
                                         "$SPYGLASS_AUDIT_ROLLUP_DAYS or 400)")
    r.set_defaults(func=rollup)

    st = asub.add_parser("stats", help="events, streams, rollups and bytes per event")
    add_audit_arg(st)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=stats)


# -- shared by report and replay --------------------------------------------------------------
def add_audit_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--audit", metavar="URL",
                   help="audit log: a path, sqlite:///path or postgresql://... "
                        "(default: $SPYGLASS_AUDIT_URL, else audit.db in the state directory)")


def state_dir() -> Path:
    from servers.config import resolve_state_dir

    return resolve_state_dir(os.environ)


class CliError(Exception):
    pass


def open_store(args: argparse.Namespace) -> Any:
    from guards.sinks import open_reader, resolve_audit_url

    try:
        url = resolve_audit_url(getattr(args, "audit", None), state_dir())
    except ValueError as e:
        raise CliError(str(e)) from None
    try:
        return open_reader(url, state_dir())
    except FileNotFoundError as e:
        raise CliError(f"{e}: run `spyglass serve` first, or pass --audit PATH / set SPYGLASS_AUDIT_URL") from None
    except Exception as e:  # a database that is down or refuses us
        raise CliError(f"cannot open the audit log {url.split('@')[-1]}: {e}") from None


def parse_when(value: str | None, now: datetime, field: str) -> datetime | None:
    if not value:
        return None
    from guards.errors import ToolFailure
    from servers._core.timeparse import parse_time

    try:
        return parse_time(value, now, field=field)
    except ToolFailure as e:
        raise CliError(e.message + (f" ({e.hint})" if e.hint else "")) from None


def run(fn: Any, args: argparse.Namespace) -> int:
    try:
        return int(fn(args) or 0)
    except CliError as e:
        print(f"spyglass: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


# -- formatting -------------------------------------------------------------------------------
def event_line(e: Any) -> str:
    mark = OUTCOME_MARK.get(e.outcome, "✗")
    status = f" {e.upstream_status}" if e.upstream_status else ""
    rule = f" rule={e.rule_id}" if e.rule_id and e.outcome != "ok" else ""
    msg = f" — {e.message}" if e.message else ""
    return (f"{e.ts} {mark} {e.outcome}{status} {e.tool} {e.principal}@{e.client} "
            f"{e.duration_ms:.0f}ms ~{e.est_tokens}tok{rule} [{e.id}]{msg}")


def emit(events: list[Any], as_json: bool) -> None:
    for e in events:
        print(json.dumps(e.to_dict(), sort_keys=True) if as_json else event_line(e), flush=True)


# -- commands ---------------------------------------------------------------------------------
def tail(args: argparse.Namespace) -> int:
    return run(_tail, args)


def _tail(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        events, last = store.tail(max(0, args.n))
        emit(events, args.json)
        if not args.follow:
            return 0
        started = time.monotonic()
        while args.max_seconds is None or time.monotonic() - started < args.max_seconds:
            events, last = store.after(last)
            emit(events, args.json)
            if not events:
                time.sleep(args.interval)
        return 0
    finally:
        store.close()


def show(args: argparse.Namespace) -> int:
    return run(_show, args)


def _show(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        try:
            e = store.get(args.id)
        except LookupError as err:
            raise CliError(str(err)) from None
        if e is None:
            raise CliError(f"no event {args.id!r} in {store.location} (ids are printed by `spyglass audit tail`)")
        d = e.to_dict()
        if args.json:
            print(json.dumps(d, indent=2, sort_keys=True))
            return 0
        width = max(len(k) for k in d)
        for k, v in d.items():
            if k == "args":
                try:
                    v = json.dumps(json.loads(v), indent=2, sort_keys=True).replace("\n", "\n" + " " * (width + 2))
                except ValueError:
                    pass
            if v in ("", None) and k not in ("decision", "outcome"):
                continue
            print(f"{k:<{width}}  {v}")
        return 0
    finally:
        store.close()


def query(args: argparse.Namespace) -> int:
    return run(_query, args)


def _query(args: argparse.Namespace) -> int:
    from guards.audit_store import EventQuery, iso_ts

    now = datetime.now(UTC)
    since = parse_when(args.since, now, "--since")
    until = parse_when(args.until, now, "--until")
    store = open_store(args)
    try:
        q = EventQuery(
            since=iso_ts(since) if since else None, until=iso_ts(until) if until else None, tool=args.tool,
            outcome=args.outcome, principal=args.principal, run_id=args.run, limit=args.limit or None,
            newest_first=args.newest_first,
        )
        events = store.query(q)
        emit(events, args.json)
        if not args.json:
            capped = args.limit and len(events) == args.limit
            more = " (the --limit; raise it or narrow the filters for more)" if capped else ""
            print(f"{len(events)} events{more}", file=sys.stderr)
        return 0
    finally:
        store.close()


def verify(args: argparse.Namespace) -> int:
    return run(_verify, args)


def _verify(args: argparse.Namespace) -> int:
    from guards.audit_store import verify_chain

    store = open_store(args)
    try:
        checks = verify_chain(store)
    finally:
        store.close()
    bad = [c for c in checks if c.problems]
    if args.json:
        print(json.dumps({"ok": not bad, "streams": [c.__dict__ for c in checks]}, indent=2))
    else:
        for c in checks:
            mark = "✗" if c.problems else "✓"
            print(f"{mark} stream {c.stream}: {c.events} events, {c.first_ts or '-'} .. {c.last_ts or '-'}")
            for p in c.problems:
                print(f"    {p}")
        total = sum(c.events for c in checks)
        print(f"{len(checks)} streams, {total} events: "
              + ("the chain is intact" if not bad else f"{len(bad)} stream(s) show tampering or loss"))
    return 1 if bad else 0


def rollup(args: argparse.Namespace) -> int:
    return run(_rollup, args)


def _rollup(args: argparse.Namespace) -> int:
    from guards.rollup import Retention

    env = dict(os.environ)
    if args.raw_days is not None:
        env["SPYGLASS_AUDIT_RAW_DAYS"] = args.raw_days
    if args.rollup_days is not None:
        env["SPYGLASS_AUDIT_ROLLUP_DAYS"] = args.rollup_days
    try:
        retention = Retention.from_env(env)
    except ValueError as e:
        raise CliError(str(e)) from None
    from guards.rollup import apply_retention

    store = open_store(args)
    try:
        r = apply_retention(store, retention)
    finally:
        store.close()
    kept = "forever" if retention.raw_days is None else f"{retention.raw_days:g} days"
    print(f"rolled up {r.events_rolled} events older than {r.cutoff or '(never: raw events are kept ' + kept + ')'} "
          f"into {r.rollup_rows} hourly rows; expired {r.rollups_expired} hourly rows")
    return 0


def stats(args: argparse.Namespace) -> int:
    return run(_stats, args)


def _stats(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        n = store.count()
        size = store.size_bytes()
        first, last = store.time_range()
        streams = store.streams()
        rollups = int(store.fetchall("SELECT COUNT(*) FROM audit_rollups")[0][0])
        rolled = int(store.fetchall("SELECT COALESCE(SUM(calls), 0) FROM audit_rollups")[0][0])
        d = {"location": store.location, "backend": store.label, "events": n, "streams": len(streams),
             "rollup_rows": rollups, "rolled_up_calls": rolled, "bytes": size,
             "bytes_per_event": round(size / n) if n else None, "first": first, "last": last}
    finally:
        store.close()
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        for k, v in d.items():
            print(f"{k:<16} {v if v is not None else '-'}")
    return 0
