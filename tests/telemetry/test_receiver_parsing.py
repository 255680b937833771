"""The receivers' parsers on real payloads, on every kind of malformed one, and on generated ones.

Golden files come from real senders (tests/api/golden/capture.py says how). Remote-write is
checked against protobuf's own decoder, given the schema at run time (no generated code).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cramjam
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from selfheal.domain.model import AlertState
from selfheal.telemetry import tsdb
from selfheal.telemetry.receivers import (
    DeltaAccumulator,
    PayloadError,
    PayloadTooLarge,
    TimedSample,
    alertmanager,
    otlp,
    otlp_names,
    protowire,
    remote_write,
)

GOLDEN = Path(__file__).parents[1] / "api" / "golden"
JSON = "application/json"
PROTOBUF = "application/x-protobuf"


def golden(name: str) -> bytes:
    return (GOLDEN / name).read_bytes()


def golden_json(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(golden(name))
    return document


def unix(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


def by_name(samples: list[TimedSample]) -> dict[str, list[TimedSample]]:
    grouped: dict[str, list[TimedSample]] = {}
    for sample in samples:
        grouped.setdefault(sample.labels["__name__"], []).append(sample)
    return grouped


# -- Alertmanager -----------------------------------------------------------------------------


def test_a_real_firing_webhook_becomes_firing_alerts_with_their_fingerprints() -> None:
    """Alertmanager 0.25's firing notification: every alert, label and time comes through."""
    document = golden_json("alertmanager_firing.json")
    batch = alertmanager.parse_webhook(golden("alertmanager_firing.json"))
    assert batch.version == "4"
    assert batch.status is AlertState.FIRING
    assert batch.receiver == "selfheal"
    assert batch.group_key == '{}:{alertname="CheckoutLatencyHigh", service="checkout"}'
    assert batch.truncated_alerts == 0
    assert batch.group_labels == {"alertname": "CheckoutLatencyHigh", "service": "checkout"}
    assert batch.common_labels["namespace"] == "production"
    assert batch.common_annotations == {"runbook": "scale-out"}
    assert batch.external_url == document["externalURL"]
    assert batch.fingerprints == ("00425e4739434373", "a7809a6ad8050f62")
    assert len(batch.alerts) == len(batch.generator_urls) == 2
    for alert, raw in zip(batch.alerts, document["alerts"], strict=True):
        assert alert.name == "CheckoutLatencyHigh"
        assert alert.labels == raw["labels"]
        assert alert.annotations == raw["annotations"]
        assert alert.state is AlertState.FIRING
        assert math.isnan(alert.value)
        assert alert.active_at == alert.fired_at == unix(raw["startsAt"])
        assert alert.resolved_at is None
        assert alert.source == "alertmanager"
    assert {alert.labels["pod"] for alert in batch.alerts} == {
        "checkout-7d9f-abcde",
        "checkout-7d9f-fghij",
    }


def test_a_real_resolved_webhook_says_when_each_alert_ended() -> None:
    """The resolved notification carries endsAt, which becomes resolved_at."""
    document = golden_json("alertmanager_resolved.json")
    batch = alertmanager.parse_webhook(golden("alertmanager_resolved.json"))
    assert batch.status is AlertState.RESOLVED
    for alert, raw in zip(batch.alerts, document["alerts"], strict=True):
        assert alert.state is AlertState.RESOLVED
        assert alert.active_at == unix(raw["startsAt"])
        assert alert.resolved_at == unix(raw["endsAt"])
        assert alert.resolved_at > alert.active_at


