"""The clock of a state directory, for processes other than the controller that owns it.

Every record in one state is stamped on one clock: the controller's. `selfheal approve`,
`deny` and `guardrails reset` run in processes of their own, so the controller keeps the
time where they can read it, `clock.json` in the state directory:

- a controller on a scaled clock (`selfheal run` against a cluster, `clock_speed`) writes
  its anchor once: scenario time `epoch` was wall time `wall_origin`, running at `speed`;
  a restart on the same anchor continues the same time line;
- a controller on the stepped clock of an embedded run (the built-in twin) rewrites it
  as the loop steps (`elapsed` at wall time `wall`), since its pace follows the machine.

A reader extrapolates from what it finds at the nominal speed, but at most a few steps
ahead, since a stepped clock stalls when its loop does. Without a file (a controller on the
wall clock) the wall clock is the state's clock.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from selfheal.domain.errors import ConfigError
from selfheal.domain.time import ScaledClock, SteppedClock

CLOCK_FILE = "clock.json"
# How often (real seconds) a stepped clock's position is written, at most.
_WRITE_EVERY_S = 0.1
# How far past its last written position a reader extrapolates a stepped clock, in real
# seconds: a little more than the write interval, so a running loop is never read behind.
_EXTRAPOLATE_AT_MOST_S = 0.5


def anchored_clock(state_dir: Path, *, speed: float) -> ScaledClock:
    """The scaled clock of a state, anchored in `clock.json` so a restart continues it."""
    anchor_file = state_dir / CLOCK_FILE
    anchor = _read(anchor_file)
    if anchor is not None and "wall_origin" in anchor:
        previous = ScaledClock.resume(
            speed=float(anchor["speed"]),
            epoch=float(anchor["epoch"]),
            wall_origin=float(anchor["wall_origin"]),
        )
        if previous.speed == speed:
            return previous
        clock = ScaledClock.resume(speed=speed, epoch=previous.now(), wall_origin=time.time())
    elif anchor is not None and "elapsed" in anchor:
        # The state was last run embedded: carry on from where its stepped clock stood.
        epoch = float(anchor["epoch"]) + float(anchor["elapsed"])
        clock = ScaledClock.resume(speed=speed, epoch=epoch, wall_origin=time.time())
    else:
        clock = ScaledClock.resume(speed=speed, epoch=time.time(), wall_origin=time.time())
    _write(
        anchor_file,
        {"kind": "scaled", "speed": speed, "epoch": clock.epoch, "wall_origin": clock.wall_origin},
    )
    return clock


def continued_epoch(state_dir: Path) -> float:
    """Where a new embedded run's clock starts: now, or later if the state's clock is ahead.

    An embedded run at 30x leaves records stamped far ahead of the wall clock; the next run
    on the same state starts after them, so its records never precede the earlier ones.
    """
    try:
        previous = state_now(state_dir)
    except ConfigError:
        previous = 0.0
    return max(time.time(), previous)


class SteppedClockWriter:
    """Keeps `clock.json` up with a stepped clock, at most every 0.1 real seconds."""

    def __init__(self, state_dir: Path, clock: SteppedClock) -> None:
        self._file = state_dir / CLOCK_FILE
        self._clock = clock
        self._last_write = float("-inf")

    def note(self, *, force: bool = False) -> None:
        wall = time.time()
        if not force and wall - self._last_write < _WRITE_EVERY_S:
            return
        self._last_write = wall
        _write(
            self._file,
            {
                "kind": "stepped",
                "speed": self._clock.speed,
                "epoch": self._clock.epoch,
                "elapsed": self._clock.elapsed(),
                "wall": wall,
            },
        )


def state_now(state_dir: Path) -> float:
    """Now on the clock of the controller that owns `state_dir` (see the module docstring)."""
    anchor = _read(state_dir / CLOCK_FILE)
    if anchor is None:
        return time.time()
    try:
        speed = float(anchor["speed"])
        if "wall_origin" in anchor:
            return float(anchor["epoch"]) + (time.time() - float(anchor["wall_origin"])) * speed
        ahead = min(max(0.0, time.time() - float(anchor["wall"])), _EXTRAPOLATE_AT_MOST_S)
        return float(anchor["epoch"]) + float(anchor["elapsed"]) + ahead * speed
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{state_dir / CLOCK_FILE} is not a clock file: {exc}") from exc


def _read(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a clock file: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a clock file: expected a JSON object")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    temporary.replace(path)
