"""Receivers: what other tools push to selfheal, parsed into domain values.

Pure functions from a request body to values, with no I/O, so the HTTP layer (`selfheal.api`)
stays thin and every format is tested on its own bytes:

- `alertmanager.parse_webhook`: Alertmanager's webhook (version 4) -> `WebhookBatch` of alerts;
- `otlp.parse_metrics`: OTLP/HTTP metrics (protobuf or JSON) -> `TimedSample`s;
- `remote_write.parse_write_request`: Prometheus remote-write 1.0 -> `TimedSample`s.

Each parser reads the whole body before returning, and raises `PayloadError` (a
`ConfigError` whose location names the JSON or protobuf field path) instead of returning
part of a batch. `PayloadTooLarge` is the one for a body that decodes to too many bytes.
"""

from selfheal.telemetry.receivers import (
    alertmanager,
    otlp,
    otlp_names,
    payload,
    protowire,
    remote_write,
)
from selfheal.telemetry.receivers.alertmanager import WebhookBatch
from selfheal.telemetry.receivers.otlp import DeltaAccumulator
from selfheal.telemetry.receivers.payload import PayloadError, PayloadTooLarge, TimedSample

__all__ = [
    "DeltaAccumulator",
    "PayloadError",
    "PayloadTooLarge",
    "TimedSample",
    "WebhookBatch",
    "alertmanager",
    "otlp",
    "otlp_names",
    "payload",
    "protowire",
    "remote_write",
]
