"""`selfheal bench faults`: the fault harness's whole run, and its one-object report.

Kill trials go round the stage boundaries (right after the webhook's answer, then each
audited stage of a remediation), then at seeded random moments; after them one alert storm,
one round of hostile input with a flood and a SIGTERM in the middle, each Kubernetes API
fault, and a full disk where the machine allows a tmpfs. The report sums the counts that
must all be zero and gives the storm's figures (docs/reliability.md).
"""

from __future__ import annotations

import concurrent.futures
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from selfheal.lab import trials

COUNTS = ("alerts_lost", "duplicate_writes", "stuck_incidents", "false_notifications")


def plan_kill_trials(count: int) -> list[dict[str, Any]]:
    """`count` kill trials: rounds of every boundary in turn, then seeded random moments.

    About half the trials go to the boundaries (at least one round), the rest to random
    moments, which find what no boundary was named for.
    """
    boundaries = [trials.ACKED, *trials.BOUNDARIES]
    rounds = max(1, count // (2 * len(boundaries)))
    at_boundaries = min(count, rounds * len(boundaries))
    planned: list[dict[str, Any]] = [
        {"boundary": boundaries[index % len(boundaries)]} for index in range(at_boundaries)
    ]
    planned += [{"delay": delay} for delay in trials.random_delays(count - at_boundaries)]
    return planned


def run(
    *,
    kill_trials: int = 200,
    storm: int = 5000,
    flood: int = 100_000,
    parallel: int = 2,
    directory: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every trial; return the report (see the module docstring)."""
    root = directory or Path(tempfile.mkdtemp(prefix="selfheal-faults-"))
    tell = progress or (lambda _text: None)
    began = time.monotonic()
    results: list[trials.TrialResult] = []

    def kill(index: int, spec: dict[str, Any]) -> trials.TrialResult:
        result = trials.kill_trial(root / f"kill-{index:03d}", **spec)
        tell(f"kill {index + 1}/{kill_trials} ({result.detail}): {_verdict(result)}")
        return result

    with concurrent.futures.ThreadPoolExecutor(max(1, parallel)) as pool:
        futures = [
            pool.submit(kill, index, spec)
            for index, spec in enumerate(plan_kill_trials(kill_trials))
        ]
        results += [future.result() for future in futures]
    storm_result = trials.storm_trial(root / "storm", junk=storm)
    tell(f"storm: {storm_result.extra}")
    results.append(storm_result)
    hostile = trials.hostile_trial(root / "hostile", flood=flood)
    tell(f"hostile: {_verdict(hostile)} {hostile.extra}")
    results.append(hostile)
    for fault in trials.API_FAULTS:
        result = trials.api_fault_trial(root / f"api-{fault}", fault=fault)
        tell(f"api fault {fault}: {_verdict(result)}")
        results.append(result)
    disk = trials.disk_full_trial(root / "disk")
    if disk is not None:
        tell(f"disk full: {_verdict(disk)} {disk.extra}")
        results.append(disk)
    return report(results, wall_s=time.monotonic() - began, disk_full_tried=disk is not None)


def report(
    results: list[trials.TrialResult], *, wall_s: float, disk_full_tried: bool
) -> dict[str, Any]:
    """The summed counts, the storm's figures, and every trial's own line."""
    summed = {name: sum(getattr(r.accounts, name) for r in results) for name in COUNTS}
    storm = next((r for r in results if r.kind == "storm"), None)
    hostile = next((r for r in results if r.kind == "hostile"), None)
    return {
        "trials": len(results),
        "kill_trials": sum(1 for r in results if r.kind == "kill"),
        "alerts_acked": sum(r.accounts.alerts_acked for r in results),
        **summed,
        "controller_crashes": sum(r.controller_crashes for r in results),
        "storm_incidents": None if storm is None else storm.extra["storm_incidents"],
        "storm_decide_s": None if storm is None else storm.extra["storm_decide_s"],
        "real_incident_act_s_during_storm": None
        if storm is None
        else storm.extra["real_incident_act_s_during_storm"],
        "max_tick_gap_s_during_storm": None if storm is None else storm.extra["max_tick_gap_s"],
        "sigterm_stop_s": None if hostile is None else hostile.extra["sigterm_stop_s"],
        "disk_full_tried": disk_full_tried,
        "wall_s": round(wall_s, 1),
        "results": [
            {
                "kind": r.kind,
                "detail": r.detail,
                **asdict(r.accounts),
                "controller_crashes": r.controller_crashes,
                **r.extra,
            }
            for r in results
        ],
    }


def _verdict(result: trials.TrialResult) -> str:
    bad = {name: getattr(result.accounts, name) for name in COUNTS}
    bad["controller_crashes"] = result.controller_crashes
    failing = {name: value for name, value in bad.items() if value}
    return "ok" if not failing else f"FAILED {failing} {list(result.accounts.notes)}"
