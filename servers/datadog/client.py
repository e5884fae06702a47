"""The only Datadog module that talks HTTP. Every route it may call is listed in ROUTES."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from servers._core.egress import EgressClient, Route
from servers._core.spec import ClientEnv
from servers._core.timeparse import iso
from servers.datadog.models import Bucket, LogsPage, Series, parse_aggregate, parse_logs_page, parse_series
from servers.datadog.settings import DatadogSettings

LOGS_SEARCH = Route("POST", "/api/v2/logs/events/search", retry=True)  # read-only search (POST body)
LOGS_AGGREGATE = Route("POST", "/api/v2/logs/analytics/aggregate", retry=True)
METRICS_QUERY = Route("GET", "/api/v1/query")

ROUTES: tuple[Route, ...] = (LOGS_SEARCH, LOGS_AGGREGATE, METRICS_QUERY)


def _dd_error(body: bytes) -> str:
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors:
        return "; ".join(e if isinstance(e, str) else str(e.get("detail") or e.get("title") or e) for e in errors[:3])
    return str(data)[:200]


class DatadogClient:
    def __init__(self, settings: DatadogSettings, env: ClientEnv, routes: tuple[Route, ...] = ROUTES) -> None:
        env.register_secret(settings.api_key.get_secret_value())
        env.register_secret(settings.app_key.get_secret_value())
        self.http = EgressClient(
            upstream="datadog",
            base_url=settings.base_url,
            routes=routes,
            headers={
                "DD-API-KEY": settings.api_key.get_secret_value(),
                "DD-APPLICATION-KEY": settings.app_key.get_secret_value(),
                "Accept": "application/json",
            },
            transport=env.transport,
            error_message=_dd_error,
            access_hint="check DD_API_KEY / DD_APP_KEY and that the application key has the scope this "
            "call needs (e.g. logs_read_data, metrics_read, apm_read)",
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


def make_client(env: ClientEnv) -> DatadogClient:
    return DatadogClient(DatadogSettings.from_env(env.env), env)
