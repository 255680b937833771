"""Correlation: anomalies of one service corroborate each other; a lone one stays unsure."""

from __future__ import annotations

import pytest

from selfheal.detection.correlation import Correlator, service_key

SERVICE = service_key(
    {"namespace": "production", "deployment": "orders"}, ("namespace", "deployment")
)
OTHER = service_key(
    {"namespace": "production", "deployment": "payments"}, ("namespace", "deployment")
)


def test_one_anomalous_metric_alone_is_only_as_sure_as_its_weight() -> None:
    correlator = Correlator(window=60.0)
    assert SERVICE is not None
    correlator.note_anomaly(SERVICE, source="latency", series="p95", at=100.0, contribution=0.6)
    confidence, evidence = correlator.confidence(SERVICE, now=100.0)
    assert confidence == pytest.approx(0.6)
    assert [e.source for e in evidence] == ["latency"]


def test_two_metrics_of_the_same_service_combine_as_a_noisy_or() -> None:
    correlator = Correlator(window=60.0)
    assert SERVICE is not None
    assert OTHER is not None
    correlator.note_anomaly(SERVICE, source="latency", series="p95", at=100.0, contribution=0.6)
    correlator.note_anomaly(SERVICE, source="cpu", series="throttling", at=110.0, contribution=0.5)
    correlator.note_anomaly(OTHER, source="cpu", series="throttling", at=110.0, contribution=0.9)
    confidence, evidence = correlator.confidence(SERVICE, now=110.0)
    assert confidence == pytest.approx(1 - 0.4 * 0.5)
    assert [e.source for e in evidence] == ["latency", "cpu"]  # strongest first


def test_a_recent_deploy_raises_confidence_and_is_named_in_the_evidence() -> None:
    correlator = Correlator(window=60.0, deploy_weight=0.5)
    assert SERVICE is not None
    correlator.note_deploy(SERVICE, series="generation", at=90.0)
    correlator.note_anomaly(SERVICE, source="latency", series="p95", at=100.0, contribution=0.6)
    confidence, evidence = correlator.confidence(SERVICE, now=100.0)
    assert confidence == pytest.approx(1 - 0.4 * 0.5)
    assert evidence[-1].describe(now=100.0).startswith("deployed (generation) 10s ago")


def test_evidence_older_than_the_window_is_forgotten() -> None:
    correlator = Correlator(window=60.0)
    assert SERVICE is not None
    correlator.note_deploy(SERVICE, series="generation", at=0.0)
    correlator.note_anomaly(SERVICE, source="latency", series="p95", at=10.0, contribution=0.6)
    correlator.note_anomaly(SERVICE, source="cpu", series="throttling", at=65.0, contribution=0.5)
    confidence, evidence = correlator.confidence(SERVICE, now=71.0)
    assert confidence == pytest.approx(0.5)
    assert [e.source for e in evidence] == ["cpu"]


def test_a_fading_anomaly_keeps_its_strongest_reading_within_the_window() -> None:
    correlator = Correlator(window=60.0)
    assert SERVICE is not None
    correlator.note_anomaly(SERVICE, source="traffic", series="rps", at=10.0, contribution=0.5)
    correlator.note_anomaly(SERVICE, source="traffic", series="rps", at=15.0, contribution=0.1)
    assert correlator.confidence(SERVICE, now=15.0)[0] == pytest.approx(0.5)


def test_state_is_bounded_by_max_keys() -> None:
    correlator = Correlator(window=1e9, max_keys=10)
    assert SERVICE is not None
    for i in range(100):
        correlator.note_anomaly(SERVICE, source="s", series=str(i), at=float(i), contribution=0.1)
    assert len(correlator.evidence(SERVICE, now=100.0)) == 10


def test_a_series_without_the_service_labels_has_no_service() -> None:
    assert service_key({"namespace": "production"}, ("namespace", "deployment")) is None
    assert service_key({"namespace": "p", "deployment": ""}, ("namespace", "deployment")) is None


@pytest.mark.parametrize(("window", "weight"), [(0.0, 0.5), (10.0, 1.5)])
def test_bad_parameters_are_refused(window: float, weight: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        Correlator(window=window, deploy_weight=weight)
