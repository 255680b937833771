"""The receiver endpoints over HTTP: real senders' payloads in, whole batches to the sinks.

Golden bodies are replayed with the headers their real sender used (tests/api/golden). Every
refused request must leave the sinks untouched. The last test runs the whole path for real:
an Alertmanager process notifying the app served by uvicorn on loopback.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import json
import threading
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import cramjam
import httpx
import pytest
import uvicorn
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from starlette.exceptions import StarletteDeprecationWarning

from selfheal.api import create_app
from selfheal.domain.errors import TemporaryError
from selfheal.domain.model import AlertState
from selfheal.telemetry import receivers
from selfheal.telemetry.receivers import alertmanager, otlp, remote_write

import stack
from support import ApiCallers, wait_until

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` behind its TestClient; the installed httpx still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

GOLDEN = Path(__file__).parent / "golden"
ALERTS = "/api/v1/alerts"
OTLP = "/api/v1/otlp/v1/metrics"
WRITE = "/api/v1/write"


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def sender_headers(name: str) -> dict[str, str]:
    """The headers a real sender used, minus User-Agent (the test client sets its own)."""
    headers: dict[str, str] = json.loads(golden(name))
    headers.pop("user-agent", None)
    return headers


AM_HEADERS = sender_headers("alertmanager.headers.json")
CALLERS = ApiCallers()
SENDER = CALLERS.headers("alertmanager")
RW_HEADERS = sender_headers("remote_write.headers.json")
OTLP_PROTOBUF = {"content-type": "application/x-protobuf"}
OTLP_JSON = {"content-type": "application/json"}


class RecordingSinks:
    """An AlertSink and a SampleSink that remember every call (thread-safe)."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.batches: list[receivers.WebhookBatch] = []
        self.writes: list[list[receivers.TimedSample]] = []
        self.fail_with = fail_with
        self._lock = threading.Lock()

    def receive(self, batch: receivers.WebhookBatch) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            self.batches.append(batch)

    def write(self, samples: Sequence[receivers.TimedSample]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            self.writes.append(list(samples))

    @property
    def untouched(self) -> bool:
        return not self.batches and not self.writes


@pytest.fixture
def sinks() -> RecordingSinks:
    return RecordingSinks()


@pytest.fixture
def client(sinks: RecordingSinks) -> Iterator[TestClient]:
    app = create_app(
        alerts=sinks,
        samples=sinks,
        clock_now=lambda: 1_767_225_600.0,
        authenticator=CALLERS.authenticator,
    )
    with TestClient(app, headers=SENDER) as test_client:
        yield test_client


def _snappy(message: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(message))


# -- what each sender gets back ---------------------------------------------------------------


def test_a_real_alertmanager_webhook_reaches_the_sink_as_one_batch(
    client: TestClient, sinks: RecordingSinks
) -> None:
    """Alertmanager's firing notification: 200, and one batch with both alerts."""
    body = golden("alertmanager_firing.json")
    response = client.post(ALERTS, content=body, headers=AM_HEADERS)
    assert response.status_code == 200
    parsed = alertmanager.parse_webhook(body)
    # The alerts carry who sent them: the identity of the credential, not anything in the body.
    sent = tuple(dataclasses.replace(alert, sender="alertmanager") for alert in parsed.alerts)
    assert sinks.batches == [dataclasses.replace(parsed, alerts=sent)]
    [batch] = sinks.batches
    assert [alert.state for alert in batch.alerts] == [AlertState.FIRING, AlertState.FIRING]
    assert batch.fingerprints == ("00425e4739434373", "a7809a6ad8050f62")
    assert not sinks.writes


def test_a_real_resolved_webhook_reaches_the_sink(
    client: TestClient, sinks: RecordingSinks
) -> None:
    """The resolved notification goes through the same way."""
    response = client.post(ALERTS, content=golden("alertmanager_resolved.json"), headers=AM_HEADERS)
    assert response.status_code == 200
    [batch] = sinks.batches
    assert batch.status is AlertState.RESOLVED


def test_a_real_remote_write_request_gets_204_and_one_write(
    client: TestClient, sinks: RecordingSinks
) -> None:
    """Prometheus' request with its own headers: 204, every sample in one write."""
    body = golden("remote_write.snappy")
    response = client.post(WRITE, content=body, headers=RW_HEADERS)
    assert response.status_code == 204
    assert response.content == b""
    assert sinks.writes == [remote_write.parse_write_request(body)]
    # Nine series per scrape; Prometheus may have batched more than one scrape.
    assert len(sinks.writes[0]) % 9 == 0


def test_a_metadata_only_remote_write_request_is_accepted_without_a_write(
    client: TestClient, sinks: RecordingSinks
) -> None:
    """Prometheus' metadata requests carry no samples: 204 and no call to the sink."""
    response = client.post(
        WRITE, content=golden("remote_write_metadata.snappy"), headers=RW_HEADERS
    )
    assert response.status_code == 204
    assert sinks.untouched


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("otlp_metrics.pb", OTLP_PROTOBUF),
        ("otlp_metrics.json", OTLP_JSON),
        ("otlp_metrics.json", {"content-type": "application/json; charset=utf-8"}),
    ],
    ids=["protobuf", "json", "json with charset"],
)
def test_an_otlp_request_gets_an_empty_response_in_its_own_encoding(
    client: TestClient, sinks: RecordingSinks, name: str, headers: dict[str, str]
) -> None:
    """OTLP/HTTP: 200 with an empty ExportMetricsServiceResponse, encoded as the request was."""
    response = client.post(OTLP, content=golden(name), headers=headers)
    assert response.status_code == 200
    media_type = headers["content-type"].split(";")[0]
    assert response.headers["content-type"].startswith(media_type)
    if media_type == "application/json":
        assert response.json() == {}
    else:
        parsed = metrics_service_pb2.ExportMetricsServiceResponse.FromString(response.content)
        assert not parsed.HasField("partial_success")
    [written] = sinks.writes
    assert len(written) == 17


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_otlp_request_is_decompressed(
    client: TestClient, sinks: RecordingSinks, encoding: str
) -> None:
    """The Collector's otlphttp exporter gzips by default; deflate works as well."""
    raw = golden("otlp_metrics.pb")
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    headers = {**OTLP_PROTOBUF, "content-encoding": encoding}
    response = client.post(OTLP, content=body, headers=headers)
    assert response.status_code == 200
    assert sinks.writes == [otlp.parse_metrics(raw, content_type="application/x-protobuf")]


