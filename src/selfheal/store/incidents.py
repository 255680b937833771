"""`store.incidents`: the alerts with one fingerprint, and where their remediation stands.

At most one incident per fingerprint is open (in any state but `resolved`): the check runs
inside the serialized write transaction, and the partial unique index
`uq_incidents_open_fingerprint` (schema.py) is the backstop in the database itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from selfheal.domain.errors import PermanentError
from selfheal.domain.model import Fingerprint, Incident, IncidentId, IncidentState, Target
from selfheal.store import audit, schema
from selfheal.store.rows import get_row, to_json

if TYPE_CHECKING:
    from selfheal.store.database import Store


@dataclass(frozen=True, slots=True)
class Arrival:
    """A firing alert on its way into an incident: what `open_or_join` needs of it."""

    fingerprint: Fingerprint
    alert_name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    onset_at: float | None = None
    target: Target | None = None
    sender: str | None = None  # the API caller who sent the alert, if one did


def open_or_join_in(
    session: Session, arrival: Arrival, *, at: float, incident_id: IncidentId | None = None
) -> tuple[Incident, bool]:
    """`Incidents.open_or_join` inside a write transaction the caller holds."""
    incident, joined, _ = _open_or_join_known(
        session,
        arrival,
        at=at,
        incident_id=incident_id,
        open_row=session.scalar(_open_query(arrival.fingerprint)),
        count=None,
    )
    return incident, joined


def open_or_join_all_in(
    session: Session, arrivals: Sequence[Arrival], *, at: float
) -> list[tuple[Incident, bool]]:
    """`open_or_join_in` for many arrivals, with two queries in all instead of two each.

    The open incidents of every fingerprint in the batch, and how many incidents each
    fingerprint had, are read once; the rest happens in memory and is written at commit.
    """
    fingerprints = list(dict.fromkeys(arrival.fingerprint for arrival in arrivals))
    open_rows: dict[str, schema.IncidentRow] = {}
    counts: dict[str, int] = {}
    with session.no_autoflush:
        for chunk in _chunks(fingerprints):
            for row in session.scalars(
                select(schema.IncidentRow).where(
                    schema.IncidentRow.fingerprint.in_(chunk),
                    schema.IncidentRow.state != IncidentState.RESOLVED.value,
                )
            ):
                open_rows[row.fingerprint] = row
            query = (
                select(schema.IncidentRow.fingerprint, func.count())
                .where(schema.IncidentRow.fingerprint.in_(chunk))
                .group_by(schema.IncidentRow.fingerprint)
            )
            counts.update({str(fp): int(n) for fp, n in session.execute(query)})
        results = []
        for arrival in arrivals:
            incident, joined, row = _open_or_join_known(
                session,
                arrival,
                at=at,
                incident_id=None,
                open_row=open_rows.get(arrival.fingerprint),
                count=counts.get(arrival.fingerprint, 0),
            )
            if not joined:
                open_rows[arrival.fingerprint] = row
                counts[arrival.fingerprint] = counts.get(arrival.fingerprint, 0) + 1
            results.append((incident, joined))
    return results


def _open_or_join_known(
    session: Session,
    arrival: Arrival,
    *,
    at: float,
    incident_id: IncidentId | None,
    open_row: schema.IncidentRow | None,
    count: int | None,
) -> tuple[Incident, bool, schema.IncidentRow]:
    fingerprint = arrival.fingerprint
    row = open_row
    if row is not None:
        row.alert_count += 1
        row.last_alert_at = row.updated_at = at
        # The joining alert's own labels: with `alerts.group_by` they differ per alert (the
        # pod), and the audit then says which alert each join was.
        payload = {
            "fingerprint": fingerprint,
            "alert_count": row.alert_count,
            "alert_labels": to_json(arrival.labels),
        }
        if arrival.sender is not None:
            payload["sender"] = arrival.sender
        audit.append_in(session, kind="incident.joined", subject=row.id, payload=payload, at=at)
        return incident_of(row), True, row
    if count is None:
        count = session.scalar(
            select(func.count()).where(schema.IncidentRow.fingerprint == fingerprint)
        )
    target = arrival.target
    row = schema.IncidentRow(
        id=incident_id or f"{fingerprint}-{(count or 0) + 1}",
        fingerprint=fingerprint,
        alert_name=arrival.alert_name,
        labels=to_json(arrival.labels),
        annotations=to_json(arrival.annotations),
        state=IncidentState.OPEN.value,
        opened_at=at,
        onset_at=at if arrival.onset_at is None else arrival.onset_at,
        updated_at=at,
        target_kind=target.kind if target else None,
        target_namespace=target.namespace if target else None,
        target_name=target.name if target else None,
        alert_count=1,
        last_alert_at=at,
    )
    session.add(row)
    payload = {
        "fingerprint": fingerprint,
        "alert_name": arrival.alert_name,
        "labels": row.labels,
        "annotations": row.annotations,
        "onset_at": row.onset_at,
        "target": [row.target_kind, row.target_namespace, row.target_name],
    }
    if arrival.sender is not None:
        payload["sender"] = arrival.sender
    audit.append_in(session, kind="incident.opened", subject=row.id, payload=payload, at=at)
    return incident_of(row), False, row


def set_state_in(
    session: Session,
    incident_id: IncidentId,
    state: IncidentState,
    *,
    at: float,
    reason: str,
    allowed_from: Collection[IncidentState] | None = None,
) -> Incident:
    """`Incidents.set_state` inside a write transaction the caller holds."""
    row = get_row(session, schema.IncidentRow, incident_id)
    current = IncidentState(row.state)
    if current == state or (allowed_from is not None and current not in allowed_from):
        return incident_of(row)
    if current is IncidentState.RESOLVED:
        raise PermanentError(f"incident {incident_id} is resolved and cannot become {state}")
    row.state, row.updated_at = state.value, at
    payload = {"from": current.value, "to": state.value, "reason": reason}
    audit.append_in(session, kind="incident.state", subject=incident_id, payload=payload, at=at)
    return incident_of(row)


class Incidents:
    """`store.incidents`: at most one open incident per fingerprint."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def open_or_join(
        self,
        fingerprint: Fingerprint,
        *,
        alert_name: str,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        at: float,
        onset_at: float | None = None,
        target: Target | None = None,
        incident_id: IncidentId | None = None,
        sender: str | None = None,
    ) -> tuple[Incident, bool]:
        """Join the open incident with this fingerprint, or open one; `True` if joined.

        A join counts the alert (`alert_count`) and keeps everything else. A new incident's
        id is `incident_id`, or `<fingerprint>-<n>` for its fingerprint's n-th incident.
        """
        arrival = Arrival(fingerprint, alert_name, labels, annotations, onset_at, target, sender)
        with self._store.write() as session:
            return open_or_join_in(session, arrival, at=at, incident_id=incident_id)

    def open_or_join_many(
        self, arrivals: Sequence[Arrival], *, at: float
    ) -> list[tuple[Incident, bool]]:
        """`open_or_join` for many alerts in one transaction, in order (an alert storm)."""
        with self._store.write() as session:
            return open_or_join_all_in(session, arrivals, at=at)

    def set_state(
        self,
        incident_id: IncidentId,
        state: IncidentState,
        *,
        at: float,
        reason: str = "",
        allowed_from: Collection[IncidentState] | None = None,
    ) -> Incident:
        """Move an incident to `state`; setting the state it is in changes nothing.

        With `allowed_from`, an incident in any other state is left as it is; the check and
        the move are one transaction, so a concurrent move cannot slip in between. A
        resolved incident stays resolved: a new alert opens a new incident.
        """
        with self._store.write() as session:
            return set_state_in(
                session, incident_id, state, at=at, reason=reason, allowed_from=allowed_from
            )

    def claim(
        self,
        incident_id: IncidentId,
        state: IncidentState,
        *,
        at: float,
        reason: str,
        allowed_from: Collection[IncidentState],
    ) -> Incident | None:
        """Move an incident into `state` from another allowed state; None unless this call did.

        Two replicas deciding one incident both ask; the write lock lets one in first, and
        the other finds it already moved: exactly one of them goes on.
        """
        allowed = frozenset(allowed_from) - {state}
        with self._store.write() as session:
            row = get_row(session, schema.IncidentRow, incident_id)
            if IncidentState(row.state) not in allowed:
                return None
            return set_state_in(session, incident_id, state, at=at, reason=reason)

    def set_state_many(
        self,
        moves: Sequence[tuple[IncidentId, IncidentState, str]],
        *,
        at: float,
        allowed_from: Collection[IncidentState],
    ) -> list[Incident]:
        """Several `set_state`s in one transaction; each incident as it is afterwards."""
        with self._store.write() as session, session.no_autoflush:
            prefetch_in(session, [incident_id for incident_id, _, _ in moves])
            return [
                set_state_in(
                    session, incident_id, state, at=at, reason=reason, allowed_from=allowed_from
                )
                for incident_id, state, reason in moves
            ]

    def get(self, incident_id: IncidentId) -> Incident:
        with self._store.read() as session:
            return incident_of(get_row(session, schema.IncidentRow, incident_id))

    def find(self, incident_id: str) -> Incident | None:
        """The incident with this id, or None (for ids that come from outside)."""
        with self._store.read() as session:
            row = session.get(schema.IncidentRow, incident_id)
            return None if row is None else incident_of(row)

    def quiet(self, *, states: Collection[IncidentState]) -> tuple[Incident, ...]:
        """Incidents in `states` that no sender's alert keeps firing, oldest first.

        Read in one snapshot with the senders' alert states (`alert_states`), so an incident
        opened with its firing alert in one transaction is never taken for quiet. The
        caller still checks the alerts selfheal evaluates itself (rules, watches).
        """
        firing = select(schema.AlertStateRow.incident_key).where(
            schema.AlertStateRow.incident_key == schema.IncidentRow.fingerprint,
            schema.AlertStateRow.firing,
        )
        query = (
            select(schema.IncidentRow)
            .where(
                schema.IncidentRow.state.in_([state.value for state in states]),
                ~firing.exists(),
            )
            .order_by(schema.IncidentRow.opened_at, schema.IncidentRow.id)
        )
        with self._store.read() as session:
            return tuple(incident_of(row) for row in session.scalars(query))

    def find_many(self, incident_ids: Sequence[str]) -> dict[str, Incident]:
        """The incidents with these ids that exist, by id."""
        found: dict[str, Incident] = {}
        with self._store.read() as session:
            for chunk in _chunks(list(dict.fromkeys(incident_ids))):
                query = select(schema.IncidentRow).where(schema.IncidentRow.id.in_(chunk))
                found.update((row.id, incident_of(row)) for row in session.scalars(query))
        return found

    def undecided(self, *, opened_before: float | None = None) -> tuple[Incident, ...]:
        """Open incidents that no decision was recorded for, oldest first.

        After a crash between opening an incident and deciding on it, these are the ones a
        restart must still decide. With `opened_before`, only those opened before then
        (younger ones may be on their way to a live replica's decision).
        """
        decided = select(schema.DecisionRow.id).where(
            schema.DecisionRow.incident_id == schema.IncidentRow.id
        )
        query = (
            select(schema.IncidentRow)
            .where(schema.IncidentRow.state == IncidentState.OPEN.value, ~decided.exists())
            .order_by(schema.IncidentRow.opened_at, schema.IncidentRow.id)
        )
        if opened_before is not None:
            query = query.where(schema.IncidentRow.opened_at < opened_before)
        with self._store.read() as session:
            return tuple(incident_of(row) for row in session.scalars(query))

    def open_for(self, fingerprint: Fingerprint) -> Incident | None:
        with self._store.read() as session:
            row = session.scalar(_open_query(fingerprint))
            return None if row is None else incident_of(row)

    def list(
        self,
        *,
        state: IncidentState | None = None,
        states: Sequence[IncidentState] | None = None,
        open_only: bool = False,
        limit: int | None = None,
        updated_before: float | None = None,
    ) -> tuple[Incident, ...]:
        """Incidents oldest first, optionally only those in `state(s)` or not yet resolved.

        With `limit`, the newest `limit` of them (still oldest first); with
        `updated_before`, only those that have not changed since then.
        """
        query = select(schema.IncidentRow)
        if updated_before is not None:
            query = query.where(schema.IncidentRow.updated_at < updated_before)
        wanted = [state] if state is not None else list(states or [])
        if wanted:
            query = query.where(schema.IncidentRow.state.in_([s.value for s in wanted]))
        if open_only:
            query = query.where(schema.IncidentRow.state != IncidentState.RESOLVED.value)
        if limit is not None:
            newest = (schema.IncidentRow.opened_at.desc(), schema.IncidentRow.id.desc())
            with self._store.read() as session:
                rows = list(session.scalars(query.order_by(*newest).limit(limit)))
            return tuple(incident_of(row) for row in reversed(rows))
        order = (schema.IncidentRow.opened_at, schema.IncidentRow.id)
        with self._store.read() as session:
            return tuple(incident_of(row) for row in session.scalars(query.order_by(*order)))


