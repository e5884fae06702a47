"""Typed views of Grafana, Prometheus and Loki responses: only the fields tools render. Parsing is pure."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from servers._core.errors import UpstreamError
from servers._core.timeparse import parse_lenient_dt as parse_dt


def prom_float(v: Any) -> float:
    """Prometheus sample values are strings: '1.5', 'NaN', '+Inf'."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


# --- Grafana -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DashboardHit:
    uid: str
    title: str
    folder: str
    tags: list[str]


def parse_search(body: Any) -> list[DashboardHit]:
    out = []
    for h in body if isinstance(body, list) else []:
        if not isinstance(h, dict) or h.get("type") not in (None, "dash-db"):
            continue
        out.append(DashboardHit(str(h.get("uid") or ""), str(h.get("title") or ""),
                                str(h.get("folderTitle") or "General"), [str(t) for t in h.get("tags") or []]))
    return out


@dataclass(frozen=True)
class Datasource:
    uid: str
    name: str
    type: str
    is_default: bool = False


def parse_datasource(d: dict[str, Any]) -> Datasource:
    return Datasource(str(d.get("uid") or ""), str(d.get("name") or ""), str(d.get("type") or ""),
                      bool(d.get("isDefault")))


def parse_datasources(body: Any) -> list[Datasource]:
    return [parse_datasource(d) for d in (body if isinstance(body, list) else []) if isinstance(d, dict)]


@dataclass(frozen=True)
class Target:
    ref: str
    expr: str
    ds_uid: str  # resolved datasource uid ('' when unknown)


@dataclass(frozen=True)
class Panel:
    id: int
    title: str
    type: str
    row: str
    ds_uid: str
    targets: list[Target]


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    current: str
    query: str


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    folder: str
    tags: list[str]
    version: int
    updated: datetime | None
    variables: list[Variable]
    panels: list[Panel]
    description: str = ""


_VAR_REF = re.compile(r"^\$\{?(\w+)(?::\w+)?\}?$")


def _query_text(t: dict[str, Any]) -> str:
    for key in ("expr", "query", "rawSql", "rawQuery", "target"):
        v = t.get(key)
        if isinstance(v, str) and v.strip():
            return v
    return ""


def parse_dashboard(body: dict[str, Any]) -> Dashboard:
    dash = body.get("dashboard") or {}
    meta = body.get("meta") or {}
    variables: list[Variable] = []
    ds_vars: dict[str, str] = {}
    for v in ((dash.get("templating") or {}).get("list")) or []:
        if not isinstance(v, dict):
            continue
        cur = v.get("current") or {}
        value = cur.get("value") if isinstance(cur, dict) else None
        if isinstance(value, list):
            value = ",".join(str(x) for x in value)
        query = v.get("query")
        if isinstance(query, dict):
            query = query.get("query") or ""
        var = Variable(str(v.get("name") or ""), str(v.get("type") or ""), str(value or ""), str(query or ""))
        variables.append(var)
        if var.type == "datasource":
            ds_vars[var.name] = var.current

    def ds_uid(ref: Any) -> str:
        uid = ref.get("uid") if isinstance(ref, dict) else ref
        if not isinstance(uid, str):
            return ""
        m = _VAR_REF.match(uid)
        return ds_vars.get(m.group(1), "") if m else uid

    panels: list[Panel] = []

    def walk(items: list[Any], row: str) -> None:
        for p in items:
            if not isinstance(p, dict):
                continue
            if p.get("type") == "row":
                walk(p.get("panels") or [], str(p.get("title") or ""))
                continue
            pds = ds_uid(p.get("datasource"))
            targets = []
            for t in p.get("targets") or []:
                if isinstance(t, dict) and (text := _query_text(t)):
                    targets.append(Target(str(t.get("refId") or ""), text, ds_uid(t.get("datasource")) or pds))
            panels.append(Panel(int(p.get("id") or 0), str(p.get("title") or ""), str(p.get("type") or ""), row,
                                pds, targets))

    walk(dash.get("panels") or [], "")
    return Dashboard(
        uid=str(dash.get("uid") or ""),
        title=str(dash.get("title") or ""),
        folder=str(meta.get("folderTitle") or "General"),
        tags=[str(t) for t in dash.get("tags") or []],
        version=int(dash.get("version") or 0),
        updated=parse_dt(meta.get("updated")),
        variables=variables,
        panels=panels,
        description=str(dash.get("description") or ""),
    )


@dataclass(frozen=True)
class Annotation:
    time: datetime | None
    time_end: datetime | None
    tags: list[str]
    text: str
    alert_name: str
    new_state: str
    dashboard_uid: str


def parse_annotations(body: Any) -> list[Annotation]:
    out = []
    for a in body if isinstance(body, list) else []:
        if not isinstance(a, dict):
            continue
        start, end = parse_dt(a.get("time")), parse_dt(a.get("timeEnd"))
        out.append(Annotation(start, end if end and start and end > start else None,
                              [str(t) for t in a.get("tags") or []], str(a.get("text") or ""),
                              str(a.get("alertName") or ""), str(a.get("newState") or ""),
                              str(a.get("dashboardUID") or "")))
    return out