def test_otlp_delta_sums_accumulate_across_requests(
    client: TestClient, sinks: RecordingSinks
) -> None:
    """The app keeps one DeltaAccumulator, so a delta counter keeps rising request by request."""
    for _ in range(2):
        assert client.post(
            OTLP, content=golden("otlp_metrics.pb"), headers=OTLP_PROTOBUF
        ).is_success
    jobs = [
        [s.value for s in written if s.labels["__name__"] == "jobs_processed_total"]
        for written in sinks.writes
    ]
    assert jobs == [[4.0, 10.0], [14.0, 20.0]]


def test_an_otlp_point_without_a_time_is_stamped_with_the_app_clock(
    client: TestClient, sinks: RecordingSinks
) -> None:
    """clock_now stamps points that have no timeUnixNano."""
    document = json.loads(golden("otlp_metrics.json"))
    metric = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]
    del metric["gauge"]["dataPoints"][0]["timeUnixNano"]
    response = client.post(OTLP, content=json.dumps(document), headers=OTLP_JSON)
    assert response.status_code == 200
    assert sinks.writes[0][0].timestamp == 1_767_225_600.0


def test_healthz_answers(client: TestClient) -> None:
    """GET /healthz is 200 while the app serves."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# -- refusals: the right status, and nothing ingested -----------------------------------------


def _webhook(mutate: Any) -> bytes:
    document = json.loads(golden("alertmanager_firing.json"))
    mutate(document)
    return json.dumps(document).encode()


# Prometheus sends one TimeSeries per sample; truncating the request cuts into the last one.
LAST_SERIES = len(remote_write.parse_write_request(golden("remote_write.snappy"))) - 1


def _truncated_write_request() -> bytes:
    decoded = bytes(cramjam.snappy.decompress_raw(golden("remote_write.snappy")))
    return _snappy(decoded[:-7])


def _bad_temporality() -> bytes:
    document = json.loads(golden("otlp_metrics.json"))
    metric = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][2]
    metric["sum"]["aggregationTemporality"] = 0
    return json.dumps(document).encode()


@dataclass(frozen=True)
class Refusal:
    """A request the app must refuse: where it goes, what it sends, what it should get."""

    route: str
    body: bytes
    headers: dict[str, str]
    status: int
    error_path: str | None = None


SNAPPY = golden("remote_write.snappy")
WRITE_V2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
GZIP_PROTOBUF = {**OTLP_PROTOBUF, "content-encoding": "gzip"}
REFUSALS = {
    "webhook bad JSON": Refusal(ALERTS, b'{"version": ', AM_HEADERS, 400),
    "webhook missing field": Refusal(
        ALERTS,
        _webhook(lambda d: d["alerts"][1].pop("startsAt")),
        AM_HEADERS,
        400,
        "alerts[1].startsAt",
    ),
    "webhook wrong type": Refusal(
        ALERTS,
        _webhook(lambda d: d["alerts"][0]["labels"].update(pod=3)),
        AM_HEADERS,
        400,
        "alerts[0].labels.pod",
    ),
    "webhook as text": Refusal(
        ALERTS, golden("alertmanager_firing.json"), {"content-type": "text/plain"}, 415
    ),
    "webhook without type": Refusal(ALERTS, golden("alertmanager_firing.json"), {}, 415),
    "webhook gzipped": Refusal(
        ALERTS,
        gzip.compress(golden("alertmanager_firing.json")),
        {**AM_HEADERS, "content-encoding": "gzip"},
        415,
    ),
    "write bad snappy": Refusal(WRITE, b"\x0a\x05hello", RW_HEADERS, 400),
    "write truncated protobuf": Refusal(
        WRITE, _truncated_write_request(), RW_HEADERS, 400, f"timeseries[{LAST_SERIES}]"
    ),
    "write gzip instead of snappy": Refusal(
        WRITE, SNAPPY, {**RW_HEADERS, "content-encoding": "gzip"}, 415
    ),
    "write without encoding": Refusal(
        WRITE, SNAPPY, {"content-type": "application/x-protobuf"}, 415
    ),
    "write as JSON": Refusal(
        WRITE, SNAPPY, {**RW_HEADERS, "content-type": "application/json"}, 415
    ),
    "write version 2": Refusal(
        WRITE, SNAPPY, {**RW_HEADERS, "x-prometheus-remote-write-version": "2.0.0"}, 415
    ),
    "write 2.0 message": Refusal(WRITE, SNAPPY, {**RW_HEADERS, "content-type": WRITE_V2}, 415),
    "otlp as text": Refusal(OTLP, golden("otlp_metrics.json"), {"content-type": "text/plain"}, 415),
    "otlp truncated protobuf": Refusal(OTLP, golden("otlp_metrics.pb")[:-5], OTLP_PROTOBUF, 400),
    "otlp bad JSON": Refusal(OTLP, b'{"resourceMetrics": [}', OTLP_JSON, 400),
    "otlp bad temporality": Refusal(
        OTLP,
        _bad_temporality(),
        OTLP_JSON,
        400,
        "resourceMetrics[0].scopeMetrics[0].metrics[2].sum.aggregationTemporality",
    ),
    "otlp bad gzip": Refusal(OTLP, b"\x1f\x8bnot really gzip", GZIP_PROTOBUF, 400),
    "otlp truncated gzip": Refusal(
        OTLP, gzip.compress(golden("otlp_metrics.pb"))[:-10], GZIP_PROTOBUF, 400
    ),
    "otlp brotli": Refusal(
        OTLP, golden("otlp_metrics.pb"), {**OTLP_PROTOBUF, "content-encoding": "br"}, 415
    ),
}


@pytest.mark.parametrize("refusal", list(REFUSALS.values()), ids=list(REFUSALS))
def test_a_refused_request_gets_its_status_and_reaches_no_sink(
    client: TestClient, sinks: RecordingSinks, refusal: Refusal
) -> None:
    """Malformed is 400 with the field's path, a wrong type or encoding 415; nothing ingested."""
    response = client.post(refusal.route, content=refusal.body, headers=refusal.headers)
    assert response.status_code == refusal.status
    document = response.json()
    assert set(document) == {"error", "path"}
    assert document["error"]
    assert document["path"] == refusal.error_path
    assert sinks.untouched


