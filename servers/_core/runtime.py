"""Per-process runtime shared by every registered tool: the guard, lazily built clients, identity."""

from __future__ import annotations

import getpass
import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from mcp.server.auth.middleware.auth_context import get_access_token

from guards.enforce import Guard
from guards.errors import ToolFailure
from guards.principal import Principal
from servers._core.spec import ClientEnv, Toolset
from servers.config import STATE_HOME

log = logging.getLogger("spyglass.runtime")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown-user"


def http_run_id(headers: Mapping[str, str], meta: Mapping[str, Any] | None, who: str, day: str) -> str:
    """Which run an HTTP call belongs to. 2026-era clients hold no session, so, in order: the
    legacy session id; an explicit ``X-Spyglass-Run-Id``; the W3C trace id the client propagates
    in ``_meta.traceparent``; else one run per principal and client per UTC day."""
    return explicit_run_id(headers, meta) or day_run_id(who, day)


def explicit_run_id(headers: Mapping[str, str], meta: Mapping[str, Any] | None) -> str | None:
    """The run the call names itself (session id, ``X-Spyglass-Run-Id``, traceparent), if any."""
    explicit = headers.get("mcp-session-id") or headers.get("x-spyglass-run-id")
    if explicit:
        return explicit[:64]
    traceparent = (meta or {}).get("traceparent")
    if isinstance(traceparent, str) and traceparent.count("-") == 3:
        return "trace-" + traceparent.split("-")[1][:32]
    return None


def day_run_id(who: str, day: str) -> str:
    """The fallback run: one per principal and client (``who``) per UTC day."""
    return "day-" + hashlib.sha256(f"{who}|{day}".encode()).hexdigest()[:12]


def _request_context(context: Any) -> Any:
    """The SDK Context's request context, or None outside a request. Read from pydantic's private
    store first: the public property goes through pydantic's __getattr__, a few µs per call."""
    private = getattr(context, "__pydantic_private__", None)
    if isinstance(private, dict) and "_request_context" in private:
        return private["_request_context"]
    try:
        return context.request_context
    except Exception:  # direct call without a request (tests, `policy explain`)
        return None


@dataclass
class Runtime:
    guard: Guard
    env: Mapping[str, str]
    load_toolset: Callable[[str], Toolset]
    config: Mapping[str, Any] = field(default_factory=dict)
    transports: Mapping[str, httpx2.AsyncBaseTransport] = field(default_factory=dict)
    state_dir: Path = STATE_HOME  # as resolved by servers.config when the CLI builds the server
    transport_kind: str = "stdio"  # "stdio" | "http" | "memory"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    os_user: str = field(default_factory=_os_user)
    _clients: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # shared stores a toolset keeps per process
    # Principals are immutable values; a call reuses the one its identity already has (keyed by
    # value, never by session object: 2026-protocol sessions live for one request).
    _principals: dict[tuple[str, str, str, str, str], Principal] = field(default_factory=dict)

    def client_env(self, upstream: str) -> ClientEnv:
        return ClientEnv(
            env=self.env,
            config=self.config,
            transport=self.transports.get(upstream),
            register_secret=lambda s: self.guard.redactor.add_known_secrets([s]),
        )

    async def client_for(self, toolset: Toolset) -> Any:
        """The toolset's client, built on first use; MissingAccess when credentials are absent."""
        key = f"{toolset.name}:{id(toolset.make_client)}"
        client = self._clients.get(key)
        if client is None:
            client = toolset.make_client(self.client_env(toolset.upstream))
            self._clients[key] = client
        return client

    async def optional_client(self, toolset_name: str) -> Any | None:
        """Another toolset's client, or None when it is not usable here: unknown (KeyError), not
        installed (ImportError), or its client refused to start (ToolFailure, e.g. MissingAccess)."""
        try:
            return await self.client_for(self.load_toolset(toolset_name))
        except (KeyError, ImportError, ToolFailure):
            return None

    async def aclose(self) -> None:
        for c in list(self._clients.values()):
            close = getattr(c, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # closing must not mask shutdown
                    log.debug("closing client failed", exc_info=True)
        self._clients.clear()

    def principal(self, context: Any) -> Principal:
        """stdio: the OS user. HTTP: the principal the bearer token maps to. Plus client info."""
        client, version, run_id = "unknown", "", self.run_id
        rc = _request_context(context)
        token = get_access_token()
        if rc is not None:
            params = getattr(rc.session, "client_params", None)
            info = getattr(params, "client_info", None)
            if info is not None:
                client, version = info.name or "unknown", info.version or ""
            if rc.request is not None:
                # The day's run (a strftime and a hash) only when the call names no run itself.
                meta = rc.meta if isinstance(rc.meta, dict) else None
                run_id = explicit_run_id(rc.request.headers, meta) or day_run_id(
                    f"{token.client_id if token is not None else 'anonymous'}|{client}|{version}",
                    datetime.now(UTC).strftime("%Y-%m-%d"))
        if token is not None:
            key = (token.client_id or "token", "token", client, version, run_id)
        elif self.transport_kind == "http":
            key = ("anonymous", "anonymous", client, version, run_id)
        else:
            key = (self.os_user, "os", client, version, run_id)
        principal = self._principals.get(key)
        if principal is None:
            if len(self._principals) >= 4096:  # bounded: HTTP run ids change per trace and per day
                self._principals.clear()
            principal = self._principals[key] = Principal(*key)
        return principal
