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


async def test_an_optional_client_is_none_when_the_toolset_is_unknown_missing_or_refuses(harness: Harness) -> None:
    from types import SimpleNamespace

    from guards.errors import ToolFailure
    from servers.app import load_toolset

    runtime = harness.server(toolsets=["datadog"]).runtime

    def refuses(env: Any) -> Any:
        raise ToolFailure("statsig console key lacks a scope")

    def load(name: str) -> Any:
        if name == "not-installed":
            raise ImportError("No module named 'servers.not_installed'")
        if name == "refuses":
            return SimpleNamespace(name=name, upstream=name, make_client=refuses)
        return load_toolset(name)

    runtime.load_toolset = load
    assert await runtime.optional_client("no-such-toolset") is None  # KeyError from load_toolset
    assert await runtime.optional_client("not-installed") is None
    assert await runtime.optional_client("refuses") is None
    assert await runtime.optional_client("datadog") is not None


def test_a_call_that_names_its_run_never_works_out_the_days_run(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    import servers._core.runtime as rt

    def no_fallback(who: str, day: str) -> str:
        raise AssertionError("the day's run was worked out for a call that names its own")

    monkeypatch.setattr(rt, "day_run_id", no_fallback)
    runtime = harness.server(toolsets=["datadog"]).runtime
    runtime.transport_kind = "http"
    rc = SimpleNamespace(session=SimpleNamespace(client_params=None), meta=None,
                         request=SimpleNamespace(headers={"x-spyglass-run-id": "nightly-42"}))
    assert runtime.principal(SimpleNamespace(request_context=rc)).run_id == "nightly-42"
