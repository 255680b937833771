"""Range novelty plus, with a robust-level channel and peak emission: the default detector.

`RangeNoveltyLevel` is `selfheal.detection.range_novelty_plus.RangeNoveltyPlus` (value
novelty against a bounded prototype memory, plus the time-of-day shape channel) with two
additions.

1. **Level channel.** Value novelty asks "have we seen this value before?". A series that
   moves to a level it has so far touched only in short spikes (a tweet count that jumps
   from ~4 to ~17 and stays there for hours) gives values that were all seen before, so the
   value channel stays quiet. The level channel follows a robust level of the series and
   asks the same question of the level:

   - `level += level_rate * clip(x - level, -c, +c)` with `c = level_clip * step`, where
     `step` is the value channel's exponentially weighted mean absolute one-step change.
     Clipping makes the level blind to isolated spikes (a spike moves it by at most
     `level_rate * c`), so it reaches a new place only when the series dwells there.
   - The level is scored by a second bounded `RangeNovelty` memory (same cap, vigilance,
     rate, warm-up and yardsticks, in the level's own range and gaps) without the staleness
     bonus: the value channel already rewards returns to old values.
   - Its volatility yardstick is not the level's own one-step change (an EW mean barely
     moves from one sample to the next, so after a calm stretch tiny drifts looked novel)
     but the spread an EW mean of rate `r` shows on white noise of the series' volatility,
     `step * sqrt(r / (2 - r))`: a derived quantity, not a new constant.
   - Its raw score is weighted by `level_weight` (< 1), like the seasonal channel, so a
     saturated level score sits below the value channel's top scores; the three raw scores
     are combined by max before the fire-once gate.

2. **Peak emission.** The fire-once gate passes a score only when it beats every combined
   raw score of the previous `suppress` samples. On a rising event (0.93, 0.94, 0.95 on
   consecutive samples) every sample passed, so one event raised several alarms. Now a
   passing score is held and emitted on the next sample that does not pass: the event is
   reported once, at its peak, one sample late. A rising run is cut after `peak_wait`
   samples so a long ramp is not delayed further.

`level_rate = 0.1`, `level_clip = 4` and `level_weight = 0.9` are the best of a 27-point
grid (rate 0.08/0.1/0.12, clip 3/4/5, weight 0.85/0.9/0.95) on the NAB development corpus;
every grid point beat `RangeNoveltyPlus` on the standard and low-FN profiles. docs/nab.md
gives the figures, the nested cross-validation and where the gain comes from.

State is O(2 * cap + suppress + season_buckets) per series. Deterministic and causal (a
sample's score uses that sample and the past only); `seed` is only carried for the contract.
"""

from __future__ import annotations

import math
from typing import Any, Self

from selfheal.detection.range_novelty import RangeNovelty
from selfheal.detection.range_novelty_plus import RangeNoveltyPlus

__all__ = ["RangeNoveltyLevel"]

# RangeNoveltyPlus's scored tuple (combined, proto, dist, slot, day, resid), then the level
# channel's (level, raw level score, nearest level prototype, its distance).
_Scored = tuple[float, int, float, int, int, float, float, float, int, float]


