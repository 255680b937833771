"""Services, their Endpoints and EndpointSlices rendered as API objects (plain JSON dicts).

A Service is what the twin's model holds (networking.py). Its Endpoints and its
EndpointSlice are worked out on each read, as their controllers would: the pods that the
selector matches and that are bound to a node, ready or not (Endpoints splits them into
`addresses` and `notReadyAddresses`; an EndpointSlice gives each its conditions). kubectl
1.33 and later describe a Service from its EndpointSlices, older clients from Endpoints.
"""

from __future__ import annotations

import uuid
from typing import Any

from selfheal.twin.cluster import Cluster
from selfheal.twin.cluster_objects import Pod
from selfheal.twin.kube import objects
from selfheal.twin.networking import Service

JsonObject = dict[str, Any]
# How an EndpointSlice names its Service; `kubectl describe service` selects by it.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def service(cluster: Cluster, item: Service) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": item.name,
            "namespace": item.namespace,
            "uid": item.uid,
            "creationTimestamp": objects.timestamp(cluster, item.created_at),
            "labels": {"app": item.name},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": item.cluster_ip,
            "clusterIPs": [item.cluster_ip],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
            "sessionAffinity": "None",
            "selector": dict(item.selector),
            "ports": [
                {
                    "name": port.name,
                    "port": port.port,
                    "targetPort": port.target_port,
                    "protocol": port.protocol,
                }
                for port in item.ports
            ],
        },
        "status": {"loadBalancer": {}},
    }


def _backends(cluster: Cluster, item: Service) -> list[Pod]:
    """Pods bound to a node that the Service's selector matches, by name."""
    return sorted(
        (pod for pod in cluster.pods.values() if pod.node and item.selects(pod.labels)),
        key=lambda pod: pod.name,
    )


def _target(pod: Pod) -> JsonObject:
    return {"kind": "Pod", "namespace": pod.namespace, "name": pod.name, "uid": pod.uid}


def _metadata(cluster: Cluster, item: Service, *, name: str, uid: str) -> JsonObject:
    return {
        "name": name,
        "namespace": item.namespace,
        "uid": uid,
        "creationTimestamp": objects.timestamp(cluster, item.created_at),
        "labels": {"app": item.name},
    }


def endpoints(cluster: Cluster, item: Service) -> JsonObject:
    ready: list[JsonObject] = []
    not_ready: list[JsonObject] = []
    for pod in _backends(cluster, item):
        address = {
            "ip": objects.pod_ip(cluster, pod),
            "nodeName": pod.node,
            "targetRef": _target(pod),
        }
        (ready if pod.ready else not_ready).append(address)
    body: JsonObject = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": _metadata(cluster, item, name=item.name, uid=_derived_uid(item, "endpoints")),
    }
    if ready or not_ready:
        subset: JsonObject = {
            "ports": [
                {"name": port.name, "port": port.target_port, "protocol": port.protocol}
                for port in item.ports
            ]
        }
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        body["subsets"] = [subset]
    return body


def endpoint_slice(cluster: Cluster, item: Service) -> JsonObject:
    """The one EndpointSlice of a Service (the twin's Services never need a second)."""
    uid = _derived_uid(item, "endpointslices")
    metadata = _metadata(cluster, item, name=f"{item.name}-{uid[:5]}", uid=uid)
    metadata["generateName"] = f"{item.name}-"
    metadata["labels"].update(
        {
            SERVICE_NAME_LABEL: item.name,
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }
    )
    metadata["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "name": item.name,
            "uid": item.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata,
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [objects.pod_ip(cluster, pod)],
                "conditions": {"ready": pod.ready, "serving": pod.ready, "terminating": False},
                "nodeName": pod.node,
                "zone": cluster.nodes[pod.node].zone if pod.node in cluster.nodes else "",
                "targetRef": _target(pod),
            }
            for pod in _backends(cluster, item)
        ],
        "ports": [
            {"name": port.name, "port": port.target_port, "protocol": port.protocol}
            for port in item.ports
        ],
    }


def _derived_uid(item: Service, resource: str) -> str:
    # Objects the Service implies get UIDs derived from its own: stable and distinct.
    return str(uuid.uuid5(uuid.UUID(item.uid), resource))