def _set(path: list[str | int], value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _drop(path: list[str | int]) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


WEBHOOK_DEFECTS = [
    ("no version", _drop(["version"]), "version"),
    ("another version", _set(["version"], "3"), "version"),
    ("no alerts", _drop(["alerts"]), "alerts"),
    ("alerts not a list", _set(["alerts"], {}), "alerts"),
    ("an alert not an object", _set(["alerts", 1], "firing"), "alerts[1]"),
    ("unknown status", _set(["alerts", 1, "status"], "pending"), "alerts[1].status"),
    ("group status wrong type", _set(["status"], 1), "status"),
    ("no alertname", _drop(["alerts", 0, "labels", "alertname"]), "alerts[0].labels.alertname"),
    ("label not a string", _set(["alerts", 1, "labels", "pod"], 5), "alerts[1].labels.pod"),
    ("labels missing", _drop(["alerts", 0, "labels"]), "alerts[0].labels"),
    ("no startsAt", _drop(["alerts", 1, "startsAt"]), "alerts[1].startsAt"),
    ("startsAt not a time", _set(["alerts", 0, "startsAt"], "yesterday"), "alerts[0].startsAt"),
    (
        "startsAt not a date",
        _set(["alerts", 0, "startsAt"], "2026-02-30T00:00:00Z"),
        "alerts[0].startsAt",
    ),
    ("startsAt a number", _set(["alerts", 0, "startsAt"], 1767225600), "alerts[0].startsAt"),
    ("no fingerprint", _drop(["alerts", 1, "fingerprint"]), "alerts[1].fingerprint"),
    (
        "annotation not a string",
        _set(["alerts", 0, "annotations", "x"], []),
        "alerts[0].annotations.x",
    ),
    ("truncatedAlerts not a number", _set(["truncatedAlerts"], "many"), "truncatedAlerts"),
    ("groupLabels not an object", _set(["groupLabels"], ["alertname"]), "groupLabels"),
    ("no groupKey", _drop(["groupKey"]), "groupKey"),
]


@pytest.mark.parametrize(
    ("mutate", "path"),
    [pytest.param(mutate, path, id=name) for name, mutate, path in WEBHOOK_DEFECTS],
)
def test_a_malformed_webhook_is_refused_naming_the_field(
    mutate: Callable[[dict[str, Any]], None], path: str
) -> None:
    """Each defect in an otherwise real webhook raises PayloadError with its JSON path."""
    document = golden_json("alertmanager_firing.json")
    mutate(document)
    with pytest.raises(PayloadError) as caught:
        alertmanager.parse_webhook(json.dumps(document).encode())
    assert caught.value.path == path
    assert f"({path})" in str(caught.value)


def test_a_resolved_alert_without_an_end_is_refused() -> None:
    """A resolved alert whose endsAt is Go's zero time cannot say when it ended."""
    document = golden_json("alertmanager_resolved.json")
    document["alerts"][1]["endsAt"] = "0001-01-01T00:00:00Z"
    with pytest.raises(PayloadError) as caught:
        alertmanager.parse_webhook(json.dumps(document).encode())
    assert caught.value.path == "alerts[1].endsAt"


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b'{"version": "4",}', b"\xff\xfe{}", b"[]", b'"4"', b"[" * 100_000],
    ids=["empty", "unclosed", "trailing comma", "not utf-8", "array", "string", "deep"],
)
def test_a_webhook_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    """Bad JSON names its line and column; JSON that is not an object is refused too."""
    with pytest.raises(PayloadError) as caught:
        alertmanager.parse_webhook(body)
    assert caught.value.path is None
    assert str(caught.value).startswith("alertmanager webhook")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", 1_767_225_600.0),
        ("2026-01-01T01:00:00.5+01:00", 1_767_225_600.5),
        ("2025-12-31T19:30:00.25-04:30", 1_767_225_600.25),
        ("2026-01-01T00:00:00.123456789Z", 1_767_225_600.123456789),
    ],
)
def test_alert_times_are_read_with_their_offsets_and_fractions(text: str, expected: float) -> None:
    """RFC 3339 as Go writes it: offsets, and up to nanoseconds."""
    document = golden_json("alertmanager_firing.json")
    document["alerts"][0]["startsAt"] = text
    batch = alertmanager.parse_webhook(json.dumps(document).encode())
    assert batch.alerts[0].active_at == pytest.approx(expected, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime.datetime(1970, 1, 2),  # noqa: DTZ001 - naive bounds, as hypothesis requires
        max_value=datetime.datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=st.just(datetime.UTC),
    )
)
def test_any_utc_time_reads_back_as_its_unix_seconds(moment: datetime.datetime) -> None:
    """Property: a UTC time written as Go's RFC 3339 parses to its own timestamp."""
    document = golden_json("alertmanager_firing.json")
    document["alerts"][0]["startsAt"] = moment.isoformat().replace("+00:00", "Z")
    batch = alertmanager.parse_webhook(json.dumps(document).encode())
    assert batch.alerts[0].active_at == pytest.approx(moment.timestamp(), abs=1e-6)


# -- remote-write: an independent decoder -----------------------------------------------------


def _write_request_class() -> Any:
    """Prometheus' WriteRequest, built from its schema at run time by protobuf itself."""
    proto = descriptor_pb2.FieldDescriptorProto
    schema = descriptor_pb2.FileDescriptorProto(
        name="selfheal_test_remote_write.proto", package="prometheus", syntax="proto3"
    )
    messages = {
        "Label": [("name", 1, proto.TYPE_STRING, None), ("value", 2, proto.TYPE_STRING, None)],
        "Sample": [("value", 1, proto.TYPE_DOUBLE, None), ("timestamp", 2, proto.TYPE_INT64, None)],
        "TimeSeries": [
            ("labels", 1, proto.TYPE_MESSAGE, ".prometheus.Label"),
            ("samples", 2, proto.TYPE_MESSAGE, ".prometheus.Sample"),
        ],
        "WriteRequest": [("timeseries", 1, proto.TYPE_MESSAGE, ".prometheus.TimeSeries")],
    }
    for name, fields in messages.items():
        message = schema.message_type.add(name=name)
        for field_name, number, kind, type_name in fields:
            label = proto.LABEL_REPEATED if type_name else proto.LABEL_OPTIONAL
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(schema)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest = _write_request_class()


