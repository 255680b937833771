"""/metrics over HTTP: parseable by prometheus_client, names and labels as real clusters."""

from __future__ import annotations

import time
from collections import defaultdict

import httpx
from prometheus_client.parser import text_string_to_metric_families

from support import RunningTwin

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(twin: RunningTwin) -> tuple[dict[str, str], Samples]:
    """Fetch /metrics; return family types and every sample keyed by name and labels."""
    response = httpx.get(f"{twin.url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return types, samples


def test_exposition_has_the_families_real_clusters_expose(twin: RunningTwin) -> None:
    """cAdvisor, kube-state-metrics and application families are all present and typed."""
    types, _ = scrape(twin)
    counters = {
        "container_cpu_usage_seconds",
        "container_cpu_cfs_throttled_seconds",
        "container_cpu_cfs_periods",
        "container_cpu_cfs_throttled_periods",
        "http_requests",
    }
    gauges = {
        "kube_deployment_spec_replicas",
        "kube_deployment_status_replicas_available",
        "kube_pod_status_ready",
        "kube_node_spec_unschedulable",
    }
    # The parser drops `_total` from counter family names.
    assert {name for name in counters if types.get(name) == "counter"} == counters
    assert {name for name in gauges if types.get(name) == "gauge"} == gauges
    assert types["http_request_duration_seconds"] == "histogram"


def test_series_carry_namespace_pod_container_and_service_labels(twin: RunningTwin) -> None:
    """Container series have namespace/pod/container; app series have namespace/pod/service."""
    _, samples = scrape(twin)
    cpu = [dict(labels) for name, labels in samples if name == "container_cpu_usage_seconds_total"]
    assert len(cpu) == 9
    assert all({"namespace", "pod", "container"} <= labels.keys() for labels in cpu)
    assert all(labels["namespace"] == "production" for labels in cpu)
    http = [dict(labels) for name, labels in samples if name == "http_requests_total"]
    assert {labels["service"] for labels in http} == {
        "frontend",
        "catalog",
        "order-service",
        "payment-gateway",
    }
    assert all(labels["pod"].startswith(labels["service"]) for labels in http)
    replicas = {
        dict(labels)["deployment"]: value
        for (name, labels), value in samples.items()
        if name == "kube_deployment_spec_replicas"
    }
    assert replicas == {"frontend": 3, "catalog": 2, "order-service": 2, "payment-gateway": 2}


def test_counters_never_decrease_between_scrapes(twin: RunningTwin) -> None:
    """Every counter and histogram series is monotonic across scrapes of a running twin."""
    _, first = scrape(twin)
    time.sleep(0.5)  # 30 scenario seconds at the test speed, through the flash-sale ramp
    _, second = scrape(twin)
    monotonic = [
        key
        for key in first
        if key in second
        and (key[0].endswith("_total") or key[0].endswith(("_bucket", "_count", "_sum")))
    ]
    assert len(monotonic) > 100
    decreased = [key for key in monotonic if second[key] < first[key]]
    assert decreased == []
    grew = [key for key in monotonic if second[key] > first[key]]
    assert grew, "a running twin's counters must move"


def test_histogram_buckets_are_cumulative(twin: RunningTwin) -> None:
    """Per series, bucket counts rise with `le` and the +Inf bucket equals _count."""
    time.sleep(0.3)
    _, samples = scrape(twin)
    buckets: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = defaultdict(list)
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for (name, labels), value in samples.items():
        series = tuple(pair for pair in labels if pair[0] != "le")
        if name == "http_request_duration_seconds_bucket":
            buckets[series].append((float(dict(labels)["le"]), value))
        elif name == "http_request_duration_seconds_count":
            counts[series] = value
    assert len(buckets) == 9
    for series, points in buckets.items():
        values = [value for _, value in sorted(points)]
        assert values == sorted(values), series
        assert values[-1] == counts[series]
        assert counts[series] > 0


def test_scaling_shows_up_in_kube_state_metrics(twin: RunningTwin) -> None:
    """After scaling through the API, spec replicas change at once in /metrics."""
    response = httpx.patch(
        f"{twin.url}/apis/apps/v1/namespaces/production/deployments/order-service/scale",
        json={"spec": {"replicas": 4}},
        headers={"content-type": "application/merge-patch+json"},
        timeout=10,
    )
    assert response.status_code == 200
    _, samples = scrape(twin)
    key = (
        "kube_deployment_spec_replicas",
        (("deployment", "order-service"), ("namespace", "production")),
    )
    assert samples[key] == 4
