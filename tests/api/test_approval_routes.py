"""The approval routes of the REST API, on a real store: verdicts with identity, or 409/400."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from selfheal.api.app import create_app
from selfheal.store import Store, open_store

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


class StoreDesk:
    """The controller's approval desk reduced to what it does: write to the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def give_verdict(self, incident_id: str, *, approve: bool, by: str, reason: str) -> None:
        self.store.approvals.give(
            incident_id=incident_id, approve=approve, by=by, reason=reason, at=1000.0
        )

    def receive(self, batch: object) -> None:  # the AlertSink the app also needs
        del batch


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    desk = StoreDesk(store)
    with TestClient(create_app(alerts=desk, approvals=desk)) as test_client:
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
    response = client.post("/api/v1/incidents/inc-1/approve", json={"as": "alice", "reason": "ok"})
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "approved", "incident": "inc-1", "by": "alice"}
    again = client.post("/api/v1/incidents/inc-1/approve", json={"as": "alice"})
    assert again.status_code == 409
    assert "alice already gave a verdict" in again.json()["error"]
    denied = client.post("/api/v1/incidents/inc-1/deny", json={"as": "bob", "reason": "risky"})
    assert denied.status_code == 200
    verdicts = store.approvals.verdicts("remediate.inc-1.scale-up")
    assert [(v.by, v.approve, v.reason) for v in verdicts] == [
        ("alice", True, "ok"),
        ("bob", False, "risky"),
    ]


def test_a_verdict_on_nothing_awaiting_approval_is_a_conflict(client: TestClient) -> None:
    response = client.post("/api/v1/incidents/inc-9/approve", json={"as": "alice"})
    assert response.status_code == 409
    assert "no remediation awaiting approval" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "path"),
    [({"reason": "x"}, "$.as"), ({"as": " "}, "$.as"), ({"as": "a", "reason": 3}, "$.reason")],
)
def test_a_verdict_without_a_name_is_refused_naming_the_field(
    client: TestClient, body: dict[str, object], path: str
) -> None:
    response = client.post("/api/v1/incidents/inc-1/approve", json=body)
    assert response.status_code == 400
    assert response.json()["path"] == path
