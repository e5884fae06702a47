"""Grafana read tools: dashboards, datasources, Prometheus and Loki through the datasource proxy, alert
rules, annotations. Compact text, datasource-scoped, budgeted; Loki queries pass a cost guard."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field

from guards.durations import format_duration, parse_duration
from guards.enforce import CHARS_PER_TOKEN
from servers._core.errors import InvalidArguments, PolicyDenied
from servers._core.shaping import (
    ToolOutput,
    cursor_offset,
    decode_cursor,
    encode_cursor,
    fit_lines,
    fmt_num,
    message_patterns,
    one_line,
    paged_lines,
    render_table,
    series_table,
    summarize_series,
    untrusted_block,
)
from servers._core.spec import Params, ToolContext, ToolFn, Toolset, ToolSpec, WindowParams
from servers._core.timeparse import iso, resolve_window, short_time
from servers.grafana.client import ROUTES, GrafanaClient, make_client
from servers.grafana.models import AlertRule, Datasource, LogEntry, PromSeries, Variable, instance_state

UPSTREAM = "grafana"
SCOPE_RULE = "scopes.grafana.datasources"
CURSOR = "next_cursor from the previous result."
DS_UID = "Datasource uid; default: the default {kind} datasource in scope."
PROM_TYPES = ("prometheus",)
LOKI_TYPES = ("loki",)


# --- scope and datasources -----------------------------------------------------------------------------
def allowed_uids(ctx: ToolContext) -> list[str] | None:
    return ctx.scope.datasources if ctx.scope else None


def check_scope(ctx: ToolContext, uid: str) -> None:
    allowed = allowed_uids(ctx)
    if allowed is None:
        return
    ctx.record.scoped()
    if uid not in allowed:
        raise PolicyDenied(f"datasource {uid!r} is outside the Grafana scope", rule_id=SCOPE_RULE,
                           hint=f"use one of: {', '.join(allowed)}")


def in_scope(ctx: ToolContext, uid: str) -> bool:
    allowed = allowed_uids(ctx)
    return allowed is None or uid in allowed


async def resolve_datasource(ctx: ToolContext, uid: str | None, types: tuple[str, ...]) -> Datasource:
    """The datasource to query: the given uid (scope- and type-checked) or the default one of the type."""
    client: GrafanaClient = ctx.client
    kind = types[0]
    if uid:
        check_scope(ctx, uid)
        ds = await client.datasource(uid)
        if ds.type not in types:
            raise InvalidArguments(
                f"datasource_uid: {uid!r} is a {ds.type} datasource, not {kind}",
                hint=f"pick a {kind} uid from grafana_list_datasources"
                + ("; for logs use grafana_query_loki" if ds.type == "loki" else ""),
            )
        return ds
    candidates = [d for d in await client.datasources() if d.type in types and in_scope(ctx, d.uid)]
    if allowed_uids(ctx) is not None:
        ctx.record.scoped()
    if not candidates:
        raise InvalidArguments(f"datasource_uid: no {kind} datasource is configured in scope",
                               hint="list datasources with grafana_list_datasources")
    default = [d for d in candidates if d.is_default]
    if len(candidates) == 1 or len(default) == 1:
        return (default or candidates)[0]
    raise InvalidArguments(f"datasource_uid: several {kind} datasources; say which",
                           hint=f"one of: {', '.join(d.uid for d in candidates)}")


def fmt_labels(labels: dict[str, str], skip: set[str] | frozenset[str] = frozenset()) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in skip and k != "__name__")


def _common(label_sets: list[dict[str, str]]) -> dict[str, str]:
    if len(label_sets) < 2:
        return {}
    first = label_sets[0]
    return {k: v for k, v in first.items() if all(s.get(k) == v for s in label_sets[1:])}


def _age(now: datetime, then: datetime) -> str:
    return format_duration(max(0.0, (now - then).total_seconds() // 60 * 60)) if now > then else "0s"


# --- grafana_search_dashboards ----------------------------------------------------------------------------
class SearchDashboardsParams(Params):
    query: str = Field("", description="Words in the title; empty lists all.", max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=5, description="Dashboards must have all these tags.")
    limit: int = Field(20, ge=1, le=50, description="Dashboards per page.")
    cursor: str | None = Field(None, description=CURSOR)


async def search_dashboards(p: SearchDashboardsParams, ctx: ToolContext) -> ToolOutput:
    page = cursor_offset(p.cursor, tool="grafana_search_dashboards") or 1
    client: GrafanaClient = ctx.client
    want = page * p.limit
    hits = await client.search_dashboards(p.query, p.tags, min(want + 1, 5000))
    shown = hits[(page - 1) * p.limit: want]
    header = f"grafana dashboards · query {p.query!r}" + (f" · tags {','.join(p.tags)}" if p.tags else "")
    if not shown:
        return ToolOutput(f"{header}\nno dashboards match", empty=True)
    rows = render_table(["uid", "title", "folder", "tags"],
                        ([h.uid, one_line(h.title, 80), h.folder, ",".join(h.tags)] for h in shown))
    more = len(hits) > want
    text = "\n".join([f"{header} · {len(shown)} shown", *untrusted_block("grafana dashboards", rows)])
    return ToolOutput(text, truncated=more, next_cursor=encode_cursor({"o": page + 1}) if more else None)


# --- grafana_get_dashboard_summary ------------------------------------------------------------------------
class DashboardSummaryParams(Params):
    uid: str = Field(description="Dashboard uid (from grafana_search_dashboards).", min_length=1, max_length=64)
    cursor: str | None = Field(None, description=CURSOR)


async def get_dashboard_summary(p: DashboardSummaryParams, ctx: ToolContext) -> ToolOutput:
    offset = cursor_offset(p.cursor, tool="grafana_get_dashboard_summary")
    client: GrafanaClient = ctx.client
    d = await client.dashboard(p.uid)
    header = [f"dashboard {d.uid} · folder {d.folder} · v{d.version}"
              + (f" · updated {iso(d.updated)}" if d.updated else "")
              + (f" · tags {','.join(d.tags)}" if d.tags else "")]
    body = [f"title: {one_line(d.title, 120)}"]
    if d.description:
        body.append(f"about: {one_line(d.description, 200)}")
    if d.variables:
        def var(v: Variable) -> str:
            query = f": {one_line(v.query, 80)}" if v.query and v.type != "datasource" else ""
            return f"${v.name}={v.current or '-'} ({v.type}{query})"

        body.append("variables: " + " · ".join(var(v) for v in d.variables))
    body.append("panels (#id title · type · datasource, then queries by refId):")
    withheld = 0
    for panel in d.panels:
        row = f"[{one_line(panel.row, 40)}] " if panel.row else ""
        body.append(f"#{panel.id} {row}{one_line(panel.title, 80)} · {panel.type} · {panel.ds_uid or '-'}")
        for t in panel.targets:
            if t.ds_uid and not in_scope(ctx, t.ds_uid):
                withheld += 1
                body.append(f"  {t.ref}: (withheld: datasource {t.ds_uid} is outside the Grafana scope)")
            else:
                ds = f" [{t.ds_uid}]" if t.ds_uid and t.ds_uid != panel.ds_uid else ""
                body.append(f"  {t.ref}{ds}: {one_line(t.expr, 400)}")
    if allowed_uids(ctx) is not None:
        ctx.record.scoped(withheld)
    kept, next_cursor = paged_lines(body, _BUDGETS["grafana_get_dashboard_summary"], offset, reserve_tokens=300)
    text = "\n".join([*header, *untrusted_block("grafana dashboard", kept)])
    return ToolOutput(text, truncated=bool(next_cursor), next_cursor=next_cursor, total=len(d.panels))


# --- grafana_list_datasources -----------------------------------------------------------------------------
class ListDatasourcesParams(Params):
    pass


async def list_datasources(_p: ListDatasourcesParams, ctx: ToolContext) -> ToolOutput:
    client: GrafanaClient = ctx.client
    all_ds = await client.datasources()
    visible = [d for d in all_ds if in_scope(ctx, d.uid)]
    if allowed_uids(ctx) is not None:
        ctx.record.scoped(len(all_ds) - len(visible))
    if not visible:
        return ToolOutput("grafana datasources: none in scope", empty=True)
    rows = render_table(["uid", "name", "type", "default"],
                        ([d.uid, one_line(d.name, 60), d.type, "yes" if d.is_default else ""] for d in visible))
    return ToolOutput("\n".join([f"grafana datasources · {len(visible)}", *rows]), total=len(visible))


# --- grafana_query_prometheus -----------------------------------------------------------------------------
class QueryPrometheusParams(WindowParams):
    query: str = Field(min_length=1, max_length=2000, description="PromQL, e.g. "
                       "'sum by (version) (rate(http_requests_total{service=\"checkout\"}[5m]))'.")
    datasource_uid: str | None = Field(None, description=DS_UID.format(kind="prometheus"), max_length=64)
    instant: bool = Field(False, description="Evaluate once at 'to' instead of over the window.")
    step: str | None = Field(None, description="Range step, e.g. '1m'; default: about 120 points per window.",
                             max_length=16)
    points: int = Field(8, ge=0, le=60, description="Downsampled points per series (0 = summary only).")
    max_series: int = Field(10, ge=1, le=50, description="Series to show, highest average first.")


def _nice_step(seconds: float) -> float:
    for s in (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if seconds <= s:
            return float(s)
    return float(math.ceil(seconds / 86400) * 86400)


def _series_names(series: list[PromSeries]) -> tuple[dict[str, str], list[str]]:
    common = _common([s.labels for s in series])
    return common, [fmt_labels(s.labels, set(common)) or "{}" for s in series]


async def query_prometheus(p: QueryPrometheusParams, ctx: ToolContext) -> ToolOutput:
    start, end = resolve_window(p.from_, p.to, ctx.now)
    ds = await resolve_datasource(ctx, p.datasource_uid, PROM_TYPES)
    client: GrafanaClient = ctx.client
    if p.instant:
        kind, series = await client.prom_query(ds.uid, p.query, end)
        header = f"prometheus {ds.uid} · {p.query} · instant at {iso(end)}"
        if not series:
            return ToolOutput(f"{header}\nno series match", empty=True)
        if kind == "scalar":
            return ToolOutput(f"{header}\nscalar: {fmt_num(series[0].points[0][1])}")
        series.sort(key=lambda s: -s.points[0][1] if s.points and not math.isnan(s.points[0][1]) else math.inf)
        shown = series[: p.max_series]
        common, names = _series_names(shown)
        lines = [header + (f" · common labels: {fmt_labels(common)}" if common else ""),
                 *render_table(["series", "value"], ([n, fmt_num(s.points[0][1]) if s.points else "-"]
                                                     for n, s in zip(names, shown, strict=True)))]
        return _more(lines, len(series), len(shown))
    span = end - start
    try:
        step = parse_duration(p.step) if p.step else _nice_step(span.total_seconds() / 120)
    except ValueError as e:
        raise InvalidArguments(f"step: {e}") from None
    if step <= 0 or 2 * span.total_seconds() / step > 11000:
        raise InvalidArguments(f"step: {p.step} gives too many points for a {format_duration(span.total_seconds())} "
                               "window (Prometheus allows 11000)", hint="use a larger step, e.g. '1m' or '5m'")
    # One call covers this window and the previous one of the same length, for the change column.
    series = await client.prom_query_range(ds.uid, p.query, start - span, end, step)
    header = (f"prometheus {ds.uid} · {p.query} · {iso(start)} → {iso(end)} · step {format_duration(step)}"
              f" · change vs previous {format_duration(span.total_seconds())}")
    def describe(shown: list[PromSeries]) -> tuple[list[str], list[str]]:
        common, names = _series_names(shown)
        return ([f"common labels: {fmt_labels(common)}"] if common else []), names

    return series_table(header, series, points_of=lambda s: s.points, describe=describe, start=start,
                        points=p.points, max_series=p.max_series, more_hint=_MORE_HINT)


_MORE_HINT = "raise max_series or aggregate (sum by ...)"


def _more(lines: list[str], total: int, shown: int) -> ToolOutput:
    if total > shown:
        lines.append(f"{total - shown} more series not shown: {_MORE_HINT}")
    return ToolOutput("\n".join(lines), truncated=total > shown, total=total)


# --- grafana_prometheus_metadata --------------------------------------------------------------------------
class PrometheusMetadataParams(Params):
    kind: Literal["metrics", "labels", "label_values"] = Field(
        "metrics", description="metrics: metric names; labels: label names; label_values: values of 'label'.")
    label: str | None = Field(None, description="Label name, for kind=label_values.", max_length=128,
                              pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    match: str | None = Field(None, description="Series selector to narrow to, e.g. '{service=\"checkout\"}'.",
                              max_length=500)
    contains: str | None = Field(None, description="Keep values containing this text.", max_length=100)
    datasource_uid: str | None = Field(None, description=DS_UID.format(kind="prometheus"), max_length=64)
    limit: int = Field(200, ge=1, le=1000, description="Values per page.")
    cursor: str | None = Field(None, description=CURSOR)


async def prometheus_metadata(p: PrometheusMetadataParams, ctx: ToolContext) -> ToolOutput:
    if p.kind == "label_values" and not p.label:
        raise InvalidArguments("label: required when kind is label_values", hint="e.g. label='service'")
    offset = cursor_offset(p.cursor, tool="grafana_prometheus_metadata")
    ds = await resolve_datasource(ctx, p.datasource_uid, PROM_TYPES)
    client: GrafanaClient = ctx.client
    end = ctx.now
    start = end - timedelta(hours=24)
    if p.kind == "labels":
        values = await client.prom_labels(ds.uid, start, end, p.match)
        what = "label names"
    else:
        label = "__name__" if p.kind == "metrics" else str(p.label)
        values = await client.prom_label_values(ds.uid, label, start, end, p.match)
        what = "metric names" if p.kind == "metrics" else f"values of {label}"
    if p.contains:
        values = [v for v in values if p.contains.lower() in v.lower()]
    header = (f"prometheus {ds.uid} · {what} seen in the last 24h" + (f" · match {p.match}" if p.match else "")
              + (f" · containing {p.contains!r}" if p.contains else ""))
    if not values:
        return ToolOutput(f"{header}\nnone", empty=True)
    page = values[offset: offset + p.limit]
    budget_chars = int((_BUDGETS["grafana_prometheus_metadata"] - 200) * CHARS_PER_TOKEN)
    kept: list[str] = []
    used = 0
    for v in page:
        used += len(v) + 2
        if used > budget_chars:
            break
        kept.append(v)
    nxt = offset + len(kept)
    more = nxt < len(values)
    text = f"{header} · {offset + 1}-{nxt} of {len(values)}\n" + ", ".join(kept)
    return ToolOutput(text, truncated=more, total=len(values), next_cursor=encode_cursor({"o": nxt}) if more else None)


# --- grafana_query_loki -----------------------------------------------------------------------------------
class QueryLokiParams(WindowParams):
    query: str = Field(description="LogQL, e.g. '{service=\"checkout\", level=\"error\"} |= \"timeout\"'.",
                       min_length=1, max_length=2000)
    datasource_uid: str | None = Field(None, description=DS_UID.format(kind="loki"), max_length=64)
    limit: int = Field(50, ge=1, le=200, description="Log lines per page (newest first).")
    cursor: str | None = Field(None, description=CURSOR)


_SELECTOR = re.compile(r"\{(?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*\}")
_LEAD_TS = re.compile(r"^(?:ts|time|timestamp)=\"?\d{4}-\d\d-\d\d[T ][\d:.]+(?:Z|[+-]\d\d:?\d\d)?\"?\s+")
_ISO_TS = re.compile(r"\d{4}-\d\d-\d\d[T ][\d:.]+(?:Z|[+-]\d\d:?\d\d)?")
_QUOTED_MSG = re.compile(r'\b(msg|message)="((?:[^"\\]|\\.)*)"')


def _pattern_text(line: str) -> str:
    """What a line's pattern is taken from: no leading timestamp, the logfmt message unquoted."""
    return _ISO_TS.sub("", _QUOTED_MSG.sub(r"\1=\2", _LEAD_TS.sub("", line)))


