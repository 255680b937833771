"""GET routes for incidents and the audit chain: what the console and tools read."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from selfheal.api.app import create_app
from selfheal.runtime.incident_views import StoreIncidentBook
from selfheal.store import open_store

from support import ApiCallers, populated_state

CALLERS = ApiCallers()

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


class NoAlerts:
    """An AlertSink that takes nothing: these tests only read."""

    def receive(self, batch: object) -> None:
        del batch


@pytest.fixture
def ids(tmp_path: Path) -> dict[str, str]:
    return populated_state(tmp_path)


@pytest.fixture
def client(tmp_path: Path, ids: dict[str, str]) -> Iterator[TestClient]:
    with (
        open_store(f"sqlite:///{tmp_path / 'state.db'}") as store,
        TestClient(
            create_app(
                alerts=NoAlerts(),
                incidents=StoreIncidentBook(store),
                authenticator=CALLERS.authenticator,
            ),
            headers=CALLERS.headers("dashboard"),
        ) as test,
    ):
        yield test


def test_the_incident_list_is_filtered_by_state_and_bounded(
    client: TestClient, ids: dict[str, str]
) -> None:
    """`state` filters (repeatable), `limit` keeps the newest, `open` drops resolved ones."""
    everything = client.get("/api/v1/incidents").json()["incidents"]
    assert [item["id"] for item in everything] == [ids["fixed"], ids["other"]]
    assert everything[0]["alerts"] == 2
    verified = client.get("/api/v1/incidents", params={"state": "verified"}).json()
    assert [item["id"] for item in verified["incidents"]] == [ids["fixed"]]
    newest = client.get("/api/v1/incidents", params={"limit": 1}).json()["incidents"]
    assert [item["id"] for item in newest] == [ids["other"]]
    assert len(client.get("/api/v1/incidents", params={"open": "true"}).json()["incidents"]) == 2


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"state": "burning"}, "$.query.state"),
        ({"limit": "0"}, "$.query.limit"),
        ({"limit": "many"}, "$.query.limit"),
        ({"limit": "\u00b2"}, "$.query.limit"),  # a digit to str.isdigit, not to int()
        ({"open": "maybe"}, "$.query.open"),
    ],
)
def test_bad_query_parameters_are_refused_naming_the_parameter(
    client: TestClient, params: dict[str, str], path: str
) -> None:
    response = client.get("/api/v1/incidents", params=params)
    assert response.status_code == 400
    assert response.json()["path"] == path


def test_one_incident_has_its_decisions_runs_and_audit_records(
    client: TestClient, ids: dict[str, str]
) -> None:
    detail = client.get(f"/api/v1/incidents/{ids['fixed']}").json()
    assert detail["decisions"][0]["plans"][0]["runbook"] == "scale-up"
    assert detail["runs"][0]["outcome"] == "verified"
    records = client.get(f"/api/v1/incidents/{ids['fixed']}/audit").json()["records"]
    assert records[0]["kind"] == "incident.opened"
    assert records[-1]["payload"]["to"] == "verified"


def test_an_unknown_incident_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/incidents/nope-1").status_code == 404
    assert client.get("/api/v1/incidents/nope-1/audit").status_code == 404


def test_the_audit_chain_is_read_in_pages(client: TestClient) -> None:
    """`after` and `limit` page through the chain in order, with the hashes."""
    first = client.get("/api/v1/audit", params={"limit": 3}).json()["records"]
    assert [record["seq"] for record in first] == [1, 2, 3]
    after = client.get("/api/v1/audit", params={"after": 3, "limit": 2}).json()["records"]
    assert [record["seq"] for record in after] == [4, 5]
    assert after[0]["prev_hash"] == first[-1]["hash"]
