"""`RangeNoveltyLevel`, the default detector, for many series at once.

`NoveltyPlusBatch` (value novelty and the daily-shape channel) plus the robust level of each
series scored by a second `NoveltyBatch` memory, and peak emission, as in
`selfheal.detection.range_novelty_level`. Bit for bit what `RangeNoveltyLevel.process_one`
computes for each series alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from selfheal.detection.batch.range_novelty import Array, Index, NoveltyBatch, RowScores
from selfheal.detection.batch.range_novelty_plus import NoveltyPlusBatch, PlusScores
from selfheal.detection.range_novelty import RangeNovelty
from selfheal.detection.range_novelty_level import RangeNoveltyLevel

__all__ = ["LevelNoveltyBatch"]


@dataclass(frozen=True, slots=True)
class LevelScores(PlusScores):
    """`PlusScores` plus the next robust level per row and its memory's scores."""

    level: Array
    levels: RowScores


class LevelNoveltyBatch(NoveltyPlusBatch):
    """`RangeNoveltyLevel` for `series` series, advanced together one sample per series."""

    streaming: ClassVar[type[RangeNovelty]] = RangeNoveltyLevel
    template: RangeNoveltyLevel

    def __init__(self, series: int, *, seed: int = 0, **params: Any) -> None:
        super().__init__(series, seed=seed, **params)
        rails = self.template
        # The same memory the streaming detector builds for its levels (`_level_memory`).
        inner = rails.levels
        self.levels = NoveltyBatch(
            series,
            seed=seed,
            cap=inner.cap,
            vigilance=inner.vigilance,
            rate=inner.rate,
            warmup=inner.warmup,
            suppress=inner.suppress,
            step_k=inner.step_k,
            step_rate=inner.step_rate,
            gap_k=inner.gap_k,
            age_boost=inner.age_boost,
            age_scale=inner.age_scale,
        )
        self.level: Array = np.full(series, np.nan)  # NaN: no sample yet
        self.pending: Array = np.zeros(series)
        self.run: Index = np.zeros(series, dtype=np.int64)
        # The level's volatility yardstick, as a factor of the series' (see the module).
        self.level_noise = math.sqrt(rails.level_rate / (2.0 - rails.level_rate))

    def score_rows(self, rows: Index, t: Array, x: Array) -> LevelScores:
        rails = self.template
        plus = super().score_rows(rows, t, x)
        before = self.level[rows]
        clip = rails.level_clip * self.step[rows]
        moved = before + rails.level_rate * np.maximum(-clip, np.minimum(clip, x - before))
        level = np.where(np.isnan(before), x, moved)
        levels = self.levels.score_rows(rows, t, level)
        return LevelScores(
            raw=plus.raw,
            nearest=plus.nearest,
            dist=plus.dist,
            span=plus.span,
            combined=np.maximum(plus.combined, rails.level_weight * levels.raw),
            bucket=plus.bucket,
            day=plus.day,
            resid=plus.resid,
            level=level,
            levels=levels,
        )

    def emit(self, rows: Index, scored: RowScores) -> Array:
        """Peak emission: hold a passing score until the event stops rising, then report it."""
        passed = self.gate(rows, scored.combined)
        pending, run = self.pending[rows], self.run[rows]
        rising = passed > 0.0
        too_long = rising & (pending > 0.0) & (run >= self.template.peak_wait)
        out = np.where(too_long, passed, np.where(rising, 0.0, pending))
        self.pending[rows] = np.where(rising & ~too_long, passed, 0.0)
        self.run[rows] = np.where(rising & ~too_long, run + 1, 0)
        return out

    def learn_rows(self, rows: Index, x: Array, scored: RowScores) -> None:
        assert isinstance(scored, LevelScores)
        super().learn_rows(rows, x, scored)
        self.level[rows] = scored.level
        self.levels.learn_rows(rows, scored.level, scored.levels)
        self.levels.step[rows] = self.step[rows] * self.level_noise

    def fill(self, single: RangeNovelty, row: int) -> None:
        assert isinstance(single, RangeNoveltyLevel)
        super().fill(single, row)
        single.level = None if math.isnan(self.level[row]) else float(self.level[row])
        self.levels.fill(single.levels, row)
        single.pending = float(self.pending[row])
        single.run = int(self.run[row])

    def load(self, row: int, single: RangeNovelty) -> None:
        assert isinstance(single, RangeNoveltyLevel)
        super().load(row, single)
        self.level[row] = math.nan if single.level is None else single.level
        self.levels.load(row, single.levels)
        self.pending[row] = single.pending
        self.run[row] = single.run
