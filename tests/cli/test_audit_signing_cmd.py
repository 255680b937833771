"""`selfheal audit keygen` and `audit verify --public-key [--checkpoints]`, as a user runs them."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfheal.store import audit_checkpoints, audit_signing, open_store

from forgery import rewrite_chain_from
from support import example_config, populated_state, selfheal


@pytest.fixture
def keys(tmp_path: Path) -> audit_signing.KeyFiles:
    """A key pair made by the command, as an operator makes it."""
    result = selfheal("audit", "keygen", "--out", str(tmp_path / "keys"), "--json")
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    return audit_signing.KeyFiles(
        private=Path(made["private_key"]), public=Path(made["public_key"]), key_id=made["key_id"]
    )


@pytest.fixture
def signed_state(tmp_path: Path, keys: audit_signing.KeyFiles) -> Path:
    """A state with a remediated incident, its chain signed twice, and the copy in a file."""
    state = tmp_path / "state"
    populated_state(state)
    key = audit_signing.load_signing_key(keys.private)
    copy = tmp_path / "checkpoints.jsonl"
    with open_store(f"sqlite:///{state / 'state.db'}") as store:
        records = store.audit.records()
        signed = []
        # Signed as a controller would have: halfway through the chain, and at its end.
        for stop_at in (len(records) // 2, len(records)):
            checkpoint = audit_checkpoints.AuditCheckpoint.sign(
                key, seq=stop_at, head_hash=records[stop_at - 1].hash, at=5000.0 + stop_at
            )
            assert store.audit_checkpoints.add(checkpoint)
            signed.append(checkpoint)
    copy.write_text("".join(json.dumps(c.document()) + "\n" for c in signed))
    return state


def verify(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return selfheal("audit", "verify", "--state-dir", str(state), *args)


def test_keygen_prints_the_key_id_and_never_overwrites(tmp_path: Path) -> None:
    """The id printed is the public key's; a second keygen into the place is refused."""
    out = tmp_path / "keys"
    made = selfheal("audit", "keygen", "--out", str(out))
    assert made.returncode == 0, made.stderr
    key_id = re.match(r"key id ([0-9a-f]{16})\n", made.stdout)
    assert key_id, made.stdout
    assert audit_signing.load_verify_key(out / "audit-signing.pub").key_id == key_id.group(1)
    private = (out / "audit-signing.key").read_bytes()
    again = selfheal("audit", "keygen", "--out", str(out))
    assert again.returncode == 2
    assert again.stderr == (
        f"error: {out / 'audit-signing.key'}: already exists; selfheal never overwrites a key "
        "(move it away, or pass another --out)\n"
    )
    assert (out / "audit-signing.key").read_bytes() == private


