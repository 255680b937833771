"""Contextual novelty: how much of the current context a bounded memory of past contexts lacks.

The idea follows the Contextual Anomaly Detector (CAD) family: a series that behaves normally
keeps producing the same small vocabulary of symbol patterns; an anomaly produces patterns the
detector has never (or not recently) seen. Written from that idea, the algorithm is:

1. Quantise. The first `warmup` samples are buffered (output 0). Their robust range (the
   `q` and `1 - q` quantiles; q = 0, the plain min..max, was best) is cut into `bins` equal
   bins. Later values are quantised on the same grid, extended beyond the range by up to
   `spill` bins on each side, so a new level simply produces new symbols (which are learned
   once they recur) and the grid never has to be rebuilt; a degenerate (constant) warm-up
   gets a width floor relative to its level.
   `tilings` copies of the grid, each shifted by a fraction of a bin, make the score depend
   less on where the bin edges happen to fall (the same trick as tile coding).
2. Facts. At every step the facts are, per tiling, the n-grams of recent symbols ending at the
   current one, of lengths 1 .. `order` + 1: the current bin and the last transition (and
   longer sequences if `order` > 1; on NAB they added noise, not signal).
3. Memory. A dictionary of facts with counts, kept in least-recently-seen order and capped at
   `cap` entries (the least recently seen fact is evicted), so the state is bounded and long
   forgotten behaviour becomes novel again.
4. Raw score. The share of the current facts the memory does not hold at least `min_count`
   times: 0 when everything is familiar, 1 when even the current value is new. With
   `pseudo` > 0 a fact seen c times counts pseudo / (c + pseudo) instead (graded; off by
   default, it did not help on NAB).
5. Calibration. A noisy series makes new long n-grams all the time, so the raw share is judged
   against its own history (as in Numenta's anomaly likelihood): the mean of the last `short`
   raw shares against an EW mean/variance of that mean, reported as a Gaussian tail on a log
   scale, -log10(tail) / `decades`, clipped to [0, 1]. The raw share itself is used when
   `calibrate` is False.
6. Suppression. NAB credits only the first detection in a window and charges every later one
   outside it, so after the output reaches `fire` the next `rest` outputs are multiplied by
   `damp` (0 silences them): a change fires once, early.

Everything is causal and deterministic; the state is JSON-serializable (facts are strings).
"""

from __future__ import annotations

import math
from typing import Any, Self

from selfheal.detection.contract import StreamingDetector

__all__ = ["ContextualNovelty"]

_MIN_STD = 1e-6
_ABS_FLOOR = 1e-9
# Constructor arguments, in the order `state()` records them.
_PARAMS = (
    "bins",
    "order",
    "tilings",
    "spill",
    "q",
    "warmup",
    "cap",
    "min_count",
    "pseudo",
    "short",
    "calibrate",
    "alpha",
    "decades",
    "fire",
    "rest",
    "damp",
    "rel_floor",
    "seed",
)


