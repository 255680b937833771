"""OTLP/HTTP metrics (an `ExportMetricsServiceRequest`) into Prometheus-style samples.

Both encodings an OpenTelemetry Collector's `otlphttp` exporter sends are read:
`application/x-protobuf` (decoded with opentelemetry-proto's classes) and `application/json`
(OTLP's JSON: camelCase names, 64-bit integers as strings, enums as integers, trace and span
ids in hex). The protobuf form is turned into the same JSON-shaped tree (protobuf's own
`MessageToDict`), so one walk validates both and an error names the same path for either:
`resourceMetrics[0].scopeMetrics[1].metrics[2].sum.aggregationTemporality`.

What becomes of each metric type, named as `otlp_names` describes:

- gauge: one sample per data point;
- sum: cumulative sums as they are; *delta* sums are added into a running total per series
  held by the caller's `DeltaAccumulator`, so the series reads like a Prometheus counter and
  `rate()` / `increase()` work on it. The accumulator lives as long as the caller keeps it (a
  restart starts the totals at zero again, which `rate()` sees as a counter reset);
- histogram (explicit buckets): `<name>_bucket{le="..."}` with *cumulative* counts (OTLP's
  are per bucket), `le="+Inf"` = the point's count, `<name>_sum` (when the point has one)
  and `<name>_count`; delta histograms accumulate like delta sums;
- summary: `<name>{quantile="..."}`, `<name>_sum`, `<name>_count`;
- exponential histograms and metrics with no data are skipped, as they are not malformed
  but have no float-sample form here.

Labels: the data point's attributes, then `job` from the resource's `service.name` (as
`service.namespace/service.name` when a namespace is set) and `instance` from
`service.instance.id`. Other resource attributes and the instrumentation scope are dropped
(Prometheus puts them on `target_info`, which is not produced here). Attribute values become
strings: ints in decimal, doubles as Go writes them, booleans as `true`/`false`, arrays and
maps as compact JSON, bytes in base64. Labels with empty values are dropped.

Times: `timeUnixNano` truncated to milliseconds, as Prometheus stores it; a point with no
time (0) is stamped with the caller's `now`. A point flagged "no recorded value" becomes
Prometheus' stale marker. Exemplars, start times and min/max are ignored.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

# protobuf ships no type stubs (types-protobuf is not a dependency); what it returns is read
# as untyped JSON below and checked field by field.
from google.protobuf import json_format, message  # type: ignore[import-untyped]
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from selfheal.telemetry import tsdb
from selfheal.telemetry.receivers import otlp_names
from selfheal.telemetry.receivers.payload import (
    JsonObject,
    PayloadError,
    TimedSample,
    child,
    load_json,
)

SOURCE = "OTLP metrics"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = frozenset({PROTOBUF, JSON})

_DATA_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")
_DELTA, _CUMULATIVE = 1, 2
_TEMPORALITIES = {
    "AGGREGATION_TEMPORALITY_DELTA": _DELTA,
    "AGGREGATION_TEMPORALITY_CUMULATIVE": _CUMULATIVE,
}
_SCALARS: dict[str, Callable[[JsonObject, str], object]] = {
    "stringValue": JsonObject.string,
    "bytesValue": JsonObject.string,  # base64 text, kept as it is
    "boolValue": lambda value, key: value.boolean(key, default=False),
    "intValue": JsonObject.integer,
    "doubleValue": JsonObject.number,
}
_ANY_VALUE_KINDS = (*_SCALARS, "arrayValue", "kvlistValue")
# DataPointFlags.FLAG_NO_RECORDED_VALUE: the series has gone (Prometheus writes a stale marker).
_NO_RECORDED_VALUE = 1
# Arrays and maps inside attribute values nest; deeper than this is an attack, not telemetry.
_MAX_VALUE_DEPTH = 32


class DeltaAccumulator:
    """Running totals of delta-temporality series, so that they read as counters.

    Keep one per receiver for as long as it runs; it is safe to share between threads. Each
    series is keyed by its full label set, `__name__` included.
    """

    def __init__(self) -> None:
        self._totals: dict[frozenset[tuple[str, str]], float] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._totals)

    def accumulate(self, increments: Sequence[TimedSample]) -> list[TimedSample]:
        """Add increments to their series' totals; the totals after each, as samples.

        Increments apply in timestamp order (stable for equal times), so an out-of-order
        batch still gives a non-decreasing counter. A stale marker passes through and a NaN
        increment adds nothing; neither changes the total.
        """
        ordered = sorted(increments, key=lambda sample: sample.timestamp)
        totals = []
        with self._lock:
            for sample in ordered:
                key = frozenset(sample.labels.items())
                total = self._totals.get(key, 0.0)
                if math.isnan(sample.value):  # a stale marker or another NaN
                    value = sample.value if tsdb.is_stale(sample.value) else total
                else:
                    total += sample.value
                    self._totals[key] = total
                    value = total
                totals.append(TimedSample(sample.labels, sample.timestamp, value))
        return totals


def media_type(content_type: str) -> str:
    """The media type of a Content-Type header, without parameters, lower case."""
    return content_type.partition(";")[0].strip().lower()


def empty_response(content_type: str) -> bytes:
    """An empty `ExportMetricsServiceResponse` in the request's encoding (full success)."""
    if media_type(content_type) == JSON:
        return b"{}"
    return bytes(metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString())


