"""The closed loop end to end, as a user runs it: `selfheal demo --json` in a subprocess.

Each scenario runs once per module (about 30 s of wall time at 20x) and several tests read
its report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support import demo_report

# 20 scenario seconds per real second: a 10-minute scenario in about 30 s, with 50 ms of
# real time (a slow fsync, a busy CI core) costing only 1 scenario second of the budgets.
SPEED = "20"


def demo(*args: str, speed: str = SPEED) -> dict[str, Any]:
    return demo_report("--speed", speed, *args, timeout=200)


def remediated(report: dict[str, Any]) -> dict[str, Any]:
    """The incident whose remediation ran: the first signal of the trouble.

    That is the throttling rule or an anomaly watch, depending on when the controller's
    first scrape lands; the other incidents of the same target wait for it.
    """
    found = [item for item in report["incidents"] if item["replicas_before"] is not None]
    assert len(found) == 1, report["incidents"]
    return found[0]


@pytest.fixture(scope="module")
def flash_sale() -> dict[str, Any]:
    # The 8 s from detection to action is mostly the controller's own work (policy, guardrail
    # facts, workflow start, two steps), about 0.3 s of real time; at 20x a busy CI core
    # stretched it past 8 scenario seconds once. At 10x the budget is 0.8 s of real time.
    # Seven scenario minutes hold the surge, the fix and more than 300 s of baseline breach.
    return demo("--scenario", "flash-sale", "--duration", "7m", speed="10")


@pytest.fixture(scope="module")
def contention() -> dict[str, Any]:
    return demo("--scenario", "flash-sale-contention")


def test_flash_sale_is_detected_within_15_seconds_and_acted_on_within_8(
    flash_sale: dict[str, Any],
) -> None:
    """Throttling is detected within 15 s of its onset and scaled within 8 s of detection."""
    throttling = remediated(flash_sale)
    assert throttling["onset_s"] is not None
    assert throttling["detected_s"] - throttling["onset_s"] <= 15
    assert throttling["decided_s"] >= throttling["detected_s"]
    assert throttling["action_s"] - throttling["detected_s"] <= 8


def test_flash_sale_scales_two_to_five_and_verifies_the_slo(flash_sale: dict[str, Any]) -> None:
    """Order-service goes from 2 to 5 replicas, and verification sees p95 within 200 ms."""
    throttling = remediated(flash_sale)
    assert (throttling["replicas_before"], throttling["replicas_after"]) == (2, 5)
    assert throttling["verified"] is True
    assert throttling["verified_s"] > throttling["action_s"]
    assert throttling["p95_ms_after"] <= 200
    assert throttling["rolled_back"] is False
    assert throttling["escalated"] is False
    assert throttling["notifications"] == []


def test_flash_sale_breach_is_far_shorter_than_the_baseline(flash_sale: dict[str, Any]) -> None:
    """With selfheal the SLO is breached for a small fraction of the baseline's breach."""
    assert flash_sale["baseline_slo_violation_s"] > 300
    assert flash_sale["slo_violation_s"] < flash_sale["baseline_slo_violation_s"] / 5
    assert flash_sale["audit_chain_ok"] is True
    assert flash_sale["wall_s"] > 0  # reported; the 90 s goal is a benchmark, not a test


def test_flash_sale_changes_the_cluster_exactly_once(flash_sale: dict[str, Any]) -> None:
    """The twin saw one change in the whole run: the scale of order-service."""
    changes = [(c["method"], c["path"]) for c in flash_sale["twin_changes"]]
    assert changes == [
        ("PATCH", "/apis/apps/v1/namespaces/production/deployments/order-service/scale")
    ]


def test_contention_fails_verification_rolls_back_and_pages(contention: dict[str, Any]) -> None:
    """Scaling that starves catalog fails verification: rolled back to 2, paged, escalated."""
    throttling = remediated(contention)
    assert throttling["verified"] is False
    assert throttling["rolled_back"] is True
    assert (throttling["replicas_before"], throttling["replicas_after"]) == (2, 2)
    assert throttling["escalated"] is True
    assert any(n["channel"] == "on-call" for n in throttling["notifications"])
    paths = [c["path"] for c in contention["twin_changes"]]
    assert len(paths) == 2  # the scale up and the rollback
    assert contention["audit_chain_ok"] is True


def test_shadow_mode_decides_records_what_it_would_do_and_never_acts() -> None:
    """`--mode shadow` on the flash sale: no change reaches the cluster, the plan is recorded."""
    # Four scenario minutes hold the surge and the decision that shadow mode withholds.
    shadow = demo("--scenario", "flash-sale", "--mode", "shadow", "--duration", "4m")
    assert shadow["mode"] == "shadow"
    assert shadow["actions_taken"] == 0
    assert shadow["twin_changes"] == []
    assert shadow["would_have"], shadow
    first = shadow["would_have"][0]
    assert first["runbook"] == "scale-up"
    assert first["params"]["deployment"] == "order-service"
    assert first["params"]["replicas"] == 5
    assert first["mode"] == "shadow"
    assert all(item["replicas_after"] is None for item in shadow["incidents"])
    # Without remediation the SLO is breached about as long as in the baseline.
    assert shadow["slo_violation_s"] > shadow["baseline_slo_violation_s"] * 0.8
    assert shadow["audit_chain_ok"] is True


STEADY_AT_PEAK = """\
name: steady-at-peak
description: Normal traffic around the daily peak, with noise; no fault.
duration: 10m
seed: 11
load:
  base_rps: 200
  diurnal_amplitude: 0.3
  peak_at: 5m
  noise: 0.05
"""


def test_steady_load_raises_no_incident_and_takes_no_action(tmp_path: Path) -> None:
    """Ten minutes around the busiest hour of a normal day: no incident, no change."""
    scenario = tmp_path / "steady-at-peak.yaml"
    scenario.write_text(STEADY_AT_PEAK, encoding="utf-8")
    report = demo("--scenario", str(scenario))
    assert report["incidents"] == []
    assert report["twin_changes"] == []
    assert report["slo_violation_s"] == 0
