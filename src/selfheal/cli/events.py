"""Audit records told as one line each, for a person watching the loop run."""

from __future__ import annotations

from typing import Any

from selfheal.formats.durations import format_duration


def describe(  # noqa: PLR0911 - one return per kind of record reads best
    kind: str, subject: str, payload: dict[str, Any]
) -> str | None:
    """A short line for an audit record, or None for records not worth a line."""
    if kind == "incident.opened":
        return (
            f"[bold]{payload.get('alert_name')}[/] firing: incident {subject} opened "
            f"about {'/'.join(str(p) for p in payload.get('target', [])[1:] if p)}"
        )
    if kind == "decision.recorded":
        plans = payload.get("plans") or []
        deny = payload.get("deny") or []
        if deny:
            return f"policy [red]denied[/]: {'; '.join(deny)}"
        if plans:
            return f"policy chose [cyan]{plans[0].get('runbook')}[/]: {plans[0].get('reason')}"
        return "policy: no remediation for this alert"
    if kind == "workflow.started":
        return f"runbook [cyan]{payload.get('runbook')}[/] started ({subject})"
    if kind == "action.completed":
        return _step(subject, payload)
    if kind == "incident.state":
        colour = {
            "verified": "green",
            "escalated": "red",
            "rolled_back": "yellow",
            "resolved": "green",
        }.get(str(payload.get("to")), "white")
        return f"incident {subject} -> [{colour}]{payload.get('to')}[/] ({payload.get('reason')})"
    if kind == "notification.recorded":
        return f"[yellow]notified {payload.get('channel', 'on-call')}[/]"
    if kind == "remediation.waiting":
        return (
            f"incident {subject} waits: {payload.get('waiting_for')} is already remediating "
            "the same target"
        )
    if kind == "budget.charged":
        amount = float(payload.get("amount") or 0.0)
        word = "charged" if amount >= 0 else "refunded"
        return f"budget {word} {abs(amount):.2f} {payload.get('currency')}"
    return None


def _step(subject: str, payload: dict[str, Any]) -> str:
    result = payload.get("result") or {}
    output = result.get("output") or {}
    step = subject.rpartition("/")[2]
    kind = result.get("step_type", "")
    failed = payload.get("status") != "succeeded"
    mark = "[red]failed[/]" if failed else "[green]ok[/]"
    detail = ""
    if kind == "kubernetes.scale":
        detail = (
            f"{output.get('deployment')} {output.get('previous_replicas')} -> "
            f"{output.get('replicas')} replicas"
        )
    elif kind == "kubernetes.wait_available":
        detail = (
            f"{output.get('available')} replicas available after "
            f"{format_duration(float(output.get('waited_s', 0)))}"
        )
    elif kind == "verify":
        worst = output.get("worst") or {}
        detail = ", ".join(
            f"{name}: {value * 1000:.0f} ms"
            for name, value in worst.items()
            if isinstance(value, int | float)
        )
    elif kind == "budget.check":
        detail = (
            f"{output.get('extra_replicas')} extra replicas cost "
            f"{output.get('cost', 0):.2f}/day of {output.get('remaining_before', 0):.2f} "
            "left"
        )
    elif kind == "notify":
        detail = str(output.get("message", ""))
    elif kind == "incident.escalate":
        detail = f"escalated: {output.get('reason', '')}"
    elif kind == "approval.wait" and not failed:
        detail = "approved by " + ", ".join(str(who) for who in output.get("approved_by", []))
    if failed and result.get("error"):
        detail = f"{detail} - {result['error']}" if detail else str(result["error"])
    compensation = " (compensation)" if result.get("compensation") else ""
    return f"step {step}{compensation} {mark}" + (f": {detail}" if detail else "")
