"""The opt-in ``linear_write`` toolset: registered only when enabled, allowed only by a rule, and only
for teams the policy's linear scope lists."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
import pytest

from servers._core.errors import EgressDenied
from servers._core.spec import ClientEnv
from servers.linear import documents as docs
from servers.linear.client import LinearClient, LinearWriteClient
from servers.linear.settings import LinearSettings
from tests.conftest import Harness, text_of

pytestmark = pytest.mark.anyio

ENABLED = {"toolsets": {"enabled": ["linear", "linear_write"]}}
ALLOW = {"rules": [{"id": "linear-writes", "effect": "allow", "toolsets": ["linear_write"]}]}
SCOPE = {"scopes": [{"toolset": "linear", "teams": ["CHK", "PAY"]}]}
WRITE_OPS = {"SpyglassCreateIssue", "SpyglassAddComment"}


def operations(harness: Harness) -> list[str]:
    return [json.loads(r.body)["operationName"] for r in harness.transport.requests]


async def calls(harness: Harness, policy: dict[str, Any], *steps: tuple[str, dict[str, Any]]) -> list[tuple[str, bool]]:
    out = []
    async with harness.client(harness.server(policy=policy, toolsets=["linear", "linear_write"])) as c:
        for tool, args in steps:
            r = await c.call_tool(tool, args)
            out.append((text_of(r), bool(r.is_error)))
    return out


async def test_with_the_write_toolset_disabled_no_write_tool_is_listed_or_reachable(harness: Harness) -> None:
    server = harness.server(policy={**ALLOW, **SCOPE}, toolsets=["all"])
    async with harness.client(server) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        r = await c.call_tool("linear_add_comment", {"issue": "CHK-311", "body": "hi"})
    assert "linear_search_issues" in names
    assert not {"linear_create_issue", "linear_add_comment"} & names
    assert r.is_error and "unknown tool 'linear_add_comment'" in text_of(r)
    assert harness.sink.events[-1].rule_id == "unknown-tool"
    assert harness.transport.requests == []


async def test_read_only_mode_drops_the_write_toolset_even_when_enabled(harness: Harness) -> None:
    server = harness.server(policy={**ENABLED, **ALLOW, **SCOPE}, toolsets=["linear", "linear_write"], read_only=True)
    async with harness.client(server) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert names == {"linear_search_issues", "linear_get_issue", "linear_list_projects"}


async def test_write_tools_are_marked_as_non_destructive_non_idempotent_writes(harness: Harness) -> None:
    async with harness.client(harness.server(policy=ENABLED, toolsets=["linear_write"])) as c:
        tools = {t.name: t.annotations for t in (await c.list_tools()).tools}
    assert set(tools) == {"linear_create_issue", "linear_add_comment"}
    for hints in tools.values():
        assert hints is not None
        assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint) == (False, False, False)


async def test_an_enabled_write_without_an_allow_rule_is_refused_by_the_default(harness: Harness) -> None:
    [(text, err)] = await calls(harness, {**ENABLED, **SCOPE}, ("linear_create_issue", {"team": "CHK", "title": "x"}))
    assert err and "no rule allows this write call" in text
    assert harness.sink.events[-1].rule_id == "defaults.write"
    assert harness.transport.requests == []


async def test_a_write_with_no_teams_scope_is_refused_naming_the_scope_rule(harness: Harness) -> None:
    [(text, err)] = await calls(harness, {**ENABLED, **ALLOW},
                                ("linear_add_comment", {"issue": "CHK-311", "body": "x"}))
    assert err and "linear scope to list teams, and it lists none" in text
    assert harness.sink.events[-1].rule_id == "scopes.linear.teams"
    assert harness.transport.requests == []


async def test_a_write_to_an_unlisted_team_is_refused_before_any_mutation(harness: Harness) -> None:
    sec = next(i["id"] for i in _data(harness).issues if i["identifier"] == "SEC-19")
    results = await calls(harness, {**ENABLED, **ALLOW, **SCOPE},
                          ("linear_create_issue", {"team": "sec", "title": "x"}),
                          ("linear_add_comment", {"issue": "SEC-19", "body": "x"}),
                          ("linear_add_comment", {"issue": sec, "body": "by id"}))
    for text, err in results:
        assert err and "team 'SEC' is outside the Linear team scope" in text
    assert [e.rule_id for e in harness.sink.events] == ["scopes.linear.teams"] * 3
    assert operations(harness) == ["SpyglassIssueTeam"]  # only the id needed a lookup; nothing was written
    assert all(c["user"]["name"] != "Spyglass Agent" for c in
               next(i for i in _data(harness).issues if i["identifier"] == "SEC-19")["comments"]["nodes"])


async def test_an_allowed_write_creates_the_issue_and_the_comment_and_both_read_back(harness: Harness) -> None:
    results = await calls(
        harness, {**ENABLED, **ALLOW, **SCOPE},
        ("linear_create_issue", {"team": "chk", "title": "Alert on payment pool saturation", "priority": 2,
                                 "description": "Follow-up from CHK-311."}),
        ("linear_add_comment", {"issue": "CHK-311", "body": "Flag checkout_async_payments rolled back to 10%."}),
        ("linear_get_issue", {"issue": "CHK-312"}),
        ("linear_get_issue", {"issue": "CHK-311"}),
    )
    (created, e1), (commented, e2), (new_issue, e3), (incident, e4) = results
    assert not (e1 or e2 or e3 or e4)
    assert created.startswith("created CHK-312 in CHK: Alert on payment pool saturation")
    assert commented.startswith("commented on CHK-311 at ")
    assert "High" in new_issue.splitlines()[0] and "Follow-up from CHK-311." in new_issue
    assert "comment by Spyglass Agent" in incident and "rolled back to 10%" in incident
    writes = [e for e in harness.sink.events if e.access == "write"]
    assert [(e.tool, e.decision, e.rule_id, e.outcome) for e in writes] == [
        ("linear_create_issue", "allow", "linear-writes", "ok"), ("linear_add_comment", "allow", "linear-writes", "ok")]
    assert [op for op in operations(harness) if op in WRITE_OPS] == ["SpyglassCreateIssue", "SpyglassAddComment"]


async def test_a_policy_rule_can_allow_comments_by_team_from_the_issue_key(harness: Harness) -> None:
    policy = {**ENABLED, **SCOPE, "rules": [{"id": "chk-comments", "effect": "allow", "tools": ["linear_add_comment"],
                                             "where": {"team": ["CHK"]}}]}
    (_ok, e1), (denied, e2) = await calls(harness, policy, ("linear_add_comment", {"issue": "CHK-311", "body": "a"}),
                                         ("linear_add_comment", {"issue": "PAY-88", "body": "b"}))
    assert not e1 and e2 and "rule 'chk-comments' would allow it with team one of CHK" in denied


class FailMutations(httpx2.AsyncBaseTransport):
    """Lets queries through to the fake; answers every mutation with a 502."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if json.loads(await request.aread())["operationName"] in WRITE_OPS:
            return httpx2.Response(502, json={"errors": [{"message": "bad gateway"}]})
        return await self.inner.handle_async_request(request)


