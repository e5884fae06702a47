"""Slack tools over stdio: `spyglass serve` spawned as an agent host would, against the sandbox on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from servers.sandbox import SandboxServer, build_sandbox
from tests.e2e.helpers import SPYGLASS

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

POLICY = """
version = 1
[toolsets]
enabled = ["slack", "slack_write"]
[[rules]]
id = "post-to-deploys"
effect = "allow"
tools = ["slack_post_message"]
[[scopes]]
toolset = "slack"
channels = ["#inc-*", "#deploys"]
"""


async def test_slack_read_and_write_tools_work_over_stdio(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text(POLICY)
    with SandboxServer(build_sandbox(upstreams=["slack"])) as sandbox:
        env = {**os.environ, **sandbox.env(), "SPYGLASS_STATE_DIR": str(tmp_path)}
        env.pop("SPYGLASS_AUDIT_URL", None)
        server = StdioServerParameters(command=SPYGLASS, env=env, args=[
            "serve", "--toolsets", "slack,slack_write", "--policy", str(tmp_path / "policy.toml")])
        async with Client(server) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            search = await c.call_tool("slack_search_messages", {"query": "rollback"})
            posted = await c.call_tool("slack_post_message", {"channel": "#deploys", "text": "rollback started"})
            denied = await c.call_tool("slack_read_channel", {"channel": "#sec-private"})
    assert names == {"slack_search_messages", "slack_read_channel", "slack_read_thread", "slack_list_channels",
                     "slack_get_user", "slack_post_message"}
    assert not search.is_error and "#inc-checkout" in search.content[0].text
    assert not posted.is_error and posted.content[0].text.startswith("posted to #deploys")
    assert denied.is_error and "outside the Slack scope" in denied.content[0].text
