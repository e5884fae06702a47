"""Deploy tools. Toolset ``deploy`` reads (services, history, diffs, status); ``deploy_write``
plans and applies (plan mints a signed plan id, so it is a write tool too)."""

from __future__ import annotations

from datetime import UTC

import anyio
from pydantic import Field, model_validator

from guards.plans import PlanRefused, decode_plan_id
from servers._core.errors import InvalidArguments, MissingAccess, NotFound, ToolFailure
from servers._core.shaping import ToolOutput, fit_lines, one_line, render_table, untrusted_block
from servers._core.spec import Params, ToolContext, Toolset, ToolSpec
from servers._core.timeparse import iso
from servers.deploy.checks import running_entry
from servers.deploy.client import READ_ROUTES, WRITE_ROUTES, DeployHub, make_read_client, make_write_client
from servers.deploy.models import (
    Diff,
    EnvStatus,
    HistoryEntry,
    OperationStatus,
    is_config_file,
    parse_op_id,
    short_sha,
)
from servers.deploy.settings import ServiceConfig
from servers.deploy.write import ApplyParams, PlanParams, apply, apply_policy_args, check_scope, plan, plan_keys_for

UPSTREAM = "deploy"
_NAME = r"^[a-z0-9][a-z0-9._-]*$"
_VERSION = r"^[0-9A-Za-z][0-9A-Za-z._+-]*$"
ENV_VARS = ("ARGOCD_SERVER", "ARGOCD_AUTH_TOKEN", "GITHUB_TOKEN", "GITHUB_API_URL", "SPYGLASS_PLAN_KEY")


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _services_in_scope(ctx: ToolContext, hub: DeployHub) -> list[ServiceConfig]:
    allowed = ctx.scope.services if ctx.scope else None
    services = hub.services()
    if allowed is None:
        return services
    visible = [s for s in services if s.name in allowed]
    ctx.record.scoped(len(services) - len(visible))
    return visible


def _no_services() -> ToolFailure:
    return NotFound("no deploy services are configured",
                    hint="add [deploy.services.<name>] entries to spyglass.toml (see config/spyglass.example.toml)")


# --- deploy_list_services -------------------------------------------------------------------------
class ListServicesParams(Params):
    env: str | None = Field(None, description="Only this environment, e.g. 'prod'.", max_length=63, pattern=_NAME)


async def list_services(p: ListServicesParams, ctx: ToolContext) -> ToolOutput:
    hub: DeployHub = ctx.client
    services = _services_in_scope(ctx, hub)
    if not hub.services():
        raise _no_services()
    rows, problems, first_missing = [], [], None
    for svc in services:
        for env in svc.envs:
            if p.env and env != p.env:
                continue
            try:
                st: EnvStatus = await hub.backend(svc).env_status(svc, env)
            except MissingAccess as e:
                first_missing = first_missing or e
                problems.append(f"{svc.name}/{env}: {e.message}")
                continue
            except ToolFailure as e:
                problems.append(f"{svc.name}/{env}: {e.message}")
                continue
            rows.append([svc.name, env, f"{st.backend} {st.target}", st.version or "-", short_sha(st.commit),
                         st.sync, st.health, iso(st.since) if st.since else "-", st.operation or "-"])
    if not rows and first_missing is not None:
        raise first_missing
    header = f"deploy services{' · env ' + p.env if p.env else ''} · {len(rows)} service/env pairs"
    lines = [header, *render_table(["service", "env", "backend", "version", "commit", "sync", "health", "since",
                                    "in flight"], rows)]
    if problems:
        lines.append("unavailable: " + "; ".join(problems))
    return ToolOutput("\n".join(lines), total=len(rows), empty=not rows)


# --- deploy_get_history ---------------------------------------------------------------------------
class HistoryParams(Params):
    service: str = Field(description="Service name.", min_length=1, max_length=63, pattern=_NAME)
    env: str = Field("prod", description="Environment.", min_length=1, max_length=63, pattern=_NAME)
    limit: int = Field(10, ge=1, le=20, description="Releases to show, newest first.")


