"""Anomaly detection: streaming detectors and the benchmark that judges them.

Every detector follows one streaming contract (`contract.py`: learn and score one sample,
higher is more anomalous, seeded, state that can be saved and restored, bounded memory):
robust z-scores on exponentially weighted baselines (`robust`), a seasonal profile
(`seasonal`), CUSUM change detection (`changepoint`), and an anomaly-likelihood layer and
ensemble in [0, 1] (`likelihood`). `registry` names them. `nab` scores detectors the way the
Numenta Anomaly Benchmark does, so our numbers can be compared with the published ones.
"""

from selfheal.detection import (
    changepoint,
    contract,
    correlation,
    likelihood,
    nab,
    registry,
    robust,
    seasonal,
)

__all__ = [
    "changepoint",
    "contract",
    "correlation",
    "likelihood",
    "nab",
    "registry",
    "robust",
    "seasonal",
]
