"""PromQL evaluation with Prometheus 2.42 semantics; expected values are worked by hand."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest

from selfheal.telemetry import promql
from selfheal.telemetry.tsdb import TSDB, Labels


def load(
    db: TSDB,
    labels: Mapping[str, str],
    *,
    values: Sequence[float | None],
    every: float = 15.0,
    start: float = 0.0,
) -> None:
    """Append `values` at start, start + every, ...; None leaves a gap."""
    for index, value in enumerate(values):
        if value is not None:
            db.append(labels, timestamp=start + index * every, value=value)


def instant(query: str, db: TSDB, *, at: float) -> dict[str, float]:
    """An instant query's samples keyed by their label set as Prometheus prints it."""
    result = promql.evaluate(query, storage=db, at=at)
    assert isinstance(result, promql.Vector), result
    return {str(sample.labels): sample.value for sample in result}


def scalar(query: str, db: TSDB | None = None, *, at: float = 0.0) -> float:
    result = promql.evaluate(query, storage=db or TSDB(), at=at)
    assert isinstance(result, promql.Scalar), result
    return result.value


@pytest.fixture
def db() -> TSDB:
    return TSDB(retention=86_400)


@pytest.fixture
def jobs(db: TSDB) -> TSDB:
    """Four `x` series in two jobs at t=0: api a=1 b=3, web c=10 d=3; and team_info for api."""
    for instance, job, value in (
        ("a", "api", 1),
        ("b", "api", 3),
        ("c", "web", 10),
        ("d", "web", 3),
    ):
        db.append({"__name__": "x", "job": job, "instance": instance}, timestamp=0, value=value)
    db.append({"__name__": "team_info", "job": "api", "team": "core"}, timestamp=0, value=1)
    return db


# -- selectors, lookback and staleness --------------------------------------------------------


def test_an_instant_selector_returns_the_latest_sample_within_five_minutes(db: TSDB) -> None:
    """The lookback window [t - 5m, t] includes its start; a sample after t is not seen."""
    db.append({"__name__": "up"}, timestamp=100, value=1)
    assert instant("up", db, at=400) == {'{__name__="up"}': 1}
    assert instant("up", db, at=400.001) == {}
    assert instant("up", db, at=99.999) == {}


def test_a_stale_marker_hides_the_series_at_once(db: TSDB) -> None:
    """After the marker the series is gone, though older samples are inside the lookback."""
    load(db, {"__name__": "up"}, values=[1, 1, 1])
    db.mark_stale({"__name__": "up"}, 45)
    assert instant("up", db, at=44) == {'{__name__="up"}': 1}
    assert instant("up", db, at=45) == {}
    assert instant("up", db, at=100) == {}
    db.append({"__name__": "up"}, timestamp=60, value=2)
    assert instant("up", db, at=60) == {'{__name__="up"}': 2}
    # Range selectors skip the marker: [0, 60] holds 0, 15, 30 and 60.
    assert instant("count_over_time(up[1m])", db, at=60) == {"{}": 4}


def test_a_range_selector_includes_both_ends_as_in_prometheus_2(db: TSDB) -> None:
    """Prometheus 2.x selects [t - range, t]: a sample exactly at the start counts."""
    load(db, {"__name__": "c"}, values=[0, 1, 2, 3, 4, 5])
    result = promql.evaluate("c[30s]", storage=db, at=75)
    assert isinstance(result, promql.Matrix)
    [series] = result.series
    assert series.labels == Labels(__name__="c")
    assert series.points == ((45.0, 3.0), (60.0, 4.0), (75.0, 5.0))


def test_offset_and_at_move_the_time_a_selector_reads(db: TSDB) -> None:
    """`offset 1m` reads a minute earlier; `@ 30` reads at 30 whatever the query time."""
    load(db, {"__name__": "g"}, values=[0, 15, 30, 45, 60, 75, 90])
    assert instant("g offset 1m", db, at=90) == {'{__name__="g"}': 30}
    assert instant("g @ 30", db, at=90) == {'{__name__="g"}': 30}
    assert instant("g @ 60 offset 15s", db, at=0) == {'{__name__="g"}': 45}


# -- rate, increase, delta --------------------------------------------------------------------