def prefetch_in(session: Session, incident_ids: Sequence[str]) -> None:
    """Load these incidents into the session at once, so each later lookup costs no query.

    The rows are held in `session.info` for the transaction's life: the session's identity
    map only keeps objects something else refers to.
    """
    held: list[schema.IncidentRow] = session.info.setdefault(_PREFETCHED, [])
    for chunk in _chunks(list(dict.fromkeys(incident_ids))):
        held += session.scalars(
            select(schema.IncidentRow).where(schema.IncidentRow.id.in_(chunk))
        ).all()


_PREFETCHED = "selfheal.prefetched_incidents"


def _chunks(items: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    """`items` in slices small enough for any database's limit on query parameters."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def _open_query(fingerprint: str) -> Select[schema.IncidentRow]:
    return select(schema.IncidentRow).where(
        schema.IncidentRow.fingerprint == fingerprint,
        schema.IncidentRow.state != IncidentState.RESOLVED.value,
    )


def incident_of(row: schema.IncidentRow) -> Incident:
    """The domain incident of a row."""
    kind, namespace, name = row.target_kind, row.target_namespace, row.target_name
    target = (
        None if kind is None or namespace is None or name is None else Target(kind, namespace, name)
    )
    return Incident(
        id=IncidentId(row.id),
        fingerprint=Fingerprint(row.fingerprint),
        alert_name=row.alert_name,
        labels=row.labels,
        annotations=row.annotations,
        state=IncidentState(row.state),
        opened_at=row.opened_at,
        onset_at=row.onset_at,
        target=target,
        alert_count=row.alert_count,
    )
