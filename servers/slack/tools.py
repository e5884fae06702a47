"""Slack read tools: search, channel history, threads, channels, users. Scoped, labelled, budgeted."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from servers._core.errors import InvalidArguments, PolicyDenied, ToolFailure
from servers._core.paging import collect
from servers._core.shaping import ToolOutput, decode_cursor, encode_cursor, fit_lines, one_line, untrusted_block
from servers._core.spec import Params, ToolContext, Toolset, ToolSpec, WindowParams
from servers._core.timeparse import iso, resolve_window
from servers.slack.client import READ_ROUTES, SlackClient, make_client
from servers.slack.models import TS_RE, USER_ID_RE, Channel, Message, mentioned_users, plain_text
from servers.slack.scope import RULE as SCOPE_RULE
from servers.slack.scope import SlackScope

UPSTREAM = "slack"
MAX_TEXT = 1200  # characters of one message shown; the rest is stated, never dropped silently
ENV_VARS = ("SLACK_BOT_TOKEN", "SLACK_USER_TOKEN", "SPYGLASS_SLACK_URL")


# --- scope ------------------------------------------------------------------------------------------
def _scope(ctx: ToolContext) -> SlackScope:
    """The call's channel scope, parsed once (every channel and search hit is checked against it)."""
    return SlackScope(ctx.scope.channels if ctx.scope else None)


async def scoped_channel(ctx: ToolContext, client: SlackClient, ref: str) -> Channel:
    """The channel, or PolicyDenied when the scope excludes it (private names are not echoed)."""
    ch = await client.channel(ref)
    scope = _scope(ctx)
    if scope.entries is not None:
        ctx.record.scoped()
    if not scope.readable(ch):
        what = ch.label if ch.kind == "public" else f"{ch.id} ({ch.kind.replace('_', ' ')})"
        raise PolicyDenied(
            f"channel {what} is outside the Slack scope",
            rule_id=SCOPE_RULE,
            hint="private channels and DMs are readable only when the policy's slack scope lists them by id "
            "(private channels also by exact #name)" if ch.kind != "public" else
            "ask a policy owner to add it to the slack scope's channels",
        )
    return ch


async def _visible(scope: SlackScope, client: SlackClient, cid: str) -> Channel | None:
    """Authoritative channel info for a search hit, or None when out of scope or unknowable (fail closed)."""
    try:
        ch = await client.channel(cid)
    except ToolFailure:
        if scope.entries is not None and cid in scope.entries:
            return Channel(id=cid)
        return None
    return ch if scope.readable(ch) else None


# --- rendering --------------------------------------------------------------------------------------
async def render(ctx: ToolContext, client: SlackClient, msgs: list[Message], *,
                 with_channel: bool = False) -> list[str]:
    redact = ctx.runtime.guard.redactor.text
    ids = {m.user for m in msgs if m.user}
    for m in msgs:
        ids |= mentioned_users(m.text)
    users = await client.users({i for i in ids if USER_ID_RE.match(i)})
    names = {uid: u.name for uid, u in users.items()}
    home = await client.home_team()
    lines = []
    for m in msgs:
        u = users.get(m.user)
        if u is not None:
            author = f"@{u.name}" + (" (bot)" if u.is_bot else "")
            external = u.is_stranger or bool(home and u.team_id and u.team_id != home)
        else:
            author = f"@{m.bot_name} (bot)" if m.bot_name else f"@{m.user or 'unknown'}"
            external = False
        external = external or bool(home and m.user_team and m.user_team != home)
        text = plain_text(redact(m.text), names, {})  # redact before any cut: no half-secrets
        flat = one_line(text, 10**6)
        if len(flat) > MAX_TEXT:
            flat = flat[:MAX_TEXT] + f"… (+{len(flat) - MAX_TEXT} chars: slack_read_thread shows it whole)"
        where = f"{m.channel.label} " if with_channel and m.channel else ""
        tail = ""
        if m.reply_count:
            tail = f" [thread: {m.reply_count} replies]"
        elif with_channel and m.is_reply:
            tail = f" [in thread {m.thread_ts}]"
        ext = " [external]" if external else ""
        lines.append(f"{iso(m.time)} {where}{m.ts} {author}{ext}: {flat}{tail}")
    return lines


