"""Statsig read tools: list and read gates / experiments / dynamic configs / segments, and who changed
what (the audit log). Compact text, tag-scoped, budgeted."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from servers._core.errors import InvalidArguments, NotFound, PolicyDenied, ToolFailure
from servers._core.shaping import (
    ToolOutput,
    decode_cursor,
    encode_cursor,
    fit_lines,
    fmt_num,
    one_line,
    render_table,
    untrusted_block,
)
from servers._core.spec import Params, ToolContext, Toolset, ToolSpec, WindowParams
from servers._core.timeparse import iso, resolve_window
from servers.statsig.client import PAGE_SIZE, ROUTES, StatsigClient, make_client, tags_in_scope
from servers.statsig.models import Change, Entity

UPSTREAM = "statsig"
MAX_SCAN_PAGES = 5  # upstream pages one list call reads while filtering by search / scope
KindArg = Literal["gate", "experiment", "dynamic_config", "segment"]


# --- scope ----------------------------------------------------------------------------------------
def scope_tags(ctx: ToolContext) -> list[str] | None:
    tags = ctx.scope.tags if ctx.scope else None
    if tags is not None:
        ctx.record.scoped()
    return tags


def _deny_tags(what: str, allowed: list[str]) -> PolicyDenied:
    return PolicyDenied(f"{what} is outside the Statsig tag scope", rule_id="scopes.statsig.tags",
                        hint=f"the policy allows items tagged: {', '.join(allowed)}")


# --- statsig_list ---------------------------------------------------------------------------------
class ListParams(Params):
    kind: KindArg = Field(description="What to list.")
    search: str | None = Field(None, max_length=100, description="Substring of id, name or description.")
    tags: list[str] = Field(default_factory=list, max_length=10, description="Only items with any of these tags.")
    limit: int = Field(25, ge=1, le=100, description="Items per page.")
    cursor: str | None = Field(None, max_length=500, description="next_cursor from a previous call.")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{fmt_num(v)}%"


def _detail(e: Entity) -> str:
    if e.kind == "experiment":
        groups = ", ".join(f"{g.name} {_pct(g.size)}" for g in e.groups)
        return one_line(f"alloc {_pct(e.allocation)}; {groups}", 90)
    if e.kind == "segment":
        size = f"{fmt_num(e.count)} ids" if e.count is not None else ""
        return one_line(" ".join(x for x in (e.type, size) if x), 90)
    if not e.rules:
        return "no rules"
    return one_line("; ".join(f"{r.name} {_pct(r.pass_pct)}" for r in e.rules), 90)


def _modified(e: Entity) -> str:
    if e.modified_at is None:
        return e.modified_by
    return f"{iso(e.modified_at)} {e.modified_by}".strip()


def _matches(e: Entity, search: str | None) -> bool:
    if not search:
        return True
    s = search.lower()
    return s in e.id.lower() or s in e.name.lower() or s in e.description.lower()


async def list_entities(p: ListParams, ctx: ToolContext) -> ToolOutput:
    allowed = scope_tags(ctx)
    if allowed is not None:
        outside = [t for t in p.tags if not tags_in_scope([t], allowed)]
        if outside:
            raise _deny_tags(f"tag {outside[0]!r}", allowed)
    state = decode_cursor(p.cursor, tool="statsig_list") if p.cursor else {}
    if state and state.get("k") != p.kind:
        raise InvalidArguments("cursor: it was issued for another kind", hint="omit cursor to start over")
    page_no, skip = int(state.get("p", 1)), int(state.get("s", 0))
    client: StatsigClient = ctx.client
    shown: list[Entity] = []
    next_state: dict[str, object] | None = None
    withheld = 0
    total: int | None = None
    for scanned in range(MAX_SCAN_PAGES):
        page = await client.list_page(p.kind, page=page_no, limit=PAGE_SIZE, tags=p.tags)
        if scanned == 0 and not p.search and allowed is None and not (p.tags and p.kind == "segment"):
            total = page.total
        for i, e in enumerate(page.items[skip:], start=skip):
            if not tags_in_scope(e.tags, allowed):
                withheld += 1
                continue
            if (p.tags and not set(p.tags) & set(e.tags)) or not _matches(e, p.search):
                continue
            if len(shown) == p.limit:
                next_state = {"k": p.kind, "p": page_no, "s": i}
                break
            shown.append(e)
        if next_state is not None or not page.has_next:
            break
        page_no, skip = page_no + 1, 0
        if scanned == MAX_SCAN_PAGES - 1:
            next_state = {"k": p.kind, "p": page_no, "s": 0}
    if withheld:
        ctx.record.scoped(withheld)
    what = f"statsig {p.kind}s" + (f" · search {p.search!r}" if p.search else "") + (
        f" · tags {', '.join(p.tags)}" if p.tags else "")
    if not shown:
        more = " in the pages read; continue with the cursor" if next_state else ""
        return ToolOutput(f"{what}\nnone match{more}", empty=next_state is None,
                          next_cursor=encode_cursor(next_state) if next_state else None, truncated=bool(next_state))
    rows = [[e.id, e.status or ("enabled" if e.enabled else "disabled"), _detail(e), ", ".join(e.tags), _modified(e)]
            for e in shown]
    table = render_table(["id", "status", "rules/groups", "tags", "modified"], rows)
    text = "\n".join([f"{what} · {len(shown)} shown", *untrusted_block(f"statsig {p.kind}s", table)])
    cursor = encode_cursor(next_state) if next_state else None
    return ToolOutput(text, truncated=bool(cursor), total=total, next_cursor=cursor)


# --- statsig_get ----------------------------------------------------------------------------------
class GetParams(Params):
    kind: KindArg = Field(description="What to read.")
    id: str = Field(min_length=1, max_length=200, description="Id, e.g. 'checkout_async_payments'.")


def _header(e: Entity) -> list[str]:
    state = [e.status, "enabled" if e.enabled else "disabled" if e.enabled is not None else "", e.type]
    lines = [f"statsig {e.kind} {e.id} · " + " · ".join(x for x in state if x)]
    people = []
    if e.owner:
        people.append(f"owner {e.owner}")
    if e.created:
        people.append(f"created {iso(e.created)}" + (f" by {e.creator}" if e.creator else ""))
    if e.modified_at:
        people.append(f"last modified {iso(e.modified_at)}" + (f" by {e.modified_by}" if e.modified_by else ""))
    if people:
        lines.append(" · ".join(people))
    lines.append("tags: " + (", ".join(e.tags) or "none"))
    return lines


def _rules(e: Entity) -> list[str]:
    if not e.rules:
        return ["rules: none (everyone gets the default)"]
    rows = [[i, r.name, _pct(r.pass_pct), ", ".join(r.environments) or "all", "; ".join(r.conditions) or "everyone"]
            for i, r in enumerate(e.rules, 1)]
    return ["rules, evaluated in order:", *render_table(["#", "rule", "pass", "envs", "conditions"], rows)]


async def _results(client: StatsigClient, e: Entity) -> list[str]:
    if e.status in ("setup", "") or not e.control_group_id:
        return [f"latest results: none ({'not started' if e.status == 'setup' else 'no control group id'})"]
    rows = []
    for g in [g for g in e.groups if g.id and g.id != e.control_group_id][:3]:
        try:
            metrics = await client.pulse(e.id, e.control_group_id, g.id)
        except ToolFailure as err:  # results are a bonus: the experiment itself still renders
            return [f"latest results: unavailable ({err.message})"]
        for m in metrics[:8]:
            ci = f"±{fmt_num(m.pct_ci)}%" if m.pct_ci is not None else "-"
            change = f"{m.pct_change:+.2f}%" if m.pct_change is not None else "-"
            rows.append([g.name, m.metric, change, ci, fmt_num(m.p_value)])
    if not rows:
        return ["latest results: no metrics computed yet"]
    return ["latest results vs control:", *render_table(["group", "metric", "change", "ci", "p"], rows)]


async def get_entity(p: GetParams, ctx: ToolContext) -> ToolOutput:
    client: StatsigClient = ctx.client
    try:
        e = await client.get(p.kind, p.id)
    except NotFound:
        raise NotFound(f"statsig {p.kind} {p.id!r} not found", upstream_status=404,
                       hint=f"ids are case-sensitive; statsig_list kind={p.kind} search=... finds them") from None
    allowed = scope_tags(ctx)
    if not tags_in_scope(e.tags, allowed):
        raise _deny_tags(f"{p.kind} {p.id!r}", allowed or [])
    lines = _header(e)
    body: list[str] = []
    if e.kind == "experiment":
        groups = ", ".join(f"{g.name} {_pct(g.size)}" + (" (control)" if g.id == e.control_group_id else "")
                           + (" disabled" if g.disabled else "") for g in e.groups)
        lines.append(f"allocation {_pct(e.allocation)} · groups: {groups or 'none'}")
        if e.primary_metrics:
            lines.append("primary metrics: " + ", ".join(e.primary_metrics))
        lines += await _results(client, e)
        if e.hypothesis:
            body.append(f"hypothesis: {e.hypothesis}")
    else:
        body += _rules(e)
    if e.description:
        body.append(f"description: {e.description}")
    if body:
        lines += untrusted_block(f"statsig {e.kind} {e.id}", body)
    kept, cut = fit_lines(lines, _BUDGETS["statsig_get"])
    return ToolOutput("\n".join(kept), truncated=cut)


# --- statsig_get_changes ------------------------------------------------------------------------------
class ChangesParams(WindowParams):
    from_: str | int | None = Field(None, alias="from", description="Start, ISO 8601 or relative ('now-6h', "
                                    "'2d'). Default: 24h before 'to'.")
    entity: str | None = Field(None, max_length=200, description="Only this id, or 'kind:id'.")
    limit: int = Field(50, ge=1, le=200, description="Changes to show, newest first.")


def _entity_matches(c: Change, entity: str | None) -> bool:
    if not entity:
        return True
    kind, _, name = entity.rpartition(":")
    c_kind, _, c_name = c.entity.partition(":")
    if c_name != name:
        return False
    # "config" is Statsig's word for gates and dynamic configs alike.
    return not kind or kind == c_kind or (c_kind == "config" and kind in ("gate", "dynamic_config"))


async def get_changes(p: ChangesParams, ctx: ToolContext) -> ToolOutput:
    start, end = resolve_window(p.from_, p.to, ctx.now, default="24h", max_range="90d")
    client: StatsigClient = ctx.client
    changes, capped = await client.audit_log(start, end)
    allowed = scope_tags(ctx)
    visible = [c for c in changes if tags_in_scope(c.tags, allowed)]
    if len(visible) != len(changes):
        ctx.record.scoped(len(changes) - len(visible))
    visible = [c for c in visible if _entity_matches(c, p.entity)]
    header = f"statsig changes · {iso(start)} → {iso(end)}" + (f" · {p.entity}" if p.entity else "")
    if not visible:
        note = "; the audit log was cut at its page cap, narrow the window" if capped else ""
        return ToolOutput(f"{header}\nno changes in this window{note}", empty=not capped, truncated=capped)
    shown = visible[: p.limit]
    rows = [[iso(c.at), c.actor, c.entity, c.action, one_line(c.summary, 200)] for c in shown]
    table = render_table(["at", "actor", "entity", "action", "summary"], rows)
    kept, cut = fit_lines(table, _BUDGETS["statsig_get_changes"], reserve_tokens=250)
    truncated = cut or capped or len(shown) < len(visible)
    lines = [f"{header} · {len(kept) - 1} of {len(visible)} changes, newest first",
             *untrusted_block("statsig audit log", kept)]
    if truncated:
        lines.append("older changes not shown: narrow the window, or name an entity")
    return ToolOutput("\n".join(lines), truncated=truncated, total=None if capped else len(visible))


_BUDGETS = {"statsig_list": 3000, "statsig_get": 3000, "statsig_get_changes": 3000}

TOOLS = (
    ToolSpec(
        name="statsig_list",
        toolset="statsig",
        access="read",
        title="List Statsig gates, experiments, configs, segments",
        description="List feature gates, experiments, dynamic configs or segments with status, rollout % "
        "and last change.",
        params=ListParams,
        fn=list_entities,
        budget_tokens=_BUDGETS["statsig_list"],
    ),
    ToolSpec(
        name="statsig_get",
        toolset="statsig",
        access="read",
        title="Read a Statsig gate, experiment, config or segment",
        description="One item: rules with conditions and pass %, environments, owner, last modified by/when; "
        "experiments with allocation, groups and latest results.",
        params=GetParams,
        fn=get_entity,
        budget_tokens=_BUDGETS["statsig_get"],
    ),
    ToolSpec(
        name="statsig_get_changes",
        toolset="statsig",
        access="read",
        title="Statsig audit log",
        description="Who changed which gate/experiment/config when, and how (e.g. pass 10% -> 50%).",
        params=ChangesParams,
        fn=get_changes,
        budget_tokens=_BUDGETS["statsig_get_changes"],
    ),
)

TOOLSET = Toolset(
    name="statsig",
    upstream=UPSTREAM,
    access="read",
    instructions="statsig_*: flags, experiments and their change log.",
    tools=TOOLS,
    make_client=make_client,
    routes=ROUTES,
    env_vars=("STATSIG_CONSOLE_API_KEY", "SPYGLASS_STATSIG_URL"),
)
