"""The vectorized batch paths compute exactly what their streaming detectors compute."""

from __future__ import annotations

import functools
import json
import math
import random
from collections.abc import Callable

import numpy as np
import pytest

from selfheal.detection import batch, registry
from selfheal.detection.batch.range_novelty import NoveltyBatch
from selfheal.detection.batch.range_novelty_level import LevelNoveltyBatch
from selfheal.detection.batch.range_novelty_plus import NoveltyPlusBatch
from selfheal.detection.contract import BatchDetector, Detector, restore
from selfheal.detection.range_novelty import RangeNovelty
from selfheal.detection.range_novelty_level import RangeNoveltyLevel
from selfheal.detection.range_novelty_plus import RangeNoveltyPlus

STEP = 300.0  # five-minute samples: the daily channel sees whole days go by
T0 = 1_396_310_400.0  # a midnight UTC
PAIRS: list[tuple[type[NoveltyBatch], type[RangeNovelty]]] = [
    (NoveltyBatch, RangeNovelty),
    (NoveltyPlusBatch, RangeNoveltyPlus),
    (LevelNoveltyBatch, RangeNoveltyLevel),
]
PAIR_IDS = [streaming.kind for _, streaming in PAIRS]

Series = tuple[list[float], list[float]]


def streamed(make: Callable[[], Detector], series: Series) -> list[float]:
    detector = make()
    return [detector.process_one(t, x) for t, x in zip(*series, strict=True)]


def times(n: int, *, start: float = T0) -> list[float]:
    return [start + i * STEP for i in range(n)]


def mixed_series() -> list[Series]:
    """Daily shapes, spikes, shifts, constants, gaps and very short series."""
    rng = random.Random(11)
    daily = [
        100.0 + 20.0 * math.sin(2 * math.pi * i * STEP / 86_400) + rng.gauss(0.0, 2.0)
        for i in range(1500)
    ]
    daily[900] += 60.0  # a spike
    flat_day = [v if not 1100 <= i < 1388 else 100.0 for i, v in enumerate(daily)]
    shifted = [5.0 + rng.gauss(0.0, 0.1) + (4.0 if i > 700 else 0.0) for i in range(1200)]
    constant = [42.0] * 400 + [43.0] * 10 + [42.0] * 300
    gappy = [math.nan if i % 97 == 0 else rng.uniform(0.0, 1.0) for i in range(1000)]
    spiky = [0.0 if rng.random() < 0.9 else rng.expovariate(0.01) for _ in range(2000)]
    # A series that dwells at a level it had touched only in spikes: the level channel's case.
    dwell = [4.0 + rng.gauss(0.0, 1.0) for _ in range(1800)]
    for i in range(300, 1200, 150):
        dwell[i] = 17.0
    for i in range(1500, 1800):
        dwell[i] = 17.0 + rng.gauss(0.0, 1.0)
    # Irregular timestamps, one of them missing (NaN): the daily slots must still agree.
    irregular_t = [T0 + 7.0]
    for _ in range(899):
        irregular_t.append(irregular_t[-1] + rng.uniform(60.0, 900.0))
    irregular_t[450] = math.nan
    out: list[Series] = [
        (times(len(v)), v) for v in (daily, flat_day, shifted, constant, gappy, spiky, dwell)
    ]
    out.append((irregular_t, [rng.gauss(0.0, 1.0) for _ in range(900)]))
    before_1970 = times(1000, start=-86_400.0 * 3 + 11.0)
    out.append((before_1970, [rng.gauss(3.0, 1.0) for _ in range(1000)]))
    out += [([], []), ([T0], [7.0])]
    return out


def on_batch(make: Callable[[int], BatchDetector], series: list[Series]) -> list[list[float]]:
    return batch.score_series(make, [t for t, _ in series], [x for _, x in series])


@pytest.mark.parametrize(("batch_type", "streaming"), PAIRS, ids=PAIR_IDS)
def test_the_batch_path_equals_the_streaming_detector_bit_for_bit(
    batch_type: type[NoveltyBatch], streaming: type[RangeNovelty]
) -> None:
    """Series of different lengths, with gaps, spikes, shifts and constants: same floats."""
    series = mixed_series()
    assert on_batch(batch_type, series) == [streamed(streaming, s) for s in series]


