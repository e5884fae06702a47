"""The one guarded HTTP client every upstream call goes through (async ``httpx2``).

Built per upstream with the exact list of ``(method, path-template)`` routes it may call:
anything else raises :class:`EgressDenied` before a socket opens. Path parameters are
percent-encoded into the template, so a tool can never steer a request to another path
or host (SSRF). Retries on 5xx and connection errors with backoff, honours ``Retry-After``
on 429 within a bounded budget, streams responses and stops at a byte cap, and reports
status, attempts and rate-limit headers into the current call's audit record.
"""

from __future__ import annotations

import json as jsonlib
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import anyio
import httpx2

from guards.record import RateLimitSnapshot, current_record
from servers._core.errors import EgressDenied, MissingAccess, NotFound, RateLimited, UpstreamError, UpstreamTimeout

__all__ = ["EgressClient", "Response", "RetryPolicy", "Route"]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    # GET is retried on 5xx/connection errors; a POST only when marked (read-only search endpoints).
    retry: bool | None = None

    @property
    def retryable(self) -> bool:
        return self.retry if self.retry is not None else self.method in ("GET", "HEAD")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff_s: float = 0.2
    budget_s: float = 5.0  # total time we may sleep for retries within one request


@dataclass
class Response:
    status: int
    headers: httpx2.Headers
    content: bytes

    def json(self) -> Any:
        try:
            return jsonlib.loads(self.content)
        except ValueError:
            raise UpstreamError(
                f"upstream answered {self.status} with a body that is not JSON ({len(self.content)} bytes)",
                upstream_status=self.status,
                retryable=self.status >= 500,
            ) from None


def default_error_message(body: bytes) -> str:
    try:
        data = jsonlib.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict):
        for key in ("errors", "error", "message", "detail", "error_description"):
            v = data.get(key)
            if isinstance(v, list) and v:
                return "; ".join(
                    str(x.get("detail") or x.get("message") or x.get("title") or x) if isinstance(x, dict) else str(x)
                    for x in v[:3]
                )
            if isinstance(v, dict):  # Google: {"error": {"code": 403, "message": ..., "status": ...}}
                return str(v.get("message") or v.get("status") or v)
            if v:
                return str(v)
    return str(data)[:200]


def _header_int(headers: httpx2.Headers, *names: str) -> int | None:
    for n in names:
        v = headers.get(n)
        if v is not None:
            try:
                return int(float(v))
            except ValueError:
                continue
    return None


def epoch_ms_reset_seconds(headers: httpx2.Headers, name: str = "x-ratelimit-requests-reset") -> float | None:
    """Seconds from now until a reset given as milliseconds since the epoch (Linear's X-RateLimit-Requests-Reset)."""
    reset_ms = _header_int(headers, name)
    return max(0.0, reset_ms / 1000 - time.time()) if reset_ms else None


