"""Preconditions of a deploy plan, each a named check with a rule id and what would make it pass.

Plan time evaluates all of them and reports every result; apply time re-runs the ones that can
change under a signed plan (open incidents, operations in flight) after the guard re-decided
the policy on the plan's arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from guards.decide import Call, decide
from servers._core.errors import MissingAccess, Outcome, ToolFailure
from servers._core.shaping import one_line
from servers._core.spec import ToolContext
from servers._core.timeparse import iso
from servers.deploy.client import DeployHub
from servers.deploy.client_argocd import ROLLOUT_ACTIONS
from servers.deploy.models import HistoryEntry, Revision, Target, short_sha
from servers.deploy.settings import FORWARD_ACTIONS, ServiceConfig

FAILED_CONCLUSIONS = {"failure", "timed_out", "cancelled", "action_required", "startup_failure", "stale"}
PASSED_CONCLUSIONS = {"success", "neutral", "skipped"}


@dataclass
class Check:
    label: str
    rule_id: str
    ok: bool
    text: str
    fix: str | None = None


@dataclass
class Evaluation:
    service: ServiceConfig
    env: str
    action: str
    target: Target
    what: str = ""
    from_version: str | None = None
    checks: list[Check] = field(default_factory=list)
    risks: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)  # incident/alert lines (untrusted text)
    approvers: tuple[str, ...] = ()
    approval_rule: str = ""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


class PlanBlocked(ToolFailure):
    """A plan or apply refused by a precondition: the text lists every check and its fix."""

    outcome = Outcome.DENIED

    def __init__(self, message: str, *, rule_id: str, text: str) -> None:
        super().__init__(message)
        self.rule_id = rule_id
        self.text = text

    def render(self) -> str:
        return self.text


# --- policy -------------------------------------------------------------------------------------
def policy_check(ctx: ToolContext, args: dict[str, Any], now: datetime) -> tuple[Check, tuple[str, ...], str]:
    """What the policy will say to deploy_apply of these arguments (pure: decide() has no I/O)."""
    d = decide(Call("deploy_apply", "deploy_write", "write", args, ctx.principal.name, ctx.principal.client),
               ctx.policy, now)
    if not d.allowed:
        return Check("policy", d.rule_id, False, f"deploy_apply would be denied by {d.rule_id}: {d.reason}",
                     d.hint), (), d.rule_id
    approvers = tuple(dict.fromkeys((*ctx.decision.approvers, *d.approvers)))
    rule = d.rule_id if d.approvers else ctx.decision.rule_id
    text = f"deploy_apply allowed by {d.rule_id}"
    if approvers:
        text += f"; needs approval by one of {', '.join(approvers)} ({rule})"
    return Check("policy", d.rule_id, True, text), approvers, rule


# --- version / history --------------------------------------------------------------------------
def running_entry(history: list[HistoryEntry]) -> HistoryEntry | None:
    return next((h for h in history if h.status == "succeeded"), None)


def rollback_target(history: list[HistoryEntry], version: str | None) -> HistoryEntry | None:
    current = running_entry(history)
    for h in history:
        if h.status != "succeeded" or h is current:
            continue
        if current is not None and h.commit == current.commit:
            continue
        if version is None or h.version == version:
            return h
    return None


def ci_check(runs: list[Any], ref: str) -> Check:
    if not runs:
        return Check("ci", "deploy.ci", False, f"no CI check runs found for {ref}",
                     "wait for CI to report on this commit, or pick a version whose CI passed")
    failed = [r.name for r in runs if r.conclusion in FAILED_CONCLUSIONS]
    pending = [r.name for r in runs if r.status != "completed"]
    if failed:
        return Check("ci", "deploy.ci", False, f"CI failed for {ref}: {', '.join(failed)}",
                     "fix the failing checks and release a new version, or pick a version whose CI passed")
    if pending:
        return Check("ci", "deploy.ci", False, f"CI still running for {ref}: {', '.join(pending)}",
                     "wait until the checks complete, then plan again")
    odd = [r.name for r in runs if r.conclusion not in PASSED_CONCLUSIONS]
    if odd:
        return Check("ci", "deploy.ci", False, f"CI inconclusive for {ref}: {', '.join(odd)}",
                     "re-run the checks until they pass")
    return Check("ci", "deploy.ci", True, f"CI passed for {ref}: {len(runs)} check runs")


# --- incidents ----------------------------------------------------------------------------------
async def incident_signals(ctx: ToolContext, service: str) -> tuple[list[str], list[str], int]:
    """(open signals, errors reaching a source, sources asked). Datadog incidents and monitors,
    Grafana alerts; the clients are the other toolsets' (their public client API)."""
    signals: list[str] = []
    errors: list[str] = []
    asked = 0
    dd = await ctx.optional_client("datadog")
    if dd is not None:
        asked += 1
        for method in ("open_incidents", "alerting_monitors"):
            fn = getattr(dd, method, None)
            if fn is None:
                errors.append(f"datadog: this build's Datadog client cannot list {method.replace('_', ' ')}")
                continue
            try:
                for item in await fn(service):
                    if method == "open_incidents":
                        signals.append(f"datadog incident {item.get('id', '?')} {item.get('severity', '')} "
                                       f"{item.get('state', '')}: {one_line(str(item.get('title', '')), 160)}")
                    else:
                        signals.append(f"datadog monitor {item.get('id', '?')} {item.get('state', '')}: "
                                       f"{one_line(str(item.get('name', '')), 160)}")
            except ToolFailure as e:
                errors.append(f"datadog: {e.message}")
    gf = await ctx.optional_client("grafana")
    if gf is not None:
        asked += 1
        fn = getattr(gf, "firing_alerts", None)
        if fn is None:
            errors.append("grafana: this build's Grafana client cannot list firing alerts")
        else:
            try:
                for item in await fn(service):
                    since = f" since {item['since']}" if item.get("since") else ""
                    signals.append(f"grafana alert {item.get('state', 'firing')}{since}: "
                                   f"{one_line(str(item.get('name', '')), 160)}")
            except ToolFailure as e:
                errors.append(f"grafana: {e.message}")
    return signals, errors, asked


