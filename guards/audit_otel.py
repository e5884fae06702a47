"""OpenTelemetry sink: one span per tool call, with the MCP / GenAI semantic-convention attributes.

Span name ``tools/call {tool}``, kind SERVER, timed from the audit event (it ends at ``ts`` and
lasted ``duration_ms``). Attributes: ``mcp.method.name``, ``mcp.session.id``,
``gen_ai.operation.name=execute_tool``, ``gen_ai.tool.name``, ``error.type`` on failures, plus
``spyglass.*`` (decision, rule_id, outcome, toolset, access, principal, client, upstream, ...).
Arguments, their digest, results and failure messages are never put in spans: a trace
backend is not the place for them (the audit log has the redacted arguments).

Needs ``opentelemetry-sdk`` (``pip install 'spyglass-mcp[otel]'``); the OTLP exporter is used by
:func:`otlp_tracer_provider` when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (see ``guards.sinks``).
"""

from __future__ import annotations

import logging
from typing import Any

from guards.audit import AuditEvent, AuditItem, materialize
from guards.audit_store import parse_ts

log = logging.getLogger("spyglass.audit")

# The attributes a span carries, and nothing else: a test pins that arguments never appear.
SPAN_ATTRIBUTES = (
    "mcp.method.name", "mcp.session.id", "gen_ai.operation.name", "gen_ai.tool.name", "error.type",
    "spyglass.event_id", "spyglass.decision", "spyglass.rule_id", "spyglass.outcome", "spyglass.toolset",
    "spyglass.access", "spyglass.principal", "spyglass.client", "spyglass.client_version", "spyglass.server",
    "spyglass.upstream", "spyglass.upstream_status", "spyglass.upstream_calls", "spyglass.response_bytes",
    "spyglass.est_tokens", "spyglass.truncated", "spyglass.empty", "spyglass.plan_id",
)


def span_attributes(e: AuditEvent) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": e.tool,
        "spyglass.event_id": e.id,
        "spyglass.decision": e.decision,
        "spyglass.rule_id": e.rule_id,
        "spyglass.outcome": e.outcome,
        "spyglass.toolset": e.toolset,
        "spyglass.access": e.access,
        "spyglass.principal": e.principal,
        "spyglass.client": e.client,
        "spyglass.server": e.server,
        "spyglass.upstream_calls": e.upstream_calls,
        "spyglass.response_bytes": e.response_bytes,
        "spyglass.est_tokens": e.est_tokens,
        "spyglass.truncated": e.truncated,
        "spyglass.empty": e.empty,
    }
    if e.run_id:
        attrs["mcp.session.id"] = e.run_id
    if e.client_version:
        attrs["spyglass.client_version"] = e.client_version
    if e.upstream:
        attrs["spyglass.upstream"] = e.upstream
    if e.upstream_status is not None:
        attrs["spyglass.upstream_status"] = e.upstream_status
    if e.plan_id:
        attrs["spyglass.plan_id"] = e.plan_id
    if e.outcome != "ok":
        attrs["error.type"] = e.outcome
    return attrs


def _ns(ts: str) -> int:
    return int(parse_ts(ts).timestamp() * 1e9)


class OTelSink:
    """Emits spans through a tracer provider (the global one unless given)."""

    def __init__(self, tracer_provider: Any = None, *, own_provider: bool = False) -> None:
        from opentelemetry import trace

        self._provider: Any = tracer_provider or trace.get_tracer_provider()
        self._own = own_provider
        self._tracer = self._provider.get_tracer("spyglass")
        self._trace = trace

    def emit(self, item: AuditItem) -> None:
        try:
            event = materialize(item)
            end = _ns(event.ts)
            start = end - int(event.duration_ms * 1e6)
            span = self._tracer.start_span(
                f"tools/call {event.tool}",
                kind=self._trace.SpanKind.SERVER,
                attributes=span_attributes(event),
                start_time=start,
            )
            if event.outcome != "ok":
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, event.outcome))
            span.end(end_time=end)
        except Exception:  # tracing must never break a call
            log.debug("otel span for %s failed", getattr(item, "id", "a pending event"), exc_info=True)

    async def emit_durable(self, event: AuditEvent) -> None:
        self.emit(event)

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        if self._own:
            try:
                self._provider.shutdown()
            except Exception:
                log.debug("otel shutdown failed", exc_info=True)


def otlp_tracer_provider(service_name: str = "spyglass") -> Any:
    """A provider exporting over OTLP/HTTP, configured by the standard ``OTEL_*`` variables."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