@pytest.fixture
def counter(db: TSDB) -> TSDB:
    """`c` grows by 10 every 15 s from 0 at t=0 to 400 at t=600."""
    load(db, {"__name__": "c"}, values=[10 * k for k in range(41)])
    return db


def test_rate_of_a_linear_counter_is_its_slope(counter: TSDB) -> None:
    """Samples at both ends of [540, 600]: no extrapolation, 40 over 60 s."""
    assert instant("count_over_time(c[1m])", counter, at=600) == {"{}": 5}
    assert instant("increase(c[1m])", counter, at=600) == {"{}": 40}
    assert instant("rate(c[1m])", counter, at=600) == {"{}": 40 / 60}


def test_rate_extrapolates_to_boundaries_the_samples_come_close_to(db: TSDB) -> None:
    """Samples at 545..590 in [540, 600]: 30 over 45 s, extrapolated 5 s back and 10 s on.

    Both gaps are under 1.1 x the 15 s spacing, so the increase is 30 x 60 / 45 = 40.
    """
    load(db, {"__name__": "c"}, values=[10 * k for k in range(40)], start=5)
    assert instant("increase(c[1m])", db, at=600) == {"{}": pytest.approx(40, rel=1e-12)}
    assert instant("rate(c[1m])", db, at=600) == {"{}": pytest.approx(40 / 60, rel=1e-12)}


def test_rate_extrapolates_only_half_a_step_where_the_series_starts(db: TSDB) -> None:
    """First sample 30 s into the range, more than 1.1 x 15 s: extend by 7.5 s only.

    Samples 100, 110, 120 at 570, 585, 600: 20 over 30 s, extended to 37.5 s, so 25.
    """
    load(db, {"__name__": "c"}, values=[100, 110, 120], start=570)
    assert instant("increase(c[1m])", db, at=600) == {"{}": pytest.approx(25, rel=1e-12)}


def test_rate_never_extrapolates_a_counter_below_zero(db: TSDB) -> None:
    """Counter 1, 11, 21, 31 at 545..590: going back 5 s would pass zero, so stop at 1.5 s.

    The counter reaches zero 45 x 1/30 = 1.5 s before its first sample, so the interval is
    45 + 1.5 + 10 = 56.5 s and the increase 30 x 56.5 / 45.
    """
    load(db, {"__name__": "c"}, values=[1, 11, 21, 31], start=545)
    expected = 30 * 56.5 / 45
    assert instant("increase(c[1m])", db, at=600) == {"{}": pytest.approx(expected, rel=1e-12)}


def test_counter_resets_are_added_back(db: TSDB) -> None:
    """100, 110, 5, 15, 25: the drop to 5 is a restart, so the increase is 10 + 5 + 10 + 10."""
    load(db, {"__name__": "c"}, values=[100, 110, 5, 15, 25], start=540)
    assert instant("increase(c[1m])", db, at=600) == {"{}": 35}
    assert instant("rate(c[1m])", db, at=600) == {"{}": 35 / 60}
    assert instant("resets(c[1m])", db, at=600) == {"{}": 1}
    # delta() treats the series as a gauge: just last minus first.
    assert instant("delta(c[1m])", db, at=600) == {"{}": -75}


def test_irate_and_idelta_use_the_last_two_samples(db: TSDB) -> None:
    """irate: 10 over 15 s; after a reset it takes the new value as the increase."""
    load(db, {"__name__": "c"}, values=[100, 110, 5, 15, 25], start=540)
    assert instant("irate(c[1m])", db, at=600) == {"{}": 10 / 15}
    assert instant("idelta(c[1m])", db, at=600) == {"{}": 10}
    assert instant("irate(c[1m])", db, at=570) == {"{}": 5 / 15}
    assert instant("idelta(c[1m])", db, at=570) == {"{}": -105}


def test_rate_needs_two_samples(db: TSDB) -> None:
    """A single sample gives no rate: the series is left out."""
    db.append({"__name__": "c"}, timestamp=600, value=5)
    assert instant("rate(c[1m])", db, at=600) == {}


