"""PromQL's aggregation operators (`sum by (job) (...)` and friends), as Prometheus 2.42.

Groups are formed by the `by` labels (the metric name only if listed) or by every label
except the `without` ones and the metric name, and come out in the order their first member
appeared. The arithmetic repeats Prometheus' step by step so results agree to the last
digit: `sum` adds in input order without compensation, `avg` keeps an incremental mean (so
large values cannot overflow), `stddev`/`stdvar` use Welford's update.

`topk`/`bottomk` reproduce Prometheus' bounded heap (Go's container/heap, push and pop
included) because which of several equal values survive depends on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from selfheal.telemetry.promql import functions
from selfheal.telemetry.promql.ast import AggregateExpr, PromQLError
from selfheal.telemetry.tsdb import METRIC_NAME, Labels, is_valid_label_name

InstantVector = list[tuple[Labels, float]]
_INT64_MAX = 2.0**63


class _Group:
    __slots__ = ("count", "heap", "labels", "mean", "value")

    def __init__(self, labels: Labels, value: float) -> None:
        self.labels = labels
        self.value = value
        self.mean = value
        self.count = 1
        self.heap: list[tuple[Labels, float]] = []


def aggregate(
    node: AggregateExpr, vector: InstantVector, *, param: float | str | None
) -> InstantVector:
    """Apply `node.op` to `vector`; `param` is k, q or the count_values label."""
    op = node.op
    grouping = node.grouping
    k = 0
    if op in {"topk", "bottomk"}:
        assert isinstance(param, float)
        if not -_INT64_MAX <= param <= _INT64_MAX:
            raise PromQLError(f"Scalar value {_go_value(param)} overflows int64")
        k = int(param)
        if k < 1:
            return []
    value_label = ""
    if op == "count_values":
        assert isinstance(param, str)
        value_label = param
        if not is_valid_label_name(value_label):
            raise PromQLError(f'invalid label name "{value_label}"')
        if not node.without:
            grouping = (*grouping, value_label)
    key_of = _key_function(grouping, without=node.without)
    groups: dict[Labels, _Group] = {}
    less = _value_less if op == "topk" else _reverse_less
    for labels, value in vector:
        metric = labels
        if op == "count_values":
            metric = labels.with_({value_label: functions.format_go_float(value)})
        key = key_of(metric)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(key, value)
            if op in {"stddev", "stdvar"}:
                group.value = 0.0
            elif op in {"topk", "bottomk", "quantile"}:
                group.heap = [(labels, value)]
            elif op == "group":
                group.value = 1.0
            continue
        if op in {"topk", "bottomk"}:
            _offer(group.heap, (labels, value), k=k, less=less)
        else:
            _accumulate(group, (labels, value), op=op)
    return _results(list(groups.values()), op=op, param=param)


def _key_function(grouping: Sequence[str], *, without: bool) -> Callable[[Labels], Labels]:
    if without:
        dropped = (*grouping, METRIC_NAME)
        return lambda labels: labels.without(*dropped)
    return lambda labels: labels.keep(*grouping)


def _accumulate(group: _Group, sample: tuple[Labels, float], *, op: str) -> None:
    value = sample[1]
    if op == "sum":
        group.value += value
    elif op == "avg":
        group.count += 1
        if math.isinf(group.mean) and (
            (math.isinf(value) and (group.mean > 0) == (value > 0))
            or (not math.isinf(value) and not math.isnan(value))
        ):
            return  # an infinite mean stays put (Inf - Inf would make it NaN)
        # Dividing both terms by the count keeps the update from overflowing.
        group.mean += value / group.count - group.mean / group.count
    elif op == "max":
        if group.value < value or math.isnan(group.value):
            group.value = value
    elif op == "min":
        if group.value > value or math.isnan(group.value):
            group.value = value
    elif op in {"count", "count_values"}:
        group.count += 1
    elif op in {"stddev", "stdvar"}:
        group.count += 1
        delta = value - group.mean
        group.mean += delta / group.count
        group.value += delta * (value - group.mean)
    elif op == "quantile":
        group.heap.append(sample)


def _results(groups: Sequence[_Group], *, op: str, param: float | str | None) -> InstantVector:
    out: InstantVector = []
    for group in groups:
        if op in {"topk", "bottomk"}:
            # Highest first for topk, lowest first for bottomk; NaN last either way.
            descending = op == "topk"
            ranked = sorted(
                group.heap,
                key=lambda item: (
                    math.isnan(item[1]),
                    -item[1] if descending else item[1],
                ),
            )
            out.extend(ranked)
            continue
        value = group.value
        if op == "avg":
            value = group.mean
        elif op in {"count", "count_values"}:
            value = float(group.count)
        elif op == "stdvar":
            value = group.value / group.count
        elif op == "stddev":
            value = math.sqrt(group.value / group.count)
        elif op == "quantile":
            assert isinstance(param, float)
            value = functions.quantile(param, [sample[1] for sample in group.heap])
        out.append((group.labels, value))
    return out


# -- Go's container/heap, so ties resolve as in Prometheus --------------------------------


def _value_less(a: float, b: float) -> bool:
    """Heap order for topk: smallest on top, NaN below everything."""
    return math.isnan(a) or a < b


def _reverse_less(a: float, b: float) -> bool:
    """Heap order for bottomk: largest on top, NaN above everything."""
    return math.isnan(a) or a > b


def _offer(
    heap: list[tuple[Labels, float]],
    sample: tuple[Labels, float],
    *,
    k: int,
    less: Callable[[float, float], bool],
) -> None:
    """Keep `sample` if it beats the heap's weakest member (or the heap is not full)."""
    top = heap[0][1]
    beats = (top < sample[1]) if less is _value_less else (top > sample[1])
    if len(heap) < k or beats or math.isnan(top):
        if len(heap) == k:
            if k == 1:
                heap[0] = sample
                return
            _pop(heap, less)
        heap.append(sample)
        _up(heap, len(heap) - 1, less=less)


def _pop(heap: list[tuple[Labels, float]], less: Callable[[float, float], bool]) -> None:
    last = len(heap) - 1
    heap[0], heap[last] = heap[last], heap[0]
    _down(heap, 0, size=last, less=less)
    heap.pop()


def _up(
    heap: list[tuple[Labels, float]], child: int, *, less: Callable[[float, float], bool]
) -> None:
    while child > 0:
        parent = (child - 1) // 2
        if not less(heap[child][1], heap[parent][1]):
            return
        heap[parent], heap[child] = heap[child], heap[parent]
        child = parent


def _down(
    heap: list[tuple[Labels, float]],
    start: int,
    *,
    size: int,
    less: Callable[[float, float], bool],
) -> None:
    node = start
    while (left := 2 * node + 1) < size:
        child = left
        if left + 1 < size and less(heap[left + 1][1], heap[left][1]):
            child = left + 1
        if not less(heap[child][1], heap[node][1]):
            return
        heap[node], heap[child] = heap[child], heap[node]
        node = child


def _go_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
