"""Repositories: what the loop reads from and writes to the store, one class per table.

Each write runs in one write transaction (which holds the store's write lock, see
`database.py`) together with the audit record that describes it, so the tables and the
audit chain can never disagree: both commit, or neither does. Reads and writes return domain
dataclasses or the frozen records below, never ORM objects, so no caller holds a session.

JSON columns are stored through the audit chain's canonical JSON, so a table row holds
exactly the value its audit record hashed. Times are scenario seconds given by the caller.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from selfheal.domain.errors import GuardrailViolation, PermanentError
from selfheal.domain.model import (
    Decision,
    Fingerprint,
    Incident,
    IncidentId,
    IncidentState,
    Outcome,
    Plan,
    Target,
    WorkflowId,
)
from selfheal.store import audit, schema

if TYPE_CHECKING:
    from selfheal.store.database import Store


class RecordNotFound(PermanentError):
    """The record asked for does not exist; retrying will not create it."""


class RunStatus(enum.StrEnum):
    """Where a workflow run stands; every status but `running` is final."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ActionStatus(enum.StrEnum):
    """Where an action stands. `started` after a crash means the effect may have happened."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class WorkflowRun:
    """A runbook run: its idempotency key (`workflow_id`), status and outcome."""

    workflow_id: WorkflowId
    incident_id: IncidentId
    runbook: str
    params: Mapping[str, Any]
    status: RunStatus
    started_at: float
    finished_at: float | None
    outcome: Outcome | None


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """An action's record, keyed by its idempotency key."""

    idempotency_key: str
    workflow_id: WorkflowId
    step: str
    kind: str
    target: str
    params: Mapping[str, Any]
    result: Mapping[str, Any] | None
    status: ActionStatus
    started_at: float
    finished_at: float | None


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


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One charge in the budget ledger."""

    id: int
    day: str
    amount: float
    currency: str
    reason: str
    incident_id: IncidentId | None
    created_at: float


def day_of(at: float) -> str:
    """The budget day ('YYYY-MM-DD', UTC) that a scenario time falls on."""
    return datetime.datetime.fromtimestamp(at, tz=datetime.UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class Arrival:
    """A firing alert on its way into an incident: what `open_or_join` needs of it."""

    fingerprint: Fingerprint
    alert_name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    onset_at: float | None = None
    target: Target | None = None


def _open_or_join_in(
    session: Session, arrival: Arrival, *, at: float, incident_id: IncidentId | None = None
) -> tuple[Incident, bool]:
    fingerprint = arrival.fingerprint
    row = session.scalar(_open_query(fingerprint))
    if row is not None:
        row.alert_count += 1
        row.last_alert_at = row.updated_at = at
        # The joining alert's own labels: with `alerts.group_by` they differ per alert (the
        # pod), and the audit then says which alert each join was.
        payload = {
            "fingerprint": fingerprint,
            "alert_count": row.alert_count,
            "alert_labels": _json(arrival.labels),
        }
        audit.append_in(session, kind="incident.joined", subject=row.id, payload=payload, at=at)
        return _incident(row), True
    count = session.scalar(
        select(func.count()).where(schema.IncidentRow.fingerprint == fingerprint)
    )
    target = arrival.target
    row = schema.IncidentRow(
        id=incident_id or f"{fingerprint}-{(count or 0) + 1}",
        fingerprint=fingerprint,
        alert_name=arrival.alert_name,
        labels=_json(arrival.labels),
        annotations=_json(arrival.annotations),
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
    session.flush()
    payload = {
        "fingerprint": fingerprint,
        "alert_name": arrival.alert_name,
        "labels": row.labels,
        "annotations": row.annotations,
        "onset_at": row.onset_at,
        "target": [row.target_kind, row.target_namespace, row.target_name],
    }
    audit.append_in(session, kind="incident.opened", subject=row.id, payload=payload, at=at)
    return _incident(row), False


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
    ) -> tuple[Incident, bool]:
        """Join the open incident with this fingerprint, or open one; `True` if joined.

        A join counts the alert (`alert_count`) and keeps everything else. A new incident's
        id is `incident_id`, or `<fingerprint>-<n>` for its fingerprint's n-th incident.
        """
        arrival = Arrival(fingerprint, alert_name, labels, annotations, onset_at, target)
        with self._store.write() as session:
            return _open_or_join_in(session, arrival, at=at, incident_id=incident_id)

    def open_or_join_many(
        self, arrivals: Sequence[Arrival], *, at: float
    ) -> list[tuple[Incident, bool]]:
        """`open_or_join` for many alerts in one transaction, in order (an alert storm)."""
        with self._store.write() as session:
            return [_open_or_join_in(session, arrival, at=at) for arrival in arrivals]

    def set_state(
        self, incident_id: IncidentId, state: IncidentState, *, at: float, reason: str = ""
    ) -> Incident:
        """Move an incident to `state`; setting the state it is in changes nothing.

        A resolved incident stays resolved: a new alert opens a new incident.
        """
        with self._store.write() as session:
            row = _get(session, schema.IncidentRow, incident_id)
            current = IncidentState(row.state)
            if current == state:
                return _incident(row)
            if current is IncidentState.RESOLVED:
                raise PermanentError(
                    f"incident {incident_id} is resolved and cannot become {state}"
                )
            row.state, row.updated_at = state.value, at
            payload = {"from": current.value, "to": state.value, "reason": reason}
            audit.append_in(
                session, kind="incident.state", subject=incident_id, payload=payload, at=at
            )
            return _incident(row)

    def get(self, incident_id: IncidentId) -> Incident:
        with self._store.read() as session:
            return _incident(_get(session, schema.IncidentRow, incident_id))

    def open_for(self, fingerprint: Fingerprint) -> Incident | None:
        with self._store.read() as session:
            row = session.scalar(_open_query(fingerprint))
            return None if row is None else _incident(row)

    def list(
        self, *, state: IncidentState | None = None, open_only: bool = False
    ) -> tuple[Incident, ...]:
        """Incidents oldest first, optionally only those in `state` or not yet resolved."""
        query = select(schema.IncidentRow)
        if state is not None:
            query = query.where(schema.IncidentRow.state == state.value)
        if open_only:
            query = query.where(schema.IncidentRow.state != IncidentState.RESOLVED.value)
        order = (schema.IncidentRow.opened_at, schema.IncidentRow.id)
        with self._store.read() as session:
            return tuple(_incident(row) for row in session.scalars(query.order_by(*order)))


class Decisions:
    """`store.decisions`: every policy evaluation with its input and bundle hash."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def record(self, decision: Decision) -> int:
        """Store a decision and return its id."""
        with self._store.write() as session:
            row = schema.DecisionRow(
                incident_id=decision.incident_id,
                policy_input=_json(decision.policy_input),
                policy_output=_json(decision.policy_output),
                bundle_hash=decision.bundle_hash,
                plans=[_json(_plan_json(plan)) for plan in decision.plans],
                deny=list(decision.deny),
                requires_approval=decision.requires_approval,
                decided_at=decision.decided_at,
            )
            session.add(row)
            session.flush()
            payload = {
                "decision_id": row.id,
                "bundle_hash": row.bundle_hash,
                "policy_input": row.policy_input,
                "policy_output": row.policy_output,
                "plans": row.plans,
                "deny": row.deny,
                "requires_approval": row.requires_approval,
            }
            audit.append_in(
                session,
                kind="decision.recorded",
                subject=decision.incident_id,
                payload=payload,
                at=decision.decided_at,
            )
            return row.id


