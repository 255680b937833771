"""`selfheal guardrails ...`: check a guardrails file, and reset an open circuit breaker.

`check FILE` validates a guardrails file as the controller would and prints what it limits
(exit 2 with file:line on an error). `reset` closes an open circuit breaker: it appends a
`guardrail.reset` record, naming who reset it and why, to the audit chain of a state
directory; the controller then counts only failures after it. A breaker that is not open
is left alone, and the command says so and exits 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from selfheal.cli import state_options, store_access, timeline
from selfheal.decision.guardrails import describe, load_guardrails
from selfheal.domain.errors import ConfigError, SourceLocation, TemporaryError
from selfheal.domain.model import Target
from selfheal.formats.durations import format_duration
from selfheal.runtime import guardrail_facts, state_clock
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
    who: Annotated[str, typer.Option("--as", help="Who resets it (goes to the audit chain).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is safe again.")] = "",
    config: state_options.ConfigOption = None,
    state_dir: state_options.StateDirOption = None,
) -> None:
    """Close an open circuit breaker: later failures count afresh. Recorded with who and why.

    Exit 1, recording nothing, when no breaker is open on that runbook and target.
    """
    namespace, _, name = target.partition("/")
    if not namespace or not name:
        raise _fail(
            ConfigError("give the target as NAMESPACE/NAME", location=SourceLocation("--target"))
        )
    if not who.strip():
        raise _fail(ConfigError("say who resets it", location=SourceLocation("--as")))
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
    breaker = rails.circuit_breaker
    if breaker is None:
        raise _fail(ConfigError(f"{settings.guardrails} sets no circuit_breaker: nothing to reset"))
    subject = Target("Deployment", namespace, name)
    found: dict[str, int] = {}

    def reset(store: Store) -> None:
        last = store.audit.last()
        # Stamped on the state's clock, and never before the chain's last record: the
        # reset forgives failures recorded before it.
        at = max(state_clock.state_now(chosen.directory), last.at if last else 0.0)
        failures = guardrail_facts.breaker_failures(
            rails, store, runbook=runbook, target=subject, at=at
        )
        found["failures"] = failures or 0
        if (failures or 0) < breaker.failures:
            return
        store.audit.append(
            "guardrail.reset",
            f"{runbook}@{target}",
            {"runbook": runbook, "target": target, "by": who, "reason": reason},
            at=at,
        )

    try:
        store_access.with_running_store(chosen.store_url, reset)
    except TemporaryError as error:
        raise _fail(ConfigError(str(error))) from None
    if found["failures"] < breaker.failures:
        _errors.print(
            f"no circuit breaker is open for {runbook} on {target}: "
            f"{found['failures']} failure(s) within {format_duration(breaker.window)}, it opens "
            f"at {breaker.failures}; nothing recorded",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(code=1)
    _console.print(f"circuit breaker of {runbook} on {target} reset by {who}", highlight=False)
