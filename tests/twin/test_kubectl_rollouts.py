"""`kubectl rollout history`, `undo` and `status` against the twin's deployment controller."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from kubernetes import client

from support import kubectl_json, wait_until

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
NS = "production"
IMAGE = "registry.example.com/shop/app"
REVISION = "deployment.kubernetes.io/revision"


def _release(kubectl: Kubectl, version: str) -> None:
    """Roll catalog out to `version`, say why, and wait until the rollout is done."""
    kubectl("set", "image", "deployment/catalog", f"catalog={IMAGE}:{version}", "-n", NS)
    kubectl(
        "annotate",
        "deployment/catalog",
        f"kubernetes.io/change-cause=release {version}",
        "--overwrite",
        "-n",
        NS,
    )
    _wait_for_rollout(kubectl)


def _wait_for_rollout(kubectl: Kubectl) -> None:
    status = kubectl("rollout", "status", "deployment/catalog", "-n", NS, "--timeout=30s")
    assert 'deployment "catalog" successfully rolled out' in status.stdout


def _history(kubectl: Kubectl) -> dict[int, str]:
    """REVISION -> CHANGE-CAUSE, as `kubectl rollout history` prints them."""
    output = kubectl("rollout", "history", "deployment/catalog", "-n", NS).stdout
    lines = output.strip().splitlines()
    assert lines[1].split() == ["REVISION", "CHANGE-CAUSE"]
    return {int(line.split()[0]): line.split(maxsplit=1)[1] for line in lines[2:]}


def _pod_images(kubectl: Kubectl) -> set[str]:
    pods = kubectl_json(kubectl, "get", "pods", "-l", "app=catalog", "-n", NS)
    return {pod["spec"]["containers"][0]["image"] for pod in pods["items"]}


def _deployment_image(kubectl: Kubectl) -> str:
    deployment = kubectl_json(kubectl, "get", "deployment", "catalog", "-n", NS)
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def test_history_lists_each_revision_with_its_change_cause(kubectl: Kubectl) -> None:
    """Two releases make revisions 2 and 3, each with the change-cause it was annotated with."""
    assert _history(kubectl) == {1: "<none>"}
    _release(kubectl, "1.1.0")
    _release(kubectl, "1.2.0")
    assert _history(kubectl) == {1: "<none>", 2: "release 1.1.0", 3: "release 1.2.0"}
    detail = kubectl("rollout", "history", "deployment/catalog", "-n", NS, "--revision=2").stdout
    assert f"Image:\t{IMAGE}:1.1.0" in detail
    assert "pod-template-hash=" in detail


def test_undo_restores_the_previous_image_and_rolls_the_pods_over(kubectl: Kubectl) -> None:
    """`rollout undo` puts the previous template back; every pod then runs its image."""
    _release(kubectl, "1.1.0")
    assert _pod_images(kubectl) == {f"{IMAGE}:1.1.0"}
    result = kubectl("rollout", "undo", "deployment/catalog", "-n", NS)
    assert "deployment.apps/catalog rolled back" in result.stdout
    assert _deployment_image(kubectl) == f"{IMAGE}:1.0.0"
    _wait_for_rollout(kubectl)
    wait_until(lambda: _pod_images(kubectl) == {f"{IMAGE}:1.0.0"})
    # The restored template's ReplicaSet is now the newest revision.
    assert _history(kubectl) == {2: "release 1.1.0", 3: "<none>"}
    deployment = kubectl_json(kubectl, "get", "deployment", "catalog", "-n", NS)
    assert deployment["metadata"]["annotations"][REVISION] == "3"


def test_undo_to_a_revision_restores_that_revision(kubectl: Kubectl) -> None:
    """`--to-revision=2` brings back revision 2's image and change-cause, as revision 4."""
    _release(kubectl, "1.1.0")
    _release(kubectl, "1.2.0")
    kubectl("rollout", "undo", "deployment/catalog", "-n", NS, "--to-revision=2")
    _wait_for_rollout(kubectl)
    assert _deployment_image(kubectl) == f"{IMAGE}:1.1.0"
    wait_until(lambda: _pod_images(kubectl) == {f"{IMAGE}:1.1.0"})
    assert _history(kubectl) == {1: "<none>", 3: "release 1.2.0", 4: "release 1.1.0"}


def test_undo_to_the_current_revision_or_a_missing_one_changes_nothing(kubectl: Kubectl) -> None:
    """Undoing to the running revision is skipped; to an unknown one, refused by kubectl."""
    _release(kubectl, "1.1.0")
    same = kubectl("rollout", "undo", "deployment/catalog", "-n", NS, "--to-revision=2")
    assert "skipped rollback" in same.stdout
    missing = kubectl(
        "rollout", "undo", "deployment/catalog", "-n", NS, "--to-revision=9", check=False
    )
    assert missing.returncode != 0
    assert "unable to find specified revision 9" in missing.stderr
    assert _deployment_image(kubectl) == f"{IMAGE}:1.1.0"


def test_replicasets_are_owned_by_their_deployment_and_carry_the_template_hash(
    kubectl: Kubectl, kube_client: client.ApiClient
) -> None:
    """Each revision's ReplicaSet has the Deployment as controller owner, and its pods' hash."""
    _release(kubectl, "1.1.0")
    apps = client.AppsV1Api(kube_client)
    deployment = apps.read_namespaced_deployment("catalog", NS)
    replicasets = apps.list_namespaced_replica_set(NS, label_selector="app=catalog").items
    assert sorted(int(rs.metadata.annotations[REVISION]) for rs in replicasets) == [1, 2]
    for rs in replicasets:
        owner = rs.metadata.owner_references[0]
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "Deployment",
            "catalog",
            deployment.metadata.uid,
            True,
        )
        template_hash = rs.metadata.labels["pod-template-hash"]
        assert rs.metadata.name == f"catalog-{template_hash}"
        assert rs.spec.selector.match_labels["pod-template-hash"] == template_hash
    assert deployment.metadata.annotations[REVISION] == "2"
