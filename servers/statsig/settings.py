"""Statsig credentials: a Console API key (STATSIG_CONSOLE_API_KEY), read-only is enough."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from servers._core.errors import MissingAccess

DEFAULT_URL = "https://statsigapi.net"


@dataclass(frozen=True)
class StatsigSettings:
    base_url: str
    api_key: SecretStr

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StatsigSettings:
        key = (env.get("STATSIG_CONSOLE_API_KEY") or "").strip()
        if not key:
            raise MissingAccess(
                "Statsig credentials missing: STATSIG_CONSOLE_API_KEY not set",
                hint="create a Console API key (Project Settings > Keys & Environments; read-only is enough) "
                "and set STATSIG_CONSOLE_API_KEY",
            )
        return cls(env.get("SPYGLASS_STATSIG_URL") or DEFAULT_URL, SecretStr(key))
