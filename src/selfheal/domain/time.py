"""The Clock port and its implementations.

Every component takes a Clock instead of reading the system time, so one scenario clock can
be shared by the twin and the controller: a 30-minute flash sale replays in seconds at a high
speed factor, and every figure is reported in scenario seconds. Durations given to `sleep`
are scenario seconds too.
"""

from __future__ import annotations

import asyncio
import time as _time
from typing import Protocol


class Clock(Protocol):
    """Scenario time: `now()` in seconds since the Unix epoch, `sleep` in scenario seconds."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def sleep_blocking(self, seconds: float) -> None:
        """Block the calling thread for `seconds` of scenario time (for workflow steps)."""
        ...


class SystemClock:
    """Wall-clock time, for running against a real cluster."""

    def now(self) -> float:
        return _time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def sleep_blocking(self, seconds: float) -> None:
        _time.sleep(max(0.0, seconds))


class ScaledClock:
    """Scenario time running `speed` times faster than the wall clock.

    Scenario time starts at `epoch` (default: the wall time at creation) and advances by
    `speed` scenario seconds per real second. It is safe to share across threads because it
    only reads a monotonic counter.
    """

    def __init__(
        self, *, speed: float = 1.0, epoch: float | None = None, wall_origin: float | None = None
    ) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.speed = speed
        self.epoch = _time.time() if epoch is None else epoch
        # With a wall origin the clock is anchored to wall time, so a process restarted on
        # the same anchor (see `resume`) continues the same scenario time line; without one
        # it counts from its creation on the monotonic clock.
        self._wall_origin = wall_origin
        self._start = _time.monotonic()

    @classmethod
    def resume(cls, *, speed: float, epoch: float, wall_origin: float) -> ScaledClock:
        """A clock on which scenario time `epoch` was wall time `wall_origin`."""
        return cls(speed=speed, epoch=epoch, wall_origin=wall_origin)

    @property
    def wall_origin(self) -> float:
        if self._wall_origin is not None:
            return self._wall_origin
        return _time.time() - (_time.monotonic() - self._start)

    def now(self) -> float:
        return self.epoch + self.elapsed()

    def elapsed(self) -> float:
        """Scenario seconds since the clock's epoch."""
        if self._wall_origin is not None:
            return (_time.time() - self._wall_origin) * self.speed
        return (_time.monotonic() - self._start) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def sleep_blocking(self, seconds: float) -> None:
        _time.sleep(max(0.0, seconds) / self.speed)


class ManualClock:
    """A clock that moves only when told to, for deterministic tests.

    `sleep` advances the clock by the requested amount and yields once, so code that sleeps
    in a loop makes progress without waiting for real time.
    """

    def __init__(self, *, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a manual clock cannot go backwards")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def sleep_blocking(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
