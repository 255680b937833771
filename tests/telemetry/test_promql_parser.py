"""The PromQL parser: literals, selectors, precedence, modifiers, printing and errors."""

from __future__ import annotations

import math

import pytest

from selfheal.domain.errors import ConfigError
from selfheal.telemetry import promql
from selfheal.telemetry.promql import ast
from selfheal.telemetry.promql.ast import (
    AggregateExpr,
    BinaryExpr,
    Call,
    Cardinality,
    MatrixSelector,
    NumberLiteral,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorMatching,
    VectorSelector,
)
from selfheal.telemetry.tsdb import Matcher, MatchOp

parse = promql.parse


def sel(name: str, *matchers: Matcher, **modifiers: object) -> VectorSelector:
    return VectorSelector(name, matchers, **modifiers)  # type: ignore[arg-type]


def num(value: float) -> NumberLiteral:
    return NumberLiteral(value)


# -- literals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1.0),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        (".5", 0.5),
        ("0x1f", 31.0),
        ("010", 8.0),  # Go's base-0 integer parsing: a leading zero means octal
        ("08", 8.0),  # ...but a bad octal falls back to decimal float parsing
        ("Inf", math.inf),
        ("-inf", -math.inf),
        ("+1", 1.0),
        ("-1.5", -1.5),
    ],
)
def test_number_literals_read_as_prometheus_reads_them(text: str, value: float) -> None:
    """Decimal, exponent, hex, octal, Inf and signed numbers are number literals."""
    assert parse(text) == num(value)


def test_nan_is_a_number_in_any_case() -> None:
    """`NaN`, `nan` and `NAN` are all the NaN literal."""
    for text in ("NaN", "nan", "NAN"):
        parsed = parse(text)
        assert isinstance(parsed, NumberLiteral)
        assert math.isnan(parsed.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('"a\\nb\\t\\"q\\""', 'a\nb\t"q"'),
        ("'single \\'quoted\\''", "single 'quoted'"),
        ("`raw \\n stays`", "raw \\n stays"),
        ('"\\x41\\u00e9\\U0001F600\\101"', "Aé😀A"),
    ],
)
def test_string_literals_decode_go_escapes(text: str, value: str) -> None:
    """Double and single quotes take Go's escapes; backticks are raw."""
    assert parse(text) == StringLiteral(value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1d", 86400), ("2w", 1209600)],
)
def test_durations_in_a_range_selector(text: str, seconds: float) -> None:
    """Durations are unit runs from largest to smallest."""
    assert parse(f"x[{text}]") == MatrixSelector(sel("x"), seconds)


# -- selectors --------------------------------------------------------------------------------


def test_selectors_keep_their_matchers_in_order() -> None:
    """All four operators parse; the name is kept apart from the brace matchers."""
    parsed = parse('http_requests_total{job="api", code!="200", path=~"/a.*", method!~"GET|PUT",}')
    assert parsed == sel(
        "http_requests_total",
        Matcher("job", MatchOp.EQUAL, "api"),
        Matcher("code", MatchOp.NOT_EQUAL, "200"),
        Matcher("path", MatchOp.REGEX, "/a.*"),
        Matcher("method", MatchOp.NOT_REGEX, "GET|PUT"),
    )


def test_a_selector_may_name_the_metric_by_a_matcher() -> None:
    """`{__name__=~"..."}` selects by metric name; keywords work as label names."""
    assert parse('{__name__=~"up|down", on="x"}') == sel(
        "", Matcher("__name__", MatchOp.REGEX, "up|down"), Matcher("on", MatchOp.EQUAL, "x")
    )


def test_metric_names_may_contain_colons() -> None:
    """Recording-rule names like `job:rate5m:sum` are metric names."""
    assert parse("job:http_requests:rate5m") == sel("job:http_requests:rate5m")


def test_modifiers_attach_to_selectors_and_subqueries() -> None:
    """offset, @ (number, start(), end()) and subqueries, in either modifier order."""
    assert parse("x offset 5m") == sel("x", offset=300.0)
    assert parse("x offset -1m") == sel("x", offset=-60.0)
    assert parse("x @ 1609746000.5") == sel("x", at=1609746000.5)
    assert parse("x @ start() offset 1m") == sel("x", at_anchor=ast.AtAnchor.START, offset=60.0)
    assert parse("x[5m] offset 1m @ end()") == MatrixSelector(
        sel("x", offset=60.0, at_anchor=ast.AtAnchor.END), 300.0
    )
    assert parse("rate(x[1m])[10m:30s] offset 1m") == SubqueryExpr(
        Call("rate", (MatrixSelector(sel("x"), 60.0),)), 600.0, 30.0, offset=60.0
    )
    assert parse("x[10m:]") == SubqueryExpr(sel("x"), 600.0)


# -- operators --------------------------------------------------------------------------------


