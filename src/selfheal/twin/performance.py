"""The equations of the twin's performance model (docs/twin.md derives them).

Pure functions, no state: the simulation feeds them the numbers of one tick.

- CPU on a node is shared by weighted max-min fairness with CPU requests as weights, which is
  what CFS shares give containers under contention; no container gets more than its limit.
- CFS throttling: a container whose demand approaches its quota exhausts it in some 100 ms
  periods because arrivals are bursty. The share of throttled periods is `min(1, u**6)` for
  demand/limit ratio `u` (about 12% at 70% of the limit, all periods past the limit), and in
  a throttled period the container waits for `1 - 1/(1.5 u)` of it, 1.5 being the
  peak-to-mean ratio of demand within a period.
- Queueing: a pod is a single queue with service time `cpu_per_request / speed`; below
  saturation the wait is `s * rho / (1 - rho)` (M/M/1); above it the backlog grows and its
  wait adds `backlog / capacity`. A request that would wait past the client timeout is
  dropped (HTTP 504).
- Latency per pod is log-normal around its mean, so percentiles and histogram buckets come
  from a closed-form CDF.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

CFS_PERIOD_S = 0.1
# Share of throttled periods rises steeply as demand nears the quota: u**6.
THROTTLE_EXPONENT = 6.0
# Peak-to-mean ratio of CPU demand inside one CFS period.
BURST_FACTOR = 1.5
# Spread of the log-normal latency distribution (sigma of log latency).
LATENCY_SIGMA = 0.35
# Clients give up after this long; requests queued longer are dropped as 504s.
CLIENT_TIMEOUT_S = 1.0
# Bisection never looks below e**-40 s: far under any latency worth reporting.
_LOWEST_LOG_LATENCY = -40.0
# Utilisation is capped here in the M/M/1 formula; the backlog accounts for the rest.
_MAX_RHO = 0.95


def share_cpu(*, capacity: float, wants: Sequence[float], weights: Sequence[float]) -> list[float]:
    """Split `capacity` cores between containers by weighted max-min fairness.

    Each container gets at most what it wants; capacity one does not use is redistributed to
    the others in proportion to their weights (CPU requests), as CFS shares do.
    """
    allocation = [0.0] * len(wants)
    active = [index for index, want in enumerate(wants) if want > 0]
    remaining = max(0.0, capacity)
    while active and remaining > 1e-12:
        total_weight = sum(max(weights[index], 1e-6) for index in active)
        satisfied = []
        for index in active:
            fair = remaining * max(weights[index], 1e-6) / total_weight
            if wants[index] - allocation[index] <= fair:
                satisfied.append(index)
        if not satisfied:
            for index in active:
                allocation[index] += remaining * max(weights[index], 1e-6) / total_weight
            return allocation
        for index in satisfied:
            remaining -= wants[index] - allocation[index]
            allocation[index] = wants[index]
            active.remove(index)
    return allocation


def throttled_period_share(demand: float, limit: float) -> float:
    """Share of CFS periods in which the container exhausts its quota."""
    if limit <= 0:
        return 1.0 if demand > 0 else 0.0
    return float(min(1.0, (demand / limit) ** THROTTLE_EXPONENT))


def throttled_time_share(demand: float, limit: float) -> float:
    """Within a throttled period, the share of the period spent waiting for quota."""
    if limit <= 0:
        return 1.0 if demand > 0 else 0.0
    ratio = demand / limit
    if ratio <= 0:
        return 0.0
    return max(0.0, 1.0 - 1.0 / (BURST_FACTOR * ratio))


def queueing_wait(*, arrival_rps: float, cpu_per_request: float, serving_cores: float) -> float:
    """Mean M/M/1 wait (seconds) of a pod serving `arrival_rps` with `serving_cores` of CPU."""
    if serving_cores <= 0:
        return CLIENT_TIMEOUT_S
    # One request runs on one thread, so it never gets more than one core.
    service_time = cpu_per_request / min(1.0, serving_cores)
    rho = min(_MAX_RHO, arrival_rps * cpu_per_request / serving_cores)
    return service_time * rho / (1.0 - rho)


def lognormal_cdf(x: float, mean: float) -> float:
    """P(latency <= x) for a log-normal latency with the given mean."""
    if x <= 0:
        return 0.0
    if mean <= 0:
        return 1.0
    mu = math.log(mean) - LATENCY_SIGMA**2 / 2
    return 0.5 * (1.0 + math.erf((math.log(x) - mu) / (LATENCY_SIGMA * math.sqrt(2.0))))


def lognormal_cdfs(log_bounds: Sequence[float], mean: float) -> list[float]:
    """P(latency <= bound) for many bounds at once, given their logarithms (hot path)."""
    mu = math.log(mean) - LATENCY_SIGMA**2 / 2 if mean > 0 else -math.inf
    scale = LATENCY_SIGMA * math.sqrt(2.0)
    erf = math.erf
    return [0.5 * (1.0 + erf((log_bound - mu) / scale)) for log_bound in log_bounds]


def lognormal_quantile(q: float, mean: float) -> float:
    """The q-quantile of a log-normal latency with the given mean (closed form)."""
    mu = math.log(mean) - LATENCY_SIGMA**2 / 2
    return math.exp(mu + LATENCY_SIGMA * statistics.NormalDist().inv_cdf(q))


def mixture_quantile(
    q: float,
    *,
    components: Sequence[tuple[float, float]],
    point_masses: Sequence[tuple[float, float]],
) -> float:
    """The q-quantile of a mix of log-normals `(weight, mean)` and points `(weight, value)`.

    Pods of one service usually have the same mean latency, and then the answer has a closed
    form; otherwise it is found by bisection on the mixture's CDF (monotone) in log space,
    between the smallest and largest component quantile. Returns 0 with no weight.
    """
    total = sum(weight for weight, _ in components) + sum(weight for weight, _ in point_masses)
    if total <= 0:
        return 0.0
    means = {mean for _, mean in components}
    if not point_masses and len(means) == 1:
        return lognormal_quantile(q, means.pop())
    mus = [(weight, math.log(mean) - LATENCY_SIGMA**2 / 2) for weight, mean in components]
    scale = LATENCY_SIGMA * math.sqrt(2.0)

    def cdf(log_x: float) -> float:
        mass = sum(weight * (1.0 + math.erf((log_x - mu) / scale)) / 2 for weight, mu in mus)
        x = math.exp(log_x)
        mass += sum(weight for weight, value in point_masses if value <= x)
        return mass / total

    # Requests that never reached a pod sit at zero latency, where log space cannot go.
    if sum(weight for weight, value in point_masses if value <= 0) / total >= q:
        return 0.0
    candidates = [lognormal_quantile(q, mean) for mean in means]
    candidates += [value for _, value in point_masses if value > 0]
    low = math.log(max(min(candidates, default=1e-6), 1e-6)) - 1.0
    high = math.log(max(max(candidates, default=1.0), 1e-6)) + 1.0
    while cdf(high) < q:
        high += 1.0
    # Point masses can put the quantile below every component's own quantile.
    while cdf(low) >= q and low > _LOWEST_LOG_LATENCY:
        low -= 1.0
    # 40 halvings of a range of a few e-folds resolve the quantile to well under 1e-9 s.
    for _ in range(40):
        middle = (low + high) / 2
        if cdf(middle) < q:
            low = middle
        else:
            high = middle
    return math.exp(high)
