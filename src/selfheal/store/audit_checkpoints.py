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
per checkpoint, `{"seq", "hash", "at", "key_id", "signature"}`, which `verify_checkpoints`
also checks, so checkpoints deleted from the database are caught where a copy exists.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from selfheal.domain.errors import ConfigError, PermanentError, SourceLocation
from selfheal.store import audit, schema
from selfheal.store.audit_signing import SigningKey, VerifyKey

if TYPE_CHECKING:
    from selfheal.store.database import Store

PURPOSE = "selfheal audit checkpoint v1"
# Checkpoints (and the chain records they name) read per round trip when verifying.
_BATCH = 1000
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
            newest = None if row is None else _checkpoint(row)
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
            return _page(session, after=after, limit=limit)

    def newest(self) -> AuditCheckpoint | None:
        with self._store.read() as session:
            row = session.scalar(
                select(schema.AuditCheckpointRow)
                .order_by(schema.AuditCheckpointRow.seq.desc())
                .limit(1)
            )
            return None if row is None else _checkpoint(row)


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


@dataclass(frozen=True, slots=True)
class OutsideLine:
    """A line of an outside copy of the checkpoints, and where it is (`file:line`)."""

    place: str
    text: str


@contextmanager
def outside_copy(path: Path) -> Iterator[Iterator[OutsideLine]]:
    """The lines of a checkpoints file (the file sink's), up to its size when opened.

    Lines appended after the file was opened are left for the next check: the sink appends
    a checkpoint only once it is stored, so every line read was in the store before the
    check's snapshot of it began (see `verify_checkpoints`).
    """
    try:
        handle = path.open("rb")
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(
            f"cannot read the checkpoints file: {reason[:1].lower()}{reason[1:]}",
            location=SourceLocation(str(path)),
        ) from error
    with handle:
        size = os.fstat(handle.fileno()).st_size
        yield _lines(handle, size=size, source=str(path))


def _lines(handle: IO[bytes], *, size: int, source: str) -> Iterator[OutsideLine]:
    read = 0
    for number, raw in enumerate(handle, start=1):
        read += len(raw)
        if read > size:
            return  # being appended as the file was opened
        text = raw.decode("utf-8", errors="replace").strip()
        if text:
            yield OutsideLine(place=f"{source}:{number}", text=text)


@dataclass(frozen=True, slots=True)
class CheckpointReport:
    """What `verify_checkpoints` found: the first problem, by the record it concerns."""

    ok: bool
    stored: int
    outside: int
    # The newest record a valid checkpoint signs (0: none).
    signed_through: int
    records: int
    problems: int
    first_broken_seq: int | None
    reason: str


def verify_checkpoints(
    store: Store, keys: Sequence[VerifyKey], *, outside: Iterable[OutsideLine] = ()
) -> CheckpointReport:
    """Check every stored checkpoint, and those of an outside copy, against the chain.

    Each checkpoint must be signed by one of `keys` (chosen by its key id), over the
    message its fields make, and sign the hash the chain has at its `seq`; the chain must
    reach every signed record. A checkpoint of the outside copy must also be in the store,
    unchanged. A chain with records but no checkpoint at all fails too.

    One read snapshot holds for the whole check, taken before the first outside line is
    read, so a controller signing meanwhile cannot make a checkpoint look deleted or a
    record look cut off.
    """
    check = _Check({key.key_id: key for key in keys})
    with store.read() as session:
        # The snapshot begins with this first statement.
        check.last_seq = session.scalar(select(func.max(schema.AuditRow.seq))) or 0
        after = 0
        while page := _page(session, after=after, limit=_BATCH):
            hashes = _record_hashes(session, [item.seq for item in page])
            for checkpoint in page:
                check.stored_checkpoint(checkpoint, record_hash=hashes.get(checkpoint.seq))
            after = page[-1].seq
        for lines in _batches(outside):
            check.outside_lines(session, lines)
    return check.report()


