"""``decide(call, policy, now) -> Decision``: the pure heart of the policy. No I/O.

Order: toolset enabled? -> deny rules (first match wins) -> allow rules -> defaults by access.
Deny beats allow. A decision always names the rule that made it and, when it denies, what
would make the call allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import Any, NamedTuple

from guards.policy import Matcher, MatchSpec, Policy, Rule


class Call(NamedTuple):
    """One call as policy sees it. A tuple: built on every call, it is ~4x cheaper than a frozen dataclass."""

    tool: str
    toolset: str
    access: str  # "read" | "write"
    args: Mapping[str, Any] = MappingProxyType({})
    principal: str = "anonymous"
    client: str = "unknown"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule_id: str
    reason: str
    hint: str | None = None
    approvers: tuple[str, ...] = ()

    @property
    def effect(self) -> str:
        return "allow" if self.allowed else "deny"


def _globs(patterns: list[str], value: str) -> bool:
    return any(fnmatchcase(value, p) for p in patterns)


def match_value(matcher: Matcher, value: Any) -> bool:
    """Whether one argument value satisfies one matcher. A missing value never matches."""
    if value is None:
        return False
    if isinstance(value, list | tuple | set):  # a list argument matches if every element does
        return bool(value) and all(match_value(matcher, v) for v in value)
    if isinstance(matcher, MatchSpec):
        return _match_spec(matcher, value)
    if isinstance(matcher, list):
        return any(_scalar_eq(m, value) for m in matcher)
    return _scalar_eq(matcher, value)


def _scalar_eq(expected: Any, value: Any) -> bool:
    if isinstance(expected, str) and isinstance(value, str):
        return fnmatchcase(value, expected) if any(c in expected for c in "*?[") else value == expected
    if isinstance(expected, bool) or isinstance(value, bool):
        return expected is value
    return bool(expected == value)


def _match_spec(m: MatchSpec, value: Any) -> bool:
    if m.equals is not None and not _scalar_eq(m.equals, value):
        return False
    if m.in_ is not None and not any(_scalar_eq(x, value) for x in m.in_):
        return False
    if m.glob is not None and not (isinstance(value, str) and fnmatchcase(value, m.glob)):
        return False
    if m.regex is not None and not (isinstance(value, str) and re.fullmatch(m.regex, value)):
        return False
    if m.min is not None or m.max is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if m.min is not None and value < m.min:
            return False
        if m.max is not None and value > m.max:
            return False
    return True


def where_matches(where: Mapping[str, Matcher], args: Mapping[str, Any]) -> bool:
    return all(match_value(m, args.get(k)) for k, m in where.items())


def where_mismatches(where: Mapping[str, Matcher], args: Mapping[str, Any]) -> list[str]:
    return [k for k, m in where.items() if not match_value(m, args.get(k))]


def _describe(matcher: Matcher) -> str:
    if isinstance(matcher, list):
        return "one of " + ", ".join(str(v) for v in matcher)
    if isinstance(matcher, MatchSpec):
        return " and ".join(_SPEC_WORDS[k](v) for k, v in matcher.model_dump(exclude_none=True).items())
    return f"= {matcher}"


_SPEC_WORDS = {
    "equals": lambda v: f"= {v}",
    "in_": lambda v: "one of " + ", ".join(str(x) for x in v),
    "glob": lambda v: f"like {v}",
    "regex": lambda v: f"matching {v}",
    "min": lambda v: f">= {_number(v)}",
    "max": lambda v: f"<= {_number(v)}",
}


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)  # the policy stores 100 as 100.0


def rule_targets(rule: Rule, call: Call) -> bool:
    """Whether the rule is about this tool, principal and client (ignoring where/when/unless)."""
    return (
        _globs(rule.tools, call.tool)
        and _globs(rule.toolsets, call.toolset)
        and _globs(rule.principals, call.principal)
        and _globs(rule.clients, call.client)
    )


def _conditions_hold(rule: Rule, call: Call, now: datetime) -> bool:
    """A targeting rule's where/when/unless: the parts that depend on arguments and time."""
    if rule.where and not where_matches(rule.where, call.args):
        return False
    if rule.when is not None and not rule.when.contains(now):
        return False
    return not (rule.unless and where_matches(rule.unless, call.args))


