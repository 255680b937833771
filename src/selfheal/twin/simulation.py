"""The running twin: a cluster, its traffic, and the telemetry they produce, tick by tick.

`Simulation.advance_to(t)` steps the model in fixed ticks of scenario time up to `t`. A run
is deterministic given the scenario's seed and the changes made to it (API calls, faults) at
given scenario times. Each tick:

1. due faults fire; the load factor moves along its ramp;
2. the controllers reconcile (cluster.py);
3. traffic enters at the entry service and fans out along the call graph;
4. CPU is shared on each node and each ready pod serves, queues, throttles or drops
   (performance.py), callees before callers so a caller's latency includes its calls;
5. counters accumulate for /metrics and the run's report;
6. every ten scenario seconds, each pod logs what it served (container_logs.py).
"""

from __future__ import annotations

import copy
import heapq
import itertools
import math
import random
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from selfheal.twin import container_logs, performance, quantity
from selfheal.twin import faults as faults_module
from selfheal.twin.cluster import Cluster
from selfheal.twin.cluster_objects import Pod
from selfheal.twin.scenario import Scenario, ServiceSpec

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)

ONSET_THROTTLED_SHARE = 0.5
_LOG_BUCKETS = tuple(math.log(bound) for bound in LATENCY_BUCKETS)


@dataclass
class PodTelemetry:
    """Counters of one container since it (re)started, plus its latest tick's figures."""

    cpu_seconds: float = 0.0
    throttled_seconds: float = 0.0
    periods: float = 0.0
    throttled_periods: float = 0.0
    requests: dict[str, float] = field(default_factory=dict)
    bucket_counts: list[float] = field(default_factory=lambda: [0.0] * len(LATENCY_BUCKETS))
    duration_sum: float = 0.0
    duration_count: float = 0.0
    backlog: float = 0.0
    restarts_seen: int = 0
    # Latest tick:
    demand: float = 0.0
    usage: float = 0.0
    # Cores the container could get this tick if it wanted them (limit and node share).
    available: float = 0.0
    throttled_share: float = 0.0
    rps: float = 0.0
    mean_latency: float = 0.0


@dataclass
class ServiceTick:
    """One service's figures for the latest tick."""

    rps: float = 0.0
    p95: float = 0.0
    mean_latency: float = 0.0
    error_ratio: float = 0.0
    ready_pods: int = 0


@dataclass
class ServiceTotals:
    """Whole-run figures of one service."""

    requests: float = 0.0
    errors: float = 0.0
    slo_violation_s: float = 0.0
    max_p95: float = 0.0


@dataclass(frozen=True)
class TimelinePoint:
    """A sample of the run for people: what happened, every so often."""

    elapsed: float
    load_factor: float
    services: dict[str, ServiceTick]
    replicas: dict[str, int]
    peak_throttling: float