def parse_metrics(
    body: bytes,
    *,
    content_type: str,
    deltas: DeltaAccumulator | None = None,
    now: float | None = None,
) -> list[TimedSample]:
    """Translate an OTLP metrics request into samples; all or nothing.

    `deltas` holds the running totals of delta sums and histograms; without one, totals
    start from zero in this request alone. `now` stamps points that carry no time; without
    it such a point is an error. Raises `PayloadError` naming the bad field.
    """
    root = JsonObject.root(_decode(body, content_type=content_type), source=SOURCE)
    plain: list[TimedSample] = []
    increments: list[TimedSample] = []
    for sample, is_delta in _walk(root, now=now):
        (increments if is_delta else plain).append(sample)
    if increments:
        # Not `deltas or ...`: an accumulator with no series yet is empty, hence falsy.
        accumulator = deltas if deltas is not None else DeltaAccumulator()
        plain.extend(accumulator.accumulate(increments))
    return plain


def _decode(body: bytes, *, content_type: str) -> object:
    kind = media_type(content_type)
    if kind == JSON:
        return load_json(body, source=SOURCE)
    if kind == PROTOBUF:
        try:
            request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        except message.DecodeError as exc:
            raise PayloadError(f"malformed protobuf: {exc}", source=SOURCE) from exc
        return json_format.MessageToDict(request, use_integers_for_enums=True)
    raise PayloadError(
        f"unsupported content type {content_type!r}: send {PROTOBUF} or {JSON}", source=SOURCE
    )


@dataclass(frozen=True, slots=True)
class _Metric:
    """One metric's translated name and the labels its resource gives every point."""

    name: str
    resource_labels: Mapping[str, str]
    now: float | None


def _walk(root: JsonObject, *, now: float | None) -> Iterator[tuple[TimedSample, bool]]:
    for resource_metrics in root.objects("resourceMetrics"):
        resource = resource_metrics.optional_obj("resource")
        resource_labels = _resource_labels(resource) if resource is not None else {}
        for scope_metrics in resource_metrics.objects("scopeMetrics"):
            for metric in scope_metrics.objects("metrics"):
                yield from _metric(metric, resource_labels=resource_labels, now=now)


def _metric(
    metric: JsonObject, *, resource_labels: Mapping[str, str], now: float | None
) -> Iterator[tuple[TimedSample, bool]]:
    name = metric.string("name")
    unit = metric.string("unit", default="")
    kinds = [kind for kind in _DATA_KINDS if metric.has(kind)]
    if len(kinds) > 1:
        raise metric.error(None, f"a metric has one kind of data, this one has {kinds}")
    if not kinds or kinds[0] not in _POINTS:
        return
    kind = kinds[0]
    data = metric.obj(kind)
    delta = kind in {"sum", "histogram"} and _temporality(data) == _DELTA
    name_kind = _NAME_KINDS[kind]
    if kind == "sum" and data.boolean("isMonotonic", default=False):
        name_kind = "counter"
    translated = otlp_names.metric_name(name, unit=unit, kind=name_kind)
    if not translated:
        raise metric.error("name", f"{name!r} has no letters or digits to make a metric name")
    for sample in _POINTS[kind](data, _Metric(translated, resource_labels, now)):
        yield sample, delta


