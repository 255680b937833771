"""API discovery documents: which groups, versions and resources the twin serves.

kubectl asks for aggregated discovery first; answering with the legacy documents (plain
`application/json`) makes it fall back to them, which every client supports.
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
    singular: str = dataclasses.field(default="", kw_only=True)
    group: str = dataclasses.field(default="", kw_only=True)
    version: str = dataclasses.field(default="v1", kw_only=True)


_READ = ("get", "list", "watch")
CORE = (
    Resource(
        "pods",
        "Pod",
        namespaced=True,
        verbs=(*_READ, "delete", "patch", "update"),
        short_names=("po",),
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
)
APPS = (
    Resource(
        "deployments",
        "Deployment",
        namespaced=True,
        verbs=(*_READ, "patch", "update"),
        short_names=("deploy",),
        singular="deployment",
        group="apps",
    ),
    Resource(
        "replicasets",
        "ReplicaSet",
        namespaced=True,
        verbs=_READ,
        short_names=("rs",),
        singular="replicaset",
        group="apps",
    ),
)
SUBRESOURCES = (
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
    return entry


def core_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def group_list() -> dict[str, Any]:
    version = {"groupVersion": "apps/v1", "version": "v1"}
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{"name": "apps", "versions": [version], "preferredVersion": version}],
    }


def core_resources() -> dict[str, Any]:
    return {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [_resource_entry(resource) for resource in CORE],
    }


def apps_resources() -> dict[str, Any]:
    entries = [_resource_entry(resource) for resource in APPS]
    entries += [entry for group, entry in SUBRESOURCES if group == "apps"]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "apps/v1",
        "resources": entries,
    }


def apps_group() -> dict[str, Any]:
    version = {"groupVersion": "apps/v1", "version": "v1"}
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": "apps",
        "versions": [version],
        "preferredVersion": version,
    }