class RangeNoveltyLevel(RangeNoveltyPlus):
    """Value, daily-shape and robust-level novelty, max-combined; fires once at an event's peak."""

    kind = "range_novelty_level"

    def __init__(
        self,
        *,
        level_rate: float = 0.1,
        level_clip: float = 4.0,
        level_weight: float = 0.9,
        peak_wait: int = 10,
        **plus: Any,
    ) -> None:
        super().__init__(**plus)
        if not 0.0 < level_rate <= 1.0 or level_clip <= 0.0 or not 0.0 <= level_weight <= 1.0:
            raise ValueError("need level_rate in (0, 1], level_clip > 0, level_weight in [0, 1]")
        if peak_wait < 1:
            raise ValueError("need peak_wait >= 1")
        self.level_rate, self.level_clip, self.level_weight = level_rate, level_clip, level_weight
        self.peak_wait = peak_wait
        self.level: float | None = None  # robust level, None before the first sample
        self.levels = self._level_memory()
        self.pending = 0.0  # a passing score held until the event stops rising
        self.run = 0  # consecutive passing samples while holding

    def _level_memory(self) -> RangeNovelty:
        return RangeNovelty(
            cap=self.cap,
            vigilance=self.vigilance,
            rate=self.rate,
            warmup=self.warmup,
            suppress=self.suppress,
            step_k=self.step_k,
            step_rate=self.step_rate,
            gap_k=self.gap_k,
            age_boost=0.0,
            age_scale=self.age_scale,
            seed=self.seed,
        )

    # -- level channel ------------------------------------------------------------------------

    def _next_level(self, x: float) -> float:
        if self.level is None:
            return x
        c = self.level_clip * self.step
        return self.level + self.level_rate * max(-c, min(c, x - self.level))

    def _score_all(self, t: float, x: float) -> _Scored:
        combined, j, dist, b, day, resid = self._score(t, x)
        lv = self._next_level(x)
        lraw, lj, ldist = self.levels._raw(lv)  # noqa: SLF001 - its own inner memory
        combined = max(combined, self.level_weight * lraw)
        return combined, j, dist, b, day, resid, lv, lraw, lj, ldist

    def _learn_all(self, x: float, scored: _Scored) -> None:
        combined, j, dist, b, day, resid, lv, lraw, lj, ldist = scored
        self._learn_both(x, (combined, j, dist, b, day, resid))
        self.level = lv
        self.levels._learn(lv, lraw, lj, ldist)  # noqa: SLF001 - its own inner memory
        # the level's volatility yardstick: the noise of an EW mean of the series' volatility
        self.levels.step = self.step * math.sqrt(self.level_rate / (2.0 - self.level_rate))

    # -- peak emission ------------------------------------------------------------------------

    def _peak(self, raw: float) -> tuple[float, float, int]:
        """(output, pending, run) after `raw`, without changing the detector."""
        passed = self._gate(raw)  # RangeNovelty's fire-once test; reads state only
        if passed > 0.0:
            if self.pending > 0.0 and self.run >= self.peak_wait:
                return passed, 0.0, 0  # a long ramp: report now
            return 0.0, passed, self.run + 1  # still rising: hold
        if self.pending > 0.0:
            return self.pending, 0.0, 0  # the event stopped rising: report its peak
        return 0.0, 0.0, 0

    # -- contract -----------------------------------------------------------------------------

    def score_one(self, t: float, x: float) -> float:
        """The score `process_one` would give, without learning."""
        if not (math.isfinite(x) and math.isfinite(t)):
            return 0.0
        return self._peak(self._score_all(t, x)[0])[0]

    def learn_one(self, t: float, x: float) -> None:
        """Learn the sample (and the peak-emission state) without scoring it."""
        if not (math.isfinite(x) and math.isfinite(t)):
            return
        scored = self._score_all(t, x)
        _, self.pending, self.run = self._peak(scored[0])
        self._learn_all(x, scored)

    def process_one(self, t: float, x: float) -> float:
        """Score then learn, sharing the nearest-prototype searches."""
        if not (math.isfinite(x) and math.isfinite(t)):
            return 0.0
        scored = self._score_all(t, x)
        out, self.pending, self.run = self._peak(scored[0])
        self._learn_all(x, scored)
        return out

    def state(self) -> dict[str, Any]:
        state = super().state()
        state["params"] |= {
            "level_rate": self.level_rate,
            "level_clip": self.level_clip,
            "level_weight": self.level_weight,
            "peak_wait": self.peak_wait,
        }
        return state | {
            "level": self.level,
            "levels": self.levels.state(),
            "pending": self.pending,
            "run": self.run,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        out = super().from_state(state)
        out.level = None if state["level"] is None else float(state["level"])
        out.levels = RangeNovelty.from_state(state["levels"])
        out.pending = float(state["pending"])
        out.run = int(state["run"])
        return out
