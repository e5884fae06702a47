"""Policy replay: past calls re-decided under a new policy; the changed ones listed."""

from __future__ import annotations

import json

import pytest

from guards.policy import parse_policy
from guards.replay import replay
from tests.utilization.helpers import ev


def deploy(at: float, env: str, action: str = "deploy", **kw):
    args = json.dumps({"env": env, "action": action, "service": "checkout"})
    return ev(at, tool="deploy_apply", toolset="deploy_write", args=args, **kw)


OLD = {"toolsets": {"enabled": ["datadog", "deploy_write"]},
       "rules": [{"id": "staging", "effect": "allow", "tools": ["deploy_*"], "where": {"env": ["staging"]}},
                 {"id": "prod", "effect": "allow", "tools": ["deploy_*"], "where": {"env": ["prod"]}}]}


def test_unchanged_policy_changes_nothing() -> None:
    events = [deploy(0, "prod", rule_id="prod"), deploy(1, "staging", rule_id="staging"), ev(2)]
    r = replay(events, parse_policy(OLD))
    assert (r.replayed, r.unchanged, r.changes, r.rule_only) == (3, 3, [], 0)


@pytest.mark.parametrize(
    ("new_policy", "expected"),
    [
        # prod deploys lose their allow rule: allow -> deny by the default for writes
        ({"toolsets": {"enabled": ["datadog", "deploy_write"]},
          "rules": [OLD["rules"][0]]}, [("allow -> deny", "prod", "defaults.write")]),
        # a freeze rule added: it is decided at the time of each call (2026-11-20 was a Friday)
        ({**OLD, "rules": [*OLD["rules"], {"id": "freeze", "effect": "deny", "tools": ["deploy_apply"],
                                           "when": {"from": "Fri 09:00", "to": "Fri 10:00", "zone": "UTC"}}]},
         [("allow -> deny", "prod", "freeze"), ("allow -> deny", "staging", "freeze")]),
        # the write toolset disabled
        ({"toolsets": {"enabled": ["datadog"]}, "rules": OLD["rules"]},
         [("allow -> deny", "prod", "toolsets.enabled")] + [("allow -> deny", "staging", "toolsets.enabled")] * 2),
    ],
)
def test_a_tightened_policy_lists_every_call_it_would_now_refuse(new_policy, expected) -> None:
    events = [deploy(0, "prod", rule_id="prod"), deploy(1, "staging", rule_id="staging"),
              deploy(7200, "staging", rule_id="staging")]  # 11:00: outside the freeze window
    r = replay(events, parse_policy(new_policy))
    assert [(c.kind, c.before_rule, c.after_rule) for c in r.changes] == expected


def test_a_loosened_policy_lists_the_denied_calls_it_would_allow() -> None:
    events = [deploy(0, "dev", outcome="denied", rule_id="defaults.write", decision="deny")]
    loosened = {**OLD, "rules": [*OLD["rules"], {"id": "dev", "effect": "allow", "tools": ["deploy_*"],
                                                 "where": {"env": "dev"}}]}
    r = replay(events, parse_policy(loosened))
    (c,) = r.changes
    assert (c.kind, c.before_rule, c.after_rule, c.principal) == ("deny -> allow", "defaults.write", "dev", "alice")
    assert r.groups()[0]["calls"] == 1 and r.to_dict()["by_direction"] == {"deny -> allow": 1}


def test_a_new_budget_is_simulated_over_the_calls_in_time_order() -> None:
    events = [ev(i * 10) for i in range(5)]
    limited = {"limits": [{"id": "three-a-minute", "tools": ["datadog_*"], "max": 3, "per": "1m"}]}
    r = replay(events, parse_policy(limited))
    assert [(c.kind, c.after_rule, c.ts[-9:-5]) for c in r.changes] == [
        ("allow -> limited", "three-a-minute", "0:30"), ("allow -> limited", "three-a-minute", "0:40")]


def test_calls_that_never_reached_a_decision_or_lost_their_arguments_are_skipped_and_counted() -> None:
    events = [ev(0, outcome="invalid_args", decision="deny", rule_id=""),
              ev(1, outcome="denied", rule_id="unknown-tool", decision="deny"),
              ev(2, args='{"query":"' + "x" * 1990 + "…(truncated)"),
              ev(3, principal="spyglass", principal_kind="system")]
    r = replay(events, parse_policy({}))
    assert r.replayed == 0
    assert dict(r.skipped) == {"never reached a decision (invalid or unknown tool)": 2,
                               "arguments were cut to fit the log": 1}


def test_a_change_that_hinges_on_a_redacted_argument_is_marked_approximate() -> None:
    events = [ev(0, args=json.dumps({"query": "token=[REDACTED:assigned_secret]"}))]
    deny_tokens = {"rules": [{"id": "no-token-queries", "effect": "deny", "tools": ["datadog_*"],
                              "where": {"query": {"glob": "*token*"}}}]}
    (c,) = replay(events, parse_policy(deny_tokens)).changes
    assert c.approximate and c.after_rule == "no-token-queries"


def test_given_the_old_policy_only_the_policys_own_changes_are_listed() -> None:
    events = [deploy(0, "prod", rule_id="prod"),
              ev(1, outcome="denied", decision="deny", rule_id="scopes.datadog.indexes",
                 args=json.dumps({"index": "security"}))]  # refused inside the tool: policy allowed it
    tightened = {"toolsets": {"enabled": ["datadog", "deploy_write"]}, "rules": [OLD["rules"][0]]}
    r = replay(events, parse_policy(tightened), old=parse_policy(OLD))
    assert [(c.tool, c.kind, c.before_rule, c.after_rule) for c in r.changes] == [
        ("deploy_apply", "allow -> deny", "prod", "defaults.write")]
    assert r.replayed == 2 and r.logged_mismatch == 0


def test_an_old_policy_that_denies_what_the_log_allowed_is_flagged_as_not_the_one_in_force() -> None:
    r = replay([deploy(0, "prod", rule_id="prod")], parse_policy(OLD), old=parse_policy({}))
    assert r.logged_mismatch == 1


def test_calls_decided_on_a_stored_plan_and_in_tool_refusals_are_not_replayed_against_the_log() -> None:
    events = [ev(0, tool="deploy_apply", toolset="deploy_write", args=json.dumps({"plan_id": "p-1"})),
              ev(1, outcome="denied", decision="deny", rule_id="scopes.slack.channels")]
    r = replay(events, parse_policy(OLD))
    assert r.replayed == 0 and set(r.skipped) == {
        "decided on a stored plan's arguments, which the log does not hold",
        "refused inside the tool by a read scope (give the old policy to compare)"}
