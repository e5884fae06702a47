"""Budgets and plan single-use shared by every replica, in Redis.

``SPYGLASS_REDIS_URL=redis://host:6379/0`` (optional ``?prefix=name:`` for the key prefix, ours,
removed before connecting). Each budget is a sliding-window log in a sorted set, checked and
taken in one Lua script on Redis's own clock, so replicas never both take the last unit and
their clocks do not matter. A plan claim is ``SET NX PX``; a lease is ``SET NX PX`` with the
holder's token, released by compare-and-delete.

When Redis cannot be reached: reads fall back to a process-local store (the budget is then per
replica), write calls are refused because :meth:`RedisLimitStore.healthy` is false (the guard
checks it before a write), and plan claims fail closed. Each change of state is written to the
audit log as a ``system`` event when a sink is given, and logged.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from guards.audit import AuditEvent, AuditSink, new_event_id, utc_now_iso
from guards.errors import LimitsUnavailable
from guards.limits import LimitStore, MemoryLimitStore
from guards.urls import pop_param, safe_url

log = logging.getLogger("spyglass.limits")

RETRY_AFTER_FAILURE_S = 2.0  # how long to stay on local limits before trying Redis again

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - per)
if redis.call('ZCARD', KEYS[1]) >= max then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = tonumber(oldest[2]) + per - now
  if wait < 0 then wait = 0 end
  return wait
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], per)
return -1
"""


# Compare-and-delete: a holder whose lease expired must not end the next holder's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def split_url(url: str) -> tuple[str, str]:
    """``(redis URL without our parameters, key prefix)``."""
    return pop_param(url, "prefix", "spyglass:")


class RedisLimitStore:
    def __init__(self, url: str, *, prefix: str | None = None, sink: AuditSink | None = None,
                 timeout_s: float = 1.0, clock: Any = time.monotonic) -> None:
        import redis.asyncio as aioredis

        conn_url, url_prefix = split_url(url)
        self.prefix = prefix if prefix is not None else url_prefix
        self.location = safe_url(conn_url, user=False)  # as it always was: no user named
        self.sink = sink
        self._redis: Any = aioredis.Redis.from_url(
            conn_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self._take = self._redis.register_script(_TAKE)
        self._release = self._redis.register_script(_RELEASE)
        self._local = MemoryLimitStore(clock)
        self._clock = clock
        self._down_until = 0.0
        self.degraded = False

    async def take(self, bucket: str, max_calls: int, per_s: float) -> float | None:
        if not self._skip():
            try:
                wait = await self._take(keys=[f"{self.prefix}b:{bucket}"],
                                        args=[max_calls, max(1, int(per_s * 1000)), uuid.uuid4().hex])
                self._up()
                return None if int(wait) < 0 else int(wait) / 1000
            except Exception as e:  # unreachable, timed out, refused, script error
                self._down(e)
        return await self._local.take(bucket, max_calls, per_s)

    async def claim_once(self, key: str, ttl_s: float) -> bool:
        return await self._set_once(f"c:{key}", "1", ttl_s, "a plan cannot be claimed")

    async def lease(self, key: str, ttl_s: float) -> str | None:
        token = uuid.uuid4().hex
        return token if await self._set_once(f"l:{key}", token, ttl_s, f"{key!r} cannot be held") else None

    async def _set_once(self, key: str, value: str, ttl_s: float, refused: str) -> bool:
        """``SET NX PX``: True if this call set it. Fails closed: claims and leases guard writes."""
        try:
            ok = await self._redis.set(f"{self.prefix}{key}", value, nx=True, px=max(1, int(ttl_s * 1000)))
        except Exception as e:
            self._down(e)
            raise LimitsUnavailable(
                f"the shared limits store ({self.location}) is unreachable, so {refused}: {e}",
                hint="retry once Redis is back; writes are refused until then",
            ) from None
        self._up()
        return bool(ok)

    async def release(self, key: str, token: str) -> None:
        try:
            await self._release(keys=[f"{self.prefix}l:{key}"], args=[token])
        except Exception as e:  # the lease then ends by expiring
            self._down(e)
            log.warning("releasing %s failed (%s); it expires on its own", key, e)

    async def healthy(self) -> bool:
        if self._skip():
            return False
        try:
            await self._redis.ping()
        except Exception as e:
            self._down(e)
            return False
        self._up()
        return True

    async def aclose(self) -> None:
        await self._redis.aclose()

    # -- state ------------------------------------------------------------------------------
    def _skip(self) -> bool:
        return self.degraded and self._clock() < self._down_until

    def _down(self, error: BaseException) -> None:
        self._down_until = self._clock() + RETRY_AFTER_FAILURE_S
        if not self.degraded:
            self.degraded = True
            msg = (f"shared limits store {self.location} unreachable ({type(error).__name__}: {error}); "
                   "write calls are refused and reads use this replica's local limits")
            log.error("%s", msg)
            self._notice("error", msg)

    def _up(self) -> None:
        if self.degraded:
            self.degraded = False
            msg = f"shared limits store {self.location} reachable again; shared budgets apply"
            log.warning("%s", msg)
            self._notice("ok", msg)

    def _notice(self, outcome: str, message: str) -> None:
        if self.sink is None:
            return
        self.sink.emit(system_event("limits.redis", outcome, message[:300]))


def system_event(tool: str, outcome: str, message: str) -> AuditEvent:
    """An audit event the server writes about itself (the report lists these as notices)."""
    return AuditEvent(
        id=new_event_id(), ts=utc_now_iso(), duration_ms=0.0, run_id="", principal="spyglass",
        principal_kind="system", client="", client_version="", server="spyglass", tool=tool,
        toolset="(system)", access="read", args="{}", args_digest="", decision="", rule_id="",
        outcome=outcome, message=message,
    )


def open_limits(url: str | None, *, sink: AuditSink | None = None) -> LimitStore:
    """Redis-backed limits for a URL, process-local ones for ``None``."""
    if not url:
        return MemoryLimitStore()
    return RedisLimitStore(url, sink=sink)
