"""Read scoping for every Datadog tool: policy ``[[scopes]]`` toolset "datadog", ``indexes`` and ``services``.

Upstream filters narrow what Datadog sends; results are post-filtered here anyway, because a
filter the upstream ignores must never widen the scope. An item is in scope when it names at
least one service and every service it names is allowed (fail closed: an item naming no service
is withheld while a services scope is set). Withheld items are counted into the call's audit record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from servers._core.errors import PolicyDenied
from servers._core.spec import ToolContext

T = TypeVar("T")
SERVICES_RULE = "scopes.datadog.services"


def allowed_services(ctx: ToolContext) -> list[str] | None:
    return ctx.scope.services if ctx.scope else None


def scoped_indexes(ctx: ToolContext, requested: str | None) -> list[str] | None:
    allowed = ctx.scope.indexes if ctx.scope else None
    if requested:
        if allowed is not None and requested not in allowed:
            raise PolicyDenied(
                f"index {requested!r} is outside the Datadog scope",
                rule_id="scopes.datadog.indexes",
                hint=f"use one of: {', '.join(allowed)}",
            )
        return [requested]
    if allowed is not None:
        ctx.record.scoped()
        return list(allowed)
    return None


def scoped_query(ctx: ToolContext, query: str, key: str = "service") -> str:
    """Narrow a search query to the scoped services (results are post-filtered too)."""
    services = allowed_services(ctx)
    if not services:
        return query
    ctx.record.scoped()
    clause = f"{key}:(" + " OR ".join(services) + ")"
    return clause if query.strip() in ("", "*") else f"({query}) {clause}"


def in_service_scope(ctx: ToolContext, service: str | None) -> bool:
    services = allowed_services(ctx)
    return services is None or (service is not None and service in services)


def names_only_allowed(ctx: ToolContext, named: Iterable[str]) -> bool:
    allowed = allowed_services(ctx)
    if allowed is None:
        return True
    names = {n for n in named if n}
    return bool(names) and names <= set(allowed)


def keep_in_scope(ctx: ToolContext, items: list[T], services_of: Callable[[T], Iterable[str]]) -> list[T]:
    """Items whose services are all in scope; the rest are withheld and counted."""
    if allowed_services(ctx) is None:
        return items
    kept = [x for x in items if names_only_allowed(ctx, services_of(x))]
    ctx.record.scoped(len(items) - len(kept))
    return kept


def require_in_scope(ctx: ToolContext, what: str, named: Iterable[str]) -> None:
    """For a fetch by id: refuse (and audit) an item outside the services scope."""
    if allowed_services(ctx) is None:
        return
    names = sorted({n for n in named if n})
    ctx.record.scoped()
    if not names_only_allowed(ctx, names):
        ctx.record.scoped(1)
        raise PolicyDenied(
            f"{what} is outside the Datadog scope (it names services: {', '.join(names) or 'none'})",
            rule_id=SERVICES_RULE,
            hint=f"the policy allows services: {', '.join(allowed_services(ctx) or [])}",
        )