async def get_history(p: HistoryParams, ctx: ToolContext) -> ToolOutput:
    hub: DeployHub = ctx.client
    check_scope(ctx, p.service)
    svc = hub.config.service(p.service)
    env = hub.config.env_of(svc, p.env)
    entries: list[HistoryEntry] = await hub.backend(svc).history(svc, env, p.limit)
    target = svc.app_for(env) if svc.backend == "argocd" else svc.repo
    header = f"{svc.name} {env} releases ({svc.backend} {target}) · newest first · {len(entries)} shown"
    if not entries:
        return ToolOutput(f"{header}\nno releases recorded", empty=True)
    rows = [[e.id, e.version or "-", short_sha(e.commit), e.by, iso(e.at) if e.at else "-", e.status,
             _dur(e.duration_s), (e.kind if e.kind == "rollback" else "") + (f" {e.note}" if e.note else "")]
            for e in entries]
    current = running_entry(entries)
    lines = [header, *render_table(["id", "version", "commit", "by", "at", "status", "took", "note"], rows)]
    if current:
        lines.append(f"running: {current.version} (#{current.id})")
    return ToolOutput("\n".join(lines), total=len(entries), truncated=False)


# --- deploy_diff_releases -------------------------------------------------------------------------
class DiffParams(Params):
    service: str = Field(description="Service name.", min_length=1, max_length=63, pattern=_NAME)
    from_: str | None = Field(None, alias="from", description="Older version; default: the release before 'to'.",
                              max_length=64, pattern=_VERSION)
    to: str | None = Field(None, description="Newer version; default: the running one.", max_length=64,
                           pattern=_VERSION)
    env: str = Field("prod", description="Environment whose releases define the defaults and the flag window.",
                     max_length=63, pattern=_NAME)
    limit: int = Field(30, ge=1, le=100, description="Commits to list.")


async def diff_releases(p: DiffParams, ctx: ToolContext) -> ToolOutput:
    hub: DeployHub = ctx.client
    check_scope(ctx, p.service)
    svc = hub.config.service(p.service)
    env = hub.config.env_of(svc, p.env)
    history = [h for h in await hub.backend(svc).history(svc, env, 20) if h.status == "succeeded"]
    to = p.to or (history[0].version if history else None)
    if not to:
        raise InvalidArguments(f"to: {svc.name} has no release in {env}; name the versions to compare")
    if p.from_:
        base = p.from_
    else:
        idx = next((i for i, h in enumerate(history) if h.version == to), None)
        older = [h for h in history[(idx + 1 if idx is not None else 0):] if h.version and h.version != to]
        if not older:
            raise InvalidArguments(f"from: no release before {to} in {svc.name} {env}; name it explicitly")
        base = str(older[0].version)
    gh = hub.github_or_none() if svc.repo else None
    if gh is None or not svc.repo:
        raise MissingAccess(
            f"cannot diff {svc.name} {base}..{to}: commits are read from GitHub and "
            + ("GITHUB_TOKEN is not set" if svc.repo else f"{svc.name} has no `repo` configured"),
            hint="set GITHUB_TOKEN and the service's `repo` in spyglass.toml")
    diff: Diff = await gh.compare(svc.repo, svc.tag(base), svc.tag(to), per_page=100)
    adds = sum(f.additions for f in diff.files)
    dels = sum(f.deletions for f in diff.files)
    lines = [f"{svc.name} {base} → {to} · {diff.total_commits} commits · {len(diff.files)} files (+{adds} −{dels}) · "
             f"{diff.source}"]
    if diff.status == "behind":
        lines.append(f"note: {to} is older than {base} (going from {base} to {to} removes these commits)")
    commits = diff.commits[-p.limit:]
    commit_lines = [f"{short_sha(c.sha)} {iso(c.date) if c.date else '-'} {c.author} {one_line(c.title, 140)}"
                    for c in commits]
    if commit_lines:
        lines += [f"commits (oldest first{', last ' + str(p.limit) if len(diff.commits) > p.limit else ''}; "
                  "PR numbers from squash-merge titles):",
                  *untrusted_block("github commits", commit_lines)]
    config = [f for f in diff.files if is_config_file(f.filename)]
    code = [f for f in diff.files if not is_config_file(f.filename)]
    if config:
        lines.append("config/manifests changed:")
        lines += [f"  {f.status} {f.filename} (+{f.additions} −{f.deletions})" for f in config[:20]]
    if code:
        names = ", ".join(f.filename for f in code[:8]) + (f", … {len(code) - 8} more" if len(code) > 8 else "")
        lines.append(f"code: {len(code)} files (+{sum(f.additions for f in code)} −{sum(f.deletions for f in code)}): "
                     f"{names}")
    lines += await _flag_changes(ctx, history, base, to)
    truncated = len(diff.commits) > p.limit or diff.total_commits > len(diff.commits)
    kept, cut = fit_lines(lines, 4000)
    return ToolOutput("\n".join(kept), truncated=truncated or cut, total=diff.total_commits)


