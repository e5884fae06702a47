"""Datadog's API as the sandbox serves it: real paths, DD-API-KEY/DD-APPLICATION-KEY auth,
cursor pagination, ``{"errors": [...]}`` bodies and X-RateLimit-* headers, on loopback.

Data comes from the shared :class:`~servers._core.world.World`, so a rollback made through the
deploy fake shows here as recovered error rates and quiet logs. Logs and metrics live here; spans,
Error Tracking, monitors, incidents, events and dashboards in fake_apm.py / fake_ops.py, served by
fake_routes.py.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from servers._core.fakekit import (
    CANARY_AWS_KEY,
    CANARY_PASSWORD_URL,
    Faults,
    RateWindow,
    compile_search,
    header_auth,
    page_cursor,
)
from servers._core.world import World
from servers.datadog import fake_routes
from servers.datadog.fake_routes import fake_time, json_route, page_window

API_KEY = "sandbox-dd-api-key-0000000000000000"
APP_KEY = "sandbox-dd-app-key-00000000000000000000"
LINES_PER_MINUTE = 3
LOG_HORIZON = timedelta(hours=24)  # the sandbox keeps a day of logs

_OK_MESSAGES = {
    "checkout": ["POST /api/checkout 200 in {ms}ms order={order}", "order {order} placed total={total}"],
    "payments": ["charge {order} authorized in {ms}ms", "POST /v1/charges 200 in {ms}ms"],
    "cart": ["GET /api/cart 200 in {ms}ms", "cart {order} updated items={items}"],
    "frontend": ["GET / 200 in {ms}ms", "GET /product/{items} 200 in {ms}ms"],
}
_BAD_MESSAGES = [
    "payment timeout after 3000ms order={order} pool=async-payments",
    "PaymentGatewayTimeout: connection pool exhausted (size=10, waiting={items})",
    "POST /api/checkout 502 in {ms}ms order={order}",
]


def _generate(world: World, service: str, minute: datetime) -> list[dict[str, Any]]:
    out = []
    degraded = world.degraded(service, minute)
    version = world.version_at(service, minute) or "unknown"
    for i in range(LINES_PER_MINUTE):
        n = world.noise("log", service, minute.timestamp(), i)
        ts = minute + timedelta(seconds=i * 20 + int(n * 19))
        order = 8000 + int(world.noise("order", service, minute.timestamp(), i) * 9000)
        fields = {"ms": 20 + int(n * 300), "order": order, "total": f"{20 + n * 80:.2f}", "items": 1 + int(n * 9)}
        error = n < (0.65 if degraded else world.error_rate(service, minute) * 4)
        if error:
            tmpl = _BAD_MESSAGES[i % 3] if degraded else "POST /api/{svc} 502 in {ms}ms upstream reset"
            status = "error"
        else:
            tmpl = _OK_MESSAGES[service][i % 2]
            status = "info"
        message = tmpl.format(svc=service, **fields)
        if service == "checkout" and i == 0 and int(minute.timestamp() // 60) % 17 == 0:
            # Planted canaries: a leaked key and a DSN with a password, as real logs sometimes carry.
            status, message = "warn", (
                f"config reload: aws_access_key_id={CANARY_AWS_KEY} dsn={CANARY_PASSWORD_URL}"
            )
        out.append({
            "id": f"AQAAAY{service[:3]}{int(ts.timestamp())}{i}",
            "type": "log",
            "attributes": {
                "timestamp": ts.isoformat().replace("+00:00", "Z"),
                "status": status,
                "service": service,
                "host": f"{service}-{1 + int(n * 3)}",
                "message": message,
                "tags": ["env:prod", f"version:{version}", f"service:{service}"],
                "attributes": {"env": "prod", "version": version, "duration": fields["ms"] * 1_000_000,
                               "http": {"status_code": 502 if "502" in message else 200}},
            },
        })
    return out


def _fields(log: dict[str, Any]) -> dict[str, Any]:
    a = log["attributes"]
    inner = a["attributes"]
    return {"service": a["service"], "status": a["status"], "host": a["host"], "env": inner["env"],
            "version": inner["version"], "duration": inner["duration"],
            "http.status_code": inner["http"]["status_code"]}


def _logs_between(world: World, start: datetime, end: datetime, query: str) -> list[dict[str, Any]]:
    """Matching logs, newest first, inside the sandbox's retention."""
    now = world.now()
    end = min(end, now)
    start = max(start, now - LOG_HORIZON)
    match = compile_search(query)
    out: list[dict[str, Any]] = []
    minute = end.replace(second=0, microsecond=0)
    while minute >= start.replace(second=0, microsecond=0):
        batch = []
        for service in world.services:
            for log in _generate(world, service, minute):
                ts = datetime.fromisoformat(log["attributes"]["timestamp"].replace("Z", "+00:00"))
                if start <= ts <= end and match(_fields(log), log["attributes"]["message"]):
                    batch.append(log)
        batch.sort(key=lambda x: x["attributes"]["timestamp"], reverse=True)
        out.extend(batch)
        minute -= timedelta(minutes=1)
    return out


