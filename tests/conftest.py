"""Shared fixtures: the sandbox in process, a guarded server against it, an in-memory MCP client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
from mcp import Client

from guards.audit import MemorySink
from guards.policy import Policy, parse_policy
from servers.app import ServeOptions, SpyglassServer, build_server
from servers.sandbox import Sandbox, build_sandbox
from tests.conformance import RecordingTransport

SANDBOX_BASE = "http://sandbox.test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sandbox() -> Sandbox:
    return build_sandbox()


class Harness:
    """A guarded server wired to the in-process sandbox, recording every upstream request."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.sink = MemorySink()
        self.transport = RecordingTransport(httpx2.ASGITransport(app=sandbox.app))

    def server(
        self,
        policy: Policy | dict[str, Any] | None = None,
        toolsets: list[str] | None = None,
        read_only: bool = False,
        env: dict[str, str] | None = None,
        **kw: Any,
    ) -> SpyglassServer:
        if isinstance(policy, dict):
            policy = parse_policy(policy)
        upstreams = {u: self.transport for u in ("datadog", "grafana", "statsig", "slack", "drive", "linear",
                                                 "argocd", "github", "deploy")}
        return build_server(ServeOptions(
            policy=policy or Policy(),
            toolsets=toolsets or ["all"],
            read_only=read_only,
            sink=self.sink,
            env=env if env is not None else self.sandbox.env(SANDBOX_BASE),
            transports=upstreams,
            transport_kind="memory",
            **kw,
        ))

    def client(self, server: SpyglassServer) -> Client:
        return Client(server)


@pytest.fixture
def harness(sandbox: Sandbox) -> Harness:
    return Harness(sandbox)


@pytest.fixture
async def dd_client(harness: Harness) -> AsyncIterator[Client]:
    async with harness.client(harness.server(toolsets=["datadog"])) as c:
        yield c


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


@pytest.fixture
def call(harness: Harness) -> Callable[..., Any]:
    """``await call(client, tool, **args) -> (text, is_error)``."""

    async def _call(client: Client, tool: str, **args: Any) -> tuple[str, bool]:
        r = await client.call_tool(tool, args)
        return text_of(r), bool(r.is_error)

    return _call


def env_url(name: str) -> str | None:
    return os.environ.get(name) or None
