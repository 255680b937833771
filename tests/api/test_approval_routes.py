"""The approval routes of the REST API, on a real store: verdicts with identity, or 409/400."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from selfheal.api.app import create_app
from selfheal.domain.model import Fingerprint, IncidentId
from selfheal.store import Store, open_store

from support import ApiCallers

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


class StoreDesk:
    """The controller's approval desk reduced to what it does: write to the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def give_verdict(
        self, incident_id: str, *, approve: bool, by: str, reason: str, source: str
    ) -> None:
        self.store.approvals.give(
            incident_id=incident_id,
            approve=approve,
            by=by,
            reason=reason,
            at=1000.0,
            source=source,
        )

    def receive(self, batch: object) -> None:  # the AlertSink the app also needs
        del batch


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


CALLERS = ApiCallers()
ALICE, BOB, MALLORY = (CALLERS.headers(name) for name in ("alice", "bob", "mallory"))


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    desk = StoreDesk(store)
    app = create_app(alerts=desk, approvals=desk, authenticator=CALLERS.authenticator)
    with TestClient(app) as test_client:
        yield test_client


def test_an_approval_is_recorded_with_who_and_why(client: TestClient, store: Store) -> None:
    store.approvals.request(
        workflow_id="remediate.inc-1.scale-up",
        incident_id="inc-1",
        runbook="scale-up",
        approvers=2,
        timeout=600.0,
        at=900.0,
    )
    response = client.post("/api/v1/incidents/inc-1/approve", json={"reason": "ok"}, headers=ALICE)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "approved", "incident": "inc-1", "by": "alice"}
    again = client.post("/api/v1/incidents/inc-1/approve", json={}, headers=ALICE)
    assert again.status_code == 409
    assert "alice already gave a verdict" in again.json()["error"]
    denied = client.post("/api/v1/incidents/inc-1/deny", json={"reason": "risky"}, headers=BOB)
    assert denied.status_code == 200
    verdicts = store.approvals.verdicts("remediate.inc-1.scale-up")
    assert [(v.by, v.approve, v.reason) for v in verdicts] == [
        ("alice", True, "ok"),
        ("bob", False, "risky"),
    ]


def test_a_verdict_on_nothing_awaiting_approval_is_a_conflict(client: TestClient) -> None:
    response = client.post("/api/v1/incidents/inc-9/approve", json={}, headers=ALICE)
    assert response.status_code == 409
    assert "no remediation awaiting approval" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "path"),
    [({"as": "bob"}, "$.as"), ({"as": 3}, "$.as"), ({"reason": 3}, "$.reason")],
)
def test_a_verdict_naming_someone_else_or_badly_typed_is_refused_naming_the_field(
    client: TestClient, body: dict[str, object], path: str
) -> None:
    """Who gives the verdict is the credential's identity; a body cannot name another."""
    response = client.post("/api/v1/incidents/inc-1/approve", json=body, headers=ALICE)
    assert response.status_code == 400
    assert response.json()["path"] == path


def test_naming_oneself_in_another_spelling_is_still_oneself(
    client: TestClient, store: Store
) -> None:
    request_approval(store, approvers=2)
    response = client.post("/api/v1/incidents/inc-1/approve", json={"as": " Alice "}, headers=ALICE)
    assert response.status_code == 200, response.text
    assert store.approvals.verdicts("remediate.inc-1.scale-up")[0].by == "alice"


def test_a_verdict_without_a_credential_is_401_and_records_nothing(
    client: TestClient, store: Store
) -> None:
    request_approval(store, approvers=1)
    anonymous = client.post("/api/v1/incidents/inc-1/approve", json={"as": "alice"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forged = client.post(
        "/api/v1/incidents/inc-1/approve",
        json={},
        headers={"authorization": "Bearer " + CALLERS.tokens["alice"][:-1] + "x"},
    )
    assert forged.status_code == 401
    assert store.approvals.verdicts("remediate.inc-1.scale-up") == []


def test_a_sender_cannot_approve_and_the_403_names_the_role(client: TestClient) -> None:
    response = client.post(
        "/api/v1/incidents/inc-1/approve", json={}, headers=CALLERS.headers("alertmanager")
    )
    assert response.status_code == 403
    assert "'approver'" in response.json()["error"]


def test_whoever_sent_the_incidents_alert_cannot_approve_it(
    client: TestClient, store: Store
) -> None:
    """Mallory holds both roles: she may send alerts and approve, but not her own request."""
    store.incidents.open_or_join(
        Fingerprint("fp"),
        alert_name="Slow",
        labels={},
        annotations={},
        at=900.0,
        incident_id=IncidentId("inc-1"),
        sender="mallory",
    )
    request_approval(store, approvers=2)
    mine = client.post("/api/v1/incidents/inc-1/approve", json={}, headers=MALLORY)
    assert mine.status_code == 409
    assert "asked for its remediation" in mine.json()["error"]
    theirs = client.post("/api/v1/incidents/inc-1/approve", json={}, headers=ALICE)
    assert theirs.status_code == 200
    denied = client.post("/api/v1/incidents/inc-1/deny", json={}, headers=MALLORY)
    assert denied.status_code == 200, "denying one's own request stops it, which is safe"


def request_approval(store: Store, *, approvers: int) -> None:
    store.approvals.request(
        workflow_id="remediate.inc-1.scale-up",
        incident_id="inc-1",
        runbook="scale-up",
        approvers=approvers,
        timeout=600.0,
        at=900.0,
    )
