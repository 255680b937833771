"""Step implementations: what runbook steps do to the world.

Each module provides `ActionSpec`s (a step type and its function, see
`selfheal.domain.actions`); `runtime` wires them to their ports. Only
`kubernetes_client.py` imports the Kubernetes client. `permissions.py` says which
Kubernetes API access each step type needs (the source of `selfheal rbac`).
"""

from selfheal.actions import (
    bookkeeping,
    kubernetes_actions,
    kubernetes_client,
    permissions,
    ports,
    verify,
)
from selfheal.actions.kubernetes_client import KubernetesCluster

__all__ = [
    "KubernetesCluster",
    "bookkeeping",
    "kubernetes_actions",
    "kubernetes_client",
    "permissions",
    "ports",
    "verify",
]
