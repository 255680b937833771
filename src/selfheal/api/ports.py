"""What the API hands its input to: the ports the runtime implements.

The API only parses and validates; what happens to alerts and samples next (the incident
loop, the TSDB) is behind these two Protocols, so the HTTP layer is tested with recording
fakes and wired to the real controller by `runtime`. A sink is called at most once per
request, with everything the request carried, after the whole payload has parsed.

A sink that cannot take the input right now raises `TemporaryError`; the API answers 503
with `Retry-After`, and every sender here (Alertmanager, Prometheus, the Collector) retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from selfheal.telemetry import receivers


class AlertSink(Protocol):
    """Takes one Alertmanager notification's alerts."""

    def receive(self, batch: receivers.WebhookBatch) -> None: ...


class SampleSink(Protocol):
    """Takes the samples of one OTLP or remote-write request, each with its own time."""

    def write(self, samples: Sequence[receivers.TimedSample]) -> None: ...


class ApprovalDesk(Protocol):
    """Takes a person's verdict on an incident's remediation awaiting approval.

    Raises ConfigError when nothing awaits approval or the person already gave a verdict;
    the API answers 409 with the reason.
    """

    def give_verdict(
        self, incident_id: str, *, approve: bool, by: str, reason: str, source: str
    ) -> None: ...


class GuardrailDesk(Protocol):
    """Resets an open circuit breaker on the record (runtime.breaker_reset).

    Returns whether it was open (and so reset), with the failures it counted; raises
    ConfigError when no breaker is configured. The API answers 409 when nothing was open.
    """

    def reset_breaker(
        self, *, runbook: str, namespace: str, name: str, by: str, reason: str, source: str
    ) -> dict[str, Any]: ...


class RequestLog(Protocol):
    """Records each write request the API answered (in the audit chain).

    `identity` is None when the caller could not be authenticated.
    """

    def record_request(
        self,
        *,
        identity: str | None,
        roles: Sequence[str],
        method: str,
        route: str,
        source: str,
        status: int,
    ) -> None: ...


class IncidentBook(Protocol):
    """Reads incidents and audit records as JSON documents (runtime.incident_views)."""

    def list_incidents(
        self, *, states: Sequence[str] | None, open_only: bool, limit: int
    ) -> list[dict[str, Any]]: ...

    def incident(self, incident_id: str) -> dict[str, Any] | None: ...

    def incident_audit(self, incident_id: str) -> list[dict[str, Any]] | None: ...

    def audit(self, *, after: int, limit: int, kind: str | None) -> list[dict[str, Any]]: ...


class Readiness(Protocol):
    """Whether the controller can take input now, why not, and what it knows."""

    @property
    def ready(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    @property
    def details(self) -> dict[str, Any]: ...


class Health(Protocol):
    """Answers `/readyz` (runtime.health)."""

    def readiness(self) -> Readiness: ...
