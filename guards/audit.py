"""The audit event and the sink protocol. One event per tool call, denied and failed ones included.

Events are small by design (IBM ContextForge's audit took PostgreSQL down at ~800 bytes x 1M
rows in seven hours): redacted arguments capped in size, no results, counts instead of bodies.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from json.encoder import encode_basestring_ascii
from typing import Any, Protocol

MAX_ARGS_CHARS = 2000
log = logging.getLogger("spyglass.audit")


@dataclass
class AuditEvent:
    id: str
    ts: str
    duration_ms: float
    run_id: str
    principal: str
    principal_kind: str
    client: str
    client_version: str
    server: str
    tool: str
    toolset: str
    access: str
    args: str  # redacted JSON, capped
    args_digest: str
    decision: str  # allow | deny
    rule_id: str
    outcome: str
    message: str = ""  # redacted, one line: why it was denied or failed
    upstream: str = ""
    upstream_status: int | None = None
    upstream_calls: int = 0
    response_bytes: int = 0
    est_tokens: int = 0
    truncated: bool = False
    empty: bool = False
    scope_applied: bool = False
    scope_filtered: int = 0
    ratelimit_limit: int | None = None
    ratelimit_remaining: int | None = None
    plan_id: str = ""
    stream: str = ""
    prev_hash: str = ""
    hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        # Every field is a scalar: a plain read is ~10x faster than ``asdict``'s deep copy,
        # which matters at tens of thousands of events per second.
        return {name: getattr(self, name) for name in EVENT_FIELDS}

    def chain_hash(self, prev_hash: str) -> str:
        body = self.to_dict()
        del body["hash"]
        body["prev_hash"] = prev_hash
        return hashlib.sha256(_CANONICAL.encode(body).encode()).hexdigest()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def seal(event: AuditEvent, stream: str, prev_hash: str) -> str:
    """Normalise an event and link it into ``stream`` after ``prev_hash``; returns its hash.

    The sinks' hot path: the same hash as ``chain_hash``, from a body encoder specialised to the
    event's fields (``chain_hash`` keeps the generic one, so ``audit verify`` checks this one).
    """
    event.duration_ms = float(event.duration_ms)
    event.stream = stream
    event.prev_hash = prev_hash
    payload = canonical_body(event)
    if "\\u0000" in payload:  # a NUL somewhere: replace it, then hash what will be stored
        normalize_event(event)
        payload = canonical_body(event)
    event.hash = hashlib.sha256(payload.encode()).hexdigest()
    return event.hash


EVENT_FIELDS = [f.name for f in fields(AuditEvent)]


BOOL_FIELDS = frozenset(f.name for f in fields(AuditEvent) if f.type in ("bool", bool))


def normalize_event(event: AuditEvent) -> AuditEvent:
    """Make an event store-exact before it is hashed: what a database hands back hashes the same.

    ``duration_ms`` is always a float (a REAL/double column returns ``5.0`` for ``5``) and text
    carries no NUL (PostgreSQL text cannot hold one).
    """
    event.duration_ms = float(event.duration_ms)
    for name in _TEXT_FIELDS:
        value = getattr(event, name)
        if "\x00" in value:
            setattr(event, name, value.replace("\x00", "\ufffd"))
    return event


def event_from_row(row: dict[str, Any]) -> AuditEvent:
    """An event back from a stored row (SQLite stores booleans as 0/1, NULL text as None)."""
    values: dict[str, Any] = {}
    for name in EVENT_FIELDS:
        v = row.get(name)
        if name in BOOL_FIELDS:
            v = bool(v)
        elif name == "duration_ms":
            v = float(v or 0.0)
        elif v is None and name not in _NULLABLE:
            v = 0 if name in _INT_FIELDS else ""
        values[name] = v
    return AuditEvent(**values)


_TEXT_FIELDS = tuple(f.name for f in fields(AuditEvent) if f.type in ("str", str))
_NULLABLE = frozenset({"upstream_status", "ratelimit_limit", "ratelimit_remaining"})
_INT_FIELDS = frozenset({"upstream_calls", "response_bytes", "est_tokens", "scope_filtered"})


# Event ids: a random per-process prefix and a counter. Unique across replicas without a
# syscall per event (uuid4 reads urandom every time: a measurable share of a guarded call).
_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count()


def new_event_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


def utc_now_iso() -> str:
    return iso_from_epoch(time.time())


# The formatted second, reused by every event in it: a timestamp is then one f-string, not a
# datetime, an isoformat and a replace. One tuple, swapped whole, so threads may share it.
_second: tuple[int, str] = (-1, "")


def iso_from_epoch(t: float) -> str:
    """``2026-11-22T15:08:37.123Z`` (UTC, milliseconds truncated, as ``isoformat`` would)."""
    global _second
    sec = int(t)
    cached_sec, prefix = _second
    if sec != cached_sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _second = (sec, prefix)
    return f"{prefix}.{int((t - sec) * 1000):03d}Z"


def canonical_json(args: Any) -> str:
    return _CANONICAL.encode(args)  # json.dumps with these options builds a new encoder per call


def digest_text(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def cap_args(text: str) -> str:
    return text if len(text) <= MAX_ARGS_CHARS else text[: MAX_ARGS_CHARS - 12] + "…(truncated)"



class PendingEvent:
    """An event the request path hands over unfinished; :meth:`build` completes it.

    Serialising, digesting and redacting the arguments and formatting the id and timestamp are
    most of an event's cost. Done by a sink's writer, in a batch, they leave the request path
    (DESIGN: audit is batched off the request path). Write calls build before they commit.
    """

    __slots__ = ()

    def build(self) -> AuditEvent:
        raise NotImplementedError

    def fallback(self, error: BaseException) -> AuditEvent:
        """The event to store when :meth:`build` fails: what little is certain, and why."""
        return AuditEvent(
            id=new_event_id(), ts=utc_now_iso(), duration_ms=0.0, run_id="", principal="(unknown)",
            principal_kind="", client="", client_version="", server="", tool="(unknown)", toolset="",
            access="", args="{}", args_digest="", decision="", rule_id="", outcome="error",
            message=f"the audit event could not be built: {type(error).__name__}",
        )


AuditItem = AuditEvent | PendingEvent


def materialize(item: AuditItem) -> AuditEvent:
    """The event of an item; never raises, so a writer thread never dies on one bad event."""
    if isinstance(item, AuditEvent):
        return item
    try:
        return item.build()
    except Exception as e:
        log.exception("building an audit event failed; storing what is known")
        return item.fallback(e)


class AuditSink(Protocol):
    def emit(self, event: AuditItem) -> None:
        """Queue an event; never blocks the request path. Must not raise."""

    async def emit_durable(self, event: AuditEvent) -> None:
        """Return only once the event is committed; raise if it cannot be."""

    def healthy(self) -> bool:
        """False once the sink has failed to persist; write calls are then refused."""

    def close(self) -> None:
        """Flush everything queued and release resources."""


class MemorySink:
    """Keeps events in a list: for tests and for ``spyglass policy explain``."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.fail = False

    def emit(self, event: AuditItem) -> None:
        if not self.fail:
            self.events.append(materialize(event))

    async def emit_durable(self, event: AuditEvent) -> None:
        if self.fail:
            raise OSError("audit sink failing (test)")
        self.events.append(event)

    def healthy(self) -> bool:
        return not self.fail

    def close(self) -> None:
        pass


