"""Who is calling: the identity every decision and audit event is keyed on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """``name`` is asserted by the transport (bearer token or OS user); ``client`` is self-declared."""

    name: str
    kind: str  # "token" | "os" | "anonymous"
    client: str = "unknown"
    client_version: str = ""
    run_id: str = ""
