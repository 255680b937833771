r"""Alertmanager's webhook (payload version 4) into domain alerts.

Alertmanager 0.25 posts one notification per alert group:

    {"version": "4", "groupKey": "{}:{alertname=\\"X\\"}", "truncatedAlerts": 0,
     "status": "firing", "receiver": "selfheal", "groupLabels": {...}, "commonLabels": {...},
     "commonAnnotations": {...}, "externalURL": "http://am:9093",
     "alerts": [{"status": "firing", "labels": {...}, "annotations": {...},
                 "startsAt": "2026-01-01T12:00:00.123Z", "endsAt": "0001-01-01T00:00:00Z",
                 "generatorURL": "...", "fingerprint": "c0ffee..."}]}

Each element of `alerts` becomes an `Alert` with `source="alertmanager"`. The payload has no
sample value, so `value` is NaN; it has no separate activation time either, so `active_at`
and `fired_at` are both `startsAt` (when the rule fired, `for` already elapsed). `endsAt` is
Go's zero time while an alert fires (Alertmanager hides a projected end) and becomes
`resolved_at` once it resolves.

Validation is strict where a value is used and lenient where Alertmanager's output varies
between versions: the fields selfheal reads are required and type-checked, the descriptive
ones (`groupLabels`, `externalURL`, `generatorURL`, ...) default to empty when absent.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from selfheal.domain.model import Alert, AlertState
from selfheal.telemetry.receivers.payload import JsonObject, load_json

SOURCE = "alertmanager webhook"
SUPPORTED_VERSION = "4"

# RFC 3339 as Go's time.Time marshals it: up to nine fractional digits, `Z` or an offset.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
# Go's zero `time.Time`, which Alertmanager sends for an unknown end.
_GO_ZERO_YEAR = 1
_STATES = {"firing": AlertState.FIRING, "resolved": AlertState.RESOLVED}


@dataclass(frozen=True, slots=True)
class WebhookBatch:
    """One webhook notification: an alert group's alerts and where they came from.

    `fingerprints[i]` and `generator_urls[i]` belong to `alerts[i]`; Alertmanager's
    fingerprint identifies the label set and is kept for correlation with its API and UI.
    """

    version: str
    group_key: str
    status: AlertState
    receiver: str
    alerts: tuple[Alert, ...]
    fingerprints: tuple[str, ...]
    generator_urls: tuple[str, ...]
    truncated_alerts: int = 0
    group_labels: Mapping[str, str] = field(default_factory=dict)
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""

    def __post_init__(self) -> None:
        if not len(self.alerts) == len(self.fingerprints) == len(self.generator_urls):
            raise ValueError("alerts, fingerprints and generator_urls must be parallel")


def parse_webhook(body: bytes) -> WebhookBatch:
    """Parse an Alertmanager webhook body; raises `PayloadError` naming the bad field."""
    root = JsonObject.root(load_json(body, source=SOURCE), source=SOURCE)
    version = root.string("version")
    if version != SUPPORTED_VERSION:
        raise root.error(
            "version", f"unsupported webhook version {version!r}; Alertmanager sends '4'"
        )
    truncated = root.integer("truncatedAlerts", default=0)
    if truncated < 0:
        raise root.error("truncatedAlerts", "must not be negative")
    if not root.has("alerts"):
        raise root.error("alerts", "is required")
    alerts: list[Alert] = []
    fingerprints: list[str] = []
    generator_urls: list[str] = []
    for item in root.objects("alerts"):
        alerts.append(_alert(item))
        fingerprints.append(item.string("fingerprint"))
        generator_urls.append(item.string("generatorURL", default=""))
    return WebhookBatch(
        version=version,
        group_key=root.string("groupKey"),
        status=_state(root, "status"),
        receiver=root.string("receiver"),
        alerts=tuple(alerts),
        fingerprints=tuple(fingerprints),
        generator_urls=tuple(generator_urls),
        truncated_alerts=truncated,
        group_labels=root.string_map("groupLabels", required=False),
        common_labels=root.string_map("commonLabels", required=False),
        common_annotations=root.string_map("commonAnnotations", required=False),
        external_url=root.string("externalURL", default=""),
    )


def _alert(item: JsonObject) -> Alert:
    state = _state(item, "status")
    labels = item.string_map("labels")
    name = labels.get("alertname", "")
    if not name:
        raise item.obj("labels").error("alertname", "every alert needs a non-empty alertname")
    starts_at = _time(item, "startsAt")
    if starts_at is None:
        raise item.error("startsAt", "must be a real time, not Go's zero time")
    ends_at = _time(item, "endsAt") if item.has("endsAt") else None
    if state is AlertState.RESOLVED and ends_at is None:
        raise item.error("endsAt", "a resolved alert must say when it ended")
    return Alert(
        name=name,
        labels=labels,
        annotations=item.string_map("annotations", required=False),
        state=state,
        value=math.nan,
        active_at=starts_at,
        fired_at=starts_at,
        resolved_at=ends_at if state is AlertState.RESOLVED else None,
        source="alertmanager",
    )


def _state(item: JsonObject, key: str) -> AlertState:
    text = item.string(key)
    state = _STATES.get(text)
    if state is None:
        raise item.error(key, f"expected 'firing' or 'resolved', got {text!r}")
    return state


def _time(item: JsonObject, key: str) -> float | None:
    """An RFC 3339 time as Unix seconds; None for Go's zero time (no time known)."""
    text = item.string(key)
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise item.error(key, f"expected an RFC 3339 time, got {text!r}")
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    if year == _GO_ZERO_YEAR:
        return None
    try:
        moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError as exc:
        raise item.error(key, f"{text!r} is not a valid date and time: {exc}") from exc
    offset = 0
    if match.group(9):
        sign = -1 if match.group(9) == "-" else 1
        offset = sign * (int(match.group(10)) * 3600 + int(match.group(11)) * 60)
    fraction = float(match.group(7)) if match.group(7) else 0.0
    return moment.timestamp() - offset + fraction
