"""Requests built to break the API: each is refused with a clear 4xx, never a 500 or a crash.

The sinks behind the app are recording fakes of the runtime's ports; the same requests are
sent to a running `selfheal run` by the fault harness (tests/lab), where the controller must
also survive them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from selfheal.api import create_app

from support import ApiCallers

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ALERTS = "/api/v1/alerts"
CALLERS = ApiCallers()
# The 160-byte request that used to kill the controller: a label value with a lone
# surrogate, valid JSON that no UTF-8 store can hold.
SURROGATE_ALERT = (
    b'{"version":"4","status":"firing","receiver":"r","groupKey":"k","alerts":[{"status":'
    b'"firing","labels":{"alertname":"X","pod":"\\ud800"},"annotations":{},'
    b'"startsAt":"2026-01-01T00:00:00Z"}]}'
)


@dataclass
class Recorder:
    """Records what reaches the runtime's ports; a request refused at the door adds nothing."""

    batches: list[Any] = field(default_factory=list)
    verdicts: list[tuple[str, bool, str, str]] = field(default_factory=list)
    ready: bool = True

    def receive(self, batch: Any) -> None:
        self.batches.append(batch)

    def give_verdict(
        self, incident_id: str, *, approve: bool, by: str, reason: str, source: str
    ) -> None:
        self.verdicts.append((incident_id, approve, by, reason))

    def readiness(self) -> Any:
        @dataclass
        class Answer:
            ready: bool
            reason: str
            details: dict[str, Any]

        return Answer(self.ready, "ok" if self.ready else "the store is full", {"ticks": 3})


@pytest.fixture
def sinks() -> Recorder:
    return Recorder()


@pytest.fixture
def client(sinks: Recorder) -> Iterator[TestClient]:
    app = create_app(
        alerts=sinks,
        approvals=sinks,
        health=sinks,
        authenticator=CALLERS.authenticator,
        allowed_hosts=["127.0.0.1", "localhost", "testserver"],
    )
    # The hostile requests come with a valid credential: they must reach the parsers.
    with TestClient(app, headers=CALLERS.headers("mallory")) as test_client:
        yield test_client


def test_a_lone_surrogate_in_a_label_is_refused_naming_the_label(
    client: TestClient, sinks: Recorder
) -> None:
    response = client.post(
        ALERTS, content=SURROGATE_ALERT, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["path"] == "alerts[0].labels.pod"
    assert "surrogate" in response.json()["error"]
    assert sinks.batches == []


def test_deeply_nested_json_on_the_approve_route_is_400_not_500(
    client: TestClient, sinks: Recorder
) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = client.post(
        "/api/v1/incidents/x/approve",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "nests too deeply" in response.json()["error"]
    assert sinks.verdicts == []


def test_a_surrogate_in_an_approvers_name_is_refused(client: TestClient, sinks: Recorder) -> None:
    response = client.post(
        "/api/v1/incidents/x/approve",
        content=b'{"as": "mallory\\udfff", "reason": "x"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["path"] == "as"
    assert sinks.verdicts == []


@pytest.mark.parametrize("host", ["evil.example", "rebind.attacker.test:8080", "10.0.0.1"])
def test_a_request_naming_another_host_is_refused(
    client: TestClient, sinks: Recorder, host: str
) -> None:
    """A page that rebinds its domain to 127.0.0.1 still sends its own name as Host."""
    response = client.post(
        ALERTS,
        content=json.dumps({"version": "4", "alerts": []}),
        headers={"content-type": "application/json", "host": host},
    )
    assert response.status_code == 400
    assert sinks.batches == []


def test_readyz_says_ready_and_why_not(client: TestClient, sinks: Recorder) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    sinks.ready = False
    unready = client.get("/readyz")
    assert unready.status_code == 503
    assert unready.json()["reason"] == "the store is full"
    assert unready.json()["ticks"] == 3
