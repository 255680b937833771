"""The PromQL syntax tree, the language's function signatures, and a printer.

Nodes are frozen dataclasses compared by content; the source `position` of a node takes no
part in equality, so a tree parsed from `format(tree)` equals the original. Parentheses are
not kept as nodes: the printer puts back exactly those that precedence requires.

Durations and timestamps are seconds (floats). PromQL only has whole milliseconds, so every
duration here is a multiple of 0.001 and the evaluator rounds them to integer milliseconds.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from selfheal.domain.errors import ConfigError, SourceLocation
from selfheal.telemetry.tsdb import METRIC_NAME, Matcher, MatchOp, quote


class PromQLError(ConfigError):
    """A PromQL expression is invalid, or cannot be evaluated against the data.

    Parse errors carry `position` (0-based offset into the expression) and `line` and
    `column` (1-based); evaluation errors (many-to-many matching, duplicate label sets) have
    no position and leave all three None. The message says what was found and what was
    expected, like Prometheus' own (`unexpected "}" in label matching, expected string`).
    """

    def __init__(self, message: str, *, expression: str = "", position: int | None = None) -> None:
        self.expression = expression
        self.position = position
        self.line: int | None = None
        self.column: int | None = None
        location = None
        if position is not None:
            before = expression[:position]
            self.line = before.count("\n") + 1
            self.column = position - (before.rfind("\n") + 1) + 1
            location = SourceLocation("promql", self.line, self.column)
        super().__init__(message, location=location)


class ValueType(enum.StrEnum):
    """PromQL's four value types, named as Prometheus' error messages name them."""

    SCALAR = "scalar"
    VECTOR = "instant vector"
    MATRIX = "range vector"
    STRING = "string"


class Cardinality(enum.StrEnum):
    """How series on the two sides of a binary operator pair up."""

    ONE_TO_ONE = "one-to-one"
    MANY_TO_ONE = "many-to-one"
    ONE_TO_MANY = "one-to-many"
    MANY_TO_MANY = "many-to-many"


class AtAnchor(enum.StrEnum):
    """`@ start()` and `@ end()`: the query range's ends, resolved when evaluating."""

    START = "start"
    END = "end"


def _position() -> int:
    return field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NumberLiteral:
    """A number: `1`, `1.5e3`, `0x1f`, `Inf`, `NaN` (a leading minus is folded in)."""

    value: float
    position: int = _position()


@dataclass(frozen=True, slots=True)
class StringLiteral:
    """A string, escapes already decoded."""

    value: str
    position: int = _position()


@dataclass(frozen=True, slots=True)
class VectorSelector:
    """`name{matchers} offset d @ t`; `name` is "" when only braces were written."""

    name: str
    matchers: tuple[Matcher, ...] = ()
    offset: float = 0.0
    at: float | None = None
    at_anchor: AtAnchor | None = None
    position: int = _position()

    @property
    def all_matchers(self) -> tuple[Matcher, ...]:
        """The matchers to select with, the metric name included."""
        if not self.name:
            return self.matchers
        return (Matcher(METRIC_NAME, MatchOp.EQUAL, self.name), *self.matchers)


@dataclass(frozen=True, slots=True)
class MatrixSelector:
    """`selector[range]`; the offset and `@` live on the inner selector, as in Prometheus."""

    selector: VectorSelector
    range: float
    position: int = _position()


@dataclass(frozen=True, slots=True)
class SubqueryExpr:
    """`expr[range:step]`; a `step` of 0 means the default (the rule group's interval)."""

    expr: Expr
    range: float
    step: float = 0.0
    offset: float = 0.0
    at: float | None = None
    at_anchor: AtAnchor | None = None
    position: int = _position()


@dataclass(frozen=True, slots=True)
class Call:
    """A function call, `function(args...)`."""

    function: str
    args: tuple[Expr, ...] = ()
    position: int = _position()


@dataclass(frozen=True, slots=True)
class AggregateExpr:
    """`op by|without (grouping) ([param,] expr)`."""

    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False
    position: int = _position()


@dataclass(frozen=True, slots=True)
class VectorMatching:
    """`on(labels)` / `ignoring(labels)` and `group_left|group_right(include)`."""

    card: Cardinality = Cardinality.ONE_TO_ONE
    on: bool = False
    labels: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BinaryExpr:
    """`lhs op [bool] [matching] rhs`; `matching` is None unless both sides are vectors."""

    op: str
    lhs: Expr
    rhs: Expr
    matching: VectorMatching | None = None
    return_bool: bool = False
    position: int = _position()


@dataclass(frozen=True, slots=True)
class UnaryExpr:
    """`-expr` or `+expr` on anything but a number literal."""

    op: str
    expr: Expr
    position: int = _position()


