"""The official `kubernetes` Python client against a running twin, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from support import RunningTwin, wait_until

MERGE_PATCH = "application/merge-patch+json"


@pytest.fixture
def api_client(twin: RunningTwin) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    configuration.host = twin.url
    with client.ApiClient(configuration) as api:
        yield api


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def test_scale_subresource_reads_current_replicas(apps: client.AppsV1Api) -> None:
    """Reading the scale subresource gives spec and status replicas and the selector."""
    scale = apps.read_namespaced_deployment_scale("order-service", "production")
    assert scale.kind == "Scale"
    assert scale.spec.replicas == 2
    assert scale.status.replicas == 2
    assert scale.status.selector == "app=order-service"


def test_patching_the_scale_subresource_scales_the_deployment(
    apps: client.AppsV1Api,
) -> None:
    """A merge patch of /scale changes the deployment; new pods become available later."""
    scaled = apps.patch_namespaced_deployment_scale(
        "order-service", "production", {"spec": {"replicas": 5}}, _content_type=MERGE_PATCH
    )
    assert scaled.spec.replicas == 5
    deployment = apps.read_namespaced_deployment("order-service", "production")
    assert deployment.spec.replicas == 5
    wait_until(
        lambda: (
            apps.read_namespaced_deployment_status(
                "order-service", "production"
            ).status.available_replicas
            == 5
        )
    )


def test_stale_resource_version_gets_409_and_changes_nothing(apps: client.AppsV1Api) -> None:
    """Replacing /scale with a resourceVersion that has moved on is a Conflict."""
    stale = apps.read_namespaced_deployment_scale("order-service", "production")
    apps.patch_namespaced_deployment_scale(
        "order-service", "production", {"spec": {"replicas": 3}}, _content_type=MERGE_PATCH
    )
    stale.spec.replicas = 7
    with pytest.raises(ApiException) as raised:
        apps.replace_namespaced_deployment_scale("order-service", "production", stale)
    assert raised.value.status == 409
    assert "the object has been modified" in raised.value.body
    assert apps.read_namespaced_deployment("order-service", "production").spec.replicas == 3


def test_current_resource_version_allows_replace(apps: client.AppsV1Api) -> None:
    """Replacing /scale with the current resourceVersion succeeds."""
    current = apps.read_namespaced_deployment_scale("catalog", "production")
    current.spec.replicas = 4
    replaced = apps.replace_namespaced_deployment_scale("catalog", "production", current)
    assert replaced.spec.replicas == 4


def test_deployment_patch_with_stale_resource_version_is_a_conflict(
    apps: client.AppsV1Api,
) -> None:
    """A merge patch naming an old resourceVersion is refused, as on a real API server."""
    old = apps.read_namespaced_deployment("frontend", "production")
    apps.patch_namespaced_deployment(
        "frontend", "production", {"spec": {"replicas": 4}}, _content_type=MERGE_PATCH
    )
    patch = {
        "metadata": {"resourceVersion": old.metadata.resource_version},
        "spec": {"replicas": 9},
    }
    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment("frontend", "production", patch, _content_type=MERGE_PATCH)
    assert raised.value.status == 409
    assert apps.read_namespaced_deployment("frontend", "production").spec.replicas == 4


def test_json_patch_with_invalid_value_gets_422_and_changes_nothing(
    apps: client.AppsV1Api,
) -> None:
    """A JSON patch setting replicas to a string is Invalid; the deployment is unchanged."""
    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment(
            "order-service",
            "production",
            [{"op": "replace", "path": "/spec/replicas", "value": "five"}],
        )
    assert raised.value.status == 422
    assert "spec.replicas" in raised.value.body
    assert apps.read_namespaced_deployment("order-service", "production").spec.replicas == 2


def test_strategic_merge_patch_merges_containers_by_name(apps: client.AppsV1Api) -> None:
    """A strategic merge patch of one container's limit keeps its other fields."""
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "payment-gateway", "resources": {"limits": {"cpu": "750m"}}},
                    ]
                }
            }
        }
    }
    apps.patch_namespaced_deployment(
        "payment-gateway",
        "production",
        patch,
        _content_type="application/strategic-merge-patch+json",
    )
    container = apps.read_namespaced_deployment(
        "payment-gateway", "production"
    ).spec.template.spec.containers[0]
    assert container.resources.limits["cpu"] == "750m"
    assert container.resources.requests["cpu"] == "100m"
    assert container.image