def test_deriv_and_predict_linear_fit_a_line(db: TSDB) -> None:
    """The gauge 2t + 5, sampled every 10 s: slope 2, and 60 s after t=300 it reads 725."""
    load(db, {"__name__": "g"}, values=[2 * t + 5 for t in range(0, 301, 10)], every=10)
    assert instant("deriv(g[5m])", db, at=300) == {"{}": 2}
    assert instant("predict_linear(g[5m], 60)", db, at=300) == {"{}": 725}


def test_deriv_of_a_flat_series_is_exactly_zero(db: TSDB) -> None:
    """A constant gauge has slope 0, not the rounding noise of the least-squares formula."""
    load(db, {"__name__": "g"}, values=[0.1] * 20)
    assert instant("deriv(g[5m])", db, at=285) == {"{}": 0}


# -- other range functions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("avg_over_time", 2.5),
        ("sum_over_time", 10),
        ("count_over_time", 4),
        ("min_over_time", 1),
        ("max_over_time", 4),
        ("stdvar_over_time", 1.25),  # deviations from 2.5 squared: 2.25 + .25 + .25 + 2.25
        ("stddev_over_time", math.sqrt(1.25)),
        ("last_over_time", 4),
        ("present_over_time", 1),
        ("changes", 3),
    ],
)
def test_over_time_functions_summarise_the_window(db: TSDB, function: str, expected: float) -> None:
    """Values 1, 2, 3, 4 inside the window."""
    load(db, {"__name__": "v", "job": "a"}, values=[1, 2, 3, 4])
    expected_labels = '{__name__="v", job="a"}' if function == "last_over_time" else '{job="a"}'
    assert instant(f"{function}(v[1m])", db, at=45) == {expected_labels: expected}


@pytest.mark.parametrize(
    ("q", "expected"),
    [("0.5", 2.5), ("0", 1), ("1", 4), ("0.25", 1.75), ("1.5", math.inf), ("-1", -math.inf)],
)
def test_quantile_over_time_interpolates_between_ranks(db: TSDB, q: str, expected: float) -> None:
    """Over 1, 2, 3, 4 the 0.25-quantile sits at rank 0.75: 1 + 0.75 x (2 - 1)."""
    load(db, {"__name__": "v"}, values=[4, 1, 3, 2])
    assert instant(f"quantile_over_time({q}, v[1m])", db, at=45) == {"{}": expected}


def test_changes_ignores_repeated_values(db: TSDB) -> None:
    """1 1 2 2 1 changes twice."""
    load(db, {"__name__": "v"}, values=[1, 1, 2, 2, 1])
    assert instant("changes(v[1m])", db, at=60) == {"{}": 2}


# -- histogram_quantile -----------------------------------------------------------------------


def _buckets(db: TSDB, counts: Mapping[str, float], **labels: str) -> None:
    for bound, count in counts.items():
        db.append({"__name__": "h_bucket", "le": bound, **labels}, timestamp=0, value=count)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("0.5", 0.5),  # rank 20 in (0.1, 0.5]: 0.1 + 0.4 x (20 - 10) / 10
        ("0.75", 0.75),  # rank 30 in (0.5, 1]: 0.5 + 0.5 x (30 - 20) / 20
        ("0.05", 0.02),  # rank 2 in (0, 0.1]: interpolated from zero
        ("1", 1.0),
        ("2", math.inf),
        ("-1", -math.inf),
    ],
)
def test_histogram_quantile_interpolates_inside_the_bucket(
    db: TSDB, q: str, expected: float
) -> None:
    """Cumulative buckets 0.1:10, 0.5:20, 1:40, +Inf:40."""
    _buckets(db, {"0.1": 10, "0.5": 20, "1": 40, "+Inf": 40}, job="api")
    result = instant(f"histogram_quantile({q}, h_bucket)", db, at=0)
    assert result == {'{job="api"}': pytest.approx(expected, rel=1e-12)}


def test_histogram_quantile_in_the_inf_bucket_returns_the_highest_finite_bound(db: TSDB) -> None:
    """Rank 49.5 of 50 lies beyond le=1, in +Inf: the answer is 1."""
    _buckets(db, {"0.1": 10, "0.5": 20, "1": 40, "+Inf": 50})
    assert instant("histogram_quantile(0.99, h_bucket)", db, at=0) == {"{}": 1}