def _expected_samples(request: Any) -> list[TimedSample]:
    expected = []
    for series in request.timeseries:
        labels = {label.name: label.value for label in series.labels if label.value}
        expected.extend(
            TimedSample(labels, sample.timestamp / 1000.0, sample.value)
            for sample in series.samples
        )
    return expected


def _snappy(message: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(message))


def _decoded_golden() -> bytes:
    return bytes(cramjam.snappy.decompress_raw(golden("remote_write.snappy")))


def test_a_real_remote_write_request_decodes_as_protobuf_decodes_it() -> None:
    """Prometheus 2.42's request: the same samples as protobuf's own decoder finds."""
    samples = remote_write.parse_write_request(golden("remote_write.snappy"))
    assert samples == _expected_samples(WriteRequest.FromString(_decoded_golden()))


def test_a_real_remote_write_request_carries_the_scraped_values_and_labels() -> None:
    """The fixed exposition Prometheus scraped comes through with job, instance and times."""
    grouped = by_name(remote_write.parse_write_request(golden("remote_write.snappy")))
    assert set(grouped) == {
        "up",
        "shop_orders_total",
        "shop_queue_depth",
        "shop_latency_seconds_bucket",
        "shop_latency_seconds_sum",
        "shop_latency_seconds_count",
    }
    everything = [sample for samples in grouped.values() for sample in samples]
    assert {sample.labels["job"] for sample in everything} == {"shop"}
    assert {sample.labels["cluster"] for sample in everything} == {"golden"}
    assert {sample.value for sample in grouped["up"]} == {1.0}
    orders = {(s.labels["method"], s.labels["code"], s.value) for s in grouped["shop_orders_total"]}
    assert orders == {("GET", "200", 1027.0), ("POST", "500", 3.0)}
    [queue] = {(s.labels["queue"], s.value) for s in grouped["shop_queue_depth"]}
    assert queue == ('caf\u00e9 "north"', 7.5)
    buckets = {(s.labels["le"], s.value) for s in grouped["shop_latency_seconds_bucket"]}
    assert buckets == {("0.1", 10.0), ("0.5", 25.0), ("+Inf", 30.0)}
    # Scrape times: whole milliseconds, and recent (the file was captured in December 2026).
    for sample in everything:
        assert sample.timestamp * 1000 == pytest.approx(round(sample.timestamp * 1000))
        assert sample.timestamp > 1_700_000_000


def test_a_metadata_only_request_is_skipped_as_an_unknown_field() -> None:
    """Prometheus' metadata requests (field 3) hold no samples; they parse to none."""
    assert remote_write.parse_write_request(golden("remote_write_metadata.snappy")) == []


_METRIC_NAMES = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)
_LABEL_NAMES = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name != "__name__"
)
_LABEL_VALUES = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)


@st.composite
def _write_requests(draw: st.DrawFn) -> Any:
    request = WriteRequest()
    for _ in range(draw(st.integers(0, 4))):
        series = request.timeseries.add()
        labels = draw(st.dictionaries(_LABEL_NAMES, _LABEL_VALUES, max_size=4))
        labels["__name__"] = draw(_METRIC_NAMES)
        for name, value in draw(st.permutations(list(labels.items()))):
            series.labels.add(name=name, value=value)
        for _ in range(draw(st.integers(0, 3))):
            series.samples.add(
                value=draw(st.floats(allow_nan=False)),
                timestamp=draw(st.integers(-(2**63), 2**63 - 1)),
            )
    return request


@settings(max_examples=200, deadline=None)
@given(_write_requests())
def test_any_write_request_decodes_as_protobuf_encoded_it(request: Any) -> None:
    """Property: whatever protobuf encodes, the hand-written decoder reads back the same."""
    body = _snappy(request.SerializeToString())
    assert remote_write.parse_write_request(body) == _expected_samples(request)


def _unknown_fields() -> bytes:
    """One unknown field of every wire type, a nested group included."""
    return b"".join(
        [
            protowire.encode_varint(9 << 3 | protowire.VARINT) + protowire.encode_varint(300),
            protowire.encode_varint(10 << 3 | protowire.FIXED64) + bytes(8),
            protowire.encode_varint(11 << 3 | protowire.LENGTH_DELIMITED) + b"\x03abc",
            protowire.encode_varint(12 << 3 | protowire.FIXED32) + bytes(4),
            protowire.encode_varint(13 << 3 | protowire.START_GROUP),
            protowire.encode_varint(14 << 3 | protowire.START_GROUP),
            protowire.encode_varint(1 << 3 | protowire.VARINT) + b"\x01",
            protowire.encode_varint(14 << 3 | protowire.END_GROUP),
            protowire.encode_varint(13 << 3 | protowire.END_GROUP),
        ]
    )


