"""The sandbox's PromQL/LogQL subset, and the pure helpers the tools use: table tests."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

import pytest

from servers.grafana import fake_promql as pq
from servers.grafana.models import instance_state, parse_dt, prom_float
from servers.grafana.tools import _nice_step, _pattern_text, stream_selectors


class Static:
    """A source of fixed series: a counter rising 60 per minute (1/s) and a gauge, sampled each minute."""

    def __init__(self) -> None:
        self.series = [
            pq.Series((("__name__", "req_total"), ("svc", "a"), ("v", "1")), [i * 60.0 for i in range(11)],
                      [i * 60.0 for i in range(11)]),
            pq.Series((("__name__", "req_total"), ("svc", "b"), ("v", "1")), [i * 60.0 for i in range(11)],
                      [i * 120.0 for i in range(11)]),
            pq.Series((("__name__", "err_total"), ("svc", "a"), ("v", "1")), [i * 60.0 for i in range(11)],
                      [i * 6.0 for i in range(11)]),
            pq.Series((("__name__", "temp"), ("svc", "a")), [0.0, 300.0], [20.0, 30.0]),
        ]

    def select(self, selector: pq.Selector, start: float, end: float) -> list[pq.Series]:
        return [s for s in self.series
                if all(m.matches(dict(s.labels).get(m.name, "")) for m in selector.matchers)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('rate(req_total{svc="a"}[5m])', {(("svc", "a"), ("v", "1")): 1.0}),
        ('increase(req_total{svc="b"}[5m])', {(("svc", "b"), ("v", "1")): 600.0}),
        ("sum(rate(req_total[5m]))", {(): 3.0}),
        ("sum by (svc) (rate(req_total[5m]))", {(("svc", "a"),): 1.0, (("svc", "b"),): 2.0}),
        ("sum without (v) (rate(req_total[5m]))", {(("svc", "a"),): 1.0, (("svc", "b"),): 2.0}),
        ('sum(rate(err_total[5m])) / sum(rate(req_total{svc="a"}[5m]))', {(): pytest.approx(0.1)}),
        ("rate(req_total[5m]) * 60", {(("svc", "a"), ("v", "1")): 60.0, (("svc", "b"), ("v", "1")): 120.0}),
        ("max_over_time(temp[10m])", {(("svc", "a"),): 30.0}),
        ("count(req_total)", {(): 2.0}),
        ("2 * 3", 6.0),
    ],
)
def test_the_fake_engine_evaluates_the_story_subset_like_prometheus(query: str, expected: object) -> None:
    assert pq.Evaluator(Static(), 600, 600).eval(pq.parse(query), 600.0) == expected


def test_instant_selectors_look_back_five_minutes_and_no_further() -> None:
    ev = pq.Evaluator(Static(), 0, 1000)
    assert ev.eval(pq.parse("temp"), 599.0) == {(("__name__", "temp"), ("svc", "a")): 30.0}
    assert ev.eval(pq.parse("temp"), 601.0) == {}


def test_division_by_zero_gives_nan_or_inf_as_prometheus_does() -> None:
    assert math.isnan(pq._arith("/", 0.0, 0.0)) and pq._arith("/", 1.0, 0.0) == math.inf
    assert [pq.fmt_value(v) for v in (math.nan, math.inf, -math.inf, 2.0, 0.5)] == ["NaN", "+Inf", "-Inf", "2", "0.5"]


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("sum(rate(x[5m])", "expected ')'"),
        ("{}", "at least one non-empty matcher"),
        ('histogram_quantile(0.9, rate(x[5m]))', "unsupported function"),
        ("rate(x)", "expected a range vector"),
        ("x[5m]", "range vector cannot be the result"),
        ('x{a=b}', "expected a quoted string"),
        ("x[5q]", "unexpected"),
    ],
)
def test_unsupported_or_malformed_queries_are_parse_errors(query: str, error: str) -> None:
    with pytest.raises(pq.PromQLError, match=re.escape(error)):
        pq.Evaluator(Static(), 0, 600).eval(pq.parse(query), 600.0)


def test_logql_selectors_carry_line_filters_and_ranges() -> None:
    node = pq.parse('count_over_time({service="checkout"} |= "timeout" != "retry" [5m])', logql=True)
    assert isinstance(node, pq.Call) and node.arg.range_s == 300
    assert node.arg.pipeline == (("|=", "timeout"), ("!=", "retry"))


@pytest.mark.parametrize(
    ("query", "selectors"),
    [
        ('{service="checkout"}', ['{service="checkout"}']),
        ('{service="checkout", level=~"error|warn"} |= "x"', ['{service="checkout", level=~"error|warn"}']),
        ('sum(count_over_time({a="1"}[5m])) / sum(count_over_time({a="1"} |= "e" [5m]))', ['{a="1"}']),
        ('{a="}"}', ['{a="}"}']),
        ("service=checkout", []),
    ],
)
def test_stream_selectors_are_what_index_stats_is_asked_about(query: str, selectors: list[str]) -> None:
    assert stream_selectors(query) == selectors


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-22T09:14:03Z", datetime(2026, 11, 22, 9, 14, 3, tzinfo=UTC)),
        ("2026-11-22T09:14:03.123456789+00:00", datetime(2026, 11, 22, 9, 14, 3, 123456, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        (1795000000000, datetime.fromtimestamp(1795000000, UTC)),
        (1795000000000000000, datetime.fromtimestamp(1795000000, UTC)),
        ("", None),
        (None, None),
    ],
)
def test_times_parse_from_iso_and_epochs_and_go_zero_time_is_none(value: object, expected: object) -> None:
    assert parse_dt(value) == expected


@pytest.mark.parametrize(("state", "word"), [("Alerting", "firing"), ("Alerting (Error)", "firing"),
                                             ("Pending", "pending"), ("Normal (MissingSeries)", "normal")])
def test_instance_states_read_as_rule_states(state: str, word: str) -> None:
    assert instance_state(state) == word


@pytest.mark.parametrize(("seconds", "step"), [(1, 15), (30, 30), (31, 60), (3000, 3600), (200000, 259200)])
def test_steps_are_rounded_up_to_readable_ones(seconds: float, step: float) -> None:
    assert _nice_step(seconds) == step


def test_prometheus_values_are_strings_including_special_floats() -> None:
    assert prom_float("1.5") == 1.5 and prom_float("+Inf") == math.inf and math.isnan(prom_float("NaN"))
    assert math.isnan(prom_float(None))


def test_patterns_ignore_the_leading_timestamp_and_read_the_logfmt_message() -> None:
    line = 'ts=2026-11-22T09:14:03.123Z level=error msg="payment timeout after 3000ms" order=1'
    assert _pattern_text(line) == "level=error msg=payment timeout after 3000ms order=1"
