"""A trace as a compact tree: total and self time per span, errors flagged, the critical path marked.

Pure functions over :class:`~servers.datadog.models.Span`. Self time is a span's duration minus
the union of its children's intervals (clipped to the span). The critical path follows Jaeger's
rule: from a span's end, walk back through the child that finished last before the cursor, then
the one that finished before that child started, and so on, recursively.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from servers._core.shaping import one_line
from servers.datadog.models import Span

MAX_INDENT = 12
COLLAPSE_RUN = 3  # identical sibling subtrees are folded into one line from this many on


@dataclass
class Node:
    span: Span
    children: list[Node] = field(default_factory=list)
    self_ms: float = 0.0
    critical: bool = False


def build_tree(spans: list[Span]) -> list[Node]:
    """Roots (spans whose parent is absent), children by start time. Duplicate span ids keep the first."""
    nodes: dict[str, Node] = {}
    for s in spans:
        nodes.setdefault(s.span_id, Node(s))
    roots = []
    for n in nodes.values():
        parent = nodes.get(n.span.parent_id)
        if parent is None or parent is n:
            roots.append(n)
        else:
            parent.children.append(n)
    for n in nodes.values():
        n.children.sort(key=lambda c: c.span.start_ms)
    roots.sort(key=lambda r: (-r.span.duration_ms, r.span.start_ms))
    for r in roots:
        _self_times(r)
    if roots:
        _mark_critical(roots[0])
    return roots


def _self_times(root: Node) -> None:
    stack = [root]
    while stack:
        n = stack.pop()
        lo, hi = n.span.start_ms, n.span.end_ms
        covered, cur_start, cur_end = 0.0, None, None
        for c in n.children:  # build_tree sorted them by start
            s, e = max(lo, c.span.start_ms), min(hi, c.span.end_ms)
            if e <= s:
                continue
            if cur_end is None or s > cur_end:
                if cur_end is not None and cur_start is not None:
                    covered += cur_end - cur_start
                cur_start, cur_end = s, e
            else:
                cur_end = max(cur_end, e)
        if cur_end is not None and cur_start is not None:
            covered += cur_end - cur_start
        n.self_ms = max(0.0, n.span.duration_ms - covered)
        stack.extend(n.children)


def _mark_critical(root: Node) -> None:
    stack = [root]
    while stack:
        n = stack.pop()
        n.critical = True
        cursor = n.span.end_ms
        remaining = sorted(n.children, key=lambda c: c.span.end_ms, reverse=True)
        for c in remaining:
            # 1 ms of slack: span starts are stored to the millisecond, durations to the nanosecond.
            if c.span.end_ms <= cursor + 1.0 and c.span.start_ms < cursor:
                stack.append(c)
                cursor = c.span.start_ms


def walk(roots: list[Node]) -> list[tuple[int, Node]]:
    out: list[tuple[int, Node]] = []
    stack = [(0, r) for r in reversed(roots)]
    while stack:
        depth, n = stack.pop()
        out.append((depth, n))
        stack.extend((depth + 1, c) for c in reversed(n.children))
    return out


def fmt_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f}s"
    if ms >= 10:
        return f"{ms:.0f}ms"
    return f"{ms:.1f}ms"


def _error(s: Span, width: int = 160) -> str:
    text = ": ".join(x for x in (s.error_type, s.error_message) if x) or "error"
    return one_line(text, width)


def render(roots: list[Node]) -> list[str]:
    """One line per span: indent, '*' on the critical path, service resource, duration (self), '!' errors.

    Identical error-free sibling subtrees (3 or more) fold into one line at the first one's place.
    Iterative, so deep traces cannot hit the recursion limit.
    """
    lines: list[str] = []
    sigs = _signatures(roots)
    work: list[tuple[int, list[Node]]] = [(0, g) for g in reversed(_fold(roots, sigs))]
    while work:
        depth, group = work.pop()
        if len(group) > 1:
            lines.append(render_folded(depth, group))
            continue
        n = group[0]
        lines.append(_line(depth, n))
        work.extend((depth + 1, g) for g in reversed(_fold(n.children, sigs)))
    return lines


def _signatures(roots: list[Node]) -> dict[int, int | None]:
    """Per node (by id): a hash of its subtree's shape (services, resources, children), None if it holds an error."""
    sigs: dict[int, int | None] = {}
    for _depth, n in reversed(walk(roots)):  # children before parents
        kids = [sigs[id(c)] for c in n.children]
        if n.span.status == "error" or any(k is None for k in kids):
            sigs[id(n)] = None
        else:
            sigs[id(n)] = hash((n.span.service, n.span.resource, tuple(sorted(k for k in kids if k is not None))))
    return sigs


def _fold(siblings: list[Node], sigs: dict[int, int | None]) -> list[list[Node]]:
    """Siblings in order; identical error-free subtrees seen COLLAPSE_RUN times or more become one group."""
    groups: dict[int, list[Node]] = {}
    for n in siblings:
        sig = sigs[id(n)]
        if sig is not None:
            groups.setdefault(sig, []).append(n)
    out: list[list[Node]] = []
    placed: set[int] = set()
    for n in siblings:
        sig = sigs[id(n)]
        if sig is not None and len(groups[sig]) >= COLLAPSE_RUN:
            if sig not in placed:
                placed.add(sig)
                out.append(groups[sig])
            continue
        out.append([n])
    return out


def _indent(depth: int) -> str:
    return "  " * depth if depth <= MAX_INDENT else "  " * MAX_INDENT + f"[d{depth}] "


def _line(depth: int, n: Node) -> str:
    s = n.span
    mark = "*" if n.critical else ""
    dur = fmt_ms(s.duration_ms)
    if n.children and abs(n.self_ms - s.duration_ms) >= 0.05:
        dur += f" (self {fmt_ms(n.self_ms)})"
    err = f" !{_error(s)}" if s.status == "error" else ""
    return f"{_indent(depth)}{mark}{s.service} {s.resource} {dur}{err}"


def render_folded(depth: int, group: list[Node]) -> str:
    total = sum(n.span.duration_ms for n in group)
    top = max(n.span.duration_ms for n in group)
    s = group[0].span
    mark = "*" if any(n.critical for n in group) else ""
    kids = group[0].children
    each = ""
    if kids:
        names = [f"{c.span.service} {c.span.resource}" for c in kids[:4]]
        each = f" (each: {', '.join(names)}{', …' if len(kids) > 4 else ''})"
    return (f"{_indent(depth)}{mark}{len(group)}× {s.service} {s.resource} {fmt_ms(total)} total, "
            f"max {fmt_ms(top)}{each}")


def critical_path(roots: list[Node], max_steps: int = 6) -> str:
    path = [n for _d, n in walk(roots[:1]) if n.critical]
    if not path:
        return "-"
    if len(path) <= max_steps:
        return " → ".join(f"{n.span.service} {n.span.resource} {fmt_ms(n.self_ms)} self" for n in path)
    by: dict[tuple[str, str], float] = {}
    count: Counter[tuple[str, str]] = Counter()
    for n in path:
        by[(n.span.service, n.span.resource)] = by.get((n.span.service, n.span.resource), 0.0) + n.self_ms
        count[(n.span.service, n.span.resource)] += 1
    top = ", ".join(f"{count[k]}× {k[0]} {k[1]} {fmt_ms(v)}" for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:4])
    return f"{len(path)} spans; most self time: {top}"


def errors(roots: list[Node]) -> list[Span]:
    return [n.span for _d, n in walk(roots) if n.span.status == "error"]
