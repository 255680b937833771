"""Bayesian online change-point detection (Adams & MacKay 2007) with a bounded run length.

The model: the series is a sequence of runs; within a run samples are i.i.d. Normal with an
unknown mean and precision (conjugate Normal-Gamma prior), and a new run starts at every step
with a constant probability `hazard`. The posterior over the current run length r is updated
exactly, one sample at a time:

    w_r     = P(r | past) * t_{2a_r}(x | mu_r, b_r (k_r + 1) / (a_r k_r))     (Student-t)
    growth  : P(r + 1 | x) ~ w_r * (1 - hazard)      change: P(0 | x) ~ hazard * sum_r w_r

and each run's sufficient statistics take the usual Normal-Gamma update. The state is bounded:
run lengths stop at `max_run`; the top slot absorbs the one below it and forgets (kappa and a
stay fixed, b is shrunk by a / (a + 1/2) each step), so memory and cost are O(max_run) forever.
Because a and kappa only depend on the run length, the log-gamma constants are tabulated once.

One prior for every series: a fresh run is centred on a slow robust level (`EwLocationScale`,
EW median/MAD stand-in) and its variance prior is `beta_scale * s^2` for that robust scale s.

The raw score is the predictive surprise, -log p(x | past) under the run-length mixture, in
units of the robust scale (+ log s), so that a series' raw numbers do not depend on its units.
With `mode="noprior"` the fresh-run slot is left out (it explains any outlier as "a change",
which caps the surprise of very large spikes). `tail_logp` gives the mixture's two-sided
predictive tail instead (normal-equivalent approximation of the Student-t tail); it was
tried as a self-calibrated score and did not beat the surprise (see the report).

`BocpdEnsemble` is the detector to use. The raw surprise is calibrated against its own history
by the project's likelihood layer (`AnomalyLikelihood`, tail probability, log-scaled), next to a
robust z-score judged the same way (`RobustZ`); the output is the larger of the two, passed
through causal post-detection suppression: a score is reported only if it beats every output
of the last `suppress` samples (else 0), so a change or a burst fires once, at its start.
The first `warmup` samples of the likelihood layers output 0.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np

from selfheal.detection.contract import StreamingDetector, restore
from selfheal.detection.likelihood import AnomalyLikelihood
from selfheal.detection.robust import EwLocationScale, RobustZ

__all__ = ["Bocpd", "BocpdEnsemble"]

_SURPRISE_CAP = 60.0  # nats; exp(0.5 * 60) ~ 1e13 still leaves the likelihood layer finite


class Bocpd(StreamingDetector):
    """Raw BOCPD surprise (-log predictive density in robust-sigma units), unbounded >= ~-5.

    max_run: run-length cap R (state and cost O(R)); hazard: prior probability of a change per
    step; kappa0 / alpha0: Normal-Gamma pseudo-counts of a fresh run (small = it learns its
    level from the first samples); beta_scale: a fresh run's variance prior as a fraction of
    the robust scale squared; norm_alpha: rate of the robust level/scale that sets the prior;
    warmup: samples fed only to that normaliser before the recursion starts.
    Not in [0, 1]: wrap it (see `BocpdEnsemble`) before thresholding.
    """

    kind = "bocpd"

    def __init__(
        self,
        *,
        max_run: int = 200,
        hazard: float = 0.004,
        kappa0: float = 0.05,
        alpha0: float = 1.0,
        beta_scale: float = 1.0,
        norm_alpha: float = 0.002,
        warmup: int = 10,
        mode: str = "surprise",
        seed: int = 0,
    ) -> None:
        self.seed = seed
        self.max_run = max_run
        self.hazard = hazard
        self.kappa0 = kappa0
        self.alpha0 = alpha0
        self.beta_scale = beta_scale
        self.norm_alpha = norm_alpha
        self.warmup = warmup
        self.mode = mode
        self.norm = EwLocationScale(alpha=norm_alpha)
        r = np.arange(max_run, dtype=float)
        self._kappa = kappa0 + r
        self._a = alpha0 + 0.5 * r
        lg = np.array([math.lgamma(a + 0.5) - math.lgamma(a) for a in self._a])
        # constant part of the Student-t log density per run length (b enters online)
        self._const = lg - 0.5 * np.log(2.0 * math.pi * (self._kappa + 1.0) / self._kappa)
        self._shrink = self._kappa / (2.0 * (self._kappa + 1.0))
        self._cap_decay = self._a[-1] / (self._a[-1] + 0.5)
        self._ap = self._a + 0.5
        self._inv_k1 = 1.0 / (self._kappa + 1.0)
        self.n = 0
        self.p = np.zeros(max_run)  # run-length posterior
        self.mu = np.zeros(max_run)
        self.b = np.ones(max_run)
        self.lconst = np.zeros(max_run)  # _const - log(b) / 2, cached per slot

    # ---------------------------------------------------------------- core
    def _prior(self) -> tuple[float, float]:
        s = self.norm.scale()
        return self.norm.mean, self.beta_scale * self.alpha0 * s * s

    def _weights(self, x: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """Joint weights p(r) * pred(x | r) / exp(m), residuals, the b increments, and m."""
        n = self.n
        d = x - self.mu[:n]
        sq = self._shrink[:n] * (d * d)
        lp = self.lconst[:n] - self._ap[:n] * np.log1p(sq / self.b[:n])
        m = float(lp.max())
        lp -= m
        return self.p[:n] * np.exp(lp), d, sq, m

    def _raw(self, x: float) -> float:
        if self.n == 0:
            return 0.0
        w, _, _, m = self._weights(x)
        return self._surprise(w, m, float(w.sum()))

    def tail_logp(self, x: float) -> float:
        """-ln of the two-sided predictive tail probability of x under runs r >= 1 (mixture)."""
        n = self.n
        if n < 2:
            return 0.0
        d = x - self.mu[1:n]
        big_l = np.log1p(self._shrink[1:n] * d * d / self.b[1:n])
        z2 = 2.0 * self._a[1:n] * big_l
        z = np.sqrt(z2)
        lt = -0.5 * z2 + np.log(4.0 / math.sqrt(2.0 * math.pi) / (z + np.sqrt(z2 + 8.0 / math.pi)))
        lt += np.log(self.p[1:n] + 1e-300)
        m = float(lt.max())
        tot = float(np.exp(lt - m).sum()) / (1.0 - float(self.p[0]))
        return -(m + math.log(tot))

    def _surprise(self, w: np.ndarray, m: float, tot: float) -> float:
        if self.mode == "noprior" and self.n > 1:
            # the fresh-run slot explains any outlier as a change; leave it out of the score
            num = tot - float(w[0])
            den = 1.0 - float(self.p[0])
            if num <= 0.0:
                return 745.0 + math.log(self.norm.scale())
            return -(m + math.log(num / den)) + math.log(self.norm.scale())
        return -(m + math.log(tot)) + math.log(self.norm.scale())

    def score_one(self, t: float, x: float) -> float:  # noqa: ARG002
        return self._raw(x)

    def learn_one(self, t: float, x: float) -> None:  # noqa: ARG002
        self._step(x)

    def process_one(self, t: float, x: float) -> float:  # noqa: ARG002
        return self._step(x)

    def _step(self, x: float) -> float:
        if self.norm.n < self.warmup:
            self.norm.update(x)
            return 0.0
        n = self.n
        if n == 0:
            out = 0.0
        else:
            w, d, sq, m = self._weights(x)
            tot = float(w.sum())
            out = self._surprise(w, m, tot)
            g = (1.0 - self.hazard) / tot
            new_mu = self.mu[:n] + d * self._inv_k1[:n]
            new_b = self.b[:n] + sq
            if n < self.max_run:
                self.p[1 : n + 1] = w * g
                self.mu[1 : n + 1] = new_mu
                self.b[1 : n + 1] = new_b
                n += 1
            else:
                top = (w[-1] + w[-2]) * g
                self.p[1:n] = w[:-1] * g
                self.p[n - 1] = top
                self.mu[1:n] = new_mu[:-1]
                self.mu[n - 1] = new_mu[-1]
                self.b[1:n] = new_b[:-1]
                self.b[n - 1] = new_b[-1] * self._cap_decay
            self.lconst[1:n] = self._const[1:n] - 0.5 * np.log(self.b[1:n])
        m0, b0 = self._prior()
        self.p[0] = self.hazard if n > 0 else 1.0
        self.mu[0] = m0
        self.b[0] = b0
        self.lconst[0] = self._const[0] - 0.5 * math.log(b0)
        self.n = max(n, 1)
        self.norm.update(x)
        return out

    # ---------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "params": {
                "max_run": self.max_run,
                "hazard": self.hazard,
                "kappa0": self.kappa0,
                "alpha0": self.alpha0,
                "beta_scale": self.beta_scale,
                "norm_alpha": self.norm_alpha,
                "warmup": self.warmup,
                "mode": self.mode,
            },
            "norm": self.norm.state(),
            "n": self.n,
            "p": self.p[: self.n].tolist(),
            "mu": self.mu[: self.n].tolist(),
            "b": self.b[: self.n].tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        out = cls(seed=state["seed"], **state["params"])
        out.norm = EwLocationScale.from_state(state["norm"])
        n = out.n = int(state["n"])
        out.p[:n] = state["p"]
        out.mu[:n] = state["mu"]
        out.b[:n] = state["b"]
        out.lconst[:n] = out._const[:n] - 0.5 * np.log(out.b[:n])
        return out


class BocpdEnsemble(StreamingDetector):
    """max(likelihood of BOCPD surprise, likelihood of robust z), fired once per new high.

    Why both: the BOCPD surprise adapts to a new regime within a few samples (short runs take
    over), the robust z-score reacts to slow drifts the run model absorbs; each is judged as a
    tail probability of its own history, so the maximum compares like with like.
    Why the suppression: NAB credits only the first detection in a window and charges every
    later one outside it; reporting only scores above the last `suppress` outputs keeps the
    earliest, strongest alarm of an episode and silences its echoes, causally.
    """

    kind = "bocpd_ensemble"

    def __init__(
        self,
        *,
        hazard: float = 0.03,
        beta_scale: float = 0.1,
        kappa0: float = 0.05,
        max_run: int = 100,
        robust: bool = True,
        suppress: int = 100,
        gain: float = 0.5,
        lik_alpha: float = 0.001,
        warmup: int = 300,
        seed: int = 0,
    ) -> None:
        self.seed = seed
        self.suppress = suppress
        self.gain = gain
        self.bocpd = Bocpd(hazard=hazard, beta_scale=beta_scale, kappa0=kappa0, max_run=max_run)
        self.lik = AnomalyLikelihood(self.bocpd, short=1, alpha=lik_alpha, warmup=warmup)
        self.rlik: AnomalyLikelihood | None = (
            AnomalyLikelihood(RobustZ(), short=1, alpha=lik_alpha, warmup=warmup)
            if robust
            else None
        )
        self.recent: list[float] = []  # ring of the last `suppress` combined scores
        self.pos = 0

    def _combined(self, raw: float, t: float, x: float) -> float:
        # The likelihood's helpers are used directly so one BOCPD pass feeds score and learn.
        s = self.lik._likelihood(self._expand(raw))  # noqa: SLF001
        if self.rlik is not None:
            s = max(s, self.rlik.score_one(t, x))
        return s

    def _expand(self, raw: float) -> float:
        """exp(gain * surprise) = (density * scale) ** -gain: what the likelihood layer judges.

        The layer models its input as Gaussian. The surprise itself grows only like z^2 / 2 and,
        judged that way, ordinary and extreme samples sit too close together; on its
        exponential the Gaussian tail puts the extreme ones much further out (gain 0.5-1
        worked alike; 0 = plain surprise was clearly worse). Capped to stay finite.
        """
        if self.gain <= 0.0:
            return raw
        return math.exp(self.gain * min(raw, _SURPRISE_CAP))

    def _suppressed(self, s: float) -> float:
        return s if s > max(self.recent, default=0.0) else 0.0

    def score_one(self, t: float, x: float) -> float:
        return self._suppressed(self._combined(self.bocpd.score_one(t, x), t, x))

    def learn_one(self, t: float, x: float) -> None:
        self.process_one(t, x)

    def process_one(self, t: float, x: float) -> float:
        # Bocpd.process_one returns the pre-learning surprise: score-then-learn in one pass.
        s = self._combined_learn(self.bocpd.process_one(t, x), t, x)
        out = self._suppressed(s)
        if self.suppress > 0:
            if len(self.recent) < self.suppress:
                self.recent.append(s)
            else:
                self.recent[self.pos] = s
                self.pos = (self.pos + 1) % self.suppress
        return out

    def _combined_learn(self, raw: float, t: float, x: float) -> float:
        raw = self._expand(raw)
        s = self.lik._likelihood(raw)  # noqa: SLF001
        self.lik._learn_raw(raw)  # noqa: SLF001
        if self.rlik is not None:
            s = max(s, self.rlik.process_one(t, x))
        return s

    def state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "seed": self.seed,
            "suppress": self.suppress,
            "gain": self.gain,
            "lik": self.lik.state(),
            "rlik": None if self.rlik is None else self.rlik.state(),
            "recent": list(self.recent),
            "pos": self.pos,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        out = cls(seed=state["seed"], suppress=state["suppress"], gain=state["gain"])
        lik = restore(state["lik"])
        if not isinstance(lik, AnomalyLikelihood) or not isinstance(lik.inner, Bocpd):
            raise ValueError("bocpd_ensemble state must hold a likelihood over a bocpd")
        out.lik, out.bocpd = lik, lik.inner
        rlik = None if state["rlik"] is None else restore(state["rlik"])
        if rlik is not None and not isinstance(rlik, AnomalyLikelihood):
            raise ValueError("bocpd_ensemble robust member must be a likelihood")
        out.rlik = rlik
        out.recent = [float(v) for v in state["recent"]]
        out.pos = int(state["pos"])
        return out
