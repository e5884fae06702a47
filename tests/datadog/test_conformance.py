"""Every request the Datadog client sends conforms to Datadog's official OpenAPI specs."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from servers._core.egress import Route
from servers._core.world import World
from servers.datadog.client import ROUTES
from servers.datadog.fake_apm import issue_id, trace_id
from tests.conformance import Recorded, openapi, openapi_errors, specs_available
from tests.conftest import Harness

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(not specs_available(), reason="../shared/specs not found")]

HOST = "https://api.datadoghq.com"
TRACE = trace_id(int(World().anchor.timestamp() // 60) - 2, 2)  # a checkout trace two minutes ago
POOL_ISSUE = issue_id("checkout", "PaymentGatewayTimeout")
AUTH = {"dd-api-key": "k", "dd-application-key": "a"}
CALLS = [
    ("datadog_search_logs", {"query": "service:checkout status:error", "limit": 10, "index": "main"}),
    ("datadog_aggregate_logs", {"query": "status:error", "group_by": ["service"], "compute": "pc95:@duration"}),
    ("datadog_aggregate_logs", {"group_by": ["service", "version"]}),
    ("datadog_query_metrics", {"query": "avg:trace.http.request.hits{service:checkout}"}),
    ("datadog_search_spans", {"query": "service:checkout status:error", "limit": 5}),
    ("datadog_get_trace", {"trace_id": TRACE}),
    ("datadog_search_error_issues", {"query": "service:checkout", "order": "first_seen"}),
    ("datadog_get_error_issue", {"issue_id": POOL_ISSUE}),  # issue, aggregate by version, latest sample
    ("datadog_list_monitors", {"query": "checkout", "tags": ["service:checkout"], "state": "triggered"}),
    ("datadog_get_monitor", {"monitor_id": 4410021}),
    ("datadog_search_incidents", {"query": "state:active AND severity:(SEV-1 OR SEV-2)", "limit": 5}),
    ("datadog_get_incident", {"incident_id": "INC-142"}),  # search (by number), incident, impacts, todos
    ("datadog_search_events", {"service": "checkout", "source": "argocd", "from": "now-2h"}),
    ("datadog_search_dashboards", {"query": "checkout"}),  # lists pages until it has enough
    ("datadog_get_dashboard", {"dashboard_id": "chk-svc-001"}),
]
# Requests per call beyond one: get_error_issue 3, get_incident 4, search_dashboards 2 (two list pages).
EXTRA_REQUESTS = 2 + 3 + 1


def route_of(rec: Recorded) -> Route | None:
    path = urlsplit(rec.url).path.removeprefix("/datadog")
    for r in ROUTES:
        if r.method == rec.method and re.fullmatch(re.sub(r"\\{\w+\\}", "[^/]+", re.escape(r.template)), path):
            return r
    return None


def spec_for(rec: Recorded) -> str:
    return "datadog-v1-openapi.yaml" if "/api/v1/" in rec.url else "datadog-v2-openapi.yaml"


async def test_every_datadog_request_validates_against_the_official_spec(harness: Harness) -> None:
    async with harness.client(harness.server(toolsets=["datadog"])) as c:
        for tool, args in CALLS:
            r = await c.call_tool(tool, args)
            assert not r.is_error, r.content
    assert len(harness.transport.requests) == len(CALLS) + EXTRA_REQUESTS
    assert {route_of(rec) for rec in harness.transport.requests} == set(ROUTES), "a route no call exercises"
    errors = [e for rec in harness.transport.requests
              for e in openapi_errors(openapi(spec_for(rec)), rec, host_url=HOST, strip_prefix="/datadog")]
    assert errors == []


def test_the_validator_is_on_a_known_bad_request_is_rejected() -> None:
    bad = Recorded("POST", "http://sandbox.test/datadog/api/v2/logs/events/search",
                   {"content-type": "application/json", **AUTH}, b'{"page": {"limit": "many"}, "sort": "sideways"}')
    assert openapi_errors(openapi("datadog-v2-openapi.yaml"), bad, host_url=HOST, strip_prefix="/datadog")
    missing = Recorded("GET", "http://sandbox.test/datadog/api/v1/query?query=x", AUTH, b"")
    assert openapi_errors(openapi("datadog-v1-openapi.yaml"), missing, host_url=HOST, strip_prefix="/datadog")
    unwrapped = Recorded("POST", "http://sandbox.test/datadog/api/v2/error-tracking/issues/search",
                         {"content-type": "application/json", **AUTH}, b'{"query": "*", "from": 1, "to": 2}')
    assert openapi_errors(openapi("datadog-v2-openapi.yaml"), unwrapped, host_url=HOST, strip_prefix="/datadog")
    no_query = Recorded("GET", "http://sandbox.test/datadog/api/v2/incidents/search?page%5Bsize%5D=5", AUTH, b"")
    assert openapi_errors(openapi("datadog-v2-openapi.yaml"), no_query, host_url=HOST, strip_prefix="/datadog")