class FanoutSink:
    """Sends every event to several sinks (e.g. SQLite plus OTel spans). The first is primary.

    A batched primary (``QueuedSink``) takes the pending item as it is and, once its writer has
    built the event, hands it to the others as ``followers``: building stays off the request
    path. Any other primary gets the event built here, once for all sinks.
    """

    def __init__(self, *sinks: AuditSink) -> None:
        self.sinks = sinks
        followers: list[AuditSink] | None = getattr(sinks[0], "followers", None)
        self._followed = followers is not None
        if followers is not None:
            followers.extend(sinks[1:])

    def emit(self, event: AuditItem) -> None:
        if self._followed:
            self.sinks[0].emit(event)
            return
        built = materialize(event)  # once, not once per sink
        for s in self.sinks:
            s.emit(built)

    async def emit_durable(self, event: AuditEvent) -> None:
        await self.sinks[0].emit_durable(event)
        if not self._followed:  # else the primary's writer has handed it on
            for s in self.sinks[1:]:
                s.emit(event)

    def healthy(self) -> bool:
        return self.sinks[0].healthy()

    def close(self) -> None:
        for s in self.sinks:
            s.close()


# --- The canonical body, specialised ------------------------------------------------------------
# ``_CANONICAL.encode`` of an event body (every field but ``hash``, keys sorted) costs ~7.5 µs: the
# generic encoder sorts and dispatches on every value. The field set is fixed, so one generated
# f-string encodes each field with the C string escaper or a repr. Any value of another type than
# its field declares goes through the generic encoder, so the bytes are always the same.


def _json_str(v: Any) -> str:
    return encode_basestring_ascii(v) if type(v) is str else _CANONICAL.encode(v)


def _json_int(v: Any) -> str:
    if v is None:
        return "null"
    return int.__repr__(v) if type(v) is int else _CANONICAL.encode(v)


def _json_float(v: Any) -> str:
    return float.__repr__(v) if type(v) is float and v - v == 0 else _CANONICAL.encode(v)  # inf, nan: generic


def _json_bool(v: Any) -> str:
    return "true" if v is True else "false" if v is False else _CANONICAL.encode(v)


def _compile_canonical_body() -> Callable[[AuditEvent], str]:
    encoder_of = {"str": "_json_str", "float": "_json_float", "int": "_json_int", "int | None": "_json_int",
                  "bool": "_json_bool"}
    declared = {f.name: str(f.type) for f in fields(AuditEvent)}
    pieces = []
    for i, name in enumerate(sorted(n for n in EVENT_FIELDS if n != "hash")):
        pieces.append(("{{" if i == 0 else ",") + f'"{name}":{{{encoder_of[declared[name]]}(e.{name})}}')
    source = "def canonical_body(e):\n    return f'" + "".join(pieces) + "}}'\n"
    namespace: dict[str, Any] = {"_json_str": _json_str, "_json_int": _json_int, "_json_float": _json_float,
                                 "_json_bool": _json_bool}
    exec(compile(source, "<guards.audit canonical_body>", "exec"), namespace)
    body: Callable[[AuditEvent], str] = namespace["canonical_body"]
    return body


canonical_body = _compile_canonical_body()
