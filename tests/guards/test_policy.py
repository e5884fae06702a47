"""The policy loads once, typed; a bad one fails with the file, the field and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from guards.policy import PolicyError, load_policy, parse_policy

REPO = Path(__file__).resolve().parents[2]


def test_the_example_and_demo_policies_load() -> None:
    for name in ("policy.example.toml", "demo-policy.toml"):
        assert load_policy(REPO / "config" / name).version == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rules": [{"id": "r", "effect": "alow"}]}, "rules.0.effect: Input should be 'allow' or 'deny'"),
        ({"rules": [{"id": "r", "effect": "allow", "toolz": ["x"]}]}, "rules.0.toolz: unknown field"),
        ({"rules": [{"id": "a", "effect": "allow"}, {"id": "a", "effect": "deny"}]}, "duplicate rule/limit id 'a'"),
        ({"rules": [{"id": "w", "effect": "deny",
                     "when": {"from": "Fri 16:00", "to": "Mon 08:00", "zone": "Mars/Base"}}]},
         "unknown IANA zone 'Mars/Base'"),
        ({"rules": [{"id": "w", "effect": "deny", "when": {"from": "Friday at four", "to": "Mon 08:00"}}]},
         "bad window bound 'Friday at four'"),
        ({"rules": [{"id": "w", "effect": "deny", "when": {"from": "Fri 16:00", "to": "2026-12-01T00:00"}}]},
         "must both be weekly times"),
        ({"rules": [{"id": "x", "effect": "deny", "where": {"v": {"regex": "("}}}]}, "does not compile"),
        ({"limits": [{"id": "l", "max": 3, "per": "an hour", "tools": ["*"]}]}, "bad duration 'an hour'"),
        ({"limits": [{"id": "l", "max": 3, "per": "1h"}]}, "must name 'tools', 'toolsets' or an 'upstream'"),
        ({"limits": [{"id": "l", "max": 0, "per": "1h", "tools": ["*"]}]}, "limits.0.max"),
        ({"version": 2}, "version: Input should be 1"),
        ({"rules": [{"id": "r", "effect": "deny", "approvers": ["alice"]}]}, "only makes sense on an allow rule"),
        ({"scopes": [{"toolset": "slack"}, {"toolset": "slack"}]}, "more than one [[scopes]] entry"),
        ({"guardrails": {"mode": "loud"}}, "guardrails.mode"),
    ],
)
def test_an_invalid_policy_names_the_field_and_the_problem(data: dict, message: str) -> None:
    with pytest.raises(PolicyError) as e:
        parse_policy(data, "p.toml")
    assert message in str(e.value) and "invalid policy p.toml" in str(e.value)


def test_a_missing_or_malformed_policy_file_fails_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy file not found"):
        load_policy(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("rules = [")
    with pytest.raises(PolicyError, match=r"bad\.toml: not valid TOML"):
        load_policy(bad)


def test_scope_for_a_write_toolset_falls_back_to_its_read_toolset() -> None:
    p = parse_policy({"scopes": [{"toolset": "slack", "channels": ["#inc-*"]}]})
    assert p.scope_for("slack_write") is p.scope_for("slack")
    assert p.scope_for("drive") is None
