"""The report of a run: the figures later issues compare remediation against."""

from __future__ import annotations

from typing import Any

from selfheal.twin.simulation import Simulation


def summarize(simulation: Simulation) -> dict[str, Any]:
    """One JSON-ready object: the SLO service's figures first, then every service's."""
    slo = simulation.scenario.slo
    target = simulation.totals[slo.service]
    return {
        "scenario": simulation.scenario.name,
        "duration_s": simulation.elapsed,
        "slo": {"service": slo.service, "p95_latency_s": slo.p95_latency},
        "slo_violation_s": target.slo_violation_s,
        "error_ratio": _ratio(target.errors, target.requests),
        "peak_p95_s": round(target.max_p95, 4),
        "peak_throttling": round(simulation.peak_throttling, 4),
        "peak_throttling_pod": simulation.peak_throttling_pod,
        "services": {
            name: {
                "requests": round(totals.requests),
                "error_ratio": _ratio(totals.errors, totals.requests),
                "peak_p95_s": round(totals.max_p95, 4),
                "slo_violation_s": totals.slo_violation_s,
            }
            for name, totals in simulation.totals.items()
        },
    }


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 6) if whole else 0.0
