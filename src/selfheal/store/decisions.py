"""`store.decisions`: every policy evaluation with its input, output and bundle hash.

A guardrail refusal is recorded as a decision of its own (no plans, the refusals in its
output), so the record of why nothing ran sits beside the record of what the policy chose.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from selfheal.domain.model import Decision, IncidentId, IncidentState, Plan
from selfheal.store import audit, schema
from selfheal.store.incidents import prefetch_in, set_state_in
from selfheal.store.rows import to_json

if TYPE_CHECKING:
    from selfheal.store.database import Store


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision as stored: plans as the JSON objects the audit chain hashed."""

    id: int
    incident_id: IncidentId
    plans: tuple[Mapping[str, Any], ...]
    deny: tuple[str, ...]
    requires_approval: bool
    policy_input: Mapping[str, Any]
    policy_output: Mapping[str, Any]
    bundle_hash: str
    decided_at: float

    @property
    def refusals(self) -> list[Mapping[str, Any]]:
        """The guardrails' refusals, when this decision records them (else empty)."""
        found = self.policy_output.get("refusals")
        return list(found) if isinstance(found, list) else []


class Decisions:
    """`store.decisions`: every policy evaluation with its input and bundle hash."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def record(self, decision: Decision) -> int:
        """Store a decision and return its id."""
        with self._store.write() as session:
            return record_in(session, decision)

    def record_many(
        self,
        decisions: Sequence[Decision],
        *,
        moves: Sequence[tuple[IncidentId, IncidentState, str]] = (),
        allowed_from: Collection[IncidentState] = (),
        at: float,
    ) -> None:
        """Store decisions, and the incident moves they settle, in one transaction.

        A storm's decisions cost one transaction, not one per incident; a move applies only
        to an incident still in one of `allowed_from` (see `Incidents.set_state`).
        """
        # Rows are built (their JSON made canonical) before the write lock is taken: the
        # other writers, the webhook's included, need not wait for that part.
        rows = [_row(decision) for decision in decisions]
        with self._store.write() as session:
            prefetch_in(session, [incident_id for incident_id, _, _ in moves])
            session.add_all(rows)
            session.flush()  # one batch insert gives every row its id
            with session.no_autoflush:
                for decision, row in zip(decisions, rows, strict=True):
                    _audit_in(session, decision, row)
                for incident_id, state, reason in moves:
                    set_state_in(
                        session,
                        incident_id,
                        state,
                        at=at,
                        reason=reason,
                        allowed_from=allowed_from,
                    )

    def list(self, *, incident_id: IncidentId | None = None) -> tuple[DecisionRecord, ...]:
        """Decisions in the order they were made, optionally only one incident's."""
        query = select(schema.DecisionRow).order_by(
            schema.DecisionRow.decided_at, schema.DecisionRow.id
        )
        if incident_id is not None:
            query = query.where(schema.DecisionRow.incident_id == incident_id)
        with self._store.read() as session:
            return tuple(_record(row) for row in session.scalars(query))


def record_in(session: Session, decision: Decision) -> int:
    """`Decisions.record` inside a write transaction the caller holds."""
    row = _row(decision)
    session.add(row)
    session.flush()
    _audit_in(session, decision, row)
    return int(row.id)


def _row(decision: Decision) -> schema.DecisionRow:
    return schema.DecisionRow(
        incident_id=decision.incident_id,
        policy_input=to_json(decision.policy_input),
        policy_output=to_json(decision.policy_output),
        bundle_hash=decision.bundle_hash,
        plans=[to_json(_plan_json(plan)) for plan in decision.plans],
        deny=list(decision.deny),
        requires_approval=decision.requires_approval,
        decided_at=decision.decided_at,
    )


def _audit_in(session: Session, decision: Decision, row: schema.DecisionRow) -> None:
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


def _plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "runbook": plan.runbook,
        "params": plan.params,
        "risk": plan.risk,
        "reason": plan.reason,
    }


def _record(row: schema.DecisionRow) -> DecisionRecord:
    return DecisionRecord(
        id=row.id,
        incident_id=IncidentId(row.incident_id),
        plans=tuple(row.plans),
        deny=tuple(str(reason) for reason in row.deny),
        requires_approval=row.requires_approval,
        policy_input=row.policy_input,
        policy_output=row.policy_output,
        bundle_hash=row.bundle_hash,
        decided_at=row.decided_at,
    )
