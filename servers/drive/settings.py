"""Google credentials for Drive, the way Google's own tools find them.

- ``GOOGLE_APPLICATION_CREDENTIALS``: path to a service-account key or an OAuth ``authorized_user``
  file (what ``gcloud auth application-default login`` writes).
- ``SPYGLASS_DRIVE_CREDENTIALS_JSON``: the same JSON inline (the sandbox uses this; no temp files).
- ``SPYGLASS_DRIVE_URL``: API base override (sandbox/tests); only then may ``token_uri`` point at a
  host other than Google's token endpoints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from servers._core.errors import MissingAccess

DEFAULT_URL = "https://www.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_TOKEN_HOSTS = {"oauth2.googleapis.com", "accounts.google.com", "www.googleapis.com"}
SCOPES = ("https://www.googleapis.com/auth/drive.readonly",)
TYPES = ("service_account", "authorized_user")
_HINT = ("set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (share the folders with its "
         "client_email) or to an authorized_user file, or put the JSON in SPYGLASS_DRIVE_CREDENTIALS_JSON")


@dataclass(frozen=True)
class DriveSettings:
    base_url: str
    info: dict[str, Any] = field(repr=False)
    source: str

    @property
    def kind(self) -> str:
        return str(self.info["type"])

    @property
    def token_uri(self) -> str:
        return str(self.info.get("token_uri") or DEFAULT_TOKEN_URI)

    @property
    def principal(self) -> str:
        return str(self.info.get("client_email") or self.info.get("client_id") or "the OAuth user")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DriveSettings:
        inline, path = env.get("SPYGLASS_DRIVE_CREDENTIALS_JSON", "").strip(), env.get("GOOGLE_APPLICATION_CREDENTIALS")
        if inline:
            source, raw = "SPYGLASS_DRIVE_CREDENTIALS_JSON", inline
        elif path:
            source = "GOOGLE_APPLICATION_CREDENTIALS"
            try:
                raw = Path(path).expanduser().read_text(encoding="utf-8")
            except OSError as e:
                raise MissingAccess(f"GOOGLE_APPLICATION_CREDENTIALS: cannot read {path} ({e.strerror})",
                                    hint=_HINT) from None
        else:
            raise MissingAccess("Google Drive credentials missing: neither GOOGLE_APPLICATION_CREDENTIALS nor "
                                "SPYGLASS_DRIVE_CREDENTIALS_JSON is set", hint=_HINT)
        try:
            info = json.loads(raw)
        except ValueError:
            raise MissingAccess(f"{source}: not valid JSON", hint=_HINT) from None
        if not isinstance(info, dict) or info.get("type") not in TYPES:
            kind = info.get("type") if isinstance(info, dict) else None
            raise MissingAccess(f"{source}: credential type {kind!r} is not supported (use one of {', '.join(TYPES)})",
                                hint=_HINT)
        base = (env.get("SPYGLASS_DRIVE_URL") or DEFAULT_URL).rstrip("/")
        settings = cls(base, info, source)
        host = urlsplit(settings.token_uri).hostname or ""
        if not env.get("SPYGLASS_DRIVE_URL") and host not in GOOGLE_TOKEN_HOSTS:
            raise MissingAccess(f"{source}: token_uri host {host!r} is not a Google token endpoint",
                                hint="use the key file as Google issued it")
        return settings
