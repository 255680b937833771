import hashlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from selfheal.domain.errors import ConfigError
from selfheal.store import audit_signing


def write_pem(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_keygen_writes_a_private_key_only_its_owner_reads_and_its_public_key(
    tmp_path: Path,
) -> None:
    """The private key is mode 0600 PKCS#8 PEM, the public key PEM; the id is sha256's head."""
    files = audit_signing.generate_key_files(tmp_path / "keys")
    assert files.private == tmp_path / "keys" / "audit-signing.key"
    assert stat.S_IMODE(files.private.stat().st_mode) == 0o600
    assert files.private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert files.public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    public = serialization.load_pem_public_key(files.public.read_bytes())
    assert isinstance(public, ed25519.Ed25519PublicKey)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert files.key_id == hashlib.sha256(raw).hexdigest()[:16]
    signing = audit_signing.load_signing_key(files.private)
    verifying = audit_signing.load_verify_key(files.public)
    assert signing.key_id == verifying.key_id == files.key_id
    assert verifying.verifies(b"message", signing.sign(b"message"))
    assert not verifying.verifies(b"other message", signing.sign(b"message"))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl on this machine")
def test_keygen_files_are_what_openssl_reads_and_writes(tmp_path: Path) -> None:
    """OpenSSL derives the same public key from the private one, and its keys load here."""
    files = audit_signing.generate_key_files(tmp_path)
    derived = subprocess.run(
        ["openssl", "pkey", "-in", str(files.private), "-pubout"],
        capture_output=True,
        check=True,
    ).stdout
    assert derived == files.public.read_bytes()
    made = tmp_path / "openssl.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(made)],
        capture_output=True,
        check=True,
    )
    assert len(audit_signing.load_signing_key(made).key_id) == 16


@pytest.mark.parametrize("existing", ["audit-signing.key", "audit-signing.pub"])
def test_keygen_refuses_to_overwrite_either_file_and_writes_nothing(
    tmp_path: Path, existing: str
) -> None:
    """An existing key file is named and left as it was; the other file is not made."""
    (tmp_path / existing).write_bytes(b"the old key")
    with pytest.raises(ConfigError, match="already exists") as caught:
        audit_signing.generate_key_files(tmp_path)
    assert str(tmp_path / existing) in str(caught.value)
    assert (tmp_path / existing).read_bytes() == b"the old key"
    assert sorted(path.name for path in tmp_path.iterdir()) == [existing]


def test_an_rsa_key_is_refused_as_a_signing_key_naming_the_file(tmp_path: Path) -> None:
    """Another algorithm's key says which it is and how to make the right one."""
    path = write_pem(
        tmp_path / "rsa.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    with pytest.raises(ConfigError) as caught:
        audit_signing.load_signing_key(path)
    assert str(caught.value) == (
        f"{path}: holds an RSA key, not an Ed25519 key; "
        "make a key pair with `selfheal audit keygen --out DIR`"
    )


def test_an_ecdsa_public_key_is_refused_as_a_verify_key(tmp_path: Path) -> None:
    """A public key of another algorithm is refused for checking, naming the file."""
    path = tmp_path / "ec.pub"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigError, match=r"holds an elliptic-curve \(ECDSA\) key") as caught:
        audit_signing.load_verify_key(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_the_two_halves_of_a_pair_are_not_taken_for_each_other(tmp_path: Path) -> None:
    """A public key where the private one belongs, and the other way round, are refused."""
    files = audit_signing.generate_key_files(tmp_path)
    with pytest.raises(ConfigError, match="holds a public key") as as_private:
        audit_signing.load_signing_key(files.public)
    assert str(files.public) in str(as_private.value)
    with pytest.raises(ConfigError, match="holds a private key") as as_public:
        audit_signing.load_verify_key(files.private)
    assert str(files.private) in str(as_public.value)


def test_an_encrypted_private_key_is_refused_with_the_reason(tmp_path: Path) -> None:
    """The controller has nobody to ask for a password: it says so, not 'bad key'."""
    path = tmp_path / "encrypted.pem"
    path.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ConfigError, match="encrypted; the controller reads its key unattended"):
        audit_signing.load_signing_key(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the private key file: no such file or directory"),
        (b"not a key at all\n", "not a PEM private key"),
        (b"\xff" * 100_000, "over the 65,536 bytes limit for a private key file"),
    ],
)
def test_a_missing_or_garbled_key_file_is_named(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    """Missing, not PEM, or far too large: one line starting with the file's name."""
    path = tmp_path / "key.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        audit_signing.load_signing_key(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_a_signature_that_is_not_hex_or_not_64_bytes_does_not_verify() -> None:
    """A mangled signature is a failed check, not an exception."""
    key = audit_signing.SigningKey.generate()
    signature = key.sign(b"m")
    assert key.verify_key.verifies(b"m", signature)
    for bad in ("zz" + signature[2:], signature[:-2], signature + "00", ""):
        assert not key.verify_key.verifies(b"m", bad)
