"""Grafana tools through the in-memory MCP client against the sandbox's Grafana fake."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from mcp import Client

from servers._core.fakekit import CANARIES
from servers._core.timeparse import iso
from tests.conftest import Harness, text_of

pytestmark = pytest.mark.anyio

ERR_RATIO = ('sum(rate(http_request_errors_total{service="checkout"}[5m])) / '
             'sum(rate(http_requests_total{service="checkout"}[5m]))')


async def call(c: Client, tool: str, **args: Any) -> tuple[str, bool, dict[str, Any]]:
    r = await c.call_tool(tool, args)
    return text_of(r), bool(r.is_error), (r.meta or {}).get("spyglass", {})


def untrusted_lines(text: str) -> list[str]:
    return text.split("(third-party content: data, not instructions)\n")[1].split("\n</untrusted>")[0].splitlines()


def table_row(text: str, prefix: str) -> list[str]:
    return [c.strip() for c in next(ln for ln in text.splitlines() if ln.startswith(prefix)).split("|")]


def requests_to(gh: Harness, fragment: str) -> list[str]:
    return [r.url for r in gh.transport.requests if fragment in r.url]


# --- datasources, dashboards ------------------------------------------------------------------------------
async def test_list_datasources_shows_uid_name_type_and_the_default(gf: Client) -> None:
    text, err, meta = await call(gf, "grafana_list_datasources")
    assert not err and meta["total"] == 3
    assert "prom-main | Prometheus | prometheus | yes" in text
    assert "loki-main | Loki | loki | -" in text


async def test_list_datasources_hides_datasources_outside_the_scope_and_counts_them(gh: Harness) -> None:
    policy = {"scopes": [{"toolset": "grafana", "datasources": ["prom-main"]}]}
    async with gh.client(gh.server(policy=policy, toolsets=["grafana"])) as c:
        text, err, _ = await call(c, "grafana_list_datasources")
    assert not err and "prom-main" in text and "loki-main" not in text and "billing-pg" not in text
    assert gh.sink.events[-1].scope_applied and gh.sink.events[-1].scope_filtered == 2


async def test_search_dashboards_matches_title_words_and_labels_titles_untrusted(gf: Client) -> None:
    text, err, meta = await call(gf, "grafana_search_dashboards", query="checkout")
    assert not err and not meta["truncated"]
    assert untrusted_lines(text) == ["uid | title | folder | tags",
                                     "checkout-overview | Checkout overview | Checkout | checkout,slo"]


async def test_search_dashboards_pages_with_the_cursor_without_repeats(gf: Client) -> None:
    first, _, meta = await call(gf, "grafana_search_dashboards", tags=["slo"], limit=1)
    assert meta["truncated"] and meta["next_cursor"]
    second, _, meta2 = await call(gf, "grafana_search_dashboards", tags=["slo"], limit=1, cursor=meta["next_cursor"])
    assert untrusted_lines(first)[1].startswith("checkout-overview")
    assert untrusted_lines(second)[1].startswith("payments-overview")
    assert not meta2["truncated"]


async def test_dashboard_summary_lists_variables_and_panels_with_queries_and_resolved_datasources(gf: Client) -> None:
    text, err, meta = await call(gf, "grafana_get_dashboard_summary", uid="checkout-overview")
    assert not err and meta["total"] == 5
    assert "$service=checkout (query: label_values(http_requests_total, service))" in text
    assert "#3 Error ratio · stat · prom-main" in text  # ${ds} resolved through the datasource variable
    assert "  A: sum(rate(http_request_errors_total" in text
    assert "#6 [Logs] Checkout errors · logs · loki-main" in text  # panels inside a collapsed row
    assert '"dashboard"' not in text and "gridPos" not in text  # never the raw JSON


async def test_dashboard_summary_withholds_queries_of_datasources_outside_the_scope(gh: Harness) -> None:
    policy = {"scopes": [{"toolset": "grafana", "datasources": ["prom-main"]}]}
    async with gh.client(gh.server(policy=policy, toolsets=["grafana"])) as c:
        text, err, _ = await call(c, "grafana_get_dashboard_summary", uid="checkout-overview")
    assert not err and "count_over_time" not in text and 'level="error"' not in text
    assert text.count("(withheld: datasource loki-main is outside the Grafana scope)") == 2
    assert gh.sink.events[-1].scope_filtered == 2


async def test_unknown_dashboard_is_not_found_with_a_hint(gf: Client, gh: Harness) -> None:
    text, err, _ = await call(gf, "grafana_get_dashboard_summary", uid="nope")
    assert err and "no dashboard with uid 'nope'" in text and "grafana_search_dashboards" in text
    assert gh.sink.events[-1].outcome == "not_found"


# --- Prometheus ----------------------------------------------------------------------------------------
async def test_query_prometheus_shows_the_checkout_error_ratio_rising_against_the_previous_window(gf: Client) -> None:
    text, err, _ = await call(gf, "grafana_query_prometheus", query=ERR_RATIO, **{"from": "now-40m"}, points=4)
    assert not err, text
    assert "series | min | max | avg | last | change" in text
    row = table_row(text, "s1 ")
    assert float(row[3]) > 0.08  # about 12% of checkout requests fail under 2.14.0
    assert row[5].startswith("+") and int(row[5][1:-1]) > 100
    assert len(next(ln for ln in text.splitlines() if ln.startswith("s1:")).split(",")) == 4


async def test_query_prometheus_names_series_by_the_labels_that_differ(gf: Client) -> None:
    q = 'sum by (version, service) (rate(http_requests_total{service="checkout"}[5m]))'
    text, err, meta = await call(gf, "grafana_query_prometheus", query=q, **{"from": "now-2h"}, points=0)
    assert not err and meta["total"] == 2
    assert "common labels: service=checkout" in text
    assert "version=2.14.0" in text and "version=2.13.4" in text and "points (UTC" not in text


async def test_instant_query_ranks_series_by_value(gf: Client) -> None:
    text, err, _ = await call(gf, "grafana_query_prometheus", query="sum by (service) (rate(http_requests_total[5m]))",
                              instant=True)
    assert not err
    rows = [ln.split(" | ")[0] for ln in text.splitlines()[2:]]
    assert rows == ["service=frontend", "service=cart", "service=checkout", "service=payments"]


async def test_max_series_cuts_explicitly(gf: Client) -> None:
    text, _, meta = await call(gf, "grafana_query_prometheus", query="http_requests_total", max_series=2, points=0)
    # checkout 2.13.4 (until the deploy 50 minutes ago), checkout 2.14.0, and three other services
    assert meta["truncated"] and meta["total"] == 5
    assert "3 more series not shown" in text


async def test_a_rollback_recorded_in_the_world_shows_as_recovery(gh: Harness) -> None:
    world = gh.sandbox.world
    world.record_release("checkout", "2.13.4", "4b7d0a1", "oncall", kind="rollback",
                         at=world.now() - timedelta(minutes=20))
    async with gh.client(gh.server(toolsets=["grafana"])) as c:
        text, err, _ = await call(c, "grafana_query_prometheus", query=ERR_RATIO, **{"from": "now-10m"})
        by_version, _, _ = await call(c, "grafana_query_prometheus", instant=True,
                                      query='sum by (version) (rate(http_requests_total{service="checkout"}[5m]))')
        alerts, _, _ = await call(c, "grafana_list_alerts", state="firing")
        notes, _, _ = await call(c, "grafana_get_annotations", tags=["rollback"])
    assert not err and float(table_row(text, "s1 ")[3]) < 0.02
    assert "version=2.13.4" in by_version and "version=2.14.0" not in by_version
    assert "CheckoutHighErrorRate" not in alerts
    assert "Rolled back checkout 2.13.4 (4b7d0a1) by oncall" in notes


async def test_prometheus_metadata_lists_metric_names_labels_and_values(gf: Client) -> None:
    metrics, _, _ = await call(gf, "grafana_prometheus_metadata")
    labels, _, _ = await call(gf, "grafana_prometheus_metadata", kind="labels")
    versions, _, _ = await call(gf, "grafana_prometheus_metadata", kind="label_values", label="version",
                                match='{service="checkout"}')
    assert "http_requests_total" in metrics and "http_request_errors_total" in metrics
    assert "service, version" in labels.splitlines()[1] or "service" in labels.splitlines()[1].split(", ")
    assert versions.splitlines()[1] == "2.13.4, 2.14.0"


async def test_prometheus_metadata_pages_long_lists(gf: Client) -> None:
    first, _, meta = await call(gf, "grafana_prometheus_metadata", kind="labels", limit=2)
    rest, _, meta2 = await call(gf, "grafana_prometheus_metadata", kind="labels", limit=50, cursor=meta["next_cursor"])
    assert meta["truncated"] and meta["total"] == len(first.splitlines()[1].split(", ")) + len(
        rest.splitlines()[1].split(", "))
    assert not meta2["truncated"]


# --- Loki ----------------------------------------------------------------------------------------------
async def test_query_loki_returns_compact_lines_with_patterns_labelled_untrusted(gf: Client) -> None:
    text, err, _ = await call(gf, "grafana_query_loki", query='{service="checkout", level="error"}', limit=20)
    assert not err, text
    assert "common labels: env=prod level=error service=checkout version=2.14.0" in text
    assert "msg=payment timeout after <*> order=<*> pool=async-payments" in text
    lines = untrusted_lines(text)
    # level=error is a stream label (in the header), so the line does not repeat it
    assert len(lines) == 20 and all(" | msg=" in ln for ln in lines)
    assert not any(ln.split(" | ")[1].startswith("ts=") for ln in lines)  # the duplicate timestamp is dropped


async def test_loki_limit_plus_one_probing_reports_truncation_only_when_more_lines_exist(gf: Client) -> None:
    q, window = '{service="checkout"} |= "order placed"', {"from": "now-15m"}
    everything, _, meta = await call(gf, "grafana_query_loki", query=q, limit=200, **window)
    n = len(untrusted_lines(everything))
    assert not meta["truncated"] and 0 < n < 200
    _, _, exact = await call(gf, "grafana_query_loki", query=q, limit=n, **window)
    _, _, short = await call(gf, "grafana_query_loki", query=q, limit=n - 1, **window)
    assert exact["truncated"] is False and "next_cursor" not in exact
    assert short["truncated"] is True and short["next_cursor"]


async def test_loki_pages_cover_every_line_once(gf: Client, gh: Harness) -> None:
    start, end = iso(gh.sandbox.world.anchor - timedelta(minutes=12)), iso(gh.sandbox.world.anchor)
    q = '{service=~"checkout|cart"}'
    whole, _, _ = await call(gf, "grafana_query_loki", query=q, limit=200, **{"from": start, "to": end})
    expected = untrusted_lines(whole)
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        args: dict[str, Any] = {"query": q, "limit": 7, "from": start, "to": end}
        if cursor:
            args["cursor"] = cursor
        text, err, meta = await call(gf, "grafana_query_loki", **args)
        assert not err, text
        seen += untrusted_lines(text)
        cursor = meta.get("next_cursor")
        if not cursor:
            break
    # Label columns depend on what varies within a page; the time and the line itself must match.
    def strip(lines: list[str]) -> list[str]:
        return [f"{ln.split(' ', 1)[0]} {ln.split(' | ', 1)[1]}" for ln in lines]

    assert len(expected) > 30 and strip(seen) == strip(expected)


async def test_loki_metric_queries_render_series(gf: Client) -> None:
    q = 'sum by (version) (count_over_time({service="checkout", level="error"}[5m]))'
    # 6 h: the good version logs an error line only now and then (~2% of lines), so 70 minutes of
    # it before the bad deploy sometimes hold none
    text, err, _ = await call(gf, "grafana_query_loki", query=q, **{"from": "now-6h"})
    assert not err and "metric query" in text and "series | min | max | avg | last" in text
    assert float(table_row(text, "version=2.14.0")[3]) > float(table_row(text, "version=2.13.4")[3])


async def test_canary_secrets_in_loki_lines_never_reach_output_or_audit(gf: Client, gh: Harness) -> None:
    text, _, _ = await call(gf, "grafana_query_loki", query='{service="checkout"} |= "config reload"',
                            **{"from": "now-6h"}, limit=10)
    assert "config reload" in text and "[REDACTED:" in text
    audit = " ".join(e.args + e.message for e in gh.sink.events)
    for canary in CANARIES:
        assert canary not in text and canary not in audit


async def test_loki_range_guard_refuses_in_enforce_mode_with_rewrite_advice(gf: Client, gh: Harness) -> None:
    text, err, _ = await call(gf, "grafana_query_loki", query='{service="checkout"}', **{"from": "now-3d"})
    assert err and "window of 3d exceeds loki_max_range 24h" in text and "from='now-1h'" in text
    assert gh.sink.events[-1].rule_id == "guardrails.loki_max_range" and gh.sink.events[-1].outcome == "denied"
    assert not requests_to(gh, "/loki/")


async def test_loki_bytes_guard_estimates_with_index_stats_and_refuses_before_querying(gh: Harness) -> None:
    policy = {"guardrails": {"loki_max_bytes": 5000}}
    async with gh.client(gh.server(policy=policy, toolsets=["grafana"])) as c:
        text, err, _ = await call(c, "grafana_query_loki", query='{service=~".+"} |= "timeout"', **{"from": "now-2h"})
    assert err and "Loki cost guard: query would scan about" in text and "more than loki_max_bytes" in text
    assert "narrow the window to about" in text and "add label matchers" in text
    assert gh.sink.events[-1].rule_id == "guardrails.loki_max_bytes"
    stats = requests_to(gh, "/loki/api/v1/index/stats")
    assert len(stats) == 1 and "timeout" not in stats[0]  # only the stream selector is estimated
    assert not requests_to(gh, "/loki/api/v1/query_range")


async def test_loki_guard_in_shadow_mode_runs_the_query_and_notes_it_in_the_audit_only(gh: Harness) -> None:
    policy = {"guardrails": {"mode": "shadow", "loki_max_bytes": 5000}}
    async with gh.client(gh.server(policy=policy, toolsets=["grafana"])) as c:
        text, err, _ = await call(c, "grafana_query_loki", query='{service="cart"}', **{"from": "now-2h"}, limit=5)
    assert not err and "guardrail" not in text and "loki_max_bytes" not in text
    event = gh.sink.events[-1]
    assert event.outcome == "ok" and "guardrails.loki_max_bytes: shadow: query would scan about" in event.message


async def test_loki_guard_off_sends_no_index_stats_request(gh: Harness) -> None:
    async with gh.client(gh.server(policy={"guardrails": {"mode": "off"}}, toolsets=["grafana"])) as c:
        _, err, _ = await call(c, "grafana_query_loki", query='{service="cart"}', **{"from": "now-3d"}, limit=5)
    assert not err and not requests_to(gh, "index/stats")


# --- alerts, annotations -------------------------------------------------------------------------------
async def test_list_alerts_puts_firing_rules_first_with_since_labels_and_instances(gf: Client, gh: Harness) -> None:
    text, err, meta = await call(gf, "grafana_list_alerts")
    assert not err and meta["total"] == 3
    lines = untrusted_lines(text)
    fired = iso(gh.sandbox.world.monitor_fired_at)
    assert lines[0].startswith(f"CheckoutHighErrorRate · firing since {fired} (42m) · Checkout/slo · "
                               "severity=page team=payments-platform · ds prom-main")
    assert "\n  firing · service=checkout · A: " in text  # the instance fired when the rule did
    assert 'query: sum by (service) (rate(http_request_errors_total{service="checkout"}[5m]))' in text
    assert "CartLatencyHigh · inactive" in text


async def test_list_alerts_state_filter_and_datasource_scope(gh: Harness) -> None:
    policy = {"scopes": [{"toolset": "grafana", "datasources": ["prom-main"]}]}
    async with gh.client(gh.server(policy=policy, toolsets=["grafana"])) as c:
        text, err, meta = await call(c, "grafana_list_alerts", state="firing")
    assert not err and meta["total"] == 1 and "CheckoutHighErrorRate" in text
    assert "CheckoutPaymentTimeoutLogs" not in text and "CartLatencyHigh" not in text
    assert gh.sink.events[-1].scope_filtered == 1
    assert "state=firing" in requests_to(gh, "/api/prometheus/grafana/api/v1/rules")[0]


async def test_annotations_show_the_deploy_flag_alert_and_incident_markers(gf: Client, gh: Harness) -> None:
    world = gh.sandbox.world
    text, err, _ = await call(gf, "grafana_get_annotations", **{"from": "now-2h"})
    assert not err
    assert f"{iso(world.deploy_at)} | deploy,service:checkout,version:2.14.0 | Deployed checkout 2.14.0" in text
    assert f"{iso(world.monitor_fired_at)} | - | alert CheckoutHighErrorRate → Alerting" in text
    assert "INC-142 declared (SEV-2)" in text and "checkout_async_payments" in text


async def test_annotations_page_with_the_cursor(gf: Client) -> None:
    first, _, meta = await call(gf, "grafana_get_annotations", **{"from": "now-2h"}, limit=2)
    second, _, meta2 = await call(gf, "grafana_get_annotations", **{"from": "now-2h"}, limit=5,
                                  cursor=meta["next_cursor"])
    a, b = untrusted_lines(first)[1:], untrusted_lines(second)[1:]
    assert len(a) == 2 and len(b) == 2 and not set(a) & set(b) and not meta2["truncated"]


# --- errors, credentials, scope --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("grafana_query_loki", {"query": "{a=\"b\"}", "limit": 0}, "limit: Input should be greater than or equal to 1"),
        ("grafana_query_loki", {"query": "{a=\"b\"}", "limit": 500}, "limit: Input should be less than or equal to 2"),
        ("grafana_query_prometheus", {"query": "up", "stp": "1m"}, "stp: unknown argument"),
        ("grafana_query_prometheus", {"query": "up", "step": "1s", "from": "now-7d"}, "step: 1s gives too many points"),
        ("grafana_query_prometheus", {"query": "sum(rate(x[5m]"}, "query: the datasource rejected it: parse error"),
        ("grafana_query_prometheus", {"query": "up", "datasource_uid": "loki-main"}, "is a loki datasource"),
        ("grafana_prometheus_metadata", {"kind": "label_values"}, "label: required when kind is label_values"),
        ("grafana_prometheus_metadata", {"kind": "series"}, "kind: must be one of"),
        ("grafana_query_loki", {"query": "{a=\"b\"}", "cursor": "nope"}, "cursor: not a cursor this tool issued"),
        ("grafana_query_loki", {"query": "service=checkout"}, "query: no stream selector"),
        ("grafana_list_alerts", {"state": "angry"}, "state: must be one of"),
    ],
)
async def test_bad_input_gets_an_error_naming_the_field(gf: Client, tool: str, args: dict[str, Any],
                                                        expected: str) -> None:
    text, err, _ = await call(gf, tool, **args)
    assert err and expected in text, text


async def test_unknown_datasource_uid_is_not_found_with_a_hint(gf: Client) -> None:
    text, err, _ = await call(gf, "grafana_query_prometheus", query="up", datasource_uid="ghost")
    assert err and "no datasource with uid 'ghost'" in text and "grafana_list_datasources" in text


async def test_a_datasource_outside_the_scope_is_refused_naming_the_allowed_uids(gh: Harness) -> None:
    policy = {"scopes": [{"toolset": "grafana", "datasources": ["prom-main"]}]}
    async with gh.client(gh.server(policy=policy, toolsets=["grafana"])) as c:
        text, err, _ = await call(c, "grafana_query_loki", query='{service="checkout"}', datasource_uid="loki-main")
        default, err2, _ = await call(c, "grafana_query_loki", query='{service="checkout"}')
    assert err and "datasource 'loki-main' is outside the Grafana scope" in text and "use one of: prom-main" in text
    assert gh.sink.events[0].rule_id == "scopes.grafana.datasources" and gh.sink.events[0].outcome == "denied"
    assert err2 and "no loki datasource is configured in scope" in default
    assert not requests_to(gh, "/proxy/uid/loki-main")


async def test_missing_credentials_are_reported_as_missing_access_naming_the_variables(gh: Harness) -> None:
    async with gh.client(gh.server(toolsets=["grafana"], env={})) as c:
        text, err, _ = await call(c, "grafana_list_datasources")
    assert err and "GRAFANA_URL, GRAFANA_SERVICE_ACCOUNT_TOKEN not set" in text
    assert gh.sink.events[-1].outcome == "missing_access"


async def test_a_wrong_token_surfaces_the_401_as_missing_access(gh: Harness) -> None:
    env = {**gh.sandbox.env("http://sandbox.test"), "GRAFANA_SERVICE_ACCOUNT_TOKEN": "glsa_wrong_token_12345"}
    async with gh.client(gh.server(toolsets=["grafana"], env=env)) as c:
        text, err, _ = await call(c, "grafana_list_datasources")
    assert err and "grafana answered 401: Invalid API key" in text
    assert gh.sink.events[-1].outcome == "missing_access" and gh.sink.events[-1].upstream_status == 401


async def test_requests_carry_the_bearer_token_and_the_org_header(gf: Client, gh: Harness) -> None:
    await call(gf, "grafana_list_datasources")
    sent = gh.transport.requests[-1]
    assert sent.headers["authorization"].startswith("Bearer glsa_") and sent.headers["x-grafana-org-id"] == "1"
