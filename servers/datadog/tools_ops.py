"""Datadog monitor, incident, event and dashboard tools."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from servers._core.errors import NotFound
from servers._core.shaping import (
    ToolOutput,
    cursor_offset,
    decode_cursor,
    encode_cursor,
    fit_lines,
    next_skip_cursor,
    one_line,
    paged_lines,
    read_skip_cursor,
    render_table,
    untrusted_block,
)
from servers._core.spec import Params, ToolContext, ToolSpec, WindowParams
from servers._core.timeparse import iso_seconds as iso
from servers._core.timeparse import resolve_window
from servers.datadog.client import DatadogClient
from servers.datadog.models import Dashboard, DashboardSummary, Incident, TimelineEntry, Widget
from servers.datadog.scope import allowed_services, keep_in_scope, names_only_allowed, require_in_scope, scoped_query

BUDGETS = {"datadog_list_monitors": 3000, "datadog_get_monitor": 2500, "datadog_search_incidents": 2500,
           "datadog_get_incident": 3500, "datadog_search_events": 4000, "datadog_search_dashboards": 3000,
           "datadog_get_dashboard": 4000}
_NAME = re.compile(r"[\w.-]{1,100}")
DASHBOARD_PAGE = 100
DASHBOARD_SCAN_PAGES = 10  # list pages one search call reads before it hands back a cursor


def _t(dt: datetime | None) -> str:
    return iso(dt) if dt else "-"


# --- datadog_list_monitors -------------------------------------------------------------------------
_STATE_QUERY = {"alert": "status:alert", "warn": "status:warn", "no_data": 'status:"no data"', "ok": "status:ok",
                "triggered": "status:(alert OR warn)"}
_STATE_MATCH = {"alert": {"Alert"}, "warn": {"Warn"}, "no_data": {"No Data"}, "ok": {"OK"},
                "triggered": {"Alert", "Warn"}}


class ListMonitorsParams(Params):
    query: str = Field("", description="Search text, e.g. 'checkout'.", max_length=500)
    tags: list[str] = Field(default_factory=list, max_length=5, description="All must match, e.g. ['service:cart'].")
    state: Literal["alert", "warn", "no_data", "ok", "triggered"] | None = Field(
        None, description="triggered = alert or warn.")
    limit: int = Field(30, ge=1, le=100, description="Monitors per page.")
    page: int = Field(0, ge=0, le=100, description="Page number.")


async def list_monitors(p: ListMonitorsParams, ctx: ToolContext) -> ToolOutput:
    parts = [p.query.strip()] + [f'tag:"{t}"' for t in p.tags]
    if p.state:
        parts.append(_STATE_QUERY[p.state])
    client: DatadogClient = ctx.client
    found = await client.search_monitors(" ".join(x for x in parts if x), page=p.page, per_page=p.limit)
    # Post-filters: the upstream's state and tag filters are trusted for nothing.
    monitors = [m for m in found.monitors if (not p.state or m.status in _STATE_MATCH[p.state])
                and all(t in m.tags for t in p.tags)]
    monitors = keep_in_scope(ctx, monitors, lambda m: m.services)
    header = f"datadog monitors · {' '.join(x for x in parts if x) or 'all'}"
    if found.page_count > 1:
        header += f" · page {p.page + 1} of {found.page_count}"
    if not monitors:
        return ToolOutput(f"{header}\nno monitors match", empty=True)
    rows = [[m.id, m.status, m.name, _t(m.last_triggered), " ".join(t for t in m.tags if not t.startswith("env:"))]
            for m in monitors]
    table = render_table(["id", "state", "name", "last triggered", "tags"], rows)
    more = p.page + 1 < found.page_count
    lines = [f"{header} · {len(monitors)} of {found.total}", *untrusted_block("datadog monitors", table)]
    if more:
        lines.append(f"more: page={p.page + 1}")
    return ToolOutput("\n".join(lines), truncated=more, total=found.total)


# --- datadog_get_monitor ---------------------------------------------------------------------------
class GetMonitorParams(Params):
    monitor_id: int = Field(ge=1, le=2**53, description="Monitor id.")


_CMP = re.compile(r"([<>]=?)\s*(-?[\d.]+)\s*$")


async def get_monitor(p: GetMonitorParams, ctx: ToolContext) -> ToolOutput:
    client: DatadogClient = ctx.client
    m = await client.get_monitor(p.monitor_id)
    require_in_scope(ctx, f"monitor {p.monitor_id}", m.services)
    cmp = _CMP.search(m.query)
    op = f"{cmp.group(1)} " if cmp else ""
    thresholds = ", ".join(f"{k} {op}{v:g}" for k, v in (m.thresholds or {}).items()) or "-"
    lines = [
        f"monitor {m.id} · {m.status} · {m.type}" + (f" · P{m.priority}" if m.priority else ""),
        f"query: {m.query}",
        f"thresholds: {thresholds}",
        f"last triggered: {_t(m.last_triggered)}",
        "groups: " + ("; ".join(
            f"{g.name} {g.status}" + (f" (triggered {_t(g.last_triggered)})" if g.last_triggered and g.status != "OK"
                                      else f" (resolved {_t(g.last_resolved)})" if g.last_resolved else "")
            for g in m.groups or []) or "-"),
        f"tags: {', '.join(m.tags) or '-'}",
    ]
    text = "\n".join([*lines, *untrusted_block("datadog monitor name and message",
                                               [f"name: {m.name}", *([m.message] if m.message else [])])])
    return ToolOutput(text)


# --- datadog_search_incidents ----------------------------------------------------------------------
class SearchIncidentsParams(Params):
    query: str = Field("state:(active OR stable)", max_length=500,
                       description="Incident facets, e.g. 'severity:(SEV-1 OR SEV-2) AND services:checkout'.")
    limit: int = Field(20, ge=1, le=100, description="Incidents per page.")
    offset: int = Field(0, ge=0, le=10000, description="Skip this many.")


def _inc_services(i: Incident) -> list[str]:
    return i.services


async def search_incidents(p: SearchIncidentsParams, ctx: ToolContext) -> ToolOutput:
    client: DatadogClient = ctx.client
    found = await client.search_incidents(p.query, size=p.limit, offset=p.offset)
    incidents = keep_in_scope(ctx, found.incidents, _inc_services)
    header = f"datadog incidents · {p.query} · newest first"
    if not incidents:
        return ToolOutput(f"{header}\nno incidents match", empty=True)
    rows = [[i.ref, i.severity, i.state, _t(i.declared), i.commander, ",".join(i.services), one_line(i.title, 120)]
            for i in incidents]
    table = render_table(["id", "sev", "state", "declared", "commander", "services", "title"], rows)
    more = p.offset + len(found.incidents) < found.total
    lines = [f"{header} · {len(incidents)} shown of {found.total}", *untrusted_block("datadog incidents", table)]
    if more:
        lines.append(f"more: offset={p.offset + p.limit}")
    return ToolOutput("\n".join(lines), truncated=more, total=found.total)


# --- datadog_get_incident --------------------------------------------------------------------------
class GetIncidentParams(Params):
    incident_id: str = Field(description="'INC-142', '142' or the incident UUID.")
    cursor: str | None = Field(None, description="next_cursor of a previous call.")

    @field_validator("incident_id")
    @classmethod
    def _id(cls, v: str) -> str:
        v = v.strip()
        if not re.fullmatch(r"(?i)(inc-|#)?\d+|[0-9a-f-]{32,36}", v):
            raise ValueError("use 'INC-142', '142' or a UUID")
        return v


async def get_incident(p: GetIncidentParams, ctx: ToolContext) -> ToolOutput:
    client: DatadogClient = ctx.client
    num = re.fullmatch(r"(?i)(?:inc-|#)?(\d+)", p.incident_id)
    if num:
        found = await client.find_incident(int(num.group(1)))
        if found is None:
            raise NotFound(f"incident {p.incident_id} not found", hint="list them with datadog_search_incidents")
        uuid = found.id
    else:
        uuid = p.incident_id
    inc = await client.get_incident(uuid)
    require_in_scope(ctx, f"incident {p.incident_id}", inc.services)
    timeline = await client.incident_timeline(uuid)
    entries = [TimelineEntry(t, k, x) for t, k, x in (
        (inc.detected, "detected", ""), (inc.declared, "declared", inc.severity),
        (inc.resolved, "resolved", "")) if t is not None] + timeline
    entries.sort(key=lambda e: e.at)
    lines = [
        f"{inc.ref} · {inc.severity} · {inc.state} · id {inc.id}",
        f"commander: {inc.commander or '-'} · services: {', '.join(inc.services) or '-'} · "
        f"teams: {', '.join(inc.teams) or '-'}",
        f"customer impact: {_t(inc.impact_start)} → {_t(inc.impact_end) if inc.impact_end else 'ongoing'}",
    ]
    if inc.fields:
        lines.append("fields: " + "; ".join(f"{k}={v}" for k, v in inc.fields.items()))
    human = [f"title: {inc.title}", f"impact: {inc.impact_scope or '-'}", "timeline (UTC):",
             *(f"  {iso(e.at)} {e.kind}" + (f": {one_line(e.text, 200)}" if e.text else "") for e in entries)]
    offset = cursor_offset(p.cursor, tool="datadog_get_incident")
    kept, next_cursor = paged_lines(human, BUDGETS["datadog_get_incident"], offset, reserve_tokens=300)
    text = "\n".join([*lines, *untrusted_block("datadog incident", kept)])
    return ToolOutput(text, truncated=next_cursor is not None, total=len(entries), next_cursor=next_cursor)


# --- datadog_search_events -------------------------------------------------------------------------
class SearchEventsParams(WindowParams):
    query: str = Field("*", description="Event search, e.g. 'status:error' or 'deploy'.", max_length=1000)
    service: str | None = Field(None, description="Only this service.")
    source: str | None = Field(None, description="Only this source, e.g. argocd, alert.")
    limit: int = Field(50, ge=1, le=200, description="Events to return.")
    cursor: str | None = Field(None, description="next_cursor of a previous call.")

    @field_validator("service", "source")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.fullmatch(v):
            raise ValueError("letters, digits, '.', '_' or '-' only (at most 100)")
        return v


async def search_events(p: SearchEventsParams, ctx: ToolContext) -> ToolOutput:
    start, end = resolve_window(p.from_, p.to, ctx.now)
    at = read_skip_cursor(p.cursor, tool="datadog_search_events")
    q = p.query.strip() or "*"
    extra = [f"service:{p.service}"] * bool(p.service) + [f"source:{p.source}"] * bool(p.source)
    if extra:
        q = " ".join(extra) if q == "*" else f"({q}) {' '.join(extra)}"
    client: DatadogClient = ctx.client
    page = await client.search_events(scoped_query(ctx, q), start, end, limit=p.limit, cursor=at.upstream)
    raw = page.events[at.skip:]
    # Post-filter what the filters asked for: an upstream that ignored them must not widen the answer.
    wanted = [(i, e) for i, e in enumerate(raw) if (not p.service or e.service == p.service)
              and (not p.source or e.source.lower() == p.source.lower())]
    visible = keep_in_scope(ctx, wanted, lambda x: [x[1].service])
    header = f"datadog events · {q} · {iso(start)} → {iso(end)} · newest first"
    if not visible and not page.next_cursor:
        return ToolOutput(f"{header}\nno events in this window", empty=True)
    body = [f"{iso(e.ts) if e.ts else '-'} {e.source or '-'} {e.status or '-'} {e.service or '-'} | "
            f"{one_line(e.title, 160)}" + (f" — {one_line(e.message, 160)}" if e.message and e.message != e.title
                                           else "") for _i, e in visible]
    kept, cut = fit_lines(body, BUDGETS["datadog_search_events"], reserve_tokens=300)
    next_cursor = next_skip_cursor(at, [i for i, _e in visible], len(kept), cut, page.next_cursor)
    lines = [f"{header} · {len(kept)} events (time source status service | title — message)",
             *untrusted_block("datadog events", kept)]
    return ToolOutput("\n".join(lines), truncated=bool(next_cursor), next_cursor=next_cursor)


# --- datadog_search_dashboards ---------------------------------------------------------------------
class SearchDashboardsParams(Params):
    query: str = Field("", description="Words in the title or description; empty lists all.", max_length=200)
    limit: int = Field(20, ge=1, le=100, description="Dashboards to return.")
    cursor: str | None = Field(None, description="next_cursor of a previous call.")


async def search_dashboards(p: SearchDashboardsParams, ctx: ToolContext) -> ToolOutput:
    state = decode_cursor(p.cursor, tool="datadog_search_dashboards") if p.cursor else {}
    pos = int(state.get("p", 0))
    words = p.query.lower().split()
    client: DatadogClient = ctx.client
    hits: list[tuple[int, DashboardSummary]] = []  # (list position, dashboard)
    scanned_to, exhausted = pos, False
    for _ in range(DASHBOARD_SCAN_PAGES):
        batch = await client.list_dashboards(start=scanned_to, count=DASHBOARD_PAGE)
        for i, d in enumerate(batch):
            if len(hits) < p.limit and all(w in f"{d.title} {d.description}".lower() for w in words):
                hits.append((scanned_to + i, d))
        if len(hits) >= p.limit:
            scanned_to = hits[-1][0] + 1
            break
        scanned_to += len(batch)
        if len(batch) < DASHBOARD_PAGE:
            exhausted = True
            break
    # The list API carries no service data: titles are shown as they are; widget queries are
    # scoped in datadog_get_dashboard.
    header = f"datadog dashboards · '{p.query or '*'}'"
    if not hits:
        if exhausted:
            return ToolOutput(f"{header}\nno dashboards match", empty=True)
        more = encode_cursor({"p": scanned_to})
        return ToolOutput(f"{header}\nno match in the first {scanned_to} dashboards; more to scan", truncated=True,
                          next_cursor=more)
    rows = render_table(["id", "title", "author", "modified"],
                        [[d.id, one_line(d.title, 100), d.author, _t(d.modified)] for _i, d in hits])
    kept, cut = fit_lines(rows, BUDGETS["datadog_search_dashboards"], reserve_tokens=200)
    shown = len(kept) - 1
    if cut:
        scanned_to, exhausted = hits[shown][0], False
    next_cursor = None if exhausted else encode_cursor({"p": scanned_to})
    lines = [f"{header} · {shown} shown", *untrusted_block("datadog dashboards", kept)]
    return ToolOutput("\n".join(lines), truncated=next_cursor is not None, next_cursor=next_cursor)


# --- datadog_get_dashboard -------------------------------------------------------------------------
class GetDashboardParams(Params):
    dashboard_id: str = Field(description="Dashboard id, e.g. 'abc-def-ghi'.")
    cursor: str | None = Field(None, description="next_cursor of a previous call.")

    @field_validator("dashboard_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError("not a dashboard id (letters, digits and '-')")
        return v


def _widget_line(w: Widget) -> str:
    label = " ".join(x for x in (w.type, one_line(w.title, 80)) if x)
    if w.type == "note":
        return f"{'  ' * w.depth}note: {one_line(w.text, 200)}"
    queries = "; ".join(one_line(q, 240) for q in w.queries)
    return f"{'  ' * w.depth}{label}" + (f": {queries}" if queries else "")


async def get_dashboard(p: GetDashboardParams, ctx: ToolContext) -> ToolOutput:
    offset = cursor_offset(p.cursor, tool="datadog_get_dashboard")
    client: DatadogClient = ctx.client
    d: Dashboard = await client.get_dashboard(p.dashboard_id)
    widgets = d.widgets
    if allowed_services(ctx) is not None:
        # Widgets whose queries name a service outside the scope are withheld; the rest are shown.
        kept_w = [w for w in widgets if not w.services or names_only_allowed(ctx, w.services)]
        ctx.record.scoped(len(widgets) - len(kept_w))
        withheld = len(widgets) - len(kept_w)
        widgets = kept_w
    else:
        withheld = 0
    head = [f"dashboard {d.id} · by {d.author or '-'} · modified {_t(d.modified)} · {d.url or '-'}",
            f"variables: {', '.join(d.variables) or '-'} · {len(widgets)} widgets"
            + (f" ({withheld} outside scope withheld)" if withheld else "")]
    body = [f"title: {d.title}"] + ([f"description: {one_line(d.description, 300)}"] if d.description else [])
    body += ["widgets (type title: queries):", *(_widget_line(w) for w in widgets)]
    kept, next_cursor = paged_lines(body, BUDGETS["datadog_get_dashboard"], offset, reserve_tokens=300)
    text = "\n".join([*head, *untrusted_block("datadog dashboard", kept)])
    return ToolOutput(text, truncated=next_cursor is not None, total=len(widgets), next_cursor=next_cursor)


def tool_specs() -> tuple[ToolSpec, ...]:
    return (
        ToolSpec(name="datadog_list_monitors", toolset="datadog", access="read", title="List Datadog monitors",
                 description="Monitors with state, last triggered and tags; filter by text, tags, state.",
                 params=ListMonitorsParams, fn=list_monitors, budget_tokens=BUDGETS["datadog_list_monitors"]),
        ToolSpec(name="datadog_get_monitor", toolset="datadog", access="read", title="Get a Datadog monitor",
                 description="One monitor: query, thresholds, state per group, last triggered, message/runbook.",
                 params=GetMonitorParams, fn=get_monitor, budget_tokens=BUDGETS["datadog_get_monitor"]),
        ToolSpec(name="datadog_search_incidents", toolset="datadog", access="read",
                 title="Search Datadog incidents",
                 description="Incidents with severity, state, commander, services. Default: open ones.",
                 params=SearchIncidentsParams, fn=search_incidents, budget_tokens=BUDGETS["datadog_search_incidents"]),
        ToolSpec(name="datadog_get_incident", toolset="datadog", access="read", title="Get a Datadog incident",
                 description="One incident: severity, state, commander, impacted services, timeline.",
                 params=GetIncidentParams, fn=get_incident, budget_tokens=BUDGETS["datadog_get_incident"]),
        ToolSpec(name="datadog_search_events", toolset="datadog", access="read", title="Search Datadog events",
                 description="Deploys, config changes, alerts, incidents in a window, newest first.",
                 params=SearchEventsParams, fn=search_events, budget_tokens=BUDGETS["datadog_search_events"]),
        ToolSpec(name="datadog_search_dashboards", toolset="datadog", access="read",
                 title="Search Datadog dashboards",
                 description="Dashboards whose title or description contain all the words.",
                 params=SearchDashboardsParams, fn=search_dashboards,
                 budget_tokens=BUDGETS["datadog_search_dashboards"]),
        ToolSpec(name="datadog_get_dashboard", toolset="datadog", access="read", title="Get a Datadog dashboard",
                 description="A dashboard's widgets with their queries and variables (a summary, not JSON).",
                 params=GetDashboardParams, fn=get_dashboard, budget_tokens=BUDGETS["datadog_get_dashboard"]),
    )
