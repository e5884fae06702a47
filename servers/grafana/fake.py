"""Grafana's HTTP API as the sandbox serves it: real paths under ``/api`` (per Grafana's OpenAPI spec),
bearer service-account auth, ``{"message": ...}`` errors, and a datasource proxy that answers like
Prometheus and Loki do, from the shared :class:`~servers._core.world.World`.

Metrics are minute samples of counters and gauges per (service, version) release segment, so a
rollback recorded in the World starts a fresh series and the error rate recovers. Loki lines are
logfmt lines from the same World. ``build_app(..., prometheus_url=URL)`` sends the Prometheus
datasource's proxy route to a real Prometheus instead (the slow test backfills it from the World).
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from servers._core.fakekit import CANARY_AWS_KEY, CANARY_PASSWORD_URL, Faults, bearer
from servers._core.world import World
from servers.grafana import fake_promql as pq

TOKEN = "glsa_sandboxSandboxSandbox0000_0a1b2c3d"
ORG_ID = "1"
LINES_PER_MINUTE = 3
LOG_HORIZON = timedelta(hours=24)
METRIC_RETENTION = timedelta(days=8)
MAX_POINTS = 11000

DATASOURCES: list[dict[str, Any]] = [
    {"id": 1, "uid": "prom-main", "orgId": 1, "name": "Prometheus", "type": "prometheus", "typeName": "Prometheus",
     "access": "proxy", "url": "http://prometheus.monitoring:9090", "isDefault": True, "readOnly": True,
     "basicAuth": False, "jsonData": {"httpMethod": "GET"}},
    {"id": 2, "uid": "loki-main", "orgId": 1, "name": "Loki", "type": "loki", "typeName": "Loki", "access": "proxy",
     "url": "http://loki.monitoring:3100", "isDefault": False, "readOnly": True, "basicAuth": False, "jsonData": {}},
    {"id": 3, "uid": "billing-pg", "orgId": 1, "name": "Billing DB", "type": "grafana-postgresql-datasource",
     "typeName": "PostgreSQL", "access": "proxy", "url": "billing-db.internal:5432", "isDefault": False,
     "readOnly": True, "basicAuth": False, "jsonData": {}},
]
_DS = {d["uid"]: d for d in DATASOURCES}


# --- metrics -----------------------------------------------------------------------------------------
COUNTERS = ("http_requests_total", "http_request_errors_total")
GAUGES = ("service:http_request_duration_seconds:p95", "up")


@dataclass(frozen=True)
class Segment:
    service: str
    version: str
    start: float  # epoch seconds
    end: float | None  # exclusive; None while it is still serving


def segments(world: World) -> list[Segment]:
    out = []
    for name in world.services:
        rels = [r for r in world.releases(name) if r.status == "succeeded"]
        rels.sort(key=lambda r: r.at)
        for i, r in enumerate(rels):
            end = rels[i + 1].at.timestamp() if i + 1 < len(rels) else None
            out.append(Segment(name, r.version, r.at.timestamp(), end))
    return out


def _minute_ceil(t: float) -> float:
    return math.ceil(t / 60) * 60


class WorldMetrics:
    """Minute samples from the World, as a scrape every 60 s would have stored them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._lock = threading.Lock()
        self._cum: dict[tuple[str, str, float], list[float]] = {}

    def _increment(self, metric: str, service: str, t: datetime) -> float:
        reqs = self.world.request_rate(service, t) * 60
        return reqs if metric == "http_requests_total" else reqs * self.world.error_rate(service, t)

    def _counter(self, metric: str, seg: Segment, first: float, upto: float) -> list[float]:
        """Counter values at each minute from ``first`` (the segment's first sample) to ``upto``."""
        key = (metric, seg.service, first)
        with self._lock:
            cum = self._cum.setdefault(key, [0.0])
            t = first + 60 * (len(cum) - 1)
            while t < upto:
                cum.append(cum[-1] + round(self._increment(metric, seg.service, datetime.fromtimestamp(t, UTC))))
                t += 60
            return cum

    def labels(self, metric: str, seg: Segment) -> pq.Labels:
        return tuple(sorted({"__name__": metric, "service": seg.service, "version": seg.version, "env": "prod",
                             "job": seg.service, "instance": f"{seg.service}:8080"}.items()))

    def all_series(self, start: float, end: float) -> Iterator[tuple[str, Segment]]:
        now = self.world.now().timestamp()
        floor = now - METRIC_RETENTION.total_seconds()
        for seg in segments(self.world):
            if seg.start > min(end, now) or (seg.end is not None and seg.end <= max(start, floor)):
                continue
            for metric in (*COUNTERS, *GAUGES):
                yield metric, seg

    def samples(self, metric: str, seg: Segment, start: float, end: float) -> tuple[list[float], list[float]]:
        now = self.world.now().timestamp()
        first = _minute_ceil(max(seg.start, now - METRIC_RETENTION.total_seconds()))
        last = min(end, now, (seg.end - 1e-6) if seg.end is not None else now)
        t = max(first, _minute_ceil(start))
        ts: list[float] = []
        vs: list[float] = []
        if t > last:
            return ts, vs
        if metric in COUNTERS:
            cum = self._counter(metric, seg, first, last)
            while t <= last:
                ts.append(t)
                vs.append(cum[int((t - first) // 60)])
                t += 60
            return ts, vs
        while t <= last:
            at = datetime.fromtimestamp(t, UTC)
            ts.append(t)
            vs.append(1.0 if metric == "up" else round(self.world.latency_p95_ms(seg.service, at) / 1000, 4))
            t += 60
        return ts, vs

    def select(self, selector: pq.Selector, start: float, end: float) -> list[pq.Series]:
        out = []
        merged: dict[pq.Labels, pq.Series] = {}
        for metric, seg in self.all_series(start, end):
            labels = self.labels(metric, seg)
            d = dict(labels)
            if not all(m.matches(d.get(m.name, "")) for m in selector.matchers):
                continue
            ts, vs = self.samples(metric, seg, start, end)
            if not ts:
                continue
            if labels in merged:  # the same version serving again later (after a rollback): one series
                merged[labels].ts.extend(ts)
                merged[labels].values.extend(vs)
            else:
                merged[labels] = pq.Series(labels, ts, vs)
                out.append(merged[labels])
        return out

    def openmetrics(self, start: float, end: float) -> str:
        """The samples in [start, end] as OpenMetrics text, for `promtool tsdb create-blocks-from openmetrics`."""
        by_metric: dict[str, list[str]] = {}
        for metric, seg in self.all_series(start, end):
            ts, vs = self.samples(metric, seg, start, end)
            lab = ",".join(f'{k}="{v}"' for k, v in self.labels(metric, seg) if k != "__name__")
            name = metric.removesuffix("_total")
            lines = by_metric.setdefault(metric, [f"# TYPE {name} {'counter' if metric in COUNTERS else 'gauge'}"])
            lines += [f"{metric}{{{lab}}} {pq.fmt_value(v)} {int(t)}" for t, v in zip(ts, vs, strict=True)]
        body = [line for lines in by_metric.values() for line in lines]
        return "\n".join([*body, "# EOF", ""])


# --- logs --------------------------------------------------------------------------------------------
_OK = {
    "checkout": ['msg="POST /api/checkout 200" duration_ms={ms} order={order}', 'msg="order placed" order={order}'],
    "payments": ['msg="charge authorized" order={order} duration_ms={ms}',
                 'msg="POST /v1/charges 200" duration_ms={ms}'],
    "cart": ['msg="GET /api/cart 200" duration_ms={ms}', 'msg="cart updated" items={items}'],
    "frontend": ['msg="GET / 200" duration_ms={ms}', 'msg="GET /product/{items} 200" duration_ms={ms}'],
}
_BAD = [
    'msg="payment timeout after 3000ms" order={order} pool=async-payments',
    'msg="PaymentGatewayTimeout: connection pool exhausted" pool_size=10 waiting={items}',
    'msg="POST /api/checkout 502" duration_ms={ms} order={order}',
]


@dataclass(frozen=True)
class LogLine:
    ts_ns: int
    labels: pq.Labels
    line: str


def log_lines(world: World, service: str, minute: datetime) -> list[LogLine]:
    out = []
    degraded = world.degraded(service, minute)
    version = world.version_at(service, minute) or "unknown"
    for i in range(LINES_PER_MINUTE):
        n = world.noise("loki", service, minute.timestamp(), i)
        ts = minute + timedelta(seconds=i * 20 + n * 19.9)
        order = 8000 + int(world.noise("order", service, minute.timestamp(), i) * 9000)
        fields = {"ms": 20 + int(n * 300), "order": order, "items": 1 + int(n * 9)}
        error = n < (0.65 if degraded else world.error_rate(service, minute) * 4)
        if error:
            tmpl = _BAD[i % 3] if degraded else 'msg="upstream reset" status=502 duration_ms={ms}'
            level = "error"
        else:
            tmpl, level = _OK[service][i % 2], "info"
        text = tmpl.format(**fields)
        if service == "checkout" and i == 0 and int(minute.timestamp() // 60) % 17 == 0:
            level, text = "warn", f'msg="config reload" aws_access_key_id={CANARY_AWS_KEY} dsn={CANARY_PASSWORD_URL}'
        ns = int(ts.timestamp() * 1e6) * 1000
        line = f"ts={ts.isoformat(timespec='milliseconds').replace('+00:00', 'Z')} level={level} {text}"
        labels = tuple(sorted({"service": service, "env": "prod", "level": level, "version": version}.items()))
        out.append(LogLine(ns, labels, line))
    return out


def _line_matches(pipeline: tuple[tuple[str, str], ...], line: str) -> bool:
    for op, arg in pipeline:
        hit = (arg in line) if op in ("|=", "!=") else re.search(arg, line) is not None
        if hit != (op in ("|=", "|~")):
            return False
    return True


class WorldLogs:
    def __init__(self, world: World) -> None:
        self.world = world

    def lines(self, selector: pq.Selector, start: float, end: float, *, backward: bool = True) -> Iterator[LogLine]:
        """Matching lines with start <= ts < end (Loki's half-open range), newest first when backward."""
        now = self.world.now().timestamp()
        lo, hi = max(start, now - LOG_HORIZON.total_seconds()), min(end, now + 1)
        if lo >= hi:
            return
        minutes = range(int(lo // 60), int(hi // 60) + 1)
        for m in reversed(minutes) if backward else minutes:
            minute = datetime.fromtimestamp(m * 60, UTC)
            batch = []
            for service in self.world.services:
                for ln in log_lines(self.world, service, minute):
                    d = dict(ln.labels)
                    if lo * 1e9 <= ln.ts_ns < hi * 1e9 and ln.ts_ns <= now * 1e9 \
                            and all(mt.matches(d.get(mt.name, "")) for mt in selector.matchers) \
                            and _line_matches(selector.pipeline, ln.line):
                        batch.append(ln)
            batch.sort(key=lambda x: x.ts_ns, reverse=backward)
            yield from batch

    def select(self, selector: pq.Selector, start: float, end: float) -> list[pq.Series]:
        """Log lines as samples (value 1, or bytes for bytes_*), for LogQL metric queries."""
        series: dict[pq.Labels, pq.Series] = {}
        for ln in self.lines(selector, start, end, backward=False):
            s = series.setdefault(ln.labels, pq.Series(ln.labels, [], []))
            s.ts.append(ln.ts_ns / 1e9)
            s.values.append(1.0)
        return list(series.values())


# --- dashboards, rules, annotations --------------------------------------------------------------------
def _field_config(kind: str, unit: str) -> dict[str, Any]:
    """The fieldConfig / options blocks Grafana 11 saves with every panel (what makes raw JSON long)."""
    custom: dict[str, Any] = {
        "axisBorderShow": False, "axisCenteredZero": False, "axisColorMode": "text", "axisLabel": "",
        "axisPlacement": "auto", "barAlignment": 0, "drawStyle": "line", "fillOpacity": 10, "gradientMode": "none",
        "hideFrom": {"legend": False, "tooltip": False, "viz": False}, "insertNulls": False,
        "lineInterpolation": "linear", "lineWidth": 1, "pointSize": 5, "scaleDistribution": {"type": "linear"},
        "showPoints": "never", "spanNulls": False, "stacking": {"group": "A", "mode": "none"},
        "thresholdsStyle": {"mode": "off"},
    } if kind == "timeseries" else {}
    return {"defaults": {"color": {"mode": "palette-classic"}, "custom": custom, "mappings": [],
                         "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                      {"color": "red", "value": 80}]},
                         "unit": unit},
            "overrides": []}


_OPTIONS = {
    "timeseries": {"legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
                   "tooltip": {"mode": "multi", "sort": "desc"}},
    "stat": {"colorMode": "value", "graphMode": "area", "justifyMode": "auto", "orientation": "auto",
             "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "showPercentChange": False,
             "textMode": "auto", "wideLayout": True},
    "logs": {"dedupStrategy": "none", "enableLogDetails": True, "prettifyLogMessage": False, "showCommonLabels": False,
             "showLabels": False, "showTime": True, "sortOrder": "Descending", "wrapLogMessage": True},
    "table": {"cellHeight": "sm", "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
              "showHeader": True},
}


def _panel(pid: int, title: str, kind: str, ds: str, *exprs: str, desc: str = "",
           unit: str = "short") -> dict[str, Any]:
    ds_type = "loki" if "logs" in ds else "prometheus"
    return {"id": pid, "title": title, "type": kind, "description": desc,
            "datasource": {"type": ds_type, "uid": ds},
            "fieldConfig": _field_config(kind, unit), "options": _OPTIONS.get(kind, {}), "pluginVersion": "11.2.0",
            "gridPos": {"h": 8, "w": 12, "x": 12 * (pid % 2), "y": pid * 8},
            "targets": [{"refId": chr(65 + i), "expr": e, "datasource": {"type": ds_type, "uid": ds},
                         "editorMode": "code", "legendFormat": "__auto", "range": True, "instant": False}
                        for i, e in enumerate(exprs)]}


def _row(pid: int, title: str, panels: list[dict[str, Any]], collapsed: bool) -> list[dict[str, Any]]:
    row = {"id": pid, "type": "row", "title": title, "collapsed": collapsed, "panels": panels if collapsed else []}
    return [row] if collapsed else [row, *panels]


def _variables(service: str) -> dict[str, Any]:
    return {"list": [
        {"name": "ds", "type": "datasource", "query": "prometheus",
         "current": {"text": "Prometheus", "value": "prom-main"}},
        {"name": "logs", "type": "datasource", "query": "loki", "current": {"text": "Loki", "value": "loki-main"}},
        {"name": "service", "type": "query", "datasource": {"type": "prometheus", "uid": "${ds}"},
         "definition": "label_values(http_requests_total, service)", "hide": 0, "includeAll": False, "multi": False,
         "options": [], "refresh": 1, "regex": "", "skipUrlSync": False, "sort": 1,
         "query": {"qryType": 1, "query": "label_values(http_requests_total, service)",
                   "refId": "PrometheusVariableQueryEditor-VariableQuery"},
         "current": {"selected": False, "text": service, "value": service}},
    ]}


@functools.cache
def dashboards() -> list[dict[str, Any]]:
    """The sandbox's dashboards: constant, built once and shared; read them, never mutate."""
    sel = 'service="$service"'
    checkout_panels = [
        *_row(1, "Traffic", [
            _panel(2, "Requests/s by version", "timeseries", "${ds}",
                   f"sum by (version) (rate(http_requests_total{{{sel}}}[5m]))"),
            _panel(3, "Error ratio", "stat", "${ds}",
                   f"sum(rate(http_request_errors_total{{{sel}}}[5m])) / sum(rate(http_requests_total{{{sel}}}[5m]))",
                   desc="Share of requests answered 5xx. SLO: below 1%."),
            _panel(4, "p95 latency", "timeseries", "${ds}",
                   f"max by (version) (service:http_request_duration_seconds:p95{{{sel}}})"),
        ], collapsed=False),
        *_row(5, "Logs", [
            _panel(6, "Checkout errors", "logs", "${logs}", f'{{{sel}, level="error"}}'),
            _panel(7, "Error lines per minute by version", "timeseries", "${logs}",
                   f'sum by (version) (count_over_time({{{sel}, level="error"}}[1m]))'),
        ], collapsed=True),
    ]
    storefront = [
        _panel(1, "Requests/s by service", "timeseries", "prom-main",
               'sum by (service) (rate(http_requests_total{service=~"cart|frontend"}[5m]))'),
        _panel(2, "p95 latency by service", "timeseries", "prom-main",
               'max by (service) (service:http_request_duration_seconds:p95{service=~"cart|frontend"})'),
    ]
    payments = [
        _panel(1, "Charges/s", "timeseries", "prom-main", 'sum(rate(http_requests_total{service="payments"}[5m]))'),
        _panel(2, "Invoices by day", "table", "billing-pg"),
    ]
    payments[1]["targets"] = [{"refId": "A", "rawSql": "SELECT day, count(*) FROM invoices GROUP BY day",
                               "datasource": {"type": "grafana-postgresql-datasource", "uid": "billing-pg"}}]
    return [
        {"id": 11, "uid": "checkout-overview", "title": "Checkout overview", "tags": ["checkout", "slo"],
         "folder": ("fld-checkout", "Checkout"), "description": "Golden signals of checkout, by version.",
         "templating": _variables("checkout"), "panels": checkout_panels, "version": 14},
        {"id": 12, "uid": "storefront-overview", "title": "Storefront overview", "tags": ["storefront"],
         "folder": ("fld-storefront", "Storefront"), "templating": {"list": []}, "panels": storefront, "version": 3},
        {"id": 13, "uid": "payments-overview", "title": "Payments overview", "tags": ["payments", "slo"],
         "folder": ("fld-payments", "Payments"), "templating": {"list": []}, "panels": payments, "version": 7},
    ]


def alert_rules(world: World) -> list[dict[str, Any]]:
    """Grafana-managed rules in the Prometheus-compatible shape, with their current instances."""
    now = world.now()
    bad = world.degraded("checkout", now)
    err = world.error_rate("checkout", now)
    fired = world.monitor_fired_at

    def instance(labels: dict[str, str], firing: bool, since: datetime, value: str) -> dict[str, Any]:
        return {"labels": labels, "annotations": {}, "state": "Alerting" if firing else "Normal",
                "activeAt": since.isoformat().replace("+00:00", "Z") if firing else "0001-01-01T00:00:00Z",
                "value": value if firing else ""}

    base = {"team": "payments-platform", "grafana_folder": "Checkout"}
    rules = [
        {"uid": "chk-err-rate", "name": "CheckoutHighErrorRate", "ds": ["prom-main"], "for": 120,
         "query": 'sum by (service) (rate(http_request_errors_total{service="checkout"}[5m])) / '
                  'sum by (service) (rate(http_requests_total{service="checkout"}[5m]))',
         "labels": {"severity": "page", **base},
         "annotations": {"summary": "Checkout error ratio above 5% for 2 minutes",
                         "runbook_url": "https://drive.example.com/runbooks/checkout-errors"},
         "instances": [instance({"alertname": "CheckoutHighErrorRate", "service": "checkout", "severity": "page",
                                 **base}, bad, fired, f"A: {err:.4g}, C: 1")]},
        {"uid": "chk-timeout-logs", "name": "CheckoutPaymentTimeoutLogs", "ds": ["loki-main"], "for": 60,
         "query": 'sum(count_over_time({service="checkout"} |= "payment timeout" [5m]))',
         "labels": {"severity": "ticket", **base},
         "annotations": {"summary": "Payment timeouts in checkout logs"},
         "instances": [instance({"alertname": "CheckoutPaymentTimeoutLogs", "service": "checkout",
                                 "severity": "ticket", **base}, bad, fired + timedelta(minutes=3), "A: 38, C: 1")]},
        {"uid": "cart-latency", "name": "CartLatencyHigh", "ds": ["prom-main"], "for": 300,
         "query": 'max(service:http_request_duration_seconds:p95{service="cart"})',
         "labels": {"severity": "ticket", "team": "storefront", "grafana_folder": "Storefront"},
         "annotations": {"summary": "Cart p95 latency above 500 ms"},
         "instances": [instance({"alertname": "CartLatencyHigh", "service": "cart", "severity": "ticket"},
                                False, fired, "")]},
    ]
    out = []
    for r in rules:
        firing = any(i["state"] == "Alerting" for i in r["instances"])
        active = min((i["activeAt"] for i in r["instances"] if i["state"] == "Alerting"), default=None)
        out.append({
            "folder": r["labels"]["grafana_folder"], "group": "slo" if "Checkout" in r["name"] else "latency",
            "rule": {
                "uid": r["uid"], "name": r["name"], "query": r["query"], "queriedDatasourceUIDs": r["ds"],
                "duration": r["for"], "labels": r["labels"], "annotations": r["annotations"],
                "state": "firing" if firing else "inactive", "health": "ok", "type": "alerting",
                "lastEvaluation": now.replace(second=0, microsecond=0).isoformat().replace("+00:00", "Z"),
                "evaluationTime": 0.012, "alerts": r["instances"], "isPaused": False, "keepFiringFor": 0,
                "folderUid": f"fld-{r['labels']['grafana_folder'].lower()}", "lastError": "",
                **({"activeAt": active} if active else {}),
                "totals": {"alerting" if firing else "normal": len(r["instances"])},
                "totalsFiltered": {"alerting" if firing else "normal": len(r["instances"])},
            },
        })
    return out


def annotations(world: World) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(at: datetime, text: str, tags: list[str], *, end: datetime | None = None, **extra: Any) -> None:
        ms = int(at.timestamp() * 1000)
        out.append({"id": len(out) + 1, "alertId": 0, "alertName": "", "dashboardId": 0, "dashboardUID": "",
                    "panelId": 0, "userId": 0, "newState": "", "prevState": "", "created": ms, "updated": ms,
                    "time": ms, "timeEnd": int(end.timestamp() * 1000) if end else ms, "text": text, "tags": tags,
                    "login": "", "email": "", "avatarUrl": "", "data": {}, **extra})

    for name in world.services:
        for r in world.releases(name):
            verb = "Rolled back" if r.kind == "rollback" else "Deployed"
            add(r.at, f"{verb} {name} {r.version} ({r.commit}) by {r.by}",
                ["deploy", *(["rollback"] if r.kind == "rollback" else []), f"service:{name}", f"version:{r.version}"])
    restored = next((r.at for r in reversed(world.releases("checkout")) if r.at > world.monitor_fired_at), None)
    add(world.flag_ramp_at, "Flag checkout_async_payments ramped 10% -> 50%",
        ["flag", "service:checkout", "checkout_async_payments"])
    add(world.incident_at, "INC-142 declared (SEV-2): checkout payments failing; tracking CHK-311",
        ["incident", "INC-142", "service:checkout"], end=restored)
    for name, at in (("CheckoutHighErrorRate", world.monitor_fired_at),):
        add(at, "", [], alertId=1, alertName=name, newState="Alerting", prevState="Normal",
            dashboardUID="checkout-overview", panelId=3, data={"values": {"A": 0.11}})
        if restored:
            add(restored + timedelta(minutes=2), "", [], alertId=1, alertName=name, newState="Normal",
                prevState="Alerting", dashboardUID="checkout-overview", panelId=3)
    return out


def loki_stats(lines: int, size: int) -> dict[str, Any]:
    """The statistics block every Loki query response carries (shape of Loki 3.x's stats.Result)."""
    chunk = {"headChunkBytes": 0, "headChunkLines": 0, "decompressedBytes": size, "decompressedLines": lines,
             "compressedBytes": size // 6, "totalDuplicates": 0, "postFilterLines": lines,
             "headChunkStructuredMetadataBytes": 0, "decompressedStructuredMetadataBytes": 0}
    store = {"totalChunksRef": 4, "totalChunksDownloaded": 4, "chunksDownloadTime": 1843211,
             "queryReferencedStructured": False, "chunk": chunk, "chunkRefsFetchTime": 402113,
             "congestionControlLatency": 0,
             "pipelineWrapperFilteredLines": 0}
    cache = {"entriesFound": 0, "entriesRequested": 0, "entriesStored": 0, "bytesReceived": 0, "bytesSent": 0,
             "requests": 0, "downloadTime": 0, "queryLengthServed": 0}
    return {
        "summary": {"bytesProcessedPerSecond": size * 40, "linesProcessedPerSecond": lines * 40,
                    "totalBytesProcessed": size, "totalLinesProcessed": lines, "execTime": 0.025, "queueTime": 0.0001,
                    "subqueries": 0, "totalEntriesReturned": lines, "splits": 1, "shards": 1,
                    "totalPostFilterLines": lines, "totalStructuredMetadataBytesProcessed": 0},
        "querier": {"store": store},
        "ingester": {"totalReached": 1, "totalChunksMatched": 0, "totalBatches": 1, "totalLinesSent": 0,
                     "store": {**store, "totalChunksRef": 0, "totalChunksDownloaded": 0}},
        "cache": {k: dict(cache) for k in ("chunk", "index", "result", "statsResult", "volumeResult", "seriesResult",
                                           "labelResult", "instantMetricResult")},
    }


# --- HTTP ----------------------------------------------------------------------------------------------
def _msg(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status)


def _prom_error(message: str, status: int = 400, kind: str = "bad_data") -> JSONResponse:
    return JSONResponse({"status": "error", "errorType": kind, "error": message}, status)


def _prom_time(v: str | None, default: float | None = None) -> float:
    if v is None or v == "":
        if default is None:
            raise ValueError("missing")
        return default
    try:
        return float(v)
    except ValueError:
        return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()


def _loki_time(v: str | None, default: float) -> float:
    if not v:
        return default
    if re.fullmatch(r"\d+", v):
        n = int(v)
        return n / 1e9 if n > 1e16 else n / 1e3 if n > 1e11 else float(n)
    return _prom_time(v)


def _step(v: str | None) -> float:
    if v is None or v == "":
        raise ValueError("missing")
    try:
        return float(v)
    except ValueError:
        return pq.parse_duration(v)


def build_app(world: World, faults: Faults | None = None, *, prometheus_url: str | None = None) -> Starlette:
    faults = faults or Faults()
    metrics, logs = WorldMetrics(world), WorldLogs(world)
    ds_uids = {d["uid"] for d in DATASOURCES}

    def guard(request: Request) -> Response | None:
        if bearer(request) != TOKEN:
            return _msg(401, "Invalid API key")
        org = request.headers.get("x-grafana-org-id")
        if org is not None and org != ORG_ID:
            return _msg(401, "User not a member of the organization")
        return faults.take()

    async def search(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        q = request.query_params
        kind = q.get("type")
        if kind not in (None, "dash-db", "dash-folder"):
            return _msg(400, "invalid type")
        try:
            limit, page = int(q.get("limit", "1000")), int(q.get("page", "1"))
        except ValueError:
            return _msg(400, "limit and page must be integers")
        if kind == "dash-folder":
            return JSONResponse([])
        text, tags = (q.get("query") or "").lower(), q.getlist("tag")
        hits = []
        for d in dashboards():
            if text and text not in d["title"].lower():
                continue
            if any(t not in d["tags"] for t in tags):
                continue
            fuid, ftitle = d["folder"]
            slug = d["title"].lower().replace(" ", "-")
            hits.append({"id": d["id"], "uid": d["uid"], "title": d["title"], "uri": f"db/{slug}",
                         "url": f"/d/{d['uid']}/{slug}", "slug": "", "type": "dash-db", "tags": d["tags"],
                         "isStarred": False, "folderId": d["id"] * 10, "folderUid": fuid, "folderTitle": ftitle,
                         "folderUrl": f"/dashboards/f/{fuid}/", "sortMeta": 0})
        hits.sort(key=lambda h: h["title"].lower())
        limit = min(max(limit, 1), 5000)
        return JSONResponse(hits[(page - 1) * limit: page * limit])

    async def dashboard(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        uid = request.path_params["uid"]
        d = next((x for x in dashboards() if x["uid"] == uid), None)
        if d is None:
            return _msg(404, "Dashboard not found")
        fuid, ftitle = d["folder"]
        body = {k: v for k, v in d.items() if k != "folder"}
        body.update({
            "schemaVersion": 39, "time": {"from": "now-6h", "to": "now"}, "timezone": "browser", "editable": True,
            "fiscalYearStartMonth": 0, "graphTooltip": 1, "links": [], "liveNow": False, "refresh": "30s",
            "timepicker": {}, "weekStart": "",
            "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                      "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                      "name": "Annotations & Alerts", "type": "dashboard"}]},
        })
        updated = (world.anchor - timedelta(days=3)).isoformat().replace("+00:00", "Z")
        meta = {"type": "db", "canSave": False, "canEdit": False, "slug": d["title"].lower().replace(" ", "-"),
                "url": f"/d/{uid}", "folderUid": fuid, "folderTitle": ftitle, "updated": updated,
                "created": updated, "version": d["version"], "provisioned": True}
        return JSONResponse({"dashboard": body, "meta": meta})

    async def datasources(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        return JSONResponse(DATASOURCES)

    async def datasource(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        d = _DS.get(request.path_params["uid"])
        return JSONResponse(d) if d else _msg(404, "Data source not found")

    async def get_annotations(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        q = request.query_params
        try:
            lo = int(q["from"]) if "from" in q else 0
            hi = int(q["to"]) if "to" in q else 2**62
            limit = int(q.get("limit", "100"))
        except ValueError:
            return _msg(400, "from, to and limit must be integers (epoch milliseconds)")
        tags, match_any = q.getlist("tags"), q.get("matchAny") == "true"
        kind, dash = q.get("type"), q.get("dashboardUID")
        out = []
        for a in annotations(world):
            if not (lo <= a["timeEnd"] and a["time"] <= hi):
                continue
            if (kind == "alert" and not a["alertId"]) or (kind == "annotation" and a["alertId"]):
                continue
            if dash and a["dashboardUID"] != dash:
                continue
            if tags and not (any if match_any else all)(t in a["tags"] for t in tags):
                continue
            out.append(a)
        out.sort(key=lambda a: a["time"], reverse=True)
        return JSONResponse(out[: max(limit, 0)])

    async def rules(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        states = {s.lower() for s in request.query_params.getlist("state")}
        known = {"normal", "inactive", "alerting", "firing", "pending", "nodata", "error", "recovering"}
        if states - known:
            return _prom_error(f"unknown state '{sorted(states - known)[0]}'")
        want = {"normal" if s in ("normal", "inactive") else "alerting" if s in ("alerting", "firing") else s
                for s in states}
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for item in alert_rules(world):
            rule = dict(item["rule"])
            if want:
                rule["alerts"] = [a for a in rule["alerts"] if a["state"].split(" ")[0].lower() in want]
                rule_state = {"firing": "alerting", "inactive": "normal"}.get(rule["state"], rule["state"])
                if rule_state not in want:
                    continue
            groups.setdefault((item["folder"], item["group"]), []).append(rule)
        data = [{"name": g, "file": f, "folderUid": f"fld-{f.lower()}", "rules": rs, "interval": 60,
                 "lastEvaluation": rs[0]["lastEvaluation"], "evaluationTime": 0.02}
                for (f, g), rs in sorted(groups.items())]
        return JSONResponse({"status": "success", "data": {"groups": data}})

    # --- datasource proxy -------------------------------------------------------------------------------
    async def proxy(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        uid, route = request.path_params["uid"], request.path_params["route"]
        if uid not in ds_uids:
            return _msg(404, "Unable to find datasource")
        kind = _DS[uid]["type"]
        if request.method != "GET" and not route.endswith(("/query", "/query_range", "/series", "/labels")):
            return _msg(403, "Datasource proxy: method not allowed for this route")
        if kind == "prometheus":
            if prometheus_url:
                return await _forward(prometheus_url, route, request)
            return _prometheus(route, request)
        if kind == "loki":
            return _loki(route, request)
        return _msg(400, f"{_DS[uid]['typeName']} datasources cannot be queried through the proxy")

    def _prometheus(route: str, request: Request) -> Response:
        q = request.query_params
        now = world.now().timestamp()
        try:
            if route == "api/v1/query_range":
                missing = [k for k in ("query", "start", "end", "step") if not q.get(k)]
                if missing:
                    return _prom_error(f'invalid parameter "{missing[0]}": missing')
                start, end, step = _prom_time(q["start"]), _prom_time(q["end"]), _step(q["step"])
                if end < start:
                    return _prom_error('invalid parameter "end": end timestamp must not be before start time')
                if step <= 0:
                    return _prom_error("zero or negative query resolution step widths are not accepted. "
                                       "Try a positive integer")
                if (end - start) / step > MAX_POINTS:
                    return _prom_error("exceeded maximum resolution of 11,000 points per timeseries. "
                                       "Try decreasing the query resolution (?step=XX)")
                result = pq.query_range(metrics, q["query"], start, end, step)
                return JSONResponse({"status": "success", "data": {"resultType": "matrix", "result": result}})
            if route == "api/v1/query":
                if not q.get("query"):
                    return _prom_error('invalid parameter "query": missing')
                kind, result = pq.query_instant(metrics, q["query"], _prom_time(q.get("time"), now))
                return JSONResponse({"status": "success", "data": {"resultType": kind, "result": result}})
            if route == "api/v1/labels" or (route.startswith("api/v1/label/") and route.endswith("/values")):
                start, end = _prom_time(q.get("start"), now - 3600 * 6), _prom_time(q.get("end"), now)
                matches = q.getlist("match[]")
                sels = [pq.parse(m) for m in matches]
                found: set[str] = set()
                label = None if route == "api/v1/labels" else route[len("api/v1/label/"):-len("/values")]
                for metric, seg in metrics.all_series(start, end):
                    labels = dict(metrics.labels(metric, seg))
                    if sels and not any(isinstance(s, pq.Selector) and all(m.matches(labels.get(m.name, ""))
                                                                            for m in s.matchers) for s in sels):
                        continue
                    if label is None:
                        found.update(labels)
                    elif label in labels:
                        found.add(labels[label])
                return JSONResponse({"status": "success", "data": sorted(found)})
        except pq.PromQLError as e:
            return _prom_error(str(e))
        except ValueError as e:
            return _prom_error(f"invalid parameter: {e}")
        return PlainTextResponse("404 page not found", 404)

    def _loki(route: str, request: Request) -> Response:
        q = request.query_params
        now = world.now().timestamp()
        try:
            end = _loki_time(q.get("end"), now)
            start = _loki_time(q.get("start"), end - 3600)
        except ValueError:
            return PlainTextResponse("invalid start or end time", 400)
        if end < start:
            return PlainTextResponse("end timestamp must not be before or equal to start time", 400)
        query = q.get("query") or ""
        if route == "loki/api/v1/index/stats":
            try:
                node = pq.parse(query, logql=True)
            except pq.PromQLError as e:
                return PlainTextResponse(str(e), 400)
            if not isinstance(node, pq.Selector) or node.pipeline or node.range_s:
                return PlainTextResponse("parse error: only stream selectors (label matchers) are accepted", 400)
            streams, entries, size = set(), 0, 0
            for ln in logs.lines(node, start, end):
                streams.add(ln.labels)
                entries += 1
                size += len(ln.line)
            return JSONResponse({"streams": len(streams), "chunks": len(streams) * max(1, int((end - start) // 3600)),
                                 "entries": entries, "bytes": size})
        if route != "loki/api/v1/query_range":
            return PlainTextResponse("404 page not found", 404)
        if not query:
            return PlainTextResponse("query must be supplied", 400)
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            return PlainTextResponse("invalid limit", 400)
        if limit <= 0 or limit > 5000:
            return PlainTextResponse(f"max entries limit per query exceeded, limit > max_entries_limit (5000): {limit}",
                                     400)
        direction = q.get("direction", "backward")
        if direction not in ("forward", "backward"):
            return PlainTextResponse(f"invalid direction '{direction}'", 400)
        try:
            node = pq.parse(query, logql=True)
            if isinstance(node, pq.Selector) and node.range_s is None:
                taken = []
                for ln in logs.lines(node, start, end, backward=direction == "backward"):
                    taken.append(ln)
                    if len(taken) >= limit:
                        break
                streams: dict[pq.Labels, list[list[str]]] = {}
                for ln in taken:
                    streams.setdefault(ln.labels, []).append([str(ln.ts_ns), ln.line])
                result = [{"stream": dict(k), "values": v} for k, v in streams.items()]
                return JSONResponse({"status": "success", "data": {
                    "resultType": "streams", "result": result,
                    "stats": loki_stats(len(taken), sum(len(ln.line) for ln in taken))}})
            step = _step(q.get("step")) if q.get("step") else max(1.0, math.ceil((end - start) / 250))
            matrix = pq.query_range(logs, query, start, end, step, logql=True)
            return JSONResponse({"status": "success", "data": {"resultType": "matrix", "result": matrix,
                                                               "stats": loki_stats(0, 0)}})
        except pq.PromQLError as e:
            return PlainTextResponse(str(e), 400)
        except ValueError as e:
            return PlainTextResponse(f"invalid parameter: {e}", 400)

    async def _forward(base: str, route: str, request: Request) -> Response:
        async with httpx2.AsyncClient(timeout=20) as c:
            r = await c.get(f"{base.rstrip('/')}/{route}", params=list(request.query_params.multi_items()))
        return Response(r.content, r.status_code, media_type=r.headers.get("content-type"))

    return Starlette(routes=[
        Route("/api/search", search, methods=["GET"]),
        Route("/api/dashboards/uid/{uid}", dashboard, methods=["GET"]),
        Route("/api/datasources", datasources, methods=["GET"]),
        Route("/api/datasources/uid/{uid}", datasource, methods=["GET"]),
        Route("/api/annotations", get_annotations, methods=["GET"]),
        Route("/api/prometheus/grafana/api/v1/rules", rules, methods=["GET"]),
        Route("/api/datasources/proxy/uid/{uid}/{route:path}", proxy, methods=["GET", "POST", "DELETE"]),
    ])


def sandbox_env(base_url: str) -> dict[str, str]:
    """The environment that points Spyglass's Grafana client at this fake (GRAFANA_URL is the base)."""
    return {"GRAFANA_URL": base_url, "GRAFANA_SERVICE_ACCOUNT_TOKEN": TOKEN, "GRAFANA_ORG_ID": ORG_ID}
