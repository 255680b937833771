"""Who is calling the API, and what they may do.

A caller proves who they are with one `Authorization` header:

- `Bearer TOKEN` where TOKEN is an API token: the token file holds each token's SHA-256
  (never the token), with the identity and roles it stands for. The presented token's
  digest is compared with every entry in constant time, so the answer's timing says
  nothing about which entry (or how much of one) matched.
- `Bearer JWT` from an OIDC provider, verified against the provider's JWKS: signature,
  issuer, audience and expiry (with a leeway for clock skew); the identity and the roles are
  read from configurable claims.
- `Basic base64(user:password)` where the password is an API token and the user is that
  token's identity: what Alertmanager's `basic_auth` sends.

Roles (`ROLES`) are granted explicitly; `admin` also holds every person's role and
`approver` and `operator` can read. `sender` (alerts and telemetry in) is held only by
whoever is given it, so a sender's credential cannot approve, and an approver's cannot
send the alert it would then approve.

Identities are compared in their `canonical_identity` form (domain.identity): "mallory" and
"Mallory " are one person.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from selfheal.domain.errors import ConfigError
from selfheal.domain.identity import canonical_identity
from selfheal.formats import sourced_yaml

ROLES = ("sender", "viewer", "approver", "operator", "admin")
# What holding a role also grants.
_IMPLIED: Mapping[str, frozenset[str]] = {
    "admin": frozenset({"viewer", "approver", "operator"}),
    "operator": frozenset({"viewer"}),
    "approver": frozenset({"viewer"}),
}
# A token long enough that guessing is hopeless: 32 random bytes, URL-safe base64.
_TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: who, with which roles, proven how."""

    identity: str
    roles: frozenset[str]
    method: str  # "token", "oidc" or "basic"

    def holds(self, role: str) -> bool:
        return role in self.roles or any(role in _IMPLIED.get(held, ()) for held in self.roles)


class AuthError(Exception):
    """A request that is refused for who sent it: 401 (unknown) or 403 (not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def missing_credentials() -> AuthError:
    return AuthError(401, "this route needs a credential: an Authorization header")


def forbidden(caller: Caller, role: str) -> AuthError:
    held = ", ".join(sorted(caller.roles)) or "none"
    return AuthError(
        403, f"{caller.identity} lacks the {role!r} role this route needs (holds: {held})"
    )


# ---- API tokens ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One line of the token file: whose token it is, what it may do, its SHA-256."""

    identity: str
    roles: frozenset[str]
    sha256: bytes

    @classmethod
    def of_token(cls, token: str, *, identity: str, roles: frozenset[str]) -> TokenEntry:
        """The entry for a token known in full (the local token, tests)."""
        return cls(identity, roles, bytes.fromhex(token_digest(token)))


