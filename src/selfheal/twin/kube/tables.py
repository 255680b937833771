"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for.

kubectl sends `Accept: application/json;as=Table;...` and prints the columns it gets back;
these are the columns real clusters print for each kind (priority 1 = shown with -o wide).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

JsonObject = dict[str, Any]
Column = tuple[str, str, int, str]  # name, type, priority, description

_COLUMNS: dict[str, list[Column]] = {
    "Deployment": [
        ("Name", "string", 0, "Name of the deployment"),
        ("Ready", "string", 0, "Ready pods out of desired"),
        ("Up-to-date", "integer", 0, "Replicas on the newest template"),
        ("Available", "integer", 0, "Available replicas"),
        ("Age", "string", 0, "Time since creation"),
        ("Containers", "string", 1, "Container names"),
        ("Images", "string", 1, "Container images"),
        ("Selector", "string", 1, "Label selector"),
    ],
    "ReplicaSet": [
        ("Name", "string", 0, "Name"),
        ("Desired", "integer", 0, "Desired replicas"),
        ("Current", "integer", 0, "Current replicas"),
        ("Ready", "integer", 0, "Ready replicas"),
        ("Age", "string", 0, "Time since creation"),
    ],
    "Pod": [
        ("Name", "string", 0, "Name"),
        ("Ready", "string", 0, "Ready containers"),
        ("Status", "string", 0, "Pod status"),
        ("Restarts", "string", 0, "Container restarts"),
        ("Age", "string", 0, "Time since creation"),
        ("IP", "string", 1, "Pod IP"),
        ("Node", "string", 1, "Node the pod runs on"),
    ],
    "Node": [
        ("Name", "string", 0, "Name"),
        ("Status", "string", 0, "Node status"),
        ("Roles", "string", 0, "Node roles"),
        ("Age", "string", 0, "Time since creation"),
        ("Version", "string", 0, "Kubelet version"),
    ],
    "Event": [
        ("Last Seen", "string", 0, "Time since last seen"),
        ("Type", "string", 0, "Event type"),
        ("Reason", "string", 0, "Reason"),
        ("Object", "string", 0, "Object the event is about"),
        ("Message", "string", 0, "Message"),
    ],
    "Namespace": [
        ("Name", "string", 0, "Name"),
        ("Status", "string", 0, "Phase"),
        ("Age", "string", 0, "Time since creation"),
    ],
    "Service": [
        ("Name", "string", 0, "Name"),
        ("Type", "string", 0, "Service type"),
        ("Cluster-IP", "string", 0, "Virtual IP in the cluster"),
        ("External-IP", "string", 0, "Address outside the cluster"),
        ("Port(s)", "string", 0, "Ports the service listens on"),
        ("Age", "string", 0, "Time since creation"),
        ("Selector", "string", 1, "Pods the service sends traffic to"),
    ],
    "Endpoints": [
        ("Name", "string", 0, "Name"),
        ("Endpoints", "string", 0, "Ready pod addresses"),
        ("Age", "string", 0, "Time since creation"),
    ],
    "EndpointSlice": [
        ("Name", "string", 0, "Name"),
        ("AddressType", "string", 0, "Address family"),
        ("Ports", "string", 0, "Ports of the endpoints"),
        ("Endpoints", "string", 0, "Pod addresses"),
        ("Age", "string", 0, "Time since creation"),
    ],
}
# kubectl shows this many endpoints, then how many more there are.
_ENDPOINTS_SHOWN = 3


