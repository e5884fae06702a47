"""Utilization from the audit log: how much of the time agents could act, and what held them back.

Pure: :class:`ReportBuilder` takes event rows (``REPORT_COLUMNS`` order, in time order) and hourly
rollup rows, and :meth:`ReportBuilder.build` returns a JSON-ready dict. Reading the rows is
``guards.audit_store``'s job; rendering is the CLI's.

Every call that did not deliver something useful is put in one class, by why the agent could
not act:

- ``missing_access``: no credentials, 401/403, the toolset not enabled by the policy
- ``human_gate``: denied by a policy rule, awaiting approval, a policy budget spent
- ``missing_context``: not found, or ok but empty
- ``upstream_failure``: 5xx, timeout, the upstream's own rate limit (429)
- ``invalid_call``: invalid arguments, unknown tool
- ``internal_error``: a Spyglass failure (crash, audit unavailable)

A call is a success when it ended ``ok`` and returned something (``empty`` is false).
"""

from __future__ import annotations

import bisect
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from guards.audit import AuditEvent
from guards.audit_store import parse_ts

CLASSES = ("missing_access", "human_gate", "missing_context", "upstream_failure", "invalid_call",
           "internal_error")
CLASS_LABELS = {
    "missing_access": "missing access",
    "human_gate": "human gate",
    "missing_context": "missing context",
    "upstream_failure": "upstream failure",
    "invalid_call": "invalid call",
    "internal_error": "internal error",
}
GROUP_KEYS = ("principal", "client", "toolset", "tool", "run")
# Upper edges (ms) of the latency histogram kept in hourly rollups.
HIST_EDGES = (0.5, 1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000,
              3000, 5000, 7000, 10000, 15000, 20000, 30000, 60000, 120000, math.inf)


def hist_value(i: int, dur_max: float) -> float:
    """The value a histogram bucket stands for: the geometric middle of its edges."""
    hi = HIST_EDGES[i]
    if hi == math.inf:
        return dur_max or HIST_EDGES[i - 1]
    lo = HIST_EDGES[i - 1] if i > 0 else hi / 2
    return round(math.sqrt(lo * hi), 3)


def classify(outcome: str, rule_id: str, status: int | None, empty: bool) -> tuple[str, str] | None:
    """``(class, cause)`` for a call that was not a success; ``None`` for a success."""
    if outcome == "ok":
        return ("missing_context", "empty result") if empty else None
    if status in (401, 403):
        return "missing_access", f"HTTP {status}"
    if outcome == "missing_access":
        return "missing_access", "no usable credentials"
    if outcome == "denied":
        if rule_id == "toolsets.enabled":
            return "missing_access", "toolset not enabled"
        if rule_id.startswith("scopes."):
            return "missing_access", f"outside the read scope ({rule_id})"
        if rule_id == "unknown-tool":
            return "invalid_call", "unknown tool"
        return "human_gate", f"denied by rule {rule_id or '(none)'}"
    if outcome == "awaiting_approval":
        return "human_gate", "awaiting approval"
    if outcome == "rate_limited":
        if rule_id and status != 429:
            return "human_gate", f"budget {rule_id} spent"
        return "upstream_failure", "HTTP 429 (upstream rate limit)"
    if outcome == "not_found":
        return "missing_context", "not found"
    if outcome == "upstream_error":
        return "upstream_failure", f"HTTP {status}" if status else "unreachable"
    if outcome == "timeout":
        return "upstream_failure", "timeout"
    if outcome == "invalid_args":
        return "invalid_call", "invalid arguments"
    return "internal_error", outcome or "unknown outcome"


