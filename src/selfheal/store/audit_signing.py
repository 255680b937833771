"""Ed25519 keys that sign audit checkpoints: made, read from their files, used.

The private key signs the chain's head (audit_checkpoints.py); whoever holds only the
public key can check every signature but make none. So the private key must live where a
database writer cannot read it (a file or secret mounted into the controller alone), and
the public key wherever checks are run.

Files are PEM, as OpenSSL writes them: the private key PKCS#8 unencrypted (the controller
reads it unattended; file permissions or a secret store protect it), the public key
SubjectPublicKeyInfo. `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` make
keys selfheal reads, and `selfheal audit keygen` makes keys OpenSSL reads.

A key is named by its key id: the first 16 hex digits of sha256 of the raw 32-byte public
key. Every checkpoint carries the id of the key that signed it, so after a change of key
the old checkpoints still verify with the old public key.

`cryptography` is used here only; its exceptions become `ConfigError`s naming the file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from selfheal.domain.errors import ConfigError, SourceLocation
from selfheal.formats import text_files

# The names `selfheal audit keygen` gives the two files.
PRIVATE_KEY_FILE = "audit-signing.key"
PUBLIC_KEY_FILE = "audit-signing.pub"
# Hex digits of sha256(public key) in a key id: 64 bits, enough to tell a team's keys apart
# (it names a key; the signature, not the id, is what proves anything).
KEY_ID_LENGTH = 16
# Ed25519 signatures are 64 bytes.
SIGNATURE_BYTES = 64
_KEYGEN_HINT = "make a key pair with `selfheal audit keygen --out DIR`"


@dataclass(frozen=True, slots=True)
class VerifyKey:
    """A public key: checks checkpoint signatures."""

    key_id: str
    public_key: Ed25519PublicKey = field(repr=False)

    @classmethod
    def of(cls, public_key: Ed25519PublicKey) -> VerifyKey:
        return cls(key_id=key_id_of(public_key), public_key=public_key)

    def verifies(self, message: bytes, signature: str) -> bool:
        """Whether `signature` (hex) is this key's signature of `message`."""
        try:
            raw = bytes.fromhex(signature)
        except ValueError:
            return False
        if len(raw) != SIGNATURE_BYTES:
            return False
        try:
            self.public_key.verify(raw, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key: signs checkpoints."""

    key_id: str
    private_key: Ed25519PrivateKey = field(repr=False)

    @classmethod
    def of(cls, private_key: Ed25519PrivateKey) -> SigningKey:
        return cls(key_id=key_id_of(private_key.public_key()), private_key=private_key)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.of(Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of `message`, as 128 lowercase hex digits."""
        return self.private_key.sign(message).hex()

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey.of(self.private_key.public_key())


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_LENGTH]


def private_pem(key: SigningKey) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: VerifyKey) -> bytes:
    return key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_signing_key(path: Path) -> SigningKey:
    """The private key in `path`; ConfigError naming the file when it is not one."""
    location = SourceLocation(str(path))
    data = text_files.read_bytes(path, kind=text_files.PRIVATE_KEY)
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise ConfigError(
            "holds a public key; signing needs the private key "
            f"(`{PRIVATE_KEY_FILE}` of the pair `selfheal audit keygen` made)",
            location=location,
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as error:  # the key is encrypted, and no password was given
        raise ConfigError(
            "the private key is encrypted; the controller reads its key unattended, so it "
            "needs an unencrypted one (protect it with file permissions or a secret store)",
            location=location,
        ) from error
    except (ValueError, UnsupportedAlgorithm) as error:
        raise ConfigError(f"not a PEM private key; {_KEYGEN_HINT}", location=location) from error
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"holds {_kind(key)}, not an Ed25519 key; {_KEYGEN_HINT}", location=location
        )
    return SigningKey.of(key)


def load_verify_key(path: Path) -> VerifyKey:
    """The public key in `path`; ConfigError naming the file when it is not one."""
    location = SourceLocation(str(path))
    data = text_files.read_bytes(path, kind=text_files.PUBLIC_KEY)
    if b"PRIVATE KEY-----" in data:
        raise ConfigError(
            "holds a private key; checking needs only the public key "
            f"(`{PUBLIC_KEY_FILE}`), and the private key should not travel",
            location=location,
        )
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise ConfigError(f"not a PEM public key; {_KEYGEN_HINT}", location=location) from error
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"holds {_kind(key)}, not an Ed25519 key", location=location)
    return VerifyKey.of(key)


@dataclass(frozen=True, slots=True)
class KeyFiles:
    """The files `generate_key_files` wrote, and the key's id."""

    private: Path
    public: Path
    key_id: str


def generate_key_files(directory: Path) -> KeyFiles:
    """A new key pair in `directory` (made if missing): the private key mode 0600.

    Refuses if either file is there already: a signing key overwritten is lost for good,
    and with it the means to sign on from where its checkpoints left off. Either both
    files are written or neither is.
    """
    private_path, public_path = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise ConfigError(
                "already exists; selfheal never overwrites a key (move it away, or pass "
                "another --out)",
                location=SourceLocation(str(path)),
            )
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise _unwritable(directory, error) from error
    key = SigningKey.generate()
    _write_new(private_path, private_pem(key), mode=0o600)
    try:
        _write_new(public_path, public_pem(key.verify_key), mode=0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return KeyFiles(private=private_path, public=public_path, key_id=key.key_id)


def _write_new(path: Path, content: bytes, *, mode: int) -> None:
    """Create `path` (never an existing one) with `mode`, write and sync `content`."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as error:
        raise _unwritable(path, error) from error
    try:
        os.fchmod(descriptor, mode)  # whatever the umask let through
        os.write(descriptor, content)
        os.fsync(descriptor)
    except OSError as error:
        path.unlink(missing_ok=True)
        raise _unwritable(path, error) from error
    finally:
        os.close(descriptor)


def _unwritable(path: Path, error: OSError) -> ConfigError:
    reason = error.strerror or str(error)
    return ConfigError(
        f"cannot write the key: {reason[:1].lower()}{reason[1:]}",
        location=SourceLocation(str(path)),
    )


def _kind(key: object) -> str:
    """What kind of key another algorithm's key is, in words.

    (A DSA key is named by its class: naming DSA's classes here makes `cryptography` warn.)
    """
    kinds: tuple[tuple[tuple[type, ...], str], ...] = (
        ((rsa.RSAPrivateKey, rsa.RSAPublicKey), "an RSA key"),
        ((ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey), "an elliptic-curve (ECDSA) key"),
        ((ed448.Ed448PrivateKey, ed448.Ed448PublicKey), "an Ed448 key"),
        ((x25519.X25519PrivateKey, x25519.X25519PublicKey), "an X25519 (key exchange) key"),
        ((x448.X448PrivateKey, x448.X448PublicKey), "an X448 (key exchange) key"),
    )
    for classes, name in kinds:
        if isinstance(key, classes):
            return name
    return f"a {type(key).__name__}"
