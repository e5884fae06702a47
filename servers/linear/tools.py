"""Linear read tools: search issues, read one issue (history, comments, links), list projects.
Team-scoped: issues and projects of teams outside the policy's scope are neither returned nor counted."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from servers._core.errors import NotFound, PolicyDenied
from servers._core.shaping import (
    ToolOutput,
    decode_cursor,
    encode_cursor,
    fit_lines,
    one_line,
    render_table,
    untrusted_block,
)
from servers._core.spec import Params, ToolContext, Toolset, ToolSpec, WindowParams
from servers._core.timeparse import iso, parse_time, resolve_window
from servers.linear.client import READ_ROUTES, LinearClient, make_client
from servers.linear.models import IssueDetail, parse_issue_row, parse_project

UPSTREAM = "linear"
ISSUE_KEY = re.compile(r"^([A-Za-z][A-Za-z0-9]{0,9})-(\d{1,7})$")
DESCRIPTION_MAX_CHARS = 4000


# --- scope (shared with the write toolset) ----------------------------------------------------------
def scope_teams(ctx: ToolContext) -> list[str] | None:
    teams = ctx.scope.teams if ctx.scope else None
    return [t.upper() for t in teams] if teams is not None else None


def deny_team(team: str, allowed: list[str]) -> PolicyDenied:
    return PolicyDenied(f"team {team!r} is outside the Linear team scope", rule_id="scopes.linear.teams",
                        hint=f"the policy allows teams: {', '.join(allowed) or 'none'}")


def key_team(issue: str) -> str | None:
    """The team key of an issue key ('CHK-311' -> 'CHK'); None for an id."""
    m = ISSUE_KEY.match(issue.strip())
    return m.group(1).upper() if m else None


def block(source: str, texts: list[str]) -> list[str]:
    """``untrusted_block`` (which neutralises its markers in the text) over third-party texts split into lines."""
    return untrusted_block(source, [line for t in texts for line in t.splitlines() or [""]])


def attr(text: str) -> str:
    """A name safe inside an untrusted block's source attribute."""
    return one_line(re.sub(r"[\"<>]", "", text), 80)


# --- linear_search_issues ---------------------------------------------------------------------------
class SearchIssuesParams(WindowParams):
    text: str | None = Field(None, max_length=200, description="Words in title or description.")
    team: str | None = Field(None, max_length=20, description="Team key, e.g. 'CHK'.")
    state: str | None = Field(None, max_length=60, description="State name, e.g. 'In Progress'.")
    assignee: str | None = Field(None, max_length=100, description="Assignee name or e-mail.")
    label: str | None = Field(None, max_length=60, description="Label name.")
    from_: str | int | None = Field(None, alias="from", description="Updated since (ISO 8601 or 'now-7d'). "
                                    "Default: any time.")
    to: str | int | None = Field(None, description="Updated before. Default: now.")
    limit: int = Field(20, ge=1, le=50, description="Issues per page.")
    cursor: str | None = Field(None, max_length=500, description="next_cursor from a previous call.")


def _ci(value: str) -> dict[str, str]:
    return {"eqIgnoreCase": value}


def updated_window(p: SearchIssuesParams, ctx: ToolContext) -> dict[str, str]:
    """Either bound may be left open: no 'from' means any time, no 'to' means now."""
    has_from, has_to = p.from_ not in (None, ""), p.to not in (None, "")
    if has_from and has_to:
        start, end = resolve_window(p.from_, p.to, ctx.now)
        return {"gte": iso(start), "lte": iso(end)}
    if has_from:
        assert p.from_ is not None
        return {"gte": iso(parse_time(p.from_, ctx.now, field="from"))}
    if has_to:
        assert p.to is not None
        return {"lte": iso(parse_time(p.to, ctx.now, field="to"))}
    return {}


