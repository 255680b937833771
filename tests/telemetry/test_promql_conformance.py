"""selfheal's PromQL engine against a real Prometheus 2.42, on the very same samples.

Prometheus scrapes the flash-sale twin for about 20 seconds. Then everything it stored is
exported exactly, as raw samples with their millisecond timestamps (an instant query of
`{__name__=~".+"}[1h]` returns a matrix of the stored samples themselves), and loaded into a
`tsdb.TSDB`. Each query below is then evaluated at several instants inside the recorded
window by Prometheus (through `PrometheusSource`) and by `promql.evaluate`, and the results
must agree: the same label sets and values equal to a relative 1e-9 (NaN equals NaN).

Two things the export does not carry are rebuilt: stale markers (range selectors skip them,
so they never come back out) are put back at the first scrape that no longer had a series,
which is where Prometheus writes them for a single target; and the default subquery step,
which for API queries is Prometheus' global evaluation interval (1 s here), is passed to the
evaluator as `subquery_step`.

Placeholders `<at>` in a query stand for an instant in the middle of the window, for `@`.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from selfheal.telemetry import TSDB, promql
from selfheal.telemetry.prometheus_source import PrometheusSource
from selfheal.telemetry.tsdb import STALE_NAN, Labels

import stack
import support

# 20 scenario seconds per real second: the flash sale's surge is on while Prometheus
# scrapes, and its end (8 to 9 scenario minutes) falls inside the recorded window.
SPEED = 20.0
# Scrapes to record: 1 s apart, so the window is ~22 s, enough for 20 s ranges.
SCRAPES = 22
# Prometheus' API answers `[r:]` subqueries with its global evaluation interval.
SUBQUERY_STEP = 1.0
RELATIVE_TOLERANCE = 1e-9

QUERIES = [
    # counters and gauges over a range
    "rate(http_requests_total[5s])",
    "irate(http_requests_total[5s])",
    "increase(container_cpu_usage_seconds_total[10s])",
    "delta(twin_load_factor[10s])",
    "idelta(container_cpu_cfs_periods_total[5s])",
    "deriv(twin_scenario_elapsed_seconds[10s])",
    "deriv(twin_load_factor[15s])",
    "predict_linear(container_cpu_usage_seconds_total[10s], 60)",
    "resets(container_cpu_usage_seconds_total[20s])",
    "changes(twin_load_factor[20s])",
    # *_over_time
    "avg_over_time(twin_load_factor[10s])",
    "min_over_time(scrape_duration_seconds[10s])",
    "max_over_time(twin_load_factor[15s])",
    "sum_over_time(scrape_duration_seconds[10s])",
    "count_over_time(http_requests_total[7s])",
    "quantile_over_time(0.9, scrape_duration_seconds[15s])",
    "stddev_over_time(twin_load_factor[15s])",
    "stdvar_over_time(container_spec_cpu_quota[10s])",
    "last_over_time(kube_deployment_spec_replicas[5s])",
    "present_over_time(http_requests_total[3s])",
    'absent_over_time(http_requests_total{code="418"}[5s])',
    # aggregations
    "sum by (service) (rate(http_requests_total[5s]))",
    "sum without (pod, instance) (rate(http_requests_total[5s]))",
    "avg by (container) (rate(container_cpu_usage_seconds_total[5s]))",
    (
        "max by (service) (rate(http_requests_total[5s])) - min by (service) "
        "(rate(http_requests_total[5s]))"
    ),
    "count by (node) (kube_pod_info)",
    "group by (service, code) (http_requests_total)",
    "stddev by (container) (rate(container_cpu_usage_seconds_total[5s]))",
    "stdvar without (pod, image) (irate(container_cpu_usage_seconds_total[5s]))",
    "topk(3, rate(http_requests_total[5s]))",
    "bottomk(2, rate(container_cpu_usage_seconds_total[5s]))",
    "topk by (service) (1, rate(http_requests_total[5s]))",
    "quantile by (service) (0.5, rate(http_requests_total[5s]))",
    "quantile(0.9, rate(container_cpu_usage_seconds_total[10s]))",
    'count_values("replicas", kube_deployment_spec_replicas)',
    "count(up == 1)",
    # histograms
    (
        "histogram_quantile(0.95, sum by (service, le) "
        "(rate(http_request_duration_seconds_bucket[10s])))"
    ),
    "histogram_quantile(0.5, rate(http_request_duration_seconds_bucket[5s]))",
    "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[15s])))",
    # binary operators and vector matching
    "rate(http_request_duration_seconds_sum[10s]) / rate(http_request_duration_seconds_count[10s])",
    "rate(container_cpu_usage_seconds_total[5s]) * on (pod) group_left (node) kube_pod_info",
    (
        "sum by (namespace, pod) (rate(container_cpu_usage_seconds_total[5s])) "
        "/ on (namespace, pod) sum by (namespace, pod) "
        '(kube_pod_container_resource_limits{resource="cpu"})'
    ),
    (
        'rate(http_requests_total{code!="200"}[10s]) / ignoring (code) group_left '
        "sum without (code) (rate(http_requests_total[10s]))"
    ),
    (
        "rate(container_cpu_cfs_throttled_periods_total[5s]) "
        "/ rate(container_cpu_cfs_periods_total[5s]) > 0.25"
    ),
    "twin_load_factor > bool 2",
    (
        "kube_deployment_status_replicas_available >= bool on (deployment) "
        "kube_deployment_spec_replicas"
    ),
    "2 * twin_load_factor ^ 2 % 7 - -twin_load_factor",
    "twin_load_factor atan2 3",
    "rate(container_cpu_usage_seconds_total[5s]) atan2 on (pod) group_left kube_pod_info",
    "1 + 2 * 3 / 4",
    # set operators
    'rate(http_requests_total[5s]) > 50 and on (pod) kube_pod_status_ready{condition="true"} == 1',
    'http_requests_total{code="502"} or on (pod) http_requests_total{code="200"}',
    'kube_pod_status_phase == 1 unless on (pod) kube_pod_status_ready{condition="true"} == 0',
    # offset, @ and subqueries
    "rate(http_requests_total[5s] offset 5s)",
    "twin_load_factor - twin_load_factor offset 7s",
    "rate(http_requests_total[5s] @ <at>)",
    "twin_scenario_elapsed_seconds @ <at> offset 2s",
    "max_over_time(rate(http_requests_total[5s])[10s:1s])",
    "avg_over_time(sum(twin_load_factor)[15s:2s])",
    "deriv(sum by (service) (rate(http_requests_total[5s]))[10s:])",
    "rate(container_cpu_usage_seconds_total[5s])[6s:3s]",
    "min_over_time(twin_load_factor[10s:1500ms] offset 3s)",
    # functions of instant vectors
    'absent(http_requests_total{code="418", service="catalog"})',
    "absent(up)",
    'label_replace(up, "port", "$1", "instance", ".*:([0-9]+)")',
    'label_join(kube_pod_info, "where", "/", "node", "pod")',
    "clamp(twin_load_factor, 1.5, 3)",
    "clamp_min(rate(http_requests_total[5s]), 100)",
    "clamp_max(rate(http_requests_total[5s]), 100)",
    "round(rate(http_requests_total[5s]), 0.5)",
    "round(twin_load_factor)",
    "sort(rate(http_requests_total[5s]))",
    "sort_desc(sum by (service) (rate(http_requests_total[5s])))",
    "ln(twin_load_factor) + log2(twin_load_factor) + log10(twin_load_factor)",
    "exp(twin_load_factor) + sqrt(twin_load_factor) + abs(-twin_load_factor)",
    "ceil(rate(http_requests_total[5s])) - floor(rate(http_requests_total[5s]))",
    "scalar(twin_load_factor) * up",
    "vector(1) + on () group_left sum(up)",
    "time() - timestamp(up)",
    "timestamp(twin_load_factor)",
]

# Sorting functions are the one place where the order of an instant vector is part of the
# answer (Prometheus sorts nothing else it returns from a range query).
ORDERED = ("sort(", "sort_desc(")

RANGE_QUERIES = [
    "sum by (service) (rate(http_requests_total[5s]))",
    "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5s])))",
    "twin_load_factor",
    "rate(http_requests_total[3s] @ start())",
    "max_over_time(twin_load_factor[6s:2s])",
    "timestamp(up)",
]


@dataclass
class Recording:
    """Prometheus after the recording, and the same samples in a TSDB."""

    prometheus: PrometheusSource
    db: TSDB
    scrapes: list[float]
    rows: list[str] = field(default_factory=list)

    @property
    def instants(self) -> list[float]:
        """Evaluation times: partial and full windows, on a scrape and between scrapes."""
        first, last = self.scrapes[0], self.scrapes[-1]
        return [
            first + 3.5,  # most ranges start before the data: extrapolation is limited
            first + 10.217,
            self.scrapes[len(self.scrapes) // 2],  # exactly on a sample: closed windows
            self.scrapes[-6] + 0.001,  # a hair after one: `[5s]` just misses a sample
            last - 0.5,
            last,
        ]

    @property
    def middle(self) -> float:
        """The instant `<at>` stands for."""
        return self.scrapes[len(self.scrapes) // 2] + 0.25


def export(prometheus: PrometheusSource, *, at: float) -> list[promql.RangeSeries]:
    """Every sample Prometheus holds up to `at`, with its exact timestamp."""
    matrix = prometheus.query('{__name__=~".+"}[1h]', at=at)
    assert isinstance(matrix, promql.Matrix)
    return list(matrix)


def load(exported: list[promql.RangeSeries]) -> tuple[TSDB, list[float]]:
    """A TSDB holding the exported samples, plus the stale markers Prometheus wrote.

    With one target, every series is scraped at the times of `up`; a series missing from a
    scrape after it was present got a stale marker at that scrape's timestamp.
    """
    [up] = [series for series in exported if series.labels.name == "up"]
    scrapes = [t for t, _ in up.points]
    db = TSDB(retention=7200)
    for series in exported:
        present = {t for t, _ in series.points}
        markers = [
            (moment, STALE_NAN)
            for previous, moment in itertools.pairwise(scrapes)
            if previous in present and moment not in present
        ]
        for moment, value in sorted([*series.points, *markers], key=lambda point: point[0]):
            db.append(series.labels, timestamp=moment, value=value)
    return db, scrapes


def recorded_scrapes(prometheus: PrometheusSource) -> int:
    pairs = prometheus.instant("count_over_time(up[1h])", at=time.time())
    return int(pairs[0][1]) if pairs else 0


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    """Prometheus' record of ~20 s of the flash sale, and the same samples in a TSDB."""
    stack.require_binaries(stack.PROMETHEUS)
    tmp_path = tmp_path_factory.mktemp("conformance")
    twin = support.start_twin("flash-sale", tmp_path, speed=SPEED)
    try:
        with (
            stack.start_prometheus(scrape_targets=[twin.url], tmp_path=tmp_path) as process,
            PrometheusSource(process.url) as prometheus,
        ):
            # The first scrape comes ~5 s after start (target discovery is throttled).
            try:
                support.wait_until(
                    lambda: recorded_scrapes(prometheus) >= SCRAPES, timeout=60, interval=0.25
                )
            except pytest.fail.Exception:
                pytest.fail(f"Prometheus took too long to scrape {SCRAPES} times:\n{process.log}")
            [(_, end)] = prometheus.instant("timestamp(up)", at=time.time())
            twin.server.stop()  # nothing after `end` is compared
            db, scrapes = load(export(prometheus, at=end))
            yield Recording(prometheus, db, scrapes)
    finally:
        twin.server.stop()