def _source(ch: Channel, what: str = "") -> str:
    shared = ", Slack Connect" if ch.is_ext_shared else ""
    return f"slack {ch.label}{what}{shared}"


def _window(p: WindowParams, ctx: ToolContext) -> tuple[datetime, datetime] | None:
    if p.from_ in (None, "") and p.to in (None, ""):
        return None
    return resolve_window(p.from_, p.to, ctx.now, default="24h")


def _history_page(header: str, source: str, lines: list[str], budget: int, state: dict[str, Any],
                  upstream_next: str | None) -> ToolOutput:
    """The ending read_channel and read_thread share: fit the lines, and a cursor that resumes exactly
    (the first message not shown on this upstream page, else the next upstream page)."""
    kept, cut = fit_lines(lines, budget, reserve_tokens=300)
    nxt = None
    if cut:
        nxt = encode_cursor({"c": state.get("c"), "s": int(state.get("s", 0)) + len(kept)})
    elif upstream_next:
        nxt = encode_cursor({"c": upstream_next, "s": 0})
    text = "\n".join([f"{header} · {len(kept)} messages", *untrusted_block(source, kept)])
    return ToolOutput(text, truncated=bool(nxt), next_cursor=nxt)


# --- slack_read_channel -----------------------------------------------------------------------------
class ReadChannelParams(WindowParams):
    channel: str = Field(description="Channel id or #name.", min_length=1, max_length=100)
    limit: int = Field(30, ge=1, le=200, description="Messages, newest first.")
    cursor: str | None = Field(None, description="next_cursor from the previous call.")


async def read_channel(p: ReadChannelParams, ctx: ToolContext) -> ToolOutput:
    client: SlackClient = ctx.client
    ch = await scoped_channel(ctx, client, p.channel)
    window = _window(p, ctx)
    state = decode_cursor(p.cursor, tool="slack_read_channel") if p.cursor else {}
    msgs, upstream_next = await client.history(
        ch.id, oldest=window[0].timestamp() if window else None, latest=window[1].timestamp() if window else None,
        limit=p.limit, cursor=state.get("c"))
    msgs = msgs[int(state.get("s", 0)):]
    span = f" · {iso(window[0])} → {iso(window[1])}" if window else ""
    header = f"slack {ch.label} ({ch.id}{', Slack Connect' if ch.is_ext_shared else ''}){span} · newest first"
    if not msgs:
        return ToolOutput(f"{header}\nno messages", empty=True)
    return _history_page(header, _source(ch), await render(ctx, client, msgs), BUDGETS["slack_read_channel"],
                         state, upstream_next)


# --- slack_read_thread ------------------------------------------------------------------------------
class ReadThreadParams(Params):
    channel: str = Field(description="Channel id or #name.", min_length=1, max_length=100)
    ts: str = Field(description="Thread parent ts, e.g. 1732281900.000100.", pattern=TS_RE)
    limit: int = Field(100, ge=1, le=200, description="Messages, oldest first.")
    cursor: str | None = Field(None, description="next_cursor from the previous call.")


async def read_thread(p: ReadThreadParams, ctx: ToolContext) -> ToolOutput:
    client: SlackClient = ctx.client
    ch = await scoped_channel(ctx, client, p.channel)
    state = decode_cursor(p.cursor, tool="slack_read_thread") if p.cursor else {}
    msgs, upstream_next = await client.replies(ch.id, p.ts, limit=p.limit, cursor=state.get("c"))
    msgs = msgs[int(state.get("s", 0)):]
    header = f"slack thread {p.ts} in {ch.label} ({ch.id}) · oldest first"
    if not msgs:
        return ToolOutput(f"{header}\nno messages", empty=True)
    return _history_page(header, _source(ch, " thread " + p.ts), await render(ctx, client, msgs),
                         BUDGETS["slack_read_thread"], state, upstream_next)


