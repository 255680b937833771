"""Instant and range queries answered by a real Prometheus over its HTTP API.

`PrometheusSource` is the `sources.InstantSource` for a controller that watches a
Prometheus instead of scraping into its own TSDB: rule evaluation and verify steps ask it
the same questions they would ask `sources.LocalSource`, and get the same shapes back.

    source = PrometheusSource("http://prometheus:9090")
    source.wait_ready()
    source.instant('sum by (service) (rate(http_requests_total[1m]))', at=now)
    source.range("up", start=now - 300, end=now, step=15)

Expressions go out as text (`promql.format` for a parsed tree) in a form-encoded POST to
`/api/v1/query` or `/api/v1/query_range`, so long expressions never meet a URL length limit.
Times are sent in whole milliseconds, the resolution Prometheus keeps. Values arrive as
strings ("NaN", "+Inf", "1.5") and leave as floats.

Failures are split by what the caller does next:

    httpx.TransportError (refused, reset, timed out)       -> TemporaryError
    HTTP 5xx, 429, or errorType timeout/canceled/internal  -> TemporaryError (Retry-After as delay)
    HTTP 4xx: errorType bad_data, execution, not_found...  -> PermanentError, Prometheus' message
    a reply that is not Prometheus' JSON envelope          -> PermanentError (TemporaryError if 5xx)

One `httpx.Client` (which may be shared between threads) serves every call, so the source
can be used from worker threads at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Self, TypedDict

import httpx

from selfheal.domain.errors import PermanentError, TemporaryError
from selfheal.telemetry import promql, sources
from selfheal.telemetry.tsdb import Labels

__all__ = ["PrometheusSource", "RangePairs"]

RangePairs = list[tuple[dict[str, str], list[tuple[float, float]]]]

# Prometheus' error types that a later retry may not meet again (timeouts, cancelled
# queries, its own internal errors, and a server still starting up).
_TRANSIENT_ERROR_TYPES = frozenset({"timeout", "canceled", "internal", "unavailable"})
_TOO_MANY_REQUESTS = 429
_SERVER_ERROR = 500
# Without a Retry-After header, one second: the scrape interval of a busy setup, so a retry
# usually sees a server that has recovered or new data.
_DEFAULT_DELAY = 1.0


class _Envelope(TypedDict, total=False):
    """Every reply of Prometheus' HTTP API."""

    status: str
    data: Any
    errorType: str
    error: str
    warnings: list[str]


class PrometheusSource:
    """An `InstantSource` (and range source) backed by a Prometheus server at `url`."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout)

    # -- queries -------------------------------------------------------------------------

    def instant(self, expr: promql.Expr | str, *, at: float) -> sources.Pairs:
        """The expression's value at `at`, as (labels, value) pairs, like `LocalSource`."""
        return sources.vector_pairs(self.query(expr, at=at))

    def query(self, expr: promql.Expr | str, *, at: float) -> promql.Value:
        """The expression at `at`, typed as `promql.evaluate` types its own results."""
        data = self._call("/api/v1/query", {"query": _text(expr), "time": _seconds(at)})
        return _value(data, at=round(at * 1000) / 1000)

    def range(
        self, expr: promql.Expr | str, *, start: float, end: float, step: float
    ) -> RangePairs:
        """The expression at start, start + step, ... end: per series, its (time, value) points."""
        data = self._call(
            "/api/v1/query_range",
            {
                "query": _text(expr),
                "start": _seconds(start),
                "end": _seconds(end),
                "step": _seconds(step),
            },
        )
        matrix = _value(data, at=end)
        if not isinstance(matrix, promql.Matrix):
            raise PermanentError(
                f"Prometheus at {self.url} answered a range query with a "
                f"{type(matrix).__name__.lower()}, not a matrix"
            )
        return [(series.labels.to_dict(), list(series.points)) for series in matrix]

    def wait_ready(self, *, timeout: float = 30.0, interval: float = 0.1) -> None:
        """Poll `/-/ready` until Prometheus answers 200; TemporaryError after `timeout` s.

        Real seconds, not scenario time: this waits for a process, not for the scenario.
        """
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            try:
                response = self._client.get("/-/ready")
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text.strip()[:200]}"
            if time.monotonic() >= deadline:
                raise TemporaryError(
                    f"Prometheus {self.url} not ready within {timeout} s ({last})",
                    delay=interval,
                )
            time.sleep(interval)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the wire ------------------------------------------------------------------------

    def _call(self, path: str, form: Mapping[str, str]) -> Any:
        """POST a query, check the envelope, return its `data`; errors mapped (see above)."""
        query = form["query"]
        try:
            response = self._client.post(path, data=dict(form))
        except httpx.TransportError as exc:
            raise TemporaryError(
                f"cannot reach Prometheus at {self.url} ({type(exc).__name__}: {exc}); "
                "is it running and is the URL right?",
                delay=_DEFAULT_DELAY,
            ) from exc
        status = response.status_code
        transient = status >= _SERVER_ERROR or status == _TOO_MANY_REQUESTS
        envelope = _envelope(response)
        if envelope is None:
            message = (
                f"Prometheus at {self.url} answered {path} with HTTP {status} and not "
                f"Prometheus' JSON: {response.text.strip()[:200]!r}"
            )
            if transient:
                raise TemporaryError(message, delay=_retry_after(response))
            raise PermanentError(message)
        if envelope.get("status") == "success" and status < 400:
            return envelope.get("data")
        error_type = envelope.get("errorType", "unknown")
        message = (
            f"Prometheus at {self.url} refused the query {query!r} "
            f"({error_type}, HTTP {status}): {envelope.get('error', response.text.strip())}"
        )
        if transient or error_type in _TRANSIENT_ERROR_TYPES:
            raise TemporaryError(message, delay=_retry_after(response))
        raise PermanentError(message)