# -- comparing results ---------------------------------------------------------------------


def close(expected: float, actual: float) -> bool:
    if math.isnan(expected) or math.isnan(actual):
        return math.isnan(expected) and math.isnan(actual)
    return expected == actual or math.isclose(expected, actual, rel_tol=RELATIVE_TOLERANCE)


def points_agree(
    expected: tuple[tuple[float, float], ...], actual: tuple[tuple[float, float], ...]
) -> bool:
    return len(expected) == len(actual) and all(
        round(te * 1000) == round(ta * 1000) and close(ve, va)
        for (te, ve), (ta, va) in zip(expected, actual, strict=True)
    )


def compare(expected: promql.Value, actual: promql.Value, *, ordered: bool = False) -> int:
    """Fail unless the results agree; return how many values were compared."""
    assert type(actual) is type(expected), f"{type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, promql.Scalar):
        assert isinstance(actual, promql.Scalar)
        assert close(expected.value, actual.value), f"{actual.value} != {expected.value}"
        return 1
    if isinstance(expected, promql.Vector):
        assert isinstance(actual, promql.Vector)
        want, got = expected.as_dict(), actual.as_dict()
        assert set(got) == set(want), (
            f"only Prometheus has {sorted(map(str, set(want) - set(got)))}; "
            f"only selfheal has {sorted(map(str, set(got) - set(want)))}"
        )
        wrong = {str(k): (want[k], got[k]) for k in want if not close(want[k], got[k])}
        assert not wrong, f"(Prometheus, selfheal) values differ: {wrong}"
        if ordered:  # equal values may come in any order: Go's sort is not stable
            order = [sample.value for sample in expected], [sample.value for sample in actual]
            assert all(map(close, *order)), f"order differs: {order}"
        return len(want)
    assert isinstance(expected, promql.Matrix)
    assert isinstance(actual, promql.Matrix)
    want_series, got_series = expected.as_dict(), actual.as_dict()
    assert set(got_series) == set(want_series), (
        f"series differ: {sorted(map(str, set(want_series) ^ set(got_series)))}"
    )
    for labels, points in want_series.items():
        assert points_agree(points, got_series[labels]), (
            f"{labels}: Prometheus {points} != selfheal {got_series[labels]}"
        )
    return sum(len(points) for points in want_series.values())


