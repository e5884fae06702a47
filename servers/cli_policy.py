"""`spyglass policy check [FILE]` and `spyglass policy explain TOOL [ARGS]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("policy", help="validate a policy, or explain the decision for a call")
    psub = p.add_subparsers(dest="policy_command", required=True)

    c = psub.add_parser("check", help="validate a policy file (exit 2 with the field and problem if invalid)")
    c.add_argument("file", nargs="?", help="default: the policy `spyglass serve` would load")
    c.set_defaults(func=check)

    e = psub.add_parser("explain", help="show the decision for a tool call, naming the rule")
    e.add_argument("tool")
    e.add_argument("args", nargs="*", help="arguments as key=value (values parsed as JSON when they can be)")
    e.add_argument("--json", dest="json_args", help="arguments as one JSON object instead")
    e.add_argument("--policy", help="policy file")
    e.add_argument("--principal", default=os.environ.get("USER", "anonymous"))
    e.add_argument("--client", default="unknown")
    e.add_argument("--at", help="evaluate at this ISO 8601 time (default now), e.g. for freeze windows")
    e.set_defaults(func=explain)
    _add_replay(psub)


def _add_replay(psub: Any) -> None:
    try:
        from servers.cli_replay import add_replay
    except ModuleNotFoundError:
        return
    add_replay(psub)


def _load(path: str | None) -> Any:
    from servers.config import resolve

    return resolve(dict(os.environ), policy=path)


def check(args: argparse.Namespace) -> int:
    from guards.policy import PolicyError
    from servers.app import TOOLSETS, load_toolset

    try:
        resolved = _load(args.file)
    except PolicyError as e:
        print(f"✗ {e}", file=sys.stderr)
        return 2
    pol = resolved.policy
    known_tools = {t.name for name in TOOLSETS for t in load_toolset(name).tools}
    warnings = []
    for name in pol.toolsets.enabled:
        if name not in TOOLSETS:
            warnings.append(f"[toolsets] enabled lists unknown toolset {name!r} (known: {', '.join(sorted(TOOLSETS))})")
    from fnmatch import fnmatchcase

    for rule in pol.rules:
        if not any(fnmatchcase(t, pat) for t in known_tools for pat in rule.tools):
            warnings.append(f"rule {rule.id!r} matches no tool this build offers ({', '.join(rule.tools)})")
    for scope in pol.scopes:
        if scope.toolset.removesuffix("_write") not in {n.removesuffix("_write") for n in TOOLSETS}:
            warnings.append(f"scope for unknown toolset {scope.toolset!r}")
    print(f"✓ {resolved.policy_source}: valid — {len(pol.rules)} rules, {len(pol.scopes)} scopes, "
          f"{len(pol.limits)} limits; toolsets enabled: {', '.join(pol.toolsets.enabled)}")
    for w in warnings:
        print(f"  warning: {w}")
    return 0


def _parse_args(pairs: list[str], json_args: str | None) -> dict[str, Any]:
    if json_args:
        data = json.loads(json_args)
        if not isinstance(data, dict):
            raise SystemExit("--json must be an object")
        return data
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"argument {pair!r}: use key=value")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def explain(args: argparse.Namespace) -> int:
    from guards.audit_store import parse_ts
    from guards.decide import Call, decide
    from guards.limits import draws_for
    from guards.policy import PolicyError
    from servers.app import TOOLSETS, load_toolset

    try:
        resolved = _load(args.policy)
    except PolicyError as e:
        print(f"✗ {e}", file=sys.stderr)
        return 2
    spec = next((t for name in TOOLSETS for t in load_toolset(name).tools if t.name == args.tool), None)
    if spec is None:
        print(f"unknown tool {args.tool!r}: a call to it is denied (rule unknown-tool)")
        return 1
    call_args = _parse_args(args.args, args.json_args)
    now = parse_ts(args.at) if args.at else datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    pol = resolved.policy
    d = decide(Call(spec.name, spec.toolset, spec.access, call_args, args.principal, args.client), pol, now)
    print(f"{'ALLOW' if d.allowed else 'DENY'}  {spec.name} ({spec.toolset}, {spec.access}) at {now.isoformat()}")
    print(f"  rule:   {d.rule_id}")
    print(f"  reason: {d.reason}")
    if d.hint:
        print(f"  to allow: {d.hint}")
    if d.approvers:
        print(f"  needs approval by one of: {', '.join(d.approvers)}")
    toolset = load_toolset(spec.toolset)
    draws = draws_for(pol, tool=spec.name, toolset=spec.toolset, upstream=toolset.upstream,
                      principal=args.principal, client=args.client, args=call_args)
    for draw in draws:
        print(f"  draws on limit {draw.limit.id}: {draw.limit.max} per {draw.limit.per} (bucket {draw.bucket})")
    scope = pol.scope_for(spec.toolset)
    if scope is not None:
        kinds = {k: v for k, v in scope.model_dump(exclude_none=True).items() if k != "toolset"}
        print(f"  read scope: {kinds}")
    return 0 if d.allowed else 1
