"""slack_write: opt-in, allow-rule-gated, and only to channels the scope lists explicitly."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest

from servers._core.errors import EgressDenied, MissingAccess
from servers._core.fakekit import CANARY_AWS_KEY
from servers._core.spec import ClientEnv
from servers.slack.client import SlackClient, SlackWriteClient, make_write_client
from servers.slack.settings import SlackSettings
from tests.conftest import SANDBOX_BASE, Harness, text_of

pytestmark = pytest.mark.anyio

ALLOW = {"id": "agents-may-post", "effect": "allow", "tools": ["slack_post_message"]}


def policy(channels: list[str] | None, *, allow: bool = True, enable: bool = True) -> dict[str, Any]:
    p: dict[str, Any] = {"toolsets": {"enabled": ["slack", *(["slack_write"] if enable else [])]},
                         "rules": [ALLOW] if allow else []}
    if channels is not None:
        p["scopes"] = [{"toolset": "slack", "channels": channels}]
    return p


def posts(harness: Harness) -> list[dict[str, list[str]]]:
    return [parse_qs(r.body.decode()) for r in harness.transport.requests if r.url.endswith("/chat.postMessage")]


async def test_without_slack_write_enabled_no_write_tool_is_listed_or_callable(harness: Harness) -> None:
    server = harness.server(policy=policy(["#deploys"], enable=False))
    async with harness.client(server) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        r = await c.call_tool("slack_post_message", {"channel": "#deploys", "text": "hi"})
    assert "slack_read_channel" in names and "slack_post_message" not in names
    assert r.is_error and "unknown tool 'slack_post_message'" in text_of(r)
    assert not posts(harness)


async def test_read_only_mode_wins_over_an_enabled_slack_write(harness: Harness) -> None:
    async with harness.client(harness.server(policy=policy(["#deploys"]), read_only=True)) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert "slack_post_message" not in names


async def test_the_read_client_cannot_reach_chat_post_message(harness: Harness) -> None:
    env = ClientEnv(harness.sandbox.env(SANDBOX_BASE), transport=harness.transport)
    client = SlackClient(SlackSettings.from_env(env.env), env)
    with pytest.raises(EgressDenied, match="not in this client's route allowlist"):
        await client.http.request("POST", "/chat.postMessage", data={"channel": "C0DEPLOYS0", "text": "x"})
    assert not harness.transport.requests


async def test_enabled_but_without_an_allow_rule_writes_are_denied_by_default(harness: Harness) -> None:
    async with harness.client(harness.server(policy=policy(["#deploys"], allow=False))) as c:
        r = await c.call_tool("slack_post_message", {"channel": "#deploys", "text": "hi"})
    assert r.is_error and harness.sink.events[-1].rule_id == "defaults.write"
    assert not posts(harness)


@pytest.mark.parametrize(
    ("channels", "target", "says"),
    [
        (None, "#deploys", "no Slack channel is listed for posting"),
        (["#inc-*"], "#inc-checkout", "channel #inc-checkout is not listed in the slack scope for posting"),
        (["#deploys"], "#random", "channel #random is not listed"),
        (["#deploys"], "G0SECPRIV0", "channel G0SECPRIV0 is not listed"),
    ],
)
async def test_posting_outside_the_explicit_channel_list_is_denied(harness, channels, target, says) -> None:
    async with harness.client(harness.server(policy=policy(channels))) as c:
        r = await c.call_tool("slack_post_message", {"channel": target, "text": "hi"})
    assert r.is_error and says in text_of(r)
    assert harness.sink.events[-1].rule_id == "scopes.slack.channels"
    assert not posts(harness)


async def test_a_post_to_a_listed_channel_lands_escaped_and_redacted(harness: Harness) -> None:
    async with harness.client(harness.server(policy=policy(["#deploys", "#inc-*"]))) as c:
        r = await c.call_tool("slack_post_message", {
            "channel": "#deploys", "text": f"<!channel> rollback of checkout started; key {CANARY_AWS_KEY}"})
        after = await c.call_tool("slack_read_channel", {"channel": "#deploys"})
    assert not r.is_error, text_of(r)
    assert text_of(r).startswith("posted to #deploys (C0DEPLOYS0) · ts ")
    form = posts(harness)[-1]
    assert form["channel"] == ["C0DEPLOYS0"] and form["unfurl_links"] == ["false"]
    assert form["text"][0].startswith("&lt;!channel&gt; rollback of checkout started; key [REDACTED:")
    assert all(CANARY_AWS_KEY.encode() not in r.body for r in harness.transport.requests)
    assert "@spyglass (bot): <!channel> rollback of checkout started" in text_of(after)
    event = next(e for e in harness.sink.events if e.tool == "slack_post_message")
    assert event.access == "write" and event.outcome == "ok" and event.rule_id == "agents-may-post"


async def test_the_write_client_contract_post_message_returns_the_ts_and_threads(harness: Harness) -> None:
    env = ClientEnv(harness.sandbox.env(SANDBOX_BASE), transport=harness.transport)
    client = make_write_client(env)
    assert isinstance(client, SlackWriteClient)
    parent = await client.post_message("#deploys", "deploy approval requested: checkout 2.13.4 prod rollback")
    reply = await client.post_message("C0DEPLOYS0", "approved by alice", thread_ts=parent)
    assert parent.replace(".", "").isdigit() and reply != parent
    sent = posts(harness)
    assert sent[0]["channel"] == ["C0DEPLOYS0"] and "thread_ts" not in sent[0]
    assert sent[1]["thread_ts"] == [parent]
    await client.aclose()


async def test_the_write_client_needs_a_bot_token(harness: Harness) -> None:
    env = harness.sandbox.env(SANDBOX_BASE)
    env.pop("SLACK_BOT_TOKEN")
    with pytest.raises(MissingAccess, match="needs SLACK_BOT_TOKEN"):
        make_write_client(ClientEnv(env))
