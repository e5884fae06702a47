"""``spyglass`` command line. Subcommands live in small modules; heavy imports stay lazy."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module defines ``register(subparsers)`` adding its subcommands, with ``func`` defaults.
COMMAND_MODULES = [
    "servers.cli_serve",
    "servers.cli_deploy",
    "servers.cli_sandbox",
    "servers.cli_policy",
    "servers.cli_doctor",
    "servers.cli_install",
    "servers.cli_audit",
    "servers.cli_report",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spyglass",
        description="Guarded MCP servers for production observability, context and deploys.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
