"""What the twin's containers log, and how much of it is kept, straight from the model."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from selfheal.twin import container_logs, networking, scenario
from selfheal.twin.simulation import Simulation

EPOCH = 1_767_225_600.0


@dataclass
class FakePod:
    """The few fields of a pod the logs read."""

    uid: str = "pod-1"
    service: str = "order-service"
    image: str = "shop/app:1.0.0"
    cpu_limit: float = 0.5
    restarts: int = 0
    started_at: float | None = 0.0


@dataclass
class FakeCounters:
    """A container's cumulative counters, set by hand."""

    requests: dict[str, float] = field(default_factory=dict)
    duration_sum: float = 0.0
    duration_count: float = 0.0
    throttled_periods: float = 0.0
    periods: float = 0.0


def _texts(log: container_logs.ContainerLog | None) -> list[str]:
    assert log is not None
    return [line.text for line in log.lines]


def _logs_by_pod(simulation: Simulation) -> dict[str, list[tuple[float, str]]]:
    cluster = simulation.cluster
    result = {}
    for pod in cluster.pods.values():
        log = cluster.logs.current(pod.uid)
        assert log is not None
        result[pod.name] = [(line.at, line.text) for line in log.lines]
    return result


def test_a_runs_logs_are_deterministic() -> None:
    """Two runs of one scenario write the same lines, at the same times, for the same pods."""
    first = Simulation(scenario.load("flash-sale"), epoch=EPOCH)
    second = Simulation(scenario.load("flash-sale"), epoch=EPOCH)
    first.advance_to(150)
    second.advance_to(150)
    assert _logs_by_pod(first) == _logs_by_pod(second)
    assert any(
        "WARN  CPU throttled" in text for lines in _logs_by_pod(first).values() for _, text in lines
    )


def test_each_container_keeps_only_its_newest_lines() -> None:
    """Past the ring's size the oldest lines go; the count of lines written goes on."""
    simulation = Simulation(scenario.load("steady"), epoch=EPOCH)
    simulation.advance_to(
        container_logs.SUMMARY_EVERY_S * (container_logs.LINES_PER_CONTAINER + 20)
    )
    pod = next(iter(simulation.cluster.pods.values()))
    log = simulation.cluster.logs.current(pod.uid)
    assert log is not None
    assert len(log.lines) == container_logs.LINES_PER_CONTAINER
    assert log.written > container_logs.LINES_PER_CONTAINER
    assert "starting" not in log.lines[0].text


def test_a_deleted_pods_logs_go_with_it() -> None:
    """Deleting a pod drops its logs, as the kubelet does with the pod's directory."""
    simulation = Simulation(scenario.load("flash-sale"), epoch=EPOCH)
    simulation.advance_to(20)
    pod = next(iter(simulation.cluster.pods.values()))
    simulation.cluster.delete_pod(pod.name, now=simulation.elapsed)
    assert simulation.cluster.logs.current(pod.uid) is None


def test_a_crash_keeps_the_old_log_as_previous_and_starts_a_new_one() -> None:
    """The crashed container's log ends in its exit and becomes `previous`."""
    logs = container_logs.ContainerLogs()
    pod = FakePod()
    logs.started(pod, at=0.0)
    pod.restarts = 1
    logs.crashed(pod, at=30.0)
    assert _texts(logs.previous(pod.uid))[-1] == "FATAL exiting with status 1"
    assert _texts(logs.current(pod.uid))[0].startswith("INFO  order-service starting (restart 1)")


def test_failed_and_timed_out_requests_are_logged_as_errors() -> None:
    """A window with 502s names the failing upstream; one with 504s says they timed out."""
    logs = container_logs.ContainerLogs()
    pod = FakePod()
    counters = FakeCounters(
        requests={"200": 90.0, "502": 6.0, "504": 4.0}, duration_sum=5.0, duration_count=100.0
    )
    logs.summarize(
        pod, at=10.0, counters=counters, latency_target=0.2, failing_upstream="payment-gateway"
    )
    texts = _texts(logs.current(pod.uid))
    assert texts[0] == (
        "INFO  served 100 requests in the last 10s: 90 ok, 10 errors, mean latency 50 ms"
    )
    assert "ERROR 4 requests timed out waiting in the queue (504 Gateway Timeout)" in texts
    assert (
        "ERROR 6 requests failed: payment-gateway answered with errors (502 Bad Gateway)" in texts
    )
    assert not any(text.startswith("WARN") for text in texts)


def test_a_summary_reports_only_what_changed_since_the_last() -> None:
    """Counters are cumulative; each summary logs the difference, and an idle window nothing."""
    logs = container_logs.ContainerLogs()
    pod = FakePod()
    counters = FakeCounters(requests={"200": 100.0}, duration_sum=2.0, duration_count=100.0)
    logs.summarize(pod, at=10.0, counters=counters, latency_target=0.2, failing_upstream=None)
    counters.requests["200"] = 130.0
    counters.duration_count, counters.duration_sum = 130.0, 2.0 + 30 * 0.3
    counters.periods, counters.throttled_periods = 100.0, 40.0
    logs.summarize(pod, at=20.0, counters=counters, latency_target=0.2, failing_upstream=None)
    logs.summarize(pod, at=30.0, counters=counters, latency_target=0.2, failing_upstream=None)
    texts = _texts(logs.current(pod.uid))
    assert texts[1:] == [
        "INFO  served 30 requests in the last 10s: 30 ok, 0 errors, mean latency 300 ms",
        "WARN  CPU throttled in 40% of scheduler periods at limit 500m: requests are queueing",
        "WARN  slow responses: mean latency 300 ms is over the 200 ms target",
    ]


def test_cluster_ips_are_stable_distinct_and_in_the_service_range() -> None:
    """A name always gets the same free IP in 10.96.0.0/12, never a reserved one."""
    taken: list[str] = []
    for index in range(300):
        address = networking.cluster_ip(f"service-{index}", taken=taken)
        assert ipaddress.ip_address(address) in ipaddress.ip_network("10.96.0.0/12")
        assert address not in {"10.96.0.1", "10.96.0.10"}
        assert not address.endswith((".0", ".255"))
        taken.append(address)
    assert len(set(taken)) == len(taken)
    assert networking.cluster_ip("catalog", taken=[]) == networking.cluster_ip("catalog", taken=[])
    first = networking.cluster_ip("catalog", taken=[])
    assert networking.cluster_ip("catalog", taken=[first]) != first
