"""The sandbox's APM data: sampled traces, spans and the Error Tracking issues built from them.

Every trace is a pure function of (World, minute, slot): the trace id encodes both, so a trace
can be rebuilt from its id alone, and a rollback recorded in the World changes every span after
it. Spans follow Datadog's v2 spans API shape (``attributes.custom`` carries duration in ns,
``error``, ``http``, ``issue.id``, ``version``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from servers._core.world import World

SPAN_HORIZON = timedelta(hours=24)  # the sandbox keeps a day of indexed spans
# Sampled traces per minute, by root service; slot numbers are part of each trace id.
SLOTS: dict[int, str] = {0: "frontend", 1: "frontend", 2: "checkout", 3: "checkout", 4: "checkout", 5: "cart"}
RECONCILE_SLOT = 6  # checkout's hourly reconcile job: one large trace
RECONCILE_MINUTE = 7  # minute of each hour it runs
RECONCILE_ORDERS = 150
_MASK = (1 << 64) - 1
_MULT = 0x9E3779B97F4A7C15
_INV = pow(_MULT, -1, 1 << 64)

POOL_ERROR = "PaymentGatewayTimeout"
POOL_MESSAGE = "connection pool exhausted"
RESET_ERROR = "ConnectionResetError"
RESET_MESSAGE = "upstream reset by peer"


def issue_id(service: str, error_type: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://sandbox.spyglass/issues/{service}/{error_type}"))


def trace_id(minute_idx: int, slot: int) -> str:
    return str(((minute_idx << 6) | slot) * _MULT & _MASK)


def decode_trace_id(tid: str) -> tuple[int, int] | None:
    try:
        x = int(tid) * _INV & _MASK
    except ValueError:
        return None
    minute_idx, slot = x >> 6, x & 63
    if slot in SLOTS or (slot == RECONCILE_SLOT and minute_idx % 60 == RECONCILE_MINUTE):
        return minute_idx, slot
    return None


def _pool_stack(waiting: int) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/app/checkout/api/orders.py", line 88, in place_order\n'
        "    charge = await payments.charge(order)\n"
        '  File "/app/checkout/payments/client.py", line 41, in charge\n'
        "    async with self.pool.connection() as conn:\n"
        '  File "/app/checkout/payments/async_pool.py", line 112, in connection\n'
        "    conn = await self._acquire(timeout=self.timeout)\n"
        '  File "/app/checkout/payments/async_pool.py", line 87, in _acquire\n'
        f'    raise PaymentGatewayTimeout("{POOL_MESSAGE} (size=10, waiting={waiting})")\n'
        f"checkout.payments.errors.PaymentGatewayTimeout: {POOL_MESSAGE} (size=10, waiting={waiting})"
    )


def _reset_stack(service: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        f'  File "/app/{service}/api/handlers.py", line 52, in handle\n'
        "    resp = await self.upstream.send(req)\n"
        f'  File "/app/{service}/http/client.py", line 133, in send\n'
        "    return await self._conn.request(req)\n"
        f"ConnectionResetError: {RESET_MESSAGE}"
    )


@dataclass
class _B:
    """Collects one trace's spans as (parent index, service, resource, start ms, duration ms, extra)."""

    rows: list[tuple[int, str, str, float, float, dict[str, Any]]]

    def add(self, parent: int, service: str, resource: str, start: float, dur: float, **extra: Any) -> int:
        self.rows.append((parent, service, resource, start, dur, extra))
        return len(self.rows) - 1


