"""Every request the Statsig client sends conforms to Statsig's Console API spec.

Validated against the ``.prism-patched.json`` copy: the published file has schemas that reject every
``?limit=`` and silently disable body validation (see ../shared/TESTING.md).
"""

from __future__ import annotations

import pytest

from tests.conformance import Recorded, openapi, openapi_errors, specs_available
from tests.conftest import Harness

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(not specs_available(), reason="../shared/specs not found")]

SPEC = "statsig-console-api-openapi.prism-patched.json"
HOST = "https://statsigapi.net"
AUTH = {"statsig-api-key": "console-k"}
CALLS = [
    ("statsig_list", {"kind": "gate"}),
    ("statsig_list", {"kind": "gate", "tags": ["checkout", "payments"]}),
    ("statsig_list", {"kind": "experiment", "tags": ["checkout"]}),
    ("statsig_list", {"kind": "dynamic_config", "search": "pool"}),
    ("statsig_list", {"kind": "segment", "tags": ["storefront"]}),
    ("statsig_get", {"kind": "gate", "id": "checkout_async_payments"}),
    ("statsig_get", {"kind": "experiment", "id": "checkout_one_page_flow"}),
    ("statsig_get", {"kind": "dynamic_config", "id": "payment_pool_settings"}),
    ("statsig_get", {"kind": "segment", "id": "beta_testers"}),
    ("statsig_get_changes", {"from": "7d", "entity": "checkout_async_payments"}),
]


async def test_every_statsig_request_validates_against_the_console_api_spec(harness: Harness) -> None:
    async with harness.client(harness.server(toolsets=["statsig"])) as c:
        for tool, args in CALLS:
            r = await c.call_tool(tool, args)
            assert not r.is_error, r.content
    sent = harness.transport.requests
    assert len(sent) == len(CALLS) + 1  # the experiment read also fetches its pulse results
    assert {r.headers.get("statsig-api-key") for r in sent} == {harness.sandbox.env("x")["STATSIG_CONSOLE_API_KEY"]}
    errors = [e for rec in sent for e in openapi_errors(openapi(SPEC), rec, host_url=HOST, strip_prefix="/statsig")]
    assert errors == []


@pytest.mark.parametrize(
    "url",
    [
        "http://sandbox.test/statsig/console/v1/gates?limit=many",
        "http://sandbox.test/statsig/console/v1/audit_logs?sortOrder=sideways",
        "http://sandbox.test/statsig/console/v1/experiments/x/pulse_results?control=a",
        "http://sandbox.test/statsig/console/v1/flags",
    ],
)
def test_the_validator_is_on_known_bad_requests_are_rejected(url: str) -> None:
    assert openapi_errors(openapi(SPEC), Recorded("GET", url, AUTH, b""), host_url=HOST, strip_prefix="/statsig")


def test_the_validator_rejects_a_request_without_the_api_key_header() -> None:
    bare = Recorded("GET", "http://sandbox.test/statsig/console/v1/gates", {}, b"")
    assert openapi_errors(openapi(SPEC), bare, host_url=HOST, strip_prefix="/statsig")
