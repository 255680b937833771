"""Signed checkpoints of the audit chain's head: what a database writer cannot rewrite.

The chain (audit.py) shows any edit that leaves the records after it alone. Someone who can
write the database can do more: edit a record, recompute every later hash and the head,
and the chain verifies again. A checkpoint is the head's `seq` and `hash` signed with an
Ed25519 key that lives outside the database (audit_signing.py). Rewriting any record at
or before a checkpoint's `seq` changes the hash of the record it signed, and a new
signature needs the private key; cutting records off the end leaves a checkpoint signing
a record that is not there.

The signed message (stable; an outside checker rebuilds it from a checkpoint's fields):

    utf8(canonical_json({"purpose": "selfheal audit checkpoint v1",
                         "seq": seq, "hash": hash, "at": at, "key_id": key_id}))

with `canonical_json` as in audit.py (keys sorted, no whitespace), `seq` an integer, `hash`
the record's 64 hex digits, `at` when it was signed (a float, scenario seconds on the
controller's clock, as audit records' `at`), and `key_id` the signing key's id. The
signature is Ed25519 over those bytes, as 128 hex digits. `purpose` keeps a signature made
for anything else from ever passing as a checkpoint's.

A checkpoint is a row of `audit_checkpoints`, not a record of the chain: a record would
move the head it had just signed, so there would always be a newer head to sign, and an
idle controller would sign forever. Its outside copy is the sink's (runtime): a JSON line
per checkpoint, `{"seq", "hash", "at", "key_id", "signature"}`, which the check
(audit_checkpoint_check.py) also reads, so checkpoints deleted from the database are
caught where a copy exists.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from selfheal.domain.errors import PermanentError
from selfheal.store import audit, schema
from selfheal.store.audit_signing import SigningKey

if TYPE_CHECKING:
    from selfheal.store.database import Store

PURPOSE = "selfheal audit checkpoint v1"
_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """A signature of record `seq` of the chain having `head_hash`, made at `signed_at`."""

    seq: int
    head_hash: str
    signed_at: float
    key_id: str
    signature: str

    @classmethod
    def sign(cls, key: SigningKey, *, seq: int, head_hash: str, at: float) -> AuditCheckpoint:
        message = signed_message(seq=seq, head_hash=head_hash, at=at, key_id=key.key_id)
        return cls(
            seq=seq,
            head_hash=head_hash,
            signed_at=float(at) + 0.0,
            key_id=key.key_id,
            signature=key.sign(message),
        )

    def message(self) -> bytes:
        return signed_message(
            seq=self.seq, head_hash=self.head_hash, at=self.signed_at, key_id=self.key_id
        )

    def document(self) -> dict[str, Any]:
        """Its outside form: one JSON object (a line of the sink's file, a webhook's body)."""
        return {
            "seq": self.seq,
            "hash": self.head_hash,
            "at": self.signed_at,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_document(cls, value: Any) -> AuditCheckpoint:
        """Read `document()`'s form back; ValueError saying what is wrong with it."""
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        seq, head_hash, at = value.get("seq"), value.get("hash"), value.get("at")
        key_id, signature = value.get("key_id"), value.get("signature")
        if type(seq) is not int or seq < 1:
            raise ValueError("`seq` is not a record number")
        if not isinstance(head_hash, str) or not _HASH.fullmatch(head_hash):
            raise ValueError("`hash` is not 64 hex digits")
        if not isinstance(at, int | float) or isinstance(at, bool) or not math.isfinite(at):
            raise ValueError("`at` is not a time")
        if not isinstance(key_id, str) or not isinstance(signature, str):
            raise ValueError("`key_id` and `signature` must be strings")
        return cls(
            seq=seq, head_hash=head_hash, signed_at=float(at), key_id=key_id, signature=signature
        )


def signed_message(*, seq: int, head_hash: str, at: float, key_id: str) -> bytes:
    """The bytes a checkpoint's signature covers (see the module docstring)."""
    document = {
        "purpose": PURPOSE,
        "seq": int(seq),
        "hash": head_hash,
        "at": float(at) + 0.0,  # -0.0 written as 0.0, as audit records' `at`
        "key_id": key_id,
    }
    return audit.canonical_json(document).encode("utf-8")


