"""The clocks every component takes instead of reading the system time."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from selfheal.domain.time import ManualClock, ScaledClock, SteppedClock


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


def test_stepped_clock_stands_still_until_its_driver_steps_it() -> None:
    """Real time passing does not move a stepped clock; `step_to` does, never backwards."""
    clock = SteppedClock(speed=1000.0, epoch=50.0)
    time.sleep(0.02)
    assert clock.now() == 50.0
    clock.step_to(3.0)
    assert clock.elapsed() == 3.0
    clock.step_to(1.0)
    assert clock.now() == 53.0


def test_a_sleeper_on_a_stepped_clock_wakes_when_a_step_passes_its_deadline() -> None:
    """A thread sleeping 2 s of scenario time wakes at the step to 2, not before."""
    clock = SteppedClock(speed=1.0, epoch=0.0)
    woke: list[float] = []
    sleeper = threading.Thread(target=lambda: (clock.sleep_blocking(2.0), woke.append(1)))
    sleeper.start()
    clock.step_to(1.0)
    sleeper.join(timeout=0.1)
    assert woke == []
    clock.step_to(2.0)
    sleeper.join(timeout=5)
    assert woke == [1]


def test_the_driver_waits_for_a_holding_thread_until_it_sleeps() -> None:
    """A thread holding the clock keeps `wait_quiet` waiting until it sleeps on the clock."""
    clock = SteppedClock(speed=1.0, epoch=0.0)
    busy = threading.Event()
    go_on = threading.Event()

    def work() -> None:
        with clock.hold():
            busy.set()
            go_on.wait(5)
            clock.sleep_blocking(10.0)

    worker = threading.Thread(target=work)
    worker.start()
    busy.wait(5)
    assert clock.wait_quiet(timeout=0.05) is False  # still working
    go_on.set()
    assert clock.wait_quiet(timeout=5) is True  # asleep on the clock now
    clock.step_to(10.0)  # wakes it: it counts as busy again at once
    worker.join(timeout=5)
    assert clock.wait_quiet(timeout=1) is True  # done and let go


def test_a_freed_stepped_clock_follows_the_wall_clock_and_wakes_its_sleepers() -> None:
    """After `run_free`, time runs at `speed` from where it stood and sleepers wake."""
    clock = SteppedClock(speed=100.0, epoch=0.0)
    clock.step_to(5.0)
    sleeper = threading.Thread(target=clock.sleep_blocking, args=(3.0,))
    sleeper.start()
    clock.run_free()
    sleeper.join(timeout=5)
    assert not sleeper.is_alive()
    assert clock.elapsed() >= 8.0
