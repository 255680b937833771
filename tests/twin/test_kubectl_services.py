"""Services, Endpoints and EndpointSlices of the twin through kubectl and the Python client."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Callable

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from support import kubectl_json

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
NS = "production"
SERVICES = {"frontend", "catalog", "order-service", "payment-gateway"}
SERVICE_RANGE = ipaddress.ip_network("10.96.0.0/12")


def _rows(output: str) -> tuple[list[str], dict[str, list[str]]]:
    header, *lines = output.strip().splitlines()
    return header.split(), {line.split()[0]: line.split() for line in lines}


def _pod_ips(kubectl: Kubectl, app: str) -> set[str]:
    pods = kubectl_json(kubectl, "get", "pods", "-l", f"app={app}", "-n", NS)
    return {pod["status"]["podIP"] for pod in pods["items"]}


def test_get_svc_lists_a_cluster_ip_service_per_deployment(kubectl: Kubectl) -> None:
    """`kubectl get svc` prints one ClusterIP Service per service, on port 80, with its IP."""
    header, rows = _rows(kubectl("get", "svc", "-n", NS).stdout)
    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert set(rows) == SERVICES
    for row in rows.values():
        assert row[1] == "ClusterIP"
        assert ipaddress.ip_address(row[2]) in SERVICE_RANGE
        assert row[3:5] == ["<none>", "80/TCP"]
    assert len({row[2] for row in rows.values()}) == len(SERVICES)


def test_services_and_svc_name_the_same_resource(kubectl: Kubectl) -> None:
    """`get services`, `get svc` and `get service NAME` agree (discovery's short name)."""
    _, long_name = _rows(kubectl("get", "services", "-n", NS).stdout)
    _, short_name = _rows(kubectl("get", "svc", "-n", NS).stdout)
    # Everything but AGE, which moves on between the two calls.
    assert {k: row[:-1] for k, row in long_name.items()} == {
        k: row[:-1] for k, row in short_name.items()
    }
    _, rows = _rows(kubectl("get", "service", "catalog", "-n", NS).stdout)
    assert list(rows) == ["catalog"]


def test_get_svc_wide_shows_the_selector(kubectl: Kubectl) -> None:
    """`-o wide` adds SELECTOR: each Service selects its deployment's `app` label."""
    header, rows = _rows(kubectl("get", "svc", "-n", NS, "-o", "wide").stdout)
    assert header[-1] == "SELECTOR"
    assert {name: row[-1] for name, row in rows.items()} == {
        name: f"app={name}" for name in SERVICES
    }


def test_service_yaml_has_its_ip_selector_and_ports(kubectl: Kubectl) -> None:
    """`get svc NAME -o yaml` is a v1 Service whose selector matches the deployment's pods."""
    service = yaml.safe_load(kubectl("get", "svc", "order-service", "-n", NS, "-o", "yaml").stdout)
    assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
    spec = service["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["selector"] == {"app": "order-service"}
    assert spec["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    pods = kubectl_json(kubectl, "get", "pods", "-l", "app=order-service", "-n", NS)
    containers = [pod["spec"]["containers"][0] for pod in pods["items"]]
    assert len(containers) == 2
    assert all({"containerPort": 8080}.items() <= c["ports"][0].items() for c in containers)


def test_endpoints_list_the_ready_pods_of_each_service(kubectl: Kubectl) -> None:
    """`kubectl get endpoints` shows each service's pod IPs on the container port."""
    _, rows = _rows(kubectl("get", "endpoints", "-n", NS).stdout)
    assert set(rows) == SERVICES
    listed = set(rows["catalog"][1].split(","))
    assert listed == {f"{ip}:8080" for ip in _pod_ips(kubectl, "catalog")}


def test_describe_service_shows_its_endpoints(kubectl: Kubectl) -> None:
    """`kubectl describe svc` (which reads EndpointSlices) lists the pods' addresses."""
    output = kubectl("describe", "svc", "payment-gateway", "-n", NS).stdout
    line = next(line for line in output.splitlines() if line.startswith("Endpoints:"))
    addresses = set(line.split()[1].split(","))
    assert addresses == {f"{ip}:8080" for ip in _pod_ips(kubectl, "payment-gateway")}
    assert "Selector:                 app=payment-gateway" in output


def test_a_relabelled_pod_leaves_its_services_endpoints(kubectl: Kubectl) -> None:
    """Relabelling a pod out of the selector takes its address out of the Endpoints at once."""
    pods = kubectl_json(kubectl, "get", "pods", "-l", "app=frontend", "-n", NS)["items"]
    taken_out = pods[0]
    kubectl("label", "pod", taken_out["metadata"]["name"], "-n", NS, "app=debug", "--overwrite")
    endpoints = kubectl_json(kubectl, "get", "endpoints", "frontend", "-n", NS)
    addresses = {a["ip"] for a in endpoints["subsets"][0]["addresses"]}
    assert taken_out["status"]["podIP"] not in addresses
    assert addresses == {pod["status"]["podIP"] for pod in pods[1:]}


def test_get_all_includes_the_services(kubectl: Kubectl) -> None:
    """`kubectl get all` lists services beside pods, deployments and replica sets."""
    output = kubectl("get", "all", "-n", NS).stdout
    for name in SERVICES:
        assert f"service/{name} " in output
        assert f"deployment.apps/{name} " in output


def test_client_lists_and_reads_services(kube_client: client.ApiClient) -> None:
    """The Python client decodes the Service list and a single Service."""
    core = client.CoreV1Api(kube_client)
    services = core.list_namespaced_service(NS)
    assert services.kind == "ServiceList"
    assert {item.metadata.name for item in services.items} == SERVICES
    catalog = core.read_namespaced_service("catalog", NS)
    assert catalog.spec.selector == {"app": "catalog"}
    assert catalog.spec.ports[0].port == 80
    assert catalog.spec.ports[0].target_port == 8080
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_service("checkout", NS)
    assert raised.value.status == 404
    assert 'services \\"checkout\\" not found' in raised.value.body


def test_client_reads_endpoints_and_endpoint_slices(kube_client: client.ApiClient) -> None:
    """Endpoints and the EndpointSlice of a Service name the same ready pods."""
    core = client.CoreV1Api(kube_client)
    endpoints = core.read_namespaced_endpoints("order-service", NS)
    ready = {address.target_ref.name for address in endpoints.subsets[0].addresses}
    slices = client.DiscoveryV1Api(kube_client).list_namespaced_endpoint_slice(
        NS, label_selector="kubernetes.io/service-name=order-service"
    )
    assert len(slices.items) == 1
    only = slices.items[0]
    assert only.address_type == "IPv4"
    assert only.metadata.owner_references[0].kind == "Service"
    assert {e.target_ref.name for e in only.endpoints if e.conditions.ready} == ready
    assert len(ready) == 2
