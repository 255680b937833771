"""Properties of the parser, the evaluator and the TSDB over generated inputs."""

from __future__ import annotations

import math
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from selfheal.telemetry import promql
from selfheal.telemetry.promql import ast
from selfheal.telemetry.tsdb import TSDB, Labels, Matcher, MatchOp

# -- parser round trip ------------------------------------------------------------------------

_METRICS = st.sampled_from(["up", "http_requests_total", "job:rate:5m", "rate", "x"])
_LABEL_NAMES = st.sampled_from(["job", "instance", "le", "on", "by", "code", "__name__"])
_VALUES = st.text(min_size=0, max_size=6)
_DURATIONS = st.integers(min_value=1, max_value=10**9).map(lambda ms: ms / 1000)
_NUMBERS = st.floats(allow_nan=False, width=64)


@st.composite
def _matchers(draw: st.DrawFn) -> ast.VectorSelector:
    name = draw(st.one_of(st.just(""), _METRICS))
    candidates = [
        Matcher(label, op, value)
        for label, op, value in draw(
            st.lists(
                st.tuples(
                    _LABEL_NAMES.filter(lambda label: label != "__name__" or not name),
                    st.sampled_from([MatchOp.EQUAL, MatchOp.NOT_EQUAL]),
                    _VALUES,
                ),
                max_size=3,
            )
        )
    ]
    if not name:
        candidates.append(Matcher("job", MatchOp.REGEX, draw(st.sampled_from(["a.+", "x|y"]))))
    offset = draw(st.one_of(st.just(0.0), _DURATIONS, _DURATIONS.map(lambda d: -d)))
    at = draw(st.one_of(st.none(), st.integers(-(10**12), 10**12).map(lambda ms: ms / 1000)))
    anchor = None if at is not None else draw(st.one_of(st.none(), st.sampled_from(ast.AtAnchor)))
    return ast.VectorSelector(name, tuple(candidates), offset=offset, at=at, at_anchor=anchor)


