"""Range novelty plus a time-of-day shape channel, combined by max before fire-once.

`RangeNoveltyPlus` is `selfheal.detection.range_novelty.RangeNovelty` (value novelty
against a bounded prototype memory, measured in units of range, volatility and gaps; see
that module for the details) with a second, seasonal channel for anomalies that keep the
values inside their usual range but break the daily pattern (e.g. a day that never rises,
NAB's art_daily_nojump). Value novelty cannot see those: every value has been seen before.

- **Value channel.** Exactly `RangeNovelty`'s raw score `1 - exp(-novelty)`.
- **Daily profile.** The day (UTC, from the timestamps) is cut into `season_buckets` slots.
  Each slot keeps an exponentially weighted mean of its values (rate `rate`, the prototype
  learning rate; the first visit sets it) and the number of distinct days it has been
  visited on. The memory is a fixed `season_buckets`-sized profile, so state stays O(1).
- **Sustained residual.** The residual `x - profile[slot]` is smoothed by an exponentially
  weighted mean (rate `season_smooth`), so a lone spike is damped and only a deviation that
  lasts for several samples builds up; the smoothed residual is divided by the larger of
  its own exponentially weighted mean magnitude (rate `step_rate`, the typical mismatch
  between the series and its daily profile) and `vigilance * range`. Series without a daily
  pattern have a large typical mismatch, so the channel stays quiet there; in a strongly
  daily series a missing or misplaced daily shape stands out. Scored only for slots seen on
  at least two earlier days.
- **Combination.** The seasonal novelty `nu` becomes `season_weight * (1 - exp(-nu /
  season_k))`. The weight caps the channel below the value channel's top scores, so it only
  matters for deviations many times the typical mismatch. The two raw scores are combined
  by max, then the fire-once gate of `RangeNovelty` applies to the combination: a score is
  passed on only when it beats every combined raw score of the previous `suppress` samples.
- **Warm-up.** Scores are 0 for the first `warmup` samples (a fixed count, learning only).

State is O(cap + suppress + season_buckets). Deterministic; `seed` is only carried for the
contract.
"""

from __future__ import annotations

import math
from typing import Any, Self

from selfheal.detection.range_novelty import RangeNovelty

__all__ = ["RangeNoveltyPlus"]

_DAY = 86400.0  # seconds
_MIN_DAYS = 2  # a slot is trusted once it has been seen on this many earlier days

# combined raw score, nearest prototype, its distance, time-of-day slot, day, smoothed residual
_Scored = tuple[float, int, float, int, int, float]


class RangeNoveltyPlus(RangeNovelty):
    """Value novelty (range, volatility, gaps) max-combined with daily-shape novelty."""

    kind = "range_novelty_plus"

    def __init__(
        self,
        *,
        season_buckets: int = 288,
        season_smooth: float = 0.1,
        season_weight: float = 0.8,
        season_k: float = 5.0,
        **value_channel: Any,
    ) -> None:
        super().__init__(**value_channel)
        if season_buckets < 1:
            raise ValueError("need season_buckets >= 1")
        if not 0.0 < season_smooth <= 1.0 or not 0.0 <= season_weight <= 1.0 or season_k <= 0:
            raise ValueError("need season_smooth in (0, 1], season_weight in [0, 1], season_k > 0")
        self.season_buckets, self.season_smooth = season_buckets, season_smooth
        self.season_weight, self.season_k = season_weight, season_k
        # daily profile: per-slot EW mean, days visited, last day visited
        self.profile: list[float] = [0.0] * season_buckets
        self.days: list[int] = [0] * season_buckets
        self.last_day: list[int | None] = [None] * season_buckets
        self.resid = 0.0  # EW mean of the signed residual against the profile
        self.resid_scale = 0.0  # EW mean of |resid|
        self.resid_n = 0  # residuals learnt

    # -- seasonal channel ---------------------------------------------------------------------

    def _slot(self, t: float) -> tuple[int, int]:
        """The time-of-day slot of `t` and its day number."""
        b = int((t % _DAY) // (_DAY / self.season_buckets))
        return min(b, self.season_buckets - 1), int(t // _DAY)

    def _season(self, b: int, x: float) -> tuple[float, float]:
        """Seasonal raw score in [0, season_weight) and the updated smoothed residual."""
        if self.days[b] < 1:
            return 0.0, self.resid
        resid = self.resid + self.season_smooth * ((x - self.profile[b]) - self.resid)
        if self.days[b] < _MIN_DAYS or self.clock + 1 <= self.warmup or self.resid_n == 0:
            return 0.0, resid
        nu = abs(resid) / max(self.resid_scale, self.vigilance * self._span())
        return self.season_weight * (1.0 - math.exp(-nu / self.season_k)), resid

    # -- both channels ------------------------------------------------------------------------

    def _score(self, t: float, x: float) -> _Scored:
        """Combined raw score and what learning needs (prototype, distance, slot, day, resid)."""
        raw, j, dist = self._raw(x)
        b, day = self._slot(t)
        season, resid = self._season(b, x)
        return max(raw, season), j, dist, b, day, resid

    def _learn_both(self, x: float, scored: _Scored) -> None:
        combined, j, dist, b, day, resid = scored
        # The fire-once memory holds the combined score: a change fires once in either channel.
        self._learn(x, combined, j, dist)
        if self.days[b] >= 1:
            self.resid = resid
            self.resid_n += 1
            alpha = max(self.step_rate, 1.0 / self.resid_n)
            self.resid_scale += alpha * (abs(resid) - self.resid_scale)
            self.profile[b] += self.rate * (x - self.profile[b])
        else:
            self.profile[b] = x
        if self.last_day[b] != day:
            self.days[b] += 1
            self.last_day[b] = day

    # -- contract -----------------------------------------------------------------------------

    def score_one(self, t: float, x: float) -> float:
        if not (math.isfinite(x) and math.isfinite(t)):
            return 0.0
        return self._gate(self._score(t, x)[0])

    def learn_one(self, t: float, x: float) -> None:
        if not (math.isfinite(x) and math.isfinite(t)):
            return
        self._learn_both(x, self._score(t, x))

    def process_one(self, t: float, x: float) -> float:
        """Score then learn, sharing the one nearest-prototype search."""
        if not (math.isfinite(x) and math.isfinite(t)):
            return 0.0
        scored = self._score(t, x)
        out = self._gate(scored[0])
        self._learn_both(x, scored)
        return out

    def state(self) -> dict[str, Any]:
        state = super().state()
        state["params"] |= {
            "season_buckets": self.season_buckets,
            "season_smooth": self.season_smooth,
            "season_weight": self.season_weight,
            "season_k": self.season_k,
        }
        return state | {
            "profile": list(self.profile),
            "days": list(self.days),
            "last_day": list(self.last_day),
            "resid": self.resid,
            "resid_scale": self.resid_scale,
            "resid_n": self.resid_n,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        out = super().from_state(state)
        out.profile = [float(v) for v in state["profile"]]
        out.days = [int(v) for v in state["days"]]
        out.last_day = [None if v is None else int(v) for v in state["last_day"]]
        out.resid = float(state["resid"])
        out.resid_scale = float(state["resid_scale"])
        out.resid_n = int(state["resid_n"])
        return out
