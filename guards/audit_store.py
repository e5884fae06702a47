"""Reading and maintaining the audit log: one code path over SQLite and PostgreSQL.

The report, ``spyglass audit``, ``policy replay``, rollups and chain verification all go through
:class:`AuditStore`. The two databases differ only in the placeholder, the name of the insertion
order column and how a large result is streamed; the SQL is otherwise shared.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guards.audit import EVENT_FIELDS, AuditEvent, event_from_row

# What the report reads per event: everything it aggregates, nothing it does not (no args).
REPORT_COLUMNS = (
    "ts", "duration_ms", "run_id", "principal", "client", "toolset", "tool", "outcome",
    "rule_id", "upstream", "upstream_status", "est_tokens", "empty", "scope_filtered", "ratelimit_limit",
    "ratelimit_remaining", "message",
)
# One hourly aggregate: the key columns, then the sums.
ROLLUP_KEY = (
    "hour", "principal", "client", "toolset", "tool", "upstream", "outcome", "decision", "rule_id",
    "upstream_status", "empty",
)
ROLLUP_VALUES = (
    "calls", "dur_sum", "dur_max", "dur_hist", "tokens", "response_bytes", "scope_filtered", "rl_limit",
    "rl_min_remaining", "message",
)
ROLLUP_COLUMNS = ROLLUP_KEY + ROLLUP_VALUES


def iso_ts(dt: datetime) -> str:
    """The audit's own timestamp format (``2026-01-02T03:04:05.678Z``), so text order is time order."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(ts: str) -> datetime:
    """An audit timestamp (``2026-11-22T15:08:37.123Z``) as an aware datetime; the one parser for them.
    Python 3.11's ``fromisoformat`` reads the ``Z`` itself."""
    return datetime.fromisoformat(ts)


@dataclass(frozen=True)
class EventQuery:
    since: str | None = None  # audit-format timestamps (see iso_ts)
    until: str | None = None
    tool: str | None = None  # exact, or a glob with '*'
    outcome: str | None = None
    principal: str | None = None
    run_id: str | None = None
    limit: int | None = None
    newest_first: bool = False


@dataclass(frozen=True)
class StreamHead:
    stream: str
    head_hash: str
    events: int
    first_ts: str
    last_ts: str
    pruned_hash: str
    pruned_count: int


