"""Value novelty against a bounded prototype memory, in units of range, volatility and gaps.

ART / nearest-neighbour style novelty ("have we ever been near this value?"), measured with
yardsticks that make it comparable across series, plus a small bonus for values not visited
for long.

- **Memory.** At most `cap` prototypes of single values (a fixed numpy array). The nearest
  one "resonates" when it lies within `vigilance` (in range units) of the value and then
  moves toward it by `rate`; otherwise the value becomes a new prototype, replacing the least
  recently used one when the memory is full. Every prototype remembers the sample at which it
  was last visited.
- **Yardstick.** The distance `D` to the nearest prototype is divided by the largest of
  1. `vigilance * range`, the range `max - min` of the values seen before (with a floor
     relative to the level for constant series): NAB anomalies are large against a series'
     own span, and this makes scores comparable across series;
  2. `step_k * step`, where `step` is an exponentially weighted mean of `|x_t - x_{t-1}|`
     (rate `step_rate`): in a volatile series a value a normal step away from anything seen
     is not surprising. This removed many false alarms in spiky series (Tweets, AWS);
  3. `gap_k * gap`, the gap between the visited values that bracket the sample (for a value
     beyond the range, the gap between the two outermost prototypes on that side): a value
     falling in a wide hole of a sparse (heavy-tailed) distribution is less novel than the
     same distance in a dense one. Computed only for samples outside the vigilance (those
     that would create a prototype), since it only matters for them.
- **Staleness.** `age_boost * a / (a + age_scale)` is added to the novelty, where `a` is the
  number of samples since the nearest prototype was last visited: coming back to a value
  not seen for a long time is mildly novel (this caught late returns to old levels, e.g.
  machine_temperature, without shape windows).
- **Score.** `1 - exp(-novelty)` in [0, 1).
- **Fire once.** A score is passed on only when it beats every raw score of the previous
  `suppress` samples, otherwise 0: a change reports at its first, most novel sample.
- **Warm-up.** Scores are 0 for the first `warmup` samples (a fixed count, learning only).

State is O(cap + suppress). Everything is deterministic; `seed` is only carried for the
contract.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from selfheal.detection.contract import StreamingDetector

__all__ = ["RangeNovelty"]

_ABS_FLOOR = 1e-9  # the range of an all-zero series
_REL_FLOOR = 1e-3  # the range of a constant series, relative to its level

Array = npt.NDArray[np.float64]


class RangeNovelty(StreamingDetector):
    """Distance of a value to a bounded prototype set, against range, volatility and gaps."""

    kind = "range_novelty"

    def __init__(
        self,
        *,
        cap: int = 256,
        vigilance: float = 0.02,
        rate: float = 0.3,
        warmup: int = 150,
        suppress: int = 100,
        step_k: float = 0.5,
        step_rate: float = 0.01,
        gap_k: float = 0.1,
        age_boost: float = 1.0,
        age_scale: float = 3000.0,
        seed: int = 0,
    ) -> None:
        if cap < 2 or suppress < 1 or warmup < 0:
            raise ValueError("need cap >= 2, suppress >= 1, warmup >= 0")
        if vigilance <= 0.0 or not 0.0 <= rate <= 1.0 or not 0.0 < step_rate <= 1.0:
            raise ValueError("need vigilance > 0, rate in [0, 1], step_rate in (0, 1]")
        if step_k < 0.0 or gap_k < 0.0 or age_boost < 0.0 or age_scale <= 0.0:
            raise ValueError("need step_k, gap_k, age_boost >= 0 and age_scale > 0")
        self.cap, self.vigilance, self.rate = cap, vigilance, rate
        self.warmup, self.suppress = warmup, suppress
        self.step_k, self.step_rate, self.gap_k = step_k, step_rate, gap_k
        self.age_boost, self.age_scale = age_boost, age_scale
        self.seed = seed
        self.clock = 0  # samples learnt
        self.lo = math.inf
        self.hi = -math.inf
        self.prev: float | None = None
        self.step = 0.0  # EW mean absolute one-step change
        self.protos: Array = np.zeros(cap)
        self.used: Array = np.zeros(cap)  # clock of each prototype's last visit
        self.count = 0  # prototypes in use
        self.recent: deque[float] = deque(maxlen=suppress)  # raw scores, for fire-once

    # -- core -------------------------------------------------------------------------------

    def _span(self) -> float:
        """The range of the values seen so far, floored for constant and all-zero series."""
        level = max(abs(self.hi), abs(self.lo)) if self.count else 0.0
        return max(self.hi - self.lo, _REL_FLOOR * level, _ABS_FLOOR)

    def _gap(self, x: float) -> float:
        """Width of the hole between the visited values around `x` (0 if not bracketed)."""
        protos = self.protos[: self.count]
        if x > self.hi:
            top = np.partition(protos, self.count - 2)[self.count - 2 :]
            return float(top.max() - top.min())
        if x < self.lo:
            bottom = np.partition(protos, 1)[:2]
            return float(bottom.max() - bottom.min())
        below = protos[protos <= x]
        above = protos[protos >= x]
        if below.size == 0 or above.size == 0:
            return 0.0
        return float(above.min() - below.max())

    def _raw(self, x: float) -> tuple[float, int, float]:
        """Raw score in [0, 1), the nearest prototype and its distance in range units."""
        if self.count == 0:
            return 0.0, -1, math.inf
        span = self._span()
        diffs = np.abs(self.protos[: self.count] - x)
        j = int(diffs.argmin())
        gap_dist = float(diffs[j])
        dist = gap_dist / span
        if self.clock + 1 <= self.warmup:
            return 0.0, j, dist
        ref = max(self.vigilance * span, self.step_k * self.step)
        if self.gap_k > 0.0 and self.count > 1 and dist > self.vigilance:
            ref = max(ref, self.gap_k * self._gap(x))
        nu = gap_dist / ref
        if self.age_boost > 0.0:
            age = self.clock + 1 - float(self.used[j])
            nu += self.age_boost * age / (age + self.age_scale)
        return 1.0 - math.exp(-nu), j, dist

    def _gate(self, raw: float) -> float:
        """Fire once: pass a score only when it beats the recent raw scores."""
        previous = max(self.recent) if self.recent else 0.0
        return raw if raw > previous else 0.0

    def _learn(self, x: float, raw: float, j: int, dist: float) -> None:
        self.recent.append(raw)
        self.clock += 1
        if j >= 0 and dist <= self.vigilance:
            self.protos[j] += self.rate * (x - self.protos[j])
        else:
            if self.count < self.cap:
                j = self.count
                self.count += 1
            else:
                j = int(self.used[: self.count].argmin())
            self.protos[j] = x
        self.used[j] = self.clock
        if self.prev is not None:
            alpha = max(self.step_rate, 1.0 / self.clock)
            self.step += alpha * (abs(x - self.prev) - self.step)
        self.prev = x
        if not math.isfinite(self.lo):
            self.lo = self.hi = x
        else:
            self.lo = min(self.lo, x)
            self.hi = max(self.hi, x)

    # -- contract ---------------------------------------------------------------------------

    def score_one(self, t: float, x: float) -> float:  # noqa: ARG002 - values only
        if not math.isfinite(x):
            return 0.0
        raw, _, _ = self._raw(x)
        return self._gate(raw)

    def learn_one(self, t: float, x: float) -> None:  # noqa: ARG002
        if not math.isfinite(x):
            return
        raw, j, dist = self._raw(x)
        self._learn(x, raw, j, dist)

    def process_one(self, t: float, x: float) -> float:  # noqa: ARG002
        """Score then learn, sharing the one nearest-prototype search."""
        if not math.isfinite(x):
            return 0.0
        raw, j, dist = self._raw(x)
        out = self._gate(raw)
        self._learn(x, raw, j, dist)
        return out

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "params": {
                "cap": self.cap,
                "vigilance": self.vigilance,
                "rate": self.rate,
                "warmup": self.warmup,
                "suppress": self.suppress,
                "step_k": self.step_k,
                "step_rate": self.step_rate,
                "gap_k": self.gap_k,
                "age_boost": self.age_boost,
                "age_scale": self.age_scale,
            },
            "clock": self.clock,
            # None stands for "nothing seen yet": JSON has no infinity.
            "lo": self.lo if math.isfinite(self.lo) else None,
            "hi": self.hi if math.isfinite(self.hi) else None,
            "prev": self.prev,
            "step": self.step,
            "protos": self.protos[: self.count].tolist(),
            "used": self.used[: self.count].tolist(),
            "recent": list(self.recent),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        out = cls(seed=state["seed"], **state["params"])
        out.clock = int(state["clock"])
        out.lo = math.inf if state["lo"] is None else float(state["lo"])
        out.hi = -math.inf if state["hi"] is None else float(state["hi"])
        out.prev = None if state["prev"] is None else float(state["prev"])
        out.step = float(state["step"])
        out.count = len(state["protos"])
        if out.count:
            out.protos[: out.count] = np.asarray(state["protos"], dtype=np.float64)
            out.used[: out.count] = np.asarray(state["used"], dtype=np.float64)
        out.recent.extend(float(v) for v in state["recent"])
        return out
