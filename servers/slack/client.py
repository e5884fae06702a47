"""The only Slack modules that talk HTTP: the read client and the write client, each with its routes.

Slack answers HTTP 200 with ``{"ok": false, "error": ...}``; :func:`slack_failure` maps those to
typed errors. Users and channels are resolved lazily, one lookup at a time, and cached with a
TTL: nothing is fetched workspace-wide at start-up, and name lookups page through
``conversations.list`` / ``users.list`` only when a tool is given a name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from servers._core.cache import TTLCache
from servers._core.egress import EgressClient, Route, retry_after_seconds
from servers._core.errors import MissingAccess, NotFound, RateLimited, ToolFailure, UpstreamError
from servers._core.spec import ClientEnv
from servers.slack.models import ID_RE, Channel, Message, User, parse_channel, parse_message, parse_user
from servers.slack.settings import TOKEN_VARS, SlackSettings, TokenKind

AUTH_TEST = Route("GET", "/auth.test")
HISTORY = Route("GET", "/conversations.history")
REPLIES = Route("GET", "/conversations.replies")
CONV_INFO = Route("GET", "/conversations.info")
CONV_LIST = Route("GET", "/conversations.list")
USERS_INFO = Route("GET", "/users.info")
USERS_BY_EMAIL = Route("GET", "/users.lookupByEmail")
USERS_LIST = Route("GET", "/users.list")
SEARCH = Route("GET", "/search.messages")
POST_MESSAGE = Route("POST", "/chat.postMessage")

READ_ROUTES: tuple[Route, ...] = (AUTH_TEST, HISTORY, REPLIES, CONV_INFO, CONV_LIST, USERS_INFO, USERS_BY_EMAIL,
                                  USERS_LIST, SEARCH)
# The write client resolves channel names and posts; it reads no message history.
WRITE_ROUTES: tuple[Route, ...] = (CONV_INFO, CONV_LIST, POST_MESSAGE)

CACHE_TTL_S = 300.0
NAME_PAGES = 20  # at most 20 pages of 200 when resolving a name (4000 channels / users)

_AUTH_ERRORS = {"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired",
                "no_permission", "not_allowed_token_type", "ekm_access_denied", "org_login_required"}
_NOT_FOUND = {"channel_not_found", "thread_not_found", "message_not_found", "user_not_found", "users_not_found"}

def slack_failure(method: str, data: Any, kind: TokenKind, retry_after: float | None = None) -> ToolFailure:
    """A typed error for Slack's ``{"ok": false, "error": ...}``."""
    err = str(data.get("error") if isinstance(data, dict) else "malformed response")
    var = TOKEN_VARS[kind]
    if err == "missing_scope":
        needed = str(data.get("needed") or "?")
        return MissingAccess(
            f"slack {method}: the token in {var} lacks the scope {needed!r}"
            + (f" (it has: {data['provided']})" if data.get("provided") else ""),
            hint=f"add {needed} to the Slack app's {kind} token scopes and reinstall it",
        )
    if err == "not_allowed_token_type":
        return MissingAccess(f"slack {method} does not accept the {kind} token in {var}",
                             hint="slack search needs a user token: set SLACK_USER_TOKEN (xoxp-, search:read)")
    if err in _AUTH_ERRORS:
        return MissingAccess(f"slack {method}: {err} for the token in {var}", hint=f"check {var}")
    if err == "not_in_channel":
        return MissingAccess(f"slack {method}: the app is not a member of this channel",
                             hint="invite the Spyglass app to the channel (/invite @app)")
    if err in _NOT_FOUND:
        return NotFound(f"slack {method}: {err}", hint="check the id; list channels with slack_list_channels")
    if err == "ratelimited":
        return RateLimited(f"slack {method} is rate limited", retry_after_s=retry_after)
    return UpstreamError(f"slack {method} failed: {err}", hint="check the arguments")


