"""`selfheal audit verify|log`: check the hash chain of a state, and read it.

`verify` recomputes every link and names the first broken one (exit 1 if broken). `log`
prints the records, all of them or one incident's (`--incident ID`: the incident, its
runbook runs, their steps and approvals, and budget charges made for it), with `--json` a
list of objects with `seq`, `at`, `kind`, `subject`, `payload` and the hashes.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from selfheal.cli import events, state_options, timeline
from selfheal.domain.errors import ConfigError
from selfheal.runtime import incident_views
from selfheal.store import audit, open_store

audit_app = typer.Typer(
    name="audit",
    help="The tamper-evident audit log: verify it, read it.",
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


@audit_app.command("verify")
def audit_verify(
    as_json: JsonOption = False,
    config: state_options.ConfigOption = None,
    state_dir: state_options.StateDirOption = None,
) -> None:
    """Recompute the audit hash chain; name the first broken link. Exit 1 if broken."""
    try:
        chosen = state_options.choose(config=config, state_dir=state_dir)
    except ConfigError as error:
        raise _fail(error) from None
    with open_store(chosen.store_url) as store:
        report = audit.verify(store)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "records": report.records,
                    "first_broken_seq": report.first_broken_seq,
                    "reason": report.reason,
                }
            )
        )
    elif report.ok:
        _console.print(f"audit chain intact: {report.records} records verified")
    else:
        _console.print(
            f"[bold red]audit chain broken at record {report.first_broken_seq}[/]: "
            f"{escape(report.reason)}"
        )
    raise typer.Exit(code=0 if report.ok else 1)


@audit_app.command("log")
def audit_log(
    incident: Annotated[
        str | None, typer.Option("--incident", help="Only the records about this incident.")
    ] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only records of this kind.")] = None,
    as_json: JsonOption = False,
    config: state_options.ConfigOption = None,
    state_dir: state_options.StateDirOption = None,
) -> None:
    """The audit records, oldest first: all, or one incident's."""
    try:
        chosen = state_options.choose(config=config, state_dir=state_dir)
    except ConfigError as error:
        raise _fail(error) from None
    with open_store(chosen.store_url) as store:
        if incident is not None and store.incidents.find(incident) is None:
            raise _fail(
                ConfigError(
                    f"no incident {incident!r} in {chosen.directory}; "
                    "`selfheal incidents list` shows the ids"
                )
            )
        records = (
            store.audit.of_incident(incident) if incident is not None else store.audit.records()
        )
    if kind is not None:
        records = tuple(record for record in records if record.kind == kind)
    if as_json:
        print(json.dumps([incident_views.audit_record(record) for record in records]))
        return
    for record in records:
        line = events.describe(record.kind, record.subject, dict(record.payload))
        text = line if line is not None else escape(json.dumps(dict(record.payload)))
        when = (incident_views.iso(record.at) or "").replace("T", " ")
        _console.print(
            f"[dim]{record.seq:>6}  {when}[/]  [bold]{record.kind}[/] "
            f"{escape(record.subject)}: {text}",
            highlight=False,
        )
