"""From per-series anomalies to a confidence per service: correlation across metrics.

One metric turning odd is weak evidence (a noisy series, a scrape hiccup); several metrics of
the same service turning odd together (CPU throttling with latency with traffic), or one
metric turning odd just after the service was deployed, is strong. The model is a noisy-OR
over independent pieces of evidence: each anomalous metric `i` of the service within the
last `window` seconds contributes `weight_i * score_i`, a deploy of the service within the
window contributes `deploy_weight`, and

    confidence = 1 - prod(1 - contribution)

So with the default weight 0.6 one metric alone reaches at most 0.6, below the default bar
of 0.8 at which a signal may open an incident; two metrics, or one metric after a deploy,
reach it. A metric whose anomaly matters on its own (an SLO) gets a weight near 1.

State is bounded: the last anomaly per (service, metric) and the last deploy per service,
both forgotten once older than the window; metrics and services beyond `max_keys` evict
the stalest. Times are the caller's (scenario or wall seconds), never read from a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Correlator", "Evidence", "ServiceKey", "service_key"]

ServiceKey = tuple[tuple[str, str], ...]  # the service's identifying labels, sorted


@dataclass(frozen=True, slots=True)
class Evidence:
    """One contributor to a service's confidence: an anomalous metric or a deploy."""

    source: str  # the watch name, or "deploy"
    series: str  # the series' labels as text, for the person reading it
    at: float
    contribution: float  # in [0, 1]

    def describe(self, *, now: float) -> str:
        ago = max(0.0, now - self.at)
        what = "deployed" if self.source == "deploy" else f"{self.source} anomalous"
        return f"{what} ({self.series}) {ago:.0f}s ago, weight {self.contribution:.2f}"


def service_key(labels: Mapping[str, str], names: tuple[str, ...]) -> ServiceKey | None:
    """The service a series belongs to, or None when it lacks one of the identifying labels."""
    if any(not labels.get(name) for name in names):
        return None
    return tuple(sorted((name, labels[name]) for name in names))


class Correlator:
    """Recent anomalies and deploys per service, combined into one confidence."""

    def __init__(
        self, *, window: float, deploy_weight: float = 0.5, max_keys: int = 10_000
    ) -> None:
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        if not 0.0 <= deploy_weight <= 1.0:
            raise ValueError(f"deploy_weight must be in [0, 1], got {deploy_weight}")
        self.window = window
        self.deploy_weight = deploy_weight
        self.max_keys = max_keys
        # (service, watch, series text) -> its latest evidence; insertion order = staleness.
        self._anomalies: dict[tuple[ServiceKey, str, str], Evidence] = {}
        self._deploys: dict[ServiceKey, Evidence] = {}

    def note_anomaly(
        self, service: ServiceKey, *, source: str, series: str, at: float, contribution: float
    ) -> None:
        """Record that `series` of `service` is anomalous now (its strongest reading counts)."""
        key = (service, source, series)
        contribution = min(max(contribution, 0.0), 1.0)
        previous = self._anomalies.pop(key, None)
        if previous is not None and previous.at >= at - self.window:
            # A fading anomaly is still the same one: it keeps its strongest reading.
            contribution = max(contribution, previous.contribution)
        self._anomalies[key] = Evidence(source, series, at, contribution)
        _bound(self._anomalies, self.max_keys)

    def note_deploy(self, service: ServiceKey, *, series: str, at: float) -> None:
        """Record that `service` was deployed (its desired state changed) at `at`."""
        self._deploys.pop(service, None)
        self._deploys[service] = Evidence("deploy", series, at, self.deploy_weight)
        _bound(self._deploys, self.max_keys)

    def evidence(self, service: ServiceKey, *, now: float) -> list[Evidence]:
        """Everything that currently speaks for `service` being in trouble, strongest first."""
        self._forget(now)
        found = [e for (key, _, _), e in self._anomalies.items() if key == service]
        deploy = self._deploys.get(service)
        if deploy is not None and self.deploy_weight > 0:
            found.append(deploy)
        return sorted(found, key=lambda e: (-e.contribution, e.source, e.series))

    def confidence(self, service: ServiceKey, *, now: float) -> tuple[float, list[Evidence]]:
        """The noisy-OR of the service's evidence, and the evidence itself."""
        found = self.evidence(service, now=now)
        doubt = 1.0
        for item in found:
            doubt *= 1.0 - item.contribution
        return 1.0 - doubt, found

    def _forget(self, now: float) -> None:
        cutoff = now - self.window
        for stale in [k for k, e in self._anomalies.items() if e.at < cutoff]:
            del self._anomalies[stale]
        for service in [k for k, e in self._deploys.items() if e.at < cutoff]:
            del self._deploys[service]


def _bound(items: dict[Any, Evidence], limit: int) -> None:
    while len(items) > limit:
        del items[next(iter(items))]
