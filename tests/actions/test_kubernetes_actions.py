"""Kubernetes step types against the twin, through the official client over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from selfheal.actions import kubernetes_actions
from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.domain.actions import Invocation, StepFailed
from selfheal.domain.errors import PermanentError
from selfheal.domain.time import ScaledClock

from support import RunningTwin


class Memo:
    """The durable memo as a dict (the store implements it for real in runtime)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}

    def recall(self, key: str, name: str) -> Any:
        return self.values.get((key, name))

    def recall_all(self, key: str) -> dict[str, Any]:
        return {name: value for (owner, name), value in self.values.items() if owner == key}

    def remember(self, key: str, name: str, value: Any, *, kind: str, at: float) -> None:
        self.values[(key, name)] = value


def invocation(memo: Memo, *, timeout: float = 60.0, speed: float = 60.0) -> Invocation:
    clock = ScaledClock(speed=speed)
    return Invocation(
        workflow_id="wf",
        runbook="scale-up",
        step_id="scale",
        step_type="kubernetes.scale",
        attempt=1,
        deadline=clock.now() + timeout,
        clock=clock,
        incident={"id": "inc"},
        memo=memo,
    )


def scale_requests(twin: RunningTwin) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = httpx.get(f"{twin.url}/twin/requests").json()
    return [c for c in changes if c["path"].endswith("/scale")]


def test_scale_remembers_previous_replicas_and_does_not_patch_twice(twin: RunningTwin) -> None:
    """A re-run of the same step keeps the first-seen replica count and sends no 2nd patch."""
    action = kubernetes_actions.scale_action(KubernetesCluster(host=twin.url))
    memo = Memo()
    params = {"namespace": "production", "deployment": "order-service", "replicas": 5}
    first = action.run(params, invocation(memo))
    again = action.run(params, invocation(memo))
    assert (first["previous_replicas"], first["changed"]) == (2, True)
    assert (again["previous_replicas"], again["changed"]) == (2, False)
    assert len(scale_requests(twin)) == 1


@pytest.mark.parametrize("name", ["order-service; rm -rf /", "Order_Service", "$(reboot)", ""])
def test_names_that_are_not_dns_labels_are_refused_before_any_request(
    twin: RunningTwin, name: str
) -> None:
    """A deployment name from an alert is checked; a bad one never reaches the API."""
    action = kubernetes_actions.scale_action(KubernetesCluster(host=twin.url))
    params = {"namespace": "production", "deployment": name, "replicas": 3}
    with pytest.raises(PermanentError, match="DNS-1123"):
        action.run(params, invocation(Memo()))
    assert scale_requests(twin) == []


def test_wait_available_returns_once_new_replicas_are_ready(twin: RunningTwin) -> None:
    """After a scale, the wait step returns when all replicas are available."""
    cluster = KubernetesCluster(host=twin.url)
    cluster.scale("production", "catalog", 4)
    waiter = kubernetes_actions.wait_available_action(cluster)
    result = waiter.run(
        {"namespace": "production", "deployment": "catalog", "replicas": 4}, invocation(Memo())
    )
    assert result["available"] == 4
    assert result["waited_s"] >= 5


def test_wait_available_fails_when_the_deadline_passes(twin: RunningTwin) -> None:
    """Replicas that cannot be scheduled make the wait step fail at its timeout."""
    cluster = KubernetesCluster(host=twin.url)
    cluster.scale("production", "frontend", 100)
    waiter = kubernetes_actions.wait_available_action(cluster)
    with pytest.raises(StepFailed, match="available when the step timed out"):
        waiter.run(
            {"namespace": "production", "deployment": "frontend"}, invocation(Memo(), timeout=20)
        )


def test_a_scale_naming_a_stale_resource_version_is_refused_and_changes_nothing(
    twin: RunningTwin,
) -> None:
    """The fencing precondition: a write decided on an old read gets 409, not applied."""
    from selfheal.actions.kubernetes_client import ConflictError  # noqa: PLC0415

    cluster = KubernetesCluster(host=twin.url)
    stale = cluster.deployment("production", "order-service")
    cluster.scale("production", "order-service", stale.replicas + 1)  # someone else writes
    with pytest.raises(ConflictError):
        cluster.scale("production", "order-service", 7, resource_version=stale.resource_version)
    assert cluster.deployment("production", "order-service").replicas == stale.replicas + 1


def test_scale_reads_again_when_the_deployment_changed_since_its_read(
    twin: RunningTwin,
) -> None:
    """Another writer between read and write: the step re-reads, then writes only if needed."""
    cluster = KubernetesCluster(host=twin.url)
    original_read = cluster.deployment
    reads = {"count": 0}

    def read_then_someone_scales(namespace: str, name: str) -> Any:
        state = original_read(namespace, name)
        reads["count"] += 1
        if reads["count"] == 1:  # after the step's first read, another writer sets 5
            KubernetesCluster(host=twin.url).scale(namespace, name, 5)
        return state

    cluster.deployment = read_then_someone_scales  # type: ignore[method-assign]
    action = kubernetes_actions.scale_action(cluster)
    before = len(scale_requests(twin))
    result = action.run(
        {"namespace": "production", "deployment": "order-service", "replicas": 5},
        invocation(Memo()),
    )
    assert reads["count"] == 2
    assert result["changed"] is False
    # The other writer's scale and the step's refused one: no second successful write.
    statuses = [r["status"] for r in scale_requests(twin)[before:]]
    assert statuses == [200, 409]