class _Check:
    """The running state of one `verify_checkpoints`: counts and the first problem."""

    def __init__(self, keys: dict[str, VerifyKey]) -> None:
        self.keys = keys
        self.last_seq = 0
        self.stored = 0
        self.outside = 0
        self.signed_through = 0
        self.problems = 0
        self.first: tuple[int, str] | None = None  # (seq, or 0 for none; reason)
        # The newest record a valid checkpoint of each source signs, for the rewrite range.
        self._good = {"store": 0, "outside": 0}

    def stored_checkpoint(self, checkpoint: AuditCheckpoint, *, record_hash: str | None) -> None:
        self.stored += 1
        self._checked(checkpoint, record_hash=record_hash, where="in the store", source="store")

    def outside_lines(self, session: Session, lines: list[OutsideLine]) -> None:
        parsed: list[tuple[OutsideLine, AuditCheckpoint]] = []
        for line in lines:
            try:
                parsed.append((line, AuditCheckpoint.from_document(json.loads(line.text))))
            except ValueError as error:
                self._problem(None, f"{line.place}: not a checkpoint ({error})")
        seqs = [checkpoint.seq for _, checkpoint in parsed]
        hashes = _record_hashes(session, seqs)
        rows = session.scalars(
            select(schema.AuditCheckpointRow).where(schema.AuditCheckpointRow.seq.in_(seqs))
        )
        stored = {row.seq: _checkpoint(row) for row in rows}
        for line, checkpoint in parsed:
            self.outside += 1
            where = f"in {line.place}"
            if not self._checked(
                checkpoint, record_hash=hashes.get(checkpoint.seq), where=where, source="outside"
            ):
                continue
            kept = stored.get(checkpoint.seq)
            if kept is None:
                self._problem(
                    checkpoint.seq,
                    f"the checkpoint of record {checkpoint.seq} {where} is missing from the "
                    "store: it was deleted",
                )
            elif kept != checkpoint:
                self._problem(
                    checkpoint.seq,
                    f"the checkpoint of record {checkpoint.seq} {where} differs from the "
                    "store's: it was replaced",
                )

    def _checked(
        self, checkpoint: AuditCheckpoint, *, record_hash: str | None, where: str, source: str
    ) -> bool:
        """Check one checkpoint's signature and record; True if both hold."""
        seq = checkpoint.seq
        key = self.keys.get(checkpoint.key_id)
        if key is None:
            given = ", ".join(sorted(self.keys)) or "none"
            self._problem(
                seq,
                f"the checkpoint of record {seq} {where} was signed by key "
                f"{checkpoint.key_id!r}, not by a public key given (key ids: {given})",
            )
            return False
        if not key.verifies(checkpoint.message(), checkpoint.signature):
            self._problem(
                seq,
                f"the checkpoint of record {seq} {where} does not carry a valid signature of "
                f"key {checkpoint.key_id}: it was forged or edited",
            )
            return False
        if seq > self.last_seq:
            end = f"ends at record {self.last_seq}" if self.last_seq else "is empty"
            cut = (
                f"record {seq} was"
                if seq == self.last_seq + 1
                else f"records {self.last_seq + 1} to {seq} were"
            )
            self._problem(
                self.last_seq + 1,
                f"the chain {end}, but the checkpoint {where} signs record {seq}: {cut} cut "
                "off the end of the chain",
            )
            return False
        if record_hash is None:
            self._problem(seq, f"record {seq}, signed by the checkpoint {where}, is missing")
            return False
        if record_hash != checkpoint.head_hash:
            good = self._good[source]
            span = f"between records {good + 1} and {seq}" if good else f"at or before record {seq}"
            self._problem(
                seq,
                f"record {seq} is not the record its checkpoint {where} signed: the chain was "
                f"rewritten {span}",
            )
            return False
        self._good[source] = max(self._good[source], seq)
        self.signed_through = max(self.signed_through, seq)
        return True

    def _problem(self, seq: int | None, reason: str) -> None:
        self.problems += 1
        rank = 0 if seq is None else seq
        if self.first is None or rank < self.first[0]:
            self.first = (rank, reason)

    def report(self) -> CheckpointReport:
        if self.first is None and self.last_seq > 0 and self.stored + self.outside == 0:
            self._problem(
                None,
                f"no checkpoint signs any of the chain's {self.last_seq} records: were they "
                "deleted, or does this controller sign none (`audit.signing_key`)?",
            )
        if self.first is not None:
            seq, reason = self.first
            return CheckpointReport(
                ok=False,
                stored=self.stored,
                outside=self.outside,
                signed_through=self.signed_through,
                records=self.last_seq,
                problems=self.problems,
                first_broken_seq=seq or None,
                reason=reason,
            )
        unsigned = self.last_seq - self.signed_through
        reason = (
            f"{_count(self.stored, 'checkpoint')} in the store"
            + (f" and {self.outside} in the outside copy" if self.outside else "")
            + f" verified; records 1 to {self.signed_through} are signed"
            + (f", the {_count(unsigned, 'record')} after them not yet" if unsigned else "")
            if self.last_seq
            else "the chain is empty: nothing to sign"
        )
        return CheckpointReport(
            ok=True,
            stored=self.stored,
            outside=self.outside,
            signed_through=self.signed_through,
            records=self.last_seq,
            problems=0,
            first_broken_seq=None,
            reason=reason,
        )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _batches(lines: Iterable[OutsideLine]) -> Iterator[list[OutsideLine]]:
    batch: list[OutsideLine] = []
    for line in lines:
        batch.append(line)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _page(session: Session, *, after: int, limit: int | None) -> tuple[AuditCheckpoint, ...]:
    rows = session.scalars(
        select(schema.AuditCheckpointRow)
        .where(schema.AuditCheckpointRow.seq > after)
        .order_by(schema.AuditCheckpointRow.seq)
        .limit(limit)
    )
    return tuple(_checkpoint(row) for row in rows)


def _record_hashes(session: Session, seqs: Sequence[int]) -> dict[int, str]:
    if not seqs:
        return {}
    rows = session.execute(
        select(schema.AuditRow.seq, schema.AuditRow.hash).where(schema.AuditRow.seq.in_(seqs))
    )
    return {int(seq): str(record_hash) for seq, record_hash in rows}


def _checkpoint(row: schema.AuditCheckpointRow) -> AuditCheckpoint:
    return AuditCheckpoint(
        seq=row.seq,
        head_hash=row.head_hash,
        signed_at=row.signed_at,
        key_id=row.key_id,
        signature=row.signature,
    )
