"""Datadog read tools: logs search and aggregation, metrics. Compact text, scoped, budgeted."""

from __future__ import annotations

from pydantic import Field, field_validator

from guards.durations import format_duration
from servers._core.shaping import (
    ToolOutput,
    fit_lines,
    fmt_num,
    message_patterns,
    next_skip_cursor,
    one_line,
    read_skip_cursor,
    render_table,
    series_table,
    untrusted_block,
)
from servers._core.spec import ToolContext, Toolset, ToolSpec, WindowParams
from servers._core.timeparse import iso, resolve_window, short_time
from servers.datadog import tools_apm, tools_ops
from servers.datadog.client import ROUTES, DatadogClient, make_client
from servers.datadog.models import LogLine
from servers.datadog.scope import keep_in_scope, scoped_indexes, scoped_query

UPSTREAM = "datadog"


# --- datadog_search_logs --------------------------------------------------------------------------
class SearchLogsParams(WindowParams):
    query: str = Field("*", description="Datadog log search syntax, e.g. 'service:checkout status:error'.",
                       max_length=2000)
    limit: int = Field(50, ge=1, le=200, description="Log lines to return (newest first).")
    index: str | None = Field(None, description="Log index; default: all indexes in scope.")
    cursor: str | None = Field(None, description="next_cursor from a previous call, to continue.")


def _log_line(line: LogLine) -> str:
    ts = short_time(line.ts) if line.ts else "--:--:--"
    return f"{ts} {line.status or '-'} {line.service or '-'} {line.host or '-'} | {one_line(line.message, 300)}"


