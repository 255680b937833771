"""A seasonal baseline: a daily (or weekly) profile in fixed phase bins, learned online.

The period is cut into `bins` phase bins; each bin holds an EW mean of the values seen in it.
The expected value at time t is the profile linearly interpolated between the two nearest bin
centres (so a smooth daily curve leaves no staircase residual), and the residual x - expected
feeds a robust EW location/scale (see `robust.py`); the score is its |z|.

Why this shape:
- Fixed bins keep state O(bins) per series, whatever the sample rate or the run time.
- Bins move by EW updates, so the profile follows slow changes in the daily pattern, and each
  update is winsorized against the residual spread, so one anomaly does not get baked into
  next day's expectation.
- A bin not seen yet falls back to a plain EW level, so the detector is useful from the first
  hour and becomes seasonal once a full period has been seen.
"""

from __future__ import annotations

import math
from typing import Any, Self

from selfheal.detection.contract import StreamingDetector
from selfheal.detection.robust import EwLocationScale

__all__ = ["DAY", "WEEK", "SeasonalProfile"]

DAY = 86_400.0
WEEK = 7 * DAY
_SPREAD_FLOOR = 0.03
_COUNT_CAP = 1_000_000  # keeps the state a fixed size; past 1/bin_alpha the count is unused


class SeasonalProfile(StreamingDetector):
    """Robust |z| of the residual from an online seasonal profile."""

    kind = "seasonal"

    def __init__(
        self,
        *,
        period: float = DAY,
        bins: int = 48,
        bin_alpha: float = 0.1,
        residual_alpha: float = 0.01,
        clip: float = 4.0,
        warmup: int = 10,
        seed: int = 0,
    ) -> None:
        if period <= 0 or bins < 2:
            raise ValueError(f"need period > 0 and bins >= 2, got {period}, {bins}")
        self.seed = seed
        self.period = period
        self.bin_alpha = bin_alpha
        self.clip = clip
        self.warmup = warmup
        self.profile = [0.0] * bins
        self.counts = [0] * bins
        # The level before a bin has been seen; slow enough to average over a day's shape.
        self.level = EwLocationScale(alpha=0.02, clip=clip)
        self.residual = EwLocationScale(alpha=residual_alpha, clip=clip)

    def _phase(self, t: float) -> tuple[int, int, float]:
        """The bin below t's phase, the one above, and the weight of the one above."""
        bins = len(self.profile)
        pos = (t % self.period) / self.period * bins - 0.5  # bin centres sit at k + 0.5
        low = math.floor(pos)
        frac = pos - low
        return low % bins, (low + 1) % bins, frac

    def _bin_value(self, k: int) -> float:
        return self.profile[k] if self.counts[k] else self.level.mean

    def expected(self, t: float) -> float:
        low, high, frac = self._phase(t)
        return (1.0 - frac) * self._bin_value(low) + frac * self._bin_value(high)

    def score_one(self, t: float, x: float) -> float:
        if self.level.n < self.warmup:
            return 0.0
        # A residual below 3% of the series' own spread is interpolation error, not news;
        # without this floor a noise-free curve would be scored against a near-zero scale.
        scale = max(self.residual.scale(), _SPREAD_FLOOR * self.level.scale())
        return abs(x - self.expected(t) - self.residual.mean) / scale

    def learn_one(self, t: float, x: float) -> None:
        resid = x - self.expected(t)
        if self.residual.n > 2:
            limit = self.clip * self.residual.scale()
            resid = min(max(resid, self.residual.mean - limit), self.residual.mean + limit)
        self.residual.update(x - self.expected(t))
        # The residual is shared between the two bins in proportion to their interpolation
        # weights (a stochastic-gradient step on the piecewise-linear fit), so the profile
        # converges to the curve at the bin centres rather than to wherever samples fell.
        low, high, frac = self._phase(t)
        for k, weight in ((low, 1.0 - frac), (high, frac)):
            if self.counts[k] == 0:
                self.profile[k] = self.level.mean
            rate = max(self.bin_alpha, 1.0 / (self.counts[k] + 1))
            self.profile[k] += rate * weight * resid
            self.counts[k] = min(self.counts[k] + 1, _COUNT_CAP)
        self.level.update(x)

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "period": self.period,
            "bin_alpha": self.bin_alpha,
            "clip": self.clip,
            "warmup": self.warmup,
            "profile": list(self.profile),
            "counts": list(self.counts),
            "level": self.level.state(),
            "residual": self.residual.state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        out = cls(
            period=state["period"],
            bins=len(state["profile"]),
            bin_alpha=state["bin_alpha"],
            clip=state["clip"],
            warmup=state["warmup"],
            seed=state["seed"],
        )
        out.profile = [float(v) for v in state["profile"]]
        out.counts = [int(c) for c in state["counts"]]
        out.level = EwLocationScale.from_state(state["level"])
        out.residual = EwLocationScale.from_state(state["residual"])
        return out
