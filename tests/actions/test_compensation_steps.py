"""Compensation from whatever point a run reached: restore, refund, and a page that is true.

The steps run against the real twin through the real Kubernetes client; the budget is the
store's ledger behind the recorder, as in the controller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from selfheal.actions import bookkeeping, kubernetes_actions
from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.domain.actions import Invocation
from selfheal.domain.model import Fingerprint, WorkflowId
from selfheal.domain.time import ScaledClock
from selfheal.runtime.recorder import IncidentStore, Recorder
from selfheal.runtime.settings import Settings
from selfheal.store import Store, day_of, open_store

from support import RunningTwin

TARGET = {"namespace": "production", "deployment": "order-service"}
WORKFLOW = WorkflowId("remediate.fp-1.scale-up")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


@pytest.fixture
def recorder(store: Store, tmp_path: Path) -> Recorder:
    settings = Settings.model_validate(
        {
            "twin": {},
            "rules": [str(tmp_path / "rules.yaml")],
            "policies": str(tmp_path),
            "runbooks": str(tmp_path),
            "budget": {"daily": 100, "cost_per_replica_hour": 0.5},
        }
    )
    incident, _ = store.incidents.open_or_join(
        Fingerprint("fp"), alert_name="Slow", labels={}, annotations={}, at=1.0
    )
    store.workflows.start(WORKFLOW, incident_id=incident.id, runbook="scale-up", params={}, at=1.0)
    return Recorder(store=store, settings=settings, incidents=IncidentStore(store))


def invocation(recorder: Recorder, step: str, step_type: str) -> Invocation:
    clock = ScaledClock(speed=60.0)
    return Invocation(
        workflow_id=WORKFLOW,
        runbook="scale-up",
        step_id=step,
        step_type=step_type,
        attempt=1,
        deadline=clock.now() + 60.0,
        clock=clock,
        incident={"id": None},
        memo=recorder,
    )


def scale_to(recorder: Recorder, cluster: KubernetesCluster, replicas: int) -> None:
    action = kubernetes_actions.scale_action(cluster)
    action.run({**TARGET, "replicas": replicas}, invocation(recorder, "scale", "kubernetes.scale"))


def test_restore_puts_back_what_the_scale_found(twin: RunningTwin, recorder: Recorder) -> None:
    """After a scale from 2 to 5, the restore step sets 2 again and says so."""
    cluster = KubernetesCluster(host=twin.url)
    scale_to(recorder, cluster, 5)
    restore = kubernetes_actions.restore_replicas_action(cluster)
    result = restore.run(
        dict(TARGET), invocation(recorder, "rollback", "kubernetes.restore_replicas")
    )
    assert (result["restored_to"], result["found"], result["changed"]) == (2, 5, True)
    assert cluster.deployment("production", "order-service").replicas == 2
    again = restore.run(
        dict(TARGET), invocation(recorder, "rollback", "kubernetes.restore_replicas")
    )
    assert again["changed"] is False


def test_restore_after_a_scale_that_never_read_the_deployment_does_nothing(
    twin: RunningTwin, recorder: Recorder
) -> None:
    """A scale that failed before it read the deployment changed nothing: nothing to undo."""
    restore = kubernetes_actions.restore_replicas_action(KubernetesCluster(host=twin.url))
    result = restore.run(
        dict(TARGET), invocation(recorder, "rollback", "kubernetes.restore_replicas")
    )
    assert result["changed"] is False
    assert "nothing to restore" in result["summary"]


def charge(recorder: Recorder, amount: float) -> None:
    check = bookkeeping.budget_check_action(recorder)
    check.run(
        {"current_replicas": 2, "replicas": 2 + int(amount // 12)},
        invocation(recorder, "budget", "budget.check"),
    )


def test_a_charge_is_refunded_once_the_deployment_is_back(
    twin: RunningTwin, recorder: Recorder, store: Store
) -> None:
    """Charged for 3 replicas, scaled, rolled back: the day's spend is what it was, once."""
    cluster = KubernetesCluster(host=twin.url)
    charge(recorder, 36.0)
    scale_to(recorder, cluster, 5)
    kubernetes_actions.restore_replicas_action(cluster).run(
        dict(TARGET), invocation(recorder, "rollback", "kubernetes.restore_replicas")
    )
    refund = bookkeeping.budget_refund_action(recorder, cluster)
    result = refund.run(dict(TARGET), invocation(recorder, "refund", "budget.refund"))
    assert result["refunded"] == pytest.approx(36.0)
    refund.run(dict(TARGET), invocation(recorder, "refund", "budget.refund"))  # a re-run
    day = day_of(ScaledClock().now())
    assert store.budget.spent_on(day) == pytest.approx(0.0)


def test_a_charge_stands_while_the_extra_replicas_still_run(
    twin: RunningTwin, recorder: Recorder, store: Store
) -> None:
    """If the rollback failed and 5 replicas still run, they still cost: no refund."""
    cluster = KubernetesCluster(host=twin.url)
    charge(recorder, 36.0)
    scale_to(recorder, cluster, 5)
    result = bookkeeping.budget_refund_action(recorder, cluster).run(
        dict(TARGET), invocation(recorder, "refund", "budget.refund")
    )
    assert result["refunded"] == 0.0
    assert "charge kept" in result["summary"]
    assert store.budget.spent_on(day_of(ScaledClock().now())) == pytest.approx(36.0)


def test_a_page_ends_with_the_deployments_state_read_back_now(
    twin: RunningTwin, recorder: Recorder, store: Store
) -> None:
    """The page says what the cluster has, not what the runbook hoped to leave."""
    cluster = KubernetesCluster(host=twin.url)
    cluster.scale("production", "order-service", 4)
    notify = bookkeeping.notify_action(recorder, cluster)
    output = notify.run(
        {"message": "scale-up failed.", "state_of": "production/order-service"},
        invocation(recorder, "page", "notify"),
    )
    assert output["message"].startswith("scale-up failed. Now: production/order-service has 4")
    [sent] = store.notifications.list()
    assert "has 4 replicas desired" in sent.message
