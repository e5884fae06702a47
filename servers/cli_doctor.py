"""`spyglass doctor`: per upstream, are credentials present, is it reachable, do the scopes work."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any


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
    from guards.errors import ToolFailure
    from guards.policy import PolicyError
    from servers.app import TOOLSETS, load_toolset
    from servers.config import ConfigError, resolve

    env = dict(os.environ)
    try:
        resolved = resolve(env, policy=args.policy, config=args.config)
    except (PolicyError, ConfigError) as e:
        print(f"✗ policy/config: {e}")
        return 2
    print(f"policy: {resolved.policy_source}\nconfig: {resolved.config_source}\nstate:  {resolved.state_dir}\n")
    names = list(TOOLSETS) if args.toolsets == "all" else args.toolsets.split(",")
    failures = 0
    from servers._core.spec import ClientEnv

    for name in names:
        ts = load_toolset(name)
        enabled = "enabled" if resolved.policy.toolset_enabled(name) else "not enabled in policy"
        try:
            client = ts.make_client(ClientEnv(env=env, config=resolved.config))
        except ToolFailure as e:
            print(f"✗ {name:<14} {enabled:<22} credentials: {e.message}" + (f" — {e.hint}" if e.hint else ""))
            failures += resolved.policy.toolset_enabled(name)
            continue
        probe = getattr(client, "probe", None)
        if probe is None:
            print(f"✓ {name:<14} {enabled:<22} credentials present (no probe defined)")
        else:
            t0 = time.perf_counter()
            try:
                detail = await probe()
                print(f"✓ {name:<14} {enabled:<22} reachable in {(time.perf_counter() - t0) * 1000:.0f} ms; {detail}")
            except ToolFailure as e:
                failures += 1
                print(f"✗ {name:<14} {enabled:<22} {e.render().splitlines()[0]}" + (f" — {e.hint}" if e.hint else ""))
        close = getattr(client, "aclose", None)
        if close:
            await close()
    return 1 if failures else 0