async def incident_check(ctx: ToolContext, hub: DeployHub, svc: ServiceConfig, action: str,
                         ev: Evaluation | None = None) -> Check:
    if hub.config.incident_gate == "off":
        return Check("incident", "deploy.incident", True, "incident gate is off in spyglass.toml")
    signals, errors, asked = await incident_signals(ctx, svc.name)
    if ev is not None:
        ev.signals = signals
    forward = action in FORWARD_ACTIONS
    if not asked:
        return Check("incident", "deploy.incident", True, "no incident source configured (Datadog, Grafana)")
    if signals and forward:
        return Check("incident", "deploy.incident", False,
                     f"{len(signals)} open incident/alert signal(s) for {svc.name} (listed below); "
                     f"no {action} while they are open",
                     "resolve them first, or roll back / pause instead: those stay allowed during incidents")
    if errors and forward:
        return Check("incident", "deploy.incident", False,
                     f"could not verify that no incident is open for {svc.name}: {'; '.join(errors)}",
                     "fix access to the incident source, or set incident_gate = \"off\" in spyglass.toml")
    if signals:
        return Check("incident", "deploy.incident", True,
                     f"{len(signals)} open signal(s) for {svc.name} (listed below); {action} is allowed during "
                     "incidents")
    note = f" (unverified: {'; '.join(errors)})" if errors else ""
    return Check("incident", "deploy.incident", True, f"no open incident or firing alert for {svc.name}{note}")


