"""Where the audit log and the shared limits live, chosen by URL.

``open_sink(url, state_dir)``: ``None`` -> ``$SPYGLASS_AUDIT_URL`` if set, else SQLite at
``state_dir/audit.db``; a path or ``sqlite:///path`` -> SQLite; ``postgresql://...`` ->
PostgreSQL. When ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set and the
``otel`` extra is installed, a span per call is exported as well (``FanoutSink``).
``open_reader`` opens the same places for reading (report, ``spyglass audit``, replay).
Retention (``SPYGLASS_AUDIT_RAW_DAYS``, default 30; ``SPYGLASS_AUDIT_ROLLUP_DAYS``, default 400)
runs in the background of every process that opens a sink, hourly.
``open_limits(url)``: ``None`` -> ``$SPYGLASS_REDIS_URL`` if set, else process-local limits.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from guards.audit import AuditSink, FanoutSink
from guards.audit_store import AuditStore, SQLiteStore
from guards.limits import LimitStore, MemoryLimitStore
from guards.rollup import Retention

log = logging.getLogger("spyglass.audit")

def resolve_audit_url(url: str | None, state_dir: Path, env: Mapping[str, str] | None = None) -> str:
    """A normalised audit location: ``postgresql://...`` or ``sqlite:///abs/path``."""
    env = os.environ if env is None else env
    url = url or env.get("SPYGLASS_AUDIT_URL") or None
    if url is None:
        return f"sqlite:///{(Path(state_dir).expanduser() / 'audit.db').resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        return url
    if url.startswith("sqlite:///"):
        return f"sqlite:///{Path(url.removeprefix('sqlite:///')).expanduser().resolve()}"
    if "://" in url:
        raise ValueError(f"audit URL {url!r}: use a file path, sqlite:///path or postgresql://...")
    return f"sqlite:///{Path(url).expanduser().resolve()}"


def open_sink(url: str | None, state_dir: Path, *, env: Mapping[str, str] | None = None) -> AuditSink:
    resolved = resolve_audit_url(url, state_dir, env)
    primary: AuditSink
    if resolved.startswith(("postgresql://", "postgres://")):
        from guards.audit_postgres import PostgresSink

        primary = PostgresSink(resolved)
    else:
        from guards.audit_sqlite import SQLiteSink

        primary = SQLiteSink(resolved.removeprefix("sqlite:///"))
    environ = os.environ if env is None else env
    start_maintenance(resolved, state_dir, environ)
    otel = _otel_sink(environ)
    return FanoutSink(primary, otel) if otel is not None else primary


class Maintenance(threading.Thread):
    """Applies retention in the background: a minute after start, then every hour.

    Replicas may all run it: each chunk is folded under a write lock (SQLite's, or an advisory
    lock in PostgreSQL), so no event is rolled up twice. Failures are logged, never raised.
    """

    def __init__(self, url: str, state_dir: Path, retention: Retention, *, first_delay_s: float = 60.0,
                 interval_s: float = 3600.0) -> None:
        super().__init__(name="spyglass-audit-retention", daemon=True)
        self.url, self.state_dir, self.retention = url, state_dir, retention
        self.first_delay_s, self.interval_s = first_delay_s, interval_s
        self.stopped = threading.Event()
        self.runs = 0

    def run(self) -> None:
        from guards.rollup import apply_retention

        delay = self.first_delay_s
        while not self.stopped.wait(delay):
            delay = self.interval_s
            try:
                store = open_reader(self.url, self.state_dir, env={})
                try:
                    r = apply_retention(store, self.retention)
                finally:
                    store.close()
                self.runs += 1
                if r.events_rolled or r.rollups_expired:
                    log.info("audit retention: rolled up %d events before %s, expired %d hourly rows",
                             r.events_rolled, r.cutoff, r.rollups_expired)
            except Exception as e:
                log.warning("audit retention failed (will retry in %.0fs): %s", self.interval_s, e)

    def stop(self) -> None:
        self.stopped.set()


def start_maintenance(url: str, state_dir: Path, env: Mapping[str, str]) -> Maintenance | None:
    """Background retention unless ``SPYGLASS_AUDIT_MAINTENANCE=off`` or nothing ever expires."""
    if env.get("SPYGLASS_AUDIT_MAINTENANCE", "").strip().lower() in ("off", "0", "false", "no"):
        return None
    retention = Retention.from_env(env)  # a bad setting stops start-up with the variable's name
    if retention.raw_days is None and retention.rollup_days is None:
        return None
    m = Maintenance(url, state_dir, retention)
    m.start()
    atexit.register(m.stop)
    return m


def open_reader(url: str | None, state_dir: Path, *, env: Mapping[str, str] | None = None) -> AuditStore:
    resolved = resolve_audit_url(url, state_dir, env)
    if resolved.startswith(("postgresql://", "postgres://")):
        from guards.audit_postgres import PostgresStore

        return PostgresStore(resolved)
    return SQLiteStore(resolved.removeprefix("sqlite:///"))


def _otel_sink(env: Mapping[str, str]) -> AuditSink | None:
    if not (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    try:
        from guards.audit_otel import OTelSink, otlp_tracer_provider

        sink: AuditSink = OTelSink(otlp_tracer_provider(), own_provider=True)
        return sink
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is not installed "
                    "(pip install 'spyglass-mcp[otel]'); no spans are exported")
        return None


def open_limits(url: str | None, *, env: Mapping[str, str] | None = None, sink: AuditSink | None = None) -> LimitStore:
    """Shared limits in Redis when a URL is given (or ``SPYGLASS_REDIS_URL``), else process-local."""
    env = os.environ if env is None else env
    url = url or env.get("SPYGLASS_REDIS_URL") or None
    if url is None:
        return MemoryLimitStore()
    from guards.limits_redis import open_limits as open_redis

    return open_redis(url, sink=sink)
