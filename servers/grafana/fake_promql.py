"""A small PromQL (and LogQL metric-query) evaluator for the sandbox's fake Prometheus and Loki.

Only the subset the sandbox story needs, with Prometheus 2.x semantics where it has them:
selectors with ``= != =~ !~`` matchers, a 5-minute lookback for instant selectors, range selectors
closed on both ends, ``rate``/``increase`` with Prometheus's extrapolation, ``*_over_time``,
``sum/avg/min/max/count by|without (...)``, and ``+ - * /`` between vectors (one-to-one on all
labels) and scalars. Anything else is a parse error, as a real server would say. The real-Prometheus
test runs the same queries on Debian's Prometheus to keep this honest.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

LOOKBACK_S = 300.0
Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs, __name__ included when present


class PromQLError(ValueError):
    pass


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # = != =~ !~
    value: str

    def matches(self, v: str) -> bool:
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = re.fullmatch(self.value, v) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True)
class Selector:
    matchers: tuple[Matcher, ...]
    range_s: float | None = None
    pipeline: tuple[tuple[str, str], ...] = ()  # LogQL line filters: (op, text)


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Call:
    func: str
    arg: Selector


@dataclass(frozen=True)
class Agg:
    op: str
    expr: Node
    by: tuple[str, ...] | None = None
    without: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Binary:
    op: str
    lhs: Node
    rhs: Node


Node = Selector | Num | Call | Agg | Binary

RANGE_FUNCS = {"rate", "increase", "avg_over_time", "max_over_time", "min_over_time", "sum_over_time",
               "count_over_time", "bytes_over_time", "bytes_rate"}
AGGS = {"sum", "avg", "min", "max", "count"}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<dur>\[\s*\d+(?:ms|s|m|h|d|w|y)(?:\d+(?:ms|s|m|h|d|w|y))*\s*\])
  | (?P<num>\d+(?:\.\d+)?(?:e[+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`|'(?:[^'\\]|\\.)*')
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|\|=|\|~|==|[=(){},+\-*/|])
""", re.X)

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(s: str) -> float:
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+)(ms|s|m|h|d|w|y)", s):
        if m.start() != pos:
            raise PromQLError(f"bad duration {s!r}")
        total += int(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or total <= 0:
        raise PromQLError(f"bad duration {s!r}")
    return total


def _unquote(s: str) -> str:
    if s[0] == "`":
        return s[1:-1]
    return bytes(s[1:-1], "utf-8").decode("unicode_escape")


class _Parser:
    def __init__(self, text: str, logql: bool) -> None:
        self.logql = logql
        self.toks: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise PromQLError(f"parse error at char {pos + 1}: unexpected character {text[pos]!r}")
            pos = m.end()
            kind = m.lastgroup or ""
            if kind != "ws":
                self.toks.append((kind, m.group(kind)))
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str]:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else ("eof", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if value is not None and tok[1] != value:
            raise PromQLError(f"parse error: expected {value!r}, found {tok[1] or 'end of input'!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr()
        if self.peek()[0] != "eof":
            raise PromQLError(f"parse error: unexpected {self.peek()[1]!r}")
        return node

    def expr(self) -> Node:
        node = self.term()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            node = Binary(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.primary()
        while self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            node = Binary(op, node, self.primary())
        return node

    def labels(self) -> tuple[str, ...]:
        self.take("(")
        names = []
        while self.peek()[1] != ")":
            kind, name = self.take()
            if kind != "ident":
                raise PromQLError(f"parse error: expected a label name, found {name!r}")
            names.append(name)
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return tuple(names)

    def primary(self) -> Node:
        kind, value = self.peek()
        if kind == "num":
            self.take()
            return Num(float(value))
        if value == "(":
            self.take()
            node = self.expr()
            self.take(")")
            return node
        if kind == "ident" and value in AGGS and self.peek(1)[1] in ("(", "by", "without"):
            self.take()
            by = without = None
            if self.peek()[1] in ("by", "without"):
                which = self.take()[1]
                names = self.labels()
                by, without = (names, None) if which == "by" else (None, names)
            self.take("(")
            inner = self.expr()
            self.take(")")
            if self.peek()[1] in ("by", "without"):
                which = self.take()[1]
                names = self.labels()
                by, without = (names, None) if which == "by" else (None, names)
            return Agg(value, inner, by, without)
        if kind == "ident" and self.peek(1)[1] == "(":
            if value not in RANGE_FUNCS:
                raise PromQLError(f"parse error: unknown or unsupported function {value!r}")
            self.take()
            self.take("(")
            arg = self.primary()
            self.take(")")
            if not isinstance(arg, Selector) or arg.range_s is None:
                raise PromQLError(f"parse error: expected a range vector in call to {value}")
            return Call(value, arg)
        if kind == "ident" or value == "{":
            return self.selector()
        raise PromQLError(f"parse error: unexpected {value or 'end of input'!r}")

    def selector(self) -> Selector:
        matchers: list[Matcher] = []
        if self.peek()[0] == "ident":
            matchers.append(Matcher("__name__", "=", self.take()[1]))
        if self.peek()[1] == "{":
            self.take()
            while self.peek()[1] != "}":
                kind, name = self.take()
                if kind != "ident":
                    raise PromQLError(f"parse error: expected a label matcher, found {name!r}")
                op = self.take()[1]
                if op not in ("=", "!=", "=~", "!~"):
                    raise PromQLError(f"parse error: unexpected {op!r} in label matching")
                kind, raw = self.take()
                if kind != "str":
                    raise PromQLError(f"parse error: expected a quoted string, found {raw!r}")
                matchers.append(Matcher(name, op, _unquote(raw)))
                if self.peek()[1] == ",":
                    self.take()
            self.take("}")
        if not any(m.op in ("=", "=~") and not m.matches("") for m in matchers):
            raise PromQLError("parse error: vector selector must contain at least one non-empty matcher")
        pipeline: list[tuple[str, str]] = []
        while self.logql and self.peek()[1] in ("|=", "!=", "|~", "!~"):
            op = self.take()[1]
            kind, raw = self.take()
            if kind != "str":
                raise PromQLError(f"parse error: expected a quoted string after {op}")
            pipeline.append((op, _unquote(raw)))
        range_s = None
        if self.peek()[0] == "dur":
            range_s = parse_duration(self.take()[1].strip("[] "))
        return Selector(tuple(matchers), range_s, tuple(pipeline))


def parse(text: str, *, logql: bool = False) -> Node:
    return _Parser(text, logql).parse()


# --- evaluation --------------------------------------------------------------------------------------
@dataclass
class Series:
    labels: Labels
    ts: list[float]
    values: list[float]


class Source(Protocol):
    def select(self, selector: Selector, start: float, end: float) -> list[Series]: ...


Vector = dict[Labels, float]


def _drop_name(labels: Labels) -> Labels:
    return tuple(kv for kv in labels if kv[0] != "__name__")


def _extrapolated(s: Series, lo: int, hi: int, t: float, rng: float, counter: bool, rate: bool) -> float | None:
    if hi - lo < 2:
        return None
    ts, vs = s.ts[lo:hi], s.values[lo:hi]
    result = vs[-1] - vs[0]
    if counter:
        last = 0.0
        for v in vs:
            if v < last:
                result += last
            last = v
    to_start, to_end = ts[0] - (t - rng), t - ts[-1]
    sampled = ts[-1] - ts[0]
    avg_gap = sampled / (len(ts) - 1)
    if counter and result > 0 and vs[0] >= 0:
        to_start = min(to_start, sampled * (vs[0] / result))
    threshold = avg_gap * 1.1
    interval = sampled + (to_start if to_start < threshold else avg_gap / 2)
    interval += to_end if to_end < threshold else avg_gap / 2
    result *= interval / sampled
    return result / rng if rate else result


_OVER_TIME: dict[str, Callable[[list[float]], float]] = {
    "avg_over_time": lambda v: sum(v) / len(v),
    "max_over_time": max,
    "min_over_time": min,
    "sum_over_time": sum,
    "count_over_time": lambda v: float(len(v)),
    "bytes_over_time": sum,
}


@dataclass
class Evaluator:
    source: Source
    start: float
    end: float
    _cache: dict[Selector, list[Series]] = field(default_factory=dict)

    def _series(self, sel: Selector) -> list[Series]:
        if sel not in self._cache:
            reach = (sel.range_s or LOOKBACK_S) + 1
            self._cache[sel] = self.source.select(sel, self.start - reach, self.end)
        return self._cache[sel]

    def eval(self, node: Node, t: float) -> Vector | float:
        if isinstance(node, Num):
            return node.value
        if isinstance(node, Selector):
            if node.range_s is not None:
                raise PromQLError("range vector cannot be the result of an expression; wrap it in a function "
                                  "such as rate()")
            out: Vector = {}
            for s in self._series(node):
                i = bisect_right(s.ts, t)
                if i and s.ts[i - 1] >= t - LOOKBACK_S:
                    out[s.labels] = s.values[i - 1]
            return out
        if isinstance(node, Call):
            sel = node.arg
            rng = float(sel.range_s or 0)
            out = {}
            for s in self._series(sel):
                lo, hi = bisect_left(s.ts, t - rng), bisect_right(s.ts, t)
                if node.func in ("rate", "increase"):
                    v = _extrapolated(s, lo, hi, t, rng, True, node.func == "rate")
                elif node.func == "bytes_rate":
                    v = sum(s.values[lo:hi]) / rng if hi > lo else None
                else:
                    v = _OVER_TIME[node.func](s.values[lo:hi]) if hi > lo else None
                if v is not None:
                    out[_drop_name(s.labels)] = v
            return out
        if isinstance(node, Agg):
            inner = self.eval(node.expr, t)
            if not isinstance(inner, dict):
                raise PromQLError(f"expected an instant vector in aggregation {node.op}, got a scalar")
            groups: dict[Labels, list[float]] = {}
            for labels, v in inner.items():
                if node.by is not None:
                    key = tuple(kv for kv in labels if kv[0] in node.by)
                elif node.without is None:
                    key = ()
                else:
                    drop = {"__name__", *(node.without or ())}
                    key = tuple(kv for kv in labels if kv[0] not in drop)
                groups.setdefault(key, []).append(v)
            fn: dict[str, Callable[[list[float]], float]] = {
                "sum": sum, "avg": lambda v: sum(v) / len(v), "min": min, "max": max, "count": lambda v: float(len(v)),
            }
            return {k: fn[node.op](vs) for k, vs in groups.items()}
        lhs, rhs = self.eval(node.lhs, t), self.eval(node.rhs, t)
        if isinstance(lhs, float) and isinstance(rhs, float):
            return _arith(node.op, lhs, rhs)
        if isinstance(lhs, dict) and isinstance(rhs, float):
            return {_drop_name(k): _arith(node.op, v, rhs) for k, v in lhs.items()}
        if isinstance(lhs, float) and isinstance(rhs, dict):
            return {_drop_name(k): _arith(node.op, lhs, v) for k, v in rhs.items()}
        assert isinstance(lhs, dict) and isinstance(rhs, dict)
        right = {_drop_name(k): v for k, v in rhs.items()}
        return {_drop_name(k): _arith(node.op, v, right[_drop_name(k)]) for k, v in lhs.items()
                if _drop_name(k) in right}


def _arith(op: str, a: float, b: float) -> float:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


def fmt_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def query_range(source: Source, text: str, start: float, end: float, step: float, *,
                logql: bool = False) -> list[dict[str, object]]:
    """Prometheus ``matrix`` result entries for ``text`` over [start, end] every ``step`` seconds."""
    node = parse(text, logql=logql)
    ev = Evaluator(source, start, end)
    series: dict[Labels, list[list[object]]] = {}
    t = start
    while t <= end + 1e-9:
        v = ev.eval(node, t)
        if isinstance(v, float):
            v = {(): v}
        for labels, value in v.items():
            series.setdefault(labels, []).append([round(t, 3), fmt_value(value)])
        t += step
    return [{"metric": dict(k), "values": pts} for k, pts in sorted(series.items())]


def query_instant(source: Source, text: str, at: float, *, logql: bool = False) -> tuple[str, object]:
    """(resultType, result) for an instant query."""
    node = parse(text, logql=logql)
    v = Evaluator(source, at, at).eval(node, at)
    if isinstance(v, float):
        return "scalar", [at, fmt_value(v)]
    return "vector", [{"metric": dict(k), "value": [at, fmt_value(x)]} for k, x in sorted(v.items())]
