"""The policy: a typed, frozen model of ``policy.toml``, loaded once; a bad file stops start-up.

Every rule and limit has a stable ``id`` that decisions and audit events name. Unknown keys are
errors (``extra="forbid"``): a misspelt field must never silently widen access.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from guards.durations import parse_duration
from guards.windows import Point, parse_point, points_contain

Effect = Literal["allow", "deny"]
Scalar = str | int | float | bool


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchSpec(_Frozen):
    """A matcher on one argument: every given test must pass."""

    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    glob: str | None = None
    regex: str | None = None
    min: float | None = None
    max: float | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"regex {v!r} does not compile: {e}") from None
        return v


# A bare list means "one of" (strings may be globs); a bare scalar means "equals".
Matcher = MatchSpec | list[Scalar] | Scalar


class Window(_Frozen):
    from_: str = Field(alias="from")
    to: str
    zone: str = "UTC"
    # The bounds and zone as parsed by the validator, kept: ``contains`` runs on every call a
    # windowed rule targets, and parsing the text each time is most of its cost.
    _bounds: tuple[Point, Point, ZoneInfo] = PrivateAttr()

    @model_validator(mode="after")
    def _valid(self) -> Window:
        try:
            tz = ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA zone {self.zone!r} (e.g. 'Europe/Berlin', 'UTC')") from None
        a, b = parse_point(self.from_), parse_point(self.to)
        if type(a) is not type(b):
            raise ValueError("'from' and 'to' must both be weekly times ('Fri 16:00') or both date-times")
        self._bounds = (a, b, tz)
        return self

    def contains(self, now: datetime) -> bool:
        """Whether ``now`` (aware) falls in [from, to) in the window's zone."""
        return points_contain(now, *self._bounds)


class Rule(_Frozen):
    id: str = Field(min_length=1)
    effect: Effect
    tools: list[str] = ["*"]
    toolsets: list[str] = ["*"]
    principals: list[str] = ["*"]
    clients: list[str] = ["*"]
    where: dict[str, Matcher] = {}
    unless: dict[str, Matcher] = {}
    when: Window | None = None
    reason: str | None = None
    # An allow rule with approvers lets the call through only once one of them approved it.
    approvers: list[str] = []

    @model_validator(mode="after")
    def _approvers_on_allow(self) -> Rule:
        if self.approvers and self.effect != "allow":
            raise ValueError(f"rule {self.id!r}: 'approvers' only makes sense on an allow rule")
        return self


class Scope(_Frozen):
    """Read-side resource scoping for one toolset. A listed kind restricts; an absent one does not."""

    toolset: str
    channels: list[str] | None = None
    folders: list[str] | None = None
    shared_drives: list[str] | None = None
    teams: list[str] | None = None
    datasources: list[str] | None = None
    indexes: list[str] | None = None
    services: list[str] | None = None
    tags: list[str] | None = None
    projects: list[str] | None = None


class Limit(_Frozen):
    id: str = Field(min_length=1)
    tools: list[str] = []
    toolsets: list[str] = []
    upstream: str | None = None
    principals: list[str] = ["*"]
    where: dict[str, Matcher] = {}
    max: int = Field(ge=1)
    per: str
    # Argument names (or "principal", "tool", "client") whose values split the budget.
    key: list[str] = []

    # ``per`` in seconds, parsed once by the validator: every budgeted call reads it.
    _per_s: float = PrivateAttr()

    @field_validator("per")
    @classmethod
    def _duration(cls, v: str) -> str:
        if parse_duration(v) <= 0:
            raise ValueError("'per' must be a positive duration")
        return v

    @property
    def per_seconds(self) -> float:
        return self._per_s

    @model_validator(mode="after")
    def _targets_something(self) -> Limit:
        if not (self.tools or self.toolsets or self.upstream):
            raise ValueError(f"limit {self.id!r} must name 'tools', 'toolsets' or an 'upstream'")
        self._per_s = parse_duration(self.per)
        return self


class Redact(_Frozen):
    secrets: bool = True
    emails: bool = False
    phones: bool = False
    patterns: list[str] = []

    @field_validator("patterns")
    @classmethod
    def _compile(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"pattern {p!r} does not compile: {e}") from None
        return v


class Defaults(_Frozen):
    read: Effect = "allow"
    write: Effect = "deny"


class Toolsets(_Frozen):
    enabled: list[str] = ["datadog", "grafana", "statsig", "slack", "drive", "linear", "deploy"]


class Guardrails(_Frozen):
    """Query cost guards. ``mode`` rolls out off -> shadow (audit only) -> enforce."""

    mode: Literal["off", "shadow", "enforce"] = "enforce"
    loki_max_range: str = "24h"
    loki_max_bytes: int = Field(default=2_000_000_000, ge=1)
    logs_max_range: str = "7d"

    @field_validator("loki_max_range", "logs_max_range")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v


class Policy(_Frozen):
    version: Literal[1] = 1
    defaults: Defaults = Defaults()
    toolsets: Toolsets = Toolsets()
    rules: list[Rule] = []
    scopes: list[Scope] = []
    limits: list[Limit] = []
    redact: Redact = Redact()
    guardrails: Guardrails = Guardrails()
    # Results of pure functions of this (immutable) policy, e.g. which rules name a given tool,
    # principal and client: computed on a call's first occurrence instead of on every call.
    _memo: dict[Any, Any] = PrivateAttr(default_factory=dict)

    def memo(self) -> dict[Any, Any]:
        # Straight from pydantic's private store: ``self._memo`` goes through its __getattr__ (~1 µs).
        memo: dict[Any, Any] = self.__pydantic_private__["_memo"]  # type: ignore[index]
        return memo

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Policy:
        copy = super().model_copy(update=update, deep=deep)
        copy._memo = {}  # pydantic would share it, and an update changes what it remembers
        return copy

    @model_validator(mode="after")
    def _unique_ids(self) -> Policy:
        seen: set[str] = set()
        for rid in [r.id for r in self.rules] + [limit.id for limit in self.limits]:
            if rid in seen:
                raise ValueError(f"duplicate rule/limit id {rid!r}: ids must be unique")
            seen.add(rid)
        toolsets = [s.toolset for s in self.scopes]
        for name in set(toolsets):
            if toolsets.count(name) > 1:
                raise ValueError(f"more than one [[scopes]] entry for toolset {name!r}; merge them")
        return self

    def scope_for(self, toolset: str) -> Scope | None:
        memo = self.memo()
        key = ("scope", toolset)
        if key not in memo:
            base = toolset.removesuffix("_write")
            memo[key] = next((s for s in self.scopes if s.toolset in (toolset, base)), None)
        scope: Scope | None = memo[key]
        return scope

    def toolset_enabled(self, toolset: str) -> bool:
        return toolset in self.toolsets.enabled


class PolicyError(Exception):
    """A policy that cannot be used. The message names the file, the field and what is wrong."""


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = [f"invalid policy {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see config/policy.example.toml)"
        lines.append(f"  {loc or '(top level)'}: {msg}")
    return "\n".join(lines)


def parse_policy(data: dict[str, Any], source: str = "<policy>") -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        raise PolicyError(_format_errors(source, e)) from None


def load_policy(path: str | Path) -> Policy:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"policy file not found: {p}") from None
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"invalid policy {p}: not valid TOML: {e}") from None
    return parse_policy(data, str(p))


def default_policy() -> Policy:
    """Used when no policy file is configured: reads allowed, writes denied, no write toolsets."""
    return Policy()
