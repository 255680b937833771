import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from selfheal.domain.errors import PermanentError
from selfheal.store import (
    Store,
    audit,
    audit_checkpoint_check,
    audit_checkpoints,
    audit_signing,
    open_store,
)

from forgery import rewrite_chain_from, run_sql

KEY = audit_signing.SigningKey.generate()


def append_some(store: Store, count: int) -> None:
    start = store.audit.last()
    first = 1 if start is None else start.seq + 1
    for number in range(first, first + count):
        store.audit.append("test.event", f"subject-{number}", {"n": number}, at=100.0 + number)


def checkpoint(store: Store, *, at: float) -> audit_checkpoints.AuditCheckpoint:
    made = audit_checkpoints.sign_head(store, key=KEY, at=at)
    assert made is not None
    return made


def outside_lines(
    path: Path, checkpoints: list[audit_checkpoints.AuditCheckpoint]
) -> list[audit_checkpoint_check.OutsideLine]:
    path.write_text("".join(json.dumps(c.document()) + "\n" for c in checkpoints))
    with audit_checkpoint_check.outside_copy(path) as lines:
        return list(lines)


def verify(
    store: Store, outside: list[audit_checkpoint_check.OutsideLine] | None = None
) -> audit_checkpoint_check.CheckpointReport:
    return audit_checkpoint_check.verify_checkpoints(store, [KEY.verify_key], outside=outside or ())


def test_an_untouched_chain_and_its_checkpoints_verify(store: Store, tmp_path: Path) -> None:
    """Checkpoints signed as the chain grows verify, in the store and in an outside copy."""
    append_some(store, 5)
    first = checkpoint(store, at=200.0)
    append_some(store, 3)
    second = checkpoint(store, at=260.0)
    append_some(store, 2)
    assert (first.seq, second.seq) == (5, 8)
    report = verify(store, outside_lines(tmp_path / "copy.jsonl", [first, second]))
    assert audit.verify(store).ok
    assert report == audit_checkpoint_check.CheckpointReport(
        ok=True,
        stored=2,
        outside=2,
        signed_through=8,
        records=10,
        problems=0,
        first_broken_seq=None,
        reason="2 checkpoints in the store and 2 in the outside copy verified; "
        "records 1 to 8 are signed, the 2 records after them not yet",
    )


def test_a_head_already_signed_or_an_empty_chain_is_not_signed_again(store: Store) -> None:
    """Only a head that moved is signed: an idle controller writes no checkpoints."""
    assert audit_checkpoints.sign_head(store, key=KEY, at=1.0) is None
    append_some(store, 2)
    checkpoint(store, at=2.0)
    assert audit_checkpoints.sign_head(store, key=KEY, at=3.0) is None
    assert [c.seq for c in store.audit_checkpoints.listed()] == [2]


def test_a_checkpoint_older_than_the_newest_stored_is_not_stored(store: Store) -> None:
    """Another replica's newer checkpoint wins: an older or equal one is refused."""
    append_some(store, 4)
    stale = audit_checkpoints.AuditCheckpoint.sign(
        KEY, seq=3, head_hash=store.audit.records()[2].hash, at=5.0
    )
    checkpoint(store, at=6.0)
    assert not store.audit_checkpoints.add(stale)
    assert [c.seq for c in store.audit_checkpoints.listed()] == [4]


@pytest.mark.parametrize(
    ("edited", "named", "span"),
    [(3, 5, "at or before record 5"), (7, 10, "between records 6 and 10")],
)
def test_a_chain_rewritten_whole_passes_the_chain_check_but_not_its_checkpoints(
    store: Store, edited: int, named: int, span: str
) -> None:
    """An edit with every later hash and the head recomputed is caught by the signatures."""
    append_some(store, 5)
    checkpoint(store, at=200.0)
    append_some(store, 5)
    checkpoint(store, at=260.0)
    rewrite_chain_from(store, edited, {"n": 1000})
    assert audit.verify(store).ok, "the forger recomputed every hash: the chain verifies"
    report = verify(store)
    assert (report.ok, report.first_broken_seq) == (False, named)
    assert report.reason == (
        f"record {named} is not the record its checkpoint in the store signed: "
        f"the chain was rewritten {span}"
    )


