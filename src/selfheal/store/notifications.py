"""`store.notifications`: messages to people, each under the idempotency key of its cause.

The key (a runbook step's, or `<incident>/escalation`) makes a notification's record
idempotent: recording the same key twice returns the first record, so a step re-run after a
crash finds that it already told someone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from selfheal.domain.model import IncidentId
from selfheal.store import audit, schema
from selfheal.store.rows import to_json

if TYPE_CHECKING:
    from selfheal.store.database import Store


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A notification as recorded."""

    id: int
    incident_id: IncidentId | None
    channel: str
    recipient: str
    message: str
    payload: Mapping[str, Any]
    created_at: float
    delivered: bool
    error: str | None
    key: str | None = None


class Notifications:
    """`store.notifications`: messages sent to people, delivered or not."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def record(
        self,
        *,
        incident_id: IncidentId | None,
        channel: str,
        recipient: str,
        message: str,
        payload: Mapping[str, Any],
        at: float,
        delivered: bool,
        error: str | None = None,
        key: str | None = None,
    ) -> NotificationRecord:
        """Record a notification; with a `key` already recorded, the first record stands."""
        with self._store.write() as session:
            if key is not None:
                existing = session.scalar(
                    select(schema.NotificationRow).where(schema.NotificationRow.key == key)
                )
                if existing is not None:
                    return _notification(existing)
            row = schema.NotificationRow(
                incident_id=incident_id,
                channel=channel,
                recipient=recipient,
                message=message,
                payload=to_json(payload),
                created_at=at,
                delivered=delivered,
                error=error,
                key=key,
            )
            session.add(row)
            session.flush()
            audited = {
                "notification_id": row.id,
                "incident_id": incident_id,
                "channel": channel,
                "recipient": recipient,
                "message": message,
                "payload": row.payload,
                "delivered": delivered,
                "error": error,
            }
            audit.append_in(
                session,
                kind="notification.recorded",
                subject=incident_id or channel,
                payload=audited,
                at=at,
            )
            return _notification(row)

    def find(self, key: str) -> NotificationRecord | None:
        """The notification recorded under `key`, if any."""
        query = select(schema.NotificationRow).where(schema.NotificationRow.key == key)
        with self._store.read() as session:
            row = session.scalar(query)
            return None if row is None else _notification(row)

    def list(self, *, incident_id: IncidentId | None = None) -> tuple[NotificationRecord, ...]:
        """Notifications oldest first, optionally only one incident's."""
        query = select(schema.NotificationRow).order_by(schema.NotificationRow.id)
        if incident_id is not None:
            query = query.where(schema.NotificationRow.incident_id == incident_id)
        with self._store.read() as session:
            return tuple(_notification(row) for row in session.scalars(query))


def _notification(row: schema.NotificationRow) -> NotificationRecord:
    return NotificationRecord(
        id=row.id,
        incident_id=None if row.incident_id is None else IncidentId(row.incident_id),
        channel=row.channel,
        recipient=row.recipient,
        message=row.message,
        payload=row.payload,
        created_at=row.created_at,
        delivered=row.delivered,
        error=row.error,
        key=row.key,
    )