def as_matrix(pairs: list[tuple[dict[str, str], list[tuple[float, float]]]]) -> promql.Matrix:
    return promql.Matrix(
        tuple(promql.RangeSeries(Labels(labels), tuple(points)) for labels, points in pairs)
    )


# -- the conformance tests -----------------------------------------------------------------


@pytest.mark.parametrize("query", QUERIES)
def test_instant_query_agrees_with_prometheus(recording: Recording, query: str) -> None:
    """At every chosen instant, selfheal's answer equals Prometheus' on the same samples."""
    text = query.replace("<at>", f"{recording.middle:.3f}")
    compared = 0
    for at in recording.instants:
        expected = recording.prometheus.query(text, at=at)
        actual = promql.evaluate(text, storage=recording.db, at=at, subquery_step=SUBQUERY_STEP)
        try:
            compared += compare(expected, actual, ordered=query.startswith(ORDERED))
        except AssertionError as exc:
            pytest.fail(f"{text} at {at:.3f}: {exc}")
    # The parsed tree, as the rule evaluator hands it over, reads the same to Prometheus.
    printed = promql.parse(text)
    try:
        compare(expected, recording.prometheus.query(printed, at=at))
    except AssertionError as exc:
        pytest.fail(f"{promql.format(printed)} (printed from {text}): {exc}")
    recording.rows.append(f"  {len(recording.instants):>8} {compared:>7}  {query}")