class WorkflowRuns:
    """`store.workflows`: runbook runs, keyed by workflow id so a start is idempotent."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def start(
        self,
        workflow_id: WorkflowId,
        *,
        incident_id: IncidentId,
        runbook: str,
        params: Mapping[str, Any],
        at: float,
    ) -> tuple[WorkflowRun, bool]:
        """Record a run as started; `False` (and the existing run) if this id already ran."""
        with self._store.write() as session:
            existing = session.get(schema.WorkflowRunRow, workflow_id)
            if existing is not None:
                return _run(existing), False
            row = schema.WorkflowRunRow(
                workflow_id=workflow_id,
                incident_id=incident_id,
                runbook=runbook,
                params=_json(params),
                status=RunStatus.RUNNING.value,
                started_at=at,
            )
            session.add(row)
            session.flush()
            payload = {"incident_id": incident_id, "runbook": runbook, "params": row.params}
            audit.append_in(
                session, kind="workflow.started", subject=workflow_id, payload=payload, at=at
            )
            return _run(row), True

    def finish(
        self,
        workflow_id: WorkflowId,
        *,
        status: RunStatus,
        at: float,
        outcome: Outcome | None = None,
    ) -> WorkflowRun:
        """Record how a run ended. Finishing it again the same way changes nothing."""
        if status is RunStatus.RUNNING:
            raise ValueError("a run finishes with a final status, not 'running'")
        with self._store.write() as session:
            row = _get(session, schema.WorkflowRunRow, workflow_id)
            wanted = (status.value, outcome.value if outcome else None)
            if row.status != RunStatus.RUNNING.value:
                if (row.status, row.outcome) == wanted:
                    return _run(row)
                raise PermanentError(
                    f"workflow {workflow_id} already finished as {row.status}/{row.outcome}"
                )
            row.status, row.outcome, row.finished_at = *wanted, at
            payload = {"incident_id": row.incident_id, "status": wanted[0], "outcome": wanted[1]}
            audit.append_in(
                session, kind="workflow.finished", subject=workflow_id, payload=payload, at=at
            )
            return _run(row)

    def find(self, workflow_id: WorkflowId) -> WorkflowRun | None:
        with self._store.read() as session:
            row = session.get(schema.WorkflowRunRow, workflow_id)
            return None if row is None else _run(row)

    def of_incident(self, incident_id: IncidentId) -> tuple[WorkflowRun, ...]:
        """An incident's runs, oldest first."""
        query = select(schema.WorkflowRunRow).where(
            schema.WorkflowRunRow.incident_id == incident_id
        )
        with self._store.read() as session:
            rows = session.scalars(query.order_by(schema.WorkflowRunRow.started_at))
            return tuple(_run(row) for row in rows)

    def since(self, at: float) -> tuple[WorkflowRun, ...]:
        """Runs started after `at`, and every run still running however old, oldest first."""
        query = select(schema.WorkflowRunRow).where(
            (schema.WorkflowRunRow.started_at > at)
            | (schema.WorkflowRunRow.status == RunStatus.RUNNING.value)
        )
        with self._store.read() as session:
            rows = session.scalars(query.order_by(schema.WorkflowRunRow.started_at))
            return tuple(_run(row) for row in rows)


