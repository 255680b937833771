"""Anomaly likelihood: how unusual the recent raw scores are, as a number in [0, 1].

Raw scores (a z-score, a CUSUM sum) have no common scale, and their typical level differs per
series: a noisy series has large z-scores all the time. Numenta's idea is to judge the raw
score against its own history: average the last `short` raw scores (a small ring buffer), keep
the long-run distribution of that average (an EW mean and EW variance, O(1) state, modelled as
Gaussian), and report how far into the upper tail the current average lies:

    tail = Q((recent_mean - long_mean) / long_std)      likelihood = 1 - tail

Averaging over a few samples suppresses single noisy blips; using the tail makes one threshold
mean the same thing on every series, which is what NAB's one-threshold-per-corpus rule needs.
The long-run statistics are those of the short average itself, not of single raw scores: an
average of ten scores varies about three times less than one score, and judging it against
the single-score spread would bury a lone spike.
Useful thresholds sit at 1 - 1e-5 and beyond, where floats crowd together, so by default the
output is log-scaled as Numenta does it, -log10(tail) / `log_decades`, clipped to [0, 1].
Numenta maps 10 decades; raw z-scores are heavier-tailed than the Gaussian model, so on NAB
many anomalies reached tails below 1e-10 and tied at 1.0, which left the threshold sweep
nothing to choose; 50 decades keeps them apart. Until `warmup` samples have been learned the
output is 0: no history, no verdict.

`Ensemble` wraps several detectors, each in its own likelihood, and reports the largest:
each member is good at one kind of anomaly (spikes and jumps, breaks in a daily pattern), and all
speak in tail probabilities, so the maximum is a fair "some member finds this unlikely".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

from selfheal.detection.contract import StreamingDetector, restore

__all__ = ["AnomalyLikelihood", "Ensemble"]

_MIN_STD = 1e-6  # a constant score history must not make the next tiny change "certain"


class AnomalyLikelihood(StreamingDetector):
    """Tail probability of the recent mean raw score under the long-run score distribution."""

    kind = "likelihood"

    def __init__(
        self,
        inner: StreamingDetector,
        *,
        short: int = 10,
        alpha: float = 0.001,
        warmup: int = 300,
        log_scale: bool = True,
        log_decades: float = 50.0,
        seed: int = 0,
    ) -> None:
        if short < 1:
            raise ValueError(f"short must be >= 1, got {short}")
        self.inner = inner
        self.seed = seed
        self.alpha = alpha
        self.warmup = warmup
        self.log_scale = log_scale
        self.log_decades = log_decades
        self.recent = [0.0] * short  # ring buffer of the last raw scores
        self.pos = 0
        self.n = 0
        self.mean = 0.0
        self.var = 0.0

    def _recent_mean(self, raw: float) -> float:
        # The recent window with its oldest entry replaced by the current raw score.
        return (sum(self.recent) - self.recent[self.pos] + raw) / len(self.recent)

    def _likelihood(self, raw: float) -> float:
        if self.n < self.warmup:
            return 0.0
        recent_mean = self._recent_mean(raw)
        std = max(math.sqrt(self.var), _MIN_STD)
        tail = 0.5 * math.erfc((recent_mean - self.mean) / (std * math.sqrt(2.0)))
        if not self.log_scale:
            return 1.0 - tail
        if tail <= 0.0:
            return 1.0
        return min(1.0, max(0.0, -math.log10(tail) / self.log_decades))

    def _learn_raw(self, raw: float) -> None:
        recent_mean = self._recent_mean(raw)
        self.recent[self.pos] = raw
        self.pos = (self.pos + 1) % len(self.recent)
        # Capped where neither the warmup test nor the 1/n start-up rate can change any more.
        self.n = min(self.n + 1, max(self.warmup, math.ceil(1.0 / self.alpha), 1))
        rate = max(self.alpha, 1.0 / self.n)
        delta = recent_mean - self.mean
        self.mean += rate * delta
        self.var = (1.0 - rate) * (self.var + rate * delta * delta)

    def score_one(self, t: float, x: float) -> float:
        return self._likelihood(self.inner.score_one(t, x))

    def learn_one(self, t: float, x: float) -> None:
        self._learn_raw(self.inner.score_one(t, x))
        self.inner.learn_one(t, x)

    def process_one(self, t: float, x: float) -> float:
        # Same result as score-then-learn, scoring the inner detector once instead of twice.
        raw = self.inner.score_one(t, x)
        out = self._likelihood(raw)
        self._learn_raw(raw)
        self.inner.learn_one(t, x)
        return out

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "inner": self.inner.state(),
            "alpha": self.alpha,
            "warmup": self.warmup,
            "log_scale": self.log_scale,
            "log_decades": self.log_decades,
            "recent": list(self.recent),
            "pos": self.pos,
            "n": self.n,
            "mean": self.mean,
            "var": self.var,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        out = cls(
            restore(state["inner"]),
            short=len(state["recent"]),
            alpha=state["alpha"],
            warmup=state["warmup"],
            log_scale=state["log_scale"],
            log_decades=state["log_decades"],
            seed=state["seed"],
        )
        out.recent = [float(v) for v in state["recent"]]
        out.pos, out.n, out.mean, out.var = state["pos"], state["n"], state["mean"], state["var"]
        return out


class Ensemble(StreamingDetector):
    """The largest likelihood among member detectors, each judged against its own history."""

    kind = "ensemble"

    def __init__(self, members: Sequence[AnomalyLikelihood], *, seed: int = 0) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.seed = seed

    def score_one(self, t: float, x: float) -> float:
        return max(m.score_one(t, x) for m in self.members)

    def learn_one(self, t: float, x: float) -> None:
        for m in self.members:
            m.learn_one(t, x)

    def process_one(self, t: float, x: float) -> float:
        return max([m.process_one(t, x) for m in self.members])

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "members": [m.state() for m in self.members],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        members = [AnomalyLikelihood.from_state(m) for m in state["members"]]
        return cls(members, seed=state["seed"])
