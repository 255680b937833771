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


def pod_alert(pod: str, deployment: str, *, state: AlertState = AlertState.FIRING) -> Alert:
    return Alert(
        name="PodNotReady",
        labels={"namespace": "production", "deployment": deployment, "pod": pod},
        annotations={},
        state=state,
        value=1.0,
        active_at=95.0,
        fired_at=100.0,
        resolved_at=200.0 if state == AlertState.RESOLVED else None,
    )


def test_group_by_collapses_per_pod_alerts_into_one_incident_per_workload(store: Store) -> None:
    intake = IncidentIntake(IncidentStore(store), group_by=("namespace", "deployment"))
    storm = [pod_alert(f"web-{n}", "web") for n in range(50)]
    storm += [pod_alert(f"api-{n}", "api") for n in range(30)]
    results = intake.receive_firing(storm, at=100.0)
    assert [r.opened for r in results].count(True) == 2
    assert [r.joined for r in results].count(True) == 78
    counts = {i.target.name: i.alert_count for i in store.incidents.list() if i.target}
    assert counts == {"web": 50, "api": 30}
    joined = store.audit.records(kind="incident.joined")
    assert {r.payload["alert_labels"]["pod"] for r in joined} == {
        a.labels["pod"] for a in storm
    } - {"web-0", "api-0"}


def test_without_group_by_each_pod_is_its_own_incident(store: Store) -> None:
    intake = IncidentIntake(IncidentStore(store))
    results = intake.receive_firing([pod_alert(f"web-{n}", "web") for n in range(5)], at=100.0)
    assert all(r.opened for r in results)
    assert len(store.incidents.list()) == 5


def test_one_pod_resolving_leaves_its_group_incident_open(store: Store) -> None:
    intake = IncidentIntake(IncidentStore(store), group_by=("namespace", "deployment"))
    intake.receive_firing([pod_alert("web-1", "web"), pod_alert("web-2", "web")], at=100.0)
    result = intake.receive(pod_alert("web-1", "web", state=AlertState.RESOLVED), at=200.0)
    assert result.incident is not None
    assert not result.resolved
    assert store.incidents.get(result.incident.id).state == IncidentState.OPEN


def test_receive_firing_refuses_other_states(store: Store) -> None:
    intake = IncidentIntake(IncidentStore(store))
    with pytest.raises(ValueError, match="firing alerts only"):
        intake.receive_firing([pod_alert("web-1", "web", state=AlertState.RESOLVED)], at=1.0)
