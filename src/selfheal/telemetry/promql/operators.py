"""PromQL's binary operators: arithmetic, comparisons and set operations, with vector matching.

Between two instant vectors, samples pair up by a key: the `on(...)` labels, or every label
but the `ignoring(...)` ones and the metric name (the default is `ignoring()`). One-to-one
matching allows one sample per key on each side; `group_left`/`group_right` allow many on
one side and copy the listed labels from the "one" side. Anything else is many-to-many,
which Prometheus refuses, and so does this module, with Prometheus' wording.

The `go_*` helpers give Go's float semantics where Python's differ: `1 / 0`, `math.fmod(x,
0)`, `math.log(0)` and `math.ceil(inf)` raise in Python but give Inf or NaN in Go, and Go's
`Log10` and `Log2` are not the C library's (`log10(1e15)` is 14.999999999999998 in Go).

Comparisons filter: a sample survives if the comparison holds, keeping its value (the
vector's, even when the scalar is on the left) and its metric name. With `bool` every
pair survives with value 1 or 0 and the name is dropped. Arithmetic drops the name.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from selfheal.telemetry.promql import ast
from selfheal.telemetry.promql.ast import PromQLError
from selfheal.telemetry.tsdb import METRIC_NAME, Labels

InstantVector = list[tuple[Labels, float]]
# Go's math.Log10(x) is Log(x) * (1/Ln10) and math.Log2 splits off the binary exponent; these
# are the float64 constants Go uses for 1/ln(10) and 1/ln(2).
_INV_LN10 = 0.4342944819032518
_INV_LN2 = 1.4426950408889634


# -- Go's float semantics (Python's math raises where Go returns Inf or NaN) ---------------


def go_div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def go_mod(a: float, b: float) -> float:
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    return math.fmod(a, b)


def _odd_integer(value: float) -> bool:
    return math.isfinite(value) and value == math.floor(value) and math.fmod(value, 2) != 0


def go_pow(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except OverflowError:
        negative = base < 0 and _odd_integer(exponent)
        return -math.inf if negative else math.inf
    except ValueError:
        if base == 0:  # zero to a negative power
            return math.copysign(math.inf, base) if _odd_integer(exponent) else math.inf
        return math.nan


def go_max(a: float, b: float) -> float:
    if (math.isinf(a) and a > 0) or (math.isinf(b) and b > 0):
        return math.inf
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if a == b == 0:
        return a if math.copysign(1, a) > 0 else b
    return max(a, b)


def go_min(a: float, b: float) -> float:
    if (math.isinf(a) and a < 0) or (math.isinf(b) and b < 0):
        return -math.inf
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if a == b == 0:
        return a if math.copysign(1, a) < 0 else b
    return min(a, b)


def go_floor(value: float) -> float:
    if not math.isfinite(value):
        return value
    result = float(math.floor(value))
    return math.copysign(0.0, value) if result == 0 else result


def go_ceil(value: float) -> float:
    if not math.isfinite(value):
        return value
    result = float(math.ceil(value))
    return math.copysign(0.0, value) if result == 0 else result


def go_log(value: float) -> float:
    if math.isnan(value) or value < 0:
        return math.nan
    if value == 0:
        return -math.inf
    return math.log(value)


def go_log2(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        return go_log(value)
    fraction, exponent = math.frexp(value)
    if fraction == 0.5:  # an exact power of two
        return float(exponent - 1)
    return math.log(fraction) * _INV_LN2 + exponent


def go_log10(value: float) -> float:
    return go_log(value) * _INV_LN10


def go_exp(value: float) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def go_sqrt(value: float) -> float:
    if math.isnan(value) or value < 0:
        return math.nan
    return math.sqrt(value)


def scalar_binop(op: str, *, left: float, right: float) -> float:
    """Two scalars: arithmetic, or a comparison as 1 or 0 (only `bool` is allowed there)."""
    value, keep = apply(op, left=left, right=right)
    if op in ast.COMPARISONS:
        return 1.0 if keep else 0.0
    return value


def apply(op: str, *, left: float, right: float) -> tuple[float, bool]:  # noqa: PLR0911
    """Go's float arithmetic and comparisons: (value, whether a comparison held)."""
    if op == "+":
        return left + right, True
    if op == "-":
        return left - right, True
    if op == "*":
        return left * right, True
    if op == "/":
        return go_div(left, right), True
    if op == "%":
        return go_mod(left, right), True
    if op == "^":
        return go_pow(left, right), True
    if op == "atan2":
        return math.atan2(left, right), True
    return left, _COMPARE[op](left, right)


_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}
# Arithmetic drops the metric name; comparisons and atan2 keep it (as Prometheus 2.42).
_DROPS_NAME = frozenset({"+", "-", "*", "/", "%", "^"})