def test_unknown_fields_are_skipped_at_every_level() -> None:
    """Fields a newer sender adds (any wire type, groups too) change nothing."""
    request = WriteRequest.FromString(_decoded_golden())
    expected = _expected_samples(request)
    extra = _unknown_fields()
    series = request.timeseries[0]
    series.labels[0].ParseFromString(series.labels[0].SerializeToString() + extra)
    series.samples[0].ParseFromString(series.samples[0].SerializeToString() + extra)
    series.ParseFromString(extra + series.SerializeToString())
    body = _snappy(extra + request.SerializeToString() + extra)
    assert remote_write.parse_write_request(body) == expected


def _golden_request() -> Any:
    return WriteRequest.FromString(_decoded_golden())


def _with_raw_series(raw: bytes) -> bytes:
    """A WriteRequest whose first series is `raw` bytes, encoded by hand."""
    tag = protowire.encode_varint(1 << 3 | protowire.LENGTH_DELIMITED)
    return _snappy(tag + protowire.encode_varint(len(raw)) + raw)


def _label(name: bytes, value: bytes) -> bytes:
    body = b"\x0a" + bytes([len(name)]) + name + b"\x12" + bytes([len(value)]) + value
    return b"\x0a" + bytes([len(body)]) + body


def _bad_label_name() -> bytes:
    request = _golden_request()
    request.timeseries[2].labels[1].name = "bad-name"
    return _snappy(request.SerializeToString())


def _no_metric_name() -> bytes:
    request = _golden_request()
    series = request.timeseries[1]
    kept = [(label.name, label.value) for label in series.labels if label.name != "__name__"]
    del series.labels[:]
    for name, value in kept:
        series.labels.add(name=name, value=value)
    return _snappy(request.SerializeToString())


def _duplicate_label() -> bytes:
    request = _golden_request()
    request.timeseries[0].labels.add(name="job", value="other")
    return _snappy(request.SerializeToString())


REMOTE_WRITE_DEFECTS = [
    ("not snappy", b"\x0a\x05hello", None),
    ("empty body", b"", None),
    ("snappy framing format", bytes(cramjam.snappy.compress(b"\x0a\x00")), None),
    (
        "truncated protobuf",
        _snappy(_decoded_golden()[:-7]),
        f"timeseries[{len(WriteRequest.FromString(_decoded_golden()).timeseries) - 1}]",
    ),
    ("truncated varint", _snappy(b"\x0a\x80"), "timeseries[0]"),
    ("field number 0", _snappy(b"\x00\x01"), None),
    ("wire type 7", _snappy(b"\x0f\x01"), "timeseries[0]"),
    ("stray end group", _snappy(b"\x0c"), "timeseries[0]"),
    ("unknown group never ended", _snappy(b"\x0a\x00\x6b\x08\x01"), None),
    ("bad label name", _bad_label_name(), "timeseries[2].labels[1].name"),
    ("no __name__", _no_metric_name(), "timeseries[1].labels"),
    ("labels as a varint", _with_raw_series(b"\x08\x01"), "timeseries[0].labels[0]"),
    (
        "value as a varint",
        _with_raw_series(_label(b"__name__", b"x") + b"\x12\x02\x08\x01"),
        "timeseries[0].samples[0].value",
    ),
    (
        "name not UTF-8",
        _with_raw_series(_label(b"__name__", b"\xff\xfe")),
        "timeseries[0].labels[0].value",
    ),
    (
        "eleven-byte varint",
        _with_raw_series(_label(b"__name__", b"x") + b"\x12\x0c\x10" + b"\xff" * 10 + b"\x01"),
        "timeseries[0].samples[0].timestamp",
    ),
]


@pytest.mark.parametrize(
    ("body", "path"),
    [pytest.param(body, path, id=name) for name, body, path in REMOTE_WRITE_DEFECTS],
)
def test_a_malformed_write_request_is_refused_naming_the_field(
    body: bytes, path: str | None
) -> None:
    """Bad snappy, truncation, bad wire types and invalid labels raise PayloadError."""
    with pytest.raises(PayloadError) as caught:
        remote_write.parse_write_request(body)
    assert not isinstance(caught.value, PayloadTooLarge)
    assert caught.value.path == path
    assert str(caught.value).startswith("remote-write request")


def test_a_duplicate_label_is_named() -> None:
    """A label name given twice in one series is refused at the second one."""
    with pytest.raises(PayloadError) as caught:
        remote_write.parse_write_request(_duplicate_label())
    count = len(_golden_request().timeseries[0].labels)
    assert caught.value.path == f"timeseries[0].labels[{count}].name"