def test_verify_with_the_public_key_checks_the_checkpoints(
    signed_state: Path, keys: audit_signing.KeyFiles
) -> None:
    """Untouched: both checks pass; without the key, the output says what was not checked."""
    plain = verify(signed_state)
    assert plain.returncode == 0, plain.stderr
    assert "checkpoints not checked: pass --public-key FILE" in plain.stdout
    checked = verify(
        signed_state,
        "--public-key",
        str(keys.public),
        "--checkpoints",
        str(signed_state.parent / "checkpoints.jsonl"),
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "audit chain intact" in checked.stdout
    assert "audit checkpoints verified: 2 checkpoints in the store and 2 in the outside copy" in (
        checked.stdout
    )


def test_a_chain_rewritten_whole_passes_plain_verify_and_fails_with_the_key(
    signed_state: Path, keys: audit_signing.KeyFiles
) -> None:
    """The old check is fooled by recomputed hashes; the signed check names the record."""
    with open_store(f"sqlite:///{signed_state / 'state.db'}") as store:
        first = store.audit_checkpoints.listed()[0].seq
        rewrite_chain_from(store, 2, {"forged": True})
    plain = verify(signed_state)
    assert plain.returncode == 0, "recomputed hashes fool the chain check alone"
    checked = verify(signed_state, "--public-key", str(keys.public))
    assert checked.returncode == 1
    assert f"audit checkpoints broken at record {first}: record {first} is not the record" in (
        checked.stdout
    )
    assert f"rewritten at or before record {first}" in checked.stdout
    as_json = json.loads(verify(signed_state, "--public-key", str(keys.public), "--json").stdout)
    assert as_json["ok"] is False
    assert as_json["checkpoints"]["first_broken_seq"] == first
    assert as_json["checkpoints"]["problems"] == 2  # both checkpoints sign rewritten records


def test_deleted_checkpoints_are_caught_with_the_outside_copy(
    signed_state: Path, keys: audit_signing.KeyFiles
) -> None:
    """The newest checkpoint deleted from the database: the file still has it."""
    with sqlite3.connect(signed_state / "state.db") as database:
        newest = database.execute("SELECT max(seq) FROM audit_checkpoints").fetchone()[0]
        database.execute("DELETE FROM audit_checkpoints WHERE seq = ?", (newest,))
    without_copy = verify(signed_state, "--public-key", str(keys.public))
    assert without_copy.returncode == 0, "the store alone cannot know"
    copy = signed_state.parent / "checkpoints.jsonl"
    with_copy = verify(signed_state, "--public-key", str(keys.public), "--checkpoints", str(copy))
    assert with_copy.returncode == 1
    assert f"audit checkpoints broken at record {newest}" in with_copy.stdout
    report = json.loads(
        verify(
            signed_state, "--public-key", str(keys.public), "--checkpoints", str(copy), "--json"
        ).stdout
    )["checkpoints"]
    assert report["first_broken_seq"] == newest
    assert report["reason"] == (
        f"the checkpoint of record {newest} in {copy}:2 is missing from the store: it was deleted"
    )


def test_a_checkpoint_made_with_another_key_fails(tmp_path: Path, signed_state: Path) -> None:
    """Verified against a key that did not sign: every checkpoint names the stranger key."""
    other = audit_signing.generate_key_files(tmp_path / "other")
    checked = verify(signed_state, "--public-key", str(other.public), "--json")
    assert checked.returncode == 1
    report = json.loads(checked.stdout)["checkpoints"]
    assert "not by a public key given" in report["reason"]
    assert report["problems"] == 2


def test_verify_refuses_bad_key_files_by_name(
    tmp_path: Path, signed_state: Path, keys: audit_signing.KeyFiles
) -> None:
    """The private key where the public one belongs, a missing file: exit 2, one line."""
    for given, problem in (
        (keys.private, "holds a private key"),
        (tmp_path / "nope.pub", "cannot read the public key file: no such file or directory"),
    ):
        result = verify(signed_state, "--public-key", str(given))
        assert result.returncode == 2
        assert result.stderr.startswith(f"error: {given}: {problem}"), result.stderr
        assert "Traceback" not in result.stderr
    no_key = verify(signed_state, "--checkpoints", str(tmp_path / "checkpoints.jsonl"))
    assert no_key.returncode == 2
    assert "--checkpoints needs --public-key" in no_key.stderr
    no_file = verify(
        signed_state, "--public-key", str(keys.public), "--checkpoints", str(tmp_path / "x")
    )
    assert no_file.returncode == 2
    assert f"{tmp_path / 'x'}: cannot read the checkpoints file" in no_file.stderr


def test_a_running_controller_signs_its_chain_and_again_at_a_clean_stop(
    tmp_path: Path, keys: audit_signing.KeyFiles
) -> None:
    """`selfheal run` with `audit` signs as it goes; after SIGTERM every record is signed."""
    copy = tmp_path / "checkpoints.jsonl"
    config = example_config(
        tmp_path,
        twin={"scenario": "flash-sale", "speed": 60},
        audit={
            "signing_key": str(keys.private),
            "checkpoint_every": "10s",
            "sink": {"file": str(copy)},
        },
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "selfheal", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not (copy.exists() and copy.read_text().count("\n") >= 2):
            assert process.poll() is None, "the controller ended early"
            assert time.monotonic() < deadline, "no checkpoints within 300 s"
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
    result = verify(
        tmp_path / "state", "--public-key", str(keys.public), "--checkpoints", str(copy), "--json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    signed = report["checkpoints"]
    assert signed["stored"] == signed["outside"] >= 2
    assert signed["signed_through"] == report["records"], "the stop signed the last records"