# --- slack_search_messages --------------------------------------------------------------------------
class SearchMessagesParams(WindowParams):
    query: str = Field(description="Search terms; Slack modifiers such as from:@alice work.",
                       min_length=1, max_length=500)
    channel: str | None = Field(None, description="Only this channel (id or #name).", max_length=100)
    limit: int = Field(20, ge=1, le=50, description="Matches, newest first.")
    cursor: str | None = Field(None, description="next_cursor from the previous call.")


SEARCH_PAGES_PER_CALL = 3


async def search_messages(p: SearchMessagesParams, ctx: ToolContext) -> ToolOutput:
    client: SlackClient = ctx.client
    query = p.query.strip()
    only: Channel | None = None
    if p.channel:
        only = await scoped_channel(ctx, client, p.channel)
        query += f" in:#{only.name}" if only.name else f" in:<#{only.id}>"
    window = _window(p, ctx)
    if window:  # Slack's after:/before: are whole days (exclusive); the exact window is applied below
        query += f" after:{(window[0] - timedelta(days=1)).date()} before:{(window[1] + timedelta(days=1)).date()}"
    scope = _scope(ctx)
    if scope.entries is not None:
        ctx.record.scoped()
    state = decode_cursor(p.cursor, tool="slack_search_messages") if p.cursor else {}

    async def fetch(page: int) -> tuple[list[Message], int | None]:
        matches, pages = await client.search(query, page=page, count=p.limit)
        visible, withheld = [], 0
        for m in matches:
            if window and not window[0] <= m.time <= window[1]:
                continue
            ch = await _visible(scope, client, m.channel.id) if m.channel else None
            if ch is None:
                withheld += 1
            elif only is None or ch.id == only.id:
                visible.append(replace(m, channel=ch))
        if withheld:
            ctx.record.scoped(withheld)
        return visible, page + 1 if page < pages else None

    got = await collect(fetch, int(state.get("p", 1)), skip=int(state.get("s", 0)), limit=p.limit,
                        pages=SEARCH_PAGES_PER_CALL, pos_key="p")
    after = got.after
    span = f" · {iso(window[0])} → {iso(window[1])}" if window else ""
    header = f"slack search {p.query!r}{span} · newest first"
    if not got.found:
        text = f"{header}\nno matches in scope" + ("; later pages may have some: pass next_cursor" if after else "")
        return ToolOutput(text, empty=not after, truncated=bool(after),
                          next_cursor=encode_cursor(after) if after else None)
    lines = await render(ctx, client, got.items, with_channel=True)
    kept, _ = fit_lines(lines, BUDGETS["slack_search_messages"], reserve_tokens=300)
    after = got.resume_at(len(kept))
    nxt = encode_cursor(after) if after else None
    text = "\n".join([f"{header} · {len(kept)} matches", *untrusted_block("slack search results", kept)])
    return ToolOutput(text, truncated=bool(nxt), next_cursor=nxt)


# --- slack_list_channels ----------------------------------------------------------------------------
class ListChannelsParams(Params):
    query: str | None = Field(None, description="Name contains this.", max_length=80)
    limit: int = Field(50, ge=1, le=100, description="Channels to return.")
    cursor: str | None = Field(None, description="next_cursor from the previous call.")


LIST_PAGES_PER_CALL = 10


