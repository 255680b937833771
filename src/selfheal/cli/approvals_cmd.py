"""`selfheal approve|deny INCIDENT`: a person's verdict on a remediation awaiting approval.

The verdict goes into the audit chain of the controller's state (chosen by `--config` or
`--state-dir`, see state_options), stamped on that state's clock, with who and why; the
waiting runbook step reads it from there.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from selfheal.cli import state_options, store_access, timeline
from selfheal.domain.errors import ConfigError, TemporaryError
from selfheal.runtime import state_clock
from selfheal.store import Store

_console = timeline.report_console()
_errors = Console(stderr=True, soft_wrap=True)

IncidentArgument = Annotated[str, typer.Argument(help="The incident awaiting approval.")]
WhoOption = Annotated[str, typer.Option("--as", help="Who you are (goes to the audit chain).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (goes to the audit chain).")]


def _fail(error: ConfigError | TemporaryError) -> typer.Exit:
    _errors.print(f"error: {error}", markup=False, highlight=False)
    return typer.Exit(code=2)


def give_verdict(
    incident: str,
    *,
    approve: bool,
    who: str,
    reason: str,
    config: state_options.ConfigOption,
    state_dir: state_options.StateDirOption,
) -> None:
    try:
        state = state_options.choose(config=config, state_dir=state_dir)
    except ConfigError as error:
        raise _fail(error) from None

    def give(store: Store) -> None:
        store.approvals.give(
            incident_id=incident,
            approve=approve,
            by=who,
            reason=reason,
            at=state_clock.state_now(state.directory),
        )

    try:
        store_access.with_running_store(state.store_url, give)
    except (ConfigError, TemporaryError) as error:
        raise _fail(error) from None
    word = "approved" if approve else "denied"
    _console.print(f"{incident}: {word} by {who}", highlight=False)


def approve(
    incident: IncidentArgument,
    who: WhoOption,
    reason: ReasonOption = "",
    config: state_options.ConfigOption = None,
    state_dir: state_options.StateDirOption = None,
) -> None:
    """Approve the remediation an incident waits for; recorded with who and why."""
    give_verdict(incident, approve=True, who=who, reason=reason, config=config, state_dir=state_dir)


def deny(
    incident: IncidentArgument,
    who: WhoOption,
    reason: ReasonOption = "",
    config: state_options.ConfigOption = None,
    state_dir: state_options.StateDirOption = None,
) -> None:
    """Deny the remediation an incident waits for; it is escalated, nothing runs."""
    give_verdict(
        incident, approve=False, who=who, reason=reason, config=config, state_dir=state_dir
    )
