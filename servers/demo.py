"""`spyglass demo`: the sandbox incident, investigated by a real MCP client over stdio.

It starts every fake on loopback, spawns `spyglass serve` as a subprocess (exactly what Claude
Code or Codex would do), calls tools the way an agent would — including calls the policy
refuses — and ends with the audit trail those calls left.
"""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import sys
import tempfile
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 14

# (narration, tool, args). Steps whose tool is not registered are skipped.
STEPS: list[tuple[str, str, dict[str, Any]]] = [
    ("A page fires for checkout. The agent starts where the on-call would: what is alerting?",
     "datadog_list_monitors", {"state": "alert"}),
    ("What are checkout's errors saying?",
     "datadog_search_logs", {"query": "service:checkout status:error", "from": "now-1h", "limit": 8}),
    ("Where are the errors concentrated?",
     "datadog_aggregate_logs", {"query": "status:error", "group_by": ["service", "version"], "from": "now-2h"}),
    ("Did the error rate move with a release?",
     "datadog_query_metrics", {"query": "sum:trace.http.request.errors{service:checkout} by {version}",
                               "from": "now-90m", "points": 6}),
    ("The same question, asked of Prometheus through Grafana.",
     "grafana_query_prometheus", {"query": 'sum by (version) (rate(http_request_errors_total{service="checkout"}[5m]))',
                                  "from": "now-90m", "points": 6}),
    ("Which crash is it?",
     "datadog_search_error_issues", {"query": "service:checkout", "from": "now-2h", "limit": 3}),
    ("What shipped, and when?",
     "deploy_get_history", {"service": "checkout", "env": "prod", "limit": 4}),
    ("Did anyone change a flag around then?",
     "statsig_get_changes", {"from": "now-2h"}),
    ("What are people saying in the incident channel?",
     "slack_read_channel", {"channel": "#inc-checkout", "from": "now-2h", "limit": 8}),
    ("Is there a ticket?",
     "linear_get_issue", {"issue": "CHK-311"}),
    ("What does the runbook say?",
     "drive_search_files", {"query": "checkout runbook", "limit": 3}),
    ("The agent strays outside its scope: the security log index (refused by the policy).",
     "datadog_search_logs", {"query": "*", "index": "security"}),
]


def _print_block(text: str) -> None:
    lines = text.splitlines()
    for line in lines[:MAX_LINES]:
        print("    " + line)
    if len(lines) > MAX_LINES:
        print(f"    … ({len(lines) - MAX_LINES} more lines)")


def _step_modules() -> list[Callable[..., Awaitable[None]]]:
    """Later chapters of the story contributed by toolsets (e.g. the deploy rollback)."""
    out = []
    for module in ("servers.deploy.demo",):
        try:
            out.append(importlib.import_module(module).run_deploy_story)
        except ModuleNotFoundError:
            continue
    return out


async def run_demo(keep_state: str | None = None) -> int:
    from mcp import Client, StdioServerParameters
    from mcp.types import Implementation

    from servers.sandbox import SandboxServer, build_sandbox

    state_dir = Path(keep_state) if keep_state else Path(tempfile.mkdtemp(prefix="spyglass-demo-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    policy = REPO / "config" / "demo-policy.toml"
    config = REPO / "config" / "sandbox.toml"
    with SandboxServer(build_sandbox()) as sandbox:
        env = {**os.environ, **sandbox.env(), "SPYGLASS_STATE_DIR": str(state_dir)}
        env.pop("SPYGLASS_AUDIT_URL", None)
        args = ["-m", "servers.cli", "serve", "--policy", str(policy)]
        if config.exists():
            args += ["--config", str(config)]
        params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(REPO))
        print(f"Spyglass demo — sandbox on {sandbox.url}; server: spyglass {' '.join(args[2:])}")
        print(f"audit log: {state_dir / 'audit.db'}\n")
        async with Client(params, client_info=Implementation(name="spyglass-demo", version="1.0")) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            print(f"{len(names)} tools registered over stdio.\n")

            async def call(tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
                r = await client.call_tool(tool, arguments)
                return "\n".join(getattr(c, "text", "") for c in r.content), bool(r.is_error)

            async def show(tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
                print(f"  ▶ {tool} {json.dumps(arguments)}")
                text, is_error = await call(tool, arguments)
                print("    ✗ refused/failed:" if is_error else "    ✓")
                _print_block(text)
                print()
                return text, is_error

            for narration, tool, arguments in STEPS:
                if tool in names:
                    print(textwrap.fill(narration, 100))
                    await show(tool, arguments)
            for chapter in _step_modules():
                await chapter(show, lambda s: print(textwrap.fill(s, 100)))
    _print_audit(state_dir / "audit.db")
    return 0


def _print_audit(db: Path) -> None:
    print("Audit trail (one event per call; `spyglass audit tail` shows the same):")
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT ts, principal, client, tool, decision, rule_id, outcome, duration_ms, upstream_calls "
        "FROM audit_events ORDER BY ts"
    ).fetchall()
    print(f"  {'time':<12} {'principal@client':<28} {'tool':<28} {'decision':<8} {'rule':<28} {'outcome':<14} ms")
    for ts, principal, client, tool, decision, rule, outcome, ms, _calls in rows:
        who = f"{principal}@{client}"[:28]
        print(f"  {ts[11:23]:<12} {who:<28} {tool:<28} {decision or '-':<8} {rule or '-':<28} {outcome:<14} {ms:.0f}")
    denied = sum(1 for r in rows if r[6] == "denied")
    print(f"\n{len(rows)} calls audited, {denied} denied by policy.")
    print(f"How much of the time could the agent act, and what held it back:\n"
          f"  spyglass report --audit {db} --all        (or --html report.html)")
