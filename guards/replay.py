"""Policy replay: every past call re-decided under a new policy, to review a change against real traffic.

Each audited call is decided again with :func:`guards.decide.decide` on its stored (redacted)
arguments, at the time it was made (``when`` windows matter), for the same principal and
client. Its new budgets are simulated in time order on the new policy's limits. The result
lists every call whose decision would change. Pure: events in, result out.

Limits of the method, reported with the result: calls whose stored arguments were cut to fit
the log cannot be replayed; a rule matching an argument that was redacted in the log may
decide differently than it would on the real value (such changes are marked ``approximate``);
calls decided on a stored plan's arguments (``deploy_apply(plan_id)``) are not replayed, as the
log holds only the plan id. Checks a tool makes itself (read scopes, deploy preconditions) are
not re-run: replay re-decides the policy.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from guards.audit import AuditEvent
from guards.audit_store import parse_ts
from guards.decide import Call, decide
from guards.limits import draws_for, sliding_take
from guards.policy import Policy


@dataclass(frozen=True)
class Change:
    event_id: str
    ts: str
    tool: str
    principal: str
    client: str
    before: str  # allow | deny | limited
    before_rule: str
    after: str
    after_rule: str
    reason: str
    approximate: bool = False

    @property
    def kind(self) -> str:
        return f"{self.before} -> {self.after}"


@dataclass
class ReplayResult:
    replayed: int = 0
    unchanged: int = 0
    rule_only: int = 0  # same effect, decided by a different rule
    logged_mismatch: int = 0  # logged as allowed, yet the old policy given would deny: not the policy in force
    skipped: Counter[str] = field(default_factory=Counter)
    changes: list[Change] = field(default_factory=list)

    def groups(self) -> list[dict[str, Any]]:
        """Changes grouped by tool, direction and rules, largest first."""
        counts: dict[tuple[str, str, str, str], list[Change]] = {}
        for c in self.changes:
            counts.setdefault((c.tool, c.kind, c.before_rule, c.after_rule), []).append(c)
        out: list[dict[str, Any]] = [
            {"tool": k[0], "change": k[1], "before_rule": k[2], "after_rule": k[3], "calls": len(v),
             "principals": sorted({c.principal for c in v})[:5], "reason": v[-1].reason,
             "approximate": any(c.approximate for c in v), "examples": [c.event_id for c in v[:3]]}
            for k, v in counts.items()
        ]
        out.sort(key=lambda d: (-d["calls"], d["tool"]))
        return out

    def to_dict(self, show: int = 50) -> dict[str, Any]:
        return {
            "replayed": self.replayed,
            "unchanged": self.unchanged,
            "changed": len(self.changes),
            "same_effect_other_rule": self.rule_only,
            "logged_but_old_policy_denies": self.logged_mismatch,
            "by_direction": dict(Counter(c.kind for c in self.changes)),
            "skipped": dict(self.skipped),
            "groups": self.groups(),
            "changes": [asdict(c) | {"kind": c.kind} for c in self.changes[:show]],
        }


class _Budgets:
    """Sliding windows on the events' own clock: what the new limits would have allowed."""

    def __init__(self) -> None:
        self.hits: dict[str, deque[float]] = {}

    def take(self, bucket: str, max_calls: int, per_s: float, now: float) -> bool:
        return sliding_take(self.hits.setdefault(bucket, deque()), max_calls, per_s, now) is None


def _logged(e: AuditEvent) -> str:
    if e.decision == "deny":
        return "deny"
    if e.outcome == "rate_limited" and e.rule_id and e.upstream_status != 429:
        return "limited"  # allowed by the policy, refused by a budget
    return "allow"


def _verdict(policy: Policy, budgets: _Budgets, e: AuditEvent, args: dict[str, Any],
             now: datetime) -> tuple[str, str, str]:
    """(allow | deny | limited, rule id, reason) for one call under ``policy`` and its simulated budgets."""
    d = decide(Call(e.tool, e.toolset, e.access, args, e.principal, e.client), policy, now)
    if not d.allowed:
        return "deny", d.rule_id, d.reason
    for draw in draws_for(policy, tool=e.tool, toolset=e.toolset, upstream=e.upstream or None,
                          principal=e.principal, client=e.client, args=args):
        if not budgets.take(draw.bucket, draw.limit.max, draw.limit.per_seconds, now.timestamp()):
            return "limited", draw.limit.id, f"limit {draw.limit.id!r} allows {draw.limit.max} per {draw.limit.per}"
    return "allow", d.rule_id, d.reason


def replay(events: Iterable[AuditEvent], policy: Policy, old: Policy | None = None) -> ReplayResult:
    """Re-decide ``events`` (in time order) under ``policy``.

    With ``old`` (the policy that was in force), both are decided on the same calls and budgets
    are simulated for both: the changes are the policy's alone. Without it, the new decisions
    are compared with the logged ones; calls refused inside a tool (read scopes) are then left
    out, since replay re-decides the policy, not the tool's own checks.
    """
    result = ReplayResult()
    budgets, old_budgets = _Budgets(), _Budgets()
    for e in events:
        if e.principal_kind == "system":
            continue
        if e.outcome == "invalid_args" or e.rule_id == "unknown-tool" or e.decision not in ("allow", "deny"):
            result.skipped["never reached a decision (invalid or unknown tool)"] += 1
            continue
        if old is None and e.outcome == "denied" and e.rule_id.startswith("scopes."):
            result.skipped["refused inside the tool by a read scope (give the old policy to compare)"] += 1
            continue
        if e.args.endswith("…(truncated)"):
            result.skipped["arguments were cut to fit the log"] += 1
            continue
        try:
            args = json.loads(e.args or "{}")
        except ValueError:
            result.skipped["arguments are not readable JSON"] += 1
            continue
        if not isinstance(args, dict):
            result.skipped["arguments are not an object"] += 1
            continue
        if "plan_id" in args:  # decided on the stored plan's arguments (meta.policy_args), not in the log
            result.skipped["decided on a stored plan's arguments, which the log does not hold"] += 1
            continue
        now = parse_ts(e.ts)
        after, after_rule, reason = _verdict(policy, budgets, e, args, now)
        if old is not None:
            before, before_rule, _ = _verdict(old, old_budgets, e, args, now)
            if e.decision == "allow" and before == "deny":
                result.logged_mismatch += 1
        else:
            before, before_rule = _logged(e), e.rule_id
        result.replayed += 1
        if before == after:
            if before != "limited" and before_rule != after_rule:
                result.rule_only += 1
            result.unchanged += 1
            continue
        result.changes.append(Change(
            event_id=e.id, ts=e.ts, tool=e.tool, principal=e.principal, client=e.client, before=before,
            before_rule=before_rule, after=after, after_rule=after_rule, reason=reason,
            approximate="[REDACTED" in e.args,
        ))
    return result