def test_histogram_quantile_repairs_non_monotonic_buckets(db: TSDB) -> None:
    """le=0.5 counting 8 < 10 is raised to 10; rank 20 then falls in (0.5, 1]: 0.5 + 0.5/3."""
    _buckets(db, {"0.1": 10, "0.5": 8, "1": 40, "+Inf": 40})
    assert instant("histogram_quantile(0.5, h_bucket)", db, at=0) == {
        "{}": pytest.approx(0.5 + 0.5 * 10 / 30, rel=1e-12)
    }


def test_histogram_quantile_without_an_inf_bucket_is_nan(db: TSDB) -> None:
    """A histogram must end in +Inf; samples without `le` are ignored."""
    _buckets(db, {"0.1": 10, "1": 40})
    db.append({"__name__": "h_bucket", "job": "x"}, timestamp=0, value=3)
    result = instant("histogram_quantile(0.5, h_bucket)", db, at=0)
    assert list(result) == ["{}"]
    assert math.isnan(result["{}"])


def test_histogram_quantile_groups_by_everything_but_le(db: TSDB) -> None:
    """One result per histogram, named by its other labels, metric name dropped."""
    _buckets(db, {"1": 1, "+Inf": 2}, job="a")
    _buckets(db, {"1": 4, "+Inf": 4}, job="b")
    assert instant("histogram_quantile(0.5, h_bucket)", db, at=0) == {
        '{job="a"}': 1.0,  # rank 1 reaches le=1 exactly: 0 + 1 x 1/1
        '{job="b"}': 0.5,  # rank 2 of 4 in (0, 1]
    }


# -- aggregations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sum by (job) (x)", {'{job="api"}': 4, '{job="web"}': 13}),
        ("sum(x) by (job)", {'{job="api"}': 4, '{job="web"}': 13}),
        ("avg by (job) (x)", {'{job="api"}': 2, '{job="web"}': 6.5}),
        ("min by (job) (x)", {'{job="api"}': 1, '{job="web"}': 3}),
        ("max by (job) (x)", {'{job="api"}': 3, '{job="web"}': 10}),
        ("count by (job) (x)", {'{job="api"}': 2, '{job="web"}': 2}),
        ("group by (job) (x)", {'{job="api"}': 1, '{job="web"}': 1}),
        ("stddev by (job) (x)", {'{job="api"}': 1, '{job="web"}': 3.5}),
        ("stdvar by (job) (x)", {'{job="api"}': 1, '{job="web"}': 12.25}),
        ("sum without (instance) (x)", {'{job="api"}': 4, '{job="web"}': 13}),
        ("sum by (__name__) (x)", {'{__name__="x"}': 17}),
        ("sum(x)", {"{}": 17}),
        ("quantile(0.5, x)", {"{}": 3}),  # 1 3 3 10: rank 1.5 between two 3s
        ('count_values("value", x)', {'{value="1"}': 1, '{value="3"}': 2, '{value="10"}': 1}),
        (
            "topk by (job) (1, x)",
            {
                '{__name__="x", instance="b", job="api"}': 3,
                '{__name__="x", instance="c", job="web"}': 10,
            },
        ),
        ("bottomk(1, x)", {'{__name__="x", instance="a", job="api"}': 1}),
        ("topk(0, x)", {}),
    ],
)
def test_aggregations_group_and_combine(jobs: TSDB, query: str, expected: dict[str, float]) -> None:
    """x: api a=1 b=3, web c=10 d=3."""
    assert instant(query, jobs, at=0) == expected


def test_topk_keeps_the_tie_prometheus_heap_keeps(db: TSDB) -> None:
    """Values a=5, b=5, c=7 (in label order), k=2: Prometheus keeps b and c.

    Its heap holds [a, b]; c beats the top (a), which is popped: the last element b moves
    to the top and a is removed; c is pushed. A "first seen wins" rule would keep a.
    """
    for name, value in (("a", 5), ("b", 5), ("c", 7)):
        db.append({"__name__": "t", "i": name}, timestamp=0, value=value)
    result = promql.evaluate("topk(2, t)", storage=db, at=0)
    assert isinstance(result, promql.Vector)
    assert [(s.labels["i"], s.value) for s in result] == [("c", 7), ("b", 5)]