Expr = (
    NumberLiteral
    | StringLiteral
    | VectorSelector
    | MatrixSelector
    | SubqueryExpr
    | Call
    | AggregateExpr
    | BinaryExpr
    | UnaryExpr
)

# -- vocabulary ------------------------------------------------------------------------------

AGGREGATORS = frozenset(
    {
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    }
)
# The parameter each parametrised aggregator takes before its vector.
AGGREGATOR_PARAMS = {
    "topk": ValueType.SCALAR,
    "bottomk": ValueType.SCALAR,
    "quantile": ValueType.SCALAR,
    "count_values": ValueType.STRING,
}

COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPERATORS = frozenset({"and", "or", "unless"})
ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})

# Binding strength of binary operators (higher binds tighter), Prometheus' order.
PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    ">": 3,
    "<": 3,
    ">=": 3,
    "<=": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
RIGHT_ASSOCIATIVE = frozenset({"^"})


@dataclass(frozen=True, slots=True)
class FunctionSignature:
    """Argument types and result type; `optional` trailing arguments may be left out.

    `variadic` means the last argument type may repeat any number of times (label_join).
    """

    args: tuple[ValueType, ...]
    returns: ValueType
    optional: int = 0
    variadic: bool = False


_S, _V, _M, _STR = ValueType.SCALAR, ValueType.VECTOR, ValueType.MATRIX, ValueType.STRING

FUNCTIONS: dict[str, FunctionSignature] = {
    **{
        name: FunctionSignature((_M,), _V)
        for name in (
            "rate",
            "irate",
            "increase",
            "delta",
            "idelta",
            "deriv",
            "changes",
            "resets",
            "avg_over_time",
            "min_over_time",
            "max_over_time",
            "sum_over_time",
            "count_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "last_over_time",
            "present_over_time",
            "absent_over_time",
        )
    },
    **{
        name: FunctionSignature((_V,), _V)
        for name in (
            "abs",
            "ceil",
            "floor",
            "sqrt",
            "exp",
            "ln",
            "log2",
            "log10",
            "absent",
            "sort",
            "sort_desc",
            "timestamp",
        )
    },
    "predict_linear": FunctionSignature((_M, _S), _V),
    "quantile_over_time": FunctionSignature((_S, _M), _V),
    "round": FunctionSignature((_V, _S), _V, optional=1),
    "clamp": FunctionSignature((_V, _S, _S), _V),
    "clamp_min": FunctionSignature((_V, _S), _V),
    "clamp_max": FunctionSignature((_V, _S), _V),
    "histogram_quantile": FunctionSignature((_S, _V), _V),
    "label_replace": FunctionSignature((_V, _STR, _STR, _STR, _STR), _V),
    "label_join": FunctionSignature((_V, _STR, _STR, _STR), _V, optional=1, variadic=True),
    "time": FunctionSignature((), _S),
    "vector": FunctionSignature((_S,), _V),
    "scalar": FunctionSignature((_V,), _S),
}

# Prometheus 2.42 functions this engine does not implement, so their error can say so
# rather than calling them unknown.
UNSUPPORTED_FUNCTIONS = frozenset(
    {
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "cos",
        "cosh",
        "sin",
        "sinh",
        "tan",
        "tanh",
        "deg",
        "rad",
        "pi",
        "sgn",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "hour",
        "minute",
        "month",
        "year",
        "holt_winters",
    }
)
NATIVE_HISTOGRAM_FUNCTIONS = frozenset(
    {"histogram_count", "histogram_sum", "histogram_fraction", "histogram_stddev"}
)


def value_type(expr: Expr) -> ValueType:  # noqa: PLR0911 -- one return per node kind
    """The type of value `expr` evaluates to."""
    match expr:
        case NumberLiteral():
            return ValueType.SCALAR
        case StringLiteral():
            return ValueType.STRING
        case VectorSelector() | AggregateExpr():
            return ValueType.VECTOR
        case MatrixSelector() | SubqueryExpr():
            return ValueType.MATRIX
        case Call():
            return FUNCTIONS[expr.function].returns
        case UnaryExpr():
            return value_type(expr.expr)
        case BinaryExpr():
            both_scalar = (
                value_type(expr.lhs) is ValueType.SCALAR
                and value_type(expr.rhs) is ValueType.SCALAR
            )
            return ValueType.SCALAR if both_scalar else ValueType.VECTOR
    raise TypeError(f"not a PromQL expression: {expr!r}")  # pragma: no cover


# -- printing --------------------------------------------------------------------------------

_DURATION_UNITS = (
    ("y", 365 * 86_400_000, True),
    ("w", 7 * 86_400_000, True),
    ("d", 86_400_000, False),
    ("h", 3_600_000, False),
    ("m", 60_000, False),
    ("s", 1000, False),
    ("ms", 1, False),
)


