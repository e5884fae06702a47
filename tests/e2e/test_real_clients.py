"""Real MCP clients nobody on the team wrote: Claude Code, Codex and the MCP Inspector CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from servers.sandbox import SandboxServer, build_sandbox
from tests.e2e.helpers import SPYGLASS, npm_bin

pytestmark = pytest.mark.slow


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def test_claude_code_connects_to_the_server_spyglass_install_registered(tmp_path: Path) -> None:
    claude = npm_bin("claude")
    env = {**os.environ, "HOME": str(tmp_path), "SPYGLASS_STATE_DIR": str(tmp_path / "state")}
    assert run([SPYGLASS, "install", "claude", "--toolsets", "datadog"], env, tmp_path).returncode == 0
    entry = json.loads((tmp_path / ".claude.json").read_text())["mcpServers"]["spyglass"]
    assert entry["command"].endswith("spyglass") and entry["args"] == ["serve", "--toolsets", "datadog"]
    r = run([claude, "mcp", "list"], env, tmp_path)
    assert "spyglass" in r.stdout and "Connected" in r.stdout and "Failed" not in r.stdout, r.stdout + r.stderr


def test_codex_reads_back_the_entry_and_the_users_config_survives(tmp_path: Path) -> None:
    codex = npm_bin("codex")
    home = tmp_path / "codex"
    home.mkdir()
    (home / "config.toml").write_text('# my settings\nmodel = "o3"  # keep me\n\n[mcp_servers.other]\ncommand = "x"\n')
    env = {**os.environ, "HOME": str(tmp_path), "CODEX_HOME": str(home)}
    for _ in range(2):  # idempotent
        assert run([SPYGLASS, "install", "codex", "--read-only"], env, tmp_path).returncode == 0
    text = (home / "config.toml").read_text()
    assert text.startswith('# my settings\nmodel = "o3"  # keep me') and "[mcp_servers.other]" in text
    assert text.count("[mcp_servers.spyglass]") == 1
    r = run([codex, "mcp", "list"], env, tmp_path)
    assert "spyglass" in r.stdout and "other" in r.stdout, r.stdout + r.stderr


def test_the_mcp_inspector_cli_lists_and_calls_tools_over_stdio(tmp_path: Path) -> None:
    inspector = npm_bin("mcp-inspector")
    with SandboxServer(build_sandbox()) as sandbox:
        env = {**os.environ, **sandbox.env(), "SPYGLASS_STATE_DIR": str(tmp_path)}
        server = [inspector, "--cli", SPYGLASS, "--", "serve", "--toolsets", "datadog"]
        listed = run([*server, "--method", "tools/list"], env, tmp_path)
        assert listed.returncode == 0, listed.stderr
        names = {t["name"] for t in json.loads(listed.stdout)["tools"]}
        assert "datadog_search_logs" in names
        called = run([*server, "--method", "tools/call", "--tool-name", "datadog_aggregate_logs",
                      "--tool-arg", "query=status:error"], env, tmp_path)
    assert called.returncode == 0, called.stdout + called.stderr
    assert "datadog log count" in called.stdout
