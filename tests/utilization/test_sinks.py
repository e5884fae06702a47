"""Choosing where the audit log and limits live, background retention, and store-exact events."""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import pytest

from guards.audit import FanoutSink
from guards.audit_sqlite import SQLiteSink
from guards.audit_store import EventQuery, SQLiteStore, verify_chain
from guards.limits import MemoryLimitStore
from guards.rollup import Retention
from guards.sinks import Maintenance, open_limits, open_reader, open_sink, resolve_audit_url, start_maintenance
from tests.utilization.helpers import ev

QUIET = {"SPYGLASS_AUDIT_MAINTENANCE": "off"}


@pytest.mark.parametrize(
    ("url", "env", "expected"),
    [
        (None, {}, "sqlite:///{state}/audit.db"),
        (None, {"SPYGLASS_AUDIT_URL": "/data/a.db"}, "sqlite:////data/a.db"),
        ("/data/b.db", {"SPYGLASS_AUDIT_URL": "/data/a.db"}, "sqlite:////data/b.db"),
        ("sqlite:////data/c.db", {}, "sqlite:////data/c.db"),
        ("postgresql://spy@db:5432/audit?schema=team_a", {}, "postgresql://spy@db:5432/audit?schema=team_a"),
    ],
)
def test_the_audit_url_resolves_flag_then_environment_then_state_dir(tmp_path: Path, url, env, expected) -> None:
    assert resolve_audit_url(url, tmp_path, env) == expected.format(state=tmp_path.resolve())


def test_an_unknown_scheme_is_refused_with_the_forms_accepted(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sqlite:///path or postgresql://"):
        resolve_audit_url("mysql://db/audit", tmp_path, {})


def test_the_default_sink_is_sqlite_in_the_state_dir_and_the_reader_finds_it(tmp_path: Path) -> None:
    sink = open_sink(None, tmp_path, env=QUIET)
    assert isinstance(sink, SQLiteSink)
    sink.emit(ev(0))
    sink.close()
    store = open_reader(None, tmp_path, env={})
    assert store.label == "sqlite" and store.count() == 1 and (tmp_path / "audit.db").exists()


def test_an_otlp_endpoint_adds_spans_when_the_exporter_is_installed(tmp_path: Path, caplog) -> None:
    env = {**QUIET, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    with caplog.at_level(logging.WARNING, logger="spyglass.audit"):
        sink = open_sink(None, tmp_path, env=env)
    try:
        has_exporter = importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is not None
    except ModuleNotFoundError:
        has_exporter = False
    if not has_exporter:
        assert isinstance(sink, SQLiteSink) and "pip install 'spyglass-mcp[otel]'" in caplog.text
    else:
        assert isinstance(sink, FanoutSink) and isinstance(sink.sinks[0], SQLiteSink)
    sink.close()


def test_limits_are_local_without_redis_and_shared_with_it() -> None:
    assert isinstance(open_limits(None, env={}), MemoryLimitStore)
    pytest.importorskip("redis")
    from guards.limits_redis import RedisLimitStore

    store = open_limits(None, env={"SPYGLASS_REDIS_URL": "redis://127.0.0.1:6379/0?prefix=t:"})
    assert isinstance(store, RedisLimitStore) and store.prefix == "t:"


def test_background_retention_rolls_old_events_up(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    sink = SQLiteSink(path)
    sink.emit(ev(0))  # 2026-11-20: older than a day by now
    sink.close()
    m = Maintenance(f"sqlite:///{path}", tmp_path, Retention(raw_days=1, rollup_days=None), first_delay_s=0.01)
    m.start()
    deadline = time.monotonic() + 30
    while m.runs == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    m.stop()
    store = SQLiteStore(path)
    assert m.runs >= 1 and store.count() == 0
    assert store.fetchall("SELECT SUM(calls) FROM audit_rollups") == [(1,)]


def test_retention_can_be_switched_off_and_a_bad_setting_is_an_error(tmp_path: Path) -> None:
    assert start_maintenance("sqlite:///x.db", tmp_path, {"SPYGLASS_AUDIT_MAINTENANCE": "off"}) is None
    never = {"SPYGLASS_AUDIT_RAW_DAYS": "forever", "SPYGLASS_AUDIT_ROLLUP_DAYS": "forever"}
    assert start_maintenance("sqlite:///x.db", tmp_path, never) is None
    with pytest.raises(ValueError, match="SPYGLASS_AUDIT_ROLLUP_DAYS"):
        start_maintenance("sqlite:///x.db", tmp_path, {"SPYGLASS_AUDIT_ROLLUP_DAYS": "-3"})


def test_text_with_a_nul_is_stored_replaced_and_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    sink = SQLiteSink(path)
    sink.emit(ev(0, message="upstream said \x00 oops"))
    sink.close()
    store = SQLiteStore(path)
    (e,) = store.query(EventQuery())
    assert e.message == "upstream said \ufffd oops"
    assert all(not c.problems for c in verify_chain(store))
