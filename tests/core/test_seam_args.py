"""What policy reads of a call's arguments: the validated params, dumped only when a rule asks."""

from __future__ import annotations

from typing import Any

import pytest

from servers.app import DumpOnRead
from tests.conftest import Harness, text_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def dumps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted: list[int] = []
    original = DumpOnRead._dumped

    def counting(self: DumpOnRead) -> dict[str, Any]:
        counted.append(1)
        return original(self)

    monkeypatch.setattr(DumpOnRead, "_dumped", counting)
    return counted


async def test_a_decision_made_from_names_alone_never_dumps_the_params(harness: Harness, dumps: list[int]) -> None:
    async with harness.client(harness.server(toolsets=["datadog"])) as c:
        r = await c.call_tool("datadog_search_logs", {"query": "service:checkout status:error", "limit": 5})
    assert not r.is_error and dumps == []


async def test_a_rule_on_an_argument_sees_the_validated_arguments(harness: Harness, dumps: list[int]) -> None:
    policy = {"rules": [{"id": "no-wide-log-pulls", "effect": "deny", "tools": ["datadog_search_logs"],
                         "where": {"limit": {"min": 100}}, "reason": "ask for fewer lines"}]}
    async with harness.client(harness.server(policy=policy, toolsets=["datadog"])) as c:
        wide = await c.call_tool("datadog_search_logs", {"query": "service:checkout", "limit": 150})
        default_limit = await c.call_tool("datadog_search_logs", {"query": "service:checkout"})
        narrow = await c.call_tool("datadog_search_logs", {"query": "service:checkout", "limit": 20})
    assert wide.is_error and "ask for fewer lines" in text_of(wide)
    assert not default_limit.is_error and not narrow.is_error  # the default (50) is what the rule saw
    assert len(dumps) >= 3


def test_the_arguments_read_like_the_dumped_params() -> None:
    from servers.datadog.tools import SearchLogsParams

    params = SearchLogsParams.model_validate({"query": "x", "from": "now-1h"})
    lazy = DumpOnRead(params)
    assert dict(lazy) == params.model_dump(by_alias=True)
    assert lazy.get("limit") == 50 and lazy["query"] == "x" and lazy.get("missing", "d") == "d"
    assert len(lazy) == len(params.model_dump(by_alias=True))
