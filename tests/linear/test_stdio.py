"""Statsig and Linear tools over stdio: `spyglass serve` spawned against the sandbox on loopback."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from servers.sandbox import SandboxServer, build_sandbox
from tests.e2e.helpers import SPYGLASS

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

POLICY = """
version = 1
[toolsets]
enabled = ["statsig", "linear", "linear_write"]

[[rules]]
id = "linear-comments"
effect = "allow"
tools = ["linear_add_comment"]

[[scopes]]
toolset = "linear"
teams = ["CHK", "PAY"]

[[scopes]]
toolset = "statsig"
tags = ["checkout", "payments"]
"""

CALLS = [
    ("statsig_list", {"kind": "gate"}, "checkout_async_payments"),
    ("statsig_get", {"kind": "gate", "id": "checkout_async_payments"}, "Public rollout | 50%"),
    ("statsig_get_changes", {"from": "2h"}, "pass 10% -> 50%"),
    ("linear_search_issues", {"text": "checkout"}, "CHK-311"),
    ("linear_get_issue", {"issue": "CHK-311"}, "acme/checkout#1482"),
    ("linear_list_projects", {}, "Async payments"),
    ("linear_add_comment", {"issue": "CHK-311", "body": "Flag back at 10%."}, "commented on CHK-311"),
]


async def test_every_statsig_and_linear_tool_answers_over_stdio(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    with SandboxServer(build_sandbox(upstreams=["statsig", "linear"])) as sandbox:
        env = {**os.environ, **sandbox.env(), "SPYGLASS_STATE_DIR": str(tmp_path)}
        env.pop("SPYGLASS_AUDIT_URL", None)
        server = StdioServerParameters(command=SPYGLASS, env=env, args=[
            "serve", "--policy", str(policy), "--toolsets", "statsig,linear,linear_write"])
        async with Client(server) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            results = [(await c.call_tool(tool, args), expected) for tool, args, expected in CALLS]
            denied = await c.call_tool("linear_create_issue", {"team": "CHK", "title": "x"})
    assert names == {t for t, _, _ in CALLS} | {"linear_create_issue"}
    for r, expected in results:
        assert not r.is_error and expected in r.content[0].text, r.content
    assert denied.is_error and "no rule allows this write call" in denied.content[0].text
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        outcomes = [r[0] for r in conn.execute("SELECT outcome FROM audit_events")]
    assert sorted(outcomes) == sorted(["ok"] * len(CALLS) + ["denied"])