async def test_a_mutation_is_never_retried_after_a_server_error(harness: Harness) -> None:
    harness.transport.inner = FailMutations(harness.transport.inner)
    [(text, err)] = await calls(harness, {**ENABLED, **ALLOW, **SCOPE},
                                ("linear_add_comment", {"issue": "CHK-311", "body": "y"}))
    assert err and "linear answered 502" in text
    assert operations(harness) == ["SpyglassIssueTeam", "SpyglassAddComment"]
    assert harness.sink.events[-1].outcome == "upstream_error"


def test_each_client_refuses_documents_that_are_not_its_own() -> None:
    settings = LinearSettings.from_env({"LINEAR_API_KEY": "lin_api_" + "k" * 40})
    reader = LinearClient(settings, ClientEnv(env={}))
    writer = LinearWriteClient(settings, ClientEnv(env={}))

    async def attempts() -> None:
        with pytest.raises(EgressDenied):
            await reader.run(docs.CREATE_ISSUE, {"input": {"teamId": "t", "title": "x"}})
        with pytest.raises(EgressDenied):
            await reader.run("mutation { issueDelete(id: \"x\") { success } }", {})
        with pytest.raises(EgressDenied):
            await writer.run(docs.SEARCH_ISSUES, {"first": 1})

    anyio.run(attempts)
    assert reader.http.routes[("POST", "/graphql")].retryable is True  # read queries retry on 5xx
    assert writer.http.routes[("POST", "/graphql")].retryable is False


def _data(harness: Harness) -> Any:
    for route in harness.sandbox.app.routes:
        if getattr(route, "path", "") == "/linear":
            return route.app.state.data  # type: ignore[attr-defined]
    raise AssertionError("linear fake not mounted")