def human_age(seconds: float) -> str:
    """Ages as kubectl prints them: 45s, 5m30s, 3h, 2d4h."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h{minutes % 60}m" if hours < 8 and minutes % 60 else f"{hours}h"
    days = hours // 24
    return f"{days}d{hours % 24}h" if days < 8 and hours % 24 else f"{days}d"


def _age(obj: JsonObject, now: float, field: str = "creationTimestamp") -> str:
    stamp = obj["metadata"].get(field) if field == "creationTimestamp" else obj.get(field)
    if not stamp:
        return "<unknown>"
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return human_age(now - moment.timestamp())


def _deployment_cells(obj: JsonObject, now: float) -> list[Any]:
    status, spec = obj.get("status", {}), obj["spec"]
    containers = spec["template"]["spec"]["containers"]
    selector = ",".join(f"{k}={v}" for k, v in sorted(spec["selector"]["matchLabels"].items()))
    return [
        obj["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj, now),
        ",".join(c["name"] for c in containers),
        ",".join(c.get("image", "") for c in containers),
        selector,
    ]


def _replicaset_cells(obj: JsonObject, now: float) -> list[Any]:
    status = obj.get("status", {})
    return [
        obj["metadata"]["name"],
        obj["spec"]["replicas"],
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(obj, now),
    ]


def _pod_cells(obj: JsonObject, now: float) -> list[Any]:
    status = obj["status"]
    containers = status.get("containerStatuses", [])
    ready = sum(1 for c in containers if c.get("ready"))
    restarts = sum(c.get("restartCount", 0) for c in containers)
    total = len(obj["spec"].get("containers", []))
    phase = status.get("phase", "Pending")
    if phase == "Running" and containers and not containers[0].get("ready") and restarts:
        phase = "CrashLoopBackOff"
    return [
        obj["metadata"]["name"],
        f"{ready}/{total}",
        phase,
        str(restarts),
        _age(obj, now),
        status.get("podIP", "<none>"),
        obj["spec"].get("nodeName", "<none>"),
    ]


def _node_cells(obj: JsonObject, now: float) -> list[Any]:
    ready: dict[str, Any] = next(
        (c for c in obj["status"]["conditions"] if c["type"] == "Ready"), {}
    )
    state = "Ready" if ready.get("status") == "True" else "NotReady"
    if obj["spec"].get("unschedulable"):
        state += ",SchedulingDisabled"
    return [
        obj["metadata"]["name"],
        state,
        "<none>",
        _age(obj, now),
        obj["status"]["nodeInfo"]["kubeletVersion"],
    ]


def _event_cells(obj: JsonObject, now: float) -> list[Any]:
    involved = obj["involvedObject"]
    return [
        _age(obj, now, "lastTimestamp"),
        obj["type"],
        obj["reason"],
        f"{involved['kind'].lower()}/{involved['name']}",
        obj["message"],
    ]


def _namespace_cells(obj: JsonObject, now: float) -> list[Any]:
    return [obj["metadata"]["name"], obj["status"]["phase"], _age(obj, now)]


def _service_cells(obj: JsonObject, now: float) -> list[Any]:
    spec = obj["spec"]
    ports = ",".join(f"{port['port']}/{port.get('protocol', 'TCP')}" for port in spec["ports"])
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [
        obj["metadata"]["name"],
        spec["type"],
        spec.get("clusterIP", "<none>"),
        "<none>",
        ports or "<none>",
        _age(obj, now),
        selector or "<none>",
    ]


def _endpoints_cells(obj: JsonObject, now: float) -> list[Any]:
    addresses = [
        f"{address['ip']}:{port['port']}"
        for subset in obj.get("subsets", [])
        for port in subset.get("ports", [])
        for address in subset.get("addresses", [])
    ]
    return [obj["metadata"]["name"], _first_few(addresses), _age(obj, now)]


def _endpoint_slice_cells(obj: JsonObject, now: float) -> list[Any]:
    ports = ",".join(str(port["port"]) for port in obj.get("ports") or [])
    addresses = [address for endpoint in obj["endpoints"] for address in endpoint["addresses"]]
    return [
        obj["metadata"]["name"],
        obj["addressType"],
        ports or "<unset>",
        _first_few(addresses),
        _age(obj, now),
    ]


def _first_few(addresses: list[str]) -> str:
    shown = ",".join(addresses[:_ENDPOINTS_SHOWN])
    if len(addresses) > _ENDPOINTS_SHOWN:
        shown += f" + {len(addresses) - _ENDPOINTS_SHOWN} more..."
    return shown or "<none>"


_CELLS: dict[str, Callable[[JsonObject, float], list[Any]]] = {
    "Deployment": _deployment_cells,
    "ReplicaSet": _replicaset_cells,
    "Pod": _pod_cells,
    "Node": _node_cells,
    "Event": _event_cells,
    "Namespace": _namespace_cells,
    "Service": _service_cells,
    "Endpoints": _endpoints_cells,
    "EndpointSlice": _endpoint_slice_cells,
}


def table(
    *,
    kind: str,
    items: Sequence[JsonObject],
    now: float,
    resource_version: str,
    include_object: str = "Metadata",
) -> JsonObject:
    """A Table of `items`; rows carry the object's metadata (or the object, if asked)."""
    rows = []
    for obj in items:
        row: JsonObject = {"cells": _CELLS[kind](obj, now)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {
                "name": name,
                "type": type_,
                "format": "name" if name == "Name" else "",
                "description": description,
                "priority": priority,
            }
            for name, type_, priority, description in _COLUMNS[kind]
        ],
        "rows": rows,
    }
