"""Replay a scenario through the anomaly watches as fast as it computes: their false positives.

`selfheal simulate --detect` runs the twin in this process and, every scrape interval of
scenario time, takes its exposition's samples, ingests them into selfheal's TSDB, and
every `anomalies.interval` runs the config's anomaly watches on it (the same
`AnomalyWatcher` the controller runs); the alerts they raise go through the real incident
intake into an in-memory store. Nothing acts: the report says which incidents the detectors
would have opened, and when, against the scenario's onset. A scenario day takes a minute or
two instead of a day, which is how the detector config is proven quiet on normal days.

The samples are taken unformatted and only those the watches' selectors match are ingested
(as a Prometheus `metric_relabel_configs` keep rule would keep them): formatting, parsing
and storing the rest is most of the cost of a replay and changes nothing the watches see.
The text path itself (render, parse, scrape) is what `selfheal demo` and the tests of the
closed loop exercise.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from selfheal.domain.model import AlertState
from selfheal.incidents import IncidentIntake
from selfheal.runtime.anomalies import AnomalyWatcher
from selfheal.runtime.recorder import IncidentStore
from selfheal.runtime.settings import Settings
from selfheal.runtime.telemetry_store import SharedTelemetry
from selfheal.store import open_store
from selfheal.telemetry import promql
from selfheal.telemetry.promql import ast
from selfheal.telemetry.tsdb import Matcher
from selfheal.twin import exposition, scenario
from selfheal.twin.simulation import Simulation

EPOCH = 1_767_225_600.0  # 2026-01-01 00:00 UTC: any fixed midnight keeps runs comparable
# The labels a scrape of the twin adds (the twin's own series carry no job or instance).
_TARGET_LABELS = {"job": "twin", "instance": "twin.invalid"}


def selectors(queries: list[str]) -> list[ast.VectorSelector]:
    """Every vector selector of the queries (what they can read from the TSDB)."""
    found: list[ast.VectorSelector] = []

    def walk(node: Any) -> None:
        if isinstance(node, ast.VectorSelector):
            found.append(node)
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            for item in dataclasses.fields(node):
                walk(getattr(node, item.name))
        elif isinstance(node, tuple | list):
            for item in node:
                walk(item)

    for query in queries:
        walk(promql.parse(query))
    return found


def _families(wanted: list[ast.VectorSelector]) -> set[str] | None:
    """Exposition families holding the selected names (a histogram's `_bucket` is its own)."""
    if any(not selector.name for selector in wanted):
        return None
    suffixes = ("_bucket", "_sum", "_count")
    names = {selector.name for selector in wanted}
    return names | {name.removesuffix(s) for name in names for s in suffixes if name.endswith(s)}


def _by_name(wanted: list[ast.VectorSelector]) -> dict[str, list[tuple[Matcher, ...]]]:
    """Each selected metric name with the other matchers of each selector naming it."""
    out: dict[str, list[tuple[Matcher, ...]]] = {}
    for selector in wanted:
        out.setdefault(selector.name, []).append(selector.matchers)
    return out


def _selected(
    name: str, labels: dict[str, str], wanted: dict[str, list[tuple[Matcher, ...]]] | None
) -> bool:
    if wanted is None:
        return True
    candidates = wanted.get(name, ())
    return any(all(m.matches(labels.get(m.name, "")) for m in c) for c in candidates)


def replay(settings: Settings, scenario_name: str, *, scrape_interval: float) -> dict[str, Any]:
    """Run `scenario_name` through the anomaly watches of `settings`; a JSON-ready report."""
    chosen = scenario.load(scenario_name)
    anomalies = settings.anomalies
    queries = [watch.query for watch in anomalies.watches]
    if anomalies.deploy_query is not None:
        queries.append(anomalies.deploy_query)
    wanted = selectors(queries)
    families = _families(wanted)
    matchers = None if families is None else _by_name(wanted)
    simulation = Simulation(chosen, epoch=EPOCH, timeline_every=3600.0)
    telemetry = SharedTelemetry(retention=settings.telemetry.retention)
    watcher = AnomalyWatcher(anomalies, source=telemetry)
    store = open_store("sqlite://")
    intake = IncidentIntake(IncidentStore(store))
    started = time.perf_counter()
    elapsed = 0.0
    next_watch = 0.0
    peak_confidence = 0.0
    opened: list[dict[str, Any]] = []
    try:
        while elapsed < chosen.duration:
            elapsed = min(elapsed + scrape_interval, chosen.duration)
            simulation.advance_to(elapsed)
            at = EPOCH + elapsed
            kept = [
                ({"__name__": name, **labels, **_TARGET_LABELS}, value)
                for name, labels, value in exposition.samples(simulation, only=families)
                if _selected(name, {**labels, **_TARGET_LABELS}, matchers)
            ]
            telemetry.ingest(at=at, samples=kept, stale=())
            if elapsed < next_watch:
                continue
            next_watch = elapsed + anomalies.interval
            for alert in watcher.evaluate(at=at):
                if alert.state != AlertState.FIRING:
                    continue
                result = intake.receive(alert, at=at)
                if result.opened and result.incident is not None:
                    signal = watcher.signals.get(result.incident.fingerprint)
                    opened.append(
                        {
                            "alert": alert.name,
                            "at_s": round(elapsed, 3),
                            "confidence": round(alert.value, 4),
                            "evidence": list(signal.evidence) if signal else [],
                        }
                    )
            peak_confidence = max(
                [peak_confidence, *(s.confidence for s in watcher.signals.values())]
            )
    finally:
        store.close()
    onset = _onset(simulation)
    first = opened[0]["at_s"] if opened else None
    return {
        "scenario": chosen.name,
        "duration_s": chosen.duration,
        "scrape_interval_s": scrape_interval,
        "watch_interval_s": anomalies.interval,
        "watches": [watch.name for watch in anomalies.watches],
        "samples_scored": watcher.samples_seen,
        "incidents": opened,
        "incident_count": len(opened),
        "peak_signal_confidence": round(peak_confidence, 4),
        "onset_s": onset,
        "detected_after_onset_s": None
        if first is None or onset is None
        else round(first - onset, 3),
        "wall_s": round(time.perf_counter() - started, 3),
    }


def _onset(simulation: Simulation) -> float | None:
    """The earliest trouble of any service, in scenario seconds (None on a quiet run)."""
    times = [simulation.onset(name) for name in simulation.scenario.services]
    found = [t for t in times if t is not None]
    return round(min(found), 3) if found else None