async def search_logs(p: SearchLogsParams, ctx: ToolContext) -> ToolOutput:
    start, end = resolve_window(p.from_, p.to, ctx.now, max_range=ctx.policy.guardrails.logs_max_range)
    at = read_skip_cursor(p.cursor, tool="datadog_search_logs")
    client: DatadogClient = ctx.client
    page = await client.search_logs(
        scoped_query(ctx, p.query), start, end, limit=p.limit, cursor=at.upstream,
        indexes=scoped_indexes(ctx, p.index),
    )
    visible = keep_in_scope(ctx, list(enumerate(page.lines[at.skip:])), lambda x: [x[1].service])
    header = [
        f"datadog logs · {p.query} · {iso(start)} → {iso(end)} · newest first",
    ]
    if not visible:
        return ToolOutput("\n".join([*header, "no log lines match in this window"]), empty=True)
    patterns = message_patterns((ln.message for _i, ln in visible), top=5)
    pattern_lines = ["top message patterns on this page (count, pattern):",
                     *(f"  {n}× {pat}" for n, pat in ((c, pt) for pt, c in patterns))]
    body = [_log_line(ln) for _i, ln in visible]
    kept, cut = fit_lines(body, _BUDGETS["datadog_search_logs"],
                          reserve_tokens=300 + sum(len(x) for x in pattern_lines) // 3)
    next_cursor = next_skip_cursor(at, [i for i, _ln in visible], len(kept), cut, page.next_cursor)
    header[0] += f" · {len(kept)} lines"
    text = "\n".join([*header, *pattern_lines, *untrusted_block("datadog logs", kept)])
    return ToolOutput(text, truncated=bool(next_cursor), next_cursor=next_cursor)


# --- datadog_aggregate_logs -----------------------------------------------------------------------
AGGREGATIONS = ("count", "cardinality", "sum", "min", "max", "avg", "median", "pc75", "pc90", "pc95", "pc98", "pc99")


class AggregateLogsParams(WindowParams):
    query: str = Field("*", description="Datadog log search syntax.", max_length=2000)
    group_by: list[str] = Field(default_factory=list, max_length=2,
                                description="Up to two facets, e.g. ['service', '@http.status_code'].")
    compute: str = Field("count", description="'count' or '<agg>:<measure>', agg one of "
                         "cardinality|sum|min|max|avg|median|pc75|pc90|pc95|pc98|pc99; e.g. 'pc95:@duration'.")
    limit: int = Field(10, ge=1, le=50, description="Buckets per facet.")
    index: str | None = Field(None, description="Log index; default: all indexes in scope.")

    @field_validator("compute")
    @classmethod
    def _compute(cls, v: str) -> str:
        agg = v.split(":", 1)[0]
        if agg not in AGGREGATIONS or (agg not in ("count",) and ":" not in v):
            raise ValueError(f"must be 'count' or '<agg>:<measure>' with agg one of {', '.join(AGGREGATIONS[1:])}")
        return v


async def aggregate_logs(p: AggregateLogsParams, ctx: ToolContext) -> ToolOutput:
    start, end = resolve_window(p.from_, p.to, ctx.now, max_range=ctx.policy.guardrails.logs_max_range)
    agg, _, metric = p.compute.partition(":")
    client: DatadogClient = ctx.client
    buckets = await client.aggregate_logs(
        scoped_query(ctx, p.query), start, end, group_by=p.group_by, aggregation=agg, metric=metric or None,
        limit=p.limit, indexes=scoped_indexes(ctx, p.index),
    )
    if "service" in p.group_by:
        buckets = keep_in_scope(ctx, buckets, lambda b: [str(b.by.get("service"))])
    header = f"datadog log {p.compute} · {p.query} · {iso(start)} → {iso(end)}"
    if not buckets:
        return ToolOutput(f"{header}\nno logs match in this window", empty=True)
    buckets.sort(key=lambda b: b.value or 0, reverse=True)
    rows = [[*(str(b.by.get(f, "")) for f in p.group_by), fmt_num(b.value)] for b in buckets]
    total = sum(b.value or 0 for b in buckets) if agg == "count" else None
    lines = [header + (f" · total {fmt_num(total)}" if total is not None else ""),
             *render_table([*p.group_by, p.compute], rows)]
    return ToolOutput("\n".join(lines), total=len(buckets))


# --- datadog_query_metrics ------------------------------------------------------------------------
class QueryMetricsParams(WindowParams):
    query: str = Field(description="Datadog metric query, e.g. 'avg:trace.http.request.errors{service:checkout} "
                       "by {version}'.", min_length=1, max_length=2000)
    points: int = Field(12, ge=0, le=100, description="Downsampled points per series (0 = summary only).")
    max_series: int = Field(10, ge=1, le=50, description="Series to show, highest average first.")


async def query_metrics(p: QueryMetricsParams, ctx: ToolContext) -> ToolOutput:
    start, end = resolve_window(p.from_, p.to, ctx.now)
    span = end - start
    client: DatadogClient = ctx.client
    # One call covers this window and the previous one of the same length, for the change column.
    series = await client.query_metrics(p.query, start - span, end)
    series = keep_in_scope(ctx, series, lambda s: [n for n in [_series_service(s.scope)] if n])
    header = (f"datadog metrics · {p.query} · {iso(start)} → {iso(end)} · "
              f"change vs previous {format_duration(span.total_seconds())}")
    return series_table(header, series, points_of=lambda s: s.points,
                        describe=lambda shown: ([], [s.scope or s.metric for s in shown]), start=start,
                        points=p.points, max_series=p.max_series,
                        more_hint="raise max_series or narrow the query")


def _series_service(scope: str) -> str | None:
    for part in scope.split(","):
        if part.startswith("service:"):
            return part.split(":", 1)[1]
    return None


_BUDGETS = {"datadog_search_logs": 6000, "datadog_aggregate_logs": 3000, "datadog_query_metrics": 4000}

TOOLS = (
    ToolSpec(
        name="datadog_search_logs",
        toolset="datadog",
        access="read",
        title="Search Datadog logs",
        description="Search logs in a time window. Returns compact lines (time status service host | message), "
        "newest first, with the top message patterns. Page with cursor.",
        params=SearchLogsParams,
        fn=search_logs,
        budget_tokens=_BUDGETS["datadog_search_logs"],
    ),
    ToolSpec(
        name="datadog_aggregate_logs",
        toolset="datadog",
        access="read",
        title="Aggregate Datadog logs",
        description="Count logs, or compute a measure, grouped by up to two facets: e.g. errors per service "
        "and version, or pc95 of @duration per endpoint.",
        params=AggregateLogsParams,
        fn=aggregate_logs,
        budget_tokens=_BUDGETS["datadog_aggregate_logs"],
    ),
    ToolSpec(
        name="datadog_query_metrics",
        toolset="datadog",
        access="read",
        title="Query Datadog metrics",
        description="Run a metric query. Per series: min/max/avg/last, change against the previous window "
        "of equal length, and a few downsampled points.",
        params=QueryMetricsParams,
        fn=query_metrics,
        budget_tokens=_BUDGETS["datadog_query_metrics"],
    ),
    *tools_apm.tool_specs(),
    *tools_ops.tool_specs(),
)

TOOLSET = Toolset(
    name="datadog",
    upstream=UPSTREAM,
    access="read",
    instructions="datadog_*: logs, metrics, traces, monitors, incidents, events, error issues, dashboards; "
    "queries use Datadog syntax.",
    tools=TOOLS,
    make_client=make_client,
    routes=ROUTES,
    env_vars=("DD_API_KEY", "DD_APP_KEY", "DD_SITE", "SPYGLASS_DATADOG_URL"),
)

