"""The guarded seam: principal -> validate -> decide -> limits -> call -> redact -> shape -> audit.

Every tool call runs through :meth:`Guard.run` exactly once and leaves exactly one audit event,
whatever happens (allowed, denied, invalid, upstream-failed, crashed). Nothing here knows
about any vendor: the caller passes a :class:`ToolMeta` and two callables.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from guards.audit import (
    AuditEvent,
    AuditSink,
    PendingEvent,
    canonical_json,
    cap_args,
    digest_text,
    iso_from_epoch,
    new_event_id,
)
from guards.decide import Call, Decision, decide
from guards.errors import AuditUnavailable, LimitExceeded, LimitsUnavailable, Outcome, PolicyDenied, ToolFailure
from guards.limits import LimitStore, draws_for
from guards.policy import Policy
from guards.principal import Principal
from guards.record import CallRecord, bind_record, unbind_record
from guards.redact import Redactor

log = logging.getLogger("spyglass.guard")

CHARS_PER_TOKEN = 3.5  # conservative for English, JSON-ish lines and ids (Claude: ~3.5-4.5)


def estimate_tokens(text: str | int) -> int:
    """Tokens in a text, or in a text of this many characters (the guard counts characters as
    they stream by and keeps no text to measure)."""
    chars = text if isinstance(text, int) else len(text)
    return math.ceil(chars / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class ToolMeta:
    name: str
    toolset: str
    access: str  # "read" | "write"
    upstream: str
    budget_tokens: int = 6000
    timeout_s: float = 60.0
    # For tools whose arguments point at a stored request (deploy_apply(plan_id)): returns the
    # arguments policy and limits should see, so apply is re-decided on what it will do.
    policy_args: Callable[[Mapping[str, Any], Principal], Awaitable[Mapping[str, Any]]] | None = None


@dataclass
class ToolOutput:
    text: str
    truncated: bool = False
    total: int | None = None
    next_cursor: str | None = None
    empty: bool = False
    plan_id: str = ""


@dataclass(slots=True)
class GuardResult:
    text: str
    is_error: bool
    meta: dict[str, Any]


# validate returns the arguments as policy sees them; a Mapping, so a caller may produce them
# on first read (most decisions never read them).
Validate = Callable[[Mapping[str, Any]], Mapping[str, Any]]
Execute = Callable[[Mapping[str, Any], Decision, CallRecord], Awaitable[ToolOutput]]


def fit_to_budget(text: str, budget_tokens: int) -> tuple[str, bool]:
    """Cut at a line boundary so the estimate fits; say so in the text."""
    if estimate_tokens(text) <= budget_tokens:
        return text, False
    limit = int(budget_tokens * CHARS_PER_TOKEN) - 160
    cut = text.rfind("\n", 0, max(limit, 0))
    kept = text[: cut if cut > 0 else max(limit, 0)]
    note = (
        f"\n[output cut at the {budget_tokens}-token budget: narrow the query, lower `limit`, "
        "or page with the cursor]"
    )
    return kept + note, True


class Guard:
    def __init__(
        self,
        policy: Policy,
        sink: AuditSink,
        limits: LimitStore,
        redactor: Redactor,
        *,
        server_name: str = "spyglass",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy
        self.sink = sink
        self.limits = limits
        self.redactor = redactor
        self.server_name = server_name
        self.clock = clock

    async def run(
        self,
        meta: ToolMeta,
        raw_args: Mapping[str, Any],
        principal: Principal,
        validate: Validate,
        execute: Execute,
    ) -> GuardResult:
        started = time.perf_counter()
        # A deadline, not a timer: the I/O layer (egress) caps every wait to what is left, so
        # no per-call timer is armed on the hot path.
        now = self.clock()
        record = CallRecord(deadline=time.monotonic() + meta.timeout_s, started_at=now)
        token = bind_record(record)
        decision: Decision | None = None
        output: ToolOutput | None = None
        failure: ToolFailure | None = None
        args: Mapping[str, Any] = raw_args
        try:
            args = validate(raw_args)
            policy_args = await meta.policy_args(args, principal) if meta.policy_args else args
            decision = decide(
                Call(meta.name, meta.toolset, meta.access, policy_args, principal.name, principal.client),
                self.policy,
                now,
            )
            if not decision.allowed:
                raise PolicyDenied(decision.reason, rule_id=decision.rule_id, hint=decision.hint)
            if meta.access == "write" and not await self.limits.healthy():
                raise LimitsUnavailable(
                    "the shared limits store is unreachable, so write calls are refused",
                    hint="retry once it is back; read calls still work",
                )
            if self.policy.limits:
                await self._take_limits(meta, principal, policy_args)
            if meta.access == "write" and not self.sink.healthy():
                raise AuditUnavailable("the audit log cannot be written, so write calls are refused")
            output = await execute(args, decision, record)
        except ToolFailure as e:
            failure = e
        except Exception:
            log.exception("tool %s crashed", meta.name)
            failure = ToolFailure(f"internal error in {meta.name}; it is logged on the server", hint=None)
        finally:
            unbind_record(token)
        return await self._finish(meta, raw_args, principal, decision, record, output, failure, started)

    async def _take_limits(self, meta: ToolMeta, principal: Principal, args: Mapping[str, Any]) -> None:
        for draw in draws_for(
            self.policy,
            tool=meta.name,
            toolset=meta.toolset,
            upstream=meta.upstream,
            principal=principal.name,
            client=principal.client,
            args=args,
        ):
            wait = await self.limits.take(draw.bucket, draw.limit.max, draw.limit.per_seconds)
            if wait is not None:
                raise LimitExceeded(
                    f"limit {draw.limit.id!r} allows {draw.limit.max} per {draw.limit.per}; it is spent",
                    rule_id=draw.limit.id,
                    retry_after_s=wait,
                    hint=f"retry in {math.ceil(wait)}s",
                )

    async def _finish(
        self,
        meta: ToolMeta,
        raw_args: Mapping[str, Any],
        principal: Principal,
        decision: Decision | None,
        record: CallRecord,
        output: ToolOutput | None,
        failure: ToolFailure | None,
        started: float,
    ) -> GuardResult:
        result_meta: dict[str, Any]
        if output is not None and failure is None:
            text, cut = fit_to_budget(self.redactor.text(output.text), meta.budget_tokens)
            truncated = output.truncated or cut
            if output.truncated or output.next_cursor:
                text += _envelope(output)
            result_meta = {"truncated": truncated}
            if output.total is not None:
                result_meta["total"] = output.total
            if output.next_cursor:
                result_meta["next_cursor"] = output.next_cursor
            is_error = False
        else:
            assert failure is not None
            text, truncated, is_error, result_meta = self.redactor.text(failure.render()), False, True, {}
        pending = _CallEvent(self, meta, principal, dict(raw_args), decision, record, output, failure, len(text),
                             truncated, time.time(), time.perf_counter() - started)
        if meta.access == "write" and decision is not None and decision.allowed:
            try:
                await self.sink.emit_durable(pending.build())
            except Exception as e:  # the write may have happened: say so, never hide it
                log.error("audit commit failed for write %s: %s", meta.name, e)
                text = (
                    f"error: the audit event for this write could not be committed ({e}); "
                    f"what the tool reported:\n{text}"
                )
                is_error = True
        else:
            self.sink.emit(pending)
        return GuardResult(text=text, is_error=is_error, meta=result_meta)


class _CallEvent(PendingEvent):
    """One call's audit event as the request path leaves it: references, no serialising.

    :meth:`build` runs in the sink's writer (or before a write call's commit) and derives every
    field: redacted, capped arguments and their digest, outcome, rule, message, id, timestamp.
    """

    __slots__ = (
        "decision",
        "duration_s",
        "failure",
        "guard",
        "meta",
        "output",
        "principal",
        "raw_args",
        "record",
        "t",
        "text_chars",
        "truncated",
    )

    def __init__(self, guard: Guard, meta: ToolMeta, principal: Principal, raw_args: dict[str, Any],
                 decision: Decision | None, record: CallRecord, output: ToolOutput | None,
                 failure: ToolFailure | None, text_chars: int, truncated: bool, t: float, duration_s: float) -> None:
        self.guard, self.meta, self.principal, self.raw_args = guard, meta, principal, raw_args
        self.decision, self.record, self.output, self.failure = decision, record, output, failure
        self.text_chars, self.truncated, self.t, self.duration_s = text_chars, truncated, t, duration_s

    def fallback(self, error: BaseException) -> AuditEvent:
        event = super().fallback(error)
        event.ts, event.duration_ms = iso_from_epoch(self.t), round(self.duration_s * 1000, 3)
        event.principal, event.principal_kind = self.principal.name, self.principal.kind
        event.client, event.run_id, event.server = self.principal.client, self.principal.run_id, self.guard.server_name
        event.tool, event.toolset, event.access = self.meta.name, self.meta.toolset, self.meta.access
        event.upstream = self.meta.upstream
        return event

    def build(self) -> AuditEvent:
        redact = self.guard.redactor.text
        meta, principal, record, output, failure = self.meta, self.principal, self.record, self.output, self.failure
        decision, raw_args = self.decision, self.raw_args
        if failure is None:
            outcome = Outcome.OK
            # Notes a tool left on an allowed call (e.g. a guardrail in shadow mode) go to the audit only.
            notes = "; ".join(f"{k}: {v}" for k, v in sorted(record.notes.items())) if record.notes else ""
            message = redact(notes)[:300] if notes else ""
        else:
            outcome, message = failure.outcome, redact(failure.message)[:300]
        rl = record.rate_limit
        # One serialisation serves both: the digest binds the exact arguments, the stored copy
        # is the same text with secrets redacted.
        raw_json = canonical_json(raw_args)
        return AuditEvent(
            id=new_event_id(),
            ts=iso_from_epoch(self.t),
            duration_ms=round(self.duration_s * 1000, 3),
            run_id=principal.run_id,
            principal=principal.name,
            principal_kind=principal.kind,
            client=principal.client,
            client_version=principal.client_version,
            server=self.guard.server_name,
            tool=meta.name,
            toolset=meta.toolset,
            access=meta.access,
            args=cap_args(redact(raw_json)),
            args_digest=digest_text(raw_json),
            decision=_decision_label(decision, outcome),
            rule_id=getattr(failure, "rule_id", None) or (decision.rule_id if decision else ""),
            outcome=outcome.value,
            message=message,
            upstream=meta.upstream,
            upstream_status=record.upstream_status or (failure.upstream_status if failure else None),
            upstream_calls=record.upstream_calls,
            response_bytes=record.response_bytes,
            est_tokens=estimate_tokens(self.text_chars),
            truncated=self.truncated,
            empty=bool(output and output.empty),
            scope_applied=record.scope_applied,
            scope_filtered=record.scope_filtered,
            ratelimit_limit=rl.limit if rl else None,
            ratelimit_remaining=rl.remaining if rl else None,
            plan_id=(output.plan_id if output else "") or str(raw_args.get("plan_id", ""))[:64],
        )


def _decision_label(decision: Decision | None, outcome: Outcome) -> str:
    """What the audit calls the decision: a refusal by a scope or limit inside the call is a deny too."""
    if outcome in (Outcome.DENIED, Outcome.INVALID_ARGS) or decision is None:
        return "deny"
    return decision.effect


def _envelope(output: ToolOutput) -> str:
    parts = ["truncated" if output.truncated else "more available"]
    if output.total is not None:
        parts.append(f"total={output.total}")
    if output.next_cursor:
        parts.append(f"next_cursor={output.next_cursor} (pass as cursor to continue)")
    return "\n[" + " · ".join(parts) + "]"
