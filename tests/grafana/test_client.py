"""The Grafana client's public API other packages rely on (deploy preconditions: firing_alerts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from servers._core.errors import EgressDenied, MissingAccess, NotFound
from servers._core.spec import ClientEnv
from servers._core.timeparse import iso
from servers.grafana.client import GrafanaClient, make_client
from servers.grafana.settings import GrafanaSettings
from servers.sandbox import Sandbox, build_sandbox
from tests.conformance import RecordingTransport

pytestmark = pytest.mark.anyio


@pytest.fixture
def sandbox() -> Sandbox:
    return build_sandbox(upstreams=["grafana"])


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[GrafanaClient]:
    env = ClientEnv(env=sandbox.env("http://sandbox.test"),
                    transport=RecordingTransport(httpx2.ASGITransport(app=sandbox.app)))
    c = make_client(env)
    yield c
    await c.aclose()


async def test_firing_alerts_returns_name_state_since_for_the_service(client: GrafanaClient, sandbox: Sandbox) -> None:
    alerts = await client.firing_alerts("checkout")
    fired = sandbox.world.monitor_fired_at
    assert alerts == [
        {"name": "CheckoutHighErrorRate", "state": "firing", "since": iso(fired)},
        {"name": "CheckoutPaymentTimeoutLogs", "state": "firing", "since": iso(fired + timedelta(minutes=3))},
    ]
    assert all(set(a) == {"name", "state", "since"} and all(isinstance(v, str) for v in a.values()) for a in alerts)


async def test_firing_alerts_is_empty_for_a_healthy_service_and_after_a_rollback(client: GrafanaClient,
                                                                                 sandbox: Sandbox) -> None:
    assert await client.firing_alerts("cart") == []
    sandbox.world.record_release("checkout", "2.13.4", "4b7d0a1", "oncall", kind="rollback")
    assert await client.firing_alerts("checkout") == []


async def test_the_client_refuses_routes_outside_its_allowlist_before_sending(client: GrafanaClient) -> None:
    with pytest.raises(EgressDenied):
        await client.http.request("POST", "/api/datasources/proxy/uid/{uid}/api/v1/query", path_params={"uid": "x"})
    with pytest.raises(EgressDenied):
        await client.http.request("GET", "/api/datasources/proxy/uid/{uid}/api/v1/admin/tsdb/snapshot",
                                  path_params={"uid": "prom-main"})
    transport = client.http._http._transport
    assert isinstance(transport, RecordingTransport) and transport.requests == []


async def test_a_datasource_uid_cannot_step_out_of_the_proxy_path(client: GrafanaClient) -> None:
    now = datetime.now(UTC)
    with pytest.raises(EgressDenied):
        await client.prom_query("..", "up", now)
    with pytest.raises(NotFound):
        await client.prom_query("../../api/admin/users", "up", now)
    transport = client.http._http._transport
    assert isinstance(transport, RecordingTransport) and len(transport.requests) == 1
    sent = transport.requests[0].url
    assert "/api/datasources/proxy/uid/..%2F..%2Fapi%2Fadmin%2Fusers/api/v1/query?" in sent


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "GRAFANA_URL, GRAFANA_SERVICE_ACCOUNT_TOKEN not set"),
        ({"GRAFANA_URL": "grafana.example.com", "GRAFANA_SERVICE_ACCOUNT_TOKEN": "t"}, "is not an http(s) base URL"),
        ({"GRAFANA_URL": "https://g.example.com", "GRAFANA_SERVICE_ACCOUNT_TOKEN": "t", "GRAFANA_ORG_ID": "main"},
         "GRAFANA_ORG_ID 'main' is not a number"),
    ],
)
def test_settings_name_the_variable_that_is_wrong(env: dict[str, str], expected: str) -> None:
    with pytest.raises(MissingAccess, match=expected.replace("(", r"\(").replace(")", r"\)")):
        GrafanaSettings.from_env(env)


def test_settings_keep_a_path_prefix_and_the_org() -> None:
    s = GrafanaSettings.from_env({"GRAFANA_URL": "https://example.com/grafana/", "GRAFANA_SERVICE_ACCOUNT_TOKEN": "t",
                                  "GRAFANA_ORG_ID": "3"})
    assert s.base_url == "https://example.com/grafana" and s.org_id == "3"
