"""Incidents and their audit records as JSON documents: what the CLI and the API show.

One rendering for both, so `selfheal incidents list --json`, `GET /api/v1/incidents` and
the pages built on them agree field for field. Times are scenario seconds since the Unix
epoch, as the store keeps them (`opened_at`), plus the same instant in ISO 8601 UTC
(`opened_at_iso`) for people and tools that read dates.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from selfheal.domain.model import Incident, IncidentId, IncidentState
from selfheal.store import AuditRecord, Store

__all__ = [
    "StoreIncidentBook",
    "audit_record",
    "incident_detail",
    "incident_list",
    "incident_summary",
    "iso",
]


def iso(at: float | None) -> str | None:
    """`at` (seconds since the epoch) as ISO 8601 UTC with milliseconds."""
    if at is None:
        return None
    moment = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def incident_summary(incident: Incident) -> dict[str, Any]:
    """An incident as one list entry: what it is about and where it stands."""
    target = incident.target
    return {
        "id": incident.id,
        "state": str(incident.state),
        "alertname": incident.alert_name,
        "labels": dict(incident.labels),
        "annotations": dict(incident.annotations),
        "target": None if target is None else f"{target.namespace}/{target.name}",
        "fingerprint": incident.fingerprint,
        "opened_at": incident.opened_at,
        "opened_at_iso": iso(incident.opened_at),
        "onset_at": incident.onset_at,
        "alerts": incident.alert_count,
    }


def incident_list(
    store: Store,
    *,
    states: Sequence[IncidentState] | None = None,
    open_only: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Incidents oldest first (the newest `limit` of them), as summaries."""
    found = store.incidents.list(states=states, open_only=open_only, limit=limit)
    return [incident_summary(incident) for incident in found]


def incident_detail(store: Store, incident_id: str) -> dict[str, Any] | None:
    """Everything about one incident: its decisions, runs, steps, notifications, approvals."""
    incident = store.incidents.find(incident_id)
    if incident is None:
        return None
    runs = store.workflows.of_incident(IncidentId(incident_id))
    return {
        **incident_summary(incident),
        "decisions": [
            {
                "decided_at": decision.decided_at,
                "plans": [dict(plan) for plan in decision.plans],
                "deny": list(decision.deny),
                "requires_approval": decision.requires_approval,
                "bundle_hash": decision.bundle_hash,
            }
            for decision in store.decisions.list(incident_id=IncidentId(incident_id))
        ],
        "runs": [
            {
                "workflow_id": run.workflow_id,
                "runbook": run.runbook,
                "params": dict(run.params),
                "status": str(run.status),
                "outcome": None if run.outcome is None else str(run.outcome),
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "steps": [
                    {
                        "step": action.step,
                        "type": action.kind,
                        "status": str(action.status),
                        "started_at": action.started_at,
                        "finished_at": action.finished_at,
                        "output": dict(action.output),
                        "error": (action.result or {}).get("error") or None,
                    }
                    for action in store.actions.list(workflow_id=run.workflow_id)
                ],
            }
            for run in runs
        ],
        "notifications": [
            {
                "channel": notification.channel,
                "message": notification.message,
                "severity": notification.payload.get("severity"),
                "at": notification.created_at,
                "delivered": notification.delivered,
            }
            for notification in store.notifications.list(incident_id=IncidentId(incident_id))
        ],
        "approvals": [
            {
                "workflow_id": verdict.workflow_id,
                "by": verdict.by,
                "approve": verdict.approve,
                "reason": verdict.reason,
                "at": verdict.at,
            }
            for run in runs
            for verdict in store.approvals.verdicts(run.workflow_id)
        ],
    }


def audit_record(record: AuditRecord) -> dict[str, Any]:
    """An audit record as shown to people and tools, hashes included."""
    return {
        "seq": record.seq,
        "at": record.at,
        "at_iso": iso(record.at),
        "kind": record.kind,
        "subject": record.subject,
        "payload": dict(record.payload),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


class StoreIncidentBook:
    """The API's IncidentBook over a store: the views above, by id, with bounds checked."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def list_incidents(
        self, *, states: Sequence[str] | None, open_only: bool, limit: int
    ) -> list[dict[str, Any]]:
        wanted = [IncidentState(state) for state in states] if states else None
        return incident_list(self._store, states=wanted, open_only=open_only, limit=limit)

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        return incident_detail(self._store, incident_id)

    def incident_audit(self, incident_id: str) -> list[dict[str, Any]] | None:
        if self._store.incidents.find(incident_id) is None:
            return None
        return [audit_record(record) for record in self._store.audit.of_incident(incident_id)]

    def audit(self, *, after: int, limit: int, kind: str | None) -> list[dict[str, Any]]:
        records = self._store.audit.records(after=after, limit=limit, kind=kind)
        return [audit_record(record) for record in records]
