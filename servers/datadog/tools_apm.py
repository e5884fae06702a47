"""Datadog APM and Error Tracking tools: span search, whole traces, error issues."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, field_validator

from servers._core.errors import NotFound
from servers._core.shaping import (
    ToolOutput,
    cursor_offset,
    fit_lines,
    message_patterns,
    next_skip_cursor,
    one_line,
    paged_lines,
    read_skip_cursor,
    render_table,
    untrusted_block,
)
from servers._core.spec import Params, ToolContext, ToolSpec, WindowParams
from servers._core.timeparse import iso_seconds as iso
from servers._core.timeparse import resolve_window, short_time
from servers.datadog import traces
from servers.datadog.client import DatadogClient
from servers.datadog.models import ErrorIssue, Span, top_frames
from servers.datadog.scope import in_service_scope, keep_in_scope, require_in_scope, scoped_query

TRACE_LOOKBACK = timedelta(days=15)  # indexed spans' default retention
ISSUE_WINDOW = timedelta(days=7)  # how far back per-version counts of an error issue go
BUDGETS = {"datadog_search_spans": 5000, "datadog_get_trace": 6000, "datadog_search_error_issues": 3000,
           "datadog_get_error_issue": 3000}


# --- datadog_search_spans ---------------------------------------------------------------------------
class SearchSpansParams(WindowParams):
    query: str = Field("*", description="Span search syntax, e.g. 'service:checkout status:error'.", max_length=2000)
    limit: int = Field(25, ge=1, le=200, description="Spans to return.")
    cursor: str | None = Field(None, description="next_cursor of a previous call.")


def _span_line(s: Span) -> str:
    ts = short_time(s.start) if s.start else "--:--:--"
    err = f" | {one_line(': '.join(x for x in (s.error_type, s.error_message) if x), 200)}" \
        if s.status == "error" else ""
    return f"{ts} {s.service} {one_line(s.resource, 120)} {traces.fmt_ms(s.duration_ms)} {s.status} " \
           f"trace={s.trace_id}{err}"


async def search_spans(p: SearchSpansParams, ctx: ToolContext) -> ToolOutput:
    start, end = resolve_window(p.from_, p.to, ctx.now)
    at = read_skip_cursor(p.cursor, tool="datadog_search_spans")
    client: DatadogClient = ctx.client
    page = await client.search_spans(scoped_query(ctx, p.query), start, end, limit=p.limit, cursor=at.upstream)
    visible = keep_in_scope(ctx, list(enumerate(page.spans[at.skip:])), lambda x: [x[1].service])
    header = f"datadog spans · {p.query} · {iso(start)} → {iso(end)} · newest first"
    if not visible and not page.next_cursor:
        return ToolOutput(f"{header}\nno spans match in this window", empty=True)
    errs = [s for _i, s in visible if s.status == "error"]
    summary = [f"errors: {len(errs)} of {len(visible)} spans"]
    if errs:
        summary += [f"  {n}× {pat}" for pat, n in message_patterns(
            (f"{s.service} {s.error_type}: {s.error_message}" for s in errs), top=3)]
    body = [_span_line(s) for _i, s in visible]
    kept, cut = fit_lines(body, BUDGETS["datadog_search_spans"], reserve_tokens=300 + sum(map(len, summary)) // 3)
    next_cursor = next_skip_cursor(at, [i for i, _s in visible], len(kept), cut, page.next_cursor)
    lines = [f"{header} · {len(kept)} spans (time service resource duration status trace | error)", *summary,
             *untrusted_block("datadog spans", kept)]
    return ToolOutput("\n".join(lines), truncated=bool(next_cursor), next_cursor=next_cursor)


# --- datadog_get_trace ------------------------------------------------------------------------------
class GetTraceParams(Params):
    trace_id: str = Field(description="Trace id (decimal or hex), e.g. from datadog_search_spans.")
    cursor: str | None = Field(None, description="next_cursor of a previous call.")

    @field_validator("trace_id")
    @classmethod
    def _id(cls, v: str) -> str:
        v = v.strip()
        if not re.fullmatch(r"[0-9]{1,39}|[0-9a-fA-F]{16,32}", v):
            raise ValueError("must be a decimal or hex trace id")
        return v


async def get_trace(p: GetTraceParams, ctx: ToolContext) -> ToolOutput:
    offset = cursor_offset(p.cursor, tool="datadog_get_trace", match={"t": p.trace_id})
    client: DatadogClient = ctx.client
    spans, complete = await client.trace_spans(p.trace_id, ctx.now - TRACE_LOOKBACK, ctx.now)
    if not spans:
        raise NotFound(f"trace {p.trace_id}: no spans found in the last {TRACE_LOOKBACK.days} days",
                       hint="check the id (from datadog_search_spans) or whether the trace was sampled out")
    visible = keep_in_scope(ctx, spans, lambda s: [s.service])
    withheld = len(spans) - len(visible)
    if not visible:
        require_in_scope(ctx, f"trace {p.trace_id}", {s.service for s in spans})
    roots = traces.build_tree(visible)
    errs = traces.errors(roots)
    root = roots[0].span
    services = sorted({s.service for s in visible})
    head = [
        f"trace {p.trace_id} · {iso(root.start) if root.start else '-'} · {traces.fmt_ms(root.duration_ms)} · "
        f"{len(visible)} spans · services {', '.join(services)} · {len(errs)} errors"
        + (f" · {withheld} spans outside scope withheld" if withheld else "")
        + ("" if complete else f" · first {len(spans)} spans only (trace has more)"),
        f"critical path: {traces.critical_path(roots)}",
    ]
    if errs:
        head.append("errors: " + "; ".join(f"{s.service} {s.resource}" for s in errs[:3])
                    + (f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""))
    if len(roots) > 1:
        head.append(f"{len(roots)} roots (parents missing); largest first")
    head.append("tree (duration, self if different; * critical path, ! error, N× folded repeats):")
    body = traces.render(roots)
    kept, next_cursor = paged_lines(body, BUDGETS["datadog_get_trace"], offset,
                                    reserve_tokens=250 + sum(map(len, head)) // 3, state={"t": p.trace_id})
    if offset:
        head.append(f"(lines {offset + 1}-{offset + len(kept)} of {len(body)})")
    text = "\n".join([*head, *untrusted_block("datadog trace", kept)])
    return ToolOutput(text, truncated=next_cursor is not None or not complete, total=len(body), next_cursor=next_cursor)


# --- datadog_search_error_issues ------------------------------------------------------------------
class SearchErrorIssuesParams(WindowParams):
    query: str = Field("*", description="Search syntax, e.g. 'service:checkout'.", max_length=1000)
    order: Literal["count", "first_seen"] = Field("count", description="Sort order.")
    limit: int = Field(20, ge=1, le=100, description="Issues to return.")


def _seen(dt: object, version: str) -> str:
    when = iso(dt) if isinstance(dt, datetime) else "-"
    return f"{when} ({version})" if version else when


def _versions(i: ErrorIssue) -> str:
    if i.first_version and i.last_version and i.first_version != i.last_version:
        return f"{i.first_version}…{i.last_version}"
    return i.first_version or i.last_version or "-"


async def search_error_issues(p: SearchErrorIssuesParams, ctx: ToolContext) -> ToolOutput:
    start, end = resolve_window(p.from_, p.to, ctx.now)
    client: DatadogClient = ctx.client
    issues = await client.search_issues(scoped_query(ctx, p.query), start, end,
                                        order_by="FIRST_SEEN" if p.order == "first_seen" else "TOTAL_COUNT")
    issues = keep_in_scope(ctx, issues, lambda i: [i.service])
    header = f"datadog error issues · {p.query} · {iso(start)} → {iso(end)} · by {p.order}"
    if not issues:
        return ToolOutput(f"{header}\nno error issues in this window", empty=True)
    shown = issues[: p.limit]
    rows = [[i.count if i.count is not None else "-", i.service, one_line(f"{i.error_type}: {i.message}", 140),
             _versions(i), _seen(i.first_seen, ""), _seen(i.last_seen, ""), i.id] for i in shown]
    table = render_table(["count", "service", "error", "versions", "first seen", "last seen", "id"], rows)
    lines = [f"{header} · {len(shown)} of {len(issues)}", *untrusted_block("datadog error issues", table)]
    if len(shown) < len(issues):
        lines.append(f"{len(issues) - len(shown)} more: raise limit or narrow the query")
    return ToolOutput("\n".join(lines), truncated=len(shown) < len(issues), total=len(issues))


# --- datadog_get_error_issue ----------------------------------------------------------------------
class GetErrorIssueParams(Params):
    issue_id: str = Field(description="Issue id from datadog_search_error_issues.")

    @field_validator("issue_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not re.fullmatch(r"[\w-]{1,64}", v):
            raise ValueError("not an issue id (letters, digits and '-')")
        return v


async def get_error_issue(p: GetErrorIssueParams, ctx: ToolContext) -> ToolOutput:
    client: DatadogClient = ctx.client
    issue = await client.get_issue(p.issue_id)
    require_in_scope(ctx, f"error issue {p.issue_id}", [issue.service])
    since = max(issue.first_seen or ctx.now - ISSUE_WINDOW, ctx.now - ISSUE_WINDOW)
    q = f"@issue.id:{p.issue_id}"
    by_version = await client.aggregate_spans(q, since, ctx.now, facet="version", limit=20)
    sample: Span | None = None
    if issue.last_seen is not None:
        page = await client.search_spans(q, issue.last_seen - timedelta(minutes=5),
                                         min(ctx.now, issue.last_seen + timedelta(minutes=1)), limit=1)
        sample = next((s for s in page.spans if in_service_scope(ctx, s.service)), None)
    total = sum(int(b.value or 0) for b in by_version)
    versions = ", ".join(f"{b.by.get('version', '?')} {int(b.value or 0)}" for b in by_version) or "none in window"
    lines = [
        f"error issue {issue.id} · service {issue.service} · {issue.state or '-'}",
        f"first seen {_seen(issue.first_seen, issue.first_version)} · "
        f"last seen {_seen(issue.last_seen, issue.last_version)}",
        f"events since {iso(since)}: {total} · by version: {versions}",
    ]
    detail = [f"{issue.error_type}: {issue.message}"]
    frames = top_frames(sample.error_stack, 6) if sample is not None else []
    if frames:
        detail += ["top frames (innermost first):", *(f"  {f}" for f in frames)]
    elif issue.file_path:
        detail.append(f"at {issue.file_path} {issue.function}".rstrip())
    if sample is not None:
        lines.append(f"latest sample: {iso(sample.start) if sample.start else '-'} {sample.resource} "
                     f"version {sample.version or '-'} · trace {sample.trace_id} (datadog_get_trace)")
    text = "\n".join([*lines, *untrusted_block("datadog error issue", detail)])
    return ToolOutput(text)


def tool_specs() -> tuple[ToolSpec, ...]:
    return (
        ToolSpec(name="datadog_search_spans", toolset="datadog", access="read", title="Search Datadog spans",
                 description="Search APM spans, newest first: one line per span with duration, status, trace id "
                 "and error; top error patterns.",
                 params=SearchSpansParams, fn=search_spans, budget_tokens=BUDGETS["datadog_search_spans"]),
        ToolSpec(name="datadog_get_trace", toolset="datadog", access="read", title="Get a Datadog trace",
                 description="A whole trace as a tree: total and self time per span, errors flagged, critical "
                 "path marked. Large traces page with cursor.",
                 params=GetTraceParams, fn=get_trace, budget_tokens=BUDGETS["datadog_get_trace"]),
        ToolSpec(name="datadog_search_error_issues", toolset="datadog", access="read",
                 title="Search Datadog error issues",
                 description="Error Tracking issues in a window: count, service, error, first/last seen with "
                 "versions.",
                 params=SearchErrorIssuesParams, fn=search_error_issues,
                 budget_tokens=BUDGETS["datadog_search_error_issues"]),
        ToolSpec(name="datadog_get_error_issue", toolset="datadog", access="read", title="Get a Datadog error issue",
                 description="One error issue: first/last seen, counts per version, top stack frames, latest "
                 "sample trace.",
                 params=GetErrorIssueParams, fn=get_error_issue, budget_tokens=BUDGETS["datadog_get_error_issue"]),
    )
