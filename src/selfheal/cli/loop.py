"""Running the controller from the command line: with the built-in twin, or against a cluster.

`selfheal demo` and `selfheal run` with a `twin:` section start the twin in this process on
a free loopback port and point the controller at it over HTTP, exactly as it would point at
a real API server and scrape target. Everything is validated before the twin starts.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfheal.actions.kubernetes_client import KubernetesCluster
from selfheal.decision import guardrails
from selfheal.domain.errors import ConfigError
from selfheal.domain.model import IncidentState
from selfheal.domain.time import SteppedClock
from selfheal.runtime import report, state_clock
from selfheal.runtime.controller import Controller
from selfheal.runtime.settings import Settings, TwinSettings, load_settings
from selfheal.telemetry.scrape import Target
from selfheal.twin import scenario as scenario_module
from selfheal.twin import server
from selfheal.twin.simulation import Simulation

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def find_default_config(scenario_name: str | None = None) -> Path:
    """The example made for a scenario (examples/NAME/), else the flash-sale example.

    The safety scenarios (alert-storm, flapping, bad-fix, approval) each come with their own
    rules, guardrails and approvals; every other scenario runs with the flash-sale example.
    Examples are looked up next to the working directory first, then in the source tree.
    """
    names = [scenario_name, "flash-sale"] if scenario_name else ["flash-sale"]
    for name in names:
        for root in (Path("examples"), EXAMPLES):
            candidate = root / name / "selfheal.yaml"
            if candidate.is_file():
                return candidate
    raise ConfigError(
        "no config given and examples/flash-sale/selfheal.yaml is not here; pass --config FILE"
    )


@dataclass
class EmbeddedRun:
    """A controller wired to a twin served in this process."""

    controller: Controller
    twin_server: server.TwinServer
    clock: SteppedClock
    scenario: scenario_module.Scenario


def prepare_embedded(
    settings: Settings,
    *,
    scenario_name: str | None,
    speed: float | None,
    state_dir: Path | None,
    port: int | None = None,
) -> EmbeddedRun:
    twin_settings = settings.twin or TwinSettings()
    chosen = scenario_module.load(scenario_name or twin_settings.scenario)
    # The loop steps this clock itself, so what it sees of the twin does not depend on how
    # busy the machine is (SteppedClock).
    if state_dir is not None:
        settings = settings.model_copy(update={"state_dir": state_dir.resolve()})
    clock = SteppedClock(
        speed=speed or twin_settings.speed,
        epoch=state_clock.continued_epoch(settings.path(settings.state_dir)),
    )
    port = port or server.free_port()
    url = f"http://127.0.0.1:{port}"
    scraped = (
        []
        if settings.telemetry.source.kind == "prometheus"
        else [Target(url=f"{url}/metrics", job="kubernetes")]
    )
    controller = Controller(
        settings,
        clock=clock,
        cluster=KubernetesCluster(host=url),
        targets=scraped,
    )
    twin_server = server.TwinServer(server.Twin(chosen, clock=clock), port=port)
    return EmbeddedRun(controller, twin_server, clock, chosen)


ProgressCallback = Callable[[float, str, str, dict[str, Any]], None]


def run_demo(
    *,
    config: Path | None,
    scenario_name: str | None,
    speed: float | None,
    state_dir: Path | None,
    duration: float | None = None,
    on_event: ProgressCallback | None = None,
    mode: str | None = None,
) -> dict[str, Any]:
    """Run a scenario with the controller to its end; return the demo's report."""
    started = time.perf_counter()
    settings = load_settings(config or find_default_config(scenario_name))
    if mode is not None:
        modes = settings.modes.model_copy(update={"policy": mode})
        settings = settings.model_copy(update={"modes": modes})
    if state_dir is None:
        state_dir = Path(tempfile.mkdtemp(prefix="selfheal-demo-"))
    run = prepare_embedded(settings, scenario_name=scenario_name, speed=speed, state_dir=state_dir)
    if duration is None:
        duration = run.scenario.duration
    run.twin_server.start()
    try:
        asyncio.run(run_until(run, duration=duration, on_event=on_event))
    finally:
        run.twin_server.stop()
    result = demo_report(run, state_dir=state_dir, started=started)
    run.controller.close()
    return result