def test_count_values_formats_values_like_go(db: TSDB) -> None:
    """Shortest digits without an exponent; infinities as +Inf and -Inf."""
    for index, value in enumerate((1e21, 0.5, -math.inf)):
        db.append({"__name__": "v", "i": str(index)}, timestamp=0, value=value)
    assert instant('count_values("v", v)', db, at=0) == {
        '{v="1000000000000000000000"}': 1,
        '{v="0.5"}': 1,
        '{v="-Inf"}': 1,
    }


def test_topk_with_a_k_too_large_for_int64_is_an_error(jobs: TSDB) -> None:
    """K must fit in a 64-bit integer, as in Prometheus."""
    with pytest.raises(promql.PromQLError, match="Scalar value 1e\\+20 overflows int64"):
        promql.evaluate("topk(1e20, x)", storage=jobs, at=0)


# -- binary operators -------------------------------------------------------------------------


def test_arithmetic_drops_the_metric_name(jobs: TSDB) -> None:
    """`x * 2` is no longer `x`."""
    assert instant('x{job="api"} * 2', jobs, at=0) == {
        '{instance="a", job="api"}': 2,
        '{instance="b", job="api"}': 6,
    }


def test_comparisons_filter_and_keep_the_vector_value_on_either_side(jobs: TSDB) -> None:
    """`x > 2` and `2 < x` keep the same samples, with x's values and name."""
    expected = {
        '{__name__="x", instance="b", job="api"}': 3,
        '{__name__="x", instance="c", job="web"}': 10,
        '{__name__="x", instance="d", job="web"}': 3,
    }
    assert instant("x > 2", jobs, at=0) == expected
    assert instant("2 < x", jobs, at=0) == expected


def test_bool_turns_a_filter_into_zero_or_one(jobs: TSDB) -> None:
    """With bool every sample stays, valued 1 or 0, without its name."""
    assert instant('x{job="api"} > bool 2', jobs, at=0) == {
        '{instance="a", job="api"}': 0,
        '{instance="b", job="api"}': 1,
    }
    assert scalar("1 < bool 2") == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("1 / 0", math.inf),
        ("-1 / 0", -math.inf),
        ("5 % -3", 2),  # Go's Mod takes the dividend's sign
        ("-5 % 3", -2),
        ("2 ^ 10", 1024),
        ("2 ^ 3 ^ 2", 512),
        ("-2 ^ 2", -4),
        ("0 ^ -1", math.inf),
        ("10 - 2 * 3", 4),
        ("7 atan2 0", math.pi / 2),
    ],
)
def test_scalar_arithmetic_follows_go(query: str, expected: float) -> None:
    """Division by zero and modulo behave as in Go, and precedence as in Prometheus."""
    assert scalar(query) == expected


@pytest.mark.parametrize("query", ["0 / 0", "1 % 0", "(-8) ^ 0.5", "Inf % 2"])
def test_undefined_scalar_arithmetic_is_nan(query: str) -> None:
    """Where Go returns NaN, so does the engine (Python would raise)."""
    assert math.isnan(scalar(query))


def test_vectors_match_on_all_labels_but_the_name_by_default(db: TSDB) -> None:
    """One-to-one matching pairs samples with identical labels, names aside."""
    for instance, used, total in (("a", 1, 4), ("b", 3, 4), ("c", 1, 2)):
        db.append({"__name__": "used", "instance": instance}, timestamp=0, value=used)
        if instance != "c":
            db.append({"__name__": "total", "instance": instance}, timestamp=0, value=total)
    assert instant("used / total", db, at=0) == {'{instance="a"}': 0.25, '{instance="b"}': 0.75}


def test_group_left_copies_labels_from_the_one_side(jobs: TSDB) -> None:
    """Each api sample gains the team label of the single team_info series of its job."""
    assert instant("x * on(job) group_left(team) team_info", jobs, at=0) == {
        '{instance="a", job="api", team="core"}': 1,
        '{instance="b", job="api", team="core"}': 3,
    }
    assert instant("team_info * on(job) group_right x", jobs, at=0) == {
        '{instance="a", job="api"}': 1,
        '{instance="b", job="api"}': 3,
    }