SMALL = {"cap": 8, "suppress": 5, "warmup": 20, "step_k": 2.0, "gap_k": 1.0, "age_scale": 50.0}
OTHER_PARAMS: dict[str, dict[str, float]] = {
    "range_novelty": SMALL,
    "range_novelty_plus": SMALL | {"season_buckets": 24, "season_smooth": 0.5, "season_k": 1.0},
    "range_novelty_level": SMALL
    | {"season_buckets": 7, "level_rate": 0.5, "level_clip": 1.0, "peak_wait": 2},
}


@pytest.mark.parametrize(("batch_type", "streaming"), PAIRS, ids=PAIR_IDS)
def test_the_batch_path_honours_non_default_parameters(
    batch_type: type[NoveltyBatch], streaming: type[RangeNovelty]
) -> None:
    """A small memory (LRU eviction at work), short suppression, other yardsticks: equal."""
    params = OTHER_PARAMS[streaming.kind]
    series = mixed_series()
    expected = [streamed(functools.partial(streaming, **params), s) for s in series]
    assert on_batch(functools.partial(batch_type, **params), series) == expected


@pytest.mark.parametrize(("batch_type", "streaming"), PAIRS, ids=PAIR_IDS)
def test_a_row_reads_out_as_the_streaming_state_and_loads_back(
    batch_type: type[NoveltyBatch], streaming: type[RangeNovelty]
) -> None:
    """Mid-stream, each row's state is the streaming detector's state.

    A batch built from those states (through JSON) goes on scoring exactly as the streaming
    detectors restored from them do.
    """
    series = [s for s in mixed_series() if len(s[1]) >= 900]
    first, rest = 600, 300
    singles = [streaming() for _ in series]
    together = batch_type(len(series))
    for i in range(first):
        ts = np.array([t[i] for t, _ in series])
        xs = np.array([x[i] for _, x in series])
        together.process(ts, xs)
        for detector, t, x in zip(singles, ts.tolist(), xs.tolist(), strict=True):
            detector.process_one(t, x)
    states = [together.state_of(row) for row in range(len(series))]
    assert states == [detector.state() for detector in singles]
    resumed = batch_type.from_states(json.loads(json.dumps(states, allow_nan=False)))
    copies = [restore(state) for state in states]
    for i in range(first, first + rest):
        ts = np.array([t[i] for t, _ in series])
        xs = np.array([x[i] for _, x in series])
        expected = [c.process_one(t, x) for c, t, x in zip(copies, ts, xs, strict=True)]
        assert resumed.process(ts, xs).tolist() == expected


def test_a_state_of_another_kind_or_other_parameters_is_refused() -> None:
    """Loading a row never silently mixes detectors: the kind and parameters must match."""
    together = LevelNoveltyBatch(2)
    with pytest.raises(ValueError, match="'range_novelty_plus' state"):
        together.load_row(0, RangeNoveltyPlus().state())
    with pytest.raises(ValueError, match="parameters differ"):
        together.load_row(1, RangeNoveltyLevel(level_rate=0.5).state())


def test_a_missing_sample_changes_nothing_for_that_series() -> None:
    """NaN means no sample this round: score 0, and the series' later scores are unmoved."""
    rng = random.Random(2)
    values = [rng.gauss(10.0, 1.0) for _ in range(400)]
    together = LevelNoveltyBatch(2)
    with_gap, without = [], []
    for i, x in enumerate(values):
        t = T0 + i * STEP
        if i == 250:
            gap = together.process(np.array([t, t]), np.array([math.nan, math.nan]))
            assert gap.tolist() == [0.0, 0.0]
        scores = together.process(np.array([t, t]), np.array([x, x]))
        with_gap.append(scores[0])
        without.append(scores[1])
    assert with_gap == without


def test_a_round_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="need 3 timestamps and values"):
        NoveltyBatch(3).process(np.zeros(2), np.zeros(2))


def test_parameters_are_validated_as_the_streaming_detector_does() -> None:
    with pytest.raises(ValueError, match="need cap >= 2"):
        NoveltyBatch(3, cap=1)
    with pytest.raises(ValueError, match="need peak_wait >= 1"):
        LevelNoveltyBatch(3, peak_wait=0)


@pytest.mark.parametrize("name", sorted(registry.BATCH_PATHS))
def test_each_registered_batch_path_is_its_registered_detector(name: str) -> None:
    """`BATCH_PATHS[name]` scores like `DETECTORS[name]`, seed included."""
    series = mixed_series()[:3]
    make = functools.partial(registry.BATCH_PATHS[name], seed=5)
    detector = functools.partial(registry.DETECTORS[name], seed=5)
    assert on_batch(make, series) == [streamed(detector, s) for s in series]
    assert make(1).state_of(0) == detector().state()
