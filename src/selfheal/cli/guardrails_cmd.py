"""`selfheal guardrails ...`: check a guardrails file, and reset an open circuit breaker.

`check FILE` validates a guardrails file as the controller would and prints what it limits
(exit 2 with file:line on an error). `reset` closes a circuit breaker: it appends a
`guardrail.reset` record, naming who reset it and why, to the audit chain of a state
directory; the controller then counts only failures after it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from selfheal.cli import store_access, timeline
from selfheal.decision.guardrails import describe, load_guardrails
from selfheal.domain.errors import ConfigError, SourceLocation, TemporaryError
from selfheal.domain.time import ScaledClock
from selfheal.store import Store

guardrails_app = typer.Typer(
    name="guardrails",
    help="Limits no policy can lift: check a file, reset a circuit breaker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_console = timeline.report_console()
_errors = Console(stderr=True, soft_wrap=True)


def _fail(error: ConfigError) -> typer.Exit:
    _errors.print(f"[bold red]error:[/] {error}", markup=True, highlight=False)
    return typer.Exit(code=2)


@guardrails_app.command("check")
def check_file(
    path: Annotated[Path, typer.Argument(help="A guardrails YAML file.", metavar="FILE")],
) -> None:
    """Validate a guardrails file and print what it limits."""
    try:
        rails = load_guardrails(path)
    except ConfigError as error:
        raise _fail(error) from None
    lines = describe(rails)
    for line in lines:
        _console.print(line, highlight=False)
    _console.print(f"ok: {len(lines)} guardrails", highlight=False)


def scenario_now(state_dir: Path) -> float:
    """Now on the controller's clock: its anchor in `clock.json`, else the wall clock.

    A controller running a twin faster than real time is ahead of the wall clock; a reset
    stamped with wall time would land before the failures it is meant to forgive.
    """
    anchor_file = state_dir / "clock.json"
    try:
        anchor = json.loads(anchor_file.read_text(encoding="utf-8"))
        clock = ScaledClock.resume(
            speed=float(anchor["speed"]),
            epoch=float(anchor["epoch"]),
            wall_origin=float(anchor["wall_origin"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return time.time()
    return clock.now()


@guardrails_app.command("reset")
def reset_breaker(
    runbook: Annotated[str, typer.Option("--runbook", help="The runbook whose breaker opened.")],
    target: Annotated[
        str, typer.Option("--target", help="The target as NAMESPACE/NAME.", metavar="NS/NAME")
    ],
    who: Annotated[str, typer.Option("--as", help="Who resets it (goes to the audit chain).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is safe again.")] = "",
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="The controller's state directory.")
    ] = Path(".selfheal/state"),
) -> None:
    """Close a circuit breaker: later failures count afresh. Recorded with who and why."""
    namespace, _, name = target.partition("/")
    if not namespace or not name:
        raise _fail(
            ConfigError("give the target as NAMESPACE/NAME", location=SourceLocation("--target"))
        )
    if not who.strip():
        raise _fail(ConfigError("say who resets it", location=SourceLocation("--as")))
    database = state_dir / "state.db"
    if not database.is_file():
        raise _fail(ConfigError(f"no state database at {database}"))

    def reset(store: Store) -> None:
        store.audit.append(
            "guardrail.reset",
            f"{runbook}@{target}",
            {"runbook": runbook, "target": target, "by": who, "reason": reason},
            at=scenario_now(state_dir),
        )

    try:
        store_access.with_running_store(database, reset)
    except TemporaryError as error:
        raise _fail(ConfigError(str(error))) from None
    _console.print(f"circuit breaker of {runbook} on {target} reset by {who}", highlight=False)
