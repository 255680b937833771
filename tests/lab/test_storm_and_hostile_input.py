"""An alert storm, hostile requests, a flood past the inbox's bound and a SIGTERM mid-flood."""

from __future__ import annotations

from pathlib import Path

from selfheal.lab import trials

from support import assert_trial_clean


def test_a_storm_is_all_decided_and_the_real_incident_still_acted_on(tmp_path: Path) -> None:
    """Two thousand junk incidents and one real one: every alert accounted, the fix made."""
    result = trials.storm_trial(tmp_path, junk=2000)
    assert_trial_clean(result)
    assert result.accounts.alerts_acked == 2001
    assert result.extra["storm_decided"] == 2001
    assert result.extra["real_incident_act_s_during_storm"] is not None


def test_hostile_requests_a_flood_and_a_sigterm_lose_nothing_and_crash_nothing(
    tmp_path: Path,
) -> None:
    """Bad requests get 4xx, a flood past the bound is retried not lost, SIGTERM is clean.

    The restart after the SIGTERM takes every alert that was acknowledged before it.
    """
    result = trials.hostile_trial(tmp_path, flood=5000)
    assert_trial_clean(result)
    answers = result.extra["answers"]
    assert all(400 <= status < 500 for status in answers.values()), answers
    assert result.extra["sigterm_exit_code"] == 0
    assert result.extra["given_up"] == 0
    assert result.accounts.alerts_acked == 5001