def token_digest(token: str) -> str:
    """The hex SHA-256 the token file keeps for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random API token."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


class TokenTable:
    """The API tokens the controller accepts."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> tuple[TokenEntry, ...]:
        return self._entries

    def find(self, token: str) -> TokenEntry | None:
        """The entry whose digest is the token's; every entry is compared, matched or not."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = None
        for entry in self._entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found


def parse_token_file(text: str, *, source: str) -> TokenTable:
    """A token file's entries; ConfigError naming file:line for anything wrong.

    The file is YAML: `tokens:` a list of `{identity: NAME, roles: [ROLE, ...], sha256: HEX}`.
    """
    document = sourced_yaml.load_yaml(text, source=source)
    data = document.data
    if not isinstance(data, dict) or set(data) != {"tokens"}:
        raise ConfigError("expected one key, `tokens`: a list", location=document.locate([]))
    listed = data["tokens"]
    if not isinstance(listed, list):
        raise ConfigError("`tokens` must be a list", location=document.locate(["tokens"]))
    entries: list[TokenEntry] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(listed):
        where = document.locate(["tokens", index])
        if not isinstance(item, dict):
            raise ConfigError("each token is an object", location=where)
        unknown = set(item) - {"identity", "roles", "sha256"}
        if unknown:
            # Keys may be of any YAML type (`null:`, `1:`), which do not compare with text.
            raise ConfigError(f"unknown key {min(unknown, key=str)!r}", location=where)
        identity = item.get("identity")
        if not isinstance(identity, str) or not canonical_identity(identity):
            raise ConfigError(
                "`identity` must be a non-empty string",
                location=document.locate(["tokens", index, "identity"]),
            )
        roles = item.get("roles")
        roles_at = document.locate(["tokens", index, "roles"])
        if not isinstance(roles, list) or not roles:
            raise ConfigError(
                f"`roles` must be a non-empty list of {', '.join(ROLES)}", location=roles_at
            )
        for position, role in enumerate(roles):
            if role not in ROLES:
                raise ConfigError(
                    f"unknown role {role!r}; roles: {', '.join(ROLES)}",
                    location=document.locate(["tokens", index, "roles", position]),
                )
        digest = item.get("sha256")
        digest_at = document.locate(["tokens", index, "sha256"])
        if not isinstance(digest, str) or len(digest) != 64:
            raise ConfigError(
                "`sha256` must be 64 hex digits (`selfheal auth token`)", location=digest_at
            )
        try:
            raw = bytes.fromhex(digest)
        except ValueError:
            raise ConfigError("`sha256` must be 64 hex digits", location=digest_at) from None
        if digest.lower() in seen:
            raise ConfigError(
                f"the same token is listed twice (also entry {seen[digest.lower()] + 1})",
                location=digest_at,
            )
        seen[digest.lower()] = index
        entries.append(TokenEntry(identity.strip(), frozenset(roles), raw))
    return TokenTable(entries)


# ---- OIDC bearer tokens -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OidcSettings:
    """How to check an OIDC provider's JWTs."""

    issuer: str
    audience: str
    jwks_url: str
    identity_claim: str = "sub"
    roles_claim: str = "roles"
    leeway_s: float = 60.0
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")


class OidcVerifier:
    """Verifies JWTs with the provider's published keys (fetched, then cached)."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        # The JWKS is fetched on first use and again when a token names an unknown key id
        # (the provider rotated its keys); a fetch is bounded by its timeout.
        self._keys = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, timeout=5)

    def verify(self, token: str) -> Caller:
        settings = self.settings
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=list(settings.algorithms),
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthError(503, f"the identity provider's keys cannot be fetched: {exc}") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"the bearer token is not valid: {exc}") from exc
        identity = claims.get(settings.identity_claim)
        if not isinstance(identity, str) or not canonical_identity(identity):
            raise AuthError(401, f"the token has no {settings.identity_claim!r} claim to name you")
        return Caller(identity.strip(), _roles_of(claims.get(settings.roles_claim)), "oidc")


def _roles_of(claim: object) -> frozenset[str]:
    """The known roles in a roles claim (a list, or one space-separated string)."""
    if isinstance(claim, str):
        named: Sequence[object] = claim.split()
    elif isinstance(claim, list):
        named = claim
    else:
        return frozenset()
    return frozenset(role for role in named if isinstance(role, str) and role in ROLES)


# ---- the whole check ----------------------------------------------------------------------
@dataclass
class Authenticator:
    """Turns an Authorization header into a Caller, or refuses it."""

    tokens: TokenTable = field(default_factory=lambda: TokenTable(()))
    oidc: OidcVerifier | None = None

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise missing_credentials()
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if not credential:
            raise AuthError(401, "the Authorization header has no credential after its scheme")
        if scheme.lower() == "bearer":
            return self._bearer(credential)
        if scheme.lower() == "basic":
            return self._basic(credential)
        raise AuthError(401, f"unsupported Authorization scheme {scheme!r}; use Bearer or Basic")

    def _bearer(self, credential: str) -> Caller:
        entry = self.tokens.find(credential)
        if entry is not None:
            return Caller(entry.identity, entry.roles, "token")
        if self.oidc is not None and credential.count(".") == 2:
            return self.oidc.verify(credential)
        raise AuthError(401, "the bearer token is not known")

    def _basic(self, credential: str) -> Caller:
        try:
            decoded = base64.b64decode(credential, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError(401, "the Basic credential is not base64 of user:password") from None
        user, colon, password = decoded.partition(":")
        entry = self.tokens.find(password) if colon else None
        if entry is None or canonical_identity(user) != canonical_identity(entry.identity):
            raise AuthError(401, "the Basic credential's user and token do not match a token")
        return Caller(entry.identity, entry.roles, "basic")