def retry_after_seconds(headers: httpx2.Headers) -> float | None:
    v = headers.get("retry-after")
    if v is None:
        reset = _header_int(headers, "x-ratelimit-reset")
        return float(reset) if reset is not None and reset < 86400 else None
    try:
        return max(0.0, float(v))
    except ValueError:
        try:
            from datetime import UTC, datetime

            return max(0.0, (parsedate_to_datetime(v) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


class EgressClient:
    def __init__(
        self,
        *,
        upstream: str,
        base_url: str,
        routes: Iterable[Route],
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 20.0,
        max_response_bytes: int = 8 * 1024 * 1024,
        retry: RetryPolicy | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        error_message: Callable[[bytes], str] = default_error_message,
        access_hint: str = "check the credentials and their scopes",
        sleep: Callable[[float], Any] = anyio.sleep,
    ) -> None:
        self.upstream = upstream
        self.base_url = base_url.rstrip("/")
        self.routes = {(r.method.upper(), r.template): r for r in routes}
        self.max_response_bytes = max_response_bytes
        self.retry = retry or RetryPolicy()
        self.error_message = error_message
        self.access_hint = access_hint
        self._sleep = sleep
        self._timeout_s = timeout_s
        self._timeout = httpx2.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        self._http = httpx2.AsyncClient(
            headers=dict(headers or {}),
            timeout=self._timeout,
            transport=transport,
            follow_redirects=False,  # a redirect could leave the allowlisted host
        )

    def url_for(self, method: str, template: str, path_params: Mapping[str, Any] | None = None) -> tuple[Route, str]:
        route = self.routes.get((method.upper(), template))
        if route is None:
            raise EgressDenied(
                f"{self.upstream}: {method.upper()} {template} is not in this client's route allowlist",
                hint="this is a Spyglass bug or a blocked attempt; the request was not sent",
            )
        params = dict(path_params or {})
        names = _PARAM.findall(template)
        if set(names) != set(params):
            raise EgressDenied(f"{self.upstream}: path parameters {sorted(params)} do not fit {template}")

        def sub(m: re.Match[str]) -> str:
            value = str(params[m.group(1)])
            if not value or value in (".", ".."):
                raise EgressDenied(f"{self.upstream}: empty or dot path parameter {m.group(1)!r}")
            return quote(value, safe="")

        return route, self.base_url + _PARAM.sub(sub, template)

    async def request(
        self,
        method: str,
        template: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Iterable[int] = (),
    ) -> Response:
        route, url = self.url_for(method, template, path_params)
        expected = set(expect)
        record = current_record()
        slept = 0.0
        last_error: Exception | None = None
        for attempt in range(1, self.retry.attempts + 1):
            left = record.remaining_s() if record is not None else None
            if left is not None and left <= 0:
                raise UpstreamTimeout(
                    f"the call ran out of its time budget before {self.upstream} answered",
                    hint="narrow the time window or the query and try again",
                )
            try:
                resp = await self._send(method.upper(), url, params=params, json=json, data=data, headers=headers,
                                        timeout=self._timeout if left is None else min(self._timeout_s, left))
            except httpx2.TimeoutException as e:
                last_error = e
                self._note(None, 0)
                if not route.retryable or attempt == self.retry.attempts:
                    raise UpstreamTimeout(
                        f"{self.upstream} did not answer in time ({type(e).__name__})",
                        hint="retry, or narrow the query",
                    ) from None
            except (httpx2.TransportError, _TooLarge) as e:
                if isinstance(e, _TooLarge):
                    raise UpstreamError(
                        f"{self.upstream} response exceeded {self.max_response_bytes} bytes; it was not read",
                        hint="narrow the query or lower the limit",
                    ) from None
                last_error = e
                self._note(None, 0)
                if not route.retryable or attempt == self.retry.attempts:
                    raise UpstreamError(
                        f"cannot reach {self.upstream} ({type(e).__name__}: {e})",
                        hint="check the upstream URL and network; Spyglass retried",
                        retryable=True,
                    ) from None
            else:
                self._note(resp.status, len(resp.content), resp.headers)
                if 200 <= resp.status < 300 or resp.status in expected:
                    return resp
                if resp.status == 429:
                    wait = retry_after_seconds(resp.headers)
                    wait = self.retry.backoff_s * 2**attempt if wait is None else wait
                    room = left is None or wait < left
                    if attempt < self.retry.attempts and slept + wait <= self.retry.budget_s and room:
                        slept += wait
                        await self._sleep(wait)
                        continue
                    raise RateLimited(
                        f"{self.upstream} rate limit reached: {self.error_message(resp.content)}",
                        retry_after_s=retry_after_seconds(resp.headers),
                    )
                if resp.status >= 500 and route.retryable and attempt < self.retry.attempts:
                    last_error = None
                else:
                    raise self._status_error(resp)
            wait = self.retry.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random() / 2)
            if slept + wait > self.retry.budget_s:
                break
            slept += wait
            await self._sleep(wait)
        raise UpstreamError(
            f"{self.upstream} kept failing after {self.retry.attempts} attempts ({last_error or 'server error'})",
            retryable=True,
        )

    async def _send(self, method: str, url: str, **kw: Any) -> Response:
        async with self._http.stream(method, url, **kw) as r:
            declared = r.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_response_bytes:
                raise _TooLarge()
            chunks, size = [], 0
            async for chunk in r.aiter_bytes():
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise _TooLarge()
                chunks.append(chunk)
            return Response(r.status_code, r.headers, b"".join(chunks))

    def _status_error(self, resp: Response) -> Exception:
        msg = self.error_message(resp.content)
        if resp.status in (401, 403):
            return MissingAccess(
                f"{self.upstream} answered {resp.status}: {msg}", hint=self.access_hint, upstream_status=resp.status
            )
        if resp.status == 404:
            return NotFound(f"{self.upstream}: not found ({msg})", upstream_status=404,
                            hint=f"check the id; the {self.upstream} search and list tools return valid ones")
        return UpstreamError(
            f"{self.upstream} answered {resp.status}: {msg}",
            upstream_status=resp.status,
            retryable=resp.status >= 500 or resp.status == 408,
            hint=None if resp.status >= 500 else "the upstream rejected the request; check the arguments",
        )

    def _note(self, status: int | None, nbytes: int, headers: httpx2.Headers | None = None) -> None:
        rec = current_record()
        if rec is None:
            return
        rec.upstream_attempt(status, nbytes)
        if headers is not None:
            # Datadog/GitHub/Grafana: X-RateLimit-*; IETF draft: RateLimit-*; Linear: X-RateLimit-Requests-*.
            limit = _header_int(headers, "x-ratelimit-limit", "ratelimit-limit", "x-ratelimit-requests-limit")
            remaining = _header_int(headers, "x-ratelimit-remaining", "ratelimit-remaining",
                                    "x-ratelimit-requests-remaining")
            if limit is not None or remaining is not None:
                reset: float | None = _header_int(headers, "x-ratelimit-reset", "ratelimit-reset")
                if reset is None:
                    reset = epoch_ms_reset_seconds(headers)
                rec.rate_limit = RateLimitSnapshot(self.upstream, limit, remaining, reset)

    async def aclose(self) -> None:
        await self._http.aclose()


class _TooLarge(Exception):
    pass
