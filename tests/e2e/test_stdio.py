"""`spyglass serve` spawned over stdio, driven by the SDK's client, exactly as an agent host does."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from servers.sandbox import SandboxServer, build_sandbox
from tests.e2e.helpers import REPO, SPYGLASS

pytestmark = [pytest.mark.slow, pytest.mark.anyio]


@pytest.fixture(scope="module")
def sandbox_env() -> Iterator[dict[str, str]]:
    with SandboxServer(build_sandbox()) as server:
        yield server.env()


def params(env: dict[str, str], tmp_path: Path, *args: str) -> StdioServerParameters:
    full = {**os.environ, **env, "SPYGLASS_STATE_DIR": str(tmp_path)}
    full.pop("SPYGLASS_AUDIT_URL", None)
    return StdioServerParameters(command=SPYGLASS, args=["serve", *args], env=full)


async def test_tools_answer_over_stdio_and_every_call_lands_in_the_audit_log(
    sandbox_env: dict[str, str], tmp_path: Path
) -> None:
    async with Client(params(sandbox_env, tmp_path, "--policy", str(REPO / "config/demo-policy.toml"))) as c:
        ok = await c.call_tool("datadog_search_logs", {"query": "service:checkout status:error", "limit": 3})
        denied = await c.call_tool("datadog_search_logs", {"index": "security"})
        invalid = await c.call_tool("datadog_query_metrics", {})
        unknown = await c.call_tool("no_such_tool", {})
    assert not ok.is_error and "error checkout" in ok.content[0].text
    assert denied.is_error and invalid.is_error and unknown.is_error
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        outcomes = [r[0] for r in conn.execute("SELECT outcome FROM audit_events ORDER BY ts")]
    assert sorted(outcomes) == ["denied", "denied", "invalid_args", "ok"]


async def test_read_only_serves_no_write_tool(sandbox_env: dict[str, str], tmp_path: Path) -> None:
    async with Client(params(sandbox_env, tmp_path, "--read-only", "--policy",
                             str(REPO / "config/policy.example.toml"))) as c:
        tools = (await c.list_tools()).tools
    assert tools and all(t.annotations and t.annotations.read_only_hint for t in tools)


def test_a_bad_policy_stops_start_up_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text('[[rules]]\nid = "r"\neffect = "alow"\n')
    r = subprocess.run([SPYGLASS, "serve", "--policy", str(bad)], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2
    assert "rules.0.effect: Input should be 'allow' or 'deny'" in r.stderr


def test_policy_check_and_explain_work_from_the_command_line() -> None:
    r = subprocess.run([SPYGLASS, "policy", "check", str(REPO / "config/policy.example.toml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "valid" in r.stdout
    r = subprocess.run([SPYGLASS, "policy", "explain", "datadog_search_logs", "--policy",
                        str(REPO / "config/policy.example.toml")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("ALLOW") and "defaults.read" in r.stdout
