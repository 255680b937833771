"""Decisions in the running controller: over budget escalates instead of scaling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.domain.model import Alert, AlertState, IncidentState
from selfheal.domain.time import ScaledClock
from selfheal.runtime.controller import Controller
from selfheal.runtime.settings import BudgetSettings, load_settings
from selfheal.telemetry.scrape import Target
from selfheal.twin import scenario, server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale" / "selfheal.yaml"


@pytest.fixture
def poor_controller(tmp_path: Path) -> Iterator[tuple[Controller, server.TwinServer]]:
    """The example controller with a daily budget of 10 USD, far below a scale-up's cost."""
    clock = ScaledClock(speed=30)
    twin = server.TwinServer(server.Twin(scenario.load("flash-sale"), clock=clock))
    twin.start()
    settings = load_settings(EXAMPLE).model_copy(
        update={"state_dir": tmp_path / "state", "budget": BudgetSettings(daily=10.0)}
    )
    made = Controller(
        settings,
        clock=clock,
        cluster=KubernetesCluster(host=twin.url),
        targets=[Target(url=f"{twin.url}/metrics")],
    )
    try:
        yield made, twin
    finally:
        made.close()
        twin.stop()


def test_over_budget_means_no_scale_and_escalation(
    poor_controller: tuple[Controller, server.TwinServer],
) -> None:
    """A scale-up over today's budget is denied: escalated, on-call told why, nothing touched."""
    controller, twin = poor_controller
    labels = {
        "alertname": "OrderServiceCPUThrottling",
        "namespace": "production",
        "service": "order-service",
        "deployment": "order-service",
        "severity": "critical",
        "remediation": "scale-up",
    }
    now = controller.clock.now()
    alert = Alert(
        name="OrderServiceCPUThrottling",
        labels=labels,
        annotations={},
        state=AlertState.FIRING,
        value=0.9,
        active_at=now - 3,
        fired_at=now,
    )
    result = controller.intake.receive(alert, at=now)
    assert result.incident is not None
    decision = controller.decide(result.incident, at=now)
    assert decision is not None
    assert decision.plans == ()
    assert any("over the remaining budget" in reason for reason in decision.deny)
    incident = controller.store.incidents.get(result.incident.id)
    assert incident.state == IncidentState.ESCALATED
    [notification] = controller.store.notifications.list(incident_id=incident.id)
    assert notification.channel == "on-call"
    assert "budget" in notification.message
    assert httpx.get(f"{twin.url}/twin/requests").json() == []


def throttling_alert(deployment: str, *, now: float) -> Alert:
    return Alert(
        name="CPUThrottling",
        labels={
            "namespace": "production",
            "deployment": deployment,
            "service": deployment,
            "remediation": "scale-up",
        },
        annotations={},
        state=AlertState.FIRING,
        value=0.9,
        active_at=now - 3,
        fired_at=now,
    )


def test_a_dispatched_run_counts_for_the_very_next_decision(tmp_path: Path) -> None:
    """Under `concurrency: {global: 1}`, the second of two back-to-back decisions is refused.

    The first run is on record before its workflow reaches its first step.
    """
    rails = tmp_path / "guardrails.yaml"
    rails.write_text("concurrency: {global: 1}\n", encoding="utf-8")
    clock = ScaledClock(speed=30)
    twin = server.TwinServer(server.Twin(scenario.load("flash-sale"), clock=clock))
    twin.start()
    settings = load_settings(EXAMPLE).model_copy(
        update={"state_dir": tmp_path / "state", "guardrails": rails}
    )
    controller = Controller(
        settings, clock=clock, cluster=KubernetesCluster(host=twin.url), targets=[]
    )
    try:
        controller.engine.launch()
        now = clock.now()
        first, second = (
            controller.intake.receive(throttling_alert(name, now=now), at=now).incident
            for name in ("order-service", "catalog")
        )
        assert first is not None
        assert second is not None
        controller.decide(first, at=now)
        controller.decide(second, at=now)
        assert controller.store.incidents.get(first.id).state == IncidentState.REMEDIATING
        refused = controller.store.incidents.get(second.id)
        assert refused.state == IncidentState.ESCALATED
        [notification] = controller.store.notifications.list(incident_id=second.id)
        assert "guardrail concurrency: 1 remediations running, at the limit of 1" in (
            notification.message
        )
    finally:
        controller.engine.shutdown()
        controller.close()
        twin.stop()
