"""Budgets: which limits a call draws on (pure) and the stores that count them.

``MemoryLimitStore`` serves one process. A fleet of replicas shares a Redis store
(``guards.redis_limits``) with the same interface, so one budget holds across replicas.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol

from guards.decide import MEMO_MAX, where_matches
from guards.policy import Limit, Policy


@dataclass(frozen=True)
class Draw:
    """One budget a call draws from: the limit and the bucket key within it."""

    limit: Limit
    bucket: str


def draws_for(
    policy: Policy,
    *,
    tool: str,
    toolset: str,
    upstream: str | None,
    principal: str,
    client: str,
    args: Mapping[str, Any],
) -> list[Draw]:
    # Which limits target a call depends on its names only; glob-matching every limit on every
    # call grows with the policy, so that part is worked out once per combination (as ``decide``).
    memo = policy.memo()
    key = ("limits", tool, toolset, upstream, principal)
    targeting: tuple[Limit, ...] | None = memo.get(key)
    if targeting is None:
        if len(memo) >= MEMO_MAX:
            memo.clear()
        targeting = memo[key] = _targeting(policy, tool, toolset, upstream, principal)
    out: list[Draw] = []
    for lim in targeting:
        if lim.where and not where_matches(lim.where, args):
            continue
        parts = []
        for k in lim.key:
            v = {"principal": principal, "tool": tool, "client": client}.get(k, args.get(k))
            parts.append(f"{k}={v}")
        out.append(Draw(lim, f"{lim.id}|{'|'.join(parts)}"))
    return out


def _targeting(policy: Policy, tool: str, toolset: str, upstream: str | None, principal: str) -> tuple[Limit, ...]:
    """The limits about this tool (by name, toolset or upstream) and principal, ignoring ``where``."""
    return tuple(
        lim for lim in policy.limits
        if (any(fnmatchcase(tool, p) for p in lim.tools)
            or any(fnmatchcase(toolset, p) for p in lim.toolsets)
            or (lim.upstream is not None and lim.upstream == upstream))
        and any(fnmatchcase(principal, p) for p in lim.principals)
    )


def sliding_take(hits: deque[float], max_calls: int, per_s: float, now: float) -> float | None:
    """Take one unit from a sliding window of hit times (oldest first): ``None`` when granted,
    else seconds until the oldest hit leaves the window. Expired hits are popped from the front,
    so a call costs O(expired), not O(hits in the window)."""
    while hits and hits[0] <= now - per_s:
        hits.popleft()
    if len(hits) >= max_calls:
        return max(0.0, hits[0] + per_s - now)
    hits.append(now)
    return None


class LimitStore(Protocol):
    async def take(self, bucket: str, max_calls: int, per_s: float) -> float | None:
        """Take one unit; ``None`` when granted, else seconds until one frees up."""

    async def claim_once(self, key: str, ttl_s: float) -> bool:
        """True the first time ``key`` is claimed within ``ttl_s``; False ever after (single use)."""

    async def lease(self, key: str, ttl_s: float) -> str | None:
        """Hold ``key`` alone for at most ``ttl_s``: a token to release it with, or None while
        another holder has it. A holder that dies leaves it to expire."""

    async def release(self, key: str, token: str) -> None:
        """End a lease. Only its own token ends it: an expired lease may belong to another by now."""

    async def healthy(self) -> bool:
        """Whether the store can enforce right now (a shared store may be unreachable)."""


class MemoryLimitStore:
    """Sliding-window counters, exact for "at most N per window"; a process-local store."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._claims: dict[str, float] = {}
        self._leases: dict[str, tuple[str, float]] = {}  # key -> (holder's token, expiry)

    async def take(self, bucket: str, max_calls: int, per_s: float) -> float | None:
        hits = self._hits.get(bucket)
        if hits is None:
            hits = self._hits[bucket] = deque()
        return sliding_take(hits, max_calls, per_s, self._clock())

    async def claim_once(self, key: str, ttl_s: float) -> bool:
        now = self._clock()
        if len(self._claims) > 10000:  # forget expired claims now and then
            self._claims = {k: exp for k, exp in self._claims.items() if exp > now}
        exp = self._claims.get(key)
        if exp is not None and exp > now:
            return False
        self._claims[key] = now + ttl_s
        return True

    async def lease(self, key: str, ttl_s: float) -> str | None:
        now = self._clock()
        held = self._leases.get(key)
        if held is not None and held[1] > now:
            return None
        token = secrets.token_hex(8)
        self._leases[key] = (token, now + ttl_s)
        return token

    async def release(self, key: str, token: str) -> None:
        held = self._leases.get(key)
        if held is not None and held[0] == token:
            del self._leases[key]

    async def healthy(self) -> bool:
        return True
