"""`selfheal incidents list|show`: the incidents of a controller's state, for people on call.

`list` prints the newest incidents (a table, or with `--json` a list of objects with `id`,
`state`, `alertname`, `labels`, `opened_at`, `alerts`, ...); `show ID` prints one incident's
whole story: decisions, runs and their steps, notifications and approvals. Both read the
store the controller writes, so they work while it runs.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from selfheal.cli import state_options, timeline
from selfheal.domain.errors import ConfigError
from selfheal.domain.model import IncidentState
from selfheal.runtime import incident_views
from selfheal.store import open_store

incidents_app = typer.Typer(
    name="incidents",
    help="The incidents of a controller's state: list them, show one.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_console = timeline.report_console()
_errors = Console(stderr=True, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(error: ConfigError) -> typer.Exit:
    _errors.print(f"error: {error}", markup=False, highlight=False)
    return typer.Exit(code=2)


@incidents_app.command("list")
def list_incidents(
    state_filter: Annotated[
        list[str] | None,
        typer.Option("--state", help="Only incidents in this state (repeatable)."),
    ] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only unresolved incidents.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="The newest N incidents.")] = 50,
    as_json: JsonOption = False,
    config: state_options.ConfigOption = None,
    state_dir: state_options.StateDirOption = None,
) -> None:
    """The newest incidents, oldest first: state, alert, target, when, how many alerts."""
    try:
        states = [_state(name) for name in state_filter or []]
        chosen = state_options.choose(config=config, state_dir=state_dir)
    except ConfigError as error:
        raise _fail(error) from None
    with open_store(chosen.store_url) as store:
        found = incident_views.incident_list(
            store, states=states or None, open_only=open_only, limit=limit
        )
    if as_json:
        print(json.dumps(found))
        return
    if not found:
        _console.print("no incidents", highlight=False)
        return
    table = Table(show_edge=False, header_style="bold", box=None, padding=(0, 2))
    for column in ("id", "state", "alert", "target", "opened (UTC)", "alerts"):
        table.add_column(column, justify="right" if column == "alerts" else "left")
    for item in found:
        table.add_row(
            item["id"],
            _coloured(item["state"]),
            escape(item["alertname"]),
            item["target"] or "-",
            _when(item["opened_at_iso"]),
            str(item["alerts"]),
        )
    _console.print(table)


@incidents_app.command("show")
def show_incident(
    incident_id: Annotated[str, typer.Argument(help="The incident's id.", metavar="ID")],
    as_json: JsonOption = False,
    config: state_options.ConfigOption = None,
    state_dir: state_options.StateDirOption = None,
) -> None:
    """One incident's whole story: decisions, runs and steps, notifications, approvals."""
    try:
        chosen = state_options.choose(config=config, state_dir=state_dir)
    except ConfigError as error:
        raise _fail(error) from None
    with open_store(chosen.store_url) as store:
        detail = incident_views.incident_detail(store, incident_id)
    if detail is None:
        raise _fail(
            ConfigError(
                f"no incident {incident_id!r} in {chosen.directory}; "
                "`selfheal incidents list` shows the ids"
            )
        )
    if as_json:
        print(json.dumps(detail))
        return
    _print_detail(detail)


def _print_detail(detail: dict[str, Any]) -> None:
    print_ = _console.print
    print_(
        f"[bold]{escape(detail['id'])}[/]  {_coloured(detail['state'])}  "
        f"{escape(detail['alertname'])} about {detail['target'] or '(no target)'}",
        highlight=False,
    )
    labels = ", ".join(f"{k}={v}" for k, v in sorted(detail["labels"].items()))
    print_(f"  labels: {escape(labels) or '(none)'}", highlight=False)
    print_(
        f"  opened {_when(detail['opened_at_iso'])}, {detail['alerts']} alert(s)", highlight=False
    )
    for decision in detail["decisions"]:
        at = _when(incident_views.iso(decision["decided_at"]))
        if decision["deny"]:
            what = "denied: " + "; ".join(decision["deny"])
        elif decision["plans"]:
            plan = decision["plans"][0]
            what = f"chose {plan.get('runbook')}: {plan.get('reason', '')}"
            if decision["requires_approval"]:
                what += " (needs approval)"
        else:
            what = "no remediation planned"
        print_(f"  decided {at}: {escape(what)}", highlight=False)
    for run in detail["runs"]:
        print_(
            f"  runbook {run['runbook']} ({run['workflow_id']}): {run['status']}"
            + (f", {run['outcome']}" if run["outcome"] else ""),
            highlight=False,
        )
        for step in run["steps"]:
            error = f" - {step['error']}" if step["error"] else ""
            print_(f"    step {step['step']} ({step['type']}): {step['status']}{escape(error)}")
    for verdict in detail["approvals"]:
        word = "approved" if verdict["approve"] else "denied"
        reason = f": {verdict['reason']}" if verdict["reason"] else ""
        print_(f"  {word} by {escape(verdict['by'])}{escape(reason)}", highlight=False)
    for notification in detail["notifications"]:
        print_(
            f"  notified {notification['channel']}: {escape(notification['message'])}",
            highlight=False,
        )


def _state(name: str) -> IncidentState:
    try:
        return IncidentState(name)
    except ValueError:
        known = ", ".join(state.value for state in IncidentState)
        raise ConfigError(f"--state {name!r}: not a state; use one of {known}") from None


def _when(iso_text: str | None) -> str:
    return "-" if iso_text is None else iso_text.replace("T", " ")


def _coloured(state: str) -> str:
    colour = {
        "verified": "green",
        "resolved": "green",
        "escalated": "red",
        "rolled_back": "yellow",
        "awaiting_approval": "magenta",
    }.get(state, "cyan")
    return f"[{colour}]{state}[/]"