_METRIC = re.compile(r"^\s*(\w+):([\w.]+)\{([^}]*)\}(?:\s*by\s*\{([^}]*)\})?(\.as_count\(\)|\.as_rate\(\))?\s*$")
_METRICS = {
    "trace.http.request.errors": lambda w, s, t, step: w.request_rate(s, t) * step * w.error_rate(s, t),
    "trace.http.request.hits": lambda w, s, t, step: w.request_rate(s, t) * step,
    "trace.http.request.duration.by.service.95p": lambda w, s, t, step: w.latency_p95_ms(s, t) / 1000,
    "checkout.payment.timeouts": lambda w, s, t, step: (
        w.request_rate(s, t) * step * w.error_rate(s, t) * 0.8 if s == "checkout" else 0.0),
}


def _metric_series(world: World, query: str, start: datetime, end: datetime) -> dict[str, Any]:
    m = _METRIC.match(query)
    if not m:
        err = f"Error parsing query: unable to parse {query}: Rule 'scope_expr' didn't match"
        return {"status": "error", "error": err,
                "series": [], "res_type": "time_series", "query": query}
    _agg, metric, scope, by, _suffix = m.groups()
    filters = {}
    for part in (p.strip() for p in scope.split(",")):
        if part and part != "*" and ":" in part:
            k, v = part.split(":", 1)
            filters[k] = v
    group_keys = [g.strip() for g in (by or "").split(",") if g.strip()]
    fn = _METRICS.get(metric)
    span = (end - start).total_seconds()
    step = max(60, int(math.ceil(span / 300 / 60) * 60))
    series: dict[tuple[str, ...], list[list[float]]] = {}
    if fn is not None:
        t = start.replace(second=0, microsecond=0)
        while t <= min(end, world.now()):
            for service in world.services:
                version = world.version_at(service, t) or "unknown"
                tags = {"service": service, "env": "prod", "version": version}
                if any(not re.fullmatch(v.replace("*", ".*"), tags.get(k, "")) for k, v in filters.items()):
                    continue
                key = tuple(f"{g}:{tags.get(g, 'n/a')}" for g in group_keys)
                value = fn(world, service, t, step)
                pts = series.setdefault(key, [])
                if pts and pts[-1][0] == t.timestamp() * 1000:
                    pts[-1][1] += value
                else:
                    pts.append([t.timestamp() * 1000, value])
            t += timedelta(seconds=step)
    out = []
    for key, pts in sorted(series.items()):
        scope_tags = ",".join([*(f"{k}:{v}" for k, v in filters.items()), *key]) or "*"
        out.append({
            "metric": metric, "display_name": metric, "scope": scope_tags, "expression": f"{metric}{{{scope_tags}}}",
            "pointlist": pts, "interval": step, "length": len(pts), "aggr": _agg,
            "start": pts[0][0] if pts else None, "end": pts[-1][0] if pts else None,
            "tag_set": list(key), "unit": None,
        })
    return {"status": "ok", "res_type": "time_series", "series": out, "query": query,
            "from_date": int(start.timestamp() * 1000), "to_date": int(end.timestamp() * 1000), "group_by": group_keys}


