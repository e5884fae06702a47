"""`spyglass sandbox` (run every fake on loopback) and `spyglass demo` (drive the story end to end)."""

from __future__ import annotations

import argparse
import shlex
import signal
import threading
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("sandbox", help="run loopback fakes of every upstream and print the env to use them")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.set_defaults(func=sandbox)

    d = sub.add_parser("demo", help="start the sandbox and drive the servers like an agent would, over stdio")
    d.add_argument("--keep-state", metavar="DIR", help="state dir to keep the demo's audit log in")
    d.set_defaults(func=demo)


def sandbox(args: argparse.Namespace) -> int:
    from servers.sandbox import SandboxServer, build_sandbox

    server = SandboxServer(build_sandbox(), host=args.host, port=args.port).start()
    print(f"# spyglass sandbox on {server.url} — paste into your shell, then run `spyglass serve`:")
    for k, v in sorted(server.env().items()):
        print(f"export {k}={shlex.quote(v)}")
    print("# Ctrl-C stops it.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


def demo(args: argparse.Namespace) -> int:
    import anyio

    from servers.demo import run_demo

    return anyio.run(run_demo, args.keep_state)


__all__ = ["demo", "sandbox"]

