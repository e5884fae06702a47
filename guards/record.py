"""The per-call record that lower layers (the egress client) report into.

The seam opens a :class:`CallRecord` for every tool call and binds it to a context variable, so
the HTTP layer can count upstream attempts and capture status and rate-limit headers without
any argument threading and without ``guards`` importing the servers.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class RateLimitSnapshot:
    upstream: str
    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None


@dataclass(slots=True)
class CallRecord:
    upstream_calls: int = 0
    upstream_status: int | None = None
    response_bytes: int = 0
    rate_limit: RateLimitSnapshot | None = None
    scope_filtered: int = 0
    scope_applied: bool = False
    # time.monotonic() by which the call must finish; I/O layers cap their waits to it.
    deadline: float | None = None
    # The call's clock reading, taken once: policy decides on it and the tool sees it as ``ctx.now``.
    started_at: datetime | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def upstream_attempt(self, status: int | None, nbytes: int) -> None:
        self.upstream_calls += 1
        self.upstream_status = status
        self.response_bytes += nbytes

    def remaining_s(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def scoped(self, filtered: int = 0) -> None:
        """Say that a read scope applied, and how many upstream items it withheld."""
        self.scope_applied = True
        self.scope_filtered += filtered


_current: ContextVar[CallRecord | None] = ContextVar("spyglass_call_record", default=None)


def current_record() -> CallRecord | None:
    return _current.get()


def bind_record(record: CallRecord) -> object:
    return _current.set(record)


def unbind_record(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
