"""The clocks every component takes instead of reading the system time."""

from __future__ import annotations

import asyncio
import time

import pytest

from selfheal.domain.time import ManualClock, ScaledClock


def test_manual_clock_moves_only_when_told() -> None:
    """A manual clock stands still until advanced, and sleeping advances it."""
    clock = ManualClock(start=100.0)
    assert clock.now() == 100.0
    clock.advance(2.5)
    assert clock.now() == 102.5
    asyncio.run(clock.sleep(10))
    assert clock.now() == 112.5
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


def test_scaled_clock_runs_speed_times_faster_than_wall_time() -> None:
    """At speed 100, a tenth of a real second is about ten scenario seconds."""
    clock = ScaledClock(speed=100.0, epoch=0.0)
    real_start = time.monotonic()
    time.sleep(0.1)
    real = time.monotonic() - real_start
    assert clock.elapsed() == pytest.approx(real * 100, rel=0.2)
    assert clock.now() == pytest.approx(clock.elapsed(), abs=1.0)  # epoch 0: now is elapsed


def test_scaled_clock_sleeps_in_scenario_seconds() -> None:
    """Sleeping 20 scenario seconds at speed 200 takes about 0.1 real seconds."""
    clock = ScaledClock(speed=200.0)
    before = clock.elapsed()
    asyncio.run(clock.sleep(20))
    assert clock.elapsed() - before >= 20


def test_scaled_clock_refuses_a_non_positive_speed() -> None:
    """Speed zero would freeze time; it is refused."""
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(speed=0)
