"""`spyglass install claude|codex`: register the server in Claude Code or Codex.

Claude Code: user scope writes ``mcpServers`` in ~/.claude.json (what `claude mcp add -s user`
does); project scope writes ./.mcp.json. Codex: ``[mcp_servers.NAME]`` in
$CODEX_HOME/config.toml (default ~/.codex), edited with tomlkit so the user's comments,
formatting and other entries survive. Both are idempotent: re-running updates the entry.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("install", help="register spyglass in Claude Code or Codex")
    psub = p.add_subparsers(dest="client", required=True)
    for name, help_text in (("claude", "Claude Code (~/.claude.json or ./.mcp.json)"),
                            ("codex", "Codex ($CODEX_HOME/config.toml)")):
        c = psub.add_parser(name, help=help_text)
        c.add_argument("--name", default="spyglass", help="server name in the client (default: spyglass)")
        c.add_argument("--toolsets", help="comma-separated toolsets to serve (default: all the policy enables)")
        c.add_argument("--read-only", action="store_true", help="serve no write tools")
        c.add_argument("--policy", help="policy file the server should use (stored as an absolute path)")
        c.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                       help="environment for the server (repeatable); prefer your shell env for secrets")
        c.add_argument("--print", dest="dry_run", action="store_true", help="print the entry, change nothing")
        if name == "claude":
            c.add_argument("--scope", choices=["user", "project"], default="user")
        c.set_defaults(func=install)


def server_command(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The command that runs *this* installation: the `spyglass` script beside the running
    interpreter (a venv or a uv/pipx tool dir), else the one on PATH, else `python -m`.
    Interpreter paths are made absolute but never symlink-resolved: a venv's python is a symlink."""
    beside = Path(sys.executable).parent / "spyglass"
    exe = str(beside) if beside.exists() else shutil.which("spyglass")
    command, argv = (exe, ["serve"]) if exe else (sys.executable, ["-m", "servers.cli", "serve"])
    if args.toolsets:
        argv += ["--toolsets", args.toolsets]
    if args.read_only:
        argv.append("--read-only")
    if args.policy:
        argv += ["--policy", str(Path(args.policy).expanduser().resolve())]
    return os.path.abspath(command), argv


def _env(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            raise SystemExit(f"--env {pair!r}: use KEY=VALUE")
        out[k] = v
    return out


def install(args: argparse.Namespace) -> int:
    command, argv = server_command(args)
    env = _env(args.env)
    if args.client == "claude":
        return _claude(args, command, argv, env)
    return _codex(args, command, argv, env)


def claude_config_path(scope: str) -> Path:
    return Path.cwd() / ".mcp.json" if scope == "project" else Path.home() / ".claude.json"


def _claude(args: argparse.Namespace, command: str, argv: list[str], env: dict[str, str]) -> int:
    path = claude_config_path(args.scope)
    entry: dict[str, Any] = {"type": "stdio", "command": command, "args": argv, "env": env}
    if args.dry_run:
        print(json.dumps({"mcpServers": {args.name: entry}}, indent=2))
        return 0
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text() or "{}")
        except ValueError as e:
            print(f"spyglass: {path} is not valid JSON ({e}); not touching it", file=sys.stderr)
            return 2
    data.setdefault("mcpServers", {})[args.name] = entry
    _atomic_write(path, json.dumps(data, indent=2) + "\n")
    print(f"registered {args.name!r} in {path} ({args.scope} scope).")
    print("check it: claude mcp list" + ("   (project servers show 'Pending approval' until you approve them)"
                                        if args.scope == "project" else ""))
    return 0


def codex_config_path() -> Path:
    return Path(os.environ.get("CODEX_HOME", Path.home() / ".codex")) / "config.toml"


def _codex(args: argparse.Namespace, command: str, argv: list[str], env: dict[str, str]) -> int:
    import tomlkit

    path = codex_config_path()
    doc = tomlkit.parse(path.read_text()) if path.exists() else tomlkit.document()
    servers = doc.get("mcp_servers")
    if servers is None:
        servers = tomlkit.table(is_super_table=True)
        doc["mcp_servers"] = servers
    entry = tomlkit.table()
    entry["command"] = command
    entry["args"] = argv
    if env:
        entry["env"] = env
    servers[args.name] = entry
    if args.dry_run:
        print(tomlkit.dumps(doc))
        return 0
    _atomic_write(path, tomlkit.dumps(doc))
    print(f"registered {args.name!r} in {path}. check it: codex mcp list")
    return 0


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".spyglass-tmp")
    tmp.write_text(text)
    if path.exists():
        os.chmod(tmp, path.stat().st_mode)
    tmp.replace(path)
