"""Deploy test fixtures: the sandbox config (no poll delay), a private state dir, a base policy."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.app import SpyglassServer
from tests.conftest import Harness, text_of

REPO = Path(__file__).resolve().parents[2]
SANDBOX_CONFIG: dict[str, Any] = tomllib.loads((REPO / "config" / "sandbox.toml").read_text())
SANDBOX_CONFIG["deploy"]["poll_interval"] = "0s"

# The rules of the example policy, minus the weekend freeze (tests add the freeze they need).
BASE_RULES: list[dict[str, Any]] = [
    {"id": "prod-deploy-needs-canary", "effect": "allow", "tools": ["deploy_plan", "deploy_apply"],
     "where": {"env": ["prod"], "action": ["deploy"], "strategy": ["canary"]}},
    {"id": "prod-rollback-always", "effect": "allow", "tools": ["deploy_plan", "deploy_apply"],
     "where": {"env": ["prod"], "action": ["rollback", "pause"]}},
    {"id": "prod-rollout-steering", "effect": "allow", "tools": ["deploy_plan", "deploy_apply"],
     "where": {"env": ["prod"], "action": ["resume", "promote"]}},
    {"id": "staging-deploys", "effect": "allow", "tools": ["deploy_plan", "deploy_apply"],
     "where": {"env": ["staging"]}},
]
ENABLED = ["datadog", "grafana", "statsig", "deploy", "deploy_write"]
# Upstreams that carry incident signals; leaving them out of the env means "not configured".
INCIDENT_VARS = ("DD_API_KEY", "DD_APP_KEY", "GRAFANA_URL", "GRAFANA_SERVICE_ACCOUNT_TOKEN", "GRAFANA_TOKEN")


def policy(*extra_rules: dict[str, Any], limits: list[dict[str, Any]] | None = None,
           enabled: list[str] | None = None, rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"toolsets": {"enabled": enabled or ENABLED}, "rules": [*(rules if rules is not None else BASE_RULES),
                                                                   *extra_rules],
            "limits": limits or []}


def config(**deploy: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(SANDBOX_CONFIG)
    cfg["deploy"].update(deploy)
    return cfg


def field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(f"{name}: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError(f"no {name!r} line in:\n{text}")


class Deploy:
    """Builds guarded servers against the in-process sandbox with the deploy config."""

    def __init__(self, harness: Harness, state_dir: Path) -> None:
        self.h = harness
        self.state_dir = state_dir

    def env(self, *, incidents: bool = True) -> dict[str, str]:
        env = self.h.sandbox.env("http://sandbox.test")
        if not incidents:
            env = {k: v for k, v in env.items() if not k.startswith(("DD_", "GRAFANA_", "SPYGLASS_DATADOG",
                                                                      "SPYGLASS_GRAFANA"))}
        return env

    def server(self, pol: dict[str, Any] | None = None, *, cfg: dict[str, Any] | None = None,
               toolsets: list[str] | None = None, incidents: bool = False, **kw: Any) -> SpyglassServer:
        return self.h.server(policy=pol or policy(), toolsets=toolsets or ["deploy", "deploy_write", "datadog"],
                             env=kw.pop("env", None) or self.env(incidents=incidents), config=cfg or config(),
                             state_dir=self.state_dir, **kw)

    @property
    def events(self) -> list[Any]:
        return self.h.sink.events


REFUSALS = ("denied", "rate_limited", "awaiting_approval")


@pytest.fixture
def deploy(harness: Harness, tmp_path: Path) -> Iterator[Deploy]:
    d = Deploy(harness, tmp_path / "state")
    yield d
    # Every refusal any deploy test provoked left an audit event naming its rule.
    unnamed = [(e.tool, e.outcome) for e in d.events if e.outcome in REFUSALS and not e.rule_id]
    assert not unnamed, f"refusals without a rule id in the audit: {unnamed}"


@pytest.fixture
def tool() -> Callable[..., Any]:
    """``await tool(client, name, **args) -> (text, is_error)``."""

    async def _call(client: Client, name: str, **args: Any) -> tuple[str, bool]:
        r = await client.call_tool(name, args)
        return text_of(r), bool(r.is_error)

    return _call
