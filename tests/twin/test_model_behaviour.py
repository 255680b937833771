"""The twin's model responds to load, scaling, contention and faults the right way."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from selfheal.twin import report, scenario
from selfheal.twin.simulation import Simulation

EPOCH = 1_767_225_600.0
SURGE_AT = 120.0  # the flash sale's load has reached 6x by then


def run(
    name: str,
    *,
    until: float | None = None,
    scale_to: int | None = None,
    scale_at: float = SURGE_AT,
    **overrides: Any,
) -> Simulation:
    chosen = scenario.load(name)
    if overrides:
        chosen = chosen.model_copy(update=overrides)
    simulation = Simulation(chosen, epoch=EPOCH)
    end = chosen.duration if until is None else until
    if scale_to is not None:
        simulation.advance_to(scale_at)
        scale(simulation, "order-service", scale_to)
    simulation.advance_to(end)
    return simulation


def scale(simulation: Simulation, service: str, replicas: int) -> None:
    manifest = copy.deepcopy(simulation.cluster.deployments[service].manifest)
    manifest["spec"]["replicas"] = replicas
    simulation.cluster.update_deployment(service, manifest, now=simulation.elapsed)


def test_flash_sale_baseline_breaches_the_slo_for_a_sustained_time() -> None:
    """Nobody acting, order-service p95 stays above 200 ms for most of the 7-minute surge."""
    summary = report.summarize(run("flash-sale"))
    assert summary["slo_violation_s"] >= 360
    assert summary["peak_p95_s"] > 0.5
    assert summary["peak_throttling"] > 0.9
    assert summary["peak_throttling_pod"].startswith("order-service-")
    assert summary["error_ratio"] > 0.05


def test_flash_sale_is_within_the_slo_before_the_surge() -> None:
    """Before the surge order-service's p95 is well under 200 ms and nothing throttles."""
    simulation = run("flash-sale", until=55)
    assert simulation.totals["order-service"].slo_violation_s == 0
    assert simulation.service_ticks["order-service"].p95 < 0.2
    assert simulation.peak_throttling < 0.1


@pytest.mark.slow
def test_steady_day_never_breaches_the_slo() -> None:
    """A whole day of diurnal load with noise and no fault never breaches."""
    summary = report.summarize(run("steady"))
    assert summary["duration_s"] == 86400
    assert summary["slo_violation_s"] == 0
    assert summary["error_ratio"] == 0
    assert summary["peak_p95_s"] < 0.2


def test_scaling_order_service_to_five_ends_the_breach() -> None:
    """Scaling to 5 at the surge's peak brings p95 under 200 ms once the pods are ready."""
    scaled = run("flash-sale", scale_to=5)
    baseline = run("flash-sale")
    assert scaled.totals["order-service"].slo_violation_s < 90
    assert scaled.totals["order-service"].slo_violation_s < (
        baseline.totals["order-service"].slo_violation_s / 5
    )
    during_surge = run("flash-sale", scale_to=5, until=400)
    assert during_surge.service_ticks["order-service"].p95 < 0.2
    assert during_surge.service_ticks["order-service"].error_ratio == 0


def test_contention_scaling_order_service_raises_catalog_latency() -> None:
    """On tight nodes, five order-service pods take CPU catalog needs: its p95 rises."""
    without = run("flash-sale-contention", until=300)
    scaled = run("flash-sale-contention", until=300, scale_to=5)
    catalog_before = without.service_ticks["catalog"].p95
    catalog_after = scaled.service_ticks["catalog"].p95
    assert catalog_before < 0.2
    assert catalog_after > 2 * catalog_before
    assert catalog_after > 0.2


def test_runs_are_deterministic_given_the_seed() -> None:
    """Two runs of a scenario give identical reports; another seed gives another run."""
    first = report.summarize(run("flash-sale", until=300))
    second = report.summarize(run("flash-sale", until=300))
    other = report.summarize(run("flash-sale", until=300, seed=43))
    assert first == second
    assert first["services"]["frontend"]["requests"] != other["services"]["frontend"]["requests"]


def test_new_replicas_serve_only_after_the_start_up_delay() -> None:
    """Scaled-up pods exist at once but take traffic only after the start-up delay."""
    simulation = run("flash-sale", until=100)
    scale(simulation, "order-service", 5)
    simulation.advance_to(101)
    assert simulation.service_ticks["order-service"].ready_pods == 2
    assert len(simulation.cluster.pods_of_service("order-service")) == 5
    simulation.advance_to(100 + 12)
    assert simulation.service_ticks["order-service"].ready_pods == 5