def _temporality(data: JsonObject) -> int:
    raw = data.data.get("aggregationTemporality")
    if isinstance(raw, str) and raw in _TEMPORALITIES:
        value = _TEMPORALITIES[raw]
    else:
        value = data.integer("aggregationTemporality", default=0)
    if value not in {_DELTA, _CUMULATIVE}:
        raise data.error(
            "aggregationTemporality",
            f"must be 1 (delta) or 2 (cumulative), got {raw!r}; "
            "AGGREGATION_TEMPORALITY_UNSPECIFIED must not be used",
        )
    return value


def _numbers(data: JsonObject, metric: _Metric) -> Iterator[TimedSample]:
    for point in data.objects("dataPoints"):
        labels, timestamp, stale = _point_basics(point, metric)
        if point.has("asDouble") and point.has("asInt"):
            raise point.error(None, "a number point has asDouble or asInt, not both")
        if point.has("asInt"):
            value = float(point.integer("asInt"))
        else:
            # A point with neither is 0, as in Prometheus (proto3's default).
            value = point.number("asDouble", default=0.0)
        yield _sample(_named(labels, metric, ""), timestamp, _or_stale(value, stale=stale))


def _histograms(data: JsonObject, metric: _Metric) -> Iterator[TimedSample]:
    for point in data.objects("dataPoints"):
        labels, timestamp, stale = _point_basics(point, metric)
        count = _unsigned(point, "count")
        bounds = point.numbers("explicitBounds")
        counts = point.integers("bucketCounts")
        if counts and len(counts) != len(bounds) + 1:
            raise point.error(
                "bucketCounts",
                f"{len(bounds)} explicit bounds need {len(bounds) + 1} bucket counts, "
                f"got {len(counts)}",
            )
        _check_bounds(point, bounds)
        if any(bucket < 0 for bucket in counts):
            raise point.error("bucketCounts", "bucket counts must not be negative")
        base = {**labels, "__name__": f"{metric.name}_bucket"}
        cumulative = 0
        for bound, bucket in zip(bounds, counts, strict=False):
            cumulative += bucket
            le = otlp_names.format_float(bound)
            yield _sample({**base, "le": le}, timestamp, _or_stale(cumulative, stale=stale))
        yield _sample({**base, "le": "+Inf"}, timestamp, _or_stale(count, stale=stale))
        if point.has("sum"):
            total = point.number("sum")
            yield _sample(_named(labels, metric, "_sum"), timestamp, _or_stale(total, stale=stale))
        yield _sample(_named(labels, metric, "_count"), timestamp, _or_stale(count, stale=stale))


def _summaries(data: JsonObject, metric: _Metric) -> Iterator[TimedSample]:
    for point in data.objects("dataPoints"):
        labels, timestamp, stale = _point_basics(point, metric)
        for quantile in point.objects("quantileValues"):
            q = otlp_names.format_float(quantile.number("quantile", default=0.0))
            value = quantile.number("value", default=0.0)
            named = {**labels, "__name__": metric.name, "quantile": q}
            yield _sample(named, timestamp, _or_stale(value, stale=stale))
        total = point.number("sum", default=0.0)
        yield _sample(_named(labels, metric, "_sum"), timestamp, _or_stale(total, stale=stale))
        count = _unsigned(point, "count")
        yield _sample(_named(labels, metric, "_count"), timestamp, _or_stale(count, stale=stale))


def _point_basics(point: JsonObject, metric: _Metric) -> tuple[dict[str, str], float, bool]:
    """A point's labels (without `__name__`), its time in seconds, and whether it is stale."""
    labels = _attribute_labels(point)
    labels.update(metric.resource_labels)
    time_ns = _unsigned(point, "timeUnixNano")
    if time_ns:
        # Milliseconds, truncated, as Prometheus stores an OTLP point's time.
        timestamp = time_ns // 1_000_000 / 1000.0
    elif metric.now is not None:
        timestamp = metric.now
    else:
        raise point.error("timeUnixNano", "is required (a point with no time)")
    flags = _unsigned(point, "flags")
    return labels, timestamp, bool(flags & _NO_RECORDED_VALUE)


