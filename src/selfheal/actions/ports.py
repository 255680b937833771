"""What actions need from the rest of selfheal, as small Protocols wired by `runtime`.

Actions never import the store, the telemetry package or the incidents package; they get
these ports, so each can be backed by an embedded or a scaled-out implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class QueriedSample:
    """One series of an instant query result."""

    labels: Mapping[str, str]
    value: float


class MetricsQuery(Protocol):
    """Instant PromQL queries against the telemetry the controller sees."""

    def query(self, expr: str, *, at: float) -> Sequence[QueriedSample]: ...


class Notifier(Protocol):
    """Records a notification (and delivers it where configured); returns its id."""

    def notify(
        self,
        *,
        channel: str,
        message: str,
        severity: str,
        incident: Mapping[str, Any],
        key: str,
        at: float,
    ) -> str: ...


class Budget(Protocol):
    """The daily remediation budget."""

    def cost_per_replica_hour(self) -> float: ...

    def remaining(self, *, at: float) -> float: ...

    def charge(
        self, *, key: str, amount: float, reason: str, incident: Mapping[str, Any], at: float
    ) -> None:
        """Charge once per key: a second charge with the same key does nothing."""
        ...

    def charged(self, *, key: str) -> float | None:
        """What was charged under `key`, or None."""
        ...

    def refund(self, *, key: str, reason: str, incident: Mapping[str, Any], at: float) -> float:
        """Give back what was charged under `key`, once; what was refunded (0 if nothing)."""
        ...


class Incidents(Protocol):
    """Lifecycle changes an action may make to its incident."""

    def escalate(self, *, incident_id: str, reason: str, at: float) -> None: ...


class ApprovalBook(Protocol):
    """Where approval requests and people's verdicts are kept (the store's audit chain)."""

    def request(
        self,
        *,
        workflow_id: str,
        incident_id: str,
        runbook: str,
        approvers: int,
        timeout: float,
        at: float,
    ) -> Any: ...

    def verdicts(self, workflow_id: str) -> Sequence[Any]: ...

    def close(self, workflow_id: str, *, outcome: str, at: float) -> None: ...
