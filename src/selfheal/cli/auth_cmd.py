"""`selfheal auth token`: a new API token, and the line the token file needs for it.

The token is printed once, for its holder; the token file (`api.auth.tokens_file`) keeps
only its SHA-256, so the file can be read (by a config review, a backup) without handing
out a credential.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

from selfheal.api.auth import ROLES, new_token, parse_token_file, token_digest
from selfheal.domain.errors import ConfigError
from selfheal.domain.identity import canonical_identity
from selfheal.formats import text_files

auth_app = typer.Typer(help="API credentials.", no_args_is_help=True)
_errors = Console(stderr=True, soft_wrap=True)


@auth_app.command("token")
def token(
    identity: Annotated[str, typer.Option("--identity", help="Whose token: a person or a tool.")],
    roles: Annotated[
        list[str],
        typer.Option("--role", help=f"A role it holds (repeat): {', '.join(ROLES)}."),
    ],
    append: Annotated[
        Path | None,
        typer.Option("--append", help="Add its entry to this token file (made if missing)."),
    ] = None,
) -> None:
    """Make a random API token; print it once, with its entry for the token file."""
    try:
        entry = _entry(identity, roles)
        if append is not None:
            _append(append, entry)
    except ConfigError as error:
        _errors.print(f"error: {error}", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    secret = entry.pop("token")
    print(f"token for {identity} (shown once; the token file keeps only its digest):")
    print(f"  {secret}")
    if append is None:
        print("entry for the token file (api.auth.tokens_file, under `tokens:`):")
        print(_indented(yaml.safe_dump([entry], sort_keys=False)))
    else:
        print(f"its entry was added to {append}")


def _entry(identity: str, roles: list[str]) -> dict[str, object]:
    if not canonical_identity(identity):
        raise ConfigError("--identity must name someone")
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ConfigError(f"unknown role {unknown[0]!r}; roles: {', '.join(ROLES)}")
    secret = new_token()
    return {
        "identity": identity.strip(),
        "roles": sorted(set(roles), key=ROLES.index),
        "sha256": token_digest(secret),
        "token": secret,
    }


def _append(path: Path, entry: dict[str, object]) -> None:
    """Add an entry to a token file, checking the file (and the result) as the API will."""
    listed: list[object] = []
    if path.exists():
        text = text_files.read_text(path, kind=text_files.TOKENS)
        parse_token_file(text, source=str(path))  # refuse to extend a broken file
        listed = list((yaml.safe_load(text) or {}).get("tokens", []))
    listed.append({key: value for key, value in entry.items() if key != "token"})
    rendered = yaml.safe_dump({"tokens": listed}, sort_keys=False)
    parse_token_file(rendered, source=str(path))
    path.write_text(rendered, encoding="utf-8")


def _indented(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.rstrip().splitlines())
