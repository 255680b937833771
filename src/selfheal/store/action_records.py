"""`store.actions`: each effect recorded under its idempotency key before it happens.

A record in `started` after a crash means the effect may have happened: whoever finds it
must read the world back before acting again, never repeat the effect blindly.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select

from selfheal.domain.errors import PermanentError
from selfheal.domain.model import WorkflowId
from selfheal.store import audit, schema
from selfheal.store.rows import RecordNotFound, to_json

if TYPE_CHECKING:
    from selfheal.store.database import Store


class ActionStatus(enum.StrEnum):
    """Where an action stands. `started` after a crash means the effect may have happened."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


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

    @property
    def output(self) -> Mapping[str, Any]:
        """What the step returned (empty for a step that has not completed)."""
        found = (self.result or {}).get("output")
        return found if isinstance(found, Mapping) else {}


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
                params=to_json(params),
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
            stored = to_json(result)
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

    def list(
        self, *, workflow_id: WorkflowId | None = None, kind: str | None = None
    ) -> tuple[ActionRecord, ...]:
        """Actions in the order they began, optionally of one run or one step type."""
        query = select(schema.ActionRow).order_by(schema.ActionRow.id)
        if workflow_id is not None:
            query = query.where(schema.ActionRow.workflow_id == workflow_id)
        if kind is not None:
            query = query.where(schema.ActionRow.kind == kind)
        with self._store.read() as session:
            return tuple(_action(row) for row in session.scalars(query))


def _action_query(idempotency_key: str) -> Select[schema.ActionRow]:
    return select(schema.ActionRow).where(schema.ActionRow.idempotency_key == idempotency_key)


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
