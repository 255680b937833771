"""Alerts become incidents: fingerprints, dedup of re-fired alerts, resolution."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from selfheal.domain.model import Alert, AlertState, IncidentState, fingerprint
from selfheal.incidents import IncidentIntake, target_of
from selfheal.runtime.recorder import IncidentStore
from selfheal.store import Store, open_store

LABELS = {
    "alertname": "Throttling",
    "namespace": "production",
    "service": "orders",
    "severity": "critical",
}


@pytest.fixture
def store() -> Iterator[Store]:
    with open_store("sqlite://") as opened:
        yield opened


def alert(state: AlertState, *, fired_at: float | None = 100.0, **labels: str) -> Alert:
    return Alert(
        name="Throttling",
        labels={**LABELS, **labels},
        annotations={},
        state=state,
        value=0.9,
        active_at=95.0,
        fired_at=fired_at,
        resolved_at=200.0 if state == AlertState.RESOLVED else None,
    )


def test_fingerprint_ignores_label_order_and_volatile_labels() -> None:
    """Same name and identifying labels give one fingerprint whatever the order or `le`."""
    one = fingerprint("A", {"b": "2", "a": "1"})
    assert one == fingerprint("A", {"a": "1", "b": "2", "le": "0.5"})
    assert one != fingerprint("A", {"a": "1", "b": "3"})
    assert one != fingerprint("B", {"a": "1", "b": "2"})


def test_firing_alert_opens_an_incident_with_its_target(store: Store) -> None:
    """A firing alert opens an incident about the Deployment its labels name."""
    result = IncidentIntake(IncidentStore(store)).receive(alert(AlertState.FIRING), at=100.0)
    assert result.opened
    assert result.incident is not None
    assert result.incident.state == IncidentState.OPEN
    assert result.incident.target == target_of(LABELS)
    assert result.incident.target is not None
    assert result.incident.target.name == "orders"


def test_refired_and_duplicate_alerts_join_the_open_incident(store: Store) -> None:
    """The same alert firing again, or twice at once, joins the one open incident."""
    intake = IncidentIntake(IncidentStore(store))
    first = intake.receive(alert(AlertState.FIRING), at=100.0)
    again = intake.receive(alert(AlertState.FIRING, fired_at=130.0), at=130.0)
    duplicate = intake.receive(alert(AlertState.FIRING, fired_at=130.0), at=130.0)
    assert first.incident is not None
    assert again.joined
    assert duplicate.joined
    assert again.incident is not None
    assert again.incident.id == first.incident.id
    assert len(store.incidents.list()) == 1
    assert store.incidents.get(first.incident.id).alert_count == 3


def test_pending_alerts_are_not_incidents(store: Store) -> None:
    """A pending alert opens nothing."""
    result = IncidentIntake(IncidentStore(store)).receive(
        alert(AlertState.PENDING, fired_at=None), at=96.0
    )
    assert result.incident is None
    assert store.incidents.list() == ()


def test_resolved_alert_resolves_an_idle_incident_but_not_a_remediating_one(
    store: Store,
) -> None:
    """Resolution waits for a running remediation; an open incident resolves at once."""
    incidents = IncidentStore(store)
    intake = IncidentIntake(incidents)
    opened = intake.receive(alert(AlertState.FIRING), at=100.0).incident
    assert opened is not None
    incidents.move(opened.id, IncidentState.DECIDING, reason="test", at=101.0)
    incidents.move(opened.id, IncidentState.REMEDIATING, reason="test", at=102.0)
    assert not intake.receive(alert(AlertState.RESOLVED), at=200.0).resolved
    incidents.move(opened.id, IncidentState.VERIFIED, reason="test", at=210.0)
    assert intake.receive(alert(AlertState.RESOLVED), at=220.0).resolved
    assert store.incidents.get(opened.id).state == IncidentState.RESOLVED


def test_a_new_alert_after_resolution_opens_a_new_incident(store: Store) -> None:
    """Once resolved, the same fingerprint firing again is a new incident."""
    intake = IncidentIntake(IncidentStore(store))
    first = intake.receive(alert(AlertState.FIRING), at=100.0).incident
    intake.receive(alert(AlertState.RESOLVED), at=200.0)
    second = intake.receive(alert(AlertState.FIRING, fired_at=300.0), at=300.0)
    assert second.opened
    assert first is not None
    assert second.incident is not None
    assert second.incident.id != first.id


def test_alerts_without_namespace_or_workload_have_no_target() -> None:
    """Without namespace and deployment/service labels there is nothing to act on."""
    assert target_of({"alertname": "X"}) is None
    assert target_of({"namespace": "a"}) is None


def test_escalated_incident_waits_for_a_person_and_absorbs_new_alerts(store: Store) -> None:
    """An escalated incident is not resolved by its alert stopping; re-fires join it."""
    incidents = IncidentStore(store)
    intake = IncidentIntake(incidents)
    opened = intake.receive(alert(AlertState.FIRING), at=100.0).incident
    assert opened is not None
    incidents.move(opened.id, IncidentState.ESCALATED, reason="test", at=101.0)
    assert not intake.receive(alert(AlertState.RESOLVED), at=200.0).resolved
    again = intake.receive(alert(AlertState.FIRING, fired_at=300.0), at=300.0)
    assert again.joined
    assert again.incident is not None
    assert again.incident.state == IncidentState.ESCALATED
