"""Every request the Slack clients send conforms to Slack's Web API spec (the POST-forms copy)."""

from __future__ import annotations

import pytest

from tests.conformance import Recorded, specs_available
from tests.conftest import Harness
from tests.slack.spec_check import slack_errors

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(not specs_available(), reason="../shared/specs not found")]

PREFIX = "/slack/api"
AUTH = {"authorization": "Bearer xoxb-1"}
CALLS = [
    ("slack_read_channel", {"channel": "#inc-checkout", "from": "now-2h", "limit": 5}),
    ("slack_read_thread", {"channel": "C0INC1420", "ts": "1700000000.000100"}),
    ("slack_search_messages", {"query": "rollback", "channel": "#inc-checkout", "from": "now-1d"}),
    ("slack_list_channels", {"query": "inc"}),
    ("slack_get_user", {"user": "@alice"}),
    ("slack_get_user", {"user": "bob@acme.example"}),
    ("slack_post_message", {"channel": "#deploys", "text": "rollback started", "thread_ts": "1700000000.000100"}),
]


async def test_every_slack_request_validates_against_the_official_spec(harness: Harness) -> None:
    policy = {"toolsets": {"enabled": ["slack", "slack_write"]},
              "rules": [{"id": "post", "effect": "allow", "tools": ["slack_post_message"]}],
              "scopes": [{"toolset": "slack", "channels": ["#inc-*", "#deploys"]}]}
    async with harness.client(harness.server(policy=policy, toolsets=["slack", "slack_write"])) as c:
        for tool, args in CALLS:
            await c.call_tool(tool, args)  # a thread_not_found is fine: the request is what is checked
    methods = {r.url.split("?")[0].rsplit("/", 1)[1] for r in harness.transport.requests}
    assert methods >= {"conversations.history", "conversations.replies", "search.messages", "conversations.list",
                       "users.info", "users.list", "users.lookupByEmail", "auth.test", "chat.postMessage"}
    errors = [e for rec in harness.transport.requests for e in slack_errors(rec, PREFIX)]
    assert errors == []


@pytest.mark.parametrize(
    ("rec", "finding"),
    [
        (Recorded("GET", "http://s/slack/api/conversations.history?channel=C1&limit=lots", AUTH, b""),
         "limit='lots' is not a valid integer"),
        (Recorded("GET", "http://s/slack/api/conversations.history?chanel=C1", AUTH, b""),
         "parameter 'chanel' is not declared"),
        (Recorded("GET", "http://s/slack/api/search.messages?count=5", AUTH, b""),
         "required parameter 'query' missing"),
        (Recorded("GET", "http://s/slack/api/chat.postMessage?channel=C1&text=x", AUTH, b""),
         "no such operation"),
        (Recorded("POST", "http://s/slack/api/chat.postMessage",
                  {**AUTH, "content-type": "application/x-www-form-urlencoded"}, b"text=hi"),
         "required parameter 'channel' missing"),
        (Recorded("POST", "http://s/slack/api/chat.postMessage", {"content-type": "text/plain"}, b"channel=C1"),
         "content type 'text/plain'"),
        (Recorded("GET", "http://s/slack/api/users.info?user=U1", {}, b""),
         "required parameter 'token' missing"),
    ],
)
def test_the_validator_is_on_known_bad_requests_are_rejected(rec: Recorded, finding: str) -> None:
    errors = slack_errors(rec, PREFIX)
    assert any(finding in e for e in errors), errors
