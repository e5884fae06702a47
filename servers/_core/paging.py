"""Fill a page up to ``limit`` items across upstream pages, with a cursor that resumes exactly.

Upstream pages are filtered by the caller (scope, time window), so one upstream page may yield fewer
items than asked for. :func:`collect` reads up to ``pages`` upstream pages and records, for every item
it keeps, the cursor state that starts at it: ``{pos_key: <upstream position>, "s": <index in that
page's filtered items>}``. A caller that later cuts the list (token budget) resumes at the first item
it dropped; otherwise it resumes at ``after``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Collected", "collect"]

T = TypeVar("T")
P = TypeVar("P")

State = dict[str, Any]


@dataclass
class Collected(Generic[T]):
    found: list[tuple[T, State]] = field(default_factory=list)  # each item with the cursor state that starts at it
    after: State | None = None  # where the next call starts when every found item is shown; None: the end

    @property
    def items(self) -> list[T]:
        return [x for x, _ in self.found]

    def resume_at(self, shown: int) -> State | None:
        """The cursor state after showing the first ``shown`` items."""
        return self.found[shown][1] if shown < len(self.found) else self.after


async def collect(
    fetch: Callable[[P], Awaitable[tuple[Sequence[T], P | None]]],
    start: P,
    *,
    skip: int,
    limit: int,
    pages: int,
    pos_key: str,
    key: Callable[[T], Hashable] | None = None,
) -> Collected[T]:
    """Up to ``limit`` items from at most ``pages`` upstream pages, starting at item ``skip`` of page ``start``.

    ``fetch(pos)`` returns one upstream page's (filtered) items and the next page's position, or None
    after the last page. With ``key``, an item whose key was already collected is passed over."""
    out: Collected[T] = Collected()
    seen: set[Hashable] = set()
    pos = start
    for _ in range(pages):
        items, nxt = await fetch(pos)
        out.after = None
        for i, x in enumerate(items[skip:], start=skip):
            if len(out.found) == limit:
                out.after = {pos_key: pos, "s": i}
                break
            if key is not None:
                k = key(x)
                if k in seen:
                    continue
                seen.add(k)
            out.found.append((x, {pos_key: pos, "s": i}))
        if out.after is not None or nxt is None:
            break
        pos, skip = nxt, 0
        out.after = {pos_key: pos, "s": 0}
        if len(out.found) == limit:
            break
    return out
