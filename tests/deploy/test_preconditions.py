"""Every precondition of deploy_plan / deploy_apply, each shown refusing and allowing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx2
import pytest

from guards.limits import MemoryLimitStore
from servers._core.errors import UpstreamError
from tests.deploy.conftest import BASE_RULES, Deploy, config, field, policy

pytestmark = pytest.mark.anyio

CANARY_FRONTEND = {"service": "frontend", "env": "prod", "action": "deploy", "version": "3.41.0",
                   "strategy": "canary", "reason": "new checkout button copy"}
ROLLBACK_CHECKOUT = {"service": "checkout", "env": "prod", "action": "rollback", "reason": "errors after 2.14.0"}


def check_line(text: str, label: str) -> str:
    for line in text.splitlines():
        if line.strip().split(" ", 2)[1:2] == [label] or f" {label} " in line[:20]:
            return line
    raise AssertionError(f"no {label} check in:\n{text}")


def passed(text: str, label: str) -> bool:
    return check_line(text, label).lstrip().startswith("ok")


# --- policy: environment allowlist per principal -----------------------------------------------------
@pytest.mark.parametrize(("principal", "allowed"), [("oncall-ana", True), ("intern", False)])
async def test_prod_rollbacks_are_allowed_only_to_the_principals_a_rule_names(
        deploy: Deploy, tool: Any, principal: str, allowed: bool) -> None:
    rule = {"id": "oncall-prod-rollbacks", "effect": "allow", "tools": ["deploy_*"], "principals": ["oncall-*"],
            "where": {"env": ["prod"], "action": ["rollback"]}}
    server = deploy.server(policy(rules=[rule]))
    server.runtime.os_user = principal
    async with deploy.h.client(server) as c:
        text, err = await tool(c, "deploy_plan", **ROLLBACK_CHECKOUT)
    assert err is not allowed
    if allowed:
        assert "status: ready" in text and deploy.events[-1].rule_id == "oncall-prod-rollbacks"
    else:
        assert "no rule allows this write call" in text and deploy.events[-1].rule_id == "defaults.write"
        assert deploy.events[-1].outcome == "denied"


async def test_an_env_the_service_is_not_configured_for_is_refused(deploy: Deploy, tool: Any) -> None:
    async with deploy.h.client(deploy.server(policy({"id": "qa", "effect": "allow", "tools": ["deploy_*"]}))) as c:
        text, err = await tool(c, "deploy_plan", service="cart", env="qa", action="deploy", version="1.9.0",
                               reason="try qa")
    assert err and "env: 'qa' is not configured for cart (configured: staging, prod)" in text


# --- policy: prod deploys need a strategy --------------------------------------------------------
@pytest.mark.parametrize("strategy", [None, "canary"])
async def test_a_prod_deploy_needs_a_canary_strategy(deploy: Deploy, tool: Any, strategy: str | None) -> None:
    args = {**CANARY_FRONTEND}
    if strategy is None:
        del args["strategy"]
    async with deploy.h.client(deploy.server()) as c:
        text, err = await tool(c, "deploy_plan", **args)
    if strategy is None:
        assert err and "rule 'prod-deploy-needs-canary' would allow it with strategy one of canary" in text
        assert deploy.events[-1].rule_id == "defaults.write"
    else:
        assert not err and "status: ready" in text and passed(text, "strategy")


async def test_a_strategy_the_service_does_not_implement_blocks_the_plan(deploy: Deploy, tool: Any) -> None:
    async with deploy.h.client(deploy.server()) as c:
        text, err = await tool(c, "deploy_plan", service="payments", env="prod", action="deploy", version="5.2.0",
                               strategy="canary", reason="redeploy")
    assert err and "payments does not support strategy 'canary'" in text and "fix: use one of: rolling" in text
    assert deploy.events[-1].rule_id in ("deploy.strategy", "deploy.version")


# --- policy: change freeze (weekly window, IANA zone) --------------------------------------------
FREEZE = {"id": "weekend-freeze", "effect": "deny", "tools": ["deploy_apply"],
          "where": {"env": ["prod"], "action": ["deploy", "promote", "resume"]},
          "when": {"from": "Fri 16:00", "to": "Mon 08:00", "zone": "Europe/Berlin"},
          "reason": "Change freeze, Friday 16:00 to Monday 08:00 Berlin time; rollbacks stay allowed."}
FRIDAY_1555_BERLIN = datetime(2026, 3, 6, 14, 55, tzinfo=UTC)
SATURDAY_BERLIN = datetime(2026, 3, 7, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(("now", "frozen"), [(SATURDAY_BERLIN, True), (FRIDAY_1555_BERLIN, False)])
async def test_a_forward_deploy_plan_is_blocked_during_the_freeze_naming_the_rule(
        deploy: Deploy, tool: Any, now: datetime, frozen: bool) -> None:
    server = deploy.server(policy(FREEZE))
    server.runtime.guard.clock = lambda: now
    async with deploy.h.client(server) as c:
        text, err = await tool(c, "deploy_plan", **CANARY_FRONTEND)
    assert err is frozen
    if frozen:
        assert "FAIL policy" in text and "[weekend-freeze] deploy_apply would be denied by weekend-freeze" in text
        assert "no plan_id issued" in text
        assert deploy.events[-1].rule_id == "weekend-freeze" and deploy.events[-1].outcome == "denied"
    else:
        assert "plan_id: pl1." in text


async def test_rollbacks_stay_allowed_during_the_freeze(deploy: Deploy, tool: Any) -> None:
    server = deploy.server(policy(FREEZE))
    server.runtime.guard.clock = lambda: SATURDAY_BERLIN
    async with deploy.h.client(server) as c:
        text, err = await tool(c, "deploy_plan", **ROLLBACK_CHECKOUT)
        applied, apply_err = await tool(c, "deploy_apply", plan_id=field(text, "plan_id"))
    assert not err and "deploy_apply allowed by prod-rollback-always" in text
    assert not apply_err and "applied plan" in applied


async def test_a_freeze_that_starts_between_plan_and_apply_refuses_the_apply(deploy: Deploy, tool: Any) -> None:
    server = deploy.server(policy(FREEZE))
    server.runtime.guard.clock = lambda: FRIDAY_1555_BERLIN
    async with deploy.h.client(server) as c:
        text, _ = await tool(c, "deploy_plan", **CANARY_FRONTEND)
        server.runtime.guard.clock = lambda: FRIDAY_1555_BERLIN + timedelta(minutes=10)
        applied, err = await tool(c, "deploy_apply", plan_id=field(text, "plan_id"))
    assert err and "Change freeze, Friday 16:00" in applied
    event = deploy.events[-1]
    assert (event.tool, event.outcome, event.rule_id) == ("deploy_apply", "denied", "weekend-freeze")
    assert event.plan_id.startswith("pl1.") and not any("/dispatches" in r.url for r in deploy.h.transport.requests)


# --- the version exists --------------------------------------------------------------------------
@pytest.mark.parametrize(("version", "ok"), [("9.9.9", False), ("3.41.0", True)])
async def test_a_deploy_needs_a_version_that_exists(deploy: Deploy, tool: Any, version: str, ok: bool) -> None:
    async with deploy.h.client(deploy.server()) as c:
        text, err = await tool(c, "deploy_plan", **{**CANARY_FRONTEND, "version": version})
    assert passed(text, "version") is ok and err is not ok
    if not ok:
        assert "version 9.9.9 does not exist for frontend (no tag v9.9.9)" in text
        assert deploy.events[-1].rule_id == "deploy.version"


@pytest.mark.parametrize(("version", "ok"), [("1.0.0", False), ("2.13.3", True)])
async def test_a_rollback_target_must_have_run_in_that_env(deploy: Deploy, tool: Any, version: str, ok: bool) -> None:
    async with deploy.h.client(deploy.server()) as c:
        text, err = await tool(c, "deploy_plan", **{**ROLLBACK_CHECKOUT, "version": version})
    assert err is not ok and passed(text, "version") is ok
    if ok:
        assert "rolls back 2 release(s): 2.14.0 → 2.13.3" in text


# --- CI passed -------------------------------------------------------------------------------------
PAYMENTS_ROLLING = {"id": "payments-rolling", "effect": "allow", "tools": ["deploy_*"],
                    "where": {"service": "payments", "env": ["prod"], "strategy": ["rolling"]}}


@pytest.mark.parametrize(
    ("args", "ci"),
    [
        ({**CANARY_FRONTEND, "service": "checkout", "version": "2.14.1"},
         "CI failed for v2.14.1 (a7c3d09): unit-tests"),
        ({**CANARY_FRONTEND, "service": "payments", "version": "5.3.0", "strategy": "rolling"},
         "CI still running for v5.3.0 (0bd7e55): integration"),
        (CANARY_FRONTEND, "CI passed for v3.41.0 (f1e2d3c): 3 check runs"),
    ],
)
async def test_a_deploy_needs_its_ci_check_runs_passed(deploy: Deploy, tool: Any, args: dict[str, Any],
                                                       ci: str) -> None:
    async with deploy.h.client(deploy.server(policy(PAYMENTS_ROLLING))) as c:
        text, err = await tool(c, "deploy_plan", **args)
    assert ci in check_line(text, "ci")
    assert err is ("passed" not in ci)
    if err:
        assert deploy.events[-1].rule_id == "deploy.ci"
        assert any("/check-runs" in r.url for r in deploy.h.transport.requests)


async def test_ci_cannot_be_verified_without_github_and_the_plan_says_how_to_fix_it(deploy: Deploy,
                                                                                      tool: Any) -> None:
    env = {k: v for k, v in deploy.env(incidents=False).items() if not k.startswith("GITHUB_")}
    async with deploy.h.client(deploy.server(env=env)) as c:
        text, err = await tool(c, "deploy_plan", **{**CANARY_FRONTEND, "service": "checkout", "version": "2.13.4"})
    assert err and "cannot verify CI: GITHUB_TOKEN is not set" in text and "fix: set GITHUB_TOKEN" in text


# --- no forward change while an incident is open ------------------------------------------------------
class Source:
    """A contract double of the Datadog / Grafana clients (other teams own the real ones)."""

    def __init__(self, incidents: list[dict[str, str]] | None = None, fail: bool = False) -> None:
        self.incidents = incidents or []
        self.fail = fail

    async def open_incidents(self, service: str) -> list[dict[str, str]]:
        if self.fail:
            raise UpstreamError("datadog answered 503: unavailable", upstream_status=503)
        return [i for i in self.incidents if i.get("service", service) == service]

    async def alerting_monitors(self, service: str) -> list[dict[str, str]]:
        return []


def with_sources(server: Any, **clients: Any) -> None:
    original = server.runtime.optional_client

    async def optional(name: str) -> Any:
        if name in ("datadog", "grafana"):
            return clients.get(name)
        return await original(name)

    server.runtime.optional_client = optional


INC = {"id": "INC-9", "title": "frontend 500s", "severity": "SEV-1", "state": "active", "service": "frontend"}


@pytest.mark.parametrize(
    ("source", "action_args", "ok", "says"),
    [
        (Source([INC]), CANARY_FRONTEND, False, "1 open incident/alert signal(s) for frontend"),
        (Source([]), CANARY_FRONTEND, True, "no open incident or firing alert for frontend"),
        (Source(fail=True), CANARY_FRONTEND, False, "could not verify that no incident is open for frontend"),
        (Source([{**INC, "service": "checkout"}]), ROLLBACK_CHECKOUT, True, "rollback is allowed during incidents"),
        (None, CANARY_FRONTEND, True, "no incident source configured"),
    ],
)
async def test_no_forward_deploy_while_an_incident_is_open_but_rollbacks_go_ahead(
        deploy: Deploy, tool: Any, source: Source | None, action_args: dict[str, Any], ok: bool, says: str) -> None:
    server = deploy.server()
    with_sources(server, datadog=source)
    async with deploy.h.client(server) as c:
        text, err = await tool(c, "deploy_plan", **action_args)
    line = check_line(text, "incident")
    assert says in line and passed(text, "incident") is ok and err is not ok
    if not ok:
        assert deploy.events[-1].rule_id == "deploy.incident"
    if source and source.incidents and ok is False:
        assert '<untrusted source="incident sources">' in text and "INC-9 SEV-1 active: frontend 500s" in text


async def test_the_sandbox_incident_on_checkout_blocks_its_deploys_and_not_carts(deploy: Deploy, tool: Any) -> None:
    async with deploy.h.client(deploy.server(incidents=True)) as c:
        checkout, c_err = await tool(c, "deploy_plan", service="checkout", env="staging", action="deploy",
                                     version="2.13.4", reason="older build")
        cart, cart_err = await tool(c, "deploy_plan", service="cart", env="staging", action="deploy", version="1.9.0",
                                    reason="ship it")
    assert c_err and not passed(checkout, "incident") and "INC-142" in checkout
    assert not cart_err and passed(cart, "incident")


async def test_an_incident_opened_after_the_plan_refuses_the_apply_without_spending_it(deploy: Deploy,
                                                                                         tool: Any) -> None:
    server = deploy.server()
    source = Source([])
    with_sources(server, datadog=source)
    async with deploy.h.client(server) as c:
        text, _ = await tool(c, "deploy_plan", **CANARY_FRONTEND)
        source.incidents = [INC]
        refused, err = await tool(c, "deploy_apply", plan_id=field(text, "plan_id"))
        source.incidents = []
        applied, later_err = await tool(c, "deploy_apply", plan_id=field(text, "plan_id"))
    assert err and "a precondition no longer holds (the plan is not spent)" in refused
    assert deploy.events[-2].rule_id == "deploy.incident"
    assert not later_err and "applied plan" in applied


# --- operations in flight -------------------------------------------------------------------------
async def test_at_most_max_concurrent_operations_and_one_per_target(deploy: Deploy, tool: Any) -> None:
    async with deploy.h.client(deploy.server(cfg=config(max_concurrent=1))) as c:
        text, _ = await tool(c, "deploy_plan", service="cart", env="staging", action="deploy", version="1.9.0",
                             reason="ship")
        applied, _ = await tool(c, "deploy_apply", plan_id=field(text, "plan_id"))
        op = field(applied, "operation")
        second, second_err = await tool(c, "deploy_plan", **CANARY_FRONTEND)
        same, same_err = await tool(c, "deploy_plan", service="cart", env="staging", action="deploy",
                                    version="1.9.0", reason="again")
        rollback, rollback_err = await tool(c, "deploy_plan", **ROLLBACK_CHECKOUT)
        status, _ = await tool(c, "deploy_get_status", operation=op, wait_s=5)
        after, after_err = await tool(c, "deploy_plan", **CANARY_FRONTEND)
    assert second_err and "1 operations in flight, the limit is 1" in check_line(second, "concurrency")
    assert same_err and "cart staging is busy" in check_line(same, "busy")
    assert not rollback_err and "rollback is exempt from the limit of 1" in rollback
    assert " · Succeeded" in status.splitlines()[0]
    assert not after_err and passed(after, "concurrency")
    assert [e.rule_id for e in deploy.events if e.outcome == "denied"] == ["deploy.max_concurrent", "deploy.busy"]


async def test_two_applies_racing_for_the_last_slot_start_one_operation(deploy: Deploy, tool: Any) -> None:
    """Both plans passed while nothing ran; applied at once, only one may start (max_concurrent=1)."""
    results: list[tuple[str, bool]] = []
    inner = deploy.h.transport.inner

    class Latency(httpx2.AsyncBaseTransport):  # a real network: every request yields for a while
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            await anyio.sleep(0.01)
            return await inner.handle_async_request(request)

    deploy.h.transport.inner = Latency()
    async with deploy.h.client(deploy.server(cfg=config(max_concurrent=1))) as c:
        cart, _ = await tool(c, "deploy_plan", service="cart", env="staging", action="deploy", version="1.9.0",
                             reason="ship")
        frontend, _ = await tool(c, "deploy_plan", **CANARY_FRONTEND)

        async def apply(plan_id: str) -> None:
            results.append(await tool(c, "deploy_apply", plan_id=plan_id))

        async with anyio.create_task_group() as tg:
            tg.start_soon(apply, field(cart, "plan_id"))
            tg.start_soon(apply, field(frontend, "plan_id"))
    assert sorted(err for _, err in results) == [False, True]
    refused = next(text for text, err in results if err)
    assert "the limit is 1" in refused and "the plan is not spent" in refused
    applies = sorted(e.outcome for e in deploy.events if e.tool == "deploy_apply")
    assert applies == ["denied", "ok"]


async def test_an_apply_that_cannot_get_the_deploy_lease_is_refused_without_spending_the_plan(
    deploy: Deploy, tool: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import servers.deploy.write as write

    monkeypatch.setattr(write, "APPLY_WAIT_S", 0.3)
    server = deploy.server()
    async with deploy.h.client(server) as c:
        plan, _ = await tool(c, "deploy_plan", service="cart", env="staging", action="deploy", version="1.9.0",
                             reason="ship")
        held = await server.runtime.guard.limits.lease(write.APPLY_LEASE, 30)  # another replica starting
        assert held is not None
        refused, refused_err = await tool(c, "deploy_apply", plan_id=field(plan, "plan_id"))
        await server.runtime.guard.limits.release(write.APPLY_LEASE, held)
        applied, applied_err = await tool(c, "deploy_apply", plan_id=field(plan, "plan_id"))
    assert refused_err and "another apply" in refused and "the plan is not spent" in refused
    assert not applied_err and "operation:" in applied
    assert [e.rule_id for e in deploy.events if e.tool == "deploy_apply" and e.outcome == "denied"] == [
        "deploy.apply_in_progress"]


# --- write budgets --------------------------------------------------------------------------------
async def test_a_write_budget_exhausted_mid_window_refuses_until_the_window_moves(deploy: Deploy,
                                                                                  tool: Any) -> None:
    clock = [1000.0]
    store = MemoryLimitStore(clock=lambda: clock[0])
    budget = {"id": "staging-apply-budget", "tools": ["deploy_apply"], "where": {"env": ["staging"]}, "max": 2,
              "per": "1h", "key": ["service", "env"]}
    server = deploy.server(policy(limits=[budget]), limits=store)
    steps = [{"action": "rollback", "version": "2.13.4"}, {"action": "deploy", "version": "2.14.0"},
             {"action": "rollback", "version": "2.13.4"}]
    outcomes = []
    async with deploy.h.client(server) as c:
        for step in steps:
            text, err = await tool(c, "deploy_plan", service="checkout", env="staging", reason="budget", **step)
            assert not err, text
            applied, err = await tool(c, "deploy_apply", plan_id=field(text, "plan_id"))
            outcomes.append((err, deploy.events[-1].outcome, deploy.events[-1].rule_id))
            if not err:
                await tool(c, "deploy_get_status", operation=field(applied, "operation"), wait_s=5)
            clock[0] += 60
        assert "limit 'staging-apply-budget' allows 2 per 1h; it is spent" in applied
        clock[0] += 3600
        retried, retry_err = await tool(c, "deploy_apply", plan_id=field(text, "plan_id"))
    assert outcomes == [(False, "ok", "staging-deploys"), (False, "ok", "staging-deploys"),
                        (True, "rate_limited", "staging-apply-budget")]
    assert not retry_err and "applied plan" in retried


# --- escalation: named approvers -----------------------------------------------------------------
NEEDS_LEAD = {"id": "prod-rollback-needs-lead", "effect": "allow", "tools": ["deploy_plan", "deploy_apply"],
              "where": {"env": ["prod"], "action": ["rollback"]}, "approvers": ["lead"]}


async def test_a_rule_with_approvers_parks_the_plan_until_that_exact_plan_is_approved(
        deploy: Deploy, tool: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from servers.cli import main

    server = deploy.server(policy(rules=[NEEDS_LEAD, *BASE_RULES]), incidents=False)
    async with deploy.h.client(server) as c:
        text, err = await tool(c, "deploy_plan", **ROLLBACK_CHECKOUT)
        plan_id = field(text, "plan_id")
        ref = text.split(" ")[1]  # "plan pl_<nonce> · ..."
        other, _ = await tool(c, "deploy_plan", **ROLLBACK_CHECKOUT)
        _, early_err = await tool(c, "deploy_apply", plan_id=plan_id)
        waiting, _ = await tool(c, "deploy_get_status", plan_id=plan_id)
        monkeypatch.delenv("SPYGLASS_PLAN_KEY", raising=False)
        monkeypatch.setenv("SPYGLASS_CONFIG", str(deploy.state_dir.parent / "none.toml"))
        monkeypatch.setenv("SPYGLASS_POLICY", str(deploy.state_dir.parent / "policy.toml"))
        (deploy.state_dir.parent / "none.toml").write_text("")
        (deploy.state_dir.parent / "policy.toml").write_text("version = 1\n")
        assert main(["approve", ref, "--as", "intern", "--state-dir", str(deploy.state_dir)]) == 1
        assert main(["approve", ref, "--as", "lead", "--state-dir", str(deploy.state_dir)]) == 0
        approved, _ = await tool(c, "deploy_get_status", plan_id=plan_id)
        still, still_err = await tool(c, "deploy_apply", plan_id=field(other, "plan_id"))
        applied, applied_err = await tool(c, "deploy_apply", plan_id=plan_id)
    assert not err and "status: awaiting_approval" in text and "needs approval by one of lead" in text
    assert "approval:" in text
    assert early_err and deploy.events[2].outcome == "awaiting_approval"
    assert deploy.events[2].rule_id == "prod-rollback-needs-lead"
    assert "awaiting approval by one of lead" in waiting and "approved by lead" in approved
    assert still_err and "needs approval by one of lead" in still
    assert not applied_err and "approved by lead" in applied


async def test_the_approval_request_is_posted_to_slack_when_configured(deploy: Deploy, tool: Any) -> None:
    server = deploy.server(policy(rules=[NEEDS_LEAD, *BASE_RULES]), env=deploy.env(incidents=True))
    with_sources(server)
    async with deploy.h.client(server) as c:
        text, err = await tool(c, "deploy_plan", **ROLLBACK_CHECKOUT)
    posts = [r for r in deploy.h.transport.requests if r.url.endswith("/chat.postMessage")]
    assert not err and "approval: request posted to #deploys" in text, text
    assert len(posts) == 1 and b"spyglass+approve+pl_" in posts[0].body


# --- Argo Rollouts: pause / resume / promote --------------------------------------------------------
async def test_pause_resume_and_promote_steer_a_rollout_in_progress(deploy: Deploy, tool: Any) -> None:
    async def run(c: Any, **args: Any) -> tuple[str, bool]:
        text, err = await tool(c, "deploy_plan", service="checkout", env="staging", reason="steer", **args)
        if err:
            return text, err
        return await tool(c, "deploy_apply", plan_id=field(text, "plan_id"))

    async with deploy.h.client(deploy.server()) as c:
        nothing, nothing_err = await run(c, action="pause")
        await run(c, action="rollback")
        paused, _ = await run(c, action="pause")
        pause_status, _ = await tool(c, "deploy_get_status", operation=field(paused, "operation"))
        resumed, _ = await run(c, action="resume")
        promoted, _ = await run(c, action="promote")
        done, _ = await tool(c, "deploy_get_status", operation=field(promoted, "operation"), wait_s=5)
        github, github_err = await tool(c, "deploy_plan", service="cart", env="staging", action="pause",
                                        reason="no rollouts on github")
    assert nothing_err and "no rollout in progress" in nothing
    assert " · Paused" in pause_status.splitlines()[0] and "Rollout is paused" in pause_status
    assert "operation: argocd:checkout:staging:resume-" in resumed
    assert " · Succeeded" in done.splitlines()[0] and "now on 2.13.4" in done
    assert github_err and "pause is not supported for cart" in github
    sent = [r.body for r in deploy.h.transport.requests if r.url.endswith("/resource/actions/v2")]
    assert [b'"action":"pause"' in s for s in sent] == [True, False, False]
    assert b'"action":"promote-full"' in sent[2] and all(b'"kind":"Rollout"' in s for s in sent)
