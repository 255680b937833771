"""The batch path: the default detector's arithmetic for many series at once, in numpy.

The controller watches hundreds of series and feeds each one sample per round; a Python
object per series costs a method call and a few numpy calls per sample. `NoveltyBatch` keeps
the state of `RangeNovelty` (the default detector without its daily-shape channel) for
`series` series in arrays and advances
all of them by one sample with a few dozen vectorized operations, so the cost per sample
falls with the number of series (`selfheal bench` reports both paths).

It computes exactly what `RangeNovelty.process_one` computes for each series alone, bit for
bit: the same operations in the same order on float64, and `math.exp` (not numpy's, whose
last bit may differ) for the score. A NaN in `xs` means "no sample for this series this
round": it scores 0 and changes nothing, as in the streaming detector, which is also how
series of different lengths share one batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from selfheal.detection.range_novelty import RangeNovelty

__all__ = ["NoveltyBatch", "score_series"]

Array = npt.NDArray[np.float64]
_ABS_FLOOR = 1e-9  # as in range_novelty.py
_REL_FLOOR = 1e-3


class NoveltyBatch:
    """`RangeNovelty` for many series, advanced together one sample per series."""

    def __init__(self, series: int, **params: Any) -> None:
        template = RangeNovelty(**params)  # validates the parameters the same way
        self.template = template
        cap = template.cap
        # Unused prototype slots hold NaN: comparisons with it are false, sorts put it last.
        self.protos: Array = np.full((series, cap), np.nan)
        self.used: Array = np.zeros((series, cap))
        self.count = np.zeros(series, dtype=np.int64)
        self.clock = np.zeros(series, dtype=np.int64)
        self.lo: Array = np.full(series, np.inf)
        self.hi: Array = np.full(series, -np.inf)
        self.prev: Array = np.full(series, np.nan)  # NaN: no previous value yet
        self.step: Array = np.zeros(series)
        # The last `suppress` raw scores as a ring; zeros stand for "none yet", which gives
        # the same maximum because raw scores are never negative.
        self.recent: Array = np.zeros((series, template.suppress))
        self.position = np.zeros(series, dtype=np.int64)
        self._rows = np.arange(series)

    def process(self, xs: Array) -> Array:
        """Score then learn one sample per series (NaN: no sample); the scores."""
        # Branches that np.where discards compute inf - inf and NaN comparisons.
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._process(xs)

    def _process(self, xs: Array) -> Array:
        live = np.isfinite(xs)
        rows = self._rows[live]
        x = xs[live]
        raw, nearest, dist = self._raw(rows, x)
        previous = self.recent[rows].max(axis=1)
        out = np.zeros(len(xs))
        out[live] = np.where(raw > previous, raw, 0.0)
        self._learn(rows, x, raw, nearest, dist)
        return out

    def _raw(self, rows: Any, x: Array) -> tuple[Array, Any, Array]:
        rails = self.template
        count = self.count[rows]
        found = count > 0
        lo, hi = self.lo[rows], self.hi[rows]
        level = np.where(found, np.maximum(np.abs(hi), np.abs(lo)), 0.0)
        span = np.maximum(np.maximum(hi - lo, _REL_FLOOR * level), _ABS_FLOOR)
        protos = self.protos[rows]
        diffs = np.abs(protos - x[:, None])
        nearest = np.where(found, np.nanargmin(np.where(found[:, None], diffs, 0.0), axis=1), -1)
        picked = diffs[np.arange(len(rows)), np.maximum(nearest, 0)]
        dist = np.where(found, picked / span, np.inf)
        scoring = found & (self.clock[rows] + 1 > rails.warmup)
        ref = np.maximum(rails.vigilance * span, rails.step_k * self.step[rows])
        if rails.gap_k > 0.0:
            gapped = scoring & (count > 1) & (dist > rails.vigilance)
            if gapped.any():
                gap = self._gap(protos[gapped], count[gapped], x[gapped], lo[gapped], hi[gapped])
                ref[gapped] = np.maximum(ref[gapped], rails.gap_k * gap)
        nu = picked / ref
        if rails.age_boost > 0.0:
            age = (self.clock[rows] + 1) - self.used[rows, np.maximum(nearest, 0)]
            nu = nu + rails.age_boost * age / (age + rails.age_scale)
        raw = np.zeros(len(rows))
        for i in np.flatnonzero(scoring):
            # math.exp, not np.exp: the streaming detector's exact float.
            raw[i] = 1.0 - math.exp(float(-nu[i]))
        return raw, nearest, dist

    @staticmethod
    def _gap(protos: Array, count: Any, x: Array, lo: Array, hi: Array) -> Array:
        """The hole between the visited values around each x (as `RangeNovelty._gap`)."""
        ordered = np.sort(protos, axis=1)  # NaN (unused slots) sort last
        index = np.arange(len(x))
        top = ordered[index, count - 1] - ordered[index, count - 2]
        bottom = ordered[:, 1] - ordered[:, 0]
        below = np.where(protos <= x[:, None], protos, -np.inf).max(axis=1)
        above = np.where(protos >= x[:, None], protos, np.inf).min(axis=1)
        inside = np.where(np.isfinite(below) & np.isfinite(above), above - below, 0.0)
        return np.where(x > hi, top, np.where(x < lo, bottom, inside))

    def _learn(self, rows: Any, x: Array, raw: Array, nearest: Any, dist: Array) -> None:
        rails = self.template
        self.recent[rows, self.position[rows]] = raw
        self.position[rows] = (self.position[rows] + 1) % self.recent.shape[1]
        self.clock[rows] += 1
        clock = self.clock[rows]
        resonates = (nearest >= 0) & (dist <= rails.vigilance)
        hit, j = rows[resonates], nearest[resonates]
        self.protos[hit, j] += rails.rate * (x[resonates] - self.protos[hit, j])
        fresh = ~resonates
        new_rows = rows[fresh]
        slot = np.where(
            self.count[new_rows] < rails.cap,
            self.count[new_rows],
            self.used[new_rows].argmin(axis=1),
        )
        self.protos[new_rows, slot] = x[fresh]
        self.count[new_rows] = np.minimum(self.count[new_rows] + 1, rails.cap)
        self.used[np.concatenate([hit, new_rows]), np.concatenate([j, slot])] = np.concatenate(
            [clock[resonates], clock[fresh]]
        )
        prev = self.prev[rows]
        seen = np.isfinite(prev)
        alpha = np.maximum(rails.step_rate, 1.0 / clock)
        step = self.step[rows]
        self.step[rows] = np.where(seen, step + alpha * (np.abs(x - prev) - step), step)
        self.prev[rows] = x
        lo, hi = self.lo[rows], self.hi[rows]
        first = ~np.isfinite(lo)
        self.lo[rows] = np.where(first, x, np.minimum(lo, x))
        self.hi[rows] = np.where(first, x, np.maximum(hi, x))


def score_series(values: Sequence[Sequence[float]], **params: Any) -> list[list[float]]:
    """Score several series of possibly different lengths together on the batch path."""
    longest = max((len(v) for v in values), default=0)
    grid = np.full((longest, len(values)), np.nan)
    for column, series in enumerate(values):
        grid[: len(series), column] = series
    batch = NoveltyBatch(len(values), **params)
    scores = np.stack([batch.process(row) for row in grid]) if longest else grid
    return [scores[: len(series), column].tolist() for column, series in enumerate(values)]
