"""`selfheal` commands.

Each command is a thin shell over a library call; user errors are printed as one clear line
(where and what), never as a traceback, with exit code 2.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich import markup
from rich.console import Console

import selfheal
from selfheal.cli import (
    approvals_cmd,
    audit_cmd,
    auth_cmd,
    detect_replay,
    guardrails_cmd,
    incidents_cmd,
    loop,
    policy_cmd,
    rbac_cmd,
    rules_cmd,
    timeline,
)
from selfheal.domain import time as time_module
from selfheal.domain.errors import ConfigError, SelfhealError, SourceLocation
from selfheal.formats import durations
from selfheal.runtime.settings import load_settings
from selfheal.twin import report, scenario, server
from selfheal.twin.simulation import Simulation

app = typer.Typer(
    name="selfheal",
    help="An autonomous self-healing controller for cloud-native systems.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_console = timeline.report_console()
_errors = Console(stderr=True, soft_wrap=True)

ScenarioOption = Annotated[
    str, typer.Option("--scenario", "-s", help="A shipped scenario name or a scenario YAML file.")
]
SpeedOption = Annotated[
    float, typer.Option("--speed", min=0.001, help="Scenario seconds per real second.")
]


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"selfheal {selfheal.__version__}")
        raise typer.Exit


@app.callback()
def main_options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print selfheal's version and exit.",
        ),
    ] = False,
) -> None:
    """An autonomous self-healing controller for cloud-native systems."""


def _fail(error: SelfhealError) -> typer.Exit:
    # The message is the user's text (JSON paths like [0], windows like [start, end]), not markup.
    _errors.print(f"[bold red]error:[/] {markup.escape(str(error))}", markup=True, highlight=False)
    return typer.Exit(code=2)


@app.command()
def simulate(
    scenario_name: ScenarioOption = "flash-sale",
    no_controller: Annotated[
        bool,
        typer.Option("--no-controller", help="Run the scenario with nobody acting (the baseline)."),
    ] = False,
    detect: Annotated[
        bool,
        typer.Option(
            "--detect",
            help="Replay the scenario through the config's anomaly watches; report the "
            "incidents they would open (nothing acts).",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="With --detect. Default: examples/flash-sale/selfheal.yaml"),
    ] = None,
    scrape_interval: Annotated[
        str, typer.Option("--scrape-interval", help="With --detect: scenario time per scrape.")
    ] = "5s",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run a scenario on the twin to its end, as fast as it computes, and report it."""
    if detect:
        _simulate_detection(scenario_name, config, scrape_interval, as_json=as_json)
        return
    if not no_controller:
        _errors.print(
            "error: simulate runs the baseline (--no-controller) or the detectors (--detect); "
            "the closed loop runs with `selfheal demo`."
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


def _simulate_detection(
    scenario_name: str, config: Path | None, scrape_interval: str, *, as_json: bool
) -> None:
    try:
        interval = durations.parse_duration(scrape_interval)
        settings = load_settings(config or loop.find_default_config())
    except (ConfigError, ValueError) as error:
        raise _fail(error if isinstance(error, ConfigError) else ConfigError(str(error))) from None
    if not settings.anomalies.watches:
        raise _fail(ConfigError("the config has no `anomalies.watches`: nothing to detect with"))
    try:
        result = detect_replay.replay(settings, scenario_name, scrape_interval=interval)
    except ConfigError as error:
        raise _fail(error) from None
    if as_json:
        print(json.dumps(result))
        return
    timeline.print_detection(_console, result)


@app.command()
def demo(
    scenario_name: Annotated[
        str | None,
        typer.Option("--scenario", "-s", help="flash-sale, flash-sale-contention, steady, ..."),
    ] = None,
    speed: Annotated[
        float | None, typer.Option("--speed", min=0.001, help="Scenario seconds per second.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="Default: examples/flash-sale/selfheal.yaml")
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Keep the run's state here.")
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--duration", help="Stop after this much scenario time.")
    ] = None,
    stack: Annotated[
        str,
        typer.Option(
            "--stack",
            help="embedded (selfheal's own telemetry) or prometheus "
            "(real Prometheus and Alertmanager, at real speed)",
        ),
    ] = "embedded",
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="enforce, shadow (decide and record what would be done, never act) or off; "
            "default: the config's modes.policy",
        ),
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(
            "--replicas",
            min=2,
            max=9,
            help="A team of replicas on PostgreSQL and NATS (the machine's, else its own), "
            "one killed mid-remediation",
        ),
    ] = None,
) -> None:
    """Run a scenario on the built-in twin with the controller closing the loop."""
    if replicas is not None:
        from selfheal.cli import team_story  # noqa: PLC0415 - only this demo needs the lab

        team_story.run(_console, replicas=replicas, as_json=as_json)
        return
    if mode is not None and mode not in {"enforce", "shadow", "off"}:
        raise _fail(
            ConfigError(
                f"unknown mode {mode!r}: use enforce, shadow or off",
                location=SourceLocation("--mode"),
            )
        )
    if stack not in {"embedded", "prometheus"}:
        raise _fail(
            ConfigError(
                f"unknown stack {stack!r}: use embedded or prometheus",
                location=SourceLocation("--stack"),
            )
        )
    on_event = None if as_json else timeline.live_printer(_console)
    try:
        seconds = durations.parse_duration(duration) if duration is not None else None
    except ValueError as exc:
        raise _fail(ConfigError(str(exc), location=SourceLocation("--duration"))) from None
    if stack == "prometheus":
        from selfheal.cli import stack_demo  # noqa: PLC0415 - needs the API's dependencies

        try:
            result = stack_demo.run_stack_demo(
                config=config, scenario_name=scenario_name, state_dir=state_dir, on_event=on_event
            )
        except ConfigError as error:
            raise _fail(error) from None
        if as_json:
            print(json.dumps(result))
        else:
            timeline.print_demo(_console, result)
            timeline.print_latencies(_console, result["latencies"])
        return
    try:
        result = loop.run_demo(
            config=config,
            scenario_name=scenario_name,
            speed=speed,
            state_dir=state_dir,
            duration=seconds,
            on_event=on_event,
            mode=mode,
        )
    except ConfigError as error:
        raise _fail(error) from None
    if as_json:
        print(json.dumps(result))
    else:
        timeline.print_demo(_console, result)


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="The selfheal.yaml to run.")],
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Override the config's state_dir.")
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug, info, warning or error.")
    ] = "info",
    log_format: Annotated[
        str, typer.Option("--log-format", help="text (for people) or json (one object a line).")
    ] = "text",
    replica_id: Annotated[
        str | None,
        typer.Option("--replica-id", help="This replica's id (default: host and pid)."),
    ] = None,
    api_listen: Annotated[
        str | None,
        typer.Option("--api-listen", help="Serve the API here (HOST:PORT), over the config's."),
    ] = None,
) -> None:
    """Run the controller against what the config names until SIGTERM or Ctrl-C.

    It logs each thing it does (an incident opened, a decision, a runbook step, a page) to
    stderr as it happens.
    """
    from selfheal.cli import controller_process, logs  # noqa: PLC0415 - only `run` needs them

    if log_level not in logs.LEVELS:
        raise _fail(
            ConfigError(
                f"unknown log level {log_level!r}: use {', '.join(logs.LEVELS)}",
                location=SourceLocation("--log-level"),
            )
        )
    if log_format not in {"text", "json"}:
        raise _fail(
            ConfigError(
                f"unknown log format {log_format!r}: use text or json",
                location=SourceLocation("--log-format"),
            )
        )
    logs.configure(level=log_level, log_format="json" if log_format == "json" else "text")
    try:
        code = controller_process.run_forever(
            config=config, state_dir=state_dir, replica_id=replica_id, api_listen=api_listen
        )
    except ConfigError as error:
        raise _fail(error) from None
    if code:
        raise typer.Exit(code=code)


