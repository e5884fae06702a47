"""`spyglass serve --http`: bearer tokens map to principals, Host/Origin checks, body limits, healthz."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from servers.httpauth import token_digest
from servers.sandbox import SandboxServer, build_sandbox
from tests.e2e.helpers import SPYGLASS, ServeProcess, free_port, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.anyio]
TOKEN = "spy_test-token-for-ci-agent-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    state = tmp_path_factory.mktemp("state")
    config = state / "spyglass.toml"
    config.write_text(f'[[http.tokens]]\nprincipal = "ci-agent"\nsha256 = "{token_digest(TOKEN)}"\n')
    port = free_port()
    with SandboxServer(build_sandbox()) as sandbox:
        env = {**os.environ, **sandbox.env(), "SPYGLASS_STATE_DIR": str(state)}
        env.pop("SPYGLASS_AUDIT_URL", None)
        proc = ServeProcess(["--http", "--port", str(port), "--config", str(config), "--max-body", "65536",
                             "--stateless", "--json-response"], env)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            yield f"http://127.0.0.1:{port}", state
        finally:
            proc.stop()


async def test_a_tool_call_with_a_token_is_audited_under_the_tokens_principal(server: tuple[str, Path]) -> None:
    base, state = server
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c,
    ):
        r = await c.call_tool("datadog_aggregate_logs", {"group_by": ["service"]})
    assert not r.is_error and "service | count" in r.content[0].text
    rows: list[tuple[str, str]] = []
    for _ in range(100):  # the sink batches reads' events off the request path (flushes every 50 ms)
        with sqlite3.connect(state / "audit.db") as conn:
            rows = conn.execute("SELECT principal, principal_kind FROM audit_events").fetchall()
        if rows:
            break
        await anyio.sleep(0.05)
    assert ("ci-agent", "token") in rows


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({}, b"{}", 401),
        ({"Authorization": "Bearer wrong"}, b"{}", 401),
        ({"Authorization": f"Bearer {TOKEN}", "Host": "evil.example.com"}, b"{}", 421),
        ({"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example.com"}, b"{}", 403),
        ({"Authorization": f"Bearer {TOKEN}"}, b"{" + b" " * 70000 + b"}", 413),
    ],
)
def test_the_http_edge_rejects_what_it_must(server: tuple[str, Path], headers: dict, body: bytes, status: int) -> None:
    base, _ = server
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers}
    assert httpx2.post(f"{base}/mcp", headers=h, content=body, timeout=10).status_code == status


def test_healthz_answers_without_a_token(server: tuple[str, Path]) -> None:
    r = httpx2.get(f"{server[0]}/healthz", timeout=5)
    assert r.status_code == 200 and r.json()["ok"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--http"], "no bearer tokens configured for --http"),
        (["--http", "--no-auth", "--host", "0.0.0.0"], "--no-auth is only allowed on a loopback address"),
    ],
)
def test_http_refuses_to_listen_without_auth_off_loopback(tmp_path: Path, args: list[str], message: str) -> None:
    env = {**os.environ, "SPYGLASS_STATE_DIR": str(tmp_path), "SPYGLASS_CONFIG": str(tmp_path / "none.toml")}
    (tmp_path / "none.toml").write_text("")
    r = subprocess.run([SPYGLASS, "serve", *args, "--port", str(free_port())], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 2 and message in r.stderr