def test_multiplication_binds_tighter_than_addition() -> None:
    """`a + b * c` is `a + (b * c)`."""
    assert parse("a + b * c") == BinaryExpr(
        "+", sel("a"), BinaryExpr("*", sel("b"), sel("c"), VectorMatching()), VectorMatching()
    )


def test_subtraction_is_left_associative() -> None:
    """`1 - 2 - 3` is `(1 - 2) - 3`."""
    assert parse("1 - 2 - 3") == BinaryExpr("-", BinaryExpr("-", num(1), num(2)), num(3))


def test_power_is_right_associative() -> None:
    """`2 ^ 3 ^ 2` is `2 ^ (3 ^ 2)`."""
    assert parse("2 ^ 3 ^ 2") == BinaryExpr("^", num(2), BinaryExpr("^", num(3), num(2)))


def test_unary_minus_binds_looser_than_power() -> None:
    """`-2 ^ 2` is `-(2 ^ 2)`, while `-2 * 3` folds the sign into the literal."""
    assert parse("-2 ^ 2") == UnaryExpr("-", BinaryExpr("^", num(2), num(2)))
    assert parse("-2 * 3") == BinaryExpr("*", num(-2), num(3))
    assert parse("-x") == UnaryExpr("-", sel("x"))


def test_set_operators_bind_loosest_with_or_below_and() -> None:
    """`a or b and c` is `a or (b and c)`; comparisons bind tighter than `and`."""
    many = VectorMatching(Cardinality.MANY_TO_MANY)
    assert parse("a or b and c") == BinaryExpr(
        "or", sel("a"), BinaryExpr("and", sel("b"), sel("c"), many), many
    )
    assert parse("a > 1 and b") == BinaryExpr(
        "and", BinaryExpr(">", sel("a"), num(1)), sel("b"), many
    )


def test_keywords_are_case_insensitive() -> None:
    """`SUM(x) BY (job)` is `sum by (job) (x)`."""
    assert parse("SUM(x) BY (job)") == parse("sum by (job) (x)")


def test_vector_matching_modifiers() -> None:
    """bool, on/ignoring and group_left/group_right are recorded on the operator."""
    parsed = parse("a / on(job) group_left(team) b")
    assert isinstance(parsed, BinaryExpr)
    assert parsed.matching == VectorMatching(
        Cardinality.MANY_TO_ONE, on=True, labels=("job",), include=("team",)
    )
    parsed = parse("a > bool ignoring(code) group_right b")
    assert isinstance(parsed, BinaryExpr)
    assert parsed.return_bool
    assert parsed.matching == VectorMatching(Cardinality.ONE_TO_MANY, labels=("code",))


def test_aggregation_grouping_goes_before_or_after_the_arguments() -> None:
    """`sum by (a) (x)` and `sum(x) by (a)` are the same; parameters come first."""
    assert parse("sum by (a, b) (x)") == parse("sum(x) by (a, b,)")
    assert parse("topk(3, x) without (a)") == AggregateExpr(
        "topk", sel("x"), num(3), ("a",), without=True
    )
    assert parse('count_values("v", x)') == AggregateExpr(
        "count_values", sel("x"), StringLiteral("v")
    )


def test_comments_and_line_breaks_are_ignored() -> None:
    """`#` starts a comment that runs to the end of the line."""
    assert parse("sum(  # total\n  x\n)") == parse("sum(x)")


# -- printing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'sum by (job) (rate(http_requests_total{code=~"5.."}[5m])) / on(job) group_left(team) x',
        "(-1) ^ 2",
        "-(2 ^ 2)",
        "(a + b) * c",
        "a - (b - c)",
        "(2 ^ 3) ^ 2",
        "x offset -5m @ 100.000",
        "max_over_time((a + b)[5m:30s] @ end())",
        'label_replace(x, "dst", "$1", "src", "(.*)")',
        "-(-x)",
    ],
)
def test_format_prints_text_that_parses_back_to_the_same_tree(text: str) -> None:
    """The printer adds exactly the parentheses precedence needs."""
    tree = parse(text)
    assert parse(promql.format(tree)) == tree


def test_format_writes_durations_as_prometheus_does() -> None:
    """Durations use the largest units that fit; years and weeks only when exact."""
    assert promql.format(parse("x[90m]")) == "x[1h30m]"
    assert promql.format(parse("x[7d]")) == "x[1w]"
    assert promql.format(parse("x[8d]")) == "x[8d]"


