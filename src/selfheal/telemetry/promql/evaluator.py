"""Evaluates a PromQL tree against a `Queryable` at one instant or over a range of steps.

Semantics are Prometheus 2.42's:

- An instant vector selector at time t takes each series' latest sample in
  `[t - offset - lookback, t - offset]`; a stale marker as that latest sample hides the
  series (it ended), rather than falling back to an older value.
- A range selector `[r]` takes the samples in `[t - offset - r, t - offset]` (both ends
  included in 2.x), skipping stale markers.
- `@ <ts>` pins a selector or subquery to a fixed time; `@ start()` / `@ end()` to the
  query's ends. A subquery `expr[r:s]` evaluates `expr` at the multiples of `s` inside
  its range (absolute multiples, so consecutive evaluations reuse them).
- Functions, unary minus and arithmetic drop the metric name; comparisons keep it unless
  `bool` is used. An operation that leaves two samples with one label set is an error.

Time is integer milliseconds inside, like Prometheus, so extrapolation and regression see
the same numbers it does. Each selector is fetched from storage once per query, over the
union of the windows every step needs, then sliced by binary search; a range query costs
one storage read per selector, not one per step.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from selfheal.telemetry.promql import aggregations, ast, functions, operators
from selfheal.telemetry.promql.ast import PromQLError, ValueType
from selfheal.telemetry.promql.parser import parse
from selfheal.telemetry.promql.results import (
    Matrix,
    RangeSeries,
    Sample,
    Scalar,
    String,
    Value,
    Vector,
)
from selfheal.telemetry.tsdb import (
    METRIC_NAME,
    Labels,
    Matcher,
    MatchOp,
    is_stale,
)

InstantVector = list[tuple[Labels, float]]
# Prometheus refuses range queries with more steps than this per series.
_MAX_STEPS = 11_000


class Queryable(Protocol):
    """Where series come from: the embedded TSDB, or later a remote Prometheus.

    `select` returns the series matching every matcher with their samples
    `(timestamp seconds, value)` in `start < t <= end`, oldest first.
    """

    def select(
        self, matchers: Sequence[Matcher], *, start: float, end: float
    ) -> Iterable[tuple[Labels, Sequence[tuple[float, float]]]]: ...


@dataclass(frozen=True, slots=True)
class _Series:
    labels: Labels
    times: list[int]
    values: list[float]


@dataclass(frozen=True, slots=True)
class _Range:
    """A range vector: per-series samples, and the window `[start, end]` they came from."""

    series: list[_Series]
    start: int
    end: int


def evaluate(
    expr: ast.Expr | str,
    *,
    storage: Queryable,
    at: float,
    lookback: float = 300.0,
    subquery_step: float = 60.0,
) -> Value:
    """Run an instant query at `at` (seconds). `subquery_step` serves `[5m:]` subqueries."""
    node = parse(expr) if isinstance(expr, str) else expr
    time = _millis(at)
    evaluation = _Evaluation(
        node,
        storage=storage,
        start=time,
        end=time,
        lookback=_millis(lookback),
        subquery_step=_millis(subquery_step),
    )
    value = evaluation.eval(node, time)
    if isinstance(value, float):
        return Scalar(value, at)
    if isinstance(value, str):
        return String(value, at)
    if isinstance(value, _Range):
        return Matrix(
            tuple(
                RangeSeries(
                    s.labels, tuple(zip([t / 1000 for t in s.times], s.values, strict=True))
                )
                for s in sorted(value.series, key=lambda s: s.labels.pairs)
            )
        )
    return Vector(tuple(Sample(labels, v) for labels, v in value), at)


def evaluate_range(
    expr: ast.Expr | str,
    *,
    storage: Queryable,
    start: float,
    end: float,
    step: float,
    lookback: float = 300.0,
    subquery_step: float = 60.0,
) -> Matrix:
    """Run a range query: the expression at start, start + step, ... up to end."""
    node = parse(expr) if isinstance(expr, str) else expr
    kind = ast.value_type(node)
    if kind not in {ValueType.SCALAR, ValueType.VECTOR}:
        raise PromQLError(
            f'invalid expression type "{kind}" for range query, must be Scalar or instant Vector'
        )
    first, last, interval = _millis(start), _millis(end), _millis(step)
    if interval <= 0:
        raise PromQLError("zero or negative query resolution step widths are not accepted")
    if last < first:
        raise PromQLError("end timestamp must not be before start time")
    if (last - first) // interval >= _MAX_STEPS:
        raise PromQLError(
            f"exceeded maximum resolution of {_MAX_STEPS:,} points per timeseries; "
            "use a larger step"
        )
    evaluation = _Evaluation(
        node,
        storage=storage,
        start=first,
        end=last,
        lookback=_millis(lookback),
        subquery_step=_millis(subquery_step),
    )
    points: dict[Labels, list[tuple[float, float]]] = {}
    for time in range(first, last + 1, interval):
        value = evaluation.eval(node, time)
        samples = [(Labels(), value)] if isinstance(value, float) else value
        assert isinstance(samples, list)
        for labels, sample_value in samples:
            points.setdefault(labels, []).append((time / 1000, sample_value))
    return Matrix(
        tuple(
            RangeSeries(labels, tuple(points[labels]))
            for labels in sorted(points, key=lambda labels: labels.pairs)
        )
    )


def _millis(seconds: float) -> int:
    return round(seconds * 1000)


class _Evaluation:
    """One query's evaluation: the data it fetched and the subquery steps it computed."""

    def __init__(
        self,
        node: ast.Expr,
        *,
        storage: Queryable,
        start: int,
        end: int,
        lookback: int,
        subquery_step: int,
    ) -> None:
        self.start = start
        self.end = end
        self.lookback = lookback
        self.subquery_step = subquery_step
        self.subquery_results: dict[tuple[int, int], InstantVector] = {}
        windows: dict[ast.VectorSelector, tuple[int, int]] = {}
        self._plan(node, low=start, high=end, windows=windows)
        self.data = {
            selector: _fetch(storage, selector, low=low, high=high)
            for selector, (low, high) in windows.items()
        }

    # -- planning: which samples each selector needs ---------------------------------------

    def _ref(self, node: ast.VectorSelector | ast.SubqueryExpr, time: int) -> int:
        """The time a selector or subquery reads at, after `@` and `offset`."""
        if node.at_anchor is ast.AtAnchor.START:
            time = self.start
        elif node.at_anchor is ast.AtAnchor.END:
            time = self.end
        elif node.at is not None:
            time = _millis(node.at)
        return time - _millis(node.offset)

    def _plan(
        self,
        node: ast.Expr,
        *,
        low: int,
        high: int,
        windows: dict[ast.VectorSelector, tuple[int, int]],
    ) -> None:
        def need(selector: ast.VectorSelector, span: int) -> None:
            first = self._ref(selector, low) - span
            last = self._ref(selector, high)
            known = windows.get(selector)
            if known is not None:
                first, last = min(first, known[0]), max(last, known[1])
            windows[selector] = (first, last)

        match node:
            case ast.VectorSelector():
                need(node, self.lookback)
            case ast.MatrixSelector():
                need(node.selector, _millis(node.range))
            case ast.SubqueryExpr():
                inner_low = self._ref(node, low)
                inner_high = self._ref(node, high)
                self._plan(
                    node.expr,
                    low=inner_low - _millis(node.range),
                    high=inner_high,
                    windows=windows,
                )
            case ast.Call():
                for arg in node.args:
                    self._plan(arg, low=low, high=high, windows=windows)
            case ast.AggregateExpr():
                self._plan(node.expr, low=low, high=high, windows=windows)
                if node.param is not None:
                    self._plan(node.param, low=low, high=high, windows=windows)
            case ast.BinaryExpr():
                self._plan(node.lhs, low=low, high=high, windows=windows)
                self._plan(node.rhs, low=low, high=high, windows=windows)
            case ast.UnaryExpr():
                self._plan(node.expr, low=low, high=high, windows=windows)

    # -- evaluation ------------------------------------------------------------------------

    def eval(self, node: ast.Expr, time: int) -> float | str | InstantVector | _Range:  # noqa: PLR0911
        match node:
            case ast.NumberLiteral():
                return float(node.value)  # a tree built by hand may hold an int
            case ast.StringLiteral():
                return node.value
            case ast.VectorSelector():
                return [(labels, value) for labels, value, _ in self._select(node, time)]
            case ast.MatrixSelector():
                return self._matrix(node, time)
            case ast.SubqueryExpr():
                return self._subquery(node, time)
            case ast.Call():
                return self._call(node, time)
            case ast.AggregateExpr():
                param = None if node.param is None else self.eval(node.param, time)
                assert not isinstance(param, list | _Range)
                return aggregations.aggregate(node, self.vector(node.expr, time), param=param)
            case ast.BinaryExpr():
                return self._binary(node, time)
            case ast.UnaryExpr():
                operand = self.eval(node.expr, time)
                if node.op == "+":
                    return operand
                if isinstance(operand, float):
                    return -operand
                assert isinstance(operand, list)
                return _unique([(labels.without(METRIC_NAME), -v) for labels, v in operand])
        raise TypeError(f"cannot evaluate {node!r}")  # pragma: no cover

    def vector(self, node: ast.Expr, time: int) -> InstantVector:
        value = self.eval(node, time)
        assert isinstance(value, list)
        return value

    def scalar(self, node: ast.Expr, time: int) -> float:
        value = self.eval(node, time)
        assert isinstance(value, float)
        return value

    def _select(self, node: ast.VectorSelector, time: int) -> list[tuple[Labels, float, int]]:
        """Each series' latest sample within the lookback window, with its timestamp."""
        ref = self._ref(node, time)
        oldest = ref - self.lookback
        found = []
        for series in self.data[node]:
            times = series.times
            index = bisect_right(times, ref) - 1
            if index < 0 or times[index] < oldest:
                continue
            value = series.values[index]
            if value != value and is_stale(value):  # noqa: PLR0124 -- cheap NaN test first
                continue
            found.append((series.labels, value, times[index]))
        return found

    def _matrix(self, node: ast.MatrixSelector, time: int) -> _Range:
        selector = node.selector
        end = self._ref(selector, time)
        start = end - _millis(node.range)
        found = []
        for series in self.data[selector]:
            low = bisect_left(series.times, start)
            high = bisect_right(series.times, end, low)
            if low == high:
                continue
            times, values = series.times[low:high], series.values[low:high]
            if any(v != v for v in values):  # noqa: PLR0124 -- NaN: maybe stale markers
                kept = [(t, v) for t, v in zip(times, values, strict=True) if not is_stale(v)]
                times, values = [t for t, _ in kept], [v for _, v in kept]
            if times:
                found.append(_Series(series.labels, times, values))
        return _Range(found, start, end)

    def _subquery(self, node: ast.SubqueryExpr, time: int) -> _Range:
        end = self._ref(node, time)
        start = end - _millis(node.range)
        step = _millis(node.step) or self.subquery_step
        # The first multiple of the step at or after the range start (Go's division
        # truncates towards zero, which matters only before 1970).
        first = step * _truncated_quotient(start, step)
        if first < start:
            first += step
        collected: dict[Labels, _Series] = {}
        for moment in range(first, end + 1, step):
            key = (id(node), moment)
            vector = self.subquery_results.get(key)
            if vector is None:
                vector = self.subquery_results[key] = self.vector(node.expr, moment)
            for labels, value in vector:
                series = collected.get(labels)
                if series is None:
                    series = collected[labels] = _Series(labels, [], [])
                series.times.append(moment)
                series.values.append(value)
        return _Range(list(collected.values()), start, end)

    # -- functions -------------------------------------------------------------------------

    def _call(self, node: ast.Call, time: int) -> float | InstantVector:
        name = node.function
        if name == "timestamp" and isinstance(node.args[0], ast.VectorSelector):
            # The sample's own timestamp, not the evaluation time: the one function that
            # needs to see a selector's raw samples.
            return _unique(
                [
                    (labels.without(METRIC_NAME), t / 1000)
                    for labels, _, t in self._select(node.args[0], time)
                ]
            )
        signature = ast.FUNCTIONS[name]
        if ValueType.MATRIX in signature.args:
            return self._range_function(node, time)
        args = [self.eval(arg, time) for arg in node.args]
        return _instant_function(node, args, time=time)

    def _range_function(self, node: ast.Call, time: int) -> InstantVector:
        name = node.function
        index = ast.FUNCTIONS[name].args.index(ValueType.MATRIX)
        window = self.eval(node.args[index], time)
        assert isinstance(window, _Range)
        if name == "absent_over_time":
            return [] if window.series else [(_absent_labels(node.args[0]), 1.0)]
        params = [self.scalar(arg, time) for i, arg in enumerate(node.args) if i != index]
        # predict_linear fits around the evaluation time; a selector pinned with @ is
        # evaluated once, at the query start, in Prometheus, so that is its time.
        pinned = _is_pinned(node.args[index])
        fit_time = self.start if pinned else time
        out: InstantVector = []
        for series in window.series:
            value = _range_value(name, series, window=window, params=params, fit_time=fit_time)
            if value is None:
                continue
            labels = (
                series.labels if name == "last_over_time" else series.labels.without(METRIC_NAME)
            )
            out.append((labels, value))
        return _unique(out)

    # -- operators -------------------------------------------------------------------------

    def _binary(self, node: ast.BinaryExpr, time: int) -> float | InstantVector:
        left = self.eval(node.lhs, time)
        right = self.eval(node.rhs, time)
        op = node.op
        if isinstance(left, float) and isinstance(right, float):
            return operators.scalar_binop(op, left=left, right=right)
        if isinstance(left, float) or isinstance(right, float):
            return _unique(operators.vector_scalar(node, left=left, right=right))
        assert isinstance(left, list)
        assert isinstance(right, list)
        matching = node.matching or ast.VectorMatching()
        if op in ast.SET_OPERATORS:
            return operators.set_operation(op, left=left, right=right, matching=matching)
        return _unique(operators.vector_binop(node, left=left, right=right, matching=matching))