class ContextualNovelty(StreamingDetector):
    """Share of the current symbol n-grams unseen in a bounded memory, calibrated and muted."""

    kind = "contextual-novelty"

    def __init__(
        self,
        *,
        bins: int = 4,
        order: int = 1,
        tilings: int = 3,
        spill: int = 8,
        q: float = 0.0,
        warmup: int = 300,
        cap: int = 5000,
        min_count: int = 1,
        pseudo: float = 0.0,
        short: int = 3,
        calibrate: bool = True,
        alpha: float = 0.0005,
        decades: float = 3.0,
        fire: float = 0.5,
        rest: int = 150,
        damp: float = 0.0,
        rel_floor: float = 1e-3,
        seed: int = 0,
    ) -> None:
        if bins < 1 or order < 0 or warmup < 2 or cap < 1 or short < 1:
            raise ValueError("bins, cap, short >= 1, order >= 0, warmup >= 2 required")
        self.seed = seed
        self.bins = bins
        self.order = order
        self.tilings = tilings
        self.spill = spill
        self.q = q
        self.warmup = warmup
        self.cap = cap
        self.min_count = min_count
        self.pseudo = pseudo
        self.short = short
        self.calibrate = calibrate
        self.alpha = alpha
        self.decades = decades
        self.fire = fire
        self.rest = rest
        self.damp = damp
        self.rel_floor = rel_floor
        # Warm-up buffer, emptied once the grid is fixed.
        self.buffer: list[float] = []
        self.lo = 0.0
        self.width = 1.0
        self.ready = False
        # Recent fine symbols (at most order + 1), newest last.
        self.history: list[list[int]] = []
        # Fact -> count, in least-recently-seen order (dicts keep insertion order).
        self.memory: dict[str, int] = {}
        # Calibration state.
        self.recent: list[float] = [0.0] * short
        self.pos = 0
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        # Steps of suppression left.
        self.quiet = 0

    # --- quantisation and facts -------------------------------------------------------

    def _fix_grid(self) -> None:
        values = sorted(self.buffer)
        k = len(values) - 1
        lo = values[round(self.q * k)]
        hi = values[round((1.0 - self.q) * k)]
        med = values[k // 2]
        self.lo = lo
        self.width = max((hi - lo) / self.bins, self.rel_floor * abs(med), _ABS_FLOOR)
        self.ready = True

    def _symbol(self, x: float) -> list[int]:
        # One symbol per tiling; tiling i is shifted by i / tilings of a bin width.
        top = self.bins - 1 + self.spill
        u = (x - self.lo) / self.width
        out = []
        for i in range(self.tilings):
            idx = math.floor(u + i / self.tilings)
            out.append(min(max(idx, -self.spill), top + (1 if i else 0)))
        return out

    def _facts(self, sym: list[int]) -> list[str]:
        # Per tiling i, the n-grams ending now: "i:s_t", "i:s_{t-1},s_t", ...
        seq = [*self.history[-self.order :], sym] if self.order else [sym]
        out: list[str] = []
        n = len(seq)
        for i in range(self.tilings):
            col = [str(s[i]) for s in seq]
            out.extend(f"{i}:" + ",".join(col[n - length :]) for length in range(1, n + 1))
        return out

    def _raw(self, sym: list[int]) -> float:
        mem = self.memory
        m = self.min_count
        facts = self._facts(sym)
        k = self.pseudo
        if k > 0.0:
            # Graded: a fact seen c times is unexplained to the degree k / (c + k).
            return sum(k / (mem.get(f, 0) + k) for f in facts) / len(facts)
        return sum(1 for f in facts if mem.get(f, 0) < m) / len(facts)

    def _remember(self, sym: list[int]) -> None:
        mem = self.memory
        for f in self._facts(sym):
            c = mem.pop(f, 0)
            mem[f] = c + 1
        while len(mem) > self.cap:
            del mem[next(iter(mem))]
        self.history.append(sym)
        if len(self.history) > self.order:
            del self.history[: len(self.history) - self.order]

    # --- calibration and suppression ---------------------------------------------------

    def _avg(self, raw: float) -> float:
        return (sum(self.recent) - self.recent[self.pos] + raw) / self.short

    def _calibrated(self, raw: float) -> float:
        avg = self._avg(raw)
        if not self.calibrate:
            return avg
        std = max(math.sqrt(self.var), _MIN_STD)
        tail = 0.5 * math.erfc((avg - self.mean) / (std * math.sqrt(2.0)))
        if tail <= 0.0:
            return 1.0
        return min(1.0, max(0.0, -math.log10(tail) / self.decades))

    def _learn_raw(self, raw: float) -> None:
        avg = self._avg(raw)
        self.recent[self.pos] = raw
        self.pos = (self.pos + 1) % self.short
        self.n = min(self.n + 1, max(math.ceil(1.0 / self.alpha), 1))
        rate = max(self.alpha, 1.0 / self.n)
        d = avg - self.mean
        self.mean += rate * d
        self.var = (1.0 - rate) * (self.var + rate * d * d)

    # --- contract -----------------------------------------------------------------------

    def _step(self, x: float, learn: bool) -> float:
        if not self.ready:
            if learn:
                self.buffer.append(x)
                if len(self.buffer) >= self.warmup:
                    self._fix_grid()
                    # Replay the warm-up so memory and calibration start from it.
                    for v in self.buffer:
                        s = self._symbol(v)
                        self._learn_raw(self._raw(s))
                        self._remember(s)
                    self.buffer = []
            return 0.0
        sym = self._symbol(x)
        raw = self._raw(sym)
        score = self._calibrated(raw)
        out = score * self.damp if self.quiet > 0 else score
        if learn:
            if self.quiet > 0:
                self.quiet -= 1
            elif score >= self.fire and self.rest > 0:
                self.quiet = self.rest
            self._learn_raw(raw)
            self._remember(sym)
        return out

    def score_one(self, t: float, x: float) -> float:  # noqa: ARG002 - values only
        return self._step(x, learn=False)

    def learn_one(self, t: float, x: float) -> None:  # noqa: ARG002
        self._step(x, learn=True)

    def process_one(self, t: float, x: float) -> float:  # noqa: ARG002
        return self._step(x, learn=True)

    def _params(self) -> dict[str, Any]:
        return {
            "bins": self.bins,
            "order": self.order,
            "tilings": self.tilings,
            "spill": self.spill,
            "q": self.q,
            "warmup": self.warmup,
            "cap": self.cap,
            "min_count": self.min_count,
            "pseudo": self.pseudo,
            "short": self.short,
            "calibrate": self.calibrate,
            "alpha": self.alpha,
            "decades": self.decades,
            "fire": self.fire,
            "rest": self.rest,
            "damp": self.damp,
            "rel_floor": self.rel_floor,
            "seed": self.seed,
        }

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **self._params(),
            "buffer": list(self.buffer),
            "lo": self.lo,
            "width": self.width,
            "ready": self.ready,
            "history": [list(sym) for sym in self.history],
            "memory": [[k, v] for k, v in self.memory.items()],
            "recent": list(self.recent),
            "pos": self.pos,
            "n": self.n,
            "mean": self.mean,
            "var": self.var,
            "quiet": self.quiet,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        out = cls(**{k: state[k] for k in _PARAMS})
        out.buffer = [float(v) for v in state["buffer"]]
        out.lo, out.width, out.ready = state["lo"], state["width"], state["ready"]
        out.history = [[int(v) for v in sym] for sym in state["history"]]
        out.memory = {str(k): int(v) for k, v in state["memory"]}
        out.recent = [float(v) for v in state["recent"]]
        out.pos, out.n, out.mean, out.var = state["pos"], state["n"], state["mean"], state["var"]
        out.quiet = state["quiet"]
        return out