async def search_issues(p: SearchIssuesParams, ctx: ToolContext) -> ToolOutput:
    allowed = scope_teams(ctx)
    parts: list[dict[str, Any]] = []
    what = ["linear issues"]
    if p.team:
        team = p.team.upper()
        if allowed is not None and team not in allowed:
            raise deny_team(team, allowed)
        parts.append({"team": {"key": {"eq": team}}})
        what.append(f"team {team}")
    elif allowed is not None:
        parts.append({"team": {"key": {"in": allowed}}})
        what.append(f"teams {','.join(allowed)}")
    if allowed is not None:
        ctx.record.scoped()
    if p.text:
        parts.append({"searchableContent": {"contains": p.text}})
        what.append(f"text {p.text!r}")
    if p.state:
        parts.append({"state": {"name": _ci(p.state)}})
        what.append(f"state {p.state}")
    if p.assignee:
        parts.append({"assignee": {"or": [{"name": _ci(p.assignee)}, {"displayName": _ci(p.assignee)},
                                          {"email": _ci(p.assignee)}]}})
        what.append(f"assignee {p.assignee}")
    if p.label:
        parts.append({"labels": {"some": {"name": _ci(p.label)}}})
        what.append(f"label {p.label}")
    window = updated_window(p, ctx)
    if window:
        parts.append({"updatedAt": window})
        what.append("updated " + " → ".join([window.get("gte", "…"), window.get("lte", "now")]))
    after = decode_cursor(p.cursor, tool="linear_search_issues").get("a") if p.cursor else None
    client: LinearClient = ctx.client
    conn = await client.search_issues({"and": parts} if parts else {}, p.limit, after)
    rows = [parse_issue_row(n) for n in conn.nodes]
    visible = [r for r in rows if allowed is None or r.team in allowed]  # never trust the filter alone
    if len(visible) != len(rows):
        ctx.record.scoped(len(rows) - len(visible))
    cursor = encode_cursor({"a": conn.end_cursor}) if conn.has_next and conn.end_cursor else None
    header = " · ".join(what)
    if not visible:
        return ToolOutput(f"{header}\nno issues match", empty=cursor is None, next_cursor=cursor,
                          truncated=bool(cursor))
    table = render_table(
        ["key", "state", "priority", "assignee", "labels", "updated", "title"],
        [[r.key, r.state, r.priority, r.assignee, ", ".join(r.labels), iso(r.updated) if r.updated else "",
          one_line(r.title, 120)] for r in visible],
    )
    text = "\n".join([f"{header} · {len(visible)} shown, recently updated first",
                      *block("linear issues", table)])
    return ToolOutput(text, truncated=bool(cursor), next_cursor=cursor)


# --- linear_get_issue -------------------------------------------------------------------------------
class GetIssueParams(Params):
    issue: str = Field(min_length=1, max_length=100, description="Issue key like 'CHK-311', or its id.")


def render_issue(d: IssueDetail) -> list[str]:
    r = d.row
    lines = [" · ".join(x for x in (f"linear {r.key}", f"team {r.team}", r.state, r.priority,
                                    f"assignee {r.assignee}" if r.assignee else "unassigned") if x)]
    meta = [f"created {iso(d.created)}" + (f" by {d.creator}" if d.creator else "") if d.created else "",
            f"updated {iso(r.updated)}" if r.updated else "", f"project {d.project}" if d.project else "",
            f"labels {', '.join(r.labels)}" if r.labels else ""]
    lines.append(" · ".join(x for x in meta if x))
    if d.url:
        lines.append(f"url {d.url}")
    if d.history:
        lines.append("state history" + (" (latest 100 changes only)" if d.history_cut else "") + ":")
        lines += [f"  {iso(h.at) if h.at else '?'} {h.from_state or '(new)'} -> {h.to_state} by {h.actor}"
                  for h in d.history]
    if d.links:
        lines += block(f"linear {r.key} links", [
            " · ".join(x for x in (lk.source or "link", one_line(lk.title, 120), lk.subtitle, lk.url) if x)
            for lk in d.links])
    desc = d.description
    body = [f"title: {one_line(r.title, 300)}"]
    if desc:
        if len(desc) > DESCRIPTION_MAX_CHARS:
            desc = desc[:DESCRIPTION_MAX_CHARS] + (f"\n[description cut at {DESCRIPTION_MAX_CHARS} of "
                                                   f"{len(d.description)} characters; the rest is at the url]")
        body.append(desc)
    lines += block(f"linear {r.key} description by {attr(d.creator or 'unknown')}", body)
    return lines


def render_comments(d: IssueDetail) -> list[list[str]]:
    """One block of lines per comment, newest first."""
    out = []
    for c in reversed(d.comments):
        who = attr(c.author) + (" (external)" if c.external else "")
        when = iso(c.at) if c.at else "?"
        out.append(block(f"linear {d.row.key} comment by {who} at {when}", [c.body]))
    return out


