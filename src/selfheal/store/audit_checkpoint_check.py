"""Checking the signed checkpoints against the chain, and against a copy kept outside.

`verify_checkpoints` is what `selfheal audit verify --public-key` runs after the chain's own
check (audit.py). Each checkpoint (audit_checkpoints.py) must carry a valid signature of a
key given, over the message its fields make; the chain must still have, at its `seq`, the
record with the hash it signed; and the chain must reach it. The outside copy (the file
sink's JSON lines) is checked the same way, and each of its checkpoints must also be in the
store, unchanged: that is how checkpoints deleted from the database are caught.

The first problem is reported by the record it concerns, with the count of the others. A
rewrite is placed between the newest checkpoint that still matches and the first that does
not: the records in between were changed, though recomputed hashes hide which.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from selfheal.domain.errors import ConfigError, SourceLocation
from selfheal.store import audit_checkpoints, schema
from selfheal.store.audit_signing import VerifyKey

if TYPE_CHECKING:
    from selfheal.store.database import Store

# Checkpoints (and the chain records they name) read per round trip.
_BATCH = 1000


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
        while page := audit_checkpoints.page(session, after=after, limit=_BATCH):
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

    def stored_checkpoint(
        self, checkpoint: audit_checkpoints.AuditCheckpoint, *, record_hash: str | None
    ) -> None:
        self.stored += 1
        self._checked(checkpoint, record_hash=record_hash, where="in the store", source="store")

    def outside_lines(self, session: Session, lines: list[OutsideLine]) -> None:
        parsed: list[tuple[OutsideLine, audit_checkpoints.AuditCheckpoint]] = []
        for line in lines:
            try:
                parsed.append(
                    (line, audit_checkpoints.AuditCheckpoint.from_document(json.loads(line.text)))
                )
            except ValueError as error:
                self._problem(None, f"{line.place}: not a checkpoint ({error})")
        seqs = [checkpoint.seq for _, checkpoint in parsed]
        hashes = _record_hashes(session, seqs)
        rows = session.scalars(
            select(schema.AuditCheckpointRow).where(schema.AuditCheckpointRow.seq.in_(seqs))
        )
        stored = {row.seq: audit_checkpoints.from_row(row) for row in rows}
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
        self,
        checkpoint: audit_checkpoints.AuditCheckpoint,
        *,
        record_hash: str | None,
        where: str,
        source: str,
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


def _record_hashes(session: Session, seqs: Sequence[int]) -> dict[int, str]:
    if not seqs:
        return {}
    rows = session.execute(
        select(schema.AuditRow.seq, schema.AuditRow.hash).where(schema.AuditRow.seq.in_(seqs))
    )
    return {int(seq): str(record_hash) for seq, record_hash in rows}
