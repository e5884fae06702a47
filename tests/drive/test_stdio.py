"""Drive tools over stdio: `spyglass serve` spawned as an agent host would, against the sandbox on loopback."""

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
enabled = ["drive"]
[[scopes]]
toolset = "drive"
folders = ["fld-runbooks", "fld-design-docs"]
"""


async def test_drive_tools_work_over_stdio_with_the_token_fetched_from_the_fake(tmp_path: Path) -> None:
    (tmp_path / "policy.toml").write_text(POLICY)
    with SandboxServer(build_sandbox(upstreams=["drive"])) as sandbox:
        env = {**os.environ, **sandbox.env(), "SPYGLASS_STATE_DIR": str(tmp_path)}
        env.pop("SPYGLASS_AUDIT_URL", None)
        env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
        server = StdioServerParameters(command=SPYGLASS, env=env, args=[
            "serve", "--toolsets", "drive", "--policy", str(tmp_path / "policy.toml")])
        async with Client(server) as c:
            found = await c.call_tool("drive_search_files", {"query": "runbook"})
            read = await c.call_tool("drive_read_file", {"file": "doc-runbook-checkout"})
            meta = await c.call_tool("drive_get_file", {"file": "sht-oncall-rota"})
            denied = await c.call_tool("drive_read_file", {"file": "doc-hr-comp"})
    assert not found.is_error and "doc-runbook-checkout" in found.content[0].text
    assert not read.is_error and "## Rollback steps" in read.content[0].text
    assert not meta.is_error and "folder: On-call (fld-oncall)" in meta.content[0].text
    assert denied.is_error and "outside the Drive scope" in denied.content[0].text
