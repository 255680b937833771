"""What happened to each incident, read back from the store: the demo's figures.

Times are scenario seconds since `epoch` (the start of the scenario). A stage that did not
happen is None. Everything is taken from durable records (incidents, decisions, actions,
notifications, the audit log), so the same report can be made after a crash and restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selfheal.store import ActionRecord, ActionStatus, Store, audit


def incident_reports(store: Store, *, epoch: float) -> list[dict[str, Any]]:
    def rel(at: float | None) -> float | None:
        return None if at is None else round(at - epoch, 3)

    reports = []
    escalated_ids = {
        record.subject
        for record in store.audit.records()
        if record.kind == "incident.state" and record.payload.get("to") == "escalated"
    }
    waited_for = {
        record.subject: str(record.payload.get("waiting_for"))
        for record in store.audit.records(kind="remediation.waiting")
    }
    # The policy's first decision on each incident (a guardrail refusal, recorded as a later
    # decision without plans, does not hide what the policy chose) and its latest run.
    decisions = {record.incident_id: record for record in reversed(store.decisions.list())}
    runs = {run.incident_id: run for run in store.workflows.list()}
    actions = store.actions.list()
    for incident in sorted(store.incidents.list(), key=lambda i: i.opened_at):
        decision = decisions.get(incident.id)
        run = runs.get(incident.id)
        steps: dict[str, ActionRecord] = {}
        if run is not None:
            steps = {row.step: row for row in actions if row.workflow_id == run.workflow_id}
        scale, verify, rollback = steps.get("scale"), steps.get("verify"), steps.get("rollback")
        scale_out = _output(scale)
        verify_out = _output(verify)
        rolled_back = rollback is not None and rollback.status is ActionStatus.SUCCEEDED
        worst = verify_out.get("worst", {}) if verify_out else {}
        first_check = next(iter(worst.values()), None) if worst else None
        notifications = [
            {"channel": n.channel, "message": n.message, "at_s": rel(n.created_at)}
            for n in store.notifications.list(incident_id=incident.id)
        ]
        reports.append(
            {
                "id": incident.id,
                "alert": incident.alert_name,
                "fingerprint": incident.fingerprint,
                "state": str(incident.state),
                "alert_count": incident.alert_count,
                "onset_s": None,
                "detected_s": rel(incident.opened_at),
                "decided_s": rel(decision.decided_at) if decision is not None else None,
                "plans": [p.get("runbook") for p in (decision.plans if decision else [])],
                "deny": list(decision.deny) if decision is not None else [],
                "action_s": rel(scale.finished_at)
                if scale is not None and scale.status is ActionStatus.SUCCEEDED
                else None,
                "verified_s": rel(verify.finished_at)
                if verify is not None and verify.status is ActionStatus.SUCCEEDED
                else None,
                "replicas_before": scale_out.get("previous_replicas") if scale_out else None,
                "replicas_after": (
                    _output(rollback).get("restored_to", _output(rollback).get("replicas"))
                    if rolled_back
                    else scale_out.get("replicas")
                    if scale_out
                    else None
                ),
                "p95_ms_after": round(first_check * 1000, 1) if first_check is not None else None,
                "verified": verify is not None and verify.status is ActionStatus.SUCCEEDED,
                "rolled_back": rolled_back,
                "escalated": incident.id in escalated_ids,
                # Another incident was remediating the same target: this one waited for it.
                "waited_for": waited_for.get(incident.id),
                "notifications": notifications,
                "workflow_id": run.workflow_id if run is not None else None,
            }
        )
    return reports


def _output(record: ActionRecord | None) -> Mapping[str, Any]:
    return {} if record is None else record.output


def chain_ok(store: Store) -> bool:
    return audit.verify(store).ok


def withheld(store: Store, *, epoch: float) -> list[dict[str, Any]]:
    """What shadow (or off) mode kept from happening, from the audit chain, oldest first."""
    return [
        {
            "incident": record.subject,
            "at_s": round(record.at - epoch, 3),
            "mode": record.payload.get("mode"),
            "alert": record.payload.get("alert"),
            **dict(record.payload.get("would_have", {})),
        }
        for record in store.audit.records()
        if record.kind == "remediation.withheld"
    ]


def guardrail_refusals(store: Store, *, epoch: float) -> list[dict[str, Any]]:
    """Every plan the guardrails refused, oldest first: the incident, when, and which."""
    return [
        {
            "incident": record.incident_id,
            "at_s": round(record.decided_at - epoch, 3),
            "runbook": record.policy_input.get("refused_plan", {}).get("runbook"),
            "guardrails": [refusal["guardrail"] for refusal in record.refusals],
            "reasons": [refusal["reason"] for refusal in record.refusals],
        }
        for record in store.decisions.list()
        if record.refusals
    ]


def alert_outcomes(store: Store) -> dict[str, int]:
    """What the firing alerts became, from the audit chain: opened or joined an incident."""
    return {
        "opened": len(store.audit.records(kind="incident.opened")),
        "joined": len(store.audit.records(kind="incident.joined")),
    }


def remediations(store: Store) -> list[dict[str, Any]]:
    """The remediation runs started, oldest first, and whether a person's gate stopped one.

    A run whose approval step failed (denied, or timed out) changed nothing: it is not an
    action taken.
    """
    gated = {
        record.workflow_id
        for record in store.actions.list(kind="approval.wait")
        if record.status is ActionStatus.FAILED
    }
    runs = store.workflows.list()
    return [
        {
            "incident": run.incident_id,
            "runbook": run.runbook,
            "status": run.status,
            "outcome": run.outcome,
            "stopped_at_approval": run.workflow_id in gated,
        }
        for run in runs
    ]


def approvals(store: Store, *, epoch: float) -> list[dict[str, Any]]:
    """Every approval request with who answered it, how, why, and how it closed."""
    closed = {r.subject: r for r in store.audit.records(kind="approval.closed")}
    out = []
    for record in store.audit.records(kind="approval.requested"):
        workflow_id = record.subject
        ending = closed.get(workflow_id)
        out.append(
            {
                "incident": record.payload.get("incident_id"),
                "runbook": record.payload.get("runbook"),
                "requested_s": round(record.at - epoch, 3),
                "deadline_s": round(float(record.payload["deadline"]) - epoch, 3),
                "verdicts": [
                    {
                        "by": verdict.by,
                        "approve": verdict.approve,
                        "reason": verdict.reason,
                        "at_s": round(verdict.at - epoch, 3),
                    }
                    for verdict in store.approvals.verdicts(workflow_id)
                ],
                "outcome": None if ending is None else ending.payload.get("outcome"),
                "closed_s": None if ending is None else round(ending.at - epoch, 3),
            }
        )
    return out
