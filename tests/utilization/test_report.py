"""The pure utilization report: classification, next steps, percentiles, groups, timeline, headroom, runs."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from guards.report import ReportBuilder, classify, hist_bucket, next_step, percentile, weighted_percentile
from tests.utilization.helpers import T0, ev


@pytest.mark.parametrize(
    ("outcome", "rule_id", "status", "empty", "expected"),
    [
        ("ok", "defaults.read", 200, False, None),
        ("ok", "defaults.read", 200, True, ("missing_context", "empty result")),
        ("missing_access", "defaults.read", 403, False, ("missing_access", "HTTP 403")),
        ("missing_access", "defaults.read", 401, False, ("missing_access", "HTTP 401")),
        ("missing_access", "defaults.read", None, False, ("missing_access", "no usable credentials")),
        ("denied", "toolsets.enabled", None, False, ("missing_access", "toolset not enabled")),
        ("denied", "scopes.datadog.indexes", None, False,
         ("missing_access", "outside the read scope (scopes.datadog.indexes)")),
        ("denied", "weekend-freeze", None, False, ("human_gate", "denied by rule weekend-freeze")),
        ("denied", "unknown-tool", None, False, ("invalid_call", "unknown tool")),
        ("awaiting_approval", "prod-deploy", None, False, ("human_gate", "awaiting approval")),
        ("rate_limited", "per-principal", None, False, ("human_gate", "budget per-principal spent")),
        ("rate_limited", "defaults.read", 429, False, ("upstream_failure", "HTTP 429 (upstream rate limit)")),
        ("not_found", "defaults.read", 404, False, ("missing_context", "not found")),
        ("upstream_error", "defaults.read", 502, False, ("upstream_failure", "HTTP 502")),
        ("upstream_error", "defaults.read", None, False, ("upstream_failure", "unreachable")),
        ("timeout", "defaults.read", None, False, ("upstream_failure", "timeout")),
        ("invalid_args", "", None, False, ("invalid_call", "invalid arguments")),
        ("error", "defaults.read", None, False, ("internal_error", "error")),
    ],
)
def test_every_non_success_falls_in_exactly_one_class(outcome, rule_id, status, empty, expected) -> None:
    assert classify(outcome, rule_id, status, empty) == expected


@pytest.mark.parametrize(
    ("cls", "cause", "needle"),
    [
        ("missing_access", "HTTP 403", "42 calls to datadog_search_logs failed with 403 (datadog answered 403: "
                                       "Forbidden): the datadog credential lacks a permission"),
        ("missing_access", "toolset not enabled", "add it to [toolsets] enabled"),
        ("missing_access", "outside the read scope (scopes.datadog.indexes)",
         "outside the read scope (datadog answered 403: Forbidden): list it in the [[scopes]] entry for 'datadog'"),
        ("human_gate", "denied by rule weekend-freeze", "42 calls to datadog_search_logs were denied by rule"),
        ("human_gate", "budget reads-per-hour spent", "hit the policy budget 'reads-per-hour'"),
        ("upstream_failure", "HTTP 429 (upstream rate limit)", "add a Spyglass limit below the vendor's quota"),
        ("missing_context", "empty, scope withheld items", "widen the [[scopes]] entry for 'datadog'"),
        ("invalid_call", "invalid arguments", "the schema or description misleads agents"),
    ],
)
def test_each_cause_comes_with_a_concrete_next_step(cls: str, cause: str, needle: str) -> None:
    step = next_step(cls, cause, "datadog_search_logs", "datadog", "datadog", 42, "datadog answered 403: Forbidden")
    assert needle in step


def test_next_steps_agree_in_number() -> None:
    step = next_step("human_gate", "denied by rule freeze", "deploy_plan", "deploy_write", "argocd", 1, "")
    assert step.startswith("1 call to deploy_plan was denied by rule 'freeze'")


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 0.5, 0.0), ([5.0], 0.95, 5.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
     ([float(i) for i in range(1, 101)], 0.95, 95.0)],
)
def test_percentiles_are_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentiles_over_rolled_up_histograms_land_in_the_right_bucket() -> None:
    hist = Counter({hist_bucket(120.0): 90, hist_bucket(2500.0): 10})
    assert 100 <= weighted_percentile([], hist, 2600.0, 0.5) <= 150
    assert 2000 <= weighted_percentile([], hist, 2600.0, 0.95) <= 3000
    # exact values and histogram counts merge by value
    assert weighted_percentile([1.0, 1.0], Counter({hist_bucket(400.0): 2}), 400.0, 0.5) == 1.0


def build(events, **kw) -> dict:
    b = ReportBuilder(T0, T0 + timedelta(hours=1), **kw)
    for e in events:
        b.add_event(e)
    return b.build()


def test_totals_count_success_only_when_something_useful_came_back() -> None:
    r = build([ev(0), ev(1), ev(2, empty=True), ev(3, outcome="denied", rule_id="freeze")])
    t = r["totals"]
    assert (t["calls"], t["ok"], t["success_rate"]) == (4, 2, 0.5)
    assert t["non_success"] == {"human_gate": 1, "missing_context": 1}
    assert t["tokens_delivered"] == 500 * 3  # the empty ok result delivered its tokens too


def test_groups_by_principal_and_tool_with_latency_percentiles() -> None:
    events = [ev(i, principal="alice", duration_ms=float(10 * (i + 1))) for i in range(10)]
    events += [ev(20, principal="bob", tool="grafana_query_loki", outcome="timeout", duration_ms=60000.0)]
    r = build(events, group_by=("principal", "tool"))
    alice = r["groups"][0]
    assert alice["key"] == {"principal": "alice", "tool": "datadog_search_logs"}
    assert (alice["calls"], alice["p50_ms"], alice["p95_ms"]) == (10, 50.0, 100.0)
    bob = r["groups"][1]
    assert bob["non_success"] == {"upstream_failure": 1} and bob["success_rate"] == 0.0


def test_unknown_group_keys_are_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="principal, client, toolset, tool, run"):
        ReportBuilder(T0, T0 + timedelta(hours=1), group_by=("team",))


def test_top_causes_rank_by_calls_and_keep_the_latest_example() -> None:
    events = [ev(i, outcome="missing_access", upstream_status=403, message=f"datadog answered 403 #{i}")
              for i in range(3)]
    events.append(ev(10, tool="slack_search_messages", outcome="missing_access", upstream_status=403,
                     message="slack answered 403"))
    r = build(events)
    (cls,) = r["classes"]
    assert cls["class"] == "missing_access" and cls["calls"] == 4
    first = cls["causes"][0]
    assert (first["tool"], first["calls"], first["example"]) == ("datadog_search_logs", 3, "datadog answered 403 #2")
    assert first["next_step"].startswith("3 calls to datadog_search_logs failed with 403")


def test_an_empty_result_whose_items_the_scope_withheld_is_told_apart() -> None:
    r = build([ev(0, empty=True, scope_filtered=12), ev(1, empty=True)])
    causes = {c["cause"] for c in r["classes"][0]["causes"]}
    assert causes == {"empty result", "empty, scope withheld items"}


def test_timeline_has_every_bucket_of_the_window_including_empty_ones() -> None:
    r = build([ev(0), ev(30), ev(125, outcome="denied", rule_id="freeze")])
    tl = r["timeline"]
    assert tl["bucket"] == "minute" and len(tl["starts"]) == 60
    assert tl["starts"][0] == "2026-11-20T09:00:00Z"
    assert tl["series"]["ok"][:3] == [2, 0, 0] and tl["series"]["human_gate"][:3] == [0, 0, 1]


def test_headroom_tracks_the_peak_share_of_the_vendor_limit_per_bucket() -> None:
    events = [ev(0, ratelimit_limit=300, ratelimit_remaining=270), ev(10, ratelimit_limit=300, ratelimit_remaining=30),
              ev(70, ratelimit_limit=300, ratelimit_remaining=150)]
    (h,) = build(events)["headroom"]
    assert (h["upstream"], h["limit"], h["min_remaining"], h["max_used_pct"], h["last_used_pct"]) == (
        "datadog", 300, 30, 90.0, 50.0)
    assert h["series"] == [["2026-11-20T09:00:00Z", 90.0], ["2026-11-20T09:01:00Z", 50.0]]


def test_runs_report_active_span_errors_and_time_blocked_by_a_human_gate() -> None:
    events = [
        ev(0, run_id="r1"),
        ev(10, run_id="r1", tool="deploy_apply", outcome="awaiting_approval", rule_id="prod-needs-approval"),
        ev(40, run_id="r1", tool="deploy_apply", outcome="denied", rule_id="freeze"),
        ev(70, run_id="r1", tool="deploy_apply"),  # approved: the agent can act again
        ev(80, run_id="r1", outcome="upstream_error", upstream_status=503),
        ev(5, run_id="r2"),
    ]
    events.sort(key=lambda e: e.ts)
    runs = build(events)["runs"]
    r1 = next(r for r in runs["shown"] if r["run_id"] == "r1")
    assert runs["total"] == 2
    assert (r1["calls"], r1["errors"], r1["gated_calls"], r1["active_s"], r1["blocked_s"]) == (5, 3, 2, 80.0, 60.0)


def test_a_run_still_blocked_at_its_end_counts_until_its_last_call() -> None:
    runs = build([ev(0, outcome="denied", rule_id="freeze"), ev(30, outcome="denied", rule_id="freeze")])["runs"]
    assert runs["shown"][0]["blocked_s"] == 30.0


def test_denial_rules_list_policy_refusals_and_spent_budgets_not_upstream_429s() -> None:
    r = build([ev(0, outcome="denied", rule_id="freeze"), ev(1, outcome="denied", rule_id="freeze"),
               ev(2, outcome="rate_limited", rule_id="reads-per-hour"),
               ev(3, outcome="rate_limited", upstream_status=429)])
    assert [(d["rule_id"], d["calls"]) for d in r["denial_rules"]] == [("freeze", 2), ("reads-per-hour", 1)]


def test_system_notices_are_listed_apart_from_calls() -> None:
    r = build([ev(0), ev(1, principal="spyglass", principal_kind="system", tool="limits.redis", outcome="error",
                         message="shared limits store unreachable")])
    assert r["totals"]["calls"] == 1
    assert r["notices"] == [{"ts": "2026-11-20T09:00:01.000Z", "tool": "limits.redis", "outcome": "error",
                             "message": "shared limits store unreachable"}]


@pytest.mark.parametrize(("hours", "bucket"),
                         [(1, "minute"), (3, "minute"), (24, "hour"), (96, "hour"), (24 * 30, "day")])
def test_the_timeline_bucket_follows_the_window(hours: int, bucket: str) -> None:
    assert ReportBuilder(T0, T0 + timedelta(hours=hours)).bucket == bucket