def test_many_to_many_matching_is_refused_with_prometheus_message(jobs: TSDB) -> None:
    """Two right-hand samples share job="api": no side is the "one" side."""
    with pytest.raises(promql.PromQLError) as caught:
        promql.evaluate("x + on(job) x", storage=jobs, at=0)
    assert str(caught.value) == (
        'found duplicate series for the match group {job="api"} on the right hand-side of the '
        'operation: [{__name__="x", instance="b", job="api"}, {__name__="x", instance="a", '
        'job="api"}];many-to-many matching not allowed: matching labels must be unique on one '
        "side"
    )


def test_one_to_one_matching_with_many_on_the_left_needs_group_left(jobs: TSDB) -> None:
    """Two api samples match one team_info sample: that must be said with group_left."""
    with pytest.raises(promql.PromQLError, match="many-to-one matching must be explicit"):
        promql.evaluate("x * on(job) team_info", storage=jobs, at=0)


def test_set_operators_filter_by_matching_labels(jobs: TSDB) -> None:
    """`and` keeps matched, `unless` keeps unmatched, `or` adds what the left lacks."""
    api = {
        '{__name__="x", instance="a", job="api"}': 1,
        '{__name__="x", instance="b", job="api"}': 3,
    }
    web = {
        '{__name__="x", instance="c", job="web"}': 10,
        '{__name__="x", instance="d", job="web"}': 3,
    }
    assert instant("x and on(job) team_info", jobs, at=0) == api
    assert instant("x unless on(job) team_info", jobs, at=0) == web
    assert instant('x{job="api"} or x', jobs, at=0) == api | web
    assert instant("x and nothing", jobs, at=0) == {}


def test_operations_that_collide_label_sets_are_errors(db: TSDB) -> None:
    """Dropping the name of two series that differ only by name leaves duplicates."""
    db.append({"__name__": "a", "job": "x"}, timestamp=0, value=1)
    db.append({"__name__": "b", "job": "x"}, timestamp=0, value=2)
    with pytest.raises(
        promql.PromQLError, match="vector cannot contain metrics with the same labelset"
    ):
        promql.evaluate('{__name__=~"a|b"} * 1', storage=db, at=0)


def test_unary_minus_negates_and_drops_the_name(jobs: TSDB) -> None:
    """`-x` is a new series: negative values, no name."""
    assert instant('-x{instance="a"}', jobs, at=0) == {'{instance="a", job="api"}': -1}


# -- subqueries -------------------------------------------------------------------------------


def test_a_subquery_evaluates_at_absolute_multiples_of_its_step(db: TSDB) -> None:
    """The gauge g = t, every 15 s. At 610, [5m:1m] covers [310, 610]: steps 360, 420, ..., 600.

    At 600 the range starts exactly on a step, which is included: 300, 360, ..., 600.
    """
    load(db, {"__name__": "g"}, values=list(range(0, 700, 15)))
    assert instant("count_over_time(g[5m:1m])", db, at=610) == {"{}": 5}
    assert instant("sum_over_time(g[5m:1m])", db, at=610) == {"{}": 360 + 420 + 480 + 540 + 600}
    assert instant("sum_over_time(g[5m:1m])", db, at=600) == {"{}": 2700}


def test_a_subquery_of_a_rate_feeds_an_over_time_function(counter: TSDB) -> None:
    """The counter's rate is 10/15 everywhere, so its maximum over the last 5 minutes is too."""
    assert instant("max_over_time(rate(c[1m])[5m:30s])", counter, at=600) == {"{}": 40 / 60}


def test_a_subquery_without_step_uses_the_default_step(db: TSDB) -> None:
    """`[5m:]` uses the rule interval given as `subquery_step` (one minute by default)."""
    load(db, {"__name__": "g"}, values=list(range(0, 700, 15)))
    result = promql.evaluate("count_over_time(g[5m:])", storage=db, at=600, subquery_step=30)
    assert isinstance(result, promql.Vector)
    assert [s.value for s in result] == [11]  # 300, 330, ..., 600


# -- other functions --------------------------------------------------------------------------