@pytest.fixture
def small_client(sinks: RecordingSinks) -> Iterator[TestClient]:
    """An app whose body limit (1 KiB) is below every golden payload but the metadata one."""
    app = create_app(
        alerts=sinks, samples=sinks, max_body_bytes=1024, authenticator=CALLERS.authenticator
    )
    with TestClient(app, headers=SENDER) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        (ALERTS, golden("alertmanager_firing.json"), AM_HEADERS),
        (OTLP, golden("otlp_metrics.json"), OTLP_JSON),
        # Compressed under the limit, but 5 MiB once decompressed.
        (OTLP, gzip.compress(bytes(5 << 20)), {**OTLP_PROTOBUF, "content-encoding": "gzip"}),
        # A valid snappy header that announces 1 GiB, in a few bytes.
        (WRITE, bytes([0x80, 0x80, 0x80, 0x80, 0x04]) + b"\x00", RW_HEADERS),
    ],
    ids=["webhook", "otlp", "otlp gzip bomb", "remote-write announcing 1 GiB"],
)
def test_a_body_over_the_limit_is_413_before_parsing(
    small_client: TestClient,
    sinks: RecordingSinks,
    path: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    """Too large on the wire or once decoded: 413, and the sink never called."""
    response = small_client.post(path, content=body, headers=headers)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert sinks.untouched


def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(
    small_client: TestClient, sinks: RecordingSinks
) -> None:
    """Without Content-Length the app stops reading one chunk past the limit: 413."""

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b" " * 512

    response = small_client.post(ALERTS, content=chunks(), headers=AM_HEADERS)
    assert response.status_code == 413
    assert sinks.untouched


def test_routes_without_a_sample_sink_do_not_exist(sinks: RecordingSinks) -> None:
    """With samples=None the OTLP and remote-write routes are 404; the webhook still works."""
    app = create_app(alerts=sinks, authenticator=CALLERS.authenticator)
    with TestClient(app, headers=SENDER) as test_client:
        otlp_response = test_client.post(
            OTLP, content=golden("otlp_metrics.pb"), headers=OTLP_PROTOBUF
        )
        write_response = test_client.post(
            WRITE, content=golden("remote_write.snappy"), headers=RW_HEADERS
        )
        alerts_response = test_client.post(
            ALERTS, content=golden("alertmanager_firing.json"), headers=AM_HEADERS
        )
    assert (otlp_response.status_code, write_response.status_code) == (404, 404)
    assert alerts_response.status_code == 200
    assert len(sinks.batches) == 1


def test_a_busy_sink_makes_the_sender_retry_later() -> None:
    """A sink's TemporaryError is 503 with Retry-After, which every sender retries on."""
    busy = RecordingSinks(fail_with=TemporaryError("the bus is full", delay=2.5))
    app = create_app(alerts=busy, samples=busy, authenticator=CALLERS.authenticator)
    with TestClient(app, headers=SENDER) as test_client:
        response = test_client.post(
            WRITE, content=golden("remote_write.snappy"), headers=RW_HEADERS
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert "the bus is full" in response.json()["error"]


# -- a real Alertmanager notifying the app over HTTP ------------------------------------------


class ServedApp:
    """The app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = stack.free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api-under-test", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), timeout=10)
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alertmanager_credential(kind: str, tmp_path: Path) -> dict[str, Any]:
    """The webhook's `http_config` for a bearer token or basic auth, secrets in files."""
    secret = tmp_path / f"{kind}.secret"
    secret.write_text(CALLERS.tokens["alertmanager"] + "\n", encoding="utf-8")
    if kind == "bearer":
        return {"authorization": {"type": "Bearer", "credentials_file": str(secret)}}
    return {"basic_auth": {"username": "alertmanager", "password_file": str(secret)}}


@pytest.mark.parametrize("credential", ["bearer", "basic"])
def test_a_real_alertmanager_notifies_the_served_app_of_firing_and_resolved(
    tmp_path: Path, sinks: RecordingSinks, credential: str
) -> None:
    """Alertmanager 0.25 -> uvicorn -> the app: a firing then a resolved batch reach the sink.

    Alertmanager authenticates as its `http_config` says (a bearer token or basic auth),
    and the alerts arrive with its identity as their sender.
    """
    stack.require_binaries(stack.ALERTMANAGER)
    started = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=30)
    alert = {
        "labels": {"alertname": "OrderQueueBacklog", "service": "orders", "severity": "page"},
        "annotations": {"summary": "the order queue is backing up"},
        "startsAt": _rfc3339(started),
        "generatorURL": "http://prometheus.example/graph",
    }
    with (
        ServedApp(
            create_app(alerts=sinks, samples=sinks, authenticator=CALLERS.authenticator)
        ) as served,
        stack.start_alertmanager(
            webhook_url=f"{served.url}{ALERTS}",
            tmp_path=tmp_path,
            http_config=alertmanager_credential(credential, tmp_path),
        ) as am,
    ):
        httpx.post(f"{am.url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
        wait_until(lambda: sinks.batches, timeout=30)
        ended = datetime.datetime.now(datetime.UTC)
        resolved = {**alert, "endsAt": _rfc3339(ended)}
        httpx.post(f"{am.url}/api/v2/alerts", json=[resolved], timeout=5).raise_for_status()
        wait_until(lambda: any(b.status is AlertState.RESOLVED for b in sinks.batches), timeout=30)
    firing, *_, last = sinks.batches
    assert firing.status is AlertState.FIRING
    [alert_in] = firing.alerts
    assert alert_in.name == "OrderQueueBacklog"
    assert alert_in.sender == "alertmanager"
    assert alert_in.labels == alert["labels"]
    assert alert_in.annotations == alert["annotations"]
    assert alert_in.active_at == pytest.approx(started.timestamp(), abs=0.001)
    assert last.status is AlertState.RESOLVED
    [alert_out] = last.alerts
    assert alert_out.resolved_at == pytest.approx(ended.timestamp(), abs=0.001)
    assert last.fingerprints == firing.fingerprints


def test_an_alertmanager_without_the_credential_is_refused_and_nothing_arrives(
    tmp_path: Path, sinks: RecordingSinks
) -> None:
    """The same Alertmanager with no `http_config`: every delivery is a 401, none ingested."""
    stack.require_binaries(stack.ALERTMANAGER)
    alert = {"labels": {"alertname": "Unsigned"}, "generatorURL": "http://prometheus.example/"}
    refused: list[int] = []

    class CountingGuard:
        def record_request(self, **request: Any) -> None:
            refused.append(int(request["status"]))

    app = create_app(alerts=sinks, authenticator=CALLERS.authenticator, requests=CountingGuard())
    with (
        ServedApp(app) as served,
        stack.start_alertmanager(webhook_url=f"{served.url}{ALERTS}", tmp_path=tmp_path) as am,
    ):
        httpx.post(f"{am.url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
        wait_until(lambda: refused, timeout=30)
    assert set(refused) == {401}
    assert sinks.batches == []


def test_a_real_prometheus_remote_writes_with_its_authorization_and_is_recorded(
    tmp_path: Path, sinks: RecordingSinks
) -> None:
    """Prometheus 2.42's `remote_write.authorization` (a bearer token from a file) is let in."""
    stack.require_binaries(stack.PROMETHEUS)
    secret = tmp_path / "prometheus.token"
    secret.write_text(CALLERS.tokens["alertmanager"], encoding="utf-8")
    recorded: list[dict[str, Any]] = []

    class Requests:
        def record_request(self, **request: Any) -> None:
            recorded.append(request)

    app = create_app(
        alerts=sinks, samples=sinks, authenticator=CALLERS.authenticator, requests=Requests()
    )
    with ServedApp(app) as served:
        target = served.url  # its /metrics needs a credential: `up` is 0, and still written
        with stack.start_prometheus(
            scrape_targets=[target],
            tmp_path=tmp_path,
            remote_write={
                "url": f"{served.url}{WRITE}",
                "authorization": {"type": "Bearer", "credentials_file": str(secret)},
            },
        ):
            wait_until(lambda: sinks.writes, timeout=60)
    names = {sample.labels["__name__"] for write in sinks.writes for sample in write}
    assert "up" in names
    assert {(r["identity"], r["route"], r["status"]) for r in recorded} == {
        ("alertmanager", WRITE, 204)
    }
