"""deploy_apply: the plan id is verified, spent once, re-decided by the policy, and every refusal audited."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import anyio
import httpx2
import pytest

from tests.conftest import text_of
from tests.deploy.conftest import Deploy, field

pytestmark = pytest.mark.anyio

ROLLBACK = {"service": "checkout", "env": "prod", "action": "rollback", "reason": "errors after 2.14.0"}


def rewrite(plan_id: str, **change: Any) -> str:
    prefix, nonce, payload, sig = plan_id.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["a"].update(change)
    raw = base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
    return ".".join([prefix, nonce, raw, sig])


async def test_plan_apply_status_rolls_checkout_back_and_records_the_release(deploy: Deploy, tool: Any) -> None:
    world = deploy.h.sandbox.world
    assert world.degraded("checkout", world.now())
    async with deploy.h.client(deploy.server()) as c:
        plan, _ = await tool(c, "deploy_plan", **ROLLBACK)
        applied, err = await tool(c, "deploy_apply", plan_id=field(plan, "plan_id"))
        status, _ = await tool(c, "deploy_get_status", operation=field(applied, "operation"), wait_s=10)
        history, _ = await tool(c, "deploy_get_history", service="checkout", limit=2)
    assert not err and applied.startswith("applied plan pl_") and "rollback checkout prod → 2.13.4 (4b7d0a1)" in applied
    assert " · Succeeded · checkout prod now on 2.13.4" in status.splitlines()[0]
    assert "| 2.13.4 | 4b7d0a1 | root |" in history.splitlines()[2] or "| 2.13.4 | 4b7d0a1 |" in history
    assert "rollback back to #12" in history.splitlines()[2]
    assert not world.degraded("checkout", world.now())
    sent = [r for r in deploy.h.transport.requests if r.method == "POST"]
    assert len(sent) == 1 and sent[0].url.endswith("/argocd/api/v1/applications/checkout-prod/rollback")
    assert json.loads(sent[0].body)["id"] == 12
    plan_event, apply_event = deploy.events[0], deploy.events[1]
    assert plan_event.plan_id == apply_event.plan_id and plan_event.plan_id.startswith("pl_")
    assert apply_event.access == "write" and apply_event.rule_id == "prod-rollback-always"


async def test_status_waits_and_reports_progress_notifications(deploy: Deploy, tool: Any) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    async with deploy.h.client(deploy.server()) as c:
        plan, _ = await tool(c, "deploy_plan", service="checkout", env="staging", action="rollback", reason="test")
        applied, _ = await tool(c, "deploy_apply", plan_id=field(plan, "plan_id"))
        r = await c.call_tool("deploy_get_status", {"operation": field(applied, "operation"), "wait_s": 10},
                              progress_callback=progress)
    assert " · Succeeded" in text_of(r).splitlines()[0]
    assert seen and seen[0][2] and seen[0][2].startswith("Running") and seen[-1][0] == seen[-1][1]


async def test_a_replayed_plan_id_is_refused_and_audited(deploy: Deploy, tool: Any) -> None:
    async with deploy.h.client(deploy.server()) as c:
        plan, _ = await tool(c, "deploy_plan", **ROLLBACK)
        await tool(c, "deploy_apply", plan_id=field(plan, "plan_id"))
        again, err = await tool(c, "deploy_apply", plan_id=field(plan, "plan_id"))
    assert err and "was already applied (plan ids are single use)" in again
    assert (deploy.events[-1].outcome, deploy.events[-1].rule_id) == ("denied", "plans.replayed")
    assert sum(1 for r in deploy.h.transport.requests if r.method == "POST") == 1


async def test_an_expired_plan_id_is_refused_and_audited(deploy: Deploy, tool: Any) -> None:
    server = deploy.server()
    async with deploy.h.client(server) as c:
        plan, _ = await tool(c, "deploy_plan", **ROLLBACK)
        later = server.runtime.guard.clock() + timedelta(minutes=16)
        server.runtime.guard.clock = lambda: later
        text, err = await tool(c, "deploy_apply", plan_id=field(plan, "plan_id"))
    assert err and "expired at" in text and "call deploy_plan again" in text
    assert (deploy.events[-1].outcome, deploy.events[-1].rule_id) == ("denied", "plans.expired")


@pytest.mark.parametrize(
    ("tamper", "rule", "says"),
    [
        (lambda p: rewrite(p, env="staging"), "plans.signature", "signature does not match"),
        (lambda p: rewrite(p, version="2.13.3"), "plans.signature", "signature does not match"),
        (lambda p: p[:-4] + ("AAAA" if not p.endswith("AAAA") else "BBBB"), "plans.signature", "signature"),
        (lambda p: p.split(".")[0] + "." + p.split(".")[1], "plans.malformed", "does not parse"),
        (lambda p: "pl_" + p.split(".")[1], "plans.malformed", "does not parse"),
    ],
)
async def test_a_tampered_plan_id_is_refused_and_audited(deploy: Deploy, tool: Any, tamper: Any, rule: str,
                                                         says: str) -> None:
    async with deploy.h.client(deploy.server()) as c:
        plan, _ = await tool(c, "deploy_plan", **ROLLBACK)
        text, err = await tool(c, "deploy_apply", plan_id=tamper(field(plan, "plan_id")))
    assert err and says in text
    assert (deploy.events[-1].outcome, deploy.events[-1].rule_id) == ("denied", rule)
    assert not any(r.method == "POST" for r in deploy.h.transport.requests)


async def test_another_principals_plan_id_is_refused_before_the_policy_and_audited(deploy: Deploy,
                                                                                   tool: Any) -> None:
    server = deploy.server()
    async with deploy.h.client(server) as c:
        plan, _ = await tool(c, "deploy_plan", **ROLLBACK)
        server.runtime.os_user = "mallory"
        text, err = await tool(c, "deploy_apply", plan_id=field(plan, "plan_id"))
    assert err and "was made by 'root', not by 'mallory'" in text.replace(deploy.events[0].principal, "root")
    event = deploy.events[-1]
    assert (event.principal, event.outcome, event.rule_id) == ("mallory", "denied", "plans.principal")


async def test_two_applies_of_one_plan_racing_exactly_one_wins(deploy: Deploy, tool: Any) -> None:
    results: list[tuple[str, bool]] = []
    async with deploy.h.client(deploy.server()) as c:
        plan, _ = await tool(c, "deploy_plan", **ROLLBACK)
        plan_id = field(plan, "plan_id")

        async def apply() -> None:
            results.append(await tool(c, "deploy_apply", plan_id=plan_id))

        async with anyio.create_task_group() as tg:
            tg.start_soon(apply)
            tg.start_soon(apply)
    assert sorted(err for _, err in results) == [False, True]
    assert sum(1 for r in deploy.h.transport.requests if r.method == "POST") == 1
    applies = sorted((e.outcome, e.rule_id) for e in deploy.events if e.tool == "deploy_apply")
    # The loser is refused as a replay, or, if it re-checked first, because the winner's rollback is running.
    assert applies[1] == ("ok", "prod-rollback-always")
    assert applies[0] in (("denied", "plans.replayed"), ("denied", "deploy.busy"))


async def test_a_plan_made_by_one_server_is_applied_by_another_sharing_the_key(deploy: Deploy, tool: Any) -> None:
    first, second = deploy.server(), deploy.server()  # same state dir: same generated key
    async with deploy.h.client(first) as c:
        plan, _ = await tool(c, "deploy_plan", **ROLLBACK)
    async with deploy.h.client(second) as c:
        text, err = await tool(c, "deploy_apply", plan_id=field(plan, "plan_id"))
    assert not err and "applied plan" in text


class FailingWrites(httpx2.AsyncBaseTransport):
    """Argo CD answers every write with a 500 (reads pass through)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "POST":
            return httpx2.Response(500, json={"error": "etcd timeout", "code": 14, "message": "etcd timeout"})
        return await self.inner.handle_async_request(request)


