"""The cluster and the controllers that reconcile its objects, as Kubernetes does.

The Deployment manifest (a plain dict, as a user would write it) is the source of truth for
what should run. Each tick the controllers move the cluster towards it:

- the deployment controller keeps one ReplicaSet per distinct pod template (named by the
  template's hash, carrying the `deployment.kubernetes.io/revision` annotation) and shifts
  replicas from old ReplicaSets to the newest as its pods become ready;
- the ReplicaSet controller creates and deletes pods to match each ReplicaSet's replicas;
- the scheduler binds pending pods to ready, schedulable nodes with room for their CPU
  request;
- the kubelet starts containers and marks them ready after the service's start-up delay,
  and keeps their logs (container_logs.py).

The objects themselves are records in cluster_objects.py. Each Deployment has a Service of
its name in front of it (networking.py).

Nothing here knows about traffic or latency (see performance.py), nor about HTTP (see
kube/). Times are scenario seconds since the start; `epoch` turns them into timestamps.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections import deque
from typing import Any

from selfheal.twin import container_logs, networking
from selfheal.twin.cluster_objects import (
    NAME_ALPHABET,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    Deployment,
    Event,
    Node,
    Pod,
    ReplicaSet,
    container_resources,
    type_name,
)

# Annotations the deployment controller does not copy from a Deployment to its ReplicaSets
# (Kubernetes' annotationsToSkip); the rest, such as `kubernetes.io/change-cause`, it does.
_NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
_MAX_EVENTS = 1000


class Cluster:
    """All objects of the twin's cluster and the controllers that reconcile them."""

    def __init__(self, *, namespace: str, epoch: float, seed: int) -> None:
        self.namespace = namespace
        self.epoch = epoch
        self.namespace_uid = ""
        self.nodes: dict[str, Node] = {}
        self.deployments: dict[str, Deployment] = {}
        self.replicasets: dict[str, ReplicaSet] = {}
        self.pods: dict[str, Pod] = {}
        self.events: deque[Event] = deque(maxlen=_MAX_EVENTS)
        self.services: dict[str, networking.Service] = {}
        self.logs = container_logs.ContainerLogs()
        self.startup_delays: dict[str, float] = {}
        self._rng = random.Random(seed)
        self.namespace_uid = self.new_uid()

    # ---- identities -------------------------------------------------------------------
    def new_uid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _suffix(self, length: int = 5) -> str:
        return "".join(self._rng.choice(NAME_ALPHABET) for _ in range(length))

    # ---- set-up -----------------------------------------------------------------------
    def add_node(self, *, name: str, cpu: float, zone: str, now: float) -> None:
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": zone,
        }
        self.nodes[name] = Node(name, self.new_uid(), cpu, zone, now, labels=labels)

    def add_deployment(
        self,
        *,
        name: str,
        template: dict[str, Any],
        replicas: int,
        startup_delay: float,
        now: float,
    ) -> None:
        labels = {"app": name}
        manifest = {
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": {},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(labels)},
                "template": template,
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
        }
        self.startup_delays[name] = startup_delay
        self.deployments[name] = Deployment(manifest, self.new_uid(), now)
        self.services[name] = networking.for_deployment(
            name=name,
            namespace=self.namespace,
            namespace_uid=self.namespace_uid,
            selector=labels,
            template=template,
            created_at=now,
            taken=(service.cluster_ip for service in self.services.values()),
        )

    # ---- changes requested through the API or by faults -------------------------------
    def update_deployment(self, name: str, manifest: dict[str, Any], *, now: float) -> None:
        """Replace a deployment's metadata and spec (already validated by the caller)."""
        deployment = self.deployments[name]
        old_spec = deployment.manifest["spec"]
        if manifest["spec"] != old_spec:
            deployment.generation += 1
        if manifest["spec"].get("replicas") != old_spec.get("replicas"):
            self.note(
                deployment,
                now=now,
                reason="ScalingReplicaSet",
                message=f"Scaled deployment {name} from {old_spec.get('replicas')} to "
                f"{manifest['spec'].get('replicas')} replicas",
            )
        deployment.manifest = copy.deepcopy(manifest)
        deployment._template_hash = None  # noqa: SLF001 - the cache belongs to this module
        self.reconcile(now=now)

    def delete_pod(self, name: str, *, now: float) -> Pod:
        pod = self.pods.pop(name)
        self.logs.forget(pod.uid)
        self.note(
            pod,
            now=now,
            reason="Killing",
            message=f"Stopping container {pod.service}",
        )
        self.reconcile(now=now)
        return pod

    def crash_container(self, pod: Pod, *, now: float) -> None:
        """The container exits and the kubelet restarts it: not ready until warmed up."""
        pod.restarts += 1
        pod.ready_since = None
        pod.started_at = now
        self.logs.crashed(pod, at=now)
        self.note(
            pod,
            now=now,
            reason="BackOff",
            type="Warning",
            message=f"Back-off restarting failed container {pod.service}",
        )

    def set_node_ready(self, name: str, *, ready: bool, now: float) -> None:
        node = self.nodes[name]
        node.ready = ready
        node.lost_at = None if ready else now
        self.note(
            node,
            now=now,
            reason="NodeReady" if ready else "NodeNotReady",
            type="Normal" if ready else "Warning",
            message=f"Node {name} status is now: {'NodeReady' if ready else 'NodeNotReady'}",
        )

    def note(
        self,
        subject: Pod | ReplicaSet | Deployment | Node,
        *,
        now: float,
        reason: str,
        message: str,
        type: str = "Normal",  # noqa: A002 - the Kubernetes field is called `type`
    ) -> None:
        """Record an event about one of the cluster's objects."""
        self.record_event(
            kind=type_name(subject),
            name=subject.name,
            uid=subject.uid,
            now=now,
            reason=reason,
            message=message,
            type=type,
        )

    def record_event(
        self,
        *,
        kind: str,
        name: str,
        uid: str,
        now: float,
        reason: str,
        message: str,
        type: str = "Normal",  # noqa: A002 - the Kubernetes field is called `type`
    ) -> None:
        for event in reversed(self.events):
            if (event.kind, event.object_name, event.reason, event.message) == (
                kind,
                name,
                reason,
                message,
            ):
                event.count += 1
                event.last_seen = now
                return
        self.events.append(
            Event(self.new_uid(), self.namespace, kind, name, uid, reason, message, type, now, now)
        )

    # ---- controllers ------------------------------------------------------------------
    def reconcile(self, *, now: float, eviction_timeout: float = 40.0) -> None:
        """Run every controller once, in the order a real control plane converges."""
        self._evict_from_lost_nodes(now=now, timeout=eviction_timeout)
        for deployment in self.deployments.values():
            self._reconcile_deployment(deployment, now=now)
        for replicaset in self.replicasets.values():
            self._reconcile_replicaset(replicaset, now=now)
        self._schedule(now=now)
        self._run_kubelets(now=now)

    def replicasets_of(self, deployment: str) -> list[ReplicaSet]:
        return sorted(
            (rs for rs in self.replicasets.values() if rs.deployment == deployment),
            key=lambda rs: rs.revision,
        )

    def pods_of_replicaset(self, replicaset: str) -> list[Pod]:
        return [pod for pod in self.pods.values() if pod.replicaset == replicaset]

    def pods_of_service(self, service: str) -> list[Pod]:
        return [pod for pod in self.pods.values() if pod.service == service]

    def _reconcile_deployment(self, deployment: Deployment, *, now: float) -> None:
        template = deployment.template
        current_hash = deployment.template_hash
        owned = self.replicasets_of(deployment.name)
        newest = max((rs.revision for rs in owned), default=0)
        new_rs = next((rs for rs in owned if rs.template_hash == current_hash), None)
        if new_rs is None:
            new_rs = ReplicaSet(
                name=f"{deployment.name}-{current_hash}",
                uid=self.new_uid(),
                namespace=self.namespace,
                deployment=deployment.name,
                template_hash=current_hash,
                template=copy.deepcopy(template),
                revision=newest + 1,
                created_at=now,
            )
            self.replicasets[new_rs.name] = new_rs
        elif new_rs.revision != newest:
            # Rolling back to an older template makes its ReplicaSet the newest revision.
            new_rs.revision_history.append(new_rs.revision)
            new_rs.revision = newest + 1
        new_rs.annotations = {
            key: str(value)
            for key, value in (deployment.manifest["metadata"].get("annotations") or {}).items()
            if key not in _NOT_COPIED
        }
        desired = deployment.replicas
        self._scale_replicaset(new_rs, desired, deployment=deployment, now=now)
        new_ready = sum(1 for pod in self.pods_of_replicaset(new_rs.name) if pod.ready)
        # Old ReplicaSets keep serving until the new one has ready pods to replace them.
        remaining_old = max(0, desired - new_ready)
        for old in sorted(owned, key=lambda rs: -rs.revision):
            if old is new_rs:
                continue
            keep = min(old.replicas, remaining_old)
            remaining_old -= keep
            self._scale_replicaset(old, keep, deployment=deployment, now=now)
        self._prune_history(deployment)

    def _scale_replicaset(
        self, replicaset: ReplicaSet, replicas: int, *, deployment: Deployment, now: float
    ) -> None:
        if replicaset.replicas == replicas:
            return
        verb = "up" if replicas > replicaset.replicas else "down"
        replicaset.replicas = replicas
        self.note(
            deployment,
            now=now,
            reason="ScalingReplicaSet",
            message=f"Scaled {verb} replica set {replicaset.name} to {replicas}",
        )

    def _prune_history(self, deployment: Deployment) -> None:
        limit = int(deployment.manifest["spec"].get("revisionHistoryLimit", 10))
        owned = self.replicasets_of(deployment.name)
        idle = [
            rs for rs in owned[:-1] if rs.replicas == 0 and not self.pods_of_replicaset(rs.name)
        ]
        for rs in idle[: max(0, len(idle) - limit)]:
            del self.replicasets[rs.name]

    def _reconcile_replicaset(self, replicaset: ReplicaSet, *, now: float) -> None:
        pods = self.pods_of_replicaset(replicaset.name)
        missing = replicaset.replicas - len(pods)
        for _ in range(missing):
            self._create_pod(replicaset, now=now)
        if missing < 0:
            # Delete the least useful pods first: unscheduled, then not ready, then newest.
            pods.sort(key=lambda pod: (pod.node is not None, pod.ready, -pod.created_at))
            for pod in pods[:-missing]:
                del self.pods[pod.name]
                self.logs.forget(pod.uid)
                self.note(
                    replicaset,
                    now=now,
                    reason="SuccessfulDelete",
                    message=f"Deleted pod: {pod.name}",
                )

    def _create_pod(self, replicaset: ReplicaSet, *, now: float) -> None:
        template = replicaset.template
        request, limit = container_resources(template)
        container = template["spec"]["containers"][0]
        name = f"{replicaset.name}-{self._suffix()}"
        while name in self.pods:
            name = f"{replicaset.name}-{self._suffix()}"
        labels = dict(template["metadata"].get("labels") or {})
        labels["pod-template-hash"] = replicaset.template_hash
        pod = Pod(
            name=name,
            uid=self.new_uid(),
            namespace=self.namespace,
            service=replicaset.deployment,
            replicaset=replicaset.name,
            template_hash=replicaset.template_hash,
            labels=labels,
            image=str(container.get("image", "")),
            cpu_request=request,
            cpu_limit=limit,
            startup_delay=self.startup_delays.get(replicaset.deployment, 10.0),
            created_at=now,
        )
        self.pods[name] = pod
        self.note(
            replicaset,
            now=now,
            reason="SuccessfulCreate",
            message=f"Created pod: {name}",
        )

    def requested_cpu(self, node: str) -> float:
        return sum(pod.cpu_request for pod in self.pods.values() if pod.node == node)

    def _schedule(self, *, now: float) -> None:
        for pod in sorted(self.pods.values(), key=lambda pod: pod.created_at):
            if pod.node is not None:
                continue
            candidates = [
                node
                for node in self.nodes.values()
                if node.ready
                and not node.unschedulable
                and self.requested_cpu(node.name) + pod.cpu_request <= node.cpu + 1e-9
            ]
            if not candidates:
                self.note(
                    pod,
                    now=now,
                    reason="FailedScheduling",
                    type="Warning",
                    message=f"0/{len(self.nodes)} nodes are available: "
                    "insufficient cpu or unschedulable",
                )
                continue
            # Spread like the default scheduler's least-allocated scoring.
            node = min(candidates, key=lambda n: (self.requested_cpu(n.name) / n.cpu, n.name))
            pod.node = node.name
            pod.scheduled_at = now
            self.note(
                pod,
                now=now,
                reason="Scheduled",
                message=f"Successfully assigned {self.namespace}/{pod.name} to {node.name}",
            )

    def _run_kubelets(self, *, now: float) -> None:
        for pod in self.pods.values():
            if pod.node is None:
                continue
            node = self.nodes[pod.node]
            if not node.ready:
                pod.ready_since = None
                continue
            if pod.started_at is None:
                pod.started_at = now
                pod.phase = "Running"
                self.logs.started(pod, at=now)
                self.note(
                    pod,
                    now=now,
                    reason="Started",
                    message=f"Started container {pod.service}",
                )
            if pod.ready_since is None and now >= pod.started_at + pod.startup_delay - 1e-9:
                pod.ready_since = now
                self.logs.ready(pod, at=now)

    def _evict_from_lost_nodes(self, *, now: float, timeout: float) -> None:
        for node in self.nodes.values():
            if node.ready or node.lost_at is None or now < node.lost_at + timeout:
                continue
            for pod in [pod for pod in self.pods.values() if pod.node == node.name]:
                del self.pods[pod.name]
                self.logs.forget(pod.uid)
                self.note(
                    pod,
                    now=now,
                    reason="TaintManagerEviction",
                    message=f"Marking for deletion Pod {self.namespace}/{pod.name}",
                )
