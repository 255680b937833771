"""`selfheal audit verify|log|keygen`: check the hash chain of a state, read it, sign it.

`verify` recomputes every link and names the first broken one (exit 1 if broken); with
`--public-key` it also checks the signed checkpoints against the chain, and with
`--checkpoints FILE` their outside copy too (docs/audit.md). `log` prints the records, all
of them or one incident's (`--incident ID`: the incident, its runbook runs, their steps and
approvals, and budget charges made for it), with `--json` a list of objects with `seq`,
`at`, `kind`, `subject`, `payload` and the hashes. `keygen` makes the Ed25519 key pair a
controller signs checkpoints with.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from selfheal.cli import events, state_options, timeline
from selfheal.domain.errors import ConfigError
from selfheal.runtime import incident_views
from selfheal.store import audit, audit_checkpoint_check, audit_signing, open_store

audit_app = typer.Typer(
    name="audit",
    help="The tamper-evident audit log: verify it, read it, make the key that signs it.",
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


PublicKeyOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--public-key",
        help="The public key the checkpoints are signed with (PEM); repeat it for keys used "
        "before. With it, every checkpoint is checked against the chain.",
    ),
]
CheckpointsOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoints",
        help="The checkpoints' outside copy (the file sink's JSON lines), checked too: "
        "catches checkpoints deleted from the database.",
    ),
]


@audit_app.command("verify")
def audit_verify(
    public_key: PublicKeyOption = None,
    checkpoints: CheckpointsOption = None,
    as_json: JsonOption = False,
    config: state_options.ConfigOption = None,
    state_dir: state_options.StateDirOption = None,
) -> None:
    """Recompute the audit hash chain and check its signed checkpoints. Exit 1 if broken."""
    if checkpoints is not None and not public_key:
        raise _fail(ConfigError("--checkpoints needs --public-key: it checks the signatures"))
    try:
        keys = [audit_signing.load_verify_key(path) for path in public_key or ()]
        chosen = state_options.choose(config=config, state_dir=state_dir)
        with _outside_copy(checkpoints) as outside, open_store(chosen.store_url) as store:
            report = audit.verify(store)
            signed = (
                audit_checkpoint_check.verify_checkpoints(store, keys, outside=outside)
                if keys
                else None
            )
    except ConfigError as error:
        raise _fail(error) from None
    ok = report.ok and (signed is None or signed.ok)
    if as_json:
        print(json.dumps(_verify_document(report, signed, ok=ok)))
    else:
        _print_verify(report, signed)
    raise typer.Exit(code=0 if ok else 1)


@contextlib.contextmanager
def _outside_copy(path: Path | None) -> Iterator[Iterator[audit_checkpoint_check.OutsideLine]]:
    if path is None:
        yield iter(())
        return
    with audit_checkpoint_check.outside_copy(path) as lines:
        yield lines


def _verify_document(
    report: audit.ChainReport, signed: audit_checkpoint_check.CheckpointReport | None, *, ok: bool
) -> dict[str, Any]:
    return {
        "ok": ok,
        "records": report.records,
        "first_broken_seq": report.first_broken_seq,
        "reason": report.reason,
        "checkpoints": None
        if signed is None
        else {
            "ok": signed.ok,
            "stored": signed.stored,
            "outside": signed.outside,
            "signed_through": signed.signed_through,
            "problems": signed.problems,
            "first_broken_seq": signed.first_broken_seq,
            "reason": signed.reason,
        },
    }


def _print_verify(
    report: audit.ChainReport, signed: audit_checkpoint_check.CheckpointReport | None
) -> None:
    if report.ok:
        _console.print(f"audit chain intact: {report.records} records verified")
    else:
        _console.print(
            f"[bold red]audit chain broken at record {report.first_broken_seq}[/]: "
            f"{escape(report.reason)}"
        )
    if signed is None:
        _console.print(
            "checkpoints not checked: pass --public-key FILE to check the signed checkpoints "
            "(a chain rewritten whole, hashes and head included, verifies without them)"
        )
    elif signed.ok:
        _console.print(f"audit checkpoints verified: {escape(signed.reason)}")
    else:
        where = (
            f" at record {signed.first_broken_seq}" if signed.first_broken_seq is not None else ""
        )
        more = signed.problems - 1
        _console.print(
            f"[bold red]audit checkpoints broken{where}[/]: {escape(signed.reason)}"
            + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
        )


@audit_app.command("keygen")
def audit_keygen(
    out: Annotated[
        Path,
        typer.Option("--out", help="The directory to write the key pair to (made if missing)."),
    ],
    as_json: JsonOption = False,
) -> None:
    """Make an Ed25519 key pair that signs audit checkpoints; print its key id."""
    try:
        files = audit_signing.generate_key_files(out)
    except ConfigError as error:
        raise _fail(error) from None
    if as_json:
        print(
            json.dumps(
                {
                    "key_id": files.key_id,
                    "private_key": str(files.private),
                    "public_key": str(files.public),
                }
            )
        )
        return
    _console.print(f"key id {files.key_id}", highlight=False)
    _console.print(
        f"private key: {escape(str(files.private))} (mode 0600; for the controller alone, as "
        "`audit.signing_key`; never in the database's reach)",
        highlight=False,
    )
    _console.print(
        f"public key:  {escape(str(files.public))} (for `selfheal audit verify --public-key`)",
        highlight=False,
    )


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
