"""The `audit` section of selfheal.yaml: read whole, or refused at the key that is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from selfheal.domain.errors import ConfigError
from selfheal.runtime.settings import load_settings
from selfheal.store import audit_signing

from support import example_config


@pytest.fixture
def keys(tmp_path: Path) -> audit_signing.KeyFiles:
    return audit_signing.generate_key_files(tmp_path / "keys")


def refused(tmp_path: Path, audit: dict[str, Any]) -> str:
    """The one-line error for a config with this `audit` section."""
    config = example_config(tmp_path, audit=audit)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert message.startswith(f"{config}:"), message
    return message


def test_the_audit_section_resolves_its_paths_against_the_config_file(
    tmp_path: Path, keys: audit_signing.KeyFiles
) -> None:
    """Relative paths are the config directory's, durations parse, defaults fill the rest."""
    config = example_config(
        tmp_path,
        audit={
            "signing_key": "keys/audit-signing.key",
            "checkpoint_every": "30s",
            "sink": {"file": "checkpoints.jsonl"},
        },
    )
    settings = load_settings(config)
    assert settings.audit is not None
    assert settings.path(settings.audit.signing_key) == keys.private
    assert settings.audit.checkpoint_every == 30.0
    assert settings.audit.sink is not None
    assert settings.audit.sink.file is not None
    assert settings.path(settings.audit.sink.file) == tmp_path / "checkpoints.jsonl"
    assert load_settings(example_config(tmp_path)).audit is None


def test_a_missing_signing_key_is_refused_at_its_config_key(tmp_path: Path) -> None:
    message = refused(tmp_path, {"signing_key": "keys/nope.key"})
    assert "(audit.signing_key): signing key keys/nope.key does not exist" in message


def test_a_signing_key_of_another_kind_names_the_config_key_and_the_file(
    tmp_path: Path,
) -> None:
    """An RSA key is refused before anything starts, naming where it was configured."""
    path = tmp_path / "rsa.pem"
    path.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    message = refused(tmp_path, {"signing_key": str(path)})
    assert f"(audit.signing_key): signing key {path}: holds an RSA key" in message


def test_the_public_key_is_refused_where_the_private_key_belongs(
    tmp_path: Path, keys: audit_signing.KeyFiles
) -> None:
    message = refused(tmp_path, {"signing_key": str(keys.public)})
    assert "(audit.signing_key)" in message
    assert "holds a public key" in message


@pytest.mark.parametrize(
    ("sink", "where", "problem"),
    [
        ({"file": "a.jsonl", "webhook": "http://127.0.0.1:1/"}, "audit.sink", "set one of"),
        ({}, "audit.sink", "set one of `file` and `webhook`"),
        ({"webhook": "ftp://example.com/x"}, "audit.sink.webhook", "http:// or https://"),
        ({"webhook": "http://h/", "retries": -1}, "audit.sink.retries", "greater than or equal"),
        ({"file": "missing/dir/a.jsonl"}, "audit.sink.file", "does not exist"),
        ({"file": "a.jsonl", "tiemout": "5s"}, "audit.sink.tiemout", "unknown field"),
    ],
)
def test_a_bad_sink_is_refused_at_its_key(
    tmp_path: Path,
    keys: audit_signing.KeyFiles,
    sink: dict[str, Any],
    where: str,
    problem: str,
) -> None:
    """Each mistake in `audit.sink` names its key path and says what is wrong."""
    message = refused(tmp_path, {"signing_key": str(keys.private), "sink": sink})
    assert f"({where})" in message
    assert problem in message


def test_an_audit_section_without_a_signing_key_is_refused(tmp_path: Path) -> None:
    """Checkpoints are signed or not made at all: the key is required."""
    message = refused(tmp_path, {"checkpoint_every": "1m"})
    assert "(audit.signing_key): required field is missing" in message


def test_a_checkpoint_period_that_is_not_a_duration_is_refused(
    tmp_path: Path, keys: audit_signing.KeyFiles
) -> None:
    message = refused(tmp_path, {"signing_key": str(keys.private), "checkpoint_every": "often"})
    assert "(audit.checkpoint_every)" in message