def test_dry_run_validates_without_changing(apps: client.AppsV1Api) -> None:
    """`dryRun=All` answers with the would-be object and leaves the deployment alone."""
    answer = apps.patch_namespaced_deployment_scale(
        "order-service",
        "production",
        {"spec": {"replicas": 8}},
        dry_run="All",
        _content_type=MERGE_PATCH,
    )
    assert answer.spec.replicas == 8
    assert apps.read_namespaced_deployment("order-service", "production").spec.replicas == 2


def test_list_pods_with_label_selector(core: client.CoreV1Api) -> None:
    """Listing pods with `app=order-service` returns its two running pods."""
    pods = core.list_namespaced_pod("production", label_selector="app=order-service")
    assert len(pods.items) == 2
    assert {pod.status.phase for pod in pods.items} == {"Running"}
    assert all(pod.metadata.owner_references[0].kind == "ReplicaSet" for pod in pods.items)


def test_delete_pod_is_followed_by_a_replacement(core: client.CoreV1Api) -> None:
    """Deleting a pod through the client leads to a new pod of the same ReplicaSet."""
    pods = core.list_namespaced_pod("production", label_selector="app=payment-gateway")
    victim = pods.items[0].metadata.name
    core.delete_namespaced_pod(victim, "production")
    after = core.list_namespaced_pod("production", label_selector="app=payment-gateway")
    names = {pod.metadata.name for pod in after.items}
    assert victim not in names
    assert len(names) == 2


def test_cordon_through_node_patch(core: client.CoreV1Api) -> None:
    """Patching spec.unschedulable cordons a node; a non-boolean value is Invalid."""
    core.patch_node("node-3", {"spec": {"unschedulable": True}})
    assert core.read_node("node-3").spec.unschedulable is True
    with pytest.raises(ApiException) as raised:
        core.patch_node("node-3", {"spec": {"unschedulable": "yes"}}, _content_type=MERGE_PATCH)
    assert raised.value.status == 422
    assert core.read_node("node-3").spec.unschedulable is True


def test_missing_objects_are_404_status(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    """Reads of objects that do not exist are 404 with a Status body naming them."""
    with pytest.raises(ApiException) as raised:
        apps.read_namespaced_deployment("checkout", "production")
    assert raised.value.status == 404
    assert '"reason":"NotFound"' in raised.value.body.replace(" ", "")
    with pytest.raises(ApiException):
        core.read_node("node-9")


def test_events_are_listed(core: client.CoreV1Api) -> None:
    """The events list holds the scheduling and start-up events of the initial pods."""
    events = core.list_namespaced_event("production")
    reasons = {event.reason for event in events.items}
    assert {"Scheduled", "Started", "SuccessfulCreate"} <= reasons


def test_replacing_a_deployment_applies_its_spec(apps: client.AppsV1Api) -> None:
    """A full update (PUT) of a read deployment with a new replica count is applied."""
    deployment = apps.read_namespaced_deployment("catalog", "production")
    deployment.spec.replicas = 3
    deployment.metadata.labels["team"] = "shop"
    replaced = apps.replace_namespaced_deployment("catalog", "production", deployment)
    assert replaced.spec.replicas == 3
    assert replaced.metadata.labels["team"] == "shop"
    assert int(replaced.metadata.resource_version) > int(deployment.metadata.resource_version)


def test_changing_the_selector_is_refused(apps: client.AppsV1Api) -> None:
    """spec.selector is immutable, as on a real cluster: 422 and nothing changes."""
    patch = {"spec": {"selector": {"matchLabels": {"app": "other"}}}}
    with pytest.raises(ApiException) as raised:
        apps.patch_namespaced_deployment("catalog", "production", patch, _content_type=MERGE_PATCH)
    assert raised.value.status == 422
    assert "spec.selector" in raised.value.body
    selector = apps.read_namespaced_deployment("catalog", "production").spec.selector
    assert selector.match_labels == {"app": "catalog"}
