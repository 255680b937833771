"""Two-sided CUSUM on standardized residuals: a detector for level shifts, not spikes.

Each sample is standardized against a slow robust baseline (`robust.EwLocationScale`) and
clipped to +-`clip`, so one wild spike adds at most `clip - drift` to a sum. Two sums track
evidence of an upward and a downward shift:

    S+ <- max(0, S+ + z - drift)      S- <- max(0, S- - z - drift)

`drift` (k) is half the smallest shift worth flagging, in sigmas. The score is the sum the
sample would produce, max(S+, S-), so `score_one` stays side-effect free. When a sum crosses
`threshold` (h) during learning, the change is accepted: both sums reset and the baseline
restarts at the new level, so the detector is ready for the next change instead of alarming
for as long as the slow baseline takes to catch up.

Why CUSUM next to the z-scores: a shift of one sigma never makes a single |z| stand out, but
its evidence accumulates linearly in S, which is the optimal test for a known shift size
(Page 1954). The state is three numbers plus the baseline, O(1) as the contract asks.
Bayesian online change-point detection would give a run-length posterior instead; it is not
implemented here (see the report that came with this module).
"""

from __future__ import annotations

from typing import Any, Self

from selfheal.detection.contract import StreamingDetector
from selfheal.detection.robust import EwLocationScale

__all__ = ["Cusum"]


class Cusum(StreamingDetector):
    """Two-sided CUSUM over robust z-scores, reset after each accepted change."""

    kind = "cusum"

    def __init__(
        self,
        *,
        alpha: float = 0.01,
        drift: float = 0.5,
        threshold: float = 8.0,
        clip: float = 4.0,
        warmup: int = 30,
        seed: int = 0,
    ) -> None:
        self.seed = seed
        self.drift = drift
        self.threshold = threshold
        self.clip = clip
        self.warmup = warmup
        self.baseline = EwLocationScale(alpha=alpha, clip=clip)
        self.up = 0.0
        self.down = 0.0

    def _z(self, x: float) -> float:
        return min(max(self.baseline.z(x), -self.clip), self.clip)

    def _sums(self, x: float) -> tuple[float, float]:
        z = self._z(x)
        return max(0.0, self.up + z - self.drift), max(0.0, self.down - z - self.drift)

    def score_one(self, t: float, x: float) -> float:  # noqa: ARG002 - level-only, t unused
        if self.baseline.n < self.warmup:
            return 0.0
        return max(self._sums(x))

    def learn_one(self, t: float, x: float) -> None:  # noqa: ARG002
        if self.baseline.n < self.warmup:
            self.baseline.update(x)
            return
        self.up, self.down = self._sums(x)
        if max(self.up, self.down) > self.threshold:
            self.up = self.down = 0.0
            # Keep the learned spread, move the level: the shift is the news, not the noise.
            self.baseline.mean = x
        else:
            self.baseline.update(x)

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "drift": self.drift,
            "threshold": self.threshold,
            "clip": self.clip,
            "warmup": self.warmup,
            "baseline": self.baseline.state(),
            "up": self.up,
            "down": self.down,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        out = cls(
            drift=state["drift"],
            threshold=state["threshold"],
            clip=state["clip"],
            warmup=state["warmup"],
            seed=state["seed"],
        )
        out.baseline = EwLocationScale.from_state(state["baseline"])
        out.up, out.down = state["up"], state["down"]
        return out
