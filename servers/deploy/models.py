"""What deploy tools render, independent of the backend. Parsing of vendor JSON is pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from servers._core.timeparse import parse_lenient_dt
from servers.deploy.settings import ServiceConfig

parse_dt = parse_lenient_dt  # the clients' name for it


def short_sha(sha: str | None) -> str:
    return (sha or "")[:7]


@dataclass(frozen=True)
class EnvStatus:
    service: str
    env: str
    backend: str
    target: str  # Argo CD application or GitHub repo
    version: str | None = None
    commit: str | None = None
    sync: str = ""
    health: str = ""
    since: datetime | None = None
    operation: str | None = None  # what is in flight, one line
    note: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    id: str
    version: str | None
    commit: str
    by: str
    at: datetime | None
    status: str
    duration_s: float | None = None
    kind: str = "deploy"  # deploy | rollback
    note: str = ""


@dataclass(frozen=True)
class Revision:
    """A version that exists in the backend, resolved to its commit."""

    version: str
    sha: str
    date: datetime | None = None
    author: str = ""
    title: str = ""


@dataclass(frozen=True)
class CheckRun:
    name: str
    status: str  # queued | in_progress | completed ...
    conclusion: str  # success | failure | neutral | skipped | ... ("" while running)


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    title: str
    author: str
    date: datetime | None
    pr: str = ""


@dataclass(frozen=True)
class FileChange:
    filename: str
    status: str
    additions: int
    deletions: int


@dataclass(frozen=True)
class Diff:
    base: str
    head: str
    commits: list[CommitInfo]
    files: list[FileChange]
    total_commits: int
    status: str  # ahead | behind | diverged | identical
    source: str


@dataclass(frozen=True)
class Target:
    """What an apply will do, resolved at plan time and carried in the signed plan."""

    action: str
    version: str | None = None
    sha: str | None = None
    history_id: int | None = None
    strategy: str | None = None
    reason: str = ""
    plan_ref: str = ""
    principal: str = ""


@dataclass(frozen=True)
class OperationRef:
    op_id: str
    summary: str


@dataclass
class OperationStatus:
    op_id: str
    phase: str  # Pending | Running | Paused | Succeeded | Failed | Unknown
    done: bool
    ok: bool
    message: str = ""
    health: str = ""
    version: str | None = None
    step: int | None = None
    steps: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    details: list[str] = field(default_factory=list)


TERMINAL_OK = ("Succeeded",)


class DeployBackend(Protocol):
    """One deploy system (Argo CD, GitHub). Every service maps to exactly one backend."""

    name: str
    actions: frozenset[str]

    async def env_status(self, svc: ServiceConfig, env: str) -> EnvStatus: ...

    async def history(self, svc: ServiceConfig, env: str, limit: int) -> list[HistoryEntry]: ...

    async def find_version(self, svc: ServiceConfig, version: str) -> Revision | None: ...

    async def start(self, svc: ServiceConfig, env: str, target: Target) -> OperationRef: ...

    async def operation(self, svc: ServiceConfig, env: str, ref: str) -> OperationStatus: ...

    async def in_flight(self, svc: ServiceConfig, env: str) -> str | None:
        """One line describing the operation running on this service/env, or None."""
        ...


# --- op ids: "<backend>:<service>:<env>:<ref>" -------------------------------------------------
_OP = re.compile(r"^(argocd|github):([a-z0-9][a-z0-9._-]*):([a-z0-9][a-z0-9._-]*):([A-Za-z0-9._-]+)$")


def make_op_id(backend: str, service: str, env: str, ref: str) -> str:
    return f"{backend}:{service}:{env}:{ref}"


def parse_op_id(op_id: str) -> tuple[str, str, str, str] | None:
    m = _OP.match(op_id.strip())
    return (m.group(1), m.group(2), m.group(3), m.group(4)) if m else None


def mark_rollbacks(entries: list[HistoryEntry]) -> list[HistoryEntry]:
    """Oldest first in, oldest first out: a release of a revision seen before (and not the one it
    replaced) is a rollback, whether or not the backend says so."""
    out: list[HistoryEntry] = []
    seen: dict[str, HistoryEntry] = {}
    prev: HistoryEntry | None = None
    for e in entries:
        kind, note = e.kind, e.note
        earlier = seen.get(e.commit)
        if kind != "rollback" and earlier is not None and prev is not None and prev.commit != e.commit:
            kind = "rollback"
        if kind == "rollback" and not note and earlier is not None:
            note = f"back to #{earlier.id}"
        fixed = HistoryEntry(e.id, e.version, e.commit, e.by, e.at, e.status, e.duration_s, kind, note)
        out.append(fixed)
        if e.status == "succeeded":
            seen.setdefault(e.commit, fixed)
            prev = fixed
    return out


_PR = re.compile(r"\(#(\d+)\)\s*$")


def commit_title(message: str) -> tuple[str, str]:
    """First line of a commit message, and the PR number a squash merge put at its end."""
    first = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    m = _PR.search(first)
    return first, (f"#{m.group(1)}" if m else "")


_CONFIG_DIRS = ("deploy/", "k8s/", "kubernetes/", "helm/", "charts/", "manifests/", "kustomize/", "config/",
                ".github/workflows/", "terraform/", "infra/")
_CONFIG_SUFFIXES = (".yaml", ".yml", ".toml", ".ini", ".conf", ".tf", ".env", ".properties", ".json")


def is_config_file(path: str) -> bool:
    p = path.lower()
    name = p.rsplit("/", 1)[-1]
    return (any(p.startswith(d) or f"/{d}" in p for d in _CONFIG_DIRS) or p.endswith(_CONFIG_SUFFIXES)
            or name in ("dockerfile", "containerfile", "kustomization.yaml", "values.yaml"))