def stream_selectors(query: str) -> list[str]:
    """The stream selectors in a LogQL query: what Loki's index stats endpoint accepts."""
    return list(dict.fromkeys(m.group(0) for m in _SELECTOR.finditer(query)))


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{int(n)} bytes"


async def loki_cost_guard(ctx: ToolContext, uid: str, query: str, start: datetime, end: datetime) -> None:
    """Refuse (enforce) or note in the audit (shadow) a Loki query over the configured range or bytes."""
    g = ctx.policy.guardrails
    if g.mode == "off":
        return
    enforce = g.mode != "shadow"  # unknown modes cannot load (typed policy); anything but shadow enforces
    span = (end - start).total_seconds()
    max_range = parse_duration(g.loki_max_range)
    problems: list[tuple[str, str, str]] = []
    if span > max_range:
        problems.append((
            "guardrails.loki_max_range",
            f"window of {format_duration(span)} exceeds loki_max_range {g.loki_max_range}",
            f"narrow from/to to at most {g.loki_max_range} (e.g. from='now-1h'), then page with the cursor",
        ))
    else:
        selectors = stream_selectors(query)
        if not selectors:
            raise InvalidArguments("query: no stream selector such as {service=\"checkout\"} found",
                                   hint="LogQL queries start with a stream selector in braces")
        client: GrafanaClient = ctx.client
        total = 0
        for sel in selectors:
            total += (await client.loki_index_stats(uid, sel, start, end)).bytes
        if total > g.loki_max_bytes:
            fits = span * g.loki_max_bytes / total
            problems.append((
                "guardrails.loki_max_bytes",
                f"query would scan about {_gb(total)} (index stats) over {format_duration(span)}, "
                f"more than loki_max_bytes {_gb(g.loki_max_bytes)}",
                f"narrow the window to about {format_duration(max(60.0, fits // 60 * 60))}, or add label matchers "
                "to the stream selector (e.g. level=\"error\"); line filters (|=) do not reduce what is scanned",
            ))
        else:
            ctx.record.notes["loki_est_bytes"] = str(total)
    for rule_id, what, advice in problems:
        if enforce:
            raise PolicyDenied(f"Loki cost guard: {what}", rule_id=rule_id, hint=advice)
        ctx.record.notes[rule_id] = f"shadow: {what}"


