"""API discovery documents: which groups, versions and resources the twin serves.

kubectl asks for aggregated discovery first; answering with the legacy documents (plain
`application/json`) makes it fall back to them, which every client supports. Resources in
the `all` category are what `kubectl get all` lists.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

SERVER_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-selfheal-twin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.22",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True, slots=True)
class Resource:
    """One resource type as discovery documents list it."""

    plural: str
    kind: str
    namespaced: bool = dataclasses.field(kw_only=True)
    verbs: tuple[str, ...] = dataclasses.field(kw_only=True)
    short_names: tuple[str, ...] = dataclasses.field(default=(), kw_only=True)
    categories: tuple[str, ...] = dataclasses.field(default=(), kw_only=True)
    singular: str = dataclasses.field(default="", kw_only=True)
    group: str = dataclasses.field(default="", kw_only=True)
    version: str = dataclasses.field(default="v1", kw_only=True)


_READ = ("get", "list", "watch")
_ALL = ("all",)
CORE = (
    Resource(
        "pods",
        "Pod",
        namespaced=True,
        verbs=(*_READ, "delete", "patch", "update"),
        short_names=("po",),
        categories=_ALL,
        singular="pod",
    ),
    Resource(
        "nodes",
        "Node",
        namespaced=False,
        verbs=(*_READ, "patch", "update"),
        short_names=("no",),
        singular="node",
    ),
    Resource(
        "events", "Event", namespaced=True, verbs=_READ, short_names=("ev",), singular="event"
    ),
    Resource(
        "namespaces",
        "Namespace",
        namespaced=False,
        verbs=_READ,
        short_names=("ns",),
        singular="namespace",
    ),
    Resource(
        "services",
        "Service",
        namespaced=True,
        verbs=_READ,
        short_names=("svc",),
        categories=_ALL,
        singular="service",
    ),
    Resource(
        "endpoints",
        "Endpoints",
        namespaced=True,
        verbs=_READ,
        short_names=("ep",),
        singular="endpoints",
    ),
)
APPS = (
    Resource(
        "deployments",
        "Deployment",
        namespaced=True,
        verbs=(*_READ, "patch", "update"),
        short_names=("deploy",),
        categories=_ALL,
        singular="deployment",
        group="apps",
    ),
    Resource(
        "replicasets",
        "ReplicaSet",
        namespaced=True,
        verbs=_READ,
        short_names=("rs",),
        categories=_ALL,
        singular="replicaset",
        group="apps",
    ),
)
DISCOVERY = (
    Resource(
        "endpointslices",
        "EndpointSlice",
        namespaced=True,
        verbs=_READ,
        singular="endpointslice",
        group="discovery.k8s.io",
    ),
)
# The named API groups, in the order `/apis` lists them.
GROUPS = {"apps": APPS, "discovery.k8s.io": DISCOVERY}
SUBRESOURCES = (
    (
        "",
        {
            "name": "pods/log",
            "singularName": "",
            "namespaced": True,
            "kind": "Pod",
            "verbs": ["get"],
        },
    ),
    (
        "apps",
        {
            "name": "deployments/scale",
            "singularName": "",
            "namespaced": True,
            "group": "autoscaling",
            "version": "v1",
            "kind": "Scale",
            "verbs": ["get", "patch", "update"],
        },
    ),
    (
        "apps",
        {
            "name": "deployments/status",
            "singularName": "",
            "namespaced": True,
            "kind": "Deployment",
            "verbs": ["get"],
        },
    ),
)


def _resource_entry(resource: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": list(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    return entry


def core_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _group(name: str) -> dict[str, Any]:
    version = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [version], "preferredVersion": version}


def group_list() -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(name) for name in GROUPS],
    }


def core_resources() -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            *(_resource_entry(resource) for resource in CORE),
            *(entry for owner, entry in SUBRESOURCES if owner == ""),
        ],
    }


def group_resources(name: str) -> dict[str, Any] | None:
    """`/apis/NAME/v1`: the group's resources and subresources; None for an unknown group."""
    if name not in GROUPS:
        return None
    entries = [_resource_entry(resource) for resource in GROUPS[name]]
    entries += [entry for owner, entry in SUBRESOURCES if owner == name]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{name}/v1",
        "resources": entries,
    }


def group(name: str) -> dict[str, Any] | None:
    """`/apis/NAME`: the group's versions; None for an unknown group."""
    if name not in GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}
