"""`selfheal approve|deny INCIDENT`: a person's verdict on a remediation awaiting approval.

Two ways, and the verdict's author is never typed in:

- Through the API (`--api URL`, or `SELFHEAL_API_URL`), with a bearer token from
  `SELFHEAL_TOKEN` or `--token-file`: the controller takes the identity from the token,
  and the command prints the identity it recorded.
- Against a local state (`--config` or `--state-dir`, see state_options) when no API is
  named: the verdict is written straight into that state's audit chain, stamped on its
  clock, as the operating-system user running the command, and the command says so.
  Whoever can write the state directory can do this anyway; recording the account that
  did it is the most a local write can prove.

Either way the approval rules hold (store.approvals): one verdict per person, however the
name is spelt, and whoever sent an incident's alerts cannot approve its remediation.
"""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from selfheal.cli import state_options, store_access, timeline
from selfheal.domain.errors import ConfigError, TemporaryError
from selfheal.runtime import state_clock
from selfheal.store import Store

_console = timeline.report_console()
_errors = Console(stderr=True, soft_wrap=True)

API_URL_ENV = "SELFHEAL_API_URL"
TOKEN_ENV = "SELFHEAL_TOKEN"

IncidentArgument = Annotated[str, typer.Argument(help="The incident awaiting approval.")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (goes to the audit chain).")]
ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        envvar=API_URL_ENV,
        help="The controller's API (http[s]://HOST:PORT); the verdict is yours by token.",
        show_envvar=True,
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option("--token-file", help=f"A file holding your API token (else ${TOKEN_ENV})."),
]


def _fail(error: ConfigError | TemporaryError | str) -> typer.Exit:
    _errors.print(f"error: {error}", markup=False, highlight=False)
    return typer.Exit(code=2)


def give_verdict(
    incident: str,
    *,
    approve: bool,
    reason: str,
    api: str | None,
    token_file: Path | None,
    config: state_options.ConfigOption,
    state_dir: state_options.StateDirOption,
) -> None:
    word = "approved" if approve else "denied"
    if api is not None:
        who = _verdict_through_api(
            incident, approve=approve, reason=reason, api=api, token_file=token_file
        )
        _console.print(f"{incident}: {word} by {who}", highlight=False)
        return
    try:
        state = state_options.choose(config=config, state_dir=state_dir)
    except ConfigError as error:
        raise _fail(error) from None
    user = getpass.getuser()

    def give(store: Store) -> None:
        store.approvals.give(
            incident_id=incident,
            approve=approve,
            by=user,
            reason=reason,
            at=state_clock.state_now(state.directory),
            source=f"cli on {socket.gethostname()} as operating-system user {user}",
        )

    try:
        store_access.with_running_store(state.store_url, give)
    except (ConfigError, TemporaryError) as error:
        raise _fail(error) from None
    _console.print(f"{incident}: {word} by {user}", highlight=False)
    _errors.print(
        f"recorded as the operating-system user {user!r}, written to the local state "
        f"directly; with --api (or ${API_URL_ENV}) the verdict is the API token's identity",
        markup=False,
        highlight=False,
    )


def _verdict_through_api(
    incident: str, *, approve: bool, reason: str, api: str, token_file: Path | None
) -> str:
    """POST the verdict; the identity the controller recorded it under."""
    token = _token(token_file)
    route = "approve" if approve else "deny"
    url = f"{api.rstrip('/')}/api/v1/incidents/{incident}/{route}"
    try:
        response = httpx.post(
            url,
            json={"reason": reason},
            headers={"authorization": f"Bearer {token}"},
            timeout=30.0,
        )
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the API at {api}: {exc}") from None
    try:
        document = response.json()
    except ValueError:
        document = {}
    if response.status_code != 200:
        said = document.get("error") if isinstance(document, dict) else None
        raise _fail(f"the API answered {response.status_code}: {said or response.text[:200]}")
    return str(document.get("by", "?"))


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise _fail(f"cannot read --token-file {token_file}: {exc.strerror}") from None
        if not token:
            raise _fail(f"--token-file {token_file} is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise _fail(f"the API needs your token: set ${TOKEN_ENV} or pass --token-file")
    return token


def approve(
    incident: IncidentArgument,
    reason: ReasonOption = "",
    api: ApiOption = None,
    token_file: TokenFileOption = None,
    config: state_options.ConfigOption = None,
    state_dir: state_options.StateDirOption = None,
) -> None:
    """Approve the remediation an incident waits for; recorded with who and why."""
    give_verdict(
        incident,
        approve=True,
        reason=reason,
        api=api,
        token_file=token_file,
        config=config,
        state_dir=state_dir,
    )


def deny(
    incident: IncidentArgument,
    reason: ReasonOption = "",
    api: ApiOption = None,
    token_file: TokenFileOption = None,
    config: state_options.ConfigOption = None,
    state_dir: state_options.StateDirOption = None,
) -> None:
    """Deny the remediation an incident waits for; it is escalated, nothing runs."""
    give_verdict(
        incident,
        approve=False,
        reason=reason,
        api=api,
        token_file=token_file,
        config=config,
        state_dir=state_dir,
    )
