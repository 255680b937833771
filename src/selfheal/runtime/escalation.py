"""Handing an incident to people: page on-call and mark it escalated, once per incident.

Every path that gives up on acting (a policy that denies, a guardrail that refuses, a plan
that cannot run, a run that never started) ends here, so on-call hears of it exactly once:
the page is recorded under the key `<incident>/escalation`.
"""

from __future__ import annotations

from typing import Any

from selfheal.domain.model import Incident, IncidentState
from selfheal.runtime.recorder import IncidentStore, Recorder


def incident_context(incident: Incident) -> dict[str, Any]:
    """The incident as runbooks, notifications and approvals see it."""
    target = incident.target
    return {
        "id": incident.id,
        "fingerprint": incident.fingerprint,
        "alert": incident.alert_name,
        "labels": dict(incident.labels),
        "target": None
        if target is None
        else {"kind": target.kind, "namespace": target.namespace, "name": target.name},
    }


class Escalation:
    """Pages on-call about an incident and moves it to `escalated`."""

    def __init__(self, *, recorder: Recorder, incidents: IncidentStore) -> None:
        self._recorder = recorder
        self._incidents = incidents

    def escalate(self, incident: Incident, reason: str, *, at: float) -> None:
        self._recorder.notify(
            channel="on-call",
            message=f"incident {incident.id} ({incident.alert_name}) needs a person: {reason}",
            severity="critical",
            incident=incident_context(incident),
            key=f"{incident.id}/escalation",
            at=at,
        )
        self._incidents.move(incident.id, IncidentState.ESCALATED, reason=reason, at=at)
