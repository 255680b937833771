"""Prometheus text exposition of the twin, with the names and labels real clusters use.

One endpoint stands in for three sources a real Prometheus would scrape: cAdvisor (container
CPU and CFS counters), kube-state-metrics (deployments, pods, nodes) and the applications'
own HTTP metrics. App metrics carry `namespace`, `pod` and `service` as they get them from
pod service discovery. Counters are monotonic per container and start from zero when a
container restarts, as real ones do.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

from selfheal.twin.simulation import LATENCY_BUCKETS, Simulation

_HELP = {
    "container_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed in seconds."),
    "container_cpu_cfs_periods_total": (
        "counter",
        "Number of elapsed enforcement period intervals.",
    ),
    "container_cpu_cfs_throttled_periods_total": (
        "counter",
        "Number of throttled period intervals.",
    ),
    "container_cpu_cfs_throttled_seconds_total": (
        "counter",
        "Total time duration the container has been throttled.",
    ),
    "container_spec_cpu_quota": ("gauge", "CPU quota of the container."),
    "container_spec_cpu_period": ("gauge", "CPU period of the container."),
    "kube_deployment_spec_replicas": ("gauge", "Number of desired pods for a deployment."),
    "kube_deployment_metadata_generation": (
        "gauge",
        "Sequence number representing a specific generation of the desired state.",
    ),
    "kube_deployment_status_replicas": ("gauge", "The number of replicas per deployment."),
    "kube_deployment_status_replicas_available": (
        "gauge",
        "The number of available replicas per deployment.",
    ),
    "kube_deployment_status_replicas_updated": (
        "gauge",
        "The number of updated replicas per deployment.",
    ),
    "kube_pod_info": ("gauge", "Information about pod."),
    "kube_pod_status_ready": ("gauge", "Describes whether the pod is ready to serve requests."),
    "kube_pod_status_phase": ("gauge", "The pods current phase."),
    "kube_pod_container_status_restarts_total": (
        "counter",
        "The number of container restarts per container.",
    ),
    "kube_pod_container_resource_limits": (
        "gauge",
        "The number of requested limit resource by a container.",
    ),
    "kube_pod_container_resource_requests": (
        "gauge",
        "The number of requested request resource by a container.",
    ),
    "kube_node_spec_unschedulable": ("gauge", "Whether a node can schedule new pods."),
    "kube_node_status_condition": ("gauge", "The condition of a cluster node."),
    "kube_node_status_allocatable": ("gauge", "The allocatable for different resources of a node."),
    "http_requests_total": ("counter", "HTTP requests served, by status code."),
    "http_request_duration_seconds": ("histogram", "HTTP request latency in seconds."),
    "twin_scenario_elapsed_seconds": ("gauge", "Scenario seconds since the twin started."),
    "twin_load_factor": ("gauge", "Current traffic multiplier of the scenario."),
}

_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: dict[str, str]) -> str:
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in pairs.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _le(bound: float) -> str:
    return repr(float(bound))


Sample = tuple[str, dict[str, str], float]  # series name (suffix included), labels, value


def render(simulation: Simulation, *, only: Collection[str] | None = None) -> str:
    """The exposition text, families in a stable order, each with HELP and TYPE."""
    by_family = _samples_by_family(simulation, only=only)
    return "".join(
        _family(
            name, [f"{series}{_labels(labels)} {_number(value)}" for series, labels, value in rows]
        )
        for name, rows in by_family.items()
        if rows
    )


def samples(simulation: Simulation, *, only: Collection[str] | None = None) -> list[Sample]:
    """The exposition's samples, unformatted, in the order `render` writes them.

    `only` limits them to the named families. A replay that keeps a few families takes
    these instead of formatting and parsing text, which is most of a scenario replay's cost.
    """
    return [row for rows in _samples_by_family(simulation, only=only).values() for row in rows]


def _samples_by_family(
    simulation: Simulation, *, only: Collection[str] | None
) -> dict[str, list[Sample]]:
    families: dict[str, list[Sample]] = {name: [] for name in _HELP if only is None or name in only}

    def add(family: str, labels: dict[str, str], value: float, suffix: str = "") -> None:
        rows = families.get(family)
        if rows is not None:
            rows.append((family + suffix, labels, value))

    cluster = simulation.cluster
    namespace = cluster.namespace
    for pod in sorted(cluster.pods.values(), key=lambda p: p.name):
        base = {"namespace": namespace, "pod": pod.name}
        add(
            "kube_pod_info",
            {
                **base,
                "uid": pod.uid,
                "node": pod.node or "",
                "created_by_kind": "ReplicaSet",
                "created_by_name": pod.replicaset,
            },
            1,
        )
        for condition in ("true", "false", "unknown"):
            ready = "true" if pod.ready else "false"
            add(
                "kube_pod_status_ready",
                {**base, "uid": pod.uid, "condition": condition},
                1 if condition == ready else 0,
            )
        for phase in _PHASES:
            add(
                "kube_pod_status_phase",
                {**base, "uid": pod.uid, "phase": phase},
                1 if phase == pod.phase else 0,
            )
        container = {**base, "container": pod.service}
        add("kube_pod_container_status_restarts_total", {**container, "uid": pod.uid}, pod.restarts)
        for family, cores in (
            ("kube_pod_container_resource_limits", pod.cpu_limit),
            ("kube_pod_container_resource_requests", pod.cpu_request),
        ):
            add(
                family,
                {
                    **container,
                    "node": pod.node or "",
                    "resource": "cpu",
                    "unit": "core",
                    "uid": pod.uid,
                },
                cores,
            )
        state = simulation.telemetry.get(pod.uid)
        if state is None:
            continue
        cadvisor = {**container, "image": pod.image}
        add("container_cpu_usage_seconds_total", cadvisor, state.cpu_seconds)
        add("container_cpu_cfs_periods_total", cadvisor, math.floor(state.periods))
        add(
            "container_cpu_cfs_throttled_periods_total",
            cadvisor,
            math.floor(state.throttled_periods),
        )
        add("container_cpu_cfs_throttled_seconds_total", cadvisor, state.throttled_seconds)
        add("container_spec_cpu_quota", cadvisor, round(pod.cpu_limit * 100_000))
        add("container_spec_cpu_period", cadvisor, 100_000)
        app = {"namespace": namespace, "pod": pod.name, "service": pod.service}
        for code, count in sorted(state.requests.items()):
            add("http_requests_total", {**app, "code": code}, math.floor(count))
        total = math.floor(state.duration_count)
        running = 0
        for bound, count in zip(LATENCY_BUCKETS, state.bucket_counts, strict=True):
            # Guard the cumulative invariant against float rounding in the accumulators.
            running = min(total, max(running, math.floor(count)))
            add("http_request_duration_seconds", {**app, "le": _le(bound)}, running, "_bucket")
        add("http_request_duration_seconds", {**app, "le": "+Inf"}, total, "_bucket")
        add("http_request_duration_seconds", app, state.duration_sum, "_sum")
        add("http_request_duration_seconds", app, total, "_count")
    for deployment in sorted(cluster.deployments.values(), key=lambda d: d.name):
        labels = {"namespace": namespace, "deployment": deployment.name}
        pods = cluster.pods_of_service(deployment.name)
        newest = cluster.replicasets_of(deployment.name)[-1:]
        add("kube_deployment_spec_replicas", labels, deployment.replicas)
        add("kube_deployment_metadata_generation", labels, deployment.generation)
        add("kube_deployment_status_replicas", labels, len(pods))
        add(
            "kube_deployment_status_replicas_available", labels, sum(1 for pod in pods if pod.ready)
        )
        add(
            "kube_deployment_status_replicas_updated",
            labels,
            sum(1 for pod in pods if newest and pod.replicaset == newest[0].name),
        )
    for node in sorted(cluster.nodes.values(), key=lambda n: n.name):
        add("kube_node_spec_unschedulable", {"node": node.name}, 1 if node.unschedulable else 0)
        for status in ("true", "false", "unknown"):
            current = "true" if node.ready else "unknown"
            add(
                "kube_node_status_condition",
                {"node": node.name, "condition": "Ready", "status": status},
                1 if status == current else 0,
            )
        add(
            "kube_node_status_allocatable",
            {"node": node.name, "resource": "cpu", "unit": "core"},
            node.cpu,
        )
    add("twin_scenario_elapsed_seconds", {"scenario": simulation.scenario.name}, simulation.elapsed)
    add("twin_load_factor", {"scenario": simulation.scenario.name}, simulation.load_factor)
    return families


def _family(name: str, lines: Iterable[str]) -> str:
    kind, text = _HELP[name]
    return f"# HELP {name} {text}\n# TYPE {name} {kind}\n" + "".join(f"{line}\n" for line in lines)