def _fetch(
    storage: Queryable, selector: ast.VectorSelector, *, low: int, high: int
) -> list[_Series]:
    """The selector's series with samples in `[low, high]` ms, as integer milliseconds.

    The storage port's window is open at its start, while Prometheus 2.x ranges include
    their first millisecond, so one millisecond more is asked for.
    """
    rows = storage.select(selector.all_matchers, start=(low - 1) / 1000, end=high / 1000)
    fetched = []
    for labels, samples in rows:
        times: list[int] = []
        values: list[float] = []
        for timestamp, value in samples:
            millis = round(timestamp * 1000)
            if times and millis <= times[-1]:
                if millis == times[-1]:
                    values[-1] = value
                continue
            times.append(millis)
            values.append(value)
        key = labels if isinstance(labels, Labels) else Labels(labels)
        fetched.append(_Series(key, times, values))
    fetched.sort(key=lambda series: series.labels.pairs)
    return fetched


def _truncated_quotient(a: int, b: int) -> int:
    quotient = abs(a) // b
    return -quotient if a < 0 else quotient


def _is_pinned(node: ast.Expr) -> bool:
    if isinstance(node, ast.MatrixSelector):
        node = node.selector
    if isinstance(node, ast.VectorSelector | ast.SubqueryExpr):
        return node.at is not None or node.at_anchor is not None
    return False


