"""guards.plans on its own: signing, every way a plan id is refused, single use, keys, approvals."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from guards.limits import MemoryLimitStore
from guards.plans import (
    ApprovalStore,
    PlanAwaitingApproval,
    PlanRefused,
    PlanSigner,
    claim,
    decode_plan_id,
    load_plan_key,
    plan_digest,
)

KEY = b"k" * 32
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
ARGS = {"service": "checkout", "env": "prod", "action": "rollback", "version": "2.13.4"}


def mint(**kw: object) -> str:
    params: dict[str, object] = {"principal": "dana", "args": ARGS, "now": NOW, "ttl_s": 900,
                                 "binding": {"sha": "4b7d0a1"}}
    params.update(kw)
    return PlanSigner(KEY).mint(**params)  # type: ignore[arg-type]


def reencode(plan_id: str, change: dict[str, object]) -> str:
    prefix, nonce, payload, sig = plan_id.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(change)
    raw = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return ".".join([prefix, nonce, raw, sig])


def test_a_minted_plan_verifies_and_carries_its_args_binding_and_digest() -> None:
    claims = PlanSigner(KEY).verify(mint(), principal="dana", now=NOW + timedelta(minutes=5))
    assert claims.args == ARGS and claims.binding == {"sha": "4b7d0a1"}
    assert claims.digest == plan_digest(ARGS) and claims.ref == f"pl_{claims.nonce}"
    assert claims.expires_iso() == "2026-03-02T10:15:00Z"


def test_the_first_64_characters_of_a_plan_id_name_the_plan() -> None:
    plan_id = mint()
    assert decode_plan_id(plan_id).nonce in plan_id[:64]


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda p: reencode(p, {"a": {**ARGS, "env": "staging"}}), "plans.signature"),  # args swapped
        (lambda p: reencode(p, {"e": 2_000_000_000}), "plans.signature"),  # expiry extended
        (lambda p: reencode(p, {"p": "mallory"}), "plans.signature"),  # principal rewritten
        (lambda p: p[:-3] + ("AAA" if not p.endswith("AAA") else "BBB"), "plans.signature"),  # signature edited
        (lambda p: PlanSigner(b"x" * 32).mint(principal="dana", args=ARGS, now=NOW, ttl_s=900), "plans.signature"),
        (lambda p: "pl1.abc", "plans.malformed"),
        (lambda p: "not a plan", "plans.malformed"),
        (lambda p: p.replace("pl1.", "pl2.", 1), "plans.malformed"),
        (lambda p: ".".join([*p.split(".")[:2], "!!!", p.split(".")[3]]), "plans.malformed"),
        (lambda p: p.replace(p.split(".")[1], "ffffffffffff", 1), "plans.malformed"),  # nonce not the payload's
    ],
)
def test_a_tampered_or_foreign_plan_id_is_refused_naming_why(mutate: object, rule: str) -> None:
    bad = mutate(mint())  # type: ignore[operator]
    with pytest.raises(PlanRefused) as e:
        PlanSigner(KEY).verify(bad, principal="dana", now=NOW)
    assert e.value.rule_id == rule and e.value.hint


@pytest.mark.parametrize(("after", "refused"),
                         [(timedelta(minutes=14, seconds=59), False), (timedelta(minutes=15), True)])
def test_a_plan_expires_after_its_ttl(after: timedelta, refused: bool) -> None:
    if refused:
        with pytest.raises(PlanRefused, match="expired at 2026-03-02T10:15:00Z") as e:
            PlanSigner(KEY).verify(mint(), principal="dana", now=NOW + after)
        assert e.value.rule_id == "plans.expired"
    else:
        assert PlanSigner(KEY).verify(mint(), principal="dana", now=NOW + after).principal == "dana"


def test_another_principal_cannot_use_the_plan_but_an_approver_may_read_it() -> None:
    with pytest.raises(PlanRefused, match="made by 'dana', not by 'mallory'") as e:
        PlanSigner(KEY).verify(mint(), principal="mallory", now=NOW)
    assert e.value.rule_id == "plans.principal"
    assert PlanSigner(KEY).verify(mint(), principal=None, now=NOW).principal == "dana"


@pytest.mark.anyio
async def test_a_plan_can_be_claimed_once_and_only_once_even_concurrently() -> None:
    claims = decode_plan_id(mint())
    store = MemoryLimitStore()
    results: list[str] = []

    async def one() -> None:
        try:
            await claim(store, claims, NOW)
            results.append("won")
        except PlanRefused as e:
            results.append(e.rule_id)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(one)
    assert sorted(results) == ["plans.replayed"] * 4 + ["won"]


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        PlanSigner(b"short")
    with pytest.raises(ValueError, match="shorter than 32 bytes"):
        load_plan_key(Path("/nonexistent"), "too-short")


def test_the_generated_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = load_plan_key(tmp_path / "state")
    assert load_plan_key(tmp_path / "state") == first and len(first) >= 32
    mode = stat.S_IMODE(os.stat(tmp_path / "state" / "plan-key").st_mode)
    assert mode == 0o600
    assert load_plan_key(tmp_path / "state", "c" * 40) == b"c" * 40  # a configured key wins


def test_an_approval_counts_only_for_the_exact_plan_and_a_listed_approver(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path, KEY)
    plan = decode_plan_id(mint(approvers=("lead",), status="awaiting_approval"))
    other = decode_plan_id(mint(approvers=("lead",), status="awaiting_approval"))
    with pytest.raises(PlanAwaitingApproval) as e:
        store.require(plan, ("lead",), rule_id="prod-needs-lead")
    assert e.value.rule_id == "prod-needs-lead" and "spyglass approve" in (e.value.hint or "")
    store.record(other, "lead", NOW)
    with pytest.raises(PlanAwaitingApproval):
        store.require(plan, ("lead",), rule_id="prod-needs-lead")
    store.record(plan, "intern", NOW)
    with pytest.raises(PlanAwaitingApproval, match="approval by 'intern' does not count"):
        store.require(plan, ("lead",), rule_id="prod-needs-lead")
    store.record(plan, "lead", NOW)
    assert store.require(plan, ("lead",), rule_id="prod-needs-lead").approver == "lead"


def test_an_approval_file_edited_by_hand_is_ignored(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path, KEY)
    plan = decode_plan_id(mint(approvers=("lead",)))
    store.record(plan, "intern", NOW)
    path = tmp_path / f"{plan.nonce}.json"
    body = json.loads(path.read_text())
    path.write_text(json.dumps({**body, "approver": "lead"}))
    assert store.find(plan) is None


def test_a_requested_plan_can_be_found_by_its_short_ref(tmp_path: Path) -> None:
    store = ApprovalStore(tmp_path, KEY)
    plan = decode_plan_id(mint(approvers=("lead",)))
    store.request(plan)
    assert store.lookup(plan.ref) == plan.raw
    assert store.lookup("pl_../../etc") is None and store.lookup("pl_000000000000") is None
