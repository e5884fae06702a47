"""Trace trees, self time, critical path and folding; span and stack parsing. Pure code, table tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from servers.datadog import traces
from servers.datadog.models import Span, parse_span, top_frames

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def span(sid: str, parent: str, start_ms: float, dur_ms: float, resource: str = "", *, service: str = "svc",
         error: str = "") -> Span:
    return Span(trace_id="1", span_id=sid, parent_id=parent, service=service, resource=resource or f"op{sid}",
                start=T0 + timedelta(milliseconds=start_ms), duration_ms=dur_ms,
                status="error" if error else "ok", error_type=error, error_message="boom" if error else "",
                error_stack="", version="1")


def tree(*spans: Span) -> list[traces.Node]:
    return traces.build_tree(list(spans))


def by_id(roots: list[traces.Node]) -> dict[str, traces.Node]:
    return {n.span.span_id: n for _d, n in traces.walk(roots)}


@pytest.mark.parametrize(
    ("children", "expected_self"),
    [
        ([], 100.0),  # a leaf is all self time
        ([(10, 30)], 70.0),  # one child
        ([(10, 30), (50, 20)], 50.0),  # sequential children
        ([(10, 50), (20, 50)], 40.0),  # overlapping children count once
        ([(90, 50)], 90.0),  # a child running past its parent is clipped to the parent
    ],
)
def test_self_time_is_duration_minus_the_union_of_children(children: list[tuple[int, int]],
                                                           expected_self: float) -> None:
    kids = [span(f"c{i}", "r", s, d) for i, (s, d) in enumerate(children)]
    nodes = by_id(tree(span("r", "0", 0, 100), *kids))
    assert nodes["r"].self_ms == pytest.approx(expected_self)


def test_critical_path_takes_the_last_finishing_child_then_works_back_from_its_start() -> None:
    # r: [0,100]; a [5,25] and b [30,95] sequential; c [10,20] runs in parallel with a, ends earlier.
    nodes = by_id(tree(span("r", "0", 0, 100), span("a", "r", 5, 20), span("b", "r", 30, 65),
                       span("c", "r", 10, 10), span("b1", "b", 40, 50)))
    assert {k for k, n in nodes.items() if n.critical} == {"r", "a", "b", "b1"}


def test_critical_path_lists_a_short_chain_and_summarises_a_long_one() -> None:
    short = tree(span("r", "0", 0, 100, "GET /"), span("a", "r", 10, 80, "db"))
    assert traces.critical_path(short) == "svc GET / 20ms self → svc db 80ms self"
    many = [span(f"q{i}", "r", i * 10, 9, "db") for i in range(10)]
    long = tree(span("r", "0", 0, 100, "job"), *many)
    assert traces.critical_path(long).startswith("11 spans; most self time: 10× svc db 90ms")


def test_identical_sibling_subtrees_fold_into_one_line_but_errors_never_fold() -> None:
    kids = [span(f"k{i}", "r", i * 10, 8, "GET /item") for i in range(5)]
    bad = span("bad", "r", 60, 8, "GET /item", error="Timeout")
    lines = traces.render(tree(span("r", "0", 0, 100, "job"), *kids, bad))
    assert lines[0] == "*svc job 100ms (self 52ms)"
    assert lines[1].startswith("  *5× svc GET /item 40ms total, max 8.0ms")
    assert lines[2] == "  *svc GET /item 8.0ms !Timeout: boom"
    assert len(lines) == 3


def test_two_identical_siblings_stay_separate_lines() -> None:
    lines = traces.render(tree(span("r", "0", 0, 100), span("a", "r", 0, 5, "x"), span("b", "r", 10, 5, "x")))
    assert len(lines) == 3


def test_spans_whose_parent_is_missing_become_extra_roots_largest_first() -> None:
    roots = tree(span("a", "zzz", 0, 10), span("b", "yyy", 0, 50))
    assert [r.span.span_id for r in roots] == ["b", "a"]


def test_a_very_deep_trace_renders_without_recursion_and_caps_the_indent() -> None:
    chain = [span("s0", "0", 0, 5000)] + [span(f"s{i}", f"s{i - 1}", i, 5000 - 2 * i) for i in range(1, 2000)]
    lines = traces.render(tree(*chain))
    assert len(lines) == 2000 and lines[-1].lstrip().startswith("[d1999] ")


@pytest.mark.parametrize(
    ("stack", "frames"),
    [
        ('Traceback (most recent call last):\n  File "/app/a/b.py", line 3, in outer\n    x()\n'
         '  File "/app/a/c.py", line 9, in inner\n    raise E()\nE: boom', ["a/c.py:9 inner", "a/b.py:3 outer"]),
        ("java.lang.IllegalStateException: x\n\tat com.shop.Pool.acquire(Pool.java:87)\n"
         "\tat com.shop.Client.charge(Client.java:41)", ["com.shop.Pool.acquire(Pool.java:87)",
                                                        "com.shop.Client.charge(Client.java:41)"]),
        ("goroutine 1 [running]:\nmain.main()", ["goroutine 1 [running]:", "main.main()"]),
        ("", []),
    ],
)
def test_top_frames_are_innermost_first_for_python_and_at_style_stacks(stack: str, frames: list[str]) -> None:
    assert top_frames(stack) == frames


@pytest.mark.parametrize(
    ("attributes", "duration_ms", "status"),
    [
        ({"custom": {"duration": 2_500_000, "status": "ok"}}, 2.5, "ok"),
        ({"custom": {"error": {"type": "E", "message": "m"}}}, 0.0, "error"),  # no status: an error says so
        ({"start_timestamp": "2026-01-01T00:00:00Z", "end_timestamp": "2026-01-01T00:00:01.5Z"}, 1500.0, "ok"),
    ],
)
def test_parse_span_reads_duration_and_status_from_what_the_api_sends(attributes: dict, duration_ms: float,
                                                                     status: str) -> None:
    s = parse_span({"id": "9", "attributes": {"service": "s", "resource_name": "r", **attributes}})
    assert (s.duration_ms, s.status, s.span_id) == (pytest.approx(duration_ms), status, "9")
