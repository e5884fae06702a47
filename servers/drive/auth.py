"""Access tokens for Drive through google-auth, with its HTTP going through our guarded egress.

google-auth signs the service-account assertion (or uses the OAuth refresh token) and parses the
token endpoint's answer; the one HTTP request it makes goes through :class:`EgressRequest`, a
``google.auth.transport.Request``-compatible adapter over :class:`EgressClient` whose allowlist
holds exactly one route: ``POST`` to the credentials' ``token_uri``. google-auth is synchronous,
so a refresh runs in a worker thread and the adapter hops back to the event loop for the request.
``google.auth`` is imported on the first refresh only (cold start).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.from_thread
import anyio.to_thread

from servers._core.egress import EgressClient, Route
from servers._core.errors import MissingAccess, UpstreamError
from servers.drive.settings import SCOPES, DriveSettings


class _Response:
    """google.auth.transport.Response: status, headers, data."""

    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self.status, self.headers, self.data = status, dict(headers), data


class EgressRequest:
    """A google.auth.transport.Request over EgressClient, called from a worker thread."""

    def __init__(self, http: EgressClient, template: str) -> None:
        self.http, self.template = http, template

    def __call__(self, url: str, method: str = "GET", body: bytes | str | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float | None = None, **_kw: Any) -> _Response:
        from google.auth.exceptions import TransportError

        if method.upper() != "POST" or url != self.http.base_url + self.template:
            raise TransportError(f"google-auth asked for {method} {url}, outside the token route allowlist")
        text = body.decode() if isinstance(body, bytes) else body or ""
        ctype = {k.lower(): v for k, v in (headers or {}).items()}.get("content-type", "")
        kw: dict[str, Any] = {"json": json.loads(text)} if "json" in ctype else {"data": dict(parse_qsl(text))}
        # Every status comes back to google-auth: it owns the retry and error logic of the token flow.
        call = partial(self.http.request, "POST", self.template, expect=range(300, 600), **kw)
        resp = anyio.from_thread.run(call)
        return _Response(resp.status, resp.headers, resp.content)


def token_route(settings: DriveSettings) -> tuple[str, Route]:
    parts = urlsplit(settings.token_uri)
    return f"{parts.scheme}://{parts.netloc}", Route("POST", parts.path or "/")


class TokenSource:
    def __init__(self, settings: DriveSettings, http: EgressClient, route: Route,
                 register_secret: Callable[[str], None]) -> None:
        self.settings, self.http, self.route = settings, http, route
        self.register_secret = register_secret
        self._creds: Any = None
        self._lock = anyio.Lock()

    def _build(self) -> Any:
        info = self.settings.info
        if self.settings.kind == "service_account":
            from google.oauth2 import service_account

            return service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
        from google.oauth2.credentials import Credentials

        # from_authorized_user_info always sets Google's endpoint; keep the one settings validated.
        return Credentials.from_authorized_user_info(info, scopes=list(SCOPES)).with_token_uri(self.settings.token_uri)

    async def token(self, *, force: bool = False) -> str:
        async with self._lock:
            try:
                if self._creds is None:
                    self._creds = self._build()
                if force or not self._creds.valid:
                    await anyio.to_thread.run_sync(self._creds.refresh, EgressRequest(self.http, self.route.template))
            except (ValueError, KeyError) as e:  # malformed key material
                raise MissingAccess(f"{self.settings.source}: unusable {self.settings.kind} credentials ({e})",
                                    hint="use the key file as Google issued it") from None
            except Exception as e:
                from google.auth.exceptions import GoogleAuthError, RefreshError

                if not isinstance(e, GoogleAuthError):
                    raise
                if isinstance(e, RefreshError) and not getattr(e, "retryable", False):
                    raise MissingAccess(
                        f"Google token refresh for {self.settings.principal} failed: {e}",
                        hint=f"check the credentials in {self.settings.source} and that the Drive API is enabled",
                    ) from None
                raise UpstreamError(f"Google token endpoint failed: {e}", retryable=True) from None
            token = str(self._creds.token)
        self.register_secret(token)
        return token
