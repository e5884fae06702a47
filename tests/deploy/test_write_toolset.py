"""The write toolset is opt-in, and no client can reach a write route it was not built for."""

from __future__ import annotations

from typing import Any

import pytest

from servers._core.errors import EgressDenied
from servers._core.spec import ClientEnv
from servers.deploy import client_argocd, client_github
from servers.deploy.client import WRITE_ROUTES_BY_ACTION, DeployHub
from servers.deploy.tools import TOOLSET, WRITE_TOOLSET
from tests.deploy.conftest import Deploy, config, policy

pytestmark = pytest.mark.anyio
WRITES = {"deploy_plan", "deploy_apply"}


@pytest.mark.parametrize(
    ("pol", "read_only"),
    [(policy(enabled=["deploy"]), False), (policy(), True)],
    ids=["deploy_write-not-enabled", "read-only-mode"],
)
async def test_with_deploy_write_disabled_no_write_tool_is_listed_or_callable(
        deploy: Deploy, tool: Any, pol: dict[str, Any], read_only: bool) -> None:
    server = deploy.server(pol, toolsets=["deploy", "deploy_write"], read_only=read_only)
    async with deploy.h.client(server) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        text, err = await tool(c, "deploy_apply", plan_id="pl1.abcdef.e30.sig")
        _, plan_err = await tool(c, "deploy_plan", service="checkout", env="prod", action="rollback",
                                       reason="try")
        listed, _ = await tool(c, "deploy_list_services")
    assert names == {"deploy_list_services", "deploy_get_history", "deploy_diff_releases", "deploy_get_status"}
    assert err and plan_err and "unknown tool 'deploy_apply'" in text
    assert [(e.tool, e.outcome, e.rule_id) for e in deploy.events[:2]] == [
        ("deploy_apply", "denied", "unknown-tool"), ("deploy_plan", "denied", "unknown-tool")]
    assert "checkout | prod" in listed
    assert all(r.method == "GET" for r in deploy.h.transport.requests)


async def test_the_read_clients_hold_no_write_route_and_refuse_one_before_any_request(deploy: Deploy) -> None:
    env = ClientEnv(env=deploy.env(), config=config(), transport=deploy.h.transport)
    hub = DeployHub(env, write=False)
    for client in (hub.argocd(), hub.github()):
        assert {m for m, _ in client.http.routes} == {"GET"}
    svc = hub.config.service("checkout")
    with pytest.raises(EgressDenied, match="not in this client's route allowlist"):
        await hub.argocd().http.request("POST", client_argocd.ROLLBACK.template, path_params={"name": "checkout-prod"},
                                        json={"id": 12})
    with pytest.raises(EgressDenied):
        await hub.github().http.request("POST", client_github.DISPATCH.template,
                                        path_params={"owner": "acme", "repo": "cart", "workflow_id": "deploy.yml"},
                                        json={"ref": "main"})
    from servers.deploy.models import Target

    with pytest.raises(EgressDenied):
        await hub.argocd().start(svc, "prod", Target(action="rollback", version="2.13.4", history_id=12))
    assert deploy.h.transport.requests == []
    await hub.aclose()


def test_write_routes_are_exactly_what_each_action_needs() -> None:
    def names(routes: tuple[Any, ...]) -> set[str]:
        return {f"{r.method} {r.template}" for r in routes}

    assert {a: names(rs) for a, rs in WRITE_ROUTES_BY_ACTION["argocd"].items()} == {
        "deploy": {"POST /api/v1/applications/{name}/sync"},
        "rollback": {"POST /api/v1/applications/{name}/rollback"},
        "pause": {"POST /api/v1/applications/{name}/resource/actions/v2"},
        "resume": {"POST /api/v1/applications/{name}/resource/actions/v2"},
        "promote": {"POST /api/v1/applications/{name}/resource/actions/v2"},
    }
    assert {a: names(rs) for a, rs in WRITE_ROUTES_BY_ACTION["github"].items()} == {
        "deploy": {"POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches"},
        "rollback": {"POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches"},
    }
    every = {r.method for r in (*WRITE_TOOLSET.routes, *TOOLSET.routes)}
    assert every == {"GET", "POST"}, "no DELETE, PATCH or PUT anywhere"
    assert {r.method for r in TOOLSET.routes} == {"GET"}
    # Resource actions are limited to the three Argo Rollouts actions, on the Rollout kind only.
    assert client_argocd.ROLLOUT_ACTIONS == {"pause": "pause", "resume": "resume", "promote": "promote-full"}


def test_plan_is_a_write_tool_and_apply_is_destructive_and_re_decided_on_the_plans_args() -> None:
    specs = {t.name: t for t in WRITE_TOOLSET.tools}
    assert {t.access for t in specs.values()} == {"write"} and WRITE_TOOLSET.upstream == TOOLSET.upstream == "deploy"
    assert specs["deploy_apply"].destructive and specs["deploy_apply"].policy_args is not None
    assert not specs["deploy_plan"].destructive and specs["deploy_plan"].policy_args is None
