"""slack_write: posting, opt-in. Registered only when the policy enables ``slack_write``; every post
also needs an allow rule (defaults.write = deny) and a channel the slack scope lists explicitly."""

from __future__ import annotations

from pydantic import Field

from servers._core.errors import PolicyDenied
from servers._core.shaping import ToolOutput
from servers._core.spec import Params, ToolContext, Toolset, ToolSpec
from servers.slack import scope as slack_scope
from servers.slack.client import WRITE_ROUTES, SlackWriteClient, make_write_client
from servers.slack.models import TS_RE


class PostMessageParams(Params):
    channel: str = Field(description="Channel id or #name; must be listed in the slack scope.",
                         min_length=1, max_length=100)
    text: str = Field(description="Message text, sent literally.", min_length=1, max_length=4000)
    thread_ts: str | None = Field(None, description="Reply in this thread.", pattern=TS_RE)


def literal(text: str) -> str:
    """Slack's three control characters escaped: no <!channel> pings, no disguised links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def post_message(p: PostMessageParams, ctx: ToolContext) -> ToolOutput:
    client: SlackWriteClient = ctx.client
    entries = ctx.scope.channels if ctx.scope else None
    ctx.record.scoped()
    if not entries:
        raise PolicyDenied(
            "no Slack channel is listed for posting",
            rule_id=slack_scope.RULE,
            hint='list the channel by id or exact #name in the policy: [[scopes]] toolset = "slack", channels = [...]',
        )
    ch = await client.channel(p.channel)
    if not slack_scope.SlackScope(entries).postable(ch):
        raise PolicyDenied(
            f"channel {ch.label if ch.kind == 'public' else ch.id} is not listed in the slack scope for posting",
            rule_id=slack_scope.RULE,
            hint="posting needs the channel listed by id or exact #name (globs do not count); "
            f"listed: {', '.join(entries)}",
        )
    # Secrets never leave, not even into Slack: the guard's redactor runs on the outgoing text.
    text = literal(ctx.runtime.guard.redactor.text(p.text))
    ts = await client.post_message(ch.id, text, p.thread_ts)
    where = f" in thread {p.thread_ts}" if p.thread_ts else ""
    return ToolOutput(f"posted to {ch.label} ({ch.id}){where} · ts {ts}")


TOOLS = (
    ToolSpec(
        name="slack_post_message",
        toolset="slack_write",
        access="write",
        title="Post to Slack",
        description="Post a message to a channel the policy lists.",
        params=PostMessageParams,
        fn=post_message,
        idempotent=False,
        budget_tokens=500,
    ),
)

TOOLSET = Toolset(
    name="slack_write",
    upstream="slack",
    access="write",
    instructions="slack_post_message posts as the Spyglass app to listed channels only.",
    tools=TOOLS,
    make_client=make_write_client,
    routes=WRITE_ROUTES,
    env_vars=("SLACK_BOT_TOKEN", "SPYGLASS_SLACK_URL"),
)
