"""Adapters from the stages' ports to the store: everything that happens is recorded.

The workflow engine reports progress through `WorkflowObserver`; actions notify, charge the
budget and escalate through their ports; incident intake opens and moves incidents. Each of
these lands in the store in one transaction with its audit record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from selfheal.domain.errors import PermanentError
from selfheal.domain.model import (
    Alert,
    Fingerprint,
    Incident,
    IncidentId,
    IncidentState,
    Outcome,
    Target,
    WorkflowId,
)
from selfheal.incidents import intake
from selfheal.runtime.settings import Settings
from selfheal.store import ActionStatus, Arrival, IncidentMove, RunStatus, Store, day_of

_log = logging.getLogger(__name__)


class IncidentStore:
    """`IncidentRepository` (intake) and `Incidents` (actions) over the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def open_or_join(
        self, *, fingerprint: Fingerprint, alert: Alert, target: Target | None, at: float
    ) -> tuple[Incident, bool]:
        incident, joined = self._store.incidents.open_or_join(
            fingerprint,
            alert_name=alert.name,
            labels=alert.labels,
            annotations=alert.annotations,
            at=at,
            onset_at=alert.active_at,
            target=target,
            sender=alert.sender,
        )
        return incident, not joined

    def open_or_join_many(
        self, arrivals: Sequence[tuple[Fingerprint, Alert, Target | None]], *, at: float
    ) -> list[tuple[Incident, bool]]:
        results = self._store.incidents.open_or_join_many(
            [
                Arrival(
                    key,
                    alert.name,
                    alert.labels,
                    alert.annotations,
                    alert.active_at,
                    target,
                    alert.sender,
                )
                for key, alert, target in arrivals
            ],
            at=at,
        )
        return [(incident, not joined) for incident, joined in results]

    def open_for(self, fingerprint: Fingerprint) -> Incident | None:
        return self._store.incidents.open_for(fingerprint)

    def move(
        self, incident_id: IncidentId, state: IncidentState, *, reason: str, at: float
    ) -> Incident:
        """Move an incident if the lifecycle allows it from where it stands (atomically)."""
        return self._store.incidents.set_state(
            incident_id, state, at=at, reason=reason, allowed_from=moves_into(state)
        )

    def claim(
        self, incident_id: IncidentId, state: IncidentState, *, reason: str, at: float
    ) -> Incident | None:
        """Move an incident into `state`; None unless this call moved it (see store)."""
        return self._store.incidents.claim(
            incident_id, state, at=at, reason=reason, allowed_from=moves_into(state)
        )

    def move_many(
        self, incident_ids: Sequence[IncidentId], state: IncidentState, *, reason: str, at: float
    ) -> list[Incident]:
        """`move` for many incidents to one state, in one transaction."""
        return self._store.incidents.set_state_many(
            [(incident_id, state, reason) for incident_id in incident_ids],
            at=at,
            allowed_from=moves_into(state),
        )

    def escalate(self, *, incident_id: str, reason: str, at: float) -> None:
        self.move(IncidentId(incident_id), IncidentState.ESCALATED, reason=reason, at=at)


def moves_into(state: IncidentState) -> frozenset[IncidentState]:
    """The states the lifecycle allows a move into `state` from."""
    return frozenset(other for other in IncidentState if intake.can_move(other, state))