def _text(expr: promql.Expr | str) -> str:
    return expr if isinstance(expr, str) else promql.format(expr)


def _seconds(value: float) -> str:
    """Seconds with exactly millisecond precision, as Prometheus keeps time."""
    millis = round(value * 1000)
    sign = "-" if millis < 0 else ""
    whole, rest = divmod(abs(millis), 1000)
    return f"{sign}{whole}.{rest:03d}"


def _envelope(response: httpx.Response) -> _Envelope | None:
    """The reply's JSON envelope, or None when the body is not a JSON object."""
    try:
        envelope = response.json()
    except ValueError:
        return None
    return envelope if isinstance(envelope, dict) else None  # type: ignore[return-value]


def _retry_after(response: httpx.Response) -> float:
    try:
        delay = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return _DEFAULT_DELAY
    return delay if math.isfinite(delay) and delay >= 0 else _DEFAULT_DELAY


def _number(text: Any) -> float:
    """A sample value: Prometheus sends strings ("NaN", "+Inf", "-Inf", "0.25")."""
    try:
        return float(text)
    except (TypeError, ValueError) as exc:
        raise PermanentError(
            f"Prometheus sent a sample value that is not a number: {text!r}"
        ) from exc


def _value(data: Any, *, at: float) -> promql.Value:
    """The typed result of an instant query evaluated at `at`."""
    try:
        kind, result = data["resultType"], data["result"]
        if kind == "vector":
            samples = (
                promql.Sample(Labels(item["metric"]), _number(_plain(item)[1])) for item in result
            )
            return promql.Vector(tuple(samples), at)
        if kind == "scalar":
            return promql.Scalar(_number(result[1]), float(result[0]))
        if kind == "string":
            return promql.String(str(result[1]), float(result[0]))
        if kind == "matrix":
            return _matrix(result)
    except (KeyError, IndexError, TypeError) as exc:
        raise PermanentError(f"Prometheus sent a malformed query result: {exc!r}") from exc
    raise PermanentError(f"Prometheus sent a result of unknown type {kind!r}")


def _plain(item: dict[str, Any]) -> list[Any]:
    if "value" not in item:
        raise PermanentError(
            f"series {item.get('metric')} is a native histogram, which selfheal does not read"
        )
    value: list[Any] = item["value"]
    return value


def _matrix(result: list[dict[str, Any]]) -> promql.Matrix:
    series = []
    for item in result:
        if "values" not in item:
            raise PermanentError(
                f"series {item.get('metric')} holds native histograms, which selfheal does not read"
            )
        points = tuple((float(t), _number(v)) for t, v in item["values"])
        series.append(promql.RangeSeries(Labels(item["metric"]), points))
    return promql.Matrix(tuple(series))