class Simulation:
    """A scenario in motion. Not thread-safe: drive it from one thread or event loop."""

    def __init__(self, scenario: Scenario, *, epoch: float, timeline_every: float = 30.0) -> None:
        self.scenario = scenario
        self.epoch = epoch
        self.elapsed = 0.0
        self.tick = scenario.tick
        self.cluster = Cluster(namespace=scenario.namespace, epoch=epoch, seed=scenario.seed)
        self.telemetry: dict[str, PodTelemetry] = {}
        self.service_ticks: dict[str, ServiceTick] = {
            name: ServiceTick() for name in scenario.services
        }
        self.totals: dict[str, ServiceTotals] = {
            name: ServiceTotals() for name in scenario.services
        }
        self.peak_throttling = 0.0
        # Ground truth for "time to detect": when each service first breached its SLO, first
        # had a pod throttled in at least half of its CFS periods, and first had a container
        # crash.
        self.first_breach_at: dict[str, float] = {}
        self.first_throttled_at: dict[str, float] = {}
        self.first_crash_at: dict[str, float] = {}
        self.peak_throttling_pod = ""
        self.load_factor = 1.0
        self._ramp: tuple[float, float, float, float] | None = None  # t0, f0, t1, f1
        self._noise = random.Random(scenario.seed * 7919 + 1)
        self._pending: list[tuple[float, int, faults_module.Fault]] = []
        self._crash_loops: dict[str, tuple[float, float]] = {}  # service: (every, until)
        self._sequence = itertools.count()
        self._order = self._callees_first()
        self.timeline: deque[TimelinePoint] = deque(maxlen=10_000)
        self._timeline_every = timeline_every
        self._next_sample = timeline_every
        self._next_log_summary = container_logs.SUMMARY_EVERY_S
        for fault in scenario.faults:
            heapq.heappush(self._pending, (fault.at, next(self._sequence), fault))
        for node in scenario.nodes:
            self.cluster.add_node(name=node.name, cpu=node.cpu, zone=node.zone, now=0.0)
        for name, spec in scenario.services.items():
            self.cluster.add_deployment(
                name=name,
                template=_pod_template(name, spec),
                replicas=spec.replicas,
                startup_delay=spec.startup_delay,
                now=0.0,
            )
        # Start with every pod already warm, as a cluster that has been running for a while.
        self.cluster.reconcile(now=0.0)
        for pod in self.cluster.pods.values():
            pod.started_at = -pod.startup_delay
            pod.phase = "Running" if pod.node else "Pending"
        self.cluster.reconcile(now=0.0)

    # ---- time -------------------------------------------------------------------------
    def now(self) -> float:
        """Scenario time as a Unix timestamp."""
        return self.epoch + self.elapsed

    @property
    def finished(self) -> bool:
        return self.elapsed >= self.scenario.duration - 1e-9

    def advance_to(self, elapsed: float) -> None:
        """Step whole ticks until the model's time reaches `elapsed` scenario seconds."""
        while self.elapsed + self.tick <= elapsed + 1e-9:
            self.step()

    def run_to_end(self) -> None:
        self.advance_to(self.scenario.duration)

    # ---- FaultTarget ------------------------------------------------------------------
    def set_load_factor(self, factor: float, *, ramp_over: float) -> None:
        if ramp_over <= 0:
            self.load_factor = factor
            self._ramp = None
        else:
            self._ramp = (self.elapsed, self.load_factor, self.elapsed + ramp_over, factor)

    def set_cpu_resources(
        self, service: str, *, limit: float | None, request: float | None
    ) -> None:
        deployment = self.cluster.deployments[service]
        manifest = _deep_copy(deployment.manifest)
        resources = manifest["spec"]["template"]["spec"]["containers"][0]["resources"]
        if limit is not None:
            resources["limits"]["cpu"] = quantity.format_cpu(limit)
        if request is not None:
            resources["requests"]["cpu"] = quantity.format_cpu(request)
        self.cluster.update_deployment(service, manifest, now=self.elapsed)

    def crash_pods(self, service: str, *, count: int) -> None:
        victims = sorted(
            (pod for pod in self.cluster.pods_of_service(service) if pod.ready),
            key=lambda pod: pod.name,
        )[:count]
        for pod in victims:
            self._crash(pod)

    def lose_node(self, node: str, *, recover_after: float | None) -> None:
        self.cluster.set_node_ready(node, ready=False, now=self.elapsed)
        if recover_after is not None:
            self.schedule(recover_after, _NodeRecovery(type="node_recovery", at=0.0, node=node))

    def set_replicas(self, service: str, *, replicas: int) -> None:
        manifest = _deep_copy(self.cluster.deployments[service].manifest)
        manifest["spec"]["replicas"] = replicas
        self.cluster.update_deployment(service, manifest, now=self.elapsed)

    def crash_loop(self, service: str, *, every: float, until: float) -> None:
        self._crash_loops[service] = (every, until)

    def _crash_looping_pods(self) -> None:
        """Crash each looping service's pods that have served their (spread) period."""
        for service, (every, until) in list(self._crash_loops.items()):
            if self.elapsed >= until:
                del self._crash_loops[service]
                continue
            for pod in self.cluster.pods_of_service(service):
                if pod.ready_since is None:
                    continue
                spread = 0.75 + 0.5 * (zlib.crc32(pod.uid.encode()) % 1000) / 1000
                if self.elapsed - pod.ready_since >= every * spread:
                    self._crash(pod)

    def _crash(self, pod: Pod) -> None:
        self.first_crash_at.setdefault(pod.service, self.elapsed)
        self.cluster.crash_container(pod, now=self.elapsed)

    def schedule(self, delay: float, fault: faults_module.Fault) -> None:
        heapq.heappush(self._pending, (self.elapsed + delay, next(self._sequence), fault))

    # ---- one tick ---------------------------------------------------------------------
    def step(self) -> None:
        self.elapsed = round(self.elapsed + self.tick, 9)
        while self._pending and self._pending[0][0] <= self.elapsed + 1e-9:
            _, _, fault = heapq.heappop(self._pending)
            fault.apply(self)
        self._move_load()
        if self._crash_loops:
            self._crash_looping_pods()
        self.cluster.reconcile(
            now=self.elapsed, eviction_timeout=self.scenario.pod_eviction_timeout
        )
        self._serve_traffic()
        if self.elapsed >= self._next_log_summary - 1e-9:
            self._next_log_summary += container_logs.SUMMARY_EVERY_S
            self._log_requests()
        if self.elapsed >= self._next_sample - 1e-9:
            self._sample()

    def _move_load(self) -> None:
        if self._ramp is None:
            return
        t0, f0, t1, f1 = self._ramp
        if self.elapsed >= t1:
            self.load_factor, self._ramp = f1, None
        else:
            self.load_factor = f0 + (f1 - f0) * (self.elapsed - t0) / (t1 - t0)

    def onset(self, service: str) -> float | None:
        """When the service's trouble began: first throttling, SLO breach or crash."""
        firsts = (self.first_throttled_at, self.first_breach_at, self.first_crash_at)
        times = [first[service] for first in firsts if service in first]
        return min(times) if times else None

    def entry_rps(self) -> float:
        load = self.scenario.load
        phase = 2 * math.pi * (self.elapsed - load.peak_at) / load.diurnal_period
        diurnal = 1.0 + load.diurnal_amplitude * math.cos(phase)
        noise = max(0.0, self._noise.gauss(1.0, load.noise)) if load.noise else 1.0
        return load.base_rps * self.load_factor * diurnal * noise

    def _service_rps(self) -> dict[str, float]:
        rps = dict.fromkeys(self.scenario.services, 0.0)
        rps[self.scenario.entry_service] = self.entry_rps()
        for name in reversed(self._order):  # callers before callees
            for call in self.scenario.services[name].calls:
                rps[call.service] += rps[name] * call.ratio
        return rps

    def _serve_traffic(self) -> None:
        dt = self.tick
        rps = self._service_rps()
        self._forget_departed_pods()
        serving = {
            name: [pod for pod in self.cluster.pods_of_service(name) if self._serves(pod)]
            for name in self.scenario.services
        }
        # Demand first, since CPU shares on a node depend on every pod there.
        for name, pods in serving.items():
            spec = self.scenario.services[name]
            per_pod = rps[name] / len(pods) if pods else 0.0
            for pod in pods:
                state = self.telemetry[pod.uid]
                state.rps = per_pod
                queued = state.backlog / dt
                state.demand = spec.idle_cpu + spec.cpu_per_request * (per_pod + queued)
        for pod in self.cluster.pods.values():
            if pod.started_at is not None and not self._serves(pod):
                state = self._state(pod)
                state.rps = 0.0
                state.backlog = 0.0
                spec = self.scenario.services[pod.service]
                state.demand = spec.idle_cpu if self._node_up(pod) else 0.0
        self._share_node_cpu()
        for name in self._order:
            self._serve_service(name, serving[name], rps[name], dt)
        for name, tick in self.service_ticks.items():
            totals = self.totals[name]
            totals.requests += tick.rps * dt
            totals.errors += tick.rps * tick.error_ratio * dt
            totals.max_p95 = max(totals.max_p95, tick.p95)
            if tick.p95 > self.scenario.slo.p95_latency:
                totals.slo_violation_s += dt
                self.first_breach_at.setdefault(name, self.elapsed)
        for pod in self.cluster.pods.values():
            pod_state = self.telemetry.get(pod.uid)
            if pod_state is not None and pod_state.throttled_share >= ONSET_THROTTLED_SHARE:
                self.first_throttled_at.setdefault(pod.service, self.elapsed)

    def _serves(self, pod: Pod) -> bool:
        return pod.ready and self._node_up(pod)

    def _node_up(self, pod: Pod) -> bool:
        return pod.node is not None and self.cluster.nodes[pod.node].ready

    def _state(self, pod: Pod) -> PodTelemetry:
        state = self.telemetry.get(pod.uid)
        if state is None or state.restarts_seen != pod.restarts:
            # A restarted container starts its counters from zero, as cAdvisor's do.
            state = PodTelemetry(restarts_seen=pod.restarts)
            self.telemetry[pod.uid] = state
        return state

    def _forget_departed_pods(self) -> None:
        live = {pod.uid for pod in self.cluster.pods.values()}
        for uid in [uid for uid in self.telemetry if uid not in live]:
            del self.telemetry[uid]
        for pod in self.cluster.pods.values():
            if pod.started_at is not None:
                self._state(pod)

    def _share_node_cpu(self) -> None:
        for node in self.cluster.nodes.values():
            pods = [
                pod
                for pod in self.cluster.pods.values()
                if pod.node == node.name and pod.uid in self.telemetry
            ]
            if not node.ready:
                for pod in pods:
                    self.telemetry[pod.uid].usage = 0.0
                continue
            wants = [min(self.telemetry[pod.uid].demand, pod.cpu_limit) for pod in pods]
            weights = [pod.cpu_request for pod in pods]
            shares = performance.share_cpu(capacity=node.cpu, wants=wants, weights=weights)
            spare = max(0.0, node.cpu - sum(shares))
            total_weight = sum(weights) or 1.0
            for pod, share, weight in zip(pods, shares, weights, strict=True):
                state = self.telemetry[pod.uid]
                state.usage = share
                state.available = min(pod.cpu_limit, share + spare * weight / total_weight)

    def _serve_service(self, name: str, pods: list[Pod], rps: float, dt: float) -> None:
        spec = self.scenario.services[name]
        downstream_latency = spec.external_latency
        downstream_ok = 1.0
        for call in spec.calls:
            callee = self.service_ticks[call.service]
            downstream_latency += call.ratio * callee.mean_latency
            downstream_ok *= (1.0 - callee.error_ratio) ** call.ratio
        components: list[tuple[float, float]] = []
        point_masses: list[tuple[float, float]] = []
        served_total = dropped_total = failed_total = 0.0
        latency_weighted = 0.0
        for pod in pods:
            state = self.telemetry[pod.uid]
            served, dropped, latency = self._serve_pod(pod, state, spec, dt, downstream_latency)
            failed = served * (1.0 - downstream_ok)
            self._count_requests(
                state, served=served, failed=failed, dropped=dropped, latency=latency
            )
            served_total += served
            dropped_total += dropped
            failed_total += failed
            latency_weighted += served * latency
            if served > 0:
                components.append((served, latency))
            if dropped > 0:
                point_masses.append((dropped, performance.CLIENT_TIMEOUT_S))
        unroutable = rps * dt if not pods else 0.0
        if unroutable > 0:
            point_masses.append((unroutable, 0.0))
        total = served_total + dropped_total + unroutable
        tick = self.service_ticks[name]
        tick.rps = total / dt
        tick.ready_pods = len(pods)
        tick.error_ratio = (dropped_total + failed_total + unroutable) / total if total else 0.0
        tick.mean_latency = (
            (latency_weighted + dropped_total * performance.CLIENT_TIMEOUT_S) / total
            if total
            else spec.base_latency + downstream_latency
        )
        tick.p95 = performance.mixture_quantile(
            0.95, components=components, point_masses=point_masses
        )

    def _serve_pod(
        self, pod: Pod, state: PodTelemetry, spec: ServiceSpec, dt: float, downstream_latency: float
    ) -> tuple[float, float, float]:
        """Serve one tick of a pod's traffic: (served, dropped, mean latency of served)."""
        arrivals = state.rps * dt
        serving_cores = max(0.0, state.usage - spec.idle_cpu)
        capacity_rps = serving_cores / spec.cpu_per_request
        backlog = state.backlog + arrivals
        served = min(backlog, capacity_rps * dt)
        backlog -= served
        dropped = max(0.0, backlog - capacity_rps * performance.CLIENT_TIMEOUT_S)
        state.backlog = backlog - dropped
        throttled = performance.throttled_period_share(state.demand, pod.cpu_limit)
        waiting = performance.throttled_time_share(state.demand, pod.cpu_limit)
        state.throttled_share = throttled
        periods = dt / performance.CFS_PERIOD_S
        state.cpu_seconds += state.usage * dt
        state.periods += periods
        state.throttled_periods += throttled * periods
        state.throttled_seconds += throttled * waiting * dt
        if throttled > self.peak_throttling:
            self.peak_throttling, self.peak_throttling_pod = throttled, pod.name
        queue_wait = performance.queueing_wait(
            arrival_rps=state.rps,
            cpu_per_request=spec.cpu_per_request,
            serving_cores=max(0.0, state.available - spec.idle_cpu),
        )
        if capacity_rps > 0:
            queue_wait += state.backlog / capacity_rps
        throttle_wait = throttled * waiting * performance.CFS_PERIOD_S
        latency = spec.base_latency + queue_wait + throttle_wait + downstream_latency
        state.mean_latency = latency
        return served, dropped, latency

    @staticmethod
    def _count_requests(
        state: PodTelemetry, *, served: float, failed: float, dropped: float, latency: float
    ) -> None:
        requests = state.requests
        requests["200"] = requests.get("200", 0.0) + served - failed
        if failed > 0:
            requests["502"] = requests.get("502", 0.0) + failed
        if dropped > 0:
            requests["504"] = requests.get("504", 0.0) + dropped
        shares = performance.lognormal_cdfs(_LOG_BUCKETS, latency)
        counts = state.bucket_counts
        for index, share in enumerate(shares):
            counts[index] += served * share
            if LATENCY_BUCKETS[index] >= performance.CLIENT_TIMEOUT_S:
                counts[index] += dropped
        state.duration_count += served + dropped
        state.duration_sum += served * latency + dropped * performance.CLIENT_TIMEOUT_S

    def _log_requests(self) -> None:
        """Each pod's request summary (and its warnings and errors) into its log."""
        failing: dict[str, str | None] = {}
        for name, spec in self.scenario.services.items():
            callees = [call.service for call in spec.calls]
            worst = max(
                callees, key=lambda callee: self.service_ticks[callee].error_ratio, default=None
            )
            failing[name] = worst if worst and self.service_ticks[worst].error_ratio > 0 else None
        for pod in self.cluster.pods.values():
            state = self.telemetry.get(pod.uid)
            if state is not None and pod.started_at is not None:
                self.cluster.logs.summarize(
                    pod,
                    at=self.elapsed,
                    counters=state,
                    latency_target=self.scenario.slo.p95_latency,
                    failing_upstream=failing[pod.service],
                )

    def _sample(self) -> None:
        self._next_sample += self._timeline_every
        ticks = {name: ServiceTick(**vars(tick)) for name, tick in self.service_ticks.items()}
        replicas = {
            name: deployment.replicas for name, deployment in self.cluster.deployments.items()
        }
        throttling = max((state.throttled_share for state in self.telemetry.values()), default=0.0)
        self.timeline.append(
            TimelinePoint(self.elapsed, self.load_factor, ticks, replicas, throttling)
        )

    def _callees_first(self) -> list[str]:
        """Services ordered so every callee comes before its callers."""
        order: list[str] = []
        visiting: set[str] = set()

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                raise ValueError(f"the call graph has a cycle through {name!r}")
            visiting.add(name)
            for call in self.scenario.services[name].calls:
                visit(call.service)
            visiting.discard(name)
            order.append(name)

        for name in self.scenario.services:
            visit(name)
        return order


class _NodeRecovery(faults_module.Fault):
    """Internal follow-up of a node loss with `recover_after`: the node comes back."""

    type: str
    node: str

    def apply(self, target: faults_module.FaultTarget) -> None:
        simulation = target
        assert isinstance(simulation, Simulation)
        simulation.cluster.set_node_ready(self.node, ready=True, now=simulation.elapsed)


def _pod_template(name: str, spec: ServiceSpec) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": name}},
        "spec": {
            "containers": [
                {
                    "name": name,
                    "image": spec.image,
                    "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                    "resources": {
                        "requests": {"cpu": quantity.format_cpu(spec.cpu_request)},
                        "limits": {"cpu": quantity.format_cpu(spec.cpu_limit)},
                    },
                }
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
        },
    }


def _deep_copy(value: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(value)