def _unique(vector: InstantVector) -> InstantVector:
    if len({labels for labels, _ in vector}) != len(vector):
        raise PromQLError("vector cannot contain metrics with the same labelset")
    return vector


def _absent_labels(node: ast.Expr) -> Labels:
    """The labels absent() reports: those fixed by the selector's equality matchers."""
    if isinstance(node, ast.MatrixSelector):
        node = node.selector
    if not isinstance(node, ast.VectorSelector):
        return Labels()
    fixed: dict[str, str] = {}
    ambiguous: list[str] = []
    for matcher in node.all_matchers:
        if matcher.name == METRIC_NAME:
            continue
        if matcher.op is MatchOp.EQUAL and not fixed.get(matcher.name):
            fixed[matcher.name] = matcher.value
        else:
            ambiguous.append(matcher.name)
    for name in ambiguous:
        fixed.pop(name, None)
    return Labels(fixed)


def _range_value(  # noqa: PLR0911 -- one return per family of range functions
    name: str, series: _Series, *, window: _Range, params: list[float], fit_time: int
) -> float | None:
    times, values = series.times, series.values
    if name in {"rate", "increase", "delta"}:
        return functions.extrapolated_rate(
            times,
            values,
            range_start=window.start,
            range_end=window.end,
            is_counter=name != "delta",
            is_rate=name == "rate",
        )
    if name in {"irate", "idelta"}:
        return functions.instant_change(times, values, is_rate=name == "irate")
    if name == "deriv":
        if len(values) < 2:
            return None
        return functions.linear_regression(times, values, intercept_time=times[0])[0]
    if name == "predict_linear":
        if len(values) < 2:
            return None
        slope, intercept = functions.linear_regression(times, values, intercept_time=fit_time)
        return slope * params[0] + intercept
    if name == "quantile_over_time":
        return functions.quantile(params[0], values)
    return functions.SIMPLE_RANGE_FUNCTIONS[name](values)


