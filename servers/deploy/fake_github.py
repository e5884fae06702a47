"""GitHub's REST API as the sandbox serves it: real paths, bearer auth, ``{"message": ...}``
errors, x-ratelimit-* headers and Link pagination, for repos ``acme/{checkout,payments,cart,frontend}``.

Commits, tags, compare and check runs come from :mod:`servers.deploy.fakedata`; deployments
of ``cart`` and ``frontend`` from the shared World. ``workflow_dispatch`` of ``deploy.yml``
starts a run that creates a Deployment and advances one step per read of the run (or every
``STEP_S`` seconds); on success it records a Release in the World.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from servers._core.fakekit import Faults, json_body
from servers._core.world import World
from servers.deploy.fakedata import GITHUB_SERVICES, ORG, FakeVersion, full_sha, repos

TOKEN = "sandbox-github-token-0123456789abcdef"
STEP_S = 15.0
WORKFLOW = "deploy.yml"
API = "https://api.github.com"
DOCS = "https://docs.github.com/rest"


def _iso(dt: datetime) -> str:
    return dt.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _err(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "documentation_url": DOCS, "status": str(status)}, status)


def _user(login: str) -> dict[str, Any]:
    return {"login": login, "id": zlib.crc32(login.encode()) % 10**7, "node_id": "U_sandbox", "type": "User",
            "avatar_url": "", "url": f"{API}/users/{login}", "html_url": f"https://github.com/{login}"}


@dataclass
class Run:
    id: int
    repo: str
    service: str
    env: str
    version: FakeVersion
    action: str
    strategy: str
    actor: str
    created: datetime
    deployment_id: int
    step: int = 0  # 0 queued, 1-2 in progress, 3 completed
    conclusion: str = ""
    updated: datetime | None = None


class GitHubFake:
    STEPS = 3

    def __init__(self, world: World) -> None:
        self.world = world
        self.lock = threading.RLock()
        self.repos = repos(world)
        self.deployments: dict[int, dict[str, Any]] = {}
        self.statuses: dict[int, list[dict[str, Any]]] = {}
        self.runs: dict[int, Run] = {}
        self._next_deployment = 4100
        self._next_run = 9_120_000
        self._next_status = 77_000
        for service in GITHUB_SERVICES:
            if service not in world.services:
                continue
            for env in ("prod", "staging"):
                for rel in world.releases(service, env):
                    payload = {"version": rel.version, "action": rel.kind, "requested_by": rel.by}
                    dep = self._new_deployment(service, env, rel.version, full_sha(rel.commit),
                                               rel.at - timedelta(minutes=2), payload)
                    self._status(dep, "queued", rel.at - timedelta(minutes=2), "queued")
                    self._status(dep, "in_progress", rel.at - timedelta(seconds=100), "rolling 50%")
                    self._status(dep, "success", rel.at, "100%")

    def _new_deployment(self, service: str, env: str, version: str, sha: str, at: datetime,
                        payload: dict[str, Any]) -> dict[str, Any]:
        self._next_deployment += 1
        did = self._next_deployment
        url = f"{API}/repos/{ORG}/{service}/deployments/{did}"
        dep = {"url": url, "id": did, "node_id": f"DE_{did}", "sha": sha, "ref": f"v{version}", "task": "deploy",
               "payload": payload, "original_environment": env, "environment": env, "description": None,
               "creator": _user("github-actions[bot]"), "created_at": _iso(at), "updated_at": _iso(at),
               "statuses_url": f"{url}/statuses", "repository_url": f"{API}/repos/{ORG}/{service}",
               "production_environment": env == "prod", "transient_environment": False}
        self.deployments[did] = dep
        self.statuses[did] = []
        return dep

    def _status(self, dep: dict[str, Any], state: str, at: datetime, description: str) -> None:
        self._next_status += 1
        sid = self._next_status
        self.statuses[dep["id"]].insert(0, {
            "url": f"{dep['url']}/statuses/{sid}", "id": sid, "node_id": f"DES_{sid}", "state": state,
            "creator": _user("github-actions[bot]"), "description": description, "environment": dep["environment"],
            "target_url": "", "log_url": "", "created_at": _iso(at), "updated_at": _iso(at),
            "deployment_url": dep["url"], "repository_url": dep["repository_url"]})
        dep["updated_at"] = _iso(at)

    def advance(self, run: Run, poll: bool) -> None:
        if run.step >= self.STEPS:
            return
        by_time = int((self.world.now() - run.created).total_seconds() // STEP_S)
        target = min(self.STEPS, max(run.step + (1 if poll else 0), by_time))
        dep = self.deployments[run.deployment_id]
        while run.step < target:
            run.step += 1
            now = self.world.now()
            run.updated = now
            if run.step < self.STEPS:
                pct = 25 * run.step if run.strategy == "canary" else 50
                self._status(dep, "in_progress", now, f"{run.strategy or 'rolling'} {pct}%")
            else:
                run.conclusion = "success"
                self._status(dep, "success", now, "100%")
                self.world.record_release(run.service, run.version.version, run.version.sha[:7], run.actor,
                                          env=run.env, kind="rollback" if run.action == "rollback" else "deploy",
                                          at=run.created.replace(second=0, microsecond=0))

    def run_json(self, run: Run) -> dict[str, Any]:
        status = "queued" if run.step == 0 else "completed" if run.step >= self.STEPS else "in_progress"
        url = f"{API}/repos/{run.repo}/actions/runs/{run.id}"
        return {"id": run.id, "name": "deploy", "node_id": f"WFR_{run.id}", "head_branch": "main",
                "head_sha": run.version.sha, "path": f".github/workflows/{WORKFLOW}", "run_number": run.id % 1000,
                "event": "workflow_dispatch", "display_title": f"{run.action} {run.version.version} to {run.env}",
                "status": status, "conclusion": run.conclusion or None, "workflow_id": 161335, "url": url,
                "html_url": f"https://github.com/{run.repo}/actions/runs/{run.id}",
                "created_at": _iso(run.created), "updated_at": _iso(run.updated or run.created),
                "run_started_at": _iso(run.created), "actor": _user(run.actor), "pull_requests": []}


def _commit_json(repo: str, sha: str, title: str, author: str, date: datetime) -> dict[str, Any]:
    return {"sha": sha, "node_id": f"C_{sha[:10]}", "url": f"{API}/repos/{repo}/commits/{sha}",
            "html_url": f"https://github.com/{repo}/commit/{sha}",
            "commit": {"message": title, "author": {"name": author, "email": f"{author}@users.noreply.github.com",
                                                    "date": _iso(date)},
                       "committer": {"name": "GitHub", "email": "noreply@github.com", "date": _iso(date)}},
            "author": _user(author), "committer": _user("web-flow"), "parents": []}


def build_app(world: World, faults: Faults | None = None) -> Starlette:
    faults = faults or Faults()
    fake = GitHubFake(world)
    used = {"n": 0}

    def headers() -> dict[str, str]:
        used["n"] += 1
        reset = int(world.now().timestamp()) // 3600 * 3600 + 3600
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(max(0, 5000 - used["n"])),
                "x-ratelimit-used": str(used["n"]), "x-ratelimit-reset": str(reset), "x-ratelimit-resource": "core",
                "x-github-api-version-selected": "2022-11-28"}

    def ok(body: Any, status: int = 200, extra: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body, status, headers={**headers(), **(extra or {})})

    def guard(request: Request) -> Response | None:
        auth = request.headers.get("authorization", "")
        if auth not in (f"Bearer {TOKEN}", f"token {TOKEN}"):
            return _err(401, "Bad credentials")
        return faults.take()

    def repo_of(request: Request) -> tuple[str, str] | Response:
        owner, name = request.path_params["owner"], request.path_params["repo"]
        if owner != ORG or name not in fake.repos:
            return _err(404, "Not Found")
        return f"{owner}/{name}", name

    def paging(request: Request, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        try:
            per_page = max(1, min(100, int(request.query_params.get("per_page", 30))))
            page = max(1, int(request.query_params.get("page", 1)))
        except ValueError:
            return items[:30], {}
        chunk = items[(page - 1) * per_page: page * per_page]
        extra = {}
        if page * per_page < len(items):
            extra["Link"] = f'<{API}{request.url.path}?per_page={per_page}&page={page + 1}>; rel="next"'
        return chunk, extra

    async def list_deployments(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        r = repo_of(request)
        if isinstance(r, Response):
            return r
        q = request.query_params
        with fake.lock:
            for run in fake.runs.values():
                fake.advance(run, poll=False)
            deps = [d for d in fake.deployments.values() if d["repository_url"].endswith("/" + r[0])]
            for key in ("environment", "sha", "ref", "task"):
                if q.get(key) not in (None, "", "none"):
                    deps = [d for d in deps if d[key] == q[key]]
            deps.sort(key=lambda d: (d["created_at"], d["id"]), reverse=True)
            chunk, extra = paging(request, deps)
            return ok(chunk, extra=extra)

    async def list_statuses(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        r = repo_of(request)
        if isinstance(r, Response):
            return r
        try:
            did = int(request.path_params["deployment_id"])
        except ValueError:
            return _err(404, "Not Found")
        with fake.lock:
            dep = fake.deployments.get(did)
            if dep is None or not dep["repository_url"].endswith("/" + r[0]):
                return _err(404, "Not Found")
            chunk, extra = paging(request, list(fake.statuses[did]))
            return ok(chunk, extra=extra)

    async def get_commit(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        r = repo_of(request)
        if isinstance(r, Response):
            return r
        v = fake.repos[r[1]].by_ref(request.path_params["ref"])
        if v is None:
            return _err(422, f"No commit found for SHA: {request.path_params['ref']}")
        last = v.commits[-1]
        body = _commit_json(r[0], v.sha, last.title, last.author, last.date)
        body["files"] = [{"sha": full_sha(f.filename[:7]), "filename": f.filename, "status": f.status,
                          "additions": f.additions, "deletions": f.deletions, "changes": f.additions + f.deletions,
                          "blob_url": "", "raw_url": "", "contents_url": ""} for f in v.files]
        return ok(body)

    async def check_runs(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        r = repo_of(request)
        if isinstance(r, Response):
            return r
        v = fake.repos[r[1]].by_ref(request.path_params["ref"])
        if v is None:
            return _err(422, f"No commit found for SHA: {request.path_params['ref']}")
        runs = []
        for i, (name, status, conclusion) in enumerate(v.checks):
            rid = zlib.crc32(f"{v.sha}:{name}".encode()) % 10**9
            runs.append({"id": rid, "node_id": f"CR_{rid}", "head_sha": v.sha, "name": name, "external_id": str(i),
                         "url": f"{API}/repos/{r[0]}/check-runs/{rid}", "html_url": "", "details_url": "",
                         "status": status, "conclusion": conclusion or None, "started_at": _iso(v.date),
                         "completed_at": _iso(v.date + timedelta(minutes=6)) if status == "completed" else None,
                         "output": {"title": f"{name}: {conclusion or status}", "summary": "", "text": None,
                                    "annotations_count": 0, "annotations_url": ""},
                         "check_suite": {"id": 1}, "app": None, "pull_requests": []})
        return ok({"total_count": len(runs), "check_runs": runs})

    async def compare(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        r = repo_of(request)
        if isinstance(r, Response):
            return r
        base_ref, sep, head_ref = request.path_params["basehead"].partition("...")
        repo = fake.repos[r[1]]
        base, head = repo.by_ref(base_ref), repo.by_ref(head_ref)
        if not sep or base is None or head is None:
            return _err(404, "Not Found")
        commits, files, status = repo.between(base, head)
        per_page = max(1, min(250, int(request.query_params.get("per_page", 250) or 250)))
        shown = commits[-per_page:] if len(commits) > per_page else commits
        return ok({
            "url": f"{API}/repos/{r[0]}/compare/{base_ref}...{head_ref}", "html_url": "", "permalink_url": "",
            "diff_url": "", "patch_url": "",
            "base_commit": _commit_json(r[0], base.sha, base.commits[-1].title, base.author, base.date),
            "merge_base_commit": _commit_json(r[0], base.sha, base.commits[-1].title, base.author, base.date),
            "status": status, "ahead_by": len(commits) if status == "ahead" else 0,
            "behind_by": 0 if status == "ahead" else len(repo.between(head, base)[0]),
            "total_commits": len(commits),
            "commits": [_commit_json(r[0], c.sha, c.title, c.author, c.date) for c in shown],
            "files": [{"sha": full_sha(f.filename[:7]), "filename": f.filename, "status": f.status,
                       "additions": f.additions, "deletions": f.deletions, "changes": f.additions + f.deletions,
                       "blob_url": "", "raw_url": "", "contents_url": ""} for f in files],
        })

    async def get_run(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        r = repo_of(request)
        if isinstance(r, Response):
            return r
        try:
            run = fake.runs.get(int(request.path_params["run_id"]))
        except ValueError:
            run = None
        if run is None or run.repo != r[0]:
            return _err(404, "Not Found")
        with fake.lock:
            fake.advance(run, poll=True)
            return ok(fake.run_json(run))

    async def dispatch(request: Request) -> Response:
        if (bad := guard(request)) is not None:
            return bad
        r = repo_of(request)
        if isinstance(r, Response):
            return r
        if r[1] not in GITHUB_SERVICES or request.path_params["workflow_id"] != WORKFLOW:
            return _err(404, "Not Found")
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
            return _err(422, "Invalid request.\n\n\"ref\" wasn't supplied.")
        if body["ref"] != "main":
            return _err(422, f"No ref found for: {body['ref']}")
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict) or len(inputs) > 25:
            return _err(422, "inputs must be an object with at most 25 properties")
        unexpected = set(inputs) - {"version", "environment", "action", "sha", "strategy", "plan", "requested_by",
                                    "reason"}
        if unexpected:
            return _err(422, f"Unexpected inputs provided: {sorted(unexpected)}")
        version = fake.repos[r[1]].by_ref(str(inputs.get("version", "")))
        env = str(inputs.get("environment", ""))
        if version is None or env not in ("prod", "staging"):
            return _err(422, "Required input 'version' or 'environment' not provided or not valid")
        with fake.lock:
            now = world.now()
            fake._next_run += 1
            dep = fake._new_deployment(r[1], env, version.version, version.sha, now,
                                       {"version": version.version, "action": inputs.get("action", "deploy"),
                                        "requested_by": inputs.get("requested_by", "github-actions"),
                                        "run_id": fake._next_run, "plan": inputs.get("plan", "")})
            fake._status(dep, "queued", now, "queued")
            run = Run(fake._next_run, r[0], r[1], env, version, str(inputs.get("action", "deploy")),
                      str(inputs.get("strategy", "")), str(inputs.get("requested_by") or "github-actions"), now,
                      dep["id"])
            fake.runs[run.id] = run
        if not body.get("return_run_details"):
            return Response(status_code=204, headers=headers())
        return ok({"workflow_run_id": run.id, "run_url": f"{API}/repos/{r[0]}/actions/runs/{run.id}",
                   "html_url": f"https://github.com/{r[0]}/actions/runs/{run.id}"})

    prefix = "/repos/{owner}/{repo}"
    return Starlette(routes=[
        Route(prefix + "/deployments", list_deployments, methods=["GET"]),
        Route(prefix + "/deployments/{deployment_id}/statuses", list_statuses, methods=["GET"]),
        Route(prefix + "/commits/{ref}", get_commit, methods=["GET"]),
        Route(prefix + "/commits/{ref}/check-runs", check_runs, methods=["GET"]),
        Route(prefix + "/compare/{basehead}", compare, methods=["GET"]),
        Route(prefix + "/actions/runs/{run_id}", get_run, methods=["GET"]),
        Route(prefix + "/actions/workflows/{workflow_id}/dispatches", dispatch, methods=["POST"]),
    ])


def sandbox_env(base_url: str) -> dict[str, str]:
    """The environment that points Spyglass's GitHub client at this fake."""
    return {"GITHUB_API_URL": base_url, "GITHUB_TOKEN": TOKEN}
