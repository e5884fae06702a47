"""Opt-in Linear writes (toolset ``linear_write``): create an issue, add a comment.

Registered only when the policy's [toolsets] enabled lists ``linear_write``; each call also needs an
allow rule (defaults.write = deny), and is accepted only for teams the policy's ``linear`` scope lists.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from guards.principal import Principal
from servers._core.errors import NotFound, PolicyDenied
from servers._core.shaping import ToolOutput
from servers._core.spec import Params, ToolContext, Toolset, ToolSpec
from servers._core.timeparse import iso
from servers.linear.client import WRITE_ROUTES, LinearWriteClient, make_write_client
from servers.linear.models import dt
from servers.linear.tools import UPSTREAM, deny_team, key_team, scope_teams

RULE = "scopes.linear.teams"


def require_team(ctx: ToolContext, team: str) -> None:
    """Writes are accepted only for teams the policy's linear scope lists; no teams scope, no writes."""
    allowed = scope_teams(ctx)
    if not allowed:
        raise PolicyDenied(
            "Linear writes need the policy's linear scope to list teams, and it lists none",
            rule_id=RULE,
            hint='add a [[scopes]] entry: toolset = "linear", teams = ["CHK"]',
        )
    if team.upper() not in allowed:
        raise deny_team(team.upper(), allowed)


async def _with_team(args: dict[str, Any], _principal: Principal, _runtime: Any = None) -> dict[str, Any]:
    """Policy rules may match on ``team``: derive it from an issue key ('CHK-311' -> 'CHK')."""
    team = key_team(str(args.get("issue") or ""))
    return {**args, "team": team} if team else dict(args)


class CreateIssueParams(Params):
    team: str = Field(min_length=1, max_length=20, description="Team key, e.g. 'CHK'.")
    title: str = Field(min_length=1, max_length=250, description="Issue title.")
    description: str | None = Field(None, max_length=20000, description="Markdown body.")
    priority: int | None = Field(None, ge=0, le=4, description="0 none, 1 urgent, 2 high, 3 medium, 4 low.")


async def create_issue(p: CreateIssueParams, ctx: ToolContext) -> ToolOutput:
    team = p.team.upper()
    require_team(ctx, team)
    client: LinearWriteClient = ctx.client
    team_id = await client.team_id(team)
    if team_id is None:
        raise NotFound(f"linear team {team!r} not found", hint="use a team key as shown in issue keys, e.g. 'CHK'")
    issue = await client.create_issue(team_id, p.title, p.description, p.priority)
    return ToolOutput(f"created {issue['identifier']} in {team}: {issue['title']}\nurl {issue['url']}")


class AddCommentParams(Params):
    issue: str = Field(min_length=1, max_length=100, description="Issue key like 'CHK-311', or its id.")
    body: str = Field(min_length=1, max_length=20000, description="Markdown comment.")


async def add_comment(p: AddCommentParams, ctx: ToolContext) -> ToolOutput:
    prefix = key_team(p.issue)
    if prefix is not None:
        require_team(ctx, prefix)  # refuse before any upstream call when the key names the team
    client: LinearWriteClient = ctx.client
    issue_id, key, team = await client.issue_team(p.issue.strip())
    require_team(ctx, team)  # the issue's real team decides (ids, moved issues)
    comment = await client.add_comment(issue_id, p.body)
    at = dt(comment["at"])
    return ToolOutput(f"commented on {comment['issue'] or key}" + (f" at {iso(at)}" if at else "")
                      + f"\nurl {comment['url']}")


TOOLS = (
    ToolSpec(
        name="linear_create_issue",
        toolset="linear_write",
        access="write",
        title="Create a Linear issue",
        description="Create an issue in a team the policy allows.",
        params=CreateIssueParams,
        fn=create_issue,
        destructive=False,
        idempotent=False,
        budget_tokens=500,
    ),
    ToolSpec(
        name="linear_add_comment",
        toolset="linear_write",
        access="write",
        title="Comment on a Linear issue",
        description="Add a comment to an issue of a team the policy allows.",
        params=AddCommentParams,
        fn=add_comment,
        destructive=False,
        idempotent=False,
        budget_tokens=500,
        policy_args=_with_team,
    ),
)

TOOLSET = Toolset(
    name="linear_write",
    upstream=UPSTREAM,
    access="write",
    instructions="linear_create_issue / linear_add_comment write to Linear for allowed teams.",
    tools=TOOLS,
    make_client=make_write_client,
    routes=WRITE_ROUTES,
    env_vars=("LINEAR_API_KEY", "SPYGLASS_LINEAR_URL"),
)
