"""What the batched audit sinks share: a queue that a writer thread drains. ``emit`` never blocks
the request path; ``emit_durable`` (write calls) returns once its batch is committed; ``close``
flushes. Each sink supplies only its writer loop (``_run``) and where it writes (``location``)."""

from __future__ import annotations

import atexit
import queue
import threading
import uuid
from typing import Any

import anyio

from guards.audit import AuditEvent, AuditItem
from guards.errors import AuditUnavailable

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

    def _start(self, thread_name: str) -> None:
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
