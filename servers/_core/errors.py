"""Typed tool errors (re-exported from ``guards``) and friendly argument-validation messages."""

from __future__ import annotations

from pydantic import ValidationError

from guards.errors import (
    AwaitingApproval,
    InvalidArguments,
    LimitExceeded,
    MissingAccess,
    NotFound,
    Outcome,
    PolicyDenied,
    RateLimited,
    ToolFailure,
    UpstreamError,
    UpstreamTimeout,
)

__all__ = [
    "AwaitingApproval",
    "EgressDenied",
    "InvalidArguments",
    "LimitExceeded",
    "MissingAccess",
    "NotFound",
    "Outcome",
    "PolicyDenied",
    "RateLimited",
    "ToolFailure",
    "UpstreamError",
    "UpstreamTimeout",
    "invalid_from_validation",
]


class EgressDenied(ToolFailure):
    """A request outside the client's route allowlist. Raised before any socket opens."""

    outcome = Outcome.DENIED
    rule_id = "egress.allowlist"


def invalid_from_validation(tool: str, exc: ValidationError) -> InvalidArguments:
    """One line per bad field: its name, what was wrong, and what is allowed."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        kind = err["type"]
        msg = err["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            msg = "unknown argument"
        elif kind == "missing":
            msg = "required"
        ctx = err.get("ctx") or {}
        if "expected" in ctx and kind in ("literal_error", "enum"):
            msg = f"must be one of {ctx['expected']}"
        lines.append(f"{field}: {msg}")
    return InvalidArguments(
        f"{tool}: " + "; ".join(lines),  # rendered after "invalid args: "
        hint="fix the named fields; the tool's input schema lists what is allowed",
    )
