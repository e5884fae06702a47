"""Every Datadog tool answers through `spyglass serve` over stdio against the sandbox on a socket."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from servers.datadog import fake_apm
from servers.sandbox import SandboxServer, build_sandbox
from tests.e2e.helpers import SPYGLASS

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(build_sandbox()) as server:
        yield server


async def test_every_new_datadog_tool_answers_over_stdio(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = {**os.environ, **sandbox.env(), "SPYGLASS_STATE_DIR": str(tmp_path)}
    env.pop("SPYGLASS_AUDIT_URL", None)
    minute = int(sandbox.sandbox.world.now().timestamp() // 60) - 2
    calls = {
        "datadog_search_spans": ({"query": "service:checkout status:error", "limit": 3}, "async_pool.acquire"),
        "datadog_get_trace": ({"trace_id": fake_apm.trace_id(minute, 0)}, "frontend GET /"),
        "datadog_search_error_issues": ({}, "PaymentGatewayTimeout"),
        "datadog_get_error_issue": ({"issue_id": fake_apm.issue_id("checkout", fake_apm.POOL_ERROR)}, "_acquire"),
        "datadog_list_monitors": ({"state": "alert"}, "checkout error rate"),
        "datadog_get_monitor": ({"monitor_id": 4410021}, "thresholds: critical > 0.05"),
        "datadog_search_incidents": ({}, "INC-142"),
        "datadog_get_incident": ({"incident_id": "INC-142"}, "Alice Nguyen"),
        "datadog_search_events": ({"source": "argocd", "from": "now-2h"}, "Deployed checkout 2.14.0"),
        "datadog_search_dashboards": ({"query": "checkout"}, "chk-svc-001"),
        "datadog_get_dashboard": ({"dashboard_id": "chk-svc-001"}, "Golden signals"),
    }
    params = StdioServerParameters(command=SPYGLASS, args=["serve", "--toolsets", "datadog"], env=env)
    async with Client(params) as c:
        for tool, (args, expected) in calls.items():
            r = await c.call_tool(tool, args)
            assert not r.is_error and expected in r.content[0].text, (tool, r.content[0].text[:300])
