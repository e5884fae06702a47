"""Grafana tests run against a sandbox holding only the Grafana fake (other fakes cannot break them)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mcp import Client

from servers.sandbox import build_sandbox
from tests.conftest import Harness


@pytest.fixture
def gh() -> Harness:
    return Harness(build_sandbox(upstreams=["grafana"]))


@pytest.fixture
async def gf(gh: Harness) -> AsyncIterator[Client]:
    async with gh.client(gh.server(toolsets=["grafana"])) as c:
        yield c
