"""Robust z-score of a sample against exponentially weighted baselines at several time scales.

Each scale keeps an EWMA of the level and an EW mean absolute deviation as its spread: O(1)
state, no window. The deviation is the streaming stand-in for the MAD; for Gaussian noise
E|x - mu| = sigma * sqrt(2 / pi), hence the 1.2533 factor that puts it on the sigma scale.

Why robust, and why several scales:
- A residual is winsorized at `clip` spreads before it updates the baseline, so one spike barely
  moves the level or inflates the spread (a plain EWMA/EW-variance is dragged by the very
  outliers it should flag). A sustained shift still gets absorbed, at `clip` spreads per step.
- A fast scale catches a jump relative to the last few samples; a slow one catches a drift that
  the fast baseline has already followed. The score is the largest |z| over the scales.
- The spread has a floor relative to the level, so a constant series (common in metrics) gives
  finite, meaningful scores instead of dividing by zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

from selfheal.detection.contract import StreamingDetector

__all__ = ["EwLocationScale", "RobustZ"]

_SIGMA_PER_ABS_DEV = math.sqrt(math.pi / 2)  # sigma / E|x - mu| for Gaussian noise
_ABS_FLOOR = 1e-9  # keeps the spread positive for an all-zero series
_N_CAP = 1_000_000  # beyond this 1/n < any useful alpha, so counting further changes nothing


class EwLocationScale:
    """EW level and EW absolute deviation with winsorized updates (a streaming median/MAD)."""

    __slots__ = ("alpha", "clip", "dev", "mean", "n", "rel_floor")

    def __init__(self, *, alpha: float, clip: float = 4.0, rel_floor: float = 1e-3) -> None:
        if not 1.0 / _N_CAP <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [1e-6, 1], got {alpha}")
        self.alpha = alpha
        self.clip = clip
        self.rel_floor = rel_floor
        self.n = 0
        self.mean = 0.0
        self.dev = 0.0

    def scale(self) -> float:
        return max(self.dev * _SIGMA_PER_ABS_DEV, self.rel_floor * abs(self.mean), _ABS_FLOOR)

    def z(self, x: float) -> float:
        return (x - self.mean) / self.scale()

    def update(self, x: float) -> None:
        # Capped so the state stays the same size forever; past the cap the rate is alpha.
        self.n = min(self.n + 1, _N_CAP)
        # The first samples are averaged plainly (1/n) so the baseline does not remember the
        # very first value for 1/alpha steps.
        rate = max(self.alpha, 1.0 / self.n)
        if self.n == 1:
            self.mean = x
            return
        limit = self.clip * self.scale()
        residual = min(max(x - self.mean, -limit), limit) if self.n > 2 else x - self.mean
        self.mean += rate * residual
        self.dev += rate * (abs(residual) - self.dev)

    def state(self) -> list[float]:
        return [self.alpha, self.clip, self.rel_floor, self.n, self.mean, self.dev]

    @classmethod
    def from_state(cls, state: Sequence[float]) -> Self:
        alpha, clip, rel_floor, n, mean, dev = state
        out = cls(alpha=alpha, clip=clip, rel_floor=rel_floor)
        out.n, out.mean, out.dev = int(n), mean, dev
        return out


class RobustZ(StreamingDetector):
    """Largest robust |z| of a sample over EW baselines at several time scales."""

    kind = "robust_z"

    def __init__(
        self,
        *,
        alphas: Sequence[float] = (0.05, 0.005),
        clip: float = 4.0,
        warmup: int = 10,
        seed: int = 0,
    ) -> None:
        if not alphas:
            raise ValueError("RobustZ needs at least one time scale")
        self.seed = seed
        self.warmup = warmup
        self.scales = [EwLocationScale(alpha=a, clip=clip) for a in alphas]

    def score_one(self, t: float, x: float) -> float:  # noqa: ARG002 - level-only, t unused
        if self.scales[0].n < self.warmup:
            return 0.0
        return max(abs(s.z(x)) for s in self.scales)

    def learn_one(self, t: float, x: float) -> None:  # noqa: ARG002
        for s in self.scales:
            s.update(x)

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "warmup": self.warmup,
            "scales": [s.state() for s in self.scales],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        out = cls(seed=state["seed"], warmup=state["warmup"])
        out.scales = [EwLocationScale.from_state(s) for s in state["scales"]]
        return out
