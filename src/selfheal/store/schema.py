"""The store's tables, as SQLAlchemy 2 declarative models.

Only the repositories and the audit chain touch these classes; callers get frozen
dataclasses, so no ORM object (and no session) escapes the store.

Times are `Double` scenario seconds passed in by the caller: the store never reads a clock,
so a replayed scenario writes the same rows. JSON columns are the portable `JSON` type, which
is text on both SQLite and PostgreSQL (not JSONB): the audit chain hashes payloads, and text
keeps a number written as `1e+16` or `2.50` exactly as it was hashed.

At most one incident per fingerprint is open (in any state but `resolved`). The repository
checks it inside a serialized write transaction; the partial unique index
`uq_incidents_open_fingerprint` is the backstop, and partial indexes work the same way in
SQLite and PostgreSQL, so no denormalized "open marker" column has to be kept in step with
`state`.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite makes only an `INTEGER PRIMARY KEY` column an alias of the rowid; PostgreSQL gets
# 64 bits so an audit log or ledger never runs out of ids.
Id = BigInteger().with_variant(Integer(), "sqlite")

# Hex SHA-256 digests are 64 characters.
HASH_LENGTH = 64

# The id of the single row of `audit_head`.
HEAD_ID = 1

OPEN_INCIDENT = "state != 'resolved'"


class Base(DeclarativeBase):
    """The declarative base: JSON-typed `dict`/`list` columns map to the portable JSON type."""

    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def table_of(model: type[Base]) -> Table:
    """A mapped class's table, for plain statements that need no ORM bookkeeping."""
    return cast("Table", model.__table__)


class IncidentRow(Base):
    """An incident: the alerts with one fingerprint, and where their remediation stands."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index(
            "uq_incidents_open_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=text(OPEN_INCIDENT),
            postgresql_where=text(OPEN_INCIDENT),
        ),
        Index("ix_incidents_state", "state"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    alert_name: Mapped[str] = mapped_column(String(255))
    labels: Mapped[dict[str, Any]]
    annotations: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[float] = mapped_column(Double)
    onset_at: Mapped[float] = mapped_column(Double)
    updated_at: Mapped[float] = mapped_column(Double)
    target_kind: Mapped[str | None] = mapped_column(String(63))
    target_namespace: Mapped[str | None] = mapped_column(String(253))
    target_name: Mapped[str | None] = mapped_column(String(253))
    alert_count: Mapped[int] = mapped_column(Integer, default=1)
    last_alert_at: Mapped[float] = mapped_column(Double)


class DecisionRow(Base):
    """A policy evaluation, with its input and output as the policy saw and returned them."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    policy_input: Mapped[dict[str, Any]]
    policy_output: Mapped[dict[str, Any]]
    bundle_hash: Mapped[str] = mapped_column(String(128))
    plans: Mapped[list[Any]]
    deny: Mapped[list[Any]]
    requires_approval: Mapped[bool] = mapped_column(Boolean)
    decided_at: Mapped[float] = mapped_column(Double)


class WorkflowRunRow(Base):
    """One runbook execution; `workflow_id` is its idempotency key."""

    __tablename__ = "workflow_runs"

    workflow_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    runbook: Mapped[str] = mapped_column(String(255))
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)
    outcome: Mapped[str | None] = mapped_column(String(32))


class ActionRow(Base):
    """One step's effect, recorded under its idempotency key before the effect happens."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    workflow_id: Mapped[str] = mapped_column(ForeignKey("workflow_runs.workflow_id"), index=True)
    step: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(1024))
    params: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    started_at: Mapped[float] = mapped_column(Double)
    finished_at: Mapped[float | None] = mapped_column(Double)


class NotificationRow(Base):
    """A message sent (or attempted) to a person or channel."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id"), index=True)
    channel: Mapped[str] = mapped_column(String(128))
    recipient: Mapped[str] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[float] = mapped_column(Double)
    delivered: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    # The idempotency key of what caused it (a runbook step, an escalation): one record each.
    key: Mapped[str | None] = mapped_column(String(512), unique=True)