def test_absent_reports_the_labels_an_equality_matcher_fixes(db: TSDB) -> None:
    """Only `=` matchers name labels of the absent series; others cannot say which value."""
    db.append({"__name__": "up", "job": "api"}, timestamp=0, value=1)
    assert instant('absent(nope{job="x", env=~"p.*"})', db, at=0) == {'{job="x"}': 1}
    assert instant("absent(up)", db, at=0) == {}
    assert instant("absent(sum(nope))", db, at=0) == {"{}": 1}
    assert instant('absent_over_time(nope{a="b"}[5m])', db, at=0) == {'{a="b"}': 1}
    assert instant("absent_over_time(up[5m])", db, at=0) == {}


def test_label_replace_expands_groups_as_go_does(jobs: TSDB) -> None:
    """`$1` is group 1; `$1x` names a group "1x", which is empty, so the label is unset."""
    assert instant(
        'label_replace(x{instance="a"}, "svc", "$1-svc", "job", "(.*)")', jobs, at=0
    ) == {'{__name__="x", instance="a", job="api", svc="api-svc"}': 1}
    assert instant('label_replace(x{instance="a"}, "svc", "$1x", "job", "(.*)")', jobs, at=0) == {
        '{__name__="x", instance="a", job="api"}': 1
    }
    assert instant(
        'label_replace(x{instance="a"}, "svc", "${1}x", "job", "a(.*)")', jobs, at=0
    ) == {'{__name__="x", instance="a", job="api", svc="pix"}': 1}
    assert instant('label_replace(x{instance="a"}, "svc", "y", "job", "nomatch")', jobs, at=0) == {
        '{__name__="x", instance="a", job="api"}': 1
    }


def test_label_join_concatenates_source_labels(jobs: TSDB) -> None:
    """Values joined with the separator; missing labels contribute empty strings."""
    assert instant(
        'label_join(x{instance="a"}, "id", "/", "job", "instance", "none")', jobs, at=0
    ) == {'{__name__="x", id="api/a/", instance="a", job="api"}': 1}


def test_label_functions_refuse_invalid_names_and_patterns(jobs: TSDB) -> None:
    """Errors match Prometheus' wording."""
    with pytest.raises(promql.PromQLError, match="invalid regular expression in label_replace"):
        promql.evaluate('label_replace(x, "a", "", "b", "(")', storage=jobs, at=0)
    with pytest.raises(promql.PromQLError, match="invalid destination label name in label_join"):
        promql.evaluate('label_join(x, "1a", ",", "job")', storage=jobs, at=0)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("abs(vector(-2))", 2),
        ("ceil(vector(1.2))", 2),
        ("floor(vector(-1.2))", -2),
        ("round(vector(2.5))", 3),  # ties round up
        ("round(vector(-2.5))", -2),
        ("round(vector(12.5), 5)", 15),
        ("sqrt(vector(16))", 4),
        ("exp(vector(0))", 1),
        ("ln(vector(0))", -math.inf),
        ("log2(vector(8))", 3),
        ("log10(vector(100))", 2),
        ("clamp(vector(7), 2, 5)", 5),
        ("clamp_min(vector(1), 2)", 2),
        ("clamp_max(vector(7), 5)", 5),
    ],
)
def test_math_functions(query: str, expected: float) -> None:
    """Element-wise functions of an instant vector."""
    assert instant(query, TSDB(), at=0) == {"{}": expected}


def test_math_functions_drop_the_name_and_give_go_nan(jobs: TSDB) -> None:
    """The root of a negative is NaN, not an exception; clamp with min > max is empty."""
    result = instant('sqrt(-x{instance="a"})', jobs, at=0)
    assert list(result) == ['{instance="a", job="api"}']
    assert math.isnan(result['{instance="a", job="api"}'])
    assert instant("clamp(x, 5, 2)", jobs, at=0) == {}


def test_time_timestamp_vector_and_scalar(db: TSDB) -> None:
    """timestamp() gives the sample's own time, not the query's."""
    db.append({"__name__": "up", "job": "a"}, timestamp=90, value=1)
    assert scalar("time()", db, at=100) == 100
    assert instant("timestamp(up)", db, at=100) == {'{job="a"}': 90}
    assert instant("vector(3)", db, at=100) == {"{}": 3}
    assert scalar("scalar(up)", db, at=100) == 1
    assert math.isnan(scalar("scalar(nope)", db, at=100))