async def get_issue(p: GetIssueParams, ctx: ToolContext) -> ToolOutput:
    allowed = scope_teams(ctx)
    prefix = key_team(p.issue)
    if allowed is not None:
        ctx.record.scoped()
        if prefix is not None and prefix not in allowed:
            raise deny_team(prefix, allowed)
    client: LinearClient = ctx.client
    try:
        d = await client.get_issue(p.issue.strip())
    except NotFound:
        raise NotFound(f"linear issue {p.issue!r} not found", upstream_status=404,
                       hint="use the key shown by linear_search_issues, e.g. 'CHK-311'") from None
    if allowed is not None and d.row.team not in allowed:
        raise deny_team(d.row.team, allowed)
    lines = render_issue(d)
    blocks = render_comments(d)
    head = f"comments ({len(d.comments)}{'+' if d.comments_cut else ''}, newest first):" if blocks else "comments: none"
    # A comment block is shown whole or not at all: fit it as one item (its lines joined), then unjoin.
    top = [*lines, head]
    fitted, cut = fit_lines([*top, *("\n".join(b) for b in blocks)], _BUDGETS["linear_get_issue"],
                            reserve_tokens=300)
    shown = max(0, len(fitted) - len(top))
    kept = fitted[:len(top)] + [line for b in blocks[:shown] for line in b]
    if cut or d.comments_cut:
        kept.append(f"[{len(d.comments) - shown}{'+' if d.comments_cut else ''} older comments not shown; "
                    f"read them at {d.url or 'the issue url'}]")
    return ToolOutput("\n".join(kept), truncated=cut or d.comments_cut)


# --- linear_list_projects ---------------------------------------------------------------------------
class ListProjectsParams(Params):
    team: str | None = Field(None, max_length=20, description="Team key, e.g. 'CHK'.")
    limit: int = Field(20, ge=1, le=50, description="Projects per page.")
    cursor: str | None = Field(None, max_length=500, description="next_cursor from a previous call.")


async def list_projects(p: ListProjectsParams, ctx: ToolContext) -> ToolOutput:
    allowed = scope_teams(ctx)
    keys: list[str] | None = None
    if p.team:
        keys = [p.team.upper()]
        if allowed is not None and keys[0] not in allowed:
            raise deny_team(keys[0], allowed)
    elif allowed is not None:
        keys = allowed
    if allowed is not None:
        ctx.record.scoped()
    flt = {"accessibleTeams": {"some": {"key": {"in": keys}}}} if keys is not None else None
    after = decode_cursor(p.cursor, tool="linear_list_projects").get("a") if p.cursor else None
    client: LinearClient = ctx.client
    conn = await client.list_projects(flt, p.limit, after)
    projects = [parse_project(n) for n in conn.nodes]
    visible = [x for x in projects if keys is None or set(x.teams) & set(keys)]
    if allowed is not None:  # a shared project also shows teams outside the scope: never name them
        visible = [x for x in visible if set(x.teams) & set(allowed)]
    if len(visible) != len(projects):
        ctx.record.scoped(len(projects) - len(visible))
    cursor = encode_cursor({"a": conn.end_cursor}) if conn.has_next and conn.end_cursor else None
    header = "linear projects" + (f" · teams {','.join(keys)}" if keys else "")
    if not visible:
        return ToolOutput(f"{header}\nno projects", empty=cursor is None, next_cursor=cursor, truncated=bool(cursor))
    rows = [[one_line(x.name, 80), x.status, x.lead,
             f"{round(x.progress * 100)}%" if x.progress is not None else "",
             x.target, ", ".join(t for t in x.teams if allowed is None or t in allowed),
             iso(x.updated) if x.updated else "", x.url] for x in visible]
    table = render_table(["project", "status", "lead", "progress", "target", "teams", "updated", "url"], rows)
    text = "\n".join([f"{header} · {len(visible)} shown", *block("linear projects", table)])
    return ToolOutput(text, truncated=bool(cursor), next_cursor=cursor)


_BUDGETS = {"linear_search_issues": 3000, "linear_get_issue": 5000, "linear_list_projects": 2000}

TOOLS = (
    ToolSpec(
        name="linear_search_issues",
        toolset="linear",
        access="read",
        title="Search Linear issues",
        description="Find issues by text, team, state, assignee, label or update window.",
        params=SearchIssuesParams,
        fn=search_issues,
        budget_tokens=_BUDGETS["linear_search_issues"],
    ),
    ToolSpec(
        name="linear_get_issue",
        toolset="linear",
        access="read",
        title="Read a Linear issue",
        description="One issue: description, state history, comments (newest first), linked PRs/attachments.",
        params=GetIssueParams,
        fn=get_issue,
        budget_tokens=_BUDGETS["linear_get_issue"],
    ),
    ToolSpec(
        name="linear_list_projects",
        toolset="linear",
        access="read",
        title="List Linear projects",
        description="Projects with status, lead, progress and target date.",
        params=ListProjectsParams,
        fn=list_projects,
        budget_tokens=_BUDGETS["linear_list_projects"],
    ),
)

TOOLSET = Toolset(
    name="linear",
    upstream=UPSTREAM,
    access="read",
    instructions="linear_*: issues (keys like CHK-311) and projects.",
    tools=TOOLS,
    make_client=make_client,
    routes=READ_ROUTES,
    env_vars=("LINEAR_API_KEY", "SPYGLASS_LINEAR_URL"),
)
