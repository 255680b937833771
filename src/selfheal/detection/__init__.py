"""Anomaly detection: streaming detectors and the benchmark that judges them.

Every detector follows one streaming contract (`contract.py`: learn and score one sample,
higher is more anomalous, seeded, state that can be saved and restored, bounded memory):
novelty of a value against a bounded memory of visited values, measured in units of the
series' range, volatility and gaps (`range_novelty`), with a daily-shape channel
(`range_novelty_plus`) and a robust-level channel (`range_novelty_level`, the default),
contextual
novelty of quantised transitions (`contextual`), Bayesian online change points (`bocpd`),
robust z-scores on exponentially weighted baselines (`robust`), a seasonal profile
(`seasonal`), CUSUM change detection (`changepoint`), and an anomaly-likelihood layer and
ensemble in [0, 1] (`likelihood`). `batch` runs the novelty detectors, the default
included, over many series at once in numpy arrays. `registry` names them; `correlation`
combines the anomalies of one
service into a confidence. `nab` scores detectors the way the Numenta Anomaly Benchmark
does, so our numbers can be compared with the published ones.
"""

from selfheal.detection import (
    batch,
    bocpd,
    changepoint,
    contextual,
    contract,
    correlation,
    likelihood,
    nab,
    range_novelty,
    range_novelty_level,
    range_novelty_plus,
    registry,
    robust,
    seasonal,
)

__all__ = [
    "batch",
    "bocpd",
    "changepoint",
    "contextual",
    "contract",
    "correlation",
    "likelihood",
    "nab",
    "range_novelty",
    "range_novelty_level",
    "range_novelty_plus",
    "registry",
    "robust",
    "seasonal",
]
