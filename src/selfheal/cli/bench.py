"""`selfheal bench`: speed figures of the closed loop and its stages, measured here.

Benchmarks measure; tests do not time anything. The figures go to BENCHMARKS.md with the
command and the machine.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from selfheal.cli import loop
from selfheal.decision import policy
from selfheal.detection import registry
from selfheal.runtime.settings import load_settings
from selfheal.telemetry import TSDB, rules
from selfheal.telemetry.scrape import Target, parse_exposition
from selfheal.twin import exposition, scenario
from selfheal.twin.simulation import Simulation


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def bench_loop(
    config: Path | None, *, scenarios: tuple[str, ...] = ("flash-sale", "flash-sale-contention")
) -> list[dict[str, Any]]:
    """The demo scenarios end to end: wall time and the stage delays, in scenario seconds."""
    results = []
    for name in scenarios:
        report = loop.run_demo(config=config, scenario_name=name, speed=None, state_dir=None)
        throttling = _remediated(report)
        results.append(
            {
                "scenario": name,
                "signal": throttling["alert"],
                "speed": report["speed"],
                "wall_s": report["wall_s"],
                "detect_s": round(throttling["detected_s"] - throttling["onset_s"], 2),
                "act_s": round(throttling["action_s"] - throttling["detected_s"], 2)
                if throttling["action_s"] is not None
                else None,
                "verified": throttling["verified"],
                "rolled_back": throttling["rolled_back"],
                "slo_violation_s": report["slo_violation_s"],
                "baseline_slo_violation_s": report["baseline_slo_violation_s"],
            }
        )
    return results


def _remediated(report: dict[str, Any]) -> dict[str, Any]:
    """The incident whose remediation ran, else the throttling rule's.

    The first signal of the surge opens it: the throttling rule or an anomaly watch,
    depending on where the controller's first scrape lands; the others wait for it.
    """
    incidents: list[dict[str, Any]] = report["incidents"]
    acted = [i for i in incidents if i["replicas_before"] is not None]
    if acted:
        return acted[0]
    return next(i for i in incidents if i["alert"] == "OrderServiceCPUThrottling")


def bench_policy(config: Path | None, *, evaluations: int = 2000) -> dict[str, Any]:
    settings = load_settings(config or loop.find_default_config())
    bundle = policy.PolicyBundle.load(settings.path(settings.policies))
    policy_input = {
        "incident": {
            "id": "i",
            "fingerprint": "f",
            "alert": "OrderServiceCPUThrottling",
            "labels": {"namespace": "production"},
            "annotations": {},
            "onset_at": 0,
        },
        "target": {
            "kind": "Deployment",
            "namespace": "production",
            "name": "order-service",
            "replicas": 2,
            "available_replicas": 2,
        },
        "context": {
            "budget": {
                "daily_budget": 100.0,
                "spent_today": 0.0,
                "cost_per_replica_hour": 0.5,
                "currency": "USD",
            },
            "slo": {"p95_latency_seconds": 0.2},
            "now": 0,
        },
        "runbooks": {"scale-up": {"params": []}},
    }
    started = time.perf_counter()
    for _ in range(evaluations):
        bundle.decide(policy_input)
    elapsed = time.perf_counter() - started
    bundle.close()
    return {"evaluations": evaluations, "evals_per_s": round(evaluations / elapsed)}


def bench_rules(config: Path | None, *, minutes: int = 5) -> dict[str, Any]:
    """The example rules over a TSDB holding `minutes` of the flash sale scraped each second."""
    settings = load_settings(config or loop.find_default_config())
    groups = rules.load_rule_files([settings.path(p) for p in settings.rules])
    simulation = Simulation(scenario.load("flash-sale"), epoch=0.0)
    db = TSDB(retention=3600)
    target = Target(url="http://twin/metrics", job="kubernetes")
    started = time.perf_counter()
    for second in range(1, minutes * 60 + 1):
        simulation.advance_to(second)
        db.ingest(
            at=float(second), samples=parse_exposition(exposition.render(simulation), target=target)
        )
    ingest_s = time.perf_counter() - started
    evaluator = rules.RuleEvaluator(groups, storage=db)
    rounds = 200
    started = time.perf_counter()
    for index in range(rounds):
        evaluator.evaluate(at=float(minutes * 60 - rounds + index))
    evaluate_s = time.perf_counter() - started
    return {
        "series": len(db),
        "scrapes": minutes * 60,
        "scrape_ingest_ms": round(ingest_s / (minutes * 60) * 1000, 2),
        "rules": sum(len(g.rules) for g in groups),
        "rule_round_ms": round(evaluate_s / rounds * 1000, 2),
    }


def bench_twin(name: str = "steady") -> dict[str, Any]:
    """The twin alone through a whole scenario (a day for `steady`), at its 1 s ticks."""
    day = scenario.load(name)
    simulation = Simulation(day, epoch=0.0)
    started = time.perf_counter()
    simulation.run_to_end()
    elapsed = time.perf_counter() - started
    return {
        "scenario": name,
        "scenario_s": day.duration,
        "wall_s": round(elapsed, 2),
        "ticks_per_s": round(day.duration / day.tick / elapsed),
    }


def bench_detectors(*, series: int = 1000, samples: int = 2000) -> dict[str, Any]:
    """The default detector on its vectorized batch path, and one object per series."""
    rng = np.random.default_rng(7)
    level = rng.uniform(10.0, 1000.0, size=series)
    grid = level + rng.normal(0.0, 1.0, size=(samples, series)) * level * 0.05
    # Five-minute samples, as in NAB: the daily channel sees whole days go by.
    times = 1_396_310_400.0 + 300.0 * np.arange(samples)
    batch = registry.BATCH_PATHS[registry.DEFAULT](series, seed=0)
    started = time.perf_counter()
    for t, row in zip(times, grid, strict=True):
        batch.process(np.full(series, t), row)
    batch_s = time.perf_counter() - started
    # The streaming path on a tenth of the series: its cost per sample does not depend on
    # how many there are, and the whole set would take minutes.
    few = max(1, series // 10)
    detectors = [registry.DETECTORS[registry.DEFAULT](seed=0) for _ in range(few)]
    started = time.perf_counter()
    for t, row in zip(times.tolist(), grid, strict=True):
        for detector, value in zip(detectors, row[:few].tolist(), strict=True):
            detector.process_one(t, value)
    stream_s = time.perf_counter() - started
    return {
        "detector": registry.DEFAULT,
        "series": series,
        "samples_per_series": samples,
        "batch_us_per_sample": round(batch_s / (series * samples) * 1e6, 3),
        "streaming_us_per_sample": round(stream_s / (few * samples) * 1e6, 3),
    }


def run_all(config: Path | None) -> dict[str, Any]:
    return {
        "machine": machine(),
        "loop": bench_loop(config),
        "policy": bench_policy(config),
        "rules": bench_rules(config),
        "twin": bench_twin(),
        "detectors": bench_detectors(),
    }
