"""Small builders for audit events in utilization tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from guards.audit import AuditEvent

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
_ids = itertools.count(1)


def ts(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ev(at: float = 0, tool: str = "datadog_search_logs", outcome: str = "ok", **kw: Any) -> AuditEvent:
    fields: dict[str, Any] = dict(
        id=f"ev{next(_ids):06d}",
        ts=ts(at),
        duration_ms=100.0,
        run_id="run-a",
        principal="alice",
        principal_kind="token",
        client="claude-code",
        client_version="2.1",
        server="spyglass",
        tool=tool,
        toolset=tool.split("_")[0],
        access="write" if tool.startswith("deploy_") else "read",
        args="{}",
        args_digest="d",
        decision="deny" if outcome in ("denied", "invalid_args") else "allow",
        rule_id="defaults.read",
        outcome=outcome,
        upstream=tool.split("_")[0],
        est_tokens=500 if outcome == "ok" else 10,
    )
    fields.update(kw)
    return AuditEvent(**fields)
