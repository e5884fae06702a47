"""`spyglass serve` over stdio against the sandbox on a loopback socket: the Grafana tools answer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from servers.sandbox import SandboxServer, build_sandbox
from tests.e2e.helpers import SPYGLASS

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


@pytest.fixture(scope="module")
def sandbox_env() -> Iterator[dict[str, str]]:
    with SandboxServer(build_sandbox(upstreams=["grafana"])) as server:
        yield server.env()


async def test_grafana_tools_answer_over_stdio(sandbox_env: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, **sandbox_env, "SPYGLASS_STATE_DIR": str(tmp_path)}
    env.pop("SPYGLASS_AUDIT_URL", None)
    params = StdioServerParameters(command=SPYGLASS, args=["serve", "--toolsets", "grafana"], env=env)
    async with Client(params) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        alerts = await c.call_tool("grafana_list_alerts", {"state": "firing"})
        prom = await c.call_tool("grafana_query_prometheus",
                                 {"query": "sum by (service) (rate(http_requests_total[5m]))", "instant": True})
        logs = await c.call_tool("grafana_query_loki", {"query": '{service="checkout", level="error"}', "limit": 3})
    assert {"grafana_list_alerts", "grafana_query_loki", "grafana_get_annotations"} <= names
    assert not alerts.is_error and "CheckoutHighErrorRate · firing" in alerts.content[0].text
    assert not prom.is_error and "service=checkout" in prom.content[0].text
    assert not logs.is_error and "payment" in logs.content[0].text.lower()