def demo_report(run: EmbeddedRun, *, state_dir: Path, started: float) -> dict[str, Any]:
    """The demo's JSON report of a finished run (see the closed-loop issue for its fields)."""
    simulation = run.twin_server.twin.simulation
    incidents = report.incident_reports(run.controller.store, epoch=run.clock.epoch)
    for item in incidents:
        service = _service_of(item, run.controller)
        onset = simulation.onset(service) if service else None
        item["onset_s"] = None if onset is None else round(onset, 3)
    slo = run.scenario.slo
    baseline = Simulation(run.scenario, epoch=run.clock.epoch)
    baseline.advance_to(simulation.elapsed)
    return {
        "scenario": run.scenario.name,
        "speed": run.clock.speed,
        "duration_s": round(simulation.elapsed, 3),
        "slo_violation_s": simulation.totals[slo.service].slo_violation_s,
        "baseline_slo_violation_s": baseline.totals[slo.service].slo_violation_s,
        "audit_chain_ok": report.chain_ok(run.controller.store),
        "incidents": incidents,
        "twin_changes": [
            {key: entry[key] for key in ("at_s", "method", "path", "status")}
            for entry in run.twin_server.request_log.entries
        ],
        # The safety envelope's figures (docs/guardrails.md): remediations that acted, the
        # most the guardrails allow, what they refused, and where every alert went. In
        # shadow mode nothing acts and `would_have` lists what enforcing would have done.
        "mode": run.controller.settings.modes.policy,
        **safety_figures(run, incidents=incidents, duration=simulation.elapsed),
        "state_dir": str(state_dir),
        "wall_s": round(time.perf_counter() - started, 3),
    }


def safety_figures(
    run: EmbeddedRun, *, incidents: list[dict[str, Any]], duration: float
) -> dict[str, Any]:
    """`actions_taken` against `action_cap`, the refusals, and the alerts' accounting."""
    controller, store, epoch = run.controller, run.controller.store, run.clock.epoch
    remediations = report.remediations(store)
    targets = {
        (incident.target.namespace, incident.target.name)
        for incident in store.incidents.list()
        if incident.target is not None
    }
    cap = None
    if controller.guardrails is not None:
        rails, _ = controller.guardrails.current()
        cap = guardrails.action_cap(
            rails, duration=duration, targets=len(targets), runbooks=sorted(controller.runbooks)
        )
    outcomes = report.alert_outcomes(store)
    return {
        "actions_taken": sum(1 for r in remediations if not r["stopped_at_approval"]),
        "action_cap": cap,
        "remediations": remediations,
        "cluster_changes": len(run.twin_server.request_log.entries),
        "guardrail_refusals": report.guardrail_refusals(store, epoch=epoch),
        "alerts_received": controller.alerts_received,
        "alerts_resolved": controller.alerts_resolved,
        "alerts_accounted": sum(outcomes.values()),
        "alert_outcomes": outcomes,
        "incident_count": len(incidents),
        "would_have": report.withheld(store, epoch=epoch),
        "approvals": report.approvals(store, epoch=epoch),
    }


def answer_approvals(run: EmbeddedRun, answered: set[str]) -> None:
    """Play the scenario's responders: answer the approvals they are scripted to answer."""
    responders = {responder.alert: responder for responder in run.scenario.responders}
    if not responders:
        return
    controller, now = run.controller, run.clock.now()
    for incident in controller.store.incidents.list(state=IncidentState.AWAITING_APPROVAL):
        responder = responders.get(incident.alert_name)
        request = controller.store.approvals.pending(incident.id)
        if responder is None or request is None or request.workflow_id in answered:
            continue
        if now - request.requested_at >= responder.after:
            answered.add(request.workflow_id)
            controller.give_verdict(
                incident.id,
                approve=responder.verdict == "approve",
                by=responder.name,
                reason=responder.reason,
            )


async def run_until(
    run: EmbeddedRun,
    *,
    duration: float,
    on_event: ProgressCallback | None,
    done: Callable[[], bool] | None = None,
) -> None:
    stop = asyncio.Event()
    last_seq = 0

    def tell() -> None:
        nonlocal last_seq
        if on_event is None:
            return
        for record in run.controller.store.audit.records(after=last_seq):
            last_seq = record.seq
            on_event(record.at - run.clock.epoch, record.kind, record.subject, dict(record.payload))

    answered: set[str] = set()
    # The responders answer on the loop's ticks, so their timing is scenario time too.
    run.controller.tick_listeners.append(lambda: answer_approvals(run, answered))

    async def watch() -> None:
        while run.clock.elapsed() < duration and not (done is not None and done()):
            tell()
            await asyncio.sleep(0.05)
        stop.set()

    async with asyncio.TaskGroup() as group:
        group.create_task(watch())
        group.create_task(run.controller.run(stop))
    tell()


def _service_of(item: dict[str, Any], controller: Controller) -> str | None:
    incident = controller.store.incidents.get(item["id"])
    return incident.labels.get("service") or incident.labels.get("deployment")
