"""Reading the SQLite audit log: queries, chain verification (tamper evidence), retention rollups."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.audit import synthetic_events
from guards.audit_sqlite import SQLiteSink
from guards.audit_store import EventQuery, SQLiteStore, report_from_store, verify_chain
from guards.rollup import Retention, apply_retention, rollup
from tests.utilization.helpers import T0, ev, ts


def write(path: Path, events) -> None:
    sink = SQLiteSink(path)
    for e in events:
        sink.emit(e)
    sink.close()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    write(path, [ev(0), ev(1, tool="grafana_query_loki", outcome="timeout"),
                 ev(2, principal="bob", outcome="denied", rule_id="freeze"), ev(3, principal="bob")])
    return path


def test_queries_filter_by_tool_outcome_principal_and_time(log: Path) -> None:
    store = SQLiteStore(log)
    assert [e.tool for e in store.query(EventQuery(outcome="timeout"))] == ["grafana_query_loki"]
    assert [e.outcome for e in store.query(EventQuery(principal="bob"))] == ["denied", "ok"]
    assert len(store.query(EventQuery(tool="datadog_*"))) == 3
    assert len(store.query(EventQuery(since=ts(2)))) == 2
    assert [e.ts for e in store.query(EventQuery(newest_first=True, limit=1))] == [ts(3)]


def test_an_event_comes_back_exactly_as_written_by_id_or_unique_prefix(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    written = [ev(0, id="feedface0001", empty=True, upstream_status=403, ratelimit_limit=300),
               ev(1, id="cafe0001"), ev(2, id="cafe0002")]
    write(path, written)
    store = SQLiteStore(path)
    assert store.get("feedface0001") == written[0]  # every field, the chain fields the sink set included
    assert store.get("feedface") == written[0]
    with pytest.raises(LookupError, match="ambiguous"):
        store.get("cafe")
    assert store.get("nope-nope") is None


def test_tail_returns_the_newest_and_after_follows_new_writes(log: Path) -> None:
    store = SQLiteStore(log)
    events, last = store.tail(2)
    assert [e.ts for e in events] == [ts(2), ts(3)]
    write(log, [ev(10, tool="slack_search_messages")])
    new, last2 = store.after(last)
    assert [e.tool for e in new] == ["slack_search_messages"] and last2 > last
    assert store.after(last2)[0] == []


def test_an_untouched_log_verifies(log: Path) -> None:
    (check,) = verify_chain(SQLiteStore(log))
    assert check.events == 4 and check.problems == []


def tamper(path: Path, sql: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(sql)


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("UPDATE audit_events SET outcome = 'ok' WHERE outcome = 'denied'", "was changed after it was written"),
        ("DELETE FROM audit_events WHERE outcome = 'timeout'", "does not follow the one before it"),
        ("DELETE FROM audit_events WHERE rowid = (SELECT MAX(rowid) FROM audit_events)", "newest event(s)"),
        ("DELETE FROM audit_events WHERE rowid = (SELECT MIN(rowid) FROM audit_events)", "does not follow"),
        ("DELETE FROM audit_streams", "head record is missing"),
    ],
)
def test_verify_detects_a_changed_or_deleted_event(log: Path, sql: str, problem: str) -> None:
    tamper(log, sql)
    (check,) = verify_chain(SQLiteStore(log))
    assert any(problem in p for p in check.problems), check.problems


def test_a_changed_event_with_a_recomputed_hash_still_breaks_the_chain(log: Path) -> None:
    store = SQLiteStore(log)
    second = store.query(EventQuery())[1]
    second.outcome = "ok"
    forged = second.chain_hash(second.prev_hash)
    tamper(log, f"UPDATE audit_events SET outcome = 'ok', hash = '{forged}' WHERE id = '{second.id}'")
    (check,) = verify_chain(SQLiteStore(log))
    assert any("does not follow" in p for p in check.problems)


def test_each_sink_is_its_own_stream_and_verifies_on_its_own(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    write(path, [ev(0), ev(1)])
    write(path, [ev(2)])
    checks = verify_chain(SQLiteStore(path))
    assert sorted(c.events for c in checks) == [1, 2] and all(not c.problems for c in checks)


def test_rolling_up_keeps_the_report_totals_and_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    start = datetime(2026, 11, 1, tzinfo=UTC)
    write(path, synthetic_events(6000, start, span=timedelta(hours=48)))
    store = SQLiteStore(path)
    window = (start, start + timedelta(hours=48))
    before = report_from_store(store, *window)
    result = rollup(store, start + timedelta(hours=30), chunk=1000)  # several chunks
    after = report_from_store(store, *window)
    assert result.events_rolled == 3750 and store.count() == 6000 - 3750
    for key in ("calls", "ok", "tokens_delivered", "non_success"):
        assert after["totals"][key] == before["totals"][key]
    assert after["timeline"]["series"] == before["timeline"]["series"]
    assert [c["calls"] for c in after["classes"]] == [c["calls"] for c in before["classes"]]
    assert after["source"]["rolled_up_calls"] == 3750
    assert abs(after["totals"]["p95_ms"] - before["totals"]["p95_ms"]) / before["totals"]["p95_ms"] < 0.25
    (check,) = verify_chain(store)
    assert check.problems == [] and check.events == 2250


def test_a_second_rollup_merges_into_existing_hours(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    write(path, [ev(0), ev(10)])
    store = SQLiteStore(path)
    rollup(store, T0 + timedelta(hours=2))
    write(path, [ev(20)])  # a late event for an hour already rolled up
    rollup(store, T0 + timedelta(hours=2))
    rows = store.fetchall("SELECT hour, calls FROM audit_rollups")
    assert rows == [("2026-11-20T09", 3)]
    assert all(not c.problems for c in verify_chain(store))


def test_retention_expires_old_rollups_and_reads_its_settings_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    write(path, [ev(0), ev(3600 * 24 * 5)])
    store = SQLiteStore(path)
    now = T0 + timedelta(days=10)
    r = apply_retention(store, Retention.from_env({"SPYGLASS_AUDIT_RAW_DAYS": "1", "SPYGLASS_AUDIT_ROLLUP_DAYS": "7"}),
                        now=now)
    assert (r.events_rolled, r.rollups_expired) == (2, 1)
    assert store.fetchall("SELECT hour FROM audit_rollups") == [("2026-11-25T09",)]
    assert Retention.from_env({"SPYGLASS_AUDIT_RAW_DAYS": "forever"}).raw_days is None
    assert Retention.from_env({}) == Retention(30.0, 400.0)
    with pytest.raises(ValueError, match="SPYGLASS_AUDIT_RAW_DAYS='soon'"):
        Retention.from_env({"SPYGLASS_AUDIT_RAW_DAYS": "soon"})


def test_a_missing_log_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no audit log at"):
        SQLiteStore(tmp_path / "none.db")