class AuditRow(Base):
    """One link of the audit hash chain (see `audit.py` for the hashing rule).

    `seq` is assigned by the append under the write lock, not by the database, because the
    hash covers it and so it must be known before the row is written.
    """

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    at: Mapped[float] = mapped_column(Double)
    kind: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH))


class AuditHeadRow(Base):
    """The single row naming the chain's last record.

    It is what PostgreSQL writers lock (`SELECT ... FOR UPDATE`) to serialize appends, and it
    lets `verify` notice records cut off the end of the chain, which no link can show.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Id)
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH))


# Hex Ed25519 signatures are 64 bytes, 128 characters.
SIGNATURE_LENGTH = 128


class AuditCheckpointRow(Base):
    """A signed checkpoint of the chain: record `seq` had hash `head_hash` (audit_checkpoints.py).

    Not a record of the chain itself: a record would move the head it signs. At most one
    checkpoint per record, and each newer one signs a later record.
    """

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    head_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    signed_at: Mapped[float] = mapped_column(Double)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(SIGNATURE_LENGTH))


class BudgetLedgerRow(Base):
    """A cost charged against a day's remediation budget."""

    __tablename__ = "budget_ledger"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    day: Mapped[str] = mapped_column(String(10), index=True)
    amount: Mapped[float] = mapped_column(Double)
    currency: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    incident_id: Mapped[str | None] = mapped_column(ForeignKey("incidents.id"))
    created_at: Mapped[float] = mapped_column(Double)
    # The idempotency key of the step that charged it: a re-run finds its charge by it.
    key: Mapped[str | None] = mapped_column(String(512), unique=True)


PENDING_INBOX = "processed_at IS NULL"


class InboxRow(Base):
    """An alert a sender handed over and was told was taken, waiting for the loop.

    Written in the transaction that answers the sender, so an acknowledged alert survives
    any crash; marked processed in the transaction that turns it into incident writes, so
    it is counted once. `key` is a hash of the alert's content: a sender's retry of the
    same alert is stored once.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        Index(
            "ix_inbox_pending",
            "id",
            sqlite_where=text(PENDING_INBOX),
            postgresql_where=text(PENDING_INBOX),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(HASH_LENGTH), unique=True)
    source: Mapped[str] = mapped_column(String(64))
    # About a known workload: taken before the rest, so a flood of alerts that name nothing
    # to act on does not keep a fixable one waiting. An alert's labels do not change
    # between its firing and its resolution, so each alert's own order is kept.
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    alert: Mapped[dict[str, Any]]
    received_at: Mapped[float] = mapped_column(Double)
    processed_at: Mapped[float | None] = mapped_column(Double, index=True)


class AlertStateRow(Base):
    """The latest state of each alert a sender told selfheal about (firing or resolved).

    Which incidents still have a firing alert must survive a restart: without it, every
    incident opened from a webhook would look quiet after one and be resolved.
    """

    __tablename__ = "alert_states"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    incident_key: Mapped[str] = mapped_column(String(64), index=True)
    firing: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[float] = mapped_column(Double)


class LeaseRow(Base):
    """Work only one replica may do at a time (the loop: scrape, rules, watches).

    `token` grows by one each time the lease changes hands: a fencing token, so work done
    under an old holder can be told from work done under the new one. Times are the
    database server's (seconds since the epoch), so replicas' clocks need not agree.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    token: Mapped[int] = mapped_column(Id)
    expires_at: Mapped[float] = mapped_column(Double)


class ReplicaRow(Base):
    """A controller replica and when it last said it lives (its heartbeat).

    A replica silent past the lease is taken for dead: a live one recovers its workflows
    and marks it `fenced`, after which it must not act even if it wakes up again.
    """

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    api_url: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[float] = mapped_column(Double)
    heartbeat_at: Mapped[float] = mapped_column(Double)
    fenced: Mapped[bool] = mapped_column(Boolean, default=False)


class CheckpointRow(Base):
    """A component's saved state (the anomaly detectors'), for whoever takes its work over."""

    __tablename__ = "checkpoints"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    document: Mapped[dict[str, Any]]
    saved_at: Mapped[float] = mapped_column(Double)
