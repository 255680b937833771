"""The cluster's objects: nodes, pods, ReplicaSets, Deployments and events, as records.

These hold state and nothing else; the controllers that move them (cluster.py) and the
renderers that turn them into API objects (kube/objects.py) live apart, so each reads on
its own. Also here: how a pod template is hashed into its ReplicaSet's name, and read for
its CPU.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from selfheal.twin import quantity

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
# Pod names use the same alphabet as Kubernetes' generated suffixes (no vowels, no look-alikes).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass
class Node:
    """A node: finite CPU, ready or lost, schedulable or cordoned."""

    name: str
    uid: str
    cpu: float
    zone: str
    created_at: float
    ready: bool = True
    unschedulable: bool = False
    lost_at: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Pod:
    """A pod and its one container (named after the service)."""

    name: str
    uid: str
    namespace: str
    service: str
    replicaset: str
    template_hash: str
    labels: dict[str, str]
    image: str
    cpu_request: float
    cpu_limit: float
    startup_delay: float
    created_at: float
    node: str | None = None
    scheduled_at: float | None = None
    started_at: float | None = None
    ready_since: float | None = None
    restarts: int = 0
    phase: str = "Pending"
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.ready_since is not None


@dataclass
class ReplicaSet:
    """One revision of a deployment's pod template and how many pods it should run."""

    name: str
    uid: str
    namespace: str
    deployment: str
    template_hash: str
    template: dict[str, Any]
    revision: int
    created_at: float
    replicas: int = 0
    # Copied from the Deployment while this is its newest revision (see _NOT_COPIED).
    annotations: dict[str, str] = field(default_factory=dict)
    # Revisions this ReplicaSet had before a rollback made it the newest again.
    revision_history: list[int] = field(default_factory=list)


@dataclass
class Deployment:
    """A Deployment: its manifest (metadata and spec as written) plus bookkeeping."""

    manifest: dict[str, Any]
    uid: str
    created_at: float
    generation: int = 1
    _template_hash: str | None = None

    @property
    def template_hash(self) -> str:
        # Hashing the template every tick is costly; it changes only with the manifest.
        if self._template_hash is None:
            self._template_hash = template_hash(self.template)
        return self._template_hash

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def replicas(self) -> int:
        return int(self.manifest["spec"].get("replicas", 1))

    @property
    def template(self) -> dict[str, Any]:
        template: dict[str, Any] = self.manifest["spec"]["template"]
        return template


@dataclass
class Event:
    """A Kubernetes event; repeats of the same event raise its count."""

    uid: str
    namespace: str
    kind: str
    object_name: str
    object_uid: str
    reason: str
    message: str
    type: str
    first_seen: float
    last_seen: float
    count: int = 1


def type_name(subject: object) -> str:
    """The Kubernetes kind of one of the cluster's objects (its class name)."""
    return type(subject).__name__


def template_hash(template: dict[str, Any]) -> str:
    """A stable short hash of a pod template, like Kubernetes' `pod-template-hash`."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(10):
        number, index = divmod(number, len(NAME_ALPHABET))
        chars.append(NAME_ALPHABET[index])
    return "".join(chars)


def container_resources(template: dict[str, Any]) -> tuple[float, float]:
    """(CPU request, CPU limit) in cores of a template's first container."""
    container = template["spec"]["containers"][0]
    resources = container.get("resources") or {}
    limit = quantity.parse_cpu((resources.get("limits") or {}).get("cpu", "1"))
    request = quantity.parse_cpu((resources.get("requests") or {}).get("cpu", limit))
    return request, limit