# --- operations in flight -------------------------------------------------------------------------
async def concurrency_checks(hub: DeployHub, svc: ServiceConfig, env: str, action: str) -> list[Check]:
    """The target must be idle for deploy/rollback; at most max_concurrent operations overall
    (pause and rollback are exempt: they reduce risk)."""
    running: list[str] = []
    unreadable: list[str] = []
    same: str | None = None
    for other in hub.services():
        try:
            backend = hub.backend(other)
        except MissingAccess:
            unreadable.append(other.name)
            continue
        for e in other.envs:
            try:
                line = await backend.in_flight(other, e)
            except ToolFailure:
                if other.name == svc.name and e == env:
                    raise
                unreadable.append(f"{other.name}/{e}")
                continue
            if line:
                running.append(f"{other.name}/{e}: {line}")
                if other.name == svc.name and e == env:
                    same = line
    out = []
    if action in ("deploy", "rollback"):
        if same:
            out.append(Check("busy", "deploy.busy", False, f"{svc.name} {env} is busy: {same}",
                             "wait for it with deploy_get_status, or pause/promote it first"))
        else:
            out.append(Check("busy", "deploy.busy", True, f"nothing in flight on {svc.name} {env}"))
    m = hub.config.max_concurrent
    blind = f" (not counted, unreadable: {', '.join(unreadable)})" if unreadable else ""
    if action in ("pause", "rollback"):
        out.append(Check("concurrency", "deploy.max_concurrent", True,
                         f"{len(running)} operation(s) in flight; {action} is exempt from the limit of {m}{blind}"))
    elif len(running) >= m:
        out.append(Check("concurrency", "deploy.max_concurrent", False,
                         f"{len(running)} operations in flight, the limit is {m}: " + "; ".join(running[:3]),
                         "wait until one finishes (deploy_get_status), then plan again"))
    else:
        out.append(Check("concurrency", "deploy.max_concurrent", True,
                         f"{len(running)} of at most {m} operations in flight{blind}"))
    return out


# --- the whole evaluation -------------------------------------------------------------------------
async def evaluate(ctx: ToolContext, hub: DeployHub, svc: ServiceConfig, env: str, action: str,
                   version: str | None, strategy: str | None, reason: str) -> Evaluation:
    backend = hub.backend(svc)
    ev = Evaluation(svc, env, action, Target(action=action, version=version, strategy=strategy, reason=reason,
                                             principal=ctx.principal.name))
    label = f"{svc.backend} " + (svc.app_for(env) if svc.backend == "argocd" else str(svc.repo))

    if action not in backend.actions or (action in ROLLOUT_ACTIONS and svc.backend == "argocd" and not svc.rollout):
        ev.checks.append(Check("capability", "deploy.capability", False,
                               f"{action} is not supported for {svc.name} ({label})",
                               "pause/resume/promote need an Argo CD service with an Argo Rollouts `rollout` "
                               "configured; use deploy or rollback"))
        ev.what = f"{action} {svc.name} {env}"
        return _finish_policy(ctx, ev)

    if strategy is not None:
        if strategy in svc.strategies:
            ev.checks.append(Check("strategy", "deploy.strategy", True,
                                   f"{strategy} is a strategy {svc.name} supports"))
        else:
            ev.checks.append(Check("strategy", "deploy.strategy", False,
                                   f"{svc.name} does not support strategy {strategy!r}",
                                   f"use one of: {', '.join(svc.strategies) or '(none configured)'}"))

    history = await backend.history(svc, env, 20)
    current = running_entry(history)
    ev.from_version = current.version if current else None

    if action == "deploy":
        assert version is not None
        rev: Revision | None = await backend.find_version(svc, version)
        gh = hub.github_or_none() if svc.repo else None
        if rev is not None and not rev.sha and gh is not None and svc.repo:
            resolved = await gh.commit(svc.repo, svc.tag(version))
            rev = Revision(version, resolved.sha, rev.date, rev.author, rev.title) if resolved else rev
        if rev is None:
            ev.checks.append(Check("version", "deploy.version", False,
                                   f"version {version} does not exist for {svc.name} (no tag {svc.tag(version)})",
                                   "pick a released version; deploy_diff_releases and deploy_get_history "
                                   "show existing ones"))
        elif current is not None and current.version == version:
            ev.checks.append(Check("version", "deploy.version", False,
                                   f"{svc.name} {env} already runs {version}", "nothing to deploy"))
        else:
            ev.target = Target(action, version, rev.sha or None, None, strategy, reason, principal=ctx.principal.name)
            ev.checks.append(Check("version", "deploy.version", True,
                                   f"{svc.tag(version)} exists ({short_sha(rev.sha) or 'sha unresolved'}"
                                   + (f", {iso(rev.date)}" if rev.date else "") + ")"))
        if svc.require_ci:
            ev.checks.append(await _ci(hub, svc, version, rev))
        else:
            ev.checks.append(Check("ci", "deploy.ci", True, f"CI not required for {svc.name} (require_ci = false)"))
        where = f"{svc.app_for(env)} (Argo CD sync)" if svc.backend == "argocd" else \
            f"{svc.repo} via {svc.workflow} (workflow_dispatch)"
        ev.what = (f"deploy {svc.name} {env} {ev.from_version or '(none)'} → {version}"
                   + (f" ({strategy})" if strategy else ""))
        ev.risks += _deploy_risks(env, strategy, history, version)
        ev.risks.insert(0, f"ships {svc.tag(version)} to {where}")
    elif action == "rollback":
        target = rollback_target(history, version)
        if target is None:
            want = f"version {version}" if version else "an earlier release"
            ev.checks.append(Check("version", "deploy.version", False,
                                   f"no succeeded {want} in {svc.name} {env} history to roll back to"
                                   + (f" (running {current.version})" if current else ""),
                                   "deploy_get_history lists the releases you can roll back to"))
        else:
            hid = int(target.id) if svc.backend == "argocd" and target.id.isdigit() else None
            ev.target = Target(action, target.version, target.commit or None, hid, None, reason,
                               principal=ctx.principal.name)
            ev.checks.append(Check("version", "deploy.version", True,
                                   f"{target.version} ({short_sha(target.commit)}) ran in {env} as #{target.id}"
                                   + (f" ({iso(target.at)})" if target.at else "")))
            back = [h for h in history if h.status == "succeeded"]
            idx = back.index(target) if target in back else 0
            ev.risks.append(f"rolls back {idx} release(s): {ev.from_version or '?'} → {target.version}")
        ev.what = f"rollback {svc.name} {env} {ev.from_version or '?'} → {ev.target.version or version or '?'}"
    else:
        line = await backend.in_flight(svc, env)
        ok = line is not None and (action != "resume" or "paused" in line)
        ev.checks.append(Check("state", "deploy.state", ok,
                               f"{svc.name} {env}: {line or 'no rollout in progress'}",
                               None if ok else f"{action} acts on a rollout in progress"
                               + (" that is paused" if action == "resume" else "")))
        ev.what = f"{ROLLOUT_ACTIONS[action]} Rollout {svc.rollout} of {svc.app_for(env)}"

    ev.checks.append(await incident_check(ctx, hub, svc, action, ev))
    ev.checks += await concurrency_checks(hub, svc, env, action)
    if env in ("prod", "production"):
        ev.risks.append("production environment")
    return _finish_policy(ctx, ev)


