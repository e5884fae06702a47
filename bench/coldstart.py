"""Cold start: spawn -> initialize + tools/list answered, over stdio, for
`spyglass serve --toolsets all` vs a bare SDK server with the same number of trivial tools.

Every stdio client (Claude Code, Codex) spawns the server, so this is what a user waits for.
Interleaved runs, medians. The client is the SDK's low-level session (legacy handshake), the
same for both.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

RUNS = 7
SPYGLASS = str(Path(sys.executable).parent / "spyglass")
POLICY = Path(__file__).resolve().parents[1] / "config" / "policy.example.toml"


def bare_script(n_tools: int, path: Path) -> None:
    body = "\n".join(
        f"@mcp.tool()\nasync def tool_{i}(text: str) -> str:\n    '''Trivial tool {i}.'''\n    return text\n"
        for i in range(n_tools)
    )
    path.write_text(textwrap.dedent("""\
        from mcp.server.mcpserver import MCPServer
        mcp = MCPServer("bare", log_level="WARNING")
        """) + body + "\nif __name__ == '__main__':\n    mcp.run()\n")


async def time_once(params: StdioServerParameters) -> tuple[float, int]:
    t0 = time.perf_counter()
    async with stdio_client(params) as (r, w), ClientSession(r, w) as session:
        await session.initialize()
        tools = await session.list_tools()
        elapsed = time.perf_counter() - t0
    return elapsed * 1000, len(tools.tools)


async def run() -> tuple[list[float], list[float], int]:
    env = {**os.environ}
    with tempfile.TemporaryDirectory() as tmp:
        env["SPYGLASS_STATE_DIR"] = tmp
        env.pop("SPYGLASS_AUDIT_URL", None)
        ours = StdioServerParameters(command=SPYGLASS, args=["serve", "--toolsets", "all", "--policy", str(POLICY)],
                                     env=env)
        _, n_tools = await time_once(ours)  # warm the OS file cache, count the tools
        script = Path(tmp) / "bare_server.py"
        bare_script(n_tools, script)
        bare = StdioServerParameters(command=sys.executable, args=[str(script)], env=env)
        await time_once(bare)
        ours_ms, bare_ms = [], []
        for _ in range(RUNS):
            bare_ms.append((await time_once(bare))[0])
            ours_ms.append((await time_once(ours))[0])
    return bare_ms, ours_ms, n_tools


def main() -> None:
    bare, ours, n = anyio.run(run)
    b, o = statistics.median(bare), statistics.median(ours)
    print(f"stdio spawn -> initialize + tools/list, {RUNS} interleaved runs, {n} tools each")
    print("| server | median ms | min | max |")
    print("|---|---|---|---|")
    print(f"| bare SDK server, {n} trivial tools | {b:.0f} | {min(bare):.0f} | {max(bare):.0f} |")
    print(f"| spyglass serve --toolsets all | {o:.0f} | {min(ours):.0f} | {max(ours):.0f} |")
    print(f"ratio at the median: {o / b:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
