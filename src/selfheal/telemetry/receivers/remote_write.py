"""Prometheus remote-write 1.0: a snappy-compressed `prometheus.WriteRequest` into samples.

The body is snappy's *block* format (not its framing format) around this protobuf:

    WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
                   repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }   // timestamp in milliseconds

Metadata, exemplars and native histograms are skipped like any unknown field: the TSDB
stores float samples only. A series must have a valid `__name__` and valid, distinct label
names (Prometheus' receiver rejects the same); a label with an empty value is dropped, since
Prometheus treats it as absent. Stale markers (a NaN with a special bit pattern) pass through
bit for bit.

The snappy header states the decoded length, so an oversized body is refused from its first
bytes, before anything is decompressed: a few kilobytes of snappy cannot become gigabytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import cramjam

from selfheal.telemetry.receivers import protowire
from selfheal.telemetry.receivers.payload import PayloadError, PayloadTooLarge, TimedSample, child

_T = TypeVar("_T")

SOURCE = "remote-write request"
# Prometheus sends at most `max_samples_per_send` (2,000 by default) samples per request,
# well under a megabyte decoded; 32 MiB leaves room for any sane batch.
DEFAULT_MAX_DECODED_BYTES = 32 << 20

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# Field names by number, from Prometheus' prompb/types.proto and remote.proto; `[]` marks a
# repeated field, whose elements' paths get an index. Every other number is skipped.
_WRITE_REQUEST = {1: "timeseries[]"}
_TIME_SERIES = {1: "labels[]", 2: "samples[]"}
_LABEL = {1: "name", 2: "value"}
_SAMPLE = {1: "value", 2: "timestamp"}


def parse_write_request(
    body: bytes, *, max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
) -> list[TimedSample]:
    """Decode a remote-write body into samples, in request order; all or nothing.

    Raises `PayloadTooLarge` if the decoded message would exceed `max_decoded_bytes`, and
    `PayloadError` (with a field path such as `timeseries[2].labels[0].name`) if the body
    is not valid snappy or not a valid `WriteRequest`.
    """
    message = decompress(body, max_decoded_bytes=max_decoded_bytes)
    samples: list[TimedSample] = []
    for path, field in _fields(message, path="", names=_WRITE_REQUEST):
        samples.extend(_series(_payload(field, path=path), path=path))
    return samples


def decompress(body: bytes, *, max_decoded_bytes: int) -> bytes:
    """Snappy block decoding, refusing a body whose header announces too many bytes."""
    try:
        announced, _ = protowire.decode_varint(body)
    except protowire.WireError as exc:
        raise PayloadError(
            f"the body is not snappy block data: bad length header ({exc})", source=SOURCE
        ) from exc
    if announced > max_decoded_bytes:
        raise PayloadTooLarge(
            f"the body decodes to {announced} bytes, over the limit of {max_decoded_bytes}",
            source=SOURCE,
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise PayloadError(
            f"the body is not snappy block data ({exc}); remote-write 1.0 uses snappy's "
            "block format, not its framing format",
            source=SOURCE,
        ) from exc


def _series(message: bytes, *, path: str) -> list[TimedSample]:
    labels: dict[str, str] = {}
    points: list[tuple[float, float]] = []
    for field_path, field in _fields(message, path=path, names=_TIME_SERIES):
        if field.number == 1:
            name, value = _label(_payload(field, path=field_path), path=field_path)
            if name in labels:
                raise PayloadError(
                    f"label {name!r} appears twice", source=SOURCE, path=f"{field_path}.name"
                )
            labels[name] = value
        else:
            points.append(_sample(_payload(field, path=field_path), path=field_path))
    name = labels.get("__name__", "")
    if not _METRIC_NAME.fullmatch(name):
        problem = f"invalid metric name {name!r}" if name else "the series has no __name__ label"
        raise PayloadError(problem, source=SOURCE, path=f"{path}.labels")
    kept = {key: value for key, value in labels.items() if value != ""}
    return [TimedSample(dict(kept), timestamp, value) for timestamp, value in points]


def _label(message: bytes, *, path: str) -> tuple[str, str]:
    texts = {1: "", 2: ""}
    for field_path, field in _fields(message, path=path, names=_LABEL):
        texts[field.number] = _wire(field, protowire.Field.as_text, path=field_path)
    name, value = texts[1], texts[2]
    if not _LABEL_NAME.fullmatch(name):
        problem = f"invalid label name {name!r}" if name else "the label name is empty"
        raise PayloadError(problem, source=SOURCE, path=f"{path}.name")
    return name, value


def _sample(message: bytes, *, path: str) -> tuple[float, float]:
    value = 0.0
    timestamp_ms = 0
    for field_path, field in _fields(message, path=path, names=_SAMPLE):
        if field.number == 1:
            value = _wire(field, protowire.Field.as_double, path=field_path)
        else:
            timestamp_ms = _wire(field, protowire.Field.as_int64, path=field_path)
    return timestamp_ms / 1000.0, value


def _fields(
    message: bytes, *, path: str, names: dict[int, str]
) -> list[tuple[str, protowire.Field]]:
    """A message's known fields with their paths, read whole first: all or nothing.

    A field that cannot be read is named when its tag could be (`timeseries[8]`), else the
    error names the message.
    """
    counts: dict[int, int] = {}

    def field_path(number: int) -> str:
        name = names[number]
        if name.endswith("[]"):
            name = f"{name[:-2]}[{counts.get(number, 0)}]"
        return child(path, name)

    known = []
    try:
        for field in protowire.iter_fields(message):
            if field.number in names:
                known.append((field_path(field.number), field))
                counts[field.number] = counts.get(field.number, 0) + 1
    except protowire.WireError as exc:
        where = field_path(exc.number) if exc.number in names else path
        raise PayloadError(f"malformed protobuf: {exc}", source=SOURCE, path=where) from exc
    return known


def _payload(field: protowire.Field, *, path: str) -> bytes:
    return _wire(field, protowire.Field.as_bytes, path=path)


def _wire(field: protowire.Field, read: Callable[[protowire.Field], _T], *, path: str) -> _T:
    """Read a field's value; a wrong wire type or bad UTF-8 names the field's path."""
    try:
        return read(field)
    except protowire.WireError as exc:
        raise PayloadError(f"malformed protobuf: {exc}", source=SOURCE, path=path) from exc
