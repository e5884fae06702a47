"""The only Grafana module that talks HTTP. Every route it may call is listed in ROUTES: Grafana's own
read endpoints, and the read routes of Prometheus and Loki behind Grafana's datasource proxy (GET only,
fixed paths: no tool can reach another proxy route, a write endpoint, or forward a request body)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from servers._core.egress import EgressClient, Route
from servers._core.errors import InvalidArguments, NotFound, UpstreamError
from servers._core.spec import ClientEnv
from servers._core.timeparse import iso
from servers.grafana.models import (
    AlertRule,
    Annotation,
    Dashboard,
    DashboardHit,
    Datasource,
    IndexStats,
    LokiResult,
    PromSeries,
    instance_state,
    parse_annotations,
    parse_dashboard,
    parse_datasource,
    parse_datasources,
    parse_index_stats,
    parse_loki,
    parse_prom_result,
    parse_prom_strings,
    parse_rules,
    parse_search,
)
from servers.grafana.settings import GrafanaSettings

SEARCH = Route("GET", "/api/search")
DASHBOARD = Route("GET", "/api/dashboards/uid/{uid}")
DATASOURCES = Route("GET", "/api/datasources")
DATASOURCE = Route("GET", "/api/datasources/uid/{uid}")
ANNOTATIONS = Route("GET", "/api/annotations")
# Grafana-managed alert rules with their instances (Prometheus-compatible rules API of Grafana Alerting).
RULES = Route("GET", "/api/prometheus/grafana/api/v1/rules")

_PROXY = "/api/datasources/proxy/uid/{uid}"
PROM_QUERY = Route("GET", _PROXY + "/api/v1/query")
PROM_QUERY_RANGE = Route("GET", _PROXY + "/api/v1/query_range")
PROM_LABELS = Route("GET", _PROXY + "/api/v1/labels")
PROM_LABEL_VALUES = Route("GET", _PROXY + "/api/v1/label/{label}/values")
LOKI_QUERY_RANGE = Route("GET", _PROXY + "/loki/api/v1/query_range")
LOKI_INDEX_STATS = Route("GET", _PROXY + "/loki/api/v1/index/stats")

ROUTES: tuple[Route, ...] = (
    SEARCH, DASHBOARD, DATASOURCES, DATASOURCE, ANNOTATIONS, RULES,
    PROM_QUERY, PROM_QUERY_RANGE, PROM_LABELS, PROM_LABEL_VALUES, LOKI_QUERY_RANGE, LOKI_INDEX_STATS,
)

SERVICE_LABELS = ("service", "service_name", "app")


def _secs(dt: datetime) -> str:
    return f"{dt.timestamp():.3f}".rstrip("0").rstrip(".")


def _ns(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000) * 1000


class GrafanaClient:
    def __init__(self, settings: GrafanaSettings, env: ClientEnv) -> None:
        token = settings.token.get_secret_value()
        env.register_secret(token)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if settings.org_id:
            headers["X-Grafana-Org-Id"] = settings.org_id
        self.http = EgressClient(
            upstream="grafana",
            base_url=settings.base_url,
            routes=ROUTES,
            headers=headers,
            transport=env.transport,
            access_hint="check GRAFANA_SERVICE_ACCOUNT_TOKEN (a service account token with at least the Viewer "
            "role and Query permission on the datasource) and GRAFANA_ORG_ID",
        )
        self._datasources: dict[str, Datasource] = {}

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- Grafana ------------------------------------------------------------------------------------
    async def search_dashboards(self, query: str, tags: list[str], limit: int) -> list[DashboardHit]:
        params: list[tuple[str, Any]] = [("type", "dash-db"), ("limit", limit), ("page", 1)]
        if query:
            params.append(("query", query))
        params += [("tag", t) for t in tags]
        resp = await self.http.request("GET", SEARCH.template, params=params)
        return parse_search(resp.json())

    async def dashboard(self, uid: str) -> Dashboard:
        try:
            resp = await self.http.request("GET", DASHBOARD.template, path_params={"uid": uid})
        except NotFound:
            raise NotFound(f"grafana: no dashboard with uid {uid!r}",
                           hint="find the uid with grafana_search_dashboards") from None
        return parse_dashboard(resp.json())

    async def datasources(self) -> list[Datasource]:
        resp = await self.http.request("GET", DATASOURCES.template)
        out = parse_datasources(resp.json())
        self._datasources.update({d.uid: d for d in out})
        return out

    async def datasource(self, uid: str) -> Datasource:
        if uid in self._datasources:
            return self._datasources[uid]
        try:
            resp = await self.http.request("GET", DATASOURCE.template, path_params={"uid": uid})
        except NotFound:
            raise NotFound(f"grafana: no datasource with uid {uid!r}",
                           hint="list the uids with grafana_list_datasources") from None
        ds = parse_datasource(resp.json())
        self._datasources[uid] = ds
        return ds

    async def annotations(self, start: datetime, end: datetime, *, tags: list[str], limit: int,
                          dashboard_uid: str | None) -> list[Annotation]:
        params: list[tuple[str, Any]] = [("from", int(start.timestamp() * 1000)),
                                         ("to", int(end.timestamp() * 1000)), ("limit", limit)]
        params += [("tags", t) for t in tags]
        if dashboard_uid:
            params.append(("dashboardUID", dashboard_uid))
        resp = await self.http.request("GET", ANNOTATIONS.template, params=params)
        return parse_annotations(resp.json())

    async def alert_rules(self, states: list[str] | None = None) -> list[AlertRule]:
        params = [("state", s) for s in states or []]
        resp = await self.http.request("GET", RULES.template, params=params or None)
        return parse_rules(resp.json())

    async def firing_alerts(self, service: str) -> list[dict[str, str]]:
        """Firing alert instances whose labels name ``service`` (label service, service_name or app).

        Each: ``name`` (the alert rule's title), ``state`` ("firing"), ``since`` (ISO 8601 UTC, when
        the instance started firing; "" when Grafana does not say). Used by deploy preconditions.
        """
        out: list[dict[str, str]] = []
        for rule in await self.alert_rules(["firing"]):
            for inst in rule.instances:
                labels = {**rule.labels, **inst.labels}
                if instance_state(inst.state) != "firing":
                    continue
                if not any(labels.get(k) == service for k in SERVICE_LABELS):
                    continue
                since = inst.active_at or rule.active_at
                out.append({"name": rule.name, "state": "firing", "since": iso(since) if since else ""})
        return out

    # --- Prometheus through the datasource proxy -------------------------------------------------------
    async def _proxy(self, route: Route, uid: str, params: list[tuple[str, Any]], field: str = "query",
                     **path: str) -> Any:
        try:
            resp = await self.http.request("GET", route.template, path_params={"uid": uid, **path}, params=params)
        except UpstreamError as e:
            if e.upstream_status in (400, 422):
                raise InvalidArguments(f"{field}: the datasource rejected it: {e.message.split(': ', 1)[-1]}",
                                       hint="fix the query syntax (PromQL / LogQL) and retry") from None
            raise
        return resp.json()

    async def prom_query_range(self, uid: str, query: str, start: datetime, end: datetime,
                               step_s: float) -> list[PromSeries]:
        params = [("query", query), ("start", _secs(start)), ("end", _secs(end)), ("step", f"{step_s:g}")]
        return parse_prom_result(await self._proxy(PROM_QUERY_RANGE, uid, params))[1]

    async def prom_query(self, uid: str, query: str, at: datetime) -> tuple[str, list[PromSeries]]:
        return parse_prom_result(await self._proxy(PROM_QUERY, uid, [("query", query), ("time", _secs(at))]))

    async def prom_labels(self, uid: str, start: datetime, end: datetime, match: str | None) -> list[str]:
        params: list[tuple[str, Any]] = [("start", _secs(start)), ("end", _secs(end))]
        if match:
            params.append(("match[]", match))
        return parse_prom_strings(await self._proxy(PROM_LABELS, uid, params, "match"), "prometheus labels")

    async def prom_label_values(self, uid: str, label: str, start: datetime, end: datetime,
                                match: str | None) -> list[str]:
        params: list[tuple[str, Any]] = [("start", _secs(start)), ("end", _secs(end))]
        if match:
            params.append(("match[]", match))
        body = await self._proxy(PROM_LABEL_VALUES, uid, params, "match", label=label)
        return parse_prom_strings(body, "prometheus label values")

    # --- Loki through the datasource proxy -------------------------------------------------------------
    async def loki_query_range(self, uid: str, query: str, start: datetime, end: datetime, *, limit: int,
                               end_ns: int | None = None, step_s: float | None = None) -> LokiResult:
        params: list[tuple[str, Any]] = [("query", query), ("start", _ns(start)), ("end", end_ns or _ns(end)),
                                         ("limit", limit), ("direction", "backward")]
        if step_s:
            params.append(("step", f"{step_s:g}"))
        return parse_loki(await self._proxy(LOKI_QUERY_RANGE, uid, params))

    async def loki_index_stats(self, uid: str, selector: str, start: datetime, end: datetime) -> IndexStats:
        params = [("query", selector), ("start", _ns(start)), ("end", _ns(end))]
        return parse_index_stats(await self._proxy(LOKI_INDEX_STATS, uid, params))


def make_client(env: ClientEnv) -> GrafanaClient:
    return GrafanaClient(GrafanaSettings.from_env(env.env), env)
