"""Readable output of a run for a person at a terminal (Rich)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from selfheal.cli import events
from selfheal.formats.durations import format_duration
from selfheal.twin.simulation import Simulation

# Width for output that is not a terminal (a pipe, a CI log, a file): rich would otherwise
# assume 80 columns and cut table cells such as scenario and signal names to one letter.
UNBOUNDED_OUTPUT_WIDTH = 160


def report_console(file: IO[str] | None = None) -> Console:
    """A console for reports: the terminal's width, or a wide page when output is piped."""
    console = Console(file=file)
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(file=file, width=UNBOUNDED_OUTPUT_WIDTH)


def print_baseline(console: Console, simulation: Simulation, summary: dict[str, Any]) -> None:
    scenario = simulation.scenario
    slo = scenario.slo
    limit_ms = slo.p95_latency * 1000
    console.print(f"[bold]{scenario.name}[/]: {scenario.description}")
    console.print(f"baseline: nobody acts. SLO: {slo.service} p95 latency <= {limit_ms:g} ms")
    for fault in scenario.faults:
        console.print(f"  at {format_duration(fault.at)}: {fault.describe()}")
    console.print()
    table = Table(show_edge=False, header_style="bold", title=f"{slo.service}, every minute")
    for column in (
        "time",
        "load",
        "replicas",
        "p95",
        "errors",
        "throttled",
        "catalog p95",
    ):
        table.add_column(column, justify="right")
    for point in simulation.timeline:
        service = point.services[slo.service]
        breach = service.p95 * 1000 > limit_ms
        p95 = f"{service.p95 * 1000:,.0f} ms"
        table.add_row(
            format_duration(point.elapsed),
            f"{point.load_factor:.1f}x",
            str(point.replicas.get(slo.service, 0)),
            f"[red]{p95}[/]" if breach else p95,
            f"{service.error_ratio:.1%}",
            f"{point.peak_throttling:.0%}",
            f"{point.services['catalog'].p95 * 1000:,.0f} ms"
            if "catalog" in point.services
            else "-",
        )
    console.print(table)
    violation = summary["slo_violation_s"]
    verdict = (
        f"[bold red]SLO breached for {format_duration(violation)}[/]"
        if violation
        else "[bold green]SLO met throughout[/]"
    )
    console.print(
        f"\n{verdict} of {format_duration(summary['duration_s'])}; "
        f"peak p95 {summary['peak_p95_s'] * 1000:,.0f} ms, "
        f"{summary['error_ratio']:.1%} of {slo.service} requests failed, "
        f"peak CFS throttling {summary['peak_throttling']:.0%} of periods "
        f"({summary['peak_throttling_pod']})."
    )
    console.print(f"[dim]computed in {summary['wall_s']:.2f} s[/]")


def live_printer(console: Console) -> Callable[[float, str, str, dict[str, Any]], None]:
    """A callback that prints each audit record worth a line as the loop runs."""
    console.print("[dim]the controller is watching the twin; events in scenario time:[/]")

    def show(at: float, kind: str, subject: str, payload: dict[str, Any]) -> None:
        line = events.describe(kind, subject, payload)
        if line is not None:
            console.print(
                f"[dim]{format_duration(max(0.0, at)):>7}[/]  {line}",
                highlight=False,
                soft_wrap=True,
            )

    return show


