"""Anomaly watches: detectors on PromQL series, correlated per service into alerts.

Every `anomalies.interval` the watcher evaluates each watch's query at one instant (against
selfheal's TSDB or a Prometheus, whichever answers the rules), feeds each resulting series
one sample into that series' own streaming detector, and notes the series that score at or
above the watch's threshold with the correlator. Each anomalous series then becomes a
`Signal` whose confidence is the noisy-OR of its service's evidence (docs/anomalies.md).

A signal whose confidence reaches `min_confidence` fires as an alert named after the watch
(`source="anomaly"`), the same `Alert` the rules produce, so incidents, dedup, policies and
the audit trail treat both alike; the latest `Signal` per fingerprint is kept for the policy
input (`input.signal`). A firing signal resolves after `resolve_after` without an anomaly.

Detector state survives restarts: `save` writes every detector's JSON state to a file, and
a watcher built on that file resumes each series where it stopped. State is bounded: each
watch keeps at most `max_series` detectors, dropping the series not seen for longest.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfheal.detection import contract, registry
from selfheal.detection.correlation import Correlator, ServiceKey, service_key
from selfheal.domain.errors import ConfigError, SelfhealError
from selfheal.domain.model import Alert, AlertState, Fingerprint, Signal, fingerprint
from selfheal.runtime.settings import AnomalySettings, WatchSettings
from selfheal.telemetry import promql
from selfheal.telemetry.sources import InstantSource

__all__ = ["AnomalyWatcher"]

_log = logging.getLogger(__name__)
_STATE_VERSION = 1

SeriesKey = tuple[tuple[str, str], ...]


@dataclass
class _Firing:
    """A signal that is firing: when it started and when it was last anomalous."""

    signal: Signal
    fired_at: float
    last_anomalous: float


class AnomalyWatcher:
    """Runs every watch's detectors and turns confident anomalies into alerts."""

    def __init__(
        self, settings: AnomalySettings, *, source: InstantSource, state_file: Path | None = None
    ) -> None:
        self.settings = settings
        self.source = source
        self.state_file = state_file
        self.watches = {watch.name: watch for watch in settings.watches}
        self._queries = {watch.name: promql.parse(watch.query) for watch in settings.watches}
        self._deploy_query = (
            promql.parse(settings.deploy_query) if settings.deploy_query is not None else None
        )
        # Per watch, the detector of each series, least recently seen first.
        self.detectors: dict[str, dict[SeriesKey, contract.Detector]] = {
            name: {} for name in self.watches
        }
        self.correlator = Correlator(
            window=settings.correlation_window, deploy_weight=settings.deploy_weight
        )
        self._generations: dict[ServiceKey, float] = {}
        self.firing: dict[Fingerprint, _Firing] = {}
        self.signals: dict[Fingerprint, Signal] = {}  # the latest signal per fingerprint
        self.samples_seen = 0
        if state_file is not None and state_file.is_file():
            self._load(state_file)

    # ---- one round ----------------------------------------------------------------------
    def evaluate(self, *, at: float) -> list[Alert]:
        """Feed every watched series one sample at `at`; the alerts that fire or resolve."""
        self._note_deploys(at)
        anomalous: list[tuple[WatchSettings, dict[str, str], float, ServiceKey]] = []
        for name, watch in self.watches.items():
            try:
                pairs = self.source.instant(self._queries[name], at=at)
            except (SelfhealError, OSError, ValueError) as exc:
                # A failed query (Prometheus unreachable) skips a round; detectors keep state.
                _log.warning("anomaly watch %s: query failed: %s", name, exc)
                continue
            for labels, value in pairs:
                if not math.isfinite(value):
                    # No traffic makes a quantile NaN; a detector fed NaN would never recover.
                    continue
                score = self._detector(watch, labels).process_one(at, value)
                self.samples_seen += 1
                if score < watch.score_threshold:
                    continue
                alert_labels = {**_without_name(labels), **watch.labels}
                service = service_key(alert_labels, self.settings.service_labels)
                if service is None:
                    # No service to correlate with: the series is its own service.
                    service = tuple(sorted(alert_labels.items()))
                self.correlator.note_anomaly(
                    service,
                    source=name,
                    series=_series_text(labels),
                    at=at,
                    contribution=watch.weight * score,
                )
                anomalous.append((watch, alert_labels, score, service))
        for watch, alert_labels, score, service in anomalous:
            confidence, evidence = self.correlator.confidence(service, now=at)
            signal = Signal(
                name=watch.name,
                labels=alert_labels,
                score=score,
                confidence=confidence,
                at=at,
                evidence=tuple(item.describe(now=at) for item in evidence),
            )
            key = fingerprint(watch.name, alert_labels)
            self.signals[key] = signal
            current = self.firing.get(key)
            if current is not None:
                current.signal, current.last_anomalous = signal, at
            elif confidence >= self.settings.min_confidence:
                self.firing[key] = _Firing(signal, fired_at=at, last_anomalous=at)
        return self._alerts(at)

    def firing_signals(self) -> list[tuple[str, Mapping[str, str]]]:
        """The name and labels of every signal firing now (their incidents are not quiet)."""
        return [(state.signal.name, state.signal.labels) for state in self.firing.values()]

    def _alerts(self, at: float) -> list[Alert]:
        alerts = []
        for key, state in list(self.firing.items()):
            signal = state.signal
            resolved = at - state.last_anomalous >= self.settings.resolve_after
            if resolved:
                del self.firing[key]
            watch = self.watches[signal.name]
            alerts.append(
                Alert(
                    name=signal.name,
                    labels={**signal.labels, "alertname": signal.name},
                    annotations={
                        **watch.annotations,
                        "confidence": f"{signal.confidence:.3f}",
                        "evidence": "; ".join(signal.evidence),
                    },
                    state=AlertState.RESOLVED if resolved else AlertState.FIRING,
                    value=signal.confidence,
                    active_at=state.fired_at,
                    fired_at=state.fired_at,
                    resolved_at=at if resolved else None,
                    source="anomaly",
                )
            )
        return alerts

    def _detector(self, watch: WatchSettings, labels: Mapping[str, str]) -> contract.Detector:
        series = self.detectors[watch.name]
        key = tuple(sorted(labels.items()))
        detector = series.pop(key, None)
        if detector is None:
            detector = registry.DETECTORS[watch.detector](seed=0)
            if len(series) >= watch.max_series:
                del series[next(iter(series))]
        series[key] = detector  # re-inserted last: the most recently seen
        return detector

    def _note_deploys(self, at: float) -> None:
        if self._deploy_query is None:
            return
        try:
            pairs = self.source.instant(self._deploy_query, at=at)
        except (SelfhealError, OSError, ValueError) as exc:
            _log.warning("anomaly deploy query failed: %s", exc)
            return
        for labels, generation in pairs:
            service = service_key(labels, self.settings.service_labels)
            if service is None:
                continue
            previous = self._generations.get(service)
            self._generations[service] = generation
            if previous is not None and generation != previous:
                self.correlator.note_deploy(service, series=_series_text(labels), at=at)

    # ---- persistence --------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Every detector's state, by watch and series, as JSON-ready data."""
        return {
            "version": _STATE_VERSION,
            "watches": {
                name: {
                    "detector": self.watches[name].detector,
                    "series": [
                        {"labels": dict(key), "state": detector.state()}
                        for key, detector in series.items()
                    ],
                }
                for name, series in self.detectors.items()
            },
        }

    def save(self) -> None:
        """Write the detectors' state atomically (a crash leaves the old file or the new)."""
        if self.state_file is None:
            return
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.state(), separators=(",", ":")), encoding="utf-8")
        temporary.replace(self.state_file)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read detector state {path}: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
            raise ConfigError(f"detector state {path} is not version {_STATE_VERSION}")
        self.restore(data)

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take up every detector from a saved `state()` (a checkpoint a predecessor wrote).

        Detectors of watches no longer configured, or whose detector changed, are dropped.
        """
        if data.get("version") != _STATE_VERSION:
            _log.warning("detector checkpoint is not version %s: starting afresh", _STATE_VERSION)
            return
        for name, saved in data.get("watches", {}).items():
            watch = self.watches.get(name)
            if watch is None or saved.get("detector") != watch.detector:
                # A removed watch, or one whose detector changed: its history does not apply.
                _log.info("detector state for %s no longer matches the config: dropped", name)
                continue
            for entry in saved.get("series", [])[-watch.max_series :]:
                try:
                    key = tuple(sorted(entry["labels"].items()))
                    self.detectors[name][key] = contract.restore(entry["state"])
                except (AttributeError, KeyError, TypeError, ValueError) as exc:
                    # One unreadable entry costs that series its history, not the start.
                    _log.warning("detector state of a %s series dropped: %s", name, exc)


def _without_name(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != "__name__"}


def _series_text(labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{labels.get('__name__', '')}{{{inner}}}"
