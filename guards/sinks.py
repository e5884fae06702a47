"""Opening the audit sink a deployment asked for. Interim: SQLite only (PostgreSQL lands with issue 6)."""

from __future__ import annotations

from pathlib import Path

from guards.audit import AuditSink
from guards.audit_sqlite import SQLiteSink


def open_sink(url: str | None, state_dir: Path) -> AuditSink:
    if not url:
        return SQLiteSink(Path(state_dir) / "audit.db")
    if url.startswith("sqlite:///"):
        return SQLiteSink(Path(url.removeprefix("sqlite:///")))
    if "://" not in url:
        return SQLiteSink(Path(url))
    raise ValueError(f"unsupported audit URL {url!r}")
