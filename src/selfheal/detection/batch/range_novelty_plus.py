"""`RangeNoveltyPlus` for many series at once: value novelty and the daily-shape channel.

The value channel is `NoveltyBatch`'s; the daily profile of each series is one row of a
`(series, season_buckets)` array. Bit for bit what `RangeNoveltyPlus.process_one` computes
for each series alone (the same float operations in the same order, `math.exp` for the
score), which the batch tests check against the streaming detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from selfheal.detection.batch.range_novelty import Array, Index, NoveltyBatch, RowScores, exp_each
from selfheal.detection.range_novelty import RangeNovelty
from selfheal.detection.range_novelty_plus import _DAY, _MIN_DAYS, RangeNoveltyPlus

__all__ = ["NoveltyPlusBatch", "PlusScores"]

_NEVER = np.iinfo(np.int64).min  # "no day yet" in `last_day` (None in the streaming state)


@dataclass(frozen=True, slots=True)
class PlusScores(RowScores):
    """`RowScores` plus the daily channel's slot, day and smoothed residual per row."""

    bucket: Index
    day: Index
    resid: Array


class NoveltyPlusBatch(NoveltyBatch):
    """`RangeNoveltyPlus` for `series` series, advanced together one sample per series."""

    streaming: ClassVar[type[RangeNovelty]] = RangeNoveltyPlus
    template: RangeNoveltyPlus

    def __init__(self, series: int, *, seed: int = 0, **params: Any) -> None:
        super().__init__(series, seed=seed, **params)
        buckets = self.template.season_buckets
        self.profile: Array = np.zeros((series, buckets))
        self.days: Index = np.zeros((series, buckets), dtype=np.int64)
        self.last_day: Index = np.full((series, buckets), _NEVER, dtype=np.int64)
        self.resid: Array = np.zeros(series)
        self.resid_scale: Array = np.zeros(series)
        self.resid_n: Index = np.zeros(series, dtype=np.int64)

    def live(self, ts: Array, xs: Array) -> npt.NDArray[np.bool_]:
        return np.isfinite(xs) & np.isfinite(ts)

    def score_rows(self, rows: Index, t: Array, x: Array) -> PlusScores:
        rails = self.template
        value = super().score_rows(rows, t, x)
        buckets = rails.season_buckets
        # numpy's float remainder and floor division follow Python's, as `_slot` computes.
        bucket = np.minimum(
            np.floor_divide(np.remainder(t, _DAY), _DAY / buckets).astype(np.int64), buckets - 1
        )
        day = np.floor_divide(t, _DAY).astype(np.int64)
        days = self.days[rows, bucket]
        seen = days >= 1
        before = self.resid[rows]
        resid = np.where(
            seen, before + rails.season_smooth * ((x - self.profile[rows, bucket]) - before), before
        )
        trusted = (
            seen
            & (days >= _MIN_DAYS)
            & (self.clock[rows] + 1 > rails.warmup)
            & (self.resid_n[rows] > 0)
        )
        nu = np.abs(resid) / np.maximum(self.resid_scale[rows], rails.vigilance * value.span)
        season = np.zeros(len(rows))
        season[trusted] = rails.season_weight * (1.0 - exp_each(-nu[trusted] / rails.season_k))
        return PlusScores(
            raw=value.raw,
            nearest=value.nearest,
            dist=value.dist,
            span=value.span,
            combined=np.maximum(value.raw, season),
            bucket=bucket,
            day=day,
            resid=resid,
        )

    def learn_rows(self, rows: Index, x: Array, scored: RowScores) -> None:
        assert isinstance(scored, PlusScores)
        rails = self.template
        super().learn_rows(rows, x, scored)
        bucket, day = scored.bucket, scored.day
        seen = self.days[rows, bucket] >= 1
        hit, hit_bucket = rows[seen], bucket[seen]
        self.resid[hit] = scored.resid[seen]
        self.resid_n[hit] += 1
        alpha = np.maximum(rails.step_rate, 1.0 / self.resid_n[hit])
        scale = self.resid_scale[hit]
        self.resid_scale[hit] = scale + alpha * (np.abs(scored.resid[seen]) - scale)
        profile = self.profile[hit, hit_bucket]
        self.profile[hit, hit_bucket] = profile + rails.rate * (x[seen] - profile)
        self.profile[rows[~seen], bucket[~seen]] = x[~seen]
        new_day = self.last_day[rows, bucket] != day
        self.days[rows[new_day], bucket[new_day]] += 1
        self.last_day[rows[new_day], bucket[new_day]] = day[new_day]

    def fill(self, single: RangeNovelty, row: int) -> None:
        assert isinstance(single, RangeNoveltyPlus)
        super().fill(single, row)
        single.profile = self.profile[row].tolist()
        single.days = self.days[row].tolist()
        single.last_day = [None if d == _NEVER else d for d in self.last_day[row].tolist()]
        single.resid = float(self.resid[row])
        single.resid_scale = float(self.resid_scale[row])
        single.resid_n = int(self.resid_n[row])

    def load(self, row: int, single: RangeNovelty) -> None:
        assert isinstance(single, RangeNoveltyPlus)
        super().load(row, single)
        self.profile[row] = single.profile
        self.days[row] = single.days
        self.last_day[row] = [_NEVER if d is None else d for d in single.last_day]
        self.resid[row] = single.resid
        self.resid_scale[row] = single.resid_scale
        self.resid_n[row] = single.resid_n
