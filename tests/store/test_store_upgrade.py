import sqlite3
from pathlib import Path

from selfheal.domain.model import IncidentId
from selfheal.store import open_store

# The two tables as the first release of the store created them, without `key` columns.
_FIRST_RELEASE_TABLES = """
CREATE TABLE incidents (id VARCHAR(64) PRIMARY KEY, fingerprint VARCHAR(64), alert_name
  VARCHAR(255), labels JSON, annotations JSON, state VARCHAR(32), opened_at FLOAT,
  onset_at FLOAT, updated_at FLOAT, target_kind VARCHAR(63), target_namespace VARCHAR(253),
  target_name VARCHAR(253), alert_count INTEGER, last_alert_at FLOAT);
CREATE TABLE notifications (id INTEGER PRIMARY KEY, incident_id VARCHAR(64), channel
  VARCHAR(128), recipient VARCHAR(255), message TEXT, payload JSON, created_at FLOAT,
  delivered BOOLEAN, error TEXT);
CREATE TABLE budget_ledger (id INTEGER PRIMARY KEY, day VARCHAR(10), amount FLOAT,
  currency VARCHAR(8), reason TEXT, incident_id VARCHAR(64), created_at FLOAT);
INSERT INTO budget_ledger (day, amount, currency, reason, created_at)
  VALUES ('2026-01-01', 12.0, 'USD', 'before the upgrade', 1.0);
"""


def test_a_store_made_by_the_first_release_gains_the_idempotency_key_columns(
    tmp_path: Path,
) -> None:
    """Opening an older state directory adds the new columns; old rows stay, keys work."""
    database = tmp_path / "state.db"
    with sqlite3.connect(database) as connection:
        connection.executescript(_FIRST_RELEASE_TABLES)
    with open_store(f"sqlite:///{database}") as store:
        assert store.budget.spent_on("2026-01-01") == 12.0
        store.budget.charge(
            day="2026-01-01", amount=3.0, currency="USD", reason="r", at=2.0, key="wf/budget"
        )
        again = store.budget.charge(
            day="2026-01-01", amount=3.0, currency="USD", reason="r", at=3.0, key="wf/budget"
        )
        assert again.created_at == 2.0
        assert store.budget.spent_on("2026-01-01") == 15.0
        first = store.notifications.record(
            incident_id=None,
            channel="c",
            recipient="c",
            message="m",
            payload={},
            at=1.0,
            delivered=True,
            key="k",
        )
        assert (
            store.notifications.record(
                incident_id=None,
                channel="c",
                recipient="c",
                message="other",
                payload={},
                at=2.0,
                delivered=True,
                key="k",
            )
            == first
        )
        assert store.incidents.find(IncidentId("nope")) is None
    # Opening it again finds nothing left to do.
    with open_store(f"sqlite:///{database}") as store:
        assert store.budget.find("wf/budget") is not None
