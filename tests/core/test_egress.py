"""The egress client: allowlist before any I/O, retries, Retry-After, byte cap, typed errors."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from guards.record import CallRecord, bind_record, unbind_record
from servers._core.egress import EgressClient, RetryPolicy, Route
from servers._core.errors import EgressDenied, MissingAccess, NotFound, RateLimited, UpstreamError, UpstreamTimeout

pytestmark = pytest.mark.anyio
ROUTES = (Route("GET", "/api/v1/items/{item_id}"), Route("POST", "/api/v2/search", retry=True),
          Route("POST", "/api/v1/create"))


def client(handler: Any, **kw: Any) -> tuple[EgressClient, list[httpx2.Request], list[float]]:
    seen: list[httpx2.Request] = []
    slept: list[float] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return handler(request, len(seen))

    async def sleep(s: float) -> None:
        slept.append(s)

    c = EgressClient(upstream="vendor", base_url="http://up.test/prefix", routes=ROUTES,
                     transport=httpx2.MockTransport(record), sleep=sleep, **kw)
    return c, seen, slept


def always(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    return lambda req, n: httpx2.Response(status, json=body if body is not None else {"ok": True}, headers=headers)


async def test_a_route_outside_the_allowlist_fails_without_any_network_io() -> None:
    c, seen, _ = client(always(200))
    with pytest.raises(EgressDenied, match=r"DELETE /api/v1/items/\{item_id\} is not in this client's route allowlist"):
        await c.request("DELETE", "/api/v1/items/{item_id}", path_params={"item_id": "1"})
    with pytest.raises(EgressDenied):
        await c.request("GET", "/api/v1/other")
    assert seen == []


@pytest.mark.parametrize("value", ["../admin", "a/b", "..", "", "x?y=1", "http://evil.test/"])
async def test_path_parameters_cannot_escape_their_segment(value: str) -> None:
    c, seen, _ = client(always(200))
    try:
        await c.request("GET", "/api/v1/items/{item_id}", path_params={"item_id": value})
    except EgressDenied:
        assert seen == []
        return
    assert seen[0].url.host == "up.test"
    assert seen[0].url.raw_path.decode().count("/") == 5  # /prefix/api/v1/items/<one segment>


async def test_5xx_on_a_retryable_route_is_retried_with_backoff_then_succeeds() -> None:
    c, seen, slept = client(lambda req, n: httpx2.Response(503 if n < 3 else 200, json={"n": n}))
    resp = await c.request("GET", "/api/v1/items/{item_id}", path_params={"item_id": "1"})
    assert resp.json() == {"n": 3} and len(seen) == 3 and len(slept) == 2


async def test_a_non_retryable_write_route_is_not_retried() -> None:
    c, seen, _ = client(always(503))
    with pytest.raises(UpstreamError) as e:
        await c.request("POST", "/api/v1/create", json={})
    assert len(seen) == 1 and e.value.retryable


async def test_429_honours_retry_after_within_the_budget() -> None:
    c, seen, slept = client(lambda req, n: httpx2.Response(429 if n == 1 else 200, json={},
                                                           headers={"Retry-After": "2"}))
    await c.request("POST", "/api/v2/search", json={})
    assert slept == [2.0] and len(seen) == 2


async def test_429_beyond_the_budget_becomes_rate_limited_with_the_wait() -> None:
    c, _seen, slept = client(always(429, {"errors": ["slow down"]}, {"Retry-After": "120"}))
    with pytest.raises(RateLimited) as e:
        await c.request("POST", "/api/v2/search", json={})
    assert e.value.retry_after_s == 120 and "retry after 120s" in e.value.render() and slept == []


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [(401, MissingAccess, "vendor answered 401: bad key"), (403, MissingAccess, "vendor answered 403"),
     (404, NotFound, "not found"), (400, UpstreamError, "vendor answered 400: bad key")],
)
async def test_status_codes_map_to_typed_errors_with_the_vendor_message(status: int, error: type, text: str) -> None:
    c, _, _ = client(always(status, {"errors": ["bad key"]}))
    with pytest.raises(error, match=text):
        await c.request("GET", "/api/v1/items/{item_id}", path_params={"item_id": "1"})


async def test_connection_errors_are_retried_then_reported_as_unreachable() -> None:
    def handler(req: httpx2.Request, n: int) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=req)

    c, seen, _ = client(handler)
    with pytest.raises(UpstreamError, match="cannot reach vendor"):
        await c.request("GET", "/api/v1/items/{item_id}", path_params={"item_id": "1"})
    assert len(seen) == 3


async def test_timeouts_become_typed_timeouts() -> None:
    def handler(req: httpx2.Request, n: int) -> httpx2.Response:
        raise httpx2.ReadTimeout("slow", request=req)

    c, _, _ = client(handler)
    with pytest.raises(UpstreamTimeout):
        await c.request("GET", "/api/v1/items/{item_id}", path_params={"item_id": "1"})


async def test_an_oversized_response_is_refused_without_buffering_it() -> None:
    c, _, _ = client(lambda req, n: httpx2.Response(200, content=b"x" * 5000), max_response_bytes=1000)
    with pytest.raises(UpstreamError, match="exceeded 1000 bytes"):
        await c.request("GET", "/api/v1/items/{item_id}", path_params={"item_id": "1"})


async def test_a_malformed_body_is_a_clear_upstream_error() -> None:
    c, _, _ = client(lambda req, n: httpx2.Response(200, content=b"<html>oops"))
    resp = await c.request("GET", "/api/v1/items/{item_id}", path_params={"item_id": "1"})
    with pytest.raises(UpstreamError, match="not JSON"):
        resp.json()


async def recorded_item_request(c: Any) -> CallRecord:
    """One GET of an item with a call record bound, as the seam binds one; the record it filled."""
    record = CallRecord()
    token = bind_record(record)
    try:
        await c.request("GET", "/api/v1/items/{item_id}", path_params={"item_id": "1"})
    finally:
        unbind_record(token)
    return record


async def test_attempts_status_and_rate_limit_headers_land_in_the_call_record() -> None:
    headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "12", "X-RateLimit-Reset": "30"}
    c, _, _ = client(lambda req, n: httpx2.Response(502 if n == 1 else 200, json={}, headers=headers))
    record = await recorded_item_request(c)
    assert record.upstream_calls == 2 and record.upstream_status == 200
    assert record.rate_limit is not None and (record.rate_limit.limit, record.rate_limit.remaining) == (300, 12)


async def test_redirects_are_not_followed_off_the_allowlisted_host() -> None:
    c, seen, _ = client(always(302, {}, {"Location": "http://evil.test/"}))
    with pytest.raises(UpstreamError):
        await c.request("GET", "/api/v1/items/{item_id}", path_params={"item_id": "1"})
    assert len(seen) == 1


async def test_a_call_past_its_deadline_times_out_without_sending() -> None:
    import time

    c, seen, _ = client(always(200))
    record = CallRecord(deadline=time.monotonic() - 1)
    token = bind_record(record)
    try:
        with pytest.raises(UpstreamTimeout, match="ran out of its time budget"):
            await c.request("GET", "/api/v1/items/{item_id}", path_params={"item_id": "1"})
    finally:
        unbind_record(token)
    assert seen == []


async def test_a_wait_for_retry_after_longer_than_the_deadline_is_not_attempted() -> None:
    import time

    c, _seen, slept = client(always(429, {}, {"Retry-After": "3"}))
    token = bind_record(CallRecord(deadline=time.monotonic() + 2))
    try:
        with pytest.raises(RateLimited):
            await c.request("POST", "/api/v2/search", json={})
    finally:
        unbind_record(token)
    assert slept == []


def test_retry_policy_defaults_are_bounded() -> None:
    assert RetryPolicy().attempts == 3 and RetryPolicy().budget_s <= 5


async def test_linears_rate_limit_reset_in_epoch_milliseconds_becomes_seconds_from_now() -> None:
    import time

    reset_ms = int((time.time() + 60) * 1000)
    headers = {"X-RateLimit-Requests-Limit": "5000", "X-RateLimit-Requests-Remaining": "4999",
               "X-RateLimit-Requests-Reset": str(reset_ms)}
    c, _, _ = client(always(200, {}, headers))
    snap = (await recorded_item_request(c)).rate_limit
    assert snap is not None and (snap.limit, snap.remaining) == (5000, 4999)
    assert snap.reset_s is not None and 55 <= snap.reset_s <= 60


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"code": 403, "message": "The caller does not have permission", "status": "PERMISSION_DENIED"}},
         "The caller does not have permission"),  # Google
        ({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED"}}, "RESOURCE_EXHAUSTED"),
        ({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, "invalid_grant"),
        ({"errors": [{"message": "Authentication required"}]}, "Authentication required"),  # Linear GraphQL
        ({"error": "permission denied", "code": 7, "message": "permission denied"}, "permission denied"),  # Argo CD
        ({"errors": [{"status": "400", "title": "Bad Request", "detail": "invalid query"}]}, "invalid query"),
        ({"errors": [{"status": "429", "title": "Too many requests"}]}, "Too many requests"),  # Datadog JSON:API
        ({"errors": ["a", "b", "c", "d"]}, "a; b; c"),
    ],
)
def test_the_default_error_message_reads_each_vendors_error_body(body: Any, expected: str) -> None:
    import json

    from servers._core.egress import default_error_message

    assert default_error_message(json.dumps(body).encode()) == expected
