"""`spyglass doctor`: per toolset, are credentials present, is the upstream reachable, and do the
credentials' scopes allow a real read. Each check is one cheap read call through the real guarded
stack (in memory, audit discarded), so it exercises exactly what an agent's first call would."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

# One cheap, read-only call per read toolset. Write toolsets are checked for credentials only:
# doctor never writes.
PROBES: dict[str, tuple[str, dict[str, Any]]] = {
    "datadog": ("datadog_search_logs", {"limit": 1, "from": "now-5m"}),
    "grafana": ("grafana_list_datasources", {}),
    "statsig": ("statsig_list", {"kind": "gate", "limit": 1}),
    "slack": ("slack_list_channels", {"limit": 1}),
    "drive": ("drive_search_files", {"limit": 1}),
    "linear": ("linear_list_projects", {"limit": 1}),
    "deploy": ("deploy_list_services", {}),
}


def register(sub: Any) -> None:
    p = sub.add_parser("doctor", help="check credentials, reachability and scopes of every upstream")
    p.add_argument("--toolsets", default="all")
    p.add_argument("--policy")
    p.add_argument("--config")
    p.set_defaults(func=doctor)


def doctor(args: argparse.Namespace) -> int:
    import anyio

    return anyio.run(_doctor, args)


async def _doctor(args: argparse.Namespace) -> int:
    from mcp import Client

    from guards.audit import MemorySink
    from guards.errors import ToolFailure
    from guards.policy import PolicyError
    from servers._core.spec import ClientEnv
    from servers.app import TOOLSETS, ServeOptions, build_server, load_toolset
    from servers.config import ConfigError, resolve

    env = dict(os.environ)
    try:
        resolved = resolve(env, policy=args.policy, config=args.config)
    except (PolicyError, ConfigError) as e:
        print(f"✗ policy/config: {e}")
        return 2
    print(f"policy: {resolved.policy_source}\nconfig: {resolved.config_source}\nstate:  {resolved.state_dir}\n")
    names = list(TOOLSETS) if args.toolsets == "all" else [n.strip() for n in args.toolsets.split(",")]
    server = build_server(ServeOptions(policy=resolved.policy, toolsets=["all"], env=env, config=resolved.config,
                                       sink=MemorySink(), state_dir=resolved.state_dir, transport_kind="memory"))
    registered = {t.name for t in await server.list_tools()}
    failures = 0
    async with Client(server) as client:
        for name in names:
            enabled = resolved.policy.toolset_enabled(name)
            label = f"{name:<13} {'enabled' if enabled else 'not enabled':<12}"
            try:
                load_toolset(name).make_client(ClientEnv(env=env, config=resolved.config))
            except ToolFailure as e:
                failures += enabled
                print(f"{'✗' if enabled else '·'} {label} {e.message}" + (f"\n    next: {e.hint}" if e.hint else ""))
                continue
            probe = PROBES.get(name)
            if probe is None or probe[0] not in registered:
                why = "write toolset: credentials only, doctor never writes" if probe is None else "not registered"
                print(f"✓ {label} credentials present ({why})")
                continue
            t0 = time.perf_counter()
            result = await client.call_tool(probe[0], probe[1])
            ms = (time.perf_counter() - t0) * 1000
            text = "\n".join(getattr(c, "text", "") for c in result.content)
            if result.is_error:
                failures += 1
                print(f"✗ {label} {probe[0]} failed in {ms:.0f} ms: " + text.replace("\n", "\n    "))
            else:
                print(f"✓ {label} reachable, {probe[0]} answered in {ms:.0f} ms")
    return 1 if failures else 0
