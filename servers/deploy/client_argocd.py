"""The only module that talks to Argo CD. Every route it may call is listed below, by action.

Deploy = sync to a pinned revision; rollback = Argo CD's rollback to a history id; pause,
resume and promote = the Argo Rollouts resource actions on the one configured Rollout. No
delete, no patch, no arbitrary resource action: the action names and the resource kind are
fixed here, not taken from arguments.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from servers._core.egress import EgressClient, Route
from servers._core.errors import InvalidArguments, NotFound
from servers._core.shaping import one_line
from servers._core.spec import ClientEnv
from servers._core.timeparse import iso
from servers.deploy.models import (
    EnvStatus,
    HistoryEntry,
    OperationRef,
    OperationStatus,
    Revision,
    Target,
    make_op_id,
    mark_rollbacks,
    parse_dt,
    short_sha,
)
from servers.deploy.settings import ArgoSettings, ServiceConfig

APP_GET = Route("GET", "/api/v1/applications/{name}")
APP_TREE = Route("GET", "/api/v1/applications/{applicationName}/resource-tree")
REVISION_METADATA = Route("GET", "/api/v1/applications/{name}/revisions/{revision}/metadata")
READ_ROUTES: tuple[Route, ...] = (APP_GET, APP_TREE, REVISION_METADATA)

SYNC = Route("POST", "/api/v1/applications/{name}/sync")
ROLLBACK = Route("POST", "/api/v1/applications/{name}/rollback")
ROLLOUT_ACTION = Route("POST", "/api/v1/applications/{name}/resource/actions/v2")
WRITE_ROUTES_BY_ACTION: dict[str, tuple[Route, ...]] = {
    "deploy": (SYNC,),
    "rollback": (ROLLBACK,),
    "pause": (ROLLOUT_ACTION,),
    "resume": (ROLLOUT_ACTION,),
    "promote": (ROLLOUT_ACTION,),
}
WRITE_ROUTES: tuple[Route, ...] = tuple(dict.fromkeys(r for rs in WRITE_ROUTES_BY_ACTION.values() for r in rs))
# Argo CD's built-in Lua actions for argoproj.io/Rollout; nothing else is ever sent.
ROLLOUT_ACTIONS = {"pause": "pause", "resume": "resume", "promote": "promote-full"}
_STEP = re.compile(r"step (\d+)/(\d+)")
_SLACK_S = 5  # an operation that started this close before our apply is ours


class ArgoCDClient:
    name = "argocd"
    actions = frozenset({"deploy", "rollback", "pause", "resume", "promote"})

    def __init__(self, settings: ArgoSettings, env: ClientEnv, routes: tuple[Route, ...] = READ_ROUTES) -> None:
        env.register_secret(settings.token.get_secret_value())
        self.http = EgressClient(
            upstream="argocd",
            base_url=settings.base_url,
            routes=routes,
            headers={"Authorization": f"Bearer {settings.token.get_secret_value()}", "Accept": "application/json"},
            transport=env.transport,
            access_hint="check ARGOCD_AUTH_TOKEN and that its account may get/sync/action the application "
            "(Argo CD RBAC: applications, get|sync|action/*)",
        )
        self._versions: dict[str, str | None] = {}  # revision sha -> version (immutable, safe to cache)

    async def aclose(self) -> None:
        await self.http.aclose()

    @staticmethod
    def _scope(svc: ServiceConfig) -> dict[str, str]:
        q = {}
        if svc.app_namespace:
            q["appNamespace"] = svc.app_namespace
        if svc.project:
            q["project"] = svc.project
        return q

    async def app(self, svc: ServiceConfig, env: str) -> dict[str, Any]:
        name = svc.app_for(env)
        try:
            resp = await self.http.request("GET", APP_GET.template, path_params={"name": name},
                                           params=self._scope(svc))
        except NotFound:
            raise NotFound(f"argocd: application {name!r} (service {svc.name}, env {env}) not found",
                           hint="check the service's `app` setting in [deploy.services] of spyglass.toml",
                           upstream_status=404) from None
        data = resp.json()
        return data if isinstance(data, dict) else {}

    async def rollout_node(self, svc: ServiceConfig, env: str) -> dict[str, Any] | None:
        if not svc.rollout:
            return None
        resp = await self.http.request("GET", APP_TREE.template, path_params={"applicationName": svc.app_for(env)},
                                       params=self._scope(svc))
        for node in (resp.json() or {}).get("nodes") or []:
            if node.get("kind") == "Rollout" and node.get("group") == "argoproj.io" and node.get("name") == svc.rollout:
                return dict(node)
        return None

    async def _version_of(self, svc: ServiceConfig, env: str, entry: dict[str, Any]) -> str | None:
        tag = str(((entry.get("source") or {}).get("targetRevision")) or "")
        v = svc.version_of_tag(tag)
        if v:
            return v
        rev = str(entry.get("revision") or "")
        if not rev:
            return None
        if rev not in self._versions:
            meta = await self._metadata(svc, env, rev)
            tags = (meta or {}).get("tags") or []
            self._versions[rev] = next((x for t in tags if (x := svc.version_of_tag(str(t)))), None)
        return self._versions[rev]

    async def _metadata(self, svc: ServiceConfig, env: str, revision: str) -> dict[str, Any] | None:
        resp = await self.http.request(
            "GET", REVISION_METADATA.template, path_params={"name": svc.app_for(env), "revision": revision},
            params=self._scope(svc), expect=(404,),
        )
        if resp.status == 404:
            return None
        data = resp.json()
        return data if isinstance(data, dict) else None

    # --- DeployBackend --------------------------------------------------------------------
    async def env_status(self, svc: ServiceConfig, env: str) -> EnvStatus:
        app = await self.app(svc, env)
        st = app.get("status") or {}
        history = st.get("history") or []
        last = history[-1] if history else {}
        version = await self._version_of(svc, env, last) if last else None
        return EnvStatus(
            service=svc.name, env=env, backend="argocd", target=svc.app_for(env), version=version,
            commit=str(last.get("revision") or (st.get("sync") or {}).get("revision") or "") or None,
            sync=str((st.get("sync") or {}).get("status") or ""),
            health=str((st.get("health") or {}).get("status") or ""),
            since=parse_dt(last.get("deployedAt")), operation=_op_line(st),
        )

    async def history(self, svc: ServiceConfig, env: str, limit: int) -> list[HistoryEntry]:
        app = await self.app(svc, env)
        st = app.get("status") or {}
        raw = list(st.get("history") or [])[-(limit + 5):]
        entries = []
        for h in raw:
            at, began = parse_dt(h.get("deployedAt")), parse_dt(h.get("deployStartedAt"))
            who = (h.get("initiatedBy") or {})
            entries.append(HistoryEntry(
                id=str(h.get("id")), version=await self._version_of(svc, env, h), commit=str(h.get("revision") or ""),
                by=str(who.get("username") or ("automated" if who.get("automated") else "-")), at=at,
                status="succeeded", duration_s=(at - began).total_seconds() if at and began else None,
            ))
        op = st.get("operationState") or {}
        if op.get("phase") in ("Running", "Terminating", "Failed", "Error"):
            started = parse_dt(op.get("startedAt"))
            if not any(e.at and started and e.at >= started for e in entries):
                rev = str(((op.get("operation") or {}).get("sync") or {}).get("revision") or "")
                entries.append(HistoryEntry(
                    id="op", version=svc.version_of_tag(rev) or await self._version_of(svc, env, {"revision": rev}),
                    commit=rev, by=str(((op.get("operation") or {}).get("initiatedBy") or {}).get("username") or "-"),
                    at=started, status=str(op["phase"]).lower(), note=one_line(str(op.get("message") or ""), 200),
                ))
        return list(reversed(mark_rollbacks(entries)))[:limit]

    async def find_version(self, svc: ServiceConfig, version: str) -> Revision | None:
        env = svc.envs[0]
        meta = await self._metadata(svc, env, svc.tag(version))
        if meta is None:
            return None
        return Revision(version=version, sha="", date=parse_dt(meta.get("date")), author=str(meta.get("author") or ""),
                        title=one_line(str(meta.get("message") or ""), 200))

    async def start(self, svc: ServiceConfig, env: str, target: Target) -> OperationRef:
        name = svc.app_for(env)
        scope = self._scope(svc)
        started = int(time.time())
        if target.action == "deploy":
            revision = target.sha or svc.tag(target.version or "")
            infos = [{"name": "spyglass.plan", "value": target.plan_ref}, {"name": "reason", "value": target.reason}]
            body: dict[str, Any] = {"name": name, "revision": revision, "prune": False, "dryRun": False,
                                    "infos": [i for i in infos if i["value"]], **scope}
            await self.http.request("POST", SYNC.template, path_params={"name": name}, json=body)
            summary = f"sync of {name} to {svc.tag(target.version or '')} ({short_sha(target.sha)}) started"
        elif target.action == "rollback":
            if target.history_id is None:
                raise InvalidArguments("rollback needs the Argo CD history id; plan it again")
            body = {"name": name, "id": target.history_id, "prune": False, "dryRun": False, **scope}
            await self.http.request("POST", ROLLBACK.template, path_params={"name": name}, json=body)
            summary = f"rollback of {name} to history #{target.history_id} ({target.version}) started"
        elif target.action in ROLLOUT_ACTIONS:
            if not svc.rollout:
                raise InvalidArguments(f"{svc.name} has no Argo Rollouts resource configured (`rollout`)")
            body = {"name": name, "namespace": svc.rollout_namespace or "", "resourceName": svc.rollout,
                    "kind": "Rollout", "group": "argoproj.io", "version": "v1alpha1",
                    "action": ROLLOUT_ACTIONS[target.action], **scope}
            if not body["namespace"]:
                del body["namespace"]
            await self.http.request("POST", ROLLOUT_ACTION.template, path_params={"name": name}, json=body)
            summary = f"{ROLLOUT_ACTIONS[target.action]} of Rollout {svc.rollout} in {name} requested"
        else:
            raise InvalidArguments(f"action {target.action!r} is not supported by Argo CD")
        return OperationRef(make_op_id("argocd", svc.name, env, f"{target.action}-{started}"), summary)

    async def operation(self, svc: ServiceConfig, env: str, ref: str) -> OperationStatus:
        op_id = make_op_id("argocd", svc.name, env, ref)
        action, _, epoch = ref.rpartition("-")
        if action not in self.actions or not epoch.isdigit():
            raise InvalidArguments(f"operation: {op_id!r} is not an operation id deploy_apply returned")
        since = datetime.fromtimestamp(int(epoch) - _SLACK_S, UTC)
        app = await self.app(svc, env)
        st = app.get("status") or {}
        node = await self.rollout_node(svc, env)
        health = str((st.get("health") or {}).get("status") or "")
        r_health = (node or {}).get("health") or {}
        r_status, r_msg = str(r_health.get("status") or ""), one_line(str(r_health.get("message") or ""), 200)
        step = steps = None
        if m := _STEP.search(r_msg):
            step, steps = int(m.group(1)), int(m.group(2))
        history = st.get("history") or []
        version = await self._version_of(svc, env, history[-1]) if history else None
        sync = (st.get("sync") or {}).get("status") or "-"
        details = [f"app {svc.app_for(env)}: sync {sync}, health {health or '-'}"]
        if node is not None:
            details.append(f"rollout {svc.rollout}: {r_status or '-'}" + (f" ({r_msg})" if r_msg else ""))
        out = OperationStatus(op_id=op_id, phase="Unknown", done=False, ok=False, health=health, version=version,
                              step=step, steps=steps, details=details)
        if action in ROLLOUT_ACTIONS:
            out.started_at = since
            want = {"pause": ("Suspended",), "resume": ("Healthy",), "promote": ("Healthy",)}[action]
            if r_status in want:
                out.phase, out.done, out.ok = ("Paused" if action == "pause" else "Succeeded"), True, True
            elif r_status == "Degraded":
                out.phase, out.done = "Failed", True
            else:
                out.phase = "Running"
            out.message = r_msg
            return out
        op = st.get("operationState") or {}
        started = parse_dt(op.get("startedAt"))
        if op and started and started >= since:
            phase = str(op.get("phase") or "Unknown")
            out.started_at, out.finished_at = started, parse_dt(op.get("finishedAt"))
            out.message = one_line(str(op.get("message") or ""), 200)
            if phase in ("Failed", "Error"):
                out.phase, out.done = "Failed", True
            elif phase == "Succeeded" and health in ("Progressing", "Suspended"):
                out.phase = "Paused" if health == "Suspended" else "Running"
                out.message = r_msg or f"synced; app health {health}"
            elif phase == "Succeeded":
                out.phase, out.done, out.ok = "Succeeded", True, health in ("Healthy", "")
                if health == "Degraded":
                    out.phase, out.ok = "Degraded", False
            else:
                out.phase = "Running"
            return out
        if app.get("operation"):
            out.phase, out.message = "Pending", "queued: Argo CD has not started the operation yet"
            return out
        for h in reversed(history):
            began = parse_dt(h.get("deployStartedAt")) or parse_dt(h.get("deployedAt"))
            if began and began >= since:
                out.phase, out.done, out.ok = "Succeeded", True, True
                out.started_at, out.finished_at = began, parse_dt(h.get("deployedAt"))
                return out
        out.phase, out.done = "Unknown", True
        out.message = f"no operation started at or after {iso(since)}: superseded or never picked up"
        return out

    async def in_flight(self, svc: ServiceConfig, env: str) -> str | None:
        app = await self.app(svc, env)
        st = app.get("status") or {}
        line = _op_line(st)
        health = str((st.get("health") or {}).get("status") or "")
        if health == "Suspended":
            return f"{svc.app_for(env)} rollout paused" + (f" ({line})" if line else "")
        if line:
            return line
        if health == "Progressing":
            return f"{svc.app_for(env)} rollout progressing"
        return None


def _op_line(st: dict[str, Any]) -> str | None:
    op = st.get("operationState") or {}
    if op.get("phase") not in ("Running", "Terminating"):
        return None
    rev = str(((op.get("operation") or {}).get("sync") or {}).get("revision") or "")
    started = parse_dt(op.get("startedAt"))
    return f"{str(op['phase']).lower()} sync to {short_sha(rev) if len(rev) == 40 else rev or '-'}" + (
        f" since {iso(started)}" if started else "")


def make_client(settings: ArgoSettings, env: ClientEnv, *, write: bool) -> ArgoCDClient:
    return ArgoCDClient(settings, env, READ_ROUTES + (WRITE_ROUTES if write else ()))
