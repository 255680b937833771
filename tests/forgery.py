"""What someone with write access to the database can do to the audit chain, for tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from selfheal.store import Store, audit


def run_sql(store: Store, statement: str, **params: Any) -> None:
    """Change the database behind the store's back."""
    with store.engine.begin() as connection:
        connection.execute(text(statement), params)


def rewrite_chain_from(store: Store, seq: int, payload: dict[str, Any]) -> None:
    """Edit record `seq`'s payload and recompute every later hash and the head.

    The chain verifies afterwards: only a signed checkpoint can show the edit.
    """
    records = store.audit.records(after=seq - 1)
    previous = records[0].prev_hash
    for record in records:
        content = payload if record.seq == seq else dict(record.payload)
        new_hash = audit.record_hash(
            seq=record.seq,
            at=record.at,
            kind=record.kind,
            subject=record.subject,
            payload=content,
            prev_hash=previous,
        )
        run_sql(
            store,
            "UPDATE audit_log SET payload = :payload, prev_hash = :prev, hash = :hash "
            "WHERE seq = :seq",
            payload=audit.canonical_json(content),
            prev=previous,
            hash=new_hash,
            seq=record.seq,
        )
        previous = new_hash
    run_sql(store, "UPDATE audit_head SET hash = :hash", hash=previous)
