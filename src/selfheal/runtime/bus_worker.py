"""From the bus to the store: the worker that takes NATS messages into the durable inbox.

With a bus, a replica's webhook publishes each request's alerts to JetStream and answers
once JetStream has stored them; this worker, on every replica, fetches messages, writes
their alerts to the shared inbox (which deduplicates each alert by content) in one
transaction, and only then acknowledges them. A replica that dies in between leaves its
messages to be delivered again, to another replica: the inbox's dedup makes that harmless.
When the inbox is full, nothing is acknowledged and the worker pauses: the bus holds the
alerts meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from selfheal.dispatch import AlertBus, BusMessage
from selfheal.domain.errors import SelfhealError
from selfheal.domain.model import Alert
from selfheal.domain.time import Clock
from selfheal.runtime.alert_intake import AlertIntake
from selfheal.runtime.intake_worker import IntakeWorker
from selfheal.store import audit, inbox

_log = logging.getLogger(__name__)

# Messages fetched at once, and how long a fetch waits for any (real seconds).
_BATCH = 100
_WAIT_S = 1.0
# How long the worker pauses after a failure (a full inbox, the bus away).
_AFTER_FAILURE_S = 1.0


def encode(alerts: Sequence[Alert], urgent: Sequence[bool]) -> tuple[bytes, str]:
    """A webhook request's alerts as one bus message, and its content key (the msg id)."""
    document = {
        "alerts": [inbox.alert_document(alert) for alert in alerts],
        "urgent": list(urgent),
    }
    body = audit.canonical_json(document).encode("utf-8")
    return body, hashlib.sha256(body).hexdigest()


def decode(message: BusMessage) -> tuple[list[Alert], list[bool]]:
    document: dict[str, Any] = json.loads(message.body)
    alerts = [inbox.alert_of(item) for item in document["alerts"]]
    return alerts, [bool(flag) for flag in document.get("urgent", [False] * len(alerts))]


class BusWorker:
    """Moves messages from the bus into the inbox, acknowledging only what is stored."""

    def __init__(
        self,
        *,
        bus: AlertBus,
        alerts: AlertIntake,
        intake: IntakeWorker,
        clock: Clock,
        on_failure: Callable[[BaseException], None],
        on_success: Callable[[], None],
    ) -> None:
        self._bus = bus
        self._alerts = alerts
        self._intake = intake
        self._clock = clock
        self._on_failure = on_failure
        self._on_success = on_success
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._work, name="selfheal-bus", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, timeout: float) -> None:
        """Stop fetching; a batch in hand is stored and acknowledged first."""
        self._stopping.set()
        self._thread.join(timeout=timeout)

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                taken = self._bus.consume(self._store, batch=_BATCH, wait=_WAIT_S)
            except SelfhealError as exc:
                self._on_failure(exc)
                _log.warning("taking alerts from the bus failed (%s); trying again", exc)
                self._stopping.wait(_AFTER_FAILURE_S)
                continue
            self._on_success()
            if taken:
                self._intake.wake()

    def _store(self, messages: Sequence[BusMessage]) -> None:
        alerts: list[Alert] = []
        urgent: list[bool] = []
        for message in messages:
            try:
                found, flags = decode(message)
            except (ValueError, KeyError, TypeError) as exc:
                # Only our own API publishes here; a message we cannot read is dropped
                # with a loud log rather than blocking the stream for ever.
                _log.error("dropping an unreadable bus message %s: %s", message.key, exc)
                continue
            alerts += found
            urgent += flags
        self._alerts.store_received(alerts, urgent=urgent, at=self._clock.now())
