"""PromQL: parse an expression, evaluate it at an instant or over a range.

    expr = promql.parse('sum by (job) (rate(http_requests_total[5m]))')
    result = promql.evaluate(expr, storage=db, at=clock.now())

The dialect and the numbers are Prometheus 2.42's (see docs/promql.md for the supported
subset). Storage is any `Queryable`: the embedded `tsdb.TSDB`, or a remote source with the
same `select`. Every problem with an expression, at parse or evaluation time, raises
`PromQLError`, a `ConfigError` carrying the position of the offending token when there is
one.

Modules: `lexer` and `parser` (text to `ast`), `evaluator` (the tree against data),
`functions`, `aggregations` and `operators` (the arithmetic), `results` (value types).
"""

from selfheal.telemetry.promql import ast, results
from selfheal.telemetry.promql.ast import (
    Expr,
    PromQLError,
    ValueType,
    format,  # noqa: A004 -- the printer's name, as promtool's `promql format`
    value_type,
)
from selfheal.telemetry.promql.evaluator import Queryable, evaluate, evaluate_range
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

__all__ = [
    "Expr",
    "Matrix",
    "PromQLError",
    "Queryable",
    "RangeSeries",
    "Sample",
    "Scalar",
    "String",
    "Value",
    "ValueType",
    "Vector",
    "ast",
    "evaluate",
    "evaluate_range",
    "format",
    "parse",
    "results",
    "value_type",
]
