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
from collections import deque
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from selfheal.detection.contract import StreamingDetector

__all__ = ["RangeNoveltyPlus"]

_ABS_FLOOR = 1e-9  # the range of an all-zero series
_REL_FLOOR = 1e-3  # the range of a constant series, relative to its level
_DAY = 86400.0  # seconds
_MIN_DAYS = 2  # a slot is trusted once it has been seen on this many earlier days

Array = npt.NDArray[np.float64]
# combined raw score, nearest prototype, its distance, time-of-day slot, day, smoothed residual
_Scored = tuple[float, int, float, int, int, float]


class RangeNoveltyPlus(StreamingDetector):
    """Value novelty (range, volatility, gaps) max-combined with daily-shape novelty."""

    kind = "range_novelty_plus"

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
        season_buckets: int = 288,
        season_smooth: float = 0.1,
        season_weight: float = 0.8,
        season_k: float = 5.0,
        seed: int = 0,
    ) -> None:
        if cap < 2 or suppress < 1 or warmup < 0 or season_buckets < 1:
            raise ValueError("need cap >= 2, suppress >= 1, warmup >= 0, season_buckets >= 1")
        if vigilance <= 0.0 or not 0.0 <= rate <= 1.0 or not 0.0 < step_rate <= 1.0:
            raise ValueError("need vigilance > 0, rate in [0, 1], step_rate in (0, 1]")
        if step_k < 0.0 or gap_k < 0.0 or age_boost < 0.0 or age_scale <= 0.0:
            raise ValueError("need step_k, gap_k, age_boost >= 0 and age_scale > 0")
        if not 0.0 < season_smooth <= 1.0 or not 0.0 <= season_weight <= 1.0 or season_k <= 0:
            raise ValueError("need season_smooth in (0, 1], season_weight in [0, 1], season_k > 0")
        self.cap, self.vigilance, self.rate = cap, vigilance, rate
        self.warmup, self.suppress = warmup, suppress
        self.step_k, self.step_rate, self.gap_k = step_k, step_rate, gap_k
        self.age_boost, self.age_scale = age_boost, age_scale
        self.season_buckets, self.season_smooth = season_buckets, season_smooth
        self.season_weight, self.season_k = season_weight, season_k
        self.seed = seed
        self.clock = 0  # samples learnt
        self.lo = math.inf
        self.hi = -math.inf
        self.prev: float | None = None
        self.step = 0.0  # EW mean absolute one-step change
        self.protos: Array = np.zeros(cap)
        self.used: Array = np.zeros(cap)  # clock of each prototype's last visit
        self.count = 0  # prototypes in use
        self.recent: deque[float] = deque(maxlen=suppress)  # combined raw scores, fire-once
        # daily profile: per-slot EW mean, days visited, last day visited
        self.profile: list[float] = [0.0] * season_buckets
        self.days: list[int] = [0] * season_buckets
        self.last_day: list[int | None] = [None] * season_buckets
        self.resid = 0.0  # EW mean of the signed residual against the profile
        self.resid_scale = 0.0  # EW mean of |resid|
        self.resid_n = 0  # residuals learnt

    # -- value channel ------------------------------------------------------------------------

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
        """Value raw score in [0, 1), the nearest prototype and its distance in range units."""
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

    # -- shared -------------------------------------------------------------------------------

    def _gate(self, raw: float) -> float:
        """Fire once: pass a score only when it beats the recent combined raw scores."""
        previous = max(self.recent) if self.recent else 0.0
        return raw if raw > previous else 0.0

    def _score(self, t: float, x: float) -> _Scored:
        """Combined raw score and what learning needs (prototype, distance, slot, day, resid)."""
        raw, j, dist = self._raw(x)
        b, day = self._slot(t)
        season, resid = self._season(b, x)
        return max(raw, season), j, dist, b, day, resid

    def _learn(self, x: float, scored: _Scored) -> None:
        raw, j, dist, b, day, resid = scored
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
        # seasonal profile
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
        self._learn(x, self._score(t, x))

    def process_one(self, t: float, x: float) -> float:
        """Score then learn, sharing the one nearest-prototype search."""
        if not (math.isfinite(x) and math.isfinite(t)):
            return 0.0
        scored = self._score(t, x)
        out = self._gate(scored[0])
        self._learn(x, scored)
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
                "season_buckets": self.season_buckets,
                "season_smooth": self.season_smooth,
                "season_weight": self.season_weight,
                "season_k": self.season_k,
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
            "profile": list(self.profile),
            "days": list(self.days),
            "last_day": list(self.last_day),
            "resid": self.resid,
            "resid_scale": self.resid_scale,
            "resid_n": self.resid_n,
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
        out.profile = [float(v) for v in state["profile"]]
        out.days = [int(v) for v in state["days"]]
        out.last_day = [None if v is None else int(v) for v in state["last_day"]]
        out.resid = float(state["resid"])
        out.resid_scale = float(state["resid_scale"])
        out.resid_n = int(state["resid_n"])
        return out