class AuditStore:
    """An open audit database. Subclasses set the dialect; the SQL lives here."""

    placeholder = "?"
    seq = "rowid"  # the insertion-order column: chain order within a stream
    label = "sqlite"

    def __init__(self, conn: Any, location: str) -> None:
        self.conn = conn
        self.location = location

    # -- dialect --------------------------------------------------------------------------
    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.sql(text), tuple(params))

    def fetchall(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.execute(text, params).fetchall())

    def stream_rows(self, text: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of a possibly huge result without holding them all (a SQLite cursor streams)."""
        return iter(self.execute(text, params))

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(self.sql(text), rows)

    def begin_write(self) -> None:
        """Start a write transaction that excludes other maintainers (rollups)."""
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()

    def delete_seqs(self, seqs: Sequence[int]) -> None:
        self.conn.executemany(self.sql(f"DELETE FROM audit_events WHERE {self.seq} = ?"), [(s,) for s in seqs])

    def size_bytes(self) -> int:
        return 0

    def close(self) -> None:
        self.conn.close()

    # -- events ---------------------------------------------------------------------------
    def _where(self, q: EventQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if q.since:
            clauses.append("ts >= ?")
            params.append(q.since)
        if q.until:
            clauses.append("ts < ?")
            params.append(q.until)
        for col, value in (("tool", q.tool), ("outcome", q.outcome), ("principal", q.principal),
                           ("run_id", q.run_id)):
            if not value:
                continue
            if "*" in value:
                clauses.append(f"{col} LIKE ? ESCAPE '!'")
                params.append(value.replace("!", "!!").replace("%", "!%").replace("_", "!_").replace("*", "%"))
            else:
                clauses.append(f"{col} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _select(self) -> str:
        return f"SELECT {self.seq}, {', '.join(EVENT_FIELDS)} FROM audit_events"

    def _events(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[int, AuditEvent]]:
        return [(int(r[0]), event_from_row(dict(zip(EVENT_FIELDS, r[1:], strict=True)))) for r in rows]

    def query(self, q: EventQuery) -> list[AuditEvent]:
        where, params = self._where(q)
        order = "DESC" if q.newest_first else "ASC"
        sql = f"{self._select()}{where} ORDER BY ts {order}, {self.seq} {order}"
        if q.limit:
            sql += f" LIMIT {int(q.limit)}"
        return [e for _, e in self._events(self.fetchall(sql, params))]

    def iter_events(self, q: EventQuery) -> Iterator[AuditEvent]:
        """Every matching event in time order, streamed (for replay over a large log)."""
        where, params = self._where(q)
        for row in self.stream_rows(f"SELECT {', '.join(EVENT_FIELDS)} FROM audit_events{where} ORDER BY ts", params):
            yield event_from_row(dict(zip(EVENT_FIELDS, row, strict=True)))

    def get(self, event_id: str) -> AuditEvent | None:
        rows = self.fetchall(f"{self._select()} WHERE id = ?", [event_id])
        if not rows and len(event_id) >= 4:
            rows = self.fetchall(f"{self._select()} WHERE id LIKE ? ORDER BY ts LIMIT 2", [event_id + "%"])
            if len(rows) > 1:
                raise LookupError(f"event id prefix {event_id!r} is ambiguous; give more characters")
        return self._events(rows)[0][1] if rows else None

    def tail(self, n: int) -> tuple[list[AuditEvent], int]:
        """The newest ``n`` events in time order, and the position to follow from."""
        rows = self.fetchall(f"{self._select()} ORDER BY {self.seq} DESC LIMIT {int(n)}")
        pairs = self._events(rows)[::-1]
        last = pairs[-1][0] if pairs else self.last_seq()
        return sorted((e for _, e in pairs), key=lambda e: e.ts), last

    def after(self, seq: int, limit: int = 1000) -> tuple[list[AuditEvent], int]:
        rows = self.fetchall(f"{self._select()} WHERE {self.seq} > ? ORDER BY {self.seq} LIMIT {int(limit)}", [seq])
        pairs = self._events(rows)
        return [e for _, e in pairs], (pairs[-1][0] if pairs else seq)

    def last_seq(self) -> int:
        row = self.fetchall(f"SELECT MAX({self.seq}) FROM audit_events")
        return int(row[0][0] or 0)

    def count(self) -> int:
        return int(self.fetchall("SELECT COUNT(*) FROM audit_events")[0][0])

    def time_range(self) -> tuple[str | None, str | None]:
        lo, hi = self.fetchall("SELECT MIN(ts), MAX(ts) FROM audit_events")[0]
        rlo, rhi = self.fetchall("SELECT MIN(hour), MAX(hour) FROM audit_rollups")[0]
        starts = [t for t in (lo, rlo and rlo + ":00:00.000Z") if t]
        ends = [t for t in (hi, rhi and rhi + ":59:59.999Z") if t]
        return (min(starts) if starts else None), (max(ends) if ends else None)

    # -- report ---------------------------------------------------------------------------
    def report_rows(self, since: str | None, until: str | None) -> Iterator[tuple[Any, ...]]:
        """REPORT_COLUMNS per tool call in the window (server notices left out), in time order."""
        where, params = self._where(EventQuery(since=since, until=until))
        where = (where + " AND " if where else " WHERE ") + "principal_kind <> 'system'"
        return self.stream_rows(f"SELECT {', '.join(REPORT_COLUMNS)} FROM audit_events{where} ORDER BY ts", params)

    def notice_rows(self, since: str | None, until: str | None) -> list[tuple[Any, ...]]:
        """(ts, tool, outcome, message) of the events the server wrote about itself."""
        where, params = self._where(EventQuery(since=since, until=until))
        where = (where + " AND " if where else " WHERE ") + "principal_kind = 'system'"
        return self.fetchall(f"SELECT ts, tool, outcome, message FROM audit_events{where} ORDER BY ts", params)

    def rollup_rows(self, since: str | None, until: str | None) -> Iterator[tuple[Any, ...]]:
        clauses, params = [], []
        if since:
            clauses.append("hour >= ?")
            params.append(since[:13])
        if until:
            clauses.append("hour < ?")
            params.append(until[:13])  # an hour is counted whole or not at all
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return self.stream_rows(f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM audit_rollups{where} ORDER BY hour", params)

    # -- chain ----------------------------------------------------------------------------
    def streams(self) -> list[StreamHead]:
        rows = self.fetchall(
            "SELECT stream, head_hash, events, first_ts, last_ts, pruned_hash, pruned_count FROM audit_streams "
            "ORDER BY first_ts"
        )
        return [StreamHead(r[0], r[1] or "", int(r[2] or 0), r[3] or "", r[4] or "", r[5] or "", int(r[6] or 0))
                for r in rows]

    def all_events(self) -> Iterator[AuditEvent]:
        """Every event in insertion order (chain order within each stream)."""
        for row in self.stream_rows(f"{self._select()} ORDER BY {self.seq}"):
            yield event_from_row(dict(zip(EVENT_FIELDS, row[1:], strict=True)))


class SQLiteStore(AuditStore):
    def __init__(self, path: str | Path) -> None:
        from guards.audit_sqlite import connect

        p = Path(path).expanduser()
        if not p.exists():
            raise FileNotFoundError(f"no audit log at {p}")
        conn = connect(p)
        super().__init__(conn, str(p))

    def size_bytes(self) -> int:
        page_count = self.conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]
        return int(page_count * page_size)


@dataclass
class StreamCheck:
    stream: str
    events: int
    first_ts: str
    last_ts: str
    problems: list[str]


def verify_chain(store: AuditStore, *, max_problems: int = 20) -> list[StreamCheck]:
    """Walk every stream's hash chain: a changed, deleted or re-ordered event shows as a problem.

    Each event's hash covers all its fields and the previous event's hash; each stream's head
    (newest hash and event count) is written with its events, so deleting the newest events is
    detected too. Rolled-up (pruned) events leave an anchor the remaining chain starts from.
    """
    heads = {h.stream: h for h in store.streams()}
    walks: dict[str, _Walk] = {}
    for e in store.all_events():  # one pass in insertion order, whatever the number of streams
        w = walks.get(e.stream)
        if w is None:
            w = walks[e.stream] = _Walk(heads.get(e.stream), max_problems)
        w.step(e)
    for name, head in heads.items():
        if name not in walks:
            walks[name] = _Walk(head, max_problems)
    order = list(heads) + [n for n in walks if n not in heads]
    return [walks[n].finish(n) for n in order]


class _Walk:
    def __init__(self, head: StreamHead | None, max_problems: int) -> None:
        self.head, self.max_problems = head, max_problems
        self.problems: list[str] = []
        self.prev = head.pruned_hash if head else ""
        self.count, self.first, self.last = 0, "", ""
        if head is None:
            self.note("events exist but the stream's head record is missing (deleted?)")

    def note(self, msg: str) -> None:
        if len(self.problems) < self.max_problems:
            self.problems.append(msg)

    def step(self, e: AuditEvent) -> None:
        if e.prev_hash != self.prev:
            self.note(f"event {e.id} ({e.ts}) does not follow the one before it: "
                      "an earlier event was deleted or changed")
        if e.chain_hash(e.prev_hash) != e.hash:
            self.note(f"event {e.id} ({e.ts}) was changed after it was written (its hash does not match)")
        self.prev = e.hash
        self.count += 1
        self.first, self.last = self.first or e.ts, e.ts

    def finish(self, name: str) -> StreamCheck:
        head = self.head
        if head is not None:
            if self.prev != head.head_hash:
                self.note(f"the newest event(s) of the stream are missing: the head says {head.head_hash[:12]}, "
                          f"the last event present is {self.prev[:12] or '(none)'}")
            if self.count + head.pruned_count != head.events:
                self.note(f"{head.events - head.pruned_count} events were written, {self.count} are present")
        return StreamCheck(name, self.count, self.first or (head.first_ts if head else ""),
                           self.last or (head.last_ts if head else ""), self.problems)


def report_from_store(store: AuditStore, start: datetime, end: datetime, group_by: Sequence[str] = ("tool",),
                      top: int = 10) -> dict[str, Any]:
    """The utilization report for ``[start, end)``: hourly rollups plus raw events, same code for both DBs."""
    from guards.report import ReportBuilder

    builder = ReportBuilder(start, end, group_by, top)
    since, until = iso_ts(start), iso_ts(end)
    for row in store.rollup_rows(since, until):
        builder.add_rollup(row)
    builder.add_rows(store.report_rows(since, until))
    for ts, tool, outcome, message in store.notice_rows(since, until):
        builder.add_notice(ts, tool, outcome, message)
    return builder.build()
