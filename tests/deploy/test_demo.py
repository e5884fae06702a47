"""The demo's deploy chapter, through an in-memory MCP client under the demo policy and sandbox config."""

from __future__ import annotations

from typing import Any

import pytest

from guards.policy import load_policy
from servers.deploy.demo import run_deploy_story
from tests.conftest import text_of
from tests.deploy.conftest import REPO, Deploy, config

pytestmark = pytest.mark.anyio


async def test_the_story_ends_in_a_verified_rollback_after_the_freeze_refused_the_forward_deploy(
        deploy: Deploy) -> None:
    server = deploy.server(load_policy(REPO / "config" / "demo-policy.toml"), cfg=config(),
                           env=deploy.env(incidents=True))
    said: list[str] = []
    calls: list[tuple[str, bool]] = []
    async with deploy.h.client(server) as c:

        async def call(tool: str, args: dict[str, Any]) -> tuple[str, bool]:
            r = await c.call_tool(tool, args)
            calls.append((tool, bool(r.is_error)))
            return text_of(r), bool(r.is_error)

        await run_deploy_story(call, said.append)
    story = "\n".join(said)
    assert "Refused by rule demo-change-freeze" in story
    assert "Errors per minute:" in story and "back to normal" in story and "not yet" not in story
    assert calls == [("deploy_plan", True), ("deploy_plan", False), ("deploy_apply", False),
                     ("deploy_get_status", False), ("datadog_query_metrics", False), ("datadog_search_logs", False)]
    refused = next(e for e in deploy.events if e.tool == "deploy_plan")
    assert (refused.outcome, refused.rule_id) == ("denied", "demo-change-freeze")
    assert not deploy.h.sandbox.world.degraded("checkout", deploy.h.sandbox.world.now())