def _finish_policy(ctx: ToolContext, ev: Evaluation) -> Evaluation:
    check, approvers, rule = policy_check(ctx, plan_args(ev), ctx.now)
    ev.checks.insert(0, check)
    ev.approvers, ev.approval_rule = approvers, rule
    return ev


def plan_args(ev: Evaluation) -> dict[str, Any]:
    """The arguments the policy decides deploy_apply on (what the signed plan carries)."""
    args = {"service": ev.service.name, "env": ev.env, "action": ev.action, "version": ev.target.version,
            "strategy": ev.target.strategy}
    return {k: v for k, v in args.items() if v is not None}


async def _ci(hub: DeployHub, svc: ServiceConfig, version: str, rev: Revision | None) -> Check:
    if not svc.repo:
        return Check("ci", "deploy.ci", False, f"no repo configured to read {svc.name}'s CI from",
                     "set `repo` for the service in spyglass.toml, or require_ci = false")
    gh = hub.github_or_none()
    if gh is None:
        return Check("ci", "deploy.ci", False, "cannot verify CI: GITHUB_TOKEN is not set",
                     "set GITHUB_TOKEN (Checks: read) so CI status can be verified")
    if rev is None:
        return Check("ci", "deploy.ci", False, f"no CI to check: {svc.tag(version)} does not exist")
    ref = rev.sha or svc.tag(version)
    return ci_check(await gh.check_runs(svc.repo, ref), f"{svc.tag(version)} ({short_sha(ref) or ref})")


def _deploy_risks(env: str, strategy: str | None, history: list[HistoryEntry], version: str) -> list[str]:
    risks = []
    if strategy is None:
        risks.append("no strategy given: the backend's default rollout (all at once unless it defines steps)")
    if any(h.version == version and h.status == "succeeded" for h in history):
        risks.append(f"{version} ran here before: if this undoes a release, action=rollback is the clearer plan")
    if any(h.version == version and h.kind == "rollback" for h in history):
        risks.append(f"{version} was rolled back away from before")
    return risks
