"""What the batched audit sinks share: a queue that a writer thread drains. ``emit`` never blocks
the request path; ``emit_durable`` (write calls) returns once its batch is committed; ``close``
flushes. The writer builds each pending event (:meth:`QueuedSink._chain`), seals it into the
sink's hash chain and then hands it to the sink's ``followers`` (e.g. OTel spans), so nothing is
built on the request path. Each sink supplies its writer loop (``_run``) and where it writes
(``location``)."""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import uuid
from typing import Any

import anyio

from guards.audit import AuditEvent, AuditItem, AuditSink, materialize, seal
from guards.errors import AuditUnavailable

log = logging.getLogger("spyglass.audit")

STOP = object()  # the sentinel ``close`` queues for the writer


class Durable:
    """A write call's event: the caller waits on ``done``; ``error`` says why it did not commit."""

    __slots__ = ("done", "error", "event")

    def __init__(self, event: AuditEvent | None) -> None:
        self.event = event  # None: a flush marker, nothing to write
        self.done = threading.Event()
        self.error: BaseException | None = None


class QueuedSink:
    location: str
    # Whether a sink that failed refuses durable emits outright (SQLite), or queues them for its
    # own retry (PostgreSQL keeps failed rows pending and retries with backoff).
    refuse_when_failed = True
    _batch_max: int

    def _start(self, thread_name: str) -> None:
        # Sinks that get every event once the writer built it (``FanoutSink`` adds its secondaries).
        self.followers: list[AuditSink] = []
        self._follower_failed: set[int] = set()  # id() of followers whose failure was logged
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._urgent = threading.Event()  # set by durable emits and close: the writer stops waiting
        self._failed: BaseException | None = None
        self._closed = False
        self._stream = uuid.uuid4().hex[:12]
        self._prev_hash = ""
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        raise NotImplementedError

    # -- writer thread helpers ----------------------------------------------------------------
    def _drain(self, batch: list[Any]) -> tuple[list[Any], bool]:
        """``batch`` topped up with what is queued, without waiting, to ``_batch_max`` items;
        and whether ``close`` asked the writer to stop (the sentinel is taken out)."""
        while len(batch) < self._batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if any(b is STOP for b in batch):
            return [b for b in batch if b is not STOP], True
        return batch, False

    def _chain(self, batch: list[Any]) -> tuple[list[AuditEvent], list[Durable]]:
        """Build the batch's events and seal each into this sink's stream, in order; plus the
        batch's durable items (flush markers included), to release once it is committed."""
        events: list[AuditEvent] = []
        durables: list[Durable] = []
        for item in batch:
            if isinstance(item, Durable):
                durables.append(item)
                if item.event is None:  # a flush marker: released with this batch's commit
                    continue
                event = item.event
            else:
                event = materialize(item)
            self._prev_hash = seal(event, self._stream, self._prev_hash)
            events.append(event)
        return events, durables

    def _tell_followers(self, events: list[AuditEvent]) -> None:
        """Hand built events on. Called after the commit, so a write call's wait never includes
        them; a failing follower is logged once and never stops the audit log."""
        for follower in self.followers:
            try:
                for event in events:
                    follower.emit(event)
            except Exception:
                if id(follower) not in self._follower_failed:
                    self._follower_failed.add(id(follower))
                    log.warning("audit: %s failed to take events", type(follower).__name__, exc_info=True)

    def emit(self, event: AuditItem) -> None:
        self._queue.put(event)  # a PendingEvent is built by the writer, off the request path

    async def emit_durable(self, event: AuditEvent) -> None:
        if self._closed:
            raise AuditUnavailable(f"audit log {self.location} is closed")
        if self.refuse_when_failed and self._failed is not None:
            raise AuditUnavailable(f"audit log {self.location} is not writable: {self._failed}")
        item = Durable(event)
        self._queue.put(item)
        self._urgent.set()
        ok = await anyio.to_thread.run_sync(item.done.wait, 10.0)
        if not ok or item.error is not None:
            raise AuditUnavailable(f"audit log {self.location} did not commit: {item.error or 'timeout'}")

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Block until everything emitted before this call is committed; False if it was not."""
        if self._closed:
            return False
        marker = Durable(None)
        self._queue.put(marker)
        self._urgent.set()
        return marker.done.wait(timeout_s) and marker.error is None

    def healthy(self) -> bool:
        return self._failed is None and not self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(STOP)
        self._urgent.set()
        self._thread.join(timeout=30)