def next_step(cls: str, cause: str, tool: str, toolset: str, upstream: str, calls: int, example: str) -> str:
    """One sentence a platform team can act on, with the evidence in it."""
    n = f"{calls} call{'s' if calls != 1 else ''} to {tool}"
    were = "were" if calls != 1 else "was"
    said = f" ({example})" if example else ""
    up = upstream or "the upstream"
    if cls == "missing_access":
        if cause == "HTTP 401":
            return f"{n} failed with 401{said}: {up} rejected the credential; rotate or replace it."
        if cause == "HTTP 403":
            return (f"{n} failed with 403{said}: the {up} credential lacks a permission {tool} needs; "
                    "grant that scope or stop offering the tool to these agents.")
        if cause == "toolset not enabled":
            return (f"{n} {were} refused because toolset {toolset!r} is not enabled; add it to "
                    "[toolsets] enabled if agents should use it.")
        if cause.startswith("outside the read scope"):
            return (f"{n} asked for data outside the read scope{said}: list it in the [[scopes]] entry for "
                    f"{toolset.removesuffix('_write')!r} if agents need it.")
        return f"{n} had no usable credentials{said}: set them in the server's environment."
    if cls == "human_gate":
        if cause == "awaiting approval":
            return f"{n} waited for a human approval{said}: add approvers or pre-approve routine cases."
        if cause.startswith("budget "):
            rule = cause.split(" ")[1]
            return (f"{n} hit the policy budget {rule!r}{said}: raise its max or widen per if it throttles "
                    "legitimate work.")
        rule = cause.removeprefix("denied by rule ")
        return (f"{n} {were} denied by rule {rule!r}{said}: if this is legitimate work, narrow the rule "
                "(where/unless/when) and check the change with `spyglass policy replay`.")
    if cls == "missing_context":
        if cause == "not found":
            return (f"{n} asked for something that does not exist{said}: agents guess ids; point them at "
                    "a search or list tool first.")
        if cause == "empty, scope withheld items":
            return (f"{n} came back empty because the read scope withheld every match: widen the "
                    f"[[scopes]] entry for {toolset!r} if agents need that data.")
        return f"{n} returned nothing: agents query the wrong window or names; check the tool's examples."
    if cls == "upstream_failure":
        if cause.startswith("HTTP 429"):
            return (f"{up} rate-limited {n}: add a Spyglass limit below the vendor's quota (see headroom) "
                    "or raise the quota.")
        if cause == "timeout":
            return f"{n} timed out{said}: narrow windows and queries, or raise the tool's timeout."
        return f"{n} failed upstream ({cause}){said}: check {up}'s status; Spyglass already retried."
    if cls == "invalid_call":
        if cause == "unknown tool":
            return f"{n}, a tool this server does not offer: enable its toolset or correct the agent's prompt."
        return (f"{n} had invalid arguments{said}: the schema or description misleads agents; "
                "clarify it or add an example.")
    return f"{n} failed inside Spyglass{said}: see the server log for the traceback."


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (q in 0..1)."""
    if not values:
        return 0.0
    return values[max(0, math.ceil(q * len(values)) - 1)]


def weighted_percentile(sorted_values: Sequence[float], hist: Counter[int], dur_max: float, q: float) -> float:
    """Percentile over exact values plus histogram counts (each at its bucket's middle)."""
    if not hist:
        return percentile(sorted_values, q)
    points = [(hist_value(i, dur_max), c) for i, c in hist.items() if c]
    points.sort()
    total = len(sorted_values) + sum(c for _, c in points)
    rank = max(1, math.ceil(q * total))
    i = j = seen = 0
    while True:
        take_exact = j >= len(points) or (i < len(sorted_values) and sorted_values[i] <= points[j][0])
        if take_exact:
            seen += 1
            if seen >= rank:
                return sorted_values[i]
            i += 1
        else:
            seen += points[j][1]
            if seen >= rank:
                return points[j][0]
            j += 1


def hist_bucket(ms: float) -> int:
    return bisect.bisect_left(HIST_EDGES, ms)


@dataclass
class _Stats:
    calls: int = 0
    ok: int = 0
    tokens: int = 0
    durations: list[float] = field(default_factory=list)
    hist: Counter[int] = field(default_factory=Counter)
    dur_max: float = 0.0
    classes: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        d = sorted(self.durations)
        return {
            "calls": self.calls,
            "ok": self.ok,
            "success_rate": round(self.ok / self.calls, 4) if self.calls else 0.0,
            "p50_ms": round(weighted_percentile(d, self.hist, self.dur_max, 0.50), 1),
            "p95_ms": round(weighted_percentile(d, self.hist, self.dur_max, 0.95), 1),
            "tokens_delivered": self.tokens,
            "non_success": {c: self.classes[c] for c in CLASSES if self.classes[c]},
        }


@dataclass
class _Cause:
    calls: int = 0
    example: str = ""
    upstream: str = ""
    toolset: str = ""
    last_ts: str = ""


@dataclass
class _Run:
    principal: str
    client: str
    first: str
    last: str
    calls: int = 0
    errors: int = 0
    gated: int = 0
    blocked_s: float = 0.0
    blocked_since: str = ""


@dataclass
class _Headroom:
    limit: int = 0
    min_remaining: int | None = None
    samples: int = 0
    last_ts: str = ""
    last_used: float = 0.0
    buckets: dict[str, float] = field(default_factory=dict)


def _secs(a: str, b: str) -> float:
    return max(0.0, (parse_ts(b) - parse_ts(a)).total_seconds())


def _short(message: str) -> str:
    """A message as an example: one line, short."""
    line = " ".join(message.split())
    return line if len(line) <= 120 else line[:117] + "..."


def bucket_width(start: datetime, end: datetime) -> str:
    """Timeline bucket for a window: minutes up to 3 h, hours up to 4 days, else days."""
    span = end - start
    if span <= timedelta(hours=3):
        return "minute"
    if span <= timedelta(days=4):
        return "hour"
    return "day"


_PREFIX = {"minute": 16, "hour": 13, "day": 10}
_SUFFIX = {"minute": ":00Z", "hour": ":00Z", "day": "T00:00Z"}


_ROW_INDEX = {"principal": 3, "client": 4, "toolset": 5, "tool": 6, "run": 2}


class ReportBuilder:
    """Feed rows with :meth:`add` / :meth:`add_rollup`, then :meth:`build`.

    The hot path keeps one cell per (group, tool, class) with its count, tokens and latencies;
    totals, groups, tools and classes are summed from the cells once, in :meth:`build`.
    """

    def __init__(self, start: datetime, end: datetime, group_by: Sequence[str] = ("tool",), top: int = 10,
                 bucket: str | None = None) -> None:
        for g in group_by:
            if g not in GROUP_KEYS:
                raise ValueError(f"cannot group by {g!r}; use one of {', '.join(GROUP_KEYS)}")
        self.start, self.end = start.astimezone(UTC), end.astimezone(UTC)
        self.group_by = tuple(group_by)
        self.top = top
        self.bucket = bucket or bucket_width(self.start, self.end)
        self._plen = _PREFIX[self.bucket]
        getter = operator.itemgetter(*(_ROW_INDEX[g] for g in self.group_by))
        self._gkey: Callable[[Sequence[Any]], tuple[str, ...]] = (
            (lambda row: (getter(row) or "-",)) if len(self.group_by) == 1
            else (lambda row: tuple(v or "-" for v in getter(row)))
        )
        self._cells: dict[tuple[tuple[str, ...], str, str], list[Any]] = {}  # -> [calls, tokens, durations]
        self._cell_hist: dict[tuple[tuple[str, ...], str, str], list[Any]] = {}  # -> [Counter, dur_max]
        self._tl: dict[tuple[str, str], int] = {}
        self.causes: dict[tuple[str, str, str], _Cause] = {}
        self.denials: dict[str, Counter[str]] = {}
        self.headroom: dict[str, _Headroom] = {}
        self.runs: dict[str, _Run] = {}
        self.notices: list[dict[str, str]] = []
        self.raw_events = 0
        self.rolled_calls = 0
        self.rollup_rows = 0

    # -- input ----------------------------------------------------------------------------
    def add_event(self, e: AuditEvent) -> None:
        if e.principal_kind == "system":
            self.add_notice(e.ts, e.tool, e.outcome, e.message)
            return
        self.add(
            (e.ts, e.duration_ms, e.run_id, e.principal, e.client, e.toolset, e.tool, e.outcome, e.rule_id,
             e.upstream, e.upstream_status, e.est_tokens, e.empty, e.scope_filtered, e.ratelimit_limit,
             e.ratelimit_remaining, e.message)
        )

    def add_notice(self, ts: str, tool: str, outcome: str, message: str | None) -> None:
        """An event the server wrote about itself (e.g. shared limits degraded): listed, not counted."""
        self.notices.append({"ts": ts, "tool": tool, "outcome": outcome, "message": message or ""})

    def add(self, row: Sequence[Any]) -> None:
        """One call in ``REPORT_COLUMNS`` order."""
        self.add_rows((row,))

    def add_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Calls in ``REPORT_COLUMNS`` order: the hot loop (a million rows in a few seconds)."""
        cells, tl, runs, plen, gkey = self._cells, self._tl, self.runs, self._plen, self._gkey
        n = 0
        for row in rows:
            (ts, dur, run_id, _principal, _client, toolset, tool, outcome, rule_id, upstream, status,
             tokens, empty, scope_filtered, rl_limit, rl_remaining, message) = row
            n += 1
            if outcome == "ok" and not empty:
                cls: tuple[str, str] | None = None
                c = "ok"
            else:
                cls = classify(outcome, rule_id or "", status, bool(empty))
                if cls is not None and scope_filtered and cls[1] == "empty result":
                    cls = ("missing_context", "empty, scope withheld items")
                c = cls[0] if cls is not None else "ok"
            key = (gkey(row), tool, c)
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = [0, 0, []]
            cell[0] += 1
            if outcome == "ok":
                cell[1] += tokens or 0
            cell[2].append(dur or 0.0)
            b = ts[:plen]
            tk = (b, c)
            tl[tk] = tl.get(tk, 0) + 1
            if cls is not None:
                self._cause(cls, tool, toolset, upstream, message, ts, 1)
                if outcome in ("denied", "rate_limited") and rule_id and status != 429:
                    self.denials.setdefault(rule_id, Counter())[tool] += 1
            if rl_limit:
                self._headroom(upstream, b, ts, rl_limit, rl_remaining)
            if run_id:
                r = runs.get(run_id)
                if r is None:
                    r = runs[run_id] = _Run(row[3], row[4], ts, ts)
                r.calls += 1
                if ts > r.last:
                    r.last = ts
                elif ts < r.first:
                    r.first = ts
                if cls is None:
                    if r.blocked_since:  # the gate is behind it: the agent could act again
                        r.blocked_s += _secs(r.blocked_since, ts)
                        r.blocked_since = ""
                else:
                    r.errors += 1
                    if cls[0] == "human_gate":
                        r.gated += 1
                        r.blocked_since = r.blocked_since or ts
        self.raw_events += n

    def add_rollup(self, row: Sequence[Any]) -> None:
        """One hourly aggregate in ``ROLLUP_COLUMNS`` order."""
        (hour, principal, client, toolset, tool, upstream, outcome, _decision, rule_id, status, empty, calls,
         _dur_sum, dur_max, dur_hist, tokens, _rbytes, scope_filtered, rl_limit, rl_min_remaining, message) = row
        self.rollup_rows += 1
        self.rolled_calls += calls
        status = status or None
        cls = classify(outcome, rule_id or "", status, bool(empty))
        if cls is not None and cls[1] == "empty result" and scope_filtered:
            cls = ("missing_context", "empty, scope withheld items")
        c = cls[0] if cls is not None else "ok"
        ts = f"{hour}:00:00.000Z"
        values = {"principal": principal, "client": client, "toolset": toolset, "tool": tool, "run": "(rolled up)"}
        key = (tuple(values[g] or "-" for g in self.group_by), tool, c)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = [0, 0, []]
        cell[0] += calls
        if outcome == "ok":
            cell[1] += tokens or 0
        h = self._cell_hist.get(key)
        if h is None:
            h = self._cell_hist[key] = [Counter(), 0.0]
        h[0].update(parse_hist(dur_hist))
        h[1] = max(h[1], dur_max or 0.0)
        b = ts[: self._plen]
        self._tl[(b, c)] = self._tl.get((b, c), 0) + calls
        if cls is not None:
            self._cause(cls, tool, toolset, upstream, message, ts, calls)
            if outcome in ("denied", "rate_limited") and rule_id and status != 429:
                self.denials.setdefault(rule_id, Counter())[tool] += calls
        if rl_limit:
            self._headroom(upstream, b, ts, rl_limit, rl_min_remaining)

    # -- helpers --------------------------------------------------------------------------
    def _sums(self) -> tuple[_Stats, dict[tuple[str, ...], _Stats], dict[str, _Stats]]:
        total = _Stats()
        groups: dict[tuple[str, ...], _Stats] = {}
        tools: dict[str, _Stats] = {}
        for (gk, tool, c), (calls, tokens, durations) in self._cells.items():
            g = groups.get(gk) or groups.setdefault(gk, _Stats())
            t = tools.get(tool) or tools.setdefault(tool, _Stats())
            for st in (total, g, t):
                st.calls += calls
                st.tokens += tokens
                st.durations.extend(durations)
                if c == "ok":
                    st.ok += calls
                else:
                    st.classes[c] += calls
        for (gk, tool, _c), (hist, dur_max) in self._cell_hist.items():
            for st in (total, groups[gk], tools[tool]):
                st.hist.update(hist)
                st.dur_max = max(st.dur_max, dur_max)
        return total, groups, tools

    def _cause(self, cls: tuple[str, str], tool: str, toolset: str, upstream: str, message: str | None,
               ts: str, n: int) -> None:
        k = (cls[0], cls[1], tool)
        c = self.causes.get(k)
        if c is None:
            c = self.causes[k] = _Cause(upstream=upstream or "", toolset=toolset or "")
        c.calls += n
        if message and ts >= c.last_ts:
            c.example, c.last_ts = message, ts

    def _headroom(self, upstream: str, b: str, ts: str, limit: int, remaining: int | None) -> None:
        h = self.headroom.get(upstream)
        if h is None:
            h = self.headroom[upstream] = _Headroom()
        h.samples += 1
        if remaining is None:
            return
        used = max(0.0, min(1.0, 1 - remaining / limit))
        if h.min_remaining is None or remaining < h.min_remaining:
            h.min_remaining = remaining
        if used > h.buckets.get(b, -1.0):
            h.buckets[b] = used
        if ts >= h.last_ts:
            h.last_ts, h.last_used, h.limit = ts, used, limit

    # -- output ---------------------------------------------------------------------------
    def build(self) -> dict[str, Any]:
        total, groups, tools = self._sums()
        return {
            "window": {"from": _iso(self.start), "to": _iso(self.end), "bucket": self.bucket},
            "source": {"events": self.raw_events, "rollup_rows": self.rollup_rows,
                       "rolled_up_calls": self.rolled_calls},
            "totals": total.summary(),
            "group_by": list(self.group_by),
            "groups": self._groups(groups),
            "classes": self._classes(),
            "timeline": self._timeline(),
            "top_tools": self._top_tools(tools),
            "denial_rules": self._denials(),
            "headroom": self._headrooms(),
            "runs": self._runs(),
            "notices": self.notices[-self.top:],
        }

    def _groups(self, groups: dict[tuple[str, ...], _Stats]) -> list[dict[str, Any]]:
        items = sorted(groups.items(), key=lambda kv: (-kv[1].calls, kv[0]))
        return [{"key": dict(zip(self.group_by, k, strict=True)), **st.summary()} for k, st in items]

    def _classes(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for cls in CLASSES:
            causes = [(k, c) for k, c in self.causes.items() if k[0] == cls]
            if not causes:
                continue
            causes.sort(key=lambda kc: (-kc[1].calls, kc[0]))
            out.append({
                "class": cls,
                "label": CLASS_LABELS[cls],
                "calls": sum(c.calls for _, c in causes),
                "causes": [
                    {
                        "tool": k[2],
                        "cause": k[1],
                        "calls": c.calls,
                        "example": _short(c.example),
                        "next_step": next_step(cls, k[1], k[2], c.toolset, c.upstream, c.calls, _short(c.example)),
                    }
                    for k, c in causes[: self.top]
                ],
            })
        out.sort(key=lambda d: -d["calls"])
        return out

    def _buckets(self) -> list[str]:
        """Every bucket of the window (empty ones too, so gaps show as gaps)."""
        step = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}[self.bucket]
        t = self.start.replace(second=0, microsecond=0)
        if self.bucket in ("hour", "day"):
            t = t.replace(minute=0)
        if self.bucket == "day":
            t = t.replace(hour=0)
        out: list[str] = []
        while t < self.end and len(out) < 2000:
            out.append(_iso(t)[: self._plen])
            t += step
        seen = set(out)
        out.extend(sorted({b for b, _ in self._tl} - seen))
        return sorted(out)

    def _timeline(self) -> dict[str, Any]:
        buckets = self._buckets()
        series = {}
        for name in ("ok", *CLASSES):
            values = [self._tl.get((b, name), 0) for b in buckets]
            if any(values):
                series[name] = values
        return {"bucket": self.bucket, "starts": [b + _SUFFIX[self.bucket] for b in buckets], "series": series}

    def _top_tools(self, tools: dict[str, _Stats]) -> list[dict[str, Any]]:
        items = sorted(tools.items(), key=lambda kv: (-kv[1].calls, kv[0]))[: self.top]
        return [{"tool": t, **st.summary()} for t, st in items]

    def _denials(self) -> list[dict[str, Any]]:
        items = sorted(self.denials.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[: self.top]
        return [{"rule_id": r, "calls": sum(c.values()), "tools": dict(c.most_common(5))} for r, c in items]

    def _headrooms(self) -> list[dict[str, Any]]:
        out = []
        for upstream, h in sorted(self.headroom.items()):
            out.append({
                "upstream": upstream,
                "limit": h.limit,
                "samples": h.samples,
                "min_remaining": h.min_remaining,
                "max_used_pct": round(100 * max(h.buckets.values(), default=0.0), 1),
                "last_used_pct": round(100 * h.last_used, 1),
                "series": [[b + _SUFFIX[self.bucket], round(100 * u, 1)] for b, u in sorted(h.buckets.items())],
            })
        return out

    def _runs(self) -> dict[str, Any]:
        rows: list[dict[str, Any]] = []
        for run_id, r in self.runs.items():
            blocked = r.blocked_s + (_secs(r.blocked_since, r.last) if r.blocked_since else 0.0)
            rows.append({
                "run_id": run_id,
                "principal": r.principal,
                "client": r.client,
                "start": r.first,
                "end": r.last,
                "active_s": round(_secs(r.first, r.last), 3),
                "calls": r.calls,
                "errors": r.errors,
                "gated_calls": r.gated,
                "blocked_s": round(blocked, 3),
            })
        rows.sort(key=lambda d: (-d["calls"], d["run_id"]))
        return {"total": len(rows), "shown": rows[: self.top]}


def parse_hist(text: str | None) -> Counter[int]:
    if not text:
        return Counter()
    return Counter({i: int(c) for i, c in enumerate(text.split(",")) if c and c != "0"})


def format_hist(hist: Counter[int]) -> str:
    return ",".join(str(hist.get(i, 0)) for i in range(len(HIST_EDGES)))


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
