"""PostgreSQL sink and store: batched COPY, durable writes, reconnects, and the same reading code as SQLite."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.audit import synthetic_events
from guards.audit_sqlite import SQLiteSink
from guards.audit_store import EventQuery, SQLiteStore, report_from_store, verify_chain
from guards.rollup import rollup
from guards.sinks import open_reader, open_sink
from tests.conftest import env_url
from tests.utilization.helpers import ev

pytestmark = [pytest.mark.needs_postgres, pytest.mark.anyio]

BASE = env_url("SPYGLASS_TEST_POSTGRES_URL")
if BASE is None:
    pytest.skip("SPYGLASS_TEST_POSTGRES_URL is not set (CI sets postgresql://postgres@127.0.0.1:5432/test)",
                allow_module_level=True)
psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (the postgres extra)")


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    assert BASE is not None
    schema = f"t_{uuid.uuid4().hex[:10]}"
    yield with_schema(BASE, schema)
    with psycopg.connect(BASE, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


START = datetime(2026, 11, 1, tzinfo=UTC)


def test_events_arrive_in_postgresql_hash_chained_and_report_like_sqlite(pg_url: str, tmp_path: Path) -> None:
    events = list(synthetic_events(3000, START, span=timedelta(hours=6)))
    pg = open_sink(pg_url, tmp_path)
    lite = SQLiteSink(tmp_path / "a.db")
    for e in events:
        pg.emit(e)
    pg.close()
    for e in synthetic_events(3000, START, span=timedelta(hours=6)):
        lite.emit(e)
    lite.close()
    store = open_reader(pg_url, tmp_path)
    assert store.label == "postgresql" and store.count() == 3000
    (check,) = verify_chain(store)
    assert check.problems == [] and check.events == 3000
    window = (START, START + timedelta(hours=6))
    from_pg = report_from_store(store, *window)
    from_sqlite = report_from_store(SQLiteStore(tmp_path / "a.db"), *window)
    assert from_pg == from_sqlite
    first = store.query(EventQuery(limit=1))[0]
    assert store.get(first.id) == first


async def test_a_durable_emit_is_visible_as_soon_as_it_returns(pg_url: str, tmp_path: Path) -> None:
    sink = open_sink(pg_url, tmp_path)
    store = open_reader(pg_url, tmp_path)
    await sink.emit_durable(ev(0, tool="deploy_apply"))
    assert [e.tool for e in store.query(EventQuery())] == ["deploy_apply"]
    sink.close()


async def test_flush_returns_once_the_queued_events_are_in_postgresql(pg_url: str, tmp_path: Path) -> None:
    sink = open_sink(pg_url, tmp_path)
    for i in range(20):
        sink.emit(ev(i))
    assert sink.flush(timeout_s=5.0)  # type: ignore[attr-defined]
    assert open_reader(pg_url, tmp_path).count() == 20
    sink.close()


async def test_a_lost_connection_is_retried_and_nothing_queued_is_lost(pg_url: str, tmp_path: Path) -> None:
    sink = open_sink(pg_url, tmp_path)
    await sink.emit_durable(ev(0))
    with psycopg.connect(pg_url.split("?")[0], autocommit=True) as admin:
        pid = sink._conn.info.backend_pid  # type: ignore[attr-defined]
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    for i in range(1, 50):
        sink.emit(ev(i))
    sink.close()
    store = open_reader(pg_url, tmp_path)
    assert store.count() == 50
    assert all(not c.problems for c in verify_chain(store))


def test_replicas_starting_together_migrate_once_without_racing(pg_url: str, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    sinks = []

    def start() -> None:
        try:
            sinks.append(open_sink(pg_url, tmp_path))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(sinks) == 3
    for i, s in enumerate(sinks):
        s.emit(ev(i, principal=f"replica-{i}"))
        s.close()
    checks = verify_chain(open_reader(pg_url, tmp_path))
    assert len(checks) == 3 and all(c.events == 1 and not c.problems for c in checks)


def test_rollups_and_tamper_evidence_work_the_same_in_postgresql(pg_url: str, tmp_path: Path) -> None:
    sink = open_sink(pg_url, tmp_path)
    for e in synthetic_events(2000, START, span=timedelta(hours=10)):
        sink.emit(e)
    sink.close()
    store = open_reader(pg_url, tmp_path)
    window = (START, START + timedelta(hours=10))
    before = report_from_store(store, *window)
    result = rollup(store, START + timedelta(hours=5), chunk=700)
    after = report_from_store(store, *window)
    assert result.events_rolled == 1000 and store.count() == 1000
    assert after["totals"]["calls"] == before["totals"]["calls"]
    assert [c["calls"] for c in after["classes"]] == [c["calls"] for c in before["classes"]]
    assert all(not c.problems for c in verify_chain(store))
    store.execute("UPDATE audit_events SET tool = tool || 'x' WHERE seq = (SELECT MAX(seq) - 3 FROM audit_events)")
    (check,) = verify_chain(store)
    assert any("changed after it was written" in p for p in check.problems)


def test_a_database_that_is_not_there_fails_at_start_with_the_location(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"127\.0\.0\.1"):
        open_sink("postgresql://postgres@127.0.0.1:1/none", tmp_path)


def test_reading_a_schema_without_a_log_says_where_it_looked(tmp_path: Path) -> None:
    assert BASE is not None
    with pytest.raises(FileNotFoundError, match=r"no audit log in .*schema 'no_such_schema'"):
        open_reader(with_schema(BASE, "no_such_schema"), tmp_path)


async def test_a_fanout_over_postgresql_hands_each_committed_event_to_the_others_once(pg_url: str) -> None:
    from guards.audit import FanoutSink, MemorySink
    from guards.audit_postgres import PostgresSink

    spans = MemorySink()
    fanout = FanoutSink(PostgresSink(pg_url), spans)
    fanout.emit(ev(0, tool="datadog_search_logs"))
    await fanout.emit_durable(ev(1, tool="deploy_apply"))
    fanout.close()
    assert [e.tool for e in spans.events] == ["datadog_search_logs", "deploy_apply"]
    assert all(e.hash and e.stream for e in spans.events)