def test_a_body_announcing_too_many_bytes_is_refused_before_decompressing() -> None:
    """The snappy header's length is checked first: a tiny body cannot claim gigabytes."""
    body = protowire.encode_varint(1 << 40) + b"\x00"
    with pytest.raises(PayloadTooLarge):
        remote_write.parse_write_request(body, max_decoded_bytes=1 << 20)
    real = golden("remote_write.snappy")
    with pytest.raises(PayloadTooLarge):
        remote_write.parse_write_request(real, max_decoded_bytes=len(_decoded_golden()) - 1)
    assert remote_write.parse_write_request(real, max_decoded_bytes=len(_decoded_golden()))


def test_an_empty_label_value_is_dropped_and_a_stale_marker_kept_bit_for_bit() -> None:
    """Empty values mean no label in Prometheus; the stale NaN's bits survive decoding."""
    request = WriteRequest()
    series = request.timeseries.add()
    series.labels.add(name="__name__", value="up")
    series.labels.add(name="pod", value="")
    series.samples.add(value=tsdb.STALE_NAN, timestamp=1_767_225_600_000)
    [sample] = remote_write.parse_write_request(_snappy(request.SerializeToString()))
    assert sample.labels == {"__name__": "up"}
    assert tsdb.is_stale(sample.value)
    assert sample.timestamp == 1_767_225_600.0


# -- the varint codec -------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=-(2**63), max_value=2**64 - 1), st.binary(max_size=4))
def test_a_varint_round_trips_and_ends_where_it_should(value: int, tail: bytes) -> None:
    """Property: decode(encode(v)) == v mod 2**64, and reading stops at the varint's end."""
    encoded = protowire.encode_varint(value)
    assert len(encoded) <= 10
    decoded, end = protowire.decode_varint(encoded + tail)
    assert decoded == value % 2**64
    assert end == len(encoded)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_a_varint_is_encoded_exactly_as_protobuf_encodes_an_int64(value: int) -> None:
    """Property: the codec agrees byte for byte with protobuf on int64 timestamps."""
    request = WriteRequest()
    request.timeseries.add().samples.add(timestamp=value)
    sample = request.timeseries[0].samples[0].SerializeToString()
    expected = b"\x10" + protowire.encode_varint(value) if value else b""
    assert sample == expected
    field = next(protowire.iter_fields(sample), None)
    assert (field.as_int64() if field else 0) == value


@given(st.binary(max_size=12))
def test_decoding_arbitrary_bytes_either_succeeds_or_raises_wire_error(data: bytes) -> None:
    """Property: no input makes the field reader fail with anything but WireError."""
    with contextlib.suppress(protowire.WireError):
        list(protowire.iter_fields(data))


def test_a_varint_longer_than_ten_bytes_is_refused() -> None:
    """Eleven continuation-marked bytes are not a varint."""
    with pytest.raises(protowire.WireError, match="longer than 10 bytes"):
        protowire.decode_varint(b"\xff" * 10 + b"\x01")
    with pytest.raises(protowire.WireError, match="truncated"):
        protowire.decode_varint(b"\xff\xff")


# -- OTLP -------------------------------------------------------------------------------------

OTLP_TIME = 1_767_225_660.0


def parse_otlp(body: bytes, content_type: str = JSON, **options: Any) -> list[TimedSample]:
    return otlp.parse_metrics(body, content_type=content_type, **options)


def otlp_document() -> dict[str, Any]:
    return golden_json("otlp_metrics.json")


