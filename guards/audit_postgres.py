"""PostgreSQL audit sink and store: the shared audit log of an HTTP fleet.

``SPYGLASS_AUDIT_URL=postgresql://user@host:5432/db?schema=spyglass`` (``schema`` is ours and is
removed before connecting; default ``spyglass``). The sink batches events off the request path
with ``COPY`` on a writer thread, one transaction per batch together with the stream's chain
head; durable emits (write calls) return once their batch committed. A migration runs on start,
under an advisory lock so replicas starting together do not race. When PostgreSQL is down the
sink keeps what it could not write, reports itself unhealthy (write calls are refused) and
retries with backoff; events reach the database in order once it is back.
"""

from __future__ import annotations

import logging
import operator
import queue
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import fields
from typing import Any

from guards.audit import EVENT_FIELDS, AuditEvent
from guards.audit_queue import QueuedSink
from guards.audit_store import AuditStore
from guards.urls import pop_param, safe_url

log = logging.getLogger("spyglass.audit")

SCHEMA_VERSION = 1
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PG_TYPES = {"str": "text", "int": "bigint", "int | None": "bigint", "float": "double precision", "bool": "boolean"}
MAX_PENDING = 200_000  # events kept in memory while PostgreSQL is unreachable
SHUTDOWN_RETRY_S = 10.0  # how long close() keeps retrying what could not be written


def split_url(url: str) -> tuple[str, str]:
    """``(conninfo without our parameters, schema)``."""
    conninfo, schema = pop_param(url, "schema", "spyglass")
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"audit URL schema {schema!r}: use lower-case letters, digits and '_'")
    return conninfo, schema


def _column_defs() -> str:
    cols = []
    for f in fields(AuditEvent):
        kind = _PG_TYPES[str(f.type)]
        cols.append(f"{f.name} {kind}{' NOT NULL UNIQUE' if f.name == 'id' else ''}")
    return ", ".join(cols)


def migrations(schema: str) -> list[str]:
    return [
        f"CREATE SCHEMA IF NOT EXISTS {schema}",
        f"SET LOCAL search_path TO {schema}",
        "CREATE TABLE IF NOT EXISTS audit_meta (key text PRIMARY KEY, value text)",
        "CREATE TABLE IF NOT EXISTS audit_events "
        f"(seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {_column_defs()})",
        "CREATE INDEX IF NOT EXISTS audit_events_ts ON audit_events (ts)",
        "CREATE TABLE IF NOT EXISTS audit_streams (stream text PRIMARY KEY, head_hash text, events bigint, "
        "first_ts text, last_ts text, pruned_hash text DEFAULT '', pruned_count bigint DEFAULT 0)",
        "CREATE TABLE IF NOT EXISTS audit_rollups (k text PRIMARY KEY, hour text, principal text, client text, "
        "toolset text, tool text, upstream text, outcome text, decision text, rule_id text, upstream_status bigint, "
        "empty integer, calls bigint, dur_sum double precision, dur_max double precision, dur_hist text, "
        "tokens bigint, response_bytes bigint, scope_filtered bigint, rl_limit bigint, rl_min_remaining bigint, "
        "message text)",
        "CREATE INDEX IF NOT EXISTS audit_rollups_hour ON audit_rollups (hour)",
        f"INSERT INTO audit_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}') "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    ]


def connect(url: str, *, autocommit: bool = False, migrate: bool = True) -> Any:
    import psycopg

    conninfo, schema = split_url(url)
    conn = psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=5,
                           options=f"-c search_path={schema}")
    if migrate:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('spyglass-audit-migrate'))")
            for stmt in migrations(schema):
                conn.execute(stmt)
        if not autocommit:
            conn.commit()
    return conn


_STREAM_UPSERT = (
    "INSERT INTO audit_streams (stream, head_hash, events, first_ts, last_ts) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (stream) DO UPDATE SET head_hash = EXCLUDED.head_hash, "
    "events = audit_streams.events + EXCLUDED.events, last_ts = EXCLUDED.last_ts"
)
_ROW = operator.itemgetter(*EVENT_FIELDS)
_COPY = f"COPY audit_events ({', '.join(EVENT_FIELDS)}) FROM STDIN"


