"""Taking webhook alerts off the loop: a worker that turns the inbox into incidents.

The webhook stores alerts in the durable inbox and wakes this worker, which takes them in
arrival order, in slices (one transaction each: the incidents and the processed marks), and
hands the incidents that need a decision to the decision worker. The loop never does this
work itself, so a flood of alerts never pauses scraping or rule evaluation; and a slice is
short, so the webhook waiting for the same write lock still answers quickly.

A failure (the store locked or full) is reported and the worker pauses a moment before it
tries again: the alerts wait in the inbox, nothing is lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from selfheal.domain.time import Clock
from selfheal.runtime.alert_intake import AlertIntake
from selfheal.runtime.decision_worker import DecisionWorker

_log = logging.getLogger(__name__)

# Alerts taken per pass: one transaction per slice of these (AlertIntake slices them).
TAKE = 1000
# How long (real seconds) the worker waits for news before looking at the inbox anyway.
_IDLE_S = 0.2
# How long (real seconds) it pauses after a failure before trying again.
_AFTER_FAILURE_S = 1.0


class IntakeWorker:
    """Moves alerts from the inbox into incidents in a thread of its own."""

    def __init__(
        self,
        *,
        alerts: AlertIntake,
        decisions: DecisionWorker,
        clock: Clock,
        on_failure: Callable[[BaseException], None],
        on_success: Callable[[], None],
    ) -> None:
        self._alerts = alerts
        self._decisions = decisions
        self._clock = clock
        self._on_failure = on_failure
        self._on_success = on_success
        self._news = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._thread = threading.Thread(target=self._work, name="selfheal-intake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Alerts arrived: look at the inbox now."""
        self._news.set()

    def wait_idle(self, *, timeout: float) -> bool:
        """Wait (real seconds) until the inbox is empty and nothing is being taken."""
        with self._idle:
            return self._idle.wait_for(
                lambda: not self._busy and not self._news.is_set(), timeout=timeout
            )

    def stop(self, *, timeout: float) -> None:
        """Finish the slice in hand and stop; the rest waits in the inbox for the next start."""
        self._stopping.set()
        self._news.set()
        self._thread.join(timeout=timeout)

    def _work(self) -> None:
        while not self._stopping.is_set():
            self._news.wait(timeout=_IDLE_S)
            with self._idle:
                self._busy = True
                self._news.clear()
            try:
                with self._clock.hold():
                    opened = self._alerts.take_from_inbox(at=self._clock.now(), limit=TAKE)
                self._decisions.submit(opened)
                if opened or self._alerts.last_take:
                    self._news.set()  # there may be more: take again at once
                self._on_success()
            except Exception as exc:  # noqa: BLE001 - the alerts wait in the inbox
                self._on_failure(exc)
                _log.warning("taking alerts from the inbox failed (%s); trying again", exc)
                self._stopping.wait(_AFTER_FAILURE_S)
                self._news.set()
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()
