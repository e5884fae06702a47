"""Helpers for end-to-end tests: spawn `spyglass serve`, find free ports, get real MCP clients."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

REPO = Path(__file__).resolve().parents[2]
SPYGLASS = str(Path(sys.executable).parent / "spyglass")
NPM_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spyglass-tests" / "npm"
NPM_PACKAGES = ["@anthropic-ai/claude-code@2", "@openai/codex", "@modelcontextprotocol/inspector"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx2.get(url, timeout=1).status_code < 500:
                return
        except httpx2.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up")


def npm_bin(name: str) -> str:
    """A real client from the npm registry, installed once into the user's cache (skips if npm is absent)."""
    path = NPM_DIR / "node_modules" / ".bin" / name
    if not path.exists():
        if not shutil.which("npm"):
            pytest.skip("npm not available to install the real MCP clients")
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *NPM_PACKAGES],
                           cwd=NPM_DIR, capture_output=True, text=True, timeout=600)
        if r.returncode != 0 or not path.exists():
            pytest.skip(f"could not install {name} from npm: {r.stderr[-300:]}")
    return str(path)


class ServeProcess:
    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([SPYGLASS, "serve", *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err
