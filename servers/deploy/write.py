"""deploy_plan and deploy_apply: two-phase writes with signed, single-use plan ids.

The guard has already decided the policy before these run: for deploy_plan on its arguments,
for deploy_apply on the plan's arguments (``apply_policy_args`` turns the plan id into them),
so freezes, environment allowlists and budgets hold at apply time. Here: preconditions, the
signature/expiry/principal/approval/single-use checks, the backend call, and the result.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
from pydantic import Field, model_validator

from guards.plans import (
    ApprovalStore,
    PlanClaims,
    PlanRefused,
    PlanSigner,
    check_principal,
    claim,
    decode_plan_id,
    load_plan_key,
)
from guards.principal import Principal
from servers._core.errors import PolicyDenied, ToolFailure
from servers._core.runtime import Runtime
from servers._core.shaping import ToolOutput, untrusted_block
from servers._core.spec import Params, ToolContext
from servers.deploy.checks import (
    Check,
    Evaluation,
    PlanBlocked,
    concurrency_checks,
    evaluate,
    incident_check,
    plan_args,
)
from servers.deploy.client import DeployHub
from servers.deploy.models import Target, short_sha
from servers.deploy.settings import FORWARD_ACTIONS, ServiceConfig

_VERSION = r"^[0-9A-Za-z][0-9A-Za-z._+-]*$"


def check_scope(ctx: ToolContext, service: str) -> None:
    allowed = ctx.scope.services if ctx.scope else None
    if allowed is not None and service not in allowed:
        raise PolicyDenied(f"service {service!r} is outside the deploy scope", rule_id="scopes.deploy.services",
                           hint=f"services in scope: {', '.join(allowed)}")


def plan_keys_for(rt: Runtime, hub: DeployHub) -> tuple[PlanSigner, ApprovalStore]:
    """The plan signer and approval store of this state dir (key from the env var the config names,
    else generated once into the state dir)."""
    cache_key = f"deploy.plans:{rt.state_dir}:{hub.config.plan_key_env}"
    cached: tuple[PlanSigner, ApprovalStore] | None = rt.extras.get(cache_key)
    if cached is None:
        try:
            key = load_plan_key(rt.state_dir, rt.env.get(hub.config.plan_key_env))
        except (OSError, ValueError) as e:
            raise ToolFailure(f"cannot load the plan signing key: {e}",
                              hint=f"set {hub.config.plan_key_env} to a random 32+ character secret, or make "
                              f"{rt.state_dir} writable") from None
        cached = (PlanSigner(key), ApprovalStore(rt.state_dir / "approvals", key))
        rt.extras[cache_key] = cached
    return cached


# --- deploy_plan ------------------------------------------------------------------------------------
class PlanParams(Params):
    service: str = Field(description="Service, as deploy_list_services names it.", min_length=1, max_length=63)
    env: str = Field(description="Environment, e.g. 'staging' or 'prod'.", min_length=1, max_length=63)
    action: Literal["deploy", "rollback", "pause", "resume", "promote"] = Field(
        description="deploy a version; rollback to an earlier release; pause/resume/promote a rollout.")
    version: str | None = Field(None, description="deploy: version to ship (required). rollback: target "
                                "(default: the previous release).", max_length=64, pattern=_VERSION)
    strategy: str | None = Field(None, description="deploy only, e.g. 'canary'.", max_length=32, pattern=_VERSION)
    reason: str = Field(description="Why, in one sentence; shown to approvers and audited.", min_length=3,
                        max_length=300)

    @model_validator(mode="after")
    def _shape(self) -> PlanParams:
        if self.action == "deploy" and not self.version:
            raise ValueError("version is required for action=deploy")
        if self.strategy and self.action != "deploy":
            raise ValueError("strategy applies to action=deploy only")
        if self.version and self.action in ("pause", "resume", "promote"):
            raise ValueError(f"version does not apply to action={self.action}")
        return self


def render_plan(ev: Evaluation, *, status: str, ref: str = "", plan_id: str = "", expires: str = "",
                principal: str = "", notes: list[str] | None = None) -> str:
    svc = ev.service
    where = f"argocd app {svc.app_for(ev.env)}" if svc.backend == "argocd" else f"github {svc.repo}"
    lines = [f"plan {ref + ' · ' if ref else ''}{ev.what} · {where}", "checks:"]
    width = max(len(c.label) for c in ev.checks) if ev.checks else 0
    for c in ev.checks:
        lines.append(f"  {'ok  ' if c.ok else 'FAIL'} {c.label.ljust(width)} [{c.rule_id}] {c.text}")
        if not c.ok and c.fix:
            lines.append(f"       fix: {c.fix}")
    if ev.signals:
        lines += untrusted_block("incident sources", [f"  {s}" for s in ev.signals[:10]])
        if len(ev.signals) > 10:
            lines.append(f"  … {len(ev.signals) - 10} more signals")
    if ev.risks:
        lines.append("risks: " + "; ".join(ev.risks))
    lines += notes or []
    if status == "blocked":
        lines.append(f"status: blocked by {len(ev.failed)} check(s); no plan_id issued. Fix them and plan again.")
    else:
        lines.append(f"status: {status} · single use · expires {expires} · bound to {principal}")
        lines.append(f"plan_id: {plan_id}")
        if status == "awaiting_approval":
            lines.append(f"next: an approver runs `spyglass approve {ref}`; poll deploy_get_status(plan_id=…), "
                         "then deploy_apply(plan_id=…). You are not blocked: go on with other work.")
        else:
            lines.append("next: deploy_apply(plan_id=…) with the plan_id above, unchanged")
    return "\n".join(lines)


async def plan(p: PlanParams, ctx: ToolContext) -> ToolOutput:
    hub: DeployHub = ctx.client
    check_scope(ctx, p.service)
    svc = hub.config.service(p.service)
    env = hub.config.env_of(svc, p.env)
    ev = await evaluate(ctx, hub, svc, env, p.action, p.version, p.strategy, p.reason)
    if not ev.ok:
        first = ev.failed[0]
        raise PlanBlocked(f"plan {ev.what} blocked by {first.rule_id}: {first.text}", rule_id=first.rule_id,
                          text=render_plan(ev, status="blocked"))
    signer, store = plan_keys_for(ctx.runtime, hub)
    status = "awaiting_approval" if ev.approvers else "ready"
    binding = {"backend": svc.backend, "sha": ev.target.sha, "hid": ev.target.history_id,
               "reason": p.reason[:60]}
    plan_id = signer.mint(principal=ctx.principal.name, args=plan_args(ev), now=ctx.now,
                          ttl_s=hub.config.plan_ttl_s, approvers=ev.approvers, status=status,
                          binding={k: v for k, v in binding.items() if v is not None})
    claims = decode_plan_id(plan_id)
    notes = []
    if status == "awaiting_approval":
        store.request(claims)
        notes.append(await _request_approval(ctx, hub, claims, ev))
    text = render_plan(ev, status=status, ref=claims.ref, plan_id=plan_id, expires=claims.expires_iso(),
                       principal=claims.principal, notes=notes)
    return ToolOutput(text, plan_id=claims.ref)


async def _request_approval(ctx: ToolContext, hub: DeployHub, claims: PlanClaims, ev: Evaluation) -> str:
    channel = hub.config.approval_channel
    if not channel:
        return (f"approval: rule {ev.approval_rule} needs one of {', '.join(ev.approvers)}; no approval_channel "
                "is configured, so share the plan ref with an approver")
    slack = await ctx.optional_client("slack_write")
    if slack is None or not hasattr(slack, "post_message"):
        return f"approval: Slack is not configured; ask one of {', '.join(ev.approvers)} to approve {claims.ref}"
    text = (f":lock: Spyglass deploy approval needed ({ev.approval_rule})\n"
            f"*{ev.what}* requested by {claims.principal} ({ctx.principal.client})\n"
            f"reason: {claims.binding.get('reason', '')}\n"
            f"plan {claims.ref} · digest {claims.digest} · expires {claims.expires_iso()}\n"
            f"approvers: {', '.join(ev.approvers)} — approve with `spyglass approve {claims.ref}`")
    try:
        ts = await slack.post_message(channel, text)
    except ToolFailure as e:
        return f"approval: posting to {channel} failed ({e.message}); share {claims.ref} with an approver"
    return f"approval: request posted to {channel} (ts {ts}) for {', '.join(ev.approvers)}"


# --- deploy_apply -----------------------------------------------------------------------------------
class ApplyParams(Params):
    plan_id: str = Field(description="plan_id from deploy_plan, unchanged.", min_length=8, max_length=2000)


async def apply_policy_args(args: Mapping[str, Any], principal: Principal, runtime: Runtime) -> dict[str, Any]:
    """What the policy decides deploy_apply on: the plan's own arguments (service, env, action,
    version, strategy). Malformed, other-principal, tampered and expired plan ids are refused here,
    before any budget is drawn; approval and single use are checked when the apply runs."""
    plan_id = str(args.get("plan_id", ""))
    claims = decode_plan_id(plan_id)
    check_principal(claims, principal.name)
    hub: DeployHub = await runtime.client_for(runtime.load_toolset("deploy_write"))
    signer, _ = plan_keys_for(runtime, hub)
    signer.verify(plan_id, principal=principal.name, now=runtime.guard.clock())
    return dict(claims.args)


async def apply(p: ApplyParams, ctx: ToolContext) -> ToolOutput:
    hub: DeployHub = ctx.client
    signer, store = plan_keys_for(ctx.runtime, hub)
    claims = signer.verify(p.plan_id, principal=ctx.principal.name, now=ctx.now)
    a = claims.args
    svc = hub.config.service(str(a.get("service")))
    env = hub.config.env_of(svc, str(a.get("env")))
    check_scope(ctx, svc.name)
    action = str(a.get("action"))
    approval = ""
    if ctx.decision.approvers:
        found = store.require(claims, ctx.decision.approvers, rule_id=ctx.decision.rule_id)
        approval = f" · approved by {found.approver} at {found.at}"
    if claims.binding.get("backend") != svc.backend:
        raise PlanBlocked(f"plan {claims.ref}: {svc.name} moved from {claims.binding.get('backend')} to "
                          f"{svc.backend} since it was planned", rule_id="deploy.config",
                          text=f"refused: {svc.name}'s backend changed since plan {claims.ref}; plan again")
    # Plans this process spent: a replay is named as one, not as the busy target it left behind.
    # The limits store's claim_once below is what enforces single use (across replicas too).
    spent: set[str] = ctx.runtime.extras.setdefault("deploy.spent_plans", set())
    if claims.nonce in spent:
        raise PlanRefused(f"plan {claims.ref} was already applied (plan ids are single use)",
                          rule_id="plans.replayed", hint="check the operation with deploy_get_status, or plan again")
    target = Target(action=action, version=a.get("version"), sha=claims.binding.get("sha"),
                    history_id=claims.binding.get("hid"), strategy=a.get("strategy"),
                    reason=str(claims.binding.get("reason", "")), plan_ref=claims.ref, principal=claims.principal)
    # Re-checking what is in flight and starting the operation happen under one lease, shared by
    # every replica through the limits store: two applies checked at once would both see a free
    # slot (max_concurrent, busy target) and both start.
    async with apply_slot(ctx, claims.ref):
        await _recheck(ctx, hub, svc, env, action, claims)
        await claim(ctx.runtime.guard.limits, claims, ctx.now)
        if len(spent) > 10_000:
            spent.clear()
        spent.add(claims.nonce)
        try:
            op = await hub.backend(svc).start(svc, env, target)
        except ToolFailure as e:
            e.hint = ((e.hint + "; ") if e.hint else "") + f"plan {claims.ref} is spent: plan again to retry"
            raise
    what = f"{action} {svc.name} {env}" + (f" → {target.version}" if target.version else "")
    if target.sha:
        what += f" ({short_sha(target.sha)})"
    lines = [
        f"applied plan {claims.ref} · {what}{approval}",
        f"operation: {op.op_id}",
        f"  {op.summary}",
        f"next: deploy_get_status(operation=\"{op.op_id}\", wait_s=60) to follow it; then verify recovery in "
        "metrics and logs",
    ]
    return ToolOutput("\n".join(lines), plan_id=claims.ref)


APPLY_LEASE = "deploy.apply"
APPLY_WAIT_S = 20.0  # how long an apply waits for another to finish starting its operation


@asynccontextmanager
async def apply_slot(ctx: ToolContext, ref: str) -> AsyncIterator[None]:
    """Hold the one apply lease while checking and starting; wait a while for another holder."""
    limits = ctx.runtime.guard.limits
    left = ctx.record.remaining_s()
    ttl = max(5.0, left if left is not None else 60.0)  # a holder that dies frees it when its call would end
    deadline = time.monotonic() + min(APPLY_WAIT_S, max(0.0, (left or APPLY_WAIT_S) - 1.0))
    pause = 0.05
    while (token := await limits.lease(APPLY_LEASE, ttl)) is None:
        if time.monotonic() + pause > deadline:
            raise PlanBlocked(
                f"apply of {ref} refused: another apply is still starting its operation",
                rule_id="deploy.apply_in_progress",
                text=f"apply of plan {ref} refused: another apply held the deploy lease for over "
                     f"{APPLY_WAIT_S:.0f}s (the plan is not spent)\n"
                     "  fix: retry deploy_apply with the same plan_id in a moment",
            )
        await anyio.sleep(pause)
        pause = min(pause * 2, 1.0)
    try:
        yield
    finally:
        await limits.release(APPLY_LEASE, token)


async def _recheck(ctx: ToolContext, hub: DeployHub, svc: ServiceConfig, env: str, action: str,
                   claims: PlanClaims) -> None:
    """Preconditions that can change under a signed plan: open incidents, operations in flight."""
    checks: list[Check] = []
    if action in FORWARD_ACTIONS:
        checks.append(await incident_check(ctx, hub, svc, action))
    checks += await concurrency_checks(hub, svc, env, action)
    failed = [c for c in checks if not c.ok]
    if failed:
        lines = [f"apply of plan {claims.ref} refused: a precondition no longer holds (the plan is not spent)"]
        for c in failed:
            lines.append(f"  FAIL {c.label} [{c.rule_id}] {c.text}")
            if c.fix:
                lines.append(f"       fix: {c.fix}")
        raise PlanBlocked(f"apply of {claims.ref} refused by {failed[0].rule_id}: {failed[0].text}",
                          rule_id=failed[0].rule_id, text="\n".join(lines))