def _vectors(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    scalars = _NUMBERS.map(ast.NumberLiteral)
    vector_children = children.filter(lambda e: ast.value_type(e) is ast.ValueType.VECTOR)
    ranges = st.builds(ast.MatrixSelector, _matchers(), _DURATIONS)
    subqueries = st.builds(
        ast.SubqueryExpr,
        vector_children,
        _DURATIONS,
        st.one_of(st.just(0.0), _DURATIONS),
        offset=st.one_of(st.just(0.0), _DURATIONS),
    )
    return st.one_of(
        st.builds(ast.Call, st.sampled_from(["rate", "max_over_time"]), st.tuples(ranges)),
        st.builds(ast.Call, st.just("max_over_time"), st.tuples(subqueries)),
        st.builds(ast.Call, st.just("abs"), st.tuples(vector_children)),
        st.builds(ast.Call, st.just("round"), st.tuples(vector_children, scalars)),
        st.builds(
            ast.AggregateExpr,
            st.sampled_from(["sum", "max", "count"]),
            vector_children,
            st.none(),
            st.lists(_LABEL_NAMES, max_size=2).map(tuple),
            without=st.booleans(),
        ),
        st.builds(ast.AggregateExpr, st.just("topk"), vector_children, scalars),
        st.builds(ast.UnaryExpr, st.sampled_from(["-", "+"]), vector_children),
        st.builds(
            ast.BinaryExpr,
            st.sampled_from(["+", "-", "*", "/", "%", "^", "atan2", ">", "=="]),
            vector_children,
            st.one_of(vector_children, scalars),
        ).map(_complete_binary),
        st.builds(
            ast.BinaryExpr,
            st.sampled_from(["and", "or", "unless"]),
            vector_children,
            vector_children,
            st.builds(
                ast.VectorMatching,
                st.just(ast.Cardinality.MANY_TO_MANY),
                on=st.booleans(),
                labels=st.lists(_LABEL_NAMES, max_size=2).map(tuple),
            ),
        ),
    )


def _complete_binary(expr: ast.BinaryExpr) -> ast.BinaryExpr:
    """Give a generated binary expression the matching and bool the parser would."""
    both_vectors = ast.value_type(expr.rhs) is ast.ValueType.VECTOR
    return ast.BinaryExpr(
        expr.op,
        expr.lhs,
        expr.rhs,
        ast.VectorMatching() if both_vectors else None,
        return_bool=expr.op in ast.COMPARISONS and not both_vectors,
    )


_EXPRESSIONS = st.recursive(
    st.one_of(_matchers(), _NUMBERS.map(ast.NumberLiteral)),
    _vectors,
    max_leaves=8,
)


@settings(max_examples=300)
@given(_EXPRESSIONS)
def test_a_printed_tree_parses_back_to_the_same_tree(tree: ast.Expr) -> None:
    """format() and parse() are inverses on every well-typed tree."""
    assert promql.parse(promql.format(tree)) == tree


# -- aggregation ------------------------------------------------------------------------------

_SAMPLES = st.dictionaries(
    st.tuples(st.sampled_from(["a", "b", "c", ""]), st.integers(0, 20).map(str)),
    st.integers(-1000, 1000).map(float),
    max_size=30,
)


def _vector_db(samples: dict[tuple[str, str], float]) -> TSDB:
    db = TSDB()
    for (group, ident), value in samples.items():
        db.append({"__name__": "m", "x": group, "id": ident}, timestamp=0, value=value)
    return db


@given(_SAMPLES)
def test_sum_by_equals_grouping_by_hand(samples: dict[tuple[str, str], float]) -> None:
    """Grouping by x adds the values of each x (a missing x is its own group)."""
    expected: dict[Labels, float] = defaultdict(float)
    for (group, _), value in samples.items():
        expected[Labels(x=group)] += value
    result = promql.evaluate("sum by (x) (m)", storage=_vector_db(samples), at=0)
    assert isinstance(result, promql.Vector)
    assert result.as_dict() == expected


@given(_SAMPLES, st.integers(-1000, 1000), st.sampled_from(["<", ">", "==", "!=", "<=", ">="]))
def test_comparison_filtering_never_invents_series(
    samples: dict[tuple[str, str], float], threshold: int, op: str
) -> None:
    """A filter returns a subset of its input, values unchanged."""
    db = _vector_db(samples)
    source = promql.evaluate("m", storage=db, at=0)
    result = promql.evaluate(f"m {op} {threshold}", storage=db, at=0)
    assert isinstance(source, promql.Vector)
    assert isinstance(result, promql.Vector)
    original = source.as_dict()
    for sample in result:
        assert original[sample.labels] == sample.value


# -- rates ------------------------------------------------------------------------------------

_INCREMENTS = st.lists(st.integers(0, 1000).map(float), min_size=2, max_size=40)


@given(_INCREMENTS, st.integers(0, 14_999))
def test_rate_of_a_regular_counter_stays_within_extrapolation_bounds(
    increments: list[float], phase_ms: int
) -> None:
    """An increase is at least the observed rise, at most that rise extrapolated.

    The extrapolation limit is 1.1 average sample intervals at either end of the data.
    """
    db = TSDB()
    start = 1000 + phase_ms / 1000
    total = 0.0
    times = []
    values = []
    for index, increment in enumerate(increments):
        total += increment
        times.append(start + index * 15)
        values.append(total)
        db.append({"__name__": "c"}, timestamp=times[-1], value=total)
    at = times[-1] + 5
    window = 300
    inside = [(t, v) for t, v in zip(times, values, strict=True) if at - window <= t <= at]
    result = promql.evaluate(f"increase(c[{window}s])", storage=db, at=at)
    assert isinstance(result, promql.Vector)
    if len(inside) < 2:
        assert len(result) == 0
        return
    rise = inside[-1][1] - inside[0][1]
    sampled = inside[-1][0] - inside[0][0]
    average = sampled / (len(inside) - 1)
    [sample] = result
    assert rise * (1 - 1e-12) <= sample.value <= rise * (sampled + 2.2 * average) / sampled + 1e-9


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 100).map(float)), min_size=1, max_size=20))
def test_counter_resets_count_the_value_after_the_restart(steps: list[tuple[bool, float]]) -> None:
    """With samples on both range ends there is no extrapolation: increase() is exact."""
    db = TSDB()
    value, true_increase = 50.0, 0.0
    db.append({"__name__": "c"}, timestamp=0, value=value)
    for index, (restart, amount) in enumerate(steps, start=1):
        if restart and value > 0:
            # A restart is only visible as a drop: the counter starts again from zero and
            # has reached something below its old value by the next scrape.
            restarted = value * amount / 101
            value, true_increase = restarted, true_increase + restarted
        else:
            value, true_increase = value + amount, true_increase + amount
        db.append({"__name__": "c"}, timestamp=index * 15, value=value)
    at = len(steps) * 15
    result = promql.evaluate(f"increase(c[{at}s])", storage=db, at=at)
    assert isinstance(result, promql.Vector)
    [sample] = result
    assert math.isclose(sample.value, true_increase, rel_tol=1e-12, abs_tol=1e-9)


# -- staleness and retention ------------------------------------------------------------------


@given(st.integers(1, 30), st.integers(0, 400))
def test_staleness_hides_a_series_from_instant_selectors_after_the_marker(
    samples: int, after: int
) -> None:
    """From the marker on (within the lookback and beyond) the series is not returned."""
    db = TSDB()
    for index in range(samples):
        db.append({"__name__": "up"}, timestamp=index * 15, value=1.0)
    marked = samples * 15
    db.mark_stale({"__name__": "up"}, marked)
    result = promql.evaluate("up", storage=db, at=marked + after)
    assert isinstance(result, promql.Vector)
    assert len(result) == 0
    before = promql.evaluate("up", storage=db, at=marked - 0.001)
    assert isinstance(before, promql.Vector)
    assert len(before) == 1


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.floats(0, 50)), min_size=1, max_size=60),
    st.integers(1, 100),
)
def test_retention_never_keeps_samples_older_than_the_retention(
    steps: list[tuple[str, float]], retention: int
) -> None:
    """Whatever the append pattern, no query sees a sample older than newest - retention."""
    db = TSDB(retention=retention)
    clock = 0.0
    for job, advance in steps:
        clock += advance
        db.append({"__name__": "m", "job": job}, timestamp=clock, value=1.0)
    cutoff = db.newest - retention
    everything = db.select([Matcher("__name__", MatchOp.EQUAL, "m")], start=-math.inf, end=math.inf)
    for _, samples in everything:
        assert all(t >= cutoff for t, _ in samples)
    db.compact()
    for labels in db.series():
        assert all(t >= cutoff for t, _ in db.samples(labels))
        assert db.samples(labels)
