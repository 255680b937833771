"""Novelty against a bounded memory of prototypes (ART / nearest-neighbour style).

The idea behind Adaptive Resonance Theory detectors such as ARTime and nearest-neighbour
detectors such as KNN-CAD, written from their published descriptions: keep a small set of
prototypes of what the series has looked like, and call a sample anomalous when it resonates
with none of them. Here:

- **Feature.** The last `w * d` values, averaged in `w` blocks of `d` (with the defaults,
  `w = d = 1`, the feature is the value itself: on NAB a short "have we ever been here?"
  memory beat longer shape windows, which fill the memory with noise variants).
- **Normalisation.** Distances are measured in units of the range `max - min` of every value
  seen *before* the sample (so a value beyond the old range is scored against the old range).
  The range is what makes a novelty comparable across series: NAB anomalies are large relative
  to a series' own span. A floor relative to the level guards constant series. `span_rate`
  < 1 lets the range follow a new extreme only part of the way (1, the default, tracks the
  plain running min/max; 0.1 scored about the same on NAB, 0.3 a little worse).
- **Memory.** At most `cap` prototypes (a fixed numpy array). The nearest one "resonates" when
  it lies within the vigilance `vigilance` (mean absolute difference / range): it then moves
  toward the feature by `rate`. Otherwise the feature becomes a new prototype, replacing the
  least recently used one when the memory is full. State is O(cap * w), independent of length.
- **Score.** Novelty `nu = distance_to_nearest / vigilance`, squashed to `1 - exp(-nu)` in
  [0, 1): 0.63 at the vigilance, monotone, and in the same units on every series.
- **Fire once.** A score is passed on only when it beats every raw score of the previous
  `suppress` samples, otherwise it is multiplied by `damp` (0 by default). A change then
  reports at its first, most novel sample and not again while it keeps looking new, and a
  value that has just been learnt no longer looks novel anyway. This is causal and needs no
  threshold inside the detector, so the corpus threshold stays free.
- **Warm-up.** Scores are 0 for the first `warmup` samples (a fixed count, learning only).

Everything is deterministic; `seed` is only carried for the contract.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from selfheal.detection.contract import StreamingDetector

__all__ = ["PrototypeNovelty"]

_ABS_FLOOR = 1e-9  # the range of an all-zero series
_REL_FLOOR = 1e-3  # the range of a constant series, relative to its level

Array = npt.NDArray[np.float64]


class PrototypeNovelty(StreamingDetector):
    """Distance of the recent values to a bounded, self-organising set of prototypes."""

    kind = "prototype_novelty"

    def __init__(
        self,
        *,
        w: int = 1,
        d: int = 1,
        cap: int = 256,
        vigilance: float = 0.02,
        rate: float = 0.3,
        warmup: int = 150,
        suppress: int = 100,
        damp: float = 0.0,
        span_rate: float = 1.0,
        seed: int = 0,
    ) -> None:
        if w < 1 or d < 1 or cap < 1 or suppress < 1:
            raise ValueError("w, d, cap and suppress must be >= 1")
        if vigilance <= 0.0 or not 0.0 <= rate <= 1.0 or not 0.0 <= damp <= 1.0:
            raise ValueError("need vigilance > 0 and rate, damp in [0, 1]")
        self.w, self.d, self.cap = w, d, cap
        self.vigilance, self.rate = vigilance, rate
        self.warmup, self.suppress, self.damp = warmup, suppress, damp
        self.span_rate = span_rate
        self.seed = seed
        self.n = 0  # samples learnt (capped far beyond any warm-up, see learn_one)
        self.lo = math.inf
        self.hi = -math.inf
        self.buf: deque[float] = deque(maxlen=w * d)
        self.protos: Array = np.zeros((cap, w))
        self.used: Array = np.zeros(cap)  # last step each prototype resonated (LRU eviction)
        self.count = 0  # prototypes in use
        self.step = 0  # a clock for `used`, counts learnt samples without a cap
        self.recent: deque[float] = deque(maxlen=suppress)  # raw scores, for fire-once

    # -- core -------------------------------------------------------------------------------

    def _feature(self, x: float) -> Array | None:
        """The block-averaged window ending at `x`, or None until the window is full."""
        length = self.w * self.d
        if len(self.buf) + 1 < length:
            return None
        if length == 1:
            return np.array([x])
        tail = list(self.buf)[len(self.buf) - length + 1 :]
        tail.append(x)
        blocks: Array = np.asarray(tail, dtype=np.float64).reshape(self.w, self.d).mean(axis=1)
        return blocks

    def _nearest(self, f: Array) -> tuple[int, float]:
        """Index of the nearest prototype and its distance in range units (inf if none)."""
        if self.count == 0:
            return -1, math.inf
        dist = np.abs(self.protos[: self.count] - f).mean(axis=1)
        j = int(dist.argmin())
        span = max(self.hi - self.lo, _REL_FLOOR * max(abs(self.hi), abs(self.lo)), _ABS_FLOOR)
        return j, float(dist[j]) / span

    def _raw(self, f: Array | None) -> tuple[float, int, float]:
        """Raw score in [0, 1) of a feature, with the nearest prototype and its distance."""
        if f is None:
            return 0.0, -1, math.inf
        j, dist = self._nearest(f)
        if self.n + 1 <= self.warmup or j < 0:
            return 0.0, j, dist
        return 1.0 - math.exp(-dist / self.vigilance), j, dist

    def _gate(self, raw: float) -> float:
        """Fire once: pass a score only when it beats the recent raw scores."""
        previous = max(self.recent) if self.recent else 0.0
        return raw if raw > previous else raw * self.damp

    def _learn(self, x: float, f: Array | None, raw: float, j: int, dist: float) -> None:
        self.recent.append(raw)
        self.step += 1
        if f is not None:
            if j >= 0 and dist <= self.vigilance:
                self.protos[j] += self.rate * (f - self.protos[j])
            else:
                if self.count < self.cap:
                    j = self.count
                    self.count += 1
                else:
                    j = int(self.used.argmin())
                self.protos[j] = f
            self.used[j] = self.step
        self.buf.append(x)
        if not math.isfinite(self.lo):
            self.lo = self.hi = x
        elif x > self.hi:
            self.hi += self.span_rate * (x - self.hi)
        elif x < self.lo:
            self.lo += self.span_rate * (x - self.lo)
        # Only "past the warm-up or not" matters, so the count stops growing there.
        self.n = min(self.n + 1, self.warmup + 1)

    # -- contract ---------------------------------------------------------------------------

    def score_one(self, t: float, x: float) -> float:  # noqa: ARG002 - values only
        if not math.isfinite(x):
            return 0.0
        raw, _, _ = self._raw(self._feature(x))
        return self._gate(raw)

    def learn_one(self, t: float, x: float) -> None:  # noqa: ARG002
        if not math.isfinite(x):
            return
        f = self._feature(x)
        raw, j, dist = self._raw(f)
        self._learn(x, f, raw, j, dist)

    def process_one(self, t: float, x: float) -> float:  # noqa: ARG002
        """Score then learn, sharing the one nearest-prototype search."""
        if not math.isfinite(x):
            return 0.0
        f = self._feature(x)
        raw, j, dist = self._raw(f)
        out = self._gate(raw)
        self._learn(x, f, raw, j, dist)
        return out

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "params": {
                "w": self.w,
                "d": self.d,
                "cap": self.cap,
                "vigilance": self.vigilance,
                "rate": self.rate,
                "warmup": self.warmup,
                "suppress": self.suppress,
                "damp": self.damp,
                "span_rate": self.span_rate,
            },
            "n": self.n,
            "step": self.step,
            # None stands for "nothing seen yet": JSON has no infinity.
            "lo": self.lo if math.isfinite(self.lo) else None,
            "hi": self.hi if math.isfinite(self.hi) else None,
            "buf": list(self.buf),
            "protos": self.protos[: self.count].tolist(),
            "used": self.used[: self.count].tolist(),
            "recent": list(self.recent),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        out = cls(seed=state["seed"], **state["params"])
        out.n, out.step = int(state["n"]), int(state["step"])
        out.lo = math.inf if state["lo"] is None else float(state["lo"])
        out.hi = -math.inf if state["hi"] is None else float(state["hi"])
        out.buf.extend(float(v) for v in state["buf"])
        out.count = len(state["protos"])
        if out.count:
            out.protos[: out.count] = np.asarray(state["protos"], dtype=np.float64)
            out.used[: out.count] = np.asarray(state["used"], dtype=np.float64)
        out.recent.extend(float(v) for v in state["recent"])
        return out
