"""Every request the Datadog client sends conforms to Datadog's official OpenAPI specs."""

from __future__ import annotations

import pytest

from tests.conformance import Recorded, openapi, openapi_errors, specs_available
from tests.conftest import Harness

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(not specs_available(), reason="../shared/specs not found")]

HOST = "https://api.datadoghq.com"
AUTH = {"dd-api-key": "k", "dd-application-key": "a"}
CALLS = [
    ("datadog_search_logs", {"query": "service:checkout status:error", "limit": 10, "index": "main"}),
    ("datadog_aggregate_logs", {"query": "status:error", "group_by": ["service"], "compute": "pc95:@duration"}),
    ("datadog_aggregate_logs", {"group_by": ["service", "version"]}),
    ("datadog_query_metrics", {"query": "avg:trace.http.request.hits{service:checkout}"}),
]


def spec_for(rec: Recorded) -> str:
    return "datadog-v1-openapi.yaml" if "/api/v1/" in rec.url else "datadog-v2-openapi.yaml"


async def test_every_datadog_request_validates_against_the_official_spec(harness: Harness) -> None:
    async with harness.client(harness.server(toolsets=["datadog"])) as c:
        for tool, args in CALLS:
            r = await c.call_tool(tool, args)
            assert not r.is_error, r.content
    assert len(harness.transport.requests) == len(CALLS)
    errors = [e for rec in harness.transport.requests
              for e in openapi_errors(openapi(spec_for(rec)), rec, host_url=HOST, strip_prefix="/datadog")]
    assert errors == []


def test_the_validator_is_on_a_known_bad_request_is_rejected() -> None:
    bad = Recorded("POST", "http://sandbox.test/datadog/api/v2/logs/events/search",
                   {"content-type": "application/json", **AUTH}, b'{"page": {"limit": "many"}, "sort": "sideways"}')
    assert openapi_errors(openapi("datadog-v2-openapi.yaml"), bad, host_url=HOST, strip_prefix="/datadog")
    missing = Recorded("GET", "http://sandbox.test/datadog/api/v1/query?query=x", AUTH, b"")
    assert openapi_errors(openapi("datadog-v1-openapi.yaml"), missing, host_url=HOST, strip_prefix="/datadog")