def vector_scalar(node: ast.BinaryExpr, *, left: object, right: object) -> InstantVector:
    swap = isinstance(left, float)
    vector, scalar = (right, left) if swap else (left, right)
    assert isinstance(vector, list)
    assert isinstance(scalar, float)
    comparison = node.op in ast.COMPARISONS
    drop = node.op in _DROPS_NAME or node.return_bool
    out: InstantVector = []
    for labels, element in vector:
        a, b = (scalar, element) if swap else (element, scalar)
        value, keep = apply(node.op, left=a, right=b)
        if comparison:
            value = element  # a comparison keeps the vector's value, whichever side it is
        if node.return_bool:
            value, keep = (1.0 if keep else 0.0), True
        if keep:
            out.append((labels.without(METRIC_NAME) if drop else labels, value))
    return out


def _signature(matching: ast.VectorMatching) -> Callable[[Labels], object]:
    """The key two samples must share to match: `on` labels, or all but `ignoring` ones."""
    if matching.on:
        names = sorted(matching.labels)
        return lambda labels: tuple(labels.get(name, "") for name in names)
    dropped = (*matching.labels, METRIC_NAME)
    return lambda labels: labels.without(*dropped).pairs


def set_operation(
    op: str, *, left: InstantVector, right: InstantVector, matching: ast.VectorMatching
) -> InstantVector:
    signature = _signature(matching)
    if op == "or":
        if not left or not right:
            return left + right
        seen = {signature(labels) for labels, _ in left}
        return left + [sample for sample in right if signature(sample[0]) not in seen]
    if not left or not right:
        return left if op == "unless" else []
    present = {signature(labels) for labels, _ in right}
    wanted = op == "and"
    return [sample for sample in left if (signature(sample[0]) in present) == wanted]


def vector_binop(
    node: ast.BinaryExpr,
    *,
    left: InstantVector,
    right: InstantVector,
    matching: ast.VectorMatching,
) -> InstantVector:
    """Arithmetic or comparison between two vectors, pairing samples by `matching`.

    The "one" side of a group_left/group_right match (or either side of a one-to-one
    match) must have at most one sample per matching key, else the match is many-to-many,
    which Prometheus refuses with the error reproduced here.
    """
    if not left or not right:
        return []
    card = matching.card
    if card is ast.Cardinality.ONE_TO_MANY:
        left, right = right, left  # the "many" side is iterated, the "one" side looked up
    signature = _signature(matching)
    one_side: dict[object, tuple[Labels, float]] = {}
    for labels, value in right:
        key = signature(labels)
        duplicate = one_side.get(key)
        if duplicate is not None:
            side = "left" if card is ast.Cardinality.ONE_TO_MANY else "right"
            matched = (
                labels.keep(*matching.labels)
                if matching.on
                else labels.without(*matching.labels, METRIC_NAME)
            )
            raise PromQLError(
                f"found duplicate series for the match group {matched} on the {side} "
                f"hand-side of the operation: [{labels}, {duplicate[0]}];many-to-many "
                "matching not allowed: matching labels must be unique on one side"
            )
        one_side[key] = (labels, value)
    matched_keys: dict[object, set[Labels]] = {}
    out: InstantVector = []
    for labels, value in left:
        key = signature(labels)
        partner = one_side.get(key)
        if partner is None:
            continue
        a, b = (partner[1], value) if card is ast.Cardinality.ONE_TO_MANY else (value, partner[1])
        result, keep = apply(node.op, left=a, right=b)
        if node.return_bool:
            result = 1.0 if keep else 0.0
        elif not keep:
            continue
        metric = _result_labels(node, many=labels, one=partner[0], matching=matching)
        if card is ast.Cardinality.ONE_TO_ONE:
            if key in matched_keys:
                raise PromQLError(
                    "multiple matches for labels: many-to-one matching must be explicit "
                    "(group_left/group_right)"
                )
            matched_keys[key] = set()
        else:
            inserted = matched_keys.setdefault(key, set())
            if metric in inserted:
                raise PromQLError(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                )
            inserted.add(metric)
        out.append((metric, result))
    return out


def _result_labels(
    node: ast.BinaryExpr, *, many: Labels, one: Labels, matching: ast.VectorMatching
) -> Labels:
    labels = many.without(METRIC_NAME) if node.op in _DROPS_NAME else many
    if matching.card is ast.Cardinality.ONE_TO_ONE:
        labels = labels.keep(*matching.labels) if matching.on else labels.without(*matching.labels)
    if matching.include:
        # group_x(labels) copies those labels from the "one" side (or removes them there).
        labels = labels.with_({name: one.get(name, "") for name in matching.include})
    if node.return_bool:
        labels = labels.without(METRIC_NAME)
    return labels
