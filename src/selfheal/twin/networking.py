"""Services: the stable virtual IP and selector in front of each Deployment's pods.

Every service of a scenario is reached through a ClusterIP Service of the same name, as on
the platform the twin copies: port 80 forwards to the port each pod's container listens on,
and the selector is the Deployment's. Nothing in the twin changes a Service once made (the
API serves them read-only), so they are frozen records; which pods back one (its Endpoints)
is read off the pods whenever asked, so a relabelled or unready pod drops out at once.

Cluster IPs come from the service name's hash inside kubeadm's default service range
(10.96.0.0/12), so a Service keeps its IP from run to run whatever else the scenario holds.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SERVICE_PORT = 80
# 10.96.0.1 is the API server's own Service and 10.96.0.10 the cluster DNS, on every cluster.
_RESERVED = frozenset({"10.96.0.1", "10.96.0.10"})
_ADDRESSES = 16 * 256 * 254  # 10.96.0.0/12, leaving out .0 and .255 of each /24


@dataclass(frozen=True, slots=True)
class ServicePort:
    """A port of the Service and the container port it forwards to."""

    name: str
    port: int
    target_port: int
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class Service:
    """A ClusterIP Service in front of one Deployment's pods."""

    name: str
    namespace: str
    uid: str
    cluster_ip: str
    selector: Mapping[str, str]
    ports: tuple[ServicePort, ...]
    created_at: float

    def selects(self, labels: Mapping[str, str]) -> bool:
        """Whether a pod with these labels backs the Service."""
        return all(labels.get(key) == value for key, value in self.selector.items())


def cluster_ip(name: str, *, taken: Iterable[str]) -> str:
    """A free address in 10.96.0.0/12 chosen by the name's hash (the next free on collision)."""
    used = _RESERVED | set(taken)
    start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % _ADDRESSES
    for offset in range(_ADDRESSES):
        index = (start + offset) % _ADDRESSES
        network, host = divmod(index, 254)
        address = f"10.{96 + network // 256}.{network % 256}.{host + 1}"
        if address not in used:
            return address
    raise ValueError("the service range 10.96.0.0/12 is full")


def for_deployment(
    *,
    name: str,
    namespace: str,
    namespace_uid: str,
    selector: Mapping[str, str],
    template: dict[str, Any],
    created_at: float,
    taken: Iterable[str],
) -> Service:
    """The Service a scenario's service gets: same name, same selector, port 80 in front."""
    container = template["spec"]["containers"][0]
    ports = tuple(
        ServicePort(
            name=str(port.get("name") or f"port-{port['containerPort']}"),
            # The first port is the service's public one, on 80; others keep their numbers.
            port=SERVICE_PORT if index == 0 else int(port["containerPort"]),
            target_port=int(port["containerPort"]),
            protocol=str(port.get("protocol", "TCP")),
        )
        for index, port in enumerate(container.get("ports") or [])
    )
    return Service(
        name=name,
        namespace=namespace,
        # Derived rather than drawn from the cluster's seeded generator, so adding Services
        # left every pod name and UID of existing runs as it was.
        uid=str(uuid.uuid5(uuid.UUID(namespace_uid), f"services/{name}")),
        cluster_ip=cluster_ip(name, taken=taken),
        selector=dict(selector),
        ports=ports,
        created_at=created_at,
    )
