"""decide(): a pure function of (call, policy, now), tested with tables."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from guards.decide import Call, decide, match_value
from guards.policy import MatchSpec, parse_policy

POLICY = parse_policy({
    "toolsets": {"enabled": ["datadog", "deploy", "deploy_write"]},
    "rules": [
        {"id": "prod-deploy-needs-canary", "effect": "allow", "tools": ["deploy_*"],
         "where": {"env": ["prod"], "action": ["deploy"], "strategy": ["canary"]}},
        {"id": "prod-rollback-always", "effect": "allow", "tools": ["deploy_plan", "deploy_apply"],
         "where": {"env": ["prod"], "action": ["rollback", "pause"]}},
        {"id": "weekend-freeze", "effect": "deny", "tools": ["deploy_apply"],
         "where": {"env": ["prod"], "action": ["deploy", "promote", "resume"]},
         "when": {"from": "Fri 16:00", "to": "Mon 08:00", "zone": "Europe/Berlin"},
         "reason": "Change freeze."},
        {"id": "no-bots-on-logs", "effect": "deny", "tools": ["datadog_search_logs"], "principals": ["bot-*"]},
        {"id": "release-mgr-approval", "effect": "allow", "tools": ["deploy_apply"], "where": {"env": ["eu-prod"]},
         "approvers": ["alice"]},
    ],
})

WEDNESDAY = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
FRIDAY_1459_UTC = datetime(2026, 11, 27, 14, 59, tzinfo=UTC)  # 15:59 Berlin: before the freeze
FRIDAY_1500_UTC = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 16:00 Berlin: freeze starts


def write(tool: str, **args: object) -> Call:
    return Call(tool, "deploy_write", "write", args, "agent-1", "claude-code")


@pytest.mark.parametrize(
    ("call", "now", "allowed", "rule"),
    [
        (Call("datadog_search_logs", "datadog", "read", {}, "alice"), WEDNESDAY, True, "defaults.read"),
        (Call("datadog_search_logs", "datadog", "read", {}, "bot-7"), WEDNESDAY, False, "no-bots-on-logs"),
        (Call("slack_read_thread", "slack", "read", {}), WEDNESDAY, False, "toolsets.enabled"),
        (write("deploy_apply", env="prod", action="deploy", strategy="canary"), WEDNESDAY, True,
         "prod-deploy-needs-canary"),
        (write("deploy_apply", env="prod", action="deploy", strategy="all-at-once"), WEDNESDAY, False,
         "defaults.write"),
        (write("deploy_apply", env="prod", action="deploy", strategy="canary"), SATURDAY, False, "weekend-freeze"),
        (write("deploy_apply", env="prod", action="rollback"), SATURDAY, True, "prod-rollback-always"),
        (write("deploy_apply", env="prod", action="deploy", strategy="canary"), FRIDAY_1459_UTC, True,
         "prod-deploy-needs-canary"),
        (write("deploy_apply", env="prod", action="deploy", strategy="canary"), FRIDAY_1500_UTC, False,
         "weekend-freeze"),
        (write("deploy_apply", env="staging", action="deploy"), WEDNESDAY, False, "defaults.write"),
        (write("deploy_apply"), WEDNESDAY, False, "defaults.write"),
    ],
)
def test_decide_names_the_rule_that_made_each_decision(call: Call, now: datetime, allowed: bool, rule: str) -> None:
    d = decide(call, POLICY, now)
    assert (d.allowed, d.rule_id) == (allowed, rule)


def test_decisions_are_the_same_on_a_fresh_policy_and_on_one_that_has_seen_every_call() -> None:
    """decide() remembers which rules target a (tool, toolset, principal, client); it must not
    carry one principal's or one time's answer over to another."""
    table = [(Call("datadog_search_logs", "datadog", "read", {}, who), when) for who in ("alice", "bot-7", "bot-8")
             for when in (WEDNESDAY, SATURDAY)]
    table += [(write("deploy_apply", env="prod", action="deploy", strategy="canary"), when)
              for when in (WEDNESDAY, SATURDAY, FRIDAY_1459_UTC, FRIDAY_1500_UTC)]
    warm = POLICY.model_copy()
    for call, now in table:
        decide(call, warm, now)

    def fresh() -> object:
        return parse_policy(POLICY.model_dump(by_alias=True, exclude_none=True))

    for call, now in reversed(table):
        assert decide(call, warm, now) == decide(call, fresh(), now)  # type: ignore[arg-type]


def test_a_policy_copied_with_other_rules_does_not_inherit_what_the_original_remembered() -> None:
    call = Call("datadog_search_logs", "datadog", "read", {}, "bot-7")
    assert decide(call, POLICY, WEDNESDAY).rule_id == "no-bots-on-logs"
    relaxed = POLICY.model_copy(update={"rules": []})
    assert decide(call, relaxed, WEDNESDAY).rule_id == "defaults.read"


def test_a_default_write_denial_names_the_nearest_rule_and_the_missing_argument() -> None:
    d = decide(write("deploy_apply", env="prod", action="deploy", strategy="bluegreen"), POLICY, WEDNESDAY)
    assert d.hint == "rule 'prod-deploy-needs-canary' would allow it with strategy one of canary"


@pytest.mark.parametrize(
    ("where", "hint"),
    [
        ({"limit": {"min": 100}},
         "rule 'wide' denies calls with limit >= 100: change that argument, or ask a policy owner"),
        ({"index": ["security"], "query": {"glob": "*@*"}},
         "rule 'wide' denies calls with index one of security; query like *@*: change those arguments, "
         "or ask a policy owner"),
    ],
)
def test_a_denial_on_arguments_names_the_arguments_to_change(where: dict[str, object], hint: str) -> None:
    policy = parse_policy({"toolsets": {"enabled": ["datadog"]},
                           "rules": [{"id": "wide", "effect": "deny", "tools": ["t"], "where": where}]})
    d = decide(Call("t", "datadog", "read", {"limit": 150, "index": "security", "query": "a@b"}), policy, WEDNESDAY)
    assert (d.allowed, d.hint) == (False, hint)


def test_a_freeze_denial_carries_its_reason_and_window() -> None:
    d = decide(write("deploy_apply", env="prod", action="deploy", strategy="canary"), POLICY, SATURDAY)
    assert d.reason == "Change freeze."
    assert d.hint == "allowed outside Fri 16:00 to Mon 08:00 (Europe/Berlin)"


def test_an_allow_rule_with_approvers_carries_them_on_the_decision() -> None:
    d = decide(write("deploy_apply", env="eu-prod"), POLICY, WEDNESDAY)
    assert d.allowed and d.approvers == ("alice",)


def test_unless_exempts_a_call_from_a_deny_rule() -> None:
    policy = parse_policy({"rules": [{"id": "freeze", "effect": "deny", "tools": ["*"],
                                      "unless": {"action": ["rollback"]}}]})
    assert not decide(Call("t", "datadog", "read", {"action": "deploy"}), policy, WEDNESDAY).allowed
    assert decide(Call("t", "datadog", "read", {"action": "rollback"}), policy, WEDNESDAY).allowed


@pytest.mark.parametrize(
    ("matcher", "value", "expected"),
    [
        (["prod", "staging"], "prod", True),
        (["prod-*"], "prod-eu", True),
        (["prod"], "production", False),
        ("prod", "prod", True),
        (3, 3, True),
        (True, 1, False),
        (MatchSpec(min=1, max=5), 5, True),
        (MatchSpec(min=1, max=5), 6, False),
        (MatchSpec(min=1), "7", False),
        (MatchSpec(regex=r"v\d+\.\d+"), "v2.14", True),
        (MatchSpec(regex=r"v\d+"), "v2.14", False),
        (MatchSpec.model_validate({"in": ["a", "b"]}), "b", True),
        (MatchSpec(glob="C0*"), "C0123", True),
        (["a"], None, False),
        (["a", "b"], ["a", "b"], True),
        (["a"], ["a", "c"], False),
        (["a"], [], False),
    ],
)
def test_argument_matchers(matcher: object, value: object, expected: bool) -> None:
    assert match_value(matcher, value) is expected  # type: ignore[arg-type]
