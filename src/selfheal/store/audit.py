"""The append-only audit chain: every decision and action, each record hashing the one before.

The hashing rule (stable; `selfheal audit verify` and any outside checker depend on it):

    hash = sha256(utf8(canonical_json({"seq", "at", "kind", "subject", "payload", "prev_hash"})))
    prev_hash = the previous record's hash, or 64 zeros for record 1

Canonical JSON is `json.dumps(value, sort_keys=True, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)`: keys sorted, no whitespace, non-ASCII text as UTF-8,
floats as Python's `repr` (shortest text that reads back to the same float, e.g. `0.1`,
`1e+16`), and no NaN or infinity. `at` is always a float, `-0.0` written as `0.0`.
Mappings become objects (their keys must be strings), tuples and lists become arrays, str
and int enums become their values.
The payload is stored as the JSON that was hashed, so reading it back reproduces the hash.

Records are appended inside the caller's write transaction (`append_in`), so a table write
and its audit record commit or roll back together. The write lock (see `database.py`) makes
appends strictly sequential; `seq` is therefore gap-free, and `verify` reads a gap as a
deleted record. The single `audit_head` row names the last record, so records cut off the
end are caught too. A chain rewritten wholesale, head included, still verifies: signed
checkpoints of the head, made with a key kept outside the database, defend against that
(audit_checkpoints.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, cast, event, insert, select
from sqlalchemy.orm import Session

from selfheal.domain.errors import PermanentError
from selfheal.store import schema

if TYPE_CHECKING:
    from selfheal.store.database import Store

GENESIS_HASH = "0" * schema.HASH_LENGTH

# Rows fetched per round trip when verifying: bounded memory for any length of chain.
_VERIFY_BATCH = 1000
# Where a write transaction keeps the chain head it loaded (Session.info).
_HEAD = "selfheal.audit_head"
# Where it keeps the records appended but not yet written (Session.info).
_PENDING = "selfheal.audit_pending"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One record of the chain, as stored."""

    seq: int
    at: float
    kind: str
    subject: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What `verify` found: `first_broken_seq` names the first record that fails, if any."""

    ok: bool
    records: int
    first_broken_seq: int | None
    reason: str


class Canonical(dict[str, Any]):
    """A JSON object read back from canonical JSON: its keys are strings, all the way down.

    Key checks skip it, so a large document written to a table and then into its audit
    record (a decision's input) is checked once, not twice.
    """


def canonical_json(value: Any) -> str:
    """The canonical text of a JSON value (see the module docstring)."""
    _check_keys(value)
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_as_json,
    )


def record_hash(
    *, seq: int, at: float, kind: str, subject: str, payload: Any, prev_hash: str
) -> str:
    document = {
        "seq": seq,
        "at": _time(at),
        "kind": kind,
        "subject": subject,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def _hash_with_payload_text(
    *, seq: int, at: float, kind: str, subject: str, payload_text: str, prev_hash: str
) -> str:
    """`record_hash`, given the payload's canonical text: the same bytes, built directly.

    The document's keys in canonical (sorted) order are at, kind, payload, prev_hash, seq,
    subject; writing them around the payload's text saves serializing a large payload
    again for every record of a storm. A test holds it to `record_hash`.
    """
    text = (
        f'{{"at":{json.dumps(_time(at))},"kind":{_string(kind)},"payload":{payload_text},'
        f'"prev_hash":{_string(prev_hash)},"seq":{int(seq)},"subject":{_string(subject)}}}'
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def append_in(
    session: Session, *, kind: str, subject: str, payload: Mapping[str, Any], at: float
) -> AuditRecord:
    """Append a record inside a write transaction that already holds the write lock.

    The row is not flushed here: a transaction that appends many records (a storm's
    decisions) writes them all at its commit in one batch, in the order they were appended.
    """
    head = session.info.get(_HEAD)
    if head is None:
        head = session.get(schema.AuditHeadRow, schema.HEAD_ID)
        if head is None:
            raise PermanentError(
                "the audit chain head is missing, so no record can be appended; "
                "run `selfheal audit verify` and restore the store from a backup"
            )
        session.info[_HEAD] = head
    # Store exactly what is hashed: tuples become lists, enums their values, and so on.
    text = canonical_json(_object(payload))
    stored: dict[str, Any] = json.loads(text)
    seq = head.seq + 1
    record = AuditRecord(
        seq=seq,
        at=_time(at),
        kind=kind,
        subject=subject,
        payload=stored,
        prev_hash=head.hash,
        hash=_hash_with_payload_text(
            seq=seq, at=at, kind=kind, subject=subject, payload_text=text, prev_hash=head.hash
        ),
    )
    session.info.setdefault(_PENDING, []).append(
        {
            "seq": record.seq,
            "at": record.at,
            "kind": kind,
            "subject": subject,
            "payload": stored,
            "prev_hash": record.prev_hash,
            "hash": record.hash,
        }
    )
    # The head changes with every record, so the session is never clean while records
    # wait: the next flush (a query's, or the commit's) writes them.
    head.seq, head.hash = record.seq, record.hash
    return record


@event.listens_for(Session, "before_flush")
def _write_pending_records(session: Session, _context: object, _instances: object) -> None:
    """Insert the records appended since the last flush, in one statement, in seq order.

    Plain rows, not mapped objects: a storm appends thousands of records a second, and the
    ORM's bookkeeping per object cost more than the hashing. Nothing reads a record back
    as an object before it is flushed, so nothing is lost by it.
    """
    pending = session.info.pop(_PENDING, None)
    if pending:
        session.connection().execute(insert(schema.table_of(schema.AuditRow)), pending)


class AuditLog:
    """The chain of one store: `store.audit`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def append(
        self, kind: str, subject: str, payload: Mapping[str, Any], *, at: float
    ) -> AuditRecord:
        """Append one record in a transaction of its own."""
        with self._store.write() as session:
            return append_in(session, kind=kind, subject=subject, payload=payload, at=at)

    def append_many(self, records: Sequence[tuple[str, str, Mapping[str, Any], float]]) -> None:
        """Append (kind, subject, payload, at) records in one transaction, in order."""
        if not records:
            return
        with self._store.write() as session:
            for kind, subject, payload, at in records:
                append_in(session, kind=kind, subject=subject, payload=payload, at=at)

    def records(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        kind: str | None = None,
        subject: str | None = None,
    ) -> tuple[AuditRecord, ...]:
        """Records with `seq > after` (of one kind, about one subject, if given), oldest first."""
        query = select(schema.AuditRow).where(schema.AuditRow.seq > after)
        if kind is not None:
            query = query.where(schema.AuditRow.kind == kind)
        if subject is not None:
            query = query.where(schema.AuditRow.subject == subject)
        with self._store.read() as session:
            rows = session.scalars(query.order_by(schema.AuditRow.seq).limit(limit))
            return tuple(_record(row) for row in rows)

    def of_incident(self, incident_id: str) -> tuple[AuditRecord, ...]:
        """Every record about one incident, oldest first.

        Those whose subject is the incident, its remediations (`remediate.<id>.<runbook>`)
        and their steps and approvals (subjects under that workflow id), and the budget
        charges made for it.
        """
        prefix = f"remediate.{incident_id}."
        audit = schema.AuditRow
        query = select(audit).where(
            (audit.subject == incident_id)
            | (audit.subject.startswith(prefix, autoescape=True))
            | (audit.kind == "budget.charged")
        )
        with self._store.read() as session:
            rows = session.scalars(query.order_by(audit.seq))
            return tuple(
                _record(row)
                for row in rows
                if row.kind != "budget.charged" or row.payload.get("incident_id") == incident_id
            )

    def last(self) -> AuditRecord | None:
        """The newest record, or None for an empty chain."""
        with self._store.read() as session:
            row = session.scalar(
                select(schema.AuditRow).order_by(schema.AuditRow.seq.desc()).limit(1)
            )
            return None if row is None else _record(row)


def _record(row: schema.AuditRow) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        at=row.at,
        kind=row.kind,
        subject=row.subject,
        payload=row.payload,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def ensure_head(store: Store) -> None:
    """Create the chain head of a new store; leave an existing chain alone."""
    try:
        with store.write() as session:
            # A log with records but no head was tampered with: `verify` will say so.
            if (
                session.get(schema.AuditHeadRow, schema.HEAD_ID) is None
                and session.scalar(select(schema.AuditRow.seq).limit(1)) is None
            ):
                session.add(schema.AuditHeadRow(id=schema.HEAD_ID, seq=0, hash=GENESIS_HASH))
    except PermanentError:
        # Another process created the head between our look and our insert.
        with store.read() as session:
            if session.get(schema.AuditHeadRow, schema.HEAD_ID) is None:
                raise


def verify(store: Store) -> ChainReport:
    """Recompute every hash in order and name the first broken link.

    `records` counts every record in the log, including those after a break. A deleted
    record is reported by its missing `seq`; an edited one by its own `seq`; a reordered or
    re-linked one by the first `seq` whose `prev_hash` does not match its predecessor.
    """
    audit = schema.AuditRow
    columns = (audit.seq, audit.at, audit.kind, audit.subject)
    # The payload as text: a row edited into invalid JSON is a broken link, not a crash.
    query = select(*columns, cast(audit.payload, Text), audit.prev_hash, audit.hash)
    with store.read() as session:
        head = session.get(schema.AuditHeadRow, schema.HEAD_ID)
        head_state = None if head is None else (head.seq, head.hash)
        rows = session.execute(query.order_by(audit.seq)).yield_per(_VERIFY_BATCH)
        count, last_seq, last_hash, broken = 0, 0, GENESIS_HASH, None
        for seq, at, kind, subject, payload_text, prev_hash, stored_hash in rows:
            count += 1
            if broken is None:
                broken = _check(
                    expected=last_seq + 1,
                    expected_prev=last_hash,
                    row=(seq, at, kind, subject, payload_text, prev_hash, stored_hash),
                )
                last_seq, last_hash = seq, stored_hash
    if broken is None:
        broken = _check_head(head_state, last_seq=last_seq, last_hash=last_hash)
    if broken is not None:
        return ChainReport(ok=False, records=count, first_broken_seq=broken[0], reason=broken[1])
    return ChainReport(
        ok=True,
        records=count,
        first_broken_seq=None,
        reason=f"the chain of {count} records is intact",
    )


def _check(
    *, expected: int, expected_prev: str, row: tuple[Any, ...]
) -> tuple[int | None, str] | None:
    seq, at, kind, subject, payload_text, prev_hash, stored_hash = row
    if seq > expected:
        return expected, f"record {expected} is missing (the next record is {seq})"
    if seq != expected:
        return seq, f"record {seq} is out of sequence (expected record {expected})"
    if prev_hash != expected_prev:
        return seq, f"record {seq} does not link to record {seq - 1} (reordered or re-linked)"
    try:
        payload = json.loads(payload_text)
        recomputed = record_hash(
            seq=seq, at=at, kind=kind, subject=subject, payload=payload, prev_hash=prev_hash
        )
    except (TypeError, ValueError) as error:
        return seq, f"record {seq} cannot be read: {error}"
    if recomputed != stored_hash:
        return seq, f"record {seq} does not match its hash (edited)"
    return None


def _check_head(
    head: tuple[int, str] | None, *, last_seq: int, last_hash: str
) -> tuple[int | None, str] | None:
    if head is None:
        return None, "the chain head row is missing"
    head_seq, head_hash = head
    if head_seq > last_seq:
        return last_seq + 1, (
            f"records {last_seq + 1} to {head_seq} are missing from the end of the chain"
        )
    if head_seq < last_seq:
        return head_seq + 1, f"record {head_seq + 1} is beyond the chain head"
    if head_hash != last_hash:
        return last_seq, f"the chain head does not match record {last_seq}"
    return None


def _time(at: float) -> float:
    # SQLite may hand -0.0 back as 0.0, and the hash must survive the round trip.
    return float(at) + 0.0


def _object(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise TypeError(f"an audit payload is a JSON object, not {type(payload).__name__}")
    return payload


def _string(value: str) -> str:
    return json.dumps(str.__str__(value), ensure_ascii=False)


def _as_json(value: Any) -> Any:
    """What `json.dumps` cannot write itself: other mappings as objects; nothing else."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _check_keys(value: Any) -> None:
    """Refuse a mapping with a key that is not a string anywhere in `value`.

    JSON would write an integer key as a string, and sort it as an integer first: the text
    would not read back to the same canonical form, so no such key is accepted.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is Canonical:
            continue
        if isinstance(item, Mapping):
            for key, member in item.items():
                if type(key) is not str and not isinstance(key, str):
                    raise TypeError(f"JSON object keys are strings, not {type(key).__name__}")
                if isinstance(member, Mapping | list | tuple):
                    stack.append(member)
        elif isinstance(item, list | tuple):
            stack.extend(member for member in item if isinstance(member, Mapping | list | tuple))
