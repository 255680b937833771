"""SIGKILL a real `selfheal run` at each stage of a remediation, and at random moments.

A sample of `selfheal bench faults`: each trial is a world of its own (the twin behind a
fault proxy, the controller as a subprocess on its own state), restarted after the kill.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal.lab import trials

from support import assert_trial_clean


@pytest.mark.parametrize("boundary", [trials.ACKED, *trials.BOUNDARIES])
def test_a_kill_at_each_stage_of_a_remediation_loses_and_repeats_nothing(
    tmp_path: Path, boundary: str
) -> None:
    """SIGKILL once the stage is on record, restart: one scale, one incident, all settled."""
    result = trials.kill_trial(tmp_path, boundary=boundary)
    assert result.extra["boundary_reached"]
    assert_trial_clean(result)
    assert result.accounts.alerts_acked == 1
    assert result.accounts.incidents == 1


@pytest.mark.parametrize("delay", trials.random_delays(3, seed=11))
def test_a_kill_at_a_random_moment_loses_and_repeats_nothing(tmp_path: Path, delay: float) -> None:
    assert_trial_clean(trials.kill_trial(tmp_path, delay=delay))
