"""Helpers for the sandbox fakes: auth checks, vendor-shaped errors, rate-limit headers, a tiny
search-query matcher. Fakes serve real API paths on loopback; they are test peers, not mocks of
our client, so requests are also validated against the vendors' specs in the tests.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

# A canary the fakes plant in upstream data: it must never reach tool output or the audit log.
CANARY_AWS_KEY = "AKIAZZCANARY7EXAMPLE"
CANARY_GITHUB_TOKEN = "ghp_" + "C4n4ry" * 6
CANARY_PASSWORD_URL = "postgres://svc_checkout:hunter2-canary@db.internal:5432/orders"
CANARIES = (CANARY_AWS_KEY, CANARY_GITHUB_TOKEN, "hunter2-canary")


@dataclass
class Faults:
    """Queued failures a test (or `spyglass sandbox --faults`) injects: (status, headers, body)."""

    queue: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)

    def push(self, status: int, body: Any = None, headers: Mapping[str, str] | None = None, times: int = 1) -> None:
        for _ in range(times):
            self.queue.append((status, dict(headers or {}), body))

    def take(self) -> Response | None:
        if not self.queue:
            return None
        status, headers, body = self.queue.pop(0)
        if isinstance(body, bytes | str):
            return Response(body, status_code=status, headers=headers)
        return JSONResponse(body if body is not None else {"errors": ["injected fault"]}, status, headers=headers)


class RateWindow:
    """Counts calls per fixed window and renders X-RateLimit-* headers like Datadog/GitHub do."""

    def __init__(self, limit: int = 300, period_s: int = 3600) -> None:
        self.limit, self.period_s, self.used, self._window = limit, period_s, 0, 0

    def headers(self, now_s: float, prefix: str = "X-RateLimit") -> dict[str, str]:
        window = int(now_s // self.period_s)
        if window != self._window:
            self._window, self.used = window, 0
        self.used += 1
        reset = int(self.period_s - now_s % self.period_s)
        return {
            f"{prefix}-Limit": str(self.limit),
            f"{prefix}-Remaining": str(max(0, self.limit - self.used)),
            f"{prefix}-Reset": str(reset),
            f"{prefix}-Period": str(self.period_s),
        }


def header_auth(request: Request, required: Mapping[str, str]) -> bool:
    return all(request.headers.get(h) == v for h, v in required.items())


def bearer(request: Request) -> str | None:
    h = request.headers.get("authorization", "")
    return h[7:] if h.lower().startswith("bearer ") else None


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return None


def page_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def page_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        return -1


_TERM = re.compile(r'(-)?(@?[\w.]+):\(([^)]*)\)|(-)?(@?[\w.]+):("[^"]*"|\S+)|(-)?("[^"]*"|[^\s()]+)')


def compile_search(query: str) -> Callable[[Mapping[str, Any], str], bool]:
    """A small Datadog-style search: ``key:value``, ``key:(a OR b)``, ``-key:v``, wildcards, free text.

    AND between terms; OR only inside parentheses. Enough for the sandbox story, and strict
    enough that a scope filter the fake ignored would show up in tests.
    """
    terms: list[tuple[bool, str | None, list[str]]] = []
    q = query.strip()
    if q in ("", "*"):
        return lambda _f, _t: True
    q = q.replace("(", " ( ").replace(")", " ) ") if ":(" not in q else q
    for m in _TERM.finditer(q):
        if m.group(2):
            vals = [v.strip().strip('"') for v in re.split(r"\s+OR\s+", m.group(3)) if v.strip()]
            terms.append((bool(m.group(1)), m.group(2).lstrip("@"), vals))
        elif m.group(5):
            terms.append((bool(m.group(4)), m.group(5).lstrip("@"), [m.group(6).strip('"')]))
        elif m.group(8) and m.group(8) not in ("AND", "(", ")"):
            terms.append((bool(m.group(7)), None, [m.group(8).strip('"')]))

    def wild(pattern: str, value: str) -> bool:
        rx = "^" + re.escape(pattern.lower()).replace(r"\*", ".*") + "$"
        return re.match(rx, value.lower()) is not None

    def match(fields: Mapping[str, Any], text: str) -> bool:
        for negate, key, values in terms:
            if key is None:
                hit = any(v.lower().strip("*") in text.lower() for v in values)
            else:
                val = fields.get(key)
                hit = val is not None and any(wild(v, str(val)) for v in values)
            if hit == negate:
                return False
        return True

    return match
