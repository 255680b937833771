"""The twin's cluster rendered as Kubernetes API objects (plain JSON dicts).

Shapes follow the real API closely enough for kubectl and the official clients to decode
them: required fields are always present, timestamps are RFC 3339, and the names of labels
and annotations are the ones real controllers set.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from selfheal.twin import cluster_objects, quantity
from selfheal.twin.cluster import Cluster
from selfheal.twin.cluster_objects import Deployment, Event, Node, Pod, ReplicaSet

JsonObject = dict[str, Any]
KUBELET_VERSION = "v1.31.0-selfheal-twin"


def timestamp(cluster: Cluster, elapsed: float) -> str:
    moment = datetime.datetime.fromtimestamp(cluster.epoch + elapsed, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner(kind: str, api_version: str, name: str, uid: str) -> JsonObject:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def deployment(cluster: Cluster, item: Deployment) -> JsonObject:
    name = item.name
    owned = cluster.replicasets_of(name)
    newest = owned[-1] if owned else None
    pods = [pod for pod in cluster.pods.values() if pod.service == name]
    updated = [pod for pod in pods if newest and pod.replicaset == newest.name]
    ready = sum(1 for pod in pods if pod.ready)
    desired = item.replicas
    body = copy.deepcopy(item.manifest)
    metadata = body["metadata"]
    metadata.update(
        {
            "uid": item.uid,
            "generation": item.generation,
            "creationTimestamp": timestamp(cluster, item.created_at),
        }
    )
    annotations = metadata.setdefault("annotations", {})
    if newest is not None:
        annotations[cluster_objects.REVISION_ANNOTATION] = str(newest.revision)
    available = ready >= desired
    body["apiVersion"] = "apps/v1"
    body["kind"] = "Deployment"
    status: JsonObject = {
        "observedGeneration": item.generation,
        "replicas": len(pods),
        "updatedReplicas": len(updated),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "conditions": [
            {
                "type": "Available",
                "status": "True" if available else "False",
                "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if available
                else "Deployment does not have minimum availability.",
                "lastUpdateTime": timestamp(cluster, item.created_at),
                "lastTransitionTime": timestamp(cluster, item.created_at),
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable"
                if len(updated) == desired and available
                else "ReplicaSetUpdated",
                "message": f'ReplicaSet "{newest.name if newest else name}" is progressing.',
                "lastUpdateTime": timestamp(cluster, item.created_at),
                "lastTransitionTime": timestamp(cluster, item.created_at),
            },
        ],
    }
    if desired > ready:
        status["unavailableReplicas"] = desired - ready
    # Kubernetes omits zero counts.
    body["status"] = {key: value for key, value in status.items() if value != 0}
    return body


def replicaset(cluster: Cluster, item: ReplicaSet) -> JsonObject:
    owner = cluster.deployments.get(item.deployment)
    pods = cluster.pods_of_replicaset(item.name)
    ready = sum(1 for pod in pods if pod.ready)
    labels = dict(item.template["metadata"].get("labels") or {})
    labels["pod-template-hash"] = item.template_hash
    template = copy.deepcopy(item.template)
    template["metadata"]["labels"] = dict(labels)
    status = {
        "replicas": len(pods),
        "fullyLabeledReplicas": len(pods),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": 1,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": item.name,
            "namespace": item.namespace,
            "uid": item.uid,
            "creationTimestamp": timestamp(cluster, item.created_at),
            "generation": 1,
            "labels": labels,
            "annotations": _replicaset_annotations(item, desired=owner.replicas if owner else 0),
            "ownerReferences": [
                _owner("Deployment", "apps/v1", item.deployment, owner.uid if owner else "")
            ],
        },
        "spec": {
            "replicas": item.replicas,
            "selector": {"matchLabels": labels},
            "template": template,
        },
        "status": {key: value for key, value in status.items() if value != 0 or key == "replicas"},
    }


def _replicaset_annotations(item: ReplicaSet, *, desired: int) -> dict[str, str]:
    """The Deployment's annotations it copied, and the deployment controller's own."""
    annotations = dict(item.annotations)
    annotations[cluster_objects.REVISION_ANNOTATION] = str(item.revision)
    annotations["deployment.kubernetes.io/desired-replicas"] = str(desired)
    if item.revision_history:
        annotations[cluster_objects.REVISION_HISTORY_ANNOTATION] = ",".join(
            str(revision) for revision in item.revision_history
        )
    return annotations


def pod(cluster: Cluster, item: Pod) -> JsonObject:
    rs = cluster.replicasets.get(item.replicaset)
    template: dict[str, Any] = (
        rs.template if rs else {"spec": {"containers": [{"name": item.service}]}}
    )
    spec = copy.deepcopy(template["spec"])
    if item.node:
        spec["nodeName"] = item.node
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    conditions = [
        {
            "type": "PodScheduled",
            "status": "True" if item.node else "False",
            "lastTransitionTime": timestamp(cluster, item.scheduled_at or item.created_at),
        },
    ]
    status: JsonObject = {"phase": item.phase, "qosClass": "Burstable", "conditions": conditions}
    if item.node:
        ready = "True" if item.ready else "False"
        since = item.ready_since if item.ready_since is not None else item.started_at
        conditions += [
            {
                "type": "Initialized",
                "status": "True",
                "lastTransitionTime": timestamp(cluster, item.scheduled_at or item.created_at),
            },
            {
                "type": "ContainersReady",
                "status": ready,
                "lastTransitionTime": timestamp(cluster, since or item.created_at),
            },
            {
                "type": "Ready",
                "status": ready,
                "lastTransitionTime": timestamp(cluster, since or item.created_at),
            },
        ]
        status["hostIP"] = _node_ip(cluster, item.node)
        status["podIP"] = pod_ip(cluster, item)
    if item.started_at is not None:
        status["startTime"] = timestamp(cluster, item.started_at)
        status["containerStatuses"] = [
            {
                "name": item.service,
                "image": item.image,
                "imageID": "",
                "ready": item.ready,
                "started": True,
                "restartCount": item.restarts,
                "containerID": f"containerd://{item.uid.replace('-', '')}",
                "state": {"running": {"startedAt": timestamp(cluster, item.started_at)}},
            }
        ]
    elif not item.node:
        conditions[0].update(
            {
                "reason": "Unschedulable",
                "message": f"0/{len(cluster.nodes)} nodes are available.",
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": item.name,
            "namespace": item.namespace,
            "uid": item.uid,
            "generateName": f"{item.replicaset}-",
            "creationTimestamp": timestamp(cluster, item.created_at),
            "labels": dict(item.labels),
            "annotations": dict(item.annotations),
            "ownerReferences": [
                _owner("ReplicaSet", "apps/v1", item.replicaset, rs.uid if rs else "")
            ],
        },
        "spec": spec,
        "status": status,
    }


def _node_ip(cluster: Cluster, name: str) -> str:
    return f"10.0.0.{sorted(cluster.nodes).index(name) + 10}"


def pod_ip(cluster: Cluster, item: Pod) -> str:
    """The pod's address in its node's pod CIDR (stable for the pod's life)."""
    index = int(item.uid.replace("-", "")[:4], 16) % 250 + 2
    node_index = sorted(cluster.nodes).index(item.node or "") + 1
    return f"10.244.{node_index}.{index}"


def node(cluster: Cluster, item: Node) -> JsonObject:
    cores = quantity.format_cpu(item.cpu)
    spec: JsonObject = {"podCIDR": f"10.244.{sorted(cluster.nodes).index(item.name) + 1}.0/24"}
    taints = []
    if item.unschedulable:
        spec["unschedulable"] = True
        taints.append(
            {
                "key": "node.kubernetes.io/unschedulable",
                "effect": "NoSchedule",
                "timeAdded": timestamp(cluster, item.created_at),
            }
        )
    if not item.ready:
        taints.append(
            {
                "key": "node.kubernetes.io/unreachable",
                "effect": "NoExecute",
                "timeAdded": timestamp(cluster, item.lost_at or item.created_at),
            }
        )
    if taints:
        spec["taints"] = taints
    ready_condition = {
        "type": "Ready",
        "status": "True" if item.ready else "Unknown",
        "reason": "KubeletReady" if item.ready else "NodeStatusUnknown",
        "message": "kubelet is posting ready status"
        if item.ready
        else "Kubelet stopped posting node status.",
        "lastHeartbeatTime": timestamp(cluster, item.created_at),
        "lastTransitionTime": timestamp(cluster, item.lost_at or item.created_at),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": item.name,
            "uid": item.uid,
            "creationTimestamp": timestamp(cluster, item.created_at),
            "labels": dict(item.labels),
            "annotations": dict(item.annotations),
        },
        "spec": spec,
        "status": {
            "capacity": {"cpu": cores, "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": cores, "memory": "15Gi", "pods": "110"},
            "conditions": [ready_condition],
            "addresses": [
                {"type": "InternalIP", "address": _node_ip(cluster, item.name)},
                {"type": "Hostname", "address": item.name},
            ],
            "nodeInfo": {
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "containerRuntimeVersion": "containerd://1.7.0",
                "osImage": "selfheal twin",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "kernelVersion": "6.1.0",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


def event(cluster: Cluster, item: Event) -> JsonObject:
    api_version = "apps/v1" if item.kind in {"Deployment", "ReplicaSet"} else "v1"
    involved: JsonObject = {
        "kind": item.kind,
        "name": item.object_name,
        "uid": item.object_uid,
        "apiVersion": api_version,
    }
    if item.kind != "Node":
        involved["namespace"] = item.namespace
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{item.object_name}.{item.uid[:16]}",
            "namespace": item.namespace,
            "uid": item.uid,
            "creationTimestamp": timestamp(cluster, item.first_seen),
        },
        "involvedObject": involved,
        "reason": item.reason,
        "message": item.message,
        "type": item.type,
        "count": item.count,
        "firstTimestamp": timestamp(cluster, item.first_seen),
        "lastTimestamp": timestamp(cluster, item.last_seen),
        "source": {"component": _component(item)},
        "reportingComponent": _component(item),
        "reportingInstance": "",
    }


def _component(item: Event) -> str:
    return {
        "Deployment": "deployment-controller",
        "ReplicaSet": "replicaset-controller",
        "Node": "node-controller",
    }.get(item.kind, "kubelet" if item.reason != "Scheduled" else "default-scheduler")


def namespace(cluster: Cluster) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": cluster.namespace,
            "uid": cluster.namespace_uid,
            "creationTimestamp": timestamp(cluster, 0.0),
            "labels": {"kubernetes.io/metadata.name": cluster.namespace},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def scale(cluster: Cluster, item: Deployment) -> JsonObject:
    rendered = deployment(cluster, item)
    selector = ",".join(
        f"{key}={value}"
        for key, value in sorted(item.manifest["spec"]["selector"]["matchLabels"].items())
    )
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            key: rendered["metadata"][key]
            for key in ("name", "namespace", "uid", "creationTimestamp")
        },
        "spec": {"replicas": item.replicas},
        "status": {"replicas": rendered["status"].get("replicas", 0), "selector": selector},
    }
