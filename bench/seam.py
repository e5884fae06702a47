"""The guard seam's cost: the same trivial tool, bare SDK vs through guarded(), in-memory client.

Interleaved rounds (bare, guarded, bare, ...) so machine noise hits both; medians per call.
The guarded variant writes its audit events to a real SQLite sink (batched), as in production.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.server.mcpserver import MCPServer
from pydantic import Field

from guards.audit_sqlite import SQLiteSink
from guards.enforce import Guard, ToolOutput
from guards.limits import MemoryLimitStore
from guards.policy import parse_policy
from guards.redact import Redactor
from servers._core.runtime import Runtime
from servers._core.spec import Params, ToolContext, Toolset, ToolSpec
from servers.app import GuardedTool

CALLS, ROUNDS = 300, 9


class EchoParams(Params):
    text: str = Field(description="Text to echo.", max_length=1000)


async def echo(p: EchoParams, _ctx: ToolContext) -> ToolOutput:
    return ToolOutput(p.text)


def bare_server() -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("bare", log_level="WARNING")

    @server.tool(structured_output=False)
    async def bench_echo(text: str) -> str:
        return text

    return server


def guarded_server(db: Path) -> tuple[MCPServer[Any], SQLiteSink]:
    spec = ToolSpec(name="bench_echo", toolset="bench", access="read", title="Echo", description="Echo.",
                    params=EchoParams, fn=echo, needs_client=False)
    toolset = Toolset(name="bench", upstream="bench", access="read", instructions="", tools=(spec,),
                      make_client=lambda env: None)
    sink = SQLiteSink(db)
    policy = parse_policy({"toolsets": {"enabled": ["bench"]}})
    guard = Guard(policy, sink, MemoryLimitStore(), Redactor())
    runtime = Runtime(guard=guard, env={}, load_toolset=lambda n: toolset, transport_kind="memory")
    return MCPServer("guarded", log_level="WARNING", tools=[GuardedTool.build(spec, toolset, runtime)]), sink


async def per_call_us(client: Client) -> tuple[float, float]:
    """(wall µs, process CPU µs) per call. CPU time counts every thread (the audit writer too)
    and is far less disturbed by other processes on a shared machine than wall time."""
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(CALLS):
        await client.call_tool("bench_echo", {"text": f"hello {i}"})
    return (time.perf_counter() - t0) / CALLS * 1e6, (time.process_time() - c0) / CALLS * 1e6


async def run() -> tuple[list[tuple[float, float]], list[tuple[float, float]], int]:
    with tempfile.TemporaryDirectory() as tmp:
        guarded, sink = guarded_server(Path(tmp) / "audit.db")
        bare_us, guarded_us = [], []
        async with Client(bare_server()) as bare_c, Client(guarded) as guarded_c:
            for c in (bare_c, guarded_c):  # warm-up
                await per_call_us(c)
            for _ in range(ROUNDS):
                bare_us.append(await per_call_us(bare_c))
                guarded_us.append(await per_call_us(guarded_c))
        sink.close()
        import sqlite3

        with sqlite3.connect(Path(tmp) / "audit.db") as conn:
            events = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    return bare_us, guarded_us, events


def main() -> None:
    bare, guarded, events = anyio.run(run)
    print(f"in-memory client, {ROUNDS} interleaved rounds x {CALLS} calls; medians of per-round means")
    print("| variant | wall µs/call | CPU µs/call |")
    print("|---|---|---|")
    med = {}
    for name, rows in (("bare SDK tool", bare), ("through guarded() + SQLite audit", guarded)):
        wall, cpu = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
        med[name] = (wall, cpu)
        print(f"| {name} | {wall:.0f} | {cpu:.0f} |")
    (bw, bc), (gw, gc) = med.values()
    print(f"seam overhead at the median: wall {(gw / bw - 1) * 100:+.1f}%, CPU {(gc / bc - 1) * 100:+.1f}% "
          f"(target < 15%); {events} audit events written")


if __name__ == "__main__":
    main()
