"""`RangeNovelty` for many series at once: its state in arrays, one round per call.

It computes exactly what `RangeNovelty.process_one` computes for each series alone, bit for
bit: the same operations in the same order on float64, and `math.exp` (not numpy's, whose
last bit may differ) for the score. The two halves of a round, `score_rows` and
`learn_rows`, are public so that the batch detectors built on this one (the daily-shape and
level channels) can put their combined score into the fire-once memory, as the streaming
subclasses do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from selfheal.detection.range_novelty import RangeNovelty

__all__ = ["NoveltyBatch", "RowScores"]

Array = npt.NDArray[np.float64]
Index = npt.NDArray[np.int64]
_ABS_FLOOR = 1e-9  # as in range_novelty.py
_REL_FLOOR = 1e-3


@dataclass(frozen=True, slots=True)
class RowScores:
    """What scoring some rows found: the score to gate and what learning them needs."""

    raw: Array  # the value channel's raw score in [0, 1) per row
    nearest: Index  # the nearest prototype's slot, -1 with an empty memory
    dist: Array  # its distance in range units (inf with an empty memory)
    span: Array  # the range of the values seen before, floored as `RangeNovelty._span`
    combined: Array  # the score the fire-once gate sees and remembers (here: raw)


def exp_each(values: Array) -> Array:
    """`math.exp` of every element: the streaming detectors' exact floats."""
    return np.array([math.exp(v) for v in values.tolist()], dtype=np.float64)