class PostgresSink(QueuedSink):
    """Same contract as ``SQLiteSink``: ``emit`` never blocks, ``emit_durable`` waits for the commit."""

    refuse_when_failed = False  # failed rows stay pending and are retried with backoff

    def __init__(self, url: str, *, batch_max: int = 2000) -> None:
        self.url = url
        self.location = safe_url(url)
        self._conn: Any = connect(url)  # fail fast at start-up: a bad URL or a down database is an error
        self._batch_max = batch_max
        self._pending: list[tuple[Any, ...]] = []
        self.dropped = 0
        self._start("spyglass-audit-pg")

    # -- writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        backoff = 0.5
        while not stop:
            batch: list[Any] = []
            try:
                batch.append(self._queue.get(timeout=backoff if (self._pending or self._failed) else None))
            except queue.Empty:
                pass
            batch, stop = self._drain(batch)
            if batch or self._pending or self._failed:
                ok = self._write(batch)
                backoff = 0.5 if ok else min(backoff * 2, 5.0)
        deadline = time.monotonic() + SHUTDOWN_RETRY_S
        while self._pending and time.monotonic() < deadline:  # one more chance for what is queued
            time.sleep(0.2)
            self._write([])
        if self._pending:
            log.error("audit: %d events could not be written to %s before shutdown",
                      len(self._pending), self.location)
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass

    def _write(self, batch: list[Any]) -> bool:
        events, durables = self._chain(batch)
        rows = self._pending + [_ROW(vars(event)) for event in events]
        error: BaseException | None = None
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.url, migrate=False)
            if rows:
                ts_i = EVENT_FIELDS.index("ts")
                with self._conn.cursor() as cur:
                    with cur.copy(_COPY) as copy:
                        for row in rows:
                            copy.write_row(row)
                    cur.execute(_STREAM_UPSERT, (self._stream, self._prev_hash, len(rows), rows[0][ts_i],
                                                 rows[-1][ts_i]))
            else:
                self._conn.execute("SELECT 1")
            self._conn.commit()
        except Exception as e:  # connection lost, server down, disk full
            error = e
            try:
                if self._conn is not None and not self._conn.closed:
                    self._conn.rollback()
            except Exception:
                pass
            try:
                if self._conn is not None:
                    self._conn.close()
            except Exception:
                pass
            self._conn = None
        if error is None:
            if self._failed is not None:
                log.warning("audit: %s is writable again", self.location)
            self._failed = None
            self._pending = []
        else:
            if self._failed is None:
                log.error("audit: cannot write to %s: %s", self.location, error)
            self._failed = error
            self._pending = rows
            if len(self._pending) > MAX_PENDING:  # shown by `spyglass audit verify` as missing events
                drop = len(self._pending) - MAX_PENDING
                self.dropped += drop
                self._pending = self._pending[drop:]
                log.error("audit: dropped %d events while %s is unreachable", drop, self.location)
        for d in durables:
            d.error = error
            d.done.set()
        self._tell_followers(events)  # once per event: rows retried from _pending are not re-sent
        return error is None


class PostgresStore(AuditStore):
    placeholder = "%s"
    seq = "seq"
    label = "postgresql"

    def __init__(self, url: str) -> None:
        # Readers do not migrate: a read-only role is enough for report, audit and replay.
        conn = connect(url, autocommit=True, migrate=False)
        if conn.execute("SELECT to_regclass('audit_events')").fetchone()[0] is None:
            conn.close()
            raise FileNotFoundError(f"no audit log in {safe_url(url)} (schema {split_url(url)[1]!r})")
        super().__init__(conn, safe_url(url))

    def stream_rows(self, text: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        with self.conn.transaction(), self.conn.cursor(name=f"spyglass_{uuid.uuid4().hex[:8]}") as cur:
            cur.itersize = 10000
            cur.execute(self.sql(text), tuple(params))
            yield from cur

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(self.sql(text), rows)

    def begin_write(self) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('spyglass-audit-rollup'))")

    def commit(self) -> None:
        if self.conn.info.transaction_status != 0:  # not idle: a transaction is open
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.info.transaction_status != 0:
            self.conn.execute("ROLLBACK")

    def delete_seqs(self, seqs: Sequence[int]) -> None:
        self.conn.execute("DELETE FROM audit_events WHERE seq = ANY(%s)", (list(seqs),))

    def size_bytes(self) -> int:
        row = self.conn.execute(
            "SELECT pg_total_relation_size('audit_events') + pg_total_relation_size('audit_streams') "
            "+ pg_total_relation_size('audit_rollups')"
        ).fetchone()
        return int(row[0])

