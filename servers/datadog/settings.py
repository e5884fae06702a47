"""Datadog credentials, named as Datadog's own tools name them: DD_API_KEY, DD_APP_KEY, DD_SITE."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from servers._core.errors import MissingAccess

SITES = {"datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "ap1.datadoghq.com", "ap2.datadoghq.com",
         "datadoghq.eu", "ddog-gov.com"}


@dataclass(frozen=True)
class DatadogSettings:
    base_url: str
    api_key: SecretStr
    app_key: SecretStr

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DatadogSettings:
        missing = [k for k in ("DD_API_KEY", "DD_APP_KEY") if not env.get(k)]
        if missing:
            raise MissingAccess(
                f"Datadog credentials missing: {', '.join(missing)} not set",
                hint="set DD_API_KEY and DD_APP_KEY (an application key with logs_read_data, "
                "metrics_read, apm_read, error_tracking_read, monitors_read, incident_read, events_read, "
                "dashboards_read scopes); DD_SITE for non-US1 sites",
            )
        site = env.get("DD_SITE", "datadoghq.com").strip()
        if site not in SITES and not env.get("SPYGLASS_DATADOG_URL"):
            raise MissingAccess(f"DD_SITE {site!r} is not a Datadog site", hint=f"use one of {sorted(SITES)}")
        base = env.get("SPYGLASS_DATADOG_URL") or f"https://api.{site}"
        return cls(base, SecretStr(env["DD_API_KEY"]), SecretStr(env["DD_APP_KEY"]))
