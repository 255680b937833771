"""`selfheal guardrails ...`: check a guardrails file, and reset an open circuit breaker.

`check FILE` validates a guardrails file as the controller would and prints what it limits
(exit 2 with file:line on an error). `reset` closes an open circuit breaker
(runtime.breaker_reset): it appends a `guardrail.reset` record, naming the operating-system
user who reset it and why, to the audit chain of a state directory; the controller then
counts only failures after it. A breaker that is not open is left alone, and the command
says so and exits 1.
"""

from __future__ import annotations

import getpass
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from selfheal.cli import state_options, store_access, timeline
from selfheal.decision.guardrails import describe, load_guardrails
from selfheal.domain.errors import ConfigError, SourceLocation, TemporaryError
from selfheal.domain.model import Target
from selfheal.formats.durations import format_duration
from selfheal.runtime import breaker_reset, state_clock
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


@guardrails_app.command("reset")
def reset_breaker(
    runbook: Annotated[str, typer.Option("--runbook", help="The runbook whose breaker opened.")],
    target: Annotated[
        str, typer.Option("--target", help="The target as NAMESPACE/NAME.", metavar="NS/NAME")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why it is safe again.")] = "",
    config: state_options.ConfigOption = None,
    state_dir: state_options.StateDirOption = None,
) -> None:
    """Close an open circuit breaker: later failures count afresh. Recorded with who and why.

    Written into the local state as the operating-system user running the command (through
    the API, `POST /api/v1/guardrails/reset` takes an admin's credential). Exit 1, recording
    nothing, when no breaker is open on that runbook and target.
    """
    namespace, _, name = target.partition("/")
    if not namespace or not name:
        raise _fail(
            ConfigError("give the target as NAMESPACE/NAME", location=SourceLocation("--target"))
        )
    try:
        chosen = state_options.choose(config=config, state_dir=state_dir)
        settings = state_options.settings_of(chosen)
    except ConfigError as error:
        raise _fail(error) from None
    if settings.guardrails is None:
        raise _fail(ConfigError(f"{settings.config_file} has no guardrails: no breaker to reset"))
    try:
        rails = load_guardrails(settings.path(settings.guardrails))
    except ConfigError as error:
        raise _fail(error) from None
    if rails.circuit_breaker is None:
        raise _fail(ConfigError(f"{settings.guardrails} sets no circuit_breaker: nothing to reset"))
    user = getpass.getuser()
    found: list[breaker_reset.BreakerReset] = []

    def reset(store: Store) -> None:
        found.append(
            breaker_reset.reset_breaker(
                store,
                rails,
                runbook=runbook,
                target=Target("Deployment", namespace, name),
                by=user,
                reason=reason,
                source=f"cli on {socket.gethostname()} as operating-system user {user}",
                at=state_clock.state_now(chosen.directory),
            )
        )

    try:
        store_access.with_running_store(chosen.store_url, reset)
    except (ConfigError, TemporaryError) as error:
        raise _fail(ConfigError(str(error))) from None
    [outcome] = found
    if not outcome.reset:
        _errors.print(
            f"no circuit breaker is open for {runbook} on {target}: "
            f"{outcome.failures} failure(s) within {format_duration(outcome.window)}, it opens "
            f"at {outcome.opens_at}; nothing recorded",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(code=1)
    _console.print(f"circuit breaker of {runbook} on {target} reset by {user}", highlight=False)
    _errors.print(
        f"recorded as the operating-system user {user!r}, written to the local state directly",
        markup=False,
        highlight=False,
    )
