"""The deploy toolsets' client: the configured services and one client per backend, built lazily.

The read toolset's hub holds Argo CD and GitHub clients whose allowlists list only GET routes;
the write toolset's hub adds exactly the write routes the actions need (see
``client_argocd.WRITE_ROUTES_BY_ACTION`` and ``client_github.WRITE_ROUTES_BY_ACTION``).
A backend whose credentials are missing fails only for the services that use it.
"""

from __future__ import annotations

from typing import Any

from servers._core.egress import Route
from servers._core.errors import MissingAccess, ToolFailure
from servers._core.spec import ClientEnv
from servers.deploy import client_argocd, client_github
from servers.deploy.client_argocd import ArgoCDClient
from servers.deploy.client_github import GitHubClient
from servers.deploy.models import DeployBackend
from servers.deploy.settings import (
    ArgoSettings,
    DeployConfig,
    DeployConfigError,
    GitHubSettings,
    ServiceConfig,
    parse_deploy_config,
)

READ_ROUTES: tuple[Route, ...] = client_argocd.READ_ROUTES + client_github.READ_ROUTES
WRITE_ROUTES: tuple[Route, ...] = client_argocd.WRITE_ROUTES + client_github.WRITE_ROUTES
WRITE_ROUTES_BY_ACTION: dict[str, dict[str, tuple[Route, ...]]] = {
    "argocd": client_argocd.WRITE_ROUTES_BY_ACTION,
    "github": client_github.WRITE_ROUTES_BY_ACTION,
}


class DeployHub:
    def __init__(self, env: ClientEnv, *, write: bool) -> None:
        try:
            self.config: DeployConfig = parse_deploy_config(env.config)
        except DeployConfigError as e:
            raise ToolFailure(str(e), hint="fix spyglass.toml; see config/spyglass.example.toml") from None
        self.write = write
        self._env = env
        self._argo: ArgoCDClient | None = None
        self._github: GitHubClient | None = None

    def argocd(self) -> ArgoCDClient:
        if self._argo is None:
            self._argo = client_argocd.make_client(ArgoSettings.from_env(self._env.env), self._env, write=self.write)
        return self._argo

    def github(self) -> GitHubClient:
        if self._github is None:
            self._github = client_github.make_client(GitHubSettings.from_env(self._env.env), self._env,
                                                     write=self.write)
        return self._github

    def github_or_none(self) -> GitHubClient | None:
        try:
            return self.github()
        except MissingAccess:
            return None

    def backend(self, svc: ServiceConfig) -> DeployBackend:
        return self.argocd() if svc.backend == "argocd" else self.github()

    def services(self) -> list[ServiceConfig]:
        return list(self.config.services.values())

    async def aclose(self) -> None:
        for c in (self._argo, self._github):
            if c is not None:
                await c.aclose()


def make_read_client(env: ClientEnv) -> Any:
    return DeployHub(env, write=False)


def make_write_client(env: ClientEnv) -> Any:
    return DeployHub(env, write=True)
