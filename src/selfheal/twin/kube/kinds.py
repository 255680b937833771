"""The resources the API serves: for each plural, its Kind, API group, scope and renderer.

Routes name a resource by its plural within a group (`/apis/apps/v1/.../deployments`); this
table says whether that group serves it, and how to render every object of it from the
model. Discovery (discovery.py) lists the same resources for clients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfheal.twin.cluster import Cluster
from selfheal.twin.kube import objects, services

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Kind:
    """One resource type: `Deployment` in `apps`, rendered from the cluster."""

    kind: str
    group: str
    render_all: Callable[[Cluster], list[JsonObject]]
    cluster_scoped: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/v1" if self.group else "v1"


KINDS: dict[str, Kind] = {
    "pods": Kind("Pod", "", lambda c: [objects.pod(c, p) for p in c.pods.values()]),
    "nodes": Kind(
        "Node", "", lambda c: [objects.node(c, n) for n in c.nodes.values()], cluster_scoped=True
    ),
    "events": Kind("Event", "", lambda c: [objects.event(c, e) for e in c.events]),
    "namespaces": Kind("Namespace", "", lambda c: [objects.namespace(c)], cluster_scoped=True),
    "services": Kind(
        "Service", "", lambda c: [services.service(c, s) for s in c.services.values()]
    ),
    "endpoints": Kind(
        "Endpoints", "", lambda c: [services.endpoints(c, s) for s in c.services.values()]
    ),
    "deployments": Kind(
        "Deployment", "apps", lambda c: [objects.deployment(c, d) for d in c.deployments.values()]
    ),
    "replicasets": Kind(
        "ReplicaSet", "apps", lambda c: [objects.replicaset(c, r) for r in c.replicasets.values()]
    ),
    "endpointslices": Kind(
        "EndpointSlice",
        "discovery.k8s.io",
        lambda c: [services.endpoint_slice(c, s) for s in c.services.values()],
    ),
}


def lookup(*, group: str, plural: str) -> Kind | None:
    """The resource `plural` of `group` ("" for the core group), if the twin serves it."""
    kind = KINDS.get(plural)
    return kind if kind is not None and kind.group == group else None


def plural_of(kind: str) -> str:
    """The resource a Kind is served as (`Scale` is the Deployment's subresource)."""
    if kind == "Scale":
        return "deployments"
    found = (plural for plural, known in KINDS.items() if known.kind == kind)
    return next(found, kind.lower() + "s")