def test_pod_crash_fault_restarts_containers_and_resets_their_counters() -> None:
    """A crashed pod restarts (restart count 1), serves again after warming up."""
    chosen = scenario.load("flash-sale").model_copy(
        update={
            "faults": (
                scenario.faults.PodCrash(type="pod_crash", at=30, service="catalog", count=1),
            )
        }
    )
    simulation = Simulation(chosen, epoch=EPOCH)
    simulation.advance_to(29)
    crashed_name = min(pod.name for pod in simulation.cluster.pods_of_service("catalog"))
    counter_before = simulation.telemetry[simulation.cluster.pods[crashed_name].uid].cpu_seconds
    simulation.advance_to(31)
    pod = simulation.cluster.pods[crashed_name]
    assert pod.restarts == 1
    assert not pod.ready
    assert simulation.telemetry[pod.uid].cpu_seconds < counter_before
    simulation.advance_to(31 + 10)
    assert simulation.cluster.pods[crashed_name].ready


def test_a_services_trouble_begins_at_its_first_crash() -> None:
    """The ground-truth onset counts a crash, not only throttling and SLO breaches."""
    chosen = scenario.load("steady").model_copy(
        update={
            "faults": (
                scenario.faults.PodCrash(type="pod_crash", at=30, service="catalog", count=1),
            ),
            "service_overrides": {},
        }
    )
    simulation = Simulation(chosen, epoch=EPOCH)
    simulation.advance_to(60)
    assert simulation.onset("catalog") == 30.0
    assert simulation.onset("frontend") is None


def test_node_loss_evicts_pods_and_reschedules_them_elsewhere() -> None:
    """Pods on a lost node stop serving, then are recreated on the remaining nodes."""
    chosen = scenario.load("steady").model_copy(
        update={"faults": (scenario.faults.NodeLoss(type="node_loss", at=60, node="node-1"),)}
    )
    simulation = Simulation(chosen, epoch=EPOCH)
    simulation.advance_to(61)
    on_lost = [pod for pod in simulation.cluster.pods.values() if pod.node == "node-1"]
    assert on_lost
    assert not any(pod.ready for pod in on_lost)
    simulation.advance_to(60 + chosen.pod_eviction_timeout + 30)
    assert all(pod.node != "node-1" for pod in simulation.cluster.pods.values())
    assert all(pod.ready for pod in simulation.cluster.pods.values())
    assert len(simulation.cluster.pods) == 9


def test_cpu_limit_fault_rolls_out_a_new_revision_that_throttles() -> None:
    """A bad deploy halving order-service's CPU limit rolls out and throttles under load."""
    chosen = scenario.load("steady").model_copy(
        update={
            "faults": (
                scenario.faults.CpuLimitChange(
                    type="cpu_limit", at=30, service="order-service", limit=0.1, request=0.1
                ),
            )
        }
    )
    simulation = Simulation(chosen, epoch=EPOCH)
    simulation.advance_to(120)
    revisions = [rs.revision for rs in simulation.cluster.replicasets_of("order-service")]
    assert revisions == [1, 2]
    pods = simulation.cluster.pods_of_service("order-service")
    assert {pod.cpu_limit for pod in pods} == {0.1}
    assert simulation.service_ticks["order-service"].p95 > 0.2


def test_replicas_fault_resets_a_scaled_deployment_like_a_gitops_sync() -> None:
    """Scaled to 5, order-service is put back to 2 by the fault, and its pods follow."""
    chosen = scenario.load("steady").model_copy(
        update={
            "faults": (
                scenario.faults.ReplicasSet(
                    type="replicas", at=60, service="order-service", replicas=2
                ),
            )
        }
    )
    simulation = Simulation(chosen, epoch=EPOCH)
    simulation.advance_to(10)
    scale(simulation, "order-service", 5)
    simulation.advance_to(59)
    assert len(simulation.cluster.pods_of_service("order-service")) == 5
    simulation.advance_to(61)
    manifest = simulation.cluster.deployments["order-service"].manifest
    assert manifest["spec"]["replicas"] == 2
    assert len(simulation.cluster.pods_of_service("order-service")) == 2


def test_crash_loop_fault_crashes_every_pod_repeatedly_until_it_ends() -> None:
    """Each catalog pod crashes about every 5 s after warming up, for a minute, then stays."""
    chosen = scenario.load("steady").model_copy(
        update={
            "faults": (
                scenario.faults.CrashLoop(
                    type="crash_loop", at=30, service="catalog", every=5, duration=60
                ),
            ),
            "service_overrides": {},
        }
    )
    simulation = Simulation(chosen, epoch=EPOCH)
    simulation.advance_to(30 + 60)
    restarts = [pod.restarts for pod in simulation.cluster.pods_of_service("catalog")]
    # Warm-up 10 s plus 3.75-6.25 s of serving: about four crashes a minute each.
    assert all(3 <= count <= 6 for count in restarts), restarts
    assert sum(pod.restarts for pod in simulation.cluster.pods_of_service("frontend")) == 0
    simulation.advance_to(30 + 60 + 60)
    assert [pod.restarts for pod in simulation.cluster.pods_of_service("catalog")] == restarts
    assert all(pod.ready for pod in simulation.cluster.pods_of_service("catalog"))


@pytest.mark.parametrize("name", scenario.builtin_names())
def test_every_shipped_scenario_loads(name: str) -> None:
    """Each shipped scenario parses, validates and names itself after its file."""
    assert scenario.load(name).name == name
