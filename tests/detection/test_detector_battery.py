"""One check battery run over every registered detector, plus behaviour on shaped signals."""

from __future__ import annotations

import json
import math
import random

import pytest

from selfheal.detection import batch, registry
from selfheal.detection.contract import Detector, restore, score_batch

NAMES = sorted(registry.DETECTORS)
# CUSUM accumulates evidence of a sustained shift; one spike adds at most a clipped step, by
# design, so it is judged on shifts only.
SHIFT_ONLY = {"cusum"}
STEP = 300.0  # five-minute samples, as in NAB and a typical Prometheus recording rule
T0 = 1_396_310_400.0  # 2014-04-01 00:00 UTC, a midnight, so phases line up with days


def make(name: str, seed: int = 0) -> Detector:
    return registry.DETECTORS[name](seed=seed)


def noisy_series(n: int, *, seed: int = 1) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    ts = [T0 + i * STEP for i in range(n)]
    xs = [
        50.0 + 10.0 * math.sin(2 * math.pi * i * STEP / 86_400) + rng.gauss(0.0, 1.0)
        for i in range(n)
    ]
    return ts, xs


def run(detector: Detector, ts: list[float], xs: list[float]) -> list[float]:
    return [detector.process_one(t, x) for t, x in zip(ts, xs, strict=True)]


@pytest.mark.parametrize("name", NAMES)
def test_appending_future_samples_never_changes_past_scores(name: str) -> None:
    """Scores are causal: a longer stream gives the same scores on the common prefix."""
    ts, xs = noisy_series(1500)
    short = run(make(name), ts[:1000], xs[:1000])
    long = run(make(name), ts, xs)
    assert long[:1000] == short


@pytest.mark.parametrize("name", NAMES)
def test_scoring_does_not_learn(name: str) -> None:
    """score_one leaves the detector unchanged: its state and later scores are the same."""
    ts, xs = noisy_series(600)
    probed, plain = make(name), make(name)
    for t, x in zip(ts, xs, strict=True):
        probed.score_one(t, x + 100.0)
        probed.score_one(t, x)
        assert probed.process_one(t, x) == plain.process_one(t, x)
    assert probed.state() == plain.state()


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_scores(name: str) -> None:
    """Two detectors built with one seed score a stream identically."""
    ts, xs = noisy_series(800)
    assert run(make(name, seed=7), ts, xs) == run(make(name, seed=7), ts, xs)


@pytest.mark.parametrize("name", NAMES)
def test_a_restored_detector_scores_exactly_like_the_original(name: str) -> None:
    """state() through JSON and back gives identical subsequent scores."""
    ts, xs = noisy_series(2000)
    original = make(name)
    run(original, ts[:1200], xs[:1200])
    copy = restore(json.loads(json.dumps(original.state(), allow_nan=False)))
    assert run(copy, ts[1200:], xs[1200:]) == run(original, ts[1200:], xs[1200:])


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_finite_even_on_constant_and_wild_input(name: str) -> None:
    """Constants, huge jumps and zeros give finite, non-negative scores."""
    xs = [0.0] * 400 + [1e9] * 5 + [0.0] * 200 + [-1e-12, 1e-12] * 100 + [42.0] * 300
    ts = [T0 + i * STEP for i in range(len(xs))]
    scores = run(make(name), ts, xs)
    assert all(math.isfinite(s) and s >= 0.0 for s in scores)


@pytest.mark.parametrize("name", NAMES)
def test_the_state_stays_the_same_size_however_long_the_stream(name: str) -> None:
    """The JSON state after 20k samples is about as large as after 2k, and small."""
    ts, xs = noisy_series(20_000)
    detector = make(name)
    run(detector, ts[:2000], xs[:2000])
    early = len(json.dumps(detector.state()))
    run(detector, ts[2000:], xs[2000:])
    late = len(json.dumps(detector.state()))
    assert late <= early * 1.1 + 100
    assert late < 64_000


@pytest.mark.parametrize("name", NAMES)
def test_the_batch_path_equals_scoring_one_by_one(name: str) -> None:
    """Several series at once score exactly as process_one on each series alone.

    On the vectorized batch path where the detector has one, else on the reference loop.
    """
    series = [noisy_series(700, seed=s) for s in (1, 2, 3)]
    timestamps, values = [ts for ts, _ in series], [xs for _, xs in series]
    if name in registry.BATCH_PATHS:
        together = batch.score_series(registry.BATCH_PATHS[name], timestamps, values)
    else:
        together = score_batch(lambda: make(name), timestamps, values)
    assert together == [run(make(name), ts, xs) for ts, xs in series]


def level_shift_and_spike() -> tuple[list[float], list[float], int, int]:
    rng = random.Random(3)
    n = 3000
    spike, shift = 2000, 2500
    xs = [10.0 + rng.gauss(0.0, 1.0) for _ in range(n)]
    xs[spike] += 12.0
    for i in range(shift, n):
        xs[i] += 8.0
    return [T0 + i * STEP for i in range(n)], xs, spike, shift


@pytest.mark.parametrize("name", NAMES)
def test_a_spike_and_a_level_shift_outscore_the_normal_points_around_them(name: str) -> None:
    """The spike and the first samples after a shift score above every nearby normal point."""
    ts, xs, spike, shift = level_shift_and_spike()
    scores = run(make(name), ts, xs)
    normal = scores[1500:1990] + scores[2050:2490]
    near_spike = max(scores[spike : spike + 10])
    after_shift = max(scores[shift : shift + 30])
    if name not in SHIFT_ONLY:
        assert near_spike > max(normal)
    assert after_shift > max(normal)


def test_a_clean_daily_signal_scores_low_once_the_seasonal_profile_is_learned() -> None:
    """After a few days of a noise-free daily curve, the seasonal detector finds nothing odd."""
    n_day = int(86_400 / STEP)
    ts = [T0 + i * STEP for i in range(8 * n_day)]
    xs = [20.0 + 15.0 * math.sin(2 * math.pi * (t - T0) / 86_400) for t in ts]
    seasonal = run(make("seasonal-daily"), ts, xs)
    assert max(seasonal[7 * n_day :]) < 2.0  # under two robust sigmas: ordinary


def test_the_default_detector_stays_below_its_threshold_on_a_learned_clean_daily_signal() -> None:
    """The default detector, in [0, 1], never reaches its alarm threshold on a clean daily curve."""
    n_day = int(86_400 / STEP)
    ts = [T0 + i * STEP for i in range(8 * n_day)]
    xs = [20.0 + 15.0 * math.sin(2 * math.pi * (t - T0) / 86_400) for t in ts]
    scores = run(make(registry.DEFAULT), ts, xs)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores[7 * n_day :]) < registry.THRESHOLDS[registry.DEFAULT]