def _instant_function(  # noqa: PLR0911 -- one branch per function
    node: ast.Call, args: list[float | str | InstantVector | _Range], *, time: int
) -> float | InstantVector:
    name = node.function
    if name == "time":
        return time / 1000
    if name == "vector":
        assert isinstance(args[0], float)
        return [(Labels(), args[0])]
    vector = args[0]
    if name == "scalar":
        assert isinstance(vector, list)
        return vector[0][1] if len(vector) == 1 else math.nan
    if name == "histogram_quantile":
        assert isinstance(args[0], float)
        assert isinstance(args[1], list)
        return _unique(functions.histogram_quantile(args[0], args[1]))
    assert isinstance(vector, list)
    numbers = [arg for arg in args[1:] if isinstance(arg, float)]
    strings = [arg for arg in args[1:] if isinstance(arg, str)]
    if name in functions.MATH_FUNCTIONS:
        apply = functions.MATH_FUNCTIONS[name]
        return _unique([(labels.without(METRIC_NAME), apply(v)) for labels, v in vector])
    if name == "round":
        step = numbers[0] if numbers else 1.0
        return _unique(
            [(labels.without(METRIC_NAME), functions.go_round(v, step)) for labels, v in vector]
        )
    if name in {"clamp", "clamp_min", "clamp_max"}:
        return _unique(functions.clamp(name, vector, bounds=numbers))
    if name == "absent":
        return [] if vector else [(_absent_labels(node.args[0]), 1.0)]
    if name in {"sort", "sort_desc"}:
        sign = 1.0 if name == "sort" else -1.0
        return sorted(vector, key=lambda sample: (math.isnan(sample[1]), sign * sample[1]))
    if name == "timestamp":
        return _unique([(labels.without(METRIC_NAME), time / 1000) for labels, _ in vector])
    if name == "label_replace":
        return _unique(
            functions.label_replace(
                vector,
                destination=strings[0],
                replacement=strings[1],
                source=strings[2],
                regex=strings[3],
            )
        )
    if name == "label_join":
        return _unique(
            functions.label_join(
                vector, destination=strings[0], separator=strings[1], sources=strings[2:]
            )
        )
    raise TypeError(f"no implementation for {name}")  # pragma: no cover
