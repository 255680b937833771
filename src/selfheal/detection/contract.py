"""The one streaming contract every anomaly detector follows.

A detector sees one sample `(t, x)` at a time (`t` in seconds since the epoch, `x` the value)
and keeps a fixed amount of state per series, so it can run forever in the controller on
Prometheus series and be scored on NAB under the same rules: the score for a sample may use
that sample and the past only.

- `score_one(t, x)` rates a sample without changing the detector (higher = more anomalous),
  so a caller can ask "how odd would this be?" and then decide whether to learn it.
- `learn_one(t, x)` folds the sample into the state.
- `process_one(t, x)` is the usual stream step: score, then learn.
- `state()` is a JSON-serializable dict tagged with the detector's `kind`; `restore(state)`
  rebuilds a detector whose future scores are identical, which is how the controller survives a
  restart and how the check battery proves determinism.
- `seed` fixes any randomness; the current detectors are deterministic and only carry it.

A `BatchDetector` is the same detector for many series at once: `process(ts, xs)` advances
every series by one sample (a NaN for "no sample this round") and returns their scores, and
each row's state reads out as, and loads from, the streaming detector's `state()`. The
vectorized ones are in `selfheal.detection.batch`; `score_batch` is the reference they are
held to, a loop of streaming detectors that works for every detector.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "BatchDetector",
    "Detector",
    "StreamingDetector",
    "restore",
    "score_batch",
]


@runtime_checkable
class Detector(Protocol):
    """A streaming anomaly detector: bounded state, causal scores, restorable."""

    seed: int

    def learn_one(self, t: float, x: float) -> None: ...

    def score_one(self, t: float, x: float) -> float: ...

    def process_one(self, t: float, x: float) -> float: ...

    def state(self) -> dict[str, Any]: ...


class BatchDetector(Protocol):
    """One detector's state for many series, advanced together one sample per series."""

    @property
    def series(self) -> int: ...

    def process(
        self, ts: npt.NDArray[np.float64], xs: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]: ...

    def state_of(self, row: int) -> dict[str, Any]: ...

    def load_row(self, row: int, state: dict[str, Any]) -> None: ...


_KINDS: dict[str, type[StreamingDetector]] = {}


class StreamingDetector(abc.ABC):
    """Base class giving `process_one` and restore-by-kind to concrete detectors."""

    kind: ClassVar[str]
    seed: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Registering on definition lets `restore` rebuild nested detectors (an ensemble
        # holds its members' states) without the contract importing every implementation.
        if "kind" in cls.__dict__:
            _KINDS[cls.kind] = cls

    @abc.abstractmethod
    def learn_one(self, t: float, x: float) -> None: ...

    @abc.abstractmethod
    def score_one(self, t: float, x: float) -> float: ...

    def process_one(self, t: float, x: float) -> float:
        score = self.score_one(t, x)
        self.learn_one(t, x)
        return score

    @abc.abstractmethod
    def state(self) -> dict[str, Any]: ...

    @classmethod
    @abc.abstractmethod
    def from_state(cls, state: dict[str, Any]) -> Self: ...


def restore(state: dict[str, Any]) -> StreamingDetector:
    """Rebuild a detector from `state()`; its future scores equal the original's."""
    kind = state.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"unknown detector kind {kind!r}: import the module that defines it")
    return _KINDS[kind].from_state(state)


def score_batch(
    make: Callable[[], Detector],
    ts: Sequence[Sequence[float]],
    xs: Sequence[Sequence[float]],
) -> list[list[float]]:
    """Score many series, each with a fresh detector from `make`, score-then-learn per sample.

    The reference loop, for every detector: a vectorized batch path must give exactly this.
    """
    if len(ts) != len(xs):
        raise ValueError(f"{len(ts)} timestamp series for {len(xs)} value series")
    out: list[list[float]] = []
    for series_t, series_x in zip(ts, xs, strict=True):
        detector = make()
        out.append([detector.process_one(t, x) for t, x in zip(series_t, series_x, strict=True)])
    return out
