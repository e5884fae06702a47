"""Tool listings: one reviewed JSON file per toolset under servers/listing/.

They are both the schema snapshots (the test suite fails on any unreviewed change to a tool's
name, description, input schema or annotations: what the model sees) and what `spyglass serve`
advertises at start-up without importing the toolsets' code (cold start).
``scripts/update-toolsnaps`` rewrites them from the code.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio

from guards.policy import parse_policy
from servers.app import LISTING_DIR, TOOLSETS, ServeOptions, build_server, load_toolset

SNAP_DIR = LISTING_DIR


async def listing(toolsets: list[str]) -> list[dict[str, Any]]:
    """The live tools/list entries, built from the code (never from the listing files)."""
    policy = parse_policy({"toolsets": {"enabled": list(TOOLSETS)}})
    server = build_server(ServeOptions(policy=policy, toolsets=toolsets, env={}, use_listing=False))
    tools = await server.list_tools()
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


async def document(toolset: str) -> dict[str, Any]:
    return {"instructions": load_toolset(toolset).instructions, "tools": await listing([toolset])}


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


async def _update() -> None:
    SNAP_DIR.mkdir(parents=True, exist_ok=True)
    for name in sorted(TOOLSETS):
        (SNAP_DIR / f"{name}.json").write_text(render(await document(name)))
    for stale in SNAP_DIR.glob("*.json"):
        if stale.stem not in TOOLSETS:
            stale.unlink()
    print(f"wrote {len(TOOLSETS)} listings to {SNAP_DIR}", file=sys.stderr)


if __name__ == "__main__":
    anyio.run(_update)
