"""HTTP handlers of the sandbox's APM, Error Tracking, monitor, incident, event and dashboard APIs.

Real paths and request shapes (checked against Datadog's specs in the tests), Datadog's error
bodies (``{"errors": [...]}``), cursor / offset / page pagination as each endpoint does it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from servers._core.fakekit import compile_search, json_body, page_cursor, page_offset
from servers._core.world import World
from servers.datadog import fake_apm as apm
from servers.datadog import fake_ops as ops

Guard = Callable[[Request], Response | None]
Ok = Callable[[Any], JSONResponse]
Handler = Callable[[Request], Awaitable[Response]]
BodyHandler = Callable[[Request, dict[str, Any]], Awaitable[Response]]


def _bad(msg: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"errors": [msg]}, status)


def fake_time(v: Any, now: datetime) -> datetime:
    """A Datadog request time: epoch ms (number or digits), ``now`` / ``now-15m``, or ISO 8601."""
    if isinstance(v, int | float):
        return datetime.fromtimestamp(v / 1000, UTC)
    s = str(v)
    if s.startswith("now"):
        m = re.match(r"now-(\d+)([smhdw])", s)
        if not m:
            return now
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return now - timedelta(seconds=int(m.group(1)) * mult)
    if s.isdigit():
        return datetime.fromtimestamp(int(s) / 1000, UTC)
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def json_route(guard: Guard) -> Callable[[BodyHandler], Handler]:
    """A POST handler taking the JSON object body, after the auth/fault guard; anything else is a 400."""
    def wrap(fn: BodyHandler) -> Handler:
        async def handler(request: Request) -> Response:
            if (bad := guard(request)) is not None:
                return bad
            body = await json_body(request)
            if not isinstance(body, dict):
                return _bad("Malformed request body")
            return await fn(request, body)
        return handler
    return wrap


def page_window(page: dict[str, Any], max_limit: int) -> tuple[int, int] | Response:
    """(offset, limit) of a ``page`` with ``limit`` and an offset ``cursor``, or the 400 Datadog answers."""
    limit = int(page.get("limit", 10))
    if not 1 <= limit <= max_limit:
        return _bad(f"page[limit] must be between 1 and {max_limit}")
    offset = page_offset(page.get("cursor"))
    if offset < 0:
        return _bad("Invalid cursor")
    return offset, limit


_TRACE_TERM = re.compile(r"(?:^|\s)@?trace_id:(\d+)(?:\s|$)")


def _matching_spans(world: World, f: dict[str, Any], newest_first: bool) -> Iterator[dict[str, Any]]:
    now = world.now()
    start, end = fake_time(f.get("from", "now-15m"), now), fake_time(f.get("to", "now"), now)
    query = f.get("query") or "*"
    match = compile_search(query)
    m = _TRACE_TERM.search(query)
    for span in apm.spans_between(world, start, end, newest_first=newest_first, only_trace=m.group(1) if m else None):
        if match(apm.span_fields(span), apm.span_text(span)):
            yield span


def routes(world: World, guard: Guard, ok: Ok) -> list[Route]:
    with_body = json_route(guard)

    # --- spans -----------------------------------------------------------------------------
    @with_body
    async def spans_search(request: Request, body: dict[str, Any]) -> Response:
        data = body.get("data")
        if not isinstance(data, dict) or data.get("type") != "search_request":
            return _bad("data.type must be 'search_request'")
        a = data.get("attributes") or {}
        page = a.get("page") or {}
        if isinstance(window := page_window(page, 1000), Response):
            return window
        offset, limit = window
        try:
            spans = list(islice(_matching_spans(world, a.get("filter") or {}, a.get("sort") != "timestamp"),
                                offset, offset + limit + 1))
        except ValueError as e:
            return _bad(f"Invalid time: {e}")
        meta: dict[str, Any] = {"status": "done", "elapsed": 37, "request_id": "sandbox"}
        if len(spans) > limit:
            meta["page"] = {"after": page_cursor(offset + limit)}
        return ok({"data": spans[:limit], "meta": meta})

    @with_body
    async def spans_aggregate(request: Request, body: dict[str, Any]) -> Response:
        data = body.get("data")
        if not isinstance(data, dict) or data.get("type") != "aggregate_request":
            return _bad("data.type must be 'aggregate_request'")
        a = data.get("attributes") or {}
        facets = [g["facet"] for g in a.get("group_by") or []]
        limit = min(int((a.get("group_by") or [{}])[0].get("limit", 10)) if facets else 1, 10000)
        compute = (a.get("compute") or [{"aggregation": "count"}])[0]
        if compute.get("aggregation") != "count":
            return _bad("the sandbox computes count only")
        groups: dict[tuple[Any, ...], int] = {}
        for span in _matching_spans(world, a.get("filter") or {}, True):
            fields = apm.span_fields(span)
            key = tuple(fields.get(fc.lstrip("@")) or "N/A" for fc in facets)
            groups[key] = groups.get(key, 0) + 1
        buckets = [{"type": "bucket", "attributes": {"by": dict(zip(facets, k, strict=True)), "computes": {"c0": v}}}
                   for k, v in sorted(groups.items(), key=lambda kv: -kv[1])[:limit]]
        return ok({"data": buckets, "meta": {"status": "done", "elapsed": 21, "request_id": "sandbox"}})

    # --- error tracking --------------------------------------------------------------------
    @with_body
    async def issues_search(request: Request, body: dict[str, Any]) -> Response:
        data = body.get("data") or {}
        a = data.get("attributes") if isinstance(data, dict) else None
        if data.get("type") != "search_request" or not isinstance(a, dict):
            return _bad("data.type must be 'search_request' with attributes")
        missing = [k for k in ("query", "from", "to") if k not in a]
        if missing:
            return _bad(f"missing required attribute(s): {', '.join(missing)}")
        if not a.get("track") and not a.get("persona"):
            return _bad("either track or persona must be specified")
        start, end = fake_time(int(a["from"]), world.now()), fake_time(int(a["to"]), world.now())
        counts = apm.issue_counts(world, start, end)
        defs = apm.issue_defs(world)
        match = compile_search(a.get("query") or "*")
        found = []
        for iid, n in counts.items():
            d = defs[iid]
            attrs = apm.issue_attributes(world, d)
            fields = {"service": d.service, "error.type": d.error_type, "error.message": d.message,
                      "issue.id": d.id, "version": attrs["last_seen_version"], "env": "prod"}
            if match(fields, f"{d.error_type} {d.message} {d.file_path}"):
                found.append((d, attrs, n))
        order = a.get("order_by", "TOTAL_COUNT")
        found.sort(key=lambda x: -x[1]["first_seen"] if order == "FIRST_SEEN" else -x[2])
        found = found[:100]
        include = request.query_params.get("include", "")
        out: dict[str, Any] = {"data": [{
            "id": d.id, "type": "error_tracking_search_result",
            "attributes": {"total_count": n, "impacted_users": max(1, n // 3), "impacted_sessions": max(1, n // 2)},
            "relationships": {"issue": {"data": {"id": d.id, "type": "issue"}}}} for d, _a, n in found]}
        if "issue" in include.split(","):
            out["included"] = [{"id": d.id, "type": "issue", "attributes": attrs} for d, attrs, _n in found]
        return ok(out)

    async def issue_get(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        d = apm.issue_defs(world).get(request.path_params["issue_id"])
        if d is None:
            return _bad("Issue not found", 404)
        return ok({"data": apm.issue_resource(world, d)})

    # --- monitors --------------------------------------------------------------------------
    async def monitor_search(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        q = request.query_params
        try:
            page, per_page = int(q.get("page", 0)), int(q.get("per_page", 30))
        except ValueError:
            return _bad("page and per_page must be integers")
        if per_page > 1000 or per_page < 1 or page < 0:
            return _bad("per_page must be between 1 and 1000")
        match = _monitor_matcher(q.get("query", ""))
        hits = [r for r in (ops.monitor_search_result(world, d) for d in ops.MONITORS) if match(r)]
        hits.sort(key=lambda r: r["name"])
        chunk = hits[page * per_page:(page + 1) * per_page]
        counts: dict[str, dict[str, int]] = {"status": {}, "type": {}, "tag": {}}
        for r in hits:
            counts["status"][r["status"]] = counts["status"].get(r["status"], 0) + 1
            counts["type"]["metric"] = counts["type"].get("metric", 0) + 1
            for t in r["tags"]:
                counts["tag"][t] = counts["tag"].get(t, 0) + 1
        return ok({
            "monitors": chunk,
            "metadata": {"page": page, "per_page": per_page, "total_count": len(hits),
                         "page_count": max(1, -(-len(hits) // per_page))},
            "counts": {k: [{"name": n, "count": c} for n, c in v.items()] for k, v in counts.items()},
        })

    async def monitor_get(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        raw = request.path_params["monitor_id"]
        if not raw.isdigit():
            return _bad("monitor_id must be an integer")
        d = next((m for m in ops.MONITORS if m.id == int(raw)), None)
        if d is None:
            return _bad("Monitor not found", 404)
        gs = request.query_params.get("group_states", "")
        return ok(ops.monitor_resource(world, d, group_states=bool(gs)))

    # --- incidents -------------------------------------------------------------------------
    async def incidents_search(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        q = request.query_params
        if not q.get("query"):
            return _bad("query is required")
        try:
            size, offset = int(q.get("page[size]", 10)), int(q.get("page[offset]", 0))
        except ValueError:
            return _bad("page[size] and page[offset] must be integers")
        if not 1 <= size <= 100:
            return _bad("page[size] must be between 1 and 100")
        match = compile_search(q["query"].replace(" AND ", " "))
        hits = [d for d in ops.INCIDENTS
                if any(match(f, d.title) for f in ops.incident_fields(world, d))]
        hits.sort(key=lambda d: d.declared(world), reverse=q.get("sort", "-created") != "created")
        chunk = hits[offset:offset + size]
        states: dict[str, int] = {}
        sevs: dict[str, int] = {}
        for d in hits:
            st, _ = ops.incident_state(world, d)
            states[st] = states.get(st, 0) + 1
            sevs[d.severity] = sevs.get(d.severity, 0) + 1
        return ok({"data": {"type": "incidents_search_results", "attributes": {
            "incidents": [{"data": ops.incident_resource(world, d)} for d in chunk],
            "facets": {"state": [{"name": k, "count": v} for k, v in states.items()],
                       "severity": [{"name": k, "count": v} for k, v in sevs.items()]},
            "total": len(hits)}},
            **({"included": [ops.user_resource(h) for h in sorted({d.commander for d in chunk})]}
               if "users" in q.get("include", "") else {}),
            "meta": {"pagination": {"offset": offset, "size": size,
                                    "next_offset": offset + size if offset + size < len(hits) else None}}})

    def incident_or_404(request: Request) -> tuple[ops.IncidentDef | None, Response | None]:
        if (bad := guard(request)) is not None:
            return None, bad
        d = ops.find_incident(request.path_params["incident_id"])
        if d is None:
            return None, _bad("Incident not found", 404)
        return d, None

    async def incident_get(request: Request) -> Response:
        d, bad = incident_or_404(request)
        if bad is not None:
            return bad
        assert d is not None
        out: dict[str, Any] = {"data": ops.incident_resource(world, d)}
        if "users" in request.query_params.get("include", "").split(","):
            out["included"] = [ops.user_resource(d.commander)]
        return ok(out)

    async def incident_impacts(request: Request) -> Response:
        d, bad = incident_or_404(request)
        if bad is not None:
            return bad
        assert d is not None
        return ok({"data": ops.incident_impacts(world, d)})

    async def incident_todos(request: Request) -> Response:
        d, bad = incident_or_404(request)
        if bad is not None:
            return bad
        assert d is not None
        todos = ops.incident_todos(world, d)
        return ok({"data": todos, "meta": {"pagination": {"offset": 0, "size": len(todos)}}})

    # --- events ----------------------------------------------------------------------------
    @with_body
    async def events_search(request: Request, body: dict[str, Any]) -> Response:
        f = body.get("filter") or {}
        page = body.get("page") or {}
        if isinstance(window := page_window(page, 1000), Response):
            return window
        offset, limit = window
        now = world.now()
        try:
            start, end = fake_time(f.get("from", "now-15m"), now), fake_time(f.get("to", "now"), now)
        except ValueError as e:
            return _bad(f"Invalid time: {e}")
        match = compile_search(f.get("query") or "*")
        lo, hi = start.isoformat().replace("+00:00", "Z"), end.isoformat().replace("+00:00", "Z")
        hits = [e for e in ops.events(world) if lo[:19] <= e["attributes"]["timestamp"][:19] <= hi[:19]
                and match(ops.event_fields(e), ops.event_text(e))]
        if body.get("sort") != "timestamp":
            hits.reverse()
        chunk = hits[offset:offset + limit]
        meta: dict[str, Any] = {"status": "done", "elapsed": 18, "request_id": "sandbox"}
        if offset + limit < len(hits):
            meta["page"] = {"after": page_cursor(offset + limit)}
        return ok({"data": chunk, "meta": meta, "links": {}})

    # --- dashboards ------------------------------------------------------------------------
    async def dashboards_list(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        q = request.query_params
        try:
            count, start = int(q.get("count", 100)), int(q.get("start", 0))
        except ValueError:
            return _bad("count and start must be integers")
        if count > 1000:
            return _bad("count must be <= 1000")
        items = [{k: d.get(k) for k in ops.SUMMARY_KEYS} for d in ops.dashboards(world)]
        return ok({"dashboards": items[start:start + count]})

    async def dashboard_get(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        d = next((x for x in ops.dashboards(world) if x["id"] == request.path_params["dashboard_id"]), None)
        if d is None:
            return _bad("Dashboard not found", 404)
        return ok(d)

    return [
        Route("/api/v2/spans/events/search", spans_search, methods=["POST"]),
        Route("/api/v2/spans/analytics/aggregate", spans_aggregate, methods=["POST"]),
        Route("/api/v2/error-tracking/issues/search", issues_search, methods=["POST"]),
        Route("/api/v2/error-tracking/issues/{issue_id}", issue_get, methods=["GET"]),
        Route("/api/v1/monitor/search", monitor_search, methods=["GET"]),
        Route("/api/v1/monitor/{monitor_id}", monitor_get, methods=["GET"]),
        Route("/api/v2/incidents/search", incidents_search, methods=["GET"]),
        Route("/api/v2/incidents/{incident_id}", incident_get, methods=["GET"]),
        Route("/api/v2/incidents/{incident_id}/impacts", incident_impacts, methods=["GET"]),
        Route("/api/v2/incidents/{incident_id}/relationships/todos", incident_todos, methods=["GET"]),
        Route("/api/v2/events/search", events_search, methods=["POST"]),
        Route("/api/v1/dashboard", dashboards_list, methods=["GET"]),
        Route("/api/v1/dashboard/{dashboard_id}", dashboard_get, methods=["GET"]),
    ]


_MTERM = re.compile(r'(\w+):\(([^)]*)\)|(\w+):"([^"]*)"|(\w+):(\S+)|"([^"]*)"|(\S+)')


def _monitor_matcher(query: str) -> Callable[[dict[str, Any]], bool]:
    """Datadog's monitor search: status:, tag:, type:, id:, free text on the name; AND between terms."""
    terms: list[tuple[str | None, list[str]]] = []
    for m in _MTERM.finditer(query):
        if m.group(1):
            terms.append((m.group(1), [v.strip().strip('"') for v in re.split(r"\s+OR\s+", m.group(2))]))
        elif m.group(3):
            terms.append((m.group(3), [m.group(4)]))
        elif m.group(5):
            terms.append((m.group(5), [m.group(6)]))
        elif (m.group(7) or m.group(8)) not in (None, "AND"):
            terms.append((None, [m.group(7) or m.group(8)]))

    def match(r: dict[str, Any]) -> bool:
        for key, values in terms:
            vals = [v.lower() for v in values]
            if key == "status":
                ok = r["status"].lower() in vals
            elif key == "tag":
                ok = any(t.lower() in vals for t in r["tags"])
            elif key == "type":
                ok = any(v in ("metric", "query alert", "query") for v in vals)
            elif key == "id":
                ok = str(r["id"]) in vals
            elif key is None:
                ok = all(v in r["name"].lower() for v in vals)
            else:
                ok = any(f"{key}:{v}" in (t.lower() for t in r["tags"]) for v in vals)
            if not ok:
                return False
        return True

    return match
