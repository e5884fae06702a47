"""SQLite sink: batched off the request path, durable for writes, flushed on close, hash-chained."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from guards.audit import AuditEvent, PendingEvent, new_event_id, utc_now_iso
from guards.audit_sqlite import SQLiteSink

pytestmark = pytest.mark.anyio


def event(tool: str = "t") -> AuditEvent:
    return AuditEvent(id=new_event_id(), ts=utc_now_iso(), duration_ms=1.0, run_id="r", principal="p",
                      principal_kind="os", client="c", client_version="1", server="s", tool=tool, toolset="ts",
                      access="read", args="{}", args_digest="d", decision="allow", rule_id="defaults.read",
                      outcome="ok")


def rows(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT tool, prev_hash, hash FROM audit_events ORDER BY rowid").fetchall()


async def test_queued_events_are_all_written_by_close(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "a.db")
    for i in range(2500):
        sink.emit(event(f"t{i}"))
    sink.close()
    assert len(rows(tmp_path / "a.db")) == 2500


async def test_a_durable_emit_is_committed_when_it_returns(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "a.db")
    await sink.emit_durable(event("write"))
    assert [r[0] for r in rows(tmp_path / "a.db")] == ["write"]
    sink.close()


async def test_events_form_a_hash_chain_per_stream(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "a.db")
    for i in range(5):
        sink.emit(event(f"t{i}"))
    sink.close()
    chain = rows(tmp_path / "a.db")
    assert chain[0][1] == "" and all(chain[i][1] == chain[i - 1][2] for i in range(1, 5))


async def test_a_sink_that_cannot_write_turns_unhealthy_and_refuses_durable_emits(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "a.db")
    sink._conn.execute("DROP TABLE audit_events")  # simulate a broken store
    with pytest.raises(Exception, match="did not commit"):
        await sink.emit_durable(event())
    assert not sink.healthy()
    sink.close()


async def test_flush_returns_once_everything_emitted_before_it_is_committed(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "a.db", flush_interval_s=5.0)  # left alone, the batch would wait 5 s
    for i in range(3):
        sink.emit(event(f"t{i}"))
    assert sink.flush(timeout_s=2.0)
    assert [r[0] for r in rows(tmp_path / "a.db")] == ["t0", "t1", "t2"]
    assert sink.flush(timeout_s=2.0)  # a flush with nothing queued writes nothing and breaks no chain
    sink.emit(event("t3"))
    sink.close()
    chain = rows(tmp_path / "a.db")
    assert len(chain) == 4 and all(chain[i][1] == chain[i - 1][2] for i in range(1, 4))
    assert not sink.flush()  # closed


async def test_a_guarded_call_is_built_by_the_writer_with_its_secrets_redacted(tmp_path: Path) -> None:
    """The request path hands over a pending event; the writer serialises, digests and redacts it."""
    from guards.enforce import Guard, ToolMeta, ToolOutput
    from guards.limits import MemoryLimitStore
    from guards.policy import parse_policy
    from guards.principal import Principal
    from guards.redact import Redactor

    canary = "AKIAZZZZZZZZZZZZZZZZ"
    sink = SQLiteSink(tmp_path / "a.db")
    guard = Guard(parse_policy({"toolsets": {"enabled": ["datadog"]}}), sink, MemoryLimitStore(), Redactor())

    async def execute(args: Any, _d: Any, _r: Any) -> ToolOutput:
        return ToolOutput(f"echo {args['query']}")

    result = await guard.run(ToolMeta("t", "datadog", "read", "datadog"), {"query": f"key {canary}"},
                             Principal("alice", "os", "claude-code", "2.1", "run-1"), dict, execute)
    assert canary not in result.text
    assert sink.flush(timeout_s=2.0)
    with sqlite3.connect(tmp_path / "a.db") as conn:
        stored = conn.execute("SELECT args, args_digest, principal, outcome, ts, id FROM audit_events").fetchall()
    sink.close()
    [(args, digest, principal, outcome, ts, event_id)] = stored
    assert canary not in args and "REDACTED" in args and len(digest) == 32
    assert (principal, outcome) == ("alice", "ok") and ts.endswith("Z") and event_id


async def test_an_event_that_cannot_be_built_is_stored_as_an_error_and_the_writer_keeps_going(
    tmp_path: Path,
) -> None:
    from guards.audit import PendingEvent

    class Broken(PendingEvent):
        __slots__ = ()

        def build(self) -> AuditEvent:
            raise ValueError("Circular reference detected")

    sink = SQLiteSink(tmp_path / "a.db")
    sink.emit(event("before"))
    sink.emit(Broken())
    sink.emit(event("after"))
    sink.close()
    with sqlite3.connect(tmp_path / "a.db") as conn:
        stored = conn.execute("SELECT tool, outcome, message FROM audit_events ORDER BY rowid").fetchall()
    assert [s[0] for s in stored] == ["before", "(unknown)", "after"]
    assert stored[1][1] == "error" and "could not be built: ValueError" in stored[1][2]


@pytest.mark.parametrize("count", [1, 2, 3, 7, 64, 991, 1000, 2049])
def test_multi_row_inserts_store_every_row_once_in_order(tmp_path: Path, count: int) -> None:
    from guards.audit import EVENT_FIELDS
    from guards.audit_sqlite import connect, insert_rows

    conn = connect(tmp_path / "a.db")
    batch = [tuple(getattr(event(f"t{i}"), f) for f in EVENT_FIELDS) for i in range(count)]
    with conn:
        insert_rows(conn, batch)
    tools = [r[0] for r in conn.execute("SELECT tool FROM audit_events ORDER BY rowid")]
    conn.close()
    assert tools == [f"t{i}" for i in range(count)]


BUILT_IN: list[str] = []  # threads that built a Pending


class Pending(PendingEvent):
    """A pending event that notes the thread that built it."""

    __slots__ = ("tool",)

    def __init__(self, tool: str) -> None:
        self.tool = tool

    def build(self) -> AuditEvent:
        BUILT_IN.append(threading.current_thread().name)
        return event(self.tool)


async def test_a_fanout_over_the_sqlite_sink_builds_on_the_writer_and_hands_built_events_to_the_others(
    tmp_path: Path,
) -> None:
    from guards.audit import FanoutSink, MemorySink

    BUILT_IN.clear()
    primary, spans = SQLiteSink(tmp_path / "a.db"), MemorySink()
    fanout = FanoutSink(primary, spans)
    fanout.emit(Pending("read"))
    assert BUILT_IN == []  # nothing built on the request path
    await fanout.emit_durable(event("write"))
    fanout.close()
    assert BUILT_IN == ["spyglass-audit"]
    assert [e.tool for e in spans.events] == [t for t, _, _ in rows(tmp_path / "a.db")] == ["read", "write"]
    assert spans.events[-1].hash == rows(tmp_path / "a.db")[-1][2]  # the sealed event, once each


async def test_a_failing_follower_is_logged_once_and_the_audit_log_keeps_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from guards.audit import FanoutSink

    class Broken:
        def emit(self, item: Any) -> None:
            raise RuntimeError("collector gone")

        def close(self) -> None:
            pass

    fanout = FanoutSink(SQLiteSink(tmp_path / "a.db"), Broken())  # type: ignore[arg-type]
    for _ in range(3):
        fanout.emit(event())
        assert fanout.sinks[0].flush()  # type: ignore[attr-defined]
    fanout.close()
    assert len(rows(tmp_path / "a.db")) == 3
    assert [r.getMessage() for r in caplog.records if "failed to take events" in r.getMessage()] == [
        "audit: Broken failed to take events"]
