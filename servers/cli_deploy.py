"""`spyglass approve PLAN_ID`: a named human approves exactly one deploy plan.

A policy rule with ``approvers = [...]`` makes deploy_plan return a plan in
``awaiting_approval``; the agent polls or goes on with other work. This command verifies the
plan id with the same key the server signs with (from the environment variable the config
names, else the state directory), shows what it approves, and records a signed approval bound
to that exact plan id. deploy_apply then proceeds for that plan only.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("approve", help="approve a deploy plan that a policy rule sent to named approvers")
    p.add_argument("plan", metavar="PLAN_ID", help="the plan id, or its short ref pl_<nonce> from the request")
    p.add_argument("--as", dest="approver",
                   help="the approver's name as the rule lists it (default: your OS user)")
    p.add_argument("--config", help="config file (default: $SPYGLASS_CONFIG, ~/.config/spyglass/spyglass.toml)")
    p.add_argument("--state-dir", help="state directory (default: $SPYGLASS_STATE_DIR, ~/.local/state/spyglass)")
    p.set_defaults(func=approve)


def approve(args: argparse.Namespace) -> int:
    from guards.plans import ApprovalStore, PlanRefused, PlanSigner, load_plan_key
    from guards.policy import PolicyError
    from servers.config import ConfigError, resolve
    from servers.deploy.settings import DeployConfigError, parse_deploy_config

    env = dict(os.environ)
    try:
        resolved = resolve(env, config=args.config, state_dir=args.state_dir)
        cfg = parse_deploy_config(resolved.config)
        key = load_plan_key(resolved.state_dir, env.get(cfg.plan_key_env))
    except (PolicyError, ConfigError, DeployConfigError, ValueError, OSError) as e:
        print(f"spyglass approve: {e}", file=sys.stderr)
        return 2
    store = ApprovalStore(resolved.state_dir / "approvals", key)
    plan_id = args.plan.strip()
    if plan_id.startswith("pl_"):
        found = store.lookup(plan_id)
        if found is None:
            print(f"spyglass approve: no approval request {plan_id} in {resolved.state_dir}; pass the full plan id",
                  file=sys.stderr)
            return 2
        plan_id = found
    try:
        claims = PlanSigner(key).verify(plan_id, principal=None, now=datetime.now(UTC))
    except PlanRefused as e:
        print(f"spyglass approve: refused: {e.message}", file=sys.stderr)
        return 1
    approver = args.approver or getpass.getuser()
    a = claims.args
    what = f"{a.get('action')} {a.get('service')} {a.get('env')}" + (f" → {a['version']}" if a.get("version") else "")
    if a.get("strategy"):
        what += f" ({a['strategy']})"
    print(f"plan {claims.ref}: {what}\n  requested by {claims.principal}; reason: {claims.binding.get('reason', '-')}\n"
          f"  digest {claims.digest}; expires {claims.expires_iso()}")
    if not claims.approvers:
        print("spyglass approve: this plan needs no approval; the agent can apply it as is", file=sys.stderr)
        return 1
    if approver not in claims.approvers:
        print(f"spyglass approve: {approver!r} is not one of this plan's approvers ({', '.join(claims.approvers)})",
              file=sys.stderr)
        return 1
    approval = store.record(claims, approver, datetime.now(UTC))
    print(f"approved by {approval.approver} at {approval.at}: deploy_apply may now run this exact plan (once)")
    return 0
