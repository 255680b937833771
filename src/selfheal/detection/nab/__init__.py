"""The Numenta Anomaly Benchmark: its corpus layout, its scorer, and a harness to run on it.

`corpus` reads NAB's files, `scorer` applies NAB's scoring rules and threshold optimiser,
`harness` streams a `Detector` over a corpus and scores it, and `baselines` holds a simple
detector to run the whole loop end to end. See docs/nab.md.

`harness` is imported on its own (`from selfheal.detection.nab import harness`), not here:
it is also the runnable module (`python -m selfheal.detection.nab.harness`), and importing
it from its package first would make `python -m` warn that it runs a module already loaded.
"""

from selfheal.detection.nab import baselines, corpus, scorer

__all__ = ["baselines", "corpus", "scorer"]