def _named(labels: Mapping[str, str], metric: _Metric, suffix: str) -> dict[str, str]:
    return {**labels, "__name__": f"{metric.name}{suffix}"}


def _sample(labels: dict[str, str], timestamp: float, value: float) -> TimedSample:
    """A sample; labels with empty values are dropped (Prometheus reads them as absent)."""
    if "" in labels.values():
        labels = {key: value for key, value in labels.items() if value}
    return TimedSample(labels, timestamp, value)


def _or_stale(value: float, *, stale: bool) -> float:
    return tsdb.STALE_NAN if stale else float(value)


def _unsigned(item: JsonObject, key: str) -> int:
    value = item.integer(key, default=0)
    if value < 0:
        raise item.error(key, f"must not be negative, got {value}")
    return value


def _check_bounds(point: JsonObject, bounds: Sequence[float]) -> None:
    for index, (lower, upper) in enumerate(itertools.pairwise(bounds)):
        if not lower < upper:
            raise PayloadError(
                f"explicit bounds must increase strictly, but {lower} is followed by {upper}",
                source=SOURCE,
                path=child(child(point.path, "explicitBounds"), index + 1),
            )
    if any(math.isnan(bound) for bound in bounds):
        raise point.error("explicitBounds", "a bound is NaN")


def _resource_labels(resource: JsonObject) -> dict[str, str]:
    """`job` and `instance` from a resource's service attributes, as Prometheus derives them."""
    attributes = {item.string("key"): item for item in resource.objects("attributes")}
    labels = {}
    if "service.name" in attributes:
        job = _value_text(attributes["service.name"])
        if "service.namespace" in attributes:
            job = f"{_value_text(attributes['service.namespace'])}/{job}"
        labels["job"] = job
    if "service.instance.id" in attributes:
        labels["instance"] = _value_text(attributes["service.instance.id"])
    return labels


def _attribute_labels(point: JsonObject) -> dict[str, str]:
    """A point's attributes as labels; keys that sanitize alike join their values with `;`."""
    pairs = sorted(
        ((item.string("key"), _value_text(item)) for item in point.objects("attributes")),
        key=lambda pair: pair[0],
    )
    labels: dict[str, str] = {}
    for key, value in pairs:
        name = otlp_names.label_name(key)
        if not name:
            continue
        labels[name] = f"{labels[name]};{value}" if name in labels else value
    return labels


def _value_text(key_value: JsonObject) -> str:
    """A KeyValue's value (an AnyValue) as label text."""
    if not key_value.has("value"):
        return ""
    plain = _plain(key_value.obj("value"), depth=0)
    if plain is None:
        return ""
    if isinstance(plain, str):
        return plain
    return _text(plain)


def _text(plain: object) -> str:
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, float):
        return otlp_names.format_float(plain)
    if isinstance(plain, int):
        return str(plain)
    return json.dumps(plain, separators=(",", ":"), ensure_ascii=False)


def _plain(value: JsonObject, *, depth: int) -> object:
    """An AnyValue as a plain Python value (None when empty); unknown members are ignored."""
    if depth > _MAX_VALUE_DEPTH:
        raise value.error(None, f"attribute values nest deeper than {_MAX_VALUE_DEPTH} levels")
    kinds = [key for key in _ANY_VALUE_KINDS if value.has(key)]
    if len(kinds) > 1:
        raise value.error(None, f"an AnyValue holds one value, this one has {kinds}")
    if not kinds:
        return None
    kind = kinds[0]
    if kind == "arrayValue":
        items = value.obj(kind).objects("values")
        return [_plain(item, depth=depth + 1) for item in items]
    if kind == "kvlistValue":
        entries = value.obj(kind).objects("values")
        return {
            entry.string("key"): _plain(entry.obj("value"), depth=depth + 1)
            if entry.has("value")
            else None
            for entry in entries
        }
    return _SCALARS[kind](value, kind)


_POINTS: dict[str, Callable[[JsonObject, _Metric], Iterator[TimedSample]]] = {
    "gauge": _numbers,
    "sum": _numbers,
    "histogram": _histograms,
    "summary": _summaries,
}
_NAME_KINDS: dict[str, otlp_names.MetricKind] = {
    "gauge": "gauge",
    "sum": "sum",
    "histogram": "histogram",
    "summary": "summary",
}
