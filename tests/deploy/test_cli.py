"""`spyglass approve`: verifies the plan with the server's key, then records a signed approval."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from guards.plans import ApprovalStore, PlanSigner, decode_plan_id, load_plan_key
from servers.cli import main


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SPYGLASS_PLAN_KEY", raising=False)
    monkeypatch.setenv("SPYGLASS_CONFIG", str(tmp_path / "spyglass.toml"))
    monkeypatch.setenv("SPYGLASS_POLICY", str(tmp_path / "policy.toml"))
    (tmp_path / "spyglass.toml").write_text("")
    (tmp_path / "policy.toml").write_text("version = 1\n")
    return tmp_path / "state"


def plan(state: Path, approvers: tuple[str, ...] = ("lead",)) -> str:
    key = load_plan_key(state)
    plan_id = PlanSigner(key).mint(principal="agent", args={"service": "checkout", "env": "prod", "action": "rollback"},
                                   now=datetime.now(UTC), ttl_s=600, approvers=approvers)
    ApprovalStore(state / "approvals", key).request(decode_plan_id(plan_id))
    return plan_id


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (lambda p: [p, "--as", "lead"], 0, "approved by lead"),
        (lambda p: ["pl_" + p.split(".")[1], "--as", "lead"], 0, "approved by lead"),
        (lambda p: [p, "--as", "intern"], 1, "'intern' is not one of this plan's approvers (lead)"),
        (lambda p: [p[:-3] + "AAA", "--as", "lead"], 1, "signature does not match"),
        (lambda p: ["pl_000000000000", "--as", "lead"], 2, "no approval request pl_000000000000"),
    ],
)
def test_approve_records_only_a_verified_plan_by_a_listed_approver(
        state: Path, capsys: pytest.CaptureFixture[str], argv: object, code: int, says: str) -> None:
    plan_id = plan(state)
    assert main(["approve", *argv(plan_id), "--state-dir", str(state)]) == code  # type: ignore[operator]
    out = capsys.readouterr()
    assert says in out.out + out.err
    found = ApprovalStore(state / "approvals", load_plan_key(state)).find(decode_plan_id(plan_id))
    assert (found is not None and found.approver == "lead") is (code == 0)


def test_approve_refuses_a_plan_that_needs_no_approval(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan_id = plan(state, approvers=())
    assert main(["approve", plan_id, "--as", "lead", "--state-dir", str(state)]) == 1
    assert "needs no approval" in capsys.readouterr().err
