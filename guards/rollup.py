"""Retention: events older than N days become hourly aggregates the report still reads.

One event is a few hundred bytes; an hourly aggregate stands for every call that shares its
key (hour, principal, client, toolset, tool, upstream, outcome, decision, rule, status, empty),
with counts, latency sum/max and a latency histogram, tokens, bytes and rate-limit headroom. The
per-run detail and the arguments of rolled-up calls are gone; the utilization numbers are not.

Rolling up keeps the hash chain verifiable: per stream, only a prefix of the chain is removed
(in insertion order), and the hash of its last event is kept as the anchor the remaining chain
starts from, with the count of events removed.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from guards.audit_store import ROLLUP_COLUMNS, AuditStore, iso_ts
from guards.report import format_hist, hist_bucket, parse_hist

DEFAULT_RAW_DAYS = 30.0
DEFAULT_ROLLUP_DAYS = 400.0

_SOURCE = (
    "stream, hash, ts, principal, client, toolset, tool, upstream, outcome, decision, rule_id, upstream_status, "
    "empty, duration_ms, est_tokens, response_bytes, scope_filtered, ratelimit_limit, ratelimit_remaining, message"
)


@dataclass(frozen=True)
class Retention:
    """How long raw events and hourly rollups are kept; ``None`` keeps them forever."""

    raw_days: float | None = DEFAULT_RAW_DAYS
    rollup_days: float | None = DEFAULT_ROLLUP_DAYS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Retention:
        """``SPYGLASS_AUDIT_RAW_DAYS`` / ``SPYGLASS_AUDIT_ROLLUP_DAYS``: a number, or ``forever``."""
        env = os.environ if env is None else env
        return cls(
            _days(env.get("SPYGLASS_AUDIT_RAW_DAYS"), DEFAULT_RAW_DAYS, "SPYGLASS_AUDIT_RAW_DAYS"),
            _days(env.get("SPYGLASS_AUDIT_ROLLUP_DAYS"), DEFAULT_ROLLUP_DAYS, "SPYGLASS_AUDIT_ROLLUP_DAYS"),
        )


def _days(value: str | None, default: float, name: str) -> float | None:
    if value is None or not value.strip():
        return default
    if value.strip().lower() in ("forever", "never", "off", "none"):
        return None
    try:
        days = float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected a number of days or 'forever'") from None
    if days < 0:
        raise ValueError(f"{name}={value!r}: must not be negative")
    return days


@dataclass
class RollupResult:
    cutoff: str
    events_rolled: int = 0
    rollup_rows: int = 0
    rollups_expired: int = 0


class _Agg:
    __slots__ = ("calls", "dur_max", "dur_sum", "hist", "message", "rbytes", "rl_limit", "rl_min", "scope", "tokens")

    def __init__(self) -> None:
        self.calls = 0
        self.dur_sum = 0.0
        self.dur_max = 0.0
        self.hist: Counter[int] = Counter()
        self.tokens = 0
        self.rbytes = 0
        self.scope = 0
        self.rl_limit: int | None = None
        self.rl_min: int | None = None
        self.message = ""


def _key_id(key: tuple[Any, ...]) -> str:
    return "\x1f".join("" if v is None else str(v) for v in key)


def apply_retention(store: AuditStore, retention: Retention, now: datetime | None = None,
                    chunk: int = 20000) -> RollupResult:
    now = now or datetime.now(UTC)
    if retention.raw_days is None:
        result = RollupResult(cutoff="")
    else:
        result = rollup(store, now - timedelta(days=retention.raw_days), chunk=chunk)
    if retention.rollup_days is not None:
        expire = iso_ts(now - timedelta(days=retention.rollup_days))[:13]
        try:
            store.begin_write()
            cur = store.execute("DELETE FROM audit_rollups WHERE hour < ?", [expire])
            result.rollups_expired = max(0, int(cur.rowcount or 0))
            store.commit()
        except BaseException:
            store.rollback()
            raise
    return result


def rollup(store: AuditStore, older_than: datetime, *, chunk: int = 20000) -> RollupResult:
    """Aggregate and remove raw events older than ``older_than`` (floored to the hour)."""
    cutoff = iso_ts(older_than.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
    result = RollupResult(cutoff=cutoff)
    seq = store.seq
    stream_max = {
        s: int(m) for s, m in store.fetchall(
            f"SELECT stream, MAX({seq}) FROM audit_events WHERE ts < ? GROUP BY stream", [cutoff])
    }
    if not stream_max:
        return result
    top, last = max(stream_max.values()), 0
    while True:
        # Each chunk is read, folded and deleted in one write transaction: two maintainers (two
        # replicas) never fold the same events twice.
        store.begin_write()
        try:
            rows = store.fetchall(
                f"SELECT {seq}, {_SOURCE} FROM audit_events WHERE {seq} > ? AND {seq} <= ? "
                f"ORDER BY {seq} LIMIT {chunk}",
                [last, top],
            )
            if rows:
                last = int(rows[-1][0])
                take = [r for r in rows if int(r[0]) <= stream_max.get(r[1], -1)]
                if take:
                    _fold(store, take, result)
            store.commit()
        except BaseException:
            store.rollback()
            raise
        if not rows:
            break
    return result


def _fold(store: AuditStore, rows: list[tuple[Any, ...]], result: RollupResult) -> None:
    aggs: dict[tuple[Any, ...], _Agg] = {}
    anchors: dict[str, tuple[str, int]] = {}
    for r in rows:
        (_seq, stream, h, ts, principal, client, toolset, tool, upstream, outcome, decision, rule_id, status,
         empty, dur, tokens, rbytes, scope, rl_limit, rl_remaining, message) = r
        key = (ts[:13], principal or "", client or "", toolset or "", tool or "", upstream or "", outcome or "",
               decision or "", rule_id or "", int(status or 0), int(bool(empty)))
        a = aggs.get(key)
        if a is None:
            a = aggs[key] = _Agg()
        dur = float(dur or 0.0)
        a.calls += 1
        a.dur_sum += dur
        a.dur_max = max(a.dur_max, dur)
        a.hist[hist_bucket(dur)] += 1
        a.tokens += int(tokens or 0)
        a.rbytes += int(rbytes or 0)
        a.scope += int(scope or 0)
        if rl_limit:
            a.rl_limit = int(rl_limit)
            if rl_remaining is not None and (a.rl_min is None or rl_remaining < a.rl_min):
                a.rl_min = int(rl_remaining)
        if message:
            a.message = message
        _, n = anchors.get(stream, ("", 0))
        anchors[stream] = (h, n + 1)
    # Inside the caller's write transaction.
    existing = _existing(store, [_key_id(k) for k in aggs])
    marks = ", ".join("?" * (len(ROLLUP_COLUMNS) + 1))
    upsert = (
        f"INSERT INTO audit_rollups (k, {', '.join(ROLLUP_COLUMNS)}) VALUES ({marks}) "
        f"ON CONFLICT (k) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in ROLLUP_COLUMNS)}"
    )
    out = []
    for key, a in aggs.items():
        kid = _key_id(key)
        old = existing.get(kid)
        if old is not None:
            _merge(a, old)
        out.append((kid, *key, a.calls, a.dur_sum, a.dur_max, format_hist(a.hist), a.tokens, a.rbytes, a.scope,
                    a.rl_limit, a.rl_min, a.message[:300]))
    store.executemany(upsert, out)
    store.delete_seqs([int(r[0]) for r in rows])
    for stream, (h, n) in anchors.items():
        cur = store.execute(
            "UPDATE audit_streams SET pruned_hash = ?, pruned_count = pruned_count + ? WHERE stream = ?",
            [h, n, stream],
        )
        if not cur.rowcount:
            store.execute(
                "INSERT INTO audit_streams (stream, head_hash, events, first_ts, last_ts, pruned_hash, "
                "pruned_count) VALUES (?, ?, ?, '', '', ?, ?)", [stream, h, n, h, n],
            )
    result.events_rolled += len(rows)
    result.rollup_rows += len(aggs)


def _existing(store: AuditStore, kids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for i in range(0, len(kids), 500):
        part = kids[i : i + 500]
        rows = store.fetchall(
            f"SELECT k, {', '.join(ROLLUP_COLUMNS)} FROM audit_rollups WHERE k IN ({', '.join('?' * len(part))})", part
        )
        for r in rows:
            found[r[0]] = dict(zip(ROLLUP_COLUMNS, r[1:], strict=True))
    return found


def _merge(a: _Agg, old: dict[str, Any]) -> None:
    a.calls += int(old["calls"] or 0)
    a.dur_sum += float(old["dur_sum"] or 0.0)
    a.dur_max = max(a.dur_max, float(old["dur_max"] or 0.0))
    a.hist.update(parse_hist(old["dur_hist"]))
    a.tokens += int(old["tokens"] or 0)
    a.rbytes += int(old["response_bytes"] or 0)
    a.scope += int(old["scope_filtered"] or 0)
    a.rl_limit = a.rl_limit or old["rl_limit"]
    if old["rl_min_remaining"] is not None and (a.rl_min is None or old["rl_min_remaining"] < a.rl_min):
        a.rl_min = int(old["rl_min_remaining"])
    a.message = a.message or old["message"] or ""