@dataclass(frozen=True, slots=True)
class HeadToSign:
    """The chain's head, the newest checkpoint, and the hash of the record that one signed."""

    seq: int
    hash: str
    newest: AuditCheckpoint | None
    # The chain's hash at the newest checkpoint's seq now (None if that record is gone).
    newest_record_hash: str | None


class AuditCheckpoints:
    """`store.audit_checkpoints`: the signed checkpoints of the chain, oldest first."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def head_to_sign(self) -> HeadToSign:
        """What a checkpoint would sign now, read in one snapshot without the write lock."""
        with self._store.read() as session:
            head = session.get(schema.AuditHeadRow, schema.HEAD_ID)
            if head is None:
                raise PermanentError("the audit chain head is missing; run `selfheal audit verify`")
            row = session.scalar(
                select(schema.AuditCheckpointRow)
                .order_by(schema.AuditCheckpointRow.seq.desc())
                .limit(1)
            )
            newest = None if row is None else from_row(row)
            newest_record_hash = (
                None
                if newest is None
                else session.scalar(
                    select(schema.AuditRow.hash).where(schema.AuditRow.seq == newest.seq)
                )
            )
            return HeadToSign(
                seq=head.seq, hash=head.hash, newest=newest, newest_record_hash=newest_record_hash
            )

    def add(self, checkpoint: AuditCheckpoint) -> bool:
        """Store a checkpoint unless one of the same or a later record is there (False then).

        One short write: the signature was made before the write lock was taken.
        """
        with self._store.write() as session:
            later = session.scalar(
                select(schema.AuditCheckpointRow.seq)
                .where(schema.AuditCheckpointRow.seq >= checkpoint.seq)
                .limit(1)
            )
            if later is not None:
                return False
            session.add(
                schema.AuditCheckpointRow(
                    seq=checkpoint.seq,
                    head_hash=checkpoint.head_hash,
                    signed_at=checkpoint.signed_at,
                    key_id=checkpoint.key_id,
                    signature=checkpoint.signature,
                )
            )
            return True

    def listed(self, *, after: int = 0, limit: int | None = None) -> tuple[AuditCheckpoint, ...]:
        """Checkpoints of records after `after`, oldest first."""
        with self._store.read() as session:
            return page(session, after=after, limit=limit)

    def newest(self) -> AuditCheckpoint | None:
        with self._store.read() as session:
            row = session.scalar(
                select(schema.AuditCheckpointRow)
                .order_by(schema.AuditCheckpointRow.seq.desc())
                .limit(1)
            )
            return None if row is None else from_row(row)


def sign_head(store: Store, *, key: SigningKey, at: float) -> AuditCheckpoint | None:
    """Sign the chain's head and store the checkpoint; None when there is nothing new.

    Nothing new: an empty chain, a head already signed, or a newer checkpoint stored
    meanwhile (by another replica). Refuses (PermanentError) to sign a chain that
    contradicts its newest checkpoint, shorter than it or with another record at its seq:
    that chain was rewritten, and signing its head would only hide where.
    """
    head = store.audit_checkpoints.head_to_sign()
    newest = head.newest
    if head.seq == 0:
        return None
    if newest is not None:
        if head.seq < newest.seq or head.newest_record_hash != newest.head_hash:
            raise PermanentError(
                f"the audit chain no longer matches its checkpoint of record {newest.seq}, so "
                "its head is not signed; run `selfheal audit verify --public-key FILE`"
            )
        if head.seq == newest.seq:
            return None
    checkpoint = AuditCheckpoint.sign(key, seq=head.seq, head_hash=head.hash, at=at)
    return checkpoint if store.audit_checkpoints.add(checkpoint) else None


def page(session: Session, *, after: int, limit: int | None) -> tuple[AuditCheckpoint, ...]:
    """Checkpoints of records after `after`, oldest first, read in the caller's session."""
    rows = session.scalars(
        select(schema.AuditCheckpointRow)
        .where(schema.AuditCheckpointRow.seq > after)
        .order_by(schema.AuditCheckpointRow.seq)
        .limit(limit)
    )
    return tuple(from_row(row) for row in rows)


def from_row(row: schema.AuditCheckpointRow) -> AuditCheckpoint:
    return AuditCheckpoint(
        seq=row.seq,
        head_hash=row.head_hash,
        signed_at=row.signed_at,
        key_id=row.key_id,
        signature=row.signature,
    )
