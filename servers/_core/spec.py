"""Tools as values: a ToolSpec per tool, a Toolset per vendor surface.

A read toolset holds only read tools and a write toolset only write tools (checked here, at
import), so "read-only" is a filter on toolsets applied before registration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import httpx2
from pydantic import BaseModel, ConfigDict, Field

from guards.decide import Decision
from guards.enforce import ToolMeta, ToolOutput
from guards.policy import Policy, Scope
from guards.principal import Principal
from guards.record import CallRecord
from servers._core.egress import Route

if TYPE_CHECKING:
    from servers._core.runtime import Runtime

Access = Literal["read", "write"]


class Params(BaseModel):
    """Base for every tool's arguments: unknown fields are errors, every field is described."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class WindowParams(Params):
    """``from`` / ``to`` the same way in every time-windowed tool."""

    from_: str | int | None = Field(
        None,
        alias="from",
        description="Start: ISO 8601, epoch seconds, or relative ('now-1h', '15m' = 15 min ago, 'today'). "
        "Default: 1h before 'to'.",
    )
    to: str | int | None = Field(None, description="End, same forms as 'from'. Default: now.")


@dataclass(slots=True)
class ToolContext:
    """What a tool function gets besides its params."""

    client: Any
    principal: Principal
    now: datetime
    policy: Policy
    scope: Scope | None
    record: CallRecord
    decision: Decision
    runtime: Runtime
    progress: Callable[[float, float | None, str | None], Awaitable[None]] | None = None

    async def optional_client(self, toolset: str) -> Any | None:
        """Another toolset's client when its credentials are configured, else None."""
        return await self.runtime.optional_client(toolset)


ToolFn = Callable[[Any, ToolContext], Awaitable[ToolOutput]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    toolset: str
    access: Access
    title: str
    description: str
    params: type[Params]
    fn: ToolFn
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = True
    budget_tokens: int = 6000
    timeout_s: float = 60.0
    # For tools whose arguments point at a stored request (deploy_apply(plan_id)): what policy and
    # limits decide on. Gets the runtime so it can verify what it decodes before any budget is drawn.
    policy_args: Callable[[Mapping[str, Any], Principal, Runtime], Awaitable[Mapping[str, Any]]] | None = None
    # For tools that need the runtime rather than one vendor client (context, deploy).
    needs_client: bool = True

    def meta(self, upstream: str, runtime: Runtime | None = None) -> ToolMeta:
        bound = None
        if self.policy_args is not None and runtime is not None:
            resolve, rt = self.policy_args, runtime

            async def bound(args: Mapping[str, Any], principal: Principal) -> Mapping[str, Any]:
                return await resolve(args, principal, rt)

        return ToolMeta(
            name=self.name,
            toolset=self.toolset,
            access=self.access,
            upstream=upstream,
            budget_tokens=self.budget_tokens,
            timeout_s=self.timeout_s,
            policy_args=bound,
        )


@dataclass
class ClientEnv:
    """What a toolset's client factory may use: the environment, config, and test transports."""

    env: Mapping[str, str]
    config: Mapping[str, Any] = field(default_factory=dict)
    transport: httpx2.AsyncBaseTransport | None = None
    register_secret: Callable[[str], None] = lambda _s: None


ClientFactory = Callable[[ClientEnv], Any]


@dataclass(frozen=True)
class Toolset:
    name: str
    upstream: str
    access: Access
    instructions: str
    tools: tuple[ToolSpec, ...]
    make_client: ClientFactory
    routes: tuple[Route, ...] = ()
    # Environment variables that configure it: shown by `spyglass doctor` and the README.
    env_vars: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.access == "write") != self.name.endswith("_write"):
            raise ValueError(f"toolset {self.name!r}: write toolsets, and only they, are named *_write")
        for t in self.tools:
            if t.toolset != self.name:
                raise ValueError(f"tool {t.name!r} says toolset {t.toolset!r} but is listed in {self.name!r}")
            if t.access != self.access:
                raise ValueError(f"tool {t.name!r} is {t.access} but toolset {self.name!r} is {self.access}")
            if t.access == "read" and t.destructive:
                raise ValueError(f"read tool {t.name!r} cannot be destructive")
        if self.access == "read":
            writes = [r for r in self.routes if r.method not in ("GET", "HEAD") and r.retry is not True]
            if writes:
                raise ValueError(
                    f"read toolset {self.name!r} lists non-GET routes not marked as read-only searches: {writes}"
                )