def _shown_text(e: LogEntry) -> str:
    """The line without its leading timestamp and without leading ``key=value`` fields that repeat one
    of the entry's stream labels: both are shown already (time column, labels)."""
    line = _LEAD_TS.sub("", e.line)
    prefixes = [f"{k}={v} " for k, v in e.labels.items()]
    while (hit := next((p for p in prefixes if line.startswith(p)), None)) is not None:
        line = line[len(hit):]
    return line


def _entry_line(e: LogEntry, vary: list[str], text: str) -> str:
    """``hh:mm:ss <varying label values> | line`` (``text``: the entry's ``_shown_text``)."""
    when = short_time(datetime.fromtimestamp(e.ts_ns / 1e9, UTC))
    lab = " ".join(e.labels.get(k, "-") for k in vary)
    return f"{when} {lab} | {one_line(text, 300)}".replace("  |", " |")


async def query_loki(p: QueryLokiParams, ctx: ToolContext) -> ToolOutput:
    start, end = resolve_window(p.from_, p.to, ctx.now)
    state = decode_cursor(p.cursor, tool="grafana_query_loki") if p.cursor else {}
    end_ns = state.get("e")
    skip = state.get("k", 0)
    if p.cursor and not (isinstance(end_ns, int) and isinstance(skip, int) and skip >= 0):
        raise InvalidArguments("cursor: not a cursor this tool issued (grafana_query_loki)",
                               hint="pass the next_cursor value unchanged, or omit it")
    ds = await resolve_datasource(ctx, p.datasource_uid, LOKI_TYPES)
    await loki_cost_guard(ctx, ds.uid, p.query, start, end)
    client: GrafanaClient = ctx.client
    # limit+1 (plus lines already shown at the cursor's timestamp) tells us whether more exist.
    res = await client.loki_query_range(ds.uid, p.query, start, end, limit=p.limit + 1 + skip, end_ns=end_ns,
                                        step_s=_nice_step((end - start).total_seconds() / 60))
    header = f"loki {ds.uid} · {p.query} · {iso(start)} → {iso(end)}"
    if res.kind != "streams":
        return _loki_metric(header, res.series)
    entries = res.entries
    if skip and end_ns:  # lines at the cursor's timestamp come first (newest first); drop those shown
        drop = 0
        while drop < min(skip, len(entries)) and entries[drop].ts_ns == end_ns - 1:
            drop += 1
        entries = entries[drop:]
    more = len(entries) > p.limit
    entries = entries[: p.limit]
    if not entries:
        return ToolOutput(f"{header}\nno log lines match in this window", empty=True)
    common = _common([e.labels for e in entries]) if len(entries) > 1 else dict(entries[0].labels)
    vary = sorted({k for e in entries for k in e.labels} - set(common))
    texts = [_shown_text(e) for e in entries]
    patterns = message_patterns((_pattern_text(t) for t in texts), top=5)
    pattern_lines = ["top patterns on this page (count, pattern):", *(f"  {n}× {pat}" for pat, n in patterns)]
    body = [_entry_line(e, vary, t) for e, t in zip(entries, texts, strict=True)]
    kept, cut = fit_lines(body, _BUDGETS["grafana_query_loki"],
                          reserve_tokens=300 + sum(len(x) for x in pattern_lines) // 3)
    shown = entries[: len(kept)]
    next_cursor = None
    if cut or more:
        last = shown[-1].ts_ns
        same = sum(1 for e in shown if e.ts_ns == last)
        # Loki's end is exclusive: continue from the last shown timestamp, skipping lines already shown there.
        carried = skip if end_ns == last + 1 else 0
        next_cursor = encode_cursor({"e": last + 1, "k": same + carried})
    head = [f"{header} · newest first · {len(shown)} lines",
            *([f"common labels: {fmt_labels(common)}"] if common else []),
            *([f"columns: time {' '.join(vary)} | line"] if vary else [])]
    text = "\n".join([*head, *pattern_lines, *untrusted_block("loki logs", kept)])
    return ToolOutput(text, truncated=bool(next_cursor), next_cursor=next_cursor)


def _loki_metric(header: str, series: list[PromSeries]) -> ToolOutput:
    if not series:
        return ToolOutput(f"{header}\nno data points in this window", empty=True)
    rows = []
    summaries = [(s, summarize_series([v for _, v in s.points])) for s in series]
    ranked = sorted(((s, m) for s, m in summaries if m), key=lambda x: -x[1].avg)
    common, names = _series_names([s for s, _ in ranked])
    for (_s, m), name in zip(ranked[:20], names, strict=False):
        rows.append([name, fmt_num(m.min), fmt_num(m.max), fmt_num(m.avg), fmt_num(m.last)])
    lines = [f"{header} · metric query", *([f"common labels: {fmt_labels(common)}"] if common else []),
             *render_table(["series", "min", "max", "avg", "last"], rows)]
    return _more(lines, len(ranked), min(20, len(ranked)))


# --- grafana_list_alerts ----------------------------------------------------------------------------------
class ListAlertsParams(Params):
    state: Literal["firing", "pending", "all"] = Field("all", description="Rules to list by state.")
    query: str = Field("", description="Text in the rule name, labels or folder.", max_length=200)
    limit: int = Field(30, ge=1, le=100, description="Rules per page.")
    cursor: str | None = Field(None, description=CURSOR)


_HIDDEN = {"alertname", "grafana_folder", "__alert_rule_uid__", "__alert_rule_namespace_uid__"}


def _rule_lines(rule: AlertRule, now: datetime) -> list[str]:
    since = f" since {iso(rule.active_at)} ({_age(now, rule.active_at)})" if rule.active_at else ""
    ds = f" · ds {','.join(rule.datasource_uids)}" if rule.datasource_uids else ""
    health = f" · health {rule.health}: {one_line(rule.last_error, 160)}" if rule.health not in ("", "ok") else ""
    out = [f"{rule.name} · {rule.state}{since} · {rule.folder}/{rule.group} · "
           f"{fmt_labels(rule.labels, _HIDDEN) or '-'}{ds}{health}"]
    if rule.query:
        out.append(f"  query: {one_line(rule.query, 300)}")
    summary = rule.annotations.get("summary") or rule.annotations.get("description")
    if summary:
        out.append(f"  summary: {one_line(summary, 200)}")
    if rule.annotations.get("runbook_url"):
        out.append(f"  runbook: {rule.annotations['runbook_url']}")
    active = [i for i in rule.instances if instance_state(i.state) not in ("normal", "inactive")]
    for inst in active[:10]:
        at = f" since {iso(inst.active_at)}" if inst.active_at and inst.active_at != rule.active_at else ""
        labels = fmt_labels({k: v for k, v in inst.labels.items() if rule.labels.get(k) != v}, _HIDDEN)
        value = f" · {one_line(inst.value, 80)}" if inst.value else ""
        out.append(f"  {instance_state(inst.state)}{at} · {labels or '-'}{value}")
    if len(active) > 10:
        out.append(f"  … {len(active) - 10} more instances")
    return out


async def list_alerts(p: ListAlertsParams, ctx: ToolContext) -> ToolOutput:
    offset = cursor_offset(p.cursor, tool="grafana_list_alerts")
    client: GrafanaClient = ctx.client
    rules = await client.alert_rules(None if p.state == "all" else [p.state])
    if allowed_uids(ctx) is None:
        visible = rules
    else:  # under a scope a rule is shown only when every datasource it queries is known and in scope
        queried = [[u for u in r.datasource_uids if u != "__expr__"] for r in rules]
        visible = [r for r, uids in zip(rules, queried, strict=True) if uids and all(in_scope(ctx, u) for u in uids)]
        ctx.record.scoped(len(rules) - len(visible))
    if p.state != "all":
        visible = [r for r in visible if r.state == p.state]
    if p.query:
        q = p.query.lower()
        visible = [r for r in visible if q in f"{r.name} {r.folder} {fmt_labels(r.labels)}".lower()]
    order = {"firing": 0, "pending": 1, "recovering": 2}
    visible.sort(key=lambda r: (order.get(r.state, 3), r.name))
    firing = sum(1 for r in visible if r.state == "firing")
    header = f"grafana alert rules · state {p.state} · {len(visible)} rules · {firing} firing"
    if not visible:
        return ToolOutput(f"{header}\nno alert rules match", empty=True)
    page = visible[offset: offset + p.limit]
    blocks = [_rule_lines(r, ctx.now) for r in page]
    limit_chars = int((_BUDGETS["grafana_list_alerts"] - 300) * CHARS_PER_TOKEN)
    lines: list[str] = []
    used = taken = 0
    for block in blocks:
        size = sum(len(x) + 1 for x in block)
        if lines and used + size > limit_chars:
            break
        lines += block
        used += size
        taken += 1
    nxt = offset + taken
    more = nxt < len(visible)
    text = "\n".join([header, *untrusted_block("grafana alert rules", lines)])
    return ToolOutput(text, truncated=more, total=len(visible), next_cursor=encode_cursor({"o": nxt}) if more else None)


# --- grafana_get_annotations ------------------------------------------------------------------------------
class GetAnnotationsParams(WindowParams):
    tags: list[str] = Field(default_factory=list, max_length=5,
                            description="Only annotations with all these tags, e.g. ['deploy'].")
    dashboard_uid: str | None = Field(None, description="Only this dashboard's annotations.", max_length=64)
    limit: int = Field(50, ge=1, le=200, description="Annotations per page (newest first).")
    cursor: str | None = Field(None, description=CURSOR)


async def get_annotations(p: GetAnnotationsParams, ctx: ToolContext) -> ToolOutput:
    start, end = resolve_window(p.from_, p.to, ctx.now)
    state = decode_cursor(p.cursor, tool="grafana_get_annotations") if p.cursor else {}
    page_end = datetime.fromtimestamp(state["t"] / 1000, end.tzinfo) if isinstance(state.get("t"), int) else end
    skip = int(state.get("k", 0)) if isinstance(state.get("k"), int) else 0
    client: GrafanaClient = ctx.client
    items = await client.annotations(start, page_end, tags=p.tags, limit=p.limit + 1 + skip,
                                     dashboard_uid=p.dashboard_uid)
    items = [a for a in items if a.time is not None]
    items.sort(key=lambda a: a.time or start, reverse=True)
    if skip:  # annotations at the cursor's time come first; drop those already shown
        drop = 0
        while drop < min(skip, len(items)) and items[drop].time == page_end:
            drop += 1
        items = items[drop:]
    more = len(items) > p.limit
    items = items[: p.limit]
    header = f"grafana annotations · {iso(start)} → {iso(end)}" + (f" · tags {','.join(p.tags)}" if p.tags else "")
    if not items:
        return ToolOutput(f"{header}\nno annotations in this window", empty=True)
    rows = []
    for a in items:
        assert a.time is not None
        what = f"alert {a.alert_name} → {a.new_state}" if a.alert_name else one_line(a.text, 240)
        rows.append([iso(a.time), iso(a.time_end) if a.time_end else "", ",".join(a.tags), what])
    if not any(r[1] for r in rows):  # no regions: drop the empty end column
        rows = [[r[0], *r[2:]] for r in rows]
    table = render_table(["time", "end", "tags", "text"] if len(rows[0]) == 4 else ["time", "tags", "text"], rows)
    next_cursor = None
    if more:
        last = items[-1].time
        assert last is not None
        next_cursor = encode_cursor({"t": int(last.timestamp() * 1000),
                                     "k": sum(1 for a in items if a.time == last)})
    text = "\n".join([f"{header} · {len(items)} shown, newest first", *untrusted_block("grafana annotations", table)])
    return ToolOutput(text, truncated=more, next_cursor=next_cursor)


_BUDGETS = {
    "grafana_search_dashboards": 2000,
    "grafana_get_dashboard_summary": 4000,
    "grafana_list_datasources": 1500,
    "grafana_query_prometheus": 4000,
    "grafana_prometheus_metadata": 2500,
    "grafana_query_loki": 6000,
    "grafana_list_alerts": 3000,
    "grafana_get_annotations": 3000,
}


def _spec(name: str, title: str, description: str, params: type[Params], fn: ToolFn) -> ToolSpec:
    return ToolSpec(name=name, toolset="grafana", access="read", title=title, description=description,
                    params=params, fn=fn, budget_tokens=_BUDGETS[name])


TOOLS = (
    _spec("grafana_search_dashboards", "Search Grafana dashboards",
          "Find dashboards by title words and tags: uid, title, folder, tags.", SearchDashboardsParams,
          search_dashboards),
    _spec("grafana_get_dashboard_summary", "Summarize a Grafana dashboard",
          "A dashboard's variables and panels with their queries and datasources (not the raw JSON).",
          DashboardSummaryParams, get_dashboard_summary),
    _spec("grafana_list_datasources", "List Grafana datasources", "Datasources in scope: uid, name, type.",
          ListDatasourcesParams, list_datasources),
    _spec("grafana_query_prometheus", "Query Prometheus via Grafana",
          "Run PromQL over a window (or instant). Per series: min/max/avg/last, change against the previous "
          "window, a few points.", QueryPrometheusParams, query_prometheus),
    _spec("grafana_prometheus_metadata", "Prometheus metric and label names",
          "Metric names, label names, or one label's values seen in the last 24h.", PrometheusMetadataParams,
          prometheus_metadata),
    _spec("grafana_query_loki", "Query Loki logs via Grafana",
          "Run LogQL over a window: compact lines newest first with top patterns, or series for metric "
          "queries. Cost-guarded by policy.", QueryLokiParams, query_loki),
    _spec("grafana_list_alerts", "List Grafana alert rules",
          "Alert rules with state, since-when, labels, and their firing/pending instances.", ListAlertsParams,
          list_alerts),
    _spec("grafana_get_annotations", "Get Grafana annotations",
          "Deploy, incident and alert-state markers in a window.", GetAnnotationsParams, get_annotations),
)

TOOLSET = Toolset(
    name="grafana",
    upstream=UPSTREAM,
    access="read",
    instructions="grafana_*: dashboards, Prometheus (PromQL), Loki (LogQL), alerts, annotations; "
    "datasource_uid defaults to the default datasource of the type.",
    tools=TOOLS,
    make_client=make_client,
    routes=ROUTES,
    env_vars=("GRAFANA_URL", "GRAFANA_SERVICE_ACCOUNT_TOKEN", "GRAFANA_ORG_ID"),
)
