"""`store.inbox`: alerts taken from senders, durable before the sender hears "taken".

The webhook writes a request's alerts here in one transaction and answers only after it
commits, so an acknowledged alert survives a `kill -9`; the loop takes them in arrival
order and marks them processed in the same transaction that writes their incidents
(`open_or_join_many(..., consumed=...)`), so each is counted exactly once. A sender's retry
of the same alert (same name, labels, state and times) has the same key and is stored once.

The inbox is bounded: `accept` refuses a request that would take the unprocessed alerts
past `max_pending` with `InboxFull`, a `TemporaryError` the API answers with 503 and
`Retry-After`, which Alertmanager and Prometheus retry. Processed rows are pruned after a
while, which bounds the table and is also how long a retry is recognised as one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from selfheal.domain.errors import TemporaryError
from selfheal.domain.model import Alert, AlertState, Incident
from selfheal.store import audit, schema
from selfheal.store.incidents import Arrival, open_or_join_all_in

if TYPE_CHECKING:
    from selfheal.store.database import Store


T = TypeVar("T")


class InboxFull(TemporaryError):
    """More alerts wait than the inbox holds: the sender should retry later."""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """An alert waiting in the inbox (or processed, when read back)."""

    id: int
    source: str
    alert: Alert
    received_at: float


def alert_document(alert: Alert) -> dict[str, Any]:
    """An alert as the inbox stores it (JSON; a NaN value, which webhooks carry, as null)."""
    document: dict[str, Any] = {
        "name": alert.name,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "state": str(alert.state),
        "value": alert.value if math.isfinite(alert.value) else None,
        "active_at": alert.active_at,
        "fired_at": alert.fired_at,
        "resolved_at": alert.resolved_at,
        "source": alert.source,
    }
    if alert.sender is not None:
        document["sender"] = alert.sender
    return document


def alert_of(document: Mapping[str, Any]) -> Alert:
    value = document.get("value")
    return Alert(
        name=str(document["name"]),
        labels=dict(document["labels"]),
        annotations=dict(document["annotations"]),
        state=AlertState(document["state"]),
        value=math.nan if value is None else float(value),
        active_at=float(document["active_at"]),
        fired_at=document.get("fired_at"),
        resolved_at=document.get("resolved_at"),
        source=str(document.get("source", "alertmanager")),
        sender=None if document.get("sender") is None else str(document["sender"]),
    )


def content_key(document: Mapping[str, Any]) -> str:
    """The dedup key of an alert: a hash of everything a retry repeats."""
    return hashlib.sha256(audit.canonical_json(document).encode("utf-8")).hexdigest()


class Inbox:
    """`store.inbox`: see the module docstring."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def accept(
        self,
        alerts: Sequence[Alert],
        *,
        source: str,
        at: float,
        max_pending: int,
        urgent: Sequence[bool] | None = None,
    ) -> int:
        """Store a request's alerts durably, all or none; how many were new (not retries).

        `urgent[i]` marks alert i as about a known workload (taken first). Raises InboxFull,
        storing nothing, when they would take the unprocessed alerts past `max_pending`.
        """
        flags = list(urgent) if urgent is not None else [False] * len(alerts)
        documents = [alert_document(alert) for alert in alerts]
        rows = [
            {
                "key": content_key(document),
                "source": source,
                "urgent": flag,
                "alert": document,
                "received_at": at,
                "processed_at": None,
            }
            for document, flag in zip(documents, flags, strict=True)
        ]
        if not rows:
            return 0
        with self._store.write() as session:
            pending = _pending_count(session)
            if pending + len(rows) > max_pending:
                raise InboxFull(
                    f"{pending} alerts are waiting to be processed, the most the inbox holds "
                    f"is {max_pending}; retry later",
                    delay=_retry_after(pending),
                )
            keys = list(dict.fromkeys(row["key"] for row in rows))
            known = sum(
                int(
                    session.scalar(
                        select(func.count())
                        .select_from(schema.InboxRow)
                        .where(schema.InboxRow.key.in_(chunk))
                    )
                    or 0
                )
                for chunk in _chunks(keys)
            )
            insert = (
                postgresql.insert(schema.InboxRow)
                if self._store.dialect == "postgresql"
                else sqlite.insert(schema.InboxRow)
            )
            session.execute(insert.on_conflict_do_nothing(index_elements=["key"]), rows)
            return len(keys) - known

    def pending(self, *, limit: int) -> list[InboxEntry]:
        """Unprocessed alerts, urgent ones first, each kind in the order they arrived."""
        query = _pending_query(limit)
        with self._store.read() as session:
            return [
                InboxEntry(row.id, row.source, alert_of(row.alert), row.received_at)
                for row in session.scalars(query)
            ]

    def pending_count(self) -> int:
        with self._store.read() as session:
            return _pending_count(session)

    def take(
        self,
        *,
        limit: int,
        build: Callable[
            [Sequence[InboxEntry]], tuple[Sequence[Arrival], Sequence[AlertStateChange], T]
        ],
        at: float,
    ) -> tuple[int, list[tuple[Incident, bool]], T]:
        """Take the next waiting alerts and write what they become, in one transaction.

        The waiting alerts are read inside the write transaction (which holds the store's
        write lock), so two replicas never take the same one. `build` turns them into
        arrivals (opened or joined incidents, as `open_or_join_many`), each alert's latest
        state, and whatever else the caller wants back; the alerts are marked processed in
        the same transaction. A crash before it commits leaves all of them waiting; after,
        none is taken again. Returns how many were taken, (incident, joined) per arrival,
        and what `build` returned besides.
        """
        with self._store.write() as session:
            rows = session.scalars(_pending_query(limit)).all()
            entries = [
                InboxEntry(row.id, row.source, alert_of(row.alert), row.received_at) for row in rows
            ]
            if not entries:
                return 0, [], build(entries)[2]
            arrivals, states, extra = build(entries)
            results = open_or_join_all_in(session, arrivals, at=at)
            _write_states(session, states, at=at)
            mark_processed_in(session, [row.id for row in rows], at=at)
            return len(entries), results, extra

    def consume(
        self,
        entries: Sequence[InboxEntry],
        *,
        arrivals: Sequence[Arrival],
        states: Sequence[AlertStateChange],
        at: float,
    ) -> list[tuple[Incident, bool]]:
        """Write what given inbox alerts became, and mark them processed, at once."""
        with self._store.write() as session:
            results = open_or_join_all_in(session, arrivals, at=at)
            _write_states(session, states, at=at)
            mark_processed_in(session, [entry.id for entry in entries], at=at)
            return results

    def firing_incident_keys(self) -> set[str]:
        """The incident fingerprints that have an alert firing, as senders last said."""
        query = select(schema.AlertStateRow.incident_key).where(schema.AlertStateRow.firing)
        with self._store.read() as session:
            return set(session.scalars(query))

    def prune(self, *, processed_before: float) -> int:
        """Forget alerts processed before this time; how many were forgotten."""
        with self._store.write() as session:
            result = session.execute(
                delete(schema.InboxRow).where(
                    schema.InboxRow.processed_at.is_not(None),
                    schema.InboxRow.processed_at < processed_before,
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True, slots=True)
class AlertStateChange:
    """An alert's latest state: which incident it belongs to, and whether it fires."""

    fingerprint: str
    incident_key: str
    firing: bool


def _pending_query(limit: int) -> Select[schema.InboxRow]:
    return (
        select(schema.InboxRow)
        .where(schema.InboxRow.processed_at.is_(None))
        .order_by(schema.InboxRow.urgent.desc(), schema.InboxRow.id)
        .limit(limit)
    )


def _write_states(session: Session, states: Sequence[AlertStateChange], *, at: float) -> None:
    """Upsert each alert's latest state: one statement per chunk, not a read per alert.

    In a storm every alert is new, and a read per alert (each flushing what the
    transaction wrote so far) was most of what taking alerts from the inbox cost.
    """
    latest = {change.fingerprint: change for change in states}  # the last word per alert
    rows = [
        {
            "fingerprint": change.fingerprint,
            "incident_key": change.incident_key,
            "firing": change.firing,
            "updated_at": at,
        }
        for change in latest.values()
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for chunk in _chunks(rows):
        # On the table, not the mapped class: a plain statement, without the ORM's bulk
        # machinery (which cost as much again), as no object of it is loaded here.
        statement = insert(schema.table_of(schema.AlertStateRow))
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["fingerprint"],
                set_={
                    "incident_key": statement.excluded.incident_key,
                    "firing": statement.excluded.firing,
                    "updated_at": statement.excluded.updated_at,
                },
            ),
            chunk,
        )


def mark_processed_in(session: Session, ids: Sequence[int], *, at: float) -> None:
    """Mark inbox rows processed inside the caller's write transaction."""
    for chunk in _chunks(list(ids)):
        session.execute(
            update(schema.InboxRow)
            .where(schema.InboxRow.id.in_(chunk), schema.InboxRow.processed_at.is_(None))
            .values(processed_at=at)
        )


def _chunks(items: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    """`items` in slices small enough for any database's limit on query parameters."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def _pending_count(session: Session) -> int:
    query = select(func.count()).select_from(schema.InboxRow)
    return int(session.scalar(query.where(schema.InboxRow.processed_at.is_(None))) or 0)


def _retry_after(pending: int) -> float:
    # The loop takes a few thousand alerts a second; ask for a wait in proportion, 1-30 s.
    return float(min(30, max(1, pending // 2000)))
