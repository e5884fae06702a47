"""Typed views of Datadog responses: only the fields tools render. Parsing is pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from servers._core.timeparse import parse_lenient_dt

_dt = parse_lenient_dt


@dataclass(frozen=True)
class LogLine:
    ts: datetime | None
    status: str
    service: str
    host: str
    message: str


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


def parse_series(body: dict[str, Any]) -> list[Series]:
    if body.get("status") == "error":
        from servers._core.errors import UpstreamError

        raise UpstreamError(f"datadog metrics query failed: {body.get('error') or 'unknown error'}",
                            hint="check the metric query syntax, e.g. avg:trace.http.request.errors{service:checkout}")
    out = []
    for s in body.get("series") or []:
        pts = [(p[0] / 1000, p[1]) for p in s.get("pointlist") or [] if len(p) == 2 and p[1] is not None]
        out.append(Series(str(s.get("expression") or s.get("metric") or ""), str(s.get("scope") or ""), pts))
    return out


def _str(v: Any) -> str:
    return "" if v is None else str(v)


def _services_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w.-])service:([\w.-]+)", text))


# --- APM ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    service: str
    resource: str
    start: datetime | None
    duration_ms: float
    status: str  # ok | error
    error_type: str
    error_message: str
    error_stack: str
    version: str

    @property
    def end_ms(self) -> float:
        return (self.start.timestamp() * 1000 if self.start else 0) + self.duration_ms

    @property
    def start_ms(self) -> float:
        return self.start.timestamp() * 1000 if self.start else 0


@dataclass(frozen=True)
class SpansPage:
    spans: list[Span]
    next_cursor: str | None


def parse_span(item: dict[str, Any]) -> Span:
    a = item.get("attributes") or {}
    custom = a.get("custom") or {}
    extra = a.get("attributes") or {}
    err = custom.get("error") or extra.get("error") or {}
    start, end = _dt(a.get("start_timestamp")), _dt(a.get("end_timestamp"))
    duration = custom.get("duration", extra.get("duration"))
    if isinstance(duration, int | float):
        ms = duration / 1_000_000
    elif start and end:
        ms = (end - start).total_seconds() * 1000
    else:
        ms = 0.0
    status = _str(custom.get("status") or extra.get("status") or a.get("status")) or ("error" if err else "ok")
    version = _str(custom.get("version") or extra.get("version"))
    if not version:
        version = next((t.split(":", 1)[1] for t in a.get("tags") or [] if str(t).startswith("version:")), "")
    return Span(
        trace_id=_str(a.get("trace_id")), span_id=_str(a.get("span_id") or item.get("id")),
        parent_id=_str(a.get("parent_id")), service=_str(a.get("service")), resource=_str(a.get("resource_name")),
        start=start, duration_ms=ms, status=status.lower(), error_type=_str(err.get("type")),
        error_message=_str(err.get("message")), error_stack=_str(err.get("stack")), version=version,
    )


def parse_spans_page(body: dict[str, Any]) -> SpansPage:
    spans = [parse_span(x) for x in body.get("data") or [] if isinstance(x, dict)]
    after = ((body.get("meta") or {}).get("page") or {}).get("after")
    return SpansPage(spans, after or None)


def parse_spans_aggregate(body: dict[str, Any]) -> list[Bucket]:
    out = []
    for b in body.get("data") or []:
        a = b.get("attributes") or {}
        v = (a.get("computes") or {}).get("c0")
        out.append(Bucket(by=a.get("by") or {}, value=float(v) if isinstance(v, int | float) else None))
    return out


# --- monitors ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MonitorGroup:
    name: str
    status: str
    last_triggered: datetime | None
    last_resolved: datetime | None


@dataclass(frozen=True)
class Monitor:
    id: int
    name: str
    type: str
    status: str
    query: str
    tags: list[str]
    last_triggered: datetime | None = None
    message: str = ""
    thresholds: dict[str, float] | None = None
    groups: list[MonitorGroup] | None = None
    priority: int | None = None

    @property
    def services(self) -> set[str]:
        """Services the monitor names, in its tags or its query."""
        named = {t.split(":", 1)[1] for t in self.tags if t.startswith("service:")}
        return named | _services_in(self.query)


@dataclass(frozen=True)
class MonitorPage:
    monitors: list[Monitor]
    total: int
    page_count: int


def parse_monitor_search(body: dict[str, Any]) -> MonitorPage:
    out = []
    for m in body.get("monitors") or []:
        out.append(Monitor(id=int(m.get("id") or 0), name=_str(m.get("name")), type=_str(m.get("type")),
                           status=_str(m.get("status")), query=_str(m.get("query")),
                           tags=[str(t) for t in m.get("tags") or []],
                           last_triggered=_dt(m.get("last_triggered_ts"))))
    meta = body.get("metadata") or {}
    return MonitorPage(out, int(meta.get("total_count") or len(out)), int(meta.get("page_count") or 1))


def parse_monitor(m: dict[str, Any]) -> Monitor:
    groups = []
    for name, g in sorted(((m.get("state") or {}).get("groups") or {}).items()):
        groups.append(MonitorGroup(_str(g.get("name") or name), _str(g.get("status")),
                                   _dt(g.get("last_triggered_ts")), _dt(g.get("last_resolved_ts"))))
    thresholds = {k: float(v) for k, v in ((m.get("options") or {}).get("thresholds") or {}).items()
                  if isinstance(v, int | float)}
    triggered = [g.last_triggered for g in groups if g.last_triggered]
    return Monitor(
        id=int(m.get("id") or 0), name=_str(m.get("name")), type=_str(m.get("type")),
        status=_str(m.get("overall_state")), query=_str(m.get("query")), tags=[str(t) for t in m.get("tags") or []],
        last_triggered=max(triggered) if triggered else None, message=_str(m.get("message")),
        thresholds=thresholds, groups=groups, priority=m.get("priority"),
    )


# --- incidents --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Incident:
    id: str
    public_id: int
    title: str
    severity: str
    state: str
    services: list[str]
    teams: list[str]
    commander: str  # name (handle) when the user is included, else the user id
    declared: datetime | None
    detected: datetime | None
    resolved: datetime | None
    impact_start: datetime | None
    impact_end: datetime | None
    impact_scope: str
    fields: dict[str, str]

    @property
    def ref(self) -> str:
        return f"INC-{self.public_id}" if self.public_id else self.id


@dataclass(frozen=True)
class IncidentPage:
    incidents: list[Incident]
    total: int


def _field_value(f: Any) -> list[str]:
    v = f.get("value") if isinstance(f, dict) else f
    if isinstance(v, list):
        return [str(x) for x in v if x is not None]
    return [] if v is None or v == "" else [str(v)]


def _users(included: list[Any] | None) -> dict[str, str]:
    out = {}
    for u in included or []:
        if isinstance(u, dict) and u.get("type") == "users":
            a = u.get("attributes") or {}
            name, handle = a.get("name"), a.get("handle") or a.get("email")
            out[str(u.get("id"))] = f"{name} ({handle})" if name and handle else str(name or handle or u.get("id"))
    return out


def parse_incident(data: dict[str, Any], included: list[Any] | None = None) -> Incident:
    a = data.get("attributes") or {}
    fields = a.get("fields") or {}
    cmd = (((data.get("relationships") or {}).get("commander_user") or {}).get("data")) or {}
    users = _users(included)
    other = {k: ", ".join(_field_value(v)) for k, v in sorted(fields.items())
             if k not in ("severity", "state", "services", "teams") and _field_value(v)}
    return Incident(
        id=_str(data.get("id")), public_id=int(a.get("public_id") or 0), title=_str(a.get("title")),
        severity=_str(a.get("severity") or next(iter(_field_value(fields.get("severity"))), "")),
        state=_str(a.get("state") or next(iter(_field_value(fields.get("state"))), "")),
        services=_field_value(fields.get("services")), teams=_field_value(fields.get("teams")),
        commander=users.get(_str(cmd.get("id")), _str(cmd.get("id"))),
        declared=_dt(a.get("declared") or a.get("created")), detected=_dt(a.get("detected")),
        resolved=_dt(a.get("resolved")), impact_start=_dt(a.get("customer_impact_start")),
        impact_end=_dt(a.get("customer_impact_end")), impact_scope=_str(a.get("customer_impact_scope")),
        fields=other,
    )


def parse_incident_search(body: dict[str, Any]) -> IncidentPage:
    a = (body.get("data") or {}).get("attributes") or {}
    items = [parse_incident(x.get("data") or {}, body.get("included")) for x in a.get("incidents") or []]
    return IncidentPage(items, int(a.get("total") or len(items)))


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    text: str


def parse_impacts(body: dict[str, Any]) -> list[TimelineEntry]:
    out = []
    for x in body.get("data") or []:
        a = x.get("attributes") or {}
        if (start := _dt(a.get("start_at"))) is not None:
            out.append(TimelineEntry(start, "impact start", _str(a.get("description"))))
        if (end := _dt(a.get("end_at"))) is not None:
            out.append(TimelineEntry(end, "impact end", _str(a.get("description"))))
    return out


def parse_todos(body: dict[str, Any]) -> list[TimelineEntry]:
    out = []
    for x in body.get("data") or []:
        a = x.get("attributes") or {}
        who = ", ".join(str(p) if not isinstance(p, dict) else str(p.get("handle") or p.get("name") or "")
                        for p in a.get("assignees") or [])
        text = _str(a.get("content")) + (f" (assignee {who})" if who else "")
        if (created := _dt(a.get("created"))) is not None:
            out.append(TimelineEntry(created, "todo", text))
        if (done := _dt(a.get("completed"))) is not None:
            out.append(TimelineEntry(done, "todo done", _str(a.get("content"))))
    return out


# --- events -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    id: str
    ts: datetime | None
    title: str
    message: str
    source: str
    status: str
    service: str
    tags: list[str]


@dataclass(frozen=True)
class EventsPage:
    events: list[Event]
    next_cursor: str | None


def parse_events_page(body: dict[str, Any]) -> EventsPage:
    out = []
    for x in body.get("data") or []:
        a = x.get("attributes") or {}
        inner = a.get("attributes") or {}
        tags = [str(t) for t in a.get("tags") or inner.get("tags") or []]
        service = _str(inner.get("service")) or next((t[8:] for t in tags if t.startswith("service:")), "")
        out.append(Event(id=_str(x.get("id")), ts=_dt(a.get("timestamp") or inner.get("timestamp")),
                         title=_str(inner.get("title") or (inner.get("evt") or {}).get("name")),
                         message=_str(a.get("message")), source=_str(inner.get("source_type_name")),
                         status=_str(inner.get("status")), service=service, tags=tags))
    after = ((body.get("meta") or {}).get("page") or {}).get("after")
    return EventsPage(out, after or None)


# --- error tracking --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorIssue:
    id: str
    error_type: str
    message: str
    service: str
    file_path: str
    function: str
    first_seen: datetime | None
    last_seen: datetime | None
    first_version: str
    last_version: str
    state: str
    count: int | None = None


def parse_issue(data: dict[str, Any], counts: dict[str, Any] | None = None) -> ErrorIssue:
    a = data.get("attributes") or {}
    c = counts or {}
    return ErrorIssue(
        id=_str(data.get("id")), error_type=_str(a.get("error_type")), message=_str(a.get("error_message")),
        service=_str(a.get("service")), file_path=_str(a.get("file_path")), function=_str(a.get("function_name")),
        first_seen=_dt(a.get("first_seen")), last_seen=_dt(a.get("last_seen")),
        first_version=_str(a.get("first_seen_version")), last_version=_str(a.get("last_seen_version")),
        state=_str(a.get("state")),
        count=c.get("total_count") if isinstance(c.get("total_count"), int) else None,
    )


def parse_issue_search(body: dict[str, Any]) -> list[ErrorIssue]:
    included = {str(x.get("id")): x for x in body.get("included") or [] if isinstance(x, dict)
                and x.get("type") == "issue"}
    out = []
    for r in body.get("data") or []:
        ref = (((r.get("relationships") or {}).get("issue") or {}).get("data") or {}).get("id") or r.get("id")
        issue = included.get(str(ref), {"id": ref})
        out.append(parse_issue(issue, r.get("attributes") or {}))
    return out


_PY_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_AT_FRAME = re.compile(r"^\s*at\s+(.+)$")


def top_frames(stack: str, n: int = 5) -> list[str]:
    """The innermost frames of a stack trace as ``file:line function``, innermost first."""
    py = _PY_FRAME.findall(stack)
    if py:
        return [f"{f.removeprefix('/app/')}:{line} {fn}" for f, line, fn in reversed(py)][:n]
    at = [m.group(1).strip() for ln in stack.splitlines() if (m := _AT_FRAME.match(ln))]
    if at:
        return at[:n]
    return [ln.strip() for ln in stack.splitlines() if ln.strip()][:n]


# --- dashboards -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DashboardSummary:
    id: str
    title: str
    description: str
    author: str
    modified: datetime | None


def parse_dashboard_list(body: dict[str, Any]) -> list[DashboardSummary]:
    return [DashboardSummary(_str(d.get("id")), _str(d.get("title")), _str(d.get("description")),
                             _str(d.get("author_handle")), _dt(d.get("modified_at")))
            for d in body.get("dashboards") or [] if isinstance(d, dict)]


@dataclass(frozen=True)
class Widget:
    depth: int
    type: str
    title: str
    queries: list[str]
    text: str = ""  # note widgets: human-written text

    @property
    def services(self) -> set[str]:
        out: set[str] = set()
        for q in self.queries:
            out |= _services_in(q)
        return out


@dataclass(frozen=True)
class Dashboard:
    id: str
    title: str
    description: str
    author: str
    modified: datetime | None
    url: str
    variables: list[str]
    widgets: list[Widget]


_QUERY_KEYS = ("q", "query", "formula", "alert_id", "service")


def _widget_queries(node: Any, out: list[str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "widgets":
                continue
            if k in _QUERY_KEYS and isinstance(v, str | int) and str(v).strip():
                label = {"alert_id": "monitor ", "service": "service:", "formula": "formula "}.get(k, "")
                if not (k == "formula" and str(v).strip() == "q1"):
                    out.append(f"{label}{v}")
            else:
                _widget_queries(v, out)
    elif isinstance(node, list):
        for x in node:
            _widget_queries(x, out)


def _widgets(items: list[Any], depth: int, out: list[Widget]) -> None:
    for w in items:
        d = (w or {}).get("definition") or {}
        queries: list[str] = []
        _widget_queries(d, queries)
        out.append(Widget(depth, _str(d.get("type")), _str(d.get("title")), queries, _str(d.get("content"))))
        _widgets(d.get("widgets") or [], depth + 1, out)


def parse_dashboard(d: dict[str, Any]) -> Dashboard:
    widgets: list[Widget] = []
    _widgets(d.get("widgets") or [], 0, widgets)
    variables = [f"${v.get('name')}" + (f"={v.get('default')}" if v.get("default") else "")
                 for v in d.get("template_variables") or [] if isinstance(v, dict)]
    return Dashboard(_str(d.get("id")), _str(d.get("title")), _str(d.get("description")),
                     _str(d.get("author_handle")), _dt(d.get("modified_at")), _str(d.get("url")), variables, widgets)
