"""Two `spyglass serve --http` replicas on loopback sharing PostgreSQL (audit) and Redis (limits).

Concurrent calls through both: no audit event is lost, a write budget of N holds across the
replicas, and the report (the same code as for SQLite) sees both. And `kill -9` of a server
under write load loses no event of a write call that completed.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from guards.audit_store import EventQuery, report_from_store, verify_chain
from guards.sinks import open_reader
from servers.sandbox import SandboxServer, build_sandbox
from tests.conftest import env_url
from tests.e2e.helpers import ServeProcess, free_port, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

PG = env_url("SPYGLASS_TEST_POSTGRES_URL")
REDIS = env_url("SPYGLASS_TEST_REDIS_URL")
BUDGET = 7
POLICY = f"""
[toolsets]
enabled = ["datadog", "slack", "slack_write"]

[[scopes]]
toolset = "slack"
channels = ["C0DEPLOYS0"]

[[rules]]
id = "bots-may-post"
effect = "allow"
tools = ["slack_post_message"]

[[limits]]
id = "posts-per-hour"
tools = ["slack_post_message"]
max = {BUDGET}
per = "1h"
"""


@pytest.fixture
def sandbox_env() -> Iterator[dict[str, str]]:
    with SandboxServer(build_sandbox()) as sandbox:
        yield sandbox.env()


def serve(port: int, env: dict[str, str]) -> ServeProcess:
    return ServeProcess(["--http", "--no-auth", "--port", str(port), "--stateless", "--json-response",
                         "--toolsets", "datadog,slack,slack_write"], env)


async def call(base: str, run_id: str, tool: str, args: dict[str, Any]) -> tuple[bool, str]:
    async with (
        httpx2.AsyncClient(headers={"x-spyglass-run-id": run_id}, timeout=60) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c,
    ):
        r = await c.call_tool(tool, args)
    return bool(r.is_error), r.content[0].text


@pytest.fixture
def pg_url() -> Iterator[str]:
    if PG is None or REDIS is None:
        pytest.skip("needs SPYGLASS_TEST_POSTGRES_URL and SPYGLASS_TEST_REDIS_URL (CI sets both)")
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (the postgres extra)")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    yield f"{PG}{'&' if '?' in PG else '?'}schema={schema}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.needs_postgres
@pytest.mark.needs_redis
async def test_two_replicas_share_the_audit_log_and_one_write_budget(tmp_path: Path, sandbox_env, pg_url) -> None:
    assert REDIS is not None
    (tmp_path / "policy.toml").write_text(POLICY)
    (tmp_path / "none.toml").write_text("")
    env = {**os.environ, **sandbox_env, "SPYGLASS_AUDIT_URL": pg_url,
           "SPYGLASS_REDIS_URL": f"{REDIS}?prefix=spyglass-test-{uuid.uuid4().hex[:8]}:",
           "SPYGLASS_POLICY": str(tmp_path / "policy.toml"), "SPYGLASS_STATE_DIR": str(tmp_path),
           "SPYGLASS_CONFIG": str(tmp_path / "none.toml")}
    ports = [free_port(), free_port()]
    replicas = [serve(p, env) for p in ports]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    results: list[tuple[str, bool, str]] = []
    try:
        for b in bases:
            wait_http(f"{b}/healthz", timeout=60)

        async def one(i: int) -> None:
            base, run = bases[i % 2], f"replica-{'ab'[i % 2]}"
            if i % 3 == 0:
                error, text = await call(base, run, "slack_post_message", {"channel": "C0DEPLOYS0", "text": f"m{i}"})
                results.append(("post", error, text))
            else:
                error, text = await call(base, run, "datadog_aggregate_logs", {"group_by": ["service"]})
                results.append(("read", error, text))

        async with anyio.create_task_group() as tg:
            for i in range(36):
                tg.start_soon(one, i)
    finally:
        errs = [r.stop() for r in replicas]  # SIGTERM: each replica flushes its audit batch on the way out
    posts = [r for r in results if r[0] == "post"]
    reads = [r for r in results if r[0] == "read"]
    assert len(posts) == 12 and len(reads) == 24, errs
    assert all(not error for _, error, _ in reads)
    accepted = [t for _, error, t in posts if not error]
    refused = [t for _, error, t in posts if error]
    assert len(accepted) == BUDGET, (accepted, refused)
    assert all("posts-per-hour" in t for t in refused)

    store = open_reader(pg_url, tmp_path)
    try:
        calls = [e for e in store.query(EventQuery()) if e.principal_kind != "system"]
        assert len(calls) == 36  # every call, from both replicas, nothing lost
        outcomes = sorted((e.tool, e.outcome) for e in calls if e.tool == "slack_post_message")
        assert outcomes.count(("slack_post_message", "ok")) == BUDGET
        checks = verify_chain(store)
        assert len(checks) == 2 and all(not c.problems for c in checks)  # one stream per replica, intact
        now = datetime.now(UTC)
        data = report_from_store(store, now - timedelta(hours=1), now + timedelta(minutes=1), ("run",))
        assert {g["key"]["run"]: g["calls"] for g in data["groups"]} == {"replica-a": 18, "replica-b": 18}
        assert data["denial_rules"][0]["rule_id"] == "posts-per-hour"
        assert data["denial_rules"][0]["calls"] == 12 - BUDGET
    finally:
        store.close()


async def test_kill_9_under_write_load_loses_no_event_of_a_completed_write(tmp_path: Path, sandbox_env) -> None:
    policy = POLICY.replace(f"max = {BUDGET}", "max = 100000")
    (tmp_path / "policy.toml").write_text(policy)
    (tmp_path / "none.toml").write_text("")
    env = {**os.environ, **sandbox_env, "SPYGLASS_POLICY": str(tmp_path / "policy.toml"),
           "SPYGLASS_STATE_DIR": str(tmp_path), "SPYGLASS_CONFIG": str(tmp_path / "none.toml")}
    env.pop("SPYGLASS_AUDIT_URL", None)
    env.pop("SPYGLASS_REDIS_URL", None)
    port = free_port()
    server = serve(port, env)
    base = f"http://127.0.0.1:{port}"
    completed: list[str] = []
    try:
        wait_http(f"{base}/healthz", timeout=60)

        async def writer(w: int) -> None:
            for i in range(200):
                text = f"kill9-{w}-{i}"
                try:
                    error, _ = await call(base, f"w{w}", "slack_post_message", {"channel": "C0DEPLOYS0", "text": text})
                except Exception:  # the server is gone: this call did not complete
                    return
                if not error:
                    completed.append(text)
                if len(completed) >= 25:
                    server.proc.send_signal(signal.SIGKILL)

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for w in range(4):
                    tg.start_soon(writer, w)
    finally:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=30)
    assert server.proc.returncode == -signal.SIGKILL and len(completed) >= 25
    with sqlite3.connect(tmp_path / "audit.db") as conn:
        logged = {row[0] for row in conn.execute(
            "SELECT args FROM audit_events WHERE tool = 'slack_post_message' AND outcome = 'ok'")}
    missing = [t for t in completed if not any(f'"{t}"' in a for a in logged)]
    assert missing == []
