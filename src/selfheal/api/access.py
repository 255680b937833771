"""The API's door as the config describes it: credentials, the local token, TLS, the bind.

`authenticator_for` reads `api.auth` (token file, token environment variable, OIDC) into
an `Authenticator`. Without `api.auth` the API still asks every caller for a credential: a
local token is made at the first start (32 random bytes, in `STATE_DIR/api-token`, readable
by its owner only) and stands for the identity `local` with the `sender` and `viewer`
roles, so tools on this machine can send alerts and read, and nobody approves with it.
`check_bind` refuses to listen beyond loopback without `api.auth`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from selfheal.api.auth import (
    Authenticator,
    OidcSettings,
    OidcVerifier,
    TokenEntry,
    TokenTable,
    new_token,
    parse_token_file,
)
from selfheal.domain.errors import ConfigError
from selfheal.formats import text_files
from selfheal.runtime.settings import ApiSettings, Settings

LOCAL_TOKEN_FILE = "api-token"
LOCAL_IDENTITY = "local"
LOCAL_ROLES = frozenset({"sender", "viewer"})
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def authenticator_for(settings: Settings) -> Authenticator:
    """The Authenticator for `settings.api` (ConfigError naming the key when it cannot be)."""
    api = settings.api or ApiSettings()
    auth = api.auth
    if auth is None:
        token = local_token(settings.path(settings.state_dir))
        entry = TokenEntry.of_token(token, identity=LOCAL_IDENTITY, roles=LOCAL_ROLES)
        return Authenticator(tokens=TokenTable([entry]))
    tables: list[TokenTable] = []
    if auth.tokens_file is not None:
        path = settings.path(auth.tokens_file)
        text = text_files.read_text(path, kind=text_files.TOKENS)
        tables.append(parse_token_file(text, source=str(path)))
    if auth.tokens_env is not None:
        from_env = os.environ.get(auth.tokens_env)
        if from_env is None:
            raise ConfigError(
                f"api.auth.tokens_env: the environment variable {auth.tokens_env} is not set"
            )
        tables.append(parse_token_file(from_env, source=f"${auth.tokens_env}"))
    oidc = None
    if auth.oidc is not None:
        found = auth.oidc
        oidc = OidcVerifier(
            OidcSettings(
                issuer=found.issuer,
                audience=found.audience,
                jwks_url=found.jwks_url,
                identity_claim=found.identity_claim,
                roles_claim=found.roles_claim,
                leeway_s=found.leeway,
                algorithms=tuple(found.algorithms),
            )
        )
    return Authenticator(tokens=TokenTable(_entries(tables)), oidc=oidc)


def _entries(tables: list[TokenTable]) -> list[TokenEntry]:
    return [entry for table in tables for entry in table.entries]


def local_token(state_dir: Path) -> str:
    """The local token of a state directory, made (owner-only) on first use."""
    path = state_dir / LOCAL_TOKEN_FILE
    state_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        # O_EXCL: of two processes starting at once, one writes it and both read that one.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(new_token() + "\n")
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ConfigError(f"{path} is empty; delete it and a new local token is made")
    return token


def check_bind(api: ApiSettings) -> None:
    """Refuse to listen beyond this machine without authentication configured."""
    host = api.listen.rpartition(":")[0]
    if host not in _LOOPBACK and api.auth is None:
        raise ConfigError(
            f"api.listen {api.listen!r} reaches beyond this machine, and `api.auth` is not "
            "set: configure API tokens or OIDC (docs/security.md) before listening there"
        )
