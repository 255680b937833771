"""The `approval.wait` step: a remediation waits for people before it touches anything.

When a policy returns `requires_approval`, the controller starts the runbook with this step
first. The step records an approval request (once: a re-run after a crash finds the first
one and keeps its deadline), then checks the verdicts people give through `selfheal
approve|deny` or the REST API, pausing a second of scenario time between checks:

- any deny ends the wait: the step fails, naming who denied and why;
- `approvers` distinct approvals (two for a two-person rule) let the runbook go on;
- nothing by the deadline is a deny: the step fails with "no approval within ...".

A failed approval runs no compensation (nothing was changed); the run ends as denied and
the incident is escalated. Every request, verdict and outcome is in the audit chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selfheal.actions.ports import ApprovalBook
from selfheal.domain.actions import ActionSpec, Invocation, StepFailed, StepType
from selfheal.formats.durations import format_duration, parse_duration

STEP_TYPE = "approval.wait"
_POLL = 1.0  # scenario seconds between looks at the verdicts


def approval_action(book: ApprovalBook) -> ActionSpec:
    def run(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        timeout = parse_duration(params["timeout"])
        approvers = int(params.get("approvers", 1))
        clock = invocation.clock
        request = book.request(
            workflow_id=invocation.workflow_id,
            incident_id=str(invocation.incident["id"]),
            runbook=str(params.get("runbook", invocation.runbook)),
            approvers=approvers,
            timeout=timeout,
            at=clock.now(),
        )
        while True:
            verdicts = list(book.verdicts(invocation.workflow_id))
            denied = [v for v in verdicts if not v.approve]
            if denied:
                book.close(invocation.workflow_id, outcome="denied", at=clock.now())
                who = denied[0]
                raise StepFailed(
                    f"denied by {who.by}: {who.reason or 'no reason given'}",
                    output={"denied_by": who.by, "reason": who.reason},
                )
            approved = sorted({v.by for v in verdicts if v.approve})
            if len(approved) >= approvers:
                book.close(invocation.workflow_id, outcome="approved", at=clock.now())
                reasons = {v.by: v.reason for v in verdicts if v.approve}
                return {"approved_by": approved, "reasons": reasons}
            if clock.now() >= request.deadline:
                book.close(invocation.workflow_id, outcome="timed_out", at=clock.now())
                raise StepFailed(
                    f"no approval within {format_duration(timeout)}: denied by default"
                    + (f" ({len(approved)} of {approvers} approvals)" if approved else ""),
                    output={"approved_by": approved, "timed_out": True},
                )
            clock.sleep_blocking(min(_POLL, max(0.0, request.deadline - clock.now())))

    return ActionSpec(
        StepType(
            STEP_TYPE,
            frozenset({"timeout", "approvers", "runbook"}),
            frozenset({"timeout"}),
            "Wait for people to approve the remediation; deny on timeout.",
        ),
        run,
    )
