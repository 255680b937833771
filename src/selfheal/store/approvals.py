"""`store.approvals`: requests for a person's approval and the verdicts given, on the record.

Approvals live in the audit chain itself, as records of three kinds keyed by the workflow
that waits: `approval.requested` (which runbook, how many approvers, the deadline),
`approval.given` (approve or deny, by whom, why) and `approval.closed` (approved, denied or
timed out). The chain is append-only and hash-linked, so who approved what cannot be edited
afterwards, and every process that opens the store (the controller, `selfheal approve`, the
REST API) sees the same verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from selfheal.domain.errors import ConfigError
from selfheal.domain.identity import canonical_identity

if TYPE_CHECKING:
    from selfheal.store.database import Store

__all__ = ["ApprovalRequest", "Approvals", "GivenVerdict"]


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """A remediation waiting for `approvers` distinct people until `deadline`."""

    workflow_id: str
    incident_id: str
    runbook: str
    approvers: int
    requested_at: float
    deadline: float


@dataclass(frozen=True, slots=True)
class GivenVerdict:
    """One person's approve or deny, with their reason."""

    workflow_id: str
    incident_id: str
    approve: bool
    by: str
    reason: str
    at: float


class Approvals:
    """Approval requests and verdicts, read from and appended to the audit chain."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def request(
        self,
        *,
        workflow_id: str,
        incident_id: str,
        runbook: str,
        approvers: int,
        timeout: float,
        at: float,
    ) -> ApprovalRequest:
        """Ask for approval; asking again (after a crash) returns the first request."""
        existing = self.find(workflow_id)
        if existing is not None:
            return existing
        request = ApprovalRequest(workflow_id, incident_id, runbook, approvers, at, at + timeout)
        self._store.audit.append(
            "approval.requested",
            workflow_id,
            {
                "incident_id": incident_id,
                "runbook": runbook,
                "approvers": approvers,
                "deadline": request.deadline,
            },
            at=at,
        )
        return request

    def find(self, workflow_id: str) -> ApprovalRequest | None:
        for record in self._store.audit.records(kind="approval.requested"):
            if record.subject == workflow_id:
                payload = record.payload
                return ApprovalRequest(
                    workflow_id,
                    str(payload["incident_id"]),
                    str(payload["runbook"]),
                    int(payload["approvers"]),
                    record.at,
                    float(payload["deadline"]),
                )
        return None

    def pending(self, incident_id: str) -> ApprovalRequest | None:
        """The incident's request that is still open, if any."""
        closed = {r.subject for r in self._store.audit.records(kind="approval.closed")}
        found = None
        for record in self._store.audit.records(kind="approval.requested"):
            if record.payload.get("incident_id") == incident_id and record.subject not in closed:
                found = self.find(record.subject)
        return found

    def verdicts(self, workflow_id: str) -> list[GivenVerdict]:
        return [
            GivenVerdict(
                workflow_id,
                str(record.payload["incident_id"]),
                bool(record.payload["approve"]),
                str(record.payload["by"]),
                str(record.payload["reason"]),
                record.at,
            )
            for record in self._store.audit.records(kind="approval.given")
            if record.subject == workflow_id
        ]

    def requesters(self, incident_id: str) -> set[str]:
        """Who asked for the incident's remediation: the senders of its alerts (canonical)."""
        return {
            canonical_identity(str(record.payload["sender"]))
            for kind in ("incident.opened", "incident.joined")
            for record in self._store.audit.records(kind=kind, subject=incident_id)
            if record.payload.get("sender") is not None
        }

    def give(
        self,
        *,
        incident_id: str,
        approve: bool,
        by: str,
        reason: str,
        at: float,
        source: str | None = None,
    ) -> GivenVerdict:
        """Record a person's verdict on the incident's open request.

        Refused (ConfigError) when nothing awaits approval, when the same person already
        gave a verdict (a two-person rule needs two people, not one person twice, however
        the name is spelt), or when the approver sent one of the incident's alerts: who
        asks for a remediation does not approve it. Denying one's own request is allowed.
        `source` says how the verdict came (the API caller's address, the CLI's user).
        """
        if not canonical_identity(by):
            raise ConfigError("an approval needs the approver's identity")
        request = self.pending(incident_id)
        if request is None:
            raise ConfigError(f"incident {incident_id} has no remediation awaiting approval")
        who = canonical_identity(by)
        if any(canonical_identity(v.by) == who for v in self.verdicts(request.workflow_id)):
            raise ConfigError(f"{by} already gave a verdict on {request.workflow_id}")
        if approve and who in self.requesters(incident_id):
            raise ConfigError(
                f"{by} sent an alert of incident {incident_id}, so asked for its remediation; "
                "someone else must approve it"
            )
        # A verdict answers its request, so it cannot precede it: a process whose view of
        # the controller's clock lags a little (the CLI reading clock.json) stamps no earlier.
        at = max(at, request.requested_at)
        payload: dict[str, object] = {
            "incident_id": incident_id,
            "approve": approve,
            "by": by,
            "reason": reason,
        }
        if source is not None:
            payload["source"] = source
        self._store.audit.append("approval.given", request.workflow_id, payload, at=at)
        return GivenVerdict(request.workflow_id, incident_id, approve, by, reason, at)

    def close(self, workflow_id: str, *, outcome: str, at: float) -> None:
        """Close a request (approved, denied, timed_out); closing twice changes nothing."""
        if any(r.subject == workflow_id for r in self._store.audit.records(kind="approval.closed")):
            return
        self._store.audit.append("approval.closed", workflow_id, {"outcome": outcome}, at=at)
