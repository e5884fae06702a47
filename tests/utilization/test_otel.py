"""OpenTelemetry sink: a span per tool call with MCP/GenAI semantic-convention attributes, never arguments."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is not installed (the otel extra)")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from guards.audit import FanoutSink, MemorySink
from guards.audit_otel import SPAN_ATTRIBUTES, OTelSink
from tests.conftest import Harness
from tests.utilization.helpers import ev


@pytest.fixture
def spans() -> tuple[OTelSink, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OTelSink(provider, own_provider=True), exporter


def test_a_call_becomes_one_server_span_named_after_the_method_and_tool(spans) -> None:
    sink, exporter = spans
    sink.emit(ev(0, duration_ms=250.0, run_id="sess-1", rule_id="defaults.read"))
    (span,) = exporter.get_finished_spans()
    assert span.name == "tools/call datadog_search_logs" and span.kind == SpanKind.SERVER
    a = span.attributes
    assert (a["mcp.method.name"], a["gen_ai.operation.name"], a["gen_ai.tool.name"], a["mcp.session.id"]) == (
        "tools/call", "execute_tool", "datadog_search_logs", "sess-1")
    assert (a["spyglass.decision"], a["spyglass.rule_id"], a["spyglass.outcome"]) == ("allow", "defaults.read", "ok")
    assert span.end_time - span.start_time == 250_000_000
    assert "error.type" not in a and span.status.status_code == StatusCode.UNSET


def test_a_failed_call_carries_error_type_and_an_error_status(spans) -> None:
    sink, exporter = spans
    sink.emit(ev(0, outcome="denied", rule_id="weekend-freeze", message="Change freeze until Monday"))
    (span,) = exporter.get_finished_spans()
    assert span.attributes["error.type"] == "denied" and span.status.status_code == StatusCode.ERROR
    assert span.attributes["spyglass.rule_id"] == "weekend-freeze"


def test_spans_never_carry_arguments_digests_or_messages(spans) -> None:
    sink, exporter = spans
    secret_args = json.dumps({"query": "service:checkout canary-7f3a"})
    sink.emit(ev(0, args=secret_args, args_digest="digest-9b1", message="canary-7f3a not found", outcome="not_found"))
    (span,) = exporter.get_finished_spans()
    assert set(span.attributes) <= set(SPAN_ATTRIBUTES)
    dumped = json.dumps(dict(span.attributes)) + span.name + (span.status.description or "")
    assert "canary-7f3a" not in dumped and "digest-9b1" not in dumped



@pytest.mark.anyio
async def test_guarded_calls_through_a_fanout_reach_both_the_audit_log_and_the_tracer(harness: Harness, spans) -> None:
    otel, exporter = spans
    memory = MemorySink()
    harness.sink = FanoutSink(memory, otel)  # type: ignore[assignment]
    async with harness.client(harness.server(toolsets=["datadog"])) as c:
        await c.call_tool("datadog_search_logs", {"query": "service:checkout", "limit": 5})
        await c.call_tool("datadog_search_logs", {"query": "service:checkout", "limit": 100000})  # invalid
    outcomes = [s.attributes["spyglass.outcome"] for s in exporter.get_finished_spans()]
    assert outcomes == [e.outcome for e in memory.events] == ["ok", "invalid_args"]
    assert all("service:checkout" not in json.dumps(dict(s.attributes)) for s in exporter.get_finished_spans())


def test_spans_still_follow_a_batched_audit_log_which_builds_the_events_off_the_request_path(
    spans, tmp_path
) -> None:
    from guards.audit import PendingEvent
    from guards.audit_sqlite import SQLiteSink

    otel, exporter = spans
    built: list[str] = []

    class Pending(PendingEvent):
        __slots__ = ()

        def build(self):
            built.append("built")
            return ev(0, outcome="denied", rule_id="weekend-freeze")

    fanout = FanoutSink(SQLiteSink(tmp_path / "audit.db"), otel)
    fanout.emit(Pending())
    fanout.emit(ev(1))
    assert built == []  # the request path only queued it
    fanout.close()
    assert built == ["built"]
    assert [s.attributes["spyglass.outcome"] for s in exporter.get_finished_spans()] == ["denied", "ok"]
