"""Typed views of Datadog responses: only the fields tools render. Parsing is pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


def _dt(value: Any) -> datetime | None:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class LogLine:
    ts: datetime | None
    status: str
    service: str
    host: str
    message: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class LogsPage:
    lines: list[LogLine]
    next_cursor: str | None


def parse_logs_page(body: dict[str, Any]) -> LogsPage:
    lines = []
    for item in body.get("data") or []:
        a = item.get("attributes") or {}
        lines.append(
            LogLine(
                ts=_dt(a.get("timestamp")),
                status=str(a.get("status") or ""),
                service=str(a.get("service") or ""),
                host=str(a.get("host") or ""),
                message=str(a.get("message") or ""),
                attributes=a.get("attributes") or {},
            )
        )
    after = ((body.get("meta") or {}).get("page") or {}).get("after")
    return LogsPage(lines, after or None)


@dataclass(frozen=True)
class Bucket:
    by: dict[str, Any]
    value: float | None


def parse_aggregate(body: dict[str, Any]) -> list[Bucket]:
    out = []
    for b in ((body.get("data") or {}).get("buckets")) or []:
        computes = b.get("computes") or {}
        v = computes.get("c0")
        out.append(Bucket(by=b.get("by") or {}, value=float(v) if isinstance(v, int | float) else None))
    return out


@dataclass(frozen=True)
class Series:
    metric: str
    scope: str
    points: list[tuple[float, float]]  # (epoch seconds, value)
    unit: str


def parse_series(body: dict[str, Any]) -> list[Series]:
    if body.get("status") == "error":
        from servers._core.errors import UpstreamError

        raise UpstreamError(f"datadog metrics query failed: {body.get('error') or 'unknown error'}",
                            hint="check the metric query syntax, e.g. avg:trace.http.request.errors{service:checkout}")
    out = []
    for s in body.get("series") or []:
        pts = [(p[0] / 1000, p[1]) for p in s.get("pointlist") or [] if len(p) == 2 and p[1] is not None]
        units = s.get("unit") or []
        unit = ""
        if units and isinstance(units[0], dict):
            unit = units[0].get("short_name") or units[0].get("name") or ""
        out.append(Series(str(s.get("expression") or s.get("metric") or ""), str(s.get("scope") or ""), pts, unit))
    return out