def _checkout(world: World, t: datetime, key: tuple[Any, ...], b: _B) -> None:
    n = world.noise("span", *key)
    degraded = world.degraded("checkout", t)
    root = b.add(-1, "checkout", "POST /api/checkout", 0, 0, kind="web")
    b.add(root, "cart", "GET /api/cart/{id}", 3, 15 + 25 * world.noise("cart", *key), kind="http")
    b.add(root, "checkout", "postgres.query", 45, 5 + 7 * n, kind="db")
    cursor = 60.0
    if degraded:
        error = n < 0.6
        if error:
            waiting = 3 + int(world.noise("wait", *key) * 9)
            b.add(root, "checkout", "async_pool.acquire", cursor, 3000, kind="custom",
                  error=(POOL_ERROR, f"{POOL_MESSAGE} (size=10, waiting={waiting})", _pool_stack(waiting)),
                  issue=issue_id("checkout", POOL_ERROR))
            b.rows[root] = (*b.rows[root][:5], {"kind": "web", "status_code": 502,
                            "error": (POOL_ERROR, f"{POOL_MESSAGE} (size=10, waiting={waiting})", "")})
            _close(b, root, cursor + 3000 + 4)
            return
        acquire = 700 + 500 * world.noise("acq", *key)
        b.add(root, "checkout", "async_pool.acquire", cursor, acquire, kind="custom")
        cursor += acquire
    charge = b.add(root, "payments", "POST /v1/charges", cursor, 90 + 70 * n, kind="http")
    b.add(charge, "payments", "postgres.query", cursor + 20, 10 + 5 * n, kind="db")
    if not degraded and n < world.error_rate("checkout", t) * 4:
        b.rows[charge] = (*b.rows[charge][:5], {"kind": "http", "status_code": 502,
                          "error": (RESET_ERROR, RESET_MESSAGE, _reset_stack("payments")),
                          "issue": issue_id("payments", RESET_ERROR)})
        b.rows[root] = (*b.rows[root][:5], {"kind": "web", "status_code": 502,
                        "error": (RESET_ERROR, RESET_MESSAGE, "")})
        _close(b, root, cursor + 90 + 70 * n + 3)
        return
    cursor += 90 + 70 * n + 2
    b.add(root, "checkout", "postgres.query", cursor, 6 + 4 * n, kind="db")
    _close(b, root, cursor + 6 + 4 * n + 3)


def _simple(world: World, service: str, t: datetime, key: tuple[Any, ...], b: _B) -> None:
    n = world.noise("span", *key)
    resource = "GET /" if service == "frontend" else "GET /api/cart"
    root = b.add(-1, service, resource, 0, 0, kind="web")
    if service == "frontend":
        inner = b.add(root, "cart", "GET /api/cart", 4, 20 + 30 * n, kind="http")
        b.add(inner, "cart", "redis.command", 6, 2 + 3 * n, kind="cache")
        b.add(root, "frontend", "template.render", 30 + 30 * n, 40 + 60 * n, kind="template")
        end = 30 + 30 * n + 40 + 60 * n + 3
    else:
        b.add(root, "cart", "redis.command", 2, 2 + 3 * n, kind="cache")
        b.add(root, "cart", "postgres.query", 8, 8 + 10 * n, kind="db")
        end = 8 + 8 + 10 * n + 2
    if n < world.error_rate(service, t) * 4:
        b.rows[root] = (*b.rows[root][:5], {"kind": "web", "status_code": 502,
                        "error": (RESET_ERROR, RESET_MESSAGE, _reset_stack(service)),
                        "issue": issue_id(service, RESET_ERROR)})
    _close(b, root, end)


def _reconcile(world: World, key: tuple[Any, ...], b: _B) -> None:
    root = b.add(-1, "checkout", "job reconcile_orders", 0, 0, kind="worker")
    cursor = 5.0
    for i in range(RECONCILE_ORDERS):
        n = world.noise("rec", i, *key)
        order = b.add(root, "checkout", "reconcile.order", cursor, 0, kind="custom")
        b.add(order, "payments", "GET /v1/charges/{id}", cursor + 1, 6 + 6 * n, kind="http")
        b.add(order, "checkout", "postgres.query", cursor + 8 + 6 * n, 2 + 2 * n, kind="db")
        dur = 8 + 6 * n + 2 + 2 * n + 1
        b.rows[order] = (*b.rows[order][:4], dur, b.rows[order][5])
        cursor += dur + 0.5
    _close(b, root, cursor + 4)


