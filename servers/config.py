"""Where Spyglass finds its policy, its config and its state. One resolution order everywhere:
command-line flag > environment variable > file in ~/.config/spyglass > built-in default."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guards.policy import Policy, PolicyError, default_policy, load_policy

CONFIG_HOME = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "spyglass"
STATE_HOME = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "spyglass"


class ConfigError(Exception):
    pass


@dataclass
class Resolved:
    policy: Policy
    policy_source: str
    config: dict[str, Any] = field(default_factory=dict)
    config_source: str = "(none)"
    state_dir: Path = STATE_HOME
    audit_url: str | None = None
    redis_url: str | None = None


def _pick(flag: str | None, env: Mapping[str, str], var: str, default: Path) -> Path | None:
    if flag:
        return Path(flag).expanduser()
    if env.get(var):
        return Path(env[var]).expanduser()
    return default if default.exists() else None


def resolve_state_dir(env: Mapping[str, str], flag: str | None = None) -> Path:
    """The state directory (audit log, plan key, approvals): flag > ``$SPYGLASS_STATE_DIR`` >
    ``$XDG_STATE_HOME/spyglass`` > ``~/.local/state/spyglass``. The one place that decides it."""
    return Path(flag or env.get("SPYGLASS_STATE_DIR") or STATE_HOME).expanduser()


def load_config_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"invalid config {path}: not valid TOML: {e}") from None


def resolve(
    env: Mapping[str, str], *, policy: str | None = None, config: str | None = None, state_dir: str | None = None
) -> Resolved:
    """Raises PolicyError / ConfigError with a message naming the file and what is wrong."""
    policy_path = _pick(policy, env, "SPYGLASS_POLICY", CONFIG_HOME / "policy.toml")
    pol = load_policy(policy_path) if policy_path else default_policy()
    config_path = _pick(config, env, "SPYGLASS_CONFIG", CONFIG_HOME / "spyglass.toml")
    cfg = load_config_file(config_path) if config_path else {}
    state = resolve_state_dir(env, state_dir)
    return Resolved(
        policy=pol,
        policy_source=str(policy_path) if policy_path else "built-in default (reads allowed, writes denied)",
        config=cfg,
        config_source=str(config_path) if config_path else "(none)",
        state_dir=state,
        audit_url=env.get("SPYGLASS_AUDIT_URL") or None,
        redis_url=env.get("SPYGLASS_REDIS_URL") or None,
    )


__all__ = ["STATE_HOME", "ConfigError", "PolicyError", "Resolved", "load_config_file", "resolve", "resolve_state_dir"]
