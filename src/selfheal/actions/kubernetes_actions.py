"""Step types that act on Kubernetes workloads.

`kubernetes.scale`, `kubernetes.restore_replicas`, `kubernetes.wait_available`; all are
idempotent. `kubernetes.scale` records the replica count it found in the step's durable
memo *before* patching, so a re-run after a crash still knows what to roll back to and does
not patch a deployment that is already at the wanted size. `kubernetes.restore_replicas`
puts that count back, from whatever point the scale reached: a scale that never read the
deployment never changed it, and there is nothing to restore.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selfheal.actions.kubernetes_client import ConflictError, DeploymentState, KubernetesCluster
from selfheal.domain.actions import ActionSpec, Invocation, StepFailed, StepType
from selfheal.domain.errors import PermanentError, TemporaryError

_POLL_S = 1.0  # scenario seconds between readiness checks
# Reads and writes in a row when the deployment keeps changing between them.
_CONFLICT_RETRIES = 5


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
        state = cluster.deployment(namespace, name)
        if previous is None:
            previous = state.replicas
            invocation.remember("previous_replicas", previous)
        changed = _scale_to(cluster, state, wanted)
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


def _scale_to(cluster: KubernetesCluster, state: DeploymentState, wanted: int) -> bool:
    """Set the replicas unless they are already `wanted`; True if this call changed them.

    Each write names the version it was decided on; if the deployment changed meanwhile
    (its status moves with every pod, or another writer got there first) it is read again
    and decided again, so no write rests on a stale read and none is made twice.
    """
    for _ in range(_CONFLICT_RETRIES):
        if state.replicas == wanted:
            return False
        try:
            cluster.scale(
                state.namespace, state.name, wanted, resource_version=state.resource_version
            )
        except ConflictError:
            state = cluster.deployment(state.namespace, state.name)
            continue
        return True
    raise TemporaryError(
        f"{state.name} kept changing under {_CONFLICT_RETRIES} writes in a row", delay=1.0
    )


def restore_replicas_action(cluster: KubernetesCluster) -> ActionSpec:
    def run(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        namespace, name = str(params["namespace"]), str(params["deployment"])
        scaled_by = str(params.get("scaled_by", "scale"))
        previous = invocation.recall_of(scaled_by, "previous_replicas")
        base = {"namespace": namespace, "deployment": name}
        if previous is None:
            return {
                **base,
                "changed": False,
                "summary": f"nothing to restore: step {scaled_by!r} never read {name}",
            }
        state = cluster.deployment(namespace, name)
        current = state.replicas
        _scale_to(cluster, state, int(previous))
        return {
            **base,
            "restored_to": previous,
            "found": current,
            "changed": current != previous,
            "summary": f"{name} set back to {previous} replicas (it had {current})"
            if current != previous
            else f"{name} already at its {previous} replicas",
        }

    return ActionSpec(
        StepType(
            "kubernetes.restore_replicas",
            frozenset({"namespace", "deployment", "scaled_by"}),
            frozenset({"namespace", "deployment"}),
            "Put back the replicas a scale step found before it changed them (compensation).",
        ),
        run,
    )


def wait_available_action(cluster: KubernetesCluster) -> ActionSpec:
    def run(params: Mapping[str, Any], invocation: Invocation) -> Mapping[str, Any]:
        namespace, name = str(params["namespace"]), str(params["deployment"])
        started = invocation.clock.now()
        last_error = ""
        while True:
            try:
                state = cluster.deployment(namespace, name)
            except TemporaryError as exc:
                # The API failing now and then is no reason to give up the wait: keep
                # polling until the step's deadline, and say so if it is reached.
                state, last_error = None, str(exc)
            if state is not None:
                wanted = _replicas(params) if "replicas" in params else state.replicas
                if state.available >= wanted and state.updated >= min(wanted, state.replicas):
                    return {
                        "available": state.available,
                        "replicas": wanted,
                        "waited_s": round(invocation.clock.now() - started, 3),
                    }
            if invocation.time_left() <= 0:
                if state is None:
                    raise StepFailed(
                        f"{name}: the Kubernetes API could not be read when the step timed "
                        f"out ({last_error})"
                    )
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
