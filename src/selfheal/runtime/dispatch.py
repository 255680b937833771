"""Starting the chosen runbook as a durable workflow, exactly once per incident and runbook.

The workflow id is the idempotency key (`remediate.<incident>.<runbook>`): starting it again
after a crash or a re-fired alert finds the existing workflow. The run is recorded before the
engine starts it, so the next decision's guardrails count it even before its first step; a
crash between the two leaves a recorded run with no workflow, which
`close_runs_that_cannot_finish` closes at the next start and escalates.
"""

from __future__ import annotations

from collections.abc import Mapping

from selfheal.domain.errors import ConfigError
from selfheal.domain.model import (
    Decision,
    Incident,
    IncidentState,
    Outcome,
    WorkflowId,
)
from selfheal.runtime.escalation import Escalation, incident_context
from selfheal.runtime.recorder import Recorder
from selfheal.runtime.settings import Settings
from selfheal.store import RunStatus, Store
from selfheal.workflows import Runbook, WorkflowEngine

# Workflow engine states of a run that ended without reaching the runbook's end.
_ENDED_UNFINISHED = frozenset({"ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"})


def workflow_id_for(incident: Incident, runbook: str) -> str:
    """The idempotency key of a remediation: one per incident and runbook."""
    return f"remediate.{incident.id}.{runbook}"


class Dispatcher:
    """Starts remediations on the workflow engine and closes runs that never started."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        engine: WorkflowEngine,
        runbooks: Mapping[str, Runbook],
        recorder: Recorder,
        escalation: Escalation,
    ) -> None:
        self._settings = settings
        self._store = store
        self._engine = engine
        self._runbooks = runbooks
        self._recorder = recorder
        self._escalation = escalation

    def dispatch(self, incident: Incident, decision: Decision, *, at: float) -> None:
        plan = decision.plans[0]
        gate = None
        if decision.requires_approval:
            two = plan.runbook in self._settings.approvals.two_person
            gate = {"timeout": self._settings.approvals.timeout, "approvers": 2 if two else 1}
        workflow_id = workflow_id_for(incident, plan.runbook)
        context = incident_context(incident)
        try:
            params = self._runbooks[plan.runbook].resolve_params(plan.params)
            # Recorded before the engine starts it, so the next decision's guardrails
            # (concurrency, cooldown, rate limits) count this run even if its workflow has
            # not reached its first step yet. The workflow's own start record is idempotent.
            self._recorder.workflow_started(
                workflow_id=workflow_id,
                runbook=plan.runbook,
                params=params,
                incident=context,
                at=at,
                waits_for_approval=gate is not None,
            )
            self._engine.start(
                workflow_id=workflow_id,
                runbook=plan.runbook,
                params=plan.params,
                incident=context,
                approval=gate,
            )
        except ConfigError as exc:
            self._abandon(workflow_id, at=at)
            self._escalation.escalate(incident, f"the policy's plan cannot run: {exc}", at=at)
        except KeyError:
            self._escalation.escalate(
                incident, f"the policy chose unknown runbook {plan.runbook!r}", at=at
            )

    def _abandon(self, workflow_id: str, *, at: float) -> None:
        """Close a run recorded as started whose workflow never began (or cannot finish)."""
        run = self._store.workflows.find(WorkflowId(workflow_id))
        if run is not None and run.status is RunStatus.RUNNING:
            self._store.workflows.finish(
                WorkflowId(workflow_id), status=RunStatus.CANCELLED, outcome=Outcome.FAILED, at=at
            )

    def close_runs_that_cannot_finish(
        self, *, at: float, started_before: float | None = None
    ) -> None:
        """Close runs that will never finish, and escalate their incidents.

        A crash between recording a run and starting its workflow leaves a run with no
        workflow (nothing was done); a workflow the engine gave up on leaves one that will
        not move again. Either way a person should know. With
        `started_before`, only runs recorded before then (a live replica may be about to
        start a younger one).
        """
        for run in self._store.workflows.since(at):
            if started_before is not None and run.started_at >= started_before:
                continue
            if run.status is not RunStatus.RUNNING:
                continue
            status = self._engine.status(run.workflow_id)
            if status is None:
                reason = "the controller stopped before its runbook started"
            elif status in _ENDED_UNFINISHED:
                # The engine gave the run up (a bug, or recovered too often): it will not
                # finish, and a person must look at what it left.
                reason = f"the runbook's run ended in the workflow engine unfinished ({status})"
            else:
                continue
            self._abandon(run.workflow_id, at=at)
            incident = self._store.incidents.get(run.incident_id)
            if incident.state in {IncidentState.REMEDIATING, IncidentState.AWAITING_APPROVAL}:
                self._escalation.escalate(incident, reason, at=at)
