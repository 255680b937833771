"""Step types that record, charge and escalate: notify, the budget, escalation, wait.

`budget.check` is the article's cost check made real: the extra replicas times the cost per
replica-hour, for the rest of a day (24 h, the budget's period), against what is left of the
daily budget. Within budget, the amount is charged to the ledger under the step's
idempotency key (so a re-run charges once); over budget, the step fails and the runbook's
compensation escalates. `budget.refund`, in compensation, gives the charge back once the
deployment is back to its replicas before the scale: nothing that costs is left running.
`notify` can end its message with the target's state read back from the cluster, so a page
says what is, not what the runbook meant to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.actions.ports import Budget, Incidents, Notifier
from selfheal.domain.actions import ActionSpec, Invocation, StepFailed, StepType
from selfheal.domain.errors import PermanentError, SelfhealError
from selfheal.formats.durations import parse_duration

_HOURS_PER_BUDGET_PERIOD = 24.0


def notify_action(notifier: Notifier, cluster: KubernetesCluster | None = None) -> ActionSpec:
    def run(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        channel = str(params.get("channel", "on-call"))
        message = str(params["message"])
        severity = str(params.get("severity", "warning"))
        about = params.get("state_of")
        if about is not None and cluster is not None:
            # The page tells the target's state as the cluster has it now, not as the
            # runbook hoped to leave it: what a person reads at 3 a.m. must be true.
            message = f"{message.rstrip()} {_state_now(cluster, str(about))}"
        notification_id = notifier.notify(
            channel=channel,
            message=message,
            severity=severity,
            incident=invocation.incident,
            key=invocation.idempotency_key,
            at=invocation.clock.now(),
        )
        return {"notification_id": notification_id, "channel": channel, "message": message}

    return ActionSpec(
        StepType(
            "notify",
            frozenset({"channel", "message", "severity", "state_of"}),
            frozenset({"message"}),
            "Record a notification for a channel (and deliver it to its webhook); with "
            "`state_of: NAMESPACE/DEPLOYMENT`, the deployment's replicas read back now.",
            lenient_templates=True,
        ),
        run,
    )


def _state_now(cluster: KubernetesCluster, about: str) -> str:
    namespace, _, name = about.partition("/")
    try:
        state = cluster.deployment(namespace, name)
    except SelfhealError as exc:
        return f"Now: {about} could not be read ({exc})."
    return (
        f"Now: {about} has {state.replicas} replicas desired, {state.available} available "
        "(read back for this message)."
    )


def budget_check_action(budget: Budget) -> ActionSpec:
    def run(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        current, wanted = params.get("current_replicas"), params.get("replicas")
        for name, value in (("current_replicas", current), ("replicas", wanted)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PermanentError(f"budget.check: {name} must be a non-negative integer")
        assert isinstance(current, int)
        assert isinstance(wanted, int)
        extra = max(0, wanted - current)
        rate = float(params.get("cost_per_replica_hour", budget.cost_per_replica_hour()))
        cost = round(extra * rate * _HOURS_PER_BUDGET_PERIOD, 2)
        at = invocation.clock.now()
        # A re-run after a crash finds its own charge already in the ledger.
        already = budget.charged(key=invocation.idempotency_key)
        remaining = budget.remaining(at=at) + (already or 0.0)
        output = {
            "extra_replicas": extra,
            "cost": cost,
            "remaining_before": round(remaining, 2),
            "cost_per_replica_hour": rate,
        }
        if cost > remaining:
            raise StepFailed(
                f"over budget: {extra} extra replicas cost {cost:.2f} per day, "
                f"{remaining:.2f} left today",
                output=output,
            )
        if already is None and cost > 0:
            budget.charge(
                key=invocation.idempotency_key,
                amount=cost,
                reason=f"{extra} extra replicas for a day",
                incident=invocation.incident,
                at=at,
            )
        return output

    return ActionSpec(
        StepType(
            "budget.check",
            frozenset({"current_replicas", "replicas", "cost_per_replica_hour"}),
            frozenset({"current_replicas", "replicas"}),
            "Refuse to scale past the daily cost budget; charge the ledger when within.",
        ),
        run,
    )


def budget_refund_action(budget: Budget, cluster: KubernetesCluster) -> ActionSpec:
    def run(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        charged_by = str(params.get("charged_by", "budget"))
        scaled_by = str(params.get("scaled_by", "scale"))
        namespace, name = str(params["namespace"]), str(params["deployment"])
        key = f"{invocation.workflow_id}/{charged_by}"
        charged = budget.charged(key=key)
        if not charged:
            return {"refunded": 0.0, "summary": "nothing was charged"}
        previous = invocation.recall_of(scaled_by, "previous_replicas")
        if previous is not None:
            now = cluster.deployment(namespace, name).replicas
            if now > previous:
                # The extra replicas are still there (the rollback failed): they still cost.
                return {
                    "refunded": 0.0,
                    "summary": f"{name} still has {now} replicas (had {previous}): charge kept",
                }
        refunded = budget.refund(
            key=key,
            reason=f"refund: {name} is back to what it had",
            incident=invocation.incident,
            at=invocation.clock.now(),
        )
        return {"refunded": refunded, "summary": f"refunded {refunded:.2f}"}

    return ActionSpec(
        StepType(
            "budget.refund",
            frozenset({"charged_by", "scaled_by", "namespace", "deployment"}),
            frozenset({"namespace", "deployment"}),
            "Refund a budget step's charge once the deployment is back to its replicas "
            "before the scale (compensation).",
        ),
        run,
    )


def escalate_action(incidents: Incidents) -> ActionSpec:
    def run(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        reason = str(params.get("reason", "remediation failed"))
        incidents.escalate(
            incident_id=str(invocation.incident["id"]), reason=reason, at=invocation.clock.now()
        )
        return {"escalated": True, "reason": reason}

    return ActionSpec(
        StepType(
            "incident.escalate",
            frozenset({"reason"}),
            frozenset(),
            "Mark the incident escalated to people.",
        ),
        run,
    )


def wait_action() -> ActionSpec:
    def run(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        seconds = parse_duration(params["duration"])
        invocation.clock.sleep_blocking(min(seconds, max(0.0, invocation.time_left())))
        return {"waited_s": seconds}

    return ActionSpec(
        StepType(
            "wait",
            frozenset({"duration"}),
            frozenset({"duration"}),
            "Pause for a duration of scenario time.",
        ),
        run,
    )
