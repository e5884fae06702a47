"""Slack objects as the tools use them, parsed from Web API payloads, and Slack markup to plain text."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

ChannelKind = Literal["public", "private", "dm", "group_dm"]
ID_RE = re.compile(r"^[CGD][A-Z0-9]{6,}$")
USER_ID_RE = re.compile(r"^[UWB][A-Z0-9]{6,}$")
TS_RE = r"^\d{9,11}\.\d{1,6}$"


@dataclass(frozen=True)
class Channel:
    id: str
    name: str = ""
    is_private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    is_ext_shared: bool = False
    is_archived: bool = False
    members: int | None = None
    topic: str = ""
    dm_user: str = ""  # the other person of a DM

    @property
    def kind(self) -> ChannelKind:
        if self.is_im:
            return "dm"
        if self.is_mpim:
            return "group_dm"
        return "private" if self.is_private else "public"

    @property
    def label(self) -> str:
        if self.is_im:
            return f"DM {self.id}"
        return f"#{self.name}" if self.name else self.id


def parse_channel(c: Mapping[str, Any]) -> Channel:
    topic = c.get("topic") or {}
    purpose = c.get("purpose") or {}
    return Channel(
        id=str(c.get("id") or ""),
        name=str(c.get("name") or ""),
        is_private=bool(c.get("is_private") or c.get("is_group")),
        is_im=bool(c.get("is_im")),
        is_mpim=bool(c.get("is_mpim")),
        is_ext_shared=bool(c.get("is_ext_shared") or c.get("is_pending_ext_shared")),
        is_archived=bool(c.get("is_archived")),
        members=c.get("num_members") if isinstance(c.get("num_members"), int) else None,
        topic=str((topic.get("value") if isinstance(topic, dict) else "") or
                  (purpose.get("value") if isinstance(purpose, dict) else "") or ""),
        dm_user=str(c.get("user") or ""),
    )


@dataclass(frozen=True)
class User:
    id: str
    name: str
    real_name: str = ""
    title: str = ""
    tz: str = ""
    email: str = ""
    status: str = ""
    team_id: str = ""
    is_bot: bool = False
    deleted: bool = False
    is_stranger: bool = False  # Slack marks users of other organisations seen through Slack Connect


def parse_user(u: Mapping[str, Any]) -> User:
    p = u.get("profile") or {}
    return User(
        id=str(u.get("id") or ""),
        name=str(u.get("name") or p.get("display_name") or u.get("id") or ""),
        real_name=str(u.get("real_name") or p.get("real_name") or ""),
        title=str(p.get("title") or ""),
        tz=str(u.get("tz") or ""),
        email=str(p.get("email") or ""),
        status=" ".join(x for x in (str(p.get("status_emoji") or ""), str(p.get("status_text") or "")) if x),
        team_id=str(u.get("team_id") or p.get("team") or ""),
        is_bot=bool(u.get("is_bot") or u.get("is_app_user")),
        deleted=bool(u.get("deleted")),
        is_stranger=bool(u.get("is_stranger")),
    )


@dataclass(frozen=True)
class Message:
    ts: str
    text: str
    user: str = ""
    bot_name: str = ""
    user_team: str = ""
    thread_ts: str = ""
    reply_count: int = 0
    subtype: str = ""
    channel: Channel | None = None  # search results carry their channel

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(int(float(self.ts)), UTC)  # whole seconds: ts decimals are a sequence

    @property
    def is_reply(self) -> bool:
        return bool(self.thread_ts) and self.thread_ts != self.ts


def parse_message(m: Mapping[str, Any]) -> Message:
    text = str(m.get("text") or "")
    extra = []
    for a in m.get("attachments") or []:
        if isinstance(a, dict):
            part = a.get("text") or a.get("fallback") or a.get("title")
            if part and part not in text:
                extra.append(str(part))
    for f in m.get("files") or []:
        if isinstance(f, dict) and f.get("name"):
            extra.append(f"[file: {f['name']}]")
    bot = m.get("bot_profile") or {}
    ch = m.get("channel")
    return Message(
        ts=str(m.get("ts") or "0"),
        text="\n".join([text, *extra]) if extra else text,
        user=str(m.get("user") or ""),
        bot_name=str(m.get("username") or (bot.get("name") if isinstance(bot, dict) else "") or
                     ("bot" if m.get("bot_id") else "")),
        user_team=str(m.get("user_team") or ""),
        thread_ts=str(m.get("thread_ts") or ""),
        reply_count=int(m.get("reply_count") or 0),
        subtype=str(m.get("subtype") or ""),
        channel=parse_channel(ch) if isinstance(ch, dict) else None,
    )


_MARKUP = re.compile(r"<([@#!]?)([^|>]*)(?:\|([^>]*))?>")


def mentioned_users(text: str) -> set[str]:
    return {m.group(2) for m in _MARKUP.finditer(text) if m.group(1) == "@"}


def plain_text(text: str, users: Mapping[str, str], channels: Mapping[str, str]) -> str:
    """Slack markup (``<@U1>``, ``<#C1|name>``, ``<url|label>``, ``<!here>``) as readable text."""

    def sub(m: re.Match[str]) -> str:
        sigil, target, label = m.group(1), m.group(2), m.group(3)
        if sigil == "@":
            return "@" + (users.get(target) or label or target)
        if sigil == "#":
            return "#" + (label or channels.get(target) or target)
        if sigil == "!":
            return "@" + (label or target.split("^")[0])
        return f"{label} ({target})" if label and label != target else target

    return html.unescape(_MARKUP.sub(sub, text))
