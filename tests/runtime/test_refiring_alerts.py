"""Alerts that fire again and again during a remediation join it; one workflow runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.domain.model import Alert, AlertState
from selfheal.domain.time import ScaledClock
from selfheal.runtime.controller import Controller
from selfheal.runtime.settings import load_settings
from selfheal.telemetry.scrape import Target
from selfheal.twin import scenario, server

from support import wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flash-sale" / "selfheal.yaml"


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[tuple[Controller, server.TwinServer]]:
    clock = ScaledClock(speed=30)
    twin = server.TwinServer(server.Twin(scenario.load("flash-sale"), clock=clock))
    twin.start()
    settings = load_settings(EXAMPLE).model_copy(update={"state_dir": tmp_path / "state"})
    made = Controller(
        settings,
        clock=clock,
        cluster=KubernetesCluster(host=twin.url),
        targets=[Target(url=f"{twin.url}/metrics")],
    )
    made.engine.launch()
    try:
        yield made, twin
    finally:
        made.engine.shutdown()
        made.close()
        twin.stop()


def throttling_alert(fired_at: float) -> Alert:
    labels = {
        "alertname": "OrderServiceCPUThrottling",
        "namespace": "production",
        "service": "order-service",
        "deployment": "order-service",
        "severity": "critical",
        "remediation": "scale-up",
    }
    return Alert(
        name="OrderServiceCPUThrottling",
        labels=labels,
        annotations={},
        state=AlertState.FIRING,
        value=0.9,
        active_at=fired_at - 3,
        fired_at=fired_at,
    )


def test_refired_alerts_start_no_second_workflow(
    controller: tuple[Controller, server.TwinServer],
) -> None:
    """Ten re-fires (new fired_at each time) and duplicates: one incident, one workflow."""
    loop, twin = controller
    now = loop.clock.now()

    async def fire() -> None:
        for index in range(10):
            alert = throttling_alert(now + index)
            await loop.handle_alert(alert, at=now + index)
            await loop.handle_alert(alert, at=now + index)  # an exact duplicate

    asyncio.run(fire())
    incidents = loop.store.incidents.list()
    assert len(incidents) == 1
    assert incidents[0].alert_count == 10

    def started() -> list[str]:
        return [r.subject for r in loop.store.audit.records() if r.kind == "workflow.started"]

    wait_until(started, timeout=30)

    def scale_ups() -> list[dict[str, object]]:
        changes = httpx.get(f"{twin.url}/twin/requests", timeout=10).json()
        return [
            c
            for c in changes
            if c["path"].endswith("/order-service/scale")
            and json.loads(c["body"])["spec"]["replicas"] == 5
        ]

    wait_until(scale_ups, timeout=30)
    # Let the one workflow finish (nothing scrapes here, so verify is inconclusive and it
    # rolls back): only then is it certain that no second one started.
    loop.engine.result(started()[0], timeout=60)
    assert len(started()) == 1
    assert len(scale_ups()) == 1