def format_duration(seconds: float) -> str:
    """Render a duration as PromQL writes it: `1h30m`, `250ms`, `-5m`, `0s`.

    Years and weeks are used only when they divide the duration exactly, like Prometheus
    (`90d` reads better than `12w6d`).
    """
    millis = round(abs(seconds) * 1000)
    if millis == 0:
        return "0s"
    text = "-" if seconds < 0 else ""
    for unit, size, exact in _DURATION_UNITS:
        if exact and millis % size:
            continue
        count, millis = divmod(millis, size)
        if count:
            text += f"{count}{unit}"
    return text


def format_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    return repr(value)


def format(expr: Expr) -> str:  # noqa: A001 -- promtool calls this operation "format" too
    """Print `expr` as PromQL that parses back to an equal tree."""
    return _print(expr)


def _print(expr: Expr) -> str:  # noqa: PLR0911 -- one branch per node kind
    match expr:
        case NumberLiteral():
            return format_number(expr.value)
        case StringLiteral():
            return quote(expr.value)
        case VectorSelector():
            return _selector(expr) + _modifiers(expr)
        case MatrixSelector():
            inner = expr.selector
            return f"{_selector(inner)}[{format_duration(expr.range)}]{_modifiers(inner)}"
        case SubqueryExpr():
            inner_text = _print(expr.expr)
            if isinstance(expr.expr, BinaryExpr | UnaryExpr | NumberLiteral):
                inner_text = f"({inner_text})"
            step = format_duration(expr.step) if expr.step else ""
            return f"{inner_text}[{format_duration(expr.range)}:{step}]{_modifiers(expr)}"
        case Call():
            return f"{expr.function}({', '.join(_print(arg) for arg in expr.args)})"
        case AggregateExpr():
            clause = ""
            if expr.without or expr.grouping:
                keyword = "without" if expr.without else "by"
                clause = f" {keyword} ({', '.join(expr.grouping)}) "
            param = f"{_print(expr.param)}, " if expr.param is not None else ""
            return f"{expr.op}{clause}({param}{_print(expr.expr)})"
        case UnaryExpr():
            operand = _print(expr.expr)
            if isinstance(expr.expr, NumberLiteral | BinaryExpr | UnaryExpr):
                operand = f"({operand})"
            return f"{expr.op}{operand}"
        case BinaryExpr():
            return _binary(expr)
    raise TypeError(f"not a PromQL expression: {expr!r}")  # pragma: no cover


def _selector(selector: VectorSelector) -> str:
    if selector.matchers or not selector.name:
        inner = ", ".join(str(matcher) for matcher in selector.matchers)
        return f"{selector.name}{{{inner}}}"
    return selector.name


def _modifiers(node: VectorSelector | SubqueryExpr) -> str:
    text = f" offset {format_duration(node.offset)}" if node.offset else ""
    if node.at_anchor is not None:
        text += f" @ {node.at_anchor.value}()"
    elif node.at is not None:
        text += f" @ {node.at:.3f}"
    return text


def _binary(expr: BinaryExpr) -> str:
    precedence = PRECEDENCE[expr.op]
    left, right = _print(expr.lhs), _print(expr.rhs)
    if _needs_parens(expr.lhs, precedence, bare_if_equal=expr.op not in RIGHT_ASSOCIATIVE):
        left = f"({left})"
    elif expr.op == "^" and (
        isinstance(expr.lhs, UnaryExpr)
        or (isinstance(expr.lhs, NumberLiteral) and math.copysign(1, expr.lhs.value) < 0)
    ):
        # "-a ^ b" reads as -(a ^ b): a negated left operand of ^ keeps its parentheses.
        left = f"({left})"
    if _needs_parens(expr.rhs, precedence, bare_if_equal=expr.op in RIGHT_ASSOCIATIVE):
        right = f"({right})"
    modifiers = " bool" if expr.return_bool else ""
    matching = expr.matching
    if matching is not None:
        if matching.on or matching.labels:
            keyword = "on" if matching.on else "ignoring"
            modifiers += f" {keyword}({', '.join(matching.labels)})"
        if matching.card is Cardinality.MANY_TO_ONE:
            modifiers += f" group_left({', '.join(matching.include)})"
        elif matching.card is Cardinality.ONE_TO_MANY:
            modifiers += f" group_right({', '.join(matching.include)})"
    return f"{left} {expr.op}{modifiers} {right}"


def _needs_parens(child: Expr, precedence: int, *, bare_if_equal: bool) -> bool:
    """Whether a binary operand must be parenthesised to keep its place in the tree.

    `bare_if_equal` is True for the operand on the side the operator associates towards,
    where a child of equal precedence may stand without parentheses.
    """
    if not isinstance(child, BinaryExpr):
        return False
    child_precedence = PRECEDENCE[child.op]
    if child_precedence != precedence:
        return child_precedence < precedence
    return not bare_if_equal