def build_app(world: World, faults: Faults | None = None) -> Starlette:
    faults = faults or Faults()
    rate = RateWindow(limit=300, period_s=3600)

    def guard(request: Request) -> Response | None:
        if not header_auth(request, {"dd-api-key": API_KEY, "dd-application-key": APP_KEY}):
            return JSONResponse({"errors": ["Forbidden"]}, 403)
        return faults.take()

    with_body = json_route(guard)

    def ok(body: Any) -> JSONResponse:
        return JSONResponse(body, headers={**rate.headers(world.now().timestamp()), "X-RateLimit-Name": "logs_query"})

    @with_body
    async def logs_search(_request: Request, body: dict[str, Any]) -> Response:
        f = body.get("filter") or {}
        now = world.now()
        start, end = fake_time(f.get("from", "now-15m"), now), fake_time(f.get("to", "now"), now)
        page = body.get("page") or {}
        if isinstance(window := page_window(page, 5000), Response):
            return window
        offset, limit = window
        logs = _logs_between(world, start, end, f.get("query") or "*")
        chunk = logs[offset: offset + limit]
        meta: dict[str, Any] = {"status": "done", "elapsed": 42, "request_id": "sandbox"}
        if offset + limit < len(logs):
            meta["page"] = {"after": page_cursor(offset + limit)}
        return ok({"data": chunk, "meta": meta})

    @with_body
    async def logs_aggregate(_request: Request, body: dict[str, Any]) -> Response:
        f = body.get("filter") or {}
        now = world.now()
        start, end = fake_time(f.get("from", "now-15m"), now), fake_time(f.get("to", "now"), now)
        compute = (body.get("compute") or [{"aggregation": "count"}])[0]
        agg, metric = compute.get("aggregation", "count"), (compute.get("metric") or "").lstrip("@")
        facets = [g["facet"].lstrip("@") for g in body.get("group_by") or []]
        limit = min(int((body.get("group_by") or [{}])[0].get("limit", 10)) if facets else 1, 10000)
        groups: dict[tuple[Any, ...], list[float]] = {}
        for log in _logs_between(world, start, end, f.get("query") or "*"):
            fields = _fields(log)
            key = tuple(fields.get(fc, "N/A") for fc in facets)
            groups.setdefault(key, []).append(float(fields.get(metric, 0) or 0) if metric else 1.0)
        buckets = []
        for key, values in groups.items():
            if agg == "count":
                v: float = len(values)
            elif agg in ("avg", "median") or agg.startswith("pc"):
                values.sort()
                q = 0.5 if agg in ("avg", "median") else int(agg[2:]) / 100
                v = sum(values) / len(values) if agg == "avg" else values[min(len(values) - 1, int(q * len(values)))]
            elif agg == "sum":
                v = sum(values)
            elif agg == "max":
                v = max(values)
            elif agg == "min":
                v = min(values)
            else:
                v = len(set(values))
            buckets.append({"by": dict(zip([g["facet"] for g in body.get("group_by") or []], key, strict=False)),
                            "computes": {"c0": v}})
        buckets.sort(key=lambda b: b["computes"]["c0"], reverse=True)
        return ok({"data": {"buckets": buckets[:limit]}, "meta": {"status": "done", "elapsed": 12}})

    async def metrics_query(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        q = request.query_params
        missing = [k for k in ("from", "to", "query") if k not in q]
        if missing:
            return JSONResponse({"errors": [f"Missing required parameter: {', '.join(missing)}"]}, 400)
        try:
            start = datetime.fromtimestamp(int(q["from"]), UTC)
            end = datetime.fromtimestamp(int(q["to"]), UTC)
        except ValueError:
            return JSONResponse({"errors": ["from/to must be integers (seconds)"]}, 400)
        return ok(_metric_series(world, q["query"], start, end))

    return Starlette(routes=[
        Route("/api/v2/logs/events/search", logs_search, methods=["POST"]),
        Route("/api/v2/logs/analytics/aggregate", logs_aggregate, methods=["POST"]),
        Route("/api/v1/query", metrics_query, methods=["GET"]),
        # APM, Error Tracking, monitors, incidents, events, dashboards (servers/datadog/fake_routes.py).
        *fake_routes.routes(world, guard, ok),
    ])


def sandbox_env(base_url: str) -> dict[str, str]:
    """The environment that points Spyglass's Datadog client at this fake."""
    return {"DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY, "DD_SITE": "datadoghq.com", "SPYGLASS_DATADOG_URL": base_url}
