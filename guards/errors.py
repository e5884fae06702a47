"""Failures a guarded call can end in, each mapped to one audit outcome.

Tool code raises subclasses of :class:`ToolFailure`; the seam turns them into ``isError``
results the model can act on and into audit events. Anything else is a bug: the model sees a
generic message and the audit records ``error``.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    ERROR = "error"
    UPSTREAM_ERROR = "upstream_error"
    RATE_LIMITED = "rate_limited"
    MISSING_ACCESS = "missing_access"
    INVALID_ARGS = "invalid_args"
    TIMEOUT = "timeout"
    NOT_FOUND = "not_found"
    AWAITING_APPROVAL = "awaiting_approval"


class ToolFailure(Exception):
    """A failure the model should read: says what went wrong and what would fix it."""

    outcome: Outcome = Outcome.ERROR
    retryable: bool = False

    def __init__(self, message: str, *, hint: str | None = None, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.upstream_status = upstream_status

    def render(self) -> str:
        kind = self.outcome.value.replace("_", " ")
        text = f"{kind}: {self.message}"
        if self.hint:
            text += f"\nnext: {self.hint}"
        return text


class InvalidArguments(ToolFailure):
    outcome = Outcome.INVALID_ARGS


class PolicyDenied(ToolFailure):
    outcome = Outcome.DENIED

    def __init__(self, message: str, *, rule_id: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule_id = rule_id


class AwaitingApproval(ToolFailure):
    outcome = Outcome.AWAITING_APPROVAL


class LimitExceeded(ToolFailure):
    """A Spyglass budget (not the upstream's) is spent."""

    outcome = Outcome.RATE_LIMITED
    retryable = True

    def __init__(self, message: str, *, rule_id: str, retry_after_s: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule_id = rule_id
        self.retry_after_s = retry_after_s


class MissingAccess(ToolFailure):
    outcome = Outcome.MISSING_ACCESS


class NotFound(ToolFailure):
    outcome = Outcome.NOT_FOUND


class UpstreamError(ToolFailure):
    outcome = Outcome.UPSTREAM_ERROR

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        upstream_status: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(message, hint=hint, upstream_status=upstream_status)
        self.retryable = retryable

    def render(self) -> str:
        text = super().render()
        return text + ("\nretry: may help later" if self.retryable else "\nretry: will not help as is")


class RateLimited(ToolFailure):
    """The upstream said 429 and its wait is longer than our retry budget."""

    outcome = Outcome.RATE_LIMITED
    retryable = True

    def __init__(self, message: str, *, retry_after_s: float | None, upstream_status: int | None = 429) -> None:
        wait = f"retry after {retry_after_s:.0f}s" if retry_after_s is not None else "retry later"
        super().__init__(message, hint=wait, upstream_status=upstream_status)
        self.retry_after_s = retry_after_s


class UpstreamTimeout(ToolFailure):
    outcome = Outcome.TIMEOUT
    retryable = True


class AuditUnavailable(ToolFailure):
    """Writes are refused when their audit event cannot be made durable (fail closed)."""

    outcome = Outcome.ERROR


class LimitsUnavailable(ToolFailure):
    """Writes are refused while a shared limits store cannot enforce budgets (fail closed)."""

    outcome = Outcome.ERROR
