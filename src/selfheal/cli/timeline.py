"""Readable output of a run for a person at a terminal (Rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from selfheal.formats.durations import format_duration
from selfheal.twin.simulation import Simulation


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