def metrics_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = document["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    return metrics


def test_both_otlp_encodings_of_a_request_give_the_same_samples() -> None:
    """The protobuf and the JSON form of one request translate identically."""
    from_protobuf = parse_otlp(golden("otlp_metrics.pb"), PROTOBUF)
    from_json = parse_otlp(golden("otlp_metrics.json"), JSON)
    assert from_protobuf == from_json
    assert len(from_json) == 17


def test_otlp_names_and_labels_follow_prometheus_translation() -> None:
    """Units become suffixes, monotonic sums end in _total, the resource gives job/instance."""
    grouped = by_name(parse_otlp(golden("otlp_metrics.json")))
    assert set(grouped) == {
        "system_memory_utilization_ratio",
        "process_memory_usage_bytes",
        "http_server_requests_total",
        "jobs_processed_total",
        "queue_size",
        "http_server_request_duration_seconds_bucket",
        "http_server_request_duration_seconds_sum",
        "http_server_request_duration_seconds_count",
        "rpc_latency_milliseconds",
        "rpc_latency_milliseconds_sum",
        "rpc_latency_milliseconds_count",
    }
    [utilization] = grouped["system_memory_utilization_ratio"]
    assert utilization == TimedSample(
        {
            "__name__": "system_memory_utilization_ratio",
            "job": "shop/checkout",
            "instance": "checkout-7d9f-abcde",
            "system_memory_state": "used",
        },
        OTLP_TIME,
        0.625,
    )
    [memory] = grouped["process_memory_usage_bytes"]
    assert memory.value == 268_435_456.0
    assert "host_name" not in memory.labels
    requests = {
        (s.labels["http_route"], s.labels["http_response_status_code"], s.value)
        for s in grouped["http_server_requests_total"]
    }
    assert requests == {("/cart", "200", 120.0), ("/pay", "200", 7.0)}
    [queue] = grouped["queue_size"]
    assert queue.value == -2.0
    quantiles = {(s.labels["quantile"], s.value) for s in grouped["rpc_latency_milliseconds"]}
    assert quantiles == {("0.5", 21.0), ("0.99", 95.5)}
    assert [s.value for s in grouped["rpc_latency_milliseconds_sum"]] == [340.5]
    assert [s.value for s in grouped["rpc_latency_milliseconds_count"]] == [12.0]


def test_histogram_buckets_become_cumulative_with_inf_as_the_count() -> None:
    """OTLP's per-bucket counts 2, 8, 15, 5 become le buckets 2, 10, 25 and +Inf = 30."""
    grouped = by_name(parse_otlp(golden("otlp_metrics.pb"), PROTOBUF))
    buckets = [
        (s.labels["le"], s.value) for s in grouped["http_server_request_duration_seconds_bucket"]
    ]
    assert buckets == [("0.005", 2.0), ("0.1", 10.0), ("0.5", 25.0), ("+Inf", 30.0)]
    [total] = grouped["http_server_request_duration_seconds_sum"]
    [count] = grouped["http_server_request_duration_seconds_count"]
    assert (total.value, count.value) == (6.25, 30.0)
    assert total.labels["http_route"] == "/cart"
    assert total.timestamp == OTLP_TIME


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=12))
def test_any_histogram_gives_non_decreasing_buckets_ending_at_the_count(
    counts: list[int],
) -> None:
    """Property: `_bucket` values are the running sums of OTLP's counts, +Inf the total."""
    document = otlp_document()
    histogram = metrics_of(document)[5]["histogram"]["dataPoints"][0]
    histogram["bucketCounts"] = [str(count) for count in counts]
    histogram["explicitBounds"] = [0.25 * (index + 1) for index in range(len(counts) - 1)]
    histogram["count"] = str(sum(counts))
    samples = parse_otlp(json.dumps(document).encode())
    buckets = [s.value for s in samples if s.labels["__name__"].endswith("_bucket")]
    running = [float(sum(counts[: index + 1])) for index in range(len(counts) - 1)]
    assert buckets == [*running, float(sum(counts))]


def test_delta_sums_accumulate_across_requests_into_a_counter() -> None:
    """Deltas 4 and 6 read as 4, 10; the same request again continues at 14, 20."""
    deltas = DeltaAccumulator()

    def jobs() -> list[tuple[float, float]]:
        samples = parse_otlp(golden("otlp_metrics.json"), deltas=deltas)
        return [(s.timestamp, s.value) for s in by_name(samples)["jobs_processed_total"]]

    assert jobs() == [(OTLP_TIME, 4.0), (OTLP_TIME + 10, 10.0)]
    assert jobs() == [(OTLP_TIME, 14.0), (OTLP_TIME + 10, 20.0)]
    assert len(deltas) == 1


def test_delta_increments_apply_in_time_order_and_skip_nans() -> None:
    """Out-of-order deltas still make a non-decreasing counter; NaN adds nothing."""
    deltas = DeltaAccumulator()
    labels = {"__name__": "x_total"}
    totals = deltas.accumulate(
        [
            TimedSample(labels, 20.0, 5.0),
            TimedSample(labels, 10.0, 1.0),
            TimedSample(labels, 30.0, math.nan),
            TimedSample(labels, 40.0, tsdb.STALE_NAN),
        ]
    )
    assert [(s.timestamp, s.value) for s in totals[:3]] == [(10.0, 1.0), (20.0, 6.0), (30.0, 6.0)]
    assert tsdb.is_stale(totals[3].value)


def test_delta_histograms_accumulate_every_series() -> None:
    """A delta histogram's buckets, sum and count all accumulate per series."""
    document = otlp_document()
    metrics_of(document)[5]["histogram"]["aggregationTemporality"] = 1
    deltas = DeltaAccumulator()
    parse_otlp(json.dumps(document).encode(), deltas=deltas)
    grouped = by_name(parse_otlp(json.dumps(document).encode(), deltas=deltas))
    buckets = [s.value for s in grouped["http_server_request_duration_seconds_bucket"]]
    assert buckets == [4.0, 20.0, 50.0, 60.0]
    assert [s.value for s in grouped["http_server_request_duration_seconds_sum"]] == [12.5]


