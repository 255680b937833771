"""The loop's vocabulary: alerts, incidents, decisions, plans and outcomes.

Frozen, slotted dataclasses with no behaviour beyond small derived properties: every stage
speaks in these, and the store persists them. Times are scenario seconds since the Unix
epoch (see `time.py`).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NewType

IncidentId = NewType("IncidentId", str)
Fingerprint = NewType("Fingerprint", str)
WorkflowId = NewType("WorkflowId", str)


class AlertState(enum.StrEnum):
    """Prometheus' alert states, plus `resolved` for an alert that stopped firing."""

    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert instance: an alerting rule's output for one label set at one evaluation.

    `labels` include `alertname`. `active_at` is when the condition first held; `fired_at`
    when it had held for the rule's `for` duration; `resolved_at` when it stopped.
    """

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: AlertState
    value: float
    active_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    source: str = "rules"
    # Who sent it (the API caller's identity), None for the controller's own rules. A
    # sender of an incident's alerts asked for its remediation, so may not approve it.
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class Signal:
    """An anomaly a detector found on one series, with how sure selfheal is that it matters.

    `score` is the detector's own anomaly likelihood for the series (in [0, 1]);
    `confidence` is what correlation made of it: other anomalous metrics of the same
    service and a recent deploy raise it, a lone metric keeps it low. `evidence` says why,
    one line per contributor, for the audit trail and the person reading it.
    """

    name: str
    labels: Mapping[str, str]
    score: float
    confidence: float
    at: float
    evidence: tuple[str, ...] = ()


class IncidentState(enum.StrEnum):
    """The incident lifecycle; the last four end an incident's remediation."""

    OPEN = "open"
    DECIDING = "deciding"
    AWAITING_APPROVAL = "awaiting_approval"
    REMEDIATING = "remediating"
    VERIFIED = "verified"
    ROLLED_BACK = "rolled_back"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


# Labels that describe an alert's value rather than what it is about; they never make two
# alerts different incidents.
VOLATILE_LABELS = frozenset({"le", "quantile"})


def fingerprint(alert_name: str, labels: Mapping[str, str]) -> Fingerprint:
    """The identity of what an alert is about: its name plus its sorted identifying labels.

    Re-fired and duplicate alerts have the same fingerprint and so join the same incident.
    """
    identifying = sorted(
        (key, value)
        for key, value in labels.items()
        if key not in VOLATILE_LABELS and key != "alertname"
    )
    text = json.dumps([alert_name, identifying], separators=(",", ":"))
    return Fingerprint(hashlib.sha256(text.encode()).hexdigest()[:16])


@dataclass(frozen=True, slots=True)
class Target:
    """The workload an incident is about, as a Kubernetes reference."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident: the alerts with one fingerprint, and where their remediation stands."""

    id: IncidentId
    fingerprint: Fingerprint
    alert_name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: IncidentState
    opened_at: float
    onset_at: float
    target: Target | None = None
    alert_count: int = 1


@dataclass(frozen=True, slots=True)
class Plan:
    """What a policy chose: a runbook to run with its parameters."""

    runbook: str
    params: Mapping[str, Any] = field(default_factory=dict)
    risk: str = "low"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy evaluation: its input, its output, and which policy bundle produced it."""

    incident_id: IncidentId
    plans: tuple[Plan, ...]
    deny: tuple[str, ...]
    requires_approval: bool
    policy_input: Mapping[str, Any]
    policy_output: Mapping[str, Any]
    bundle_hash: str
    decided_at: float

    @property
    def acts(self) -> bool:
        return bool(self.plans) and not self.deny


class Outcome(enum.StrEnum):
    """How a remediation ended."""

    VERIFIED = "verified"
    ROLLED_BACK = "rolled_back"
    ESCALATED = "escalated"
    FAILED = "failed"


class Verdict(enum.StrEnum):
    """A verify step's finding. Inconclusive (no data) never counts as passed."""

    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
