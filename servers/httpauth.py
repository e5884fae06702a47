"""Bearer tokens for `spyglass serve --http`, stored hashed in spyglass.toml:

    [[http.tokens]]
    principal = "ci-agent"
    sha256 = "<hex of sha256(token)>"

`spyglass token new PRINCIPAL` mints one. Comparison is constant-time on the digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from typing import Any

from mcp.server.auth.provider import AccessToken

from servers.config import ConfigError


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint_token() -> str:
    return "spy_" + secrets.token_urlsafe(32)


def load_tokens(config: Mapping[str, Any]) -> dict[str, str]:
    """digest -> principal, validated."""
    out: dict[str, str] = {}
    for i, entry in enumerate((config.get("http") or {}).get("tokens") or []):
        principal, digest = entry.get("principal"), str(entry.get("sha256", "")).lower()
        if not principal or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(
                f"http.tokens[{i}]: needs principal and sha256 (64 hex chars); mint one with `spyglass token new NAME`"
            )
        out[digest] = str(principal)
    return out


class HashedTokenVerifier:
    def __init__(self, digests: Mapping[str, str]) -> None:
        self._digests = dict(digests)

    async def verify_token(self, token: str) -> AccessToken | None:
        digest = token_digest(token)
        for known, principal in self._digests.items():
            if hmac.compare_digest(known, digest):
                return AccessToken(token=token, client_id=principal, subject=principal, scopes=[],
                                   expires_at=int(time.time()) + 3600)
        return None
