"""The batch path: a detector's arithmetic for many series at once, in numpy arrays.

The controller watches hundreds of series and feeds each one sample per round; a Python
object per series costs a method call and a few numpy calls per sample. A batch detector
keeps the state of `series` streaming detectors in arrays and advances all of them by one
sample with a few dozen vectorized operations, so the cost per sample falls with the number
of series (`selfheal bench` reports both paths).

Each computes exactly what its streaming detector computes for each series alone, bit for
bit: the same float operations in the same order, and `math.exp` (not numpy's, whose last
bit may differ) for the scores. A NaN value (or timestamp) means "no sample for this series
this round": it scores 0 and changes nothing, as in the streaming detector, which is also
how series of different lengths share one batch. A row's state can be read out as, and
loaded from, the streaming detector's `state()`, so the two paths hand over to each other.

| batch | streaming detector (registry name) |
|---|---|
| `range_novelty.NoveltyBatch` | `RangeNovelty` (`range-novelty`) |
| `range_novelty_plus.NoveltyPlusBatch` | `RangeNoveltyPlus` (`novelty-plus`) |
| `range_novelty_level.LevelNoveltyBatch` | `RangeNoveltyLevel` (`novelty`, the default) |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from selfheal.detection.batch import range_novelty, range_novelty_level, range_novelty_plus
from selfheal.detection.contract import BatchDetector

__all__ = ["range_novelty", "range_novelty_level", "range_novelty_plus", "score_series"]


def score_series(
    make: Callable[[int], BatchDetector],
    timestamps: Sequence[Sequence[float]],
    values: Sequence[Sequence[float]],
) -> list[list[float]]:
    """Score several series, possibly of different lengths, together on a batch path.

    `make(n)` builds a batch detector for `n` series; the result equals each series
    scored alone by its streaming detector.
    """
    if len(timestamps) != len(values):
        raise ValueError(f"{len(timestamps)} timestamp series for {len(values)} value series")
    for index, (ts, xs) in enumerate(zip(timestamps, values, strict=True)):
        if len(ts) != len(xs):
            raise ValueError(f"series {index}: {len(ts)} timestamps for {len(xs)} values")
    longest = max((len(v) for v in values), default=0)
    ts_grid = np.full((longest, len(values)), np.nan)
    xs_grid = np.full((longest, len(values)), np.nan)
    for column, (ts, xs) in enumerate(zip(timestamps, values, strict=True)):
        ts_grid[: len(ts), column] = ts
        xs_grid[: len(xs), column] = xs
    batch = make(len(values))
    if longest:
        scores = np.stack([batch.process(t, x) for t, x in zip(ts_grid, xs_grid, strict=True)])
    else:
        scores = xs_grid
    return [scores[: len(xs), column].tolist() for column, xs in enumerate(values)]
