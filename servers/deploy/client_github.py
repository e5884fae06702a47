"""The only module that talks to GitHub. Every route it may call is listed below.

Reads: Deployments and their statuses, commits (does a version's tag exist), check runs (did
its CI pass), compare (what changed between two releases), workflow runs (operation status).
The one write: ``workflow_dispatch`` of the deploy workflow configured for the service, for
deploys and rollbacks alike. No delete, no deployment-status writes, no arbitrary workflow.
"""

from __future__ import annotations

import re
import time
from typing import Any

from servers._core.egress import EgressClient, Route
from servers._core.errors import InvalidArguments, NotFound
from servers._core.spec import ClientEnv
from servers.deploy.models import (
    CheckRun,
    CommitInfo,
    Diff,
    EnvStatus,
    FileChange,
    HistoryEntry,
    OperationRef,
    OperationStatus,
    Revision,
    Target,
    commit_title,
    make_op_id,
    mark_rollbacks,
    parse_dt,
)
from servers.deploy.settings import GitHubSettings, ServiceConfig

DEPLOYMENTS = Route("GET", "/repos/{owner}/{repo}/deployments")
DEPLOYMENT_STATUSES = Route("GET", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses")
COMMIT = Route("GET", "/repos/{owner}/{repo}/commits/{ref}")
CHECK_RUNS = Route("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs")
COMPARE = Route("GET", "/repos/{owner}/{repo}/compare/{basehead}")
WORKFLOW_RUN = Route("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}")
READ_ROUTES: tuple[Route, ...] = (DEPLOYMENTS, DEPLOYMENT_STATUSES, COMMIT, CHECK_RUNS, COMPARE, WORKFLOW_RUN)

DISPATCH = Route("POST", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches")
WRITE_ROUTES_BY_ACTION: dict[str, tuple[Route, ...]] = {"deploy": (DISPATCH,), "rollback": (DISPATCH,)}
WRITE_ROUTES: tuple[Route, ...] = (DISPATCH,)

IN_FLIGHT = ("queued", "pending", "in_progress")
_PCT = re.compile(r"(\d{1,3})%")


def _payload(d: dict[str, Any]) -> dict[str, Any]:
    p = d.get("payload")
    return p if isinstance(p, dict) else {}


def _repo(repo: str) -> dict[str, str]:
    owner, name = repo.split("/", 1)
    return {"owner": owner, "repo": name}


class GitHubClient:
    name = "github"
    actions = frozenset({"deploy", "rollback"})

    def __init__(self, settings: GitHubSettings, env: ClientEnv, routes: tuple[Route, ...] = READ_ROUTES) -> None:
        env.register_secret(settings.token.get_secret_value())
        self.http = EgressClient(
            upstream="github",
            base_url=settings.base_url,
            routes=routes,
            headers={
                "Authorization": f"Bearer {settings.token.get_secret_value()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "spyglass-mcp",
            },
            transport=env.transport,
            access_hint="check GITHUB_TOKEN and its permissions on the repo (Actions: write to dispatch; "
            "Deployments, Checks, Contents: read)",
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- repo reads (also used for Argo CD services' CI and diffs) -------------------------
    async def commit(self, repo: str, ref: str) -> Revision | None:
        resp = await self.http.request("GET", COMMIT.template, path_params={**_repo(repo), "ref": ref},
                                       expect=(404, 422))
        if resp.status in (404, 422):
            return None
        c = resp.json() or {}
        inner = c.get("commit") or {}
        title, _ = commit_title(str(inner.get("message") or ""))
        author = (c.get("author") or {}).get("login") or (inner.get("author") or {}).get("name") or ""
        return Revision(version="", sha=str(c.get("sha") or ""), date=parse_dt((inner.get("author") or {}).get("date")),
                        author=str(author), title=title)

    async def check_runs(self, repo: str, ref: str) -> list[CheckRun]:
        resp = await self.http.request("GET", CHECK_RUNS.template, path_params={**_repo(repo), "ref": ref},
                                       params={"filter": "latest", "per_page": 100})
        return [CheckRun(str(r.get("name") or ""), str(r.get("status") or ""), str(r.get("conclusion") or ""))
                for r in (resp.json() or {}).get("check_runs") or []]

    async def compare(self, repo: str, base: str, head: str, *, per_page: int = 100) -> Diff:
        resp = await self.http.request("GET", COMPARE.template,
                                       path_params={**_repo(repo), "basehead": f"{base}...{head}"},
                                       params={"per_page": per_page})
        data = resp.json() or {}
        commits = []
        for c in data.get("commits") or []:
            inner = c.get("commit") or {}
            title, pr = commit_title(str(inner.get("message") or ""))
            author = (c.get("author") or {}).get("login") or (inner.get("author") or {}).get("name") or "-"
            commits.append(CommitInfo(str(c.get("sha") or ""), title, str(author),
                                      parse_dt((inner.get("author") or {}).get("date")), pr))
        files = [FileChange(str(f.get("filename")), str(f.get("status") or ""), int(f.get("additions") or 0),
                            int(f.get("deletions") or 0)) for f in data.get("files") or []]
        return Diff(base, head, commits, files, int(data.get("total_commits") or len(commits)),
                    str(data.get("status") or ""), f"github compare {repo} {base}...{head}")

    # --- deployments ------------------------------------------------------------------------
    async def _deployments(self, svc: ServiceConfig, env: str, n: int) -> list[dict[str, Any]]:
        assert svc.repo
        resp = await self.http.request("GET", DEPLOYMENTS.template, path_params=_repo(svc.repo),
                                       params={"environment": env, "per_page": n})
        data = resp.json()
        return data if isinstance(data, list) else []

    async def _statuses(self, svc: ServiceConfig, deployment_id: int, n: int) -> list[dict[str, Any]]:
        assert svc.repo
        resp = await self.http.request("GET", DEPLOYMENT_STATUSES.template,
                                       path_params={**_repo(svc.repo), "deployment_id": deployment_id},
                                       params={"per_page": n})
        data = resp.json()
        return data if isinstance(data, list) else []

    def _version(self, svc: ServiceConfig, d: dict[str, Any]) -> str | None:
        payload = _payload(d)
        return str(payload.get("version") or "") or svc.version_of_tag(str(d.get("ref") or "")) or None

    async def env_status(self, svc: ServiceConfig, env: str) -> EnvStatus:
        deps = await self._deployments(svc, env, 5)
        running: dict[str, Any] | None = None
        since = None
        operation = None
        health = ""
        for i, d in enumerate(deps):
            statuses = await self._statuses(svc, int(d["id"]), 1)
            state = str(statuses[0].get("state")) if statuses else "pending"
            if i == 0 and state in IN_FLIGHT:
                operation = f"deployment {d['id']} of {self._version(svc, d)} {state}"
            if i == 0:
                health = state
            if state == "success":
                running, since = d, parse_dt(statuses[0].get("created_at"))
                break
        assert svc.repo
        return EnvStatus(
            service=svc.name, env=env, backend="github", target=svc.repo,
            version=self._version(svc, running) if running else None,
            commit=str(running.get("sha")) if running else None,
            sync="deployed" if running else "never deployed" if not deps else "no successful deployment",
            health=health or "-", since=since, operation=operation,
        )

    async def history(self, svc: ServiceConfig, env: str, limit: int) -> list[HistoryEntry]:
        deps = await self._deployments(svc, env, limit)
        entries = []
        for d in deps:
            statuses = await self._statuses(svc, int(d["id"]), 10)
            final = str(statuses[0].get("state")) if statuses else "pending"
            started = parse_dt(statuses[-1].get("created_at")) if statuses else parse_dt(d.get("created_at"))
            ended = parse_dt(statuses[0].get("created_at")) if statuses and final not in IN_FLIGHT else None
            payload = _payload(d)
            entries.append(HistoryEntry(
                id=str(d.get("id")), version=self._version(svc, d), commit=str(d.get("sha") or ""),
                by=str(payload.get("requested_by") or (d.get("creator") or {}).get("login") or "-"),
                at=ended or started, status="succeeded" if final == "success" else final,
                duration_s=(ended - started).total_seconds() if ended and started else None,
                kind="rollback" if payload.get("action") == "rollback" else "deploy",
            ))
        return list(reversed(mark_rollbacks(list(reversed(entries)))))

    async def find_version(self, svc: ServiceConfig, version: str) -> Revision | None:
        assert svc.repo
        rev = await self.commit(svc.repo, svc.tag(version))
        if rev is None:
            return None
        return Revision(version, rev.sha, rev.date, rev.author, rev.title)

    async def start(self, svc: ServiceConfig, env: str, target: Target) -> OperationRef:
        if target.action not in self.actions:
            raise InvalidArguments(f"action {target.action!r} is not supported by the GitHub backend")
        assert svc.repo and svc.workflow
        inputs = {"version": target.version or "", "environment": env, "action": target.action,
                  "sha": target.sha or "", "strategy": target.strategy or "", "plan": target.plan_ref,
                  "requested_by": target.principal, "reason": target.reason[:200]}
        body = {"ref": svc.ref, "inputs": {k: v for k, v in inputs.items() if v}, "return_run_details": True}
        resp = await self.http.request("POST", DISPATCH.template,
                                       path_params={**_repo(svc.repo), "workflow_id": svc.workflow}, json=body)
        run_id = (resp.json() or {}).get("workflow_run_id") if resp.status == 200 and resp.content else None
        ref = f"run-{run_id}" if run_id else f"dispatch-{int(time.time())}"
        return OperationRef(make_op_id("github", svc.name, env, ref),
                            f"{svc.workflow} dispatched on {svc.repo}@{svc.ref}: {target.action} {target.version}"
                            + (f" (run {run_id})" if run_id else ""))

    async def operation(self, svc: ServiceConfig, env: str, ref: str) -> OperationStatus:
        assert svc.repo
        op_id = make_op_id("github", svc.name, env, ref)
        kind, _, ident = ref.partition("-")
        if kind not in ("run", "dispatch") or not ident.isdigit():
            raise InvalidArguments(f"operation: {op_id!r} is not an operation id deploy_apply returned")
        out = OperationStatus(op_id=op_id, phase="Unknown", done=False, ok=False)
        if kind == "dispatch":
            out.phase, out.done = "Unknown", True
            out.message = "GitHub did not return a run id for this dispatch; check by service and env instead"
            return out
        try:
            resp = await self.http.request("GET", WORKFLOW_RUN.template,
                                           path_params={**_repo(svc.repo), "run_id": int(ident)})
        except NotFound:
            raise NotFound(f"github: workflow run {ident} not found in {svc.repo}", upstream_status=404) from None
        run = resp.json() or {}
        status, conclusion = str(run.get("status") or ""), str(run.get("conclusion") or "")
        out.started_at = parse_dt(run.get("run_started_at") or run.get("created_at"))
        out.details.append(f"workflow run {ident} ({run.get('name') or svc.workflow}): {status}"
                           + (f", {conclusion}" if conclusion else ""))
        deployment = None
        for d in await self._deployments(svc, env, 5):
            payload = _payload(d)
            if str(payload.get("run_id") or "") == ident:
                deployment = d
                break
        if deployment is not None:
            statuses = await self._statuses(svc, int(deployment["id"]), 1)
            if statuses:
                s = statuses[0]
                desc = str(s.get("description") or "")
                out.health = str(s.get("state") or "")
                out.details.append(f"deployment {deployment['id']} ({self._version(svc, deployment)}): "
                                   f"{out.health}" + (f" · {desc}" if desc else ""))
                if m := _PCT.search(desc):
                    out.step, out.steps = int(m.group(1)), 100
            out.version = self._version(svc, deployment)
        if status == "completed":
            out.done = True
            out.ok = conclusion == "success"
            out.phase = "Succeeded" if out.ok else "Failed"
            out.finished_at = parse_dt(run.get("updated_at"))
            out.message = conclusion
        else:
            out.phase = "Pending" if status in ("queued", "waiting", "requested", "pending") else "Running"
            out.message = status
        return out

    async def in_flight(self, svc: ServiceConfig, env: str) -> str | None:
        deps = await self._deployments(svc, env, 1)
        if not deps:
            return None
        statuses = await self._statuses(svc, int(deps[0]["id"]), 1)
        state = str(statuses[0].get("state")) if statuses else "pending"
        if state in IN_FLIGHT:
            return f"{svc.repo} deployment {deps[0]['id']} to {env} ({self._version(svc, deps[0])}) {state}"
        return None


def make_client(settings: GitHubSettings, env: ClientEnv, *, write: bool) -> GitHubClient:
    return GitHubClient(settings, env, READ_ROUTES + (WRITE_ROUTES if write else ()))
