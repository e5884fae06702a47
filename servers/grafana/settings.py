"""Grafana credentials, named as mcp-grafana names them: GRAFANA_URL, GRAFANA_SERVICE_ACCOUNT_TOKEN,
and optionally GRAFANA_ORG_ID (sent as X-Grafana-Org-Id)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from servers._core.errors import MissingAccess


@dataclass(frozen=True)
class GrafanaSettings:
    base_url: str
    token: SecretStr
    org_id: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GrafanaSettings:
        missing = [k for k in ("GRAFANA_URL", "GRAFANA_SERVICE_ACCOUNT_TOKEN") if not env.get(k)]
        if missing:
            raise MissingAccess(
                f"Grafana credentials missing: {', '.join(missing)} not set",
                hint="set GRAFANA_URL (e.g. https://grafana.example.com) and GRAFANA_SERVICE_ACCOUNT_TOKEN "
                "(a service account token with the Viewer role; datasource queries need Query permission)",
            )
        url = env["GRAFANA_URL"].strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise MissingAccess(
                f"GRAFANA_URL {url!r} is not an http(s) base URL",
                hint="use the URL you open Grafana at, e.g. https://grafana.example.com or "
                "https://example.com/grafana (no query string)",
            )
        org = (env.get("GRAFANA_ORG_ID") or "").strip() or None
        if org is not None and not org.isdigit():
            raise MissingAccess(f"GRAFANA_ORG_ID {org!r} is not a number", hint="use the numeric org id, e.g. 1")
        return cls(url, SecretStr(env["GRAFANA_SERVICE_ACCOUNT_TOKEN"]), org)