@pytest.mark.parametrize("query", RANGE_QUERIES)
def test_range_query_agrees_with_prometheus(recording: Recording, query: str) -> None:
    """`evaluate_range` returns the same series and points as Prometheus' query_range."""
    start, end = recording.scrapes[0] + 5, recording.scrapes[-1]
    step = 1.5  # not a multiple of the scrape interval: steps fall between samples
    expected = recording.prometheus.range(query, start=start, end=end, step=step)
    actual = promql.evaluate_range(
        query,
        storage=recording.db,
        start=start,
        end=end,
        step=step,
        subquery_step=SUBQUERY_STEP,
    )
    try:
        compared = compare(as_matrix(expected), actual)
    except AssertionError as exc:
        pytest.fail(f"range {query}: {exc}")
    recording.rows.append(f"  {'range':>8} {compared:>7}  {query}")


def test_the_loaded_tsdb_returns_every_sample_prometheus_holds(recording: Recording) -> None:
    """A range selector over the whole window reads back the same samples from both."""
    query, at = '{__name__=~".+"}[1h]', recording.scrapes[-1]
    expected = recording.prometheus.query(query, at=at)
    actual = promql.evaluate(query, storage=recording.db, at=at)
    assert compare(expected, actual) > 0
    assert len(recording.scrapes) >= SCRAPES


