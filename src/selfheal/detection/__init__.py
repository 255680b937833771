"""Anomaly detection: detectors and the benchmarks that judge them.

`nab` scores streaming detectors the way the Numenta Anomaly Benchmark does, so our numbers
can be compared with the published ones.
"""

from selfheal.detection import nab

__all__ = ["nab"]
