"""The Slack read/post scope over a channel (table-tested).

Scope entries are channel ids (``C0123ABCD``, ``G…``, ``D…``) or ``#name`` patterns (globs allowed).
- Reads: a public channel is in scope when no channel scope is set, or when its id is listed or
  its name matches a pattern. Private channels, DMs and group DMs are in scope only when listed
  explicitly: by id, or (private channels) by their exact ``#name`` — a glob never admits them.
- Posts: only channels listed explicitly (id or exact ``#name``); no scope means no channel.

:class:`SlackScope` parses the entries once (one compiled regex for every pattern), so checking
thousands of channels against it is cheap; build it once per call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import translate

from servers.slack.models import ID_RE, Channel

RULE = "scopes.slack.channels"


class SlackScope:
    """The channel scope (``None``: no channel scope set) parsed once."""

    __slots__ = ("_pattern", "entries", "exact", "ids")

    def __init__(self, entries: Sequence[str] | None) -> None:
        self.entries = None if entries is None else list(entries)
        self.ids: set[str] = set()
        names: list[str] = []
        for e in entries or ():
            e = e.strip()
            if ID_RE.match(e):
                self.ids.add(e)
            elif e:
                names.append("#" + e.lstrip("#").lower())
        self.exact = frozenset(n for n in names if not any(c in n for c in "*?["))
        # fnmatchcase semantics: translate() anchors each pattern; one alternation for all of them.
        self._pattern = re.compile("|".join(f"(?:{translate(n)})" for n in names)) if names else None

    def _name(self, ch: Channel) -> str:
        return f"#{ch.name.lower()}"

    def _exact_name(self, ch: Channel) -> bool:
        return bool(ch.name) and self._name(ch) in self.exact

    def readable(self, ch: Channel) -> bool:
        if ch.id in self.ids:
            return True
        if ch.kind in ("dm", "group_dm"):
            return False
        if ch.kind == "private":
            return self._exact_name(ch)
        if self.entries is None:
            return True
        return bool(ch.name) and self._pattern is not None and self._pattern.match(self._name(ch)) is not None

    def postable(self, ch: Channel) -> bool:
        if not self.entries:
            return False
        return ch.id in self.ids or (ch.kind in ("public", "private") and self._exact_name(ch))