def _form(params: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in params.items():
        if v is None:
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


class _SlackBase:
    def __init__(self, settings: SlackSettings, env: ClientEnv, routes: tuple[Route, ...],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        for secret in (settings.bot_token, settings.user_token):
            if secret is not None:
                env.register_secret(secret.get_secret_value())
        self.http = EgressClient(
            upstream="slack",
            base_url=settings.base_url,
            routes=routes,
            headers={"Accept": "application/json"},
            transport=env.transport,
            access_hint="check SLACK_BOT_TOKEN / SLACK_USER_TOKEN",
        )
        self.default_kind: TokenKind = "bot" if settings.bot_token is not None else "user"
        self._channels: TTLCache[str, Channel] = TTLCache(CACHE_TTL_S, clock=clock)
        self._names: TTLCache[str, dict[str, str]] = TTLCache(CACHE_TTL_S, clock=clock)
        self._lock = anyio.Lock()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, route: Route, params: Mapping[str, Any], *, kind: TokenKind | None = None) -> dict[str, Any]:
        kind = kind or self.default_kind
        secret = self.settings.token(kind)
        if secret is None:
            raise MissingAccess(f"slack {route.template.lstrip('/')} needs {TOKEN_VARS[kind]}, which is not set",
                                hint=f"set {TOKEN_VARS[kind]}")
        headers = {"Authorization": f"Bearer {secret.get_secret_value()}"}
        if route.method == "GET":
            resp = await self.http.request("GET", route.template, params=_form(params), headers=headers)
        else:
            resp = await self.http.request(route.method, route.template, data=_form(params), headers=headers)
        data = resp.json()
        if not isinstance(data, dict) or data.get("ok") is not True:
            raise slack_failure(route.template.lstrip("/"), data, kind, retry_after_seconds(resp.headers))
        return data

    # --- channels ------------------------------------------------------------------------------
    async def channel(self, ref: str) -> Channel:
        """A channel by id, ``#name`` or name; cached."""
        ref = ref.strip()
        cid = ref if ID_RE.match(ref) else await self._channel_id(ref.lstrip("#").lower())
        cached = self._channels.get(cid)
        if cached is not None:
            return cached
        data = await self.call(CONV_INFO, {"channel": cid})
        return self._channels.put(cid, parse_channel(data.get("channel") or {}))

    def remember(self, ch: Channel) -> None:
        self._channels.put(ch.id, ch)

    async def list_channels(self, cursor: str | None, limit: int,
                            types: str = "public_channel,private_channel") -> tuple[list[Channel], str | None]:
        params = {"types": types, "exclude_archived": True, "limit": limit, "cursor": cursor}
        try:
            data = await self.call(CONV_LIST, params)
        except MissingAccess:
            if "private_channel" not in types:
                raise
            # Without groups:read Slack refuses the whole call; fall back to public channels.
            data = await self.call(CONV_LIST, {**params, "types": "public_channel"})
        chans = [parse_channel(c) for c in data.get("channels") or []]
        for ch in chans:
            self.remember(ch)
        nxt = (data.get("response_metadata") or {}).get("next_cursor") or None
        return chans, nxt

    async def _channel_id(self, name: str) -> str:
        async with self._lock:
            index = self._names.get("channels")
            if index is None or name not in index:
                index, cursor = {}, None
                for _ in range(NAME_PAGES):
                    chans, cursor = await self.list_channels(cursor, 200)
                    index.update({c.name.lower(): c.id for c in chans if c.name})
                    if not cursor or name in index:
                        break
                self._names.put("channels", index)
        if name not in index:
            raise NotFound(f"slack: no channel named #{name} visible to the app",
                           hint="pass the channel id (C…), or list channels with slack_list_channels")
        return index[name]


class SlackClient(_SlackBase):
    """Read client: history, threads, search, channels, users."""

    def __init__(self, settings: SlackSettings, env: ClientEnv, routes: tuple[Route, ...] = READ_ROUTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(settings, env, routes, clock)
        self._users: TTLCache[str, User] = TTLCache(CACHE_TTL_S, clock=clock)
        self._home: str | None = None

    async def home_team(self) -> str:
        if self._home is None:
            self._home = str((await self.call(AUTH_TEST, {})).get("team_id") or "")
        return self._home

    async def history(self, channel: str, *, oldest: float | None, latest: float | None, limit: int,
                      cursor: str | None) -> tuple[list[Message], str | None]:
        data = await self.call(HISTORY, {"channel": channel, "oldest": oldest, "latest": latest, "limit": limit,
                                         "cursor": cursor, "inclusive": True if oldest or latest else None})
        nxt = (data.get("response_metadata") or {}).get("next_cursor") or None
        return [parse_message(m) for m in data.get("messages") or []], nxt

    async def replies(self, channel: str, ts: str, *, limit: int,
                      cursor: str | None) -> tuple[list[Message], str | None]:
        data = await self.call(REPLIES, {"channel": channel, "ts": ts, "limit": limit, "cursor": cursor})
        nxt = (data.get("response_metadata") or {}).get("next_cursor") or None
        return [parse_message(m) for m in data.get("messages") or []], nxt

    async def search(self, query: str, *, page: int, count: int) -> tuple[list[Message], int]:
        """One page of search.messages (user token only), newest first; returns (matches, pages)."""
        if self.settings.user_token is None:
            raise MissingAccess(
                "slack_search_messages needs a user token: only SLACK_BOT_TOKEN is configured, and Slack's "
                "search.messages does not accept bot tokens",
                hint="set SLACK_USER_TOKEN (xoxp-, scope search:read), or read channels with slack_read_channel",
            )
        data = await self.call(SEARCH, {"query": query, "page": page, "count": count, "sort": "timestamp",
                                        "sort_dir": "desc", "highlight": False}, kind="user")
        msgs = data.get("messages") or {}
        paging = msgs.get("paging") or {}
        return [parse_message(m) for m in msgs.get("matches") or []], int(paging.get("pages") or 1)

    # --- users -----------------------------------------------------------------------------------
    async def user(self, uid: str) -> User:
        cached = self._users.get(uid)
        if cached is not None:
            return cached
        data = await self.call(USERS_INFO, {"user": uid})
        return self._users.put(uid, parse_user(data.get("user") or {}))

    async def users(self, ids: set[str]) -> dict[str, User]:
        """Resolve many ids, four lookups at a time; an id Slack does not know stays unresolved."""
        out: dict[str, User] = {}
        limiter = anyio.Semaphore(4)

        async def one(uid: str) -> None:
            async with limiter:
                try:
                    out[uid] = await self.user(uid)
                except NotFound:
                    pass

        async with anyio.create_task_group() as tg:
            for uid in sorted(ids):
                tg.start_soon(one, uid)
        return out

    async def user_by_email(self, email: str) -> User:
        data = await self.call(USERS_BY_EMAIL, {"email": email})
        u = parse_user(data.get("user") or {})
        return self._users.put(u.id, u)

    async def user_by_name(self, name: str) -> User:
        name = name.lstrip("@").lower()
        async with self._lock:
            index = self._names.get("users")
            if index is None or name not in index:
                index, cursor = {}, None
                for _ in range(NAME_PAGES):
                    data = await self.call(USERS_LIST, {"limit": 200, "cursor": cursor})
                    for raw in data.get("members") or []:
                        u = self._users.put(str(raw.get("id")), parse_user(raw))
                        index[u.name.lower()] = u.id
                    cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
                    if not cursor or name in index:
                        break
                self._names.put("users", index)
        if name not in index:
            raise NotFound(f"slack: no user named @{name}", hint="pass the user id (U…) or their e-mail")
        return await self.user(index[name])


class SlackWriteClient(_SlackBase):
    """Write client (slack_write): resolves channels and posts as the bot. Its routes include chat.postMessage."""

    def __init__(self, settings: SlackSettings, env: ClientEnv, routes: tuple[Route, ...] = WRITE_ROUTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if settings.bot_token is None:
            raise MissingAccess("posting to Slack needs SLACK_BOT_TOKEN (Spyglass posts as its app, never as a person)",
                                hint="set SLACK_BOT_TOKEN with the chat:write scope")
        super().__init__(settings, env, routes, clock)

    async def post_message(self, channel: str, text: str, thread_ts: str | None = None) -> str:
        """Post ``text`` (Slack mrkdwn) to a channel id or ``#name``; returns the new message's ts."""
        cid = channel if ID_RE.match(channel) else (await self.channel(channel)).id
        data = await self.call(POST_MESSAGE, {"channel": cid, "text": text, "thread_ts": thread_ts,
                                              "unfurl_links": False, "unfurl_media": False}, kind="bot")
        return str(data.get("ts") or "")


def make_client(env: ClientEnv) -> SlackClient:
    return SlackClient(SlackSettings.from_env(env.env), env)


def make_write_client(env: ClientEnv) -> SlackWriteClient:
    return SlackWriteClient(SlackSettings.from_env(env.env), env)