# -- types ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("1", "scalar"),
        ('"s"', "string"),
        ("x", "instant vector"),
        ("x[5m]", "range vector"),
        ("x[5m:]", "range vector"),
        ("time()", "scalar"),
        ("1 + x", "instant vector"),
        ("1 + 1", "scalar"),
    ],
)
def test_every_expression_has_a_value_type(text: str, kind: str) -> None:
    """The type decides where an expression may be used."""
    assert promql.value_type(parse(text)) == kind


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("foo{", "unexpected end of input in label matching", 5),
        ("foo{a=1}", 'unexpected number "1" in label matching, expected string', 7),
        ("foo{a}", 'unexpected "}" in label matching, expected label matching operator', 6),
        ("sum(", "unexpected end of input, expected an expression", 5),
        ("a +", "unexpected end of input, expected an expression", 4),
        ("foo bar", 'unexpected identifier "bar"', 5),
        ("{}", "vector selector must contain at least one non-empty matcher", 1),
        ('{a=~".*"}', "vector selector must contain at least one non-empty matcher", 1),
        ('foo{__name__="bar"}', 'metric name must not be set twice: "foo" or "bar"', 1),
        ("rate(x)", 'expected type range vector in call to function "rate", got instant vector', 6),
        ("rate(x[5m], 1)", 'expected 1 argument(s) in call to "rate", got 2', 1),
        ("round()", 'expected 1 to 2 argument(s) in call to "round", got 0', 1),
        (
            "sum(x[5m])",
            "expected type instant vector in aggregation expression, got range vector",
            5,
        ),
        ('topk("a", x)', "expected type scalar in aggregation parameter, got string", 6),
        ("topk(x)", "wrong number of arguments for aggregate expression provided, expected 2", 1),
        ("1 > 2", "comparisons between scalars must use BOOL modifier", 3),
        ("a + bool b", "bool modifier can only be used on comparison operators", 5),
        ("a and 1", 'set operator "and" not allowed in binary scalar expression', 3),
        ("a and on(x) group_left b", 'no grouping allowed for "and" operation', 13),
        (
            "a + on(x) group_left(x) b",
            'label "x" must not occur in ON and GROUP clause at once',
            11,
        ),
        ("x[5m] + 1", "binary expression must contain only scalar and instant vector types", 7),
        (
            "-x[5m]",
            "unary expression only allowed on expressions of type scalar or instant vector",
            1,
        ),
        ("(x)[5m]", "ranges only allowed for vector selectors", 4),
        ("x offset 1m[5m]", "no offset modifiers allowed before range", 12),
        ("x @ 1 [5m]", "no @ modifiers allowed before range", 7),
        ("x[5m][1h:]", "subquery is only allowed on instant vector, got range vector", 6),
        ("x offset 1m offset 2m", "offset may not be set multiple times", 13),
        ("sum(x) offset 1m", "offset modifier must be preceded by an instant vector selector", 8),
        ("x @ 1 @ 2", "@ <timestamp> may not be set multiple times", 7),
        ("x @ Inf", "timestamp out of bounds for @ modifier", 5),
        ("x[5h1h]", 'bad duration "5h1h"', 3),
        ("x[300y]", "duration out of range", 3),  # past int64 nanoseconds, as Prometheus
        ("x offset 1" + "0" * 400 + "y", "duration out of range", 10),
        ("5m", 'unexpected duration "5m"', 1),
        ("1a", 'bad number or duration syntax: "1a"', 1),
        ('"abc', "unterminated quoted string", 1),
        ('"\\q"', "unknown escape sequence \\q", 2),
        ("foo ! bar", 'unexpected character after "!"', 5),
        ("x + \u00b2", "unexpected character '\u00b2'", 5),  # a digit, but not an ASCII one
        ('x{a=~"("}', "invalid regular expression `(`: missing )", 6),
        ('x{a=~"(a)\\\\1"}', "invalid regular expression `(a)\\1`: invalid escape sequence", 6),
        ("nope(x)", 'unknown function with name "nope"', 1),
    ],
)
def test_errors_say_what_was_expected_and_where(text: str, message: str, column: int) -> None:
    """Each error names the problem and points at the token (1-based column)."""
    with pytest.raises(promql.PromQLError) as caught:
        parse(text)
    assert message in str(caught.value)
    assert caught.value.line == 1
    assert caught.value.column == column
    assert caught.value.position == column - 1


def test_error_positions_count_lines_in_multi_line_expressions() -> None:
    """Line and column are within the expression; the offset is from its start."""
    with pytest.raises(promql.PromQLError) as caught:
        parse("sum(\n  rate(x)\n)")
    assert (caught.value.line, caught.value.column, caught.value.position) == (2, 8, 12)
    assert str(caught.value).startswith("promql:2:8: ")


def test_promql_errors_are_config_errors() -> None:
    """A bad expression is the user's input being wrong."""
    with pytest.raises(ConfigError):
        parse("sum(")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("histogram_count(x)", '"histogram_count" works on native histograms'),
        ("holt_winters(x[5m], 0.5, 0.5)", 'function "holt_winters" is not supported'),
        ("x @ time()", "the @ modifier takes a Unix timestamp or start() or end()"),
    ],
)
def test_unsupported_constructs_are_named_in_the_error(text: str, message: str) -> None:
    """What the engine does not do is refused by name, not as a generic syntax error."""
    with pytest.raises(promql.PromQLError) as caught:
        parse(text)
    assert message in str(caught.value)
