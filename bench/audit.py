"""Audit bench: ingest events/s into SQLite and PostgreSQL, bytes per event, rollup, and report time.

    .venv/bin/python -m bench.audit            # 200k ingest, 1M-event report (about a minute or two)
    .venv/bin/python -m bench.audit --quick    # 20k ingest, 100k-event report

PostgreSQL is measured when ``SPYGLASS_BENCH_POSTGRES_URL`` or ``SPYGLASS_TEST_POSTGRES_URL`` is set
(a throw-away schema, dropped afterwards). Targets: >= 20k events/s into SQLite, report of 1M
events < 10 s.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from guards.audit import AuditEvent

PRINCIPALS = [("alice", "token"), ("bob", "token"), ("ci-bot", "token"), ("oncall-agent", "token"),
              ("carol", "os"), ("dave", "os"), ("review-bot", "token"), ("eve", "os")]
CLIENTS = [("claude-code", "2.1.0"), ("codex", "0.50.0"), ("cursor", "1.7")]
TOOLS = [
    ("datadog_search_logs", "datadog", "read", "datadog"),
    ("datadog_query_metrics", "datadog", "read", "datadog"),
    ("datadog_aggregate_logs", "datadog", "read", "datadog"),
    ("grafana_query_loki", "grafana", "read", "grafana"),
    ("grafana_query_prometheus", "grafana", "read", "grafana"),
    ("slack_search_messages", "slack", "read", "slack"),
    ("linear_get_issue", "linear", "read", "linear"),
    ("drive_search_files", "drive", "read", "drive"),
    ("statsig_get_gate", "statsig", "read", "statsig"),
    ("deploy_plan", "deploy_write", "write", "argocd"),
    ("deploy_apply", "deploy_write", "write", "argocd"),
]
# (weight, outcome, rule_id, status, empty, message)
OUTCOMES = [
    (800, "ok", "defaults.read", None, False, ""),
    (40, "ok", "defaults.read", None, True, ""),
    (25, "denied", "weekend-freeze", None, False, "Change freeze, Friday 16:00 to Monday 08:00 Berlin time"),
    (10, "denied", "toolsets.enabled", None, False, "toolset 'linear' is not enabled by the policy"),
    (20, "missing_access", "defaults.read", 403, False, "{upstream} answered 403: Forbidden"),
    (8, "missing_access", "defaults.read", None, False, "{upstream} credentials are not set"),
    (20, "not_found", "defaults.read", 404, False, "{upstream} answered 404: not found"),
    (15, "upstream_error", "defaults.read", 502, False, "{upstream} answered 502: Bad Gateway"),
    (8, "rate_limited", "defaults.read", 429, False, "{upstream} answered 429; retry after 30s"),
    (7, "rate_limited", "per-principal-reads", None, False, "limit 'per-principal-reads' allows 200 per 1h"),
    (10, "timeout", "defaults.read", None, False, "{tool} did not finish within 60s"),
    (20, "invalid_args", "", None, False, "from: cannot read 'yesterday-ish'"),
    (5, "awaiting_approval", "prod-deploy-needs-canary", None, False, "waiting for approval by @sre-lead"),
]


def synthetic_events(n: int, start: datetime, *, seed: int = 7, span: timedelta | None = None) -> Iterator[AuditEvent]:
    """``n`` plausible events in time order from ``start`` over ``span`` (default: one event per 0.5 s)."""
    rnd = random.Random(seed)
    weights = [o[0] for o in OUTCOMES]
    step = (span.total_seconds() / max(n, 1)) if span else 0.5
    run_id, run_left, principal, client = "", 0, PRINCIPALS[0], CLIENTS[0]
    t0 = start.timestamp()
    id_prefix = f"{rnd.getrandbits(48):012x}"  # like guards.audit.new_event_id: a prefix and a counter
    for i in range(n):
        if run_left <= 0:
            run_id, run_left = uuid.UUID(int=rnd.getrandbits(128)).hex[:12], rnd.randint(5, 200)
            principal, client = rnd.choice(PRINCIPALS), rnd.choice(CLIENTS)
        run_left -= 1
        tool, toolset, access, upstream = rnd.choice(TOOLS)
        _, outcome, rule, status, empty, message = rnd.choices(OUTCOMES, weights)[0]
        ts = datetime.fromtimestamp(t0 + i * step, UTC)
        rl_limit = rl_remaining = None
        if upstream == "datadog" and outcome in ("ok", "rate_limited"):
            rl_limit = 300
            phase = (i % 7200) / 7200
            rl_remaining = max(0, int(300 * (0.9 - 0.85 * abs(1 - 2 * phase))) - rnd.randint(0, 20))
        decision = "deny" if outcome in ("denied", "invalid_args") else "allow"
        yield AuditEvent(
            id=f"{id_prefix}{i:08x}",
            ts=ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            duration_ms=round(rnd.lognormvariate(5.0, 0.8), 3),
            run_id=run_id,
            principal=principal[0],
            principal_kind=principal[1],
            client=client[0],
            client_version=client[1],
            server="spyglass",
            tool=tool,
            toolset=toolset,
            access=access,
            args='{"from":"now-1h","query":"service:checkout status:error","limit":50}',
            args_digest=f"{rnd.getrandbits(128):032x}",
            decision=decision,
            rule_id=rule,
            outcome=outcome,
            message=message.format(upstream=upstream, tool=tool),
            upstream=upstream,
            upstream_status=status if status else (200 if outcome == "ok" else None),
            upstream_calls=0 if decision == "deny" else 1,
            response_bytes=rnd.randint(2000, 60000) if outcome == "ok" else 0,
            est_tokens=rnd.randint(200, 3000) if outcome == "ok" and not empty else 12,
            empty=empty,
            ratelimit_limit=rl_limit,
            ratelimit_remaining=rl_remaining,
        )


def _pg_url() -> str | None:
    return os.environ.get("SPYGLASS_BENCH_POSTGRES_URL") or os.environ.get("SPYGLASS_TEST_POSTGRES_URL") or None


def _fill_sqlite(path: Path, n: int, start: datetime, span: timedelta) -> float:
    """Stream ``n`` events through a SQLite sink (bounded queue); seconds taken."""
    from guards.audit_sqlite import SQLiteSink

    sink = SQLiteSink(path)
    t = time.perf_counter()
    for i, e in enumerate(synthetic_events(n, start, span=span, seed=11)):
        sink.emit(e)
        if i % 20000 == 0:
            while sink._queue.qsize() > 100_000:
                time.sleep(0.01)
    sink.close()
    return time.perf_counter() - t


def _ingest(sink: object, events: list[AuditEvent]) -> float:
    t = time.perf_counter()
    for e in events:
        sink.emit(e)  # type: ignore[attr-defined]
    sink.close()  # type: ignore[attr-defined]
    return time.perf_counter() - t


def _durable_ms(sink: object, n: int = 200) -> float:
    import statistics

    import anyio

    async def go() -> float:
        times = []
        for e in synthetic_events(n, datetime.now(UTC), seed=3):
            t = time.perf_counter()
            await sink.emit_durable(e)  # type: ignore[attr-defined]
            times.append((time.perf_counter() - t) * 1000)
        return statistics.median(times)

    ms = anyio.run(go)
    sink.close()  # type: ignore[attr-defined]
    return ms


def main() -> None:
    from guards.audit_sqlite import SQLiteSink
    from guards.audit_store import SQLiteStore, report_from_store
    from guards.rollup import rollup

    p = argparse.ArgumentParser(prog="python -m bench.audit")
    p.add_argument("--quick", action="store_true", help="20k ingest, 100k-event report")
    p.add_argument("--ingest", type=int, help="events per ingest run (default 200k; quick 20k)")
    p.add_argument("--report-events", type=int, help="events in the report log (default 1M; quick 100k)")
    args, _ = p.parse_known_args()
    quick = args.quick or os.environ.get("SPYGLASS_BENCH_QUICK") == "1"
    n_ingest = args.ingest or (20_000 if quick else 200_000)
    n_report = args.report_events or (100_000 if quick else 1_000_000)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    span = timedelta(days=7)
    rows: list[tuple[str, str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="spyglass-bench-"))
    try:
        events = list(synthetic_events(n_ingest, start, span=span))
        secs = _ingest(SQLiteSink(tmp / "ingest.db"), events)
        rate = n_ingest / secs
        rows.append((f"ingest SQLite ({n_ingest:,} events, batched)", f"{rate:,.0f} events/s",
                     "ok (>= 20k/s)" if rate >= 20_000 else "BELOW 20k/s"))
        store = SQLiteStore(tmp / "ingest.db")
        raw = store.size_bytes()
        rows.append(("bytes per event, SQLite (table + indexes)", f"{raw / n_ingest:,.0f} B", ""))
        rows.append(("durable emit (write call) commit, SQLite, median",
                     f"{_durable_ms(SQLiteSink(tmp / 'durable.db')):.2f} ms", ""))
        t = time.perf_counter()
        rolled = rollup(store, start + span + timedelta(hours=1))
        secs = time.perf_counter() - t
        store.execute("VACUUM")
        after = store.size_bytes()
        rows.append((f"rollup of {rolled.events_rolled:,} events into hourly rows",
                     f"{rolled.events_rolled / secs:,.0f} events/s",
                     f"{raw / 1e6:.1f} MB -> {after / 1e6:.1f} MB ({after / n_ingest:,.0f} B per event rolled)"))
        store.close()

        url = _pg_url()
        if url:
            from guards.audit_postgres import PostgresSink, PostgresStore

            schema = f"bench_{uuid.uuid4().hex[:8]}"
            pg_url = f"{url}{'&' if '?' in url else '?'}schema={schema}"
            try:
                secs = _ingest(PostgresSink(pg_url), events)
                pg = PostgresStore(pg_url)
                rows.append((f"ingest PostgreSQL ({n_ingest:,} events, COPY batches)",
                             f"{n_ingest / secs:,.0f} events/s", ""))
                rows.append(("bytes per event, PostgreSQL (table + indexes)", f"{pg.size_bytes() / n_ingest:,.0f} B",
                             ""))
                t = time.perf_counter()
                report_from_store(pg, start, start + span)
                rows.append((f"report, PostgreSQL ({n_ingest:,} events)", f"{time.perf_counter() - t:.2f} s", ""))
                rows.append(("durable emit (write call) commit, PostgreSQL, median",
                             f"{_durable_ms(PostgresSink(pg_url)):.2f} ms", ""))
            finally:
                import psycopg

                with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        else:
            rows.append(("PostgreSQL", "skipped", "set SPYGLASS_TEST_POSTGRES_URL"))
        del events

        secs = _fill_sqlite(tmp / "report.db", n_report, start, span)
        rows.append((f"generate + ingest the {n_report:,}-event log", f"{secs:.1f} s",
                     f"{n_report / secs:,.0f} events/s incl. generation"))
        store = SQLiteStore(tmp / "report.db")
        t = time.perf_counter()
        data = report_from_store(store, start, start + span)
        secs = time.perf_counter() - t
        assert data["totals"]["calls"] == n_report
        target = "ok (< 10 s)" if secs < 10 else "OVER 10 s"
        rows.append((f"report, SQLite ({n_report:,} events, 7 days)", f"{secs:.2f} s",
                     target if n_report >= 1_000_000 else f"{target} at {n_report:,}"))
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'audit':<{width}}  {'measured':>{vwidth}}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>{vwidth}}  {note}")


if __name__ == "__main__":
    main()