def _close(b: _B, idx: int, end: float) -> None:
    p, s, r, start, _d, extra = b.rows[idx]
    b.rows[idx] = (p, s, r, start, end - start, extra)


def _versions(world: World, t: datetime) -> tuple[tuple[str | None, bool], ...]:
    return tuple((world.version_at(s, t), world.degraded(s, t)) for s in sorted(world.services))


def build_trace(world: World, minute_idx: int, slot: int) -> tuple[dict[str, Any], ...]:
    """One trace's spans (shared, read-only dicts), rebuilt when the World changed under it."""
    minute = datetime.fromtimestamp(minute_idx * 60, UTC)
    start = minute + timedelta(seconds=slot * 9 + world.noise("start", minute_idx, slot) * 8)
    return _build_cached(world, minute_idx, slot, start, _versions(world, start))


@lru_cache(maxsize=20000)
def _build_cached(world: World, minute_idx: int, slot: int, start: datetime,
                  _state: tuple[tuple[str | None, bool], ...]) -> tuple[dict[str, Any], ...]:
    key = (minute_idx, slot)
    b = _B([])
    if slot == RECONCILE_SLOT:
        _reconcile(world, key, b)
    elif SLOTS[slot] == "checkout":
        _checkout(world, start, key, b)
    else:
        _simple(world, SLOTS[slot], start, key, b)
    tid = trace_id(minute_idx, slot)
    ids = [str((int(tid) + (i + 1) * 0x5851F42D4C957F2D) & _MASK) for i in range(len(b.rows))]
    out = []
    for i, (parent, service, resource, off, dur, extra) in enumerate(b.rows):
        s0 = start + timedelta(milliseconds=off)
        version = world.version_at(service, s0) or "unknown"
        custom: dict[str, Any] = {"duration": int(dur * 1_000_000), "version": version, "env": "prod",
                                  "span": {"kind": extra.get("kind", "internal")}}
        status = "ok"
        if "status_code" in extra or extra.get("kind") in ("web", "http"):
            custom["http"] = {"status_code": str(extra.get("status_code", 200))}
        if "error" in extra:
            etype, msg, stack = extra["error"]
            status = "error"
            custom["error"] = {"type": etype, "message": msg, **({"stack": stack} if stack else {})}
        if "issue" in extra:
            custom["issue"] = {"id": extra["issue"]}
        custom["status"] = status
        host = f"{service}-{1 + int(world.noise('host', *key, i) * 3)}"
        kind = extra.get("kind", "custom")
        detail = _detail(service, resource, kind)
        http = {**detail.get("http", {}), **custom.get("http", {})}
        custom = {**detail, **custom, **({"http": http} if http else {})}
        out.append({
            "id": ids[i],
            "type": "spans",
            "attributes": {
                "trace_id": tid,
                "span_id": ids[i],
                "parent_id": ids[parent] if parent >= 0 else "0",
                "service": service,
                "resource_name": resource,
                "type": extra.get("kind", "custom"),
                "env": "prod",
                "host": host,
                "start_timestamp": _z(s0),
                "end_timestamp": _z(s0 + timedelta(milliseconds=dur)),
                "tags": _tags(world, service, version, host),
                "custom": custom,
                "ingestion_reason": "error" if status == "error" else "rule",
                "retained_by": "retention_filter",
                "single_span": False,
                "resource_hash": hashlib.blake2b(f"{service}{resource}".encode(), digest_size=8).hexdigest(),
            },
        })
    return tuple(out)


