"""Baseline detectors, to run the harness end to end and to have a floor to beat.

`WindowedGaussian` follows the idea of NAB's "windowedGaussian" detector: model the recent
values as a normal distribution and score a new value by how far into its tails it lies.
Written from that description; the window length and scoring choices are ours.
"""

from __future__ import annotations

import math
from collections import deque

# About three weeks of 5-minute samples, and NAB's own order of magnitude for this detector.
DEFAULT_WINDOW = 6400
# Fewer samples than this make a useless variance estimate; score 0 until then.
MIN_SAMPLES = 10


class WindowedGaussian:
    """Score = P(|Z| < |z|) for the value's z-score against the last `window` values.

    The score is 0 at the window's mean and approaches 1 in the tails. Sums are kept
    relative to a shift (a recent mean) so that squaring large values (bytes, counts)
    does not cancel catastrophically; they are recomputed from the window every
    `window` samples so rounding cannot drift.
    """

    def __init__(self, *, window: int = DEFAULT_WINDOW) -> None:
        self._window = window
        self._values: deque[float] = deque()
        self._shift = 0.0
        self._sum = 0.0
        self._sum_sq = 0.0
        self._since_refresh = 0

    def _refresh(self) -> None:
        self._shift = math.fsum(self._values) / len(self._values)
        self._sum = math.fsum(v - self._shift for v in self._values)
        self._sum_sq = math.fsum((v - self._shift) ** 2 for v in self._values)
        self._since_refresh = 0

    def process_one(self, t: float, x: float) -> float:
        del t  # the score depends on recent values only
        score = self._score(x)
        self._learn(x)
        return score

    def _score(self, value: float) -> float:
        count = len(self._values)
        if count < MIN_SAMPLES:
            return 0.0
        mean = self._sum / count
        variance = max(self._sum_sq / count - mean * mean, 0.0)
        deviation = abs(value - self._shift - mean)
        if variance == 0.0:
            # A flat history: any change is as surprising as it gets.
            return 0.0 if deviation == 0.0 else 1.0
        return math.erf(deviation / math.sqrt(2.0 * variance))

    def _learn(self, value: float) -> None:
        if not self._values:
            self._shift = value
        self._values.append(value)
        self._sum += value - self._shift
        self._sum_sq += (value - self._shift) ** 2
        if len(self._values) > self._window:
            old = self._values.popleft()
            self._sum -= old - self._shift
            self._sum_sq -= (old - self._shift) ** 2
        self._since_refresh += 1
        if self._since_refresh >= self._window:
            self._refresh()