def print_demo(console: Console, result: dict[str, Any]) -> None:
    """The closed loop's story: each incident's stages, then the SLO against the baseline."""
    console.print(
        f"[bold]{result['scenario']}[/] on the built-in twin at {result['speed']:g}x "
        f"({format_duration(result['duration_s'])} of scenario time)\n",
        soft_wrap=True,
    )
    for incident in result["incidents"]:
        console.print(
            f"[bold]{incident['alert']}[/] (incident {incident['id']}, "
            f"{incident['alert_count']} alert(s)) -> [cyan]{incident['state']}[/]",
            soft_wrap=True,
        )
        stages = [
            (incident[key], label)
            for label, key in (
                ("onset", "onset_s"),
                ("detected", "detected_s"),
                ("decided", "decided_s"),
                ("acted", "action_s"),
                ("verified", "verified_s"),
            )
            if incident.get(key) is not None
        ]
        if incident.get("waited_for") and incident.get("decided_s") is not None:
            stages.append((incident["decided_s"], "waited"))
        # In time order: an anomaly watch can open the incident while the load is still
        # ramping, before the twin's ground-truth onset (the first throttled period).
        for at, label in sorted(stages, key=lambda stage: stage[0]):
            console.print(
                f"  {format_duration(at):>7}  {_stage_text(label, incident)}", soft_wrap=True
            )
        for notification in incident["notifications"]:
            console.print(
                f"    [yellow]notified {notification['channel']}[/]: {notification['message']}",
                soft_wrap=True,
            )
        console.print()
    _print_remediation_summary(console, result)
    if result["mode"] != "enforce":
        console.print(
            f"[bold]{result['mode']} mode[/]: {result['actions_taken']} actions taken; "
            "enforcing would have:"
        )
        for item in result["would_have"]:
            what = item.get("runbook") or f"escalated ({item.get('escalate')})"
            params = item.get("params")
            console.print(
                f"    {format_duration(item['at_s'])} {item['incident']}: {what}"
                + (f" {json.dumps(params)}" if params else "")
            )
        console.print()
    violation, baseline = result["slo_violation_s"], result["baseline_slo_violation_s"]
    console.print(
        f"SLO breached for [bold]{format_duration(violation)}[/] with selfheal, "
        f"{format_duration(baseline)} without it (the baseline)."
    )
    chain = "[green]intact[/]" if result["audit_chain_ok"] else "[bold red]BROKEN[/]"
    console.print(
        f"Audit chain {chain}; state in {result['state_dir']}; ran in {result['wall_s']:.1f} s."
    )


def _print_remediation_summary(console: Console, result: dict[str, Any]) -> None:
    """Which incidents acted, which waited for another's fix, and who approved what."""
    chose = [i for i in result["incidents"] if i["plans"] and not i["deny"]]
    waited = [i for i in chose if i.get("waited_for")]
    if len(chose) > 1 and waited:
        ran = len(chose) - len(waited)
        console.print(
            f"{len(chose)} incidents chose a remediation: {ran} ran one, {len(waited)} waited "
            "because another incident was already remediating the same target.",
            soft_wrap=True,
        )
    for approval in result.get("approvals", []):
        verdicts = approval["verdicts"]
        if verdicts:
            who = "; ".join(
                f"{'approved' if v['approve'] else 'denied'} by {v['by']} at "
                f"{format_duration(v['at_s'])}" + (f" ({v['reason']})" if v["reason"] else "")
                for v in verdicts
            )
        else:
            who = f"no answer: {approval['outcome'] or 'still waiting'}"
        console.print(
            f"Approval of {approval['runbook']} for incident {approval['incident']}: {who}.",
            soft_wrap=True,
        )
    if waited or result.get("approvals"):
        console.print()


def _stage_text(stage: str, incident: dict[str, Any]) -> str:  # noqa: PLR0911 - a return per stage
    if stage == "onset":
        return "trouble begins (ground truth from the twin)"
    if stage == "waited":
        return f"waited: incident {incident['waited_for']} was already remediating the target"
    if stage == "detected":
        onset, detected = incident.get("onset_s"), incident["detected_s"]
        if onset is not None and detected < onset:
            return (
                f"{incident['alert']} firing: incident opened "
                f"{format_duration(onset - detected)} before the ground-truth onset "
                "(the anomaly watch saw the change building)"
            )
        return f"{incident['alert']} firing: incident opened"
    if stage == "decided":
        if incident["deny"]:
            return "policy denied: " + "; ".join(incident["deny"])
        return (
            ("policy chose " + ", ".join(incident["plans"]))
            if incident["plans"]
            else "policy: nothing to do"
        )
    if stage == "acted":
        return (
            f"scaled {incident['replicas_before']} -> "
            f"{incident['replicas_after'] if not incident['rolled_back'] else '?'} replicas"
            if not incident["rolled_back"]
            else f"scaled from {incident['replicas_before']}, then rolled back to "
            f"{incident['replicas_after']}"
        )
    return f"verified: p95 {incident['p95_ms_after']} ms"


