"""Capture the golden payloads the receiver tests read, from real senders where they run here.

Run by hand when a sender's format may have changed (the tests never run it):

    .venv/bin/python tests/api/golden/capture.py

- Alertmanager (Debian's `prometheus-alertmanager`, 0.25): started on a free loopback port
  with a webhook receiver pointing at a capture server started here; an alert group of two
  alerts is posted to its v2 API, then resolved. The first firing and the first resolved
  notification are kept: `alertmanager_firing.json`, `alertmanager_resolved.json`.
- Prometheus (Debian's `prometheus`, 2.42): scrapes a fixed exposition served by the capture
  server (`EXPOSITION`, so the values are known) and remote-writes to it. The first request
  that holds every scraped series is kept (`remote_write.snappy`), and the first metadata-only
  request (`remote_write_metadata.snappy`), which a receiver must skip as an unknown field.
- OTLP: no Collector binary is available here, so the request is built with
  opentelemetry-proto's classes, as the Collector's `otlphttp` exporter builds it, and written
  in both encodings: `otlp_metrics.pb` (protobuf) and `otlp_metrics.json` (OTLP JSON: protobuf's
  JSON mapping with enums as integers and trace/span ids as hex, which OTLP requires).

Each sender's request headers are kept next to its bodies (`*.headers.json`), so the tests
replay the bodies with the headers the real sender used.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.server
import json
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import cramjam
import httpx
import yaml
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

HERE = Path(__file__).parent
# A notification or a remote-write batch arrives within seconds; allow for a slow machine.
WAIT = 60.0
KEPT_HEADERS = (
    "content-type",
    "content-encoding",
    "user-agent",
    "x-prometheus-remote-write-version",
)

# What Prometheus scrapes: fixed values, one of each metric type, and a label value that
# needs escaping and UTF-8, so the remote-write golden file pins all of them.
EXPOSITION = """\
# HELP shop_orders_total Orders taken.
# TYPE shop_orders_total counter
shop_orders_total{method="GET",code="200"} 1027
shop_orders_total{method="POST",code="500"} 3
# HELP shop_queue_depth Orders waiting.
# TYPE shop_queue_depth gauge
shop_queue_depth{queue="caf\\u00e9 \\"north\\""} 7.5
# HELP shop_latency_seconds Order latency.
# TYPE shop_latency_seconds histogram
shop_latency_seconds_bucket{le="0.1"} 10
shop_latency_seconds_bucket{le="0.5"} 25
shop_latency_seconds_bucket{le="+Inf"} 30
shop_latency_seconds_sum 6.25
shop_latency_seconds_count 30
""".replace("\\u00e9", "\u00e9")


@dataclass(frozen=True)
class Captured:
    """One request the capture server received."""

    path: str
    headers: dict[str, str]
    body: bytes


class CaptureServer:
    """Records every POST; serves `EXPOSITION` at GET /metrics."""

    def __init__(self) -> None:
        self.requests: queue.Queue[Captured] = queue.Queue()
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {key.lower(): value for key, value in self.headers.items()}
                received.put(Captured(self.path, headers, body))
                self.send_response(204 if self.path == "/write" else 200)
                self.end_headers()

            def do_GET(self) -> None:
                body = EXPOSITION.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Quiet: the script reports what it captured, not every request."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()

    def wait_for(self, wanted: Callable[[Captured], bool], *, what: str) -> Captured:
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(queue.Empty):
                captured = self.requests.get(timeout=left)
                if wanted(captured):
                    return captured
        raise SystemExit(f"no {what} within {WAIT} s")


@contextlib.contextmanager
def process(args: list[str], *, url: str, home: Path) -> Iterator[None]:
    """Run a server binary until the block ends; wait for its /-/ready first."""
    log = (home / "log").open("wb")
    child = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=home)
    try:
        deadline = time.monotonic() + WAIT
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            if child.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{args[0]} did not start:\n{(home / 'log').read_text()}")
            time.sleep(0.1)
        yield
    finally:
        child.terminate()
        child.wait(timeout=10)
        log.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rfc3339(moment: datetime.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def capture_alertmanager(capture: CaptureServer, home: Path) -> None:
    config = {
        "route": {
            "receiver": "selfheal",
            "group_by": ["alertname", "service"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "selfheal",
                "webhook_configs": [
                    {"url": f"http://127.0.0.1:{capture.port}/alerts", "send_resolved": True}
                ],
            }
        ],
    }
    (home / "alertmanager.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    binary = shutil.which("prometheus-alertmanager") or "prometheus-alertmanager"
    args = [
        binary,
        f"--config.file={home / 'alertmanager.yml'}",
        f"--storage.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url={url}/",
        "--cluster.listen-address=",
    ]
    started = datetime.datetime.now(datetime.UTC).replace(microsecond=123000)
    started -= datetime.timedelta(minutes=2)
    alerts = [
        {
            "labels": {
                "alertname": "CheckoutLatencyHigh",
                "service": "checkout",
                "namespace": "production",
                "pod": pod,
                "severity": "page",
            },
            "annotations": {
                "summary": f"p99 latency of {pod} is above 500 ms",
                "runbook": "scale-out",
            },
            "startsAt": rfc3339(started),
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=latency_p99+%3E+0.5",
        }
        for pod in ("checkout-7d9f-abcde", "checkout-7d9f-fghij")
    ]
    with process(args, url=url, home=home):
        httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()
        firing = capture.wait_for(
            lambda c: c.path == "/alerts" and json.loads(c.body)["status"] == "firing",
            what="firing notification",
        )
        ended = rfc3339(datetime.datetime.now(datetime.UTC))
        for alert in alerts:
            alert["endsAt"] = ended
        httpx.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()
        resolved = capture.wait_for(
            lambda c: c.path == "/alerts" and json.loads(c.body)["status"] == "resolved",
            what="resolved notification",
        )
    write("alertmanager_firing.json", firing.body)
    write("alertmanager_resolved.json", resolved.body)
    write_headers("alertmanager.headers.json", firing)


def capture_prometheus(capture: CaptureServer, home: Path) -> None:
    target = f"127.0.0.1:{capture.port}"
    config = {
        "global": {"scrape_interval": "1s", "external_labels": {"cluster": "golden"}},
        "scrape_configs": [
            {"job_name": "shop", "static_configs": [{"targets": [target]}]},
        ],
        "remote_write": [
            {
                "url": f"http://{target}/write",
                "queue_config": {"batch_send_deadline": "1s"},
                "metadata_config": {"send": True, "send_interval": "1s"},
                # Keep the file small: the scraped series and `up`, not Prometheus' own.
                "write_relabel_configs": [
                    {"source_labels": ["__name__"], "regex": "up|shop_.*", "action": "keep"}
                ],
            }
        ],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    binary = shutil.which("prometheus") or "prometheus"
    args = [
        binary,
        f"--config.file={home / 'prometheus.yml'}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url={url}/",
    ]
    names = [b"up", b"shop_orders_total", b"shop_queue_depth", b"shop_latency_seconds_bucket"]

    def decoded(captured: Captured) -> bytes:
        return bytes(cramjam.snappy.decompress_raw(captured.body))

    with process(args, url=url, home=home):
        # Field 1 (timeseries) starts with tag 0x0a; field 3 (metadata) with 0x1a.
        samples = capture.wait_for(
            lambda c: (
                c.path == "/write"
                and decoded(c)[:1] == b"\x0a"
                and all(name in decoded(c) for name in names)
            ),
            what="remote-write request with every series",
        )
        metadata = capture.wait_for(
            lambda c: c.path == "/write" and decoded(c)[:1] == b"\x1a",
            what="remote-write metadata request",
        )
    write("remote_write.snappy", samples.body)
    write("remote_write_metadata.snappy", metadata.body)
    write_headers("remote_write.headers.json", samples)


# 2026-01-01T00:00:00Z, and a minute later: OTLP's times are fixed, so the file is stable.
OTLP_START_NS = 1_767_225_600 * 10**9
OTLP_TIME_NS = OTLP_START_NS + 60 * 10**9


def otlp_request() -> metrics_service_pb2.ExportMetricsServiceRequest:
    """One request with every metric type a Collector forwards, as its exporter sends them."""
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    for key, value in (
        ("service.name", "checkout"),
        ("service.namespace", "shop"),
        ("service.instance.id", "checkout-7d9f-abcde"),
        ("host.name", "node-1"),
    ):
        resource_metrics.resource.attributes.add(
            key=key, value=common_pb2.AnyValue(string_value=value)
        )
    scope = resource_metrics.scope_metrics.add()
    scope.scope.name = "checkout.instrumentation"
    scope.scope.version = "1.2.0"

    def attributes(point: Any, **values: object) -> None:
        for key, value in values.items():
            any_value = common_pb2.AnyValue()
            if isinstance(value, bool):
                any_value.bool_value = value
            elif isinstance(value, int):
                any_value.int_value = value
            else:
                any_value.string_value = str(value)
            point.attributes.add(key=key.replace("__", "."), value=any_value)

    cumulative = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    delta = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA

    gauge = scope.metrics.add(name="system.memory.utilization", unit="1")
    point = gauge.gauge.data_points.add(time_unix_nano=OTLP_TIME_NS, as_double=0.625)
    attributes(point, system__memory__state="used")

    memory = scope.metrics.add(name="process.memory.usage", unit="By")
    memory.gauge.data_points.add(time_unix_nano=OTLP_TIME_NS, as_int=268_435_456)

    requests = scope.metrics.add(name="http.server.requests", unit="{request}")
    requests.sum.aggregation_temporality = cumulative
    requests.sum.is_monotonic = True
    for route, count in (("/cart", 120), ("/pay", 7)):
        point = requests.sum.data_points.add(
            start_time_unix_nano=OTLP_START_NS, time_unix_nano=OTLP_TIME_NS, as_int=count
        )
        attributes(point, http__route=route, http__response__status_code=200)

    jobs = scope.metrics.add(name="jobs.processed", unit="{job}")
    jobs.sum.aggregation_temporality = delta
    jobs.sum.is_monotonic = True
    for offset, count in ((0, 4), (10, 6)):
        jobs.sum.data_points.add(
            start_time_unix_nano=OTLP_TIME_NS + (offset - 10) * 10**9,
            time_unix_nano=OTLP_TIME_NS + offset * 10**9,
            as_int=count,
        )

    queue_size = scope.metrics.add(name="queue.size", unit="{item}")
    queue_size.sum.aggregation_temporality = cumulative
    queue_size.sum.is_monotonic = False
    queue_size.sum.data_points.add(time_unix_nano=OTLP_TIME_NS, as_double=-2.0)

    duration = scope.metrics.add(name="http.server.request.duration", unit="s")
    duration.histogram.aggregation_temporality = cumulative
    point = duration.histogram.data_points.add(
        start_time_unix_nano=OTLP_START_NS,
        time_unix_nano=OTLP_TIME_NS,
        count=30,
        sum=6.25,
        explicit_bounds=[0.005, 0.1, 0.5],
        bucket_counts=[2, 8, 15, 5],
        min=0.001,
        max=1.5,
    )
    attributes(point, http__route="/cart")
    point.exemplars.add(
        time_unix_nano=OTLP_TIME_NS,
        as_double=1.5,
        trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"),
        span_id=bytes.fromhex("eee19b7ec3c1b174"),
    )

    rpc = scope.metrics.add(name="rpc.latency", unit="ms")
    point = rpc.summary.data_points.add(time_unix_nano=OTLP_TIME_NS, count=12, sum=340.5)
    point.quantile_values.add(quantile=0.5, value=21.0)
    point.quantile_values.add(quantile=0.99, value=95.5)

    sizes = scope.metrics.add(name="http.request.body.size", unit="By")
    sizes.exponential_histogram.aggregation_temporality = cumulative
    sizes.exponential_histogram.data_points.add(time_unix_nano=OTLP_TIME_NS, count=3, scale=2)
    return request


def otlp_json(request: metrics_service_pb2.ExportMetricsServiceRequest) -> bytes:
    """OTLP's JSON encoding: protobuf's JSON with integer enums and hex trace/span ids."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_metrics in document["resourceMetrics"]:
        for scope_metrics in resource_metrics["scopeMetrics"]:
            for metric in scope_metrics["metrics"]:
                for data in metric.values():
                    if not isinstance(data, dict):
                        continue
                    for point in data.get("dataPoints", []):
                        for exemplar in point.get("exemplars", []):
                            for key in ("traceId", "spanId"):
                                exemplar[key] = base64.b64decode(exemplar[key]).hex()
    return (json.dumps(document, indent=2) + "\n").encode()


def write(name: str, body: bytes) -> None:
    (HERE / name).write_bytes(body)
    sys.stdout.write(f"wrote {name} ({len(body)} bytes)\n")


def write_headers(name: str, captured: Captured) -> None:
    kept = {key: captured.headers[key] for key in KEPT_HEADERS if key in captured.headers}
    write(name, (json.dumps(kept, indent=2, sort_keys=True) + "\n").encode())


def main() -> None:
    request = otlp_request()
    write("otlp_metrics.pb", request.SerializeToString(deterministic=True))
    write("otlp_metrics.json", otlp_json(request))
    with tempfile.TemporaryDirectory() as tmp, CaptureServer() as capture:
        (Path(tmp) / "am").mkdir()
        capture_alertmanager(capture, Path(tmp) / "am")
        (Path(tmp) / "prom").mkdir()
        capture_prometheus(capture, Path(tmp) / "prom")


if __name__ == "__main__":
    main()
