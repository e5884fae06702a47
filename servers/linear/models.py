"""Typed views of Linear GraphQL responses: only the fields tools render. Parsing is pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from servers._core.timeparse import parse_lenient_dt

dt = parse_lenient_dt  # the name write.py imports


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _name(obj: Any) -> str:
    return _s(obj.get("name")) if isinstance(obj, dict) else ""


def _nodes(conn: Any) -> list[dict[str, Any]]:
    nodes = conn.get("nodes") if isinstance(conn, dict) else None
    return [n for n in nodes or [] if isinstance(n, dict)]


def _more(conn: Any) -> bool:
    return bool(isinstance(conn, dict) and (conn.get("pageInfo") or {}).get("hasNextPage"))


@dataclass(frozen=True)
class IssueRow:
    id: str
    key: str
    title: str
    team: str
    state: str
    priority: str
    assignee: str
    updated: datetime | None
    labels: list[str]


def parse_issue_row(n: dict[str, Any]) -> IssueRow:
    team = n.get("team") or {}
    return IssueRow(
        id=_s(n.get("id")),
        key=_s(n.get("identifier")),
        title=_s(n.get("title")),
        team=_s(team.get("key")) if isinstance(team, dict) else "",
        state=_name(n.get("state")),
        priority=_s(n.get("priorityLabel")),
        assignee=_name(n.get("assignee")),
        updated=dt(n.get("updatedAt")),
        labels=[_name(x) for x in _nodes(n.get("labels"))],
    )


@dataclass(frozen=True)
class Connection:
    nodes: list[dict[str, Any]]
    has_next: bool
    end_cursor: str | None


def parse_connection(conn: Any) -> Connection:
    info = (conn.get("pageInfo") or {}) if isinstance(conn, dict) else {}
    return Connection(_nodes(conn), bool(info.get("hasNextPage")), info.get("endCursor") or None)


@dataclass(frozen=True)
class StateChange:
    at: datetime | None
    actor: str
    from_state: str
    to_state: str


@dataclass(frozen=True)
class Comment:
    at: datetime | None
    author: str
    external: bool
    body: str


@dataclass(frozen=True)
class Link:
    title: str
    subtitle: str
    url: str
    source: str


@dataclass(frozen=True)
class IssueDetail:
    row: IssueRow
    description: str
    url: str
    created: datetime | None
    creator: str
    project: str
    history: list[StateChange] = field(default_factory=list)
    history_cut: bool = False
    comments: list[Comment] = field(default_factory=list)
    comments_cut: bool = False
    links: list[Link] = field(default_factory=list)


def parse_issue_detail(n: dict[str, Any]) -> IssueDetail:
    history = [
        StateChange(dt(h.get("createdAt")), _name(h.get("actor")) or "Linear", _name(h.get("fromState")),
                    _name(h.get("toState")))
        for h in _nodes(n.get("history")) if h.get("toState")
    ]
    comments = []
    for c in _nodes(n.get("comments")):
        user, ext = _name(c.get("user")), _name(c.get("externalUser"))
        comments.append(Comment(dt(c.get("createdAt")), user or ext or "unknown", bool(ext and not user),
                                _s(c.get("body"))))
    epoch = datetime.min.replace(tzinfo=UTC)
    return IssueDetail(
        row=parse_issue_row(n),
        description=_s(n.get("description")),
        url=_s(n.get("url")),
        created=dt(n.get("createdAt")),
        creator=_name(n.get("creator")),
        project=_name(n.get("project")),
        history=sorted(history, key=lambda h: h.at or epoch),
        history_cut=_more(n.get("history")),
        comments=sorted(comments, key=lambda c: c.at or epoch),
        comments_cut=_more(n.get("comments")),
        links=[Link(_s(a.get("title")), _s(a.get("subtitle")), _s(a.get("url")), _s(a.get("sourceType")))
               for a in _nodes(n.get("attachments"))],
    )


@dataclass(frozen=True)
class Project:
    name: str
    status: str
    lead: str
    progress: float | None
    target: str
    updated: datetime | None
    url: str
    teams: list[str]


def parse_project(n: dict[str, Any]) -> Project:
    progress = n.get("progress")
    return Project(
        name=_s(n.get("name")),
        status=_name(n.get("status")),
        lead=_name(n.get("lead")),
        progress=float(progress) if isinstance(progress, int | float) else None,
        target=_s(n.get("targetDate")),
        updated=dt(n.get("updatedAt")),
        url=_s(n.get("url")),
        teams=[_s(t.get("key")) for t in _nodes(n.get("teams"))],
    )
