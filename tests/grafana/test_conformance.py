"""Every request the Grafana client sends conforms to what the real servers accept.

* Grafana's own endpoints: validated against Grafana's official OpenAPI spec (servers base ``/api``).
* Datasource proxy requests: the Grafana part against the spec's proxy route (the route's tail is one
  path parameter there), the Prometheus / Loki part by small explicit checks of their documented HTTP
  API parameters (required names, types, allowed values; nothing unknown; GET without a body).
* The Grafana Alerting rules endpoint (``/api/prometheus/grafana/api/v1/rules``) is not in the spec:
  checked against the query parameters Grafana's source reads.

Each validator is proven on by a known-bad request it rejects.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from mcp import Client

from servers.grafana.client import ROUTES
from tests.conformance import Recorded, openapi, openapi_errors, specs_available
from tests.conftest import Harness

pytestmark = pytest.mark.anyio

SPEC = "grafana-openapi3.json"
HOST = "https://grafana.example.com"
PREFIX = "/grafana"  # where the sandbox mounts the fake
PROXY = re.compile(r"^/api/datasources/proxy/uid/([^/]+)/(.+)$")
RULES_PATH = "/api/prometheus/grafana/api/v1/rules"

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("grafana_search_dashboards", {"query": "checkout", "tags": ["slo"], "limit": 5}),
    ("grafana_get_dashboard_summary", {"uid": "checkout-overview"}),
    ("grafana_list_datasources", {}),
    ("grafana_query_prometheus", {"query": 'sum by (version) (rate(http_requests_total{service="checkout"}[5m]))',
                                  "datasource_uid": "prom-main", "from": "now-30m"}),
    ("grafana_query_prometheus", {"query": "up", "instant": True}),
    ("grafana_prometheus_metadata", {"kind": "metrics"}),
    ("grafana_prometheus_metadata", {"kind": "labels", "match": '{service="cart"}'}),
    ("grafana_prometheus_metadata", {"kind": "label_values", "label": "version", "match": '{service="checkout"}'}),
    ("grafana_query_loki", {"query": '{service="checkout", level="error"} |= "timeout"', "limit": 3}),
    ("grafana_query_loki", {"query": 'sum by (version) (count_over_time({service="checkout"}[5m]))'}),
    ("grafana_list_alerts", {"state": "firing"}),
    ("grafana_list_alerts", {}),
    ("grafana_get_annotations", {"from": "now-2h", "tags": ["deploy"], "dashboard_uid": "checkout-overview"}),
]


# --- explicit checks for the Prometheus and Loki HTTP APIs, as documented upstream -----------------------
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_FLOAT = re.compile(r"^-?\d+(\.\d+)?$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _rfc3339_or_unix(v: str) -> bool:
    if _FLOAT.match(v):
        return True
    try:
        datetime.fromisoformat(v.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _loki_time(v: str) -> bool:  # nanosecond epoch, float seconds or RFC3339
    return v.isdigit() or _rfc3339_or_unix(v)


def _duration_or_float(v: str) -> bool:
    return bool(_DURATION.match(v) or (_FLOAT.match(v) and float(v) > 0))


def _selector(v: str) -> bool:  # a stream selector only: label matchers in braces
    matcher = r'[a-zA-Z_]\w*\s*(=|!=|=~|!~)\s*"[^"]*"'
    return re.fullmatch(rf"\{{\s*{matcher}(\s*,\s*{matcher})*\s*\}}", v) is not None


Check = dict[str, Any]
PROM: dict[str, Check] = {
    "api/v1/query": {"required": {"query"},
                     "types": {"query": bool, "time": _rfc3339_or_unix, "timeout": _DURATION.match}},
    "api/v1/query_range": {"required": {"query", "start", "end", "step"},
                           "types": {"query": bool, "start": _rfc3339_or_unix, "end": _rfc3339_or_unix,
                                     "step": _duration_or_float,
                                     "timeout": _DURATION.match}},
    "api/v1/labels": {"required": set(), "types": {"start": _rfc3339_or_unix, "end": _rfc3339_or_unix,
                                                    "match[]": lambda v: bool(v.strip())}},
    "api/v1/label/{name}/values": {"required": set(), "types": {"start": _rfc3339_or_unix, "end": _rfc3339_or_unix,
                                                                "match[]": lambda v: bool(v.strip())}},
}
LOKI: dict[str, Check] = {
    "loki/api/v1/query_range": {"required": {"query"},
                                "types": {"query": bool, "start": _loki_time, "end": _loki_time,
                                          "since": _DURATION.match,
                                          "limit": lambda v: v.isdigit() and int(v) > 0,
                                          "direction": lambda v: v in ("forward", "backward"),
                                          "step": _duration_or_float, "interval": _duration_or_float}},
    "loki/api/v1/index/stats": {"required": {"query", "start", "end"},
                                "types": {"query": _selector, "start": _loki_time, "end": _loki_time}},
}
RULES_PARAMS: Check = {  # what Grafana's RouteGetRuleStatuses reads
    "required": set(),
    "types": {"state": lambda v: v.lower() in ("normal", "inactive", "alerting", "firing", "pending", "nodata",
                                               "error", "recovering"),
              "health": lambda v: v.lower() in ("ok", "error", "nodata", "unknown"),
              "limit_alerts": str.isdigit, "limit_rules": str.isdigit, "group_limit": str.isdigit,
              "rule_limit": str.isdigit, "rule_name": bool, "rule_group": bool, "rule_uid": bool, "folder_uid": bool,
              "dashboard_uid": bool, "panel_id": str.isdigit, "datasource_uid": bool, "matcher": bool,
              "group_next_token": bool, "includeInternalLabels": lambda v: v in ("true", "false"),
              "type": lambda v: v in ("alerting", "recording")},
}


def check_params(name: str, check: Check, rec: Recorded, query: list[tuple[str, str]]) -> list[str]:
    errors = []
    if rec.method != "GET" or rec.body:
        errors.append(f"{name}: must be a GET without a body, got {rec.method} with {len(rec.body)} bytes")
    names = {k for k, _ in query}
    errors += [f"{name}: missing required parameter {k!r}" for k in sorted(check["required"] - names)]
    for k, v in query:
        test = check["types"].get(k)
        if test is None:
            errors.append(f"{name}: unknown parameter {k!r}")
        elif not test(v):
            errors.append(f"{name}: bad value for {k!r}: {v!r}")
    return errors


def proxy_errors(rec: Recorded, ds_type: str) -> list[str]:
    parts = urlsplit(rec.url)
    path = parts.path.removeprefix(PREFIX)
    m = PROXY.match(path)
    assert m, path
    uid, route = m.groups()
    query = parse_qsl(parts.query, keep_blank_values=True)
    # Grafana's side: the spec's proxy route has the tail as one path parameter.
    collapsed = Recorded(rec.method, f"{HOST}/api/datasources/proxy/uid/{uid}/{quote(route, safe='')}?{parts.query}",
                         rec.headers, rec.body)
    errors = openapi_errors(openapi(SPEC, server_base_url=HOST + "/api"), collapsed, host_url=HOST)
    if ds_type == "prometheus":
        label = re.fullmatch(r"api/v1/label/([^/]+)/values", route)
        if label and not (_LABEL.match(label.group(1)) or label.group(1) == "__name__"):
            errors.append(f"bad label name in {route}")
        key = "api/v1/label/{name}/values" if label else route
        known = PROM.get(key)
    else:
        known = LOKI.get(route)
    errors += check_params(route, known, rec, query) if known else [f"not a {ds_type} read route: {route}"]
    return errors


def request_errors(rec: Recorded) -> list[str]:
    parts = urlsplit(rec.url)
    path = parts.path.removeprefix(PREFIX)
    if path == RULES_PATH:
        return check_params("rules", RULES_PARAMS, rec, parse_qsl(parts.query, keep_blank_values=True))
    if PROXY.match(path):
        uid = PROXY.match(path).group(1)  # type: ignore[union-attr]
        return proxy_errors(rec, {"prom-main": "prometheus", "loki-main": "loki"}[uid])
    return openapi_errors(openapi(SPEC, server_base_url=HOST + "/api"), rec, host_url=HOST, strip_prefix=PREFIX)


needs_specs = pytest.mark.skipif(not specs_available(), reason="../shared/specs not found")


@needs_specs
async def test_every_grafana_request_conforms(gf: Client, gh: Harness) -> None:
    for tool, args in CALLS:
        r = await gf.call_tool(tool, args)
        assert not r.is_error, (tool, r.content)
    paths = {urlsplit(r.url).path.removeprefix(PREFIX) for r in gh.transport.requests}
    assert any("/loki/api/v1/index/stats" in p for p in paths) and any(p.endswith("/api/v1/query_range") for p in paths)
    assert RULES_PATH in paths and "/api/annotations" in paths and "/api/search" in paths
    errors = [e for rec in gh.transport.requests for e in request_errors(rec)]
    assert errors == []


def test_the_client_allowlists_only_get_routes() -> None:
    assert {r.method for r in ROUTES} == {"GET"}
    assert all(r.template.startswith("/api/") for r in ROUTES)


@needs_specs
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("/api/search?type=dashboard", "type is dash-db or dash-folder"),
        ("/api/annotations?from=yesterday", "from is epoch milliseconds"),
        ("/api/datasources/proxy/uid/prom-main/api/v1/query_range?query=up&start=1&end=2", "step is required"),
        ("/api/datasources/proxy/uid/prom-main/api/v1/query?query=up&time=noon", "time is RFC3339 or unix"),
        ("/api/datasources/proxy/uid/prom-main/api/v1/admin/tsdb/delete_series", "not a read route"),
        ("/api/datasources/proxy/uid/loki-main/loki/api/v1/query_range?query=%7Ba%3D%22b%22%7D&direction=sideways",
         "direction is forward or backward"),
        ("/api/datasources/proxy/uid/loki-main/loki/api/v1/index/stats?query=%7Ba%3D%22b%22%7D+%7C%3D+%22x%22"
         "&start=1&end=2", "index stats take a stream selector only"),
        ("/api/prometheus/grafana/api/v1/rules?state=angry", "unknown alert state"),
    ],
)
def test_each_validator_rejects_a_known_bad_request(url: str, why: str) -> None:
    bad = Recorded("GET", f"http://sandbox.test{PREFIX}{url}", {"authorization": "Bearer x"}, b"")
    assert request_errors(bad), why


@needs_specs
def test_a_write_through_the_proxy_is_rejected() -> None:
    bad = Recorded("POST", f"http://sandbox.test{PREFIX}/api/datasources/proxy/uid/prom-main/api/v1/query?query=up",
                   {"authorization": "Bearer x"}, b"query=up")
    assert any("must be a GET without a body" in e for e in request_errors(bad))
