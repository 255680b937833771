"""Every detector by name, with the parameters chosen for it, and the default one.

A factory takes only `seed`, so the check battery, the NAB harness and the controller all
build a detector the same way. The parameters are fixed for every series: NAB forbids
per-file tuning, and the controller cannot tune per metric either.
"""

from __future__ import annotations

from collections.abc import Callable

from selfheal.detection.batch.range_novelty import NoveltyBatch
from selfheal.detection.batch.range_novelty_level import LevelNoveltyBatch
from selfheal.detection.batch.range_novelty_plus import NoveltyPlusBatch
from selfheal.detection.bocpd import BocpdEnsemble
from selfheal.detection.changepoint import Cusum
from selfheal.detection.contextual import ContextualNovelty
from selfheal.detection.contract import BatchDetector, Detector, StreamingDetector
from selfheal.detection.likelihood import AnomalyLikelihood, Ensemble
from selfheal.detection.range_novelty import RangeNovelty
from selfheal.detection.range_novelty_level import RangeNoveltyLevel
from selfheal.detection.range_novelty_plus import RangeNoveltyPlus
from selfheal.detection.robust import RobustZ
from selfheal.detection.seasonal import DAY, WEEK, SeasonalProfile

__all__ = ["BATCH_PATHS", "DEFAULT", "DETECTORS", "THRESHOLDS"]


def _robust(*, seed: int = 0) -> StreamingDetector:
    return RobustZ(seed=seed)


def _seasonal_daily(*, seed: int = 0) -> StreamingDetector:
    return SeasonalProfile(period=DAY, bins=48, seed=seed)


def _seasonal_weekly(*, seed: int = 0) -> StreamingDetector:
    # Hourly bins: a week of 5-minute samples puts 12 samples in each bin per period.
    return SeasonalProfile(period=WEEK, bins=7 * 24, seed=seed)


def _cusum(*, seed: int = 0) -> StreamingDetector:
    return Cusum(seed=seed)


def _judged(inner: StreamingDetector, *, seed: int) -> AnomalyLikelihood:
    # short=1 (no averaging) and a 1000-sample memory scored best on the NAB development
    # subset among short in {1, 2, 3, 10} and alpha in {3e-4, 1e-3, 3e-3}, one setting for all
    # files: averaging delayed and diluted the single-row spikes that open many NAB windows.
    return AnomalyLikelihood(inner, short=1, alpha=0.001, seed=seed)


def _likelihood_robust(*, seed: int = 0) -> StreamingDetector:
    return _judged(_robust(seed=seed), seed=seed)


def _novelty(*, seed: int = 0) -> StreamingDetector:
    return RangeNoveltyLevel(seed=seed)


def _novelty_plus(*, seed: int = 0) -> StreamingDetector:
    return RangeNoveltyPlus(seed=seed)


def _range_novelty(*, seed: int = 0) -> StreamingDetector:
    return RangeNovelty(seed=seed)


def _contextual(*, seed: int = 0) -> StreamingDetector:
    return ContextualNovelty(seed=seed)


def _bocpd(*, seed: int = 0) -> StreamingDetector:
    return BocpdEnsemble(seed=seed)


def _quick(*, seed: int = 0) -> StreamingDetector:
    # For the controller, where a series may have only a minute of history when trouble
    # starts: verdicts after 8 samples instead of 300.
    return AnomalyLikelihood(RobustZ(warmup=3, seed=seed), short=1, alpha=0.01, warmup=8, seed=seed)


def _ensemble(*, seed: int = 0) -> StreamingDetector:
    # CUSUM is left out: its sums random-walk on plain noise, so its likelihood fired on
    # normal points more often than on a 12-sigma spike (the battery's shift-and-spike series).
    members = [_robust(seed=seed), _seasonal_daily(seed=seed)]
    return Ensemble([_judged(m, seed=seed) for m in members], seed=seed)


DETECTORS: dict[str, Callable[..., Detector]] = {
    "robust-z": _robust,
    "seasonal-daily": _seasonal_daily,
    "seasonal-weekly": _seasonal_weekly,
    "cusum": _cusum,
    "likelihood-robust-z": _likelihood_robust,
    "ensemble": _ensemble,
    "quick": _quick,
    "novelty": _novelty,
    "novelty-plus": _novelty_plus,
    "range-novelty": _range_novelty,
    "contextual": _contextual,
    "bocpd": _bocpd,
}

DEFAULT = "novelty"

# The detectors with a vectorized batch path, by name: `make(series, seed=...)` gives the
# same detector as `DETECTORS[name](seed=...)` for each of `series` series.
BATCH_PATHS: dict[str, Callable[..., BatchDetector]] = {
    "novelty": LevelNoveltyBatch,
    "novelty-plus": NoveltyPlusBatch,
    "range-novelty": NoveltyBatch,
}

# The score from which the controller counts a sample as anomalous, for the detectors whose
# scores lie in [0, 1]: the threshold NAB's standard profile chose for each over the
# development corpus, rounded down to two decimals, so "anomalous" means what the benchmark
# measured (`selfheal bench nab --detector NAME` prints it). The others (raw z-scores, CUSUM
# sums, seasonal deviations) have no common scale and are for composing, not for watches.
THRESHOLDS: dict[str, float] = {
    "likelihood-robust-z": 0.36,
    "ensemble": 0.46,
    "quick": 0.61,
    "novelty": 0.75,
    "novelty-plus": 0.75,
    "range-novelty": 0.75,
    "contextual": 0.47,
    "bocpd": 0.53,
}
