"""Plan ids and argument digests keep their exact bytes: plans minted before a release still verify."""

from __future__ import annotations

from datetime import UTC, datetime

from guards.audit import canonical_json, digest_text
from guards.plans import PlanSigner, plan_digest

ARGS = {"service": "checkout", "revision": "abc123", "note": "café ✓", "n": 3, "f": 1.5,
        "when": datetime(2026, 1, 2, tzinfo=UTC)}
NOW = datetime(2026, 1, 2, tzinfo=UTC)
# Minted by the earlier implementation (json.dumps(sort_keys=True, separators=(",", ":"), default=str)).
MINTED = (
    "pl1.0123456789ab.eyJhIjp7ImYiOjEuNSwibiI6Mywibm90ZSI6ImNhZlx1MDBlOSBcdTI3MTMiLCJyZXZpc2lvbiI6ImFiYzEyMyIsInNlcnZ"
    "pY2UiOiJjaGVja291dCIsIndoZW4iOiIyMDI2LTAxLTAyIDAwOjAwOjAwKzAwOjAwIn0sImFwIjpbImJvYiJdLCJiIjp7InJldiI6ImFiYyJ9LC"
    "JlIjoxNzY3MzEyOTAwLCJpIjoxNzY3MzEyMDAwLCJuIjoiMDEyMzQ1Njc4OWFiIiwicCI6ImFsaWNlIiwicyI6InBlbmRpbmcifQ.Z_UYILk5TSP"
    "rSodSBn_vJw"
)


def test_a_plan_digest_is_the_audit_digest_of_the_same_arguments_and_keeps_its_bytes() -> None:
    assert plan_digest(ARGS) == digest_text(canonical_json(ARGS)) == "fd26609ed9391700d08c428cfd3d1874"


def test_a_plan_minted_today_is_byte_for_byte_the_one_minted_before_and_still_verifies() -> None:
    signer = PlanSigner(b"k" * 32)
    minted = signer.mint(principal="alice", args=ARGS, now=NOW, ttl_s=900, binding={"rev": "abc"},
                         approvers=("bob",), status="pending", nonce="0123456789ab")
    assert minted == MINTED
    assert signer.verify(MINTED, principal="alice", now=NOW).nonce == "0123456789ab"
