"""Token economy: what an agent reads from us vs the raw upstream JSON the same call fetched.

For every investigation question (``bench/cases_*.py``), one tool call runs against the in-process
sandbox through the guarded server and the in-memory MCP client. A transport wrapper keeps every
upstream response body that call fetched. Both sides are measured with
``guards.enforce.estimate_tokens``; "facts" checks that our answer still holds what the question
needs. Target: our answers at no more than a quarter of the raw JSON at the median.

Run: ``.venv/bin/python -m bench.token_economy`` (or ``scripts/bench token_economy``).
"""

from __future__ import annotations

import importlib
import statistics
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import Client

from bench.token_cases import TokenCase
from guards.audit import MemorySink
from guards.enforce import estimate_tokens
from guards.policy import Policy
from servers.app import TOOLSETS, ServeOptions, build_server
from servers.sandbox import build_sandbox

CASE_MODULES = ("bench.cases_datadog", "bench.cases_grafana")
SANDBOX_BASE = "http://sandbox.test"
TARGET = 0.25


@dataclass
class KeepBodies(httpx2.AsyncBaseTransport):
    """Passes requests through and keeps every response body (the raw upstream JSON)."""

    inner: httpx2.AsyncBaseTransport
    bodies: list[bytes] = field(default_factory=list)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        resp = await self.inner.handle_async_request(request)
        body = await resp.aread()
        self.bodies.append(body)
        return httpx2.Response(resp.status_code, headers=resp.headers, content=body, request=request)


@dataclass
class Row:
    case: TokenCase
    ours: int
    raw: int
    missing: list[str]
    error: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours / self.raw if self.raw else None


def load_cases() -> list[TokenCase]:
    cases: list[TokenCase] = []
    for name in CASE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        cases += list(getattr(module, "CASES", []))
    return cases


def toolset_of(tool: str) -> str:
    return tool.split("_", 1)[0]


async def run_cases(cases: list[TokenCase]) -> tuple[list[Row], list[TokenCase]]:
    sandbox = build_sandbox()
    transport = KeepBodies(httpx2.ASGITransport(app=sandbox.app))
    runnable = [c for c in cases if toolset_of(c.tool) in TOOLSETS]
    skipped = [c for c in cases if c not in runnable]
    toolsets = sorted({toolset_of(c.tool) for c in runnable})
    upstreams = {u: transport for u in ("datadog", "grafana", "statsig", "slack", "drive", "linear", "argocd",
                                        "github", "deploy")}
    server = build_server(ServeOptions(policy=Policy(), toolsets=toolsets or ["datadog"], sink=MemorySink(),
                                       env=sandbox.env(SANDBOX_BASE), transports=upstreams, transport_kind="memory"))
    rows: list[Row] = []
    async with Client(server) as client:
        for case in runnable:
            transport.bodies.clear()
            result: Any = await client.call_tool(case.tool, case.args)
            text = "\n".join(getattr(c, "text", "") for c in result.content)
            raw = sum(estimate_tokens(b.decode("utf-8", "replace")) for b in transport.bodies)
            missing = [f for f in case.facts if f not in text]
            rows.append(Row(case, estimate_tokens(text), raw, missing, text.splitlines()[0] if result.is_error else ""))
    return rows, skipped


def render(rows: list[Row], skipped: list[TokenCase]) -> list[str]:
    out = ["question | tool | our tokens | raw JSON tokens | ratio | facts present"]
    for r in rows:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        facts = "yes" if not r.missing and not r.error else "no (" + (r.error or ", ".join(r.missing)) + ")"
        out.append(f"{r.case.question} | {r.case.tool} | {r.ours} | {r.raw} | {ratio} | {facts}")
    ratios = [r.ratio for r in rows if r.ratio is not None]
    if ratios:
        med = statistics.median(ratios)
        verdict = "meets" if med <= TARGET else "misses"
        out.append(f"median ratio {med:.2f} over {len(ratios)} questions ({verdict} the ≤ {TARGET:.2f} target); "
                   f"facts present in {sum(1 for r in rows if not r.missing and not r.error)}/{len(rows)}")
    for c in skipped:
        out.append(f"skipped (toolset {toolset_of(c.tool)!r} not registered): {c.question}")
    return out


def main() -> None:
    rows, skipped = anyio.run(run_cases, load_cases())
    print("\n".join(render(rows, skipped)))


if __name__ == "__main__":
    main()
