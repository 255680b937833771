"""Deciding on an incident: the policy's choice, then modes, guardrails and dispatch.

The order is the safety envelope's (docs/guardrails.md): the policy says what would fix the
incident; the mode (enforce, shadow, off) says whether anything may act; a target already
being remediated makes a second symptom wait instead of tripping guardrails; the guardrails
may refuse; only then is the runbook dispatched. Each outcome is recorded: the decision with
its input and bundle hash, and the incident's move with its reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from selfheal.decision import guardrails, policy
from selfheal.decision.engine import PolicyError
from selfheal.domain.model import Decision, Incident, IncidentId, IncidentState, Outcome, Plan
from selfheal.domain.time import Clock
from selfheal.runtime.dispatch import Dispatcher
from selfheal.runtime.escalation import Escalation
from selfheal.runtime.guardrail_facts import GuardrailCheck
from selfheal.runtime.policy_input import InputCache, PolicyInputBuilder
from selfheal.runtime.recorder import IncidentStore
from selfheal.runtime.settings import Settings
from selfheal.store import RunStatus, Store
from selfheal.workflows import Runbook

_RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


class Decider:
    """Evaluates the policy for incidents and carries out what it chose."""

    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        store: Store,
        incidents: IncidentStore,
        bundle: policy.PolicyBundle,
        inputs: PolicyInputBuilder,
        guardrail_check: GuardrailCheck,
        dispatcher: Dispatcher,
        escalation: Escalation,
        runbooks: Mapping[str, Runbook],
    ) -> None:
        self._settings = settings
        self._runbooks = runbooks
        self._clock = clock
        self._store = store
        self._incidents = incidents
        self._bundle = bundle
        self._inputs = inputs
        self._guardrails = guardrail_check
        self._dispatcher = dispatcher
        self._escalation = escalation
        # Incidents waiting for another remediation of their target to end, and for which.
        self.waiting: dict[IncidentId, IncidentId] = {}

    def decide_many(self, incidents: Sequence[Incident], *, at: float) -> None:
        """Decide several open incidents at once, as `decide` would one by one.

        The policy is evaluated for the whole batch first, writing nothing. Decisions that
        plan nothing are recorded together in one transaction, and their incidents stay
        `open`: recording the decision is all there is to do, so a stop cannot split it (an
        open incident with no decision is decided again at the next start). Decisions that
        act (a plan, a denial, a hold) go through `deciding` one at a time, as in `decide`.
        """
        if not incidents:
            return
        if self._settings.modes.policy == "off" or len(incidents) == 1:
            for incident in incidents:
                self.decide(incident, at=at)
            return
        settled: list[Decision] = []
        acting: list[tuple[Incident, Decision]] = []
        failed: list[tuple[Incident, str]] = []
        cache = InputCache()  # one read of each target and of the day's spend per batch
        inputs = [self._inputs.build(incident, at=at, cache=cache) for incident in incidents]
        for incident, policy_input, raw in zip(
            incidents, inputs, self._bundle.evaluate_many(inputs), strict=True
        ):
            try:
                if isinstance(raw, PolicyError):
                    raise raw
                decision = self._decision_of(incident, policy_input, raw)
            except PolicyError as exc:
                failed.append((incident, f"the policy failed: {exc}"))
                continue
            if decision.plans or decision.deny or self._mode_of(decision) != "enforce":
                acting.append((incident, decision))
            else:
                settled.append(decision)
        self._store.decisions.record_many(settled, at=self._clock.now())
        for incident, decision in acting:
            moved = self._incidents.claim(
                incident.id, IncidentState.DECIDING, reason="evaluating policy", at=at
            )
            if moved is None:
                continue  # something else moved it meanwhile (resolved, another replica)
            try:
                self._store.decisions.record(decision)
                self._act_on(moved, decision, at=self._clock.now())
            except Exception:
                # Give the claim back, so the one-at-a-time retry decides it again.
                self._incidents.move(
                    incident.id, IncidentState.OPEN, reason="deciding failed; again", at=at
                )
                raise
        for incident, reason in failed:
            self._escalation.escalate(incident, reason, at=self._clock.now())

    def give_up(self, incident: Incident, reason: str, *, at: float) -> None:
        """Hand an incident the controller could not decide to a person."""
        self._escalation.escalate(incident, reason, at=at)

    def _evaluate(self, incident: Incident, *, at: float) -> Decision:
        """The policy's decision on an incident (raises PolicyError when the policy fails)."""
        policy_input = self._inputs.build(incident, at=at)
        return self._decision_of(incident, policy_input, self._bundle.evaluate(policy_input))

    def _decision_of(self, incident: Incident, policy_input: dict[str, Any], raw: Any) -> Decision:
        """The decision a policy's raw output makes (PolicyError if it breaks the contract)."""
        output = policy.parse_output(raw)
        plans = tuple(self._at_least_runbook_risk(plan) for plan in policy.to_plans(output))
        return Decision(
            incident_id=incident.id,
            plans=plans,
            deny=tuple(output.deny),
            requires_approval=output.requires_approval
            or any(
                plan.risk == "high" or plan.runbook in self._settings.approvals.required_for
                for plan in plans
            ),
            policy_input=policy_input,
            policy_output=raw if isinstance(raw, Mapping) else {"value": raw},
            bundle_hash=self._bundle.hash,
            decided_at=self._clock.now(),
        )

    def _at_least_runbook_risk(self, plan: Plan) -> Plan:
        """The plan with its risk raised to its runbook's declared risk, if the policy said less.

        The runbook says how much harm it can do; no policy (and no alert label a policy
        might read) can make it look safer, so a high-risk runbook always waits for a person.
        """
        runbook = self._runbooks.get(plan.runbook)
        if runbook is None or _RISK_ORDER[runbook.risk] <= _RISK_ORDER[plan.risk]:
            return plan
        return dataclasses.replace(plan, risk=runbook.risk)

    def _mode_of(self, decision: Decision) -> str:
        return (
            self._settings.modes.for_runbook(decision.plans[0].runbook)
            if decision.plans and not decision.deny
            else self._settings.modes.policy
        )

    def decide(self, incident: Incident, *, at: float) -> Decision | None:
        """Evaluate the policy for an incident and start what it chose (or escalate)."""
        if self._settings.modes.policy == "off":
            if incident.state != IncidentState.OPEN:
                self._incidents.move(
                    incident.id, IncidentState.OPEN, reason="the policy is off (modes)", at=at
                )
            return None
        claimed = self._incidents.claim(
            incident.id, IncidentState.DECIDING, reason="evaluating policy", at=at
        )
        if claimed is None:
            # Something else moved it meanwhile (resolved, say, or another replica is
            # deciding it): nothing to decide here.
            return None
        incident = claimed
        try:
            decision = self._evaluate(incident, at=at)
        except PolicyError as exc:
            self._escalation.escalate(incident, f"the policy failed: {exc}", at=at)
            return None
        self._store.decisions.record(decision)
        self._act_on(incident, decision, at=self._clock.now())
        return decision

    def _act_on(self, incident: Incident, decision: Decision, *, at: float) -> None:
        mode = self._mode_of(decision)
        if mode != "enforce":
            self._hold(incident, decision, mode=mode, at=at)
        elif decision.deny:
            self._escalation.escalate(incident, "; ".join(decision.deny), at=at)
        elif decision.plans and (busy := self._busy_with(incident)) is not None:
            self.waiting[incident.id] = busy
            self._store.audit.append(
                "remediation.waiting",
                incident.id,
                {"waiting_for": busy, "runbook": decision.plans[0].runbook},
                at=at,
            )
            self._incidents.move(
                incident.id,
                IncidentState.OPEN,
                at=at,
                reason=f"{busy} is already remediating the same target",
            )
        elif decision.plans:
            refusals = self._guardrails.refusals(incident, decision, at=at)
            if refusals:
                self._refuse(incident, decision, refusals, at=at)
            else:
                self._dispatcher.dispatch(incident, decision, at=at)
        else:
            self._incidents.move(
                incident.id, IncidentState.OPEN, reason="no remediation planned", at=at
            )

    def _refuse(
        self,
        incident: Incident,
        decision: Decision,
        refusals: list[guardrails.Refusal],
        *,
        at: float,
    ) -> None:
        """Record the guardrails' refusal as a decision of its own, and call a person."""
        rails_file = self._guardrails.file
        assert rails_file is not None  # only refusals of configured guardrails get here
        plan = decision.plans[0]
        reasons = tuple(f"guardrail {r.guardrail}: {r.reason}" for r in refusals)
        self._store.decisions.record(
            Decision(
                incident_id=incident.id,
                plans=(),
                deny=reasons,
                requires_approval=False,
                policy_input={
                    "refused_plan": {"runbook": plan.runbook, "params": dict(plan.params)},
                    "guardrails_file": str(rails_file.path),
                },
                policy_output={
                    "refusals": [{"guardrail": r.guardrail, "reason": r.reason} for r in refusals]
                },
                bundle_hash=rails_file.hash,
                decided_at=at,
            )
        )
        self._escalation.escalate(incident, "; ".join(reasons), at=at)

    def _hold(self, incident: Incident, decision: Decision, *, mode: str, at: float) -> None:
        """Shadow or off: record what enforcing would have done, and do none of it."""
        would: dict[str, Any]
        if decision.deny:
            would = {"escalate": "; ".join(decision.deny)}
        elif decision.plans:
            plan = decision.plans[0]
            would = {"runbook": plan.runbook, "params": dict(plan.params), "reason": plan.reason}
            if decision.requires_approval:
                would["requires_approval"] = True
        else:
            would = {}
        if would:
            self._store.audit.append(
                "remediation.withheld",
                incident.id,
                {"mode": mode, "would_have": would, "alert": incident.alert_name},
                at=at,
            )
        what = would.get("runbook") or ("escalate" if "escalate" in would else "nothing")
        self._incidents.move(
            incident.id,
            IncidentState.OPEN,
            reason=f"{mode} mode: would have run {what}, did nothing",
            at=at,
        )

    def _busy_with(self, incident: Incident) -> IncidentId | None:
        """Another incident whose remediation of the same target is under way, if any.

        Checked before the guardrails: a second symptom of a problem already being fixed
        waits quietly instead of tripping the cooldown and paging someone.
        """
        busy = (IncidentState.REMEDIATING, IncidentState.AWAITING_APPROVAL)
        for other in self._store.incidents.list(states=busy):
            if other.id != incident.id and other.target == incident.target:
                return other.id
        return None

    def decide_waiting(self, *, at: float) -> None:
        """Decide again on incidents that waited for a remediation that has now failed.

        A failed or rolled-back fix leaves the other symptoms of the target unhandled, so
        they are decided afresh, and the guardrails (cooldown, circuit breaker) rule on
        trying again. After a verified fix they keep waiting for their alert to resolve
        (or to fire anew): deciding at once would act twice on one problem.
        """
        for waiting_id, blocker_id in list(self.waiting.items()):
            runs = self._store.workflows.of_incident(blocker_id)
            if runs and runs[-1].status is RunStatus.RUNNING:
                continue  # its compensation may still be running: wait for the run's end
            del self.waiting[waiting_id]
            failed = bool(runs) and runs[-1].outcome in {Outcome.ROLLED_BACK, Outcome.FAILED}
            incident = self._store.incidents.get(waiting_id)
            if failed and incident.state == IncidentState.OPEN:
                self.decide(incident, at=at)