def print_bench(console: Console, results: dict[str, Any]) -> None:
    machine = results["machine"]
    console.print(
        f"[bold]selfheal bench[/] on {machine['processor']}, Python {machine['python']}\n"
    )
    table = Table(title="closed loop (selfheal demo)", header_style="bold")
    for column in (
        "scenario",
        "first signal",
        "speed",
        "wall",
        "detect",
        "act",
        "outcome",
        "SLO breach",
        "baseline",
    ):
        table.add_column(column, justify="right")
    for run in results["loop"]:
        outcome = "verified" if run["verified"] else ("rolled back" if run["rolled_back"] else "-")
        table.add_row(
            run["scenario"],
            run["signal"],
            f"{run['speed']:g}x",
            f"{run['wall_s']:.1f} s",
            f"{run['detect_s']:.1f} s",
            f"{run['act_s']:.1f} s" if run["act_s"] is not None else "-",
            outcome,
            format_duration(run["slo_violation_s"]),
            format_duration(run["baseline_slo_violation_s"]),
        )
    console.print(table)
    policy, rules, twin = results["policy"], results["rules"], results["twin"]
    console.print(f"policy: {policy['evals_per_s']:,} decisions/s")
    console.print(
        f"rules: {rules['rules']} rules over {rules['series']} series: "
        f"{rules['rule_round_ms']} ms per evaluation round; scrape + ingest "
        f"{rules['scrape_ingest_ms']} ms"
    )
    console.print(
        f"twin: {twin['scenario']}, {format_duration(twin['scenario_s'])} of scenario time in "
        f"{twin['wall_s']} s ({twin['ticks_per_s']:,} ticks/s)"
    )
    detectors = results["detectors"]
    console.print(
        f"detector {detectors['detector']}: {detectors['batch_us_per_sample']} us/sample "
        f"on the batch path ({detectors['series']} series), "
        f"{detectors['streaming_us_per_sample']} us/sample one series at a time"
    )


def print_latencies(console: Console, latencies: list[dict[str, Any]]) -> None:
    for item in latencies:
        parts = [
            f"{label} {item[key]:.1f} s"
            for label, key in (
                ("onset->webhook", "onset_to_webhook_s"),
                ("webhook->scale", "webhook_to_scale_s"),
                ("scale->verified", "scale_to_verified_s"),
            )
            if item[key] is not None
        ]
        console.print(f"{item['alert']}: " + ", ".join(parts))


def print_detection(console: Console, result: dict[str, Any]) -> None:
    """What the anomaly watches made of a scenario: the incidents they would have opened."""
    console.print(
        f"[bold]{result['scenario']}[/]: {result['duration_s']:.0f} s of scenario time, "
        f"{result['samples_scored']} samples scored by {len(result['watches'])} watches "
        f"in {result['wall_s']:.1f} s"
    )
    onset = result["onset_s"]
    console.print(f"onset: {'none' if onset is None else f'{onset:.0f} s'}")
    if not result["incidents"]:
        console.print(
            f"[green]no incident[/] (highest signal confidence "
            f"{result['peak_signal_confidence']:.2f})"
        )
        return
    for incident in result["incidents"]:
        console.print(
            f"[yellow]incident[/] {incident['alert']} at {incident['at_s']:.0f} s, "
            f"confidence {incident['confidence']:.2f}"
        )
        for line in incident["evidence"]:
            console.print(f"    {line}")
    delay = result["detected_after_onset_s"]
    if delay is not None:
        console.print(f"detected {delay:.1f} s after onset")
