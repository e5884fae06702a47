"""Runs every vendor's fake on one loopback server, each under its own path prefix.

``spyglass sandbox`` and ``spyglass demo`` use it; tests use :func:`build_sandbox` in process
through ``httpx2.ASGITransport`` (no sockets) or :class:`SandboxServer` on port 0.
"""

from __future__ import annotations

import importlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from servers._core.fakekit import Faults
from servers._core.world import World

# upstream name -> fake module (each has build_app(world, faults) and sandbox_env(base_url)).
FAKES: dict[str, str] = {
    "datadog": "servers.datadog.fake",
    "argocd": "servers.deploy.fake_argocd",
    "github": "servers.deploy.fake_github",
    "grafana": "servers.grafana.fake",
    "statsig": "servers.statsig.fake",
    "linear": "servers.linear.fake",
    "slack": "servers.slack.fake",
    "drive": "servers.drive.fake",
}


@dataclass
class Sandbox:
    world: World
    app: Starlette
    faults: dict[str, Faults] = field(default_factory=dict)
    modules: dict[str, Any] = field(default_factory=dict)

    def env(self, base_url: str) -> dict[str, str]:
        """Environment variables that point every toolset at this sandbox."""
        out: dict[str, str] = {}
        for name, mod in self.modules.items():
            out.update(mod.sandbox_env(f"{base_url.rstrip('/')}/{name}"))
        return out


def build_sandbox(world: World | None = None, upstreams: list[str] | None = None) -> Sandbox:
    world = world or World()
    modules = {n: importlib.import_module(m) for n, m in FAKES.items() if upstreams is None or n in upstreams}
    faults = {n: Faults() for n in modules}

    async def health(_r: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "upstreams": sorted(modules), "anchor": world.anchor.isoformat()})

    routes: list[Any] = [Route("/healthz", health)]
    routes += [Mount(f"/{n}", app=mod.build_app(world, faults[n])) for n, mod in modules.items()]
    return Sandbox(world, Starlette(routes=routes), faults, modules)


class SandboxServer:
    """The sandbox on a real loopback socket (port 0 unless given), in a background thread."""

    def __init__(self, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.sandbox = sandbox
        config = uvicorn.Config(sandbox.app, host=host, port=port, log_level="warning", access_log=False,
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="spyglass-sandbox", daemon=True)
        self.host = host
        self.port = 0

    def start(self) -> SandboxServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("sandbox server did not start")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        return self.sandbox.env(self.url)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