async def _flag_changes(ctx: ToolContext, history: list[HistoryEntry], base: str, to: str) -> list[str]:
    statsig = await ctx.optional_client("statsig")
    if statsig is None or not hasattr(statsig, "changes_between"):
        return ["flag changes: Statsig not configured"]
    by_version = {h.version: h for h in reversed(history)}  # oldest release of each version wins
    start_h = by_version.get(base)
    to_h = next((h for h in history if h.version == to), None)
    start = start_h.at if start_h and start_h.at else (to_h.at if to_h and to_h.at else None)
    if start is None:
        return ["flag changes: neither release ran in this env, so there is no window to read"]
    newer = [h for h in history if to_h and h.at and to_h.at and h.at > to_h.at]
    end = min((h.at for h in newer if h.at), default=None) or ctx.now
    statsig_scope = ctx.policy.scope_for("statsig")
    tags = statsig_scope.tags if statsig_scope is not None else None  # Statsig's read scope holds here too
    try:
        changes = await statsig.changes_between(start.astimezone(UTC), end.astimezone(UTC), tags=tags)
    except ToolFailure as e:
        return [f"flag changes: Statsig unavailable ({e.message})"]
    head = f"flag changes {iso(start)} → {iso(end) if end != ctx.now else 'now'} (statsig): {len(changes)}"
    if not changes:
        return [head]
    rows = [f"{c.get('at', '-')} {c.get('actor', '-')} {c.get('entity', '-')} {c.get('action', '')}: "
            f"{one_line(str(c.get('summary', '')), 160)}" for c in changes[:15]]
    if len(changes) > 15:
        rows.append(f"… {len(changes) - 15} more")
    return [head, *untrusted_block("statsig audit", rows)]


# --- deploy_get_status ----------------------------------------------------------------------------
class StatusParams(Params):
    operation: str | None = Field(None, description="Operation id from deploy_apply.", max_length=200)
    plan_id: str | None = Field(None, description="A plan_id: is it approved yet?", max_length=2000)
    service: str | None = Field(None, description="Or a service (with env).", max_length=63, pattern=_NAME)
    env: str | None = Field(None, description="Environment, with service.", max_length=63, pattern=_NAME)
    wait_s: int = Field(0, ge=0, le=120, description="Wait up to this long for the operation to finish, "
                        "reporting progress.")

    @model_validator(mode="after")
    def _one(self) -> StatusParams:
        given = [x for x in (self.operation, self.plan_id, self.service) if x]
        if len(given) != 1:
            raise ValueError("give exactly one of operation, plan_id, or service (with env)")
        if self.service and not self.env:
            raise ValueError("env is required with service")
        return self


