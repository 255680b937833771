"""The anomaly watches on the twin: quiet for a whole normal day, quick on a flash sale.

`selfheal simulate --detect` replays a scenario through the example config's watches (the
default detector config) as fast as it computes. The two day-long runs take a few minutes
of CPU each, so they run side by side in two processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest


def start(scenario: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "selfheal", "simulate", "--detect", "--json", "-s", scenario],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=1700)
    assert process.returncode == 0, stderr
    report: dict[str, Any] = json.loads(stdout)
    return report


@pytest.fixture(scope="module")
def normal_days() -> dict[str, dict[str, Any]]:
    running = {name: start(name) for name in ("steady", "noisy-day")}
    return {name: finish(process) for name, process in running.items()}


# A whole scenario day replayed through the watches is a benchmark-sized run: the slow set.
@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["steady", "noisy-day"])
def test_a_whole_normal_day_raises_no_incident(
    normal_days: dict[str, dict[str, Any]], scenario: str
) -> None:
    """A scenario day of normal (and of rough, noisy) traffic opens no incident."""
    report = normal_days[scenario]
    assert report["duration_s"] == 86_400
    # Every watch scored a sample every 5 s all day: the detectors really ran.
    assert report["samples_scored"] >= 3 * 86_400 // 5 - 3 * 10
    assert report["incidents"] == []
    assert report["onset_s"] is None
    assert report["peak_signal_confidence"] < 0.8


def test_the_flash_sale_is_detected_within_15_seconds_of_onset() -> None:
    """The same watches open an incident on the flash sale, with corroborating evidence."""
    report = finish(start("flash-sale"))
    assert report["onset_s"] is not None
    assert report["detected_after_onset_s"] is not None
    assert report["detected_after_onset_s"] <= 15
    first = report["incidents"][0]
    assert first["confidence"] >= 0.8
    assert len(first["evidence"]) >= 2  # more than one metric of order-service agreed
