"""The Clock port and its implementations.

Every component takes a Clock instead of reading the system time, so one scenario clock can
be shared by the twin and the controller: a 30-minute flash sale replays in seconds at a high
speed factor, and every figure is reported in scenario seconds. Durations given to `sleep`
are scenario seconds too.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time as _time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol


class Clock(Protocol):
    """Scenario time: `now()` in seconds since the Unix epoch, `sleep` in scenario seconds."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def sleep_blocking(self, seconds: float) -> None:
        """Block the calling thread for `seconds` of scenario time (for workflow steps)."""
        ...

    def hold(self) -> AbstractContextManager[None]:
        """Mark the calling thread busy: scenario time waits for it (only a stepped clock)."""
        ...


class ScenarioClock(Clock, Protocol):
    """A clock a scenario runs on: an epoch, a nominal speed, and seconds since the epoch."""

    speed: float
    epoch: float

    def elapsed(self) -> float: ...


class SystemClock:
    """Wall-clock time, for running against a real cluster."""

    def now(self) -> float:
        return _time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def sleep_blocking(self, seconds: float) -> None:
        _time.sleep(max(0.0, seconds))

    def hold(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


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

    def hold(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


class SteppedClock:
    """Scenario time that moves only when its driver steps it: the embedded loop's clock.

    The controller's loop is the driver: it evaluates at scenario time t, waits until the
    threads holding the clock (runbook workflows, see `hold`) are all asleep on it, waits
    out the rest of `interval / speed` real seconds, and steps the clock to t + interval.
    Every scrape therefore sees the twin at exactly t, and a runbook's calls land at the
    same scenario time on every run: a slow machine stretches the wall time, never the
    scenario.

    `run_free` hands time back to the wall clock (at `speed`) from where it stands, so that
    sleepers left after the driver stops still wake.
    """

    def __init__(self, *, speed: float = 1.0, epoch: float | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.speed = speed
        self.epoch = _time.time() if epoch is None else epoch
        self._elapsed = 0.0
        self._free_since: tuple[float, float] | None = None  # (elapsed, monotonic) when freed
        self._changed = threading.Condition()
        self._busy = 0  # threads holding the clock
        self._sleeping: dict[int, float] = {}  # held threads asleep: token -> wake-up time
        self._tokens = itertools.count()
        self._held = threading.local()

    def now(self) -> float:
        return self.epoch + self.elapsed()

    def elapsed(self) -> float:
        """Scenario seconds since the clock's epoch."""
        free = self._free_since
        if free is not None:
            return free[0] + (_time.monotonic() - free[1]) * self.speed
        return self._elapsed

    def step_to(self, elapsed: float) -> None:
        """Move scenario time forward to `elapsed` seconds since the epoch (never back)."""
        with self._changed:
            if elapsed > self._elapsed:
                self._elapsed = elapsed
                # Sleepers due by now count as awake at once, before their threads run, so
                # the next `wait_quiet` waits for what they do next.
                for token, due in list(self._sleeping.items()):
                    if due <= elapsed:
                        del self._sleeping[token]
                self._changed.notify_all()

    def wait_quiet(self, *, timeout: float) -> bool:
        """Wait (real seconds) until every thread holding the clock sleeps on it; True if so.

        A thread stuck in real-time work (a slow server) delays time for `timeout` at most.
        """
        with self._changed:
            return self._changed.wait_for(
                lambda: self._busy == len(self._sleeping) or self._free_since is not None,
                timeout=timeout,
            )

    @contextlib.contextmanager
    def _holding(self) -> Iterator[None]:
        depth = getattr(self._held, "depth", 0)
        self._held.depth = depth + 1
        if depth == 0:
            with self._changed:
                self._busy += 1
        try:
            yield
        finally:
            self._held.depth = depth
            if depth == 0:
                with self._changed:
                    self._busy -= 1
                    self._changed.notify_all()

    def hold(self) -> AbstractContextManager[None]:
        """Mark the calling thread busy: the driver steps only once it sleeps or lets go."""
        return self._holding()

    def run_free(self) -> None:
        """From now on, time follows the wall clock at `speed` (the driver has stopped)."""
        with self._changed:
            if self._free_since is None:
                self._free_since = (self._elapsed, _time.monotonic())
            self._changed.notify_all()

    async def sleep(self, seconds: float) -> None:
        await asyncio.to_thread(self.sleep_blocking, seconds)

    def sleep_blocking(self, seconds: float) -> None:
        target = self.elapsed() + max(0.0, seconds)
        held = getattr(self._held, "depth", 0) > 0
        token = next(self._tokens)
        with self._changed:
            if held and self._free_since is None and self._elapsed < target:
                self._sleeping[token] = target
                self._changed.notify_all()
            while self._free_since is None and self._elapsed < target:
                self._changed.wait()
            self._sleeping.pop(token, None)
        remaining = target - self.elapsed()
        if remaining > 0:  # freed while sleeping: the rest passes at the wall clock's pace
            _time.sleep(remaining / self.speed)


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

    def hold(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()
