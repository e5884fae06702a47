"""Tool-schema snapshots: one JSON file per toolset under tests/snapshots/tools/.

``scripts/update-toolsnaps`` rewrites them; the test suite fails on any unreviewed change to
a tool's name, description, input schema or annotations (what the model sees).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio

from guards.policy import parse_policy
from servers.app import TOOLSETS, ServeOptions, build_server

SNAP_DIR = Path(__file__).parent / "snapshots" / "tools"


async def listing(toolsets: list[str]) -> list[dict[str, Any]]:
    policy = parse_policy({"toolsets": {"enabled": list(TOOLSETS)}})
    server = build_server(ServeOptions(policy=policy, toolsets=toolsets, env={}))
    tools = await server.list_tools()
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


def render(tools: list[dict[str, Any]]) -> str:
    return json.dumps(tools, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


async def _update() -> None:
    SNAP_DIR.mkdir(parents=True, exist_ok=True)
    for name in sorted(TOOLSETS):
        (SNAP_DIR / f"{name}.json").write_text(render(await listing([name])))
    for stale in SNAP_DIR.glob("*.json"):
        if stale.stem not in TOOLSETS:
            stale.unlink()
    print(f"wrote {len(TOOLSETS)} snapshots to {SNAP_DIR}", file=sys.stderr)


if __name__ == "__main__":
    anyio.run(_update)
