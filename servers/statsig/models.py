"""Typed views of Statsig Console API responses: only what tools render. Parsing is pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

from servers._core.timeparse import parse_lenient_dt

Kind = Literal["gate", "experiment", "dynamic_config", "segment"]
KINDS: tuple[Kind, ...] = ("gate", "experiment", "dynamic_config", "segment")
# Console API collection per kind: /console/v1/<collection>[/{id}]
COLLECTION: dict[str, str] = {
    "gate": "gates", "experiment": "experiments", "dynamic_config": "dynamic_configs", "segment": "segments",
}


def _s(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Rule:
    name: str
    pass_pct: float | None
    environments: list[str]  # empty: all environments
    conditions: list[str]


@dataclass(frozen=True)
class Group:
    name: str
    id: str
    size: float | None
    disabled: bool = False


@dataclass(frozen=True)
class Entity:
    kind: str
    id: str
    name: str
    description: str
    status: str
    enabled: bool | None
    tags: list[str]
    owner: str
    creator: str
    created: datetime | None
    modified_by: str
    modified_at: datetime | None
    type: str = ""
    rules: list[Rule] = field(default_factory=list)
    # experiments
    allocation: float | None = None
    groups: list[Group] = field(default_factory=list)
    control_group_id: str = ""
    hypothesis: str = ""
    primary_metrics: list[str] = field(default_factory=list)
    # segments
    count: float | None = None


def condition_text(c: dict[str, Any]) -> str:
    """One condition as ``type [field] operator values``, e.g. ``country any US, CA``; ``public`` = everyone."""
    ctype = _s(c.get("type"))
    if ctype == "public":
        return "everyone"
    parts = [ctype]
    if c.get("field"):
        parts.append(_s(c["field"]))
    if c.get("customID"):
        parts.append(f"({c['customID']})")
    if c.get("operator"):
        parts.append(_s(c["operator"]))
    target = c.get("targetValue")
    if isinstance(target, list):
        shown = [str(v) for v in target[:5]]
        more = f" +{len(target) - 5}" if len(target) > 5 else ""
        parts.append(", ".join(shown) + more)
    elif target is not None:
        parts.append(str(target))
    return " ".join(p for p in parts if p)


def parse_rule(r: dict[str, Any]) -> Rule:
    pct = r.get("passPercentage")
    return Rule(
        name=_s(r.get("name")),
        pass_pct=float(pct) if isinstance(pct, int | float) else None,
        environments=[str(e) for e in r.get("environments") or []],
        conditions=[condition_text(c) for c in r.get("conditions") or [] if isinstance(c, dict)],
    )


def _person(name: Any, email: Any = None) -> str:
    return _s(name) or _s(email)


def parse_entity(kind: str, d: dict[str, Any]) -> Entity:
    owner = d.get("owner") or {}
    status = _s(d.get("status"))
    if not status and kind == "segment":
        status = "enabled" if d.get("isEnabled") else "disabled"
    groups = [
        Group(_s(g.get("name")), _s(g.get("id")), float(g["size"]) if isinstance(g.get("size"), int | float) else None,
              bool(g.get("disabled")))
        for g in d.get("groups") or [] if isinstance(g, dict)
    ]
    control = _s(d.get("controlGroupID")) or next((g.id for g in groups if g.name.lower() == "control"), "")
    alloc = d.get("allocation")
    count = d.get("count")
    return Entity(
        kind=kind,
        id=_s(d.get("id")),
        name=_s(d.get("name")) or _s(d.get("id")),
        description=_s(d.get("description")),
        status=status,
        enabled=d.get("isEnabled") if isinstance(d.get("isEnabled"), bool) else None,
        tags=[str(t) for t in d.get("tags") or []],
        owner=_person(owner.get("ownerName"), owner.get("ownerEmail")) if isinstance(owner, dict) else "",
        creator=_person(d.get("creatorName"), d.get("creatorEmail")),
        created=parse_lenient_dt(d.get("createdTime")),
        modified_by=_person(d.get("lastModifierName"), d.get("lastModifierEmail")),
        modified_at=parse_lenient_dt(d.get("lastModifiedTime")),
        type=_s(d.get("type")),
        rules=[parse_rule(r) for r in d.get("rules") or [] if isinstance(r, dict)],
        allocation=float(alloc) if isinstance(alloc, int | float) else None,
        groups=groups,
        control_group_id=control,
        hypothesis=_s(d.get("hypothesis")),
        primary_metrics=[_s(m.get("name")) for m in d.get("primaryMetrics") or [] if isinstance(m, dict)],
        count=float(count) if isinstance(count, int | float) else None,
    )


@dataclass(frozen=True)
class Page:
    items: list[Entity]
    page: int
    has_next: bool
    total: int | None


def parse_page(kind: str, body: dict[str, Any]) -> Page:
    pag = body.get("pagination") or {}
    total = pag.get("totalItems")
    return Page(
        items=[parse_entity(kind, d) for d in body.get("data") or [] if isinstance(d, dict)],
        page=int(pag.get("pageNumber") or 1),
        has_next=bool(pag.get("nextPage")),
        total=int(total) if isinstance(total, int | float) else None,
    )


@dataclass(frozen=True)
class MetricResult:
    metric: str
    pct_change: float | None
    pct_ci: float | None
    p_value: float | None


def _num(d: dict[str, Any], *keys: str) -> float | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


def parse_pulse(body: dict[str, Any]) -> list[MetricResult]:
    """Pulse results; the schema says camelCase, the published example snake_case: read both."""
    data = body.get("data") or {}
    out = []
    for section in ("primaryMetrics", "secondaryMetrics"):
        for m in data.get(section) or []:
            if not isinstance(m, dict):
                continue
            out.append(MetricResult(
                metric=_s(m.get("metricName") or m.get("metricID")),
                pct_change=_num(m, "percentChange", "percent_change"),
                pct_ci=_num(m, "percentConfidenceIntervalDelta", "percent_confidence_interval_delta"),
                p_value=_num(m, "pValue", "p_value"),
            ))
    return out


# --- audit log --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    at: datetime
    actor: str
    entity: str  # "<kind>:<name>", e.g. "gate:checkout_async_payments"
    action: str
    summary: str
    tags: list[str]


_ACTION_KIND = (("dynamic_config_", "dynamic_config"), ("gate_", "gate"), ("experiment_", "experiment"),
                ("segment_", "segment"), ("config_", "config"), ("layer_", "layer"), ("metric_", "metric"))
_TZ = re.compile(r"GMT([+-])(\d{2}):?(\d{2})")


def entity_kind(action_type: str) -> str:
    """Statsig's audit log has no entity type; its action types carry one. ``config_*`` covers gates and
    dynamic configs alike (Statsig's umbrella word), so it stays ``config``."""
    for prefix, kind in _ACTION_KIND:
        if action_type.startswith(prefix):
            return kind
    return "other"


def audit_time(date: str, time: str) -> datetime | None:
    """``date`` 'Mon Sep 26 2022' + ``time`` '23:46:14 GMT+0000 (Coordinated Universal Time)'."""
    try:
        day = datetime.strptime(date.strip(), "%a %b %d %Y")
        clock = datetime.strptime(time.strip()[:8], "%H:%M:%S")
    except ValueError:
        return None
    dt = day.replace(hour=clock.hour, minute=clock.minute, second=clock.second)
    m = _TZ.search(time)
    tz: timezone = UTC
    if m:
        offset = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        tz = timezone(offset if m.group(1) == "+" else -offset)
    return dt.replace(tzinfo=tz).astimezone(UTC)


def _pct(v: Any) -> str:
    return f"{v:g}%" if isinstance(v, int | float) else "?"


def summarize_changes(changes: Any) -> str:
    """What a change did, from its ``changes`` {field: {old, new}}: rule pass % and environments named."""
    if not isinstance(changes, dict) or not changes:
        return ""
    parts: list[str] = []
    rules = changes.get("rules")
    if isinstance(rules, dict):
        old = {r.get("id") or r.get("groupName"): r for r in rules.get("old") or [] if isinstance(r, dict)}
        new = {r.get("id") or r.get("groupName"): r for r in rules.get("new") or [] if isinstance(r, dict)}
        for key, n in new.items():
            name = _s(n.get("groupName") or n.get("name") or key)
            o = old.get(key)
            if o is None:
                parts.append(f"rule '{name}' added at {_pct(n.get('percentagePass'))}")
                continue
            if o.get("percentagePass") != n.get("percentagePass"):
                parts.append(f"rule '{name}' pass {_pct(o.get('percentagePass'))} -> {_pct(n.get('percentagePass'))}")
            oe, ne = o.get("enabledEnvironments"), n.get("enabledEnvironments")
            if oe != ne and isinstance(ne, list):
                parts.append(f"rule '{name}' environments -> {', '.join(map(str, ne)) or 'none'}")
        for key, o in old.items():
            if key not in new:
                parts.append(f"rule '{_s(o.get('groupName') or key)}' removed")
    others = [k for k in changes if k != "rules"]
    if others:
        parts.append("changed " + ", ".join(sorted(others)[:5]))
    return "; ".join(parts)


def parse_audit_entry(d: dict[str, Any]) -> Change | None:
    at = audit_time(_s(d.get("date")), _s(d.get("time")))
    if at is None:
        return None
    action = _s(d.get("actionType"))
    log = _s(d.get("changeLog"))
    detail = summarize_changes(d.get("changes"))
    return Change(
        at=at,
        actor=_s(d.get("updatedBy")) or _s(d.get("modifierEmail")) or _s(d.get("updatedByUserID")),
        entity=f"{entity_kind(action)}:{_s(d.get('name'))}",
        action=action,
        summary=f"{log}: {detail}" if log and detail else log or detail,
        tags=[str(t) for t in d.get("tags") or []],
    )