def test_a_point_without_a_time_is_stamped_now_or_refused() -> None:
    """A zero timeUnixNano takes the receiver's clock; with no clock it is an error."""
    document = otlp_document()
    del metrics_of(document)[0]["gauge"]["dataPoints"][0]["timeUnixNano"]
    body = json.dumps(document).encode()
    [gauge, *_] = parse_otlp(body, now=1234.5)
    assert gauge.timestamp == 1234.5
    with pytest.raises(PayloadError) as caught:
        parse_otlp(body)
    path = "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].timeUnixNano"
    assert caught.value.path == path


def test_times_are_truncated_to_milliseconds_as_prometheus_stores_them() -> None:
    """A nanosecond time keeps its milliseconds only."""
    document = otlp_document()
    metrics_of(document)[0]["gauge"]["dataPoints"][0]["timeUnixNano"] = "1767225660123999999"
    [gauge, *_] = parse_otlp(json.dumps(document).encode())
    assert gauge.timestamp == 1_767_225_660.123


def test_a_point_with_no_recorded_value_becomes_a_stale_marker() -> None:
    """Flag 1 (no recorded value) is Prometheus' staleness NaN, for every histogram series."""
    document = otlp_document()
    metrics_of(document)[0]["gauge"]["dataPoints"][0]["flags"] = 1
    metrics_of(document)[5]["histogram"]["dataPoints"][0]["flags"] = 1
    grouped = by_name(parse_otlp(json.dumps(document).encode()))
    assert tsdb.is_stale(grouped["system_memory_utilization_ratio"][0].value)
    histogram = [s for name, samples in grouped.items() if "duration" in name for s in samples]
    assert len(histogram) == 6
    assert all(tsdb.is_stale(sample.value) for sample in histogram)


def test_attribute_values_of_every_type_become_label_text() -> None:
    """Ints, doubles, booleans, arrays, maps and colliding keys become Prometheus labels."""
    document = otlp_document()
    metrics_of(document)[0]["gauge"]["dataPoints"][0]["attributes"] = [
        {"key": "count", "value": {"intValue": "42"}},
        {"key": "ratio", "value": {"doubleValue": 0.25}},
        {"key": "on", "value": {"boolValue": True}},
        {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {}]}}},
        {"key": "map", "value": {"kvlistValue": {"values": [{"key": "k", "value": {}}]}}},
        {"key": "a_b", "value": {"stringValue": "second"}},
        {"key": "a.b", "value": {"stringValue": "first"}},
        {"key": "2fa", "value": {"stringValue": "yes"}},
        {"key": "_private", "value": {"stringValue": "p"}},
        {"key": "empty", "value": {"stringValue": ""}},
        {"key": "novalue"},
    ]
    [gauge, *_] = parse_otlp(json.dumps(document).encode())
    assert gauge.labels == {
        "__name__": "system_memory_utilization_ratio",
        "job": "shop/checkout",
        "instance": "checkout-7d9f-abcde",
        "count": "42",
        "ratio": "0.25",
        "on": "true",
        "tags": '["a",null]',
        "map": '{"k":null}',
        "a_b": "first;second",
        "key_2fa": "yes",
        "key_private": "p",
    }


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("http.server.request.duration", "s", "histogram", "http_server_request_duration_seconds"),
        ("system.network.io", "By", "counter", "system_network_io_bytes_total"),
        ("requests_total", "", "counter", "requests_total"),
        ("total.requests", "{request}", "counter", "requests_total"),
        ("cpu.utilization", "1", "gauge", "cpu_utilization_ratio"),
        ("cpu.utilization", "1", "sum", "cpu_utilization"),
        ("net.throughput", "By/s", "gauge", "net_throughput_bytes_per_second"),
        ("latency_seconds", "s", "gauge", "latency_seconds"),
        ("2xx.responses", "", "sum", "_2xx_responses"),
        ("weird..name--x", "", "gauge", "weird_name_x"),
        ("queue.size", "{item}", "sum", "queue_size"),
        ("db.time", "ms", "summary", "db_time_milliseconds"),
        ("odd", "foo bar", "gauge", "odd_foo_bar"),
    ],
)
def test_metric_names_are_translated_as_prometheus_does(
    name: str, unit: str, kind: otlp_names.MetricKind, expected: str
) -> None:
    """Prometheus' OTLP name translation, suffixes included."""
    assert otlp_names.metric_name(name, unit=unit, kind=kind) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.005, "0.005"),
        (1e-05, "0.00001"),
        (1.0, "1"),
        (100.0, "100"),
        (2.5e22, "25000000000000000000000"),
        (math.inf, "+Inf"),
        (-0.5, "-0.5"),
    ],
)
def test_bounds_are_written_as_go_writes_them(value: float, text: str) -> None:
    """The `le` and `quantile` values use Go's shortest non-exponent form."""
    assert otlp_names.format_float(value) == text


