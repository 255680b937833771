"""Anomaly watches over selfheal's own TSDB: series become signals with a confidence."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pydantic
import pytest

from selfheal.detection import registry
from selfheal.domain.model import AlertState
from selfheal.runtime.anomalies import AnomalyWatcher
from selfheal.runtime.settings import AnomalySettings
from selfheal.runtime.telemetry_store import SharedTelemetry

T0 = 1_767_225_600.0
SERVICE = {"namespace": "production", "deployment": "orders"}


def settings(**overrides: Any) -> AnomalySettings:
    base: dict[str, Any] = {
        "interval": "5s",
        "deploy_query": "max by (namespace, deployment) (kube_deployment_metadata_generation)",
        "watches": [
            {"name": "OrdersLatencyAnomaly", "query": "latency_seconds", "detector": "quick"},
            {"name": "OrdersTrafficAnomaly", "query": "requests_per_second", "detector": "quick"},
        ],
    }
    return AnomalySettings.model_validate(base | overrides)


class Feed:
    """Writes one sample per series per step into a real TSDB, as a scrape would."""

    def __init__(self) -> None:
        self.telemetry = SharedTelemetry(retention=3600.0)
        self.rng = random.Random(3)
        self.generation = 1.0

    def step(self, at: float, *, latency: float = 0.1, rps: float = 100.0) -> None:
        noise = self.rng.gauss
        samples = [
            ({"__name__": "latency_seconds", **SERVICE}, latency * noise(1.0, 0.02)),
            ({"__name__": "requests_per_second", **SERVICE}, rps * noise(1.0, 0.02)),
            ({"__name__": "kube_deployment_metadata_generation", **SERVICE}, self.generation),
        ]
        self.telemetry.ingest(at=at, samples=samples, stale=())


def run(watcher: AnomalyWatcher, feed: Feed, steps: range, **shape: float) -> list[Any]:
    alerts = []
    for i in steps:
        at = T0 + 5.0 * i
        feed.step(at, **shape)
        alerts += watcher.evaluate(at=at)
    return alerts


def test_two_metrics_turning_odd_together_fire_one_confident_signal_each() -> None:
    feed = Feed()
    watcher = AnomalyWatcher(settings(), source=feed.telemetry)
    assert run(watcher, feed, range(60)) == []
    alerts = run(watcher, feed, range(60, 61), latency=1.0, rps=400.0)
    assert {a.name for a in alerts} == {"OrdersLatencyAnomaly", "OrdersTrafficAnomaly"}
    for alert in alerts:
        assert alert.state == AlertState.FIRING
        assert alert.source == "anomaly"
        assert alert.labels["deployment"] == "orders"
        assert alert.value >= 0.8
        assert "anomalous" in alert.annotations["evidence"]
    signal = next(iter(watcher.signals.values()))
    assert signal.confidence == alert.value
    assert len(signal.evidence) == 2


def test_one_metric_alone_stays_below_the_bar_and_fires_nothing() -> None:
    feed = Feed()
    watcher = AnomalyWatcher(settings(), source=feed.telemetry)
    run(watcher, feed, range(60))
    assert run(watcher, feed, range(60, 62), latency=1.0) == []
    [signal] = watcher.signals.values()
    assert signal.name == "OrdersLatencyAnomaly"
    assert 0.0 < signal.confidence <= 0.6


def test_a_deploy_just_before_makes_a_lone_anomaly_confident() -> None:
    feed = Feed()
    watcher = AnomalyWatcher(
        settings(
            watches=[{"name": "L", "query": "latency_seconds", "detector": "quick", "weight": 0.7}]
        ),
        source=feed.telemetry,
    )
    run(watcher, feed, range(60))
    feed.generation = 2.0
    run(watcher, feed, range(60, 62))
    alerts = run(watcher, feed, range(62, 63), latency=1.0)
    [alert] = alerts
    assert alert.value >= 0.8
    assert "deployed" in alert.annotations["evidence"]


def test_a_signal_resolves_after_resolve_after_without_an_anomaly() -> None:
    feed = Feed()
    watcher = AnomalyWatcher(settings(resolve_after="30s"), source=feed.telemetry)
    run(watcher, feed, range(60))
    fired = run(watcher, feed, range(60, 61), latency=1.0, rps=400.0)
    assert fired
    later = run(watcher, feed, range(61, 80))
    resolved = [a for a in later if a.state == AlertState.RESOLVED]
    assert {a.name for a in resolved} == {a.name for a in fired}
    assert all(a.resolved_at is not None and a.resolved_at >= a.fired_at + 30 for a in resolved)  # type: ignore[operator]
    assert watcher.firing_signals() == []


def test_saved_detector_state_resumes_with_identical_scores(tmp_path: Path) -> None:
    state_file = tmp_path / "detectors.json"
    feed = Feed()
    first = AnomalyWatcher(settings(), source=feed.telemetry, state_file=state_file)
    run(first, feed, range(40))
    first.save()
    assert json.loads(state_file.read_text())["version"] == 1
    resumed = AnomalyWatcher(settings(), source=feed.telemetry, state_file=state_file)
    for i in range(40, 70):
        at = T0 + 5.0 * i
        feed.step(at, latency=1.0 if i > 60 else 0.1)
        assert first.evaluate(at=at) == resumed.evaluate(at=at)
        assert first.state() == resumed.state()


def test_each_watch_keeps_at_most_max_series_detectors() -> None:
    telemetry = SharedTelemetry(retention=3600.0)
    watcher = AnomalyWatcher(
        settings(watches=[{"name": "W", "query": "x", "max_series": 5}]), source=telemetry
    )
    for i in range(20):
        # Ten minutes apart: past the 5-minute lookback, each round sees only its new series.
        at = T0 + 600.0 * i
        telemetry.ingest(at=at, samples=[({"__name__": "x", "pod": f"p{i}"}, 1.0)], stale=())
        watcher.evaluate(at=at)
    assert len(watcher.detectors["W"]) == 5
    assert [dict(key)["pod"] for key in watcher.detectors["W"]] == [f"p{i}" for i in range(15, 20)]


def test_values_that_are_not_numbers_are_skipped_without_poisoning_the_detector() -> None:
    """A NaN (a quantile with no traffic) is not scored; scores afterwards are unaffected."""
    clean, gappy = SharedTelemetry(retention=3600.0), SharedTelemetry(retention=3600.0)
    config = settings(watches=[{"name": "W", "query": "x", "detector": "quick"}])
    plain, skipping = AnomalyWatcher(config, source=clean), AnomalyWatcher(config, source=gappy)
    rng = random.Random(5)
    for i in range(50):
        at = T0 + 5.0 * i
        value = 10.0 + rng.gauss(0.0, 0.1)
        clean.ingest(at=at, samples=[({"__name__": "x"}, value)], stale=())
        gappy.ingest(at=at, samples=[({"__name__": "x"}, value)], stale=())
        plain.evaluate(at=at)
        skipping.evaluate(at=at)
        if i == 20:
            gappy.ingest(at=at + 1.0, samples=[({"__name__": "x"}, float("nan"))], stale=())
            skipping.evaluate(at=at + 1.0)
    assert skipping.samples_seen == plain.samples_seen
    assert skipping.state() == plain.state()


def test_a_detector_without_a_common_scale_cannot_be_watched() -> None:
    """Raw z-scores have no threshold that means the same on every series: refused."""
    with pytest.raises(pydantic.ValidationError, match="scores on no common scale"):
        settings(watches=[{"name": "W", "query": "x", "detector": "robust-z"}])


def test_the_default_detector_is_the_nab_default_with_its_nab_threshold() -> None:
    [watch] = settings(watches=[{"name": "W", "query": "x"}]).watches
    assert watch.detector == registry.DEFAULT
    assert watch.score_threshold == registry.THRESHOLDS[registry.DEFAULT]
