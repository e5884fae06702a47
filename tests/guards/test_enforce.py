"""The seam: every call leaves exactly one audit event, whatever happens; writes fail closed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from guards.audit import MemorySink
from guards.decide import Decision
from guards.enforce import Guard, ToolMeta, ToolOutput, fit_to_budget
from guards.errors import InvalidArguments, NotFound, UpstreamError
from guards.limits import MemoryLimitStore
from guards.policy import parse_policy
from guards.principal import Principal
from guards.record import CallRecord
from guards.redact import Redactor

pytestmark = pytest.mark.anyio

READ = ToolMeta("t_read", "datadog", "read", "datadog", budget_tokens=500)
WRITE = ToolMeta("t_write", "deploy_write", "write", "deploy")
WHO = Principal("alice", "os", "claude-code", "2.1", "run-1")
POLICY = parse_policy({
    "toolsets": {"enabled": ["datadog", "deploy_write"]},
    "rules": [{"id": "allow-writes", "effect": "allow", "tools": ["t_write"]}],
    "limits": [{"id": "two-per-hour", "tools": ["t_read"], "max": 2, "per": "1h"}],
})


def ok_validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    return dict(raw)


def bad_validate(raw: Mapping[str, Any]) -> dict[str, Any]:
    raise InvalidArguments("limit: must be <= 200")


def returning(text: str, **kw: Any) -> Any:
    async def run(args: dict[str, Any], d: Decision, r: CallRecord) -> ToolOutput:
        r.upstream_attempt(200, 123)
        return ToolOutput(text, **kw)

    return run


def raising(exc: Exception) -> Any:
    async def run(args: dict[str, Any], d: Decision, r: CallRecord) -> ToolOutput:
        raise exc

    return run


def guard(sink: MemorySink | None = None, policy: Any = POLICY) -> Guard:
    return Guard(policy, sink or MemorySink(), MemoryLimitStore(), Redactor(known_secrets=["dd-app-key-123456"]))


@pytest.mark.parametrize(
    ("meta", "validate", "execute", "outcome", "is_error"),
    [
        (READ, ok_validate, returning("fine"), "ok", False),
        (READ, bad_validate, returning("never"), "invalid_args", True),
        (READ, ok_validate, raising(NotFound("no such trace")), "not_found", True),
        (READ, ok_validate, raising(UpstreamError("boom", upstream_status=502, retryable=True)), "upstream_error",
         True),
        (READ, ok_validate, raising(RuntimeError("secret internal detail")), "error", True),
        (ToolMeta("t_other", "slack", "read", "slack"), ok_validate, returning("x"), "denied", True),
        (WRITE, ok_validate, returning("deployed"), "ok", False),
    ],
)
async def test_every_call_leaves_exactly_one_audit_event_with_its_outcome(
    meta: ToolMeta, validate: Any, execute: Any, outcome: str, is_error: bool
) -> None:
    sink = MemorySink()
    result = await guard(sink).run(meta, {"q": "x"}, WHO, validate, execute)
    assert len(sink.events) == 1
    event = sink.events[0]
    assert (event.outcome, result.is_error) == (outcome, is_error)
    assert (event.principal, event.client, event.run_id) == ("alice", "claude-code", "run-1")


async def test_a_crash_never_leaks_its_message_to_the_model() -> None:
    result = await guard().run(READ, {}, WHO, ok_validate, raising(RuntimeError("secret internal detail")))
    assert "secret internal detail" not in result.text and "internal error in t_read" in result.text


async def test_a_denial_names_its_rule_and_what_would_allow_it() -> None:
    sink = MemorySink()
    meta = ToolMeta("t_other", "slack", "read", "slack")
    result = await guard(sink).run(meta, {}, WHO, ok_validate, returning("x"))
    assert "toolset 'slack' is not enabled" in result.text and "[toolsets] enabled" in result.text
    assert (sink.events[0].decision, sink.events[0].rule_id) == ("deny", "toolsets.enabled")


async def test_a_spent_limit_is_rate_limited_with_the_limit_id_and_when_to_retry() -> None:
    sink, g = MemorySink(), guard()
    g.sink = sink
    for _ in range(2):
        assert not (await g.run(READ, {}, WHO, ok_validate, returning("x"))).is_error
    third = await g.run(READ, {}, WHO, ok_validate, returning("x"))
    assert third.is_error and "limit 'two-per-hour' allows 2 per 1h" in third.text and "retry in" in third.text
    assert (sink.events[-1].outcome, sink.events[-1].rule_id) == ("rate_limited", "two-per-hour")


async def test_output_and_audit_arguments_are_redacted() -> None:
    sink = MemorySink()
    text = "key AKIAIOSFODNN7EXAMPLE and dd-app-key-123456"
    result = await guard(sink).run(READ, {"q": "password=hunter22"}, WHO, ok_validate, returning(text))
    assert "AKIA" not in result.text and "dd-app-key-123456" not in result.text
    assert "hunter22" not in sink.events[0].args


async def test_an_oversized_output_is_cut_to_budget_and_says_so() -> None:
    big = "\n".join(f"line {i} " + "x" * 80 for i in range(400))
    sink = MemorySink()
    result = await guard(sink).run(READ, {}, WHO, ok_validate, returning(big))
    assert "[output cut at the 500-token budget" in result.text and len(result.text) < 500 * 4
    assert sink.events[0].truncated and result.meta["truncated"] is True


async def test_a_truncated_result_carries_the_envelope_in_text_and_meta() -> None:
    result = await guard().run(READ, {}, WHO, ok_validate, returning("a\nb", truncated=True, total=9,
                                                                         next_cursor="abc"))
    assert result.text.endswith("[truncated · total=9 · next_cursor=abc (pass as cursor to continue)]")
    assert result.meta == {"truncated": True, "total": 9, "next_cursor": "abc"}


async def test_writes_are_refused_when_the_audit_log_cannot_be_written() -> None:
    sink = MemorySink()
    sink.fail = True
    ran = []

    async def execute(args: dict[str, Any], d: Decision, r: CallRecord) -> ToolOutput:
        ran.append(1)
        return ToolOutput("deployed")

    result = await guard(sink).run(WRITE, {}, WHO, ok_validate, execute)
    assert result.is_error and "audit log cannot be written" in result.text and not ran


async def test_reads_still_work_when_the_audit_sink_is_unhealthy() -> None:
    sink = MemorySink()
    sink.fail = True
    result = await guard(sink).run(READ, {}, WHO, ok_validate, returning("fine"))
    assert not result.is_error


async def test_every_call_carries_a_deadline_from_its_timeout() -> None:
    seen: list[float | None] = []

    async def run(args: dict[str, Any], d: Decision, r: CallRecord) -> ToolOutput:
        seen.append(r.remaining_s())
        return ToolOutput("x")

    meta = ToolMeta("t_read", "datadog", "read", "datadog", timeout_s=30)
    await guard().run(meta, {}, WHO, ok_validate, run)
    assert seen[0] is not None and 29 < seen[0] <= 30


def test_fit_to_budget_keeps_whole_lines() -> None:
    text, cut = fit_to_budget("\n".join(["abcdefghij"] * 200), 100)
    assert cut and all(line in ("abcdefghij", "") or line.startswith("[output cut") for line in text.splitlines())


async def test_a_call_whose_event_cannot_be_built_is_still_audited_with_who_called_what(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import guards.enforce

    def broken(_args: Any) -> str:
        raise ValueError("Circular reference detected")

    monkeypatch.setattr(guards.enforce, "canonical_json", broken)
    sink = MemorySink()
    result = await guard(sink).run(READ, {"q": "x"}, WHO, ok_validate, returning("fine"))
    [event] = sink.events
    assert not result.is_error and result.text == "fine"
    assert (event.tool, event.principal, event.outcome) == ("t_read", "alice", "error")
    assert "could not be built" in event.message
