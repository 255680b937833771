"""Step types that act on Kubernetes workloads: `kubernetes.scale`, `kubernetes.wait_available`.

Both are idempotent. `kubernetes.scale` records the replica count it found in the step's
durable memo *before* patching, so a re-run after a crash still knows what to roll back to
and does not patch a deployment that is already at the wanted size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.domain.actions import ActionSpec, Invocation, StepFailed, StepType
from selfheal.domain.errors import PermanentError

_POLL_S = 1.0  # scenario seconds between readiness checks


def _replicas(params: Mapping[str, Any]) -> int:
    value = params.get("replicas")
    if isinstance(value, bool) or not isinstance(value, int):
        raise PermanentError(f"replicas must be an integer, got {value!r}")
    return value


def scale_action(cluster: KubernetesCluster) -> ActionSpec:
    def run(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        namespace, name = str(params["namespace"]), str(params["deployment"])
        wanted = _replicas(params)
        maximum = params.get("max_replicas")
        if isinstance(maximum, int) and wanted > maximum:
            raise StepFailed(f"refusing to scale {name} to {wanted}: above max_replicas {maximum}")
        previous = invocation.recall("previous_replicas")
        current = cluster.deployment(namespace, name).replicas
        if previous is None:
            previous = current
            invocation.remember("previous_replicas", previous)
        changed = current != wanted
        if changed:
            cluster.scale(namespace, name, wanted)
        return {
            "namespace": namespace,
            "deployment": name,
            "previous_replicas": previous,
            "replicas": wanted,
            "changed": changed,
        }

    return ActionSpec(
        StepType(
            "kubernetes.scale",
            frozenset({"namespace", "deployment", "replicas", "max_replicas"}),
            frozenset({"namespace", "deployment", "replicas"}),
            "Set a Deployment's replicas through the scale subresource.",
        ),
        run,
    )


def wait_available_action(cluster: KubernetesCluster) -> ActionSpec:
    def run(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        namespace, name = str(params["namespace"]), str(params["deployment"])
        started = invocation.clock.now()
        while True:
            state = cluster.deployment(namespace, name)
            wanted = _replicas(params) if "replicas" in params else state.replicas
            if state.available >= wanted and state.updated >= min(wanted, state.replicas):
                return {
                    "available": state.available,
                    "replicas": wanted,
                    "waited_s": round(invocation.clock.now() - started, 3),
                }
            if invocation.time_left() <= 0:
                raise StepFailed(
                    f"{name}: {state.available}/{wanted} replicas available when the step "
                    "timed out",
                    output={"available": state.available, "replicas": wanted},
                )
            invocation.clock.sleep_blocking(min(_POLL_S, max(0.0, invocation.time_left())))

    return ActionSpec(
        StepType(
            "kubernetes.wait_available",
            frozenset({"namespace", "deployment", "replicas"}),
            frozenset({"namespace", "deployment"}),
            "Wait until a Deployment has the wanted number of available replicas.",
        ),
        run,
    )