M = "resourceMetrics[0].scopeMetrics[0].metrics"
OTLP_DEFECTS = [
    ("unspecified temporality", [2, "sum", "aggregationTemporality"], 0, f"{M}[2].sum"),
    ("temporality junk", [3, "sum", "aggregationTemporality"], "sometimes", f"{M}[3].sum"),
    ("bucket count mismatch", [5, "histogram", "dataPoints", 0, "bucketCounts"], ["1"], None),
    (
        "bounds decrease",
        [5, "histogram", "dataPoints", 0, "explicitBounds"],
        [1, 0.5, 2],
        f"{M}[5].histogram.dataPoints[0].explicitBounds[1]",
    ),
    ("asInt not a number", [1, "gauge", "dataPoints", 0, "asInt"], "lots", None),
    ("asDouble junk string", [0, "gauge", "dataPoints", 0, "asDouble"], "1_0", None),
    ("time not an integer", [0, "gauge", "dataPoints", 0, "timeUnixNano"], "soon", None),
    ("negative count", [6, "summary", "dataPoints", 0, "count"], "-1", None),
    ("dataPoints not a list", [0, "gauge", "dataPoints"], {}, None),
    ("attributes not a list", [0, "gauge", "dataPoints", 0, "attributes"], "x", None),
    ("attribute key missing", [0, "gauge", "dataPoints", 0, "attributes", 0, "key"], None, None),
    ("two kinds of data", [0, "sum"], {}, f"{M}[0]"),
    ("name missing", [4, "name"], None, f"{M}[4].name"),
    ("name with no letters", [4, "name"], "...", f"{M}[4].name"),
    ("isMonotonic a string", [2, "sum", "isMonotonic"], "yes", None),
]


def _apply(document: dict[str, Any], path: list[Any], value: object) -> str:
    target: Any = metrics_of(document)
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path)


@pytest.mark.parametrize(
    ("path", "value", "reported"),
    [pytest.param(path, value, reported, id=name) for name, path, value, reported in OTLP_DEFECTS],
)
def test_a_malformed_otlp_request_is_refused_naming_the_field(
    path: list[Any], value: object, reported: str | None
) -> None:
    """Each defect in the JSON form raises PayloadError with the field's JSON path."""
    document = otlp_document()
    where = M + _apply(document, path, value)
    with pytest.raises(PayloadError) as caught:
        parse_otlp(json.dumps(document).encode())
    expected = reported or where
    assert caught.value.path is not None
    assert caught.value.path in {expected, f"{expected}.aggregationTemporality"}


def test_a_protobuf_request_reports_the_same_path_as_its_json_form() -> None:
    """A semantic error in protobuf names the field as the JSON form would."""
    request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(golden("otlp_metrics.pb"))
    request.resource_metrics[0].scope_metrics[0].metrics[2].sum.aggregation_temporality = 0
    with pytest.raises(PayloadError) as caught:
        parse_otlp(request.SerializeToString(), PROTOBUF)
    assert caught.value.path == f"{M}[2].sum.aggregationTemporality"
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    with pytest.raises(PayloadError) as from_json:
        parse_otlp(json.dumps(document).encode())
    assert from_json.value.path == caught.value.path


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (golden("otlp_metrics.pb")[:-5], PROTOBUF),
        (b"\xff\xff\xff", PROTOBUF),
        (b'{"resourceMetrics": [', JSON),
        (b'{"resourceMetrics": {}}', JSON),
        (golden("otlp_metrics.json"), "text/plain"),
    ],
    ids=["truncated protobuf", "junk protobuf", "bad JSON", "wrong shape", "wrong type"],
)
def test_an_undecodable_otlp_body_is_refused(body: bytes, content_type: str) -> None:
    """Truncated protobuf, bad JSON and an unknown content type raise PayloadError."""
    with pytest.raises(PayloadError, match=r"^OTLP metrics"):
        parse_otlp(body, content_type)


def test_unknown_otlp_fields_and_skipped_kinds_change_nothing() -> None:
    """Unknown JSON members are ignored; exponential histograms and empty metrics are skipped."""
    document = otlp_document()
    expected = parse_otlp(json.dumps(document).encode())
    document["somethingNew"] = {"x": 1}
    metrics_of(document)[0]["gauge"]["dataPoints"][0]["futureField"] = [1, 2]
    metrics_of(document).append({"name": "empty.metric"})
    assert parse_otlp(json.dumps(document).encode()) == expected
    kept = copy.deepcopy(document)
    metrics_of(kept)[-1]["exponentialHistogram"] = {"dataPoints": [{"count": "3"}]}
    assert parse_otlp(json.dumps(kept).encode()) == expected