def test_records_cut_off_the_end_with_the_head_rewritten_are_caught(store: Store) -> None:
    """Deleting the tail and pointing the head at the new last record fools only the chain."""
    append_some(store, 6)
    checkpoint(store, at=200.0)
    append_some(store, 4)
    checkpoint(store, at=260.0)
    seventh = store.audit.records(after=6, limit=1)[0]
    run_sql(store, "DELETE FROM audit_log WHERE seq > 7")
    run_sql(store, "UPDATE audit_head SET seq = 7, hash = :hash", hash=seventh.hash)
    assert audit.verify(store).ok
    report = verify(store)
    assert (report.ok, report.first_broken_seq) == (False, 8)
    assert report.reason == (
        "the chain ends at record 7, but the checkpoint in the store signs record 10: "
        "records 8 to 10 were cut off the end of the chain"
    )
    with pytest.raises(PermanentError, match="no longer matches its checkpoint of record 10"):
        audit_checkpoints.sign_head(store, key=KEY, at=300.0)


def test_a_checkpoint_signed_with_another_key_is_refused(store: Store) -> None:
    """A forger's own key is not among the keys given; its checkpoint is named."""
    append_some(store, 3)
    forger = audit_signing.SigningKey.generate()
    forged = audit_checkpoints.AuditCheckpoint.sign(
        forger, seq=3, head_hash=store.audit.records()[2].hash, at=9.0
    )
    assert store.audit_checkpoints.add(forged)
    report = verify(store)
    assert (report.ok, report.first_broken_seq) == (False, 3)
    assert report.reason == (
        f"the checkpoint of record 3 in the store was signed by key '{forger.key_id}', "
        f"not by a public key given (key ids: {KEY.key_id})"
    )


def test_a_checkpoint_claiming_our_key_but_signed_by_another_is_refused(store: Store) -> None:
    """The key id is only a name: the signature must be the named key's."""
    append_some(store, 3)
    forger = audit_signing.SigningKey.generate()
    genuine = checkpoint(store, at=9.0)
    forged_signature = forger.sign(genuine.message())
    run_sql(store, "UPDATE audit_checkpoints SET signature = :s", s=forged_signature)
    report = verify(store)
    assert (report.ok, report.first_broken_seq) == (False, 3)
    assert "does not carry a valid signature" in report.reason


def test_an_edited_checkpoint_no_longer_verifies(store: Store) -> None:
    """Moving a checkpoint's time (or anything it signs) breaks its signature."""
    append_some(store, 3)
    checkpoint(store, at=9.0)
    run_sql(store, "UPDATE audit_checkpoints SET signed_at = 10.0")
    report = verify(store)
    assert (report.ok, report.first_broken_seq) == (False, 3)
    assert "forged or edited" in report.reason


def test_checkpoints_deleted_from_the_store_are_caught_with_the_outside_copy(
    store: Store, tmp_path: Path
) -> None:
    """Without a copy, deleting the newest checkpoint goes unseen; with one it is named."""
    append_some(store, 4)
    first = checkpoint(store, at=200.0)
    append_some(store, 4)
    second = checkpoint(store, at=260.0)
    copy = outside_lines(tmp_path / "copy.jsonl", [first, second])
    run_sql(store, "DELETE FROM audit_checkpoints WHERE seq = 8")
    assert verify(store).ok, "the store alone no longer knows record 8 was signed"
    report = verify(store, copy)
    assert (report.ok, report.first_broken_seq) == (False, 8)
    assert report.reason == (
        f"the checkpoint of record 8 in {tmp_path / 'copy.jsonl'}:2 is missing from the "
        "store: it was deleted"
    )


