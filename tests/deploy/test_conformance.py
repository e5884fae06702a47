"""Every request the deploy clients send — reads and writes — conforms to Argo CD's and GitHub's specs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conformance import Recorded, openapi, openapi_errors, specs_available
from tests.deploy.conftest import Deploy, field
from tests.deploy.swagger2 import openapi_from_swagger2

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(not specs_available(), reason="../shared/specs not found")]

ARGO_HOST = "https://argocd.example.com"
GITHUB_HOST = "https://api.github.com"


def argo_api() -> Any:
    return openapi_from_swagger2("argocd-swagger.json", ARGO_HOST)


def github_api() -> Any:
    return openapi("github-api.github.com.json")  # 13 MB: parsed once per session (cached)


def violations(rec: Recorded) -> list[str]:
    if "/argocd/" in rec.url:
        return openapi_errors(argo_api(), rec, host_url=ARGO_HOST, strip_prefix="/argocd")
    return openapi_errors(github_api(), rec, host_url=GITHUB_HOST, strip_prefix="/github")


async def test_every_argocd_and_github_request_validates_against_the_official_specs(deploy: Deploy,
                                                                                   tool: Any) -> None:
    async def plan_apply(c: Any, **args: Any) -> str:
        text, err = await tool(c, "deploy_plan", reason="conformance", **args)
        assert not err, text
        applied, err = await tool(c, "deploy_apply", plan_id=field(text, "plan_id"))
        assert not err, applied
        return field(applied, "operation")

    async with deploy.h.client(deploy.server()) as c:
        for name, args in [("deploy_list_services", {}), ("deploy_get_history", {"service": "cart"}),
                           ("deploy_diff_releases", {"service": "checkout"}),
                           ("deploy_get_status", {"service": "frontend", "env": "prod"})]:
            text, err = await tool(c, name, **args)
            assert not err, text
        op = await plan_apply(c, service="checkout", env="staging", action="deploy", version="2.13.4")
        await plan_apply(c, service="checkout", env="staging", action="pause")
        await plan_apply(c, service="checkout", env="staging", action="resume")
        await plan_apply(c, service="checkout", env="staging", action="promote")
        await tool(c, "deploy_get_status", operation=op, wait_s=5)
        await plan_apply(c, service="checkout", env="staging", action="rollback")
        gh_op = await plan_apply(c, service="cart", env="staging", action="deploy", version="1.9.0")
        await tool(c, "deploy_get_status", operation=gh_op, wait_s=5)
    sent = [r for r in deploy.h.transport.requests if "/argocd/" in r.url or "/github/" in r.url]
    kinds = {f"{r.method} {r.url.split('/')[3]}" for r in sent}
    assert kinds == {"GET argocd", "POST argocd", "GET github", "POST github"}
    posts = {r.url.rsplit("/", 1)[-1] for r in sent if r.method == "POST"}
    assert posts == {"sync", "rollback", "v2", "dispatches"}
    errors = [e for rec in sent for e in violations(rec)]
    assert errors == []
    dispatch = next(r for r in sent if r.url.endswith("/dispatches"))
    assert json.loads(dispatch.body)["inputs"]["version"] == "1.9.0"


def test_each_validator_is_on_a_known_bad_request_is_rejected() -> None:
    bad_rollback = Recorded("POST", "http://sandbox.test/argocd/api/v1/applications/checkout-prod/rollback",
                            {"content-type": "application/json"}, b'{"id": "twelve", "prune": "no"}')
    assert violations(bad_rollback)
    unknown = Recorded("POST", "http://sandbox.test/argocd/api/v1/applications/checkout-prod/delete-everything",
                       {"content-type": "application/json"}, b"{}")
    assert violations(unknown)
    no_ref = Recorded("POST", "http://sandbox.test/github/repos/acme/cart/actions/workflows/deploy.yml/dispatches",
                      {"content-type": "application/json"}, b'{"inputs": {"version": "1.9.0"}}')
    assert violations(no_ref)
    bad_status = Recorded("GET", "http://sandbox.test/github/repos/acme/cart/commits/v1.9.0/check-runs?status=sideways",
                          {}, b"")
    assert violations(bad_status)
