"""Deploy configuration: the ``[deploy]`` section of spyglass.toml, and backend credentials.

Credentials are named as the vendors' own CLIs name them: ``ARGOCD_SERVER`` /
``ARGOCD_AUTH_TOKEN`` (argocd CLI) and ``GITHUB_TOKEN`` / ``GITHUB_API_URL`` (gh, Actions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from guards.durations import parse_duration
from servers._core.errors import InvalidArguments, MissingAccess

BackendName = Literal["argocd", "github"]
FORWARD_ACTIONS = frozenset({"deploy", "promote", "resume"})  # blocked while an incident is open
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceConfig(_Strict):
    """One deployable service and where it is deployed."""

    name: str = ""
    backend: BackendName
    envs: list[str] = Field(default_factory=lambda: ["staging", "prod"], min_length=1)
    # Argo CD: the application per env ("{env}" is replaced), the Argo Rollouts resource if any.
    app: str = "{service}-{env}"
    app_namespace: str | None = None
    project: str | None = None
    rollout: str | None = None
    rollout_namespace: str | None = None
    # GitHub: the repository (also where CI checks and commits are read for Argo CD services),
    # the deploy workflow file dispatched for deploys and rollbacks, and the ref it runs from.
    repo: str | None = None
    workflow: str | None = None
    ref: str = "main"
    # Release versions are git tags: tag = tag_prefix + version.
    tag_prefix: str = "v"
    strategies: list[str] = Field(default_factory=list)
    require_ci: bool = True

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is not None and not _REPO.match(v):
            raise ValueError("repo must be 'owner/name'")
        return v

    @model_validator(mode="after")
    def _backend_needs(self) -> ServiceConfig:
        if self.backend == "github" and not (self.repo and self.workflow):
            raise ValueError("a github service needs 'repo' and 'workflow' (the deploy workflow file)")
        for env in self.envs:
            if not _NAME.match(env):
                raise ValueError(f"env {env!r} is not a plain name")
        return self

    def app_for(self, env: str) -> str:
        return self.app.replace("{service}", self.name).replace("{env}", env)

    def tag(self, version: str) -> str:
        return f"{self.tag_prefix}{version}"

    def version_of_tag(self, tag: str) -> str | None:
        if self.tag_prefix and not tag.startswith(self.tag_prefix):
            return None
        v = tag[len(self.tag_prefix):]
        return v if re.match(r"^\d+(\.\d+)*([-+][\w.]+)?$", v) else None


class DeployConfig(_Strict):
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    plan_ttl: str = "15m"
    # Environment variable holding the HMAC key for plan ids (a fleet shares one); unset means a
    # key generated once into the state directory.
    plan_key_env: str = "SPYGLASS_PLAN_KEY"
    max_concurrent: int = Field(2, ge=1, le=50)
    approval_channel: str | None = None
    incident_gate: Literal["enforce", "off"] = "enforce"
    poll_interval: str = "2s"

    @field_validator("plan_ttl", "poll_interval")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v

    @model_validator(mode="after")
    def _names(self) -> DeployConfig:
        fixed = {}
        for name, svc in self.services.items():
            if not _NAME.match(name):
                raise ValueError(f"service name {name!r} is not a plain name")
            fixed[name] = svc.model_copy(update={"name": name})
        object.__setattr__(self, "services", fixed)
        if parse_duration(self.plan_ttl) > 24 * 3600:
            raise ValueError("plan_ttl must be at most 24h")
        return self

    @property
    def plan_ttl_s(self) -> float:
        return parse_duration(self.plan_ttl)

    @property
    def poll_interval_s(self) -> float:
        return parse_duration(self.poll_interval)

    def service(self, name: str) -> ServiceConfig:
        svc = self.services.get(name)
        if svc is None:
            known = ", ".join(sorted(self.services)) or "none configured"
            raise InvalidArguments(
                f"service: {name!r} is not a configured deploy service (known: {known})",
                hint="call deploy_list_services; services are configured in the [deploy.services] "
                "section of spyglass.toml",
            )
        return svc

    def env_of(self, svc: ServiceConfig, env: str) -> str:
        if env not in svc.envs:
            raise InvalidArguments(
                f"env: {env!r} is not configured for {svc.name} (configured: {', '.join(svc.envs)})",
                hint=f"use one of {', '.join(svc.envs)}",
            )
        return env


class DeployConfigError(ValueError):
    pass


def parse_deploy_config(config: Mapping[str, Any]) -> DeployConfig:
    section = config.get("deploy", {}) if config else {}
    try:
        return DeployConfig.model_validate(section or {})
    except ValidationError as e:
        lines = ["invalid [deploy] section in spyglass.toml:"]
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            lines.append(f"  deploy.{loc}: {msg}")
        raise DeployConfigError("\n".join(lines)) from None


@dataclass(frozen=True)
class ArgoSettings:
    base_url: str
    token: SecretStr

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ArgoSettings:
        missing = [k for k in ("ARGOCD_SERVER", "ARGOCD_AUTH_TOKEN") if not env.get(k)]
        if missing:
            raise MissingAccess(
                f"Argo CD credentials missing: {', '.join(missing)} not set",
                hint="set ARGOCD_SERVER (host[:port] or URL) and ARGOCD_AUTH_TOKEN (an account token with "
                "get/sync/action permission on the configured applications)",
            )
        server = env["ARGOCD_SERVER"].strip().rstrip("/")
        base = server if server.startswith(("http://", "https://")) else f"https://{server}"
        return cls(base, SecretStr(env["ARGOCD_AUTH_TOKEN"]))


@dataclass(frozen=True)
class GitHubSettings:
    base_url: str
    token: SecretStr

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubSettings:
        if not env.get("GITHUB_TOKEN"):
            raise MissingAccess(
                "GitHub credentials missing: GITHUB_TOKEN not set",
                hint="set GITHUB_TOKEN (fine-grained: Actions read/write, Deployments read, Checks read, "
                "Contents read on the configured repos); GITHUB_API_URL for GitHub Enterprise",
            )
        base = (env.get("GITHUB_API_URL") or "https://api.github.com").strip().rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise MissingAccess(f"GITHUB_API_URL {base!r} is not a URL", hint="e.g. https://api.github.com")
        return cls(base, SecretStr(env["GITHUB_TOKEN"]))