async def test_an_apply_whose_upstream_fails_spends_the_plan_and_says_so(deploy: Deploy, tool: Any) -> None:
    async with deploy.h.client(deploy.server()) as c:
        plan, _ = await tool(c, "deploy_plan", **ROLLBACK)
        deploy.h.transport.inner = FailingWrites(deploy.h.transport.inner)
        text, err = await tool(c, "deploy_apply", plan_id=field(plan, "plan_id"))
    assert err and "argocd answered 500: etcd timeout" in text and "is spent: plan again to retry" in text
    assert deploy.events[-1].outcome == "upstream_error"


async def test_a_tampered_plan_id_is_refused_before_it_can_spend_the_write_budget(deploy: Deploy, tool: Any) -> None:
    budget = [{"id": "one-apply", "tools": ["deploy_apply"], "max": 1, "per": "1h"}]
    async with deploy.h.client(deploy.server(_policy_with_limits(deploy, budget))) as c:
        plan, _ = await tool(c, "deploy_plan", **ROLLBACK)
        forged, err = await tool(c, "deploy_apply", plan_id=rewrite(field(plan, "plan_id"), env="staging"))
        applied, err2 = await tool(c, "deploy_apply", plan_id=field(plan, "plan_id"))
    assert err and "signature does not match" in forged
    assert not err2 and applied.startswith("applied plan pl_")


def _policy_with_limits(deploy: Deploy, limits: list[dict[str, Any]]) -> dict[str, Any]:
    from tests.deploy.conftest import policy

    return policy(limits=limits)
