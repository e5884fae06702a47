"""Pure parsing of Statsig responses: audit-log times, change summaries, conditions, entity kinds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from servers.statsig.client import tags_in_scope
from servers.statsig.models import audit_time, condition_text, entity_kind, parse_entity, summarize_changes


@pytest.mark.parametrize(
    ("date", "time", "expected"),
    [
        ("Mon Sep 26 2022", "23:46:14 GMT+0000 (Coordinated Universal Time)",
         datetime(2022, 9, 26, 23, 46, 14, tzinfo=UTC)),
        ("Tue Sep 27 2022", "01:46:14 GMT+0200 (Central European Summer Time)",
         datetime(2022, 9, 26, 23, 46, 14, tzinfo=UTC)),
        ("Mon Sep 26 2022", "18:46:14 GMT-0500", datetime(2022, 9, 26, 23, 46, 14, tzinfo=UTC)),
        ("Mon Sep 26 2022", "23:46:14", datetime(2022, 9, 26, 23, 46, 14, tzinfo=UTC)),
        ("26/09/2022", "23:46:14 GMT+0000", None),
        ("Mon Sep 26 2022", "late", None),
    ],
)
def test_audit_times_parse_statsigs_date_and_time_strings_to_utc(date: str, time: str,
                                                                 expected: datetime | None) -> None:
    assert audit_time(date, time) == expected


def _rule(pct: float, envs: list[str] | None = None, rid: str = "r1", name: str = "Public") -> dict[str, Any]:
    r: dict[str, Any] = {"id": rid, "groupName": name, "percentagePass": pct}
    if envs is not None:
        r["enabledEnvironments"] = envs
    return r


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"rules": {"old": [_rule(10)], "new": [_rule(50)]}}, "rule 'Public' pass 10% -> 50%"),
        ({"rules": {"old": [], "new": [_rule(100)]}}, "rule 'Public' added at 100%"),
        ({"rules": {"old": [_rule(5)], "new": []}}, "rule 'Public' removed"),
        ({"rules": {"old": [_rule(5, ["staging"])], "new": [_rule(5, ["staging", "production"])]}},
         "rule 'Public' environments -> staging, production"),
        ({"defaultValue": {"old": 1, "new": 2}, "description": {}}, "changed defaultValue, description"),
        ({}, ""),
        (None, ""),
    ],
)
def test_change_summaries_name_the_rule_and_the_percentages(changes: Any, expected: str) -> None:
    assert summarize_changes(changes) == expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"type": "public"}, "everyone"),
        ({"type": "country", "operator": "any", "targetValue": ["US", "CA"]}, "country any US, CA"),
        ({"type": "custom_field", "field": "plan", "operator": "none", "targetValue": "free"},
         "custom_field plan none free"),
        ({"type": "passes_gate", "targetValue": ["employees"]}, "passes_gate employees"),
        ({"type": "user_id", "operator": "any", "targetValue": list("abcdefg")}, "user_id any a, b, c, d, e +2"),
    ],
)
def test_conditions_render_as_one_readable_line(condition: dict[str, Any], expected: str) -> None:
    assert condition_text(condition) == expected


@pytest.mark.parametrize(
    ("action", "kind"),
    [("gate_update", "gate"), ("dynamic_config_create", "dynamic_config"), ("experiment_start", "experiment"),
     ("segment_create", "segment"), ("config_conditions_update", "config"), ("company_update", "other")],
)
def test_entity_kinds_come_from_the_action_type(action: str, kind: str) -> None:
    assert entity_kind(action) == kind


@pytest.mark.parametrize(
    ("tags", "scope", "visible"),
    [(["checkout"], None, True), ([], None, True), (["checkout"], ["checkout"], True),
     (["payments", "x"], ["checkout", "pay*"], True), (["security"], ["checkout"], False), ([], ["checkout"], False)],
)
def test_tag_scope_admits_items_with_any_listed_tag(tags: list[str], scope: list[str] | None, visible: bool) -> None:
    assert tags_in_scope(tags, scope) is visible


def test_an_entity_parses_without_nulls_from_the_published_example() -> None:
    e = parse_entity("gate", {"id": "a_gate", "name": "A Gate", "description": "description", "lastModifierName": None,
                              "lastModifierEmail": "x@y.z", "lastModifiedTime": 1705439406750,
                              "createdTime": 1705439406615,
                              "creatorName": "CONSOLE API", "tags": [], "isEnabled": True, "status": "In Progress",
                              "rules": [], "owner": None, "type": "PERMANENT"})
    assert (e.modified_by, e.owner, e.creator, e.enabled) == ("x@y.z", "", "CONSOLE API", True)
    assert e.modified_at == datetime(2024, 1, 16, 21, 10, 6, 750000, tzinfo=UTC)
