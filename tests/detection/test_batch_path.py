"""The vectorized batch path computes exactly what the streaming default detector does."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from selfheal.detection.batch import NoveltyBatch, score_series
from selfheal.detection.range_novelty import RangeNovelty


def streamed(values: list[float], **params: float) -> list[float]:
    detector = RangeNovelty(**params)  # type: ignore[arg-type]
    return [detector.process_one(0.0, x) for x in values]


def mixed_series() -> list[list[float]]:
    rng = random.Random(11)
    noisy = [100.0 + rng.gauss(0.0, 3.0) for _ in range(1500)]
    noisy[900] += 60.0  # a spike
    shifted = [5.0 + rng.gauss(0.0, 0.1) + (4.0 if i > 700 else 0.0) for i in range(1200)]
    constant = [42.0] * 400 + [43.0] * 10 + [42.0] * 300
    gappy = [math.nan if i % 97 == 0 else rng.uniform(0.0, 1.0) for i in range(1000)]
    spiky = [0.0 if rng.random() < 0.9 else rng.expovariate(0.01) for _ in range(2000)]
    return [noisy, shifted, constant, gappy, spiky, [], [7.0]]


def test_the_batch_path_equals_the_streaming_detector_bit_for_bit() -> None:
    """Series of different lengths, with gaps, spikes, shifts and constants: same floats."""
    series = mixed_series()
    assert score_series(series) == [streamed(values) for values in series]


def test_the_batch_path_honours_non_default_parameters() -> None:
    """A small memory (LRU eviction at work), short suppression, other yardsticks: equal."""
    params = {"cap": 8, "suppress": 5, "warmup": 20, "step_k": 2.0, "gap_k": 1.0, "age_scale": 50.0}
    series = mixed_series()
    assert score_series(series, **params) == [streamed(values, **params) for values in series]


def test_a_missing_sample_changes_nothing_for_that_series() -> None:
    """NaN means no sample this round: score 0, and the series' later scores are unmoved."""
    rng = random.Random(2)
    values = [rng.gauss(10.0, 1.0) for _ in range(400)]
    batch = NoveltyBatch(2)
    with_gap, without = [], []
    for i, x in enumerate(values):
        if i == 250:
            assert batch.process(np.array([math.nan, math.nan]))[0] == 0.0
        scores = batch.process(np.array([x, x]))
        with_gap.append(scores[0])
        without.append(scores[1])
    assert with_gap == without


def test_parameters_are_validated_as_the_streaming_detector_does() -> None:
    with pytest.raises(ValueError, match="need cap >= 2"):
        NoveltyBatch(3, cap=1)
