"""Whether the controller can take work now: what `/readyz` answers and input is gated on.

The loop reports each tick here. A tick that failed on a temporary condition (the store
locked or out of space, a server away) makes the controller unready with that reason until
a tick goes through again; while unready the API refuses alerts with 503 and Retry-After,
so senders keep them, instead of acknowledging what could not be stored. An unexpected
error in a tick is counted and logged but does not make the controller unready: the next
tick may well succeed, and the error count is there for whoever watches.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from selfheal.domain.errors import TemporaryError
from selfheal.domain.time import Clock

# A loop this many intervals (real time at the clock's speed) behind is reported unready.
_STALLED_AFTER_INTERVALS = 30
# Real seconds a sender is asked to wait before retrying while the store fails.
RETRY_AFTER_S = 5.0


@dataclass(frozen=True, slots=True)
class Readiness:
    """`/readyz`'s answer."""

    ready: bool
    reason: str
    details: dict[str, Any]


class Health:
    """The loop's health as its ticks report it (thread-safe)."""

    def __init__(self, *, interval: float, clock: Clock) -> None:
        self._interval = interval
        self._speed = float(getattr(clock, "speed", 1.0) or 1.0)
        self._lock = threading.Lock()
        self.running = False
        self.ticks = 0
        self.last_tick: float | None = None  # monotonic
        # component -> why it cannot work now, and since when (monotonic)
        self._failures: dict[str, tuple[str, float]] = {}
        self.errors = 0
        self.last_error: str | None = None
        self.slowest_tick_s = 0.0

    @property
    def failure(self) -> str | None:
        """Why input cannot be stored now (the first failing component's reason), or None.

        The webhook's own failure counts for a retry period only: only a webhook request
        finds out that the store took writes again, and a replica reported unready for
        good would get none (a load balancer sends it nothing) and never find out.
        """
        now = time.monotonic()
        with self._lock:
            return next(
                (
                    why
                    for part, (why, since) in self._failures.items()
                    if part != "webhook" or now - since < RETRY_AFTER_S
                ),
                None,
            )

    def failing(self, reason: str, *, component: str = "loop") -> None:
        with self._lock:
            self._failures[component] = (reason, time.monotonic())

    def recovered(self, *, component: str = "loop") -> None:
        with self._lock:
            self._failures.pop(component, None)

    def tick_took(self, seconds: float) -> None:
        with self._lock:
            self.slowest_tick_s = max(self.slowest_tick_s, seconds)

    def crashed(self, error: BaseException) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = f"{type(error).__name__}: {error}"

    def check_input(self) -> None:
        """Raise TemporaryError (the API's 503) when input cannot be stored now.

        The webhook's own failure does not count here: the next request tries the store
        again, and succeeding is how it finds out the store is back.
        """
        with self._lock:
            failure = next(
                (why for part, (why, _) in self._failures.items() if part != "webhook"), None
            )
        if failure is not None:
            raise TemporaryError(f"not taking input now: {failure}", delay=RETRY_AFTER_S)

    def readiness(self) -> Readiness:
        now = time.monotonic()
        age = None if self.last_tick is None else now - self.last_tick
        details: dict[str, Any] = {
            "running": self.running,
            "ticks": self.ticks,
            "last_tick_age_s": None if age is None else round(age, 3),
            "slowest_tick_s": round(self.slowest_tick_s, 3),
            "errors": self.errors,
            "last_error": self.last_error,
        }
        stalled = self._interval * _STALLED_AFTER_INTERVALS / self._speed
        if not self.running:
            return Readiness(ready=False, reason="the loop is not running", details=details)
        failure = self.failure
        if failure is not None:
            return Readiness(ready=False, reason=failure, details=details)
        if age is not None and age > max(stalled, 5.0):
            reason = f"the loop has not ticked for {age:.0f} s"
            return Readiness(ready=False, reason=reason, details=details)
        return Readiness(ready=True, reason="ok", details=details)