class Recorder:
    """WorkflowObserver, Memo, Notifier and Budget over the store."""

    def __init__(self, *, store: Store, settings: Settings, incidents: IncidentStore) -> None:
        self._store = store
        self._settings = settings
        self._incidents = incidents

    # ---- Memo ---------------------------------------------------------------------------
    def recall(self, key: str, name: str) -> Any:
        record = self._store.actions.find(key)
        return None if record is None else record.params.get(name)

    def recall_all(self, key: str) -> Mapping[str, Any]:
        # A memo is an action record begun by `remember` and not yet completed: once the
        # step completes, the record holds its result and its params are no memo.
        record = self._store.actions.find(key)
        return {} if record is None or record.result is not None else dict(record.params)

    def remember(self, key: str, name: str, value: Any, *, kind: str, at: float) -> None:
        workflow_id, _, step = key.rpartition("/")
        existing = self._store.actions.find(key)
        if existing is not None:
            if existing.params.get(name) != value:
                raise PermanentError(f"{key} already remembers {existing.params}")
            return
        self._store.actions.begin(
            key,
            workflow_id=WorkflowId(workflow_id),
            step=step,
            kind=kind,
            target="",
            params={name: value},
            at=at,
        )

    # ---- WorkflowObserver ---------------------------------------------------------------
    def workflow_started(
        self,
        *,
        workflow_id: str,
        runbook: str,
        params: Mapping[str, Any],
        incident: Mapping[str, Any],
        at: float,
        waits_for_approval: bool = False,
    ) -> None:
        incident_id = IncidentId(str(incident["id"]))
        state, reason = (
            (IncidentState.AWAITING_APPROVAL, f"runbook {runbook} waits for a person's approval")
            if waits_for_approval
            else (IncidentState.REMEDIATING, f"runbook {runbook} started")
        )
        self._store.workflows.start(
            WorkflowId(workflow_id),
            incident_id=incident_id,
            runbook=runbook,
            params=params,
            at=at,
            incident_move=IncidentMove(state, reason, moves_into(state)),
        )

    def step_finished(
        self,
        *,
        workflow_id: str,
        step_id: str,
        step_type: str,
        params: Mapping[str, Any],
        status: str,
        output: Mapping[str, Any],
        error: str,
        attempts: int,
        compensation: bool,
        at: float,
    ) -> None:
        key = f"{workflow_id}/{step_id}"
        existing = self._store.actions.find(key)
        if existing is not None and existing.status != ActionStatus.STARTED:
            # The step ran again after a crash that came before DBOS saved its result; the
            # first completion stands.
            return
        target = "/".join(str(params[k]) for k in ("namespace", "deployment") if k in params)
        self._store.actions.begin(
            key,
            workflow_id=WorkflowId(workflow_id),
            step=step_id,
            kind=step_type,
            target=target,
            params=dict(params),
            at=at,
        )
        self._store.actions.complete(
            key,
            status=ActionStatus.SUCCEEDED if status == "ok" else ActionStatus.FAILED,
            result={
                "output": dict(output),
                "error": error,
                "attempts": attempts,
                "compensation": compensation,
                "step_type": step_type,
            },
            at=at,
        )
        if step_type == "approval.wait" and status == "ok":
            run = self._store.workflows.find(WorkflowId(workflow_id))
            if run is not None:
                approvers = ", ".join(output.get("approved_by", []))
                self._incidents.move(
                    run.incident_id,
                    IncidentState.REMEDIATING,
                    reason=f"runbook {run.runbook} approved by {approvers}",
                    at=at,
                )

    def workflow_finished(
        self,
        *,
        workflow_id: str,
        outcome: str,
        summary: Mapping[str, Any],
        at: float,
    ) -> None:
        run = self._store.workflows.find(WorkflowId(workflow_id))
        succeeded = outcome == "succeeded"
        if outcome == "denied":
            self._store.workflows.finish(
                WorkflowId(workflow_id),
                status=RunStatus.CANCELLED,
                at=at,
                outcome=Outcome.ESCALATED,
            )
            if run is not None:
                self._deny(run.incident_id, run.runbook, summary, at=at)
            return
        # A verified or rolled-back run moves its incident (if it is still remediating) in
        # the same transaction as the run's end, so a crash cannot split them.
        state = IncidentState.VERIFIED if succeeded else IncidentState.ROLLED_BACK
        self._store.workflows.finish(
            WorkflowId(workflow_id),
            status=RunStatus.SUCCEEDED if succeeded else RunStatus.FAILED,
            at=at,
            outcome=Outcome.VERIFIED
            if succeeded
            else (Outcome.ROLLED_BACK if outcome == "rolled_back" else Outcome.FAILED),
            incident_move=IncidentMove(
                state,
                f"runbook {run.runbook if run else '?'}: {outcome}",
                frozenset({IncidentState.REMEDIATING}),
            ),
        )

    def _deny(
        self, incident_id: IncidentId, runbook: str, summary: Mapping[str, Any], *, at: float
    ) -> None:
        """An approval denied or timed out: nothing ran; a person takes the incident."""
        reason = f"runbook {runbook} not approved: {summary.get('error', 'denied')}"
        incident = self._store.incidents.get(incident_id)
        self.notify(
            channel="on-call",
            message=f"incident {incident_id} ({incident.alert_name}) needs a person: {reason}",
            severity="critical",
            incident={"id": incident_id, "alert": incident.alert_name},
            key=f"{incident_id}/approval-denied",
            at=at,
        )
        self._incidents.move(incident_id, IncidentState.ESCALATED, reason=reason, at=at)

    # ---- Notifier -----------------------------------------------------------------------
    def notify(
        self,
        *,
        channel: str,
        message: str,
        severity: str,
        incident: Mapping[str, Any],
        key: str,
        at: float,
    ) -> str:
        existing = self._store.notifications.find(key)
        if existing is not None:
            return str(existing.id)
        channel_settings = self._settings.notifications.get(channel)
        webhook = channel_settings.webhook if channel_settings else None
        payload = {
            "key": key,
            "severity": severity,
            "incident": dict(incident),
            "message": message,
            "channel": channel,
        }
        delivered, error = True, None
        if webhook:
            try:
                httpx.post(webhook, json=payload, timeout=5.0).raise_for_status()
            except httpx.HTTPError as exc:
                delivered, error = False, str(exc)
        record = self._store.notifications.record(
            incident_id=IncidentId(str(incident["id"])) if incident.get("id") else None,
            channel=channel,
            recipient=webhook or channel,
            message=message,
            payload=payload,
            at=at,
            delivered=delivered,
            error=error,
            key=key,
        )
        return str(record.id)

    # ---- Budget -------------------------------------------------------------------------
    def cost_per_replica_hour(self) -> float:
        return self._settings.budget.cost_per_replica_hour

    def remaining(self, *, at: float) -> float:
        budget = self._settings.budget
        return budget.daily - self._store.budget.spent_on(day_of(at), currency=budget.currency)

    def charge(
        self, *, key: str, amount: float, reason: str, incident: Mapping[str, Any], at: float
    ) -> None:
        if self.charged(key=key) is not None:
            return  # a re-run of the same step after a crash: charged once already
        budget = self._settings.budget
        incident_id = IncidentId(str(incident["id"])) if incident.get("id") else None
        self._store.budget.charge(
            day=day_of(at),
            amount=amount,
            currency=budget.currency,
            reason=reason,
            at=at,
            incident_id=incident_id,
            limit=budget.daily,
            key=key,
        )

    def charged(self, *, key: str) -> float | None:
        entry = self._store.budget.find(key)
        return None if entry is None else entry.amount

    def refund(self, *, key: str, reason: str, incident: Mapping[str, Any], at: float) -> float:
        entry = self._store.budget.find(key)
        if entry is None or entry.amount <= 0:
            return 0.0
        incident_id = IncidentId(str(incident["id"])) if incident.get("id") else None
        # Under its own key, so a re-run refunds once; on the charge's day, so the day's
        # spend is what it was before the charge.
        refund = self._store.budget.charge(
            day=entry.day,
            amount=-entry.amount,
            currency=entry.currency,
            reason=reason,
            at=at,
            incident_id=incident_id,
            key=f"{key}/refund",
        )
        return -refund.amount
