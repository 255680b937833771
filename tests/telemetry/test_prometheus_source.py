"""PrometheusSource against a real Prometheus scraping the twin, and its error mapping."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from selfheal.domain.errors import PermanentError, TemporaryError
from selfheal.telemetry import promql
from selfheal.telemetry.prometheus_source import PrometheusSource

import stack
import support


@dataclass
class Scraped:
    """A Prometheus that has scraped the twin a few times, and a source pointed at it."""

    url: str
    source: PrometheusSource
    twin: support.RunningTwin
    at: float  # a scrape time: queries at it are stable while Prometheus keeps scraping

    def api(self, path: str, **params: str | float) -> Any:
        """The `data` of Prometheus' own answer, fetched without PrometheusSource."""
        body = httpx.get(f"{self.url}{path}", params=params, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """Prometheus scraping the flash-sale twin (as the `twin` fixture runs it) every second."""
    stack.require_binaries(stack.PROMETHEUS)
    tmp_path = tmp_path_factory.mktemp("prometheus-source")
    twin = support.start_twin("flash-sale", tmp_path)
    try:
        with (
            stack.start_prometheus(scrape_targets=[twin.url], tmp_path=tmp_path) as prometheus,
            PrometheusSource(prometheus.url) as source,
        ):

            def scrapes() -> int:
                counted = source.instant("count_over_time(up[1h])", at=time.time())
                return int(counted[0][1]) if counted else 0

            # Target discovery holds the first scrape back ~5 s; three give rates two points.
            try:
                support.wait_until(lambda: scrapes() >= 3, timeout=60, interval=0.25)
            except pytest.fail.Exception:
                pytest.fail(f"Prometheus did not scrape the twin:\n{prometheus.log}")
            [(_, at)] = source.instant("timestamp(up)", at=time.time())
            yield Scraped(prometheus.url, source, twin, at)
    finally:
        twin.server.stop()


def same_floats(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


# -- answers ---------------------------------------------------------------------------------


def test_an_instant_query_returns_what_the_query_api_returns(scraped: Scraped) -> None:
    """Labels and values from /api/v1/query, unchanged, values as floats."""
    query = "sum by (service, code) (rate(http_requests_total[2s]))"
    data = scraped.api("/api/v1/query", query=query, time=scraped.at)
    expected = [(item["metric"], float(item["value"][1])) for item in data["result"]]
    pairs = scraped.source.instant(query, at=scraped.at)
    assert pairs == expected
    assert len(pairs) >= 4  # every service, at least with code 200
    assert all(isinstance(value, float) for _, value in pairs)


def test_a_range_query_returns_what_the_query_range_api_returns(scraped: Scraped) -> None:
    """Per series, the (time, value) points of /api/v1/query_range."""
    query = 'container_cpu_usage_seconds_total{container="catalog"}'
    start, end = scraped.at - 2, scraped.at
    data = scraped.api("/api/v1/query_range", query=query, start=start, end=end, step=0.5)
    expected = [
        (item["metric"], [(float(t), float(v)) for t, v in item["values"]])
        for item in data["result"]
    ]
    result = scraped.source.range(query, start=start, end=end, step=0.5)
    assert result == expected
    assert result
    steps = [round(t * 1000) for t, _ in result[0][1]]
    assert steps == list(range(round(start * 1000), round(end * 1000) + 1, 500))


def test_a_parsed_expression_gives_the_same_answer_as_its_text(scraped: Scraped) -> None:
    """A `promql.Expr` is sent as `promql.format` prints it."""
    text = 'topk(2, sum by (pod) (rate(container_cpu_usage_seconds_total{container!=""}[2s])))'
    parsed = promql.parse(text)
    assert scraped.source.instant(parsed, at=scraped.at) == scraped.source.instant(
        text, at=scraped.at
    )
    assert len(scraped.source.range(parsed, start=scraped.at - 1, end=scraped.at, step=1)) == 2


def test_a_scalar_comes_back_as_one_unlabelled_pair(scraped: Scraped) -> None:
    """A scalar result is ({}, value), as from LocalSource; `query` types it as a Scalar."""
    assert scraped.source.instant("scalar(sum(up)) * 2", at=scraped.at) == [({}, 2.0)]
    typed = scraped.source.query("scalar(sum(up)) * 2", at=scraped.at)
    assert typed == promql.Scalar(2.0, scraped.at)


def test_nan_and_infinities_arrive_as_floats(scraped: Scraped) -> None:
    """Prometheus' "NaN", "+Inf" and "-Inf" strings become the float values."""
    query = (
        'label_replace(up / 0, "v", "inf", "", "") or label_replace(-up / 0, "v", "-inf", "", "")'
    )
    query += ' or label_replace((up - up) / 0, "v", "nan", "", "")'
    pairs = {labels["v"]: value for labels, value in scraped.source.instant(query, at=scraped.at)}
    assert pairs["inf"] == math.inf
    assert pairs["-inf"] == -math.inf
    assert math.isnan(pairs["nan"])
    points = scraped.source.range("(up - up) / 0", start=scraped.at - 1, end=scraped.at, step=1)
    assert all(math.isnan(value) for _, value in points[0][1])


def test_a_range_vector_is_a_matrix_of_the_stored_samples(scraped: Scraped) -> None:
    """`query` returns raw samples with their scrape timestamps; `instant` refuses a matrix."""
    matrix = scraped.source.query("up[10s]", at=scraped.at)
    assert isinstance(matrix, promql.Matrix)
    [series] = matrix
    assert series.points[-1] == (scraped.at, 1.0)
    with pytest.raises(promql.PromQLError, match="vector or a scalar, not matrix"):
        scraped.source.instant("up[10s]", at=scraped.at)


def test_one_source_serves_many_worker_threads(scraped: Scraped) -> None:
    """Concurrent queries from a thread pool all get their own, correct answers."""
    queries = [f"sum(up) * {n}" for n in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda q: scraped.source.instant(q, at=scraped.at), queries))
    assert answers == [[({}, float(n))] for n in range(64)]


def test_wait_ready_returns_once_prometheus_is_ready(scraped: Scraped) -> None:
    """A running Prometheus is ready at once."""
    scraped.source.wait_ready(timeout=5)


# -- errors ----------------------------------------------------------------------------------


def test_bad_promql_is_a_permanent_error_with_prometheus_message(scraped: Scraped) -> None:
    """A parse error (bad_data, HTTP 400) is permanent and quotes Prometheus' own message."""
    reply = httpx.get(f"{scraped.url}/api/v1/query", params={"query": "rate(up[5m]"}).json()
    assert reply["errorType"] == "bad_data"
    with pytest.raises(PermanentError) as caught:
        scraped.source.instant("rate(up[5m]", at=scraped.at)
    assert reply["error"] in str(caught.value)
    assert "unclosed left parenthesis" in str(caught.value)


def test_an_execution_error_is_permanent(scraped: Scraped) -> None:
    """Many-to-many matching fails in evaluation (HTTP 422): retrying cannot help."""
    with pytest.raises(PermanentError, match="many-to-many matching not allowed"):
        scraped.source.instant("up + on () http_requests_total", at=scraped.at)


def test_a_server_that_is_not_prometheus_is_a_permanent_error(scraped: Scraped) -> None:
    """A URL that points at another server (the twin) answers 4xx without Prometheus' JSON."""
    with (
        PrometheusSource(scraped.twin.url) as wrong,
        pytest.raises(PermanentError, match="not Prometheus' JSON"),
    ):
        wrong.instant("up", at=scraped.at)


def test_a_dead_port_is_a_temporary_error() -> None:
    """Connection refused means "try again later", with the cause chained."""
    with PrometheusSource(f"http://127.0.0.1:{stack.free_port()}", timeout=1) as dead:
        with pytest.raises(TemporaryError, match="cannot reach Prometheus") as caught:
            dead.instant("up", at=time.time())
        assert isinstance(caught.value.__cause__, httpx.ConnectError)
        with pytest.raises(TemporaryError):
            dead.range("up", start=0, end=10, step=1)
        with pytest.raises(TemporaryError, match="not ready within"):
            dead.wait_ready(timeout=0.2, interval=0.05)


class _Canned(BaseHTTPRequestHandler):
    """Answers every request with the server's canned status, headers and body."""

    def do_POST(self) -> None:
        status, headers, body = self.server.canned  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet: the test reports what matters."""


@pytest.fixture
def canned() -> Iterator[ThreadingHTTPServer]:
    """A loopback server with a fixed answer: server errors Prometheus gives only by chance.

    A 503 comes while Prometheus starts or when a query times out, a 502 from a proxy.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


TIMEOUT_REPLY = {
    "status": "error",
    "errorType": "timeout",
    "error": "query timed out in expression evaluation",
}


@pytest.mark.parametrize(
    ("status", "headers", "body", "delay"),
    [
        (503, {"Retry-After": "7"}, json.dumps(TIMEOUT_REPLY).encode(), 7.0),
        (502, {}, b"<html>Bad Gateway</html>", 1.0),
        (429, {"Retry-After": "2.5"}, b"slow down", 2.5),
    ],
    ids=["prometheus-timeout", "proxy-502", "too-many-requests"],
)
def test_server_errors_are_temporary_with_retry_after_as_delay(
    canned: ThreadingHTTPServer, status: int, headers: dict[str, str], body: bytes, delay: float
) -> None:
    """5xx and 429 replies, JSON or not, mean "retry", after Retry-After when given."""
    canned.canned = (status, headers, body)  # type: ignore[attr-defined]
    host, port = canned.server_address[:2]
    with (
        PrometheusSource(f"http://{host!s}:{port}") as source,
        pytest.raises(TemporaryError) as caught,
    ):
        source.instant("up", at=1_700_000_000)
    assert caught.value.delay == delay
    if status == 503:
        assert "query timed out in expression evaluation" in str(caught.value)


def test_times_go_out_in_whole_milliseconds(scraped: Scraped) -> None:
    """Evaluation times are rounded to the millisecond, the resolution Prometheus keeps."""
    typed = scraped.source.query("time()", at=scraped.at + 0.0004)
    assert typed == promql.Scalar(scraped.at, scraped.at)
