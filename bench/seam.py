"""The guard seam's cost: the same trivial tool, bare SDK vs through guarded(), in-memory client.

Latency: calls alternate (bare, guarded, bare, ...) so this noisy machine's moments hit both;
the target is on the median call: the median over pairs of guarded/bare. CPU: interleaved
blocks, every thread counted. The guarded variant writes its audit events to a real SQLite sink
(batched, off the request path), as in production, so the mean and CPU columns include what the
audit writer does per event (~20 µs of build, hash and insert when measured alone). On a 2-vCPU
VM they also include the request thread slowing down while the writer works in parallel: any
concurrent work does that here (a GIL-free hashing thread at a 20% duty cycle raised a bare
tool's CPU per call by 15-40%).
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

PAIRS, BLOCK, ROUNDS = 4000, 300, 9


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


async def timed_pairs(bare: Client, guarded: Client, pairs: int) -> tuple[list[float], list[float]]:
    """Per-call latency in µs, one bare call then one guarded call, alternating: whatever the
    machine does at a moment (another tenant, a GC) hits both, so their medians compare fairly."""
    clock = time.perf_counter_ns
    bare_us, guarded_us = [], []
    for i in range(pairs):
        args = {"text": f"hello {i}"}
        t0 = clock()
        await bare.call_tool("bench_echo", args)
        t1 = clock()
        await guarded.call_tool("bench_echo", args)
        t2 = clock()
        bare_us.append((t1 - t0) / 1000)
        guarded_us.append((t2 - t1) / 1000)
    return bare_us, guarded_us


async def cpu_per_call_us(client: Client, sink: SQLiteSink | None = None) -> float:
    """Process CPU per call over a block of calls, every thread counted: the block's audit events
    are flushed inside the measurement, so the writer's work lands in its own block."""
    c0 = time.process_time()
    for i in range(BLOCK):
        await client.call_tool("bench_echo", {"text": f"hello {i}"})
    if sink is not None:
        sink.flush()
    return (time.process_time() - c0) / BLOCK * 1e6


async def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        guarded, sink = guarded_server(Path(tmp) / "audit.db")
        async with Client(bare_server()) as bare_c, Client(guarded) as guarded_c:
            await timed_pairs(bare_c, guarded_c, 500)  # warm-up
            sink.flush()
            bare_us, guarded_us = await timed_pairs(bare_c, guarded_c, PAIRS)
            sink.flush()
            cpu: dict[str, list[float]] = {"bare": [], "guarded": []}
            for _ in range(ROUNDS):  # interleaved blocks
                cpu["bare"].append(await cpu_per_call_us(bare_c))
                cpu["guarded"].append(await cpu_per_call_us(guarded_c, sink))
        sink.close()
        import sqlite3

        with sqlite3.connect(Path(tmp) / "audit.db") as conn:
            events = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    return {"bare": bare_us, "guarded": guarded_us, "cpu": cpu, "events": events}


def main() -> None:
    r = anyio.run(run)
    med = statistics.median
    rows = {
        "bare SDK tool": (r["bare"], r["cpu"]["bare"]),
        "through guarded() + SQLite audit": (r["guarded"], r["cpu"]["guarded"]),
    }
    print(f"in-memory client; {PAIRS} alternating call pairs; CPU over {ROUNDS} interleaved blocks of {BLOCK}")
    print("| variant | median µs/call | p90 µs/call | mean µs/call | CPU µs/call (median block) |")
    print("|---|---|---|---|---|")
    for name, (lat, cpu) in rows.items():
        p90 = statistics.quantiles(lat, n=10)[-1]
        print(f"| {name} | {med(lat):.0f} | {p90:.0f} | {statistics.fmean(lat):.0f} | {med(cpu):.0f} |")

    def pct(a: float, b: float) -> str:
        return f"{(b / a - 1) * 100:+.1f}%"

    # Each pair ran back to back under the same machine state, so the median of the pairs'
    # ratios is what the seam adds to a call; the ratio of the two medians is shown too, but on
    # this shared machine it jumps when a noisy phase covers about half the calls.
    paired = med(g / b for b, g in zip(r["bare"], r["guarded"], strict=True))
    print(f"seam overhead: median call pair {(paired - 1) * 100:+.1f}% (target < 15%); "
          f"ratio of medians {pct(med(r['bare']), med(r['guarded']))}; "
          f"mean {pct(statistics.fmean(r['bare']), statistics.fmean(r['guarded']))}; "
          f"CPU {pct(med(r['cpu']['bare']), med(r['cpu']['guarded']))}")
    print(f"(mean and CPU include the audit writer building, hashing and storing each event off the "
          f"request path); {r['events']} audit events written")


if __name__ == "__main__":
    main()