app.command()(approvals_cmd.approve)
app.command()(approvals_cmd.deny)


@app.command()
def runbooks(
    out: Annotated[Path, typer.Option("--out", help="Write the pages into this directory.")],
    config: Annotated[
        Path | None, typer.Option("--config", help="Default: examples/flash-sale/selfheal.yaml")
    ] = None,
) -> None:
    """Generate a page per runbook from the policies, runbooks and guardrails of a config."""
    from selfheal.cli import runbook_docs  # noqa: PLC0415 - only this command needs it

    try:
        settings = load_settings(config or loop.find_default_config())
        written = runbook_docs.write_docs(settings, out)
    except ConfigError as error:
        raise _fail(error) from None
    for path in written:
        _console.print(f"wrote {path}", highlight=False)


app.command("rbac")(rbac_cmd.generate_rbac)
app.add_typer(rules_cmd.rules_app, name="rules")
app.add_typer(policy_cmd.policy_app, name="policy")
app.add_typer(guardrails_cmd.guardrails_app, name="guardrails")

app.add_typer(audit_cmd.audit_app, name="audit")
app.add_typer(auth_cmd.auth_app, name="auth")
app.add_typer(incidents_cmd.incidents_app, name="incidents")


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


bench_app = typer.Typer(
    help="Measure speed and quality (figures for BENCHMARKS.md).", invoke_without_command=True
)
app.add_typer(bench_app, name="bench")


@bench_app.callback()
def bench(context: typer.Context) -> None:
    """Measure speed and quality; without a subcommand, the closed loop and its stages."""
    if context.invoked_subcommand is None:
        bench_loop(as_json=False, config=None)


@bench_app.command("loop")
def bench_loop(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="Default: examples/flash-sale/selfheal.yaml")
    ] = None,
) -> None:
    """The closed loop end to end (both demo scenarios) and its stages."""
    from selfheal.cli import bench as benchmarks  # noqa: PLC0415 - only this command needs it

    try:
        results = benchmarks.run_all(config)
    except ConfigError as error:
        raise _fail(error) from None
    if as_json:
        print(json.dumps(results))
        return
    timeline.print_bench(_console, results)