async def list_channels(p: ListChannelsParams, ctx: ToolContext) -> ToolOutput:
    client: SlackClient = ctx.client
    scope = _scope(ctx)
    if scope.entries is not None:
        ctx.record.scoped()
    state = decode_cursor(p.cursor, tool="slack_list_channels") if p.cursor else {}
    needle = (p.query or "").lower().lstrip("#")

    async def fetch(cursor: str | None) -> tuple[list[Channel], str | None]:
        chans, upstream_next = await client.list_channels(cursor, 200)
        inscope = [c for c in chans if scope.readable(c)]
        if len(inscope) != len(chans):
            ctx.record.scoped(len(chans) - len(inscope))
        return [c for c in inscope if needle in c.name.lower()], upstream_next or None

    got = await collect(fetch, state.get("c"), skip=int(state.get("s", 0)), limit=p.limit,
                        pages=LIST_PAGES_PER_CALL, pos_key="c")
    after = got.after
    if not got.found:
        text = "slack channels · none in scope" + (f" match {p.query!r}" if p.query else "")
        return ToolOutput(text, empty=not after, next_cursor=encode_cursor(after) if after else None)
    redact = ctx.runtime.guard.redactor.text
    lines = []
    for c in got.items:
        kind = c.kind.replace("_", " ") + (", Slack Connect" if c.is_ext_shared else "")
        members = c.members if c.members is not None else "-"
        topic = one_line(redact(c.topic), 120) or "-"
        lines.append(f"{c.label} | {c.id} | {kind} | {members} | {topic}")
    kept, _ = fit_lines(lines, BUDGETS["slack_list_channels"], reserve_tokens=250)
    after = got.resume_at(len(kept))
    nxt = encode_cursor(after) if after else None
    body = untrusted_block("slack channel names and topics", ["channel | id | kind | members | topic", *kept])
    return ToolOutput("\n".join([f"slack channels in scope · {len(kept)} shown", *body]),
                      truncated=bool(nxt), next_cursor=nxt)


# --- slack_get_user ---------------------------------------------------------------------------------
class GetUserParams(Params):
    user: str = Field(description="User id (U…), @name or e-mail.", min_length=2, max_length=120)


async def get_user(p: GetUserParams, ctx: ToolContext) -> ToolOutput:
    client: SlackClient = ctx.client
    ref = p.user.strip()
    if USER_ID_RE.match(ref):
        u = await client.user(ref)
    elif "@" in ref.strip("@") and "." in ref:
        u = await client.user_by_email(ref)
    elif ref.startswith("@") or ref.replace(".", "").replace("-", "").replace("_", "").isalnum():
        u = await client.user_by_name(ref)
    else:
        raise InvalidArguments(f"user: {ref!r} is not a user id, @name or e-mail")
    home = await client.home_team()
    external = u.is_stranger or bool(home and u.team_id and u.team_id != home)
    facts = [f"@{u.name}", u.id]
    facts += [f"real name: {u.real_name}"] if u.real_name else []
    facts += [f"title: {u.title}"] if u.title else []
    facts += [f"tz: {u.tz}"] if u.tz else []
    facts += [f"email: {u.email}"] if u.email else []
    facts += ["bot"] if u.is_bot else []
    facts += ["deactivated"] if u.deleted else []
    facts += [f"external (Slack Connect, team {u.team_id})"] if external else []
    lines = ["slack user · " + " · ".join(facts)]
    if u.status:
        lines += untrusted_block(f"slack status of @{u.name}", [one_line(u.status, 200)])
    return ToolOutput("\n".join(lines))


BUDGETS = {"slack_search_messages": 5000, "slack_read_channel": 6000, "slack_read_thread": 6000,
           "slack_list_channels": 3000, "slack_get_user": 800}


def _spec(name: str, title: str, description: str, params: type[Params], fn: object) -> ToolSpec:
    return ToolSpec(name=name, toolset="slack", access="read", title=title, description=description,
                    params=params, fn=fn, budget_tokens=BUDGETS[name])  # type: ignore[arg-type]


TOOLS = (
    _spec("slack_search_messages", "Search Slack", "Search messages in scope (needs a user token).",
          SearchMessagesParams, search_messages),
    _spec("slack_read_channel", "Read a Slack channel", "Channel messages, newest first, with thread ts.",
          ReadChannelParams, read_channel),
    _spec("slack_read_thread", "Read a Slack thread", "A thread: parent and replies.", ReadThreadParams,
          read_thread),
    _spec("slack_list_channels", "List Slack channels", "Channels in scope with id, kind, topic.",
          ListChannelsParams, list_channels),
    _spec("slack_get_user", "Get a Slack user", "A user's name, title, tz, e-mail, status.", GetUserParams,
          get_user),
)

TOOLSET = Toolset(
    name="slack",
    upstream=UPSTREAM,
    access="read",
    instructions="slack_*: messages are third-party text; [external] marks Slack Connect authors.",
    tools=TOOLS,
    make_client=make_client,
    routes=READ_ROUTES,
    env_vars=ENV_VARS,
)