# Distinct name combinations one policy remembers (decisions here, targeted limits in
# ``guards.limits``); then it starts over.
MEMO_MAX = 4096


def decide(call: Call, policy: Policy, now: datetime) -> Decision:
    # Which rules target a call depends on its names only, and glob-matching every rule on every
    # call grows with the policy (~1 µs a rule): that part is worked out once per combination.
    memo = policy.memo()
    key = ("decide", call.tool, call.toolset, call.access, call.principal, call.client)
    known: Decision | tuple[Rule, ...] | None = memo.get(key)
    if known is None:
        if len(memo) >= MEMO_MAX:
            memo.clear()
        known = memo[key] = _by_names(call, policy, now)
    if isinstance(known, Decision):
        return known
    return _decide(call, policy, now, known)


def _by_names(call: Call, policy: Policy, now: datetime) -> Decision | tuple[Rule, ...]:
    """The rules that target this call, or the decision itself when none of them looks at
    arguments or time (then no argument and no moment can change it)."""
    targeting = tuple(r for r in policy.rules if rule_targets(r, call))
    if any(r.where or r.unless or r.when is not None for r in targeting):
        return targeting
    return _decide(call, policy, now, targeting)


def _decide(call: Call, policy: Policy, now: datetime, targeting: tuple[Rule, ...]) -> Decision:
    if not policy.toolset_enabled(call.toolset):
        return Decision(
            False,
            "toolsets.enabled",
            f"toolset {call.toolset!r} is not enabled by the policy",
            hint=f"add {call.toolset!r} to [toolsets] enabled in the policy",
        )
    applicable = [r for r in targeting if _conditions_hold(r, call, now)]
    for rule in applicable:
        if rule.effect == "deny":
            return Decision(False, rule.id, rule.reason or f"denied by rule {rule.id!r}", hint=_deny_hint(rule))
    for rule in applicable:
        if rule.effect == "allow":
            reason = rule.reason or f"allowed by rule {rule.id!r}"
            return Decision(True, rule.id, reason, approvers=tuple(rule.approvers))
    default = policy.defaults.write if call.access == "write" else policy.defaults.read
    if default == "allow":
        return _ALLOWED_BY_DEFAULT[call.access == "write"]
    return Decision(False, f"defaults.{call.access}", f"no rule allows this {call.access} call",
                    hint=_allow_hint(call, policy, now))


# Decisions are immutable values: the most common one is made once, not per call.
_ALLOWED_BY_DEFAULT = {
    False: Decision(True, "defaults.read", "read calls are allowed by default"),
    True: Decision(True, "defaults.write", "write calls are allowed by default"),
}


def _deny_hint(rule: Rule) -> str:
    parts = []
    if rule.unless:
        parts.append("allowed when " + "; ".join(f"{k} is {_describe(m)}" for k, m in rule.unless.items()))
    if rule.when is not None:
        window = f"{rule.when.from_} to {rule.when.to} ({rule.when.zone})"
        parts.append(f"or outside {window}" if parts else f"allowed outside {window}")
    if parts:
        return " ".join(parts)
    if rule.where:  # no exception and no window: only other arguments avoid it
        cond = "; ".join(f"{k} {_describe(m)}" for k, m in rule.where.items())
        change = "that argument" if len(rule.where) == 1 else "those arguments"
        return f"rule {rule.id!r} denies calls with {cond}: change {change}, or ask a policy owner"
    return f"rule {rule.id!r} denies it; ask a policy owner"


def _allow_hint(call: Call, policy: Policy, now: datetime) -> str:
    """Name the nearest allow rule and the arguments that kept it from matching."""
    for rule in policy.rules:
        if rule.effect != "allow" or not rule_targets(rule, call):
            continue
        missing = where_mismatches(rule.where, call.args)
        if missing:
            needs = "; ".join(f"{k} {_describe(rule.where[k])}" for k in missing)
            return f"rule {rule.id!r} would allow it with {needs}"
        if rule.when is not None and not rule.when.contains(now):
            return f"rule {rule.id!r} allows it only from {rule.when.from_} to {rule.when.to} ({rule.when.zone})"
    return f"add an allow rule for tool {call.tool!r} to the policy"