def test_every_listed_query_was_compared(
    recording: Recording, capsys: pytest.CaptureFixture[str]
) -> None:
    """All 40+ queries and the range queries ran; the table of them goes to the terminal."""
    table = [
        (
            f"PromQL conformance with Prometheus 2.42 over {len(recording.scrapes)} scrapes "
            f"of the twin: {len(recording.rows)} queries agree"
        ),
        f"  {'instants':>8} {'values':>7}  query",
        *recording.rows,
    ]
    with capsys.disabled():
        sys.stdout.write("\n" + "\n".join(table) + "\n")
    assert len(QUERIES) >= 40
    assert len(recording.rows) == len(QUERIES) + len(RANGE_QUERIES)


# -- regressions found by this suite (no Prometheus needed) ---------------------------------


def test_rate_divides_the_extrapolation_factor_by_the_range_before_scaling() -> None:
    """rate() is change * (factor / range), Prometheus' order, not (change * factor) / range.

    The samples are a real twin counter; Prometheus 2.42 answered 7645.599999999999 for
    them, where dividing the extrapolated increase (38228.0) by 5 gives 7645.6.
    """
    db = TSDB()
    series = {"__name__": "http_requests_total", "pod": "catalog"}
    for offset, value in ((1.5, 25446.0), (2.5, 34973.0), (3.5, 44549.0), (4.5, 54117.0)):
        db.append(series, timestamp=1000 + offset, value=value)
    rate = promql.evaluate("rate(http_requests_total[5s])", storage=db, at=1005.0)
    increase = promql.evaluate("increase(http_requests_total[5s])", storage=db, at=1005.0)
    assert isinstance(rate, promql.Vector)
    assert isinstance(increase, promql.Vector)
    assert [sample.value for sample in increase] == [38228.0]
    assert [sample.value for sample in rate] == [7645.599999999999]


def test_the_loader_puts_back_the_stale_markers_prometheus_wrote() -> None:
    """A series missing from a scrape after it was present ends there, as in Prometheus."""
    up = promql.RangeSeries(Labels(__name__="up"), ((10.0, 1.0), (11.0, 1.0), (12.0, 1.0)))
    gone = promql.RangeSeries(Labels(__name__="gone"), ((10.0, 5.0),))
    db, scrapes = load([up, gone])
    assert scrapes == [10.0, 11.0, 12.0]
    assert len(promql.evaluate("gone", storage=db, at=10.5)) == 1
    assert len(promql.evaluate("gone", storage=db, at=11.0)) == 0
    assert len(promql.evaluate("gone", storage=db, at=12.0)) == 0
