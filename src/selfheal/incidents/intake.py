"""From alerts to incidents: fingerprint, dedup, and the lifecycle's allowed moves.

A firing alert opens an incident for its fingerprint (alert name plus sorted identifying
labels) unless one is open; re-fired and duplicate alerts join the open incident instead, so
one problem is one incident however often it alerts. Pending alerts are not incidents yet;
a resolved alert resolves its incident if nothing is left to do (see AUTO_RESOLVABLE).

With `group_by` (the config's `alerts.group_by`), an incident is keyed by the alert name and
only those labels: the per-pod alerts of an alert storm then collapse into one incident per
workload instead of one per pod.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from selfheal.domain.model import (
    Alert,
    AlertState,
    Fingerprint,
    Incident,
    IncidentId,
    IncidentState,
    Target,
    fingerprint,
)

# Where an incident may go from each state. Terminal remediation states may still resolve.
TRANSITIONS: Mapping[IncidentState, frozenset[IncidentState]] = {
    IncidentState.OPEN: frozenset(
        {IncidentState.DECIDING, IncidentState.RESOLVED, IncidentState.ESCALATED}
    ),
    IncidentState.DECIDING: frozenset(
        {
            IncidentState.AWAITING_APPROVAL,
            IncidentState.REMEDIATING,
            IncidentState.ESCALATED,
            IncidentState.OPEN,
            IncidentState.RESOLVED,
        }
    ),
    # A person approves (remediation starts) or denies / lets it time out (escalated).
    IncidentState.AWAITING_APPROVAL: frozenset(
        {IncidentState.REMEDIATING, IncidentState.ESCALATED}
    ),
    IncidentState.REMEDIATING: frozenset(
        {IncidentState.VERIFIED, IncidentState.ROLLED_BACK, IncidentState.ESCALATED}
    ),
    IncidentState.VERIFIED: frozenset({IncidentState.RESOLVED}),
    IncidentState.ROLLED_BACK: frozenset({IncidentState.ESCALATED, IncidentState.RESOLVED}),
    IncidentState.ESCALATED: frozenset({IncidentState.RESOLVED}),
    IncidentState.RESOLVED: frozenset(),
}
# An incident resolves by itself, when its alert stops, only if nothing is left to do:
# nothing was attempted, or the fix was verified. A rolled-back or escalated incident waits
# for a person; alerts that fire meanwhile join it instead of starting another attempt.
AUTO_RESOLVABLE = frozenset({IncidentState.OPEN, IncidentState.VERIFIED})


def can_move(current: IncidentState, wanted: IncidentState) -> bool:
    return wanted in TRANSITIONS[current]


class IncidentRepository(Protocol):
    """The incident store as intake needs it (implemented over `selfheal.store`)."""

    def open_or_join(
        self, *, fingerprint: Fingerprint, alert: Alert, target: Target | None, at: float
    ) -> tuple[Incident, bool]: ...

    def open_or_join_many(
        self, arrivals: Sequence[tuple[Fingerprint, Alert, Target | None]], *, at: float
    ) -> list[tuple[Incident, bool]]: ...

    def open_for(self, fingerprint: Fingerprint) -> Incident | None: ...

    def move(
        self, incident_id: IncidentId, state: IncidentState, *, reason: str, at: float
    ) -> Incident: ...


@dataclass(frozen=True, slots=True)
class Intake:
    """What receiving one alert did."""

    incident: Incident | None
    opened: bool = False
    joined: bool = False
    resolved: bool = False


def incident_key(
    alert_name: str, labels: Mapping[str, str], group_by: tuple[str, ...] | None = None
) -> Fingerprint:
    """The fingerprint of the incident an alert belongs to: all its labels, or `group_by`'s."""
    if group_by is None:
        return fingerprint(alert_name, labels)
    return fingerprint(alert_name, {key: labels[key] for key in group_by if key in labels})


def target_of(labels: Mapping[str, str]) -> Target | None:
    """The workload an alert is about: its namespace and deployment (or service) labels."""
    namespace = labels.get("namespace")
    name = labels.get("deployment") or labels.get("service")
    if not namespace or not name:
        return None
    return Target(kind="Deployment", namespace=namespace, name=name)


class IncidentIntake:
    """Turns alerts into incidents through an IncidentRepository."""

    def __init__(
        self, repository: IncidentRepository, *, group_by: tuple[str, ...] | None = None
    ) -> None:
        self._repository = repository
        self.group_by = group_by

    def key(self, alert_name: str, labels: Mapping[str, str]) -> Fingerprint:
        """The incident fingerprint of an alert with this name and these labels."""
        return incident_key(alert_name, labels, self.group_by)

    def receive_firing(self, alerts: Sequence[Alert], *, at: float) -> list[Intake]:
        """Open or join incidents for many firing alerts at once, in order.

        One write for the lot: an alert storm of thousands costs one transaction per
        evaluation, not one per alert.
        """
        if any(alert.state != AlertState.FIRING for alert in alerts):
            raise ValueError("receive_firing takes firing alerts only")
        if not alerts:
            return []
        arrivals = [
            (self.key(alert.name, alert.labels), alert, target_of(alert.labels)) for alert in alerts
        ]
        return [
            Intake(incident, opened=opened, joined=not opened)
            for incident, opened in self._repository.open_or_join_many(arrivals, at=at)
        ]

    def receive(self, alert: Alert, *, at: float) -> Intake:
        key = self.key(alert.name, alert.labels)
        if alert.state == AlertState.PENDING:
            return Intake(None)
        if alert.state == AlertState.RESOLVED:
            incident = self._repository.open_for(key)
            if incident is None or incident.state not in AUTO_RESOLVABLE:
                return Intake(incident)
            if self.group_by is not None:
                # One alert of a group resolving says nothing of the others: the controller
                # resolves a grouped incident once none of its alerts fires.
                return Intake(incident)
            resolved = self._repository.move(
                incident.id, IncidentState.RESOLVED, reason="the alert resolved", at=at
            )
            return Intake(resolved, resolved=True)
        incident, opened = self._repository.open_or_join(
            fingerprint=key, alert=alert, target=target_of(alert.labels), at=at
        )
        return Intake(incident, opened=opened, joined=not opened)
