"""The batch path: one detector's arithmetic for many series at once, in numpy arrays.

The controller watches hundreds of series and feeds each one sample per round; a Python
object per series costs a method call and a few numpy calls per sample. `NoveltyBatch` keeps
the state of `PrototypeNovelty` (the default detector) for `series` series in arrays and
advances all of them by one sample with a handful of vectorized operations, so the cost per
sample falls with the number of series (`selfheal bench nab` reports both paths).

It computes exactly what `PrototypeNovelty.process_one` computes for each series alone, bit
for bit: the same operations in the same order on float64, and `math.exp` (not numpy's,
whose last bit may differ) for the score. A NaN in `xs` means "no sample for this series
this round": it scores 0 and changes nothing, as in the streaming detector, which is also how
series of different lengths share one batch.

Only the value feature (`w = d = 1`, the default) is vectorized; other shapes use the
streaming detectors one by one (`contract.score_batch`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from selfheal.detection.novelty import PrototypeNovelty

__all__ = ["NoveltyBatch", "score_series"]

Array = npt.NDArray[np.float64]
_ABS_FLOOR = 1e-9  # as in novelty.py
_REL_FLOOR = 1e-3


class NoveltyBatch:
    """`PrototypeNovelty` for many series, advanced together one sample per series."""

    def __init__(self, series: int, **params: Any) -> None:
        template = PrototypeNovelty(**params)  # validates the parameters the same way
        if template.w != 1 or template.d != 1:
            raise ValueError("the batch path vectorizes the value feature only (w = d = 1)")
        self.params = params
        self.vigilance, self.rate = template.vigilance, template.rate
        self.warmup, self.damp, self.span_rate = template.warmup, template.damp, template.span_rate
        cap, suppress = template.cap, template.suppress
        # Unused prototype slots hold +inf: never the nearest while a real one exists.
        self.protos: Array = np.full((series, cap), np.inf)
        self.used: Array = np.zeros((series, cap))
        self.count = np.zeros(series, dtype=np.int64)
        self.step = np.zeros(series, dtype=np.int64)
        self.n = np.zeros(series, dtype=np.int64)
        self.lo: Array = np.full(series, np.inf)
        self.hi: Array = np.full(series, -np.inf)
        # The last `suppress` raw scores as a ring; zeros stand for "none yet", which gives
        # the same maximum because raw scores are never negative.
        self.recent: Array = np.zeros((series, suppress))
        self.position = np.zeros(series, dtype=np.int64)
        self._rows = np.arange(series)

    def process(self, xs: Array) -> Array:
        """Score then learn one sample per series (NaN: no sample); the scores."""
        # A series' first sample computes inf - inf in branches np.where then discards.
        with np.errstate(invalid="ignore"):
            return self._process(xs)

    def _process(self, xs: Array) -> Array:
        live = np.isfinite(xs)
        rows = self._rows[live]
        x = xs[live]
        count = self.count[live]
        distance = np.abs(self.protos[rows] - x[:, None])
        nearest = distance.argmin(axis=1)
        found = count > 0
        lo, hi = self.lo[live], self.hi[live]
        span = np.maximum(
            np.maximum(hi - lo, _REL_FLOOR * np.maximum(np.abs(hi), np.abs(lo))), _ABS_FLOOR
        )
        dist = np.where(found, distance[np.arange(len(rows)), nearest] / span, np.inf)
        scoring = found & (self.n[live] + 1 > self.warmup)
        raw = np.zeros(len(rows))
        for i in np.flatnonzero(scoring):
            # math.exp, not np.exp: the streaming detector's exact float.
            raw[i] = 1.0 - math.exp(float(-dist[i] / self.vigilance))
        previous = self.recent[rows].max(axis=1)
        out = np.zeros(len(xs))
        out[live] = np.where(raw > previous, raw, raw * self.damp)
        self._learn(rows, x, raw, nearest, dist, found)
        return out

    def _learn(  # noqa: PLR0917 - the arrays of one round, passed on from _process
        self, rows: Any, x: Array, raw: Array, nearest: Any, dist: Array, found: Any
    ) -> None:
        self.recent[rows, self.position[rows]] = raw
        self.position[rows] = (self.position[rows] + 1) % self.recent.shape[1]
        self.step[rows] += 1
        resonates = found & (dist <= self.vigilance)
        hit, j = rows[resonates], nearest[resonates]
        self.protos[hit, j] += self.rate * (x[resonates] - self.protos[hit, j])
        fresh = ~resonates
        new_rows = rows[fresh]
        cap = self.protos.shape[1]
        slot = np.where(
            self.count[new_rows] < cap, self.count[new_rows], self.used[new_rows].argmin(axis=1)
        )
        self.protos[new_rows, slot] = x[fresh]
        self.count[new_rows] = np.minimum(self.count[new_rows] + 1, cap)
        touched = np.concatenate([hit, new_rows])
        self.used[touched, np.concatenate([j, slot])] = self.step[touched]
        lo, hi = self.lo[rows], self.hi[rows]
        first = ~np.isfinite(lo)
        above, below = ~first & (x > hi), ~first & ~(x > hi) & (x < lo)
        hi = np.where(first, x, np.where(above, hi + self.span_rate * (x - hi), hi))
        lo = np.where(first, x, np.where(below, lo + self.span_rate * (x - lo), lo))
        self.lo[rows], self.hi[rows] = lo, hi
        self.n[rows] = np.minimum(self.n[rows] + 1, self.warmup + 1)


def score_series(values: Sequence[Sequence[float]], **params: Any) -> list[list[float]]:
    """Score several series of possibly different lengths together on the batch path."""
    longest = max((len(v) for v in values), default=0)
    grid = np.full((longest, len(values)), np.nan)
    for column, series in enumerate(values):
        grid[: len(series), column] = series
    batch = NoveltyBatch(len(values), **params)
    scores = np.stack([batch.process(row) for row in grid]) if longest else grid
    return [scores[: len(series), column].tolist() for column, series in enumerate(values)]
