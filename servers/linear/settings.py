"""Linear credentials: a personal API key (LINEAR_API_KEY), sent as Linear expects for personal keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from servers._core.errors import MissingAccess

DEFAULT_URL = "https://api.linear.app"


@dataclass(frozen=True)
class LinearSettings:
    base_url: str
    api_key: SecretStr

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LinearSettings:
        key = (env.get("LINEAR_API_KEY") or "").strip()
        if not key:
            raise MissingAccess(
                "Linear credentials missing: LINEAR_API_KEY not set",
                hint="create a personal API key (Linear Settings > Account > Security & access; read access is "
                "enough unless linear_write is enabled) and set LINEAR_API_KEY",
            )
        if key.lower().startswith("bearer "):
            raise MissingAccess(
                "LINEAR_API_KEY starts with 'Bearer ': personal API keys are sent without it",
                hint="set LINEAR_API_KEY to the bare key (lin_api_...)",
            )
        return cls(env.get("SPYGLASS_LINEAR_URL") or DEFAULT_URL, SecretStr(key))
