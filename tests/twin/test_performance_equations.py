"""Properties of the performance model's equations, checked over many random inputs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfheal.twin import performance

cores = st.floats(min_value=0.0, max_value=16.0, allow_nan=False)
weights = st.floats(min_value=0.001, max_value=4.0, allow_nan=False)


@given(capacity=cores, pods=st.lists(st.tuples(cores, weights), min_size=1, max_size=12))
def test_cpu_sharing_never_exceeds_capacity_or_wants(
    capacity: float, pods: list[tuple[float, float]]
) -> None:
    """Nobody gets more than it wants, nor the node more than it has; no CPU idles while wanted."""
    wants = [want for want, _ in pods]
    shares = performance.share_cpu(capacity=capacity, wants=wants, weights=[w for _, w in pods])
    assert all(0 <= share <= want + 1e-9 for share, want in zip(shares, wants, strict=True))
    assert sum(shares) <= capacity + 1e-6
    if sum(wants) > capacity:
        assert sum(shares) == pytest.approx(capacity, abs=1e-6)
    else:
        assert shares == pytest.approx(wants, abs=1e-9)


def test_cpu_sharing_under_contention_follows_requests() -> None:
    """Two busy containers with requests 400m and 100m split 1 core 4:1."""
    shares = performance.share_cpu(capacity=1.0, wants=[2.0, 2.0], weights=[0.4, 0.1])
    assert shares == pytest.approx([0.8, 0.2])


@given(demand=st.floats(0, 10), limit=st.floats(0.01, 4))
def test_throttling_shares_are_probabilities_rising_with_demand(
    demand: float, limit: float
) -> None:
    """Both throttling shares stay in [0, 1] and never fall as demand grows."""
    for share in (performance.throttled_period_share, performance.throttled_time_share):
        low, high = share(demand, limit), share(demand * 1.1 + 0.01, limit)
        assert 0 <= low <= 1
        assert low <= high + 1e-12


def test_throttling_is_negligible_at_half_the_limit_and_total_above_it() -> None:
    """At half the limit under 2% of periods throttle; above the limit all of them do."""
    assert performance.throttled_period_share(0.25, 0.5) < 0.02
    assert performance.throttled_period_share(0.6, 0.5) == 1.0
    assert performance.throttled_time_share(0.25, 0.5) == 0.0


@given(
    q=st.floats(0.5, 0.99),
    components=st.lists(
        st.tuples(st.floats(0.1, 100), st.floats(0.001, 5)), min_size=1, max_size=6
    ),
    drops=st.lists(st.tuples(st.floats(0.1, 50), st.sampled_from([0.0, 1.0])), max_size=2),
)
def test_mixture_quantile_inverts_the_mixture_cdf(
    q: float, components: list[tuple[float, float]], drops: list[tuple[float, float]]
) -> None:
    """At the returned quantile the mixture's CDF has reached q, and just below it has not."""
    x = performance.mixture_quantile(q, components=components, point_masses=drops)
    total = sum(w for w, _ in components) + sum(w for w, _ in drops)

    def cdf(value: float) -> float:
        mass = sum(w * performance.lognormal_cdf(value, mean) for w, mean in components)
        return (mass + sum(w for w, v in drops if v <= value)) / total

    assert cdf(x) >= q - 1e-6
    if x > 0:  # latency is never negative, so at zero there is nothing below to check
        assert cdf(x * (1 - 1e-6)) <= q + 1e-6


def test_lognormal_quantile_matches_its_cdf() -> None:
    """The closed-form p95 of a 100 ms mean latency is where the CDF reaches 0.95."""
    p95 = performance.lognormal_quantile(0.95, 0.1)
    assert performance.lognormal_cdf(p95, 0.1) == pytest.approx(0.95)
    assert p95 == pytest.approx(0.1 * math.exp(-(0.35**2) / 2 + 1.6449 * 0.35), rel=1e-3)


def test_queueing_wait_grows_without_bound_towards_saturation() -> None:
    """M/M/1: the wait at 90% utilisation is far larger than at 50%."""
    light = performance.queueing_wait(arrival_rps=50, cpu_per_request=0.004, serving_cores=0.4)
    heavy = performance.queueing_wait(arrival_rps=90, cpu_per_request=0.004, serving_cores=0.4)
    assert heavy > 5 * light
