"""The Slack read/post scope as pure functions over a channel (table-tested).

Scope entries are channel ids (``C0123ABCD``, ``G…``, ``D…``) or ``#name`` patterns (globs allowed).
- Reads: a public channel is in scope when no channel scope is set, or when its id is listed or
  its name matches a pattern. Private channels, DMs and group DMs are in scope only when listed
  explicitly: by id, or (private channels) by their exact ``#name`` — a glob never admits them.
- Posts: only channels listed explicitly (id or exact ``#name``); no scope means no channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from servers.slack.models import ID_RE, Channel

RULE = "scopes.slack.channels"


def _split(entries: Sequence[str]) -> tuple[set[str], list[str]]:
    ids, names = set(), []
    for e in entries:
        e = e.strip()
        if ID_RE.match(e):
            ids.add(e)
        elif e:
            names.append("#" + e.lstrip("#").lower())
    return ids, names


def _exact_name(names: list[str], ch: Channel) -> bool:
    return bool(ch.name) and f"#{ch.name.lower()}" in [n for n in names if not any(c in n for c in "*?[")]


def readable(entries: Sequence[str] | None, ch: Channel) -> bool:
    ids, names = _split(entries or [])
    if ch.id in ids:
        return True
    if ch.kind in ("dm", "group_dm"):
        return False
    if ch.kind == "private":
        return _exact_name(names, ch)
    if entries is None:
        return True
    return bool(ch.name) and any(fnmatchcase(f"#{ch.name.lower()}", n) for n in names)


def postable(entries: Sequence[str] | None, ch: Channel) -> bool:
    if not entries:
        return False
    ids, names = _split(entries)
    return ch.id in ids or (ch.kind in ("public", "private") and _exact_name(names, ch))
