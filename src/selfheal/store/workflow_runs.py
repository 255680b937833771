"""`store.workflows`: runbook runs, keyed by workflow id so that a start is idempotent."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from selfheal.domain.errors import PermanentError
from selfheal.domain.model import IncidentId, IncidentState, Outcome, WorkflowId
from selfheal.store import audit, schema
from selfheal.store.incidents import set_state_in
from selfheal.store.rows import get_row, to_json

if TYPE_CHECKING:
    from selfheal.store.database import Store


class RunStatus(enum.StrEnum):
    """Where a workflow run stands; every status but `running` is final."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


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
        incident_move: IncidentMove | None = None,
    ) -> tuple[WorkflowRun, bool]:
        """Record a run as started; `False` (and the existing run) if this id already ran.

        With `incident_move`, the incident moves in the same transaction (when its state
        allows), so a crash cannot leave a run without its incident's move or the reverse.
        """
        with self._store.write() as session:
            if incident_move is not None:
                _move(session, incident_id, incident_move, at=at)
            existing = session.get(schema.WorkflowRunRow, workflow_id)
            if existing is not None:
                return _run(existing), False
            row = schema.WorkflowRunRow(
                workflow_id=workflow_id,
                incident_id=incident_id,
                runbook=runbook,
                params=to_json(params),
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
        incident_move: IncidentMove | None = None,
    ) -> WorkflowRun:
        """Record how a run ended. Finishing it again the same way changes nothing.

        With `incident_move`, the run's incident moves in the same transaction.
        """
        if status is RunStatus.RUNNING:
            raise ValueError("a run finishes with a final status, not 'running'")
        with self._store.write() as session:
            row = get_row(session, schema.WorkflowRunRow, workflow_id)
            if incident_move is not None:
                _move(session, IncidentId(row.incident_id), incident_move, at=at)
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

    def list(self) -> tuple[WorkflowRun, ...]:
        """Every run, oldest first."""
        query = select(schema.WorkflowRunRow).order_by(schema.WorkflowRunRow.started_at)
        with self._store.read() as session:
            return tuple(_run(row) for row in session.scalars(query))


@dataclass(frozen=True, slots=True)
class IncidentMove:
    """An incident state change to make with a run's record, if the incident allows it."""

    state: IncidentState
    reason: str
    allowed_from: frozenset[IncidentState]


def _move(session: Session, incident_id: IncidentId, move: IncidentMove, *, at: float) -> None:
    set_state_in(
        session, incident_id, move.state, at=at, reason=move.reason, allowed_from=move.allowed_from
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
