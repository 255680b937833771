"""`selfheal` commands.

Each command is a thin shell over a library call; user errors are printed as one clear line
(where and what), never as a traceback, with exit code 2.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from selfheal.cli import timeline
from selfheal.domain import time as time_module
from selfheal.domain.errors import ConfigError, SelfhealError
from selfheal.twin import report, scenario, server
from selfheal.twin.simulation import Simulation

app = typer.Typer(
    name="selfheal",
    help="An autonomous self-healing controller for cloud-native systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_console = Console()
_errors = Console(stderr=True, soft_wrap=True)

ScenarioOption = Annotated[
    str, typer.Option("--scenario", "-s", help="A shipped scenario name or a scenario YAML file.")
]
SpeedOption = Annotated[
    float, typer.Option("--speed", min=0.001, help="Scenario seconds per real second.")
]


def _fail(error: SelfhealError) -> typer.Exit:
    _errors.print(f"[bold red]error:[/] {error}", markup=True, highlight=False)
    return typer.Exit(code=2)


@app.command()
def simulate(
    scenario_name: ScenarioOption = "flash-sale",
    no_controller: Annotated[
        bool,
        typer.Option("--no-controller", help="Run the scenario with nobody acting (the baseline)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run a scenario on the twin to its end, as fast as it computes, and report it."""
    if not no_controller:
        _errors.print(
            "error: simulate runs only the baseline so far; pass --no-controller "
            "(the closed loop runs with `selfheal demo`)."
        )
        raise typer.Exit(code=2)
    try:
        chosen = scenario.load(scenario_name)
    except ConfigError as error:
        raise _fail(error) from None
    started = time.perf_counter()
    simulation = Simulation(chosen, epoch=time.time(), timeline_every=60.0)
    simulation.run_to_end()
    summary = report.summarize(simulation)
    summary["wall_s"] = round(time.perf_counter() - started, 3)
    if as_json:
        print(json.dumps(summary))
    else:
        timeline.print_baseline(_console, simulation, summary)


@app.command()
def demo(
    scenario_name: ScenarioOption = "flash-sale",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show the flash sale on the twin. For now: the baseline, with nobody acting."""
    simulate(scenario_name=scenario_name, no_controller=True, as_json=as_json)


@app.command()
def twin(
    scenario_name: ScenarioOption = "flash-sale",
    speed: SpeedOption = 1.0,
    port: Annotated[
        int,
        typer.Option(
            "--port", "-p", min=0, max=65535, help="Port on 127.0.0.1 (0 picks a free one)."
        ),
    ] = 8080,
    kubeconfig: Annotated[
        Path,
        typer.Option("--kubeconfig", help="Where to write a kubeconfig that points at the twin."),
    ] = Path(".selfheal/twin.kubeconfig"),
) -> None:
    """Serve the twin's Kubernetes API and /metrics on 127.0.0.1 until stopped."""
    try:
        chosen = scenario.load(scenario_name)
    except ConfigError as error:
        raise _fail(error) from None
    clock = time_module.ScaledClock(speed=speed)
    handle = server.TwinServer(server.Twin(chosen, clock=clock), port=port)
    try:
        handle.start()
    except (OSError, RuntimeError) as exc:
        _errors.print(
            f"error: cannot serve on 127.0.0.1:{handle.port}: {exc} "
            "(is the port taken? try --port 0)"
        )
        raise typer.Exit(code=2) from None
    config_path = server.write_kubeconfig(kubeconfig, handle.url, namespace=chosen.namespace)
    _console.print(
        f"[bold]selfheal twin[/] running scenario [cyan]{chosen.name}[/] at "
        f"{speed:g}x on [green]{handle.url}[/]"
    )
    _console.print(f"  kubeconfig: {config_path}")
    _console.print(f"  try:        kubectl --kubeconfig {config_path} get deployments")
    _console.print(f"  metrics:    curl {handle.url}/metrics")
    _console.print("  stop with Ctrl-C")
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    try:
        while not stop:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()


@app.command()
def bench() -> None:
    """Measure speed and quality figures (written to BENCHMARKS.md)."""
    _console.print("no benchmarks yet")


def main() -> None:
    try:
        app()
    except SelfhealError as error:  # a library error that escaped a command: still one line
        _errors.print(f"error: {error}")
        sys.exit(2)


__all__ = ["app", "main"]