def test_sort_orders_values_with_nan_last(db: TSDB) -> None:
    """The sort function ascends, sort_desc descends; NaN goes to the end in both."""
    for name, value in (("a", 2.0), ("b", math.nan), ("c", 1.0), ("d", 3.0)):
        db.append({"__name__": "v", "i": name}, timestamp=0, value=value)
    for query, order in (("sort(v)", "cadb"), ("sort_desc(v)", "dacb")):
        result = promql.evaluate(query, storage=db, at=0)
        assert isinstance(result, promql.Vector)
        assert "".join(sample.labels["i"] for sample in result) == order


# -- queries and results ----------------------------------------------------------------------


def test_a_range_query_evaluates_every_step(counter: TSDB) -> None:
    """One point per step; a scalar becomes one series without labels."""
    result = promql.evaluate_range("c", storage=counter, start=0, end=60, step=30)
    assert result.as_dict() == {Labels(__name__="c"): ((0, 0), (30, 20), (60, 40))}
    times = promql.evaluate_range("time()", storage=counter, start=0, end=60, step=30)
    assert times.as_dict() == {Labels(): ((0, 0), (30, 30), (60, 60))}


def test_a_range_query_pins_at_start_to_the_first_step(counter: TSDB) -> None:
    """`@ start()` reads at the range's start for every step."""
    result = promql.evaluate_range("c @ start()", storage=counter, start=300, end=330, step=15)
    assert result.as_dict() == {Labels(__name__="c"): ((300, 200), (315, 200), (330, 200))}


def test_a_range_query_drops_a_series_between_lookback_gaps(db: TSDB) -> None:
    """A series with no sample in the last 5 minutes has no point at that step."""
    db.append({"__name__": "g"}, timestamp=0, value=1)
    db.append({"__name__": "g"}, timestamp=600, value=2)
    result = promql.evaluate_range("g", storage=db, start=0, end=600, step=300)
    assert result.as_dict() == {Labels(__name__="g"): ((0, 1), (300, 1), (600, 2))}
    later = promql.evaluate_range("g", storage=db, start=301, end=599, step=298)
    assert later.as_dict() == {}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("c[5m]", 'invalid expression type "range vector" for range query'),
        ('"text"', 'invalid expression type "string" for range query'),
    ],
)
def test_a_range_query_must_yield_scalars_or_vectors(
    counter: TSDB, query: str, message: str
) -> None:
    """Only instant values can be stepped through time."""
    with pytest.raises(promql.PromQLError, match=message):
        promql.evaluate_range(query, storage=counter, start=0, end=60, step=15)


def test_a_range_query_refuses_a_bad_step(counter: TSDB) -> None:
    """The step must be positive and the range must not run backwards."""
    with pytest.raises(promql.PromQLError, match="step"):
        promql.evaluate_range("c", storage=counter, start=0, end=60, step=0)
    with pytest.raises(promql.PromQLError, match="before start"):
        promql.evaluate_range("c", storage=counter, start=60, end=0, step=15)


def test_evaluate_takes_text_or_a_parsed_tree_and_returns_typed_values(counter: TSDB) -> None:
    """Strings and scalars come back as String and Scalar, stamped with the query time."""
    tree = promql.parse("c")
    assert promql.evaluate(tree, storage=counter, at=600) == promql.evaluate(
        "c", storage=counter, at=600
    )
    assert promql.evaluate('"hi"', storage=counter, at=5) == promql.String("hi", 5)
    assert promql.evaluate("1 + 1", storage=counter, at=5) == promql.Scalar(2, 5)


def test_aggregation_over_a_thousand_series_groups_them_all(db: TSDB) -> None:
    """1000 counters in 10 jobs sum to 10 series, each the sum of its 100 equal rates.

    (How fast this is, is measured by `selfheal bench`, not asserted here.)
    """
    for index in range(1000):
        labels = {"__name__": "req", "job": f"j{index % 10}", "instance": str(index)}
        load(db, labels, values=[k * 1.0 for k in range(21)], start=300)
    single = promql.evaluate('rate(req{instance="0"}[5m])', storage=db, at=600)
    result = promql.evaluate("sum by (job) (rate(req[5m])) > 0", storage=db, at=600)
    [one] = list(single)
    assert len(result) == 10
    assert all(sample.value == pytest.approx(100 * one.value) for sample in result)