async def get_status(p: StatusParams, ctx: ToolContext) -> ToolOutput:
    hub: DeployHub = ctx.client
    if p.plan_id:
        return _plan_status(p.plan_id, ctx, hub)
    if p.operation:
        parsed = parse_op_id(p.operation)
        if parsed is None:
            raise InvalidArguments(f"operation: {p.operation!r} is not an operation id deploy_apply returned",
                                   hint="operation ids look like 'argocd:checkout:prod:rollback-1732281234'")
        backend_name, service, env, ref = parsed
        check_scope(ctx, service)
        svc = hub.config.service(service)
        env = hub.config.env_of(svc, env)
        if svc.backend != backend_name:
            raise InvalidArguments(f"operation: {service} is deployed by {svc.backend}, not {backend_name}")
        return await _follow(ctx, hub, svc, env, ref, p.wait_s)
    assert p.service and p.env
    check_scope(ctx, p.service)
    svc = hub.config.service(p.service)
    env = hub.config.env_of(svc, p.env)
    backend = hub.backend(svc)
    st = await backend.env_status(svc, env)
    lines = [f"{svc.name} {env} ({svc.backend} {st.target}): running {st.version or '-'} ({short_sha(st.commit)})"
             f" · sync {st.sync or '-'} · health {st.health or '-'}"
             + (f" · since {iso(st.since)}" if st.since else ""),
             f"in flight: {st.operation or await backend.in_flight(svc, env) or 'nothing'}"]
    return ToolOutput("\n".join(lines))


def _render_op(st: OperationStatus, svc: ServiceConfig, env: str, *, waited: float, polls: int) -> str:
    progress = f" · step {st.step}/{st.steps}" if st.step is not None and st.steps and st.steps != 100 else (
        f" · {st.step}%" if st.step is not None else "")
    head = f"operation {st.op_id} · {st.phase}{progress}"
    if st.version:
        head += f" · {svc.name} {env} now on {st.version}"
    lines = [head]
    times = []
    if st.started_at:
        times.append(f"started {iso(st.started_at)}")
    if st.finished_at:
        times.append(f"finished {iso(st.finished_at)}")
        if st.started_at:
            times.append(f"took {_dur((st.finished_at - st.started_at).total_seconds())}")
    if times:
        lines.append(" · ".join(times))
    if st.message:
        lines.append(f"message: {one_line(st.message, 200)}")
    lines += st.details
    if not st.done:
        lines.append(f"still {st.phase.lower()} after waiting {waited:.0f}s ({polls} polls): call again with wait_s "
                     "to keep following it")
    elif st.ok:
        lines.append("done. next: verify recovery in metrics/logs (e.g. error rate since the operation)")
    else:
        lines.append("done, not healthy: check the backend, consider deploy_plan(action=rollback)")
    return "\n".join(lines)


async def _follow(ctx: ToolContext, hub: DeployHub, svc: ServiceConfig, env: str, ref: str, wait_s: int) -> ToolOutput:
    backend = hub.backend(svc)
    st = await backend.operation(svc, env, ref)
    interval = hub.config.poll_interval_s
    started = anyio.current_time()
    max_polls = max(1, int(wait_s / max(interval, 1.0))) if wait_s else 0
    polls = 1
    while not st.done and polls <= max_polls and anyio.current_time() - started < wait_s:
        if ctx.progress is not None:
            done = float(st.step if st.step is not None else polls)
            total = float(st.steps) if st.steps else None
            await ctx.progress(done, total, f"{st.phase}: {one_line(st.message or ', '.join(st.details), 120)}")
        await anyio.sleep(min(interval, max(0.0, wait_s - (anyio.current_time() - started))))
        st = await backend.operation(svc, env, ref)
        polls += 1
    if st.done and ctx.progress is not None and wait_s:
        total = float(st.steps) if st.steps else 1.0
        await ctx.progress(total, total, st.phase)
    return ToolOutput(_render_op(st, svc, env, waited=anyio.current_time() - started, polls=polls))