class NoveltyBatch:
    """`RangeNovelty` for `series` series, advanced together one sample per series."""

    streaming: ClassVar[type[RangeNovelty]] = RangeNovelty

    def __init__(self, series: int, *, seed: int = 0, **params: Any) -> None:
        template = self.streaming(seed=seed, **params)  # validates the parameters alike
        self.template = template
        self.seed = seed
        self.params = dict(params)
        cap = template.cap
        # Unused prototype slots hold NaN: comparisons with it are false, sorts put it last.
        self.protos: Array = np.full((series, cap), np.nan)
        self.used: Array = np.zeros((series, cap))
        self.count: Index = np.zeros(series, dtype=np.int64)
        self.clock: Index = np.zeros(series, dtype=np.int64)
        self.lo: Array = np.full(series, np.inf)
        self.hi: Array = np.full(series, -np.inf)
        self.prev: Array = np.full(series, np.nan)  # NaN: no previous value yet
        self.step: Array = np.zeros(series)
        # The last `suppress` scores as a ring; zeros stand for "none yet", which gives the
        # same maximum because scores are never negative.
        self.recent: Array = np.zeros((series, template.suppress))
        self.position: Index = np.zeros(series, dtype=np.int64)
        self.rows: Index = np.arange(series)

    @property
    def series(self) -> int:
        return len(self.rows)

    # -- one round --------------------------------------------------------------------------

    def process(self, ts: Array, xs: Array) -> Array:
        """Score then learn one sample per series (NaN: no sample); the scores."""
        if ts.shape != xs.shape or xs.shape != (self.series,):
            raise ValueError(
                f"need {self.series} timestamps and values, got {ts.shape} and {xs.shape}"
            )
        # Branches that np.where discards compute inf - inf and NaN comparisons.
        with np.errstate(invalid="ignore", divide="ignore"):
            live = self.live(ts, xs)
            rows = self.rows[live]
            t, x = ts[live], xs[live]
            scored = self.score_rows(rows, t, x)
            out = np.zeros(len(xs))
            out[live] = self.emit(rows, scored)
            self.learn_rows(rows, x, scored)
            return out

    def live(self, ts: Array, xs: Array) -> npt.NDArray[np.bool_]:  # noqa: ARG002
        """The series with a sample this round (the streaming detector skips the others)."""
        return np.isfinite(xs)

    def gate(self, rows: Index, score: Array) -> Array:
        """Fire once: a score passes only when it beats the rows' recent scores."""
        return np.where(score > self.recent[rows].max(axis=1), score, 0.0)

    def emit(self, rows: Index, scored: RowScores) -> Array:
        """The scores reported for `rows` this round."""
        return self.gate(rows, scored.combined)

    def score_rows(self, rows: Index, t: Array, x: Array) -> RowScores:  # noqa: ARG002
        """Raw scores of `x` for `rows` (with finite `x`), without changing anything."""
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
                gap = _gap(protos[gapped], count[gapped], x[gapped], lo[gapped], hi[gapped])
                ref[gapped] = np.maximum(ref[gapped], rails.gap_k * gap)
        nu = picked / ref
        if rails.age_boost > 0.0:
            age = (self.clock[rows] + 1) - self.used[rows, np.maximum(nearest, 0)]
            nu = nu + rails.age_boost * age / (age + rails.age_scale)
        raw = np.zeros(len(rows))
        raw[scoring] = 1.0 - exp_each(-nu[scoring])
        return RowScores(raw=raw, nearest=nearest, dist=dist, span=span, combined=raw)

    def learn_rows(self, rows: Index, x: Array, scored: RowScores) -> None:
        """Learn `x` for `rows`; the combined score goes into the fire-once memory."""
        rails = self.template
        nearest, dist = scored.nearest, scored.dist
        self.recent[rows, self.position[rows]] = scored.combined
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

    # -- state, in the streaming detector's format ------------------------------------------

    def state_of(self, row: int) -> dict[str, Any]:
        """Row `row`'s state exactly as the streaming detector's `state()` would give it."""
        single = self.streaming(seed=self.seed, **self.params)
        self.fill(single, row)
        return single.state()

    def load_row(self, row: int, state: dict[str, Any]) -> None:
        """Continue a streaming detector's `state()` (same kind and parameters) in `row`."""
        if state.get("kind") != self.streaming.kind:
            kind = state.get("kind")
            raise ValueError(f"row {row}: a {kind!r} state, not {self.streaming.kind!r}")
        single = self.streaming.from_state(state)
        if single.state()["params"] != self.template.state()["params"]:
            raise ValueError(f"row {row}: the state's parameters differ from the batch's")
        self.load(row, single)

    @classmethod
    def from_states(cls, states: list[dict[str, Any]]) -> Self:
        """A batch whose rows continue the given streaming states, one row each."""
        if not states:
            raise ValueError("need at least one state")
        out = cls(len(states), seed=states[0]["seed"], **states[0]["params"])
        for row, state in enumerate(states):
            out.load_row(row, state)
        return out

    def fill(self, single: RangeNovelty, row: int) -> None:
        """Copy row `row` into a streaming detector of the same parameters."""
        count = int(self.count[row])
        single.clock = int(self.clock[row])
        single.lo, single.hi = float(self.lo[row]), float(self.hi[row])
        single.prev = None if math.isnan(self.prev[row]) else float(self.prev[row])
        single.step = float(self.step[row])
        single.count = count
        single.protos[:count] = self.protos[row, :count]
        single.used[:count] = self.used[row, :count]
        # The ring in time order: the oldest score sits where the next one will be written.
        kept = min(single.clock, self.recent.shape[1])
        ring = np.roll(self.recent[row], -int(self.position[row]))
        single.recent.clear()
        single.recent.extend(ring[len(ring) - kept :].tolist())

    def load(self, row: int, single: RangeNovelty) -> None:
        """Set row `row` from a streaming detector of the same parameters."""
        count = single.count
        self.count[row], self.clock[row] = count, single.clock
        self.lo[row], self.hi[row] = single.lo, single.hi
        self.prev[row] = math.nan if single.prev is None else single.prev
        self.step[row] = single.step
        self.protos[row] = np.nan
        self.protos[row, :count] = single.protos[:count]
        self.used[row] = 0.0
        self.used[row, :count] = single.used[:count]
        # Written oldest first from slot 0; the next score goes after them.
        self.recent[row] = 0.0
        self.recent[row, : len(single.recent)] = list(single.recent)
        self.position[row] = len(single.recent) % self.recent.shape[1]


def _gap(protos: Array, count: Index, x: Array, lo: Array, hi: Array) -> Array:
    """The hole between the visited values around each x (as `RangeNovelty._gap`)."""
    ordered = np.sort(protos, axis=1)  # NaN (unused slots) sort last
    index = np.arange(len(x))
    top = ordered[index, count - 1] - ordered[index, count - 2]
    bottom = ordered[:, 1] - ordered[:, 0]
    below = np.where(protos <= x[:, None], protos, -np.inf).max(axis=1)
    above = np.where(protos >= x[:, None], protos, np.inf).min(axis=1)
    inside = np.where(np.isfinite(below) & np.isfinite(above), above - below, 0.0)
    return np.where(x > hi, top, np.where(x < lo, bottom, inside))