def _tags(world: World, service: str, version: str, host: str) -> list[str]:
    """The infrastructure tags a real agent attaches to every span (Kubernetes on AWS here)."""
    commit = next((r.commit for r in world.releases(service) if r.version == version), "unknown")
    team = world.services[service].team if service in world.services else "unknown"
    pod = f"{service}-7d9f8b6c4-{hashlib.blake2b(host.encode(), digest_size=3).hexdigest()}"
    return ["env:prod", f"service:{service}", f"version:{version}", f"host:{host}", f"team:{team}",
            "region:us-east-1", f"availability-zone:us-east-1{'abc'[len(host) % 3]}", "cloud_provider:aws",
            "kube_cluster_name:prod-use1", "kube_namespace:shop", f"kube_deployment:{service}",
            f"kube_replica_set:{pod.rsplit('-', 1)[0]}", f"pod_name:{pod}", f"kube_container_name:{service}",
            f"image_name:registry.internal/shop/{service}", f"image_tag:{version}", f"git.commit.sha:{commit}",
            "git.repository_url:github.com/acme/shop", "language:python", "datadog.agent.version:7.52.0"]


def _detail(service: str, resource: str, kind: str) -> dict[str, Any]:
    """Per-kind attributes the tracer sets (operation name, component, http/db details, runtime)."""
    out: dict[str, Any] = {"language": "python", "process_id": 7, "_dd": {"base_service": service, "p": {"dm": "-0"}},
                           "runtime-id": str(uuid.uuid5(uuid.NAMESPACE_OID, service)), "_top_level": 1,
                           "_sampling_priority_v1": 1, "thread": {"name": "MainThread", "id": 140221}}
    if kind in ("web", "http"):
        method, _, route = resource.partition(" ")
        out.update({"operation_name": "http.request" if kind == "http" else "starlette.request",
                    "component": "httpx" if kind == "http" else "starlette",
                    "http": {"method": method, "route": route,
                             "url": f"http://{service}.shop.svc.cluster.local{route}",
                             "useragent": "python-httpx/0.27.0" if kind == "http" else "Mozilla/5.0"},
                    "span": {"kind": "client" if kind == "http" else "server"},
                    "network": {"client": {"ip": "10.42.7.19"}}})
    elif kind == "db":
        out.update({"operation_name": "postgres.query", "component": "asyncpg",
                    "db": {"system": "postgresql", "name": "orders", "user": f"svc_{service}", "row_count": 1},
                    "span": {"kind": "client"}, "out": {"host": "db.internal", "port": 5432}})
    elif kind == "cache":
        out.update({"operation_name": "redis.command", "component": "redis", "span": {"kind": "client"},
                    "db": {"system": "redis"}, "out": {"host": "redis.internal", "port": 6379}})
    else:
        out.update({"operation_name": resource.split(" ")[0], "component": service, "span": {"kind": "internal"}})
    return out


