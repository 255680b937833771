"""The Kubernetes API failing under a remediation, and a state on a disk that fills up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from selfheal.lab import trials

from support import assert_trial_clean


@pytest.mark.parametrize("fault", ["scale-500", "scale-409", "scale-reset"])
def test_a_scale_the_api_keeps_refusing_is_compensated_refunded_and_paged_truthfully(
    tmp_path: Path, fault: str
) -> None:
    """Nothing changed: the budget is given back, on-call hears what is true, escalated."""
    result = trials.api_fault_trial(tmp_path, fault=fault)
    assert_trial_clean(result)
    assert result.extra["incident_states"] == ["escalated"]
    assert result.extra["budget_spent"] == 0.0
    [page, *_] = [p for p in result.extra["pages"] if "scale-up of" in p]
    assert "failed at step scale" in page
    assert "has 2 replicas desired" in page


def test_an_api_that_fails_now_and_then_during_the_wait_does_not_fail_the_fix(
    tmp_path: Path,
) -> None:
    result = trials.api_fault_trial(tmp_path, fault="wait-flaky")
    assert_trial_clean(result)
    assert result.extra["incident_states"] == ["verified"]
    assert result.extra["faults_injected"] == 3


def test_a_read_that_hangs_past_the_clients_timeout_is_survived(tmp_path: Path) -> None:
    result = trials.api_fault_trial(tmp_path, fault="read-timeout")
    assert_trial_clean(result)
    assert result.extra["incident_states"][0] in {"verified", "escalated"}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs for the state needs root")
def test_a_full_disk_refuses_input_then_resumes_with_nothing_lost(tmp_path: Path) -> None:
    result = trials.disk_full_trial(tmp_path)
    if result is None:
        pytest.skip("this machine does not allow mounting a tmpfs")
    assert_trial_clean(result)
    assert result.extra["unready_while_full"]
    assert result.extra["refused_while_full"] > 0