def _plan_status(plan_id: str, ctx: ToolContext, hub: DeployHub) -> ToolOutput:
    signer, store = plan_keys_for(ctx.runtime, hub)
    claims = decode_plan_id(plan_id)
    try:
        signer.verify(plan_id, principal=None, now=ctx.now)
    except PlanRefused as e:
        hint = f"\nnext: {e.hint}" if e.hint else ""
        return ToolOutput(f"plan {claims.ref}: cannot be applied: {e.message}{hint}")
    a = claims.args
    what = f"{a.get('action')} {a.get('service')} {a.get('env')}" + (f" → {a['version']}" if a.get("version") else "")
    lines = [f"plan {claims.ref} · {what} · by {claims.principal} · expires {claims.expires_iso()}"]
    if claims.approvers:
        found = store.find(claims)
        if found and found.approver in claims.approvers:
            lines.append(f"approved by {found.approver} at {found.at}: apply it with deploy_apply(plan_id)")
        else:
            lines.append(f"awaiting approval by one of {', '.join(claims.approvers)} (`spyglass approve {claims.ref}`)"
                         + (f"; {found.approver} approved but is not an approver" if found else ""))
    else:
        lines.append("needs no approval: apply it with deploy_apply(plan_id) (single use)")
    return ToolOutput("\n".join(lines))


TOOLS = (
    ToolSpec(
        name="deploy_list_services",
        toolset="deploy",
        access="read",
        title="List deploy services",
        description="Deployable services per environment: running version, sync/health, what is in flight.",
        params=ListServicesParams,
        fn=list_services,
        budget_tokens=3000,
    ),
    ToolSpec(
        name="deploy_get_history",
        toolset="deploy",
        access="read",
        title="Release history",
        description="Releases of a service in an env, newest first: version, commit, who, when, status, "
        "duration; rollbacks marked.",
        params=HistoryParams,
        fn=get_history,
        budget_tokens=2500,
    ),
    ToolSpec(
        name="deploy_diff_releases",
        toolset="deploy",
        access="read",
        title="Diff two releases",
        description="What changed between two versions: commits with PR titles, config/manifest files, and "
        "Statsig flag changes in that window.",
        params=DiffParams,
        fn=diff_releases,
        budget_tokens=4000,
    ),
    ToolSpec(
        name="deploy_get_status",
        toolset="deploy",
        access="read",
        title="Deploy operation status",
        description="Progress and health of an operation (waits up to wait_s with progress), a plan's "
        "approval, or a service/env.",
        params=StatusParams,
        fn=get_status,
        budget_tokens=1500,
        timeout_s=150.0,
        idempotent=True,
    ),
)

WRITE_TOOLS = (
    ToolSpec(
        name="deploy_plan",
        toolset="deploy_write",
        access="write",
        title="Plan a deploy",
        description="Check every precondition (policy, version, CI, incidents, freezes, concurrency) for a "
        "deploy, rollback, pause, resume or promote. Returns the checks and, when all pass, a signed "
        "single-use plan_id for deploy_apply.",
        params=PlanParams,
        fn=plan,
        idempotent=False,
        budget_tokens=2500,
    ),
    ToolSpec(
        name="deploy_apply",
        toolset="deploy_write",
        access="write",
        title="Apply a deploy plan",
        description="Execute a plan_id from deploy_plan. Re-checks policy, approval and live preconditions; "
        "returns an operation id for deploy_get_status.",
        params=ApplyParams,
        fn=apply,
        destructive=True,
        idempotent=False,
        budget_tokens=1000,
        policy_args=apply_policy_args,
    ),
)

TOOLSET = Toolset(
    name="deploy",
    upstream=UPSTREAM,
    access="read",
    instructions="deploy_*: releases, diffs and rollout status of configured services (Argo CD, GitHub).",
    tools=TOOLS,
    make_client=make_read_client,
    routes=READ_ROUTES,
    env_vars=ENV_VARS,
)

WRITE_TOOLSET = Toolset(
    name="deploy_write",
    upstream=UPSTREAM,
    access="write",
    instructions="Writes are two-phase: deploy_plan returns checks and a plan_id; deploy_apply(plan_id) executes.",
    tools=WRITE_TOOLS,
    make_client=make_write_client,
    routes=READ_ROUTES + WRITE_ROUTES,
    env_vars=ENV_VARS,
)