def _z(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def span_fields(span: dict[str, Any]) -> dict[str, Any]:
    a = span["attributes"]
    c = a["custom"]
    err = c.get("error") or {}
    return {
        "service": a["service"], "resource_name": a["resource_name"], "resource": a["resource_name"],
        "status": c["status"], "env": a["env"], "version": c["version"], "host": a["host"],
        "trace_id": a["trace_id"], "span_id": a["span_id"], "type": a["type"],
        "http.status_code": (c.get("http") or {}).get("status_code"),
        "issue.id": (c.get("issue") or {}).get("id"), "error.type": err.get("type"),
        "error.message": err.get("message"), "duration": c["duration"],
    }


def span_text(span: dict[str, Any]) -> str:
    a = span["attributes"]
    err = a["custom"].get("error") or {}
    return f"{a['resource_name']} {err.get('type', '')} {err.get('message', '')}"


def span_start(span: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(span["attributes"]["start_timestamp"].replace("Z", "+00:00"))


def slots_at(minute_idx: int) -> list[int]:
    slots = list(SLOTS)
    if minute_idx % 60 == RECONCILE_MINUTE:
        slots.append(RECONCILE_SLOT)
    return slots


def spans_between(world: World, start: datetime, end: datetime, *, newest_first: bool = True,
                  only_trace: str | None = None) -> Iterator[dict[str, Any]]:
    """Spans whose start falls in [start, end], inside the sandbox's retention, in time order."""
    now = world.now()
    end = min(end, now)
    start = max(start, now - SPAN_HORIZON)
    if only_trace is not None:
        decoded = decode_trace_id(only_trace)
        if decoded is None:
            return
        spans = [s for s in build_trace(world, *decoded) if start <= span_start(s) <= end]
        yield from sorted(spans, key=span_start, reverse=newest_first)
        return
    first, last = int(start.timestamp() // 60), int(end.timestamp() // 60)
    minutes = range(last, first - 1, -1) if newest_first else range(first, last + 1)
    for m in minutes:
        batch = [s for slot in slots_at(m) for s in build_trace(world, m, slot) if start <= span_start(s) <= end]
        yield from sorted(batch, key=span_start, reverse=newest_first)


# --- Error Tracking --------------------------------------------------------------------------------
@dataclass(frozen=True)
class IssueDef:
    id: str
    service: str
    error_type: str
    message: str
    file_path: str
    function: str
    first_seen_days: float | None  # None: first seen in the story (found from the spans)


def issue_defs(world: World) -> dict[str, IssueDef]:
    out = {}
    pool = IssueDef(issue_id("checkout", POOL_ERROR), "checkout", POOL_ERROR, POOL_MESSAGE,
                    "checkout/payments/async_pool.py", "_acquire", None)
    out[pool.id] = pool
    for svc, days in (("payments", 12.0), ("frontend", 9.0), ("cart", 20.0)):
        d = IssueDef(issue_id(svc, RESET_ERROR), svc, RESET_ERROR, RESET_MESSAGE, f"{svc}/http/client.py", "send", days)
        out[d.id] = d
    return out


def _origin(span: dict[str, Any]) -> str | None:
    return (span["attributes"]["custom"].get("issue") or {}).get("id")


def _error_traces(world: World, minute_idx: int) -> Iterator[dict[str, Any]]:
    for slot in slots_at(minute_idx):
        for s in build_trace(world, minute_idx, slot):
            if _origin(s):
                yield s


def issue_attributes(world: World, d: IssueDef) -> dict[str, Any]:
    now = world.now()
    horizon = int((now - SPAN_HORIZON).timestamp() // 60)
    last_idx = int(now.timestamp() // 60)
    first: datetime | None = None
    if d.first_seen_days is None:
        m = int(world.deploy_at.timestamp() // 60)
        while first is None and m <= last_idx:
            first = next((span_start(s) for s in _error_traces(world, m) if _origin(s) == d.id), None)
            m += 1
    else:
        first = world.anchor - timedelta(days=d.first_seen_days)
    last: datetime | None = None
    m = last_idx
    while last is None and m >= horizon:
        hits = [span_start(s) for s in _error_traces(world, m) if _origin(s) == d.id and span_start(s) <= now]
        last = max(hits) if hits else None
        m -= 1
    first = first or world.anchor
    last = last or first
    releases = world.releases(d.service)
    first_version = world.version_at(d.service, first) or (releases[0].version if releases else "unknown")
    return {
        "error_type": d.error_type,
        "error_message": d.message,
        "file_path": d.file_path,
        "function_name": d.function,
        "first_seen": int(first.timestamp() * 1000),
        "first_seen_version": first_version,
        "last_seen": int(last.timestamp() * 1000),
        "last_seen_version": world.version_at(d.service, last) or first_version,
        "is_crash": False,
        "languages": ["PYTHON"],
        "platform": "BACKEND",
        "service": d.service,
        "state": "OPEN",
    }


def issue_resource(world: World, d: IssueDef) -> dict[str, Any]:
    return {"id": d.id, "type": "issue", "attributes": issue_attributes(world, d)}


def issue_counts(world: World, start: datetime, end: datetime) -> dict[str, int]:
    counts: dict[str, int] = {}
    now = world.now()
    start = max(start, now - SPAN_HORIZON)
    end = min(end, now)
    for m in range(int(start.timestamp() // 60), int(end.timestamp() // 60) + 1):
        for s in _error_traces(world, m):
            if start <= span_start(s) <= end:
                iid = _origin(s)
                assert iid is not None
                counts[iid] = counts.get(iid, 0) + 1
    return counts
