"""Durations, rule windows and the in-memory limit store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from guards.durations import format_duration, parse_duration
from guards.limits import MemoryLimitStore, draws_for
from guards.policy import parse_policy
from guards.windows import in_window

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("90s", 90), ("500ms", 0.5),
     ("PT15M", 900), ("P1DT2H", 93600), ("1.5h", 5400)],
)
def test_durations_parse_compact_and_iso_forms(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "1hx", "fifteen minutes", "P"])
def test_bad_durations_say_which_forms_are_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="15m, 1h"):
        parse_duration(text)


def test_durations_format_compactly() -> None:
    assert [format_duration(s) for s in (42, 90, 5400, 90000)] == ["42s", "1m", "1h30m", "1d1h"]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 11, 27, 14, 59, tzinfo=UTC), False),  # Fri 15:59 Berlin
        (datetime(2026, 11, 27, 15, 0, tzinfo=UTC), True),  # Fri 16:00 Berlin
        (datetime(2026, 11, 29, 23, 0, tzinfo=UTC), True),  # Mon 00:00 Berlin: wraps over the week's end
        (datetime(2026, 11, 30, 7, 0, tzinfo=UTC), False),  # Mon 08:00 Berlin: window over
        (datetime(2026, 7, 3, 14, 0, tzinfo=UTC), True),  # Fri 16:00 Berlin in summer time (UTC+2)
    ],
)
def test_weekly_windows_wrap_the_week_and_follow_the_zone_through_dst(now: datetime, expected: bool) -> None:
    assert in_window(now, "Fri 16:00", "Mon 08:00", "Europe/Berlin") is expected


def test_absolute_windows_use_the_zone_for_naive_times() -> None:
    window = ("2026-12-24T00:00", "2026-12-27T00:00", "Europe/Berlin")
    assert in_window(datetime(2026, 12, 23, 23, 30, tzinfo=UTC), *window)
    assert not in_window(datetime(2026, 12, 27, 0, 0, tzinfo=UTC), *window)


async def test_the_memory_store_allows_max_per_window_then_says_when_one_frees_up() -> None:
    clock = [1000.0]
    store = MemoryLimitStore(clock=lambda: clock[0])
    assert [await store.take("b", 3, 60) for _ in range(3)] == [None, None, None]
    assert await store.take("b", 3, 60) == pytest.approx(60)
    clock[0] += 30
    assert await store.take("b", 3, 60) == pytest.approx(30)
    clock[0] += 31
    assert await store.take("b", 3, 60) is None


async def test_claim_once_is_single_use_until_the_ttl_passes() -> None:
    clock = [0.0]
    store = MemoryLimitStore(clock=lambda: clock[0])
    assert await store.claim_once("plan-1", 10) and not await store.claim_once("plan-1", 10)
    clock[0] = 11
    assert await store.claim_once("plan-1", 10)


async def test_a_lease_has_one_holder_until_released_by_its_token_or_expired() -> None:
    clock = [0.0]
    store = MemoryLimitStore(clock=lambda: clock[0])
    first = await store.lease("deploy.apply", 10)
    assert first is not None and await store.lease("deploy.apply", 10) is None
    await store.release("deploy.apply", "not-the-holders-token")
    assert await store.lease("deploy.apply", 10) is None
    await store.release("deploy.apply", first)
    second = await store.lease("deploy.apply", 10)
    assert second is not None and second != first
    clock[0] = 11  # the holder died: the lease expires
    third = await store.lease("deploy.apply", 10)
    assert third is not None
    await store.release("deploy.apply", second)  # the expired holder cannot end the new lease
    assert await store.lease("deploy.apply", 10) is None


def test_limits_split_their_budget_by_key_and_match_by_tool_toolset_or_upstream() -> None:
    policy = parse_policy({"limits": [
        {"id": "prod-deploys", "tools": ["deploy_apply"], "where": {"env": ["prod"]}, "max": 3, "per": "1h",
         "key": ["service", "env"]},
        {"id": "dd", "upstream": "datadog", "max": 200, "per": "1h"},
        {"id": "per-agent", "toolsets": ["*"], "max": 10, "per": "1m", "key": ["principal"]},
    ]})
    draws = draws_for(policy, tool="deploy_apply", toolset="deploy_write", upstream="deploy", principal="a1",
                      client="c", args={"service": "checkout", "env": "prod"})
    assert [d.bucket for d in draws] == ["prod-deploys|service=checkout|env=prod", "per-agent|principal=a1"]
    draws = draws_for(policy, tool="datadog_search_logs", toolset="datadog", upstream="datadog", principal="a2",
                      client="c", args={})
    assert [d.limit.id for d in draws] == ["dd", "per-agent"]


async def test_the_memory_store_grants_and_waits_exactly_as_a_full_scan_of_the_window_would() -> None:
    import random

    rng = random.Random(7)
    clock = [0.0]
    store = MemoryLimitStore(clock=lambda: clock[0])
    reference: list[float] = []  # the old algorithm: keep every hit still inside the window
    for _ in range(2000):
        clock[0] += rng.choice([0.0, 0.1, 0.5, 2.0, 7.0])
        reference = [t for t in reference if t > clock[0] - 10]
        expected = None if len(reference) < 5 else max(0.0, reference[0] + 10 - clock[0])
        if expected is None:
            reference.append(clock[0])
        assert await store.take("b", 5, 10) == expected


def test_which_limits_a_call_draws_on_is_remembered_by_name_but_where_is_checked_every_call() -> None:
    policy = parse_policy({"limits": [
        {"id": "prod-deploys", "tools": ["deploy_*"], "where": {"env": ["prod"]}, "max": 3, "per": "1h"},
        {"id": "per-agent", "toolsets": ["*"], "principals": ["agent-*"], "max": 10, "per": "1m"},
    ]})
    names = dict(tool="deploy_apply", toolset="deploy_write", upstream="deploy", client="c")
    prod = draws_for(policy, principal="agent-1", args={"env": "prod"}, **names)
    staging = draws_for(policy, principal="agent-1", args={"env": "staging"}, **names)
    human = draws_for(policy, principal="alice", args={"env": "prod"}, **names)
    assert [d.limit.id for d in prod] == ["prod-deploys", "per-agent"]
    assert [d.limit.id for d in staging] == ["per-agent"]
    assert [d.limit.id for d in human] == ["prod-deploys"]
    assert ("limits", "deploy_apply", "deploy_write", "deploy", "agent-1") in policy.memo()


def test_a_limit_and_a_window_are_parsed_once_when_the_policy_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    import guards.policy
    import guards.windows

    policy = parse_policy({
        "rules": [{"id": "freeze", "effect": "deny", "tools": ["deploy_*"],
                   "when": {"from": "Fri 16:00", "to": "Mon 08:00", "zone": "Europe/Berlin"}}],
        "limits": [{"id": "dd", "upstream": "datadog", "max": 200, "per": "1h30m"}],
    })

    def parse_again(text: str) -> None:
        raise AssertionError(f"{text!r} parsed again on a call")

    monkeypatch.setattr(guards.policy, "parse_duration", parse_again)
    monkeypatch.setattr(guards.windows, "parse_point", parse_again)
    assert policy.limits[0].per_seconds == 5400
    window = policy.rules[0].when
    assert window is not None
    assert window.contains(datetime(2026, 11, 27, 15, 0, tzinfo=UTC))  # Fri 16:00 Berlin
    assert not window.contains(datetime(2026, 11, 30, 7, 0, tzinfo=UTC))  # Mon 08:00 Berlin