def test_a_rewrite_hidden_by_deleting_its_checkpoint_is_caught_by_the_outside_copy(
    store: Store, tmp_path: Path
) -> None:
    """Rewriting after the newest checkpoint left in the store shows against the copy."""
    append_some(store, 4)
    first = checkpoint(store, at=200.0)
    append_some(store, 4)
    second = checkpoint(store, at=260.0)
    copy = outside_lines(tmp_path / "copy.jsonl", [first, second])
    run_sql(store, "DELETE FROM audit_checkpoints WHERE seq = 8")
    rewrite_chain_from(store, 6, {"n": 66})
    assert audit.verify(store).ok
    assert verify(store).ok, "records after the newest stored checkpoint are unsigned"
    report = verify(store, copy)
    assert (report.ok, report.first_broken_seq) == (False, 8)
    assert report.reason == (
        f"record 8 is not the record its checkpoint in {tmp_path / 'copy.jsonl'}:2 signed: "
        "the chain was rewritten between records 5 and 8"
    )


def test_a_chain_with_records_and_no_checkpoint_fails(store: Store) -> None:
    """Every checkpoint deleted: nothing anchors the chain, and verify says so."""
    append_some(store, 3)
    checkpoint(store, at=9.0)
    run_sql(store, "DELETE FROM audit_checkpoints")
    report = verify(store)
    assert (report.ok, report.first_broken_seq) == (False, None)
    assert "no checkpoint signs any of the chain's 3 records" in report.reason


def test_an_empty_chain_without_checkpoints_verifies(store: Store) -> None:
    """A new store has nothing to sign, and that is not a failure."""
    report = verify(store)
    assert (report.ok, report.reason) == (True, "the chain is empty: nothing to sign")


def test_a_line_of_the_outside_copy_that_is_not_a_checkpoint_is_named(
    store: Store, tmp_path: Path
) -> None:
    """A garbled line fails the check at its file:line; blank lines are skipped."""
    append_some(store, 2)
    good = checkpoint(store, at=5.0)
    path = tmp_path / "copy.jsonl"
    path.write_text(json.dumps(good.document()) + "\n\n" + '{"seq": "two"}\n')
    with audit_checkpoint_check.outside_copy(path) as lines:
        report = audit_checkpoint_check.verify_checkpoints(store, [KEY.verify_key], outside=lines)
    assert (report.ok, report.problems, report.outside) == (False, 1, 1)
    assert report.reason == f"{path}:3: not a checkpoint (`seq` is not a record number)"


def test_the_signed_message_is_the_documented_canonical_json(store: Store) -> None:
    """An outside checker with only the public key's PEM and the standard library agrees."""
    append_some(store, 3)
    made = checkpoint(store, at=1234.5)
    message = json.dumps(
        {
            "purpose": "selfheal audit checkpoint v1",
            "seq": 3,
            "hash": store.audit.records()[2].hash,
            "at": 1234.5,
            "key_id": KEY.key_id,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    public_pem = audit_signing.public_pem(KEY.verify_key)
    public = serialization.load_pem_public_key(public_pem)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    public.verify(bytes.fromhex(made.signature), message)  # raises if it does not verify
    assert made.document() == {
        "seq": 3,
        "hash": store.audit.records()[2].hash,
        "at": 1234.5,
        "key_id": KEY.key_id,
        "signature": made.signature,
    }


def test_a_store_made_before_checkpoints_gains_their_table(tmp_path: Path) -> None:
    """Opening a state made without `audit_checkpoints` adds it; the chain is kept."""
    database = tmp_path / "state.db"
    with open_store(f"sqlite:///{database}") as store:
        append_some(store, 3)
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE audit_checkpoints")
    with open_store(f"sqlite:///{database}") as store:
        assert checkpoint(store, at=10.0).seq == 3
        assert audit.verify(store).ok
        assert verify(store).ok
