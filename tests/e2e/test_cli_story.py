"""The two commands a user runs first: `spyglass demo` and `spyglass doctor`, as subprocesses."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from servers.sandbox import SandboxServer, build_sandbox
from tests.e2e.helpers import REPO, SPYGLASS

pytestmark = pytest.mark.slow


def test_the_demo_investigates_is_refused_rolls_back_and_prints_the_audit_trail(tmp_path: Path) -> None:
    env = {**os.environ}
    env.pop("SPYGLASS_AUDIT_URL", None)
    r = subprocess.run([SPYGLASS, "demo", "--keep-state", str(tmp_path)], capture_output=True, text=True,
                       timeout=300, env=env, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    assert "datadog_search_logs" in out and "Audit trail" in out
    assert "refused/failed" in out and "scopes.datadog.indexes" in out
    lines = [line for line in out.splitlines() if " denied " in line]
    assert len(lines) >= 2, "expected the scope refusal and the freeze refusal in the audit trail"
    assert (tmp_path / "audit.db").exists()


def test_doctor_reports_each_upstream_reachable_and_names_a_rejected_key(tmp_path: Path) -> None:
    with SandboxServer(build_sandbox()) as sandbox:
        env = {**os.environ, **sandbox.env(), "SPYGLASS_STATE_DIR": str(tmp_path)}
        ok = subprocess.run([SPYGLASS, "doctor", "--config", str(REPO / "config/sandbox.toml")], env=env,
                            capture_output=True, text=True, timeout=120)
        env["DD_APP_KEY"] = "revoked-key-000000"
        bad = subprocess.run([SPYGLASS, "doctor", "--toolsets", "datadog"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.count("reachable") >= 7
    assert bad.returncode == 1 and "datadog answered 403" in bad.stdout and "DD_APP_KEY" in bad.stdout