@bench_app.command("nab")
def bench_nab(
    data: Annotated[Path, typer.Option("--data", help="A corpus in NAB's layout.")],
    detector: Annotated[
        str | None, typer.Option("--detector", help="A detector name (default: the best).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    results_out: Annotated[
        Path | None, typer.Option("--results-out", help="Write NAB-format result CSVs here.")
    ] = None,
) -> None:
    """Score a streaming detector on a NAB corpus by NAB's rules (docs/nab.md)."""
    from selfheal.cli import nab_bench  # noqa: PLC0415 - only this command needs it

    try:
        result = nab_bench.run(data=data, detector=detector, results_out=results_out)
    except ConfigError as error:
        raise _fail(error) from None
    if as_json:
        print(json.dumps(result))
    else:
        nab_bench.print_result(_console, result)


@bench_app.command("faults")
def bench_faults(
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="Kill trials (stage boundaries, then random).")
    ] = 200,
    storm: Annotated[int, typer.Option("--storm", min=1, help="Junk alerts in the storm.")] = 5000,
    flood: Annotated[
        int, typer.Option("--flood", min=1, help="Alerts in the hostile trial's flood.")
    ] = 100_000,
    parallel: Annotated[
        int, typer.Option("--parallel", min=1, help="Kill trials run at once.")
    ] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Kill, flood and break a real controller; count lost, doubled and stuck work."""
    from selfheal.lab import fault_bench  # noqa: PLC0415 - only this command needs it

    tell = _bench_progress(as_json=as_json)
    result = fault_bench.run(
        kill_trials=trials, storm=storm, flood=flood, parallel=parallel, progress=tell
    )
    if as_json:
        print(json.dumps(result))
        return
    summary = {key: value for key, value in result.items() if key != "results"}
    for key, value in summary.items():
        _console.print(f"{key}: {value}", highlight=False)
    bad = [key for key in (*fault_bench.COUNTS, "controller_crashes") if result[key]]
    if bad:
        raise typer.Exit(code=1)


def _bench_progress(*, as_json: bool) -> Callable[[str], None]:
    """A long bench's progress lines: on stdout, or on stderr when stdout carries the JSON."""
    console = _errors if as_json else _console

    def tell(line: str) -> None:
        console.print(line, highlight=False, soft_wrap=True)

    return tell


@bench_app.command("ha")
def bench_ha(
    trials: Annotated[
        int, typer.Option("--trials", min=1, help="Kill trials (each stage, then random).")
    ] = 100,
    pauses: Annotated[
        int | None,
        typer.Option("--pauses", min=0, help="SIGSTOP trials (default: a tenth of --trials)."),
    ] = None,
    restarts: Annotated[
        int, typer.Option("--restarts", min=0, help="Restarts of NATS and of PostgreSQL each.")
    ] = 2,
    storm_per_minute: Annotated[
        int, typer.Option("--storm-per-minute", min=50, help="The storm's alerts a minute.")
    ] = 10_000,
    storm_minutes: Annotated[
        float, typer.Option("--storm-minutes", min=0.1, help="How long the storm lasts.")
    ] = 5.0,
    throughput_alerts: Annotated[
        int, typer.Option("--throughput-alerts", min=100, help="Alerts per throughput run.")
    ] = 20_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Kill, pause and cut off replicas on PostgreSQL and NATS; storm; intake throughput."""
    from selfheal.lab import ha_bench  # noqa: PLC0415 - only this command needs it
    from selfheal.lab.servers import ServerUnavailable  # noqa: PLC0415

    tell = _bench_progress(as_json=as_json)
    try:
        result = ha_bench.run(
            trials=trials,
            pauses=pauses,
            restarts=restarts,
            storm_per_minute=storm_per_minute,
            storm_minutes=storm_minutes,
            throughput_alerts=throughput_alerts,
            progress=tell,
        )
    except ServerUnavailable as exc:
        _errors.print(f"error: cannot start the servers the bench needs: {exc}")
        raise typer.Exit(code=2) from exc
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        if key not in {"results", "throughput", "storm"}:
            _console.print(f"{key}: {value}", highlight=False)
    _console.print(f"storm: {result['storm']}", highlight=False, soft_wrap=True)
    for line in result["throughput"]:
        _console.print(f"throughput: {line}", highlight=False, soft_wrap=True)
    counts = ("alerts_lost", "duplicate_writes", "unfinished_incidents", "replica_crashes")
    if any(result[key] for key in counts) or result["takeovers_missed"]:
        raise typer.Exit(code=1)


def main() -> None:
    try:
        app()
    except SelfhealError as error:  # a library error that escaped a command: still one line
        _errors.print(f"error: {error}")
        sys.exit(2)


__all__ = ["app", "main"]
