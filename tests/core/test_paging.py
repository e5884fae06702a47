"""collect(): a page filled up to its limit across upstream pages, resuming exactly; and the shared TTL cache."""

from __future__ import annotations

from typing import Any

import pytest

from servers._core.cache import TTLCache
from servers._core.paging import collect

pytestmark = pytest.mark.anyio
PAGES = [["a", "b"], [], ["c", "d", "e"], ["f"]]


@pytest.mark.parametrize(
    ("start", "skip", "limit", "pages", "items", "after"),
    [
        (0, 0, 3, 5, "abc", {"p": 2, "s": 1}),  # fills across pages, an empty one included
        (0, 0, 2, 5, "ab", {"p": 1, "s": 0}),  # full at a page's end: the next page starts the next call
        (0, 0, 10, 5, "abcdef", None),  # every page read: no cursor
        (2, 1, 10, 5, "def", None),  # resumes at the item the cursor names
        (0, 0, 10, 2, "ab", {"p": 2, "s": 0}),  # the page cap leaves a cursor to the next unread page
        (3, 0, 1, 5, "f", None),  # the last page filled exactly: the end
        (2, 3, 5, 1, "", {"p": 3, "s": 0}),  # nothing left on this page, the cap reached: still a cursor
    ],
)
async def test_collect_fills_the_limit_across_upstream_pages_and_resumes_exactly(
        start: int, skip: int, limit: int, pages: int, items: str, after: dict[str, Any] | None) -> None:
    async def fetch(pos: int) -> tuple[list[str], int | None]:
        return PAGES[pos], pos + 1 if pos + 1 < len(PAGES) else None

    got = await collect(fetch, start, skip=skip, limit=limit, pages=pages, pos_key="p")
    assert "".join(got.items) == items
    assert got.after == after
    assert all(state == {"p": p, "s": PAGES[p].index(x)} for x, state in got.found for p in [state["p"]])
    if got.found:  # a budget cut after the first item resumes at the second
        assert got.resume_at(1) == (got.found[1][1] if len(got.found) > 1 else after)
    assert got.resume_at(len(got.found)) == after


async def test_collect_passes_over_an_item_whose_key_it_already_has() -> None:
    pages = [["x1", "y1"], ["x2", "z1"]]

    async def fetch(pos: int) -> tuple[list[str], int | None]:
        return pages[pos], pos + 1 if pos + 1 < len(pages) else None

    got = await collect(fetch, 0, skip=0, limit=3, pages=3, pos_key="t", key=lambda s: s[0])
    assert got.items == ["x1", "y1", "z1"] and got.after is None
    assert got.found[2][1] == {"t": 1, "s": 1}


def test_the_ttl_cache_forgets_expired_and_least_recently_used_entries() -> None:
    now = [0.0]
    cache: TTLCache[str, int] = TTLCache(10, 2, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    now[0] = 10.1
    assert cache.get("a") is None