@dataclass(frozen=True)
class AlertInstance:
    labels: dict[str, str]
    state: str  # Grafana's: Alerting, Pending, Normal, NoData, Error, Recovering (+ " (reason)")
    active_at: datetime | None
    value: str


@dataclass(frozen=True)
class AlertRule:
    uid: str
    name: str
    state: str  # firing | pending | inactive | recovering
    health: str
    folder: str
    group: str
    labels: dict[str, str]
    annotations: dict[str, str]
    active_at: datetime | None
    datasource_uids: list[str]
    instances: list[AlertInstance] = field(default_factory=list)
    last_error: str = ""
    query: str = ""  # the data queries' expressions joined by " | " (Grafana's rendering)


def _labels(v: Any) -> dict[str, str]:
    return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else {}


def parse_rules(body: Any) -> list[AlertRule]:
    if not isinstance(body, dict) or body.get("status") == "error":
        err = body.get("error") if isinstance(body, dict) else None
        raise UpstreamError(f"grafana alert rules request failed: {err or 'unexpected response'}")
    out = []
    for g in ((body.get("data") or {}).get("groups")) or []:
        for r in g.get("rules") or []:
            if r.get("type") not in (None, "alerting"):
                continue  # recording rules have no alerts
            instances = [AlertInstance(_labels(a.get("labels")), str(a.get("state") or ""),
                                       parse_dt(a.get("activeAt")), str(a.get("value") or ""))
                         for a in r.get("alerts") or [] if isinstance(a, dict)]
            out.append(AlertRule(
                uid=str(r.get("uid") or ""), name=str(r.get("name") or ""), state=str(r.get("state") or ""),
                health=str(r.get("health") or ""), folder=str(g.get("file") or ""), group=str(g.get("name") or ""),
                labels=_labels(r.get("labels")), annotations=_labels(r.get("annotations")),
                active_at=parse_dt(r.get("activeAt")),
                datasource_uids=[str(u) for u in r.get("queriedDatasourceUIDs") or []],
                instances=instances, last_error=str(r.get("lastError") or ""), query=str(r.get("query") or ""),
            ))
    return out


def instance_state(state: str) -> str:
    """Grafana's instance state ('Alerting (Error)') as a rule-level word: firing, pending, normal..."""
    base = state.split(" ", 1)[0].lower()
    return {"alerting": "firing"}.get(base, base)


# --- Prometheus / Loki (through the datasource proxy) --------------------------------------------
@dataclass(frozen=True)
class PromSeries:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (epoch seconds, value)


def _prom_data(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("status") != "success":
        err = body.get("error") if isinstance(body, dict) else None
        raise UpstreamError(f"{what} failed: {err or 'unexpected response'}")
    data = body.get("data")
    return data if isinstance(data, dict) else {"result": data}


def parse_prom_result(body: Any, what: str = "prometheus query") -> tuple[str, list[PromSeries]]:
    """(resultType, series). Instant vectors become one-point series; scalars one unlabelled series."""
    data = _prom_data(body, what)
    kind = str(data.get("resultType") or "")
    result = data.get("result")
    if kind in ("scalar", "string"):
        t, v = result if isinstance(result, list) and len(result) == 2 else (0, "NaN")
        return kind, [PromSeries({}, [(float(t), prom_float(v))])]
    out = []
    for s in result or []:
        labels = _labels(s.get("metric") or s.get("stream"))
        if "values" in s:
            pts = [(float(p[0]), prom_float(p[1])) for p in s.get("values") or [] if len(p) == 2]
        elif "value" in s:
            p = s["value"]
            pts = [(float(p[0]), prom_float(p[1]))]
        else:
            pts = []
        out.append(PromSeries(labels, pts))
    return kind, out


def parse_prom_strings(body: Any, what: str) -> list[str]:
    data = _prom_data(body, what)
    return [str(x) for x in data.get("result") or []]


@dataclass(frozen=True)
class LogEntry:
    ts_ns: int
    labels: dict[str, str]
    line: str


@dataclass(frozen=True)
class LokiResult:
    kind: str  # streams | matrix | vector
    entries: list[LogEntry]  # newest first (streams)
    series: list[PromSeries]  # matrix / vector


def parse_loki(body: Any) -> LokiResult:
    data = _prom_data(body, "loki query")
    kind = str(data.get("resultType") or "")
    if kind != "streams":
        _, series = parse_prom_result(body, "loki query")
        return LokiResult(kind, [], series)
    entries = []
    for s in data.get("result") or []:
        labels = _labels(s.get("stream"))
        for v in s.get("values") or []:
            if len(v) >= 2:
                try:
                    entries.append(LogEntry(int(v[0]), labels, str(v[1])))
                except ValueError:
                    continue
    entries.sort(key=lambda e: e.ts_ns, reverse=True)
    return LokiResult(kind, entries, [])


@dataclass(frozen=True)
class IndexStats:
    streams: int
    chunks: int
    entries: int
    bytes: int


def parse_index_stats(body: Any) -> IndexStats:
    if not isinstance(body, dict):
        raise UpstreamError("loki index stats: unexpected response")
    d = body.get("data") if isinstance(body.get("data"), dict) else body

    def n(key: str) -> int:
        try:
            return int(d.get(key) or 0)
        except (TypeError, ValueError):
            return 0

    return IndexStats(n("streams"), n("chunks"), n("entries"), n("bytes"))
