"""The only Datadog module that talks HTTP. Every route it may call is listed in ROUTES."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from servers._core.egress import EgressClient, Route
from servers._core.spec import ClientEnv
from servers._core.timeparse import iso
from servers.datadog.models import (
    Bucket,
    Dashboard,
    DashboardSummary,
    ErrorIssue,
    EventsPage,
    Incident,
    IncidentPage,
    LogsPage,
    Monitor,
    MonitorPage,
    Series,
    Span,
    SpansPage,
    TimelineEntry,
    parse_aggregate,
    parse_dashboard,
    parse_dashboard_list,
    parse_events_page,
    parse_impacts,
    parse_incident,
    parse_incident_search,
    parse_issue,
    parse_issue_search,
    parse_logs_page,
    parse_monitor,
    parse_monitor_search,
    parse_series,
    parse_spans_aggregate,
    parse_spans_page,
    parse_todos,
)
from servers.datadog.settings import DatadogSettings

LOGS_SEARCH = Route("POST", "/api/v2/logs/events/search", retry=True)  # read-only search (POST body)
LOGS_AGGREGATE = Route("POST", "/api/v2/logs/analytics/aggregate", retry=True)
METRICS_QUERY = Route("GET", "/api/v1/query")

SPANS_SEARCH = Route("POST", "/api/v2/spans/events/search", retry=True)
SPANS_AGGREGATE = Route("POST", "/api/v2/spans/analytics/aggregate", retry=True)
ISSUES_SEARCH = Route("POST", "/api/v2/error-tracking/issues/search", retry=True)
ISSUE_GET = Route("GET", "/api/v2/error-tracking/issues/{issue_id}")
MONITOR_SEARCH = Route("GET", "/api/v1/monitor/search")
MONITOR_GET = Route("GET", "/api/v1/monitor/{monitor_id}")
INCIDENTS_SEARCH = Route("GET", "/api/v2/incidents/search")
INCIDENT_GET = Route("GET", "/api/v2/incidents/{incident_id}")
INCIDENT_IMPACTS = Route("GET", "/api/v2/incidents/{incident_id}/impacts")
INCIDENT_TODOS = Route("GET", "/api/v2/incidents/{incident_id}/relationships/todos")
EVENTS_SEARCH = Route("POST", "/api/v2/events/search", retry=True)
DASHBOARDS_LIST = Route("GET", "/api/v1/dashboard")
DASHBOARD_GET = Route("GET", "/api/v1/dashboard/{dashboard_id}")

ROUTES: tuple[Route, ...] = (
    LOGS_SEARCH, LOGS_AGGREGATE, METRICS_QUERY, SPANS_SEARCH, SPANS_AGGREGATE, ISSUES_SEARCH, ISSUE_GET,
    MONITOR_SEARCH, MONITOR_GET, INCIDENTS_SEARCH, INCIDENT_GET, INCIDENT_IMPACTS, INCIDENT_TODOS, EVENTS_SEARCH,
    DASHBOARDS_LIST, DASHBOARD_GET,
)
OPEN_STATES = ("active", "stable")
TRIGGERED = ("Alert", "Warn")
TRACE_PAGE = 1000  # spans per request when reading a whole trace (the API's maximum)
TRACE_MAX_SPANS = 5 * TRACE_PAGE  # spans of one trace read at most
SEARCH_PAGES = 5  # pages the contract helpers and id lookups read at most


class DatadogClient:
    def __init__(self, settings: DatadogSettings, env: ClientEnv) -> None:
        env.register_secret(settings.api_key.get_secret_value())
        env.register_secret(settings.app_key.get_secret_value())
        self.http = EgressClient(
            upstream="datadog",
            base_url=settings.base_url,
            routes=ROUTES,
            headers={
                "DD-API-KEY": settings.api_key.get_secret_value(),
                "DD-APPLICATION-KEY": settings.app_key.get_secret_value(),
                "Accept": "application/json",
            },
            transport=env.transport,
            access_hint="check DD_API_KEY / DD_APP_KEY and that the application key has the scope this "
            "call needs (logs_read_data, metrics_read, apm_read, error_tracking_read, monitors_read, "
            "incident_read, events_read, dashboards_read)",
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def search_logs(
        self, query: str, start: datetime, end: datetime, *, limit: int, cursor: str | None,
        indexes: list[str] | None,
    ) -> LogsPage:
        body: dict[str, Any] = {
            "filter": {"query": query, "from": iso(start), "to": iso(end)},
            "sort": "-timestamp",
            "page": {"limit": limit},
        }
        if indexes:
            body["filter"]["indexes"] = indexes
        if cursor:
            body["page"]["cursor"] = cursor
        resp = await self.http.request("POST", LOGS_SEARCH.template, json=body)
        return parse_logs_page(resp.json())

    async def aggregate_logs(
        self, query: str, start: datetime, end: datetime, *, group_by: list[str], aggregation: str,
        metric: str | None, limit: int, indexes: list[str] | None,
    ) -> list[Bucket]:
        compute: dict[str, Any] = {"aggregation": aggregation, "type": "total"}
        if metric:
            compute["metric"] = metric
        body: dict[str, Any] = {
            "filter": {"query": query, "from": iso(start), "to": iso(end)},
            "compute": [compute],
            "group_by": [
                {"facet": f, "limit": limit, "sort": {"aggregation": aggregation, "order": "desc", "type": "measure",
                                                    **({"metric": metric} if metric else {})}}
                for f in group_by
            ],
        }
        if indexes:
            body["filter"]["indexes"] = indexes
        resp = await self.http.request("POST", LOGS_AGGREGATE.template, json=body)
        return parse_aggregate(resp.json())

    async def query_metrics(self, query: str, start: datetime, end: datetime) -> list[Series]:
        params = {"from": int(start.timestamp()), "to": int(end.timestamp()), "query": query}
        resp = await self.http.request("GET", METRICS_QUERY.template, params=params)
        return parse_series(resp.json())


    # --- APM ------------------------------------------------------------------------------------
    async def search_spans(
        self, query: str, start: datetime, end: datetime, *, limit: int, cursor: str | None = None,
    ) -> SpansPage:
        attrs: dict[str, Any] = {
            "filter": {"query": query, "from": iso(start), "to": iso(end)},
            "sort": "-timestamp",
            "page": {"limit": limit, **({"cursor": cursor} if cursor else {})},
        }
        body = {"data": {"type": "search_request", "attributes": attrs}}
        resp = await self.http.request("POST", SPANS_SEARCH.template, json=body)
        return parse_spans_page(resp.json())

    async def trace_spans(self, trace_id: str, start: datetime, end: datetime) -> tuple[list[Span], bool]:
        """Every span of one trace (up to ``TRACE_MAX_SPANS``); False when the trace has more."""
        spans: list[Span] = []
        cursor: str | None = None
        while True:
            page = await self.search_spans(f"trace_id:{trace_id}", start, end, limit=TRACE_PAGE, cursor=cursor)
            spans.extend(page.spans)
            cursor = page.next_cursor
            if not cursor:
                return spans, True
            if len(spans) >= TRACE_MAX_SPANS:
                return spans, False

    async def aggregate_spans(self, query: str, start: datetime, end: datetime, *, facet: str,
                              limit: int = 10) -> list[Bucket]:
        attrs = {
            "filter": {"query": query, "from": iso(start), "to": iso(end)},
            "compute": [{"aggregation": "count", "type": "total"}],
            "group_by": [{"facet": facet, "limit": limit,
                          "sort": {"aggregation": "count", "order": "desc", "type": "measure"}}],
        }
        body = {"data": {"type": "aggregate_request", "attributes": attrs}}
        resp = await self.http.request("POST", SPANS_AGGREGATE.template, json=body)
        return parse_spans_aggregate(resp.json())

    # --- Error Tracking ---------------------------------------------------------------------------
    async def search_issues(self, query: str, start: datetime, end: datetime, *,
                            order_by: str = "TOTAL_COUNT") -> list[ErrorIssue]:
        attrs = {"query": query, "from": int(start.timestamp() * 1000), "to": int(end.timestamp() * 1000),
                 "persona": "ALL", "order_by": order_by}
        resp = await self.http.request("POST", ISSUES_SEARCH.template, params={"include": "issue"},
                                       json={"data": {"type": "search_request", "attributes": attrs}})
        return parse_issue_search(resp.json())

    async def get_issue(self, issue_id: str) -> ErrorIssue:
        resp = await self.http.request("GET", ISSUE_GET.template, path_params={"issue_id": issue_id})
        return parse_issue(resp.json().get("data") or {})

    # --- monitors ---------------------------------------------------------------------------------
    async def search_monitors(self, query: str, *, page: int = 0, per_page: int = 30) -> MonitorPage:
        params: dict[str, Any] = {"page": page, "per_page": per_page, "sort": "status,asc"}
        if query.strip():
            params["query"] = query
        resp = await self.http.request("GET", MONITOR_SEARCH.template, params=params)
        return parse_monitor_search(resp.json())

    async def get_monitor(self, monitor_id: int) -> Monitor:
        resp = await self.http.request("GET", MONITOR_GET.template, path_params={"monitor_id": monitor_id},
                                       params={"group_states": "all"})
        return parse_monitor(resp.json())

    # --- incidents --------------------------------------------------------------------------------
    async def search_incidents(self, query: str, *, size: int = 25, offset: int = 0) -> IncidentPage:
        params = {"query": query, "include": "users", "sort": "-created", "page[size]": size, "page[offset]": offset}
        resp = await self.http.request("GET", INCIDENTS_SEARCH.template, params=params)
        return parse_incident_search(resp.json())

    async def get_incident(self, incident_id: str) -> Incident:
        resp = await self.http.request("GET", INCIDENT_GET.template, path_params={"incident_id": incident_id},
                                       params={"include": "users"})
        body = resp.json()
        return parse_incident(body.get("data") or {}, body.get("included"))

    async def find_incident(self, public_id: int) -> Incident | None:
        """An incident by its number (INC-142), through search: the API's path takes the UUID."""
        for page in range(SEARCH_PAGES):
            found = await self.search_incidents("state:(active OR stable OR resolved)", size=100, offset=page * 100)
            hit = next((i for i in found.incidents if i.public_id == public_id), None)
            if hit is not None or (page + 1) * 100 >= found.total:
                return hit
        return None

    async def incident_timeline(self, incident_id: str) -> list[TimelineEntry]:
        pp = {"incident_id": incident_id}
        impacts = await self.http.request("GET", INCIDENT_IMPACTS.template, path_params=pp)
        todos = await self.http.request("GET", INCIDENT_TODOS.template, path_params=pp)
        return parse_impacts(impacts.json()) + parse_todos(todos.json())

    # --- events -----------------------------------------------------------------------------------
    async def search_events(self, query: str, start: datetime, end: datetime, *, limit: int,
                            cursor: str | None = None) -> EventsPage:
        body: dict[str, Any] = {
            "filter": {"query": query, "from": iso(start), "to": iso(end)},
            "sort": "-timestamp",
            "page": {"limit": limit, **({"cursor": cursor} if cursor else {})},
        }
        resp = await self.http.request("POST", EVENTS_SEARCH.template, json=body)
        return parse_events_page(resp.json())

    # --- dashboards -------------------------------------------------------------------------------
    async def list_dashboards(self, *, start: int, count: int) -> list[DashboardSummary]:
        resp = await self.http.request("GET", DASHBOARDS_LIST.template, params={"start": start, "count": count})
        return parse_dashboard_list(resp.json())

    async def get_dashboard(self, dashboard_id: str) -> Dashboard:
        resp = await self.http.request("GET", DASHBOARD_GET.template, path_params={"dashboard_id": dashboard_id})
        return parse_dashboard(resp.json())

    # --- contract for deploy preconditions (servers/deploy) ---------------------------------------
    async def open_incidents(self, service: str) -> list[dict[str, str]]:
        """Active or stable incidents impacting ``service``: [{id, title, severity, state}], id like INC-142."""
        out: list[dict[str, str]] = []
        for page in range(SEARCH_PAGES):
            found = await self.search_incidents("state:(active OR stable)", size=100, offset=page * 100)
            out += [{"id": i.ref, "title": i.title, "severity": i.severity, "state": i.state}
                    for i in found.incidents if i.state in OPEN_STATES and service in i.services]
            if (page + 1) * 100 >= found.total or not found.incidents:
                break
        return out

    async def alerting_monitors(self, service: str) -> list[dict[str, str]]:
        """Monitors in Alert or Warn whose query or tags name ``service``: [{id, name, state}]."""
        out: list[dict[str, str]] = []
        for page in range(SEARCH_PAGES):
            found = await self.search_monitors("status:(alert OR warn)", page=page, per_page=100)
            out += [{"id": str(m.id), "name": m.name, "state": m.status}
                    for m in found.monitors if m.status in TRIGGERED and service in m.services]
            if page + 1 >= found.page_count or not found.monitors:
                break
        return out


def make_client(env: ClientEnv) -> DatadogClient:
    return DatadogClient(DatadogSettings.from_env(env.env), env)
