"""The store: incidents, decisions, runs, actions and notifications, and the audit chain.

SQLite (a file in WAL mode, or in memory for tests) by default, PostgreSQL to scale out.
Every write that matters commits together with its audit record, whose hash covers the
record before it, so `audit.verify` detects any later edit, deletion or reordering.

    with store.open_store("sqlite:///state.db") as db:
        incident, joined = db.incidents.open_or_join(fp, alert_name=..., ..., at=clock.now())
        report = audit.verify(db)
"""

from selfheal.store import audit, database, repositories, schema
from selfheal.store.audit import AuditLog, AuditRecord, ChainReport, canonical_json, verify
from selfheal.store.database import Store, open_store
from selfheal.store.repositories import (
    ActionRecord,
    ActionStatus,
    Arrival,
    LedgerEntry,
    NotificationRecord,
    RecordNotFound,
    RunStatus,
    WorkflowRun,
    day_of,
)

__all__ = [
    "ActionRecord",
    "ActionStatus",
    "Arrival",
    "AuditLog",
    "AuditRecord",
    "ChainReport",
    "LedgerEntry",
    "NotificationRecord",
    "RecordNotFound",
    "RunStatus",
    "Store",
    "WorkflowRun",
    "audit",
    "canonical_json",
    "database",
    "day_of",
    "open_store",
    "repositories",
    "schema",
    "verify",
]