class Actions:
    """`store.actions`: each effect recorded under its idempotency key before it happens."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def begin(
        self,
        idempotency_key: str,
        *,
        workflow_id: WorkflowId,
        step: str,
        kind: str,
        target: str,
        params: Mapping[str, Any],
        at: float,
    ) -> tuple[ActionRecord, bool]:
        """Record an action about to happen; `False` (and the record) if the key is known.

        On `False` the caller must not repeat the effect blindly: a `succeeded` record
        carries the result, and a `started` one may have taken effect before a crash.
        """
        with self._store.write() as session:
            existing = session.scalar(_action_query(idempotency_key))
            if existing is not None:
                return _action(existing), False
            row = schema.ActionRow(
                workflow_id=workflow_id,
                step=step,
                kind=kind,
                target=target,
                params=_json(params),
                status=ActionStatus.STARTED.value,
                idempotency_key=idempotency_key,
                started_at=at,
            )
            session.add(row)
            session.flush()
            payload = {
                "workflow_id": workflow_id,
                "step": step,
                "kind": kind,
                "target": target,
                "params": row.params,
            }
            audit.append_in(
                session, kind="action.begun", subject=idempotency_key, payload=payload, at=at
            )
            return _action(row), True

    def complete(
        self,
        idempotency_key: str,
        *,
        status: ActionStatus,
        result: Mapping[str, Any],
        at: float,
    ) -> ActionRecord:
        """Record an action's result. Completing it again the same way changes nothing."""
        if status is ActionStatus.STARTED:
            raise ValueError("an action completes as succeeded or failed, not 'started'")
        with self._store.write() as session:
            row = session.scalar(_action_query(idempotency_key))
            if row is None:
                raise RecordNotFound(f"no action has idempotency key {idempotency_key!r}")
            stored = _json(result)
            if row.status != ActionStatus.STARTED.value:
                if (row.status, row.result) == (status.value, stored):
                    return _action(row)
                raise PermanentError(f"action {idempotency_key!r} already {row.status}")
            row.status, row.result, row.finished_at = status.value, stored, at
            payload = {"workflow_id": row.workflow_id, "status": status.value, "result": stored}
            audit.append_in(
                session, kind="action.completed", subject=idempotency_key, payload=payload, at=at
            )
            return _action(row)

    def find(self, idempotency_key: str) -> ActionRecord | None:
        with self._store.read() as session:
            row = session.scalar(_action_query(idempotency_key))
            return None if row is None else _action(row)


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
    ) -> NotificationRecord:
        with self._store.write() as session:
            row = schema.NotificationRow(
                incident_id=incident_id,
                channel=channel,
                recipient=recipient,
                message=message,
                payload=_json(payload),
                created_at=at,
                delivered=delivered,
                error=error,
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

    def list(self, *, incident_id: IncidentId | None = None) -> tuple[NotificationRecord, ...]:
        """Notifications oldest first, optionally only one incident's."""
        query = select(schema.NotificationRow).order_by(schema.NotificationRow.id)
        if incident_id is not None:
            query = query.where(schema.NotificationRow.incident_id == incident_id)
        with self._store.read() as session:
            return tuple(_notification(row) for row in session.scalars(query))


class BudgetLedger:
    """`store.budget`: remediation costs per day, charged against an optional limit."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def spent_on(self, day: str, *, currency: str = "USD") -> float:
        _check_day(day)
        with self._store.read() as session:
            return _spent(session, day=day, currency=currency)

    def charge(
        self,
        *,
        day: str,
        amount: float,
        currency: str,
        reason: str,
        at: float,
        incident_id: IncidentId | None = None,
        limit: float | None = None,
    ) -> LedgerEntry:
        """Charge `amount` to `day`; with `limit`, refuse a charge that would exceed it.

        The check and the charge are one transaction, so concurrent charges cannot
        together overspend the limit.
        """
        _check_day(day)
        if not math.isfinite(amount):
            raise ValueError(f"a charge is a finite amount, not {amount}")
        with self._store.write() as session:
            spent = _spent(session, day=day, currency=currency)
            if limit is not None and spent + amount > limit:
                raise GuardrailViolation(
                    f"budget for {day}: {spent:g} {currency} spent, {amount:g} more would "
                    f"exceed the limit of {limit:g} ({reason})"
                )
            row = schema.BudgetLedgerRow(
                day=day,
                amount=amount,
                currency=currency,
                reason=reason,
                incident_id=incident_id,
                created_at=at,
            )
            session.add(row)
            session.flush()
            payload = {
                "entry_id": row.id,
                "amount": amount,
                "currency": currency,
                "reason": reason,
                "incident_id": incident_id,
            }
            audit.append_in(session, kind="budget.charged", subject=day, payload=payload, at=at)
            return _entry(row)


def _json(value: Mapping[str, Any]) -> dict[str, Any]:
    normalized: dict[str, Any] = json.loads(audit.canonical_json(value))
    return normalized


_Row = TypeVar("_Row", bound=schema.Base)


def _get(session: Session, model: type[_Row], key: str) -> _Row:
    row = session.get(model, key)
    if row is None:
        raise RecordNotFound(f"no {model.__tablename__} record {key!r}")
    return row


def _open_query(fingerprint: str) -> Select[schema.IncidentRow]:
    return select(schema.IncidentRow).where(
        schema.IncidentRow.fingerprint == fingerprint,
        schema.IncidentRow.state != IncidentState.RESOLVED.value,
    )


def _action_query(idempotency_key: str) -> Select[schema.ActionRow]:
    return select(schema.ActionRow).where(schema.ActionRow.idempotency_key == idempotency_key)


def _spent(session: Session, *, day: str, currency: str) -> float:
    ledger = schema.BudgetLedgerRow
    total = session.scalar(
        select(func.coalesce(func.sum(ledger.amount), 0.0)).where(
            ledger.day == day, ledger.currency == currency
        )
    )
    return float(total or 0.0)


def _check_day(day: str) -> None:
    try:
        parsed = datetime.date.fromisoformat(day)
    except ValueError:
        parsed = None
    if parsed is None or parsed.isoformat() != day:
        raise ValueError(f"a budget day is written YYYY-MM-DD, not {day!r}")


def _plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "runbook": plan.runbook,
        "params": plan.params,
        "risk": plan.risk,
        "reason": plan.reason,
    }


def _incident(row: schema.IncidentRow) -> Incident:
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


def _run(row: schema.WorkflowRunRow) -> WorkflowRun:
    return WorkflowRun(
        workflow_id=WorkflowId(row.workflow_id),
        incident_id=IncidentId(row.incident_id),
        runbook=row.runbook,
        params=row.params,
        status=RunStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        outcome=None if row.outcome is None else Outcome(row.outcome),
    )


def _action(row: schema.ActionRow) -> ActionRecord:
    return ActionRecord(
        idempotency_key=row.idempotency_key,
        workflow_id=WorkflowId(row.workflow_id),
        step=row.step,
        kind=row.kind,
        target=row.target,
        params=row.params,
        result=row.result,
        status=ActionStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


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
    )


def _entry(row: schema.BudgetLedgerRow) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        day=row.day,
        amount=row.amount,
        currency=row.currency,
        reason=row.reason,
        incident_id=None if row.incident_id is None else IncidentId(row.incident_id),
        created_at=row.created_at,
    )
